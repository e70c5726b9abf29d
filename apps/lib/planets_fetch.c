/* planets_fetch: a blocking HTTP/1.0 GET (planets_fetch.h). */
#include "planets_fetch.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define MAX_PAGE (16u << 20)
#define MAX_REDIRECTS 5

struct url {
    int tls;
    char host[256], port[8], path[2048];
};

/* scheme://host[:port][/path]; IPv6 literals in brackets; no user:pass@, no spaces. */
static int parse_url(const char *u, struct url *out, char *err, size_t n)
{
    const char *p;
    if (strncasecmp(u, "http://", 7) == 0)
        out->tls = 0, p = u + 7;
    else if (strncasecmp(u, "https://", 8) == 0)
        out->tls = 1, p = u + 8;
    else
        return snprintf(err, n, "not an http or https URL: %s", u), -1;
    for (const char *c = u; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f)
            return snprintf(err, n, "space or control character in URL: %s", u), -1;
    size_t alen = strcspn(p, "/?#");
    if (memchr(p, '@', alen))
        return snprintf(err, n, "user:password@ is not supported: %s", u), -1;
    const char *host = p, *hend, *colon;
    if (*p == '[') {
        hend = memchr(p, ']', alen);
        if (!hend)
            return snprintf(err, n, "unclosed [ in URL: %s", u), -1;
        host = p + 1;
        colon = hend + 1 < p + alen && hend[1] == ':' ? hend + 1 : NULL;
        if (!colon && hend + 1 != p + alen)
            return snprintf(err, n, "junk after ] in URL: %s", u), -1;
    } else {
        colon = memchr(p, ':', alen);
        hend = colon ? colon : p + alen;
    }
    size_t hlen = (size_t)(hend - host);
    if (hlen == 0 || hlen >= sizeof out->host)
        return snprintf(err, n, "bad host in URL: %s", u), -1;
    memcpy(out->host, host, hlen);
    out->host[hlen] = '\0';
    size_t plen = colon ? (size_t)(p + alen - colon - 1) : 0;
    if (colon && (plen == 0 || plen > 5 || strspn(colon + 1, "0123456789") < plen ||
                  atoi(colon + 1) < 1 || atoi(colon + 1) > 65535))
        return snprintf(err, n, "bad port in URL: %s", u), -1;
    snprintf(out->port, sizeof out->port, "%.*s", (int)plen, colon ? colon + 1 : "");
    if (!colon)
        strcpy(out->port, out->tls ? "443" : "80");
    const char *path = p + alen;
    size_t pathlen = strcspn(path, "#");
    if (pathlen + 2 > sizeof out->path)
        return snprintf(err, n, "URL too long: %.60s...", u), -1;
    snprintf(out->path, sizeof out->path, "%s%.*s", *path == '/' ? "" : "/", (int)pathlen, path);
    return 0;
}

static int dial(const struct url *u, char *err, size_t n)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai, *a;
    int rc = getaddrinfo(u->host, u->port, &hints, &ai);
    if (rc != 0)
        return snprintf(err, n, "cannot resolve %s: %s", u->host, gai_strerror(rc)), -1;
    int fd = -1, e = 0;
    for (a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0)
            continue;
        struct timeval tv = {30, 0}; /* Linux applies the send timeout to connect() too */
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (connect(fd, a->ai_addr, a->ai_addrlen) < 0) { /* blocks: the slide's point */
            e = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd < 0)
        snprintf(err, n, "cannot connect to %s port %s: %s", u->host, u->port, strerror(e));
    return fd;
}

/* The TLS side, all blocking: handshake with verification, then plain SSL_read/write. */
static SSL *tls_start(int fd, const struct url *u, const char *cafile, char *err, size_t n)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = NULL;
    if (!ctx)
        goto fail;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF); /* the length is checked below */
    if ((cafile ? SSL_CTX_load_verify_locations(ctx, cafile, NULL)
                : SSL_CTX_set_default_verify_paths(ctx)) != 1)
        goto fail;
    ssl = SSL_new(ctx);
    if (!ssl || SSL_set_fd(ssl, fd) != 1)
        goto fail;
    X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
    if (X509_VERIFY_PARAM_set1_ip_asc(vp, u->host) != 1) { /* not an address: a name */
        SSL_set_tlsext_host_name(ssl, u->host);
        if (SSL_set1_host(ssl, u->host) != 1)
            goto fail;
    }
    if (SSL_connect(ssl) != 1) {
        long v = SSL_get_verify_result(ssl);
        if (v != X509_V_OK)
            snprintf(err, n, "TLS: certificate of %s not trusted: %s", u->host,
                     X509_verify_cert_error_string(v));
        else
            snprintf(err, n, "TLS handshake with %s failed: %s", u->host,
                     ERR_reason_error_string(ERR_peek_last_error()) ? ERR_reason_error_string(ERR_peek_last_error()) : "connection closed");
        SSL_free(ssl);
        SSL_CTX_free(ctx);
        ERR_clear_error();
        return NULL;
    }
    SSL_CTX_free(ctx); /* the SSL keeps its own reference */
    return ssl;
fail:
    snprintf(err, n, "TLS set-up failed: %s", ERR_reason_error_string(ERR_peek_last_error()));
    ERR_clear_error();
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    return NULL;
}

/* Sends the request and reads until the server closes. Returns the bytes or NULL. */
static char *exchange(const struct url *u, const char *cafile, size_t *got, char *err, size_t n)
{
    int fd = dial(u, err, n);
    if (fd < 0)
        return NULL;
    SSL *ssl = u->tls ? tls_start(fd, u, cafile, err, n) : NULL;
    char *buf = NULL;
    if (u->tls && !ssl)
        goto out;
    char req[2400];
    int rl = snprintf(req, sizeof req,
                      "GET %s HTTP/1.0\r\nHost: %s%s%s%s%s\r\nUser-Agent: twistc-planets\r\n"
                      "Connection: close\r\n\r\n", u->path, strchr(u->host, ':') ? "[" : "",
                      u->host, strchr(u->host, ':') ? "]" : "", ":", u->port);
    ssize_t w = ssl ? SSL_write(ssl, req, rl) : send(fd, req, (size_t)rl, MSG_NOSIGNAL);
    if (w != rl) {
        snprintf(err, n, "cannot send the request to %s: %s", u->host, strerror(errno));
        goto out;
    }
    size_t cap = 16384, len = 0;
    buf = malloc(cap + 1);
    for (;;) {
        if (!buf) {
            snprintf(err, n, "out of memory");
            goto out;
        }
        ssize_t r = ssl ? SSL_read(ssl, buf + len, (int)(cap - len)) : recv(fd, buf + len, cap - len, 0);
        if (r < 0 && !ssl && errno == EINTR)
            continue;
        if (r < 0 || (ssl && r == 0 && SSL_get_error(ssl, 0) != SSL_ERROR_ZERO_RETURN)) {
            snprintf(err, n, "reading from %s: %s", u->host,
                     ssl || errno == 0 ? "connection broken" : strerror(errno));
            free(buf);
            buf = NULL;
            goto out;
        }
        if (r == 0)
            break;
        len += (size_t)r;
        if (len == cap) {
            if (cap >= MAX_PAGE) {
                snprintf(err, n, "page of %s larger than %u bytes", u->host, MAX_PAGE);
                free(buf);
                buf = NULL;
                goto out;
            }
            char *nb = realloc(buf, (cap *= 2) + 1);
            if (!nb)
                free(buf);
            buf = nb;
        }
    }
    buf[len] = '\0';
    *got = len;
out:
    if (ssl) {
        SSL_shutdown(ssl);
        SSL_free(ssl);
    }
    close(fd);
    return buf;
}

/* Value of header `name` in the header block [h, end), or NULL. */
static const char *header(const char *h, const char *end, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    for (const char *l = h; l < end;) {
        const char *eol = memchr(l, '\n', (size_t)(end - l));
        if (!eol)
            eol = end;
        if ((size_t)(eol - l) > nl && strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
            const char *v = l + nl + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            *vlen = (size_t)(ve - v);
            return v;
        }
        l = eol + 1;
    }
    return NULL;
}

int planets_fetch(const char *url, const char *cafile, char **body, size_t *len, char *err,
                  size_t errlen)
{
    char where[2400];
    struct url u;
    snprintf(where, sizeof where, "%s", url);
    for (int hops = 0;; hops++) {
        if (parse_url(where, &u, err, errlen) < 0)
            return -1;
        size_t got;
        char *resp = exchange(&u, cafile, &got, err, errlen);
        if (!resp)
            return -1;
        int status = 0, skip = 0;
        char *hdr_end = strstr(resp, "\r\n\r\n");
        size_t sep = 4;
        if (!hdr_end && (hdr_end = strstr(resp, "\n\n")))
            sep = 2;
        if (!hdr_end || sscanf(resp, "HTTP/1.%*[01] %3d%n", &status, &skip) != 1 || status < 100) {
            snprintf(err, errlen, "%s did not answer in HTTP", u.host);
            free(resp);
            return -1;
        }
        const char *hdrs = strchr(resp, '\n') + 1, *v;
        size_t vl;
        if (status >= 300 && status < 400 && (v = header(hdrs, hdr_end, "Location", &vl)) &&
            hops < MAX_REDIRECTS) {
            char loc[2048];
            snprintf(loc, sizeof loc, "%.*s", (int)vl, v);
            const char *scheme = u.tls ? "https" : "http";
            int v6 = strchr(u.host, ':') != NULL;
            if (strstr(loc, "://"))
                snprintf(where, sizeof where, "%s", loc);
            else if (loc[0] == '/' && loc[1] == '/')
                snprintf(where, sizeof where, "%s:%s", scheme, loc);
            else if (loc[0] == '/')
                snprintf(where, sizeof where, "%s://%s%s%s:%s%s", scheme, v6 ? "[" : "", u.host,
                         v6 ? "]" : "", u.port, loc);
            else /* relative to the current path's directory */
                snprintf(where, sizeof where, "%s://%s%s%s:%s%.*s%s", scheme, v6 ? "[" : "",
                         u.host, v6 ? "]" : "", u.port,
                         (int)(strrchr(u.path, '/') - u.path + 1), u.path, loc);
            free(resp);
            continue;
        }
        if (status < 200 || status > 299) {
            const char *reason = resp + skip, *re = strpbrk(reason, "\r\n");
            snprintf(err, errlen, "HTTP %d%.*s", status, (int)(re - reason), reason);
            free(resp);
            return -1;
        }
        char *b = hdr_end + sep;
        size_t blen = got - (size_t)(b - resp);
        if ((v = header(hdrs, hdr_end, "Content-Length", &vl)) && strtoull(v, NULL, 10) != blen) {
            snprintf(err, errlen, "%s sent %zu bytes of a %.*s-byte page", u.host, blen, (int)vl, v);
            free(resp);
            return -1;
        }
        memmove(resp, b, blen + 1);
        *body = resp;
        *len = blen;
        return 0;
    }
}
