/* The HTTP client against real, independent servers on loopback: Python's http.server
 * (t/http_peer.py: keep-alive, chunked, redirects, slow and hand-written broken
 * answers; once more over TLS with a throwaway CA) and Twisted's web server
 * (t/http_twisted_peer.py). One peer process per
 * test case, started by an unchecked fixture; every test runs on every backend. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <twistc/deferred.h>
#include <twistc/http.h>
#include <twistc/reactor.h>

#include "helpers.h"
#include "peer_helpers.h"
#include "tls_helpers.h"

#define PY "/usr/bin/python3"

static struct peer py, tw, pys;
static struct th_certs certs;
static int have_certs;

static void py_up(void)
{
    const char *argv[] = {PY, "t/http_peer.py", NULL};
    if (peer_start(&py, argv) < 0)
        fprintf(stderr, "http tests: python peer: %s\n", py.skip);
}
static void py_down(void)
{
    peer_stop(&py);
}
/* The same http.server over TLS, with a certificate from a throwaway CA. */
static void pys_up(void)
{
    have_certs = th_certs_make(&certs) == 0;
    if (!have_certs) {
        snprintf(pys.skip, sizeof pys.skip, "could not make test certificates");
        return;
    }
    const char *argv[] = {PY, "t/http_peer.py", "--tls", certs.cert, certs.key, NULL};
    if (peer_start(&pys, argv) < 0)
        fprintf(stderr, "http tests: python https peer: %s\n", pys.skip);
}
static void pys_down(void)
{
    peer_stop(&pys);
    if (have_certs)
        th_certs_remove(&certs);
}
static void tw_up(void)
{
    const char *argv[] = {PY, "t/http_twisted_peer.py", NULL};
    if (peer_start(&tw, argv) < 0)
        fprintf(stderr, "http tests: twisted peer: %s\n", tw.skip);
}
static void tw_down(void)
{
    peer_stop(&tw);
}

static void wait_res(reactor *r, struct peer_res *s)
{
    ck_assert_msg(th_iterate_until(r, &s->done, 20), "request never finished");
}

static char *url(const char *path)
{
    static char buf[8][256];
    static int i;
    char *b = buf[i++ % 8];
    snprintf(b, sizeof buf[0], "http://127.0.0.1:%d%s", py.port, path);
    return b;
}

/* Runs one request to completion; returns the response (owned by s->r). */
static http_response *fetch(reactor *r, struct peer_res *s, const char *method, const char *u,
                            const http_options *o)
{
    peer_watch(http_request(r, method, u, NULL, NULL, 0, o), s);
    wait_res(r, s);
    if (deferred_result_is_failure(&s->r)) {
        deferred_failure_print(s->r.u.failure, stderr);
        ck_abort_msg("%s %s failed", method, u);
    }
    http_response *resp = http_result_response(&s->r);
    ck_assert_ptr_nonnull(resp);
    return resp;
}

/* Runs one request that must fail; returns the failure (owned by s->r). */
static deferred_failure *fetch_fail(reactor *r, struct peer_res *s, const char *method, const char *u,
                                    const http_options *o)
{
    peer_watch(http_request(r, method, u, NULL, NULL, 0, o), s);
    wait_res(r, s);
    ck_assert_msg(deferred_result_is_failure(&s->r), "%s %s succeeded", method, u);
    return s->r.u.failure;
}

static void done_with(struct peer_res *s)
{
    deferred_result_clear(&s->r);
}

/* ---- Python's http.server ------------------------------------------------------------ */

START_TEST(test_get_page)
{
    PEER_NEED(py);
    reactor *r = th_reactor(_i);
    struct peer_res s;
    peer_watch(get_page(r, url("/hello")), &s);
    wait_res(r, &s);
    ck_assert_int_eq(s.r.kind, DEFERRED_STR);
    ck_assert_str_eq(s.r.u.s, "hello world");
    done_with(&s);
    reactor_free(r);
}
END_TEST

START_TEST(test_get_page_404)
{
    PEER_NEED(py);
    reactor *r = th_reactor(_i);
    struct peer_res s;
    peer_watch(get_page(r, url("/status/404")), &s);
    wait_res(r, &s);
    ck_assert(deferred_result_is_failure(&s.r));
    ck_assert_int_eq(s.r.u.failure->code, HTTP_ESTATUS + 404);
    ck_assert_int_eq(http_failure_status(s.r.u.failure), 404);
    ck_assert_ptr_nonnull(strstr(s.r.u.failure->message, "HTTP 404"));
    done_with(&s);
    /* http_request gives every status as a response. */
    http_response *resp = fetch(r, &s, "GET", url("/status/500"), NULL);
    ck_assert_int_eq(resp->status, 500);
    ck_assert_str_eq(resp->body, "status body 500");
    done_with(&s);
    reactor_free(r);
}
END_TEST

START_TEST(test_request_headers_and_body)
{
    PEER_NEED(py);
    reactor *r = th_reactor(_i);
    http_headers h = HTTP_HEADERS_INIT;
    ck_assert_int_eq(http_headers_add(&h, "X-Custom", "yes"), 0);
    ck_assert_int_eq(http_headers_add(&h, "Bad Name", "x"), -EINVAL);
    ck_assert_int_eq(http_headers_add(&h, "X-Evil", "a\r\nInjected: 1"), -EINVAL);
    struct peer_res s;
    peer_watch(http_request(r, "PUT", url("/echo"), &h, "payload", 7, NULL), &s);
    http_headers_free(&h);
    wait_res(r, &s);
    http_response *resp = http_result_response(&s.r);
    ck_assert_ptr_nonnull(resp);
    ck_assert_int_eq(resp->status, 200);
    ck_assert_str_eq(resp->reason, "OK");
    ck_assert_int_eq(resp->version_minor, 1);
    /* Case-insensitive lookup of the response's headers. */
    ck_assert_str_eq(http_headers_get(&resp->headers, "content-type"), "text/plain");
    ck_assert_str_eq(http_headers_get(&resp->headers, "CONTENT-TYPE"), "text/plain");
    ck_assert_ptr_null(http_headers_get(&resp->headers, "x-nothing"));
    ck_assert_ptr_nonnull(strstr(resp->body, "PUT /echo\n"));
    ck_assert_ptr_nonnull(strstr(resp->body, "x-custom: yes\n"));
    ck_assert_ptr_nonnull(strstr(resp->body, "content-length: 7\n"));
    char host[64];
    snprintf(host, sizeof host, "host: 127.0.0.1:%d\n", py.port);
    ck_assert_ptr_nonnull(strstr(resp->body, host));
    ck_assert_str_eq(resp->body + resp->body_len - 7, "payload");
    ck_assert_ptr_nonnull(strstr(resp->url, "/echo"));
    done_with(&s);
    reactor_free(r);
}
END_TEST

START_TEST(test_framings)
{
    PEER_NEED(py);
    reactor *r = th_reactor(_i);
    struct peer_res s;
    http_response *resp = fetch(r, &s, "GET", url("/chunked"), NULL);
    ck_assert_uint_eq(resp->body_len, 6 + 7 + 3000 + 4);
    ck_assert_int_eq(memcmp(resp->body, "first,second,xxx", 16), 0);
    ck_assert_str_eq(resp->body + resp->body_len - 5, "xlast");
    done_with(&s);
    resp = fetch(r, &s, "GET", url("/raw/trailers"), NULL);
    ck_assert_str_eq(resp->body, "Wikipedia");
    done_with(&s);
    resp = fetch(r, &s, "GET", url("/close"), NULL);
    ck_assert_str_eq(resp->body, "until the close");
    done_with(&s);
    resp = fetch(r, &s, "GET", url("/raw/http10"), NULL);
    ck_assert_int_eq(resp->version_minor, 0);
    ck_assert_str_eq(resp->body, "close-delimited body");
    done_with(&s);
    resp = fetch(r, &s, "GET", url("/bytes/100000"), NULL);
    ck_assert_uint_eq(resp->body_len, 100000);
    for (size_t i = 0; i < 100000; i++)
        if ((unsigned char)resp->body[i] != i % 251)
            ck_abort_msg("byte %zu wrong", i);
    done_with(&s);
    /* Transfer-Encoding beats Content-Length. */
    resp = fetch(r, &s, "GET", url("/raw/te_cl"), NULL);
    ck_assert_str_eq(resp->body, "hello");
    done_with(&s);
    /* 100 Continue is skipped. */
    resp = fetch(r, &s, "GET", url("/raw/continue"), NULL);
    ck_assert_int_eq(resp->status, 200);
    ck_assert_str_eq(resp->body, "final");
    done_with(&s);
    resp = fetch(r, &s, "GET", url("/raw/lf_only"), NULL);
    ck_assert_str_eq(resp->body, "ok");
    ck_assert_str_eq(http_headers_get(&resp->headers, "x-a"), "b");
    done_with(&s);
    resp = fetch(r, &s, "GET", url("/raw/no_reason"), NULL);
    ck_assert_str_eq(resp->reason, "");
    ck_assert_str_eq(resp->body, "ok");
    done_with(&s);
    reactor_free(r);
}
END_TEST

START_TEST(test_no_body)
{
    PEER_NEED(py);
    reactor *r = th_reactor(_i);
    struct peer_res s;
    http_response *resp = fetch(r, &s, "HEAD", url("/hello"), NULL);
    ck_assert_int_eq(resp->status, 200);
    ck_assert_str_eq(http_headers_get(&resp->headers, "content-length"), "11");
    ck_assert_uint_eq(resp->body_len, 0);
    ck_assert_str_eq(resp->body, "");
    done_with(&s);
    /* The connection is still good after a HEAD (no body was expected). */
    resp = fetch(r, &s, "GET", url("/hello"), NULL);
    ck_assert_str_eq(resp->body, "hello world");
    done_with(&s);
    resp = fetch(r, &s, "GET", url("/raw/nobody304"), NULL);
    ck_assert_int_eq(resp->status, 304);
    ck_assert_uint_eq(resp->body_len, 0);
    done_with(&s);
    resp = fetch(r, &s, "GET", url("/raw/nobody204"), NULL);
    ck_assert_int_eq(resp->status, 204);
    ck_assert_uint_eq(resp->body_len, 0);
    done_with(&s);
    reactor_free(r);
}
END_TEST

START_TEST(test_keep_alive)
{
    PEER_NEED(py);
    reactor *r = th_reactor(_i);
    struct peer_res s;
    char first[32];
    http_response *resp = fetch(r, &s, "GET", url("/conn"), NULL);
    snprintf(first, sizeof first, "%s", resp->body);
    done_with(&s);
    for (int i = 0; i < 3; i++) {
        resp = fetch(r, &s, "GET", url("/conn"), NULL);
        ck_assert_str_eq(resp->body, first); /* the same connection every time */
        done_with(&s);
    }
    size_t idle;
    ck_assert_uint_eq(http_pool_connections(r, &idle), 1);
    ck_assert_uint_eq(idle, 1);
    http_pool_close_idle(r);
    ck_assert_uint_eq(http_pool_connections(r, &idle), 0);
    resp = fetch(r, &s, "GET", url("/conn"), NULL);
    ck_assert_str_ne(resp->body, first);
    done_with(&s);
    reactor_free(r);
}
END_TEST

/* Six requests at once with at most two connections: all answered, in two connections. */
START_TEST(test_pool_limit_queue)
{
    PEER_NEED(py);
    reactor *r = th_reactor(_i);
    http_options o = {.max_per_host = 2};
    struct peer_res s[6];
    for (int i = 0; i < 6; i++)
        peer_watch(http_request(r, "GET", url("/conn"), NULL, NULL, 0, &o), &s[i]);
    ck_assert_uint_eq(http_pool_connections(r, NULL), 2);
    int done = 0;
    size_t peak = 0;
    for (int it = 0; it < 100000 && done < 6; it++) {
        reactor_iterate(r, 1.0);
        size_t n = http_pool_connections(r, NULL);
        peak = n > peak ? n : peak;
        done = 0;
        for (int i = 0; i < 6; i++)
            done += s[i].done;
    }
    ck_assert_int_eq(done, 6);
    ck_assert_uint_le(peak, 2);
    char ids[6][16];
    int distinct = 0;
    for (int i = 0; i < 6; i++) {
        http_response *resp = http_result_response(&s[i].r);
        ck_assert_ptr_nonnull(resp);
        snprintf(ids[i], sizeof ids[i], "%s", resp->body);
        int seen = 0;
        for (int j = 0; j < i; j++)
            seen |= strcmp(ids[j], ids[i]) == 0;
        distinct += !seen;
        done_with(&s[i]);
    }
    ck_assert_int_eq(distinct, 2);
    reactor_free(r);
}
END_TEST

START_TEST(test_redirects)
{
    PEER_NEED(py);
    reactor *r = th_reactor(_i);
    struct peer_res s;
    http_response *resp = fetch(r, &s, "GET", url("/redirect/3"), NULL);
    ck_assert_int_eq(resp->status, 200);
    ck_assert_str_eq(resp->body, "arrived");
    ck_assert_int_eq(resp->redirects, 3);
    ck_assert_str_eq(resp->url, url("/redirect/0"));
    done_with(&s);
    resp = fetch(r, &s, "GET", url("/redirect-abs"), NULL);
    ck_assert_str_eq(resp->body, "hello world");
    done_with(&s);
    resp = fetch(r, &s, "GET", url("/redirect-rel"), NULL);
    ck_assert_str_eq(resp->url, url("/hello?x=1"));
    done_with(&s);
    /* 303 after a POST: a GET without body; 307 keeps the method and the body. */
    peer_watch(http_request(r, "POST", url("/303"), NULL, "data", 4, NULL), &s);
    wait_res(r, &s);
    resp = http_result_response(&s.r);
    ck_assert_ptr_nonnull(resp);
    ck_assert_ptr_nonnull(strstr(resp->body, "GET /echo\n"));
    done_with(&s);
    peer_watch(http_request(r, "POST", url("/307"), NULL, "data", 4, NULL), &s);
    wait_res(r, &s);
    resp = http_result_response(&s.r);
    ck_assert_ptr_nonnull(resp);
    ck_assert_ptr_nonnull(strstr(resp->body, "POST /echo\n"));
    ck_assert_str_eq(resp->body + resp->body_len - 4, "data");
    done_with(&s);
    /* Too many. */
    deferred_failure *f = fetch_fail(r, &s, "GET", url("/redirect/6"), NULL);
    ck_assert_int_eq(f->code, ELOOP);
    done_with(&s);
    f = fetch_fail(r, &s, "GET", url("/loop"), NULL);
    ck_assert_int_eq(f->code, ELOOP);
    done_with(&s);
    /* Not followed when asked not to. */
    http_options o = {.max_redirects = -1};
    resp = fetch(r, &s, "GET", url("/redirect/1"), &o);
    ck_assert_int_eq(resp->status, 302);
    ck_assert_str_eq(http_headers_get(&resp->headers, "location"), "/redirect/0");
    done_with(&s);
    reactor_free(r);
}
END_TEST

static void expect_broken(reactor *r, const char *path, int code, const char *words)
{
    struct peer_res s;
    deferred_failure *f = fetch_fail(r, &s, "GET", url(path), NULL);
    ck_assert_msg(f->code == code, "%s: code %d (%s), want %d", path, f->code, f->message, code);
    ck_assert_msg(strstr(f->message, words) != NULL, "%s: \"%s\" lacks \"%s\"", path, f->message,
                  words);
    done_with(&s);
}

/* Broken answers fail their request with what was wrong; a request in flight on
 * another connection meanwhile is unaffected. */
START_TEST(test_malformed)
{
    PEER_NEED(py);
    reactor *r = th_reactor(_i);
    struct peer_res slow;
    peer_watch(http_request(r, "GET", url("/slow/100"), NULL, NULL, 0, NULL), &slow);
    expect_broken(r, "/raw/garbage", EPROTO, "bad status line");
    expect_broken(r, "/raw/nocolon", EPROTO, "header line without colon");
    expect_broken(r, "/raw/badchunk", EPROTO, "bad chunk size");
    expect_broken(r, "/raw/short", EPROTO, "after 10 of 100 body bytes");
    expect_broken(r, "/raw/midheader", EPROTO, "in the middle of the response header");
    expect_broken(r, "/raw/conflict_cl", EPROTO, "conflicting Content-Length");
    expect_broken(r, "/raw/bigheader", EMSGSIZE, "65536 bytes");
    wait_res(r, &slow);
    http_response *resp = http_result_response(&slow.r);
    ck_assert_ptr_nonnull(resp);
    ck_assert_str_eq(resp->body, "slow");
    done_with(&slow);
    reactor_free(r);
}
END_TEST

START_TEST(test_limits)
{
    PEER_NEED(py);
    reactor *r = th_reactor(_i);
    struct peer_res s;
    http_options o = {.max_body_size = 1000};
    deferred_failure *f = fetch_fail(r, &s, "GET", url("/bytes/2000"), &o);
    ck_assert_int_eq(f->code, EMSGSIZE);
    done_with(&s);
    http_response *resp = fetch(r, &s, "GET", url("/bytes/1000"), &o);
    ck_assert_uint_eq(resp->body_len, 1000);
    done_with(&s);
    o.max_body_size = 0;
    o.max_header_size = 100;
    f = fetch_fail(r, &s, "GET", url("/echo"), &o);
    ck_assert_int_eq(f->code, EMSGSIZE);
    done_with(&s);
    /* A gzip bomb (4 MiB of zeros in ~4 KiB) stops at the limit of the decoded size. */
    http_options d = {.decode = 1, .max_body_size = 1 << 20};
    f = fetch_fail(r, &s, "GET", url("/bomb"), &d);
    ck_assert_int_eq(f->code, EMSGSIZE);
    done_with(&s);
    reactor_free(r);
}
END_TEST

START_TEST(test_decode)
{
    PEER_NEED(py);
    reactor *r = th_reactor(_i);
    http_options o = {.decode = 1};
    const char *paths[] = {"/gzip", "/deflate", "/rawdeflate"};
    for (int i = 0; i < 3; i++) {
        struct peer_res s;
        http_response *resp = fetch(r, &s, "GET", url(paths[i]), &o);
        ck_assert_uint_eq(resp->body_len, 11 * 200);
        ck_assert_int_eq(memcmp(resp->body, "compressed compressed ", 22), 0);
        done_with(&s);
    }
    /* Without decode the body is what was sent. */
    struct peer_res s;
    http_response *resp = fetch(r, &s, "GET", url("/gzip"), NULL);
    ck_assert_int_eq((unsigned char)resp->body[0], 0x1f);
    done_with(&s);
    reactor_free(r);
}
END_TEST

START_TEST(test_timeout_and_cancel)
{
    PEER_NEED(py);
    reactor *r = th_reactor(_i);
    struct peer_res s;
    http_options o = {.timeout = 0.05};
    deferred_failure *f = fetch_fail(r, &s, "GET", url("/slow/3000"), &o);
    ck_assert_int_eq(f->code, ETIMEDOUT);
    done_with(&s);
    ck_assert_uint_eq(http_pool_connections(r, NULL), 0); /* its connection was dropped */

    /* Cancel while the answer is awaited: aborted, its connection closed. */
    deferred *d = http_request(r, "GET", url("/slow/3000"), NULL, NULL, 0, NULL);
    peer_watch(deferred_ref(d), &s);
    th_iterate_n(r, 5);
    ck_assert_int_eq(s.done, 0);
    deferred_cancel(d);
    deferred_unref(d);
    ck_assert_int_eq(s.done, 1);
    ck_assert_int_eq(deferred_result_code(&s.r), ECANCELED);
    done_with(&s);
    ck_assert_uint_eq(http_pool_connections(r, NULL), 0);

    /* Cancel a queued request: the one before it is not disturbed. */
    http_options one = {.max_per_host = 1};
    struct peer_res a;
    peer_watch(http_request(r, "GET", url("/slow/50"), NULL, NULL, 0, &one), &a);
    d = http_request(r, "GET", url("/hello"), NULL, NULL, 0, &one);
    peer_watch(deferred_ref(d), &s);
    deferred_cancel(d);
    deferred_unref(d);
    ck_assert_int_eq(deferred_result_code(&s.r), ECANCELED);
    done_with(&s);
    wait_res(r, &a);
    ck_assert_ptr_nonnull(http_result_response(&a.r));
    done_with(&a);
    reactor_free(r);
}
END_TEST

/* The server closes a kept connection: the next request still succeeds, both when the
 * close was seen while idle and when the request was already written on it. */
START_TEST(test_idle_close)
{
    PEER_NEED(py);
    reactor *r = th_reactor(_i);
    struct peer_res s;
    http_response *resp = fetch(r, &s, "GET", url("/idleclose"), NULL);
    ck_assert_str_eq(resp->body, "bye");
    done_with(&s);
    /* At once: the FIN may not have been read yet, the GET goes on the dead one. */
    resp = fetch(r, &s, "GET", url("/hello"), NULL);
    ck_assert_str_eq(resp->body, "hello world");
    done_with(&s);
    resp = fetch(r, &s, "GET", url("/idleclose"), NULL);
    done_with(&s);
    int never = 0;
    th_iterate_until(r, &never, 0.05); /* let the close arrive */
    resp = fetch(r, &s, "GET", url("/hello"), NULL);
    ck_assert_str_eq(resp->body, "hello world");
    done_with(&s);
    reactor_free(r);
}
END_TEST

START_TEST(test_connect_errors)
{
    PEER_NEED(py);
    reactor *r = th_reactor(_i);
    struct peer_res s;
    /* A port nobody listens on: ask the peer's port + a little, refused. */
    deferred_failure *f = fetch_fail(r, &s, "GET", "http://127.0.0.1:1/", NULL);
    ck_assert_int_eq(f->code, ECONNREFUSED);
    ck_assert_ptr_nonnull(strstr(f->message, "cannot connect to 127.0.0.1:1"));
    done_with(&s);
    /* Many hosts that end with nothing left: their entries are swept (ASan/valgrind
     * see a wrong free), the pool still works afterwards. */
    for (int port = 2; port < 14; port++) {
        char u[64];
        snprintf(u, sizeof u, "http://127.0.0.1:%d/", port);
        f = fetch_fail(r, &s, "GET", u, NULL);
        ck_assert_int_eq(f->code, ECONNREFUSED);
        done_with(&s);
    }
    http_response *resp = fetch(r, &s, "GET", url("/hello"), NULL);
    ck_assert_str_eq(resp->body, "hello world");
    done_with(&s);
    reactor_free(r);
}
END_TEST

START_TEST(test_bad_urls)
{
    reactor *r = th_reactor(_i);
    const char *bad[] = {"ftp://example.org/", "http://user:pw@127.0.0.1/", "http://a b/",
                         "http://127.0.0.1/a b", "127.0.0.1/x", "http://[::1/",
                         "http://127.0.0.1:99999/", "http:///x", "http://h\x01/"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct peer_res s;
        deferred *d = http_request(r, "GET", bad[i], NULL, NULL, 0, NULL);
        peer_watch(d, &s);
        ck_assert_msg(s.done, "%s: not refused at once", bad[i]);
        ck_assert_int_eq(deferred_result_code(&s.r), EINVAL);
        ck_assert_ptr_nonnull(strstr(s.r.u.failure->message, "bad URL"));
        done_with(&s);
    }
    struct peer_res s;
    peer_watch(http_request(r, "GET\r\n", "http://127.0.0.1/", NULL, NULL, 0, NULL), &s);
    ck_assert_int_eq(deferred_result_code(&s.r), EINVAL);
    done_with(&s);
    ck_assert_uint_eq(http_pool_connections(r, NULL), 0);
    reactor_free(r);
}
END_TEST

START_TEST(test_ipv6)
{
    PEER_NEED(py);
    if (!py.port2) {
        fprintf(stderr, "test_ipv6: skipped: no IPv6 loopback\n");
        return;
    }
    reactor *r = th_reactor(_i);
    char u[64];
    snprintf(u, sizeof u, "http://[::1]:%d/echo", py.port2);
    struct peer_res s;
    http_response *resp = fetch(r, &s, "GET", u, NULL);
    char host[64];
    snprintf(host, sizeof host, "host: [::1]:%d\n", py.port2);
    ck_assert_ptr_nonnull(strstr(resp->body, host));
    done_with(&s);
    reactor_free(r);
}
END_TEST

/* Requests still in flight when the reactor is freed fail (ECANCELED), nothing leaks. */
START_TEST(test_free_with_requests)
{
    PEER_NEED(py);
    reactor *r = th_reactor(_i);
    struct peer_res a, b, c;
    http_options one = {.max_per_host = 1};
    peer_watch(http_request(r, "GET", url("/slow/2000"), NULL, NULL, 0, &one), &a);
    peer_watch(http_request(r, "GET", url("/hello"), NULL, NULL, 0, &one), &b); /* queued */
    peer_watch(http_request(r, "GET", url("/hello"), NULL, NULL, 0, NULL), &c);  /* connecting */
    th_iterate_n(r, 3);
    reactor_free(r);
    ck_assert_int_eq(a.done + b.done + c.done, 3);
    ck_assert_int_eq(deferred_result_code(&b.r), ECANCELED);
    done_with(&a);
    done_with(&b);
    done_with(&c);
}
END_TEST

/* ---- URLs (no network) ----------------------------------------------------------------- */

START_TEST(test_url_parse)
{
    http_url u;
    const char *why = NULL;
    ck_assert_int_eq(http_url_parse(&u, "HTTP://Example.ORG:8080/a/b?q=1#frag", &why), 0);
    ck_assert_int_eq(u.https, 0);
    ck_assert_str_eq(u.host, "example.org");
    ck_assert_int_eq(u.port, 8080);
    ck_assert_str_eq(u.target, "/a/b?q=1");
    http_url_clear(&u);
    ck_assert_int_eq(http_url_parse(&u, "https://[2001:db8::1]?x", &why), 0);
    ck_assert_int_eq(u.https, 1);
    ck_assert_str_eq(u.host, "2001:db8::1");
    ck_assert_int_eq(u.port, 443);
    ck_assert_str_eq(u.target, "/?x");
    char *abs = http_url_resolve(&u, "/p");
    ck_assert_str_eq(abs, "https://[2001:db8::1]/p");
    free(abs);
    http_url_clear(&u);
    ck_assert_int_eq(http_url_parse(&u, "http://h/a/b/c?q", &why), 0);
    const char *cases[][2] = {
        {"d", "http://h/a/b/d"},        {"../d", "http://h/a/d"},
        {"./d/./e", "http://h/a/b/d/e"}, {"../../../../d", "http://h/d"},
        {"?z", "http://h/a/b/c?z"},      {"//other:81/x", "http://other:81/x"},
        {"https://s/", "https://s/"},    {"/x/../y#f", "http://h/y"},
        {"", "http://h/a/b/c?q"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *got = http_url_resolve(&u, cases[i][0]);
        ck_assert_msg(got && strcmp(got, cases[i][1]) == 0, "%s -> %s, want %s", cases[i][0],
                      got ? got : "NULL", cases[i][1]);
        free(got);
    }
    http_url_clear(&u);
    ck_assert_int_eq(http_url_parse(&u, "gopher://h/", &why), -EINVAL);
    ck_assert_ptr_nonnull(strstr(why, "scheme"));
    ck_assert_int_eq(http_url_parse(&u, "http://u:p@h/", &why), -EINVAL);
    ck_assert_ptr_nonnull(strstr(why, "user"));
    ck_assert_int_eq(http_url_parse(&u, "http://h /", &why), -EINVAL);
    ck_assert_ptr_nonnull(strstr(why, "spaces"));
}
END_TEST

/* ---- https ---------------------------------------------------------------------------- */

static char *surl(const char *path)
{
    static char buf[4][128];
    static int i;
    char *b = buf[i++ % 4];
    snprintf(b, sizeof buf[0], "https://127.0.0.1:%d%s", pys.port, path);
    return b;
}

START_TEST(test_https)
{
    PEER_NEED(pys);
    reactor *r = th_reactor(_i);
    http_options o = {.ca_file = certs.ca};
    struct peer_res s;
    peer_watch(get_page_opts(r, surl("/hello"), &o), &s);
    wait_res(r, &s);
    if (deferred_result_is_failure(&s.r))
        deferred_failure_print(s.r.u.failure, stderr);
    ck_assert_int_eq(s.r.kind, DEFERRED_STR);
    ck_assert_str_eq(s.r.u.s, "hello world");
    done_with(&s);
    /* Kept alive over TLS too. */
    http_response *resp = fetch(r, &s, "GET", surl("/conn"), &o);
    char first[16];
    snprintf(first, sizeof first, "%s", resp->body);
    done_with(&s);
    resp = fetch(r, &s, "GET", surl("/conn"), &o);
    ck_assert_str_eq(resp->body, first);
    done_with(&s);
    resp = fetch(r, &s, "GET", surl("/chunked"), &o);
    ck_assert_uint_eq(resp->body_len, 6 + 7 + 3000 + 4);
    done_with(&s);
    /* The server drops the kept connection (without close_notify): the next one works. */
    resp = fetch(r, &s, "GET", surl("/idleclose"), &o);
    done_with(&s);
    resp = fetch(r, &s, "GET", surl("/hello"), &o);
    ck_assert_str_eq(resp->body, "hello world");
    done_with(&s);
    /* https -> http is refused. */
    deferred_failure *f = fetch_fail(r, &s, "GET", surl("/redirect-abs"), &o);
    ck_assert_int_eq(f->code, EPERM);
    ck_assert_ptr_nonnull(strstr(f->message, "https to http"));
    done_with(&s);
    reactor_free(r);
}
END_TEST

/* Without the test CA the certificate is refused: EACCES naming the reason. */
START_TEST(test_https_verify)
{
    PEER_NEED(pys);
    reactor *r = th_reactor(_i);
    struct peer_res s;
    deferred_failure *f = fetch_fail(r, &s, "GET", surl("/hello"), NULL);
    ck_assert_msg(f->code == EACCES, "code %d: %s", f->code, f->message);
    ck_assert_ptr_nonnull(strstr(f->message, "TLS with 127.0.0.1"));
    done_with(&s);
    /* A CA file that cannot be read: a clear error before any connection. */
    http_options o = {.ca_file = "/nonexistent/ca.pem"};
    f = fetch_fail(r, &s, "GET", surl("/hello"), &o);
    ck_assert_ptr_nonnull(strstr(f->message, "no TLS context"));
    done_with(&s);
    reactor_free(r);
}
END_TEST

/* ---- Twisted's web server ------------------------------------------------------------- */

static char *twurl(const char *path)
{
    static char buf[4][128];
    static int i;
    char *b = buf[i++ % 4];
    snprintf(b, sizeof buf[0], "http://127.0.0.1:%d%s", tw.port, path);
    return b;
}

START_TEST(test_twisted)
{
    PEER_NEED(tw);
    reactor *r = th_reactor(_i);
    struct peer_res s;
    peer_watch(get_page(r, twurl("/hello")), &s);
    wait_res(r, &s);
    ck_assert_int_eq(s.r.kind, DEFERRED_STR);
    ck_assert_str_eq(s.r.u.s, "hello from twisted");
    done_with(&s);
    http_response *resp = fetch(r, &s, "GET", twurl("/chunked"), NULL);
    ck_assert_str_eq(http_headers_get(&resp->headers, "transfer-encoding"), "chunked");
    ck_assert_str_eq(resp->body, "piece 0;piece 1;piece 2;piece 3;piece 4;");
    done_with(&s);
    resp = fetch(r, &s, "GET", twurl("/redirect"), NULL);
    ck_assert_str_eq(resp->body, "hello from twisted");
    ck_assert_int_eq(resp->redirects, 1);
    done_with(&s);
    http_options o = {.decode = 1};
    resp = fetch(r, &s, "GET", twurl("/gzip"), &o);
    ck_assert_str_eq(http_headers_get(&resp->headers, "content-encoding"), "gzip");
    ck_assert_uint_eq(resp->body_len, 800);
    ck_assert_int_eq(memcmp(resp->body, "gzip me gzip me ", 16), 0);
    done_with(&s);
    peer_watch(get_page(r, twurl("/missing")), &s);
    wait_res(r, &s);
    ck_assert_int_eq(http_failure_status(s.r.u.failure), 404);
    done_with(&s);
    size_t idle;
    ck_assert_uint_eq(http_pool_connections(r, &idle), 1); /* all on one kept connection */
    reactor_free(r);
}
END_TEST

extern Suite *suite_http_client(void);
Suite *suite_http_client(void)
{
    Suite *s = suite_create("http_client");
    TCase *tc = tcase_create("python");
    tcase_set_timeout(tc, 60);
    tcase_add_unchecked_fixture(tc, py_up, py_down);
    int nb = th_backend_count();
    tcase_add_loop_test(tc, test_get_page, 0, nb);
    tcase_add_loop_test(tc, test_get_page_404, 0, nb);
    tcase_add_loop_test(tc, test_request_headers_and_body, 0, nb);
    tcase_add_loop_test(tc, test_framings, 0, nb);
    tcase_add_loop_test(tc, test_no_body, 0, nb);
    tcase_add_loop_test(tc, test_keep_alive, 0, nb);
    tcase_add_loop_test(tc, test_pool_limit_queue, 0, nb);
    tcase_add_loop_test(tc, test_redirects, 0, nb);
    tcase_add_loop_test(tc, test_malformed, 0, nb);
    tcase_add_loop_test(tc, test_limits, 0, nb);
    tcase_add_loop_test(tc, test_decode, 0, nb);
    tcase_add_loop_test(tc, test_timeout_and_cancel, 0, nb);
    tcase_add_loop_test(tc, test_idle_close, 0, nb);
    tcase_add_loop_test(tc, test_connect_errors, 0, nb);
    tcase_add_loop_test(tc, test_bad_urls, 0, nb);
    tcase_add_loop_test(tc, test_ipv6, 0, nb);
    tcase_add_loop_test(tc, test_free_with_requests, 0, nb);
    tcase_add_test(tc, test_url_parse);
    suite_add_tcase(s, tc);
    TCase *ts = tcase_create("https");
    tcase_set_timeout(ts, 60);
    tcase_add_unchecked_fixture(ts, pys_up, pys_down);
    tcase_add_loop_test(ts, test_https, 0, nb);
    tcase_add_loop_test(ts, test_https_verify, 0, nb);
    suite_add_tcase(s, ts);
    TCase *tt = tcase_create("twisted");
    tcase_set_timeout(tt, 60);
    tcase_add_unchecked_fixture(tt, tw_up, tw_down);
    tcase_add_loop_test(tt, test_twisted, 0, nb);
    suite_add_tcase(s, tt);
    return s;
}
