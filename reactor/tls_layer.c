/* The TLS layer of one connection: OpenSSL between the transport and the protocol.
 *
 * OpenSSL never sees the socket. Its BIO is ours and holds no buffer: reading, it takes
 * the ciphertext the transport just received (or what is kept of it while the protocol
 * is paused); writing, it appends records to the transport's output buffer, which the
 * transport sends as it sends plaintext. The protocol's writes wait here as plaintext
 * until the transport's next step, where one SSL_write encrypts all of them.
 *
 *   socket -> transport (recv) -> bio_read -> SSL_read -> data_received
 *   transport_write -> c->pl -> SSL_write (at the step) -> bio_write -> t->out -> send
 *
 * Every OpenSSL call starts with an empty error queue (clear_errors), so one
 * connection's error never shows up as another's. */
#include "reactor/tls_internal.h"

#include "reactor/tls_context_internal.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    TL_CLIENT = 1u << 0,
    TL_STARTED = 1u << 1,    /* the client's hello was asked for */
    TL_HS_DONE = 1u << 2,    /* the handshake finished */
    TL_SENT_CLOSE = 1u << 3, /* our close_notify is written */
    TL_GOT_CLOSE = 1u << 4,  /* the peer's close_notify arrived */
    TL_EOF = 1u << 5,        /* the peer's FIN: the BIO reads end there */
};

struct tls_conn {
    struct tls__plain pl; /* first: transport_write appends to it (tls_internal.h) */
    transport *t;
    SSL *ssl;
    tls_context *ctx; /* a reference */
    struct transport_mod *mod;
    const char *in; /* ciphertext the BIO reads from, in_len bytes */
    size_t in_len;
    char *kept; /* owned copy of ciphertext not consumed yet (a paused protocol) */
    size_t kept_len;
    reactor_timer *close_timer; /* lose_connection's wait for the peer's close_notify */
    reactor_timer *hs_timer;    /* the handshake's time limit, until it is done */
    char *detail;               /* OpenSSL's reason for the end (owned), or NULL */
    const char *message;        /* replaces the reason's message, or NULL */
    unsigned state;
};

/* Empties OpenSSL's error queue (of this thread) before a call, so that SSL_get_error()
 * sees only that call's errors; after a failure, once its reason is taken. Looking first:
 * in OpenSSL 3 ERR_clear_error() resets all 16 slots (~840 instructions with its
 * CRYPTO_free calls), ERR_peek_error() finds the thread's queue and reads two indexes
 * (~200), and the queue is almost always empty. Four unconditional clears per request
 * were 3,350 instructions at 1 connection x 1 request (docs/benchmarks-tls.md). */
static inline void clear_errors(void)
{
    if (ERR_peek_error())
        ERR_clear_error();
}

/* ---- The BIO: memory in, the transport's buffer out ------------------------------------ */

static int bio_write(BIO *b, const char *data, int len)
{
    struct tls_conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    if (c->t->flags & (T_CLOSED | T_ABORTING))
        return len; /* nothing more goes out: drop it */
    return transport__append(c->t, data, (size_t)len) < 0 ? -1 : len;
}

static int bio_read(BIO *b, char *out, int len)
{
    struct tls_conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    if (c->in_len == 0) {
        if (c->state & TL_EOF)
            return 0; /* the peer's FIN: OpenSSL reports an unexpected EOF */
        BIO_set_retry_read(b);
        return -1;
    }
    size_t n = (size_t)len < c->in_len ? (size_t)len : c->in_len;
    memcpy(out, c->in, n);
    c->in += n;
    c->in_len -= n;
    return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    struct tls_conn *c = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_PENDING:
        return (long)c->in_len;
    case BIO_CTRL_EOF:
        return (c->state & TL_EOF) && c->in_len == 0;
    default:
        return 0;
    }
}

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static void bio_method_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "twistc");
    if (m && BIO_meth_set_write(m, bio_write) && BIO_meth_set_read(m, bio_read) &&
        BIO_meth_set_ctrl(m, bio_ctrl))
        bio_method = m;
}

/* ---- Attaching and freeing ------------------------------------------------------------- */

static int is_ip(const char *host)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static void handshake_timeout(reactor *r, void *data);

int tls__attach(transport *t, tls_context *ctx, int client, const char *host)
{
    pthread_once(&bio_once, bio_method_init);
    struct transport_mod *m = transport__mod_of(t);
    if (!bio_method || !m)
        return -ENOMEM;
    if (!m->tlsbuf && !(m->tlsbuf = malloc(TRANSPORT__READ_MAX)))
        return -ENOMEM;
    struct transport_extra *x = transport__extra(t);
    if (!x)
        return -ENOMEM;
    struct tls_conn *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->t = t;
    c->mod = m;
    clear_errors();
    c->ssl = SSL_new(ctx->ssl);
    BIO *b = c->ssl ? BIO_new(bio_method) : NULL;
    if (!b) {
        SSL_free(c->ssl);
        free(c);
        clear_errors();
        return -ENOMEM;
    }
    BIO_set_data(b, c);
    BIO_set_init(b, 1);
    SSL_set_bio(c->ssl, b, b); /* one BIO both ways: the SSL owns it */
    if (client) {
        c->state |= TL_CLIENT;
        SSL_set_connect_state(c->ssl);
        if (host && *host) {
            int ip = is_ip(host);
            if (!ip)
                SSL_set_tlsext_host_name(c->ssl, host); /* SNI: names only */
            if (ctx->verify != TLS_VERIFY_NONE) {
                if (ip)
                    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), host);
                else
                    SSL_set1_host(c->ssl, host);
            }
        }
    } else {
        SSL_set_accept_state(c->ssl);
    }
    clear_errors();
    if (ctx->handshake_timeout > 0 &&
        !(c->hs_timer = reactor_call_later(m->r, ctx->handshake_timeout, handshake_timeout, c))) {
        SSL_free(c->ssl);
        free(c);
        return -ENOMEM;
    }
    c->ctx = tls_context_ref(ctx);
    x->tls = c;
    /* No Nagle over TLS: each step already gathers everything written into one record
     * and one send, so Nagle gains nothing, and it costs a TLS 1.3 server 40 ms per new
     * connection: the session tickets go out right after the handshake, the peer delays
     * its ACK of them (it has nothing to send), and the answer to its first request then
     * waits for that ACK (docs/benchmarks-tls.md). transport_set_nodelay(t, 0) undoes it. */
    if (!(t->flags & T_UNIX)) {
        int one = 1;
        setsockopt(t->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return 0;
}

void tls__free(struct tls_conn *c)
{
    if (!c)
        return;
    if (c->close_timer)
        transport__cancel(c->mod, c->close_timer);
    if (c->hs_timer)
        transport__cancel(c->mod, c->hs_timer);
    SSL_free(c->ssl);
    tls_context_unref(c->ctx);
    free(c->kept);
    if (c->pl.buf && c->pl.buf == c->mod->tlsplain)
        c->mod->tlsplain_user = NULL; /* the loan ends with the connection */
    else
        free(c->pl.buf);
    free(c->detail);
    free(c);
}

/* ---- The plaintext buffer ------------------------------------------------------------ *
 * What the protocol writes waits in c->pl until the step's one SSL_write. A connection
 * without a buffer of its own borrows the reactor's shared one (TRANSPORT__OUT_STD, a
 * record's worth) when no other connection holds it: when its input arrives (the answers
 * are written during that data_received), or at its first write. The loan ends at the
 * connection's next step (tls__before_send), where what SSL_write did not take (the
 * handshake is not over yet) moves to a buffer of its own, or at tls__free. So answering
 * a request costs no malloc, many small answers are appended inline by transport_write,
 * and an idle connection holds no plaintext buffer. */

static int lent(const struct tls_conn *c)
{
    return c->pl.buf && c->pl.buf == c->mod->tlsplain;
}

static void borrow(struct tls_conn *c)
{
    struct transport_mod *m = c->mod;
    if (c->pl.buf || m->tlsplain_user)
        return;
    if (!m->tlsplain && !(m->tlsplain = malloc(TRANSPORT__OUT_STD)))
        return; /* optional: the connection allocates its own */
    c->pl.buf = m->tlsplain;
    c->pl.cap = TRANSPORT__OUT_STD;
    m->tlsplain_user = c;
}

/* Ends c's loan; the len bytes kept move to a buffer of its own with room for need more.
 * -ENOMEM (the loan has ended, the bytes are lost). */
static int give_back(struct tls_conn *c, size_t need)
{
    const char *shared = c->pl.buf;
    c->mod->tlsplain_user = NULL;
    c->pl.buf = NULL;
    c->pl.cap = 0;
    if (!c->pl.len && !need)
        return 0;
    size_t cap = 4096;
    while (cap < c->pl.len + need)
        cap *= 2;
    char *b = malloc(cap);
    if (!b) {
        c->pl.len = 0;
        return -ENOMEM;
    }
    memcpy(b, shared, c->pl.len);
    c->pl.buf = b;
    c->pl.cap = cap;
    return 0;
}

int tls__write(struct tls_conn *c, const void *data, size_t len)
{
    if (!c->pl.buf && !(c->t->flags & T_WANT_WRITE))
        borrow(c); /* (a full socket: no step is scheduled to end the loan soon) */
    if (c->pl.len + len > c->pl.cap) {
        if (lent(c)) {
            if (give_back(c, len) < 0)
                return -ENOMEM;
        } else {
            size_t cap = c->pl.cap ? c->pl.cap : 4096;
            while (cap < c->pl.len + len)
                cap *= 2;
            char *p = realloc(c->pl.buf, cap);
            if (!p)
                return -ENOMEM;
            c->pl.buf = p;
            c->pl.cap = cap;
        }
    }
    memcpy(c->pl.buf + c->pl.len, data, len);
    c->pl.len += len;
    return 0;
}

size_t tls__held(const struct tls_conn *c) { return c->pl.len; }

/* ---- Ending -------------------------------------------------------------------------- */

static void set_detail(struct tls_conn *c, const char *text)
{
    if (!c->detail && text)
        c->detail = strdup(text);
}

/* The connection ends on a TLS failure: the alert OpenSSL wrote goes out if the socket
 * takes it at once, then the socket closes. */
static void fail(struct tls_conn *c, protocol_reason_kind kind, int err, const char *detail)
{
    set_detail(c, detail);
    ERR_clear_error();
    transport__try_send(c->t);
    transport__close(c->t, kind, err, 0);
}

/* What an SSL call's failure means, taken before anything else touches the queue.
 * Returns 0 for "wait for more input", else fills kind/detail. */
static int classify(struct tls_conn *c, int ret, protocol_reason_kind *kind, int *err,
                    char *detail, size_t n)
{
    int e = SSL_get_error(c->ssl, ret);
    *err = 0;
    detail[0] = '\0';
    switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: /* our BIO never refuses a write; as WANT_READ anyway */
        return 0;
    case SSL_ERROR_ZERO_RETURN:
        *kind = PROTOCOL_DONE;
        return 1;
    case SSL_ERROR_SSL: {
        unsigned long code = ERR_peek_last_error();
        const char *why = ERR_reason_error_string(code);
        long v = SSL_get_verify_result(c->ssl);
        int hs = !(c->state & TL_HS_DONE);
        if (ERR_GET_LIB(code) == ERR_LIB_SSL &&
            ERR_GET_REASON(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
            *kind = hs ? PROTOCOL_TLS_HANDSHAKE : PROTOCOL_TLS_TRUNCATED;
            snprintf(detail, n, "%s", hs ? "the peer closed the connection during the handshake"
                                         : "the peer closed TCP without close_notify");
        } else if (hs && v != X509_V_OK && ERR_GET_LIB(code) == ERR_LIB_SSL &&
                   ERR_GET_REASON(code) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
            *kind = PROTOCOL_TLS_VERIFY;
            snprintf(detail, n, "%s", X509_verify_cert_error_string(v));
        } else {
            *kind = hs ? PROTOCOL_TLS_HANDSHAKE : PROTOCOL_TLS_ERROR;
            snprintf(detail, n, "%s", why ? why : "unknown OpenSSL error");
        }
        return 1;
    }
    default: /* SSL_ERROR_SYSCALL: our BIO failed (no memory for the output) */
        *kind = PROTOCOL_ERROR;
        *err = ENOMEM;
        return 1;
    }
}

/* The peer's close_notify: as in Twisted, the whole connection ends. Our close_notify
 * and what is pending go out first (the step after this read does it). */
static void got_close(struct tls_conn *c)
{
    c->state |= TL_GOT_CLOSE;
    c->t->flags |= T_READ_EOF | T_DISCONNECTING;
    transport__watch(c->t);
}

static void close_timeout(reactor *r, void *data)
{
    (void)r;
    struct tls_conn *c = data;
    c->close_timer = NULL;
    if (c->t->flags & T_CLOSED)
        return;
    if (!(c->state & TL_HS_DONE) || c->pl.len) {
        fail(c, PROTOCOL_TLS_HANDSHAKE, 0,
             "the handshake did not finish within the close timeout");
    } else {
        set_detail(c, "the peer did not answer close_notify in time");
        transport__close(c->t, PROTOCOL_DONE, 0, 0);
    }
    transport__schedule(c->t);
}

/* A peer that connected and never finished its handshake (or a server that never
 * answers ours) goes after the context's handshake timeout. */
static void handshake_timeout(reactor *r, void *data)
{
    (void)r;
    struct tls_conn *c = data;
    c->hs_timer = NULL;
    if (c->t->flags & (T_CLOSED | T_ABORTING) || (c->state & TL_HS_DONE))
        return;
    fail(c, PROTOCOL_TLS_HANDSHAKE, ETIMEDOUT, "the handshake did not finish in time");
    transport__schedule(c->t);
}

static void arm_close_timer(struct tls_conn *c)
{
    if (!c->close_timer)
        c->close_timer = reactor_call_later(c->mod->r, c->ctx->close_timeout, close_timeout, c);
}

/* ---- Reading ------------------------------------------------------------------------- */

/* Decrypts what the BIO can read and hands it to the protocol, in chunks of up to
 * TRANSPORT__READ_MAX (many records, one data_received). Stops when the input is used
 * up, the protocol paused, or the connection ended. */
static void pump(struct tls_conn *c)
{
    transport *t = c->t;
    char *buf = c->mod->tlsbuf;
    for (;;) {
        if (t->flags & (T_CLOSED | T_ABORTING))
            return;
        int deliver = !(t->flags & T_DISCONNECTING) && !(c->state & TL_GOT_CLOSE);
        if (deliver && (t->flags & T_PAUSED) && (c->state & TL_HS_DONE))
            return; /* the rest waits for resume_producing */
        size_t got = 0;
        int r = 1, ended = 0, err = 0;
        protocol_reason_kind kind = PROTOCOL_DONE;
        char detail[200];
        clear_errors();
        while (got < TRANSPORT__READ_MAX) {
            r = SSL_read(c->ssl, buf + got, (int)(TRANSPORT__READ_MAX - got));
            if (r <= 0) {
                ended = classify(c, r, &kind, &err, detail, sizeof detail);
                clear_errors(); /* what the failure left, now in kind/detail */
                break;
            }
            got += (size_t)r;
            if (c->in_len == 0 && !(c->state & TL_EOF) && !SSL_has_pending(c->ssl)) {
                r = 0; /* every byte received is decrypted: another SSL_read would only
                        * fail with WANT_READ (~1,500 instructions at 1 request per read) */
                break;
            }
        }
        if (!(c->state & TL_HS_DONE) && SSL_is_init_finished(c->ssl)) {
            c->state |= TL_HS_DONE; /* the plaintext waiting goes at the next step */
            if (c->hs_timer) {
                transport__cancel(c->mod, c->hs_timer);
                c->hs_timer = NULL;
            }
        }
        if (got && deliver) {
            if (transport__deliver(t, buf, got) != 0)
                return; /* closed with the protocol's error */
        }
        if (r > 0)
            continue; /* the buffer was full: there may be more */
        if (!ended)
            return; /* more ciphertext needed */
        if (kind == PROTOCOL_DONE)
            got_close(c);
        else if (!(t->flags & T_CLOSED))
            fail(c, kind, err, detail[0] ? detail : NULL);
        return;
    }
}

/* Keeps what the BIO did not read (a paused protocol) for later. */
static void keep_rest(struct tls_conn *c)
{
    if (c->in_len == 0) {
        free(c->kept);
        c->kept = NULL;
        c->kept_len = 0;
    } else if (c->in >= c->kept && c->in < c->kept + c->kept_len) {
        memmove(c->kept, c->in, c->in_len);
        c->kept_len = c->in_len;
    } else {
        char *k = malloc(c->in_len);
        if (!k) {
            fail(c, PROTOCOL_ERROR, ENOMEM, NULL);
            return;
        }
        memcpy(k, c->in, c->in_len);
        free(c->kept);
        c->kept = k;
        c->kept_len = c->in_len;
    }
    c->in = NULL;
    c->in_len = 0;
}

void tls__received(transport *t, const char *data, size_t n)
{
    struct tls_conn *c = transport__x(t)->tls;
    if (c->kept_len) { /* after what is still kept */
        char *k = realloc(c->kept, c->kept_len + n);
        if (!k) {
            fail(c, PROTOCOL_ERROR, ENOMEM, NULL);
            return;
        }
        memcpy(k + c->kept_len, data, n);
        c->kept = k;
        c->kept_len += n;
        c->in = k;
        c->in_len = c->kept_len;
    } else {
        c->in = data;
        c->in_len = n;
    }
    borrow(c); /* for the answers; the step after this read ends the loan */
    pump(c);
    keep_rest(c);
}

void tls__eof(transport *t)
{
    struct tls_conn *c = transport__x(t)->tls;
    c->state |= TL_EOF;
    t->flags |= T_READ_EOF;
    transport__watch(t); /* EOF stays readable forever */
    if (c->state & (TL_SENT_CLOSE | TL_GOT_CLOSE)) {
        if (!(c->state & TL_GOT_CLOSE)) /* we said goodbye; its FIN is an answer */
            transport__close(t, PROTOCOL_DONE, 0, 0);
        return;
    }
    c->in = c->kept;
    c->in_len = c->kept_len;
    pump(c); /* what is left, then OpenSSL meets the EOF: truncation or handshake cut */
    keep_rest(c);
}

int tls__reading_on_close(const struct tls_conn *c)
{
    return !(c->state & TL_GOT_CLOSE) &&
           ((c->state & TL_SENT_CLOSE) || !(c->state & TL_HS_DONE));
}

/* ---- The step -------------------------------------------------------------------------- */

static void before_send(transport *t, struct tls_conn *c)
{
    if (!(t->flags & T_PAUSED) && (c->kept_len || (c->state & TL_HS_DONE && SSL_pending(c->ssl)))) {
        c->in = c->kept;
        c->in_len = c->kept_len;
        pump(c);
        keep_rest(c);
        if (t->flags & (T_CLOSED | T_ABORTING))
            return;
    }
    protocol_reason_kind kind;
    int err;
    char detail[200];
    if ((c->state & (TL_CLIENT | TL_STARTED)) == TL_CLIENT) {
        c->state |= TL_STARTED;
        clear_errors();
        int r = SSL_do_handshake(c->ssl); /* the ClientHello, into the output buffer */
        if (r <= 0 && classify(c, r, &kind, &err, detail, sizeof detail)) {
            fail(c, kind == PROTOCOL_DONE ? PROTOCOL_TLS_HANDSHAKE : kind, err, detail);
            return;
        }
        clear_errors();
    }
    if (c->pl.len && (c->state & TL_HS_DONE) && !(c->state & TL_SENT_CLOSE)) {
        clear_errors();
        size_t n = c->pl.len < (size_t)1 << 30 ? c->pl.len : (size_t)1 << 30;
        int r = SSL_write(c->ssl, c->pl.buf, (int)n);
        if (r > 0) {
            c->pl.len -= (size_t)r;
            if (c->pl.len)
                memmove(c->pl.buf, c->pl.buf + r, c->pl.len);
            else if (!lent(c)) { /* an idle connection keeps no plaintext buffer */
                free(c->pl.buf);
                c->pl.buf = NULL;
                c->pl.cap = 0;
            }
        } else if (classify(c, r, &kind, &err, detail, sizeof detail)) {
            fail(c, kind == PROTOCOL_DONE ? PROTOCOL_TLS_ERROR : kind, err, detail);
            return;
        } else { /* a renegotiation wants the peer first: the next read goes on */
            clear_errors();
        }
    }
}

void tls__before_send(transport *t)
{
    struct tls_conn *c = transport__x(t)->tls;
    before_send(t, c);
    if (lent(c)) { /* the loan ends at the step */
        if (t->flags & (T_CLOSED | T_ABORTING))
            c->pl.len = 0; /* nothing more goes out */
        if (give_back(c, 0) < 0)
            fail(c, PROTOCOL_ERROR, ENOMEM, NULL);
    }
}

int tls__drained(transport *t, int producer)
{
    struct tls_conn *c = transport__x(t)->tls;
    int closing = (t->flags & T_DISCONNECTING) && !producer;
    if (c->pl.len) {
        if ((c->state & TL_HS_DONE) && !(c->state & TL_SENT_CLOSE))
            return 1; /* written after the last SSL_write (a producer): encrypt it */
        if (closing)
            arm_close_timer(c); /* the handshake must finish first, but not forever */
        return 0;
    }
    if (!closing && !(t->flags & T_SHUT_REQ))
        return 0;
    if (!(c->state & TL_HS_DONE)) {
        if (!closing)
            return 0; /* lose_write_connection: once the handshake is over */
        /* nothing was said in TLS yet and nothing is waiting: close (as Twisted) */
        transport__close(t, PROTOCOL_DONE, 0, 0);
        return 1;
    }
    if (!(c->state & TL_SENT_CLOSE)) {
        clear_errors();
        SSL_shutdown(c->ssl); /* close_notify, into the output buffer */
        clear_errors();
        c->state |= TL_SENT_CLOSE;
        t->flags |= T_SHUT_REQ | T_SHUT_DONE; /* no more writes */
        if (closing)
            arm_close_timer(c);
        return 1; /* send it, then come back here */
    }
    if (c->state & TL_GOT_CLOSE || (t->flags & T_READ_EOF)) {
        transport__close(t, PROTOCOL_DONE, 0, 0);
        return 1;
    }
    if (closing)
        arm_close_timer(c); /* a lose_connection after lose_write_connection */
    return 0; /* reading on until the peer's close_notify */
}

void tls__reason(const struct tls_conn *c, protocol_reason *reason)
{
    if (c->message)
        reason->message = c->message;
    if (c->detail)
        reason->detail = c->detail;
    else if (reason->kind == PROTOCOL_DONE && (c->state & TL_SENT_CLOSE) &&
             (c->state & TL_GOT_CLOSE))
        reason->detail = "close_notify exchanged";
    else if (reason->kind == PROTOCOL_DONE && (c->state & TL_GOT_CLOSE))
        reason->detail = "the peer sent close_notify";
}

/* ---- Public -------------------------------------------------------------------------- */

listener *reactor_listen_tls_flags(reactor *r, const char *interface, int port, factory *f,
                                   int backlog, unsigned flags, tls_context *ctx)
{
    if (!ctx || !ctx->server) {
        errno = EINVAL;
        return NULL;
    }
    listener *l = reactor_listen_tcp_flags(r, interface, port, f, backlog, flags);
    if (l) /* a listener starts with its transport_owner */
        ((struct transport_owner *)(void *)l)->tls = tls_context_ref(ctx);
    return l;
}

listener *reactor_listen_tls(reactor *r, const char *interface, int port, factory *f,
                             int backlog, tls_context *ctx)
{
    return reactor_listen_tls_flags(r, interface, port, f, backlog, 0, ctx);
}

connector *reactor_connect_tls(reactor *r, const char *host, int port, factory *f,
                               double timeout, tls_context *ctx)
{
    if (!ctx || ctx->server) {
        errno = EINVAL;
        return NULL;
    }
    connector *cn = reactor_connect_tcp(r, host, port, f, timeout);
    if (cn) /* nothing connects before the loop runs: in time for the first connection */
        ((struct transport_owner *)(void *)cn)->tls = tls_context_ref(ctx);
    return cn;
}

int transport_start_tls(transport *t, tls_context *ctx, int as_client)
{
    if (!t || !ctx || (as_client != 0) == (ctx->server != 0) ||
        (t->flags & (T_MEMORY | T_CLOSED | T_ABORTING | T_DISCONNECTING | T_SHUT_REQ)))
        return -EINVAL;
    if (transport__x(t) && transport__x(t)->tls)
        return -EALREADY;
    const char *host = NULL;
    if (as_client && (t->flags & T_CLIENT))
        host = ((struct transport_owner *)transport__owner(t))->tls_host;
    int rc = tls__attach(t, ctx, as_client, host);
    if (rc < 0)
        return rc;
    /* The cleartext already in the output buffer stays in front of every record. */
    if (!(t->flags & T_IN_CB))
        transport__schedule(t);
    return 0;
}

int transport_is_tls(const transport *t)
{
    return t && transport__x(t) && transport__x(t)->tls;
}

int transport_tls_info(const transport *t, tls_info *out)
{
    if (!t || !out)
        return -EINVAL;
    struct tls_conn *c = transport__x(t) ? transport__x(t)->tls : NULL;
    if (!c)
        return -ENOTSUP;
    if (!(c->state & TL_HS_DONE))
        return -EAGAIN;
    memset(out, 0, sizeof *out);
    out->version = SSL_get_version(c->ssl);
    out->cipher = SSL_get_cipher_name(c->ssl);
    const unsigned char *alpn;
    unsigned alen;
    SSL_get0_alpn_selected(c->ssl, &alpn, &alen);
    if (alen >= sizeof out->alpn)
        alen = sizeof out->alpn - 1;
    if (alen)
        memcpy(out->alpn, alpn, alen);
    X509 *peer = SSL_get0_peer_certificate(c->ssl);
    if (peer) {
        X509_NAME_oneline(X509_get_subject_name(peer), out->peer_subject,
                          (int)sizeof out->peer_subject);
        out->peer_verified = c->ctx->verify != TLS_VERIFY_NONE &&
                             SSL_get_verify_result(c->ssl) == X509_V_OK;
    }
    clear_errors();
    return 0;
}
