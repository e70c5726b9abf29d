/* The fast await path (deferred/coro_internal.h): an await is a "waiter pair" in the
 * awaited Deferred's chain, woken by the Deferred's own loop with an inline stack
 * switch; coroutine structs are reused with their stacks; cancellation goes through
 * the canceller alone. These tests check what a user of coro.h sees of it: order of
 * the chain around an await, registers and floating-point modes across switches made
 * from every kind of place, reuse of stacks of different sizes, a paused coroutine
 * Deferred, a detached await after reactor_free. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#if defined(__x86_64__)
#include <fenv.h>
#endif

#include <twistc/coro.h>
#include <twistc/deferred.h>
#include <twistc/reactor.h>

static char tlog[512];

static void logf_(const char *s, int64_t v)
{
    size_t n = strlen(tlog);
    snprintf(tlog + n, sizeof tlog - n, "%s:%lld ", s, (long long)v);
}

static deferred_result log_cb(deferred_result r, void *name)
{
    logf_(name, r.kind == DEFERRED_INT ? r.u.i : -1); /* -1: not an int (NONE) */
    return r;
}

static deferred_result add_one(deferred_result r, void *arg)
{
    r.u.i += 1;
    return r;
}

static deferred_result take_and_unref(deferred *d)
{
    deferred_result r = deferred_none();
    ck_assert_int_eq(deferred_take_result(d, &r), 0);
    deferred_unref(d);
    return r;
}

/* ---- the await is one pair in the chain, in the order it was added --------------- */

struct order {
    deferred *d, *next;
};

static deferred_result body_order(void *arg)
{
    struct order *o = arg;
    deferred_result r = coro_await(o->d);
    logf_("co", r.u.i);
    /* d is running this coroutine: a pair added now waits until we suspend (A6). */
    deferred_add_callback(o->d, log_cb, "added-inside");
    logf_("co-after-add", 0);
    deferred_result r2 = coro_await(o->next);
    return deferred_int(r.u.i + r2.u.i);
}

START_TEST(test_awaitIsOnePairInTheChain)
{
    tlog[0] = 0;
    struct order o = {.d = deferred_new(), .next = deferred_new()};
    deferred_add_callback(o.d, add_one, NULL);      /* before the await: runs first */
    deferred *c = coro_start(NULL, body_order, &o, 0);
    deferred_add_callback(o.d, log_cb, "added-after"); /* after the await: gets NONE */
    ck_assert_uint_eq(deferred_pending_callbacks(o.d), 3);
    deferred_callback(o.d, deferred_int(7));
    ck_assert_str_eq(tlog, "co:8 co-after-add:0 added-after:-1 added-inside:-1 ");
    ck_assert(!deferred_called(c));
    deferred_callback(o.next, deferred_int(100));
    deferred_result r = take_and_unref(c);
    ck_assert_int_eq(r.u.i, 108);
    deferred_unref(o.d);
    deferred_unref(o.next);
}
END_TEST

/* ---- registers across switches made from everywhere ----------------------------- */

/* Many integer and floating-point values live across each await; the resumer is the
 * main stack, or another coroutine's stack (a nested wake). A register the switch or
 * coro_await forgets to save shows up as a wrong sum. */
struct regs {
    deferred *d[20];
    int64_t sum;
    double fsum;
};

static deferred_result body_regs(void *arg)
{
    struct regs *g = arg;
    int64_t a = 1, b = 2, c = 3, e = 5, f = 7, h = 11;
    double x = 0.5, y = 0.25, z = 0.125;
    for (int i = 0; i < 20; i++) {
        deferred_result r = coro_await(g->d[i]);
        a += r.u.i;
        b += a;
        c ^= b;
        e += c & 0xff;
        f -= e;
        h += f * 3;
        x += 1.0;
        y *= 1.5;
        z -= 0.5;
    }
    g->sum = a + b + c + e + f + h;
    g->fsum = x + y + z;
    return deferred_none();
}

static void regs_expected(int64_t *sum, double *fsum)
{
    int64_t a = 1, b = 2, c = 3, e = 5, f = 7, h = 11;
    double x = 0.5, y = 0.25, z = 0.125;
    for (int i = 0; i < 20; i++) {
        a += i;
        b += a;
        c ^= b;
        e += c & 0xff;
        f -= e;
        h += f * 3;
        x += 1.0;
        y *= 1.5;
        z -= 0.5;
    }
    *sum = a + b + c + e + f + h;
    *fsum = x + y + z;
}

/* Fires g->d[i] for odd i from its own stack, while keeping values of its own live. */
static deferred_result body_firer(void *arg)
{
    struct regs *g = arg;
    int64_t k = 12345, m = 777;
    double q = 3.0;
    for (int i = 1; i < 20; i += 2) {
        deferred_callback(g->d[i], deferred_int(i)); /* wakes body_regs on this stack */
        k = k * 3 + i;
        m ^= k;
        q *= 1.25;
        if (i + 1 < 20)
            deferred_callback(g->d[i + 1], deferred_int(i + 1)); /* even ones too */
        deferred_result r = coro_await_take(deferred_succeed(deferred_int(0)));
        k += r.u.i;
    }
    return deferred_int(k + m + (int64_t)q);
}

START_TEST(test_registersSurviveAwaits)
{
    struct regs g;
    memset(&g, 0, sizeof g);
    for (int i = 0; i < 20; i++)
        g.d[i] = deferred_new();
    deferred *c = coro_start(NULL, body_regs, &g, 0);
    deferred_callback(g.d[0], deferred_int(0)); /* from the main stack */
    deferred *firer = coro_start(NULL, body_firer, &g, 0); /* the rest from a coroutine */
    ck_assert(deferred_called(firer));
    int64_t k = 12345, m = 777;
    double q = 3.0;
    for (int i = 1; i < 20; i += 2) {
        k = k * 3 + i;
        m ^= k;
        q *= 1.25;
    }
    deferred_result fr = take_and_unref(firer);
    ck_assert_int_eq(fr.u.i, k + m + (int64_t)q);
    ck_assert(deferred_called(c));
    int64_t sum;
    double fsum;
    regs_expected(&sum, &fsum);
    ck_assert_int_eq(g.sum, sum);
    ck_assert(g.fsum == fsum);
    deferred_unref(c);
    for (int i = 0; i < 20; i++)
        deferred_unref(g.d[i]);
}
END_TEST

/* ---- floating-point modes are per coroutine (callee-saved in the x86-64 ABI) ---- */

#if defined(__x86_64__)
struct fpm {
    deferred *d;
    int seen_after_resume;
};

static deferred_result body_fp(void *arg)
{
    struct fpm *p = arg;
    fesetround(FE_UPWARD);
    deferred_result r = coro_await(p->d);
    p->seen_after_resume = fegetround();
    fesetround(FE_TONEAREST);
    return r;
}

START_TEST(test_roundingModeIsPerCoroutine)
{
    struct fpm p = {.d = deferred_new()};
    ck_assert_int_eq(fegetround(), FE_TONEAREST);
    deferred *c = coro_start(NULL, body_fp, &p, 0);
    ck_assert_int_eq(fegetround(), FE_TONEAREST); /* the coroutine's mode stayed there */
    fesetround(FE_DOWNWARD);
    deferred_callback(p.d, deferred_int(1));
    ck_assert_int_eq(p.seen_after_resume, FE_UPWARD);
    ck_assert_int_eq(fegetround(), FE_DOWNWARD); /* ours came back */
    fesetround(FE_TONEAREST);
    deferred_result r = take_and_unref(c);
    ck_assert_int_eq(r.u.i, 1);
    deferred_unref(p.d);
}
END_TEST
#endif

/* ---- reused structs and stacks of different sizes -------------------------------- */

/* Touches `use` bytes of stack, 8 KiB per frame: a reused stack smaller than asked
 * would hit the guard page. */
__attribute__((noinline)) static int touch(size_t use)
{
    volatile char buf[8192];
    for (size_t i = 0; i < sizeof buf; i += 512)
        buf[i] = (char)i;
    if (use > sizeof buf)
        return touch(use - sizeof buf) + buf[512];
    return buf[512];
}

static deferred_result body_touch(void *arg)
{
    size_t use = *(size_t *)arg;
    return deferred_int(use ? touch(use) : 0);
}

START_TEST(test_reusedStacksHaveTheSizeAsked)
{
    size_t sizes[] = {16 * 1024, 1024 * 1024, 0, 16 * 1024, 1024 * 1024, 512 * 1024};
    size_t uses[] = {0, 700 * 1024, 150 * 1024, 4 * 1024, 900 * 1024, 400 * 1024};
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
            deferred *d = coro_start(NULL, body_touch, &uses[i], sizes[i]);
            ck_assert_ptr_nonnull(d);
            ck_assert(deferred_called(d));
            deferred_unref(d);
        }
    }
}
END_TEST

/* ---- a paused coroutine Deferred --------------------------------------------------- */

struct paused {
    deferred *wait_on;
};

static deferred_result body_fail_after_await(void *arg)
{
    struct paused *p = arg;
    deferred_result r = coro_await(p->wait_on);
    if (deferred_result_is_failure(&r))
        return r;
    deferred_result_clear(&r);
    return deferred_error(EPIPE, "late failure");
}

static deferred_result store_code(deferred_result r, void *slot)
{
    *(int *)slot = deferred_result_code(&r);
    deferred_result_clear(&r);
    return deferred_none();
}

/* The body returns (its struct is reused or freed) while the user holds its Deferred
 * paused; the failure comes out at unpause. */
START_TEST(test_pausedCoroutineDeferredGetsResultAtUnpause)
{
    struct paused p = {.wait_on = deferred_new()};
    deferred *c = coro_start(NULL, body_fail_after_await, &p, 0);
    int code = 0;
    deferred_add_errback(c, store_code, &code);
    deferred_pause(c);
    deferred_callback(p.wait_on, deferred_int(1)); /* the body returns now */
    /* Start and finish others, which reuse the finished coroutine's struct. */
    size_t zero = 0;
    for (int i = 0; i < 20; i++)
        deferred_unref(coro_start(NULL, body_touch, &zero, 0));
    ck_assert_int_eq(code, 0);
    deferred_unpause(c);
    ck_assert_int_eq(code, EPIPE);
    deferred_unref(c);
    deferred_unref(p.wait_on);
}
END_TEST

/* Cancelled while paused: the cancellation still reaches the body; its result comes
 * out at unpause. */
START_TEST(test_cancelPausedCoroutineDeferred)
{
    struct paused p = {.wait_on = deferred_new()};
    deferred *c = coro_start(NULL, body_fail_after_await, &p, 0);
    int code = 0;
    deferred_add_errback(c, store_code, &code);
    deferred_pause(c);
    deferred_cancel(c);
    ck_assert_int_eq(deferred_pending_callbacks(p.wait_on), 0); /* the body got it */
    ck_assert_int_eq(code, 0);
    deferred_unpause(c);
    ck_assert_int_eq(code, ECANCELED);
    deferred_unref(c);
    deferred_unref(p.wait_on);
}
END_TEST

/* ---- a detached await (reactor freed) never calls into the finished coroutine ----- */

static deferred_result body_await_forever(void *arg)
{
    deferred_result r = coro_await(arg);
    return r; /* ECANCELED: closed */
}

START_TEST(test_detachedAwaitDropsResult)
{
    tlog[0] = 0;
    reactor *r = reactor_new();
    ck_assert_ptr_nonnull(r);
    deferred *never = deferred_new();
    deferred *c = coro_start(r, body_await_forever, never, 0);
    deferred_add_callback(never, log_cb, "later");
    ck_assert_int_eq(reactor_free(r), 0); /* closes the coroutine: it returns */
    deferred_result res = take_and_unref(c);
    ck_assert_int_eq(deferred_result_code(&res), ECANCELED);
    deferred_result_clear(&res);
    /* Reuse the coroutine's struct, then fire: the detached pair drops the result (an
     * owned string: a pair still pointing to the coroutine would leak it or, under
     * ASan, touch freed memory). */
    deferred *fired = deferred_succeed(deferred_int(3));
    deferred_unref(coro_start(NULL, body_await_forever, fired, 0));
    deferred_unref(fired);
    deferred_callback(never, deferred_str_dup("nobody wants me"));
    ck_assert_str_eq(tlog, "later:-1 ");
    deferred_unref(never);
}
END_TEST

/* ---- coro_await_take of a Deferred nobody else holds: freed unfired at once ------ */

static deferred_result body_take_orphan(void *arg)
{
    deferred_result r = coro_await_take(deferred_new()); /* only reference: dropped */
    *(int *)arg = deferred_result_code(&r);
    deferred_result_clear(&r);
    return deferred_int(2);
}

START_TEST(test_awaitTakeOfUnheldDeferredFailsAtOnce)
{
    int code = 0;
    deferred *c = coro_start(NULL, body_take_orphan, &code, 0);
    ck_assert(deferred_called(c)); /* did not suspend */
    ck_assert_int_eq(code, ECANCELED);
    deferred_result r = take_and_unref(c);
    ck_assert_int_eq(r.u.i, 2);
}
END_TEST

extern Suite *suite_deferred_coro_fast(void);
Suite *suite_deferred_coro_fast(void)
{
    Suite *s = suite_create("deferred_coro_fast");
    TCase *tc = tcase_create("fast");
    tcase_add_test(tc, test_awaitIsOnePairInTheChain);
    tcase_add_test(tc, test_registersSurviveAwaits);
#if defined(__x86_64__)
    tcase_add_test(tc, test_roundingModeIsPerCoroutine);
#endif
    tcase_add_test(tc, test_reusedStacksHaveTheSizeAsked);
    tcase_add_test(tc, test_pausedCoroutineDeferredGetsResultAtUnpause);
    tcase_add_test(tc, test_cancelPausedCoroutineDeferred);
    tcase_add_test(tc, test_detachedAwaitDropsResult);
    tcase_add_test(tc, test_awaitTakeOfUnheldDeferredFailsAtOnce);
    suite_add_tcase(s, tc);
    return s;
}
