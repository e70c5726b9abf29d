/* The floor under bench_timers' "hold" figure: the same workload on a bare 4-ary heap.
 *
 *   make bench && build/bench/bench_heap_floor [N]
 *
 * N entries of {deadline, pointer} (16 bytes, the reactor's heap entry), laid out and
 * prefetched like reactor/timers.c: the four children of a node in one 64-byte line,
 * the next level's lines prefetched while a level is compared. Then 2,000,000 times:
 * pop the earliest entry and push a new one at a random deadline up to 1000 s later
 * (the "hold" model). Nothing else: no timer structs, no callbacks, no liveness checks,
 * no clock. Whatever a heap-based timer queue does, it does at least this, so the time
 * per operation here is the lowest a schedule+fire can cost with a heap on this machine
 * (docs/benchmarks-notebook.md, "Timers"). Run it interleaved with
 * `build/bench/bench_timers N hold`: both are dominated by memory latency, which on a
 * shared VM moves from minute to minute. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct {
    int64_t when;
    void *p;
} entry;

#define D 4
#define PAD (D - 1) /* logical slot i at mem[i + PAD]: children 4i+1..4i+4 share a line */

static entry *h;
static size_t n;

static uint64_t rng = 88172645463325252ULL;
static uint64_t rnd(void) /* xorshift64, as bench_timers */
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void push(entry e)
{
    size_t i = n++;
    while (i > 0 && h[(i - 1) / D].when > e.when) {
        h[i] = h[(i - 1) / D];
        i = (i - 1) / D;
    }
    h[i] = e;
}

static void pop(void)
{
    entry e = h[--n];
    size_t i = 0, c;
    while ((c = D * i + 1) + D <= n) {
        const entry *k = &h[c];
        if (D * c + D * D < n) {
            const char *g = (const char *)&h[D * c + 1];
            __builtin_prefetch(g);
            __builtin_prefetch(g + 64);
            __builtin_prefetch(g + 128);
            __builtin_prefetch(g + 192);
        }
        size_t a = k[1].when < k[0].when, b = 2 + (k[3].when < k[2].when);
        size_t m = k[b].when < k[a].when ? b : a;
        if (k[m].when >= e.when)
            goto done;
        h[i] = k[m];
        i = c + m;
    }
    if (c < n) { /* the last, incomplete node */
        size_t m = c;
        for (size_t q = c + 1; q < n; q++)
            if (h[q].when < h[m].when)
                m = q;
        if (h[m].when < e.when) {
            h[i] = h[m];
            i = m;
        }
    }
done:
    h[i] = e;
}

int main(int argc, char **argv)
{
    size_t count = argc > 1 ? (size_t)atol(argv[1]) : 1000000;
    const long ops = 2000000;
    const uint64_t span = 1000000000000ULL; /* 1000 s in ns, as bench_timers */
    void *mem;
    if (count == 0 || posix_memalign(&mem, 64, (count + 1 + PAD) * sizeof(entry)) != 0)
        return 1;
    h = (entry *)mem + PAD;
    for (size_t i = 0; i < count; i++)
        push((entry){(int64_t)(rnd() % span), h + i});

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long k = 0; k < ops; k++) {
        entry top = h[0];
        pop();
        push((entry){top.when + (int64_t)(rnd() % span), top.p});
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
    printf("bare heap pop+push %7.1f ns/op  (%zu pending, %ld operations)\n", ns / (double)ops,
           count, ops);
    free(mem);
    return 0;
}
