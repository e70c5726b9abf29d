/* Idle timeouts (Twisted's TimeoutMixin, issue 10): reactor_idle and
 * transport_set_timeout. The fake clock makes them exact and instant; one real-clock test
 * per backend checks "never early" against an independent clock. */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "helpers.h"
#include "transport_helpers.h"

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct {
    int fired;
    double at;        /* reactor time of the last run */
    double mono_at;   /* independent clock, real-clock test */
    reactor_idle *it; /* freed from inside, when asked */
    int free_inside;
} idle_rec;

static void on_idle(reactor *r, void *data)
{
    idle_rec *rec = data;
    rec->fired++;
    rec->at = reactor_seconds(r);
    rec->mono_at = mono();
    if (rec->free_inside) {
        reactor_idle_free(rec->it);
        rec->it = NULL;
    }
}

static reactor *fake(int i)
{
    reactor *r = th_reactor(i);
    ck_assert_int_eq(reactor_use_fake_clock(r, 0), 0);
    return r;
}

/* It runs `seconds` after the last touch, exactly, never before; touches in between
 * push it back. */
START_TEST(test_idle_fires_after_last_touch)
{
    reactor *r = fake(_i);
    idle_rec rec = {0};
    reactor_idle *it = reactor_idle_new(r, 10, on_idle, &rec);
    ck_assert_ptr_nonnull(it);
    ck_assert(reactor_idle_active(it));
    ck_assert_int_eq(reactor_advance(r, 9), 0);
    reactor_idle_touch(it); /* at 9: now due at 19 */
    ck_assert_int_eq(reactor_advance(r, 9), 0); /* 18: the timer armed for 10 re-armed */
    ck_assert_int_eq(rec.fired, 0);
    reactor_idle_touch(it); /* at 18: due at 28 */
    ck_assert_int_eq(reactor_advance(r, 9.999), 0);
    ck_assert_int_eq(rec.fired, 0);
    ck_assert_int_eq(reactor_advance(r, 0.001), 0);
    ck_assert_int_eq(rec.fired, 1);
    ck_assert(fabs(rec.at - 28.0) < 1e-9);
    ck_assert(!reactor_idle_active(it));
    reactor_idle_free(it);
    reactor_free(r);
}
END_TEST

/* O(1) per touch and no timer per touch: a million touches leave one pending timer, and
 * one touch per second for 100 s with a 10 s timeout never lets it run. */
START_TEST(test_idle_touch_moves_no_timer)
{
    reactor *r = fake(_i);
    idle_rec rec = {0};
    reactor_idle *it = reactor_idle_new(r, 10, on_idle, &rec);
    ck_assert_uint_eq(reactor_pending_timers(r), 1);
    for (int k = 0; k < 1000000; k++)
        reactor_idle_touch(it);
    ck_assert_uint_eq(reactor_pending_timers(r), 1);
    for (int s = 0; s < 100; s++) {
        ck_assert_int_eq(reactor_advance(r, 1), 0);
        reactor_idle_touch(it);
        ck_assert_uint_eq(reactor_pending_timers(r), 1);
    }
    ck_assert_int_eq(rec.fired, 0);
    ck_assert_int_eq(reactor_advance(r, 10), 0);
    ck_assert_int_eq(rec.fired, 1);
    ck_assert(fabs(rec.at - 110.0) < 1e-9);
    ck_assert_uint_eq(reactor_pending_timers(r), 0);
    reactor_idle_free(it);
    reactor_free(r);
}
END_TEST

/* After it ran it stays off (touches do nothing) until set again; set(0) turns it off;
 * set restarts from now; free while pending: it never runs. */
START_TEST(test_idle_off_set_free)
{
    reactor *r = fake(_i);
    idle_rec rec = {0};
    reactor_idle *it = reactor_idle_new(r, 5, on_idle, &rec);
    ck_assert_int_eq(reactor_advance(r, 5), 0);
    ck_assert_int_eq(rec.fired, 1);
    reactor_idle_touch(it);
    ck_assert_int_eq(reactor_advance(r, 50), 0);
    ck_assert_int_eq(rec.fired, 1);
    ck_assert_int_eq(reactor_idle_set(it, 2), 0); /* at 55: due at 57 */
    ck_assert(reactor_idle_active(it));
    ck_assert_int_eq(reactor_advance(r, 1), 0);
    ck_assert_int_eq(reactor_idle_set(it, 2), 0); /* at 56: restarted, due at 58 */
    ck_assert_int_eq(reactor_advance(r, 1.5), 0);
    ck_assert_int_eq(rec.fired, 1);
    ck_assert_int_eq(reactor_advance(r, 0.5), 0);
    ck_assert_int_eq(rec.fired, 2);
    ck_assert(fabs(rec.at - 58.0) < 1e-9);
    ck_assert_int_eq(reactor_idle_set(it, 1), 0);
    ck_assert_int_eq(reactor_idle_set(it, 0), 0); /* off */
    ck_assert(!reactor_idle_active(it));
    ck_assert_uint_eq(reactor_pending_timers(r), 0);
    ck_assert_int_eq(reactor_advance(r, 10), 0);
    ck_assert_int_eq(rec.fired, 2);
    ck_assert_int_eq(reactor_idle_set(it, 1), 0);
    reactor_idle_free(it); /* pending: cancelled */
    ck_assert_uint_eq(reactor_pending_timers(r), 0);
    ck_assert_int_eq(reactor_advance(r, 10), 0);
    ck_assert_int_eq(rec.fired, 2);
    /* Freed from inside its own function. */
    rec.it = reactor_idle_new(r, 1, on_idle, &rec);
    rec.free_inside = 1;
    ck_assert_int_eq(reactor_advance(r, 1), 0);
    ck_assert_int_eq(rec.fired, 3);
    ck_assert_ptr_null(rec.it);
    reactor_free(r);
}
END_TEST

START_TEST(test_idle_bad_args)
{
    reactor *r = fake(_i);
    idle_rec rec = {0};
    errno = 0;
    ck_assert_ptr_null(reactor_idle_new(NULL, 1, on_idle, &rec));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_ptr_null(reactor_idle_new(r, 1, NULL, &rec));
    ck_assert_ptr_null(reactor_idle_new(r, -1, on_idle, &rec));
    ck_assert_ptr_null(reactor_idle_new(r, NAN, on_idle, &rec));
    ck_assert_ptr_null(reactor_idle_new(r, INFINITY, on_idle, &rec));
    reactor_idle *it = reactor_idle_new(r, 0, on_idle, &rec); /* made, but off */
    ck_assert_ptr_nonnull(it);
    ck_assert(!reactor_idle_active(it));
    ck_assert_int_eq(reactor_idle_set(it, -2), -EINVAL);
    ck_assert_int_eq(reactor_idle_set(NULL, 1), -EINVAL);
    reactor_idle_touch(NULL);
    reactor_idle_free(NULL);
    reactor_idle_free(it);
    reactor_free(r);
}
END_TEST

/* ---- transport_set_timeout ------------------------------------------------------ */

static double srv_timeout = 10;
static protocol_ops timeout_ops; /* the helper protocol's ops + timeout_connection */
static int timeouts;
static int timeout_writes_bye;

static void on_timeout(protocol *p)
{
    timeouts++;
    if (timeout_writes_bye) {
        transport_write(p->transport, "bye\n", 4);
        transport_lose_connection(p->transport);
    }
}

static void made_with_timeout(struct tp *p)
{
    ck_assert_int_eq(transport_set_timeout(p->base.transport, srv_timeout), 0);
}

static void made_with_timeout_cb(struct tp *p)
{
    timeout_ops = *p->base.ops;
    timeout_ops.timeout_connection = on_timeout;
    p->base.ops = &timeout_ops;
    made_with_timeout(p);
}

/* I/O with the fake clock: polls do not block, so iterate until cond or give up. */
#define SPIN_UNTIL(x, cond)                                                                 \
    do {                                                                                    \
        for (int k_ = 0; k_ < 100000 && !(cond); k_++)                                      \
            reactor_iterate((x)->r, 0);                                                     \
    } while (0)

static void open_fake(struct tfx *x, int backend)
{
    tfx_open(x, backend, TP_RECORD);
    ck_assert_int_eq(reactor_use_fake_clock(x->r, 0), 0);
}

/* Default: an idle connection is closed cleanly after the timeout; every read pushes it
 * back. */
START_TEST(test_timeout_closes_idle_connection)
{
    struct tfx x;
    open_fake(&x, _i);
    srv_timeout = 10;
    x.srv.on_made = made_with_timeout;
    struct rawc *c = tfx_raw(&x);
    ck_assert(tfx_wait_made(&x, 1, 5));
    ck_assert_int_eq(reactor_advance(x.r, 9), 0);
    rawc_send(c, "a", 1); /* at 9: the connection is busy again */
    SPIN_UNTIL(&x, x.srv.last && x.srv.last->in_len == 1);
    ck_assert_uint_eq(x.srv.last->in_len, 1);
    ck_assert_int_eq(reactor_advance(x.r, 9.999), 0);
    SPIN_UNTIL(&x, x.srv.lost > 0 && 0); /* a few iterations: nothing happens */
    ck_assert_int_eq(x.srv.lost, 0);
    ck_assert_int_eq(reactor_advance(x.r, 0.001), 0); /* 19: idle for 10 s */
    SPIN_UNTIL(&x, x.srv.lost == 1 && c->eof);
    ck_assert_int_eq(x.srv.lost, 1);
    ck_assert_int_eq(x.srv.lost_kind[PROTOCOL_DONE], 1); /* lose_connection: clean */
    ck_assert(c->eof);
    tfx_close(&x);
}
END_TEST

/* The protocol's timeout_connection decides (here: a last word, then close); it runs
 * once, and not at all while data keeps coming. */
START_TEST(test_timeout_connection_callback)
{
    struct tfx x;
    open_fake(&x, _i);
    srv_timeout = 2;
    timeouts = 0;
    timeout_writes_bye = 1;
    x.srv.on_made = made_with_timeout_cb;
    struct rawc *c = tfx_raw(&x);
    ck_assert(tfx_wait_made(&x, 1, 5));
    size_t pending_before = reactor_pending_timers(x.r);
    for (int k = 1; k <= 20; k++) { /* a byte every second for 20 s */
        ck_assert_int_eq(reactor_advance(x.r, 1), 0);
        rawc_send(c, "x", 1);
        SPIN_UNTIL(&x, x.srv.last && x.srv.last->in_len == (size_t)k);
        ck_assert_uint_eq(reactor_pending_timers(x.r), pending_before); /* no timer per read */
    }
    ck_assert_int_eq(timeouts, 0);
    ck_assert_int_eq(reactor_advance(x.r, 2), 0);
    c->want = 4;
    SPIN_UNTIL(&x, c->eof);
    ck_assert_int_eq(timeouts, 1);
    ck_assert_uint_eq(c->len, 4);
    ck_assert(memcmp(c->buf, "bye\n", 4) == 0);
    ck_assert(c->eof);
    ck_assert_int_eq(x.srv.lost, 1);
    timeout_writes_bye = 0;
    tfx_close(&x);
}
END_TEST

/* A callback that keeps the connection: the timeout is off afterwards, and
 * transport_set_timeout turns it on again; 0 turns it off; bad values are refused. */
static transport *kept;
static void made_keep(struct tp *p)
{
    made_with_timeout_cb(p);
    kept = p->base.transport;
}

START_TEST(test_timeout_off_again_and_errors)
{
    struct tfx x;
    open_fake(&x, _i);
    srv_timeout = 3;
    timeouts = 0;
    timeout_writes_bye = 0;
    kept = NULL;
    x.srv.on_made = made_keep;
    tfx_raw(&x);
    ck_assert(tfx_wait_made(&x, 1, 5));
    ck_assert_ptr_nonnull(kept);
    ck_assert_int_eq(reactor_advance(x.r, 3), 0);
    ck_assert_int_eq(timeouts, 1);
    ck_assert_int_eq(reactor_advance(x.r, 30), 0);
    ck_assert_int_eq(timeouts, 1); /* off after it ran */
    ck_assert_int_eq(transport_set_timeout(kept, 1), 0);
    ck_assert_int_eq(reactor_advance(x.r, 1), 0);
    ck_assert_int_eq(timeouts, 2);
    ck_assert_int_eq(transport_set_timeout(kept, 1), 0);
    ck_assert_int_eq(transport_set_timeout(kept, 0), 0); /* off */
    ck_assert_int_eq(reactor_advance(x.r, 5), 0);
    ck_assert_int_eq(timeouts, 2);
    ck_assert_int_eq(transport_set_timeout(kept, -1), -EINVAL);
    ck_assert_int_eq(transport_set_timeout(kept, NAN), -EINVAL);
    ck_assert_int_eq(transport_set_timeout(NULL, 1), -EINVAL);
    ck_assert_int_eq(x.srv.lost, 0);
    ck_assert_int_eq(transport_set_timeout(kept, 1), 0);
    ck_assert_int_eq(transport_lose_connection(kept), 0);
    ck_assert_int_eq(transport_set_timeout(kept, 1), -ENOTCONN);
    SPIN_UNTIL(&x, x.srv.lost == 1);
    ck_assert_int_eq(x.srv.lost, 1);
    ck_assert_int_eq(reactor_advance(x.r, 5), 0); /* closed: its timeout went with it */
    ck_assert_int_eq(timeouts, 2);
    tfx_close(&x);
}
END_TEST

/* Real clock: the timeout never runs before `seconds` after the last byte the server
 * read (measured with an independent clock on the sending side), nor before `seconds`
 * after the connection was opened. No upper bound: a loaded machine may run it late, or
 * even before our byte arrives (then only the second bound applies). */
static double real_mono_fired;
static size_t real_in_at_fire;
static transport *real_t;
static void on_timeout_real(protocol *p)
{
    real_mono_fired = mono();
    real_in_at_fire = ((struct tp *)p)->in_len;
    transport_lose_connection(p->transport);
}
static void made_real(struct tp *p)
{
    timeout_ops = *p->base.ops;
    timeout_ops.timeout_connection = on_timeout_real;
    p->base.ops = &timeout_ops;
    real_t = p->base.transport;
    ck_assert_int_eq(transport_set_timeout(p->base.transport, 0.05), 0);
}

START_TEST(test_timeout_real_clock_never_early)
{
    struct tfx x;
    tfx_open(&x, _i, TP_RECORD);
    real_mono_fired = 0;
    real_in_at_fire = 0;
    x.srv.on_made = made_real;
    double opened = mono();
    struct rawc *c = tfx_raw(&x);
    ck_assert(tfx_wait_made(&x, 1, 5));
    double t0 = mono();
    while (mono() - t0 < 0.02) /* 20 ms into the 50, the connection talks */
        reactor_iterate(x.r, 0.005);
    double sent_at = mono();
    ssize_t w = send(c->fd, "z", 1, MSG_NOSIGNAL); /* may fail if it already timed out */
    for (int n = 0; n < 10000 && x.srv.lost == 0; n++)
        reactor_iterate(x.r, 0.1);
    ck_assert_int_eq(x.srv.lost, 1);
    ck_assert(real_mono_fired > 0);
    ck_assert(real_mono_fired >= opened + 0.05); /* never early */
    if (w == 1 && real_in_at_fire == 1)
        ck_assert(real_mono_fired >= sent_at + 0.05); /* counted from the last byte */
    tfx_close(&x);
}
END_TEST

extern Suite *suite_reactor_idle(void);
Suite *suite_reactor_idle(void)
{
    Suite *s = suite_create("reactor_idle");
    TCase *tc = tcase_create("idle");
    tcase_set_timeout(tc, 30);
    int n = th_backend_count();
    tcase_add_test(tc, test_idle_fires_after_last_touch);
    tcase_add_test(tc, test_idle_touch_moves_no_timer);
    tcase_add_test(tc, test_idle_off_set_free);
    tcase_add_test(tc, test_idle_bad_args);
    tcase_add_loop_test(tc, test_timeout_closes_idle_connection, 0, n);
    tcase_add_loop_test(tc, test_timeout_connection_callback, 0, n);
    tcase_add_loop_test(tc, test_timeout_off_again_and_errors, 0, n);
    tcase_add_loop_test(tc, test_timeout_real_clock_never_early, 0, n);
    suite_add_tcase(s, tc);
    return s;
}
