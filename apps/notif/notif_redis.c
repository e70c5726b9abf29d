/* Notification servers over Redis pub/sub (notif_redis.h). */
#include "apps/notif/notif_redis.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct notif_redis {
    reactor *r;
    notif_server *s;
    redis_client *rc;
    char *channel;
    char *key; /* "<channel>:classified" */
    char id[17];
    uint64_t seq;
    uint64_t ad_gen; /* classified messages received: a GET older than one is stale */
    notif_redis_link_fn link_fn;
    void *link_data;
    notif_redis_stats st;
};

static uint64_t fresh_id(const void *salt)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 20) ^
                 (uint64_t)(uintptr_t)salt;
    /* splitmix64: spreads close inputs (two instances started together) far apart */
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static int format_event(char **out, const char *id, uint64_t seq, notif_event ev, const char *ad,
                        size_t len)
{
    size_t cap = 16 + 1 + 20 + 1 + 10 + 1 + len + 1;
    char *m = malloc(cap);
    if (!m)
        return -ENOMEM;
    int n = snprintf(m, cap, "%s %" PRIu64 " %s%s", id, seq,
                     ev == NOTIF_EVENT_CLASSIFIED ? "classified" : "random",
                     ev == NOTIF_EVENT_CLASSIFIED ? " " : "");
    if (ev == NOTIF_EVENT_CLASSIFIED) {
        memcpy(m + n, ad, len);
        n += (int)len;
    }
    m[n] = '\0';
    *out = m;
    return n;
}

static deferred_result drop_result(deferred_result r, void *arg)
{
    deferred_result_clear(&r);
    return deferred_none();
}

/* Sends SET (for an ad) and PUBLISH, pipelined on one connection: whoever sees the
 * message and then reads the key sees this ad or a newer one. */
static deferred *post(redis_client *rc, const char *channel, const char *id, uint64_t seq,
                      notif_event ev, const char *ad, size_t len)
{
    char *msg;
    int n = format_event(&msg, id, seq, ev, ad, len);
    if (n < 0)
        return deferred_fail(deferred_failure_new(ENOMEM, "out of memory"));
    if (ev == NOTIF_EVENT_CLASSIFIED) {
        deferred *set = redis_command(rc, "SET %s:classified %b", channel, ad, len);
        if (set) { /* its fate is the PUBLISH's: same connection, next command */
            deferred_add_both(set, drop_result, NULL);
            deferred_unref(set);
        }
    }
    deferred *d = redis_command(rc, "PUBLISH %s %b", channel, msg, (size_t)n);
    free(msg);
    return d;
}

/* ---- Our events out ---------------------------------------------------------------- */

static deferred_result published(deferred_result r, void *arg)
{
    notif_redis *nr = arg;
    nr->st.published++;
    deferred_result_clear(&r);
    return deferred_none();
}

static deferred_result publish_failed(deferred_result r, void *arg)
{
    notif_redis *nr = arg;
    nr->st.publish_failed++; /* at-most-once: our local clients had it, nobody else */
    deferred_result_clear(&r);
    return deferred_none();
}

static void on_event(notif_server *s, notif_event ev, const char *ad, size_t len, void *data)
{
    notif_redis *nr = data;
    deferred *d = post(nr->rc, nr->channel, nr->id, ++nr->seq, ev, ad, len);
    if (!d) {
        nr->st.publish_failed++;
        return;
    }
    deferred_add_callbacks(d, published, publish_failed, nr);
    deferred_unref(d);
}

/* ---- Their events in -------------------------------------------------------------- */

static void on_message(redis_client *rc, const char *channel, const char *msg, size_t len,
                       void *data)
{
    notif_redis *nr = data;
    /* "<id> <seq> random" | "<id> <seq> classified <ad>" */
    const char *end = msg + len, *p = memchr(msg, ' ', len);
    if (!p || p - msg != 16)
        goto bad;
    if (memcmp(msg, nr->id, 16) == 0) {
        nr->st.own_skipped++;
        return;
    }
    const char *q = memchr(p + 1, ' ', (size_t)(end - p - 1));
    if (!q || q == p + 1)
        goto bad;
    for (const char *d = p + 1; d < q; d++)
        if (*d < '0' || *d > '9')
            goto bad;
    q++;
    size_t rest = (size_t)(end - q);
    if (rest == 6 && memcmp(q, "random", 6) == 0) {
        notif_server_deliver(nr->s, NOTIF_EVENT_RANDOM, NULL, 0);
    } else if (rest > 11 && memcmp(q, "classified ", 11) == 0) {
        if (notif_server_deliver(nr->s, NOTIF_EVENT_CLASSIFIED, q + 11, rest - 11) < 0)
            goto bad;
        nr->ad_gen++;
    } else {
        goto bad;
    }
    nr->st.received++;
    return;
bad:
    nr->st.bad_messages++;
}

/* ---- The newest ad, read when the link comes up ------------------------------------ */

struct get_ctx {
    notif_redis *nr;
    uint64_t gen;
};

static deferred_result on_get(deferred_result r, void *arg)
{
    struct get_ctx *g = arg;
    /* (notif_redis_free fails this GET with ECANCELED while nr still exists) */
    if (g->nr && r.kind == DEFERRED_STR && g->gen == g->nr->ad_gen)
        notif_server_set_classified(g->nr->s, r.u.s, strlen(r.u.s));
    deferred_result_clear(&r);
    return deferred_none();
}

static void on_link(redis_client *rc, int up, const char *why, void *data)
{
    notif_redis *nr = data;
    nr->st.links = redis_client_links(rc);
    nr->st.drops = redis_client_drops(rc);
    if (up) {
        struct get_ctx *g = malloc(sizeof *g);
        deferred *d = g ? redis_command(rc, "GET %s", nr->key) : NULL;
        if (d) {
            g->nr = nr;
            g->gen = nr->ad_gen;
            deferred_add_callbacks_full(d, on_get, on_get, g, free);
            deferred_unref(d);
        } else {
            free(g);
        }
    }
    if (nr->link_fn)
        nr->link_fn(nr, up, why, nr->link_data);
}

/* ---- Life cycle ------------------------------------------------------------------- */

notif_redis *notif_redis_new(reactor *r, notif_server *s, const notif_redis_config *cfg)
{
    if (!r || !s || !cfg) {
        errno = EINVAL;
        return NULL;
    }
    const char *ch = cfg->channel ? cfg->channel : NOTIF_REDIS_DEFAULT_CHANNEL;
    if (!*ch || strchr(ch, ' ')) {
        errno = EINVAL;
        return NULL;
    }
    notif_redis *nr = calloc(1, sizeof *nr);
    if (!nr)
        return NULL;
    nr->r = r;
    nr->s = s;
    nr->channel = strdup(ch);
    nr->key = malloc(strlen(ch) + sizeof ":classified");
    if (!nr->channel || !nr->key) {
        free(nr->channel);
        free(nr->key);
        free(nr);
        errno = ENOMEM;
        return NULL;
    }
    sprintf(nr->key, "%s:classified", ch);
    snprintf(nr->id, sizeof nr->id, "%016" PRIx64, fresh_id(nr));
    nr->rc = redis_client_new(r, &cfg->redis);
    if (!nr->rc) {
        int e = errno;
        free(nr->channel);
        free(nr->key);
        free(nr);
        errno = e;
        return NULL;
    }
    redis_client_on_link(nr->rc, on_link, nr);
    int rc = redis_subscribe(nr->rc, nr->channel, on_message, nr);
    if (rc < 0) {
        redis_client_free(nr->rc);
        free(nr->channel);
        free(nr->key);
        free(nr);
        errno = -rc;
        return NULL;
    }
    notif_server_set_event_hook(s, on_event, nr);
    return nr;
}

void notif_redis_free(notif_redis *nr)
{
    if (!nr)
        return;
    notif_server_set_event_hook(nr->s, NULL, NULL);
    redis_client_on_link(nr->rc, NULL, NULL);
    /* Pending commands fail now (ECANCELED): published/publish_failed/on_get still see
     * nr, which is freed only after. */
    redis_client_free(nr->rc);
    free(nr->channel);
    free(nr->key);
    free(nr);
}

void notif_redis_on_link(notif_redis *nr, notif_redis_link_fn fn, void *data)
{
    if (nr) {
        nr->link_fn = fn;
        nr->link_data = data;
    }
}

notif_redis_stats notif_redis_get_stats(const notif_redis *nr)
{
    notif_redis_stats z = {0};
    if (!nr)
        return z;
    z = nr->st;
    z.links = redis_client_links(nr->rc);
    z.drops = redis_client_drops(nr->rc);
    return z;
}

int notif_redis_connected(const notif_redis *nr) { return nr && redis_client_connected(nr->rc); }

deferred *notif_redis_post(redis_client *rc, const char *channel, notif_event ev, const char *ad)
{
    if (!rc) {
        errno = EINVAL;
        return NULL;
    }
    if (!channel)
        channel = NOTIF_REDIS_DEFAULT_CHANNEL;
    size_t len = 0;
    if (ev == NOTIF_EVENT_CLASSIFIED) {
        len = ad ? strlen(ad) : 0;
        const char *why = notif_ad_check(ad, len);
        if (why)
            return deferred_fail(deferred_failure_new(EINVAL, "bad ad: %s", why));
    } else if (ev != NOTIF_EVENT_RANDOM) {
        return deferred_fail(deferred_failure_new(EINVAL, "unknown event"));
    }
    char id[17];
    snprintf(id, sizeof id, "%016" PRIx64, fresh_id(rc));
    return post(rc, channel, id, 1, ev, ad, len);
}
