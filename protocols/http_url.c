/* URL parsing for the HTTP client: absolute http(s) URLs only, refused early and with a
 * reason, so that a bad URL never opens a connection. */
#include <twistc/http.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static char *dupn(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

static int fail(const char **why, const char *msg)
{
    if (why)
        *why = msg;
    return -EINVAL;
}

void http_url_clear(http_url *u)
{
    if (!u)
        return;
    free(u->host);
    free(u->target);
    u->host = u->target = NULL;
}

int http_url_parse(http_url *u, const char *url, const char **why)
{
    if (!u || !url)
        return fail(why, "no URL");
    memset(u, 0, sizeof *u);
    for (const unsigned char *p = (const unsigned char *)url; *p; p++) {
        if (*p <= 0x20 || *p == 0x7f)
            return fail(why, "spaces and control characters are not allowed in a URL");
        if (*p >= 0x80)
            return fail(why, "non-ASCII byte in URL (percent-encode it)");
    }
    const char *s;
    if (strncasecmp(url, "http://", 7) == 0) {
        s = url + 7;
    } else if (strncasecmp(url, "https://", 8) == 0) {
        s = url + 8;
        u->https = 1;
    } else {
        return fail(why, strstr(url, "://") ? "unsupported URL scheme (only http and https)"
                                             : "not an absolute http(s) URL");
    }
    size_t alen = strcspn(s, "/?#");
    const char *aend = s + alen;
    if (memchr(s, '@', alen))
        return fail(why, "user:password@ in URLs is not supported");
    const char *h = s, *hend, *pstart = NULL;
    if (*s == '[') {
        const char *rb = memchr(s, ']', alen);
        if (!rb)
            return fail(why, "unterminated [IPv6] host");
        h = s + 1;
        hend = rb;
        char tmp[INET6_ADDRSTRLEN + 1];
        struct in6_addr a6;
        size_t hl = (size_t)(hend - h);
        if (hl == 0 || hl >= sizeof tmp)
            return fail(why, "bad IPv6 address");
        memcpy(tmp, h, hl);
        tmp[hl] = 0;
        if (inet_pton(AF_INET6, tmp, &a6) != 1)
            return fail(why, "bad IPv6 address");
        if (rb + 1 < aend) {
            if (rb[1] != ':')
                return fail(why, "junk after ]");
            pstart = rb + 2;
        }
    } else {
        const char *colon = memchr(s, ':', alen);
        hend = colon ? colon : aend;
        if (colon)
            pstart = colon + 1;
        if (hend == h)
            return fail(why, "no host in URL");
        for (const char *p = h; p < hend; p++) {
            char c = *p;
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.' || c == '_'))
                return fail(why, "bad character in host name");
        }
    }
    u->port = u->https ? 443 : 80;
    if (pstart && pstart < aend) {
        long port = 0;
        for (const char *p = pstart; p < aend; p++) {
            if (*p < '0' || *p > '9')
                return fail(why, "bad port");
            port = port * 10 + (*p - '0');
            if (port > 65535)
                return fail(why, "port out of range");
        }
        if (port == 0)
            return fail(why, "port out of range");
        u->port = (int)port;
    }
    size_t tlen = strcspn(aend, "#");
    int slash = *aend != '/';
    u->host = dupn(h, (size_t)(hend - h));
    u->target = malloc(tlen + 2);
    if (!u->host || !u->target) {
        http_url_clear(u);
        return -ENOMEM;
    }
    for (char *p = u->host; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    if (slash)
        u->target[0] = '/';
    memcpy(u->target + slash, aend, tlen);
    u->target[tlen + slash] = 0;
    return 0;
}

/* scheme://host[:port] of base into buf; returns its length. */
static int origin(const http_url *b, char *buf, size_t n)
{
    int v6 = strchr(b->host, ':') != NULL;
    int def = b->port == (b->https ? 443 : 80);
    if (def)
        return snprintf(buf, n, "%s://%s%s%s", b->https ? "https" : "http", v6 ? "[" : "",
                        b->host, v6 ? "]" : "");
    return snprintf(buf, n, "%s://%s%s%s:%d", b->https ? "https" : "http", v6 ? "[" : "",
                    b->host, v6 ? "]" : "", b->port);
}

/* RFC 3986 5.2.4 on a path that starts with '/' (no query), in place: the output
 * never outruns the input, so one pass with memmove does. */
static void remove_dots(char *path)
{
    size_t olen = 0;
    const char *in = path;
    while (*in) {
        const char *seg = in + 1; /* in is at a '/' */
        size_t sl = strcspn(seg, "/");
        int last = seg[sl] == 0;
        if (sl == 1 && seg[0] == '.') {
            in = seg + sl;
            if (last)
                path[olen++] = '/';
            continue;
        }
        if (sl == 2 && seg[0] == '.' && seg[1] == '.') {
            in = seg + sl;
            while (olen > 0 && path[--olen] != '/')
                ;
            if (last)
                path[olen++] = '/';
            continue;
        }
        memmove(path + olen, in, sl + 1);
        olen += sl + 1;
        in = seg + sl;
    }
    if (!olen)
        path[olen++] = '/';
    path[olen] = 0;
}

char *http_url_resolve(const http_url *base, const char *ref)
{
    if (!base || !base->host || !ref) {
        errno = EINVAL;
        return NULL;
    }
    /* An absolute reference: a scheme, then ':'. */
    const char *p = ref;
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')) {
        while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
               *p == '+' || *p == '-' || *p == '.')
            p++;
        if (*p == ':')
            return dupn(ref, strlen(ref));
    }
    char org[300];
    int olen = origin(base, org, sizeof org);
    if (olen < 0 || (size_t)olen >= sizeof org) {
        errno = EINVAL;
        return NULL;
    }
    size_t rlen = strlen(ref), tlen = strlen(base->target);
    size_t cap = (size_t)olen + tlen + rlen + 8;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    if (ref[0] == '/' && ref[1] == '/') {
        snprintf(out, cap, "%s:%s", base->https ? "https" : "http", ref);
        return out;
    }
    const char *frag = strchr(ref, '#');
    size_t rl = frag ? (size_t)(frag - ref) : rlen;
    size_t qpos = strcspn(base->target, "?");
    char *path = malloc(tlen + rl + 3);
    if (!path) {
        free(out);
        return NULL;
    }
    if (rl == 0) {
        memcpy(path, base->target, tlen + 1);
    } else if (ref[0] == '?') {
        memcpy(path, base->target, qpos);
        memcpy(path + qpos, ref, rl);
        path[qpos + rl] = 0;
    } else {
        size_t dir = 0;
        if (ref[0] != '/') {
            for (size_t i = 0; i < qpos; i++)
                if (base->target[i] == '/')
                    dir = i + 1;
            memcpy(path, base->target, dir);
        }
        memcpy(path + dir, ref, rl);
        path[dir + rl] = 0;
        size_t q = strcspn(path, "?");
        char save = path[q];
        char *rest = save ? strdup(path + q) : NULL;
        if (save && !rest) {
            free(path);
            free(out);
            return NULL;
        }
        path[q] = 0;
        remove_dots(path);
        if (rest) {
            strcat(path, rest);
            free(rest);
        }
    }
    snprintf(out, cap, "%s%s", org, path);
    free(path);
    return out;
}
