/* Helpers for the transport suites (see transport_helpers.h). */
#define _GNU_SOURCE
#include "transport_helpers.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helpers.h"
#include "reactor/transport_internal.h" /* T_WANT_WRITE, for tfx_wait_write_blocked */
#include "reactor/backend_internal.h"   /* reactor__seen_error, in rawc_io */

static void tp_made(protocol *p)
{
    struct tp *t = (struct tp *)p;
    t->made++;
    t->tf->made++;
    if (t->tf->on_made)
        t->tf->on_made(t);
}

static int tp_data(protocol *p, const char *data, size_t len)
{
    struct tp *t = (struct tp *)p;
    if (t->lost)
        t->after_lost++;
    ck_assert_uint_gt(len, 0);
    t->data_calls++;
    t->depth++;
    int rc = 0;
    if (t->tf->on_data) {
        rc = t->tf->on_data(t, data, len);
    } else if (t->tf->mode == TP_ECHO) {
        rc = transport_write(p->transport, data, len);
    } else {
        if (t->in_len + len > t->in_cap) {
            t->in_cap = (t->in_len + len) * 2;
            t->in = realloc(t->in, t->in_cap);
            ck_assert_ptr_nonnull(t->in);
        }
        memcpy(t->in + t->in_len, data, len);
        t->in_len += len;
    }
    t->depth--;
    return rc;
}

static void tp_read_lost(protocol *p)
{
    struct tp *t = (struct tp *)p;
    t->tf->read_lost++;
    if (t->tf->on_read_lost)
        t->tf->on_read_lost(t);
}

static void tp_lost(protocol *p, const protocol_reason *reason)
{
    struct tp *t = (struct tp *)p;
    struct tfactory *tf = t->tf;
    ck_assert_int_eq(t->depth, 0); /* never re-entrant */
    t->lost++;
    tf->lost++;
    tf->lost_kind[reason->kind & 15]++;
    tf->last_lost_kind = reason->kind;
    tf->last_lost_err = reason->err;
    ck_assert_ptr_nonnull(reason->message);
    if (tf->on_lost)
        tf->on_lost(t, reason);
    if (tf->last == t)
        tf->last = NULL;
    free(t->in);
    free(t);
}

static const protocol_ops tp_ops = {
    .connection_made = tp_made,
    .data_received = tp_data,
    .connection_lost = tp_lost,
};
static const protocol_ops tp_ops_half = {
    .connection_made = tp_made,
    .data_received = tp_data,
    .read_connection_lost = tp_read_lost,
    .connection_lost = tp_lost,
};

static protocol *tf_build(factory *f, const struct sockaddr *addr, socklen_t len)
{
    (void)addr;
    (void)len;
    struct tfactory *tf = (struct tfactory *)f;
    if (tf->refuse)
        return NULL;
    struct tp *t = calloc(1, sizeof *t);
    ck_assert_ptr_nonnull(t);
    protocol_init(&t->base, tf->half_close ? &tp_ops_half : &tp_ops);
    t->tf = tf;
    tf->built++;
    tf->last = t;
    return &t->base;
}

static void tf_start(factory *f) { ((struct tfactory *)f)->started++; }
static void tf_stop(factory *f) { ((struct tfactory *)f)->stopped++; }
static void tf_connecting(factory *f, connector *c)
{
    (void)c;
    ((struct tfactory *)f)->connecting++;
}
static void tf_failed(factory *f, connector *c, const protocol_reason *reason)
{
    (void)c;
    struct tfactory *tf = (struct tfactory *)f;
    tf->failed++;
    tf->fail = *reason;
    tf->done = 1;
}
static void tf_client_lost(factory *f, connector *c, const protocol_reason *reason)
{
    (void)c;
    (void)reason;
    struct tfactory *tf = (struct tfactory *)f;
    tf->client_lost++;
    if (tf->client_lost > tf->lost)
        tf->order_bad = 1;
}

static const factory_ops tf_ops = {
    .build_protocol = tf_build,
    .start_factory = tf_start,
    .stop_factory = tf_stop,
    .started_connecting = tf_connecting,
    .client_connection_failed = tf_failed,
    .client_connection_lost = tf_client_lost,
};

void tf_init(struct tfactory *tf, enum tp_mode mode)
{
    memset(tf, 0, sizeof *tf);
    factory_init(&tf->f, &tf_ops, NULL);
    tf->mode = mode;
}

static void rawc_io(reactor *r, int fd, unsigned events, void *data)
{
    (void)events;
    struct rawc *c = data;
    for (int i = 0; i < 64; i++) {
        if (c->cap - c->len < 65536) {
            c->cap = c->cap * 2 + 65536;
            c->buf = realloc(c->buf, c->cap);
            ck_assert_ptr_nonnull(c->buf);
        }
        size_t room = c->cap - c->len;
        if (c->max_per_read && room > c->max_per_read)
            room = c->max_per_read;
        ssize_t n = recv(fd, c->buf + c->len, room, 0);
        if (n > 0) {
            if (c->check_pattern && !c->bad_at)
                for (size_t k = 0; k < (size_t)n; k++)
                    if ((unsigned char)c->buf[c->len + k] != (c->len + k) % 251) {
                        c->bad_at = c->len + k + 1;
                        break;
                    }
            c->len += (size_t)n;
            if (c->max_per_read)
                break;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0) /* a reset reads as EOF where the backend consumed it (libkqueue) */
            c->err = reactor__seen_error(r, fd);
        else
            c->err = errno;
        if (!c->err)
            c->eof = 1;
        reactor_unwatch(r, fd);
        c->watching = 0;
        break;
    }
    if (c->eof || c->err || (c->want && c->len >= c->want))
        c->done = 1;
}

void fill_pattern(char *buf, size_t len, size_t off)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)((off + i) % 251);
}

void rawc_watch(struct rawc *c)
{
    ck_assert_int_eq(reactor_watch(c->r, c->fd, REACTOR_READABLE, rawc_io, c), 0);
    c->watching = 1;
}

static void rawc_open(struct rawc *c, reactor *r, int port, int v6, int rcvbuf, int watch);

void rawc_connect(struct rawc *c, reactor *r, int port, int v6)
{
    rawc_open(c, r, port, v6, 0, 1);
}

void rawc_connect_slow(struct rawc *c, reactor *r, int port, int rcvbuf)
{
    rawc_open(c, r, port, 0, rcvbuf, 0);
}

static void rawc_open(struct rawc *c, reactor *r, int port, int v6, int rcvbuf, int watch)
{
    memset(c, 0, sizeof *c);
    c->r = r;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        inet_pton(AF_INET6, "::1", &a->sin6_addr);
        len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *a;
    }
    c->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(c->fd, 0);
    if (rcvbuf)
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    ck_assert_msg(connect(c->fd, (struct sockaddr *)&ss, len) == 0, "connect: %s",
                  strerror(errno));
    ck_assert_int_eq(fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK), 0);
    if (watch)
        rawc_watch(c);
}

void rawc_send(struct rawc *c, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        ck_assert_msg(n > 0, "rawc_send: %s", strerror(errno));
        p += n;
        len -= (size_t)n;
    }
}

void rawc_close(struct rawc *c)
{
    if (c->fd < 0)
        return;
    if (c->watching)
        reactor_unwatch(c->r, c->fd);
    c->watching = 0;
    close(c->fd);
    c->fd = -1;
}

void rawc_free(struct rawc *c)
{
    rawc_close(c);
    free(c->buf);
    c->buf = NULL;
}

/* ---- The loopback test bed ---------------------------------------------------------- */

void tp_set_done(struct tp *p, const protocol_reason *reason)
{
    (void)reason;
    p->tf->done = 1;
}

void tfx_stop_reactor(reactor *r, void *data)
{
    (void)data;
    reactor_stop(r);
}

void tfx_open(struct tfx *x, int backend, enum tp_mode srv_mode)
{
    memset(x, 0, sizeof *x);
    x->r = th_reactor(backend);
    tf_init(&x->srv, srv_mode);
    tf_init(&x->cli, TP_RECORD);
    x->l = reactor_listen_tcp(x->r, "127.0.0.1", 0, &x->srv.f, 0);
    ck_assert_ptr_nonnull(x->l);
    x->port = listener_port(x->l);
}

static struct rawc *tfx_next_raw(struct tfx *x)
{
    ck_assert_int_lt(x->n_raw, TFX_RAW_MAX);
    return &x->raw[x->n_raw++];
}

struct rawc *tfx_raw(struct tfx *x)
{
    struct rawc *c = tfx_next_raw(x);
    rawc_connect(c, x->r, x->port, 0);
    return c;
}

struct rawc *tfx_raw_slow(struct tfx *x, int rcvbuf)
{
    struct rawc *c = tfx_next_raw(x);
    rawc_connect_slow(c, x->r, x->port, rcvbuf);
    return c;
}

connector *tfx_connect(struct tfx *x)
{
    ck_assert_ptr_null(x->conn);
    x->conn = reactor_connect_tcp(x->r, "127.0.0.1", x->port, &x->cli.f, 5);
    ck_assert_ptr_nonnull(x->conn);
    return x->conn;
}

/* Iterates until pred(x), at most max_seconds of reactor time (a safety timer) and at
 * most 100000 iterations, as th_iterate_until does for a flag. */
static int tfx_wait(struct tfx *x, int (*pred)(const struct tfx *x, int n), int n,
                    double max_seconds)
{
    int expired = 0;
    reactor_timer *safety =
        reactor_timer_hold(reactor_call_later(x->r, max_seconds, th_set_flag, &expired));
    ck_assert_ptr_nonnull(safety);
    for (int i = 0; i < 100000 && !pred(x, n) && !expired; i++)
        ck_assert_int_eq(reactor_iterate(x->r, -1), 0);
    reactor_timer_cancel(safety); /* -EALREADY if it fired: fine */
    reactor_timer_release(safety);
    return pred(x, n);
}

static int made_at_least(const struct tfx *x, int n) { return x->srv.made >= n; }

static int last_write_blocked(const struct tfx *x, int n)
{
    (void)n;
    return x->srv.last && (x->srv.last->base.transport->flags & T_WANT_WRITE);
}

int tfx_wait_made(struct tfx *x, int n, double max_seconds)
{
    return tfx_wait(x, made_at_least, n, max_seconds);
}

int tfx_wait_write_blocked(struct tfx *x, double max_seconds)
{
    return tfx_wait(x, last_write_blocked, 0, max_seconds);
}

int tfx_run(struct tfx *x, double max_seconds)
{
    ck_assert_ptr_nonnull(reactor_call_later(x->r, max_seconds, tfx_stop_reactor, NULL));
    return reactor_run(x->r);
}

void tfx_close(struct tfx *x)
{
    if (x->conn)
        connector_free(x->conn);
    for (int i = 0; i < x->n_raw; i++)
        rawc_free(&x->raw[i]);
    if (x->l)
        listener_free(x->l);
    reactor_free(x->r);
    x->conn = NULL;
    x->l = NULL;
    x->n_raw = 0;
    x->r = NULL;
}
