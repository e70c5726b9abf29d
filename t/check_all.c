/* The one Check runner: every suite of the t/ test files, found at build time (see Makefile).
 * Ends with Check's summary line; fails when a test fails or when no test ran.
 * CK_RUN_SUITE / CK_RUN_CASE / CK_INCLUDE_TAGS select tests as usual. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#define SUITE(name) Suite *name(void);
#include "suites.inc"
#undef SUITE

int main(void)
{
    /* SIGPIPE keeps its default on purpose: a send without MSG_NOSIGNAL must kill the
     * test that made it, so the suite catches it. */
    SRunner *sr = srunner_create(NULL);
#define SUITE(name) srunner_add_suite(sr, name());
#include "suites.inc"
#undef SUITE
    srunner_run_all(sr, CK_ENV);
    int ran = srunner_ntests_run(sr);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    if (ran == 0) {
        fprintf(stderr, "check_all: no test ran\n");
        return 1;
    }
    return failed == 0 ? 0 : 1;
}
