/* DeferredQueue, DeferredLock, DeferredSemaphore. The tests named after Twisted's
 * OtherPrimitivesTests (twisted/test/test_defer.py) follow their steps and assertions;
 * the rest cover what C adds (release on a failure, misuse, free with waiters). */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <twistc/deferred_lock.h>
#include <twistc/deferred_queue.h>

static int counter;

static deferred_result incr(deferred_result r, void *arg)
{
    (void)arg;
    counter++;
    return r;
}

/* Appends an INT result to an int array (arg: struct ints). */
struct ints {
    int v[16];
    int n;
};
static deferred_result append(deferred_result r, void *arg)
{
    struct ints *g = arg;
    ck_assert_int_eq(r.kind, DEFERRED_INT);
    g->v[g->n++] = (int)r.u.i;
    return deferred_none();
}

/* What a Deferred ended with. */
struct end {
    int fired, code;
    deferred_kind kind;
    int64_t i;
    void *p;
};
static deferred_result record(deferred_result r, void *arg)
{
    struct end *e = arg;
    e->fired++;
    e->kind = r.kind;
    if (r.kind == DEFERRED_FAILURE)
        e->code = r.u.failure->code;
    else if (r.kind == DEFERRED_INT)
        e->i = r.u.i;
    else if (r.kind == DEFERRED_PTR)
        e->p = r.u.p;
    deferred_result_clear(&r);
    return deferred_none();
}
static void watch(deferred *d, struct end *e)
{
    memset(e, 0, sizeof *e);
    ck_assert_ptr_nonnull(d);
    deferred_add_both(d, record, e);
}

/* run()'s function: records its argument, returns a prepared result. */
struct helper {
    int calls;
    deferred_result ret;
};
static deferred_result helper_fn(void *arg)
{
    struct helper *h = arg;
    h->calls++;
    return deferred_result_take(&h->ret);
}

/* testLock */
START_TEST(test_lock)
{
    counter = 0;
    deferred_lock *lock = deferred_lock_new();
    ck_assert_ptr_nonnull(lock);
    deferred *d1 = deferred_add_callback(deferred_lock_acquire(lock), incr, NULL);
    ck_assert(deferred_lock_locked(lock));
    ck_assert_int_eq(counter, 1);
    deferred *d2 = deferred_add_callback(deferred_lock_acquire(lock), incr, NULL);
    ck_assert(deferred_lock_locked(lock));
    ck_assert_int_eq(counter, 1);
    ck_assert_int_eq(deferred_lock_release(lock), 0);
    ck_assert(deferred_lock_locked(lock));
    ck_assert_int_eq(counter, 2);
    ck_assert_int_eq(deferred_lock_release(lock), 0);
    ck_assert(!deferred_lock_locked(lock));
    ck_assert_int_eq(counter, 2);
    deferred_unref(d1);
    deferred_unref(d2);
    /* lock.run with no function: Twisted's TypeError */
    ck_assert_ptr_null(deferred_lock_run(lock, NULL, NULL));
    ck_assert_int_eq(errno, EINVAL);

    /* run: the function runs at once (lock free), the lock stays held until the
     * Deferred it returned fires, and the result goes through */
    deferred *control = deferred_new();
    struct helper h = {0, deferred_continue_with(deferred_ref(control))};
    struct end res;
    deferred *rd = deferred_lock_run(lock, helper_fn, &h);
    watch(rd, &res);
    ck_assert(deferred_lock_locked(lock));
    ck_assert_int_eq(h.calls, 1);
    deferred *d3 = deferred_add_callback(deferred_lock_acquire(lock), incr, NULL);
    ck_assert(deferred_lock_locked(lock));
    ck_assert_int_eq(counter, 2);
    deferred_callback(control, deferred_int(42));
    ck_assert_int_eq(res.fired, 1);
    ck_assert_int_eq(res.kind, DEFERRED_INT);
    ck_assert_int_eq(res.i, 42);
    ck_assert(deferred_lock_locked(lock)); /* handed to d3's acquire */
    ck_assert_int_eq(counter, 3);

    /* a waiting acquire cancelled: CancelledError */
    struct end c;
    deferred *d4 = deferred_lock_acquire(lock);
    watch(d4, &c);
    deferred_cancel(d4);
    ck_assert_int_eq(c.fired, 1);
    ck_assert_int_eq(c.code, ECANCELED);
    ck_assert_int_eq(deferred_lock_waiting(lock), 0);
    ck_assert_int_eq(deferred_lock_release(lock), 0);
    ck_assert(!deferred_lock_locked(lock));
    deferred_unref(d3);
    deferred_unref(d4);
    deferred_unref(rd);
    deferred_unref(control);
    deferred_lock_free(lock);
}
END_TEST

START_TEST(test_cancelLockAfterAcquired)
{
    deferred_lock *lock = deferred_lock_new();
    struct end e;
    deferred *d = deferred_lock_acquire(lock);
    watch(d, &e);
    deferred_cancel(d);
    ck_assert_int_eq(e.fired, 1);
    ck_assert_int_eq(e.kind, DEFERRED_PTR); /* no errback */
    ck_assert_ptr_eq(e.p, lock);
    ck_assert(deferred_lock_locked(lock));
    deferred_unref(d);
    deferred_lock_free(lock);
}
END_TEST

START_TEST(test_cancelLockBeforeAcquired)
{
    deferred_lock *lock = deferred_lock_new();
    deferred *first = deferred_lock_acquire(lock);
    struct end e;
    deferred *d = deferred_lock_acquire(lock);
    watch(d, &e);
    deferred_cancel(d);
    ck_assert_int_eq(e.fired, 1); /* immediately */
    ck_assert_int_eq(e.code, ECANCELED);
    /* the cancelled waiter is gone: releasing unlocks */
    ck_assert_int_eq(deferred_lock_release(lock), 0);
    ck_assert(!deferred_lock_locked(lock));
    deferred_unref(first);
    deferred_unref(d);
    deferred_lock_free(lock);
}
END_TEST

/* testSemaphore */
START_TEST(test_semaphore)
{
    enum { N = 13 };
    counter = 0;
    deferred_semaphore *sem = deferred_semaphore_new(N);
    ck_assert_ptr_nonnull(sem);
    deferred *control = deferred_new();
    struct helper h = {0, deferred_continue_with(deferred_ref(control))};
    deferred *rd = deferred_semaphore_run(sem, helper_fn, &h);
    struct end res;
    watch(rd, &res);
    deferred_add_callback(rd, incr, NULL);
    ck_assert_int_eq(res.fired, 0);
    ck_assert_int_eq(h.calls, 1);
    deferred_callback(control, deferred_none());
    ck_assert_int_eq(res.fired, 1);
    ck_assert_int_eq(res.kind, DEFERRED_NONE);
    ck_assert_int_eq(counter, 1);
    ck_assert_uint_eq(deferred_semaphore_tokens(sem), N); /* released */
    deferred_unref(rd);
    deferred_unref(control);

    counter = 0;
    deferred *held[N];
    for (int i = 1; i <= N; i++) {
        held[i - 1] = deferred_add_callback(deferred_semaphore_acquire(sem), incr, NULL);
        ck_assert_int_eq(counter, i);
    }
    struct end e;
    deferred *d = deferred_semaphore_acquire(sem);
    watch(d, &e);
    deferred_cancel(d);
    ck_assert_int_eq(e.fired, 1);
    ck_assert_int_eq(e.code, ECANCELED);
    deferred *last = deferred_add_callback(deferred_semaphore_acquire(sem), incr, NULL);
    ck_assert_int_eq(counter, N);
    ck_assert_int_eq(deferred_semaphore_release(sem), 0);
    ck_assert_int_eq(counter, N + 1);
    for (int i = 1; i <= N; i++) {
        ck_assert_int_eq(deferred_semaphore_release(sem), 0);
        ck_assert_int_eq(counter, N + 1);
    }
    ck_assert_uint_eq(deferred_semaphore_tokens(sem), N);
    for (int i = 0; i < N; i++)
        deferred_unref(held[i]);
    deferred_unref(last);
    deferred_unref(d);
    deferred_semaphore_free(sem);
}
END_TEST

START_TEST(test_semaphoreInvalidTokens)
{
    errno = 0;
    ck_assert_ptr_null(deferred_semaphore_new(0));
    ck_assert_int_eq(errno, EINVAL);
}
END_TEST

START_TEST(test_cancelSemaphoreAfterAcquired)
{
    deferred_semaphore *sem = deferred_semaphore_new(1);
    struct end e;
    deferred *d = deferred_semaphore_acquire(sem);
    watch(d, &e);
    deferred_cancel(d);
    ck_assert_int_eq(e.kind, DEFERRED_PTR);
    ck_assert_ptr_eq(e.p, sem);
    ck_assert_uint_eq(deferred_semaphore_tokens(sem), 0);
    deferred_unref(d);
    deferred_semaphore_free(sem);
}
END_TEST

START_TEST(test_cancelSemaphoreBeforeAcquired)
{
    deferred_semaphore *sem = deferred_semaphore_new(1);
    deferred *first = deferred_semaphore_acquire(sem);
    struct end e;
    deferred *d = deferred_semaphore_acquire(sem);
    watch(d, &e);
    deferred_cancel(d);
    ck_assert_int_eq(e.fired, 1);
    ck_assert_int_eq(e.code, ECANCELED);
    ck_assert_uint_eq(deferred_semaphore_waiting(sem), 0);
    deferred_unref(first);
    deferred_unref(d);
    deferred_semaphore_free(sem);
}
END_TEST

/* testQueue */
START_TEST(test_queue)
{
    enum { N = 2, M = 2 };
    deferred_queue *queue = deferred_queue_new(N, M);
    struct ints gotten = {{0}, 0};
    deferred *ds[8];
    int nd = 0;
    for (int i = 0; i < M; i++)
        ds[nd++] = deferred_add_callback(deferred_queue_get(queue), append, &gotten);
    errno = 0;
    ck_assert_ptr_null(deferred_queue_get(queue)); /* QueueUnderflow */
    ck_assert_int_eq(errno, EAGAIN);
    for (int i = 0; i < M; i++) {
        ck_assert_int_eq(deferred_queue_put(queue, deferred_int(i)), 0);
        ck_assert_int_eq(gotten.n, i + 1);
        ck_assert_int_eq(gotten.v[i], i);
    }
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(deferred_queue_put(queue, deferred_int(N + i)), 0);
        ck_assert_int_eq(gotten.n, M);
    }
    ck_assert_int_eq(deferred_queue_put(queue, deferred_none()), -ENOBUFS); /* QueueOverflow */
    gotten.n = 0;
    for (int i = 0; i < N; i++) {
        ds[nd++] = deferred_add_callback(deferred_queue_get(queue), append, &gotten);
        ck_assert_int_eq(gotten.n, i + 1);
        ck_assert_int_eq(gotten.v[i], N + i);
    }
    deferred_queue_free(queue);

    queue = deferred_queue_new(DEFERRED_QUEUE_UNLIMITED, DEFERRED_QUEUE_UNLIMITED);
    gotten.n = 0;
    for (int i = 0; i < N; i++)
        ds[nd++] = deferred_add_callback(deferred_queue_get(queue), append, &gotten);
    for (int i = 0; i < N; i++)
        deferred_queue_put(queue, deferred_int(i));
    ck_assert_int_eq(gotten.n, N);
    ck_assert_int_eq(gotten.v[0], 0);
    ck_assert_int_eq(gotten.v[1], 1);
    deferred_queue_free(queue);

    queue = deferred_queue_new(0, DEFERRED_QUEUE_UNLIMITED);
    ck_assert_int_eq(deferred_queue_put(queue, deferred_none()), -ENOBUFS);
    deferred_queue_free(queue);
    queue = deferred_queue_new(DEFERRED_QUEUE_UNLIMITED, 0);
    ck_assert_ptr_null(deferred_queue_get(queue));
    ck_assert_int_eq(errno, EAGAIN);
    deferred_queue_free(queue);
    for (int i = 0; i < nd; i++)
        deferred_unref(ds[i]);
}
END_TEST

START_TEST(test_cancelQueueAfterSynchronousGet)
{
    deferred_queue *queue = deferred_queue_new(DEFERRED_QUEUE_UNLIMITED, DEFERRED_QUEUE_UNLIMITED);
    struct end e;
    deferred *d = deferred_queue_get(queue);
    watch(d, &e);
    deferred_queue_put(queue, deferred_none());
    deferred_cancel(d);
    ck_assert_int_eq(e.fired, 1);
    ck_assert_int_eq(e.kind, DEFERRED_NONE); /* no errback */
    deferred_unref(d);
    deferred_queue_free(queue);
}
END_TEST

static deferred_queue *cq;
static int cq_done;
static deferred_result cq_got(deferred_result r, void *arg)
{
    (void)arg;
    ck_assert_int_eq(r.kind, DEFERRED_INT);
    ck_assert_int_eq(r.u.i, 5);
    cq_done++;
    return r;
}
/* The errback after the cancel: put, then get, which fires with the item at once. */
static deferred_result cq_after(deferred_result r, void *arg)
{
    (void)arg;
    ck_assert_int_eq(deferred_result_code(&r), ECANCELED);
    deferred_result_clear(&r);
    ck_assert_int_eq(deferred_queue_put(cq, deferred_int(5)), 0);
    return deferred_continue_with(deferred_add_callback(deferred_queue_get(cq), cq_got, NULL));
}

START_TEST(test_cancelQueueAfterGet)
{
    cq = deferred_queue_new(DEFERRED_QUEUE_UNLIMITED, DEFERRED_QUEUE_UNLIMITED);
    cq_done = 0;
    deferred *d = deferred_queue_get(cq);
    deferred_cancel(d);
    ck_assert_int_eq(deferred_result_code(deferred_peek_result(d)), ECANCELED);
    deferred_add_errback(d, cq_after, NULL);
    ck_assert_int_eq(cq_done, 1); /* the cancelled get did not take the item */
    ck_assert_uint_eq(deferred_queue_pending(cq), 0);
    deferred_unref(d);
    deferred_queue_free(cq);
}
END_TEST

/* ---- What C adds ------------------------------------------------------------------ */

static deferred_result fail_now(void *arg)
{
    (void)arg;
    return deferred_error(EIO, "the job failed");
}

/* run() releases on a failure, synchronous or later, and the failure goes through. */
START_TEST(test_run_releases_on_failure)
{
    deferred_lock *lock = deferred_lock_new();
    struct end e;
    deferred *d = deferred_lock_run(lock, fail_now, NULL);
    watch(d, &e);
    ck_assert_int_eq(e.code, EIO);
    ck_assert(!deferred_lock_locked(lock));
    deferred_unref(d);

    deferred *control = deferred_new();
    struct helper h = {0, deferred_continue_with(deferred_ref(control))};
    d = deferred_lock_run(lock, helper_fn, &h);
    watch(d, &e);
    ck_assert(deferred_lock_locked(lock));
    deferred_errback_new(control, EPIPE, "later");
    ck_assert_int_eq(e.code, EPIPE);
    ck_assert(!deferred_lock_locked(lock));
    deferred_unref(d);
    deferred_unref(control);

    /* a run waiting for the lock, cancelled: the function never runs, nothing released */
    deferred *held = deferred_lock_acquire(lock);
    struct helper h2 = {0, deferred_int(1)};
    d = deferred_lock_run(lock, helper_fn, &h2);
    watch(d, &e);
    deferred_cancel(d);
    ck_assert_int_eq(e.code, ECANCELED);
    ck_assert_int_eq(h2.calls, 0);
    ck_assert(deferred_lock_locked(lock));
    deferred_lock_release(lock);
    deferred_unref(d);
    deferred_unref(held);
    deferred_lock_free(lock);
}
END_TEST

START_TEST(test_misuse_and_free)
{
    deferred_lock *lock = deferred_lock_new();
    ck_assert_int_eq(deferred_lock_release(lock), -EINVAL); /* unlocked */
    deferred *held = deferred_lock_acquire(lock);
    struct end e;
    deferred *w = deferred_lock_acquire(lock);
    watch(w, &e);
    deferred_lock_free(lock); /* the waiter fails */
    ck_assert_int_eq(e.code, ECANCELED);
    deferred_unref(w);
    deferred_unref(held);

    deferred_semaphore *sem = deferred_semaphore_new(2);
    ck_assert_int_eq(deferred_semaphore_release(sem), -EINVAL);
    ck_assert_uint_eq(deferred_semaphore_limit(sem), 2);
    deferred_semaphore_free(sem);

    /* a queue freed with items (owned strings: no leak) and with a waiter */
    deferred_queue *q = deferred_queue_new(DEFERRED_QUEUE_UNLIMITED, DEFERRED_QUEUE_UNLIMITED);
    ck_assert_int_eq(deferred_queue_put(q, deferred_str_dup("kept")), 0);
    ck_assert_uint_eq(deferred_queue_pending(q), 1);
    deferred_queue_free(q);
    q = deferred_queue_new(1, 1);
    w = deferred_queue_get(q);
    watch(w, &e);
    ck_assert_uint_eq(deferred_queue_waiting(q), 1);
    deferred_queue_free(q);
    ck_assert_int_eq(e.code, ECANCELED);
    deferred_unref(w);
    /* overflow leaves the item with the caller */
    q = deferred_queue_new(0, 0);
    deferred_result r = deferred_str_dup("mine");
    ck_assert_int_eq(deferred_queue_put(q, r), -ENOBUFS);
    ck_assert_str_eq(r.u.s, "mine");
    deferred_result_clear(&r);
    ck_assert_int_eq(deferred_queue_put(q, deferred_continue_with(NULL)), -EINVAL);
    deferred_queue_free(q);
}
END_TEST

extern Suite *suite_deferred_primitives(void);
Suite *suite_deferred_primitives(void)
{
    Suite *s = suite_create("deferred_primitives");
    TCase *tc = tcase_create("OtherPrimitivesTests");
    tcase_add_test(tc, test_lock);
    tcase_add_test(tc, test_cancelLockAfterAcquired);
    tcase_add_test(tc, test_cancelLockBeforeAcquired);
    tcase_add_test(tc, test_semaphore);
    tcase_add_test(tc, test_semaphoreInvalidTokens);
    tcase_add_test(tc, test_cancelSemaphoreAfterAcquired);
    tcase_add_test(tc, test_cancelSemaphoreBeforeAcquired);
    tcase_add_test(tc, test_queue);
    tcase_add_test(tc, test_cancelQueueAfterSynchronousGet);
    tcase_add_test(tc, test_cancelQueueAfterGet);
    tcase_add_test(tc, test_run_releases_on_failure);
    tcase_add_test(tc, test_misuse_and_free);
    suite_add_tcase(s, tc);
    return s;
}
