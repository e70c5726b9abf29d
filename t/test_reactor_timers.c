/* Timers: semantics D1-D6 (names follow Twisted's tests where the spec gives one) and
 * pitfalls 2.11-2.12. Most use the fake clock (deterministic, instant); the real-clock
 * ones check "never early" and "no spin" on every backend. */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "reactor/reactor_internal.h" /* heap size and root: one entry per pending call */

#define MAXLOG 2048

typedef struct {
    int order[MAXLOG];
    double at[MAXLOG];
    uint64_t iter[MAXLOG];
    int n;
} tlog;

typedef struct {
    tlog *log;
    int id;
    reactor_timer *other; /* a timer this one acts on */
    double when;          /* scheduled time, for "never early" */
} tcall;

static void record(reactor *r, void *data)
{
    tcall *c = data;
    tlog *l = c->log;
    ck_assert_int_lt(l->n, MAXLOG);
    l->order[l->n] = c->id;
    l->at[l->n] = reactor_seconds(r);
    l->iter[l->n] = reactor_iterations(r);
    l->n++;
}

static reactor *fake(int i)
{
    reactor *r = th_reactor(i);
    ck_assert_int_eq(reactor_use_fake_clock(r, 0), 0);
    return r;
}

/* D2: never early, in time order (real clock, checked against an independent clock). */
static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct {
    double due;
    int *done;
    int *order;
    int *n;
    int id;
} real_call;

static void real_fire(reactor *r, void *data)
{
    real_call *c = data;
    ck_assert(mono() >= c->due); /* never early */
    c->order[(*c->n)++] = c->id;
    if (*c->n == 3)
        th_set_flag(r, c->done);
}

START_TEST(test_callLater)
{
    reactor *r = th_reactor(_i);
    int done = 0, order[3], n = 0;
    static const double delays[3] = {0.03, 0.01, 0.02};
    real_call calls[3];
    double when[3];
    for (int k = 0; k < 3; k++) {
        calls[k] = (real_call){mono() + delays[k], &done, order, &n, k};
        reactor_timer *t = reactor_call_later(r, delays[k], real_fire, &calls[k]);
        ck_assert_ptr_nonnull(t);
        when[k] = reactor_timer_time(t);
    }
    /* Each call reads the clock afresh, so a scheduler that preempts this loop for more
     * than 10 ms (a loaded machine) may reorder the deadlines: expect deadline order. */
    int expect[3] = {1, 2, 0};
    for (int a = 0; a < 3; a++)
        for (int b = a + 1; b < 3; b++)
            if (when[expect[b]] < when[expect[a]]) {
                int tmp = expect[a];
                expect[a] = expect[b];
                expect[b] = tmp;
            }
    ck_assert(th_iterate_until(r, &done, 5.0));
    for (int k = 0; k < 3; k++)
        ck_assert_int_eq(order[k], expect[k]);
    reactor_free(r);
}
END_TEST

/* Pitfall 2.11: a 5 ms timer does not fire early and the loop sleeps while waiting (the
 * timeout is rounded up: no 0-ms polls). Also a sub-millisecond timer. */
START_TEST(test_short_timer_no_spin_not_early)
{
    reactor *r = th_reactor(_i);
    static const double delays[2] = {0.005, 0.0003};
    for (int k = 0; k < 2; k++) {
        int done = 0, order[3], n = 2;
        real_call c = {mono() + delays[k], &done, order, &n, 0};
        uint64_t before = reactor_iterations(r);
        ck_assert_ptr_nonnull(reactor_call_later(r, delays[k], real_fire, &c));
        ck_assert(th_iterate_until(r, &done, 5.0));
        /* A few iterations (an early return of the kernel may cost one), not thousands. */
        ck_assert_uint_le(reactor_iterations(r) - before, 4);
    }
    reactor_free(r);
}
END_TEST

/* D1: a timer far in the future does not overflow the poll timeout. */
START_TEST(test_distantDelayedCall)
{
    reactor *r = th_reactor(_i);
    tlog l = {0};
    tcall far = {&l, 1, NULL, 0};
    reactor_timer *t1 = reactor_call_later(r, 4.6e15, record, &far); /* ~INT64_MAX/2 ms */
    reactor_timer *t2 = reactor_call_later(r, 2147483.648 * 2, record, &far);
    ck_assert_ptr_nonnull(t1);
    ck_assert_ptr_nonnull(t2);
    int done = 0;
    reactor_call_later(r, 0.01, th_set_flag, &done);
    ck_assert(th_iterate_until(r, &done, 5.0));
    ck_assert_int_eq(l.n, 0);
    ck_assert_int_eq(reactor_iterate(r, 0), 0);
    ck_assert_uint_eq(reactor_pending_timers(r), 2);
    reactor_free(r); /* cancels them */
}
END_TEST

/* A flag that a timer sets is seen by a loop of reactor_iterate(r, -1) right after the
 * iteration that ran the timer, with no I/O and no wakeup: the poll of an iteration that
 * ran callbacks does not block (otherwise this loop would sleep forever). */
static void set_only(reactor *r, void *data) { *(int *)data = 1; }

START_TEST(test_iterate_returns_after_timer_ran)
{
    reactor *r = th_reactor(_i);
    int done = 0, guard = 0;
    reactor_call_later(r, 0.005, set_only, &done);
    reactor_call_later(r, 5.0, set_only, &guard); /* bounds the test if this breaks */
    int iterations = 0;
    while (!done && !guard) {
        ck_assert_int_eq(reactor_iterate(r, -1), 0);
        iterations++;
    }
    ck_assert_int_eq(done, 1);
    ck_assert_int_eq(guard, 0);
    ck_assert_int_le(iterations, 3); /* a 5 ms wait: at most a rounded-up poll or two */
    reactor_free(r);
}
END_TEST

/* D2 and pitfall 2.11: with random deadlines (many equal), calls fire in deadline order,
 * FIFO among equal deadlines, and never before their time. */
START_TEST(test_callLaterKeepsCallsOrdered)
{
    reactor *r = fake(_i);
    static tlog l;
    static tcall calls[1000];
    memset(&l, 0, sizeof l);
    srand(42);
    for (int k = 0; k < 1000; k++) {
        double d = (double)(rand() % 50) / 10.0; /* 0.0 .. 4.9, lots of duplicates */
        calls[k] = (tcall){&l, k, NULL, d};
        ck_assert_ptr_nonnull(reactor_call_later(r, d, record, &calls[k]));
    }
    for (int s = 0; s < 60; s++)
        ck_assert_int_eq(reactor_advance(r, 0.1), 0);
    ck_assert_int_eq(l.n, 1000);
    for (int k = 0; k < 1000; k++) {
        const tcall *c = &calls[l.order[k]];
        ck_assert(l.at[k] >= c->when - 1e-9); /* never early */
        if (k > 0) {
            const tcall *p = &calls[l.order[k - 1]];
            ck_assert(p->when <= c->when);
            if (p->when == c->when)
                ck_assert_int_lt(p->id, c->id); /* FIFO among equals */
        }
    }
    reactor_free(r);
}
END_TEST

/* D2: 200 calls to call_later(0) run in the order they were made (real loop). */
START_TEST(test_callLaterZeroFIFO)
{
    reactor *r = th_reactor(_i);
    tlog l = {0};
    tcall calls[200];
    for (int k = 0; k < 200; k++) {
        calls[k] = (tcall){&l, k, NULL, 0};
        ck_assert_ptr_nonnull(reactor_call_soon(r, record, &calls[k]));
    }
    ck_assert_int_eq(reactor_iterate(r, 0), 0);
    ck_assert_int_eq(l.n, 200);
    for (int k = 0; k < 200; k++)
        ck_assert_int_eq(l.order[k], k);
    reactor_free(r);
}
END_TEST

/* D3: a call scheduled while timers run waits for the next iteration, after one poll,
 * so I/O ready meanwhile is dispatched in between. */
static void reschedule_soon(reactor *r, void *data)
{
    tcall *c = data;
    record(r, data);
    if (c->log->n < 50)
        ck_assert_ptr_nonnull(reactor_call_soon(r, reschedule_soon, c));
}

typedef struct {
    int calls;
    uint64_t iter;
} io_seen;

static void io_readable(reactor *r, int fd, unsigned events, void *data)
{
    (void)events;
    io_seen *s = data;
    char c;
    if (read(fd, &c, 1) == 1 && s->calls++ == 0)
        s->iter = reactor_iterations(r);
}

START_TEST(test_timer_scheduled_in_timer_waits_next_iteration)
{
    reactor *r = th_reactor(_i);
    tlog l = {0};
    tcall c = {&l, 0, NULL, 0};
    int sv[2];
    th_socketpair(sv);
    io_seen seen = {0};
    ck_assert_int_eq(reactor_watch(r, sv[0], REACTOR_READABLE, io_readable, &seen), 0);
    ck_assert_ptr_nonnull(reactor_call_soon(r, reschedule_soon, &c));
    ck_assert_int_eq(write(sv[1], "x", 1), 1);
    /* A call that keeps re-adding itself at +0 cannot starve I/O (pitfall 2.12). */
    for (int k = 0; k < 10; k++)
        ck_assert_int_eq(reactor_iterate(r, -1), 0);
    ck_assert_int_eq(l.n, 10);
    for (int k = 1; k < l.n; k++)
        ck_assert_uint_eq(l.iter[k], l.iter[k - 1] + 1); /* one per iteration */
    ck_assert_int_eq(seen.calls, 1);
    ck_assert_uint_eq(seen.iter, l.iter[0]); /* dispatched in the first iteration */
    reactor_unwatch(r, sv[0]);
    close(sv[0]);
    close(sv[1]);
    reactor_free(r);
}
END_TEST

/* D4 */
START_TEST(test_cancelDelayedCall)
{
    reactor *r = fake(_i);
    tlog l = {0};
    tcall c = {&l, 1, NULL, 0};
    reactor_timer *t = reactor_call_later(r, 1, record, &c);
    ck_assert(reactor_timer_active(t));
    ck_assert_int_eq(reactor_timer_cancel(t), 0); /* t is freed now (not held) */
    ck_assert_int_eq(reactor_advance(r, 2), 0);
    ck_assert_int_eq(l.n, 0);
    ck_assert_uint_eq(reactor_pending_timers(r), 0);
    reactor_free(r);
}
END_TEST

START_TEST(test_cancelCancelledDelayedCall)
{
    reactor *r = fake(_i);
    tlog l = {0};
    tcall c = {&l, 1, NULL, 0};
    reactor_timer *t = reactor_timer_hold(reactor_call_later(r, 1, record, &c));
    ck_assert_int_eq(reactor_timer_cancel(t), 0);
    ck_assert(!reactor_timer_active(t));
    ck_assert_int_eq(reactor_timer_cancel(t), -ECANCELED);
    ck_assert_int_eq(reactor_timer_reset(t, 1), -ECANCELED);
    ck_assert_int_eq(reactor_timer_delay(t, 1), -ECANCELED);
    reactor_timer_release(t);
    reactor_free(r);
}
END_TEST

static int self_cancel_rc;
static void cancel_self(reactor *r, void *data)
{
    (void)r;
    reactor_timer **t = data;
    ck_assert(!reactor_timer_active(*t)); /* counts as called before fn starts */
    self_cancel_rc = reactor_timer_cancel(*t); /* the handle is valid in its own call */
    ck_assert_int_eq(reactor_timer_reset(*t, 1), -EALREADY);
}

START_TEST(test_cancelCalledDelayedCallSynchronous)
{
    reactor *r = fake(_i);
    reactor_timer *t = NULL;
    t = reactor_call_later(r, 1, cancel_self, &t);
    self_cancel_rc = 0;
    ck_assert_int_eq(reactor_advance(r, 1), 0);
    ck_assert_int_eq(self_cancel_rc, -EALREADY);
    reactor_free(r);
}
END_TEST

START_TEST(test_cancelCalledDelayedCallAsynchronous)
{
    reactor *r = fake(_i);
    tlog l = {0};
    tcall c = {&l, 1, NULL, 0};
    reactor_timer *t = reactor_timer_hold(reactor_call_later(r, 1, record, &c));
    ck_assert_int_eq(reactor_advance(r, 1), 0);
    ck_assert_int_eq(l.n, 1);
    ck_assert(!reactor_timer_active(t));
    ck_assert_int_eq(reactor_timer_cancel(t), -EALREADY);
    ck_assert_int_eq(reactor_timer_delay(t, 1), -EALREADY);
    ck_assert_int_eq(reactor_timer_reset(t, 1), -EALREADY);
    reactor_timer_release(t);
    reactor_free(r);
}
END_TEST

START_TEST(test_active)
{
    reactor *r = fake(_i);
    tlog l = {0};
    tcall c = {&l, 1, NULL, 0};
    reactor_timer *t = reactor_timer_hold(reactor_call_later(r, 1, record, &c));
    ck_assert(reactor_timer_active(t));
    ck_assert_int_eq(reactor_advance(r, 0.5), 0);
    ck_assert(reactor_timer_active(t));
    ck_assert_int_eq(reactor_advance(r, 0.5), 0);
    ck_assert(!reactor_timer_active(t));
    reactor_timer_release(t);
    reactor_free(r);
}
END_TEST

START_TEST(test_callLaterReset)
{
    reactor *r = fake(_i);
    tlog l = {0};
    tcall c = {&l, 1, NULL, 0};
    reactor_timer *t = reactor_call_later(r, 1, record, &c);
    ck_assert(reactor_timer_time(t) == 1.0);
    ck_assert_int_eq(reactor_advance(r, 0.5), 0);
    ck_assert_int_eq(reactor_timer_reset(t, 2), 0); /* 2 s from now: at 2.5 */
    ck_assert(reactor_timer_time(t) == 2.5);
    ck_assert_int_eq(reactor_timer_reset(t, -1), -EINVAL);
    ck_assert_int_eq(reactor_advance(r, 1.9), 0);
    ck_assert_int_eq(l.n, 0);
    ck_assert_int_eq(reactor_advance(r, 0.1), 0);
    ck_assert_int_eq(l.n, 1);
    ck_assert(l.at[0] == 2.5);
    reactor_free(r);
}
END_TEST

START_TEST(testCallLaterDelayed)
{
    reactor *r = fake(_i);
    tlog l = {0};
    tcall c = {&l, 1, NULL, 0};
    reactor_timer *t = reactor_call_later(r, 1, record, &c);
    ck_assert_int_eq(reactor_timer_delay(t, 1), 0); /* 1 s later than planned: at 2 */
    ck_assert(reactor_timer_time(t) == 2.0);
    ck_assert_int_eq(reactor_advance(r, 1), 0);
    ck_assert_int_eq(l.n, 0);
    ck_assert_int_eq(reactor_advance(r, 1), 0);
    ck_assert_int_eq(l.n, 1);
    reactor_free(r);
}
END_TEST

START_TEST(testCallLaterResetLater)
{
    reactor *r = fake(_i);
    tlog l = {0};
    tcall c = {&l, 1, NULL, 0};
    reactor_timer *t = reactor_call_later(r, 2, record, &c);
    ck_assert_int_eq(reactor_advance(r, 1), 0);
    ck_assert_int_eq(reactor_timer_reset(t, 3), 0);
    ck_assert_int_eq(reactor_advance(r, 2), 0);
    ck_assert_int_eq(l.n, 0);
    ck_assert_int_eq(reactor_advance(r, 1), 0);
    ck_assert_int_eq(l.n, 1);
    reactor_free(r);
}
END_TEST

START_TEST(testCallLaterResetSooner)
{
    reactor *r = fake(_i);
    tlog l = {0};
    tcall c = {&l, 1, NULL, 0};
    reactor_timer *t = reactor_call_later(r, 4, record, &c);
    ck_assert_int_eq(reactor_timer_reset(t, 3), 0);
    ck_assert_int_eq(reactor_advance(r, 3), 0);
    ck_assert_int_eq(l.n, 1);
    reactor_free(r);
}
END_TEST

START_TEST(testAdvanceCancel)
{
    reactor *r = fake(_i);
    tlog l = {0};
    tcall c = {&l, 1, NULL, 0};
    reactor_timer *t = reactor_call_later(r, 1, record, &c);
    ck_assert_int_eq(reactor_advance(r, 0.5), 0);
    ck_assert_int_eq(reactor_timer_cancel(t), 0);
    ck_assert_int_eq(reactor_advance(r, 1), 0);
    ck_assert_int_eq(l.n, 0);
    reactor_free(r);
}
END_TEST

/* A reset call keeps its original order among the calls due at its new time. */
START_TEST(test_callLaterResetKeepsCallsOrdered)
{
    reactor *r = fake(_i);
    tlog l = {0};
    tcall a = {&l, 'a', NULL, 0}, b = {&l, 'b', NULL, 0};
    reactor_timer *ta = reactor_call_later(r, 1, record, &a);
    reactor_call_later(r, 2, record, &b);
    ck_assert_int_eq(reactor_timer_reset(ta, 3), 0);
    for (int k = 0; k < 3; k++)
        ck_assert_int_eq(reactor_advance(r, 1), 0);
    ck_assert_int_eq(l.n, 2);
    ck_assert_int_eq(l.order[0], 'b');
    ck_assert(l.at[0] == 2.0);
    ck_assert_int_eq(l.order[1], 'a');
    ck_assert(l.at[1] == 3.0);
    reactor_free(r);
}
END_TEST

/* The same with the reset made from inside a running call. */
static void reset_other(reactor *r, void *data)
{
    tcall *c = data;
    record(r, data);
    ck_assert_int_eq(reactor_timer_reset(c->other, 2), 0);
}

START_TEST(test_callLaterResetInsideCallKeepsCallsOrdered)
{
    reactor *r = fake(_i);
    tlog l = {0};
    tcall a = {&l, 'a', NULL, 0}, b = {&l, 'b', NULL, 0}, x = {&l, 'x', NULL, 0};
    reactor_timer *tb = reactor_call_later(r, 5, record, &b); /* scheduled first */
    x.other = tb;
    reactor_call_later(r, 1, reset_other, &x);                /* at 1: b moves to 3 */
    reactor_call_later(r, 3, record, &a);                     /* also at 3 */
    for (int k = 0; k < 5; k++)
        ck_assert_int_eq(reactor_advance(r, 1), 0);
    ck_assert_int_eq(l.n, 3);
    ck_assert_int_eq(l.order[0], 'x');
    ck_assert_int_eq(l.order[1], 'b'); /* b was scheduled before a: it keeps going first */
    ck_assert_int_eq(l.order[2], 'a');
    ck_assert(l.at[1] == 3.0 && l.at[2] == 3.0);
    reactor_free(r);
}
END_TEST

/* D5: C has no exceptions; what remains of "one failing call does not stop the others"
 * is that a call misusing the API gets an error code and the others run on. */
static void misbehave(reactor *r, void *data)
{
    record(r, data);
    ck_assert_int_eq(reactor_iterate(r, 0), -EBUSY);
    ck_assert_int_eq(reactor_advance(r, 1), -EBUSY);
    ck_assert_int_eq(reactor_stop(r), -EINVAL);
    ck_assert_int_eq(reactor_free(r), -EBUSY);
}

START_TEST(test_timerErrorDoesNotStopOthers)
{
    reactor *r = fake(_i);
    tlog l = {0};
    tcall a = {&l, 1, NULL, 0}, b = {&l, 2, NULL, 0};
    reactor_call_later(r, 1, misbehave, &a);
    reactor_call_later(r, 1, record, &b);
    ck_assert_int_eq(reactor_advance(r, 1), 0);
    ck_assert_int_eq(l.n, 2);
    reactor_free(r);
}
END_TEST

/* D6: pending calls exclude cancelled ones, and a cancelled call leaves the heap at once
 * (O(log n) removal; no lazy compaction needed). */
START_TEST(testGetDelayedCalls)
{
    reactor *r = fake(_i);
    tlog l = {0};
    tcall c = {&l, 1, NULL, 0};
    reactor_timer *t[100];
    for (int k = 0; k < 100; k++)
        t[k] = reactor_call_later(r, 1 + k % 7, record, &c);
    ck_assert_uint_eq(reactor_pending_timers(r), 100);
    for (int k = 0; k < 100; k += 2)
        ck_assert_int_eq(reactor_timer_cancel(t[k]), 0);
    ck_assert_uint_eq(reactor_pending_timers(r), 50);
    ck_assert_int_eq(reactor_advance(r, 10), 0);
    ck_assert_int_eq(l.n, 50);
    ck_assert_uint_eq(reactor_pending_timers(r), 0);
    reactor_free(r);
}
END_TEST

/* Pitfall 2.12: A, B, C share a deadline; A cancels B (B was already collected for this
 * pass): A then C run, never B. */
static void cancel_other(reactor *r, void *data)
{
    tcall *c = data;
    record(r, data);
    ck_assert_int_eq(reactor_timer_cancel(c->other), 0);
}

START_TEST(test_timer_cancels_another_due_same_pass)
{
    reactor *r = th_reactor(_i);
    tlog l = {0};
    tcall a = {&l, 'a', NULL, 0}, b = {&l, 'b', NULL, 0}, c = {&l, 'c', NULL, 0};
    reactor_call_later(r, 0, cancel_other, &a);
    a.other = reactor_call_later(r, 0, record, &b);
    reactor_call_later(r, 0, record, &c);
    ck_assert_int_eq(reactor_iterate(r, 0), 0);
    th_iterate_n(r, 2);
    ck_assert_int_eq(l.n, 2);
    ck_assert_int_eq(l.order[0], 'a');
    ck_assert_int_eq(l.order[1], 'c');
    reactor_free(r);
}
END_TEST

/* A resets another call that was collected for this pass: it leaves the pass. */
START_TEST(test_timer_resets_another_due_same_pass)
{
    reactor *r = fake(_i);
    tlog l = {0};
    tcall a = {&l, 'a', NULL, 0}, b = {&l, 'b', NULL, 0};
    reactor_call_later(r, 1, reset_other, &a);
    a.other = reactor_call_later(r, 1, record, &b);
    ck_assert_int_eq(reactor_advance(r, 1), 0);
    ck_assert_int_eq(l.n, 1);
    ck_assert_int_eq(reactor_advance(r, 2), 0);
    ck_assert_int_eq(l.n, 2);
    ck_assert_int_eq(l.order[1], 'b');
    ck_assert(l.at[1] == 3.0);
    reactor_free(r);
}
END_TEST

/* A call that re-adds itself at +0 does not run twice in one pass; with the fake clock
 * reactor_advance stops such a chain instead of hanging. */
static void readd_self(reactor *r, void *data)
{
    record(r, data);
    ck_assert_ptr_nonnull(reactor_call_soon(r, readd_self, data));
}

static void readd_count(reactor *r, void *data)
{
    ++*(long *)data;
    ck_assert_ptr_nonnull(reactor_call_soon(r, readd_count, data));
}

START_TEST(test_timer_readding_itself_runs_once_per_pass)
{
    reactor *r = th_reactor(_i);
    tlog l = {0};
    tcall c = {&l, 1, NULL, 0};
    reactor_call_soon(r, readd_self, &c);
    th_iterate_n(r, 5);
    ck_assert_int_eq(l.n, 5);
    reactor_free(r);
    r = fake(_i);
    long count = 0;
    reactor_call_soon(r, readd_count, &count);
    ck_assert_int_eq(reactor_advance(r, 0), -ELOOP);
    ck_assert_int_eq(count, 100000);
    reactor_free(r);
}
END_TEST

/* The ownership rule: a held handle stays readable after the call ran, after it was
 * cancelled, and after the reactor was freed. */
START_TEST(test_timer_hold_release)
{
    reactor *r = fake(_i);
    tlog l = {0};
    tcall c = {&l, 1, NULL, 0};
    reactor_timer *ran = reactor_timer_hold(reactor_call_later(r, 1, record, &c));
    reactor_timer *pend = reactor_timer_hold(reactor_call_later(r, 5, record, &c));
    ck_assert_int_eq(reactor_advance(r, 1), 0);
    ck_assert(!reactor_timer_active(ran));
    ck_assert(reactor_timer_active(pend));
    reactor_free(r); /* pend is cancelled without running */
    ck_assert(!reactor_timer_active(pend));
    ck_assert_int_eq(reactor_timer_cancel(pend), -ECANCELED);
    ck_assert_int_eq(reactor_timer_cancel(ran), -EALREADY);
    ck_assert_int_eq(l.n, 1);
    reactor_timer_release(ran);
    reactor_timer_release(pend);
}
END_TEST

START_TEST(test_bad_delays)
{
    reactor *r = th_reactor(_i);
    tlog l = {0};
    tcall c = {&l, 1, NULL, 0};
    errno = 0;
    ck_assert_ptr_null(reactor_call_later(r, -1, record, &c));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_ptr_null(reactor_call_later(r, NAN, record, &c));
    ck_assert_ptr_null(reactor_call_later(r, INFINITY, record, &c));
    ck_assert_ptr_null(reactor_call_later_named(r, 1, NULL, &c, "x"));
    ck_assert_int_eq(reactor_timer_cancel(NULL), -EINVAL);
    ck_assert_int_eq(reactor_advance(r, 1), -EINVAL); /* no fake clock */
    reactor_timer *t = reactor_call_later(r, 1, record, &c);
    ck_assert_int_eq(reactor_use_fake_clock(r, 0), -EBUSY); /* timers on the real clock */
    ck_assert_int_eq(reactor_timer_delay(t, NAN), -EINVAL);
    reactor_free(r);
}
END_TEST

/* The fake clock: polls never block, time moves only with advance. */
START_TEST(test_fake_clock_never_blocks)
{
    reactor *r = fake(_i);
    ck_assert(reactor_seconds(r) == 0);
    tlog l = {0};
    tcall c = {&l, 1, NULL, 0};
    reactor_call_later(r, 1000, record, &c);
    for (int k = 0; k < 3; k++)
        ck_assert_int_eq(reactor_iterate(r, -1), 0); /* would block 1000 s otherwise */
    ck_assert(reactor_seconds(r) == 0);
    ck_assert_int_eq(l.n, 0);
    ck_assert_int_eq(reactor_advance(r, 1000), 0);
    ck_assert_int_eq(l.n, 1);
    ck_assert(reactor_seconds(r) == 1000);
    reactor_free(r);
}
END_TEST

/* ---- Repeating calls (reactor_call_every; pitfall 2.12, semantics D15) ---------------
 * On the fake clock the steps set the time exactly (clock_to) so every comparison is
 * exact: the reactor's grid points are start + k * interval, and so are the targets. */

typedef struct {
    reactor_timer *t;
    int n;
    double at[256];   /* reactor_seconds() when the function started */
    double sched[256]; /* reactor_timer_time() then: the deadline being run */
    double work;      /* seconds the function "takes" (fake clock moved inside) */
    int cancel_at;    /* cancel itself on this run (1-based; 0: never) */
    int cancel_rc, active_inside;
    int reset_at;     /* reset itself on this run ... */
    double reset_to;  /* ... to this many seconds from now */
} rep;

/* Moves the fake clock only: no call runs (the reactor's time is a cached field). */
static void fake_work(reactor *r, double seconds)
{
    r->now += reactor__ns_from_s(seconds);
}

/* Sets the fake clock to exactly `t` (if later) and runs what became due. */
static void clock_to(reactor *r, double t)
{
    reactor__ns ns = reactor__ns_from_s(t);
    if (ns > r->now)
        r->now = ns;
    ck_assert_int_eq(reactor_advance(r, 0), 0);
}

/* Is s (seconds, as the API reports it) exactly `ms` milliseconds, to the nanosecond the
 * reactor keeps time in? */
static int is_ms(double s, long long ms)
{
    return (long long)(s * 1e9 + 0.5) == ms * 1000000;
}

/* Fake-clock time of step k of 1 ms, exact at every 10 ms grid point (k multiple of 10). */
static double step_ms(int k)
{
    return (k / 10) * 0.01 + (k % 10) * 0.001;
}

static void rep_fn(reactor *r, void *data)
{
    rep *p = data;
    ck_assert_int_lt(p->n, 256);
    p->at[p->n] = reactor_seconds(r);
    p->sched[p->n] = reactor_timer_time(p->t);
    p->n++;
    p->active_inside = reactor_timer_active(p->t);
    if (p->work > 0)
        fake_work(r, p->work);
    if (p->n == p->cancel_at)
        p->cancel_rc = reactor_timer_cancel(p->t);
    if (p->n == p->reset_at)
        ck_assert_int_eq(reactor_timer_reset(p->t, p->reset_to), 0);
}

/* Drift-free: 10 ms repeating, clock moved in 1 ms steps for 1 s -> exactly 100 runs,
 * each at an exact multiple of 10 ms. */
START_TEST(test_every_drift_free)
{
    reactor *r = fake(_i);
    static rep p;
    memset(&p, 0, sizeof p);
    p.t = reactor_call_every(r, 0.01, rep_fn, &p);
    ck_assert_ptr_nonnull(p.t);
    ck_assert(is_ms(reactor_timer_time(p.t), 10));
    for (int k = 1; k <= 1000; k++)
        clock_to(r, step_ms(k));
    ck_assert_int_eq(p.n, 100);
    for (int i = 0; i < p.n; i++) {
        ck_assert(is_ms(p.at[i], (i + 1) * 10));
        ck_assert(is_ms(p.sched[i], (i + 1) * 10));
    }
    ck_assert(p.active_inside);
    ck_assert(is_ms(reactor_timer_time(p.t), 1010));
    ck_assert_uint_eq(reactor_pending_timers(r), 1);
    reactor_free(r); /* cancels it without running it; frees it */
}
END_TEST

/* A function that takes 3 ms still runs on the 10 ms grid (no drift, pitfall 2.12's
 * "95-100 times" test: here exactly 100). */
START_TEST(test_every_slow_function_stays_on_grid)
{
    reactor *r = fake(_i);
    static rep p;
    memset(&p, 0, sizeof p);
    p.work = 0.003;
    p.t = reactor_call_every(r, 0.01, rep_fn, &p);
    for (int k = 1; k <= 1000; k++)
        clock_to(r, step_ms(k));
    ck_assert_int_eq(p.n, 100);
    for (int i = 0; i < p.n; i++)
        ck_assert(is_ms(p.at[i], (i + 1) * 10));
    reactor_free(r);
}
END_TEST

/* After a 55 ms stall it runs once (not 5 times) and continues on the grid. */
START_TEST(test_every_stall_skips_missed_runs)
{
    reactor *r = fake(_i);
    static rep p;
    memset(&p, 0, sizeof p);
    p.t = reactor_call_every(r, 0.01, rep_fn, &p);
    for (int k = 1; k <= 50; k++)
        clock_to(r, step_ms(k));
    ck_assert_int_eq(p.n, 5);
    ck_assert_int_eq(reactor_advance(r, 0.055), 0); /* to ~0.105: grid 60..100 missed */
    ck_assert_int_eq(p.n, 6);                      /* one run, not five */
    ck_assert(p.sched[5] == 6 * 0.01);             /* the first missed deadline ran late */
    ck_assert(is_ms(reactor_timer_time(p.t), 110)); /* next: the grid point after now */
    for (int k = 106; k <= 200; k++)
        clock_to(r, step_ms(k));
    ck_assert_int_eq(p.n, 16); /* 110, 120, ..., 200 */
    for (int i = 6; i < p.n; i++)
        ck_assert(is_ms(p.at[i], (i + 5) * 10));
    /* One advance over a whole second: still one run (reactor_advance's passes do not
     * see it due again: the re-armed deadline is strictly later than now). */
    ck_assert_int_eq(reactor_advance(r, 1.0), 0);
    ck_assert_int_eq(p.n, 17);
    ck_assert(reactor_timer_time(p.t) > reactor_seconds(r));
    reactor_free(r);
}
END_TEST

/* Cancel from inside its own function: 0 (not -EALREADY), no further run, freed by the
 * reactor (valgrind/ASan: no leak, no use after free). */
START_TEST(test_every_cancel_from_inside)
{
    reactor *r = fake(_i);
    static rep p;
    memset(&p, 0, sizeof p);
    p.cancel_at = 3;
    p.cancel_rc = 1;
    p.t = reactor_call_every(r, 0.01, rep_fn, &p);
    for (int k = 1; k <= 100; k++)
        clock_to(r, step_ms(k));
    ck_assert_int_eq(p.n, 3);
    ck_assert_int_eq(p.cancel_rc, 0);
    ck_assert_uint_eq(reactor_pending_timers(r), 0);
    ck_assert_uint_eq(r->heap_n, 0);
    /* Same with a held handle: it survives, reports itself cancelled. */
    memset(&p, 0, sizeof p);
    p.cancel_at = 1;
    p.cancel_rc = 1;
    p.t = reactor_timer_hold(reactor_call_every(r, 0.01, rep_fn, &p));
    ck_assert_int_eq(reactor_advance(r, 0.05), 0);
    ck_assert_int_eq(p.n, 1);
    ck_assert_int_eq(p.cancel_rc, 0);
    ck_assert(p.active_inside); /* active while its function ran, before the cancel */
    ck_assert(!reactor_timer_active(p.t));
    ck_assert_int_eq(reactor_timer_cancel(p.t), -ECANCELED);
    ck_assert_int_eq(reactor_advance(r, 0.05), 0);
    ck_assert_int_eq(p.n, 1);
    reactor_timer_release(p.t);
    reactor_free(r);
}
END_TEST

/* A held handle cancelled from outside: active() == 0, cancel/reset/delay -ECANCELED;
 * a repeating call never answers -EALREADY. */
START_TEST(test_every_cancel_held)
{
    reactor *r = fake(_i);
    static rep p;
    memset(&p, 0, sizeof p);
    p.t = reactor_timer_hold(reactor_call_every(r, 0.01, rep_fn, &p));
    ck_assert(reactor_timer_active(p.t));
    for (int k = 1; k <= 20; k++)
        clock_to(r, step_ms(k));
    ck_assert_int_eq(p.n, 2);
    ck_assert(reactor_timer_active(p.t)); /* it ran, and is still active */
    ck_assert_int_eq(reactor_timer_cancel(p.t), 0);
    ck_assert(!reactor_timer_active(p.t));
    ck_assert_int_eq(reactor_timer_cancel(p.t), -ECANCELED);
    ck_assert_int_eq(reactor_timer_reset(p.t, 1), -ECANCELED);
    ck_assert_int_eq(reactor_timer_delay(p.t, 1), -ECANCELED);
    ck_assert_uint_eq(reactor_pending_timers(r), 0);
    ck_assert_int_eq(reactor_advance(r, 1), 0);
    ck_assert_int_eq(p.n, 2);
    reactor_free(r);
    ck_assert(!reactor_timer_active(p.t));
    reactor_timer_release(p.t);
    /* And one still pending at reactor_free: cancelled there, the hold survives. */
    r = fake(_i);
    memset(&p, 0, sizeof p);
    p.t = reactor_timer_hold(reactor_call_every(r, 0.01, rep_fn, &p));
    ck_assert_int_eq(reactor_advance(r, 0.01), 0);
    ck_assert_int_eq(p.n, 1);
    reactor_free(r);
    ck_assert(!reactor_timer_active(p.t));
    ck_assert_int_eq(reactor_timer_cancel(p.t), -ECANCELED);
    reactor_timer_release(p.t);
}
END_TEST

/* reset from inside: the next run is at the new deadline, and the grid restarts there;
 * reset/delay from outside move the next run the same way. The steps here are k * 1 ms,
 * not on the grid's exact values, so deadlines are compared with a tolerance. */
START_TEST(test_every_reset)
{
    reactor *r = fake(_i);
    static rep p;
    memset(&p, 0, sizeof p);
    p.reset_at = 1;
    p.reset_to = 0.025; /* at 0.01: next at 0.035, then 0.045, ... */
    p.t = reactor_call_every(r, 0.01, rep_fn, &p);
    /* Steps to 56 ms: 0.035 + 2 * 0.01 may round a hair above 55 * 0.001. */
    for (int k = 1; k <= 56; k++)
        clock_to(r, k * 0.001);
    ck_assert_int_eq(p.n, 4);
    ck_assert(fabs(p.sched[1] - 0.035) < 1e-9);
    ck_assert(fabs(p.sched[2] - 0.045) < 1e-9);
    ck_assert(fabs(p.sched[3] - 0.055) < 1e-9);
    ck_assert_int_eq(reactor_timer_delay(p.t, 0.005), 0); /* 0.065 -> 0.070 */
    for (int k = 57; k <= 81; k++)
        clock_to(r, k * 0.001);
    ck_assert_int_eq(p.n, 6);
    ck_assert(fabs(p.sched[4] - 0.070) < 1e-9);
    ck_assert(fabs(p.sched[5] - 0.080) < 1e-9);
    for (int i = 0; i < p.n; i++) /* never early; a step late at most (1 ms steps) */
        ck_assert(p.at[i] >= p.sched[i] && p.at[i] < p.sched[i] + 0.0011);
    reactor_free(r);
}
END_TEST

static void every_count(reactor *r, void *data)
{
    (void)r;
    (*(int *)data)++;
}

START_TEST(test_every_bad_args)
{
    reactor *r = th_reactor(_i);
    int n = 0;
    errno = 0;
    ck_assert_ptr_null(reactor_call_every(r, 0, every_count, &n));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_ptr_null(reactor_call_every(r, -1, every_count, &n));
    ck_assert_ptr_null(reactor_call_every(r, NAN, every_count, &n));
    ck_assert_ptr_null(reactor_call_every(r, INFINITY, every_count, &n));
    ck_assert_ptr_null(reactor_call_every(r, 1e-7, every_count, &n));
    ck_assert_ptr_null(reactor_call_every_named(r, 1, NULL, &n, "x"));
    ck_assert_ptr_null(reactor_call_every_named(NULL, 1, every_count, &n, "x"));
    reactor_free(r);
}
END_TEST

/* Real backend: a 5 ms repeating call runs at least 3 times in a bounded loop, and the
 * loop blocks between runs instead of spinning (iterations bounded, nothing timed). */
typedef struct {
    int n, done;
    reactor_timer *t;
} real_rep;

static void real_rep_fn(reactor *r, void *data)
{
    real_rep *p = data;
    if (++p->n == 3) {
        ck_assert_int_eq(reactor_timer_cancel(p->t), 0);
        th_set_flag(r, &p->done);
    }
}

START_TEST(test_every_real_clock_no_spin)
{
    reactor *r = th_reactor(_i);
    real_rep p = {0};
    uint64_t before = reactor_iterations(r);
    p.t = reactor_call_every(r, 0.005, real_rep_fn, &p);
    ck_assert_ptr_nonnull(p.t);
    ck_assert(th_iterate_until(r, &p.done, 5.0));
    ck_assert_int_eq(p.n, 3);
    /* About 2 iterations per run (a blocking poll, then the run); thousands if it spun. */
    ck_assert_uint_le(reactor_iterations(r) - before, 20);
    ck_assert_uint_eq(reactor_pending_timers(r), 0);
    th_iterate_n(r, 3);
    ck_assert_int_eq(p.n, 3);
    reactor_free(r);
}
END_TEST

/* ---- Removal and lazy moves (timers.c): one heap entry per pending call ---- */

/* Cancelling most calls (the common case: replies came in time) keeps the pending count
 * exact and the heap holds exactly the pending calls (a cancel removes its entry; until
 * issue 15 it left a stale one, compacted by Twisted's rule, D6). The calls left run, in
 * time order. */
START_TEST(test_cancel_many_pending_exact_heap_bounded)
{
    reactor *r = fake(_i);
    enum { N = 1000 };
    static tlog l;
    static tcall c[N];
    static reactor_timer *t[N];
    memset(&l, 0, sizeof l);
    for (int k = 0; k < N; k++) {
        c[k] = (tcall){&l, k, NULL, 1 + (k * 7919 % N) * 0.001}; /* distinct deadlines */
        t[k] = reactor_call_later(r, c[k].when, record, &c[k]);
    }
    size_t pending = N;
    for (int j = 0; j < N; j++) {
        int k = j * 611 % N; /* a scrambled order */
        if (k % 10 == 0)
            continue; /* every tenth call stays */
        ck_assert_int_eq(reactor_timer_cancel(t[k]), 0);
        pending--;
        ck_assert_uint_eq(reactor_pending_timers(r), pending);
        ck_assert_uint_eq(r->heap_n, pending);
    }
    ck_assert_uint_eq(pending, N / 10);
    ck_assert_int_eq(reactor_advance(r, 2), 0);
    ck_assert_int_eq(l.n, N / 10);
    for (int i = 0; i < l.n; i++) {
        ck_assert_int_eq(l.order[i] % 10, 0);
        if (i > 0)
            ck_assert(c[l.order[i]].when > c[l.order[i - 1]].when);
    }
    ck_assert_uint_eq(reactor_pending_timers(r), 0);
    ck_assert_uint_eq(r->heap_n, 0);
    reactor_free(r);
}
END_TEST

/* Moves sooner, later and back, mixed: nothing runs early, and the three calls due at 5
 * run in the order they were scheduled. The next deadline the loop polls with is the
 * real one, not that of an entry left behind by a move. */
START_TEST(test_reset_sooner_later_keeps_fifo)
{
    reactor *r = fake(_i);
    tlog l = {0};
    tcall a = {&l, 'a', NULL, 0}, b = {&l, 'b', NULL, 0}, c = {&l, 'c', NULL, 0};
    reactor_call_later(r, 5, record, &a);
    reactor_timer *tb = reactor_call_later(r, 5, record, &b);
    reactor_timer *tc = reactor_call_later(r, 5, record, &c);
    ck_assert_int_eq(reactor_timer_reset(tb, 2), 0); /* sooner */
    ck_assert_int_eq(reactor_timer_reset(tb, 5), 0); /* later: back to 5 */
    ck_assert_int_eq(reactor_timer_reset(tc, 1), 0);
    ck_assert_int_eq(reactor_timer_reset(tc, 7), 0);
    ck_assert_int_eq(reactor_timer_delay(tc, 0), 0);
    ck_assert_int_eq(reactor_timer_reset(tc, 5), 0);
    ck_assert(reactor_timer_time(tb) == 5.0 && reactor_timer_time(tc) == 5.0);
    ck_assert(r->heap[0].when == 5000000000);               /* what poll_timeout reads */
    ck_assert_int_eq(reactor__timer_timeout_ms(r), 5000);
    for (int k = 1; k <= 4; k++) {
        ck_assert_int_eq(reactor_advance(r, 1), 0);
        ck_assert_int_eq(l.n, 0);
        ck_assert(r->heap[0].when == 5000000000);
    }
    ck_assert_int_eq(reactor_advance(r, 1), 0);
    ck_assert_int_eq(l.n, 3);
    ck_assert_int_eq(l.order[0], 'a');
    ck_assert_int_eq(l.order[1], 'b');
    ck_assert_int_eq(l.order[2], 'c');
    ck_assert_int_eq(reactor_advance(r, 10), 0);
    ck_assert_int_eq(l.n, 3); /* each ran once */
    ck_assert_uint_eq(reactor_pending_timers(r), 0);
    ck_assert_uint_eq(r->heap_n, 0);
    reactor_free(r);
}
END_TEST

/* Cancelling the nearest call leaves nothing behind at the top of the heap: with no
 * other call the heap is empty, so the clock can be swapped (reactor_use_fake_clock
 * refuses while calls are pending). */
START_TEST(test_cancel_nearest_leaves_heap_empty)
{
    reactor *r = th_reactor(_i);
    tlog l = {0};
    tcall c = {&l, 1, NULL, 0};
    reactor_timer *t = reactor_call_later(r, 1, record, &c);
    ck_assert_int_eq(reactor_timer_cancel(t), 0);
    ck_assert_uint_eq(r->heap_n, 0);
    ck_assert_int_eq(reactor_use_fake_clock(r, 0), 0);
    reactor_free(r);
}
END_TEST

/* Issue 10's program: a handle kept after its call ran is recognised as over, even once
 * its struct serves another call (here: the very next one), and never acts on that call. */
START_TEST(test_stale_handle_after_run_cancels_nothing)
{
    reactor *r = fake(_i);
    tlog l = {0};
    tcall c1 = {&l, 1, NULL, 0}, c2 = {&l, 2, NULL, 0};
    reactor_timer *t1 = reactor_call_later(r, 1, record, &c1);
    ck_assert_int_eq(reactor_advance(r, 1), 0); /* t1 ran */
    reactor_timer *t2 = reactor_call_later(r, 1, record, &c2);
    ck_assert_ptr_nonnull(t2);
#if UINTPTR_MAX > 0xFFFFFFFFu
    /* The situation of the issue: t2 reuses t1's struct (handles differ only in the
     * generation bits, 0-3 and 48-63). */
    ck_assert_uint_eq(((uintptr_t)t1 ^ (uintptr_t)t2) & 0x0000FFFFFFFFFFF0u, 0);
#endif
    ck_assert_int_eq(reactor_timer_cancel(t1), -EALREADY);
    ck_assert_int_eq(reactor_timer_reset(t1, 0), -EALREADY);
    ck_assert_int_eq(reactor_timer_delay(t1, 5), -EALREADY);
    ck_assert(!reactor_timer_active(t1));
    ck_assert_ptr_null(reactor_timer_hold(t1));
    reactor_timer_release(t1); /* no hold was taken through t1: nothing happens */
    ck_assert(reactor_timer_active(t2));
    ck_assert(reactor_timer_time(t2) == 2.0);
    ck_assert_uint_eq(reactor_pending_timers(r), 1);
    ck_assert_int_eq(reactor_advance(r, 1), 0);
    ck_assert_int_eq(l.n, 2);
    ck_assert_int_eq(l.order[0], 1);
    ck_assert_int_eq(l.order[1], 2);
    ck_assert_int_eq(reactor_timer_cancel(t2), -EALREADY);
    reactor_free(r);
}
END_TEST

static void count_run(reactor *r, void *data)
{
    (void)r;
    (*(int *)data)++;
}

/* The same after a cancel, over many reuses: every old handle stays over (the struct's
 * generation moves on each time, and a struct that used them all is retired), and each
 * old handle's cancel leaves the one pending call alone. */
START_TEST(test_stale_handles_over_many_reuses)
{
    reactor *r = fake(_i);
    enum { N = 20000 }; /* past the 8 generations the low bits alone hold */
    int ran = 0;
    reactor_timer **old = malloc(N * sizeof *old);
    ck_assert_ptr_nonnull(old);
    for (int k = 0; k < N; k++) {
        old[k] = reactor_call_later(r, 1, count_run, &ran);
        ck_assert_ptr_nonnull(old[k]);
        if (k % 2)
            ck_assert_int_eq(reactor_timer_cancel(old[k]), 0);
        else
            ck_assert_int_eq(reactor_advance(r, 1), 0);
    }
    ck_assert_int_eq(ran, N / 2);
    reactor_timer *live = reactor_call_later(r, 1, count_run, &ran);
    for (int k = 0; k < N; k++) {
        ck_assert(old[k] != live);
        int rc = reactor_timer_cancel(old[k]);
        ck_assert(rc == -EALREADY || rc == -ECANCELED);
        ck_assert(!reactor_timer_active(old[k]));
    }
    ck_assert(reactor_timer_active(live));
    ck_assert_int_eq(reactor_advance(r, 1), 0);
    ck_assert_int_eq(ran, N / 2 + 1);
    free(old);
    reactor_free(r);
}
END_TEST

/* A cancelled call leaves the heap at once and its struct serves new calls under new
 * handles (a released handle is gone like freed memory), so the new calls run once each
 * and the cancelled ones never run. */
START_TEST(test_cancelled_struct_not_reused_while_in_heap)
{
    reactor *r = fake(_i);
    enum { N = 200 };
    tlog l = {0};
    tcall first = {&l, 'f', NULL, 0}, x = {&l, 'x', NULL, 0}, y = {&l, 'y', NULL, 0};
    reactor_call_later(r, 1, record, &first); /* keeps x's entry off the top */
    reactor_timer *tx = reactor_call_later(r, 10, record, &x);
    reactor_timer *tx2 = reactor_timer_hold(reactor_call_later(r, 10, record, &x));
    ck_assert_int_eq(reactor_timer_cancel(tx), 0);
    ck_assert_int_eq(reactor_timer_cancel(tx2), 0);
    reactor_timer_release(tx2); /* the last reference: gone */
    for (int k = 0; k < N; k++) {
        reactor_timer *ty = reactor_call_later(r, 10, record, &y);
        ck_assert_ptr_nonnull(ty);
        ck_assert(ty != tx);
    }
    ck_assert_uint_eq(reactor_pending_timers(r), N + 1);
    ck_assert_int_eq(reactor_advance(r, 10), 0);
    ck_assert_int_eq(l.n, N + 1);
    ck_assert_int_eq(l.order[0], 'f');
    for (int i = 1; i < l.n; i++)
        ck_assert_int_eq(l.order[i], 'y');
    ck_assert_uint_eq(reactor_pending_timers(r), 0);
    reactor_free(r);
}
END_TEST

/* A call moved sooner, then later (lazily: its entry stays early), then back where it
 * was runs once, at 5; every heap entry is a pending call's all along. (Written for the
 * lazy-removal heap, where it had two entries that both looked like its own.) */
START_TEST(test_compaction_keeps_one_entry_per_call)
{
    reactor *r = fake(_i);
    enum { N = 200 };
    tlog l = {0};
    tcall g = {&l, 'g', NULL, 0}, c = {&l, 't', NULL, 0}, o = {&l, 'o', NULL, 0};
    reactor_call_later(r, 1, record, &g);           /* keeps the top of the heap */
    reactor_timer *t = reactor_call_later(r, 5, record, &c);
    ck_assert_int_eq(reactor_timer_reset(t, 3), 0); /* sooner: its entry moves up to 3 */
    ck_assert_int_eq(reactor_timer_reset(t, 7), 0); /* later: only its time changes */
    ck_assert_int_eq(reactor_timer_reset(t, 5), 0); /* later than 3 again */
    ck_assert_uint_eq(r->heap_n, 2);
    ck_assert_int_eq(reactor_advance(r, 1), 0);     /* g runs; 3 is put back at 5 */
    ck_assert_int_eq(l.n, 1);
    ck_assert(r->heap[0].when == 5000000000);
    reactor_timer *others[N];
    for (int k = 0; k < N; k++)
        others[k] = reactor_call_later(r, 20, record, &o);
    int cancelled = 0;
    while (cancelled < N / 2) {
        ck_assert_int_eq(reactor_timer_cancel(others[cancelled++]), 0);
        ck_assert_uint_eq(r->heap_n, reactor_pending_timers(r));
    }
    ck_assert_int_eq(reactor_advance(r, 4), 0);
    ck_assert_int_eq(l.n, 2);
    ck_assert_int_eq(l.order[1], 't');
    ck_assert(l.at[1] == 5.0);
    ck_assert_int_eq(reactor_advance(r, 20), 0);
    ck_assert_int_eq(l.n, 2 + N - cancelled);
    ck_assert_uint_eq(reactor_pending_timers(r), 0);
    reactor_free(r);
}
END_TEST

/* A repeating call moved sooner, then re-armed: its re-arm gives it a new place among
 * calls due at the same time; the ten calls due at 1 still run in the order they were
 * scheduled (with lazy removal a stale entry whose place changed under it broke the
 * heap's order), and it stays on its new grid. */
START_TEST(test_every_reset_sooner_keeps_fifo)
{
    reactor *r = fake(_i);
    tlog l = {0};
    tcall e = {&l, 100, NULL, 0}, c[10];
    for (int k = 0; k < 10; k++)
        c[k] = (tcall){&l, k, NULL, 1.0};
    reactor_call_later(r, 1.0, record, &c[0]);
    reactor_timer *te = reactor_call_every(r, 1.0, record, &e); /* at 1, 2, ... */
    for (int k = 1; k < 10; k++)
        reactor_call_later(r, 1.0, record, &c[k]);
    ck_assert_int_eq(reactor_timer_reset(te, 0.5), 0); /* now 0.5, 1.5, ... */
    for (int k = 0; k < 4; k++)
        ck_assert_int_eq(reactor_advance(r, 0.5), 0);
    ck_assert_int_eq(l.n, 12);
    ck_assert_int_eq(l.order[0], 100);
    ck_assert(l.at[0] == 0.5);
    for (int k = 0; k < 10; k++) {
        ck_assert_int_eq(l.order[1 + k], k);
        ck_assert(l.at[1 + k] == 1.0);
    }
    ck_assert_int_eq(l.order[11], 100);
    ck_assert(l.at[11] == 1.5);
    ck_assert_int_eq(reactor_timer_cancel(te), 0);
    ck_assert_uint_eq(reactor_pending_timers(r), 0);
    reactor_free(r);
}
END_TEST

extern Suite *suite_reactor_timers(void);
Suite *suite_reactor_timers(void)
{
    Suite *s = suite_create("reactor_timers");
    TCase *tc = tcase_create("timers");
    int n = th_backend_count();
    tcase_add_loop_test(tc, test_callLater, 0, n);
    tcase_add_loop_test(tc, test_short_timer_no_spin_not_early, 0, n);
    tcase_add_loop_test(tc, test_distantDelayedCall, 0, n);
    tcase_add_loop_test(tc, test_iterate_returns_after_timer_ran, 0, n);
    tcase_add_loop_test(tc, test_callLaterKeepsCallsOrdered, 0, n);
    tcase_add_loop_test(tc, test_callLaterZeroFIFO, 0, n);
    tcase_add_loop_test(tc, test_timer_scheduled_in_timer_waits_next_iteration, 0, n);
    tcase_add_loop_test(tc, test_cancelDelayedCall, 0, n);
    tcase_add_loop_test(tc, test_cancelCancelledDelayedCall, 0, n);
    tcase_add_loop_test(tc, test_cancelCalledDelayedCallSynchronous, 0, n);
    tcase_add_loop_test(tc, test_cancelCalledDelayedCallAsynchronous, 0, n);
    tcase_add_loop_test(tc, test_active, 0, n);
    tcase_add_loop_test(tc, test_callLaterReset, 0, n);
    tcase_add_loop_test(tc, testCallLaterDelayed, 0, n);
    tcase_add_loop_test(tc, testCallLaterResetLater, 0, n);
    tcase_add_loop_test(tc, testCallLaterResetSooner, 0, n);
    tcase_add_loop_test(tc, testAdvanceCancel, 0, n);
    tcase_add_loop_test(tc, test_callLaterResetKeepsCallsOrdered, 0, n);
    tcase_add_loop_test(tc, test_callLaterResetInsideCallKeepsCallsOrdered, 0, n);
    tcase_add_loop_test(tc, test_timerErrorDoesNotStopOthers, 0, n);
    tcase_add_loop_test(tc, testGetDelayedCalls, 0, n);
    tcase_add_loop_test(tc, test_timer_cancels_another_due_same_pass, 0, n);
    tcase_add_loop_test(tc, test_timer_resets_another_due_same_pass, 0, n);
    tcase_add_loop_test(tc, test_timer_readding_itself_runs_once_per_pass, 0, n);
    tcase_add_loop_test(tc, test_timer_hold_release, 0, n);
    tcase_add_loop_test(tc, test_bad_delays, 0, n);
    tcase_add_loop_test(tc, test_fake_clock_never_blocks, 0, n);
    tcase_add_loop_test(tc, test_every_drift_free, 0, n);
    tcase_add_loop_test(tc, test_every_slow_function_stays_on_grid, 0, n);
    tcase_add_loop_test(tc, test_every_stall_skips_missed_runs, 0, n);
    tcase_add_loop_test(tc, test_every_cancel_from_inside, 0, n);
    tcase_add_loop_test(tc, test_every_cancel_held, 0, n);
    tcase_add_loop_test(tc, test_every_reset, 0, n);
    tcase_add_loop_test(tc, test_every_bad_args, 0, n);
    tcase_add_loop_test(tc, test_every_real_clock_no_spin, 0, n);
    tcase_add_loop_test(tc, test_cancel_many_pending_exact_heap_bounded, 0, n);
    tcase_add_loop_test(tc, test_reset_sooner_later_keeps_fifo, 0, n);
    tcase_add_loop_test(tc, test_cancel_nearest_leaves_heap_empty, 0, n);
    tcase_add_loop_test(tc, test_cancelled_struct_not_reused_while_in_heap, 0, n);
    tcase_add_loop_test(tc, test_stale_handle_after_run_cancels_nothing, 0, n);
    tcase_add_test(tc, test_stale_handles_over_many_reuses);
    tcase_add_loop_test(tc, test_compaction_keeps_one_entry_per_call, 0, n);
    tcase_add_loop_test(tc, test_every_reset_sooner_keeps_fifo, 0, n);
    suite_add_tcase(s, tc);
    return s;
}
