/* TLS interop with independent peers, started by the tests on loopback and killed at
 * teardown: `openssl s_client` and `openssl s_server`, and Python's ssl module, against
 * our server and our client. A peer that is not installed: the test says so and skips. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <twistc/tls.h>

#include "helpers.h"
#include "tls_helpers.h"
#include "transport_helpers.h"

static struct th_certs certs;
static void certs_setup(void) { ck_assert_int_eq(th_certs_make(&certs), 0); }
static void certs_teardown(void) { th_certs_remove(&certs); }

static int have(const char *prog)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", prog);
    if (system(cmd) == 0)
        return 1;
    fprintf(stderr, "tls_interop: SKIPPED, %s is not installed\n", prog);
    return 0;
}

/* ---- A child process: stdin is ours to write, stdout is read by the reactor ------- */

struct child {
    pid_t pid;
    int in, out; /* our ends */
    char buf[8192];
    size_t len;
    int eof;
};

static void child_io(reactor *r, int fd, unsigned events, void *data)
{
    (void)events;
    struct child *c = data;
    ssize_t n = read(fd, c->buf + c->len, sizeof c->buf - 1 - c->len);
    if (n > 0) {
        c->len += (size_t)n;
        c->buf[c->len] = '\0';
    } else if (n == 0 || errno != EAGAIN) {
        c->eof = 1;
        reactor_unwatch(r, fd);
    }
}

static void child_start(struct child *c, reactor *r, char *const argv[])
{
    memset(c, 0, sizeof *c);
    int in[2], out[2];
    ck_assert_int_eq(pipe(in), 0);
    ck_assert_int_eq(pipe(out), 0);
    c->pid = fork();
    ck_assert_int_ge(c->pid, 0);
    if (c->pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 2);
        close(in[1]);
        close(out[0]);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    c->in = in[1];
    c->out = out[0];
    fcntl(c->out, F_SETFL, fcntl(c->out, F_GETFL) | O_NONBLOCK);
    fcntl(c->in, F_SETFD, FD_CLOEXEC);
    fcntl(c->out, F_SETFD, FD_CLOEXEC);
    ck_assert_int_eq(reactor_watch(r, c->out, REACTOR_READABLE, child_io, c), 0);
}

static void child_close_stdin(struct child *c)
{
    if (c->in >= 0)
        close(c->in);
    c->in = -1;
}

static void child_stop(struct child *c, reactor *r)
{
    if (!c->eof)
        reactor_unwatch(r, c->out);
    child_close_stdin(c);
    close(c->out);
    kill(c->pid, SIGKILL);
    waitpid(c->pid, NULL, 0);
}

/* Iterates until the child's output holds s and the end of its line (bounded). */
static int line_seen(const struct child *c, const char *s)
{
    const char *p = strstr(c->buf, s);
    return p && strchr(p + strlen(s) - (s[0] && s[strlen(s) - 1] == '\n'), '\n');
}

static int wait_output(reactor *r, struct child *c, const char *s)
{
    for (int i = 0; i < 2000 && !line_seen(c, s) && !c->eof; i++)
        reactor_iterate(r, 0.05);
    return line_seen(c, s);
}

/* ---- Our server, their clients -------------------------------------------------------- */

struct sbed {
    struct tfx x;
    tls_context *ctx;
    char port[16];
};

static void sbed_open(struct sbed *b, int backend)
{
    memset(b, 0, sizeof *b);
    tfx_open(&b->x, backend, TP_ECHO);
    listener_free(b->x.l);
    b->ctx = tls_context_new_server(certs.cert, certs.key, NULL, 0);
    ck_assert_ptr_nonnull(b->ctx);
    b->x.l = reactor_listen_tls(b->x.r, "127.0.0.1", 0, &b->x.srv.f, 0, b->ctx);
    ck_assert_ptr_nonnull(b->x.l);
    b->x.port = listener_port(b->x.l);
    snprintf(b->port, sizeof b->port, "%d", b->x.port);
}

static void sbed_close(struct sbed *b)
{
    tfx_close(&b->x);
    tls_context_unref(b->ctx);
}

static void wait_server_lost(struct sbed *b)
{
    for (int i = 0; i < 2000 && b->x.srv.lost == 0; i++)
        reactor_iterate(b->x.r, 0.05);
}

START_TEST(test_openssl_s_client)
{
    if (!have("openssl"))
        return;
    struct sbed b;
    sbed_open(&b, _i);
    char connect[64];
    snprintf(connect, sizeof connect, "127.0.0.1:%s", b.port);
    char *argv[] = {"openssl", "s_client", "-connect", connect, "-CAfile", certs.ca,
                    "-verify_return_error", "-verify_hostname", "localhost", "-quiet",
                    "-no_ign_eof", NULL};
    struct child c;
    child_start(&c, b.x.r, argv);
    ck_assert_int_eq(write(c.in, "hello from s_client\n", 20), 20);
    ck_assert_msg(wait_output(b.x.r, &c, "hello from s_client\n"), "s_client got: %s", c.buf);
    child_close_stdin(&c); /* s_client sends close_notify and leaves */
    wait_server_lost(&b);
    ck_assert_int_eq(b.x.srv.lost, 1);
    ck_assert_int_eq(b.x.srv.last_lost_kind, PROTOCOL_DONE);
    child_stop(&c, b.x.r);
    sbed_close(&b);
}
END_TEST

static const char py_client[] =
    "import socket, ssl, sys\n"
    "ctx = ssl.create_default_context(cafile=sys.argv[2])\n"
    "s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', int(sys.argv[1]))),\n"
    "                    server_hostname='localhost')\n"
    "s.sendall(b'hello from python\\n')\n"
    "got = b''\n"
    "while not got.endswith(b'\\n'):\n"
    "    got += s.recv(100)\n"
    "print(got.decode().strip(), s.version(), flush=True)\n"
    "s.unwrap().close()\n"
    "print('unwrapped', flush=True)\n";

START_TEST(test_python_client)
{
    if (!have("python3"))
        return;
    struct sbed b;
    sbed_open(&b, _i);
    char *argv[] = {"python3", "-c", (char *)py_client, b.port, certs.ca, NULL};
    struct child c;
    child_start(&c, b.x.r, argv);
    ck_assert_msg(wait_output(b.x.r, &c, "hello from python TLSv1.3\n"), "python: %s", c.buf);
    /* unwrap() is a full close_notify exchange: it returns once we answered */
    ck_assert_msg(wait_output(b.x.r, &c, "unwrapped\n"), "python: %s", c.buf);
    wait_server_lost(&b);
    ck_assert_int_eq(b.x.srv.last_lost_kind, PROTOCOL_DONE);
    child_stop(&c, b.x.r);
    sbed_close(&b);
}
END_TEST

/* ---- Their servers, our client ---------------------------------------------------------- */

struct cbed {
    struct tfx x; /* only its reactor and client factory are used */
    tls_context *ctx;
    struct child c;
};

static int line_done(struct tp *p, const char *data, size_t len)
{
    if (!p->in)
        p->in = calloc(1, 4096);
    if (p->in_len + len >= 4096)
        return -1;
    memcpy(p->in + p->in_len, data, len);
    p->in_len += len;
    if (memchr(p->in, '\n', p->in_len)) {
        snprintf(p->tf->user, 256, "%.*s", (int)p->in_len, p->in);
        p->tf->done = 1;
        transport_lose_connection(p->base.transport);
    }
    return 0;
}

static void say_hello(struct tp *p) { transport_write(p->base.transport, "hello\n", 6); }

static void cbed_run(struct cbed *b, int port, char *answer)
{
    b->x.cli.user = answer;
    b->x.cli.on_made = say_hello;
    b->x.cli.on_data = line_done;
    b->ctx = tls_context_new_client(certs.ca, NULL, NULL, 0);
    ck_assert_ptr_nonnull(b->ctx);
    b->x.conn = reactor_connect_tls(b->x.r, "127.0.0.1", port, &b->x.cli.f, 5, b->ctx);
    ck_assert_ptr_nonnull(b->x.conn);
    for (int i = 0; i < 2000 && b->x.cli.lost == 0 && b->x.cli.failed == 0; i++)
        reactor_iterate(b->x.r, 0.05);
    char why[256] = "";
    if (b->x.cli.failed)
        protocol_reason_format(&b->x.cli.fail, why, sizeof why);
    ck_assert_msg(b->x.cli.failed == 0, "connect to port %d failed: %s (peer said: %s)", port,
                  why, b->c.buf);
}

START_TEST(test_openssl_s_server)
{
    if (!have("openssl"))
        return;
    struct cbed b;
    memset(&b, 0, sizeof b);
    tfx_open(&b.x, _i, TP_RECORD);
    char *argv[] = {"openssl", "s_server", "-accept", "127.0.0.1:0", "-cert", certs.cert,
                    "-key", certs.key, "-naccept", "1", "-rev", NULL};
    child_start(&b.c, b.x.r, argv);
    ck_assert_msg(wait_output(b.x.r, &b.c, "ACCEPT 127.0.0.1:"), "s_server: %s", b.c.buf);
    int port = atoi(strstr(b.c.buf, "ACCEPT 127.0.0.1:") + 17);
    char answer[256] = "";
    cbed_run(&b, port, answer);
    ck_assert_str_eq(answer, "olleh\n"); /* -rev: the line reversed */
    ck_assert_int_eq(b.x.cli.lost_kind[PROTOCOL_DONE], 1);
    child_stop(&b.c, b.x.r);
    tfx_close(&b.x);
    tls_context_unref(b.ctx);
}
END_TEST

static const char py_server[] =
    "import socket, ssl, sys\n"
    "ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n"
    "ctx.load_cert_chain(sys.argv[1], sys.argv[2])\n"
    "ls = socket.create_server(('127.0.0.1', 0))\n"
    "print('port', ls.getsockname()[1], flush=True)\n"
    "c, _ = ls.accept()\n"
    "s = ctx.wrap_socket(c, server_side=True)\n"
    "got = b''\n"
    "while not got.endswith(b'\\n'):\n"
    "    got += s.recv(100)\n"
    "s.sendall(b'python says ' + got)\n"
    "s.unwrap().close()\n"
    "print('unwrapped', flush=True)\n";

START_TEST(test_python_server)
{
    if (!have("python3"))
        return;
    struct cbed b;
    memset(&b, 0, sizeof b);
    tfx_open(&b.x, _i, TP_RECORD);
    char *argv[] = {"python3", "-c", (char *)py_server, certs.cert, certs.key, NULL};
    child_start(&b.c, b.x.r, argv);
    ck_assert_msg(wait_output(b.x.r, &b.c, "port "), "python: %s", b.c.buf);
    int port = atoi(strstr(b.c.buf, "port ") + 5);
    char answer[256] = "";
    cbed_run(&b, port, answer);
    ck_assert_str_eq(answer, "python says hello\n");
    ck_assert_int_eq(b.x.cli.lost_kind[PROTOCOL_DONE], 1);
    ck_assert_msg(wait_output(b.x.r, &b.c, "unwrapped\n"), "python: %s", b.c.buf);
    child_stop(&b.c, b.x.r);
    tfx_close(&b.x);
    tls_context_unref(b.ctx);
}
END_TEST

extern Suite *suite_reactor_tls_interop(void);
Suite *suite_reactor_tls_interop(void)
{
    Suite *s = suite_create("reactor_tls_interop");
    TCase *tc = tcase_create("interop");
    tcase_add_unchecked_fixture(tc, certs_setup, certs_teardown);
    tcase_set_timeout(tc, 30);
    int n = th_backend_count();
    tcase_add_loop_test(tc, test_openssl_s_client, 0, n);
    tcase_add_loop_test(tc, test_python_client, 0, n);
    tcase_add_loop_test(tc, test_openssl_s_server, 0, n);
    tcase_add_loop_test(tc, test_python_server, 0, n);
    suite_add_tcase(s, tc);
    return s;
}
