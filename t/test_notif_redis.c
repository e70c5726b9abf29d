/* Notification servers sharing events through a real redis-server (one per suite): three
 * instances on one reactor, notify-mode clients on each, and a publisher from outside.
 * Every client gets every event once, in its producer's order; classified? agrees
 * everywhere; Redis absent at start, killed and restarted, stopped and continued. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/notif/notif_redis.h"
#include <twistc/redis.h>
#include <twistc/transport.h>

#include "helpers.h"
#include "notif_helpers.h"
#include "redis_helpers.h"

static struct trs srv;

static void suite_setup(void) { trs_start(&srv, 0); }
static void suite_teardown(void) { trs_stop(&srv); }
static void test_teardown(void)
{
    if (srv.dir[0])
        trs_signal(&srv, SIGCONT);
}

#define SKIP_IF_NO_REDIS()                                                                    \
    do {                                                                                      \
        if (trs_skip(&srv, __func__))                                                        \
            return;                                                                           \
    } while (0)

#define N_INST 3
#define N_CLI 2 /* notify-mode clients per instance */

struct inst {
    notif_server *s;
    listener *l;
    notif_redis *nr;
    struct nraw cli[N_CLI];
    int ups, downs;
};

struct cluster {
    reactor *r;
    char channel[64];
    struct inst in[N_INST];
    redis_client *pub; /* the outside publisher */
};

static void inst_link(notif_redis *nr, int up, const char *why, void *data)
{
    struct inst *in = data;
    if (up)
        in->ups++;
    else
        in->downs++;
}

static redis_config fast_redis(int port)
{
    redis_config c = {.port = port, .connect_timeout = 0.5, .command_timeout = 0.3,
                      .ping_interval = 0.05, .initial_delay = 0.02, .max_delay = 0.2};
    return c;
}

static const char *const ads_a[] = {"flat A1", "flat A2", "flat A3"};

static void inst_open(struct cluster *c, int i, int redis_port)
{
    struct inst *in = &c->in[i];
    notif_server_config cfg = {.interval = -1, .ads = ads_a, .n_ads = 3, .seed = 7 + (uint64_t)i};
    in->s = notif_server_new(c->r, &cfg);
    ck_assert_ptr_nonnull(in->s);
    in->l = reactor_listen_tcp(c->r, "127.0.0.1", 0, notif_server_factory(in->s), 16);
    ck_assert_ptr_nonnull(in->l);
    notif_redis_config rcfg = {.redis = fast_redis(redis_port), .channel = c->channel};
    in->nr = notif_redis_new(c->r, in->s, &rcfg);
    ck_assert_ptr_nonnull(in->nr);
    notif_redis_on_link(in->nr, inst_link, in);
    for (int k = 0; k < N_CLI; k++) {
        nraw_connect(&in->cli[k], c->r, listener_port(in->l), 0, 1);
        nraw_send_str(&in->cli[k], "notify\n");
    }
}

static int all_up(void *arg)
{
    struct cluster *c = arg;
    for (int i = 0; i < N_INST; i++)
        if (!c->in[i].s || !notif_redis_connected(c->in[i].nr) ||
            notif_server_get_stats(c->in[i].s).subscribers != N_CLI)
            return 0;
    return c->pub == NULL || redis_client_connected(c->pub);
}

static void cluster_open(struct cluster *c, int backend, int redis_port)
{
    memset(c, 0, sizeof *c);
    c->r = th_reactor(backend);
    snprintf(c->channel, sizeof c->channel, "t:%s:%d", reactor_backend_name(c->r), backend);
    for (int i = 0; i < N_INST; i++)
        inst_open(c, i, redis_port);
    redis_config pc = fast_redis(redis_port);
    c->pub = redis_client_new(c->r, &pc);
    ck_assert_ptr_nonnull(c->pub);
}

static void cluster_close(struct cluster *c)
{
    for (int i = 0; i < N_INST; i++) {
        struct inst *in = &c->in[i];
        for (int k = 0; k < N_CLI; k++)
            nraw_free(&in->cli[k]);
        notif_redis_free(in->nr);
        listener_free(in->l);
        notif_server_free(in->s);
    }
    redis_client_free(c->pub);
    reactor_free(c->r);
}

/* Every client of every instance has `want` lines. */
struct want_all {
    struct cluster *c;
    size_t want;
};

static int pred_all_lines(void *arg)
{
    struct want_all *w = arg;
    for (int i = 0; i < N_INST; i++)
        for (int k = 0; k < N_CLI; k++)
            if (nraw_lines(&w->c->in[i].cli[k]) < w->want)
                return 0;
    return 1;
}

static void wait_lines(struct cluster *c, size_t want)
{
    struct want_all w = {c, want};
    ck_assert_msg(nt_wait(c->r, pred_all_lines, &w, 10), "not every client got %zu lines", want);
}

/* The line n of every client is `expect`; none has more than `total` lines. */
static void check_line(struct cluster *c, size_t n, const char *expect)
{
    char buf[128];
    for (int i = 0; i < N_INST; i++)
        for (int k = 0; k < N_CLI; k++) {
            const char *l = nraw_line(&c->in[i].cli[k], n, buf, sizeof buf);
            ck_assert_ptr_nonnull(l);
            ck_assert_msg(strcmp(l, expect) == 0, "instance %d client %d line %zu: '%s' != '%s'", i,
                          k, n, l, expect);
        }
}

static void check_total(struct cluster *c, size_t total)
{
    for (int i = 0; i < N_INST; i++)
        for (int k = 0; k < N_CLI; k++)
            ck_assert_msg(nraw_lines(&c->in[i].cli[k]) == total,
                          "instance %d client %d: %zu lines, want %zu (a duplicate?)", i, k,
                          nraw_lines(&c->in[i].cli[k]), total);
}

/* A few idle iterations with real time passing, so a duplicate would have arrived. */
static void settle(reactor *r, double secs)
{
    int done = 0;
    reactor_call_later(r, secs, th_set_flag, &done);
    th_iterate_until(r, &done, secs + 5);
}

static deferred_result post_done(deferred_result r, void *arg)
{
    ck_assert_msg(r.kind != DEFERRED_FAILURE, "post failed: %s",
                  r.kind == DEFERRED_FAILURE ? r.u.failure->message : "");
    deferred_result_clear(&r);
    return deferred_none();
}

/* Posts from outside, as notif-publish does. */
static void post(struct cluster *c, notif_event ev, const char *ad)
{
    deferred *d = notif_redis_post(c->pub, c->channel, ev, ad);
    ck_assert_ptr_nonnull(d);
    deferred_add_both(d, post_done, NULL);
    deferred_unref(d);
}

static int classified_is(struct cluster *c, const char *ad)
{
    for (int i = 0; i < N_INST; i++) {
        const char *got = notif_server_classified(c->in[i].s, NULL);
        if (strcmp(got, ad) != 0)
            return 0;
    }
    return 1;
}

START_TEST(test_every_client_every_event_once_in_order)
{
    SKIP_IF_NO_REDIS();
    struct cluster c;
    cluster_open(&c, _i, srv.port);
    ck_assert(nt_wait(c.r, all_up, &c, 10));
    size_t n = 0;
    /* Each instance in turn produces C R R C (its own clients at once, the others
     * through Redis): every client sees exactly that sequence, once. */
    static const notif_event pattern[] = {NOTIF_EVENT_CLASSIFIED, NOTIF_EVENT_RANDOM,
                                          NOTIF_EVENT_RANDOM, NOTIF_EVENT_CLASSIFIED};
    for (int i = 0; i < N_INST; i++) {
        for (size_t e = 0; e < 4; e++)
            ck_assert_int_eq(notif_server_publish(c.in[i].s, pattern[e]), N_CLI);
        wait_lines(&c, n + 4);
        for (size_t e = 0; e < 4; e++)
            check_line(&c, n + e,
                       pattern[e] == NOTIF_EVENT_CLASSIFIED ? "notif: classified" : "notif: random");
        n += 4;
        /* classified? agrees everywhere with the producer's newest ad */
        const char *ad = notif_server_classified(c.in[i].s, NULL);
        ck_assert(classified_is(&c, ad));
    }
    /* From outside: an ad of nobody's list reaches every client and every classified?. */
    post(&c, NOTIF_EVENT_CLASSIFIED, "bike from the back office");
    post(&c, NOTIF_EVENT_RANDOM, NULL);
    wait_lines(&c, n + 2);
    check_line(&c, n, "notif: classified");
    check_line(&c, n + 1, "notif: random");
    n += 2;
    ck_assert(classified_is(&c, "bike from the back office"));
    /* ... and on the wire too */
    struct nraw q;
    nraw_connect(&q, c.r, listener_port(c.in[2].l), 0, 1);
    nraw_send_str(&q, "classified?\n");
    struct nt_lines one = {&q, 1};
    ck_assert(nt_wait(c.r, nt_pred_lines, &one, 5));
    char buf[128];
    ck_assert_str_eq(nraw_line(&q, 0, buf, sizeof buf), "bike from the back office");
    nraw_free(&q);
    /* All three at once, interleaved: counts only (each producer's order is kept, the
     * interleaving between producers is Redis's). */
    for (int round = 0; round < 10; round++)
        for (int i = 0; i < N_INST; i++)
            notif_server_publish(c.in[i].s, NOTIF_EVENT_RANDOM);
    n += 10 * N_INST;
    wait_lines(&c, n);
    settle(c.r, 0.1);
    check_total(&c, n);
    for (int i = 0; i < N_INST; i++) {
        notif_redis_stats st = notif_redis_get_stats(c.in[i].nr);
        ck_assert_uint_eq(st.published, 4 + 10);
        ck_assert_uint_eq(st.received, 2 * 4 + 2 + 2 * 10);
        ck_assert_uint_eq(st.bad_messages, 0);
    }
    cluster_close(&c);
}
END_TEST

/* A late instance reads the newest ad from Redis when its link comes up. */
START_TEST(test_late_instance_gets_newest_ad)
{
    SKIP_IF_NO_REDIS();
    struct cluster c;
    cluster_open(&c, _i, srv.port);
    ck_assert(nt_wait(c.r, all_up, &c, 10));
    post(&c, NOTIF_EVENT_CLASSIFIED, "late ad");
    wait_lines(&c, 1);
    notif_server *s = notif_server_new(c.r, NULL);
    notif_redis_config rcfg = {.redis = fast_redis(srv.port), .channel = c.channel};
    notif_redis *nr = notif_redis_new(c.r, s, &rcfg);
    struct inst probe = {0};
    notif_redis_on_link(nr, inst_link, &probe);
    ck_assert(nt_wait(c.r, nt_pred_flag, &probe.ups, 5));
    for (int i = 0; i < 200 && strcmp(notif_server_classified(s, NULL), "late ad") != 0; i++)
        settle(c.r, 0.01);
    ck_assert_str_eq(notif_server_classified(s, NULL), "late ad");
    /* garbage on the channel is counted, not delivered */
    deferred *d = redis_command(c.pub, "PUBLISH %s %s", c.channel, "not an event");
    deferred_unref(d);
    d = redis_command(c.pub, "PUBLISH %s %s", c.channel, "0123456789abcdef 1 classified notif: x");
    deferred_unref(d);
    for (int i = 0; i < 200 && notif_redis_get_stats(nr).bad_messages < 2; i++)
        settle(c.r, 0.01);
    ck_assert_uint_eq(notif_redis_get_stats(nr).bad_messages, 2);
    ck_assert_str_eq(notif_server_classified(s, NULL), "late ad");
    check_total(&c, 1);
    notif_redis_free(nr);
    notif_server_free(s);
    cluster_close(&c);
}
END_TEST

/* No Redis at all: the server serves, its own clients get its events, it keeps trying. */
START_TEST(test_redis_absent_at_start)
{
    reactor *r = th_reactor(_i);
    notif_server_config cfg = {.interval = -1};
    notif_server *s = notif_server_new(r, &cfg);
    listener *l = reactor_listen_tcp(r, "127.0.0.1", 0, notif_server_factory(s), 16);
    /* a port with nothing listening: our own listener's port + a closed one */
    listener *dead = reactor_listen_tcp(r, "127.0.0.1", 0, notif_server_factory(s), 1);
    int dead_port = listener_port(dead);
    listener_free(dead);
    notif_redis_config rcfg = {.redis = fast_redis(dead_port)};
    notif_redis *nr = notif_redis_new(r, s, &rcfg);
    struct inst probe = {0};
    notif_redis_on_link(nr, inst_link, &probe);
    struct nraw cl;
    nraw_connect(&cl, r, listener_port(l), 0, 1);
    nraw_send_str(&cl, "notify\nrandom?\nclassified?\n");
    struct nt_lines two = {&cl, 2};
    ck_assert(nt_wait(r, nt_pred_lines, &two, 5));
    ck_assert_int_eq(notif_server_publish(s, NOTIF_EVENT_RANDOM), 1);
    struct nt_lines three = {&cl, 3};
    ck_assert(nt_wait(r, nt_pred_lines, &three, 5));
    char buf[64];
    ck_assert_str_eq(nraw_line(&cl, 2, buf, sizeof buf), "notif: random");
    int at_least = 3;
    ck_assert(nt_wait(r, nt_pred_flag, &probe.downs, 5));
    for (int i = 0; i < 500 && probe.downs < at_least; i++)
        settle(r, 0.01);
    ck_assert_int_ge(probe.downs, at_least); /* still trying */
    ck_assert_int_eq(probe.ups, 0);
    notif_redis_stats st = notif_redis_get_stats(nr);
    ck_assert_uint_eq(st.publish_failed, 1);
    nraw_free(&cl);
    notif_redis_free(nr);
    listener_free(l);
    notif_server_free(s);
    reactor_free(r);
}
END_TEST

/* Redis killed and restarted on its port: every instance reconnects, resubscribes, and
 * events flow again, once each. One backend (it restarts the suite's server). */
START_TEST(test_redis_restart)
{
    SKIP_IF_NO_REDIS();
    struct cluster c;
    cluster_open(&c, 0, srv.port);
    ck_assert(nt_wait(c.r, all_up, &c, 10));
    notif_server_publish(c.in[0].s, NOTIF_EVENT_RANDOM);
    wait_lines(&c, 1);
    trs_kill(&srv);
    for (int i = 0; i < 500 && c.in[2].downs < 1; i++)
        settle(c.r, 0.01);
    ck_assert_int_ge(c.in[2].downs, 1);
    /* while down: local clients still get local events */
    notif_server_publish(c.in[1].s, NOTIF_EVENT_RANDOM);
    struct nt_lines two = {&c.in[1].cli[0], 2};
    ck_assert(nt_wait(c.r, nt_pred_lines, &two, 5));
    ck_assert_int_eq(trs_start(&srv, srv.port), 0);
    ck_assert(nt_wait(c.r, all_up, &c, 10));
    /* every instance came back within the back-off (max_delay 0.2 s) */
    for (int i = 0; i < N_INST; i++)
        ck_assert_int_ge(c.in[i].ups, 2);
    notif_server_publish(c.in[2].s, NOTIF_EVENT_CLASSIFIED);
    /* instance 1's clients: 1 + the local one + this; the others 1 + this */
    for (int i = 0; i < N_INST; i++) {
        struct nt_lines w = {&c.in[i].cli[1], i == 1 ? 3u : 2u};
        ck_assert(nt_wait(c.r, nt_pred_lines, &w, 10));
    }
    settle(c.r, 0.1);
    for (int i = 0; i < N_INST; i++)
        for (int k = 0; k < N_CLI; k++)
            ck_assert_uint_eq(nraw_lines(&c.in[i].cli[k]), i == 1 ? 3u : 2u);
    ck_assert(classified_is(&c, notif_server_classified(c.in[2].s, NULL)));
    cluster_close(&c);
}
END_TEST

static int pred_random_answered(void *arg)
{
    struct nraw *q = arg;
    return nraw_lines(q) >= 1;
}

/* Redis stopped (SIGSTOP): requests are still answered, nothing piles up; continued
 * (SIGCONT): every instance resumes, and a new event arrives once everywhere. */
START_TEST(test_redis_sigstop)
{
    SKIP_IF_NO_REDIS();
    struct cluster c;
    cluster_open(&c, _i, srv.port);
    ck_assert(nt_wait(c.r, all_up, &c, 10));
    trs_signal(&srv, SIGSTOP);
    for (int k = 0; k < 50; k++) /* events pile up nowhere: bounded by max_pending */
        notif_server_publish(c.in[0].s, NOTIF_EVENT_RANDOM);
    struct nraw q;
    nraw_connect(&q, c.r, listener_port(c.in[1].l), 0, 1);
    nraw_send_str(&q, "random?\n");
    ck_assert(nt_wait(c.r, pred_random_answered, &q, 5));
    nraw_free(&q);
    for (int i = 0; i < 500 && c.in[2].downs < 1; i++)
        settle(c.r, 0.01);
    ck_assert_int_ge(c.in[2].downs, 1); /* the watchdog noticed */
    trs_signal(&srv, SIGCONT);
    ck_assert(nt_wait(c.r, all_up, &c, 10));
    /* Redis may still run PUBLISHes it had buffered from the dropped connections (late,
     * never twice). Wait until quiet, then one event must arrive once everywhere. */
    settle(c.r, 0.3);
    size_t before[N_INST][N_CLI];
    for (int i = 0; i < N_INST; i++)
        for (int k = 0; k < N_CLI; k++) {
            before[i][k] = nraw_lines(&c.in[i].cli[k]);
            ck_assert_uint_le(before[i][k], 50); /* never more than were produced */
        }
    post(&c, NOTIF_EVENT_RANDOM, NULL);
    for (int i = 0; i < N_INST; i++)
        for (int k = 0; k < N_CLI; k++) {
            struct nt_lines w = {&c.in[i].cli[k], before[i][k] + 1};
            ck_assert(nt_wait(c.r, nt_pred_lines, &w, 10));
        }
    settle(c.r, 0.1);
    for (int i = 0; i < N_INST; i++)
        for (int k = 0; k < N_CLI; k++)
            ck_assert_uint_eq(nraw_lines(&c.in[i].cli[k]), before[i][k] + 1);
    cluster_close(&c);
}
END_TEST

START_TEST(test_post_checks_ads)
{
    reactor *r = th_reactor(0);
    redis_config cfg = {.port = 1};
    redis_client *rc = redis_client_new(r, &cfg);
    const char *bad[] = {"", "a\nb", "notif: x", "error: y"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        deferred *d = notif_redis_post(rc, NULL, NOTIF_EVENT_CLASSIFIED, bad[i]);
        const deferred_result *res = deferred_peek_result(d);
        ck_assert_ptr_nonnull(res);
        ck_assert_int_eq(deferred_result_code(res), EINVAL);
        deferred_result out;
        deferred_take_result(d, &out);
        deferred_result_clear(&out);
        deferred_unref(d);
    }
    redis_client_free(rc);
    reactor_free(r);
}
END_TEST

extern Suite *suite_notif_redis(void);
Suite *suite_notif_redis(void)
{
    Suite *s = suite_create("notif_redis");
    TCase *tc = tcase_create("instances");
    tcase_set_timeout(tc, 60);
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_add_checked_fixture(tc, NULL, test_teardown);
    int n = th_backend_count();
    tcase_add_loop_test(tc, test_every_client_every_event_once_in_order, 0, n);
    tcase_add_loop_test(tc, test_late_instance_gets_newest_ad, 0, n);
    tcase_add_loop_test(tc, test_redis_absent_at_start, 0, n);
    tcase_add_test(tc, test_redis_restart);
    tcase_add_loop_test(tc, test_redis_sigstop, 0, n);
    tcase_add_test(tc, test_post_checks_ads);
    suite_add_tcase(s, tc);
    return s;
}
