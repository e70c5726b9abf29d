#define _GNU_SOURCE
/* Socket transports: buffered writes, flushing once per callback/iteration, closing,
 * backpressure. docs/protocols.md explains the life of a connection.
 *
 * The one rule that keeps this file simple: the public calls (write, lose, abort,
 * pause...) only change flags and put the connection on the module's pending list. The
 * real work (send, close, connection_lost, free) happens in step(), which runs either
 * right after the connection's own protocol callback returned, or from the module's
 * tick (a call_soon timer, i.e. at the start of the next iteration). So no callback is
 * ever re-entered and a connection is never freed under a caller's feet. */
#include "reactor/transport_internal.h"

#include "reactor/module_internal.h"
#include "reactor/reactor_internal.h"
#include "reactor/tls_internal.h"
#include "reactor/slow_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h> /* isfinite: a macro, no libm needed */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* BSD/macOS: SO_NOSIGPIPE is set on the socket instead */
#endif

static void step(transport *t);
static struct transport_extra *extra(transport *t);

/* The teaching trace (REACTOR_TRACE=1): one line per connection event. */
#define TTRACE(t, ...)                                                              \
    do {                                                                            \
        struct transport_mod *tm_ = t_mod(t);                                       \
        if (tm_ && tm_->r->trace) /* (reactor_internal.h: no call when off) */      \
            reactor__trace(tm_->r, __VA_ARGS__);                                    \
    } while (0)
static void mod_free(void *data);
static void mod_shutdown(reactor *r, void *data);

/* ---- Reasons ------------------------------------------------------------------------ */

static const char *const reason_names[] = {
    [PROTOCOL_DONE] = "done",
    [PROTOCOL_LOST] = "lost",
    [PROTOCOL_ABORTED] = "aborted",
    [PROTOCOL_ERROR] = "error",
    [PROTOCOL_CONNECT_REFUSED] = "connect-refused",
    [PROTOCOL_CONNECT_TIMEOUT] = "connect-timeout",
    [PROTOCOL_CONNECT_UNREACHABLE] = "connect-unreachable",
    [PROTOCOL_CONNECT_DNS] = "connect-dns",
    [PROTOCOL_CONNECT_CANCELLED] = "connect-cancelled",
    [PROTOCOL_CONNECT_FAILED] = "connect-failed",
    [PROTOCOL_TLS_HANDSHAKE] = "tls-handshake",
    [PROTOCOL_TLS_VERIFY] = "tls-verify",
    [PROTOCOL_TLS_TRUNCATED] = "tls-truncated",
    [PROTOCOL_TLS_ERROR] = "tls-error",
};

static const char *const reason_messages[] = {
    [PROTOCOL_DONE] = "connection closed cleanly",
    [PROTOCOL_LOST] = "connection lost",
    [PROTOCOL_ABORTED] = "connection aborted locally",
    [PROTOCOL_ERROR] = "connection closed on error",
    [PROTOCOL_CONNECT_REFUSED] = "connection refused",
    [PROTOCOL_CONNECT_TIMEOUT] = "connection timed out",
    [PROTOCOL_CONNECT_UNREACHABLE] = "destination unreachable",
    [PROTOCOL_CONNECT_DNS] = "host name lookup failed",
    [PROTOCOL_CONNECT_CANCELLED] = "connection attempt cancelled",
    [PROTOCOL_CONNECT_FAILED] = "connection failed",
    [PROTOCOL_TLS_HANDSHAKE] = "TLS handshake failed",
    [PROTOCOL_TLS_VERIFY] = "TLS certificate verification failed",
    [PROTOCOL_TLS_TRUNCATED] = "TLS connection truncated (closed without close_notify)",
    [PROTOCOL_TLS_ERROR] = "TLS error",
};

void transport__reason(protocol_reason *out, protocol_reason_kind kind, int err)
{
    out->kind = kind;
    out->err = err;
    out->gai_err = 0;
    out->message = (unsigned)kind <= PROTOCOL_TLS_ERROR ? reason_messages[kind] : "unknown";
    out->detail = NULL;
}

const char *protocol_reason_name(protocol_reason_kind kind)
{
    return (unsigned)kind <= PROTOCOL_TLS_ERROR ? reason_names[kind] : "unknown";
}

/* ---- Module state ------------------------------------------------------------------- */

struct transport_mod *transport__mod(reactor *r)
{
    struct transport_mod *m = reactor__module_data(r, REACTOR__MOD_TRANSPORT);
    if (m)
        return m;
    m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->r = r;
    m->spare_fd = -1;
    int rc = reactor__set_module_data(r, REACTOR__MOD_TRANSPORT, m, mod_free);
    if (rc < 0) {
        free(m);
        errno = -rc;
        return NULL;
    }
    /* May fail on a reactor that is already shutting down; connections then go at
     * reactor_free. */
    reactor_add_trigger(r, REACTOR_DURING_SHUTDOWN, mod_shutdown, m);
    return m;
}

static struct transport_mod *t_mod(const transport *t)
{
    void *owner = transport__owner(t);
    return owner ? ((struct transport_owner *)owner)->mod : NULL;
}

static void tick(reactor *r, void *data)
{
    (void)r;
    struct transport_mod *m = data;
    m->tick = NULL;
    /* Entries added while we walk are handled in this pass too. */
    for (uint32_t i = 0; i < m->npend; i++) {
        transport *t = m->pend[i];
        if (!t)
            continue;
        m->pend[i] = NULL;
        t->flags &= ~(uint32_t)T_PENDING;
        step(t);
    }
    m->npend = 0;
}

/* Puts t on the pending list; step() runs at the start of the next iteration. */
static void schedule(transport *t)
{
    if (t->flags & (T_PENDING | T_MEMORY))
        return;
    struct transport_mod *m = t_mod(t);
    if (m->npend == m->cappend) {
        uint32_t n = m->cappend ? m->cappend * 2 : 64;
        transport **p = realloc(m->pend, n * sizeof *p);
        if (!p)
            return; /* the connection goes on; its next event retries */
        m->pend = p;
        m->cappend = n;
    }
    m->pend[m->npend++] = t;
    t->flags |= T_PENDING;
    if (!m->tick)
        m->tick = reactor_call_soon(m->r, tick, m);
}

static void unpend(transport *t)
{
    if (!(t->flags & T_PENDING))
        return;
    struct transport_mod *m = t_mod(t);
    for (uint32_t i = 0; i < m->npend; i++)
        if (m->pend[i] == t)
            m->pend[i] = NULL;
    t->flags &= ~(uint32_t)T_PENDING;
}

/* ---- Output buffers ----------------------------------------------------------------- */

static char *buf_get(transport *t, size_t need, uint32_t *cap)
{
    struct transport_mod *m = t_mod(t);
    if (need <= TRANSPORT__OUT_STD) {
        *cap = TRANSPORT__OUT_STD;
        if (m && m->ncache > 0)
            return m->cache[--m->ncache];
        return malloc(TRANSPORT__OUT_STD);
    }
    size_t c = TRANSPORT__OUT_STD;
    while (c < need)
        c *= 2;
    if (c > ((size_t)1 << 31))
        return NULL;
    *cap = (uint32_t)c;
    return malloc(c);
}

static void buf_release(transport *t)
{
    struct transport_mod *m = t_mod(t);
    if (!t->out || (m && t->out == m->scratch))
        ; /* nothing, or the lent scratch buffer: simply given back */
    else if (m && transport__cap(t) == TRANSPORT__OUT_STD && m->ncache < TRANSPORT__OUT_CACHE)
        m->cache[m->ncache++] = t->out;
    else
        free(t->out);
    t->out = NULL;
    t->out_off = t->out_len = 0;
    transport__set_cap(t, 0);
}

static size_t pending(const transport *t) { return (size_t)t->out_len - t->out_off; }

/* Pending output, counting over TLS the plaintext not yet encrypted. */
static size_t out_total(const transport *t)
{
    struct transport_extra *x = transport__x(t);
    return pending(t) + (x && x->tls ? tls__held(x->tls) : 0);
}

/* Room for add more bytes at out_len. */
static int buf_reserve(transport *t, size_t add)
{
    if (!t->out) {
        uint32_t cap;
        if (add > ((size_t)1 << 31))
            return -ENOBUFS;
        char *b = buf_get(t, add, &cap);
        if (!b)
            return -ENOMEM;
        t->out = b;
        transport__set_cap(t, cap);
        return 0;
    }
    if ((size_t)t->out_len + add <= transport__cap(t))
        return 0;
    if (t->out_off) { /* move the unsent bytes to the front first */
        memmove(t->out, t->out + t->out_off, pending(t));
        t->out_len -= t->out_off;
        t->out_off = 0;
        if ((size_t)t->out_len + add <= transport__cap(t))
            return 0;
    }
    size_t want = (size_t)transport__cap(t) * 2;
    while (want < (size_t)t->out_len + add)
        want *= 2;
    if (want > ((size_t)1 << 31))
        return -ENOBUFS;
    char *b = malloc(want);
    if (!b)
        return -ENOMEM;
    uint32_t len = t->out_len; /* out_off is 0 here (moved above) */
    memcpy(b, t->out, len);
    buf_release(t); /* gives a standard buffer back to the cache */
    t->out = b;
    t->out_len = len;
    transport__set_cap(t, (uint32_t)want);
    return 0;
}

/* Ends the loan of the scratch buffer (see do_read) once the flush is done: whatever the
 * kernel did not take moves to a buffer of the connection's own. -ENOMEM if there is
 * none to be had. */
static int scratch_return(transport *t)
{
    size_t n = pending(t);
    const char *rest = t->out + t->out_off;
    t->out = NULL;
    t->out_off = t->out_len = 0;
    transport__set_cap(t, 0);
    if (!n)
        return 0;
    uint32_t cap;
    char *b = buf_get(t, n, &cap);
    if (!b)
        return -ENOMEM;
    memcpy(b, rest, n); /* the scratch is untouched until the next read */
    t->out = b;
    t->out_len = (uint32_t)n;
    transport__set_cap(t, cap);
    return 0;
}

/* ---- Watching ----------------------------------------------------------------------- */

static void on_io(reactor *r, int fd, unsigned events, void *data);

/* Registers exactly the directions this connection needs now. Nothing to wait for means
 * the fd leaves the reactor altogether: epoll reports HUP/ERR even with an empty mask. */
static void sync_watch(transport *t)
{
    /* The common case first, in flag space: watched, reading wanted and registered,
     * writing neither wanted nor registered. */
    if ((t->flags & (T_MEMORY | T_CLOSED | T_PAUSED | T_DISCONNECTING | T_ABORTING |
                     T_READ_EOF | T_WANT_WRITE | T_REG_R | T_REG_W | T_WATCHED)) ==
        (T_REG_R | T_WATCHED))
        return;
    if (t->flags & (T_MEMORY | T_CLOSED))
        return;
    unsigned want = 0;
    if (!(t->flags & (T_PAUSED | T_DISCONNECTING | T_ABORTING | T_READ_EOF)))
        want |= REACTOR_READABLE;
    else if ((t->flags & (T_HAS_X | T_ABORTING | T_READ_EOF)) == T_HAS_X &&
             transport__x(t)->tls && tls__reading_on_close(transport__x(t)->tls))
        want |= REACTOR_READABLE; /* TLS: the peer's close_notify is still to come */
    if (t->flags & T_WANT_WRITE)
        want |= REACTOR_WRITABLE;
    unsigned have = ((t->flags & T_REG_R) ? REACTOR_READABLE : 0) |
                    ((t->flags & T_REG_W) ? REACTOR_WRITABLE : 0);
    if (want == have && (want == 0 || (t->flags & T_WATCHED)))
        return;
    reactor *r = t_mod(t)->r;
    if (want == 0) {
        if (t->flags & T_WATCHED)
            reactor_unwatch(r, t->fd);
        t->flags &= ~(uint32_t)(T_WATCHED | T_REG_R | T_REG_W);
        return;
    }
    int rc;
    if (t->flags & T_WATCHED)
        rc = reactor_watch_events(r, t->fd, want);
    else
        rc = reactor_watch(r, t->fd, want, on_io, t);
    if (rc == 0) {
        t->flags |= T_WATCHED;
        t->flags &= ~(uint32_t)(T_REG_R | T_REG_W);
        if (want & REACTOR_READABLE)
            t->flags |= T_REG_R;
        if (want & REACTOR_WRITABLE)
            t->flags |= T_REG_W;
    }
}

/* ---- Closing ------------------------------------------------------------------------ */

static void set_reason(transport *t, protocol_reason_kind kind, int err)
{
    t->flags = (t->flags & ((1u << T_REASON_SHIFT) - 1)) | ((uint32_t)kind << T_REASON_SHIFT);
    t->fd = err; /* the socket is closed by now: its field keeps the errno */
}

static void stop_idle(transport *t)
{
    struct transport_extra *x = transport__x(t);
    if (x && x->idle) {
        reactor_idle_free(x->idle);
        x->idle = NULL;
    }
}

/* Closes the socket now (the protocol hears of it in step()). rst: SO_LINGER 0. */
static void close_socket(transport *t, protocol_reason_kind kind, int err, int rst)
{
    if (t->flags & T_CLOSED)
        return;
    if (t->flags & T_WATCHED)
        transport__unwatch(t_mod(t), t->fd);
    t->flags &= ~(uint32_t)(T_WATCHED | T_REG_R | T_REG_W | T_WANT_WRITE);
    if (rst) {
        struct linger lg = {1, 0};
        setsockopt(t->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(t->fd);
    t->fd = -1;
    buf_release(t);
    stop_idle(t); /* no timeout for a closed connection */
    t->flags |= T_CLOSED;
    set_reason(t, kind, err);
}

static void stop_producer(transport *t)
{
    struct transport_extra *x = transport__x(t);
    if (x && x->pops) {
        const transport_producer_ops *ops = x->pops;
        void *d = x->pdata;
        x->pops = NULL;
        x->pdata = NULL;
        if (ops->stop_producing)
            ops->stop_producing(d);
    }
}

/* Delivers connection_lost and frees the connection. */
static void finish(transport *t)
{
    struct transport_mod *m = t_mod(t);
    unpend(t);
    if (t->prev)
        t->prev->next = t->next;
    else if (m->conns == t)
        m->conns = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;

    protocol_reason reason;
    int err = t->fd;
    transport__reason(&reason, (protocol_reason_kind)(t->flags >> T_REASON_SHIFT), err);
    if (reason.kind == PROTOCOL_LOST && err == 0 && m->shutting_down)
        reason.message = "connection lost: reactor shutting down";
    struct transport_extra *x = transport__x(t);
    struct tls_conn *tls = x ? x->tls : NULL;
    if (tls)
        tls__reason(tls, &reason); /* its text lives until tls__free below */
    stop_producer(t);
    stop_idle(t);
    protocol *p = t->proto;
    TTRACE(t, "transport event=lost reason=%s err=%d", protocol_reason_name(reason.kind), err);
    t->flags |= T_IN_CB;
    if (p && p->ops && p->ops->connection_lost)
        p->ops->connection_lost(p, &reason); /* may free p */
    void *owner = transport__owner(t);
    int client = (t->flags & T_CLIENT) != 0;
    free(x);
    free(t);
    if (client)
        connector__conn_lost(owner, NULL, &reason);
    else
        listener__conn_closed(owner);
    if (tls)
        tls__free(tls);
}

/* Takes in the result of a send of the pending output: what the kernel took leaves the
 * buffer, and a short or refused send waits for WRITABLE. -1 when the send failed and
 * the socket was closed (the caller delivers the loss). */
static int sent(transport *t, ssize_t w)
{
    if (w < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            t->flags |= T_WANT_WRITE;
            return 0;
        }
        int e = errno;
        if (e == EPIPE) /* after a reset whose error the backend consumed (libkqueue) */
            e = reactor__seen_error(t_mod(t)->r, t->fd);
        close_socket(t, PROTOCOL_LOST, e ? e : EPIPE, 0);
        return -1;
    }
    TTRACE(t, "transport fd=%d send bytes=%zd left=%zu", t->fd, w, pending(t) - (size_t)w);
    t->out_off += (uint32_t)w;
    if (pending(t))
        t->flags |= T_WANT_WRITE;
    return 0;
}

/* Does what the flags ask for: abort, flush, close, half-close, deliver the loss. */
static void step(transport *t)
{
    if (t->flags & T_IN_CB)
        return; /* the callback's caller steps once it returns */
    if (!(t->flags & T_CLOSED) && (t->flags & T_ABORTING))
        close_socket(t, PROTOCOL_ABORTED, 0, 1);
    if (t->flags & T_CLOSED) {
        finish(t);
        return;
    }
    if ((t->flags & T_HAS_X) && transport__x(t)->tls) {
        tls__before_send(t); /* one SSL_write for what was written since the last step */
        if (t->flags & (T_CLOSED | T_ABORTING)) {
            step(t);
            return;
        }
    }
    if (pending(t) && !(t->flags & T_WANT_WRITE)) {
        /* flush now: one send for everything written since the last step */
        size_t n = pending(t);
        if (n > TRANSPORT__SEND_MAX)
            n = TRANSPORT__SEND_MAX;
        ssize_t w;
        do
            w = send(t->fd, t->out + t->out_off, n, MSG_NOSIGNAL);
        while (w < 0 && errno == EINTR);
        if (sent(t, w) < 0) {
            finish(t);
            return;
        }
        if (!pending(t)) {
            if (t->out == t_mod(t)->scratch) { /* the common case: end the loan here */
                t->out = NULL;
                t->out_off = t->out_len = 0;
                transport__set_cap(t, 0);
            } else {
                buf_release(t);
            }
            struct transport_extra *x = transport__x(t);
            if (x && x->pops) {
                if (x->streaming && x->producer_paused) {
                    x->producer_paused = 0;
                    t->flags |= T_IN_CB;
                    if (x->pops->resume_producing)
                        x->pops->resume_producing(x->pdata);
                    t->flags &= ~(uint32_t)T_IN_CB;
                } else if (!x->streaming) {
                    t->flags |= T_IN_CB;
                    if (x->pops->resume_producing)
                        x->pops->resume_producing(x->pdata);
                    t->flags &= ~(uint32_t)T_IN_CB;
                }
                if (pending(t) || (t->flags & (T_CLOSED | T_ABORTING))) {
                    step(t); /* the producer wrote or closed: go again */
                    return;
                }
            }
        } else {
            struct transport_extra *x = transport__x(t);
            if (x && x->pops && x->streaming && x->producer_paused && out_total(t) <= x->low) {
                x->producer_paused = 0;
                t->flags |= T_IN_CB;
                if (x->pops->resume_producing)
                    x->pops->resume_producing(x->pdata);
                t->flags &= ~(uint32_t)T_IN_CB;
            }
        }
    }
    if (t->out && t->out == t_mod(t)->scratch && scratch_return(t) < 0) {
        close_socket(t, PROTOCOL_ERROR, ENOMEM, 1);
        finish(t);
        return;
    }
    if (!pending(t)) {
        t->flags &= ~(uint32_t)T_WANT_WRITE;
        /* lose_connection waits for a registered producer to unregister (Twisted),
         * except after the peer's EOF on a protocol that cannot half-close: that
         * connection is over, the producer just gets stop_producing. */
        int producer = transport__x(t) && transport__x(t)->pops &&
                       !((t->flags & T_READ_EOF) && !t->proto->ops->read_connection_lost);
        if ((t->flags & T_HAS_X) && transport__x(t)->tls) {
            if (tls__drained(t, producer)) /* close_notify to send, or closed */
                step(t);
            else
                sync_watch(t);
            return;
        }
        if ((t->flags & T_DISCONNECTING) && !producer) {
            close_socket(t, PROTOCOL_DONE, 0, 0);
            finish(t);
            return;
        }
        if ((t->flags & T_SHUT_REQ) && !(t->flags & T_SHUT_DONE)) {
            shutdown(t->fd, SHUT_WR);
            t->flags |= T_SHUT_DONE;
        }
        if ((t->flags & T_SHUT_DONE) && (t->flags & T_READ_EOF)) {
            /* both directions are closed: the connection is over (Twisted) */
            close_socket(t, PROTOCOL_DONE, 0, 0);
            finish(t);
            return;
        }
    }
    sync_watch(t);
}

/* ---- Reading ------------------------------------------------------------------------ */

/* A callback of the protocol returned non-zero. Twisted: an exception in dataReceived
 * closes the connection with it as the reason and drops the output not yet sent. */
static void read_cb_failed(transport *t, int rc)
{
    int err = rc < 0 && rc > -4096 ? -rc : 0;
    if (t->flags & T_CLOSED)
        set_reason(t, PROTOCOL_ERROR, err);
    else
        close_socket(t, PROTOCOL_ERROR, err, 1);
}

/* recv returned 0 (the peer's FIN) or failed. */
static void read_ended(transport *t, ssize_t n)
{
    if (n == 0) {
        /* Where the backend consumed the socket's error (libkqueue), a reset reads as
         * this EOF: ask it. Nothing to ask on the other backends (no syscall). */
        int e = reactor__seen_error(t_mod(t)->r, t->fd);
        if (e) {
            close_socket(t, PROTOCOL_LOST, e, 0);
            return;
        }
        TTRACE(t, "transport fd=%d event=eof", t->fd);
        if ((t->flags & T_HAS_X) && transport__x(t)->tls) {
            tls__eof(t);
            return;
        }
        t->flags |= T_READ_EOF;
        sync_watch(t); /* no more read interest: EOF stays readable forever */
        if (t->proto->ops->read_connection_lost) {
            t->flags |= T_IN_CB;
            t->proto->ops->read_connection_lost(t->proto);
            t->flags &= ~(uint32_t)T_IN_CB;
        } else {
            t->flags |= T_DISCONNECTING; /* flush what is pending, then close cleanly */
        }
        return;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return;
    close_socket(t, PROTOCOL_LOST, errno, 0);
}

static void do_read(transport *t)
{
    struct transport_mod *m = t_mod(t);
    ssize_t n;
    do
        n = recv(t->fd, m->rbuf, TRANSPORT__READ_MAX, 0);
    while (n < 0 && errno == EINTR);
    if (n <= 0) {
        read_ended(t, n);
        return;
    }
    struct transport_extra *x = transport__x(t);
    if (x && x->idle) /* (only here: a connection with extras never takes read_plain) */
        reactor_idle_touch(x->idle);
    /* The answers to this read are written into the loop's scratch buffer, lent as this
     * connection's output buffer until step() has sent them (all of them, in the common
     * case: then no buffer of its own is ever taken, which saves a cache round trip per
     * read). Only a connection with nothing pending borrows it, and only one at a time:
     * callbacks do not nest reads. */
    if (!t->out && m->scratch) {
        t->out = m->scratch;
        transport__set_cap(t, TRANSPORT__OUT_STD);
    }
    if ((t->flags & T_HAS_X) && transport__x(t)->tls) {
        tls__received(t, m->rbuf, (size_t)n); /* ciphertext: the layer delivers */
        return;
    }
    t->flags |= T_IN_CB;
    int rc = t->proto->ops->data_received(t->proto, m->rbuf, (size_t)n);
    t->flags &= ~(uint32_t)T_IN_CB;
    if (rc != 0)
        read_cb_failed(t, rc);
}

int transport__deliver(transport *t, const char *data, size_t len)
{
    t->flags |= T_IN_CB;
    int rc = t->proto->ops->data_received(t->proto, data, len);
    t->flags &= ~(uint32_t)T_IN_CB;
    if (rc != 0)
        read_cb_failed(t, rc);
    return rc;
}

/* The flags of a connection in the common state: open, watched for reading only, nothing
 * waiting to be sent, no producer or limits, no close or half-close asked for. */
#define PLAIN_MASK                                                                          \
    (T_MEMORY | T_PAUSED | T_DISCONNECTING | T_ABORTING | T_SHUT_REQ | T_SHUT_DONE |         \
     T_READ_EOF | T_CLOSED | T_IN_CB | T_WANT_WRITE | T_REG_R | T_REG_W | T_WATCHED | T_HAS_X)
#define PLAIN (T_REG_R | T_WATCHED)

/* do_read() + step() for a plain connection (the request/answer case: a read, the
 * protocol's answers, one send), in one straight line. Whatever is not plain on the way
 * (the peer closed, the callback failed or closed, the send fell short) is handed to
 * the general code in the state it expects, so the result is the same. `mask` is
 * PLAIN_MASK, or PLAIN_MASK without T_HAS_X for a connection whose only extra setting is
 * an idle timeout (on_io); inlined into both call sites, so each test is a constant. */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((always_inline))
#endif
static inline void read_plain(transport *t, struct transport_mod *m, uint32_t mask)
{
    ssize_t n;
    do
        n = recv(t->fd, m->rbuf, TRANSPORT__READ_MAX, 0);
    while (n < 0 && errno == EINTR);
    if (n <= 0) {
        read_ended(t, n);
        step(t);
        return;
    }
    t->out = m->scratch; /* lent, as in do_read */
    transport__set_cap(t, TRANSPORT__OUT_STD);
    t->flags |= T_IN_CB;
    int rc = t->proto->ops->data_received(t->proto, m->rbuf, (size_t)n);
    t->flags &= ~(uint32_t)T_IN_CB;
    if (rc == 0 && (t->flags & mask) == PLAIN && t->out == m->scratch) {
        ssize_t len = t->out_len, w = 0; /* out_off is 0: nothing was sent yet */
        if (len > 0) {
            do
                w = send(t->fd, m->scratch, (size_t)len, MSG_NOSIGNAL);
            while (w < 0 && errno == EINTR);
            if (w != len) { /* short or refused: the general code takes it from here */
                if (sent(t, w) < 0)
                    finish(t);
                else
                    step(t);
                return;
            }
            if (m->r->trace)
                reactor__trace(m->r, "transport fd=%d send bytes=%zd left=0", t->fd, w);
        }
        t->out = NULL; /* all sent: the loan ends, and the flags are still plain */
        t->out_off = t->out_len = 0;
        transport__set_cap(t, 0);
        return;
    }
    if (rc != 0)
        read_cb_failed(t, rc);
    step(t);
}

static void on_io(reactor *r, int fd, unsigned events, void *data)
{
    (void)fd;
    transport *t = data;
    if ((t->flags & PLAIN_MASK) == PLAIN && (events & REACTOR_READABLE) && !t->out) {
        struct transport_mod *m = ((struct transport_owner *)t->link)->mod; /* no T_HAS_X */
        if (m->scratch) {
            read_plain(t, m, PLAIN_MASK);
            return;
        }
    } else if ((t->flags & PLAIN_MASK) == (PLAIN | T_HAS_X) && (events & REACTOR_READABLE) &&
               !t->out) {
        /* Plain but for an idle timeout: the same straight line, plus the touch. */
        struct transport_extra *x = t->link;
        struct transport_mod *m = ((struct transport_owner *)x->owner)->mod;
        if (x->idle && !x->tls && !x->pops && x->high == TRANSPORT_DEFAULT_HIGH_WATER &&
            x->low == 0 && x->cap == TRANSPORT_DEFAULT_CAP && m->scratch) {
            reactor_idle_touch(x->idle);
            read_plain(t, m, PLAIN_MASK & ~(uint32_t)T_HAS_X);
            return;
        }
    }
    if (t->flags & T_CLOSED)
        return;
    /* Read before write (the order every backend keeps). An error/hang-up goes to the
     * read side when reading: recv tells what happened. */
    if ((t->flags & T_REG_R) && (events & (REACTOR_READABLE | REACTOR_ERROR)))
        do_read(t);
    else if ((events & REACTOR_ERROR) && !(t->flags & T_REG_W)) {
        int err = reactor__sock_error(r, t->fd);
        close_socket(t, PROTOCOL_LOST, err ? err : ECONNRESET, 0);
    }
    if (!(t->flags & T_CLOSED) && (t->flags & T_WANT_WRITE) &&
        (events & (REACTOR_WRITABLE | REACTOR_ERROR)))
        t->flags &= ~(uint32_t)T_WANT_WRITE; /* step() sends again */
    step(t);
}

/* ---- Creating ----------------------------------------------------------------------- */

transport *transport__alloc(struct transport_mod *m)
{
    if (!m->rbuf) {
        m->rbuf = malloc(TRANSPORT__READ_MAX);
        if (!m->rbuf)
            return NULL;
    }
    if (!m->scratch)
        m->scratch = malloc(TRANSPORT__OUT_STD); /* optional: NULL only costs speed */
    return calloc(1, sizeof(transport));
}

transport *transport__start(struct transport_mod *m, transport *t, void *owner, int fd,
                            protocol *p, unsigned flags)
{
    t->link = owner;
    t->proto = p;
    t->fd = fd;
    t->flags = flags;
    t->next = m->conns;
    if (m->conns)
        m->conns->prev = t;
    m->conns = t;
    p->transport = t;
    if (flags & T_CLIENT)
        connector__set_transport(owner, t);
    struct transport_owner *o = owner;
    if (o->tls && tls__attach(t, o->tls, (flags & T_CLIENT) != 0, o->tls_host) < 0)
        t->flags |= T_ABORTING; /* no memory for the TLS layer: closed at the first step */
    sync_watch(t);
    if (!(t->flags & T_WATCHED)) {
        /* cannot watch it (select and fd >= FD_SETSIZE...): it is lost at once */
        close_socket(t, PROTOCOL_LOST, ERANGE, 0);
    }
    TTRACE(t, "transport fd=%d event=made%s", fd, (flags & T_CLIENT) ? " side=client" : "");
    t->flags |= T_MADE | T_IN_CB;
    if (p->ops->connection_made)
        p->ops->connection_made(p);
    t->flags &= ~(uint32_t)T_IN_CB;
    /* Never step here: the caller still uses t. What connection_made asked for (a
     * greeting, a close) happens at the start of the next iteration. */
    if (pending(t) || (t->flags & (T_CLOSED | T_ABORTING | T_DISCONNECTING | T_SHUT_REQ)) ||
        o->tls) /* TLS: the client's hello, the plaintext written */
        schedule(t);
    return t;
}

transport *transport__new_memory(protocol *p)
{
    transport *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->fd = -1;
    t->flags = T_MEMORY;
    t->proto = p;
    return t;
}

void transport__free_memory(transport *t)
{
    if (!t)
        return;
    free(t->out);
    free(transport__x(t));
    free(t);
}

void transport__memory_lost(transport *t, protocol_reason_kind kind, int err)
{
    if (t->flags & T_LOST_CALLED)
        return;
    t->flags |= T_LOST_CALLED | T_CLOSED;
    set_reason(t, kind, err);
    protocol_reason reason;
    transport__reason(&reason, kind, err);
    stop_producer(t);
    protocol *p = t->proto;
    if (p && p->ops && p->ops->connection_lost)
        p->ops->connection_lost(p, &reason);
}

/* ---- For the TLS layer ---------------------------------------------------------------- */

void transport__close(transport *t, protocol_reason_kind kind, int err, int rst)
{
    close_socket(t, kind, err, rst);
}

int transport__append(transport *t, const void *data, size_t len)
{
    int rc = buf_reserve(t, len);
    if (rc < 0)
        return rc;
    memcpy(t->out + t->out_len, data, len);
    t->out_len += (uint32_t)len;
    return 0;
}

void transport__schedule(transport *t) { schedule(t); }
void transport__watch(transport *t) { sync_watch(t); }
struct transport_mod *transport__mod_of(const transport *t) { return t_mod(t); }
struct transport_extra *transport__extra(transport *t) { return extra(t); }

void transport__try_send(transport *t)
{
    if (!(t->flags & T_CLOSED) && pending(t))
        (void)!send(t->fd, t->out + t->out_off, pending(t), MSG_NOSIGNAL);
}

/* ---- Public: writing ---------------------------------------------------------------- */

static int gone(const transport *t)
{
    return (t->flags & (T_CLOSED | T_ABORTING)) != 0;
}

/* Writes are dropped once the connection is gone, aborting, or its write side was shut
 * down (Twisted: after loseWriteConnection has taken effect). */
static int write_dropped(const transport *t)
{
    return (t->flags & (T_CLOSED | T_ABORTING | T_SHUT_DONE)) != 0;
}

static int after_write(transport *t)
{
    struct transport_extra *x = transport__x(t);
    if (x && x->pops && x->streaming && !x->producer_paused && out_total(t) > x->high) {
        x->producer_paused = 1;
        if (x->pops->pause_producing)
            x->pops->pause_producing(x->pdata);
    }
    if (!(t->flags & (T_IN_CB | T_WANT_WRITE)))
        schedule(t);
    return 0;
}

static int over_cap(transport *t, size_t add)
{
    size_t cap = transport__x(t) ? transport__x(t)->cap : TRANSPORT_DEFAULT_CAP;
    if (out_total(t) + add <= cap || (t->flags & T_MEMORY))
        return 0;
    if (!(t->flags & T_CLOSED)) {
        t->flags |= T_ABORTING;
        close_socket(t, PROTOCOL_ERROR, ENOBUFS, 1);
        schedule(t);
    }
    return -ENOBUFS;
}

/* The common case of the second and later writes of one batch: the buffer exists, has
 * room, and no limits were set (the default cap is far away). */
static inline int room_fast(const transport *t, size_t add)
{
    return t->out && !(t->flags & T_HAS_X) && (size_t)t->out_len + add <= transport__cap(t) &&
           pending(t) + add <= TRANSPORT_DEFAULT_CAP;
}

static int make_room_slow(transport *t, size_t add)
{
    int rc = over_cap(t, add);
    return rc < 0 ? rc : buf_reserve(t, add);
}

/* room_fast inline, the rest out of line: the common write (an answer into the buffer
 * of the connection being read) then costs a few compares and the copy. */
static inline int make_room(transport *t, size_t add)
{
    return room_fast(t, add) ? 0 : make_room_slow(t, add);
}

/* Over TLS the plaintext waits in the layer until the step (one SSL_write). */
static int write_tls(transport *t, const struct iovec *iov, int iovcnt, size_t total)
{
    int rc = over_cap(t, total);
    for (int i = 0; rc == 0 && i < iovcnt; i++)
        rc = tls__write(transport__x(t)->tls, iov[i].iov_base, iov[i].iov_len);
    return rc < 0 ? rc : after_write(t);
}

int transport_write(transport *t, const void *data, size_t len)
{
    if (!t || (!data && len))
        return -EINVAL;
    if (write_dropped(t) || len == 0)
        return 0;
    if ((t->flags & T_HAS_X) && transport__x(t)->tls) {
        /* The common TLS case inline: room in the plaintext buffer (usually the
         * reactor's shared one, lent while this connection's input is handled), no
         * producer, far from the cap. write_tls does the same with every check. */
        struct transport_extra *x = transport__x(t);
        struct tls__plain *pl = tls__plain(x->tls);
        if (pl->len + len <= pl->cap && !x->pops && pending(t) + pl->len + len <= x->cap) {
            transport__copy_in(pl->buf + pl->len, data, len);
            pl->len += len;
            if (!(t->flags & (T_IN_CB | T_WANT_WRITE)))
                schedule(t);
            return 0;
        }
        struct iovec one = {(void *)data, len};
        return write_tls(t, &one, 1, len);
    }
    int rc = make_room(t, len);
    if (rc < 0)
        return rc;
    transport__copy_in(t->out + t->out_len, data, len);
    t->out_len += (uint32_t)len;
    /* inside this connection's callback with no producer: step() flushes on return */
    if ((t->flags & (T_IN_CB | T_HAS_X)) == T_IN_CB)
        return 0;
    return after_write(t);
}

int transport_writev(transport *t, const struct iovec *iov, int iovcnt)
{
    if (!t || iovcnt < 0 || (!iov && iovcnt))
        return -EINVAL;
    if (write_dropped(t))
        return 0;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (total == 0)
        return 0;
    if ((t->flags & T_HAS_X) && transport__x(t)->tls)
        return write_tls(t, iov, iovcnt, total);
    int rc = make_room(t, total);
    if (rc < 0)
        return rc;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len)
            memcpy(t->out + t->out_len, iov[i].iov_base, iov[i].iov_len);
        t->out_len += (uint32_t)iov[i].iov_len;
    }
    return after_write(t);
}

size_t transport_pending(const transport *t) { return t ? out_total(t) : 0; }

/* ---- Public: closing ---------------------------------------------------------------- */

int transport_lose_connection(transport *t)
{
    if (!t)
        return -EINVAL;
    if (gone(t) || (t->flags & T_DISCONNECTING))
        return 0;
    t->flags |= T_DISCONNECTING;
    if (t->flags & T_MEMORY)
        return 0;
    sync_watch(t); /* stop reading at once */
    if (!(t->flags & T_IN_CB))
        schedule(t);
    return 0;
}

int transport_abort_connection(transport *t)
{
    if (!t)
        return -EINVAL;
    if (gone(t))
        return 0;
    t->flags |= T_ABORTING;
    if (t->flags & T_MEMORY) {
        free(t->out);
        t->out = NULL;
        t->out_off = t->out_len = 0;
        transport__set_cap(t, 0);
        return 0;
    }
    buf_release(t);
    t->flags &= ~(uint32_t)T_WANT_WRITE;
    sync_watch(t); /* no more events for it */
    if (!(t->flags & T_IN_CB))
        schedule(t);
    return 0;
}

int transport_lose_write_connection(transport *t)
{
    if (!t)
        return -EINVAL;
    if (gone(t) || (t->flags & T_SHUT_REQ))
        return 0;
    t->flags |= T_SHUT_REQ;
    if (!(t->flags & (T_IN_CB | T_MEMORY)))
        schedule(t);
    return 0;
}

int transport_disconnecting(const transport *t)
{
    return !t || (t->flags & (T_DISCONNECTING | T_ABORTING | T_CLOSED)) != 0;
}

/* ---- Public: flow control ----------------------------------------------------------- */

int transport_pause_producing(transport *t)
{
    if (!t)
        return -EINVAL;
    t->flags |= T_PAUSED;
    sync_watch(t);
    return 0;
}

int transport_resume_producing(transport *t)
{
    if (!t)
        return -EINVAL;
    if (!(t->flags & T_PAUSED))
        return 0;
    t->flags &= ~(uint32_t)T_PAUSED;
    sync_watch(t);
    if ((t->flags & T_HAS_X) && transport__x(t)->tls && !(t->flags & T_IN_CB))
        schedule(t); /* TLS: input decrypted or kept while paused goes on at the step */
    return 0;
}

int transport_paused(const transport *t) { return t && (t->flags & T_PAUSED) != 0; }

static struct transport_extra *extra(transport *t)
{
    struct transport_extra *x = transport__x(t);
    if (!x) {
        x = calloc(1, sizeof *x);
        if (!x)
            return NULL;
        x->owner = t->link;
        x->high = TRANSPORT_DEFAULT_HIGH_WATER;
        x->low = 0;
        x->cap = TRANSPORT_DEFAULT_CAP;
        t->link = x;
        t->flags |= T_HAS_X;
    }
    return x;
}

int transport_register_producer(transport *t, const transport_producer_ops *ops, void *data,
                                int streaming)
{
    if (!t || !ops)
        return -EINVAL;
    if (transport__x(t) && transport__x(t)->pops)
        return -EBUSY;
    if (t->flags & (T_CLOSED | T_ABORTING | T_LOST_CALLED)) {
        if (ops->stop_producing)
            ops->stop_producing(data);
        return 0;
    }
    struct transport_extra *x = extra(t);
    if (!x)
        return -ENOMEM;
    x->pops = ops;
    x->pdata = data;
    x->streaming = streaming != 0;
    x->producer_paused = 0;
    if (!streaming && ops->resume_producing)
        ops->resume_producing(data);
    return 0;
}

int transport_unregister_producer(transport *t)
{
    if (!t)
        return -EINVAL;
    struct transport_extra *x = transport__x(t);
    if (!x || !x->pops)
        return 0;
    x->pops = NULL;
    x->pdata = NULL;
    x->producer_paused = 0;
    if ((t->flags & T_DISCONNECTING) && !(t->flags & (T_IN_CB | T_MEMORY)))
        schedule(t); /* a pending lose_connection may go ahead now */
    return 0;
}

int transport_set_write_limits(transport *t, size_t high, size_t low, size_t cap)
{
    if (!t)
        return -EINVAL;
    if (cap == 0)
        cap = TRANSPORT_DEFAULT_CAP;
    if (high == 0)
        high = TRANSPORT_DEFAULT_HIGH_WATER;
    if (low > high || high > cap || cap > UINT32_MAX)
        return -EINVAL;
    struct transport_extra *x = extra(t);
    if (!x)
        return -ENOMEM;
    x->high = (uint32_t)high;
    x->low = (uint32_t)low;
    x->cap = (uint32_t)cap;
    return 0;
}

/* The idle timeout expired: the protocol decides, by default the connection closes. */
static void idle_expired(reactor *r, void *data)
{
    (void)r;
    transport *t = data;
    protocol *p = t->proto;
    TTRACE(t, "transport fd=%d event=timeout", t->fd);
    if (!p || !p->ops || !p->ops->timeout_connection) {
        transport_lose_connection(t);
        return;
    }
    t->flags |= T_IN_CB;
    p->ops->timeout_connection(p);
    t->flags &= ~(uint32_t)T_IN_CB;
    step(t); /* what the callback asked for: a write, a close */
}

int transport_set_timeout(transport *t, double seconds)
{
    if (!t || !(seconds >= 0) || !isfinite(seconds))
        return -EINVAL;
    if (t->flags & T_MEMORY)
        return -ENOTSUP;
    if (gone(t) || (t->flags & T_DISCONNECTING))
        return -ENOTCONN;
    struct transport_extra *x = transport__x(t);
    if (seconds == 0) {
        if (x && x->idle)
            reactor_idle_set(x->idle, 0); /* off; the struct is kept for a later set */
        return 0;
    }
    if (!(x = extra(t)))
        return -ENOMEM;
    if (x->idle)
        return reactor_idle_set(x->idle, seconds);
    x->idle = reactor_idle_new(t_mod(t)->r, seconds, idle_expired, t);
    return x->idle ? 0 : -ENOMEM;
}

/* ---- Public: socket details --------------------------------------------------------- */

int transport_peer_address(const transport *t, struct sockaddr *addr, socklen_t *len)
{
    if (!t || !addr || !len)
        return -EINVAL;
    if (transport__sock(t) < 0)
        return -ENOTCONN;
    return getpeername(t->fd, addr, len) == 0 ? 0 : -errno;
}

int transport_host_address(const transport *t, struct sockaddr *addr, socklen_t *len)
{
    if (!t || !addr || !len)
        return -EINVAL;
    if (transport__sock(t) < 0)
        return -ENOTCONN;
    return getsockname(t->fd, addr, len) == 0 ? 0 : -errno;
}

static int tcp_opt(transport *t, int level, int name, int on)
{
    if (!t)
        return -EINVAL;
    if (transport__sock(t) < 0)
        return -ENOTCONN;
    if (t->flags & T_UNIX)
        return -ENOTSUP;
    int v = on != 0;
    return setsockopt(t->fd, level, name, &v, sizeof v) == 0 ? 0 : -errno;
}

int transport_set_nodelay(transport *t, int on) { return tcp_opt(t, IPPROTO_TCP, TCP_NODELAY, on); }
int transport_set_keepalive(transport *t, int on) { return tcp_opt(t, SOL_SOCKET, SO_KEEPALIVE, on); }
int transport_fd(const transport *t) { return t ? transport__sock(t) : -1; }
protocol *transport_protocol(const transport *t) { return t ? t->proto : NULL; }

void transport__set_protocol(transport *t, protocol *p)
{
    t->proto = p;
    p->transport = t;
}
reactor *transport_reactor(const transport *t)
{
    struct transport_mod *m = t ? t_mod(t) : NULL;
    return m ? m->r : NULL;
}

/* ---- Shutdown and teardown ---------------------------------------------------------- */

/* Closes every connection without flushing (Twisted's disconnectAll). */
static void close_all(struct transport_mod *m)
{
    while (m->conns) {
        transport *t = m->conns;
        t->flags &= ~(uint32_t)T_IN_CB;
        if (!(t->flags & T_CLOSED))
            close_socket(t, PROTOCOL_LOST, 0, 0);
        finish(t);
    }
}

static void mod_shutdown(reactor *r, void *data)
{
    (void)r;
    struct transport_mod *m = data;
    m->shutting_down = 1;
    listener__stop_all(m);
    connector__shutdown_all(m);
    close_all(m);
}

static void mod_free(void *data)
{
    struct transport_mod *m = data;
    m->shutting_down = 1;
    m->freeing = 1;
    m->tick = NULL; /* the reactor frees its timers itself */
    listener__stop_all(m);
    connector__shutdown_all(m);
    close_all(m);
    connector__free_all(m);
    listener__free_all(m);
    for (int i = 0; i < m->ncache; i++)
        free(m->cache[i]);
    if (m->spare_fd >= 0)
        close(m->spare_fd);
    free(m->uses);
    free(m->pend);
    free(m->rbuf);
    free(m->scratch);
    free(m->tlsbuf);
    free(m->tlsplain);
    free(m);
}

/* The slow-callback detector's context for a transport's fd: the protocol's
 * data_received, the code a read runs. */
void (*reactor__transport_slow_fn(reactor_io_fn fn, void *data))(void)
{
    if (fn != on_io || !data)
        return NULL;
    const transport *t = data;
    if (!t->proto || !t->proto->ops)
        return NULL;
    return (void (*)(void))t->proto->ops->data_received;
}
