#define _GNU_SOURCE /* ucontext */
/* Coroutine costs: raw context switch (the library's switch vs a plain ucontext
 * ping-pong), one await round trip through a Deferred (suspend + resume), an await of
 * an already-fired Deferred, and a coroutine's start + finish (stack map and unmap).
 *
 *   make bench && build/bench/bench_coro            all measurements, best of 5 runs
 *   build/bench/bench_coro ucontext 1000            only N ucontext switch pairs
 *   build/bench/bench_coro switch 1000              only N library switch pairs
 *   build/bench/bench_coro await 100000             only N await round trips (callgrind)
 *   build/bench/bench_coro fired 100000             only N awaits of a fired Deferred
 *   build/bench/bench_coro start 100000             only N coroutine start + finish
 *   build/bench/bench_coro depth                    round trips switched from 1..5 frames deep
 *   (strace -c -f ... shows the syscalls each makes: see docs/benchmarks-notebook.md) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>

#include <twistc/coro.h>
#include <twistc/deferred.h>
#include <twistc/reactor.h>
#include <twistc/thread_pool.h>

#include "deferred/coro_internal.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- raw switch: the library's backend ------------------------------------------- */

static coro__fiber sw_fiber;
static long sw_count;

static void sw_body(void *arg)
{
    (void)arg;
    for (;;) {
        sw_count++;
        coro__fiber_yield(&sw_fiber);
    }
}

/* ns per switch (a resume + yield pair is two switches). */
static double bench_switch(long pairs)
{
    if (coro__fiber_init(&sw_fiber, 0, sw_body, NULL) < 0)
        return -1;
    double t0 = now();
    for (long i = 0; i < pairs; i++)
        coro__fiber_resume(&sw_fiber);
    double t = now() - t0;
    coro__fiber_destroy(&sw_fiber); /* suspended in an endless loop: just drop it */
    return t * 1e9 / (2.0 * pairs);
}

/* ---- the cost of returning through frames after a switch -------------------------- */
/* Resume/yield ping-pong where each side switches from depth + 1 nested (not inlined)
 * calls, so after each switch depth + 1 functions are returned through on each side
 * (switch_ns is the same ping-pong with none). The CPU predicts returns from the calls
 * made on the stack it was on: after a switch every one of them mispredicts. ns per
 * round trip (two switches) for depth 0..4. */
static coro__fiber dp_fiber;
static int dp_depth;

__attribute__((noinline)) static void dp_yield(int d)
{
    if (d > 0) {
        dp_yield(d - 1);
        __asm__ volatile("" ::: "memory"); /* not a tail call */
        return;
    }
    coro__fiber_yield(&dp_fiber);
}

__attribute__((noinline)) static void dp_resume(int d)
{
    if (d > 0) {
        dp_resume(d - 1);
        __asm__ volatile("" ::: "memory");
        return;
    }
    coro__fiber_resume(&dp_fiber);
}

static void dp_body(void *arg)
{
    for (;;)
        dp_yield(dp_depth);
}

static double bench_depth_n(long n)
{
    if (coro__fiber_init(&dp_fiber, 0, dp_body, NULL) < 0)
        return -1;
    double t0 = now();
    for (long i = 0; i < n; i++)
        dp_resume(dp_depth);
    double t = now() - t0;
    coro__fiber_destroy(&dp_fiber);
    return t * 1e9 / n;
}

/* ---- raw switch: plain ucontext, for comparison ---------------------------------- */

static ucontext_t uc_main, uc_fib;

static void uc_body(void)
{
    for (;;)
        swapcontext(&uc_fib, &uc_main);
}

static double bench_ucontext(long pairs)
{
    coro__stack st;
    if (coro__stack_alloc(&st, 0) < 0)
        return -1;
    getcontext(&uc_fib);
    uc_fib.uc_stack.ss_sp = st.lo;
    uc_fib.uc_stack.ss_size = coro__stack_size(&st);
    uc_fib.uc_link = NULL;
    makecontext(&uc_fib, uc_body, 0);
    double t0 = now();
    for (long i = 0; i < pairs; i++)
        swapcontext(&uc_main, &uc_fib);
    double t = now() - t0;
    coro__stack_free(&st);
    return t * 1e9 / (2.0 * pairs);
}

/* ---- await round trip through a Deferred ---------------------------------------- */

static deferred *pending;
static long rounds;

static deferred_result await_body(void *arg)
{
    int64_t sum = 0;
    for (long i = 0; i < rounds; i++) {
        deferred *d = deferred_new();
        pending = deferred_ref(d); /* the firing side's reference */
        deferred_result r = coro_await_take(d);
        sum += r.u.i;
    }
    pending = NULL;
    return deferred_int(sum);
}

/* ns per round trip: the coroutine makes a Deferred and awaits it (suspend); the main
 * stack fires it, which resumes the coroutine (resume) up to its next await. */
static double bench_await(long n)
{
    rounds = n;
    deferred *d = coro_start(NULL, await_body, NULL, 0);
    double t0 = now();
    for (long i = 0; i < n; i++) {
        deferred *p = pending;
        deferred_callback(p, deferred_int(1));
        deferred_unref(p);
    }
    double t = now() - t0;
    deferred_result r;
    if (deferred_take_result(d, &r) != 0 || r.u.i != n)
        fprintf(stderr, "await bench: wrong result\n");
    deferred_unref(d);
    return t * 1e9 / n;
}

/* ns per await of an already-fired Deferred (no switch), Deferred creation included. */
static deferred_result fired_body(void *arg)
{
    long n = *(long *)arg;
    int64_t sum = 0;
    for (long i = 0; i < n; i++) {
        deferred_result r = coro_await_take(deferred_succeed(deferred_int(1)));
        sum += r.u.i;
    }
    return deferred_int(sum);
}

static double bench_await_fired(long n)
{
    double t0 = now();
    deferred *d = coro_start(NULL, fired_body, &n, 0);
    double t = now() - t0;
    deferred_unref(d);
    return t * 1e9 / n;
}

/* ns per coroutine started and finished (mmap + mprotect + munmap of its stack). */
static deferred_result empty_body(void *arg)
{
    return deferred_none();
}

static double bench_start(long n)
{
    double t0 = now();
    for (long i = 0; i < n; i++)
        deferred_unref(coro_start(NULL, empty_body, NULL, 0));
    double t = now() - t0;
    return t * 1e9 / n;
}

static double bench_start_uncached(long n)
{
    double t0 = now();
    for (long i = 0; i < n; i++) {
        deferred_unref(coro_start(NULL, empty_body, NULL, 0));
        coro__cache_flush(); /* cached structs keep their stacks: drop both */
    }
    double t = now() - t0;
    return t * 1e9 / n;
}

/* ns per defer_to_thread call of a trivial function, end to end (queue, worker, wake,
 * fire on the reactor thread), n calls in flight at once on the default 4 threads. */
static deferred_result trivial(void *arg)
{
    return deferred_int(1);
}

static deferred_result count_done(deferred_result r, void *arg)
{
    ++*(long *)arg;
    return r;
}

static double bench_defer_to_thread(long n)
{
    reactor *r = reactor_new();
    if (!r)
        return -1;
    long done = 0;
    double t0 = now();
    for (long i = 0; i < n; i++) {
        deferred *d = defer_to_thread(r, trivial, NULL);
        deferred_add_callback(d, count_done, &done);
        deferred_unref(d);
    }
    for (int i = 0; i < 100000 && done < n; i++)
        reactor_iterate(r, 0.1);
    double t = now() - t0;
    reactor_free(r);
    return done == n ? t * 1e9 / n : -1;
}

static double best(double (*fn)(long), long n)
{
    double b = 1e30;
    for (int i = 0; i < 5; i++) {
        double v = fn(n);
        if (v >= 0 && v < b)
            b = v;
    }
    return b;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "ucontext") == 0) {
        bench_ucontext(atol(argv[2]));
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "switch") == 0) {
        bench_switch(atol(argv[2]));
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "threads") == 0) {
        printf("%.1f ns per call\n", bench_defer_to_thread(atol(argv[2])));
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "await") == 0) {
        bench_await(atol(argv[2]));
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "fired") == 0) {
        bench_await_fired(atol(argv[2]));
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "start") == 0) {
        bench_start(atol(argv[2]));
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "depth") == 0) {
        for (dp_depth = 0; dp_depth <= 4; dp_depth++)
            printf("%d frame(s) per side: %6.1f ns per resume+yield round trip (best of 5)\n",
                   dp_depth + 1, best(bench_depth_n, 2000000));
        return 0;
    }
    printf("backend: %s\n", coro_backend());
    printf("switch_ns       %8.1f   (library backend, one switch; resume+yield = 2)\n",
           best(bench_switch, 2000000));
    printf("ucontext_ns     %8.1f   (glibc swapcontext, one switch)\n",
           best(bench_ucontext, 500000));
    printf("await_rt_ns     %8.1f   (await of an unfired Deferred: new + suspend + fire + resume)\n",
           best(bench_await, 1000000));
    printf("await_fired_ns  %8.1f   (await of an already-fired Deferred: succeed + take)\n",
           best(bench_await_fired, 1000000));
    printf("start_finish_ns %8.1f   (coro_start + return, stack from the per-thread cache)\n",
           best(bench_start, 200000));
    printf("thread_call_ns  %8.1f   (defer_to_thread of a trivial function, 20000 in flight)\n",
           best(bench_defer_to_thread, 20000));
    printf("start_nocache_ns %7.1f   (same, stack mapped and unmapped each time)\n",
           best(bench_start_uncached, 5000));
    return 0;
}
