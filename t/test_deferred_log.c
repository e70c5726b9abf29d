/* Unhandled failures (spec A18) and debug mode (A19). The reporting hook is captured by
 * the fixture (deferred_helpers.c), so nothing reaches stderr. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <twistc/deferred.h>
#include <twistc/reactor.h>

#include "deferred_helpers.h"

/* LogTests.test_errorLog: a Deferred freed while holding a failure is reported once,
 * with its message, where the Deferred was made and where it failed. */
START_TEST(test_errorLog)
{
    int made = __LINE__ + 1;
    deferred *d = deferred_new();
    deferred_add_callback(d, dth_record, "cb");
    int failed = __LINE__ + 1;
    deferred_errback_new(d, ECONNREFUSED, "no server on port %d", 1234);
    ck_assert_int_eq(dth_reports, 0); /* not before the free */
    deferred_unref(d);
    ck_assert_int_eq(dth_reports, 1);
    ck_assert_int_eq(dth_report_kind, DEFERRED_REPORT_UNHANDLED);
    ck_assert_int_eq(dth_report_code, ECONNREFUSED);
    ck_assert_int_eq(dth_report_created_line, made);
    ck_assert_int_eq(dth_report_fired_line, failed);
    ck_assert_ptr_nonnull(strstr(dth_report_text, "Unhandled error in Deferred"));
    ck_assert_ptr_nonnull(strstr(dth_report_text, "no server on port 1234"));
    ck_assert_ptr_nonnull(strstr(dth_report_text, "test_deferred_log.c"));
}
END_TEST

/* A failure raised by a callback (Twisted: an exception in a frame) is reported with
 * the callback's file:line as where it failed. */
static int raise_line;
static deferred_result raising(deferred_result r, void *arg)
{
    deferred_result_clear(&r);
    raise_line = __LINE__ + 1;
    return deferred_error(EPROTO, "bad reply");
}
START_TEST(test_errorLogWithInnerFrameRef)
{
    deferred *d = deferred_new();
    deferred_add_callback(d, raising, NULL);
    deferred_callback(d, deferred_int(1));
    deferred_unref(d);
    ck_assert_int_eq(dth_reports, 1);
    char where[64];
    snprintf(where, sizeof where, "test_deferred_log.c:%d", raise_line);
    ck_assert_ptr_nonnull(strstr(dth_report_text, where));
}
END_TEST

/* A Deferred that holds itself alive through its own callback argument (Twisted's
 * cycle case) still reports once its last reference goes. */
static deferred_result keep_self(deferred_result r, void *arg) { return r; }
static void unref_arg(void *d) { deferred_unref(d); }
START_TEST(test_errorLogWithInnerFrameCycle)
{
    deferred *d = deferred_new();
    deferred_add_callbacks_full(d, keep_self, NULL, deferred_ref(d), unref_arg);
    deferred_errback_new(d, EIO, "cycle");
    deferred_unref(d); /* the pair ran and released its reference: freed now */
    ck_assert_int_eq(dth_reports, 1);
}
END_TEST

START_TEST(test_errorLogNoRepr)
{
    /* A failure with no message (fmt NULL) still reports something readable. */
    deferred *d = deferred_fail(deferred_failure_new(ETIMEDOUT, NULL));
    deferred_unref(d);
    ck_assert_int_eq(dth_reports, 1);
    ck_assert_ptr_nonnull(strstr(dth_report_text, "ETIMEDOUT"));
}
END_TEST

START_TEST(test_errorLogDebugInfo)
{
    deferred_set_debugging(1);
    deferred *d = deferred_new();
    deferred_errback_new(d, EIO, "with debug");
    deferred_unref(d);
    deferred_set_debugging(0);
    ck_assert_int_eq(dth_reports, 1);
    ck_assert_ptr_nonnull(strstr(dth_report_text, "created at"));
    ck_assert_ptr_nonnull(strstr(dth_report_text, "first fired at"));
#if defined(__GLIBC__)
    ck_assert_ptr_nonnull(strstr(dth_report_text, "created (debug backtrace)"));
#endif
}
END_TEST

/* Handled failures are never reported. */
START_TEST(test_handledFailureNotReported)
{
    deferred *d = deferred_new();
    deferred_add_errback(d, dth_recover, NULL);
    deferred_errback_new(d, EIO, "handled");
    deferred_unref(d);
    /* taken out with deferred_take_result: handled too */
    d = deferred_fail(deferred_failure_new(EIO, "taken"));
    deferred_result r;
    ck_assert_int_eq(deferred_take_result(d, &r), 0);
    deferred_result_clear(&r);
    deferred_unref(d);
    ck_assert_int_eq(dth_reports, 0);
    ck_assert_uint_eq(deferred_live_failures(), 0);
}
END_TEST

/* The live list: Deferreds alive with a failure can be listed at any time, and are not
 * reported a second time when freed. */
START_TEST(test_reportLive)
{
    /* The list is process-wide: count relative to what earlier tests left (should be 0
     * when they free everything, but that is their business). */
    size_t base = deferred_live_failures();
    deferred *a = deferred_fail(deferred_failure_new(EIO, "a"));
    deferred *b = deferred_fail(deferred_failure_new(EPIPE, "b"));
    deferred *ok = deferred_succeed(deferred_int(1));
    ck_assert_uint_eq(deferred_live_failures(), base + 2);
    ck_assert_uint_eq(deferred_report_live(), base + 2);
    ck_assert_int_eq(dth_reports, (int)base + 2);
    ck_assert_int_eq(dth_report_kind, DEFERRED_REPORT_LIVE);
    ck_assert_uint_eq(deferred_live_failures(), 0);
    ck_assert_uint_eq(deferred_report_live(), 0);
    deferred_unref(a);
    deferred_unref(b);
    deferred_unref(ok);
    ck_assert_int_eq(dth_reports, (int)base + 2); /* not again */
    /* A failure that gets handled leaves the list. */
    deferred *c = deferred_fail(deferred_failure_new(EIO, "c"));
    ck_assert_uint_eq(deferred_live_failures(), 1);
    deferred_add_errback(c, dth_recover, NULL);
    ck_assert_uint_eq(deferred_live_failures(), 0);
    deferred_unref(c);
}
END_TEST

/* Every reactor reports, after its shutdown, Deferreds still holding a failure: nothing
 * to install. */
static void stop_now(reactor *r, void *data) { reactor_stop(r); }
START_TEST(test_reactorShutdownReportsLive)
{
    reactor *r = reactor_new();
    ck_assert_ptr_nonnull(r);
    size_t base = deferred_live_failures();
    deferred *d = deferred_fail(deferred_failure_new(ECONNRESET, "forgotten"));
    reactor_call_later(r, 0, stop_now, NULL);
    ck_assert_int_eq(reactor_run(r), 0);
    ck_assert_int_eq(dth_reports, (int)base + 1);
    ck_assert_int_eq(dth_report_kind, DEFERRED_REPORT_LIVE);
    ck_assert_ptr_nonnull(strstr(dth_report_text, "still alive"));
    ck_assert_ptr_nonnull(strstr(dth_report_text, "forgotten"));
    reactor_free(r);
    deferred_unref(d);
    ck_assert_int_eq(dth_reports, (int)base + 1);
}
END_TEST

/* ---- A19: debugging ---------------------------------------------------------------------- */

static void already_called_debug(int first_err, int second_err)
{
    deferred_set_debugging(1);
    ck_assert_int_eq(deferred_get_debugging(), 1);
    deferred *d = deferred_new();
    deferred_add_errback(d, dth_recover, NULL);
    int first = __LINE__ + 1;
    int rc = first_err ? deferred_errback_new(d, EIO, "1") : deferred_callback(d, deferred_int(1));
    ck_assert_int_eq(rc, 0);
    int again = __LINE__ + 1;
    rc = second_err ? deferred_errback_new(d, EIO, "2") : deferred_callback(d, deferred_int(2));
    ck_assert_int_eq(rc, -EALREADY);
    ck_assert_int_eq(dth_reports, 1);
    ck_assert_int_eq(dth_report_kind, DEFERRED_REPORT_ALREADY_CALLED);
    ck_assert_int_eq(dth_report_fired_line, first);
    char where[64];
    snprintf(where, sizeof where, "fired again at %s:%d", __FILE__, again);
    ck_assert_ptr_nonnull(strstr(dth_report_text, where));
    deferred_unref(d);
}

START_TEST(test_testAlreadyCalledDebug_CC) { already_called_debug(0, 0); }
END_TEST
START_TEST(test_testAlreadyCalledDebug_CE) { already_called_debug(0, 1); }
END_TEST
START_TEST(test_testAlreadyCalledDebug_EC) { already_called_debug(1, 0); }
END_TEST
START_TEST(test_testAlreadyCalledDebug_EE) { already_called_debug(1, 1); }
END_TEST

START_TEST(test_testNoDebugging)
{
    deferred_set_debugging(0);
    deferred *d = deferred_new();
    deferred_callback(d, deferred_none());
    ck_assert_int_eq(deferred_callback(d, deferred_none()), -EALREADY);
    ck_assert_int_eq(dth_reports, 0); /* only the return code */
    deferred_unref(d);
}
END_TEST

START_TEST(test_testSwitchDebugging)
{
    deferred_set_debugging(1);
    deferred *d = deferred_new();
    deferred_set_debugging(0);
    deferred_callback(d, deferred_none());
    deferred_set_debugging(1);
    ck_assert_int_eq(deferred_callback(d, deferred_none()), -EALREADY);
    ck_assert_int_eq(dth_reports, 1);
    deferred_set_debugging(0);
    deferred_unref(d);
    /* Sites are recorded whether or not debugging is on. */
    const char *cf, *ff;
    int cl, fl;
    d = deferred_new();
    deferred_sites(d, &cf, &cl, &ff, &fl);
    ck_assert_ptr_nonnull(strstr(cf, "test_deferred_log.c"));
    ck_assert_ptr_null(ff);
    deferred_callback(d, deferred_none());
    deferred_sites(d, NULL, NULL, &ff, &fl);
    ck_assert_ptr_nonnull(ff);
    ck_assert_int_eq(fl, __LINE__ - 3);
    deferred_unref(d);
}
END_TEST

/* The default hook writes one block to the FILE given as its argument. */
START_TEST(test_defaultReportFormat)
{
    char buf[1024];
    FILE *m = fmemopen(buf, sizeof buf, "w");
    void *old_arg = NULL;
    deferred_report_hook old = deferred_set_unhandled_hook(deferred_default_report, m, &old_arg);
    ck_assert_ptr_nonnull(old);
    deferred *d = deferred_new();
    deferred_errback(d, deferred_failure_wrap(deferred_failure_new(ECONNREFUSED, "connect"), EIO,
                                              "fetching"));
    deferred_unref(d);
    fclose(m);
    deferred_set_unhandled_hook(old, old_arg, NULL);
    ck_assert_ptr_nonnull(strstr(buf, "Unhandled error in Deferred (freed while holding a failure):\n"
                                      "  created at "));
    ck_assert_ptr_nonnull(strstr(buf, "  failure: fetching (EIO, 5) at "));
    ck_assert_ptr_nonnull(strstr(buf, "  caused by: connect (ECONNREFUSED, 111) at "));
}
END_TEST

extern Suite *suite_deferred_log(void);
Suite *suite_deferred_log(void)
{
    Suite *s = suite_create("deferred_log");
    TCase *tc = tcase_create("unhandled");
    dth_fixture(tc);
    tcase_add_test(tc, test_errorLog);
    tcase_add_test(tc, test_errorLogWithInnerFrameRef);
    tcase_add_test(tc, test_errorLogWithInnerFrameCycle);
    tcase_add_test(tc, test_errorLogNoRepr);
    tcase_add_test(tc, test_errorLogDebugInfo);
    tcase_add_test(tc, test_handledFailureNotReported);
    tcase_add_test(tc, test_reportLive);
    tcase_add_test(tc, test_reactorShutdownReportsLive);
    tcase_add_test(tc, test_defaultReportFormat);
    suite_add_tcase(s, tc);

    tc = tcase_create("debugging");
    dth_fixture(tc);
    tcase_add_test(tc, test_testAlreadyCalledDebug_CC);
    tcase_add_test(tc, test_testAlreadyCalledDebug_CE);
    tcase_add_test(tc, test_testAlreadyCalledDebug_EC);
    tcase_add_test(tc, test_testAlreadyCalledDebug_EE);
    tcase_add_test(tc, test_testNoDebugging);
    tcase_add_test(tc, test_testSwitchDebugging);
    suite_add_tcase(s, tc);
    return s;
}
