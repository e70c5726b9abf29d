/* The teaching trace: one greppable key=value line per loop phase and event, e.g.
 *   iter=3 phase=timers ran=1
 *   iter=3 phase=poll backend=epoll timeout_ms=250 watched=3
 *   iter=3 phase=poll ready=1 waited_ms=12.031
 *   iter=3 dispatch fd=7 ev=R cb=on_readable
 * Every call site is guarded by `if (r->trace)`, so tracing off costs one branch. */
#include "reactor/reactor_internal.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void reactor__trace_init(reactor *r)
{
    const char *e = getenv("REACTOR_TRACE");
    if (e && *e && strcmp(e, "0") != 0)
        r->trace = stderr;
    r->hooks = r->trace != NULL || r->slow != NULL;
}

void reactor__trace(const reactor *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(r->trace, "iter=%llu ", (unsigned long long)r->iter);
    vfprintf(r->trace, fmt, ap);
    fputc('\n', r->trace);
    va_end(ap);
}

const char *reactor__events_str(unsigned events, char buf[8])
{
    char *p = buf;
    static const struct { unsigned bit; char c; } names[] = {
        {REACTOR_READABLE, 'R'}, {REACTOR_WRITABLE, 'W'}, {REACTOR_ERROR, 'E'}};
    for (size_t i = 0; i < 3; i++)
        if (events & names[i].bit) {
            if (p != buf)
                *p++ = '|';
            *p++ = names[i].c;
        }
    if (p == buf)
        *p++ = '-';
    *p = '\0';
    return buf;
}

void reactor_set_trace(reactor *r, FILE *out)
{
    if (r) {
        r->trace = out;
        r->hooks = r->trace != NULL || r->slow != NULL;
    }
}

FILE *reactor_trace_file(const reactor *r)
{
    return r ? r->trace : NULL;
}
