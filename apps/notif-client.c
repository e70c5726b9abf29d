#define _GNU_SOURCE /* getopt_long */
/* notif-client: the talk's client on the command line.
 *
 *   notif-client [--host H] [--port N] [--timeout SECONDS] [--notify N] [--trace]
 *                [--tls [--cafile FILE] [--insecure]]
 *
 * Default: print a random number, print a classified ad, exit 0 (the talk's flow).
 * --notify N: enter notification mode and handle N notifications as the talk does: stop,
 * ask for the new value, print it, notify again. Exits 1 with a message on stderr when
 * the server is absent, closes the connection, answers an error, or --timeout passes;
 * 2 for a usage error.
 *
 * Output (stable for scripts; t/interop/run.sh checks it):
 *   default flow: the number, then the ad, one line each ("46774", "nice flat in the 11e")
 *   --notify N:   N lines "random: 46774" or "classified: nice flat in the 11e"
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <twistc/coro.h>
#include <twistc/deferred.h>
#include <twistc/line_requests.h>
#include "apps/notif/notif_client.h"
#include <twistc/reactor.h>
#include <twistc/tls.h>

static const char usage_text[] =
    "usage: notif-client [options]\n"
    "  --host HOST        server address (default 127.0.0.1)\n"
    "  --port N           server port (default 6789)\n"
    "  --timeout SECONDS  give up after this long (default 10)\n"
    "  --notify N         handle N notifications (stop, ask, print, notify again)\n"
    "  --trace            print the reactor's trace and the request's path on stderr\n"
    "  --tls              speak TLS; the server's certificate is verified (system CAs)\n"
    "  --cafile FILE      trust the CA certificates in FILE too (with --tls)\n"
    "  --insecure         do not verify the server's certificate (with --tls)\n";

static struct {
    reactor *r;
    const char *host;
    long port, notify;
    double timeout;
    int status; /* exit status */
    int timed_out;
    tls_context *tls;
} app = {.host = "127.0.0.1", .port = 6789, .timeout = 10, .status = 1};

static void usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "notif-client: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", usage_text);
    exit(2);
}

/* Prints why a step failed; returns the failure for the body to return. */
static deferred_result fail(const char *doing, deferred_result r)
{
    if (!app.timed_out) /* after a timeout the reactor cancels what was pending */
        fprintf(stderr, "notif-client: %s: %s\n", doing, r.u.failure->message);
    return r;
}

static deferred_result ask(notif_client *c, const char *kind, int labelled)
{
    if (strcmp(kind, "random") == 0) {
        deferred_result n = coro_await_take(notif_random(c));
        if (deferred_result_is_failure(&n))
            return fail("random?", n);
        printf("%s%lld\n", labelled ? "random: " : "", (long long)n.u.i);
    } else {
        deferred_result ad = coro_await_take(notif_classified(c));
        if (deferred_result_is_failure(&ad))
            return fail("classified?", ad);
        /* the whole line: an ad may hold a NUL byte */
        fputs(labelled ? "classified: " : "", stdout);
        fwrite(ad.u.s, 1, line_requests_answer_len(&ad), stdout);
        putchar('\n');
        deferred_result_clear(&ad);
    }
    fflush(stdout);
    return deferred_none();
}

static deferred_result run(notif_client *c)
{
    deferred_result r;
    if (app.notify == 0) { /* the talk's flow */
        r = ask(c, "random", 0);
        if (deferred_result_is_failure(&r))
            return r;
        r = ask(c, "classified", 0);
        if (deferred_result_is_failure(&r))
            return r;
    } else {
        if (notif_notify(c) < 0)
            return fail("notify", deferred_error(ENOTCONN, "connection closed"));
        for (long i = 0; i < app.notify; i++) {
            deferred_result kind = coro_await_take(notif_wait_notif(c));
            if (deferred_result_is_failure(&kind))
                return fail("waiting for a notification", kind);
            notif_stop_notify(c); /* a notification may still come: it is told apart */
            r = ask(c, kind.u.s, 1);
            deferred_result_clear(&kind);
            if (deferred_result_is_failure(&r))
                return r;
            if (i + 1 < app.notify)
                notif_notify(c);
        }
    }
    r = coro_await_take(notif_quit(c));
    /* The server closes after quit. A reset instead of a clean close loses nothing:
     * every answer was printed already. Only a quit that could not be sent, or an error
     * line from the server, is a failure. */
    if (deferred_result_is_failure(&r) && deferred_result_code(&r) != ENOTCONN &&
        deferred_result_code(&r) != NOTIF_ESERVER)
        deferred_result_clear(&r);
    if (deferred_result_is_failure(&r))
        return fail("quit", r);
    return deferred_none();
}

static deferred_result body(void *arg)
{
    char where[300];
    snprintf(where, sizeof where, "cannot connect to %s:%ld", app.host, app.port);
    deferred_result cr = coro_await_take(
        notif_client_connect_tls(app.r, app.host, (int)app.port, app.timeout, app.tls));
    if (deferred_result_is_failure(&cr))
        return fail(where, cr);
    notif_client *c = notif_client_from_result(&cr);
    deferred_result r = run(c);
    notif_client_free(c);
    if (!deferred_result_is_failure(&r) && !app.timed_out)
        app.status = 0;
    return r;
}

static deferred_result finished(deferred_result r, void *arg)
{
    deferred_result_clear(&r); /* reported already */
    if (reactor_running(app.r))
        reactor_stop(app.r);
    return deferred_none();
}

static void timed_out(reactor *r, void *data)
{
    fprintf(stderr, "notif-client: no answer within %g seconds\n", app.timeout);
    app.status = 1;
    app.timed_out = 1;
    reactor_stop(r);
}

static void start(reactor *r, void *data)
{
    deferred *d = coro_start(r, body, NULL, 0);
    if (!d) {
        fprintf(stderr, "notif-client: cannot start: %s\n", strerror(errno));
        reactor_stop(r);
        return;
    }
    deferred_add_both(d, finished, NULL);
    deferred_unref(d);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"host", required_argument, NULL, 'H'},    {"port", required_argument, NULL, 'p'},
        {"timeout", required_argument, NULL, 'T'}, {"notify", required_argument, NULL, 'n'},
        {"trace", no_argument, NULL, 't'},         {"help", no_argument, NULL, 'h'},
        {"tls", no_argument, NULL, 'S'},           {"cafile", required_argument, NULL, 'C'},
        {"insecure", no_argument, NULL, 'I'},      {NULL, 0, NULL, 0},
    };
    int ch, trace = 0, tls = 0, insecure = 0;
    const char *cafile = NULL;
    char *end;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'H': app.host = optarg; break;
        case 'p':
            app.port = strtol(optarg, &end, 10);
            if (end == optarg || *end || app.port < 1 || app.port > 65535)
                usage_error("--port: expected a number from 1 to 65535, got '%s'", optarg);
            break;
        case 'T':
            app.timeout = strtod(optarg, &end);
            if (end == optarg || *end || !isfinite(app.timeout) || app.timeout <= 0)
                usage_error("--timeout: expected seconds > 0, got '%s'", optarg);
            break;
        case 'n':
            app.notify = strtol(optarg, &end, 10);
            if (end == optarg || *end || app.notify < 1 || app.notify > 1000000)
                usage_error("--notify: expected a count from 1 to 1000000, got '%s'", optarg);
            break;
        case 't': trace = 1; break;
        case 'S': tls = 1; break;
        case 'C': cafile = optarg; break;
        case 'I': insecure = 1; break;
        case 'h': fputs(usage_text, stdout); return 0;
        default:
            if (optopt)
                usage_error("option --%s needs a value", argv[optind - 1] + 2);
            usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        usage_error("unexpected argument '%s'", argv[optind]);
    if (!tls && (cafile || insecure))
        usage_error("%s needs --tls", cafile ? "--cafile" : "--insecure");
    if (tls) {
        char err[512];
        app.tls = tls_context_new_client(cafile, NULL, err, sizeof err);
        if (!app.tls) {
            fprintf(stderr, "notif-client: %s\n", err);
            return 1;
        }
        if (insecure)
            tls_context_set_verify(app.tls, TLS_VERIFY_NONE);
    }

    app.r = reactor_new();
    if (!app.r) {
        fprintf(stderr, "notif-client: %s\n", strerror(errno));
        return 1;
    }
    if (trace)
        reactor_set_trace(app.r, stderr);
    reactor_call_when_running(app.r, start, NULL);
    reactor_call_later(app.r, app.timeout, timed_out, NULL);
    reactor_run(app.r);
    reactor_free(app.r); /* closes a coroutine still waiting (timeout) */
    tls_context_unref(app.tls);
    return app.status;
}
