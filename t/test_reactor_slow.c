/* The slow-callback detector (issue 13): reactor_set_slow_callback_ms, REACTOR_SLOW_MS.
 * Callbacks really sleep NAP ms against a threshold of THRESH ms (a sleep lasts at least
 * what it asks), and "nothing is printed" uses a threshold of 1000 ms for the same sleep:
 * no assertion depends on how fast the machine is. Other callbacks may be reported too
 * (a loaded machine, valgrind), so tests look for the reports they expect by name and
 * never count the others. Reports are caught through the report function, and once
 * through stderr (a pipe). */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <twistc/coro.h>
#include <twistc/deferred.h>
#include <twistc/protocol.h>
#include <twistc/transport.h>

#include "helpers.h"
#include "reactor/slow_internal.h"

#define NAP 50
#define THRESH 20

static void nap_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* ---- Recording the reports ---- */

#define MAX_REP 8
typedef struct {
    int n;
    char line[MAX_REP][1024];
    char name[MAX_REP][256];
    char kind[MAX_REP][64];
    char context[MAX_REP][512];
    double ms[MAX_REP];
    int fd[MAX_REP], fds_ready[MAX_REP];
    size_t overdue[MAX_REP];
    double overdue_ms[MAX_REP];
} reps;

static void on_report(reactor *r, const reactor_slow_report *rep, void *data)
{
    (void)r;
    reps *x = data;
    ck_assert_ptr_nonnull(rep->line);
    if (x->n >= MAX_REP) {
        x->n++;
        return;
    }
    int i = x->n++;
    snprintf(x->line[i], sizeof x->line[i], "%s", rep->line);
    snprintf(x->name[i], sizeof x->name[i], "%s", rep->name);
    snprintf(x->kind[i], sizeof x->kind[i], "%s", rep->kind);
    snprintf(x->context[i], sizeof x->context[i], "%s", rep->context);
    x->ms[i] = rep->ms;
    x->fd[i] = rep->fd;
    x->fds_ready[i] = rep->fds_ready;
    x->overdue[i] = rep->timers_overdue;
    x->overdue_ms[i] = rep->overdue_ms;
}

/* The index of the first report naming `name`, -1 if none; *n gets how many do. */
static int find(const reps *x, const char *name, int *n)
{
    int first = -1, k = 0;
    for (int i = 0; i < x->n && i < MAX_REP; i++)
        if (strcmp(x->name[i], name) == 0) {
            if (first < 0)
                first = i;
            k++;
        }
    if (n)
        *n = k;
    return first;
}

/* No report counts the time of `inner` (a nap) a second time: any other report that is
 * long enough to contain it says how much of it was its own. */
static void assert_no_second_line(const reps *x, const char *inner)
{
    for (int i = 0; i < x->n && i < MAX_REP; i++)
        if (strcmp(x->name[i], inner) != 0 && x->ms[i] >= NAP)
            ck_assert_msg(strstr(x->line[i], "outside the slow callbacks inside it"), "%s",
                          x->line[i]);
}

static reactor *slow_reactor(int i, double ms, reps *x)
{
    reactor *r = th_reactor(i);
    memset(x, 0, sizeof *x);
    ck_assert_int_eq(reactor_set_slow_callback_report(r, on_report, x), 0);
    ck_assert_int_eq(reactor_set_slow_callback_ms(r, ms), 0);
    return r;
}

/* ---- A slow timer, with an fd ready and a timer overdue while it ran ---- */

static void slow_timer_cb(reactor *r, void *data)
{
    (void)r;
    *(int *)data += 1;
    nap_ms(NAP);
}

static void on_fd_ignore(reactor *r, int fd, unsigned events, void *data)
{
    (void)r;
    (void)events;
    (void)data;
    char b[16];
    while (read(fd, b, sizeof b) > 0)
        ;
}

START_TEST(test_slow_timer_named_with_waiting)
{
    reps x;
    reactor *r = slow_reactor(_i, THRESH, &x);
    int sv[2];
    th_socketpair(sv);
    ck_assert_int_eq(write(sv[1], "x", 1), 1); /* sv[0] is ready while the timer runs */
    ck_assert_int_eq(reactor_watch(r, sv[0], REACTOR_READABLE, on_fd_ignore, NULL), 0);
    int ran = 0, other = 0;
    ck_assert_ptr_nonnull(reactor_call_later(r, 0, slow_timer_cb, &ran));
    /* Due 1 ms from now: overdue once the slow one has slept 30 ms. Scheduled after it,
     * so it waits in the heap (or the due list) while slow_timer_cb runs. */
    ck_assert_ptr_nonnull(reactor_call_later(r, 0.001, th_set_flag, &other));
    ck_assert_int_eq(th_iterate_until(r, &ran, 5), 1);
    int k, i = find(&x, "slow_timer_cb", &k);
    ck_assert_int_eq(k, 1);
    ck_assert_str_eq(x.kind[i], "timer");
    ck_assert_msg(strncmp(x.line[i], "slow callback: slow_timer_cb took ", 34) == 0, "%s",
                  x.line[i]);
    ck_assert_msg(x.ms[i] >= NAP, "%s", x.line[i]);
    ck_assert_msg(x.fds_ready[i] >= 1, "%s", x.line[i]);
    ck_assert_msg(strstr(x.line[i], "fd ready") || strstr(x.line[i], "fds ready"), "%s", x.line[i]);
    ck_assert_msg(x.overdue[i] >= 1 && x.overdue_ms[i] > 0, "%s", x.line[i]);
    ck_assert_msg(strstr(x.line[i], "overdue (oldest by "), "%s", x.line[i]);
    ck_assert_msg(strchr(x.line[i], '\n') == NULL, "%s", x.line[i]);
    ck_assert_int_eq(th_iterate_until(r, &other, 5), 1);
    find(&x, "slow_timer_cb", &k);
    ck_assert_int_eq(k, 1); /* once */
    reactor_unwatch(r, sv[0]);
    close(sv[0]);
    close(sv[1]);
    ck_assert_int_eq(reactor_free(r), 0);
}
END_TEST

/* ---- Off, and under the threshold: nothing ---- */

START_TEST(test_slow_off_and_under_threshold_silent)
{
    reps x;
    reactor *r = slow_reactor(_i, 1000, &x);
    ck_assert(reactor_slow_callback_ms(r) == 1000);
    int ran = 0;
    ck_assert_ptr_nonnull(reactor_call_later(r, 0, slow_timer_cb, &ran));
    ck_assert_int_eq(th_iterate_until(r, &ran, 5), 1);
    ck_assert_int_eq(x.n, 0); /* NAP ms against 1000 */
    ck_assert_int_eq(reactor_set_slow_callback_ms(r, 0), 0);
    ck_assert(reactor_slow_callback_ms(r) == 0);
    ran = 0;
    ck_assert_ptr_nonnull(reactor_call_later(r, 0, slow_timer_cb, &ran));
    ck_assert_int_eq(th_iterate_until(r, &ran, 5), 1);
    ck_assert_int_eq(x.n, 0); /* off */
    /* On again under the nap: the same callback is reported, so the two above could fail. */
    ck_assert_int_eq(reactor_set_slow_callback_ms(r, THRESH), 0);
    ran = 0;
    ck_assert_ptr_nonnull(reactor_call_later(r, 0, slow_timer_cb, &ran));
    ck_assert_int_eq(th_iterate_until(r, &ran, 5), 1);
    ck_assert_int_ge(find(&x, "slow_timer_cb", NULL), 0);
    ck_assert_int_eq(reactor_free(r), 0);
}
END_TEST

START_TEST(test_slow_bad_args)
{
    reactor *r = reactor_new();
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(reactor_set_slow_callback_ms(NULL, 5), -EINVAL);
    ck_assert_int_eq(reactor_set_slow_callback_ms(r, -1), -EINVAL);
    ck_assert_int_eq(reactor_set_slow_callback_ms(r, NAN), -EINVAL);
    ck_assert_int_eq(reactor_set_slow_callback_ms(r, INFINITY), -EINVAL);
    ck_assert_int_eq(reactor_set_slow_callback_report(NULL, NULL, NULL), -EINVAL);
    ck_assert(reactor_slow_callback_ms(r) == 0);
    ck_assert(reactor_slow_callback_ms(NULL) == 0);
    ck_assert_int_eq(reactor_set_slow_callback_ms(r, 0), 0); /* off when off: fine */
    ck_assert_int_eq(reactor_free(r), 0);
}
END_TEST

/* ---- The lesson's case: a Deferred callback run from a protocol's data_received ---- */

static deferred_result slow_mail_title(deferred_result res, void *arg)
{
    (void)arg;
    nap_ms(NAP);
    return res;
}

typedef struct {
    protocol base;
    int got;
    int nap_self; /* data_received also sleeps this long itself */
} slow_proto;

static int slow_data_received(protocol *p, const char *data, size_t len)
{
    (void)data;
    (void)len;
    slow_proto *sp = (slow_proto *)p;
    if (sp->nap_self)
        nap_ms(sp->nap_self);
    deferred *d = deferred_new();
    deferred_add_callback(d, slow_mail_title, NULL);
    deferred_callback(d, deferred_none());
    deferred_unref(d);
    sp->got = 1;
    return 0;
}

static void slow_lost(protocol *p, const protocol_reason *reason)
{
    (void)p;
    (void)reason;
}

static const protocol_ops slow_ops = {.data_received = slow_data_received,
                                      .connection_lost = slow_lost};

typedef struct {
    factory f;
    slow_proto proto;
    int built;
} slow_factory;

static protocol *slow_build(factory *f, const struct sockaddr *addr, socklen_t len)
{
    (void)addr;
    (void)len;
    slow_factory *sf = (slow_factory *)f;
    if (sf->built++)
        return NULL;
    protocol_init(&sf->proto.base, &slow_ops);
    return &sf->proto.base;
}

static const factory_ops slow_fops = {.build_protocol = slow_build};

/* A blocking loopback client (the listener accepts it on the reactor's next turn). */
static int th_tcp_client(int port)
{
    int c = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(c, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(c, (struct sockaddr *)&a, sizeof a), 0);
    return c;
}

/* A server connection whose data_received fires a Deferred; the client sends one byte. */
static void run_deferred_in_read(int i, int nap_self, reps *x)
{
    reactor *r = slow_reactor(i, 5, x);
    slow_factory sf = {0};
    sf.proto.nap_self = nap_self;
    factory_init(&sf.f, &slow_fops, NULL);
    listener *l = reactor_listen_tcp(r, "127.0.0.1", 0, &sf.f, 8);
    ck_assert_ptr_nonnull(l);
    int c = th_tcp_client(listener_port(l));
    ck_assert_int_eq(write(c, "x", 1), 1);
    ck_assert_int_eq(th_iterate_until(r, &sf.proto.got, 5), 1);
    close(c);
    if (sf.built && sf.proto.base.transport)
        transport_abort_connection(sf.proto.base.transport);
    th_iterate_n(r, 3);
    listener_free(l);
    ck_assert_int_eq(reactor_free(r), 0);
}

START_TEST(test_slow_deferred_callback_named_inside_read)
{
    reps x;
    run_deferred_in_read(_i, 0, &x);
    int k, i = find(&x, "slow_mail_title", &k); /* static: from the symbol table */
    ck_assert_int_eq(k, 1);
    ck_assert_str_eq(x.kind[i], "deferred callback");
    ck_assert_msg(strstr(x.line[i], "slow callback: slow_mail_title took "), "%s", x.line[i]);
    ck_assert_msg(strstr(x.line[i], "(deferred callback, in: "), "%s", x.line[i]);
    /* what it ran inside: the transport's read on that fd, the protocol's data_received */
    ck_assert_msg(strstr(x.context[i], "protocol slow_data_received"), "%s", x.line[i]);
    ck_assert_msg(strstr(x.context[i], "(fd "), "%s", x.line[i]);
    ck_assert_int_ge(x.fd[i], 0);
    ck_assert_msg(strstr(x.line[i], "waiting: "), "%s", x.line[i]);
    /* the read around it: no second line for the same time */
    assert_no_second_line(&x, "slow_mail_title");
}
END_TEST

START_TEST(test_slow_outer_reported_for_its_own_time)
{
    /* data_received sleeps 30 ms itself AND runs the 30 ms callback: two lines, the
     * inner one first; the outer one counts only its own time. */
    reps x;
    run_deferred_in_read(_i, NAP, &x);
    int k, i = find(&x, "slow_mail_title", &k), j = find(&x, "on_io", NULL);
    ck_assert_int_eq(k, 1);
    ck_assert_int_gt(j, i); /* the inner one first: it returned first */
    ck_assert_str_eq(x.kind[j], "fd");
    ck_assert_msg(strstr(x.line[j], "protocol slow_data_received"), "%s", x.line[j]);
    ck_assert_msg(strstr(x.line[j], "outside the slow callbacks inside it"), "%s", x.line[j]);
    ck_assert_msg(x.ms[j] >= 2 * NAP, "%s", x.line[j]);
}
END_TEST

/* ---- A call from a thread, named from its address ---- */

static void slow_thread_call(reactor *r, void *data)
{
    (void)r;
    *(int *)data = 1;
    nap_ms(NAP);
}

START_TEST(test_slow_thread_call_named)
{
    reps x;
    reactor *r = slow_reactor(_i, THRESH, &x);
    int ran = 0;
    ck_assert_int_eq(reactor_call_from_thread(r, slow_thread_call, &ran), 0);
    ck_assert_int_eq(th_iterate_until(r, &ran, 5), 1);
    int i = find(&x, "slow_thread_call", NULL);
    ck_assert_int_ge(i, 0);
    ck_assert_str_eq(x.kind[i], "thread call");
    ck_assert_int_eq(reactor_free(r), 0);
}
END_TEST

/* ---- A coroutine's body, resumed by a Deferred fired from a timer ---- */

typedef struct {
    deferred *d;
    int done;
} coro_case;

static deferred_result slow_coro_body(void *arg)
{
    coro_case *c = arg;
    deferred_result res = coro_await(c->d); /* quick up to here */
    deferred_result_clear(&res);
    nap_ms(NAP); /* after the resume: inside the firing timer's deferred_callback */
    c->done = 1;
    return deferred_none();
}

static void fire_awaited(reactor *r, void *data)
{
    (void)r;
    coro_case *c = data;
    deferred_callback(c->d, deferred_none());
}

START_TEST(test_slow_coroutine_named)
{
    reps x;
    reactor *r = slow_reactor(_i, THRESH, &x);
    coro_case c = {.d = deferred_new()};
    deferred *end = coro_start(r, slow_coro_body, &c, 0);
    ck_assert_ptr_nonnull(end);
    ck_assert_ptr_nonnull(reactor_call_later(r, 0, fire_awaited, &c));
    ck_assert_int_eq(th_iterate_until(r, &c.done, 5), 1);
    int k, i = find(&x, "slow_coro_body", &k);
    ck_assert_int_eq(k, 1);
    ck_assert_str_eq(x.kind[i], "coroutine");
    ck_assert_msg(strstr(x.context[i], "fire_awaited (timer)"), "%s", x.line[i]);
    assert_no_second_line(&x, "slow_coro_body"); /* the timer around it */
    deferred_unref(end);
    deferred_unref(c.d);
    ck_assert_int_eq(reactor_free(r), 0);
}
END_TEST

/* ---- A signal callback, and an idle timeout's ---- */

START_TEST(test_slow_signal_named)
{
    reps x;
    reactor *r = slow_reactor(_i, THRESH, &x);
    int ran = 0;
    ck_assert_int_eq(reactor_on_signal(r, SIGUSR1, slow_thread_call, &ran), 0);
    ck_assert_int_eq(raise(SIGUSR1), 0);
    ck_assert_int_eq(th_iterate_until(r, &ran, 5), 1);
    int i = find(&x, "slow_thread_call", NULL);
    ck_assert_int_ge(i, 0);
    ck_assert_str_eq(x.kind[i], "signal");
    char want[32];
    snprintf(want, sizeof want, "(signal %d", SIGUSR1);
    ck_assert_msg(strstr(x.line[i], want), "%s", x.line[i]);
    /* it runs from the reactor's self-pipe: an fd callback around it */
    ck_assert_msg(strstr(x.context[i], "(fd "), "%s", x.line[i]);
    assert_no_second_line(&x, "slow_thread_call");
    ck_assert_int_eq(reactor_free(r), 0);
}
END_TEST

START_TEST(test_slow_idle_timeout_named)
{
    reps x;
    reactor *r = slow_reactor(_i, THRESH, &x);
    ck_assert_int_eq(reactor_use_fake_clock(r, 0), 0); /* when it fires; the nap is real */
    int ran = 0;
    reactor_idle *it = reactor_idle_new(r, 1, slow_thread_call, &ran);
    ck_assert_ptr_nonnull(it);
    ck_assert_int_eq(reactor_advance(r, 2), 0);
    ck_assert_int_eq(ran, 1);
    int i = find(&x, "slow_thread_call", NULL);
    ck_assert_int_ge(i, 0);
    ck_assert_str_eq(x.kind[i], "idle timeout"); /* named after its function, not "idle" */
    ck_assert_msg(strstr(x.context[i], "idle (timer)"), "%s", x.line[i]);
    assert_no_second_line(&x, "slow_thread_call");
    reactor_idle_free(it);
    ck_assert_int_eq(reactor_free(r), 0);
}
END_TEST

/* ---- The environment and stderr ---- */

START_TEST(test_slow_env_to_stderr)
{
    setenv("REACTOR_SLOW_MS", "20", 1);
    reactor *r = reactor_new();
    unsetenv("REACTOR_SLOW_MS");
    ck_assert_ptr_nonnull(r);
    ck_assert(reactor_slow_callback_ms(r) == 20);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    ck_assert_int_ge(saved, 0);
    dup2(p[1], STDERR_FILENO);
    int ran = 0;
    reactor_call_later(r, 0, slow_timer_cb, &ran);
    int ok = th_iterate_until(r, &ran, 5);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(p[1]);
    char out[2048] = {0};
    ssize_t n = read(p[0], out, sizeof out - 1);
    close(p[0]);
    ck_assert_int_eq(ok, 1);
    ck_assert_int_gt(n, 0);
    /* One whole line for it (other lines may come from a slow machine). */
    char *at = strstr(out, "slow callback: slow_timer_cb took ");
    ck_assert_msg(at && (at == out || at[-1] == '\n'), "%s", out);
    ck_assert_ptr_null(strstr(at + 1, "slow callback: slow_timer_cb"));
    char *nl = strchr(at, '\n');
    ck_assert_msg(nl && strstr(at, "waiting: ") && strstr(at, "waiting: ") < nl, "%s", out);
    ck_assert_int_eq(reactor_free(r), 0);

    setenv("REACTOR_SLOW_MS", "abc", 1); /* a warning, and off */
    r = reactor_new();
    unsetenv("REACTOR_SLOW_MS");
    ck_assert_ptr_nonnull(r);
    ck_assert(reactor_slow_callback_ms(r) == 0);
    ck_assert_int_eq(reactor_free(r), 0);
}
END_TEST

/* ---- The namer and its ELF parser ---- */

static void a_static_function(void) {}

START_TEST(test_symbol_names)
{
    char buf[256];
    reactor__symbol_name((const void *)a_static_function, buf, sizeof buf);
    ck_assert_str_eq(buf, "a_static_function");
    reactor__symbol_name((const void *)reactor_new, buf, sizeof buf);
    ck_assert_str_eq(buf, "reactor_new");
    /* Not in any object: the bare address. */
    reactor__symbol_name((const void *)(uintptr_t)0x10, buf, sizeof buf);
    ck_assert_str_eq(buf, "0x10");
    /* Too small a buffer: cut, still terminated. */
    reactor__symbol_name((const void *)a_static_function, buf, 4);
    ck_assert_str_eq(buf, "a_s");

    reactor__elf_syms s;
    static const unsigned char junk[] = "\x7f" "ELF garbage that is no ELF file at all";
    ck_assert_int_eq(reactor__elf_parse(junk, sizeof junk, &s), -ENOEXEC);
    ck_assert_int_eq(reactor__elf_parse(junk, 3, &s), -ENOEXEC);
    ck_assert_ptr_null(s.fns);
}
END_TEST

extern Suite *suite_reactor_slow(void);
Suite *suite_reactor_slow(void)
{
    Suite *s = suite_create("reactor_slow");
    TCase *tc = tcase_create("slow");
    int n = th_backend_count();
    tcase_add_loop_test(tc, test_slow_timer_named_with_waiting, 0, n);
    tcase_add_loop_test(tc, test_slow_off_and_under_threshold_silent, 0, n);
    tcase_add_test(tc, test_slow_bad_args);
    tcase_add_loop_test(tc, test_slow_deferred_callback_named_inside_read, 0, n);
    tcase_add_loop_test(tc, test_slow_outer_reported_for_its_own_time, 0, n);
    tcase_add_loop_test(tc, test_slow_thread_call_named, 0, n);
    tcase_add_loop_test(tc, test_slow_coroutine_named, 0, n);
    tcase_add_test(tc, test_slow_signal_named);
    tcase_add_test(tc, test_slow_idle_timeout_named);
    tcase_add_test(tc, test_slow_env_to_stderr);
    tcase_add_test(tc, test_symbol_names);
    suite_add_tcase(s, tc);
    return s;
}
