/* kqueue backend (BSDs, macOS; on Linux through libkqueue: make KQUEUE=libkqueue).
 * Adding and changing interest is not sent one syscall at a time: the changes are queued
 * in a changelist and handed to the same kevent() call that waits (as libuv, libevent
 * and libev do), so a busy iteration costs one syscall. Removing an fd's last interest is
 * the exception: it is sent at once (kq_remove says why). Pitfall 2.16 explains the
 * EV_EOF and EV_ERROR handling below; kq_sock_error why the backend keeps the error an
 * EV_EOF carries. This file compiles to nothing where kqueue is missing. */
#include "reactor/backend_internal.h"

#ifdef REACTOR__HAVE_KQUEUE

#include <twistc/reactor.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/event.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define KQ_BATCH 256

typedef struct {
    int kq;
    pid_t owner; /* the process that made kq: a kqueue is not inherited by fork() */
    struct kevent *chg; /* pending changes, flushed by the next kevent() */
    int nchg, chg_cap;
    struct kevent evs[KQ_BATCH];
    /* kqueue reports READ and WRITE of one fd as two entries; these merge them into one
     * batch entry: seen[fd] == round means the fd already has entry pos[fd]. */
    uint32_t *seen;
    int *pos;
    int *err;  /* err[fd]: the socket error an EV_EOF reported in fflags (kq_sock_error) */
    int map_cap;
    uint32_t round;
} kq_state;

static void *kq_create(void)
{
    kq_state *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->owner = getpid();
    s->kq = kqueue();
    if (s->kq < 0 || fcntl(s->kq, F_SETFD, FD_CLOEXEC) < 0) {
        int e = errno;
        if (s->kq >= 0)
            close(s->kq);
        free(s);
        errno = e;
        return NULL;
    }
    return s;
}

static void kq_free(void *st)
{
    kq_state *s = st;
    /* In a forked child the kqueue is gone (the BSDs do not copy it; libkqueue closes
     * its descriptors in its atfork handler), and its number may already belong to
     * something else, such as the child's new kqueue made by reactor_after_fork. */
    if (s->owner == getpid())
        close(s->kq);
    free(s->chg);
    free(s->seen);
    free(s->pos);
    free(s->err);
    free(s);
}

/* Room for two more changes, so that one kq_modify queues all of its changes or none. */
static int kq_reserve(kq_state *s)
{
    if (s->chg_cap - s->nchg >= 2)
        return 0;
    int cap = s->chg_cap ? s->chg_cap * 2 : 64;
    struct kevent *c = realloc(s->chg, (size_t)cap * sizeof *c);
    if (!c)
        return -ENOMEM;
    s->chg = c;
    s->chg_cap = cap;
    return 0;
}

static void kq_change(kq_state *s, int fd, short filter, unsigned short flags)
{
    EV_SET(&s->chg[s->nchg], (uintptr_t)fd, filter, flags, 0, 0, 0);
    s->nchg++;
}

static int kq_modify(void *st, int fd, unsigned old, unsigned events)
{
    kq_state *s = st;
    if (fd >= s->map_cap) { /* grow the merge map here, never in kq_poll */
        int cap = s->map_cap ? s->map_cap : 64;
        while (cap <= fd)
            cap *= 2;
        uint32_t *seen = realloc(s->seen, (size_t)cap * sizeof *seen);
        if (!seen)
            return -ENOMEM;
        s->seen = seen;
        int *pos = realloc(s->pos, (size_t)cap * sizeof *pos);
        if (!pos)
            return -ENOMEM;
        s->pos = pos;
        int *err = realloc(s->err, (size_t)cap * sizeof *err);
        if (!err)
            return -ENOMEM;
        s->err = err;
        for (int i = s->map_cap; i < cap; i++) {
            s->seen[i] = 0;
            s->err[i] = 0;
        }
        s->map_cap = cap;
    }
    if (kq_reserve(s) < 0)
        return -ENOMEM;
    if (!old)
        s->err[fd] = 0; /* a new registration, maybe a reused fd number: no old error */
    unsigned on = events & ~old, off = old & ~events;
    if (on & REACTOR_READABLE)
        kq_change(s, fd, EVFILT_READ, EV_ADD);
    if (on & REACTOR_WRITABLE)
        kq_change(s, fd, EVFILT_WRITE, EV_ADD);
    if (off & REACTOR_READABLE)
        kq_change(s, fd, EVFILT_READ, EV_DELETE);
    if (off & REACTOR_WRITABLE)
        kq_change(s, fd, EVFILT_WRITE, EV_DELETE);
    return 0;
}

static int kq_add(void *st, int fd, unsigned events)
{
    return kq_modify(st, fd, 0, events);
}

/* Whether the kernel holds `filter` for fd now, before the queued changes: the first
 * queued change for it says (an EV_ADD means it did not, an EV_DELETE that it did);
 * with none queued, the kernel has what the loop last asked for (`want`). */
static int kq_in_kernel(const kq_state *s, int fd, short filter, int want)
{
    for (int i = 0; i < s->nchg; i++)
        if (s->chg[i].ident == (uintptr_t)fd && s->chg[i].filter == filter)
            return (s->chg[i].flags & EV_DELETE) != 0;
    return want;
}

/* The fd's last interest goes: its filters are deleted now, not at the next poll. The
 * caller may close the fd right after unwatching it (pitfall 2.17), and on libkqueue a
 * close does not drop the fd's filters as it does on the BSDs: a deletion queued past
 * the close would fail with EBADF and leave the epoll registration behind it alive on
 * the open file, firing for a closed fd number (a dup keeps it open) and shadowing a
 * new socket that reuses the number. One syscall per removal, as epoll_ctl costs. */
static int kq_remove(void *st, int fd, unsigned old)
{
    kq_state *s = st;
    struct kevent del[2];
    int n = 0;
    /* (n is not incremented inside EV_SET: some systems' macro evaluates kevp twice) */
    if (kq_in_kernel(s, fd, EVFILT_READ, (old & REACTOR_READABLE) != 0)) {
        EV_SET(&del[n], (uintptr_t)fd, EVFILT_READ, EV_DELETE, 0, 0, 0);
        n++;
    }
    if (kq_in_kernel(s, fd, EVFILT_WRITE, (old & REACTOR_WRITABLE) != 0)) {
        EV_SET(&del[n], (uintptr_t)fd, EVFILT_WRITE, EV_DELETE, 0, 0, 0);
        n++;
    }
    /* The fd's queued changes would only be undone by these deletions: drop them. */
    int k = 0;
    for (int i = 0; i < s->nchg; i++)
        if (s->chg[i].ident != (uintptr_t)fd)
            s->chg[k++] = s->chg[i];
    s->nchg = k;
    if (fd < s->map_cap)
        s->err[fd] = 0; /* the error belonged to this registration */
    if (n == 0)
        return 0;
    /* No event list: a failed change then ends the call with -1 and the rest of the list
     * is not applied, so after a failure each deletion is tried alone. Failures are
     * ENOENT/EBADF (the filter or the fd is already gone): nothing is left to remove. */
    static const struct timespec zero = {0, 0};
    if (kevent(s->kq, del, n, NULL, 0, &zero) < 0 && n == 2)
        (void)kevent(s->kq, &del[1], 1, NULL, 0, &zero);
    return 0;
}

/* kevent() reports a failed change (an fd closed while still watched) as an EV_ERROR
 * entry in the event list, but when the list is already full it stops at that change
 * and fails as a whole, the later changes not applied. Submitting the same list again
 * would fail the same way at every poll (the loop stuck on -ENOENT/-EBADF), so they are
 * applied one at a time, in order, and their failures dropped: the ones already applied
 * only set the same state again. Only this rare path loses the REACTOR_ERROR report of
 * a failed change other than ENOENT/EBADF/EINVAL. */
static void kq_apply_each(kq_state *s)
{
    static const struct timespec zero = {0, 0};
    for (int i = 0; i < s->nchg; i++)
        (void)kevent(s->kq, &s->chg[i], 1, NULL, 0, &zero);
}

static int kq_poll(void *st, int timeout_ms, reactor__ready *out, int max)
{
    kq_state *s = st;
    struct timespec ts, *tsp = NULL;
    if (timeout_ms >= 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
        tsp = &ts;
    }
    int nev = max < KQ_BATCH ? max : KQ_BATCH;
    int n = kevent(s->kq, s->chg, s->nchg, s->evs, nev, tsp);
    if (n < 0 && errno != EINTR && s->nchg > 0) {
        kq_apply_each(s);
        n = kevent(s->kq, NULL, 0, s->evs, nev, tsp);
    }
    /* The changes were applied before the wait, even when it is interrupted (EINTR). */
    s->nchg = 0;
    if (n < 0)
        return -errno;
    if (++s->round == 0) { /* wrapped: forget old stamps */
        for (int i = 0; i < s->map_cap; i++)
            s->seen[i] = 0;
        s->round = 1;
    }
    int k = 0;
    for (int i = 0; i < n; i++) {
        const struct kevent *e = &s->evs[i];
        int fd = (int)e->ident;
        unsigned ev;
        if ((e->flags & (EV_EOF | EV_ERROR)) == EV_EOF && e->fflags != 0 && fd >= 0 &&
            fd < s->map_cap)
            /* An EV_EOF with the socket's error in fflags: kept for kq_sock_error. (Not
             * cleared by an EV_EOF without one: libkqueue gives the error to the first of
             * the fd's filters to report it, and the other one finds it gone.) */
            s->err[fd] = (int)e->fflags;
        if (e->flags & EV_ERROR) {
            /* A queued change failed. ENOENT/EBADF/EINVAL: the fd was closed before the
             * flush, nothing to report. Others (EPERM, EPIPE...): tell the watcher. */
            if (e->data == ENOENT || e->data == EBADF || e->data == EINVAL)
                continue;
            ev = REACTOR_ERROR;
        } else if (e->filter == EVFILT_READ) {
            /* EV_EOF on read: the peer shut down its side, but data may still be queued;
             * the reader learns of the EOF from read() returning 0, so report READABLE. */
            ev = REACTOR_READABLE;
        } else if (e->filter == EVFILT_WRITE) {
            /* EV_EOF on write: the peer is gone; write() will say why. */
            ev = REACTOR_WRITABLE | ((e->flags & EV_EOF) ? REACTOR_ERROR : 0);
        } else {
            continue;
        }
        if (fd >= 0 && fd < s->map_cap && s->seen[fd] == s->round) {
            out[s->pos[fd]].events |= ev;
            continue;
        }
        if (fd >= 0 && fd < s->map_cap) {
            s->seen[fd] = s->round;
            s->pos[fd] = k;
        }
        out[k].fd = fd;
        out[k].events = ev;
        k++;
    }
    return k;
}

/* BSD kqueue reports a socket's pending error (so_error) in the fflags of an EV_EOF event
 * and leaves it on the socket, so a later getsockopt(SO_ERROR), recv() or send() still
 * gets it. libkqueue (Linux) fills fflags by calling getsockopt(SO_ERROR) when epoll says
 * EPOLLERR, and on Linux that call clears the error: a refused connect then reads as
 * connected (SO_ERROR 0) and a reset as a clean EOF (recv() 0). So kq_poll keeps each
 * fd's last reported error, and the reactor asks here when the kernel says nothing
 * (reactor__sock_error, reactor__seen_error): given once, and forgotten when the fd's
 * interest is added or removed (a closed fd's number is reused). On the BSDs this only
 * repeats what getsockopt says, and reactor__sock_error asks getsockopt first. */
static int kq_sock_error(void *st, int fd)
{
    kq_state *s = st;
    if (fd < 0 || fd >= s->map_cap)
        return 0;
    int e = s->err[fd];
    s->err[fd] = 0;
    return e;
}

const reactor__backend reactor__backend_kqueue = {
    .name = "kqueue",
    .create = kq_create,
    .free = kq_free,
    .add = kq_add,
    .modify = kq_modify,
    .remove = kq_remove,
    .poll = kq_poll,
    .sock_error = kq_sock_error,
};

#else
typedef int reactor__no_kqueue; /* ISO C wants something in a translation unit */
#endif
