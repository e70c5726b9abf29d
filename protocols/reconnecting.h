/* ReconnectingClientFactory: a client factory that reconnects with exponential backoff
 * (Twisted's twisted.internet.protocol.ReconnectingClientFactory).
 *
 *     reconnecting_factory rf;
 *     reconnecting_factory_init(&rf, r, &my_client_ops, my_data);
 *     rf.initial_delay = 0.5;                      // optional tuning
 *     reactor_connect_tcp(r, host, port, &rf.base, 5);
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
 * Ownership: the struct is yours and must outlive the connector and the pending retry
 * (call reconnecting_factory_stop_trying before freeing it).
 */
#ifndef TWISTC_RECONNECTING_H
#define TWISTC_RECONNECTING_H

#include <twistc/protocol.h>
#include <twistc/reactor.h>
#include <twistc/transport.h>
#include <twistc/twistc.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct reconnecting_factory {
    factory base; /* pass &rf->base to reactor_connect_tcp/unix; base.data is yours */
    /* Settings (Twisted's defaults set by init; change them before connecting): */
    double initial_delay; /* 1.0 */
    double factor;        /* e = 2.7182818284590451 */
    double max_delay;     /* 3600 */
    double jitter;        /* 0.11962656472 */
    int max_retries;      /* -1: retry forever */
    /* State (read only): */
    double delay;         /* the current delay before jitter */
    int retries;
    int continue_trying;
    connector *connector;   /* the connector of the last attempt */
    reactor_timer *retry;   /* the pending retry, or NULL */
    /* private */
    const factory_ops *user_ops;
    reactor *r;
    unsigned long long rng;
} reconnecting_factory;

/* ops: your factory's callbacks (build_protocol required). data goes to base.data. */
TWISTC_API int reconnecting_factory_init(reconnecting_factory *rf, reactor *r,
                                         const factory_ops *ops, void *data);
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
