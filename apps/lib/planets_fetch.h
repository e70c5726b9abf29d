/* A tiny blocking HTTP GET for planets-blocking and planets-threads: the slide's
 * urlopen(url).read(). The calling thread waits in connect(), send() and recv() until the
 * whole page is there; that is the point of those two programs.
 *
 * http and https (OpenSSL, the certificate verified against the host name; `cafile` NULL
 * means the system's CAs); HTTP/1.0 with Connection: close, so the body ends where the
 * connection does (no chunked encoding to undo); up to 5 redirects followed; 30 s
 * socket timeouts; bodies up to 16 MiB. Thread-safe.
 */
#ifndef PLANETS_FETCH_H
#define PLANETS_FETCH_H

#include <stddef.h>

/* Fetches url. 0: *body (malloc'd, NUL-terminated, free it) and *len hold the body of a
 * 2xx answer. -1: err holds why ("connection refused", "HTTP 404 Not Found", ...). */
int planets_fetch(const char *url, const char *cafile, char **body, size_t *len, char *err,
                  size_t errlen);

#endif
