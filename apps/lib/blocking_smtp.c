/* blocking_smtp_send: smtplib's sendmail on a blocking socket (blocking_smtp.h). */
#include "blocking_smtp.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <twistc/smtp.h>


struct conn {
    int fd;
    char buf[4096];
    size_t start, end; /* unread bytes are buf[start..end) */
    char *err;
    size_t errlen;
};

static int fail(struct conn *c, const char *fmt, const char *a, const char *b)
{
    snprintf(c->err, c->errlen, fmt, a, b);
    return -1;
}

static int send_all(struct conn *c, const char *p, size_t n, const char *step)
{
    while (n > 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return fail(c, "sending %s: %s", step,
                        errno == EAGAIN || errno == EWOULDBLOCK ? "timed out" : strerror(errno));
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* One reply line (CRLF or LF stripped) into line; its length, or -1 on EOF, error,
 * timeout, a line too long. */
static ssize_t read_line(struct conn *c, char *line, size_t n, const char *step)
{
    size_t len = 0;
    for (;;) {
        while (c->start < c->end) {
            char ch = c->buf[c->start++];
            if (ch == '\n') {
                if (len > 0 && line[len - 1] == '\r')
                    len--;
                line[len] = '\0';
                return (ssize_t)len;
            }
            if (len + 1 >= n)
                return fail(c, "the reply to %s has a line longer than %s bytes", step, "4096");
            line[len++] = ch;
        }
        ssize_t got = recv(c->fd, c->buf, sizeof c->buf, 0); /* blocks: the lesson's point */
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return fail(c, "timed out waiting for the reply to %s%s", step, "");
        if (got < 0)
            return fail(c, "reading the reply to %s: %s", step, strerror(errno));
        if (got == 0)
            return fail(c, "the server closed the connection instead of replying to %s%s", step, "");
        c->start = 0;
        c->end = (size_t)got;
    }
}

/* A whole reply ("250-..." lines, then "250 ..."), read with the library's reply parser
 * (smtp_reply_line, the one smtp_send uses): returns its code and puts "CODE TEXT" in
 * text (the lines joined by spaces); -1 with c->err set on a broken reply. */
static int read_reply(struct conn *c, const char *step, char *text, size_t n)
{
    char line[SMTP_DEFAULT_MAX_LINE + 1];
    smtp_reply rp;
    smtp_reply_init(&rp, 0);
    int rc = 0;
    while (rc == 0) {
        ssize_t len = read_line(c, line, sizeof line, step);
        const char *why = NULL;
        rc = len < 0 ? -1 : smtp_reply_line(&rp, line, (size_t)len, &why);
        if (rc < 0 && len >= 0)
            fail(c, "a bad reply to %s: %s", step, why ? why : strerror(-rc));
    }
    if (rc > 0) {
        snprintf(text, n, "%d %s", rp.code, rp.text);
        for (char *p = text; *p; p++)
            if (*p == '\n')
                *p = ' ';
        rc = rp.code;
    }
    smtp_reply_clear(&rp);
    return rc;
}

/* Sends one command line and reads its reply; fails unless the code is `want`
 * (or `want2`), in the words "STEP: 550 text". */
static int command(struct conn *c, const char *cmd, const char *step, int want, int want2)
{
    char text[1024];
    if (cmd && send_all(c, cmd, strlen(cmd), step) < 0)
        return -1;
    int code = read_reply(c, step, text, sizeof text);
    if (code < 0)
        return -1;
    if (code != want && code != want2) {
        snprintf(c->err, c->errlen, "%s: %s", step, text);
        return -code;
    }
    return code;
}

static int dial(const char *host, int port, double timeout, char *err, size_t n)
{
    char service[8];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai, *a;
    int rc = getaddrinfo(host, service, &hints, &ai); /* blocks too */
    if (rc != 0)
        return snprintf(err, n, "cannot resolve %s: %s", host, gai_strerror(rc)), -1;
    int fd = -1, e = 0;
    struct timeval tv = {(time_t)timeout, (suseconds_t)((timeout - (double)(time_t)timeout) * 1e6)};
    for (a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv); /* Linux: connect() too */
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
            e = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd < 0)
        snprintf(err, n, "cannot connect to %s port %d: %s", host, port,
                 e == EINPROGRESS || e == EAGAIN ? "timed out" : strerror(e));
    return fd;
}

/* The message as DATA wants it: CRLF line endings, a leading "." doubled, ending in
 * CRLF "." CRLF. malloc'd; *out_len its length; NULL when out of memory. */
static char *data_block(const char *msg, size_t len, size_t *out_len)
{
    char *out = malloc(len * 3 + 8), *w = out; /* worst case: every byte a LF -> ".\r\n" */
    if (!out)
        return NULL;
    int bol = 1;
    for (size_t i = 0; i < len; i++) {
        char ch = msg[i];
        if (bol && ch == '.')
            *w++ = '.';
        if (ch == '\n' && (i == 0 || msg[i - 1] != '\r'))
            *w++ = '\r';
        *w++ = ch;
        bol = ch == '\n';
    }
    if (!bol) {
        *w++ = '\r';
        *w++ = '\n';
    }
    memcpy(w, ".\r\n", 3);
    *out_len = (size_t)(w + 3 - out);
    return out;
}

int blocking_smtp_send(const char *host, int port, const char *from, const char *const *to,
                       size_t n_to, const char *msg, size_t len, double timeout, char *err,
                       size_t errlen)
{
    char line[1200], step[600], refused[1024] = "";
    struct conn c = {.fd = -1, .err = err, .errlen = errlen};
    err[0] = '\0';
    if (n_to == 0)
        return snprintf(err, errlen, "no recipient"), -1;
    if (strpbrk(from, "\r\n<>"))
        return snprintf(err, errlen, "bad sender address: %.200s", from), -1;
    c.fd = dial(host, port, timeout > 0 ? timeout : 30, err, errlen);
    if (c.fd < 0)
        return -1;
    int one = 1; /* one short command at a time, each waiting for its reply */
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int accepted = 0;
    if (command(&c, NULL, "the greeting", 220, 220) < 0)
        goto out;
    char me[256] = "localhost";
    gethostname(me, sizeof me - 1);
    snprintf(line, sizeof line, "EHLO %s\r\n", me);
    int code = command(&c, line, "EHLO", 250, 250);
    if (code < -1) { /* refused: an old server, say HELO (smtplib does the same) */
        snprintf(line, sizeof line, "HELO %s\r\n", me);
        code = command(&c, line, "HELO", 250, 250);
    }
    if (code < 0)
        goto out;
    snprintf(line, sizeof line, "MAIL FROM:<%s>\r\n", from);
    snprintf(step, sizeof step, "MAIL FROM <%.200s>", from);
    if (command(&c, line, step, 250, 250) < 0)
        goto out;
    for (size_t i = 0; i < n_to; i++) {
        if (strpbrk(to[i], "\r\n<>")) {
            snprintf(err, errlen, "bad recipient address: %.200s", to[i]);
            goto out;
        }
        snprintf(line, sizeof line, "RCPT TO:<%s>\r\n", to[i]);
        snprintf(step, sizeof step, "RCPT TO <%.200s>", to[i]);
        code = command(&c, line, step, 250, 251);
        if (code == -1)
            goto out; /* the connection is broken */
        if (code < 0) { /* refused: go on with the others, say which at the end */
            size_t used = strlen(refused);
            snprintf(refused + used, sizeof refused - used, "%s%s", used ? "; " : "", err);
        } else {
            accepted++;
        }
    }
    if (accepted == 0) {
        snprintf(err, errlen, "%s", refused);
        goto out;
    }
    if (command(&c, "DATA\r\n", "DATA", 354, 354) < 0) {
        accepted = 0;
        goto out;
    }
    size_t dlen;
    char *data = data_block(msg, len, &dlen);
    if (!data) {
        snprintf(err, errlen, "out of memory");
        accepted = 0;
        goto out;
    }
    int sent = send_all(&c, data, dlen, "the message");
    free(data);
    if (sent < 0 || command(&c, NULL, "the end of the message", 250, 250) < 0) {
        accepted = 0;
        goto out;
    }
    command(&c, "QUIT\r\n", "QUIT", 221, 221); /* the message is accepted: QUIT's reply is a courtesy */
    snprintf(err, errlen, "%s", refused);
out:
    close(c.fd);
    return accepted > 0 ? accepted : -1;
}
