/* Deferred micro-benchmarks, and the same operations on Twisted's Deferred.
 *
 *   build/bench/bench_deferred [--no-twisted] [--quick]
 *   build/bench/bench_deferred --only cff|chain N   (for valgrind --tool=callgrind:
 *       runs N operations untimed; the difference between two N gives instructions
 *       per operation)
 *
 * Measures, best of 3 runs each:
 *   create_fire_free  deferred_new + one add_callback + callback + unref, per second
 *   chain_callbacks   callbacks per second along chains of 1 000 pairs (adding and
 *                     running them, then freeing the Deferred), 1 000 000 in all
 *   long_chain        the same along ONE chain of 1 000 000 pairs (Twisted: 100 000,
 *                     since its list.pop(0) makes a long chain quadratic)
 *   implicit_chain    Deferreds per second handing their result along an implicit
 *                     chain of 100 000 (each callback returned the next Deferred)
 * Then runs t/bench/bench_deferred_twisted.py with /usr/bin/python3 (Twisted from
 * Debian's python3-twisted) for the same operations and prints the ratio C/Twisted.
 * Output: one key=value line per figure, easy to grep. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <twistc/deferred.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t sink;

static deferred_result add_one(deferred_result r, void *arg)
{
    (void)arg;
    r.u.i++;
    return r;
}

static deferred_result keep(deferred_result r, void *arg)
{
    (void)arg;
    sink += r.u.i;
    return r;
}

static double bench_create_fire_free(long n)
{
    double t0 = now();
    for (long i = 0; i < n; i++) {
        deferred *d = deferred_new();
        deferred_add_callback(d, keep, NULL);
        deferred_callback(d, deferred_int(i));
        deferred_unref(d);
    }
    return (double)n / (now() - t0);
}

static void one_chain(long len)
{
    deferred *d = deferred_new();
    for (long i = 0; i < len; i++)
        deferred_add_callback(d, add_one, NULL);
    deferred_callback(d, deferred_int(0));
    const deferred_result *r = deferred_peek_result(d);
    if (!r || r->u.i != len) {
        fprintf(stderr, "bench_chain: wrong result\n");
        exit(1);
    }
    deferred_unref(d);
}

#define CHAIN_LEN 1000

static double bench_chain(long n)
{
    double t0 = now();
    for (long i = 0; i < n / CHAIN_LEN; i++)
        one_chain(CHAIN_LEN);
    return (double)n / (now() - t0);
}

static double bench_long_chain(long n)
{
    double t0 = now();
    one_chain(n);
    return (double)n / (now() - t0);
}

static deferred_result return_next(deferred_result r, void *next)
{
    deferred_result_clear(&r);
    return deferred_continue_with(deferred_ref(next));
}

static double bench_implicit_chain(long n)
{
    deferred **ds = malloc((size_t)n * sizeof *ds);
    double t0 = now();
    for (long i = 0; i < n; i++)
        ds[i] = deferred_new();
    for (long i = 0; i + 1 < n; i++)
        deferred_add_callback(ds[i], return_next, ds[i + 1]);
    for (long i = 0; i + 1 < n; i++)
        deferred_callback(ds[i], deferred_none());
    deferred_add_callback(ds[0], keep, NULL);
    deferred_callback(ds[n - 1], deferred_int(1));
    for (long i = 0; i < n; i++)
        deferred_unref(ds[i]);
    double rate = (double)n / (now() - t0);
    free(ds);
    return rate;
}

static double best(double (*fn)(long), long n)
{
    double b = 0;
    for (int i = 0; i < 3; i++) {
        double r = fn(n);
        if (r > b)
            b = r;
    }
    return b;
}

/* Runs the Twisted script and reads its key=value lines. */
static int run_twisted(const char *script, int quick, double *cff, double *chain, double *impl,
                       double *lng)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s%s", script, quick ? " --quick" : "");
    FILE *p = popen(cmd, "r");
    if (!p)
        return -errno;
    char line[256];
    int got = 0;
    while (fgets(line, sizeof line, p)) {
        fputs(line, stdout);
        double v;
        if (sscanf(line, "twisted_create_fire_free_per_s=%lf", &v) == 1)
            *cff = v, got |= 1;
        else if (sscanf(line, "twisted_chain_callbacks_per_s=%lf", &v) == 1)
            *chain = v, got |= 2;
        else if (sscanf(line, "twisted_implicit_chain_deferreds_per_s=%lf", &v) == 1)
            *impl = v, got |= 4;
        else if (sscanf(line, "twisted_long_chain_callbacks_per_s=%lf", &v) == 1)
            *lng = v, got |= 8;
    }
    int rc = pclose(p);
    return (rc == 0 && got == 15) ? 0 : -EIO;
}

int main(int argc, char **argv)
{
    int twisted = 1, quick = 0;
    const char *script = "t/bench/bench_deferred_twisted.py";
    if (argc == 4 && !strcmp(argv[1], "--only")) {
        long n = atol(argv[3]);
        if (!strcmp(argv[2], "cff"))
            bench_create_fire_free(n);
        else if (!strcmp(argv[2], "chain"))
            bench_chain(n);
        else
            return 2;
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--no-twisted"))
            twisted = 0;
        else if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--script") && i + 1 < argc)
            script = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--no-twisted] [--quick] [--script PATH]\n", argv[0]);
            return 2;
        }
    }
    long n_cff = quick ? 200000 : 5000000;
    long n_chain = quick ? 100000 : 1000000;
    long n_impl = quick ? 10000 : 100000;
    long n_long = quick ? 100000 : 1000000;

    double cff = best(bench_create_fire_free, n_cff);
    double chain = best(bench_chain, n_chain);
    double impl = best(bench_implicit_chain, n_impl);
    double lng = best(bench_long_chain, n_long);
    printf("c_create_fire_free_per_s=%.0f\n", cff);
    printf("c_chain_callbacks_per_s=%.0f\n", chain);
    printf("c_implicit_chain_deferreds_per_s=%.0f\n", impl);
    printf("c_long_chain_n=%ld\n", n_long);
    printf("c_long_chain_callbacks_per_s=%.0f\n", lng);
    fflush(stdout);
    if (!twisted)
        return 0;
    double tcff = 0, tchain = 0, timpl = 0, tlng = 0;
    if (run_twisted(script, quick, &tcff, &tchain, &timpl, &tlng) < 0) {
        fprintf(stderr, "twisted run failed (%s)\n", script);
        return 1;
    }
    printf("ratio_create_fire_free=%.1f\n", cff / tcff);
    printf("ratio_chain_callbacks=%.1f\n", chain / tchain);
    printf("ratio_implicit_chain=%.1f\n", impl / timpl);
    printf("ratio_long_chain=%.1f\n", lng / tlng);
    return 0;
}
