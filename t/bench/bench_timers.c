/* Timer heap benchmark: schedule, cancel and fire 1,000,000 timers; then the "hold"
 * pattern (each fire schedules a new timer) with 1,000,000 pending. Uses the fake clock,
 * so it measures the heap and the bookkeeping, not clock_gettime.
 *
 *   make bench && build/bench/bench_timers [N] [hold]
 *
 * With "hold" only part 3 runs; instructions per schedule+fire (stable when the machine
 * is busy) are then
 *   valgrind --tool=callgrind --toggle-collect=reactor_advance build/bench/bench_timers N hold
 * divided by the "fired" count it prints.
 */
#include <twistc/reactor.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU time of this process: on a shared machine it leaves out the time other programs
 * held the CPU, which wall-clock time counts. */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static unsigned long long rng = 88172645463325252ULL;
static double rnd(void) /* xorshift64: cheap, deterministic, in [0, 1) */
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) * (1.0 / 9007199254740992.0);
}

static long fired;
static void on_fire(reactor *r, void *data)
{
    (void)r;
    (void)data;
    fired++;
}

static void on_fire_again(reactor *r, void *data)
{
    fired++;
    reactor_call_later(r, rnd() * 1000.0, on_fire_again, data);
}

static reactor *fresh(void)
{
    reactor *r = reactor_new();
    if (!r || reactor_use_fake_clock(r, 0) < 0) {
        perror("reactor_new");
        exit(1);
    }
    return r;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    int hold_only = argc > 2 && strcmp(argv[2], "hold") == 0;
    reactor_timer **t = malloc((size_t)n * sizeof *t);
    if (!t)
        return 1;

    reactor *r;
    double t0, t1, t2;
    if (hold_only)
        goto hold;

    /* 1. schedule n timers at random deadlines, then fire them all */
    r = fresh();
    t0 = now_s();
    for (long i = 0; i < n; i++)
        t[i] = reactor_call_later(r, rnd() * 1000.0, on_fire, NULL);
    t1 = now_s();
    reactor_advance(r, 1000.0);
    t2 = now_s();
    printf("schedule     %8.1f ns/op  (%ld timers, random deadlines)\n", (t1 - t0) * 1e9 / n, n);
    printf("fire         %8.1f ns/op  (all %ld due at once, fired=%ld)\n", (t2 - t1) * 1e9 / n, n, fired);
    reactor_free(r);

    /* 2. schedule n, cancel them all in random order */
    r = fresh();
    for (long i = 0; i < n; i++)
        t[i] = reactor_call_later(r, rnd() * 1000.0, on_fire, NULL);
    for (long i = n - 1; i > 0; i--) { /* shuffle */
        long j = (long)(rnd() * (double)(i + 1));
        reactor_timer *x = t[i];
        t[i] = t[j];
        t[j] = x;
    }
    t0 = now_s();
    for (long i = 0; i < n; i++)
        reactor_timer_cancel(t[i]);
    t1 = now_s();
    printf("cancel       %8.1f ns/op  (%ld pending, random order)\n", (t1 - t0) * 1e9 / n, n);
    reactor_free(r);

    /* 3. hold: n pending; each fire schedules one more (schedule+fire at n pending) */
hold:
    r = fresh();
    for (long i = 0; i < n; i++)
        reactor_call_later(r, rnd() * 1000.0, on_fire_again, NULL);
    fired = 0;
    double c0 = cpu_s();
    t0 = now_s();
    for (int step = 0; step < 100000; step++) /* 1000 s of fake time in 10 ms steps */
        reactor_advance(r, 0.01);
    t1 = now_s();
    double c1 = cpu_s();
    printf("schedule+fire %7.1f ns/op  (%ld pending, %ld fired, each reschedules; CPU time %.1f ns/op)\n",
           (t1 - t0) * 1e9 / (double)fired, (long)reactor_pending_timers(r), fired,
           (c1 - c0) * 1e9 / (double)fired);
    reactor_free(r);
    free(t);
    return 0;
}
