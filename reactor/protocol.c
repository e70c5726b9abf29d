/* Protocol and factory helpers: initialisers, start/stop counting, reasons as text. */
#include <twistc/protocol.h>

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h> /* strcasecmp */

#include "reactor/transport_internal.h"

void protocol_init(protocol *p, const protocol_ops *ops)
{
    p->ops = ops;
    p->transport = NULL;
}

void factory_init(factory *f, const factory_ops *ops, void *data)
{
    f->ops = ops;
    f->data = data;
}

/* The users of each factory on this reactor, in a small array: a program has a handful
 * of factories, and this runs only when a listener or connector starts or stops. */
static struct factory__use *find_use(struct transport_mod *m, const factory *f)
{
    for (size_t i = 0; i < m->nuses; i++)
        if (m->uses[i].f == f)
            return &m->uses[i];
    return NULL;
}

int factory__do_start(struct transport_mod *m, factory *f)
{
    struct factory__use *u = find_use(m, f);
    if (!u) {
        if (m->nuses == m->capuses) {
            size_t cap = m->capuses ? 2 * m->capuses : 4;
            struct factory__use *v = realloc(m->uses, cap * sizeof *v);
            if (!v)
                return -ENOMEM;
            m->uses = v;
            m->capuses = cap;
        }
        u = &m->uses[m->nuses++];
        u->f = f;
        u->n = 0;
    }
    if (u->n++ == 0 && f->ops->start_factory)
        f->ops->start_factory(f);
    return 0;
}

void factory__do_stop(struct transport_mod *m, factory *f)
{
    struct factory__use *u = find_use(m, f);
    if (!u || u->n == 0)
        return;
    if (--u->n > 0)
        return;
    *u = m->uses[--m->nuses]; /* forget it before the hook: it may free the factory */
    if (f->ops->stop_factory)
        f->ops->stop_factory(f);
}

int protocol_reason_clean(const protocol_reason *reason)
{
    return reason && reason->kind == PROTOCOL_DONE;
}

/* One format for every reason (docs/errors.md):
 *     MESSAGE[: DETAIL][ (CAUSE)]
 * CAUSE is "STRERROR, errno N", or just "errno N" when strerror says what MESSAGE says
 * ("connection refused (errno 111)"), or "GAI_STRERROR, getaddrinfo N" for a lookup. */
int protocol_reason_format(const protocol_reason *reason, char *buf, size_t n)
{
    if (!reason)
        return snprintf(buf, n, "(no reason)");
    char cause[160] = "";
    if (reason->gai_err) {
        snprintf(cause, sizeof cause, " (%s, getaddrinfo %d)", gai_strerror(reason->gai_err),
                 reason->gai_err);
    } else if (reason->err) {
        const char *text = strerror(reason->err);
        if (strcasecmp(text, reason->message) == 0)
            snprintf(cause, sizeof cause, " (errno %d)", reason->err);
        else
            snprintf(cause, sizeof cause, " (%s, errno %d)", text, reason->err);
    }
    if (reason->detail)
        return snprintf(buf, n, "%s: %s%s", reason->message, reason->detail, cause);
    return snprintf(buf, n, "%s%s", reason->message, cause);
}
