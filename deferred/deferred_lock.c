/* DeferredLock and DeferredSemaphore (deferred_lock.h). A lock is a semaphore with one
 * token, as in Twisted's _ConcurrencyPrimitive; they keep two types so that a lock
 * cannot be released as a semaphore by mistake. */
#include <twistc/deferred_lock.h>

#include <errno.h>
#include <stdlib.h>

#include "deferred/waitlist_internal.h"

struct sem {
    size_t tokens, limit;
    deferred__waitlist waiting;
};

struct deferred_lock {
    struct sem s;
};

struct deferred_semaphore {
    struct sem s;
};

static void sem_cancel(deferred *d, void *arg)
{
    struct sem *s = arg;
    deferred__wait_remove(&s->waiting, d); /* then d fails with ECANCELED */
}

/* Fires with `self` (the lock or semaphore the caller knows). */
static deferred *sem_acquire(struct sem *s, void *self)
{
    if (s->tokens) {
        s->tokens--;
        return deferred_succeed(deferred_ptr(self, NULL));
    }
    return deferred__wait(&s->waiting, sem_cancel, s);
}

static int sem_release(struct sem *s, void *self)
{
    if (s->tokens >= s->limit)
        return -EINVAL;
    deferred *d = deferred__wait_pop(&s->waiting);
    if (!d) {
        s->tokens++;
        return 0;
    }
    /* the token goes straight to the oldest waiter */
    deferred_set_canceller(d, NULL, NULL, NULL);
    deferred_callback(d, deferred_ptr(self, NULL));
    deferred_unref(d);
    return 0;
}

/* ---- run(): acquire, call, release on the result --------------------------------- */

struct run {
    struct sem *s;
    void *self;
    deferred_run_fn fn;
    void *arg;
};

static deferred_result release_pass(deferred_result r, void *arg)
{
    struct run *run = arg;
    sem_release(run->s, run->self);
    return r;
}

static deferred_result run_execute(deferred_result acquired, void *arg)
{
    struct run *run = arg;
    deferred_result_clear(&acquired);
    deferred_result r = run->fn(run->arg);
    if (r.kind != DEFERRED_DEFERRED) {
        sem_release(run->s, run->self);
        return r;
    }
    /* release once fn's Deferred has its result, then continue with that result */
    struct run *keep = malloc(sizeof *keep);
    if (!keep) {
        /* cannot wait for it: cancel it, release now, report */
        deferred_cancel(r.u.deferred);
        deferred_unref(r.u.deferred);
        sem_release(run->s, run->self);
        return deferred_error(ENOMEM, "out of memory in run");
    }
    *keep = *run;
    if (!deferred_add_callbacks_full(r.u.deferred, release_pass, release_pass, keep, free)) {
        deferred_unref(r.u.deferred);
        sem_release(run->s, run->self);
        return deferred_error(ENOMEM, "out of memory in run");
    }
    return r;
}

static deferred *sem_run(struct sem *s, void *self, deferred_run_fn fn, void *arg)
{
    if (!fn) {
        errno = EINVAL;
        return NULL;
    }
    struct run *run = malloc(sizeof *run);
    if (!run) {
        errno = ENOMEM;
        return NULL;
    }
    *run = (struct run){s, self, fn, arg};
    deferred *d = sem_acquire(s, self);
    if (!d) {
        free(run);
        return NULL;
    }
    /* an acquire that fails (cancelled while waiting) skips fn and releases nothing */
    if (!deferred_add_callbacks_full(d, run_execute, NULL, run, free)) {
        int e = errno;
        deferred_cancel(d);
        deferred_unref(d);
        errno = e;
        return NULL;
    }
    return d;
}

/* ---- DeferredLock -------------------------------------------------------------------- */

deferred_lock *deferred_lock_new(void)
{
    deferred_lock *l = calloc(1, sizeof *l);
    if (l)
        l->s.tokens = l->s.limit = 1;
    return l;
}

void deferred_lock_free(deferred_lock *l)
{
    if (!l)
        return;
    deferred__wait_cancel_all(&l->s.waiting, "the DeferredLock");
    free(l);
}

deferred *deferred_lock_acquire(deferred_lock *l)
{
    if (!l) {
        errno = EINVAL;
        return NULL;
    }
    return sem_acquire(&l->s, l);
}

int deferred_lock_release(deferred_lock *l) { return l ? sem_release(&l->s, l) : -EINVAL; }
int deferred_lock_locked(const deferred_lock *l) { return l && l->s.tokens == 0; }
size_t deferred_lock_waiting(const deferred_lock *l) { return l ? l->s.waiting.n : 0; }

deferred *deferred_lock_run(deferred_lock *l, deferred_run_fn fn, void *arg)
{
    if (!l) {
        errno = EINVAL;
        return NULL;
    }
    return sem_run(&l->s, l, fn, arg);
}

/* ---- DeferredSemaphore ------------------------------------------------------------- */

deferred_semaphore *deferred_semaphore_new(size_t tokens)
{
    if (tokens < 1) {
        errno = EINVAL;
        return NULL;
    }
    deferred_semaphore *s = calloc(1, sizeof *s);
    if (s)
        s->s.tokens = s->s.limit = tokens;
    return s;
}

void deferred_semaphore_free(deferred_semaphore *s)
{
    if (!s)
        return;
    deferred__wait_cancel_all(&s->s.waiting, "the DeferredSemaphore");
    free(s);
}

deferred *deferred_semaphore_acquire(deferred_semaphore *s)
{
    if (!s) {
        errno = EINVAL;
        return NULL;
    }
    return sem_acquire(&s->s, s);
}

int deferred_semaphore_release(deferred_semaphore *s)
{
    return s ? sem_release(&s->s, s) : -EINVAL;
}

deferred *deferred_semaphore_run(deferred_semaphore *s, deferred_run_fn fn, void *arg)
{
    if (!s) {
        errno = EINVAL;
        return NULL;
    }
    return sem_run(&s->s, s, fn, arg);
}

size_t deferred_semaphore_tokens(const deferred_semaphore *s) { return s ? s->s.tokens : 0; }
size_t deferred_semaphore_limit(const deferred_semaphore *s) { return s ? s->s.limit : 0; }
size_t deferred_semaphore_waiting(const deferred_semaphore *s)
{
    return s ? s->s.waiting.n : 0;
}
