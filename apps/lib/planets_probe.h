/* The mail lesson's meter (docs/mail-lesson.md): how long does an unrelated client wait
 * for an answer while the planets run?
 *
 * planets_probe_start() puts the notification server (apps/notif/, the talk's second
 * example) on the planets' reactor, listening on an ephemeral loopback port, and starts
 * one thread that connects to it with a plain blocking socket and asks "random?" every
 * `interval` seconds, one question at a time, timing each answer. The pinger is a thread
 * of its own, not a callback on the same reactor, on purpose: while a callback blocks the
 * loop, a timer on that loop would be late too and could not see its own delay honestly;
 * a thread's clock keeps running, and it waits like a remote client would.
 *
 * Flow: ready(r, data) runs on the reactor thread once the first answer came back (start
 * the real work then, so that the meter runs before it); planets_probe_stop() asks the
 * thread to finish its current question and stop; stopped(r, data) runs on the reactor
 * thread when it did (or when it failed: planets_probe_error says why). The thread times
 * out on a silent server after 30 s, so nothing hangs for ever.
 *
 * Ownership: the probe is the caller's; planets_probe_free() after `stopped` ran (it
 * joins the thread), before reactor_free(). Threads: every function on the reactor
 * thread; the pinger touches nothing but its socket, its samples and
 * reactor_call_from_thread.
 */
#ifndef PLANETS_PROBE_H
#define PLANETS_PROBE_H

#include <stddef.h>

#include <twistc/reactor.h>

typedef struct planets_probe planets_probe;

/* One answer: sent at `sent` (planets_now() seconds), answered `latency` seconds later. */
struct planets_ping {
    double sent, latency;
};

/* NULL+errno when the server cannot listen or the thread cannot start. */
planets_probe *planets_probe_start(reactor *r, double interval, reactor_fn ready,
                                   reactor_fn stopped, void *data);
void planets_probe_stop(planets_probe *p);
/* Why the pinger stopped early, or NULL when it did not. */
const char *planets_probe_error(const planets_probe *p);
/* The samples so far (after `stopped`: all of them). Borrowed. */
const struct planets_ping *planets_probe_samples(const planets_probe *p, size_t *n);
/* Joins the thread, closes the server. NULL ok. */
void planets_probe_free(planets_probe *p);

#endif
