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

#endif
