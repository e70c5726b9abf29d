/* Implicit chaining (a callback returns a Deferred), pause/unpause and bounded stack
 * depth: spec A7-A10, A12. Test names follow Twisted's test_defer.py. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <twistc/deferred.h>

#include "deferred_helpers.h"

/* Callback returning the Deferred in arg (a new reference), dropping its input. */
static deferred_result return_d(deferred_result r, void *d)
{
    deferred_result_clear(&r);
    return deferred_continue_with(deferred_ref(d));
}

/* ---- A7: implicit chaining -------------------------------------------------------------- */

START_TEST(test_asynchronousImplicitChain)
{
    deferred *first = deferred_new();
    deferred *second = deferred_new();
    deferred_add_callback(second, return_d, first);
    deferred_callback(second, deferred_none());
    ck_assert(deferred_waiting(second));
    deferred_add_callback(first, dth_record, "first");
    deferred_add_callback(second, dth_record, "second");
    ck_assert_str_eq(dth_log, "");
    deferred_callback(first, deferred_int(42));
    /* The continuation was on first before first's own pair: second takes 42 and
     * first's pair then sees NONE (B hands its result over to A). */
    ck_assert_str_eq(dth_log, "second(int:42) first(none) ");
    deferred_unref(first);
    deferred_unref(second);
}
END_TEST

START_TEST(test_asynchronousImplicitChainInnerPairsFirst)
{
    /* Pairs that were on the inner Deferred before it was returned run first (A9). */
    deferred *first = deferred_new();
    deferred *second = deferred_new();
    deferred_add_callback(first, dth_add, (void *)(intptr_t)1);
    deferred_add_callback(first, dth_record, "first");
    deferred_add_callback(second, return_d, first);
    deferred_callback(second, deferred_none());
    deferred_add_callback(second, dth_record, "second");
    deferred_callback(first, deferred_int(7));
    ck_assert_str_eq(dth_log, "first(int:8) second(int:8) ");
    deferred_unref(first);
    deferred_unref(second);
}
END_TEST

START_TEST(test_synchronousImplicitChain)
{
    deferred *first = deferred_succeed(deferred_int(5));
    deferred *second = deferred_new();
    deferred_add_callback(second, return_d, first);
    deferred_callback(second, deferred_none());
    deferred_add_callback(first, dth_record, "first");   /* its result was taken: NONE */
    deferred_add_callback(second, dth_record, "second"); /* took over 5 */
    ck_assert_str_eq(dth_log, "first(none) second(int:5) ");
    ck_assert(!deferred_waiting(second));
    deferred_unref(first);
    deferred_unref(second);
}
END_TEST

START_TEST(test_chainDeferredRecordsImplicitChain)
{
    deferred *a = deferred_new();
    deferred *b = deferred_new();
    deferred_add_callback(a, return_d, b);
    deferred_callback(a, deferred_none());
    ck_assert(deferred_waiting(a));
    ck_assert_int_eq(deferred_paused(a), 1);
    ck_assert_ptr_null(deferred_peek_result(a));
    deferred_callback(b, deferred_none());
    ck_assert(!deferred_waiting(a));
    ck_assert_int_eq(deferred_paused(a), 0);
    deferred_unref(a);
    deferred_unref(b);
}
END_TEST

/* ---- A8: errors through chaining ------------------------------------------------------- */

START_TEST(test_synchronousImplicitErrorChain)
{
    deferred *first = deferred_fail(deferred_failure_new(EIO, "First Deferred's Failure"));
    deferred *second = deferred_new();
    deferred_add_callback(second, return_d, first);
    deferred_callback(second, deferred_none());
    deferred_add_callback(first, dth_record, "first");
    ck_assert_str_eq(dth_log, "first(none) ");
    const deferred_result *r = deferred_peek_result(second);
    ck_assert_int_eq(deferred_result_code(r), EIO);
    deferred_unref(first);
    ck_assert_int_eq(dth_reports, 0); /* first stopped holding the failure */
    deferred_add_errback(second, dth_recover, NULL);
    deferred_unref(second);
    ck_assert_int_eq(dth_reports, 0);
}
END_TEST

START_TEST(test_asynchronousImplicitErrorChain)
{
    deferred *first = deferred_new();
    deferred *second = deferred_new();
    deferred_add_callback(second, return_d, first);
    deferred_callback(second, deferred_none());
    deferred_add_errback(second, dth_record, "secondError");
    deferred_add_errback(second, dth_recover, (void *)(intptr_t)0);
    deferred_add_callback(second, dth_record, "secondResult");
    deferred_errback_new(first, EIO, "First Deferred's Failure");
    deferred_add_callback(first, dth_record, "first");
    ck_assert_str_eq(dth_log, "secondError(fail:EIO) secondResult(int:0) first(none) ");
    deferred_unref(first);
    deferred_unref(second);
    ck_assert_int_eq(dth_reports, 0);
}
END_TEST

START_TEST(test_chainedErrorCleanup)
{
    /* LogTests.test_chainedErrorCleanup / test_errorClearedByChaining: the failure moves
     * to the outer Deferred; only the outer one reports it, once. */
    deferred *inner = deferred_new();
    deferred *outer = deferred_new();
    deferred_add_callback(outer, return_d, inner);
    deferred_callback(outer, deferred_none());
    deferred_errback_new(inner, ECONNRESET, "lost");
    deferred_unref(inner);
    ck_assert_int_eq(dth_reports, 0);
    deferred_unref(outer);
    ck_assert_int_eq(dth_reports, 1);
    ck_assert_int_eq(dth_report_code, ECONNRESET);
}
END_TEST

/* ---- A9: transitive chaining, order ----------------------------------------------------- */

START_TEST(test_doubleAsynchronousImplicitChaining)
{
    deferred *first = deferred_new();
    deferred *second = deferred_new();
    deferred *third = deferred_new();
    deferred_add_callback(second, return_d, first);
    deferred_add_callback(third, return_d, second);
    deferred_add_callback(third, dth_record, "third");
    deferred_callback(second, deferred_none());
    deferred_callback(third, deferred_none());
    ck_assert_str_eq(dth_log, "");
    deferred_callback(first, deferred_int(3));
    ck_assert_str_eq(dth_log, "third(int:3) ");
    deferred_unref(first);
    deferred_unref(second);
    deferred_unref(third);
}
END_TEST

/* test_nestedAsynchronousChainedDeferreds and friends: outer's callback builds d, an
 * already-fired Deferred whose first callback returns `inner`. */
struct nested {
    deferred *inner;
    deferred *a; /* for the gather variants */
    int gather;
    int fire_d;
};

static deferred_result first_cb(deferred_result r, void *arg)
{
    struct nested *n = arg;
    char b[64];
    dth_logf("firstCallback(%s) ", dth_desc(&r, b, sizeof b));
    deferred_result_clear(&r);
    if (n->gather) {
        deferred *g = deferred_gather(&n->a, 1, 0);
        return deferred_continue_with(g); /* passes our only reference */
    }
    return deferred_continue_with(deferred_ref(n->inner));
}

static deferred_result second_cb(deferred_result r, void *arg)
{
    char b[64];
    deferred_list_result *lr = deferred_list_result_of(&r);
    if (lr) {
        dth_logf("secondCallback([%s]) ", dth_desc(&lr->items[0].result, b, sizeof b));
        return r;
    }
    dth_logf("secondCallback(%s) ", dth_desc(&r, b, sizeof b));
    if (r.kind == DEFERRED_STR) { /* result * 2 */
        size_t len = strlen(r.u.s);
        char *twice = malloc(2 * len + 1);
        memcpy(twice, r.u.s, len);
        memcpy(twice + len, r.u.s, len + 1);
        deferred_result_clear(&r);
        return deferred_str(twice, free);
    }
    return r;
}

static deferred_result outer_cb(deferred_result r, void *arg)
{
    struct nested *n = arg;
    char b[64];
    dth_logf("cb(%s) ", dth_desc(&r, b, sizeof b));
    deferred_result_clear(&r);
    deferred *d = n->fire_d ? deferred_new() : deferred_succeed(deferred_str("inner", NULL));
    deferred_add_callback(d, first_cb, n);
    deferred_add_callback(d, second_cb, n);
    deferred_add_errback(d, dth_record, "FAILURE");
    if (n->fire_d)
        deferred_callback(d, deferred_none());
    return deferred_continue_with(d);
}

START_TEST(test_nestedAsynchronousChainedDeferreds)
{
    struct nested n = {.inner = deferred_new()};
    deferred *outer = deferred_succeed(deferred_str("outer", NULL));
    deferred_add_callback(outer, outer_cb, &n);
    deferred_add_callback(outer, dth_record, "final");
    ck_assert_str_eq(dth_log, "cb(str:outer) firstCallback(str:inner) ");
    deferred_callback(n.inner, deferred_str("orange", NULL));
    ck_assert_str_eq(dth_log, "cb(str:outer) firstCallback(str:inner) secondCallback(str:orange) "
                              "final(str:orangeorange) ");
    deferred_unref(n.inner);
    deferred_unref(outer);
}
END_TEST

static deferred_result wrap_list(deferred_result r, void *arg)
{
    /* transform(result) -> [result]: shown as "[...]" by second_cb via a 1-item list. */
    char b[64];
    dth_logf("transform(%s) ", dth_desc(&r, b, sizeof b));
    return r;
}

START_TEST(test_nestedAsynchronousChainedDeferredsWithExtraCallbacks)
{
    struct nested n = {.inner = deferred_new()};
    /* inner.addCallback(transform) is what firstCallback returns in Twisted: add it
     * before firing so it runs before the continuation. */
    deferred_add_callback(n.inner, wrap_list, NULL);
    deferred *outer = deferred_succeed(deferred_str("outer", NULL));
    deferred_add_callback(outer, outer_cb, &n);
    deferred_add_callback(outer, dth_record, "final");
    deferred_callback(n.inner, deferred_str("withers", NULL));
    deferred_add_errback(n.inner, dth_record, "FAILURE");
    ck_assert_str_eq(dth_log, "cb(str:outer) firstCallback(str:inner) transform(str:withers) "
                              "secondCallback(str:withers) final(str:witherswithers) ");
    deferred_unref(n.inner);
    deferred_unref(outer);
}
END_TEST

START_TEST(test_innerCallbacksPreserved)
{
    struct nested n = {.inner = deferred_new()};
    deferred *outer = deferred_succeed(deferred_str("outer", NULL));
    deferred_add_callback(outer, outer_cb, &n);
    deferred_callback(n.inner, deferred_str("orange", NULL));
    deferred_add_callback(outer, dth_record, "final");
    ck_assert_str_eq(dth_log, "cb(str:outer) firstCallback(str:inner) secondCallback(str:orange) "
                              "final(str:orangeorange) ");
    deferred_unref(n.inner);
    deferred_unref(outer);
}
END_TEST

START_TEST(test_callbackOrderPreserved)
{
    struct nested n = {.a = deferred_new(), .gather = 1, .fire_d = 1};
    deferred *outer = deferred_new();
    deferred_add_callback(outer, outer_cb, &n);
    deferred_add_callback(outer, dth_record, "final");
    deferred_add_errback(outer, dth_record, "FAILURE");
    deferred_callback(outer, deferred_str("outer", NULL));
    ck_assert_str_eq(dth_log, "cb(str:outer) firstCallback(none) ");
    deferred_callback(n.a, deferred_str("withers", NULL));
    ck_assert_str_eq(dth_log, "cb(str:outer) firstCallback(none) secondCallback([str:withers]) "
                              "final(ptr) ");
    deferred_unref(n.a);
    deferred_unref(outer);
}
END_TEST

START_TEST(test_continueCallbackNotFirst)
{
    struct nested n = {.a = deferred_new(), .gather = 1, .fire_d = 1};
    deferred *outer = deferred_succeed(deferred_str("outer", NULL));
    deferred_add_callback(outer, outer_cb, &n);
    deferred_add_errback(outer, dth_record, "FAILURE");
    ck_assert_str_eq(dth_log, "cb(str:outer) firstCallback(none) ");
    deferred_callback(n.a, deferred_str("withers", NULL));
    ck_assert_str_eq(dth_log, "cb(str:outer) firstCallback(none) secondCallback([str:withers]) ");
    deferred_unref(n.a);
    deferred_unref(outer);
}
END_TEST

START_TEST(test_resultOfDeferredResultOfDeferredOfFiredDeferredCalled)
{
    deferred *first = deferred_new();
    deferred *second = deferred_new();
    deferred *third = deferred_new();
    deferred_add_callback(first, return_d, second);
    deferred_add_callback(second, return_d, third);
    deferred_callback(second, deferred_none());
    deferred_callback(first, deferred_none());
    deferred_callback(third, deferred_int(1));
    deferred_add_callback(second, dth_record, "second");
    deferred_add_callback(first, dth_record, "first");
    ck_assert_str_eq(dth_log, "second(none) first(int:1) ");
    deferred_unref(first);
    deferred_unref(second);
    deferred_unref(third);
}
END_TEST

/* The outer Deferred is kept alive by the inner one while it waits: the producer may
 * drop its reference right after firing (fire and forget). */
START_TEST(test_waitingDeferredKeptAliveByInner)
{
    deferred *inner = deferred_new();
    deferred *outer = deferred_new();
    deferred_add_callback(outer, return_d, inner);
    deferred_add_callback(outer, dth_record, "outer");
    deferred_callback(outer, deferred_none());
    deferred_unref(outer); /* nobody holds outer but inner's continuation */
    deferred_callback(inner, deferred_int(8));
    ck_assert_str_eq(dth_log, "outer(int:8) ");
    deferred_unref(inner);
}
END_TEST

/* An inner Deferred nobody can fire any more is freed, and releases the outer. */
START_TEST(test_innerFreedUnfiredReleasesOuter)
{
    deferred *inner = deferred_new();
    deferred *outer = deferred_new();
    deferred_add_callback(outer, return_d, inner);
    deferred_callback(outer, deferred_none());
    ck_assert_uint_eq(deferred_refcount(outer), 2);
    deferred_unref(inner);
    ck_assert(!deferred_waiting(outer));
    ck_assert_uint_eq(deferred_refcount(outer), 1);
    deferred_unref(outer);
}
END_TEST

/* ---- A12: pause ------------------------------------------------------------------------- */

START_TEST(test_testPausedFailure)
{
    deferred *d = deferred_fail(deferred_failure_new(EIO, "fail"));
    deferred_pause(d);
    deferred_add_errback(d, dth_record, "eb");
    ck_assert_str_eq(dth_log, "");
    ck_assert_ptr_null(deferred_peek_result(d));
    deferred_unpause(d);
    ck_assert_str_eq(dth_log, "eb(fail:EIO) ");
    ck_assert_int_eq(deferred_unpause(d), -EINVAL);
    deferred_add_errback(d, dth_recover, NULL);
    deferred_unref(d);
}
END_TEST

START_TEST(test_testUnpauseBeforeCallback)
{
    deferred *d = deferred_new();
    deferred_pause(d);
    deferred_pause(d);
    deferred_add_callback(d, dth_record, "cb");
    deferred_unpause(d);
    deferred_unpause(d); /* not fired: nothing runs */
    ck_assert_str_eq(dth_log, "");
    deferred_callback(d, deferred_int(1));
    ck_assert_str_eq(dth_log, "cb(int:1) ");
    deferred_unref(d);
}
END_TEST

START_TEST(test_testReturnDeferred)
{
    deferred *d1 = deferred_new();
    deferred *d2 = deferred_new();
    deferred_pause(d2);
    deferred_add_callback(d1, return_d, d2);
    deferred_add_callback(d1, dth_record, "cb");
    deferred_callback(d1, deferred_int(1));
    ck_assert_str_eq(dth_log, "");
    deferred_callback(d2, deferred_int(2));
    ck_assert_str_eq(dth_log, "");
    deferred_unpause(d2);
    ck_assert_str_eq(dth_log, "cb(int:2) ");
    deferred_unref(d1);
    deferred_unref(d2);
}
END_TEST

START_TEST(test_chainedPausedDeferredWithResult)
{
    deferred *paused = deferred_new();
    deferred_callback(paused, deferred_int(99));
    deferred_pause(paused);
    deferred *chained = deferred_new();
    deferred_add_callback(chained, return_d, paused);
    deferred_callback(chained, deferred_none());
    deferred_add_callback(chained, dth_record, "chained");
    ck_assert_str_eq(dth_log, "");
    deferred_unpause(paused);
    ck_assert_str_eq(dth_log, "chained(int:99) ");
    deferred_unref(paused);
    deferred_unref(chained);
}
END_TEST

START_TEST(test_pausedDeferredChained)
{
    deferred *first = deferred_new();
    deferred *second = deferred_new();
    deferred_add_callback(first, return_d, second);
    deferred_callback(first, deferred_none());
    deferred_pause(first);
    deferred_callback(second, deferred_none());
    /* Pausing the outer one does not block the inner one's own callbacks. */
    deferred_add_callback(second, dth_record, "second");
    ck_assert_str_eq(dth_log, "second(none) ");
    deferred_add_callback(first, dth_record, "first");
    ck_assert_str_eq(dth_log, "second(none) ");
    deferred_unpause(first);
    ck_assert_str_eq(dth_log, "second(none) first(none) ");
    deferred_unref(first);
    deferred_unref(second);
}
END_TEST

/* ---- A10: bounded stack ------------------------------------------------------------------ */

/* Stack depth measured as the distance from a base address to a local of the recording
 * callback (stacks grow down on every platform we build for; abs() keeps it honest). */
static char *stack_base;
static long recorded_depth;
static deferred_result record_depth(deferred_result r, void *arg)
{
    char here;
    long d = (long)(stack_base - &here);
    recorded_depth = d < 0 ? -d : d;
    return r;
}

/* Twisted's test_boundedStackDepth: top -> inner_1 -> ... -> inner_n -> last. */
static long chain_deferreds(size_t how_many)
{
    char base;
    stack_base = &base;
    recorded_depth = -1;
    deferred *top = deferred_new();
    deferred **inners = malloc(how_many * sizeof *inners);
    for (size_t i = 0; i < how_many; i++)
        inners[i] = deferred_new();
    deferred *last = deferred_new();
    deferred_add_callback(top, return_d, inners[how_many - 1]);
    deferred_add_callback(top, record_depth, NULL);
    for (size_t i = how_many - 1; i > 0; i--)
        deferred_add_callback(inners[i], return_d, inners[i - 1]);
    deferred_add_callback(inners[0], return_d, last);
    deferred_callback(top, deferred_none());
    for (size_t i = 0; i < how_many; i++)
        deferred_callback(inners[i], deferred_none());
    ck_assert_int_eq(recorded_depth, -1); /* not fired yet */
    deferred_callback(last, deferred_none());
    ck_assert_int_ge(recorded_depth, 0);
    for (size_t i = 0; i < how_many; i++)
        deferred_unref(inners[i]);
    free(inners);
    deferred_unref(last);
    deferred_unref(top);
    return recorded_depth;
}

START_TEST(test_boundedStackDepth)
{
    long one = chain_deferreds(1);
    ck_assert_int_eq(chain_deferreds(2), one);
    ck_assert_int_eq(chain_deferreds(1000), one);
}
END_TEST

/* The same on a thread whose stack is small: recursion through firing would crash. */
#if defined(TWISTC_ASAN) || defined(TWISTC_TSAN)
#define SMALL_STACK (512 * 1024) /* sanitizers make every frame bigger */
#else
#define SMALL_STACK (64 * 1024)
#endif

static void run_on_small_stack(void *(*fn)(void *), void *arg)
{
    pthread_attr_t attr;
    pthread_t th;
    ck_assert_int_eq(pthread_attr_init(&attr), 0);
    ck_assert_int_eq(pthread_attr_setstacksize(&attr, SMALL_STACK), 0);
    ck_assert_int_eq(pthread_create(&th, &attr, fn, arg), 0);
    void *ret = NULL;
    ck_assert_int_eq(pthread_join(th, &ret), 0);
    pthread_attr_destroy(&attr);
    ck_assert_ptr_eq(ret, arg);
}

static void *long_implicit_chain(void *arg)
{
    /* 100 000 Deferreds chained one into the next, fired from the innermost. */
    size_t n = 100000;
    deferred **ds = malloc(n * sizeof *ds);
    for (size_t i = 0; i < n; i++)
        ds[i] = deferred_new();
    for (size_t i = 0; i + 1 < n; i++)
        deferred_add_callback(ds[i], return_d, ds[i + 1]);
    for (size_t i = 0; i + 1 < n; i++)
        deferred_callback(ds[i], deferred_none());
    deferred_result got = deferred_none();
    deferred_add_callback(ds[0], dth_store, &got);
    deferred_callback(ds[n - 1], deferred_int(123));
    int ok = got.kind == DEFERRED_INT && got.u.i == 123;
    for (size_t i = 0; i < n; i++)
        deferred_unref(ds[i]);
    free(ds);
    return ok ? arg : NULL;
}

START_TEST(test_boundedStackDepthLongChainSmallStack)
{
    int token;
    run_on_small_stack(long_implicit_chain, &token);
}
END_TEST

static void *long_unfired_chain_freed(void *arg)
{
    /* 100 000 Deferreds waiting on each other, then dropped without ever firing the
     * innermost: freeing cascades through the continuations without recursion. */
    size_t n = 100000;
    deferred **ds = malloc(n * sizeof *ds);
    for (size_t i = 0; i < n; i++)
        ds[i] = deferred_new();
    for (size_t i = 0; i + 1 < n; i++)
        deferred_add_callback(ds[i], return_d, ds[i + 1]);
    for (size_t i = 0; i + 1 < n; i++)
        deferred_callback(ds[i], deferred_none());
    /* Cancel from the outermost goes to the innermost without recursion too. */
    deferred_cancel(ds[0]);
    int cancelled = 0;
    const deferred_result *r = deferred_peek_result(ds[0]);
    if (r && deferred_result_code(r) == ECANCELED)
        cancelled = 1;
    deferred_add_errback(ds[0], dth_recover, NULL);
    for (size_t i = 0; i < n; i++)
        deferred_unref(ds[i]);
    free(ds);

    ds = malloc(n * sizeof *ds);
    for (size_t i = 0; i < n; i++)
        ds[i] = deferred_new();
    for (size_t i = 0; i + 1 < n; i++)
        deferred_add_callback(ds[i], return_d, ds[i + 1]);
    for (size_t i = 0; i + 1 < n; i++)
        deferred_callback(ds[i], deferred_none());
    for (size_t i = 0; i + 1 < n; i++)
        deferred_unref(ds[i]); /* all kept alive by the continuations */
    deferred_unref(ds[n - 1]); /* frees everything */
    free(ds);
    return cancelled ? arg : NULL;
}

START_TEST(test_boundedStackDepthFreeAndCancelSmallStack)
{
    int token;
    run_on_small_stack(long_unfired_chain_freed, &token);
}
END_TEST

static void *million_callbacks(void *arg)
{
    deferred *d = deferred_new();
    for (int i = 0; i < 1000000; i++)
        deferred_add_callback(d, dth_add, (void *)(intptr_t)1);
    deferred_callback(d, deferred_int(0));
    const deferred_result *r = deferred_peek_result(d);
    int ok = r && r->kind == DEFERRED_INT && r->u.i == 1000000;
    deferred_unref(d);
    return ok ? arg : NULL;
}

START_TEST(test_millionCallbacksSmallStack)
{
    int token;
    run_on_small_stack(million_callbacks, &token);
}
END_TEST

extern Suite *suite_deferred_chain(void);
Suite *suite_deferred_chain(void)
{
    Suite *s = suite_create("deferred_continue_with");
    TCase *tc = tcase_create("implicit_chain");
    dth_fixture(tc);
    tcase_add_test(tc, test_asynchronousImplicitChain);
    tcase_add_test(tc, test_asynchronousImplicitChainInnerPairsFirst);
    tcase_add_test(tc, test_synchronousImplicitChain);
    tcase_add_test(tc, test_chainDeferredRecordsImplicitChain);
    tcase_add_test(tc, test_synchronousImplicitErrorChain);
    tcase_add_test(tc, test_asynchronousImplicitErrorChain);
    tcase_add_test(tc, test_chainedErrorCleanup);
    tcase_add_test(tc, test_doubleAsynchronousImplicitChaining);
    tcase_add_test(tc, test_nestedAsynchronousChainedDeferreds);
    tcase_add_test(tc, test_nestedAsynchronousChainedDeferredsWithExtraCallbacks);
    tcase_add_test(tc, test_innerCallbacksPreserved);
    tcase_add_test(tc, test_callbackOrderPreserved);
    tcase_add_test(tc, test_continueCallbackNotFirst);
    tcase_add_test(tc, test_resultOfDeferredResultOfDeferredOfFiredDeferredCalled);
    tcase_add_test(tc, test_waitingDeferredKeptAliveByInner);
    tcase_add_test(tc, test_innerFreedUnfiredReleasesOuter);
    suite_add_tcase(s, tc);

    tc = tcase_create("pause");
    dth_fixture(tc);
    tcase_add_test(tc, test_testPausedFailure);
    tcase_add_test(tc, test_testUnpauseBeforeCallback);
    tcase_add_test(tc, test_testReturnDeferred);
    tcase_add_test(tc, test_chainedPausedDeferredWithResult);
    tcase_add_test(tc, test_pausedDeferredChained);
    suite_add_tcase(s, tc);

    tc = tcase_create("bounded_stack");
    dth_fixture(tc);
    tcase_set_timeout(tc, 60); /* a million pairs under valgrind/ASan */
    tcase_set_tags(tc, "threads"); /* runs work on small-stack threads: also under TSan */
    tcase_add_test(tc, test_boundedStackDepth);
    tcase_add_test(tc, test_boundedStackDepthLongChainSmallStack);
    tcase_add_test(tc, test_boundedStackDepthFreeAndCancelSmallStack);
    tcase_add_test(tc, test_millionCallbacksSmallStack);
    suite_add_tcase(s, tc);
    return s;
}
