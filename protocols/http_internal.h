/* The HTTP client's internals: the response reader (http_parser.c), shared by the
 * connection protocol (http_client.c) and the fuzz target. Not installed. */
#ifndef TWISTC_HTTP_INTERNAL_H
#define TWISTC_HTTP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <twistc/http.h>
#include <twistc/line_receiver.h>

struct http__hdr {
    uint32_t name, value, nlen, vlen; /* offsets into http_headers.buf */
};

int http__is_tchar(unsigned char c);
/* Appends without validation (the parser validated already). */
int http__headers_append(http_headers *h, const char *name, size_t nlen, const char *value,
                         size_t vlen);
const char *http__headers_find(const http_headers *h, const char *name, size_t nlen);

/* ---- The response reader ----------------------------------------------------------
 * A LineReceiver: status line and headers in line mode, the body in raw mode. It
 * builds one http_response at a time and reports through `done`. */

enum { RD_IDLE, RD_STATUS, RD_HEADERS, RD_BODY };
enum { FR_NONE, FR_LENGTH, FR_CHUNKED, FR_CLOSE };

typedef struct http__reader http__reader;

struct http__reader {
    line_receiver lr; /* first: the protocol */
    /* The response is complete (err 0: resp is it, the callee owns it) or failed
     * (err < 0, resp NULL, rd->msg says what). At most once per http__reader_start;
     * the reader is idle again when it runs (a new start may come from inside). */
    void (*done)(http__reader *rd, int err, http_response *resp);
    http_response *resp;
    size_t max_header, max_body;
    size_t header_bytes, body_cap;
    uint64_t remaining;       /* FR_LENGTH: bytes left; FR_CHUNKED: of this chunk */
    void *z;                  /* z_stream while decoding */
    uint8_t phase, framing, head, decode;
    uint8_t keep_alive;       /* the connection may carry another request */
    uint8_t got_bytes;        /* something of this response arrived */
    uint8_t cstate;           /* chunked decoder state */
    uint8_t zstarted;
    uint16_t cline_len;
    char cline[64];           /* a chunk-size line being read */
    char msg[160];
};

/* The reader's LineReceiver callbacks, for the ops table of whoever embeds it (its
 * delimiter must be "\n" and max_length HTTP__MAX_LINE). */
#define HTTP__MAX_LINE (64u * 1024u)
int http__reader_line(line_receiver *lr, const char *line, size_t len);
int http__reader_raw(line_receiver *lr, const char *data, size_t len);
int http__reader_too_long(line_receiver *lr, const char *data, size_t len);

/* Sets the reader up (line mode, idle) with those ops. */
int http__reader_init(http__reader *rd, const line_receiver_ops *ops);
/* Expects a response (to a HEAD request when head). Limits: 0 means the default.
 * -ENOMEM. */
int http__reader_start(http__reader *rd, int head, size_t max_header, size_t max_body,
                       int decode);
/* The connection ended: completes a close-delimited body, else fails what was being
 * read (done runs unless idle). Returns 1 if done was called. */
int http__reader_lost(http__reader *rd, const protocol_reason *reason);
/* Drops whatever is in progress without calling done. */
void http__reader_reset(http__reader *rd);

/* ---- Requests and the pool (http_client.c, http_pool.c) ------------------------------ */

struct hconn;
struct hhost;
struct hpool;

typedef struct http__req {
    reactor *r;
    deferred *d;          /* our reference until it fires */
    char *method;
    http_url url;
    char *url_str;        /* the current URL (after redirects) */
    char *hdrs;           /* the user's headers, serialised "Name: value\r\n"... */
    size_t hdrs_len;
    char *body;
    size_t body_len;
    http_options o;       /* defaults filled in; ca_file copied */
    reactor_timer *timer; /* whole-request timeout */
    struct hconn *hc;     /* the connection carrying it (connecting or sending) */
    struct hhost *host;   /* while queued */
    struct http__req *qnext;
    int redirects;
    uint8_t head, idempotent, retried, get_page, send_length, user_host, user_agent;
} http__req;

/* Queues req for its URL's host (at the front for a retry) and starts what can start.
 * 0, or a negative errno with req untouched (no pool: reactor gone, ENOMEM). */
int http__pool_submit(http__req *req, int front);
/* Takes req out of the pool: out of its queue, or off its connection, which is
 * aborted (it may be half way through the request). */
void http__pool_detach(http__req *req);
/* The request's bytes on t (request line, headers, body). */
int http__req_write(http__req *req, transport *t);
/* req's connection is done with it (already released): err 0 with the response
 * (taken), else the failure (msg says what). */
void http__req_done(http__req *req, int err, const char *msg, http_response *resp);

#endif
