/* SMTP replies (RFC 5321 4.2): "250-..." lines up to the "250 ..." line, same code on
 * each. A parser usable alone: the client feeds it the LineReceiver's lines, the fuzz
 * target (t/fuzz/fuzz_smtp_reply.c) any bytes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <twistc/smtp.h>

void smtp_reply_init(smtp_reply *rp, size_t max_reply)
{
    memset(rp, 0, sizeof *rp);
    rp->max_reply = max_reply ? max_reply : SMTP_DEFAULT_MAX_REPLY;
}

void smtp_reply_reset(smtp_reply *rp)
{
    rp->code = 0;
    rp->len = 0;
    rp->lines = 0;
    rp->done = 0;
    if (rp->text)
        rp->text[0] = 0;
}

void smtp_reply_clear(smtp_reply *rp)
{
    free(rp->text);
    size_t max = rp->max_reply;
    memset(rp, 0, sizeof *rp);
    rp->max_reply = max;
}

static int fail(const char **why, const char *w, int err)
{
    if (why)
        *why = w;
    return err;
}

int smtp_reply_line(smtp_reply *rp, const char *line, size_t len, const char **why)
{
    if (len && line[len - 1] == '\r')
        len--;
    if (rp->done)
        return fail(why, "a line after the reply's last line", -EPROTO);
    /* Reply-code = %x32-35 %x30-35 %x30-39, then SP text, "-" text, or nothing. */
    if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '5' ||
        line[2] < '0' || line[2] > '9')
        return fail(why, "not an SMTP reply line (no reply code)", -EPROTO);
    if (len > 3 && line[3] != ' ' && line[3] != '-')
        return fail(why, "not an SMTP reply line (bad character after the code)", -EPROTO);
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (rp->lines && code != rp->code)
        return fail(why, "a multi-line reply changed its code", -EPROTO);
    const char *t = len > 4 ? line + 4 : "";
    size_t tl = len > 4 ? len - 4 : 0;
    size_t need = rp->len + (rp->lines ? 1 : 0) + tl;
    if (need > rp->max_reply)
        return fail(why, "reply larger than the limit", -EMSGSIZE);
    if (need + 1 > rp->cap) {
        size_t cap = rp->cap ? rp->cap : 128;
        while (cap < need + 1)
            cap *= 2;
        char *n = realloc(rp->text, cap);
        if (!n)
            return fail(why, "out of memory", -ENOMEM);
        rp->text = n;
        rp->cap = cap;
    }
    if (rp->lines)
        rp->text[rp->len++] = '\n';
    memcpy(rp->text + rp->len, t, tl);
    rp->len += tl;
    rp->text[rp->len] = 0;
    rp->code = code;
    rp->lines++;
    rp->done = len == 3 || line[3] == ' ';
    return rp->done;
}
