/* Protocols and factories: what a user writes to speak over a connection (Twisted's
 * IProtocol, Factory and ClientFactory).
 *
 * A protocol is a struct of callbacks (a const protocol_ops shared by every connection,
 * like a class) plus the per-connection state. You embed `protocol` as the FIRST member of
 * your own struct and cast back in the callbacks:
 *
 *     struct echo { protocol base; int lines; };
 *     static int echo_data(protocol *p, const char *data, size_t len)
 *     {
 *         return transport_write(p->transport, data, len) < 0 ? -1 : 0;
 *     }
 *     static const protocol_ops echo_ops = { .data_received = echo_data, ... };
 *
 * Lifetime of a connection (each step exactly once, in this order):
 *     factory->build_protocol      (may return NULL: the socket is closed at once)
 *     connection_made              (p->transport is set)
 *     data_received                (zero or more times, len > 0)
 *     read_connection_lost         (optional, only if the ops have it: the peer half-closed)
 *     connection_lost(reason)      (always, exactly once, always called from the loop)
 *     client factories only: factory->client_connection_lost
 *
 * Ownership: the protocol is the user's. connection_lost is the last call the library makes
 * on it; the protocol may free itself inside connection_lost. The transport (p->transport)
 * is the library's and is freed right after connection_lost returns: drop every pointer to
 * it there. The factory is the user's and must outlive its listeners, connectors and
 * connections.
 */
#ifndef TWISTC_PROTOCOL_H
#define TWISTC_PROTOCOL_H

#include <stddef.h>
#include <sys/socket.h>

#include <twistc/twistc_base.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct transport transport;
typedef struct protocol protocol;
typedef struct factory factory;
typedef struct connector connector;

/* ---- Why a connection ended, or why connecting failed ---------------------------- */

typedef enum {
    /* Connection lost (protocol connection_lost / client_connection_lost): */
    PROTOCOL_DONE = 0,   /* clean close: our lose_connection, or the peer's FIN (EOF) */
    PROTOCOL_LOST,       /* unclean: peer reset (ECONNRESET, EPIPE), I/O error, or the
                          * reactor shutting down with the connection open (err = 0) */
    PROTOCOL_ABORTED,    /* our abort_connection (RST sent, pending output dropped) */
    PROTOCOL_ERROR,      /* the application or the library gave up on it: data_received
                          * returned non-zero, pending output passed the hard cap
                          * (ENOBUFS), the factory refused... */
    /* Connecting failed (client_connection_failed): */
    PROTOCOL_CONNECT_REFUSED,     /* ECONNREFUSED: nobody listens there */
    PROTOCOL_CONNECT_TIMEOUT,     /* no answer within the connect timeout (ETIMEDOUT) */
    PROTOCOL_CONNECT_UNREACHABLE, /* ENETUNREACH / EHOSTUNREACH / EADDRNOTAVAIL */
    PROTOCOL_CONNECT_DNS,         /* the host name did not resolve (gai_err says why) */
    PROTOCOL_CONNECT_CANCELLED,   /* connector_stop_connecting() during the attempt */
    PROTOCOL_CONNECT_FAILED,      /* any other error (err says which) */
    /* A TLS connection (twistc/tls.h) lost; reason->detail holds OpenSSL's reason: */
    PROTOCOL_TLS_HANDSHAKE, /* the handshake failed: protocol version, no shared cipher,
                             * garbage instead of a handshake, closed during it */
    PROTOCOL_TLS_VERIFY,    /* the peer's certificate was refused: unknown issuer,
                             * expired, wrong host name */
    PROTOCOL_TLS_TRUNCATED, /* the peer closed TCP without close_notify */
    PROTOCOL_TLS_ERROR,     /* a TLS error after the handshake (bad record, alert) */
} protocol_reason_kind;

/* A small value: copy it if you need it after the callback returns. */
typedef struct protocol_reason {
    protocol_reason_kind kind;
    int err;             /* errno value (positive), or 0 */
    int gai_err;         /* getaddrinfo() error for PROTOCOL_CONNECT_DNS, else 0 */
    const char *message; /* static text, never NULL */
    const char *detail;  /* more from the layer below (OpenSSL's reason for TLS), or NULL;
                          * valid during the callback only */
} protocol_reason;

/* "done", "lost", "aborted", "error", "connect-refused", ... */
TWISTC_API const char *protocol_reason_name(protocol_reason_kind kind);
/* The reason as one line, in the one format of docs/errors.md: MESSAGE[: DETAIL][ (CAUSE)],
 * e.g. "connection refused (errno 111)", "connection lost (Connection reset by peer,
 * errno 104)", "host name lookup failed (Name or service not known, getaddrinfo -2)".
 * Into buf, always NUL-terminated when n > 0. Returns what snprintf returns. */
TWISTC_API int protocol_reason_format(const protocol_reason *reason, char *buf, size_t n);
/* 1 for PROTOCOL_DONE (Twisted's ConnectionDone), 0 otherwise. */
TWISTC_API int protocol_reason_clean(const protocol_reason *reason);

/* ---- Protocol -------------------------------------------------------------------- */

typedef struct protocol_ops {
    /* The connection is up; p->transport is set. May write, close, pause. Optional. */
    void (*connection_made)(protocol *p);
    /* Bytes arrived (len > 0). `data` is the loop's shared read buffer: it is valid only
     * during the call, so copy what you keep. Return 0; anything else closes the
     * connection at once with PROTOCOL_ERROR (err = -return value when that is a
     * negative errno), dropping output not yet sent: Twisted's "exception in
     * dataReceived". Required. */
    int (*data_received)(protocol *p, const char *data, size_t len);
    /* The peer half-closed (EOF) and this protocol wants to keep writing (Twisted's
     * IHalfCloseableProtocol). Reading has stopped; call transport_lose_connection() when
     * done. When NULL, EOF means lose_connection: pending output is flushed, then
     * connection_lost(PROTOCOL_DONE). */
    void (*read_connection_lost)(protocol *p);
    /* The last call: the connection is gone. May free p. Optional. */
    void (*connection_lost)(protocol *p, const protocol_reason *reason);
    /* The idle timeout of transport_set_timeout() expired (Twisted's
     * TimeoutMixin.timeoutConnection). When NULL: transport_lose_connection(). The
     * timeout is off afterwards; transport_set_timeout() turns it on again. Optional. */
    void (*timeout_connection)(protocol *p);
} protocol_ops;

struct protocol {
    const protocol_ops *ops;
    transport *transport; /* set by the library before connection_made; NULL before */
};

/* Sets p up with ops (transport NULL). For protocols you allocate yourself. */
TWISTC_API void protocol_init(protocol *p, const protocol_ops *ops);

/* ---- Factory and client factory -------------------------------------------------- */

typedef struct factory_ops {
    /* A new connection from/to addr: return a protocol (its ops set, usually freshly
     * allocated) or NULL to refuse it (the socket is closed at once; for a client, that
     * is a PROTOCOL_ERROR connection failure). Required. */
    protocol *(*build_protocol)(factory *f, const struct sockaddr *addr, socklen_t addrlen);
    /* The first listener or connector using this factory started (Twisted's
     * startFactory) / the last one stopped (stopFactory). Optional. */
    void (*start_factory)(factory *f);
    void (*stop_factory)(factory *f);
    /* Client factories (all optional): */
    void (*started_connecting)(factory *f, connector *c);
    /* No protocol was built. The connector may be reconnected from here
     * (connector_connect). */
    void (*client_connection_failed)(factory *f, connector *c, const protocol_reason *reason);
    /* Runs after the protocol's connection_lost. May reconnect too. */
    void (*client_connection_lost)(factory *f, connector *c, const protocol_reason *reason);
} factory_ops;

/* The user's object. Embed it first in your own struct, or use `data`. The library
 * counts the listeners and connectors using it (for start_factory / stop_factory) on
 * its own side, per reactor. */
struct factory {
    const factory_ops *ops;
    void *data; /* yours */
};

TWISTC_API void factory_init(factory *f, const factory_ops *ops, void *data);

#ifdef __cplusplus
}
#endif
#endif
