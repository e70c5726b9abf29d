/* The Deferred's only ties to the reactor: timeouts (A16) and the report at shutdown of
 * Deferreds still holding an unhandled failure (A18).
 *
 * A timeout is one pair on the Deferred plus a reactor timer. The pair owns the
 * timeout record; the timer only borrows it. While the timer is pending the record
 * holds a reference on the Deferred (as Twisted's clock does through its delayed
 * call), so `add_timeout; add_errback; unref` still reports the timeout. When the
 * pair has run the record cancels the timer and drops that reference; when the
 * reactor is freed first, the per-reactor state forgets the timers (the reactor freed
 * them) and drops the references. */
#include <errno.h>
#include <stdlib.h>

#include <twistc/reactor.h>

#include "deferred/deferred_internal.h"
#include "reactor/module_internal.h"

struct dto;

struct dreactor {
    reactor *r;
    struct dto *timeouts; /* live timeout records on this reactor */
};

struct dto {
    struct dto *prev, *next;
    struct dreactor *dr; /* NULL once the reactor is freed */
    reactor_timer *timer; /* NULL once it ran (or the reactor is gone) */
    deferred *d;          /* the pair's owner; valid while the record lives */
    int holds_d;          /* 1 while the record owns a reference on d */
    int timed_out;
    double seconds;
    deferred_timeout_fn fn;
    void *arg;
};

static void dreactor_free(void *p)
{
    struct dreactor *dr = p;
    struct dto *t = dr->timeouts;
    dr->timeouts = NULL;
    while (t) {
        struct dto *next = t->next; /* dropping d may free t (its pair is discarded) */
        t->timer = NULL;
        t->dr = NULL;
        t->prev = t->next = NULL;
        if (t->holds_d) {
            t->holds_d = 0;
            deferred_unref(t->d);
        }
        t = next;
    }
    free(dr);
}

static struct dreactor *dreactor_get(reactor *r)
{
    struct dreactor *dr = reactor__module_data(r, REACTOR__MOD_DEFERRED);
    if (dr)
        return dr;
    dr = calloc(1, sizeof *dr);
    if (!dr)
        return NULL;
    dr->r = r;
    if (reactor__set_module_data(r, REACTOR__MOD_DEFERRED, dr, dreactor_free) < 0) {
        free(dr);
        return NULL;
    }
    return dr;
}

static void dto_free(void *p)
{
    struct dto *t = p;
    if (t->timer)
        reactor_timer_cancel(t->timer); /* A16: fired before the timeout */
    if (t->dr) {
        if (t->prev)
            t->prev->next = t->next;
        else
            t->dr->timeouts = t->next;
        if (t->next)
            t->next->prev = t->prev;
    }
    deferred *d = t->holds_d ? t->d : NULL;
    free(t);
    deferred_unref(d); /* from inside d's chain loop, which holds its own reference */
}

static void on_timer(reactor *r, void *data)
{
    (void)r;
    struct dto *t = data;
    t->timer = NULL; /* the reactor frees the handle after this call */
    t->timed_out = 1;
    deferred *d = deferred_ref(t->d);
    deferred_cancel(d); /* may run the pair and free t: do not touch t after this */
    deferred_unref(d);
}

static deferred_result convert(deferred_result res, void *arg)
{
    struct dto *t = arg;
    if (!t->timed_out)
        return res;
    if (t->fn)
        return t->fn(res, t->seconds, t->arg);
    /* Twisted's _cancelledToTimedOutError: CancelledError becomes TimeoutError; any
     * other result (a canceller that fired the Deferred itself) goes through. */
    if (res.kind == DEFERRED_FAILURE && res.u.failure->code == ECANCELED) {
        deferred_result_clear(&res);
        return deferred_error(ETIMEDOUT, "Deferred timed out after %g seconds", t->seconds);
    }
    return res;
}

deferred *deferred_add_timeout(deferred *d, struct reactor *r, double seconds,
                               deferred_timeout_fn on_timeout, void *arg)
{
    if (!d || !r || !(seconds >= 0)) {
        errno = EINVAL;
        return NULL;
    }
    struct dreactor *dr = dreactor_get(r);
    struct dto *t = dr ? calloc(1, sizeof *t) : NULL;
    if (!t) {
        errno = ENOMEM;
        return NULL;
    }
    t->dr = dr;
    t->d = deferred_ref(d);
    t->holds_d = 1;
    t->seconds = seconds;
    t->fn = on_timeout;
    t->arg = arg;
    t->timer = reactor_call_later(r, seconds, on_timer, t);
    if (!t->timer) {
        int e = errno;
        deferred_unref(d);
        free(t);
        errno = e ? e : ENOMEM;
        return NULL;
    }
    t->next = dr->timeouts;
    if (dr->timeouts)
        dr->timeouts->prev = t;
    dr->timeouts = t;
    /* One pair does both of Twisted's (convertCancelled, cancelTimeout): the timer is
     * cancelled by dto_free once the pair has run. */
    return deferred_add_callbacks_full(d, convert, convert, t, dto_free);
}
