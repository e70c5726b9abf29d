/* Helpers of the deferred test suites (t/test_deferred_*.c): a text log the callbacks
 * append to, ready-made callbacks, and a captured unhandled-failure hook so the tests
 * check reports instead of printing them. */
#ifndef TWISTC_T_DEFERRED_HELPERS_H
#define TWISTC_T_DEFERRED_HELPERS_H

#include <check.h>
#include <stdint.h>
#include <twistc/deferred.h>

/* The log: "name(value) " per logging callback, in call order. */
extern char dth_log[8192];
void dth_logf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "none", "int:5", "double:1.5", "str:abc", "ptr", "fail:ECANCELED", "deferred". */
const char *dth_desc(const deferred_result *r, char *buf, size_t n);

/* Callbacks. `arg` is described at each. All pass ownership correctly. */
deferred_result dth_record(deferred_result r, void *name);   /* logs name(r), returns r */
deferred_result dth_add(deferred_result r, void *delta);     /* int + (intptr_t)delta */
deferred_result dth_raise(deferred_result r, void *code);    /* drops r, fails with code */
deferred_result dth_recover(deferred_result r, void *value); /* drops r, int (intptr_t)value */
deferred_result dth_store(deferred_result r, void *slot);     /* moves r into *(deferred_result *)slot, returns NONE */

/* Reports captured by the hook (installed by dth_setup, removed by dth_teardown). */
extern int dth_reports;
extern deferred_report_kind dth_report_kind;
extern char dth_report_text[2048]; /* the default report's text of the LAST report */
extern int dth_report_code;
extern int dth_report_created_line;
extern int dth_report_fired_line;

void dth_setup(void);
void dth_teardown(void);

/* Adds a checked fixture with dth_setup/dth_teardown to tc. */
void dth_fixture(TCase *tc);

#endif
