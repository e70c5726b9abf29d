/* The hiredis adapter (redis.h): hiredis owns the socket, the buffers and the parser;
 * the reactor only tells it when the socket is ready. hiredis calls our five hooks
 * (add/del read, add/del write, cleanup), which only change what the reactor watches.
 *
 * The one trap: hiredis may free the context (and so call our cleanup) from inside
 * redisAsyncHandleRead, on EOF or a protocol error. The dispatcher must then not call
 * redisAsyncHandleWrite on the freed context: cleanup clears a flag the dispatcher
 * holds on its stack. */
#include <twistc/redis.h>

#include <errno.h>
#include <stdlib.h>

#include <hiredis/async.h>

struct redis_ev {
    redisAsyncContext *ac;
    reactor *r;
    int fd;
    unsigned events; /* what hiredis asked for: REACTOR_READABLE | REACTOR_WRITABLE */
    int *alive;      /* set while dispatching: cleanup writes 0 there */
};

static void ev_update(struct redis_ev *e, unsigned events)
{
    if (events == e->events)
        return;
    e->events = events;
    /* The fd stays registered with 0 events: cheaper than unwatch/watch at each reply. */
    reactor_watch_events(e->r, e->fd, events);
}

static void add_read(void *p)
{
    struct redis_ev *e = p;
    ev_update(e, e->events | REACTOR_READABLE);
}

static void del_read(void *p)
{
    struct redis_ev *e = p;
    ev_update(e, e->events & ~(unsigned)REACTOR_READABLE);
}

static void add_write(void *p)
{
    struct redis_ev *e = p;
    ev_update(e, e->events | REACTOR_WRITABLE);
}

static void del_write(void *p)
{
    struct redis_ev *e = p;
    ev_update(e, e->events & ~(unsigned)REACTOR_WRITABLE);
}

/* Called by hiredis right before it closes the socket and frees the context. */
static void cleanup(void *p)
{
    struct redis_ev *e = p;
    reactor_unwatch(e->r, e->fd); /* before the close: the fd number may come back */
    if (e->alive)
        *e->alive = 0;
    e->ac->ev.data = NULL;
    free(e);
}

static void on_io(reactor *r, int fd, unsigned events, void *data)
{
    struct redis_ev *e = data;
    redisAsyncContext *ac = e->ac;
    int alive = 1;
    e->alive = &alive;
    /* An error or hang-up: let hiredis find out by reading (or, while connecting, by
     * its connect check on the write side). */
    int err = (events & REACTOR_ERROR) != 0;
    int want_write = (e->events & REACTOR_WRITABLE) != 0;
    if ((events & REACTOR_READABLE) || (err && !want_write))
        redisAsyncHandleRead(ac);
    if (alive && ((events & REACTOR_WRITABLE) || (err && want_write)))
        redisAsyncHandleWrite(ac);
    if (alive)
        e->alive = NULL;
}

int redis_attach(redisAsyncContext *ac, reactor *r)
{
    if (!ac || !r || ac->c.fd < 0)
        return -EINVAL;
    if (ac->ev.data)
        return -EEXIST;
    struct redis_ev *e = calloc(1, sizeof *e);
    if (!e)
        return -ENOMEM;
    e->ac = ac;
    e->r = r;
    e->fd = ac->c.fd;
    /* Writable tells us the non-blocking connect finished (hiredis checks SO_ERROR);
     * readable is wanted from the start, as hiredis expects of every adapter. */
    e->events = REACTOR_READABLE | REACTOR_WRITABLE;
    int rc = reactor_watch(r, e->fd, e->events, on_io, e);
    if (rc < 0) {
        free(e);
        return rc;
    }
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    ac->ev.data = e;
    return 0;
}
