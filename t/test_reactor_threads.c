/* reactor_call_from_thread (semantics D11, pitfall 2.14): FIFO, nothing lost, safe from
 * many threads, never before the loop turns, and it wakes a loop blocked in its poll.
 * Tagged "threads": make tsan runs these under ThreadSanitizer. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "helpers.h"

#define NTHREADS 8
#define NCALLS 10000

typedef struct {
    reactor *r;
    int total;
    int last[NTHREADS];
    int out_of_order;
    int done;
} many_t;

static many_t *g_many; /* the loop-side state; only the loop thread touches it */

static void counted(reactor *r, void *data)
{
    uintptr_t v = (uintptr_t)data;
    int th = (int)(v >> 20), seq = (int)(v & 0xfffff);
    many_t *m = g_many;
    if (seq != m->last[th] + 1)
        m->out_of_order++;
    m->last[th] = seq;
    if (++m->total == NTHREADS * NCALLS)
        th_set_flag(r, &m->done); /* and do not block in this iteration's poll */
}

typedef struct {
    reactor *r;
    int id;
} producer;

static void *produce(void *arg)
{
    producer *p = arg;
    for (int k = 0; k < NCALLS; k++) {
        uintptr_t v = ((uintptr_t)p->id << 20) | (uintptr_t)k;
        if (reactor_call_from_thread(p->r, counted, (void *)v) != 0)
            abort(); /* ck_assert is not for other threads */
    }
    return NULL;
}

START_TEST(test_lotsOfThreadsAreScheduledCorrectly)
{
    reactor *r = th_reactor(_i);
    many_t m = {.r = r};
    for (int t = 0; t < NTHREADS; t++)
        m.last[t] = -1;
    g_many = &m;
    pthread_t th[NTHREADS];
    producer p[NTHREADS];
    for (int t = 0; t < NTHREADS; t++) {
        p[t] = (producer){r, t};
        ck_assert_int_eq(pthread_create(&th[t], NULL, produce, &p[t]), 0);
    }
    ck_assert(th_iterate_until(r, &m.done, 60.0));
    for (int t = 0; t < NTHREADS; t++)
        pthread_join(th[t], NULL);
    th_iterate_n(r, 2);
    ck_assert_int_eq(m.total, NTHREADS * NCALLS);
    ck_assert_int_eq(m.out_of_order, 0);
    for (int t = 0; t < NTHREADS; t++)
        ck_assert_int_eq(m.last[t], NCALLS - 1);
    reactor_free(r);
}
END_TEST

typedef struct {
    int order[16];
    int n;
    uint64_t iter[16];
    int done;
} seq_t;

typedef struct {
    seq_t *s;
    int id;
} seq_call;

static void seq_note(reactor *r, void *data)
{
    seq_call *c = data;
    c->s->iter[c->s->n] = reactor_iterations(r);
    c->s->order[c->s->n++] = c->id;
}

START_TEST(test_threadsAreRunInScheduledOrder)
{
    reactor *r = th_reactor(_i);
    seq_t s = {0};
    seq_call c[5];
    for (int k = 0; k < 5; k++) {
        c[k] = (seq_call){&s, k};
        ck_assert_int_eq(reactor_call_from_thread(r, seq_note, &c[k]), 0);
    }
    ck_assert_int_eq(s.n, 0); /* test_scheduledThreadsNotRunUntilReactorRuns */
    ck_assert_int_eq(reactor_iterate(r, 0), 0);
    ck_assert_int_eq(s.n, 5);
    for (int k = 0; k < 5; k++)
        ck_assert_int_eq(s.order[k], k);
    reactor_free(r);
}
END_TEST

/* From the loop thread itself (a timer, or a call being run): it runs on the next
 * iteration, and that iteration's poll does not block (test_delayedCallFromThread).
 * A call queued while the batch runs waits for the next iteration. */
static seq_call chained;
static void queue_chained(reactor *r, void *data)
{
    seq_note(r, data);
    ck_assert_int_eq(reactor_call_from_thread(r, seq_note, &chained), 0);
}

static void from_timer(reactor *r, void *data)
{
    ck_assert_int_eq(reactor_call_from_thread(r, queue_chained, data), 0);
}

START_TEST(test_delayedCallFromThread)
{
    reactor *r = th_reactor(_i);
    seq_t s = {0};
    seq_call first = {&s, 1};
    chained = (seq_call){&s, 2};
    reactor_call_soon(r, from_timer, &first);
    /* No fd events and no timers left after the first: were a queued call not to keep
     * the poll from blocking, reactor_iterate(-1) would block forever (and the Check
     * timeout would fail us). The third iteration has nothing left: it must not block. */
    for (int k = 0; k < 2; k++)
        ck_assert_int_eq(reactor_iterate(r, -1), 0);
    ck_assert_int_eq(reactor_iterate(r, 0), 0);
    ck_assert_int_eq(s.n, 2);
    ck_assert_int_eq(s.order[0], 1);
    ck_assert_int_eq(s.order[1], 2);
    ck_assert_uint_eq(s.iter[1], s.iter[0] + 1);
    reactor_free(r);
}
END_TEST

/* test_wakerOverflow: many calls before the loop looks do not fill (or block on) the
 * waker: only one wake write is made per batch. */
static void bump(reactor *r, void *data)
{
    (void)r;
    ++*(int *)data;
}

START_TEST(test_wakerOverflow)
{
    reactor *r = th_reactor(_i);
    int count = 0;
    for (int k = 0; k < 100000; k++)
        ck_assert_int_eq(reactor_call_from_thread(r, bump, &count), 0);
    ck_assert_int_eq(reactor_iterate(r, 0), 0);
    ck_assert_int_eq(count, 100000);
    ck_assert_int_eq(reactor_call_from_thread(r, NULL, &count), -EINVAL);
    reactor_free(r);
}
END_TEST

/* testCallFromThreadStops: another thread stops a running reactor. */
static void stop_it(reactor *r, void *data)
{
    (void)data;
    reactor_stop(r);
}

static void *stopper(void *arg)
{
    if (reactor_call_from_thread(arg, stop_it, NULL) != 0)
        abort();
    return NULL;
}

static void start_stopper(reactor *r, void *data)
{
    ck_assert_int_eq(pthread_create(data, NULL, stopper, r), 0);
}

START_TEST(testCallFromThreadStops)
{
    reactor *r = th_reactor(_i);
    pthread_t t;
    reactor_call_when_running(r, start_stopper, &t);
    ck_assert_int_eq(reactor_run(r), 0);
    pthread_join(t, NULL);
    reactor_free(r);
}
END_TEST

/* reactor_wakeup from another thread returns a poll that would otherwise block forever
 * (no timers, no fds but the reactor's own). */
static void *waker_thread(void *arg)
{
    if (reactor_wakeup(arg) != 0)
        abort();
    return NULL;
}

START_TEST(test_wakeup_from_thread_unblocks_poll)
{
    reactor *r = th_reactor(_i);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, waker_thread, r), 0);
    ck_assert_int_eq(reactor_iterate(r, -1), 0); /* returns once the wakeup arrives */
    pthread_join(t, NULL);
    ck_assert_int_eq(reactor_wakeup(NULL), -EINVAL);
    reactor_free(r);
}
END_TEST

extern Suite *suite_reactor_threads(void);
Suite *suite_reactor_threads(void)
{
    Suite *s = suite_create("reactor_threads");
    TCase *tc = tcase_create("threads");
    tcase_set_tags(tc, "threads");
    tcase_set_timeout(tc, 60);
    int n = th_backend_count();
    tcase_add_loop_test(tc, test_lotsOfThreadsAreScheduledCorrectly, 0, n);
    tcase_add_loop_test(tc, test_threadsAreRunInScheduledOrder, 0, n);
    tcase_add_loop_test(tc, test_delayedCallFromThread, 0, n);
    tcase_add_loop_test(tc, test_wakerOverflow, 0, n);
    tcase_add_loop_test(tc, testCallFromThreadStops, 0, n);
    tcase_add_loop_test(tc, test_wakeup_from_thread_unblocks_poll, 0, n);
    suite_add_tcase(s, tc);
    return s;
}
