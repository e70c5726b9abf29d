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

/* ---- Bounded loop running (reactor tests) ----------------------------------------- */

/* Iterates r until *done becomes non-zero, at most max_seconds of reactor time (a safety
 * timer) and at most 100000 iterations. Returns 1 if *done was reached, 0 otherwise (the
 * caller asserts on it). Never sleeps except in the reactor's own poll. */
int th_iterate_until(reactor *r, const int *done, double max_seconds);
/* A timer function that sets *(int *)data = 1 (an iteration that ran a timer does not
 * block in its poll, so th_iterate_until sees the flag at once). */
void th_set_flag(reactor *r, void *data);
/* Runs exactly n iterations with a non-blocking poll each (max_wait 0). */
void th_iterate_n(reactor *r, int n);
/* A non-blocking, close-on-exec AF_UNIX socketpair; fails the test on error. */
void th_socketpair(int sv[2]);
