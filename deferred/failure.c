/* Failures (error objects) and results: the values a Deferred chain passes along.
 *
 * A failure is one allocation: the struct with its message stored after it. It is
 * immutable once made, so sharing it by reference count is safe (a DeferredList
 * and the input it came from both hold it). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deferred/deferred_internal.h"

/* The reference count lives in a header just before the public struct, so the public
 * header shows only what a user reads. HDR keeps the struct's alignment. */
#define HDR ((sizeof(unsigned) + _Alignof(deferred_failure) - 1) / _Alignof(deferred_failure) \
             * _Alignof(deferred_failure))
static unsigned *refs_of(const deferred_failure *f) { return (unsigned *)((char *)f - HDR); }

/* Out of memory must not turn into a NULL the caller has to check: this shared,
 * never-freed failure stands in (it has no header and is never counted). */
deferred_failure deferred__enomem_failure = {
    .code = ENOMEM,
    .index = -1,
    .file = "(out of memory)",
    .line = 0,
    .cause = NULL,
};
#define IMMORTAL(f) ((f) == &deferred__enomem_failure)

deferred_failure *deferred_failure_new_at(const char *file, int line, int code,
                                          deferred_failure *cause, const char *fmt, ...)
{
    if (code < 0)
        code = -code;
    if (code == 0)
        code = DEFERRED_EUSER;
    char buf[256];
    const char *msg = buf;
    int len;
    va_list ap;
    if (fmt) {
        va_start(ap, fmt);
        len = vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        if (len < 0) {
            buf[0] = '\0';
            len = 0;
        }
    } else {
        msg = code < 20000 ? strerror(code) : deferred_code_name(code);
        len = (int)strlen(msg);
    }
    char *block = malloc(HDR + sizeof(deferred_failure) + (size_t)len + 1);
    if (!block) {
        if (cause)
            deferred_failure_unref(cause);
        return &deferred__enomem_failure;
    }
    deferred_failure *f = (deferred_failure *)(block + HDR);
    if (fmt && (size_t)len >= sizeof buf) { /* long message: format again into place */
        va_start(ap, fmt);
        vsnprintf(f->message, (size_t)len + 1, fmt, ap);
        va_end(ap);
    } else {
        memcpy(f->message, msg, (size_t)len + 1);
    }
    f->code = code;
    f->index = -1;
    f->reason = 0;
    f->file = file;
    f->line = line;
    f->cause = cause;
    *refs_of(f) = 1;
    return f;
}

deferred_failure *deferred_failure_ref(deferred_failure *f)
{
    if (f && !IMMORTAL(f))
        (*refs_of(f))++;
    return f;
}

void deferred_failure_unref(deferred_failure *f)
{
    /* A loop, not recursion: a long chain of wrapped causes frees in constant stack. */
    while (f && !IMMORTAL(f) && --*refs_of(f) == 0) {
        deferred_failure *cause = f->cause;
        free(refs_of(f));
        f = cause;
    }
}

const deferred_failure *deferred_failure_root(const deferred_failure *f)
{
    while (f && f->cause)
        f = f->cause;
    return f;
}

int deferred_failure_has_code(const deferred_failure *f, int code)
{
    if (code < 0)
        code = -code;
    for (; f; f = f->cause)
        if (f->code == code)
            return 1;
    return 0;
}

const char *deferred_code_name(int code)
{
    if (code < 0)
        code = -code;
    switch (code) {
    case DEFERRED_EFIRST: return "FirstError";
    case DEFERRED_EUSER: return "Error";
    case DEFERRED_ECONNDONE: return "ConnectionDone";
    case DEFERRED_EDNS: return "DNSLookupError";
#define N(e) \
    case e: return #e;
    /* The codes a network library meets; the rest fall back to "errno N". */
    N(ECANCELED) N(ETIMEDOUT) N(EALREADY) N(EDEADLK) N(ENOMEM) N(EINVAL) N(ECONNREFUSED)
    N(ECONNRESET) N(ECONNABORTED) N(EPIPE) N(ENOTCONN) N(EIO) N(ENOENT) N(EAGAIN) N(EPROTO)
    N(EDOM) N(ERANGE) N(EBADF) N(EBADMSG) N(EBUSY) N(EEXIST) N(EHOSTUNREACH) N(ENETUNREACH)
    N(EADDRINUSE) N(EADDRNOTAVAIL) N(EMFILE) N(ENFILE) N(ENOSPC) N(ENOSYS) N(ENOTSUP)
    N(EPERM) N(EACCES) N(EINTR) N(EMSGSIZE) N(ESHUTDOWN) N(EOVERFLOW) N(EFAULT)
#undef N
    default: {
        static _Thread_local char buf[24];
        snprintf(buf, sizeof buf, "errno %d", code);
        return buf;
    }
    }
}

int deferred_failure_print(const deferred_failure *f, FILE *out)
{
    int n = 0;
    for (int depth = 0; f; f = f->cause, depth++) {
        int w = fprintf(out, "%s%s (%s, %d) at %s:%d\n", depth ? "  caused by: " : "", f->message,
                        deferred_code_name(f->code), f->code, f->file ? f->file : "?", f->line);
        if (w < 0)
            return w;
        n += w;
    }
    return n;
}

deferred_result deferred_failure_result(deferred_failure *f)
{
    deferred_result r = {DEFERRED_FAILURE, NULL, {0}};
    r.u.failure = f ? f : deferred_failure_new(EINVAL, "NULL failure given");
    return r;
}

deferred_result deferred_str_dup(const char *s)
{
    if (!s)
        return deferred_str(NULL, NULL);
    size_t n = strlen(s) + 1;
    char *c = malloc(n);
    if (!c)
        return deferred_failure_result(deferred_failure_ref(&deferred__enomem_failure));
    memcpy(c, s, n);
    return deferred_str(c, free);
}

void deferred_result_clear(deferred_result *r)
{
    if (!r)
        return;
    switch (r->kind) {
    case DEFERRED_STR:
    case DEFERRED_PTR:
        if (r->free_fn)
            r->free_fn(r->u.p);
        break;
    case DEFERRED_FAILURE:
        deferred_failure_unref(r->u.failure);
        break;
    case DEFERRED_DEFERRED:
        deferred_unref(r->u.deferred);
        break;
    default:
        break;
    }
    r->kind = DEFERRED_NONE;
    r->free_fn = NULL;
    r->u.p = NULL;
}
