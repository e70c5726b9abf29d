/* Inside the transports: the connection struct, the per-reactor module state, and what
 * listeners, connectors and the in-memory transport share. Internal to libtwistc. */
#ifndef TWISTC_TRANSPORT_INTERNAL_H
#define TWISTC_TRANSPORT_INTERNAL_H

#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <twistc/transport.h>

#define TRANSPORT__READ_MAX (64u * 1024u)  /* one recv per readiness (Twisted: 64 KiB) */
#define TRANSPORT__SEND_MAX (256u * 1024u) /* one send per flush at most (fairness) */
#define TRANSPORT__OUT_STD (16u * 1024u)   /* the size of a cached output buffer */
#define TRANSPORT__OUT_CACHE 16            /* cached output buffers per reactor */

/* Flags of struct transport (t->flags). */
enum {
    T_MEMORY = 1u << 0,        /* in-memory test transport: no fd, no reactor */
    T_PAUSED = 1u << 1,        /* pause_producing: not reading */
    T_DISCONNECTING = 1u << 2, /* lose_connection: flush, then close */
    T_ABORTING = 1u << 3,      /* abort_connection: close with RST at the next step */
    T_SHUT_REQ = 1u << 4,      /* lose_write_connection asked */
    T_SHUT_DONE = 1u << 5,     /* shutdown(SHUT_WR) done */
    T_READ_EOF = 1u << 6,      /* the peer's FIN was read */
    T_CLOSED = 1u << 7,        /* fd closed; connection_lost still to be delivered */
    T_PENDING = 1u << 8,       /* in the module's pending list */
    T_IN_CB = 1u << 9,         /* inside one of this connection's protocol callbacks */
    T_WANT_WRITE = 1u << 10,   /* a send was incomplete: waiting for WRITABLE */
    T_REG_R = 1u << 11,        /* READABLE registered with the reactor */
    T_REG_W = 1u << 12,        /* WRITABLE registered */
    T_WATCHED = 1u << 13,      /* fd known to the reactor */
    T_UNIX = 1u << 14,         /* AF_UNIX socket */
    T_CLIENT = 1u << 15,       /* owner is a connector (else a listener) */
    T_MADE = 1u << 16,         /* connection_made was called */
    T_LOST_CALLED = 1u << 17,  /* connection_lost was delivered (memory transport) */
    T_HAS_X = 1u << 18,        /* t->link points to a struct transport_extra */
    T_CAP_SHIFT = 19,          /* bits 19..23: log2 of the output buffer's capacity */
    T_REASON_SHIFT = 24,       /* bits 24..31: protocol_reason_kind of the loss */
};

/* Rarely used per-connection settings, allocated only when set. */
struct tls_conn;
struct transport_extra {
    void *owner; /* what t->link held before */
    struct tls_conn *tls; /* the TLS layer of this connection (tls_layer.c), or NULL */
    const transport_producer_ops *pops;
    void *pdata;
    uint32_t high, low, cap;
    uint8_t streaming, producer_paused;
    struct reactor_idle *idle; /* transport_set_timeout, NULL when never set */
};

/* One connection. Kept small on purpose (56 bytes on 64-bit, a 64-byte malloc chunk): an
 * idle connection has no buffer at all, and rarely used fields live elsewhere:
 *   - the owner (listener or connector) sits in `link`, or in the extra settings once a
 *     producer or limits were set (T_HAS_X);
 *   - the output buffer's capacity is a power of two, its log2 kept in the flags;
 *   - once closed, `fd` holds the errno of the loss (the socket is gone). */
struct transport {
    void *link;     /* owner, or struct transport_extra * when T_HAS_X */
    protocol *proto;
    char *out;      /* pending output [out_off, out_len), NULL when empty */
    transport *prev, *next; /* the module's list of live socket connections */
    uint32_t out_off, out_len;
    int fd;         /* the socket; the loss's errno once T_CLOSED */
    uint32_t flags;
};

static inline struct transport_extra *transport__x(const transport *t)
{
    return (t->flags & T_HAS_X) ? (struct transport_extra *)t->link : NULL;
}
static inline void *transport__owner(const transport *t)
{
    return (t->flags & T_HAS_X) ? ((struct transport_extra *)t->link)->owner : t->link;
}
static inline uint32_t transport__cap(const transport *t)
{
    unsigned b = (t->flags >> T_CAP_SHIFT) & 31u;
    return b ? (uint32_t)1 << b : 0;
}
static inline void transport__set_cap(transport *t, uint32_t cap) /* 0 or a power of two */
{
    unsigned b = 0;
#if defined(__GNUC__) || defined(__clang__)
    if (cap > 1)
        b = (unsigned)__builtin_ctz(cap); /* log2 of a power of two: one instruction */
#else
    while (cap > 1) {
        cap >>= 1;
        b++;
    }
#endif
    t->flags = (t->flags & ~(31u << T_CAP_SHIFT)) | (b << T_CAP_SHIFT);
}
/* transport_pending and transport_disconnecting, inline for the library's own protocols
 * (LineReceiver, the notification server), which ask once per line: a call into
 * transport.c would cost more than the question. */
static inline size_t transport__pending(const transport *t)
{
    return (size_t)t->out_len - t->out_off;
}
static inline int transport__disconnecting(const transport *t)
{
    return !t || (t->flags & (T_DISCONNECTING | T_ABORTING | T_CLOSED)) != 0;
}
/* memcpy, with the short answers of line protocols (up to 16 bytes) copied inline as
 * two overlapping word moves: a call to memcpy costs more than such a copy. */
static inline void transport__copy_in(char *dst, const char *src, size_t len)
{
    if (len >= 8 && len <= 16) {
        uint64_t a, b;
        memcpy(&a, src, 8);
        memcpy(&b, src + len - 8, 8);
        memcpy(dst, &a, 8);
        memcpy(dst + len - 8, &b, 8);
    } else if (len >= 4 && len < 8) {
        uint32_t a, b;
        memcpy(&a, src, 4);
        memcpy(&b, src + len - 4, 4);
        memcpy(dst, &a, 4);
        memcpy(dst + len - 4, &b, 4);
    } else {
        memcpy(dst, src, len);
    }
}

/* The plaintext a TLS connection's protocol wrote and the layer has not encrypted yet.
 * It is the first member of the layer (struct tls_conn), so that writes append to it
 * inline (tls__plain). buf is the connection's own (malloc) or the reactor's shared one
 * (struct transport_mod's tlsplain), lent to one connection at a time until its next
 * step: tls_layer.c, "The plaintext buffer". */
struct tls__plain {
    char *buf;
    size_t len, cap;
};
static inline struct tls__plain *tls__plain(struct tls_conn *c)
{
    return (struct tls__plain *)(void *)c;
}

/* transport_write, with its most common case inline for the library's own protocols:
 * an answer written from inside the connection's own callback, into an output buffer
 * that has room (every buffer holds at least TRANSPORT__OUT_STD bytes), on a connection
 * still open with no producer or limits. That case needs no check beyond these flags
 * and no scheduling (step() flushes when the callback returns); anything else takes the
 * full path, so the result is the same. */
static inline int transport__write(transport *t, const char *data, size_t len)
{
    if ((t->flags & (T_IN_CB | T_HAS_X | T_CLOSED | T_ABORTING | T_SHUT_DONE)) == T_IN_CB &&
        t->out && (size_t)t->out_len + len <= TRANSPORT__OUT_STD) {
        transport__copy_in(t->out + t->out_len, data, len);
        t->out_len += (uint32_t)len;
        return 0;
    }
    return transport_write(t, data, len);
}

/* The socket, or -1 once closed or for a memory transport. */
static inline int transport__sock(const transport *t)
{
    return (t->flags & (T_CLOSED | T_MEMORY)) ? -1 : t->fd;
}

struct transport_mod;

/* listener and connector both start with this, so a transport finds its reactor (and
 * the TLS context its connections speak, with the host a client checks). */
struct tls_context;
struct transport_owner {
    struct transport_mod *mod;
    struct tls_context *tls; /* a reference, or NULL for plaintext */
    const char *tls_host;    /* connector: the host to verify (its own copy), else NULL */
};

/* How many listeners and connectors of this reactor use a factory (start/stop hooks). */
struct factory__use {
    factory *f;
    unsigned n;
};

struct transport_mod {
    reactor *r;
    char *rbuf; /* the shared read buffer (TRANSPORT__READ_MAX) */
    char *scratch; /* TRANSPORT__OUT_STD bytes lent as the output buffer of the connection
                      being read, during its data_received (see do_read) */
    transport *conns;
    transport **pend; /* connections with work for the next step */
    uint32_t npend, cappend;
    reactor_timer *tick;
    char *cache[TRANSPORT__OUT_CACHE];
    int ncache;
    int spare_fd; /* EMFILE trick: a reserved fd, -1 when none */
    struct listener *listeners;
    struct connector *connectors;
    struct resolve_job *jobs; /* host name lookups in flight */
    char *tlsbuf; /* TLS: plaintext decrypted from one read (TRANSPORT__READ_MAX), lazily */
    char *tlsplain; /* TLS: TRANSPORT__OUT_STD bytes lent as the plaintext buffer of one
                       connection until its next step (tls_layer.c), lazily */
    struct tls_conn *tlsplain_user; /* the connection holding it, or NULL */
    int shutting_down;
    int freeing; /* inside reactor_free: the reactor's own state may be gone */
    struct factory__use *uses; /* factories in use, for their start/stop hooks */
    size_t nuses, capuses;
};

/* Twisted's doStart/doStop: the first listener or connector of m using f starts it
 * (start_factory), the last one stopping stops it (stop_factory). do_start returns 0,
 * or -ENOMEM (nothing started). */
int factory__do_start(struct transport_mod *m, factory *f);
void factory__do_stop(struct transport_mod *m, factory *f);

/* reactor_unwatch / reactor_timer_cancel, skipped while the reactor is being freed
 * (it forgets fds and timers itself then). */
static inline void transport__unwatch(struct transport_mod *m, int fd)
{
    if (!m->freeing && fd >= 0)
        reactor_unwatch(m->r, fd);
}
static inline void transport__cancel(struct transport_mod *m, reactor_timer *t)
{
    if (!m->freeing && t)
        reactor_timer_cancel(t);
}

/* The module state of r, created on first use (NULL+errno). */
struct transport_mod *transport__mod(reactor *r);
/* A new connection, in two steps so that nothing can fail once the factory built a
 * protocol: transport__alloc (NULL on ENOMEM; free() it if the factory refuses), then
 * transport__start on the socket fd (non-blocking already) for protocol p, owned by
 * owner: calls connection_made, returns t, which stays valid until the next iteration. */
transport *transport__alloc(struct transport_mod *m);
transport *transport__start(struct transport_mod *m, transport *t, void *owner, int fd,
                            protocol *p, unsigned flags);
/* Makes a transport with no socket (memory transport). */
/* Hands a connected transport over to protocol p (p->transport set): from the next
 * delivery on, p gets every call. For reactor_connect_protocol's wrapper, from inside its
 * connection_made. */
void transport__set_protocol(transport *t, protocol *p);
transport *transport__new_memory(protocol *p);
void transport__free_memory(transport *t);
/* Delivers connection_lost to a memory transport's protocol (once). */
void transport__memory_lost(transport *t, protocol_reason_kind kind, int err);
/* Fills a reason for kind/err with the standard message. */
void transport__reason(protocol_reason *out, protocol_reason_kind kind, int err);

/* For the TLS layer (tls_layer.c), which moves ciphertext through the transport:
 *   transport__close: close the socket now with this reason (rst: SO_LINGER 0); the
 *     protocol hears of it at the next step.
 *   transport__append: bytes for the socket, after those already pending (no cap check).
 *   transport__deliver: data_received under the callback flag; non-zero closes.
 *   transport__schedule / transport__watch: step at the next iteration / register the
 *     directions the connection needs now.
 *   transport__try_send: one send of what is pending, now (an alert before a close). */
void transport__close(transport *t, protocol_reason_kind kind, int err, int rst);
int transport__append(transport *t, const void *data, size_t len);
int transport__deliver(transport *t, const char *data, size_t len);
void transport__schedule(transport *t);
void transport__watch(transport *t);
void transport__try_send(transport *t);
struct transport_mod *transport__mod_of(const transport *t);
struct transport_extra *transport__extra(transport *t);

/* Socket helpers (listener.c): non-blocking + close-on-exec + no SIGPIPE. */
int transport__socket(int domain, int type);
int transport__set_nonblock_cloexec(int fd);

/* Listeners and connectors for a socket address (tcp.c and unix.c parse addresses). */
listener *listener__create(reactor *r, const struct sockaddr *addr, socklen_t len, factory *f,
                           int backlog, unsigned flags);
connector *connector__create(reactor *r, const char *host, int port, const char *path,
                             factory *f, double timeout);

/* Host name lookups on a worker thread (resolve.c). done runs on the loop thread with
 * job->gai_err, or job->addrs/naddrs (>= 1, in getaddrinfo's order, port set) filled in,
 * unless the job was cancelled. done owns the job: it may take addrs (set it to NULL)
 * and frees the rest with resolve__free. */
#define RESOLVE__MAX_ADDRS 16 /* addresses kept per lookup; the rest are never tried */
struct resolve_addr {
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } u;
    socklen_t len;
};
struct addrinfo;
typedef int (*resolve__gai_fn)(const char *host, const char *service,
                               const struct addrinfo *hints, struct addrinfo **res);
typedef void (*resolve__freeai_fn)(struct addrinfo *res);
struct resolve_job {
    struct transport_mod *mod;
    struct resolve_job *next;
    char *host;
    int port;
    int gai_err;
    int cancelled; /* loop thread: do not call done, just free */
    int orphaned;  /* the reactor went away: the thread frees the job (under the lock) */
    int queued;    /* the thread handed the job back (under the lock) */
    struct resolve_addr *addrs;
    int naddrs;
    resolve__gai_fn gai; /* the seam's values when the job started */
    resolve__freeai_fn gai_free;
    void (*done)(struct resolve_job *job);
    void *data;
};
/* Test seam, internal: the lookup functions resolve.c calls (getaddrinfo/freeaddrinfo by
 * default). A test may point them at a fake that returns chosen addresses; set them on
 * the loop thread before the connect and put them back after it (each job keeps the
 * values it started with, so a lookup still running on its thread is not affected). */
extern resolve__gai_fn resolve__getaddrinfo;
extern resolve__freeai_fn resolve__freeaddrinfo;
/* Starts a lookup (host copied). NULL+errno. */
struct resolve_job *resolve__start(struct transport_mod *m, const char *host, int port,
                                   void (*done)(struct resolve_job *), void *data);
/* The owner lost interest: done will not run. */
void resolve__cancel(struct resolve_job *job);
/* Frees a job handed to done (and the addresses still in it). */
void resolve__free(struct resolve_job *job);
/* Reactor teardown: orphans running jobs, frees finished ones. */
void resolve__teardown(struct transport_mod *m);

/* Called by transport.c when a connection owned by a listener / connector ends. */
void listener__conn_closed(struct listener *l);
void connector__conn_lost(struct connector *c, transport *t, const protocol_reason *reason);
/* The connector learns its transport before connection_made runs. */
void connector__set_transport(struct connector *c, transport *t);
/* For tests: the index of the resolved address being tried (or about to be tried, from
 * the next iteration, after the one before failed); -1 when not connecting or when the
 * address was numeric. *open = 1 while that attempt's socket is open. */
int connector__attempt(const struct connector *c, int *open);
/* Module teardown helpers. */
void listener__free_all(struct transport_mod *m);
void connector__free_all(struct transport_mod *m);
void connector__shutdown_all(struct transport_mod *m);
void listener__stop_all(struct transport_mod *m);

#endif
