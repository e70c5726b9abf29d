/* The notification client of the talk: requests return Deferreds.
 *
 *     deferred *d = notif_client_connect(r, "127.0.0.1", 6789, 5.0);  // fires with the client
 *     ...
 *     deferred *n = notif_random(c);          // fires with an integer (DEFERRED_INT)
 *     deferred *a = notif_classified(c);      // fires with the ad (DEFERRED_STR, owned)
 *     notif_notify(c);                        // notification mode on ...
 *     deferred *w = notif_wait_notif(c);      // ... fires with "random" or "classified"
 *     notif_stop_notify(c);
 *
 * or, the protocol author's dispatch (the talk's random_available / classified_available):
 *
 *     notif_set_random_available(c, on_new_random, ctx);
 *
 * Answers are matched to requests by order: the pending requests are a FIFO of Deferreds
 * (the talk's single `self.d` breaks as soon as two requests are in flight), the
 * library's <twistc/line_requests.h>. A line that
 * starts with "notif: " is a notification, never an answer: it goes to the oldest
 * notif_wait_notif() Deferred if there is one, else to the *_available callback, else it
 * is dropped. An "error: ..." answer fails that request's Deferred with NOTIF_ESERVER and
 * the server's line as message. When the connection ends, every pending Deferred fails
 * (NOTIF_ECLOSED for a clean close, else the errno of the loss), and so does any request
 * made afterwards (ENOTCONN).
 *
 * Ownership:
 *   - A notif_client belongs to its user from notif_client_new() or from the moment the
 *     connect Deferred fires with it. notif_client_free() gives it back: it closes the
 *     connection (pending requests fail), and the memory is released once the connection
 *     and its connector are gone (maybe later, from the loop). Do not use it afterwards.
 *   - Every function returning a Deferred returns one reference, owned by the caller
 *     (deferred_unref it, or coro_await_take it); the client keeps its own until it fires
 *     the Deferred. Such a Deferred may already have fired (a failure, when not
 *     connected).
 *   - Cancelling a request's Deferred does not unsend the request: its answer is read
 *     and dropped when it comes.
 *
 * Threads: reactor thread only. */
#ifndef TWISTC_NOTIF_CLIENT_H
#define TWISTC_NOTIF_CLIENT_H

#include <twistc/deferred.h>
#include <twistc/protocol.h>
#include <twistc/reactor.h>
#include <twistc/tls.h>
#include <twistc/twistc_base.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Failure codes (positive, beyond errno's range, like DEFERRED_E*). */
enum {
    NOTIF_ESERVER = 20101, /* the server answered "error: ..." (message: that line) */
    NOTIF_ECLOSED = 20102, /* the connection closed cleanly before the answer came */
    NOTIF_EBADANSWER = 20103, /* an answer the protocol does not allow (message says) */
};

typedef struct notif_client notif_client;
typedef void (*notif_available_fn)(notif_client *c, void *data);

/* A client not connected yet: hand notif_client_protocol(c) to your factory's
 * build_protocol (once). NULL+ENOMEM. */
TWISTC_API notif_client *notif_client_new(void);
TWISTC_API protocol *notif_client_protocol(notif_client *c);
/* Connects to host:port (timeout <= 0: 30 s). The Deferred fires with a DEFERRED_PTR to
 * the connected client (borrowed: the client is now yours, see Ownership), or fails with
 * the connection error (ECONNREFUSED, ETIMEDOUT, ...; message from the reason).
 * Cancelling it abandons the attempt. NULL+errno (ENOMEM, EINVAL). */
TWISTC_API deferred *notif_client_connect(reactor *r, const char *host, int port, double timeout);
/* The same over TLS with a client context (twistc/tls.h): the Deferred fires once TCP is
 * up; a failed handshake or verification then fails the requests, with its reason. */
TWISTC_API deferred *notif_client_connect_tls(reactor *r, const char *host, int port,
                                              double timeout, tls_context *ctx);
/* See Ownership. NULL ok. */
TWISTC_API void notif_client_free(notif_client *c);
/* The client in a connect result (NULL if r is not one). */
TWISTC_API notif_client *notif_client_from_result(const deferred_result *r);

/* Requests. random: DEFERRED_INT; classified: DEFERRED_STR (a NUL byte in the ad is
 * kept: line_requests_answer_len gives its whole length; malloc'd, owned by the
 * result). NULL+ENOMEM only when even a failed Deferred cannot be made. */
TWISTC_API deferred *notif_random(notif_client *c);
TWISTC_API deferred *notif_classified(notif_client *c);
/* Enter / leave notification mode (no answer is sent for these). -ENOTCONN, -ENOMEM. */
TWISTC_API int notif_notify(notif_client *c);
TWISTC_API int notif_stop_notify(notif_client *c);
/* The next notification: fires with a borrowed DEFERRED_STR, "random" or "classified". */
TWISTC_API deferred *notif_wait_notif(notif_client *c);
/* Sends "quit": the server answers what is pending, then closes. The Deferred fires with
 * NONE once the connection closed cleanly (fails otherwise). */
TWISTC_API deferred *notif_quit(notif_client *c);

/* The protocol author's dispatch: called for each notification that no wait_notif()
 * Deferred took. fn NULL removes it. */
TWISTC_API void notif_set_random_available(notif_client *c, notif_available_fn fn, void *data);
TWISTC_API void notif_set_classified_available(notif_client *c, notif_available_fn fn,
                                               void *data);

/* 1 while connected. */
TWISTC_API int notif_client_connected(const notif_client *c);
/* Requests sent and not answered yet. */
TWISTC_API size_t notif_client_pending(const notif_client *c);
/* Notifications received so far, and how many of them nobody took. */
TWISTC_API unsigned long notif_client_notifications(const notif_client *c);
TWISTC_API unsigned long notif_client_dropped_notifications(const notif_client *c);

#ifdef __cplusplus
}
#endif
#endif
