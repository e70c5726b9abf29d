/* select(2) backend: the oldest and most portable, kept for teaching and comparison.
 * fd_set is a fixed bitmap of FD_SETSIZE bits (1024 on glibc); FD_SET on a larger fd
 * writes out of bounds, so add refuses such an fd with -ERANGE (pitfall 2.6): use poll
 * or epoll for programs with many fds. */
#include "reactor/backend_internal.h"

#include <twistc/reactor.h>

#include <errno.h>
#include <stdlib.h>
#include <sys/select.h>

typedef struct {
    fd_set rd, wr; /* the interest; select() gets copies */
    int maxfd;     /* highest fd in either set, -1 if none */
    fd_set rd_out, wr_out;
} select_state;

static void *sl_create(void)
{
    select_state *s = malloc(sizeof *s);
    if (!s)
        return NULL;
    FD_ZERO(&s->rd);
    FD_ZERO(&s->wr);
    s->maxfd = -1;
    return s;
}

static void sl_free(void *st)
{
    free(st);
}

static int sl_modify(void *st, int fd, unsigned old, unsigned events)
{
    (void)old;
    select_state *s = st;
    if (fd < 0 || fd >= FD_SETSIZE)
        return -ERANGE;
    if (events & REACTOR_READABLE)
        FD_SET(fd, &s->rd);
    else
        FD_CLR(fd, &s->rd);
    if (events & REACTOR_WRITABLE)
        FD_SET(fd, &s->wr);
    else
        FD_CLR(fd, &s->wr);
    if (events && fd > s->maxfd)
        s->maxfd = fd;
    /* Lower maxfd past fds that left both sets (rare: only when the top fd goes). */
    while (s->maxfd >= 0 && !FD_ISSET(s->maxfd, &s->rd) && !FD_ISSET(s->maxfd, &s->wr))
        s->maxfd--;
    return 0;
}

static int sl_add(void *st, int fd, unsigned events)
{
    return sl_modify(st, fd, 0, events);
}

static int sl_remove(void *st, int fd, unsigned old)
{
    return sl_modify(st, fd, old, 0);
}

static int sl_poll(void *st, int timeout_ms, reactor__ready *out, int max)
{
    select_state *s = st;
    struct timeval tv, *tvp = NULL;
    if (timeout_ms >= 0) {
        tv.tv_sec = timeout_ms / 1000;
        tv.tv_usec = (timeout_ms % 1000) * 1000;
        tvp = &tv;
    }
    s->rd_out = s->rd;
    s->wr_out = s->wr;
    int n = select(s->maxfd + 1, &s->rd_out, &s->wr_out, NULL, tvp);
    if (n < 0)
        return -errno;
    int k = 0;
    for (int fd = 0; fd <= s->maxfd && n > 0 && k < max; fd++) {
        unsigned ev = (FD_ISSET(fd, &s->rd_out) ? REACTOR_READABLE : 0) |
                      (FD_ISSET(fd, &s->wr_out) ? REACTOR_WRITABLE : 0);
        if (!ev)
            continue;
        n -= (ev == (REACTOR_READABLE | REACTOR_WRITABLE)) ? 2 : 1; /* select counts bits */
        out[k].fd = fd;
        out[k].events = ev;
        k++;
    }
    return k;
}

const reactor__backend reactor__backend_select = {
    .name = "select",
    .create = sl_create,
    .free = sl_free,
    .add = sl_add,
    .modify = sl_modify,
    .remove = sl_remove,
    .poll = sl_poll,
};
