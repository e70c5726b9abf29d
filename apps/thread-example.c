/* thread-example: "functions must return quickly". A blocking call (the talk's SMTP
 * send, here a 1-second sleep) runs on a worker thread with defer_to_thread(); the
 * reactor keeps serving meanwhile (the ticks), and the Deferred fires on the reactor
 * thread when the send is over. docs/coroutines.md, "Threads".
 *
 *   build/bin/thread-example */
#include <stdio.h>
#include <time.h>

#include <twistc/deferred.h>
#include <twistc/reactor.h>
#include <twistc/thread_pool.h>

/* Runs on a worker thread: may block, must not touch the reactor or Deferreds. */
static deferred_result send_mail(void *arg)
{
    const char *to = arg;
    struct timespec one_second = {1, 0};
    nanosleep(&one_second, NULL); /* stands for connect + EHLO + DATA + QUIT */
    (void)to;
    return deferred_int(250); /* "250 OK" */
}

/* Back on the reactor thread. */
static deferred_result mail_sent(deferred_result r, void *arg)
{
    reactor *re = arg;
    printf("mail sent: %lld\n", (long long)r.u.i);
    reactor_stop(re);
    return r;
}

static deferred_result mail_failed(deferred_result r, void *arg)
{
    reactor *re = arg;
    fprintf(stderr, "mail failed: ");
    deferred_failure_print(r.u.failure, stderr);
    reactor_stop(re);
    deferred_result_clear(&r); /* handled */
    return deferred_none();
}

/* Meanwhile the loop keeps serving: a timer every 0.2 s. */
static void tick(reactor *r, void *data)
{
    int *n = data;
    printf("tick %d (the loop is not blocked)\n", ++*n);
    if (*n < 20)
        reactor_call_later(r, 0.2, tick, data);
}

int main(void)
{
    reactor *r = reactor_new();
    if (!r) {
        perror("reactor_new");
        return 1;
    }
    int ticks = 0;
    reactor_call_later(r, 0.2, tick, &ticks);

    deferred *d = defer_to_thread(r, send_mail, "alice@example.org");
    if (!d) {
        perror("defer_to_thread");
        reactor_free(r);
        return 1;
    }
    deferred_add_callbacks(d, mail_sent, mail_failed, r);
    deferred_unref(d); /* the pool keeps it alive until it fires */

    reactor_run(r); /* the shutdown joins the worker thread */
    reactor_free(r);
    return ticks >= 3 ? 0 : 1;
}
