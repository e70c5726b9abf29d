/* Pitfall 2.15: after fork() the child shares the parent's epoll set. A child that keeps
 * using the inherited reactor calls reactor_after_fork() first; then what it registers
 * or unregisters no longer touches the parent's set. */
#include <check.h>
#include <errno.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

typedef struct {
    int calls;
    int done;
} seen_t;

static void readable(reactor *r, int fd, unsigned events, void *data)
{
    (void)r;
    (void)events;
    seen_t *s = data;
    char buf[16];
    if (read(fd, buf, sizeof buf) > 0) {
        s->calls++;
        s->done = 1;
    }
}

static void give_up(reactor *r, void *data)
{
    (void)r;
    *(int *)data = 1;
}

/* Runs in the child; returns its exit status (0: all good). */
static int child(reactor *r, int shared_fd)
{
    if (reactor_after_fork(r) != 0)
        return 1;
    /* Unregistering the shared fd here must not unregister it in the parent. */
    if (reactor_unwatch(r, shared_fd) != 0)
        return 2;
    /* A pair made in the child gets its events in the child's new set. */
    int sv[2];
    th_socketpair(sv);
    seen_t s = {0};
    if (reactor_watch(r, sv[0], REACTOR_READABLE, readable, &s) != 0)
        return 3;
    if (write(sv[1], "c", 1) != 1)
        return 4;
    int expired = 0;
    reactor_call_later(r, 5.0, give_up, &expired);
    for (int k = 0; k < 1000 && !s.done && !expired; k++)
        if (reactor_iterate(r, 0.1) != 0)
            return 5;
    if (!s.done)
        return 6;
    /* call_from_thread goes through the child's own waker. */
    if (reactor_call_from_thread(r, give_up, &s.calls) != 0 || reactor_iterate(r, 0) != 0)
        return 7;
    return 0;
}

START_TEST(test_after_fork_child_does_not_touch_parent)
{
    reactor *r = th_reactor(_i);
    int sv[2];
    th_socketpair(sv);
    seen_t s = {0};
    ck_assert_int_eq(reactor_watch(r, sv[0], REACTOR_READABLE, readable, &s), 0);
    th_iterate_n(r, 1); /* make sure the registration reached the kernel (kqueue batches) */
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(child(r, sv[0]));
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    /* The parent's registration survived the child's unwatch. */
    ck_assert_int_eq(write(sv[1], "p", 1), 1);
    ck_assert(th_iterate_until(r, &s.done, 5.0));
    ck_assert_int_eq(s.calls, 1);
    reactor_unwatch(r, sv[0]);
    close(sv[0]);
    close(sv[1]);
    reactor_free(r);
}
END_TEST

START_TEST(test_after_fork_bad_use)
{
    ck_assert_int_eq(reactor_after_fork(NULL), -EINVAL);
}
END_TEST

extern Suite *suite_reactor_fork(void);
Suite *suite_reactor_fork(void)
{
    Suite *s = suite_create("reactor_fork");
    TCase *tc = tcase_create("fork");
    tcase_add_loop_test(tc, test_after_fork_child_does_not_touch_parent, 0, th_backend_count());
    tcase_add_test(tc, test_after_fork_bad_use);
    suite_add_tcase(s, tc);
    return s;
}
