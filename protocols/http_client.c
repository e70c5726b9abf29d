/* HTTP requests: http_request() and get_page() (Twisted's Agent.request and getPage).
 * A request checks and copies its arguments, then waits in the pool for a connection
 * (http_pool.c), which writes it and reads the answer (http_parser.c); here we follow
 * redirects and fire the Deferred. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>

#include <twistc/tls.h>
#include <twistc/transport.h>

#include "protocols/http_internal.h"

static void req_free(http__req *req)
{
    http_url_clear(&req->url);
    free(req->method);
    free(req->url_str);
    free(req->hdrs);
    free(req->body);
    free((char *)req->o.ca_file);
    if (req->o.tls)
        tls_context_unref(req->o.tls);
    free(req);
}

/* Fires the request's Deferred with res (taken) and frees the request. */
static void req_fire(http__req *req, deferred_result res)
{
    if (req->timer)
        reactor_timer_cancel(req->timer);
    deferred *d = req->d;
    req_free(req);
    deferred_callback(d, res);
    deferred_unref(d);
}

DEFERRED__PRINTF(3, 4)
static void req_fail(http__req *req, int err, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    req_fire(req, deferred_failure_result(deferred_failure_new(err, "%s", msg)));
}

static int is_redirect(int s)
{
    return s == 301 || s == 302 || s == 303 || s == 307 || s == 308;
}

/* Follows resp's Location; 1 if the request went on (or failed), 0 if not a redirect
 * to follow. */
static int follow(http__req *req, http_response *resp)
{
    if (req->o.max_redirects < 0 || !is_redirect(resp->status))
        return 0;
    const char *loc = http_headers_get(&resp->headers, "location");
    if (!loc)
        return 0;
    if (req->redirects >= req->o.max_redirects) {
        http_response_free(resp);
        req_fail(req, ELOOP, "%s %s: more than %d redirects", req->method, req->url_str,
                 req->o.max_redirects);
        return 1;
    }
    char *next = http_url_resolve(&req->url, loc);
    http_url nu;
    const char *why = "out of memory";
    int rc = next ? http_url_parse(&nu, next, &why) : -ENOMEM;
    if (rc < 0) {
        req_fail(req, -rc, "%s %s: bad redirect to \"%.100s\": %s", req->method, req->url_str,
                 loc, why);
        http_response_free(resp);
        free(next);
        return 1;
    }
    if (req->url.https && !nu.https && !req->o.allow_insecure_redirect) {
        req_fail(req, EPERM, "%s %s: redirect from https to http refused (%s)", req->method,
                 req->url_str, next);
        http_response_free(resp);
        http_url_clear(&nu);
        free(next);
        return 1;
    }
    int st = resp->status;
    http_response_free(resp);
    if ((st == 303 && !req->head) || ((st == 301 || st == 302) && strcmp(req->method, "POST") == 0)) {
        /* As browsers and Twisted's RedirectAgent: the next request is a GET. */
        char *get = strdup("GET");
        if (get) {
            free(req->method);
            req->method = get;
            free(req->body);
            req->body = NULL;
            req->body_len = 0;
            req->send_length = 0;
            req->idempotent = 1;
        }
    }
    http_url_clear(&req->url);
    req->url = nu;
    free(req->url_str);
    req->url_str = next;
    req->redirects++;
    req->retried = 0;
    rc = http__pool_submit(req, 0);
    if (rc < 0)
        req_fail(req, -rc, "%s %s: %s", req->method, req->url_str,
                 rc == -ECANCELED ? "the reactor is shutting down" : "out of memory");
    return 1;
}

void http__req_done(http__req *req, int err, const char *msg, http_response *resp)
{
    if (err) {
        req_fail(req, -err, "%s %s: %s", req->method, req->url_str, msg ? msg : "failed");
        return;
    }
    if (follow(req, resp))
        return;
    resp->redirects = req->redirects;
    resp->url = req->url_str;
    req->url_str = NULL;
    if (!req->get_page) {
        req_fire(req, deferred_ptr(resp, http_response_free));
        return;
    }
    if (resp->status < 200 || resp->status > 299) {
        req_fire(req, deferred_failure_result(deferred_failure_new(
                          HTTP_ESTATUS + resp->status, "HTTP %d %s from %s", resp->status,
                          resp->reason ? resp->reason : "", resp->url)));
        http_response_free(resp);
        return;
    }
    char *body = resp->body;
    resp->body = NULL;
    http_response_free(resp);
    req_fire(req, deferred_str(body, free));
}

/* ---- Writing the request ---------------------------------------------------------------- */

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}
#define PUTS(p, lit) put((p), (lit), sizeof(lit) - 1)

static char *put_uint(char *p, size_t v)
{
    char d[24];
    int n = 0;
    do
        d[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (n)
        *p++ = d[--n];
    return p;
}

/* The request head in one buffer (memcpy, no printf: this runs once per request). */
int http__req_write(http__req *req, transport *t)
{
    const http_url *u = &req->url;
    int v6 = strchr(u->host, ':') != NULL;
    int def = u->port == (u->https ? 443 : 80);
    size_t ml = strlen(req->method), tl = strlen(u->target), hl = strlen(u->host);
    char stackbuf[1024], *buf = stackbuf;
    size_t cap = ml + tl + hl + req->hdrs_len + 200;
    if (cap > sizeof stackbuf && !(buf = malloc(cap)))
        return -ENOMEM;
    char *p = put(buf, req->method, ml);
    *p++ = ' ';
    p = put(p, u->target, tl);
    p = PUTS(p, " HTTP/1.1\r\n");
    if (!req->user_host) {
        p = PUTS(p, "Host: ");
        if (v6)
            *p++ = '[';
        p = put(p, u->host, hl);
        if (v6)
            *p++ = ']';
        if (!def) {
            *p++ = ':';
            p = put_uint(p, (size_t)u->port);
        }
        p = PUTS(p, "\r\n");
    }
    if (!req->user_agent)
        p = PUTS(p, "User-Agent: twistc/" TWISTC_VERSION_STRING "\r\n");
    if (req->o.decode)
        p = PUTS(p, "Accept-Encoding: gzip, deflate\r\n");
    if (req->hdrs_len)
        p = put(p, req->hdrs, req->hdrs_len);
    if (req->send_length) {
        p = PUTS(p, "Content-Length: ");
        p = put_uint(p, req->body_len);
        p = PUTS(p, "\r\n");
    }
    p = PUTS(p, "\r\n");
    struct iovec iov[2] = {{buf, (size_t)(p - buf)}, {req->body, req->body_len}};
    int rc = transport_writev(t, iov, req->body_len ? 2 : 1);
    if (buf != stackbuf)
        free(buf);
    return rc;
}

/* ---- Starting a request ------------------------------------------------------------------ */

static void req_cancel(deferred *d, void *arg)
{
    (void)d;
    http__req *req = arg;
    http__pool_detach(req);
    req_fail(req, ECANCELED, "%s %s: cancelled", req->method, req->url_str);
}

static void req_timeout(reactor *r, void *data)
{
    (void)r;
    http__req *req = data;
    req->timer = NULL;
    http__pool_detach(req);
    req_fail(req, ETIMEDOUT, "%s %s: no complete answer after %g s", req->method, req->url_str,
             req->o.timeout);
}

static deferred *fail_now(int err, const char *fmt, ...) DEFERRED__PRINTF(2, 3);
static deferred *fail_now(int err, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return deferred_fail(deferred_failure_new(err, "%s", msg));
}

/* The user's headers as "Name: value\r\n" lines; refuses the ones the client owns. */
static int serialise_headers(http__req *req, const http_headers *h, const char **why)
{
    size_t need = 0;
    for (size_t i = 0; i < h->n; i++)
        need += h->v[i].nlen + h->v[i].vlen + 4;
    if (!need)
        return 0;
    req->hdrs = malloc(need);
    if (!req->hdrs)
        return -ENOMEM;
    char *p = req->hdrs;
    for (size_t i = 0; i < h->n; i++) {
        const char *name = h->buf + h->v[i].name, *val = h->buf + h->v[i].value;
        if (strcasecmp(name, "content-length") == 0 || strcasecmp(name, "transfer-encoding") == 0) {
            *why = "Content-Length and Transfer-Encoding are set by the client";
            return -EINVAL;
        }
        if (strcasecmp(name, "host") == 0)
            req->user_host = 1;
        if (strcasecmp(name, "user-agent") == 0)
            req->user_agent = 1;
        memcpy(p, name, h->v[i].nlen);
        p += h->v[i].nlen;
        *p++ = ':';
        *p++ = ' ';
        memcpy(p, val, h->v[i].vlen);
        p += h->v[i].vlen;
        *p++ = '\r';
        *p++ = '\n';
    }
    req->hdrs_len = (size_t)(p - req->hdrs);
    return 0;
}

static void fill_options(http_options *o, const http_options *in)
{
    if (in)
        *o = *in;
    else
        memset(o, 0, sizeof *o);
    if (o->connect_timeout <= 0)
        o->connect_timeout = 30;
    if (o->timeout == 0)
        o->timeout = 300;
    if (!o->max_header_size)
        o->max_header_size = HTTP_DEFAULT_MAX_HEADER;
    if (!o->max_body_size)
        o->max_body_size = HTTP_DEFAULT_MAX_BODY;
    if (o->max_redirects == 0)
        o->max_redirects = 5;
    if (o->max_per_host <= 0)
        o->max_per_host = HTTP_DEFAULT_MAX_PER_HOST;
    o->ca_file = NULL; /* copied by the caller */
    if (o->tls)
        tls_context_ref(o->tls);
}

static deferred *start(reactor *r, const char *method, const char *url, const http_headers *h,
                       const void *body, size_t len, const http_options *o, int get_page)
{
    if (!r || !method || !url || (!body && len))
        return fail_now(EINVAL, "http_request: NULL reactor, method or URL");
    size_t ml = strlen(method);
    for (size_t i = 0; i < ml; i++)
        if (!http__is_tchar((unsigned char)method[i]))
            ml = 0;
    if (ml == 0 || ml > 32 || strcmp(method, "CONNECT") == 0)
        return fail_now(EINVAL, "bad HTTP method \"%.40s\"", method);
    http__req *req = calloc(1, sizeof *req);
    if (!req)
        return fail_now(ENOMEM, "out of memory");
    req->r = r;
    const char *why = "out of memory";
    int rc = http_url_parse(&req->url, url, &why);
    if (rc < 0) {
        req_free(req);
        return fail_now(-rc, "bad URL \"%.200s\": %s", url, why);
    }
    fill_options(&req->o, o);
    req->method = strdup(method);
    req->url_str = strdup(url);
    if (o && o->ca_file)
        req->o.ca_file = strdup(o->ca_file);
    if (!req->method || !req->url_str || (o && o->ca_file && !req->o.ca_file)) {
        req_free(req);
        return fail_now(ENOMEM, "out of memory");
    }
    if (h && (rc = serialise_headers(req, h, &why)) < 0) {
        req_free(req);
        return fail_now(-rc, "%s %s: bad headers: %s", method, url, why);
    }
    if (len) {
        req->body = malloc(len);
        if (!req->body) {
            req_free(req);
            return fail_now(ENOMEM, "out of memory");
        }
        memcpy(req->body, body, len);
        req->body_len = len;
    }
    req->head = strcmp(method, "HEAD") == 0;
    req->idempotent = strcmp(method, "GET") == 0 || req->head || strcmp(method, "PUT") == 0 ||
                      strcmp(method, "DELETE") == 0 || strcmp(method, "OPTIONS") == 0 ||
                      strcmp(method, "TRACE") == 0;
    req->send_length = body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
                       strcmp(method, "PATCH") == 0;
    req->get_page = (uint8_t)get_page;
    req->d = deferred_new_cancellable(req_cancel, req);
    if (!req->d) {
        req_free(req);
        return NULL;
    }
    deferred *ret = deferred_ref(req->d);
    if (req->o.timeout > 0) {
        req->timer = reactor_call_later(r, req->o.timeout, req_timeout, req);
        if (!req->timer) {
            req_fail(req, ENOMEM, "out of memory");
            return ret;
        }
    }
    rc = http__pool_submit(req, 0);
    if (rc < 0)
        req_fail(req, -rc, "%s %s: %s", method, url,
                 rc == -ECANCELED ? "the reactor is shutting down" : "out of memory");
    return ret;
}

deferred *http_request(reactor *r, const char *method, const char *url, const http_headers *h,
                       const void *body, size_t len, const http_options *o)
{
    return start(r, method, url, h, body, len, o, 0);
}

deferred *get_page(reactor *r, const char *url)
{
    return start(r, "GET", url, NULL, NULL, 0, NULL, 1);
}

deferred *get_page_opts(reactor *r, const char *url, const http_options *o)
{
    return start(r, "GET", url, NULL, NULL, 0, o, 1);
}
