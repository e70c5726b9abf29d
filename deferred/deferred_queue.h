/* DeferredQueue (Twisted's twisted.internet.defer.DeferredQueue): a FIFO whose get()
 * returns a Deferred, so a consumer can wait for the next item.
 *
 *     deferred_queue *q = deferred_queue_new(DEFERRED_QUEUE_UNLIMITED, DEFERRED_QUEUE_UNLIMITED);
 *     deferred *d = deferred_queue_get(q);        // nothing there yet: d waits
 *     deferred_queue_put(q, deferred_int(7));     // d fires now with 7
 *
 * put() hands the item to the oldest waiting get() if there is one, else keeps it;
 * get() fires at once with the oldest kept item, else waits. Bounds as in Twisted:
 * `size` items kept at most (more: QueueOverflow, -ENOBUFS), `backlog` gets waiting at
 * most (more: QueueUnderflow, NULL with errno EAGAIN). Cancelling a waiting get takes
 * it out of the line (it fails with ECANCELED; the next item goes to the next waiter);
 * cancelling a get that already fired does nothing.
 *
 * Ownership: the queue is the caller's (deferred_queue_free). Items are
 * deferred_results: put() takes the item, a get's Deferred passes it on. Each get()
 * returns one reference owned by the caller. deferred_queue_free drops the kept items
 * and fails the waiting gets with ECANCELED.
 *
 * Threads: one thread (the reactor's), like every Deferred. */
#ifndef TWISTC_DEFERRED_QUEUE_H
#define TWISTC_DEFERRED_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include <twistc/deferred.h>
#include <twistc/twistc_base.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct deferred_queue deferred_queue;

/* Python's None for size and backlog: no limit. */
#define DEFERRED_QUEUE_UNLIMITED SIZE_MAX

/* A queue keeping at most `size` items, with at most `backlog` gets waiting (0 is
 * allowed for both, as in Twisted). NULL+ENOMEM. */
TWISTC_API deferred_queue *deferred_queue_new(size_t size, size_t backlog);
/* See Ownership. NULL ok. */
TWISTC_API void deferred_queue_free(deferred_queue *q);
/* Gives r to the oldest waiting get (its callbacks run inside this call) or keeps it.
 * 0, or -ENOBUFS when `size` items are kept already (QueueOverflow: r was NOT taken, it
 * is still the caller's), -ENOMEM (r not taken either), -EINVAL (q NULL or r a
 * DEFERRED). */
TWISTC_API int deferred_queue_put(deferred_queue *q, deferred_result r);
/* A Deferred for the next item: already fired when one is kept, else waiting. NULL with
 * errno EAGAIN when nothing is kept and `backlog` gets wait already (QueueUnderflow);
 * ENOMEM; EINVAL. */
TWISTC_API deferred *deferred_queue_get(deferred_queue *q);
/* Items kept, gets waiting. */
TWISTC_API size_t deferred_queue_pending(const deferred_queue *q);
TWISTC_API size_t deferred_queue_waiting(const deferred_queue *q);

#ifdef __cplusplus
}
#endif
#endif
