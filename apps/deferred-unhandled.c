/* deferred-unhandled: what happens to a failure nobody handles (docs/deferred.md,
 * "Unhandled failures"). The default hook prints to stderr; this example sends the
 * reports to stdout so that they show in order with the rest.
 *
 *   build/bin/deferred-unhandled */
#include <errno.h>
#include <stdio.h>

#include <twistc/deferred.h>
#include <twistc/reactor.h>

static void unhandled_stop(reactor *r, void *data) { reactor_stop(r); }

int main(void)
{
    deferred_set_unhandled_hook(deferred_default_report, stdout, NULL);

    /* 1. Freed while holding a failure: reported at once, with both sites. */
    printf("-- a failed request nobody listened to:\n");
    deferred *d = deferred_new();
    deferred_errback_new(d, ECONNRESET, "connection lost while waiting for the reply");
    deferred_unref(d);

    /* 2. Still alive at shutdown: reported by the reactor after it stops. */
    printf("-- a failed Deferred kept alive until the reactor stops:\n");
    reactor *r = reactor_new();
    if (!r)
        return 1;
    deferred *kept = deferred_fail(deferred_failure_new(ETIMEDOUT, "no answer from the server"));
    reactor_call_later(r, 0, unhandled_stop, NULL);
    reactor_run(r);
    reactor_free(r);
    deferred_unref(kept); /* already reported: not again */

    deferred_set_unhandled_hook(NULL, NULL, NULL);
    return 0;
}
