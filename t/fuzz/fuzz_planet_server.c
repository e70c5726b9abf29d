/* Differential fuzz target for planet-server's HTTP/1.1 request reader (apps/).
 *
 * The input's first byte picks how to cut the rest into reads; the rest is what a client
 * sends. We feed it to the server's protocol over the in-memory transport twice: in one
 * read, and cut into pieces of 1 to 8 bytes. Both must write the same bytes and agree on
 * closing the connection (the LineReceiver makes fragmentation invisible; the request
 * reader must not undo that). The output must be a sequence of whole HTTP/1.1 responses,
 * each with a Content-Length its body matches (a HEAD answer has no body); after a
 * refused request (400, 405, 505) the server says "Connection: close" and closes. ASan/UBSan watch
 * the rest (make fuzz). No --delay: the answers are written at once.
 *
 *   make fuzz                                   libFuzzer + ASan/UBSan (clang)
 *   build/fuzz/fuzz_planet_server FILE...       replay inputs (any compiler)
 *   build/fuzz/fuzz_planet_server --random N    N pseudo-random inputs (make check) */
#define PLANET_SERVER_NO_MAIN
#include "apps/planet-server.c"

#include <stdint.h>
#include <twistc/memory_transport.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *serve(const char *in, size_t n, unsigned seed, size_t *outlen, int *closed)
{
    protocol *p = build(NULL, NULL, 0);
    transport *t = memory_transport_new();
    if (!p || !t)
        abort();
    memory_transport_connect(t, p);
    for (size_t pos = 0; pos < n && !transport_disconnecting(t);) {
        size_t chunk = seed ? 1 + (seed = seed * 1103515245u + 12345u) / 65536 % 8 : n;
        if (chunk > n - pos)
            chunk = n - pos;
        memory_transport_receive(t, in + pos, chunk);
        pos += chunk;
    }
    const char *v = memory_transport_value(t, outlen);
    char *out = malloc(*outlen + 1);
    if (!out)
        abort();
    memcpy(out, v, *outlen);
    out[*outlen] = '\0';
    *closed = transport_disconnecting(t);
    memory_transport_lose(t, PROTOCOL_DONE, 0); /* frees the connection */
    memory_transport_free(t);
    return out;
}

/* Whole responses, back to back; returns 1 when the stream parses. */
static int well_formed(const char *s, size_t n, int closed)
{
    const char *last = NULL;
    for (size_t pos = 0; pos < n;) {
        if (n - pos < 9 || memcmp(s + pos, "HTTP/1.1 ", 9) != 0)
            return 0;
        const char *end = strstr(s + pos, "\r\n\r\n"), *cl = strstr(s + pos, "Content-Length: ");
        if (!end || !cl || cl > end)
            return 0;
        last = s + pos;
        size_t head = (size_t)(end + 4 - (s + pos)), body = strtoul(cl + 16, NULL, 10);
        size_t next = pos + head + body;
        if (next <= n && (next == n || memcmp(s + next, "HTTP/1.1 ", 9) == 0))
            pos = next;
        else if (pos + head == n || memcmp(s + pos + head, "HTTP/1.1 ", 9) == 0)
            pos += head; /* a HEAD answer */
        else
            return 0;
    }
    /* After refusing a request (400, 405, 505) the server closes. */
    int status = last ? atoi(last + 9) : 0;
    if ((status == 400 || status == 405 || status == 505) &&
        (!closed || !strstr(last, "Connection: close\r\n")))
        return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static int ready;
    if (!ready) {
        for (int i = 0; i <= NPLANETS; i++)
            if (!pages[i] && !(pages[i] = make_page(i < NPLANETS ? &planets[i] : NULL)))
                abort();
        ready = 1;
    }
    const char *in = (const char *)data + 1;
    size_t n = size - 1, len1, len2;
    int closed1, closed2;
    char *whole = serve(in, n, 0, &len1, &closed1);
    char *split = serve(in, n, data[0] | 1u, &len2, &closed2);
    if (len1 != len2 || closed1 != closed2 || memcmp(whole, split, len1) != 0) {
        fprintf(stderr, "mismatch: whole read wrote %zu bytes (closed %d), split reads %zu "
                        "(closed %d)\n", len1, closed1, len2, closed2);
        abort();
    }
    if (!well_formed(whole, len1, closed1)) {
        fprintf(stderr, "not a sequence of whole responses:\n%.*s\n", (int)len1, whole);
        abort();
    }
    free(whole);
    free(split);
    return 0;
}

#ifndef TWISTC_LIBFUZZER
#include "fuzz_replay.h"

static unsigned rnd(unsigned n)
{
    static unsigned x = 4321;
    x = x * 1103515245u + 12345u;
    return (x >> 16 & 0x7fff) % n;
}

static void put(char *buf, size_t cap, size_t *n, const char *s)
{
    size_t l = strlen(s);
    if (*n + l < cap) {
        memcpy(buf + *n, s, l);
        *n += l;
    }
}

/* Without libFuzzer: replay the files named, or N pseudo-random inputs. */
int main(int argc, char **argv)
{
    static char buf[1 << 16];
    int replayed = fuzz_replay_files(argc, argv);
    if (replayed >= 0)
        return replayed;
    /* Requests from parts, mostly valid, 1 to 4 back to back; then maybe one byte
     * changed: valid-then-broken pipelines are what the generator must reach. */
    static const char *const methods[] = {"GET ", "GET ", "HEAD ", "POST ", "G T ", ""};
    static const char *const targets[] = {"/planet.debian.net/", "/planetzope.org", "/",
                                          "/nope?q=1", "http://h/planetzope.org/", "x", ""};
    static const char *const versions[] = {" HTTP/1.1\r\n", " HTTP/1.1\r\n", " HTTP/1.0\n",
                                           " HTTP/2.0\r\n", " HTTP/1.1 x\r\n", "\r\n"};
    static const char *const headers[] = {
        "Host: x\r\n", "Host: x\r\n", "Connection: close\r\n", "Connection: keep-alive\r\n",
        "Content-Length: 3\r\n", "Content-Length: 99999999\r\n", "Transfer-Encoding: chunked\r\n",
        "X: y\r\n", " folded\r\n", "bad line\r\n", ":\r\n", "Host: y\r\n", "\r\n",
    };
#define PICK(a) (a)[rnd(sizeof(a) / sizeof *(a))]
#define PUT(str) put(buf, sizeof buf, &n, (str))
    unsigned long runs = argc > 2 ? strtoul(argv[2], NULL, 10) : 100000;
    for (unsigned long r = 0; r < runs; r++) {
        size_t n = 1;
        buf[0] = (char)rnd(256);
        for (int q = (int)rnd(4); q >= 0; q--) {
            PUT(PICK(methods));
            PUT(PICK(targets));
            PUT(PICK(versions));
            int body = 0;
            for (int h = (int)rnd(4); h >= 0; h--) {
                const char *hd = PICK(headers);
                body |= strcmp(hd, "Content-Length: 3\r\n") == 0;
                PUT(hd);
            }
            PUT("\r\n");
            if (body)
                PUT("abc");
        }
        if (rnd(4) == 0 && n > 1)
            buf[1 + rnd((unsigned)n - 1)] = "\r\n :\0a/"[rnd(7)];
        LLVMFuzzerTestOneInput((const uint8_t *)buf, n);
    }
#undef PICK
#undef PUT
    printf("fuzz_planet_server: %lu random inputs, no mismatch\n", runs);
    return 0;
}
#endif
