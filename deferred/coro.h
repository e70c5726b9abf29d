/* Coroutines over Deferreds: sequential-looking code, the C answer to Twisted's
 * inlineCallbacks.
 *
 *     static deferred_result client(void *arg)
 *     {
 *         deferred_result n = coro_await_take(get_random(arg));   // suspends here
 *         if (deferred_result_is_failure(&n))
 *             return n;                                           // errbacks the coroutine
 *         printf("random: %lld\n", (long long)n.u.i);
 *         ...
 *         return deferred_int(0);                                 // fires its Deferred
 *     }
 *     deferred *d = coro_start(r, client, ctx, 0);
 *
 * A coroutine is a function running on a stack of its own (docs/coroutines.md). It
 * starts at once, inside coro_start(), and runs until it awaits a Deferred that has not
 * fired yet; it then suspends, coro_start() returns, and the coroutine continues from
 * that point (on whatever stack fired the Deferred: a timer, a protocol callback, another
 * coroutine) when the Deferred fires. What the function returns fires the coroutine's
 * Deferred.
 *
 * Failures are values, not exceptions: coro_await() returns a deferred_result that may be
 * a failure; the body tests it and returns it, translates it, or goes on.
 *
 * Cancelling the coroutine's Deferred (deferred_cancel) cancels the Deferred it is
 * awaiting; the await then returns that Deferred's cancellation result (normally an
 * ECANCELED failure) and the body decides: return it (the coroutine's Deferred fails
 * with it), translate it into another error or a success, or even carry on. Until the
 * body returns, the cancelled Deferred has no result (Twisted's semantics).
 *
 * Ownership:
 *   - coro_start() returns one reference on the coroutine's Deferred (deferred_unref it).
 *     Dropping it does not stop the coroutine: the coroutine holds its own reference until
 *     it returns.
 *   - coro_await(d) BORROWS d: it neither takes nor drops the caller's reference.
 *     coro_await_take(d) TAKES it: it drops the caller's reference before suspending
 *     (for `coro_await_take(request(...))`). The producer must then hold its own
 *     reference until it fires d (the usual producer rule of deferred.h): if the
 *     producer drops d without firing it, d is freed and the await returns an
 *     ECANCELED failure ("the awaited Deferred was freed without firing") instead of
 *     waiting forever.
 *   - The awaited Deferred's result is MOVED to the coroutine: d's chain continues with
 *     NONE after the await (a failure is therefore handled, not reported as unhandled).
 *   - A coroutine's stack is freed as soon as its function returns, from the stack that
 *     resumed it (never from its own).
 *   - reactor_free() on a reactor with suspended coroutines (started with that reactor)
 *     closes them: each pending await returns an ECANCELED failure at once, and so does
 *     every later await in that coroutine, so the body runs to its end (cleaning up as on
 *     any error) and its Deferred fires; then its stack is freed. The Deferred it was
 *     awaiting is left alone (its producer may already be gone). A body that loops
 *     forever ignoring failures never ends: don't.
 *
 * Limits: a coroutine must not block (it runs on the reactor thread); deep recursion
 * needs a bigger stack (stack_size); an overflow hits a guard page and crashes with
 * SIGSEGV. Threads: a coroutine lives on the thread that started it.
 */
#ifndef TWISTC_CORO_H
#define TWISTC_CORO_H

#include <stddef.h>

#include <twistc/deferred.h>
#include <twistc/reactor.h>
#include <twistc/twistc_base.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A coroutine body: what it returns (ownership passes out) fires the coroutine's
 * Deferred. Returning deferred_continue_with(d) waits for d and fires with its result. */
typedef deferred_result (*coro_fn)(void *arg);

/* Starts fn(arg) as a coroutine: it runs now, until its first await of an unfired
 * Deferred (or to its end). Returns a Deferred for its result, which may therefore have
 * fired already. `r` (may be NULL) is the reactor the coroutine belongs to: freeing r
 * closes it if it is still suspended (see above). stack_size 0 gives
 * coro_default_stack_size(); sizes are rounded up to whole pages (minimum 16 KiB).
 * NULL with errno: ENOMEM, ENOSYS (no context switch on this platform), EINVAL (fn
 * NULL). */
TWISTC_API deferred *coro_start(reactor *r, coro_fn fn, void *arg, size_t stack_size);

/* Inside a coroutine: waits until d fires and returns its result (ownership passes to
 * the caller; d continues with NONE). A Deferred that already fired gives its result at
 * once, without a switch. Outside a coroutine, or for d NULL: an EINVAL failure. In a
 * coroutine being closed (its reactor was freed): an ECANCELED failure. d is borrowed. */
TWISTC_API deferred_result coro_await(deferred *d);
/* Same, but takes the caller's reference on d (dropped before suspending: see the
 * ownership notes above). d NULL gives the EINVAL failure, so
 * `coro_await_take(request())` needs no error check of its own. */
TWISTC_API deferred_result coro_await_take(deferred *d);

/* 1 when called from inside a coroutine. */
TWISTC_API int coro_in_coroutine(void);
/* The stack size used when coro_start() is given 0 (256 KiB; see docs/coroutines.md). */
TWISTC_API size_t coro_default_stack_size(void);
/* Coroutines started with r and not finished yet. */
TWISTC_API size_t coro_count(reactor *r);
/* The context switch compiled in: "asm-x86_64", "asm-aarch64", "ucontext" or "none". */
TWISTC_API const char *coro_backend(void);

#ifdef __cplusplus
}
#endif
#endif
