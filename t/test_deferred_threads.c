/* defer_to_thread (deferred/thread_pool.h): results and failures delivered on the
 * reactor thread, lazy start and pool size, cancellation before and during the call,
 * shutdown joining the workers. Tagged "threads": also run under `make tsan`. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <twistc/coro.h>
#include <twistc/deferred.h>
#include <twistc/reactor.h>
#include <twistc/thread_pool.h>

#ifndef ESHUTDOWN
#define ESHUTDOWN ECANCELED
#endif

/* Iterates r until d has fired, bounded (400 polls of at most 50 ms: a worker that never
 * answers fails the test instead of hanging it). The poll wakes as soon as a worker
 * finishes (reactor_call_from_thread), so nothing here sleeps on a guess. */
static int iterate_until_called(reactor *r, deferred *d)
{
    for (int i = 0; i < 400 && !deferred_called(d); i++)
        reactor_iterate(r, 0.05);
    return deferred_called(d);
}

static deferred_result take_and_unref(deferred *d)
{
    deferred_result r = deferred_none();
    ck_assert_int_eq(deferred_take_result(d, &r), 0);
    deferred_unref(d);
    return r;
}

/* ---- a gate the test opens, so a job can be held "running" -------------------------- */

struct gate {
    pthread_mutex_t m;
    pthread_cond_t c;
    int open;
    int entered;
    int ran[16]; /* which job ids ran */
};

static void gate_init(struct gate *g)
{
    memset(g, 0, sizeof *g);
    pthread_mutex_init(&g->m, NULL);
    pthread_cond_init(&g->c, NULL);
}

static void gate_destroy(struct gate *g)
{
    pthread_cond_destroy(&g->c);
    pthread_mutex_destroy(&g->m);
}

static void gate_open(struct gate *g)
{
    pthread_mutex_lock(&g->m);
    g->open = 1;
    pthread_cond_broadcast(&g->c);
    pthread_mutex_unlock(&g->m);
}

/* Waits (bounded: 20 s) until n jobs are inside the gate. */
static int gate_wait_entered(struct gate *g, int n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    pthread_mutex_lock(&g->m);
    int rc = 0;
    while (g->entered < n && rc == 0)
        rc = pthread_cond_timedwait(&g->c, &g->m, &until);
    int ok = g->entered >= n;
    pthread_mutex_unlock(&g->m);
    return ok;
}

struct gated_job {
    struct gate *g;
    int id;
};

static deferred_result gated(void *arg)
{
    struct gated_job *j = arg;
    pthread_mutex_lock(&j->g->m);
    j->g->entered++;
    j->g->ran[j->id] = 1;
    pthread_cond_broadcast(&j->g->c);
    while (!j->g->open)
        pthread_cond_wait(&j->g->c, &j->g->m);
    pthread_mutex_unlock(&j->g->m);
    return deferred_int(j->id);
}

/* ---- results (test_deferredResult, test_deferredFailure) --------------------------- */

static deferred_result on_worker(void *arg)
{
    pthread_t main_thread = *(pthread_t *)arg;
    return deferred_int(pthread_equal(main_thread, pthread_self()) ? -1 : 7);
}

START_TEST(test_deferredResult)
{
    reactor *r = reactor_new();
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(defer_to_thread_pool_stats(r).threads, 0); /* lazy */
    pthread_t self = pthread_self();
    deferred *d = defer_to_thread(r, on_worker, &self);
    ck_assert_ptr_nonnull(d);
    ck_assert_uint_eq(defer_to_thread_pool_stats(r).threads, 1);
    ck_assert(iterate_until_called(r, d));
    deferred_result res = take_and_unref(d);
    ck_assert_int_eq(res.kind, DEFERRED_INT);
    ck_assert_int_eq(res.u.i, 7); /* ran on another thread */
    ck_assert_int_eq(reactor_free(r), 0);
}
END_TEST

static deferred_result failing(void *arg)
{
    return deferred_error(EIO, "disk on fire (%d)", *(int *)arg);
}

START_TEST(test_deferredFailure)
{
    reactor *r = reactor_new();
    int n = 3;
    deferred *d = defer_to_thread(r, failing, &n);
    ck_assert(iterate_until_called(r, d));
    deferred_result res = take_and_unref(d);
    ck_assert_int_eq(deferred_result_code(&res), EIO);
    ck_assert_str_eq(res.u.failure->message, "disk on fire (3)");
    deferred_result_clear(&res);
    ck_assert_int_eq(reactor_free(r), 0);
}
END_TEST

static deferred_result returns_string(void *arg)
{
    return deferred_str_dup("from a thread");
}

START_TEST(test_resultKinds)
{
    reactor *r = reactor_new();
    deferred *d1 = defer_to_thread(r, returns_string, NULL);
    ck_assert(iterate_until_called(r, d1));
    deferred_result a = take_and_unref(d1);
    ck_assert_str_eq(a.u.s, "from a thread");
    deferred_result_clear(&a);
    ck_assert_int_eq(reactor_free(r), 0);
}
END_TEST

START_TEST(test_badArguments)
{
    reactor *r = reactor_new();
    ck_assert_ptr_null(defer_to_thread(NULL, on_worker, NULL));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_ptr_null(defer_to_thread(r, NULL, NULL));
    ck_assert_int_eq(defer_to_thread_pool_size(r, 0), -EINVAL);
    ck_assert_int_eq(defer_to_thread_pool_size(r, 100000), -EINVAL);
    ck_assert_int_eq(defer_to_thread_pool_size(r, 3), 0);
    ck_assert_uint_eq(defer_to_thread_pool_stats(r).max_threads, 3);
    ck_assert_uint_eq(defer_to_thread_pool_stats(r).threads, 0);
    ck_assert_int_eq(reactor_free(r), 0);
}
END_TEST

/* ---- pool size and order ------------------------------------------------------------ */

START_TEST(test_poolSizeLimitsThreads)
{
    reactor *r = reactor_new();
    ck_assert_int_eq(defer_to_thread_pool_size(r, 2), 0);
    struct gate g;
    gate_init(&g);
    struct gated_job jobs[8];
    deferred *ds[8];
    for (int i = 0; i < 8; i++) {
        jobs[i] = (struct gated_job){&g, i};
        ds[i] = defer_to_thread(r, gated, &jobs[i]);
        ck_assert_ptr_nonnull(ds[i]);
    }
    ck_assert(gate_wait_entered(&g, 2));
    defer_to_thread_stats st = defer_to_thread_pool_stats(r);
    ck_assert_uint_eq(st.threads, 2);
    ck_assert_uint_eq(st.running, 2);
    ck_assert_uint_eq(st.queued, 6);
    gate_open(&g);
    for (int i = 0; i < 8; i++) {
        ck_assert(iterate_until_called(r, ds[i]));
        deferred_result res = take_and_unref(ds[i]);
        ck_assert_int_eq(res.u.i, i);
    }
    ck_assert_uint_eq(defer_to_thread_pool_stats(r).threads, 2);
    ck_assert_int_eq(reactor_free(r), 0);
    gate_destroy(&g);
}
END_TEST

/* Deferreds fire in the order the calls finish; with one thread, in call order. */
struct order {
    int seen[50];
    int n;
};

static deferred_result record_order(deferred_result res, void *arg)
{
    struct order *o = arg;
    o->seen[o->n++] = (int)res.u.i;
    return res;
}

static deferred_result identity_job(void *arg)
{
    return deferred_int((int)(intptr_t)arg);
}

START_TEST(test_oneThreadRunsInOrder)
{
    reactor *r = reactor_new();
    defer_to_thread_pool_size(r, 1);
    struct order o = {{0}, 0};
    deferred *ds[50];
    for (int i = 0; i < 50; i++) {
        ds[i] = defer_to_thread(r, identity_job, (void *)(intptr_t)i);
        deferred_add_callback(ds[i], record_order, &o);
    }
    ck_assert(iterate_until_called(r, ds[49]));
    ck_assert_int_eq(o.n, 50);
    for (int i = 0; i < 50; i++) {
        ck_assert_int_eq(o.seen[i], i);
        deferred_unref(ds[i]);
    }
    ck_assert_int_eq(reactor_free(r), 0);
}
END_TEST

/* ---- cancellation ------------------------------------------------------------------- */

static int arg_frees;
static void count_free(void *p)
{
    (void)p;
    arg_frees++;
}

START_TEST(test_cancelBeforeStartNeverRuns)
{
    reactor *r = reactor_new();
    defer_to_thread_pool_size(r, 1);
    struct gate g;
    gate_init(&g);
    struct gated_job first = {&g, 0}, second = {&g, 1};
    arg_frees = 0;
    deferred *d1 = defer_to_thread_full(r, gated, &first, count_free);
    deferred *d2 = defer_to_thread_full(r, gated, &second, count_free);
    ck_assert(gate_wait_entered(&g, 1)); /* the only thread is busy with `first` */
    ck_assert_uint_eq(defer_to_thread_pool_stats(r).queued, 1);
    deferred_cancel(d2);
    ck_assert_uint_eq(defer_to_thread_pool_stats(r).queued, 0);
    ck_assert_int_eq(arg_frees, 1); /* second's arg released at once */
    deferred_result res2 = take_and_unref(d2);
    ck_assert_int_eq(deferred_result_code(&res2), ECANCELED);
    deferred_result_clear(&res2);
    gate_open(&g);
    ck_assert(iterate_until_called(r, d1));
    deferred_result res1 = take_and_unref(d1);
    ck_assert_int_eq(res1.u.i, 0);
    ck_assert_int_eq(reactor_free(r), 0);
    ck_assert_int_eq(g.ran[1], 0); /* never ran: workers are joined by now */
    ck_assert_int_eq(arg_frees, 2);
    gate_destroy(&g);
}
END_TEST

static int result_frees;
static void count_result_free(void *p)
{
    free(p);
    result_frees++;
}

static deferred_result gated_ptr(void *arg)
{
    gated(arg);
    return deferred_ptr(malloc(16), count_result_free);
}

START_TEST(test_cancelWhileRunning)
{
    reactor *r = reactor_new();
    struct gate g;
    gate_init(&g);
    struct gated_job job = {&g, 0};
    result_frees = 0;
    arg_frees = 0;
    deferred *d = defer_to_thread_full(r, gated_ptr, &job, count_free);
    ck_assert(gate_wait_entered(&g, 1));
    deferred_cancel(d); /* cannot stop the thread: the Deferred fails now */
    const deferred_result *now = deferred_peek_result(d);
    ck_assert_ptr_nonnull(now);
    ck_assert_int_eq(deferred_result_code(now), ECANCELED);
    gate_open(&g);
    /* Its late result is dropped (freed) on the reactor thread. */
    for (int i = 0; i < 400 && result_frees == 0; i++)
        reactor_iterate(r, 0.05);
    ck_assert_int_eq(result_frees, 1);
    ck_assert_int_eq(arg_frees, 1);
    deferred_result res = take_and_unref(d);
    deferred_result_clear(&res);
    ck_assert_int_eq(reactor_free(r), 0);
    gate_destroy(&g);
}
END_TEST

/* ---- shutdown ------------------------------------------------------------------------- */

static deferred_result slow_job(void *arg)
{
    /* Stands for a blocking call (an SMTP send): the shutdown must wait for it. */
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    return deferred_int(99);
}

struct shut {
    deferred *d;
    int fired_during_run;
};

static deferred_result note_fired(deferred_result res, void *arg)
{
    ((struct shut *)arg)->fired_during_run = 1;
    return res;
}

static void start_and_stop(reactor *r, void *data)
{
    struct shut *s = data;
    s->d = defer_to_thread(r, slow_job, NULL);
    deferred_add_callback(s->d, note_fired, s);
    reactor_stop(r);
}

START_TEST(test_shutdownWaitsAndJoins)
{
    reactor *r = reactor_new();
    struct shut s = {0};
    reactor_call_when_running(r, start_and_stop, &s);
    ck_assert_int_eq(reactor_run(r), 0);
    /* run() returned after the "during shutdown" phase joined the worker and fired the
     * Deferred with the call's result. */
    ck_assert(s.fired_during_run);
    ck_assert_uint_eq(defer_to_thread_pool_stats(r).threads, 0);
    deferred_result res = take_and_unref(s.d);
    ck_assert_int_eq(res.u.i, 99);
    /* After shutdown: refused with a failed Deferred. */
    deferred *late = defer_to_thread(r, slow_job, NULL);
    ck_assert_ptr_nonnull(late);
    res = take_and_unref(late);
    ck_assert_int_eq(deferred_result_code(&res), ESHUTDOWN);
    deferred_result_clear(&res);
    ck_assert_int_eq(reactor_free(r), 0);
}
END_TEST

START_TEST(test_freeWithoutRunJoins)
{
    reactor *r = reactor_new();
    deferred *ds[6];
    for (int i = 0; i < 6; i++)
        ds[i] = defer_to_thread(r, slow_job, NULL);
    ck_assert_int_eq(reactor_free(r), 0); /* joins the workers, fires every Deferred */
    for (int i = 0; i < 6; i++) {
        deferred_result res = take_and_unref(ds[i]);
        ck_assert_int_eq(res.u.i, 99);
    }
}
END_TEST

/* ---- with a coroutine: sequential code around a blocking call ------------------------ */

struct coro_ctx {
    reactor *r;
    int steps;
};

static deferred_result coro_body(void *arg)
{
    struct coro_ctx *c = arg;
    c->steps++;
    deferred_result a = coro_await_take(defer_to_thread(c->r, identity_job, (void *)(intptr_t)20));
    c->steps++;
    deferred_result b = coro_await_take(defer_to_thread(c->r, identity_job, (void *)(intptr_t)22));
    c->steps++;
    return deferred_int(a.u.i + b.u.i);
}

START_TEST(test_coroutineAwaitsThread)
{
    reactor *r = reactor_new();
    struct coro_ctx c = {r, 0};
    deferred *d = coro_start(r, coro_body, &c, 0);
    ck_assert_int_eq(c.steps, 1);
    ck_assert(iterate_until_called(r, d));
    ck_assert_int_eq(c.steps, 3);
    deferred_result res = take_and_unref(d);
    ck_assert_int_eq(res.u.i, 42);
    ck_assert_int_eq(reactor_free(r), 0);
}
END_TEST

/* The teaching trace shows the queue depth (a starved pool is visible). */
START_TEST(test_traceShowsQueue)
{
    reactor *r = reactor_new();
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    reactor_set_trace(r, f);
    deferred *d = defer_to_thread(r, identity_job, (void *)(intptr_t)1);
    ck_assert(iterate_until_called(r, d));
    deferred_unref(d);
    reactor_set_trace(r, NULL);
    rewind(f);
    char line[256];
    int queue = 0, fire = 0;
    while (fgets(line, sizeof line, f)) {
        queue += strstr(line, "thread_pool op=queue queued=1 ") != NULL;
        fire += strstr(line, "thread_pool op=fire done=1 ") != NULL;
    }
    fclose(f);
    ck_assert_int_eq(queue, 1);
    ck_assert_int_eq(fire, 1);
    ck_assert_int_eq(reactor_free(r), 0);
}
END_TEST

extern Suite *suite_deferred_threads(void);
Suite *suite_deferred_threads(void)
{
    Suite *s = suite_create("deferred_threads");
    TCase *tc = tcase_create("defer_to_thread");
    tcase_set_tags(tc, "threads");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_deferredResult);
    tcase_add_test(tc, test_deferredFailure);
    tcase_add_test(tc, test_resultKinds);
    tcase_add_test(tc, test_badArguments);
    tcase_add_test(tc, test_poolSizeLimitsThreads);
    tcase_add_test(tc, test_oneThreadRunsInOrder);
    tcase_add_test(tc, test_cancelBeforeStartNeverRuns);
    tcase_add_test(tc, test_cancelWhileRunning);
    tcase_add_test(tc, test_shutdownWaitsAndJoins);
    tcase_add_test(tc, test_freeWithoutRunJoins);
    tcase_add_test(tc, test_coroutineAwaitsThread);
    tcase_add_test(tc, test_traceShowsQueue);
    suite_add_tcase(s, tc);
    return s;
}
