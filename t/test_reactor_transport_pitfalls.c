/* Event-loop pitfalls 2.2-2.10 and 2.16 (shared/spec/pitfalls.md) on real loopback
 * sockets, per backend, plus backpressure and a 1,000-connection leak loop. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <twistc/transport.h>

#include "helpers.h"
#include "reactor/transport_internal.h"
#include "transport_helpers.h"

#define WAIT 10.0

/* Runs r for `seconds` of real time; returns the iterations it took. */
static uint64_t idle_iterations(reactor *r, double seconds)
{
    int flag = 0;
    uint64_t before = reactor_iterations(r);
    reactor_call_later(r, seconds, th_set_flag, &flag);
    ck_assert(th_iterate_until(r, &flag, seconds + 5));
    return reactor_iterations(r) - before;
}

static size_t big_len = 4u << 20;

static void write_big(struct tp *p)
{
    char *buf = malloc(big_len);
    fill_pattern(buf, big_len, 0);
    /* in pieces, as an application would; all go out in order */
    for (size_t off = 0; off < big_len; off += 100000) {
        size_t n = big_len - off < 100000 ? big_len - off : 100000;
        ck_assert_int_eq(transport_write(p->base.transport, buf + off, n), 0);
    }
    free(buf);
}

/* 2.2: a slow reader against a large write; WRITABLE only while output is pending. */
START_TEST(test_2_2_slow_reader_partial_writes)
{
    struct tfx x;
    tfx_open(&x, _i, TP_RECORD);
    x.srv.on_made = write_big;
    struct rawc *c = tfx_raw_slow(&x, 4096);
    c->max_per_read = 4096;
    c->check_pattern = 1;
    c->want = big_len;
    /* let the server accept and write until the socket is full */
    tfx_wait_write_blocked(&x, WAIT);
    ck_assert_ptr_nonnull(x.srv.last);
    transport *t = x.srv.last->base.transport;
    ck_assert(t->flags & T_WANT_WRITE);
    ck_assert(t->flags & T_REG_W); /* waiting for WRITABLE */
    ck_assert_uint_gt(transport_pending(t), 0);
    /* now the peer reads, slowly */
    rawc_watch(c);
    ck_assert(th_iterate_until(x.r, &c->done, WAIT));
    ck_assert_uint_eq(c->len, big_len);
    ck_assert_uint_eq(c->bad_at, 0); /* every byte, in order */
    ck_assert_uint_eq(transport_pending(t), 0);
    ck_assert(!(t->flags & T_REG_W)); /* write interest dropped once drained */
    ck_assert_ptr_null(t->out);       /* and no buffer kept */
    /* nothing pending: the loop sleeps instead of spinning */
    ck_assert_uint_le(idle_iterations(x.r, 0.1), 3);
    tfx_close(&x);
}
END_TEST

/* 2.3: one budgeted read per readiness: a connection with lots of input cannot starve
 * another one. */
static int order_log[4096];
static int order_n;

static int log_order(struct tp *p, const char *data, size_t len)
{
    (void)data;
    int who = p->tf->user == NULL ? 0 : *(int *)p->tf->user;
    (void)who;
    if (order_n < 4096)
        order_log[order_n++] = len == 6 && memcmp(data, "line!\n", 6) == 0 ? 1 : 0;
    p->in_len += len;
    return 0;
}

START_TEST(test_2_3_read_budget_fairness)
{
    struct tfx x;
    tfx_open(&x, _i, TP_RECORD);
    x.srv.on_data = log_order;
    order_n = 0;
    struct rawc *a = tfx_raw(&x), *b = tfx_raw(&x);
    int bufsz = 1 << 20;
    setsockopt(a->fd, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof bufsz);
    /* accept both first */
    tfx_wait_made(&x, 2, WAIT);
    ck_assert_int_eq(x.srv.made, 2);
    /* a: as much as the kernel takes (several reads' worth), then b: one line */
    static char blob[65536];
    memset(blob, 'a', sizeof blob);
    size_t sent = 0;
    for (int i = 0; i < 64; i++) {
        ssize_t n = send(a->fd, blob, sizeof blob, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        sent += (size_t)n;
    }
    ck_assert_uint_gt(sent, 3 * TRANSPORT__READ_MAX);
    rawc_send(b, "line!\n", 6);
    int got_line = 0;
    size_t a_reads_before = 0;
    for (int i = 0; i < 1000 && !got_line; i++) {
        reactor_iterate(x.r, 0.05);
        for (int k = 0; k < order_n; k++)
            if (order_log[k]) {
                got_line = 1;
                a_reads_before = (size_t)k;
                break;
            }
    }
    ck_assert(got_line);
    /* the line came while a still had most of its data unread */
    ck_assert_uint_lt(a_reads_before * TRANSPORT__READ_MAX, sent);
    tfx_close(&x);
}
END_TEST

/* 2.4: a callback closes ANOTHER connection whose event is pending in the same batch. */
static struct tp *conns24[2];
static int extra_pair[2] = {-1, -1};

static void note_conn(struct tp *p)
{
    conns24[conns24[0] ? 1 : 0] = p;
}

static int abort_other(struct tp *p, const char *data, size_t len)
{
    (void)data;
    (void)len;
    ck_assert_int_eq(p->lost, 0);
    struct tp *other = conns24[0] == p ? conns24[1] : conns24[0];
    if (other && !transport_disconnecting(other->base.transport)) {
        ck_assert_int_eq(transport_abort_connection(other->base.transport), 0);
        /* grab fds now, so a reused number would show up in this batch */
        if (extra_pair[0] < 0)
            ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, extra_pair), 0);
    }
    return 0;
}

static void forget_conn(struct tp *p, const protocol_reason *reason)
{
    (void)reason;
    ck_assert_int_eq(p->after_lost, 0);
    if (conns24[0] == p)
        conns24[0] = NULL;
    if (conns24[1] == p)
        conns24[1] = NULL;
    if (p->tf->lost == 2)
        p->tf->done = 1;
}

START_TEST(test_2_4_close_other_with_pending_event)
{
    struct tfx x;
    tfx_open(&x, _i, TP_RECORD);
    x.srv.on_made = note_conn;
    x.srv.on_data = abort_other;
    x.srv.on_lost = forget_conn;
    conns24[0] = conns24[1] = NULL;
    extra_pair[0] = extra_pair[1] = -1;
    struct rawc *a = tfx_raw(&x), *b = tfx_raw(&x);
    tfx_wait_made(&x, 2, WAIT);
    ck_assert_int_eq(x.srv.made, 2);
    /* both readable in the same poll batch */
    rawc_send(a, "x", 1);
    rawc_send(b, "y", 1);
    ck_assert(th_iterate_until(x.r, &x.srv.lost, WAIT)); /* the aborted one is lost */
    /* exactly one got data (the other was aborted before its event ran) */
    int data_calls = (conns24[0] ? conns24[0]->data_calls : 0) + (conns24[1] ? conns24[1]->data_calls : 0);
    ck_assert_int_eq(data_calls, 1);
    ck_assert_int_eq(x.srv.lost, 1);
    ck_assert_int_eq(x.srv.lost_kind[PROTOCOL_ABORTED], 1);
    rawc_free(a); /* the survivor's peer goes too */
    rawc_free(b);
    ck_assert(th_iterate_until(x.r, &x.srv.done, WAIT));
    ck_assert_int_eq(x.srv.lost, 2);
    if (extra_pair[0] >= 0) {
        close(extra_pair[0]);
        close(extra_pair[1]);
    }
    tfx_close(&x);
}
END_TEST

/* 2.5: closing inside the connection's own callback. */
static int closed_fd = -1;
static int close_mode;

static int close_self(struct tp *p, const char *data, size_t len)
{
    (void)data;
    (void)len;
    closed_fd = transport_fd(p->base.transport);
    if (close_mode == 0)
        transport_lose_connection(p->base.transport);
    else
        transport_abort_connection(p->base.transport);
    transport_write(p->base.transport, "late", 4);
    ck_assert_int_eq(p->lost, 0); /* connection_lost only after we return */
    return 0;
}

START_TEST(test_2_5_close_in_own_callback)
{
    for (close_mode = 0; close_mode < 2; close_mode++) {
        struct tfx x;
        tfx_open(&x, _i, TP_RECORD);
        x.srv.on_data = close_self;
        x.srv.on_lost = tp_set_done;
        struct rawc *c = tfx_raw(&x);
        rawc_send(c, "x", 1);
        ck_assert(th_iterate_until(x.r, &x.srv.done, WAIT));
        ck_assert_int_eq(x.srv.lost, 1);
        ck_assert_int_eq(x.srv.last_lost_kind, close_mode == 0 ? PROTOCOL_DONE : PROTOCOL_ABORTED);
        errno = 0;
        ck_assert_int_eq(fcntl(closed_fd, F_GETFD), -1);
        ck_assert_int_eq(errno, EBADF);
        ck_assert(th_iterate_until(x.r, &c->done, WAIT));
        if (close_mode == 0)
            ck_assert(c->len == 4 && memcmp(c->buf, "late", 4) == 0); /* lose: still sent */
        else
            ck_assert_uint_eq(c->len, 0); /* abort: dropped */
        tfx_close(&x);
    }
}
END_TEST

/* 2.5 bis: abort while the same fd has READABLE and WRITABLE ready in one batch. */
static int abort_on_data(struct tp *p, const char *data, size_t len)
{
    (void)data;
    (void)len;
    ck_assert(p->base.transport->flags & T_WANT_WRITE);
    transport_abort_connection(p->base.transport);
    return 0;
}

START_TEST(test_2_5_abort_with_write_pending)
{
    struct tfx x;
    tfx_open(&x, _i, TP_RECORD);
    x.srv.on_made = write_big;
    x.srv.on_data = abort_on_data;
    x.srv.on_lost = tp_set_done;
    struct rawc *c = tfx_raw_slow(&x, 4096);
    tfx_wait_write_blocked(&x, WAIT);
    ck_assert_ptr_nonnull(x.srv.last);
    rawc_send(c, "x", 1);
    rawc_watch(c); /* reading makes the server writable while it is readable */
    ck_assert(th_iterate_until(x.r, &x.srv.done, WAIT));
    ck_assert_int_eq(x.srv.lost, 1);
    ck_assert_int_eq(x.srv.last_lost_kind, PROTOCOL_ABORTED);
    tfx_close(&x);
}
END_TEST

/* 2.7: accept() failing with EMFILE must not spin. */
START_TEST(test_2_7_emfile_on_accept)
{
    if (getenv("TWISTC_UNDER_VALGRIND"))
        return; /* valgrind keeps its own fd table limits */
    struct tfx x;
    tfx_open(&x, _i, TP_ECHO);
    int cl[5];
    for (int i = 0; i < 5; i++) {
        cl[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(cl[i], 0);
    }
    struct rlimit old;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    int top = dup(0);
    close(top);
    struct rlimit low = old;
    low.rlim_cur = (rlim_t)top + 8;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    int fill[64], nfill = 0;
    while (nfill < 64) {
        int fd = dup(0);
        if (fd < 0)
            break;
        fill[nfill++] = fd;
    }
    ck_assert_int_eq(errno, EMFILE);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)x.port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(connect(cl[i], (struct sockaddr *)&a, sizeof a), 0);
    uint64_t it = idle_iterations(x.r, 0.2);
    ck_assert_uint_lt(it, 20);
    ck_assert_int_eq(x.srv.made, 0);
    /* the waiting clients were shed: EOF or reset, not a hang */
    for (int i = 0; i < 5; i++) {
        char ch;
        ssize_t n = recv(cl[i], &ch, 1, MSG_DONTWAIT);
        ck_assert_msg(n == 0 || (n < 0 && errno == ECONNRESET), "client %d: n=%zd errno=%d", i,
                      n, errno);
        close(cl[i]);
    }
    /* fds back: the listener accepts again */
    for (int i = 0; i < nfill; i++)
        close(fill[i]);
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    struct rawc *c = tfx_raw(&x);
    rawc_send(c, "ok", 2);
    c->want = 2;
    ck_assert(th_iterate_until(x.r, &c->done, WAIT));
    ck_assert_int_eq(x.srv.made, 1);
    tfx_close(&x);
}
END_TEST

/* 2.8: the peer resets while we have output queued: no SIGPIPE (the runner keeps SIGPIPE
 * at its default, which would kill us), one connection_lost with ECONNRESET/EPIPE. */
START_TEST(test_2_8_peer_reset_mid_write)
{
    struct tfx x;
    tfx_open(&x, _i, TP_RECORD);
    x.srv.on_made = write_big;
    x.srv.on_lost = tp_set_done;
    struct rawc *c = tfx_raw_slow(&x, 4096);
    tfx_wait_write_blocked(&x, WAIT);
    ck_assert_ptr_nonnull(x.srv.last);
    transport *t = x.srv.last->base.transport;
    struct linger lg = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    rawc_close(c); /* RST */
    static char chunk[65536];
    transport_write(t, chunk, sizeof chunk);
    transport_write(t, chunk, sizeof chunk);
    ck_assert(th_iterate_until(x.r, &x.srv.done, WAIT));
    ck_assert_int_eq(x.srv.lost, 1);
    ck_assert_int_eq(x.srv.last_lost_kind, PROTOCOL_LOST);
    ck_assert(x.srv.last_lost_err == ECONNRESET || x.srv.last_lost_err == EPIPE);
    ck_assert_uint_le(idle_iterations(x.r, 0.1), 3);
    tfx_close(&x);
}
END_TEST

/* 2.9: the peer half-closes while answers are pending: the answers still arrive. */
static void answer_after_eof(struct tp *p)
{
    ck_assert_uint_eq(p->in_len, 6);
    ck_assert(!(p->base.transport->flags & T_REG_R)); /* no read interest after EOF */
    write_big(p);
    transport_lose_connection(p->base.transport);
}

START_TEST(test_2_9_half_close_answer_after_eof)
{
    struct tfx x;
    tfx_open(&x, _i, TP_RECORD);
    x.srv.half_close = 1;
    x.srv.on_read_lost = answer_after_eof;
    struct rawc *c = tfx_raw(&x);
    c->check_pattern = 1;
    rawc_send(c, "hello\n", 6);
    shutdown(c->fd, SHUT_WR);
    ck_assert(th_iterate_until(x.r, &c->done, WAIT));
    ck_assert(c->eof);
    ck_assert_uint_eq(c->len, big_len);
    ck_assert_uint_eq(c->bad_at, 0);
    ck_assert_int_eq(x.srv.read_lost, 1);
    ck_assert_int_eq(x.srv.lost, 1);
    ck_assert_int_eq(x.srv.last_lost_kind, PROTOCOL_DONE);
    ck_assert_uint_le(idle_iterations(x.r, 0.1), 3);
    tfx_close(&x);
}
END_TEST

static int answer_big(struct tp *p, const char *data, size_t len)
{
    (void)data;
    (void)len;
    write_big(p);
    return 0;
}

START_TEST(test_2_9_eof_flushes_pending_answers)
{
    struct tfx x;
    tfx_open(&x, _i, TP_RECORD);
    x.srv.on_data = answer_big; /* no read_connection_lost: EOF = lose_connection */
    struct rawc *c = tfx_raw_slow(&x, 4096);
    c->check_pattern = 1;
    rawc_send(c, "q", 1);
    shutdown(c->fd, SHUT_WR);
    tfx_wait_made(&x, 1, WAIT); /* then the data and the EOF, before the peer reads */
    th_iterate_n(x.r, 5);
    rawc_watch(c);
    ck_assert(th_iterate_until(x.r, &c->done, WAIT));
    ck_assert(c->eof);
    ck_assert_uint_eq(c->len, big_len);
    ck_assert_uint_eq(c->bad_at, 0);
    ck_assert_int_eq(x.srv.lost, 1);
    ck_assert_int_eq(x.srv.last_lost_kind, PROTOCOL_DONE);
    tfx_close(&x);
}
END_TEST

/* 2.9 ter: our half-close (lose_write_connection) after the flush. */
static int half_close_reply(struct tp *p, const char *data, size_t len)
{
    transport_write(p->base.transport, data, len);
    transport_lose_write_connection(p->base.transport);
    transport_lose_write_connection(p->base.transport);
    return 0;
}

START_TEST(test_2_9_lose_write_connection)
{
    struct tfx x;
    tfx_open(&x, _i, TP_RECORD);
    x.srv.half_close = 1;
    x.srv.on_data = half_close_reply;
    x.srv.on_lost = tp_set_done;
    struct rawc *c = tfx_raw(&x);
    rawc_send(c, "abc", 3);
    ck_assert(th_iterate_until(x.r, &c->done, WAIT));
    ck_assert(c->eof); /* our FIN, after the data */
    ck_assert(c->len == 3 && memcmp(c->buf, "abc", 3) == 0);
    ck_assert_int_eq(x.srv.lost, 0); /* still open for reading */
    shutdown(c->fd, SHUT_WR);        /* both directions closed: the connection is over */
    ck_assert(th_iterate_until(x.r, &x.srv.done, WAIT));
    ck_assert_int_eq(x.srv.last_lost_kind, PROTOCOL_DONE);
    tfx_close(&x);
}
END_TEST

/* 2.16 (kqueue's EV_EOF; runs on every backend): data followed by a FIN all arrives
 * before the EOF notification. */
static void check_all_before_eof(struct tp *p)
{
    ck_assert_uint_eq(p->in_len, 10240);
    transport_lose_connection(p->base.transport);
}

START_TEST(test_2_16_data_then_fin)
{
    struct tfx x;
    tfx_open(&x, _i, TP_RECORD);
    x.srv.half_close = 1;
    x.srv.on_read_lost = check_all_before_eof;
    x.srv.on_lost = tp_set_done;
    struct rawc *c = tfx_raw(&x);
    static char ten[10240];
    rawc_send(c, ten, sizeof ten);
    shutdown(c->fd, SHUT_WR);
    ck_assert(th_iterate_until(x.r, &x.srv.done, WAIT));
    ck_assert_int_eq(x.srv.read_lost, 1);
    ck_assert_int_eq(x.srv.lost, 1);
    ck_assert_uint_le(idle_iterations(x.r, 0.1), 3);
    tfx_close(&x);
}
END_TEST

/* Backpressure: a push producer is paused above the high-water mark and resumed once
 * the output drained. */
struct prod {
    transport *t;
    int paused, resumed, stopped, pulls;
    int pull_limit;
};

static void prod_pause(void *d) { ((struct prod *)d)->paused++; }
static void prod_resume(void *d)
{
    struct prod *p = d;
    p->resumed++;
    if (p->pull_limit) { /* pull producer: one chunk per resume */
        if (p->pulls < p->pull_limit) {
            char chunk[1000];
            fill_pattern(chunk, sizeof chunk, (size_t)p->pulls * 1000);
            p->pulls++;
            transport_write(p->t, chunk, sizeof chunk);
        } else {
            transport_unregister_producer(p->t); /* lets the pending lose go ahead */
        }
    }
}
static void prod_stop(void *d) { ((struct prod *)d)->stopped++; }
static const transport_producer_ops prod_ops = {prod_pause, prod_resume, prod_stop};

static struct prod the_prod;

static void push_producer(struct tp *p)
{
    the_prod.t = p->base.transport;
    ck_assert_int_eq(transport_register_producer(p->base.transport, &prod_ops, &the_prod, 1), 0);
    ck_assert_int_eq(transport_register_producer(p->base.transport, &prod_ops, &the_prod, 1), -EBUSY);
    write_big(p);
    ck_assert_int_eq(the_prod.paused, 1); /* above 64 KiB */
}

START_TEST(test_push_producer)
{
    memset(&the_prod, 0, sizeof the_prod);
    struct tfx x;
    tfx_open(&x, _i, TP_RECORD);
    x.srv.on_made = push_producer;
    struct rawc *c = tfx_raw(&x);
    c->want = big_len;
    c->check_pattern = 1;
    ck_assert(th_iterate_until(x.r, &c->done, WAIT));
    ck_assert_uint_eq(c->bad_at, 0);
    ck_assert_int_eq(the_prod.paused, 1);
    ck_assert_int_eq(the_prod.resumed, 1);
    rawc_close(c);
    x.srv.on_lost = tp_set_done;
    ck_assert(th_iterate_until(x.r, &x.srv.done, WAIT));
    ck_assert_int_eq(the_prod.stopped, 1); /* told when the connection went */
    tfx_close(&x);
}
END_TEST

static void pull_producer(struct tp *p)
{
    the_prod.t = p->base.transport;
    the_prod.pull_limit = 100;
    ck_assert_int_eq(transport_register_producer(p->base.transport, &prod_ops, &the_prod, 0), 0);
    ck_assert_int_eq(the_prod.resumed, 1); /* at registration */
    transport_lose_connection(p->base.transport); /* waits for the producer */
}

START_TEST(test_pull_producer)
{
    memset(&the_prod, 0, sizeof the_prod);
    struct tfx x;
    tfx_open(&x, _i, TP_RECORD);
    x.srv.on_made = pull_producer;
    struct rawc *c = tfx_raw(&x);
    c->check_pattern = 1;
    ck_assert(th_iterate_until(x.r, &c->done, WAIT));
    ck_assert(c->eof);
    ck_assert_uint_eq(c->len, 100 * 1000);
    ck_assert_uint_eq(c->bad_at, 0);
    ck_assert_int_eq(the_prod.paused, 0); /* pull producers are never paused */
    ck_assert_int_eq(the_prod.stopped, 0);
    tfx_close(&x);
}
END_TEST

/* 1,000 connections opened and closed: nothing leaks (ASan/valgrind check the memory;
 * we check descriptors and the module's lists). */
static int count_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 4096; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            n++;
    return n;
}

static void close_at_once(struct tp *p) { transport_lose_connection(p->base.transport); }

START_TEST(test_thousand_connections_no_leak)
{
    struct tfx x;
    tfx_open(&x, _i, TP_ECHO);
    x.cli.on_made = close_at_once;
    int fds_before = count_fds();
    enum { TOTAL = 1000, BATCH = 50 };
    for (int done = 0; done < TOTAL; done += BATCH) {
        connector *cs[BATCH];
        for (int i = 0; i < BATCH; i++) {
            cs[i] = reactor_connect_tcp(x.r, "127.0.0.1", x.port, &x.cli.f, 5);
            ck_assert_ptr_nonnull(cs[i]);
        }
        for (int i = 0; i < 2000 && (x.cli.lost < done + BATCH || x.srv.lost < done + BATCH); i++)
            reactor_iterate(x.r, 0.05);
        ck_assert_int_eq(x.cli.lost, done + BATCH);
        ck_assert_int_eq(x.srv.lost, done + BATCH);
        for (int i = 0; i < BATCH; i++)
            connector_free(cs[i]);
    }
    ck_assert_int_eq(x.cli.made, TOTAL);
    ck_assert_int_eq(x.srv.made, TOTAL);
    ck_assert_int_eq(x.cli.failed, 0);
    struct transport_mod *m = transport__mod(x.r);
    ck_assert_ptr_null(m->conns);
    ck_assert_ptr_null(m->connectors);
    ck_assert_int_eq(count_fds(), fds_before);
    tfx_close(&x);
}
END_TEST

START_TEST(test_factory_start_stop)
{
    reactor *r = th_reactor(_i);
    struct tfactory tf;
    tf_init(&tf, TP_ECHO);
    listener *a = reactor_listen_tcp(r, "127.0.0.1", 0, &tf.f, 0);
    listener *b = reactor_listen_tcp(r, "127.0.0.1", 0, &tf.f, 0);
    ck_assert_int_eq(tf.started, 1);
    listener_stop(a);
    ck_assert_int_eq(tf.stopped, 0);
    listener_stop(b);
    ck_assert_int_eq(tf.stopped, 1);
    listener_free(a);
    listener_free(b);
    ck_assert_int_eq(tf.stopped, 1);
    reactor_free(r);
}
END_TEST

extern Suite *suite_reactor_transport_pitfalls(void);
Suite *suite_reactor_transport_pitfalls(void)
{
    Suite *s = suite_create("reactor_transport_pitfalls");
    TCase *tc = tcase_create("pitfalls");
    tcase_set_timeout(tc, 60);
    int n = th_backend_count();
    tcase_add_loop_test(tc, test_2_2_slow_reader_partial_writes, 0, n);
    tcase_add_loop_test(tc, test_2_3_read_budget_fairness, 0, n);
    tcase_add_loop_test(tc, test_2_4_close_other_with_pending_event, 0, n);
    tcase_add_loop_test(tc, test_2_5_close_in_own_callback, 0, n);
    tcase_add_loop_test(tc, test_2_5_abort_with_write_pending, 0, n);
    tcase_add_loop_test(tc, test_2_7_emfile_on_accept, 0, n);
    tcase_add_loop_test(tc, test_2_8_peer_reset_mid_write, 0, n);
    tcase_add_loop_test(tc, test_2_9_half_close_answer_after_eof, 0, n);
    tcase_add_loop_test(tc, test_2_9_eof_flushes_pending_answers, 0, n);
    tcase_add_loop_test(tc, test_2_9_lose_write_connection, 0, n);
    tcase_add_loop_test(tc, test_2_16_data_then_fin, 0, n);
    tcase_add_loop_test(tc, test_push_producer, 0, n);
    tcase_add_loop_test(tc, test_pull_producer, 0, n);
    tcase_add_loop_test(tc, test_thousand_connections_no_leak, 0, n);
    tcase_add_loop_test(tc, test_factory_start_stop, 0, n);
    suite_add_tcase(s, tc);
    return s;
}
