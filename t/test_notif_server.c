/* The notification server over the in-memory transport: every rule of the protocol
 * (shared/spec/protocol.md), the limits, the ads, the bad-input list. No sockets, no
 * clock: events are published by hand. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <twistc/memory_transport.h>
#include "apps/notif/notif_server.h"
#include <twistc/reactor.h>
#include <twistc/transport.h>

static notif_server *srv;

static void setup(void)
{
    notif_server_config cfg = {.interval = -1, .seed = 42};
    srv = notif_server_new(NULL, &cfg);
    ck_assert_ptr_nonnull(srv);
}

static void teardown(void)
{
    notif_server_free(srv);
    srv = NULL;
}

/* A connection on a memory transport. */
static transport *conn(notif_server *s)
{
    transport *t = memory_transport_new();
    ck_assert_ptr_nonnull(t);
    protocol *p = notif_server_connection(s);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(memory_transport_connect(t, p), 0);
    return t;
}

static void drop(transport *t)
{
    if (!memory_transport_lost(t))
        memory_transport_lose(t, PROTOCOL_DONE, 0);
    memory_transport_free(t);
}

/* Closing as the server does it: our side shut down once the answers are out (the input
 * is then drained until the peer's EOF), or closed. */
static int closing(transport *t)
{
    return transport_disconnecting(t) || memory_transport_write_closed(t);
}

/* The peer closes too: the connection ends cleanly. Returns 1 if connection_lost ran. */
static int peer_closes(transport *t)
{
    memory_transport_receive_eof(t);
    return memory_transport_finish(t);
}

static void feed(transport *t, const char *s) { memory_transport_receive(t, s, strlen(s)); }

/* The output as a NUL-terminated copy (static buffer, for assertions). */
static const char *out(transport *t)
{
    static char buf[1 << 16];
    size_t n;
    const char *v = memory_transport_value(t, &n);
    ck_assert_uint_lt(n, sizeof buf);
    memcpy(buf, v, n);
    buf[n] = '\0';
    return buf;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static int is_number_line(const char *s, size_t len)
{
    if (len < 2 || len > 6 || s[len - 1] != '\n')
        return 0;
    for (size_t i = 0; i + 1 < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return atoi(s) <= 99999;
}

START_TEST(test_random)
{
    transport *t = conn(srv);
    feed(t, "random?\n");
    const char *o = out(t);
    ck_assert_msg(is_number_line(o, strlen(o)), "got '%s'", o);
    memory_transport_clear(t);
    feed(t, "random?\r\n"); /* CR stripped */
    o = out(t);
    ck_assert_msg(is_number_line(o, strlen(o)), "got '%s'", o);
    ck_assert(!transport_disconnecting(t));
    drop(t);
}
END_TEST

START_TEST(test_random_varies)
{
    transport *t = conn(srv);
    for (int i = 0; i < 20; i++)
        feed(t, "random?\n");
    /* 20 draws from 100000 values: not all equal */
    const char *o = out(t);
    char first[8];
    memcpy(first, o, sizeof first);
    int same = 1;
    for (const char *p = o; *p; p = strchr(p, '\n') + 1) {
        if (strncmp(p, first, (size_t)(strchr(first, '\n') - first + 1)) != 0)
            same = 0;
    }
    ck_assert(!same);
    drop(t);
}
END_TEST

START_TEST(test_classified_custom_ads)
{
    static const char *const ads[] = {"one ad", "two ad"};
    notif_server_config cfg = {.interval = -1, .ads = ads, .n_ads = 2, .seed = 7};
    notif_server *s = notif_server_new(NULL, &cfg);
    ck_assert_ptr_nonnull(s);
    transport *t = conn(s);
    feed(t, "classified?\n");
    ck_assert_str_eq(out(t), "one ad\n");
    memory_transport_clear(t);
    notif_server_publish(s, NOTIF_EVENT_CLASSIFIED); /* a new ad: the other one */
    feed(t, "classified?\n");
    ck_assert_str_eq(out(t), "two ad\n");
    drop(t);
    notif_server_free(s);
}
END_TEST

START_TEST(test_unknown_and_exact_match)
{
    transport *t = conn(srv);
    const char *bad[] = {"Random?\n", " random?\n", "random? \n", "random\n", "NOTIFY\n",
                         "quit \n",   "hello\n",    "random?\r\r\n",
                         /* same length, first and last byte as a command: same hash */
                         "rXndom?\n", "randoX?\n", "sxop\n", "qiut\n", "cXassified?\n",
                         "classifieX?\n", "nXtify\n", "notifY\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memory_transport_clear(t);
        feed(t, bad[i]);
        ck_assert_msg(strcmp(out(t), "error: unknown command\n") == 0, "'%s' gave '%s'", bad[i],
                      out(t));
        ck_assert(!transport_disconnecting(t)); /* the connection stays open */
    }
    drop(t);
}
END_TEST

START_TEST(test_empty_lines_ignored)
{
    transport *t = conn(srv);
    feed(t, "\n\r\n\n\n");
    ck_assert_str_eq(out(t), "");
    ck_assert(!transport_disconnecting(t));
    ck_assert_uint_eq(notif_server_get_stats(srv).requests, 0);
    drop(t);
}
END_TEST

START_TEST(test_pipelined_in_order)
{
    static const char *const ads[] = {"the ad"};
    notif_server_config cfg = {.interval = -1, .ads = ads, .n_ads = 1};
    notif_server *s = notif_server_new(NULL, &cfg);
    transport *t = conn(s);
    feed(t, "classified?\nbogus\nnotify\nclassified?\r\nstop\n\nclassified?\n");
    ck_assert_str_eq(out(t), "the ad\nerror: unknown command\nthe ad\nthe ad\n");
    drop(t);
    notif_server_free(s);
}
END_TEST

START_TEST(test_notify_stop)
{
    transport *a = conn(srv), *b = conn(srv);
    feed(a, "notify\n");
    ck_assert_str_eq(out(a), ""); /* no answer to notify */
    ck_assert_int_eq(notif_server_publish(srv, NOTIF_EVENT_RANDOM), 1);
    ck_assert_int_eq(notif_server_publish(srv, NOTIF_EVENT_CLASSIFIED), 1);
    ck_assert_str_eq(out(a), "notif: random\nnotif: classified\n");
    ck_assert_str_eq(out(b), ""); /* not subscribed */
    feed(a, "notify\n"); /* twice: still one subscription */
    ck_assert_uint_eq(notif_server_get_stats(srv).subscribers, 1);
    feed(a, "stop\n");
    memory_transport_clear(a);
    ck_assert_int_eq(notif_server_publish(srv, NOTIF_EVENT_RANDOM), 0);
    ck_assert_str_eq(out(a), "");
    feed(b, "stop\n"); /* not in notification mode: no-op */
    ck_assert_str_eq(out(b), "");
    ck_assert(!transport_disconnecting(b));
    /* requests are answered in notification mode, between notifications */
    feed(b, "notify\n");
    notif_server_publish(srv, NOTIF_EVENT_RANDOM);
    feed(b, "classified?\n");
    notif_server_publish(srv, NOTIF_EVENT_RANDOM);
    const char *o = out(b);
    ck_assert_str_eq(o + strlen(o) - strlen("notif: random\n"), "notif: random\n");
    ck_assert(strncmp(o, "notif: random\n", 14) == 0);
    notif_server_stats st = notif_server_get_stats(srv);
    ck_assert_uint_eq(st.notifications, 4);
    ck_assert_uint_eq(st.events, 5);
    drop(a);
    drop(b);
    ck_assert_uint_eq(notif_server_get_stats(srv).subscribers, 0);
}
END_TEST

/* The registry holds subscribers only: connections that subscribe, stop, subscribe
 * again or go away in any order are each notified exactly while subscribed; the server
 * can be freed with subscribers still connected (nothing leaks: make valgrind). */
START_TEST(test_registry_subscribers)
{
    notif_server_config cfg = {.interval = -1, .seed = 7};
    notif_server *s = notif_server_new(NULL, &cfg);
    transport *t[6];
    for (int i = 0; i < 6; i++)
        t[i] = conn(s);
    for (int i = 0; i < 6; i++)
        feed(t[i], "notify\n");
    ck_assert_uint_eq(notif_server_get_stats(s).subscribers, 6);
    drop(t[0]);   /* the oldest, subscribed */
    drop(t[5]);   /* the newest, subscribed */
    feed(t[2], "stop\n");
    feed(t[3], "stop\nnotify\nstop\nnotify\n");
    ck_assert_uint_eq(notif_server_get_stats(s).subscribers, 3);
    ck_assert_int_eq(notif_server_publish(s, NOTIF_EVENT_RANDOM), 3);
    ck_assert_str_eq(out(t[1]), "notif: random\n");
    ck_assert_str_eq(out(t[2]), "");
    ck_assert_str_eq(out(t[3]), "notif: random\n");
    ck_assert_str_eq(out(t[4]), "notif: random\n");
    drop(t[2]); /* not subscribed */
    ck_assert_int_eq(notif_server_publish(s, NOTIF_EVENT_RANDOM), 3);
    ck_assert_uint_eq(notif_server_get_stats(s).clients, 3);
    notif_server_free(s); /* t[1], t[3], t[4] still connected and subscribed */
    for (int i = 1; i <= 4; i++)
        if (i != 2)
            drop(t[i]);
}
END_TEST

START_TEST(test_quit)
{
    static const char *const ads[] = {"ad"};
    notif_server_config cfg = {.interval = -1, .ads = ads, .n_ads = 1};
    notif_server *s = notif_server_new(NULL, &cfg);
    transport *t = conn(s);
    feed(t, "classified?\nquit\nclassified?\n");
    ck_assert_str_eq(out(t), "ad\n"); /* answered before quit, nothing after */
    ck_assert(closing(t));
    ck_assert(!memory_transport_aborted(t)); /* a clean close: flush, then close */
    ck_assert(memory_transport_write_closed(t)); /* our side first: no RST on late input */
    feed(t, "random?\n");                       /* drained, never answered */
    ck_assert_str_eq(out(t), "ad\n");
    ck_assert_int_eq(peer_closes(t), 1);
    memory_transport_free(t);
    ck_assert_uint_eq(notif_server_get_stats(s).clients, 0);
    notif_server_free(s);
}
END_TEST

static char *repeat(char ch, size_t n)
{
    char *s = malloc(n + 1);
    ck_assert_ptr_nonnull(s);
    memset(s, ch, n);
    s[n] = '\0';
    return s;
}

START_TEST(test_line_limit)
{
    char *a1024 = repeat('a', 1024), *a1025 = repeat('a', 1025);
    /* 1024 bytes: accepted (and unknown), with LF or CRLF */
    transport *t = conn(srv);
    feed(t, a1024);
    feed(t, "\n");
    feed(t, a1024);
    feed(t, "\r\n");
    ck_assert_str_eq(out(t), "error: unknown command\nerror: unknown command\n");
    ck_assert(!transport_disconnecting(t));
    /* 1024 bytes and a CR, the LF still to come: wait for it */
    memory_transport_clear(t);
    feed(t, a1024);
    feed(t, "\r");
    ck_assert(!transport_disconnecting(t));
    feed(t, "\nrandom?\n");
    ck_assert(strncmp(out(t), "error: unknown command\n", 23) == 0);
    ck_assert(!transport_disconnecting(t));
    drop(t);

    /* 1025 bytes then LF: too long */
    t = conn(srv);
    feed(t, "random?\n");
    feed(t, a1025);
    feed(t, "\nrandom?\n");
    const char *o = out(t);
    ck_assert_msg(strstr(o, "\nerror: line too long\n") && is_number_line(o, (size_t)(strchr(o, '\n') - o + 1)),
                  "got '%s'", o);
    ck_assert(closing(t));
    ck_assert(!memory_transport_aborted(t));
    drop(t);

    /* 1025 bytes without LF, in one read: too long at once */
    t = conn(srv);
    feed(t, "random?\nrandom?\n");
    feed(t, a1025);
    o = out(t);
    ck_assert_int_eq(strcmp(o + strlen(o) - 21, "error: line too long\n"), 0);
    ck_assert_uint_eq(count_lines(o), 3);
    ck_assert(closing(t));
    drop(t);
    free(a1024);
    free(a1025);
}
END_TEST

START_TEST(test_huge_line)
{
    /* 1 MiB without a newline, in one read and in 4 KiB pieces */
    size_t n = 1024 * 1024;
    char *big = repeat('x', n);
    for (int mode = 0; mode < 2; mode++) {
        transport *t = conn(srv);
        feed(t, "random?\n");
        if (mode == 0) {
            memory_transport_receive(t, big, n);
        } else {
            for (size_t off = 0; off < n; off += 4096)
                memory_transport_receive(t, big + off, 4096);
        }
        const char *o = out(t);
        ck_assert_uint_eq(count_lines(o), 2);
        ck_assert_int_eq(strcmp(strchr(o, '\n') + 1, "error: line too long\n"), 0);
        ck_assert(closing(t));
        drop(t);
    }
    free(big);
    ck_assert_uint_eq(notif_server_get_stats(srv).clients, 0);
}
END_TEST

/* Every output line must be an answer the protocol allows. */
static void check_all_lines_valid(const char *o, size_t len)
{
    const char *p = o, *end = o + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        ck_assert_msg(nl != NULL, "output ends without LF");
        size_t l = (size_t)(nl - p + 1);
        int ok = is_number_line(p, l) || (l == 23 && memcmp(p, "error: unknown command\n", 23) == 0) ||
                 (l == 21 && memcmp(p, "error: line too long\n", 21) == 0) ||
                 memcmp(p, "nice flat", 9) == 0 || l > 10; /* an ad */
        ck_assert_msg(ok, "unexpected line '%.*s'", (int)l, p);
        p = nl + 1;
    }
}

START_TEST(test_random_binary)
{
    /* random bytes, NULs included, in random-sized reads: never a crash, only valid lines,
     * and the connection is either open or closing with an error line */
    unsigned seed = 12345;
    for (int round = 0; round < 50; round++) {
        transport *t = conn(srv);
        char buf[3000];
        for (int k = 0; k < 20 && !closing(t); k++) {
            size_t n = 1 + (size_t)(rand_r(&seed) % sizeof buf);
            for (size_t i = 0; i < n; i++) {
                unsigned r = (unsigned)rand_r(&seed);
                /* plenty of LFs so that many lines are complete */
                buf[i] = (r % 7 == 0) ? '\n' : (char)(r >> 8);
            }
            memory_transport_receive(t, buf, n);
        }
        size_t len;
        const char *o = memory_transport_value(t, &len);
        check_all_lines_valid(o, len);
        drop(t);
    }
    ck_assert_uint_eq(notif_server_get_stats(srv).clients, 0);
}
END_TEST

START_TEST(test_nul_bytes)
{
    transport *t = conn(srv);
    memory_transport_receive(t, "random?\0\n\0\nrand\0om?\nrandom?\n", 28);
    const char *o = out(t);
    ck_assert(strncmp(o, "error: unknown command\nerror: unknown command\nerror: unknown command\n", 69) == 0);
    ck_assert(is_number_line(o + 69, strlen(o + 69)));
    ck_assert(!transport_disconnecting(t));
    drop(t);
}
END_TEST

START_TEST(test_crlf_lf_mixed)
{
    static const char *const ads[] = {"ad"};
    notif_server_config cfg = {.interval = -1, .ads = ads, .n_ads = 1};
    notif_server *s = notif_server_new(NULL, &cfg);
    transport *t = conn(s);
    feed(t, "classified?\r\nclassified?\nclassified?\r\n\r\n\nclassified?\n");
    ck_assert_str_eq(out(t), "ad\nad\nad\nad\n");
    drop(t);
    notif_server_free(s);
}
END_TEST

START_TEST(test_10000_in_one_write)
{
    size_t n = 10000;
    char *req = malloc(n * 8);
    for (size_t i = 0; i < n; i++)
        memcpy(req + i * 8, "random?\n", 8);
    transport *t = conn(srv);
    memory_transport_receive(t, req, n * 8);
    size_t len;
    const char *o = memory_transport_value(t, &len);
    size_t lines = 0;
    for (const char *p = o; p < o + len;) {
        const char *nl = memchr(p, '\n', (size_t)(o + len - p));
        ck_assert_ptr_nonnull(nl);
        ck_assert(is_number_line(p, (size_t)(nl - p + 1)));
        lines++;
        p = nl + 1;
    }
    ck_assert_uint_eq(lines, n);
    ck_assert_uint_eq(notif_server_get_stats(srv).requests, n);
    drop(t);
    free(req);
}
END_TEST

START_TEST(test_one_byte_at_a_time)
{
    static const char *const ads[] = {"ad"};
    notif_server_config cfg = {.interval = -1, .ads = ads, .n_ads = 1};
    notif_server *s = notif_server_new(NULL, &cfg);
    transport *t = conn(s);
    const char *in = "classified?\r\nbad\n\nnotify\nclassified?\nquit\nclassified?\n";
    for (const char *p = in; *p; p++)
        memory_transport_receive(t, p, 1);
    ck_assert_str_eq(out(t), "ad\nerror: unknown command\nad\n");
    ck_assert(closing(t));
    drop(t);
    notif_server_free(s);
}
END_TEST

START_TEST(test_half_close)
{
    static const char *const ads[] = {"ad"};
    notif_server_config cfg = {.interval = -1, .ads = ads, .n_ads = 1};
    notif_server *s = notif_server_new(NULL, &cfg);
    transport *t = conn(s);
    feed(t, "classified?\nclassified?\nclassi"); /* the unfinished line is ignored */
    memory_transport_receive_eof(t);
    ck_assert_str_eq(out(t), "ad\nad\n");
    ck_assert(transport_disconnecting(t)); /* flush, then close */
    ck_assert(!memory_transport_aborted(t));
    drop(t);
    notif_server_free(s);
}
END_TEST

START_TEST(test_max_clients)
{
    notif_server_config cfg = {.interval = -1, .max_clients = 2};
    notif_server *s = notif_server_new(NULL, &cfg);
    transport *a = conn(s), *b = conn(s), *c = conn(s);
    ck_assert_str_eq(out(c), "error: server full\n");
    ck_assert(transport_disconnecting(c));
    feed(c, "random?\n"); /* ignored */
    ck_assert_str_eq(out(c), "error: server full\n");
    ck_assert(!transport_disconnecting(a) && !transport_disconnecting(b));
    drop(c);
    drop(a); /* a place frees up */
    transport *d = conn(s);
    ck_assert_str_eq(out(d), "");
    ck_assert(!transport_disconnecting(d));
    notif_server_stats st = notif_server_get_stats(s);
    ck_assert_uint_eq(st.refused, 1);
    ck_assert_uint_eq(st.connections, 3);
    drop(b);
    drop(d);
    notif_server_free(s);
}
END_TEST

START_TEST(test_slow_subscriber_cap)
{
    notif_server_config cfg = {.interval = -1, .output_cap = 1000};
    notif_server *s = notif_server_new(NULL, &cfg);
    transport *slow = conn(s), *fast = conn(s);
    feed(slow, "notify\n");
    feed(fast, "notify\n");
    int published = 0;
    while (!transport_disconnecting(slow) && published < 1000) {
        notif_server_publish(s, NOTIF_EVENT_RANDOM);
        published++;
        memory_transport_clear(fast); /* fast reads everything */
    }
    ck_assert(memory_transport_aborted(slow));
    ck_assert_int_lt(published, 100);
    /* the fast one goes on */
    notif_server_publish(s, NOTIF_EVENT_RANDOM);
    ck_assert_str_eq(out(fast), "notif: random\n");
    ck_assert(!transport_disconnecting(fast));
    ck_assert_uint_eq(notif_server_get_stats(s).dropped_slow, 1);
    memory_transport_finish(slow);
    memory_transport_free(slow);
    drop(fast);
    notif_server_free(s);
}
END_TEST

static int done_calls;
static void on_done(void *data) { done_calls++; }

START_TEST(test_shutdown)
{
    transport *a = conn(srv), *b = conn(srv);
    feed(a, "random?\nrand");
    done_calls = 0;
    ck_assert_int_eq(notif_server_shutdown(srv, 1.0, on_done, NULL), 2);
    ck_assert(closing(a) && closing(b));
    ck_assert(!memory_transport_aborted(a));
    ck_assert(is_number_line(out(a), strlen(out(a))));
    ck_assert_ptr_null(notif_server_connection(srv)); /* no new connections */
    ck_assert_int_eq(done_calls, 0);
    ck_assert_int_eq(peer_closes(a), 1);
    ck_assert_int_eq(done_calls, 0);
    ck_assert_int_eq(peer_closes(b), 1);
    ck_assert_int_eq(done_calls, 1);
    memory_transport_free(a);
    memory_transport_free(b);
}
END_TEST

START_TEST(test_free_with_open_connections)
{
    notif_server *s = notif_server_new(NULL, NULL);
    transport *t = conn(s);
    feed(t, "notify\n");
    notif_server_free(s); /* aborts it; the connection frees itself when lost */
    ck_assert(memory_transport_aborted(t));
    feed(t, "random?\n"); /* nothing happens */
    memory_transport_finish(t);
    memory_transport_free(t);
}
END_TEST

START_TEST(test_ad_check)
{
    ck_assert_ptr_null(notif_ad_check("nice flat", 9));
    ck_assert_ptr_nonnull(notif_ad_check("", 0));
    ck_assert_ptr_nonnull(notif_ad_check("notif: random", 13));
    ck_assert_ptr_nonnull(notif_ad_check("error: x", 8));
    ck_assert_ptr_nonnull(notif_ad_check("a\nb", 3));
    char *big = repeat('a', 1025);
    ck_assert_ptr_nonnull(notif_ad_check(big, 1025));
    ck_assert_ptr_null(notif_ad_check(big, 1024));
    free(big);
    const char *bad[] = {"error: nope"};
    notif_server_config cfg = {.ads = bad, .n_ads = 1};
    ck_assert_ptr_null(notif_server_new(NULL, &cfg));
    ck_assert_int_eq(errno, EINVAL);
}
END_TEST

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

START_TEST(test_ads_load)
{
    char path[] = "/tmp/notif-ads-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    char **ads;
    size_t n;
    char err[256];

    write_file(path, "first ad\r\nsecond ad\nthird ad");
    ck_assert_int_eq(notif_ads_load(path, &ads, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(ads[0], "first ad");
    ck_assert_str_eq(ads[1], "second ad");
    ck_assert_str_eq(ads[2], "third ad");
    ck_assert_ptr_null(ads[3]);
    notif_server_config cfg = {.interval = -1, .ads = (const char *const *)ads, .n_ads = n};
    notif_server *s = notif_server_new(NULL, &cfg);
    ck_assert_ptr_nonnull(s);
    notif_server_free(s);
    notif_ads_free(ads);

    static const struct { const char *text; const char *want; } bad[] = {
        {"ok\n\nok\n", ":2: bad ad: empty"},
        {"ok\nnotif: random\n", ":2: bad ad: starts with \"notif:\""},
        {"ok\nok\nerror: x\n", ":3: bad ad: starts with \"error:\""},
        {"", "no ads"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(path, bad[i].text);
        ads = NULL;
        ck_assert_int_eq(notif_ads_load(path, &ads, &n, err, sizeof err), -EINVAL);
        ck_assert_msg(strstr(err, bad[i].want) != NULL, "'%s' lacks '%s'", err, bad[i].want);
        ck_assert_ptr_null(ads);
    }
    char *big = repeat('z', 1100);
    write_file(path, big);
    ck_assert_int_eq(notif_ads_load(path, &ads, &n, err, sizeof err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, ":1: bad ad: too long"));
    free(big);
    unlink(path);
    ck_assert_int_eq(notif_ads_load(path, &ads, &n, err, sizeof err), -ENOENT);
    ck_assert_ptr_nonnull(strstr(err, path));
}
END_TEST

START_TEST(test_stats_format)
{
    transport *t = conn(srv);
    feed(t, "random?\nnotify\nbogus\n");
    notif_server_publish(srv, NOTIF_EVENT_RANDOM);
    char line[256];
    notif_server_format_stats(srv, line, sizeof line);
    ck_assert_msg(strstr(line, "connections=1 requests=3 notifications=1 dropped_slow=0") == line,
                  "got '%s'", line);
    drop(t);
}
END_TEST

START_TEST(test_drain_limit)
{
    /* after quit the server drains the peer's input; a peer that never closes its side
     * is aborted after a few seconds (fake clock) */
    reactor *r = reactor_new_with_backend("poll");
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(reactor_use_fake_clock(r, 0), 0);
    notif_server_config cfg = {.interval = -1};
    notif_server *s = notif_server_new(r, &cfg);
    transport *t = conn(s), *idle = conn(s);
    feed(t, "quit\n");
    ck_assert(memory_transport_write_closed(t));
    ck_assert(!memory_transport_aborted(t));
    reactor_advance(r, 2);
    feed(t, "more\n");
    ck_assert(!memory_transport_aborted(t));
    reactor_advance(r, 5);
    ck_assert(memory_transport_aborted(t));
    ck_assert(!closing(idle)); /* an idle connection is not touched */
    memory_transport_finish(t);
    memory_transport_free(t);
    drop(idle);
    notif_server_free(s);
    reactor_free(r);
}
END_TEST

extern Suite *suite_notif_server(void);
Suite *suite_notif_server(void)
{
    Suite *s = suite_create("notif_server");
    TCase *tc = tcase_create("protocol");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_random);
    tcase_add_test(tc, test_random_varies);
    tcase_add_test(tc, test_classified_custom_ads);
    tcase_add_test(tc, test_unknown_and_exact_match);
    tcase_add_test(tc, test_empty_lines_ignored);
    tcase_add_test(tc, test_pipelined_in_order);
    tcase_add_test(tc, test_notify_stop);
    tcase_add_test(tc, test_registry_subscribers);
    tcase_add_test(tc, test_quit);
    tcase_add_test(tc, test_line_limit);
    tcase_add_test(tc, test_half_close);
    tcase_add_test(tc, test_max_clients);
    tcase_add_test(tc, test_slow_subscriber_cap);
    tcase_add_test(tc, test_shutdown);
    tcase_add_test(tc, test_free_with_open_connections);
    tcase_add_test(tc, test_drain_limit);
    tcase_add_test(tc, test_stats_format);
    suite_add_tcase(s, tc);

    tc = tcase_create("bad_input");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_huge_line);
    tcase_add_test(tc, test_random_binary);
    tcase_add_test(tc, test_nul_bytes);
    tcase_add_test(tc, test_crlf_lf_mixed);
    tcase_add_test(tc, test_10000_in_one_write);
    tcase_add_test(tc, test_one_byte_at_a_time);
    suite_add_tcase(s, tc);

    tc = tcase_create("ads");
    tcase_add_test(tc, test_ad_check);
    tcase_add_test(tc, test_ads_load);
    suite_add_tcase(s, tc);
    return s;
}
