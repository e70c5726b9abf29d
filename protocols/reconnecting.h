/* ReconnectingClientFactory: a client factory that reconnects with exponential backoff
 * (Twisted's twisted.internet.protocol.ReconnectingClientFactory).
 *
 *     reconnecting_factory *rf = reconnecting_factory_new(r, &my_client_ops, my_data);
 *     reconnecting_factory_backoff(rf)->initial_delay = 0.5;   // optional tuning
 *     reactor_connect_tcp(r, host, port, reconnecting_factory_base(rf), 5);
 *
 * Your factory_ops (build_protocol required, the client hooks optional) are called as
 * usual; after each failed attempt or lost connection the factory waits, then calls
 * connector_connect() again:
 *     retries += 1; give up if max_retries >= 0 and retries > max_retries
 *     first retry:  wait = initial_delay
 *     later ones:   delay = min(delay * factor, max_delay); wait = delay
 *     wait = normal(wait, wait * jitter), never below 0
 *
 * Two deliberate differences from Twisted (docs/protocols.md):
 *   - The first retry comes after initial_delay. Twisted multiplies before the first
 *     retry, so its first wait is initial_delay * factor (about 2.7 s by default).
 *   - Jitter is applied to each wait only; in Twisted it is folded into the delay itself
 *     and compounds from one retry to the next.
 *   - The delay is reset automatically each time a connection succeeds (Twisted leaves
 *     the resetDelay() call to you, and forgetting it is a classic bug).
 *
 * Ownership: yours (reconnecting_factory_free); it must outlive the connectors using it
 * and be freed before the reactor.
 * Its state is private: read it through the functions below.
 */
#ifndef TWISTC_RECONNECTING_H
#define TWISTC_RECONNECTING_H

#include <twistc/protocol.h>
#include <twistc/reactor.h>
#include <twistc/transport.h>
#include <twistc/twistc_base.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Opaque: made by reconnecting_factory_new, freed by reconnecting_factory_free. */
typedef struct reconnecting_factory reconnecting_factory;

/* The backoff settings (Twisted's defaults set by _new; change them before connecting). */
typedef struct reconnecting_backoff {
    double initial_delay; /* 1.0 */
    double factor;        /* e = 2.7182818284590451 */
    double max_delay;     /* 3600 */
    double jitter;        /* 0.11962656472 */
    int max_retries;      /* -1: retry forever */
} reconnecting_backoff;

/* ops: your factory's callbacks (build_protocol required); data goes to the factory's
 * `data` (what your callbacks see as f->data). NULL with errno EINVAL or ENOMEM. */
TWISTC_API reconnecting_factory *reconnecting_factory_new(reactor *r, const factory_ops *ops,
                                                          void *data);
/* Cancels the pending retry and frees rf. Free it after the connectors that use it (they
 * call the factory until freed) and before the reactor (the retry is a reactor timer). */
TWISTC_API void reconnecting_factory_free(reconnecting_factory *rf);
/* The factory to pass to reactor_connect_tcp / reactor_connect_unix. */
TWISTC_API factory *reconnecting_factory_base(reconnecting_factory *rf);
/* The settings, to change in place (before connecting). */
TWISTC_API reconnecting_backoff *reconnecting_factory_backoff(reconnecting_factory *rf);
/* State, read only: failed attempts since the last success; the current delay before
 * jitter; the reactor time at which the pending retry runs, or -1 when none is pending;
 * the connector of the last attempt (NULL before the first). */
TWISTC_API int reconnecting_factory_retries(const reconnecting_factory *rf);
TWISTC_API double reconnecting_factory_delay(const reconnecting_factory *rf);
TWISTC_API double reconnecting_factory_next_retry(const reconnecting_factory *rf);
TWISTC_API connector *reconnecting_factory_connector(const reconnecting_factory *rf);
/* Back to initial_delay, retries 0, trying again (called on every successful connect). */
TWISTC_API void reconnecting_factory_reset_delay(reconnecting_factory *rf);
/* Cancels the pending retry and stops a connection attempt in progress; no more retries. */
TWISTC_API void reconnecting_factory_stop_trying(reconnecting_factory *rf);
/* For tests: seeds the jitter's random numbers. */
TWISTC_API void reconnecting_factory_seed(reconnecting_factory *rf, unsigned long long seed);

#ifdef __cplusplus
}
#endif
#endif
