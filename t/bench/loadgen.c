#define _GNU_SOURCE
/* loadgen: a bounded loopback load generator for the notification protocol (and for line
 * echo servers), written on plain epoll so that it measures servers without depending on
 * the library under test.
 *
 * C connections each keep P requests in flight: every answer received is replaced by a
 * new request (all the requests owed to one read leave in one write). The run stops at
 * --seconds or after --requests sent, whichever comes first, then waits a bounded time for
 * the answers still owed. Latencies go into a fixed log-linear histogram, so nothing is
 * allocated per request.
 *
 * --tls speaks TLS (client-side OpenSSL, no session reuse: every connection makes a full
 * handshake; the server certificate is verified against --tls-ca FILE, or not at all).
 * --handshakes measures connections instead of requests: each of the C connections
 * connects, handshakes (with --tls), sends one request, reads its answer, closes (after
 * close_notify with --tls) and starts over; --requests then counts such cycles.
 *
 * Output: one line of key=value pairs (easy to read and to parse from scripts).
 * Exit status: 0 ok, 1 protocol error / unanswered requests / lost connections, 2 usage or
 * setup failure. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum { EXPECT_NONE, EXPECT_RANDOM, EXPECT_CLASSIFIED, EXPECT_ECHO, EXPECT_ANY };

#define RBUF_SIZE (64 * 1024)
#define MAX_LINE 4096 /* longest answer line we keep across reads */

struct conn {
	int fd;
	int state;          /* 0 connecting, 1 up, 2 closed, 3 TLS handshake */
	uint32_t inflight;  /* requests sent and not yet answered */
	uint32_t head;      /* ring of send timestamps: index of the oldest */
	uint32_t partial_len;
	char *partial;      /* allocated only when an answer line is split across reads */
	uint64_t *ts;       /* depth entries, sliced from one big array */
	SSL *ssl;           /* with --tls */
};

static struct {
	const char *host;
	int port;
	int conns, depth, addrs, hold, ping, echo, expect;
	double seconds;
	long long requests; /* 0: unlimited */
	const char *request;
	size_t request_len;
	int server_pid;
	int max_pending_connects;
	double drain_seconds;
	int quiet;
	int tls, cycles;    /* --tls, --handshakes */
	const char *tls_ca; /* --tls-ca FILE: verify the server against it */
} opt = {
	.host = "127.0.0.1", .port = 6789, .conns = 1, .depth = 1, .addrs = 1, .ping = 1,
	.seconds = 3, .request = NULL, .server_pid = 0, .max_pending_connects = 512,
	.drain_seconds = 2.0,
};

static volatile sig_atomic_t stop_signal;
static struct conn *conns;
static int epfd;
static char rbuf[RBUF_SIZE];
static char *wbuf; /* depth * (request_len + 1) bytes */

/* counters */
static long long sent, answered, errors, notifs, lost_conns, connected;
static long long cycles_started, cycles_done; /* --handshakes */
static int stopping; /* no new requests once set */
static char first_error[256];

/* ---- histogram: 64 linear sub-buckets per power of two of nanoseconds ---- */
#define HSUB 64
#define HEXP 44
static uint64_t hist[HEXP * HSUB];
static uint64_t hist_count, hist_max;

static void hist_add(uint64_t ns)
{
	unsigned idx;
	if (ns < HSUB) {
		idx = (unsigned)ns;
	} else {
		unsigned e = 63u - (unsigned)__builtin_clzll(ns); /* >= 6 */
		unsigned sub = (unsigned)(ns >> (e - 6)) & (HSUB - 1);
		unsigned bucket = e - 5;
		if (bucket >= HEXP) {
			bucket = HEXP - 1;
			sub = HSUB - 1;
		}
		idx = bucket * HSUB + sub;
	}
	hist[idx]++;
	hist_count++;
	if (ns > hist_max)
		hist_max = ns;
}

/* Upper edge of bucket idx, in ns. */
static uint64_t hist_value(unsigned idx)
{
	unsigned bucket = idx / HSUB, sub = idx % HSUB;
	if (bucket == 0)
		return sub;
	unsigned e = bucket + 5;
	return ((uint64_t)(HSUB + sub + 1) << (e - 6)) - 1;
}

static double hist_quantile_us(double q)
{
	if (!hist_count)
		return 0;
	uint64_t target = (uint64_t)(q * (double)hist_count);
	if (target >= hist_count)
		target = hist_count - 1;
	uint64_t acc = 0;
	for (unsigned i = 0; i < HEXP * HSUB; i++) {
		acc += hist[i];
		if (acc > target) {
			uint64_t v = hist_value(i);
			return (double)(v < hist_max ? v : hist_max) / 1000.0;
		}
	}
	return (double)hist_max / 1000.0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void note_error(const char *fmt, const char *line, size_t len)
{
	errors++;
	if (!first_error[0]) {
		char tmp[96];
		size_t n = len < sizeof tmp - 1 ? len : sizeof tmp - 1;
		memcpy(tmp, line, n);
		tmp[n] = 0;
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)tmp[i] < 32)
				tmp[i] = '?';
		snprintf(first_error, sizeof first_error, fmt, tmp);
	}
}

/* ---- server CPU accounting from /proc ---- */
struct cpu_sample {
	long long utime, stime; /* clock ticks */
	long long run_ns;       /* sum of schedstat run time over the server's threads */
	int ok;
};

static long long read_schedstat(const char *path)
{
	FILE *f = fopen(path, "r");
	long long v = -1;
	if (!f)
		return -1;
	if (fscanf(f, "%lld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

static struct cpu_sample cpu_sample(int pid)
{
	struct cpu_sample s = {0};
	char path[64], buf[1024];
	if (pid <= 0)
		return s;
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return s;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	/* Fields after the command name "(...)": state is field 3; utime 14, stime 15. */
	char *p = strrchr(buf, ')');
	if (!p)
		return s;
	p += 2;
	int field = 3;
	while (*p && field < 14) {
		if (*p == ' ')
			field++;
		p++;
	}
	if (sscanf(p, "%lld %lld", &s.utime, &s.stime) != 2)
		return s;
	/* schedstat of every thread: exact nanoseconds on CPU (user + system). */
	snprintf(path, sizeof path, "/proc/%d/task", pid);
	DIR *d = opendir(path);
	if (!d)
		return s;
	struct dirent *de;
	s.run_ns = 0;
	while ((de = readdir(d))) {
		char tpath[300];
		if (de->d_name[0] == '.')
			continue;
		snprintf(tpath, sizeof tpath, "/proc/%d/task/%s/schedstat", pid, de->d_name);
		long long v = read_schedstat(tpath);
		if (v < 0) {
			s.run_ns = -1;
			break;
		}
		s.run_ns += v;
	}
	closedir(d);
	s.ok = s.run_ns >= 0;
	return s;
}

/* ---- connections ---- */
static void set_nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* ---- TLS (client side) ---- */
static SSL_CTX *tls_ctx;

static int tls_setup(void)
{
	tls_ctx = SSL_CTX_new(TLS_client_method());
	if (!tls_ctx || !SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION)) {
		fprintf(stderr, "loadgen: cannot make a TLS context\n");
		return -1;
	}
	/* 10,000 idle client connections: no record buffers while idle. Read-ahead: one
	 * read() per record. */
	SSL_CTX_set_mode(tls_ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_read_ahead(tls_ctx, 1);
	SSL_CTX_set_session_cache_mode(tls_ctx, SSL_SESS_CACHE_OFF);
	if (opt.tls_ca) {
		if (SSL_CTX_load_verify_locations(tls_ctx, opt.tls_ca, NULL) != 1 ||
		    X509_VERIFY_PARAM_set1_ip_asc(SSL_CTX_get0_param(tls_ctx), opt.host) != 1) {
			fprintf(stderr, "loadgen: cannot use --tls-ca %s for %s\n", opt.tls_ca, opt.host);
			return -1;
		}
		SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_PEER, NULL);
	} else {
		SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
	}
	return 0;
}

static int tls_start(struct conn *c)
{
	c->ssl = SSL_new(tls_ctx);
	if (!c->ssl || !SSL_set_fd(c->ssl, c->fd))
		return -1;
	SSL_set_connect_state(c->ssl);
	return 0;
}

/* One step of the handshake: 1 done, 0 waiting (epoll interest set), -1 failed. */
static int tls_step(struct conn *c, uint32_t idx)
{
	int r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = idx};
		epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
		return 1;
	}
	int e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		struct epoll_event ev = {.events = e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT, .data.u32 = idx};
		epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
		return 0;
	}
	unsigned long err = ERR_get_error();
	char buf[200];
	ERR_error_string_n(err, buf, sizeof buf);
	note_error("TLS handshake failed: %s", buf, strlen(buf));
	ERR_clear_error();
	return -1;
}

static ssize_t tls_send(struct conn *c, const void *p, size_t n)
{
	int w = SSL_write(c->ssl, p, (int)n);
	if (w > 0)
		return w;
	int e = SSL_get_error(c->ssl, w);
	ERR_clear_error();
	errno = e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? EAGAIN : EPIPE;
	return -1;
}

/* Like recv(): bytes, 0 at the end of the stream (close_notify or EOF), -1 with errno. */
static ssize_t tls_recv(struct conn *c, void *p, size_t n)
{
	int r = SSL_read(c->ssl, p, (int)n);
	if (r > 0)
		return r;
	int e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		errno = EAGAIN;
		return -1;
	}
	ERR_clear_error();
	if (e == SSL_ERROR_ZERO_RETURN)
		return 0;
	errno = e == SSL_ERROR_SYSCALL && errno ? errno : ECONNRESET;
	return -1;
}

static int tls_pending(struct conn *c)
{
	return SSL_has_pending(c->ssl);
}

static void tls_close(struct conn *c, int clean)
{
	if (clean && SSL_shutdown(c->ssl) < 0)
		ERR_clear_error();
	SSL_free(c->ssl);
	c->ssl = NULL;
}

static int open_conn(int i, struct sockaddr_in *dst)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (opt.addrs > 1) {
		int one = 1;
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
		struct sockaddr_in src = {.sin_family = AF_INET};
		src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(i % opt.addrs));
		if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) {
			int e = errno;
			close(fd);
			return -e;
		}
	}
	set_nodelay(fd);
	if (connect(fd, (struct sockaddr *)dst, sizeof *dst) < 0 && errno != EINPROGRESS) {
		int e = errno;
		close(fd);
		return -e;
	}
	conns[i].fd = fd;
	conns[i].state = 0;
	struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)i};
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return 0;
}

static void close_conn(struct conn *c, int lost)
{
	if (c->state == 2)
		return;
	if (c->ssl)
		tls_close(c, !lost);
	epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->state = 2;
	if (lost)
		lost_conns++;
	free(c->partial);
	c->partial = NULL;
	c->partial_len = 0;
}

/* Send up to n new requests on c, all in one write; returns 0 or -1 on a dead connection. */
static int send_requests(struct conn *c, uint32_t n, uint64_t t)
{
	if (opt.requests) {
		long long left = opt.requests - sent;
		if (left <= 0)
			return 0;
		if ((long long)n > left)
			n = (uint32_t)left;
	}
	if (!n)
		return 0;
	size_t len = (size_t)n * (opt.request_len + 1);
	ssize_t w = c->ssl ? tls_send(c, wbuf, len) : send(c->fd, wbuf, len, MSG_NOSIGNAL);
	if (w != (ssize_t)len) {
		/* The socket buffer of a fresh loopback connection always takes depth small
		 * requests; a short write means something is badly wrong. */
		note_error("short write or send failure (%s)", w < 0 ? strerror(errno) : "short", w < 0 ? strlen(strerror(errno)) : 5);
		close_conn(c, 1);
		return -1;
	}
	for (uint32_t k = 0; k < n; k++) {
		c->ts[(c->head + c->inflight) % (uint32_t)opt.depth] = t;
		c->inflight++;
	}
	sent += n;
	if (opt.requests && sent >= opt.requests)
		stopping = 1;
	return 0;
}

static int valid_answer(const char *l, size_t n)
{
	switch (opt.expect) {
	case EXPECT_RANDOM: {
		if (n == 0 || n > 5)
			return 0;
		for (size_t i = 0; i < n; i++)
			if (l[i] < '0' || l[i] > '9')
				return 0;
		return 1;
	}
	case EXPECT_CLASSIFIED:
		return n > 0 && !(n >= 6 && memcmp(l, "error:", 6) == 0) && !(n >= 6 && memcmp(l, "notif:", 6) == 0);
	case EXPECT_ECHO:
		return n == opt.request_len && memcmp(l, opt.request, n) == 0;
	case EXPECT_ANY:
		return !(n >= 6 && memcmp(l, "error:", 6) == 0);
	default:
		return 1;
	}
}

/* One answer line (without LF). */
static void on_line(struct conn *c, const char *l, size_t n, uint64_t t)
{
	if (!opt.echo && n >= 7 && memcmp(l, "notif: ", 7) == 0) {
		notifs++;
		return;
	}
	if (c->inflight == 0) {
		note_error("unexpected line: %s", l, n);
		return;
	}
	uint64_t t0 = c->ts[c->head];
	c->head = (c->head + 1) % (uint32_t)opt.depth;
	c->inflight--;
	answered++;
	hist_add(t - t0);
	if (!opt.echo && n >= 6 && memcmp(l, "error:", 6) == 0 && opt.expect != EXPECT_NONE)
		note_error("server error: %s", l, n);
	else if (!valid_answer(l, n))
		note_error("invalid answer: %s", l, n);
}

static void on_readable_once(struct conn *c)
{
	ssize_t r = c->ssl ? tls_recv(c, rbuf, sizeof rbuf) : recv(c->fd, rbuf, sizeof rbuf, 0);
	if (r <= 0) {
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (c->inflight || !stopping)
			note_error("connection lost: %s", r == 0 ? "EOF" : strerror(errno), r == 0 ? 3 : strlen(strerror(errno)));
		close_conn(c, 1);
		return;
	}
	uint64_t t = now_ns();
	uint32_t before = c->inflight;
	const char *p = rbuf, *end = rbuf + r;
	if (c->partial_len) {
		const char *nl = memchr(p, '\n', (size_t)r);
		size_t take = nl ? (size_t)(nl - p) : (size_t)r;
		if (c->partial_len + take > MAX_LINE) {
			note_error("answer line too long%s", "", 0);
			close_conn(c, 1);
			return;
		}
		memcpy(c->partial + c->partial_len, p, take);
		c->partial_len += (uint32_t)take;
		if (!nl)
			return;
		on_line(c, c->partial, c->partial_len, t);
		c->partial_len = 0;
		p = nl + 1;
	}
	for (;;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			break;
		on_line(c, p, (size_t)(nl - p), t);
		p = nl + 1;
	}
	if (p < end) {
		size_t rest = (size_t)(end - p);
		if (rest > MAX_LINE) {
			note_error("answer line too long%s", "", 0);
			close_conn(c, 1);
			return;
		}
		if (!c->partial && !(c->partial = malloc(MAX_LINE))) {
			note_error("out of memory%s", "", 0);
			close_conn(c, 1);
			return;
		}
		memcpy(c->partial, p, rest);
		c->partial_len = (uint32_t)rest;
	}
	if (!stopping && !opt.hold && !opt.cycles && c->inflight < before)
		send_requests(c, before - c->inflight, t);
}

/* With TLS, read-ahead may leave whole records in OpenSSL that the socket (level-
 * triggered epoll) will never report again: read until none is left. */
static void on_readable(struct conn *c)
{
	do
		on_readable_once(c);
	while (c->state == 1 && c->ssl && tls_pending(c));
}

static void on_signal(int sig)
{
	(void)sig;
	stop_signal = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: loadgen [options]\n"
		"  --host A          server address (127.0.0.1)\n"
		"  --port N          server port (6789)\n"
		"  --conns C         connections (1)\n"
		"  --depth P         requests in flight per connection (1)\n"
		"  --request LINE    request line (random?; hello in --echo mode)\n"
		"  --seconds S       measuring time limit (3)\n"
		"  --requests N      stop after N requests sent (whichever comes first)\n"
		"  --addrs N         spread client sockets over 127.0.0.1..127.0.0.N\n"
		"  --expect          validate each answer (random?: 0..99999, classified?: an ad)\n"
		"  --echo            echo mode: each answer must equal the request\n"
		"  --server-pid PID  report the server's CPU time used during the run\n"
		"  --hold            open C connections, ping each once, print 'ready', hold until\n"
		"                    SIGINT/SIGTERM or --seconds\n"
		"  --no-ping         with --hold: do not send the one request per connection\n"
		"  --drain S         time allowed for owed answers after the stop (2)\n"
		"  --max-connecting N  connects in progress at once (512)\n"
		"  --tls             speak TLS (a full handshake per connection)\n"
		"  --tls-ca FILE     with --tls: verify the server's certificate against FILE\n"
		"                    (and its IP address); default: no verification\n"
		"  --handshakes      cycles instead of requests: each connection connects,\n"
		"                    (handshakes,) sends one request, reads the answer, closes,\n"
		"                    starts over; --requests counts cycles\n");
}

/* ---- --handshakes: connect, (handshake,) one request, close, and again ---- */
static struct sockaddr_in *cycle_dst;

static void start_cycle(int i)
{
	if (stopping || (opt.requests && cycles_started >= opt.requests))
		return;
	struct conn *c = &conns[i];
	int e = open_conn(i, cycle_dst);
	if (e < 0) {
		note_error("connect: %s", strerror(-e), strlen(strerror(-e)));
		return;
	}
	c->inflight = c->head = 0;
	cycles_started++;
}

/* The connection is up (and through its handshake): its one request. */
static void cycle_up(struct conn *c, uint32_t idx, uint64_t t)
{
	if (!c->ssl) {
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = idx};
		epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
	}
	c->state = 1;
	send_requests(c, 1, t);
}

/* The connect finished: the request goes now, or the handshake starts. Returns 1 when
 * the handshake should be stepped. */
static int cycle_connected(struct conn *c, uint32_t idx, uint64_t t)
{
	int err = 0;
	socklen_t el = sizeof err;
	getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
	if (err) {
		note_error("connect: %s", strerror(err), strlen(strerror(err)));
		close_conn(c, 1);
		return 0;
	}
	connected++;
	if (!opt.tls) {
		cycle_up(c, idx, t);
		return 0;
	}
	if (tls_start(c) < 0) {
		note_error("cannot start TLS%s", "", 0);
		close_conn(c, 1);
		return 0;
	}
	c->state = 3;
	return 1;
}

static void cycle_event(uint32_t idx, uint64_t t)
{
	struct conn *c = &conns[idx];
	if (c->state == 0 && !cycle_connected(c, idx, t))
		return;
	if (c->state == 3) {
		int h = tls_step(c, idx);
		if (h < 0)
			close_conn(c, 1);
		else if (h)
			cycle_up(c, idx, t);
		return;
	}
	if (c->state == 1) {
		on_readable(c);
		if (c->state == 1 && c->inflight == 0) {
			close_conn(c, 0);
			cycles_done++;
			start_cycle((int)idx);
		}
	}
}

static int run_cycles(struct sockaddr_in *dst)
{
	cycle_dst = dst;
	struct epoll_event evs[512];
	struct cpu_sample cpu0 = cpu_sample(opt.server_pid);
	uint64_t t0 = now_ns(), t_end = 0;
	uint64_t deadline = t0 + (uint64_t)(opt.seconds * 1e9);
	long long done_at_end = 0;
	for (int i = 0; i < opt.conns; i++)
		start_cycle(i);
	while (!stop_signal) {
		int n = epoll_wait(epfd, evs, 512, 100);
		uint64_t t = now_ns();
		for (int k = 0; k < n; k++)
			cycle_event(evs[k].data.u32, t);
		if (!stopping && t >= deadline)
			stopping = 1;
		if (stopping && !t_end) {
			t_end = t;
			done_at_end = cycles_done;
		}
		int live = 0;
		for (int i = 0; i < opt.conns; i++)
			live += conns[i].state != 2;
		if (!live || (t_end && t > t_end + (uint64_t)(opt.drain_seconds * 1e9)))
			break;
	}
	if (!t_end) {
		t_end = now_ns();
		done_at_end = cycles_done;
	}
	struct cpu_sample cpu1 = cpu_sample(opt.server_pid);
	long long unfinished = cycles_started - cycles_done;
	double el = (double)(t_end - t0) / 1e9;
	printf("conns=%d mode=handshakes tls=%d request=%s seconds=%.3f cycles=%lld hs_per_s=%.0f "
	       "p50_us=%.1f p99_us=%.1f errors=%lld unfinished=%lld lost=%lld",
	       opt.conns, opt.tls, opt.request, el, cycles_done, (double)done_at_end / el,
	       hist_quantile_us(0.50), hist_quantile_us(0.99), errors, unfinished, lost_conns);
	if (opt.server_pid && cpu0.ok && cpu1.ok) {
		double cpu_ns = (double)(cpu1.run_ns - cpu0.run_ns);
		printf(" server_cpu_s=%.3f server_cpu_pct=%.1f server_cpu_ns_per_hs=%.0f", cpu_ns / 1e9,
		       100.0 * cpu_ns / 1e9 / el, cycles_done ? cpu_ns / (double)cycles_done : 0.0);
	}
	printf("\n");
	if (first_error[0])
		fprintf(stderr, "loadgen: first error: %s\n", first_error);
	return (errors || unfinished || lost_conns || cycles_done == 0) ? 1 : 0;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{"host", 1, 0, 'H'}, {"port", 1, 0, 'p'}, {"conns", 1, 0, 'c'},
		{"depth", 1, 0, 'd'}, {"request", 1, 0, 'r'}, {"seconds", 1, 0, 's'},
		{"requests", 1, 0, 'n'}, {"addrs", 1, 0, 'a'}, {"expect", 0, 0, 'e'},
		{"echo", 0, 0, 'E'}, {"server-pid", 1, 0, 'P'}, {"hold", 0, 0, 'h'},
		{"no-ping", 0, 0, 'N'}, {"drain", 1, 0, 'D'}, {"max-connecting", 1, 0, 'm'},
		{"tls", 0, 0, 'T'}, {"tls-ca", 1, 0, 'A'}, {"handshakes", 0, 0, 'Y'},
		{"help", 0, 0, '?'}, {0, 0, 0, 0}};
	int ch, want_expect = 0;
	while ((ch = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (ch) {
		case 'H': opt.host = optarg; break;
		case 'p': opt.port = atoi(optarg); break;
		case 'c': opt.conns = atoi(optarg); break;
		case 'd': opt.depth = atoi(optarg); break;
		case 'r': opt.request = optarg; break;
		case 's': opt.seconds = atof(optarg); break;
		case 'n': opt.requests = atoll(optarg); break;
		case 'a': opt.addrs = atoi(optarg); break;
		case 'e': want_expect = 1; break;
		case 'E': opt.echo = 1; break;
		case 'P': opt.server_pid = atoi(optarg); break;
		case 'h': opt.hold = 1; break;
		case 'N': opt.ping = 0; break;
		case 'D': opt.drain_seconds = atof(optarg); break;
		case 'm': opt.max_pending_connects = atoi(optarg); break;
		case 'T': opt.tls = 1; break;
		case 'A': opt.tls_ca = optarg; break;
		case 'Y': opt.cycles = 1; break;
		default:
			if (optind > 0 && strcmp(argv[optind - 1], "--help") == 0) {
				usage(stdout);
				return 0;
			}
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || opt.conns < 1 || opt.depth < 1 || opt.depth > 65536 || opt.addrs < 1 ||
	    opt.addrs > 254 || opt.port < 1 || opt.port > 65535 || opt.seconds <= 0 || opt.requests < 0 ||
	    opt.max_pending_connects < 1 || (opt.tls_ca && !opt.tls) || (opt.cycles && (opt.hold || opt.echo))) {
		usage(stderr);
		return 2;
	}
	if (!opt.request)
		opt.request = opt.echo ? "hello" : "random?";
	opt.request_len = strlen(opt.request);
	if (memchr(opt.request, '\n', opt.request_len) || opt.request_len > 1024) {
		fprintf(stderr, "loadgen: bad --request\n");
		return 2;
	}
	if (opt.echo)
		opt.expect = EXPECT_ECHO;
	else if (want_expect)
		opt.expect = strcmp(opt.request, "random?") == 0 ? EXPECT_RANDOM
			   : strcmp(opt.request, "classified?") == 0 ? EXPECT_CLASSIFIED : EXPECT_ANY;

	/* Enough descriptors for every connection. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)opt.conns + 64) {
		rl.rlim_cur = (rlim_t)opt.conns + 64;
		if (rl.rlim_max < rl.rlim_cur)
			rl.rlim_max = rl.rlim_cur;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
			fprintf(stderr, "loadgen: cannot raise RLIMIT_NOFILE to %d: %s\n", opt.conns + 64, strerror(errno));
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
	if (inet_pton(AF_INET, opt.host, &dst.sin_addr) != 1) {
		fprintf(stderr, "loadgen: --host must be a numeric IPv4 address\n");
		return 2;
	}
	conns = calloc((size_t)opt.conns, sizeof *conns);
	uint64_t *ts = calloc((size_t)opt.conns * (size_t)opt.depth, sizeof *ts);
	wbuf = malloc((size_t)opt.depth * (opt.request_len + 1));
	if (!conns || !ts || !wbuf) {
		fprintf(stderr, "loadgen: out of memory\n");
		return 2;
	}
	for (int k = 0; k < opt.depth; k++) {
		memcpy(wbuf + (size_t)k * (opt.request_len + 1), opt.request, opt.request_len);
		wbuf[(size_t)k * (opt.request_len + 1) + opt.request_len] = '\n';
	}
	for (int i = 0; i < opt.conns; i++)
		conns[i].ts = ts + (size_t)i * (size_t)opt.depth;
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0) {
		perror("epoll_create1");
		return 2;
	}
	if (opt.tls && tls_setup() < 0)
		return 2;
	if (opt.cycles)
		return run_cycles(&dst);

	/* Phase 1: connect everyone, at most max_pending_connects in progress at once. */
	struct epoll_event evs[512];
	uint64_t t_start = now_ns();
	/* bounded: 60 s, or 300 s for TLS (10,000 full handshakes on a busy 2-core VM) */
	uint64_t connect_deadline = t_start + (opt.tls ? 300ull : 60ull) * 1000000000ull;
	int next = 0, pending = 0;
	while ((next < opt.conns || pending) && !stop_signal) {
		while (next < opt.conns && pending < opt.max_pending_connects) {
			int e = open_conn(next, &dst);
			if (e < 0) {
				fprintf(stderr, "loadgen: connection %d: %s\n", next, strerror(-e));
				return 2;
			}
			next++;
			pending++;
		}
		if (now_ns() > connect_deadline) {
			fprintf(stderr, "loadgen: connecting timed out (%lld of %d up)\n", connected, opt.conns);
			return 2;
		}
		int n = epoll_wait(epfd, evs, 512, 1000);
		for (int k = 0; k < n; k++) {
			struct conn *c = &conns[evs[k].data.u32];
			if (c->state == 1) { /* up already: what the server sent (TLS 1.3 tickets) */
				on_readable(c);
				continue;
			}
			if (c->state == 3) {
				int h = tls_step(c, evs[k].data.u32);
				if (h < 0) {
					fprintf(stderr, "loadgen: %s\n", first_error);
					return 2;
				}
				if (h) {
					c->state = 1;
					pending--;
					connected++;
				}
				continue;
			}
			int err = 0;
			socklen_t el = sizeof err;
			getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
			if (err) {
				fprintf(stderr, "loadgen: connect to %s:%d: %s\n", opt.host, opt.port, strerror(err));
				return 2;
			}
			struct epoll_event ev = {.events = EPOLLIN, .data.u32 = evs[k].data.u32};
			epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
			if (opt.tls) {
				if (tls_start(c) < 0) {
					fprintf(stderr, "loadgen: cannot start TLS\n");
					return 2;
				}
				c->state = 3;
				int h = tls_step(c, evs[k].data.u32);
				if (h < 0) {
					fprintf(stderr, "loadgen: %s\n", first_error);
					return 2;
				}
				if (!h)
					continue;
			}
			c->state = 1;
			pending--;
			connected++;
		}
	}
	if (stop_signal)
		return 2;
	double connect_s = (double)(now_ns() - t_start) / 1e9;

	if (opt.hold) {
		/* One request per connection proves the server accepted it. */
		if (opt.ping) {
			long long saved_limit = opt.requests;
			opt.requests = 0;
			for (int i = 0; i < opt.conns; i++)
				send_requests(&conns[i], 1, now_ns());
			uint64_t dl = now_ns() + 60ull * 1000000000ull;
			while (answered + errors < sent && !stop_signal && now_ns() < dl) {
				int n = epoll_wait(epfd, evs, 512, 200);
				for (int k = 0; k < n; k++)
					on_readable(&conns[evs[k].data.u32]);
			}
			opt.requests = saved_limit;
		}
		printf("ready conns=%lld connect_s=%.2f answered=%lld errors=%lld\n", connected, connect_s, answered, errors);
		fflush(stdout);
		uint64_t dl = now_ns() + (uint64_t)(opt.seconds * 1e9);
		while (!stop_signal && now_ns() < dl) {
			int n = epoll_wait(epfd, evs, 512, 200);
			for (int k = 0; k < n; k++)
				on_readable(&conns[evs[k].data.u32]);
		}
		long long open_now = 0;
		for (int i = 0; i < opt.conns; i++)
			open_now += conns[i].state == 1;
		printf("held conns=%lld still_open=%lld lost=%lld errors=%lld\n", connected, open_now, lost_conns, errors);
		return (errors || lost_conns) ? 1 : 0;
	}

	/* Phase 2: load. */
	struct cpu_sample cpu0 = cpu_sample(opt.server_pid);
	uint64_t t0 = now_ns();
	uint64_t deadline = t0 + (uint64_t)(opt.seconds * 1e9);
	for (int i = 0; i < opt.conns; i++)
		if (!stopping)
			send_requests(&conns[i], (uint32_t)opt.depth, t0);
	uint64_t t_end = 0;
	long long answered_at_end = 0;
	while (!stop_signal) {
		int n = epoll_wait(epfd, evs, 512, 100);
		for (int k = 0; k < n; k++)
			on_readable(&conns[evs[k].data.u32]);
		uint64_t t = now_ns();
		if (!stopping && t >= deadline)
			stopping = 1;
		if (stopping && !t_end && (t >= deadline || answered >= sent)) {
			t_end = t;
			answered_at_end = answered;
		}
		if (stopping && !t_end && opt.requests && answered >= opt.requests) {
			t_end = t;
			answered_at_end = answered;
		}
		if (t_end) {
			long long owed = 0;
			for (int i = 0; i < opt.conns; i++)
				if (conns[i].state == 1)
					owed += conns[i].inflight;
			if (!owed || t > t_end + (uint64_t)(opt.drain_seconds * 1e9))
				break;
		}
		if (lost_conns == opt.conns)
			break;
	}
	if (!t_end) {
		t_end = now_ns();
		answered_at_end = answered;
	}
	struct cpu_sample cpu1 = cpu_sample(opt.server_pid);
	long long unanswered = 0;
	for (int i = 0; i < opt.conns; i++)
		unanswered += conns[i].inflight;
	double el = (double)(t_end - t0) / 1e9;
	printf("conns=%d depth=%d request=%s seconds=%.3f sent=%lld answered=%lld rps=%.0f "
	       "p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f errors=%lld unanswered=%lld lost=%lld notifs=%lld",
	       opt.conns, opt.depth, opt.request, el, sent, answered, (double)answered_at_end / el,
	       hist_quantile_us(0.50), hist_quantile_us(0.99), hist_quantile_us(0.999), (double)hist_max / 1000.0,
	       errors, unanswered, lost_conns, notifs);
	if (opt.server_pid && cpu0.ok && cpu1.ok) {
		long hz = sysconf(_SC_CLK_TCK);
		double cpu_ns = (double)(cpu1.run_ns - cpu0.run_ns);
		printf(" server_cpu_s=%.3f server_cpu_pct=%.1f server_user_s=%.2f server_sys_s=%.2f server_cpu_ns_per_req=%.0f",
		       cpu_ns / 1e9, 100.0 * cpu_ns / 1e9 / el, (double)(cpu1.utime - cpu0.utime) / (double)hz,
		       (double)(cpu1.stime - cpu0.stime) / (double)hz, answered ? cpu_ns / (double)answered : 0.0);
	}
	printf("\n");
	if (first_error[0])
		fprintf(stderr, "loadgen: first error: %s\n", first_error);
	return (errors || unanswered || lost_conns || answered == 0) ? 1 : 0;
}
