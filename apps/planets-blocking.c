/* planets-blocking: the talk's first slide, the blocking way.
 *
 *     for planet in planets:
 *         first_title(planet)          # urlopen(planet): wait... then the next one
 *
 * One page after the other; while a page is on its way the program does nothing but
 * wait in recv(). Four pages that take one second each take four seconds.
 * docs/planets.md compares it with the threads and the reactor.
 *
 *   planets-blocking [--xpath EXPR] [--cafile FILE] [--timeline FILE] [URL...] */
#include <stdio.h>
#include <stdlib.h>

#include "lib/planets_common.h"
#include "lib/planets_fetch.h"

int main(int argc, char **argv)
{
    struct planets_opts o;
    planets_parse_args(argc, argv, 0, &o);
    struct planets_span spans[o.nurls];
    int failed = 0;

    for (int i = 0; i < o.nurls; i++) {
        const char *url = o.urls[i];
        char *html, line[1024], err[512];
        size_t len;
        spans[i] = (struct planets_span){.url = url, .worker = "main", .asked = planets_now()};
        if (planets_fetch(url, o.cafile, &html, &len, err, sizeof err) == 0) { /* blocks */
            spans[i].got = planets_now();
            planets_title_line(url, html, len, o.xpath, line, sizeof line);
            printf("%s\n", line);
            free(html);
        } else {
            spans[i].got = planets_now();
            printf("cannot fetch %s: %s\n", url, err);
            failed = 1;
        }
        fflush(stdout);
        spans[i].printed = planets_now();
    }
    planets_timeline_write(o.timeline, "blocking", spans, o.nurls);
    return failed;
}
