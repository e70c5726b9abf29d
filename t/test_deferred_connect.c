/* reactor_connect_protocol (deferred/deferred_connect.c): every outcome on every backend
 * (connected, refused, timeout, DNS, cancelled, reactor stopped or freed while
 * connecting), and failures made from connection reasons. The resolver is faked through
 * the internal seam (resolve__getaddrinfo) where a test needs a DNS failure or a lookup
 * that never answers; the timeout runs on the fake clock. */
#include <check.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <twistc/deferred_connect.h>
#include <twistc/transport.h>

#include "helpers.h"
#include "reactor/transport_internal.h"
#include "tls_helpers.h"
#include "transport_helpers.h"

#define WAIT 5.0

/* The user's protocol: records the order of its calls. */
struct up {
    protocol base;
    int made, lost, data, fired_after_made;
    protocol_reason_kind lost_kind;
    char in[64];
    size_t in_len;
};

static void up_made(protocol *p)
{
    struct up *u = (struct up *)p;
    u->made++;
    transport_write(p->transport, "ping", 4);
}
static int up_data(protocol *p, const char *data, size_t len)
{
    struct up *u = (struct up *)p;
    u->data++;
    if (len > sizeof u->in - u->in_len)
        len = sizeof u->in - u->in_len;
    memcpy(u->in + u->in_len, data, len);
    u->in_len += len;
    return 0;
}
static void up_lost(protocol *p, const protocol_reason *reason)
{
    struct up *u = (struct up *)p;
    u->lost++;
    u->lost_kind = reason->kind;
}
static const protocol_ops up_ops = {
    .connection_made = up_made, .data_received = up_data, .connection_lost = up_lost};

/* What the Deferred fired with. */
struct got {
    int fired, failed, code, kind;
    void *p;
    int transport_set, made_before;
    char msg[256];
};

static deferred_result rec(deferred_result r, void *arg)
{
    struct got *g = arg;
    g->fired++;
    if (r.kind == DEFERRED_FAILURE) {
        g->failed = 1;
        g->code = r.u.failure->code;
        g->kind = deferred_failure_reason_kind(r.u.failure);
        snprintf(g->msg, sizeof g->msg, "%s", r.u.failure->message);
    } else if (r.kind == DEFERRED_PTR) {
        struct up *u = r.u.p;
        g->p = u;
        g->transport_set = u->base.transport != NULL;
        g->made_before = u->made;
    }
    deferred_result_clear(&r);
    return deferred_none();
}

static void watch(deferred *d, struct got *g)
{
    memset(g, 0, sizeof *g);
    ck_assert_ptr_nonnull(d);
    deferred_add_both(d, rec, g);
    deferred_unref(d);
}

static int fake_err;
static int gate[2] = {-1, -1};

static int fake_gai(const char *host, const char *service, const struct addrinfo *hints,
                    struct addrinfo **res)
{
    (void)host, (void)service, (void)hints;
    *res = NULL;
    if (gate[0] >= 0) { /* a lookup that answers only when the test says so */
        char b;
        while (read(gate[0], &b, 1) < 0 && errno == EINTR)
            ;
    }
    return fake_err;
}

static void seam_setup(void)
{
    fake_err = EAI_NONAME;
    resolve__getaddrinfo = fake_gai;
}

static void seam_teardown(void)
{
    resolve__getaddrinfo = getaddrinfo;
    if (gate[0] >= 0) {
        close(gate[0]);
        close(gate[1]);
        gate[0] = gate[1] = -1;
    }
}

/* A loopback port where nothing listens. */
static int closed_port(void)
{
    struct tfx x;
    tfx_open(&x, 0, TP_RECORD);
    int port = x.port;
    tfx_close(&x); /* the listener is gone: connects to it are refused */
    return port;
}

static int fired(const struct got *g) { return g->fired; }

static void iterate_until_fired(reactor *r, const struct got *g)
{
    for (int i = 0; i < 100000 && !fired(g); i++)
        ck_assert_int_eq(reactor_iterate(r, 0.1), 0);
    ck_assert_msg(fired(g), "the connect Deferred never fired");
}

START_TEST(test_connected_fires_with_protocol)
{
    struct tfx x;
    tfx_open(&x, _i, TP_ECHO);
    struct up u = {0};
    protocol_init(&u.base, &up_ops);
    struct got g;
    watch(reactor_connect_protocol(x.r, "127.0.0.1", x.port, &u.base, WAIT), &g);
    ck_assert_int_eq(g.fired, 0); /* from the loop, never inside the call */
    iterate_until_fired(x.r, &g);
    ck_assert_int_eq(g.failed, 0);
    ck_assert_ptr_eq(g.p, &u);
    ck_assert_int_eq(g.transport_set, 1);
    ck_assert_int_eq(g.made_before, 1); /* connection_made ran first */
    /* the transport now delivers to the user's protocol: the echo comes back to it */
    for (int i = 0; i < 100000 && u.in_len < 4; i++)
        ck_assert_int_eq(reactor_iterate(x.r, 0.1), 0);
    ck_assert_int_eq((int)u.in_len, 4);
    ck_assert(memcmp(u.in, "ping", 4) == 0);
    ck_assert_ptr_eq(transport_protocol(u.base.transport), &u);
    transport_lose_connection(u.base.transport);
    for (int i = 0; i < 100000 && !u.lost; i++)
        ck_assert_int_eq(reactor_iterate(x.r, 0.1), 0);
    ck_assert_int_eq(u.lost, 1);
    ck_assert_int_eq(u.lost_kind, PROTOCOL_DONE);
    ck_assert_int_eq(u.made, 1);
    ck_assert_int_eq(g.fired, 1);
    tfx_close(&x);
}
END_TEST

/* Over TLS: fires after connection_made (before the handshake); the echo through TLS
 * reaches the user's protocol; lose_connection ends it cleanly (close_notify). */
START_TEST(test_connected_over_tls)
{
    struct th_certs certs;
    ck_assert_int_eq(th_certs_make(&certs), 0);
    struct tfx x;
    tfx_open(&x, _i, TP_ECHO);
    listener_free(x.l);
    tls_context *sctx = tls_context_new_server(certs.cert, certs.key, NULL, 0);
    tls_context *cctx = tls_context_new_client(certs.ca, NULL, NULL, 0);
    ck_assert_ptr_nonnull(sctx);
    ck_assert_ptr_nonnull(cctx);
    x.l = reactor_listen_tls(x.r, "127.0.0.1", 0, &x.srv.f, 0, sctx);
    ck_assert_ptr_nonnull(x.l);
    x.port = listener_port(x.l);
    struct up u = {0};
    protocol_init(&u.base, &up_ops);
    struct got g;
    watch(reactor_connect_protocol_tls(x.r, "127.0.0.1", x.port, &u.base, WAIT, cctx), &g);
    tls_context_unref(cctx); /* the connector holds its own reference */
    iterate_until_fired(x.r, &g);
    ck_assert_int_eq(g.failed, 0);
    ck_assert_ptr_eq(g.p, &u);
    ck_assert_int_eq(transport_is_tls(u.base.transport), 1);
    for (int i = 0; i < 100000 && u.in_len < 4; i++)
        ck_assert_int_eq(reactor_iterate(x.r, 0.1), 0);
    ck_assert(memcmp(u.in, "ping", 4) == 0);
    transport_lose_connection(u.base.transport);
    for (int i = 0; i < 100000 && !u.lost; i++)
        ck_assert_int_eq(reactor_iterate(x.r, 0.1), 0);
    ck_assert_int_eq(u.lost_kind, PROTOCOL_DONE);
    tfx_close(&x);
    tls_context_unref(sctx);
    th_certs_remove(&certs);
}
END_TEST

START_TEST(test_refused)
{
    int port = closed_port();
    reactor *r = th_reactor(_i);
    struct up u = {0};
    protocol_init(&u.base, &up_ops);
    struct got g;
    watch(reactor_connect_protocol(r, "127.0.0.1", port, &u.base, WAIT), &g);
    iterate_until_fired(r, &g);
    ck_assert_int_eq(g.failed, 1);
    ck_assert_int_eq(g.code, ECONNREFUSED);
    ck_assert_int_eq(g.kind, PROTOCOL_CONNECT_REFUSED);
    ck_assert_msg(strstr(g.msg, "refused") != NULL, "message: %s", g.msg);
    ck_assert_int_eq(u.made + u.lost + u.data, 0); /* the protocol was never used */
    ck_assert_ptr_null(u.base.transport);
    th_iterate_n(r, 3);
    ck_assert_int_eq(g.fired, 1);
    reactor_free(r);
}
END_TEST

#ifdef __linux__
/* Linux refuses a TCP connect to the loopback broadcast address at once, without
 * sending anything: the "unreachable" outcome. */
START_TEST(test_unreachable)
{
    reactor *r = th_reactor(_i);
    struct up u = {0};
    protocol_init(&u.base, &up_ops);
    struct got g;
    watch(reactor_connect_protocol(r, "127.255.255.255", 9, &u.base, WAIT), &g);
    iterate_until_fired(r, &g);
    ck_assert_int_eq(g.failed, 1);
    ck_assert_int_eq(g.code, ENETUNREACH);
    ck_assert_int_eq(g.kind, PROTOCOL_CONNECT_UNREACHABLE);
    ck_assert_int_eq(u.made + u.lost, 0);
    reactor_free(r);
}
END_TEST
#endif

START_TEST(test_dns_failure)
{
    reactor *r = th_reactor(_i);
    struct up u = {0};
    protocol_init(&u.base, &up_ops);
    struct got g;
    watch(reactor_connect_protocol(r, "no.such.host.test", 80, &u.base, WAIT), &g);
    iterate_until_fired(r, &g);
    ck_assert_int_eq(g.failed, 1);
    ck_assert_int_eq(g.code, DEFERRED_EDNS);
    ck_assert_int_eq(g.kind, PROTOCOL_CONNECT_DNS);
    ck_assert_msg(strstr(g.msg, gai_strerror(EAI_NONAME)) != NULL, "message: %s", g.msg);
    ck_assert_int_eq(u.made + u.lost, 0);
    reactor_free(r);
}
END_TEST

/* A lookup that never answers, on the fake clock: the timeout fails the Deferred. */
START_TEST(test_timeout)
{
    reactor *r = th_reactor(_i);
    ck_assert_int_eq(reactor_use_fake_clock(r, 100.0), 0);
    ck_assert_int_eq(pipe(gate), 0);
    struct up u = {0};
    protocol_init(&u.base, &up_ops);
    struct got g;
    watch(reactor_connect_protocol(r, "slow.test", 80, &u.base, 2.0), &g);
    th_iterate_n(r, 3);
    ck_assert_int_eq(reactor_advance(r, 1.9), 0);
    ck_assert_int_eq(g.fired, 0);
    ck_assert_int_eq(reactor_advance(r, 0.1), 0);
    ck_assert_int_eq(g.fired, 1);
    ck_assert_int_eq(g.code, ETIMEDOUT);
    ck_assert_int_eq(g.kind, PROTOCOL_CONNECT_TIMEOUT);
    ck_assert_int_eq(u.made + u.lost, 0);
    ck_assert_int_eq(write(gate[1], "x", 1), 1); /* let the lookup thread finish */
    reactor_free(r);
}
END_TEST

/* Cancelling while connecting: fails at once with ECANCELED (kind CONNECT_CANCELLED),
 * nothing reaches the protocol, the server never sees the connection finish into a
 * protocol of ours. Both while looking up and while the TCP connect is in flight. */
START_TEST(test_cancel)
{
    for (int phase = 0; phase < 2; phase++) {
        struct tfx x;
        tfx_open(&x, _i, TP_RECORD);
        if (phase == 0)
            ck_assert_int_eq(pipe(gate), 0);
        struct up u = {0};
        protocol_init(&u.base, &up_ops);
        struct got g;
        deferred *d = reactor_connect_protocol(x.r, phase == 0 ? "slow.test" : "127.0.0.1",
                                               x.port, &u.base, WAIT);
        ck_assert_ptr_nonnull(d);
        deferred_ref(d);
        watch(d, &g);
        ck_assert_int_eq(deferred_cancel(d), 0);
        deferred_unref(d);
        ck_assert_int_eq(g.fired, 1);
        ck_assert_int_eq(g.code, ECANCELED);
        ck_assert_int_eq(g.kind, PROTOCOL_CONNECT_CANCELLED);
        th_iterate_n(x.r, 10);
        ck_assert_int_eq(g.fired, 1);
        ck_assert_int_eq(u.made + u.lost + u.data, 0);
        if (phase == 0) {
            ck_assert_int_eq(write(gate[1], "x", 1), 1);
            th_iterate_n(x.r, 5);
        }
        tfx_close(&x);
        seam_teardown();
        seam_setup();
    }
}
END_TEST

/* Cancelling after it fired changes nothing (the connection stays up). */
START_TEST(test_cancel_after_connected)
{
    struct tfx x;
    tfx_open(&x, _i, TP_RECORD);
    struct up u = {0};
    protocol_init(&u.base, &up_ops);
    struct got g;
    deferred *d = reactor_connect_protocol(x.r, "127.0.0.1", x.port, &u.base, WAIT);
    deferred_ref(d);
    watch(d, &g);
    iterate_until_fired(x.r, &g);
    ck_assert_int_eq(deferred_cancel(d), 0);
    deferred_unref(d);
    ck_assert_int_eq(g.failed, 0);
    th_iterate_n(x.r, 5);
    ck_assert_int_eq(u.lost, 0);
    ck_assert_int_eq(transport_disconnecting(u.base.transport), 0);
    tfx_close(&x); /* the reactor closes the connection: connection_lost(LOST) */
    ck_assert_int_eq(u.lost, 1);
    ck_assert_int_eq(u.lost_kind, PROTOCOL_LOST);
}
END_TEST

static void stop_soon(reactor *r, void *data)
{
    (void)data;
    reactor_stop(r);
}

/* The reactor stops (or is freed) while the lookup is pending: the Deferred fails
 * (cancelled), exactly once, nothing leaks. */
START_TEST(test_reactor_stops_while_connecting)
{
    for (int how = 0; how < 2; how++) {
        reactor *r = th_reactor(_i);
        ck_assert_int_eq(pipe(gate), 0);
        struct up u = {0};
        protocol_init(&u.base, &up_ops);
        struct got g;
        watch(reactor_connect_protocol(r, "slow.test", 80, &u.base, WAIT), &g);
        if (how == 0) {
            reactor_call_later(r, 0, stop_soon, NULL);
            ck_assert_int_eq(reactor_run(r), 0);
            ck_assert_int_eq(g.fired, 1);
        }
        ck_assert_int_eq(write(gate[1], "x", 1), 1);
        reactor_free(r);
        ck_assert_int_eq(g.fired, 1);
        ck_assert_int_eq(g.code, ECANCELED);
        ck_assert_int_eq(g.kind, PROTOCOL_CONNECT_CANCELLED);
        ck_assert_int_eq(u.made + u.lost, 0);
        seam_teardown();
        seam_setup();
    }
}
END_TEST

START_TEST(test_bad_arguments)
{
    reactor *r = th_reactor(_i);
    struct up u = {0};
    protocol_init(&u.base, &up_ops);
    errno = 0;
    ck_assert_ptr_null(reactor_connect_protocol(r, "127.0.0.1", 0, &u.base, 1));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_ptr_null(reactor_connect_protocol(r, NULL, 80, &u.base, 1));
    ck_assert_ptr_null(reactor_connect_protocol(r, "127.0.0.1", 80, NULL, 1));
    ck_assert_ptr_null(reactor_connect_protocol(NULL, "127.0.0.1", 80, &u.base, 1));
    reactor_free(r);
}
END_TEST

/* Failures made from reasons: code, kind and text. */
START_TEST(test_failure_from_reason)
{
    static const struct {
        protocol_reason r;
        int code;
    } cases[] = {
        {{PROTOCOL_DONE, 0, 0, "connection closed cleanly", NULL}, DEFERRED_ECONNDONE},
        {{PROTOCOL_LOST, ECONNRESET, 0, "connection lost", NULL}, ECONNRESET},
        {{PROTOCOL_LOST, 0, 0, "connection lost", NULL}, ECONNABORTED},
        {{PROTOCOL_CONNECT_REFUSED, ECONNREFUSED, 0, "connection refused", NULL}, ECONNREFUSED},
        {{PROTOCOL_CONNECT_TIMEOUT, ETIMEDOUT, 0, "connection timed out", NULL}, ETIMEDOUT},
        {{PROTOCOL_CONNECT_DNS, 0, EAI_NONAME, "host name lookup failed", NULL}, DEFERRED_EDNS},
        {{PROTOCOL_CONNECT_CANCELLED, 0, 0, "connection attempt cancelled", NULL}, ECANCELED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        deferred_failure *f = deferred_failure_from_reason(&cases[i].r);
        char want[256];
        protocol_reason_format(&cases[i].r, want, sizeof want);
        ck_assert_int_eq(f->code, cases[i].code);
        ck_assert_int_eq(deferred_failure_reason_kind(f), (int)cases[i].r.kind);
        ck_assert_str_eq(f->message, want);
        deferred_failure *w = deferred_failure_wrap(f, EIO, "while talking");
        ck_assert_int_eq(deferred_failure_reason_kind(w), (int)cases[i].r.kind);
        deferred_failure_unref(w);
    }
    deferred_failure *plain = deferred_failure_new(ECONNREFUSED, "not from a reason");
    ck_assert_int_eq(deferred_failure_reason_kind(plain), -1);
    deferred_failure_unref(plain);
    ck_assert_int_eq(deferred_failure_reason_kind(NULL), -1);
    ck_assert_str_eq(deferred_code_name(DEFERRED_ECONNDONE), "ConnectionDone");
    ck_assert_str_eq(deferred_code_name(DEFERRED_EDNS), "DNSLookupError");
}
END_TEST

extern Suite *suite_deferred_connect(void);
Suite *suite_deferred_connect(void)
{
    Suite *s = suite_create("deferred_connect");
    TCase *tc = tcase_create("connect_protocol");
    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, seam_setup, seam_teardown);
    int n = th_backend_count();
    tcase_add_loop_test(tc, test_connected_fires_with_protocol, 0, n);
    tcase_add_loop_test(tc, test_connected_over_tls, 0, n);
    tcase_add_loop_test(tc, test_refused, 0, n);
#ifdef __linux__
    tcase_add_loop_test(tc, test_unreachable, 0, n);
#endif
    tcase_add_loop_test(tc, test_dns_failure, 0, n);
    tcase_add_loop_test(tc, test_timeout, 0, n);
    tcase_add_loop_test(tc, test_cancel, 0, n);
    tcase_add_loop_test(tc, test_cancel_after_connected, 0, n);
    tcase_add_loop_test(tc, test_reactor_stops_while_connecting, 0, n);
    tcase_add_test(tc, test_bad_arguments);
    tcase_add_test(tc, test_failure_from_reason);
    suite_add_tcase(s, tc);
    return s;
}
