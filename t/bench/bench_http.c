/* bench_http: client CPU per request of twistc's HTTP client against libcurl's multi
 * interface, fetching a 1 KiB page over kept-alive connections from a local server,
 * C requests in flight at a time. Both clients run in this process, one after the
 * other, interleaved for R rounds; the server is a child process (a twistc protocol
 * that answers every request with the same 1 KiB page), so getrusage(RUSAGE_SELF)
 * counts the client alone.
 *
 *   build/bench/bench_http [--conc 1,50] [--requests N] [--rounds R] [--only ours|curl]
 *                          [--proto http,https] [--port P] [--serve] [--tls]
 *
 * https: the server (twistc's TLS layer) uses a throwaway certificate for 127.0.0.1
 * made with the openssl command; both clients verify it against that file (ours:
 * http_options.ca_file, curl: CURLOPT_CAINFO) and keep their TLS connections alive.
 *
 * --serve runs only the server (prints "PORT n"); --port P uses a server already
 * running (t/bench/bench_http_callgrind.sh runs the client alone under callgrind).
 * Each client first makes C requests that are not counted (the connections open), then
 * N counted ones; every answer is checked (status 200, 1024 bytes). */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <twistc/deferred.h>
#include <twistc/http.h>
#include <twistc/line_receiver.h>
#include <twistc/reactor.h>
#include <twistc/tls.h>
#include <twistc/transport.h>

#define PAGE 1024

/* ---- The server: a request ends at its empty line; the answer is always the same. --- */

static char answer[256 + PAGE];
static size_t answer_len;

struct srv {
    protocol base;
    unsigned state; /* how many bytes of "\r\n\r\n" matched */
};

static int srv_data(protocol *p, const char *data, size_t len)
{
    struct srv *s = (struct srv *)p;
    for (size_t i = 0; i < len; i++) {
        char c = data[i];
        if (c == (s->state & 1 ? '\n' : '\r'))
            s->state++;
        else
            s->state = c == '\r';
        if (s->state == 4) {
            s->state = 0;
            if (transport_write(p->transport, answer, answer_len) < 0)
                return -1;
        }
    }
    return 0;
}

static void srv_lost(protocol *p, const protocol_reason *r)
{
    (void)r;
    free(p);
}

static const protocol_ops srv_ops = {.data_received = srv_data, .connection_lost = srv_lost};

static protocol *srv_build(factory *f, const struct sockaddr *a, socklen_t l)
{
    (void)f, (void)a, (void)l;
    struct srv *s = calloc(1, sizeof *s);
    if (s)
        protocol_init(&s->base, &srv_ops);
    return s ? &s->base : NULL;
}

static const factory_ops srv_fops = {.build_protocol = srv_build};

static void make_answer(void)
{
    answer_len = (size_t)snprintf(answer, sizeof answer,
                                  "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                  "Content-Length: %d\r\n\r\n", PAGE);
    for (int i = 0; i < PAGE; i++)
        answer[answer_len++] = (char)('a' + i % 26);
}

static char certdir[64], cert[128], key[128];

/* A self-signed certificate for 127.0.0.1 (EC P-256), with the openssl command. */
static int make_cert(void)
{
    snprintf(certdir, sizeof certdir, "/tmp/bench_http.XXXXXX");
    if (!mkdtemp(certdir))
        return -1;
    snprintf(cert, sizeof cert, "%s/cert.pem", certdir);
    snprintf(key, sizeof key, "%s/key.pem", certdir);
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
             "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout %s -out %s "
             ">/dev/null 2>&1", key, cert);
    return system(cmd) == 0 ? 0 : -1;
}

static void remove_cert(void)
{
    if (!certdir[0])
        return;
    unlink(cert);
    unlink(key);
    rmdir(certdir);
}

/* Serves on 127.0.0.1:0 (over TLS when tls); writes the port to fd (or prints
 * "PORT n" when fd < 0). */
static int serve(int fd, int tls)
{
    reactor *r = reactor_new();
    factory f;
    factory_init(&f, &srv_fops, NULL);
    tls_context *ctx = NULL;
    if (tls) {
        char err[200];
        ctx = tls_context_new_server(cert, key, err, sizeof err);
        if (!ctx) {
            fprintf(stderr, "bench_http: %s\n", err);
            return 1;
        }
    }
    listener *l = !r ? NULL
                     : ctx ? reactor_listen_tls(r, "127.0.0.1", 0, &f, 512, ctx)
                           : reactor_listen_tcp(r, "127.0.0.1", 0, &f, 512);
    if (!l)
        return 1;
    int port = listener_port(l);
    if (fd >= 0) {
        if (write(fd, &port, sizeof port) != sizeof port)
            return 1;
        close(fd);
    } else {
        printf("PORT %d\n", port);
        fflush(stdout);
    }
    reactor_stop_on_signals(r);
    reactor_run(r);
    reactor_free(r);
    if (ctx)
        tls_context_unref(ctx);
    return 0;
}

/* ---- Measuring -------------------------------------------------------------------------- */

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static char url[128];
static long errors;

/* ---- twistc --------------------------------------------------------------------------- */

struct ours {
    reactor *r;
    http_options o;
    long left, done, want;
};

static void ours_issue(struct ours *c);

static deferred_result ours_done(deferred_result res, void *arg)
{
    struct ours *c = arg;
    http_response *resp = http_result_response(&res);
    if (!resp || resp->status != 200 || resp->body_len != PAGE)
        errors++;
    deferred_result_clear(&res);
    c->done++;
    if (c->left > 0) {
        c->left--;
        ours_issue(c);
    }
    return deferred_none();
}

static void ours_issue(struct ours *c)
{
    deferred *d = http_request(c->r, "GET", url, NULL, NULL, 0, &c->o);
    deferred_add_both(d, ours_done, c);
    deferred_unref(d);
}

/* n requests, conc at a time. */
static void ours_batch(struct ours *c, long n, int conc)
{
    c->done = 0;
    c->want = n;
    c->left = n;
    for (int i = 0; i < conc && c->left > 0; i++) {
        c->left--;
        ours_issue(c);
    }
    while (c->done < c->want)
        reactor_iterate(c->r, 1.0);
}

static double run_ours(int conc, long n, double *wall)
{
    struct ours c = {.r = reactor_new()};
    c.o.max_per_host = conc;
    c.o.ca_file = cert[0] && strncmp(url, "https", 5) == 0 ? cert : NULL;
    ours_batch(&c, conc, conc); /* connections open */
    double w0 = wall_s(), t0 = cpu_s();
    ours_batch(&c, n, conc);
    double t = cpu_s() - t0;
    *wall = wall_s() - w0;
    reactor_free(c.r);
    return t;
}

/* ---- libcurl multi -------------------------------------------------------------------- */

struct sink {
    char buf[PAGE * 2];
    size_t len;
};

static size_t curl_write(char *p, size_t sz, size_t nm, void *arg)
{
    struct sink *s = arg;
    size_t n = sz * nm;
    if (s->len + n <= sizeof s->buf)
        memcpy(s->buf + s->len, p, n);
    s->len += n;
    return n;
}

static void curl_batch(CURLM *m, CURL **e, struct sink *sinks, long n, int conc)
{
    long left = n, done = 0;
    for (int i = 0; i < conc && left > 0; i++, left--) {
        sinks[i].len = 0;
        curl_multi_add_handle(m, e[i]);
    }
    int running = 1;
    while (done < n) {
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int q;
        while ((msg = curl_multi_info_read(m, &q))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            CURL *h = msg->easy_handle;
            struct sink *s;
            long code = 0;
            curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&s);
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
            if (msg->data.result != CURLE_OK || code != 200 || s->len != PAGE)
                errors++;
            done++;
            curl_multi_remove_handle(m, h);
            if (left > 0) {
                left--;
                s->len = 0;
                curl_multi_add_handle(m, h);
            }
        }
        if (done < n)
            curl_multi_poll(m, NULL, 0, 1000, NULL);
    }
}

static double run_curl(int conc, long n, double *wall)
{
    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, (long)conc);
    CURL **e = calloc((size_t)conc, sizeof *e);
    struct sink *sinks = calloc((size_t)conc, sizeof *sinks);
    for (int i = 0; i < conc; i++) {
        e[i] = curl_easy_init();
        curl_easy_setopt(e[i], CURLOPT_URL, url);
        curl_easy_setopt(e[i], CURLOPT_WRITEFUNCTION, curl_write);
        curl_easy_setopt(e[i], CURLOPT_WRITEDATA, &sinks[i]);
        curl_easy_setopt(e[i], CURLOPT_PRIVATE, (char *)&sinks[i]);
        curl_easy_setopt(e[i], CURLOPT_NOSIGNAL, 1L);
        if (strncmp(url, "https", 5) == 0)
            curl_easy_setopt(e[i], CURLOPT_CAINFO, cert);
    }
    curl_batch(m, e, sinks, conc, conc);
    double w0 = wall_s(), t0 = cpu_s();
    curl_batch(m, e, sinks, n, conc);
    double t = cpu_s() - t0;
    *wall = wall_s() - w0;
    for (int i = 0; i < conc; i++)
        curl_easy_cleanup(e[i]);
    curl_multi_cleanup(m);
    free(e);
    free(sinks);
    return t;
}

/* ---- main ------------------------------------------------------------------------------ */

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One server (a child process) and the rows for every concurrency. */
static int run_proto(int https, const char *concs, long requests, int rounds, const char *only,
                     int port)
{
    pid_t child = -1;
    if (!port) {
        int pfd[2];
        if (pipe(pfd) < 0)
            return 1;
        child = fork();
        if (child == 0) {
            close(pfd[0]);
            _exit(serve(pfd[1], https));
        }
        close(pfd[1]);
        if (read(pfd[0], &port, sizeof port) != sizeof port)
            return 1;
        close(pfd[0]);
    }
    snprintf(url, sizeof url, "%s://127.0.0.1:%d/page", https ? "https" : "http", port);
    char *list = strdup(concs);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        int conc = atoi(tok);
        long n = requests ? requests : (conc > 1 ? 50000 : 20000);
        double o[32], c[32], ow[32], cw[32];
        int R = rounds > 32 ? 32 : rounds;
        for (int k = 0; k < R; k++) {
            o[k] = c[k] = ow[k] = cw[k] = 0;
            if (!only || !strcmp(only, "ours"))
                o[k] = run_ours(conc, n, &ow[k]) / (double)n * 1e6;
            if (!only || !strcmp(only, "curl"))
                c[k] = run_curl(conc, n, &cw[k]) / (double)n * 1e6;
        }
        qsort(o, (size_t)R, sizeof *o, cmp_d);
        qsort(c, (size_t)R, sizeof *c, cmp_d);
        qsort(ow, (size_t)R, sizeof *ow, cmp_d);
        qsort(cw, (size_t)R, sizeof *cw, cmp_d);
        double om = o[R / 2], cm = c[R / 2];
        printf("%-5s  %6d  %8ld  %7.2f  %7.2f  %5.2f  (%.0f, %.0f)\n", https ? "https" : "http",
               conc, n, om, cm, cm > 0 ? om / cm : 0.0, ow[R / 2] > 0 ? n / ow[R / 2] : 0.0,
               cw[R / 2] > 0 ? n / cw[R / 2] : 0.0);
        fflush(stdout);
    }
    free(list);
    if (child > 0) {
        kill(child, SIGTERM);
        waitpid(child, NULL, 0);
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *concs = "1,50", *only = NULL, *protos = "http,https";
    long requests = 0;
    int rounds = 3, port = 0, serve_only = 0, tls = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--conc") && i + 1 < argc)
            concs = argv[++i];
        else if (!strcmp(argv[i], "--requests") && i + 1 < argc)
            requests = atol(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--proto") && i + 1 < argc)
            protos = argv[++i];
        else if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--cert") && i + 1 < argc)
            snprintf(cert, sizeof cert, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--serve"))
            serve_only = 1;
        else if (!strcmp(argv[i], "--tls"))
            tls = 1;
        else {
            fprintf(stderr, "usage: %s [--conc 1,50] [--requests N] [--rounds R] "
                            "[--only ours|curl] [--proto http,https] [--port P --cert FILE] "
                            "[--serve [--tls]]\n", argv[0]);
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    make_answer();
    int want_tls = tls || strstr(protos, "https") != NULL;
    if (want_tls && !cert[0] && make_cert() < 0) {
        fprintf(stderr, "bench_http: could not make a certificate with openssl\n");
        return 1;
    }
    if (serve_only) {
        if (tls)
            printf("CERT %s\n", cert);
        int rc = serve(-1, tls);
        remove_cert();
        return rc;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    printf("# client CPU per request (user+sys, this process only), %d-byte page, "
           "kept-alive connections; median of %d rounds, interleaved\n", PAGE, rounds);
    printf("# proto  conc  requests  ours_us  curl_us  ratio  (ours wall req/s, curl wall req/s)\n");
    for (const char *p = protos; *p;) {
        size_t l = strcspn(p, ",");
        int https = l == 5 && strncmp(p, "https", 5) == 0;
        if (https || (l == 4 && strncmp(p, "http", 4) == 0))
            run_proto(https, concs, requests, rounds, only, port);
        else
            fprintf(stderr, "bench_http: unknown protocol %.*s\n", (int)l, p);
        p += l;
        if (*p == ',')
            p++;
    }
    curl_global_cleanup();
    remove_cert();
    if (errors)
        fprintf(stderr, "bench_http: %ld bad answers\n", errors);
    return errors ? 1 : 0;
}
