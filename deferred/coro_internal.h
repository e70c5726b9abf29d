/* The coroutine struct and its resume, shared by coro.c and deferred.c. Private to
 * libtwistc.
 *
 * Why deferred.c needs it: an await does not add an ordinary callback pair to the
 * awaited Deferred but a "waiter" pair (cb == eb == deferred__wake_marker, arg = the
 * coroutine). When the chain reaches it, the Deferred's own loop moves the result into
 * the coroutine and switches to it right there (coro__resume, inline), instead of
 * calling a callback that calls a resume function that calls the switch. Every function
 * returned through after a stack switch costs a branch misprediction (see coro__swap),
 * so the fire side of an await round trip is one frame deep: the caller's
 * deferred_callback(). docs/coroutines.md, "How an await is resumed". */
#ifndef TWISTC_CORO_INTERNAL_H
#define TWISTC_CORO_INTERNAL_H

#include "deferred/coro.h"
#include "deferred/coro_switch_internal.h"
#include "deferred/deferred_internal.h"

struct coro_registry;

typedef struct coro {
    coro__fiber fiber;
    deferred *waiting;       /* the Deferred being awaited (its waiter pair is pending) */
    deferred_result awaited; /* delivered by the waiter pair */
    unsigned char have_result;
    unsigned char orphaned;  /* the awaited Deferred was freed without firing */
    unsigned char closing;
    unsigned refs;
    coro_fn fn;
    void *arg;
    deferred *target;        /* where the body's result goes (a reference) */
    deferred_result final;   /* what the body returned */
    struct coro_registry *reg; /* reactor registry, NULL when none or closed */
    struct coro *prev, *next;
} coro;

/* coro__resume inside a timed section of the slow-callback detector (coro.c). */
void coro__resume_timed(coro *co);

/* The coroutine running on this thread (the innermost one when coroutines resume each
 * other), or NULL on a plain thread stack. */
extern _Thread_local coro *coro__current DEFERRED__TLS_IE;

/* Unmaps this thread's cached coroutine structs and stacks (benchmarks, tests). */
void coro__cache_flush(void);

/* The body returned: release the stack, fire the coroutine's Deferred. coro.c. */
void coro__finish(coro *co);

/* The marker of a waiter pair (deferred.c). Never called through the chain. */
deferred_result deferred__wake_marker(deferred_result r, void *arg);
/* arg_free of a waiter pair: called only when the pair is discarded unrun (the awaited
 * Deferred was freed without firing). coro.c. */
void coro__waiter_discarded(void *co);
/* For coro_await(d) in coroutine co: if d has a result to give (fired, not paused or
 * running), moves it to *out and returns NULL. Else adds co's waiter pair (setting
 * co->waiting), marks co's fiber SUSPENDED and returns co: the caller switches out.
 * NULL with a failure in *out if the pair cannot be added (ENOMEM), or with the
 * orphan failure if d was freed unfired at once. take: drops the caller's reference
 * on d in every case (after adding the pair). deferred.c. */
coro *deferred__await_add(deferred *d, coro *co, deferred_result *out, int take);
/* After the resume, in the coroutine: its await's result into *out (coro.c). */
void coro__await_end(deferred_result *out);
/* Fires d (unfired) as if a callback had returned deferred_continue_with(inner): d waits for
 * inner (A7) and takes its result when it fires. For the coroutine canceller, which must
 * give its Deferred a result "to come" before any of the user's pairs run. 0 or -ENOMEM
 * (then d is left unfired). deferred.c. */
int deferred__fire_chained(deferred *d, deferred *inner);
/* Turns co's pending waiter pair in d into one that drops the result (the coroutine
 * stopped waiting: its reactor was freed). deferred.c. */
void deferred__detach_waiter(deferred *d, coro *co);

/* Runs co (suspended, or not started) until it awaits or returns. */
static CORO__INLINE void coro__resume(coro *co)
{
    coro *prev = coro__current;
    coro__current = co;
    coro__fiber_resume(&co->fiber);
    coro__current = prev;
    if (co->fiber.state == CORO__FIBER_DONE)
        coro__finish(co);
}

#endif
