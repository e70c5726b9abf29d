#define _GNU_SOURCE
/* server_raw_tls: the TLS twin of server_raw.c: the notification protocol
 * (shared/spec/protocol.md) over TLS, written straight on epoll and OpenSSL with no
 * abstraction. It is the baseline twistc's notif-server --tls-cert/--tls-key is measured
 * against, so it drives OpenSSL the way a careful hand-written server does:
 *
 *  - the SSL object sits on the non-blocking socket itself (SSL_set_fd), not on memory
 *    BIOs: OpenSSL reads and writes the socket directly, no ciphertext is copied;
 *  - read-ahead on: one read() takes a whole record (header and body) instead of two;
 *    since OpenSSL may then hold records the socket no longer signals (level-triggered
 *    epoll), each readiness reads until SSL_has_pending() says nothing is left;
 *  - every answer to one record gathered in one shared buffer, handed to one SSL_write:
 *    one record, one send() (SSL_MODE_ENABLE_PARTIAL_WRITE and
 *    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER, so what OpenSSL does not take is kept per
 *    connection and retried from there);
 *  - SSL_MODE_RELEASE_BUFFERS, TLS 1.2 at least, OpenSSL's defaults otherwise
 *    (bench_tls.h, shared with server_libevent_tls.c);
 *  - OpenSSL's error queue emptied after each failure (never before every call), so a
 *    failed connection's errors cannot show up as another connection's SSL_get_error;
 *  - WANT_READ / WANT_WRITE in either direction: write interest only while an operation
 *    waits for it; nothing loops.
 *
 * The protocol work is server_raw.c's (bench_common.h; every complete line of a record
 * parsed in place, an incomplete one copied, answers in one buffer). Where plaintext
 * half-closes, TLS sends close_notify: a connection that is done (quit, a line too long)
 * gets its answers, then close_notify, then the TCP half-close and a bounded drain. A
 * peer's close_notify or EOF with answers owed is answered first, then closed. Over
 * --max-clients, a connection is told "error: server full" after its handshake, then
 * closed.
 *
 * Options: those of server_raw (--port, --bind, --interval, --max-clients, --cap) and
 * --tls-cert FILE --tls-key FILE (required). Prints "port=N" once listening and a summary
 * line on SIGINT/SIGTERM. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"
#include "bench_tls.h"

#define MAX_LINE BENCH_MAX_LINE
#define RBUF_SIZE (64 * 1024)
#define OBUF_SIZE (64 * 1024)
#define DRAIN_LIMIT_NS (5ull * 1000000000ull)

struct client {
	int fd;
	SSL *ssl;
	uint8_t handshaking; /* until SSL_do_handshake succeeds */
	uint8_t full;        /* over --max-clients: "error: server full" after the handshake */
	uint8_t notify;      /* in notification mode */
	uint8_t closing;     /* flush pending output, then finish */
	uint8_t eof;         /* peer closed (close_notify or EOF): close after the flush */
	uint8_t draining;    /* we sent close_notify and shut down; discard input until EOF */
	uint8_t wr_want;     /* pending output waits for: SSL_ERROR_WANT_READ / _WRITE, or 0 */
	uint8_t rd_want_wr;  /* the handshake or a read waits for the socket to be writable */
	uint32_t events;     /* epoll interest registered */
	uint16_t in_len;
	char *in;            /* incomplete line, MAX_LINE + 1 bytes, only while needed */
	char *out;           /* plaintext SSL_write has not taken (its retry buffer) */
	size_t out_len, out_off, out_cap;
	struct client *sub_prev, *sub_next; /* subscriber list */
	struct client *drain_next;
	uint64_t drain_since;
};

static SSL_CTX *ctx;
static int epfd, lfd, tfd, spare_fd = -1;
static struct client **table; /* indexed by fd */
static size_t table_size;
static struct client subs = {.sub_prev = &subs, .sub_next = &subs};
static struct client *drain_list;
static char rbuf[RBUF_SIZE];
static char obuf[OBUF_SIZE];
static size_t olen;
static unsigned cur_ad;
static uint64_t rng = BENCH_RNG_INIT;
static long max_clients, nclients;
static size_t cap;
static volatile sig_atomic_t stop_flag;
static unsigned long long stat_conns, stat_requests, stat_notifs, stat_slow, stat_tls_failed;

/* The interest the connection's state asks for, registered only when it changed. */
static void update_events(struct client *c)
{
	uint32_t ev = c->eof ? 0 : EPOLLIN;
	if (c->rd_want_wr || (c->out_len && c->wr_want == SSL_ERROR_WANT_WRITE))
		ev |= EPOLLOUT;
	if (ev != c->events) {
		struct epoll_event e = {.events = ev, .data.fd = c->fd};
		epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &e);
		c->events = ev;
	}
}

static void unsubscribe(struct client *c)
{
	if (c->notify) {
		c->sub_prev->sub_next = c->sub_next;
		c->sub_next->sub_prev = c->sub_prev;
		c->notify = 0;
	}
}

static void close_client(struct client *c)
{
	unsubscribe(c);
	if (c->draining) {
		struct client **pp = &drain_list;
		while (*pp && *pp != c)
			pp = &(*pp)->drain_next;
		if (*pp)
			*pp = c->drain_next;
	}
	table[c->fd] = NULL;
	SSL_free(c->ssl);
	close(c->fd); /* also removes it from the epoll set */
	free(c->in);
	free(c->out);
	free(c);
	nclients--;
}

/* A TLS failure (not WANT_*): the connection goes, and so do OpenSSL's reasons. */
static void tls_failed(struct client *c)
{
	ERR_clear_error();
	stat_tls_failed++;
	close_client(c);
}

/* Our side is done: close_notify, the TCP half-close so the peer sees every byte, then
 * discard its input until it closes (closing with unread input would send RST and could
 * destroy the last answers in flight). A peer that never closes goes after
 * DRAIN_LIMIT_NS. */
static void finish(struct client *c)
{
	if (c->eof) {
		close_client(c);
		return;
	}
	unsubscribe(c);
	if (SSL_shutdown(c->ssl) < 0)
		ERR_clear_error(); /* a full socket: the TCP close still ends the stream */
	shutdown(c->fd, SHUT_WR);
	c->draining = 1;
	c->drain_since = bench_now_ns();
	c->drain_next = drain_list;
	drain_list = c;
	free(c->in);
	c->in = NULL;
	c->in_len = 0;
	c->rd_want_wr = 0;
	update_events(c);
}

/* Keeps len bytes of p as pending output (SSL_write's retry buffer), within the cap.
 * Returns -1 when c was closed. */
static int keep_out(struct client *c, const char *p, size_t len)
{
	if (c->out_len + len > cap) {
		/* A peer that does not read: drop it, nobody else notices. */
		stat_slow++;
		close_client(c);
		return -1;
	}
	if (c->out_off + c->out_len + len > c->out_cap) {
		if (c->out_off) {
			/* The retry must start at the bytes OpenSSL is waiting on: moving them is
			 * allowed (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER), changing them is not. */
			memmove(c->out, c->out + c->out_off, c->out_len);
			c->out_off = 0;
		}
		if (c->out_len + len > c->out_cap) {
			size_t ncap = c->out_cap ? c->out_cap : 4096;
			while (ncap < c->out_len + len)
				ncap *= 2;
			char *n = realloc(c->out, ncap);
			if (!n) {
				close_client(c);
				return -1;
			}
			c->out = n;
			c->out_cap = ncap;
		}
	}
	memcpy(c->out + c->out_off + c->out_len, p, len);
	c->out_len += len;
	return 0;
}

/* Writes the pending output. Returns -1 when c was closed (or finished and closed),
 * 1 when it is finishing (draining), 0 otherwise. */
static int flush_pending(struct client *c)
{
	while (c->out_len) {
		int w = SSL_write(c->ssl, c->out + c->out_off, (int)(c->out_len > INT32_MAX ? INT32_MAX : c->out_len));
		if (w <= 0) {
			int e = SSL_get_error(c->ssl, w);
			if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ) {
				tls_failed(c);
				return -1;
			}
			c->wr_want = (uint8_t)e;
			update_events(c);
			return 0;
		}
		c->out_off += (size_t)w;
		c->out_len -= (size_t)w;
	}
	free(c->out);
	c->out = NULL;
	c->out_off = c->out_cap = 0;
	c->wr_want = 0;
	if (c->closing) {
		int eof = c->eof;
		finish(c);
		return eof ? -1 : 1;
	}
	update_events(c);
	return 0;
}

/* Hands obuf to client c: one SSL_write (one record, one send), or keep the rest.
 * Returns -1 when c was closed. */
static int flush_out(struct client *c)
{
	if (!olen)
		return 0;
	size_t len = olen, done = 0;
	olen = 0;
	if (c->out_len) /* earlier output waits: this goes after it */
		return keep_out(c, obuf, len);
	while (done < len) {
		int w = SSL_write(c->ssl, obuf + done, (int)(len - done));
		if (w <= 0) {
			int e = SSL_get_error(c->ssl, w);
			if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ) {
				tls_failed(c);
				return -1;
			}
			if (keep_out(c, obuf + done, len - done) < 0)
				return -1;
			c->wr_want = (uint8_t)e;
			update_events(c);
			return 0;
		}
		done += (size_t)w;
	}
	return 0;
}

static int out_append(struct client *c, const char *s, size_t n)
{
	if (olen + n > OBUF_SIZE && flush_out(c) < 0)
		return -1;
	memcpy(obuf + olen, s, n);
	olen += n;
	return 0;
}

enum { LINE_OK, LINE_QUIT, LINE_CLOSED };

static int handle_line(struct client *c, const char *l, size_t n)
{
	if (n && l[n - 1] == '\r')
		n--;
	if (!n)
		return LINE_OK;
	stat_requests++;
	switch (n) {
	case 7:
		if (memcmp(l, "random?", 7) == 0) {
			char num[8];
			uint32_t v = bench_rand_below(&rng, 100000);
			int k = 7;
			num[k--] = '\n';
			do {
				num[k--] = (char)('0' + v % 10);
				v /= 10;
			} while (v);
			return out_append(c, num + k + 1, (size_t)(7 - k)) < 0 ? LINE_CLOSED : LINE_OK;
		}
		break;
	case 11:
		if (memcmp(l, "classified?", 11) == 0) {
			const char *ad = bench_ads[cur_ad];
			size_t al = strlen(ad);
			if (out_append(c, ad, al) < 0 || out_append(c, "\n", 1) < 0)
				return LINE_CLOSED;
			return LINE_OK;
		}
		break;
	case 6:
		if (memcmp(l, "notify", 6) == 0) {
			if (!c->notify) {
				c->notify = 1;
				c->sub_next = &subs;
				c->sub_prev = subs.sub_prev;
				subs.sub_prev->sub_next = c;
				subs.sub_prev = c;
			}
			return LINE_OK;
		}
		break;
	case 4:
		if (memcmp(l, "stop", 4) == 0) {
			unsubscribe(c);
			return LINE_OK;
		}
		if (memcmp(l, "quit", 4) == 0)
			return LINE_QUIT;
		break;
	}
	return out_append(c, bench_msg_unknown, sizeof bench_msg_unknown - 1) < 0 ? LINE_CLOSED : LINE_OK;
}

/* After the answers: flush, then close gracefully (quit, line too long, server full).
 * Returns -1 (c is closed or finishing: stop reading). */
static int flush_and_finish(struct client *c)
{
	if (flush_out(c) < 0)
		return -1;
	if (c->out_len)
		c->closing = 1;
	else
		finish(c);
	return -1;
}

static int too_long(struct client *c)
{
	if (out_append(c, bench_msg_too_long, sizeof bench_msg_too_long - 1) < 0)
		return -1;
	return flush_and_finish(c);
}

/* The protocol work for n bytes of plaintext: lines answered into obuf and flushed.
 * Returns -1 when c was closed or is finishing. */
static int process(struct client *c, const char *p, size_t r)
{
	const char *end = p + r;
	if (c->in_len) {
		const char *nl = memchr(p, '\n', r);
		size_t take = nl ? (size_t)(nl - p) : r;
		if (c->in_len + take > MAX_LINE + 1)
			return too_long(c);
		memcpy(c->in + c->in_len, p, take);
		c->in_len = (uint16_t)(c->in_len + take);
		if (!nl) {
			if (c->in_len == MAX_LINE + 1 && c->in[MAX_LINE] != '\r')
				return too_long(c);
			return 0;
		}
		size_t n = c->in_len;
		c->in_len = 0;
		if (bench_line_too_long(c->in, n))
			return too_long(c);
		int rc = handle_line(c, c->in, n);
		if (rc == LINE_CLOSED)
			return -1;
		if (rc == LINE_QUIT)
			return flush_and_finish(c);
		p = nl + 1;
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			break;
		size_t n = (size_t)(nl - p);
		if (bench_line_too_long(p, n))
			return too_long(c);
		int rc = handle_line(c, p, n);
		if (rc == LINE_CLOSED)
			return -1;
		if (rc == LINE_QUIT)
			return flush_and_finish(c);
		p = nl + 1;
	}
	size_t rest = (size_t)(end - p);
	if (rest) {
		if (bench_line_too_long(p, rest))
			return too_long(c);
		if (!c->in && !(c->in = malloc(MAX_LINE + 1))) {
			close_client(c);
			return -1;
		}
		memcpy(c->in, p, rest);
		c->in_len = (uint16_t)rest;
	} else if (c->in) {
		free(c->in); /* keep idle connections small */
		c->in = NULL;
	}
	return flush_out(c);
}

/* The peer ended the stream (close_notify or EOF): answer what is owed, then close. */
static void peer_closed(struct client *c)
{
	if (!c->out_len) {
		close_client(c);
		return;
	}
	c->eof = 1;
	c->closing = 1;
	c->rd_want_wr = 0;
	update_events(c);
}

/* Reads records until OpenSSL wants the socket again (it may hold whole records that
 * read-ahead took, which level-triggered epoll would never report). */
static void read_records(struct client *c)
{
	for (;;) {
		int r = SSL_read(c->ssl, rbuf, sizeof rbuf);
		if (r <= 0) {
			int e = SSL_get_error(c->ssl, r);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
				uint8_t w = e == SSL_ERROR_WANT_WRITE;
				if (w != c->rd_want_wr) {
					c->rd_want_wr = w;
					update_events(c);
				}
				return;
			}
			if (e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL || e == SSL_ERROR_SSL) {
				ERR_clear_error();
				peer_closed(c);
				return;
			}
			tls_failed(c);
			return;
		}
		if (!c->closing && process(c, rbuf, (size_t)r) < 0)
			return;
		if (!SSL_has_pending(c->ssl))
			break;
	}
	if (c->rd_want_wr) {
		c->rd_want_wr = 0;
		update_events(c);
	}
}

/* Returns 0 once the handshake is done (c may have been closed when "full": -1), 1 while
 * it waits for the socket. */
static int handshake(struct client *c)
{
	int r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		c->handshaking = 0;
		c->rd_want_wr = 0;
		update_events(c);
		if (c->full) {
			if (out_append(c, bench_msg_full, sizeof bench_msg_full - 1) < 0)
				return -1;
			return flush_and_finish(c);
		}
		return 0;
	}
	int e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		c->rd_want_wr = e == SSL_ERROR_WANT_WRITE;
		update_events(c);
		return 1;
	}
	tls_failed(c);
	return -1;
}

static void drain_input(struct client *c)
{
	ssize_t r = recv(c->fd, rbuf, sizeof rbuf, 0);
	if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
		close_client(c);
}

static void on_event(struct client *c, uint32_t ev)
{
	if (c->draining) {
		drain_input(c);
		return;
	}
	if (c->handshaking && handshake(c) != 0)
		return;
	if (c->out_len && (((ev & EPOLLOUT) && c->wr_want == SSL_ERROR_WANT_WRITE) ||
			   ((ev & EPOLLIN) && c->wr_want == SSL_ERROR_WANT_READ))) {
		if (flush_pending(c) != 0)
			return;
	}
	if (c->eof) {
		if (ev & EPOLLERR)
			close_client(c);
		return;
	}
	/* Read when the socket says so, when the handshake just finished (the first
	 * request may already sit in OpenSSL's read-ahead) or when a read waited for
	 * writability. */
	read_records(c);
}

static void on_accept(void)
{
	for (int budget = 64; budget > 0; budget--) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if ((errno == EMFILE || errno == ENFILE) && spare_fd >= 0) {
				/* Shed one pending connection instead of spinning on it. */
				close(spare_fd);
				fd = accept(lfd, NULL, NULL);
				if (fd >= 0)
					close(fd);
				spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
				continue;
			}
			return;
		}
		if ((size_t)fd >= table_size) {
			struct client **nt = bench_table_grow(table, &table_size, fd, sizeof *nt);
			if (!nt) {
				close(fd);
				continue;
			}
			table = nt;
		}
		struct client *c = calloc(1, sizeof *c);
		SSL *ssl = c ? SSL_new(ctx) : NULL;
		if (!ssl || !SSL_set_fd(ssl, fd)) {
			ERR_clear_error();
			SSL_free(ssl);
			free(c);
			close(fd);
			continue;
		}
		SSL_set_accept_state(ssl);
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		c->fd = fd;
		c->ssl = ssl;
		c->handshaking = 1;
		c->full = max_clients && nclients >= max_clients;
		c->events = EPOLLIN; /* the ClientHello */
		struct epoll_event e = {.events = EPOLLIN, .data.fd = fd};
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
			SSL_free(ssl);
			close(fd);
			free(c);
			continue;
		}
		table[fd] = c;
		nclients++;
		stat_conns++;
	}
}

static void on_timer(void)
{
	uint64_t expirations;
	if (read(tfd, &expirations, sizeof expirations) < 0)
		return;
	size_t len;
	const char *line = bench_next_notification(&cur_ad, &len);
	for (struct client *c = subs.sub_next, *next; c != &subs; c = next) {
		next = c->sub_next;
		stat_notifs++;
		memcpy(obuf, line, len);
		olen = len;
		flush_out(c);
	}
	uint64_t now = bench_now_ns();
	for (struct client *c = drain_list, *next; c; c = next) {
		next = c->drain_next;
		if (now - c->drain_since > DRAIN_LIMIT_NS)
			close_client(c);
	}
}

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

int main(int argc, char **argv)
{
	struct bench_server_opts o;
	if (bench_server_parse_opts(argc, argv, "server_raw_tls", &o, 1))
		return 2;
	max_clients = o.max_clients;
	cap = o.cap;
	bench_process_setup();
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	bench_rng_seed(&rng, bench_now_ns());
	spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o.port)};
	if (inet_pton(AF_INET, o.bind_addr, &sin.sin_addr) != 1) {
		fprintf(stderr, "server_raw_tls: --bind must be a numeric IPv4 address\n");
		return 2;
	}
	ctx = bench_tls_server_ctx("server_raw_tls", o.tls_cert, o.tls_key);
	if (!ctx)
		return 1;
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_read_ahead(ctx, 1);
	lfd = bench_listen_tcp4("server_raw_tls", &sin, o.bind_addr, o.port);
	if (lfd < 0)
		return 1;

	table_size = 1024;
	table = calloc(table_size, sizeof *table);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (!table || epfd < 0 || tfd < 0) {
		perror("server_raw_tls: setup");
		return 1;
	}
	struct itimerspec its;
	its.it_interval.tv_sec = (time_t)o.interval;
	its.it_interval.tv_nsec = (long)((o.interval - (double)(time_t)o.interval) * 1e9);
	its.it_value = its.it_interval;
	timerfd_settime(tfd, 0, &its, NULL);
	struct epoll_event e = {.events = EPOLLIN, .data.fd = lfd};
	epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &e);
	e.data.fd = tfd;
	epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &e);

	struct epoll_event evs[256];
	while (!stop_flag) {
		int n = epoll_wait(epfd, evs, 256, -1);
		for (int k = 0; k < n; k++) {
			int fd = evs[k].data.fd;
			if (fd == lfd) {
				on_accept();
				continue;
			}
			if (fd == tfd) {
				on_timer();
				continue;
			}
			struct client *c = (size_t)fd < table_size ? table[fd] : NULL;
			if (c)
				on_event(c, evs[k].events);
			/* else: closed earlier in this batch */
		}
	}
	/* Stop: everyone closed (a bench server; pending output is not waited for). */
	for (size_t fd = 0; fd < table_size; fd++)
		if (table[fd])
			close_client(table[fd]);
	SSL_CTX_free(ctx);
	bench_print_stats("server_raw_tls", stat_conns, stat_requests, stat_notifs, stat_slow);
	fprintf(stderr, "server_raw_tls: tls_failures=%llu\n", stat_tls_failed);
	return 0;
}
