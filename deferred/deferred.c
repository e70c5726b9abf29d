/* The Deferred: its chain of (callback, errback) pairs and the loop that runs it.
 *
 * The loop (run_callbacks) follows Twisted's _runCallbacks: it never recurses through
 * firing. When a callback returns an inner Deferred that has no result yet, the outer
 * one pauses and appends a "continuation" pair to the inner one; when the inner one
 * fires, its loop meets the continuation, hands its result over and pushes the outer
 * Deferred on an explicit stack. A chain of 100 000 Deferreds so runs at constant C
 * stack depth. Freeing is queued the same way (see deferred_unref). */
#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "deferred/coro_internal.h"
#include "deferred/deferred_internal.h"
#include "reactor/slow_internal.h"

#if defined(__x86_64__) && defined(__SSE2__)
#include <emmintrin.h>
#endif

#if defined(__GNUC__) || defined(__clang__)
#define HOT_INLINE inline __attribute__((always_inline))
#define NOINLINE __attribute__((noinline))
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define HOT_INLINE inline
#define NOINLINE
#define UNLIKELY(x) (x)
#endif

/* The continuation marker. Never actually called through the chain; its address is
 * what matters. */
static deferred_result deferred__continue(deferred_result r, void *arg)
{
    (void)arg;
    return r;
}

/* The marker of a coroutine's waiter pair (coro_internal.h); also only an address. */
deferred_result deferred__wake_marker(deferred_result r, void *arg)
{
    (void)arg;
    return r;
}

/* A detached waiter pair: the coroutine no longer wants the result. */
static deferred_result drop_result(deferred_result r, void *arg)
{
    (void)arg;
    deferred_result_clear(&r);
    return deferred_none();
}

/* ---- Creation and freeing ----------------------------------------------------------- */

/* Per-thread state: a small cache of freed Deferred structs (the hot path "make, fire,
 * free" then costs no malloc/free), and the queue that makes freeing iterative.
 * The cache is off under the sanitizers so they see every use after free. Its blocks
 * are returned to malloc when the thread exits (deferred_thread_cleanup, run by a
 * pthread key destructor; the main thread's cache is freed at exit by atexit). */
#if !defined(TWISTC_ASAN) && !defined(TWISTC_TSAN)
#define DEFERRED__CACHE_MAX 64
#else
#define DEFERRED__CACHE_MAX 0
#endif

struct deferred__tls {
    deferred *cache;   /* linked through free_next */
    unsigned ncache;
    int freeing;
    int registered;
    deferred *queue_head, *queue_tail;
};
static _Thread_local struct deferred__tls tls DEFERRED__TLS_IE;

#if DEFERRED__CACHE_MAX > 0
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void drain_cache(struct deferred__tls *t)
{
    while (t->cache) {
        deferred *d = t->cache;
        t->cache = d->free_next;
        free(d);
    }
    t->ncache = 0;
}
static void thread_exit(void *arg)
{
    (void)arg;
    drain_cache(&tls);
}
static void main_exit(void) { drain_cache(&tls); }
static void make_key(void)
{
    pthread_key_create(&cache_key, thread_exit);
    atexit(main_exit);
}
static inline void cache_put(deferred *d)
{
    if (tls.ncache < DEFERRED__CACHE_MAX) {
        d->free_next = tls.cache;
        tls.cache = d;
        tls.ncache++;
        return;
    }
    free(d);
}
/* Out of line, so that the common case (a cached struct) saves no registers. */
static NOINLINE deferred *cache_miss(void)
{
    /* Every struct that reaches the cache came from here first: registering the
     * thread's exit cleanup here keeps cache_put minimal. */
    if (!tls.registered) {
        pthread_once(&cache_once, make_key);
        pthread_setspecific(cache_key, &tls);
        tls.registered = 1;
    }
    return malloc(sizeof(deferred));
}
/* A cached struct, or NULL (then the caller goes the slow way: cache_miss). */
static inline deferred *cache_get(void)
{
    deferred *d = tls.cache;
    if (d) {
        tls.cache = d->free_next;
        tls.ncache--;
    }
    return d;
}
#else
static inline void cache_put(deferred *d) { free(d); }
static inline deferred *cache_get(void) { return NULL; }
static inline deferred *cache_miss(void) { return malloc(sizeof(deferred)); }
#endif

static NOINLINE deferred *debug_created(deferred *d)
{
    deferred__debug_created(d);
    d->flags |= DEFERRED__SLOW_FREE | DEFERRED__DEBUG;
    return d;
}

static HOT_INLINE deferred *init_new(deferred *d, const char *file, int line,
                                     deferred_canceller canceller, void *canceller_arg)
{
    d->refs = 1;
    d->flags = 0;
    d->paused = 0;
    d->head = 0;
    d->count = 0;
    d->cap = DEFERRED__INLINE_PAIRS;
    d->pairs = d->inl;
    d->result.kind = DEFERRED_NONE;
    d->result.free_fn = NULL;
    d->result.u.i = 0;
    d->created_file = file;
    d->created_line = line;
    d->fired_file = NULL;
    d->chained_to = NULL;
    d->canceller = canceller;
    d->canceller_arg = canceller_arg;
    d->on_live = d->reported = 0;
    if (__atomic_load_n(&deferred__debugging, __ATOMIC_RELAXED))
        return debug_created(d); /* a tail call: no registers saved for it */
    return d;
}

/* No cached struct: out of line, so that the common case makes no call and saves no
 * registers. */
static NOINLINE deferred *new_slow(const char *file, int line, deferred_canceller canceller,
                                   void *canceller_arg)
{
    deferred *d = cache_miss();
    if (!d) {
        errno = ENOMEM;
        return NULL;
    }
    return init_new(d, file, line, canceller, canceller_arg);
}

deferred *deferred_new_at(const char *file, int line, deferred_canceller canceller,
                          void *canceller_arg)
{
    deferred *d = cache_get();
    if (!d)
        return new_slow(file, line, canceller, canceller_arg);
    return init_new(d, file, line, canceller, canceller_arg);
}

deferred *deferred_ref(deferred *d)
{
    if (d)
        d->refs++;
    return d;
}

static void destroy(deferred *d)
{
    if (d->result.kind >= DEFERRED_STR) { /* something to free */
        if (d->result.kind == DEFERRED_FAILURE)
            deferred__live_destroy(d);
        deferred_result_clear(&d->result);
    }
    /* Pairs that never ran: give their args back. A discarded continuation releases
     * the Deferred that waited on this one (see continuation_free). */
    while (d->head < d->count) {
        deferred__pair *p = &d->pairs[d->head++];
        if (p->arg_free)
            p->arg_free(p->arg);
    }
    if (d->flags & DEFERRED__SLOW_FREE) {
        if (d->flags & DEFERRED__HAS_CANCELLER_ARG_FREE)
            d->canceller_arg_free(d->canceller_arg);
        if (d->flags & DEFERRED__DEBUG)
            deferred__debug_free(d);
        if (d->pairs != d->inl)
            free(d->pairs);
    }
    cache_put(d);
}

/* Freeing one Deferred can release others (discarded continuations, DeferredList
 * inputs...). They are queued and freed by the outermost call, so freeing a chain of
 * 100 000 unfired Deferreds does not recurse either. */
static void unref_slow(deferred *d)
{
    if (tls.freeing) {
        d->free_next = NULL;
        if (tls.queue_tail)
            tls.queue_tail->free_next = d;
        else
            tls.queue_head = d;
        tls.queue_tail = d;
        return;
    }
    tls.freeing = 1;
    destroy(d);
    while ((d = tls.queue_head) != NULL) {
        tls.queue_head = d->free_next;
        if (!tls.queue_head)
            tls.queue_tail = NULL;
        destroy(d);
    }
    tls.freeing = 0;
}

void deferred_unref(deferred *d)
{
    if (d && --d->refs == 0) {
        if (!tls.freeing && !(d->flags & DEFERRED__SLOW_FREE) && d->head == d->count &&
            d->result.kind < DEFERRED_STR) {
            cache_put(d); /* nothing inside to free or report: the common case */
            return;
        }
        unref_slow(d);
    }
}

unsigned deferred_refcount(const deferred *d) { return d ? d->refs : 0; }

/* ---- The pair queue ---------------------------------------------------------------- */

/* Makes room for one more pair (the array is full). */
static int grow_pairs(deferred *d)
{
    unsigned live = d->count - d->head;
    if (d->head > 0 && live < d->cap / 2) {
        /* Mostly consumed: slide down instead of growing. */
        memmove(d->pairs, d->pairs + d->head, live * sizeof *d->pairs);
    } else {
        unsigned ncap = d->cap * 2;
        deferred__pair *np;
        if (d->pairs == d->inl) {
            np = malloc(ncap * sizeof *np);
            if (np)
                memcpy(np, d->pairs + d->head, live * sizeof *np);
        } else {
            if (d->head > 0)
                memmove(d->pairs, d->pairs + d->head, live * sizeof *d->pairs);
            np = realloc(d->pairs, ncap * sizeof *np);
        }
        if (!np) {
            if (d->head > 0 && d->pairs != d->inl) {
                d->head = 0;
                d->count = live;
            }
            return -ENOMEM;
        }
        d->pairs = np;
        d->cap = ncap;
        d->flags |= DEFERRED__SLOW_FREE; /* destroy() frees the heap array */
    }
    d->head = 0;
    d->count = live;
    return 0;
}

static HOT_INLINE int push_pair(deferred *d, deferred_cb cb, deferred_cb eb, void *arg,
                            deferred_free_fn arg_free)
{
    if (d->head == d->count) /* empty: reuse from the start */
        d->head = d->count = 0;
    if (d->count == d->cap && grow_pairs(d) < 0)
        return -ENOMEM;
    deferred__pair *p = &d->pairs[d->count++];
    p->cb = cb;
    p->eb = eb;
    p->arg = arg;
    p->arg_free = arg_free;
    return 0;
}

void deferred__detach_waiter(deferred *d, coro *co)
{
    for (unsigned i = d->head; i < d->count; i++) {
        deferred__pair *p = &d->pairs[i];
        if (p->cb == deferred__wake_marker && p->arg == co) {
            p->cb = p->eb = drop_result;
            p->arg = NULL;
            p->arg_free = NULL;
            return;
        }
    }
}

size_t deferred_pending_callbacks(const deferred *d) { return d ? d->count - d->head : 0; }

/* The continuation of `waiting` was discarded (the inner Deferred is freed unfired):
 * `waiting` no longer waits on anything it could cancel. */
static void continuation_free(void *arg)
{
    deferred *waiting = arg;
    waiting->chained_to = NULL;
    deferred_unref(waiting);
}

/* ---- The loop --------------------------------------------------------------------- */

/* Takes the result of `from` (which becomes NONE). `from` stops holding a failure, so
 * it never reports it as unhandled (A8). */
static deferred_result steal_result(deferred *from)
{
    if (from->result.kind == DEFERRED_FAILURE)
        deferred__live_remove(from);
    return deferred_result_take(&from->result);
}

/* d->result = r, for a result that the chain loop is about to copy (to pass it to the
 * next callback) with a 16-byte load. Written field by field, that load would span two
 * pending stores and the CPU could not forward them (a stall of a dozen cycles on every
 * callback); on x86-64 the first 16 bytes are written as one store instead. */
static HOT_INLINE void store_result_from(deferred_result *dst, const deferred_result *src)
{
#if defined(__x86_64__) && defined(__SSE2__)
    _Static_assert(sizeof(deferred_result) == 24 && offsetof(deferred_result, free_fn) == 8,
                   "deferred_result layout");
    /* Field by field from src (forwards from any way it was written), one 16-byte
     * store for kind + free_fn. */
    int64_t payload = src->u.i;
    __m128i head = _mm_set_epi64x((long long)(intptr_t)src->free_fn, (long long)(uint32_t)src->kind);
    _mm_storeu_si128((__m128i *)(void *)dst, head);
    dst->u.i = payload;
#else
    *dst = *src;
#endif
}

static HOT_INLINE void store_result(deferred_result *dst, deferred_result r)
{
    store_result_from(dst, &r);
}

/* A coroutine's waiter pair: the result moves into the coroutine (cur goes on with
 * NONE) and the coroutine runs now, on this stack, until its next await or its end.
 * The switch is inline (coro__resume): see coro_internal.h. */
static HOT_INLINE void wake_waiter(deferred *cur, coro *co)
{
    co->awaited = deferred_result_take(&cur->result);
    co->have_result = 1;
    co->waiting = NULL;
    /* RUNNING: d fired inside coro_await itself, which sees have_result. */
    if (co->fiber.state == CORO__FIBER_SUSPENDED) {
        cur->flags |= DEFERRED__RUNNING; /* A6: pairs it adds to cur wait for this one */
        if (UNLIKELY(atomic_load_explicit(&reactor__slow_users, memory_order_relaxed)))
            coro__resume_timed(co);
        else
            coro__resume(co);
        cur->flags &= ~DEFERRED__RUNNING;
    }
}

/* A callback with the slow-callback detector on in some reactor of the process: timed
 * if it runs inside a callback of this thread's reactor (reactor/slow.c). */
static NOINLINE deferred_result timed_call(deferred_cb fn, deferred_result res, void *arg)
{
    reactor__slow_mark m;
    reactor__slow_enter(&m, res.kind == DEFERRED_FAILURE ? REACTOR__SLOW_DEFERRED_EB
                                                         : REACTOR__SLOW_DEFERRED_CB,
                        (void (*)(void))fn, NULL);
    deferred_result ret = fn(res, arg);
    reactor__slow_leave(&m);
    return ret;
}

/* Runs one callback or errback of cur (fn may be NULL: pass-through) and stores what it
 * returns. Returns 1 when cur now waits on an inner Deferred that the callback returned
 * (A7): the caller stops running cur's pairs. */
static HOT_INLINE int run_pair(deferred *cur, deferred_cb fn, void *arg, deferred_free_fn arg_free)
{
    if (fn == deferred__wake_marker) {
        wake_waiter(cur, arg); /* the pair's arg_free is for discarding only */
        return 0;
    }
    if (fn) {
        /* The result moves into fn. cur->result is not reset: nothing can read it while
         * RUNNING is set (peek/take refuse, and the loop's reference keeps cur alive),
         * and it is overwritten below. */
        cur->flags |= DEFERRED__RUNNING;
        /* Stored first (with store_result: read field by field, which forwards from
         * however the callback wrote its return value, and written as the next pair's
         * copy will read it), tested after. */
        deferred_result ret;
        if (UNLIKELY(atomic_load_explicit(&reactor__slow_users, memory_order_relaxed)))
            ret = timed_call(fn, cur->result, arg);
        else
            ret = fn(cur->result, arg);
        store_result_from(&cur->result, &ret);
        cur->flags &= ~DEFERRED__RUNNING;
        if (cur->result.kind == DEFERRED_DEFERRED) {
            deferred_result out;
            deferred *inner = cur->result.u.deferred;
            if (inner == cur || inner == NULL) {
                /* A11: returning the Deferred itself would wait forever. */
                if (inner)
                    deferred_unref(inner);
                out = deferred_error(EDEADLK, inner ? "callback returned the Deferred it is "
                                                      "attached to (circular chain)"
                                                    : "callback returned a NULL Deferred");
            } else if (!(inner->flags & DEFERRED__CALLED) || inner->paused ||
                       (inner->flags & DEFERRED__RUNNING)) {
                /* A7: wait for it. The continuation holds `cur` alive. */
                cur->refs++;
                if (push_pair(inner, deferred__continue, deferred__continue, cur,
                              continuation_free) == 0) {
                    cur->result = deferred_none();
                    cur->paused++;
                    cur->chained_to = inner;
                    deferred_unref(inner); /* the callback's reference */
                    if (arg_free)
                        arg_free(arg);
                    return 1;
                }
                cur->refs--; /* not taken after all (still > 0: the loop holds one) */
                deferred_unref(inner);
                out = deferred_failure_result(deferred_failure_ref(&deferred__enomem_failure));
            } else {
                /* A7: it has a result: take it over and go on now. */
                out = steal_result(inner);
                deferred_unref(inner);
            }
            cur->result = out;
        }
    }
    if (arg_free)
        arg_free(arg);
    return 0;
}

#define STACK_INLINE 16

/* The general loop: Twisted's _runCallbacks, with an explicit stack of Deferreds that
 * receive a result handed over by a continuation. `self` comes with a reference held
 * for the run, which the loop drops. */
static void run_chain(deferred *self)
{
    deferred *inline_stack[STACK_INLINE];
    deferred **stack = inline_stack;
    size_t n = 0, cap = STACK_INLINE;
    stack[n++] = self;

    while (n > 0) {
        deferred *cur = stack[n - 1];
        if (cur->paused || (cur->flags & DEFERRED__RUNNING)) {
            /* It will go on when unpaused (or in the loop already running it). Twisted
             * abandons the whole stack here; going on with the Deferreds below lets
             * their own remaining pairs run now instead of at their next add. */
            n--;
            if (--cur->refs == 0)
                unref_slow(cur);
            continue;
        }
        int finished = 1;
        cur->chained_to = NULL;
        if (cur->result.kind == DEFERRED_FAILURE && cur->head < cur->count)
            deferred__live_remove(cur);
        while (cur->head < cur->count) {
            /* Copied out: the array may move if the callback adds pairs. */
            deferred__pair *pp = &cur->pairs[cur->head++];
            deferred_cb fn = cur->result.kind == DEFERRED_FAILURE ? pp->eb : pp->cb;
            void *arg = pp->arg;
            deferred_free_fn arg_free = pp->arg_free;
            if (fn == deferred__continue) {
                /* Hand our result to the Deferred waiting on us and go on with it;
                 * the pair's reference on it moves to the stack. */
                deferred *waiting = arg;
                deferred_result_clear(&waiting->result);
                waiting->result = deferred_result_take(&cur->result);
                waiting->paused--;
                if (n == cap) {
                    deferred **ns = malloc(2 * cap * sizeof *ns);
                    if (!ns) {
                        /* Out of memory for the explicit stack: recurse once instead
                         * (rare, and still correct). */
                        waiting->refs++;
                        run_chain(waiting);
                        deferred_unref(waiting);
                        continue;
                    }
                    memcpy(ns, stack, n * sizeof *ns);
                    if (stack != inline_stack)
                        free(stack);
                    stack = ns;
                    cap *= 2;
                }
                stack[n++] = waiting;
                finished = 0;
                break;
            }
            if (run_pair(cur, fn, arg, arg_free))
                break;
        }
        if (finished) {
            if (cur->result.kind == DEFERRED_FAILURE)
                deferred__live_add(cur);
            n--;
            if (--cur->refs == 0)
                unref_slow(cur);
        }
    }
    if (stack != inline_stack)
        free(stack);
}

/* Runs d's pending pairs (d has fired). The common case, a Deferred whose pairs are
 * plain callbacks, runs here without the explicit stack; the first continuation met
 * hands over to run_chain. */
static HOT_INLINE void run_callbacks_inline(deferred *self)
{
    if (self->flags & DEFERRED__RUNNING)
        return; /* A6: the running loop picks the new pairs up */
    if (self->paused)
        return;
    self->refs++; /* held across the run: a callback may drop the last user reference */
    self->chained_to = NULL;
    if (self->result.kind == DEFERRED_FAILURE && self->head < self->count)
        deferred__live_remove(self);
    while (self->head < self->count) {
        deferred__pair *pp = &self->pairs[self->head];
        deferred_cb fn = self->result.kind == DEFERRED_FAILURE ? pp->eb : pp->cb;
        if (fn == deferred__continue) {
            run_chain(self); /* takes over our reference */
            return;
        }
        void *arg = pp->arg;
        deferred_free_fn arg_free = pp->arg_free;
        self->head++;
        if (run_pair(self, fn, arg, arg_free))
            break;
    }
    if (self->result.kind == DEFERRED_FAILURE)
        deferred__live_add(self);
    if (--self->refs == 0)
        unref_slow(self);
}

/* Out of line for the callers off the firing path. */
static void run_callbacks(deferred *self)
{
    run_callbacks_inline(self);
}

coro *deferred__await_add(deferred *d, coro *co, deferred_result *out, int take)
{
    if ((d->flags & (DEFERRED__CALLED | DEFERRED__RUNNING)) == DEFERRED__CALLED && !d->paused) {
        *out = steal_result(d); /* fired: no pair, no switch, no stack */
        if (take)
            deferred_unref(d);
        return NULL;
    }
    co->waiting = d;
    co->have_result = 0;
    co->orphaned = 0;
    if (push_pair(d, deferred__wake_marker, deferred__wake_marker, co, coro__waiter_discarded) < 0) {
        co->waiting = NULL;
        if (take)
            deferred_unref(d);
        *out = deferred_error(ENOMEM, "coro_await: cannot add callbacks");
        return NULL;
    }
    /* Not run now: d has not fired, or is paused or running (then the pair waits). */
    if (take) {
        if (d->refs > 1) {
            d->refs--;
        } else {
            deferred_unref(d); /* freed unfired: the pair reports to co (orphaned) */
            if (!co->waiting) {
                coro__await_end(out);
                return NULL;
            }
        }
    }
    co->fiber.state = CORO__FIBER_SUSPENDED;
    return co;
}

int deferred__fire_chained(deferred *d, deferred *inner)
{
    if (d->flags & DEFERRED__CALLED)
        return -EALREADY;
    /* What run_pair does when a callback returns an unfired Deferred (A7). */
    d->refs++; /* held by the continuation */
    if (push_pair(inner, deferred__continue, deferred__continue, d, continuation_free) < 0) {
        d->refs--;
        return -ENOMEM;
    }
    d->flags |= DEFERRED__CALLED;
    d->fired_file = __FILE__;
    d->fired_line = __LINE__;
    if (d->flags & DEFERRED__DEBUG)
        deferred__debug_fired(d);
    d->paused++;
    d->chained_to = inner;
    if (inner->flags & DEFERRED__CALLED)
        run_callbacks(inner); /* already has a result: hand it over now */
    return 0;
}

/* ---- Adding pairs ------------------------------------------------------------------- */

static HOT_INLINE deferred *add_pair(deferred *d, deferred_cb cb, deferred_cb eb, void *arg,
                                     deferred_free_fn arg_free)
{
    if (!d) {
        if (arg_free)
            arg_free(arg);
        errno = EINVAL;
        return NULL;
    }
    if (push_pair(d, cb, eb, arg, arg_free) < 0) {
        if (arg_free)
            arg_free(arg);
        errno = ENOMEM;
        return NULL;
    }
    if (d->flags & DEFERRED__CALLED)
        run_callbacks(d);
    return d;
}

deferred *deferred_add_callbacks_full(deferred *d, deferred_cb cb, deferred_cb eb, void *arg,
                                      deferred_free_fn arg_free)
{
    return add_pair(d, cb, eb, arg, arg_free);
}

deferred *deferred_add_callbacks(deferred *d, deferred_cb cb, deferred_cb eb, void *arg)
{
    return add_pair(d, cb, eb, arg, NULL);
}

deferred *deferred_add_callback(deferred *d, deferred_cb cb, void *arg)
{
    return add_pair(d, cb, NULL, arg, NULL);
}

deferred *deferred_add_errback(deferred *d, deferred_cb eb, void *arg)
{
    return add_pair(d, NULL, eb, arg, NULL);
}

deferred *deferred_add_both(deferred *d, deferred_cb fn, void *arg)
{
    return add_pair(d, fn, fn, arg, NULL);
}

/* chainDeferred: the pair returns "continue with other" after giving other our result.
 * Implemented as a callback that fires `other`; the firing is a nested loop, but one
 * level per chainDeferred call made by the user, like Twisted's. */
static deferred_result chain_to_other(deferred_result r, void *arg)
{
    deferred *other = arg;
    /* Twisted: other.callback() raising AlreadyCalledError fails this chain. */
    if (deferred_callback_at(other, r, __FILE__, __LINE__) == -EALREADY)
        return deferred_error(EALREADY, "chained Deferred was already called");
    return deferred_none();
}

static void unref_void(void *d) { deferred_unref(d); }

deferred *deferred_chain_deferred(deferred *d, deferred *other)
{
    if (!d || !other || d == other) {
        errno = EINVAL;
        return NULL;
    }
    return deferred_add_callbacks_full(d, chain_to_other, chain_to_other, deferred_ref(other),
                                       unref_void);
}

/* ---- Firing -------------------------------------------------------------------------- */

static HOT_INLINE int start(deferred *d, deferred_result r, const char *file, int line)
{
    if (!d) {
        deferred_result_clear(&r);
        return -EINVAL;
    }
    if (r.kind == DEFERRED_DEFERRED) {
        deferred_result_clear(&r);
        return -EINVAL;
    }
    if (d->flags & DEFERRED__CALLED) {
        deferred_result_clear(&r);
        if (d->flags & DEFERRED__SUPPRESS) { /* A15: the one firing after a cancel */
            d->flags &= ~DEFERRED__SUPPRESS;
            return 0;
        }
        if (__atomic_load_n(&deferred__debugging, __ATOMIC_RELAXED))
            deferred__report(DEFERRED_REPORT_ALREADY_CALLED, d, file, line);
        return -EALREADY;
    }
    d->flags |= DEFERRED__CALLED;
    d->fired_file = file;
    d->fired_line = line;
    if (d->flags & DEFERRED__DEBUG)
        deferred__debug_fired(d);
    store_result(&d->result, r);
    run_callbacks_inline(d); /* inline: a coroutine woken here returns through one frame */
    return 0;
}

int deferred_callback_at(deferred *d, deferred_result r, const char *file, int line)
{
    return start(d, r, file, line);
}

int deferred__callback_parts_at(deferred *d, deferred_kind kind, deferred_free_fn free_fn,
                               int64_t payload, const char *file, int line)
{
    deferred_result r;
    r.kind = kind;
    r.free_fn = free_fn;
    r.u.i = payload; /* the union's bits, whatever member was set */
    return start(d, r, file, line);
}

int deferred_errback_at(deferred *d, deferred_failure *f, const char *file, int line)
{
    return start(d, deferred_failure_result(f), file, line);
}

/* ---- State ------------------------------------------------------------------------ */

int deferred_called(const deferred *d) { return d && (d->flags & DEFERRED__CALLED) != 0; }
int deferred_paused(const deferred *d) { return d ? d->paused : 0; }
int deferred_waiting(const deferred *d) { return d && d->chained_to != NULL; }

const deferred_result *deferred_peek_result(const deferred *d)
{
    if (!d || !(d->flags & DEFERRED__CALLED) || d->paused || (d->flags & DEFERRED__RUNNING))
        return NULL;
    return &d->result;
}

int deferred_take_result(deferred *d, deferred_result *out)
{
    if (!out || !deferred_peek_result(d))
        return -EAGAIN;
    *out = steal_result(d);
    return 0;
}

void deferred_sites(const deferred *d, const char **cf, int *cl, const char **ff, int *fl)
{
    if (cf) *cf = d ? d->created_file : NULL;
    if (cl) *cl = d ? d->created_line : 0;
    if (ff) *ff = d ? d->fired_file : NULL;
    if (fl) *fl = d && d->fired_file ? d->fired_line : 0;
}

/* ---- Pause and cancel -------------------------------------------------------------- */

int deferred_pause(deferred *d)
{
    if (!d)
        return -EINVAL;
    d->paused++;
    return 0;
}

int deferred_unpause(deferred *d)
{
    if (!d || d->paused <= 0)
        return -EINVAL;
    if (--d->paused == 0 && (d->flags & DEFERRED__CALLED))
        run_callbacks(d);
    return 0;
}

int deferred_set_canceller(deferred *d, deferred_canceller canceller, void *arg,
                           deferred_free_fn arg_free)
{
    if (!d)
        return -EINVAL;
    if (d->flags & DEFERRED__CALLED)
        return -EALREADY;
    if (d->flags & DEFERRED__HAS_CANCELLER_ARG_FREE)
        d->canceller_arg_free(d->canceller_arg);
    d->canceller = canceller;
    d->canceller_arg = arg;
    d->canceller_arg_free = arg_free;
    if (arg_free)
        d->flags |= DEFERRED__SLOW_FREE | DEFERRED__HAS_CANCELLER_ARG_FREE;
    else
        d->flags &= ~DEFERRED__HAS_CANCELLER_ARG_FREE;
    return 0;
}

int deferred_cancel(deferred *d)
{
    if (!d)
        return -EINVAL;
    /* A14: a fired Deferred waiting on an inner one passes the cancel on. Walked as a
     * loop so that a long chain does not recurse. chained_to is only set while the
     * inner Deferred is alive (its continuation clears it when discarded). */
    while ((d->flags & DEFERRED__CALLED) && d->chained_to)
        d = d->chained_to;
    if (d->flags & DEFERRED__CALLED)
        return 0;
    deferred_ref(d); /* the canceller or the chain may drop the last user reference */
    if (d->canceller) {
        if (!(d->flags & DEFERRED__CANCELLING)) {
            d->flags |= DEFERRED__CANCELLING;
            d->canceller(d, d->canceller_arg);
        }
    } else {
        d->flags |= DEFERRED__SUPPRESS;
    }
    if (!(d->flags & DEFERRED__CALLED))
        start(d, deferred_error(ECANCELED, "Deferred was cancelled"), __FILE__, __LINE__);
    deferred_unref(d);
    return 0;
}

/* ---- Helpers (A17) ----------------------------------------------------------------- */

deferred *deferred_succeed_at(deferred_result r, const char *file, int line)
{
    if (r.kind == DEFERRED_DEFERRED)
        return r.u.deferred;
    deferred *d = deferred_new_at(file, line, NULL, NULL);
    if (!d) {
        deferred_result_clear(&r);
        errno = ENOMEM;
        return NULL;
    }
    start(d, r, file, line);
    return d;
}

deferred *deferred_fail_at(deferred_failure *f, const char *file, int line)
{
    return deferred_succeed_at(deferred_failure_result(f), file, line);
}

deferred *deferred_maybe_at(deferred_result (*fn)(void *arg), void *arg, const char *file,
                            int line)
{
    if (!fn) {
        errno = EINVAL;
        return NULL;
    }
    return deferred_succeed_at(fn(arg), file, line);
}
