/* LineReceiver. How the bytes flow (the design is in docs/protocols.md):
 *
 * While data_received runs, the bytes not yet delivered sit in up to three places, in
 * stream order:
 *   own   a buffer we own: the unfinished line kept from earlier reads (plus, when
 *         needed, the bytes that completed it);
 *   d     the bytes of this read (borrowed from the transport's shared buffer), or a
 *         buffer we own that was appended during a callback;
 *   tail  bytes appended by a re-entrant call during a callback
 *         (set_line_mode(extra), data_received from inside line_received).
 * Lines found inside `d` are handed over without a copy. Only when the loop stops does
 * what is left get copied into lr->buf. A re-entrant call only appends to the tail, so
 * mode switches never recurse. */
#include <twistc/line_receiver.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "protocols/line_receiver_internal.h"

/* Outside data_received the kept bytes sit in a buffer of exactly cap_of(buf_len) bytes,
 * so the struct needs no capacity field (it stays at 40 bytes). */
static size_t cap_of(size_t len)
{
    size_t c = 128;
    if (!len)
        return 0;
    while (c < len)
        c *= 2;
    return c;
}

static const char *delim(const line_receiver *lr)
{
    return lr->lops->delimiter ? lr->lops->delimiter : "\r\n";
}


/* First delimiter in p[0..n), or -1. */
static long find(const line_receiver *lr, const char *p, size_t n)
{
    const char *dl = delim(lr);
    size_t dlen = lr->delim_len;
    if (dlen == 1) { /* the common "\n": one memchr */
        const char *q = n ? memchr(p, dl[0], n) : NULL;
        return q ? q - p : -1;
    }
    if (n < dlen)
        return -1;
    const char *s = p, *end = p + n - dlen + 1;
    while (s < end) {
        const char *q = memchr(s, dl[0], (size_t)(end - s));
        if (!q)
            return -1;
        if (dlen == 1 || memcmp(q + 1, dl + 1, dlen - 1) == 0)
            return q - p;
        s = q + 1;
    }
    return -1;
}

static int grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 128;
    while (c < need)
        c *= 2;
    char *b = realloc(*buf, c);
    if (!b)
        return -ENOMEM;
    *buf = b;
    *cap = c;
    return 0;
}

static int own_append(struct line_receiver_feed *f, const char *p, size_t n)
{
    if (f->own_off && f->own_off == f->own_len)
        f->own_off = f->own_len = 0;
    if (grow(&f->own, &f->own_cap, f->own_len + n) < 0)
        return -ENOMEM;
    memcpy(f->own + f->own_len, p, n);
    f->own_len += n;
    return 0;
}

static int tail_append(struct line_receiver_feed *f, const char *p, size_t n)
{
    if (grow(&f->tail, &f->tail_cap, f->tail_len + n) < 0)
        return -ENOMEM;
    memcpy(f->tail + f->tail_len, p, n);
    f->tail_len += n;
    return 0;
}

static void d_done(struct line_receiver_feed *f)
{
    f->d = NULL;
    f->d_len = 0;
    free(f->d_owned);
    f->d_owned = NULL;
}

/* Makes the tail the current `d` (we own it from now on). */
static void steal_tail(line_receiver *lr, struct line_receiver_feed *f)
{
    d_done(f);
    (void)lr;
    f->d_owned = f->tail;
    f->d = f->tail;
    f->d_len = f->tail_len;
    f->tail = NULL;
    f->tail_len = f->tail_cap = 0;
}

/* Everything not delivered yet, in order, as one malloc'd buffer; the sources are emptied. */
static char *gather(line_receiver *lr, struct line_receiver_feed *f, size_t *len)
{
    size_t orest = f->own_len - f->own_off;
    (void)lr;
    size_t total = orest + f->d_len + f->tail_len;
    *len = total;
    char *out = total ? malloc(total) : NULL;
    if (out) {
        if (orest)
            memcpy(out, f->own + f->own_off, orest);
        if (f->d_len)
            memcpy(out + orest, f->d, f->d_len);
        if (f->tail_len)
            memcpy(out + orest + f->d_len, f->tail, f->tail_len);
    }
    /* Emptied, not freed: a callback may still be reading a line that points into own
     * or d_owned. They are freed once the loop moves on. */
    f->own_off = f->own_len = 0;
    f->d_len = 0;
    free(f->tail);
    f->tail = NULL;
    f->tail_len = f->tail_cap = 0;
    return out;
}

static int exceeded(line_receiver *lr, struct line_receiver_feed *f)
{
    size_t n;
    char *all = gather(lr, f, &n);
    int rc = 0;
    if (lr->lops->line_length_exceeded)
        rc = lr->lops->line_length_exceeded(lr, all ? all : "", all ? n : 0);
    else if (lr->base.transport)
        transport_lose_connection(lr->base.transport);
    free(all);
    return rc;
}

/* The delivery loop. Returns the first non-zero callback value; sets *partial when it
 * stopped because only an unfinished line was left. */
static int run(line_receiver *lr, struct line_receiver_feed *f, int *partial)
{
    const char *dl = delim(lr);
    size_t dlen = lr->delim_len;
    size_t maxl = line_receiver__max_len(lr);
    int rc = 0;
    *partial = 0;
    for (;;) {
        if ((lr->flags & (LR_PAUSED | LR_STOPPED | LR_CLEARED)) ||
            line_receiver__disconnecting(lr))
            return 0;
        if (lr->flags & LR_CHANGED) { /* a callback set a new delimiter or max_length */
            lr->flags &= (uint8_t)~LR_CHANGED;
            dl = delim(lr);
            dlen = lr->delim_len;
            maxl = line_receiver__max_len(lr);
            f->own_nodelim = 0; /* the kept bytes may hold the new delimiter */
        }
        size_t orest = f->own_len - f->own_off;
        if (!orest && !f->d_len) {
            if (!f->tail_len)
                return 0;
            steal_tail(lr, f);
        }

        if (lr->flags & LR_RAW) {
            if (!lr->lops->raw_data_received) {
                /* raw mode without a raw handler: the bytes have nowhere to go */
                size_t n;
                free(gather(lr, f, &n));
                return 0;
            }
            if (orest) {
                const char *p = f->own + f->own_off;
                f->own_off = f->own_len;
                rc = lr->lops->raw_data_received(lr, p, orest);
            } else {
                const char *p = f->d;
                size_t n = f->d_len;
                f->d += n; /* keep d_owned alive during the call */
                f->d_len = 0;
                rc = lr->lops->raw_data_received(lr, p, n);
            }
            if (rc)
                return rc;
            continue;
        }

        const char *line;
        size_t line_len;
        if (orest) {
            long pos = -1;
            if (!f->own_nodelim) {
                pos = find(lr, f->own + f->own_off, orest);
                if (pos < 0)
                    f->own_nodelim = 1;
            }
            if (pos >= 0) {
                line = f->own + f->own_off;
                line_len = (size_t)pos;
                f->own_off += (size_t)pos + dlen;
            } else {
                /* own holds an unfinished line: complete it from what follows */
                if (!f->d_len) {
                    if (!f->tail_len) {
                        if (orest >= maxl + dlen)
                            return exceeded(lr, f);
                        *partial = 1;
                        return 0;
                    }
                    steal_tail(lr, f);
                }
                /* a delimiter straddling own's end and d's start comes first */
                size_t take = 0;
                for (size_t k = dlen - 1; k >= 1 && !take; k--) {
                    if (orest >= k && f->d_len >= dlen - k &&
                        memcmp(f->own + f->own_len - k, dl, k) == 0 &&
                        memcmp(f->d, dl + k, dlen - k) == 0)
                        take = dlen - k;
                }
                if (!take) {
                    long p = find(lr, f->d, f->d_len);
                    if (p < 0) {
                        if (own_append(f, f->d, f->d_len) < 0)
                            return -ENOMEM;
                        d_done(f);
                        continue;
                    }
                    take = (size_t)p + dlen;
                }
                if (own_append(f, f->d, take) < 0)
                    return -ENOMEM;
                f->d += take;
                f->d_len -= take;
                line = f->own + f->own_off;
                line_len = f->own_len - f->own_off - dlen;
                f->own_off = f->own_len;
                f->own_nodelim = 0;
            }
        } else {
            long pos = find(lr, f->d, f->d_len);
            if (pos < 0) {
                if (f->tail_len) { /* more follows in the tail: keep this part */
                    if (own_append(f, f->d, f->d_len) < 0)
                        return -ENOMEM;
                    f->own_nodelim = 1;
                    d_done(f);
                    continue;
                }
                if (f->d_len >= maxl + dlen)
                    return exceeded(lr, f);
                *partial = 1;
                return 0;
            }
            line = f->d; /* straight from the read buffer */
            line_len = (size_t)pos;
            f->d += (size_t)pos + dlen;
            f->d_len -= (size_t)pos + dlen;
        }

        if (line_len > maxl) {
            /* Twisted passes line + delimiter + the rest of the buffer */
            size_t back = line_len + dlen;
            if (f->own_off >= back && line == f->own + f->own_off - back)
                f->own_off -= back;
            else if (line == f->d - back) {
                f->d -= back;
                f->d_len += back;
            }
            return exceeded(lr, f);
        }
        rc = lr->lops->line_received(lr, line, line_len);
        if (rc)
            return rc;
    }
}

/* Stores what was not delivered as lr->buf, with capacity cap_of(len). */
static int keep(line_receiver *lr, char *buf, size_t len, size_t cap)
{
    if (!len) {
        free(buf);
        lr->buf = NULL;
        lr->buf_len = 0;
        return 0;
    }
    if (len > UINT32_MAX) {
        free(buf);
        lr->buf = NULL;
        lr->buf_len = 0;
        return -ENOBUFS;
    }
    if (cap != cap_of(len)) { /* shrink (or grow) to the size the struct implies */
        char *b = realloc(buf, cap_of(len));
        if (!b && cap < cap_of(len)) {
            free(buf);
            lr->buf = NULL;
            lr->buf_len = 0;
            return -ENOMEM;
        }
        if (b)
            buf = b;
    }
    lr->buf = buf;
    lr->buf_len = (uint32_t)len;
    return 0;
}

int line_receiver_data_received(line_receiver *lr, const char *data, size_t len)
{
    if (lr->flags & LR_FEEDING) /* re-entrant: only append, the running loop parses it */
        return len ? tail_append(lr->feed, data, len) : 0;
    if (lr->flags & LR_STOPPED)
        return 0;
    if (!len && !lr->buf_len)
        return 0;
    if (!lr->buf_len && lr->delim_len == 1 && !(lr->flags & (LR_RAW | LR_PAUSED)))
        return line_receiver__fast_lines(lr, data, len, lr->lops->line_received);
    struct line_receiver_feed f = {
        .own = lr->buf,
        .own_len = lr->buf_len,
        .own_cap = cap_of(lr->buf_len),
        .d = data,
        .d_len = len,
        .own_nodelim = (lr->flags & LR_PARTIAL) && !(lr->flags & LR_RAW),
    };
    lr->buf_len = 0;
    lr->flags &= (uint8_t)~LR_PARTIAL;
    lr->feed = &f;
    lr->flags |= LR_FEEDING;
    return line_receiver__feed_finish(lr, &f, 0);
}

int line_receiver__feed_finish(line_receiver *lr, struct line_receiver_feed *f, int stopped)
{
    int partial = 0;
    int rc = stopped ? stopped : run(lr, f, &partial);
    lr->flags &= (uint8_t)~(LR_FEEDING | LR_CHANGED);
    lr->buf = NULL;

    /* Keep what was not delivered: own rest, then d, then the tail. */
    size_t orest = f->own_len - f->own_off;
    int krc;
    if (lr->flags & LR_CLEARED) {
        lr->flags &= (uint8_t)~LR_CLEARED;
        free(f->own);
        d_done(f);
        free(f->tail);
        return rc;
    }
    if (!orest && !f->d_len) {
        free(f->own);
        d_done(f);
        krc = keep(lr, f->tail, f->tail_len, f->tail_cap);
    } else if (f->own && !f->tail_len) {
        if (f->own_off) {
            memmove(f->own, f->own + f->own_off, orest);
            f->own_len = orest;
            f->own_off = 0;
        }
        krc = f->d_len ? own_append(f, f->d, f->d_len) : 0;
        d_done(f);
        if (krc < 0) {
            free(f->own);
            return krc;
        }
        krc = keep(lr, f->own, f->own_len, f->own_cap);
    } else {
        size_t n;
        char *all = gather(lr, f, &n);
        free(f->own);
        d_done(f);
        if (n && !all)
            return -ENOMEM;
        krc = keep(lr, all, n, n);
    }
    if (krc < 0)
        return krc;
    if (partial && lr->buf_len && !(lr->flags & LR_RAW))
        lr->flags |= LR_PARTIAL;
    return rc;
}

/* ---- protocol glue --------------------------------------------------------------- */

static void lr_made(protocol *p)
{
    line_receiver *lr = (line_receiver *)p;
    if (lr->lops->connection_made)
        lr->lops->connection_made(lr);
}

static int lr_data(protocol *p, const char *data, size_t len)
{
    return line_receiver_data_received((line_receiver *)p, data, len);
}

static void lr_read_lost(protocol *p)
{
    line_receiver *lr = (line_receiver *)p;
    lr->lops->read_connection_lost(lr);
}

/* Back to the ops the receiver was made with; frees this connection's copy. */
static void drop_own_ops(line_receiver *lr)
{
    if (!(lr->flags & LR_OWN_OPS))
        return;
    struct line_receiver_own_ops *own = (struct line_receiver_own_ops *)lr->lops;
    lr->lops = own->orig;
    const char *d = own->orig->delimiter;
    lr->delim_len = (uint8_t)(d ? strlen(d) : 2);
    lr->flags &= (uint8_t)~LR_OWN_OPS;
    free(own);
}

/* Frees the kept bytes (not while a feed holds them: it frees them when it ends) and
 * this connection's settings. */
static void release(line_receiver *lr)
{
    if (!(lr->flags & LR_FEEDING)) {
        free(lr->buf);
        lr->buf = NULL;
        lr->buf_len = 0;
    }
    drop_own_ops(lr);
}

void line_receiver_release(line_receiver *lr)
{
    if (lr && !(lr->flags & LR_FEEDING))
        release(lr);
}

static void lr_lost(protocol *p, const protocol_reason *reason)
{
    line_receiver *lr = (line_receiver *)p;
    release(lr);
    if (lr->lops->connection_lost)
        lr->lops->connection_lost(lr, reason); /* may free lr */
}

static const protocol_ops lr_ops = {
    .connection_made = lr_made,
    .data_received = lr_data,
    .connection_lost = lr_lost,
};

static const protocol_ops lr_ops_half = {
    .connection_made = lr_made,
    .data_received = lr_data,
    .read_connection_lost = lr_read_lost,
    .connection_lost = lr_lost,
};

int line_receiver_init(line_receiver *lr, const line_receiver_ops *ops)
{
    if (!lr || !ops || !ops->line_received)
        return -EINVAL;
    size_t dlen = ops->delimiter ? strlen(ops->delimiter) : 2;
    if (dlen == 0 || dlen > 255)
        return -EINVAL;
    memset(lr, 0, sizeof *lr);
    lr->base.ops = ops->read_connection_lost ? &lr_ops_half : &lr_ops;
    lr->lops = ops;
    lr->delim_len = (uint8_t)dlen;
    return 0;
}

int line_receiver_send_line(line_receiver *lr, const char *line, size_t len)
{
    struct iovec iov[2] = {
        {.iov_base = (void *)line, .iov_len = len},
        {.iov_base = (void *)delim(lr), .iov_len = lr->delim_len},
    };
    if (!lr->base.transport)
        return -ENOTCONN;
    return transport_writev(lr->base.transport, iov, 2);
}

/* This connection's copy of its ops, made on first use. */
static struct line_receiver_own_ops *own_ops(line_receiver *lr)
{
    if (lr->flags & LR_OWN_OPS)
        return (struct line_receiver_own_ops *)lr->lops;
    struct line_receiver_own_ops *own = malloc(sizeof *own);
    if (!own)
        return NULL;
    own->ops = *lr->lops;
    own->orig = lr->lops;
    const char *d = delim(lr);
    memcpy(own->delim, d, (size_t)lr->delim_len + 1);
    own->ops.delimiter = own->delim;
    lr->lops = &own->ops;
    lr->flags |= LR_OWN_OPS;
    return own;
}

/* The rest of the bytes already received is split with the new settings: at once when
 * called from a callback (the delivery loop reloads them), at the next read otherwise. */
static void settings_changed(line_receiver *lr)
{
    if (lr->flags & LR_FEEDING)
        lr->flags |= LR_CHANGED;
    else
        lr->flags &= (uint8_t)~LR_PARTIAL; /* the kept bytes are searched again */
}

int line_receiver_set_delimiter(line_receiver *lr, const char *delimiter)
{
    if (!lr)
        return -EINVAL;
    if (!delimiter)
        delimiter = "\r\n";
    size_t dlen = strlen(delimiter);
    if (dlen == 0 || dlen > 255)
        return -EINVAL;
    struct line_receiver_own_ops *own = own_ops(lr);
    if (!own)
        return -ENOMEM;
    memcpy(own->delim, delimiter, dlen + 1);
    lr->delim_len = (uint8_t)dlen;
    settings_changed(lr);
    return 0;
}

int line_receiver_set_max_length(line_receiver *lr, size_t max_length)
{
    if (!lr)
        return -EINVAL;
    struct line_receiver_own_ops *own = own_ops(lr);
    if (!own)
        return -ENOMEM;
    own->ops.max_length = max_length;
    settings_changed(lr);
    return 0;
}

const char *line_receiver_delimiter(const line_receiver *lr) { return delim(lr); }
size_t line_receiver_max_length(const line_receiver *lr) { return line_receiver__max_len(lr); }

void line_receiver_set_raw_mode(line_receiver *lr) { lr->flags |= LR_RAW; }

int line_receiver_set_line_mode(line_receiver *lr, const char *extra, size_t len)
{
    lr->flags &= (uint8_t)~LR_RAW;
    if (extra && len)
        return line_receiver_data_received(lr, extra, len);
    return 0;
}

int line_receiver_raw_mode(const line_receiver *lr) { return (lr->flags & LR_RAW) != 0; }

char *line_receiver_take_buffer(line_receiver *lr, size_t *len)
{
    size_t n;
    char *out;
    if (lr->flags & LR_FEEDING) {
        out = gather(lr, lr->feed, &n);
        lr->flags |= LR_CLEARED;
    } else {
        out = lr->buf;
        n = lr->buf_len;
        lr->buf = NULL;
        lr->buf_len = 0;
        lr->flags &= (uint8_t)~LR_PARTIAL;
    }
    if (len)
        *len = n;
    return out;
}

size_t line_receiver_clear_line_buffer(line_receiver *lr)
{
    size_t n;
    free(line_receiver_take_buffer(lr, &n));
    return n;
}

size_t line_receiver_buffered(const line_receiver *lr)
{
    return (lr->flags & LR_FEEDING) ? 0 : lr->buf_len;
}

int line_receiver_pause_producing(line_receiver *lr)
{
    if (!lr)
        return -EINVAL;
    lr->flags |= LR_PAUSED;
    if (lr->base.transport)
        transport_pause_producing(lr->base.transport);
    return 0;
}

int line_receiver_resume_producing(line_receiver *lr)
{
    if (!lr)
        return -EINVAL;
    if (lr->flags & LR_STOPPED)
        return 0;
    lr->flags &= (uint8_t)~LR_PAUSED;
    if (lr->base.transport)
        transport_resume_producing(lr->base.transport);
    return line_receiver_data_received(lr, NULL, 0); /* deliver what is buffered now */
}

int line_receiver_stop_producing(line_receiver *lr)
{
    if (!lr)
        return -EINVAL;
    lr->flags |= LR_PAUSED | LR_STOPPED;
    line_receiver_clear_line_buffer(lr);
    if (lr->base.transport)
        transport_lose_connection(lr->base.transport);
    return 0;
}

int line_receiver_paused(const line_receiver *lr) { return (lr->flags & LR_PAUSED) != 0; }

static void prod_pause(void *d) { (void)line_receiver_pause_producing(d); }
static void prod_resume(void *d) { line_receiver_resume_producing(d); }
static void prod_stop(void *d) { (void)line_receiver_stop_producing(d); }

const transport_producer_ops line_receiver_producer_ops = {
    .pause_producing = prod_pause,
    .resume_producing = prod_resume,
    .stop_producing = prod_stop,
};
