/* Deferred core semantics (spec A1-A6, A11, A17). Test names follow Twisted's
 * twisted/test/test_defer.py so the two can be read side by side. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <twistc/deferred.h>

#include "deferred_helpers.h"

/* ---- A1: firing twice ------------------------------------------------------------- */

static void fire(deferred *d, int errback, int expect)
{
    int rc = errback ? deferred_errback_new(d, EIO, "boom") : deferred_callback(d, deferred_int(1));
    ck_assert_int_eq(rc, expect);
}

static void already_called(int first_err, int second_err)
{
    deferred *d = deferred_new();
    deferred_add_callbacks(d, dth_record, dth_recover, "cb"); /* handles a failure */
    fire(d, first_err, 0);
    fire(d, second_err, -EALREADY);
    ck_assert(deferred_called(d));
    deferred_unref(d);
    ck_assert_int_eq(dth_reports, 0); /* the refused failure is just dropped */
}

START_TEST(test_testAlreadyCalled_CC) { already_called(0, 0); }
END_TEST
START_TEST(test_testAlreadyCalled_CE) { already_called(0, 1); }
END_TEST
START_TEST(test_testAlreadyCalled_EC) { already_called(1, 0); }
END_TEST
START_TEST(test_testAlreadyCalled_EE) { already_called(1, 1); }
END_TEST

/* ---- A2: pairs ------------------------------------------------------------------- */

struct kw {
    int a, b;
};
static deferred_result with_args(deferred_result r, void *arg)
{
    struct kw *k = arg;
    dth_logf("args(%lld,%d,%d) ", (long long)r.u.i, k->a, k->b);
    return r;
}

START_TEST(test_testCallbackWithArgs)
{
    struct kw k = {2, 3};
    deferred *d = deferred_new();
    ck_assert_ptr_eq(deferred_add_callback(d, with_args, &k), d); /* every add returns d */
    deferred_callback(d, deferred_int(1));
    ck_assert_str_eq(dth_log, "args(1,2,3) ");
    deferred_unref(d);
}
END_TEST

/* kwargs are the same thing in C: one struct behind `arg`, freed by arg_free. */
static int freed_args;
static void free_kw(void *p)
{
    freed_args++;
    free(p);
}
START_TEST(test_testCallbackWithKwArgs)
{
    struct kw *k = malloc(sizeof *k);
    k->a = 5;
    k->b = 6;
    freed_args = 0;
    deferred *d = deferred_new();
    ck_assert_ptr_eq(deferred_add_callbacks_full(d, with_args, NULL, k, free_kw), d);
    ck_assert_int_eq(freed_args, 0);
    deferred_callback(d, deferred_int(4));
    ck_assert_str_eq(dth_log, "args(4,5,6) ");
    ck_assert_int_eq(freed_args, 1); /* after the pair ran */
    deferred_unref(d);

    /* A pair that never runs gives its arg back when the Deferred is freed. */
    k = malloc(sizeof *k);
    d = deferred_new();
    deferred_add_callbacks_full(d, with_args, NULL, k, free_kw);
    deferred_unref(d);
    ck_assert_int_eq(freed_args, 2);
}
END_TEST

START_TEST(test_addCallbacksNoneErrback)
{
    deferred *d = deferred_new();
    ck_assert_ptr_eq(deferred_add_callbacks(d, dth_record, NULL, "cb"), d);
    deferred_add_errback(d, dth_record, "eb");
    deferred_errback_new(d, EIO, "x");
    /* NULL errback: the failure passes through to the next pair. */
    ck_assert_str_eq(dth_log, "eb(fail:EIO) ");
    deferred_unref(d);
}
END_TEST

START_TEST(test_addCallbacksNoneCallbackArgs)
{
    deferred *d = deferred_new();
    deferred_add_callbacks(d, dth_record, dth_record, "both");
    deferred_add_both(d, dth_record, "both2");
    deferred_callback(d, deferred_str("v", NULL));
    ck_assert_str_eq(dth_log, "both(str:v) both2(str:v) ");
    deferred_unref(d);
}
END_TEST

/* ---- A3: how the chain runs -------------------------------------------------------- */

START_TEST(test_testCallbackErrors)
{
    deferred *d = deferred_new();
    deferred_add_callback(d, dth_raise, (void *)(intptr_t)EPROTO); /* "raises" */
    deferred_add_callback(d, dth_record, "skipped");
    deferred_add_errback(d, dth_record, "eb");
    deferred_add_errback(d, dth_recover, (void *)(intptr_t)7); /* recovers */
    deferred_add_callbacks(d, dth_record, dth_record, "after");
    deferred_callback(d, deferred_int(1));
    ck_assert_str_eq(dth_log, "eb(fail:EPROTO) after(int:7) ");
    deferred_unref(d);
    ck_assert_int_eq(dth_reports, 0);
}
END_TEST

START_TEST(test_testTwoCallbacks)
{
    deferred *d = deferred_new();
    deferred_add_callback(d, dth_add, (void *)(intptr_t)1);
    deferred_add_callback(d, dth_record, "one");
    deferred_add_callback(d, dth_add, (void *)(intptr_t)10);
    deferred_add_callback(d, dth_record, "two");
    deferred_callback(d, deferred_int(0));
    ck_assert_str_eq(dth_log, "one(int:1) two(int:11) ");
    deferred_unref(d);
}
END_TEST

/* ---- A4: already-fired Deferreds run new pairs at once --------------------------------- */

START_TEST(test_testImmediateSuccess)
{
    deferred *d = deferred_succeed(deferred_int(5));
    ck_assert(deferred_called(d));
    deferred_add_callback(d, dth_record, "now");
    ck_assert_str_eq(dth_log, "now(int:5) "); /* ran inside add_callback */
    /* The Deferred keeps the last result: a later pair sees it too. */
    deferred_add_callback(d, dth_add, (void *)(intptr_t)1);
    deferred_add_callback(d, dth_record, "later");
    ck_assert_str_eq(dth_log, "now(int:5) later(int:6) ");
    ck_assert_uint_eq(deferred_pending_callbacks(d), 0);
    deferred_unref(d);
}
END_TEST

START_TEST(test_testImmediateFailure)
{
    deferred *d = deferred_fail(deferred_failure_new(ECONNREFUSED, "refused"));
    deferred_add_errback(d, dth_record, "eb");
    ck_assert_str_eq(dth_log, "eb(fail:ECONNREFUSED) ");
    const deferred_result *r = deferred_peek_result(d);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(deferred_result_code(r), ECONNREFUSED);
    deferred_add_errback(d, dth_recover, NULL); /* handled: no report */
    deferred_unref(d);
    ck_assert_int_eq(dth_reports, 0);
}
END_TEST

/* ---- A5: what callback/errback accept -------------------------------------------------- */

START_TEST(test_callbackWithFailureActsAsErrback)
{
    deferred *d = deferred_new();
    deferred_add_callbacks(d, dth_record, dth_record, "x");
    deferred_add_errback(d, dth_recover, NULL);
    ck_assert_int_eq(deferred_callback(d, deferred_error(EPIPE, "pipe")), 0);
    ck_assert_str_eq(dth_log, "x(fail:EPIPE) ");
    deferred_unref(d);
}
END_TEST

START_TEST(test_callbackWithDeferredRefused)
{
    deferred *d = deferred_new();
    deferred *other = deferred_new();
    /* P5: callback(someDeferred) is forbidden; the reference given is dropped. */
    ck_assert_int_eq(deferred_callback(d, deferred_continue_with(deferred_ref(other))), -EINVAL);
    ck_assert(!deferred_called(d));
    ck_assert_uint_eq(deferred_refcount(other), 1);
    ck_assert_int_eq(deferred_callback(NULL, deferred_int(1)), -EINVAL);
    deferred_unref(other);
    deferred_unref(d);
}
END_TEST

START_TEST(test_errbackWithNoArgs)
{
    /* Python captures the current exception; C has none: a NULL failure becomes an
     * EINVAL failure rather than a crash. */
    deferred *d = deferred_new();
    deferred_add_errback(d, dth_record, "eb");
    ck_assert_int_eq(deferred_errback(d, NULL), 0);
    ck_assert_str_eq(dth_log, "eb(fail:EINVAL) ");
    deferred_add_errback(d, dth_recover, NULL);
    deferred_unref(d);
}
END_TEST

START_TEST(test_errbackWithFailureMessage)
{
    deferred *d = deferred_new();
    deferred_result got = deferred_none();
    deferred_add_errback(d, dth_store, &got);
    int line = __LINE__ + 1;
    deferred_errback_new(d, -ECONNRESET, "peer %s reset", "127.0.0.1:1"); /* err or -err */
    ck_assert_int_eq(got.kind, DEFERRED_FAILURE);
    deferred_failure *f = got.u.failure;
    ck_assert_int_eq(f->code, ECONNRESET);
    ck_assert_str_eq(f->message, "peer 127.0.0.1:1 reset");
    ck_assert_int_eq(f->line, line);
    ck_assert_ptr_nonnull(strstr(f->file, "test_deferred_core.c"));
    deferred_result_clear(&got);
    deferred_unref(d);
}
END_TEST

/* ---- A6: no re-entrant running -------------------------------------------------------- */

static deferred *reent_d;
static deferred_result cb_adds(deferred_result r, void *name)
{
    dth_logf("%s ", (const char *)name);
    deferred_add_callback(reent_d, dth_record, "added");
    /* Not run yet: it goes to the end of the list, after this callback returns. */
    ck_assert_str_eq(dth_log, "cb1 ");
    return r;
}

START_TEST(test_reentrantRunCallbacks)
{
    reent_d = deferred_new();
    deferred_add_callback(reent_d, cb_adds, "cb1");
    deferred_add_callback(reent_d, dth_record, "cb2");
    deferred_callback(reent_d, deferred_none());
    ck_assert_str_eq(dth_log, "cb1 cb2(none) added(none) ");
    deferred_unref(reent_d);
}
END_TEST

START_TEST(test_nonReentrantCallbacks)
{
    reent_d = deferred_new();
    deferred_add_callback(reent_d, cb_adds, "cb1");
    deferred_callback(reent_d, deferred_none());
    ck_assert_str_eq(dth_log, "cb1 added(none) ");
    deferred_unref(reent_d);
}
END_TEST

static deferred_result cb_adds_raise(deferred_result r, void *arg)
{
    deferred_add_callback(reent_d, dth_raise, (void *)(intptr_t)EBADMSG);
    return r;
}

START_TEST(test_reentrantRunCallbacksWithFailure)
{
    reent_d = deferred_new();
    deferred_add_callback(reent_d, cb_adds_raise, NULL);
    deferred_add_errback(reent_d, dth_record, "notyet"); /* before the raise: not called */
    deferred_callback(reent_d, deferred_none());
    ck_assert_str_eq(dth_log, "");
    deferred_result got = deferred_none();
    ck_assert_int_eq(deferred_take_result(reent_d, &got), 0);
    ck_assert_int_eq(deferred_result_code(&got), EBADMSG);
    deferred_result_clear(&got);
    deferred_unref(reent_d);
    ck_assert_int_eq(dth_reports, 0);
}
END_TEST

/* A callback that fires the Deferred it runs on gets -EALREADY, no recursion. */
static deferred_result cb_fires_self(deferred_result r, void *arg)
{
    ck_assert_int_eq(deferred_callback(reent_d, deferred_int(2)), -EALREADY);
    return r;
}
START_TEST(test_callbackFiringItsOwnDeferred)
{
    reent_d = deferred_new();
    deferred_add_callback(reent_d, cb_fires_self, NULL);
    deferred_add_callback(reent_d, dth_record, "after");
    deferred_callback(reent_d, deferred_int(1));
    ck_assert_str_eq(dth_log, "after(int:1) ");
    deferred_unref(reent_d);
}
END_TEST

/* A callback may drop the last reference of its own Deferred: the chain holds one. */
static deferred_result cb_unrefs(deferred_result r, void *arg)
{
    deferred_unref(arg);
    return r;
}
START_TEST(test_callbackDropsLastReference)
{
    deferred *d = deferred_new();
    deferred_add_callback(d, cb_unrefs, d);
    deferred_add_callback(d, dth_record, "still");
    deferred_callback(d, deferred_int(3));
    ck_assert_str_eq(dth_log, "still(int:3) ");
}
END_TEST

/* ---- A11: circular chain ------------------------------------------------------------- */

static deferred_result return_self(deferred_result r, void *d)
{
    deferred_result_clear(&r);
    return deferred_continue_with(deferred_ref(d));
}

START_TEST(test_circularChainWarning)
{
    deferred *d = deferred_new();
    deferred_add_callback(d, return_self, d);
    deferred_callback(d, deferred_int(1));
    const deferred_result *r = deferred_peek_result(d);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(deferred_result_code(r), EDEADLK);
    ck_assert_uint_eq(deferred_refcount(d), 1);
    deferred_unref(d);
    ck_assert_int_eq(dth_reports, 1); /* nobody handled the EDEADLK failure */
    ck_assert_int_eq(dth_report_code, EDEADLK);
}
END_TEST

START_TEST(test_circularChainException)
{
    deferred *d = deferred_new();
    deferred_add_callback(d, return_self, d);
    deferred_add_errback(d, dth_record, "eb");
    deferred_add_errback(d, dth_recover, NULL);
    deferred_callback(d, deferred_int(1));
    ck_assert_str_eq(dth_log, "eb(fail:EDEADLK) ");
    deferred_unref(d);
    ck_assert_int_eq(dth_reports, 0);
}
END_TEST

/* ---- A17: succeed, fail, maybe -------------------------------------------------------- */

static deferred_result sync_value(void *arg) { return deferred_int((intptr_t)arg); }
static deferred_result sync_raise(void *arg) { return deferred_error(EIO, "sync raise"); }
static deferred_result sync_failure(void *arg)
{
    return deferred_failure_result(deferred_failure_new(ENOENT, "sync failure"));
}
static deferred_result async_deferred(void *arg)
{
    return deferred_continue_with(deferred_ref(arg));
}

START_TEST(test_maybeDeferredSync)
{
    deferred *d = deferred_maybe(sync_value, (void *)(intptr_t)10);
    ck_assert(deferred_called(d));
    deferred_add_callback(d, dth_record, "v");
    ck_assert_str_eq(dth_log, "v(int:10) ");
    deferred_unref(d);
}
END_TEST

START_TEST(test_maybeDeferredSyncWithArgs)
{
    deferred *d = deferred_maybe(sync_value, (void *)(intptr_t)-3);
    deferred_add_callback(d, dth_record, "v");
    ck_assert_str_eq(dth_log, "v(int:-3) ");
    deferred_unref(d);
}
END_TEST

START_TEST(test_maybeDeferredSyncException)
{
    deferred *d = deferred_maybe(sync_raise, NULL);
    deferred_add_errback(d, dth_record, "e");
    ck_assert_str_eq(dth_log, "e(fail:EIO) ");
    deferred_add_errback(d, dth_recover, NULL);
    deferred_unref(d);
}
END_TEST

START_TEST(test_maybeDeferredSyncFailure)
{
    deferred *d = deferred_maybe(sync_failure, NULL);
    deferred_add_errback(d, dth_record, "e");
    ck_assert_str_eq(dth_log, "e(fail:ENOENT) ");
    deferred_add_errback(d, dth_recover, NULL);
    deferred_unref(d);
}
END_TEST

START_TEST(test_maybeDeferredAsync)
{
    deferred *inner = deferred_new();
    deferred *d = deferred_maybe(async_deferred, inner);
    ck_assert_ptr_eq(d, inner); /* returned unchanged */
    deferred_callback(inner, deferred_str("async", NULL));
    deferred_add_callback(d, dth_record, "v");
    ck_assert_str_eq(dth_log, "v(str:async) ");
    deferred_unref(d);
    deferred_unref(inner);
}
END_TEST

START_TEST(test_maybeDeferredAsyncError)
{
    deferred *inner = deferred_new();
    deferred *d = deferred_maybe(async_deferred, inner);
    ck_assert_ptr_eq(d, inner);
    deferred_errback_new(inner, ETIMEDOUT, "slow");
    deferred_add_errback(d, dth_record, "e");
    ck_assert_str_eq(dth_log, "e(fail:ETIMEDOUT) ");
    deferred_add_errback(d, dth_recover, NULL);
    deferred_unref(d);
    deferred_unref(inner);
}
END_TEST

/* ---- Results: ownership of values ------------------------------------------------------- */

static int freed_ptrs;
static void count_free(void *p)
{
    freed_ptrs++;
    free(p);
}

START_TEST(test_resultOwnership)
{
    freed_ptrs = 0;
    /* A value with a destructor is freed exactly once, by whoever holds it last. */
    deferred *d = deferred_new();
    deferred_callback(d, deferred_ptr(malloc(16), count_free));
    ck_assert_int_eq(freed_ptrs, 0);
    deferred_unref(d);
    ck_assert_int_eq(freed_ptrs, 1);
    /* A callback that replaces the value frees the old one. */
    d = deferred_new();
    deferred_add_callback(d, dth_recover, (void *)(intptr_t)1);
    deferred_callback(d, deferred_ptr(malloc(16), count_free));
    ck_assert_int_eq(freed_ptrs, 2);
    deferred_unref(d);
    /* A refused second firing frees what it was given. */
    d = deferred_succeed(deferred_none());
    ck_assert_int_eq(deferred_callback(d, deferred_ptr(malloc(8), count_free)), -EALREADY);
    ck_assert_int_eq(freed_ptrs, 3);
    deferred_unref(d);
    /* Strings: borrowed or owned. */
    d = deferred_succeed(deferred_str_dup("copy"));
    deferred_add_callback(d, dth_record, "s");
    ck_assert_str_eq(dth_log, "s(str:copy) ");
    deferred_unref(d);
    /* Every kind goes through deferred_callback intact (it passes the fields in
     * registers) and the argument is evaluated once (one dup, one free). */
    d = deferred_new();
    deferred_add_callback(d, dth_record, "dbl");
    deferred_callback(d, deferred_double(-2.25));
    deferred_unref(d);
    d = deferred_new();
    deferred_add_callback(d, dth_record, "dup");
    deferred_callback(d, deferred_str_dup("once"));
    deferred_unref(d);
    int stack_value = 7;
    d = deferred_new();
    deferred_result got = deferred_none();
    deferred_add_callback(d, dth_store, &got);
    deferred_callback(d, deferred_ptr(&stack_value, NULL));
    ck_assert_ptr_eq(got.u.p, &stack_value);
    ck_assert_ptr_null(got.free_fn);
    deferred_unref(d);
    d = deferred_new();
    deferred_add_callback(d, dth_store, &got);
    deferred_callback(d, deferred_ptr(malloc(3), count_free));
    ck_assert_ptr_eq(got.free_fn, count_free);
    deferred_result_clear(&got);
    ck_assert_int_eq(freed_ptrs, 4);
    deferred_unref(d);
    ck_assert_str_eq(dth_log, "s(str:copy) dbl(double:-2.25) dup(str:once) ");
    deferred_result dbl = deferred_double(1.5);
    ck_assert(!deferred_result_is_failure(&dbl));
    ck_assert_int_eq(deferred_result_code(&dbl), 0);
}
END_TEST

START_TEST(test_failureWrapAndRoot)
{
    deferred_failure *inner = deferred_failure_new(ECONNREFUSED, "connect: %s", "refused");
    deferred_failure *outer = deferred_failure_wrap(inner, EIO, "fetching /ad");
    ck_assert_ptr_eq(outer->cause, inner);
    ck_assert_ptr_eq(deferred_failure_root(outer), inner);
    ck_assert(deferred_failure_has_code(outer, ECONNREFUSED));
    ck_assert(deferred_failure_has_code(outer, -EIO));
    ck_assert(!deferred_failure_has_code(outer, ETIMEDOUT));
    char buf[512];
    FILE *m = fmemopen(buf, sizeof buf, "w");
    ck_assert_int_gt(deferred_failure_print(outer, m), 0);
    fclose(m);
    ck_assert_ptr_nonnull(strstr(buf, "fetching /ad (EIO"));
    ck_assert_ptr_nonnull(strstr(buf, "caused by: connect: refused (ECONNREFUSED"));
    deferred_failure *shared = deferred_failure_ref(outer);
    deferred_failure_unref(outer);
    ck_assert_str_eq(shared->message, "fetching /ad");
    deferred_failure_unref(shared);
    /* Long messages are kept whole; NULL fmt takes the code's text. */
    char big[600];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    deferred_failure *f = deferred_failure_new(EINVAL, "%s", big);
    ck_assert_uint_eq(strlen(f->message), sizeof big - 1);
    deferred_failure_unref(f);
    f = deferred_failure_new(ETIMEDOUT, NULL);
    ck_assert_str_eq(f->message, strerror(ETIMEDOUT));
    deferred_failure_unref(f);
    f = deferred_failure_new(0, "zero");
    ck_assert_int_eq(f->code, DEFERRED_EUSER);
    deferred_failure_unref(f);
}
END_TEST

/* chainDeferred (A10 contrast): d1's result goes to d2 at that point of d1's chain. */
START_TEST(test_chainDeferred)
{
    deferred *d1 = deferred_new();
    deferred *d2 = deferred_new();
    deferred_add_callback(d2, dth_record, "d2");
    ck_assert_ptr_eq(deferred_chain_deferred(d1, d2), d1);
    deferred_add_callback(d1, dth_record, "d1after");
    deferred_callback(d1, deferred_int(9));
    ck_assert_str_eq(dth_log, "d2(int:9) d1after(none) ");
    deferred_unref(d1);
    /* Chaining into a Deferred that has fired already fails the chain (EALREADY). */
    d1 = deferred_new();
    deferred_chain_deferred(d1, d2);
    deferred_add_errback(d1, dth_record, "d1err");
    deferred_add_errback(d1, dth_recover, NULL);
    deferred_callback(d1, deferred_int(1));
    ck_assert_str_eq(dth_log, "d2(int:9) d1after(none) d1err(fail:EALREADY) ");
    ck_assert_ptr_null(deferred_chain_deferred(d1, d1));
    deferred_unref(d1);
    deferred_unref(d2);
}
END_TEST

extern Suite *suite_deferred_core(void);
Suite *suite_deferred_core(void)
{
    Suite *s = suite_create("deferred_core");
    TCase *tc = tcase_create("already_called");
    dth_fixture(tc);
    tcase_add_test(tc, test_testAlreadyCalled_CC);
    tcase_add_test(tc, test_testAlreadyCalled_CE);
    tcase_add_test(tc, test_testAlreadyCalled_EC);
    tcase_add_test(tc, test_testAlreadyCalled_EE);
    suite_add_tcase(s, tc);

    tc = tcase_create("chain");
    dth_fixture(tc);
    tcase_add_test(tc, test_testCallbackWithArgs);
    tcase_add_test(tc, test_testCallbackWithKwArgs);
    tcase_add_test(tc, test_addCallbacksNoneErrback);
    tcase_add_test(tc, test_addCallbacksNoneCallbackArgs);
    tcase_add_test(tc, test_testCallbackErrors);
    tcase_add_test(tc, test_testTwoCallbacks);
    tcase_add_test(tc, test_testImmediateSuccess);
    tcase_add_test(tc, test_testImmediateFailure);
    tcase_add_test(tc, test_callbackWithFailureActsAsErrback);
    tcase_add_test(tc, test_callbackWithDeferredRefused);
    tcase_add_test(tc, test_errbackWithNoArgs);
    tcase_add_test(tc, test_errbackWithFailureMessage);
    tcase_add_test(tc, test_chainDeferred);
    suite_add_tcase(s, tc);

    tc = tcase_create("reentrancy");
    dth_fixture(tc);
    tcase_add_test(tc, test_reentrantRunCallbacks);
    tcase_add_test(tc, test_nonReentrantCallbacks);
    tcase_add_test(tc, test_reentrantRunCallbacksWithFailure);
    tcase_add_test(tc, test_callbackFiringItsOwnDeferred);
    tcase_add_test(tc, test_callbackDropsLastReference);
    tcase_add_test(tc, test_circularChainWarning);
    tcase_add_test(tc, test_circularChainException);
    suite_add_tcase(s, tc);

    tc = tcase_create("helpers");
    dth_fixture(tc);
    tcase_add_test(tc, test_maybeDeferredSync);
    tcase_add_test(tc, test_maybeDeferredSyncWithArgs);
    tcase_add_test(tc, test_maybeDeferredSyncException);
    tcase_add_test(tc, test_maybeDeferredSyncFailure);
    tcase_add_test(tc, test_maybeDeferredAsync);
    tcase_add_test(tc, test_maybeDeferredAsyncError);
    tcase_add_test(tc, test_resultOwnership);
    tcase_add_test(tc, test_failureWrapAndRoot);
    suite_add_tcase(s, tc);
    return s;
}
