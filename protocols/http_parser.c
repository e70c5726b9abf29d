/* The HTTP/1.1 response reader: a LineReceiver that reads the status line and the
 * headers as lines, then switches to raw mode for the body, as Twisted's
 * HTTPClientParser does. The body is framed by Content-Length, chunked coding (decoded
 * here by a small byte state machine, trailers read and dropped) or the close of the
 * connection. Every malformed input ends in done(err) with a message naming it; the
 * callbacks then return non-zero, which closes the connection. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <zlib.h>

#include "protocols/http_internal.h"

enum { CS_SIZE, CS_DATA, CS_DATA_CR, CS_DATA_LF, CS_TRAILER };

#define CHUNK_LINE_MAX 4096

static void rd_zfree(http__reader *rd)
{
    if (rd->z) {
        if (rd->zstarted)
            inflateEnd(rd->z);
        free(rd->z);
        rd->z = NULL;
        rd->zstarted = 0;
    }
}

void http__reader_reset(http__reader *rd)
{
    http_response_free(rd->resp);
    rd->resp = NULL;
    rd_zfree(rd);
    rd->phase = RD_IDLE;
    if (line_receiver_raw_mode(&rd->lr))
        line_receiver_set_line_mode(&rd->lr, NULL, 0);
}

int http__reader_init(http__reader *rd, const line_receiver_ops *ops)
{
    memset(rd, 0, sizeof *rd);
    return line_receiver_init(&rd->lr, ops);
}

int http__reader_start(http__reader *rd, int head, size_t max_header, size_t max_body,
                       int decode)
{
    http__reader_reset(rd);
    rd->resp = calloc(1, sizeof *rd->resp);
    if (!rd->resp)
        return -ENOMEM;
    rd->max_header = max_header ? max_header : HTTP_DEFAULT_MAX_HEADER;
    rd->max_body = max_body ? max_body : HTTP_DEFAULT_MAX_BODY;
    rd->head = (uint8_t)!!head;
    rd->decode = (uint8_t)!!decode;
    rd->header_bytes = rd->body_cap = 0;
    rd->got_bytes = 0;
    rd->phase = RD_STATUS;
    return 0;
}

/* Fails the response in progress: frees it, then tells the owner. Returns the error
 * for the LineReceiver callback to return (which closes the connection). */
DEFERRED__PRINTF(3, 4)
static int rd_fail(http__reader *rd, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rd->msg, sizeof rd->msg, fmt, ap);
    va_end(ap);
    int was = rd->phase != RD_IDLE;
    http__reader_reset(rd);
    rd->keep_alive = 0;
    if (was && rd->done)
        rd->done(rd, err, NULL);
    return err;
}

static int rd_complete(http__reader *rd)
{
    http_response *resp = rd->resp;
    if (!resp->body) {
        resp->body = malloc(1);
        if (!resp->body)
            return rd_fail(rd, -ENOMEM, "out of memory");
    }
    resp->body[resp->body_len] = 0;
    rd->resp = NULL;
    rd_zfree(rd);
    rd->phase = RD_IDLE;
    if (line_receiver_raw_mode(&rd->lr))
        line_receiver_set_line_mode(&rd->lr, NULL, 0);
    else if (line_receiver_clear_line_buffer(&rd->lr))
        rd->keep_alive = 0; /* bytes after a bodiless answer: never read them as the next */
    if (rd->done)
        rd->done(rd, 0, resp);
    else
        http_response_free(resp);
    return 0;
}

/* ---- Body bytes ----------------------------------------------------------------------- */

static int body_room(http__reader *rd, size_t more)
{
    http_response *resp = rd->resp;
    if (resp->body_len + more > rd->max_body)
        return rd_fail(rd, -EMSGSIZE, "response body larger than %zu bytes", rd->max_body);
    size_t need = resp->body_len + more + 1;
    if (need > rd->body_cap) {
        size_t cap = rd->body_cap ? rd->body_cap * 2 : 1024;
        while (cap < need)
            cap *= 2;
        if (cap > rd->max_body + 1)
            cap = rd->max_body + 1;
        char *b = realloc(resp->body, cap);
        if (!b)
            return rd_fail(rd, -ENOMEM, "out of memory for the body");
        resp->body = b;
        rd->body_cap = cap;
    }
    return 0;
}

static int inflate_more(http__reader *rd, const char *data, size_t n, int finish)
{
    z_stream *z = rd->z;
    z->next_in = (Bytef *)(uintptr_t)data;
    z->avail_in = (uInt)n;
    for (;;) {
        http_response *resp = rd->resp;
        if (rd->body_cap <= resp->body_len + 1) {
            size_t want = rd->body_cap ? rd->body_cap : 4096;
            if (resp->body_len + want > rd->max_body)
                want = rd->max_body - resp->body_len;
            if (want == 0)
                return rd_fail(rd, -EMSGSIZE, "decoded response body larger than %zu bytes",
                               rd->max_body);
            int rc = body_room(rd, want);
            if (rc < 0)
                return rc;
            resp = rd->resp;
        }
        z->next_out = (Bytef *)resp->body + resp->body_len;
        z->avail_out = (uInt)(rd->body_cap - 1 - resp->body_len);
        int zr = inflate(z, Z_NO_FLUSH);
        resp->body_len = (size_t)((char *)z->next_out - resp->body);
        if (zr == Z_STREAM_END)
            return 0; /* bytes after the end of the stream are ignored */
        if (zr == Z_BUF_ERROR && z->avail_in == 0) {
            if (finish)
                return rd_fail(rd, -EPROTO, "compressed body truncated");
            return 0;
        }
        if (zr != Z_OK && zr != Z_BUF_ERROR)
            return rd_fail(rd, -EPROTO, "bad compressed body (%s)", z->msg ? z->msg : "zlib");
        if (z->avail_in == 0 && z->avail_out != 0 && !finish)
            return 0;
    }
}

static int body_add(http__reader *rd, const char *data, size_t n)
{
    if (!n)
        return 0;
    if (rd->z) {
        z_stream *z = rd->z;
        if (!rd->zstarted) {
            /* "deflate" is meant to be zlib-wrapped, but some servers send it raw: look
             * at the header (RFC 1950: CM 8, check bits) to tell. gzip is recognised
             * by inflate itself (32 + window). */
            int bits = 15 + 32;
            const char *ce = http__headers_find(&rd->resp->headers, "content-encoding", 16);
            if (ce && strcasecmp(ce, "deflate") == 0) {
                unsigned char b0 = (unsigned char)data[0];
                int zlib_hdr = (b0 & 0x0f) == 8 &&
                               (n < 2 || ((b0 << 8) | (unsigned char)data[1]) % 31 == 0);
                bits = zlib_hdr ? 15 : -15;
            }
            if (inflateInit2(z, bits) != Z_OK)
                return rd_fail(rd, -ENOMEM, "zlib could not start");
            rd->zstarted = 1;
        }
        return inflate_more(rd, data, n, 0);
    }
    int rc = body_room(rd, n);
    if (rc < 0)
        return rc;
    memcpy(rd->resp->body + rd->resp->body_len, data, n);
    rd->resp->body_len += n;
    return 0;
}

/* The body ended (the framing says so): check the decoder finished too. */
static int body_end(http__reader *rd)
{
    if (rd->z && rd->zstarted) {
        int rc = inflate_more(rd, "", 0, 1);
        if (rc < 0)
            return rc;
    }
    return rd_complete(rd);
}

/* ---- Status line and headers ----------------------------------------------------------- */

/* A short printable excerpt of a line for an error message. */
static const char *excerpt(const char *s, size_t n, char out[44])
{
    size_t k = n < 40 ? n : 40;
    for (size_t i = 0; i < k; i++)
        out[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    out[k] = 0;
    return out;
}

static int parse_status(http__reader *rd, const char *s, size_t n)
{
    char ex[44];
    if (n < 12 || memcmp(s, "HTTP/1.", 7) != 0 || s[7] < '0' || s[7] > '9' || s[8] != ' ' ||
        s[9] < '1' || s[9] > '5' || s[10] < '0' || s[10] > '9' || s[11] < '0' || s[11] > '9' ||
        (n > 12 && s[12] != ' '))
        return rd_fail(rd, -EPROTO, "bad status line: \"%s\"", excerpt(s, n, ex));
    http_response *resp = rd->resp;
    resp->version_minor = s[7] - '0';
    resp->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
    size_t rl = n > 13 ? n - 13 : 0;
    for (size_t i = 0; i < rl; i++)
        if (s[13 + i] == 0)
            return rd_fail(rd, -EPROTO, "NUL byte in the status line");
    free(resp->reason);
    resp->reason = malloc(rl + 1);
    if (!resp->reason)
        return rd_fail(rd, -ENOMEM, "out of memory");
    memcpy(resp->reason, s + 13, rl);
    resp->reason[rl] = 0;
    rd->phase = RD_HEADERS;
    return 0;
}

static int parse_header(http__reader *rd, const char *s, size_t n)
{
    char ex[44];
    if (s[0] == ' ' || s[0] == '\t')
        return rd_fail(rd, -EPROTO, "obsolete folded header line");
    size_t i = 0;
    while (i < n && http__is_tchar((unsigned char)s[i]))
        i++;
    if (i == n || s[i] != ':')
        return rd_fail(rd, -EPROTO, !memchr(s, ':', n) ? "header line without colon: \"%s\""
                                           : "bad header name: \"%s\"", excerpt(s, n, ex));
    if (i == 0)
        return rd_fail(rd, -EPROTO, "empty header name");
    size_t v = i + 1, e = n;
    while (v < e && (s[v] == ' ' || s[v] == '\t'))
        v++;
    while (e > v && (s[e - 1] == ' ' || s[e - 1] == '\t'))
        e--;
    for (size_t k = v; k < e; k++)
        if (s[k] == 0 || s[k] == '\r')
            return rd_fail(rd, -EPROTO, "NUL or bare CR in header %s", excerpt(s, i, ex));
    if (http__headers_append(&rd->resp->headers, s, i, s + v, e - v) < 0)
        return rd_fail(rd, -ENOMEM, "out of memory");
    return 0;
}

/* Does the comma-separated list `v` hold `tok` (case-insensitive)? */
static int list_has(const char *v, const char *tok)
{
    size_t tl = strlen(tok);
    while (v && *v) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        size_t l = strcspn(v, ",");
        size_t t = l;
        while (t && (v[t - 1] == ' ' || v[t - 1] == '\t'))
            t--;
        if (t == tl && strncasecmp(v, tok, tl) == 0)
            return 1;
        v += l;
    }
    return 0;
}

/* The last coding of the last Transfer-Encoding header is "chunked"? */
static int te_chunked(const char *v)
{
    const char *last = strrchr(v, ',');
    last = last ? last + 1 : v;
    while (*last == ' ' || *last == '\t')
        last++;
    size_t l = strlen(last);
    while (l && (last[l - 1] == ' ' || last[l - 1] == '\t'))
        l--;
    return l == 7 && strncasecmp(last, "chunked", 7) == 0;
}

/* Content-Length: digits; a list of equal values ("5, 5") is one value. */
static int parse_length(const char *v, uint64_t *out)
{
    int have = 0;
    uint64_t val = 0;
    while (*v) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        if (!*v)
            break;
        uint64_t x = 0;
        int digits = 0;
        while (*v >= '0' && *v <= '9') {
            if (x > (UINT64_MAX - 9) / 10)
                return -1;
            x = x * 10 + (uint64_t)(*v++ - '0');
            digits++;
        }
        while (*v == ' ' || *v == '\t')
            v++;
        if (!digits || (*v && *v != ','))
            return -1;
        if (have && x != val)
            return -1;
        val = x;
        have = 1;
    }
    if (!have)
        return -1;
    *out = val;
    return 0;
}

static int headers_done(http__reader *rd)
{
    http_response *resp = rd->resp;
    int st = resp->status;
    if (st >= 100 && st < 200) {
        if (st == 101)
            return rd_fail(rd, -EPROTO, "101 Switching Protocols without an upgrade request");
        /* Interim response (100 Continue, 103 Early Hints): the real one follows. */
        http_headers_free(&resp->headers);
        rd->phase = RD_STATUS;
        return 0;
    }
    const http_headers *h = &resp->headers;
    const char *conn = NULL, *te = NULL, *cl = NULL;
    int ncl = 0;
    for (size_t i = 0; i < h->n; i++) {
        const char *name = h->buf + h->v[i].name, *val = h->buf + h->v[i].value;
        switch (h->v[i].nlen) {
        case 10:
            if (strcasecmp(name, "connection") == 0)
                conn = val;
            break;
        case 14:
            if (strcasecmp(name, "content-length") == 0) {
                uint64_t a, b;
                if (cl && (parse_length(cl, &a) < 0 || parse_length(val, &b) < 0 || a != b))
                    return rd_fail(rd, -EPROTO, "conflicting Content-Length headers");
                cl = val;
                ncl++;
            }
            break;
        case 17:
            if (strcasecmp(name, "transfer-encoding") == 0)
                te = val; /* the last one holds the final coding */
            break;
        }
    }
    rd->keep_alive = resp->version_minor >= 1 ? !(conn && list_has(conn, "close"))
                                              : (conn && list_has(conn, "keep-alive"));
    if (rd->head || st == 204 || st == 304) {
        rd->framing = FR_NONE;
    } else if (te) {
        rd->framing = te_chunked(te) ? FR_CHUNKED : FR_CLOSE;
        if (cl)
            rd->keep_alive = 0; /* both: a smuggling attempt or a broken server */
    } else if (cl) {
        if (parse_length(cl, &rd->remaining) < 0)
            return rd_fail(rd, -EPROTO, "bad Content-Length: \"%.30s\"", cl);
        if (rd->remaining > rd->max_body)
            return rd_fail(rd, -EMSGSIZE, "response body of %llu bytes is larger than %zu",
                           (unsigned long long)rd->remaining, rd->max_body);
        rd->framing = rd->remaining ? FR_LENGTH : FR_NONE;
    } else {
        rd->framing = FR_CLOSE;
    }
    if (rd->framing == FR_CLOSE)
        rd->keep_alive = 0;
    if (rd->framing == FR_NONE)
        return rd_complete(rd);
    if (rd->decode) {
        const char *ce = http__headers_find(h, "content-encoding", 16);
        if (ce && (strcasecmp(ce, "gzip") == 0 || strcasecmp(ce, "x-gzip") == 0 ||
                   strcasecmp(ce, "deflate") == 0)) {
            rd->z = calloc(1, sizeof(z_stream));
            if (!rd->z)
                return rd_fail(rd, -ENOMEM, "out of memory");
        }
    }
    if (rd->framing == FR_LENGTH && !rd->z) {
        /* Allocate the whole body at once. */
        int rc = body_room(rd, (size_t)rd->remaining);
        if (rc < 0)
            return rc;
    }
    rd->cstate = CS_SIZE;
    rd->cline_len = 0;
    rd->phase = RD_BODY;
    line_receiver_set_raw_mode(&rd->lr);
    return 0;
}

int http__reader_line(line_receiver *lr, const char *line, size_t len)
{
    http__reader *rd = (http__reader *)lr;
    if (rd->phase == RD_IDLE) {
        rd->keep_alive = 0;
        snprintf(rd->msg, sizeof rd->msg, "data from the server while no request was sent");
        return -EPROTO;
    }
    rd->got_bytes = 1;
    rd->header_bytes += len + 1;
    if (rd->header_bytes > rd->max_header)
        return rd_fail(rd, -EMSGSIZE, "response header larger than %zu bytes", rd->max_header);
    if (len && line[len - 1] == '\r')
        len--;
    if (rd->phase == RD_STATUS) {
        if (len == 0)
            return 0; /* stray empty lines before the status line are tolerated */
        return parse_status(rd, line, len);
    }
    if (len == 0)
        return headers_done(rd);
    return parse_header(rd, line, len);
}

int http__reader_too_long(line_receiver *lr, const char *data, size_t len)
{
    http__reader *rd = (http__reader *)lr;
    if (rd->phase == RD_IDLE) {
        rd->keep_alive = 0;
        snprintf(rd->msg, sizeof rd->msg, "data from the server while no request was sent");
        return -EPROTO;
    }
    if (rd->max_header < HTTP__MAX_LINE)
        return rd_fail(rd, -EMSGSIZE, "response header larger than %zu bytes", rd->max_header);
    return rd_fail(rd, -EMSGSIZE, "response header line longer than %u bytes", HTTP__MAX_LINE);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static int chunk_size_line(http__reader *rd)
{
    size_t n = rd->cline_len < sizeof rd->cline ? rd->cline_len : sizeof rd->cline;
    if (n && rd->cline[n - 1] == '\r')
        n--;
    uint64_t v = 0;
    size_t i = 0;
    for (; i < n && hexval(rd->cline[i]) >= 0; i++) {
        if (i >= 15)
            return rd_fail(rd, -EPROTO, "bad chunk size (too large)");
        v = v * 16 + (uint64_t)hexval(rd->cline[i]);
    }
    if (i == 0)
        return rd_fail(rd, -EPROTO, "bad chunk size: \"%.20s\"", rd->cline);
    while (i < n && (rd->cline[i] == ' ' || rd->cline[i] == '\t'))
        i++;
    if (i < n && rd->cline[i] != ';')
        return rd_fail(rd, -EPROTO, "bad chunk size: \"%.20s\"", rd->cline);
    rd->cline_len = 0;
    if (v == 0) {
        rd->cstate = CS_TRAILER;
        return 0;
    }
    if (v > rd->max_body)
        return rd_fail(rd, -EMSGSIZE, "response body larger than %zu bytes", rd->max_body);
    rd->remaining = v;
    rd->cstate = CS_DATA;
    return 0;
}

/* Chunked body: returns bytes consumed (the rest is after the body), or a negative
 * error (done was called). *end set when the last chunk and the trailers were read. */
static long chunked(http__reader *rd, const char *p, size_t n, int *end)
{
    size_t i = 0;
    while (i < n) {
        switch (rd->cstate) {
        case CS_SIZE: {
            const char *nl = memchr(p + i, '\n', n - i);
            size_t take = nl ? (size_t)(nl - (p + i)) : n - i;
            if (rd->cline_len + take > CHUNK_LINE_MAX)
                return rd_fail(rd, -EPROTO, "chunk size line too long");
            if (rd->cline_len < sizeof rd->cline) {
                size_t room = sizeof rd->cline - rd->cline_len;
                memcpy(rd->cline + rd->cline_len, p + i, take < room ? take : room);
            }
            rd->cline_len = (uint16_t)(rd->cline_len + take);
            i += take;
            if (nl) {
                i++;
                if (rd->cline_len < sizeof rd->cline)
                    rd->cline[rd->cline_len] = 0;
                else
                    rd->cline[sizeof rd->cline - 1] = 0;
                int rc = chunk_size_line(rd);
                if (rc < 0)
                    return rc;
            }
            break;
        }
        case CS_DATA: {
            size_t take = n - i < rd->remaining ? n - i : (size_t)rd->remaining;
            int rc = body_add(rd, p + i, take);
            if (rc < 0)
                return rc;
            i += take;
            rd->remaining -= take;
            if (!rd->remaining)
                rd->cstate = CS_DATA_CR;
            break;
        }
        case CS_DATA_CR:
            if (p[i] == '\r')
                rd->cstate = CS_DATA_LF;
            else if (p[i] == '\n')
                rd->cstate = CS_SIZE;
            else
                return rd_fail(rd, -EPROTO, "no CRLF after chunk data");
            i++;
            break;
        case CS_DATA_LF:
            if (p[i] != '\n')
                return rd_fail(rd, -EPROTO, "no CRLF after chunk data");
            rd->cstate = CS_SIZE;
            i++;
            break;
        case CS_TRAILER: {
            /* Trailer lines are read and dropped; cline_len counts the current one's
             * bytes, an empty line ("" or "\r") ends the body. */
            const char *nl = memchr(p + i, '\n', n - i);
            size_t take = nl ? (size_t)(nl - (p + i)) : n - i;
            rd->header_bytes += take + (nl ? 1 : 0);
            if (rd->header_bytes > rd->max_header)
                return rd_fail(rd, -EMSGSIZE, "response trailers larger than %zu bytes",
                               rd->max_header);
            if (take) {
                size_t c = rd->cline_len + take;
                rd->cline_len = (uint16_t)(c > 60000 ? 60000 : c);
                rd->cline[0] = p[i + take - 1]; /* the last byte: a CR alone is empty */
            }
            i += take;
            if (nl) {
                i++;
                if (rd->cline_len == 0 || (rd->cline_len == 1 && rd->cline[0] == '\r')) {
                    *end = 1;
                    return (long)i;
                }
                rd->cline_len = 0;
            }
            break;
        }
        }
    }
    return (long)i;
}

int http__reader_raw(line_receiver *lr, const char *data, size_t len)
{
    http__reader *rd = (http__reader *)lr;
    if (rd->phase != RD_BODY) { /* cannot happen: raw mode only in the body */
        rd->keep_alive = 0;
        return -EPROTO;
    }
    size_t used = len;
    int end = 0;
    switch (rd->framing) {
    case FR_LENGTH: {
        used = len < rd->remaining ? len : (size_t)rd->remaining;
        int rc = body_add(rd, data, used);
        if (rc < 0)
            return rc;
        rd->remaining -= used;
        end = rd->remaining == 0;
        break;
    }
    case FR_CHUNKED: {
        long rc = chunked(rd, data, len, &end);
        if (rc < 0)
            return (int)rc;
        used = (size_t)rc;
        break;
    }
    default: { /* FR_CLOSE */
        int rc = body_add(rd, data, len);
        if (rc < 0)
            return rc;
        break;
    }
    }
    if (!end)
        return 0;
    if (used < len)
        rd->keep_alive = 0; /* bytes after the response: not a connection to reuse */
    return body_end(rd);
}

int http__reader_lost(http__reader *rd, const protocol_reason *reason)
{
    if (rd->phase == RD_IDLE)
        return 0;
    rd->keep_alive = 0;
    char why[96];
    protocol_reason_format(reason, why, sizeof why);
    if (rd->phase == RD_STATUS && !rd->got_bytes) {
        rd_fail(rd, -(reason->err ? reason->err : ECONNRESET),
                "connection closed before the response began (%s)", why);
        return 1;
    }
    if (rd->phase != RD_BODY) {
        rd_fail(rd, -EPROTO, "connection closed in the middle of the response header (%s)", why);
        return 1;
    }
    if (rd->framing == FR_CLOSE) {
        if (reason->kind == PROTOCOL_DONE) {
            body_end(rd);
            return 1;
        }
        rd_fail(rd, -(reason->err ? reason->err : ECONNRESET),
                "connection lost in a body delimited by the close (%s)", why);
        return 1;
    }
    if (rd->framing == FR_LENGTH) {
        size_t got = rd->z ? (size_t)((z_stream *)rd->z)->total_in : rd->resp->body_len;
        rd_fail(rd, -EPROTO, "connection closed after %zu of %llu body bytes (%s)", got,
                (unsigned long long)(got + rd->remaining), why);
        return 1;
    }
    rd_fail(rd, -EPROTO, "connection closed inside the chunked body (%s)", why);
    return 1;
}
