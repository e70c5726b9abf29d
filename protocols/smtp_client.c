/* smtp_send(): one SMTP session (RFC 5321) as a LineReceiver protocol.
 *
 * The session is a small state machine driven by replies: each complete reply (the
 * smtp_reply parser gathers its lines) goes to the handler of the current state, which
 * checks the code, sends the next command and moves on. One timer guards the step in
 * progress. The session is freed in connection_lost (or, when the connection never
 * came up, in the connect Deferred's errback); the user's Deferred fires once, at the
 * 250 after the message, or at the first failure. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <twistc/deferred_connect.h>
#include <twistc/line_receiver.h>
#include <twistc/smtp.h>
#include <twistc/tls.h>
#include <twistc/transport.h>

#include "protocols/smtp_internal.h"

enum {
    ST_CONNECTING,
    ST_GREETING,
    ST_EHLO,
    ST_HELO,
    ST_STARTTLS,
    ST_AUTH_PLAIN,
    ST_AUTH_LOGIN,      /* sent AUTH LOGIN, waiting for the user name prompt */
    ST_AUTH_LOGIN_USER, /* sent the user name, waiting for the password prompt */
    ST_AUTH_LOGIN_PASS, /* sent the password */
    ST_MAIL,
    ST_RCPT,
    ST_DATA,
    ST_BODY,
    ST_QUIT,
    ST_CLOSED, /* closing: lines are ignored */
};

enum { EXT_STARTTLS = 1, EXT_AUTH_PLAIN = 2, EXT_AUTH_LOGIN = 4, EXT_8BITMIME = 8, EXT_SIZE = 16,
       EXT_AUTH = 32 };

typedef struct smtp_sess {
    line_receiver lr; /* first: &lr.base is the protocol */
    line_receiver_ops ops; /* sess_ops with this send's max_line */
    reactor *r;
    deferred *d;  /* the user's, NULL once fired */
    deferred *cd; /* the connect Deferred while connecting */
    char *host;
    int port;
    char *from;
    char **to;
    size_t n_to, rcpt;
    char *data; /* the encoded message */
    size_t data_len;
    int eight;
    smtp_options o; /* its strings are our copies; tls is our reference */
    int want_tls;
    smtp_reply rp;
    int state, ehlo_done_tls, is_tls, authed;
    unsigned ext;
    reactor_timer *timer;
    double timer_s;
    size_t last_pending;
    smtp_result *res;
} smtp_sess;

/* ---- Results ---------------------------------------------------------------------------- */

void smtp_result_free(void *p)
{
    smtp_result *res = p;
    if (!res)
        return;
    for (size_t i = 0; i < res->n_refused; i++) {
        free(res->refused[i].address);
        free(res->refused[i].text);
    }
    free(res->refused);
    free(res->text);
    free(res);
}

smtp_result *smtp_result_get(const deferred_result *r)
{
    return r && r->kind == DEFERRED_PTR && r->free_fn == smtp_result_free ? r->u.p : NULL;
}

size_t smtp_result_accepted(const smtp_result *res) { return res ? res->accepted : 0; }
size_t smtp_result_refused_count(const smtp_result *res) { return res ? res->n_refused : 0; }
const char *smtp_result_refused_address(const smtp_result *res, size_t i)
{
    return res && i < res->n_refused ? res->refused[i].address : NULL;
}
int smtp_result_refused_code(const smtp_result *res, size_t i)
{
    return res && i < res->n_refused ? res->refused[i].code : 0;
}
const char *smtp_result_refused_text(const smtp_result *res, size_t i)
{
    return res && i < res->n_refused ? res->refused[i].text : NULL;
}

int smtp_failure_reply(const deferred_failure *f)
{
    for (; f; f = f->cause)
        if (f->code > SMTP_EREPLY && f->code < SMTP_EREPLY + 600)
            return f->code - SMTP_EREPLY;
    return 0;
}

/* ---- The session's end ------------------------------------------------------------------ */

static void sess_free(smtp_sess *s)
{
    if (s->timer)
        reactor_timer_cancel(s->timer);
    smtp_reply_clear(&s->rp);
    free(s->host);
    free(s->from);
    for (size_t i = 0; i < s->n_to; i++)
        free(s->to[i]);
    free(s->to);
    free(s->data);
    free((char *)s->o.helo_name);
    free((char *)s->o.username);
    if (s->o.password) {
        /* Not left lying in freed memory. */
        volatile char *p = (volatile char *)s->o.password;
        while (*p)
            *p++ = 0;
        free((char *)s->o.password);
    }
    free((char *)s->o.auth_mechanism);
    if (s->o.tls)
        tls_context_unref(s->o.tls);
    smtp_result_free(s->res);
    free(s);
}

static void fire(smtp_sess *s, deferred_result res)
{
    deferred *d = s->d;
    s->d = NULL;
    if (!d) {
        deferred_result_clear(&res);
        return;
    }
    deferred_callback(d, res);
    deferred_unref(d);
}

DEFERRED__PRINTF(3, 4)
static void fail(smtp_sess *s, int err, const char *fmt, ...)
{
    if (!s->d)
        return;
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fire(s, deferred_failure_result(deferred_failure_new(err, "%s", msg)));
}

static transport *sess_transport(smtp_sess *s)
{
    return s->lr.base.transport;
}

static void disarm(smtp_sess *s)
{
    if (s->timer)
        reactor_timer_cancel(s->timer);
    s->timer = NULL;
}

/* Ends the connection: politely (QUIT, then close after our output) when the server
 * is sane, at once otherwise. connection_lost frees the session. */
static void sess_close(smtp_sess *s, int polite)
{
    disarm(s);
    transport *t = sess_transport(s);
    if (s->state == ST_CLOSED || !t)
        return;
    s->state = ST_CLOSED;
    if (polite) {
        transport_write(t, "QUIT\r\n", 6);
        transport_lose_connection(t);
    } else {
        transport_abort_connection(t);
    }
}

/* ---- Steps -------------------------------------------------------------------------------- */

/* What the state is doing, for messages: "RCPT TO <x@y>". */
static void step_name(smtp_sess *s, char *buf, size_t n)
{
    switch (s->state) {
    case ST_CONNECTING: snprintf(buf, n, "connect to %s:%d", s->host, s->port); break;
    case ST_GREETING: snprintf(buf, n, "greeting"); break;
    case ST_EHLO: snprintf(buf, n, "EHLO"); break;
    case ST_HELO: snprintf(buf, n, "HELO"); break;
    case ST_STARTTLS: snprintf(buf, n, "STARTTLS"); break;
    case ST_AUTH_PLAIN: snprintf(buf, n, "AUTH PLAIN"); break;
    case ST_AUTH_LOGIN:
    case ST_AUTH_LOGIN_USER:
    case ST_AUTH_LOGIN_PASS: snprintf(buf, n, "AUTH LOGIN"); break;
    case ST_MAIL: snprintf(buf, n, "MAIL FROM <%.200s>", s->from); break;
    case ST_RCPT:
        snprintf(buf, n, "RCPT TO <%.200s>", s->rcpt < s->n_to ? s->to[s->rcpt] : "");
        break;
    case ST_DATA: snprintf(buf, n, "DATA"); break;
    case ST_BODY: snprintf(buf, n, "end of data"); break;
    case ST_QUIT: snprintf(buf, n, "QUIT"); break;
    default: snprintf(buf, n, "SMTP"); break;
    }
}

/* The server's words on one line, printable: at most n-1 bytes. */
static void one_line(const char *text, size_t len, char *buf, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; i < len && j + 1 < n; i++) {
        unsigned char c = (unsigned char)text[i];
        buf[j++] = c == '\n' ? ' ' : (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    buf[j] = 0;
}

/* The server refused the current step: fail with its reply, say QUIT. */
static void refused(smtp_sess *s)
{
    char step[300], words[400];
    step_name(s, step, sizeof step);
    one_line(s->rp.text, s->rp.len, words, sizeof words);
    if (s->rp.code < 400) /* a positive reply this step does not allow: not SMTP */
        fail(s, EPROTO, "%s: unexpected reply: %d %s", step, s->rp.code, words);
    else
        fail(s, SMTP_EREPLY + s->rp.code, "%s: %d %s", step, s->rp.code, words);
    sess_close(s, 1);
}

static void on_timeout(reactor *r, void *arg)
{
    (void)r;
    smtp_sess *s = arg;
    s->timer = NULL;
    char step[300];
    step_name(s, step, sizeof step);
    fail(s, ETIMEDOUT, "%s: no reply from %s:%d after %g s", step, s->host, s->port, s->timer_s);
    sess_close(s, 0);
}

static void arm(smtp_sess *s, double seconds)
{
    disarm(s);
    s->timer_s = seconds;
    s->timer = reactor_call_later(s->r, seconds, on_timeout, s);
    if (!s->timer) {
        fail(s, ENOMEM, "out of memory");
        sess_close(s, 0);
    }
}

/* Sends a command and waits for its reply in `state` (at most `timeout` seconds). */
static void command(smtp_sess *s, int state, double timeout, const char *fmt, ...)
    DEFERRED__PRINTF(4, 5);
static void command(smtp_sess *s, int state, double timeout, const char *fmt, ...)
{
    char line[1200];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 2, fmt, ap);
    va_end(ap);
    s->state = state;
    if (n < 0 || (size_t)n >= sizeof line - 2) {
        fail(s, EINVAL, "command too long");
        sess_close(s, 0);
        return;
    }
    /* Commands end with CRLF; replies are split at LF (a lone LF is tolerated there). */
    memcpy(line + n, "\r\n", 2);
    int rc = transport_write(sess_transport(s), line, (size_t)n + 2);
    if (rc < 0) {
        char step[300];
        step_name(s, step, sizeof step);
        fail(s, -rc, "%s: could not send: %s", step, twistc_strerror(rc));
        sess_close(s, 0);
        return;
    }
    arm(s, timeout);
}

static void send_ehlo(smtp_sess *s)
{
    s->ext = 0;
    command(s, ST_EHLO, s->o.timeout_greeting, "EHLO %s", s->o.helo_name);
}

static void send_mail(smtp_sess *s)
{
    char opts[64] = "";
    size_t n = 0;
    if (s->eight && (s->ext & EXT_8BITMIME))
        n += (size_t)snprintf(opts + n, sizeof opts - n, " BODY=8BITMIME");
    if (s->ext & EXT_SIZE)
        snprintf(opts + n, sizeof opts - n, " SIZE=%zu", s->data_len);
    command(s, ST_MAIL, s->o.timeout_mail, "MAIL FROM:<%s>%s", s->from, opts);
}

static void send_rcpt(smtp_sess *s)
{
    command(s, ST_RCPT, s->o.timeout_rcpt, "RCPT TO:<%s>", s->to[s->rcpt]);
}

/* Sends a base64 of data as a line (AUTH); on failure the session is failed. */
static int send_b64(smtp_sess *s, const void *data, size_t len, int state, const char *prefix)
{
    char *b = smtp__base64(data, len);
    if (!b) {
        fail(s, ENOMEM, "out of memory");
        sess_close(s, 0);
        return -1;
    }
    command(s, state, s->o.timeout_greeting, "%s%s", prefix, b);
    memset(b, 0, strlen(b)); /* it holds the password */
    free(b);
    return 0;
}

static void send_auth(smtp_sess *s)
{
    const char *m = s->o.auth_mechanism;
    if (!s->is_tls && !s->o.allow_plaintext_auth) {
        fail(s, EPERM,
             "AUTH: refusing to send the password to %s:%d without TLS "
             "(STARTTLS, or allow_plaintext_auth)", s->host, s->port);
        sess_close(s, 1);
        return;
    }
    int plain = (s->ext & EXT_AUTH_PLAIN) && (!m || strcasecmp(m, "PLAIN") == 0);
    int login = (s->ext & EXT_AUTH_LOGIN) && (!m || strcasecmp(m, "LOGIN") == 0);
    if (!plain && !login) {
        fail(s, ENOTSUP, "AUTH: %s:%d %s", s->host, s->port,
             !(s->ext & EXT_AUTH) ? "does not offer AUTH"
                                  : "offers no AUTH mechanism we speak (PLAIN, LOGIN)");
        sess_close(s, 1);
        return;
    }
    if (plain) {
        /* authzid NUL authcid NUL passwd (RFC 4616), as the initial response. */
        size_t ul = strlen(s->o.username), pl = strlen(s->o.password);
        char *buf = malloc(ul + pl + 2);
        if (!buf) {
            fail(s, ENOMEM, "out of memory");
            sess_close(s, 0);
            return;
        }
        buf[0] = 0;
        memcpy(buf + 1, s->o.username, ul);
        buf[1 + ul] = 0;
        memcpy(buf + 2 + ul, s->o.password, pl);
        send_b64(s, buf, ul + pl + 2, ST_AUTH_PLAIN, "AUTH PLAIN ");
        memset(buf, 0, ul + pl + 2);
        free(buf);
        return;
    }
    command(s, ST_AUTH_LOGIN, s->o.timeout_greeting, "AUTH LOGIN");
}

/* After EHLO/HELO: STARTTLS, AUTH, or MAIL, whichever comes next. */
static void after_hello(smtp_sess *s)
{
    if (s->want_tls && !s->is_tls) {
        if (s->ext & EXT_STARTTLS) {
            command(s, ST_STARTTLS, s->o.timeout_greeting, "STARTTLS");
            return;
        }
        if (s->o.starttls == SMTP_STARTTLS_REQUIRED) {
            fail(s, ENOTSUP, "STARTTLS: required, but %s:%d does not offer it", s->host, s->port);
            sess_close(s, 1);
            return;
        }
    }
    if (s->o.username && !s->authed) {
        send_auth(s);
        return;
    }
    send_mail(s);
}

/* The EHLO reply's lines after the first: one extension each ("AUTH PLAIN LOGIN"). */
static void read_extensions(smtp_sess *s)
{
    const char *p = memchr(s->rp.text, '\n', s->rp.len);
    const char *end = s->rp.text + s->rp.len;
    while (p && p < end) {
        const char *l = p + 1;
        const char *e = memchr(l, '\n', (size_t)(end - l));
        if (!e)
            e = end;
        size_t n = (size_t)(e - l);
        char kw[32];
        size_t k = 0;
        while (k < n && k < sizeof kw - 1 && l[k] != ' ' && l[k] != '=') {
            kw[k] = l[k];
            k++;
        }
        kw[k] = 0;
        if (!strcasecmp(kw, "STARTTLS"))
            s->ext |= EXT_STARTTLS;
        else if (!strcasecmp(kw, "8BITMIME"))
            s->ext |= EXT_8BITMIME;
        else if (!strcasecmp(kw, "SIZE"))
            s->ext |= EXT_SIZE;
        else if (!strcasecmp(kw, "AUTH")) {
            s->ext |= EXT_AUTH;
            /* The mechanisms, space separated. */
            const char *m = l + k;
            while (m < e) {
                while (m < e && (*m == ' ' || *m == '='))
                    m++;
                const char *me = m;
                while (me < e && *me != ' ')
                    me++;
                if (me - m == 5 && !strncasecmp(m, "PLAIN", 5))
                    s->ext |= EXT_AUTH_PLAIN;
                if (me - m == 5 && !strncasecmp(m, "LOGIN", 5))
                    s->ext |= EXT_AUTH_LOGIN;
                m = me;
            }
        }
        p = e < end ? e : NULL;
    }
}

static void data_progress(reactor *r, void *arg);

static void send_body(smtp_sess *s)
{
    s->state = ST_BODY;
    transport *t = sess_transport(s);
    int rc = transport_write(t, s->data, s->data_len);
    free(s->data);
    s->data = NULL;
    if (rc < 0) {
        fail(s, -rc, "sending the message: %s", twistc_strerror(rc));
        sess_close(s, 0);
        return;
    }
    /* RFC 5321 4.5.3.2.5/6: each block must go out within the block timeout; then the
     * final "." has its own, longer one. Checked by polling the output still pending. */
    s->last_pending = transport_pending(t);
    if (s->last_pending == 0) {
        arm(s, s->o.timeout_final);
        return;
    }
    disarm(s);
    s->timer_s = s->o.timeout_block;
    s->timer = reactor_call_later(s->r, s->o.timeout_block, data_progress, s);
    if (!s->timer) {
        fail(s, ENOMEM, "out of memory");
        sess_close(s, 0);
    }
}

static void data_progress(reactor *r, void *arg)
{
    (void)r;
    smtp_sess *s = arg;
    s->timer = NULL;
    size_t pending = transport_pending(sess_transport(s));
    if (pending == 0) {
        arm(s, s->o.timeout_final);
        return;
    }
    if (pending >= s->last_pending) {
        fail(s, ETIMEDOUT, "sending the message to %s:%d: no progress for %g s (%zu bytes left)",
             s->host, s->port, s->o.timeout_block, pending);
        sess_close(s, 0);
        return;
    }
    s->last_pending = pending;
    s->timer = reactor_call_later(s->r, s->o.timeout_block, data_progress, s);
    if (!s->timer) {
        fail(s, ENOMEM, "out of memory");
        sess_close(s, 0);
    }
}

static void add_refused(smtp_sess *s)
{
    smtp_result *res = s->res;
    smtp_refused *v = realloc(res->refused, (res->n_refused + 1) * sizeof *v);
    if (!v)
        return; /* counted as refused anyway: accepted is not increased */
    res->refused = v;
    v += res->n_refused;
    v->address = strdup(s->to[s->rcpt]);
    v->text = strdup(s->rp.text);
    v->code = s->rp.code;
    if (!v->address || !v->text) {
        free(v->address);
        free(v->text);
        return;
    }
    res->n_refused++;
}

/* A complete reply for the current state. */
static void on_reply(smtp_sess *s)
{
    smtp_reply *rp = &s->rp;
    int code = rp->code;
    switch (s->state) {
    case ST_GREETING:
        if (code != 220)
            { refused(s); return; }
        send_ehlo(s);
        return;
    case ST_EHLO:
        if (code == 250) {
            read_extensions(s);
            after_hello(s);
        } else if (code >= 500 && !s->is_tls) {
            /* An old server (RFC 821): HELO, no extensions. */
            command(s, ST_HELO, s->o.timeout_greeting, "HELO %s", s->o.helo_name);
        } else {
            refused(s);
        }
        return;
    case ST_HELO:
        if (code != 250)
            { refused(s); return; }
        s->ext = 0;
        after_hello(s);
        return;
    case ST_STARTTLS: {
        if (code != 220)
            { refused(s); return; }
        /* Whatever came after the 220 in clear is not trusted (it could have been
         * injected before TLS protects the stream): dropped. */
        line_receiver_clear_line_buffer(&s->lr);
        int rc = transport_start_tls(sess_transport(s), s->o.tls, 1);
        if (rc < 0) {
            fail(s, -rc, "STARTTLS: %s", twistc_strerror(rc));
            sess_close(s, 0);
            return;
        }
        s->is_tls = 1;
        send_ehlo(s); /* kept until the handshake is done */
        return;
    }
    case ST_AUTH_PLAIN:
    case ST_AUTH_LOGIN_PASS:
        if (code != 235)
            { refused(s); return; }
        s->authed = 1;
        send_mail(s);
        return;
    case ST_AUTH_LOGIN:
        if (code != 334)
            { refused(s); return; }
        send_b64(s, s->o.username, strlen(s->o.username), ST_AUTH_LOGIN_USER, "");
        return;
    case ST_AUTH_LOGIN_USER:
        if (code != 334)
            { refused(s); return; }
        send_b64(s, s->o.password, strlen(s->o.password), ST_AUTH_LOGIN_PASS, "");
        return;
    case ST_MAIL:
        if (code != 250)
            { refused(s); return; }
        s->rcpt = 0;
        send_rcpt(s);
        return;
    case ST_RCPT:
        if (code == 250 || code == 251)
            s->res->accepted++;
        else if (code >= 400)
            add_refused(s);
        else
            { refused(s); return; } /* 2xx/3xx other than 250/251: not a RCPT answer */
        if (++s->rcpt < s->n_to) {
            send_rcpt(s);
            return;
        }
        if (s->res->accepted == 0) {
            char words[400];
            one_line(rp->text, rp->len, words, sizeof words);
            fail(s, SMTP_EREPLY + code, "RCPT TO <%.200s>: %d %s (every recipient was refused)",
                 s->to[s->n_to - 1], code, words);
            sess_close(s, 1);
            return;
        }
        command(s, ST_DATA, s->o.timeout_data, "DATA");
        return;
    case ST_DATA:
        if (code != 354)
            { refused(s); return; }
        send_body(s);
        return;
    case ST_BODY: {
        if (code != 250)
            { refused(s); return; }
        smtp_result *res = s->res;
        s->res = NULL;
        res->code = code;
        res->text = strdup(rp->text);
        res->tls = s->is_tls;
        res->authenticated = s->authed;
        fire(s, deferred_ptr(res, smtp_result_free));
        command(s, ST_QUIT, s->o.timeout_greeting, "QUIT");
        return;
    }
    case ST_QUIT: /* 221 (or anything): done, close after our output like the server */
        disarm(s);
        s->state = ST_CLOSED;
        transport_lose_connection(sess_transport(s));
        return;
    default:
        return;
    }
}

/* ---- The LineReceiver ---------------------------------------------------------------- */

static void sess_made(line_receiver *lr)
{
    smtp_sess *s = (smtp_sess *)lr;
    s->state = ST_GREETING;
    arm(s, s->o.timeout_greeting);
}

static int sess_line(line_receiver *lr, const char *line, size_t len)
{
    smtp_sess *s = (smtp_sess *)lr;
    if (s->state == ST_CLOSED)
        return 0;
    const char *why = "";
    int rc = smtp_reply_line(&s->rp, line, len, &why);
    if (rc < 0) {
        char step[300], words[80];
        step_name(s, step, sizeof step);
        one_line(line, len, words, sizeof words);
        fail(s, -rc, "%s: %s: \"%s\"", step, why, words);
        sess_close(s, 0);
        return rc;
    }
    if (rc == 0)
        return 0;
    if (s->state == ST_CONNECTING) {
        /* Cannot happen: lines come only once connected. */
        smtp_reply_reset(&s->rp);
        return 0;
    }
    on_reply(s);
    smtp_reply_reset(&s->rp);
    return 0;
}

static int sess_too_long(line_receiver *lr, const char *data, size_t len)
{
    (void)data;
    (void)len;
    smtp_sess *s = (smtp_sess *)lr;
    char step[300];
    step_name(s, step, sizeof step);
    fail(s, EMSGSIZE, "%s: reply line longer than %zu bytes", step, s->o.max_line);
    sess_close(s, 0);
    return -EMSGSIZE;
}

static void sess_lost(line_receiver *lr, const protocol_reason *reason)
{
    smtp_sess *s = (smtp_sess *)lr;
    disarm(s);
    if (s->d) {
        char step[300], why[300];
        step_name(s, step, sizeof step);
        protocol_reason_format(reason, why, sizeof why);
        int err = reason->kind == PROTOCOL_TLS_VERIFY      ? EACCES
                  : reason->kind == PROTOCOL_TLS_HANDSHAKE ? EPROTO
                  : reason->kind == PROTOCOL_TLS_ERROR     ? EPROTO
                                                           : ECONNRESET;
        if (reason->kind == PROTOCOL_TLS_VERIFY || reason->kind == PROTOCOL_TLS_HANDSHAKE)
            fail(s, err, "STARTTLS with %s:%d failed: %s", s->host, s->port, why);
        else
            fail(s, err, "%s: connection to %s:%d closed before the end: %s", step, s->host,
                 s->port, why);
    }
    sess_free(s);
}

static const line_receiver_ops sess_ops = {
    .delimiter = "\n",
    .connection_made = sess_made,
    .line_received = sess_line,
    .line_length_exceeded = sess_too_long,
    .connection_lost = sess_lost,
};

/* ---- Connecting, cancelling ----------------------------------------------------------- */

static deferred_result connected(deferred_result r, void *arg)
{
    smtp_sess *s = arg;
    deferred *cd = s->cd;
    s->cd = NULL;
    deferred_unref(cd);
    deferred_result_clear(&r);
    return deferred_none();
}

static deferred_result connect_failed(deferred_result r, void *arg)
{
    smtp_sess *s = arg;
    deferred *cd = s->cd;
    s->cd = NULL;
    if (s->d) {
        deferred_failure *f = deferred_failure_ref(r.u.failure);
        char step[300];
        step_name(s, step, sizeof step);
        fire(s, deferred_failure_result(
                    deferred_failure_wrap(f, f->code, "%s: %s", step, f->message)));
    }
    deferred_result_clear(&r);
    sess_free(s); /* the protocol never ran */
    deferred_unref(cd);
    return deferred_none();
}

static void cancel(deferred *d, void *arg)
{
    (void)d;
    smtp_sess *s = arg;
    char step[300];
    step_name(s, step, sizeof step);
    fail(s, ECANCELED, "%s: cancelled", step);
    if (s->cd)
        deferred_cancel(s->cd); /* connect_failed frees s */
    else
        sess_close(s, 0);
}

/* ---- smtp_send ------------------------------------------------------------------------- */

/* An already-failed Deferred for a bad argument (deferred_failure_new formats). */
#define fail_now(err, ...) deferred_fail(deferred_failure_new((err), __VA_ARGS__))

/* An address we can put between < and > on a command line. */
static int bad_address(const char *a)
{
    size_t n = strlen(a);
    if (n > 900)
        return 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)a[i];
        if (c <= ' ' || c == '<' || c == '>' || c == 0x7f)
            return 1;
    }
    return 0;
}

static int bad_name(const char *a)
{
    if (!*a || strlen(a) > 255)
        return 1;
    for (const char *p = a; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return 1;
    return 0;
}

static char *dup_opt(const char *s, int *oom)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *oom = 1;
    return d;
}

static double pick(double all, double one, double def)
{
    return all > 0 ? all : one > 0 ? one : def;
}

static int fill_options(smtp_sess *s, const smtp_options *in, char *err, size_t errlen)
{
    smtp_options o;
    if (in)
        o = *in;
    else
        memset(&o, 0, sizeof o);
    int oom = 0;
    char host[256] = "";
    if (!o.helo_name) {
        if (gethostname(host, sizeof host - 1) < 0 || bad_name(host))
            snprintf(host, sizeof host, "localhost");
        o.helo_name = host;
    }
    o.helo_name = dup_opt(o.helo_name, &oom);
    o.username = dup_opt(o.username, &oom);
    o.password = dup_opt(o.password, &oom);
    o.auth_mechanism = dup_opt(o.auth_mechanism, &oom);
    o.timeout_greeting = pick(o.timeout, o.timeout_greeting, 300);
    o.timeout_mail = pick(o.timeout, o.timeout_mail, 300);
    o.timeout_rcpt = pick(o.timeout, o.timeout_rcpt, 300);
    o.timeout_data = pick(o.timeout, o.timeout_data, 120);
    o.timeout_block = pick(o.timeout, o.timeout_block, 180);
    o.timeout_final = pick(o.timeout, o.timeout_final, 600);
    if (!o.max_line)
        o.max_line = SMTP_DEFAULT_MAX_LINE;
    if (!o.max_reply)
        o.max_reply = SMTP_DEFAULT_MAX_REPLY;
    if (o.starttls == SMTP_STARTTLS_DEFAULT)
        o.starttls = o.tls || o.ca_file ? SMTP_STARTTLS_IF_OFFERED : SMTP_STARTTLS_NEVER;
    s->want_tls = o.starttls == SMTP_STARTTLS_IF_OFFERED || o.starttls == SMTP_STARTTLS_REQUIRED;
    const char *ca = o.ca_file;
    o.ca_file = NULL; /* only used here, to make the context */
    if (o.tls)
        tls_context_ref(o.tls);
    s->o = o;
    if (oom)
        return -ENOMEM;
    if (s->want_tls && !s->o.tls) {
        s->o.tls = tls_context_new_client(ca, NULL, err, errlen);
        if (!s->o.tls)
            return -(errno ? errno : ENOMEM);
    }
    return 0;
}

deferred *smtp_send(reactor *r, const char *host, int port, const char *from,
                    const char *const *to, size_t n_to, const void *msg, size_t len,
                    const smtp_options *o)
{
    if (!r || !host || !from || !to || (!msg && len))
        return fail_now(EINVAL, "smtp_send: NULL reactor, host, sender, recipients or message");
    if (n_to == 0)
        return fail_now(EINVAL, "smtp_send: no recipient");
    if (port < 1 || port > 65535)
        return fail_now(EINVAL, "smtp_send: bad port %d", port);
    if (*from && bad_address(from))
        return fail_now(EINVAL, "smtp_send: bad sender address \"%.100s\"", from);
    for (size_t i = 0; i < n_to; i++)
        if (!to[i] || !*to[i] || bad_address(to[i]))
            return fail_now(EINVAL, "smtp_send: bad recipient address \"%.100s\"",
                            to[i] ? to[i] : "(null)");
    if (o && o->helo_name && bad_name(o->helo_name))
        return fail_now(EINVAL, "smtp_send: bad HELO name \"%.100s\"", o->helo_name);
    if (o && (!o->username != !o->password))
        return fail_now(EINVAL, "smtp_send: username without password or the reverse");
    if (o && o->username && (strchr(o->username, '\n') || strchr(o->password, '\n')))
        return fail_now(EINVAL, "smtp_send: a line end in the username or password");
    if (o && o->auth_mechanism && strcasecmp(o->auth_mechanism, "PLAIN") != 0 &&
        strcasecmp(o->auth_mechanism, "LOGIN") != 0)
        return fail_now(EINVAL, "smtp_send: AUTH mechanism \"%.40s\" not supported (PLAIN, LOGIN)",
                        o->auth_mechanism);
    smtp_sess *s = calloc(1, sizeof *s);
    if (!s)
        return fail_now(ENOMEM, "out of memory");
    s->r = r;
    s->port = port;
    s->state = ST_CONNECTING;
    char err[300] = "";
    int rc = fill_options(s, o, err, sizeof err);
    s->ops = sess_ops;
    s->ops.max_length = s->o.max_line;
    line_receiver_init(&s->lr, &s->ops);
    if (rc == 0) {
        smtp_reply_init(&s->rp, s->o.max_reply);
        s->host = strdup(host);
        s->from = strdup(from);
        s->to = calloc(n_to, sizeof *s->to);
        s->res = calloc(1, sizeof *s->res);
        s->data = smtp__encode_data(msg ? msg : "", len, &s->data_len, &s->eight);
        if (!s->host || !s->from || !s->to || !s->res || !s->data)
            rc = -ENOMEM;
        for (size_t i = 0; rc == 0 && i < n_to; i++, s->n_to++)
            if (!(s->to[i] = strdup(to[i])))
                rc = -ENOMEM;
    }
    if (rc < 0) {
        deferred *d = err[0] ? fail_now(-rc, "smtp_send: no TLS context: %s", err)
                             : fail_now(-rc, "smtp_send: %s", twistc_strerror(rc));
        sess_free(s);
        return d;
    }
    s->d = deferred_new_cancellable(cancel, s);
    if (!s->d) {
        sess_free(s);
        return NULL;
    }
    deferred *ret = deferred_ref(s->d);
    s->cd = reactor_connect_protocol(r, host, port, &s->lr.base, s->o.timeout_greeting);
    if (!s->cd) {
        fail(s, errno ? errno : ENOMEM, "connect to %s:%d: %s", host, port,
             twistc_strerror(errno ? errno : ENOMEM));
        sess_free(s);
        return ret;
    }
    deferred_add_callbacks(s->cd, connected, connect_failed, s);
    return ret;
}
