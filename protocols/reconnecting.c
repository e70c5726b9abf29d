/* ReconnectingClientFactory: backoff between connection attempts (see reconnecting.h). */
#include <twistc/reconnecting.h>

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct reconnecting_factory {
    factory base; /* base.data is the user's */
    reconnecting_backoff cfg;
    double delay; /* the current delay before jitter */
    int retries;
    int continue_trying;
    connector *connector;   /* the connector of the last attempt */
    reactor_timer *retry;   /* the pending retry, or NULL */
    const factory_ops *user_ops;
    reactor *r;
    unsigned long long rng;
};

static reconnecting_factory *rf_of(factory *f)
{
    return (reconnecting_factory *)((char *)f - offsetof(reconnecting_factory, base));
}

/* xorshift64*: a small private generator, so jitter never touches rand()'s state. */
static double uniform(reconnecting_factory *rf)
{
    unsigned long long x = rf->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rf->rng = x;
    return (double)((x * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

/* A normal variate without libm: the sum of 12 uniforms minus 6 (Irwin-Hall) has mean 0
 * and variance 1, close enough to a Gaussian for spreading retries. */
static double normal(reconnecting_factory *rf, double mu, double sigma)
{
    if (sigma <= 0)
        return mu;
    double z = -6.0;
    for (int i = 0; i < 12; i++)
        z += uniform(rf);
    return mu + sigma * z;
}

static void do_retry(reactor *r, void *data)
{
    (void)r;
    reconnecting_factory *rf = data;
    rf->retry = NULL;
    if (rf->continue_trying && rf->connector)
        connector_connect(rf->connector);
}

static void retry(reconnecting_factory *rf, connector *c)
{
    if (!rf->continue_trying)
        return;
    if (c)
        rf->connector = c;
    rf->retries++;
    if (rf->cfg.max_retries >= 0 && rf->retries > rf->cfg.max_retries)
        return; /* given up */
    if (rf->retries == 1) {
        rf->delay = rf->cfg.initial_delay; /* our choice: the first wait is initial_delay */
    } else {
        rf->delay *= rf->cfg.factor;
        if (rf->delay > rf->cfg.max_delay)
            rf->delay = rf->cfg.max_delay;
    }
    double wait = normal(rf, rf->delay, rf->delay * rf->cfg.jitter);
    if (wait < 0)
        wait = 0;
    if (rf->retry)
        reactor_timer_cancel(rf->retry);
    rf->retry = reactor_call_later(rf->r, wait, do_retry, rf);
}

static protocol *g_build(factory *f, const struct sockaddr *addr, socklen_t len)
{
    reconnecting_factory *rf = rf_of(f);
    protocol *p = rf->user_ops->build_protocol(f, addr, len);
    if (p)
        reconnecting_factory_reset_delay(rf); /* connected: start the backoff afresh */
    return p;
}

static void g_start(factory *f)
{
    reconnecting_factory *rf = rf_of(f);
    if (rf->user_ops->start_factory)
        rf->user_ops->start_factory(f);
}

static void g_stop(factory *f)
{
    reconnecting_factory *rf = rf_of(f);
    if (rf->user_ops->stop_factory)
        rf->user_ops->stop_factory(f);
}

static void g_connecting(factory *f, connector *c)
{
    reconnecting_factory *rf = rf_of(f);
    rf->connector = c;
    if (rf->user_ops->started_connecting)
        rf->user_ops->started_connecting(f, c);
}

static void g_failed(factory *f, connector *c, const protocol_reason *reason)
{
    reconnecting_factory *rf = rf_of(f);
    if (rf->user_ops->client_connection_failed)
        rf->user_ops->client_connection_failed(f, c, reason);
    retry(rf, c);
}

static void g_lost(factory *f, connector *c, const protocol_reason *reason)
{
    reconnecting_factory *rf = rf_of(f);
    if (rf->user_ops->client_connection_lost)
        rf->user_ops->client_connection_lost(f, c, reason);
    retry(rf, c);
}

static const factory_ops glue_ops = {
    .build_protocol = g_build,
    .start_factory = g_start,
    .stop_factory = g_stop,
    .started_connecting = g_connecting,
    .client_connection_failed = g_failed,
    .client_connection_lost = g_lost,
};

reconnecting_factory *reconnecting_factory_new(reactor *r, const factory_ops *ops, void *data)
{
    if (!r || !ops || !ops->build_protocol) {
        errno = EINVAL;
        return NULL;
    }
    reconnecting_factory *rf = calloc(1, sizeof *rf);
    if (!rf)
        return NULL;
    factory_init(&rf->base, &glue_ops, data);
    rf->user_ops = ops;
    rf->r = r;
    rf->cfg.initial_delay = 1.0;
    rf->cfg.factor = 2.7182818284590451;
    rf->cfg.max_delay = 3600;
    rf->cfg.jitter = 0.11962656472;
    rf->cfg.max_retries = -1;
    rf->delay = rf->cfg.initial_delay;
    rf->continue_trying = 1;
    rf->rng = 0x9e3779b97f4a7c15ULL ^ (unsigned long long)(size_t)rf;
    return rf;
}

void reconnecting_factory_free(reconnecting_factory *rf)
{
    if (!rf)
        return;
    if (rf->retry)
        reactor_timer_cancel(rf->retry); /* the connector is not touched: it may be gone */
    free(rf);
}

factory *reconnecting_factory_base(reconnecting_factory *rf) { return rf ? &rf->base : NULL; }
reconnecting_backoff *reconnecting_factory_backoff(reconnecting_factory *rf)
{
    return rf ? &rf->cfg : NULL;
}
int reconnecting_factory_retries(const reconnecting_factory *rf) { return rf ? rf->retries : 0; }
double reconnecting_factory_delay(const reconnecting_factory *rf) { return rf ? rf->delay : 0; }
double reconnecting_factory_next_retry(const reconnecting_factory *rf)
{
    return rf && rf->retry ? reactor_timer_time(rf->retry) : -1;
}
connector *reconnecting_factory_connector(const reconnecting_factory *rf)
{
    return rf ? rf->connector : NULL;
}

void reconnecting_factory_reset_delay(reconnecting_factory *rf)
{
    rf->delay = rf->cfg.initial_delay;
    rf->retries = 0;
    rf->continue_trying = 1;
}

void reconnecting_factory_stop_trying(reconnecting_factory *rf)
{
    if (rf->retry) {
        reactor_timer_cancel(rf->retry);
        rf->retry = NULL;
    }
    rf->continue_trying = 0;
    if (rf->connector)
        connector_stop_connecting(rf->connector); /* -ENOTCONN when not connecting */
}

void reconnecting_factory_seed(reconnecting_factory *rf, unsigned long long seed)
{
    rf->rng = seed ? seed : 1;
}
