#define _GNU_SOURCE /* pipe2 */
/* The reactor loop: one iteration runs what is due, polls, and dispatches (see
 * reactor_iterate below, and docs/reactor.md for the picture). Timers live in timers.c,
 * cross-thread calls in threads.c, signals in signals.c, the trace in trace.c, and each
 * poller in its backend_*.c file. */
#include "reactor/reactor_internal.h"
#include "reactor/backend_epoll_internal.h" /* reactor__ep_poll, called directly */
#include "reactor/slow_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h> /* isfinite: a macro, no libm needed */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- Backends ------------------------------------------------------------------ */

/* Best first: what reactor_new() picks when REACTOR_BACKEND is not set. */
static const reactor__backend *const backends[] = {
#ifdef REACTOR__HAVE_EPOLL
    &reactor__backend_epoll,
#endif
#ifdef REACTOR__HAVE_KQUEUE
    &reactor__backend_kqueue,
#endif
    &reactor__backend_poll,
    &reactor__backend_select,
};
#define N_BACKENDS (sizeof backends / sizeof backends[0])

static const char *const backend_names[] = {
#ifdef REACTOR__HAVE_EPOLL
    "epoll",
#endif
#ifdef REACTOR__HAVE_KQUEUE
    "kqueue",
#endif
    "poll",
    "select",
    NULL,
};

const char *const *reactor_backends(void) { return backend_names; }

static const reactor__backend *find_backend(const char *name)
{
    if (!name || !*name)
        return backends[0];
    for (size_t i = 0; i < N_BACKENDS; i++)
        if (strcmp(name, backends[i]->name) == 0)
            return backends[i];
    /* A known backend this platform lacks is ENOSYS; a typo is EINVAL. */
    static const char *const known[] = {"epoll", "kqueue", "poll", "select"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(name, known[i]) == 0) {
            errno = ENOSYS;
            return NULL;
        }
    errno = EINVAL;
    return NULL;
}

/* ---- Small helpers -------------------------------------------------------------- */

#if defined(__GNUC__) || defined(__clang__)
#define NOINLINE __attribute__((noinline))
#define ALWAYS_INLINE inline __attribute__((always_inline))
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define NOINLINE
#define ALWAYS_INLINE inline
#define UNLIKELY(x) (x)
#endif

reactor__ns reactor__clock_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (reactor__ns)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void now_update(reactor *r)
{
    if (!r->fake_clock)
        r->now = reactor__clock_now();
}

reactor__ns reactor__now_fresh(reactor *r)
{
    now_update(r);
    return r->now;
}

/* The dispatch of an iteration follows its poll: the first touch of the iteration reads
 * the clock and the others share the reading (libev's ev_now, read once per iteration
 * after the poll; here only in iterations that have a touch). Code that runs before the
 * poll (due timers, thread calls, shutdown triggers) resets act_iter when it is done, so
 * a reading taken there is not used after the poll. Outside an iteration, the moment
 * itself. */
reactor__ns reactor__now_activity_slow(reactor *r)
{
    if (r->fake_clock)
        return r->now;
    if (!r->in_iteration)
        return reactor__clock_now();
    if (r->act_iter != r->iter) {
        r->act_now = reactor__clock_now();
        r->act_iter = r->iter;
    }
    return r->act_now;
}

int reactor__pipe(int fds[2])
{
#ifdef __linux__
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
        return -errno;
#else
    if (pipe(fds) < 0)
        return -errno;
    for (int i = 0; i < 2; i++)
        if (fcntl(fds[i], F_SETFD, FD_CLOEXEC) < 0 ||
            fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK) < 0) {
            int e = errno;
            close(fds[0]);
            close(fds[1]);
            return -e;
        }
#endif
    return 0;
}

int reactor__calls_push(reactor__calls *c, reactor_fn fn, void *data)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        reactor__call *v = realloc(c->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        c->v = v;
        c->cap = cap;
    }
    c->v[c->n++] = (reactor__call){fn, data};
    return 0;
}

/* ---- Creating and freeing ------------------------------------------------------- */

reactor *reactor_new(void)
{
    return reactor_new_with_backend(getenv("REACTOR_BACKEND"));
}

reactor *reactor_new_with_backend(const char *backend)
{
    const reactor__backend *be = find_backend(backend);
    if (!be)
        return NULL;
    reactor *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->be = be;
    r->wake_fd[0] = r->wake_fd[1] = -1;
    r->sig_fd[0] = r->sig_fd[1] = -1;
    r->now = reactor__clock_now();
    reactor__trace_init(r);
    reactor__slow_init(r);
    r->be_state = be->create();
    int rc = r->be_state ? reactor__threads_init(r) : -errno;
    if (rc < 0) {
        if (r->be_state)
            be->free(r->be_state);
        reactor__slow_free(r);
        free(r);
        errno = -rc;
        return NULL;
    }
    return r;
}

int reactor_free(reactor *r)
{
    if (!r)
        return -EINVAL;
    if (r->running || r->in_iteration)
        return -EBUSY;
    reactor__threads_close(r); /* other threads get -EINVAL from now on */
    /* Modules first, while the reactor still works: they may unwatch fds and cancel
     * timers of their own. Triggers never run from here (only from reactor_run). */
    for (int i = 0; i < REACTOR__MOD_COUNT; i++)
        if (r->mod_free[i]) {
            void (*fn)(void *) = r->mod_free[i];
            r->mod_free[i] = NULL;
            fn(r->mod_data[i]);
        }
    reactor__timers_free(r);
    while (r->all_triggers) {
        reactor_trigger *t = r->all_triggers;
        r->all_triggers = t->all_next;
        free(t);
    }
    free(r->when_running.v);
    reactor__signals_free(r);
    reactor__threads_free(r);
    r->be->free(r->be_state);
    free(r->io);
    free(r->ready);
    free(r->kinds);
    reactor__slow_free(r);
    free(r);
    return 0;
}

const char *reactor_backend_name(const reactor *r) { return r ? r->be->name : NULL; }
int reactor_running(const reactor *r) { return r ? r->running : 0; }
uint64_t reactor_iterations(const reactor *r) { return r ? r->iter : 0; }
double reactor_seconds(const reactor *r)
{
    if (!r)
        return 0;
    return reactor__s_from_ns(r->fake_clock ? r->now : reactor__clock_now());
}

/* ---- I/O watchers --------------------------------------------------------------- */

/* Tells the backend an fd's interest went from `old` to `events`. An fd that wants
 * nothing is kept out of the kernel set (add/remove), not registered with an empty mask. */
static int set_interest(reactor *r, int fd, unsigned old, unsigned events)
{
    if (old == events)
        return 0;
    if (!old)
        return r->be->add(r->be_state, fd, events);
    if (!events)
        return r->be->remove(r->be_state, fd, old);
    return r->be->modify(r->be_state, fd, old, events);
}

/* Makes io[fd] a valid slot. Slots are initialised only up to the highest fd watched so
 * far, and a growth copies only those: the rest of the (doubled) allocation is never
 * written, so its pages never become resident. With 10,000 connections this keeps the
 * table at 32 bytes per connection instead of up to twice that. */
static int grow_io(reactor *r, int fd)
{
    if (fd >= r->io_alloc) {
        int cap = r->io_alloc ? r->io_alloc : 64;
        while (cap <= fd)
            cap = cap > INT_MAX / 2 ? INT_MAX : cap * 2;
        reactor__io *io = malloc((size_t)cap * sizeof *io);
        if (!io)
            return -ENOMEM;
        if (r->io_cap)
            memcpy(io, r->io, (size_t)r->io_cap * sizeof *io);
        free(r->io);
        r->io = io;
        r->io_alloc = cap;
    }
    memset(r->io + r->io_cap, 0, (size_t)(fd + 1 - r->io_cap) * sizeof *r->io);
    r->io_cap = fd + 1;
    return 0;
}

/* One batch can hold every watched fd. Like io[], the new array receives only what is in
 * use (the entries of a batch being dispatched: a callback may watch a new fd), not the
 * old capacity: epoll fills at most 256 entries, so most of a large array stays
 * untouched. On failure batches stay smaller, which is still correct. */
static void grow_ready(reactor *r)
{
    int cap = r->ready_cap ? r->ready_cap * 2 : 64;
    reactor__ready *rd = malloc((size_t)cap * sizeof *rd);
    if (!rd)
        return;
    if (r->batch_n)
        memcpy(rd, r->ready, (size_t)r->batch_n * sizeof *rd);
    free(r->ready);
    r->ready = rd;
    r->ready_cap = cap;
}

/* The index of (fn, name) in r->kinds, adding it (or reusing a free entry) if needed,
 * with one more reference; 0 on ENOMEM. A linear scan: there are few distinct pairs, and
 * this runs on watch, not on dispatch. */
static int kind_get(reactor *r, reactor_io_fn fn, const char *name)
{
    int free_k = 0;
    for (int k = 1; k < r->n_kinds; k++) {
        reactor__kind *e = &r->kinds[k];
        if (e->refs && e->fn == fn && e->name == name) {
            e->refs++;
            return k;
        }
        if (!e->refs && !free_k)
            free_k = k;
    }
    if (!free_k) {
        if (r->n_kinds == 0)
            r->n_kinds = 1; /* kind 0 is "not watched" */
        if (r->n_kinds > UINT16_MAX)
            return 0;
        if (r->n_kinds >= r->kinds_cap) {
            int cap = r->kinds_cap ? r->kinds_cap * 2 : 8;
            reactor__kind *v = realloc(r->kinds, (size_t)cap * sizeof *v);
            if (!v)
                return 0;
            r->kinds = v;
            r->kinds_cap = cap;
        }
        free_k = r->n_kinds++;
    }
    r->kinds[free_k] = (reactor__kind){.fn = fn, .name = name, .refs = 1};
    return free_k;
}

static void kind_put(reactor *r, int k)
{
    if (k)
        r->kinds[k].refs--;
}

int reactor_watch_named(reactor *r, int fd, unsigned events, reactor_io_fn fn, void *data,
                        const char *name)
{
    if (!r || fd < 0 || !fn || (events & ~(unsigned)(REACTOR_READABLE | REACTOR_WRITABLE)))
        return -EINVAL;
    if (fd >= r->io_cap && grow_io(r, fd) < 0)
        return -ENOMEM;
    reactor__io *io = &r->io[fd];
    int fresh = io->kind == 0;
    if (fresh && fcntl(fd, F_GETFD) < 0)
        return -EINVAL; /* not an open fd: say so now rather than from the poll */
    int kind = kind_get(r, fn, name ? name : "?");
    if (!kind)
        return -ENOMEM;
    int rc = set_interest(r, fd, fresh ? 0 : io->events, events);
    if (rc < 0) {
        kind_put(r, kind);
        return rc;
    }
    if (fresh) {
        io->gen++; /* a new registration: entries of the current batch are not for it */
        r->watched++;
        if (r->watched > r->ready_cap)
            grow_ready(r);
    }
    kind_put(r, io->kind); /* the previous registration's, if any */
    io->kind = (uint16_t)kind;
    io->data = data;
    io->events = (uint8_t)events;
    return 0;
}

int reactor_watch_events(reactor *r, int fd, unsigned events)
{
    if (!r || fd < 0 || (events & ~(unsigned)(REACTOR_READABLE | REACTOR_WRITABLE)))
        return -EINVAL;
    if (fd >= r->io_cap || !r->io[fd].kind)
        return -ENOENT;
    int rc = set_interest(r, fd, r->io[fd].events, events);
    if (rc < 0)
        return rc;
    r->io[fd].events = (uint8_t)events;
    return 0;
}

int reactor_unwatch(reactor *r, int fd)
{
    if (!r || fd < 0)
        return -EINVAL;
    if (fd >= r->io_cap || !r->io[fd].kind)
        return -ENOENT;
    reactor__io *io = &r->io[fd];
    /* Removed from the kernel set NOW, while fd is still open: after the caller's
     * close() a dup'ed description would keep an epoll registration alive (pitfall
     * 2.17). A failure here means the fd was already closed; nothing left to undo. */
    set_interest(r, fd, io->events, 0);
    kind_put(r, io->kind);
    *io = (reactor__io){.gen = io->gen + 1}; /* stale entries of this batch now mismatch */
    r->watched--;
    return 0;
}

/* The pending socket error of a watched fd, also where the backend consumed it
 * (libkqueue): contracts in backend_internal.h. Rare paths only. */
int reactor__seen_error(reactor *r, int fd)
{
    return r->be->sock_error ? r->be->sock_error(r->be_state, fd) : 0;
}

int reactor__sock_error(reactor *r, int fd)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    int seen = reactor__seen_error(r, fd); /* asked either way: consumed once */
    return err ? err : seen;
}

/* ---- One iteration ------------------------------------------------------------- */

/* Is the nearest timer due? (The heap root holds the nearest deadline.) */
static ALWAYS_INLINE int timer_due(const reactor *r)
{
    return r->heap_n > 0 && r->heap[0].when <= r->now;
}

/* How long the poll may block, in ms (-1: until something happens), in the common case:
 * until the nearest deadline (read straight from the heap root), or max_wait, or not at
 * all once a stop is on its way. */
static ALWAYS_INLINE int timeout_to_next(const reactor *r, double max_wait)
{
    if (r->stopping && r->shutdown_holds == 0)
        return 0;
    int t = r->heap_n ? reactor__ceil_ms(r->heap[0].when - r->now) : -1;
    if (max_wait >= 0) {
        int m = reactor__ceil_ms(reactor__ns_from_s(max_wait));
        if (t < 0 || m < t)
            t = m;
    }
    return t;
}

/* The same, when the slow path ran: a fake clock never blocks (time only moves when
 * the test advances it), nor does an iteration that consumed a wake-up or has calls
 * from other threads waiting. */
static int poll_timeout(reactor *r, double max_wait)
{
    if (r->fake_clock || r->woken ||
        atomic_load_explicit(&r->wake_pending, memory_order_relaxed))
        return 0;
    return timeout_to_next(r, max_wait);
}

/* The backend's poll. epoll's, the default on Linux, is called directly (inline): the
 * one indirect call and stack frame it saves are paid on every iteration. */
static ALWAYS_INLINE int backend_poll(reactor *r, int timeout_ms)
{
#ifdef REACTOR__HAVE_EPOLL
    if (r->be == &reactor__backend_epoll)
        return reactor__ep_poll(r->be_state, timeout_ms, r->ready, r->ready_cap);
#endif
    return r->be->poll(r->be_state, timeout_ms, r->ready, r->ready_cap);
}

/* The backend's poll was interrupted by a signal (EINTR): poll again for the time that
 * is left rather than the whole timeout, so frequent signals cannot push timers late. */
static NOINLINE int poll_again(reactor *r, int timeout_ms)
{
    const int full = timeout_ms;
    /* fresh: read just before the timeout was computed (and with the fake clock the
     * timeout is 0, so never used) */
    reactor__ns start = r->now;
    for (;;) {
        if (full > 0) /* what is left of the FULL timeout, rounded up */
            timeout_ms = reactor__ceil_ms((reactor__ns)full * 1000000 -
                                          (reactor__clock_now() - start));
        int n = r->be->poll(r->be_state, timeout_ms, r->ready, r->ready_cap);
        if (n != -EINTR)
            return n;
    }
}

/* Dispatch with the trace or the slow-callback detector on (r->hooks). */
static NOINLINE void dispatch_hooked(reactor *r, int fd, unsigned ev, const reactor__kind *k,
                                     void *data)
{
    reactor_io_fn fn = k->fn; /* copied: a callback may move r->kinds */
    const char *name = k->name;
    if (r->trace) {
        char buf[8];
        reactor__trace(r, "dispatch fd=%d ev=%s cb=%s", fd, reactor__events_str(ev, buf), name);
    }
    if (r->slow)
        reactor__slow_io(r, fd, ev, fn, data, name);
    else
        fn(r, fd, ev, data);
}

/* Dispatch in two phases. Phase 1 stamps each entry with its fd's generation as it was
 * when the kernel answered. Phase 2 runs the callbacks, checking each entry again just
 * before its call: an earlier callback of this batch may have unwatched the fd (gen
 * changed, even if the fd number was reused and watched again since) or narrowed its
 * interest. Such an entry is stale and is skipped. Nothing here holds a pointer into
 * r->io or r->ready across a callback: either may be reallocated by it.
 *
 * dispatch_entry is phase 2 for one entry; check_gen is 0 for the batch's first entry,
 * which needs no check: no callback of this batch has run before it. */
static ALWAYS_INLINE void dispatch_entry(reactor *r, reactor__ready e, int check_gen)
{
    if ((unsigned)e.fd >= (unsigned)r->io_cap) /* also catches fd < 0 */
        return;
    const reactor__io *io = &r->io[e.fd];
    if (!io->kind || (check_gen && io->gen != e.gen)) {
        REACTOR__TRACE(r, "skip fd=%d reason=stale", e.fd);
        return;
    }
    unsigned ev = e.events & (io->events | REACTOR_ERROR);
    if (!io->events || !ev)
        return; /* it asked for none of what came back */
    const reactor__kind *k = &r->kinds[io->kind];
    if (UNLIKELY(r->hooks)) { /* the trace or the slow-callback detector */
        dispatch_hooked(r, e.fd, ev, k, io->data);
        return;
    }
    k->fn(r, e.fd, ev, io->data);
}

/* A batch of two or more. */
static NOINLINE void dispatch(reactor *r, int n)
{
    /* The first entry needs no stamp: no callback of this batch has run before it. So
     * a batch of one (every iteration of a lone busy connection) skips phase 1 and
     * comes straight to dispatch_entry. */
    for (int i = 1; i < n; i++) {
        int fd = r->ready[i].fd;
        r->ready[i].gen = (fd >= 0 && fd < r->io_cap) ? r->io[fd].gen : 0;
    }
    dispatch_entry(r, r->ready[0], 0);
    for (int i = 1; i < n; i++)
        dispatch_entry(r, r->ready[i], 1);
}

/* Steps 1 and 2 when step 1 has work (thread calls, due timers), the clock is fake or
 * the trace is on: runs what is due and returns the poll timeout. Out of line, so the
 * common iteration does not pay for what it does not do. */
static NOINLINE int run_due(reactor *r, double max_wait)
{
    size_t calls = 0, ran = 0;
    /* relaxed is enough here: run_thread_calls loads again with acquire before it
     * takes anything, and a call pushed just after this load wakes the poll. */
    if (atomic_load_explicit(&r->wake_pending, memory_order_relaxed))
        calls = reactor__run_thread_calls(r);
    if (timer_due(r))
        ran = reactor__run_timers(r);
    /* Callbacks that ran count as "something happened": poll without blocking, so that
     * a caller driving reactor_iterate() sees at once what they changed (a flag set by
     * a timer, say) instead of sleeping until the next event. reactor_run() pays for it
     * with one non-blocking poll after each iteration that ran timers. */
    int timeout = 0;
    if (calls || ran)
        now_update(r); /* the calls above took time: the next steps measure from now */
    else
        timeout = poll_timeout(r, max_wait);
    r->woken = 0; /* read by poll_timeout just now; the next iteration starts afresh */
    r->act_iter = 0; /* a touch from the callbacks above was before the poll */
    if (r->trace) {
        if (calls)
            reactor__trace(r, "phase=threads ran=%zu", calls);
        reactor__trace(r, "phase=timers ran=%zu", ran);
    }
    return timeout;
}

/* Step 3 with the trace on: the poll, and what it waited for and how long. */
static NOINLINE int poll_traced(reactor *r, int timeout)
{
    reactor__trace(r, "phase=poll backend=%s timeout_ms=%d watched=%d", r->be->name,
                   timeout, r->watched);
    reactor__ns t0 = reactor__clock_now();
    int n = r->be->poll(r->be_state, timeout, r->ready, r->ready_cap);
    if (n == -EINTR)
        n = poll_again(r, timeout);
    reactor__trace(r, "phase=poll ready=%d waited_ms=%.3f", n < 0 ? 0 : n,
                   (double)(reactor__clock_now() - t0) / 1e6);
    return n;
}

/* One turn of the loop: 1. run what is due, 2. compute the timeout, 3. poll,
 * 4. dispatch. Short on purpose: each step is a function above or in another file.
 *
 * The common iteration (nothing queued by other threads, no timer due, no trace) must be
 * cheap, since a lone busy connection pays it once per request: "anything to run first?"
 * is one load and one compare per source, and the clock is read once, at the start.
 * Inlined into reactor_run and reactor_iterate, which check their arguments first. */
static ALWAYS_INLINE int iterate(reactor *r, double max_wait)
{
    r->in_iteration = 1;
    r->iter++;

    /* A call from another thread is seen here or, if it comes later, wakes the poll:
     * the fast path needs no second look at wake_pending. */
    int timeout;
    const int special = r->fake_clock || r->trace; /* tested once, before the clock call */
    if (UNLIKELY(special)) {
        now_update(r);
        timeout = run_due(r, max_wait);
    } else {
        r->now = reactor__clock_now();
        if (atomic_load_explicit(&r->wake_pending, memory_order_relaxed) || timer_due(r))
            timeout = run_due(r, max_wait);
        else
            timeout = timeout_to_next(r, max_wait);
    }
    int n;
    if (UNLIKELY(special && r->trace != NULL))
        n = poll_traced(r, timeout);
    else if (UNLIKELY((n = backend_poll(r, timeout)) == -EINTR))
        n = poll_again(r, timeout);
    /* No clock reading here: nothing in step 4 needs one. Scheduling reads the clock
     * itself (reactor__now_fresh), reactor_seconds() too, and the next iteration reads
     * it before it looks at the timers. One reading per iteration instead of two. */

    if (n == 1) {
        dispatch_entry(r, r->ready[0], 0); /* by value: batch_n stays 0, nothing to keep */
    } else if (n > 1) {
        r->batch_n = n; /* what grow_ready keeps if a callback watches more fds */
        dispatch(r, n);
        r->batch_n = 0;
    }
    r->in_iteration = 0;
    return n < 0 ? n : 0;
}

int reactor_iterate(reactor *r, double max_wait)
{
    if (!r)
        return -EINVAL;
    if (r->in_iteration)
        return -EBUSY; /* no nested loops: a callback must return to the reactor */
    return iterate(r, max_wait);
}

/* ---- Running, stopping, triggers ------------------------------------------------ */

static void fire_phase(reactor *r, reactor_phase p)
{
    static const char *const names[] = {"before", "during", "after"};
    REACTOR__TRACE(r, "phase=shutdown step=%s", names[p]);
    r->in_iteration = 1; /* a trigger may not free the reactor (-EBUSY) or nest a loop */
    r->act_iter = 0;     /* the last iteration's activity time is over */
    reactor_trigger *t;
    /* Pop one at a time: a trigger may add or remove others of this phase. */
    while ((t = r->triggers[p])) {
        r->triggers[p] = t->next;
        if (t->next)
            t->next->prev = NULL;
        else
            r->triggers_tail[p] = NULL;
        t->done = 1;
        t->fn(r, t->data);
    }
    r->in_iteration = 0;
}

/* After the shutdown, a module above the reactor may report what it still holds (deferred/
 * reports the Deferreds still alive with an unhandled failure: nobody will handle it
 * now). The module registers the hook; the reactor knows nothing of what it reports. One
 * process-wide hook: what it reports is process-wide too. */
static reactor__end_of_run_fn end_of_run_hook;

void reactor__set_end_of_run_hook(reactor__end_of_run_fn fn)
{
    __atomic_store_n(&end_of_run_hook, fn, __ATOMIC_RELEASE);
}

static void run_end_of_run_hook(void)
{
    reactor__end_of_run_fn fn = __atomic_load_n(&end_of_run_hook, __ATOMIC_ACQUIRE);
    if (fn)
        fn();
}

int reactor_run(reactor *r)
{
    if (!r)
        return -EINVAL;
    if (r->running || r->in_iteration)
        return -EBUSY;
    if (r->ran)
        return -EINVAL; /* a reactor runs once, like Twisted's (ReactorNotRestartable) */
    r->ran = r->running = 1;
    /* call_when_running() calls, in order; one may queue another (it then runs now). */
    for (size_t i = 0; i < r->when_running.n; i++)
        r->when_running.v[i].fn(r, r->when_running.v[i].data);
    r->when_running.n = 0;

    int rc = 0;
    while (!r->stopping)
        if ((rc = iterate(r, -1)) < 0) {
            r->stopping = 1; /* the backend failed: shut down cleanly, report it */
            break;
        }
    fire_phase(r, REACTOR_BEFORE_SHUTDOWN);
    /* A "before" trigger may hold the shutdown (a server flushing its connections):
     * the loop keeps turning until every hold is released. */
    while (r->shutdown_holds > 0)
        if (reactor_iterate(r, -1) < 0)
            break;
    fire_phase(r, REACTOR_DURING_SHUTDOWN);
    r->running = 0;
    fire_phase(r, REACTOR_AFTER_SHUTDOWN);
    run_end_of_run_hook();
    return rc;
}

int reactor_stop(reactor *r)
{
    if (!r || !r->running)
        return -EINVAL;
    if (r->stopping)
        return -EALREADY;
    r->stopping = 1; /* reactor_run sees it when the current iteration ends */
    return 0;
}

int reactor_call_when_running(reactor *r, reactor_fn fn, void *data)
{
    if (!r || !fn)
        return -EINVAL;
    if (r->running) {
        fn(r, data);
        return 0;
    }
    if (r->ran)
        return -EINVAL; /* it ran and stopped: it will not run again */
    return reactor__calls_push(&r->when_running, fn, data);
}

reactor_trigger *reactor_add_trigger(reactor *r, reactor_phase phase, reactor_fn fn,
                                     void *data)
{
    if (!r || !fn || (unsigned)phase > REACTOR_AFTER_SHUTDOWN) {
        errno = EINVAL;
        return NULL;
    }
    reactor_trigger *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    *t = (reactor_trigger){.phase = phase, .fn = fn, .data = data,
                           .prev = r->triggers_tail[phase], .all_next = r->all_triggers};
    if (t->prev)
        t->prev->next = t;
    else
        r->triggers[phase] = t;
    r->triggers_tail[phase] = t;
    r->all_triggers = t;
    return t;
}

int reactor_remove_trigger(reactor *r, reactor_trigger *t)
{
    if (!r || !t)
        return -EINVAL;
    if (t->done)
        return -ENOENT;
    reactor_phase p = t->phase;
    if (t->prev)
        t->prev->next = t->next;
    else
        r->triggers[p] = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        r->triggers_tail[p] = t->prev;
    t->done = 1; /* freed with the reactor, so a second remove can say -ENOENT */
    return 0;
}

int reactor_shutdown_hold(reactor *r)
{
    if (!r)
        return -EINVAL;
    r->shutdown_holds++;
    return 0;
}

int reactor_shutdown_release(reactor *r)
{
    if (!r || r->shutdown_holds == 0)
        return -EINVAL;
    r->shutdown_holds--;
    return 0;
}

/* ---- Fake clock ---------------------------------------------------------------- */

int reactor_use_fake_clock(reactor *r, double start)
{
    if (!r || !isfinite(start))
        return -EINVAL;
    if (r->heap_n > 0)
        return -EBUSY; /* pending timers were scheduled on the other clock */
    r->fake_clock = 1;
    r->now = reactor__ns_from_s(start); /* whole ns; beyond ~73 years: clamped */
    return 0;
}

int reactor_advance(reactor *r, double seconds)
{
    if (!r || !r->fake_clock || !(seconds >= 0) || !isfinite(seconds))
        return -EINVAL;
    if (r->in_iteration)
        return -EBUSY;
    r->in_iteration = 1;
    r->now = reactor__ns_add(r->now, reactor__ns_from_s(seconds));
    /* Pass after pass until nothing is due: calls scheduled by the calls that ran are
     * run too if already due (task.Clock.advance). Bounded, so a call that reschedules
     * itself at +0 forever cannot hang the caller. */
    int rc = 0, passes = 0;
    while (timer_due(r)) {
        if (++passes > 100000) {
            rc = -ELOOP;
            break;
        }
        reactor__run_timers(r);
    }
    r->in_iteration = 0;
    return rc;
}

/* ---- fork -------------------------------------------------------------------- */

int reactor_after_fork(reactor *r)
{
    if (!r)
        return -EINVAL;
    if (r->in_iteration)
        return -EBUSY;
    /* The old set is closed, never emptied: EPOLL_CTL_DEL in the child would also
     * remove the fds from the parent's set, which is the same kernel object. */
    void *st = r->be->create();
    if (!st)
        return -errno;
    r->be->free(r->be_state);
    r->be_state = st;
    int rc = 0;
    for (int fd = 0; fd < r->io_cap; fd++)
        if (r->io[fd].kind && r->io[fd].events) {
            int e = r->be->add(st, fd, r->io[fd].events);
            if (e < 0 && rc == 0)
                rc = e;
        }
    int e = reactor__threads_after_fork(r);
    if (e < 0 && rc == 0)
        rc = e;
    e = reactor__signals_after_fork(r);
    return rc ? rc : e;
}

/* ---- Module data ---------------------------------------------------------------- */

void *reactor__module_data(reactor *r, enum reactor__module id)
{
    return r && (unsigned)id < REACTOR__MOD_COUNT ? r->mod_data[id] : NULL;
}

int reactor__set_module_data(reactor *r, enum reactor__module id, void *data,
                             void (*free_fn)(void *data))
{
    if (!r || (unsigned)id >= REACTOR__MOD_COUNT)
        return -EINVAL;
    r->mod_data[id] = data;
    r->mod_free[id] = free_fn;
    return 0;
}
