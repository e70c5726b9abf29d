/* Deferred: a placeholder for a result that is not there yet (Twisted's Deferred).
 *
 * A producer (a protocol waiting for a reply, a timer, a thread) creates a Deferred and
 * hands it to the consumer, which chains (callback, errback) pairs on it. When the
 * producer fires it with deferred_callback() or deferred_errback(), the pairs run in
 * order: each receives the current result and returns the next one. A success goes to
 * the next callback, a failure to the next errback; an errback that returns a success
 * recovers. docs/deferred.md has the two-column picture and examples.
 *
 * ---- Results ------------------------------------------------------------------------
 * A deferred_result is a small tagged value passed BY VALUE. It owns its payload:
 *   NONE, INT, DOUBLE            no payload to free;
 *   STR, PTR                     freed with r.free_fn (NULL: borrowed, never freed);
 *   FAILURE                      holds one reference on r.u.failure;
 *   DEFERRED                     holds one reference on r.u.deferred (only ever a
 *                                callback's return value: "chain on this Deferred").
 * Whoever holds a result either passes it on (returns it, gives it to
 * deferred_callback) or drops it with deferred_result_clear(). Never both.
 *
 * ---- Failures -----------------------------------------------------------------------
 * A deferred_failure is an immutable, reference-counted error object: a positive errno
 * code (ECANCELED = cancelled, ETIMEDOUT = timed out, ...; a library code from
 * DEFERRED_E* for the rest), a message, the file:line where it was made, and an
 * optional cause (another failure it wraps). Create with deferred_failure_new() /
 * deferred_failure_wrap() (macros capture __FILE__/__LINE__); they never return NULL
 * (out of memory gives a shared static ENOMEM failure).
 *
 * ---- Ownership of a Deferred (the one rule) -----------------------------------------
 * A Deferred is reference counted.
 *   - deferred_new() returns one reference, owned by the caller. Every holder drops its
 *     reference exactly once with deferred_unref(); the Deferred is freed at 0.
 *   - Functions that take a `deferred *` argument BORROW it (they take their own
 *     reference if they need one), with one exception: a deferred_result of kind
 *     DEFERRED carries a reference, so returning deferred_continue_with(d) from a callback
 *     passes that reference to the chain (which drops it when done).
 *   - The library holds a reference while a Deferred runs its chain, so a callback may
 *     drop the last user reference (or the producer may unref right after firing).
 *   - A Deferred waiting on an inner one (a callback returned a Deferred) is kept alive
 *     by the inner one until the inner one fires or is freed.
 *   - When a Deferred is freed, pairs that never ran are discarded (their arg_free runs)
 *     and a failure still held is reported as unhandled (see deferred_set_unhandled_hook).
 * Typical producer: d = deferred_new(); keep d in its pending table; return
 * deferred_ref(d) to the consumer; later deferred_callback(d, r); deferred_unref(d).
 *
 * ---- Threads --------------------------------------------------------------------------
 * A Deferred is not thread-safe: create, fire and chain it on one thread (the reactor
 * thread). The unhandled-failure hook and debugging switch are process-wide.
 *
 * Errors follow twistc.h: int functions return 0 or a negative errno; functions that
 * return a Deferred return NULL with errno set (ENOMEM, EINVAL) and then took nothing.
 */
#ifndef TWISTC_DEFERRED_H
#define TWISTC_DEFERRED_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <twistc/twistc_base.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct deferred deferred;
typedef struct deferred_failure deferred_failure;
struct reactor; /* <twistc/reactor.h>; only deferred_add_timeout needs it */

#if defined(__GNUC__) || defined(__clang__)
#define DEFERRED__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define DEFERRED__PRINTF(a, b)
#endif

/* ---- Library error codes (positive, beyond errno's range) ----------------------------
 * Where an errno value fits, failures use it: ECANCELED (CancelledError), ETIMEDOUT
 * (TimeoutError), EALREADY (AlreadyCalledError, returned by deferred_callback),
 * EDEADLK (a callback returned its own Deferred: circular chain), ENOMEM. */
enum {
    DEFERRED_EFIRST = 20001, /* FirstError: DeferredList/gather; cause = the failure */
    DEFERRED_EUSER = 20002,  /* generic "an error happened" for application code */
    DEFERRED_ECONNDONE = 20003, /* ConnectionDone: the connection was closed cleanly */
    DEFERRED_EDNS = 20004,      /* DNSLookupError: the host name did not resolve */
};

/* ---- Failures ------------------------------------------------------------------------ */

struct deferred_failure {
    int code;                 /* positive errno or DEFERRED_E*; never 0 */
    int index;                /* DEFERRED_EFIRST: index of the failed input; else -1 */
    int reason;               /* made from a connection's protocol_reason (see
                               * <twistc/deferred_connect.h>): its kind + 1; else 0 */
    const char *file;         /* where it was made (string literal from __FILE__) */
    int line;
    deferred_failure *cause;  /* wrapped failure (reference owned by this one) or NULL */
    char message[];           /* NUL-terminated, never NULL */
};

/* Makes a failure with one reference owned by the caller. `code` may be given as err
 * or -err (stored positive; 0 becomes DEFERRED_EUSER). `cause`, if not NULL, is TAKEN
 * (the new failure owns that reference). fmt may be NULL (message from the code). */
TWISTC_API deferred_failure *deferred_failure_new_at(const char *file, int line, int code,
                                                     deferred_failure *cause,
                                                     const char *fmt, ...)
    DEFERRED__PRINTF(5, 6);
#define deferred_failure_new(code, ...) \
    deferred_failure_new_at(__FILE__, __LINE__, (code), NULL, __VA_ARGS__)
/* Wraps `cause` (taken) in a new failure: "what I was doing" around "what went wrong". */
#define deferred_failure_wrap(cause, code, ...) \
    deferred_failure_new_at(__FILE__, __LINE__, (code), (cause), __VA_ARGS__)
TWISTC_API deferred_failure *deferred_failure_ref(deferred_failure *f);
TWISTC_API void deferred_failure_unref(deferred_failure *f);
/* The innermost cause (f itself when it wraps nothing). */
TWISTC_API const deferred_failure *deferred_failure_root(const deferred_failure *f);
/* 1 if f or any failure it wraps has this code (err or -err). */
TWISTC_API int deferred_failure_has_code(const deferred_failure *f, int code);
/* Writes "message (ECODE) at file:line" and one "caused by: ..." line per cause.
 * Returns the number of characters written, like fprintf. */
TWISTC_API int deferred_failure_print(const deferred_failure *f, FILE *out);
/* A short name for a failure code: "ECANCELED", "ETIMEDOUT", "FirstError", ... */
TWISTC_API const char *deferred_code_name(int code);

/* ---- Results ------------------------------------------------------------------------- */

typedef enum {
    DEFERRED_NONE = 0,  /* Python's None: no value */
    DEFERRED_INT,
    DEFERRED_DOUBLE,
    DEFERRED_STR,
    DEFERRED_PTR,
    DEFERRED_FAILURE,
    DEFERRED_DEFERRED,  /* only as a callback's return value (implicit chaining) */
} deferred_kind;

typedef void (*deferred_free_fn)(void *p);

typedef struct deferred_result {
    deferred_kind kind;
    deferred_free_fn free_fn; /* STR/PTR: frees the payload when the result is dropped */
    union {
        int64_t i;
        double d;
        char *s;
        void *p;
        deferred_failure *failure;
        deferred *deferred;
    } u;
} deferred_result;

static inline deferred_result deferred_none(void)
{
    deferred_result r = {DEFERRED_NONE, NULL, {0}};
    return r;
}
static inline deferred_result deferred_int(int64_t v)
{
    deferred_result r = {DEFERRED_INT, NULL, {0}};
    r.u.i = v;
    return r;
}
static inline deferred_result deferred_double(double v)
{
    deferred_result r = {DEFERRED_DOUBLE, NULL, {0}};
    r.u.d = v;
    return r;
}
/* A string; free_fn NULL means borrowed (a literal, or outlives the result), `free`
 * means the result owns a malloc'd string. */
static inline deferred_result deferred_str(const char *s, deferred_free_fn free_fn)
{
    deferred_result r = {DEFERRED_STR, free_fn, {0}};
    r.u.s = (char *)s; /* const only while borrowed: free_fn NULL never writes or frees */
    return r;
}
/* A pointer with its destructor (NULL: borrowed). */
static inline deferred_result deferred_ptr(void *p, deferred_free_fn free_fn)
{
    deferred_result r = {DEFERRED_PTR, free_fn, {0}};
    r.u.p = p;
    return r;
}
/* Wraps a failure reference (taken) as a result. f NULL gives an EINVAL failure. */
TWISTC_API deferred_result deferred_failure_result(deferred_failure *f);
/* A result holding a new failure made here: `return deferred_error(ECONNRESET, "...")`
 * from a callback is Python's `raise`. */
#define deferred_error(code, ...) \
    deferred_failure_result(deferred_failure_new_at(__FILE__, __LINE__, (code), NULL, __VA_ARGS__))
/* A result that says "continue with this Deferred's result" (implicit chaining, A7;
 * not to be confused with deferred_chain_deferred, Twisted's chainDeferred, which
 * forwards this chain's result to another Deferred).
 * Passes one reference on d: use deferred_continue_with(deferred_ref(d)) to keep yours. */
static inline deferred_result deferred_continue_with(deferred *d)
{
    deferred_result r = {DEFERRED_DEFERRED, NULL, {0}};
    r.u.deferred = d;
    return r;
}
/* A copy of a string (malloc'd, owned by the result); ENOMEM failure if out of memory. */
TWISTC_API deferred_result deferred_str_dup(const char *s);

/* Drops what r owns and sets it to NONE. Safe on a NONE result and on NULL. */
TWISTC_API void deferred_result_clear(deferred_result *r);
/* Moves the payload out of *r (leaving NONE) and returns it. */
static inline deferred_result deferred_result_take(deferred_result *r)
{
    deferred_result t = *r;
    r->kind = DEFERRED_NONE;
    r->free_fn = NULL;
    r->u.p = NULL;
    return t;
}
static inline int deferred_result_is_failure(const deferred_result *r)
{
    return r->kind == DEFERRED_FAILURE;
}
/* The failure's code, or 0 for a success. */
static inline int deferred_result_code(const deferred_result *r)
{
    return r->kind == DEFERRED_FAILURE ? r->u.failure->code : 0;
}

/* ---- Creating and referencing ---------------------------------------------------------- */

/* Called by deferred_cancel() on an unfired Deferred (A13); may fire d itself. */
typedef void (*deferred_canceller)(deferred *d, void *arg);

/* A new unfired Deferred with one reference owned by the caller; NULL+ENOMEM.
 * The creation site is recorded (reports, debugging) at no cost. */
TWISTC_API deferred *deferred_new_at(const char *file, int line, deferred_canceller canceller,
                                     void *canceller_arg);
#define deferred_new() deferred_new_at(__FILE__, __LINE__, NULL, NULL)
#define deferred_new_cancellable(canceller, arg) \
    deferred_new_at(__FILE__, __LINE__, (canceller), (arg))
/* Sets or replaces the canceller of an unfired Deferred; arg_free (may be NULL) runs on
 * canceller_arg when the Deferred is freed or the canceller is replaced. -EALREADY if
 * d has fired (the canceller would never run; arg_free is not called). */
TWISTC_API int deferred_set_canceller(deferred *d, deferred_canceller canceller,
                                      void *canceller_arg, deferred_free_fn arg_free);

TWISTC_API deferred *deferred_ref(deferred *d);
/* Drops one reference; at 0 the Deferred is freed (see the ownership rule). NULL ok. */
TWISTC_API void deferred_unref(deferred *d);

/* ---- Adding (callback, errback) pairs --------------------------------------------------- */

/* A callback or errback: receives the current result (ownership passes in) and returns
 * the new result (ownership passes out). Return the same `r` to pass it through,
 * deferred_error() to fail, deferred_continue_with(d) to wait for another Deferred. */
typedef deferred_result (*deferred_cb)(deferred_result r, void *arg);

/* Adds the pair (cb, eb); a NULL cb or eb passes the result through on that side. If d
 * has already fired (and is neither paused nor running), the pair runs now, inside this
 * call (A4). `arg` is given to whichever of cb/eb runs; arg_free (may be NULL) is
 * called on arg exactly once: after the pair ran, or when the pair is discarded.
 * Returns d, or NULL with errno (EINVAL for d NULL, ENOMEM; then arg_free(arg) was
 * called already, so nothing leaks). */
TWISTC_API deferred *deferred_add_callbacks_full(deferred *d, deferred_cb cb, deferred_cb eb,
                                                 void *arg, deferred_free_fn arg_free);
TWISTC_API deferred *deferred_add_callbacks(deferred *d, deferred_cb cb, deferred_cb eb,
                                            void *arg);
TWISTC_API deferred *deferred_add_callback(deferred *d, deferred_cb cb, void *arg);
TWISTC_API deferred *deferred_add_errback(deferred *d, deferred_cb eb, void *arg);
TWISTC_API deferred *deferred_add_both(deferred *d, deferred_cb fn, void *arg);
/* Twisted's chainDeferred(other): other gets this chain's result at this point of the
 * chain (d's result becomes NONE, other takes a failure over). Unlike Python this does
 * not recurse: other runs in the same loop. Takes a reference on other. */
TWISTC_API deferred *deferred_chain_deferred(deferred *d, deferred *other);

/* ---- Firing ------------------------------------------------------------------------------ */

/* Fires d with r (taken in every case). A FAILURE result acts as errback (A5). Returns
 * 0; -EALREADY if d has fired before (AlreadyCalledError; r is dropped, d unchanged),
 * except for the one firing swallowed after a cancel without canceller (A15), which
 * returns 0; -EINVAL if r is a DEFERRED (refused, A5) or d is NULL. */
TWISTC_API int deferred_callback_at(deferred *d, deferred_result r, const char *file, int line);
/* Not API (exported only because the inline below calls it): deferred_callback() passes
 * the result in pieces so that it travels in registers instead of through memory
 * (docs/benchmarks-notebook.md). Call deferred_callback / deferred_callback_at. */
TWISTC_API int deferred__callback_parts_at(deferred *d, deferred_kind kind,
                                           deferred_free_fn free_fn, int64_t payload,
                                           const char *file, int line);
static inline int deferred__callback_inline(deferred *d, deferred_result r, const char *file,
                                            int line)
{
    return deferred__callback_parts_at(d, r.kind, r.free_fn, r.u.i, file, line);
}
#define deferred_callback(d, r) deferred__callback_inline((d), (r), __FILE__, __LINE__)
/* Fires d with failure f (taken; NULL makes an EINVAL failure). Same returns. */
TWISTC_API int deferred_errback_at(deferred *d, deferred_failure *f, const char *file, int line);
#define deferred_errback(d, f) deferred_errback_at((d), (f), __FILE__, __LINE__)
/* Errbacks with a new failure made here. */
#define deferred_errback_new(d, code, ...) \
    deferred_errback_at((d), deferred_failure_new_at(__FILE__, __LINE__, (code), NULL, __VA_ARGS__), \
                        __FILE__, __LINE__)

/* ---- State ------------------------------------------------------------------------------ */

/* 1 once callback/errback was called (Twisted's `called`). */
TWISTC_API int deferred_called(const deferred *d);
/* The pause counter (A12). */
TWISTC_API int deferred_paused(const deferred *d);
/* 1 while d waits on a Deferred returned by one of its callbacks. */
TWISTC_API int deferred_waiting(const deferred *d);
/* The current result when d has fired and is not paused, running or waiting (what the
 * next added pair would receive); NULL otherwise. Borrowed: valid until d changes. */
TWISTC_API const deferred_result *deferred_peek_result(const deferred *d);
/* Moves that result out into *out (d keeps NONE, so a failure taken here is handled).
 * -EAGAIN if there is no result to take (see deferred_peek_result). */
TWISTC_API int deferred_take_result(deferred *d, deferred_result *out);
/* Number of pairs not run yet. */
TWISTC_API size_t deferred_pending_callbacks(const deferred *d);
TWISTC_API unsigned deferred_refcount(const deferred *d);
/* Where d was created / first fired (file NULL if not fired yet). */
TWISTC_API void deferred_sites(const deferred *d, const char **created_file, int *created_line,
                               const char **fired_file, int *fired_line);

/* ---- Pause, cancel ---------------------------------------------------------------------- */

/* No pair runs while the counter is above 0, even once fired (A12). */
TWISTC_API int deferred_pause(deferred *d);
/* Back to 0 on a fired Deferred runs the pending pairs now. -EINVAL if not paused. */
TWISTC_API int deferred_unpause(deferred *d);
/* Cancels d (A13-A15): if unfired, runs the canceller (at most once); if d is still
 * unfired afterwards it errbacks with an ECANCELED failure, and without a canceller
 * the producer's next firing is silently swallowed once. On a fired Deferred waiting
 * on an inner one, cancels the inner one. Otherwise nothing. Returns 0 (-EINVAL for
 * NULL). */
TWISTC_API int deferred_cancel(deferred *d);

/* ---- Timeouts (needs a reactor; the only part tied to it) ------------------------------- */

/* Replaces the ECANCELED failure of a timed-out Deferred (A16). Receives the result at
 * that point (taken) and the timeout; returns the new result. */
typedef deferred_result (*deferred_timeout_fn)(deferred_result r, double timeout, void *arg);

/* Cancels d after `seconds` on reactor r's clock unless it fired before; the resulting
 * ECANCELED failure becomes an ETIMEDOUT failure "Deferred timed out after S seconds"
 * (or on_timeout(r, seconds, arg) if given). Pairs added before this call see the
 * ECANCELED failure. Returns d, or NULL with errno (EINVAL, ENOMEM). */
TWISTC_API deferred *deferred_add_timeout(deferred *d, struct reactor *r, double seconds,
                                          deferred_timeout_fn on_timeout, void *arg);

/* ---- Helpers (A17) ---------------------------------------------------------------------- */

/* An already-fired Deferred with result r (taken; a FAILURE gives a failed one, a
 * DEFERRED gives that Deferred back). NULL+ENOMEM (r dropped). */
TWISTC_API deferred *deferred_succeed_at(deferred_result r, const char *file, int line);
#define deferred_succeed(r) deferred_succeed_at((r), __FILE__, __LINE__)
/* An already-failed Deferred (f taken). */
TWISTC_API deferred *deferred_fail_at(deferred_failure *f, const char *file, int line);
#define deferred_fail(f) deferred_fail_at((f), __FILE__, __LINE__)
/* maybeDeferred: calls fn(arg); a DEFERRED result is returned as is (its reference),
 * anything else is wrapped with deferred_succeed / deferred_fail. */
TWISTC_API deferred *deferred_maybe_at(deferred_result (*fn)(void *arg), void *arg,
                                       const char *file, int line);
#define deferred_maybe(fn, arg) deferred_maybe_at((fn), (arg), __FILE__, __LINE__)

/* ---- DeferredList and gather (A20-A22) -------------------------------------------------- */

enum {
    DEFERRED_LIST_FIRE_ON_ONE_CALLBACK = 1u << 0,
    DEFERRED_LIST_FIRE_ON_ONE_ERRBACK = 1u << 1,
    DEFERRED_LIST_CONSUME_ERRORS = 1u << 2,
};

typedef struct deferred_list_item {
    int ok;                 /* 1: success, 0: failure (result holds a failure) */
    deferred_result result;
} deferred_list_item;

/* The success value of a DeferredList / gather Deferred (a DEFERRED_PTR whose free_fn
 * is deferred_list_result_free). */
typedef struct deferred_list_result {
    size_t count;
    /* FIRE_ON_ONE_CALLBACK: the index of the first success (count is 1 and items[0]
     * holds its value). Otherwise 0. */
    size_t index;
    deferred_list_item items[];
} deferred_list_result;
TWISTC_API void deferred_list_result_free(void *list_result);
/* The list inside r, or NULL if r is not a DeferredList/gather result. Borrowed. */
TWISTC_API deferred_list_result *deferred_list_result_of(const deferred_result *r);

/* A Deferred that fires when the n inputs have fired (A20), with a
 * deferred_list_result in input order; the flags select Twisted's fireOnOneCallback,
 * fireOnOneErrback (FirstError: a DEFERRED_EFIRST failure whose cause is the input's
 * failure and index its position) and consumeErrors. The list borrows the inputs
 * (takes its own references; the caller keeps and drops its own) and appends one pair
 * to each. A success value that owns memory (STR/PTR with free_fn) is MOVED into the
 * list: that input's later pairs see NONE. Other values and failures are shared.
 * Cancelling the list before it fired cancels every input (A21). NULL+errno. */
TWISTC_API deferred *deferred_list_new_at(deferred *const *ds, size_t n, unsigned flags,
                                          const char *file, int line);
#define deferred_list_new(ds, n, flags) deferred_list_new_at((ds), (n), (flags), __FILE__, __LINE__)
/* gatherResults: a list_result of the values (all ok), or the first failure as
 * FirstError. consume_errors as DEFERRED_LIST_CONSUME_ERRORS. */
TWISTC_API deferred *deferred_gather_at(deferred *const *ds, size_t n, int consume_errors,
                                        const char *file, int line);
#define deferred_gather(ds, n, consume_errors) \
    deferred_gather_at((ds), (n), (consume_errors), __FILE__, __LINE__)

/* ---- Unhandled failures (A18) and debugging (A19) --------------------------------------- */

typedef enum {
    DEFERRED_REPORT_UNHANDLED,      /* freed while holding a failure */
    DEFERRED_REPORT_LIVE,           /* still alive holding a failure (shutdown report) */
    DEFERRED_REPORT_ALREADY_CALLED, /* debugging on: a second firing was refused */
} deferred_report_kind;

typedef struct deferred_report {
    deferred_report_kind kind;
    const deferred_failure *failure; /* NULL for ALREADY_CALLED */
    const char *created_file;        /* where the Deferred was made */
    int created_line;
    const char *fired_file;          /* where it was first fired (NULL if unknown) */
    int fired_line;
    const char *again_file;          /* ALREADY_CALLED: the refused firing */
    int again_line;
    const char *debug_text;          /* debugging on: creation/first-fire backtraces, or NULL */
} deferred_report;

typedef void (*deferred_report_hook)(const deferred_report *rep, void *arg);

/* Installs the process-wide reporting hook; NULL restores the default, which prints
 * one block per report to stderr. Returns the previous hook (and its arg in *old_arg
 * if not NULL). */
TWISTC_API deferred_report_hook deferred_set_unhandled_hook(deferred_report_hook hook, void *arg,
                                                            void **old_arg);
/* The default hook, usable from a custom one: writes the block to `arg` (a FILE *,
 * stderr when NULL). */
TWISTC_API void deferred_default_report(const deferred_report *rep, void *arg);
/* Reports (DEFERRED_REPORT_LIVE) every live Deferred now holding an unhandled failure
 * that was not reported before; returns how many. Freeing one later does not report
 * it again. */
TWISTC_API size_t deferred_report_live(void);
/* How many live Deferreds hold a failure right now. */
TWISTC_API size_t deferred_live_failures(void);

/* Debug mode (A19), off by default: records backtraces (where the platform has them)
 * of each Deferred's creation and first firing, adds them to reports, and reports a
 * refused second firing. Process-wide; affects Deferreds created afterwards. */
TWISTC_API void deferred_set_debugging(int on);
TWISTC_API int deferred_get_debugging(void);

#ifdef __cplusplus
}
#endif
#endif
