/* kv-client PORT REQUEST...: the key-value client pattern of docs/protocols.md (connect,
 * send, await the answer, in a coroutine). t/interop/apps.sh runs it against kv-server:
 *     kv-client 7000 "set a 1" "get a"        prints one answer line per request */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <twistc/coro.h>
#include <twistc/deferred_connect.h>
#include <twistc/line_requests.h>

static reactor *re;
static int status; /* the exit status */
static struct kv { line_receiver lr; line_requests rq; int lost; } kv; /* lr first */

static int kv_line(line_receiver *lr, const char *line, size_t len)
{
    return line_requests_line_received(&kv.rq, line, len); /* fires the oldest request */
}
static void kv_lost(line_receiver *lr, const protocol_reason *why)
{
    line_requests_connection_lost(&kv.rq, why); /* pending requests fail with why */
    kv.lost = 1;
    reactor_stop(re);
}
static const line_receiver_ops kv_ops = {
    .delimiter = "\n", .line_received = kv_line, .connection_lost = kv_lost};

static deferred_result session(void *arg)
{
    char **argv = arg;
    line_receiver_init(&kv.lr, &kv_ops);
    line_requests_init(&kv.rq, &kv.lr, NULL, NULL);
    deferred_result r = coro_await_take(
        reactor_connect_protocol(re, "127.0.0.1", atoi(argv[1]), &kv.lr.base, 5.0));
    for (int i = 2; argv[i] && !deferred_result_is_failure(&r); i++) {
        deferred_result_clear(&r);
        r = coro_await_take(line_requests_send(&kv.rq, argv[i], strlen(argv[i]), 0));
        if (r.kind == DEFERRED_STR)
            printf("%s\n", r.u.s);
    }
    if ((status = deferred_result_is_failure(&r)))
        fprintf(stderr, "kv-client: %s\n", r.u.failure->message);
    deferred_result_clear(&r);
    if (kv.lr.base.transport && !kv.lost)
        transport_lose_connection(kv.lr.base.transport); /* kv_lost stops the reactor */
    else
        reactor_stop(re);
    return deferred_none();
}

int main(int argc, char **argv)
{
    if (argc < 2 || !(re = reactor_new()))
        return 2;
    deferred_unref(coro_start(re, session, argv, 0));
    reactor_run(re);
    reactor_free(re);
    return status;
}
