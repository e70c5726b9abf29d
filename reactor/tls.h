/* TLS for any connection (OpenSSL 3): a context shared by many connections, listening
 * and connecting over TLS, STARTTLS on a live connection, and what was negotiated.
 *
 * The layer sits between the socket and the protocol (docs/tls.md has the picture).
 * OpenSSL never touches the socket: it reads the ciphertext the transport received
 * from memory and writes its records into the transport's output buffer. A protocol
 * runs over TLS unchanged: the same protocol_ops, transport_write, lose_connection,
 * producers and limits. What is different over TLS:
 *
 *   - connection_made runs when the TCP connection is up, before the handshake (as in
 *     Twisted). Writes made before the handshake finishes are kept and sent after it.
 *   - Everything written during one callback (or one loop iteration) goes to SSL_write
 *     once: many small writes make one record, not one record each.
 *   - transport_pending(), the water marks and the hard cap count the plaintext not yet
 *     encrypted plus the ciphertext not yet sent.
 *   - TCP_NODELAY is on (each step is already one record and one send; Nagle would hold
 *     a server's first answer 40 ms behind the TLS 1.3 session tickets' delayed ACK).
 *     transport_set_nodelay(t, 0) turns it off.
 *   - lose_connection: flush, send close_notify, wait for the peer's close_notify (or its
 *     FIN) at most the context's close timeout (default 5 s), then close: PROTOCOL_DONE.
 *     Data arriving meanwhile is dropped. abort_connection sends nothing more.
 *   - lose_write_connection sends close_notify once the output is flushed (TLS has no
 *     other way to say "no more from me"); reading goes on until the peer's close_notify.
 *   - The peer's close_notify ends the whole connection, as in Twisted's TLS transport:
 *     our close_notify goes back, pending output is flushed, connection_lost(DONE).
 *     read_connection_lost is never called over TLS.
 *   - connection_lost tells every end apart (docs/tls.md): PROTOCOL_DONE (clean close),
 *     PROTOCOL_TLS_HANDSHAKE, PROTOCOL_TLS_VERIFY, PROTOCOL_TLS_TRUNCATED (the peer closed
 *     TCP without close_notify), PROTOCOL_TLS_ERROR (a TLS error after the handshake),
 *     PROTOCOL_LOST (a TCP error under TLS). reason->detail holds OpenSSL's reason text.
 *
 * Ownership: a tls_context is reference counted. tls_context_new_* returns it with one
 * reference, the caller's; every listener, connector and connection using it holds its
 * own, so the caller may tls_context_unref() as soon as it has started them. Change the
 * settings only before the first connection uses the context.
 */
#ifndef TWISTC_TLS_H
#define TWISTC_TLS_H

#include <stddef.h>

#include <twistc/protocol.h>
#include <twistc/reactor.h>
#include <twistc/transport.h>
#include <twistc/twistc_base.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tls_context tls_context;

/* ---- Contexts ----------------------------------------------------------------------- */

/* A server context with its certificate chain (PEM, leaf first) and private key (PEM).
 * NULL+errno on failure (ENOENT/EACCES for a file that cannot be read, EINVAL for a bad
 * file or a key that does not match the certificate, ENOMEM); when err is not NULL it
 * receives one line naming the file and OpenSSL's reason. */
TWISTC_API tls_context *tls_context_new_server(const char *cert_file, const char *key_file,
                                               char *err, size_t errlen);
/* A client context: verifies the server against the system's CA store, checks the host
 * name (or IP address) given to reactor_connect_tls and sends it as SNI. cafile/capath
 * (either may be NULL) are trusted in addition. NULL+errno as above. */
TWISTC_API tls_context *tls_context_new_client(const char *cafile, const char *capath,
                                               char *err, size_t errlen);
TWISTC_API tls_context *tls_context_ref(tls_context *ctx);
TWISTC_API void tls_context_unref(tls_context *ctx);

/* Verification of the peer. Client default: TLS_VERIFY_PEER; TLS_VERIFY_NONE must be
 * asked for (tests, --insecure). Server default: TLS_VERIFY_NONE (no client certificate
 * asked for); TLS_VERIFY_PEER asks for one and checks it when given;
 * TLS_VERIFY_REQUIRE also refuses a client without one. */
enum { TLS_VERIFY_NONE = 0, TLS_VERIFY_PEER = 1, TLS_VERIFY_REQUIRE = 2 };
TWISTC_API int tls_context_set_verify(tls_context *ctx, int mode);
/* Trust these CAs too (a server checking client certificates, a private CA). */
TWISTC_API int tls_context_load_ca(tls_context *ctx, const char *cafile, const char *capath,
                                   char *err, size_t errlen);
/* Our certificate chain and key (a client certificate; servers get theirs at creation). */
TWISTC_API int tls_context_use_certificate(tls_context *ctx, const char *cert_file,
                                           const char *key_file, char *err, size_t errlen);
/* ALPN protocols, most preferred first ("h2", "http/1.1"). A server picks the first of
 * its own list the client offers, or none. -EINVAL for an empty or over-long name. */
TWISTC_API int tls_context_set_alpn(tls_context *ctx, const char *const *protos, size_t n);
/* How long lose_connection waits for the peer's close_notify (seconds, > 0). */
TWISTC_API int tls_context_set_close_timeout(tls_context *ctx, double seconds);
/* How long a connection's handshake may take, from the TCP connection (or
 * transport_start_tls) to its end, in seconds; 0: no limit. Default 30. A peer that
 * connects and never finishes (a slowloris of handshakes) is dropped then:
 * connection_lost(PROTOCOL_TLS_HANDSHAKE, err ETIMEDOUT, detail "the handshake did not
 * finish in time"). -EINVAL for a negative value. */
TWISTC_API int tls_context_set_handshake_timeout(tls_context *ctx, double seconds);
/* The OpenSSL SSL_CTX, for settings this API does not cover (cast it to SSL_CTX *). */
TWISTC_API void *tls_context_ssl_ctx(tls_context *ctx);

/* ---- Connections -------------------------------------------------------------------- */

/* reactor_listen_tcp / reactor_connect_tcp over TLS. The connector checks the server's
 * certificate against host (a name, or a numeric address). NULL+errno as theirs. */
TWISTC_API listener *reactor_listen_tls(reactor *r, const char *interface, int port,
                                        factory *f, int backlog, tls_context *ctx);
TWISTC_API listener *reactor_listen_tls_flags(reactor *r, const char *interface, int port,
                                              factory *f, int backlog, unsigned flags,
                                              tls_context *ctx);
TWISTC_API connector *reactor_connect_tls(reactor *r, const char *host, int port, factory *f,
                                          double timeout, tls_context *ctx);

/* STARTTLS: from now on the connection speaks TLS (as_client: we send the ClientHello;
 * a client checks the host its connector connected to). Bytes written before the call
 * go out in clear first. Call it from a callback of this connection, right after the
 * protocol's "go ahead" line. -EINVAL (not a socket transport, closing), -EALREADY
 * (already TLS), -ENOMEM. */
TWISTC_API int transport_start_tls(transport *t, tls_context *ctx, int as_client);

/* 1 if t speaks TLS (or is starting to). */
TWISTC_API int transport_is_tls(const transport *t);

/* What the handshake negotiated. */
typedef struct tls_info {
    const char *version;    /* "TLSv1.3" (static) */
    const char *cipher;     /* "TLS_AES_256_GCM_SHA384" (static) */
    char alpn[64];          /* the ALPN protocol, "" when none */
    char peer_subject[256]; /* the peer certificate's subject ("CN=..."), "" when none */
    int peer_verified;      /* 1: the peer's certificate was checked and is good */
} tls_info;
/* -ENOTSUP: not TLS; -EAGAIN: the handshake has not finished yet. */
TWISTC_API int transport_tls_info(const transport *t, tls_info *out);

#ifdef __cplusplus
}
#endif
#endif
