/* deferred-chaining: a callback that returns a Deferred makes the chain wait for it
 * (docs/deferred.md, "Chaining"). Here "log in, then fetch the inbox": two fake
 * requests answered by reactor timers.
 *
 *   build/bin/deferred-chaining */
#include <stdio.h>
#include <stdlib.h>

#include <twistc/deferred.h>
#include <twistc/reactor.h>

static reactor *chaining_r;

/* A fake request: a Deferred that a timer fires with `answer` after `delay` s. */
struct chaining_req {
    deferred *d;
    const char *answer;
};

static void chaining_answer(reactor *r, void *data)
{
    struct chaining_req *q = data;
    deferred_callback(q->d, deferred_str(q->answer, NULL));
    deferred_unref(q->d); /* the producer is done with it */
    free(q);
}

static deferred *chaining_request(const char *what, const char *answer)
{
    struct chaining_req *q = malloc(sizeof *q);
    q->d = deferred_new();
    q->answer = answer;
    printf("sending %s\n", what);
    reactor_call_later(chaining_r, 0.01, chaining_answer, q);
    return deferred_ref(q->d); /* one reference for the caller */
}

static deferred_result chaining_logged_in(deferred_result r, void *arg)
{
    printf("logged in as %s; now fetching the inbox\n", r.u.s);
    deferred_result_clear(&r);
    /* Return a Deferred: the rest of this chain waits until it fires. The reference
     * returned by chaining_request goes to the chain. */
    return deferred_continue_with(chaining_request("INBOX", "3 new messages"));
}

static deferred_result chaining_inbox(deferred_result r, void *arg)
{
    printf("inbox: %s\n", r.u.s); /* the inner Deferred's result */
    reactor_stop(chaining_r);
    return r;
}

int main(void)
{
    chaining_r = reactor_new();
    if (!chaining_r)
        return 1;
    deferred *d = chaining_request("LOGIN", "alice");
    deferred_add_callback(d, chaining_logged_in, NULL);
    deferred_add_callback(d, chaining_inbox, NULL);
    deferred_unref(d); /* fire and forget: the chain keeps what it needs alive */
    reactor_run(chaining_r);
    reactor_free(chaining_r);
    return 0;
}
