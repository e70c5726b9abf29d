/* DeferredLock and DeferredSemaphore (Twisted's, from twisted.internet.defer): mutual
 * exclusion and bounded concurrency between callback chains or coroutines on one thread.
 *
 *     deferred *d = deferred_lock_acquire(lock);   // fires now if free, else when released
 *     ... later: deferred_lock_release(lock);      // the oldest waiter gets it
 *
 *     // or: acquire, run f, release whatever f's result (also a failure, also later)
 *     deferred *r = deferred_semaphore_run(sem, fetch_page, url);
 *
 * acquire() returns a Deferred that fires with DEFERRED_PTR the lock (or semaphore) once
 * it is held; waiters are served in order. Cancelling a waiting acquire takes it out of
 * the line (it fails with ECANCELED); cancelling one that fired does nothing (the caller
 * holds the lock and must release it). run(fn, arg) acquires, calls fn(arg) (like
 * deferred_maybe: fn may return a value, a failure or a Deferred), releases when that
 * result is there, and the returned Deferred fires with it.
 *
 * Ownership: the lock/semaphore is the caller's and must outlive every acquire and run
 * in progress; free() fails the waiting acquires with ECANCELED. Each Deferred returned
 * is one reference owned by the caller.
 *
 * Threads: one thread (the reactor's), like every Deferred. */
#ifndef TWISTC_DEFERRED_LOCK_H
#define TWISTC_DEFERRED_LOCK_H

#include <stddef.h>

#include <twistc/deferred.h>
#include <twistc/twistc_base.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct deferred_lock deferred_lock;
typedef struct deferred_semaphore deferred_semaphore;
/* What run() calls: returns the result (a DEFERRED result to finish later). */
typedef deferred_result (*deferred_run_fn)(void *arg);

/* ---- DeferredLock -------------------------------------------------------------------- */

TWISTC_API deferred_lock *deferred_lock_new(void); /* NULL+ENOMEM */
TWISTC_API void deferred_lock_free(deferred_lock *l);
/* NULL+ENOMEM/EINVAL. */
TWISTC_API deferred *deferred_lock_acquire(deferred_lock *l);
/* Hands the lock to the oldest waiter (its callbacks run inside this call) or unlocks.
 * -EINVAL when not locked (Twisted's "Tried to release an unlocked lock"). */
TWISTC_API int deferred_lock_release(deferred_lock *l);
TWISTC_API int deferred_lock_locked(const deferred_lock *l);
TWISTC_API deferred *deferred_lock_run(deferred_lock *l, deferred_run_fn fn, void *arg);
/* Acquires waiting. */
TWISTC_API size_t deferred_lock_waiting(const deferred_lock *l);

/* ---- DeferredSemaphore ------------------------------------------------------------- */

/* `tokens` holders at once; 0 is refused (EINVAL, Twisted's ValueError). */
TWISTC_API deferred_semaphore *deferred_semaphore_new(size_t tokens);
TWISTC_API void deferred_semaphore_free(deferred_semaphore *s);
TWISTC_API deferred *deferred_semaphore_acquire(deferred_semaphore *s);
/* -EINVAL when every token is free already (released more often than acquired). */
TWISTC_API int deferred_semaphore_release(deferred_semaphore *s);
TWISTC_API deferred *deferred_semaphore_run(deferred_semaphore *s, deferred_run_fn fn,
                                            void *arg);
/* Tokens free now, and the number given to new(). */
TWISTC_API size_t deferred_semaphore_tokens(const deferred_semaphore *s);
TWISTC_API size_t deferred_semaphore_limit(const deferred_semaphore *s);
TWISTC_API size_t deferred_semaphore_waiting(const deferred_semaphore *s);

#ifdef __cplusplus
}
#endif
#endif
