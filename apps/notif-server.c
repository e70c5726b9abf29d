#define _GNU_SOURCE /* getopt_long, SO_REUSEPORT */
/* notif-server: the talk's notification server (protocol: docs/demo.md).
 *
 *   notif-server [--port N] [--bind ADDR] [--interval SECONDS] [--ads FILE]
 *                [--max-clients N] [--backend NAME] [--workers N] [--trace]
 *                [--tls-cert FILE --tls-key FILE]
 *                [--idle-timeout SECONDS]
 *                [--redis redis://HOST[:PORT][/DB] [--redis-channel NAME]]
 *
 * Prints "listening on ADDR:PORT" once ready (useful with --port 0). SIGINT/SIGTERM stop
 * it gracefully: every answer owed is sent and every connection closed, then one summary
 * line. --workers N forks N processes that share the port (SO_REUSEPORT), one reactor
 * each; the first one forwards SIGINT/SIGTERM to the others and waits for them.
 * --redis shares the events with every other instance on the same Redis channel
 * (docs/scaling.md); Redis being away is reported on stderr, once per outage. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apps/notif/notif_redis.h"
#include "apps/notif/notif_server.h"
#include <twistc/reactor.h>
#include <twistc/tls.h>
#include <twistc/transport.h>

static const char usage_text[] =
    "usage: notif-server [options]\n"
    "  --port N           TCP port (default 6789; 0 picks a free one)\n"
    "  --bind ADDR        address to listen on (default 127.0.0.1)\n"
    "  --interval SECONDS time between published events, fractions allowed (default 1;\n"
    "                     0: none of its own, only events relayed from Redis)\n"
    "  --ads FILE         classified ads, one per line (default: built-in list)\n"
    "  --max-clients N    refuse connections beyond N with \"error: server full\" (0: no limit)\n"
    "  --backend NAME     reactor backend: epoll, poll, select, kqueue\n"
    "  --workers N        N processes sharing the port with SO_REUSEPORT (default 1)\n"
    "  --idle-timeout S   close a connection that sent nothing for S seconds (default: never)\n"
    "  --trace            print the reactor's trace (one line per loop phase) on stderr\n"
    "  --tls-cert FILE    serve over TLS only, with this certificate chain (PEM)\n"
    "  --tls-key FILE     ... and this private key (PEM); both or neither\n"
    "  --redis URL        share events with other instances: redis://HOST[:PORT][/DB]\n"
    "  --redis-channel NAME  the pub/sub channel (default " NOTIF_REDIS_DEFAULT_CHANNEL ")\n";

static void usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "notif-server: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", usage_text);
    exit(2);
}

static long parse_long(const char *opt, const char *s, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s: expected a number from %ld to %ld, got '%%s'", opt, min,
                 max);
        usage_error(msg, s);
    }
    return v;
}

/* A port picked for several workers: bound (not listening) with SO_REUSEPORT so that it
 * stays ours while the workers bind it too. */
static int reserve_port(const char *bind_addr, int *port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    int family;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, bind_addr, &a4->sin_addr) == 1) {
        family = a4->sin_family = AF_INET;
        len = sizeof *a4;
    } else if (inet_pton(AF_INET6, bind_addr, &a6->sin6_addr) == 1) {
        family = a6->sin6_family = AF_INET6;
        len = sizeof *a6;
    } else {
        errno = EINVAL;
        return -1;
    }
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
#ifdef SO_REUSEPORT
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on);
#endif
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    *port = ntohs(family == AF_INET ? a4->sin_port : a6->sin6_port);
    return fd;
}

static pid_t children[1024];
static int nchildren;

/* First worker: SIGINT/SIGTERM go to the others too, then we stop ourselves. */
static void on_stop_signal(reactor *r, void *data)
{
    for (int i = 0; i < nchildren; i++)
        kill(children[i], SIGTERM);
    reactor_stop(r);
}

/* Redis link changes: one line when it comes up, one when it goes (not one per retry). */
static void redis_link(notif_redis *nr, int up, const char *why, void *data)
{
    static int reported_down = 0, was_up = 0;
    if (up) {
        fprintf(stderr, "notif-server: redis: connected to %s%s\n", (const char *)data,
                was_up || reported_down ? " again" : "");
        was_up = 1;
        reported_down = 0;
    } else if (!reported_down) {
        fprintf(stderr, "notif-server: redis: %s: %s; serving local events only, retrying\n",
                (const char *)data, why ? why : "unavailable");
        reported_down = 1;
    }
}

int main(int argc, char **argv)
{
    const char *bind_addr = "127.0.0.1", *ads_file = NULL, *backend = NULL;
    const char *tls_cert = NULL, *tls_key = NULL;
    long port = NOTIF_DEFAULT_PORT, max_clients = 0, workers = 1;
    double interval = NOTIF_DEFAULT_INTERVAL, idle_timeout = 0;
    int trace = 0;
    const char *redis_url = NULL, *redis_channel = NULL;
    static const struct option opts[] = {
        {"port", required_argument, NULL, 'p'},     {"bind", required_argument, NULL, 'b'},
        {"interval", required_argument, NULL, 'i'}, {"ads", required_argument, NULL, 'a'},
        {"max-clients", required_argument, NULL, 'm'},
        {"backend", required_argument, NULL, 'B'},  {"workers", required_argument, NULL, 'w'},
        {"trace", no_argument, NULL, 't'},          {"help", no_argument, NULL, 'h'},
        {"tls-cert", required_argument, NULL, 'C'}, {"tls-key", required_argument, NULL, 'K'},
        {"idle-timeout", required_argument, NULL, 'T'},
        {"redis", required_argument, NULL, 'R'},    {"redis-channel", required_argument, NULL, 'H'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'p': port = parse_long("--port", optarg, 0, 65535); break;
        case 'b': bind_addr = optarg; break;
        case 'i': {
            char *end;
            interval = strtod(optarg, &end);
            if (end == optarg || *end || !isfinite(interval) || interval < 0 || interval > 86400)
                usage_error("--interval: expected seconds >= 0 (e.g. 0.3), got '%s'", optarg);
            break;
        }
        case 'T': {
            char *end;
            idle_timeout = strtod(optarg, &end);
            if (end == optarg || *end || !isfinite(idle_timeout) || idle_timeout < 0)
                usage_error("--idle-timeout: expected seconds >= 0, got '%s'", optarg);
            break;
        }
        case 'a': ads_file = optarg; break;
        case 'm': max_clients = parse_long("--max-clients", optarg, 0, INT_MAX); break;
        case 'B': backend = optarg; break;
        case 'w': workers = parse_long("--workers", optarg, 1, 1024); break;
        case 't': trace = 1; break;
        case 'C': tls_cert = optarg; break;
        case 'K': tls_key = optarg; break;
        case 'R': redis_url = optarg; break;
        case 'H': redis_channel = optarg; break;
        case 'h': fputs(usage_text, stdout); return 0;
        default:
            if (optopt)
                usage_error("option --%s needs a value", argv[optind - 1] + 2);
            usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        usage_error("unexpected argument '%s'", argv[optind]);
    if (!tls_cert != !tls_key)
        usage_error("%s: --tls-cert and --tls-key go together", tls_cert ? "--tls-cert" : "--tls-key");
    tls_context *tls = NULL;
    if (tls_cert) { /* before any fork: a bad file is reported once */
        char err[512];
        tls = tls_context_new_server(tls_cert, tls_key, err, sizeof err);
        if (!tls) {
            fprintf(stderr, "notif-server: %s\n", err);
            return 1;
        }
    }

    notif_redis_config rcfg = {.channel = redis_channel};
    char redis_host[256];
    if (redis_url && redis_parse_url(redis_url, &rcfg.redis, redis_host, sizeof redis_host) < 0)
        usage_error("--redis: expected redis://HOST[:PORT][/DB], got '%s'", redis_url);
    if (redis_channel && (!*redis_channel || strchr(redis_channel, ' ')))
        usage_error("--redis-channel: expected a name without spaces, got '%s'", redis_channel);
    if (redis_channel && !redis_url)
        usage_error("--redis-channel needs --redis%s", "");

    /* Without --backend, REACTOR_BACKEND chooses, as in every other program
     * (reactor_new). Checked before any fork, so that one message is printed. */
    const char *env_backend = getenv("REACTOR_BACKEND");
    const char *chosen = backend ? backend : (env_backend && *env_backend ? env_backend : NULL);
    if (chosen) {
        const char *const *b = reactor_backends();
        while (*b && strcmp(*b, chosen) != 0)
            b++;
        if (!*b) {
            if (backend)
                usage_error("--backend: '%s' is not available here", backend);
            fprintf(stderr, "notif-server: REACTOR_BACKEND: '%s' is not available here\n",
                    chosen);
            return 2;
        }
    }

    char **ads = NULL;
    size_t n_ads = 0;
    if (ads_file) {
        char err[512];
        if (notif_ads_load(ads_file, &ads, &n_ads, err, sizeof err) < 0) {
            fprintf(stderr, "notif-server: %s\n", err);
            return 1;
        }
    }

    /* Many clients need many descriptors: take the hard limit. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    unsigned flags = 0;
    int reserved = -1;
    if (workers > 1) {
        flags = LISTEN_REUSEPORT;
        if (port == 0) {
            int p;
            reserved = reserve_port(bind_addr, &p);
            if (reserved < 0) {
                fprintf(stderr, "notif-server: cannot bind %s: %s\n", bind_addr, strerror(errno));
                return 1;
            }
            port = p;
        }
    }
    /* Fork before any reactor exists: each worker makes its own. */
    int worker = 0;
    fflush(stdout);
    for (int i = 1; i < workers; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("notif-server: fork");
            break;
        }
        if (pid == 0) {
            worker = i;
            nchildren = 0;
            break;
        }
        children[nchildren++] = pid;
    }

    reactor *r = backend ? reactor_new_with_backend(backend) : reactor_new();
    if (!r) {
        fprintf(stderr, "notif-server: cannot use backend '%s': %s\n", chosen ? chosen : "default",
                errno == EINVAL ? "unknown backend" : strerror(errno));
        return 2;
    }
    if (trace)
        reactor_set_trace(r, stderr);
    notif_server_config cfg = {
        .interval = interval > 0 ? interval : -1, /* 0: no timer of its own */
        .max_clients = (size_t)max_clients,
        .ads = (const char *const *)ads,
        .n_ads = n_ads,
        .idle_timeout = idle_timeout,
    };
    notif_server *s = notif_server_new(r, &cfg);
    if (!s) {
        fprintf(stderr, "notif-server: %s\n", strerror(errno));
        return 1;
    }
    listener *l = tls ? reactor_listen_tls_flags(r, bind_addr, (int)port, notif_server_factory(s),
                                                 1024, flags, tls)
                      : reactor_listen_tcp_flags(r, bind_addr, (int)port, notif_server_factory(s),
                                                 1024, flags);
    tls_context_unref(tls); /* the listener holds its own reference */
    if (reserved >= 0)
        close(reserved);
    if (!l) {
        fprintf(stderr, "notif-server: cannot listen on %s:%ld: %s\n", bind_addr, port,
                strerror(errno));
        for (int i = 0; i < nchildren; i++)
            kill(children[i], SIGTERM);
        return 1;
    }
    notif_server_stop_on_shutdown(s, 5.0);
    notif_redis *nr = NULL;
    if (redis_url) {
        nr = notif_redis_new(r, s, &rcfg);
        if (!nr) {
            fprintf(stderr, "notif-server: --redis: %s\n", strerror(errno));
            return 1;
        }
        notif_redis_on_link(nr, redis_link, (void *)redis_url);
    }
    if (worker == 0 && nchildren > 0) {
        reactor_on_signal(r, SIGINT, on_stop_signal, NULL);
        reactor_on_signal(r, SIGTERM, on_stop_signal, NULL);
    } else {
        reactor_stop_on_signals(r);
    }
    if (worker == 0) {
        printf("listening on %s:%d%s%s\n", bind_addr, listener_port(l),
               workers > 1 ? " (workers share the port)" : "", tls ? " (TLS)" : "");
        fflush(stdout);
    }

    int rc = reactor_run(r);
    char line[512];
    notif_server_format_stats(s, line, sizeof line);
    if (workers > 1)
        printf("notif-server: worker %d stopped: %s\n", worker, line);
    else
        printf("notif-server: stopped: %s\n", line);
    fflush(stdout);
    if (nr) {
        notif_redis_stats rs = notif_redis_get_stats(nr);
        printf("notif-server: redis: published=%llu publish_failed=%llu received=%llu "
               "bad_messages=%llu links=%lu drops=%lu\n",
               (unsigned long long)rs.published, (unsigned long long)rs.publish_failed,
               (unsigned long long)rs.received, (unsigned long long)rs.bad_messages, rs.links,
               rs.drops);
        fflush(stdout);
    }
    notif_redis_free(nr);
    listener_free(l);
    notif_server_free(s);
    reactor_free(r);
    notif_ads_free(ads);
    for (int i = 0; i < nchildren; i++)
        waitpid(children[i], NULL, 0);
    return rc == 0 ? 0 : 1;
}
