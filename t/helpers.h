/* Shared helpers of the Check suites. */
#ifndef TWISTC_T_HELPERS_H
#define TWISTC_T_HELPERS_H

#include <twistc/reactor.h>

/* The backends a per-backend test loops over: $REACTOR_BACKEND alone when set (so
 * .ci/run can run the suites once per backend), otherwise every available backend.
 * Use as tcase_add_loop_test(tc, test, 0, th_backend_count()) and th_reactor(_i). */
int th_backend_count(void);
const char *th_backend(int i);
/* A reactor on backend i; fails the test if it cannot be made. */
reactor *th_reactor(int i);

#endif
