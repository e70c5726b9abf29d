/* Connecting by host name to every resolved address in turn (reactor/connector.c and
 * reactor/resolve.c). The resolver is replaced through the internal test seam
 * (resolve__getaddrinfo in transport_internal.h) by a fake that returns the addresses a
 * test chose; all of them are loopback (127.0.0.0/8, ::1). Addresses that refuse:
 * 127.0.0.x (x >= 2) and ::1 on a port where only 127.0.0.1 listens; one that fails at
 * once with "unreachable": 127.255.255.255 (the loopback broadcast address; the kernel
 * rejects a TCP connect to it without sending anything). One whose connect stays pending
 * (Linux): a listener with backlog 0 whose accept queue is full drops further SYNs, as a
 * blackholed route would (the staggering tests, "Happy Eyeballs"). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#ifdef __linux__
#include <netinet/tcp.h> /* TCP_INFO: count the attempts still in SYN_SENT */
#endif

#include <twistc/transport.h>

#include "helpers.h"
#include "reactor/transport_internal.h"
#include "transport_helpers.h"

#define WAIT 5.0 /* safety limit of every real-clock wait, seconds */
#define FAKE_MAX 24

/* ---- The fake resolver ---------------------------------------------------------------
 * Set on the loop thread before the connect; read by the lookup thread, which the
 * connect starts afterwards (thread creation orders the two). */
static const char *fake_addrs[FAKE_MAX];
static int fake_n;
static int fake_err;       /* returned instead of addresses when non-zero */
static int fake_unix_only; /* answer with one AF_UNIX entry (unusable for TCP) */
static int fake_calls;     /* read only after the answer came back to the loop */

struct fake_ai {
    struct addrinfo ai;
    struct sockaddr_storage ss;
};

static int fake_gai(const char *host, const char *service, const struct addrinfo *hints,
                    struct addrinfo **res)
{
    (void)host;
    (void)service;
    (void)hints;
    fake_calls++;
    *res = NULL;
    if (fake_err)
        return fake_err;
    struct addrinfo **tail = res;
    for (int i = 0; i < (fake_unix_only ? 1 : fake_n); i++) {
        struct fake_ai *f = calloc(1, sizeof *f);
        if (!f)
            return EAI_MEMORY; /* (what was built so far is freed by the caller) */
        f->ai.ai_socktype = SOCK_STREAM;
        f->ai.ai_addr = (struct sockaddr *)&f->ss;
        if (fake_unix_only) {
            f->ai.ai_family = AF_UNIX;
            f->ss.ss_family = AF_UNIX;
            f->ai.ai_addrlen = sizeof(sa_family_t) + 2;
        } else if (strchr(fake_addrs[i], ':')) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&f->ss;
            a->sin6_family = AF_INET6;
            inet_pton(AF_INET6, fake_addrs[i], &a->sin6_addr);
            f->ai.ai_family = AF_INET6;
            f->ai.ai_addrlen = sizeof *a;
        } else {
            struct sockaddr_in *a = (struct sockaddr_in *)&f->ss;
            a->sin_family = AF_INET;
            inet_pton(AF_INET, fake_addrs[i], &a->sin_addr);
            f->ai.ai_family = AF_INET;
            f->ai.ai_addrlen = sizeof *a;
        }
        *tail = &f->ai;
        tail = &f->ai.ai_next;
    }
    return 0;
}

/* A resolver that does not answer until the test writes a byte to gate[1]. */
static int gate[2] = {-1, -1};
static volatile int gated_returned; /* the lookup thread is past the fake resolver */

static int gated_gai(const char *host, const char *service, const struct addrinfo *hints,
                     struct addrinfo **res)
{
    char b;
    while (read(gate[0], &b, 1) < 0 && errno == EINTR)
        ;
    int rc = fake_gai(host, service, hints, res);
    __atomic_store_n(&gated_returned, 1, __ATOMIC_RELEASE);
    return rc;
}

static void fake_free(struct addrinfo *ai)
{
    while (ai) {
        struct addrinfo *next = ai->ai_next;
        free(ai); /* the struct fake_ai it starts */
        ai = next;
    }
}

static void seam_setup(void)
{
    fake_n = fake_err = fake_unix_only = fake_calls = 0;
    resolve__getaddrinfo = fake_gai;
    resolve__freeaddrinfo = fake_free;
}

static void seam_teardown(void)
{
    resolve__getaddrinfo = getaddrinfo;
    resolve__freeaddrinfo = freeaddrinfo;
}

static void fake_set(int n, const char *const *addrs)
{
    ck_assert_int_le(n, FAKE_MAX);
    for (int i = 0; i < n; i++)
        fake_addrs[i] = addrs[i];
    fake_n = n;
}

/* "::1" if this machine has it (then a refused v6 attempt is tried), else 127.0.0.2. */
static const char *refusing_v6_or_v4(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return "127.0.0.2";
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok ? "::1" : "127.0.0.2";
}

/* Iterates a fake-clock reactor (polls never block) until the lookup's answer is back
 * and the first attempt has begun; bounded in iterations. */
static void wait_resolved(reactor *r, connector *c, const int *done)
{
    for (int i = 0; i < 2000000 && connector__attempt(c, NULL) < 0 && !*done; i++)
        ck_assert_int_eq(reactor_iterate(r, 0), 0);
    ck_assert_msg(connector__attempt(c, NULL) >= 0 || *done, "lookup answer never came");
}

/* ---- Tests ----------------------------------------------------------------------------- */

/* The situation that motivated it: "localhost" -> ::1 first, 127.0.0.1 second, a server
 * bound to 127.0.0.1 only. The first address refuses, the second connects. */
START_TEST(test_second_address_connects)
{
    struct tfx x;
    tfx_open(&x, _i, TP_ECHO);
    const char *addrs[] = {refusing_v6_or_v4(), "127.0.0.1"};
    fake_set(2, addrs);
    x.conn = reactor_connect_tcp(x.r, "fake.test", x.port, &x.cli.f, WAIT);
    ck_assert_ptr_nonnull(x.conn);
    ck_assert(tfx_wait_made(&x, 1, WAIT));
    for (int i = 0; i < 1000 && x.cli.made == 0 && x.cli.failed == 0; i++)
        ck_assert_int_eq(reactor_iterate(x.r, 0.1), 0);
    ck_assert_int_eq(fake_calls, 1);
    ck_assert_int_eq(x.cli.made, 1);
    ck_assert_int_eq(x.cli.failed, 0);
    ck_assert_int_eq(x.cli.connecting, 1); /* started_connecting once, not per address */
    ck_assert_int_eq(x.srv.made, 1);
    /* the transport is on 127.0.0.1 */
    transport *t = connector_transport(x.conn);
    ck_assert_ptr_nonnull(t);
    struct sockaddr_storage peer;
    socklen_t plen = sizeof peer;
    ck_assert_int_eq(transport_peer_address(t, (struct sockaddr *)&peer, &plen), 0);
    ck_assert_int_eq(peer.ss_family, AF_INET);
    ck_assert_uint_eq(ntohl(((struct sockaddr_in *)&peer)->sin_addr.s_addr), INADDR_LOOPBACK);
    tfx_close(&x);
}
END_TEST

static void all_fail(int backend, const char *a0, const char *a1, protocol_reason_kind kind,
                     int err)
{
    struct tfx x;
    tfx_open(&x, backend, TP_ECHO);
    const char *addrs[] = {a0, a1};
    fake_set(2, addrs);
    x.conn = reactor_connect_tcp(x.r, "fake.test", x.port, &x.cli.f, WAIT);
    ck_assert_ptr_nonnull(x.conn);
    ck_assert(th_iterate_until(x.r, &x.cli.done, WAIT));
    ck_assert_int_eq(x.cli.failed, 1);
    ck_assert_int_eq(x.cli.fail.kind, kind);
    ck_assert_int_eq(x.cli.fail.err, err);
    ck_assert_int_eq(x.cli.made, 0);
    ck_assert_int_eq(x.cli.built, 0);
    ck_assert_int_eq(x.cli.started, 1);
    ck_assert_int_eq(x.cli.stopped, 1);
    th_iterate_n(x.r, 5);
    ck_assert_int_eq(x.cli.failed, 1); /* reported once */
    ck_assert_int_eq(x.srv.made, 0);
    tfx_close(&x);
}

/* Every address fails: one report, with the FIRST failure's reason (the two addresses
 * fail differently, so either order shows which one is reported). */
START_TEST(test_all_fail_reports_first)
{
    all_fail(_i, "127.0.0.2", "127.255.255.255", PROTOCOL_CONNECT_REFUSED, ECONNREFUSED);
    all_fail(_i, "127.255.255.255", "127.0.0.2", PROTOCOL_CONNECT_UNREACHABLE, ENETUNREACH);
    all_fail(_i, "127.0.0.2", "127.0.0.3", PROTOCOL_CONNECT_REFUSED, ECONNREFUSED);
}
END_TEST

/* The lookup keeps at most RESOLVE__MAX_ADDRS addresses, and each is tried once, in
 * order: with 20 refusing ones, the attempt index runs 0..15, never past. */
START_TEST(test_cap_and_order)
{
    struct tfx x;
    tfx_open(&x, _i, TP_ECHO);
    static char names[20][16];
    const char *addrs[20];
    for (int i = 0; i < 20; i++) {
        snprintf(names[i], sizeof names[i], "127.0.0.%d", i + 2);
        addrs[i] = names[i];
    }
    fake_set(20, addrs);
    x.conn = reactor_connect_tcp(x.r, "fake.test", x.port, &x.cli.f, WAIT);
    ck_assert_ptr_nonnull(x.conn);
    int max_seen = -1, went_back = 0;
    for (int i = 0; i < 10000 && !x.cli.done; i++) {
        ck_assert_int_eq(reactor_iterate(x.r, 0.2), 0);
        int k = connector__attempt(x.conn, NULL);
        if (k >= 0 && k < max_seen)
            went_back = 1;
        if (k > max_seen)
            max_seen = k;
    }
    ck_assert_int_eq(x.cli.failed, 1);
    ck_assert_int_eq(x.cli.fail.kind, PROTOCOL_CONNECT_REFUSED);
    ck_assert_int_eq(max_seen, RESOLVE__MAX_ADDRS - 1);
    ck_assert_int_eq(went_back, 0);
    tfx_close(&x);
}
END_TEST

/* One deadline for the whole connect, counted from its start (fake clock). The clock
 * moves 0.25 s per step and each step fails at least one refusing address (a step may
 * also start the next one, staggered), so a timer re-armed per attempt would never
 * expire and the 16 addresses would end "refused";
 * with one deadline the connect ends "timed out" after about four attempts. (This needs
 * the refusals to come through the poll, as loopback connects do here: a kernel that
 * refused a non-blocking connect at once would let no fake time pass between attempts.) */
START_TEST(test_deadline_covers_all_attempts)
{
    reactor *r = th_reactor(_i);
    ck_assert_int_eq(reactor_use_fake_clock(r, 100.0), 0);
    static char names[16][16];
    const char *addrs[16];
    for (int i = 0; i < 16; i++) {
        snprintf(names[i], sizeof names[i], "127.0.0.%d", i + 2);
        addrs[i] = names[i];
    }
    fake_set(16, addrs);
    struct tfactory cli;
    tf_init(&cli, TP_RECORD);
    /* port 9 on 127.0.0.x (x >= 2): nobody listens there */
    connector *c = reactor_connect_tcp(r, "fake.test", 9, &cli.f, 1.0);
    ck_assert_ptr_nonnull(c);
    wait_resolved(r, c, &cli.done);
    double t_first = reactor_seconds(r); /* the first attempt began on this time */
    int max_seen = connector__attempt(c, NULL);
    for (int i = 0; i < 100 && !cli.done; i++) {
        ck_assert_int_eq(reactor_advance(r, 0.25), 0);
        if (!cli.done)
            ck_assert_int_eq(reactor_iterate(r, 0), 0);
        int k = connector__attempt(c, NULL);
        if (k > max_seen)
            max_seen = k;
    }
    ck_assert_int_eq(cli.failed, 1);
    ck_assert_msg(cli.fail.kind == PROTOCOL_CONNECT_TIMEOUT, "kind %s after %d attempts",
                  protocol_reason_name(cli.fail.kind), max_seen + 1);
    ck_assert_int_eq(cli.fail.err, ETIMEDOUT);
    ck_assert_int_ge(max_seen, 2);                 /* several attempts were covered ... */
    ck_assert_int_lt(max_seen, 15);                /* ... and not all were made */
    ck_assert(reactor_seconds(r) - t_first <= 1.0 + 0.25 + 1e-9); /* fake time, exact */
    ck_assert_int_eq(cli.made, 0);
    th_iterate_n(r, 5);
    ck_assert_int_eq(reactor_advance(r, 5.0), 0);
    ck_assert_int_eq(cli.failed, 1); /* nothing after the report */
    ck_assert_int_eq(connector__attempt(c, NULL), -1);
    connector_free(c);
    reactor_free(r);
}
END_TEST

/* The deadline counts the lookup too: a resolver that never answers ends in a timeout
 * on time (fake clock), the lookup is dropped, and its late answer changes nothing. */
START_TEST(test_deadline_covers_lookup)
{
    reactor *r = th_reactor(_i);
    ck_assert_int_eq(reactor_use_fake_clock(r, 100.0), 0);
    ck_assert_int_eq(pipe(gate), 0);
    gated_returned = 0;
    resolve__getaddrinfo = gated_gai;
    const char *addrs[] = {"127.0.0.1"};
    fake_set(1, addrs);
    struct tfactory cli;
    tf_init(&cli, TP_RECORD);
    connector *c = reactor_connect_tcp(r, "fake.test", 9, &cli.f, 1.0);
    ck_assert_ptr_nonnull(c);
    th_iterate_n(r, 5);
    ck_assert_int_eq(cli.failed, 0); /* still looking up */
    ck_assert_int_eq(reactor_advance(r, 0.5), 0);
    ck_assert_int_eq(cli.failed, 0);
    ck_assert_int_eq(reactor_advance(r, 0.5), 0); /* 1 s after the connect */
    ck_assert_int_eq(cli.failed, 1);
    ck_assert_int_eq(cli.fail.kind, PROTOCOL_CONNECT_TIMEOUT);
    ck_assert_int_eq(cli.fail.err, ETIMEDOUT);
    ck_assert_int_eq(write(gate[1], "x", 1), 1); /* now the resolver answers */
    for (int i = 0; i < 2000000 && !__atomic_load_n(&gated_returned, __ATOMIC_ACQUIRE); i++)
        ck_assert_int_eq(reactor_iterate(r, 0), 0);
    ck_assert(__atomic_load_n(&gated_returned, __ATOMIC_ACQUIRE));
    th_iterate_n(r, 20); /* its answer comes back to the loop and is dropped */
    ck_assert_int_eq(reactor_advance(r, 5.0), 0);
    ck_assert_int_eq(cli.failed, 1);
    ck_assert_int_eq(cli.made, 0);
    ck_assert_int_eq(connector__attempt(c, NULL), -1); /* no attempt was started */
    connector_free(c);
    reactor_free(r);
    close(gate[0]);
    close(gate[1]);
    gate[0] = gate[1] = -1;
}
END_TEST

/* Brings the connect to its second address with that attempt's socket open (fake clock:
 * reactor_advance starts the queued attempt without polling). */
static void to_second_attempt(struct tfx *x)
{
    ck_assert_int_eq(reactor_use_fake_clock(x->r, 100.0), 0);
    const char *addrs[] = {"127.0.0.2", "127.0.0.1"};
    fake_set(2, addrs);
    x->conn = reactor_connect_tcp(x->r, "fake.test", x->port, &x->cli.f, WAIT);
    ck_assert_ptr_nonnull(x->conn);
    wait_resolved(x->r, x->conn, &x->cli.done);
    /* from the first attempt, one iteration at most reaches "second address queued" */
    for (int i = 0; i < 1000 && connector__attempt(x->conn, NULL) == 0; i++)
        ck_assert_int_eq(reactor_iterate(x->r, 0), 0);
    int open = 0;
    ck_assert_int_eq(connector__attempt(x->conn, &open), 1);
    if (!open)
        ck_assert_int_eq(reactor_advance(x->r, 0), 0);
    ck_assert_int_eq(connector__attempt(x->conn, &open), 1);
    ck_assert_int_eq(open, 1);
    ck_assert_int_eq(x->cli.failed + x->cli.made, 0);
}

/* Cancel during the second attempt: one CANCELLED report from the loop, nothing after
 * (no connection, no other report), the socket and the address list freed. */
START_TEST(test_cancel_during_second_attempt)
{
    struct tfx x;
    tfx_open(&x, _i, TP_ECHO);
    to_second_attempt(&x);
    ck_assert_int_eq(connector_stop_connecting(x.conn), 0);
    ck_assert_int_eq(x.cli.failed, 0); /* from the loop, not from inside the call */
    th_iterate_n(x.r, 3);
    ck_assert_int_eq(x.cli.failed, 1);
    ck_assert_int_eq(x.cli.fail.kind, PROTOCOL_CONNECT_CANCELLED);
    ck_assert_int_eq(connector__attempt(x.conn, NULL), -1);
    th_iterate_n(x.r, 5);
    ck_assert_int_eq(reactor_advance(x.r, 2 * WAIT), 0); /* past the old deadline */
    th_iterate_n(x.r, 3);
    ck_assert_int_eq(x.cli.failed, 1);
    ck_assert_int_eq(x.cli.made, 0);
    ck_assert_int_eq(x.cli.built, 0);
    ck_assert_int_eq(x.cli.stopped, 1);
    /* and it can connect again afterwards, by name, to the same addresses */
    ck_assert_int_eq(connector_connect(x.conn), 0);
    wait_resolved(x.r, x.conn, &x.cli.done);
    for (int i = 0; i < 10000 && !x.cli.made && x.cli.failed == 1; i++) {
        ck_assert_int_eq(reactor_iterate(x.r, 0), 0);
    }
    ck_assert_int_eq(x.cli.made, 1);
    ck_assert_int_eq(x.cli.failed, 1);
    tfx_close(&x);
}
END_TEST

/* connector_free during the second attempt: silent (no report), nothing leaked. */
START_TEST(test_free_during_second_attempt)
{
    struct tfx x;
    tfx_open(&x, _i, TP_ECHO);
    to_second_attempt(&x);
    connector_free(x.conn);
    x.conn = NULL;
    th_iterate_n(x.r, 5);
    ck_assert_int_eq(reactor_advance(x.r, 2 * WAIT), 0);
    ck_assert_int_eq(x.cli.failed, 0);
    ck_assert_int_eq(x.cli.made, 0);
    ck_assert_int_eq(x.cli.stopped, 1);
    tfx_close(&x);
}
END_TEST

/* The distinct reasons stay: a lookup failure is DNS with the resolver's code, an
 * answer with no IPv4/IPv6 address too; a numeric address never asks the resolver. */
START_TEST(test_dns_and_numeric)
{
    struct tfx x;
    tfx_open(&x, _i, TP_ECHO);
    fake_err = EAI_NONAME;
    connector *c = reactor_connect_tcp(x.r, "fake.test", x.port, &x.cli.f, WAIT);
    ck_assert_ptr_nonnull(c);
    ck_assert(th_iterate_until(x.r, &x.cli.done, WAIT));
    ck_assert_int_eq(x.cli.fail.kind, PROTOCOL_CONNECT_DNS);
    ck_assert_int_eq(x.cli.fail.gai_err, EAI_NONAME);
    connector_free(c);

    x.cli.done = 0;
    fake_err = 0;
    fake_unix_only = 1;
    c = reactor_connect_tcp(x.r, "fake.test", x.port, &x.cli.f, WAIT);
    ck_assert_ptr_nonnull(c);
    ck_assert(th_iterate_until(x.r, &x.cli.done, WAIT));
    ck_assert_int_eq(x.cli.fail.kind, PROTOCOL_CONNECT_DNS);
    ck_assert_int_eq(x.cli.fail.gai_err, EAI_FAMILY);
    connector_free(c);
    ck_assert_int_eq(fake_calls, 2);

    x.cli.done = 0;
    c = reactor_connect_tcp(x.r, "127.0.0.2", x.port, &x.cli.f, WAIT);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(connector__attempt(c, NULL), -1); /* no address list */
    ck_assert(th_iterate_until(x.r, &x.cli.done, WAIT));
    ck_assert_int_eq(x.cli.fail.kind, PROTOCOL_CONNECT_REFUSED);
    ck_assert_int_eq(x.cli.failed, 3);
    ck_assert_int_eq(fake_calls, 2);
    connector_free(c);
    tfx_close(&x);
}
END_TEST

#ifdef __linux__
/* ---- Staggered attempts (RFC 8305 "Happy Eyeballs"), Linux only ---------------------
 * A listener on ip:port with backlog 0 and its accept queue filled (never accepted):
 * the kernel drops further SYNs, so a connect to it stays "in progress", like one to a
 * blackholed address. Port 0: any free port (returned). */
struct pending {
    int lfd;
    int fill[8];
};

static int pending_open(struct pending *p, const char *ip, int port)
{
    p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(p->lfd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    ck_assert_int_eq(inet_pton(AF_INET, ip, &a.sin_addr), 1);
    ck_assert_int_eq(bind(p->lfd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(p->lfd, 0), 0);
    socklen_t al = sizeof a;
    ck_assert_int_eq(getsockname(p->lfd, (struct sockaddr *)&a, &al), 0);
    for (int i = 0; i < 8; i++) { /* fill the accept queue (as test_connect_timeout) */
        p->fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(p->fill[i], 0);
        connect(p->fill[i], (struct sockaddr *)&a, sizeof a);
    }
    return ntohs(a.sin_port);
}

static void pending_close(struct pending *p)
{
    for (int i = 0; i < 8; i++)
        close(p->fill[i]);
    close(p->lfd);
}

/* TCP sockets of this process whose connect is in progress (the filling ones included:
 * tests compare with a count taken before the connect). */
static int syn_sent(void)
{
    int n = 0;
    for (int fd = 0; fd < 1024; fd++) {
        struct tcp_info ti;
        socklen_t len = sizeof ti;
        if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
            ti.tcpi_state == TCP_SYN_SENT)
            n++;
    }
    return n;
}

/* Iterates (fake clock: no time passes) until the client connected and the server
 * accepted, or the connect failed; bounded. */
static void until_made(struct tfx *x)
{
    for (int i = 0; i < 100000 && !(x->cli.made && x->srv.made) && !x->cli.failed; i++)
        ck_assert_int_eq(reactor_iterate(x->r, 0), 0);
    ck_assert_int_eq(x->cli.failed, 0);
    ck_assert_int_eq(x->cli.made, 1);
    ck_assert_int_eq(x->srv.made, 1);
}

static void assert_peer_is_127_0_0_1(connector *c)
{
    transport *t = connector_transport(c);
    ck_assert_ptr_nonnull(t);
    struct sockaddr_storage peer;
    socklen_t plen = sizeof peer;
    ck_assert_int_eq(transport_peer_address(t, (struct sockaddr *)&peer, &plen), 0);
    ck_assert_int_eq(peer.ss_family, AF_INET);
    ck_assert_uint_eq(ntohl(((struct sockaddr_in *)&peer)->sin_addr.s_addr), INADDR_LOOPBACK);
}

/* [pending, listening]: the second attempt starts 0.25 s (fake time) after the first,
 * not before, while the first keeps running; it connects, and the first is closed. */
START_TEST(test_stagger_pending_then_listening)
{
    struct tfx x;
    tfx_open(&x, _i, TP_ECHO);
    ck_assert_int_eq(reactor_use_fake_clock(x.r, 100.0), 0);
    struct pending p;
    pending_open(&p, "127.0.0.2", x.port); /* same port, another loopback address */
    int base = syn_sent();
    const char *addrs[] = {"127.0.0.2", "127.0.0.1"};
    fake_set(2, addrs);
    x.conn = reactor_connect_tcp(x.r, "fake.test", x.port, &x.cli.f, WAIT);
    ck_assert_ptr_nonnull(x.conn);
    wait_resolved(x.r, x.conn, &x.cli.done);
    double t0 = reactor_seconds(x.r);
    int open = 0;
    th_iterate_n(x.r, 20);
    ck_assert_int_eq(connector__attempt(x.conn, &open), 0);
    ck_assert_int_eq(open, 1);
    ck_assert_int_eq(syn_sent() - base, 1);
    ck_assert_int_eq(reactor_advance(x.r, 0.125), 0); /* not yet */
    th_iterate_n(x.r, 20);
    ck_assert_int_eq(connector__attempt(x.conn, NULL), 0);
    ck_assert_int_eq(x.cli.made + x.cli.failed, 0);
    ck_assert_int_eq(reactor_advance(x.r, 0.125), 0); /* 0.25 s: the second starts */
    ck_assert_int_eq(connector__attempt(x.conn, &open), 1);
    ck_assert_int_eq(open, 1);
    until_made(&x);
    ck_assert(reactor_seconds(x.r) - t0 == 0.25); /* fake time, exact */
    ck_assert_int_eq(x.cli.connecting, 1);
    ck_assert_int_eq(syn_sent(), base); /* the pending attempt was closed */
    assert_peer_is_127_0_0_1(x.conn);
    ck_assert_int_eq(reactor_advance(x.r, 2 * WAIT), 0); /* past the deadline: nothing */
    th_iterate_n(x.r, 5);
    ck_assert_int_eq(x.cli.failed, 0);
    ck_assert_int_eq(x.cli.made, 1);
    tfx_close(&x);
    pending_close(&p);
}
END_TEST

/* Every address pending: one more attempt every 0.25 s, all kept open, then a timeout
 * at the deadline (fake time, exact), which closes them all. */
START_TEST(test_stagger_all_pending_timeout)
{
    reactor *r = th_reactor(_i);
    ck_assert_int_eq(reactor_use_fake_clock(r, 100.0), 0);
    struct pending p;
    int port = pending_open(&p, "127.0.0.2", 0);
    int base = syn_sent();
    const char *addrs[] = {"127.0.0.2", "127.0.0.2", "127.0.0.2"};
    fake_set(3, addrs);
    struct tfactory cli;
    tf_init(&cli, TP_RECORD);
    double t0 = reactor_seconds(r);
    connector *c = reactor_connect_tcp(r, "fake.test", port, &cli.f, 1.0);
    ck_assert_ptr_nonnull(c);
    wait_resolved(r, c, &cli.done);
    for (int k = 1; k <= 3; k++) {
        th_iterate_n(r, 10);
        ck_assert_int_eq(connector__attempt(c, NULL), k - 1);
        ck_assert_int_eq(syn_sent() - base, k);
        ck_assert_int_eq(reactor_advance(r, 0.25), 0);
    }
    th_iterate_n(r, 10); /* 0.75 s: all three in flight, no fourth address */
    ck_assert_int_eq(syn_sent() - base, 3);
    ck_assert_int_eq(cli.failed, 0);
    ck_assert_int_eq(reactor_advance(r, 0.125), 0);
    ck_assert_int_eq(cli.failed, 0);
    ck_assert_int_eq(reactor_advance(r, 0.125), 0); /* 1 s after the connect */
    ck_assert_int_eq(cli.failed, 1);
    ck_assert_int_eq(cli.fail.kind, PROTOCOL_CONNECT_TIMEOUT);
    ck_assert_int_eq(cli.fail.err, ETIMEDOUT);
    ck_assert(reactor_seconds(r) - t0 == 1.0);
    ck_assert_int_eq(syn_sent(), base); /* every attempt closed */
    ck_assert_int_eq(connector__attempt(c, NULL), -1);
    th_iterate_n(r, 5);
    ck_assert_int_eq(reactor_advance(r, 5.0), 0);
    ck_assert_int_eq(cli.failed, 1);
    ck_assert_int_eq(cli.made, 0);
    ck_assert_int_eq(cli.connecting, 1);
    connector_free(c);
    reactor_free(r);
    pending_close(&p);
}
END_TEST

/* [pending, refusing, listening]: in order; the second starts after the delay, its
 * refusal starts the third at once (no second delay), which connects; the pending
 * first attempt is closed. */
START_TEST(test_stagger_pending_refusing_listening)
{
    struct tfx x;
    tfx_open(&x, _i, TP_ECHO);
    ck_assert_int_eq(reactor_use_fake_clock(x.r, 100.0), 0);
    struct pending p;
    pending_open(&p, "127.0.0.2", x.port);
    int base = syn_sent();
    const char *addrs[] = {"127.0.0.2", "127.0.0.3", "127.0.0.1"};
    fake_set(3, addrs);
    x.conn = reactor_connect_tcp(x.r, "fake.test", x.port, &x.cli.f, WAIT);
    ck_assert_ptr_nonnull(x.conn);
    wait_resolved(x.r, x.conn, &x.cli.done);
    double t0 = reactor_seconds(x.r);
    th_iterate_n(x.r, 20);
    ck_assert_int_eq(connector__attempt(x.conn, NULL), 0);
    ck_assert_int_eq(reactor_advance(x.r, 0.25), 0);
    int open = 0;
    ck_assert_int_ge(connector__attempt(x.conn, &open), 1); /* the refusing one began */
    until_made(&x);
    ck_assert(reactor_seconds(x.r) - t0 == 0.25); /* the third did not wait 0.25 s more */
    ck_assert_int_eq(syn_sent(), base);
    assert_peer_is_127_0_0_1(x.conn);
    ck_assert_int_eq(x.cli.connecting, 1);
    tfx_close(&x);
    pending_close(&p);
}
END_TEST

/* Cancel (or free) while two attempts are in flight: both closed at once, then one
 * CONNECT_CANCELLED from the loop (none after connector_free), nothing after it. */
START_TEST(test_stagger_cancel_two_in_flight)
{
    reactor *r = th_reactor(_i);
    ck_assert_int_eq(reactor_use_fake_clock(r, 100.0), 0);
    struct pending p;
    int port = pending_open(&p, "127.0.0.2", 0);
    int base = syn_sent();
    const char *addrs[] = {"127.0.0.2", "127.0.0.2", "127.0.0.2"};
    fake_set(3, addrs);
    for (int use_free = 0; use_free < 2; use_free++) {
        struct tfactory cli;
        tf_init(&cli, TP_RECORD);
        connector *c = reactor_connect_tcp(r, "fake.test", port, &cli.f, WAIT);
        ck_assert_ptr_nonnull(c);
        wait_resolved(r, c, &cli.done);
        ck_assert_int_eq(reactor_advance(r, 0.25), 0);
        th_iterate_n(r, 10);
        ck_assert_int_eq(connector__attempt(c, NULL), 1);
        ck_assert_int_eq(syn_sent() - base, 2);
        if (use_free) {
            connector_free(c);
            c = NULL;
        } else {
            ck_assert_int_eq(connector_stop_connecting(c), 0);
        }
        ck_assert_int_eq(syn_sent(), base); /* both closed at once */
        ck_assert_int_eq(cli.failed, 0);    /* the report comes from the loop */
        th_iterate_n(r, 5);
        ck_assert_int_eq(reactor_advance(r, 2 * WAIT), 0); /* past every plan */
        th_iterate_n(r, 5);
        ck_assert_int_eq(cli.failed, use_free ? 0 : 1);
        if (!use_free) {
            ck_assert_int_eq(cli.fail.kind, PROTOCOL_CONNECT_CANCELLED);
            ck_assert_int_eq(connector__attempt(c, NULL), -1);
        }
        ck_assert_int_eq(cli.made, 0);
        ck_assert_int_eq(cli.stopped, 1);
        ck_assert_int_eq(syn_sent(), base);
        connector_free(c);
    }
    reactor_free(r);
    pending_close(&p);
}
END_TEST
#endif /* __linux__ */

extern Suite *suite_reactor_connect_addrs(void);
Suite *suite_reactor_connect_addrs(void)
{
    Suite *s = suite_create("reactor_connect_addrs");
    TCase *tc = tcase_create("connect_addrs");
    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, seam_setup, seam_teardown);
    int n = th_backend_count();
    tcase_add_loop_test(tc, test_second_address_connects, 0, n);
    tcase_add_loop_test(tc, test_all_fail_reports_first, 0, n);
    tcase_add_loop_test(tc, test_cap_and_order, 0, n);
    tcase_add_loop_test(tc, test_deadline_covers_all_attempts, 0, n);
    tcase_add_loop_test(tc, test_deadline_covers_lookup, 0, n);
    tcase_add_loop_test(tc, test_cancel_during_second_attempt, 0, n);
    tcase_add_loop_test(tc, test_free_during_second_attempt, 0, n);
    tcase_add_loop_test(tc, test_dns_and_numeric, 0, n);
#ifdef __linux__
    tcase_add_loop_test(tc, test_stagger_pending_then_listening, 0, n);
    tcase_add_loop_test(tc, test_stagger_all_pending_timeout, 0, n);
    tcase_add_loop_test(tc, test_stagger_pending_refusing_listening, 0, n);
    tcase_add_loop_test(tc, test_stagger_cancel_two_in_flight, 0, n);
#endif
    suite_add_tcase(s, tc);
    return s;
}
