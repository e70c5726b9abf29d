#define _GNU_SOURCE /* getopt_long */
/* notif-publish: posts one event to every notification server sharing a Redis channel,
 * as an ads back-office would (docs/demo.md, docs/scaling.md).
 *
 *   notif-publish --redis redis://HOST[:PORT][/DB] [--redis-channel NAME]
 *                 (--classified TEXT | --random) [--timeout SECONDS]
 *
 * An ad is checked by the same rules as notif-server --ads (no LF or NUL, at most 1024
 * bytes, not starting with "notif:" or "error:"). Prints "delivered to N instances" (the
 * servers subscribed right now) and exits 0; exits 1 with a message on stderr when Redis
 * cannot be reached or refuses within the timeout; 2 for a usage error. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <twistc/deferred.h>
#include "apps/notif/notif_redis.h"
#include <twistc/reactor.h>
#include <twistc/redis.h>

static const char usage_text[] =
    "usage: notif-publish --redis URL (--classified TEXT | --random) [options]\n"
    "  --redis URL          redis://HOST[:PORT][/DB]\n"
    "  --redis-channel NAME the servers' channel (default " NOTIF_REDIS_DEFAULT_CHANNEL ")\n"
    "  --classified TEXT    post a new classified ad\n"
    "  --random             post a new random number event\n"
    "  --timeout SECONDS    give up after this long (default 5)\n";

static void usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "notif-publish: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", usage_text);
    exit(2);
}

static int status = 1, finished = 0;

static deferred_result done_ok(deferred_result r, void *arg)
{
    long long n = r.kind == DEFERRED_INT ? (long long)r.u.i : 0;
    printf("delivered to %lld instance%s\n", n, n == 1 ? "" : "s");
    fflush(stdout);
    status = 0;
    finished = 1;
    if (reactor_running(arg))
        reactor_stop(arg);
    return deferred_none();
}

static deferred_result done_err(deferred_result r, void *arg)
{
    fprintf(stderr, "notif-publish: %s\n", r.u.failure->message);
    deferred_result_clear(&r);
    finished = 1;
    if (reactor_running(arg))
        reactor_stop(arg);
    return deferred_none();
}

int main(int argc, char **argv)
{
    const char *url = NULL, *channel = NULL, *ad = NULL;
    int random_ev = 0;
    double timeout = 5;
    static const struct option opts[] = {
        {"redis", required_argument, NULL, 'R'},
        {"redis-channel", required_argument, NULL, 'C'},
        {"classified", required_argument, NULL, 'c'},
        {"random", no_argument, NULL, 'n'},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'R': url = optarg; break;
        case 'C': channel = optarg; break;
        case 'c': ad = optarg; break;
        case 'n': random_ev = 1; break;
        case 't': {
            char *end;
            timeout = strtod(optarg, &end);
            if (end == optarg || *end || !isfinite(timeout) || timeout <= 0 || timeout > 3600)
                usage_error("--timeout: expected seconds > 0, got '%s'", optarg);
            break;
        }
        case 'h': fputs(usage_text, stdout); return 0;
        default:
            if (optopt)
                usage_error("option --%s needs a value", argv[optind - 1] + 2);
            usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        usage_error("unexpected argument '%s'", argv[optind]);
    if (!url)
        usage_error("--redis URL is required%s", "");
    if (!!ad + random_ev != 1)
        usage_error("give exactly one of --classified TEXT and --random%s", "");
    if (ad) {
        const char *why = notif_ad_check(ad, strlen(ad));
        if (why)
            usage_error("--classified: bad ad: %s", why);
    }
    if (channel && (!*channel || strchr(channel, ' ')))
        usage_error("--redis-channel: expected a name without spaces, got '%s'", channel);
    redis_config cfg = {.connect_timeout = timeout, .command_timeout = timeout};
    char host[256];
    if (redis_parse_url(url, &cfg, host, sizeof host) < 0)
        usage_error("--redis: expected redis://HOST[:PORT][/DB], got '%s'", url);
    cfg.max_delay = timeout; /* one attempt, in practice: the timeout ends the run first */
    cfg.initial_delay = timeout;

    reactor *r = reactor_new();
    if (!r) {
        perror("notif-publish: reactor");
        return 1;
    }
    redis_client *rc = redis_client_new(r, &cfg);
    if (!rc) {
        perror("notif-publish: redis");
        return 1;
    }
    /* Commands made while connecting wait for the link; a refused connect fails them. */
    deferred *d = notif_redis_post(rc, channel, ad ? NOTIF_EVENT_CLASSIFIED : NOTIF_EVENT_RANDOM, ad);
    if (!d) {
        perror("notif-publish");
        return 1;
    }
    deferred_add_timeout(d, r, timeout, NULL, NULL);
    deferred_add_callbacks(d, done_ok, done_err, r);
    deferred_unref(d);
    if (!finished) /* not answered yet: run until it is */
        reactor_run(r);
    redis_client_free(rc);
    reactor_free(r);
    return status;
}
