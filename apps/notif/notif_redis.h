/* Notification servers sharing their events through Redis pub/sub (docs/scaling.md).
 *
 *     notif_redis *nr = notif_redis_new(r, s, &(notif_redis_config){
 *         .redis = {.host = "10.0.0.5", .port = 6379}, .channel = "twistc:notif"});
 *
 * Every event the server produces (its timer, notif_server_publish) is delivered to its
 * own subscribers at once and published on the channel; every event another instance
 * (or notif-publish) published is delivered to this server's subscribers with
 * notif_server_deliver. So each notify-mode client of each instance gets each event
 * once, in the order its producer made them. An instance skips its own messages (each
 * carries the producer's random id).
 *
 * The newest ad is also kept in Redis (the key "<channel>:classified", SET before the
 * PUBLISH on one connection) and read once each time the link comes up; between those,
 * classified? is answered from the events, with no round trip to Redis.
 *
 * At-most-once: while the link is down, events produced here reach only local clients,
 * and events of other instances are lost to this one; nothing is replayed after a
 * reconnect and nothing is delivered twice.
 *
 * Wire format of a message (one Redis pub/sub payload):
 *     "<16 hex digits of producer id> <sequence> random"
 *     "<16 hex digits of producer id> <sequence> classified <the ad>"
 * A message that does not parse, or whose ad fails notif_ad_check, is dropped and
 * counted (bad_messages).
 *
 * Ownership: nr is the caller's; free it before the server and the reactor, and not
 * from inside its own link callback. It owns its redis_client. Threads: the reactor's. */
#ifndef TWISTC_NOTIF_REDIS_H
#define TWISTC_NOTIF_REDIS_H

#include <stdint.h>

#include <twistc/deferred.h>
#include "apps/notif/notif_server.h"
#include <twistc/reactor.h>
#include <twistc/redis.h>
#include <twistc/twistc.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NOTIF_REDIS_DEFAULT_CHANNEL "twistc:notif"

typedef struct notif_redis notif_redis;

typedef struct notif_redis_config {
    redis_config redis;  /* where Redis is, timeouts, back-off (redis.h) */
    const char *channel; /* NULL: NOTIF_REDIS_DEFAULT_CHANNEL */
} notif_redis_config;

typedef struct notif_redis_stats {
    uint64_t published;    /* events of ours Redis accepted */
    uint64_t publish_failed; /* events of ours that reached local clients only */
    uint64_t received;     /* events of other producers delivered here */
    uint64_t own_skipped;  /* our own events coming back (ignored) */
    uint64_t bad_messages; /* messages that did not parse */
    unsigned long links, drops; /* of the Redis link */
} notif_redis_stats;

/* Link changes, for the application to report (the library prints nothing). */
typedef void (*notif_redis_link_fn)(notif_redis *nr, int up, const char *why, void *data);

/* Connects s to Redis (starts at once, keeps retrying). NULL+errno (EINVAL, ENOMEM). */
TWISTC_API notif_redis *notif_redis_new(reactor *r, notif_server *s,
                                        const notif_redis_config *cfg);
TWISTC_API void notif_redis_free(notif_redis *nr);
TWISTC_API void notif_redis_on_link(notif_redis *nr, notif_redis_link_fn fn, void *data);
TWISTC_API notif_redis_stats notif_redis_get_stats(const notif_redis *nr);
TWISTC_API int notif_redis_connected(const notif_redis *nr);

/* Posts one event from outside any server (notif-publish): SET (for an ad) and PUBLISH
 * on rc. The Deferred fires with PUBLISH's reply (the number of subscribed connections
 * that got it: the instances listening) or fails. ad is checked with notif_ad_check
 * (EINVAL failure). */
TWISTC_API deferred *notif_redis_post(redis_client *rc, const char *channel, notif_event ev,
                                      const char *ad);

#ifdef __cplusplus
}
#endif
#endif
