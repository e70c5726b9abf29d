/* The in-memory transport: a struct transport with no socket. transport.c knows the
 * T_MEMORY flag (writes are only recorded; lose/abort only set flags). */
#include <twistc/memory_transport.h>

#include "reactor/transport_internal.h"

#include <errno.h>
#include <stdlib.h>

transport *memory_transport_new(void) { return transport__new_memory(NULL); }

void memory_transport_free(transport *t) { transport__free_memory(t); }

int memory_transport_connect(transport *t, protocol *p)
{
    if (!t || !p || !p->ops)
        return -EINVAL;
    if (t->flags & T_MADE)
        return -EBUSY;
    t->proto = p;
    t->flags |= T_MADE;
    p->transport = t;
    if (p->ops->connection_made)
        p->ops->connection_made(p);
    return 0;
}

int memory_transport_receive(transport *t, const void *data, size_t len)
{
    if (!t || !t->proto || (!data && len))
        return -EINVAL;
    if ((t->flags & T_LOST_CALLED) || len == 0)
        return 0;
    return t->proto->ops->data_received(t->proto, data, len);
}

void memory_transport_receive_eof(transport *t)
{
    if (!t || !t->proto || (t->flags & (T_LOST_CALLED | T_READ_EOF)))
        return;
    t->flags |= T_READ_EOF;
    if (t->proto->ops->read_connection_lost)
        t->proto->ops->read_connection_lost(t->proto);
    else
        transport_lose_connection(t);
}

const char *memory_transport_value(const transport *t, size_t *len)
{
    if (len)
        *len = t ? t->out_len : 0;
    return t && t->out ? t->out : "";
}

void memory_transport_clear(transport *t)
{
    if (t)
        t->out_len = t->out_off = 0;
}

void memory_transport_lose(transport *t, protocol_reason_kind kind, int err)
{
    if (t)
        transport__memory_lost(t, kind, err);
}

int memory_transport_finish(transport *t)
{
    if (!t || (t->flags & T_LOST_CALLED))
        return 0;
    if (t->flags & T_ABORTING)
        transport__memory_lost(t, PROTOCOL_ABORTED, 0);
    else if (t->flags & T_DISCONNECTING)
        transport__memory_lost(t, PROTOCOL_DONE, 0);
    else
        return 0;
    return 1;
}

int memory_transport_aborted(const transport *t) { return t && (t->flags & T_ABORTING) != 0; }
int memory_transport_write_closed(const transport *t) { return t && (t->flags & T_SHUT_REQ) != 0; }
int memory_transport_lost(const transport *t) { return t && (t->flags & T_LOST_CALLED) != 0; }
