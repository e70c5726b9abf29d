/* line_receiver_set_delimiter / set_max_length (Twisted's self.delimiter and
 * self.MAX_LENGTH per connection): a change from line_received splits the rest of the
 * bytes already received with the new value, whatever the split of the stream across
 * reads; a change between reads applies to the bytes kept; the receiver does not grow. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <twistc/line_receiver.h>
#include <twistc/memory_transport.h>

struct rx {
    line_receiver lr;
    char lines[32][32];
    int n;
    int exceeded;
    char exceeded_data[64];
};

/* "DELIM=x" switches the delimiter to x, "MAX=n" the maximum length. */
static int rx_line(line_receiver *lr, const char *line, size_t len)
{
    struct rx *x = (struct rx *)lr;
    ck_assert_int_lt(x->n, 32);
    snprintf(x->lines[x->n++], 32, "%.*s", (int)len, line);
    if (len > 6 && memcmp(line, "DELIM=", 6) == 0) {
        char d[16];
        snprintf(d, sizeof d, "%.*s", (int)(len - 6), line + 6);
        ck_assert_int_eq(line_receiver_set_delimiter(lr, d), 0);
    } else if (len > 4 && memcmp(line, "MAX=", 4) == 0) {
        ck_assert_int_eq(line_receiver_set_max_length(lr, (size_t)atoi(line + 4)), 0);
    }
    return 0;
}

static int rx_exceeded(line_receiver *lr, const char *data, size_t len)
{
    struct rx *x = (struct rx *)lr;
    x->exceeded++;
    snprintf(x->exceeded_data, sizeof x->exceeded_data, "%.*s", (int)len, data);
    transport_lose_connection(lr->base.transport); /* the default, made visible */
    return 0;
}

static const line_receiver_ops rx_ops = {
    .delimiter = "\n", .line_received = rx_line, .line_length_exceeded = rx_exceeded};

static struct rx rx;
static transport *mt;

static void rx_open(void)
{
    memset(&rx, 0, sizeof rx);
    ck_assert_int_eq(line_receiver_init(&rx.lr, &rx_ops), 0);
    mt = memory_transport_new();
    memory_transport_connect(mt, &rx.lr.base);
}

static void rx_close(void)
{
    memory_transport_lose(mt, PROTOCOL_DONE, 0); /* frees the receiver's copy */
    ck_assert_ptr_eq(line_receiver_delimiter(&rx.lr), rx_ops.delimiter); /* back */
    memory_transport_free(mt);
}

/* Feeds s cut at `cut` (0: whole), or one byte at a time (cut == -1). */
static void feed_cut(const char *s, size_t n, long cut)
{
    if (cut < 0) {
        for (size_t i = 0; i < n; i++)
            memory_transport_receive(mt, s + i, 1);
    } else {
        memory_transport_receive(mt, s, (size_t)cut);
        memory_transport_receive(mt, s + cut, n - (size_t)cut);
    }
}

static void expect_lines(const char *const *want, int n)
{
    ck_assert_int_eq(rx.n, n);
    for (int i = 0; i < n; i++)
        ck_assert_str_eq(rx.lines[i], want[i]);
}

/* The delimiter changes in the middle of a read: the rest is split with the new one,
 * for every split of the stream (the same as Twisted, which re-splits its buffer). */
START_TEST(test_delimiter_change_mid_buffer)
{
    static const char stream[] = "a\nDELIM=|\nb|c\n|DELIM=\r\n|d\r\ne\r\nDELIM=\n\r\nf\n";
    static const char *const want[] = {"a", "DELIM=|", "b", "c\n", "DELIM=\r\n",
                                       "d", "e", "DELIM=\n", "f"};
    size_t n = sizeof stream - 1;
    for (long cut = -1; cut <= (long)n; cut++) {
        rx_open();
        feed_cut(stream, n, cut);
        expect_lines(want, 9);
        ck_assert_str_eq(line_receiver_delimiter(&rx.lr), "\n");
        ck_assert_uint_eq(line_receiver_buffered(&rx.lr), 0);
        rx_close();
    }
}
END_TEST

/* The bytes kept from an earlier read, unfinished under the old delimiter, hold the new
 * one: they are split with it. */
START_TEST(test_change_applies_to_kept_bytes)
{
    rx_open();
    memory_transport_receive(mt, "DELIM=ab\nxxa", 12); /* "xxa" kept (maybe "ab" next) */
    ck_assert_int_eq(rx.n, 1);
    memory_transport_receive(mt, "byya", 4);
    static const char *const want[] = {"DELIM=ab", "xx"};
    expect_lines(want, 2);
    ck_assert_uint_eq(line_receiver_buffered(&rx.lr), 3); /* "yya" */
    rx_close();

    /* changed between reads, outside any callback */
    rx_open();
    memory_transport_receive(mt, "x|y", 3); /* no "\n": kept */
    ck_assert_int_eq(rx.n, 0);
    ck_assert_int_eq(line_receiver_set_delimiter(&rx.lr, "|"), 0);
    memory_transport_receive(mt, "z", 1);
    static const char *const want2[] = {"x"};
    expect_lines(want2, 1);
    ck_assert_uint_eq(line_receiver_buffered(&rx.lr), 2); /* "yz" */
    memory_transport_receive(mt, "|", 1);
    ck_assert_str_eq(rx.lines[1], "yz");
    rx_close();
}
END_TEST

/* MAX_LENGTH lowered from line_received: the next line of the same read is too long. */
START_TEST(test_max_length_change)
{
    static const char stream[] = "MAX=3\nabc\nabcd\nnever\n";
    size_t n = sizeof stream - 1;
    for (long cut = -1; cut <= (long)n; cut++) {
        rx_open();
        feed_cut(stream, n, cut);
        static const char *const want[] = {"MAX=3", "abc"};
        expect_lines(want, 2);
        ck_assert_int_eq(rx.exceeded, 1);
        /* the line and what followed it in the buffer (Twisted passes the same: all of
         * it in one read, "abcd" alone when it came byte by byte) */
        ck_assert_msg(strncmp(rx.exceeded_data, "abcd", 4) == 0, "%s", rx.exceeded_data);
        if (cut == 0 || cut == (long)n)
            ck_assert_str_eq(rx.exceeded_data, "abcd\nnever\n");
        ck_assert_uint_eq(line_receiver_max_length(&rx.lr), 3);
        rx_close();
    }
    /* raised: a line that was too long for the old maximum passes */
    rx_open();
    ck_assert_int_eq(line_receiver_set_max_length(&rx.lr, 8), 0);
    memory_transport_receive(mt, "MAX=100\n0123456789\n", 19);
    ck_assert_int_eq(rx.exceeded, 0);
    ck_assert_str_eq(rx.lines[1], "0123456789");
    ck_assert_int_eq(line_receiver_set_max_length(&rx.lr, 0), 0); /* 0: the default */
    ck_assert_uint_eq(line_receiver_max_length(&rx.lr), LINE_RECEIVER_DEFAULT_MAX_LENGTH);
    rx_close();
}
END_TEST

START_TEST(test_send_line_uses_new_delimiter)
{
    rx_open();
    ck_assert_int_eq(line_receiver_set_delimiter(&rx.lr, "\r\n"), 0);
    ck_assert_int_eq(line_receiver_send_line(&rx.lr, "hi", 2), 0);
    size_t n;
    const char *out = memory_transport_value(mt, &n);
    ck_assert_int_eq((int)n, 4);
    ck_assert(memcmp(out, "hi\r\n", 4) == 0);
    ck_assert_int_eq(line_receiver_set_delimiter(&rx.lr, NULL), 0); /* Twisted's default */
    ck_assert_str_eq(line_receiver_delimiter(&rx.lr), "\r\n");
    rx_close();
}
END_TEST

START_TEST(test_bad_delimiters_and_size)
{
    rx_open();
    ck_assert_int_eq(line_receiver_set_delimiter(&rx.lr, ""), -EINVAL);
    char big[300];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ck_assert_int_eq(line_receiver_set_delimiter(&rx.lr, big), -EINVAL);
    big[255] = '\0';
    ck_assert_int_eq(line_receiver_set_delimiter(&rx.lr, big), 0); /* 255 bytes: fine */
    ck_assert_int_eq(line_receiver_set_delimiter(NULL, "\n"), -EINVAL);
    rx_close();
    /* the per-connection settings live outside the struct: it stays at 40 bytes */
    ck_assert_uint_le(sizeof(line_receiver), 40);
}
END_TEST

/* A receiver whose connect failed never sees connection_lost: line_receiver_release
 * gives back the copy its settings made (ASan and valgrind see a leak without it), and
 * the ops' values are in force again. */
START_TEST(test_release_unconnected)
{
    struct rx *x = calloc(1, sizeof *x);
    ck_assert_ptr_nonnull(x);
    ck_assert_int_eq(line_receiver_init(&x->lr, &rx_ops), 0);
    ck_assert_int_eq(line_receiver_set_max_length(&x->lr, 7), 0);
    ck_assert_int_eq(line_receiver_set_delimiter(&x->lr, "||"), 0);
    ck_assert_uint_eq(line_receiver_max_length(&x->lr), 7);
    ck_assert_str_eq(line_receiver_delimiter(&x->lr), "||");
    line_receiver_release(&x->lr);
    ck_assert_ptr_eq(line_receiver_delimiter(&x->lr), rx_ops.delimiter);
    ck_assert_uint_eq(line_receiver_max_length(&x->lr), LINE_RECEIVER_DEFAULT_MAX_LENGTH);
    line_receiver_release(&x->lr); /* twice: nothing left */
    line_receiver_release(NULL);
    free(x);
}
END_TEST

extern Suite *suite_protocols_line_receiver_settings(void);
Suite *suite_protocols_line_receiver_settings(void)
{
    Suite *s = suite_create("protocols_line_receiver_settings");
    TCase *tc = tcase_create("settings");
    tcase_add_test(tc, test_delimiter_change_mid_buffer);
    tcase_add_test(tc, test_change_applies_to_kept_bytes);
    tcase_add_test(tc, test_max_length_change);
    tcase_add_test(tc, test_send_line_uses_new_delimiter);
    tcase_add_test(tc, test_bad_delimiters_and_size);
    tcase_add_test(tc, test_release_unconnected);
    suite_add_tcase(s, tc);
    return s;
}
