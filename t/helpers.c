/* Shared helpers of the Check suites. */
#include "helpers.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static const char *only_backend(void)
{
    const char *b = getenv("REACTOR_BACKEND");
    return b && *b ? b : NULL;
}

int th_backend_count(void)
{
    if (only_backend())
        return 1;
    int n = 0;
    for (const char *const *b = reactor_backends(); *b; b++)
        n++;
    return n;
}

const char *th_backend(int i)
{
    const char *only = only_backend();
    return only ? only : reactor_backends()[i];
}

reactor *th_reactor(int i)
{
    reactor *r = reactor_new_with_backend(th_backend(i));
    ck_assert_msg(r != NULL, "reactor_new_with_backend(%s) failed", th_backend(i));
    return r;
}
