/* The slow-callback detector (asyncio's debug mode: "Executing <Handle> took 0.2 s").
 *
 * Contract (reactor.h: reactor_set_slow_callback_ms): with a threshold of N ms, every
 * callback that ran N ms or longer gets ONE report, printed on stderr (or handed to the
 * report function) as soon as it returned:
 *
 *   slow callback: NAME took D ms (WHAT[, in: OUTER > ...]); waiting: F fds ready, T timers overdue[ (oldest by O ms)]
 *
 * Timed sections. The reactor times its own callbacks (fd, timer, call from a thread,
 * signal, idle timeout); deferred/ opens a section around each Deferred callback through
 * reactor__slow_enter/leave, which find the reactor running on this thread (thread-local,
 * set by the reactor's sections). Sections nest: a Deferred callback run from inside an
 * HTTP client's data_received is a section inside the fd section. The time counted
 * against the threshold is a section's own: its duration minus the sections inside it
 * that were reported. So the innermost slow callback is the one named (the user's
 * `mail_title`, not "read on fd 7"), with where it ran in the "in:" part, and the
 * enclosing sections print no second line for the same time; one that is slow in its own
 * right (after subtracting) gets its own line.
 *
 * Waiting, measured when the callback returned: fds ready = a zero-timeout poll of the
 * backend (level-triggered, so the loop's next poll sees them again) plus the entries of
 * the current poll batch not yet dispatched that it did not list; timers overdue = those
 * whose deadline had passed and that had not run.
 *
 * Cost: off, the reactor pays one test of a field it already loads per callback it runs
 * (see slow_internal.h); deferred/ one load and test per callback. On, two clock readings
 * per callback, and the report's lookups only when one is printed. */
#include "reactor/reactor_internal.h"
#include "reactor/slow_internal.h"

#include <errno.h>
#include <math.h> /* isfinite: a macro, no libm needed */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define TLS_IE __attribute__((tls_model("initial-exec")))
#else
#define TLS_IE
#endif

#define MAX_DEPTH 16 /* sections deeper than this are not timed (still counted) */

typedef struct section {
    int kind;
    int fd;          /* fd sections */
    unsigned events; /* fd sections */
    int signo;       /* signal sections */
    const char *name;
    void (*fn)(void);
    void (*proto)(void); /* fd sections of a transport: its protocol's data_received */
    reactor__ns start;
    reactor__ns inner; /* time of the sections inside it that were reported */
} section;

struct reactor__slow_state {
    reactor__ns threshold;
    double ms;
    reactor_slow_fn report;
    void *report_data;
    int counted; /* counted in reactor__slow_users */
    int depth;
    section s[MAX_DEPTH];
    reactor__ready *peek;
    int peek_cap;
};

atomic_int reactor__slow_users;

/* The reactor whose callback runs on this thread (set by the reactor's own sections). */
static _Thread_local reactor *current TLS_IE;

/* ---- Turning it on and off --------------------------------------------------------- */

static reactor__slow_state *state(reactor *r)
{
    if (!r->slow_state) {
        r->slow_state = calloc(1, sizeof *r->slow_state);
    }
    return r->slow_state;
}

static void set_on(reactor *r, int on)
{
    reactor__slow_state *s = r->slow_state;
    r->slow = on ? s : NULL;
    r->hooks = r->trace != NULL || r->slow != NULL;
    if (s && on != s->counted) {
        atomic_fetch_add_explicit(&reactor__slow_users, on ? 1 : -1, memory_order_relaxed);
        s->counted = on;
    }
}

int reactor_set_slow_callback_ms(reactor *r, double ms)
{
    if (!r || !isfinite(ms) || ms < 0)
        return -EINVAL;
    if (ms == 0) {
        if (r->slow_state) {
            r->slow_state->ms = 0;
            set_on(r, 0);
        }
        return 0;
    }
    reactor__slow_state *s = state(r);
    if (!s)
        return -ENOMEM;
    s->ms = ms;
    s->threshold = reactor__ns_from_s(ms / 1000);
    if (s->threshold < 1)
        s->threshold = 1;
    set_on(r, 1);
    return 0;
}

double reactor_slow_callback_ms(const reactor *r)
{
    return r && r->slow ? r->slow->ms : 0;
}

int reactor_set_slow_callback_report(reactor *r, reactor_slow_fn fn, void *data)
{
    if (!r)
        return -EINVAL;
    reactor__slow_state *s = state(r);
    if (!s)
        return -ENOMEM;
    s->report = fn;
    s->report_data = data;
    return 0;
}

void reactor__slow_init(reactor *r)
{
    const char *e = getenv("REACTOR_SLOW_MS");
    if (!e || !*e)
        return;
    char *end;
    double ms = strtod(e, &end);
    if (*end || !isfinite(ms) || ms < 0) {
        fprintf(stderr, "REACTOR_SLOW_MS=%s: not a number of milliseconds, ignored\n", e);
        return;
    }
    if (ms > 0 && reactor_set_slow_callback_ms(r, ms) < 0)
        fprintf(stderr, "REACTOR_SLOW_MS=%s: out of memory, the detector is off\n", e);
}

void reactor__slow_free(reactor *r)
{
    if (!r->slow_state)
        return;
    set_on(r, 0);
    free(r->slow_state->peek);
    free(r->slow_state);
    r->slow_state = NULL;
}

/* ---- The report -------------------------------------------------------------------- */

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 2, 3)))
#endif
static void put(buf *b, const char *fmt, ...)
{
    if (b->len + 1 >= b->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        b->len = (size_t)n < b->cap - b->len ? b->len + (size_t)n : b->cap - 1;
}

static void name_of(const section *e, char *out, size_t len)
{
    if (e->name && strcmp(e->name, "?") != 0)
        snprintf(out, len, "%s", e->name);
    else
        reactor__symbol_name((const void *)e->fn, out, len);
}

/* What the section ran: "fd 7 R, protocol http_data_received", "timer", ... */
static void describe(buf *b, const section *e)
{
    char tmp[256];
    switch (e->kind) {
    case REACTOR__SLOW_FD:
        put(b, "fd %d %s", e->fd, reactor__events_str(e->events, tmp));
        if (e->proto) {
            reactor__symbol_name((const void *)e->proto, tmp, sizeof tmp);
            put(b, ", protocol %s", tmp);
        }
        break;
    case REACTOR__SLOW_TIMER: put(b, "timer"); break;
    case REACTOR__SLOW_THREAD_CALL: put(b, "call from a thread"); break;
    case REACTOR__SLOW_SIGNAL: put(b, "signal %d", e->signo); break;
    case REACTOR__SLOW_IDLE: put(b, "idle timeout"); break;
    case REACTOR__SLOW_DEFERRED_CB: put(b, "deferred callback"); break;
    case REACTOR__SLOW_DEFERRED_EB: put(b, "deferred errback"); break;
    case REACTOR__SLOW_CORO: put(b, "coroutine"); break;
    default: put(b, "callback"); break;
    }
}

static const char *const kind_names[REACTOR__SLOW_KINDS] = {
    "fd", "timer", "thread call", "signal", "idle timeout", "deferred callback",
    "deferred errback", "coroutine"};

/* fds ready when the callback returned: a zero-timeout poll, plus the entries of the
 * batch still to dispatch that it did not list (-1: unknown). */
static int fds_ready(reactor *r, reactor__slow_state *st, int batch_fd)
{
    int cap = r->watched + 1;
    if (cap > st->peek_cap) {
        reactor__ready *p = realloc(st->peek, (size_t)cap * sizeof *p);
        if (!p)
            return -1;
        st->peek = p;
        st->peek_cap = cap;
    }
    int n = r->be->poll(r->be_state, 0, st->peek, st->peek_cap);
    if (n == -EINTR)
        n = r->be->poll(r->be_state, 0, st->peek, st->peek_cap);
    if (n < 0)
        return -1;
    int total = n;
    if (r->batch_n > 0 && batch_fd >= 0) {
        int i = 0;
        while (i < r->batch_n && r->ready[i].fd != batch_fd)
            i++;
        for (i++; i < r->batch_n; i++) {
            int seen = 0;
            for (int j = 0; j < n && !seen; j++)
                seen = st->peek[j].fd == r->ready[i].fd;
            total += !seen;
        }
    }
    return total;
}

static void report(reactor *r, reactor__slow_state *st, int depth, reactor__ns dur)
{
    const section *e = &st->s[depth];
    char name[256], line[1024], ctx[512];
    name_of(e, name, sizeof name);

    /* The fd of the batch being dispatched: the outermost fd section of this reactor. */
    int batch_fd = -1;
    for (int i = 0; i <= depth; i++)
        if (st->s[i].kind == REACTOR__SLOW_FD) {
            batch_fd = st->s[i].fd;
            break;
        }
    int ready = fds_ready(r, st, batch_fd);
    reactor__ns now = r->fake_clock ? r->now : reactor__clock_now();
    reactor__ns oldest = 0;
    size_t overdue = reactor__timers_overdue(r, now, &oldest);
    double overdue_ms = overdue ? (double)(now - oldest) / 1e6 : 0;
    double ms = (double)dur / 1e6;

    buf c = {ctx, 0, sizeof ctx};
    ctx[0] = '\0';
    for (int i = 0; i < depth; i++) {
        char n2[256];
        name_of(&st->s[i], n2, sizeof n2);
        put(&c, "%s%s (", i ? " > " : "", n2);
        describe(&c, &st->s[i]);
        put(&c, ")");
    }

    buf b = {line, 0, sizeof line};
    put(&b, "slow callback: %s took %.1f ms", name, ms);
    if (e->inner > 0)
        put(&b, ", %.1f ms outside the slow callbacks inside it", (double)(dur - e->inner) / 1e6);
    put(&b, " (");
    describe(&b, e);
    if (depth > 0)
        put(&b, ", in: %s", ctx);
    put(&b, "); waiting: ");
    if (ready >= 0)
        put(&b, "%d fd%s ready, ", ready, ready == 1 ? "" : "s");
    put(&b, "%zu timer%s overdue", overdue, overdue == 1 ? "" : "s");
    if (overdue)
        put(&b, " (oldest by %.1f ms)", overdue_ms);

    if (st->report) {
        reactor_slow_report rep = {
            .line = line,
            .name = name,
            .kind = kind_names[e->kind],
            .context = ctx,
            .ms = ms,
            .fd = batch_fd,
            .fds_ready = ready,
            .timers_overdue = overdue,
            .overdue_ms = overdue_ms,
        };
        st->report(r, &rep, st->report_data);
    } else {
        fprintf(stderr, "%s\n", line);
    }
}

/* ---- Sections ---------------------------------------------------------------------- */

static section *open_section(reactor *r, reactor__slow_mark *m, int kind, void (*fn)(void),
                             const char *name)
{
    reactor__slow_state *st = r->slow_state;
    m->r = r;
    m->depth = st->depth++;
    m->prev = current;
    current = r;
    if (m->depth >= MAX_DEPTH)
        return NULL;
    section *e = &st->s[m->depth];
    *e = (section){.kind = kind, .fd = -1, .name = name, .fn = fn};
    e->start = reactor__clock_now();
    return e;
}

void reactor__slow_open(reactor *r, reactor__slow_mark *m, int kind, void (*fn)(void),
                        const char *name)
{
    open_section(r, m, kind, fn, name);
}

void reactor__slow_enter(reactor__slow_mark *m, int kind, void (*fn)(void), const char *name)
{
    reactor *r = current;
    if (!r || !r->slow) {
        m->r = NULL;
        return;
    }
    open_section(r, m, kind, fn, name);
}

void reactor__slow_leave(reactor__slow_mark *m)
{
    reactor *r = m->r;
    if (!r)
        return;
    reactor__slow_state *st = r->slow_state;
    current = m->prev;
    if (!st || st->depth <= m->depth)
        return; /* closed already, by a leave further out */
    /* Sections still open inside this one were left by a switch (a coroutine suspended
     * in them): closed here, without a report. */
    st->depth = m->depth;
    if (m->depth >= MAX_DEPTH)
        return;
    section *e = &st->s[m->depth];
    reactor__ns now = reactor__clock_now(), dur = now - e->start, counted = e->inner;
    if (r->slow && dur - e->inner >= st->threshold) {
        report(r, st, m->depth, dur);
        /* The sections around it do not count it, nor the report's own time (the first
         * one maps and reads the program's symbol table). */
        counted = reactor__clock_now() - e->start;
    }
    if (m->depth > 0)
        st->s[m->depth - 1].inner += counted;
}

void reactor__slow_io(reactor *r, int fd, unsigned events, reactor_io_fn fn, void *data,
                      const char *name)
{
    reactor__slow_mark m;
    section *e = open_section(r, &m, REACTOR__SLOW_FD, (void (*)(void))fn, name);
    if (e) {
        e->fd = fd;
        e->events = events;
        e->proto = reactor__transport_slow_fn(fn, data);
    }
    fn(r, fd, events, data);
    reactor__slow_leave(&m);
}

void reactor__slow_call(reactor *r, int kind, reactor_fn fn, void *data, const char *name,
                        int signo)
{
    reactor__slow_mark m;
    section *e = open_section(r, &m, kind, (void (*)(void))fn, name);
    if (e)
        e->signo = signo;
    fn(r, data);
    reactor__slow_leave(&m);
}
