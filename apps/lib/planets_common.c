#define _GNU_SOURCE /* getopt_long */
/* The planets programs' shared part (planets_common.h). */
#include "planets_common.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libxml/HTMLparser.h>
#include <libxml/xpath.h>

const char *const planets_default_urls[4] = {
    "http://planet.debian.net",
    "http://planetzope.org",
    "http://planet.gnome.org",
    "http://gstreamer.freedesktop.org/planet/",
};

const char *const planets_smtp_mode_names[3] = {"blocking", "thread", "async"};

static void usage(const char *prog, unsigned accept, const char *why)
{
    if (why)
        fprintf(stderr, "%s: %s\n", prog, why);
    fprintf(stderr, "usage: %s%s%s [--xpath EXPR] [--cafile FILE] [--timeline FILE]%s [URL...]\n",
            prog, accept & PLANETS_OPT_FIXED ? " [--fixed]" : "",
            accept & PLANETS_OPT_CORO ? " [--coro]" : "",
            accept & PLANETS_OPT_MAIL ? "\n       [--mail-to ADDR [--mail-from ADDR] [--smtp HOST[:PORT]]"
                                        " [--smtp-mode blocking|thread|async]] [--latency FILE]"
                                      : "");
    exit(why ? 2 : 0);
}

/* HOST, HOST:PORT, [V6], [V6]:PORT into o->smtp_host / o->smtp_port. */
static int parse_host_port(const char *s, struct planets_opts *o)
{
    const char *host = s, *end, *colon;
    if (*s == '[') {
        host = s + 1;
        end = strchr(s, ']');
        if (!end)
            return -1;
        colon = end[1] == ':' ? end + 1 : NULL;
        if (!colon && end[1])
            return -1;
    } else {
        colon = strrchr(s, ':');
        if (colon && strchr(s, ':') != colon)
            return -1; /* a bare IPv6 address: ambiguous, ask for brackets */
        end = colon ? colon : s + strlen(s);
    }
    size_t n = (size_t)(end - host);
    if (n == 0 || n >= sizeof o->smtp_host)
        return -1;
    memcpy(o->smtp_host, host, n);
    o->smtp_host[n] = '\0';
    if (colon) {
        char *e;
        long port = strtol(colon + 1, &e, 10);
        if (e == colon + 1 || *e || port < 1 || port > 65535)
            return -1;
        o->smtp_port = (int)port;
    }
    return 0;
}

void planets_parse_args(int argc, char **argv, unsigned accept, struct planets_opts *o)
{
    static const struct option opts[] = {
        {"xpath", required_argument, NULL, 'x'},  {"cafile", required_argument, NULL, 'c'},
        {"timeline", required_argument, NULL, 't'}, {"fixed", no_argument, NULL, 'f'},
        {"coro", no_argument, NULL, 'C'},         {"help", no_argument, NULL, 'h'},
        {"mail-to", required_argument, NULL, 'M'}, {"mail-from", required_argument, NULL, 'F'},
        {"smtp", required_argument, NULL, 'S'},   {"smtp-mode", required_argument, NULL, 'm'},
        {"latency", required_argument, NULL, 'L'},
        {NULL, 0, NULL, 0},
    };
    const char *prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    memset(o, 0, sizeof *o);
    o->xpath = "//h3";
    o->mail_from = "notifier@localhost";
    strcpy(o->smtp_host, "localhost");
    o->smtp_port = 25;
    o->smtp_mode = PLANETS_SMTP_ASYNC;
    const char *smtp = NULL;
    planets_now(); /* time 0 is now, set before any thread runs */
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'x': o->xpath = optarg; break;
        case 'c': o->cafile = optarg; break;
        case 't': o->timeline = optarg; break;
        case 'f': if (!(accept & PLANETS_OPT_FIXED)) usage(prog, accept, "unknown option --fixed");
                  o->fixed = 1; break;
        case 'C': if (!(accept & PLANETS_OPT_CORO)) usage(prog, accept, "unknown option --coro");
                  o->coro = 1; break;
        case 'h': usage(prog, accept, NULL); break;
        case 'M': case 'F': case 'S': case 'm': case 'L':
            if (!(accept & PLANETS_OPT_MAIL)) {
                char why[80];
                snprintf(why, sizeof why, "unknown option %s", argv[optind - 1]);
                usage(prog, accept, why);
            }
            if (ch == 'M') o->mail_to = optarg;
            if (ch == 'F') o->mail_from = optarg;
            if (ch == 'S') smtp = optarg;
            if (ch == 'L') o->latency = optarg;
            if (ch == 'm') {
                int i = 0;
                while (i < 3 && strcmp(optarg, planets_smtp_mode_names[i]) != 0)
                    i++;
                if (i == 3)
                    usage(prog, accept, "--smtp-mode: expected blocking, thread or async");
                o->smtp_mode = (enum planets_smtp_mode)i;
            }
            break;
        default: usage(prog, accept, optopt ? "an option needs a value" : "unknown option");
        }
    }
    if (smtp && parse_host_port(smtp, o) < 0)
        usage(prog, accept, "--smtp: expected HOST, HOST:PORT or [IPv6]:PORT");
    if (o->mail_to && (strpbrk(o->mail_to, "<>\r\n ") || !*o->mail_to))
        usage(prog, accept, "--mail-to: not a mail address");
    if (strpbrk(o->mail_from, "<>\r\n ") || !*o->mail_from)
        usage(prog, accept, "--mail-from: not a mail address");
    xmlInitParser(); /* once, before any thread parses (libxml2's rule) */
    xmlXPathCompExprPtr comp = xmlXPathCompile((const xmlChar *)o->xpath);
    if (!comp) {
        char why[300];
        snprintf(why, sizeof why, "not an XPath expression: %.200s", o->xpath);
        usage(prog, accept, why);
    }
    xmlXPathFreeCompExpr(comp);
    o->urls = optind < argc ? (const char *const *)argv + optind : planets_default_urls;
    o->nurls = optind < argc ? argc - optind : 4;
}

/* Copies s with every run of white space turned into one space, trimmed. */
static char *collapse(const char *s)
{
    char *out = malloc(strlen(s) + 1), *w = out;
    if (!out)
        return NULL;
    for (; *s; s++) {
        int space = *s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\f';
        if (!space)
            *w++ = *s;
        else if (w > out && w[-1] != ' ')
            *w++ = ' ';
    }
    if (w > out && w[-1] == ' ')
        w--;
    *w = '\0';
    return out;
}

int planets_dig(const char *html, size_t len, const char *xpath, char **out)
{
    *out = NULL;
    /* NONET: never fetch a DTD; RECOVER: real pages are tag soup, lxml parses them too. */
    int flags = HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_NONET;
    htmlDocPtr doc = htmlReadMemory(html, (int)(len > 0x7fffffff ? 0x7fffffff : len), NULL,
                                    NULL, flags);
    if (!doc)
        return 0; /* nothing parseable (e.g. an empty body): nothing matches */
    int rc = -ENOMEM;
    xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
    xmlXPathObjectPtr res = ctx ? xmlXPathEvalExpression((const xmlChar *)xpath, ctx) : NULL;
    if (ctx && !res) {
        rc = 0;
    } else if (res) {
        xmlChar *text = NULL;
        rc = 0;
        if (res->type == XPATH_NODESET) {
            if (res->nodesetval && res->nodesetval->nodeNr > 0)
                text = xmlNodeGetContent(res->nodesetval->nodeTab[0]);
            if (!text && res->nodesetval && res->nodesetval->nodeNr > 0)
                text = xmlStrdup((const xmlChar *)""); /* a match with no text */
        } else {
            text = xmlXPathCastToString(res); /* string(//h3), count(//h3): the value */
        }
        if (text) {
            *out = collapse((const char *)text);
            rc = *out ? 1 : -ENOMEM;
            xmlFree(text);
        }
    }
    xmlXPathFreeObject(res);
    xmlXPathFreeContext(ctx);
    xmlFreeDoc(doc);
    return rc;
}

int planets_title_line(const char *url, const char *html, size_t len, const char *xpath,
                       char *buf, size_t n)
{
    char *title;
    int rc = planets_dig(html, len, xpath, &title);
    if (rc == 1)
        snprintf(buf, n, "first article on %s: %s", url, title);
    else if (rc == 0 && strcmp(xpath, "//h3") == 0)
        snprintf(buf, n, "no h3 on %s", url);
    else if (rc == 0)
        snprintf(buf, n, "nothing matches %s on %s", xpath, url);
    else
        snprintf(buf, n, "out of memory reading %s", url);
    free(title);
    return rc;
}

double planets_now(void)
{
    static struct timespec t0; /* set by main's first call, before any thread */
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (t0.tv_sec == 0 && t0.tv_nsec == 0)
        t0 = now;
    return (double)(now.tv_sec - t0.tv_sec) + (now.tv_nsec - t0.tv_nsec) / 1e9;
}

int planets_timeline_write(const char *path, const char *program,
                           const struct planets_span *spans, int n)
{
    if (!path || strcmp(path, "-") == 0)
        return 0;
    FILE *f = fopen(path, "a");
    if (!f)
        return -errno;
    for (int i = 0; i < n; i++)
        fprintf(f, "%s %s %s %.6f %.6f %.6f\n", program, spans[i].worker, spans[i].url,
                spans[i].asked, spans[i].got, spans[i].printed);
    return fclose(f) == 0 ? 0 : -errno;
}
