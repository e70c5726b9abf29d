/* The answers written during data_received go into a scratch buffer of the loop, lent to
 * the connection being read (transport.c, do_read). These tests make sure the loan ends
 * correctly, on every backend: what the kernel refuses is moved to a buffer of the
 * connection's own before another connection's answers reuse the scratch, and a write
 * larger than the scratch moves everything to a buffer of its own. */
#define _GNU_SOURCE
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <twistc/transport.h>

#include "helpers.h"
#include "transport_helpers.h"

#define WAIT 5.0
#define SMALL 15000   /* fits the 16 KiB scratch */
#define LARGE 100000  /* does not */

struct scratch_test {
    int answered;
    transport *slow;
};

/* "A": SMALL pattern bytes on a socket with the smallest send buffer (the peer does not
 * read, so the kernel refuses most of it); "C": LARGE pattern bytes in two writes, the
 * second too big for the scratch; "B": SMALL bytes of 'x', to overwrite the scratch. */
static int answer(struct tp *p, const char *data, size_t len)
{
    struct scratch_test *st = p->tf->user;
    transport *t = p->base.transport;
    size_t n = len ? (data[0] == 'C' ? LARGE : SMALL) : 0;
    char *buf = malloc(n ? n : 1);
    if (len && data[0] == 'B') {
        memset(buf, 'x', n);
        transport_write(t, buf, n);
    } else if (len) {
        int one = 1;
        setsockopt(transport_fd(t), SOL_SOCKET, SO_SNDBUF, &one, sizeof one);
        fill_pattern(buf, n, 0);
        transport_write(t, buf, 1000);
        transport_write(t, buf + 1000, n - 1000);
        st->slow = t;
    }
    free(buf);
    st->answered = 1;
    return 0;
}

static void slow_then_other(int i, char which, size_t n)
{
    struct scratch_test st = {0};
    struct tfx x;
    tfx_open(&x, i, TP_RECORD);
    x.srv.on_data = answer;
    x.srv.user = &st;

    struct rawc *a = tfx_raw_slow(&x, 1);
    rawc_send(a, &which, 1);
    ck_assert(th_iterate_until(x.r, &st.answered, WAIT));
    /* the kernel took only part of it: the rest waits in the connection's own buffer */
    ck_assert_ptr_nonnull(st.slow);
    ck_assert_uint_gt(transport_pending(st.slow), 0);

    /* another connection's answers go through the scratch meanwhile */
    st.answered = 0;
    struct rawc *b = tfx_raw(&x);
    b->want = SMALL;
    rawc_send(b, "B", 1);
    ck_assert(th_iterate_until(x.r, &b->done, WAIT));
    ck_assert_uint_eq(b->len, SMALL);
    for (size_t k = 0; k < SMALL; k++)
        ck_assert_int_eq(b->buf[k], 'x');

    /* the slow reader reads at last: every byte, in order, none of B's */
    a->check_pattern = 1;
    a->want = n;
    rawc_watch(a);
    ck_assert(th_iterate_until(x.r, &a->done, WAIT));
    ck_assert_uint_eq(a->len, n);
    ck_assert_uint_eq(a->bad_at, 0);

    tfx_close(&x);
}

START_TEST(test_refused_rest_leaves_the_scratch)
{
    slow_then_other(_i, 'A', SMALL);
}
END_TEST

START_TEST(test_write_larger_than_the_scratch)
{
    slow_then_other(_i, 'C', LARGE);
}
END_TEST

extern Suite *suite_reactor_transport_scratch(void);
Suite *suite_reactor_transport_scratch(void)
{
    Suite *s = suite_create("reactor_transport_scratch");
    TCase *tc = tcase_create("scratch");
    tcase_add_loop_test(tc, test_refused_rest_leaves_the_scratch, 0, th_backend_count());
    tcase_add_loop_test(tc, test_write_larger_than_the_scratch, 0, th_backend_count());
    suite_add_tcase(s, tc);
    return s;
}
