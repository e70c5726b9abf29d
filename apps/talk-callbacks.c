/* The talk's client in plain callback style: ask for a random number, then for a
 * classified ad, then stop. Each answer comes back through a Deferred; returning the next
 * request's Deferred (deferred_continue_with) makes the chain wait for it, as in Twisted.
 *
 *   talk-callbacks [PORT]        (server on 127.0.0.1, default port 6789) */
#include <stdio.h>
#include <stdlib.h>

#include <twistc/deferred.h>
#include "apps/notif/notif_client.h"
#include <twistc/reactor.h>

static reactor *r;
static notif_client *client;
static int status = 1;

static deferred_result connected(deferred_result res, void *arg)
{
    client = notif_client_from_result(&res);
    return deferred_continue_with(notif_random(client)); /* the answer goes down the chain */
}

static deferred_result got_random(deferred_result n, void *arg)
{
    printf("random: %lld\n", (long long)n.u.i);
    return deferred_continue_with(notif_classified(client));
}

static deferred_result got_classified(deferred_result ad, void *arg)
{
    printf("classified: %s\n", ad.u.s);
    deferred_result_clear(&ad);
    status = 0;
    return deferred_none();
}

static deferred_result failed(deferred_result f, void *arg)
{
    fprintf(stderr, "talk-callbacks: %s\n", f.u.failure->message);
    deferred_result_clear(&f); /* handled */
    return deferred_none();
}

static deferred_result stop(deferred_result res, void *arg)
{
    notif_client_free(client);
    reactor_stop(r);
    return res;
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 6789;
    r = reactor_new();
    deferred *d = notif_client_connect(r, "127.0.0.1", port, 5);
    if (!r || !d)
        return 1;
    deferred_add_callback(d, connected, NULL);
    deferred_add_callback(d, got_random, NULL);
    deferred_add_callback(d, got_classified, NULL);
    deferred_add_errback(d, failed, NULL);
    deferred_add_both(d, stop, NULL);
    deferred_unref(d);
    reactor_run(r);
    reactor_free(r);
    return status;
}
