/* Coroutines over Deferreds (deferred/coro.h): Twisted's inlineCallbacks semantics
 * (semantics.md A23). Test names follow Twisted's tests where one exists. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <twistc/coro.h>
#include <twistc/deferred.h>
#include <twistc/reactor.h>

/* Takes the result out of a fired Deferred and drops the Deferred. */
static deferred_result take_and_unref(deferred *d)
{
    deferred_result r = deferred_none();
    ck_assert_int_eq(deferred_take_result(d, &r), 0);
    deferred_unref(d);
    return r;
}

/* ---- return values (testReturnValue, testReturnNoValue, test_returnWithValue) ---- */

static deferred_result body_return_42(void *arg)
{
    ck_assert(coro_in_coroutine());
    return deferred_int(42);
}

START_TEST(testReturnValue)
{
    ck_assert(!coro_in_coroutine());
    deferred *d = coro_start(NULL, body_return_42, NULL, 0);
    ck_assert_ptr_nonnull(d);
    ck_assert(deferred_called(d)); /* ran synchronously to its end */
    deferred_result r = take_and_unref(d);
    ck_assert_int_eq(r.kind, DEFERRED_INT);
    ck_assert_int_eq(r.u.i, 42);
}
END_TEST

static deferred_result body_return_none(void *arg)
{
    return deferred_none();
}

START_TEST(testReturnNoValue)
{
    deferred *d = coro_start(NULL, body_return_none, NULL, 0);
    deferred_result r = take_and_unref(d);
    ck_assert_int_eq(r.kind, DEFERRED_NONE);
}
END_TEST

static deferred_result body_return_str(void *arg)
{
    return deferred_str_dup("hello");
}

START_TEST(test_returnOwnedString)
{
    deferred *d = coro_start(NULL, body_return_str, NULL, 0);
    deferred_result r = take_and_unref(d);
    ck_assert_int_eq(r.kind, DEFERRED_STR);
    ck_assert_str_eq(r.u.s, "hello");
    deferred_result_clear(&r);
}
END_TEST

/* ---- awaiting ------------------------------------------------------------------- */

struct steps {
    deferred *wait_on;
    int step;
    deferred_result got;
};

static deferred_result body_await_once(void *arg)
{
    struct steps *s = arg;
    s->step = 1;
    deferred_result r = coro_await(s->wait_on);
    s->step = 2;
    if (deferred_result_is_failure(&r))
        return r; /* the failure fires our Deferred */
    int64_t v = r.u.i;
    deferred_result_clear(&r);
    return deferred_int(v + 1);
}

START_TEST(test_awaitUnfiredSuspends)
{
    struct steps s = {.wait_on = deferred_new()};
    deferred *d = coro_start(NULL, body_await_once, &s, 0);
    ck_assert_int_eq(s.step, 1);   /* ran up to the await */
    ck_assert(!deferred_called(d)); /* and returned from coro_start */
    ck_assert_int_eq(deferred_callback(s.wait_on, deferred_int(5)), 0);
    ck_assert_int_eq(s.step, 2);
    /* The awaited Deferred's result moved into the coroutine: NONE is left. */
    const deferred_result *left = deferred_peek_result(s.wait_on);
    ck_assert_ptr_nonnull(left);
    ck_assert_int_eq(left->kind, DEFERRED_NONE);
    deferred_unref(s.wait_on);
    deferred_result r = take_and_unref(d);
    ck_assert_int_eq(r.u.i, 6);
}
END_TEST

START_TEST(test_awaitFailureIsAValue)
{
    struct steps s = {.wait_on = deferred_new()};
    deferred *d = coro_start(NULL, body_await_once, &s, 0);
    deferred_errback_new(s.wait_on, ECONNRESET, "peer went away");
    ck_assert_int_eq(s.step, 2);
    /* handled by the coroutine: the awaited Deferred holds no failure any more */
    ck_assert_int_eq(deferred_peek_result(s.wait_on)->kind, DEFERRED_NONE);
    deferred_unref(s.wait_on);
    deferred_result r = take_and_unref(d);
    ck_assert_int_eq(deferred_result_code(&r), ECONNRESET);
    ck_assert_str_eq(r.u.failure->message, "peer went away");
    deferred_result_clear(&r);
}
END_TEST

START_TEST(test_awaitAlreadyFired)
{
    struct steps s = {.wait_on = deferred_succeed(deferred_int(9))};
    deferred *d = coro_start(NULL, body_await_once, &s, 0);
    ck_assert_int_eq(s.step, 2);
    deferred_unref(s.wait_on);
    deferred_result r = take_and_unref(d);
    ck_assert_int_eq(r.u.i, 10);
}
END_TEST

/* BaseDefgenTests.testStackUsage: 20 000 awaits of fired Deferreds loop, on a 16 KiB
 * stack (a recursion of even 8 bytes per await would overflow it). */
static deferred_result body_many_fired(void *arg)
{
    int64_t sum = 0;
    for (int i = 0; i < 20000; i++) {
        deferred_result r = coro_await_take(deferred_succeed(deferred_int(1)));
        sum += r.u.i;
    }
    return deferred_int(sum);
}

START_TEST(testStackUsage)
{
    deferred *d = coro_start(NULL, body_many_fired, NULL, 16 * 1024);
    deferred_result r = take_and_unref(d);
    ck_assert_int_eq(r.u.i, 20000);
}
END_TEST

/* Many real suspensions: the coroutine and the test take turns 2 000 times. */
struct pingpong {
    deferred *next;
    int rounds;
};

static deferred_result body_pingpong(void *arg)
{
    struct pingpong *p = arg;
    int64_t sum = 0;
    for (int i = 0; i < 2000; i++) {
        deferred *d = deferred_new();
        p->next = deferred_ref(d); /* the producer's (the test's) reference */
        deferred_result r = coro_await_take(d);
        sum += r.u.i;
        p->rounds++;
    }
    p->next = NULL;
    return deferred_int(sum);
}

START_TEST(test_manySuspensions)
{
    struct pingpong p = {0};
    deferred *d = coro_start(NULL, body_pingpong, &p, 0);
    for (int i = 0; i < 2000 && p.next; i++) {
        deferred *n = p.next;
        p.next = NULL;
        deferred_callback(n, deferred_int(i)); /* resumes the body: sets p.next again */
        deferred_unref(n);
    }
    ck_assert_int_eq(p.rounds, 2000);
    deferred_result r = take_and_unref(d);
    ck_assert_int_eq(r.u.i, 2000L * 1999 / 2);
}
END_TEST

START_TEST(test_awaitOutsideCoroutine)
{
    deferred *x = deferred_succeed(deferred_int(1));
    deferred_result r = coro_await(x);
    ck_assert_int_eq(deferred_result_code(&r), EINVAL);
    deferred_result_clear(&r);
    /* nothing was taken from x */
    ck_assert_int_eq(deferred_peek_result(x)->u.i, 1);
    deferred_unref(x);
    r = coro_await_take(NULL);
    ck_assert_int_eq(deferred_result_code(&r), EINVAL);
    deferred_result_clear(&r);
    ck_assert_ptr_null(coro_start(NULL, NULL, NULL, 0));
    ck_assert_int_eq(errno, EINVAL);
}
END_TEST

/* `return deferred_continue_with(d)` waits for d. */
static deferred_result body_return_chain(void *arg)
{
    return deferred_continue_with(deferred_ref(arg));
}

START_TEST(test_returnDeferred)
{
    deferred *inner = deferred_new();
    deferred *d = coro_start(NULL, body_return_chain, inner, 0);
    ck_assert(!deferred_called(d));
    deferred_callback(inner, deferred_int(77));
    deferred_unref(inner);
    deferred_result r = take_and_unref(d);
    ck_assert_int_eq(r.u.i, 77);
}
END_TEST

/* Dropping the coroutine's Deferred does not stop it, and nothing leaks. */
START_TEST(test_dropResultEarly)
{
    struct steps s = {.wait_on = deferred_new()};
    deferred_unref(coro_start(NULL, body_await_once, &s, 0));
    deferred_callback(s.wait_on, deferred_int(1));
    ck_assert_int_eq(s.step, 2);
    deferred_unref(s.wait_on);
}
END_TEST

/* ---- coroutines awaiting coroutines --------------------------------------------- */

struct nest {
    deferred *leaf;
    int depth;
    int max;
};

static deferred_result body_nest(void *arg)
{
    struct nest *n = arg;
    if (n->depth == n->max)
        return coro_await(n->leaf); /* the innermost waits for the test */
    n->depth++;
    deferred_result r = coro_await_take(coro_start(NULL, body_nest, n, 32 * 1024));
    if (deferred_result_is_failure(&r))
        return r;
    return deferred_int(r.u.i + 1);
}

START_TEST(test_nestedCoroutines)
{
    struct nest n = {.leaf = deferred_new(), .max = 100};
    deferred *d = coro_start(NULL, body_nest, &n, 32 * 1024);
    ck_assert_int_eq(n.depth, 100);
    ck_assert(!deferred_called(d));
    deferred_callback(n.leaf, deferred_int(0));
    deferred_unref(n.leaf);
    deferred_result r = take_and_unref(d);
    ck_assert_int_eq(r.u.i, 100);
}
END_TEST

/* ---- cancellation (CancellationTests) -------------------------------------------- */

enum { UNTRANSLATED = 30001, TRANSLATED = 30002, DONTFAIL = 30003 };

struct ctest {
    deferred *child;     /* what the body awaits */
    int child_saw_cancel;
};

/* Twisted's sampleInlineCB: x = yield child; translate UntranslatedError into
 * TranslatedError, DontFail(v) into v - 2; return x + 1. */
static deferred_result sample_body(void *arg)
{
    struct ctest *t = arg;
    deferred_result r = coro_await(t->child);
    int64_t x;
    if (deferred_result_is_failure(&r)) {
        if (deferred_result_code(&r) == UNTRANSLATED) {
            deferred_result_clear(&r);
            return deferred_error(TRANSLATED, "translated");
        }
        if (deferred_result_code(&r) == DONTFAIL) {
            x = r.u.failure->index - 2; /* the "actual value" rides in index */
            deferred_result_clear(&r);
        } else {
            return r;
        }
    } else {
        x = r.kind == DEFERRED_INT ? r.u.i : 0;
        deferred_result_clear(&r);
    }
    return deferred_int(x + 1);
}

static deferred_result note_cancel_eb(deferred_result r, void *arg)
{
    struct ctest *t = arg;
    t->child_saw_cancel = deferred_result_code(&r) == ECANCELED;
    return r;
}

START_TEST(test_cascadeCancellingOnCancel)
{
    struct ctest t = {.child = deferred_new()};
    deferred_add_errback(t.child, note_cancel_eb, &t);
    deferred *d = coro_start(NULL, sample_body, &t, 0);
    deferred_cancel(d);
    ck_assert(t.child_saw_cancel);
    deferred_result r = take_and_unref(d);
    ck_assert_int_eq(deferred_result_code(&r), ECANCELED);
    deferred_result_clear(&r);
    deferred_unref(t.child);
}
END_TEST

START_TEST(test_errbackCancelledErrorOnCancel)
{
    struct ctest t = {.child = deferred_new()};
    deferred *d = coro_start(NULL, sample_body, &t, 0);
    deferred_cancel(d);
    deferred_result r = take_and_unref(d);
    ck_assert_int_eq(deferred_result_code(&r), ECANCELED);
    deferred_result_clear(&r);
    deferred_unref(t.child);
}
END_TEST

static void cancel_untranslated(deferred *d, void *arg)
{
    deferred_errback_new(d, UNTRANSLATED, "untranslated");
}

START_TEST(test_errorToErrorTranslation)
{
    struct ctest t = {.child = deferred_new_cancellable(cancel_untranslated, NULL)};
    deferred *d = coro_start(NULL, sample_body, &t, 0);
    deferred_cancel(d);
    deferred_result r = take_and_unref(d);
    ck_assert_int_eq(deferred_result_code(&r), TRANSLATED);
    deferred_result_clear(&r);
    deferred_unref(t.child);
}
END_TEST

static void cancel_dontfail(deferred *d, void *arg)
{
    deferred_failure *f = deferred_failure_new(DONTFAIL, "dont fail");
    f->index = 4321;
    deferred_errback(d, f);
}

START_TEST(test_errorToSuccessTranslation)
{
    struct ctest t = {.child = deferred_new_cancellable(cancel_dontfail, NULL)};
    deferred *d = coro_start(NULL, sample_body, &t, 0);
    deferred_cancel(d);
    deferred_result r = take_and_unref(d);
    ck_assert_int_eq(r.kind, DEFERRED_INT);
    ck_assert_int_eq(r.u.i, 4320);
    deferred_unref(t.child);
}
END_TEST

/* The child traps the cancellation and waits for another Deferred: the coroutine's
 * Deferred has no result until the body returns. */
static deferred_result defer_me_more(deferred_result r, void *arg)
{
    if (deferred_result_code(&r) != ECANCELED)
        return r;
    deferred_result_clear(&r);
    return deferred_continue_with(deferred_ref(arg));
}

START_TEST(test_asynchronousCancellation)
{
    deferred *more = deferred_new();
    struct ctest t = {.child = deferred_new()};
    deferred_add_errback(t.child, defer_me_more, more);
    deferred *d = coro_start(NULL, sample_body, &t, 0);
    deferred_cancel(d);
    ck_assert_ptr_null(deferred_peek_result(d)); /* assertNoResult */
    deferred_callback(more, deferred_int(6543));
    deferred_unref(more);
    deferred_result r = take_and_unref(d);
    ck_assert_int_eq(r.u.i, 6544);
    deferred_unref(t.child);
}
END_TEST

/* Cancelling a coroutine that already finished does nothing. */
START_TEST(test_cancelAfterFinish)
{
    deferred *d = coro_start(NULL, body_return_42, NULL, 0);
    deferred_cancel(d);
    deferred_result r = take_and_unref(d);
    ck_assert_int_eq(r.u.i, 42);
}
END_TEST

/* The body catches the cancellation and goes on awaiting: a second cancel reaches
 * the second Deferred too. */
struct twice {
    deferred *a, *b;
    int cancels;
};

static deferred_result body_twice(void *arg)
{
    struct twice *t = arg;
    deferred_result r = coro_await(t->a);
    t->cancels += deferred_result_code(&r) == ECANCELED;
    deferred_result_clear(&r);
    r = coro_await(t->b);
    t->cancels += deferred_result_code(&r) == ECANCELED;
    deferred_result_clear(&r);
    return deferred_int(t->cancels);
}

START_TEST(test_cancelTwice)
{
    struct twice t = {.a = deferred_new(), .b = deferred_new()};
    deferred *d = coro_start(NULL, body_twice, &t, 0);
    deferred_cancel(d);
    ck_assert_int_eq(t.cancels, 1);
    ck_assert_ptr_null(deferred_peek_result(d));
    deferred_cancel(d);
    ck_assert_int_eq(t.cancels, 2);
    deferred_result r = take_and_unref(d);
    ck_assert_int_eq(r.u.i, 2);
    deferred_unref(t.a);
    deferred_unref(t.b);
}
END_TEST

/* ---- with a reactor ------------------------------------------------------------------ */

/* The talk's client: fake "requests" answered by reactor timers. */
struct request {
    deferred *d;
    deferred_result answer;
};

static void answer_request(reactor *r, void *data)
{
    struct request *q = data;
    deferred_callback(q->d, q->answer);
    deferred_unref(q->d);
    free(q);
}

static deferred *request(reactor *r, double delay, deferred_result answer)
{
    struct request *q = malloc(sizeof *q);
    ck_assert_ptr_nonnull(q);
    q->d = deferred_new();
    q->answer = answer;
    ck_assert_ptr_nonnull(reactor_call_later(r, delay, answer_request, q));
    return deferred_ref(q->d);
}

struct client {
    reactor *r;
    char log[128];
};

static deferred_result client_body(void *arg)
{
    struct client *c = arg;
    deferred_result n = coro_await_take(request(c->r, 1.0, deferred_int(4)));
    if (deferred_result_is_failure(&n))
        return n;
    size_t len = strlen(c->log);
    snprintf(c->log + len, sizeof c->log - len, "random=%lld;", (long long)n.u.i);
    deferred_result ad = coro_await_take(request(c->r, 2.0, deferred_str("sofa", NULL)));
    if (deferred_result_is_failure(&ad))
        return ad;
    len = strlen(c->log);
    snprintf(c->log + len, sizeof c->log - len, "ad=%s;", ad.u.s);
    deferred_result_clear(&ad);
    return deferred_int(reactor_seconds(c->r) >= 3.0);
}

START_TEST(test_talkClientOnFakeClock)
{
    reactor *r = reactor_new();
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(reactor_use_fake_clock(r, 0), 0);
    struct client c = {.r = r};
    deferred *d = coro_start(r, client_body, &c, 0);
    ck_assert_uint_eq(coro_count(r), 1);
    ck_assert_str_eq(c.log, "");
    reactor_advance(r, 1.0);
    ck_assert_str_eq(c.log, "random=4;");
    ck_assert(!deferred_called(d));
    reactor_advance(r, 2.0);
    ck_assert_str_eq(c.log, "random=4;ad=sofa;");
    ck_assert_uint_eq(coro_count(r), 0);
    deferred_result res = take_and_unref(d);
    ck_assert_int_eq(res.u.i, 1);
    ck_assert_int_eq(reactor_free(r), 0);
}
END_TEST

/* reactor_free() with a suspended coroutine: the await fails with ECANCELED, the body
 * cleans up and returns, its Deferred fires, its stack is freed. */
struct closing {
    deferred *never;
    int cleaned;
    int later_await_code;
};

static deferred_result body_closing(void *arg)
{
    struct closing *c = arg;
    char *buf = malloc(100); /* something to clean up */
    deferred_result r = coro_await(c->never);
    if (deferred_result_is_failure(&r)) {
        free(buf);
        c->cleaned = 1;
        deferred_result again = coro_await(c->never); /* fails at once too */
        c->later_await_code = deferred_result_code(&again);
        deferred_result_clear(&again);
        return r;
    }
    free(buf);
    return r;
}

START_TEST(test_reactorFreeClosesSuspended)
{
    reactor *r = reactor_new();
    ck_assert_ptr_nonnull(r);
    struct closing c = {.never = deferred_new()};
    deferred *d = coro_start(r, body_closing, &c, 0);
    ck_assert_uint_eq(coro_count(r), 1);
    ck_assert_int_eq(reactor_free(r), 0);
    ck_assert_int_eq(c.cleaned, 1);
    ck_assert_int_eq(c.later_await_code, ECANCELED);
    deferred_result res = take_and_unref(d);
    ck_assert_int_eq(deferred_result_code(&res), ECANCELED);
    deferred_result_clear(&res);
    /* The never-fired Deferred still holds the detached await; firing or freeing it
     * later is harmless. */
    deferred_callback(c.never, deferred_int(1));
    deferred_unref(c.never);
}
END_TEST

/* The producer drops the only reference on the awaited Deferred without firing it
 * (coro_await_take gave up the coroutine's own): the await returns an ECANCELED
 * failure instead of hanging forever, and nothing leaks. */
struct orphan {
    deferred *producer;
    int code;
    int after;
};

static deferred_result body_orphan(void *arg)
{
    struct orphan *o = arg;
    deferred_result r = coro_await_take(deferred_ref(o->producer));
    o->code = deferred_result_code(&r);
    deferred_result_clear(&r);
    /* The coroutine goes on normally afterwards. */
    deferred_result again = coro_await_take(deferred_succeed(deferred_int(5)));
    o->after = (int)again.u.i;
    return deferred_int(1);
}

START_TEST(test_awaitedDeferredFreedUnfired)
{
    struct orphan o = {.producer = deferred_new()};
    deferred *d = coro_start(NULL, body_orphan, &o, 0);
    ck_assert(!deferred_called(d));
    deferred_unref(o.producer); /* the last reference: freed unfired */
    ck_assert_int_eq(o.code, ECANCELED);
    ck_assert_int_eq(o.after, 5);
    deferred_result r = take_and_unref(d);
    ck_assert_int_eq(r.u.i, 1);
}
END_TEST

/* With coro_await (borrowing), the coroutine's own reference keeps the Deferred alive:
 * a producer dropping its reference changes nothing; firing it later still works. */
START_TEST(test_awaitBorrowKeepsDeferred)
{
    struct steps s = {.wait_on = deferred_new()};
    deferred *keep = deferred_ref(s.wait_on);
    deferred *d = coro_start(NULL, body_await_once, &s, 0);
    deferred_unref(s.wait_on); /* the test's "producer" reference */
    ck_assert_int_eq(s.step, 1);
    deferred_callback(keep, deferred_int(1));
    ck_assert_int_eq(s.step, 2);
    deferred_unref(keep);
    deferred_result r = take_and_unref(d);
    ck_assert_int_eq(r.u.i, 2);
}
END_TEST

START_TEST(test_backendNamed)
{
    const char *b = coro_backend();
    ck_assert(strcmp(b, "asm-x86_64") == 0 || strcmp(b, "asm-aarch64") == 0 ||
              strcmp(b, "ucontext") == 0);
    ck_assert_uint_eq(coro_default_stack_size(), 256 * 1024);
}
END_TEST

extern Suite *suite_deferred_coro(void);
Suite *suite_deferred_coro(void)
{
    Suite *s = suite_create("deferred_coro");
    TCase *tc = tcase_create("inline");
    tcase_add_test(tc, testReturnValue);
    tcase_add_test(tc, testReturnNoValue);
    tcase_add_test(tc, test_returnOwnedString);
    tcase_add_test(tc, test_awaitUnfiredSuspends);
    tcase_add_test(tc, test_awaitFailureIsAValue);
    tcase_add_test(tc, test_awaitAlreadyFired);
    tcase_add_test(tc, testStackUsage);
    tcase_add_test(tc, test_manySuspensions);
    tcase_add_test(tc, test_awaitOutsideCoroutine);
    tcase_add_test(tc, test_returnDeferred);
    tcase_add_test(tc, test_dropResultEarly);
    tcase_add_test(tc, test_nestedCoroutines);
    tcase_add_test(tc, test_backendNamed);
    tcase_add_test(tc, test_awaitedDeferredFreedUnfired);
    tcase_add_test(tc, test_awaitBorrowKeepsDeferred);
    suite_add_tcase(s, tc);

    TCase *tcc = tcase_create("cancel");
    tcase_add_test(tcc, test_cascadeCancellingOnCancel);
    tcase_add_test(tcc, test_errbackCancelledErrorOnCancel);
    tcase_add_test(tcc, test_errorToErrorTranslation);
    tcase_add_test(tcc, test_errorToSuccessTranslation);
    tcase_add_test(tcc, test_asynchronousCancellation);
    tcase_add_test(tcc, test_cancelAfterFinish);
    tcase_add_test(tcc, test_cancelTwice);
    suite_add_tcase(s, tcc);

    TCase *tcr = tcase_create("reactor");
    tcase_add_test(tcr, test_talkClientOnFakeClock);
    tcase_add_test(tcr, test_reactorFreeClosesSuspended);
    suite_add_tcase(s, tcr);
    return s;
}
