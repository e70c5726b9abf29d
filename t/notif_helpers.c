#define _GNU_SOURCE /* MSG_NOSIGNAL */
#include "notif_helpers.h"

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

static void nraw_sync(struct nraw *c);

static void nraw_io(reactor *r, int fd, unsigned ev, void *data)
{
    struct nraw *c = data;
    if (c->reading && (ev & (REACTOR_READABLE | REACTOR_ERROR))) {
        for (;;) {
            if (c->in_cap - c->in_len < 65536) {
                size_t nc = c->in_cap ? c->in_cap * 2 : 65536 * 2;
                char *b = realloc(c->in, nc);
                ck_assert_ptr_nonnull(b);
                c->in = b;
                c->in_cap = nc;
            }
            ssize_t n = recv(fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
            if (n > 0) {
                for (const char *p = c->in + c->in_len, *e = p + n; (p = memchr(p, '\n', (size_t)(e - p))); p++)
                    c->nl++;
                c->in_len += (size_t)n;
                continue;
            }
            if (n == 0)
                c->eof = 1;
            else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                c->err = errno;
            break;
        }
    }
    if (c->out_len > c->out_off && !c->err) {
        ssize_t n = send(fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0)
            c->out_off += (size_t)n;
        else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            c->err = errno; /* the server closed on us: drop the rest */
    }
    if (c->err)
        c->out_off = c->out_len;
    nraw_sync(c);
}

static void nraw_sync(struct nraw *c)
{
    if (c->fd < 0)
        return;
    unsigned ev = 0;
    if (c->reading && !c->eof && !c->err)
        ev |= REACTOR_READABLE;
    if (c->out_len > c->out_off)
        ev |= REACTOR_WRITABLE;
    if (c->out_len && c->out_off == c->out_len)
        c->out_len = c->out_off = 0;
    reactor_watch(c->r, c->fd, ev, nraw_io, c);
}

void nraw_connect(struct nraw *c, reactor *r, int port, int rcvbuf, int read)
{
    memset(c, 0, sizeof *c);
    c->r = r;
    c->reading = read;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(c->fd, 0);
    if (rcvbuf > 0)
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    ck_assert_msg(connect(c->fd, (struct sockaddr *)&a, sizeof a) == 0, "connect: %s",
                  strerror(errno));
    ck_assert_int_eq(fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK), 0);
    nraw_sync(c);
}

void nraw_send(struct nraw *c, const void *data, size_t len)
{
    if (c->err || c->fd < 0)
        return;
    char *b = realloc(c->out, c->out_len + len);
    ck_assert_ptr_nonnull(b);
    c->out = b;
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    nraw_io(c->r, c->fd, 0, c); /* try now */
}

void nraw_read_now(struct nraw *c)
{
    c->reading = 1;
    nraw_sync(c);
}

void nraw_send_str(struct nraw *c, const char *s) { nraw_send(c, s, strlen(s)); }

void nraw_shutdown_wr(struct nraw *c)
{
    /* everything queued must be out first: send it blocking */
    while (c->out_len > c->out_off && !c->err) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0)
            c->out_off += (size_t)n;
        else if (n < 0 && errno != EAGAIN && errno != EINTR)
            c->err = errno;
        else
            reactor_iterate(c->r, 0.01); /* let the server read */
    }
    c->out_len = c->out_off = 0;
    shutdown(c->fd, SHUT_WR);
    nraw_sync(c);
}

void nraw_reset(struct nraw *c)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    reactor_unwatch(c->r, c->fd);
    close(c->fd);
    c->fd = -1;
}

void nraw_free(struct nraw *c)
{
    if (c->fd >= 0) {
        reactor_unwatch(c->r, c->fd);
        close(c->fd);
        c->fd = -1;
    }
    free(c->in);
    free(c->out);
    c->in = c->out = NULL;
}

size_t nraw_lines(const struct nraw *c) { return c->nl; }

const char *nraw_line(const struct nraw *c, size_t n, char *buf, size_t size)
{
    const char *p = c->in, *end = c->in + c->in_len;
    while (p && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            return NULL;
        if (n-- == 0) {
            size_t len = (size_t)(nl - p);
            if (len >= size)
                len = size - 1;
            memcpy(buf, p, len);
            buf[len] = '\0';
            return buf;
        }
        p = nl + 1;
    }
    return NULL;
}

static void expire(reactor *r, void *data) { *(int *)data = 1; }

int nt_wait(reactor *r, int (*pred)(void *arg), void *arg, double max_seconds)
{
    int expired = 0;
    reactor_timer *t = reactor_timer_hold(reactor_call_later(r, max_seconds, expire, &expired));
    ck_assert_ptr_nonnull(t);
    for (int i = 0; i < 200000 && !pred(arg) && !expired; i++)
        ck_assert_int_eq(reactor_iterate(r, 0.01), 0);
    reactor_timer_cancel(t);
    reactor_timer_release(t);
    return pred(arg);
}

int nt_pred_eof(void *arg)
{
    struct nraw *c = arg;
    return c->eof || c->err;
}

int nt_pred_flag(void *arg) { return *(int *)arg != 0; }

int nt_pred_lines(void *arg)
{
    struct nt_lines *l = arg;
    return nraw_lines(l->c) >= l->want;
}

void nfx_open(struct nfx *f, int backend, const notif_server_config *cfg)
{
    memset(f, 0, sizeof *f);
    f->r = th_reactor(backend);
    f->s = notif_server_new(f->r, cfg);
    ck_assert_ptr_nonnull(f->s);
    f->l = reactor_listen_tcp(f->r, "127.0.0.1", 0, notif_server_factory(f->s), 0);
    ck_assert_ptr_nonnull(f->l);
    f->port = listener_port(f->l);
}

struct nraw *nfx_client(struct nfx *f, int rcvbuf, int read)
{
    ck_assert_int_lt(f->n_clients, NFX_CLIENTS_MAX);
    struct nraw *c = &f->clients[f->n_clients++];
    nraw_connect(c, f->r, f->port, rcvbuf, read);
    return c;
}

void nfx_close(struct nfx *f)
{
    for (int i = 0; i < f->n_clients; i++)
        nraw_free(&f->clients[i]);
    if (f->l)
        listener_free(f->l);
    if (f->s)
        notif_server_free(f->s);
    reactor_free(f->r);
    memset(f, 0, sizeof *f);
}

struct clients_arg {
    notif_server *s;
    size_t n;
};

static int has_clients(void *arg)
{
    struct clients_arg *a = arg;
    return notif_server_get_stats(a->s).clients == a->n;
}

int nfx_wait_clients(struct nfx *f, size_t n, double max_seconds)
{
    struct clients_arg a = {f->s, n};
    return nt_wait(f->r, has_clients, &a, max_seconds);
}

void nraw_send_randoms(struct nraw *c, size_t n)
{
    char *req = malloc(n * 8);
    ck_assert_ptr_nonnull(req);
    for (size_t i = 0; i < n; i++)
        memcpy(req + i * 8, "random?\n", 8);
    nraw_send(c, req, n * 8);
    free(req);
}
