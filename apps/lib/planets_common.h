/* What the four planets programs share (apps/planets*.c): the talk's planet list, the
 * command line, the `dig` of the slides (an XPath over the HTML, libxml2), the line each
 * page prints, and the --timeline file that docs/planets.md draws.
 *
 * Only the apps link libxml2 (through this file); libtwistc does not.
 */
#ifndef PLANETS_COMMON_H
#define PLANETS_COMMON_H

#include <stddef.h>
#include <stdio.h>

/* The slide's four planets, fetched when no URL is given. */
extern const char *const planets_default_urls[4];

enum { PLANETS_OPT_FIXED = 1u << 0, PLANETS_OPT_CORO = 1u << 1, PLANETS_OPT_MAIL = 1u << 2 };

/* How `planets --mail-to` sends each title (docs/mail-lesson.md). */
enum planets_smtp_mode {
    PLANETS_SMTP_BLOCKING, /* blocking_smtp_send inside the callback: the slide's code */
    PLANETS_SMTP_THREAD,   /* the same through defer_to_thread */
    PLANETS_SMTP_ASYNC,    /* smtp_send, the asynchronous client */
};
extern const char *const planets_smtp_mode_names[3]; /* "blocking", "thread", "async" */

struct planets_opts {
    const char *xpath;    /* --xpath EXPR, default "//h3" */
    const char *cafile;   /* --cafile FILE: CA certificates for https, default the system's */
    const char *timeline; /* --timeline FILE: write when each page was asked for and got */
    int fixed, coro;      /* --fixed (planets-threads), --coro (planets) */
    /* planets only (PLANETS_OPT_MAIL): mail each title as it arrives */
    const char *mail_to;   /* --mail-to ADDR: NULL, no mail */
    const char *mail_from; /* --mail-from ADDR, default "notifier@localhost" */
    char smtp_host[256];   /* --smtp HOST[:PORT], default localhost:25 */
    int smtp_port;
    enum planets_smtp_mode smtp_mode; /* --smtp-mode blocking|thread|async, default async */
    const char *latency;   /* --latency FILE: run the probe (planets_probe.h), append its
                            * series there */
    const char *const *urls;
    int nurls;
};

/* Parses argv (options in `accept` plus the common ones). A bad option or XPath
 * expression prints a usage line and exits 2. Calls xmlInitParser(): call it from main
 * before any thread starts. */
void planets_parse_args(int argc, char **argv, unsigned accept, struct planets_opts *o);

/* The slide's dig(html, xpath): parses `html` with libxml2's forgiving HTML parser and
 * evaluates the XPath. The first matching node's text (all its descendants' text, white
 * space collapsed; a string or number result as is) goes to *out (malloc'd, free it).
 * Returns 1 found, 0 nothing matched (*out NULL), -ENOMEM. Thread-safe (each call has its
 * own document and context). */
int planets_dig(const char *html, size_t len, const char *xpath, char **out);

/* The line a page prints, into buf: "first article on URL: TITLE", or "no h3 on URL"
 * (for another --xpath: "nothing matches EXPR on URL"). Returns 1 when a title was found,
 * 0 otherwise, -ENOMEM. */
int planets_title_line(const char *url, const char *html, size_t len, const char *xpath,
                       char *buf, size_t n);

/* Monotonic seconds since the program started (the first call). */
double planets_now(void);

/* One page's timeline: who fetched it, when it was asked for, when the page was there,
 * when its line was printed (planets_now() seconds). */
struct planets_span {
    const char *url;
    char worker[32]; /* "main", "thread-2", "reactor": no spaces */
    double asked, got, printed;
    double mail_start, mail_end; /* planets --mail-to: title handed to SMTP, mail accepted
                                  * or failed (0: no mail) */
};
/* Writes the spans to path ("-" or NULL: nothing), one line each:
 *     PROGRAM WORKER URL ASKED GOT PRINTED
 * Returns 0 or -errno. */
int planets_timeline_write(const char *path, const char *program,
                           const struct planets_span *spans, int n);

#endif
