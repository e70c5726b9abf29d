/* DeferredQueue (deferred_queue.h): kept items in a ring, waiting gets in a waitlist.
 * At any time one of the two is empty. */
#include <twistc/deferred_queue.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "deferred/waitlist_internal.h"

struct deferred_queue {
    size_t size, backlog;
    deferred_result *items; /* ring */
    size_t head, n, cap;
    deferred__waitlist waiting;
};

deferred_queue *deferred_queue_new(size_t size, size_t backlog)
{
    deferred_queue *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->size = size;
    q->backlog = backlog;
    return q;
}

void deferred_queue_free(deferred_queue *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < q->n; i++)
        deferred_result_clear(&q->items[(q->head + i) % q->cap]);
    free(q->items);
    q->items = NULL;
    q->n = 0;
    deferred__wait_cancel_all(&q->waiting, "the DeferredQueue");
    free(q);
}

static int grow(deferred_queue *q)
{
    if (q->n < q->cap)
        return 0;
    size_t nc = q->cap ? q->cap * 2 : 8;
    deferred_result *b = malloc(nc * sizeof *b);
    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i < q->n; i++)
        b[i] = q->items[(q->head + i) % q->cap];
    free(q->items);
    q->items = b;
    q->head = 0;
    q->cap = nc;
    return 0;
}

int deferred_queue_put(deferred_queue *q, deferred_result r)
{
    if (!q || r.kind == DEFERRED_DEFERRED)
        return -EINVAL;
    deferred *d = deferred__wait_pop(&q->waiting);
    if (d) {
        deferred_set_canceller(d, NULL, NULL, NULL);
        deferred_callback(d, r);
        deferred_unref(d);
        return 0;
    }
    if (q->n >= q->size)
        return -ENOBUFS; /* QueueOverflow */
    if (grow(q) < 0)
        return -ENOMEM;
    q->items[(q->head + q->n) % q->cap] = r;
    q->n++;
    return 0;
}

static void cancel_get(deferred *d, void *arg)
{
    deferred_queue *q = arg;
    deferred__wait_remove(&q->waiting, d); /* then d fails with ECANCELED */
}

deferred *deferred_queue_get(deferred_queue *q)
{
    if (!q) {
        errno = EINVAL;
        return NULL;
    }
    if (q->n) {
        deferred_result r = q->items[q->head];
        q->head = (q->head + 1) % q->cap;
        q->n--;
        return deferred_succeed(r);
    }
    if (q->waiting.n >= q->backlog) {
        errno = EAGAIN; /* QueueUnderflow */
        return NULL;
    }
    return deferred__wait(&q->waiting, cancel_get, q);
}

size_t deferred_queue_pending(const deferred_queue *q) { return q ? q->n : 0; }
size_t deferred_queue_waiting(const deferred_queue *q) { return q ? q->waiting.n : 0; }
