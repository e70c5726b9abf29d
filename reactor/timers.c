/* Timers: a 4-ary min-heap of {deadline, timer*} ordered by (deadline, seq), each timer
 * knowing its slot, under two APIs: embedded timers (reactor_etimer, the caller's memory)
 * and calls (reactor_call_later & co: a reactor-owned etimer with a generation-checked
 * handle).
 *
 * - seq is a counter taken when a timer becomes pending: two timers due at the same
 *   moment run in the order they were scheduled (Twisted's task.Clock is FIFO; its real
 *   reactor is not). A move of a pending timer (reset, delay, start/again while active)
 *   keeps its seq, so it keeps its place among timers due at its new time.
 * - 4-ary rather than binary (libev's choice): half the depth, and the heap array is laid
 *   out so the four children of a node fill exactly one 64-byte cache line. At a million
 *   timers the heap and the timers are far bigger than the caches, so cache misses and
 *   mispredicted branches are what costs: the smallest of four children is found without
 *   branches, the next level's lines and the next timers to fire are prefetched.
 * - Every timer knows its slot (libev's ev_active, libuv's heap node): a stop is an
 *   O(log n) removal right away, never a stale entry left for later. It has to be: an
 *   embedded timer may be freed by its owner as soon as it is stopped. Each entry a sift
 *   moves costs a store into its timer.
 * - Moves to a later time are lazy (libev's "be smart about timeouts", done by the heap):
 *   the entry keeps its earlier deadline and only the timer's `when` changes, one store;
 *   when the entry reaches the root it goes down to the real deadline (settle_top). An
 *   idle timeout pushed back on every request therefore moves in the heap at most once
 *   per timeout period. An entry's deadline is never later than its timer's, so nothing
 *   runs early, and the root is always kept at its timer's real deadline, so reactor.c
 *   reads the next deadline straight from heap[0] and the poll timeout is exact. A move
 *   sooner is an in-place sift up.
 * - Running is collect-then-run (libuv's uv__run_timers): every due timer is first moved
 *   to the `due` list, then they run in order. A timer scheduled while they run goes into
 *   the heap, so it waits for the next iteration (after one poll: timers cannot starve
 *   I/O, D3). A timer stopped or moved by an earlier one of the same pass leaves a NULL in
 *   its due slot (it knows the slot), so it does not run, and may be freed at once.
 * - A one-shot timer is not active once its function begins; the reactor does not touch
 *   it after calling it (the function may free it). A repeating embedded timer is re-armed
 *   before its function runs (libev), for the same reason.
 *
 * Calls (reactor_timer, the handle API):
 * - Timer structs are recycled through a free list: scheduling does not call malloc once
 *   the reactor has warmed up. A struct, once allocated, stays a timer struct until the
 *   reactor is freed (type-stable memory), so any old handle still points at a timer.
 * - Handles are generation-checked (the stale-handle bug of issue 10: a handle kept after
 *   its call ran must not cancel the unrelated call that reuses the struct). The pointer
 *   given to the user is the struct's address with the struct's generation folded into
 *   bits the address leaves zero: bits 1-3 (structs are 16-byte aligned) and, on 64-bit
 *   platforms whose heap addresses stay below 2^48 (all current ones without pointer
 *   tagging), bits 48-63; bit 0 says which. Every function decodes the handle and
 *   compares generations: a handle from an earlier use of the struct is recognised as
 *   over (cancel/reset/delay -EALREADY, active 0) and never acts on the new call. The
 *   generation moves on each time the struct is reused; a struct that has used all its
 *   2^19 generations (2^3 without the high bits) is retired, never reused, and freed with
 *   the reactor, so no two uses of one struct ever carry the same handle. Until the struct
 *   is reused a finished handle answers exactly (-EALREADY ran, -ECANCELED cancelled). The
 *   handle is never dereferenced as such, only converted back to an integer (the integer-
 *   pointer mapping is implementation-defined in C11; every supported compiler keeps the
 *   bits).
 * - A struct goes back to the free list when nobody holds it (`refs`: the reactor's while
 *   the call is pending or running, plus reactor_timer_hold()s). No heap entry or due slot
 *   outlives the call, so none can point at a reused struct.
 * - Repeating calls (reactor_call_every) have interval != 0: after their function returns
 *   they go back into the heap at the next grid point with a new seq (so never twice in
 *   one pass: the pass's list was collected before). */
#include "reactor/reactor_internal.h"
#include "reactor/slow_internal.h"

#include <errno.h>
#include <math.h> /* isfinite: a macro, no libm needed */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define D 4                  /* children per node */
/* Logical slot i lives at heap_mem[i + PAD]: with a 64-byte aligned allocation, the
 * children 4i+1..4i+4 then start at byte 64(i+1), one cache line. */
#define PAD (D - 1)

static inline int entry_less(const reactor__heap_entry *a, const reactor__heap_entry *b)
{
    return a->when < b->when || (a->when == b->when && a->t->seq < b->t->seq);
}

/* Which of the four children k[0..3] is smallest (0..3), and its deadline in *wm. Which
 * one wins is a coin toss, so branches would be mispredicted about half the time (2-3
 * per level, ~15 cycles each): the deadlines are compared with selects (conditional
 * moves), and the (when, seq) comparison is taken only when two compared deadlines are
 * equal. */
static inline size_t min4(const reactor__heap_entry *k, reactor__ns *wm)
{
    reactor__ns w0 = k[0].when, w1 = k[1].when, w2 = k[2].when, w3 = k[3].when;
    size_t a = w1 < w0, b = 2 + (w3 < w2);
    reactor__ns wa = w1 < w0 ? w1 : w0, wb = w3 < w2 ? w3 : w2;
    size_t m = a ^ ((a ^ b) & -(size_t)(wb < wa)); /* wb < wa ? b : a, without a branch
                                                     (GCC emits one for the select) */
    *wm = wb < wa ? wb : wa;
    if (__builtin_expect((w0 == w1) | (w2 == w3) | (wa == wb), 0)) {
        a = entry_less(&k[1], &k[0]);
        b = entry_less(&k[3], &k[2]) ? 3 : 2;
        m = entry_less(&k[b], &k[a]) ? b : a;
    }
    return m;
}

/* The smallest of the children h[c..n-1] of the last, incomplete node. */
static size_t min_tail(const reactor__heap_entry *h, size_t n, size_t c)
{
    size_t m = c;
    for (size_t k = c + 1; k < n; k++)
        if (entry_less(&h[k], &h[m]))
            m = k;
    return m;
}

/* Places e at slot i and tells its timer. */
static inline void put(reactor__heap_entry *h, size_t i, reactor__heap_entry e)
{
    h[i] = e;
    e.t->slot = (uint32_t)i;
}

/* Both sifts return the slot where e ended. */
static size_t sift_up(reactor__heap_entry *h, size_t i, reactor__heap_entry e)
{
    while (i > 0) {
        size_t parent = (i - 1) / D;
        if (!entry_less(&e, &h[parent]))
            break;
        put(h, i, h[parent]);
        i = parent;
    }
    put(h, i, e);
    return i;
}

static size_t sift_down(reactor__heap_entry *h, size_t n, size_t i, reactor__heap_entry e)
{
    size_t c, m;
    while ((c = D * i + 1) + D <= n) {
        const reactor__heap_entry *k = &h[c];
        /* While the four children are compared, the lines of their sixteen children
         * (256 contiguous bytes) are prefetched: whichever child wins, the next level's
         * line is already on its way (the heap is bigger than the caches at a million
         * timers). Written here, not in a helper: GCC deletes a call to a function that
         * only prefetches (it counts as having no effect) unless it was inlined first. */
        if (D * c + D * D < n) {
            const char *g = (const char *)&h[D * c + 1];
            __builtin_prefetch(g);
            __builtin_prefetch(g + 64);
            __builtin_prefetch(g + 128);
            __builtin_prefetch(g + 192);
        }
        reactor__ns wm;
        m = min4(k, &wm);
        if (wm > e.when || (wm == e.when && !entry_less(&k[m], &e)))
            goto done;
        put(h, i, k[m]);
        i = c + m;
    }
    if (c < n && entry_less(&h[m = min_tail(h, n, c)], &e)) {
        put(h, i, h[m]);
        i = m;
    }
done:
    put(h, i, e);
    return i;
}

/* Grows by half, not double: the slack of the heap array counts in the memory per
 * pending timer (16 bytes * cap / n: 16-24 here, 16-32 with doubling). */
static int heap_grow(reactor *r)
{
    size_t cap = r->heap_cap ? r->heap_cap + r->heap_cap / 2 : 64;
    if (cap > UINT32_MAX)
        return -ENOMEM; /* slots are 32-bit */
    void *mem;
    if (posix_memalign(&mem, 64, (cap + PAD) * sizeof(reactor__heap_entry)) != 0)
        return -ENOMEM;
    reactor__heap_entry *h = (reactor__heap_entry *)mem + PAD;
    if (r->heap_n)
        memcpy(h, r->heap, r->heap_n * sizeof *h);
    free(r->heap_mem);
    r->heap_mem = mem;
    r->heap = h;
    r->heap_cap = cap;
    return 0;
}

/* Keeps the root at its timer's real deadline: an entry left early by a lazy move to a
 * later time goes down to that time (and the next root is looked at in turn). */
static void settle_top(reactor *r)
{
    reactor__heap_entry *h = r->heap;
    while (r->heap_n > 0 && h[0].when != h[0].t->when)
        sift_down(h, r->heap_n, 0, (reactor__heap_entry){h[0].t->when, h[0].t});
}

/* Takes the entry at slot i out of the heap (its timer's state is the caller's). */
static void heap_remove(reactor *r, size_t i)
{
    reactor__heap_entry *h = r->heap;
    size_t n = --r->heap_n;
    if (i == n)
        return; /* the last slot (the root if n == 0): nothing moves */
    reactor__heap_entry e = h[n];
    size_t at;
    if (i > 0 && entry_less(&e, &h[(i - 1) / D]))
        at = sift_up(h, i, e);
    else if (D * i + 1 >= n) /* no children (3 slots in 4): it stays here */
        put(h, at = i, e);
    else
        at = sift_down(h, n, i, e);
    if (i == 0 || at == 0) /* a new root: maybe an entry left early by a lazy move */
        settle_top(r);
}

/* Removes the root (collection). */
static inline void heap_pop(reactor *r)
{
    heap_remove(r, 0);
    /* One of the root's children becomes the root at the next pop, and its timer is read
     * then (settle_top, then to run it): a random place in memory, so start loading the
     * four candidates now, a whole pop ahead. */
    reactor__heap_entry *h = r->heap;
    if (r->heap_n > D) {
        __builtin_prefetch(h[1].t);
        __builtin_prefetch(h[2].t);
        __builtin_prefetch(h[3].t);
        __builtin_prefetch(h[4].t);
    }
}

/* ---- Embedded timers --------------------------------------------------------------- */

/* Makes t pending at `when`, or moves it there if it already is. A timer that was not
 * pending gets a new seq when fresh_seq says so (a start; a call keeps its own). */
static int et_set(reactor *r, reactor_etimer *t, reactor__ns when, int fresh_seq)
{
    if (t->state == REACTOR__ET_HEAP) {
        if (when >= t->when) { /* later: lazy, one store (the entry is not even read) */
            t->when = when;
            if (t->slot == 0)
                settle_top(r);
            return 0;
        }
        reactor__heap_entry *h = r->heap;
        t->when = when;
        if (when >= h[t->slot].when) /* still not before its entry's deadline */
            return 0;
        sift_up(h, t->slot, (reactor__heap_entry){when, t}); /* root: at its real time */
        return 0;
    }
    if (r->heap_n == r->heap_cap && heap_grow(r) < 0)
        return -ENOMEM;
    if (t->state == REACTOR__ET_DUE)
        r->due[t->slot] = NULL; /* moved before its turn in this pass: it waits */
    else if (fresh_seq)
        t->seq = r->next_seq++;
    t->when = when;
    t->state = REACTOR__ET_HEAP;
    sift_up(r->heap, r->heap_n++, (reactor__heap_entry){when, t});
    return 0;
}

/* Makes t not pending. */
static inline void et_remove(reactor *r, reactor_etimer *t)
{
    if (t->state == REACTOR__ET_HEAP)
        heap_remove(r, t->slot);
    else if (t->state == REACTOR__ET_DUE)
        r->due[t->slot] = NULL;
    t->state = REACTOR__ET_IDLE;
}

/* The first point of t's grid (t->when + k * interval) strictly later than now: on time,
 * the deadline after the one that ran (drift-free); after a stall the missed points are
 * skipped rather than run in a burst (libevent's event_persist_closure, libev's
 * ev_at += repeat). Strictly later, so reactor_advance's "run until nothing is due"
 * cannot run it twice for one moment. */
static reactor__ns next_grid_point(reactor__ns base, reactor__ns interval, reactor__ns now)
{
    reactor__ns next = REACTOR__NS_MAX + 1;
    if (now >= base) /* whole ns: the grid point is exact, no drift ever */
        next = base + ((now - base) / interval + 1) * interval;
    if (next > REACTOR__NS_MAX) /* (or ~73 years of fake time): start the grid afresh */
        next = reactor__ns_add(now, interval);
    return next;
}

static int bad_delay(double s)
{
    return !(s >= 0) || !isfinite(s); /* also refuses NaN */
}

double reactor_now(reactor *r)
{
    return r ? reactor__s_from_ns(reactor__now_activity(r)) : 0;
}

void reactor_etimer_init(reactor_etimer *t, reactor_etimer_fn fn)
{
    if (t)
        *t = (reactor_etimer){.fn = fn};
}

/* A repeating interval shorter than 1 us would only mean "every iteration": refused as a
 * likely unit mistake (seconds, not microseconds). */
#define MIN_INTERVAL 1e-6

int reactor_etimer_start(reactor *r, reactor_etimer *t, double after, double repeat)
{
    if (!r || !t || !t->fn || bad_delay(after) || bad_delay(repeat) ||
        (repeat != 0 && repeat < MIN_INTERVAL))
        return -EINVAL;
    reactor__ns when = reactor__ns_add(reactor__now_activity(r), reactor__ns_from_s(after));
    int rc = et_set(r, t, when, 1);
    if (rc == 0)
        t->repeat = reactor__ns_from_s(repeat);
    return rc;
}

int reactor_etimer_again(reactor *r, reactor_etimer *t)
{
    if (!r || !t || !t->fn || t->repeat <= 0)
        return -EINVAL;
    return et_set(r, t, reactor__ns_add(reactor__now_activity(r), t->repeat), 1);
}

int reactor_etimer_stop(reactor *r, reactor_etimer *t)
{
    if (!r || !t)
        return -EINVAL;
    if (t->state == REACTOR__ET_HEAP ? t->slot >= r->heap_n || r->heap[t->slot].t != t
        : t->state == REACTOR__ET_DUE ? t->slot >= r->due_n || r->due[t->slot] != t
                                      : 0)
        return -EINVAL; /* not where r keeps it: another reactor's, or corrupted */
    et_remove(r, t);
    return 0;
}

int reactor_etimer_active(const reactor_etimer *t)
{
    return t && t->state != REACTOR__ET_IDLE;
}

double reactor_etimer_time(const reactor_etimer *t)
{
    return t ? reactor__s_from_ns(t->when) : 0;
}

/* ---- Generation-checked handles (see the header comment) ---- */

#define GEN_LOW_SHIFT 1
#define GEN_LOW_BITS 3 /* bits 1-3: the struct is 16-byte aligned; bit 0 is the wide flag */
#define GEN_LOW_MASK ((1u << GEN_LOW_BITS) - 1)
#if UINTPTR_MAX > 0xFFFFFFFFu
#define HIGH_SHIFT 48
#define GEN_WIDE_MAX ((1u << (GEN_LOW_BITS + 16)) - 1)
#endif

static inline uint32_t gen_max(const reactor_timer *t)
{
#ifdef HIGH_SHIFT
    if (t->wide)
        return GEN_WIDE_MAX;
#endif
    (void)t;
    return GEN_LOW_MASK;
}

/* The handle naming the current use of t. */
static inline reactor_timer *handle_of(reactor_timer *t)
{
    uintptr_t v = (uintptr_t)t | (uintptr_t)(t->gen & GEN_LOW_MASK) << GEN_LOW_SHIFT;
#ifdef HIGH_SHIFT
    if (t->wide)
        v |= 1 | (uintptr_t)(t->gen >> GEN_LOW_BITS) << HIGH_SHIFT;
#endif
    return (reactor_timer *)v;
}

/* The struct a handle names, or NULL when the struct has moved on to another call (or h
 * is NULL). */
static inline reactor_timer *timer_of(const reactor_timer *h)
{
    uintptr_t v = (uintptr_t)h;
    uint32_t gen = (uint32_t)(v >> GEN_LOW_SHIFT) & GEN_LOW_MASK;
#ifdef HIGH_SHIFT
    if (v & 1) {
        gen |= (uint32_t)(v >> HIGH_SHIFT) << GEN_LOW_BITS;
        v &= ((uintptr_t)1 << HIGH_SHIFT) - 1;
    }
#endif
    reactor_timer *t = (reactor_timer *)(v & ~(uintptr_t)15);
    return t && t->gen == gen ? t : NULL;
}

/* A fresh struct for a new call: recycled (next generation) or allocated. */
static inline reactor_timer *timer_alloc(reactor *r)
{
    reactor_timer *t = r->free_timers;
    if (t) {
        r->free_timers = t->next_free;
        t->gen++; /* handles of its previous use are stale from now on */
        return t;
    }
    void *p;
    if (posix_memalign(&p, 16, sizeof *t) != 0) {
        errno = ENOMEM;
        return NULL;
    }
    t = p;
    t->gen = 0;
#ifdef HIGH_SHIFT
    t->wide = ((uintptr_t)p >> HIGH_SHIFT) == 0;
#else
    t->wide = 0;
#endif
    return t;
}

/* The struct is no longer used by any call. It keeps its last state (so its handle still
 * answers exactly) until it is reused. */
static void timer_free(reactor *r, reactor_timer *t)
{
    if (!r) {
        free(t);
    } else if (t->gen == gen_max(t)) {
        t->next_free = r->retired_timers; /* all generations used: never reused */
        r->retired_timers = t;
    } else {
        t->next_free = r->free_timers;
        r->free_timers = t;
    }
}

/* ---- Calls (the handle API) -------------------------------------------------------- */

static void call_fire(reactor *r, reactor_etimer *et);

static inline reactor_timer *call_of(reactor_etimer *et)
{
    return (reactor_timer *)((char *)et - offsetof(reactor_timer, et));
}

/* Frees t once nobody holds it (the reactor's reference is dropped when the call ran or
 * was cancelled). */
static void timer_unref(reactor *r, reactor_timer *t)
{
    if (--t->refs == 0)
        timer_free(r, t);
}

/* Shared by call_later (interval 0), call_every and call_at; inlined into each. */
static inline reactor_timer *timer_new(reactor *r, reactor__ns when, reactor_fn fn, void *data,
                                       const char *name, reactor__ns interval)
{
    reactor_timer *t = timer_alloc(r);
    if (!t)
        return NULL; /* errno is ENOMEM */
    *t = (reactor_timer){.et = {.fn = call_fire}, .fn = fn, .data = data, .refs = 1,
                         .state = REACTOR__T_PENDING, .wide = t->wide, .gen = t->gen,
                         .r = r, .name = name ? name : "?", .interval = interval};
    if (et_set(r, &t->et, when, 1) < 0) {
        t->state = REACTOR__T_CANCELLED;
        timer_free(r, t);
        errno = ENOMEM;
        return NULL;
    }
    r->pending++;
    return handle_of(t);
}

reactor_timer *reactor_call_later_named(reactor *r, double delay, reactor_fn fn, void *data,
                                        const char *name)
{
    if (!r || !fn || bad_delay(delay)) {
        errno = EINVAL;
        return NULL;
    }
    reactor__ns now = reactor__now_fresh(r);
    return timer_new(r, reactor__ns_add(now, reactor__ns_from_s(delay)), fn, data, name, 0);
}

reactor_timer *reactor__call_at(reactor *r, reactor__ns when, reactor_fn fn, void *data,
                                const char *name)
{
    return timer_new(r, when, fn, data, name, 0);
}

reactor_timer *reactor_call_every_named(reactor *r, double interval, reactor_fn fn, void *data,
                                        const char *name)
{
    if (!r || !fn || !(interval >= MIN_INTERVAL) || !isfinite(interval)) {
        errno = EINVAL;
        return NULL;
    }
    reactor__ns ns = reactor__ns_from_s(interval), now = reactor__now_fresh(r);
    return timer_new(r, reactor__ns_add(now, ns), fn, data, name, ns);
}

/* 0 and *tp = the struct when the handle's call is still pending. */
static int timer_check(const reactor_timer *h, reactor_timer **tp)
{
    if (!h)
        return -EINVAL;
    reactor_timer *t = *tp = timer_of(h);
    if (!t)
        return -EALREADY; /* the struct now serves another call: this one is over */
    if (t->state == REACTOR__T_CALLED)
        return -EALREADY;
    if (t->state == REACTOR__T_CANCELLED || !t->r)
        return -ECANCELED;
    return 0;
}

int reactor_timer_cancel(reactor_timer *h)
{
    reactor_timer *t;
    int rc = timer_check(h, &t);
    if (rc)
        return rc;
    reactor *r = t->r;
    et_remove(r, &t->et); /* out of the heap or the due list now */
    t->state = REACTOR__T_CANCELLED;
    r->pending--;
    timer_unref(r, t); /* the handle is gone now unless the caller holds it (or the
                          call's own function is running: run_repeating holds it) */
    return 0;
}

int reactor_timer_reset(reactor_timer *h, double seconds)
{
    reactor_timer *t;
    int rc = timer_check(h, &t);
    if (rc)
        return rc;
    if (bad_delay(seconds))
        return -EINVAL;
    reactor__ns now = reactor__now_fresh(t->r);
    /* Keeps its seq: among calls due at that time it keeps its original order (what
     * task.Clock's stable re-sort gives). A repeating call's grid restarts there. */
    return et_set(t->r, &t->et, reactor__ns_add(now, reactor__ns_from_s(seconds)), 0);
}

int reactor_timer_delay(reactor_timer *h, double seconds)
{
    reactor_timer *t;
    int rc = timer_check(h, &t);
    if (rc)
        return rc;
    if (bad_delay(seconds))
        return -EINVAL;
    return et_set(t->r, &t->et, reactor__ns_add(t->et.when, reactor__ns_from_s(seconds)), 0);
}

int reactor_timer_active(const reactor_timer *h)
{
    const reactor_timer *t = timer_of(h);
    return t && t->r && t->state == REACTOR__T_PENDING;
}

double reactor_timer_time(const reactor_timer *h)
{
    const reactor_timer *t = timer_of(h);
    return t ? reactor__s_from_ns(t->et.when) : 0;
}

reactor_timer *reactor_timer_hold(reactor_timer *h)
{
    reactor_timer *t = timer_of(h);
    if (!t)
        return NULL; /* NULL, or a handle whose struct already serves another call */
    t->refs++;
    return h;
}

void reactor_timer_release(reactor_timer *h)
{
    /* Given back to malloc, not the free list: the reactor may be gone already (a held
     * handle is the holder's until this call, like malloc'd memory). While the reactor
     * lives the call is over (else the reactor's own reference would remain), so nothing
     * in the heap points at it. */
    reactor_timer *t = timer_of(h);
    if (t && t->refs > 0 && --t->refs == 0)
        free(t);
}

size_t reactor_pending_timers(const reactor *r)
{
    return r ? r->pending : 0;
}

/* A repeating call stays PENDING while its function runs (cancel from inside is
 * allowed); the extra reference keeps the struct alive if the function cancels it. */
static void run_repeating(reactor *r, reactor_timer *t)
{
    t->refs++;
    REACTOR__TRACE(r, "timer cb=%s (repeating)", t->name);
    t->fn(r, t->data);
    /* Still active and not moved by reset/delay from inside: back on the grid, after
     * calls already due at that time (a new seq). The function may have taken a while:
     * the grid is measured against a fresh clock reading. */
    if (t->state == REACTOR__T_PENDING && t->et.state == REACTOR__ET_IDLE &&
        et_set(r, &t->et,
               next_grid_point(t->et.when, t->interval, reactor__now_fresh(r)), 1) < 0) {
        t->state = REACTOR__T_CANCELLED; /* out of memory: it stops as if cancelled */
        r->pending--;
        t->refs--; /* the reactor's reference; never the last, the run's is still here */
    }
    timer_unref(r, t);
}

/* The function of every call's embedded timer. */
static void call_fire(reactor *r, reactor_etimer *et)
{
    reactor_timer *t = call_of(et);
    if (t->interval != 0) { /* repeating: the one extra branch a one-shot pays */
        run_repeating(r, t);
        return;
    }
    t->state = REACTOR__T_CALLED; /* before fn: cancel() from inside says -EALREADY */
    r->pending--;
    REACTOR__TRACE(r, "timer cb=%s", t->name);
    t->fn(r, t->data);
    timer_unref(r, t); /* the handle was valid during its own call; now it goes */
}

/* ---- Running ---------------------------------------------------------------------- */

#if defined(__GNUC__) || defined(__clang__)
#define NOINLINE_T __attribute__((noinline))
#else
#define NOINLINE_T
#endif
static NOINLINE_T void run_timed(reactor *r, reactor_etimer *t);

size_t reactor__run_timers(reactor *r)
{
    /* Timers started by the functions below count from the moment this pass began (the
     * loop's reading at the start of the iteration), as libev's ev_now: one clock
     * reading per pass, not one per start. */
    if (r->in_iteration && !r->fake_clock) {
        r->act_now = r->now;
        r->act_iter = r->iter;
    }
    /* Phase 1: collect. Everything due now leaves the heap, in (when, seq) order. */
    r->due_n = 0;
    while (r->heap_n > 0 && r->heap[0].when <= r->now) {
        if (r->due_n == r->due_cap) {
            size_t cap = r->due_cap ? r->due_cap * 2 : 64;
            reactor_etimer **d = realloc(r->due, cap * sizeof *d);
            if (!d)
                break; /* the rest stays in the heap for the next pass */
            r->due = d;
            r->due_cap = cap;
        }
        reactor_etimer *t = r->heap[0].t; /* at its real deadline: settle_top keeps it so */
        heap_pop(r);
        t->state = REACTOR__ET_DUE;
        t->slot = (uint32_t)r->due_n;
        r->due[r->due_n++] = t;
    }
    /* Phase 2: run. A timer an earlier one stopped or moved left a NULL. */
    size_t ran = 0;
    for (size_t i = 0; i < r->due_n; i++) {
        reactor_etimer *t = r->due[i];
        if (!t)
            continue;
        if (i + 1 < r->due_n && r->due[i + 1])
            __builtin_prefetch(r->due[i + 1]);
        t->state = REACTOR__ET_IDLE;
        if (t->repeat > 0 &&
            et_set(r, t, next_grid_point(t->when, t->repeat, r->now), 1) < 0)
            t->repeat = 0; /* out of memory: this run is its last */
        if (t->fn != call_fire)
            REACTOR__TRACE(r, "timer cb=etimer");
        ran++;
        if (r->slow)
            run_timed(r, t);
        else
            t->fn(r, t); /* may free t: not touched after */
    }
    r->due_n = 0;
    return ran;
}

/* ---- The slow-callback detector (slow.c) ------------------------------------------ */

/* A timer's function with the detector on: a timed section named after the call's
 * function and name, or the embedded timer's function. */
static NOINLINE_T void run_timed(reactor *r, reactor_etimer *t)
{
    void (*fn)(void) = (void (*)(void))t->fn;
    const char *name = NULL;
    if (t->fn == call_fire) {
        const reactor_timer *c = call_of(t);
        fn = (void (*)(void))c->fn;
        name = c->name;
    }
    reactor__slow_mark m;
    reactor__slow_open(r, &m, REACTOR__SLOW_TIMER, fn, name);
    t->fn(r, t); /* may free t */
    reactor__slow_leave(&m);
}

/* Timers due by `now` in the subtree of logical slot i. A child's entry is never earlier
 * than its parent's, so the walk stops at the first later one; an entry may be earlier
 * than its timer (a lazy move later), whose own deadline is what counts. Recursion
 * depth: the heap's height (log4 n). */
static void overdue_walk(const reactor *r, size_t i, reactor__ns now, size_t *n,
                         reactor__ns *oldest)
{
    if (i >= r->heap_n || r->heap[i].when > now)
        return;
    const reactor_etimer *t = r->heap[i].t;
    if (t->when <= now) {
        (*n)++;
        if (t->when < *oldest)
            *oldest = t->when;
    }
    for (size_t c = D * i + 1; c <= D * i + D; c++)
        overdue_walk(r, c, now, n, oldest);
}

size_t reactor__timers_overdue(reactor *r, int64_t now, int64_t *oldest)
{
    size_t n = 0;
    reactor__ns first = REACTOR__NS_MAX;
    /* Collected in this pass and still to run (the one running is no longer DUE). */
    for (size_t i = 0; i < r->due_n; i++) {
        const reactor_etimer *t = r->due[i];
        if (t && t->state == REACTOR__ET_DUE && t->when <= now) {
            n++;
            if (t->when < first)
                first = t->when;
        }
    }
    overdue_walk(r, 0, now, &n, &first);
    *oldest = first;
    return n;
}

int reactor__timer_timeout_ms(const reactor *r)
{
    if (r->heap_n == 0)
        return -1;
    /* Rounded UP, and clamped so a far timer cannot overflow the int. */
    return reactor__ceil_ms(r->heap[0].when - r->now);
}

/* Forgets one timer that is still pending at reactor_free(). */
static void forget(reactor_etimer *et)
{
    et->state = REACTOR__ET_IDLE;
    if (et->fn != call_fire)
        return; /* embedded: the caller's; now not active */
    /* A call is cancelled without running. A handle the user holds survives with
     * r == NULL (it then reports itself cancelled). */
    reactor_timer *t = call_of(et);
    t->state = REACTOR__T_CANCELLED;
    t->r = NULL;
    if (--t->refs == 0)
        free(t);
}

void reactor__timers_free(reactor *r)
{
    for (size_t i = 0; i < r->heap_n; i++)
        forget(r->heap[i].t);
    for (size_t i = 0; i < r->due_n; i++) /* (only when freed from inside a pass) */
        if (r->due[i])
            forget(r->due[i]);
    r->heap_n = r->due_n = 0;
    r->pending = 0;
    free(r->heap_mem);
    free(r->due);
    for (reactor_timer **list = &r->free_timers; list; list = list == &r->free_timers
                                                           ? &r->retired_timers : NULL) {
        while (*list) {
            reactor_timer *t = *list;
            *list = t->next_free;
            free(t);
        }
    }
}
