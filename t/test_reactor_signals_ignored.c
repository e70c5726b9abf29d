/* reactor_stop_on_signals and a SIGINT inherited as ignored (a shell's background job,
 * nohup): it stays ignored, as in Twisted, while SIGTERM still stops the reactor. */
#include <check.h>
#include <signal.h>
#include <string.h>

#include "helpers.h"

struct steps {
    int hops, reached;
    int sig;
};

/* Raises the signal, then goes on for a few iterations (call_soon hops): had the signal
 * stopped the reactor, the last hop would never run. */
static void hop(reactor *r, void *data)
{
    struct steps *s = data;
    if (s->hops == 0)
        raise(s->sig);
    if (++s->hops < 20) {
        reactor_call_soon(r, hop, s);
        return;
    }
    s->reached = 1;
    raise(SIGTERM); /* SIGTERM is still taken: this stops the reactor */
}

START_TEST(test_ignored_sigint_stays_ignored)
{
    struct sigaction ign, old, now;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    ck_assert_int_eq(sigaction(SIGINT, &ign, &old), 0);
    reactor *r = th_reactor(_i);
    ck_assert_int_eq(reactor_stop_on_signals(r), 0);
    ck_assert_int_eq(sigaction(SIGINT, NULL, &now), 0);
    ck_assert(now.sa_handler == SIG_IGN); /* left alone */
    struct steps s = {0, 0, SIGINT};
    reactor_call_soon(r, hop, &s);
    ck_assert_int_eq(reactor_run(r), 0); /* stopped by the SIGTERM only */
    ck_assert_int_eq(s.reached, 1);
    reactor_free(r);
    ck_assert_int_eq(sigaction(SIGINT, NULL, &now), 0);
    ck_assert(now.sa_handler == SIG_IGN);
    ck_assert_int_eq(sigaction(SIGINT, &old, NULL), 0);
}
END_TEST

/* The default SIGINT is still taken (the contrast: the same hops never finish). */
START_TEST(test_default_sigint_stops)
{
    struct sigaction dfl, old;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    ck_assert_int_eq(sigaction(SIGINT, &dfl, &old), 0);
    reactor *r = th_reactor(_i);
    ck_assert_int_eq(reactor_stop_on_signals(r), 0);
    struct steps s = {0, 0, SIGINT};
    reactor_call_soon(r, hop, &s);
    ck_assert_int_eq(reactor_run(r), 0);
    ck_assert_int_eq(s.reached, 0);
    reactor_free(r);
    ck_assert_int_eq(sigaction(SIGINT, &old, NULL), 0);
}
END_TEST

extern Suite *suite_reactor_signals_ignored(void);
Suite *suite_reactor_signals_ignored(void)
{
    Suite *s = suite_create("reactor_signals_ignored");
    TCase *tc = tcase_create("sigint_ignored");
    tcase_set_timeout(tc, 20);
    int n = th_backend_count();
    tcase_add_loop_test(tc, test_ignored_sigint_stays_ignored, 0, n);
    tcase_add_loop_test(tc, test_default_sigint_stops, 0, n);
    suite_add_tcase(s, tc);
    return s;
}
