/* An in-memory transport for unit-testing protocols without sockets (Twisted's
 * StringTransport, proto_helpers). Pair it with the reactor's fake clock
 * (reactor_use_fake_clock / reactor_advance) for timers.
 *
 *     transport *t = memory_transport_new();
 *     memory_transport_connect(t, &my_proto.base);          // connection_made
 *     memory_transport_receive(t, "hello\n", 6);            // data_received
 *     size_t n; const char *out = memory_transport_value(t, &n);  // what it wrote
 *     ck_assert(transport_disconnecting(t));                 // did it close?
 *     memory_transport_lose(t, PROTOCOL_DONE, 0);            // connection_lost
 *     memory_transport_free(t);
 *
 * Every transport_* call works on it: writes are recorded (never sent), lose/abort only
 * set the flags you can inspect (nothing is delivered until you call
 * memory_transport_lose or memory_transport_finish, as with StringTransport), pause and
 * resume set transport_paused(). The hard output cap does not apply.
 *
 * Ownership: the test owns the memory transport; memory_transport_free() frees it (not the
 * protocol) and does NOT call connection_lost.
 */
#ifndef TWISTC_MEMORY_TRANSPORT_H
#define TWISTC_MEMORY_TRANSPORT_H

#include <stddef.h>

#include <twistc/protocol.h>
#include <twistc/transport.h>
#include <twistc/twistc_base.h>

#ifdef __cplusplus
extern "C" {
#endif

TWISTC_API transport *memory_transport_new(void);
TWISTC_API void memory_transport_free(transport *t);

/* Attaches p (sets p->transport) and calls connection_made. -EBUSY if already done. */
TWISTC_API int memory_transport_connect(transport *t, protocol *p);
/* Delivers bytes to data_received (like one read), even when paused (a test may want to
 * check what the protocol does then). Returns data_received's value; 0 and nothing
 * delivered once the connection is lost. */
TWISTC_API int memory_transport_receive(transport *t, const void *data, size_t len);
/* The peer half-closed: read_connection_lost if the protocol has it, else the same as
 * lose_connection (flags only). */
TWISTC_API void memory_transport_receive_eof(transport *t);

/* Everything written so far (not NUL-terminated; *len may be NULL). */
TWISTC_API const char *memory_transport_value(const transport *t, size_t *len);
/* Forgets what was written (for the next assertion). */
TWISTC_API void memory_transport_clear(transport *t);

/* Calls connection_lost(kind, err) now (once; later calls do nothing). */
TWISTC_API void memory_transport_lose(transport *t, protocol_reason_kind kind, int err);
/* Finishes what the protocol asked for: after transport_abort_connection,
 * connection_lost(ABORTED); after lose_connection, connection_lost(DONE). Returns 1 if
 * connection_lost was called. */
TWISTC_API int memory_transport_finish(transport *t);
/* 1 after transport_abort_connection. */
TWISTC_API int memory_transport_aborted(const transport *t);
/* 1 after transport_lose_write_connection. */
TWISTC_API int memory_transport_write_closed(const transport *t);
/* 1 once connection_lost was delivered. */
TWISTC_API int memory_transport_lost(const transport *t);

#ifdef __cplusplus
}
#endif
#endif
