#define _GNU_SOURCE
/* bench_idle_memory: user-space memory per idle connection of a LineReceiver server.
 *
 *   make bench && build/bench/bench_idle_memory [CONNECTIONS]   (default 10000)
 *
 * A child process runs a twistc line echo server (LineReceiver + TCP transport, as in
 * apps/echo-server.c). The parent opens CONNECTIONS loopback connections to it, sends one
 * line on each and waits for its echo (so every connection went through accept,
 * connection_made and one read/write), then leaves them idle and reads the child's VmRSS
 * from /proc. Bytes per connection = (RSS with N idle connections - RSS with one) / N.
 * Kernel socket buffers are not user-space memory and do not show in RSS. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <twistc/line_receiver.h>
#include <twistc/reactor.h>
#include <twistc/transport.h>

#include "reactor/transport_internal.h"

static int echo_line(line_receiver *lr, const char *line, size_t len)
{
    return line_receiver_send_line(lr, line, len);
}
static void echo_lost(line_receiver *lr, const protocol_reason *reason)
{
    (void)reason;
    free(lr);
}
static const line_receiver_ops echo_ops = {
    .delimiter = "\n", .line_received = echo_line, .connection_lost = echo_lost};
static protocol *build(factory *f, const struct sockaddr *a, socklen_t l)
{
    (void)f, (void)a, (void)l;
    line_receiver *lr = malloc(sizeof *lr);
    if (!lr || line_receiver_init(lr, &echo_ops) < 0) {
        free(lr);
        return NULL;
    }
    return &lr->base;
}
static const factory_ops fops = {.build_protocol = build};

static void serve(int wfd)
{
    reactor *r = reactor_new();
    factory f;
    factory_init(&f, &fops, NULL);
    listener *l = reactor_listen_tcp(r, "127.0.0.1", 0, &f, 4096);
    if (!l)
        _exit(1);
    int port = listener_port(l);
    if (write(wfd, &port, sizeof port) != sizeof port)
        _exit(1);
    close(wfd);
    reactor_stop_on_signals(r);
    reactor_run(r);
    reactor_free(r);
    _exit(0);
}

static long rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

static int open_conn(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        perror("connect");
        exit(1);
    }
    return fd;
}

static void ping(int fd)
{
    char b[2];
    if (send(fd, "x\n", 2, MSG_NOSIGNAL) != 2 || recv(fd, b, 2, MSG_WAITALL) != 2) {
        perror("ping");
        exit(1);
    }
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 10000;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if ((rlim_t)n + 64 > rl.rlim_cur) {
        fprintf(stderr, "bench_idle_memory: RLIMIT_NOFILE %ld is too low for %d\n",
                (long)rl.rlim_cur, n);
        return 2;
    }
    int p[2];
    if (pipe(p) < 0)
        return 1;
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        serve(p[1]);
    }
    close(p[1]);
    int port;
    if (read(p[0], &port, sizeof port) != sizeof port)
        return 1;
    int *fds = malloc(sizeof(int) * (size_t)n);
    fds[0] = open_conn(port); /* warm up: the loop's shared buffers exist from here on */
    ping(fds[0]);
    long base = rss_kb(pid);
    for (int i = 1; i < n; i++) {
        fds[i] = open_conn(port);
        ping(fds[i]);
    }
    sleep(1); /* let the server settle (nothing to await: it is another process) */
    long full = rss_kb(pid);
    double per = (double)(full - base) * 1024.0 / (n - 1);
    printf("connections=%d rss_base_kb=%ld rss_full_kb=%ld bytes_per_conn=%.1f "
           "sizeof_transport=%zu sizeof_line_receiver=%zu\n",
           n, base, full, per, sizeof(struct transport), sizeof(line_receiver));
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    free(fds);
    return 0;
}
