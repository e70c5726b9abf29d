/* Differential fuzz target for the HTTP response reader (protocols/http_parser.c).
 *
 * The first two input bytes choose the request (HEAD or not, decode or not), the limits
 * and how the stream is cut into reads; the rest is what the server sends, then the
 * connection closes cleanly. The same stream is fed once whole and once in those pieces
 * through the in-memory transport: the outcome (error code, or status, headers and body)
 * must be the same, whatever the split. Beyond that: no crash, no leak (ASan), the body
 * never passes its limit, a failure always has a message.
 *
 *   make fuzz                               libFuzzer + ASan/UBSan (clang), FUZZ_SECONDS
 *   build/fuzz/fuzz_http_response FILE...   replay inputs (any compiler)
 *   build/fuzz/fuzz_http_response --random N   N generated answers (make check)
 */
#include <twistc/memory_transport.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocols/http_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct outcome {
    int calls, err, status, nheaders;
    size_t body_len, max_body;
    unsigned char body_sum[32];
    char msg[64];
};

static void on_done(http__reader *rd, int err, http_response *resp);

struct fz {
    http__reader rd; /* first */
    struct outcome out;
};

static void on_done(http__reader *rd, int err, http_response *resp)
{
    struct outcome *o = &((struct fz *)rd)->out;
    o->calls++;
    o->err = err;
    if (err) {
        if (!rd->msg[0])
            abort(); /* every failure says what was wrong */
        snprintf(o->msg, sizeof o->msg, "%.63s", rd->msg);
        if (resp)
            abort();
        return;
    }
    if (!resp || !resp->body || resp->body[resp->body_len] != 0 || resp->body_len > o->max_body)
        abort();
    o->status = resp->status;
    o->nheaders = (int)http_headers_count(&resp->headers);
    o->body_len = resp->body_len;
    for (size_t i = 0; i < resp->body_len; i++)
        o->body_sum[i % 32] = (unsigned char)(o->body_sum[i % 32] * 31 + (unsigned char)resp->body[i]);
    http_response_free(resp);
}

static const line_receiver_ops ops = {
    .delimiter = "\n",
    .max_length = HTTP__MAX_LINE,
    .line_received = http__reader_line,
    .raw_data_received = http__reader_raw,
    .line_length_exceeded = http__reader_too_long,
};

static void run(const uint8_t *s, size_t n, unsigned flags, unsigned seed, int split,
                struct outcome *out)
{
    static const size_t headers[] = {64, 300, 0};
    static const size_t bodies[] = {16, 1000, 0};
    struct fz fz;
    if (http__reader_init(&fz.rd, &ops) < 0)
        abort();
    memset(&fz.out, 0, sizeof fz.out);
    fz.rd.done = on_done;
    size_t mb = bodies[(flags >> 4) % 3];
    fz.out.max_body = mb ? mb : HTTP_DEFAULT_MAX_BODY;
    if (http__reader_start(&fz.rd, flags & 1, headers[(flags >> 2) % 3], mb, (flags >> 1) & 1) < 0)
        abort();
    transport *t = memory_transport_new();
    if (!t)
        abort();
    memory_transport_connect(t, &fz.rd.lr.base);
    size_t pos = 0;
    while (pos < n && !transport_disconnecting(t)) {
        size_t chunk = n - pos;
        if (split) {
            seed = seed * 1103515245u + 12345u;
            chunk = seed & 0x100 ? 1 : 1 + (seed >> 16) % 23;
            if (chunk > n - pos)
                chunk = n - pos;
        }
        if (memory_transport_receive(t, s + pos, chunk) != 0)
            break; /* the reader refused the data: the connection closes */
        pos += chunk;
    }
    protocol_reason why = {.kind = PROTOCOL_DONE, .message = "connection done"};
    http__reader_lost(&fz.rd, &why);
    http__reader_reset(&fz.rd);
    memory_transport_lose(t, PROTOCOL_DONE, 0);
    memory_transport_free(t);
    *out = fz.out;
}

static unsigned long n_ok, n_failed, n_body; /* what the generated answers reached */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    struct outcome whole, split;
    run(data + 2, size - 2, data[0], data[1], 0, &whole);
    run(data + 2, size - 2, data[0], data[1], 1, &split);
    if (whole.calls > 1 || split.calls > 1 || whole.calls != split.calls ||
        whole.err != split.err || whole.status != split.status ||
        whole.nheaders != split.nheaders || whole.body_len != split.body_len ||
        memcmp(whole.body_sum, split.body_sum, sizeof whole.body_sum) != 0) {
        fprintf(stderr,
                "mismatch: calls %d/%d err %d/%d (%s / %s) status %d/%d headers %d/%d "
                "body %zu/%zu\n",
                whole.calls, split.calls, whole.err, split.err, whole.msg, split.msg,
                whole.status, split.status, whole.nheaders, split.nheaders, whole.body_len,
                split.body_len);
        abort();
    }
    n_ok += whole.calls && !whole.err;
    n_failed += whole.calls && whole.err;
    n_body += whole.body_len > 0;
    return 0;
}

#ifndef TWISTC_LIBFUZZER
#include "fuzz_replay.h"

/* Answers built from pieces, good and bad: a status line, some headers, the blank
 * line, some body pieces; now and then a random byte anywhere. Most are plausible
 * enough to reach the body, the chunked decoder and zlib. */
static const char *const statuses[] = {
    "HTTP/1.1 200 OK\r\n", "HTTP/1.0 404 Not Found\r\n",
    ("HTTP/1.1 100 Continue\r\n\r\n" /* then the real one: */
     "HTTP/1.1 200 OK\r\n"), "HTTP/1.1 204 No Content\r\n", "HTTP/1.1 304 x\r\n",
    "HTTP/1.1 200\n", "HTTP/2 200\r\n", "\r\nHTTP/1.1 301 Moved\r\n",
};
static const char *const headers[] = {
    "Content-Length: 5\r\n", "Content-Length: 0\r\n", "Content-Length: 5, 5\r\n",
    "Content-Length: x\r\n", "Transfer-Encoding: chunked\r\n", "Transfer-Encoding: gzip\r\n",
    "Transfer-Encoding: chunked\r\n", "Content-Encoding: gzip\r\n",
    "Content-Encoding: deflate\r\n", "Connection: close\r\n", "X-A: b\r\n", "no colon\r\n",
    " folded\r\n", "Content-Length: 30\r\n",
};
static const char *const bodies[] = {
    "5\r\n", "0\r\n", "a;x=y\r\n", "zz\r\n", "hello", "\r\n", "\r\n", "Trailer: t\r\n",
    "0123456789abcdef", "5\r\nhello\r\n", "0\r\n\r\n",
    ("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xcb\x48\xcd\xc9\xc9\x07\x00\x86\xa6\x10\x36"
     "\x05\x00\x00\x00"),
    "\x78\x9c\xcb\x48\xcd\xc9\xc9\x07\x00\x06\x2c\x02\x15",
};
#define N(a) (sizeof(a) / sizeof *(a))

static unsigned rnd(unsigned *x)
{
    *x = *x * 1103515245u + 12345u;
    return *x >> 16;
}

static size_t put(uint8_t *buf, size_t n, const char *p, size_t pl, unsigned *x)
{
    if (rnd(x) % 16 == 0)
        buf[n++] = (uint8_t)rnd(x);
    memcpy(buf + n, p, pl);
    return n + pl;
}

int main(int argc, char **argv)
{
    int replayed = fuzz_replay_files(argc, argv);
    if (replayed >= 0)
        return replayed;
    unsigned long runs = argc > 2 ? strtoul(argv[2], NULL, 10) : 100000;
    static uint8_t buf[4096];
    unsigned x = 12345;
    for (unsigned long r = 0; r < runs; r++) {
        size_t n = 2;
        buf[0] = (uint8_t)rnd(&x);
        buf[1] = (uint8_t)rnd(&x);
        const char *st = statuses[rnd(&x) % 4 ? 0 : rnd(&x) % N(statuses)];
        n = put(buf, n, st, strlen(st), &x);
        for (int j = (int)(rnd(&x) % 4); j > 0; j--) {
            const char *h = headers[rnd(&x) % N(headers)];
            n = put(buf, n, h, strlen(h), &x);
        }
        if (rnd(&x) % 8)
            n = put(buf, n, "\r\n", 2, &x);
        for (int j = (int)(rnd(&x) % 8); j > 0; j--) {
            unsigned i = rnd(&x) % N(bodies);
            n = put(buf, n, bodies[i], i == N(bodies) - 2 ? 25 : i == N(bodies) - 1 ? 13
                                                                 : strlen(bodies[i]), &x);
        }
        LLVMFuzzerTestOneInput(buf, n);
    }
    printf("fuzz_http_response: %lu generated answers (%lu complete, %lu with a body, %lu "
           "failed), no mismatch\n", runs, n_ok, n_body, n_failed);
    return 0;
}
#endif
