/* DeferredList and gather (spec A20-A22). Test names follow Twisted's test_defer.py. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <twistc/deferred.h>

#include "deferred_helpers.h"

/* Twisted's fakeCallbackCanceller. */
static void fake_callback_canceller(deferred *d, void *arg)
{
    deferred_callback(d, deferred_str("Callback Result", NULL));
}

/* The list's result, moved out of d; fails the test if d has none. */
static deferred_result take(deferred *d)
{
    deferred_result r = deferred_none();
    ck_assert_int_eq(deferred_take_result(d, &r), 0);
    return r;
}

/* "ok:str:1 fail:EIO ..." for a list result. */
static const char *describe(const deferred_result *r)
{
    static char out[512];
    char b[128];
    deferred_list_result *lr = deferred_list_result_of(r);
    ck_assert_ptr_nonnull(lr);
    out[0] = '\0';
    for (size_t i = 0; i < lr->count; i++) {
        size_t len = strlen(out);
        snprintf(out + len, sizeof out - len, "%s%s:%s", i ? " " : "", lr->items[i].ok ? "ok" : "no",
                 dth_desc(&lr->items[i].result, b, sizeof b));
    }
    return out;
}

/* Makes a failed input's own failure handled (Twisted's failureResultOf). */
static void handle(deferred *d, int code)
{
    deferred_result r = take(d);
    ck_assert_int_eq(deferred_result_code(&r), code);
    deferred_result_clear(&r);
}

START_TEST(test_testDeferredList)
{
    deferred *d[3] = {deferred_new(), deferred_new(), deferred_new()};
    deferred *dl = deferred_list_new(d, 3, 0);
    ck_assert_ptr_nonnull(dl);
    deferred_callback(d[0], deferred_str("1", NULL));
    deferred_add_errback(d[1], dth_recover, NULL); /* catch */
    deferred_errback_new(d[1], EPROTO, "2");
    ck_assert(!deferred_called(dl));
    deferred_callback(d[2], deferred_str("3", NULL));
    ck_assert(deferred_called(dl));
    deferred_result r = take(dl);
    ck_assert_str_eq(describe(&r), "ok:str:1 no:fail:EPROTO ok:str:3");
    ck_assert_str_eq(deferred_list_result_of(&r)->items[1].result.u.failure->message, "2");
    deferred_result_clear(&r);
    for (int i = 0; i < 3; i++)
        deferred_unref(d[i]);
    deferred_unref(dl);
    ck_assert_int_eq(dth_reports, 0);
}
END_TEST

START_TEST(test_testEmptyDeferredList)
{
    deferred *dl1 = deferred_list_new(NULL, 0, 0);
    ck_assert(deferred_called(dl1));
    deferred_result r = take(dl1);
    ck_assert_uint_eq(deferred_list_result_of(&r)->count, 0);
    deferred_result_clear(&r);
    deferred_unref(dl1);

    deferred *dl2 = deferred_list_new(NULL, 0, DEFERRED_LIST_FIRE_ON_ONE_CALLBACK);
    deferred_add_callback(dl2, dth_record, "never");
    ck_assert(!deferred_called(dl2)); /* never fires */
    ck_assert_str_eq(dth_log, "");
    deferred_unref(dl2);
}
END_TEST

/* DeferredListEmptyTests.testDeferredListEmpty */
START_TEST(test_testDeferredListEmpty)
{
    deferred *dl = deferred_list_new(NULL, 0, 0);
    deferred_add_callback(dl, dth_record, "ran");
    ck_assert_str_eq(dth_log, "ran(ptr) ");
    deferred_unref(dl);
}
END_TEST

START_TEST(test_testDeferredListFireOnOneError)
{
    deferred *d[3] = {deferred_new(), deferred_new(), deferred_new()};
    deferred *dl = deferred_list_new(d, 3, DEFERRED_LIST_FIRE_ON_ONE_ERRBACK);
    deferred_result got = deferred_none();
    deferred_add_errback(dl, dth_store, &got);
    deferred_add_errback(d[1], dth_recover, NULL);
    deferred_callback(d[0], deferred_str("1", NULL));
    ck_assert_int_eq(got.kind, DEFERRED_NONE);
    deferred_errback_new(d[1], EPROTO, "from def2");
    ck_assert_int_eq(got.kind, DEFERRED_FAILURE);
    deferred_failure *f = got.u.failure;
    ck_assert_int_eq(f->code, DEFERRED_EFIRST);
    ck_assert_int_eq(f->index, 1);
    ck_assert_ptr_nonnull(f->cause);
    ck_assert_int_eq(f->cause->code, EPROTO);
    ck_assert_str_eq(f->cause->message, "from def2");
    /* The other inputs keep running; their results do not fire the list again. */
    deferred_errback_new(d[2], EIO, "later");
    handle(d[2], EIO);
    deferred_result_clear(&got);
    for (int i = 0; i < 3; i++)
        deferred_unref(d[i]);
    deferred_unref(dl);
    ck_assert_int_eq(dth_reports, 0);
}
END_TEST

START_TEST(test_testDeferredListDontConsumeErrors)
{
    deferred *d1 = deferred_new();
    deferred *dl = deferred_list_new(&d1, 1, 0);
    deferred_add_errback(d1, dth_record, "errorTrap");
    deferred_add_errback(d1, dth_recover, NULL);
    deferred_errback_new(d1, EPROTO, "Bang");
    ck_assert_str_eq(dth_log, "errorTrap(fail:EPROTO) ");
    deferred_result r = take(dl);
    ck_assert_str_eq(deferred_list_result_of(&r)->items[0].result.u.failure->message, "Bang");
    deferred_result_clear(&r);
    deferred_unref(d1);
    deferred_unref(dl);
}
END_TEST

START_TEST(test_testDeferredListConsumeErrors)
{
    deferred *d1 = deferred_new();
    deferred *dl = deferred_list_new(&d1, 1, DEFERRED_LIST_CONSUME_ERRORS);
    deferred_add_callbacks(d1, dth_record, dth_record, "d1");
    deferred_errback_new(d1, EPROTO, "Bang");
    ck_assert_str_eq(dth_log, "d1(none) "); /* the failure was replaced by NONE */
    deferred_result r = take(dl);
    ck_assert_str_eq(deferred_list_result_of(&r)->items[0].result.u.failure->message, "Bang");
    deferred_result_clear(&r);
    deferred_unref(d1);
    deferred_unref(dl);
    ck_assert_int_eq(dth_reports, 0); /* nothing unhandled */
}
END_TEST

START_TEST(test_testDeferredListFireOnOneErrorWithAlreadyFiredDeferreds)
{
    deferred *d1 = deferred_new();
    deferred *d2 = deferred_new();
    deferred_errback_new(d1, EPROTO, "Bang");
    deferred *ds[2] = {d1, d2};
    deferred *dl = deferred_list_new(ds, 2, DEFERRED_LIST_FIRE_ON_ONE_ERRBACK);
    deferred_add_errback(dl, dth_record, "dl");
    ck_assert_str_eq(dth_log, "dl(fail:FirstError) ");
    deferred_add_errback(dl, dth_recover, NULL);
    deferred_add_errback(d1, dth_recover, NULL);
    deferred_unref(d1);
    deferred_unref(d2);
    deferred_unref(dl);
    ck_assert_int_eq(dth_reports, 0);
}
END_TEST

START_TEST(test_testDeferredListWithAlreadyFiredDeferreds)
{
    deferred *d1 = deferred_new();
    deferred *d2 = deferred_new();
    deferred_errback_new(d1, EPROTO, "Bang");
    deferred_callback(d2, deferred_int(2));
    deferred *ds[2] = {d1, d2};
    deferred *dl = deferred_list_new(ds, 2, 0);
    ck_assert(deferred_called(dl));
    deferred_result r = take(dl);
    ck_assert_str_eq(describe(&r), "no:fail:EPROTO ok:int:2");
    deferred_result_clear(&r);
    deferred_add_errback(d1, dth_recover, NULL);
    deferred_unref(d1);
    deferred_unref(d2);
    deferred_unref(dl);
}
END_TEST

START_TEST(test_fireOnOneCallback)
{
    deferred *d[2] = {deferred_new(), deferred_new()};
    deferred *dl = deferred_list_new(d, 2, DEFERRED_LIST_FIRE_ON_ONE_CALLBACK);
    deferred_errback_new(d[0], EIO, "no");
    ck_assert(!deferred_called(dl));
    deferred_callback(d[1], deferred_str("yes", NULL));
    deferred_result r = take(dl);
    deferred_list_result *lr = deferred_list_result_of(&r);
    ck_assert_uint_eq(lr->index, 1); /* (value, index) */
    ck_assert_str_eq(describe(&r), "ok:str:yes");
    deferred_result_clear(&r);
    handle(d[0], EIO);
    deferred_unref(d[0]);
    deferred_unref(d[1]);
    deferred_unref(dl);
}
END_TEST

/* Values that own memory move into the list (the input sees NONE afterwards): freed
 * exactly once, by the list result. */
static int frees;
static void count_free(void *p)
{
    frees++;
    free(p);
}
START_TEST(test_ownedValuesMoveIntoList)
{
    frees = 0;
    deferred *d = deferred_new();
    deferred *dl = deferred_list_new(&d, 1, 0);
    deferred_callback(d, deferred_ptr(malloc(4), count_free));
    deferred_add_callback(d, dth_record, "input");
    ck_assert_str_eq(dth_log, "input(none) ");
    deferred_unref(d);
    ck_assert_int_eq(frees, 0);
    deferred_unref(dl);
    ck_assert_int_eq(frees, 1);
}
END_TEST

/* The caller may drop the list right away: the inputs keep it alive until it fires. */
START_TEST(test_listKeptAliveByInputs)
{
    deferred *d[2] = {deferred_new(), deferred_new()};
    deferred *dl = deferred_list_new(d, 2, 0);
    deferred_add_callback(dl, dth_record, "list");
    deferred_unref(dl);
    deferred_callback(d[0], deferred_int(1));
    deferred_callback(d[1], deferred_int(2));
    ck_assert_str_eq(dth_log, "list(ptr) ");
    deferred_unref(d[0]);
    deferred_unref(d[1]);
}
END_TEST

/* Inputs that are dropped unfired release the list: no leak, no cycle. */
START_TEST(test_listFreedWithUnfiredInputs)
{
    deferred *d[2] = {deferred_new(), deferred_new()};
    deferred *dl = deferred_list_new(d, 2, 0);
    deferred_unref(dl);
    deferred_unref(d[0]);
    deferred_unref(d[1]);
    /* and the other order */
    d[0] = deferred_new();
    d[1] = deferred_new();
    dl = deferred_list_new(d, 2, 0);
    deferred_unref(d[0]);
    deferred_unref(d[1]);
    ck_assert(!deferred_called(dl));
    deferred_unref(dl);
    ck_assert_ptr_null(deferred_list_new(NULL, 2, 0));
    ck_assert_int_eq(errno, EINVAL);
}
END_TEST

/* ---- A21: cancel ----------------------------------------------------------------------- */

START_TEST(test_cancelDeferredListCallback)
{
    deferred *one = deferred_new_cancellable(fake_callback_canceller, NULL);
    deferred *two = deferred_new();
    deferred *ds[2] = {one, two};
    deferred *dl = deferred_list_new(ds, 2, 0);
    deferred_cancel(dl);
    handle(two, ECANCELED);
    deferred_result r = take(dl);
    ck_assert_str_eq(describe(&r), "ok:str:Callback Result no:fail:ECANCELED");
    deferred_result_clear(&r);
    deferred_unref(one);
    deferred_unref(two);
    deferred_unref(dl);
    ck_assert_int_eq(dth_reports, 0);
}
END_TEST

START_TEST(test_cancelDeferredListWithFireOnOneCallback)
{
    deferred *ds[2] = {deferred_new(), deferred_new()};
    deferred *dl = deferred_list_new(ds, 2, DEFERRED_LIST_FIRE_ON_ONE_CALLBACK);
    deferred_cancel(dl);
    handle(ds[0], ECANCELED);
    handle(ds[1], ECANCELED);
    deferred_result r = take(dl); /* every input done without a success: the list */
    ck_assert_str_eq(describe(&r), "no:fail:ECANCELED no:fail:ECANCELED");
    deferred_result_clear(&r);
    deferred_unref(ds[0]);
    deferred_unref(ds[1]);
    deferred_unref(dl);
}
END_TEST

START_TEST(test_cancelDeferredListWithFireOnOneCallbackAndDeferredCallback)
{
    deferred *ds[2] = {deferred_new_cancellable(fake_callback_canceller, NULL), deferred_new()};
    deferred *dl = deferred_list_new(ds, 2, DEFERRED_LIST_FIRE_ON_ONE_CALLBACK);
    deferred_cancel(dl);
    handle(ds[1], ECANCELED);
    deferred_result r = take(dl);
    ck_assert_uint_eq(deferred_list_result_of(&r)->index, 0);
    ck_assert_str_eq(describe(&r), "ok:str:Callback Result");
    deferred_result_clear(&r);
    deferred_unref(ds[0]);
    deferred_unref(ds[1]);
    deferred_unref(dl);
}
END_TEST

START_TEST(test_cancelDeferredListWithFireOnOneErrback)
{
    deferred *ds[2] = {deferred_new(), deferred_new()};
    deferred *dl = deferred_list_new(ds, 2, DEFERRED_LIST_FIRE_ON_ONE_ERRBACK);
    deferred_cancel(dl);
    handle(ds[0], ECANCELED);
    handle(ds[1], ECANCELED);
    deferred_result r = take(dl);
    ck_assert_int_eq(deferred_result_code(&r), DEFERRED_EFIRST);
    ck_assert_int_eq(r.u.failure->cause->code, ECANCELED);
    deferred_result_clear(&r);
    deferred_unref(ds[0]);
    deferred_unref(ds[1]);
    deferred_unref(dl);
}
END_TEST

START_TEST(test_cancelDeferredListWithFireOnOneErrbackAllDeferredsCallback)
{
    deferred *ds[2] = {deferred_new_cancellable(fake_callback_canceller, NULL),
                       deferred_new_cancellable(fake_callback_canceller, NULL)};
    deferred *dl = deferred_list_new(ds, 2, DEFERRED_LIST_FIRE_ON_ONE_ERRBACK);
    deferred_cancel(dl);
    deferred_result r = take(dl);
    ck_assert_str_eq(describe(&r), "ok:str:Callback Result ok:str:Callback Result");
    deferred_result_clear(&r);
    deferred_unref(ds[0]);
    deferred_unref(ds[1]);
    deferred_unref(dl);
}
END_TEST

START_TEST(test_cancelDeferredListWithOriginalDeferreds)
{
    deferred *args[3] = {deferred_new(), deferred_new(), NULL};
    deferred *dl = deferred_list_new(args, 2, 0);
    args[2] = deferred_new(); /* added to the caller's array afterwards: not cancelled */
    deferred_cancel(dl);
    handle(args[0], ECANCELED);
    handle(args[1], ECANCELED);
    ck_assert(!deferred_called(args[2]));
    for (int i = 0; i < 3; i++)
        deferred_unref(args[i]);
    deferred_result r = take(dl);
    deferred_result_clear(&r);
    deferred_unref(dl);
}
END_TEST

/* test_cancelDeferredListWithException: a C canceller cannot raise; the nearest case
 * is a canceller that does nothing, after which the input errbacks by itself and the
 * loop goes on with the next input. */
static void do_nothing_canceller(deferred *d, void *arg) {}
START_TEST(test_cancelDeferredListWithException)
{
    deferred *ds[2] = {deferred_new_cancellable(do_nothing_canceller, NULL), deferred_new()};
    deferred *dl = deferred_list_new(ds, 2, 0);
    deferred_cancel(dl);
    handle(ds[0], ECANCELED);
    handle(ds[1], ECANCELED);
    deferred_result r = take(dl);
    deferred_result_clear(&r);
    deferred_unref(ds[0]);
    deferred_unref(ds[1]);
    deferred_unref(dl);
}
END_TEST

START_TEST(test_cancelFiredOnOneCallbackDeferredList)
{
    deferred *ds[2] = {deferred_new(), deferred_new()};
    deferred *dl = deferred_list_new(ds, 2, DEFERRED_LIST_FIRE_ON_ONE_CALLBACK);
    deferred_callback(ds[0], deferred_none());
    deferred_cancel(dl); /* the list has fired: nothing */
    ck_assert(!deferred_called(ds[1]));
    deferred_unref(ds[0]);
    deferred_unref(ds[1]);
    deferred_unref(dl);
}
END_TEST

START_TEST(test_cancelFiredOnOneErrbackDeferredList)
{
    deferred *ds[2] = {deferred_new(), deferred_new()};
    deferred *dl = deferred_list_new(ds, 2, DEFERRED_LIST_FIRE_ON_ONE_ERRBACK);
    deferred_errback_new(ds[0], EPROTO, "test");
    deferred_cancel(dl);
    ck_assert(!deferred_called(ds[1]));
    handle(ds[0], EPROTO);
    handle(dl, DEFERRED_EFIRST);
    deferred_unref(ds[0]);
    deferred_unref(ds[1]);
    deferred_unref(dl);
}
END_TEST

/* ---- A22: gather ----------------------------------------------------------------------- */

START_TEST(test_gatherResults)
{
    deferred *ok[2] = {deferred_succeed(deferred_int(1)), deferred_succeed(deferred_int(2))};
    deferred *g = deferred_gather(ok, 2, 0);
    deferred_result r = take(g);
    ck_assert_str_eq(describe(&r), "ok:int:1 ok:int:2");
    deferred_result_clear(&r);
    deferred_unref(g);
    deferred_unref(ok[0]);
    deferred_unref(ok[1]);

    deferred *dl[2] = {deferred_succeed(deferred_int(1)),
                       deferred_fail(deferred_failure_new(EINVAL, "ValueError"))};
    g = deferred_gather(dl, 2, 0);
    deferred_add_errback(g, dth_record, "errors");
    ck_assert_str_eq(dth_log, "errors(fail:FirstError) ");
    deferred_add_errback(g, dth_recover, NULL);
    deferred_add_errback(dl[1], dth_recover, (void *)(intptr_t)1);
    deferred_unref(g);
    deferred_unref(dl[0]);
    deferred_unref(dl[1]);
    ck_assert_int_eq(dth_reports, 0);
}
END_TEST

START_TEST(test_gatherResultsWithConsumeErrors)
{
    deferred *ds[2] = {deferred_succeed(deferred_int(1)),
                       deferred_fail(deferred_failure_new(EIO, "oh noes"))};
    deferred *g = deferred_gather(ds, 2, 1);
    deferred_add_errback(ds[1], dth_record, "unconsumed");
    ck_assert_str_eq(dth_log, "");
    deferred_result r = take(g);
    ck_assert_int_eq(deferred_result_code(&r), DEFERRED_EFIRST);
    ck_assert_int_eq(deferred_failure_root(r.u.failure)->code, EIO);
    ck_assert_str_eq(r.u.failure->cause->message, "oh noes");
    deferred_result_clear(&r);
    deferred_unref(g);
    deferred_unref(ds[0]);
    deferred_unref(ds[1]);
    ck_assert_int_eq(dth_reports, 0);
}
END_TEST

START_TEST(test_cancelGatherResults)
{
    deferred *ds[2] = {deferred_new(), deferred_new()};
    deferred *g = deferred_gather(ds, 2, 0);
    deferred_cancel(g);
    handle(ds[0], ECANCELED);
    handle(ds[1], ECANCELED);
    deferred_result r = take(g);
    ck_assert_int_eq(deferred_result_code(&r), DEFERRED_EFIRST);
    ck_assert(deferred_failure_has_code(r.u.failure, ECANCELED));
    deferred_result_clear(&r);
    deferred_unref(ds[0]);
    deferred_unref(ds[1]);
    deferred_unref(g);
}
END_TEST

START_TEST(test_cancelGatherResultsWithAllDeferredsCallback)
{
    deferred *ds[2] = {deferred_new_cancellable(fake_callback_canceller, NULL),
                       deferred_new_cancellable(fake_callback_canceller, NULL)};
    deferred *g = deferred_gather(ds, 2, 0);
    deferred_cancel(g);
    deferred_result r = take(g);
    ck_assert_str_eq(describe(&r), "ok:str:Callback Result ok:str:Callback Result");
    deferred_result_clear(&r);
    deferred_unref(ds[0]);
    deferred_unref(ds[1]);
    deferred_unref(g);
}
END_TEST

extern Suite *suite_deferred_list(void);
Suite *suite_deferred_list(void)
{
    Suite *s = suite_create("deferred_list");
    TCase *tc = tcase_create("list");
    dth_fixture(tc);
    tcase_add_test(tc, test_testDeferredList);
    tcase_add_test(tc, test_testEmptyDeferredList);
    tcase_add_test(tc, test_testDeferredListEmpty);
    tcase_add_test(tc, test_testDeferredListFireOnOneError);
    tcase_add_test(tc, test_testDeferredListDontConsumeErrors);
    tcase_add_test(tc, test_testDeferredListConsumeErrors);
    tcase_add_test(tc, test_testDeferredListFireOnOneErrorWithAlreadyFiredDeferreds);
    tcase_add_test(tc, test_testDeferredListWithAlreadyFiredDeferreds);
    tcase_add_test(tc, test_fireOnOneCallback);
    tcase_add_test(tc, test_ownedValuesMoveIntoList);
    tcase_add_test(tc, test_listKeptAliveByInputs);
    tcase_add_test(tc, test_listFreedWithUnfiredInputs);
    suite_add_tcase(s, tc);

    tc = tcase_create("cancel");
    dth_fixture(tc);
    tcase_add_test(tc, test_cancelDeferredListCallback);
    tcase_add_test(tc, test_cancelDeferredListWithFireOnOneCallback);
    tcase_add_test(tc, test_cancelDeferredListWithFireOnOneCallbackAndDeferredCallback);
    tcase_add_test(tc, test_cancelDeferredListWithFireOnOneErrback);
    tcase_add_test(tc, test_cancelDeferredListWithFireOnOneErrbackAllDeferredsCallback);
    tcase_add_test(tc, test_cancelDeferredListWithOriginalDeferreds);
    tcase_add_test(tc, test_cancelDeferredListWithException);
    tcase_add_test(tc, test_cancelFiredOnOneCallbackDeferredList);
    tcase_add_test(tc, test_cancelFiredOnOneErrbackDeferredList);
    suite_add_tcase(s, tc);

    tc = tcase_create("gather");
    dth_fixture(tc);
    tcase_add_test(tc, test_gatherResults);
    tcase_add_test(tc, test_gatherResultsWithConsumeErrors);
    tcase_add_test(tc, test_cancelGatherResults);
    tcase_add_test(tc, test_cancelGatherResultsWithAllDeferredsCallback);
    suite_add_tcase(s, tc);
    return s;
}
