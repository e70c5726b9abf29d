#define _GNU_SOURCE
/* epoll backend (Linux). Level-triggered. The loop keeps an fd out of the set whenever it
 * wants nothing from it, so EPOLLHUP/EPOLLERR (which epoll reports even for an empty
 * mask) cannot make the loop spin on an fd nobody listens to. */
#include "reactor/backend_epoll_internal.h"

#ifdef REACTOR__HAVE_EPOLL

#include <twistc/reactor.h>

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static void *ep_create(void)
{
    reactor__ep_state *s = malloc(sizeof *s);
    if (!s)
        return NULL;
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epfd < 0) {
        int e = errno;
        free(s);
        errno = e;
        return NULL;
    }
    return s;
}

static void ep_free(void *st)
{
    reactor__ep_state *s = st;
    close(s->epfd);
    free(s);
}

static uint32_t ep_mask(unsigned events)
{
    return ((events & REACTOR_READABLE) ? EPOLLIN : 0) |
           ((events & REACTOR_WRITABLE) ? EPOLLOUT : 0);
}

static int ep_ctl(reactor__ep_state *s, int op, int fd, unsigned events)
{
    struct epoll_event ev = {.events = ep_mask(events), .data.fd = fd};
    if (epoll_ctl(s->epfd, op, fd, &ev) == 0)
        return 0;
    /* The kernel forgets an fd when its last descriptor closes. So an ADD can meet a
     * dup'ed description still registered (EEXIST: modify instead), and a MOD can meet
     * an fd closed and reopened under the same number (ENOENT: add instead), the two
     * cases libevent's epoll_apply_one_change retries. */
    if (op == EPOLL_CTL_ADD && errno == EEXIST)
        op = EPOLL_CTL_MOD;
    else if (op == EPOLL_CTL_MOD && errno == ENOENT)
        op = EPOLL_CTL_ADD;
    else
        return errno == EPERM ? -EINVAL : -errno; /* EPERM: a regular file */
    if (epoll_ctl(s->epfd, op, fd, &ev) == 0)
        return 0;
    return -errno;
}

static int ep_add(void *st, int fd, unsigned events)
{
    return ep_ctl(st, EPOLL_CTL_ADD, fd, events);
}

static int ep_modify(void *st, int fd, unsigned old, unsigned events)
{
    (void)old;
    return ep_ctl(st, EPOLL_CTL_MOD, fd, events);
}

static int ep_remove(void *st, int fd, unsigned old)
{
    (void)old;
    reactor__ep_state *s = st;
    struct epoll_event ev = {0}; /* non-NULL for kernels before 2.6.9 */
    /* EBADF/ENOENT: the caller closed the fd first; nothing is left to remove. */
    if (epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, &ev) < 0 && errno != EBADF && errno != ENOENT)
        return -errno;
    return 0;
}

static int ep_poll(void *st, int timeout_ms, reactor__ready *out, int max)
{
    return reactor__ep_poll(st, timeout_ms, out, max);
}

const reactor__backend reactor__backend_epoll = {
    .name = "epoll",
    .create = ep_create,
    .free = ep_free,
    .add = ep_add,
    .modify = ep_modify,
    .remove = ep_remove,
    .poll = ep_poll,
};

#else
typedef int reactor__no_epoll; /* ISO C wants something in a translation unit */
#endif
