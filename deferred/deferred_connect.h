/* Connecting with a Deferred (Twisted's connectProtocol), and connection reasons as
 * Deferred failures.
 *
 *     protocol *p = my_protocol_new();
 *     deferred_result r = coro_await_take(reactor_connect_protocol(re, "127.0.0.1", 6789, p, 5));
 *     if (deferred_result_is_failure(&r)) {   // refused, timeout, DNS, cancelled...
 *         fprintf(stderr, "connect: %s\n", r.u.failure->message);
 *         my_protocol_free(p);                 // never used: still yours
 *     }
 *     // else p is connected: r.u.p == p, p->transport is set
 *
 * Ownership: the protocol stays the caller's. When the connect fails (or is cancelled)
 * no callback of p ran and the caller frees p when it likes. When it succeeds, p's
 * connection_made has run and p lives as any connected protocol: connection_lost is the
 * last call on it (it may free itself there). The Deferred returned is one reference
 * owned by the caller; the library keeps its own until it fires it.
 *
 * Threads: reactor thread only. */
#ifndef TWISTC_DEFERRED_CONNECT_H
#define TWISTC_DEFERRED_CONNECT_H

#include <twistc/deferred.h>
#include <twistc/protocol.h>
#include <twistc/reactor.h>
#include <twistc/tls.h>
#include <twistc/twistc_base.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Connects p to host:port over TCP (reactor_connect_tcp: host names, staggered
 * attempts; timeout <= 0 means 30 s, covering the lookup and every attempt).
 * The Deferred fires with DEFERRED_PTR p (borrowed) right after p's connection_made ran,
 * or fails with a failure made by deferred_failure_from_reason() (refused, timeout,
 * unreachable, DNS, failed). Cancelling it before it fired abandons the attempt at once
 * (the failure: ECANCELED, kind PROTOCOL_CONNECT_CANCELLED). Stopping or freeing the
 * reactor while connecting fails it the same way. NULL+errno (EINVAL: r, host, p NULL
 * or p without ops, a port outside 1..65535; ENOMEM); then nothing was started. */
TWISTC_API deferred *reactor_connect_protocol(reactor *r, const char *host, int port,
                                              protocol *p, double timeout);
/* The same over TLS (reactor_connect_tls, client context ctx): it fires once TCP is up
 * and connection_made ran, before the handshake (as Twisted's TLS endpoints); a failed
 * handshake or verification then reaches p's connection_lost (PROTOCOL_TLS_*). */
TWISTC_API deferred *reactor_connect_protocol_tls(reactor *r, const char *host, int port,
                                                  protocol *p, double timeout,
                                                  tls_context *ctx);

/* A failure telling why a connection ended or could not be made (one reference owned by
 * the caller; never NULL). Its message is protocol_reason_format()'s line, and its
 * code the reason's errno; when the reason has none: PROTOCOL_DONE gives
 * DEFERRED_ECONNDONE, CONNECT_DNS DEFERRED_EDNS, CONNECT_CANCELLED ECANCELED,
 * CONNECT_TIMEOUT ETIMEDOUT, the others ECONNABORTED. The kind is kept
 * (deferred_failure_reason_kind). */
#define deferred_failure_from_reason(reason) \
    deferred_failure_from_reason_at(__FILE__, __LINE__, (reason))
TWISTC_API deferred_failure *deferred_failure_from_reason_at(const char *file, int line,
                                                             const protocol_reason *reason);
/* The protocol_reason_kind of the first failure in f's cause chain that was made from a
 * reason, or -1 when none was (f NULL too). */
TWISTC_API int deferred_failure_reason_kind(const deferred_failure *f);

#ifdef __cplusplus
}
#endif
#endif
