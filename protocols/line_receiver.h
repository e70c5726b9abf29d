/* LineReceiver: a protocol that cuts the byte stream into lines (Twisted's
 * twisted.protocols.basic.LineReceiver), with a raw mode for binary blocks.
 *
 * Embed `line_receiver` FIRST in your own struct, fill a const line_receiver_ops (the
 * "class": callbacks, delimiter, maximum line length) and call line_receiver_init().
 * The result is a protocol (&lr->base) your factory returns from build_protocol:
 *
 *     struct echo { line_receiver lr; };
 *     static int echo_line(line_receiver *lr, const char *line, size_t len)
 *     {
 *         return line_receiver_send_line(lr, line, len);
 *     }
 *     static const line_receiver_ops echo_ops = { .delimiter = "\n",
 *                                                 .line_received = echo_line };
 *     ... line_receiver_init(&e->lr, &echo_ops); return &e->lr.base;
 *
 * Behaviour (docs/protocols.md, semantics B1-B10):
 *   - Lines are split at the first delimiter and passed without it; empty lines are
 *     delivered. Any split of the stream across reads gives the same lines.
 *   - A line that arrived whole in one read is passed straight from the read buffer (no
 *     copy): `line` is valid only during the call. Only an unfinished line is copied and
 *     kept until the rest arrives; an idle receiver holds no buffer.
 *   - A line longer than max_length, or max_length + len(delimiter) bytes without a
 *     delimiter, goes to line_length_exceeded (with everything buffered after it) and the
 *     buffer is cleared. Default: lose the connection.
 *   - After each line, delivery stops if the transport is disconnecting, if the receiver
 *     was paused, if line_received returned non-zero (that value is returned from
 *     data_received, and the transport closes the connection with PROTOCOL_ERROR).
 *   - set_raw_mode() inside line_received passes the rest of the buffer to
 *     raw_data_received in the same read; set_line_mode(extra) inside raw_data_received
 *     parses `extra` as lines. This never recurses, however often the mode flips.
 *
 * Ownership: the line_receiver is the user's (usually freed in connection_lost, which runs
 * after the receiver's own buffer was freed). Nothing here allocates while idle.
 */
#ifndef TWISTC_LINE_RECEIVER_H
#define TWISTC_LINE_RECEIVER_H

#include <stddef.h>
#include <stdint.h>

#include <twistc/protocol.h>
#include <twistc/transport.h>
#include <twistc/twistc_base.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct line_receiver line_receiver;

#define LINE_RECEIVER_DEFAULT_MAX_LENGTH 16384

typedef struct line_receiver_ops {
    /* The delimiter, NUL-terminated, 1 to 255 bytes; NULL means "\r\n" (Twisted's
     * default; LF-only peers need "\n"). */
    const char *delimiter;
    /* Longest line accepted; 0 means LINE_RECEIVER_DEFAULT_MAX_LENGTH (16384). */
    size_t max_length;
    /* Optional, as in protocol_ops. */
    void (*connection_made)(line_receiver *lr);
    /* A line, without its delimiter. Return 0 to go on. Required. */
    int (*line_received)(line_receiver *lr, const char *line, size_t len);
    /* Raw mode data. Required only if you call set_raw_mode. */
    int (*raw_data_received)(line_receiver *lr, const char *data, size_t len);
    /* Too long a line (see above). NULL: transport_lose_connection. Its return value is
     * returned from data_received. */
    int (*line_length_exceeded)(line_receiver *lr, const char *data, size_t len);
    /* Optional: set it to keep writing after the peer half-closed (protocol.h). */
    void (*read_connection_lost)(line_receiver *lr);
    /* Optional: the last call; may free lr. */
    void (*connection_lost)(line_receiver *lr, const protocol_reason *reason);
} line_receiver_ops;

struct line_receiver_feed;

/* The fields are private; the struct is public so you can embed it (40 bytes on 64-bit:
 * an idle connection's receiver is this and nothing else). */
struct line_receiver {
    protocol base; /* &lr->base is the protocol; lr->base.transport the transport */
    const line_receiver_ops *lops;
    union {
        char *buf;                       /* bytes kept between reads, NULL when none */
        struct line_receiver_feed *feed; /* while data_received runs */
    };
    uint32_t buf_len;
    uint8_t flags, delim_len;
};

/* Sets lr up (no buffer, line mode). delimiter longer than 255 bytes or empty: -EINVAL. */
TWISTC_API int line_receiver_init(line_receiver *lr, const line_receiver_ops *ops);

/* Feeds bytes as if they were read from the transport (what the transport calls; tests
 * may call it directly). Returns 0 or the first non-zero callback return value. */
TWISTC_API int line_receiver_data_received(line_receiver *lr, const char *data, size_t len);

/* transport_write(line + delimiter), one copy. */
TWISTC_API int line_receiver_send_line(line_receiver *lr, const char *line, size_t len);

/* This connection's delimiter (1 to 255 bytes; NULL: "\r\n") and longest line (0:
 * LINE_RECEIVER_DEFAULT_MAX_LENGTH), in place of the ops' (Twisted's assignment to
 * self.delimiter / self.MAX_LENGTH). Called from line_received, the rest of the bytes
 * already received is split with the new values at once; otherwise they apply from the
 * next read. send_line uses the new delimiter. The first call makes a copy of the ops
 * for this connection (about 330 bytes, freed before connection_lost); a receiver that
 * never calls them keeps none. One that is freed without its connection_lost having run
 * (its connect failed) gives the copy back with line_receiver_release(). -EINVAL, -ENOMEM. */
TWISTC_API int line_receiver_set_delimiter(line_receiver *lr, const char *delimiter);
TWISTC_API int line_receiver_set_max_length(line_receiver *lr, size_t max_length);
/* Frees what lr holds (bytes kept between reads, this connection's settings) and puts
 * the ops' delimiter and maximum back: for a receiver that is freed without its
 * connection_lost having run, e.g. when reactor_connect_protocol failed. connection_lost
 * does the same by itself. Idempotent; not from inside data_received. NULL ok. */
TWISTC_API void line_receiver_release(line_receiver *lr);
/* The delimiter and maximum line length in force. */
TWISTC_API const char *line_receiver_delimiter(const line_receiver *lr);
TWISTC_API size_t line_receiver_max_length(const line_receiver *lr);

TWISTC_API void line_receiver_set_raw_mode(line_receiver *lr);
/* Back to lines; `extra` (may be NULL) is parsed as lines (copied). */
TWISTC_API int line_receiver_set_line_mode(line_receiver *lr, const char *extra, size_t len);
TWISTC_API int line_receiver_raw_mode(const line_receiver *lr);

/* Discards the bytes not delivered yet (called from line_received: the rest of the
 * current read is never delivered). Returns how many were dropped. */
TWISTC_API size_t line_receiver_clear_line_buffer(line_receiver *lr);
/* Same, but hands them over: a malloc'd copy (free it) or NULL when empty. */
TWISTC_API char *line_receiver_take_buffer(line_receiver *lr, size_t *len);
/* Bytes held but not delivered (outside data_received). */
TWISTC_API size_t line_receiver_buffered(const line_receiver *lr);

/* The receiver as a push producer (Twisted's IPushProducer). pause: no line is delivered
 * and the transport stops reading. resume: reads again and delivers what is buffered at
 * once. stop: pauses for good and loses the connection. Like the transport's, each
 * returns 0 or a negative errno: -EINVAL for lr NULL; resume also what delivering the
 * buffered lines returned (the connection is then closing). */
TWISTC_API int line_receiver_pause_producing(line_receiver *lr);
TWISTC_API int line_receiver_resume_producing(line_receiver *lr);
TWISTC_API int line_receiver_stop_producing(line_receiver *lr);
TWISTC_API int line_receiver_paused(const line_receiver *lr);
/* For transport_register_producer(t, &line_receiver_producer_ops, lr, 1). */
TWISTC_API extern const transport_producer_ops line_receiver_producer_ops;

#ifdef __cplusplus
}
#endif
#endif
