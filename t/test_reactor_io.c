/* I/O watchers, per backend: dispatch, level triggering, stale events (pitfalls 2.2-2.6,
 * 2.17), argument errors and the trace. */
#define _GNU_SOURCE /* open_memstream is POSIX 2008 but glibc hides it under strict C */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helpers.h"

typedef struct {
    int calls;
    int fd;
    unsigned events;
    uint64_t iter;
    int done;
} io_log;

static void on_io(reactor *r, int fd, unsigned events, void *data)
{
    io_log *l = data;
    l->calls++;
    l->fd = fd;
    l->events = events;
    l->iter = reactor_iterations(r);
    l->done = 1;
}

START_TEST(test_watch_readable)
{
    reactor *r = th_reactor(_i);
    int sv[2];
    th_socketpair(sv);
    io_log l = {0};
    ck_assert_int_eq(reactor_watch(r, sv[0], REACTOR_READABLE, on_io, &l), 0);
    ck_assert_int_eq(write(sv[1], "x", 1), 1);
    ck_assert(th_iterate_until(r, &l.done, 2.0));
    ck_assert_int_eq(l.fd, sv[0]);
    ck_assert_uint_eq(l.events, REACTOR_READABLE);
    ck_assert_int_eq(reactor_unwatch(r, sv[0]), 0);
    close(sv[0]);
    close(sv[1]);
    ck_assert_int_eq(reactor_free(r), 0);
}
END_TEST

START_TEST(test_watch_events_changes_direction)
{
    reactor *r = th_reactor(_i);
    int sv[2];
    th_socketpair(sv);
    io_log l = {0};
    ck_assert_int_eq(reactor_watch(r, sv[0], 0, on_io, &l), 0); /* silent */
    th_iterate_n(r, 3);
    ck_assert_int_eq(l.calls, 0);
    ck_assert_int_eq(reactor_watch_events(r, sv[0], REACTOR_WRITABLE), 0);
    ck_assert(th_iterate_until(r, &l.done, 2.0));
    ck_assert_uint_eq(l.events, REACTOR_WRITABLE);
    reactor_unwatch(r, sv[0]);
    close(sv[0]);
    close(sv[1]);
    reactor_free(r);
}
END_TEST

/* Pitfall 2.3: level-triggered. Data left unread is reported again without a new send. */
static void read_one_byte(reactor *r, int fd, unsigned events, void *data)
{
    (void)r;
    (void)events;
    io_log *l = data;
    char c;
    if (read(fd, &c, 1) == 1)
        l->calls++;
    if (l->calls == 10)
        l->done = 1;
}

START_TEST(test_level_triggered_rereports_unread_data)
{
    reactor *r = th_reactor(_i);
    int sv[2];
    th_socketpair(sv);
    io_log l = {0};
    ck_assert_int_eq(write(sv[1], "0123456789", 10), 10);
    ck_assert_int_eq(reactor_watch(r, sv[0], REACTOR_READABLE, read_one_byte, &l), 0);
    ck_assert(th_iterate_until(r, &l.done, 2.0));
    ck_assert_int_eq(l.calls, 10);
    reactor_unwatch(r, sv[0]);
    close(sv[0]);
    close(sv[1]);
    reactor_free(r);
}
END_TEST

/* Pitfall 2.2 (the loop's part): WRITABLE interest is dropped once nothing is pending,
 * and then the loop sleeps instead of spinning. */
static void write_then_stop_writing(reactor *r, int fd, unsigned events, void *data)
{
    io_log *l = data;
    l->calls++;
    ck_assert_uint_eq(events, REACTOR_WRITABLE);
    ck_assert_int_eq(write(fd, "hello", 5), 5);
    ck_assert_int_eq(reactor_watch_events(r, fd, 0), 0);
}

START_TEST(test_writable_interest_dropped_no_spin)
{
    reactor *r = th_reactor(_i);
    int sv[2];
    th_socketpair(sv);
    io_log l = {0};
    ck_assert_int_eq(reactor_watch(r, sv[0], REACTOR_WRITABLE, write_then_stop_writing, &l), 0);
    int done = 0;
    reactor_call_later(r, 0.1, th_set_flag, &done);
    uint64_t before = reactor_iterations(r);
    ck_assert(th_iterate_until(r, &done, 5.0));
    ck_assert_int_eq(l.calls, 1);
    /* One iteration writes, one or two sleep until the timer: not thousands. */
    ck_assert_uint_le(reactor_iterations(r) - before, 4);
    char buf[8];
    ck_assert_int_eq(read(sv[1], buf, sizeof buf), 5);
    reactor_unwatch(r, sv[0]);
    close(sv[0]);
    close(sv[1]);
    reactor_free(r);
}
END_TEST

/* Pitfall 2.4: a callback unwatches and closes ANOTHER fd whose event is pending in the
 * same batch, then opens a new socketpair that reuses that fd number and watches it. The
 * stale event must reach neither the old owner (freed here: ASan would see a use after
 * free) nor the new one. */
typedef struct conn conn;
typedef struct {
    conn *c[2];
    int reused;
    int new_fds[2];
    io_log fresh;
    int dispatches;
    int done;
} stale_test;
struct conn {
    stale_test *t;
    int fd, peer, idx;
};

static void fresh_io(reactor *r, int fd, unsigned events, void *data)
{
    io_log *l = data;
    char c;
    /* A stale READABLE would show up here as EAGAIN: nothing was ever sent. */
    ck_assert_int_eq(read(fd, &c, 1), 1);
    on_io(r, fd, events, l);
}

static void conn_readable(reactor *r, int fd, unsigned events, void *data)
{
    conn *me = data;
    stale_test *t = me->t;
    t->dispatches++;
    char buf[16];
    ck_assert_int_gt(read(fd, buf, sizeof buf), 0);
    conn *other = t->c[!me->idx];
    if (other) {
        int ofd = other->fd;
        ck_assert_int_eq(reactor_unwatch(r, ofd), 0);
        close(ofd);
        close(other->peer);
        free(other); /* its watcher data is gone: a stale dispatch is a use after free */
        t->c[!me->idx] = NULL;
        th_socketpair(t->new_fds);
        t->reused = t->new_fds[0] == ofd || t->new_fds[1] == ofd;
        int watched = t->new_fds[0] == ofd ? t->new_fds[0] : t->new_fds[1];
        ck_assert_int_eq(reactor_watch(r, watched, REACTOR_READABLE, fresh_io, &t->fresh), 0);
    }
    t->done = 1;
}

START_TEST(test_stale_event_other_fd_closed_and_reused)
{
    reactor *r = th_reactor(_i);
    stale_test t = {0};
    for (int i = 0; i < 2; i++) {
        int sv[2];
        th_socketpair(sv);
        t.c[i] = malloc(sizeof(conn));
        *t.c[i] = (conn){.t = &t, .fd = sv[0], .peer = sv[1], .idx = i};
        ck_assert_int_eq(write(sv[1], "x", 1), 1); /* both readable in one batch */
        ck_assert_int_eq(reactor_watch(r, sv[0], REACTOR_READABLE, conn_readable, t.c[i]), 0);
    }
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len); /* the trace names the skipped entry */
    ck_assert_ptr_nonnull(out);
    reactor_set_trace(r, out);
    ck_assert(th_iterate_until(r, &t.done, 2.0));
    reactor_set_trace(r, NULL);
    fclose(out);
    ck_assert_ptr_nonnull(strstr(text, "reason=stale"));
    free(text);
    ck_assert_int_eq(t.dispatches, 1); /* the closed one never ran */
    ck_assert(t.reused);               /* and its number was reused within the batch */
    ck_assert_int_eq(t.fresh.calls, 0);
    th_iterate_n(r, 3); /* nothing was sent to the new pair: still no callback */
    ck_assert_int_eq(t.fresh.calls, 0);
    for (int i = 0; i < 2; i++)
        if (t.c[i]) {
            reactor_unwatch(r, t.c[i]->fd);
            close(t.c[i]->fd);
            close(t.c[i]->peer);
            free(t.c[i]);
        }
    for (int i = 0; i < 2; i++) {
        reactor_unwatch(r, t.new_fds[i]); /* -ENOENT for the unwatched one */
        close(t.new_fds[i]);
    }
    reactor_free(r);
}
END_TEST

/* Pitfall 2.5: a callback closes its own fd while both directions are ready: one call
 * (directions are merged per fd), no second dispatch to the closed fd. */
static void close_self(reactor *r, int fd, unsigned events, void *data)
{
    io_log *l = data;
    l->calls++;
    l->events = events;
    ck_assert_int_eq(reactor_unwatch(r, fd), 0);
    close(fd);
    l->done = 1;
}

START_TEST(test_close_own_fd_in_callback)
{
    reactor *r = th_reactor(_i);
    int sv[2];
    th_socketpair(sv);
    io_log l = {0};
    ck_assert_int_eq(write(sv[1], "x", 1), 1);
    ck_assert_int_eq(reactor_watch(r, sv[0], REACTOR_READABLE | REACTOR_WRITABLE, close_self, &l), 0);
    ck_assert(th_iterate_until(r, &l.done, 2.0));
    th_iterate_n(r, 2);
    ck_assert_int_eq(l.calls, 1);
    ck_assert_uint_eq(l.events, REACTOR_READABLE | REACTOR_WRITABLE);
    errno = 0;
    ck_assert_int_eq(fcntl(sv[0], F_GETFD), -1);
    ck_assert_int_eq(errno, EBADF);
    close(sv[1]);
    reactor_free(r);
}
END_TEST

/* Pitfall 2.6: select cannot take fd >= FD_SETSIZE and says so (-ERANGE) instead of
 * writing past its fd_set; the other backends take it and dispatch it. */
START_TEST(test_fd_above_fd_setsize)
{
    const int high = FD_SETSIZE + 476; /* 1500 with glibc */
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur <= (rlim_t)high) {
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max <= (rlim_t)high)
            return; /* cannot raise the limit here: nothing to test */
        rl.rlim_cur = (rlim_t)high + 1;
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    reactor *r = th_reactor(_i);
    int sv[2];
    th_socketpair(sv);
    ck_assert_int_eq(dup2(sv[0], high), high);
    io_log l = {0};
    int rc = reactor_watch(r, high, REACTOR_READABLE, on_io, &l);
    if (strcmp(reactor_backend_name(r), "select") == 0) {
        ck_assert_int_eq(rc, -ERANGE);
        ck_assert_int_eq(reactor_unwatch(r, high), -ENOENT);
    } else {
        ck_assert_int_eq(rc, 0);
        ck_assert_int_eq(write(sv[1], "x", 1), 1);
        ck_assert(th_iterate_until(r, &l.done, 2.0));
        ck_assert_int_eq(l.fd, high);
        ck_assert_int_eq(reactor_unwatch(r, high), 0);
    }
    close(high);
    close(sv[0]);
    close(sv[1]);
    reactor_free(r);
}
END_TEST

/* EPOLLHUP/EPOLLERR come back even for an fd that asked for nothing. Watched with no
 * interest, a hung-up fd must neither be dispatched nor make the loop spin. */
START_TEST(test_hangup_without_interest_no_spin)
{
    reactor *r = th_reactor(_i);
    int sv[2];
    th_socketpair(sv);
    io_log l = {0};
    ck_assert_int_eq(reactor_watch(r, sv[0], REACTOR_READABLE, on_io, &l), 0);
    ck_assert_int_eq(reactor_watch_events(r, sv[0], 0), 0);
    close(sv[1]); /* hang-up on sv[0] */
    int done = 0;
    reactor_call_later(r, 0.05, th_set_flag, &done);
    uint64_t before = reactor_iterations(r);
    ck_assert(th_iterate_until(r, &done, 5.0));
    ck_assert_int_eq(l.calls, 0);
    ck_assert_uint_le(reactor_iterations(r) - before, 3);
    /* Asking for READABLE again: the hang-up is reported (read() then returns 0). */
    ck_assert_int_eq(reactor_watch_events(r, sv[0], REACTOR_READABLE), 0);
    ck_assert(th_iterate_until(r, &l.done, 2.0));
    ck_assert(l.events & REACTOR_READABLE);
    char c;
    ck_assert_int_eq(read(sv[0], &c, 1), 0);
    reactor_unwatch(r, sv[0]);
    close(sv[0]);
    reactor_free(r);
}
END_TEST

/* Pitfall 2.17: unwatch removes the fd from the kernel set before the caller's close, so
 * a dup of the same description cannot keep delivering events for a closed fd number. */
START_TEST(test_unwatch_before_close_with_dup)
{
    reactor *r = th_reactor(_i);
    int sv[2];
    th_socketpair(sv);
    int d = dup(sv[1]);
    ck_assert_int_ge(d, 0);
    io_log l = {0};
    ck_assert_int_eq(reactor_watch(r, sv[1], REACTOR_READABLE, on_io, &l), 0);
    th_iterate_n(r, 1);
    ck_assert_int_eq(reactor_unwatch(r, sv[1]), 0);
    close(sv[1]);
    ck_assert_int_eq(write(sv[0], "x", 1), 1);
    int done = 0;
    reactor_call_later(r, 0.1, th_set_flag, &done);
    uint64_t before = reactor_iterations(r);
    ck_assert(th_iterate_until(r, &done, 5.0));
    ck_assert_int_eq(l.calls, 0);
    ck_assert_uint_le(reactor_iterations(r) - before, 3);
    close(d);
    close(sv[0]);
    reactor_free(r);
}
END_TEST

/* A watcher's data may be freed by another callback of the same batch once unwatched
 * (covered above); here a callback frees the reactor's user of a timer and unwatches
 * itself in a batch where many fds are ready. */
static void unwatch_all(reactor *r, int fd, unsigned events, void *data)
{
    (void)fd;
    (void)events;
    int *fds = data;
    for (int i = 0; i < 16; i++)
        if (fds[i] >= 0) {
            reactor_unwatch(r, fds[i]);
            close(fds[i]);
            fds[i] = -1;
        }
    fds[16]++;
}

START_TEST(test_many_ready_first_unwatches_all)
{
    reactor *r = th_reactor(_i);
    int *fds = calloc(17, sizeof *fds);
    int peers[16];
    for (int i = 0; i < 16; i++) {
        int sv[2];
        th_socketpair(sv);
        fds[i] = sv[0];
        peers[i] = sv[1];
        ck_assert_int_eq(write(sv[1], "x", 1), 1);
        ck_assert_int_eq(reactor_watch(r, sv[0], REACTOR_READABLE, unwatch_all, fds), 0);
    }
    th_iterate_n(r, 3);
    ck_assert_int_eq(fds[16], 1);
    for (int i = 0; i < 16; i++)
        close(peers[i]);
    free(fds);
    reactor_free(r);
}
END_TEST

START_TEST(test_bad_arguments)
{
    reactor *r = th_reactor(_i);
    io_log l = {0};
    int sv[2];
    th_socketpair(sv);
    ck_assert_int_eq(reactor_watch(r, -1, REACTOR_READABLE, on_io, &l), -EINVAL);
    ck_assert_int_eq(reactor_watch(r, sv[0], 0x100, on_io, &l), -EINVAL);
    ck_assert_int_eq(reactor_watch(r, sv[0], REACTOR_ERROR, on_io, &l), -EINVAL);
    ck_assert_int_eq(reactor_watch_named(r, sv[0], REACTOR_READABLE, NULL, &l, "x"), -EINVAL);
    int closed = dup(sv[0]);
    close(closed);
    ck_assert_int_eq(reactor_watch(r, closed, REACTOR_READABLE, on_io, &l), -EINVAL);
    ck_assert_int_eq(reactor_unwatch(r, sv[0]), -ENOENT);
    ck_assert_int_eq(reactor_unwatch(r, 100000), -ENOENT);
    ck_assert_int_eq(reactor_watch_events(r, sv[0], REACTOR_READABLE), -ENOENT);
    ck_assert_int_eq(reactor_watch(r, sv[0], REACTOR_READABLE, on_io, &l), 0);
    ck_assert_int_eq(reactor_watch_events(r, sv[0], 0x100), -EINVAL);
    ck_assert_int_eq(reactor_unwatch(r, sv[0]), 0);
    ck_assert_int_eq(reactor_unwatch(r, sv[0]), -ENOENT);
    close(sv[0]);
    close(sv[1]);
    reactor_free(r);
}
END_TEST

static void nested(reactor *r, int fd, unsigned events, void *data)
{
    (void)fd;
    (void)events;
    io_log *l = data;
    ck_assert_int_eq(reactor_iterate(r, 0), -EBUSY); /* no nested loops */
    ck_assert_int_eq(reactor_free(r), -EBUSY);       /* not from inside the loop */
    l->done = 1;
}

START_TEST(test_no_nested_iterate_or_free)
{
    reactor *r = th_reactor(_i);
    int sv[2];
    th_socketpair(sv);
    io_log l = {0};
    ck_assert_int_eq(reactor_watch(r, sv[0], REACTOR_WRITABLE, nested, &l), 0);
    ck_assert(th_iterate_until(r, &l.done, 2.0));
    reactor_unwatch(r, sv[0]);
    close(sv[0]);
    close(sv[1]);
    ck_assert_int_eq(reactor_free(r), 0);
}
END_TEST

static void on_named_read(reactor *r, int fd, unsigned events, void *data)
{
    char c;
    ck_assert_int_eq(read(fd, &c, 1), 1);
    on_io(r, fd, events, data);
}

START_TEST(test_trace_lines)
{
    reactor *r = th_reactor(_i);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(out);
    reactor_set_trace(r, out);
    ck_assert_ptr_eq(reactor_trace_file(r), out);
    int sv[2];
    th_socketpair(sv);
    io_log l = {0};
    ck_assert_int_eq(write(sv[1], "x", 1), 1);
    ck_assert_int_eq(reactor_watch(r, sv[0], REACTOR_READABLE, on_named_read, &l), 0);
    ck_assert(th_iterate_until(r, &l.done, 2.0));
    reactor_set_trace(r, NULL);
    fclose(out);
    char want[128];
    snprintf(want, sizeof want, "phase=poll backend=%s timeout_ms=", reactor_backend_name(r));
    ck_assert_ptr_nonnull(strstr(text, want));
    ck_assert_ptr_nonnull(strstr(text, "phase=timers ran="));
    ck_assert_ptr_nonnull(strstr(text, "phase=poll ready=1 waited_ms="));
    snprintf(want, sizeof want, "dispatch fd=%d ev=R cb=on_named_read\n", sv[0]);
    ck_assert_ptr_nonnull(strstr(text, want));
    ck_assert(strncmp(text, "iter=", 5) == 0);
    free(text);
    reactor_unwatch(r, sv[0]);
    close(sv[0]);
    close(sv[1]);
    reactor_free(r);
}
END_TEST

START_TEST(test_backend_selection)
{
    const char *const *names = reactor_backends();
    ck_assert_ptr_nonnull(names[0]);
    for (const char *const *n = names; *n; n++) {
        reactor *r = reactor_new_with_backend(*n);
        ck_assert_ptr_nonnull(r);
        ck_assert_str_eq(reactor_backend_name(r), *n);
        reactor_free(r);
    }
    reactor *r = reactor_new_with_backend(NULL);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(reactor_backend_name(r), names[0]);
    reactor_free(r);
    errno = 0;
    ck_assert_ptr_null(reactor_new_with_backend("nope"));
    ck_assert_int_eq(errno, EINVAL);
    int have_kqueue = 0;
    for (const char *const *n = names; *n; n++)
        have_kqueue |= strcmp(*n, "kqueue") == 0;
    if (!have_kqueue) {
        errno = 0;
        ck_assert_ptr_null(reactor_new_with_backend("kqueue"));
        ck_assert_int_eq(errno, ENOSYS);
    }
}
END_TEST

extern Suite *suite_reactor_io(void);
Suite *suite_reactor_io(void)
{
    Suite *s = suite_create("reactor_io");
    TCase *tc = tcase_create("io");
    int n = th_backend_count();
    tcase_add_loop_test(tc, test_watch_readable, 0, n);
    tcase_add_loop_test(tc, test_watch_events_changes_direction, 0, n);
    tcase_add_loop_test(tc, test_level_triggered_rereports_unread_data, 0, n);
    tcase_add_loop_test(tc, test_writable_interest_dropped_no_spin, 0, n);
    tcase_add_loop_test(tc, test_stale_event_other_fd_closed_and_reused, 0, n);
    tcase_add_loop_test(tc, test_close_own_fd_in_callback, 0, n);
    tcase_add_loop_test(tc, test_fd_above_fd_setsize, 0, n);
    tcase_add_loop_test(tc, test_hangup_without_interest_no_spin, 0, n);
    tcase_add_loop_test(tc, test_unwatch_before_close_with_dup, 0, n);
    tcase_add_loop_test(tc, test_many_ready_first_unwatches_all, 0, n);
    tcase_add_loop_test(tc, test_bad_arguments, 0, n);
    tcase_add_loop_test(tc, test_no_nested_iterate_or_free, 0, n);
    tcase_add_loop_test(tc, test_trace_lines, 0, n);
    tcase_add_test(tc, test_backend_selection);
    suite_add_tcase(s, tc);
    return s;
}
