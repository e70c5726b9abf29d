#define _GNU_SOURCE /* backtrace() on glibc, behind __GLIBC__ */
/* Unhandled failures (A18) and debug mode (A19).
 *
 * Twisted logs "Unhandled error in Deferred" when the garbage collector happens to free
 * a failed Deferred, which may be late or never. Here a Deferred reports the moment its
 * last reference goes while it holds a failure; and the Deferreds still alive holding
 * a failure are kept on a list so a reactor can report them at shutdown. Only failing
 * Deferreds touch the list (and its lock), so the success path costs nothing. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GLIBC__)
#include <execinfo.h>
#define DEFERRED__HAVE_BACKTRACE 1
#endif

#include "deferred/deferred_internal.h"
#include "reactor/module_internal.h" /* reactor__set_end_of_run_hook */

int deferred__debugging;

static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static deferred *live_head;
static size_t live_count;
static int hook_registered; /* under live_lock */

static deferred_report_hook report_hook = deferred_default_report;
static void *report_arg;

deferred_report_hook deferred_set_unhandled_hook(deferred_report_hook hook, void *arg, void **old_arg)
{
    pthread_mutex_lock(&live_lock);
    deferred_report_hook old = report_hook;
    if (old_arg)
        *old_arg = report_arg;
    report_hook = hook ? hook : deferred_default_report;
    report_arg = hook ? arg : NULL;
    pthread_mutex_unlock(&live_lock);
    return old;
}

void deferred_default_report(const deferred_report *rep, void *arg)
{
    FILE *out = arg ? (FILE *)arg : stderr;
    switch (rep->kind) {
    case DEFERRED_REPORT_UNHANDLED:
        fprintf(out, "Unhandled error in Deferred (freed while holding a failure):\n");
        break;
    case DEFERRED_REPORT_LIVE:
        fprintf(out, "Unhandled error in Deferred (still alive, holding a failure):\n");
        break;
    case DEFERRED_REPORT_ALREADY_CALLED:
        fprintf(out, "Deferred fired twice (AlreadyCalledError, refused):\n");
        break;
    }
    fprintf(out, "  created at %s:%d\n", rep->created_file ? rep->created_file : "?",
            rep->created_line);
    if (rep->fired_file)
        fprintf(out, "  first fired at %s:%d\n", rep->fired_file, rep->fired_line);
    if (rep->again_file)
        fprintf(out, "  fired again at %s:%d\n", rep->again_file, rep->again_line);
    if (rep->failure) {
        fprintf(out, "  failure: ");
        deferred_failure_print(rep->failure, out);
    }
    if (rep->debug_text)
        fprintf(out, "%s", rep->debug_text);
    fflush(out);
}

/* ---- Debug mode: backtraces of creation and first firing -------------------------- */

#define DEBUG_FRAMES 16
struct deferred__debug {
    int ncreated, nfired;
    void *created[DEBUG_FRAMES];
    void *fired[DEBUG_FRAMES];
};

void deferred_set_debugging(int on) { __atomic_store_n(&deferred__debugging, on ? 1 : 0, __ATOMIC_RELAXED); }
int deferred_get_debugging(void) { return __atomic_load_n(&deferred__debugging, __ATOMIC_RELAXED); }

void deferred__debug_created(deferred *d)
{
    /* NULL on out of memory: the flag is set anyway, every user checks the pointer. */
    d->debug = calloc(1, sizeof *d->debug);
#ifdef DEFERRED__HAVE_BACKTRACE
    if (d->debug)
        d->debug->ncreated = backtrace(d->debug->created, DEBUG_FRAMES);
#endif
}

void deferred__debug_fired(deferred *d)
{
#ifdef DEFERRED__HAVE_BACKTRACE
    if (d->debug && d->debug->nfired == 0)
        d->debug->nfired = backtrace(d->debug->fired, DEBUG_FRAMES);
#else
    (void)d;
#endif
}

void deferred__debug_free(deferred *d)
{
    free(d->debug);
    d->debug = NULL;
}

/* The debug text: both backtraces, symbolised when possible. Caller frees. */
static char *debug_text(const deferred *d)
{
#ifdef DEFERRED__HAVE_BACKTRACE
    if (!(d->flags & DEFERRED__DEBUG) || !d->debug)
        return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m)
        return NULL;
    const char *titles[2] = {"  created (debug backtrace):\n", "  first fired (debug backtrace):\n"};
    void *const *frames[2] = {d->debug->created, d->debug->fired};
    int counts[2] = {d->debug->ncreated, d->debug->nfired};
    for (int k = 0; k < 2; k++) {
        if (counts[k] <= 0)
            continue;
        fputs(titles[k], m);
        char **syms = backtrace_symbols(frames[k], counts[k]);
        for (int i = 0; i < counts[k]; i++)
            fprintf(m, "    %s\n", syms ? syms[i] : "?");
        free(syms);
    }
    fclose(m);
    return buf;
#else
    (void)d;
    return NULL;
#endif
}

/* ---- Reports ----------------------------------------------------------------------- */

void deferred__report(deferred_report_kind kind, deferred *d, const char *again_file, int again_line)
{
    deferred_report rep;
    memset(&rep, 0, sizeof rep);
    rep.kind = kind;
    rep.failure = kind == DEFERRED_REPORT_ALREADY_CALLED ? NULL : d->result.u.failure;
    rep.created_file = d->created_file;
    rep.created_line = d->created_line;
    rep.fired_file = d->fired_file;
    rep.fired_line = d->fired_line;
    rep.again_file = again_file;
    rep.again_line = again_line;
    char *text = debug_text(d);
    rep.debug_text = text;
    pthread_mutex_lock(&live_lock);
    deferred_report_hook hook = report_hook;
    void *arg = report_arg;
    pthread_mutex_unlock(&live_lock);
    hook(&rep, arg);
    free(text);
}

static void unlink_locked(deferred *d)
{
    if (!d->on_live)
        return;
    if (d->live_prev)
        d->live_prev->live_next = d->live_next;
    else
        live_head = d->live_next;
    if (d->live_next)
        d->live_next->live_prev = d->live_prev;
    d->live_prev = d->live_next = NULL;
    d->on_live = 0;
    live_count--;
}

static void report_at_end_of_run(void) { (void)deferred_report_live(); }

void deferred__live_add(deferred *d)
{
    pthread_mutex_lock(&live_lock);
    /* The first failure kept alive asks every reactor to report it at the end of its run
     * (the reactor sits below us: it calls up only through this hook). */
    if (!hook_registered) {
        reactor__set_end_of_run_hook(report_at_end_of_run);
        hook_registered = 1;
    }
    if (!d->on_live && !d->reported) {
        d->live_prev = NULL;
        d->live_next = live_head;
        if (live_head)
            live_head->live_prev = d;
        live_head = d;
        live_count++;
        d->on_live = 1;
    }
    pthread_mutex_unlock(&live_lock);
}

void deferred__live_remove(deferred *d)
{
    pthread_mutex_lock(&live_lock);
    unlink_locked(d);
    pthread_mutex_unlock(&live_lock);
}

void deferred__live_destroy(deferred *d)
{
    pthread_mutex_lock(&live_lock);
    unlink_locked(d);
    int report = !d->reported;
    pthread_mutex_unlock(&live_lock);
    if (report)
        deferred__report(DEFERRED_REPORT_UNHANDLED, d, NULL, 0);
}

size_t deferred_live_failures(void)
{
    pthread_mutex_lock(&live_lock);
    size_t n = live_count;
    pthread_mutex_unlock(&live_lock);
    return n;
}

size_t deferred_report_live(void)
{
    /* Unlink each one under the lock (marking it reported), report it without the lock
     * (the hook may do anything, even free other Deferreds). A Deferred on the list is
     * alive and holds a failure; the reports are made on the reactor's thread at
     * shutdown, when its Deferreds are quiet. */
    size_t n = 0;
    for (;;) {
        pthread_mutex_lock(&live_lock);
        deferred *d = live_head;
        if (d) {
            unlink_locked(d);
            d->reported = 1;
            deferred_ref(d);
        }
        pthread_mutex_unlock(&live_lock);
        if (!d)
            break;
        deferred__report(DEFERRED_REPORT_LIVE, d, NULL, 0);
        deferred_unref(d);
        n++;
    }
    return n;
}
