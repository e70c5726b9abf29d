/* Helpers of the notification suites: a raw loopback client driven by the reactor under
 * test (it can send megabytes, half-close, reset, or never read), and a bounded wait. */
#ifndef TWISTC_T_NOTIF_HELPERS_H
#define TWISTC_T_NOTIF_HELPERS_H

#include <stddef.h>

#include "apps/notif/notif_server.h"
#include <twistc/reactor.h>
#include <twistc/transport.h>

struct nraw {
    reactor *r;
    int fd;
    int reading;   /* READABLE watched (0: a client that never reads) */
    int eof, err;  /* the server closed / reset */
    char *in;      /* everything received */
    size_t in_len, in_cap;
    size_t nl;     /* '\n' received so far */
    char *out;     /* not sent yet (big sends) */
    size_t out_len, out_off;
};

/* Connects to 127.0.0.1:port (blocking connect, then non-blocking). rcvbuf > 0 sets
 * SO_RCVBUF first (a small window for a client that never reads). read 0: never read. */
void nraw_connect(struct nraw *c, reactor *r, int port, int rcvbuf, int read);
/* Queues bytes; sent as the socket takes them (from the loop). */
void nraw_send(struct nraw *c, const void *data, size_t len);
void nraw_send_str(struct nraw *c, const char *s);
/* shutdown(SHUT_WR) once everything queued is sent (now if nothing is queued). */
void nraw_shutdown_wr(struct nraw *c);
/* Closes with RST (SO_LINGER 0). */
void nraw_reset(struct nraw *c);
void nraw_free(struct nraw *c);
/* A client made with read 0 starts reading now. */
void nraw_read_now(struct nraw *c);
/* Number of '\n' received. */
size_t nraw_lines(const struct nraw *c);
/* The n-th received line (0-based) copied into buf (NUL-terminated), or NULL. */
const char *nraw_line(const struct nraw *c, size_t n, char *buf, size_t size);

/* Iterates r until pred(arg) is true; at most max_seconds of reactor time and a bounded
 * number of iterations. Returns 1 if pred became true. */
int nt_wait(reactor *r, int (*pred)(void *arg), void *arg, double max_seconds);
/* Predicates. */
int nt_pred_eof(void *nraw);           /* eof or err */
int nt_pred_flag(void *int_ptr);       /* *(int *)arg != 0 */

/* Line-count predicate argument. */
struct nt_lines {
    struct nraw *c;
    size_t want;
};
int nt_pred_lines(void *nt_lines);

/* ---- A notification server on loopback ----------------------------------------------
 * A reactor on the backend under test, a notif_server on it and a listener on 127.0.0.1
 * port 0 with the server's factory, and the raw clients a test makes against it. Lives on
 * the test's stack; nfx_close frees what is left of it (a test that freed the listener or
 * the server itself first sets it to NULL). */
#define NFX_CLIENTS_MAX 2

struct nfx {
    reactor *r;
    notif_server *s;
    listener *l;
    int port;
    struct nraw clients[NFX_CLIENTS_MAX]; /* nfx_client's, freed by nfx_close */
    int n_clients;
};

/* cfg may be NULL (the defaults). Fails the test if anything cannot be made. */
void nfx_open(struct nfx *f, int backend, const notif_server_config *cfg);
/* A raw client connected to the server (nraw_connect's rcvbuf and read); up to
 * NFX_CLIENTS_MAX of them. A test may nraw_free one early: nfx_close frees it again
 * harmlessly. */
struct nraw *nfx_client(struct nfx *f, int rcvbuf, int read);
/* Frees the clients, the listener, the server and the reactor. */
void nfx_close(struct nfx *f);
/* Iterates until the server has exactly n clients connected (bounded as nt_wait).
 * Returns 1 if it got there. */
int nfx_wait_clients(struct nfx *f, size_t n, double max_seconds);

/* Queues "random?\n" n times, in one nraw_send (so in as few segments as the socket
 * takes). */
void nraw_send_randoms(struct nraw *c, size_t n);

#endif
