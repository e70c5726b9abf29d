/* The reactor's insides, shared by reactor.c, timers.c, signals.c, threads.c and trace.c.
 * Private to libtwistc. */
#ifndef TWISTC_REACTOR_INTERNAL_H
#define TWISTC_REACTOR_INTERNAL_H

#include <twistc/reactor.h>

#include "reactor/backend_internal.h"
#include "reactor/module_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Per-fd state, in an array indexed by fd (ae's events[], libuv's watchers[]): O(1)
 * lookup at dispatch. 16 bytes, because a server pays one slot per connection: the
 * callback and its trace name are not stored per fd but as an index into r->kinds, a
 * small table of the distinct (fn, name) pairs in use (a server has a handful: its
 * listener, its connections, the waker). kind == 0 means "not watched". */
typedef struct reactor__io {
    void *data;
    uint32_t gen;    /* bumped on every watch and unwatch: a batch entry stamped with an
                        older gen is stale (the fd was unwatched, maybe reused) */
    uint16_t kind;   /* index into r->kinds; 0: not watched */
    uint8_t events;  /* the directions wanted now (0: registered but silent) */
} reactor__io;

typedef struct reactor__kind {
    reactor_io_fn fn;
    const char *name;
    unsigned refs;   /* fds using it; 0: free for reuse */
} reactor__kind;

enum { REACTOR__T_PENDING, REACTOR__T_CALLED, REACTOR__T_CANCELLED };
/* Time inside the reactor: whole nanoseconds on its clock (CLOCK_MONOTONIC, or the fake
 * clock). Integers keep deadlines and repeating grids exact, and cost the loop less than
 * doubles (one conversion per clock reading, integer compares); the public API speaks
 * double seconds. REACTOR__NS_MAX is "never": ~73 years, far enough that adding two of
 * them cannot overflow. */
typedef int64_t reactor__ns;
#define REACTOR__NS_MAX (INT64_MAX / 4)

/* Seconds to ns, to the nearest (the clock itself counts whole ns; delays, advances of
 * the fake clock and deadlines all round the same way, so advancing by d runs a call
 * scheduled d from now), clamped to +-REACTOR__NS_MAX (NaN: callers refuse it first). */
static inline reactor__ns reactor__ns_from_s(double s)
{
    double x = s * 1e9;
    if (!(x < (double)REACTOR__NS_MAX))
        return REACTOR__NS_MAX;
    if (x <= -(double)REACTOR__NS_MAX)
        return -REACTOR__NS_MAX;
    return (reactor__ns)(x < 0 ? x - 0.5 : x + 0.5); /* (cast truncates toward zero) */
}
static inline double reactor__s_from_ns(reactor__ns ns) { return (double)ns / 1e9; }
/* a + b for a time and a duration, clamped to +-REACTOR__NS_MAX. */
static inline reactor__ns reactor__ns_add(reactor__ns a, reactor__ns b)
{
    reactor__ns x = a + b; /* no overflow: both within +-REACTOR__NS_MAX */
    if (x > REACTOR__NS_MAX)
        return REACTOR__NS_MAX;
    return x < -REACTOR__NS_MAX ? -REACTOR__NS_MAX : x;
}

/* Where an embedded timer is (reactor_etimer.state): not pending, waiting in the heap
 * (slot = its index there), or collected to run in this pass (slot = its index in r->due). */
enum { REACTOR__ET_IDLE = 0, REACTOR__ET_HEAP, REACTOR__ET_DUE };

/* A call made with reactor_call_later / reactor_call_every: an embedded timer the reactor
 * owns, plus what the handle API needs (Twisted's IDelayedCall). Type-stable and
 * generation-checked: see timers.c. */
struct reactor_timer {
    reactor_etimer et; /* first: the heap sees only this; et.fn is timers.c's call_fire */
    union {
        reactor_fn fn;
        struct reactor_timer *next_free; /* while on the reactor's free list */
    };
    void *data;
    /* Repeating calls only (reactor_call_every); interval == 0 for a one-shot call.
     * Deadlines are base + k * interval, in whole nanoseconds: exact, no drift (the
     * base is the deadline that just ran, or the one reset/delay moved it to). */
    reactor__ns interval;
    reactor *r;       /* NULL once the reactor was freed (a held handle can outlive it) */
    const char *name;
    unsigned refs;    /* the reactor's (while pending or running) + reactor_timer_hold()s */
    uint32_t gen;     /* which use of this struct the handle names: see timers.c */
    unsigned char state; /* REACTOR__T_* */
    unsigned char wide;  /* handles carry 19 generation bits (else 3): see timers.c */
};

/* A heap slot carries the deadline next to the pointer, so sifting compares without
 * touching the timers themselves (the seq tie-break reads the timer only on equal
 * deadlines). The deadline may be earlier than the timer's (a lazy move to a later time,
 * timers.c), never later. 16 bytes: the 4 children of a node share one 64-byte line. */
typedef struct reactor__heap_entry {
    reactor__ns when;
    reactor_etimer *t;
} reactor__heap_entry;

struct reactor_trigger {
    reactor_phase phase;
    reactor_fn fn;
    void *data;
    int done;                          /* ran or removed: the struct stays until free */
    struct reactor_trigger *prev, *next; /* the phase's list of triggers still to run */
    struct reactor_trigger *all_next;  /* every trigger, for reactor_free */
};

typedef struct reactor__call {
    reactor_fn fn;
    void *data;
} reactor__call;

typedef struct reactor__calls {
    reactor__call *v;
    size_t n, cap;
} reactor__calls;

#define REACTOR__NSIG 128

typedef struct reactor__slow_state reactor__slow_state;

typedef struct reactor__sig {
    int signo;
    reactor_fn fn;
    void *data;
    struct reactor__sig *next;
} reactor__sig;

struct reactor {
    const reactor__backend *be;
    void *be_state;

    /* fds */
    reactor__io *io;
    int io_cap;        /* slots in io[] initialised: every fd below it has a slot */
    int io_alloc;      /* slots allocated (>= io_cap; the rest is never touched) */
    int watched;       /* fds with fn != NULL */
    reactor__ready *ready; /* the current batch */
    int ready_cap;
    int batch_n;       /* entries of the batch being dispatched (0 outside dispatch) */
    reactor__kind *kinds; /* kinds[0] unused (kind 0 = not watched) */
    int n_kinds, kinds_cap;

    /* time */
    reactor__ns now;   /* read once per iteration, and whenever a call is scheduled */
    int fake_clock;

    /* timers */
    reactor__heap_entry *heap; /* logical slot 0 is the root (see timers.c for layout) */
    void *heap_mem;            /* the allocation heap points into */
    size_t heap_n, heap_cap;
    reactor_etimer **due;   /* timers collected in this pass (NULL: stopped since) */
    size_t due_n, due_cap;
    uint64_t next_seq;
    size_t pending;         /* calls (call_later/every) not yet run or cancelled */
    reactor_timer *free_timers; /* recycled timer structs: no malloc per call_later */
    reactor_timer *retired_timers; /* used up all their generations: freed with r */
    /* reactor__now_activity: the clock read once per iteration after its poll */
    uint64_t act_iter;      /* the iteration act_now belongs to (0: none) */
    reactor__ns act_now;

    /* loop state */
    uint64_t iter;
    int in_iteration;  /* inside reactor_iterate: reactor_free says -EBUSY */
    int running;       /* inside reactor_run, until the "after" triggers */
    int ran;           /* reactor_run was called once (a reactor runs once) */
    int stopping;      /* reactor_stop was called */
    int shutdown_holds;
    reactor_trigger *triggers[3], *triggers_tail[3];
    reactor_trigger *all_triggers;
    reactor__calls when_running;

    /* threads (threads.c) */
    pthread_mutex_t q_lock;
    reactor__calls q, q_spare; /* q: filled by other threads; q_spare: being run */
    atomic_int wake_pending;   /* 1 once a wake byte was written and not yet consumed */
    int woken;                 /* a wake was consumed this iteration: do not block */
    int q_closed;              /* reactor_free began: -EINVAL from now on */
    int wake_fd[2];            /* eventfd (wake_fd[0] == wake_fd[1]) or pipe */

    /* signals (signals.c) */
    int sig_fd[2];             /* self-pipe, -1 until reactor_on_signal() */
    reactor__sig *sigs;
    unsigned char sig_owned[REACTOR__NSIG]; /* signals this reactor installed */

    /* trace (trace.c) */
    FILE *trace;
    /* dispatch's one test for both: trace != NULL || slow != NULL */
    unsigned char hooks;

    /* slow-callback detector (slow.c): slow is the state while on, NULL while off */
    struct reactor__slow_state *slow;
    struct reactor__slow_state *slow_state; /* kept while off, freed with the reactor */

    void *mod_data[REACTOR__MOD_COUNT];
    void (*mod_free[REACTOR__MOD_COUNT])(void *);
};

/* A duration in ms rounded UP to a whole int, clamped to [0, INT_MAX]: a 0.3 ms wait
 * becomes 1 ms, never a 0-ms poll that would spin until the deadline. */
static inline int reactor__ceil_ms(reactor__ns ns)
{
    if (ns <= 0)
        return 0;
    if (ns > (reactor__ns)2147483647 * 1000000 - 999999)
        return 2147483647;
    return (int)((ns + 999999) / 1000000);
}

/* ---- reactor.c */
reactor__ns reactor__clock_now(void);
/* Refreshes the cached time (unless the clock is fake) and returns it. Timers are
 * scheduled from a fresh reading, so a call made long after the iteration began (or
 * long after reactor_new) still never fires early. */
reactor__ns reactor__now_fresh(reactor *r);
/* A non-blocking, close-on-exec pipe. */
int reactor__pipe(int fds[2]);

/* The time to stamp an activity with (reactor_idle_touch): the clock read after this
 * iteration's poll, once per iteration, shared by every touch of the iteration. Never
 * earlier than the moment the loop learned of what the poll reported. */
reactor__ns reactor__now_activity_slow(reactor *r);
/* Inline, for the common case (a reading already taken in this iteration): an embedded
 * timer's again() or an idle touch per request pays a few loads, not a call. */
static inline reactor__ns reactor__now_activity(reactor *r)
{
    if (!r->fake_clock && r->in_iteration && r->act_iter == r->iter)
        return r->act_now;
    return reactor__now_activity_slow(r);
}

/* ---- timers.c */
/* Schedules fn at the absolute time `when` on the reactor's clock (see call_later). */
reactor_timer *reactor__call_at(reactor *r, reactor__ns when, reactor_fn fn, void *data,
                                const char *name);
/* Runs the timers due now, collect-then-run; returns how many ran. */
size_t reactor__run_timers(reactor *r);
/* Milliseconds to the nearest timer, rounded up (-1: none), clamped to INT_MAX. */
int reactor__timer_timeout_ms(const reactor *r);
void reactor__timers_free(reactor *r);

/* ---- threads.c */
int reactor__threads_init(reactor *r);
/* Runs the calls queued before this point, in FIFO order; returns how many. */
size_t reactor__run_thread_calls(reactor *r);
/* 1 when calls are queued (the poll must not block). */
int reactor__thread_calls_pending(reactor *r);
void reactor__threads_close(reactor *r); /* refuse new calls */
void reactor__threads_free(reactor *r);
int reactor__threads_after_fork(reactor *r);

/* ---- signals.c */
void reactor__signals_free(reactor *r);
int reactor__signals_after_fork(reactor *r);

/* ---- trace.c */
void reactor__trace_init(reactor *r);
#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 2, 3)))
#endif
void reactor__trace(const reactor *r, const char *fmt, ...);
/* One branch when the trace is off. */
#define REACTOR__TRACE(r, ...)                 \
    do {                                       \
        if ((r)->trace)                        \
            reactor__trace((r), __VA_ARGS__);  \
    } while (0)
const char *reactor__events_str(unsigned events, char buf[8]);

/* ---- calls vector (reactor.c) */
int reactor__calls_push(reactor__calls *c, reactor_fn fn, void *data);

#endif
