/* ReconnectingClientFactory: backoff sequence, max_retries, stop_trying, reset on
 * success. Real loopback sockets, the reactor's fake clock for the waits. */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <twistc/reconnecting.h>
#include <twistc/transport.h>

#include "helpers.h"
#include "transport_helpers.h"

struct cli {
    int failed, lost, made;
};

static void c_made(protocol *p) { (void)p; }
static int c_data(protocol *p, const char *d, size_t n)
{
    (void)p, (void)d, (void)n;
    return 0;
}
static void c_lost(protocol *p, const protocol_reason *r)
{
    (void)r;
    free(p);
}
static const protocol_ops cops = {.connection_made = c_made, .data_received = c_data,
                                  .connection_lost = c_lost};

static protocol *c_build(factory *f, const struct sockaddr *a, socklen_t l)
{
    (void)a, (void)l;
    ((struct cli *)f->data)->made++;
    protocol *p = malloc(sizeof *p);
    protocol_init(p, &cops);
    return p;
}
static void c_failed(factory *f, connector *c, const protocol_reason *r)
{
    (void)c;
    ck_assert_int_eq(r->kind, PROTOCOL_CONNECT_REFUSED);
    ((struct cli *)f->data)->failed++;
}
static void c_client_lost(factory *f, connector *c, const protocol_reason *r)
{
    (void)c, (void)r;
    ((struct cli *)f->data)->lost++;
}
static const factory_ops fops = {.build_protocol = c_build,
                                 .client_connection_failed = c_failed,
                                 .client_connection_lost = c_client_lost};

/* Iterates (the fake clock never blocks a poll) until *counter reaches want. */
static void iterate_until_count(reactor *r, const int *counter, int want)
{
    for (int i = 0; i < 200000 && *counter < want; i++)
        ck_assert_int_eq(reactor_iterate(r, 0), 0);
    ck_assert_int_eq(*counter, want);
}

static int refused_port(reactor *r)
{
    struct tfactory tf;
    tf_init(&tf, TP_ECHO);
    listener *l = reactor_listen_tcp(r, "127.0.0.1", 0, &tf.f, 0);
    int port = listener_port(l);
    listener_free(l);
    return port;
}

START_TEST(test_backoff_sequence)
{
    reactor *r = th_reactor(_i);
    ck_assert_int_eq(reactor_use_fake_clock(r, 100.0), 0);
    int port = refused_port(r);
    struct cli cl = {0};
    reconnecting_factory *rf = reconnecting_factory_new(r, &fops, &cl);
    ck_assert_ptr_nonnull(rf);
    reconnecting_backoff *b = reconnecting_factory_backoff(rf);
    b->initial_delay = 1;
    b->factor = 2;
    b->max_delay = 10;
    b->jitter = 0;
    b->max_retries = 5;
    connector *c = reactor_connect_tcp(r, "127.0.0.1", port, reconnecting_factory_base(rf), 5);
    ck_assert_ptr_nonnull(c);
    const double want[] = {1, 2, 4, 8, 10};
    for (int k = 0; k < 5; k++) {
        iterate_until_count(r, &cl.failed, k + 1);
        ck_assert(reconnecting_factory_next_retry(rf) >= 0);
        double wait = reconnecting_factory_next_retry(rf) - reactor_seconds(r);
        ck_assert_msg(fabs(wait - want[k]) < 1e-9, "retry %d waits %g, want %g", k + 1, wait,
                      want[k]);
        ck_assert_int_eq(reactor_advance(r, wait), 0); /* connector_connect runs */
        ck_assert(reconnecting_factory_next_retry(rf) == -1);
    }
    iterate_until_count(r, &cl.failed, 6);
    ck_assert(reconnecting_factory_next_retry(rf) == -1); /* retries 6 > max_retries 5: given up */
    ck_assert_int_eq(cl.made, 0);
    connector_free(c);
    reconnecting_factory_free(rf);
    reactor_free(r);
}
END_TEST

START_TEST(test_jitter_spreads_waits)
{
    reactor *r = th_reactor(_i);
    ck_assert_int_eq(reactor_use_fake_clock(r, 0.0), 0);
    int port = refused_port(r);
    struct cli cl = {0};
    reconnecting_factory *rf = reconnecting_factory_new(r, &fops, &cl);
    ck_assert_ptr_nonnull(rf);
    reconnecting_factory_seed(rf, 42);
    connector *c = reactor_connect_tcp(r, "127.0.0.1", port, reconnecting_factory_base(rf), 5);
    iterate_until_count(r, &cl.failed, 1);
    double wait = reconnecting_factory_next_retry(rf) - reactor_seconds(r);
    /* first wait: about initial_delay (1 s), jitter ~12 % */
    ck_assert(wait > 0.4 && wait < 1.6);
    ck_assert(wait != 1.0);
    ck_assert(reconnecting_factory_delay(rf) == 1.0); /* jitter does not compound into the delay */
    reconnecting_factory_stop_trying(rf);
    ck_assert(reconnecting_factory_next_retry(rf) == -1);
    reactor_advance(r, 10);
    th_iterate_n(r, 5);
    ck_assert_int_eq(cl.failed, 1); /* no more attempts */
    connector_free(c);
    reconnecting_factory_free(rf);
    reactor_free(r);
}
END_TEST

/* A server that closes every connection at once: the client reconnects after each loss,
 * and every success resets the delay. */
static void close_now(struct tp *p) { transport_lose_connection(p->base.transport); }

START_TEST(test_reconnect_after_loss)
{
    reactor *r = th_reactor(_i);
    ck_assert_int_eq(reactor_use_fake_clock(r, 0.0), 0);
    struct tfactory srv;
    tf_init(&srv, TP_ECHO);
    srv.on_made = close_now;
    listener *l = reactor_listen_tcp(r, "127.0.0.1", 0, &srv.f, 0);
    struct cli cl = {0};
    reconnecting_factory *rf = reconnecting_factory_new(r, &fops, &cl);
    ck_assert_ptr_nonnull(rf);
    reconnecting_factory_backoff(rf)->jitter = 0;
    reconnecting_factory_backoff(rf)->initial_delay = 0.5;
    connector *c = reactor_connect_tcp(r, "127.0.0.1", listener_port(l), reconnecting_factory_base(rf), 5);
    for (int k = 1; k <= 3; k++) {
        iterate_until_count(r, &cl.lost, k);
        ck_assert_int_eq(cl.made, k);
        /* reset by the success, then one retry */
        ck_assert_int_eq(reconnecting_factory_retries(rf), 1);
        ck_assert(fabs(reconnecting_factory_next_retry(rf) - reactor_seconds(r) - 0.5) < 1e-9);
        ck_assert_ptr_eq(reconnecting_factory_connector(rf), c);
        reactor_advance(r, 0.5);
    }
    reconnecting_factory_stop_trying(rf);
    connector_free(c);
    reconnecting_factory_free(rf);
    listener_free(l);
    reactor_free(r);
}
END_TEST

extern Suite *suite_protocols_reconnecting(void);
Suite *suite_protocols_reconnecting(void)
{
    Suite *s = suite_create("protocols_reconnecting");
    TCase *tc = tcase_create("reconnecting");
    tcase_set_timeout(tc, 30);
    int n = th_backend_count();
    tcase_add_loop_test(tc, test_backoff_sequence, 0, n);
    tcase_add_loop_test(tc, test_jitter_spreads_waits, 0, n);
    tcase_add_loop_test(tc, test_reconnect_after_loss, 0, n);
    suite_add_tcase(s, tc);
    return s;
}
