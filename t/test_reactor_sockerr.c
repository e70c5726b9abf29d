/* The reactor's internal "what socket error is pending on fd" (reactor__sock_error,
 * reactor__seen_error in reactor/backend_internal.h), per backend. It matters on libkqueue,
 * which consumes a socket's SO_ERROR to report it in a kevent: the error must then come
 * from what the backend saw, once, and never outlive the fd's registration (a closed fd's
 * number is reused). On the other backends the kernel keeps the error and these tests
 * check that the answers are the same. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helpers.h"
#include "reactor/backend_internal.h"

/* A non-blocking TCP connect to 127.0.0.1 that will be refused: the port belongs to a
 * socket that is bound but not listening (kept open by the caller, so nobody else can
 * take the port). Returns the connecting fd; *port_fd gets the bound socket. */
static int connect_refused(int *port_fd)
{
    int b = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(b, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(b, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    ck_assert_int_eq(getsockname(b, (struct sockaddr *)&a, &len), 0);
    *port_fd = b;
    /* The refusal can come back before connect() returns (loopback): then try again,
     * a bounded number of times, until it is reported through the loop. */
    for (int tries = 0; tries < 100; tries++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        ck_assert_int_ge(fd, 0);
        if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno == EINPROGRESS)
            return fd;
        ck_assert_int_eq(errno, ECONNREFUSED);
        close(fd);
    }
    ck_abort_msg("connect to a closed port never returned EINPROGRESS");
    return -1;
}

typedef struct {
    int ask;          /* ask reactor__sock_error twice in the callback */
    int first, second;
    int calls, done;
} refusal;

static void on_refused(reactor *r, int fd, unsigned events, void *data)
{
    (void)events;
    refusal *x = data;
    x->calls++;
    if (x->ask) {
        x->first = reactor__sock_error(r, fd);
        x->second = reactor__sock_error(r, fd);
    }
    reactor_unwatch(r, fd);
    x->done = 1;
}

/* The refusal is reported once, on every backend: from SO_ERROR, or on libkqueue (which
 * read SO_ERROR itself to fill the kevent) from what the backend kept. */
START_TEST(test_refused_reported_once)
{
    reactor *r = th_reactor(_i);
    int port_fd, fd = connect_refused(&port_fd);
    refusal x = {.ask = 1};
    ck_assert_int_eq(reactor_watch(r, fd, REACTOR_WRITABLE, on_refused, &x), 0);
    ck_assert(th_iterate_until(r, &x.done, 5.0));
    ck_assert_int_eq(x.calls, 1);
    ck_assert_int_eq(x.first, ECONNREFUSED);
    ck_assert_int_eq(x.second, 0);
    close(fd);
    close(port_fd);
    reactor_free(r);
}
END_TEST

/* An error the backend kept is forgotten when the fd is unwatched, even when nobody asked
 * for it, and a new socket given the same fd number does not inherit it. */
START_TEST(test_error_forgotten_on_unwatch_and_reuse)
{
    reactor *r = th_reactor(_i);
    int port_fd, fd = connect_refused(&port_fd);
    refusal x = {.ask = 0};
    ck_assert_int_eq(reactor_watch(r, fd, REACTOR_WRITABLE, on_refused, &x), 0);
    ck_assert(th_iterate_until(r, &x.done, 5.0));
    ck_assert_int_eq(x.calls, 1);
    ck_assert_int_eq(reactor__seen_error(r, fd), 0); /* unwatched: forgotten */

    /* fd's number now names one end of a healthy socket pair */
    int sv[2];
    th_socketpair(sv);
    ck_assert_int_eq(dup2(sv[0], fd), fd);
    close(sv[0]);
    ck_assert_int_eq(reactor_watch(r, fd, REACTOR_READABLE | REACTOR_WRITABLE, on_refused, &x),
                     0);
    ck_assert_int_eq(reactor__sock_error(r, fd), 0);
    x.done = 0;
    ck_assert(th_iterate_until(r, &x.done, 5.0)); /* writable: the callback unwatches */
    ck_assert_int_eq(reactor__sock_error(r, fd), 0);
    close(fd);
    close(sv[1]);
    close(port_fd);
    reactor_free(r);
}
END_TEST

extern Suite *suite_reactor_sockerr(void);
Suite *suite_reactor_sockerr(void)
{
    Suite *s = suite_create("reactor_sockerr");
    TCase *tc = tcase_create("sockerr");
    int n = th_backend_count();
    tcase_add_loop_test(tc, test_refused_reported_once, 0, n);
    tcase_add_loop_test(tc, test_error_forgotten_on_unwatch_and_reuse, 0, n);
    suite_add_tcase(s, tc);
    return s;
}
