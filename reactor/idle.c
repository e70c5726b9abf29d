/* Idle timeouts, lazily re-armed (libev's "be smart about timeouts"; Twisted's
 * TimeoutMixin gives the behaviour, not the cost).
 *
 * The obvious way, moving a timer to "now + timeout" on every request, is a heap
 * operation per request. Here a touch only records the time of the activity (one store,
 * the time read at most once per loop iteration); the timer stays where it was armed.
 * When it fires, the idle time is measured from the last activity: if it is not over,
 * the timer is armed again for the rest (a connection that talks all the time re-arms
 * once per timeout period); if it is, the user's function runs.
 *
 * Never early: a touch's time is read after the poll that reported the activity (see
 * reactor__now_activity), so last + timeout is never before "the loop learned of the
 * activity" + timeout, and the timer only runs once the clock has passed it. */
#include "reactor/reactor_internal.h"
#include "reactor/slow_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

struct reactor_idle {
    reactor *r;
    reactor_timer *timer; /* pending while the timeout is on; NULL when off */
    reactor__ns timeout;  /* ns */
    reactor__ns last;     /* time of the last activity (or of the start) */
    reactor_fn fn;
    void *data;
};

static void idle_fire(reactor *r, void *data)
{
    reactor_idle *it = data;
    reactor__ns due = reactor__ns_add(it->last, it->timeout);
    if (due > r->now) { /* touched since it was armed: wait for the rest */
        it->timer = reactor__call_at(r, due, idle_fire, it, "idle");
        if (it->timer)
            return;
        /* No memory for the re-arm: it times out now rather than never. */
    }
    it->timer = NULL;
    if (r->slow) /* named after its function, not "idle" */
        reactor__slow_call(r, REACTOR__SLOW_IDLE, it->fn, it->data, NULL, 0);
    else
        it->fn(r, it->data); /* may free it */
}

static int idle_arm(reactor_idle *it, double seconds)
{
    if (it->timer) {
        reactor_timer_cancel(it->timer);
        it->timer = NULL;
    }
    if (seconds == 0)
        return 0;
    it->timeout = reactor__ns_from_s(seconds);
    it->last = reactor__now_activity(it->r);
    it->timer = reactor__call_at(it->r, reactor__ns_add(it->last, it->timeout), idle_fire,
                                 it, "idle");
    return it->timer ? 0 : -ENOMEM;
}

static int bad_seconds(double seconds)
{
    return !(seconds >= 0) || !isfinite(seconds);
}

reactor_idle *reactor_idle_new(reactor *r, double seconds, reactor_fn fn, void *data)
{
    if (!r || !fn || bad_seconds(seconds)) {
        errno = EINVAL;
        return NULL;
    }
    reactor_idle *it = calloc(1, sizeof *it);
    if (!it)
        return NULL;
    *it = (reactor_idle){.r = r, .fn = fn, .data = data};
    if (idle_arm(it, seconds) < 0) {
        free(it);
        errno = ENOMEM;
        return NULL;
    }
    return it;
}

void reactor_idle_touch(reactor_idle *it)
{
    if (it)
        it->last = reactor__now_activity(it->r);
}

int reactor_idle_set(reactor_idle *it, double seconds)
{
    if (!it || bad_seconds(seconds))
        return -EINVAL;
    return idle_arm(it, seconds);
}

int reactor_idle_active(const reactor_idle *it)
{
    return it && it->timer != NULL;
}

void reactor_idle_free(reactor_idle *it)
{
    if (!it)
        return;
    if (it->timer)
        reactor_timer_cancel(it->timer);
    free(it);
}
