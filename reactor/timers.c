/* Timers: a 4-ary min-heap of {when, timer*} ordered by (when, seq), with lazy removal.
 *
 * - seq is a counter taken at scheduling time: two calls due at the same moment run in
 *   the order they were scheduled (Twisted's task.Clock is FIFO; its real reactor is not).
 * - 4-ary rather than binary (libev's choice): half the depth, and the heap array is laid
 *   out so the four children of a node fill exactly one 64-byte cache line. At a million
 *   timers the heap and the timers are far bigger than the caches, so cache misses and
 *   mispredicted branches are what costs: the smallest of four children is found without
 *   branches, the next level's lines and the next timers to fire are prefetched.
 * - Lazy removal (Twisted's reactor, semantics D6). Timers do not know their heap slot:
 *   keeping a back-index costs a store into a random timer for every entry a sift moves
 *   (a cache miss each at a million timers: ~8 per schedule+fire). Instead an entry is
 *   *live* when its timer is still waiting in the heap
 *   (where == IN_HEAP) and the entry's deadline is the timer's `hwhen`; any other entry is
 *   stale and is dropped when it reaches the root. So:
 *     cancel     O(1): the timer's entry goes stale;
 *     later      O(1): (reset/delay to a time >= hwhen) only `when` changes; when the
 *                early entry reaches the root it is put back at `when` (Twisted's
 *                delayed_time);
 *     sooner     O(log n): a new entry is pushed, the old one goes stale;
 *     re-arm     of a repeating call that still has stale entries (it was moved sooner):
 *                O(n), they are compacted away first, because its new seq would change
 *                how they compare and break the heap's order (Twisted's own move to an
 *                earlier time is O(n) every time: list.index).
 *   The root is always kept live and at its timer's real deadline (settle_top), so
 *   reactor.c reads the next deadline straight from heap[0] and the poll timeout is
 *   exact. Stale entries are bounded as in Twisted: when more than 50 and more than half
 *   of the heap are stale, the heap is compacted in O(n).
 * - A timer struct is freed only when no heap entry or due-list slot points at it
 *   (`entries`) and nobody holds it (`refs`), so a stale entry never points at a struct
 *   that was recycled for another call.
 * - Running is collect-then-run (libuv's uv__run_timers): every due timer is first moved
 *   to the `due` list, then they run in order. A timer scheduled while they run goes into
 *   the heap, so it waits for the next iteration (after one poll: timers cannot starve
 *   I/O, D3). A timer cancelled or moved by an earlier one of the same pass is no longer
 *   IN_DUE when its turn comes, so it does not run.
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
 * - Repeating calls (reactor_call_every) are the same struct with interval != 0: after
 *   their function returns they go back into the heap at the next grid point with a new
 *   seq (so never twice in one pass: the pass's list was collected before). */
#include "reactor/reactor_internal.h"

#include <errno.h>
#include <math.h> /* isfinite: a macro, no libm needed */
#include <stdlib.h>
#include <string.h>

#define COMPACT_MIN 50       /* Twisted's threshold of cancelled calls before compacting */
#define PREFETCH 16          /* heap_compact: timers loaded this many entries ahead */
#define D 4                  /* children per node */
/* Logical slot i lives at heap_mem[i + PAD]: with a 64-byte aligned allocation, the
 * children 4i+1..4i+4 then start at byte 64(i+1), one cache line. */
#define PAD (D - 1)

static inline int entry_less(const reactor__heap_entry *a, const reactor__heap_entry *b)
{
    return a->when < b->when || (a->when == b->when && a->t->seq < b->t->seq);
}

static inline int entry_live(const reactor__heap_entry *e)
{
    return e->t->where == REACTOR__IN_HEAP && e->when == e->t->hwhen;
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

static void sift_up(reactor__heap_entry *h, size_t i, reactor__heap_entry e)
{
    while (i > 0) {
        size_t parent = (i - 1) / D;
        if (!entry_less(&e, &h[parent]))
            break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = e;
}

static void sift_down(reactor__heap_entry *h, size_t n, size_t i, reactor__heap_entry e)
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
        h[i] = k[m];
        i = c + m;
    }
    if (c < n && entry_less(&h[m = min_tail(h, n, c)], &e)) {
        h[i] = h[m];
        i = m;
    }
done:
    h[i] = e;
}

static int heap_grow(reactor *r)
{
    size_t cap = r->heap_cap ? r->heap_cap * 2 : 64;
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

/* Adds an entry for t at `when`; the caller updates t's state. */
static int heap_push(reactor *r, reactor_timer *t, reactor__ns when)
{
    if (r->heap_n == r->heap_cap && heap_grow(r) < 0)
        return -ENOMEM;
    t->entries++;
    sift_up(r->heap, r->heap_n++, (reactor__heap_entry){when, t});
    return 0;
}

/* Removes the root entry (its timer's `entries` is the caller's business). */
static void heap_pop(reactor *r)
{
    reactor__heap_entry *h = r->heap;
    size_t n = --r->heap_n;
    if (n == 0)
        return;
    sift_down(h, n, 0, h[n]);
    /* One of the root's children becomes the root at the next pop, and its timer is read
     * then (settle_top, then to run it): a random place in memory, so start loading the
     * four candidates now, a whole pop ahead. */
    if (n > D) {
        __builtin_prefetch(h[1].t);
        __builtin_prefetch(h[2].t);
        __builtin_prefetch(h[3].t);
        __builtin_prefetch(h[4].t);
    }
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

/* Frees t once nothing points at it any more. */
static inline void timer_maybe_free(reactor *r, reactor_timer *t)
{
    if (t->refs == 0 && t->entries == 0)
        timer_free(r, t);
}

/* Drops one reference (the reactor's, when the call ran or was cancelled). */
static void timer_unref(reactor *r, reactor_timer *t)
{
    t->refs--;
    timer_maybe_free(r, t);
}

/* Drops one heap entry or due-list slot pointing at t. */
static void timer_drop_entry(reactor *r, reactor_timer *t)
{
    t->entries--;
    timer_maybe_free(r, t);
}

/* Keeps the root live and at its timer's real deadline: stale entries are dropped, an
 * entry left early by a lazy move to a later time goes down to that time. */
static void settle_top(reactor *r)
{
    while (r->heap_n > 0) {
        reactor__heap_entry e = r->heap[0];
        reactor_timer *t = e.t;
        if (!entry_live(&e)) {
            heap_pop(r);
            timer_drop_entry(r, t);
        } else if (e.when != t->when) {
            t->hwhen = t->when;
            sift_down(r->heap, r->heap_n, 0, (reactor__heap_entry){t->when, t});
        } else {
            return;
        }
    }
}

/* Drops every stale entry and rebuilds the heap (Floyd's O(n) heapify). A timer with
 * two live-looking entries (moved sooner, later and back to the same time) keeps one. */
static void heap_compact(reactor *r)
{
    reactor__heap_entry *h = r->heap;
    size_t k = 0, n = r->heap_n;
    /* Both passes read or write the timer of every entry: random places in memory at a
     * million timers. Each loads the timer PREFETCH entries ahead, so the waits overlap
     * (a cancel of a random pending timer pays for its share of these passes). */
    for (size_t i = 0; i < n; i++) {
        if (i + PREFETCH < n)
            __builtin_prefetch(h[i + PREFETCH].t, 1);
        reactor_timer *t = h[i].t;
        if (entry_live(&h[i])) {
            t->where = REACTOR__IN_COMPACT; /* its other entries now look stale */
            h[k++] = h[i];
        } else {
            timer_drop_entry(r, t);
        }
    }
    r->heap_n = k;
    for (size_t i = 0; i < k; i++) {
        if (i + PREFETCH < k)
            __builtin_prefetch(h[i + PREFETCH].t, 1);
        h[i].t->where = REACTOR__IN_HEAP;
    }
    for (size_t i = k > 1 ? (k - 2) / D + 1 : 0; i-- > 0;)
        sift_down(h, k, i, h[i]);
}

static inline void maybe_compact(reactor *r)
{
    size_t stale = r->heap_n - r->heap_live;
    if (stale > COMPACT_MIN && stale > r->heap_n / 2)
        heap_compact(r);
}

/* Shared by call_later (interval 0), call_every and call_at; inlined into each. `now` is
 * the repeating grid's origin. */
static inline reactor_timer *timer_new(reactor *r, reactor__ns now, reactor__ns when,
                                       reactor_fn fn, void *data, const char *name,
                                       reactor__ns interval)
{
    reactor_timer *t = timer_alloc(r);
    if (!t)
        return NULL; /* errno is ENOMEM */
    *t = (reactor_timer){.when = when, .hwhen = when, .fn = fn, .data = data, .refs = 1,
                         .state = REACTOR__T_PENDING, .where = REACTOR__IN_HEAP,
                         .wide = t->wide, .gen = t->gen, .seq = r->next_seq++, .r = r,
                         .name = name ? name : "?", .interval = interval, .base = now};
    if (heap_push(r, t, when) < 0) {
        t->state = REACTOR__T_CANCELLED;
        timer_free(r, t);
        errno = ENOMEM;
        return NULL;
    }
    r->heap_live++;
    r->pending++;
    return handle_of(t);
}

reactor_timer *reactor_call_later_named(reactor *r, double delay, reactor_fn fn, void *data,
                                        const char *name)
{
    if (!r || !fn || !(delay >= 0) || !isfinite(delay)) { /* also refuses NaN */
        errno = EINVAL;
        return NULL;
    }
    reactor__ns now = reactor__now_fresh(r);
    return timer_new(r, now, reactor__ns_add(now, reactor__ns_from_s(delay)), fn, data, name, 0);
}

reactor_timer *reactor__call_at(reactor *r, reactor__ns when, reactor_fn fn, void *data,
                                const char *name)
{
    return timer_new(r, when, when, fn, data, name, 0);
}

/* A repeating call runs at most once per iteration (missed grid points are skipped), so
 * an interval shorter than 1 us would only mean "every iteration": refused as a likely
 * unit mistake (seconds, not microseconds). */
#define MIN_INTERVAL 1e-6

reactor_timer *reactor_call_every_named(reactor *r, double interval, reactor_fn fn, void *data,
                                        const char *name)
{
    if (!r || !fn || !(interval >= MIN_INTERVAL) || !isfinite(interval)) {
        errno = EINVAL;
        return NULL;
    }
    reactor__ns ns = reactor__ns_from_s(interval), now = reactor__now_fresh(r);
    return timer_new(r, now, reactor__ns_add(now, ns), fn, data, name, ns);
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
    if (t->where == REACTOR__IN_HEAP)
        r->heap_live--; /* its entry is stale from now on */
    t->where = REACTOR__IN_NONE; /* a due-list slot is skipped too */
    t->state = REACTOR__T_CANCELLED;
    r->pending--;
    int top = r->heap_n > 0 && r->heap[0].t == t;
    timer_unref(r, t); /* the handle is gone now unless the caller holds it */
    if (top)
        settle_top(r);
    maybe_compact(r);
    return 0;
}

/* Moves a pending timer to `when`, keeping its seq: among calls due at that time it
 * keeps its original order (what task.Clock's stable re-sort gives). */
static int timer_move(reactor_timer *t, reactor__ns when)
{
    reactor *r = t->r;
    if (t->where == REACTOR__IN_HEAP && when >= t->hwhen) {
        t->when = when; /* later: its entry is put back when it reaches the root */
        if (r->heap[0].t == t)
            settle_top(r);
    } else {
        /* Sooner, or not in the heap (collected for this pass, or its own function is
         * running): a new entry; an older one goes stale. */
        int rc = heap_push(r, t, when);
        if (rc < 0)
            return rc;
        if (t->where != REACTOR__IN_HEAP)
            r->heap_live++;
        t->where = REACTOR__IN_HEAP;
        t->when = t->hwhen = when;
        maybe_compact(r);
    }
    t->base = when; /* a repeating call's grid restarts at its new deadline */
    return 0;
}

int reactor_timer_reset(reactor_timer *h, double seconds)
{
    reactor_timer *t;
    int rc = timer_check(h, &t);
    if (rc)
        return rc;
    if (!(seconds >= 0) || !isfinite(seconds))
        return -EINVAL;
    reactor__ns now = reactor__now_fresh(t->r);
    return timer_move(t, reactor__ns_add(now, reactor__ns_from_s(seconds)));
}

int reactor_timer_delay(reactor_timer *h, double seconds)
{
    reactor_timer *t;
    int rc = timer_check(h, &t);
    if (rc)
        return rc;
    if (!(seconds >= 0) || !isfinite(seconds))
        return -EINVAL;
    return timer_move(t, reactor__ns_add(t->when, reactor__ns_from_s(seconds)));
}

int reactor_timer_active(const reactor_timer *h)
{
    const reactor_timer *t = timer_of(h);
    return t && t->r && t->state == REACTOR__T_PENDING;
}

double reactor_timer_time(const reactor_timer *h)
{
    const reactor_timer *t = timer_of(h);
    return t ? reactor__s_from_ns(t->when) : 0;
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
     * lives and a stale entry still points at t, the heap frees it later. */
    reactor_timer *t = timer_of(h);
    if (t && t->refs > 0 && --t->refs == 0 && t->entries == 0)
        free(t);
}

size_t reactor_pending_timers(const reactor *r)
{
    return r ? r->pending : 0;
}

/* Next deadline of a repeating call that just ran: the first grid point base + k *
 * interval strictly later than now. On time, that is the deadline after the one that
 * ran (drift-free); after a stall the missed points are skipped rather than run in a
 * burst (libevent's event_persist_closure, libev's ev_at += repeat). Strictly later, so
 * reactor_advance's "run until nothing is due" cannot run it twice for one moment. */
static int timer_rearm(reactor *r, reactor_timer *t)
{
    reactor__ns now = reactor__now_fresh(r); /* the function may have taken a while */
    reactor__ns next;
    if (now >= t->base) { /* whole ns: the grid point is exact, no drift ever */
        next = t->base + ((now - t->base) / t->interval + 1) * t->interval;
    } else { /* (a grid in the future cannot happen; if it did:) */
        next = REACTOR__NS_MAX + 1;
    }
    if (next > REACTOR__NS_MAX) { /* or ~73 years of fake time: start the grid afresh */
        t->base = now;
        next = reactor__ns_add(now, t->interval);
    }
    /* Stale entries of its own (left by a move sooner) would compare differently under
     * the new seq and break the heap's order: drop them first (O(n), rare). */
    if (t->entries > 0)
        heap_compact(r);
    t->seq = r->next_seq++; /* scheduled now: after calls already due at that time */
    int rc = heap_push(r, t, next);
    if (rc < 0)
        return rc;
    t->when = t->hwhen = next;
    t->where = REACTOR__IN_HEAP;
    r->heap_live++;
    return 0;
}

/* A repeating call stays PENDING while its function runs (cancel from inside is
 * allowed); the extra reference keeps the struct alive if the function cancels it. */
static void run_repeating(reactor *r, reactor_timer *t)
{
    t->refs++;
    REACTOR__TRACE(r, "timer cb=%s (repeating)", t->name);
    t->fn(r, t->data);
    /* Still active and not moved by reset/delay from inside: back on the grid. */
    if (t->state == REACTOR__T_PENDING && t->where == REACTOR__IN_NONE && timer_rearm(r, t) < 0) {
        t->state = REACTOR__T_CANCELLED; /* out of memory: it stops as if cancelled */
        r->pending--;
        t->refs--; /* the reactor's reference; never the last, the run's is still here */
    }
    timer_unref(r, t);
}

size_t reactor__run_timers(reactor *r)
{
    /* Phase 1: collect. Everything due now leaves the heap, in (when, seq) order; the
     * root's entry becomes the due-list slot (`entries` unchanged). */
    r->due_n = 0;
    while (r->heap_n > 0 && r->heap[0].when <= r->now) {
        if (r->due_n == r->due_cap) {
            size_t cap = r->due_cap ? r->due_cap * 2 : 64;
            reactor_timer **d = realloc(r->due, cap * sizeof *d);
            if (!d)
                break; /* the rest stays in the heap for the next pass */
            r->due = d;
            r->due_cap = cap;
        }
        reactor_timer *t = r->heap[0].t; /* live: settle_top keeps it so */
        heap_pop(r);
        r->heap_live--;
        t->where = REACTOR__IN_DUE;
        r->due[r->due_n++] = t;
        settle_top(r);
    }
    /* Phase 2: run. A timer an earlier one cancelled or moved is no longer IN_DUE. */
    size_t ran = 0;
    for (size_t i = 0; i < r->due_n; i++) {
        reactor_timer *t = r->due[i];
        t->entries--; /* its slot; the reactor's reference keeps it alive if pending */
        if (t->where != REACTOR__IN_DUE) {
            timer_maybe_free(r, t);
            continue;
        }
        t->where = REACTOR__IN_NONE;
        if (t->interval != 0) { /* repeating: the one extra branch a one-shot pays */
            run_repeating(r, t);
            ran++;
            continue;
        }
        t->state = REACTOR__T_CALLED; /* before fn: cancel() from inside says -EALREADY */
        r->pending--;
        REACTOR__TRACE(r, "timer cb=%s", t->name);
        t->fn(r, t->data);
        timer_unref(r, t); /* the handle was valid during its own call; now it goes */
        ran++;
    }
    r->due_n = 0;
    return ran;
}

int reactor__timer_timeout_ms(const reactor *r)
{
    if (r->heap_n == 0)
        return -1;
    /* Rounded UP, and clamped so a far timer cannot overflow the int. */
    return reactor__ceil_ms(r->heap[0].when - r->now);
}

void reactor__timers_free(reactor *r)
{
    /* Pending calls are cancelled without running. A handle the user holds survives
     * with r == NULL (it then reports itself cancelled). */
    for (size_t i = 0; i < r->heap_n; i++) {
        reactor_timer *t = r->heap[i].t;
        if (t->where == REACTOR__IN_HEAP) {
            t->state = REACTOR__T_CANCELLED;
            t->where = REACTOR__IN_NONE;
            t->refs--;
        }
        t->r = NULL;
        timer_drop_entry(NULL, t);
    }
    r->heap_n = r->heap_live = 0;
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
