#define _GNU_SOURCE /* eventfd */
/* reactor_call_from_thread: the one thread-safe entry.
 *
 * Other threads append (fn, data) to a mutex-protected vector and wake the loop by
 * writing to an eventfd (Linux) or a pipe. Only the first call after the loop last
 * looked writes to it (the wake_pending flag), so a burst of calls costs one syscall and
 * can never fill the pipe. The loop side, at the start of each iteration:
 *   1. drains the waker, 2. clears wake_pending, 3. swaps the vector for an empty one
 *   under the mutex, 4. runs the calls it took, in order, outside the lock.
 * A producer that saw wake_pending == 1 pushed its call before the loop's step 2, so
 * step 3 takes it; one that comes after step 2 writes again. No wakeup is lost, and
 * calls queued while a batch runs wait for the next iteration. */
#include "reactor/reactor_internal.h"
#include "reactor/slow_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/eventfd.h>
#endif

static void waker_drain(reactor *r)
{
    char buf[64];
    while (read(r->wake_fd[0], buf, sizeof buf) > 0)
        ;
}

/* The waker's I/O callback: only empties it, so a level-triggered poll does not keep
 * reporting it; the calls themselves run at the start of the next iteration. */
static void reactor_waker(reactor *r, int fd, unsigned events, void *data)
{
    (void)fd;
    (void)events;
    (void)data;
    waker_drain(r);
}

static int waker_open(reactor *r)
{
#ifdef __linux__
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0)
        return -errno;
    r->wake_fd[0] = r->wake_fd[1] = fd;
#else
    int rc = reactor__pipe(r->wake_fd);
    if (rc < 0)
        return rc;
#endif
    int rc2 = reactor_watch(r, r->wake_fd[0], REACTOR_READABLE, reactor_waker, NULL);
    if (rc2 < 0) {
        close(r->wake_fd[0]);
        if (r->wake_fd[1] != r->wake_fd[0])
            close(r->wake_fd[1]);
        r->wake_fd[0] = r->wake_fd[1] = -1;
    }
    return rc2;
}

static void waker_close(reactor *r)
{
    if (r->wake_fd[0] < 0)
        return;
    reactor_unwatch(r, r->wake_fd[0]);
    close(r->wake_fd[0]);
    if (r->wake_fd[1] != r->wake_fd[0])
        close(r->wake_fd[1]);
    r->wake_fd[0] = r->wake_fd[1] = -1;
}

int reactor__threads_init(reactor *r)
{
    int rc = pthread_mutex_init(&r->q_lock, NULL);
    if (rc)
        return -rc;
    atomic_init(&r->wake_pending, 0);
    rc = waker_open(r);
    if (rc < 0)
        pthread_mutex_destroy(&r->q_lock);
    return rc;
}

/* Called with q_lock held: the wake write happens under the lock so reactor_free cannot
 * close the fd under us; it is rare (once per batch), so the lock is not held for a
 * syscall per call. */
static void wake_locked(reactor *r)
{
    if (!atomic_exchange(&r->wake_pending, 1)) {
        static const uint64_t one = 1; /* eventfd wants 8 bytes; a pipe takes them too */
        ssize_t w = write(r->wake_fd[1], &one, sizeof one);
        (void)w; /* EAGAIN: the pipe is full of wake bytes already, which is enough */
    }
}

int reactor_call_from_thread(reactor *r, reactor_fn fn, void *data)
{
    if (!r || !fn)
        return -EINVAL;
    pthread_mutex_lock(&r->q_lock);
    int rc = r->q_closed ? -EINVAL : reactor__calls_push(&r->q, fn, data);
    if (rc == 0)
        wake_locked(r);
    pthread_mutex_unlock(&r->q_lock);
    return rc;
}

int reactor_wakeup(reactor *r)
{
    if (!r)
        return -EINVAL;
    pthread_mutex_lock(&r->q_lock);
    int rc = r->q_closed ? -EINVAL : 0;
    if (rc == 0)
        wake_locked(r);
    pthread_mutex_unlock(&r->q_lock);
    return rc;
}

int reactor__thread_calls_pending(reactor *r)
{
    return atomic_load_explicit(&r->wake_pending, memory_order_acquire);
}

size_t reactor__run_thread_calls(reactor *r)
{
    if (!atomic_load_explicit(&r->wake_pending, memory_order_acquire))
        return 0; /* the common case: one load, no lock */
    waker_drain(r);
    atomic_store(&r->wake_pending, 0);
    /* The wake may have been a reactor_wakeup() (no call) that arrived just before this
     * iteration: it still means "do not block in the poll". */
    r->woken = 1;
    pthread_mutex_lock(&r->q_lock);
    reactor__calls batch = r->q; /* take the whole batch; keep the spare's memory */
    r->q = r->q_spare;
    pthread_mutex_unlock(&r->q_lock);
    for (size_t i = 0; i < batch.n; i++)
        if (r->slow)
            reactor__slow_call(r, REACTOR__SLOW_THREAD_CALL, batch.v[i].fn, batch.v[i].data,
                               NULL, 0);
        else
            batch.v[i].fn(r, batch.v[i].data);
    size_t n = batch.n;
    batch.n = 0;
    r->q_spare = batch;
    return n;
}

void reactor__threads_close(reactor *r)
{
    pthread_mutex_lock(&r->q_lock);
    r->q_closed = 1;
    pthread_mutex_unlock(&r->q_lock);
}

void reactor__threads_free(reactor *r)
{
    waker_close(r);
    pthread_mutex_destroy(&r->q_lock);
    free(r->q.v);
    free(r->q_spare.v);
}

int reactor__threads_after_fork(reactor *r)
{
    /* Only this thread exists in the child; the lock may have been held by a thread
     * that is gone, so it is made anew. The waker is shared with the parent: replace it. */
    pthread_mutex_init(&r->q_lock, NULL);
    waker_close(r);
    atomic_store(&r->wake_pending, 0);
    int rc = waker_open(r);
    if (rc == 0 && r->q.n > 0) { /* calls queued before the fork still run here */
        atomic_store(&r->wake_pending, 1);
    }
    return rc;
}
