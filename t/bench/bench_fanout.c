#define _GNU_SOURCE
/* bench_fanout: how fast one event reaches every notify-mode client.
 *
 *   build/bench/bench_fanout latency local CLIENTS EVENTS
 *       one notif_server (forked child, no Redis) holding every client; each event is
 *       triggered through a pipe, then notif_server_publish()
 *   build/bench/bench_fanout latency redis REDIS_PORT CHANNEL CLIENTS EVENTS PORT...
 *       the clients spread round-robin over the notif-server instances at PORT...
 *       (started with --redis ... --interval 0); each event is a PUBLISH on CHANNEL
 *   build/bench/bench_fanout throughput REDIS_PORT CHANNEL CLIENTS SECONDS RATE... PORT...
 *       (RATE list ends at the first argument "--"): events published at RATE per
 *       second for SECONDS; "kept up" if every client got every event and no event
 *       reached its last client more than 100 ms after it was published
 *
 * Latency of one event: from just before the trigger (pipe write / PUBLISH) to the
 * moment the last client has read its "notif: random" line; events are 20 ms apart.
 * Prints min, p50, p99 and max in milliseconds (min: the closest to an idle machine). t/bench/fanout.sh runs the whole comparison
 * (docs/scaling.md). The client side is one process with plain epoll: it must not be
 * the bottleneck it measures, so it only counts newlines. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <twistc/reactor.h>
#include <twistc/transport.h>

#include "apps/notif/notif_server.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* ---- Clients ------------------------------------------------------------------------ */

struct cl {
    int fd;
    uint32_t lines; /* "notif:" lines counted (and the one answer to random?) */
    int ready;      /* random? answered: notify was handled before it */
};

static struct cl *cls;
static int ncl, ep;
static uint32_t *reached; /* reached[k]: clients that have event k */
static double *t_pub, *t_done;
static size_t nev_cap;

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        die("socket");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
        die("connect");
    int on = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    if (write(fd, "notify\nrandom?\n", 15) != 15)
        die("write");
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

static void open_clients(int n, const int *ports, int nports)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if ((rlim_t)n + 64 > rl.rlim_cur) {
        fprintf(stderr, "bench_fanout: RLIMIT_NOFILE %ld is too low for %d clients\n",
                (long)rl.rlim_cur, n);
        exit(1);
    }
    ncl = n;
    cls = calloc((size_t)n, sizeof *cls);
    ep = epoll_create1(0);
    for (int i = 0; i < n; i++) {
        cls[i].fd = connect_to(ports[i % nports]);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, cls[i].fd, &ev);
    }
}

/* Reads what is there; returns the number of clients not ready yet. */
static int pump(int timeout_ms)
{
    static struct epoll_event evs[1024];
    static char buf[65536];
    static int not_ready = -1;
    if (not_ready < 0)
        not_ready = ncl;
    int n = epoll_wait(ep, evs, 1024, timeout_ms);
    double t = now();
    for (int i = 0; i < n; i++) {
        struct cl *c = &cls[evs[i].data.u32];
        for (;;) {
            ssize_t got = read(c->fd, buf, sizeof buf);
            if (got <= 0) {
                if (got == 0) {
                    fprintf(stderr, "bench_fanout: a server closed a client (fell behind?)\n");
                    exit(1);
                }
                break;
            }
            for (ssize_t j = 0; j < got; j++) {
                if (buf[j] != '\n')
                    continue;
                if (!c->ready) { /* the answer to random?: subscribed */
                    c->ready = 1;
                    not_ready--;
                    continue;
                }
                uint32_t k = c->lines++;
                if (k < nev_cap && ++reached[k] == (uint32_t)ncl)
                    t_done[k] = t;
            }
        }
    }
    return not_ready;
}

static void wait_ready(void)
{
    double t0 = now();
    while (pump(100) > 0)
        if (now() - t0 > 60) {
            fprintf(stderr, "bench_fanout: clients not subscribed after 60 s\n");
            exit(1);
        }
}

static void alloc_events(size_t n)
{
    nev_cap = n;
    reached = calloc(n, sizeof *reached);
    t_pub = calloc(n, sizeof *t_pub);
    t_done = calloc(n, sizeof *t_done);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *label, size_t n)
{
    double *lat = malloc(n * sizeof *lat);
    for (size_t k = 0; k < n; k++)
        lat[k] = (t_done[k] - t_pub[k]) * 1e3;
    qsort(lat, n, sizeof *lat, cmp_double);
    size_t i99 = (size_t)((double)n * 0.99);
    if (i99 >= n)
        i99 = n - 1;
    printf("%s clients=%d events=%zu min_ms=%.2f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n", label,
           ncl, n, lat[0], lat[n / 2], lat[i99], lat[n - 1]);
    free(lat);
}

/* ---- Triggers ---------------------------------------------------------------------- */

static redisContext *rd;
static const char *channel;
static uint64_t seq;

static void redis_open(int port)
{
    rd = redisConnect("127.0.0.1", port);
    if (!rd || rd->err) {
        fprintf(stderr, "bench_fanout: redis: %s\n", rd ? rd->errstr : "out of memory");
        exit(1);
    }
}

static void publish_append(void)
{
    redisAppendCommand(rd, "PUBLISH %s %s%llu%s", channel, "00000000bench000 ",
                       (unsigned long long)++seq, " random");
}

static void publish_flush(int n)
{
    for (int i = 0; i < n; i++) {
        void *reply;
        if (redisGetReply(rd, &reply) != REDIS_OK) {
            fprintf(stderr, "bench_fanout: redis: %s\n", rd->errstr);
            exit(1);
        }
        freeReplyObject(reply);
    }
}

/* The local server: a child with its own reactor; a byte on the pipe = one event. */
static int ctl_fd;
static notif_server *local_srv;

static void on_ctl(reactor *r, int fd, unsigned ev, void *data)
{
    char b[64];
    ssize_t n = read(fd, b, sizeof b);
    if (n == 0) {
        reactor_stop(r);
        return;
    }
    for (ssize_t i = 0; i < n; i++)
        notif_server_publish(local_srv, NOTIF_EVENT_RANDOM);
}

static int start_local(void)
{
    int ctl[2], portpipe[2];
    if (pipe(ctl) < 0 || pipe(portpipe) < 0)
        die("pipe");
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        struct rlimit rl;
        getrlimit(RLIMIT_NOFILE, &rl);
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        close(ctl[1]);
        reactor *r = reactor_new();
        notif_server_config cfg = {.interval = -1};
        local_srv = notif_server_new(r, &cfg);
        listener *l = reactor_listen_tcp(r, "127.0.0.1", 0, notif_server_factory(local_srv), 4096);
        if (!l)
            die("listen");
        int port = listener_port(l);
        if (write(portpipe[1], &port, sizeof port) != sizeof port)
            _exit(1);
        reactor_watch(r, ctl[0], REACTOR_READABLE, on_ctl, NULL);
        reactor_run(r);
        _exit(0);
    }
    close(ctl[0]);
    int port;
    if (read(portpipe[0], &port, sizeof port) != sizeof port)
        die("local server");
    ctl_fd = ctl[1];
    return port;
}

/* ---- Runs ------------------------------------------------------------------------------ */

static void settle(double secs)
{
    double end = now() + secs;
    while (now() < end)
        pump(1);
}

static void latency(int local, size_t nev)
{
    alloc_events(nev);
    for (size_t k = 0; k < nev; k++) {
        settle(0.02);
        t_pub[k] = now();
        if (local) {
            if (write(ctl_fd, "e", 1) != 1)
                die("trigger");
        } else {
            publish_append();
            publish_flush(1);
        }
        double t0 = now();
        while (!t_done[k]) {
            pump(100);
            if (now() - t0 > 30) {
                fprintf(stderr, "bench_fanout: event %zu not delivered to all in 30 s (%u/%d)\n",
                        k, reached[k], ncl);
                exit(1);
            }
        }
    }
    report(local ? "latency local(1 instance, no Redis)" : "latency redis", nev);
}

/* One rate for `secs`: publishes in batches every millisecond or so, paced to the rate. */
static int throughput_step(double rate, double secs, size_t base)
{
    size_t total = (size_t)(rate * secs);
    double t0 = now();
    size_t sent = 0;
    while (sent < total) {
        double t = now();
        size_t due = (size_t)((t - t0) * rate) + 1;
        if (due > total)
            due = total;
        int batch = 0;
        while (sent < due) {
            t_pub[base + sent] = t;
            publish_append();
            sent++;
            batch++;
        }
        if (batch)
            publish_flush(batch);
        pump(0);
    }
    /* let the tail arrive: at most 1 s */
    double end = now() + 1.0;
    while (now() < end && !t_done[base + total - 1])
        pump(5);
    double worst = 0;
    size_t missing = 0;
    for (size_t k = base; k < base + total; k++) {
        if (!t_done[k]) {
            missing++;
            continue;
        }
        double lag = t_done[k] - t_pub[k];
        if (lag > worst)
            worst = lag;
    }
    int ok = missing == 0 && worst <= 0.1;
    printf("throughput rate=%.0f/s events=%zu clients=%d missing=%zu worst_lag_ms=%.1f %s\n", rate,
           total, ncl, missing, worst * 1e3, ok ? "kept-up" : "FELL-BEHIND");
    fflush(stdout);
    return ok;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc >= 5 && strcmp(argv[1], "latency") == 0 && strcmp(argv[2], "local") == 0) {
        int port = start_local();
        open_clients(atoi(argv[3]), &port, 1);
        wait_ready();
        latency(1, (size_t)atol(argv[4]));
        close(ctl_fd);
        wait(NULL);
        return 0;
    }
    if (argc >= 8 && strcmp(argv[1], "latency") == 0 && strcmp(argv[2], "redis") == 0) {
        redis_open(atoi(argv[3]));
        channel = argv[4];
        int nports = argc - 7, ports[64];
        for (int i = 0; i < nports && i < 64; i++)
            ports[i] = atoi(argv[7 + i]);
        open_clients(atoi(argv[5]), ports, nports);
        wait_ready();
        latency(0, (size_t)atol(argv[6]));
        return 0;
    }
    if (argc >= 8 && strcmp(argv[1], "throughput") == 0) {
        redis_open(atoi(argv[2]));
        channel = argv[3];
        int n = atoi(argv[4]);
        double secs = atof(argv[5]);
        int i = 6;
        double rates[64];
        int nr = 0;
        while (i < argc && strcmp(argv[i], "--") != 0 && nr < 64)
            rates[nr++] = atof(argv[i++]);
        i++;
        int nports = 0, ports[64];
        while (i < argc && nports < 64)
            ports[nports++] = atoi(argv[i++]);
        if (!nr || !nports) {
            fprintf(stderr, "bench_fanout: throughput needs rates, --, ports\n");
            return 2;
        }
        size_t cap = 0;
        for (int k = 0; k < nr; k++)
            cap += (size_t)(rates[k] * secs) + 1;
        alloc_events(cap);
        open_clients(n, ports, nports);
        wait_ready();
        size_t base = 0;
        double best = 0;
        for (int k = 0; k < nr; k++) {
            settle(0.2);
            if (!throughput_step(rates[k], secs, base))
                break;
            best = rates[k];
            base += (size_t)(rates[k] * secs);
        }
        printf("throughput best_kept_up=%.0f events/s to %d clients over %d instance(s)\n", best,
               n, nports);
        return 0;
    }
    fprintf(stderr, "usage: see the comment at the top of t/bench/bench_fanout.c\n");
    return 2;
}
