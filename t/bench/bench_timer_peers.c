#define _GNU_SOURCE /* mallinfo2 */
/* bench_timer_peers: twistc's timers against libev, libuv and libevent on the workloads
 * a server has (issue 15), each peer in the same run, interleaved, CPU time per operation.
 *
 *   make bench && build/bench/bench_timer_peers [--runs R] [--sizes N,N,...] [--only W]
 *
 * Workloads (W), each at 10,000, 100,000 and 1,000,000 pending timers:
 *   hold    N pending, each fire schedules one more at a random delay in [0, N * 100 ns)
 *           (100 ms at 1M, so the loop is always busy), real clock, each library's own
 *           loop; one op = one schedule + one fire.
 *   reset   N connections, each with a 30 s timeout pending; one op = a random connection's
 *           timeout pushed back to 30 s from now (Twisted's TimeoutMixin.resetTimeout), a
 *           non-blocking loop iteration every 256 ops (the cached clocks move as in a
 *           server). libev: ev_timer_again; libuv: uv_timer_start; libevent: event_add on
 *           a common timeout (its O(1) way for equal durations).
 *   cancel  N pending at random deadlines in [100 s, 200 s); one op = stopping one, in
 *           random order, until none is left; repeated (only the stops timed) until at
 *           least 1,000,000 stops were timed at every size.
 * The twistc rows:
 *   twistc       embedded timers, the API that matches libev's ev_timer: reactor_etimer in
 *                the caller's array, reactor_etimer_start / _again / _stop. Its resets run
 *                inside the loop, 256 per iteration, as a server's reads do: they count
 *                from the loop's cached time, like ev_timer_again (outside an iteration
 *                reactor_now() reads the clock, so that nothing fires early).
 *   twistc-call  the handle API (Twisted's callLater): reactor_call_later,
 *                reactor_timer_reset (reads the clock at each call: a delay counts from
 *                the moment of the call), reactor_timer_cancel; reactor-owned structs.
 *   twistc-idle  reset only: reactor_idle_touch, the lazily re-armed idle timeout of
 *                transport_set_timeout (touches inside the loop too).
 * Memory: bytes per pending timer = growth of the malloc heap (mallinfo2) while N timers
 * are scheduled, divided by N (the heap array with its growth slack, and for twistc-call
 * the reactor-owned structs), plus the storage the user keeps per timer: the embedded
 * struct for twistc (reactor_etimer), libev (ev_timer), libuv (uv_timer_t) and libevent
 * (struct event, event_assign), the 8-byte handle for twistc-call, the pointer to the
 * reactor_idle for twistc-idle.
 *
 * Each peer gets the same random delays and the same random order. The table gives the
 * median of the runs and the ratio to libev. Peers not installed at build time are left
 * out (the Makefile defines HAVE_LIBEV, HAVE_LIBUV, HAVE_LIBEVENT where it finds them).
 * Twisted's figures for the same workloads: t/bench/bench_timer_twisted.py. */
#include <twistc/reactor.h>

#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_LIBEV
#include <ev.h>
#endif
#ifdef HAVE_LIBUV
#include <uv.h>
#endif
#ifdef HAVE_LIBEVENT
#include <event2/event.h>
#include <event2/event_struct.h>
#endif

#define RESET_SECONDS 30.0
#define ITER_EVERY 256 /* ops between two non-blocking loop iterations (reset) */

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static size_t heap_used(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* ---- The shared random inputs ---------------------------------------------------- */

static uint64_t rng = 88172645463325252ULL;
static uint64_t xorshift(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static double rnd01(void) { return (double)(xorshift() >> 11) * (1.0 / 9007199254740992.0); }

#define NDELAYS (1u << 20) /* hold: delays drawn in turn from this table */
static double *delays;     /* in [0, 1): scaled by the window */
static long n_pending;      /* N of the current measurement */
static double window;       /* hold: delays in [0, window) seconds */
static long fired, fire_goal;
static unsigned delay_i;
static long *order;  /* reset: random indices (N * ops); cancel: a permutation */
static long n_order;
static long cancel_rounds; /* cancel: rounds of N schedules + N timed cancels, so that
                              every size times at least 1,000,000 cancels */

static double next_delay(void)
{
    return delays[delay_i++ & (NDELAYS - 1)] * window;
}

static void make_order_random(long n, long ops)
{
    for (long i = 0; i < ops; i++)
        order[i] = (long)(xorshift() % (uint64_t)n);
    n_order = ops;
}

static void make_order_permutation(long n)
{
    for (long i = 0; i < n; i++)
        order[i] = i;
    for (long i = n - 1; i > 0; i--) {
        long j = (long)(xorshift() % (uint64_t)(i + 1));
        long x = order[i];
        order[i] = order[j];
        order[j] = x;
    }
    n_order = n;
}

typedef struct {
    double ns_per_op;
    double bytes_per_timer;
} result;

/* ---- twistc ---------------------------------------------------------------------- */

static void tw_hold_fire(reactor *r, void *data)
{
    if (++fired < fire_goal) /* (libuv would loop for ever in one pass otherwise) */
        reactor_call_later(r, next_delay(), tw_hold_fire, data);
}
static void tw_never(reactor *r, void *data)
{
    (void)r;
    (void)data;
}

static reactor *tw_new(void)
{
    reactor *r = reactor_new();
    if (!r) {
        perror("reactor_new");
        exit(1);
    }
    return r;
}

static result tw_hold(void)
{
    reactor *r = tw_new();
    size_t m0 = heap_used();
    for (long i = 0; i < n_pending; i++)
        reactor_call_later(r, next_delay(), tw_hold_fire, NULL);
    size_t m1 = heap_used();
    fired = 0;
    double c0 = cpu_s();
    while (fired < fire_goal)
        reactor_iterate(r, -1);
    double c1 = cpu_s();
    reactor_free(r);
    return (result){(c1 - c0) * 1e9 / (double)fired, (double)(m1 - m0) / (double)n_pending};
}

static result tw_reset(void)
{
    reactor *r = tw_new();
    reactor_timer **h = malloc((size_t)n_pending * sizeof *h);
    size_t m0 = heap_used();
    for (long i = 0; i < n_pending; i++)
        h[i] = reactor_call_later(r, RESET_SECONDS, tw_never, NULL);
    size_t m1 = heap_used();
    double c0 = cpu_s();
    for (long k = 0; k < n_order; k++) {
        reactor_timer_reset(h[order[k]], RESET_SECONDS);
        if ((k & (ITER_EVERY - 1)) == ITER_EVERY - 1)
            reactor_iterate(r, 0);
    }
    double c1 = cpu_s();
    reactor_free(r);
    free(h);
    return (result){(c1 - c0) * 1e9 / (double)n_order,
                    (double)(m1 - m0) / (double)n_pending + sizeof(reactor_timer *)};
}

static reactor_idle **idle_arr;
static long idle_k;
static void idle_chunk(reactor *r, void *data)
{
    (void)r;
    (void)data;
    long end = idle_k + ITER_EVERY < n_order ? idle_k + ITER_EVERY : n_order;
    for (; idle_k < end; idle_k++)
        reactor_idle_touch(idle_arr[order[idle_k]]);
}

static result tw_idle_reset(void)
{
    reactor *r = tw_new();
    reactor_idle **it = malloc((size_t)n_pending * sizeof *it);
    size_t m0 = heap_used();
    for (long i = 0; i < n_pending; i++)
        it[i] = reactor_idle_new(r, RESET_SECONDS, tw_never, NULL);
    size_t m1 = heap_used();
    /* The touches run inside the loop, ITER_EVERY per iteration, as a server's reads do
     * (a touch reads the clock once per iteration; outside the loop, every time). */
    idle_arr = it;
    idle_k = 0;
    double c0 = cpu_s();
    while (idle_k < n_order) {
        reactor_call_soon(r, idle_chunk, NULL);
        reactor_iterate(r, 0);
    }
    double c1 = cpu_s();
    for (long i = 0; i < n_pending; i++)
        reactor_idle_free(it[i]);
    reactor_free(r);
    free(it);
    return (result){(c1 - c0) * 1e9 / (double)n_order,
                    (double)(m1 - m0) / (double)n_pending + sizeof(reactor_idle *)};
}

static result tw_cancel(void)
{
    reactor *r = tw_new();
    reactor_timer **h = malloc((size_t)n_pending * sizeof *h);
    size_t m0 = heap_used(), m1 = 0;
    double cpu = 0;
    for (long round = 0; round < cancel_rounds; round++) {
        for (long i = 0; i < n_pending; i++)
            h[i] = reactor_call_later(r, 100.0 + 100.0 * rnd01(), tw_never, NULL);
        if (round == 0)
            m1 = heap_used();
        double c0 = cpu_s();
        for (long k = 0; k < n_order; k++)
            reactor_timer_cancel(h[order[k]]);
        cpu += cpu_s() - c0;
    }
    reactor_free(r);
    free(h);
    return (result){cpu * 1e9 / (double)(n_order * cancel_rounds),
                    (double)(m1 - m0) / (double)n_pending + sizeof(reactor_timer *)};
}

/* ---- twistc, embedded timers (reactor_etimer: the API that matches ev_timer) ------ */

static void et_hold_fire(reactor *r, reactor_etimer *t)
{
    if (++fired < fire_goal)
        reactor_etimer_start(r, t, next_delay(), 0);
}
static void et_never(reactor *r, reactor_etimer *t)
{
    (void)r;
    (void)t;
}

static result et_hold(void)
{
    reactor *r = tw_new();
    reactor_etimer *w = malloc((size_t)n_pending * sizeof *w);
    size_t m0 = heap_used();
    for (long i = 0; i < n_pending; i++) {
        reactor_etimer_init(&w[i], et_hold_fire);
        reactor_etimer_start(r, &w[i], next_delay(), 0);
    }
    size_t m1 = heap_used();
    fired = 0;
    double c0 = cpu_s();
    while (fired < fire_goal)
        reactor_iterate(r, -1);
    double c1 = cpu_s();
    reactor_free(r); /* stops the timers still active */
    free(w);
    return (result){(c1 - c0) * 1e9 / (double)fired,
                    (double)(m1 - m0) / (double)n_pending + sizeof(reactor_etimer)};
}

/* The resets run inside the loop, ITER_EVERY per iteration, as a server's reads do: the
 * loop's cached time is then what they count from (outside an iteration
 * reactor_now() reads the clock, so that a deadline is never early). */
static reactor_etimer *et_arr;
static long et_k;
static void et_chunk(reactor *r, reactor_etimer *t)
{
    (void)t;
    long end = et_k + ITER_EVERY < n_order ? et_k + ITER_EVERY : n_order;
    for (; et_k < end; et_k++)
        reactor_etimer_again(r, &et_arr[order[et_k]]);
}

static result et_reset(void)
{
    reactor *r = tw_new();
    reactor_etimer *w = malloc((size_t)n_pending * sizeof *w);
    size_t m0 = heap_used();
    for (long i = 0; i < n_pending; i++) {
        reactor_etimer_init(&w[i], et_never);
        reactor_etimer_start(r, &w[i], RESET_SECONDS, RESET_SECONDS);
    }
    size_t m1 = heap_used();
    reactor_etimer chunk;
    reactor_etimer_init(&chunk, et_chunk);
    et_arr = w;
    et_k = 0;
    double c0 = cpu_s();
    while (et_k < n_order) {
        reactor_etimer_start(r, &chunk, 0, 0);
        reactor_iterate(r, 0);
    }
    double c1 = cpu_s();
    reactor_free(r);
    free(w);
    return (result){(c1 - c0) * 1e9 / (double)n_order,
                    (double)(m1 - m0) / (double)n_pending + sizeof(reactor_etimer)};
}

static result et_cancel(void)
{
    reactor *r = tw_new();
    reactor_etimer *w = malloc((size_t)n_pending * sizeof *w);
    size_t m0 = heap_used(), m1 = 0;
    double cpu = 0;
    for (long round = 0; round < cancel_rounds; round++) {
        for (long i = 0; i < n_pending; i++) {
            reactor_etimer_init(&w[i], et_never);
            reactor_etimer_start(r, &w[i], 100.0 + 100.0 * rnd01(), 0);
        }
        if (round == 0)
            m1 = heap_used();
        double c0 = cpu_s();
        for (long k = 0; k < n_order; k++)
            reactor_etimer_stop(r, &w[order[k]]);
        cpu += cpu_s() - c0;
    }
    reactor_free(r);
    free(w);
    return (result){cpu * 1e9 / (double)(n_order * cancel_rounds),
                    (double)(m1 - m0) / (double)n_pending + sizeof(reactor_etimer)};
}

/* ---- libev ----------------------------------------------------------------------- */
#ifdef HAVE_LIBEV
static void ev_hold_fire(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    if (++fired >= fire_goal)
        return;
    ev_timer_set(w, next_delay(), 0.);
    ev_timer_start(loop, w);
}
static void ev_never(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

static result evp_hold(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    ev_timer *w = malloc((size_t)n_pending * sizeof *w);
    size_t m0 = heap_used();
    for (long i = 0; i < n_pending; i++) {
        ev_timer_init(&w[i], ev_hold_fire, next_delay(), 0.);
        ev_timer_start(loop, &w[i]);
    }
    size_t m1 = heap_used();
    fired = 0;
    double c0 = cpu_s();
    while (fired < fire_goal)
        ev_run(loop, EVRUN_ONCE);
    double c1 = cpu_s();
    for (long i = 0; i < n_pending; i++)
        ev_timer_stop(loop, &w[i]);
    ev_loop_destroy(loop);
    free(w);
    return (result){(c1 - c0) * 1e9 / (double)fired,
                    (double)(m1 - m0) / (double)n_pending + sizeof(ev_timer)};
}

static result evp_reset(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    ev_timer *w = malloc((size_t)n_pending * sizeof *w);
    size_t m0 = heap_used();
    for (long i = 0; i < n_pending; i++) {
        ev_timer_init(&w[i], ev_never, 0., RESET_SECONDS);
        ev_timer_again(loop, &w[i]); /* the manual's idiom: repeat = the timeout */
    }
    size_t m1 = heap_used();
    double c0 = cpu_s();
    for (long k = 0; k < n_order; k++) {
        ev_timer_again(loop, &w[order[k]]);
        if ((k & (ITER_EVERY - 1)) == ITER_EVERY - 1)
            ev_run(loop, EVRUN_NOWAIT);
    }
    double c1 = cpu_s();
    for (long i = 0; i < n_pending; i++)
        ev_timer_stop(loop, &w[i]);
    ev_loop_destroy(loop);
    free(w);
    return (result){(c1 - c0) * 1e9 / (double)n_order,
                    (double)(m1 - m0) / (double)n_pending + sizeof(ev_timer)};
}

static result evp_cancel(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    ev_timer *w = malloc((size_t)n_pending * sizeof *w);
    size_t m0 = heap_used(), m1 = 0;
    double cpu = 0;
    for (long round = 0; round < cancel_rounds; round++) {
        for (long i = 0; i < n_pending; i++) {
            ev_timer_init(&w[i], ev_never, 100.0 + 100.0 * rnd01(), 0.);
            ev_timer_start(loop, &w[i]);
        }
        if (round == 0)
            m1 = heap_used();
        double c0 = cpu_s();
        for (long k = 0; k < n_order; k++)
            ev_timer_stop(loop, &w[order[k]]);
        cpu += cpu_s() - c0;
    }
    ev_loop_destroy(loop);
    free(w);
    return (result){cpu * 1e9 / (double)(n_order * cancel_rounds),
                    (double)(m1 - m0) / (double)n_pending + sizeof(ev_timer)};
}
#endif

/* ---- libuv (its timers count whole milliseconds) --------------------------------- */
#ifdef HAVE_LIBUV
static uint64_t ms(double s) { return (uint64_t)(s * 1000.0); }
static void uv_hold_fire(uv_timer_t *h)
{
    /* A 0 ms timer started from a timer callback runs again in the same pass. */
    if (++fired < fire_goal)
        uv_timer_start(h, uv_hold_fire, ms(next_delay()), 0);
}
static void uv_never(uv_timer_t *h) { (void)h; }

static uv_loop_t *uvl_new(void)
{
    uv_loop_t *loop = malloc(sizeof *loop);
    if (!loop || uv_loop_init(loop) != 0) {
        fprintf(stderr, "uv_loop_init failed\n");
        exit(1);
    }
    return loop;
}
static void uvl_free(uv_loop_t *loop, uv_timer_t *h)
{
    for (long i = 0; i < n_pending; i++)
        uv_close((uv_handle_t *)&h[i], NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    free(loop);
    free(h);
}

static result uvp_hold(void)
{
    uv_loop_t *loop = uvl_new();
    uv_timer_t *h = malloc((size_t)n_pending * sizeof *h);
    size_t m0 = heap_used();
    for (long i = 0; i < n_pending; i++) {
        uv_timer_init(loop, &h[i]);
        uv_timer_start(&h[i], uv_hold_fire, ms(next_delay()), 0);
    }
    size_t m1 = heap_used();
    fired = 0;
    double c0 = cpu_s();
    while (fired < fire_goal)
        uv_run(loop, UV_RUN_ONCE);
    double c1 = cpu_s();
    uvl_free(loop, h);
    return (result){(c1 - c0) * 1e9 / (double)fired,
                    (double)(m1 - m0) / (double)n_pending + sizeof(uv_timer_t)};
}

static result uvp_reset(void)
{
    uv_loop_t *loop = uvl_new();
    uv_timer_t *h = malloc((size_t)n_pending * sizeof *h);
    size_t m0 = heap_used();
    for (long i = 0; i < n_pending; i++) {
        uv_timer_init(loop, &h[i]);
        uv_timer_start(&h[i], uv_never, ms(RESET_SECONDS), 0);
    }
    size_t m1 = heap_used();
    double c0 = cpu_s();
    for (long k = 0; k < n_order; k++) {
        uv_timer_start(&h[order[k]], uv_never, ms(RESET_SECONDS), 0);
        if ((k & (ITER_EVERY - 1)) == ITER_EVERY - 1)
            uv_run(loop, UV_RUN_NOWAIT);
    }
    double c1 = cpu_s();
    uvl_free(loop, h);
    return (result){(c1 - c0) * 1e9 / (double)n_order,
                    (double)(m1 - m0) / (double)n_pending + sizeof(uv_timer_t)};
}

static result uvp_cancel(void)
{
    uv_loop_t *loop = uvl_new();
    uv_timer_t *h = malloc((size_t)n_pending * sizeof *h);
    size_t m0 = heap_used(), m1 = 0;
    double cpu = 0;
    for (long i = 0; i < n_pending; i++)
        uv_timer_init(loop, &h[i]);
    for (long round = 0; round < cancel_rounds; round++) {
        for (long i = 0; i < n_pending; i++)
            uv_timer_start(&h[i], uv_never, ms(100.0 + 100.0 * rnd01()), 0);
        if (round == 0)
            m1 = heap_used();
        double c0 = cpu_s();
        for (long k = 0; k < n_order; k++)
            uv_timer_stop(&h[order[k]]);
        cpu += cpu_s() - c0;
    }
    uvl_free(loop, h);
    return (result){cpu * 1e9 / (double)(n_order * cancel_rounds),
                    (double)(m1 - m0) / (double)n_pending + sizeof(uv_timer_t)};
}
#endif

/* ---- libevent (events embedded with event_assign) --------------------------------- */
#ifdef HAVE_LIBEVENT
static struct event_base *le_base;
static struct timeval tv_of(double s)
{
    struct timeval tv = {(time_t)s, (suseconds_t)((s - (double)(time_t)s) * 1e6)};
    return tv;
}
static void le_hold_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    if (++fired >= fire_goal)
        return;
    struct timeval tv = tv_of(next_delay());
    event_add((struct event *)arg, &tv);
}
static void le_never(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}
static void le_free(struct event *ev)
{
    for (long i = 0; i < n_pending; i++)
        event_del(&ev[i]);
    event_base_free(le_base);
    free(ev);
}

static result le_hold(void)
{
    le_base = event_base_new();
    struct event *ev = malloc((size_t)n_pending * sizeof *ev);
    size_t m0 = heap_used();
    for (long i = 0; i < n_pending; i++) {
        event_assign(&ev[i], le_base, -1, 0, le_hold_fire, &ev[i]);
        struct timeval tv = tv_of(next_delay());
        event_add(&ev[i], &tv);
    }
    size_t m1 = heap_used();
    fired = 0;
    double c0 = cpu_s();
    while (fired < fire_goal)
        event_base_loop(le_base, EVLOOP_ONCE);
    double c1 = cpu_s();
    le_free(ev);
    return (result){(c1 - c0) * 1e9 / (double)fired,
                    (double)(m1 - m0) / (double)n_pending + sizeof(struct event)};
}

static result le_reset(void)
{
    le_base = event_base_new();
    struct event *ev = malloc((size_t)n_pending * sizeof *ev);
    struct timeval tv30 = tv_of(RESET_SECONDS);
    const struct timeval *common = event_base_init_common_timeout(le_base, &tv30);
    size_t m0 = heap_used();
    for (long i = 0; i < n_pending; i++) {
        event_assign(&ev[i], le_base, -1, 0, le_never, NULL);
        event_add(&ev[i], common);
    }
    size_t m1 = heap_used();
    double c0 = cpu_s();
    for (long k = 0; k < n_order; k++) {
        event_add(&ev[order[k]], common);
        if ((k & (ITER_EVERY - 1)) == ITER_EVERY - 1)
            event_base_loop(le_base, EVLOOP_NONBLOCK);
    }
    double c1 = cpu_s();
    le_free(ev);
    return (result){(c1 - c0) * 1e9 / (double)n_order,
                    (double)(m1 - m0) / (double)n_pending + sizeof(struct event)};
}

static result le_cancel(void)
{
    le_base = event_base_new();
    struct event *ev = malloc((size_t)n_pending * sizeof *ev);
    size_t m0 = heap_used(), m1 = 0;
    double cpu = 0;
    for (long i = 0; i < n_pending; i++)
        event_assign(&ev[i], le_base, -1, 0, le_never, NULL);
    for (long round = 0; round < cancel_rounds; round++) {
        for (long i = 0; i < n_pending; i++) {
            struct timeval tv = tv_of(100.0 + 100.0 * rnd01());
            event_add(&ev[i], &tv);
        }
        if (round == 0)
            m1 = heap_used();
        double c0 = cpu_s();
        for (long k = 0; k < n_order; k++)
            event_del(&ev[order[k]]);
        cpu += cpu_s() - c0;
    }
    le_free(ev);
    return (result){cpu * 1e9 / (double)(n_order * cancel_rounds),
                    (double)(m1 - m0) / (double)n_pending + sizeof(struct event)};
}
#endif

/* ---- Driver ---------------------------------------------------------------------- */

typedef struct {
    const char *name;
    result (*hold)(void), (*reset)(void), (*cancel)(void);
} peer;

static const peer peers[] = {
    {"twistc", et_hold, et_reset, et_cancel},
    {"twistc-call", tw_hold, tw_reset, tw_cancel},
    {"twistc-idle", NULL, tw_idle_reset, NULL},
#ifdef HAVE_LIBEV
    {"libev", evp_hold, evp_reset, evp_cancel},
#endif
#ifdef HAVE_LIBUV
    {"libuv", uvp_hold, uvp_reset, uvp_cancel},
#endif
#ifdef HAVE_LIBEVENT
    {"libevent", le_hold, le_reset, le_cancel},
#endif
};
#define NPEERS (sizeof peers / sizeof peers[0])
enum { W_HOLD, W_RESET, W_CANCEL, NW };
static const char *const wname[NW] = {"hold", "reset", "cancel"};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The conditions, printed with the table: a figure without them cannot be compared. */
static void print_conditions(const char *when)
{
    char buf[128] = "?";
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (!fgets(buf, sizeof buf, f))
            strcpy(buf, "?");
        fclose(f);
        buf[strcspn(buf, "\n")] = 0;
    }
    time_t now = time(NULL);
    char date[64];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S UTC", gmtime(&now));
    printf("# %s: %s, load average (1/5/15 min, runnable/total, last pid): %s\n", when, date,
           buf);
}

#define MAXSIZES 8
#define MAXRUNS 15

int main(int argc, char **argv)
{
    long sizes[MAXSIZES] = {10000, 100000, 1000000};
    int nsizes = 3, runs = 3, only = -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
            runs = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--sizes") && i + 1 < argc) {
            nsizes = 0;
            for (char *s = strtok(argv[++i], ","); s && nsizes < MAXSIZES; s = strtok(NULL, ","))
                sizes[nsizes++] = atol(s);
        } else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
            i++;
            for (int w = 0; w < NW; w++)
                if (!strcmp(argv[i], wname[w]))
                    only = w;
        } else {
            fprintf(stderr, "usage: %s [--runs R] [--sizes N,N,...] [--only hold|reset|cancel]\n",
                    argv[0]);
            return 2;
        }
    }
    if (runs < 1 || runs > MAXRUNS || nsizes < 1)
        return 2;
    long maxn = 0;
    for (int s = 0; s < nsizes; s++)
        maxn = sizes[s] > maxn ? sizes[s] : maxn;
    long ops_reset = maxn > 1000000 ? maxn : 1000000;
    delays = malloc(NDELAYS * sizeof *delays);
    order = malloc((size_t)(ops_reset > maxn ? ops_reset : maxn) * sizeof *order);
    if (!delays || !order)
        return 1;
    for (unsigned i = 0; i < NDELAYS; i++)
        delays[i] = rnd01();

    print_conditions("start");
    printf("# peers: twistc (this build; sizeof(reactor_etimer) %zu)", sizeof(reactor_etimer));
#ifdef HAVE_LIBEV
    printf(", libev %d.%d (sizeof(ev_timer) %zu)", ev_version_major(), ev_version_minor(),
           sizeof(ev_timer));
#endif
#ifdef HAVE_LIBUV
    printf(", libuv %s (sizeof(uv_timer_t) %zu)", uv_version_string(), sizeof(uv_timer_t));
#endif
#ifdef HAVE_LIBEVENT
    printf(", libevent %s (sizeof(struct event) %zu)", event_get_version(), sizeof(struct event));
#endif
    printf("\n# %ld cpus online; CPU time is per process (CLOCK_PROCESS_CPUTIME_ID): other "
           "processes' load inflates it through cache and memory contention, so compare the "
           "ratios within one run\n",
           sysconf(_SC_NPROCESSORS_ONLN));
    fflush(stdout);
    static double ns[MAXSIZES][NW][8][MAXRUNS], mem[MAXSIZES][NW][8][MAXRUNS];
    for (int run = 0; run < runs; run++) {
        for (int s = 0; s < nsizes; s++) {
            n_pending = sizes[s];
            for (int w = 0; w < NW; w++) {
                if (only >= 0 && w != only)
                    continue;
                /* The same inputs for every peer of this (run, size, workload). */
                uint64_t seed = 88172645463325252ULL + (uint64_t)(run * 131 + s * 7 + w);
                rng = seed;
                if (w == W_RESET)
                    make_order_random(n_pending, ops_reset);
                else if (w == W_CANCEL)
                    make_order_permutation(n_pending);
                window = 100e-9 * (double)n_pending;
                cancel_rounds = n_pending >= 1000000 ? 1 : (1000000 + n_pending - 1) / n_pending;
                fire_goal = n_pending > 1000000 ? n_pending : 1000000;
                for (size_t p = 0; p < NPEERS; p++) {
                    result (*f)(void) = w == W_HOLD    ? peers[p].hold
                                        : w == W_RESET ? peers[p].reset
                                                       : peers[p].cancel;
                    if (!f)
                        continue;
                    rng = seed ^ 0x9e3779b97f4a7c15ULL; /* the same deadlines for all */
                    delay_i = 0;
                    result res = f();
                    ns[s][w][p][run] = res.ns_per_op;
                    mem[s][w][p][run] = res.bytes_per_timer;
                    fprintf(stderr, "run %d %-6s %8ld %-12s %8.1f ns/op %6.1f B/timer\n",
                            run + 1, wname[w], n_pending, peers[p].name, res.ns_per_op,
                            res.bytes_per_timer);
                }
            }
        }
    }

    /* The table (markdown: docs/results/timer_peers.txt keeps it; tools/charts.py draws it). */
    int iev = -1;
    for (size_t p = 0; p < NPEERS; p++)
        if (!strcmp(peers[p].name, "libev"))
            iev = (int)p;
    print_conditions("end");
    printf("\nCPU ns per operation (CLOCK_PROCESS_CPUTIME_ID), median of %d interleaved runs; "
           "twistc = embedded timers (reactor_etimer), twistc-call = reactor_call_later and "
           "its handle, twistc-idle = reactor_idle_touch\n\n",
           runs);
    printf("| workload | pending |");
    for (size_t p = 0; p < NPEERS; p++)
        printf(" %s |", peers[p].name);
    size_t ntw = 0; /* the twistc rows come first: one ratio column each */
    while (ntw < NPEERS && !strncmp(peers[ntw].name, "twistc", 6))
        ntw++;
    if (iev >= 0)
        for (size_t p = 0; p < ntw; p++)
            printf(" %s / libev |", peers[p].name);
    printf("\n|---|---:|");
    for (size_t p = 0; p < NPEERS + (iev >= 0 ? ntw : 0); p++)
        printf("---:|");
    printf("\n");
    static double med[MAXSIZES][NW][8];
    for (int w = 0; w < NW; w++) {
        if (only >= 0 && w != only)
            continue;
        for (int s = 0; s < nsizes; s++) {
            printf("| %s | %ld |", wname[w], sizes[s]);
            for (size_t p = 0; p < NPEERS; p++) {
                int has = w == W_HOLD ? peers[p].hold != NULL
                                      : w == W_RESET ? peers[p].reset != NULL
                                                     : peers[p].cancel != NULL;
                med[s][w][p] = has ? median(ns[s][w][p], runs) : -1;
                if (has)
                    printf(" %.1f |", med[s][w][p]);
                else
                    printf(" - |");
            }
            for (size_t p = 0; iev >= 0 && p < ntw; p++) {
                if (med[s][w][p] > 0)
                    printf(" %.2fx |", med[s][w][p] / med[s][w][iev]);
                else
                    printf(" - |");
            }
            printf("\n");
        }
    }
    printf("\nBytes per pending timer (malloc heap growth / N + the user's per-timer storage), "
           "median\n\n| memory | pending |");
    for (size_t p = 0; p < NPEERS; p++)
        printf(" %s |", peers[p].name);
    printf("\n|---|---:|");
    for (size_t p = 0; p < NPEERS; p++)
        printf("---:|");
    printf("\n");
    for (int w = W_RESET; w <= W_RESET; w++) { /* timers that stay pending: the reset state */
        if (only >= 0 && w != only)
            continue;
        for (int s = 0; s < nsizes; s++) {
            printf("| %s | %ld |", "30 s timeout", sizes[s]);
            for (size_t p = 0; p < NPEERS; p++)
                printf(" %.0f |", peers[p].reset ? median(mem[s][w][p], runs) : -1);
            printf("\n");
        }
    }
    /* Issue 15's goals, read off the tables above (twistc = the embedded timers). */
    if (iev >= 0) {
        printf("\nIssue 15 goals (twistc = reactor_etimer, <= 1.0x libev at every size):\n");
        for (int w = 0; w < NW; w++) {
            if (only >= 0 && w != only)
                continue;
            double worst = 0;
            for (int s = 0; s < nsizes; s++)
                if (med[s][w][iev] > 0 && med[s][w][0] / med[s][w][iev] > worst)
                    worst = med[s][w][0] / med[s][w][iev];
            printf("  %-7s worst ratio %.2fx: %s\n", wname[w], worst,
                   worst <= 1.0 ? "met" : "NOT met in this run");
        }
        if (only < 0 || only == W_RESET) {
            int ok = 1;
            for (int s = 0; s < nsizes; s++)
                ok &= median(mem[s][W_RESET][0], runs) <= median(mem[s][W_RESET][iev], runs);
            printf("  memory  bytes per pending timer <= libev's at every size: %s\n",
                   ok ? "met" : "NOT met in this run");
        }
    }
    free(delays);
    free(order);
    return 0;
}
