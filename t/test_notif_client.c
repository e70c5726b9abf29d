/* The notification client: over the in-memory transport (FIFO of Deferreds, errors,
 * notifications in between answers, connection loss), then against the real server on
 * loopback (the talk's flow, notify mode, server full, refused, graceful shutdown). */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <fcntl.h>

#include <twistc/coro.h>
#include <twistc/deferred.h>
#include <twistc/memory_transport.h>
#include "apps/notif/notif_client.h"
#include "apps/notif/notif_server.h"
#include <twistc/transport.h>

#include "helpers.h"
#include "notif_helpers.h"

/* Records what a Deferred fired with. */
struct got {
    int fired, failed, code;
    long long i;
    char s[256];
};

static deferred_result rec(deferred_result r, void *arg)
{
    struct got *g = arg;
    g->fired++;
    if (r.kind == DEFERRED_FAILURE) {
        g->failed = 1;
        g->code = r.u.failure->code;
        snprintf(g->s, sizeof g->s, "%s", r.u.failure->message);
    } else if (r.kind == DEFERRED_INT) {
        g->i = r.u.i;
    } else if (r.kind == DEFERRED_STR) {
        snprintf(g->s, sizeof g->s, "%s", r.u.s);
    }
    deferred_result_clear(&r);
    return deferred_none();
}

/* Adds the recorder and drops the caller's reference. */
static void watch(deferred *d, struct got *g)
{
    memset(g, 0, sizeof *g);
    ck_assert_ptr_nonnull(d);
    deferred_add_both(d, rec, g);
    deferred_unref(d);
}

static transport *mt;
static notif_client *cl;

static void msetup(void)
{
    mt = memory_transport_new();
    cl = notif_client_new();
    ck_assert_ptr_nonnull(cl);
    ck_assert_int_eq(memory_transport_connect(mt, notif_client_protocol(cl)), 0);
}

static void mteardown(void)
{
    if (!memory_transport_lost(mt))
        memory_transport_lose(mt, PROTOCOL_DONE, 0);
    notif_client_free(cl);
    memory_transport_free(mt);
}

static void server_says(const char *s) { memory_transport_receive(mt, s, strlen(s)); }

static const char *sent(void)
{
    static char buf[4096];
    size_t n;
    const char *v = memory_transport_value(mt, &n);
    ck_assert_uint_lt(n, sizeof buf);
    memcpy(buf, v, n);
    buf[n] = '\0';
    return buf;
}

START_TEST(test_random_and_classified)
{
    struct got a, b;
    watch(notif_random(cl), &a);
    watch(notif_classified(cl), &b);
    ck_assert_str_eq(sent(), "random?\nclassified?\n");
    ck_assert_uint_eq(notif_client_pending(cl), 2);
    server_says("46774\n");
    ck_assert_int_eq(a.fired, 1);
    ck_assert(!a.failed);
    ck_assert_int_eq(a.i, 46774);
    ck_assert_int_eq(b.fired, 0);
    server_says("nice flat in the 11e\r\n"); /* CRLF from a peer is fine too */
    ck_assert_int_eq(b.fired, 1);
    ck_assert_str_eq(b.s, "nice flat in the 11e");
    ck_assert_uint_eq(notif_client_pending(cl), 0);
}
END_TEST

static int randoms, classifieds;
static void on_random(notif_client *c, void *data) { randoms++; }
static void on_classified(notif_client *c, void *data) { classifieds++; }

START_TEST(test_notifications_between_answers)
{
    struct got a, b, c;
    randoms = classifieds = 0;
    notif_set_random_available(cl, on_random, NULL);
    notif_set_classified_available(cl, on_classified, NULL);
    ck_assert_int_eq(notif_notify(cl), 0);
    watch(notif_random(cl), &a);
    watch(notif_classified(cl), &b);
    watch(notif_random(cl), &c);
    /* notifications arrive anywhere between answers and are never taken for one */
    server_says("notif: random\n12\nnotif: classified\nnotif: random\nan ad\nnotif: cla");
    ck_assert_int_eq(a.i, 12);
    ck_assert_str_eq(b.s, "an ad");
    ck_assert_int_eq(c.fired, 0);
    ck_assert_int_eq(randoms, 2);
    ck_assert_int_eq(classifieds, 1);
    server_says("ssified\n99999\n");
    ck_assert_int_eq(classifieds, 2);
    ck_assert_int_eq(c.i, 99999);
    ck_assert_int_eq(notif_stop_notify(cl), 0);
    ck_assert_str_eq(sent(), "notify\nrandom?\nclassified?\nrandom?\nstop\n");
    ck_assert_uint_eq(notif_client_notifications(cl), 4);
}
END_TEST

START_TEST(test_wait_notif_first)
{
    struct got w1, w2;
    randoms = 0;
    notif_set_random_available(cl, on_random, NULL);
    watch(notif_wait_notif(cl), &w1);
    watch(notif_wait_notif(cl), &w2);
    server_says("notif: classified\nnotif: random\nnotif: random\n");
    ck_assert_str_eq(w1.s, "classified");
    ck_assert_str_eq(w2.s, "random");
    ck_assert_int_eq(randoms, 1); /* no waiter left: the callback got the third */
    notif_set_random_available(cl, NULL, NULL);
    server_says("notif: random\nnotif: something new\n");
    ck_assert_uint_eq(notif_client_dropped_notifications(cl), 1);
}
END_TEST

START_TEST(test_error_answer)
{
    struct got a, b;
    watch(notif_random(cl), &a);
    watch(notif_random(cl), &b);
    server_says("error: unknown command\n5\n");
    ck_assert(a.failed);
    ck_assert_int_eq(a.code, NOTIF_ESERVER);
    ck_assert_str_eq(a.s, "error: unknown command");
    ck_assert(!b.failed);
    ck_assert_int_eq(b.i, 5);
}
END_TEST

START_TEST(test_bad_answer)
{
    struct got a;
    watch(notif_random(cl), &a);
    server_says("twelve\n");
    ck_assert(a.failed);
    ck_assert_int_eq(a.code, NOTIF_EBADANSWER);
}
END_TEST

START_TEST(test_lost_fails_everything)
{
    struct got a, b, w, q;
    watch(notif_random(cl), &a);
    watch(notif_classified(cl), &b);
    watch(notif_wait_notif(cl), &w);
    memory_transport_lose(mt, PROTOCOL_LOST, ECONNRESET);
    ck_assert(a.failed && b.failed && w.failed);
    ck_assert_int_eq(a.code, ECONNRESET);
    ck_assert_int_eq(b.code, ECONNRESET);
    ck_assert(!notif_client_connected(cl));
    watch(notif_random(cl), &q); /* after the loss: at once */
    ck_assert(q.failed);
    ck_assert_int_eq(q.code, ENOTCONN);
    ck_assert_int_eq(notif_notify(cl), -ENOTCONN);
}
END_TEST

START_TEST(test_clean_close_and_quit)
{
    struct got a, q;
    watch(notif_random(cl), &a);
    watch(notif_quit(cl), &q);
    ck_assert_str_eq(sent(), "random?\nquit\n");
    server_says("7\n");
    memory_transport_lose(mt, PROTOCOL_DONE, 0);
    ck_assert_int_eq(a.i, 7);
    ck_assert_int_eq(q.fired, 1);
    ck_assert(!q.failed);
}
END_TEST

START_TEST(test_closed_before_answer)
{
    struct got a;
    watch(notif_random(cl), &a);
    memory_transport_lose(mt, PROTOCOL_DONE, 0);
    ck_assert(a.failed);
    ck_assert_int_eq(a.code, NOTIF_ECLOSED);
}
END_TEST

START_TEST(test_server_full)
{
    struct got a;
    server_says("error: server full\n"); /* before any request */
    watch(notif_random(cl), &a);
    memory_transport_lose(mt, PROTOCOL_DONE, 0);
    ck_assert(a.failed);
    ck_assert_int_eq(a.code, NOTIF_ESERVER);
    ck_assert_str_eq(a.s, "error: server full");
}
END_TEST

START_TEST(test_cancelled_request_answer_consumed)
{
    struct got a, b;
    deferred *d = notif_random(cl);
    watch(deferred_ref(d), &a);
    deferred_cancel(d);
    deferred_unref(d);
    ck_assert_int_eq(a.code, ECANCELED);
    watch(notif_random(cl), &b);
    server_says("1\n2\n"); /* the first answer belongs to the cancelled request */
    ck_assert_int_eq(b.i, 2);
}
END_TEST

START_TEST(test_free_while_connected)
{
    struct got a;
    watch(notif_random(cl), &a);
    notif_client_free(cl); /* closes: lose_connection */
    ck_assert(transport_disconnecting(mt));
    memory_transport_finish(mt);
    ck_assert(a.failed);
    cl = NULL; /* teardown: nothing left to free */
}
END_TEST

/* ---- Against the real server, on loopback ----------------------------------------- */

struct flow {
    reactor *r;
    int port;
    long long n;
    char ad[256];
    char notif[64];
    int ok, done, err_code;
    char err[256];
};

static deferred_result flow_body(void *arg)
{
    struct flow *f = arg;
    deferred_result cr = coro_await_take(notif_client_connect(f->r, "127.0.0.1", f->port, 5));
    if (deferred_result_is_failure(&cr))
        return cr;
    notif_client *c = notif_client_from_result(&cr);
    deferred_result n = coro_await_take(notif_random(c));
    if (deferred_result_is_failure(&n)) {
        notif_client_free(c);
        return n;
    }
    f->n = n.u.i;
    deferred_result ad = coro_await_take(notif_classified(c));
    if (deferred_result_is_failure(&ad)) {
        notif_client_free(c);
        return ad;
    }
    snprintf(f->ad, sizeof f->ad, "%s", ad.u.s);
    deferred_result_clear(&ad);
    notif_notify(c);
    deferred_result k = coro_await_take(notif_wait_notif(c));
    if (!deferred_result_is_failure(&k))
        snprintf(f->notif, sizeof f->notif, "%s", k.u.s);
    deferred_result_clear(&k);
    notif_stop_notify(c);
    deferred_result q = coro_await_take(notif_quit(c));
    notif_client_free(c);
    return q;
}

static deferred_result flow_done(deferred_result r, void *arg)
{
    struct flow *f = arg;
    f->done = 1;
    if (deferred_result_is_failure(&r)) {
        f->err_code = r.u.failure->code;
        snprintf(f->err, sizeof f->err, "%s", r.u.failure->message);
    } else {
        f->ok = 1;
    }
    deferred_result_clear(&r);
    return deferred_none();
}

static void run_flow(struct flow *f)
{
    deferred *d = coro_start(f->r, flow_body, f, 0);
    ck_assert_ptr_nonnull(d);
    deferred_add_both(d, flow_done, f);
    deferred_unref(d);
    ck_assert(nt_wait(f->r, nt_pred_flag, &f->done, 10));
}

START_TEST(test_loopback_flow)
{
    struct nfx x;
    notif_server_config cfg = {.interval = 0.05};
    nfx_open(&x, _i, &cfg);
    struct flow f = {.r = x.r, .port = x.port};
    run_flow(&f);
    ck_assert_msg(f.ok, "flow failed: %s", f.err);
    ck_assert(f.n >= 0 && f.n <= 99999);
    ck_assert(strlen(f.ad) > 0);
    ck_assert(strcmp(f.notif, "random") == 0 || strcmp(f.notif, "classified") == 0);
    notif_server_stats st = notif_server_get_stats(x.s);
    ck_assert_uint_eq(st.connections, 1);
    ck_assert(nfx_wait_clients(&x, 0, 10)); /* quit closed it */
    nfx_close(&x);
}
END_TEST

START_TEST(test_loopback_refused)
{
    /* a port nobody listens on: bind one, close it */
    struct nfx x;
    nfx_open(&x, 0, NULL);
    listener_free(x.l);
    notif_server_free(x.s);
    x.l = NULL;
    x.s = NULL;
    struct flow f = {.r = x.r, .port = x.port};
    run_flow(&f);
    ck_assert(!f.ok);
    ck_assert_int_eq(f.err_code, ECONNREFUSED);
    nfx_close(&x);
}
END_TEST

START_TEST(test_loopback_server_full)
{
    struct nfx x;
    notif_server_config cfg = {.max_clients = 1, .interval = -1};
    nfx_open(&x, 0, &cfg);
    nfx_client(&x, 0, 1); /* the one client allowed */
    /* let the server accept it */
    ck_assert(nfx_wait_clients(&x, 1, 50));
    struct flow f = {.r = x.r, .port = x.port};
    run_flow(&f);
    ck_assert(!f.ok);
    ck_assert_int_eq(f.err_code, NOTIF_ESERVER);
    ck_assert_str_eq(f.err, "error: server full");
    nfx_close(&x);
}
END_TEST

/* Graceful shutdown: every request the server read is answered before it closes. */
static void stop_when_read(reactor *r, void *data);
struct shut {
    notif_server *s;
    struct nraw *c;
    size_t want;
    int stopped;
};

static void stop_when_read(reactor *r, void *data)
{
    struct shut *sh = data;
    if (notif_server_get_stats(sh->s).requests >= sh->want) {
        reactor_stop(r);
        sh->stopped = 1;
        /* Everything is sent: a well-behaved client half-closes, so the server's
         * close does not wait out its drain grace for our EOF. */
        nraw_shutdown_wr(sh->c);
        return;
    }
    reactor_call_later(r, 0.001, stop_when_read, sh);
}

static void safety_stop(reactor *r, void *data)
{
    if (reactor_running(r))
        reactor_stop(r);
}

START_TEST(test_loopback_graceful_stop)
{
    struct nfx x;
    notif_server_config cfg = {.interval = -1};
    nfx_open(&x, _i, &cfg);
    ck_assert_int_eq(notif_server_stop_on_shutdown(x.s, 5.0), 0);
    struct nraw *c = nfx_client(&x, 0, 1);
    size_t n = 2000;
    nraw_send_randoms(c, n);
    struct shut sh = {.s = x.s, .c = c, .want = n};
    reactor_call_later(x.r, 0, stop_when_read, &sh);
    reactor_call_later(x.r, 10, safety_stop, NULL);
    ck_assert_int_eq(reactor_run(x.r), 0);
    ck_assert(sh.stopped);
    /* After run: the server closed cleanly. The client reads what is left, blocking
     * with a receive timeout (the reactor has run its one run). */
    reactor_unwatch(x.r, c->fd);
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) & ~O_NONBLOCK);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (!c->eof && !c->err) {
        char buf[65536];
        ssize_t got = recv(c->fd, buf, sizeof buf, 0);
        if (got > 0) {
            c->in = realloc(c->in, c->in_len + (size_t)got);
            memcpy(c->in + c->in_len, buf, (size_t)got);
            c->in_len += (size_t)got;
            for (ssize_t k = 0; k < got; k++)
                c->nl += buf[k] == '\n';
        } else if (got == 0) {
            c->eof = 1;
        } else if (errno != EINTR) {
            c->err = errno;
        }
    }
    ck_assert(c->eof);
    ck_assert_uint_eq(nraw_lines(c), n);
    ck_assert_uint_eq(notif_server_get_stats(x.s).clients, 0);
    nfx_close(&x);
}
END_TEST

/* 2,000 requests in flight on one connection while notifications keep coming: every
 * Deferred fires once, with the right kind of value, and notifications are dispatched. */
struct pipe_state {
    int answered, bad, notifs;
    notif_client *c;
};

static deferred_result pipe_got(deferred_result r, void *arg)
{
    struct pipe_state *ps = arg;
    ps->answered++;
    if (r.kind != DEFERRED_INT && r.kind != DEFERRED_STR)
        ps->bad++;
    deferred_result_clear(&r);
    return deferred_none();
}

static void pipe_notif(notif_client *c, void *data) { ((struct pipe_state *)data)->notifs++; }

static deferred_result pipe_connected(deferred_result r, void *arg)
{
    struct pipe_state *ps = arg;
    ps->c = notif_client_from_result(&r);
    notif_set_random_available(ps->c, pipe_notif, ps);
    notif_set_classified_available(ps->c, pipe_notif, ps);
    notif_notify(ps->c);
    for (int i = 0; i < 2000; i++) {
        deferred *d = i % 3 ? notif_random(ps->c) : notif_classified(ps->c);
        deferred_add_both(d, pipe_got, ps);
        deferred_unref(d);
    }
    return deferred_none();
}

static int pipe_done(void *arg)
{
    struct pipe_state *ps = arg;
    return ps->answered == 2000 && ps->notifs > 0;
}

START_TEST(test_loopback_pipelined_with_notifications)
{
    struct nfx x;
    notif_server_config cfg = {.interval = 0.001};
    nfx_open(&x, _i, &cfg);
    struct pipe_state ps = {0};
    deferred *d = notif_client_connect(x.r, "127.0.0.1", x.port, 5);
    deferred_add_callback(d, pipe_connected, &ps);
    deferred_unref(d);
    ck_assert(nt_wait(x.r, pipe_done, &ps, 20));
    ck_assert_int_eq(ps.bad, 0);
    ck_assert_uint_eq(notif_client_pending(ps.c), 0);
    notif_client_free(ps.c);
    nfx_close(&x);
}
END_TEST

extern Suite *suite_notif_client(void);
Suite *suite_notif_client(void)
{
    Suite *s = suite_create("notif_client");
    TCase *tc = tcase_create("memory");
    tcase_add_checked_fixture(tc, msetup, mteardown);
    tcase_add_test(tc, test_random_and_classified);
    tcase_add_test(tc, test_notifications_between_answers);
    tcase_add_test(tc, test_wait_notif_first);
    tcase_add_test(tc, test_error_answer);
    tcase_add_test(tc, test_bad_answer);
    tcase_add_test(tc, test_lost_fails_everything);
    tcase_add_test(tc, test_clean_close_and_quit);
    tcase_add_test(tc, test_closed_before_answer);
    tcase_add_test(tc, test_server_full);
    tcase_add_test(tc, test_cancelled_request_answer_consumed);
    tcase_add_test(tc, test_free_while_connected);
    suite_add_tcase(s, tc);

    tc = tcase_create("loopback");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_loopback_flow, 0, th_backend_count());
    tcase_add_loop_test(tc, test_loopback_pipelined_with_notifications, 0, th_backend_count());
    tcase_add_test(tc, test_loopback_refused);
    tcase_add_test(tc, test_loopback_server_full);
    tcase_add_loop_test(tc, test_loopback_graceful_stop, 0, th_backend_count());
    suite_add_tcase(s, tc);
    return s;
}
