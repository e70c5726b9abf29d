/* The talk's inlineCallbacks slide in C: a coroutine awaits each Deferred, so the code
 * reads top to bottom while the reactor keeps serving everything else.
 *
 *     n = yield client.random()        ->  n = coro_await_take(notif_random(c))
 *
 *   talk-coroutine [PORT] */
#include <stdio.h>
#include <stdlib.h>

#include <twistc/coro.h>
#include "apps/notif/notif_client.h"
#include <twistc/reactor.h>

static reactor *r;
static int port = 6789, status = 1;

static deferred_result talk(void *arg)
{
    deferred_result res = coro_await_take(notif_client_connect(r, "127.0.0.1", port, 5));
    if (deferred_result_is_failure(&res))
        return res;
    notif_client *c = notif_client_from_result(&res);

    deferred_result n = coro_await_take(notif_random(c));        /* long n = await random */
    if (!deferred_result_is_failure(&n)) {
        printf("random: %lld\n", (long long)n.u.i);
        deferred_result ad = coro_await_take(notif_classified(c)); /* ad = await classified */
        if (!deferred_result_is_failure(&ad)) {
            printf("classified: %s\n", ad.u.s);
            status = 0;
        }
        n = ad;
    }
    notif_client_free(c);
    return n; /* a failure here goes to stop() below */
}

static deferred_result stop(deferred_result res, void *arg)
{
    if (deferred_result_is_failure(&res))
        fprintf(stderr, "talk-coroutine: %s\n", res.u.failure->message);
    deferred_result_clear(&res);
    reactor_stop(r);
    return deferred_none();
}

static void start(reactor *rr, void *arg)
{
    deferred *d = coro_start(r, talk, NULL, 0);
    deferred_add_both(d, stop, NULL);
    deferred_unref(d);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        port = atoi(argv[1]);
    r = reactor_new();
    if (!r)
        return 1;
    reactor_call_when_running(r, start, NULL);
    reactor_run(r);
    reactor_free(r);
    return status;
}
