/* TCP and Unix transports on real loopback sockets, on every backend: listening,
 * connecting (and each way it fails), closing, flow control. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <twistc/transport.h>

#include "helpers.h"
#include "reactor/transport_internal.h"
#include "transport_helpers.h"

#define WAIT 5.0 /* safety limit of every wait, seconds */

START_TEST(test_echo_roundtrip)
{
    struct tfx x;
    tfx_open(&x, _i, TP_ECHO);
    x.srv.on_lost = tp_set_done;
    ck_assert_int_gt(listener_port(x.l), 0);
    ck_assert_int_eq(x.srv.started, 1);

    struct rawc *c = tfx_raw(&x);
    rawc_send(c, "hello", 5);
    c->want = 5;
    ck_assert(th_iterate_until(x.r, &c->done, WAIT));
    ck_assert_uint_eq(c->len, 5);
    ck_assert(memcmp(c->buf, "hello", 5) == 0);
    ck_assert_int_eq(x.srv.made, 1);
    ck_assert_ptr_nonnull(x.srv.last);
    transport *t = x.srv.last->base.transport;
    ck_assert_ptr_nonnull(t);

    /* the addresses */
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    ck_assert_int_eq(transport_host_address(t, (struct sockaddr *)&ss, &sl), 0);
    ck_assert_int_eq(ntohs(((struct sockaddr_in *)&ss)->sin_port), listener_port(x.l));
    sl = sizeof ss;
    ck_assert_int_eq(transport_peer_address(t, (struct sockaddr *)&ss, &sl), 0);
    ck_assert_int_eq(ss.ss_family, AF_INET);
    ck_assert_int_eq(transport_set_nodelay(t, 1), 0);
    ck_assert_int_eq(transport_set_keepalive(t, 1), 0);
    int fd = transport_fd(t);
    int v = 0;
    socklen_t vl = sizeof v;
    ck_assert_int_eq(getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &v, &vl), 0);
    ck_assert_int_ne(v, 0);
    ck_assert(fcntl(fd, F_GETFL) & O_NONBLOCK);
    ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);

    /* the peer closes: a clean loss, exactly once */
    rawc_close(c);
    ck_assert(th_iterate_until(x.r, &x.srv.done, WAIT));
    ck_assert_int_eq(x.srv.lost, 1);
    ck_assert_int_eq(x.srv.last_lost_kind, PROTOCOL_DONE);
    th_iterate_n(x.r, 3);
    ck_assert_int_eq(x.srv.lost, 1);

    listener_free(x.l); /* stops the factory */
    x.l = NULL;
    ck_assert_int_eq(x.srv.stopped, 1);
    tfx_close(&x);
}
END_TEST

START_TEST(test_ipv6_and_port_reuse)
{
    reactor *r = th_reactor(_i);
    struct tfactory tf;
    tf_init(&tf, TP_ECHO);
    listener *l = reactor_listen_tcp(r, "::1", 0, &tf.f, 0);
    if (!l) { /* no IPv6 here */
        reactor_free(r);
        return;
    }
    int port = listener_port(l);
    struct rawc c;
    rawc_connect(&c, r, port, 1);
    rawc_send(&c, "six", 3);
    c.want = 3;
    ck_assert(th_iterate_until(r, &c.done, WAIT));
    ck_assert(memcmp(c.buf, "six", 3) == 0);
    rawc_free(&c);
    /* a second listener on the same port fails at once with a clear error */
    struct tfactory tf2;
    tf_init(&tf2, TP_ECHO);
    errno = 0;
    ck_assert_ptr_null(reactor_listen_tcp(r, "::1", port, &tf2.f, 0));
    ck_assert_int_eq(errno, EADDRINUSE);
    ck_assert_int_eq(tf2.started, 0);
    /* stop_listening frees the port at once */
    ck_assert_int_eq(listener_stop(l), 0);
    ck_assert_int_eq(listener_stop(l), 0);
    listener *l2 = reactor_listen_tcp(r, "::1", port, &tf2.f, 0);
    ck_assert_ptr_nonnull(l2);
    listener_free(l2);
    listener_free(l);
    ck_assert_ptr_null(reactor_listen_tcp(r, "not an address", 0, &tf2.f, 0));
    ck_assert_int_eq(errno, EINVAL);
    th_iterate_n(r, 2);
    reactor_free(r);
}
END_TEST

/* Twisted's doStart/doStop: a factory shared by two listeners starts with the first and
 * stops with the last; used again afterwards, it starts again. */
START_TEST(test_factory_start_stop_shared)
{
    reactor *r = th_reactor(_i);
    struct tfactory tf;
    tf_init(&tf, TP_ECHO);
    listener *a = reactor_listen_tcp(r, "127.0.0.1", 0, &tf.f, 0);
    listener *b = reactor_listen_tcp(r, "127.0.0.1", 0, &tf.f, 0);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(tf.started, 1);
    ck_assert_int_eq(listener_stop(a), 0);
    ck_assert_int_eq(tf.stopped, 0);
    ck_assert_int_eq(listener_stop(b), 0);
    ck_assert_int_eq(tf.stopped, 1);
    listener *c = reactor_listen_tcp(r, "127.0.0.1", 0, &tf.f, 0);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(tf.started, 2);
    listener_free(a);
    listener_free(b);
    reactor_free(r); /* frees c: the factory stops */
    ck_assert_int_eq(tf.stopped, 2);
}
END_TEST

/* A client protocol that sends a greeting on connect and loses the connection once it
 * got it back. */
static void client_greet(struct tp *p)
{
    ck_assert_int_eq(transport_write(p->base.transport, "ping", 4), 0);
}

static int client_data(struct tp *p, const char *data, size_t len)
{
    if (p->in_len + len > p->in_cap) {
        p->in_cap = p->in_len + len + 64;
        p->in = realloc(p->in, p->in_cap);
    }
    memcpy(p->in + p->in_len, data, len);
    p->in_len += len;
    if (p->in_len >= 4) {
        ck_assert(memcmp(p->in, "ping", 4) == 0);
        transport_lose_connection(p->base.transport);
    }
    return 0;
}

/* The client factory's hooks: greet, close once the echo came back, then done. */
static void greeting_client(struct tfactory *cli)
{
    cli->on_made = client_greet;
    cli->on_data = client_data;
    cli->on_lost = tp_set_done;
}

START_TEST(test_client_connect_tcp)
{
    struct tfx x;
    tfx_open(&x, _i, TP_ECHO);
    greeting_client(&x.cli);
    connector *c = tfx_connect(&x);
    ck_assert_int_eq(x.cli.connecting, 1);
    ck_assert_int_eq(x.cli.made, 0); /* never from inside connect */
    ck_assert_int_eq(connector_connect(c), -EBUSY);
    ck_assert(th_iterate_until(x.r, &x.cli.done, WAIT));
    ck_assert_int_eq(x.cli.made, 1);
    ck_assert_int_eq(x.cli.lost, 1);
    ck_assert_int_eq(x.cli.last_lost_kind, PROTOCOL_DONE);
    ck_assert_int_eq(x.cli.client_lost, 1);
    ck_assert_int_eq(x.cli.order_bad, 0);
    ck_assert_int_eq(x.cli.failed, 0);
    ck_assert_int_eq(x.cli.started, 1);
    ck_assert_int_eq(x.cli.stopped, 1);
    ck_assert_ptr_null(connector_transport(c));
    /* the server side sees the clean close too */
    x.srv.on_lost = tp_set_done;
    ck_assert(x.srv.lost == 1 || th_iterate_until(x.r, &x.srv.done, WAIT));
    ck_assert_int_eq(x.srv.lost, 1);

    /* connector_connect reconnects with the same parameters */
    x.cli.done = 0;
    ck_assert_int_eq(connector_connect(c), 0);
    ck_assert(th_iterate_until(x.r, &x.cli.done, WAIT));
    ck_assert_int_eq(x.cli.made, 2);
    ck_assert_int_eq(x.cli.client_lost, 2);
    tfx_close(&x);
}
END_TEST

START_TEST(test_client_hostname)
{
    struct tfx x;
    tfx_open(&x, _i, TP_ECHO);
    greeting_client(&x.cli);
    /* resolved on a worker thread, back through call_from_thread */
    connector *c = reactor_connect_tcp(x.r, "localhost", x.port, &x.cli.f, 5);
    ck_assert_ptr_nonnull(c);
    ck_assert(th_iterate_until(x.r, &x.cli.done, WAIT));
    ck_assert_int_eq(x.cli.made, 1);
    ck_assert_int_eq(x.cli.failed, 0);
    connector_free(c);

    /* a name that does not resolve: a DNS failure with the resolver's code */
    x.cli.done = 0;
    c = reactor_connect_tcp(x.r, "no-such-host.invalid", 80, &x.cli.f, 5);
    ck_assert_ptr_nonnull(c);
    ck_assert(th_iterate_until(x.r, &x.cli.done, 10));
    ck_assert_int_eq(x.cli.failed, 1);
    ck_assert_int_eq(x.cli.fail.kind, PROTOCOL_CONNECT_DNS);
    ck_assert_int_ne(x.cli.fail.gai_err, 0);
    char msg[200];
    protocol_reason_format(&x.cli.fail, msg, sizeof msg);
    ck_assert_ptr_nonnull(strstr(msg, "lookup"));
    connector_free(c);

    /* freeing the reactor with a lookup in flight is safe (this connector is left to
     * reactor_free: tfx_close frees only tfx_connect's) */
    c = reactor_connect_tcp(x.r, "localhost", 9, &x.cli.f, 5);
    ck_assert_ptr_nonnull(c);
    tfx_close(&x);
}
END_TEST

START_TEST(test_connect_refused)
{
    struct tfx x;
    tfx_open(&x, _i, TP_ECHO);
    listener_free(x.l); /* nobody listens on x.port now */
    x.l = NULL;
    tfx_connect(&x);
    ck_assert(th_iterate_until(x.r, &x.cli.done, WAIT));
    ck_assert_int_eq(x.cli.failed, 1);
    ck_assert_int_eq(x.cli.fail.kind, PROTOCOL_CONNECT_REFUSED);
    ck_assert_int_eq(x.cli.fail.err, ECONNREFUSED);
    ck_assert_int_eq(x.cli.made, 0);
    ck_assert_int_eq(x.cli.built, 0);
    ck_assert_int_eq(x.cli.started, 1);
    ck_assert_int_eq(x.cli.stopped, 1);
    th_iterate_n(x.r, 3);
    ck_assert_int_eq(x.cli.failed, 1);
    tfx_close(&x);
}
END_TEST

/* Connect timeout on loopback: a listener whose accept queue is full drops SYNs, so the
 * handshake never completes. */
START_TEST(test_connect_timeout)
{
    reactor *r = th_reactor(_i);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(lfd, 0), 0);
    socklen_t al = sizeof a;
    getsockname(lfd, (struct sockaddr *)&a, &al);
    int fill[8];
    for (int i = 0; i < 8; i++) { /* fill the accept queue (never accepted) */
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        connect(fill[i], (struct sockaddr *)&a, sizeof a);
    }
    struct tfactory cli;
    tf_init(&cli, TP_RECORD);
    connector *c = reactor_connect_tcp(r, "127.0.0.1", ntohs(a.sin_port), &cli.f, 0.3);
    ck_assert_ptr_nonnull(c);
    ck_assert(th_iterate_until(r, &cli.done, WAIT));
    ck_assert_int_eq(cli.failed, 1);
    ck_assert_int_eq(cli.fail.kind, PROTOCOL_CONNECT_TIMEOUT);
    ck_assert_int_eq(cli.fail.err, ETIMEDOUT);
    ck_assert_int_eq(cli.made, 0);
    connector_free(c);
    for (int i = 0; i < 8; i++)
        close(fill[i]);
    close(lfd);
    reactor_free(r);
}
END_TEST

START_TEST(test_stop_connecting)
{
    struct tfx x;
    tfx_open(&x, _i, TP_ECHO);
    connector *c = tfx_connect(&x);
    ck_assert_int_eq(connector_stop_connecting(c), 0);
    ck_assert_int_eq(x.cli.failed, 0); /* from the loop, not from inside the call */
    ck_assert(th_iterate_until(x.r, &x.cli.done, WAIT));
    ck_assert_int_eq(x.cli.failed, 1);
    ck_assert_int_eq(x.cli.fail.kind, PROTOCOL_CONNECT_CANCELLED);
    ck_assert_int_eq(x.cli.made, 0);
    th_iterate_n(x.r, 3);
    ck_assert_int_eq(x.cli.made, 0);
    ck_assert_int_eq(connector_stop_connecting(c), -ENOTCONN);
    tfx_close(&x);
}
END_TEST

START_TEST(test_factory_refuses)
{
    struct tfx x;
    tfx_open(&x, _i, TP_ECHO);
    x.srv.refuse = 1;
    struct rawc *c = tfx_raw(&x);
    ck_assert(th_iterate_until(x.r, &c->done, WAIT));
    ck_assert(c->eof || c->err);
    ck_assert_int_eq(x.srv.made, 0);
    tfx_close(&x);
}
END_TEST

START_TEST(test_client_factory_refuses)
{
    struct tfx x;
    tfx_open(&x, _i, TP_ECHO);
    x.cli.refuse = 1;
    tfx_connect(&x);
    ck_assert(th_iterate_until(x.r, &x.cli.done, WAIT));
    ck_assert_int_eq(x.cli.failed, 1);
    ck_assert_int_eq(x.cli.fail.kind, PROTOCOL_ERROR);
    ck_assert_int_eq(x.cli.made, 0);
    tfx_close(&x);
}
END_TEST

/* lose_connection inside data_received, then write: the write is still sent (Twisted
 * E2), connection_lost comes after the callback returned. */
static int lose_then_write(struct tp *p, const char *data, size_t len)
{
    (void)data;
    (void)len;
    ck_assert_int_eq(transport_lose_connection(p->base.transport), 0);
    ck_assert_int_eq(transport_lose_connection(p->base.transport), 0); /* idempotent */
    ck_assert(transport_disconnecting(p->base.transport));
    ck_assert_int_eq(transport_write(p->base.transport, "bye", 3), 0);
    ck_assert_int_eq(p->lost, 0);
    return 0;
}

START_TEST(test_lose_connection_flushes)
{
    struct tfx x;
    tfx_open(&x, _i, TP_RECORD);
    x.srv.on_data = lose_then_write;
    struct rawc *c = tfx_raw(&x);
    rawc_send(c, "x", 1);
    ck_assert(th_iterate_until(x.r, &c->done, WAIT));
    ck_assert(c->eof);
    ck_assert_uint_eq(c->len, 3);
    ck_assert(memcmp(c->buf, "bye", 3) == 0);
    ck_assert_int_eq(x.srv.lost, 1);
    ck_assert_int_eq(x.srv.last_lost_kind, PROTOCOL_DONE);
    tfx_close(&x);
}
END_TEST

static int write_then_abort(struct tp *p, const char *data, size_t len)
{
    (void)data;
    (void)len;
    char big[4096];
    memset(big, 'a', sizeof big);
    ck_assert_int_eq(transport_write(p->base.transport, big, sizeof big), 0);
    ck_assert_int_eq(transport_abort_connection(p->base.transport), 0);
    ck_assert_int_eq(transport_abort_connection(p->base.transport), 0);
    ck_assert_int_eq(transport_lose_connection(p->base.transport), 0);
    ck_assert_int_eq(transport_write(p->base.transport, "x", 1), 0); /* dropped */
    ck_assert_int_eq(p->lost, 0);
    return 0;
}

START_TEST(test_abort_drops_output)
{
    struct tfx x;
    tfx_open(&x, _i, TP_RECORD);
    x.srv.on_data = write_then_abort;
    x.srv.on_lost = tp_set_done;
    struct rawc *c = tfx_raw(&x);
    rawc_send(c, "x", 1);
    ck_assert(th_iterate_until(x.r, &c->done, WAIT));
    ck_assert_uint_eq(c->len, 0);         /* nothing of the 4 KiB */
    ck_assert_int_eq(c->err, ECONNRESET); /* RST, not FIN */
    ck_assert(x.srv.done || th_iterate_until(x.r, &x.srv.done, WAIT));
    ck_assert_int_eq(x.srv.lost, 1);
    ck_assert_int_eq(x.srv.last_lost_kind, PROTOCOL_ABORTED);
    tfx_close(&x);
}
END_TEST

/* data_received returns an error: closed with PROTOCOL_ERROR, output of that read
 * dropped (Twisted B10: the peer gets 0 bytes). */
static int write_then_fail(struct tp *p, const char *data, size_t len)
{
    transport_write(p->base.transport, data, len);
    return -EPROTO;
}

START_TEST(test_data_received_error)
{
    struct tfx x;
    tfx_open(&x, _i, TP_RECORD);
    x.srv.on_data = write_then_fail;
    x.srv.on_lost = tp_set_done;
    struct rawc *c = tfx_raw(&x);
    rawc_send(c, "echo\n", 5);
    ck_assert(th_iterate_until(x.r, &c->done, WAIT));
    ck_assert_uint_eq(c->len, 0);
    ck_assert(th_iterate_until(x.r, &x.srv.done, WAIT));
    ck_assert_int_eq(x.srv.last_lost_kind, PROTOCOL_ERROR);
    ck_assert_int_eq(x.srv.last_lost_err, EPROTO);
    tfx_close(&x);
}
END_TEST

/* Unix sockets: the same transports. */
static void unix_path(char *buf, size_t n)
{
    snprintf(buf, n, "/tmp/twistc-test-%d-%d.sock", (int)getpid(), rand());
}

START_TEST(test_unix_echo)
{
    reactor *r = th_reactor(_i);
    char path[108];
    unix_path(path, sizeof path);
    struct tfactory srv, cli;
    tf_init(&srv, TP_ECHO);
    tf_init(&cli, TP_RECORD);
    greeting_client(&cli);
    listener *l = reactor_listen_unix(r, path, &srv.f, 0);
    ck_assert_ptr_nonnull(l);
    ck_assert_int_eq(listener_port(l), 0);
    connector *c = reactor_connect_unix(r, path, &cli.f, 5);
    ck_assert_ptr_nonnull(c);
    ck_assert(th_iterate_until(r, &cli.done, WAIT));
    ck_assert_int_eq(cli.made, 1);
    ck_assert_int_eq(cli.last_lost_kind, PROTOCOL_DONE);
    ck_assert_int_eq(transport_set_nodelay(NULL, 1), -EINVAL);
    connector_free(c);
    listener_free(l);
    ck_assert_int_ne(access(path, F_OK), 0); /* the socket file is gone */
    /* nobody there: refused */
    cli.done = 0;
    c = reactor_connect_unix(r, path, &cli.f, 5);
    ck_assert(th_iterate_until(r, &cli.done, WAIT));
    ck_assert_int_eq(cli.fail.kind, PROTOCOL_CONNECT_REFUSED);
    connector_free(c);
    reactor_free(r);
}
END_TEST

/* Reactor shutdown closes open connections without flushing: LOST, err 0. */
static int write_and_stop(struct tp *p, const char *data, size_t len)
{
    (void)data;
    (void)len;
    reactor_call_soon(transport_reactor(p->base.transport), tfx_stop_reactor, NULL);
    return 0;
}

START_TEST(test_shutdown_disconnects_all)
{
    struct tfx x;
    tfx_open(&x, _i, TP_RECORD);
    x.srv.on_data = write_and_stop;
    struct rawc *c = tfx_raw(&x);
    rawc_send(c, "x", 1);
    ck_assert_int_eq(tfx_run(&x, WAIT), 0);
    ck_assert_int_eq(x.srv.made, 1);
    ck_assert_int_eq(x.srv.lost, 1);
    ck_assert_int_eq(x.srv.last_lost_kind, PROTOCOL_LOST);
    ck_assert_int_eq(x.srv.stopped, 1); /* listeners stopped too */
    x.l = NULL;                         /* left to reactor_free, which frees it */
    tfx_close(&x);
}
END_TEST

/* Output cap: a peer that never reads cannot make us buffer without bound. */
static void small_cap(struct tp *p)
{
    ck_assert_int_eq(transport_set_write_limits(p->base.transport, 1024, 0, 64 * 1024), 0);
    ck_assert_int_eq(transport_set_write_limits(p->base.transport, 10, 20, 30), -EINVAL);
}

static int flood(struct tp *p, const char *data, size_t len)
{
    (void)data;
    (void)len;
    static char chunk[16384];
    for (int i = 0; i < 10000; i++) {
        int rc = transport_write(p->base.transport, chunk, sizeof chunk);
        if (rc < 0) {
            ck_assert_int_eq(rc, -ENOBUFS);
            break;
        }
    }
    ck_assert(transport_disconnecting(p->base.transport));
    return 0;
}

START_TEST(test_write_cap)
{
    struct tfx x;
    tfx_open(&x, _i, TP_RECORD);
    x.srv.on_made = small_cap;
    x.srv.on_data = flood;
    x.srv.on_lost = tp_set_done;
    struct rawc *c = tfx_raw(&x);
    reactor_unwatch(x.r, c->fd); /* this peer never reads */
    c->watching = 0;
    rawc_send(c, "x", 1);
    ck_assert(th_iterate_until(x.r, &x.srv.done, WAIT));
    ck_assert_int_eq(x.srv.last_lost_kind, PROTOCOL_ERROR);
    ck_assert_int_eq(x.srv.last_lost_err, ENOBUFS);
    tfx_close(&x);
}
END_TEST


static void write_big_tcp(struct tp *p)
{
    size_t n = 1u << 20;
    char *buf = malloc(n);
    fill_pattern(buf, n, 0);
    ck_assert_int_eq(transport_write(p->base.transport, buf, n), 0);
    free(buf);
}

/* A server that flushes on exit: lose_connection from a BEFORE_SHUTDOWN trigger, hold the
 * shutdown, release it from connection_lost: every byte arrives. */
static struct tp *flush_conn;
static reactor *flush_r;

static void flush_made(struct tp *p)
{
    flush_conn = p;
    write_big_tcp(p);
    reactor_call_soon(transport_reactor(p->base.transport), tfx_stop_reactor, NULL);
}

static void flush_lost(struct tp *p, const protocol_reason *reason)
{
    (void)p;
    ck_assert_int_eq(reason->kind, PROTOCOL_DONE);
    flush_conn = NULL;
    reactor_shutdown_release(flush_r);
}

static void flush_before(reactor *r, void *data)
{
    (void)data;
    if (flush_conn) {
        reactor_shutdown_hold(r);
        transport_lose_connection(flush_conn->base.transport);
    }
}

START_TEST(test_shutdown_flush_with_before_trigger)
{
    struct tfx x;
    tfx_open(&x, _i, TP_RECORD);
    flush_r = x.r;
    flush_conn = NULL;
    x.srv.on_made = flush_made;
    x.srv.on_lost = flush_lost;
    ck_assert_ptr_nonnull(reactor_add_trigger(x.r, REACTOR_BEFORE_SHUTDOWN, flush_before, NULL));
    struct rawc *c = tfx_raw(&x);
    c->check_pattern = 1;
    ck_assert_int_eq(tfx_run(&x, WAIT), 0);
    ck_assert_int_eq(x.srv.lost, 1);
    /* the client reads what the kernel holds for it */
    for (;;) {
        if (c->cap - c->len < 65536) {
            c->cap = c->cap * 2 + 65536;
            c->buf = realloc(c->buf, c->cap);
        }
        ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, MSG_DONTWAIT);
        if (n <= 0)
            break;
        c->len += (size_t)n;
    }
    ck_assert_uint_eq(c->len, 1u << 20);
    c->watching = 0;
    x.l = NULL; /* left to reactor_free, which frees it */
    tfx_close(&x);
}
END_TEST

START_TEST(test_reuseport)
{
#ifdef SO_REUSEPORT
    reactor *r = th_reactor(_i);
    struct tfactory tf;
    tf_init(&tf, TP_ECHO);
    listener *a = reactor_listen_tcp_flags(r, "127.0.0.1", 0, &tf.f, 0, LISTEN_REUSEPORT);
    ck_assert_ptr_nonnull(a);
    listener *b = reactor_listen_tcp_flags(r, "127.0.0.1", listener_port(a), &tf.f, 0,
                                           LISTEN_REUSEPORT);
    ck_assert_ptr_nonnull(b); /* several servers on one port */
    listener_free(a);
    listener_free(b);
    reactor_free(r);
#endif
}
END_TEST

/* pause_producing stops reading (data waits in the kernel); resume delivers it; a FIN
 * that came while paused is noticed only after resume (Twisted E5). */
static void pause_at_once(struct tp *p)
{
    ck_assert_int_eq(transport_pause_producing(p->base.transport), 0);
    ck_assert(transport_paused(p->base.transport));
}

static void lost_after_data(struct tp *p, const protocol_reason *reason)
{
    (void)reason;
    ck_assert_uint_eq(p->in_len, 4); /* the data came first, after resume */
    p->tf->done = 1;
}

START_TEST(test_pause_resume_reading)
{
    struct tfx x;
    tfx_open(&x, _i, TP_RECORD);
    x.srv.on_made = pause_at_once;
    x.srv.on_lost = lost_after_data;
    struct rawc *c = tfx_raw(&x);
    rawc_send(c, "data", 4);
    shutdown(c->fd, SHUT_WR);
    tfx_wait_made(&x, 1, WAIT);
    ck_assert_int_eq(x.srv.made, 1);
    th_iterate_n(x.r, 10);
    for (int i = 0; i < 5; i++)
        reactor_iterate(x.r, 0.02);
    ck_assert_ptr_nonnull(x.srv.last);
    ck_assert_int_eq(x.srv.last->data_calls, 0); /* nothing read while paused */
    ck_assert_int_eq(x.srv.lost, 0);             /* nor the FIN */
    struct tp *p = x.srv.last;
    ck_assert_int_eq(transport_resume_producing(p->base.transport), 0);
    ck_assert(th_iterate_until(x.r, &x.srv.done, WAIT));
    ck_assert_int_eq(x.srv.lost, 1);
    ck_assert_int_eq(x.srv.last_lost_kind, PROTOCOL_DONE);
    tfx_close(&x);
}
END_TEST

extern Suite *suite_reactor_transport_tcp(void);
Suite *suite_reactor_transport_tcp(void)
{
    Suite *s = suite_create("reactor_transport_tcp");
    TCase *tc = tcase_create("tcp");
    tcase_set_timeout(tc, 30);
    int n = th_backend_count();
    tcase_add_loop_test(tc, test_echo_roundtrip, 0, n);
    tcase_add_loop_test(tc, test_ipv6_and_port_reuse, 0, n);
    tcase_add_loop_test(tc, test_factory_start_stop_shared, 0, n);
    tcase_add_loop_test(tc, test_client_connect_tcp, 0, n);
    tcase_add_loop_test(tc, test_connect_refused, 0, n);
    tcase_add_loop_test(tc, test_connect_timeout, 0, n);
    tcase_add_loop_test(tc, test_stop_connecting, 0, n);
    tcase_add_loop_test(tc, test_factory_refuses, 0, n);
    tcase_add_loop_test(tc, test_client_factory_refuses, 0, n);
    tcase_add_loop_test(tc, test_lose_connection_flushes, 0, n);
    tcase_add_loop_test(tc, test_abort_drops_output, 0, n);
    tcase_add_loop_test(tc, test_data_received_error, 0, n);
    tcase_add_loop_test(tc, test_unix_echo, 0, n);
    tcase_add_loop_test(tc, test_shutdown_disconnects_all, 0, n);
    tcase_add_loop_test(tc, test_write_cap, 0, n);
    tcase_add_loop_test(tc, test_shutdown_flush_with_before_trigger, 0, n);
    tcase_add_loop_test(tc, test_reuseport, 0, n);
    tcase_add_loop_test(tc, test_pause_resume_reading, 0, n);
    suite_add_tcase(s, tc);
    /* host names are resolved on a worker thread: also run under `make tsan` */
    TCase *tr = tcase_create("resolve");
    tcase_set_tags(tr, "threads");
    tcase_set_timeout(tr, 30);
    tcase_add_loop_test(tr, test_client_hostname, 0, n);
    suite_add_tcase(s, tr);
    return s;
}
