#define _GNU_SOURCE
/* Connectors: connect without blocking, report each kind of failure, reconnect.
 *
 * A host name may resolve to several addresses (::1 and 127.0.0.1 for "localhost"): they
 * are tried in getaddrinfo's order, staggered ("Happy Eyeballs", RFC 8305; Twisted's
 * HostnameEndpoint, CPython's happy_eyeballs_delay, Go's fallback delay). An attempt
 * that has not finished after STAGGER_DELAY does not block the next address: the next
 * attempt starts then and the earlier ones keep running, so an address that silently
 * drops packets (a blackholed IPv6 route) no longer uses up the whole timeout. The
 * first attempt to connect wins; the others are unwatched and closed at once. A failed
 * attempt closes its socket and, when addresses are left, the next one starts from the
 * next iteration without waiting for the delay (never inline: no recursion, and a
 * cancel or the deadline always finds a plain state). The attempts in flight are a
 * small array, one slot per address (fds[i] is address i's socket, -1 when none), and
 * one timer (next_tm) starts the next address.
 *
 * One deadline covers the lookup and all the attempts: it is armed when the connect
 * starts and never re-armed. When every address failed, the failure of the most
 * preferred address (the lowest index; CPython and Go report the same one) is reported;
 * when the deadline passes first, it is a timeout and every attempt still open is
 * closed. A numeric address is one attempt, as before. */
#include "reactor/transport_internal.h"
#include <twistc/tls.h>
#include "reactor/backend_internal.h" /* reactor__sock_error */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* RFC 8305's recommended "Connection Attempt Delay" (section 5): how long an attempt may
 * stay unfinished before the next address is tried alongside it. Twisted uses 0.3 s. */
#define STAGGER_DELAY 0.25

enum { C_IDLE, C_RESOLVING, C_CONNECTING, C_FAILING, C_CONNECTED };

struct connector {
    struct transport_owner base;
    factory *f;
    struct connector *prev, *next; /* module list */
    char *host;                    /* TCP: as given; Unix: the path */
    int port;
    int is_unix;
    int state;
    int fds[RESOLVE__MAX_ADDRS]; /* the attempts in flight, by address index; -1: none */
    int nopen;                   /* how many of fds are open */
    double timeout;
    reactor_timer *timer; /* connect deadline, or the pending failure (C_FAILING) */
    reactor_timer *next_tm; /* starts the next address: after STAGGER_DELAY, or soon */
    struct resolve_job *job;
    transport *t;
    struct sockaddr_storage addr; /* numeric: the address; by name: the winner's */
    socklen_t addrlen;
    struct resolve_addr *addrs; /* a lookup's answer (NULL: numeric or Unix) */
    int naddrs, cur;            /* how many; the index of the latest attempt started */
    int first_idx;              /* the address whose failure is in first */
    protocol_reason fail;
    protocol_reason first; /* the most preferred failed address's reason (has_first) */
    unsigned in_cb : 1, freed : 1, factory_started : 1, has_first : 1;
    unsigned soon : 1; /* next_tm runs from the next iteration (after a failure) */
};

static void really_free(connector *c);
static void start_socket(connector *c, int i);

static protocol_reason_kind kind_of(int err)
{
    switch (err) {
    case ECONNREFUSED:
    case ENOENT: /* Unix: no socket file */
        return PROTOCOL_CONNECT_REFUSED;
    case ETIMEDOUT:
        return PROTOCOL_CONNECT_TIMEOUT;
    case ENETUNREACH:
    case EHOSTUNREACH:
    case EADDRNOTAVAIL:
    case ENETDOWN:
#ifdef EHOSTDOWN
    case EHOSTDOWN:
#endif
        return PROTOCOL_CONNECT_UNREACHABLE;
    default:
        return PROTOCOL_CONNECT_FAILED;
    }
}

/* Closes attempt i's socket (the deadline and the address list stay). */
static void close_attempt(connector *c, int i)
{
    if (c->fds[i] >= 0) {
        transport__unwatch(c->base.mod, c->fds[i]);
        close(c->fds[i]);
        c->fds[i] = -1;
        c->nopen--;
    }
}

static void close_attempts(connector *c)
{
    for (int i = 0; i < RESOLVE__MAX_ADDRS && c->nopen > 0; i++)
        close_attempt(c, i);
}

static void cancel_next(connector *c)
{
    if (c->next_tm) {
        transport__cancel(c->base.mod, c->next_tm);
        c->next_tm = NULL;
    }
    c->soon = 0;
}

/* Ends the whole connect: timers, sockets, lookup, address list. */
static void drop_socket(connector *c)
{
    struct transport_mod *m = c->base.mod;
    if (c->timer) {
        transport__cancel(m, c->timer);
        c->timer = NULL;
    }
    cancel_next(c);
    close_attempts(c);
    if (c->job) {
        resolve__cancel(c->job);
        c->job = NULL;
    }
    free(c->addrs);
    c->addrs = NULL;
    c->naddrs = 0;
}

/* After client_connection_failed/lost: stop the factory unless the callback connected
 * again (Twisted's doStop), and free the connector if that was asked for inside it. */
static void after_callback(connector *c)
{
    c->in_cb = 0;
    if (c->state == C_IDLE && c->factory_started) {
        c->factory_started = 0;
        factory__do_stop(c->base.mod, c->f);
    }
    if (c->freed)
        really_free(c);
}

/* Reports a failure now (we are on the loop). */
static void fail_now(connector *c, const protocol_reason *reason)
{
    drop_socket(c);
    c->state = C_IDLE;
    if (c->freed) {
        after_callback(c);
        return;
    }
    protocol_reason copy = *reason;
    c->in_cb = 1;
    if (c->f->ops->client_connection_failed)
        c->f->ops->client_connection_failed(c->f, c, &copy);
    after_callback(c);
}

static void fail_later_fire(reactor *r, void *data)
{
    (void)r;
    connector *c = data;
    c->timer = NULL;
    protocol_reason reason = c->fail;
    fail_now(c, &reason);
}

/* Reports a failure from the next iteration (we may be inside the user's call). */
static void fail_later(connector *c, protocol_reason_kind kind, int err, int gai_err,
                       const char *msg)
{
    drop_socket(c);
    transport__reason(&c->fail, kind, err);
    c->fail.gai_err = gai_err;
    if (msg)
        c->fail.message = msg;
    c->state = C_FAILING;
    c->timer = reactor_call_soon(c->base.mod->r, fail_later_fire, c);
}

static void on_timeout(reactor *r, void *data)
{
    (void)r;
    connector *c = data;
    c->timer = NULL;
    protocol_reason reason;
    transport__reason(&reason, PROTOCOL_CONNECT_TIMEOUT, ETIMEDOUT);
    fail_now(c, &reason);
}

static void next_fire(reactor *r, void *data)
{
    (void)r;
    connector *c = data;
    c->next_tm = NULL;
    c->soon = 0;
    start_socket(c, c->cur + 1);
}

/* Starts the next address's attempt after delay (0: from the next iteration), in place
 * of one already planned. 0 when there is no next address or no memory for the timer
 * (then the plan already made, if any, stays). */
static int plan_next(connector *c, double delay)
{
    if (!c->addrs || c->cur + 1 >= c->naddrs)
        return 0;
    reactor *r = c->base.mod->r;
    reactor_timer *tm = delay > 0 ? reactor_call_later(r, delay, next_fire, c)
                                   : reactor_call_soon(r, next_fire, c);
    if (!tm)
        return 0;
    cancel_next(c);
    c->next_tm = tm;
    c->soon = delay <= 0;
    return 1;
}

/* Attempt i failed with err (its socket is closed). The next address starts from the
 * next iteration (not after the delay: this one is done); with none left and no attempt
 * in flight, the most preferred failure is reported: now when on_loop (we are in the
 * connector's own I/O callback), else from the next iteration. */
static void attempt_failed(connector *c, int i, int err, int on_loop)
{
    if (!c->has_first || i < c->first_idx) {
        transport__reason(&c->first, kind_of(err), err);
        c->first_idx = i;
        c->has_first = 1;
    }
    if (plan_next(c, 0) || c->next_tm || c->nopen > 0)
        return; /* an attempt is planned or still running */
    protocol_reason first = c->first;
    if (on_loop)
        fail_now(c, &first);
    else
        fail_later(c, first.kind, first.err, 0, NULL);
}

static void on_connect_io(reactor *r, int fd, unsigned events, void *data)
{
    (void)events;
    connector *c = data;
    int i = 0;
    while (i < RESOLVE__MAX_ADDRS - 1 && c->fds[i] != fd)
        i++;
    /* SO_ERROR, or the error the backend saw (libkqueue consumes SO_ERROR) */
    int err = reactor__sock_error(r, fd);
    if (err == EINPROGRESS || err == EALREADY || err == EINTR)
        return; /* not finished yet */
    if (err) {
        close_attempt(c, i);
        attempt_failed(c, i, err, 1);
        return;
    }
    /* Connected: this attempt wins; the others and the plans are dropped. */
    if (c->timer) {
        reactor_timer_cancel(c->timer);
        c->timer = NULL;
    }
    cancel_next(c);
    reactor_unwatch(r, fd);
    c->fds[i] = -1;
    c->nopen--;
    close_attempts(c);
    if (c->addrs) { /* the peer address for build_protocol */
        memcpy(&c->addr, &c->addrs[i].u, c->addrs[i].len);
        c->addrlen = c->addrs[i].len;
    }
    free(c->addrs); /* no other address will be tried */
    c->addrs = NULL;
    c->naddrs = 0;
    transport *t = transport__alloc(c->base.mod);
    if (!t) {
        close(fd);
        protocol_reason reason;
        transport__reason(&reason, PROTOCOL_CONNECT_FAILED, ENOMEM);
        fail_now(c, &reason);
        return;
    }
    protocol *p = c->f->ops->build_protocol(c->f, (struct sockaddr *)&c->addr, c->addrlen);
    if (!p) {
        free(t);
        close(fd);
        protocol_reason reason;
        transport__reason(&reason, PROTOCOL_ERROR, 0);
        reason.message = "the factory refused the connection";
        fail_now(c, &reason);
        return;
    }
    c->state = C_CONNECTED;
    transport__start(c->base.mod, t, c, fd, p, T_CLIENT | (c->is_unix ? T_UNIX : 0));
}

/* Attempt i: to c->addrs[i], or to c->addr when there is no list (i = 0). When it does
 * not fail at once and addresses are left, the next one starts after STAGGER_DELAY
 * unless this one finished first. */
static void start_socket(connector *c, int i)
{
    const struct sockaddr *sa = (const struct sockaddr *)&c->addr;
    socklen_t len = c->addrlen;
    if (c->addrs) {
        sa = &c->addrs[i].u.sa;
        len = c->addrs[i].len;
    }
    c->cur = i;
    c->state = C_CONNECTING;
    int fd = transport__socket(sa->sa_family, SOCK_STREAM);
    if (fd < 0) {
        /* a family this host cannot use (EAFNOSUPPORT), or out of fds: try the next */
        attempt_failed(c, i, -fd, 0);
        return;
    }
    int rc;
    do
        rc = connect(fd, sa, len);
    while (rc < 0 && errno == EINTR);
    if (rc < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        /* Unix: EAGAIN means the listener's backlog is full */
        attempt_failed(c, i, e, 0);
        return;
    }
    c->fds[i] = fd;
    c->nopen++;
    /* Completion (or failure) shows as writability; SO_ERROR tells which. Connected at
     * once (Unix) is reported the same way, from the loop. */
    rc = reactor_watch(c->base.mod->r, fd, REACTOR_WRITABLE, on_connect_io, c);
    if (rc < 0) {
        close_attempt(c, i);
        attempt_failed(c, i, -rc, 0);
        return;
    }
    /* No memory for the timer: the next address waits for this attempt's failure. */
    plan_next(c, STAGGER_DELAY);
}

static void resolved(struct resolve_job *job)
{
    connector *c = job->data;
    c->job = NULL;
    if (job->gai_err) {
        fail_later(c, PROTOCOL_CONNECT_DNS, 0, job->gai_err, NULL);
        c->fail.message = "host name lookup failed";
    } else {
        c->addrs = job->addrs; /* the connector owns the list now */
        c->naddrs = job->naddrs;
        job->addrs = NULL;
        start_socket(c, 0);
    }
    resolve__free(job);
}

/* Fills c->addr when host is numeric (or a Unix path): 1; 0 when it needs a lookup. */
static int numeric(connector *c)
{
    memset(&c->addr, 0, sizeof c->addr);
    if (c->is_unix) {
        struct sockaddr_un *un = (struct sockaddr_un *)&c->addr;
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, c->host, strlen(c->host) + 1);
        c->addrlen = sizeof *un;
        return 1;
    }
    struct sockaddr_in *in4 = (struct sockaddr_in *)&c->addr;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&c->addr;
    if (inet_pton(AF_INET, c->host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)c->port);
        c->addrlen = sizeof *in4;
        return 1;
    }
    if (inet_pton(AF_INET6, c->host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)c->port);
        c->addrlen = sizeof *in6;
        return 1;
    }
    return 0;
}

int connector_connect(connector *c)
{
    if (!c || c->freed)
        return -EINVAL;
    if (c->state != C_IDLE)
        return -EBUSY;
    if (!c->factory_started) {
        int rc = factory__do_start(c->base.mod, c->f);
        if (rc < 0)
            return rc;
        c->factory_started = 1;
    }
    c->state = C_RESOLVING;
    c->has_first = 0;
    c->soon = 0;
    if (c->f->ops->started_connecting)
        c->f->ops->started_connecting(c->f, c);
    if (c->state != C_RESOLVING)
        return 0; /* stop_connecting from started_connecting */
    /* One deadline for everything, the lookup included: a resolver that never answers
     * still ends in a timeout (on_timeout cancels the lookup and closes the attempts). */
    c->timer = reactor_call_later(c->base.mod->r, c->timeout, on_timeout, c);
    if (!c->timer) { /* no deadline, no connect: it could wait forever otherwise */
        fail_later(c, PROTOCOL_CONNECT_FAILED, ENOMEM, 0, "no memory for the deadline");
        return 0;
    }
    if (numeric(c)) {
        start_socket(c, 0);
        return 0;
    }
    c->job = resolve__start(c->base.mod, c->host, c->port, resolved, c);
    if (!c->job)
        fail_later(c, PROTOCOL_CONNECT_DNS, errno, 0, "cannot start the host name lookup");
    return 0;
}

connector *connector__create(reactor *r, const char *host, int port, const char *path,
                             factory *f, double timeout)
{
    if (!r || !f || !f->ops || !f->ops->build_protocol || (!host && !path) ||
        (host && (port < 0 || port > 65535))) {
        errno = EINVAL;
        return NULL;
    }
    if (path && strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    struct transport_mod *m = transport__mod(r);
    if (!m)
        return NULL;
    connector *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->host = strdup(path ? path : host);
    if (!c->host) {
        free(c);
        return NULL;
    }
    c->base.mod = m;
    c->base.tls_host = path ? NULL : c->host; /* what a TLS client checks */
    c->f = f;
    c->port = port;
    c->is_unix = path != NULL;
    for (int i = 0; i < RESOLVE__MAX_ADDRS; i++)
        c->fds[i] = -1;
    c->timeout = timeout > 0 ? timeout : 30.0;
    c->state = C_IDLE;
    c->next = m->connectors;
    if (m->connectors)
        m->connectors->prev = c;
    m->connectors = c;
    connector_connect(c);
    return c;
}

int connector_stop_connecting(connector *c)
{
    if (!c)
        return -EINVAL;
    if (c->state != C_RESOLVING && c->state != C_CONNECTING)
        return -ENOTCONN;
    fail_later(c, PROTOCOL_CONNECT_CANCELLED, 0, 0, NULL);
    return 0;
}

int connector_disconnect(connector *c)
{
    if (!c)
        return -EINVAL;
    if (c->state == C_CONNECTED)
        return transport_lose_connection(c->t);
    if (c->state == C_RESOLVING || c->state == C_CONNECTING)
        return connector_stop_connecting(c);
    return 0;
}

transport *connector_transport(const connector *c)
{
    return c && c->state == C_CONNECTED ? c->t : NULL;
}

factory *connector_factory(const connector *c) { return c ? c->f : NULL; }

void connector__set_transport(connector *c, transport *t) { c->t = t; }

int connector__attempt(const connector *c, int *open)
{
    int connecting = c->state == C_CONNECTING && c->addrs;
    int i = c->cur + c->soon; /* soon: the next one is about to start */
    if (open)
        *open = connecting && i < RESOLVE__MAX_ADDRS && c->fds[i] >= 0;
    return connecting ? i : -1;
}

void connector__conn_lost(connector *c, transport *t, const protocol_reason *reason)
{
    (void)t;
    c->t = NULL;
    c->state = C_IDLE;
    if (c->freed) {
        after_callback(c);
        return;
    }
    c->in_cb = 1;
    if (c->f->ops->client_connection_lost)
        c->f->ops->client_connection_lost(c->f, c, reason);
    after_callback(c);
}

static void really_free(connector *c)
{
    struct transport_mod *m = c->base.mod;
    if (c->prev)
        c->prev->next = c->next;
    else if (m->connectors == c)
        m->connectors = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c->addrs);
    free(c->host);
    tls_context_unref(c->base.tls);
    free(c);
}

void connector_free(connector *c)
{
    if (!c || c->freed)
        return;
    c->freed = 1;
    if (c->in_cb)
        return; /* after_callback frees it */
    if (c->state == C_CONNECTED) {
        transport_lose_connection(c->t); /* freed once the connection is gone */
        return;
    }
    drop_socket(c);
    c->state = C_IDLE;
    after_callback(c);
}

void connector__shutdown_all(struct transport_mod *m)
{
    for (connector *c = m->connectors; c; c = c->next)
        if (c->state != C_CONNECTED && c->state != C_IDLE) {
            drop_socket(c);
            c->state = C_IDLE;
            if (c->factory_started) {
                c->factory_started = 0;
                factory__do_stop(c->base.mod, c->f);
            }
        }
}

void connector__free_all(struct transport_mod *m)
{
    resolve__teardown(m);
    while (m->connectors) {
        connector *c = m->connectors;
        c->job = NULL;
        drop_socket(c);
        if (c->factory_started) {
            c->factory_started = 0;
            factory__do_stop(c->base.mod, c->f);
        }
        really_free(c);
    }
}
