/* Request/response over lines (line_requests.h): a ring of (Deferred, tag). */
#include <twistc/line_requests.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <twistc/deferred_connect.h>
#include <twistc/transport.h>

struct line_requests_slot {
    deferred *d;
    int tag;
};

static const line_requests_ops no_ops;

int line_requests_init(line_requests *rq, line_receiver *lr, const line_requests_ops *ops,
                       void *data)
{
    if (!rq || !lr)
        return -EINVAL;
    memset(rq, 0, sizeof *rq);
    rq->lr = lr;
    rq->ops = ops ? ops : &no_ops;
    rq->data = data;
    return 0;
}

static int grow(line_requests *rq)
{
    if (rq->n < rq->cap)
        return 0;
    size_t nc = rq->cap ? rq->cap * 2 : 8;
    struct line_requests_slot *b = malloc(nc * sizeof *b);
    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i < rq->n; i++)
        b[i] = rq->slots[(rq->head + i) % rq->cap];
    free(rq->slots);
    rq->slots = b;
    rq->head = 0;
    rq->cap = nc;
    return 0;
}

/* Takes the oldest slot off the ring; the ring's memory goes with the last one. */
static struct line_requests_slot pop(line_requests *rq)
{
    struct line_requests_slot s = rq->slots[rq->head];
    rq->head = (rq->head + 1) % rq->cap;
    if (--rq->n == 0) {
        free(rq->slots);
        rq->slots = NULL;
        rq->head = rq->cap = 0;
    }
    return s;
}

static int connected(const line_requests *rq)
{
    return !rq->closed && rq->lr->base.transport &&
           !transport_disconnecting(rq->lr->base.transport);
}

static deferred *failed(int code, const char *what)
{
    return deferred_fail(deferred_failure_new(code, "%s", what));
}

deferred *line_requests_expect(line_requests *rq, int tag)
{
    if (!rq)
        return failed(EINVAL, "no line_requests");
    if (!connected(rq))
        return failed(ENOTCONN, "not connected");
    deferred *d = grow(rq) < 0 ? NULL : deferred_new();
    if (!d)
        return failed(ENOMEM, "out of memory");
    rq->slots[(rq->head + rq->n) % rq->cap] = (struct line_requests_slot){d, tag};
    rq->n++;
    return deferred_ref(d); /* ours stays in the ring */
}

deferred *line_requests_send(line_requests *rq, const char *line, size_t len, int tag)
{
    if (!rq)
        return failed(EINVAL, "no line_requests");
    if (!connected(rq))
        return failed(ENOTCONN, "not connected");
    /* room first: once the line is out, its Deferred must be queued */
    if (grow(rq) < 0)
        return failed(ENOMEM, "out of memory");
    int rc = line_receiver_send_line(rq->lr, line, len);
    if (rc < 0)
        return deferred_fail(deferred_failure_new(-rc, "cannot send the request"));
    return line_requests_expect(rq, tag);
}

/* An answer string carries its length in a header just before it, so that a line with
 * NUL bytes can be given back whole; answer_free recognises such strings. */
struct answer_hdr {
    size_t len;
};

static void answer_free(void *s)
{
    if (s)
        free((char *)s - sizeof(struct answer_hdr));
}

deferred_result line_requests_answer_copy(const char *line, size_t len)
{
    char *b = len < SIZE_MAX - sizeof(struct answer_hdr) - 1
                  ? malloc(sizeof(struct answer_hdr) + len + 1)
                  : NULL;
    if (!b)
        return deferred_error(ENOMEM, "out of memory");
    struct answer_hdr h = {len};
    memcpy(b, &h, sizeof h);
    char *s = b + sizeof h;
    if (len)
        memcpy(s, line, len);
    s[len] = '\0';
    return deferred_str(s, answer_free);
}

size_t line_requests_answer_len(const deferred_result *r)
{
    if (!r || r->kind != DEFERRED_STR || !r->u.s)
        return 0;
    if (r->free_fn != answer_free)
        return strlen(r->u.s);
    struct answer_hdr h;
    memcpy(&h, r->u.s - sizeof h, sizeof h);
    return h.len;
}

int line_requests_line_received(line_requests *rq, const char *line, size_t len)
{
    const line_requests_ops *ops = rq->ops;
    if (!rq->n || (ops->is_answer && !ops->is_answer(rq, line, len)))
        return ops->other_line ? ops->other_line(rq, line, len) : 0;
    struct line_requests_slot s = pop(rq);
    deferred_result r =
        ops->answer ? ops->answer(rq, s.tag, line, len) : line_requests_answer_copy(line, len);
    deferred_callback(s.d, r); /* cancelled: swallowed (A15), the answer is dropped */
    deferred_unref(s.d);
    return 0;
}

void line_requests_fail_all(line_requests *rq, deferred_failure *f)
{
    if (!f)
        f = deferred_failure_new(ECONNABORTED, "requests abandoned");
    /* only those pending now: an errback may make new requests */
    for (size_t k = rq->n; k > 0 && rq->n; k--) {
        struct line_requests_slot s = pop(rq);
        deferred_errback(s.d, deferred_failure_ref(f));
        deferred_unref(s.d);
    }
    deferred_failure_unref(f);
}

void line_requests_connection_lost(line_requests *rq, const protocol_reason *reason)
{
    rq->closed = 1;
    line_requests_fail_all(rq, deferred_failure_from_reason(reason));
}

size_t line_requests_pending(const line_requests *rq) { return rq ? rq->n : 0; }
