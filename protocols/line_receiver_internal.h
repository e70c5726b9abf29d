/* The LineReceiver's insides, for line_receiver.c and for the library's own line
 * protocols (the notification server), which inline the common case of a read through
 * line_receiver__feed below. Internal to libtwistc. */
#ifndef TWISTC_LINE_RECEIVER_INTERNAL_H
#define TWISTC_LINE_RECEIVER_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include <twistc/line_receiver.h>

#include "reactor/transport_internal.h" /* transport__disconnecting: asked once per line */

enum {
    LR_RAW = 1u << 0,
    LR_PAUSED = 1u << 1,
    LR_STOPPED = 1u << 2,
    LR_CLEARED = 1u << 3, /* clear_line_buffer during a feed: drop everything */
    LR_PARTIAL = 1u << 4, /* lr->buf holds no complete delimiter (line mode leftover) */
    LR_FEEDING = 1u << 5, /* data_received runs: the union holds lr->feed, not lr->buf */
    LR_OWN_OPS = 1u << 6, /* lr->lops is this connection's copy (set_delimiter/max_length) */
    LR_CHANGED = 1u << 7, /* the delimiter or max_length changed during this feed */
};

/* This connection's own settings: a copy of the ops the receiver was made with, pointed
 * to by lr->lops while LR_OWN_OPS is set, so the struct needs no field for them and
 * a receiver that never changes its settings keeps no copy. Freed before
 * connection_lost. */
struct line_receiver_own_ops {
    line_receiver_ops ops;
    const line_receiver_ops *orig;
    char delim[256];
};

/* The bytes of one data_received not yet delivered (see line_receiver.c's header). */
struct line_receiver_feed {
    const char *d; /* first, then the rest is zero in the common case: one block clear */
    size_t d_len;
    char *own;
    size_t own_off, own_len, own_cap;
    char *d_owned; /* d points into this buffer when not NULL */
    int own_nodelim;
    char *tail; /* bytes appended by re-entrant calls */
    size_t tail_len, tail_cap;
};

/* Runs the general loop over f (LR_FEEDING set, lr->feed == f), unless a callback
 * already stopped the delivery with a non-zero `stopped`, then keeps what was not
 * delivered (line_receiver.c). */
int line_receiver__feed_finish(line_receiver *lr, struct line_receiver_feed *f, int stopped);

static inline size_t line_receiver__max_len(const line_receiver *lr)
{
    return lr->lops->max_length ? lr->lops->max_length : LINE_RECEIVER_DEFAULT_MAX_LENGTH;
}

static inline int line_receiver__disconnecting(const line_receiver *lr)
{
    return lr->base.transport && transport__disconnecting(lr->base.transport);
}

#if defined(__GNUC__) || defined(__clang__)
#define LINE_RECEIVER__INLINE inline __attribute__((always_inline))
#else
#define LINE_RECEIVER__INLINE inline
#endif

/* The common case, without the three-source machinery: no bytes kept from before, line
 * mode, a one-byte delimiter. Lines are cut straight out of `data` with one memchr each
 * and handed to line_cb, which must be lr->lops->line_received (a protocol that passes
 * its own function gets it inlined: no call through the ops table per line). As soon
 * as anything unusual happens (a callback pauses, switches to raw mode, clears the
 * buffer, feeds more bytes re-entrantly; a line is too long; an unfinished line is left),
 * the rest is handed to the general loop in the same state it would have reached by
 * itself, so the two paths cannot disagree. */
static LINE_RECEIVER__INLINE int
line_receiver__fast_lines(line_receiver *lr, const char *data, size_t len,
                          int (*line_cb)(line_receiver *, const char *, size_t))
{
    /* the whole feed, as the general loop keeps it: a callback may look at it */
    struct line_receiver_feed f = {.d = data, .d_len = len};
    lr->feed = &f;
    lr->flags |= LR_FEEDING;
    const char c = lr->lops->delimiter[0]; /* delim_len 1: not the "\r\n" default */
    const size_t maxl = line_receiver__max_len(lr);
    int first = 1, rc = 0;
    for (;;) {
        const char *line = f.d;
        const char *q = memchr(line, c, f.d_len);
        if (!q || (size_t)(q - line) > maxl)
            break;
        /* checked before each line, as the general loop does; before the first one too,
         * since a callback of another connection may have closed this one earlier in
         * the batch */
        if (first ? line_receiver__disconnecting(lr)
                  : (lr->flags & (LR_PAUSED | LR_STOPPED | LR_CLEARED | LR_RAW | LR_CHANGED)) ||
                        f.tail_len || line_receiver__disconnecting(lr))
            break;
        first = 0;
        f.d = q + 1;
        f.d_len -= (size_t)(q - line) + 1;
        rc = line_cb(lr, line, (size_t)(q - line));
        if (rc)
            break; /* the general code keeps the rest and returns rc */
        if (!f.d_len && !f.tail_len && !(lr->flags & (LR_CLEARED | LR_RAW))) {
            lr->flags &= (uint8_t)~(LR_FEEDING | LR_CHANGED);
            lr->buf = NULL; /* buf_len is 0 */
            return 0;
        }
    }
    return line_receiver__feed_finish(lr, &f, rc);
}

/* line_receiver_data_received for a protocol whose line_received is line_cb. */
static LINE_RECEIVER__INLINE int
line_receiver__feed(line_receiver *lr, const char *data, size_t len,
                    int (*line_cb)(line_receiver *, const char *, size_t))
{
    if (!(lr->flags & (LR_FEEDING | LR_STOPPED | LR_RAW | LR_PAUSED)) && !lr->buf_len &&
        lr->delim_len == 1 && len)
        return line_receiver__fast_lines(lr, data, len, line_cb);
    return line_receiver_data_received(lr, data, len);
}

#endif
