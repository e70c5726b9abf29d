/* Redis through hiredis on the twistc reactor: the adapter, and a small Deferred client.
 *
 * hiredis's asynchronous API owns its socket and its parser; it only needs an event loop
 * that tells it when the socket is readable or writable. redis_attach() is that glue for
 * the twistc reactor (the pattern is docs/foreign-sockets.md):
 *
 *     redisAsyncContext *ac = redisAsyncConnect("127.0.0.1", 6379);   // non-blocking
 *     if (ac->err || redis_attach(ac, r) < 0) ...
 *     redisAsyncCommand(ac, on_reply, NULL, "GET %s", "key");          // hiredis as usual
 *
 * hiredis 0.14 has no timer hook, so the adapter alone never times anything out. The
 * client below adds what an application needs on top of it:
 *
 *     redis_client *rc = redis_client_new(r, &(redis_config){.host = "127.0.0.1"});
 *     deferred *d = redis_command(rc, "INCR %s", "hits");   // fires with an INT
 *     redis_subscribe(rc, "news", on_message, data);         // every message, forever
 *
 *   - Replies become Deferred results: an integer -> DEFERRED_INT; a string or status ->
 *     DEFERRED_STR (a malloc'd copy; free_fn free); nil -> DEFERRED_NONE; an array ->
 *     DEFERRED_PTR holding a redis_value (free_fn redis_value_free); an error reply -> a
 *     failure with code REDIS_EREPLY and Redis's message ("ERR unknown command ...").
 *   - A client owns up to two connections to one server: one for commands and, from the
 *     first redis_subscribe(), one in subscribe mode (a Redis connection that subscribed
 *     can run no other command). They go up and down together: "the link".
 *   - Timeouts on reactor timers: the link is up once Redis answered a PING on the
 *     command connection and confirmed every subscription, within connect_timeout (so a
 *     message published after the link is up reaches this client); while up, an idle link is PINGed every
 *     ping_interval, and a command (or PING) left unanswered for command_timeout drops
 *     the link. That is how a Redis that stalls (SIGSTOP, a hung host) is noticed: TCP
 *     alone would wait for ever.
 *   - When the link drops, every command in flight fails with ECONNRESET and the reason
 *     ("Redis connection lost: Server closed the connection", "Redis did not answer a
 *     command within 5 s"); then the client reconnects after a back-off with the rules of
 *     reconnecting.h (the first wait initial_delay, then times factor up to max_delay,
 *     each wait jittered; back to initial_delay once the link is up) and subscribes again
 *     to every channel. Messages published while the link was down are lost: Redis
 *     pub/sub is at-most-once.
 *   - A command while no link is up, nor being set up, fails at once with ENOTCONN; a
 *     command beyond max_pending in flight fails at once with ENOBUFS (memory stays
 *     bounded when Redis stalls). Commands made while connecting are sent once connected.
 *   - Nothing blocks the loop: connect is non-blocking. One exception, from hiredis: a
 *     host NAME is resolved with getaddrinfo(); give an IP address to avoid that.
 *
 * Errors: int functions return 0 or -errno; constructors NULL + errno; a command returns
 * a Deferred (NULL+errno only for a bad argument or ENOMEM).
 *
 * Ownership: the client is the caller's; redis_client_free() fails what is in flight
 * with ECANCELED and may be called from any callback (even one the client runs). Each
 * Deferred from redis_command() is the caller's reference. An adapter attached with
 * redis_attach() is owned by the hiredis context and freed with it (redisAsyncFree, or
 * hiredis's own disconnect); the reactor must outlive the context.
 *
 * Threads: everything on the reactor thread. */
#ifndef TWISTC_REDIS_H
#define TWISTC_REDIS_H

#include <stdarg.h>
#include <stddef.h>

#include <twistc/deferred.h>
#include <twistc/reactor.h>
#include <twistc/twistc_base.h>

#ifdef __cplusplus
extern "C" {
#endif

struct redisAsyncContext; /* <hiredis/async.h> */

/* ---- The adapter ----------------------------------------------------------------- */

/* Drives ac with r: watches its socket for what hiredis asks (read/write interest) and
 * calls redisAsyncHandleRead/Write. -EINVAL (NULL, or ac has no socket: ac->err set),
 * -EEXIST (ac already attached to an event loop), -ENOMEM, or what reactor_watch
 * returned (-ERANGE: the select backend and a high fd). */
TWISTC_API int redis_attach(struct redisAsyncContext *ac, reactor *r);

/* ---- Replies ---------------------------------------------------------------------- */

/* Failure code of an error reply from Redis (the message is Redis's text). */
#define REDIS_EREPLY 20101

typedef enum {
    REDIS_VALUE_NIL,
    REDIS_VALUE_INT,
    REDIS_VALUE_STR,   /* strings and statuses */
    REDIS_VALUE_ERROR, /* an error inside an array (EXEC) */
    REDIS_VALUE_ARRAY,
} redis_value_type;

/* A reply array, deep-copied out of hiredis. */
typedef struct redis_value {
    redis_value_type type;
    long long integer;
    char *str;   /* STR, ERROR: NUL-terminated, len bytes (may hold NULs) */
    size_t len;
    size_t n;    /* ARRAY: n elements */
    struct redis_value *elements;
} redis_value;

/* Frees a redis_value from a result (the free_fn of a DEFERRED_PTR reply). NULL ok. */
TWISTC_API void redis_value_free(void *value);

/* ---- The client ------------------------------------------------------------------- */

typedef struct redis_client redis_client;

/* Zero means "the default" for every field. */
typedef struct redis_config {
    const char *host;       /* "127.0.0.1" */
    int port;               /* 6379 */
    int db;                 /* SELECT this database first (0: leave the default, 0) */
    double connect_timeout; /* 5 s: TCP connect and the first PING answered */
    double command_timeout; /* 5 s: a reply later than this drops the link */
    double ping_interval;   /* 1 s: an idle link is PINGed this often */
    double initial_delay;   /* 0.5 s: the first wait before reconnecting */
    double factor;          /* 2 */
    double max_delay;       /* 10 s */
    double jitter;          /* 0.11962656472 (Twisted's); negative: none */
    size_t max_pending;     /* 10000 commands in flight */
} redis_config;

/* Parses "redis://host[:port][/db]" into cfg's host (pointing into hostbuf), port, db.
 * -EINVAL for anything else (also a bad port or db). */
TWISTC_API int redis_parse_url(const char *url, redis_config *cfg, char *hostbuf,
                               size_t hostbuf_len);

/* Link changes: up 1 once the link is up (why NULL); up 0 for each failed attempt and
 * each loss, with the reason ("Connection refused", "Redis did not answer ..."). */
typedef void (*redis_link_fn)(redis_client *rc, int up, const char *why, void *data);
/* A message on a subscribed channel. msg holds len bytes (NUL-terminated). */
typedef void (*redis_message_fn)(redis_client *rc, const char *channel, const char *msg,
                                 size_t len, void *data);

/* A client on r that starts connecting now (cfg copied; cfg->host copied). NULL+errno:
 * EINVAL (a bad value in cfg), ENOMEM. */
TWISTC_API redis_client *redis_client_new(reactor *r, const redis_config *cfg);
/* Stops, fails what is in flight with ECANCELED, frees. NULL ok. */
TWISTC_API void redis_client_free(redis_client *rc);
/* Calls fn at every link change (replaces the previous one; NULL: none). */
TWISTC_API void redis_client_on_link(redis_client *rc, redis_link_fn fn, void *data);
/* No more reconnecting: drops the link (in-flight commands fail with ECANCELED) and makes
 * every later command fail with ENOTCONN. Idempotent. */
TWISTC_API void redis_client_stop(redis_client *rc);
/* 1 while the link is up. */
TWISTC_API int redis_client_connected(const redis_client *rc);
/* Link losses and failed attempts so far; links made so far. */
TWISTC_API unsigned long redis_client_drops(const redis_client *rc);
TWISTC_API unsigned long redis_client_links(const redis_client *rc);

/* A command in hiredis's printf-like format (%s a C string, %b a pointer and a size_t
 * length: binary-safe). The Deferred fires with the reply (see above). SUBSCRIBE-like
 * commands are refused (EINVAL failure): use redis_subscribe. */
TWISTC_API deferred *redis_command(redis_client *rc, const char *fmt, ...);
TWISTC_API deferred *redis_vcommand(redis_client *rc, const char *fmt, va_list ap);
/* The same from argc arguments (lens NULL: strlen of each). */
TWISTC_API deferred *redis_command_argv(redis_client *rc, int argc, const char *const *argv,
                                        const size_t *lens);

/* Subscribes to `channel` now (if the link is up) and after every reconnect; fn gets
 * each message until the client is freed. -EEXIST if channel is already subscribed,
 * -EINVAL, -ENOMEM. */
TWISTC_API int redis_subscribe(redis_client *rc, const char *channel, redis_message_fn fn,
                               void *data);

#ifdef __cplusplus
}
#endif
#endif
