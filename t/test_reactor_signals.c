/* Signals through the self-pipe (pitfall 2.13), graceful stop on SIGINT/SIGTERM (D10),
 * and EINTR during the poll (pitfall 2.1). Each test restores what it changed, so the
 * suite also passes in one process (CK_FORK=no under valgrind). */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

typedef struct {
    int calls;
    pthread_t thread;
    int done;
} sig_seen;

static void on_usr1(reactor *r, void *data)
{
    sig_seen *s = data;
    s->calls++;
    s->thread = pthread_self();
    th_set_flag(r, &s->done);
}

static void raise_burst(reactor *r, void *data)
{
    sig_seen *s = data;
    errno = ENOTTY;
    raise(SIGUSR1);
    raise(SIGUSR1);
    raise(SIGUSR1);
    ck_assert_int_eq(errno, ENOTTY); /* the handler saved and restored errno */
    ck_assert_int_eq(s->calls, 0);   /* never run inside the handler */
    (void)r;
}

static void *raise_in_thread(void *arg)
{
    (void)arg;
    raise(SIGUSR1); /* the handler runs on this thread; the loop thread runs the callback */
    return NULL;
}

static void prior_handler(int signo)
{
    (void)signo;
}

START_TEST(test_signal_runs_on_loop_once_per_burst)
{
    struct sigaction prior = {0}, old, now;
    prior.sa_handler = prior_handler;
    sigemptyset(&prior.sa_mask);
    ck_assert_int_eq(sigaction(SIGUSR1, &prior, &old), 0);

    reactor *r = th_reactor(_i);
    sig_seen s = {0};
    ck_assert_int_eq(reactor_on_signal(r, SIGUSR1, on_usr1, &s), 0);
    reactor *other = th_reactor(_i);
    ck_assert_int_eq(reactor_on_signal(other, SIGUSR1, on_usr1, &s), -EBUSY);
    ck_assert_int_eq(reactor_on_signal(other, SIGKILL, on_usr1, &s), -EINVAL);
    ck_assert_int_eq(reactor_on_signal(other, 0, on_usr1, &s), -EINVAL);
    reactor_free(other);

    reactor_call_soon(r, raise_burst, &s);
    ck_assert(th_iterate_until(r, &s.done, 5.0));
    th_iterate_n(r, 2);
    ck_assert_int_eq(s.calls, 1); /* three deliveries, one run */
    ck_assert(pthread_equal(s.thread, pthread_self()));

    /* From another thread, while the loop is blocked in its poll. */
    s.done = 0;
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, raise_in_thread, NULL), 0);
    ck_assert(th_iterate_until(r, &s.done, 5.0));
    pthread_join(t, NULL);
    ck_assert_int_eq(s.calls, 2);
    ck_assert(pthread_equal(s.thread, pthread_self()));

    reactor_free(r); /* puts the previous disposition back */
    ck_assert_int_eq(sigaction(SIGUSR1, &old, &now), 0);
    ck_assert(now.sa_handler == prior_handler);
}
END_TEST

/* D10 test_captureSIGINT / test_captureSIGTERM: a graceful stop, triggers included. */
static void raise_it(reactor *r, void *data)
{
    (void)r;
    raise(*(int *)data);
}

static void note_trigger(reactor *r, void *data)
{
    (void)r;
    ++*(int *)data;
}

START_TEST(test_stop_on_sigint_and_sigterm)
{
    static const int sigs[2] = {SIGINT, SIGTERM};
    for (int k = 0; k < 2; k++) {
        struct sigaction before, after;
        sigaction(sigs[k], NULL, &before);
        reactor *r = th_reactor(_i);
        int triggered = 0;
        ck_assert_int_eq(reactor_stop_on_signals(r), 0);
        reactor_add_trigger(r, REACTOR_DURING_SHUTDOWN, note_trigger, &triggered);
        reactor_call_later(r, 0.001, raise_it, (void *)&sigs[k]);
        ck_assert_int_eq(reactor_run(r), 0);
        ck_assert_int_eq(triggered, 1);
        reactor_free(r);
        sigaction(sigs[k], NULL, &after);
        ck_assert(after.sa_handler == before.sa_handler);
    }
}
END_TEST

/* Pitfall 2.1: SIGALRM every millisecond (no SA_RESTART) interrupts the poll again and
 * again. The 50 ms timer still fires once, not early, the loop neither spins nor reports
 * I/O that did not happen, and EINTR never reaches the caller. */
static volatile sig_atomic_t alarms;
static void on_alarm(int signo)
{
    (void)signo;
    alarms++;
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct {
    double due;
    int calls;
    int done;
} alarm_t;

static void timer_50ms(reactor *r, void *data)
{
    alarm_t *a = data;
    ck_assert(mono() >= a->due);
    a->calls++;
    th_set_flag(r, &a->done);
}

static void must_not_fire(reactor *r, int fd, unsigned events, void *data)
{
    (void)r;
    (void)data;
    ck_abort_msg("spurious I/O callback fd=%d events=%u", fd, events);
}

START_TEST(test_eintr_does_not_disturb_timers)
{
    struct sigaction sa = {0}, old;
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: every poll is interrupted */
    ck_assert_int_eq(sigaction(SIGALRM, &sa, &old), 0);
    reactor *r = th_reactor(_i);
    int sv[2];
    th_socketpair(sv);
    ck_assert_int_eq(reactor_watch(r, sv[0], REACTOR_READABLE, must_not_fire, NULL), 0);
    alarm_t a = {mono() + 0.05, 0, 0};
    ck_assert_ptr_nonnull(reactor_call_later(r, 0.05, timer_50ms, &a));
    struct itimerval it = {{0, 1000}, {0, 1000}}, off = {{0, 0}, {0, 0}};
    alarms = 0;
    ck_assert_int_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
    uint64_t before = reactor_iterations(r);
    ck_assert(th_iterate_until(r, &a.done, 5.0));
    setitimer(ITIMER_REAL, &off, NULL);
    th_iterate_n(r, 1);
    ck_assert_int_eq(a.calls, 1);
    ck_assert_int_gt(alarms, 0); /* the poll really was interrupted */
    ck_assert_uint_le(reactor_iterations(r) - before, 4);
    sigaction(SIGALRM, &old, NULL);
    reactor_unwatch(r, sv[0]);
    close(sv[0]);
    close(sv[1]);
    reactor_free(r);
}
END_TEST

extern Suite *suite_reactor_signals(void);
Suite *suite_reactor_signals(void)
{
    Suite *s = suite_create("reactor_signals");
    TCase *tc = tcase_create("signals");
    int n = th_backend_count();
    tcase_add_loop_test(tc, test_signal_runs_on_loop_once_per_burst, 0, n);
    tcase_add_loop_test(tc, test_stop_on_sigint_and_sigterm, 0, n);
    tcase_add_loop_test(tc, test_eintr_does_not_disturb_timers, 0, n);
    suite_add_tcase(s, tc);
    return s;
}
