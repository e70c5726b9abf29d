/* An SMTP client (RFC 5321; Twisted's twisted.mail.smtp.sendmail): one message to one
 * or more recipients, a Deferred for the outcome.
 *
 *     const char *to[] = {"ann@example.org", "bob@example.org"};
 *     deferred *d = smtp_send(r, "mail.example.org", 25, "me@example.org", to, 2,
 *                             msg, len, NULL);
 *     // fires with an smtp_result (PTR): how many recipients took it, which refused
 *
 * What it does (docs/smtp.md has the details):
 *   - Connects, reads the 220 greeting, says EHLO (HELO when EHLO is refused), reads
 *     multi-line replies ("250-..." up to "250 ..."), MAIL FROM, one RCPT TO per
 *     recipient, DATA, the message, ".", QUIT. It is a LineReceiver protocol (docs/
 *     protocols.md shows its shape).
 *   - Recipients the server refuses are listed in the result with the server's code and
 *     words; the message goes to the others. All refused: the send fails.
 *   - The message is sent with CRLF line ends (a bare LF becomes CRLF, a missing last
 *     line end is added) and dot-stuffed (a line starting with "." arrives intact).
 *     8-bit bytes are sent as they are (BODY=8BITMIME when the server offers it),
 *     SIZE= is declared when the server offers SIZE.
 *   - STARTTLS (o->starttls): when the server offers it and TLS is configured (o->tls or
 *     o->ca_file), or always when asked (SMTP_STARTTLS_REQUIRED fails if the server
 *     does not offer it); then EHLO again. The server's certificate is checked against
 *     host (the system's CAs, plus o->ca_file), as https is.
 *   - AUTH PLAIN or LOGIN with o->username/o->password, after STARTTLS; over a plain
 *     connection only when o->allow_plaintext_auth.
 *   - Every step has a timeout (RFC 5321 4.5.3.2: greeting 5 min, MAIL 5 min, RCPT
 *     5 min, DATA 2 min, each data block 3 min, the final "." 10 min; o->timeout sets
 *     them all). Reply lines longer than o->max_line and replies larger than
 *     o->max_reply are refused.
 *   - deferred_cancel() fails the send with ECANCELED and aborts its connection.
 *
 * Errors: the Deferred fails with a message naming the step, and the server's reply
 * when there is one: "RCPT TO <x@y>: 550 5.1.1 no such user". Codes:
 *   SMTP_EREPLY + code  the server said no (4xx/5xx) at that step (smtp_failure_reply())
 *   EINVAL        bad arguments (a NULL, no recipient, an address with CR, LF, <, >, or
 *                 a space): nothing was sent
 *   EPROTO        a reply that is not SMTP (garbage), a reply the step does not allow,
 *                 a failed TLS handshake or TLS error
 *   EACCES        STARTTLS: the server's certificate was refused (OpenSSL's why)
 *   ENOTSUP       STARTTLS required but not offered; AUTH asked for but not offered (or
 *                 no mechanism we speak)
 *   EPERM         AUTH refused by us: the connection is not encrypted
 *   EMSGSIZE      a reply line longer than max_line, a reply larger than max_reply (the
 *                 connection is dropped at once)
 *   ETIMEDOUT     a step's timeout;  ECANCELED  deferred_cancel, reactor shutting down
 *   ECONNRESET    the server closed the connection before the end (also ECONNREFUSED,
 *                 EHOSTUNREACH, DEFERRED_EDNS, ... while connecting)
 *
 * Ownership: smtp_send copies everything it is given (addresses, message, options: the
 * caller may free them when it returns) and holds a reference on o->tls while it runs.
 * The Deferred returned is one reference, the caller's. The smtp_result it fires with is
 * a DEFERRED_PTR whose free_fn is smtp_result_free: it belongs to the result (take it
 * with deferred_result_take to keep it). The connection is the library's: it ends after
 * QUIT, on a failure, on cancel, or when the reactor is freed.
 *
 * The reply parser (smtp_reply_*) works alone: feed it lines, it says when a reply is
 * complete (t/fuzz/fuzz_smtp_reply.c drives it).
 *
 * Threads: reactor thread only. */
#ifndef TWISTC_SMTP_H
#define TWISTC_SMTP_H

#include <stddef.h>

#include <twistc/deferred.h>
#include <twistc/reactor.h>
#include <twistc/twistc_base.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A failure for a refusal by the server has code SMTP_EREPLY + its reply code (22550). */
enum { SMTP_EREPLY = 22000 };

/* The reply code an smtp_send failure carries (f or a failure it wraps), or 0. */
TWISTC_API int smtp_failure_reply(const deferred_failure *f);

/* ---- Options ------------------------------------------------------------------------ */

enum {
    SMTP_STARTTLS_DEFAULT = 0, /* IF_OFFERED when o->tls or o->ca_file is set, else NEVER */
    SMTP_STARTTLS_NEVER,
    SMTP_STARTTLS_IF_OFFERED,  /* use it when the server offers it */
    SMTP_STARTTLS_REQUIRED,    /* fail (ENOTSUP) when the server does not offer it */
};

struct tls_context;

typedef struct smtp_options {
    const char *helo_name;     /* the name we give in EHLO/HELO; NULL: this host's name */
    struct tls_context *tls;   /* STARTTLS with this client context (twistc/tls.h) */
    const char *ca_file;       /* or a new client context trusting these CAs too (PEM) */
    int starttls;              /* SMTP_STARTTLS_* */
    const char *username;      /* AUTH with these (both set) */
    const char *password;
    const char *auth_mechanism; /* "PLAIN" or "LOGIN"; NULL: PLAIN if offered, else LOGIN */
    int allow_plaintext_auth;  /* 1: AUTH over a connection without TLS too */
    double timeout;            /* > 0: every step's timeout (seconds), else each below */
    double timeout_greeting;   /* connect + 220 greeting (and EHLO, STARTTLS, AUTH);
                                * <= 0: 300 */
    double timeout_mail;       /* MAIL FROM reply; <= 0: 300 */
    double timeout_rcpt;       /* each RCPT TO reply; <= 0: 300 */
    double timeout_data;       /* DATA's 354 reply; <= 0: 120 */
    double timeout_block;      /* sending the message: no progress for this long;
                                * <= 0: 180 */
    double timeout_final;      /* the reply to the final "."; <= 0: 600 */
    size_t max_line;           /* longest reply line; 0: SMTP_DEFAULT_MAX_LINE */
    size_t max_reply;          /* largest reply (all its lines); 0: SMTP_DEFAULT_MAX_REPLY */
} smtp_options;

#define SMTP_DEFAULT_MAX_LINE 4096u
#define SMTP_DEFAULT_MAX_REPLY (64u * 1024u)

/* ---- Results ------------------------------------------------------------------------ */

typedef struct smtp_refused {
    char *address;  /* the recipient as given */
    int code;       /* the server's reply code (550) */
    char *text;     /* its words ("5.1.1 no such user here"; lines joined by '\n') */
} smtp_refused;

typedef struct smtp_result {
    size_t accepted;        /* recipients the server took the message for (>= 1) */
    size_t n_refused;
    smtp_refused *refused;  /* n_refused entries, in the order given */
    int code;               /* the reply to the final "." (250) */
    char *text;             /* and its words ("2.0.0 Ok: queued as ...") */
    int tls;                /* 1: the message went over TLS (STARTTLS) */
    int authenticated;      /* 1: AUTH succeeded */
} smtp_result;

/* Frees the result and everything in it. NULL ok. */
TWISTC_API void smtp_result_free(void *result);
/* The smtp_result inside smtp_send's result, or NULL. Borrowed. */
TWISTC_API smtp_result *smtp_result_get(const deferred_result *r);
/* Recipients accepted; refused ones; the i-th refused address, code, text (NULL/0 when
 * i is out of range). */
TWISTC_API size_t smtp_result_accepted(const smtp_result *res);
TWISTC_API size_t smtp_result_refused_count(const smtp_result *res);
TWISTC_API const char *smtp_result_refused_address(const smtp_result *res, size_t i);
TWISTC_API int smtp_result_refused_code(const smtp_result *res, size_t i);
TWISTC_API const char *smtp_result_refused_text(const smtp_result *res, size_t i);

/* ---- Sending ------------------------------------------------------------------------ */

/* Sends msg (len bytes: headers, blank line, body; any line ends) from `from` to the
 * n_to addresses of `to` through the server at host:port. from may be "" (a bounce:
 * MAIL FROM:<>). o may be NULL (defaults). Fires with an smtp_result (see ownership),
 * fails as listed above. Bad arguments give an already-failed Deferred (EINVAL with the
 * reason); NULL+ENOMEM only when even that cannot be made. */
TWISTC_API deferred *smtp_send(reactor *r, const char *host, int port, const char *from,
                               const char *const *to, size_t n_to, const void *msg,
                               size_t len, const smtp_options *o);

/* ---- The reply parser --------------------------------------------------------------- */

/* One reply: "250-first line" ... "250 last line" (RFC 5321 4.2). The lines' texts
 * (after the code and its separator) are kept joined by '\n'. */
typedef struct smtp_reply {
    int code;         /* 250; 0 until the first line */
    char *text;       /* NUL-terminated (never NULL once a line was fed), malloc'd */
    size_t len;       /* strlen(text) unless a line held a NUL byte */
    size_t lines;     /* lines fed so far */
    size_t max_reply; /* largest text accepted (0: SMTP_DEFAULT_MAX_REPLY) */
    size_t cap;       /* private */
    int done;         /* 1: the last line came */
} smtp_reply;

/* Empty, with a limit for the whole reply (0: SMTP_DEFAULT_MAX_REPLY). */
TWISTC_API void smtp_reply_init(smtp_reply *rp, size_t max_reply);
/* One line, without its CRLF (a trailing CR is dropped too). Returns 1 when it was the
 * reply's last line, 0 when more lines follow, -EPROTO for a line that is not a reply
 * line (no 3-digit code from 200 to 599, a bad separator, a code that differs from the
 * first line's, a line after the last one), -EMSGSIZE past max_reply, -ENOMEM. After an
 * error the reply is left as it was. *why (may be NULL) gets a static text on error. */
TWISTC_API int smtp_reply_line(smtp_reply *rp, const char *line, size_t len, const char **why);
/* Ready for the next reply (keeps the buffer and the limit). */
TWISTC_API void smtp_reply_reset(smtp_reply *rp);
/* Frees what rp holds (rp is then empty, reusable after smtp_reply_init). */
TWISTC_API void smtp_reply_clear(smtp_reply *rp);

#ifdef __cplusplus
}
#endif
#endif
