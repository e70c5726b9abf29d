/* Shared helpers of the Check suites. */
#include "helpers.h"

#include <check.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>
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

void th_set_flag(reactor *r, void *data)
{
    *(int *)data = 1;
    /* Timers run before the poll of their iteration, but an iteration that ran callbacks
     * does not block in its poll, so the caller's loop sees the flag at once. */
}

int th_iterate_until(reactor *r, const int *done, double max_seconds)
{
    int expired = 0;
    reactor_timer *safety = reactor_timer_hold(reactor_call_later(r, max_seconds, th_set_flag, &expired));
    ck_assert_ptr_nonnull(safety);
    for (int i = 0; i < 100000 && !*done && !expired; i++)
        ck_assert_int_eq(reactor_iterate(r, -1), 0);
    reactor_timer_cancel(safety); /* -EALREADY if it fired: fine */
    reactor_timer_release(safety);
    return *done != 0;
}

void th_iterate_n(reactor *r, int n)
{
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(reactor_iterate(r, 0), 0);
}

void th_socketpair(int sv[2])
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(fcntl(sv[i], F_SETFL, fcntl(sv[i], F_GETFL) | O_NONBLOCK), 0);
        ck_assert_int_eq(fcntl(sv[i], F_SETFD, FD_CLOEXEC), 0);
    }
}
