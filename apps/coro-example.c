/* coro-example: the talk's client as sequential-looking code over Deferreds.
 *
 *   long n = await random;  print;  char *ad = await classified;  print;  stop
 *
 * The two "requests" are fakes answered by reactor timers (a real client would send
 * a line and fire the Deferred from line_received). While the coroutine waits, the
 * reactor is free to do anything else. docs/coroutines.md explains it.
 *
 *   build/bin/coro-example */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <twistc/coro.h>
#include <twistc/deferred.h>
#include <twistc/reactor.h>

/* ---- fake requests: a Deferred fired by a timer ---------------------------------- */

struct pending {
    deferred *d;
    deferred_result answer;
};

static void answer_now(reactor *r, void *data)
{
    struct pending *p = data;
    deferred_callback(p->d, p->answer);
    deferred_unref(p->d);
    free(p);
}

static deferred *fake_request(reactor *r, double delay, deferred_result answer)
{
    struct pending *p = malloc(sizeof *p);
    if (!p)
        return deferred_fail(deferred_failure_new(ENOMEM, NULL));
    p->d = deferred_new();
    p->answer = answer;
    reactor_call_later(r, delay, answer_now, p);
    return deferred_ref(p->d); /* one reference for the caller, one for the timer */
}

static deferred *get_random(reactor *r)
{
    return fake_request(r, 0.2, deferred_int(4)); /* chosen by a fair dice roll */
}

static deferred *get_classified(reactor *r)
{
    return fake_request(r, 0.3, deferred_str("Sofa, barely used, 20 EUR", NULL));
}

/* ---- the client: reads top to bottom ------------------------------------------- */

static deferred_result client(void *arg)
{
    reactor *r = arg;

    deferred_result n = coro_await_take(get_random(r));
    if (deferred_result_is_failure(&n)) {
        reactor_stop(r);
        return n; /* the coroutine's Deferred fails with it */
    }
    printf("random number: %lld\n", (long long)n.u.i);

    deferred_result ad = coro_await_take(get_classified(r));
    if (deferred_result_is_failure(&ad)) {
        reactor_stop(r);
        return ad;
    }
    printf("classified ad: %s\n", ad.u.s);
    deferred_result_clear(&ad);

    reactor_stop(r);
    return deferred_none();
}

int main(void)
{
    reactor *r = reactor_new();
    if (!r) {
        perror("reactor_new");
        return 1;
    }
    /* Runs client() up to its first await, then returns; the reactor does the rest. */
    deferred *done = coro_start(r, client, r, 0);
    if (!done) {
        perror("coro_start");
        reactor_free(r);
        return 1;
    }
    reactor_run(r);

    int rc = 0;
    const deferred_result *res = deferred_peek_result(done);
    if (res && deferred_result_is_failure(res)) {
        deferred_failure_print(res->u.failure, stderr);
        deferred_result ignored;
        deferred_take_result(done, &ignored); /* handled: printed above */
        deferred_result_clear(&ignored);
        rc = 1;
    }
    deferred_unref(done);
    reactor_free(r);
    return rc;
}
