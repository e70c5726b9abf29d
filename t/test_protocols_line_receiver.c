/* LineReceiver semantics (B1-B10 of semantics.md) over the in-memory transport. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <twistc/line_receiver.h>
#include <twistc/memory_transport.h>

#include "reactor/transport_internal.h"

/* A receiver that records every event as "L:<line>|" or "R:<raw>|" in a log. */
struct rec {
    line_receiver lr;
    char *log;
    size_t log_len, log_cap;
    int lines;
    /* behaviours */
    const char *quit_line;  /* lose_connection after this line */
    const char *raw_line;   /* set_raw_mode after this line */
    const char *clear_line; /* clear_line_buffer after this line */
    const char *pause_line; /* pause after this line */
    const char *fail_line;  /* return -EPROTO for this line */
    int raw_split;          /* raw handler: take up to '|' then set_line_mode(rest) */
    int raw_one;            /* raw handler: take one byte then set_line_mode(rest) */
    char rawacc[64];
    size_t rawacc_len;
    size_t cleared;
    int exceeded;
    char *exceeded_data;
    size_t exceeded_len;
    const char *last_data; /* zero-copy check */
    size_t last_len;
    int copied_lines, direct_lines;
    int lost;
    protocol_reason_kind lost_kind;
};

static void log_add(struct rec *r, const char *tag, const char *p, size_t n)
{
    size_t need = r->log_len + n + 4;
    if (need > r->log_cap) {
        r->log_cap = need * 2;
        r->log = realloc(r->log, r->log_cap);
        ck_assert_ptr_nonnull(r->log);
    }
    memcpy(r->log + r->log_len, tag, 2);
    memcpy(r->log + r->log_len + 2, p, n);
    r->log[r->log_len + 2 + n] = '|';
    r->log_len += n + 3;
    r->log[r->log_len] = 0;
}

static int eq(const char *line, size_t len, const char *s)
{
    return s && strlen(s) == len && memcmp(line, s, len) == 0;
}

static int rec_line(line_receiver *lr, const char *line, size_t len)
{
    struct rec *r = (struct rec *)lr;
    r->lines++;
    if (r->last_data && line >= r->last_data && line < r->last_data + r->last_len)
        r->direct_lines++;
    else
        r->copied_lines++;
    log_add(r, "L:", line, len);
    if (eq(line, len, r->fail_line))
        return -EPROTO;
    if (eq(line, len, r->quit_line))
        transport_lose_connection(lr->base.transport);
    if (eq(line, len, r->raw_line))
        line_receiver_set_raw_mode(lr);
    if (eq(line, len, r->clear_line))
        r->cleared = line_receiver_clear_line_buffer(lr);
    if (eq(line, len, r->pause_line))
        line_receiver_pause_producing(lr);
    return 0;
}

static int rec_raw(line_receiver *lr, const char *data, size_t len)
{
    struct rec *r = (struct rec *)lr;
    if (r->raw_split) { /* raw bytes up to '|' (may come in pieces), then lines */
        const char *bar = memchr(data, '|', len);
        size_t take = bar ? (size_t)(bar - data) : len;
        memcpy(r->rawacc + r->rawacc_len, data, take);
        r->rawacc_len += take;
        if (bar) {
            log_add(r, "R:", r->rawacc, r->rawacc_len);
            r->rawacc_len = 0;
            return line_receiver_set_line_mode(lr, bar + 1, len - take - 1);
        }
        return 0;
    }
    if (r->raw_one && len) {
        log_add(r, "R:", data, 1);
        return line_receiver_set_line_mode(lr, data + 1, len - 1);
    }
    log_add(r, "R:", data, len);
    return 0;
}

static int rec_exceeded(line_receiver *lr, const char *data, size_t len)
{
    struct rec *r = (struct rec *)lr;
    r->exceeded++;
    free(r->exceeded_data);
    r->exceeded_data = malloc(len + 1);
    memcpy(r->exceeded_data, data, len);
    r->exceeded_data[len] = 0;
    r->exceeded_len = len;
    log_add(r, "X:", data, len);
    return 0;
}

static void rec_lost(line_receiver *lr, const protocol_reason *reason)
{
    struct rec *r = (struct rec *)lr;
    r->lost++;
    r->lost_kind = reason->kind;
}

static const line_receiver_ops crlf_ops = {
    .line_received = rec_line,
    .raw_data_received = rec_raw,
    .connection_lost = rec_lost,
};
static const line_receiver_ops lf_ops = {
    .delimiter = "\n",
    .line_received = rec_line,
    .raw_data_received = rec_raw,
    .connection_lost = rec_lost,
};
static const line_receiver_ops lf4_ops = {
    .delimiter = "\n",
    .max_length = 4,
    .line_received = rec_line,
    .line_length_exceeded = rec_exceeded,
    .connection_lost = rec_lost,
};
static const line_receiver_ops lf4_default_ops = {
    .delimiter = "\n",
    .max_length = 4,
    .line_received = rec_line,
    .connection_lost = rec_lost,
};
static const line_receiver_ops crlf4_ops = {
    .max_length = 4,
    .line_received = rec_line,
    .line_length_exceeded = rec_exceeded,
};
static const line_receiver_ops tri_ops = {
    .delimiter = "<#>",
    .line_received = rec_line,
};

static struct rec R;
static transport *T;

static void setup_with(const line_receiver_ops *ops)
{
    memset(&R, 0, sizeof R);
    ck_assert_int_eq(line_receiver_init(&R.lr, ops), 0);
    T = memory_transport_new();
    ck_assert_ptr_nonnull(T);
    ck_assert_int_eq(memory_transport_connect(T, &R.lr.base), 0);
}

static void teardown_rec(void)
{
    if (T) {
        memory_transport_lose(T, PROTOCOL_DONE, 0); /* frees the receiver's buffer */
        memory_transport_free(T);
        T = NULL;
    }
    free(R.log);
    free(R.exceeded_data);
    memset(&R, 0, sizeof R);
}

static int feed(const char *s, size_t n)
{
    R.last_data = s;
    R.last_len = n;
    int rc = memory_transport_receive(T, s, n);
    R.last_data = NULL;
    return rc;
}

static int feed_str(const char *s) { return feed(s, strlen(s)); }

static const char *logstr(void) { return R.log ? R.log : ""; }

/* B1 */
START_TEST(test_b1_default_crlf)
{
    setup_with(&crlf_ops);
    feed_str("a\r\nb\nc\r\n\r\n");
    ck_assert_str_eq(logstr(), "L:a|L:b\nc|L:|");
    teardown_rec();
}
END_TEST

START_TEST(test_b1_lf_keeps_cr)
{
    setup_with(&lf_ops);
    feed_str("a\r\nb\n\n");
    ck_assert_str_eq(logstr(), "L:a\r|L:b|L:|");
    teardown_rec();
}
END_TEST

/* B2: any split gives the same lines. */
static char *lines_of(const line_receiver_ops *ops, const char *s, size_t n, const size_t *cuts,
                      int ncuts)
{
    setup_with(ops);
    size_t at = 0;
    for (int i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : n;
        if (end > at) {
            /* a private copy per chunk, so nothing can point into an earlier chunk */
            char *chunk = malloc(end - at);
            memcpy(chunk, s + at, end - at);
            feed(chunk, end - at);
            memset(chunk, '?', end - at);
            free(chunk);
        }
        at = end;
    }
    char *out = strdup(logstr());
    teardown_rec();
    return out;
}

static void check_splits(const line_receiver_ops *ops, const char *s)
{
    size_t n = strlen(s);
    char *whole = lines_of(ops, s, n, NULL, 0);
    /* every single split point */
    for (size_t cut = 0; cut <= n; cut++) {
        char *got = lines_of(ops, s, n, &cut, 1);
        ck_assert_msg(strcmp(got, whole) == 0, "split at %zu: %s != %s", cut, got, whole);
        free(got);
    }
    /* one byte at a time */
    size_t *cuts = malloc(n * sizeof *cuts);
    for (size_t i = 0; i < n; i++)
        cuts[i] = i;
    char *got = lines_of(ops, s, n, cuts, (int)n);
    ck_assert_msg(strcmp(got, whole) == 0, "1-byte chunks: %s != %s", got, whole);
    free(got);
    /* random chunk sizes, fixed seeds */
    for (unsigned seed = 1; seed <= 50; seed++) {
        unsigned st = seed;
        int k = 0;
        size_t at = 0;
        while (at < n) {
            st = st * 1103515245u + 12345u;
            at += 1 + (st >> 16) % 9;
            if (at < n)
                cuts[k++] = at;
        }
        got = lines_of(ops, s, n, cuts, k);
        ck_assert_msg(strcmp(got, whole) == 0, "seed %u: %s != %s", seed, got, whole);
        free(got);
    }
    free(cuts);
    free(whole);
}

START_TEST(test_b2_fragmentation)
{
    check_splits(&crlf_ops, "hello\r\nworld\r\n\r\nlong line with \r inside\r\nx\rx\r\n\r\r\n\npartial");
    check_splits(&lf_ops, "a\nbb\n\nccc\r\ndddd\neeeee\nunfinished");
    check_splits(&tri_ops, "<#>a<#>b<<#>c<##>d<#<#>e<#");
}
END_TEST

START_TEST(test_b2_many_lines_one_read_zero_copy)
{
    setup_with(&lf_ops);
    char *buf = malloc(4000);
    size_t n = 0;
    for (int i = 0; i < 500; i++)
        n += (size_t)sprintf(buf + n, "l%d\n", i);
    feed(buf, n);
    ck_assert_int_eq(R.lines, 500);
    ck_assert_int_eq(R.direct_lines, 500); /* all straight from the read buffer */
    ck_assert_ptr_null(R.lr.buf);          /* nothing kept */
    free(buf);
    /* a partial line is copied and kept, then completed */
    feed_str("abc");
    ck_assert_uint_eq(line_receiver_buffered(&R.lr), 3);
    feed_str("def\nghi\n");
    ck_assert_int_eq(R.lines, 502);
    ck_assert_int_eq(R.copied_lines, 1);  /* abcdef came from the kept buffer */
    ck_assert_int_eq(R.direct_lines, 501); /* ghi did not */
    ck_assert_ptr_null(R.lr.buf);
    teardown_rec();
}
END_TEST

/* B3, probe P10: MAX_LENGTH=4, LF. */
START_TEST(test_b3_max_length_probe)
{
    setup_with(&lf4_ops);
    feed_str("xxxx\n");
    ck_assert_int_eq(R.exceeded, 0);
    ck_assert_str_eq(logstr(), "L:xxxx|");
    feed_str("xxxxx\n");
    ck_assert_int_eq(R.exceeded, 1);
    ck_assert_str_eq(R.exceeded_data, "xxxxx\n");
    feed_str("xxxx");
    ck_assert_int_eq(R.exceeded, 1); /* buffered */
    ck_assert_uint_eq(line_receiver_buffered(&R.lr), 4);
    feed_str("x");
    ck_assert_int_eq(R.exceeded, 2); /* 5 >= 4 + 1 */
    ck_assert_str_eq(R.exceeded_data, "xxxxx");
    ck_assert_uint_eq(line_receiver_buffered(&R.lr), 0);
    teardown_rec();
}
END_TEST

START_TEST(test_b3_long_line_after_short_and_rest)
{
    setup_with(&lf4_ops);
    feed_str("ab\ncd\ntoolong\nef\n");
    /* short lines first, then exceeded(line + delimiter + rest), buffer cleared */
    ck_assert_str_eq(logstr(), "L:ab|L:cd|X:toolong\nef\n|");
    ck_assert_uint_eq(line_receiver_buffered(&R.lr), 0);
    teardown_rec();
    /* same when the long line is completed across reads */
    setup_with(&lf4_ops);
    feed_str("ab\ntool");
    feed_str("ong\nef\n");
    ck_assert_str_eq(logstr(), "L:ab|X:toolong\nef\n|");
    teardown_rec();
}
END_TEST

START_TEST(test_b3_partial_delimiter_tolerated)
{
    setup_with(&crlf4_ops);
    feed_str("xxxx\r"); /* 5 < 4 + 2: still waiting */
    ck_assert_int_eq(R.exceeded, 0);
    feed_str("\n");
    ck_assert_str_eq(logstr(), "L:xxxx|");
    feed_str("xxxxx\r"); /* 6 >= 6 */
    ck_assert_int_eq(R.exceeded, 1);
    teardown_rec();
}
END_TEST

START_TEST(test_b3_default_loses_connection)
{
    setup_with(&lf4_default_ops);
    ck_assert(!transport_disconnecting(T));
    feed_str("a\nxxxxxxxx\nb\n");
    ck_assert_str_eq(logstr(), "L:a|");
    ck_assert(transport_disconnecting(T));
    ck_assert_int_eq(memory_transport_finish(T), 1);
    ck_assert_int_eq(R.lost, 1);
    ck_assert_int_eq(R.lost_kind, PROTOCOL_DONE);
    teardown_rec();
}
END_TEST

/* B4 */
START_TEST(test_b4_stop_after_lose_connection)
{
    setup_with(&lf_ops);
    R.quit_line = "quit";
    feed_str("a\nquit\nb\n");
    ck_assert_str_eq(logstr(), "L:a|L:quit|");
    feed_str("c\n"); /* nothing delivered after lose_connection */
    ck_assert_str_eq(logstr(), "L:a|L:quit|");
    teardown_rec();
}
END_TEST

/* B5 and B10 */
START_TEST(test_b5_return_value_stops)
{
    setup_with(&lf_ops);
    R.fail_line = "boom";
    ck_assert_int_eq(feed_str("echo\nboom\necho\n"), -EPROTO);
    ck_assert_str_eq(logstr(), "L:echo|L:boom|");
    teardown_rec();
}
END_TEST

/* B6, probe P9: a\nraw\nxyz|d\ne\n */
START_TEST(test_b6_mode_switch_mid_buffer)
{
    setup_with(&lf_ops);
    R.raw_line = "raw";
    R.raw_split = 1;
    feed_str("a\nraw\nxyz|d\ne\n");
    ck_assert_str_eq(logstr(), "L:a|L:raw|R:xyz|L:d|L:e|");
    ck_assert(!line_receiver_raw_mode(&R.lr));
    teardown_rec();
}
END_TEST

START_TEST(test_b6_mode_switch_fragmented)
{
    const char *s = "a\nraw\nxyz|d\ne\nraw\n|\n\nf";
    size_t n = strlen(s);
    for (size_t cut = 0; cut <= n; cut++) {
        setup_with(&lf_ops);
        R.raw_line = "raw";
        R.raw_split = 1;
        feed(s, cut);
        feed(s + cut, n - cut);
        char *got = strdup(logstr());
        teardown_rec();
        ck_assert_msg(strcmp(got, "L:a|L:raw|R:xyz|L:d|L:e|L:raw|R:|L:|L:|") == 0,
                      "cut %zu: %s", cut, got);
        free(got);
    }
}
END_TEST

START_TEST(test_b6_no_recursion)
{
    setup_with(&lf_ops);
    R.raw_line = "r";
    R.raw_one = 1;
    enum { N = 5000 };
    char *buf = malloc(N * 3 + 1);
    for (int i = 0; i < N; i++)
        memcpy(buf + i * 3, "r\nX", 3);
    feed(buf, N * 3);
    ck_assert_int_eq(R.lines, N);
    free(buf);
    teardown_rec();
}
END_TEST

/* B7 */
START_TEST(test_b7_clear_line_buffer)
{
    setup_with(&lf_ops);
    R.clear_line = "clear";
    feed_str("a\nclear\nb\nc\npart");
    ck_assert_str_eq(logstr(), "L:a|L:clear|");
    ck_assert_uint_eq(R.cleared, strlen("b\nc\npart"));
    ck_assert_uint_eq(line_receiver_buffered(&R.lr), 0);
    feed_str("d\n");
    ck_assert_str_eq(logstr(), "L:a|L:clear|L:d|");
    /* outside a callback: hands over the kept bytes */
    feed_str("xy");
    size_t n;
    char *b = line_receiver_take_buffer(&R.lr, &n);
    ck_assert_uint_eq(n, 2);
    ck_assert(memcmp(b, "xy", 2) == 0);
    free(b);
    teardown_rec();
}
END_TEST

/* B8 */
START_TEST(test_b8_pause_resume)
{
    setup_with(&lf_ops);
    R.pause_line = "p";
    feed_str("a\np\nb\nc\n");
    ck_assert_str_eq(logstr(), "L:a|L:p|");
    ck_assert(line_receiver_paused(&R.lr));
    ck_assert(transport_paused(T));
    feed_str("d\n"); /* buffered, not delivered */
    ck_assert_str_eq(logstr(), "L:a|L:p|");
    R.pause_line = NULL;
    ck_assert_int_eq(line_receiver_resume_producing(&R.lr), 0);
    ck_assert(!transport_paused(T));
    ck_assert_str_eq(logstr(), "L:a|L:p|L:b|L:c|L:d|");
    ck_assert_ptr_null(R.lr.buf);
    teardown_rec();
}
END_TEST

START_TEST(test_b8_stop_producing)
{
    setup_with(&lf_ops);
    R.pause_line = "p";
    feed_str("a\np\nb\n");
    ck_assert_int_eq(line_receiver_stop_producing(&R.lr), 0);
    ck_assert(transport_disconnecting(T));
    ck_assert_int_eq(line_receiver_resume_producing(&R.lr), 0);
    ck_assert_str_eq(logstr(), "L:a|L:p|");
    teardown_rec();
}
END_TEST

/* The producer family answers like the transport's: int, -EINVAL for NULL. */
START_TEST(test_b8_producer_returns)
{
    setup_with(&lf_ops);
    ck_assert_int_eq(line_receiver_pause_producing(&R.lr), 0);
    ck_assert(transport_paused(T));
    ck_assert_int_eq(line_receiver_resume_producing(&R.lr), 0);
    ck_assert_int_eq(line_receiver_pause_producing(NULL), -EINVAL);
    ck_assert_int_eq(line_receiver_resume_producing(NULL), -EINVAL);
    ck_assert_int_eq(line_receiver_stop_producing(NULL), -EINVAL);
    teardown_rec();
}
END_TEST

/* B9 */
START_TEST(test_b9_send_line)
{
    setup_with(&crlf_ops);
    ck_assert_int_eq(line_receiver_send_line(&R.lr, "hi", 2), 0);
    ck_assert_int_eq(line_receiver_send_line(&R.lr, "", 0), 0);
    size_t n;
    const char *v = memory_transport_value(T, &n);
    ck_assert_uint_eq(n, 6);
    ck_assert(memcmp(v, "hi\r\n\r\n", 6) == 0);
    teardown_rec();
}
END_TEST

START_TEST(test_init_rejects_bad_delimiter)
{
    line_receiver lr;
    line_receiver_ops ops = {.delimiter = "", .line_received = rec_line};
    ck_assert_int_eq(line_receiver_init(&lr, &ops), -EINVAL);
    ops.delimiter = "\n";
    ops.line_received = NULL;
    ck_assert_int_eq(line_receiver_init(&lr, &ops), -EINVAL);
    ck_assert_uint_le(sizeof(line_receiver), 40);
    ck_assert_uint_le(sizeof(struct transport), 56); /* a 64-byte malloc chunk */
}
END_TEST

extern Suite *suite_protocols_line_receiver(void);
Suite *suite_protocols_line_receiver(void)
{
    Suite *s = suite_create("protocols_line_receiver");
    TCase *tc = tcase_create("line_receiver");
    tcase_add_test(tc, test_b1_default_crlf);
    tcase_add_test(tc, test_b1_lf_keeps_cr);
    tcase_add_test(tc, test_b2_fragmentation);
    tcase_add_test(tc, test_b2_many_lines_one_read_zero_copy);
    tcase_add_test(tc, test_b3_max_length_probe);
    tcase_add_test(tc, test_b3_long_line_after_short_and_rest);
    tcase_add_test(tc, test_b3_partial_delimiter_tolerated);
    tcase_add_test(tc, test_b3_default_loses_connection);
    tcase_add_test(tc, test_b4_stop_after_lose_connection);
    tcase_add_test(tc, test_b5_return_value_stops);
    tcase_add_test(tc, test_b6_mode_switch_mid_buffer);
    tcase_add_test(tc, test_b6_mode_switch_fragmented);
    tcase_add_test(tc, test_b6_no_recursion);
    tcase_add_test(tc, test_b7_clear_line_buffer);
    tcase_add_test(tc, test_b8_pause_resume);
    tcase_add_test(tc, test_b8_producer_returns);
    tcase_add_test(tc, test_b8_stop_producing);
    tcase_add_test(tc, test_b9_send_line);
    tcase_add_test(tc, test_init_rejects_bad_delimiter);
    suite_add_tcase(s, tc);
    return s;
}
