/* deferred-cancel: cancellation and timeouts (docs/deferred.md, "Cancellation").
 *
 * A slow request gets a 50 ms timeout; the canceller stops the work (here: the timer
 * that would have answered), and the chain sees ETIMEDOUT. A second request is
 * cancelled by hand and sees ECANCELED.
 *
 *   build/bin/deferred-cancel */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <twistc/deferred.h>
#include <twistc/reactor.h>

static reactor *cancel_r;
static int cancel_outstanding = 2;

struct cancel_req {
    deferred *d;
    reactor_timer *answer_timer;
};

static void cancel_answer(reactor *r, void *data)
{
    struct cancel_req *q = data;
    q->answer_timer = NULL;
    deferred_callback(q->d, deferred_str("finally!", NULL));
}

/* The canceller: stop the work. It may also fire the Deferred itself; if it does
 * not, cancel() errbacks with ECANCELED. */
static void cancel_stop_work(deferred *d, void *arg)
{
    struct cancel_req *q = arg;
    printf("canceller: dropping the pending answer\n");
    if (q->answer_timer)
        reactor_timer_cancel(q->answer_timer);
    q->answer_timer = NULL;
}

static void cancel_req_free(void *arg) { free(arg); }

static deferred *cancel_slow_request(double seconds)
{
    struct cancel_req *q = malloc(sizeof *q);
    q->d = deferred_new();
    /* The request state lives as long as the Deferred: freed with it. */
    deferred_set_canceller(q->d, cancel_stop_work, q, cancel_req_free);
    q->answer_timer = reactor_call_later(cancel_r, seconds, cancel_answer, q);
    return q->d; /* our only reference goes to the caller */
}

static deferred_result cancel_report(deferred_result r, void *name)
{
    if (deferred_result_is_failure(&r))
        printf("%s: failed: %s (%s)\n", (const char *)name, r.u.failure->message,
               deferred_code_name(r.u.failure->code));
    else
        printf("%s: %s\n", (const char *)name, r.u.s);
    deferred_result_clear(&r); /* handled */
    if (--cancel_outstanding == 0)
        reactor_stop(cancel_r);
    return deferred_none();
}

int main(void)
{
    cancel_r = reactor_new();
    if (!cancel_r)
        return 1;
    deferred *a = cancel_slow_request(10.0);
    deferred_add_timeout(a, cancel_r, 0.05, NULL, NULL); /* gives up after 50 ms */
    deferred_add_both(a, cancel_report, "request with timeout");

    deferred *b = cancel_slow_request(10.0);
    deferred_add_both(b, cancel_report, "request cancelled by hand");
    deferred_cancel(b);

    reactor_run(cancel_r);
    deferred_unref(a);
    deferred_unref(b);
    reactor_free(cancel_r);
    return 0;
}
