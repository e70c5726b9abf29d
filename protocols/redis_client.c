/* The Redis client (redis.h): hiredis contexts on the reactor, replies as Deferreds,
 * subscriptions that survive reconnects.
 *
 * States: CONNECTING (contexts made, waiting for TCP and the hello PINGs), UP, WAITING
 * (a retry timer runs), STOPPED. One timer at a time: the connect deadline, the
 * watchdog (while up) or the retry.
 *
 * hiredis calls back from inside redisAsyncHandleRead/Write, redisAsyncFree and
 * redisAsyncDisconnect, and runs every pending reply callback with a NULL reply when a
 * context goes. So: every field that says "this context is ours" is cleared BEFORE we
 * ask hiredis to free it (its callbacks then see a context that is no longer ours), and
 * redis_client_free() called from any callback only marks the client and finishes
 * from a timer, outside hiredis. */
#include <twistc/redis.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/async.h>

enum { ST_CONNECTING, ST_UP, ST_WAITING, ST_STOPPED };

/* A command in flight: on the client's list, oldest first (replies come in order). */
struct pend {
    struct pend *prev, *next;
    redis_client *rc;
    deferred *d;  /* NULL for our own PINGs */
    double sent;
    int hello;    /* the PING that brings the link up */
};

struct sub {
    struct sub *next;
    redis_client *rc;
    redis_message_fn fn;
    void *data;
    char channel[];
};

struct redis_client {
    reactor *r;
    redis_config cfg;
    char *host;
    int state;
    redisAsyncContext *cmd, *subc; /* ours while not NULL */
    int hello_wait;                /* hello PINGs not answered yet */
    struct pend *head, *tail;
    size_t npend;
    struct sub *subs;
    reactor_timer *timer;
    double delay;    /* back-off before jitter */
    int retries;
    unsigned long long rng;
    unsigned long drops, links;
    redis_link_fn link_fn;
    void *link_data;
    char why[160];   /* why the last link went down */
    int in_cb;       /* depth of our callbacks running user code */
    int free_asked;  /* redis_client_free() called from a callback */
};

static void link_down(redis_client *rc, const char *why);
static void start_connect(redis_client *rc);
static redisAsyncContext *new_context(redis_client *rc, int ping, char *err, size_t errlen);

/* ---- Replies -> results ------------------------------------------------------------ */

static int copy_value(redis_value *v, const redisReply *rep)
{
    memset(v, 0, sizeof *v);
    switch (rep->type) {
    case REDIS_REPLY_INTEGER:
        v->type = REDIS_VALUE_INT;
        v->integer = rep->integer;
        return 0;
    case REDIS_REPLY_NIL:
        v->type = REDIS_VALUE_NIL;
        return 0;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        v->type = rep->type == REDIS_REPLY_ERROR ? REDIS_VALUE_ERROR : REDIS_VALUE_STR;
        v->str = malloc(rep->len + 1);
        if (!v->str)
            return -ENOMEM;
        memcpy(v->str, rep->str, rep->len);
        v->str[rep->len] = '\0';
        v->len = rep->len;
        return 0;
    case REDIS_REPLY_ARRAY:
        v->type = REDIS_VALUE_ARRAY;
        if (rep->elements == 0)
            return 0;
        v->elements = calloc(rep->elements, sizeof *v->elements);
        if (!v->elements)
            return -ENOMEM;
        v->n = rep->elements;
        for (size_t i = 0; i < rep->elements; i++)
            if (copy_value(&v->elements[i], rep->element[i]) < 0)
                return -ENOMEM;
        return 0;
    default:
        return -EPROTO;
    }
}

static void value_clear(redis_value *v)
{
    for (size_t i = 0; i < v->n; i++)
        value_clear(&v->elements[i]);
    free(v->elements);
    free(v->str);
}

void redis_value_free(void *p)
{
    if (p) {
        value_clear(p);
        free(p);
    }
}

static deferred_result reply_result(const redisReply *rep)
{
    switch (rep->type) {
    case REDIS_REPLY_INTEGER:
        return deferred_int(rep->integer);
    case REDIS_REPLY_NIL:
        return deferred_none();
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS: {
        char *s = malloc(rep->len + 1);
        if (!s)
            return deferred_error(ENOMEM, "out of memory copying a Redis reply");
        memcpy(s, rep->str, rep->len);
        s[rep->len] = '\0';
        return deferred_str(s, free);
    }
    case REDIS_REPLY_ERROR:
        return deferred_error(REDIS_EREPLY, "%.*s", (int)(rep->len > 1000 ? 1000 : rep->len),
                              rep->str);
    case REDIS_REPLY_ARRAY: {
        redis_value *v = malloc(sizeof *v);
        if (!v)
            return deferred_error(ENOMEM, "out of memory copying a Redis reply");
        if (copy_value(v, rep) < 0) {
            redis_value_free(v);
            return deferred_error(ENOMEM, "out of memory copying a Redis reply");
        }
        return deferred_ptr(v, redis_value_free);
    }
    default:
        return deferred_error(EPROTO, "unexpected Redis reply type %d", rep->type);
    }
}

/* ---- Commands in flight ------------------------------------------------------------ */

static void pend_unlink(redis_client *rc, struct pend *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        rc->head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        rc->tail = p->prev;
    rc->npend--;
}

static struct pend *pend_new(redis_client *rc, deferred *d)
{
    struct pend *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->rc = rc;
    p->d = d;
    p->sent = reactor_seconds(rc->r);
    p->prev = rc->tail;
    if (rc->tail)
        rc->tail->next = p;
    else
        rc->head = p;
    rc->tail = p;
    rc->npend++;
    return p;
}

static void finish_free(redis_client *rc);

static void user_enter(redis_client *rc) { rc->in_cb++; }
static void user_leave(redis_client *rc) { rc->in_cb--; }

static void link_up(redis_client *rc);

/* Every reply (and every NULL reply of a context going away) of a command. */
static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct pend *p = privdata;
    redis_client *rc = p->rc;
    pend_unlink(rc, p);
    redisReply *rep = reply;
    if (p->hello && rep && (ac == rc->cmd || ac == rc->subc) && rc->state == ST_CONNECTING) {
        if (--rc->hello_wait == 0)
            link_up(rc);
    }
    if (p->d) {
        deferred_result res;
        if (rep) {
            res = reply_result(rep);
        } else {
            const char *why = ac->err ? ac->errstr : rc->why[0] ? rc->why : "connection closed";
            res = rc->state == ST_STOPPED
                      ? deferred_error(ECANCELED, "Redis client stopped")
                      : deferred_error(ECONNRESET, "Redis connection lost: %s", why);
        }
        user_enter(rc);
        deferred_callback(p->d, res);
        deferred_unref(p->d);
        user_leave(rc);
    }
    free(p);
}

static deferred *fail_now(int code, const char *why)
{
    return deferred_fail(deferred_failure_new(code, "%s", why));
}

static int is_subscribe_cmd(const char *cmd, size_t len)
{
    /* cmd is RESP: "*N\r\n$L\r\nNAME\r\n..."; find NAME */
    const char *p = memchr(cmd, '\n', len);
    if (!p || (size_t)(p - cmd) + 1 >= len)
        return 0;
    p = memchr(p + 1, '\n', len - (size_t)(p + 1 - cmd));
    if (!p)
        return 0;
    p++;
    size_t rest = len - (size_t)(p - cmd);
    static const char *const names[] = {"subscribe", "psubscribe", "ssubscribe", "unsubscribe",
                                        "punsubscribe", "sunsubscribe", "monitor"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        size_t n = strlen(names[i]);
        if (rest > n + 1 && strncasecmp(p, names[i], n) == 0 && p[n] == '\r')
            return 1;
    }
    return 0;
}

/* Sends an already formatted command on the command connection. */
static deferred *send_formatted(redis_client *rc, char *cmd, size_t len)
{
    if (is_subscribe_cmd(cmd, len))
        return fail_now(EINVAL, "use redis_subscribe for (un)subscribe and monitor commands");
    if (rc->state == ST_STOPPED)
        return fail_now(ENOTCONN, "Redis client stopped");
    if (rc->state == ST_WAITING || !rc->cmd) {
        char msg[200];
        snprintf(msg, sizeof msg, "not connected to Redis (%s)", rc->why[0] ? rc->why : "reconnecting");
        return fail_now(ENOTCONN, msg);
    }
    if (rc->npend >= rc->cfg.max_pending)
        return fail_now(ENOBUFS, "too many Redis commands in flight");
    deferred *d = deferred_new();
    if (!d)
        return NULL;
    struct pend *p = pend_new(rc, d);
    if (!p) {
        deferred_unref(d);
        errno = ENOMEM;
        return NULL;
    }
    if (redisAsyncFormattedCommand(rc->cmd, on_reply, p, cmd, len) != REDIS_OK) {
        pend_unlink(rc, p);
        free(p);
        deferred_unref(d);
        return fail_now(ENOTCONN, "Redis connection is closing");
    }
    return deferred_ref(d); /* one reference for the caller, one held by the pend */
}

deferred *redis_vcommand(redis_client *rc, const char *fmt, va_list ap)
{
    if (!rc || !fmt) {
        errno = EINVAL;
        return NULL;
    }
    char *cmd = NULL;
    int len = redisvFormatCommand(&cmd, fmt, ap);
    if (len < 0) {
        /* -1: bad format; -2 out of memory */
        if (len == -1)
            return fail_now(EINVAL, "bad Redis command format");
        errno = ENOMEM;
        return NULL;
    }
    deferred *d = send_formatted(rc, cmd, (size_t)len);
    free(cmd);
    return d;
}

deferred *redis_command(redis_client *rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    deferred *d = redis_vcommand(rc, fmt, ap);
    va_end(ap);
    return d;
}

deferred *redis_command_argv(redis_client *rc, int argc, const char *const *argv,
                             const size_t *lens)
{
    if (!rc || argc < 1 || !argv) {
        errno = EINVAL;
        return NULL;
    }
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, (const char **)argv, lens);
    if (len < 0) {
        errno = ENOMEM;
        return NULL;
    }
    deferred *d = send_formatted(rc, cmd, (size_t)len);
    free(cmd);
    return d;
}

/* ---- Subscriptions ----------------------------------------------------------------- */

static void on_sub_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct sub *s = privdata;
    redis_client *rc = s->rc;
    redisReply *rep = reply;
    if (!rep || ac != rc->subc || rc->free_asked || rep->type != REDIS_REPLY_ARRAY ||
        rep->elements != 3)
        return; /* the context going away */
    const redisReply *kind = rep->element[0], *msg = rep->element[2];
    if (kind->type != REDIS_REPLY_STRING)
        return;
    if (strcasecmp(kind->str, "subscribe") == 0) {
        /* While connecting, the confirmations are the subscriber connection's hello:
         * once up, every message published after is ours. */
        if (rc->state == ST_CONNECTING && --rc->hello_wait == 0)
            link_up(rc);
        return;
    }
    if (strcasecmp(kind->str, "message") != 0 || msg->type != REDIS_REPLY_STRING)
        return;
    user_enter(rc);
    s->fn(rc, s->channel, msg->str, msg->len, s->data);
    user_leave(rc);
}

static int send_subscribe(redis_client *rc, struct sub *s)
{
    return redisAsyncCommand(rc->subc, on_sub_reply, s, "SUBSCRIBE %s", s->channel) == REDIS_OK
               ? 0
               : -ENOTCONN;
}

int redis_subscribe(redis_client *rc, const char *channel, redis_message_fn fn, void *data)
{
    if (!rc || !channel || !*channel || !fn || rc->state == ST_STOPPED)
        return -EINVAL;
    for (struct sub *s = rc->subs; s; s = s->next)
        if (strcmp(s->channel, channel) == 0)
            return -EEXIST;
    size_t n = strlen(channel);
    struct sub *s = malloc(sizeof *s + n + 1);
    if (!s)
        return -ENOMEM;
    memcpy(s->channel, channel, n + 1);
    s->rc = rc;
    s->fn = fn;
    s->data = data;
    int first = rc->subs == NULL;
    s->next = rc->subs;
    rc->subs = s;
    if (first && (rc->state == ST_CONNECTING || rc->state == ST_UP)) {
        /* The subscriber connection joins the link now (its hello PING is watched like
         * any command); in WAITING the next connect makes it. */
        char err[160];
        rc->subc = new_context(rc, rc->state == ST_UP, err, sizeof err);
        if (!rc->subc) {
            link_down(rc, err);
            return 0;
        }
    }
    /* while connecting, its confirmation is awaited like a hello */
    if (rc->subc && send_subscribe(rc, s) == 0 && rc->state == ST_CONNECTING)
        rc->hello_wait++;
    return 0;
}

/* ---- The link ---------------------------------------------------------------------- */

static void notify_link(redis_client *rc, int up, const char *why)
{
    if (!rc->link_fn || rc->free_asked)
        return;
    user_enter(rc);
    rc->link_fn(rc, up, why, rc->link_data);
    user_leave(rc);
}

static void cancel_timer(redis_client *rc)
{
    if (rc->timer) {
        reactor_timer_cancel(rc->timer);
        rc->timer = NULL;
    }
}

/* Frees our contexts (their pending commands fail through on_reply). */
static void drop_contexts(redis_client *rc)
{
    redisAsyncContext *a = rc->cmd, *b = rc->subc;
    rc->cmd = rc->subc = NULL; /* not ours any more: their callbacks see that */
    if (a)
        redisAsyncFree(a);
    if (b)
        redisAsyncFree(b);
}

static double uniform(redis_client *rc)
{
    unsigned long long x = rc->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rc->rng = x;
    return (double)((x * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

/* The next wait, with reconnecting.h's rules (normal jitter by Irwin-Hall). */
static double next_wait(redis_client *rc)
{
    rc->retries++;
    if (rc->retries == 1)
        rc->delay = rc->cfg.initial_delay;
    else if ((rc->delay *= rc->cfg.factor) > rc->cfg.max_delay)
        rc->delay = rc->cfg.max_delay;
    double sigma = rc->delay * (rc->cfg.jitter > 0 ? rc->cfg.jitter : 0), z = -6.0;
    for (int i = 0; i < 12; i++)
        z += uniform(rc);
    double w = rc->delay + sigma * z;
    return w < 0 ? 0 : w;
}

static void retry_now(reactor *r, void *data)
{
    redis_client *rc = data;
    rc->timer = NULL;
    start_connect(rc);
}

/* The link is gone (or never came): fail what is in flight, wait, connect again.
 * why NULL: rc->why is already set. */
static void link_down(redis_client *rc, const char *why)
{
    if (why)
        snprintf(rc->why, sizeof rc->why, "%s", why);
    int was = rc->state;
    cancel_timer(rc);
    if (rc->state != ST_STOPPED)
        rc->state = ST_WAITING; /* commands made by callbacks from here on fail at once */
    rc->hello_wait = 0;
    drop_contexts(rc);
    if (rc->state == ST_STOPPED)
        return;
    rc->drops++;
    if (rc->state == ST_WAITING && !rc->timer) {
        double w = was == ST_UP ? 0 : next_wait(rc); /* a lost link: try again at once */
        rc->timer = reactor_call_later(rc->r, w, retry_now, rc);
    }
    notify_link(rc, 0, rc->why);
}

static void watchdog(reactor *r, void *data);

static void link_up(redis_client *rc)
{
    cancel_timer(rc);
    rc->state = ST_UP;
    rc->retries = 0;
    rc->delay = rc->cfg.initial_delay;
    rc->links++;
    rc->why[0] = '\0';
    rc->timer = reactor_call_later(rc->r, rc->cfg.ping_interval, watchdog, rc);
    notify_link(rc, 1, NULL);
}

static void send_ping(redis_client *rc, redisAsyncContext *ac, int hello)
{
    struct pend *p = pend_new(rc, NULL);
    if (!p)
        return;
    p->hello = hello;
    if (redisAsyncCommand(ac, on_reply, p, "PING") != REDIS_OK) {
        pend_unlink(rc, p);
        free(p);
    }
}

/* While up: a reply overdue drops the link; an idle link gets a PING. The subscriber
 * connection cannot be PINGed through hiredis 0.14 (its answer has no callback in
 * subscribe mode), so the command connection speaks for the server. */
static void watchdog(reactor *r, void *data)
{
    redis_client *rc = data;
    rc->timer = NULL;
    double now = reactor_seconds(r);
    if (rc->head && now - rc->head->sent >= rc->cfg.command_timeout) {
        char why[120];
        snprintf(why, sizeof why, "Redis did not answer a command within %g s",
                 rc->cfg.command_timeout);
        link_down(rc, why);
        return;
    }
    if (!rc->head && rc->cmd)
        send_ping(rc, rc->cmd, 0);
    double next = rc->cfg.ping_interval;
    if (rc->head) {
        double due = rc->head->sent + rc->cfg.command_timeout - now;
        if (due < next)
            next = due;
    }
    rc->timer = reactor_call_later(r, next > 0 ? next : 0, watchdog, rc);
}

static void connect_deadline(reactor *r, void *data)
{
    redis_client *rc = data;
    rc->timer = NULL;
    char why[120];
    snprintf(why, sizeof why, "Redis did not answer within %g s of connecting",
             rc->cfg.connect_timeout);
    link_down(rc, why);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    redis_client *rc = ac->data;
    if (status == REDIS_OK || (ac != rc->cmd && ac != rc->subc))
        return; /* connected: the hello PING's answer brings the link up */
    /* hiredis frees this context when we return: it is not ours any more */
    if (ac == rc->cmd)
        rc->cmd = NULL;
    else
        rc->subc = NULL;
    link_down(rc, ac->errstr[0] ? ac->errstr : "connect failed");
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    redis_client *rc = ac->data;
    if (ac != rc->cmd && ac != rc->subc)
        return; /* one we dropped ourselves */
    if (ac == rc->cmd)
        rc->cmd = NULL;
    else
        rc->subc = NULL;
    link_down(rc, status == REDIS_OK ? "Redis closed the connection"
                  : ac->errstr[0]    ? ac->errstr
                                     : "connection lost");
}

/* A context connecting to the server. ping: its hello is a PING (the command
 * connection; the subscriber connection's are the subscription confirmations). */
static redisAsyncContext *new_context(redis_client *rc, int ping, char *err, size_t errlen)
{
    redisAsyncContext *ac = redisAsyncConnect(rc->host, rc->cfg.port);
    if (!ac) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (ac->err) {
        snprintf(err, errlen, "%s", ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = rc;
    int e = redis_attach(ac, rc->r);
    if (e < 0) {
        snprintf(err, errlen, "cannot watch the Redis socket: %s", twistc_strerror(e));
        redisAsyncFree(ac);
        return NULL;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (rc->cfg.db > 0)
        redisAsyncCommand(ac, NULL, NULL, "SELECT %d", rc->cfg.db);
    if (ping) {
        send_ping(rc, ac, 1);
        rc->hello_wait++;
    }
    return ac;
}

static void start_connect(redis_client *rc)
{
    char err[160];
    rc->state = ST_CONNECTING;
    rc->hello_wait = 0;
    rc->cmd = new_context(rc, 1, err, sizeof err);
    if (rc->cmd && rc->subs) {
        rc->subc = new_context(rc, 0, err, sizeof err);
        if (rc->subc)
            for (struct sub *s = rc->subs; s; s = s->next) {
                if (send_subscribe(rc, s) == 0)
                    rc->hello_wait++;
            }
    }
    if (!rc->cmd || (rc->subs && !rc->subc)) {
        link_down(rc, err);
        return;
    }
    rc->timer = reactor_call_later(rc->r, rc->cfg.connect_timeout, connect_deadline, rc);
}

/* ---- Life cycle ------------------------------------------------------------------- */

int redis_parse_url(const char *url, redis_config *cfg, char *hostbuf, size_t hostbuf_len)
{
    static const char scheme[] = "redis://";
    if (!url || !cfg || !hostbuf || strncmp(url, scheme, sizeof scheme - 1) != 0)
        return -EINVAL;
    const char *h = url + sizeof scheme - 1, *e = h;
    if (*h == '[') { /* [v6 address] */
        e = strchr(h, ']');
        if (!e)
            return -EINVAL;
        h++;
    } else {
        while (*e && *e != ':' && *e != '/')
            e++;
    }
    size_t hl = (size_t)(e - h);
    if (hl == 0 || hl >= hostbuf_len)
        return -EINVAL;
    memcpy(hostbuf, h, hl);
    hostbuf[hl] = '\0';
    if (*e == ']')
        e++;
    long port = 6379, db = 0;
    if (*e == ':') {
        char *end;
        port = strtol(e + 1, &end, 10);
        if (end == e + 1 || port < 1 || port > 65535)
            return -EINVAL;
        e = end;
    }
    if (*e == '/' && e[1]) {
        char *end;
        db = strtol(e + 1, &end, 10);
        if (end == e + 1 || *end || db < 0 || db > 1000000)
            return -EINVAL;
        e = end;
    } else if (*e == '/') {
        e++;
    }
    if (*e)
        return -EINVAL;
    cfg->host = hostbuf;
    cfg->port = (int)port;
    cfg->db = (int)db;
    return 0;
}

redis_client *redis_client_new(reactor *r, const redis_config *cfg)
{
    redis_config c = {0};
    if (cfg)
        c = *cfg;
    if (!r || c.port < 0 || c.port > 65535 || c.db < 0 || c.connect_timeout < 0 ||
        c.command_timeout < 0 || c.ping_interval < 0 || c.initial_delay < 0 || c.factor < 0 ||
        c.max_delay < 0) {
        errno = EINVAL;
        return NULL;
    }
    if (!c.host)
        c.host = "127.0.0.1";
    if (!c.port)
        c.port = 6379;
    if (!c.connect_timeout)
        c.connect_timeout = 5;
    if (!c.command_timeout)
        c.command_timeout = 5;
    if (!c.ping_interval)
        c.ping_interval = 1;
    if (!c.initial_delay)
        c.initial_delay = 0.5;
    if (!c.factor)
        c.factor = 2;
    if (!c.max_delay)
        c.max_delay = 10;
    if (!c.jitter)
        c.jitter = 0.11962656472;
    if (!c.max_pending)
        c.max_pending = 10000;
    redis_client *rc = calloc(1, sizeof *rc);
    if (!rc)
        return NULL;
    rc->host = strdup(c.host);
    if (!rc->host) {
        free(rc);
        errno = ENOMEM;
        return NULL;
    }
    c.host = rc->host;
    rc->cfg = c;
    rc->r = r;
    rc->delay = c.initial_delay;
    rc->rng = 0x9e3779b97f4a7c15ULL ^ (unsigned long long)(size_t)rc ^
              (unsigned long long)(reactor_seconds(r) * 1e9);
    if (!rc->rng)
        rc->rng = 1;
    start_connect(rc);
    return rc;
}

void redis_client_on_link(redis_client *rc, redis_link_fn fn, void *data)
{
    if (rc) {
        rc->link_fn = fn;
        rc->link_data = data;
    }
}

void redis_client_stop(redis_client *rc)
{
    if (!rc || rc->state == ST_STOPPED)
        return;
    rc->state = ST_STOPPED;
    snprintf(rc->why, sizeof rc->why, "Redis client stopped");
    cancel_timer(rc);
    drop_contexts(rc);
}

int redis_client_connected(const redis_client *rc) { return rc && rc->state == ST_UP; }
unsigned long redis_client_drops(const redis_client *rc) { return rc ? rc->drops : 0; }
unsigned long redis_client_links(const redis_client *rc) { return rc ? rc->links : 0; }

static void finish_free(redis_client *rc)
{
    rc->free_asked = 1; /* a callback run by the stop below must not free us again */
    redis_client_stop(rc);
    for (struct sub *s = rc->subs, *n; s; s = n) {
        n = s->next;
        free(s);
    }
    free(rc->host);
    free(rc);
}

static void free_later(reactor *r, void *data)
{
    redis_client *rc = data;
    if (rc->in_cb) { /* still inside (a nested loop?): try again */
        rc->timer = reactor_call_soon(r, free_later, rc);
        return;
    }
    rc->timer = NULL;
    finish_free(rc);
}

void redis_client_free(redis_client *rc)
{
    if (!rc || rc->free_asked)
        return;
    if (rc->in_cb == 0) {
        finish_free(rc);
        return;
    }
    /* Inside one of our callbacks, hiredis may still hold rc: finish from the loop. */
    redis_client_stop(rc);
    rc->free_asked = 1;
    rc->timer = reactor_call_soon(rc->r, free_later, rc);
}
