/* The reactor: one event loop per thread, Twisted style.
 *
 * A loop iteration (docs/reactor.md has the picture):
 *   1. run calls queued from other threads, then every timer that is due
 *      (timers scheduled meanwhile wait for the next iteration);
 *   2. compute the poll timeout from the nearest timer, rounded up to whole ms;
 *   3. poll the backend (epoll, kqueue, poll or select);
 *   4. dispatch each ready fd to its callback, skipping events made stale by an
 *      earlier callback of the same batch.
 *
 * Errors: functions return 0 or a negative errno; constructors return NULL and set
 * errno (see twistc.h). Threads: a reactor belongs to the thread that runs it; only
 * reactor_call_from_thread() may be called from another thread.
 *
 * Ownership:
 *   - reactor: created by reactor_new*(), freed by reactor_free() once it is not running.
 *     reactor_free() cancels pending timers (their functions do not run) and forgets the
 *     watched fds (it does not close them).
 *   - reactor_timer: owned by the reactor. A handle may be used for as long as the
 *     reactor lives, also after its call ran or was cancelled: handles are
 *     generation-checked, so an old handle is recognised as over (cancel/reset/delay
 *     return -EALREADY or -ECANCELED, active() 0) and never acts on a later call that
 *     reuses its memory. Once that memory serves another call the old handle can no longer
 *     tell "ran" from "cancelled" and answers -EALREADY. To keep the exact answer, or to
 *     use the handle after reactor_free() (in connection_lost, say), take a reference with
 *     reactor_timer_hold() and drop it with reactor_timer_release(); after the release the
 *     handle is gone like freed memory.
 *   - reactor_etimer: the caller's memory, embedded in the caller's struct; the reactor
 *     points at it while it is active. Free it only when it is not active (see
 *     "Embedded timers" below).
 *   - reactor_trigger: owned by the reactor; valid until it ran or was removed.
 *   - The `data` pointers given with callbacks are the caller's; the reactor never frees
 *     them.
 */
#ifndef TWISTC_REACTOR_H
#define TWISTC_REACTOR_H

#include <stdint.h>
#include <stdio.h>

#include <twistc/twistc_base.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct reactor reactor;
typedef struct reactor_timer reactor_timer;
typedef struct reactor_trigger reactor_trigger;

/* ---- Creating and running ------------------------------------------------------- */

/* A reactor on the backend named by $REACTOR_BACKEND, or the best one compiled in
 * (epoll, then kqueue, then poll). NULL with errno EINVAL for an unknown name, ENOSYS
 * for a backend not available on this platform. */
TWISTC_API reactor *reactor_new(void);
/* Same, naming the backend: "epoll", "kqueue", "poll", "select", or NULL for default. */
TWISTC_API reactor *reactor_new_with_backend(const char *backend);
/* Frees a reactor that is not running (-EBUSY if it is). */
TWISTC_API int reactor_free(reactor *r);

TWISTC_API const char *reactor_backend_name(const reactor *r);
/* The backends usable here, NULL-terminated, best first. */
TWISTC_API const char *const *reactor_backends(void);

/* Runs the loop until reactor_stop() and the shutdown triggers have finished.
 * -EBUSY if already running, -EINVAL if this reactor was stopped before (a reactor
 * runs once, like Twisted's). Returns 0 after a clean stop. */
TWISTC_API int reactor_run(reactor *r);
/* Asks a running reactor to stop: the shutdown begins at the end of the current or next
 * iteration (asynchronous, never from inside this call). -EINVAL if not running,
 * -EALREADY if already stopping. */
TWISTC_API int reactor_stop(reactor *r);
/* Runs one iteration, waiting at most max_wait seconds for I/O (0: do not block,
 * negative: until something happens). An iteration that ran timers or calls from
 * other threads does not block in its poll, so `while (!done) reactor_iterate(r, -1);`
 * sees a flag that a timer set. For tests and for embedding in another loop. */
TWISTC_API int reactor_iterate(reactor *r, double max_wait);
TWISTC_API int reactor_running(const reactor *r);
/* Iterations done so far: tests use it to prove the loop does not spin. */
TWISTC_API uint64_t reactor_iterations(const reactor *r);

/* ---- I/O watchers (level-triggered) ------------------------------------------- */

enum {
    REACTOR_READABLE = 1u << 0,
    REACTOR_WRITABLE = 1u << 1,
    /* Only ever passed to a callback: error or hang-up on the fd. The callback sees it
     * together with the directions it asked for; it should read or write to learn more. */
    REACTOR_ERROR = 1u << 2,
};

typedef void (*reactor_io_fn)(reactor *r, int fd, unsigned events, void *data);

/* Watches fd for `events` (READABLE and/or WRITABLE), replacing any earlier watch on
 * fd. May be called from any callback. -EINVAL for a bad fd or events, -ERANGE when the
 * backend cannot take this fd (select and fd >= FD_SETSIZE). `name` is shown by the
 * trace; the reactor_watch() macro passes the callback's name. */
TWISTC_API int reactor_watch_named(reactor *r, int fd, unsigned events, reactor_io_fn fn,
                                   void *data, const char *name);
#define reactor_watch(r, fd, events, fn, data) \
    reactor_watch_named((r), (fd), (events), (fn), (data), #fn)
/* Changes the directions watched on an fd already watched (0 keeps it registered but
 * silent). -ENOENT if fd is not watched. */
TWISTC_API int reactor_watch_events(reactor *r, int fd, unsigned events);
/* Stops watching fd. Call it BEFORE close(fd). Once it returns, no callback for fd runs
 * in this batch, even if the fd number is reused at once. -ENOENT if not watched. */
TWISTC_API int reactor_unwatch(reactor *r, int fd);

/* ---- Time and timers ------------------------------------------------------------ */

typedef void (*reactor_fn)(reactor *r, void *data);

/* The reactor's clock in seconds: CLOCK_MONOTONIC read now, or the fake clock's time.
 * (The loop itself reads the clock once per iteration, before it looks at the timers,
 * and again whenever a call is scheduled: a delay always counts from the moment of the
 * call, so a timer never fires early.) */
TWISTC_API double reactor_seconds(const reactor *r);

/* Runs fn(r, data) once, `delay` seconds from now (delay >= 0), never early. Calls due at
 * the same time run in the order they were scheduled. A call scheduled while timers are
 * running waits for the next iteration, after one poll. NULL+errno (EINVAL, ENOMEM). */
TWISTC_API reactor_timer *reactor_call_later_named(reactor *r, double delay, reactor_fn fn,
                                                   void *data, const char *name);
#define reactor_call_later(r, delay, fn, data) \
    reactor_call_later_named((r), (delay), (fn), (data), #fn)
/* call_later(0): runs on the next iteration. */
#define reactor_call_soon(r, fn, data) reactor_call_later_named((r), 0, (fn), (data), #fn)

/* Runs fn(r, data) every `interval` seconds (Twisted's task.LoopingCall), the first time
 * `interval` seconds from now. interval: finite, >= 1e-6 (else EINVAL). Drift-free and
 * without catch-up bursts (libevent's persistent timeouts): the k-th deadline is
 * start + k * interval, counted from the scheduled deadlines, not from when the function
 * ran or how long it took. When the loop fell behind so that grid points have already
 * passed, those runs are skipped: the next run is the first grid point strictly later
 * than the time the function returned (one run after a stall, then on the grid again).
 * The handle follows the same ownership rule as a one-shot call, with these return values:
 *   - reactor_timer_active(): 1 until cancelled (also while its function runs);
 *   - reactor_timer_cancel(): 0 while active, also from inside its own function (it
 *     then does not run again; the reactor frees it once that function returns, or
 *     when the last hold is released); -ECANCELED after. Never -EALREADY;
 *   - reactor_timer_reset(s) / reactor_timer_delay(s): 0 while active; they move the next
 *     run (also from inside the function: the re-arm then uses the new deadline) and the
 *     grid restarts there; -ECANCELED after a cancel;
 *   - reactor_timer_time(): the deadline now running (inside fn) or the next one.
 * It counts in reactor_pending_timers() until cancelled. If re-arming fails for lack
 * of memory the call stops as if cancelled. NULL+errno (EINVAL, ENOMEM). */
TWISTC_API reactor_timer *reactor_call_every_named(reactor *r, double interval, reactor_fn fn,
                                                   void *data, const char *name);
#define reactor_call_every(r, interval, fn, data) \
    reactor_call_every_named((r), (interval), (fn), (data), #fn)

/* Twisted's IDelayedCall. cancel/reset/delay return -EALREADY once the call has run
 * (or is running: the call counts as run before its function starts) and -ECANCELED
 * once it was cancelled. */
TWISTC_API int reactor_timer_cancel(reactor_timer *t);
/* Reschedules to `seconds` from now, keeping its order among calls due at that time.
 * -ENOMEM (the call is left as it was) if an earlier time needs a heap slot and the
 * heap cannot grow; the same for reactor_timer_delay on a call already collected to run
 * in this pass. */
TWISTC_API int reactor_timer_reset(reactor_timer *t, double seconds);
/* Moves the call `seconds` later than its current time. */
TWISTC_API int reactor_timer_delay(reactor_timer *t, double seconds);
/* 1 while the call has neither run nor been cancelled. */
TWISTC_API int reactor_timer_active(const reactor_timer *t);
/* When the call runs, on the reactor's clock (seconds). */
TWISTC_API double reactor_timer_time(const reactor_timer *t);
/* Keeps the handle's memory (and its exact answers) until reactor_timer_release(), also
 * past reactor_free(). NULL for NULL or a handle whose memory already serves another call. */
TWISTC_API reactor_timer *reactor_timer_hold(reactor_timer *t);
TWISTC_API void reactor_timer_release(reactor_timer *t);
/* Number of pending (not cancelled) calls made with call_later/call_every (embedded
 * timers are not counted). */
TWISTC_API size_t reactor_pending_timers(const reactor *r);

/* ---- Embedded timers (libev's ev_timer, libuv's uv_timer_t) ---------------------- */

/* A timer that lives inside your own struct: no allocation, no handle, 40 bytes on
 * 64-bit. It is the cheapest way to run code later, and the one for a timer per
 * connection: an idle timeout pushed back on every request (reactor_etimer_again) is a
 * store or two, a stop is one O(log n) heap removal. reactor_call_later() is built on it.
 *
 *   struct conn { ...; reactor_etimer idle; };
 *   static void idle_expired(reactor *r, reactor_etimer *t) {
 *       struct conn *c = (struct conn *)((char *)t - offsetof(struct conn, idle)); ... }
 *   reactor_etimer_init(&c->idle, idle_expired);
 *   reactor_etimer_start(r, &c->idle, 30, 30);   // fires 30 s after the last again()
 *   reactor_etimer_again(r, &c->idle);           // on every request
 *   reactor_etimer_stop(r, &c->idle);            // before freeing c
 *
 * Time: deadlines count from reactor_now(), the loop's cached time (read once per
 * iteration after its poll, and once per timer pass), not from a fresh clock reading:
 * that is what makes a start or again cheap. So "after" seconds count from the moment
 * the loop learned of the event being handled, like libev's ev_now. Outside an iteration
 * reactor_now() reads the clock. Otherwise the statements of reactor_call_later() hold:
 * never early, timers due at the same moment run in the order they were started (a
 * start or again of a timer already pending keeps its place among them, as
 * reactor_timer_reset does), and a timer started while timers run waits for the next
 * iteration.
 *
 * Ownership: the struct is the caller's; the reactor only points at it while it is
 * active. It may be freed (or reused for anything else) whenever it is not active:
 * never started, stopped, or a one-shot timer whose function has begun (its function
 * may free it, or the struct around it, unless it started it again). A repeating timer
 * stays active in its function: stop it first. reactor_free() stops every timer still
 * active (it writes into them), so free them after reactor_free(), or stop them before.
 * Freeing an active timer is a bug: the reactor would later read and write the freed
 * memory. AddressSanitizer reports it at the latest at reactor_free(); reactor_etimer_stop()
 * on a struct that is not where the reactor expects it returns -EINVAL.
 * One reactor per timer: pass the same reactor to every call while it is active. */
typedef struct reactor_etimer reactor_etimer;
typedef void (*reactor_etimer_fn)(reactor *r, reactor_etimer *t);

/* The fields are private; the struct is public so you can embed it. */
struct reactor_etimer {
    int64_t when;         /* deadline, ns on the reactor's clock */
    int64_t repeat;       /* ns; 0: one-shot */
    reactor_etimer_fn fn;
    uint64_t seq;         /* scheduling order: breaks ties between equal deadlines */
    uint32_t slot;        /* index in the reactor's heap or due list, while active */
    uint8_t state;        /* 0: not active */
};

/* The time embedded timers count from, in seconds on the reactor's clock (see above). */
TWISTC_API double reactor_now(reactor *r);
/* Sets t up, not active, to call fn. Also fine on a timer that is not active. */
TWISTC_API void reactor_etimer_init(reactor_etimer *t, reactor_etimer_fn fn);
/* Makes t active: fn(r, t) runs `after` seconds from reactor_now() (after >= 0), then,
 * if repeat > 0, every `repeat` seconds (drift-free on the grid of deadlines; points
 * missed after a stall are skipped, as reactor_call_every does). A repeating timer is
 * re-armed before its function runs, so the function may stop it or start it anew.
 * Already active: moved (a restart). -EINVAL (bad r, t or seconds: repeat is 0 or
 * >= 1e-6), -ENOMEM (t left as it was). */
TWISTC_API int reactor_etimer_start(reactor *r, reactor_etimer *t, double after, double repeat);
/* libev's ev_timer_again: restarts t at `repeat` seconds from reactor_now() (active or
 * not). The idle-timeout reset: cheap when the deadline moves later (it only stores the
 * new deadline; the heap entry is moved when it reaches the top). -EINVAL when t has no
 * repeat, -ENOMEM. */
TWISTC_API int reactor_etimer_again(reactor *r, reactor_etimer *t);
/* Makes t not active (its function does not run). 0, also when it was not active;
 * -EINVAL when t is active but not in r (another reactor, or a corrupted struct). */
TWISTC_API int reactor_etimer_stop(reactor *r, reactor_etimer *t);
/* 1 while active (started and its function not yet begun; a repeating timer until
 * stopped). */
TWISTC_API int reactor_etimer_active(const reactor_etimer *t);
/* When it runs next, in seconds on the reactor's clock (meaningful while active). */
TWISTC_API double reactor_etimer_time(const reactor_etimer *t);

/* ---- Idle timeouts --------------------------------------------------------------- */

typedef struct reactor_idle reactor_idle;

/* Calls fn(r, data) once `seconds` (> 0) have passed without a reactor_idle_touch():
 * Twisted's TimeoutMixin (setTimeout / resetTimeout / timeoutConnection), with libev's
 * lazy re-arming. A touch is O(1) and moves no timer: it records when the activity
 * happened (the clock is read once per loop iteration, after its poll, and shared by the
 * iteration's touches); when the timer comes due before the idle time is over, it waits
 * again for the rest. So a connection that talks all the time costs one store per request
 * and one timer re-arm per `seconds`. Never early: the idle time counts from the moment
 * the loop learned of the activity. After fn ran the timeout is off until
 * reactor_idle_set(); touches meanwhile do nothing.
 * Owned by the caller: reactor_idle_free() before reactor_free(). NULL+errno (EINVAL for
 * no r/fn or seconds not finite and > 0, ENOMEM). transport_set_timeout() uses it. */
TWISTC_API reactor_idle *reactor_idle_new(reactor *r, double seconds, reactor_fn fn,
                                          void *data);
/* Activity now: the timeout counts from here. NULL: nothing. */
TWISTC_API void reactor_idle_touch(reactor_idle *it);
/* Restarts the timeout at `seconds` from now; 0 turns it off. -EINVAL, -ENOMEM (it is
 * then off). */
TWISTC_API int reactor_idle_set(reactor_idle *it, double seconds);
/* 1 while the timeout is on (set and not yet fired). */
TWISTC_API int reactor_idle_active(const reactor_idle *it);
/* Turns it off and frees it (fn does not run). NULL: nothing. */
TWISTC_API void reactor_idle_free(reactor_idle *it);

/* A deterministic clock for tests (Twisted's task.Clock): from now on the reactor's time
 * starts at `start` and moves only with reactor_advance(). Polls never block while the
 * fake clock is on. Times are kept in whole nanoseconds (start, advances and delays are
 * rounded to the nearest), up to ~73 years. */
TWISTC_API int reactor_use_fake_clock(reactor *r, double start);
/* Moves the fake clock forward and runs every call that became due (and the calls those
 * schedule that are due too, in later passes), without polling for I/O. */
TWISTC_API int reactor_advance(reactor *r, double seconds);

/* ---- Start-up and shutdown ------------------------------------------------------ */

typedef enum {
    REACTOR_BEFORE_SHUTDOWN,
    REACTOR_DURING_SHUTDOWN,
    REACTOR_AFTER_SHUTDOWN,
} reactor_phase;

/* Runs fn when the reactor is running: now if it is, else once run() starts. */
TWISTC_API int reactor_call_when_running(reactor *r, reactor_fn fn, void *data);
/* Adds a shutdown trigger; triggers of a phase run in the order added, once each. */
TWISTC_API reactor_trigger *reactor_add_trigger(reactor *r, reactor_phase phase,
                                                reactor_fn fn, void *data);
/* -ENOENT for a trigger already run or removed. */
TWISTC_API int reactor_remove_trigger(reactor *r, reactor_trigger *t);
/* From a "before shutdown" trigger: hold the shutdown until as many releases as holds
 * were made (this is how a server flushes its connections before exiting). Both return
 * 0, or -EINVAL for r NULL, and release -EINVAL when no hold is left to release (a
 * release too many). */
TWISTC_API int reactor_shutdown_hold(reactor *r);
TWISTC_API int reactor_shutdown_release(reactor *r);

/* ---- Signals and threads -------------------------------------------------------- */

/* Runs fn on the loop (never in the signal handler) after signo was delivered; a burst
 * of deliveries may run it once. Installs a handler for signo (self-pipe); the previous
 * disposition is restored by reactor_free(). */
TWISTC_API int reactor_on_signal(reactor *r, int signo, reactor_fn fn, void *data);
/* SIGINT and SIGTERM stop the reactor gracefully. Only when asked for. A SIGINT that
 * is ignored when this is called (inherited as ignored: a background job, nohup) is left
 * ignored, as Twisted does; SIGTERM is always taken. */
TWISTC_API int reactor_stop_on_signals(reactor *r);

/* The one thread-safe entry: queues fn(r, data) to run on the reactor thread, in FIFO
 * order with the other queued calls, at the start of the next iteration. Every call is
 * kept (none merged or lost). -ENOMEM, or -EINVAL once the reactor is freed. */
TWISTC_API int reactor_call_from_thread(reactor *r, reactor_fn fn, void *data);
/* Thread-safe too: makes the current poll (or the next one, if the loop is not polling)
 * return at once. From a callback it means "do not block in this iteration's poll",
 * e.g. after setting a flag that the code driving reactor_iterate() checks. */
TWISTC_API int reactor_wakeup(reactor *r);

/* ---- fork ------------------------------------------------------------------------ */

/* A reactor is not fork-safe by itself: after fork() the child shares the parent's epoll
 * set, waker and signal pipe. A child that wants to keep using the reactor it inherited
 * calls this first (libuv's uv_loop_fork): it makes a new backend set and re-registers
 * every watched fd, and makes a new waker and signal pipe. Any other child should just
 * create its own reactor (and may leave the inherited one alone). Only from the single
 * thread of the child, outside any callback (-EBUSY). */
TWISTC_API int reactor_after_fork(reactor *r);

/* ---- Teaching trace ------------------------------------------------------------- */

/* One key=value line per loop phase and event (iter=, phase=, fd=, cb=, ...).
 * NULL turns it off. REACTOR_TRACE=1 in the environment traces to stderr. */
TWISTC_API void reactor_set_trace(reactor *r, FILE *out);
/* Where the trace goes (NULL when off): modules built on the reactor add their lines. */
TWISTC_API FILE *reactor_trace_file(const reactor *r);

/* ---- Slow-callback detector --------------------------------------------------------- */

/* "Functions must return quickly": with a threshold of ms > 0, every callback that runs
 * ms or longer is reported in one line on stderr (or to the report function below):
 *
 *   slow callback: mail_title took 2003.1 ms (deferred callback, in: on_io (fd 7 R,
 *   protocol http_data_received)); waiting: 2 fds ready, 1 timer overdue (oldest by 1990.4 ms)
 *
 * (one line; wrapped here). Timed: fd callbacks, timers, calls from threads, signal
 * callbacks, idle timeouts, and each Deferred callback and errback and each coroutine body
 * (from a resume to its next await) that runs inside one of them. The innermost slow one is named (a static function too, from the program's
 * symbol table when it is not stripped; else "0xADDR (object+0xOFF)"), with what it ran
 * inside; an enclosing callback is reported only if it was slow without counting the
 * reported ones inside it. "waiting": the fds ready when it returned and the timers whose
 * deadline had passed. docs/reactor.md has the details and the cost.
 * 0 turns it off (the default); REACTOR_SLOW_MS=N in the environment turns it on when the
 * reactor is created. -EINVAL (negative or not finite), -ENOMEM. */
TWISTC_API int reactor_set_slow_callback_ms(reactor *r, double ms);
/* The threshold in ms, 0 when off. */
TWISTC_API double reactor_slow_callback_ms(const reactor *r);

/* One report. Every pointer is valid only during the report function's call. */
typedef struct reactor_slow_report {
    const char *line;     /* the whole line, "slow callback: ...", without a newline */
    const char *name;     /* the callback's name: "mail_title", "0x55d0c1a2b3c4 (prog+0x23c4)" */
    const char *kind;     /* "fd", "timer", "thread call", "signal", "idle timeout",
                           * "deferred callback", "deferred errback", "coroutine" */
    const char *context;  /* what it ran inside, outermost first ("" at the top level) */
    double ms;            /* how long it ran */
    int fd;               /* the fd whose callback it ran in (or was), else -1 */
    int fds_ready;        /* fds ready when it returned (-1: unknown) */
    size_t timers_overdue; /* timers whose deadline had passed, not yet run */
    double overdue_ms;    /* how late the oldest of them was (0 when none) */
} reactor_slow_report;
typedef void (*reactor_slow_fn)(reactor *r, const reactor_slow_report *rep, void *data);
/* Sends the reports to fn instead of stderr (NULL: back to stderr). It runs on the
 * reactor's thread, right after the slow callback returned. -EINVAL, -ENOMEM. */
TWISTC_API int reactor_set_slow_callback_report(reactor *r, reactor_slow_fn fn, void *data);

#ifdef __cplusplus
}
#endif
#endif
