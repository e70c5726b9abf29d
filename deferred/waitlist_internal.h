/* A FIFO of waiting Deferreds, for DeferredQueue, DeferredLock and DeferredSemaphore:
 * the oldest is fired first, a cancelled one is taken out wherever it is (Twisted's
 * list.remove in _cancelGet / _cancelAcquire). Each node holds one reference on its
 * Deferred. Internal to libtwistc. */
#ifndef TWISTC_WAITLIST_INTERNAL_H
#define TWISTC_WAITLIST_INTERNAL_H

#include <errno.h>
#include <stdlib.h>

#include <twistc/deferred.h>

struct deferred__waiter {
    deferred *d;
    struct deferred__waiter *next;
};

typedef struct deferred__waitlist {
    struct deferred__waiter *head, *tail;
    size_t n;
} deferred__waitlist;

/* A new cancellable Deferred queued last; the caller gets its own reference.
 * NULL+ENOMEM. */
static inline deferred *deferred__wait(deferred__waitlist *wl, deferred_canceller cancel,
                                       void *arg)
{
    struct deferred__waiter *w = malloc(sizeof *w);
    deferred *d = w ? deferred_new_cancellable(cancel, arg) : NULL;
    if (!d) {
        free(w);
        errno = ENOMEM;
        return NULL;
    }
    w->d = d;
    w->next = NULL;
    if (wl->tail)
        wl->tail->next = w;
    else
        wl->head = w;
    wl->tail = w;
    wl->n++;
    return deferred_ref(d);
}

/* The oldest waiter, taken off the list (its reference passes to the caller); NULL if
 * none. */
static inline deferred *deferred__wait_pop(deferred__waitlist *wl)
{
    struct deferred__waiter *w = wl->head;
    if (!w)
        return NULL;
    wl->head = w->next;
    if (!wl->head)
        wl->tail = NULL;
    wl->n--;
    deferred *d = w->d;
    free(w);
    return d;
}

/* Takes d off the list (from its canceller) and drops the list's reference; 0 if d was
 * not on it. */
static inline int deferred__wait_remove(deferred__waitlist *wl, deferred *d)
{
    struct deferred__waiter **pp = &wl->head, *prev = NULL;
    for (; *pp; prev = *pp, pp = &(*pp)->next) {
        struct deferred__waiter *w = *pp;
        if (w->d != d)
            continue;
        *pp = w->next;
        if (wl->tail == w)
            wl->tail = prev;
        wl->n--;
        free(w);
        deferred_unref(d); /* the caller of cancel holds its own */
        return 1;
    }
    return 0;
}

/* Fails every waiter with an ECANCELED failure (the object they wait on is freed). */
static inline void deferred__wait_cancel_all(deferred__waitlist *wl, const char *what)
{
    deferred *d;
    while ((d = deferred__wait_pop(wl)) != NULL) {
        deferred_set_canceller(d, NULL, NULL, NULL);
        deferred_errback_new(d, ECANCELED, "%s was freed while waiting", what);
        deferred_unref(d);
    }
}

#endif
