/* The epoll backend's state and its poll, inline: reactor.c calls it directly when the
 * loop runs on epoll (the default on Linux), which saves an indirect call and a stack
 * frame on every iteration. Internal to libtwistc. */
#ifndef TWISTC_BACKEND_EPOLL_INTERNAL_H
#define TWISTC_BACKEND_EPOLL_INTERNAL_H

#include "reactor/backend_internal.h"

#ifdef REACTOR__HAVE_EPOLL

#include <errno.h>
#include <sys/epoll.h>

#include <twistc/reactor.h>

/* The kernel array is filled directly: its size caps one batch (the rest comes back on
 * the next poll, since epoll is level-triggered and rotates its ready list). */
#define REACTOR__EP_BATCH 256

typedef struct {
    int epfd;
    struct epoll_event evs[REACTOR__EP_BATCH];
} reactor__ep_state;

_Static_assert((unsigned)EPOLLIN == (unsigned)REACTOR_READABLE &&
                   (unsigned)EPOLLOUT >> 1 == (unsigned)REACTOR_WRITABLE &&
                   REACTOR_ERROR == 1u << 2,
               "reactor__ep_poll's event mapping assumes these bit values");

static inline int reactor__ep_poll(void *st, int timeout_ms, reactor__ready *out, int max)
{
    reactor__ep_state *s = st;
    int n = epoll_wait(s->epfd, s->evs, max < REACTOR__EP_BATCH ? max : REACTOR__EP_BATCH,
                       timeout_ms);
    if (n < 0)
        return -errno;
    /* Runs once per poll, so branch-free: EPOLLIN (0x1) is REACTOR_READABLE's bit
     * already and EPOLLOUT (0x4) is REACTOR_WRITABLE's (0x2) shifted left once (checked
     * at compile time above). */
    for (int i = 0; i < n; i++) {
        uint32_t e = s->evs[i].events;
        out[i].fd = s->evs[i].data.fd;
        out[i].events = (e & EPOLLIN) | ((e & EPOLLOUT) >> 1) |
                        ((unsigned)((e & (EPOLLERR | EPOLLHUP)) != 0) << 2);
    }
    return n;
}

#endif
#endif
