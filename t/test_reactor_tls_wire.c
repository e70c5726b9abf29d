/* TLS on the wire, byte by byte: a TLS peer driven by hand (OpenSSL with memory BIOs in
 * the test, a raw socket) against our server, so the test decides how the ciphertext is
 * cut: 1-byte chunks, a key update in the middle of a transfer, a record left half-sent
 * (no busy loop while waiting for the rest). Plus STARTTLS, and back-pressure over TLS. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <twistc/tls.h>

#include "helpers.h"
#include "reactor/transport_internal.h" /* T_PENDING / T_REG_W: no busy loop */
#include "tls_helpers.h"
#include "transport_helpers.h"

static struct th_certs certs;
static void certs_setup(void) { ck_assert_int_eq(th_certs_make(&certs), 0); }
static void certs_teardown(void) { th_certs_remove(&certs); }

/* ---- The hand-driven peer ------------------------------------------------------------ */

struct mp {
    reactor *r;
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *rb, *wb; /* ciphertext in (from the socket) / out (to it) */
    int fd;
    char *got; /* plaintext read */
    size_t got_len, got_cap;
};

static void mp_connect(struct mp *m, reactor *r, int port)
{
    memset(m, 0, sizeof *m);
    m->r = r;
    m->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(m->fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(m->fd, (struct sockaddr *)&a, sizeof a), 0);
    fcntl(m->fd, F_SETFL, fcntl(m->fd, F_GETFL) | O_NONBLOCK);
    m->ctx = SSL_CTX_new(TLS_client_method());
    ck_assert_int_eq(SSL_CTX_load_verify_locations(m->ctx, certs.ca, NULL), 1);
    SSL_CTX_set_verify(m->ctx, SSL_VERIFY_PEER, NULL);
    m->ssl = SSL_new(m->ctx);
    m->rb = BIO_new(BIO_s_mem());
    m->wb = BIO_new(BIO_s_mem());
    SSL_set_bio(m->ssl, m->rb, m->wb);
    SSL_set_connect_state(m->ssl);
}

static void mp_free(struct mp *m)
{
    SSL_free(m->ssl);
    SSL_CTX_free(m->ctx);
    if (m->fd >= 0)
        close(m->fd);
    free(m->got);
}

/* Our ciphertext to the server, chunk bytes at a time; the server reads each chunk
 * before the next is sent (loopback delivers at once; two non-blocking iterations). */
static void mp_send(struct mp *m, size_t chunk)
{
    char buf[16384];
    int n;
    while ((n = BIO_read(m->wb, buf, sizeof buf)) > 0) {
        for (size_t off = 0; off < (size_t)n;) {
            size_t k = (size_t)n - off < chunk ? (size_t)n - off : chunk;
            ssize_t w = send(m->fd, buf + off, k, MSG_NOSIGNAL);
            if (w < 0 && errno == EAGAIN) {
                th_iterate_n(m->r, 1);
                continue;
            }
            ck_assert_int_gt(w, 0);
            off += (size_t)w;
            th_iterate_n(m->r, 2);
        }
    }
}

/* The server's ciphertext into our SSL; returns the bytes received. */
static size_t mp_recv(struct mp *m)
{
    th_iterate_n(m->r, 2);
    char buf[16384];
    ssize_t n;
    size_t total = 0;
    while ((n = recv(m->fd, buf, sizeof buf, 0)) > 0) {
        BIO_write(m->rb, buf, (int)n);
        total += (size_t)n;
    }
    return total;
}

static void mp_handshake(struct mp *m, size_t chunk)
{
    for (int i = 0; i < 5000 && !SSL_is_init_finished(m->ssl); i++) {
        ERR_clear_error();
        int r = SSL_do_handshake(m->ssl);
        if (r <= 0)
            ck_assert_int_eq(SSL_get_error(m->ssl, r), SSL_ERROR_WANT_READ);
        mp_send(m, chunk);
        mp_recv(m);
    }
    ck_assert(SSL_is_init_finished(m->ssl));
}

/* Reads what plaintext there is. */
static void mp_read(struct mp *m)
{
    char buf[16384];
    int n;
    ERR_clear_error();
    while ((n = SSL_read(m->ssl, buf, sizeof buf)) > 0) {
        if (m->got_len + (size_t)n > m->got_cap) {
            m->got_cap = (m->got_len + (size_t)n) * 2;
            m->got = realloc(m->got, m->got_cap);
        }
        memcpy(m->got + m->got_len, buf, (size_t)n);
        m->got_len += (size_t)n;
    }
    mp_send(m, 1 << 20); /* what reading produced (a key update's answer) */
}

/* Reads until want bytes of plaintext arrived (bounded). */
static void mp_read_until(struct mp *m, size_t want, size_t chunk)
{
    for (int i = 0; i < 20000 && m->got_len < want; i++) {
        mp_recv(m);
        mp_read(m);
        mp_send(m, chunk);
    }
    ck_assert_uint_eq(m->got_len, want);
}

static void mp_write(struct mp *m, const void *data, size_t len, size_t chunk)
{
    ERR_clear_error();
    ck_assert_int_eq(SSL_write(m->ssl, data, (int)len), (int)len);
    mp_send(m, chunk);
}

struct wbed {
    struct tfx x;
    tls_context *sctx;
};

static void wbed_open(struct wbed *b, int backend, enum tp_mode mode)
{
    memset(b, 0, sizeof *b);
    tfx_open(&b->x, backend, mode);
    listener_free(b->x.l);
    char err[256];
    b->sctx = tls_context_new_server(certs.cert, certs.key, err, sizeof err);
    ck_assert_msg(b->sctx != NULL, "%s", err);
    b->x.l = reactor_listen_tls(b->x.r, "127.0.0.1", 0, &b->x.srv.f, 0, b->sctx);
    ck_assert_ptr_nonnull(b->x.l);
    b->x.port = listener_port(b->x.l);
}

static void wbed_close(struct wbed *b)
{
    tfx_close(&b->x);
    tls_context_unref(b->sctx);
}

/* ---- Tests --------------------------------------------------------------------------- */

/* The whole handshake and the data in 1-byte chunks of ciphertext. */
START_TEST(test_one_byte_chunks)
{
    struct wbed b;
    wbed_open(&b, _i, TP_ECHO);
    struct mp m;
    mp_connect(&m, b.x.r, b.x.port);
    mp_handshake(&m, 1);
    mp_write(&m, "one byte at a time\n", 19, 1);
    mp_read_until(&m, 19, 1);
    ck_assert_int_eq(memcmp(m.got, "one byte at a time\n", 19), 0);
    ck_assert_int_eq(b.x.srv.lost, 0);
    mp_free(&m);
    wbed_close(&b);
}
END_TEST

/* Half a record: the server waits for readability, neither scheduled again and again nor
 * asking for WRITABLE (WANT_READ never busy-loops). */
START_TEST(test_partial_record_no_busy_loop)
{
    struct wbed b;
    wbed_open(&b, _i, TP_ECHO);
    struct mp m;
    mp_connect(&m, b.x.r, b.x.port);
    mp_handshake(&m, 4096);
    ERR_clear_error();
    ck_assert_int_eq(SSL_write(m.ssl, "half", 4), 4);
    char rec[512];
    int n = BIO_read(m.wb, rec, sizeof rec);
    ck_assert_int_gt(n, 10);
    ck_assert_int_eq(send(m.fd, rec, 7, MSG_NOSIGNAL), 7); /* header + 2 bytes */
    th_iterate_n(b.x.r, 20);
    ck_assert_ptr_nonnull(b.x.srv.last);
    transport *t = b.x.srv.last->base.transport;
    ck_assert_uint_eq(t->flags & (T_PENDING | T_REG_W | T_WANT_WRITE), 0);
    ck_assert_uint_eq(b.x.srv.last->data_calls, 0);
    ck_assert_int_eq(send(m.fd, rec + 7, (size_t)n - 7, MSG_NOSIGNAL), n - 7);
    mp_read_until(&m, 4, 4096);
    ck_assert_int_eq(memcmp(m.got, "half", 4), 0);
    mp_free(&m);
    wbed_close(&b);
}
END_TEST

/* A TLS 1.3 key update (the peer asks us to update too) in the middle of a transfer. */
START_TEST(test_key_update_mid_transfer)
{
    struct wbed b;
    wbed_open(&b, _i, TP_ECHO);
    struct mp m;
    mp_connect(&m, b.x.r, b.x.port);
    mp_handshake(&m, 16384);
    ck_assert_str_eq(SSL_get_version(m.ssl), "TLSv1.3");
    size_t total = 200000;
    char *data = malloc(total);
    fill_pattern(data, total, 0);
    mp_write(&m, data, total / 2, 16384);
    ck_assert_int_eq(SSL_key_update(m.ssl, SSL_KEY_UPDATE_REQUESTED), 1);
    mp_write(&m, data + total / 2, total - total / 2, 16384);
    mp_read_until(&m, total, 16384);
    ck_assert_int_eq(memcmp(m.got, data, total), 0);
    /* and after it, both directions still work */
    mp_write(&m, "after\n", 6, 16384);
    mp_read_until(&m, total + 6, 16384);
    ck_assert_int_eq(b.x.srv.lost, 0);
    free(data);
    mp_free(&m);
    wbed_close(&b);
}
END_TEST

/* ---- STARTTLS --------------------------------------------------------------------------- */

static tls_context *st_client_ctx;

/* Server: "STARTTLS\n" -> "GO\n" in clear, then TLS; afterwards echo. */
static int st_server_data(struct tp *p, const char *data, size_t len)
{
    transport *t = p->base.transport;
    if (!transport_is_tls(t)) {
        ck_assert_uint_eq(len, 9);
        ck_assert_int_eq(memcmp(data, "STARTTLS\n", 9), 0);
        ck_assert_int_eq(transport_write(t, "GO\n", 3), 0);
        tls_context *ctx = p->tf->user;
        ck_assert_int_eq(transport_start_tls(t, ctx, 1), -EINVAL); /* a server context */
        ck_assert_int_eq(transport_start_tls(t, ctx, 0), 0);
        ck_assert_int_eq(transport_start_tls(t, ctx, 0), -EALREADY);
        return 0;
    }
    return transport_write(t, data, len);
}

static void st_client_made(struct tp *p)
{
    transport_write(p->base.transport, "STARTTLS\n", 9);
}

static int st_client_data(struct tp *p, const char *data, size_t len)
{
    transport *t = p->base.transport;
    if (!transport_is_tls(t)) {
        ck_assert_uint_eq(len, 3);
        ck_assert_int_eq(memcmp(data, "GO\n", 3), 0);
        ck_assert_int_eq(transport_start_tls(t, st_client_ctx, 1), 0);
        ck_assert_int_eq(transport_write(t, "secret\n", 7), 0); /* encrypted, after */
        return 0;
    }
    ck_assert_uint_eq(len, 7);
    ck_assert_int_eq(memcmp(data, "secret\n", 7), 0);
    tls_info info;
    ck_assert_int_eq(transport_tls_info(t, &info), 0);
    ck_assert_str_eq(info.peer_subject, "/CN=localhost");
    p->tf->done = 1;
    transport_lose_connection(t);
    return 0;
}

START_TEST(test_starttls)
{
    struct tfx x;
    tfx_open(&x, _i, TP_RECORD);
    char err[256];
    tls_context *sctx = tls_context_new_server(certs.cert, certs.key, err, sizeof err);
    st_client_ctx = tls_context_new_client(certs.ca, NULL, err, sizeof err);
    ck_assert_ptr_nonnull(sctx);
    ck_assert_ptr_nonnull(st_client_ctx);
    x.srv.user = sctx;
    x.srv.on_data = st_server_data;
    x.cli.on_made = st_client_made;
    x.cli.on_data = st_client_data;
    tfx_connect(&x); /* plain TCP; the host it names (127.0.0.1) is what TLS checks */
    ck_assert(th_iterate_until(x.r, &x.cli.done, 10));
    for (int i = 0; i < 1000 && !(x.cli.lost && x.srv.lost); i++)
        reactor_iterate(x.r, 0.01);
    ck_assert_int_eq(x.cli.lost_kind[PROTOCOL_DONE], 1);
    ck_assert_int_eq(x.srv.lost_kind[PROTOCOL_DONE], 1);
    tfx_close(&x);
    tls_context_unref(sctx);
    tls_context_unref(st_client_ctx);
}
END_TEST

/* ---- Back-pressure --------------------------------------------------------------------- */

struct prod {
    int paused, resumed, stopped;
};
static void prod_pause(void *d) { ((struct prod *)d)->paused++; }
static void prod_resume(void *d) { ((struct prod *)d)->resumed++; }
static void prod_stop(void *d) { ((struct prod *)d)->stopped++; }
static const transport_producer_ops prod_ops = {prod_pause, prod_resume, prod_stop};
static struct prod the_prod;

/* The server writes 64 KiB per call, to a peer that does not read: the producer is
 * paused once plaintext + records pass the high-water mark; then the cap cuts it. */
static void bp_made(struct tp *p)
{
    transport *t = p->base.transport;
    ck_assert_int_eq(transport_set_write_limits(t, 100000, 0, 600000), 0);
    ck_assert_int_eq(transport_register_producer(t, &prod_ops, &the_prod, 1), 0);
}

START_TEST(test_backpressure_and_cap)
{
    struct wbed b;
    wbed_open(&b, _i, TP_RECORD);
    memset(&the_prod, 0, sizeof the_prod);
    b.x.srv.on_made = bp_made;
    struct mp m;
    mp_connect(&m, b.x.r, b.x.port);
    int rcv = 4096;
    setsockopt(m.fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    mp_handshake(&m, 16384);
    ck_assert_ptr_nonnull(b.x.srv.last);
    transport *t = b.x.srv.last->base.transport;
    static char chunk[65536];
    /* before the step: all of it is plaintext held by the layer, and it counts */
    ck_assert_int_eq(transport_write(t, chunk, sizeof chunk), 0);
    ck_assert_uint_eq(transport_pending(t), sizeof chunk);
    ck_assert_int_eq(the_prod.paused, 0);
    ck_assert_int_eq(transport_write(t, chunk, sizeof chunk), 0);
    ck_assert_int_eq(the_prod.paused, 1); /* 128 KiB > 100000 */
    int rc = 0;
    for (int i = 0; i < 1000 && rc == 0; i++) {
        th_iterate_n(b.x.r, 2);
        rc = transport_write(t, chunk, sizeof chunk);
    }
    ck_assert_int_eq(rc, -ENOBUFS); /* the peer never read: cut at the cap */
    th_iterate_n(b.x.r, 3);
    ck_assert_int_eq(b.x.srv.lost, 1);
    ck_assert_int_eq(b.x.srv.last_lost_kind, PROTOCOL_ERROR);
    ck_assert_int_eq(b.x.srv.last_lost_err, ENOBUFS);
    ck_assert_int_eq(the_prod.stopped, 1);
    mp_free(&m);
    wbed_close(&b);
}
END_TEST

/* A paused reader gets the producer resumed once the peer reads everything. */
START_TEST(test_backpressure_resume)
{
    struct wbed b;
    wbed_open(&b, _i, TP_RECORD);
    memset(&the_prod, 0, sizeof the_prod);
    b.x.srv.on_made = bp_made;
    struct mp m;
    mp_connect(&m, b.x.r, b.x.port);
    mp_handshake(&m, 16384);
    transport *t = b.x.srv.last->base.transport;
    static char chunk[200000];
    fill_pattern(chunk, sizeof chunk, 0);
    ck_assert_int_eq(transport_write(t, chunk, sizeof chunk), 0);
    ck_assert_int_eq(the_prod.paused, 1);
    mp_read_until(&m, sizeof chunk, 16384);
    ck_assert_int_eq(memcmp(m.got, chunk, sizeof chunk), 0);
    th_iterate_n(b.x.r, 3);
    ck_assert_int_eq(the_prod.resumed, 1);
    ck_assert_uint_eq(transport_pending(t), 0);
    transport_unregister_producer(t);
    mp_free(&m);
    wbed_close(&b);
}
END_TEST

extern Suite *suite_reactor_tls_wire(void);
Suite *suite_reactor_tls_wire(void)
{
    Suite *s = suite_create("reactor_tls_wire");
    TCase *tc = tcase_create("wire");
    tcase_add_unchecked_fixture(tc, certs_setup, certs_teardown);
    tcase_set_timeout(tc, 30);
    int n = th_backend_count();
    tcase_add_loop_test(tc, test_one_byte_chunks, 0, n);
    tcase_add_loop_test(tc, test_partial_record_no_busy_loop, 0, n);
    tcase_add_loop_test(tc, test_key_update_mid_transfer, 0, n);
    tcase_add_loop_test(tc, test_starttls, 0, n);
    tcase_add_loop_test(tc, test_backpressure_and_cap, 0, n);
    tcase_add_loop_test(tc, test_backpressure_resume, 0, n);
    suite_add_tcase(s, tc);
    return s;
}
