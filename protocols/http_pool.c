/* The HTTP client's connection pool (Twisted's HTTPConnectionPool): per reactor, one
 * entry per scheme/host/port with its connections and a FIFO of waiting requests.
 *
 * A connection (hconn) is a protocol (the response reader) with its own factory and
 * connector. It is CONNECTING for the request that opened it, BUSY while it carries a
 * request, IDLE between requests, CLOSED once going away. Its memory is freed in its
 * factory's stop_factory hook: the connector's last word, after a failed connect, a
 * lost connection, or a connect dropped by a reactor shutdown.
 *
 * A request uses an idle connection, else opens one while the host has fewer than
 * max_per_host, else waits in the queue; a connection that becomes idle, or goes away,
 * lets the queue move. A request sent on a reused connection that closes before any
 * byte of the answer is retried once when idempotent (the server closed it while idle:
 * our write crossed its FIN). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <twistc/tls.h>
#include <twistc/transport.h>

#include "protocols/http_internal.h"
#include "reactor/module_internal.h"

enum { HC_CONNECTING, HC_BUSY, HC_IDLE, HC_CLOSED };

struct hconn {
    http__reader rd; /* first: &rd.lr.base is the protocol */
    factory f;
    connector *c;
    struct hhost *host; /* NULL once orphaned (pool freed) */
    struct hconn *next, *prev;
    http__req *req;
    protocol_reason fail; /* why connecting failed */
    int state, failed;
    unsigned uses;
};

struct hhost {
    struct hhost *next;
    struct hpool *pool;
    char *name;
    int port, https;
    char *ca_file;       /* https: what the connections are verified with */
    tls_context *user_tls;
    tls_context *tls;    /* the context connections are made with (the pool's) */
    int busy;            /* a pump or a connection's end is using it: keep it */
    int nconns; /* every hconn not yet freed */
    struct hconn *conns;
    http__req *qhead, *qtail;
};

/* TLS client contexts, one per (ca_file, user context): loading the CA store is the
 * expensive part, and a context serves every host (the name is checked per connection). */
struct hctx {
    struct hctx *next;
    char *ca_file;
    tls_context *user, *ctx; /* ctx: our reference */
};

struct hpool {
    reactor *r;
    struct hhost *hosts;
    struct hctx *ctxs;
    int nhosts, closing;
    char tls_err[200]; /* why the last TLS context could not be made */
};

/* Left as the module data once the pool is freed: requests made later in
 * reactor_free() (from another module's hook) fail instead of making a new pool. */
static char pool_gone;

static void pump(struct hhost *h);
static void pool_free(void *data);

/* ---- Connections ---------------------------------------------------------------------- */

static transport *hc_transport(struct hconn *hc)
{
    return hc->rd.lr.base.transport;
}

static void hc_send(struct hconn *hc, http__req *req)
{
    hc->req = req;
    req->hc = hc;
    hc->state = HC_BUSY;
    hc->uses++;
    int rc = http__reader_start(&hc->rd, req->head, req->o.max_header_size,
                                req->o.max_body_size, req->o.decode);
    if (rc == 0)
        rc = http__req_write(req, hc_transport(hc));
    if (rc < 0) {
        hc->req = NULL;
        req->hc = NULL;
        hc->state = HC_CLOSED;
        http__reader_reset(&hc->rd);
        transport_abort_connection(hc_transport(hc));
        http__req_done(req, rc, "could not send the request", NULL);
    }
}

/* The reader finished the response (or failed it). */
static void hc_done(http__reader *rd, int err, http_response *resp)
{
    struct hconn *hc = (struct hconn *)rd;
    http__req *req = hc->req;
    hc->req = NULL;
    if (req)
        req->hc = NULL;
    struct hhost *h = hc->host;
    if (err == 0 && rd->keep_alive && hc->state == HC_BUSY && h && !h->pool->closing) {
        hc->state = HC_IDLE;
    } else {
        /* A reader error also returns non-zero from the LineReceiver callback, which
         * closes the connection; lose_connection covers the other cases. */
        if (hc->state != HC_CLOSED && hc_transport(hc))
            transport_lose_connection(hc_transport(hc));
        hc->state = HC_CLOSED;
    }
    if (h && hc->state == HC_IDLE)
        pump(h); /* this connection can take the next waiting request */
    if (req)
        http__req_done(req, err, rd->msg, resp);
    else
        http_response_free(resp);
}

static void hc_made(line_receiver *lr)
{
    struct hconn *hc = (struct hconn *)lr;
    if (hc->req) {
        hc_send(hc, hc->req);
        return;
    }
    hc->state = HC_IDLE;
    if (hc->host)
        pump(hc->host);
}

static void hc_lost(line_receiver *lr, const protocol_reason *reason)
{
    struct hconn *hc = (struct hconn *)lr;
    http__req *req = hc->req;
    hc->state = HC_CLOSED;
    if (!req) {
        http__reader_reset(&hc->rd);
        return;
    }
    if (!hc->rd.got_bytes &&
        (reason->kind == PROTOCOL_TLS_VERIFY || reason->kind == PROTOCOL_TLS_HANDSHAKE)) {
        char why[200], msg[300];
        protocol_reason_format(reason, why, sizeof why);
        snprintf(msg, sizeof msg, "TLS with %s:%d failed: %s", req->url.host, req->url.port, why);
        hc->req = NULL;
        req->hc = NULL;
        http__reader_reset(&hc->rd);
        http__req_done(req, reason->kind == PROTOCOL_TLS_VERIFY ? -EACCES : -EPROTO, msg, NULL);
        return;
    }
    if (hc->uses > 1 && !hc->rd.got_bytes && hc->rd.phase == RD_STATUS && req->idempotent &&
        !req->retried && hc->host && !hc->host->pool->closing) {
        /* Sent on a kept connection that the server had closed: once more, on a new
         * one (this connection still counts until it is freed; the queue waits). */
        hc->req = NULL;
        req->hc = NULL;
        req->retried = 1;
        http__reader_reset(&hc->rd);
        if (http__pool_submit(req, 1) == 0)
            return;
        http__req_done(req, -ECONNRESET, "connection closed before the response began", NULL);
        return;
    }
    if (!http__reader_lost(&hc->rd, reason)) {
        /* The reader had nothing in progress (cannot happen while a request is on). */
        hc->req = NULL;
        req->hc = NULL;
        http__req_done(req, -ECONNRESET, "connection lost", NULL);
    }
}

static protocol *hc_build(factory *f, const struct sockaddr *addr, socklen_t len)
{
    (void)addr;
    (void)len;
    struct hconn *hc = (struct hconn *)((char *)f - offsetof(struct hconn, f));
    return &hc->rd.lr.base;
}

static void hc_connect_failed(factory *f, connector *c, const protocol_reason *reason)
{
    struct hconn *hc = (struct hconn *)((char *)f - offsetof(struct hconn, f));
    hc->fail = *reason;
    hc->failed = 1;
    connector_free(c); /* then stop_factory */
}

static void hc_conn_lost(factory *f, connector *c, const protocol_reason *reason)
{
    (void)f;
    (void)reason;
    connector_free(c); /* then stop_factory */
}

static int reason_code(const protocol_reason *r)
{
    if (r->err)
        return r->err;
    switch (r->kind) {
    case PROTOCOL_CONNECT_TIMEOUT: return ETIMEDOUT;
    case PROTOCOL_CONNECT_REFUSED: return ECONNREFUSED;
    case PROTOCOL_CONNECT_UNREACHABLE:
    case PROTOCOL_CONNECT_DNS: return EHOSTUNREACH;
    case PROTOCOL_CONNECT_CANCELLED: return ECANCELED;
    default: return ECONNRESET;
    }
}

static void hc_unlink(struct hconn *hc)
{
    struct hhost *h = hc->host;
    if (!h)
        return;
    if (hc->prev)
        hc->prev->next = hc->next;
    else
        h->conns = hc->next;
    if (hc->next)
        hc->next->prev = hc->prev;
    h->nconns--;
}

/* The connector is done with this connection: free it. */
static void hc_stop(factory *f)
{
    struct hconn *hc = (struct hconn *)((char *)f - offsetof(struct hconn, f));
    struct hhost *h = hc->host;
    http__req *req = hc->req;
    hc_unlink(hc);
    if (h)
        h->busy++;
    http__reader_reset(&hc->rd);
    protocol_reason fail = hc->fail;
    int failed = hc->failed;
    free(hc);
    if (req) {
        req->hc = NULL;
        char msg[160], why[120];
        if (failed) {
            protocol_reason_format(&fail, why, sizeof why);
            snprintf(msg, sizeof msg, "cannot connect to %s:%d: %s", req->url.host, req->url.port,
                     why);
            http__req_done(req, -reason_code(&fail), msg, NULL);
        } else {
            http__req_done(req, -ECANCELED, "connection dropped: the reactor is shutting down",
                           NULL);
        }
    }
    if (h) {
        if (!h->pool->closing)
            pump(h);
        h->busy--;
    }
}

static const line_receiver_ops hc_ops = {
    .delimiter = "\n",
    .max_length = HTTP__MAX_LINE,
    .connection_made = hc_made,
    .line_received = http__reader_line,
    .raw_data_received = http__reader_raw,
    .line_length_exceeded = http__reader_too_long,
    .connection_lost = hc_lost,
};

static const factory_ops hc_factory_ops = {
    .build_protocol = hc_build,
    .stop_factory = hc_stop,
    .client_connection_failed = hc_connect_failed,
    .client_connection_lost = hc_conn_lost,
};

static tls_context *pool_tls(struct hpool *p, const char *ca, tls_context *user, char *err,
                             size_t n)
{
    for (struct hctx *c = p->ctxs; c; c = c->next)
        if (c->user == user && (c->ca_file == ca || (c->ca_file && ca && !strcmp(c->ca_file, ca))))
            return c->ctx;
    struct hctx *c = calloc(1, sizeof *c);
    if (!c || (ca && !(c->ca_file = strdup(ca)))) {
        free(c);
        errno = ENOMEM;
        return NULL;
    }
    c->user = user;
    c->ctx = user ? tls_context_ref(user) : tls_context_new_client(ca, NULL, err, n);
    if (!c->ctx) {
        int e = errno;
        free(c->ca_file);
        free(c);
        errno = e;
        return NULL;
    }
    c->next = p->ctxs;
    p->ctxs = c;
    return c->ctx;
}

/* A new connection for req. 0 or a negative errno (nothing made). */
static int hc_open(struct hhost *h, http__req *req)
{
    struct hconn *hc = calloc(1, sizeof *hc);
    if (!hc)
        return -ENOMEM;
    if (http__reader_init(&hc->rd, &hc_ops) < 0) {
        free(hc);
        return -EINVAL;
    }
    hc->rd.done = hc_done;
    factory_init(&hc->f, &hc_factory_ops, NULL);
    hc->host = h;
    hc->state = HC_CONNECTING;
    hc->req = req;
    req->hc = hc;
    hc->next = h->conns;
    if (h->conns)
        h->conns->prev = hc;
    h->conns = hc;
    h->nconns++;
    if (h->https) {
        if (!h->tls) {
            char err[200] = "";
            h->tls = pool_tls(h->pool, h->ca_file, h->user_tls, err, sizeof err);
            if (!h->tls) {
                snprintf(h->pool->tls_err, sizeof h->pool->tls_err, "%s", err);
                hc->c = NULL;
                errno = errno ? errno : ENOMEM;
                goto failed;
            }
        }
        hc->c = reactor_connect_tls(h->pool->r, h->name, h->port, &hc->f,
                                    req->o.connect_timeout, h->tls);
    } else {
        hc->c = reactor_connect_tcp(h->pool->r, h->name, h->port, &hc->f,
                                    req->o.connect_timeout);
    }
failed:
    if (!hc->c) {
        int err = -(errno ? errno : ENOMEM);
        req->hc = NULL;
        hc_unlink(hc);
        free(hc);
        return err;
    }
    return 0;
}

/* ---- Hosts and the queue ---------------------------------------------------------------- */

static void pump(struct hhost *h)
{
    h->busy++; /* a request's callback may come here again: h stays */
    while (h->qhead) {
        http__req *req = h->qhead;
        struct hconn *idle = NULL;
        for (struct hconn *hc = h->conns; hc; hc = hc->next)
            if (hc->state == HC_IDLE) {
                idle = hc;
                break;
            }
        if (!idle && h->nconns >= req->o.max_per_host)
            break;
        h->qhead = req->qnext;
        if (!h->qhead)
            h->qtail = NULL;
        req->qnext = NULL;
        req->host = NULL;
        if (idle) {
            hc_send(idle, req);
            continue;
        }
        h->pool->tls_err[0] = 0;
        int rc = hc_open(h, req);
        if (rc < 0) {
            char msg[300];
            if (h->pool->tls_err[0])
                snprintf(msg, sizeof msg, "no TLS context: %s", h->pool->tls_err);
            else
                snprintf(msg, sizeof msg, "cannot connect to %s:%d", req->url.host,
                         req->url.port);
            http__req_done(req, rc, msg, NULL);
        }
    }
    h->busy--;
}

static void pool_close_all(struct hpool *p);

static void pool_shutdown(reactor *r, void *data)
{
    (void)r;
    pool_close_all(data);
}

static struct hpool *pool_get(reactor *r)
{
    struct hpool *p = reactor__module_data(r, REACTOR__MOD_HTTP);
    if (p == (struct hpool *)&pool_gone)
        return NULL;
    if (p)
        return p;
    p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->r = r;
    /* Before the transports' own shutdown drops connects silently. */
    reactor_trigger *t = reactor_add_trigger(r, REACTOR_BEFORE_SHUTDOWN, pool_shutdown, p);
    if (!t || reactor__set_module_data(r, REACTOR__MOD_HTTP, p, pool_free) < 0) {
        if (t)
            reactor_remove_trigger(r, t);
        free(p);
        return NULL;
    }
    return p;
}

static void host_free(struct hhost *h)
{
    free(h->name);
    free(h->ca_file);
    free(h);
}

/* Frees the hosts nothing uses any more (no connection, no queue, no caller on the
 * stack): a program that visits many hosts does not keep one entry per host forever. */
static void sweep(struct hpool *p)
{
    for (struct hhost **hp = &p->hosts; *hp;) {
        struct hhost *h = *hp;
        if (!h->nconns && !h->qhead && !h->busy) {
            *hp = h->next;
            p->nhosts--;
            host_free(h);
        } else {
            hp = &h->next;
        }
    }
}

int http__pool_submit(http__req *req, int front)
{
    struct hpool *p = pool_get(req->r);
    if (!p)
        return reactor__module_data(req->r, REACTOR__MOD_HTTP) ? -ECANCELED : -ENOMEM;
    if (p->closing)
        return -ECANCELED;
    struct hhost *h = p->hosts;
    const char *ca = req->url.https ? req->o.ca_file : NULL;
    tls_context *ut = req->url.https ? req->o.tls : NULL;
    while (h && !(h->port == req->url.port && h->https == req->url.https &&
                  strcmp(h->name, req->url.host) == 0 && h->user_tls == ut &&
                  (h->ca_file == ca || (h->ca_file && ca && strcmp(h->ca_file, ca) == 0))))
        h = h->next;
    if (!h) {
        if (p->nhosts >= 8)
            sweep(p);
        h = calloc(1, sizeof *h);
        if (!h || !(h->name = strdup(req->url.host)) || (ca && !(h->ca_file = strdup(ca)))) {
            if (h)
                free(h->name);
            free(h);
            return -ENOMEM;
        }
        h->user_tls = ut; /* only compared: the pool's context list holds the reference */
        h->pool = p;
        h->port = req->url.port;
        h->https = req->url.https;
        h->next = p->hosts;
        p->hosts = h;
        p->nhosts++;
    }
    req->host = h;
    if (front) {
        req->qnext = h->qhead;
        h->qhead = req;
        if (!h->qtail)
            h->qtail = req;
    } else {
        req->qnext = NULL;
        if (h->qtail)
            h->qtail->qnext = req;
        else
            h->qhead = req;
        h->qtail = req;
    }
    pump(h);
    return 0;
}

void http__pool_detach(http__req *req)
{
    struct hhost *h = req->host;
    if (h) {
        http__req **pp = &h->qhead, *prev = NULL;
        while (*pp && *pp != req) {
            prev = *pp;
            pp = &(*pp)->qnext;
        }
        if (*pp) {
            *pp = req->qnext;
            if (h->qtail == req)
                h->qtail = prev;
        }
        req->host = NULL;
        req->qnext = NULL;
    }
    struct hconn *hc = req->hc;
    if (!hc)
        return;
    req->hc = NULL;
    hc->req = NULL;
    if (hc->state == HC_CONNECTING) {
        hc->state = HC_CLOSED;
        connector_free(hc->c); /* the factory stops: hc is freed */
        return;
    }
    hc->state = HC_CLOSED;
    http__reader_reset(&hc->rd);
    if (hc_transport(hc))
        transport_abort_connection(hc_transport(hc));
}

/* ---- Closing -------------------------------------------------------------------------- */

void http_pool_close_idle(reactor *r)
{
    struct hpool *p = r ? reactor__module_data(r, REACTOR__MOD_HTTP) : NULL;
    if (!p || p == (struct hpool *)&pool_gone)
        return;
    for (struct hhost *h = p->hosts; h; h = h->next)
        for (struct hconn *hc = h->conns; hc; hc = hc->next)
            if (hc->state == HC_IDLE) {
                hc->state = HC_CLOSED;
                transport_lose_connection(hc_transport(hc));
            }
}

size_t http_pool_connections(reactor *r, size_t *idle)
{
    struct hpool *p = r ? reactor__module_data(r, REACTOR__MOD_HTTP) : NULL;
    size_t n = 0, ni = 0;
    if (p && p != (struct hpool *)&pool_gone)
        for (struct hhost *h = p->hosts; h; h = h->next)
            for (struct hconn *hc = h->conns; hc; hc = hc->next) {
                n += hc->state != HC_CLOSED;
                ni += hc->state == HC_IDLE;
            }
    if (idle)
        *idle = ni;
    return n;
}

/* Fails every request and drops every connection: the reactor is going away. */
static void pool_close_all(struct hpool *p)
{
    p->closing = 1;
    for (struct hhost *h = p->hosts; h; h = h->next) {
        while (h->qhead) {
            http__req *req = h->qhead;
            http__pool_detach(req);
            http__req_done(req, -ECANCELED, "request dropped: the reactor is shutting down",
                           NULL);
        }
        /* A request's callback may add a request: it fails at once (closing). */
        struct hconn *hc = h->conns;
        while (hc) {
            struct hconn *next = hc->next;
            http__req *req = hc->req;
            if (req) {
                http__pool_detach(req); /* may free hc */
                http__req_done(req, -ECANCELED,
                               "request dropped: the reactor is shutting down", NULL);
                next = h->conns; /* the list may have changed: start over */
            } else if (hc->state == HC_IDLE) {
                hc->state = HC_CLOSED;
                transport_abort_connection(hc_transport(hc));
            }
            hc = next;
        }
    }
}

static void pool_free(void *data)
{
    struct hpool *p = data;
    pool_close_all(p);
    reactor__set_module_data(p->r, REACTOR__MOD_HTTP, &pool_gone, NULL);
    while (p->hosts) {
        struct hhost *h = p->hosts;
        p->hosts = h->next;
        /* Connections still open close with the transports (next module): orphan them,
         * their stop_factory only frees them. */
        for (struct hconn *hc = h->conns; hc; hc = hc->next)
            hc->host = NULL;
        host_free(h);
    }
    while (p->ctxs) {
        struct hctx *c = p->ctxs;
        p->ctxs = c->next;
        tls_context_unref(c->ctx);
        free(c->ca_file);
        free(c);
    }
    free(p);
}
