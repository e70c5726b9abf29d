/* Coroutines over Deferreds (coro.h), on the raw switch of coro_switch.c.
 *
 * How an await works: coro_await(d) adds one (await_cb, await_cb) pair to d and yields
 * to whoever resumed the coroutine. When d fires, await_cb receives the result, stores
 * it in the coroutine and resumes it (on the stack that fired d); the coroutine returns
 * the result from coro_await and runs to its next await or its end, then control comes
 * back to await_cb, which returns NONE to d's chain.
 *
 * How cancellation works (Twisted's _cancellableInlineCallbacks, in C): the result of
 * the body goes to co->target, which starts as the Deferred coro_start returned. Each
 * target is made with a canceller and, as its very first pair, an errback (cancel_eb).
 * Cancelling the target errbacks it with a marker failure that only cancel_eb sees:
 * cancel_eb swaps in a fresh target, cancels the awaited Deferred (which resumes the
 * body with the cancellation result) and returns deferred_chain(new target), so the
 * cancelled Deferred gets whatever the body finally returns, when it returns.
 *
 * Lifetime of struct coro: reference counted. One reference for the running body
 * (dropped when it returns), one per pending await pair (dropped by the pair's
 * arg_free, so a Deferred that outlives the coroutine never calls into freed memory). */
#include <errno.h>
#include <stdlib.h>

#include "deferred/coro.h"
#include "deferred/coro_switch_internal.h"
#include "reactor/module_internal.h"

struct coro_registry;

typedef struct coro {
    coro__fiber fiber;
    coro_fn fn;
    void *arg;
    deferred *target;       /* where the body's result goes (a reference) */
    deferred *waiting;      /* the Deferred being awaited (identity only), or NULL */
    deferred_result awaited; /* delivered by await_cb */
    deferred_result final;   /* what the body returned */
    unsigned refs;
    unsigned ran_pairs;     /* await pairs whose function ran, arg_free still to come */
    unsigned char have_result;
    unsigned char orphaned; /* the awaited Deferred was freed without firing */
    unsigned char cancel_pending;
    unsigned char closing;
    struct coro_registry *reg; /* reactor registry, NULL when none or closed */
    struct coro *prev, *next;
} coro;

struct coro_registry {
    reactor *r;
    coro *head;
    size_t count;
};

/* Left as the module data after reg_free: coroutines started later in reactor_free()
 * (by another module's free hook) run without a registry. */
static char reg_gone;

/* The coroutine running on this thread right now (the innermost one when coroutines
 * resume each other), or NULL on a plain thread stack. */
static _Thread_local coro *current;

static void co_unref(coro *co)
{
    if (--co->refs == 0)
        free(co);
}

static void co_resume(coro *co);

/* arg_free of an await pair: after await_cb ran, or when the awaited Deferred was freed
 * without firing and discarded the pair. In the second case nothing will ever resume
 * the coroutine, so it is resumed now with a failure (Python closes a generator that is
 * garbage collected in the same spirit). */
static void pair_released(void *p)
{
    coro *co = p;
    if (co->ran_pairs > 0) {
        co->ran_pairs--;
    } else if (co->waiting && !co->have_result && !co->closing &&
               co->fiber.state != CORO__FIBER_DONE) {
        co->waiting = NULL;
        co->orphaned = 1;
        if (co->fiber.state == CORO__FIBER_SUSPENDED)
            co_resume(co); /* our reference (below) keeps co alive meanwhile */
        /* RUNNING: coro_await_take dropped the last reference itself; it sees
         * waiting == NULL and does not suspend. */
    }
    co_unref(co);
}

/* ---- the per-reactor registry (closing on reactor_free) ------------------------- */

static void reg_remove(coro *co)
{
    struct coro_registry *reg = co->reg;
    if (!reg)
        return;
    if (co->prev)
        co->prev->next = co->next;
    else
        reg->head = co->next;
    if (co->next)
        co->next->prev = co->prev;
    co->prev = co->next = NULL;
    co->reg = NULL;
    reg->count--;
}

/* Module free hook: reactor_free() on a reactor with coroutines still suspended. */
static void reg_free(void *data)
{
    struct coro_registry *reg = data;
    while (reg->head) {
        coro *co = reg->head;
        reg_remove(co);
        co->closing = 1;
        if (co->fiber.state == CORO__FIBER_SUSPENDED) {
            /* Detach from the awaited Deferred (its pair stays but will find
             * waiting == NULL and drop the result) and let the body run out. */
            co->waiting = NULL;
            co->refs++;
            co_resume(co);
            co_unref(co);
        }
        /* RUNNING: reactor_free() called from inside this very coroutine (or one it
         * resumed); it is finishing on its own, the registry just forgets it. */
    }
    reactor__set_module_data(reg->r, REACTOR__MOD_CORO, &reg_gone, NULL);
    free(reg);
}

static struct coro_registry *reg_get(reactor *r)
{
    struct coro_registry *reg = reactor__module_data(r, REACTOR__MOD_CORO);
    if (reg)
        return reg;
    reg = calloc(1, sizeof *reg);
    if (!reg)
        return NULL;
    reg->r = r;
    if (reactor__set_module_data(r, REACTOR__MOD_CORO, reg, reg_free) < 0) {
        free(reg);
        return NULL;
    }
    return reg;
}

/* ---- targets and cancellation --------------------------------------------------- */

static void co_canceller(deferred *d, void *arg);
static deferred_result cancel_eb(deferred_result r, void *arg);

static deferred *make_target(coro *co)
{
    deferred *d = deferred_new_cancellable(co_canceller, co);
    if (!d)
        return NULL;
    if (!deferred_add_callbacks(d, NULL, cancel_eb, co)) {
        deferred_unref(d);
        return NULL;
    }
    return d;
}

/* The target was cancelled before the body returned. */
static void co_canceller(deferred *d, void *arg)
{
    coro *co = arg;
    co->cancel_pending = 1;
    deferred_errback_new(d, ECANCELED, "coroutine cancelled");
}

static deferred_result cancel_eb(deferred_result r, void *arg)
{
    coro *co = arg;
    if (!co->cancel_pending)
        return r; /* the body's own failure: pass it on */
    co->cancel_pending = 0;
    deferred_result_clear(&r);
    deferred *fresh = make_target(co);
    if (!fresh)
        return deferred_error(ENOMEM, "coroutine cancelled (out of memory)");
    /* The old target is running this chain and holds itself alive meanwhile. */
    deferred *old = co->target;
    co->target = fresh;
    deferred_ref(fresh); /* for the chain result below, taken before the body may fire
                          * and drop co->target */
    if (co->waiting)
        deferred_cancel(co->waiting); /* may resume the body, even to its end */
    deferred_unref(old);
    return deferred_chain(fresh);
}

/* ---- running ---------------------------------------------------------------------- */

static void co_finish(coro *co)
{
    reg_remove(co);
    coro__fiber_destroy(&co->fiber); /* we are on the resumer's stack: safe */
    deferred *t = co->target;
    co->target = NULL;
    deferred_callback(t, deferred_result_take(&co->final));
    deferred_unref(t);
    co_unref(co); /* the body's reference */
}

static void co_resume(coro *co)
{
    coro *prev = current;
    current = co;
    coro__fiber_resume(&co->fiber);
    current = prev;
    if (coro__fiber_done(&co->fiber))
        co_finish(co);
}

static void co_entry(void *arg)
{
    coro *co = arg;
    co->final = co->fn(co->arg);
    if (co->final.kind == DEFERRED_DEFERRED) /* `return deferred_chain(d)` */
        co->final = coro_await_take(co->final.u.deferred);
}

deferred *coro_start(reactor *r, coro_fn fn, void *arg, size_t stack_size)
{
    if (!fn) {
        errno = EINVAL;
        return NULL;
    }
    coro *co = calloc(1, sizeof *co);
    if (!co) {
        errno = ENOMEM;
        return NULL;
    }
    co->fn = fn;
    co->arg = arg;
    co->refs = 1;
    int rc = coro__fiber_init(&co->fiber, stack_size, co_entry, co);
    if (rc < 0) {
        free(co);
        errno = -rc;
        return NULL;
    }
    co->target = make_target(co);
    struct coro_registry *reg = NULL;
    if (co->target && r) {
        reg = reg_get(r);
        if (reg == (struct coro_registry *)&reg_gone)
            reg = NULL; /* reactor being freed: no registry */
        else if (!reg) {
            deferred_unref(co->target);
            co->target = NULL;
        }
    }
    if (!co->target) {
        coro__fiber_destroy(&co->fiber);
        free(co);
        errno = ENOMEM;
        return NULL;
    }
    if (reg) {
        co->reg = reg;
        co->next = reg->head;
        if (reg->head)
            reg->head->prev = co;
        reg->head = co;
        reg->count++;
    }
    deferred *result = deferred_ref(co->target);
    co_resume(co);
    return result;
}

/* ---- awaiting --------------------------------------------------------------------- */

static deferred_result await_cb(deferred_result r, void *arg)
{
    coro *co = arg;
    co->ran_pairs++; /* tells pair_released this pair was not discarded */
    if (co->waiting == NULL || co->have_result) {
        /* Detached (the coroutine was closed): nobody wants this result any more. */
        deferred_result_clear(&r);
        return deferred_none();
    }
    co->awaited = r;
    co->have_result = 1;
    /* RUNNING means d fired inside deferred_add_callbacks, in coro_await itself, which
     * will see have_result and not suspend. */
    if (co->fiber.state == CORO__FIBER_SUSPENDED)
        co_resume(co);
    return deferred_none();
}

/* take: the caller's reference on d is dropped, before suspending (so that a producer
 * dropping d unfired is noticed, see pair_released). */
static deferred_result await_impl(deferred *d, int take)
{
    coro *co = current;
    deferred_result out;
    if (!d)
        return deferred_error(EINVAL, "coro_await(NULL)");
    if (!co)
        out = deferred_error(EINVAL, "coro_await called outside a coroutine");
    else if (co->closing)
        out = deferred_error(ECANCELED, "coroutine closed: its reactor was freed");
    else if (d == co->target)
        out = deferred_error(EDEADLK, "a coroutine cannot await its own Deferred");
    else if (deferred_called(d) && deferred_take_result(d, &out) == 0)
        ; /* already fired: no pair, no switch, no stack (20 000 in a loop are fine) */
    else {
        co->waiting = d;
        co->have_result = 0;
        co->orphaned = 0;
        co->refs++; /* owned by the pair, dropped by pair_released */
        if (!deferred_add_callbacks_full(d, await_cb, await_cb, co, pair_released)) {
            int err = errno ? errno : ENOMEM; /* pair_released already ran */
            co->waiting = NULL;
            out = deferred_error(err, "coro_await: cannot add callbacks");
        } else {
            if (take) {
                take = 0;
                deferred_unref(d); /* may free d unfired: then waiting is NULL */
            }
            if (!co->have_result && co->waiting)
                coro__fiber_yield(&co->fiber);
            co->waiting = NULL;
            if (co->have_result) {
                co->have_result = 0;
                out = deferred_result_take(&co->awaited);
            } else if (co->orphaned) {
                co->orphaned = 0;
                out = deferred_error(ECANCELED, "the awaited Deferred was freed without firing");
            } else {
                out = deferred_error(ECANCELED, "coroutine closed: its reactor was freed");
            }
        }
    }
    if (take)
        deferred_unref(d);
    return out;
}

deferred_result coro_await(deferred *d)
{
    return await_impl(d, 0);
}

deferred_result coro_await_take(deferred *d)
{
    return await_impl(d, 1);
}

/* ---- small queries ------------------------------------------------------------------ */

int coro_in_coroutine(void)
{
    return current != NULL;
}

size_t coro_default_stack_size(void)
{
    return CORO__DEFAULT_STACK_SIZE;
}

size_t coro_count(reactor *r)
{
    struct coro_registry *reg = r ? reactor__module_data(r, REACTOR__MOD_CORO) : NULL;
    return reg && reg != (struct coro_registry *)&reg_gone ? reg->count : 0;
}

const char *coro_backend(void)
{
    return coro__backend_name();
}
