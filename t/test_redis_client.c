/* The hiredis adapter and the Redis client against a real redis-server (started once for
 * the suite on a free loopback port, no persistence), on every backend: replies of every
 * type, errors, subscriptions, the link dropping (killed by Redis, Redis killed and
 * restarted on its port, Redis stopped with SIGSTOP), back-off on the fake clock, a fake
 * server answering garbage, freeing from inside a callback. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <hiredis/async.h>

#include <twistc/redis.h>

#include "helpers.h"
#include "redis_helpers.h"

static struct trs srv;

static void suite_setup(void) { trs_start(&srv, 0); }
static void suite_teardown(void) { trs_stop(&srv); }
/* A test that stopped the server (SIGSTOP) or killed it must leave it running. */
static void test_teardown(void)
{
    if (srv.dir[0])
        trs_signal(&srv, SIGCONT);
}

#define SKIP_IF_NO_REDIS()                                                                    \
    do {                                                                                      \
        if (trs_skip(&srv, __func__))                                                        \
            return;                                                                           \
    } while (0)

/* ---- Collecting results ------------------------------------------------------------ */

struct got {
    int fired;
    deferred_result res;
};

static deferred_result keep(deferred_result r, void *arg)
{
    struct got *g = arg;
    g->fired = 1;
    g->res = r;
    return deferred_none();
}

/* Chains keep() on d (and drops the caller's reference). */
static void collect(deferred *d, struct got *g)
{
    ck_assert_ptr_nonnull(d);
    memset(g, 0, sizeof *g);
    deferred_add_both(d, keep, g);
    deferred_unref(d);
}

static int wait_fired(reactor *r, struct got *g, double secs)
{
    return th_iterate_until(r, &g->fired, secs);
}

struct link_log {
    int ups, downs;
    char last_why[200];
};

static void on_link(redis_client *rc, int up, const char *why, void *data)
{
    struct link_log *l = data;
    if (up) {
        l->ups++;
    } else {
        l->downs++;
        snprintf(l->last_why, sizeof l->last_why, "%s", why ? why : "");
    }
}

static redis_client *client(reactor *r, struct link_log *log, double timeout)
{
    redis_config cfg = {.port = srv.port, .command_timeout = timeout, .connect_timeout = timeout,
                        .ping_interval = timeout / 4, .initial_delay = 0.05, .max_delay = 0.2};
    redis_client *rc = redis_client_new(r, &cfg);
    ck_assert_ptr_nonnull(rc);
    memset(log, 0, sizeof *log);
    redis_client_on_link(rc, on_link, log);
    return rc;
}

static int wait_up(reactor *r, struct link_log *log, int ups, double secs)
{
    for (int i = 0; i < 100000 && log->ups < ups; i++) {
        int done = 0;
        reactor_timer *t = reactor_call_later(r, 0.01, th_set_flag, &done);
        th_iterate_until(r, &done, 1);
        (void)t;
        if (secs <= 0)
            break;
        secs -= 0.01;
    }
    return log->ups >= ups;
}

/* ---- The adapter alone ------------------------------------------------------------- */

struct raw {
    int n;
    long long last_int;
    char last_str[64];
    int disconnected;
};

static void raw_reply(redisAsyncContext *ac, void *reply, void *data)
{
    struct raw *x = ac->data;
    redisReply *rep = reply;
    x->n++;
    if (!rep)
        return;
    if (rep->type == REDIS_REPLY_INTEGER)
        x->last_int = rep->integer;
    else if (rep->str)
        snprintf(x->last_str, sizeof x->last_str, "%s", rep->str);
}

static void raw_disconnected(const redisAsyncContext *ac, int status)
{
    ((struct raw *)ac->data)->disconnected = 1 + (status == REDIS_OK);
}

START_TEST(test_adapter_set_get)
{
    SKIP_IF_NO_REDIS();
    reactor *r = th_reactor(_i);
    redisAsyncContext *ac = redisAsyncConnect("127.0.0.1", srv.port);
    ck_assert_ptr_nonnull(ac);
    ck_assert_int_eq(ac->err, 0);
    struct raw x = {0};
    ac->data = &x;
    ck_assert_int_eq(redis_attach(ac, r), 0);
    ck_assert_int_eq(redis_attach(ac, r), -EEXIST);
    redisAsyncSetDisconnectCallback(ac, raw_disconnected);
    char key[32];
    snprintf(key, sizeof key, "adapter:%s", reactor_backend_name(r));
    redisAsyncCommand(ac, raw_reply, NULL, "DEL %s", key);
    redisAsyncCommand(ac, raw_reply, NULL, "SET %s %s", key, "hello");
    redisAsyncCommand(ac, raw_reply, NULL, "APPEND %s %s", key, " world");
    redisAsyncCommand(ac, raw_reply, NULL, "GET %s", key);
    for (int i = 0; i < 100000 && x.n < 4; i++)
        reactor_iterate(r, 1);
    ck_assert_int_eq(x.n, 4);
    ck_assert_str_eq(x.last_str, "hello world");
    /* A clean disconnect: hiredis frees the context, our cleanup unwatches the fd. */
    redisAsyncDisconnect(ac);
    for (int i = 0; i < 1000 && !x.disconnected; i++)
        reactor_iterate(r, 1);
    ck_assert_int_eq(x.disconnected, 2);
    /* Nothing left to watch: a non-blocking iteration finds nothing to do. */
    reactor_iterate(r, 0);
    ck_assert_int_eq(redis_attach(NULL, r), -EINVAL);
    reactor_free(r);
}
END_TEST

START_TEST(test_adapter_refused)
{
    reactor *r = th_reactor(_i);
    /* A port nobody listens on: bind one, do not listen. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    getsockname(fd, (struct sockaddr *)&a, &len);
    redisAsyncContext *ac = redisAsyncConnect("127.0.0.1", ntohs(a.sin_port));
    ck_assert_ptr_nonnull(ac);
    struct raw x = {0};
    ac->data = &x;
    ck_assert_int_eq(redis_attach(ac, r), 0);
    redisAsyncCommand(ac, raw_reply, NULL, "PING");
    for (int i = 0; i < 1000 && x.n < 1; i++)
        reactor_iterate(r, 1);
    ck_assert_int_eq(x.n, 1); /* the pending command got its NULL reply: freed */
    close(fd);
    reactor_free(r);
}
END_TEST

/* ---- Replies as Deferred results ---------------------------------------------------- */

START_TEST(test_reply_types)
{
    SKIP_IF_NO_REDIS();
    reactor *r = th_reactor(_i);
    struct link_log log;
    redis_client *rc = client(r, &log, 2);
    const char *b = reactor_backend_name(r);
    struct got g;

    collect(redis_command(rc, "DEL types:%s:n types:%s:l", b, b), &g);
    ck_assert(wait_fired(r, &g, 5));
    ck_assert_int_eq(g.res.kind, DEFERRED_INT);
    ck_assert_int_eq(log.ups, 1);
    ck_assert(redis_client_connected(rc));

    collect(redis_command(rc, "SET types:%s:s %b", b, "a\0b", (size_t)3), &g);
    ck_assert(wait_fired(r, &g, 5));
    ck_assert_int_eq(g.res.kind, DEFERRED_STR);
    ck_assert_str_eq(g.res.u.s, "OK");
    deferred_result_clear(&g.res);

    collect(redis_command(rc, "INCRBY types:%s:n 42", b), &g);
    ck_assert(wait_fired(r, &g, 5));
    ck_assert_int_eq(g.res.kind, DEFERRED_INT);
    ck_assert_int_eq(g.res.u.i, 42);

    collect(redis_command(rc, "GET types:%s:missing", b), &g);
    ck_assert(wait_fired(r, &g, 5));
    ck_assert_int_eq(g.res.kind, DEFERRED_NONE);

    const char *argv[] = {"RPUSH", NULL, "x", "yy"};
    char key[64];
    snprintf(key, sizeof key, "types:%s:l", b);
    argv[1] = key;
    collect(redis_command_argv(rc, 4, argv, NULL), &g);
    ck_assert(wait_fired(r, &g, 5));
    ck_assert_int_eq(g.res.u.i, 2);

    collect(redis_command(rc, "LRANGE %s 0 -1", key), &g);
    ck_assert(wait_fired(r, &g, 5));
    ck_assert_int_eq(g.res.kind, DEFERRED_PTR);
    redis_value *v = g.res.u.p;
    ck_assert_int_eq(v->type, REDIS_VALUE_ARRAY);
    ck_assert_uint_eq(v->n, 2);
    ck_assert_str_eq(v->elements[0].str, "x");
    ck_assert_uint_eq(v->elements[1].len, 2);
    deferred_result_clear(&g.res);

    collect(redis_command(rc, "NOSUCHCOMMAND"), &g);
    ck_assert(wait_fired(r, &g, 5));
    ck_assert_int_eq(deferred_result_code(&g.res), REDIS_EREPLY);
    ck_assert_ptr_nonnull(strstr(g.res.u.failure->message, "ERR unknown command"));
    deferred_result_clear(&g.res);

    /* refused at once, without touching the connection */
    collect(redis_command(rc, "SUBSCRIBE %s", "x"), &g);
    ck_assert(g.fired);
    ck_assert_int_eq(deferred_result_code(&g.res), EINVAL);
    deferred_result_clear(&g.res);

    /* the link is still fine */
    collect(redis_command(rc, "PING"), &g);
    ck_assert(wait_fired(r, &g, 5));
    ck_assert_str_eq(g.res.u.s, "PONG");
    deferred_result_clear(&g.res);
    ck_assert_int_eq(log.downs, 0);
    redis_client_free(rc);
    reactor_free(r);
}
END_TEST

/* ---- Subscriptions -------------------------------------------------------------------- */

struct msgs {
    int n;
    char last[64];
    size_t last_len;
    char channel[64];
};

static void on_msg(redis_client *rc, const char *channel, const char *msg, size_t len, void *data)
{
    struct msgs *m = data;
    m->n++;
    m->last_len = len;
    memcpy(m->last, msg, len < sizeof m->last ? len : sizeof m->last);
    snprintf(m->channel, sizeof m->channel, "%s", channel);
}

static int wait_msgs(reactor *r, struct msgs *m, int n, double secs)
{
    for (int i = 0; i < 2000 && m->n < n && secs > 0; i++, secs -= 0.01) {
        int done = 0;
        reactor_call_later(r, 0.01, th_set_flag, &done);
        th_iterate_until(r, &done, 1);
    }
    return m->n >= n;
}

/* Publishes until the subscriber got one (the SUBSCRIBE may still be on its way). */
static void publish_until(reactor *r, redis_client *pub, const char *ch, struct msgs *m, int n)
{
    for (int tries = 0; tries < 300 && m->n < n; tries++) {
        struct got g;
        collect(redis_command(pub, "PUBLISH %s %b", ch, "p\0q", (size_t)3), &g);
        wait_fired(r, &g, 2);
        deferred_result_clear(&g.res);
        wait_msgs(r, m, n, 0.02);
    }
}

START_TEST(test_subscribe)
{
    SKIP_IF_NO_REDIS();
    reactor *r = th_reactor(_i);
    struct link_log log;
    redis_client *rc = client(r, &log, 2);
    char ch[64];
    snprintf(ch, sizeof ch, "news:%s", reactor_backend_name(r));
    struct msgs m = {0};
    ck_assert_int_eq(redis_subscribe(rc, ch, on_msg, &m), 0);
    ck_assert_int_eq(redis_subscribe(rc, ch, on_msg, &m), -EEXIST);
    ck_assert(wait_up(r, &log, 1, 5));
    /* The same client publishes: commands and messages share one client. */
    publish_until(r, rc, ch, &m, 1);
    ck_assert_int_ge(m.n, 1);
    ck_assert_uint_eq(m.last_len, 3);
    ck_assert_int_eq(memcmp(m.last, "p\0q", 3), 0);
    ck_assert_str_eq(m.channel, ch);
    redis_client_free(rc);
    reactor_free(r);
}
END_TEST

/* ---- The link dropping ----------------------------------------------------------------- */

START_TEST(test_killed_by_server_fails_in_flight_and_recovers)
{
    SKIP_IF_NO_REDIS();
    reactor *r = th_reactor(_i);
    struct link_log log, klog;
    redis_client *rc = client(r, &log, 5);
    char ch[64], key[64];
    snprintf(ch, sizeof ch, "kill:%s", reactor_backend_name(r));
    snprintf(key, sizeof key, "kill:%s:list", reactor_backend_name(r));
    struct msgs m = {0};
    ck_assert_int_eq(redis_subscribe(rc, ch, on_msg, &m), 0);
    ck_assert(wait_up(r, &log, 1, 5));
    struct got blocked;
    collect(redis_command(rc, "BLPOP %s 0", key), &blocked); /* never answered */
    /* Another client kills every other connection. */
    redis_client *killer = client(r, &klog, 5);
    struct got g;
    collect(redis_command(killer, "CLIENT KILL TYPE pubsub"), &g);
    ck_assert(wait_fired(r, &g, 5));
    deferred_result_clear(&g.res);
    collect(redis_command(killer, "CLIENT KILL TYPE normal SKIPME yes"), &g);
    ck_assert(wait_fired(r, &g, 5));
    deferred_result_clear(&g.res);
    ck_assert(wait_fired(r, &blocked, 5));
    ck_assert_int_eq(deferred_result_code(&blocked.res), ECONNRESET);
    ck_assert_ptr_nonnull(strstr(blocked.res.u.failure->message, "Redis connection lost"));
    deferred_result_clear(&blocked.res);
    ck_assert_int_ge(log.downs, 1);
    /* Back up by itself, subscribed again. */
    ck_assert(wait_up(r, &log, 2, 5));
    publish_until(r, killer, ch, &m, 1);
    ck_assert_int_ge(m.n, 1);
    redis_client_free(killer);
    redis_client_free(rc);
    reactor_free(r);
}
END_TEST

START_TEST(test_command_timeout)
{
    SKIP_IF_NO_REDIS();
    reactor *r = th_reactor(_i);
    struct link_log log;
    redis_client *rc = client(r, &log, 0.3);
    ck_assert(wait_up(r, &log, 1, 5));
    struct got g;
    collect(redis_command(rc, "BLPOP timeout:%s 0", reactor_backend_name(r)), &g);
    ck_assert(wait_fired(r, &g, 5));
    ck_assert_int_eq(deferred_result_code(&g.res), ECONNRESET);
    ck_assert_ptr_nonnull(strstr(g.res.u.failure->message, "did not answer"));
    deferred_result_clear(&g.res);
    ck_assert(wait_up(r, &log, 2, 5));
    redis_client_free(rc);
    reactor_free(r);
}
END_TEST

/* SIGSTOP: TCP stays up, nothing answers: the watchdog notices; SIGCONT: back. */
START_TEST(test_sigstop_sigcont)
{
    SKIP_IF_NO_REDIS();
    reactor *r = th_reactor(_i);
    struct link_log log;
    redis_client *rc = client(r, &log, 0.3);
    ck_assert(wait_up(r, &log, 1, 5));
    trs_signal(&srv, SIGSTOP);
    struct got g;
    collect(redis_command(rc, "INCR stopped:%s", reactor_backend_name(r)), &g);
    ck_assert(wait_fired(r, &g, 5));
    ck_assert_int_eq(deferred_result_code(&g.res), ECONNRESET);
    deferred_result_clear(&g.res);
    /* While it is stopped: attempts time out, commands fail at once or after the
     * timeout, and nothing piles up. */
    for (int i = 0; i < 20; i++) {
        collect(redis_command(rc, "PING"), &g);
        if (g.fired)
            ck_assert_int_ne(deferred_result_code(&g.res), 0);
        else
            ck_assert(wait_fired(r, &g, 5));
        deferred_result_clear(&g.res);
    }
    trs_signal(&srv, SIGCONT);
    ck_assert(wait_up(r, &log, 2, 10));
    collect(redis_command(rc, "PING"), &g);
    ck_assert(wait_fired(r, &g, 5));
    ck_assert_str_eq(g.res.u.s, "PONG");
    deferred_result_clear(&g.res);
    redis_client_free(rc);
    reactor_free(r);
}
END_TEST

/* Redis killed and restarted on its port: the client comes back within its back-off
 * (max_delay 0.2 s here) and subscribes again. One backend: it restarts the server. */
START_TEST(test_restart_same_port)
{
    SKIP_IF_NO_REDIS();
    reactor *r = th_reactor(0);
    struct link_log log;
    redis_client *rc = client(r, &log, 1);
    struct msgs m = {0};
    ck_assert_int_eq(redis_subscribe(rc, "restart", on_msg, &m), 0);
    ck_assert(wait_up(r, &log, 1, 5));
    trs_kill(&srv);
    struct got g;
    for (int i = 0; i < 1000 && log.downs < 2; i++)
        reactor_iterate(r, 0.05);
    ck_assert_int_ge(log.downs, 2); /* lost, then at least one refused attempt */
    collect(redis_command(rc, "PING"), &g);
    ck_assert(g.fired);
    ck_assert_int_eq(deferred_result_code(&g.res), ENOTCONN);
    deferred_result_clear(&g.res);
    ck_assert_int_eq(trs_start(&srv, srv.port), 0);
    double t0 = reactor_seconds(r);
    ck_assert(wait_up(r, &log, 2, 5));
    /* within the back-off: max_delay 0.2 s with jitter, plus connecting */
    ck_assert(reactor_seconds(r) - t0 < 2.0);
    redis_client *pub = client(r, &(struct link_log){0}, 1);
    publish_until(r, pub, "restart", &m, 1);
    ck_assert_int_ge(m.n, 1);
    redis_client_free(pub);
    redis_client_free(rc);
    reactor_free(r);
}
END_TEST

/* ---- Back-off on the fake clock ------------------------------------------------------- */

START_TEST(test_backoff_schedule)
{
    reactor *r = th_reactor(_i);
    ck_assert_int_eq(reactor_use_fake_clock(r, 0), 0);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0); /* bound, not listening */
    getsockname(fd, (struct sockaddr *)&a, &len);
    redis_config cfg = {.port = ntohs(a.sin_port), .initial_delay = 1, .factor = 2,
                        .max_delay = 3, .jitter = -1};
    redis_client *rc = redis_client_new(r, &cfg);
    struct link_log log = {0};
    redis_client_on_link(rc, on_link, &log);
    /* attempts at 0 (made by redis_client_new), 1, 3, 6, 9 (waits 1, 2, 3, 3) */
    for (int i = 0; i < 2000 && log.downs < 1; i++)
        reactor_iterate(r, 0);
    ck_assert_int_eq(log.downs, 1);
    const double at[] = {0, 1, 3, 6, 9};
    for (int k = 1; k < 5; k++) {
        reactor_advance(r, at[k] - at[k - 1] - 0.01);
        th_iterate_n(r, 20);
        ck_assert_int_eq(log.downs, k); /* the attempt k is not made yet */
        reactor_advance(r, 0.01);
        for (int i = 0; i < 2000 && log.downs < k + 1; i++)
            reactor_iterate(r, 0);
        ck_assert_int_eq(log.downs, k + 1);
        ck_assert_ptr_nonnull(strstr(log.last_why, "refused"));
    }
    ck_assert_uint_eq(redis_client_drops(rc), 5);
    redis_client_stop(rc);
    reactor_advance(r, 100);
    th_iterate_n(r, 20);
    ck_assert_int_eq(log.downs, 5); /* stopped: no more attempts */
    struct got g;
    collect(redis_command(rc, "PING"), &g);
    ck_assert_int_eq(deferred_result_code(&g.res), ENOTCONN);
    deferred_result_clear(&g.res);
    redis_client_free(rc);
    close(fd);
    reactor_free(r);
}
END_TEST

/* ---- A server that answers garbage ---------------------------------------------------- */

struct fake {
    int lfd, cfd;
    int accepted;
};

static void fake_io(reactor *r, int fd, unsigned ev, void *data)
{
    struct fake *f = data;
    if (fd == f->lfd) {
        int c = accept(fd, NULL, NULL);
        if (c < 0)
            return;
        static const char junk[] = "?this is not RESP\r\n";
        ck_assert_int_eq(send(c, junk, sizeof junk - 1, MSG_NOSIGNAL), (ssize_t)(sizeof junk - 1));
        f->accepted++;
        if (f->cfd >= 0)
            close(f->cfd);
        f->cfd = c;
    }
}

START_TEST(test_garbage_server)
{
    reactor *r = th_reactor(_i);
    struct fake f = {.cfd = -1};
    f.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    ck_assert_int_eq(bind(f.lfd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(f.lfd, 8), 0);
    getsockname(f.lfd, (struct sockaddr *)&a, &len);
    ck_assert_int_eq(reactor_watch(r, f.lfd, REACTOR_READABLE, fake_io, &f), 0);
    redis_config cfg = {.port = ntohs(a.sin_port), .initial_delay = 0.05, .max_delay = 0.1};
    redis_client *rc = redis_client_new(r, &cfg);
    struct link_log log = {0};
    redis_client_on_link(rc, on_link, &log);
    struct got g;
    collect(redis_command(rc, "GET x"), &g); /* queued while connecting */
    ck_assert(wait_fired(r, &g, 5));
    ck_assert_int_eq(deferred_result_code(&g.res), ECONNRESET);
    ck_assert_ptr_nonnull(strstr(g.res.u.failure->message, "Protocol error"));
    deferred_result_clear(&g.res);
    ck_assert_int_ge(log.downs, 1);
    ck_assert_ptr_nonnull(strstr(log.last_why, "Protocol error"));
    ck_assert_int_eq(log.ups, 0);
    /* it keeps trying, with its back-off, and never comes up */
    for (int i = 0; i < 1000 && f.accepted < 3; i++)
        reactor_iterate(r, 0.05);
    ck_assert_int_ge(f.accepted, 3);
    ck_assert_int_eq(log.ups, 0);
    redis_client_free(rc);
    reactor_unwatch(r, f.lfd);
    close(f.lfd);
    if (f.cfd >= 0)
        close(f.cfd);
    reactor_free(r);
}
END_TEST

/* ---- Ownership ------------------------------------------------------------------------ */

struct freer {
    redis_client *rc;
    int n;
};

static deferred_result free_client(deferred_result res, void *arg)
{
    struct freer *fr = arg;
    fr->n++;
    redis_client_free(fr->rc); /* from inside the reply callback */
    fr->rc = NULL;
    return res;
}

static deferred_result count_only(deferred_result res, void *arg)
{
    (*(int *)arg)++;
    return res;
}

START_TEST(test_free_inside_callback)
{
    SKIP_IF_NO_REDIS();
    reactor *r = th_reactor(_i);
    struct link_log log;
    struct freer fr = {client(r, &log, 2), 0};
    deferred *d1 = redis_command(fr.rc, "PING");
    deferred *d2 = redis_command(fr.rc, "BLPOP never:%s 0", reactor_backend_name(r));
    deferred_add_both(d1, free_client, &fr);
    int n2 = 0;
    deferred_add_both(d2, count_only, &n2);
    for (int i = 0; i < 1000 && n2 == 0; i++)
        reactor_iterate(r, 0.05);
    ck_assert_int_eq(fr.n, 1);
    ck_assert_int_eq(n2, 1);
    const deferred_result *res = deferred_peek_result(d2);
    ck_assert_ptr_nonnull(res);
    ck_assert_int_eq(deferred_result_code(res), ECANCELED);
    deferred_result out;
    deferred_take_result(d2, &out);
    deferred_result_clear(&out);
    deferred_unref(d1);
    deferred_unref(d2);
    th_iterate_n(r, 5); /* the deferred free runs */
    reactor_free(r);
}
END_TEST

START_TEST(test_max_pending)
{
    SKIP_IF_NO_REDIS();
    reactor *r = th_reactor(_i);
    redis_config cfg = {.port = srv.port, .max_pending = 3};
    redis_client *rc = redis_client_new(r, &cfg);
    struct got g[4];
    for (int i = 0; i < 4; i++)
        collect(redis_command(rc, "PING"), &g[i]);
    /* 3 slots: the hello PING holds one; two queued; the fourth refused */
    ck_assert(g[2].fired);
    ck_assert_int_eq(deferred_result_code(&g[2].res), ENOBUFS);
    ck_assert(wait_fired(r, &g[1], 5));
    ck_assert_str_eq(g[0].res.u.s, "PONG");
    ck_assert_str_eq(g[1].res.u.s, "PONG");
    for (int i = 0; i < 4; i++)
        deferred_result_clear(&g[i].res);
    redis_client_free(rc);
    reactor_free(r);
}
END_TEST

START_TEST(test_parse_url)
{
    redis_config c = {0};
    char h[64];
    ck_assert_int_eq(redis_parse_url("redis://10.0.0.1:7000/3", &c, h, sizeof h), 0);
    ck_assert_str_eq(c.host, "10.0.0.1");
    ck_assert_int_eq(c.port, 7000);
    ck_assert_int_eq(c.db, 3);
    ck_assert_int_eq(redis_parse_url("redis://localhost", &c, h, sizeof h), 0);
    ck_assert_str_eq(c.host, "localhost");
    ck_assert_int_eq(c.port, 6379);
    ck_assert_int_eq(c.db, 0);
    ck_assert_int_eq(redis_parse_url("redis://[::1]:6380/", &c, h, sizeof h), 0);
    ck_assert_str_eq(c.host, "::1");
    ck_assert_int_eq(c.port, 6380);
    const char *bad[] = {"http://x", "redis://", "redis://h:0", "redis://h:99999", "redis://h:1x",
                         "redis://h/abc", "redis://h/1/2", "redis://[::1", NULL};
    for (int i = 0; bad[i]; i++)
        ck_assert_msg(redis_parse_url(bad[i], &c, h, sizeof h) == -EINVAL, "%s", bad[i]);
    ck_assert_int_eq(redis_parse_url("redis://averyveryverylonghostname", &c, h, 8), -EINVAL);
}
END_TEST

extern Suite *suite_redis_client(void);
Suite *suite_redis_client(void)
{
    Suite *s = suite_create("redis_client");
    TCase *tc = tcase_create("redis");
    tcase_set_timeout(tc, 60);
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_add_checked_fixture(tc, NULL, test_teardown);
    int n = th_backend_count();
    tcase_add_loop_test(tc, test_adapter_set_get, 0, n);
    tcase_add_loop_test(tc, test_adapter_refused, 0, n);
    tcase_add_loop_test(tc, test_reply_types, 0, n);
    tcase_add_loop_test(tc, test_subscribe, 0, n);
    tcase_add_loop_test(tc, test_killed_by_server_fails_in_flight_and_recovers, 0, n);
    tcase_add_loop_test(tc, test_command_timeout, 0, n);
    tcase_add_loop_test(tc, test_sigstop_sigcont, 0, n);
    tcase_add_test(tc, test_restart_same_port);
    tcase_add_loop_test(tc, test_backoff_schedule, 0, n);
    tcase_add_loop_test(tc, test_garbage_server, 0, n);
    tcase_add_loop_test(tc, test_free_inside_callback, 0, n);
    tcase_add_loop_test(tc, test_max_pending, 0, n);
    tcase_add_test(tc, test_parse_url);
    suite_add_tcase(s, tc);
    return s;
}
