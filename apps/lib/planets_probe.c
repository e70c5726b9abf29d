/* The mail lesson's meter: a notification server on the reactor, pinged from a thread
 * (planets_probe.h). */
#include "planets_probe.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <twistc/transport.h>

#include "apps/notif/notif_server.h"
#include "planets_common.h"

struct planets_probe {
    reactor *r;
    notif_server *server;
    listener *l;
    int port;
    double interval;
    reactor_fn ready, stopped;
    void *data;
    pthread_t thread;
    int thread_started;
    atomic_int stop;
    /* Written by the pinger only, read by the reactor thread after `stopped` ran (the
     * call queue's lock orders the two). */
    struct planets_ping *samples;
    size_t n, cap;
    char error[160];
};

static void call_ready(reactor *r, void *data)
{
    planets_probe *p = data;
    p->ready(r, p->data);
}

static void call_stopped(reactor *r, void *data)
{
    planets_probe *p = data;
    p->stopped(r, p->data);
}

static void sleep_until(double t)
{
    double now = planets_now();
    if (t <= now)
        return;
    double d = t - now;
    struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* One question, one answer: "random?" -> a number and a LF. 0, or -1 with p->error. */
static int ping(planets_probe *p, int fd)
{
    static const char q[] = "random?\n";
    if (send(fd, q, sizeof q - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof q - 1)) {
        snprintf(p->error, sizeof p->error, "ping: send: %s", strerror(errno));
        return -1;
    }
    char buf[64];
    size_t have = 0;
    while (!memchr(buf, '\n', have)) {
        ssize_t got = recv(fd, buf + have, sizeof buf - have, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0 || have + (size_t)got >= sizeof buf) {
            snprintf(p->error, sizeof p->error, "ping: %s",
                     got == 0 ? "the server closed the connection"
                     : got > 0 ? "an answer too long"
                     : errno == EAGAIN || errno == EWOULDBLOCK ? "no answer for 30 s"
                                                                : strerror(errno));
            return -1;
        }
        have += (size_t)got;
    }
    if (memchr(buf, '\n', have) != buf + have - 1 || buf[0] < '0' || buf[0] > '9') {
        snprintf(p->error, sizeof p->error, "ping: unexpected answer %.*s", (int)have - 1, buf);
        return -1;
    }
    return 0;
}

static void *pinger(void *arg)
{
    planets_probe *p = arg;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {30, 0};
    int one = 1;
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        snprintf(p->error, sizeof p->error, "ping: cannot connect to the notification server: %s",
                 strerror(errno));
    } else {
        double next = planets_now();
        while (!atomic_load(&p->stop)) {
            sleep_until(next);
            double sent = planets_now();
            if (ping(p, fd) < 0)
                break;
            double latency = planets_now() - sent;
            if (p->n == p->cap) {
                size_t cap = p->cap ? p->cap * 2 : 1024;
                struct planets_ping *s = realloc(p->samples, cap * sizeof *s);
                if (!s) {
                    snprintf(p->error, sizeof p->error, "ping: out of memory");
                    break;
                }
                p->samples = s;
                p->cap = cap;
            }
            p->samples[p->n++] = (struct planets_ping){sent, latency};
            if (p->n == 1)
                reactor_call_from_thread(p->r, call_ready, p);
            /* The next question at the next tick of the grid; after a long wait at once
             * (no burst of the questions it missed: one question at a time). */
            next += p->interval;
            if (next < planets_now())
                next = planets_now();
        }
    }
    if (fd >= 0)
        close(fd);
    reactor_call_from_thread(p->r, call_stopped, p);
    return NULL;
}

planets_probe *planets_probe_start(reactor *r, double interval, reactor_fn ready,
                                   reactor_fn stopped, void *data)
{
    planets_probe *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->r = r;
    p->interval = interval;
    p->ready = ready;
    p->stopped = stopped;
    p->data = data;
    notif_server_config cfg = {.interval = -1}; /* no events: it only answers */
    p->server = notif_server_new(r, &cfg);
    p->l = p->server ? reactor_listen_tcp(r, "127.0.0.1", 0, notif_server_factory(p->server), 0)
                     : NULL;
    if (!p->l) {
        int e = errno;
        planets_probe_free(p);
        errno = e;
        return NULL;
    }
    p->port = listener_port(p->l);
    int rc = pthread_create(&p->thread, NULL, pinger, p);
    if (rc != 0) {
        planets_probe_free(p);
        errno = rc;
        return NULL;
    }
    p->thread_started = 1;
    return p;
}

void planets_probe_stop(planets_probe *p)
{
    atomic_store(&p->stop, 1);
}

const char *planets_probe_error(const planets_probe *p)
{
    return p->error[0] ? p->error : NULL;
}

const struct planets_ping *planets_probe_samples(const planets_probe *p, size_t *n)
{
    *n = p->n;
    return p->samples;
}

void planets_probe_free(planets_probe *p)
{
    if (!p)
        return;
    if (p->thread_started) {
        atomic_store(&p->stop, 1);
        pthread_join(p->thread, NULL);
    }
    listener_free(p->l);
    notif_server_free(p->server);
    free(p->samples);
    free(p);
}
