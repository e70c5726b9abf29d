/* Cancellation (spec A13-A15) and timeouts (A16). Timeouts run on a reactor with the
 * fake clock (Twisted's task.Clock): no test waits for real time. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <twistc/deferred.h>
#include <twistc/reactor.h>

#include "deferred_helpers.h"

static int canceller_calls;
static deferred *canceller_saw;

static void count_canceller(deferred *d, void *arg)
{
    canceller_calls++;
    canceller_saw = d;
    ck_assert_ptr_eq(arg, (void *)&canceller_calls);
}

static void callback_canceller(deferred *d, void *arg)
{
    canceller_calls++;
    deferred_callback(d, deferred_str(arg ? arg : "hello!", NULL));
}

static void errback_canceller(deferred *d, void *arg)
{
    canceller_calls++;
    deferred_errback_new(d, EPROTO, "GenericError");
}

static void setup(void)
{
    dth_setup();
    canceller_calls = 0;
    canceller_saw = NULL;
}

/* ---- A13 ------------------------------------------------------------------------------ */

START_TEST(test_noCanceller)
{
    deferred *d = deferred_new();
    deferred_add_callbacks(d, dth_record, dth_record, "r");
    ck_assert_int_eq(deferred_cancel(d), 0);
    ck_assert_str_eq(dth_log, "r(fail:ECANCELED) ");
    deferred_add_errback(d, dth_recover, NULL);
    deferred_unref(d);
}
END_TEST

START_TEST(test_simpleCanceller)
{
    deferred *d = deferred_new_cancellable(count_canceller, &canceller_calls);
    deferred_add_callbacks(d, dth_record, dth_record, "r");
    deferred_cancel(d);
    ck_assert_int_eq(canceller_calls, 1);
    ck_assert_str_eq(dth_log, "r(fail:ECANCELED) ");
    /* With a canceller that did not fire it, nothing is swallowed (A15). */
    ck_assert_int_eq(deferred_callback(d, deferred_none()), -EALREADY);
    ck_assert_int_eq(deferred_errback_new(d, EIO, "x"), -EALREADY);
    deferred_add_errback(d, dth_recover, NULL);
    deferred_unref(d);
}
END_TEST

START_TEST(test_cancellerArg)
{
    deferred *d = deferred_new_cancellable(count_canceller, &canceller_calls);
    deferred_add_errback(d, dth_recover, NULL);
    deferred_cancel(d);
    ck_assert_ptr_eq(canceller_saw, d);
    deferred_unref(d);
}
END_TEST

START_TEST(test_cancellerThatCallbacks)
{
    deferred *d = deferred_new_cancellable(callback_canceller, NULL);
    deferred_add_callbacks(d, dth_record, dth_record, "r");
    deferred_cancel(d);
    ck_assert_int_eq(canceller_calls, 1);
    ck_assert_str_eq(dth_log, "r(str:hello!) "); /* the canceller's firing wins */
    deferred_unref(d);
}
END_TEST

START_TEST(test_cancellerThatErrbacks)
{
    deferred *d = deferred_new_cancellable(errback_canceller, NULL);
    deferred_add_callbacks(d, dth_record, dth_record, "r");
    deferred_cancel(d);
    ck_assert_int_eq(canceller_calls, 1);
    ck_assert_str_eq(dth_log, "r(fail:EPROTO) ");
    deferred_add_errback(d, dth_recover, NULL);
    deferred_unref(d);
}
END_TEST

START_TEST(test_cancellerMultipleCancel)
{
    deferred *d = deferred_new_cancellable(count_canceller, &canceller_calls);
    deferred_result got = deferred_none();
    deferred_add_errback(d, dth_store, &got);
    deferred_cancel(d);
    deferred_failure *first = got.u.failure;
    ck_assert_int_eq(first->code, ECANCELED);
    deferred_cancel(d);
    ck_assert_int_eq(canceller_calls, 1);
    ck_assert_ptr_eq(got.u.failure, first);
    deferred_result_clear(&got);
    deferred_unref(d);
}
END_TEST

START_TEST(test_noCancellerMultipleCancel)
{
    deferred *d = deferred_new();
    deferred_result got = deferred_none();
    deferred_add_errback(d, dth_store, &got);
    deferred_cancel(d);
    deferred_failure *first = got.u.failure;
    deferred_cancel(d);
    ck_assert_ptr_eq(got.u.failure, first);
    deferred_result_clear(&got);
    deferred_unref(d);
}
END_TEST

/* ---- A14 ----------------------------------------------------------------------------- */

START_TEST(test_cancelAfterCallback)
{
    deferred *d = deferred_new_cancellable(errback_canceller, NULL);
    deferred_add_callbacks(d, dth_record, dth_record, "r");
    deferred_callback(d, deferred_str("biff!", NULL));
    deferred_cancel(d);
    ck_assert_int_eq(canceller_calls, 0);
    ck_assert_str_eq(dth_log, "r(str:biff!) ");
    deferred_unref(d);
}
END_TEST

START_TEST(test_cancelAfterErrback)
{
    deferred *d = deferred_new_cancellable(errback_canceller, NULL);
    deferred_add_callbacks(d, dth_record, dth_record, "r");
    deferred_errback_new(d, EIO, "GenericError");
    deferred_cancel(d);
    ck_assert_int_eq(canceller_calls, 0);
    ck_assert_str_eq(dth_log, "r(fail:EIO) ");
    deferred_add_errback(d, dth_recover, NULL);
    deferred_unref(d);
}
END_TEST

static void must_not_cancel(deferred *d, void *arg) { ck_abort_msg("outer canceller called"); }
static deferred_result return_d(deferred_result r, void *d)
{
    deferred_result_clear(&r);
    return deferred_continue_with(deferred_ref(d));
}

START_TEST(test_cancelNestedDeferred)
{
    deferred *b = deferred_new_cancellable(count_canceller, &canceller_calls);
    deferred *a = deferred_new_cancellable(must_not_cancel, NULL);
    deferred_callback(a, deferred_none());
    deferred_add_callback(a, return_d, b);
    deferred_cancel(a);
    deferred_add_callbacks(a, dth_record, dth_record, "a");
    ck_assert_int_eq(canceller_calls, 1);
    ck_assert_str_eq(dth_log, "a(fail:ECANCELED) ");
    deferred_add_errback(a, dth_recover, NULL);
    deferred_unref(a);
    deferred_unref(b);
}
END_TEST

/* ---- A15 ------------------------------------------------------------------------------ */

START_TEST(test_raisesAfterCancelAndCallback)
{
    deferred *d = deferred_new();
    deferred_add_callbacks(d, dth_record, dth_record, "r");
    deferred_cancel(d);
    ck_assert_int_eq(deferred_callback(d, deferred_none()), 0); /* swallowed once */
    ck_assert_int_eq(deferred_callback(d, deferred_none()), -EALREADY);
    ck_assert_int_eq(deferred_errback_new(d, EIO, "x"), -EALREADY);
    ck_assert_str_eq(dth_log, "r(fail:ECANCELED) ");
    deferred_add_errback(d, dth_recover, NULL);
    deferred_unref(d);
}
END_TEST

START_TEST(test_raisesAfterCancelAndErrback)
{
    deferred *d = deferred_new();
    deferred_add_errback(d, dth_recover, NULL);
    deferred_cancel(d);
    ck_assert_int_eq(deferred_errback_new(d, EIO, "x"), 0); /* swallowed once */
    ck_assert_int_eq(deferred_callback(d, deferred_none()), -EALREADY);
    ck_assert_int_eq(deferred_errback_new(d, EIO, "x"), -EALREADY);
    deferred_unref(d);
    ck_assert_int_eq(dth_reports, 0);
}
END_TEST

START_TEST(test_noCancellerMultipleCancelsAfterCancelAndCallback)
{
    deferred *d = deferred_new();
    deferred_result got = deferred_none();
    deferred_add_errback(d, dth_store, &got);
    deferred_cancel(d);
    deferred_failure *first = got.u.failure;
    deferred_callback(d, deferred_none());
    deferred_cancel(d);
    ck_assert_ptr_eq(got.u.failure, first);
    deferred_result_clear(&got);
    deferred_unref(d);
}
END_TEST

START_TEST(test_noCancellerMultipleCancelsAfterCancelAndErrback)
{
    deferred *d = deferred_new();
    deferred_result got = deferred_none();
    deferred_add_errback(d, dth_store, &got);
    deferred_cancel(d);
    deferred_failure *first = got.u.failure;
    deferred_errback_new(d, EIO, "late");
    deferred_cancel(d);
    ck_assert_ptr_eq(got.u.failure, first);
    ck_assert_int_eq(first->code, ECANCELED);
    deferred_result_clear(&got);
    deferred_unref(d);
}
END_TEST

/* A cancelled request whose producer and consumer both let go is freed (leak-free). */
static int arg_frees;
static void count_arg_free(void *p) { arg_frees++; }
START_TEST(test_cancelledDeferredFreed)
{
    arg_frees = 0;
    deferred *d = deferred_new();
    deferred_set_canceller(d, count_canceller, &canceller_calls, count_arg_free);
    deferred_add_errback(d, dth_recover, NULL);
    deferred *consumer = deferred_ref(d);
    deferred_cancel(consumer);
    deferred_unref(consumer);
    ck_assert_int_eq(deferred_callback(d, deferred_none()), -EALREADY);
    deferred_unref(d);
    ck_assert_int_eq(arg_frees, 1);
    ck_assert_int_eq(deferred_set_canceller(NULL, NULL, NULL, NULL), -EINVAL);
}
END_TEST

/* ---- A16: timeouts -------------------------------------------------------------------- */

static reactor *rx;

static void setup_reactor(void)
{
    setup();
    rx = reactor_new();
    ck_assert_ptr_nonnull(rx);
    ck_assert_int_eq(reactor_use_fake_clock(rx, 0), 0);
}

static void teardown_reactor(void)
{
    reactor_free(rx);
    rx = NULL;
    dth_teardown();
}

static deferred_result override(deferred_result r, double timeout, void *arg)
{
    deferred_result_clear(&r);
    return deferred_str("OVERRIDDEN", NULL);
}

static deferred_timeout_fn custom(int i) { return i ? override : NULL; }

START_TEST(test_timeoutChainable)
{
    deferred *d = deferred_new();
    ck_assert_ptr_eq(deferred_add_timeout(d, rx, 5, NULL, NULL), d);
    deferred_add_callback(d, dth_recover, (void *)(intptr_t)1);
    deferred_add_callback(d, dth_record, "done");
    deferred_callback(d, deferred_none());
    ck_assert_str_eq(dth_log, "done(int:1) ");
    ck_assert_uint_eq(reactor_pending_timers(rx), 0); /* the timer was cancelled */
    deferred_unref(d);
}
END_TEST

static deferred_result record_then_wait(deferred_result r, void *inner)
{
    dth_record(r, "cb");
    deferred_result_clear(&r);
    return deferred_continue_with(deferred_ref(inner));
}

START_TEST(test_successResultBeforeTimeout)
{
    /* _i: 0 default, 1 custom onTimeoutCancel. */
    deferred *d = deferred_new();
    deferred_add_timeout(d, rx, 10, custom(_i), NULL);
    deferred *inner = deferred_new();
    deferred_add_callback(d, record_then_wait, inner);
    deferred_callback(d, deferred_str("results", NULL));
    ck_assert_str_eq(dth_log, "cb(str:results) ");
    reactor_advance(rx, 15);
    ck_assert(!deferred_called(inner)); /* the timeout did not cancel what came after */
    deferred_unref(inner);
    deferred_unref(d);
}
END_TEST

START_TEST(test_failureBeforeTimeout)
{
    deferred *d = deferred_new();
    deferred_add_timeout(d, rx, 10, custom(_i), NULL);
    deferred *inner = deferred_new();
    deferred_add_errback(d, record_then_wait, inner);
    deferred_errback_new(d, EINVAL, "fail");
    ck_assert_str_eq(dth_log, "cb(fail:EINVAL) ");
    reactor_advance(rx, 15);
    ck_assert(!deferred_called(inner));
    deferred_unref(inner);
    deferred_unref(d);
}
END_TEST

START_TEST(test_timedOut)
{
    deferred *d = deferred_new();
    deferred_add_timeout(d, rx, 10, NULL, NULL);
    ck_assert(!deferred_called(d));
    reactor_advance(rx, 9.5);
    ck_assert(!deferred_called(d));
    reactor_advance(rx, 1);
    const deferred_result *r = deferred_peek_result(d);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(deferred_result_code(r), ETIMEDOUT);
    ck_assert_str_eq(r->u.failure->message, "Deferred timed out after 10 seconds");
    deferred_add_errback(d, dth_recover, NULL);
    deferred_unref(d);
}
END_TEST

START_TEST(test_timedOutCustom)
{
    deferred *d = deferred_new();
    deferred_add_timeout(d, rx, 10, override, NULL);
    reactor_advance(rx, 15);
    deferred_add_callback(d, dth_record, "r");
    ck_assert_str_eq(dth_log, "r(str:OVERRIDDEN) ");
    deferred_unref(d);
}
END_TEST

START_TEST(test_timedOutProvidedCancelSuccess)
{
    deferred *d = deferred_new_cancellable(callback_canceller, "I was cancelled!");
    deferred_add_timeout(d, rx, 10, NULL, NULL);
    reactor_advance(rx, 15);
    deferred_add_callback(d, dth_record, "r");
    ck_assert_str_eq(dth_log, "r(str:I was cancelled!) ");
    deferred_unref(d);
}
END_TEST

START_TEST(test_timedOutProvidedCancelFailure)
{
    deferred *d = deferred_new_cancellable(errback_canceller, NULL);
    deferred_add_timeout(d, rx, 10, NULL, NULL);
    reactor_advance(rx, 15);
    deferred_add_errback(d, dth_record, "r");
    ck_assert_str_eq(dth_log, "r(fail:EPROTO) "); /* not turned into a timeout */
    deferred_add_errback(d, dth_recover, NULL);
    deferred_unref(d);
}
END_TEST

START_TEST(test_providedCancelCalledBeforeTimeoutCustom)
{
    deferred *d = deferred_new_cancellable(errback_canceller, NULL);
    deferred_add_timeout(d, rx, 10, override, NULL);
    reactor_advance(rx, 15);
    deferred_add_callback(d, dth_record, "r");
    ck_assert_str_eq(dth_log, "r(str:OVERRIDDEN) ");
    deferred_unref(d);
}
END_TEST

START_TEST(test_cancelBeforeTimeout)
{
    deferred *d = deferred_new();
    deferred_add_timeout(d, rx, 10, custom(_i), NULL);
    deferred *inner = deferred_new();
    deferred_add_errback(d, record_then_wait, inner);
    deferred_cancel(d);
    ck_assert_str_eq(dth_log, "cb(fail:ECANCELED) "); /* stays CancelledError */
    reactor_advance(rx, 15);
    ck_assert(!deferred_called(inner));
    deferred_unref(inner);
    deferred_unref(d);
}
END_TEST

START_TEST(test_errbackAddedBeforeTimeout)
{
    deferred *d = deferred_new();
    deferred_add_errback(d, dth_record, "before");
    deferred_add_timeout(d, rx, 10, custom(_i), NULL);
    reactor_advance(rx, 15);
    ck_assert_str_eq(dth_log, "before(fail:ECANCELED) ");
    deferred_add_callbacks(d, dth_record, dth_record, "after");
    ck_assert_str_eq(dth_log, _i ? "before(fail:ECANCELED) after(str:OVERRIDDEN) "
                                 : "before(fail:ECANCELED) after(fail:ETIMEDOUT) ");
    deferred_add_errback(d, dth_recover, NULL);
    deferred_unref(d);
}
END_TEST

static deferred_result swallow(deferred_result r, void *arg)
{
    dth_record(r, "eb");
    deferred_result_clear(&r);
    return deferred_none();
}

START_TEST(test_errbackAddedBeforeTimeoutSuppressesCancellation)
{
    deferred *d = deferred_new();
    deferred_add_errback(d, swallow, NULL);
    deferred_add_timeout(d, rx, 10, custom(_i), NULL);
    reactor_advance(rx, 15);
    deferred_add_callbacks(d, dth_record, dth_record, "after");
    ck_assert_str_eq(dth_log, _i ? "eb(fail:ECANCELED) after(str:OVERRIDDEN) "
                                 : "eb(fail:ECANCELED) after(none) ");
    deferred_unref(d);
}
END_TEST

START_TEST(test_callbackAddedToCancelerBeforeTimeout)
{
    deferred *d = deferred_new_cancellable(callback_canceller, "success");
    deferred_add_callback(d, dth_record, "cb");
    deferred_add_timeout(d, rx, 10, custom(_i), NULL);
    reactor_advance(rx, 15);
    deferred_add_callback(d, dth_record, "after");
    ck_assert_str_eq(dth_log, _i ? "cb(str:success) after(str:OVERRIDDEN) "
                                 : "cb(str:success) after(str:success) ");
    deferred_unref(d);
}
END_TEST

/* Twisted's clock keeps the Deferred alive through the delayed call: so do we. */
START_TEST(test_timeoutKeepsDeferredAlive)
{
    deferred *d = deferred_new();
    deferred_add_timeout(d, rx, 1, NULL, NULL);
    deferred_add_errback(d, dth_record, "eb");
    deferred_add_errback(d, dth_recover, NULL);
    deferred_unref(d); /* fire and forget */
    reactor_advance(rx, 2);
    ck_assert_str_eq(dth_log, "eb(fail:ETIMEDOUT) ");
}
END_TEST

/* Freeing the reactor with a timeout pending drops its reference; nothing leaks and
 * the Deferred stays usable. */
START_TEST(test_reactorFreedBeforeTimeout)
{
    reactor *r2 = reactor_new();
    ck_assert_ptr_nonnull(r2);
    deferred *d = deferred_new();
    deferred_add_timeout(d, r2, 10, NULL, NULL);
    deferred *e = deferred_new();
    deferred_add_timeout(e, r2, 10, NULL, NULL);
    deferred_unref(e); /* only the timeout holds e */
    ck_assert_uint_eq(deferred_refcount(d), 2);
    reactor_free(r2);
    ck_assert_uint_eq(deferred_refcount(d), 1);
    deferred_callback(d, deferred_int(1));
    deferred_unref(d);
    ck_assert_ptr_null(deferred_add_timeout(NULL, rx, 1, NULL, NULL));
    ck_assert_int_eq(errno, EINVAL);
}
END_TEST

extern Suite *suite_deferred_cancel(void);
Suite *suite_deferred_cancel(void)
{
    Suite *s = suite_create("deferred_cancel");
    TCase *tc = tcase_create("cancel");
    tcase_add_checked_fixture(tc, setup, dth_teardown);
    tcase_add_test(tc, test_noCanceller);
    tcase_add_test(tc, test_simpleCanceller);
    tcase_add_test(tc, test_cancellerArg);
    tcase_add_test(tc, test_cancellerThatCallbacks);
    tcase_add_test(tc, test_cancellerThatErrbacks);
    tcase_add_test(tc, test_cancellerMultipleCancel);
    tcase_add_test(tc, test_noCancellerMultipleCancel);
    tcase_add_test(tc, test_cancelAfterCallback);
    tcase_add_test(tc, test_cancelAfterErrback);
    tcase_add_test(tc, test_cancelNestedDeferred);
    tcase_add_test(tc, test_raisesAfterCancelAndCallback);
    tcase_add_test(tc, test_raisesAfterCancelAndErrback);
    tcase_add_test(tc, test_noCancellerMultipleCancelsAfterCancelAndCallback);
    tcase_add_test(tc, test_noCancellerMultipleCancelsAfterCancelAndErrback);
    tcase_add_test(tc, test_cancelledDeferredFreed);
    suite_add_tcase(s, tc);

    tc = tcase_create("timeout");
    tcase_add_checked_fixture(tc, setup_reactor, teardown_reactor);
    tcase_add_test(tc, test_timeoutChainable);
    tcase_add_loop_test(tc, test_successResultBeforeTimeout, 0, 2);
    tcase_add_loop_test(tc, test_failureBeforeTimeout, 0, 2);
    tcase_add_test(tc, test_timedOut);
    tcase_add_test(tc, test_timedOutCustom);
    tcase_add_test(tc, test_timedOutProvidedCancelSuccess);
    tcase_add_test(tc, test_timedOutProvidedCancelFailure);
    tcase_add_test(tc, test_providedCancelCalledBeforeTimeoutCustom);
    tcase_add_loop_test(tc, test_cancelBeforeTimeout, 0, 2);
    tcase_add_loop_test(tc, test_errbackAddedBeforeTimeout, 0, 2);
    tcase_add_loop_test(tc, test_errbackAddedBeforeTimeoutSuppressesCancellation, 0, 2);
    tcase_add_loop_test(tc, test_callbackAddedToCancelerBeforeTimeout, 0, 2);
    tcase_add_test(tc, test_timeoutKeepsDeferredAlive);
    tcase_add_test(tc, test_reactorFreedBeforeTimeout);
    suite_add_tcase(s, tc);
    return s;
}
