/* Request/response over lines: a FIFO of Deferreds any line protocol can use.
 *
 * Many line protocols answer requests in order (the notification protocol, memcached's
 * text protocol, SMTP, Redis' inline commands, a key-value server): the client sends a
 * request line and gets a Deferred; each answer line fires the oldest pending one.
 * Lines that are not answers (notifications, greetings) go to a handler instead.
 *
 *     struct kv { line_receiver lr; line_requests rq; };
 *     static int kv_line(line_receiver *lr, const char *line, size_t len)
 *     {
 *         return line_requests_line_received(&((struct kv *)lr)->rq, line, len);
 *     }
 *     static void kv_lost(line_receiver *lr, const protocol_reason *why)
 *     {
 *         line_requests_connection_lost(&((struct kv *)lr)->rq, why);  // all pending fail
 *         free(lr);
 *     }
 *     ... line_requests_init(&kv->rq, &kv->lr, NULL, NULL);
 *     deferred *d = line_requests_send(&kv->rq, "get x", 5, 0);  // fires with the answer
 *
 * Behaviour:
 *   - Answers are matched to requests by order. With no ops, every line is an answer
 *     while a request is pending and its Deferred fires with a DEFERRED_STR copy of it
 *     (owned by the result, NUL-terminated; NUL bytes in the line are kept and
 *     line_requests_answer_len gives the whole length).
 *   - ops->is_answer decides which lines are answers; ops->answer turns an answer into
 *     the request's result (a failure for an error answer); ops->other_line gets every
 *     line that answers nothing (not an answer, or no request pending).
 *   - Connection loss fails every pending request with the reason
 *     (deferred_failure_from_reason: ConnectionDone, ECONNRESET, ...); requests made
 *     afterwards fail at once with ENOTCONN.
 *   - Cancelling a request's Deferred does not unsend it (Twisted's request/response
 *     protocols do the same: their Deferreds have no canceller): it fails with ECANCELED
 *     at once, its answer is still read when it comes, in its turn, and dropped.
 *   - The Deferreds are fired after the request was taken off the FIFO, so a callback
 *     may send the next request, or close the connection.
 *
 * Ownership: the line_requests is the user's, usually embedded beside the
 * line_receiver it sends through. It allocates only while requests are pending; that
 * memory is freed when the last one was answered or failed. Each Deferred returned is
 * one reference owned by the caller; the FIFO keeps its own until it fires it.
 *
 * Threads: reactor thread only. */
#ifndef TWISTC_LINE_REQUESTS_H
#define TWISTC_LINE_REQUESTS_H

#include <stddef.h>

#include <twistc/deferred.h>
#include <twistc/line_receiver.h>
#include <twistc/protocol.h>
#include <twistc/twistc_base.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct line_requests line_requests;

typedef struct line_requests_ops {
    /* 1 if the line answers the oldest pending request, 0 if it is something else (it
     * then goes to other_line). Called only while a request is pending. NULL: every
     * line is an answer. */
    int (*is_answer)(line_requests *rq, const char *line, size_t len);
    /* The result for the request made with `tag`, from its answer (a failure result
     * for an error answer). NULL: a DEFERRED_STR copy of the line. */
    deferred_result (*answer)(line_requests *rq, int tag, const char *line, size_t len);
    /* A line that answers nothing. Its return value is returned by
     * line_requests_line_received (non-zero closes the connection when returned from
     * line_received). NULL: such lines are dropped. */
    int (*other_line)(line_requests *rq, const char *line, size_t len);
} line_requests_ops;

struct line_requests_slot;

/* The fields are private; the struct is public so you can embed it. */
struct line_requests {
    line_receiver *lr;
    const line_requests_ops *ops;
    void *data; /* yours */
    struct line_requests_slot *slots; /* a ring, NULL while nothing is pending */
    size_t head, n, cap;
    int closed;
};

/* Requests go out through lr (line_receiver_send_line, so with lr's delimiter). ops NULL
 * or any of its members NULL: the defaults above. -EINVAL when rq or lr is NULL. */
TWISTC_API int line_requests_init(line_requests *rq, line_receiver *lr,
                                  const line_requests_ops *ops, void *data);
/* Sends `line` (the delimiter is added) and returns the Deferred of its answer. `tag` is
 * given back to ops->answer. A Deferred already failed with ENOTCONN when not connected
 * or closing, or with the send error; NULL+ENOMEM only when even that cannot be made. */
TWISTC_API deferred *line_requests_send(line_requests *rq, const char *line, size_t len,
                                        int tag);
/* The same for a request the caller wrote itself (several lines, a binary body...):
 * only queues the Deferred for the next answer. */
TWISTC_API deferred *line_requests_expect(line_requests *rq, int tag);
/* Call it from line_received with every line: fires the oldest request's Deferred with
 * this answer, or passes the line to ops->other_line. Returns 0 or other_line's value. */
TWISTC_API int line_requests_line_received(line_requests *rq, const char *line, size_t len);
/* Call it from connection_lost: every pending request fails with the reason, later ones
 * with ENOTCONN. */
TWISTC_API void line_requests_connection_lost(line_requests *rq, const protocol_reason *reason);
/* Fails the requests pending now with f (taken; NULL gives an ECONNABORTED failure).
 * The FIFO stays usable. */
TWISTC_API void line_requests_fail_all(line_requests *rq, deferred_failure *f);
/* A DEFERRED_STR copy of an answer line, NUL-terminated, NUL bytes inside kept (what the
 * default answer gives; for your ops->answer too), whose full length
 * line_requests_answer_len gives back. ENOMEM failure if out of memory. */
TWISTC_API deferred_result line_requests_answer_copy(const char *line, size_t len);
/* The length of such a copy, NUL bytes included; strlen for any other DEFERRED_STR; 0 for
 * other kinds. */
TWISTC_API size_t line_requests_answer_len(const deferred_result *r);
/* Requests sent and not answered yet (cancelled ones included, until their answer). */
TWISTC_API size_t line_requests_pending(const line_requests *rq);

#ifdef __cplusplus
}
#endif
#endif
