/* The notification client (notif_client.h).
 *
 * A client's life: the user holds one reference, the connection one (connection_made to
 * connection_lost), and the factory one while a connector uses it (start_factory to
 * stop_factory: the connector touches the factory until then, so the memory, which
 * embeds the factory, must live that long). The last one frees it. */
#include "apps/notif/notif_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <twistc/line_receiver.h>
#include <twistc/line_requests.h>
#include <twistc/tls.h>
#include <twistc/transport.h>

#include "apps/notif/notif_server.h"

enum { REQ_RANDOM, REQ_CLASSIFIED };
enum { ST_NEW, ST_CONNECTING, ST_CONNECTED, ST_CLOSED };

struct notif_client {
    line_receiver lr; /* first: &c->lr.base is the protocol */
    factory f;        /* used by notif_client_connect */
    connector *conn;
    deferred *connect_d;
    reactor *r;
    unsigned refs;
    int state;
    int user_freed;
    line_requests rq; /* pending requests: the FIFO of Deferreds */
    deferred **w; /* wait_notif Deferreds, a ring */
    size_t wh, wn, wcap;
    deferred *quit_d;
    notif_available_fn on_random, on_classified;
    void *random_data, *classified_data;
    unsigned long notifs, dropped;
    char *server_error; /* an "error:" line that answered no request (server full) */
    FILE *trace;
};

/* ---- Rings ------------------------------------------------------------------------- */

static int grow_ring(void **items, size_t elem, size_t *head, size_t n, size_t *cap)
{
    if (n < *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 8;
    char *b = malloc(nc * elem);
    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        memcpy(b + i * elem, (char *)*items + ((*head + i) % *cap) * elem, elem);
    free(*items);
    *items = b;
    *head = 0;
    *cap = nc;
    return 0;
}

/* ---- Life cycle ---------------------------------------------------------------------- */

static void client_release(notif_client *c)
{
    if (--c->refs)
        return;
    free(c->w);
    free(c->server_error);
    free(c);
}

static deferred *failed(int code, const char *what)
{
    return deferred_fail(deferred_failure_new(code, "%s", what));
}

/* ---- Tracing (the "mechanism at the core" slide) ------------------------------------- */

static void trace_text(notif_client *c, const char *fmt, const char *text, size_t len)
{
    fprintf(c->trace, "iter=%llu notif-client ", (unsigned long long)reactor_iterations(c->r));
    fprintf(c->trace, fmt, (int)(len > 80 ? 80 : len), text);
    fputc('\n', c->trace);
}

static void set_error(notif_client *c, const char *text, size_t len)
{
    if (c->server_error)
        return;
    c->server_error = malloc(len + 1);
    if (c->server_error) {
        memcpy(c->server_error, text, len);
        c->server_error[len] = '\0';
    }
}

/* ---- Incoming lines ------------------------------------------------------------------ */

static void dispatch_notif(notif_client *c, int kind)
{
    static const char *const names[] = {"random", "classified"};
    c->notifs++;
    if (c->wn) {
        deferred *d = c->w[c->wh];
        c->wh = (c->wh + 1) % c->wcap;
        c->wn--;
        if (c->trace)
            trace_text(c, "notif=%.*s -> fires the wait_notif Deferred", names[kind],
                       strlen(names[kind]));
        deferred_callback(d, deferred_str(names[kind], NULL));
        deferred_unref(d);
        return;
    }
    notif_available_fn fn = kind == REQ_RANDOM ? c->on_random : c->on_classified;
    void *data = kind == REQ_RANDOM ? c->random_data : c->classified_data;
    if (c->trace)
        trace_text(c, "notif=%.*s -> dispatch to the *_available callback", names[kind],
                   strlen(names[kind]));
    if (fn)
        fn(c, data);
    else
        c->dropped++;
}

static deferred_result parse_random(const char *line, size_t len)
{
    int64_t v = 0;
    if (len == 0 || len > 18)
        goto bad;
    for (size_t i = 0; i < len; i++) {
        if (line[i] < '0' || line[i] > '9')
            goto bad;
        v = v * 10 + (line[i] - '0');
    }
    return deferred_int(v);
bad:
    return deferred_error(NOTIF_EBADANSWER, "not a number in answer to random?: \"%.*s\"",
                          (int)(len > 60 ? 60 : len), line);
}

/* line_requests' ops: notifications are never answers; an "error:" answer fails its
 * request; the other lines answer nothing (no request pending). */
static int rq_is_answer(line_requests *rq, const char *line, size_t len)
{
    return !(len >= 7 && memcmp(line, "notif: ", 7) == 0);
}

static deferred_result rq_answer(line_requests *rq, int kind, const char *line, size_t len)
{
    notif_client *c = rq->data;
    deferred_result r;
    if (len >= 6 && memcmp(line, "error:", 6) == 0)
        r = deferred_error(NOTIF_ESERVER, "%.*s", (int)len, line);
    else if (kind == REQ_RANDOM)
        r = parse_random(line, len);
    else
        r = line_requests_answer_copy(line, len); /* NUL bytes kept: answer_len */
    if (c->trace)
        trace_text(c, "answer=\"%.*s\" -> fires the oldest pending Deferred", line, len);
    return r;
}

static int rq_other(line_requests *rq, const char *line, size_t len)
{
    notif_client *c = rq->data;
    if (len >= 7 && memcmp(line, "notif: ", 7) == 0) {
        if (len == 13 && memcmp(line + 7, "random", 6) == 0)
            dispatch_notif(c, REQ_RANDOM);
        else if (len == 17 && memcmp(line + 7, "classified", 10) == 0)
            dispatch_notif(c, REQ_CLASSIFIED);
        /* another kind of notification: a newer server; ignore it */
        return 0;
    }
    /* nothing was asked: "error: server full" on connect, or a stray line */
    if (len >= 6 && memcmp(line, "error:", 6) == 0)
        set_error(c, line, len);
    if (c->trace)
        trace_text(c, "unexpected line=\"%.*s\" (no request pending)", line, len);
    return 0;
}

static const line_requests_ops client_rq_ops = {
    .is_answer = rq_is_answer,
    .answer = rq_answer,
    .other_line = rq_other,
};

static int client_line(line_receiver *lr, const char *line, size_t len)
{
    notif_client *c = (notif_client *)lr;
    if (len && line[len - 1] == '\r')
        len--;
    if (len == 0)
        return 0;
    return line_requests_line_received(&c->rq, line, len); /* the user's callbacks run here */
}

static int client_exceeded(line_receiver *lr, const char *data, size_t len)
{
    static const char msg[] = "answer line too long";
    notif_client *c = (notif_client *)lr;
    set_error(c, msg, sizeof msg - 1);
    transport_lose_connection(lr->base.transport);
    return 0;
}

static const line_receiver_ops client_lr_ops = {
    .delimiter = "\n",
    .max_length = NOTIF_MAX_LINE + 1, /* 1024 bytes and a CR */
    .line_received = client_line,
    .line_length_exceeded = client_exceeded,
};

/* ---- Protocol glue --------------------------------------------------------------------- */

static void client_made(protocol *p)
{
    notif_client *c = (notif_client *)p;
    c->state = ST_CONNECTED;
    c->refs++; /* the connection's */
    c->r = transport_reactor(p->transport);
    deferred *d = c->connect_d;
    c->connect_d = NULL;
    if (d) {
        deferred_set_canceller(d, NULL, NULL, NULL);
        deferred_callback(d, deferred_ptr(c, NULL)); /* the user's reference is handed over */
        deferred_unref(d);
    }
}

static int client_data(protocol *p, const char *data, size_t len)
{
    notif_client *c = (notif_client *)p;
    c->trace = c->r ? reactor_trace_file(c->r) : NULL;
    if (c->trace)
        fprintf(c->trace,
                "iter=%llu notif-client data_received bytes=%zu -> LineReceiver cuts lines\n",
                (unsigned long long)reactor_iterations(c->r), len);
    return line_receiver_data_received(&c->lr, data, len);
}

static deferred_failure *lost_failure(notif_client *c, const protocol_reason *reason)
{
    if (c->server_error)
        return deferred_failure_new(NOTIF_ESERVER, "%s", c->server_error);
    char why[160];
    protocol_reason_format(reason, why, sizeof why);
    if (reason->kind == PROTOCOL_DONE)
        return deferred_failure_new(NOTIF_ECLOSED, "the connection was closed (%s)", why);
    return deferred_failure_new(reason->err ? reason->err : ECONNRESET, "connection lost: %s",
                                why);
}

static void client_lost(protocol *p, const protocol_reason *reason)
{
    notif_client *c = (notif_client *)p;
    c->state = ST_CLOSED;
    line_receiver_clear_line_buffer(&c->lr);
    deferred_failure *f = lost_failure(c, reason);
    /* Taken off before firing: the user's errbacks may call us (they get ENOTCONN now). */
    line_requests_fail_all(&c->rq, deferred_failure_ref(f));
    while (c->wn) {
        deferred *d = c->w[c->wh];
        c->wh = (c->wh + 1) % c->wcap;
        c->wn--;
        deferred_errback(d, deferred_failure_ref(f));
        deferred_unref(d);
    }
    deferred *q = c->quit_d;
    c->quit_d = NULL;
    if (q) {
        if (reason->kind == PROTOCOL_DONE && !c->server_error)
            deferred_callback(q, deferred_none());
        else
            deferred_errback(q, deferred_failure_ref(f));
        deferred_unref(q);
    }
    deferred_failure_unref(f);
    client_release(c); /* the connection's reference */
}

static const protocol_ops client_ops = {
    .connection_made = client_made,
    .data_received = client_data,
    .connection_lost = client_lost,
};

notif_client *notif_client_new(void)
{
    notif_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    line_receiver_init(&c->lr, &client_lr_ops);
    c->lr.base.ops = &client_ops; /* client_data feeds the LineReceiver itself */
    line_requests_init(&c->rq, &c->lr, &client_rq_ops, c);
    c->refs = 1; /* the user's */
    c->state = ST_NEW;
    return c;
}

protocol *notif_client_protocol(notif_client *c) { return c ? &c->lr.base : NULL; }

void notif_client_free(notif_client *c)
{
    if (!c || c->user_freed)
        return;
    c->user_freed = 1;
    c->on_random = c->on_classified = NULL;
    if (c->state == ST_CONNECTED)
        transport_lose_connection(c->lr.base.transport);
    client_release(c);
}

/* ---- Connecting ------------------------------------------------------------------------- */

static protocol *cf_build(factory *f, const struct sockaddr *addr, socklen_t addrlen)
{
    notif_client *c = f->data;
    return c->state == ST_CONNECTING ? &c->lr.base : NULL;
}

static void cf_start(factory *f) { ((notif_client *)f->data)->refs++; }

/* Fails the connect Deferred; returns 1 if it was pending (the caller then drops the
 * user's reference: the user never got the client). The factory's reference is still
 * held whenever this runs, so the client outlives the call. */
static int fail_connect(notif_client *c, deferred_failure *f)
{
    deferred *d = c->connect_d;
    c->connect_d = NULL;
    c->state = ST_CLOSED;
    if (!d) {
        deferred_failure_unref(f);
        return 0;
    }
    deferred_errback(d, f);
    deferred_unref(d);
    return 1;
}

static void cf_stop(factory *f)
{
    notif_client *c = f->data;
    if (c->connect_d && /* the reactor went away while connecting */
        fail_connect(c, deferred_failure_new(ECANCELED, "reactor shut down while connecting")))
        c->refs--; /* the user's; the factory's is still held */
    client_release(c); /* the factory's reference */
}

static void cf_failed(factory *f, connector *conn, const protocol_reason *reason)
{
    notif_client *c = f->data;
    char why[160];
    protocol_reason_format(reason, why, sizeof why);
    int code = reason->err ? reason->err : ECONNREFUSED;
    if (reason->kind == PROTOCOL_CONNECT_CANCELLED)
        code = ECANCELED;
    else if (reason->kind == PROTOCOL_CONNECT_TIMEOUT)
        code = ETIMEDOUT;
    connector_free(conn); /* inside its callback: freed once the callback returns */
    c->conn = NULL;
    if (fail_connect(c, deferred_failure_new(code, "%s", why)))
        client_release(c); /* the user's; cf_stop drops the factory's after this */
}

static void cf_lost(factory *f, connector *conn, const protocol_reason *reason)
{
    notif_client *c = f->data;
    connector_free(conn);
    c->conn = NULL;
}

static const factory_ops client_factory_ops = {
    .build_protocol = cf_build,
    .start_factory = cf_start,
    .stop_factory = cf_stop,
    .client_connection_failed = cf_failed,
    .client_connection_lost = cf_lost,
};

static void connect_cancel(deferred *d, void *arg)
{
    notif_client *c = arg;
    if (c->conn && c->state == ST_CONNECTING)
        connector_stop_connecting(c->conn); /* cf_failed(CANCELLED) follows, from the loop */
}

deferred *notif_client_connect(reactor *r, const char *host, int port, double timeout)
{
    return notif_client_connect_tls(r, host, port, timeout, NULL);
}

deferred *notif_client_connect_tls(reactor *r, const char *host, int port, double timeout,
                                   tls_context *ctx)
{
    if (!r || !host || port <= 0 || port > 65535) {
        errno = EINVAL;
        return NULL;
    }
    notif_client *c = notif_client_new();
    if (!c)
        return NULL;
    factory_init(&c->f, &client_factory_ops, c);
    c->r = r;
    c->connect_d = deferred_new_cancellable(connect_cancel, c);
    if (!c->connect_d) {
        client_release(c);
        errno = ENOMEM;
        return NULL;
    }
    c->state = ST_CONNECTING;
    c->conn = ctx ? reactor_connect_tls(r, host, port, &c->f, timeout, ctx)
                  : reactor_connect_tcp(r, host, port, &c->f, timeout);
    if (!c->conn) {
        int e = errno;
        deferred_unref(c->connect_d);
        c->connect_d = NULL;
        client_release(c);
        errno = e;
        return NULL;
    }
    return deferred_ref(c->connect_d);
}

notif_client *notif_client_from_result(const deferred_result *r)
{
    return r && r->kind == DEFERRED_PTR ? r->u.p : NULL;
}

/* ---- Requests ------------------------------------------------------------------------------ */

static int send_line(notif_client *c, const char *line, size_t len)
{
    if (c->state != ST_CONNECTED || transport_disconnecting(c->lr.base.transport))
        return -ENOTCONN;
    if (c->r && (c->trace = reactor_trace_file(c->r)) != NULL)
        trace_text(c, "send=\"%.*s\" (transport_write: sent at the end of this iteration)",
                   line, len - 1);
    return transport_write(c->lr.base.transport, line, len);
}

static deferred *request(notif_client *c, int kind, const char *line, size_t len)
{
    if (!c)
        return failed(EINVAL, "no client");
    if (c->state != ST_CONNECTED || transport_disconnecting(c->lr.base.transport))
        return failed(ENOTCONN, "not connected to the notification server");
    if (c->r && (c->trace = reactor_trace_file(c->r)) != NULL)
        trace_text(c, "send=\"%.*s\" (transport_write: sent at the end of this iteration)",
                   line, len);
    return line_requests_send(&c->rq, line, len, kind); /* "\n" added: the delimiter */
}

deferred *notif_random(notif_client *c) { return request(c, REQ_RANDOM, "random?", 7); }

deferred *notif_classified(notif_client *c)
{
    return request(c, REQ_CLASSIFIED, "classified?", 11);
}

int notif_notify(notif_client *c) { return c ? send_line(c, "notify\n", 7) : -EINVAL; }
int notif_stop_notify(notif_client *c) { return c ? send_line(c, "stop\n", 5) : -EINVAL; }

deferred *notif_wait_notif(notif_client *c)
{
    if (!c)
        return failed(EINVAL, "no client");
    if (c->state != ST_CONNECTED || transport_disconnecting(c->lr.base.transport))
        return failed(ENOTCONN, "not connected to the notification server");
    if (grow_ring((void **)&c->w, sizeof *c->w, &c->wh, c->wn, &c->wcap) < 0)
        return failed(ENOMEM, "out of memory");
    deferred *d = deferred_new();
    if (!d)
        return failed(ENOMEM, "out of memory");
    c->w[(c->wh + c->wn) % c->wcap] = d;
    c->wn++;
    return deferred_ref(d);
}

deferred *notif_quit(notif_client *c)
{
    if (!c)
        return failed(EINVAL, "no client");
    if (c->quit_d)
        return deferred_ref(c->quit_d);
    if (c->state != ST_CONNECTED || transport_disconnecting(c->lr.base.transport))
        return failed(ENOTCONN, "not connected to the notification server");
    deferred *d = deferred_new();
    if (!d)
        return failed(ENOMEM, "out of memory");
    int rc = send_line(c, "quit\n", 5);
    if (rc < 0) {
        deferred_errback_new(d, -rc, "cannot send quit");
        return d;
    }
    c->quit_d = d;
    return deferred_ref(d);
}

void notif_set_random_available(notif_client *c, notif_available_fn fn, void *data)
{
    if (c) {
        c->on_random = fn;
        c->random_data = data;
    }
}

void notif_set_classified_available(notif_client *c, notif_available_fn fn, void *data)
{
    if (c) {
        c->on_classified = fn;
        c->classified_data = data;
    }
}

int notif_client_connected(const notif_client *c) { return c && c->state == ST_CONNECTED; }
size_t notif_client_pending(const notif_client *c)
{
    return c ? line_requests_pending(&c->rq) : 0;
}
unsigned long notif_client_notifications(const notif_client *c) { return c ? c->notifs : 0; }
unsigned long notif_client_dropped_notifications(const notif_client *c)
{
    return c ? c->dropped : 0;
}
