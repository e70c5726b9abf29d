/* The internal backend interface (libevent's `eventop`, ae's aeApi*): each poller is one
 * small file that fills in this table. The loop (reactor.c) owns the per-fd state; a
 * backend only knows which fds want which directions and how to ask the kernel. */
#ifndef TWISTC_BACKEND_INTERNAL_H
#define TWISTC_BACKEND_INTERNAL_H

#include <stdint.h>

/* One entry of a poll batch: an fd and what the kernel reported for it (REACTOR_READABLE,
 * REACTOR_WRITABLE, REACTOR_ERROR). `gen` is stamped by the loop, not the backend: it is
 * the fd's registration generation at poll time, checked again before dispatch. */
typedef struct reactor__ready {
    int fd;
    unsigned events;
    uint32_t gen;
} reactor__ready;

typedef struct reactor__backend {
    const char *name;
    /* New backend state, or NULL with errno set. Every fd it opens is CLOEXEC. */
    void *(*create)(void);
    void (*free)(void *st);
    /* The loop calls add when an fd's interest goes from 0 to non-zero, modify when it
     * changes between two non-zero masks, remove when it drops to 0 or the fd is
     * unwatched (so an fd with no interest is never in the kernel set: EPOLLHUP cannot
     * spin, pitfall 2.17). `old` is the previous mask. Return 0 or a negative errno;
     * -ERANGE when this backend cannot take the fd at all (select, fd >= FD_SETSIZE). */
    int (*add)(void *st, int fd, unsigned events);
    int (*modify)(void *st, int fd, unsigned old, unsigned events);
    int (*remove)(void *st, int fd, unsigned old);
    /* Waits up to timeout_ms (-1: forever, 0: do not block) and writes at most `max`
     * entries, at most ONE per fd (directions merged). Returns the count, or a negative
     * errno (-EINTR is retried by the loop with the remaining time). */
    int (*poll)(void *st, int timeout_ms, reactor__ready *out, int max);
    /* Optional, NULL where the kernel keeps a socket's pending error until someone reads
     * it (epoll, poll, select, the BSD kqueues). The error this backend saw reported for
     * fd by its last polls and that getsockopt(SO_ERROR) may no longer give, consumed (0
     * the next time); 0 when none. For libkqueue, which reads SO_ERROR to fill a kevent's
     * fflags, and on Linux that read clears it. Forgotten when the fd's interest is added
     * or removed, so a reused fd number never inherits it. Only reactor__sock_error and
     * reactor__seen_error call it, on rare paths (a connect's completion, an EOF, an
     * error), never per event. */
    int (*sock_error)(void *st, int fd);
} reactor__backend;

/* What socket error is pending on a watched fd, for code that decides from it (a connect
 * completing, an error event): getsockopt(SO_ERROR), or when that says 0 (or the kernel
 * interface already consumed it), the error the backend saw (see sock_error above).
 * Consumes both: a second call returns 0 until a new error arrives. A failed getsockopt
 * (not a socket) returns its errno. Defined in reactor.c. */
struct reactor;
int reactor__sock_error(struct reactor *r, int fd);
/* Only the error the backend saw and the kernel may have given away, for code that the
 * kernel already answered without an error: recv() returned 0 (a reset would read as
 * that EOF on libkqueue), send() failed with EPIPE (where the reset's ECONNRESET went).
 * No syscall; 0 at once on a backend without sock_error. Consumes it. */
int reactor__seen_error(struct reactor *r, int fd);

/* Which backends this platform compiles in. kqueue exists on the BSDs and macOS; on
 * Linux it can be built against libkqueue (make KQUEUE=libkqueue sets TWISTC_HAVE_KQUEUE). */
#if defined(__linux__)
#define REACTOR__HAVE_EPOLL 1
#endif
#if defined(TWISTC_HAVE_KQUEUE) || defined(__APPLE__) || defined(__FreeBSD__) || \
    defined(__OpenBSD__) || defined(__NetBSD__) || defined(__DragonFly__)
#define REACTOR__HAVE_KQUEUE 1
#endif

/* Each is defined only where its REACTOR__HAVE_ macro is (poll and select: always). */
extern const reactor__backend reactor__backend_epoll;
extern const reactor__backend reactor__backend_kqueue;
extern const reactor__backend reactor__backend_poll;
extern const reactor__backend reactor__backend_select;

#endif
