/* kqueue backend (BSDs, macOS; on Linux through libkqueue: make KQUEUE=libkqueue).
 * Interest changes are not sent one syscall at a time: they are queued in a changelist
 * and handed to the same kevent() call that waits (as libuv, libevent and libev do),
 * so a busy iteration costs one syscall. Pitfall 2.16 explains the EV_EOF and EV_ERROR
 * handling below. This file compiles to nothing where kqueue is missing. */
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
    struct kevent *chg; /* pending changes, flushed by the next kevent() */
    int nchg, chg_cap;
    struct kevent evs[KQ_BATCH];
    /* kqueue reports READ and WRITE of one fd as two entries; these merge them into one
     * batch entry: seen[fd] == round means the fd already has entry pos[fd]. */
    uint32_t *seen;
    int *pos;
    int map_cap;
    uint32_t round;
} kq_state;

static void *kq_create(void)
{
    kq_state *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
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
    close(s->kq);
    free(s->chg);
    free(s->seen);
    free(s->pos);
    free(s);
}

static int kq_change(kq_state *s, int fd, short filter, unsigned short flags)
{
    if (s->nchg == s->chg_cap) {
        int cap = s->chg_cap ? s->chg_cap * 2 : 64;
        struct kevent *c = realloc(s->chg, (size_t)cap * sizeof *c);
        if (!c)
            return -ENOMEM;
        s->chg = c;
        s->chg_cap = cap;
    }
    EV_SET(&s->chg[s->nchg], (uintptr_t)fd, filter, flags, 0, 0, 0);
    s->nchg++;
    return 0;
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
        for (int i = s->map_cap; i < cap; i++)
            s->seen[i] = 0;
        s->map_cap = cap;
    }
    int rc = 0;
    unsigned on = events & ~old, off = old & ~events;
    if (on & REACTOR_READABLE)
        rc = kq_change(s, fd, EVFILT_READ, EV_ADD);
    if (!rc && (on & REACTOR_WRITABLE))
        rc = kq_change(s, fd, EVFILT_WRITE, EV_ADD);
    if (!rc && (off & REACTOR_READABLE))
        rc = kq_change(s, fd, EVFILT_READ, EV_DELETE);
    if (!rc && (off & REACTOR_WRITABLE))
        rc = kq_change(s, fd, EVFILT_WRITE, EV_DELETE);
    return rc;
}

static int kq_add(void *st, int fd, unsigned events)
{
    return kq_modify(st, fd, 0, events);
}

static int kq_remove(void *st, int fd, unsigned old)
{
    return kq_modify(st, fd, old, 0);
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
    /* The changes were applied before the wait, even when it is interrupted (EINTR). */
    if (n >= 0 || errno == EINTR)
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

const reactor__backend reactor__backend_kqueue = {
    .name = "kqueue",
    .create = kq_create,
    .free = kq_free,
    .add = kq_add,
    .modify = kq_modify,
    .remove = kq_remove,
    .poll = kq_poll,
};

#else
typedef int reactor__no_kqueue; /* ISO C wants something in a translation unit */
#endif
