/* The SMTP client's pieces shared between its files (not installed). */
#ifndef TWISTC_SMTP_INTERNAL_H
#define TWISTC_SMTP_INTERNAL_H

#include <stddef.h>

/* The message as DATA sends it: CRLF line ends (a bare LF becomes CRLF, a last line
 * without one gets one), a "." doubled at the start of a line, then ".\r\n" (and a NUL). malloc'd;
 * NULL when out of memory. *has_8bit: 1 when a byte is >= 0x80. */
char *smtp__encode_data(const char *msg, size_t len, size_t *out_len, int *has_8bit);
/* Base64 (RFC 4648, with padding) of data, NUL-terminated, malloc'd; NULL: ENOMEM. */
char *smtp__base64(const void *data, size_t len);

#endif
