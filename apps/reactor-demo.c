/* reactor-demo: the loop at work, with the teaching trace on.
 *
 * Two ends of a socket pair stand for a client and a server. A repeating timer makes the
 * client send a message; the server echoes it; the client prints the echo. After three
 * round trips the client stops the reactor, and a shutdown trigger says goodbye.
 * Every "iter=" line on stderr is the reactor explaining what it does (docs/reactor.md).
 *
 *   build/bin/reactor-demo             (REACTOR_BACKEND=poll|select|epoll to compare)
 */
#include <twistc/reactor.h>

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    int client, server; /* the two ends of the pair */
    int sent, echoed;
} demo;

/* The server: whatever arrives goes straight back. */
static void server_readable(reactor *r, int fd, unsigned events, void *data)
{
    (void)r;
    (void)events;
    (void)data;
    char buf[256];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0 && write(fd, buf, (size_t)n) != n)
        perror("server write");
}

/* The client: print each echo; after the third, ask the reactor to stop. */
static void client_readable(reactor *r, int fd, unsigned events, void *data)
{
    (void)events;
    demo *d = data;
    char buf[256];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    if (n <= 0)
        return;
    buf[n] = '\0';
    printf("client got echo: %s\n", buf);
    if (++d->echoed == 3)
        reactor_stop(r); /* asynchronous: run() returns once the triggers have run */
}

/* A timer that re-arms itself: send one message every 50 ms, three times. */
static void send_message(reactor *r, void *data)
{
    demo *d = data;
    char msg[32];
    int len = snprintf(msg, sizeof msg, "hello #%d", ++d->sent);
    if (write(d->client, msg, (size_t)len) != len)
        perror("client write");
    if (d->sent < 3)
        reactor_call_later(r, 0.05, send_message, d);
}

static void say_hi(reactor *r, void *data)
{
    const double *start = data;
    printf("timer: %.0f ms since start\n", (reactor_seconds(r) - *start) * 1000.0);
}

static void goodbye(reactor *r, void *data)
{
    (void)r;
    (void)data;
    printf("shutdown trigger: goodbye\n");
}

int main(void)
{
    reactor *r = reactor_new();
    if (!r) {
        perror("reactor_new");
        return 1;
    }
    if (!reactor_trace_file(r))
        reactor_set_trace(r, stderr); /* on even without REACTOR_TRACE=1 */
    setvbuf(stdout, NULL, _IOLBF, 0); /* keep our lines in step with the trace */

    demo d = {0};
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
        perror("socketpair");
        return 1;
    }
    for (int i = 0; i < 2; i++) /* a reactor wants non-blocking fds */
        fcntl(sv[i], F_SETFL, fcntl(sv[i], F_GETFL) | O_NONBLOCK);
    d.client = sv[0];
    d.server = sv[1];

    reactor_watch(r, d.server, REACTOR_READABLE, server_readable, &d);
    reactor_watch(r, d.client, REACTOR_READABLE, client_readable, &d);
    reactor_call_later(r, 0.0, send_message, &d);
    double start = reactor_seconds(r);
    reactor_call_later(r, 0.075, say_hi, &start);
    reactor_add_trigger(r, REACTOR_BEFORE_SHUTDOWN, goodbye, NULL);
    reactor_stop_on_signals(r); /* ^C stops it gracefully too */

    printf("running on the %s backend\n", reactor_backend_name(r));
    int rc = reactor_run(r);

    reactor_unwatch(r, d.client); /* unwatch before close, always */
    reactor_unwatch(r, d.server);
    close(d.client);
    close(d.server);
    reactor_free(r);
    return rc == 0 ? 0 : 1;
}
