/* The talk's "parsing/dispatch by the protocol author" slide: the user only says what
 * to do when a new random number or classified ad is available; the protocol parses the
 * notifications and calls random_available / classified_available.
 *
 *   talk-dispatch [PORT] [COUNT] */
#include <stdio.h>
#include <stdlib.h>

#include <twistc/deferred.h>
#include "apps/notif/notif_client.h"
#include <twistc/reactor.h>

static reactor *r;
static int count = 3, handled, status = 1;

static deferred_result show(deferred_result res, void *c)
{
    if (res.kind == DEFERRED_INT)
        printf("new random: %lld\n", (long long)res.u.i);
    else if (res.kind == DEFERRED_STR)
        printf("new classified: %s\n", res.u.s);
    else
        return res; /* a failure: to the errback below */
    fflush(stdout);
    deferred_result_clear(&res);
    if (++handled < count) {
        notif_notify(c); /* and wait for the next one */
    } else {
        status = 0;
        notif_client_free(c);
        reactor_stop(r);
    }
    return deferred_none();
}

static deferred_result failed(deferred_result f, void *c)
{
    fprintf(stderr, "talk-dispatch: %s\n", f.u.failure->message);
    deferred_result_clear(&f);
    notif_client_free(c);
    reactor_stop(r);
    return deferred_none();
}

static void ask(notif_client *c, deferred *d)
{
    notif_stop_notify(c);
    deferred_add_callbacks(d, show, failed, c);
    deferred_unref(d);
}

static void random_available(notif_client *c, void *data) { ask(c, notif_random(c)); }
static void classified_available(notif_client *c, void *data) { ask(c, notif_classified(c)); }

static deferred_result connected(deferred_result res, void *arg)
{
    notif_client *c = notif_client_from_result(&res);
    notif_set_random_available(c, random_available, NULL);
    notif_set_classified_available(c, classified_available, NULL);
    notif_notify(c);
    return deferred_none();
}

static deferred_result not_connected(deferred_result f, void *arg)
{
    fprintf(stderr, "talk-dispatch: %s\n", f.u.failure->message);
    deferred_result_clear(&f);
    reactor_stop(r);
    return deferred_none();
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 6789;
    if (argc > 2)
        count = atoi(argv[2]);
    r = reactor_new();
    deferred *d = r ? notif_client_connect(r, "127.0.0.1", port, 5) : NULL;
    if (!d)
        return 1;
    deferred_add_callbacks(d, connected, not_connected, NULL);
    deferred_unref(d);
    reactor_run(r);
    reactor_free(r);
    return status;
}
