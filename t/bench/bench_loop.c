/* Loop overhead per backend: one idle iteration (nothing ready, poll with timeout 0),
 * one iteration that dispatches one ready fd, and an idle iteration with 1000 watched
 * but silent fds (where poll and select pay for every fd and epoll does not).
 *
 *   make bench && build/bench/bench_loop [iterations] [backend]
 *
 * Instructions per iteration (stable when wall-clock is noisy): run it under
 *   valgrind --tool=callgrind --toggle-collect=reactor_iterate build/bench/bench_loop N B
 * for two values of N and divide the difference of the totals by the difference of
 * 2.1 * N (idle N + ready N + 1000-fd N/10 iterations).
 */
#include <twistc/reactor.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static long calls;
static void on_ready(reactor *r, int fd, unsigned events, void *data)
{
    (void)r;
    (void)fd;
    (void)events;
    (void)data;
    calls++; /* never reads: level-triggered, so it stays ready */
}

static double per_iter(reactor *r, long n)
{
    double t0 = now_s();
    for (long i = 0; i < n; i++)
        reactor_iterate(r, 0);
    return (now_s() - t0) * 1e9 / (double)n;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000;
    const char *only = argc > 2 ? argv[2] : NULL;
    printf("%-8s %14s %14s %20s\n", "backend", "idle ns/iter", "1 ready ns/iter",
           "idle, 1000 fds ns/iter");
    for (const char *const *b = reactor_backends(); *b; b++) {
        if (only && strcmp(only, *b) != 0)
            continue;
        reactor *r = reactor_new_with_backend(*b);
        if (!r)
            continue;
        double idle = per_iter(r, n);

        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 || write(sv[1], "x", 1) != 1)
            return 1;
        reactor_watch(r, sv[0], REACTOR_READABLE, on_ready, NULL);
        calls = 0;
        double ready = per_iter(r, n);
        if (calls != n)
            fprintf(stderr, "%s: %ld dispatches for %ld iterations\n", *b, calls, n);
        reactor_unwatch(r, sv[0]);

        int pairs[500][2];
        for (int i = 0; i < 500; i++) {
            if (socketpair(AF_UNIX, SOCK_STREAM, 0, pairs[i]) < 0)
                return 1;
            reactor_watch(r, pairs[i][0], REACTOR_READABLE, on_ready, NULL);
            reactor_watch(r, pairs[i][1], REACTOR_READABLE, on_ready, NULL);
        }
        double many = per_iter(r, n / 10);
        printf("%-8s %14.0f %14.0f %20.0f\n", *b, idle, ready, many);
        for (int i = 0; i < 500; i++)
            for (int k = 0; k < 2; k++) {
                reactor_unwatch(r, pairs[i][k]);
                close(pairs[i][k]);
            }
        close(sv[0]);
        close(sv[1]);
        reactor_free(r);
    }
    return 0;
}
