/* planets: the talk's Twisted slide in C, and its coroutine twin.
 *
 *     for p in planets:
 *         getPage(p).addCallback(print_first_title)
 *     reactor.run()
 *
 * Every page is asked for at once; one thread, no lock: the reactor runs each callback
 * when its page has arrived, so four one-second pages take one second and print in
 * the order they arrive. A DeferredList stops the reactor once all have answered.
 * --coro: the same with one coroutine per page, which reads top to bottom:
 *     html = await get_page(url); print its title
 * docs/planets.md compares it with the blocking and the threaded versions.
 *
 * --mail-to ADDR: the talk's "functions must return quickly" slide: each title is also
 * mailed as it arrives, --smtp-mode blocking (a blocking SMTP exchange inside the
 * callback, the slide's smtplib), thread (the same through defer_to_thread) or async
 * (smtp_send). --latency FILE measures what that costs the reactor's other clients
 * (planets_probe.h). docs/mail-lesson.md tells the story.
 *
 *   planets [--coro] [--xpath EXPR] [--cafile FILE] [--timeline FILE]
 *           [--mail-to ADDR [--mail-from ADDR] [--smtp HOST[:PORT]]
 *            [--smtp-mode blocking|thread|async]] [--latency FILE] [URL...] */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <twistc/coro.h>
#include <twistc/deferred.h>
#include <twistc/http.h>
#include <twistc/reactor.h>
#include <twistc/smtp.h>
#include <twistc/thread_pool.h>

#include "lib/blocking_smtp.h"
#include "lib/planets_common.h"
#include "lib/planets_probe.h"

static reactor *r;
static struct planets_opts o;
static http_options http_opts;
static int failed;

static deferred_result mail_title(struct planets_span *s, const char *title);

static deferred_result print_first_title(deferred_result html, void *arg)
{
    struct planets_span *s = arg;
    char line[1024];
    s->got = planets_now();
    planets_title_line(s->url, html.u.s, strlen(html.u.s), o.xpath, line, sizeof line);
    printf("%s\n", line);
    fflush(stdout);
    s->printed = planets_now();
    if (o.mail_to) { /* the mail lesson: the same title goes out by mail */
        char *title = NULL;
        planets_dig(html.u.s, strlen(html.u.s), o.xpath, &title);
        deferred_result_clear(&html);
        deferred_result next = title ? mail_title(s, title) : deferred_none();
        free(title);
        return next;
    }
    deferred_result_clear(&html);
    return deferred_none();
}

/* ---- The mail lesson (docs/mail-lesson.md) --------------------------------------------- */

#define SMTP_TIMEOUT 30.0

/* The slide's message: From, To, and the title as the body (plus a Subject naming the
 * planet, so that a reader of the mailbox knows which one it is). */
static char *compose(const struct planets_span *s, const char *title, size_t *len)
{
    const char *fmt = "From: %s\r\nTo: %s\r\nSubject: first article on %s\r\n"
                      "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n";
    int n = snprintf(NULL, 0, fmt, o.mail_from, o.mail_to, s->url, title);
    char *msg = n > 0 ? malloc((size_t)n + 1) : NULL;
    if (msg)
        *len = (size_t)snprintf(msg, (size_t)n + 1, fmt, o.mail_from, o.mail_to, s->url, title);
    return msg;
}

/* --smtp-mode blocking: the slide's code. The whole SMTP exchange runs here, inside the
 * page's callback, on the reactor thread: every other connection waits for it. */
static deferred_result mail_title_blocking(struct planets_span *s, const char *msg, size_t len)
{
    char err[512];
    const char *to[] = {o.mail_to};
    int n = blocking_smtp_send(o.smtp_host, o.smtp_port, o.mail_from, to, 1, msg, len,
                               SMTP_TIMEOUT, err, sizeof err);
    if (n < 0)
        return deferred_error(EIO, "%s", err);
    return deferred_int(n);
}

/* --smtp-mode thread: the same blocking function, on a worker thread of the pool. */
struct mail_job {
    char *msg;
    size_t len;
};

static void mail_job_free(void *p)
{
    struct mail_job *j = p;
    free(j->msg);
    free(j);
}

static deferred_result send_on_a_thread(void *arg) /* a worker thread: touches only its job */
{
    struct mail_job *j = arg;
    char err[512];
    const char *to[] = {o.mail_to};
    int n = blocking_smtp_send(o.smtp_host, o.smtp_port, o.mail_from, to, 1, j->msg, j->len,
                               SMTP_TIMEOUT, err, sizeof err);
    return n < 0 ? deferred_error(EIO, "%s", err) : deferred_int(n);
}

static deferred_result mail_title_thread(struct planets_span *s, char *msg, size_t len)
{
    struct mail_job *j = malloc(sizeof *j);
    if (!j) {
        free(msg);
        return deferred_error(ENOMEM, "out of memory");
    }
    j->msg = msg;
    j->len = len;
    deferred *d = defer_to_thread_full(r, send_on_a_thread, j, mail_job_free);
    if (!d)
        return deferred_error(errno, "defer_to_thread failed");
    return deferred_continue_with(d); /* the page's chain waits for the mail */
}

/* --smtp-mode async: the asynchronous client. The exchange is one more connection on
 * the reactor; its replies arrive as events like the pages' bytes. */
static deferred_result mail_title_async(struct planets_span *s, const char *msg, size_t len)
{
    const char *to[] = {o.mail_to};
    smtp_options so = {.timeout = SMTP_TIMEOUT};
    deferred *d = smtp_send(r, o.smtp_host, o.smtp_port, o.mail_from, to, 1, msg, len, &so);
    if (!d)
        return deferred_error(errno, "smtp_send failed");
    return deferred_continue_with(d); /* fires with an smtp_result */
}

static deferred_result mail_title(struct planets_span *s, const char *title)
{
    size_t len;
    char *msg = compose(s, title, &len);
    if (!msg)
        return deferred_error(ENOMEM, "out of memory");
    s->mail_start = planets_now();
    deferred_result res;
    switch (o.smtp_mode) {
    case PLANETS_SMTP_BLOCKING:
        res = mail_title_blocking(s, msg, len);
        free(msg);
        return res;
    case PLANETS_SMTP_THREAD:
        return mail_title_thread(s, msg, len); /* takes msg */
    default:
        res = mail_title_async(s, msg, len); /* smtp_send copied msg */
        free(msg);
        return res;
    }
}

static deferred_result mailed(deferred_result res, void *arg)
{
    struct planets_span *s = arg;
    if (s->mail_start > 0) { /* a title was mailed (not: no title, or no page) */
        s->mail_end = planets_now();
        printf("mailed the title of %s to %s\n", s->url, o.mail_to);
        fflush(stdout);
    }
    deferred_result_clear(&res);
    return deferred_none();
}

static deferred_result mail_failed(deferred_result f, void *arg)
{
    struct planets_span *s = arg;
    s->mail_end = planets_now();
    printf("cannot mail the title of %s: %s\n", s->url, f.u.failure->message);
    fflush(stdout);
    failed = 1;
    deferred_result_clear(&f); /* handled */
    return deferred_none();
}

static deferred_result print_error(deferred_result f, void *arg)
{
    struct planets_span *s = arg;
    s->got = s->printed = planets_now();
    printf("cannot fetch %s: %s\n", s->url, f.u.failure->message);
    fflush(stdout);
    failed = 1;
    deferred_result_clear(&f); /* handled */
    return deferred_none();
}

/* --coro: one coroutine per page. */
static deferred_result first_title(void *arg)
{
    struct planets_span *s = arg;
    deferred_result html = coro_await_take(get_page_opts(r, s->url, &http_opts));
    if (deferred_result_is_failure(&html))
        return print_error(html, s);
    deferred_result res = print_first_title(html, s);
    if (res.kind == DEFERRED_DEFERRED) /* a mail on its way: wait for it here */
        res = coro_await_take(res.u.deferred);
    return deferred_result_is_failure(&res) ? mail_failed(res, s) : mailed(res, s);
}

static struct planets_span *spans;
static deferred **ds;
static deferred *all;
static planets_probe *probe;
static int pages_done, probe_gone;

static void stop(reactor *re, void *arg)
{
    reactor_stop(re);
}

/* --latency: the pinger keeps going a little after the last page, so that the series
 * shows the loop quiet again. */
#define PROBE_TAIL 0.2

static void stop_probe(reactor *re, void *arg)
{
    planets_probe_stop(probe);
}

static deferred_result all_done(deferred_result list, void *arg)
{
    pages_done = 1;
    if (probe && !probe_gone)
        reactor_call_later(r, PROBE_TAIL, stop_probe, NULL); /* probe_stopped stops */
    else
        reactor_call_when_running(r, stop, NULL); /* now, or as soon as run() starts */
    return list;
}

static void start_pages(reactor *re, void *arg)
{
    for (int i = 0; i < o.nurls; i++) {
        spans[i].asked = planets_now();
        if (o.coro) {
            ds[i] = coro_start(r, first_title, &spans[i], 0);
        } else {
            ds[i] = get_page_opts(r, o.urls[i], &http_opts);
            deferred_add_callbacks(ds[i], print_first_title, print_error, &spans[i]);
            if (o.mail_to)
                deferred_add_callbacks(ds[i], mailed, mail_failed, &spans[i]);
        }
        if (!ds[i]) {
            perror("planets");
            exit(1);
        }
    }
    all = deferred_list_new(ds, (size_t)o.nurls, 0);
    deferred_add_callback(all, all_done, NULL);
}

/* The probe answered once: the meter runs, the planets may start. */
static void probe_ready(reactor *re, void *arg)
{
    start_pages(re, NULL);
}

static void probe_stopped(reactor *re, void *arg)
{
    const char *why = planets_probe_error(probe);
    if (why) {
        fprintf(stderr, "planets: --latency: %s\n", why);
        failed = 1;
    }
    probe_gone = 1;
    if (pages_done || !all) /* else all_done stops */
        reactor_stop(re);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Appends the probe's series and the mails' spans to path:
 *     ping MODE SENT LATENCY_MS
 *     mail MODE URL START END
 * and prints a summary line. MODE: the --smtp-mode, "none" without --mail-to. */
static int write_latency(const char *path)
{
    size_t n;
    const struct planets_ping *p = planets_probe_samples(probe, &n);
    const char *mode = o.mail_to ? planets_smtp_mode_names[o.smtp_mode] : "none";
    FILE *f = fopen(path, "a");
    if (!f)
        return -errno;
    double *lat = malloc((n ? n : 1) * sizeof *lat);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "ping %s %.6f %.3f\n", mode, p[i].sent, p[i].latency * 1000);
        if (lat)
            lat[i] = p[i].latency * 1000;
    }
    for (int i = 0; i < o.nurls; i++)
        if (spans[i].mail_start > 0)
            fprintf(f, "mail %s %s %.6f %.6f\n", mode, spans[i].url, spans[i].mail_start,
                    spans[i].mail_end);
    if (lat && n) {
        qsort(lat, n, sizeof *lat, cmp_double);
        printf("latency (%s): %zu pings, median %.1f ms, max %.1f ms\n", mode, n, lat[n / 2],
               lat[n - 1]);
    }
    free(lat);
    return fclose(f) == 0 ? 0 : -errno;
}

int main(int argc, char **argv)
{
    planets_parse_args(argc, argv, PLANETS_OPT_CORO | PLANETS_OPT_MAIL, &o);
    http_opts.ca_file = o.cafile;
    r = reactor_new();
    spans = calloc((size_t)o.nurls, sizeof *spans);
    ds = calloc((size_t)o.nurls, sizeof *ds);
    if (!r || !spans || !ds) {
        perror("planets");
        return 1;
    }
    for (int i = 0; i < o.nurls; i++) {
        spans[i].url = o.urls[i];
        snprintf(spans[i].worker, sizeof spans[i].worker, "%s", o.coro ? "coroutines" : "reactor");
    }
    if (o.latency) { /* the meter first; the pages once it answered (probe_ready) */
        probe = planets_probe_start(r, 0.010, probe_ready, probe_stopped, NULL);
        if (!probe) {
            perror("planets: --latency");
            return 1;
        }
    } else {
        start_pages(r, NULL);
    }
    reactor_run(r);

    planets_timeline_write(o.timeline, o.coro ? "coroutines" : "reactor", spans, o.nurls);
    if (probe) {
        int rc = write_latency(o.latency);
        if (rc < 0) {
            fprintf(stderr, "planets: --latency %s: %s\n", o.latency, strerror(-rc));
            failed = 1;
        }
    }
    planets_probe_free(probe);
    deferred_unref(all);
    for (int i = 0; i < o.nurls; i++)
        deferred_unref(ds[i]);
    reactor_free(r);
    free(ds);
    free(spans);
    return failed;
}
