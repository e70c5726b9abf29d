/* Helpers for the transport suites: a recording test protocol and factory, and raw
 * loopback client sockets driven by the reactor under test. */
#ifndef TWISTC_T_TRANSPORT_HELPERS_H
#define TWISTC_T_TRANSPORT_HELPERS_H

#include <stddef.h>

#include <twistc/protocol.h>
#include <twistc/reactor.h>
#include <twistc/transport.h>

/* What a test protocol does with incoming bytes. */
enum tp_mode {
    TP_RECORD = 0,  /* keep them */
    TP_ECHO,        /* write them back */
};

struct tfactory;

struct tp {
    protocol base;
    struct tfactory *tf;
    int made, lost, data_calls, depth;
    int after_lost; /* a callback ran after connection_lost */
    char *in;
    size_t in_len, in_cap;
};

struct tfactory {
    factory f;
    enum tp_mode mode;
    int half_close;  /* protocols get read_connection_lost */
    int refuse;      /* build_protocol returns NULL */
    int built, made, lost, started, stopped;
    int lost_kind[16]; /* count per protocol_reason_kind */
    int last_lost_err;
    protocol_reason_kind last_lost_kind;
    int read_lost;
    /* client side */
    int connecting, failed, client_lost;
    protocol_reason fail;
    int order_bad; /* client_connection_lost before the protocol's connection_lost */
    struct tp *last; /* the last protocol built (NULL once lost) */
    /* hooks */
    void (*on_made)(struct tp *p);
    int (*on_data)(struct tp *p, const char *data, size_t len);
    void (*on_read_lost)(struct tp *p);
    void (*on_lost)(struct tp *p, const protocol_reason *reason);
    void *user;
    int done; /* tests wait on it */
};

void tf_init(struct tfactory *tf, enum tp_mode mode);

/* A raw, non-blocking loopback client socket, read by the reactor into a buffer. */
struct rawc {
    reactor *r;
    int fd;
    char *buf;
    size_t len, cap;
    size_t want; /* done once len >= want (if want) or on EOF/error */
    int eof, err, done, watching;
    size_t max_per_read; /* 0: read everything available; else at most this per event */
    int check_pattern;   /* verify bytes are (offset % 251) as they arrive */
    size_t bad_at;       /* first wrong byte + 1, 0 if all good */
};

/* Blocking connect to 127.0.0.1:port (or ::1 if v6), then non-blocking + watched. */
void rawc_connect(struct rawc *c, reactor *r, int port, int v6);
/* Same with a small SO_RCVBUF (set before connecting) and not yet watched (a peer that
 * does not read until rawc_watch). */
void rawc_connect_slow(struct rawc *c, reactor *r, int port, int rcvbuf);
void rawc_watch(struct rawc *c);
/* Fills buf with the test pattern (offset % 251) starting at offset off. */
void fill_pattern(char *buf, size_t len, size_t off);
void rawc_send(struct rawc *c, const void *data, size_t len);
void rawc_close(struct rawc *c);
void rawc_free(struct rawc *c);

/* ---- A loopback test bed ------------------------------------------------------------
 * One reactor on the backend under test, a listener on 127.0.0.1 port 0 with the server
 * factory `srv`, and the raw clients and connector a test makes against it. It lives on
 * the test's stack (the factories must not move while the listener uses them) and
 * tfx_close frees everything in it, so every test reads: tfx_open, set the hooks it
 * needs, connect, the behaviour under test, its assertions, tfx_close. */
#define TFX_RAW_MAX 2

struct tfx {
    reactor *r;
    struct tfactory srv; /* the listener's factory (mode given to tfx_open) */
    struct tfactory cli; /* the connector's factory (TP_RECORD) */
    listener *l;         /* NULL once the test freed it or left it to reactor_free */
    int port;
    connector *conn;     /* tfx_connect's; NULL once the test freed it */
    struct rawc raw[TFX_RAW_MAX];
    int n_raw;
};

/* Reactor on backend `backend`, both factories initialised, the server one listening;
 * fails the test if the reactor or the listener cannot be made. Nothing runs yet: hooks
 * set on x->srv / x->cli after this call are in place before any callback. */
void tfx_open(struct tfx *x, int backend, enum tp_mode srv_mode);
/* A raw client connected to the listener (rawc_connect); up to TFX_RAW_MAX of them. */
struct rawc *tfx_raw(struct tfx *x);
/* The same with a small receive buffer and not yet watched (rawc_connect_slow). */
struct rawc *tfx_raw_slow(struct tfx *x, int rcvbuf);
/* reactor_connect_tcp to the listener with x->cli (timeout 5 s); kept in x->conn. */
connector *tfx_connect(struct tfx *x);
/* Iterates until the server factory made n connections (bounded: max_seconds of reactor
 * time, a capped number of iterations). Returns 1 if it did; the test asserts on what
 * it needs (the counter itself, or what follows from it). */
int tfx_wait_made(struct tfx *x, int n, double max_seconds);
/* Iterates until the server's last connection has output the kernel refused (it waits
 * for WRITABLE); bounded like tfx_wait_made. Returns 1 if so. */
int tfx_wait_write_blocked(struct tfx *x, double max_seconds);
/* reactor_run with a safety timer that stops the reactor after max_seconds; returns
 * reactor_run's result. */
int tfx_run(struct tfx *x, double max_seconds);
/* Frees the connector, the raw clients, the listener and the reactor. */
void tfx_close(struct tfx *x);

/* Hooks several tests use. */
void tp_set_done(struct tp *p, const protocol_reason *reason); /* on_lost: tf->done = 1 */
void tfx_stop_reactor(reactor *r, void *data);                 /* timer: reactor_stop */

#endif
