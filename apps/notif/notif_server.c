/* The notification server (notif_server.h). How a request travels:
 *
 *   transport read -> conn_data (checks an unfinished line's length) -> LineReceiver
 *   -> conn_line: strip CR, look the command up in the uthash table, answer with one
 *   transport_write from a stack buffer (copied once into the connection's output
 *   buffer, sent with every other answer of that read in one send).
 *
 * Nothing on that path allocates: the answers go into the scratch buffer the transport
 * lends to the connection being read (only a rest the kernel refuses is copied),
 * the line points into the shared read buffer.
 *
 * Flow control: a connection gets a push producer (the LineReceiver) only once its
 * pending output nears the 64 KiB high-water mark, so idle and well-behaved connections
 * carry no producer state at all. */
#include "apps/notif/notif_server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <twistc/line_receiver.h>
#include <twistc/transport.h>

#include "protocols/line_receiver_internal.h" /* line_receiver__feed: conn_line inlined */
#include "apps/notif/notif_hash_internal.h"
#include "reactor/transport_internal.h" /* transport__pending: asked once per answer */

_Thread_local int notif__hash_oom;

enum { CMD_RANDOM, CMD_CLASSIFIED, CMD_NOTIFY, CMD_STOP, CMD_QUIT, CMD_COUNT };

struct notif_cmd {
    const char *name;
    int id;
    UT_hash_handle hh;
};

static const char *const cmd_names[CMD_COUNT] = {
    [CMD_RANDOM] = "random?", [CMD_CLASSIFIED] = "classified?", [CMD_NOTIFY] = "notify",
    [CMD_STOP] = "stop",      [CMD_QUIT] = "quit",
};

enum {
    C_NOTIFY = 1u << 0,   /* in notification mode */
    C_PRODUCER = 1u << 1, /* the LineReceiver is registered as the transport's producer */
    C_CLOSING = 1u << 2,  /* close once the paused receiver has delivered what it holds */
    C_MADE = 1u << 3,     /* connection_made ran */
    C_DRAINING = 1u << 4, /* all answered and our side shut down: discard input until EOF */
    C_EPOCH_SHIFT = 8,    /* bits 8..31: the drain sweep epoch when draining began */
};

/* A draining connection whose peer neither closes nor stops sending is aborted after
 * DRAIN_EPOCHS sweeps of DRAIN_SWEEP seconds (4-5 s). */
#define DRAIN_SWEEP 1.0
#define DRAIN_EPOCHS 5u

/* 72 bytes (an 80-byte malloc chunk): what an idle connection costs the server, on top
 * of the transport. Every connection is on an intrusive list (shutdown and the drain
 * sweep walk it); only subscribers are in the uthash registry, through a separate entry,
 * so an idle connection does not carry a 56-byte hash handle. */
struct notif_conn {
    line_receiver lr;  /* first: &c->lr.base is the protocol */
    notif_server *srv; /* NULL once the server was freed */
    struct notif_conn *prev, *next; /* all connections */
    uint32_t id;       /* for the trace only (wraps after 2^32 connections) */
    unsigned flags;
};

/* A subscriber's registry entry, keyed by its connection's address (unique while the
 * connection lives): added by "notify", removed by "stop" or when the connection goes. */
struct notif_sub {
    struct notif_conn *c;
    UT_hash_handle hh;
};

/* A connection over max_clients: told so, then closed. Touches no server state after
 * connection_made, so it may outlive the server. */
struct full_conn {
    protocol base;
};

struct notif_server {
    factory f;
    reactor *r;
    struct notif_conn *conns; /* every connection (a list: prev/next) */
    struct notif_sub *subs;   /* the registry of subscribers (uthash, by connection) */
    struct notif_cmd cmds[CMD_COUNT];
    struct notif_cmd *cmd_table;
    char **ads;
    size_t *ad_len;
    size_t n_ads, ad_cur;
    uint64_t rng;
    uint32_t next_id;
    double interval;
    double idle_timeout; /* per connection, 0: none */
    size_t max_clients, cap;
    size_t fast_limit; /* below this much pending output, writes need no checks */
    reactor_timer *tick;
    reactor_timer *grace;
    reactor_timer *sweep; /* runs while connections are draining */
    unsigned draining;
    reactor_trigger *trigger;
    double trigger_grace;
    FILE *trace; /* the reactor's trace, refreshed at each connection and event */
    int started, shutting_down;
    void (*done)(void *data);
    void *done_data;
    notif_server_stats st;
    /* An ad set from outside (another instance's, through Redis): answered by
     * classified? while use_ext, until this server picks one of its own again. */
    char *ext_ad;
    size_t ext_len;
    int use_ext;
    notif_event_hook hook; /* told of every event this server produces */
    void *hook_data;
};

static const char *const builtin_ads[] = {
    "nice flat in the 11e",
    "bicycle for sale, barely used",
    "cat sitter wanted for august",
    "piano lessons, first one free",
    "old Twisted books, make an offer",
    "room to let near the canal",
    "vintage typewriter, works",
    "looking for a bass player",
};

#define HIGH_WATER (64u * 1024u)

static const char digits2[] = "00010203040506070809101112131415161718192021222324"
                              "25262728293031323334353637383940414243444546474849"
                              "50515253545556575859606162636465666768697071727374"
                              "75767778798081828384858687888990919293949596979899";

/* The command table's hash: uthash's default (Jenkins) costs more than the rest of a
 * request's parsing. Length, first and last byte tell the five commands apart (any line
 * with the same three still goes through the key comparison). */
static inline unsigned cmd_hash(const char *line, size_t len)
{
    return (unsigned)len * 0x9E3779B1u ^ (unsigned)(unsigned char)line[0] << 8 ^
           (unsigned)(unsigned char)line[len - 1];
}

/* ---- Small helpers ------------------------------------------------------------------ */

static uint64_t next_rand(notif_server *s)
{
    /* xorshift64*: fast, good enough for a demo, never zero once seeded non-zero */
    uint64_t x = s->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    s->rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static void trace_line(notif_server *s, const struct notif_conn *c, const char *what,
                       const char *text, size_t len)
{
    if (len && text[len - 1] == '\n')
        len--;
    fprintf(s->trace, "iter=%llu notif-server conn=%llu %s=\"",
            (unsigned long long)reactor_iterations(s->r), (unsigned long long)c->id, what);
    for (size_t i = 0; i < len && i < 80; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
            fputc(ch, s->trace);
        else
            fprintf(s->trace, "\\x%02x", ch);
    }
    fprintf(s->trace, "\"%s\n", len > 80 ? "..." : "");
}

static const transport_producer_ops conn_producer_ops;

/* Every write to a connection goes through here: the cap (drop a slow reader, alone) and
 * the lazy producer registration (pause a pipelining client that does not read). */
static int conn_writev(struct notif_conn *c, const struct iovec *iov, int n, size_t len)
{
    notif_server *s = c->srv;
    transport *t = c->lr.base.transport;
    size_t pend = transport_pending(t);
    if (pend + len > s->cap) {
        if (!transport_disconnecting(t)) {
            s->st.dropped_slow++;
            transport_abort_connection(t);
        }
        return -ENOBUFS;
    }
    if (pend + len > HIGH_WATER && !(c->flags & C_PRODUCER)) {
        /* registered before the write, so the write itself pauses the receiver */
        if (transport_register_producer(t, &conn_producer_ops, c, 1) == 0)
            c->flags |= C_PRODUCER;
    }
    if (s->trace)
        trace_line(s, c, "answer", iov[0].iov_base, iov[0].iov_len);
    return transport_writev(t, iov, n);
}

/* The same for one piece (every answer but an ad): the request's hot path. */
static inline int conn_write(struct notif_conn *c, const char *buf, size_t len)
{
    transport *t = c->lr.base.transport;
    size_t pend = transport__pending(t);
    if (pend + len > c->srv->fast_limit || c->srv->trace) {
        struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
        return conn_writev(c, &iov, 1, len); /* the cap, the producer, the trace */
    }
    return transport__write(t, buf, len);
}

static void drain_sweep(reactor *r, void *data);

/* Time in whole sweeps on the reactor's clock (24 bits, wrapping), for drain deadlines. */
static unsigned now_epoch(const notif_server *s)
{
    return s->r ? (unsigned)(uint64_t)(reactor_seconds(s->r) / DRAIN_SWEEP) & 0xffffffu : 0;
}

static void drop_producer(struct notif_conn *c, transport *t)
{
    if (c->flags & C_PRODUCER) {
        c->flags &= ~C_PRODUCER;
        transport_unregister_producer(t); /* lose_connection waits for no producer */
    }
}

/* quit, line too long, server shutdown: send what is owed, then close, without losing
 * it. Closing a socket that still has unread input makes the kernel send RST, and an RST
 * destroys the answers the peer has not read yet. So, like a careful hand-written server,
 * we shut down our sending side once the answers are out (the peer reads them, then EOF),
 * discard whatever the peer still sends, and close when it closes its side (or after a
 * few seconds; at a server shutdown, after the grace time). */
static void begin_close(struct notif_conn *c)
{
    transport *t = c->lr.base.transport;
    if (!t || transport_disconnecting(t) || (c->flags & C_DRAINING))
        return;
    if (line_receiver_paused(&c->lr)) {
        c->flags |= C_CLOSING; /* conn_resume closes once the held lines are answered */
        return;
    }
    drop_producer(c, t);
    line_receiver_clear_line_buffer(&c->lr); /* nothing after this line is answered */
    notif_server *s = c->srv;
    c->flags = (c->flags & ((1u << C_EPOCH_SHIFT) - 1)) | C_DRAINING | (now_epoch(s) << C_EPOCH_SHIFT);
    s->draining++;
    if (s->r && !s->sweep)
        s->sweep = reactor_call_later(s->r, DRAIN_SWEEP, drain_sweep, s);
    transport_lose_write_connection(t);
    if (transport_paused(t))
        transport_resume_producing(t); /* read (and drop) until the peer's EOF */
}

static void drain_sweep(reactor *r, void *data)
{
    notif_server *s = data;
    s->sweep = NULL;
    unsigned epoch = now_epoch(s);
    for (struct notif_conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        if ((c->flags & C_DRAINING) &&
            ((epoch - (c->flags >> C_EPOCH_SHIFT)) & 0xffffffu) >= DRAIN_EPOCHS &&
            !transport_disconnecting(c->lr.base.transport))
            transport_abort_connection(c->lr.base.transport);
    }
    if (s->draining)
        s->sweep = reactor_call_later(r, DRAIN_SWEEP, drain_sweep, s);
}

static void too_long(struct notif_conn *c)
{
    static const char msg[] = "error: line too long\n";
    c->srv->st.errors++;
    conn_write(c, msg, sizeof msg - 1);
    begin_close(c);
}

/* ---- The protocol ------------------------------------------------------------------- */

/* Into the registry of subscribers; -ENOMEM closes this connection (on error). */
static int subscribe(struct notif_conn *c)
{
    notif_server *s = c->srv;
    struct notif_sub *sub = malloc(sizeof *sub);
    if (!sub)
        return -ENOMEM;
    sub->c = c;
    notif__hash_oom = 0;
    HASH_ADD_PTR(s->subs, c, sub);
    if (notif__hash_oom) {
        free(sub);
        return -ENOMEM;
    }
    c->flags |= C_NOTIFY;
    s->st.subscribers++;
    return 0;
}

static void unsubscribe(struct notif_conn *c)
{
    notif_server *s = c->srv;
    struct notif_sub *sub;
    HASH_FIND_PTR(s->subs, &c, sub);
    if (sub) {
        HASH_DEL(s->subs, sub);
        free(sub);
    }
    c->flags &= ~C_NOTIFY;
    s->st.subscribers--;
}

#if defined(__GNUC__) || defined(__clang__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE
#endif

/* The number answered to random?, below 100000, as digits and '\n' ending at end;
 * returns where they start. Five digits (nine numbers in ten) in one go: three
 * divisions by constants (multiplications once compiled), two digits at a time. */
static inline char *format_number(unsigned v, char *end)
{
    char *p = end;
    *--p = '\n';
    if (v >= 10000) {
        unsigned d1 = v / 10000, r = v - d1 * 10000, hi = r / 100, lo = r - hi * 100;
        p -= 5;
        p[0] = (char)('0' + d1);
        memcpy(p + 1, digits2 + hi * 2, 2);
        memcpy(p + 3, digits2 + lo * 2, 2);
        return p;
    }
    while (v >= 100) {
        unsigned d = (v % 100) * 2;
        v /= 100;
        *--p = digits2[d + 1];
        *--p = digits2[d];
    }
    if (v >= 10) {
        *--p = digits2[v * 2 + 1];
        *--p = digits2[v * 2];
    } else {
        *--p = (char)('0' + v);
    }
    return p;
}

/* Every command but random? (and unknown ones). Out of line, so the hot path below
 * stays small (fewer registers to save on every request). */
static NOINLINE int answer_other(struct notif_conn *c, const struct notif_cmd *cmd)
{
    notif_server *s = c->srv;
    int rc = 0;
    if (!cmd) {
        static const char msg[] = "error: unknown command\n";
        s->st.errors++;
        rc = conn_write(c, msg, sizeof msg - 1);
    } else {
        switch (cmd->id) {
        case CMD_CLASSIFIED: {
            char *ad = s->use_ext ? s->ext_ad : s->ads[s->ad_cur];
            size_t ad_len = s->use_ext ? s->ext_len : s->ad_len[s->ad_cur];
            struct iovec iov[2] = {
                {.iov_base = ad, .iov_len = ad_len},
                {.iov_base = "\n", .iov_len = 1},
            };
            rc = conn_writev(c, iov, 2, ad_len + 1);
            break;
        }
        case CMD_NOTIFY:
            if (!(c->flags & C_NOTIFY))
                rc = subscribe(c);
            break;
        case CMD_STOP:
            if (c->flags & C_NOTIFY)
                unsubscribe(c);
            break;
        case CMD_QUIT:
            begin_close(c); /* the receiver delivers nothing more: we are disconnecting */
            break;
        }
    }
    /* -ENOBUFS: we dropped this slow connection ourselves; the receiver stops since the
     * transport is disconnecting. Anything else (ENOMEM) closes it on error. */
    return rc == -ENOBUFS ? 0 : rc;
}

/* A request line (CR already stripped), not empty, not too long. Inlined into
 * conn_line: one call and one register save less per request. */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((always_inline))
#endif
static inline int answer(struct notif_conn *c, const char *line, size_t len)
{
    notif_server *s = c->srv;
    s->st.requests++;
    struct notif_cmd *cmd;
    HASH_FIND_BYHASHVALUE(hh, s->cmd_table, line, len, cmd_hash(line, len), cmd);
    if (!cmd || cmd->id != CMD_RANDOM)
        return answer_other(c, cmd);
    /* 16 bytes of slack after the answer: the inline copy of a short write reads whole
     * words, and the compiler checks that against the array's size */
    char buf[32];
    char *end = buf + 16;
    char *p = format_number((unsigned)(next_rand(s) % 100000u), end);
    int rc = conn_write(c, p, (size_t)(end - p));
    return rc == -ENOBUFS ? 0 : rc;
}

/* The rare cases of conn_line, out of line: draining, tracing, empty or too long. */
static NOINLINE int conn_line_rare(struct notif_conn *c, const char *line, size_t len)
{
    notif_server *s = c->srv;
    if (c->flags & C_DRAINING)
        return 0;
    if (len == 0)
        return 0; /* empty lines are ignored */
    if (s->trace)
        trace_line(s, c, "line", line, len);
    if (len > NOTIF_MAX_LINE) {
        too_long(c);
        return 0;
    }
    return answer(c, line, len);
}

/* The LineReceiver's line_received; conn_data's common case inlines it. */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((always_inline))
#endif
static inline int conn_line(line_receiver *lr, const char *line, size_t len)
{
    struct notif_conn *c = (struct notif_conn *)lr;
    if (len && line[len - 1] == '\r')
        len--;
    /* One test for every rare case (len - 1 wraps around for an empty line). */
    if ((c->flags & C_DRAINING) || c->srv->trace || len - 1 >= NOTIF_MAX_LINE)
        return conn_line_rare(c, line, len);
    return answer(c, line, len);
}

static int conn_exceeded(line_receiver *lr, const char *data, size_t len)
{
    too_long((struct notif_conn *)lr);
    return 0;
}

static const line_receiver_ops conn_lr_ops = {
    .delimiter = "\n",
    /* 1024 bytes + an optional CR; conn_line and conn_data check the exact limit */
    .max_length = NOTIF_MAX_LINE + 1,
    .line_received = conn_line,
    .line_length_exceeded = conn_exceeded,
};

static void conn_made(protocol *p)
{
    struct notif_conn *c = (struct notif_conn *)p;
    c->flags |= C_MADE;
    if (c->srv) {
        c->srv->st.connections++;
        /* the trace is looked up per connection (and per event), not per read */
        c->srv->trace = c->srv->r ? reactor_trace_file(c->srv->r) : NULL;
        if (c->srv->idle_timeout > 0 && p->transport)
            transport_set_timeout(p->transport, c->srv->idle_timeout); /* (ENOMEM: none) */
    }
}

static int conn_data(protocol *p, const char *data, size_t len)
{
    struct notif_conn *c = (struct notif_conn *)p;
    notif_server *s = c->srv;
    if (!s || (c->flags & C_DRAINING))
        return 0; /* closing: input is read only to be dropped */
    if (s->trace)
        fprintf(s->trace, "iter=%llu notif-server conn=%llu data_received bytes=%zu\n",
                (unsigned long long)reactor_iterations(s->r), (unsigned long long)c->id, len);
    int rc = line_receiver__feed(&c->lr, data, len, conn_line);
    /* An unfinished line of 1025 bytes is too long unless its last byte is the CR of a
     * CRLF still to come (the receiver itself only gives up at 1026). The bytes it keeps
     * are the tail of this read, so their last byte is data[len - 1]. */
    char last = data[len - 1];
    if (rc == 0 && last != '\n' && last != '\r' &&
        line_receiver_buffered(&c->lr) == NOTIF_MAX_LINE + 1 && !line_receiver_paused(&c->lr) &&
        !transport_disconnecting(p->transport))
        too_long(c);
    return rc;
}

/* The peer shut down its sending side: answer what it sent, then close (nothing is left
 * unread now, so a plain close is clean). Also the end of a drain. */
static void conn_read_lost(protocol *p)
{
    struct notif_conn *c = (struct notif_conn *)p;
    if (c->srv && line_receiver_paused(&c->lr)) {
        c->flags |= C_CLOSING;
        return;
    }
    drop_producer(c, p->transport);
    transport_lose_connection(p->transport);
}

static void shutdown_finished(notif_server *s);

static void conn_lost(protocol *p, const protocol_reason *reason)
{
    struct notif_conn *c = (struct notif_conn *)p;
    notif_server *s = c->srv;
    line_receiver_clear_line_buffer(&c->lr);
    if (s) {
        if (c->prev)
            c->prev->next = c->next;
        else
            s->conns = c->next;
        if (c->next)
            c->next->prev = c->prev;
        if (c->flags & C_NOTIFY)
            unsubscribe(c);
        if (c->flags & C_DRAINING)
            s->draining--;
        s->st.clients--;
        if (s->shutting_down && !s->conns)
            shutdown_finished(s);
    }
    free(c);
}

static const protocol_ops conn_ops = {
    .connection_made = conn_made,
    .data_received = conn_data,
    .read_connection_lost = conn_read_lost,
    .connection_lost = conn_lost,
};

/* Producer glue: the transport pauses/resumes the receiver around the high-water mark. */
static void conn_pause(void *data)
{
    line_receiver_pause_producing(&((struct notif_conn *)data)->lr);
}

static void conn_resume(void *data)
{
    struct notif_conn *c = data;
    line_receiver_resume_producing(&c->lr); /* answers the lines it held, now */
    if ((c->flags & C_CLOSING) && !line_receiver_paused(&c->lr)) {
        c->flags &= ~C_CLOSING;
        begin_close(c);
    }
}

static void conn_stop(void *data)
{
    (void)data; /* the connection is gone: connection_lost cleans up */
}

static const transport_producer_ops conn_producer_ops = {
    .pause_producing = conn_pause,
    .resume_producing = conn_resume,
    .stop_producing = conn_stop,
};

/* ---- Refused connections ----------------------------------------------------------- */

static void full_made(protocol *p)
{
    static const char msg[] = "error: server full\n";
    transport_write(p->transport, msg, sizeof msg - 1);
    transport_lose_connection(p->transport);
}

static int full_data(protocol *p, const char *data, size_t len)
{
    return 0; /* closing; whatever it sends is ignored */
}

static void full_lost(protocol *p, const protocol_reason *reason) { free(p); }

static const protocol_ops full_ops = {
    .connection_made = full_made,
    .data_received = full_data,
    .connection_lost = full_lost,
};

/* ---- Factory ------------------------------------------------------------------------ */

protocol *notif_server_connection(notif_server *s)
{
    if (!s) {
        errno = EINVAL;
        return NULL;
    }
    if (s->shutting_down) {
        errno = ESHUTDOWN;
        return NULL;
    }
    if (s->max_clients && s->st.clients >= s->max_clients) {
        struct full_conn *fc = malloc(sizeof *fc);
        if (!fc)
            return NULL;
        protocol_init(&fc->base, &full_ops);
        s->st.refused++;
        return &fc->base;
    }
    struct notif_conn *c = malloc(sizeof *c);
    if (!c)
        return NULL;
    line_receiver_init(&c->lr, &conn_lr_ops);
    c->lr.base.ops = &conn_ops; /* our glue calls line_receiver_data_received itself */
    c->srv = s;
    c->flags = 0;
    c->id = ++s->next_id;
    c->prev = NULL;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->st.clients++;
    return &c->lr.base;
}

static protocol *build(factory *f, const struct sockaddr *addr, socklen_t addrlen)
{
    return notif_server_connection(f->data);
}

static void tick(reactor *r, void *data)
{
    notif_server *s = data;
    s->tick = NULL;
    if (s->shutting_down)
        return;
    s->tick = reactor_call_later(r, s->interval, tick, s);
    notif_server_publish(s, (next_rand(s) >> 32) & 1 ? NOTIF_EVENT_CLASSIFIED : NOTIF_EVENT_RANDOM);
}

int notif_server_start(notif_server *s)
{
    if (!s)
        return -EINVAL;
    if (s->started || s->shutting_down || !s->r || s->interval < 0)
        return 0;
    s->tick = reactor_call_later(s->r, s->interval, tick, s);
    if (!s->tick)
        return -errno;
    s->started = 1;
    return 0;
}

static void stop_timer(notif_server *s)
{
    if (s->tick) {
        reactor_timer_cancel(s->tick);
        s->tick = NULL;
    }
    s->started = 0;
}

static void f_start(factory *f) { notif_server_start(f->data); }
static void f_stop(factory *f) { stop_timer(f->data); }

static const factory_ops server_factory_ops = {
    .build_protocol = build,
    .start_factory = f_start,
    .stop_factory = f_stop,
};

factory *notif_server_factory(notif_server *s) { return s ? &s->f : NULL; }

/* One notification line to every subscriber. */
static int notify_all(notif_server *s, notif_event ev)
{
    static const char m_random[] = "notif: random\n";
    static const char m_classified[] = "notif: classified\n";
    const char *msg = m_random;
    size_t len = sizeof m_random - 1;
    if (ev == NOTIF_EVENT_CLASSIFIED) {
        msg = m_classified;
        len = sizeof m_classified - 1;
    }
    s->trace = s->r ? reactor_trace_file(s->r) : NULL;
    int n = 0;
    struct notif_sub *sub, *tmp;
    HASH_ITER(hh, s->subs, sub, tmp) {
        struct notif_conn *c = sub->c;
        transport *t = c->lr.base.transport;
        if (!t || transport_disconnecting(t))
            continue;
        if (conn_write(c, msg, len) == 0) {
            s->st.notifications++;
            n++;
        }
    }
    return n;
}

int notif_server_publish(notif_server *s, notif_event ev)
{
    if (!s)
        return -EINVAL;
    s->st.events++;
    if (ev == NOTIF_EVENT_CLASSIFIED) {
        if (s->n_ads > 1) /* a new ad: any other one */
            s->ad_cur = (s->ad_cur + 1 + next_rand(s) % (s->n_ads - 1)) % s->n_ads;
        s->use_ext = 0;
    }
    int n = notify_all(s, ev);
    if (s->hook)
        s->hook(s, ev, ev == NOTIF_EVENT_CLASSIFIED ? s->ads[s->ad_cur] : NULL,
                ev == NOTIF_EVENT_CLASSIFIED ? s->ad_len[s->ad_cur] : 0, s->hook_data);
    return n;
}

void notif_server_set_event_hook(notif_server *s, notif_event_hook hook, void *data)
{
    if (s) {
        s->hook = hook;
        s->hook_data = data;
    }
}

int notif_server_set_classified(notif_server *s, const char *ad, size_t len)
{
    if (!s)
        return -EINVAL;
    if (notif_ad_check(ad, len))
        return -EINVAL;
    char *copy = malloc(len + 1);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, ad, len);
    copy[len] = '\0';
    free(s->ext_ad);
    s->ext_ad = copy;
    s->ext_len = len;
    s->use_ext = 1;
    return 0;
}

int notif_server_deliver(notif_server *s, notif_event ev, const char *ad, size_t len)
{
    if (!s || (ev != NOTIF_EVENT_RANDOM && ev != NOTIF_EVENT_CLASSIFIED))
        return -EINVAL;
    if (ev == NOTIF_EVENT_CLASSIFIED) {
        int rc = notif_server_set_classified(s, ad, len);
        if (rc < 0)
            return rc;
    }
    s->st.events++;
    return notify_all(s, ev);
}

const char *notif_server_classified(const notif_server *s, size_t *len)
{
    if (!s)
        return NULL;
    if (len)
        *len = s->use_ext ? s->ext_len : s->ad_len[s->ad_cur];
    return s->use_ext ? s->ext_ad : s->ads[s->ad_cur];
}

/* ---- Shutdown ----------------------------------------------------------------------- */

static void shutdown_finished(notif_server *s)
{
    if (s->grace) {
        reactor_timer_cancel(s->grace);
        s->grace = NULL;
    }
    void (*done)(void *) = s->done;
    s->done = NULL;
    if (done)
        done(s->done_data);
}

static void grace_over(reactor *r, void *data)
{
    notif_server *s = data;
    s->grace = NULL;
    for (struct notif_conn *c = s->conns, *next; c; c = next) {
        next = c->next; /* (connection_lost runs from the loop, later, but be safe) */
        if (c->lr.base.transport)
            transport_abort_connection(c->lr.base.transport);
    }
}

int notif_server_shutdown(notif_server *s, double grace, void (*done)(void *data), void *data)
{
    if (!s)
        return -EINVAL;
    s->shutting_down = 1;
    stop_timer(s);
    s->done = done;
    s->done_data = data;
    int n = 0;
    for (struct notif_conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        begin_close(c);
        n++;
    }
    if (!s->conns) {
        shutdown_finished(s);
        return 0;
    }
    if (s->r && !s->grace)
        s->grace = reactor_call_later(s->r, grace > 0 ? grace : 5.0, grace_over, s);
    return n;
}

static void release_shutdown(void *data)
{
    notif_server *s = data;
    reactor_shutdown_release(s->r);
}

static void before_shutdown(reactor *r, void *data)
{
    notif_server *s = data;
    s->trigger = NULL;
    reactor_shutdown_hold(r);
    notif_server_shutdown(s, s->trigger_grace, release_shutdown, s);
}

int notif_server_stop_on_shutdown(notif_server *s, double grace)
{
    if (!s || !s->r)
        return -EINVAL;
    if (s->trigger)
        return 0;
    s->trigger_grace = grace;
    s->trigger = reactor_add_trigger(s->r, REACTOR_BEFORE_SHUTDOWN, before_shutdown, s);
    return s->trigger ? 0 : -errno;
}

/* ---- Life cycle ----------------------------------------------------------------------- */

const char *notif_ad_check(const char *ad, size_t len)
{
    if (!ad || len == 0)
        return "empty";
    if (len > NOTIF_MAX_LINE)
        return "too long (more than 1024 bytes)";
    if (memchr(ad, '\0', len) || memchr(ad, '\n', len))
        return "contains a NUL or newline byte";
    if (ad[len - 1] == '\r')
        return "ends with a CR";
    if (len >= 6 && memcmp(ad, "notif:", 6) == 0)
        return "starts with \"notif:\"";
    if (len >= 6 && memcmp(ad, "error:", 6) == 0)
        return "starts with \"error:\"";
    return NULL;
}

static void free_ads(notif_server *s)
{
    if (s->ads)
        for (size_t i = 0; i < s->n_ads; i++)
            free(s->ads[i]);
    free(s->ads);
    free(s->ad_len);
    s->ads = NULL;
    s->ad_len = NULL;
}

notif_server *notif_server_new(reactor *r, const notif_server_config *cfg)
{
    notif_server_config def = {0};
    if (!cfg)
        cfg = &def;
    if (cfg->ads && cfg->n_ads == 0) {
        errno = EINVAL;
        return NULL;
    }
    notif_server *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    factory_init(&s->f, &server_factory_ops, s);
    s->r = r;
    s->interval = cfg->interval == 0 ? NOTIF_DEFAULT_INTERVAL : cfg->interval;
    s->max_clients = cfg->max_clients;
    s->idle_timeout = cfg->idle_timeout > 0 ? cfg->idle_timeout : 0;
    s->cap = cfg->output_cap ? cfg->output_cap : NOTIF_DEFAULT_CAP;
    s->fast_limit = s->cap < HIGH_WATER ? s->cap : HIGH_WATER;
    s->rng = cfg->seed;
    if (!s->rng) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        s->rng = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 16);
    }
    if (!s->rng)
        s->rng = 0x9E3779B97F4A7C15ull;

    const char *const *ads = cfg->ads ? cfg->ads : builtin_ads;
    size_t n = cfg->ads ? cfg->n_ads : sizeof builtin_ads / sizeof builtin_ads[0];
    s->ads = calloc(n, sizeof *s->ads);
    s->ad_len = calloc(n, sizeof *s->ad_len);
    if (!s->ads || !s->ad_len)
        goto nomem;
    s->n_ads = n;
    for (size_t i = 0; i < n; i++) {
        size_t len = ads[i] ? strlen(ads[i]) : 0;
        if (notif_ad_check(ads[i], len)) {
            free_ads(s);
            free(s);
            errno = EINVAL;
            return NULL;
        }
        s->ads[i] = malloc(len + 1);
        if (!s->ads[i])
            goto nomem;
        memcpy(s->ads[i], ads[i], len + 1);
        s->ad_len[i] = len;
    }

    notif__hash_oom = 0;
    for (int i = 0; i < CMD_COUNT; i++) {
        s->cmds[i].name = cmd_names[i];
        s->cmds[i].id = i;
        size_t len = strlen(cmd_names[i]);
        HASH_ADD_KEYPTR_BYHASHVALUE(hh, s->cmd_table, cmd_names[i], len,
                                    cmd_hash(cmd_names[i], len), &s->cmds[i]);
        if (notif__hash_oom)
            goto nomem;
    }
    return s;
nomem:
    HASH_CLEAR(hh, s->cmd_table);
    free_ads(s);
    free(s);
    errno = ENOMEM;
    return NULL;
}

void notif_server_free(notif_server *s)
{
    if (!s)
        return;
    struct notif_sub *sub, *stmp;
    HASH_ITER(hh, s->subs, sub, stmp) {
        HASH_DEL(s->subs, sub);
        free(sub);
    }
    struct notif_conn *c, *next;
    for (c = s->conns, s->conns = NULL; c; c = next) {
        next = c->next;
        c->srv = NULL;
        if (c->lr.base.transport)
            transport_abort_connection(c->lr.base.transport); /* conn_lost frees c */
        else
            free(c); /* built but never connected */
    }
    stop_timer(s);
    if (s->grace)
        reactor_timer_cancel(s->grace);
    if (s->sweep)
        reactor_timer_cancel(s->sweep);
    if (s->trigger)
        reactor_remove_trigger(s->r, s->trigger);
    HASH_CLEAR(hh, s->cmd_table);
    free_ads(s);
    free(s->ext_ad);
    free(s);
}

notif_server_stats notif_server_get_stats(const notif_server *s)
{
    notif_server_stats z = {0};
    return s ? s->st : z;
}

int notif_server_format_stats(const notif_server *s, char *buf, size_t n)
{
    notif_server_stats st = notif_server_get_stats(s);
    return snprintf(buf, n,
                    "connections=%llu requests=%llu notifications=%llu dropped_slow=%llu "
                    "refused=%llu errors=%llu events=%llu",
                    (unsigned long long)st.connections, (unsigned long long)st.requests,
                    (unsigned long long)st.notifications, (unsigned long long)st.dropped_slow,
                    (unsigned long long)st.refused, (unsigned long long)st.errors,
                    (unsigned long long)st.events);
}

/* ---- Ads from a file ------------------------------------------------------------------ */

void notif_ads_free(char **ads)
{
    if (!ads)
        return;
    for (char **a = ads; *a; a++)
        free(*a);
    free(ads);
}

int notif_ads_load(const char *path, char ***out, size_t *out_n, char *err, size_t err_len)
{
    if (err && err_len)
        err[0] = '\0';
    if (!path || !out) {
        if (err && err_len)
            snprintf(err, err_len, "no file given");
        return -EINVAL;
    }
    FILE *fp = fopen(path, "r");
    if (!fp) {
        int e = errno;
        if (err && err_len)
            snprintf(err, err_len, "%s: %s", path, strerror(e));
        return -e;
    }
    char **ads = NULL;
    size_t n = 0, cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t got;
    unsigned long lineno = 0;
    int rc = 0;
    while ((got = getline(&line, &lcap, fp)) >= 0) {
        lineno++;
        size_t len = (size_t)got;
        if (len && line[len - 1] == '\n')
            len--;
        if (len && line[len - 1] == '\r')
            len--;
        const char *why = notif_ad_check(line, len);
        if (why) {
            if (err && err_len)
                snprintf(err, err_len, "%s:%lu: bad ad: %s", path, lineno, why);
            rc = -EINVAL;
            break;
        }
        if (n + 2 > cap) {
            size_t nc = cap ? cap * 2 : 16;
            char **na = realloc(ads, nc * sizeof *na);
            if (!na) {
                rc = -ENOMEM;
                break;
            }
            ads = na;
            cap = nc;
        }
        ads[n] = malloc(len + 1);
        if (!ads[n]) {
            rc = -ENOMEM;
            break;
        }
        memcpy(ads[n], line, len);
        ads[n][len] = '\0';
        ads[++n] = NULL;
    }
    if (rc == 0 && ferror(fp)) {
        rc = -EIO;
        if (err && err_len)
            snprintf(err, err_len, "%s: read error", path);
    }
    if (rc == 0 && n == 0) {
        rc = -EINVAL;
        if (err && err_len)
            snprintf(err, err_len, "%s: no ads in the file", path);
    }
    if (rc == -ENOMEM && err && err_len)
        snprintf(err, err_len, "%s: out of memory", path);
    free(line);
    fclose(fp);
    if (rc < 0) {
        if (ads) {
            ads[n] = NULL;
            notif_ads_free(ads);
        }
        return rc;
    }
    *out = ads;
    if (out_n)
        *out_n = n;
    return 0;
}
