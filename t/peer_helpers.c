/* Starting and stopping the tests' independent peers (see peer_helpers.h). */
#include "peer_helpers.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int peer_start(struct peer *p, const char *const argv[])
{
    memset(p, 0, sizeof *p);
    p->pid = -1;
    p->in_fd = -1;
    int in[2], out[2];
    if (pipe(in) < 0 || pipe(out) < 0) {
        snprintf(p->skip, sizeof p->skip, "pipe: %s", strerror(errno));
        return -1;
    }
    fcntl(in[1], F_SETFD, FD_CLOEXEC);
    fcntl(out[0], F_SETFD, FD_CLOEXEC);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]);
        close(out[1]);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    if (pid < 0) {
        close(in[1]);
        close(out[0]);
        snprintf(p->skip, sizeof p->skip, "fork: %s", strerror(errno));
        return -1;
    }
    p->pid = pid;
    p->in_fd = in[1];
    char line[128];
    size_t len = 0;
    double deadline = now_s() + 20;
    int eof = 0;
    while (len < sizeof line - 1 && !memchr(line, '\n', len)) {
        struct pollfd pfd = {out[0], POLLIN, 0};
        int left = (int)((deadline - now_s()) * 1000);
        if (left <= 0 || poll(&pfd, 1, left) <= 0)
            break;
        ssize_t n = read(out[0], line + len, sizeof line - 1 - len);
        if (n <= 0) {
            eof = 1;
            break;
        }
        len += (size_t)n;
    }
    close(out[0]);
    line[len] = 0;
    if (sscanf(line, "PORT %d %d", &p->port, &p->port2) >= 1 && p->port > 0)
        return 0;
    if (eof) { /* it is exiting: wait for its status (77: "not installed") */
        int wst = 0;
        if (waitpid(pid, &wst, 0) == pid) {
            p->pid = -1;
            p->port = WIFEXITED(wst) ? WEXITSTATUS(wst) : 128;
        }
    }
    peer_stop(p);
    int st = p->port; /* peer_stop leaves the exit status here */
    if (st == 77 || st == 127)
        snprintf(p->skip, sizeof p->skip, "%s: not installed (exit %d)", argv[0], st);
    else
        snprintf(p->skip, sizeof p->skip, "%s %s did not start (exit %d, said \"%.60s\")",
                 argv[0], argv[1] ? argv[1] : "", st, line);
    p->port = 0;
    return -1;
}

void peer_stop(struct peer *p)
{
    if (p->in_fd >= 0)
        close(p->in_fd);
    p->in_fd = -1;
    if (p->pid <= 0)
        return;
    int st = 0;
    /* Already gone (it failed to start)? Else it is ours to end: SIGKILL, nothing of
     * its state matters. */
    if (waitpid(p->pid, &st, WNOHANG) == 0) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, &st, 0);
    }
    p->pid = -1;
    p->port = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

static deferred_result grab(deferred_result r, void *arg)
{
    struct peer_res *s = arg;
    s->r = r;
    s->done = 1;
    return deferred_none();
}

void peer_watch(deferred *d, struct peer_res *s)
{
    ck_assert_ptr_nonnull(d);
    memset(s, 0, sizeof *s);
    deferred_add_both(d, grab, s);
    deferred_unref(d);
}
