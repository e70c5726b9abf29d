/* reactor_connect_protocol (Twisted's connectProtocol) and failures made from reasons.
 *
 * One record per attempt holds a single-use client factory, the connector and the
 * Deferred. The factory builds a small wrapper protocol, not the user's: its
 * connection_made hands the transport over to the user's protocol (from then on the
 * transport delivers straight to it, no forwarding), runs the user's connection_made,
 * then fires the Deferred, as Twisted's _WrappingProtocol does.
 *
 * The connector touches the factory until its stop_factory (after the last failure, or
 * after the connection's client_connection_lost), so the record is freed there. When the
 * reactor shuts down or is freed with the attempt pending, the connector is dropped
 * without a failure callback and only stop_factory comes: the Deferred is failed there,
 * and the record, which the connector may still point at, waits for reactor_free (a
 * per-reactor list freed after the transports). */
#include <twistc/deferred_connect.h>

#include <errno.h>
#include <stdlib.h>

#include <twistc/transport.h>

#include "deferred/deferred_internal.h"
#include "reactor/module_internal.h"
#include "reactor/transport_internal.h"

struct cp {
    factory f;       /* first: the factory's data is the record itself */
    protocol wrap;   /* what the connector builds */
    protocol *user;
    connector *c;
    deferred *d;     /* our reference while the Deferred has not fired */
    struct cp **head; /* the per-reactor list this record is on */
    struct cp *prev, *next;
};

/* ---- Failures from reasons ------------------------------------------------------ */

deferred_failure *deferred_failure_from_reason_at(const char *file, int line,
                                                  const protocol_reason *reason)
{
    if (!reason)
        return deferred_failure_new_at(file, line, EINVAL, NULL, "no reason given");
    char why[256];
    protocol_reason_format(reason, why, sizeof why);
    int code = reason->err;
    if (!code) {
        switch (reason->kind) {
        case PROTOCOL_DONE: code = DEFERRED_ECONNDONE; break;
        case PROTOCOL_CONNECT_DNS: code = DEFERRED_EDNS; break;
        case PROTOCOL_CONNECT_CANCELLED: code = ECANCELED; break;
        case PROTOCOL_CONNECT_TIMEOUT: code = ETIMEDOUT; break;
        default: code = ECONNABORTED; break;
        }
    }
    deferred_failure *f = deferred_failure_new_at(file, line, code, NULL, "%s", why);
    if (f != &deferred__enomem_failure) /* the shared out-of-memory failure stays as is */
        f->reason = (int)reason->kind + 1;
    return f;
}

int deferred_failure_reason_kind(const deferred_failure *f)
{
    for (; f; f = f->cause)
        if (f->reason)
            return f->reason - 1;
    return -1;
}

/* ---- The per-reactor list of records ----------------------------------------------- */

static void cp_unlink(struct cp *cp)
{
    if (!cp->head)
        return;
    if (cp->prev)
        cp->prev->next = cp->next;
    else
        *cp->head = cp->next;
    if (cp->next)
        cp->next->prev = cp->prev;
    cp->head = NULL;
}

/* The records still alive when the reactor is freed: their connectors are gone (the
 * transports' state is freed first), so only the memory is left. */
static void list_free(void *p)
{
    struct cp **head = p;
    while (*head) {
        struct cp *cp = *head;
        cp_unlink(cp);
        free(cp);
    }
    free(head);
}

/* ---- Firing -------------------------------------------------------------------------- */

static void fail(struct cp *cp, const protocol_reason *reason)
{
    deferred *d = cp->d;
    cp->d = NULL;
    if (!d)
        return;
    deferred_set_canceller(d, NULL, NULL, NULL);
    deferred_errback(d, deferred_failure_from_reason(reason));
    deferred_unref(d);
}

static void wrap_made(protocol *w)
{
    struct cp *cp = (struct cp *)((char *)w - offsetof(struct cp, wrap));
    protocol *p = cp->user;
    transport__set_protocol(w->transport, p); /* the wrapper is out of the path now */
    if (p->ops->connection_made)
        p->ops->connection_made(p);
    deferred *d = cp->d;
    cp->d = NULL;
    if (d) {
        deferred_set_canceller(d, NULL, NULL, NULL);
        deferred_callback(d, deferred_ptr(p, NULL));
        deferred_unref(d);
    }
}

/* Never called: the transport delivers to the user's protocol from connection_made on. */
static int wrap_data(protocol *w, const char *data, size_t len)
{
    (void)w, (void)data, (void)len;
    return -EPROTO;
}

static const protocol_ops wrap_ops = {.connection_made = wrap_made, .data_received = wrap_data};

static protocol *cp_build(factory *f, const struct sockaddr *addr, socklen_t len)
{
    (void)addr, (void)len;
    struct cp *cp = (struct cp *)f;
    return cp->d ? &cp->wrap : NULL;
}

static void cp_failed(factory *f, connector *c, const protocol_reason *reason)
{
    struct cp *cp = (struct cp *)f;
    connector_free(c); /* inside its callback: freed when it returns, then cp_stop */
    cp->c = NULL;
    fail(cp, reason);
}

static void cp_lost(factory *f, connector *c, const protocol_reason *reason)
{
    (void)reason;
    struct cp *cp = (struct cp *)f;
    connector_free(c);
    cp->c = NULL;
}

static void cp_stop(factory *f)
{
    struct cp *cp = (struct cp *)f;
    if (cp->d) { /* shutdown or reactor_free while connecting: the connector stays */
        protocol_reason reason = {PROTOCOL_CONNECT_CANCELLED, 0, 0,
                                  "the reactor stopped while connecting", NULL};
        fail(cp, &reason);
        return; /* freed by list_free */
    }
    cp_unlink(cp);
    free(cp);
}

static const factory_ops cp_factory_ops = {
    .build_protocol = cp_build,
    .stop_factory = cp_stop,
    .client_connection_failed = cp_failed,
    .client_connection_lost = cp_lost,
};

static void cp_cancel(deferred *d, void *arg)
{
    struct cp *cp = arg;
    (void)d;
    deferred *mine = cp->d;
    cp->d = NULL; /* cp_stop frees the record now */
    connector_free(cp->c); /* no callback; stop_factory runs inside this call */
    protocol_reason reason = {PROTOCOL_CONNECT_CANCELLED, 0, 0, "connection attempt cancelled", NULL};
    deferred_errback(mine, deferred_failure_from_reason(&reason));
    deferred_unref(mine);
}

deferred *reactor_connect_protocol(reactor *r, const char *host, int port, protocol *p,
                                   double timeout)
{
    return reactor_connect_protocol_tls(r, host, port, p, timeout, NULL);
}

deferred *reactor_connect_protocol_tls(reactor *r, const char *host, int port, protocol *p,
                                       double timeout, tls_context *ctx)
{
    if (!r || !host || !p || !p->ops || !p->ops->data_received || port <= 0 || port > 65535) {
        errno = EINVAL;
        return NULL;
    }
    struct cp **head = reactor__module_data(r, REACTOR__MOD_CONNECT);
    if (!head) {
        head = calloc(1, sizeof *head);
        if (!head || reactor__set_module_data(r, REACTOR__MOD_CONNECT, head, list_free) < 0) {
            free(head);
            errno = ENOMEM;
            return NULL;
        }
    }
    struct cp *cp = calloc(1, sizeof *cp);
    if (!cp) {
        errno = ENOMEM;
        return NULL;
    }
    factory_init(&cp->f, &cp_factory_ops, cp);
    protocol_init(&cp->wrap, &wrap_ops);
    cp->user = p;
    cp->d = deferred_new_cancellable(cp_cancel, cp);
    if (!cp->d) {
        free(cp);
        errno = ENOMEM;
        return NULL;
    }
    cp->head = head;
    cp->next = *head;
    if (*head)
        (*head)->prev = cp;
    *head = cp;
    cp->c = ctx ? reactor_connect_tls(r, host, port, &cp->f, timeout, ctx)
                : reactor_connect_tcp(r, host, port, &cp->f, timeout);
    if (!cp->c) {
        int e = errno;
        deferred_set_canceller(cp->d, NULL, NULL, NULL);
        deferred_unref(cp->d);
        cp_unlink(cp);
        free(cp);
        errno = e ? e : ENOMEM;
        return NULL;
    }
    return deferred_ref(cp->d);
}
