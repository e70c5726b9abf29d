/* TLS over real loopback sockets, on every backend: our server and our client, the
 * ways a TLS connection ends (each told apart in connection_lost), writes before the
 * handshake, one record per callback, close_notify and its timeout, bad clients.
 * Certificates are made at run time (tls_helpers.c). */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <twistc/tls.h>

#include "helpers.h"
#include "reactor/transport_internal.h" /* the module's list of live connections */
#include "tls_helpers.h"
#include "transport_helpers.h"

static struct th_certs certs;

static void certs_setup(void) { ck_assert_int_eq(th_certs_make(&certs), 0); }
static void certs_teardown(void) { th_certs_remove(&certs); }

/* What a side's last connection_lost said. */
struct rec {
    int kind, lost;
    char detail[256];
    char text[512];
};

static void rec_lost(struct tp *p, const protocol_reason *reason)
{
    struct rec *r = p->tf->user;
    r->kind = reason->kind;
    r->lost++;
    snprintf(r->detail, sizeof r->detail, "%s", reason->detail ? reason->detail : "");
    protocol_reason_format(reason, r->text, sizeof r->text);
    p->tf->done = 1;
}

struct bed {
    struct tfx x;
    struct rec srec, crec;
    tls_context *sctx, *cctx;
};

/* A TLS listener (server certificate cert/key) in place of tfx's TCP one. */
static void bed_open(struct bed *b, int backend, enum tp_mode mode, const char *cert,
                     const char *key)
{
    memset(b, 0, sizeof *b);
    tfx_open(&b->x, backend, mode);
    listener_free(b->x.l);
    char err[256];
    b->sctx = tls_context_new_server(cert, key, err, sizeof err);
    ck_assert_msg(b->sctx != NULL, "%s", err);
    b->x.l = reactor_listen_tls(b->x.r, "127.0.0.1", 0, &b->x.srv.f, 0, b->sctx);
    ck_assert_ptr_nonnull(b->x.l);
    b->x.port = listener_port(b->x.l);
    b->x.srv.user = &b->srec;
    b->x.srv.on_lost = rec_lost;
    b->x.cli.user = &b->crec;
    b->x.cli.on_lost = rec_lost;
}

/* A client trusting our CA (cafile NULL: the system store only). */
static void bed_connect(struct bed *b, const char *host, const char *cafile)
{
    char err[256];
    if (!b->cctx) {
        b->cctx = tls_context_new_client(cafile, NULL, err, sizeof err);
        ck_assert_msg(b->cctx != NULL, "%s", err);
    }
    b->x.conn = reactor_connect_tls(b->x.r, host, b->x.port, &b->x.cli.f, 5, b->cctx);
    ck_assert_ptr_nonnull(b->x.conn);
}

static void bed_close(struct bed *b)
{
    tfx_close(&b->x);
    tls_context_unref(b->sctx);
    tls_context_unref(b->cctx);
}

/* Both sides lost (bounded). */
static int both_lost(struct bed *b)
{
    for (int i = 0; i < 20000 && !(b->srec.lost && b->crec.lost); i++)
        reactor_iterate(b->x.r, 0.5); /* returns as soon as something happened */
    return b->srec.lost && b->crec.lost;
}

/* ---- A round trip ------------------------------------------------------------------- */

/* TLS connections get TCP_NODELAY (tls_layer.c: Nagle + the peer's delayed ACK of the
 * session tickets cost a server 40 ms per new connection). */
static int nodelay_checked;
static void check_nodelay(struct tp *p)
{
    int v = 0;
    socklen_t len = sizeof v;
    ck_assert_int_eq(getsockopt(transport_fd(p->base.transport), IPPROTO_TCP, TCP_NODELAY, &v, &len), 0);
    ck_assert_int_ne(v, 0);
    nodelay_checked++;
}

static void write_hello(struct tp *p)
{
    check_nodelay(p);
    /* before the handshake: kept, sent after it; many small writes, one callback */
    const char *s = "hello over tls\n";
    for (size_t i = 0; s[i]; i++)
        ck_assert_int_eq(transport_write(p->base.transport, s + i, 1), 0);
    ck_assert_int_eq(transport_is_tls(p->base.transport), 1);
    tls_info info;
    ck_assert_int_eq(transport_tls_info(p->base.transport, &info), -EAGAIN);
}

static const char *want_alpn = "";

static int got_echo(struct tp *p, const char *data, size_t len)
{
    struct tfactory *tf = p->tf;
    if (!p->in)
        p->in = calloc(1, 256);
    ck_assert_uint_lt(p->in_len + len, 256);
    memcpy(p->in + p->in_len, data, len);
    p->in_len += len;
    if (p->in_len == 15) {
        ck_assert_int_eq(memcmp(p->in, "hello over tls\n", 15), 0);
        tls_info info;
        ck_assert_int_eq(transport_tls_info(p->base.transport, &info), 0);
        ck_assert_str_eq(info.version, "TLSv1.3");
        ck_assert_str_eq(info.alpn, want_alpn);
        ck_assert_str_eq(info.peer_subject, "/CN=localhost");
        ck_assert_int_eq(info.peer_verified, 1);
        tf->read_lost = 1; /* marks "echo seen" */
        transport_lose_connection(p->base.transport);
    }
    return 0;
}

/* Counts the application-data records the server receives. */
static int app_records;
static void count_records(int write_p, int version, int content_type, const void *buf,
                          size_t len, SSL *ssl, void *arg)
{
    (void)version;
    (void)ssl;
    (void)arg;
    /* TLS 1.3 hides the record type: the inner one tells application data apart */
    if (!write_p && content_type == SSL3_RT_INNER_CONTENT_TYPE && len >= 1 &&
        ((const unsigned char *)buf)[0] == SSL3_RT_APPLICATION_DATA)
        app_records++;
}

START_TEST(test_echo_roundtrip)
{
    struct bed b;
    bed_open(&b, _i, TP_ECHO, certs.cert, certs.key);
    const char *salpn[] = {"h2", "x/1"}, *calpn[] = {"x/1"};
    ck_assert_int_eq(tls_context_set_alpn(b.sctx, salpn, 2), 0);
    app_records = 0;
    SSL_CTX_set_msg_callback(tls_context_ssl_ctx(b.sctx), count_records);
    char err[256];
    b.cctx = tls_context_new_client(certs.ca, NULL, err, sizeof err);
    ck_assert_msg(b.cctx != NULL, "%s", err);
    ck_assert_int_eq(tls_context_set_alpn(b.cctx, calpn, 1), 0);
    want_alpn = "x/1";
    b.x.cli.on_made = write_hello;
    b.x.cli.on_data = got_echo;
    b.x.srv.on_made = check_nodelay;
    nodelay_checked = 0;
    bed_connect(&b, "127.0.0.1", certs.ca);
    ck_assert(both_lost(&b));
    ck_assert_int_eq(nodelay_checked, 2); /* client and server */
    ck_assert_int_eq(b.x.cli.read_lost, 1);
    /* the 15 one-byte writes of one callback became one record */
    ck_assert_int_eq(app_records, 1);
    ck_assert_msg(b.crec.kind == PROTOCOL_DONE, "client: %s", b.crec.text);
    ck_assert_msg(b.srec.kind == PROTOCOL_DONE, "server: %s", b.srec.text);
    ck_assert_str_eq(b.srec.detail, "close_notify exchanged");
    bed_close(&b);
}
END_TEST

/* ---- The shared plaintext buffer ------------------------------------------------------ */

/* Answers are written into a buffer the reactor lends to the connection being read
 * (tls_layer.c). Here the first client's "go" gets 20,000 bytes in 1,000-byte writes
 * (more than the lent buffer holds: it moves to one of its own mid-callback), and the
 * second client's "go" gets the same while its callback also writes "!\n" to the first
 * connection (which holds no loan then). Every byte must reach the right client, in
 * order. */
#define FAN_LEN 20000
static transport *fan_first; /* the first server-side connection */

static int fan_srv_data(struct tp *p, const char *data, size_t len)
{
    (void)data;
    (void)len; /* each client sends "go\n" once, one record */
    transport *t = p->base.transport;
    char chunk[1000];
    for (size_t off = 0; off < FAN_LEN; off += sizeof chunk) {
        fill_pattern(chunk, sizeof chunk, off);
        ck_assert_int_eq(transport_write(t, chunk, sizeof chunk), 0);
    }
    if (!fan_first)
        fan_first = t;
    else
        ck_assert_int_eq(transport_write(fan_first, "!\n", 2), 0);
    return 0;
}

static void fan_cli_made(struct tp *p) { transport_write(p->base.transport, "go\n", 3); }

static int fan_cli_data(struct tp *p, const char *data, size_t len)
{
    if (p->in_len + len > p->in_cap) {
        p->in_cap = (p->in_len + len) * 2;
        p->in = realloc(p->in, p->in_cap);
        ck_assert_ptr_nonnull(p->in);
    }
    memcpy(p->in + p->in_len, data, len);
    p->in_len += len;
    return 0;
}

static int fan_got(struct tp *p, size_t want)
{
    if (!p || p->in_len < want)
        return 0;
    ck_assert_uint_eq(p->in_len, want);
    char *expect = malloc(FAN_LEN);
    ck_assert_ptr_nonnull(expect);
    fill_pattern(expect, FAN_LEN, 0);
    ck_assert_int_eq(memcmp(p->in, expect, FAN_LEN), 0);
    free(expect);
    return 1;
}

START_TEST(test_shared_plaintext_buffer)
{
    struct bed b;
    bed_open(&b, _i, TP_RECORD, certs.cert, certs.key);
    fan_first = NULL;
    b.x.srv.on_data = fan_srv_data;
    b.x.cli.on_made = fan_cli_made;
    b.x.cli.on_data = fan_cli_data;
    bed_connect(&b, "127.0.0.1", certs.ca);
    struct tp *first = NULL;
    for (int i = 0; i < 20000 && !fan_got(first, FAN_LEN); i++) {
        reactor_iterate(b.x.r, 0.5);
        first = b.x.cli.last;
    }
    ck_assert(fan_got(first, FAN_LEN));
    connector *c2 = reactor_connect_tls(b.x.r, "127.0.0.1", b.x.port, &b.x.cli.f, 5, b.cctx);
    ck_assert_ptr_nonnull(c2);
    struct tp *second = NULL;
    for (int i = 0; i < 20000 && !(fan_got(second, FAN_LEN) && first->in_len == FAN_LEN + 2);
         i++) {
        reactor_iterate(b.x.r, 0.5);
        if (b.x.cli.last != first)
            second = b.x.cli.last;
    }
    ck_assert(fan_got(second, FAN_LEN));
    ck_assert_uint_eq(first->in_len, FAN_LEN + 2);
    ck_assert_int_eq(memcmp(first->in + FAN_LEN, "!\n", 2), 0);
    /* no connection holds the shared buffer between steps */
    ck_assert_ptr_null(transport__mod(b.x.r)->tlsplain_user);
    transport_lose_connection(first->base.transport);
    transport_lose_connection(second->base.transport);
    for (int i = 0; i < 20000 && b.x.srv.lost < 2; i++)
        reactor_iterate(b.x.r, 0.5);
    ck_assert_int_eq(b.x.srv.lost, 2);
    connector_free(c2);
    bed_close(&b);
}
END_TEST

/* ---- Verification failures --------------------------------------------------------- */

static void verify_case(int backend, const char *cert, const char *key, const char *host,
                        const char *cafile, const char *want)
{
    struct bed b;
    bed_open(&b, backend, TP_ECHO, cert, key);
    b.x.cli.on_made = write_hello;
    bed_connect(&b, host, cafile);
    ck_assert(both_lost(&b));
    ck_assert_msg(b.crec.kind == PROTOCOL_TLS_VERIFY, "client: %s", b.crec.text);
    ck_assert_msg(strstr(b.crec.detail, want) != NULL, "client: %s (want %s)", b.crec.text, want);
    ck_assert_msg(b.srec.kind == PROTOCOL_TLS_HANDSHAKE, "server: %s", b.srec.text);
    ck_assert_int_eq(b.x.srv.lost, 1);
    bed_close(&b);
}

START_TEST(test_verify_unknown_issuer)
{
    verify_case(_i, certs.cert, certs.key, "127.0.0.1", certs.other_ca,
                "unable to get local issuer certificate");
}
END_TEST

START_TEST(test_verify_expired)
{
    verify_case(_i, certs.expired, certs.expired_key, "127.0.0.1", certs.ca,
                "certificate has expired");
}
END_TEST

START_TEST(test_verify_wrong_host)
{
    verify_case(_i, certs.wrong, certs.wrong_key, "127.0.0.1", certs.ca, "IP address mismatch");
}
END_TEST

/* ---- Handshake failures -------------------------------------------------------------- */

START_TEST(test_handshake_version)
{
    struct bed b;
    bed_open(&b, _i, TP_ECHO, certs.cert, certs.key);
    SSL_CTX_set_min_proto_version(tls_context_ssl_ctx(b.sctx), TLS1_3_VERSION);
    char err[256];
    b.cctx = tls_context_new_client(certs.ca, NULL, err, sizeof err);
    SSL_CTX_set_max_proto_version(tls_context_ssl_ctx(b.cctx), TLS1_2_VERSION);
    bed_connect(&b, "127.0.0.1", certs.ca);
    ck_assert(both_lost(&b));
    ck_assert_msg(b.srec.kind == PROTOCOL_TLS_HANDSHAKE && strstr(b.srec.detail, "protocol"),
                  "server: %s", b.srec.text);
    ck_assert_msg(b.crec.kind == PROTOCOL_TLS_HANDSHAKE && strstr(b.crec.detail, "protocol"),
                  "client: %s", b.crec.text);
    bed_close(&b);
}
END_TEST

START_TEST(test_handshake_no_shared_cipher)
{
    struct bed b;
    bed_open(&b, _i, TP_ECHO, certs.cert, certs.key);
    SSL_CTX *s = tls_context_ssl_ctx(b.sctx);
    SSL_CTX_set_max_proto_version(s, TLS1_2_VERSION);
    SSL_CTX_set_cipher_list(s, "ECDHE-ECDSA-AES128-GCM-SHA256");
    char err[256];
    b.cctx = tls_context_new_client(certs.ca, NULL, err, sizeof err);
    SSL_CTX *c = tls_context_ssl_ctx(b.cctx);
    SSL_CTX_set_max_proto_version(c, TLS1_2_VERSION);
    SSL_CTX_set_cipher_list(c, "ECDHE-ECDSA-CHACHA20-POLY1305");
    bed_connect(&b, "127.0.0.1", certs.ca);
    ck_assert(both_lost(&b));
    ck_assert_msg(b.srec.kind == PROTOCOL_TLS_HANDSHAKE &&
                      strcmp(b.srec.detail, "no shared cipher") == 0,
                  "server: %s", b.srec.text);
    ck_assert_msg(b.crec.kind == PROTOCOL_TLS_HANDSHAKE, "client: %s", b.crec.text);
    bed_close(&b);
}
END_TEST

/* Garbage instead of a ClientHello: that connection is dropped with the reason, and a
 * good client served at the same time is not hurt. */
START_TEST(test_garbage_dropped)
{
    struct bed b;
    bed_open(&b, _i, TP_ECHO, certs.cert, certs.key);
    struct rawc *raw = tfx_raw(&b.x);
    rawc_send(raw, "GET / HTTP/1.0\r\n\r\n", 18);
    ck_assert(th_iterate_until(b.x.r, &raw->done, 5));
    ck_assert_int_eq(b.x.srv.lost, 1);
    ck_assert_msg(b.srec.kind == PROTOCOL_TLS_HANDSHAKE && strstr(b.srec.detail, "http request"),
                  "server: %s", b.srec.text);
    b.srec.lost = 0;
    want_alpn = "";
    b.x.cli.on_made = write_hello;
    b.x.cli.on_data = got_echo;
    bed_connect(&b, "127.0.0.1", certs.ca);
    ck_assert(both_lost(&b));
    ck_assert_int_eq(b.x.cli.read_lost, 1); /* the echo came back */
    ck_assert_int_eq(b.crec.kind, PROTOCOL_DONE);
    bed_close(&b);
}
END_TEST

/* 1,000 clients send the start of a ClientHello and go away: each ends as a failed
 * handshake, nothing stays behind (no connection in the module's list; ASan and
 * valgrind runs check the memory). */
START_TEST(test_abandoned_handshakes)
{
    struct bed b;
    bed_open(&b, _i, TP_ECHO, certs.cert, certs.key);
    /* a TLS record header announcing a 512-byte handshake, then 3 bytes of it */
    static const char partial[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01};
    int total = 0;
    for (int round = 0; round < 50; round++) {
        struct rawc c[20];
        for (int k = 0; k < 20; k++) {
            rawc_connect_slow(&c[k], b.x.r, b.x.port, 0); /* not watched by the test */
            rawc_send(&c[k], partial, sizeof partial);
        }
        th_iterate_n(b.x.r, 3); /* accepted, the bytes read */
        for (int k = 0; k < 20; k++)
            rawc_free(&c[k]); /* closes: the handshake is abandoned */
        total += 20;
        for (int i = 0; i < 2000 && b.x.srv.lost < total; i++)
            reactor_iterate(b.x.r, 0.5);
        ck_assert_int_eq(b.x.srv.lost, total);
    }
    ck_assert_int_eq(b.x.srv.lost_kind[PROTOCOL_TLS_HANDSHAKE], 1000);
    ck_assert_str_eq(b.srec.detail, "the peer closed the connection during the handshake");
    ck_assert_ptr_null(transport__mod(b.x.r)->conns);
    bed_close(&b);
}
END_TEST

/* ---- Endings ------------------------------------------------------------------------ */

static void greet(struct tp *p) { transport_write(p->base.transport, "hi\n", 3); }

static int cut_tcp(struct tp *p, const char *data, size_t len)
{
    (void)data;
    (void)len;
    /* a FIN without close_notify */
    shutdown(transport_fd(p->base.transport), SHUT_WR);
    return 0;
}

START_TEST(test_truncation)
{
    struct bed b;
    bed_open(&b, _i, TP_RECORD, certs.cert, certs.key);
    b.x.srv.on_made = greet;
    b.x.cli.on_data = cut_tcp;
    bed_connect(&b, "127.0.0.1", certs.ca);
    ck_assert(both_lost(&b));
    ck_assert_msg(b.srec.kind == PROTOCOL_TLS_TRUNCATED, "server: %s", b.srec.text);
    bed_close(&b);
}
END_TEST

static int abort_tcp(struct tp *p, const char *data, size_t len)
{
    (void)data;
    (void)len;
    transport_abort_connection(p->base.transport);
    return 0;
}

/* A TCP error under TLS is a plain PROTOCOL_LOST with its errno. */
START_TEST(test_tcp_reset_under_tls)
{
    struct bed b;
    bed_open(&b, _i, TP_RECORD, certs.cert, certs.key);
    b.x.srv.on_made = greet;
    b.x.cli.on_data = abort_tcp;
    bed_connect(&b, "127.0.0.1", certs.ca);
    ck_assert(both_lost(&b));
    ck_assert_int_eq(b.crec.kind, PROTOCOL_ABORTED);
    ck_assert_msg(b.srec.kind == PROTOCOL_LOST && b.x.srv.last_lost_err == ECONNRESET,
                  "server: %s", b.srec.text);
    bed_close(&b);
}
END_TEST

/* The client reads the greeting, then stops reading: it never answers close_notify. */
static int pause_client(struct tp *p, const char *data, size_t len)
{
    (void)data;
    (void)len;
    transport_pause_producing(p->base.transport);
    p->tf->read_lost = 1;
    return 0;
}

START_TEST(test_close_notify_timeout)
{
    struct bed b;
    bed_open(&b, _i, TP_RECORD, certs.cert, certs.key);
    ck_assert_int_eq(reactor_use_fake_clock(b.x.r, 100), 0);
    ck_assert_int_eq(tls_context_set_close_timeout(b.sctx, 7), 0);
    b.x.srv.on_made = greet;
    b.x.cli.on_data = pause_client;
    bed_connect(&b, "127.0.0.1", certs.ca);
    for (int i = 0; i < 10000 && !b.x.cli.read_lost; i++)
        reactor_iterate(b.x.r, 0.01);
    ck_assert_int_eq(b.x.cli.read_lost, 1);
    ck_assert_ptr_nonnull(b.x.srv.last);
    transport_lose_connection(b.x.srv.last->base.transport);
    th_iterate_n(b.x.r, 50);
    ck_assert_int_eq(b.srec.lost, 0); /* waiting for the close_notify answer */
    reactor_advance(b.x.r, 6.9);
    th_iterate_n(b.x.r, 5);
    ck_assert_int_eq(b.srec.lost, 0);
    reactor_advance(b.x.r, 0.2);
    th_iterate_n(b.x.r, 5);
    ck_assert_int_eq(b.srec.lost, 1);
    ck_assert_int_eq(b.srec.kind, PROTOCOL_DONE);
    ck_assert_str_eq(b.srec.detail, "the peer did not answer close_notify in time");
    bed_close(&b);
}
END_TEST

/* A client that connects and sends nothing is dropped after the handshake timeout (3 s
 * on the fake clock); a client whose handshake finished is not, however long it stays. */
static int got_hi(struct tp *p, const char *data, size_t len)
{
    (void)data;
    p->in_len += len;
    if (p->in_len >= 3)
        p->tf->read_lost = 1; /* marks "greeting seen" */
    return 0;
}

START_TEST(test_handshake_timeout)
{
    struct bed b;
    bed_open(&b, _i, TP_RECORD, certs.cert, certs.key);
    ck_assert_int_eq(reactor_use_fake_clock(b.x.r, 100), 0);
    ck_assert_int_eq(tls_context_set_handshake_timeout(b.sctx, -1), -EINVAL);
    ck_assert_int_eq(tls_context_set_handshake_timeout(b.sctx, 3), 0);
    struct rawc *raw = tfx_raw(&b.x); /* connects, never says a word */
    b.x.srv.on_made = greet;
    b.x.cli.on_data = got_hi;
    bed_connect(&b, "127.0.0.1", certs.ca);
    for (int i = 0; i < 10000 && !b.x.cli.read_lost; i++)
        reactor_iterate(b.x.r, 0.01);
    ck_assert_int_eq(b.x.cli.read_lost, 1); /* the good client's handshake is done */
    ck_assert_int_eq(b.x.srv.made, 2);
    reactor_advance(b.x.r, 2.9);
    th_iterate_n(b.x.r, 5);
    ck_assert_int_eq(b.x.srv.lost, 0);
    reactor_advance(b.x.r, 0.2);
    ck_assert(th_iterate_until(b.x.r, &raw->done, 5));
    ck_assert_int_eq(b.x.srv.lost, 1);
    ck_assert_msg(b.srec.kind == PROTOCOL_TLS_HANDSHAKE, "server: %s", b.srec.text);
    ck_assert_str_eq(b.srec.detail, "the handshake did not finish in time");
    ck_assert_int_eq(b.x.srv.last_lost_err, ETIMEDOUT);
    reactor_advance(b.x.r, 100);
    th_iterate_n(b.x.r, 5);
    ck_assert_int_eq(b.x.srv.lost, 1); /* the good connection stays */
    ck_assert_int_eq(b.crec.lost, 0);
    ck_assert_ptr_nonnull(b.x.cli.last);
    transport_lose_connection(b.x.cli.last->base.transport);
    ck_assert(both_lost(&b));
    ck_assert_msg(b.crec.kind == PROTOCOL_DONE, "client: %s", b.crec.text);
    bed_close(&b);
}
END_TEST

/* ---- Contexts ------------------------------------------------------------------------ */

START_TEST(test_context_errors)
{
    char err[256];
    ck_assert_ptr_null(tls_context_new_server("/nonexistent.pem", certs.key, err, sizeof err));
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_msg(strstr(err, "/nonexistent.pem") && strstr(err, "No such file"), "%s", err);
    /* a key file given as the certificate */
    ck_assert_ptr_null(tls_context_new_server(certs.key, certs.key, err, sizeof err));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_msg(strstr(err, certs.key) && strstr(err, "no start line"), "%s", err);
    /* a key that belongs to another certificate */
    ck_assert_ptr_null(tls_context_new_server(certs.cert, certs.wrong_key, err, sizeof err));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_msg(strstr(err, certs.wrong_key) && strstr(err, "mismatch"), "%s", err);
    tls_context *c = tls_context_new_client(NULL, NULL, err, sizeof err);
    ck_assert_ptr_nonnull(c);
    const char *bad[] = {""};
    ck_assert_int_eq(tls_context_set_alpn(c, bad, 1), -EINVAL);
    ck_assert_int_eq(tls_context_set_close_timeout(c, 0), -EINVAL);
    tls_context_unref(c);
}
END_TEST

extern Suite *suite_reactor_tls(void);
Suite *suite_reactor_tls(void)
{
    Suite *s = suite_create("reactor_tls");
    TCase *tc = tcase_create("tls");
    tcase_add_unchecked_fixture(tc, certs_setup, certs_teardown);
    tcase_set_timeout(tc, 30);
    int n = th_backend_count();
    tcase_add_test(tc, test_context_errors);
    tcase_add_loop_test(tc, test_echo_roundtrip, 0, n);
    tcase_add_loop_test(tc, test_shared_plaintext_buffer, 0, n);
    tcase_add_loop_test(tc, test_verify_unknown_issuer, 0, n);
    tcase_add_loop_test(tc, test_verify_expired, 0, n);
    tcase_add_loop_test(tc, test_verify_wrong_host, 0, n);
    tcase_add_loop_test(tc, test_handshake_version, 0, n);
    tcase_add_loop_test(tc, test_handshake_no_shared_cipher, 0, n);
    tcase_add_loop_test(tc, test_garbage_dropped, 0, n);
    tcase_add_loop_test(tc, test_abandoned_handshakes, 0, n);
    tcase_add_loop_test(tc, test_truncation, 0, n);
    tcase_add_loop_test(tc, test_tcp_reset_under_tls, 0, n);
    tcase_add_loop_test(tc, test_close_notify_timeout, 0, n);
    tcase_add_loop_test(tc, test_handshake_timeout, 0, n);
    suite_add_tcase(s, tc);
    return s;
}
