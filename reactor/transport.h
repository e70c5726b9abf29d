/* Transports (Twisted's ITransport over TCP and Unix sockets), listeners and connectors.
 *
 * A transport is one connection's write side and flow control. The protocol receives
 * bytes; it writes through its transport:
 *
 *   - transport_write() copies the bytes into the connection's output buffer and returns.
 *     It never sends synchronously. Everything written during one callback, or one loop
 *     iteration, leaves in as few send() calls as possible: right after data_received
 *     returns for that connection, else at the start of the next iteration. Write
 *     interest is registered with the reactor only while a send was incomplete.
 *   - Reading: one recv() per readiness (at most 64 KiB) into a buffer shared by the
 *     whole loop, handed to data_received. A connection keeps no buffer while idle.
 *   - No call ever raises SIGPIPE (MSG_NOSIGNAL / SO_NOSIGPIPE); the library never
 *     changes signal dispositions. Sockets are non-blocking and close-on-exec.
 *
 * Closing (all idempotent, safe from any callback, also on another connection):
 *   - lose_connection: stop reading, flush what is pending, close: connection_lost(DONE).
 *   - abort_connection: drop pending output, close with RST: connection_lost(ABORTED).
 *   - lose_write_connection: shutdown(SHUT_WR) once the output is flushed (half-close).
 *   connection_lost always runs from the loop, never inside the call that caused it.
 *
 * Reactor shutdown: a DURING_SHUTDOWN trigger closes every connection WITHOUT flushing
 * (connection_lost(LOST, err 0)), stops listeners and connectors, like Twisted's
 * disconnectAll. To flush on exit, call lose_connection from a BEFORE_SHUTDOWN trigger,
 * hold the shutdown (reactor_shutdown_hold) and release it from connection_lost.
 *
 * Ownership: transports belong to the library. A transport pointer is valid from
 * connection_made until connection_lost returns (it is freed right after). Listeners
 * and connectors are owned by the caller (listener_free, connector_free) and are freed
 * at the latest by reactor_free(). Factories and protocols are the user's
 * (see protocol.h). reactor_free() also closes connections still open (a reactor driven
 * by reactor_iterate never ran its shutdown triggers): each gets connection_lost(LOST,
 * err 0) from inside reactor_free, so protocols can free themselves there.
 */
#ifndef TWISTC_TRANSPORT_H
#define TWISTC_TRANSPORT_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <twistc/protocol.h>
#include <twistc/reactor.h>
#include <twistc/twistc_base.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct listener listener;

/* ---- Writing -------------------------------------------------------------------- */

/* Copies len bytes into the output buffer. 0 on success (also when the connection is
 * already gone or closing for good: the bytes are silently dropped, as in Twisted, but
 * a write after lose_connection and before the close is still sent). -ENOBUFS when
 * the pending output would pass the hard cap: the connection is then aborted
 * (connection_lost(PROTOCOL_ERROR, ENOBUFS)). -ENOMEM. */
TWISTC_API int transport_write(transport *t, const void *data, size_t len);
/* Same as consecutive writes of each piece (one copy, one send). */
TWISTC_API int transport_writev(transport *t, const struct iovec *iov, int iovcnt);
/* Bytes written but not yet handed to the kernel. */
TWISTC_API size_t transport_pending(const transport *t);

/* ---- Closing -------------------------------------------------------------------- */

TWISTC_API int transport_lose_connection(transport *t);
TWISTC_API int transport_abort_connection(transport *t);
TWISTC_API int transport_lose_write_connection(transport *t);
/* 1 once lose_connection/abort was called or the connection is gone (Twisted's
 * transport.disconnecting): stop producing output. */
TWISTC_API int transport_disconnecting(const transport *t);

/* ---- Flow control --------------------------------------------------------------- */

/* Stop / restart reading from the socket (the peer's TCP window fills up). Resume does
 * nothing once the connection is closing. A flag, not a counter (as in Twisted). */
TWISTC_API int transport_pause_producing(transport *t);
TWISTC_API int transport_resume_producing(transport *t);
TWISTC_API int transport_paused(const transport *t);

/* A producer feeding this transport (Twisted's IPushProducer / IPullProducer). */
typedef struct transport_producer_ops {
    void (*pause_producing)(void *data);  /* push: output passed the high-water mark */
    void (*resume_producing)(void *data); /* push: drained to low-water; pull: more please */
    void (*stop_producing)(void *data);   /* the connection is gone */
} transport_producer_ops;

/* Only one producer at a time (-EBUSY). streaming=1: push producer, paused above the
 * high-water mark and resumed once pending output is at or below the low-water mark.
 * streaming=0: pull producer, resume_producing at registration and each time the output
 * drains. On a connection already gone: stop_producing is called at once, returns 0.
 * A lose_connection waits until the producer is unregistered (Twisted). */
TWISTC_API int transport_register_producer(transport *t, const transport_producer_ops *ops,
                                           void *data, int streaming);
TWISTC_API int transport_unregister_producer(transport *t);

/* Output limits for this connection. high: the push producer's pause mark (default
 * 65536); low: its resume mark (default 0: fully drained, as Twisted); cap: a write that
 * would take pending output past it fails with -ENOBUFS and aborts the connection
 * (default TRANSPORT_DEFAULT_CAP; 0 keeps the default). -EINVAL if low > high or
 * high > cap. */
#define TRANSPORT_DEFAULT_HIGH_WATER (64u * 1024u)
#define TRANSPORT_DEFAULT_CAP (64u * 1024u * 1024u)
TWISTC_API int transport_set_write_limits(transport *t, size_t high, size_t low, size_t cap);

/* An idle timeout (Twisted's TimeoutMixin.setTimeout): once `seconds` pass without a
 * byte received, the protocol's timeout_connection runs (default: the connection is
 * closed cleanly, output flushed first). Every read pushes it back, lazily: O(1) per
 * read, no timer moved per request (reactor_idle_new). 0 turns it off; a new call
 * restarts it from now. -EINVAL (seconds negative or not finite), -ENOTCONN (closed or
 * closing), -ENOTSUP (in-memory transport: it has no reactor), -ENOMEM. */
TWISTC_API int transport_set_timeout(transport *t, double seconds);

/* ---- Socket details ------------------------------------------------------------- */

/* The peer's / our address. *len in: size of addr; out: its length. -ENOTCONN. */
TWISTC_API int transport_peer_address(const transport *t, struct sockaddr *addr, socklen_t *len);
TWISTC_API int transport_host_address(const transport *t, struct sockaddr *addr, socklen_t *len);
/* TCP_NODELAY / SO_KEEPALIVE (both off by default). -ENOTSUP on a Unix socket. */
TWISTC_API int transport_set_nodelay(transport *t, int on);
TWISTC_API int transport_set_keepalive(transport *t, int on);
/* The socket (-1 for an in-memory transport or once closed). Do not close it. */
TWISTC_API int transport_fd(const transport *t);
TWISTC_API protocol *transport_protocol(const transport *t);
/* The reactor the connection runs on (NULL for an in-memory transport). */
TWISTC_API reactor *transport_reactor(const transport *t);

/* ---- Listening ------------------------------------------------------------------ */

enum {
    LISTEN_REUSEPORT = 1u << 0, /* SO_REUSEPORT: several processes serve one port */
    LISTEN_V6ONLY = 1u << 1,    /* IPV6_V6ONLY on an IPv6 listener */
};

/* Listens on interface:port (interface: numeric IPv4/IPv6 address, NULL or "" for
 * 0.0.0.0; port 0 picks a free one, see listener_port). SO_REUSEADDR is always set.
 * backlog <= 0 means 128. Starts the factory if it was not. A bind/listen failure
 * returns NULL at once with errno set (EADDRINUSE, EACCES, EINVAL for a bad address). */
TWISTC_API listener *reactor_listen_tcp(reactor *r, const char *interface, int port,
                                        factory *f, int backlog);
TWISTC_API listener *reactor_listen_tcp_flags(reactor *r, const char *interface, int port,
                                              factory *f, int backlog, unsigned flags);
/* Listens on a Unix socket path (an existing socket file there is NOT removed: EADDRINUSE). */
TWISTC_API listener *reactor_listen_unix(reactor *r, const char *path, factory *f,
                                         int backlog);
/* The port actually bound (after port 0), or 0 for a Unix listener. */
TWISTC_API int listener_port(const listener *l);
/* Twisted's stopListening: closes the listening socket (the port can be bound again at
 * once), stops the factory if this was its last user. Connections already accepted go
 * on. Idempotent. */
TWISTC_API int listener_stop(listener *l);
/* Stops (if needed) and frees. */
TWISTC_API void listener_free(listener *l);
/* Accepts per readiness (default 32): a storm of connects cannot starve the loop. */
TWISTC_API void listener_set_accept_budget(listener *l, unsigned n);

/* ---- Connecting ----------------------------------------------------------------- */

/* Connects to host:port. A numeric address connects at once (one attempt); a host name
 * is resolved on a worker thread first (the loop never blocks), then its addresses (up
 * to 16) are tried in the resolver's order, staggered ("Happy Eyeballs", RFC 8305): the
 * next starts when the one before failed, or after 0.25 s without an answer while the
 * earlier ones go on; the first to connect wins and the others are closed. A server on
 * 127.0.0.1 only is reached by "localhost" even where ::1 comes first, and an address
 * that drops packets does not use up the timeout.
 * timeout <= 0 means 30 s (Twisted's); it covers the whole connect: the lookup and all
 * the attempts together. f->started_connecting runs before this returns (as in
 * Twisted); everything else comes from the loop: either a protocol is built (connection_made) or
 * f->client_connection_failed gets one reason saying which failure (refused, timeout,
 * unreachable, DNS, ...), even for an error known at once. When every address failed,
 * that is the FIRST address's failure (the most preferred one's); when the timeout
 * passed first, a timeout.
 * NULL+errno (ENOMEM, EINVAL). */
TWISTC_API connector *reactor_connect_tcp(reactor *r, const char *host, int port, factory *f,
                                          double timeout);
TWISTC_API connector *reactor_connect_unix(reactor *r, const char *path, factory *f,
                                           double timeout);
/* Connects again with the same parameters (Twisted's connector.connect()): after a
 * failure or a lost connection, e.g. from client_connection_failed/lost or a timer.
 * -EBUSY while connecting or connected. */
TWISTC_API int connector_connect(connector *c);
/* Abandons the attempt in progress: client_connection_failed(CONNECT_CANCELLED) runs from
 * the loop. -ENOTCONN when not connecting. */
TWISTC_API int connector_stop_connecting(connector *c);
/* Stops connecting or loses the connection (lose_connection). */
TWISTC_API int connector_disconnect(connector *c);
/* The connection's transport while connected, else NULL. */
TWISTC_API transport *connector_transport(const connector *c);
TWISTC_API factory *connector_factory(const connector *c);
/* Frees the connector. An attempt in progress is dropped silently (no
 * client_connection_failed); a live connection is closed with lose_connection (its
 * protocol still gets connection_lost; client_connection_lost is not called) and the
 * connector's memory goes with it. Safe inside the connector's own callbacks. */
TWISTC_API void connector_free(connector *c);

#ifdef __cplusplus
}
#endif
#endif
