/* The TLS layer's hooks into the socket transport (transport.c calls them only for a
 * connection whose extra settings hold a TLS layer, so plaintext connections never
 * reach them). Internal to libtwistc. */
#ifndef TWISTC_TLS_INTERNAL_H
#define TWISTC_TLS_INTERNAL_H

#include <stddef.h>

#include <twistc/tls.h>

#include "reactor/transport_internal.h"

/* Adds a TLS layer to t (before connection_made, or for STARTTLS). client: we send
 * the ClientHello and check host (may be NULL). -ENOMEM. */
int tls__attach(transport *t, tls_context *ctx, int client, const char *host);
/* Frees the layer (after connection_lost and the owner's callbacks). */
void tls__free(struct tls_conn *c);
/* Plaintext the protocol wrote, kept until the next step (transport_write's path when
 * the buffer has no room: borrows the shared buffer or grows its own). -ENOMEM. */
int tls__write(struct tls_conn *c, const void *data, size_t len);
/* Plaintext written and not yet encrypted. */
size_t tls__held(const struct tls_conn *c);
/* Ciphertext received (n > 0): decrypt, deliver, answer the handshake. */
void tls__received(transport *t, const char *data, size_t n);
/* The peer's FIN: a clean end after close_notify, else a truncation or a failed
 * handshake. Closes the socket. */
void tls__eof(transport *t);
/* Start of step(): start the handshake (client), go on with input kept while paused,
 * encrypt the plaintext written since the last step (one SSL_write). */
void tls__before_send(transport *t);
/* Everything pending was sent. Handles lose_connection (close_notify, then wait for the
 * peer's at most the close timeout) and lose_write_connection. producer: a producer
 * still holds a lose_connection back. Returns 0 when the caller has nothing more to do
 * than watch, 1 when it must step again (bytes to send or the socket closed). */
int tls__drained(transport *t, int producer);
/* 1 while the connection must read although lose_connection was called (waiting for
 * the peer's close_notify). */
int tls__reading_on_close(const struct tls_conn *c);
/* Fills reason's message and detail for this TLS connection's end. */
void tls__reason(const struct tls_conn *c, protocol_reason *reason);

#endif
