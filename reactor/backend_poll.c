/* poll(2) backend: portable, no fd limit. A dense pollfd array plus an fd-indexed map
 * to each fd's slot, so add/modify/remove are O(1); poll itself is O(watched). */
#include "reactor/backend_internal.h"

#include <twistc/reactor.h>

#include <errno.h>
#include <poll.h>
#include <stdlib.h>

typedef struct {
    struct pollfd *pfd; /* dense: the fds with interest */
    int n, cap;
    int *slot;          /* slot[fd]: index in pfd, or -1 */
    int slot_cap;
} poll_state;

static void *pl_create(void)
{
    return calloc(1, sizeof(poll_state));
}

static void pl_free(void *st)
{
    poll_state *s = st;
    free(s->pfd);
    free(s->slot);
    free(s);
}

static short pl_mask(unsigned events)
{
    return (short)(((events & REACTOR_READABLE) ? POLLIN : 0) |
                   ((events & REACTOR_WRITABLE) ? POLLOUT : 0));
}

static int pl_add(void *st, int fd, unsigned events)
{
    poll_state *s = st;
    if (fd >= s->slot_cap) {
        int cap = s->slot_cap ? s->slot_cap : 64;
        while (cap <= fd)
            cap *= 2;
        int *slot = realloc(s->slot, (size_t)cap * sizeof *slot);
        if (!slot)
            return -ENOMEM;
        for (int i = s->slot_cap; i < cap; i++)
            slot[i] = -1;
        s->slot = slot;
        s->slot_cap = cap;
    }
    if (s->slot[fd] >= 0) { /* already there: just update */
        s->pfd[s->slot[fd]].events = pl_mask(events);
        return 0;
    }
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 64;
        struct pollfd *p = realloc(s->pfd, (size_t)cap * sizeof *p);
        if (!p)
            return -ENOMEM;
        s->pfd = p;
        s->cap = cap;
    }
    s->pfd[s->n] = (struct pollfd){.fd = fd, .events = pl_mask(events)};
    s->slot[fd] = s->n++;
    return 0;
}

static int pl_modify(void *st, int fd, unsigned old, unsigned events)
{
    (void)old;
    poll_state *s = st;
    if (fd >= s->slot_cap || s->slot[fd] < 0)
        return pl_add(st, fd, events);
    s->pfd[s->slot[fd]].events = pl_mask(events);
    return 0;
}

static int pl_remove(void *st, int fd, unsigned old)
{
    (void)old;
    poll_state *s = st;
    if (fd >= s->slot_cap || s->slot[fd] < 0)
        return 0;
    int i = s->slot[fd];
    s->pfd[i] = s->pfd[--s->n]; /* move the last slot into the hole */
    s->slot[s->pfd[i].fd] = i;
    s->slot[fd] = -1;
    return 0;
}

static int pl_poll(void *st, int timeout_ms, reactor__ready *out, int max)
{
    poll_state *s = st;
    int n = poll(s->pfd, (nfds_t)s->n, timeout_ms);
    if (n < 0)
        return -errno;
    int k = 0;
    for (int i = 0; i < s->n && k < n && k < max; i++) {
        short re = s->pfd[i].revents;
        if (!re)
            continue;
        out[k].fd = s->pfd[i].fd;
        out[k].events = ((re & POLLIN) ? REACTOR_READABLE : 0) |
                        ((re & POLLOUT) ? REACTOR_WRITABLE : 0) |
                        ((re & (POLLERR | POLLHUP | POLLNVAL)) ? REACTOR_ERROR : 0);
        k++;
    }
    return k;
}

const reactor__backend reactor__backend_poll = {
    .name = "poll",
    .create = pl_create,
    .free = pl_free,
    .add = pl_add,
    .modify = pl_modify,
    .remove = pl_remove,
    .poll = pl_poll,
};
