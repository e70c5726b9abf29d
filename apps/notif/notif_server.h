/* The notification server of the talk: random numbers, classified ads and pushed
 * notifications over lines of text (the wire protocol is docs/demo.md and
 * shared/spec/protocol.md).
 *
 *     notif_server *s = notif_server_new(r, NULL);             // defaults
 *     listener *l = reactor_listen_tcp(r, "127.0.0.1", 6789, notif_server_factory(s), 0);
 *     notif_server_stop_on_shutdown(s, 5.0);                   // flush on reactor_stop
 *     reactor_run(r);
 *     listener_free(l); notif_server_free(s); reactor_free(r);
 *
 * What a connection gets (every rule of the protocol):
 *   - "random?" -> a fresh integer 0..99999; "classified?" -> the newest ad;
 *     "notify" / "stop" enter / leave notification mode; "quit" flushes and closes;
 *     anything else -> "error: unknown command". Commands are found in a uthash table.
 *   - A CR right before the LF is stripped; empty lines are ignored; pipelined requests
 *     are answered in order, all the answers to one read leaving in one send.
 *   - A line over 1024 bytes (or 1025 bytes with no LF yet, not counting a final CR)
 *     gets "error: line too long" and the connection is closed, after every complete
 *     line before it was answered.
 *   - A half-close (the client shuts down its sending side) is answered in full, then
 *     the server closes.
 *   - Closing after quit, a too-long line or at a shutdown never resets the connection:
 *     once the answers are out the server shuts down its sending side and drops what the
 *     peer still sends until the peer's EOF (at most about 5 s), because closing a socket
 *     with unread input makes the kernel send RST, which destroys unread answers.
 *   - Every `interval` seconds the server publishes an event (a new random number or a
 *     new classified ad, chosen at random); each connection in notification mode gets
 *     "notif: random" or "notif: classified". Subscribers are kept in a uthash registry
 *     (keyed by connection; an entry exists only while that connection is in
 *     notification mode), so a notification walks the subscribers only; every
 *     connection is also on a plain list, for the shutdown.
 *   - Protection: a connection whose pending output would pass `output_cap` is aborted
 *     (counted in dropped_slow); nobody else waits for it. A client that pipelines
 *     without reading is paused (its socket is not read) once 64 KiB of answers are
 *     waiting, and resumed when they are sent. Over `max_clients`, a new connection gets
 *     "error: server full" and is closed.
 *
 * Ownership: the server is the caller's. It must outlive its listeners (free the listener
 * first, or free the reactor first). notif_server_free() aborts the connections still
 * open (their memory is released from connection_lost, which the reactor always
 * delivers, at the latest in reactor_free). The connection protocols are the server's.
 *
 * Threads: everything runs on the reactor thread. */
#ifndef TWISTC_NOTIF_SERVER_H
#define TWISTC_NOTIF_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <twistc/protocol.h>
#include <twistc/reactor.h>
#include <twistc/twistc_base.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NOTIF_DEFAULT_PORT 6789
#define NOTIF_MAX_LINE 1024               /* longest request line, without LF (and CR) */
#define NOTIF_DEFAULT_CAP (1024u * 1024u) /* pending output per connection */
#define NOTIF_DEFAULT_INTERVAL 1.0        /* seconds between two published events */

typedef struct notif_server notif_server;

typedef enum { NOTIF_EVENT_RANDOM = 0, NOTIF_EVENT_CLASSIFIED = 1 } notif_event;

typedef struct notif_server_config {
    double interval;        /* seconds between events; 0: NOTIF_DEFAULT_INTERVAL;
                             * negative: never publish on a timer (tests) */
    size_t max_clients;     /* 0: no limit */
    size_t output_cap;      /* 0: NOTIF_DEFAULT_CAP */
    const char *const *ads; /* NULL: the built-in list; else n_ads ads (copied; each must
                             * pass notif_ad_check) */
    size_t n_ads;
    uint64_t seed;          /* random numbers; 0: from the clock and the pid */
    double idle_timeout;    /* close a connection silent this long (transport_set_timeout,
                             * seconds); 0: never */
} notif_server_config;

typedef struct notif_server_stats {
    uint64_t connections;   /* connections served (refused ones not included) */
    uint64_t refused;       /* answered "error: server full" */
    uint64_t requests;      /* non-empty request lines handled */
    uint64_t errors;        /* "error: ..." lines sent */
    uint64_t events;        /* events published */
    uint64_t notifications; /* "notif: ..." lines sent (one per subscriber per event) */
    uint64_t dropped_slow;  /* connections closed because their output passed the cap */
    size_t clients;         /* connected now */
    size_t subscribers;     /* in notification mode now */
} notif_server_stats;

/* A new server on r (not listening: pass notif_server_factory() to reactor_listen_tcp).
 * cfg NULL: defaults. The event timer starts when the factory starts (first listener)
 * or at notif_server_start(). NULL+errno: EINVAL (a bad ad, a negative cap), ENOMEM. */
TWISTC_API notif_server *notif_server_new(reactor *r, const notif_server_config *cfg);
/* Aborts the connections still open (see Ownership), stops the timers, frees. NULL ok. */
TWISTC_API void notif_server_free(notif_server *s);

/* The factory to listen with (owned by the server). */
TWISTC_API factory *notif_server_factory(notif_server *s);
/* A new connection protocol, as the factory builds them (for in-memory transports:
 * memory_transport_connect(t, notif_server_connection(s))). NULL+errno. The server frees
 * it in connection_lost. */
TWISTC_API protocol *notif_server_connection(notif_server *s);

/* Starts publishing on the timer (idempotent; the factory's start does it). */
TWISTC_API int notif_server_start(notif_server *s);
/* Publishes one event now: every subscriber gets its notification line. Returns the
 * number of subscribers notified. */
TWISTC_API int notif_server_publish(notif_server *s, notif_event ev);

/* ---- Events across instances (notif_redis.h uses these) ----------------------------- */

/* Told of every event this server produces (its timer, notif_server_publish), after its
 * own subscribers were notified: ad is the new ad (len bytes, not NUL-terminated for
 * the hook's purposes) for CLASSIFIED, NULL for RANDOM. */
typedef void (*notif_event_hook)(notif_server *s, notif_event ev, const char *ad, size_t len,
                                 void *data);
/* Sets (or with NULL removes) the hook. */
TWISTC_API void notif_server_set_event_hook(notif_server *s, notif_event_hook hook, void *data);
/* An event produced elsewhere: for CLASSIFIED, `ad` becomes the answer to classified?
 * (copied; checked with notif_ad_check: -EINVAL); then every subscriber is notified. The
 * hook is not called. Returns the number of subscribers notified, or -errno. */
TWISTC_API int notif_server_deliver(notif_server *s, notif_event ev, const char *ad, size_t len);
/* Makes `ad` the answer to classified? without notifying anyone (-EINVAL, -ENOMEM). */
TWISTC_API int notif_server_set_classified(notif_server *s, const char *ad, size_t len);
/* The ad classified? answers now (len bytes into *len if not NULL). Borrowed: valid until
 * the next event. */
TWISTC_API const char *notif_server_classified(const notif_server *s, size_t *len);

/* Graceful stop: no more events; every connection is answered for the lines it sent
 * (already read), flushed and closed; connections still open after `grace` seconds
 * (<= 0: 5 s) are aborted. done(data) runs (once, from the loop or at once) when no
 * connection is left. Returns the number of connections being closed. */
TWISTC_API int notif_server_shutdown(notif_server *s, double grace, void (*done)(void *data),
                                     void *data);
/* Adds a BEFORE_SHUTDOWN trigger to the reactor that runs notif_server_shutdown and holds
 * the reactor's shutdown until every connection is closed (reactor_shutdown_hold /
 * release): so reactor_stop() (and SIGINT/SIGTERM with reactor_stop_on_signals) flushes
 * every answer owed before the loop exits. */
TWISTC_API int notif_server_stop_on_shutdown(notif_server *s, double grace);

TWISTC_API notif_server_stats notif_server_get_stats(const notif_server *s);
/* "connections=N requests=N notifications=N dropped_slow=N ..." into buf (snprintf). */
TWISTC_API int notif_server_format_stats(const notif_server *s, char *buf, size_t n);

/* ---- Ads --------------------------------------------------------------------------- */

/* NULL if `ad` (len bytes) can be served, else why not ("empty", "too long", "starts
 * with \"notif:\"", "starts with \"error:\"", "contains a NUL or newline byte"). */
TWISTC_API const char *notif_ad_check(const char *ad, size_t len);
/* Reads ads from a file, one per line (a CR before the LF is dropped). On success *ads is
 * a NULL-terminated malloc'd array of malloc'd strings (notif_ads_free) and *n its
 * length. On error returns -errno (-EINVAL for a bad ad or no ad at all) and writes
 * "FILE:LINE: why" into err (err_len bytes, may be 0). */
TWISTC_API int notif_ads_load(const char *path, char ***ads, size_t *n, char *err,
                              size_t err_len);
TWISTC_API void notif_ads_free(char **ads);

#ifdef __cplusplus
}
#endif
#endif
