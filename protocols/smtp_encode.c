/* What the SMTP client puts on the wire besides commands: the message in DATA form
 * (RFC 5321 4.1.1.4 and 4.5.2) and base64 for AUTH (RFC 4648 section 4). */
#include <stdint.h>
#include <stdlib.h>

#include "protocols/smtp_internal.h"

char *smtp__encode_data(const char *msg, size_t len, size_t *out_len, int *has_8bit)
{
    /* Worst case: every byte a LF (-> CRLF) or a "." at a line start (-> ".."), plus
     * the final CRLF and ".\r\n". */
    size_t cap = 2 * len + 6;
    char *out = malloc(cap), *p = out;
    if (!out)
        return NULL;
    int bol = 1, eight = 0;
    for (size_t i = 0; i < len; i++) {
        char c = msg[i];
        eight |= (unsigned char)c >= 0x80;
        if (bol && c == '.')
            *p++ = '.';
        if (c == '\n' && (i == 0 || msg[i - 1] != '\r'))
            *p++ = '\r';
        *p++ = c;
        bol = c == '\n';
    }
    if (!bol) {
        /* The last line had no end: a CR alone there would become CRCRLF, drop it. */
        if (p > out && p[-1] == '\r')
            p--;
        *p++ = '\r';
        *p++ = '\n';
    }
    *p++ = '.';
    *p++ = '\r';
    *p++ = '\n';
    *p = 0;
    *out_len = (size_t)(p - out);
    if (has_8bit)
        *has_8bit = eight;
    return out;
}

char *smtp__base64(const void *data, size_t len)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *in = data;
    char *out = malloc((len + 2) / 3 * 4 + 1), *p = out;
    if (!out)
        return NULL;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *p++ = abc[v >> 18];
        *p++ = abc[v >> 12 & 63];
        *p++ = abc[v >> 6 & 63];
        *p++ = abc[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);
        *p++ = abc[v >> 18];
        *p++ = abc[v >> 12 & 63];
        *p++ = i + 1 < len ? abc[v >> 6 & 63] : '=';
        *p++ = '=';
    }
    *p = 0;
    return out;
}
