/* planets-threads: the talk's "blocking parallel ... and buggy code" slide, bug kept.
 *
 *     def first_title(url):
 *         title = dig(urlopen(url), ...)
 *         print "first article on:", url      <- two prints: another thread's
 *         print "the title is:", title        <- lines can come in between
 *     threads = (Thread(first_title, (p,)) for p in planets)
 *     start them all, join them all
 *
 * One thread per URL, each blocked in its own recv(): the pages arrive together, so
 * four one-second pages take one second. But the threads share state. By default this
 * is the slide's version, with the bugs the slide warns about, written the way they
 * creep into C:
 *   1. the two prints of one page are separate calls: the lines of different threads
 *      interleave, and "the title is" may follow another planet's URL;
 *   2. the title goes through one static buffer that every thread writes (a data race:
 *      a thread may print the title another thread just put there);
 *   3. the count of pages done is incremented by every thread without a lock (a data
 *      race: an update can be lost).
 * Nothing crashes and most runs print the right thing, which is what makes such bugs
 * expensive. ThreadSanitizer names 2 and 3 at once (docs/planets.md shows its report):
 *     make tsan-planets
 * --fixed: each thread keeps its title to itself and prints its one line, and counts,
 * under a mutex. The reactor version (planets) needs neither threads nor locks.
 *
 *   planets-threads [--fixed] [--xpath EXPR] [--cafile FILE] [--timeline FILE] [URL...] */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "lib/planets_common.h"
#include "lib/planets_fetch.h"

static struct planets_opts o;

struct job {
    pthread_t thread;
    struct planets_span span;
    int failed;
};

/* ---- the slide's version: shared state, no lock -------------------------------- */

static char title[512]; /* BUG 2: one buffer for every thread */
static int pages_done;  /* BUG 3: counted by every thread, unguarded */

static void *first_title(void *arg)
{
    struct job *j = arg;
    char *html, *t, err[512];
    size_t len;
    j->span.asked = planets_now();
    if (planets_fetch(j->span.url, o.cafile, &html, &len, err, sizeof err) < 0) {
        j->span.got = j->span.printed = planets_now();
        printf("cannot fetch %s: %s\n", j->span.url, err);
        j->failed = 1;
        return NULL;
    }
    j->span.got = planets_now();
    int found = planets_dig(html, len, o.xpath, &t);
    snprintf(title, sizeof title, "%s", found == 1 ? t : "(nothing found)"); /* BUG 2 */
    printf("first article on: %s\n", j->span.url); /* BUG 1: two prints, */
    printf("the title is: %s\n", title);           /* not one */
    pages_done++;                                  /* BUG 3 */
    j->span.printed = planets_now();
    free(t);
    free(html);
    return NULL;
}

/* ---- --fixed: nothing shared but stdout and the counter, both under one lock ----- */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void *first_title_fixed(void *arg)
{
    struct job *j = arg;
    char *html, line[1024], err[512];
    size_t len;
    j->span.asked = planets_now();
    int rc = planets_fetch(j->span.url, o.cafile, &html, &len, err, sizeof err);
    j->span.got = planets_now();
    if (rc < 0) {
        snprintf(line, sizeof line, "cannot fetch %s: %s", j->span.url, err);
        j->failed = 1;
    } else {
        planets_title_line(j->span.url, html, len, o.xpath, line, sizeof line); /* local */
        free(html);
    }
    pthread_mutex_lock(&lock);
    printf("%s\n", line); /* the whole line at once */
    fflush(stdout);
    pages_done += !j->failed; /* counted under the lock */
    pthread_mutex_unlock(&lock);
    j->span.printed = planets_now();
    return NULL;
}

int main(int argc, char **argv)
{
    planets_parse_args(argc, argv, PLANETS_OPT_FIXED, &o);
    struct job *jobs = calloc((size_t)o.nurls, sizeof *jobs);
    int started = 0, failed = !jobs;
    for (int i = 0; jobs && i < o.nurls; i++, started++) {
        jobs[i].span.url = o.urls[i];
        snprintf(jobs[i].span.worker, sizeof jobs[i].span.worker, "thread-%d", i + 1);
        if (pthread_create(&jobs[i].thread, NULL, o.fixed ? first_title_fixed : first_title,
                           &jobs[i]) != 0) {
            fprintf(stderr, "planets-threads: cannot start a thread for %s\n", o.urls[i]);
            failed = 1;
            break;
        }
    }
    for (int i = 0; i < started; i++) {
        pthread_join(jobs[i].thread, NULL); /* waits for the slowest page */
        failed |= jobs[i].failed;
    }
    if (jobs) {
        struct planets_span spans[o.nurls];
        for (int i = 0; i < started; i++)
            spans[i] = jobs[i].span;
        planets_timeline_write(o.timeline, o.fixed ? "threads-fixed" : "threads", spans, started);
    }
    free(jobs);
    return failed || pages_done != o.nurls; /* a lost update (BUG 3) fails the run */
}
