/* The talk's notification client, wait_notif loop style: wait for a notification, stop
 * notifications, ask for the new value, print it, notify again. Three times.
 *
 *   talk-wait-notif [PORT] [COUNT] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <twistc/coro.h>
#include "apps/notif/notif_client.h"
#include <twistc/reactor.h>

static reactor *r;
static int port = 6789, count = 3, status = 1;

static deferred_result talk(void *arg)
{
    deferred_result res = coro_await_take(notif_client_connect(r, "127.0.0.1", port, 5));
    if (deferred_result_is_failure(&res))
        return res;
    notif_client *c = notif_client_from_result(&res);
    notif_notify(c);
    for (int i = 0; i < count; i++) {
        deferred_result kind = coro_await_take(notif_wait_notif(c));
        if (deferred_result_is_failure(&kind)) {
            res = kind;
            break;
        }
        notif_stop_notify(c);
        int is_random = strcmp(kind.u.s, "random") == 0;
        res = coro_await_take(is_random ? notif_random(c) : notif_classified(c));
        if (deferred_result_is_failure(&res))
            break;
        if (is_random)
            printf("new random: %lld\n", (long long)res.u.i);
        else
            printf("new classified: %s\n", res.u.s);
        fflush(stdout);
        deferred_result_clear(&res);
        notif_notify(c);
    }
    notif_client_free(c);
    return res;
}

static deferred_result stop(deferred_result res, void *arg)
{
    if (deferred_result_is_failure(&res))
        fprintf(stderr, "talk-wait-notif: %s\n", res.u.failure->message);
    else
        status = 0;
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
    if (argc > 2)
        count = atoi(argv[2]);
    r = reactor_new();
    if (!r)
        return 1;
    reactor_call_when_running(r, start, NULL);
    reactor_run(r);
    reactor_free(r);
    return status;
}
