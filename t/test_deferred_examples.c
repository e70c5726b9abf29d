/* Runs the Deferred examples of apps/ (deferred-*.c) inside the suite, so that they are
 * exercised in every CI mode (ASan, valgrind), not only built. Each example's main is
 * renamed at inclusion; their static names carry a per-example prefix so that they can
 * share this file. Their output goes to /dev/null. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int deferred_example_basics(void);
int deferred_example_chaining(void);
int deferred_example_cancel(void);
int deferred_example_list(void);
int deferred_example_unhandled(void);

#define main deferred_example_basics
#include "../apps/deferred-basics.c"
#undef main
#define main deferred_example_chaining
#include "../apps/deferred-chaining.c"
#undef main
#define main deferred_example_cancel
#include "../apps/deferred-cancel.c"
#undef main
#define main deferred_example_list
#include "../apps/deferred-list.c"
#undef main
#define main deferred_example_unhandled
#include "../apps/deferred-unhandled.c"
#undef main

static int run_quietly(int (*example)(void))
{
    fflush(stdout);
    int saved = dup(1);
    int devnull = open("/dev/null", O_WRONLY);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_ge(devnull, 0);
    dup2(devnull, 1);
    close(devnull);
    int rc = example();
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    return rc;
}

START_TEST(test_example_basics) { ck_assert_int_eq(run_quietly(deferred_example_basics), 0); }
END_TEST
START_TEST(test_example_chaining) { ck_assert_int_eq(run_quietly(deferred_example_chaining), 0); }
END_TEST
START_TEST(test_example_cancel) { ck_assert_int_eq(run_quietly(deferred_example_cancel), 0); }
END_TEST
START_TEST(test_example_list) { ck_assert_int_eq(run_quietly(deferred_example_list), 0); }
END_TEST
START_TEST(test_example_unhandled) { ck_assert_int_eq(run_quietly(deferred_example_unhandled), 0); }
END_TEST

extern Suite *suite_deferred_examples(void);
Suite *suite_deferred_examples(void)
{
    Suite *s = suite_create("deferred_examples");
    TCase *tc = tcase_create("apps");
    tcase_add_test(tc, test_example_basics);
    tcase_add_test(tc, test_example_chaining);
    tcase_add_test(tc, test_example_cancel);
    tcase_add_test(tc, test_example_list);
    tcase_add_test(tc, test_example_unhandled);
    suite_add_tcase(s, tc);
    return s;
}
