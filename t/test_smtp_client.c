/* The SMTP client (smtp_send) against real, independent servers on loopback: aiosmtpd
 * (t/smtp_peer.py; once plain, once offering STARTTLS and AUTH with a throwaway CA) and
 * Twisted's ESMTP server (t/smtp_twisted_peer.py); each writes every message it got as
 * a JSON line, which the tests read back. Hostile and refusing servers are scripted
 * fakes on the reactor under test. One peer process per test case; every networked
 * test runs on every backend. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <twistc/deferred.h>
#include <twistc/reactor.h>
#include <twistc/smtp.h>
#include <twistc/tls.h>
#include <twistc/transport.h>

#include "helpers.h"
#include "peer_helpers.h"
#include "tls_helpers.h"
#include "transport_helpers.h"

#include "protocols/smtp_internal.h"

#define PY "/usr/bin/python3"

static struct peer plain, tlsp, tw;
static struct th_certs certs;
static int have_certs;
static char out_plain[64], out_tls[64], out_tw[64];

static void out_name(char *buf, size_t n, const char *what)
{
    snprintf(buf, n, "/tmp/twistc-smtp-%s-%d.json", what, (int)getpid());
    unlink(buf);
}

static void plain_up(void)
{
    out_name(out_plain, sizeof out_plain, "plain");
    const char *argv[] = {PY, "t/smtp_peer.py", "--refuse", "reject@y.org", "--out", out_plain,
                          NULL};
    if (peer_start(&plain, argv) < 0)
        fprintf(stderr, "smtp tests: aiosmtpd peer: %s\n", plain.skip);
}
static void plain_down(void)
{
    peer_stop(&plain);
    unlink(out_plain);
}
static void tls_up(void)
{
    out_name(out_tls, sizeof out_tls, "tls");
    have_certs = th_certs_make(&certs) == 0;
    if (!have_certs) {
        snprintf(tlsp.skip, sizeof tlsp.skip, "could not make test certificates");
        return;
    }
    const char *argv[] = {PY, "t/smtp_peer.py", "--tls-cert", certs.cert, "--tls-key", certs.key,
                          "--auth", "ann:s3cret", "--out", out_tls, NULL};
    if (peer_start(&tlsp, argv) < 0)
        fprintf(stderr, "smtp tests: aiosmtpd STARTTLS peer: %s\n", tlsp.skip);
}
static void tls_down(void)
{
    peer_stop(&tlsp);
    unlink(out_tls);
    if (have_certs)
        th_certs_remove(&certs);
}
/* Twisted offers STARTTLS too (its own certificates): a client without TLS configured
 * does not use it, so one peer serves the plain and the TLS test. */
static struct th_certs twcerts;
static int have_twcerts;
static void tw_up(void)
{
    out_name(out_tw, sizeof out_tw, "twisted");
    have_twcerts = th_certs_make(&twcerts) == 0;
    if (!have_twcerts) {
        snprintf(tw.skip, sizeof tw.skip, "could not make test certificates");
        return;
    }
    const char *argv[] = {PY, "t/smtp_twisted_peer.py", "--refuse", "reject@y.org", "--out",
                          out_tw, "--tls-cert", twcerts.cert, "--tls-key", twcerts.key, NULL};
    if (peer_start(&tw, argv) < 0)
        fprintf(stderr, "smtp tests: twisted peer: %s\n", tw.skip);
}
static void tw_down(void)
{
    peer_stop(&tw);
    unlink(out_tw);
    if (have_twcerts)
        th_certs_remove(&twcerts);
}

/* ---- Running a send ------------------------------------------------------------------ */

static void run(reactor *r, deferred *d, struct peer_res *s)
{
    peer_watch(d, s);
    ck_assert_msg(th_iterate_until(r, &s->done, 30), "smtp_send never finished");
}

static smtp_result *send_ok(reactor *r, struct peer_res *s, int port, const char *const *to,
                            size_t n, const char *msg, const smtp_options *o)
{
    run(r, smtp_send(r, "127.0.0.1", port, "sender@x.org", to, n, msg, strlen(msg), o), s);
    if (deferred_result_is_failure(&s->r)) {
        deferred_failure_print(s->r.u.failure, stderr);
        ck_abort_msg("smtp_send failed: %s", s->r.u.failure->message);
    }
    smtp_result *res = smtp_result_get(&s->r);
    ck_assert_ptr_nonnull(res);
    return res;
}

static deferred_failure *send_fail(reactor *r, struct peer_res *s, int port, const char *const *to,
                                   size_t n, const char *msg, const smtp_options *o)
{
    run(r, smtp_send(r, "127.0.0.1", port, "sender@x.org", to, n, msg, strlen(msg), o), s);
    ck_assert_msg(deferred_result_is_failure(&s->r), "smtp_send succeeded");
    return s->r.u.failure;
}

#define ASSERT_HAS(hay, needle) \
    ck_assert_msg(strstr((hay), (needle)) != NULL, "\"%s\" lacks \"%s\"", (hay), (needle))

/* ---- What the server got --------------------------------------------------------------- */

/* The peer's JSON line holding `marker`, or NULL (malloc'd). */
static char *record(const char *path, const char *marker)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *line = NULL, *found = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0)
        if (strstr(line, marker)) {
            free(found);
            found = strdup(line);
        }
    free(line);
    fclose(f);
    return found;
}

/* "\"data_hex\": \"<hex of s>\"". */
static char *hex_field(const char *s, size_t len)
{
    char *h = malloc(len * 2 + 32);
    size_t n = (size_t)sprintf(h, "\"data_hex\": \"");
    for (size_t i = 0; i < len; i++)
        n += (size_t)sprintf(h + n, "%02x", (unsigned char)s[i]);
    sprintf(h + n, "\"");
    return h;
}

static void assert_arrived(const char *path, const char *marker, const char *to_json,
                           const char *data)
{
    char *rec = record(path, marker);
    ck_assert_msg(rec != NULL, "no message with %s in %s", marker, path);
    ASSERT_HAS(rec, to_json);
    char *h = hex_field(data, strlen(data));
    ASSERT_HAS(rec, h);
    free(h);
    free(rec);
}

/* A marker unique to this test and backend, in the message's Subject. */
static const char *marker(const char *test, int i)
{
    static char buf[4][80];
    static int k;
    char *b = buf[k++ % 4];
    snprintf(b, sizeof buf[0], "%s-%s-%d", test, th_backend(i), (int)getpid());
    return b;
}

/* ---- aiosmtpd, plain ------------------------------------------------------------------- */

START_TEST(test_one_recipient)
{
    PEER_NEED(plain);
    reactor *r = th_reactor(_i);
    struct peer_res s;
    char msg[200];
    snprintf(msg, sizeof msg, "Subject: %s\r\n\r\nHello.\r\n", marker("one", _i));
    const char *to[] = {"ann@y.org"};
    smtp_result *res = send_ok(r, &s, plain.port, to, 1, msg, NULL);
    ck_assert_uint_eq(smtp_result_accepted(res), 1);
    ck_assert_uint_eq(smtp_result_refused_count(res), 0);
    ck_assert_int_eq(res->code, 250);
    ASSERT_HAS(res->text, "accepted for delivery");
    ck_assert_int_eq(res->tls, 0);
    ck_assert_int_eq(res->authenticated, 0);
    assert_arrived(out_plain, marker("one", _i), "\"to\": [\"ann@y.org\"]", msg);
    char *rec = record(out_plain, marker("one", _i));
    ASSERT_HAS(rec, "\"from\": \"sender@x.org\"");
    free(rec);
    deferred_result_clear(&s.r);
    reactor_free(r);
}
END_TEST

START_TEST(test_several_one_refused)
{
    PEER_NEED(plain);
    reactor *r = th_reactor(_i);
    struct peer_res s;
    char msg[200];
    snprintf(msg, sizeof msg, "Subject: %s\r\n\r\nHello all.\r\n", marker("several", _i));
    const char *to[] = {"ann@y.org", "reject@y.org", "bob@y.org"};
    smtp_result *res = send_ok(r, &s, plain.port, to, 3, msg, NULL);
    ck_assert_uint_eq(smtp_result_accepted(res), 2);
    ck_assert_uint_eq(smtp_result_refused_count(res), 1);
    ck_assert_str_eq(smtp_result_refused_address(res, 0), "reject@y.org");
    ck_assert_int_eq(smtp_result_refused_code(res, 0), 550);
    ck_assert_str_eq(smtp_result_refused_text(res, 0), "5.1.1 no such user here");
    ck_assert_ptr_null(smtp_result_refused_address(res, 1));
    assert_arrived(out_plain, marker("several", _i), "\"to\": [\"ann@y.org\", \"bob@y.org\"]",
                   msg);
    deferred_result_clear(&s.r);
    reactor_free(r);
}
END_TEST

START_TEST(test_all_refused)
{
    PEER_NEED(plain);
    reactor *r = th_reactor(_i);
    struct peer_res s;
    const char *to[] = {"reject@y.org"};
    deferred_failure *f = send_fail(r, &s, plain.port, to, 1, "Subject: no\r\n\r\nx\r\n", NULL);
    ck_assert_int_eq(f->code, SMTP_EREPLY + 550);
    ck_assert_int_eq(smtp_failure_reply(f), 550);
    ASSERT_HAS(f->message, "RCPT TO <reject@y.org>: 550 5.1.1 no such user here");
    deferred_result_clear(&s.r);
    reactor_free(r);
}
END_TEST

START_TEST(test_dots_line_ends_8bit)
{
    PEER_NEED(plain);
    reactor *r = th_reactor(_i);
    struct peer_res s;
    char msg[300], want[300];
    const char *m = marker("dots", _i);
    /* Bare LFs, lines starting with dots, a lone ".", 8-bit bytes, no final line end. */
    snprintf(msg, sizeof msg,
             "Subject: %s\n\n.starts with a dot\n..two dots\n.\nk\xc3\xa4se \xe9t\xe9\r\nlast", m);
    snprintf(want, sizeof want,
             "Subject: %s\r\n\r\n.starts with a dot\r\n..two dots\r\n.\r\nk\xc3\xa4se \xe9t\xe9"
             "\r\nlast\r\n", m);
    const char *to[] = {"ann@y.org"};
    smtp_result *res = send_ok(r, &s, plain.port, to, 1, msg, NULL);
    ck_assert_uint_eq(res->accepted, 1);
    assert_arrived(out_plain, m, "\"to\": [\"ann@y.org\"]", want);
    deferred_result_clear(&s.r);
    reactor_free(r);
}
END_TEST

START_TEST(test_plain_refusals)
{
    PEER_NEED(plain);
    reactor *r = th_reactor(_i);
    struct peer_res s;
    const char *to[] = {"ann@y.org"};
    /* AUTH without TLS: refused by us before any password is sent. */
    smtp_options o = {.username = "ann", .password = "s3cret"};
    deferred_failure *f = send_fail(r, &s, plain.port, to, 1, "x\r\n", &o);
    ck_assert_int_eq(f->code, EPERM);
    ASSERT_HAS(f->message, "without TLS");
    deferred_result_clear(&s.r);
    /* Allowed over plaintext, but this server offers no AUTH. */
    o.allow_plaintext_auth = 1;
    f = send_fail(r, &s, plain.port, to, 1, "x\r\n", &o);
    ck_assert_int_eq(f->code, ENOTSUP);
    ASSERT_HAS(f->message, "does not offer AUTH");
    deferred_result_clear(&s.r);
    /* STARTTLS required, not offered. */
    smtp_options t = {.starttls = SMTP_STARTTLS_REQUIRED};
    f = send_fail(r, &s, plain.port, to, 1, "x\r\n", &t);
    ck_assert_int_eq(f->code, ENOTSUP);
    ASSERT_HAS(f->message, "STARTTLS: required");
    deferred_result_clear(&s.r);
    /* If offered (a CA file configured): not offered, goes on in clear. */
    t.starttls = SMTP_STARTTLS_IF_OFFERED;
    smtp_result *res = send_ok(r, &s, plain.port, to, 1, "Subject: clear\r\n\r\nx\r\n", &t);
    ck_assert_int_eq(res->tls, 0);
    deferred_result_clear(&s.r);
    reactor_free(r);
}
END_TEST

START_TEST(test_bad_arguments)
{
    reactor *r = th_reactor(_i);
    struct peer_res s;
    const char *to[] = {"ann@y.org"};
    const char *bad_to[] = {"ann@y.org>\r\nRCPT TO:<evil@y.org"};
    const char *empty_to[] = {""};
    struct {
        deferred *d;
        const char *why;
    } cases[] = {
        {smtp_send(r, "127.0.0.1", 25, "a@x.org", to, 0, "x", 1, NULL), "no recipient"},
        {smtp_send(r, "127.0.0.1", 25, "a@x.org", bad_to, 1, "x", 1, NULL), "bad recipient"},
        {smtp_send(r, "127.0.0.1", 25, "a@x.org", empty_to, 1, "x", 1, NULL), "bad recipient"},
        {smtp_send(r, "127.0.0.1", 25, "a b@x.org", to, 1, "x", 1, NULL), "bad sender"},
        {smtp_send(r, "127.0.0.1", 0, "a@x.org", to, 1, "x", 1, NULL), "bad port"},
        {smtp_send(r, NULL, 25, "a@x.org", to, 1, "x", 1, NULL), "NULL"},
        {smtp_send(r, "127.0.0.1", 25, "a@x.org", to, 1, NULL, 1, NULL), "NULL"},
        {smtp_send(r, "127.0.0.1", 25, "a@x.org", to, 1, "x", 1,
                   &(smtp_options){.username = "u"}), "username without password"},
        {smtp_send(r, "127.0.0.1", 25, "a@x.org", to, 1, "x", 1,
                   &(smtp_options){.helo_name = "a b"}), "bad HELO name"},
        {smtp_send(r, "127.0.0.1", 25, "a@x.org", to, 1, "x", 1,
                   &(smtp_options){.username = "u", .password = "p", .auth_mechanism = "CRAM-MD5"}),
         "not supported"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_assert_ptr_nonnull(cases[i].d);
        ck_assert(deferred_called(cases[i].d));
        peer_watch(cases[i].d, &s);
        ck_assert_int_eq(deferred_result_code(&s.r), EINVAL);
        ASSERT_HAS(s.r.u.failure->message, cases[i].why);
        deferred_result_clear(&s.r);
    }
    reactor_free(r);
}
END_TEST

/* A port nobody listens on: connect fails with the connection's own error. */
START_TEST(test_connect_refused)
{
    reactor *r = th_reactor(_i);
    struct tfactory tf;
    tf_init(&tf, TP_RECORD);
    listener *l = reactor_listen_tcp(r, "127.0.0.1", 0, &tf.f, 0);
    int port = listener_port(l);
    listener_free(l);
    struct peer_res s;
    const char *to[] = {"ann@y.org"};
    deferred_failure *f = send_fail(r, &s, port, to, 1, "x", NULL);
    ck_assert_int_eq(f->code, ECONNREFUSED);
    ASSERT_HAS(f->message, "connect to 127.0.0.1:");
    deferred_result_clear(&s.r);
    reactor_free(r);
}
END_TEST

/* ---- aiosmtpd with STARTTLS and AUTH ---------------------------------------------------- */

START_TEST(test_starttls_auth)
{
    PEER_NEED(tlsp);
    reactor *r = th_reactor(_i);
    struct peer_res s;
    const char *to[] = {"ann@y.org", "reject@y.org"};
    char msg[200];
    /* STARTTLS when offered (a CA file is configured), no AUTH. */
    snprintf(msg, sizeof msg, "Subject: %s\r\n\r\nover TLS\r\n", marker("tls", _i));
    smtp_options o = {.ca_file = certs.ca};
    smtp_result *res = send_ok(r, &s, tlsp.port, to, 1, msg, &o);
    ck_assert_int_eq(res->tls, 1);
    ck_assert_int_eq(res->authenticated, 0);
    assert_arrived(out_tls, marker("tls", _i), "\"tls\": true", msg);
    deferred_result_clear(&s.r);
    /* AUTH PLAIN, then LOGIN, over STARTTLS (required), with a context of ours (the
     * o->tls way, and one CA load for the four sends). */
    tls_context *ctx = tls_context_new_client(certs.ca, NULL, NULL, 0);
    ck_assert_ptr_nonnull(ctx);
    const char *mech[] = {"PLAIN", "LOGIN"};
    for (int k = 0; k < 2; k++) {
        char m[80];
        snprintf(m, sizeof m, "%s-%s", marker("auth", _i), mech[k]);
        snprintf(msg, sizeof msg, "Subject: %s\r\n\r\nauthenticated\r\n", m);
        smtp_options a = {.tls = ctx, .starttls = SMTP_STARTTLS_REQUIRED,
                          .username = "ann", .password = "s3cret", .auth_mechanism = mech[k]};
        res = send_ok(r, &s, tlsp.port, to, 2, msg, &a);
        ck_assert_int_eq(res->tls, 1);
        ck_assert_int_eq(res->authenticated, 1);
        ck_assert_uint_eq(res->accepted, 2); /* --refuse is not set on this peer */
        assert_arrived(out_tls, m, "\"auth\": \"ann\"", msg);
        deferred_result_clear(&s.r);
        /* A wrong password: the server's 535 at the AUTH step. */
        a.password = "wrong";
        deferred_failure *f = send_fail(r, &s, tlsp.port, to, 1, msg, &a);
        ck_assert_int_eq(smtp_failure_reply(f), 535);
        char want[40];
        snprintf(want, sizeof want, "AUTH %s: 535 ", mech[k]);
        ASSERT_HAS(f->message, want);
        deferred_result_clear(&s.r);
    }
    tls_context_unref(ctx); /* the sends' connections hold their own references */
    reactor_free(r);
}
END_TEST

START_TEST(test_starttls_untrusted)
{
    PEER_NEED(tlsp);
    reactor *r = th_reactor(_i);
    struct peer_res s;
    const char *to[] = {"ann@y.org"};
    /* The server's certificate is not signed by a CA we trust. */
    smtp_options o = {.ca_file = certs.other_ca, .starttls = SMTP_STARTTLS_REQUIRED};
    deferred_failure *f = send_fail(r, &s, tlsp.port, to, 1, "x\r\n", &o);
    ck_assert_int_eq(f->code, EACCES);
    ASSERT_HAS(f->message, "STARTTLS with 127.0.0.1:");
    deferred_result_clear(&s.r);
    reactor_free(r);
}
END_TEST

/* ---- Twisted's ESMTP server ---------------------------------------------------------------- */

START_TEST(test_twisted)
{
    PEER_NEED(tw);
    reactor *r = th_reactor(_i);
    struct peer_res s;
    char msg[300], want[300];
    const char *m = marker("twisted", _i);
    snprintf(msg, sizeof msg, "Subject: %s\n\n.dot\nb\xe9te\n", m);
    snprintf(want, sizeof want, "Subject: %s\r\n\r\n.dot\r\nb\xe9te\r\n", m);
    const char *to[] = {"ann@y.org", "reject@y.org", "bob@y.org"};
    smtp_result *res = send_ok(r, &s, tw.port, to, 3, msg, NULL);
    ck_assert_uint_eq(res->accepted, 2);
    ck_assert_uint_eq(res->n_refused, 1);
    ck_assert_str_eq(res->refused[0].address, "reject@y.org");
    ck_assert_int_eq(res->refused[0].code, 550);
    ck_assert_int_eq(res->tls, 0); /* offered, but no TLS configured: not used */
    /* Twisted hands the message to one IMessage per recipient: two records. */
    char *rec = record(out_tw, "bob@y.org");
    ck_assert_ptr_nonnull(rec);
    free(rec);
    assert_arrived(out_tw, m, "\"to\": [\"bob@y.org\"]", want);
    deferred_result_clear(&s.r);
    const char *none[] = {"reject@y.org"};
    deferred_failure *f = send_fail(r, &s, tw.port, none, 1, msg, NULL);
    ck_assert_int_eq(smtp_failure_reply(f), 550);
    ASSERT_HAS(f->message, "RCPT TO <reject@y.org>: 550");
    deferred_result_clear(&s.r);
    /* STARTTLS with Twisted's TLS (required: it must be offered and work). */
    m = marker("twisted-tls", _i);
    snprintf(msg, sizeof msg, "Subject: %s\r\n\r\nsecret\r\n", m);
    smtp_options o = {.ca_file = twcerts.ca, .starttls = SMTP_STARTTLS_REQUIRED};
    res = send_ok(r, &s, tw.port, to, 1, msg, &o);
    ck_assert_int_eq(res->tls, 1);
    assert_arrived(out_tw, m, "\"tls\": true", msg);
    deferred_result_clear(&s.r);
    reactor_free(r);
}
END_TEST

/* ---- Scripted fake servers ------------------------------------------------------------------ */

/* The fake answers line k of what it receives with script[k] (NULL: nothing). Special
 * answers: "!close" closes the connection, "!big" sends a 1 MB line. script[0] is the
 * greeting. It records everything it received. */
struct fake {
    struct tfactory tf;
    listener *l;
    const char *const *script;
    size_t n, lines;
    char got[4096];
    size_t got_len;
    int garbage_next; /* answer the next bytes (a TLS ClientHello) with plain text */
};

static void fake_say(struct tp *p, struct fake *fk, const char *what)
{
    transport *t = p->base.transport;
    if (!what)
        return;
    if (!strcmp(what, "!close")) {
        transport_lose_connection(t);
    } else if (!strcmp(what, "!354-stop-reading")) {
        transport_write(t, "354 go ahead\r\n", 14);
        transport_pause_producing(t); /* the message piles up in the client */
    } else if (!strcmp(what, "!starttls-garbage")) {
        transport_write(t, "220 go ahead\r\n", 14);
        fk->garbage_next = 1;
    } else if (!strcmp(what, "!big")) {
        size_t n = 1024 * 1024;
        char *b = malloc(n);
        memset(b, 'x', n);
        memcpy(b, "250-", 4);
        transport_write(t, b, n);
        free(b);
    } else {
        transport_write(t, what, strlen(what));
        transport_write(t, "\r\n", 2);
    }
}

static void fake_made(struct tp *p)
{
    struct fake *fk = p->tf->user;
    fk->lines = 0;
    fake_say(p, fk, fk->script[0]);
}

static int fake_data(struct tp *p, const char *data, size_t len)
{
    struct fake *fk = p->tf->user;
    if (fk->garbage_next) {
        fk->garbage_next = 0;
        transport_write(p->base.transport, "500 this is not TLS\r\n", 21);
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        if (fk->got_len + 1 < sizeof fk->got)
            fk->got[fk->got_len++] = data[i];
        fk->got[fk->got_len] = 0;
        if (data[i] == '\n' && ++fk->lines < fk->n)
            fake_say(p, fk, fk->script[fk->lines]);
    }
    return 0;
}

static int fake_start(reactor *r, struct fake *fk, const char *const *script, size_t n)
{
    memset(fk, 0, sizeof *fk);
    tf_init(&fk->tf, TP_RECORD);
    fk->tf.user = fk;
    fk->tf.on_made = fake_made;
    fk->tf.on_data = fake_data;
    fk->script = script;
    fk->n = n;
    fk->l = reactor_listen_tcp(r, "127.0.0.1", 0, &fk->tf.f, 0);
    ck_assert_ptr_nonnull(fk->l);
    return listener_port(fk->l);
}

#define FAKE(r, fk, ...)                                                   \
    fake_start((r), (fk), (const char *const[]){__VA_ARGS__},              \
               sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

/* The fake's connections all ended (before fk goes out of scope). */
static void fake_wait_closed(reactor *r, struct fake *fk)
{
    for (int k = 0; k < 1000 && fk->tf.lost < fk->tf.made; k++)
        reactor_iterate(r, 0.05);
    ck_assert_int_eq(fk->tf.lost, fk->tf.made);
}

/* Iterates until the fake received `what`. */
static void fake_wait_got(reactor *r, struct fake *fk, const char *what)
{
    for (int k = 0; k < 1000 && !strstr(fk->got, what); k++)
        reactor_iterate(r, 0.05);
    ASSERT_HAS(fk->got, what);
}

START_TEST(test_helo_fallback_multiline)
{
    reactor *r = th_reactor(_i);
    struct fake fk;
    /* EHLO refused (an RFC 821 server): HELO, no extensions; multi-line replies. */
    int port = FAKE(r, &fk, "220-fake.test old server\r\n220 ready", "502 what is EHLO",
                    "250 hello", "250 sender ok", "250-recipient\r\n250-is\r\n250 ok",
                    "354 go ahead", NULL, "250 queued as 12", "221 bye");
    struct peer_res s;
    const char *to[] = {"ann@y.org"};
    smtp_options o = {.helo_name = "client.test"};
    smtp_result *res = send_ok(r, &s, port, to, 1, "hi\r\n", &o);
    ck_assert_str_eq(res->text, "queued as 12");
    ASSERT_HAS(fk.got, "EHLO client.test\r\nHELO client.test\r\nMAIL FROM:<sender@x.org>\r\n"
                       "RCPT TO:<ann@y.org>\r\nDATA\r\nhi\r\n.\r\n");
    deferred_result_clear(&s.r);
    /* After the result: QUIT, the 221, and the client closes by itself. */
    fake_wait_got(r, &fk, ".\r\nQUIT\r\n");
    fake_wait_closed(r, &fk);
    ck_assert_int_eq(fk.tf.last_lost_kind, PROTOCOL_DONE);
    listener_free(fk.l);
    reactor_free(r);
}
END_TEST

/* Each step's refusal fails with the step, the code and the server's words; hostile
 * servers (garbage, a 1 MB line, a changed code, early close, a stall) fail cleanly. */
START_TEST(test_refusals_and_hostile)
{
    static const struct {
        const char *script[8];
        int err;
        const char *want; /* the message, or its start */
        int starttls;
        size_t max_reply;
    } cases[] = {
        {{"554 go away"}, SMTP_EREPLY + 554, "greeting: 554 go away", 0, 0},
        {{"220 hi", "502 no", "501 no HELO either"}, SMTP_EREPLY + 501,
         "HELO: 501 no HELO either", 0, 0},
        {{"220 hi", "421 busy"}, SMTP_EREPLY + 421, "EHLO: 421 busy", 0, 0},
        {{"220 hi", "250 hi", "451 4.3.0 try later"}, SMTP_EREPLY + 451,
         "MAIL FROM <sender@x.org>: 451 4.3.0 try later", 0, 0},
        {{"220 hi", "250 hi", "250 ok", "250 ok", "554 no data today"}, SMTP_EREPLY + 554,
         "DATA: 554 no data today", 0, 0},
        {{"220 hi", "250 hi", "250 ok", "250 ok", "354 go", NULL, "552 too big"},
         SMTP_EREPLY + 552, "end of data: 552 too big", 0, 0},
        {{"HELLO THERE"}, EPROTO, "greeting: not an SMTP reply line", 0, 0},
        {{"220 hi", "250-a\r\n251 b"}, EPROTO, "EHLO: a multi-line reply changed its code", 0,
         0},
        {{"220 hi", "250x"}, EPROTO, "EHLO: not an SMTP reply line", 0, 0},
        {{"220 hi", "250 hi", "250 ok", "250 ok", "250 what?"}, EPROTO,
         "DATA: unexpected reply: 250 what?", 0, 0},
        {{"220 hi", "!big"}, EMSGSIZE, "EHLO: reply line longer than 4096 bytes", 0, 0},
        {{"220 hi", "!close"}, ECONNRESET, "EHLO: connection to 127.0.0.1:", 0, 0},
        {{"!close"}, ECONNRESET, "greeting: connection to 127.0.0.1:", 0, 0},
        {{"220 hi", NULL}, ETIMEDOUT, "EHLO: no reply from 127.0.0.1:", 0, 0},
        {{"220 hi", "250-aaaaaaaaaa\r\n250-bbbbbbbbbb\r\n250 c"}, EMSGSIZE,
         "EHLO: reply larger than the limit", 0, 15},
        /* STARTTLS accepted, then no TLS: the handshake fails (EPROTO, as https). */
        {{"220 hi", "250-hi\r\n250 STARTTLS", "!starttls-garbage"}, EPROTO,
         "STARTTLS with 127.0.0.1:", SMTP_STARTTLS_REQUIRED, 0},
        {{"220 hi", "250-hi\r\n250 STARTTLS", "454 4.7.0 TLS not available"}, SMTP_EREPLY + 454,
         "STARTTLS: 454 4.7.0 TLS not available", SMTP_STARTTLS_REQUIRED, 0},
    };
    reactor *r = th_reactor(_i);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct fake fk;
        int port = fake_start(r, &fk, cases[i].script, 8);
        struct peer_res s;
        const char *to[] = {"ann@y.org"};
        /* A short timeout only for the stall (the others must not depend on speed:
         * valgrind makes a TLS handshake take longer than that). */
        smtp_options o = {.timeout = cases[i].err == ETIMEDOUT ? 0.2 : 0,
                          .starttls = cases[i].starttls, .max_reply = cases[i].max_reply};
        deferred_failure *f = send_fail(r, &s, port, to, 1, "hi\r\n", &o);
        ck_assert_msg(f->code == cases[i].err, "case %zu: %s (%s)", i, f->message,
                      deferred_code_name(f->code));
        ck_assert_msg(strncmp(f->message, cases[i].want, strlen(cases[i].want)) == 0,
                      "case %zu: \"%s\" does not start with \"%s\"", i, f->message,
                      cases[i].want);
        if (cases[i].err > SMTP_EREPLY)
            ck_assert_int_eq(smtp_failure_reply(f), cases[i].err - SMTP_EREPLY);
        deferred_result_clear(&s.r);
        listener_free(fk.l);
        fake_wait_closed(r, &fk);
    }
    reactor_free(r);
}
END_TEST

/* A server that stops reading in the middle of the message: the data block timeout
 * (no progress in sending for that long) fails the send; the rest is dropped. */
START_TEST(test_data_block_timeout)
{
    reactor *r = th_reactor(_i);
    struct fake fk;
    int port = FAKE(r, &fk, "220 hi", "250 hi", "250 ok", "250 ok", "!354-stop-reading");
    /* 8 MB: more than the kernel's socket buffers take (tcp_wmem's 4 MB at most, and a
     * receive window that does not grow while the peer reads nothing). */
    size_t len = 8u << 20;
    char *msg = malloc(len + 1);
    for (size_t i = 0; i < len; i++)
        msg[i] = i % 100 == 99 ? '\n' : 'x';
    msg[len] = 0;
    struct peer_res s;
    const char *to[] = {"ann@y.org"};
    smtp_options o = {.timeout_block = 0.3};
    deferred_failure *f = send_fail(r, &s, port, to, 1, msg, &o);
    free(msg);
    ck_assert_int_eq(f->code, ETIMEDOUT);
    ASSERT_HAS(f->message, "sending the message to 127.0.0.1:");
    ASSERT_HAS(f->message, "no progress for 0.3 s");
    deferred_result_clear(&s.r);
    ck_assert_ptr_nonnull(fk.tf.last);
    transport_resume_producing(fk.tf.last->base.transport); /* to see the abort */
    fake_wait_closed(r, &fk);
    listener_free(fk.l);
    reactor_free(r);
}
END_TEST

/* A send to the fake, watched by s; the Deferred is returned (the caller's). */
static deferred *start_send(reactor *r, int port, struct peer_res *s)
{
    const char *to[] = {"ann@y.org"};
    deferred *d = smtp_send(r, "127.0.0.1", port, "a@x.org", to, 1, "x", 1, NULL);
    ck_assert_ptr_nonnull(d);
    peer_watch(deferred_ref(d), s);
    return d;
}

/* Cancel while connecting, cancel while waiting for a reply, and the reactor freed in
 * the middle of a send: each fails the Deferred, ends the connection, leaks nothing. */
START_TEST(test_cancel_and_reactor_freed)
{
    reactor *r = th_reactor(_i);
    struct fake fk;
    int port = FAKE(r, &fk, "220 hi", NULL);
    struct peer_res s;
    deferred *d = start_send(r, port, &s); /* nothing iterated yet: connecting */
    deferred_cancel(d);
    deferred_unref(d);
    ck_assert(s.done);
    ck_assert_int_eq(deferred_result_code(&s.r), ECANCELED);
    ASSERT_HAS(s.r.u.failure->message, "connect to 127.0.0.1:");
    deferred_result_clear(&s.r);
    d = start_send(r, port, &s); /* waiting for the EHLO reply, which never comes */
    fake_wait_got(r, &fk, "EHLO");
    ck_assert(!s.done);
    deferred_cancel(d);
    deferred_unref(d);
    ck_assert(s.done);
    ck_assert_int_eq(deferred_result_code(&s.r), ECANCELED);
    ck_assert_str_eq(s.r.u.failure->message, "EHLO: cancelled");
    deferred_result_clear(&s.r);
    fake_wait_closed(r, &fk); /* the connection is aborted: the fake sees it go */
    fk.got[0] = 0;
    fk.got_len = 0;
    d = start_send(r, port, &s);
    fake_wait_got(r, &fk, "EHLO");
    listener_free(fk.l);
    reactor_free(r);
    ck_assert(s.done);
    ck_assert_int_eq(deferred_result_code(&s.r), ECONNRESET);
    deferred_unref(d);
    deferred_result_clear(&s.r);
}
END_TEST

/* ---- The pieces alone ------------------------------------------------------------------------ */

START_TEST(test_reply_parser)
{
    smtp_reply rp;
    smtp_reply_init(&rp, 0);
    const char *why = NULL;
    ck_assert_int_eq(smtp_reply_line(&rp, "250-first\r", 10, &why), 0);
    ck_assert_int_eq(smtp_reply_line(&rp, "250-", 4, &why), 0);
    ck_assert_int_eq(smtp_reply_line(&rp, "250 last", 8, &why), 1);
    ck_assert_int_eq(rp.code, 250);
    ck_assert_uint_eq(rp.lines, 3);
    ck_assert_str_eq(rp.text, "first\n\nlast");
    ck_assert_int_eq(smtp_reply_line(&rp, "250 more", 8, &why), -EPROTO);
    smtp_reply_reset(&rp);
    ck_assert_int_eq(smtp_reply_line(&rp, "354", 3, &why), 1);
    ck_assert_str_eq(rp.text, "");
    smtp_reply_reset(&rp);
    const char *bad[] = {"", "25", "abc", "150 x", "650 x", "260 x", "2x0 x", "250_x", "250x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why = NULL;
        ck_assert_msg(smtp_reply_line(&rp, bad[i], strlen(bad[i]), &why) == -EPROTO, "%s", bad[i]);
        ck_assert_ptr_nonnull(why);
        ck_assert_uint_eq(rp.lines, 0);
    }
    ck_assert_int_eq(smtp_reply_line(&rp, "421-a", 5, &why), 0);
    ck_assert_int_eq(smtp_reply_line(&rp, "422 b", 5, &why), -EPROTO);
    smtp_reply_clear(&rp);
    smtp_reply_init(&rp, 10);
    ck_assert_int_eq(smtp_reply_line(&rp, "250-12345", 9, &why), 0);
    ck_assert_int_eq(smtp_reply_line(&rp, "250 123456", 10, &why), -EMSGSIZE);
    ck_assert_str_eq(rp.text, "12345"); /* left as it was */
    smtp_reply_clear(&rp);
}
END_TEST

START_TEST(test_encoders)
{
    size_t n;
    int eight;
    char *d = smtp__encode_data(".a\nb\r\n..c\r\n.", 12, &n, &eight);
    ck_assert_str_eq(d, "..a\r\nb\r\n...c\r\n..\r\n.\r\n");
    ck_assert_uint_eq(n, strlen(d));
    ck_assert_int_eq(eight, 0);
    free(d);
    d = smtp__encode_data("", 0, &n, &eight); /* an empty message: just the end */
    ck_assert_str_eq(d, ".\r\n");
    free(d);
    d = smtp__encode_data("x\xff\r", 3, &n, &eight);
    ck_assert_str_eq(d, "x\xff\r\n.\r\n");
    ck_assert_int_eq(eight, 1);
    free(d);
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char *b = smtp__base64(in[i], strlen(in[i]));
        ck_assert_str_eq(b, want[i]);
        free(b);
    }
    char *b = smtp__base64("\0ann\0s3cret", 11);
    ck_assert_str_eq(b, "AGFubgBzM2NyZXQ=");
    free(b);
}
END_TEST

extern Suite *suite_smtp_client(void);
Suite *suite_smtp_client(void)
{
    Suite *s = suite_create("smtp_client");
    int nb = th_backend_count();
    TCase *tu = tcase_create("units");
    tcase_add_test(tu, test_reply_parser);
    tcase_add_test(tu, test_encoders);
    tcase_add_loop_test(tu, test_bad_arguments, 0, nb);
    suite_add_tcase(s, tu);
    TCase *tf = tcase_create("fake");
    tcase_set_timeout(tf, 60);
    tcase_add_loop_test(tf, test_connect_refused, 0, nb);
    tcase_add_loop_test(tf, test_helo_fallback_multiline, 0, nb);
    tcase_add_loop_test(tf, test_refusals_and_hostile, 0, nb);
    tcase_add_loop_test(tf, test_cancel_and_reactor_freed, 0, nb);
    tcase_add_loop_test(tf, test_data_block_timeout, 0, nb);
    suite_add_tcase(s, tf);
    TCase *tp = tcase_create("aiosmtpd");
    tcase_set_timeout(tp, 60);
    tcase_add_unchecked_fixture(tp, plain_up, plain_down);
    tcase_add_loop_test(tp, test_one_recipient, 0, nb);
    tcase_add_loop_test(tp, test_several_one_refused, 0, nb);
    tcase_add_loop_test(tp, test_all_refused, 0, nb);
    tcase_add_loop_test(tp, test_dots_line_ends_8bit, 0, nb);
    tcase_add_loop_test(tp, test_plain_refusals, 0, nb);
    suite_add_tcase(s, tp);
    TCase *tt = tcase_create("aiosmtpd_tls");
    tcase_set_timeout(tt, 60);
    tcase_add_unchecked_fixture(tt, tls_up, tls_down);
    tcase_add_loop_test(tt, test_starttls_auth, 0, nb);
    tcase_add_loop_test(tt, test_starttls_untrusted, 0, nb);
    suite_add_tcase(s, tt);
    TCase *tw_ = tcase_create("twisted");
    tcase_set_timeout(tw_, 60);
    tcase_add_unchecked_fixture(tw_, tw_up, tw_down);
    tcase_add_loop_test(tw_, test_twisted, 0, nb);
    suite_add_tcase(s, tw_);
    return s;
}
