/* Fuzz target for the SMTP reply parser (protocols/smtp_reply.c), as the client runs it:
 * lines cut by a LineReceiver ("\n", a small maximum line length) go to smtp_reply_line.
 *
 * The stream is fed twice: whole, in one read, and cut into the reads the input's first
 * byte picks. Both runs must give the same events (each complete reply's code and text,
 * the first error, "line too long"). Each complete reply is also checked against a
 * reference built from its lines: code 200..599, text = the lines' texts after the code
 * and separator, joined by '\n', never larger than the limit.
 *
 *   make fuzz                               libFuzzer + ASan/UBSan (clang)
 *   build/fuzz/fuzz_smtp_reply FILE...      replay inputs (any compiler)
 *   build/fuzz/fuzz_smtp_reply --random N   N pseudo-random inputs (make check)
 */
#include <twistc/line_receiver.h>
#include <twistc/memory_transport.h>
#include <twistc/smtp.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct log {
    char *buf;
    size_t len, cap;
};

static void log_add(struct log *l, const void *p, size_t n)
{
    if (l->len + n > l->cap) {
        l->cap = (l->len + n) * 2 + 64;
        l->buf = realloc(l->buf, l->cap);
        if (!l->buf)
            abort();
    }
    memcpy(l->buf + l->len, p, n);
    l->len += n;
}

struct fz {
    line_receiver lr; /* first */
    smtp_reply rp;
    struct log events;
    struct log ref; /* the texts of the current reply's lines, joined, by the reference */
    size_t ref_lines;
    int stopped;
};

static void check_reply(struct fz *fz)
{
    smtp_reply *rp = &fz->rp;
    if (rp->code < 200 || rp->code > 599 || rp->lines != fz->ref_lines ||
        rp->len != fz->ref.len || rp->len > rp->max_reply ||
        (rp->len && memcmp(rp->text, fz->ref.buf, rp->len) != 0) || rp->text[rp->len]) {
        fprintf(stderr, "reply %d (%zu lines, %zu bytes) differs from its lines\n", rp->code,
                rp->lines, rp->len);
        abort();
    }
}

static int on_line(line_receiver *lr, const char *line, size_t len)
{
    struct fz *fz = (struct fz *)lr;
    const char *why = NULL;
    int rc = smtp_reply_line(&fz->rp, line, len, &why);
    if (rc < 0) {
        if (!why)
            abort();
        log_add(&fz->events, "E", 1);
        log_add(&fz->events, &rc, sizeof rc);
        fz->stopped = 1;
        return rc; /* the client drops the connection */
    }
    /* The reference: what the line adds to the reply's text. */
    size_t l = len && line[len - 1] == '\r' ? len - 1 : len;
    if (fz->ref_lines++)
        log_add(&fz->ref, "\n", 1);
    if (l > 4)
        log_add(&fz->ref, line + 4, l - 4);
    if (rc == 1) {
        check_reply(fz);
        log_add(&fz->events, "R", 1);
        log_add(&fz->events, &fz->rp.code, sizeof fz->rp.code);
        log_add(&fz->events, &fz->rp.len, sizeof fz->rp.len);
        log_add(&fz->events, fz->rp.text, fz->rp.len);
        smtp_reply_reset(&fz->rp);
        fz->ref.len = 0;
        fz->ref_lines = 0;
    }
    return 0;
}

static int on_too_long(line_receiver *lr, const char *data, size_t len)
{
    struct fz *fz = (struct fz *)lr;
    log_add(&fz->events, "L", 1);
    fz->stopped = 1;
    return -EMSGSIZE;
}

static void feed(const char *s, size_t n, size_t max_line, size_t max_reply, unsigned seed,
                 int whole, struct log *out)
{
    line_receiver_ops ops = {.delimiter = "\n", .max_length = max_line,
                             .line_received = on_line, .line_length_exceeded = on_too_long};
    struct fz fz;
    memset(&fz, 0, sizeof fz);
    if (line_receiver_init(&fz.lr, &ops) < 0)
        abort();
    smtp_reply_init(&fz.rp, max_reply);
    transport *t = memory_transport_new();
    if (!t)
        abort();
    memory_transport_connect(t, &fz.lr.base);
    size_t pos = 0;
    while (pos < n && !fz.stopped && !transport_disconnecting(t)) {
        size_t chunk = whole ? n : 1 + (seed = seed * 1103515245u + 12345u) % 9;
        if (chunk > n - pos)
            chunk = n - pos;
        memory_transport_receive(t, s + pos, chunk);
        pos += chunk;
    }
    memory_transport_lose(t, PROTOCOL_DONE, 0);
    memory_transport_free(t);
    smtp_reply_clear(&fz.rp);
    free(fz.ref.buf);
    *out = fz.events;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t max_line = 4 + data[0] % 60;
    size_t max_reply = 1 + data[1] % 200;
    unsigned seed = data[0] ^ (unsigned)data[1] << 8;
    const char *s = (const char *)data + 2;
    size_t n = size - 2;
    struct log a, b;
    feed(s, n, max_line, max_reply, seed, 1, &a);
    feed(s, n, max_line, max_reply, seed, 0, &b);
    if (a.len != b.len || (a.len && memcmp(a.buf, b.buf, a.len) != 0)) {
        fprintf(stderr, "whole and split input disagree (max line %zu, max reply %zu)\n",
                max_line, max_reply);
        abort();
    }
    free(a.buf);
    free(b.buf);
    return 0;
}

#ifndef TWISTC_LIBFUZZER
#include "fuzz_replay.h"

/* Without libFuzzer: replay the files named, or N pseudo-random inputs. */
int main(int argc, char **argv)
{
    int replayed = fuzz_replay_files(argc, argv);
    if (replayed >= 0)
        return replayed;
    unsigned long runs = argc > 2 ? strtoul(argv[2], NULL, 10) : 100000;
    /* Pieces of replies, so that whole replies (and near misses) happen often. */
    static const char *const parts[] = {"250-", "250 ", "220 ", "550 ", "354", "\r\n", "\n",
                                        "ok", "x", "25", "2", "-", " ", "\r", "999 ", "251 "};
    uint8_t buf[512];
    unsigned x = 4242;
    for (unsigned long r = 0; r < runs; r++) {
        size_t n = 2;
        buf[0] = (uint8_t)((x = x * 1103515245u + 12345u) >> 16);
        buf[1] = (uint8_t)(x >> 8);
        size_t k = (x = x * 1103515245u + 12345u) % 40;
        for (size_t i = 0; i < k; i++) {
            const char *p = parts[((x = x * 1103515245u + 12345u) >> 16) % 16];
            size_t pl = strlen(p);
            if (n + pl > sizeof buf)
                break;
            memcpy(buf + n, p, pl);
            n += pl;
        }
        LLVMFuzzerTestOneInput(buf, n);
    }
    printf("fuzz_smtp_reply: %lu random inputs, whole and split agree\n", runs);
    return 0;
}
#endif
