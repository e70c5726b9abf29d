/* Helpers of the deferred test suites; see deferred_helpers.h. */
#include "deferred_helpers.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

char dth_log[8192];
int dth_reports;
deferred_report_kind dth_report_kind;
char dth_report_text[2048];
int dth_report_code;
int dth_report_created_line;
int dth_report_fired_line;

void dth_logf(const char *fmt, ...)
{
    size_t len = strlen(dth_log);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dth_log + len, sizeof dth_log - len, fmt, ap);
    va_end(ap);
}

const char *dth_desc(const deferred_result *r, char *buf, size_t n)
{
    switch (r->kind) {
    case DEFERRED_NONE: snprintf(buf, n, "none"); break;
    case DEFERRED_INT: snprintf(buf, n, "int:%lld", (long long)r->u.i); break;
    case DEFERRED_DOUBLE: snprintf(buf, n, "double:%g", r->u.d); break;
    case DEFERRED_STR: snprintf(buf, n, "str:%s", r->u.s ? r->u.s : "(null)"); break;
    case DEFERRED_PTR: snprintf(buf, n, "ptr"); break;
    case DEFERRED_FAILURE: snprintf(buf, n, "fail:%s", deferred_code_name(r->u.failure->code)); break;
    case DEFERRED_DEFERRED: snprintf(buf, n, "deferred"); break;
    }
    return buf;
}

deferred_result dth_record(deferred_result r, void *name)
{
    char b[128];
    dth_logf("%s(%s) ", (const char *)name, dth_desc(&r, b, sizeof b));
    return r;
}

deferred_result dth_add(deferred_result r, void *delta)
{
    ck_assert_int_eq(r.kind, DEFERRED_INT);
    r.u.i += (intptr_t)delta;
    return r;
}

deferred_result dth_raise(deferred_result r, void *code)
{
    deferred_result_clear(&r);
    return deferred_error((int)(intptr_t)code, "raised by dth_raise");
}

deferred_result dth_recover(deferred_result r, void *value)
{
    deferred_result_clear(&r);
    return deferred_int((intptr_t)value);
}

deferred_result dth_store(deferred_result r, void *slot)
{
    deferred_result *s = slot;
    deferred_result_clear(s);
    *s = r;
    return deferred_none();
}

static void hook(const deferred_report *rep, void *arg)
{
    (void)arg;
    dth_reports++;
    dth_report_kind = rep->kind;
    dth_report_code = rep->failure ? rep->failure->code : 0;
    dth_report_created_line = rep->created_line;
    dth_report_fired_line = rep->fired_line;
    FILE *m = fmemopen(dth_report_text, sizeof dth_report_text, "w");
    if (m) {
        deferred_default_report(rep, m);
        fclose(m);
    }
}

void dth_setup(void)
{
    dth_log[0] = '\0';
    dth_reports = 0;
    dth_report_text[0] = '\0';
    dth_report_code = 0;
    deferred_set_unhandled_hook(hook, NULL, NULL);
}

void dth_teardown(void)
{
    deferred_set_unhandled_hook(NULL, NULL, NULL);
    deferred_set_debugging(0);
}

void dth_fixture(TCase *tc)
{
    tcase_add_checked_fixture(tc, dth_setup, dth_teardown);
}
