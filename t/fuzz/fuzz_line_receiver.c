/* Differential fuzz target for the LineReceiver (semantics B1-B3).
 *
 * The input picks a delimiter, a maximum line length and a way to cut the stream into
 * reads; the rest is the stream. We feed it in those pieces through the in-memory
 * transport and compare what the receiver delivers with a ten-line reference that sees
 * the whole stream at once. Fragmentation must not matter: same lines, in the same order,
 * and "line too long" on exactly the same streams. The input may also ask for a switch of
 * delimiter and maximum length from inside line_received after a given line (Twisted's
 * assignment to self.delimiter / MAX_LENGTH): the rest of the bytes already received
 * must be split with the new ones, as the reference does on the whole stream.
 *
 *   make fuzz                      libFuzzer + ASan/UBSan (clang), FUZZ_SECONDS each
 *   build/fuzz/fuzz_line_receiver FILE...   replay inputs (any compiler)
 */
#include <twistc/line_receiver.h>
#include <twistc/memory_transport.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Twisted's default, the peers' LF, a two-byte one that is also text, and a doubled
 * byte (a delimiter that can overlap itself). */
static const char *const delimiters[] = {"\n", "\r\n", "ab", "\n\n"};

/* Lines are recorded as <len:4><bytes>, so any byte (NUL, delimiter pieces) compares. */
struct rec {
    char *buf;
    size_t len, cap;
    int exceeded;
};

static void rec_add(struct rec *r, const char *p, size_t n)
{
    if (r->len + n + 4 > r->cap) {
        r->cap = (r->len + n + 4) * 2;
        r->buf = realloc(r->buf, r->cap);
        if (!r->buf)
            abort();
    }
    uint32_t n32 = (uint32_t)n;
    memcpy(r->buf + r->len, &n32, 4);
    memcpy(r->buf + r->len + 4, p, n);
    r->len += n + 4;
}

/* The switch: after line number `after` (counted from 0), delimiter d2 and max2. */
struct sw {
    int on;
    size_t after;
    const char *d2;
    size_t max2;
};

struct fz {
    line_receiver lr; /* first: the callbacks get &lr */
    struct rec got;
    struct sw sw;
    size_t nlines;
};

static int on_line(line_receiver *lr, const char *line, size_t len)
{
    struct fz *fz = (struct fz *)lr;
    rec_add(&fz->got, line, len);
    if (fz->sw.on && fz->nlines++ == fz->sw.after) {
        if (line_receiver_set_delimiter(lr, fz->sw.d2) < 0 ||
            line_receiver_set_max_length(lr, fz->sw.max2) < 0)
            abort();
    }
    return 0;
}

static int on_exceeded(line_receiver *lr, const char *data, size_t len)
{
    ((struct fz *)lr)->got.exceeded = 1;
    transport_lose_connection(lr->base.transport); /* the default, made visible */
    return 0;
}

/* Twisted's rules on the whole stream: split at the first delimiter; a line longer than
 * max, or an unterminated rest of max + len(delimiter) bytes or more, is "too long" and
 * nothing after it is delivered. */
static void reference(const char *s, size_t n, const char *d, size_t dl, size_t max,
                      const struct sw *sw, struct rec *out)
{
    size_t pos = 0, nlines = 0;
    for (;;) {
        const char *hit = NULL;
        for (size_t i = pos; i + dl <= n; i++)
            if (memcmp(s + i, d, dl) == 0) {
                hit = s + i;
                break;
            }
        if (!hit) {
            if (n - pos >= max + dl)
                out->exceeded = 1;
            return;
        }
        size_t len = (size_t)(hit - (s + pos));
        if (len > max) {
            out->exceeded = 1;
            return;
        }
        rec_add(out, s + pos, len);
        pos += len + dl;
        if (sw->on && nlines++ == sw->after) {
            d = sw->d2;
            dl = strlen(d);
            max = sw->max2;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    const char *delim = delimiters[data[0] % 4];
    size_t dl = strlen(delim);
    size_t max = 1 + data[1] % 48;
    unsigned seed = data[2];
    /* data[0] bits 2-3: the second delimiter, 4-6: after which line, 7: switch or not;
     * data[1] bits 6-7 with data[2]'s upper bits: the second maximum */
    struct sw sw = {.on = data[0] >> 7,
                    .after = (data[0] >> 4) & 7,
                    .d2 = delimiters[(data[0] >> 2) % 4],
                    .max2 = 1 + ((data[1] >> 6) * 16 + (data[2] >> 4)) % 48};
    const char *s = (const char *)data + 3;
    size_t n = size - 3;

    line_receiver_ops ops = {.delimiter = delim, .max_length = max,
                             .line_received = on_line, .line_length_exceeded = on_exceeded};

    struct fz fz = {.sw = sw};
    if (line_receiver_init(&fz.lr, &ops) < 0)
        abort();
    transport *t = memory_transport_new();
    if (!t)
        abort();
    memory_transport_connect(t, &fz.lr.base);
    size_t pos = 0;
    while (pos < n && !transport_disconnecting(t)) {
        /* Chunk sizes: all 1-byte, or pseudo-random 1..16, from the seed. */
        size_t chunk = seed & 1 ? 1 : 1 + (seed = seed * 1103515245u + 12345u) % 16;
        if (chunk > n - pos)
            chunk = n - pos;
        memory_transport_receive(t, s + pos, chunk);
        pos += chunk;
    }

    struct rec want = {0};
    reference(s, n, delim, dl, max, &sw, &want);
    if (want.exceeded != fz.got.exceeded || want.len != fz.got.len ||
        (want.len && memcmp(want.buf, fz.got.buf, want.len) != 0)) {
        fprintf(stderr, "mismatch: delimiter %zu bytes, max %zu, exceeded want %d got %d, "
                        "lines bytes want %zu got %zu\n",
                dl, max, want.exceeded, fz.got.exceeded, want.len, fz.got.len);
        abort();
    }
    memory_transport_lose(t, PROTOCOL_DONE, 0);
    memory_transport_free(t);
    free(want.buf);
    free(fz.got.buf);
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
    uint8_t buf[256];
    unsigned x = 12345;
    for (unsigned long r = 0; r < runs; r++) {
        size_t n = 3 + (x = x * 1103515245u + 12345u) % 200;
        for (size_t i = 0; i < n; i++) {
            x = x * 1103515245u + 12345u;
            /* A small alphabet, so delimiters and long lines both happen often. */
            buf[i] = (uint8_t)"\n\rab\0x"[(x >> 16) % 6];
        }
        buf[0] = (uint8_t)(x >> 8);
        buf[1] = (uint8_t)(x >> 12);
        buf[2] = (uint8_t)(x >> 20);
        LLVMFuzzerTestOneInput(buf, n);
    }
    printf("fuzz_line_receiver: %lu random inputs, no mismatch\n", runs);
    return 0;
}
#endif
