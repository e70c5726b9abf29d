/* Protocol and factory helpers: initialisers, start/stop counting, reasons as text. */
#include <twistc/protocol.h>

#include <netdb.h>
#include <stdio.h>
#include <string.h>

void protocol_init(protocol *p, const protocol_ops *ops)
{
    p->ops = ops;
    p->transport = NULL;
}

void factory_init(factory *f, const factory_ops *ops, void *data)
{
    f->ops = ops;
    f->data = data;
    f->num_users = 0;
}

void factory_do_start(factory *f)
{
    if (f->num_users++ == 0 && f->ops->start_factory)
        f->ops->start_factory(f);
}

void factory_do_stop(factory *f)
{
    if (f->num_users == 0)
        return;
    if (--f->num_users == 0 && f->ops->stop_factory)
        f->ops->stop_factory(f);
}

int protocol_reason_clean(const protocol_reason *reason)
{
    return reason && reason->kind == PROTOCOL_DONE;
}

int protocol_reason_format(const protocol_reason *reason, char *buf, size_t n)
{
    if (!reason)
        return snprintf(buf, n, "(no reason)");
    if (reason->gai_err)
        return snprintf(buf, n, "%s: %s (%s)", reason->message,
                        gai_strerror(reason->gai_err), protocol_reason_name(reason->kind));
    if (reason->err)
        return snprintf(buf, n, "%s: %s (errno %d)", reason->message, strerror(reason->err),
                        reason->err);
    return snprintf(buf, n, "%s", reason->message);
}
