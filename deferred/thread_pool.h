/* defer_to_thread: run a blocking function on a worker thread, get a Deferred for its
 * result on the reactor thread (Twisted's deferToThread).
 *
 * The reactor thread must never block: a slow system call (a DNS lookup, an SMTP send,
 * a big file read, a password hash) freezes every connection while it runs. Hand it to
 * defer_to_thread() instead; the loop keeps serving, and the Deferred fires, on the
 * reactor thread, when the function has returned.
 *
 *     static deferred_result send_mail(void *arg) {          // runs on a worker thread
 *         int rc = blocking_smtp_send(arg);
 *         return rc < 0 ? deferred_error(-rc, "SMTP send failed") : deferred_none();
 *     }
 *     deferred *d = defer_to_thread(r, send_mail, msg);    // returns at once
 *     deferred_add_callbacks(d, on_sent, on_send_failed, msg);
 *
 * The pool (one per reactor) starts its threads lazily, on the first call, up to the
 * pool size (default 4; defer_to_thread_pool_size()). Calls run in the order they were
 * made, as threads become free.
 *
 * What the function may do: anything blocking, on its own data. It must not touch the
 * reactor, Deferreds, or anything else the reactor thread uses (the one exception is
 * reactor_call_from_thread). It returns a deferred_result: a value (INT, DOUBLE, STR or
 * PTR, whose free_fn then belongs to the result as usual) or a failure made with
 * deferred_error(); a DEFERRED result is refused (EINVAL failure).
 *
 * Cancelling the returned Deferred (deferred_cancel) before a worker took the call
 * removes it: the function never runs and the Deferred fails with ECANCELED. Once the
 * function is running it cannot be interrupted: the Deferred fails with ECANCELED at
 * once and the function's eventual result is dropped (its free_fn runs).
 *
 * Shutdown: during the reactor's "during shutdown" phase (and in reactor_free() if it
 * never ran), the pool stops taking calls, lets the workers finish the calls already
 * queued and running (so a blocking call delays exit, as in Twisted), joins the threads
 * and fires the Deferreds of those calls. After that, defer_to_thread() returns a
 * Deferred failed with ESHUTDOWN.
 *
 * Ownership: defer_to_thread() returns one reference (deferred_unref it); the pool keeps
 * its own until it fires the Deferred. `arg` is the caller's; with defer_to_thread_full,
 * arg_free(arg) runs on the reactor thread once the call is over (after the Deferred
 * fired, or when it was cancelled before running).
 *
 * Threads: call these from the reactor thread only.
 */
#ifndef TWISTC_THREAD_POOL_H
#define TWISTC_THREAD_POOL_H

#include <stddef.h>

#include <twistc/deferred.h>
#include <twistc/reactor.h>
#include <twistc/twistc_base.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Runs on a worker thread; returns the result (ownership passes out). */
typedef deferred_result (*defer_to_thread_fn)(void *arg);

/* Queues fn(arg) on r's pool and returns a Deferred for its result, fired on the
 * reactor thread (from the loop, through reactor_call_from_thread). NULL with errno
 * EINVAL (r or fn NULL) or ENOMEM; a Deferred failed with ESHUTDOWN once the pool was
 * shut down, or with EAGAIN if no worker thread could be started. */
TWISTC_API deferred *defer_to_thread(reactor *r, defer_to_thread_fn fn, void *arg);
/* Same, and arg_free(arg) (may be NULL) runs on the reactor thread when the call is
 * over, whatever happened (also when this returns NULL or a failed Deferred). */
TWISTC_API deferred *defer_to_thread_full(reactor *r, defer_to_thread_fn fn, void *arg,
                                          deferred_free_fn arg_free);

/* Sets the most worker threads r's pool may run (1..1024; default 4). Lowering it does
 * not stop threads already started; it limits new ones. -EINVAL, -ENOMEM. */
TWISTC_API int defer_to_thread_pool_size(reactor *r, unsigned n);

/* Statistics (reactor thread): threads started, calls waiting for a thread, calls
 * running now. Zero when the pool was never used. */
typedef struct defer_to_thread_stats {
    size_t threads;
    size_t queued;
    size_t running;
    unsigned max_threads;
} defer_to_thread_stats;
TWISTC_API defer_to_thread_stats defer_to_thread_pool_stats(reactor *r);

#ifdef __cplusplus
}
#endif
#endif
