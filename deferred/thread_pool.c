/* The per-reactor worker pool behind defer_to_thread() (thread_pool.h).
 *
 * Shape (libuv's threadpool, Twisted's deferToThread): one mutex and one condition
 * variable guard a FIFO of queued jobs. A worker takes the oldest job, runs it outside
 * the lock, and appends it to a "done" list; the first job to land on an empty done list
 * asks the reactor (reactor_call_from_thread) to run drain_done(), which fires the
 * Deferreds on the reactor thread. So a burst of completions costs one wakeup, and no
 * Deferred is ever touched off the reactor thread: workers only see fn, arg and result.
 *
 * Job states, changed under the lock:  QUEUED -> RUNNING -> DONE
 *                                      QUEUED -> (cancelled: unlinked and freed)   */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "deferred/thread_pool.h"
#include "reactor/module_internal.h"

#ifndef ESHUTDOWN
#define ESHUTDOWN ECANCELED
#endif

#define POOL_DEFAULT_SIZE 4
#define POOL_MAX_SIZE 1024

enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE };

struct pool;

typedef struct job {
    struct job *prev, *next; /* in the queue, then in the done list (next only) */
    struct pool *pool;
    defer_to_thread_fn fn;
    void *arg;
    deferred_free_fn arg_free;
    deferred *d;              /* the pool's reference; touched on the reactor thread only */
    deferred_result result;   /* written by the worker, read after it is DONE */
    enum job_state state;
} job;

typedef struct pool {
    reactor *r;
    pthread_mutex_t lock;
    pthread_cond_t work;      /* signalled when a job is queued or on stop */
    job *q_head, *q_tail;     /* QUEUED jobs, oldest first */
    job *done_head, *done_tail;
    size_t queued, running;
    pthread_t *threads;
    size_t nthreads, cap;
    size_t idle;              /* workers waiting on `work` */
    unsigned max;
    int stopping;             /* workers exit once the queue is empty */
    int wake_pending;         /* a drain_done call is queued on the reactor */
    int shut;                 /* stopped for good: new calls fail with ESHUTDOWN */
} pool;

/* ---- the reactor side -------------------------------------------------------------- */

static void job_finish(job *j)
{
    if (j->arg_free)
        j->arg_free(j->arg);
    deferred_unref(j->d);
    free(j);
}

/* Fires the Deferreds of every finished job, oldest first (reactor thread). */
static void drain(pool *p)
{
    pthread_mutex_lock(&p->lock);
    job *j = p->done_head;
    p->done_head = p->done_tail = NULL;
    p->wake_pending = 0;
    size_t queued = p->queued, running = p->running;
    pthread_mutex_unlock(&p->lock);
    FILE *trace = reactor_trace_file(p->r);
    if (trace && j) {
        size_t n = 0;
        for (job *k = j; k; k = k->next)
            n++;
        fprintf(trace, "thread_pool op=fire done=%zu queued=%zu running=%zu\n", n, queued,
                running);
    }
    while (j) {
        job *next = j->next;
        if (j->result.kind == DEFERRED_DEFERRED) { /* refused: see worker() */
            deferred_unref(j->result.u.deferred);
            j->result = deferred_error(EINVAL, "defer_to_thread: the function returned a Deferred");
        }
        /* -EALREADY when cancelled while running: the result is dropped, as documented. */
        deferred_callback(j->d, deferred_result_take(&j->result));
        job_finish(j);
        j = next;
    }
}

static char pool_gone;

static void drain_cb(reactor *r, void *data)
{
    (void)data;
    pool *p = reactor__module_data(r, REACTOR__MOD_THREADPOOL);
    if (p && p != (pool *)&pool_gone)
        drain(p);
}

/* The Deferred's canceller (reactor thread): a job no worker has taken is unlinked
 * and never runs; deferred_cancel then fails the Deferred with ECANCELED. */
static void job_cancel(deferred *d, void *arg)
{
    (void)d;
    job *j = arg;
    pool *p = j->pool;
    pthread_mutex_lock(&p->lock);
    int was_queued = j->state == JOB_QUEUED;
    if (was_queued) {
        if (j->prev)
            j->prev->next = j->next;
        else
            p->q_head = j->next;
        if (j->next)
            j->next->prev = j->prev;
        else
            p->q_tail = j->prev;
        p->queued--;
    }
    pthread_mutex_unlock(&p->lock);
    if (was_queued)
        job_finish(j); /* deferred_cancel holds its own reference meanwhile */
}

/* ---- workers --------------------------------------------------------------------- */

static void *worker(void *arg)
{
    pool *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->q_head && !p->stopping) {
            p->idle++;
            pthread_cond_wait(&p->work, &p->lock);
            p->idle--;
        }
        job *j = p->q_head;
        if (!j)
            break; /* stopping, and nothing left to do */
        p->q_head = j->next;
        if (p->q_head)
            p->q_head->prev = NULL;
        else
            p->q_tail = NULL;
        p->queued--;
        p->running++;
        j->state = JOB_RUNNING;
        pthread_mutex_unlock(&p->lock);

        /* A DEFERRED result is refused, but dropping it is the reactor thread's
         * business (drain), like everything else about Deferreds. */
        deferred_result res = j->fn(j->arg);

        pthread_mutex_lock(&p->lock);
        j->result = res;
        j->state = JOB_DONE;
        p->running--;
        j->next = NULL;
        if (p->done_tail)
            p->done_tail->next = j;
        else
            p->done_head = j;
        p->done_tail = j;
        /* The first completion of a batch wakes the reactor. While stopping, the
         * thread that stops the pool drains the list itself after joining us. */
        if (!p->wake_pending && !p->stopping) {
            p->wake_pending = 1;
            if (reactor_call_from_thread(p->r, drain_cb, NULL) < 0)
                p->wake_pending = 0; /* reactor going away: the stopper drains */
        }
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Starts one more worker (lock held). Signals are blocked in workers so that they are
 * delivered to the reactor thread, which handles them. */
static int spawn(pool *p)
{
    if (p->nthreads == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 4;
        pthread_t *v = realloc(p->threads, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        p->threads = v;
        p->cap = cap;
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&p->threads[p->nthreads], NULL, worker, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return -rc;
    p->nthreads++;
    return 0;
}

/* Stops the workers after the queued calls, joins them, fires what they finished. */
static void pool_stop(pool *p)
{
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    p->shut = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    for (size_t i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    p->nthreads = 0;
    drain(p);
}

static void shutdown_trigger(reactor *r, void *data)
{
    (void)r;
    pool_stop(data);
}

/* pool_gone (above) is left as the module data once the pool is freed, so a call made
 * later in reactor_free() (say from a coroutine being closed) fails instead of using
 * freed memory or starting threads nobody would join. */

static void pool_free(void *data)
{
    pool *p = data;
    if (!p->shut || p->nthreads || p->done_head)
        pool_stop(p);
    /* Jobs queued with no thread to run them (thread creation failed): never ran. */
    while (p->q_head) {
        job *j = p->q_head;
        p->q_head = j->next;
        deferred_errback_new(j->d, ESHUTDOWN, "reactor freed before the call ran");
        job_finish(j);
    }
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->lock);
    reactor__set_module_data(p->r, REACTOR__MOD_THREADPOOL, &pool_gone, NULL);
    free(p->threads);
    free(p);
}

static pool *pool_get(reactor *r)
{
    pool *p = reactor__module_data(r, REACTOR__MOD_THREADPOOL);
    if (p == (pool *)&pool_gone) {
        errno = ESHUTDOWN;
        return NULL;
    }
    if (p)
        return p;
    p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->r = r;
    p->max = POOL_DEFAULT_SIZE;
    if (pthread_mutex_init(&p->lock, NULL) != 0) {
        free(p);
        return NULL;
    }
    if (pthread_cond_init(&p->work, NULL) != 0) {
        pthread_mutex_destroy(&p->lock);
        free(p);
        return NULL;
    }
    if (reactor__set_module_data(r, REACTOR__MOD_THREADPOOL, p, pool_free) < 0) {
        pthread_cond_destroy(&p->work);
        pthread_mutex_destroy(&p->lock);
        free(p);
        return NULL;
    }
    /* Without the trigger (out of memory) the pool still stops, in reactor_free(). */
    reactor_add_trigger(r, REACTOR_DURING_SHUTDOWN, shutdown_trigger, p);
    return p;
}

/* ---- the API ---------------------------------------------------------------------- */

deferred *defer_to_thread_full(reactor *r, defer_to_thread_fn fn, void *arg,
                               deferred_free_fn arg_free)
{
    if (!r || !fn) {
        if (arg_free)
            arg_free(arg);
        errno = EINVAL;
        return NULL;
    }
    pool *p = pool_get(r);
    if (!p && errno == ESHUTDOWN) {
        if (arg_free)
            arg_free(arg);
        return deferred_fail(deferred_failure_new(ESHUTDOWN, "defer_to_thread: reactor freed"));
    }
    job *j = p ? calloc(1, sizeof *j) : NULL;
    deferred *d = j ? deferred_new_cancellable(job_cancel, j) : NULL;
    if (!d) {
        free(j);
        if (arg_free)
            arg_free(arg);
        errno = ENOMEM;
        return NULL;
    }
    j->pool = p;
    j->fn = fn;
    j->arg = arg;
    j->arg_free = arg_free;
    j->d = d; /* the pool's reference; the caller gets another one below */

    pthread_mutex_lock(&p->lock);
    if (p->shut) {
        pthread_mutex_unlock(&p->lock);
        deferred *ret = deferred_ref(d);
        deferred_errback_new(d, ESHUTDOWN, "defer_to_thread after the reactor shut down");
        job_finish(j);
        return ret;
    }
    j->state = JOB_QUEUED;
    j->prev = p->q_tail;
    if (p->q_tail)
        p->q_tail->next = j;
    else
        p->q_head = j;
    p->q_tail = j;
    p->queued++;
    int spawn_rc = 0;
    if (p->idle < p->queued && p->nthreads < p->max)
        spawn_rc = spawn(p);
    if (spawn_rc < 0 && p->nthreads == 0) {
        /* Nobody could ever run it: fail now rather than hang. */
        p->q_head = p->q_tail = NULL;
        p->queued = 0;
        pthread_mutex_unlock(&p->lock);
        deferred *ret = deferred_ref(d);
        deferred_errback_new(d, EAGAIN, "defer_to_thread: cannot start a worker thread");
        job_finish(j);
        return ret;
    }
    if (p->idle > 0) /* busy workers take the job when they finish theirs */
        pthread_cond_signal(&p->work);
    /* The queue depth is what tells a starved pool (every thread stuck on slow calls). */
    size_t queued = p->queued, running = p->running, threads = p->nthreads;
    pthread_mutex_unlock(&p->lock);
    FILE *trace = reactor_trace_file(r);
    if (trace)
        fprintf(trace, "thread_pool op=queue queued=%zu running=%zu threads=%zu max=%u\n",
                queued, running, threads, p->max);
    return deferred_ref(d);
}

deferred *defer_to_thread(reactor *r, defer_to_thread_fn fn, void *arg)
{
    return defer_to_thread_full(r, fn, arg, NULL);
}

int defer_to_thread_pool_size(reactor *r, unsigned n)
{
    if (!r || n == 0 || n > POOL_MAX_SIZE)
        return -EINVAL;
    pool *p = pool_get(r);
    if (!p)
        return errno == ESHUTDOWN ? -ESHUTDOWN : -ENOMEM;
    pthread_mutex_lock(&p->lock);
    p->max = n;
    pthread_mutex_unlock(&p->lock);
    return 0;
}

defer_to_thread_stats defer_to_thread_pool_stats(reactor *r)
{
    defer_to_thread_stats s = {0, 0, 0, POOL_DEFAULT_SIZE};
    pool *p = r ? reactor__module_data(r, REACTOR__MOD_THREADPOOL) : NULL;
    if (!p || p == (pool *)&pool_gone)
        return s;
    pthread_mutex_lock(&p->lock);
    s.threads = p->nthreads;
    s.queued = p->queued;
    s.running = p->running;
    s.max_threads = p->max;
    pthread_mutex_unlock(&p->lock);
    return s;
}
