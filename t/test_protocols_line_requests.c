/* line_requests (protocols/line_requests.c) over the in-memory transport: answers in
 * order, lines that are not answers, custom answers and errors, connection loss,
 * cancel of one request, requests from inside a callback, NUL bytes in answers. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <twistc/deferred_connect.h>
#include <twistc/line_requests.h>
#include <twistc/memory_transport.h>

struct cli {
    line_receiver lr;
    line_requests rq;
    int others;
    char other[64];
    int lost;
};

static int cli_line(line_receiver *lr, const char *line, size_t len)
{
    return line_requests_line_received(&((struct cli *)lr)->rq, line, len);
}
static void cli_lost(line_receiver *lr, const protocol_reason *why)
{
    struct cli *c = (struct cli *)lr;
    c->lost++;
    line_requests_connection_lost(&c->rq, why);
}
static const line_receiver_ops cli_ops = {
    .delimiter = "\n", .line_received = cli_line, .connection_lost = cli_lost};

/* Records what a Deferred fired with. */
struct got {
    int fired, code, kind;
    deferred_kind rkind;
    long long i;
    char s[64];
    size_t slen;
};
static deferred_result rec(deferred_result r, void *arg)
{
    struct got *g = arg;
    g->fired++;
    g->rkind = r.kind;
    if (r.kind == DEFERRED_FAILURE) {
        g->code = r.u.failure->code;
        g->kind = deferred_failure_reason_kind(r.u.failure);
        snprintf(g->s, sizeof g->s, "%s", r.u.failure->message);
    } else if (r.kind == DEFERRED_INT) {
        g->i = r.u.i;
    } else if (r.kind == DEFERRED_STR) {
        g->slen = strlen(r.u.s);
        snprintf(g->s, sizeof g->s, "%s", r.u.s);
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

static struct cli c;
static transport *mt;

static void open_with(const line_requests_ops *ops)
{
    memset(&c, 0, sizeof c);
    ck_assert_int_eq(line_receiver_init(&c.lr, &cli_ops), 0);
    ck_assert_int_eq(line_requests_init(&c.rq, &c.lr, ops, &c), 0);
    mt = memory_transport_new();
    memory_transport_connect(mt, &c.lr.base);
}

static void close_all(void)
{
    if (!c.lost)
        memory_transport_lose(mt, PROTOCOL_DONE, 0);
    memory_transport_free(mt);
}

static void feed(const char *s) { ck_assert_int_eq(memory_transport_receive(mt, s, strlen(s)), 0); }

START_TEST(test_answers_in_order)
{
    open_with(NULL);
    struct got a, b, d3;
    watch(line_requests_send(&c.rq, "get a", 5, 0), &a);
    watch(line_requests_send(&c.rq, "get b", 5, 0), &b);
    watch(line_requests_send(&c.rq, "get c", 5, 0), &d3);
    size_t n;
    const char *out = memory_transport_value(mt, &n);
    ck_assert_int_eq((int)n, 18);
    ck_assert(memcmp(out, "get a\nget b\nget c\n", 18) == 0);
    ck_assert_uint_eq(line_requests_pending(&c.rq), 3);
    feed("1\n2");
    ck_assert_int_eq(a.fired, 1);
    ck_assert_str_eq(a.s, "1");
    ck_assert_int_eq(b.fired, 0);
    feed("\n\n");
    ck_assert_str_eq(b.s, "2");
    ck_assert_int_eq(d3.fired, 1);
    ck_assert_int_eq((int)d3.slen, 0); /* an empty answer is an answer */
    ck_assert_uint_eq(line_requests_pending(&c.rq), 0);
    ck_assert_ptr_null(c.rq.slots); /* nothing kept while idle */
    close_all();
}
END_TEST

/* Lines that are not answers go to other_line; lines with nothing pending too. */
static int is_answer(line_requests *rq, const char *line, size_t len)
{
    return !(len >= 7 && memcmp(line, "notif: ", 7) == 0);
}
static int other(line_requests *rq, const char *line, size_t len)
{
    struct cli *cc = rq->data;
    cc->others++;
    snprintf(cc->other, sizeof cc->other, "%.*s", (int)len, line);
    return 0;
}
static deferred_result answer(line_requests *rq, int tag, const char *line, size_t len)
{
    if (len >= 6 && memcmp(line, "error:", 6) == 0)
        return deferred_error(EPROTO, "%.*s", (int)len, line);
    if (tag == 1)
        return deferred_int(atoi(line));
    return deferred_str_dup("?");
}
static const line_requests_ops custom = {is_answer, answer, other};

START_TEST(test_other_lines_and_custom_answers)
{
    open_with(&custom);
    feed("hello\n"); /* nothing pending */
    ck_assert_int_eq(c.others, 1);
    ck_assert_str_eq(c.other, "hello");
    struct got a, b;
    watch(line_requests_send(&c.rq, "random?", 7, 1), &a);
    watch(line_requests_send(&c.rq, "random?", 7, 1), &b);
    feed("notif: random\n41\nnotif: classified\nerror: no\n");
    ck_assert_int_eq(c.others, 3);
    ck_assert_str_eq(c.other, "notif: classified");
    ck_assert_int_eq(a.rkind, DEFERRED_INT);
    ck_assert_int_eq(a.i, 41);
    ck_assert_int_eq(b.code, EPROTO);
    ck_assert_str_eq(b.s, "error: no");
    close_all();
}
END_TEST

START_TEST(test_connection_lost_fails_pending)
{
    open_with(NULL);
    struct got a, b, later;
    watch(line_requests_send(&c.rq, "x", 1, 0), &a);
    watch(line_requests_send(&c.rq, "y", 1, 0), &b);
    memory_transport_lose(mt, PROTOCOL_LOST, ECONNRESET);
    ck_assert_int_eq(c.lost, 1);
    ck_assert_int_eq(a.fired, 1);
    ck_assert_int_eq(a.code, ECONNRESET);
    ck_assert_int_eq(a.kind, PROTOCOL_LOST);
    ck_assert_int_eq(b.code, ECONNRESET);
    watch(line_requests_send(&c.rq, "z", 1, 0), &later);
    ck_assert_int_eq(later.code, ENOTCONN);
    memory_transport_free(mt);

    open_with(NULL);
    watch(line_requests_send(&c.rq, "x", 1, 0), &a);
    memory_transport_lose(mt, PROTOCOL_DONE, 0); /* clean close */
    ck_assert_int_eq(a.code, DEFERRED_ECONNDONE);
    ck_assert_int_eq(a.kind, PROTOCOL_DONE);
    memory_transport_free(mt);
}
END_TEST

/* Cancel: fails at once; the answer that comes later is consumed in its turn and
 * dropped, so the next request still gets its own answer. */
START_TEST(test_cancel_one_request)
{
    open_with(NULL);
    struct got a, b, d3;
    deferred *da = line_requests_send(&c.rq, "a", 1, 0);
    deferred_ref(da);
    watch(da, &a);
    watch(line_requests_send(&c.rq, "b", 1, 0), &b);
    deferred_cancel(da);
    ck_assert_int_eq(a.fired, 1);
    ck_assert_int_eq(a.code, ECANCELED);
    ck_assert_uint_eq(line_requests_pending(&c.rq), 2); /* its answer is still due */
    feed("answer-a\nanswer-b\n");
    ck_assert_int_eq(a.fired, 1);
    ck_assert_str_eq(b.s, "answer-b");
    watch(line_requests_send(&c.rq, "c", 1, 0), &d3);
    feed("answer-c\n");
    ck_assert_str_eq(d3.s, "answer-c");
    deferred_unref(da);
    close_all();
}
END_TEST

/* A callback sends the next request (pipelining from inside an answer). */
static struct got chained;
static deferred_result send_next(deferred_result r, void *arg)
{
    (void)arg;
    deferred_result_clear(&r);
    watch(line_requests_send(&c.rq, "second", 6, 0), &chained);
    return deferred_none();
}

START_TEST(test_request_from_callback)
{
    open_with(NULL);
    deferred *d = line_requests_send(&c.rq, "first", 5, 0);
    deferred_add_callback(d, send_next, NULL);
    deferred_unref(d);
    feed("one\ntwo\n");
    ck_assert_int_eq(chained.fired, 1);
    ck_assert_str_eq(chained.s, "two");
    size_t n;
    const char *out = memory_transport_value(mt, &n);
    ck_assert_int_eq((int)n, 13);
    ck_assert(memcmp(out, "first\nsecond\n", 13) == 0);
    close_all();
}
END_TEST

/* The default answer keeps NUL bytes (the copy has the line's length plus a NUL). */
static size_t nul_len;
static deferred_result nul_rec(deferred_result r, void *arg)
{
    (void)arg;
    ck_assert_int_eq(r.kind, DEFERRED_STR);
    ck_assert(memcmp(r.u.s, "a\0b", 4) == 0);
    nul_len = line_requests_answer_len(&r);
    deferred_result_clear(&r);
    return deferred_none();
}

START_TEST(test_nul_in_answer)
{
    open_with(NULL);
    nul_len = 0;
    deferred *d = line_requests_send(&c.rq, "q", 1, 0);
    deferred_add_callback(d, nul_rec, NULL);
    deferred_unref(d);
    ck_assert_int_eq(memory_transport_receive(mt, "a\0b\n", 4), 0);
    ck_assert_uint_eq(nul_len, 3);
    /* other strings: strlen; other kinds: 0 */
    deferred_result lit = deferred_str("abc", NULL);
    ck_assert_uint_eq(line_requests_answer_len(&lit), 3);
    deferred_result i = deferred_int(3);
    ck_assert_uint_eq(line_requests_answer_len(&i), 0);
    deferred_result e = line_requests_answer_copy("", 0);
    ck_assert_uint_eq(line_requests_answer_len(&e), 0);
    ck_assert_str_eq(e.u.s, "");
    deferred_result_clear(&e);
    close_all();
}
END_TEST

START_TEST(test_not_connected)
{
    memset(&c, 0, sizeof c);
    line_receiver_init(&c.lr, &cli_ops);
    ck_assert_int_eq(line_requests_init(&c.rq, NULL, NULL, NULL), -EINVAL);
    line_requests_init(&c.rq, &c.lr, NULL, NULL);
    struct got a;
    watch(line_requests_send(&c.rq, "x", 1, 0), &a);
    ck_assert_int_eq(a.code, ENOTCONN);
    watch(line_requests_expect(&c.rq, 0), &a);
    ck_assert_int_eq(a.code, ENOTCONN);
    ck_assert_uint_eq(line_requests_pending(&c.rq), 0);
}
END_TEST

extern Suite *suite_protocols_line_requests(void);
Suite *suite_protocols_line_requests(void)
{
    Suite *s = suite_create("protocols_line_requests");
    TCase *tc = tcase_create("line_requests");
    tcase_add_test(tc, test_answers_in_order);
    tcase_add_test(tc, test_other_lines_and_custom_answers);
    tcase_add_test(tc, test_connection_lost_fails_pending);
    tcase_add_test(tc, test_cancel_one_request);
    tcase_add_test(tc, test_request_from_callback);
    tcase_add_test(tc, test_nul_in_answer);
    tcase_add_test(tc, test_not_connected);
    suite_add_tcase(s, tc);
    return s;
}
