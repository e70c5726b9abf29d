/* An HTTP/1.1 client (Twisted's getPage and Agent): requests return Deferreds.
 *
 *     deferred *d = get_page(r, "http://example.org/");     // fires with the body (STR)
 *     deferred *d = http_request(r, "POST", url, &hdrs, body, len, &opts);
 *                                                // fires with an http_response (PTR)
 *
 * What it does (docs/http.md has the details):
 *   - http and https URLs (https verifies the server's certificate and host name, as
 *     tls_context_new_client does, trusting ca_file too); host names, IPv4 and
 *     bracketed IPv6 literals, ports, path and query. Anything else (another scheme,
 *     user:pass@, a space or control byte) fails with EINVAL before any connection.
 *   - Responses framed by Content-Length, chunked (trailers read and dropped) or the
 *     close of the connection; HEAD, 1xx, 204 and 304 have no body; Transfer-Encoding
 *     beats Content-Length; interim 1xx responses (100 Continue) are skipped.
 *   - Redirects (301, 302, 303, 307, 308) followed up to max_redirects (default 5);
 *     303, and 301/302 after a POST, become a GET without body (as browsers and
 *     Twisted do); https -> http is refused unless allow_insecure_redirect.
 *   - Connections are kept alive and reused per scheme, host and port (and, for https,
 *     ca_file and tls): at most
 *     max_per_host (default 4) at a time, further requests wait in a FIFO. A kept
 *     connection the server closed is replaced: an idempotent request that got no byte
 *     of answer on a reused connection is sent again once on a new one.
 *   - Limits: connect timeout (default 30 s), whole-request timeout (default 300 s,
 *     redirects included), header size (64 KiB: status line + headers, each line also
 *     at most that), body size (16 MiB, after decoding): past a limit the request fails
 *     and its connection is dropped. deferred_cancel() aborts the request and closes
 *     its connection (a queued request just leaves the queue).
 *   - decode=1 asks for gzip/deflate (Accept-Encoding) and decodes the body (zlib).
 *
 * Errors (deferred failures; int functions follow docs/errors.md):
 *   EINVAL        bad URL, method or header (message says which, nothing was sent)
 *   EPROTO        a malformed response (message names what: "bad status line", "header
 *                 line without colon", "bad chunk size", "connection closed after 12 of
 *                 100 body bytes", ...)
 *   EMSGSIZE      header or body larger than the limit
 *   ETIMEDOUT     connect or request timeout;  ECANCELED  cancelled
 *   ELOOP         more redirects than max_redirects;  EPERM  https -> http redirect
 *   EACCES        https: the server's certificate was refused (message: OpenSSL's why)
 *                 EPROTO for a failed TLS handshake, a TLS error or a truncated body
 *   ECONNREFUSED, ECONNRESET, EHOSTUNREACH, ...  the connection's own errors
 *   HTTP_ESTATUS + status   get_page only: a non-2xx answer (http_failure_status())
 *
 * Ownership:
 *   - Every function returning a Deferred returns one reference, owned by the caller.
 *   - http_request copies everything it is given (URL, headers, body, options): the
 *     caller may free them as soon as it returns.
 *   - The http_response a request's Deferred fires with is a DEFERRED_PTR whose free_fn
 *     is http_response_free: it belongs to the result. A callback that wants to keep it
 *     takes it (deferred_result_take) and frees it later with http_response_free().
 *   - get_page's body is a DEFERRED_STR (malloc'd, NUL-terminated, free_fn free).
 *   - http_headers are the user's: http_headers_free() frees what they hold.
 *   - Connections belong to the reactor's pool; reactor_free() closes them, and
 *     requests still pending then fail (ECANCELED).
 *
 * Threads: reactor thread only. */
#ifndef TWISTC_HTTP_H
#define TWISTC_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <twistc/deferred.h>
#include <twistc/reactor.h>
#include <twistc/twistc_base.h>

#ifdef __cplusplus
extern "C" {
#endif

/* get_page's failure code for a non-2xx answer is HTTP_ESTATUS + status (e.g. 21404). */
enum { HTTP_ESTATUS = 21000 };

/* The status a get_page failure carries (f or a failure it wraps), or 0. */
TWISTC_API int http_failure_status(const deferred_failure *f);

/* ---- Headers: an ordered list of (name, value), names compared case-insensitively -- */

struct http__hdr;

typedef struct http_headers {
    struct http__hdr *v; /* private: offsets into buf */
    size_t n, cap;
    char *buf;           /* private: the names and values, NUL-terminated */
    size_t len, bcap;
} http_headers;

#define HTTP_HEADERS_INIT {NULL, 0, 0, NULL, 0, 0}

TWISTC_API void http_headers_init(http_headers *h);
/* Appends a header (copies both). -EINVAL for a name that is not an HTTP token or a
 * value with CR, LF or NUL in it; -ENOMEM. */
TWISTC_API int http_headers_add(http_headers *h, const char *name, const char *value);
/* The same with lengths (value may hold any byte but CR, LF, NUL). */
TWISTC_API int http_headers_add_n(http_headers *h, const char *name, size_t nlen,
                                  const char *value, size_t vlen);
/* The first value of `name` (case-insensitive), or NULL. Valid until h changes. */
TWISTC_API const char *http_headers_get(const http_headers *h, const char *name);
TWISTC_API size_t http_headers_count(const http_headers *h);
TWISTC_API const char *http_headers_name(const http_headers *h, size_t i);
TWISTC_API const char *http_headers_value(const http_headers *h, size_t i);
/* Frees what h holds and leaves it empty (reusable). */
TWISTC_API void http_headers_free(http_headers *h);

/* ---- Responses ---------------------------------------------------------------------- */

typedef struct http_response {
    int status;           /* 200, 404, ... */
    int version_minor;    /* HTTP/1.x */
    char *reason;         /* "OK" (may be empty), NUL-terminated */
    http_headers headers; /* the final response's headers (trailers are not kept) */
    char *body;           /* body_len bytes and a NUL after them (never NULL) */
    size_t body_len;
    char *url;            /* the URL that answered (after redirects) */
    int redirects;        /* how many were followed */
} http_response;

/* Frees the response and everything in it. NULL ok. */
TWISTC_API void http_response_free(void *response);
/* The response inside a request's result, or NULL. Borrowed. */
TWISTC_API http_response *http_result_response(const deferred_result *r);

/* ---- Options ------------------------------------------------------------------------ */

struct tls_context;

typedef struct http_options {
    double connect_timeout;     /* seconds; <= 0: 30 */
    double timeout;             /* whole request, redirects included; 0: 300; < 0: none */
    size_t max_header_size;     /* 0: 64 KiB */
    size_t max_body_size;       /* 0: 16 MiB */
    int max_redirects;          /* 0: 5; < 0: do not follow redirects */
    int max_per_host;           /* connections per scheme/host/port; 0: 4 */
    int decode;                 /* 1: Accept-Encoding gzip, deflate, and decode */
    int allow_insecure_redirect; /* 1: an https page may redirect to http */
    const char *ca_file;        /* https: CAs (PEM) trusted besides the system's */
    struct tls_context *tls;    /* https: this client context instead (twistc/tls.h; the
                                 * request holds a reference while it runs) */
} http_options;

#define HTTP_DEFAULT_MAX_HEADER (64u * 1024u)
#define HTTP_DEFAULT_MAX_BODY (16u * 1024u * 1024u)
#define HTTP_DEFAULT_MAX_PER_HOST 4

/* ---- Requests ----------------------------------------------------------------------- */

/* Sends method (an HTTP token, e.g. "GET") to url with the extra headers h (may be NULL;
 * Host, Content-Length, Connection and Accept-Encoding are set by the client) and the
 * body (may be NULL, len 0; sent with a Content-Length when not NULL or when the method
 * is POST/PUT/PATCH). o may be NULL (defaults). Fires with an http_response for any
 * status (see ownership above). A bad argument gives an already-failed Deferred (EINVAL
 * with the reason); NULL+ENOMEM only when even that cannot be made. */
TWISTC_API deferred *http_request(reactor *r, const char *method, const char *url,
                                  const http_headers *h, const void *body, size_t len,
                                  const http_options *o);

/* Twisted's getPage: GET url, fires with the body (DEFERRED_STR, owned by the result);
 * a status outside 2xx fails with code HTTP_ESTATUS + status and the message
 * "HTTP 404 Not Found from http://...". */
TWISTC_API deferred *get_page(reactor *r, const char *url);
/* The same with options. */
TWISTC_API deferred *get_page_opts(reactor *r, const char *url, const http_options *o);

/* ---- The pool ----------------------------------------------------------------------- */

/* Closes the reactor's idle kept-alive connections (requests in flight go on). */
TWISTC_API void http_pool_close_idle(reactor *r);
/* Connections the reactor's pool holds: open (idle + busy + connecting), idle only. */
TWISTC_API size_t http_pool_connections(reactor *r, size_t *idle);

/* ---- URLs --------------------------------------------------------------------------- */

typedef struct http_url {
    int https;          /* 1 for https */
    char *host;         /* "example.org", "127.0.0.1", "::1" (without brackets) */
    int port;           /* explicit or the scheme's default */
    char *target;       /* path and query, at least "/"; the fragment is dropped */
} http_url;

/* Parses an absolute http(s) URL into u (its strings malloc'd: http_url_clear()).
 * -EINVAL with *why (static text, when why is not NULL) saying what is wrong; -ENOMEM. */
TWISTC_API int http_url_parse(http_url *u, const char *url, const char **why);
TWISTC_API void http_url_clear(http_url *u);
/* `ref` (a Location value: absolute, "//host/x", "/x", "x", "?q") resolved against
 * base, as a malloc'd absolute URL; NULL with errno EINVAL/ENOMEM. */
TWISTC_API char *http_url_resolve(const http_url *base, const char *ref);

#ifdef __cplusplus
}
#endif
#endif
