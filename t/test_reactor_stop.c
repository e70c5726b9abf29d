/* run/stop, shutdown triggers and holds, call_when_running: semantics D7, D8, D10. */
#include <check.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

typedef struct {
    char seq[64];
    int n;
    int running_seen[8];
} evlog;

typedef struct {
    evlog *ev;
    char tag;
} ev_call;

static void note(reactor *r, void *data)
{
    ev_call *c = data;
    ck_assert_int_lt(c->ev->n, 63);
    c->ev->running_seen[c->ev->n % 8] = reactor_running(r);
    c->ev->seq[c->ev->n++] = c->tag;
}

static void stop_now(reactor *r, void *data)
{
    (void)data;
    ck_assert_int_eq(reactor_stop(r), 0);
}

START_TEST(test_stopWhenNotStarted)
{
    reactor *r = th_reactor(_i);
    ck_assert_int_eq(reactor_stop(r), -EINVAL);
    ck_assert(!reactor_running(r));
    reactor_free(r);
}
END_TEST

static void stop_twice(reactor *r, void *data)
{
    int *rc = data;
    ck_assert_int_eq(reactor_stop(r), 0);
    *rc = reactor_stop(r);
}

START_TEST(test_stopWhenAlreadyStopped)
{
    reactor *r = th_reactor(_i);
    int rc = 0;
    reactor_call_soon(r, stop_twice, &rc);
    ck_assert_int_eq(reactor_run(r), 0);
    ck_assert_int_eq(rc, -EALREADY);
    reactor_free(r);
}
END_TEST

/* stop() returns before any trigger ran; they run when the iteration ends. */
typedef struct {
    evlog ev;
    int before_ran_at_stop;
} async_t;

static void stop_and_look(reactor *r, void *data)
{
    async_t *a = data;
    ck_assert_int_eq(reactor_stop(r), 0);
    a->before_ran_at_stop = a->ev.n;
}

START_TEST(test_shutdownFiresTriggersAsynchronously)
{
    reactor *r = th_reactor(_i);
    async_t a = {0};
    ev_call b = {&a.ev, 'b'};
    ck_assert_ptr_nonnull(reactor_add_trigger(r, REACTOR_BEFORE_SHUTDOWN, note, &b));
    reactor_call_soon(r, stop_and_look, &a);
    ck_assert_int_eq(reactor_run(r), 0);
    ck_assert_int_eq(a.before_ran_at_stop, 0);
    ck_assert_int_eq(a.ev.n, 1);
    reactor_free(r);
}
END_TEST

START_TEST(test_stopShutDownEvents)
{
    reactor *r = th_reactor(_i);
    evlog ev = {0};
    ev_call a1 = {&ev, 'A'}, d1 = {&ev, 'D'}, b1 = {&ev, 'B'}, b2 = {&ev, 'b'}, a2 = {&ev, 'a'};
    /* Added out of phase order: they run by phase, in the order added within a phase. */
    reactor_add_trigger(r, REACTOR_AFTER_SHUTDOWN, note, &a1);
    reactor_add_trigger(r, REACTOR_DURING_SHUTDOWN, note, &d1);
    reactor_add_trigger(r, REACTOR_BEFORE_SHUTDOWN, note, &b1);
    reactor_add_trigger(r, REACTOR_BEFORE_SHUTDOWN, note, &b2);
    reactor_add_trigger(r, REACTOR_AFTER_SHUTDOWN, note, &a2);
    reactor_call_later(r, 0.01, stop_now, NULL); /* test_delayedCallStopsReactor too */
    ck_assert_int_eq(reactor_run(r), 0);
    ck_assert_str_eq(ev.seq, "BbDAa");
    ck_assert_int_eq(ev.running_seen[0], 1); /* running during "before" */
    ck_assert_int_eq(ev.running_seen[3], 0); /* not during "after" */
    ck_assert(!reactor_running(r));
    reactor_free(r);
}
END_TEST

START_TEST(test_runAfterStop)
{
    reactor *r = th_reactor(_i);
    reactor_call_soon(r, stop_now, NULL);
    ck_assert_int_eq(reactor_run(r), 0);
    ck_assert_int_eq(reactor_run(r), -EINVAL); /* a reactor runs once */
    ck_assert_int_eq(reactor_call_when_running(r, stop_now, NULL), -EINVAL);
    reactor_free(r);
}
END_TEST

static void run_inside(reactor *r, void *data)
{
    *(int *)data = reactor_run(r);
    reactor_stop(r);
}

START_TEST(test_multipleRun)
{
    reactor *r = th_reactor(_i);
    int rc = 0;
    reactor_call_soon(r, run_inside, &rc);
    ck_assert_int_eq(reactor_run(r), 0);
    ck_assert_int_eq(rc, -EBUSY);
    reactor_free(r);
}
END_TEST

/* D8: a trigger that removes a later one of its phase; a removed trigger never runs;
 * removing twice or after it ran says -ENOENT; each runs once. */
typedef struct {
    evlog *ev;
    reactor_trigger *victim;
} remover;

static void remove_victim(reactor *r, void *data)
{
    remover *m = data;
    ck_assert_int_eq(reactor_remove_trigger(r, m->victim), 0);
    ck_assert_int_eq(reactor_remove_trigger(r, m->victim), -ENOENT);
    m->ev->seq[m->ev->n++] = 'R';
}

START_TEST(test_triggers_remove_and_run_once)
{
    reactor *r = th_reactor(_i);
    evlog ev = {0};
    ev_call x = {&ev, 'x'}, y = {&ev, 'y'}, z = {&ev, 'z'};
    remover m = {&ev, NULL};
    reactor_trigger *tx = reactor_add_trigger(r, REACTOR_DURING_SHUTDOWN, note, &x);
    reactor_trigger *ty = reactor_add_trigger(r, REACTOR_BEFORE_SHUTDOWN, note, &y);
    ck_assert_int_eq(reactor_remove_trigger(r, ty), 0);
    ck_assert_int_eq(reactor_remove_trigger(r, ty), -ENOENT);
    reactor_add_trigger(r, REACTOR_BEFORE_SHUTDOWN, remove_victim, &m);
    m.victim = reactor_add_trigger(r, REACTOR_BEFORE_SHUTDOWN, note, &z);
    errno = 0;
    ck_assert_ptr_null(reactor_add_trigger(r, (reactor_phase)7, note, &x));
    ck_assert_int_eq(errno, EINVAL);
    reactor_call_soon(r, stop_now, NULL);
    ck_assert_int_eq(reactor_run(r), 0);
    ck_assert_str_eq(ev.seq, "Rx");
    ck_assert_int_eq(reactor_remove_trigger(r, tx), -ENOENT); /* already ran */
    reactor_free(r);
}
END_TEST

/* D8 test_asynchronousBefore: a "before" trigger holds the shutdown until work it started
 * is done; the loop keeps running I/O and timers meanwhile; "during" waits. */
typedef struct {
    evlog ev;
    int sv[2];
    int flushed;
} hold_t;

static void flushed_io(reactor *r, int fd, unsigned events, void *data)
{
    (void)events;
    hold_t *h = data;
    char buf[16];
    if (read(fd, buf, sizeof buf) > 0) {
        h->flushed = 1;
        h->ev.seq[h->ev.n++] = 'F';
        reactor_unwatch(r, fd);
        reactor_shutdown_release(r);
    }
}

static void start_flush(reactor *r, void *data)
{
    hold_t *h = data;
    h->ev.seq[h->ev.n++] = 'B';
    reactor_shutdown_hold(r);
    ck_assert_int_eq(reactor_watch(r, h->sv[0], REACTOR_READABLE, flushed_io, h), 0);
    ck_assert_int_eq(write(h->sv[1], "bye", 3), 3);
}

START_TEST(test_asynchronousBefore)
{
    reactor *r = th_reactor(_i);
    hold_t h = {0};
    th_socketpair(h.sv);
    ev_call d = {&h.ev, 'D'}, a = {&h.ev, 'A'};
    reactor_add_trigger(r, REACTOR_BEFORE_SHUTDOWN, start_flush, &h);
    reactor_add_trigger(r, REACTOR_DURING_SHUTDOWN, note, &d);
    reactor_add_trigger(r, REACTOR_AFTER_SHUTDOWN, note, &a);
    reactor_call_soon(r, stop_now, NULL);
    ck_assert_int_eq(reactor_run(r), 0);
    ck_assert_str_eq(h.ev.seq, "BFDA");
    close(h.sv[0]);
    close(h.sv[1]);
    reactor_free(r);
}
END_TEST

/* A hold released from a timer (not I/O) also lets the shutdown go on. */
static void release_later(reactor *r, void *data)
{
    (void)data;
    reactor_shutdown_release(r);
}

static void hold_and_timer(reactor *r, void *data)
{
    (void)data;
    reactor_shutdown_hold(r);
    reactor_shutdown_hold(r);
    reactor_call_later(r, 0.01, release_later, NULL);
    reactor_call_later(r, 0.02, release_later, NULL);
}

START_TEST(test_shutdown_hold_released_by_timers)
{
    reactor *r = th_reactor(_i);
    evlog ev = {0};
    ev_call d = {&ev, 'D'};
    reactor_add_trigger(r, REACTOR_BEFORE_SHUTDOWN, hold_and_timer, NULL);
    reactor_add_trigger(r, REACTOR_DURING_SHUTDOWN, note, &d);
    reactor_call_soon(r, stop_now, NULL);
    ck_assert_int_eq(reactor_run(r), 0);
    ck_assert_str_eq(ev.seq, "D");
    ck_assert_uint_eq(reactor_pending_timers(r), 0);
    reactor_free(r);
}
END_TEST

/* Misuse is reported: a release without a hold, or no reactor, is -EINVAL (and the
 * count never goes below zero: the next hold still holds). */
START_TEST(test_shutdown_hold_misuse)
{
    reactor *r = th_reactor(_i);
    ck_assert_int_eq(reactor_shutdown_hold(NULL), -EINVAL);
    ck_assert_int_eq(reactor_shutdown_release(NULL), -EINVAL);
    ck_assert_int_eq(reactor_shutdown_release(r), -EINVAL);
    ck_assert_int_eq(reactor_shutdown_hold(r), 0);
    ck_assert_int_eq(reactor_shutdown_release(r), 0);
    ck_assert_int_eq(reactor_shutdown_release(r), -EINVAL);
    reactor_free(r);
}
END_TEST

/* D10 */
START_TEST(test_callWhenRunningOrder)
{
    reactor *r = th_reactor(_i);
    evlog ev = {0};
    ev_call a = {&ev, '1'}, b = {&ev, '2'}, c = {&ev, '3'};
    ck_assert_int_eq(reactor_call_when_running(r, note, &a), 0);
    ck_assert_int_eq(reactor_call_when_running(r, note, &b), 0);
    ck_assert_int_eq(reactor_call_when_running(r, note, &c), 0);
    ck_assert_int_eq(ev.n, 0);
    ck_assert_int_eq(reactor_call_when_running(r, stop_now, NULL), 0);
    ck_assert_int_eq(reactor_run(r), 0);
    ck_assert_str_eq(ev.seq, "123");
    reactor_free(r);
}
END_TEST

static void when_running_now(reactor *r, void *data)
{
    evlog *ev = data;
    ev_call x = {ev, 'n'};
    ck_assert_int_eq(reactor_call_when_running(r, note, &x), 0); /* runs at once */
    ck_assert_int_eq(ev->n, 1);
    reactor_stop(r);
}

/* A trigger cannot free the reactor under the loop, even in "after" (not running). */
static void try_free(reactor *r, void *data)
{
    *(int *)data = reactor_free(r);
}

START_TEST(test_trigger_cannot_free_reactor)
{
    reactor *r = th_reactor(_i);
    int rc = 0;
    reactor_add_trigger(r, REACTOR_AFTER_SHUTDOWN, try_free, &rc);
    reactor_call_soon(r, stop_now, NULL);
    ck_assert_int_eq(reactor_run(r), 0);
    ck_assert_int_eq(rc, -EBUSY);
    ck_assert_int_eq(reactor_free(r), 0);
}
END_TEST

START_TEST(test_runningForStartupEvents)
{
    reactor *r = th_reactor(_i);
    evlog ev = {0};
    ck_assert(!reactor_running(r));
    reactor_call_when_running(r, when_running_now, &ev);
    ck_assert_int_eq(reactor_run(r), 0);
    ck_assert_int_eq(ev.running_seen[0], 1);
    reactor_free(r);
}
END_TEST

extern Suite *suite_reactor_stop(void);
Suite *suite_reactor_stop(void)
{
    Suite *s = suite_create("reactor_stop");
    TCase *tc = tcase_create("stop");
    int n = th_backend_count();
    tcase_add_loop_test(tc, test_stopWhenNotStarted, 0, n);
    tcase_add_loop_test(tc, test_stopWhenAlreadyStopped, 0, n);
    tcase_add_loop_test(tc, test_shutdownFiresTriggersAsynchronously, 0, n);
    tcase_add_loop_test(tc, test_stopShutDownEvents, 0, n);
    tcase_add_loop_test(tc, test_runAfterStop, 0, n);
    tcase_add_loop_test(tc, test_multipleRun, 0, n);
    tcase_add_loop_test(tc, test_triggers_remove_and_run_once, 0, n);
    tcase_add_loop_test(tc, test_asynchronousBefore, 0, n);
    tcase_add_loop_test(tc, test_shutdown_hold_released_by_timers, 0, n);
    tcase_add_loop_test(tc, test_shutdown_hold_misuse, 0, n);
    tcase_add_loop_test(tc, test_callWhenRunningOrder, 0, n);
    tcase_add_loop_test(tc, test_runningForStartupEvents, 0, n);
    tcase_add_loop_test(tc, test_trigger_cannot_free_reactor, 0, n);
    suite_add_tcase(s, tc);
    return s;
}
