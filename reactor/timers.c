/* Timers: a 4-ary min-heap ordered by (when, seq), the libevent/libuv/libev design.
 *
 * - seq is a counter taken at scheduling time: two calls due at the same moment run in
 *   the order they were scheduled (Twisted's task.Clock is FIFO; its real reactor is not).
 * - Each timer knows its heap slot (t->idx), so cancel and reset are O(log n): a cancelled
 *   timer leaves the heap at once (no lazy compaction needed, semantics D6).
 * - 4-ary rather than binary (libev's choice): half the depth, and the heap array is laid
 *   out so the four children of a node fill exactly one 64-byte cache line. At a million
 *   timers the heap is far bigger than the caches, so misses are what costs.
 * - Running is collect-then-run (libuv's uv__run_timers): every due timer is first moved
 *   to the `due` list, then they run in order. A timer scheduled while they run goes into
 *   the heap, not the list, so it waits for the next iteration (after one poll: timers
 *   cannot starve I/O, D3). A timer cancelled by an earlier one in the same pass is taken
 *   out of the list (its slot set to NULL), so it never runs.
 * - Timer structs are recycled through a free list: scheduling does not call malloc once
 *   the reactor has warmed up.
 * - Repeating calls (reactor_call_every) are the same struct with interval != 0: after
 *   their function returns they go back into the heap at the next grid point (so never
 *   twice in one pass: the pass's list was collected before). */
#include "reactor/reactor_internal.h"

#include <errno.h>
#include <math.h> /* isfinite: a macro, no libm needed */
#include <stdlib.h>
#include <string.h>

#define FREE_TIMERS_MAX 4096 /* recycled structs kept; more are given back to malloc */
#define D 4                  /* children per node */
/* Logical slot i lives at heap_mem[i + PAD]: with a 64-byte aligned allocation, the
 * children 4i+1..4i+4 then start at byte 64(i+1), one cache line. */
#define PAD 3

static inline int entry_less(const reactor__heap_entry *a, const reactor__heap_entry *b)
{
    return a->when < b->when || (a->when == b->when && a->t->seq < b->t->seq);
}

/* Both sifts keep the array and its size in locals: the t->idx stores would otherwise
 * force the compiler to reload r->heap and r->heap_n (size_t may alias them) at every
 * level. */
static void sift_up(reactor *r, size_t i, reactor__heap_entry e)
{
    reactor__heap_entry *h = r->heap;
    while (i > 0) {
        size_t parent = (i - 1) / D;
        if (!entry_less(&e, &h[parent]))
            break;
        h[i] = h[parent];
        h[i].t->idx = i;
        i = parent;
    }
    h[i] = e;
    e.t->idx = i;
}

static void sift_down(reactor *r, size_t i, reactor__heap_entry e)
{
    reactor__heap_entry *h = r->heap;
    const size_t n = r->heap_n;
    for (;;) {
        size_t c = D * i + 1;
        if (c >= n)
            break;
        size_t m = c; /* the smallest child */
        if (c + D <= n) { /* all four children: the common case, unrolled */
            size_t m2 = entry_less(&h[c + 3], &h[c + 2]) ? c + 3 : c + 2;
            m = entry_less(&h[c + 1], &h[c]) ? c + 1 : c;
            if (entry_less(&h[m2], &h[m]))
                m = m2;
        } else {
            for (size_t k = c + 1; k < n; k++)
                if (entry_less(&h[k], &h[m]))
                    m = k;
        }
        if (!entry_less(&h[m], &e))
            break;
        h[i] = h[m];
        h[i].t->idx = i;
        i = m;
    }
    h[i] = e;
    e.t->idx = i;
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

static int heap_push(reactor *r, reactor_timer *t)
{
    if (r->heap_n == r->heap_cap && heap_grow(r) < 0)
        return -ENOMEM;
    t->where = REACTOR__IN_HEAP;
    sift_up(r, r->heap_n++, (reactor__heap_entry){t->when, t});
    return 0;
}

/* Takes slot i out of the heap in O(log n): the last entry fills the hole and moves up
 * or down to where it belongs. */
static void heap_remove(reactor *r, size_t i)
{
    reactor_timer *t = r->heap[i].t;
    t->where = REACTOR__IN_NONE;
    reactor__heap_entry last = r->heap[--r->heap_n];
    if (i == r->heap_n)
        return;
    if (i > 0 && entry_less(&last, &r->heap[(i - 1) / D]))
        sift_up(r, i, last);
    else
        sift_down(r, i, last);
}

static void timer_free(reactor *r, reactor_timer *t)
{
    if (r && r->n_free_timers < FREE_TIMERS_MAX) {
        t->next_free = r->free_timers;
        r->free_timers = t;
        r->n_free_timers++;
    } else {
        free(t);
    }
}

/* Drops the reactor's reference (the call ran or was cancelled). */
static void timer_unref(reactor *r, reactor_timer *t)
{
    if (--t->refs == 0)
        timer_free(r, t);
}

/* Takes a pending timer out of wherever it waits (heap or this pass's due list). */
static void timer_unlink(reactor *r, reactor_timer *t)
{
    if (t->where == REACTOR__IN_HEAP)
        heap_remove(r, t->idx);
    else if (t->where == REACTOR__IN_DUE)
        r->due[t->idx] = NULL;
    t->where = REACTOR__IN_NONE;
}

/* Shared by call_later (interval 0) and call_every; inlined into both. */
static inline reactor_timer *timer_new(reactor *r, double delay, reactor_fn fn, void *data,
                                       const char *name, double interval)
{
    reactor_timer *t = r->free_timers;
    if (t) {
        r->free_timers = t->next_free;
        r->n_free_timers--;
    } else if (!(t = malloc(sizeof *t))) {
        return NULL; /* errno is ENOMEM */
    }
    double now = reactor__now_fresh(r), when = now + delay;
    *t = (reactor_timer){.r = r, .when = when, .seq = r->next_seq++, .fn = fn,
                         .data = data, .name = name ? name : "?", .refs = 1,
                         .state = REACTOR__T_PENDING, .interval = interval, .base = now};
    if (heap_push(r, t) < 0) {
        timer_free(r, t);
        errno = ENOMEM;
        return NULL;
    }
    r->pending++;
    return t;
}

reactor_timer *reactor_call_later_named(reactor *r, double delay, reactor_fn fn, void *data,
                                        const char *name)
{
    if (!r || !fn || !(delay >= 0) || !isfinite(delay)) { /* also refuses NaN */
        errno = EINVAL;
        return NULL;
    }
    return timer_new(r, delay, fn, data, name, 0);
}

/* Below 1 us a clock value of a few days since boot could not tell two deadlines apart
 * (a double's spacing there is ~1e-10 s) and the timer would spin. */
#define MIN_INTERVAL 1e-6

reactor_timer *reactor_call_every_named(reactor *r, double interval, reactor_fn fn, void *data,
                                        const char *name)
{
    if (!r || !fn || !(interval >= MIN_INTERVAL) || !isfinite(interval)) {
        errno = EINVAL;
        return NULL;
    }
    return timer_new(r, interval, fn, data, name, interval);
}

static int timer_check(const reactor_timer *t)
{
    if (!t)
        return -EINVAL;
    if (t->state == REACTOR__T_CALLED)
        return -EALREADY;
    if (t->state == REACTOR__T_CANCELLED || !t->r)
        return -ECANCELED;
    return 0;
}

int reactor_timer_cancel(reactor_timer *t)
{
    int rc = timer_check(t);
    if (rc)
        return rc;
    reactor *r = t->r;
    timer_unlink(r, t);
    t->state = REACTOR__T_CANCELLED;
    r->pending--;
    timer_unref(r, t); /* the handle is gone now unless the caller holds it */
    return 0;
}

/* Moves a pending timer to `when`, keeping its seq: among calls due at that time it
 * keeps its original scheduling order (what task.Clock's stable re-sort gives). */
static int timer_move(reactor_timer *t, double when)
{
    reactor *r = t->r;
    if (!isfinite(when))
        return -EINVAL;
    t->base = when; /* a repeating call's grid restarts at its new deadline */
    if (t->where == REACTOR__IN_HEAP) {
        size_t i = t->idx;
        t->when = when;
        reactor__heap_entry e = {when, t};
        if (i > 0 && entry_less(&e, &r->heap[(i - 1) / D]))
            sift_up(r, i, e);
        else
            sift_down(r, i, e);
        return 0;
    }
    /* Collected for this pass but not run yet: it goes back to the heap (heap_push
     * cannot fail here, the heap had room for it a moment ago). */
    timer_unlink(r, t);
    t->when = when;
    return heap_push(r, t);
}

int reactor_timer_reset(reactor_timer *t, double seconds)
{
    int rc = timer_check(t);
    if (rc)
        return rc;
    if (!(seconds >= 0))
        return -EINVAL;
    return timer_move(t, reactor__now_fresh(t->r) + seconds);
}

int reactor_timer_delay(reactor_timer *t, double seconds)
{
    int rc = timer_check(t);
    if (rc)
        return rc;
    if (!(seconds >= 0))
        return -EINVAL;
    return timer_move(t, t->when + seconds);
}

int reactor_timer_active(const reactor_timer *t)
{
    return t && t->r && t->state == REACTOR__T_PENDING;
}

double reactor_timer_time(const reactor_timer *t)
{
    return t ? t->when : 0;
}

reactor_timer *reactor_timer_hold(reactor_timer *t)
{
    if (t)
        t->refs++;
    return t;
}

void reactor_timer_release(reactor_timer *t)
{
    /* Given back to malloc, not the free list: the reactor may be gone already. */
    if (t && --t->refs == 0)
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
    double now = reactor__now_fresh(r); /* the function may have taken a while */
    double q = (now - t->base) / t->interval, next = 0;
    if (q >= 0 && q < 1e15) {
        double k = (double)(int64_t)q + 1; /* floor(q) + 1 without libm */
        next = t->base + k * t->interval;
        if (next <= now) /* q was rounded down a hair below an integer */
            next = t->base + (k + 1) * t->interval;
    }
    if (!(next > now)) { /* absurd gap or still not later: restart the grid from now */
        t->base = now;
        next = now + t->interval;
    }
    t->when = next;
    t->seq = r->next_seq++; /* scheduled now: after calls already due at that time */
    return heap_push(r, t);
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
    /* Phase 1: collect. Everything due now leaves the heap, in (when, seq) order. */
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
        reactor_timer *t = r->heap[0].t;
        heap_remove(r, 0);
        t->where = REACTOR__IN_DUE;
        t->idx = r->due_n;
        r->due[r->due_n++] = t;
    }
    /* Phase 2: run. A slot is NULL when an earlier timer cancelled or reset this one. */
    size_t ran = 0;
    for (size_t i = 0; i < r->due_n; i++) {
        reactor_timer *t = r->due[i];
        if (!t)
            continue;
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
    return reactor__ceil_ms((r->heap[0].when - r->now) * 1000.0);
}

void reactor__timers_free(reactor *r)
{
    /* Pending calls are cancelled without running. A handle the user holds survives
     * with r == NULL (it then reports itself cancelled). */
    for (size_t i = 0; i < r->heap_n; i++) {
        reactor_timer *t = r->heap[i].t;
        t->state = REACTOR__T_CANCELLED;
        t->where = REACTOR__IN_NONE;
        t->r = NULL;
        timer_unref(NULL, t);
    }
    r->heap_n = 0;
    r->pending = 0;
    free(r->heap_mem);
    free(r->due);
    while (r->free_timers) {
        reactor_timer *t = r->free_timers;
        r->free_timers = t->next_free;
        free(t);
    }
    r->n_free_timers = 0;
}
