/* A tiny blocking SMTP sender: the slide's smtplib, for the mail lesson (docs/mail-lesson.md).
 *
 *     s = SMTP('localhost')
 *     s.sendmail(sender, [to], msg)
 *     s.quit()
 *
 * One function does all of it on a plain blocking socket: connect, read the greeting,
 * EHLO (HELO if refused), MAIL FROM, one RCPT TO per recipient, DATA, the message, QUIT.
 * The calling thread sits in connect(), send() and recv() for every step, waiting for
 * each reply: that is the point. Called from a reactor callback it freezes the whole
 * loop for the exchange (`planets --smtp-mode blocking`); on a worker thread
 * (defer_to_thread, `--smtp-mode thread`) it costs the loop nothing.
 *
 * The message is sent as given, with line endings made CRLF and dot-stuffing (a line
 * starting with "." gets a second one), so any text goes through intact. Replies are
 * read with the library's reply parser (smtp_reply_line in <twistc/smtp.h>). Refused
 * recipients are skipped as smtplib does (the send goes on when at least one was
 * accepted). Every socket operation times out after `timeout` seconds (smtplib's
 * default is to wait for ever; a test must not). Thread-safe: no shared state.
 */
#ifndef BLOCKING_SMTP_H
#define BLOCKING_SMTP_H

#include <stddef.h>

/* Sends msg (len bytes) from `from` to the n_to addresses in `to` through host:port.
 * Returns the number of recipients that accepted it (>= 1), or -1 with why in err, in
 * the words of the step and the server: "RCPT TO <x@y>: 550 no such user",
 * "cannot connect to 127.0.0.1 port 25: Connection refused", "timed out waiting for the
 * reply to DATA". err holds the refused recipients (if any) after a success. */
int blocking_smtp_send(const char *host, int port, const char *from, const char *const *to,
                       size_t n_to, const char *msg, size_t len, double timeout, char *err,
                       size_t errlen);

#endif
