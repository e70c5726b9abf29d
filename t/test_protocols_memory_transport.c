/* The in-memory transport (StringTransport) and the protocol lifecycle over it. */
#include <check.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <twistc/memory_transport.h>

struct p {
    protocol base;
    int made, data, half, lost;
    protocol_reason reason;
    int order_bad;
};

static void p_made(protocol *pp)
{
    struct p *p = (struct p *)pp;
    if (p->data || p->lost)
        p->order_bad = 1;
    p->made++;
    ck_assert_ptr_nonnull(pp->transport);
}
static int p_data(protocol *pp, const char *d, size_t n)
{
    struct p *p = (struct p *)pp;
    if (!p->made || p->lost)
        p->order_bad = 1;
    p->data++;
    if (n == 4 && memcmp(d, "fail", 4) == 0)
        return -EPROTO;
    return transport_write(pp->transport, d, n);
}
static void p_half(protocol *pp) { ((struct p *)pp)->half++; }
static void p_lost(protocol *pp, const protocol_reason *r)
{
    struct p *p = (struct p *)pp;
    p->lost++;
    p->reason = *r;
}
static const protocol_ops ops = {.connection_made = p_made, .data_received = p_data,
                                 .connection_lost = p_lost};
static const protocol_ops half_ops = {.connection_made = p_made, .data_received = p_data,
                                      .read_connection_lost = p_half, .connection_lost = p_lost};

START_TEST(test_records_writes_and_lifecycle)
{
    struct p p = {0};
    protocol_init(&p.base, &ops);
    transport *t = memory_transport_new();
    ck_assert_int_eq(memory_transport_connect(t, &p.base), 0);
    ck_assert_int_eq(memory_transport_connect(t, &p.base), -EBUSY);
    ck_assert_int_eq(p.made, 1);
    ck_assert_ptr_eq(transport_protocol(t), &p.base);
    ck_assert_ptr_null(transport_reactor(t));
    ck_assert_int_eq(transport_fd(t), -1);
    ck_assert_int_eq(memory_transport_receive(t, "abc", 3), 0);
    struct iovec iov[2] = {{"de", 2}, {"f", 1}};
    ck_assert_int_eq(transport_writev(t, iov, 2), 0);
    size_t n;
    const char *v = memory_transport_value(t, &n);
    ck_assert_uint_eq(n, 6);
    ck_assert(memcmp(v, "abcdef", 6) == 0);
    ck_assert_uint_eq(transport_pending(t), 6);
    memory_transport_clear(t);
    memory_transport_value(t, &n);
    ck_assert_uint_eq(n, 0);
    /* the return value of data_received comes back */
    ck_assert_int_eq(memory_transport_receive(t, "fail", 4), -EPROTO);
    /* lose: flags only, until finish */
    ck_assert(!transport_disconnecting(t));
    transport_lose_connection(t);
    ck_assert(transport_disconnecting(t));
    ck_assert_int_eq(p.lost, 0);
    ck_assert_int_eq(memory_transport_finish(t), 1);
    ck_assert_int_eq(memory_transport_finish(t), 0);
    ck_assert_int_eq(p.lost, 1);
    ck_assert_int_eq(p.reason.kind, PROTOCOL_DONE);
    ck_assert(protocol_reason_clean(&p.reason));
    ck_assert(memory_transport_lost(t));
    /* nothing after connection_lost */
    ck_assert_int_eq(memory_transport_receive(t, "x", 1), 0);
    ck_assert_int_eq(p.order_bad, 0);
    memory_transport_free(t);
}
END_TEST

START_TEST(test_abort_pause_halfclose)
{
    struct p p = {0};
    protocol_init(&p.base, &half_ops);
    transport *t = memory_transport_new();
    memory_transport_connect(t, &p.base);
    transport_write(t, "zz", 2);
    transport_pause_producing(t);
    ck_assert(transport_paused(t));
    transport_resume_producing(t);
    ck_assert(!transport_paused(t));
    memory_transport_receive_eof(t);
    ck_assert_int_eq(p.half, 1);
    transport_lose_write_connection(t);
    ck_assert(memory_transport_write_closed(t));
    transport_abort_connection(t);
    ck_assert(memory_transport_aborted(t));
    size_t n;
    memory_transport_value(t, &n);
    ck_assert_uint_eq(n, 0); /* abort dropped the output */
    ck_assert_int_eq(memory_transport_finish(t), 1);
    ck_assert_int_eq(p.reason.kind, PROTOCOL_ABORTED);
    memory_transport_free(t);

    /* an explicit loss with a reason, formatted */
    struct p q = {0};
    protocol_init(&q.base, &ops);
    t = memory_transport_new();
    memory_transport_connect(t, &q.base);
    memory_transport_lose(t, PROTOCOL_LOST, ECONNRESET);
    memory_transport_lose(t, PROTOCOL_LOST, ECONNRESET);
    ck_assert_int_eq(q.lost, 1);
    char buf[128];
    protocol_reason_format(&q.reason, buf, sizeof buf);
    ck_assert_ptr_nonnull(strstr(buf, "connection lost"));
    ck_assert_str_eq(protocol_reason_name(PROTOCOL_CONNECT_TIMEOUT), "connect-timeout");
    memory_transport_free(t);
}
END_TEST

static int stopped;
static void st(void *d)
{
    (void)d;
    stopped++;
}

START_TEST(test_producer_on_memory)
{
    struct p p = {0};
    protocol_init(&p.base, &ops);
    transport *t = memory_transport_new();
    memory_transport_connect(t, &p.base);
    static const transport_producer_ops pops = {.stop_producing = st};
    stopped = 0;
    ck_assert_int_eq(transport_register_producer(t, &pops, NULL, 1), 0);
    ck_assert_int_eq(transport_register_producer(t, &pops, NULL, 1), -EBUSY);
    memory_transport_lose(t, PROTOCOL_DONE, 0);
    ck_assert_int_eq(stopped, 1); /* told when the connection went */
    /* registering on a connection already gone stops the producer at once */
    ck_assert_int_eq(transport_register_producer(t, &pops, NULL, 1), 0);
    ck_assert_int_eq(stopped, 2);
    memory_transport_free(t);
}
END_TEST

/* docs/errors.md: every reason in one format, MESSAGE[: DETAIL][ (CAUSE)], never the
 * message said twice. */
static const char *fmt(protocol_reason_kind kind, int err, int gai_err, const char *detail)
{
    static char buf[256];
    protocol_reason r = {0};
    r.kind = kind;
    r.err = err;
    r.gai_err = gai_err;
    r.message = kind == PROTOCOL_CONNECT_REFUSED ? "connection refused"
                : kind == PROTOCOL_LOST          ? "connection lost"
                : kind == PROTOCOL_CONNECT_DNS   ? "host name lookup failed"
                                                 : "connection closed cleanly";
    r.detail = detail;
    protocol_reason_format(&r, buf, sizeof buf);
    return buf;
}

START_TEST(test_reason_format_one_style)
{
    char want[256];
    snprintf(want, sizeof want, "connection refused (errno %d)", ECONNREFUSED);
    ck_assert_str_eq(fmt(PROTOCOL_CONNECT_REFUSED, ECONNREFUSED, 0, NULL), want);
    snprintf(want, sizeof want, "connection lost (%s, errno %d)", strerror(ECONNRESET),
             ECONNRESET);
    ck_assert_str_eq(fmt(PROTOCOL_LOST, ECONNRESET, 0, NULL), want);
    snprintf(want, sizeof want, "host name lookup failed (%s, getaddrinfo %d)",
             gai_strerror(EAI_NONAME), EAI_NONAME);
    ck_assert_str_eq(fmt(PROTOCOL_CONNECT_DNS, 0, EAI_NONAME, NULL), want);
    ck_assert_str_eq(fmt(PROTOCOL_DONE, 0, 0, NULL), "connection closed cleanly");
    snprintf(want, sizeof want, "connection lost: bad record mac (%s, errno %d)",
             strerror(EPROTO), EPROTO);
    ck_assert_str_eq(fmt(PROTOCOL_LOST, EPROTO, 0, "bad record mac"), want);
    ck_assert_str_eq(fmt(PROTOCOL_LOST, 0, 0, "bad record mac"), "connection lost: bad record mac");
}
END_TEST

extern Suite *suite_protocols_memory_transport(void);
Suite *suite_protocols_memory_transport(void)
{
    Suite *s = suite_create("protocols_memory_transport");
    TCase *tc = tcase_create("memory_transport");
    tcase_add_test(tc, test_records_writes_and_lifecycle);
    tcase_add_test(tc, test_abort_pause_halfclose);
    tcase_add_test(tc, test_producer_on_memory);
    tcase_add_test(tc, test_reason_format_one_style);
    suite_add_tcase(s, tc);
    return s;
}
