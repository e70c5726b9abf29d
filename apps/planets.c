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
 *   planets [--coro] [--xpath EXPR] [--cafile FILE] [--timeline FILE] [URL...] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <twistc/coro.h>
#include <twistc/deferred.h>
#include <twistc/http.h>
#include <twistc/reactor.h>

#include "lib/planets_common.h"

static reactor *r;
static struct planets_opts o;
static http_options http_opts;
static int failed;

static deferred_result print_first_title(deferred_result html, void *arg)
{
    struct planets_span *s = arg;
    char line[1024];
    s->got = planets_now();
    planets_title_line(s->url, html.u.s, strlen(html.u.s), o.xpath, line, sizeof line);
    printf("%s\n", line);
    fflush(stdout);
    s->printed = planets_now();
    deferred_result_clear(&html);
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
    return print_first_title(html, s);
}

static void stop(reactor *re, void *arg)
{
    reactor_stop(re);
}

static deferred_result all_done(deferred_result list, void *arg)
{
    reactor_call_when_running(r, stop, NULL); /* now, or as soon as run() starts */
    return list;
}

int main(int argc, char **argv)
{
    planets_parse_args(argc, argv, PLANETS_OPT_CORO, &o);
    http_opts.ca_file = o.cafile;
    r = reactor_new();
    struct planets_span *spans = calloc((size_t)o.nurls, sizeof *spans);
    deferred **ds = calloc((size_t)o.nurls, sizeof *ds);
    if (!r || !spans || !ds) {
        perror("planets");
        return 1;
    }
    for (int i = 0; i < o.nurls; i++) {
        spans[i].url = o.urls[i];
        snprintf(spans[i].worker, sizeof spans[i].worker, "%s", o.coro ? "coroutines" : "reactor");
        spans[i].asked = planets_now();
        if (o.coro) {
            ds[i] = coro_start(r, first_title, &spans[i], 0);
        } else {
            ds[i] = get_page_opts(r, o.urls[i], &http_opts);
            deferred_add_callbacks(ds[i], print_first_title, print_error, &spans[i]);
        }
        if (!ds[i]) {
            perror("planets");
            return 1;
        }
    }
    deferred *all = deferred_list_new(ds, (size_t)o.nurls, 0);
    deferred_add_callback(all, all_done, NULL);
    reactor_run(r);

    planets_timeline_write(o.timeline, o.coro ? "coroutines" : "reactor", spans, o.nurls);
    deferred_unref(all);
    for (int i = 0; i < o.nurls; i++)
        deferred_unref(ds[i]);
    reactor_free(r);
    free(ds);
    free(spans);
    return failed;
}
