/* Deferred internals shared by the deferred/ sources. Private to libtwistc. */
#ifndef TWISTC_DEFERRED_INTERNAL_H
#define TWISTC_DEFERRED_INTERNAL_H

#include <twistc/deferred.h>

/* One (callback, errback) pair. cb == eb == deferred__continue marks the continuation
 * that hands this Deferred's result to the Deferred waiting on it (arg, one
 * reference owned by the pair). */
typedef struct deferred__pair {
    deferred_cb cb;
    deferred_cb eb;
    void *arg;
    deferred_free_fn arg_free;
} deferred__pair;

/* Two pairs inline: the common "one callback, one errback" chain needs no second
 * allocation. */
#define DEFERRED__INLINE_PAIRS 2

enum {
    DEFERRED__CALLED = 1u << 0,
    DEFERRED__RUNNING = 1u << 1,     /* one of its pairs is executing */
    DEFERRED__SUPPRESS = 1u << 2,    /* cancelled without canceller: swallow one firing */
    DEFERRED__CANCELLING = 1u << 3,  /* canceller already called (runs at most once) */
    /* destroy() has more to do than the common case: a heap pair array, a canceller
     * argument to free, debug data. One test instead of three on the hot path. */
    DEFERRED__SLOW_FREE = 1u << 4,
    DEFERRED__DEBUG = 1u << 5,       /* d->debug is set (debugging was on at creation) */
    DEFERRED__HAS_CANCELLER_ARG_FREE = 1u << 6,
};

struct deferred__debug; /* backtraces, debugging mode only */

struct deferred {
    /* Hot: touched by every make/add/fire/free (first cache lines). */
    unsigned refs;
    unsigned flags;
    int paused;
    unsigned head;  /* first pair not run yet */
    unsigned count; /* pairs used in `pairs` */
    unsigned cap;
    deferred__pair *pairs; /* == inl, or a heap array */
    deferred_result result;
    deferred__pair inl[DEFERRED__INLINE_PAIRS];
    const char *created_file;
    const char *fired_file;
    int created_line;
    int fired_line;
    /* Cold. */
    deferred *chained_to; /* weak: the inner Deferred this one waits on (A14) */
    deferred_canceller canceller;
    void *canceller_arg;
    deferred_free_fn canceller_arg_free; /* valid with DEFERRED__HAS_CANCELLER_ARG_FREE */
    struct deferred__debug *debug;       /* valid with DEFERRED__DEBUG */
    deferred *free_next; /* free queue / per-thread cache of freed structs */
    /* Live-failure list; these four fields are only touched under its lock, since the
     * shutdown report may run on another thread. */
    deferred *live_prev, *live_next; /* valid while on_live */
    unsigned char on_live;  /* on the list */
    unsigned char reported; /* its failure was reported already (do not report again) */
};

/* Per-thread variables on the hot paths (the Deferred cache, the current coroutine) use
 * the initial-exec TLS model: one %fs-relative load, where the default model of a
 * shared library calls __tls_get_addr (and makes the caller save registers around the
 * call). It takes a few dozen bytes of the static TLS space glibc reserves for shared
 * libraries, so libtwistc.so can still be dlopen'ed. */
#if defined(__GNUC__) || defined(__clang__)
#define DEFERRED__TLS_IE __attribute__((tls_model("initial-exec")))
#else
#define DEFERRED__TLS_IE
#endif

/* deferred_report.c */
extern int deferred__debugging;
/* Called by the owner thread whenever d's current result is a failure and d is
 * finished (add) or about to change that result (remove). */
void deferred__live_add(deferred *d);
void deferred__live_remove(deferred *d);
/* At free: unlinks d and reports its failure unless reported before. */
void deferred__live_destroy(deferred *d);
void deferred__report(deferred_report_kind kind, deferred *d, const char *again_file,
                      int again_line);
void deferred__debug_created(deferred *d);
void deferred__debug_fired(deferred *d);
void deferred__debug_free(deferred *d);

/* failure.c */
extern deferred_failure deferred__enomem_failure;

#endif
