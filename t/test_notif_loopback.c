/* The notification server over real loopback sockets: the protocol end to end and the
 * bad-input list of the issue, each while another client is being served. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "apps/notif/notif_server.h"
#include <twistc/transport.h>

#include "helpers.h"
#include "notif_helpers.h"

static int is_number(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 5)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* Another client asks random? and must get its answer while the bad one misbehaves. */
static void check_other_served(struct nfx *f)
{
    struct nraw o;
    nraw_connect(&o, f->r, f->port, 0, 1);
    nraw_send_str(&o, "random?\nclassified?\n");
    struct nt_lines want = {&o, 2};
    ck_assert(nt_wait(f->r, nt_pred_lines, &want, 10));
    char line[1100];
    ck_assert(is_number(nraw_line(&o, 0, line, sizeof line)));
    nraw_free(&o);
}

START_TEST(test_session)
{
    struct nfx f;
    notif_server_config cfg = {.interval = -1};
    nfx_open(&f, _i, &cfg);
    struct nraw *c = nfx_client(&f, 0, 1);
    nraw_send_str(c, "random?\r\nclassified?\nnotify\nwhat\n\n");
    struct nt_lines want = {c, 3};
    ck_assert(nt_wait(f.r, nt_pred_lines, &want, 10));
    notif_server_publish(f.s, NOTIF_EVENT_CLASSIFIED);
    want.want = 4;
    ck_assert(nt_wait(f.r, nt_pred_lines, &want, 10));
    nraw_send_str(c, "stop\nrandom?\nquit\nrandom?\n");
    ck_assert(nt_wait(f.r, nt_pred_eof, c, 10));
    char line[1100];
    ck_assert(is_number(nraw_line(c, 0, line, sizeof line)));
    ck_assert(strlen(nraw_line(c, 1, line, sizeof line)) > 0);
    ck_assert_str_eq(nraw_line(c, 2, line, sizeof line), "error: unknown command");
    ck_assert_str_eq(nraw_line(c, 3, line, sizeof line), "notif: classified");
    ck_assert(is_number(nraw_line(c, 4, line, sizeof line)));
    ck_assert_uint_eq(nraw_lines(c), 5); /* nothing after quit */
    ck_assert(c->eof && !c->err);        /* a clean close */
    nfx_close(&f);
}
END_TEST

START_TEST(test_half_close_answers_everything)
{
    struct nfx f;
    nfx_open(&f, _i, NULL);
    struct nraw *c = nfx_client(&f, 0, 1);
    size_t n = 3000;
    char *req = malloc(n * 12);
    for (size_t i = 0; i < n; i++)
        memcpy(req + i * 12, i % 2 ? "random?\n    " : "classified?\n", 12);
    /* "random?\n    " leaves 4 spaces before the next line: make them one unknown line */
    for (size_t i = 1; i < n; i += 2)
        memcpy(req + i * 12 + 8, "bad\n", 4);
    nraw_send(c, req, n * 12);
    free(req);
    nraw_shutdown_wr(c);
    ck_assert(nt_wait(f.r, nt_pred_eof, c, 20));
    ck_assert_uint_eq(nraw_lines(c), n + n / 2);
    ck_assert(!c->err);
    nfx_close(&f);
}
END_TEST

START_TEST(test_huge_line_while_others_served)
{
    struct nfx f;
    nfx_open(&f, 0, NULL);
    struct nraw *c = nfx_client(&f, 0, 1);
    size_t n = 1024 * 1024;
    char *big = malloc(n);
    memset(big, 'x', n);
    nraw_send_str(c, "random?\n");
    nraw_send(c, big, n);
    free(big);
    check_other_served(&f);
    ck_assert(nt_wait(f.r, nt_pred_eof, c, 10));
    char line[1100];
    ck_assert(is_number(nraw_line(c, 0, line, sizeof line)));
    ck_assert_str_eq(nraw_line(c, 1, line, sizeof line), "error: line too long");
    ck_assert_uint_eq(nraw_lines(c), 2);
    nraw_free(c);
    check_other_served(&f);
    nfx_close(&f);
}
END_TEST

START_TEST(test_binary_and_nul)
{
    struct nfx f;
    nfx_open(&f, 0, NULL);
    struct nraw *c = nfx_client(&f, 0, 1);
    unsigned seed = 99;
    size_t n = 256 * 1024;
    char *junk = malloc(n);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned v = (unsigned)rand_r(&seed);
        junk[i] = (v % 9 == 0 || run > 500) ? '\n' : (char)(v >> 8); /* NULs included */
        run = junk[i] == '\n' ? 0 : run + 1;
    }
    nraw_send(c, junk, n);
    nraw_send(c, "\0\0random?\0\n", 11);
    free(junk);
    nraw_shutdown_wr(c);
    check_other_served(&f);
    ck_assert(nt_wait(f.r, nt_pred_eof, c, 20));
    ck_assert(!c->err);
    /* every line is an allowed answer */
    const char *p = c->in, *end = c->in + c->in_len;
    size_t lines = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        ck_assert_ptr_nonnull(nl);
        char line[64];
        size_t l = (size_t)(nl - p);
        ck_assert_uint_lt(l, sizeof line);
        memcpy(line, p, l);
        line[l] = '\0';
        ck_assert_msg(is_number(line) || strcmp(line, "error: unknown command") == 0 ||
                          strncmp(line, "notif:", 6) != 0,
                      "bad line '%s'", line);
        lines++;
        p = nl + 1;
    }
    ck_assert_uint_gt(lines, 1000);
    nfx_close(&f);
}
END_TEST

START_TEST(test_10000_requests_one_write)
{
    struct nfx f;
    nfx_open(&f, _i, NULL);
    struct nraw *c = nfx_client(&f, 0, 1);
    size_t n = 10000;
    nraw_send_randoms(c, n);
    struct nt_lines want = {c, n};
    ck_assert(nt_wait(f.r, nt_pred_lines, &want, 20));
    ck_assert_uint_eq(nraw_lines(c), n);
    ck_assert(!c->eof);
    nfx_close(&f);
}
END_TEST

START_TEST(test_one_byte_at_a_time)
{
    struct nfx f;
    nfx_open(&f, 0, NULL);
    struct nraw *c = nfx_client(&f, 0, 1);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const char *in = "random?\r\nbad\n\nclassified?\n";
    for (const char *p = in; *p; p++) {
        nraw_send(c, p, 1);
        th_iterate_n(f.r, 2);
    }
    struct nt_lines want = {c, 3};
    ck_assert(nt_wait(f.r, nt_pred_lines, &want, 10));
    char line[1100];
    ck_assert(is_number(nraw_line(c, 0, line, sizeof line)));
    ck_assert_str_eq(nraw_line(c, 1, line, sizeof line), "error: unknown command");
    nfx_close(&f);
}
END_TEST

/* A subscriber that never reads is dropped once its output passes the cap; another
 * client keeps being answered meanwhile, and a reading subscriber keeps its stream. */
struct flood {
    struct nfx *f;
    int rounds;
};

static void flood_tick(reactor *r, void *data)
{
    struct flood *fl = data;
    if (notif_server_get_stats(fl->f->s).dropped_slow || fl->rounds >= 2000)
        return;
    fl->rounds++;
    for (int i = 0; i < 200; i++)
        notif_server_publish(fl->f->s, NOTIF_EVENT_RANDOM);
    reactor_call_later(r, 0, flood_tick, fl);
}

static int dropped(void *arg)
{
    struct nfx *f = arg;
    return notif_server_get_stats(f->s).dropped_slow == 1;
}

START_TEST(test_slow_subscriber)
{
    struct nfx f;
    notif_server_config cfg = {.interval = -1, .output_cap = 64 * 1024};
    nfx_open(&f, _i, &cfg);
    struct nraw *slow = nfx_client(&f, 4096, 0); /* never reads, small window */
    struct nraw *reader = nfx_client(&f, 0, 1);
    nraw_send_str(slow, "notify\n");
    nraw_send_str(reader, "notify\n");
    /* both subscribed before the flood */
    for (int i = 0; i < 1000 && notif_server_get_stats(f.s).subscribers < 2; i++)
        reactor_iterate(f.r, 0.05);
    ck_assert_uint_eq(notif_server_get_stats(f.s).subscribers, 2);
    struct flood fl = {.f = &f};
    reactor_call_later(f.r, 0, flood_tick, &fl);
    check_other_served(&f);
    ck_assert(nt_wait(f.r, dropped, &f, 20));
    check_other_served(&f);
    ck_assert(!reader->eof && !reader->err);
    /* the reader gets every notification that was published */
    size_t published = (size_t)notif_server_get_stats(f.s).events;
    struct nt_lines want = {reader, published};
    ck_assert(nt_wait(f.r, nt_pred_lines, &want, 20));
    ck_assert_uint_eq(nraw_lines(reader), published);
    nfx_close(&f);
}
END_TEST

START_TEST(test_reset_with_answers_pending)
{
    struct nfx f;
    nfx_open(&f, _i, NULL);
    for (int k = 0; k < 5; k++) {
        struct nraw c;
        nraw_connect(&c, f.r, f.port, 0, 0);
        nraw_send_randoms(&c, 50000);
        th_iterate_n(f.r, 3 + k); /* some of it read and answered, some not */
        nraw_reset(&c);
        nraw_free(&c);
    }
    check_other_served(&f);
    ck_assert(nfx_wait_clients(&f, 0, 10));
    nfx_close(&f);
}
END_TEST

/* A client that pipelines without reading: the server stops reading it once 64 KiB of
 * answers wait (no memory growth, no drop), and answers everything once it reads. */
static int requests_stalled(void *arg)
{
    static uint64_t last;
    static int same;
    struct nfx *f = arg;
    uint64_t n = notif_server_get_stats(f->s).requests;
    same = n == last ? same + 1 : 0;
    last = n;
    return same > 50; /* 50 iterations without progress */
}

START_TEST(test_pipelining_without_reading_pauses)
{
    struct nfx f;
    nfx_open(&f, _i, NULL);
    struct nraw *c = nfx_client(&f, 8192, 0);
    /* 8 MB of requests, ~6 MB of answers: more than the kernel holds for us (the
     * client's window is 8 KiB, the server's send buffer at most tcp_wmem's 4 MiB). */
    size_t n = 1000000;
    nraw_send_randoms(c, n);
    ck_assert(nt_wait(f.r, requests_stalled, &f, 20));
    notif_server_stats st = notif_server_get_stats(f.s);
    ck_assert_uint_lt(st.requests, n); /* paused, not dropped */
    ck_assert_uint_eq(st.dropped_slow, 0);
    ck_assert_uint_eq(st.clients, 1);
    check_other_served(&f);
    nraw_read_now(c); /* from now on the client reads */
    struct nt_lines want = {c, n};
    ck_assert(nt_wait(f.r, nt_pred_lines, &want, 30));
    ck_assert_uint_eq(nraw_lines(c), n);
    ck_assert(!c->eof && !c->err);
    nfx_close(&f);
}
END_TEST

/* Graceful stop while such a client is paused: the lines the server read are answered
 * once the client reads, then the connection is closed. */
static int shutdown_done;
static void on_shutdown_done(void *data) { shutdown_done = 1; }

START_TEST(test_shutdown_while_paused)
{
    struct nfx f;
    nfx_open(&f, 0, NULL);
    struct nraw *c = nfx_client(&f, 8192, 0);
    size_t n = 1000000;
    nraw_send_randoms(c, n);
    ck_assert(nt_wait(f.r, requests_stalled, &f, 20));
    shutdown_done = 0;
    ck_assert_int_eq(notif_server_shutdown(f.s, 20, on_shutdown_done, NULL), 1);
    nraw_read_now(c);
    ck_assert(nt_wait(f.r, nt_pred_eof, c, 30));
    nraw_shutdown_wr(c); /* a client that closes on EOF: the server need not wait */
    ck_assert(nt_wait(f.r, nt_pred_flag, &shutdown_done, 10));
    uint64_t answered = notif_server_get_stats(f.s).requests;
    ck_assert_uint_eq(nraw_lines(c), answered);
    ck_assert_uint_gt(answered, 0);
    ck_assert_uint_eq(notif_server_get_stats(f.s).dropped_slow, 0);
    nfx_close(&f);
}
END_TEST

/* quit with more input behind it: closing at once would make the kernel reset the
 * connection and destroy answers the client has not read yet. Every answer arrives,
 * then a clean EOF. */
START_TEST(test_quit_with_input_behind)
{
    struct nfx f;
    nfx_open(&f, _i, NULL);
    struct nraw *c = nfx_client(&f, 4096, 0); /* reads late, with a small window */
    size_t n = 100000;
    nraw_send_randoms(c, n);
    nraw_send_str(c, "quit\n");
    char *junk = malloc(200000);
    memset(junk, 'z', 200000); /* junk after quit, never answered */
    nraw_send(c, junk, 200000);
    free(junk);
    th_iterate_n(f.r, 50);
    nraw_read_now(c);
    ck_assert(nt_wait(f.r, nt_pred_eof, c, 30));
    ck_assert_msg(!c->err, "connection reset: %d", c->err);
    ck_assert_uint_eq(nraw_lines(c), n);
    nfx_close(&f);
}
END_TEST

extern Suite *suite_notif_loopback(void);
Suite *suite_notif_loopback(void)
{
    Suite *s = suite_create("notif_loopback");
    TCase *tc = tcase_create("loopback");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_session, 0, th_backend_count());
    tcase_add_loop_test(tc, test_half_close_answers_everything, 0, th_backend_count());
    tcase_add_test(tc, test_huge_line_while_others_served);
    tcase_add_test(tc, test_binary_and_nul);
    tcase_add_loop_test(tc, test_10000_requests_one_write, 0, th_backend_count());
    tcase_add_test(tc, test_one_byte_at_a_time);
    tcase_add_loop_test(tc, test_slow_subscriber, 0, th_backend_count());
    tcase_add_loop_test(tc, test_reset_with_answers_pending, 0, th_backend_count());
    tcase_add_loop_test(tc, test_pipelining_without_reading_pauses, 0, th_backend_count());
    tcase_add_test(tc, test_shutdown_while_paused);
    tcase_add_loop_test(tc, test_quit_with_input_behind, 0, th_backend_count());
    suite_add_tcase(s, tc);
    return s;
}
