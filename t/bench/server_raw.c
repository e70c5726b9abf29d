#define _GNU_SOURCE
/* server_raw: the notification protocol (shared/spec/protocol.md) written straight on
 * epoll, with no abstraction at all. It is the baseline the library's server is measured
 * against, so it does what a careful hand-written server does and nothing more:
 *
 *  - level-triggered epoll; one read of up to 64 KiB per readiness, so a request at 1/1
 *    costs exactly epoll_wait + read + write;
 *  - every complete line of a read is parsed straight from the read buffer; only an
 *    incomplete line is copied and kept (at most 1025 bytes, allocated on demand);
 *  - all the answers to one read are gathered in one shared buffer and leave in one write;
 *    output is kept per connection only when the socket does not take it all, and write
 *    interest is registered only while such output is pending;
 *  - notifications come from one timerfd; subscribers are an intrusive list.
 *
 * Options: --port N (6789; 0 picks one), --bind ADDR (127.0.0.1), --interval SECONDS (1),
 * --max-clients N (0 = no limit), --cap BYTES (1 MiB pending output per connection).
 * It prints "port=N" on stdout once listening, and a summary line on SIGINT/SIGTERM. */
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
#include <sys/time.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"

#define MAX_LINE BENCH_MAX_LINE
#define RBUF_SIZE (64 * 1024)
#define OBUF_SIZE (64 * 1024)
#define DRAIN_LIMIT_NS (5ull * 1000000000ull)

struct client {
	int fd;
	uint8_t notify;     /* in notification mode */
	uint8_t closing;    /* flush pending output, then finish */
	uint8_t eof;        /* peer closed its side: close after the flush */
	uint8_t draining;   /* we shut down our side; discard input until EOF */
	uint8_t want_out;   /* EPOLLOUT registered */
	uint16_t in_len;
	char *in;           /* incomplete line, MAX_LINE + 1 bytes, only while needed */
	char *out;          /* pending output, only while the socket does not take it */
	size_t out_len, out_off, out_cap;
	struct client *sub_prev, *sub_next; /* subscriber list */
	struct client *drain_next;
	uint64_t drain_since;
};

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
static unsigned long long stat_conns, stat_requests, stat_notifs, stat_slow;

static void set_events(struct client *c, uint32_t ev)
{
	struct epoll_event e = {.events = ev, .data.fd = c->fd};
	epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &e);
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
	close(c->fd); /* also removes it from the epoll set */
	free(c->in);
	free(c->out);
	free(c);
	nclients--;
}

/* Our side is done: half-close so the peer sees every byte and EOF, then discard its
 * input until it closes (closing with unread input would send RST and could destroy the
 * last answers in flight). A peer that never closes is closed after DRAIN_LIMIT_NS. */
static void finish(struct client *c)
{
	if (c->eof) {
		close_client(c);
		return;
	}
	unsubscribe(c);
	shutdown(c->fd, SHUT_WR);
	c->draining = 1;
	c->drain_since = bench_now_ns();
	c->drain_next = drain_list;
	drain_list = c;
	free(c->in);
	c->in = NULL;
	c->in_len = 0;
	set_events(c, EPOLLIN);
}

/* Hands obuf to client c: one write, or queue the rest. Returns -1 when c was closed. */
static int flush_out(struct client *c)
{
	if (!olen)
		return 0;
	size_t len = olen;
	olen = 0;
	size_t done = 0;
	if (!c->out_len) {
		ssize_t w = send(c->fd, obuf, len, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno != EAGAIN && errno != EINTR) {
				close_client(c);
				return -1;
			}
			w = 0;
		}
		done = (size_t)w;
		if (done == len)
			return 0;
	}
	size_t rest = len - done;
	if (c->out_len + rest > cap) {
		/* A peer that does not read: drop it, nobody else notices. */
		stat_slow++;
		close_client(c);
		return -1;
	}
	if (c->out_off + c->out_len + rest > c->out_cap) {
		if (c->out_off) {
			memmove(c->out, c->out + c->out_off, c->out_len);
			c->out_off = 0;
		}
		if (c->out_len + rest > c->out_cap) {
			size_t ncap = c->out_cap ? c->out_cap : 4096;
			while (ncap < c->out_len + rest)
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
	memcpy(c->out + c->out_off + c->out_len, obuf + done, rest);
	c->out_len += rest;
	if (!c->want_out) {
		c->want_out = 1;
		set_events(c, c->eof ? EPOLLOUT : EPOLLIN | EPOLLOUT);
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

/* After the answers: flush, then close gracefully (quit or line too long). */
static void flush_and_finish(struct client *c)
{
	if (flush_out(c) < 0)
		return;
	if (c->out_len)
		c->closing = 1;
	else
		finish(c);
}

static void too_long(struct client *c)
{
	if (out_append(c, bench_msg_too_long, sizeof bench_msg_too_long - 1) < 0)
		return;
	flush_and_finish(c);
}

static void on_readable(struct client *c)
{
	ssize_t r = recv(c->fd, rbuf, sizeof rbuf, 0);
	if (r <= 0) {
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (r < 0 || c->draining || !c->out_len) {
			close_client(c);
			return;
		}
		/* Half-close with answers owed: deliver them, then close. */
		c->eof = 1;
		c->closing = 1;
		c->want_out = 1;
		set_events(c, EPOLLOUT);
		return;
	}
	if (c->draining || c->closing)
		return; /* input after quit / the error is ignored */
	const char *p = rbuf, *end = rbuf + r;
	if (c->in_len) {
		const char *nl = memchr(p, '\n', (size_t)r);
		size_t take = nl ? (size_t)(nl - p) : (size_t)r;
		if (c->in_len + take > MAX_LINE + 1) {
			too_long(c);
			return;
		}
		memcpy(c->in + c->in_len, p, take);
		c->in_len = (uint16_t)(c->in_len + take);
		if (!nl) {
			if (c->in_len == MAX_LINE + 1 && c->in[MAX_LINE] != '\r')
				too_long(c);
			return;
		}
		size_t n = c->in_len;
		c->in_len = 0;
		if (bench_line_too_long(c->in, n)) {
			too_long(c);
			return;
		}
		int rc = handle_line(c, c->in, n);
		if (rc == LINE_CLOSED)
			return;
		if (rc == LINE_QUIT) {
			flush_and_finish(c);
			return;
		}
		p = nl + 1;
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			break;
		size_t n = (size_t)(nl - p);
		if (bench_line_too_long(p, n)) {
			too_long(c);
			return;
		}
		int rc = handle_line(c, p, n);
		if (rc == LINE_CLOSED)
			return;
		if (rc == LINE_QUIT) {
			flush_and_finish(c);
			return;
		}
		p = nl + 1;
	}
	size_t rest = (size_t)(end - p);
	if (rest) {
		if (bench_line_too_long(p, rest)) {
			too_long(c);
			return;
		}
		if (!c->in && !(c->in = malloc(MAX_LINE + 1))) {
			close_client(c);
			return;
		}
		memcpy(c->in, p, rest);
		c->in_len = (uint16_t)rest;
	} else if (c->in) {
		free(c->in); /* keep idle connections small */
		c->in = NULL;
	}
	flush_out(c);
}

static void on_writable(struct client *c)
{
	while (c->out_len) {
		ssize_t w = send(c->fd, c->out + c->out_off, c->out_len, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			close_client(c);
			return;
		}
		c->out_off += (size_t)w;
		c->out_len -= (size_t)w;
	}
	free(c->out);
	c->out = NULL;
	c->out_off = c->out_cap = 0;
	c->want_out = 0;
	if (c->closing) {
		finish(c);
		return;
	}
	set_events(c, EPOLLIN);
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
		if (max_clients && nclients >= max_clients) {
			if (send(fd, bench_msg_full, sizeof bench_msg_full - 1, MSG_NOSIGNAL) < 0) {
				/* nothing more to do for it */
			}
			close(fd);
			continue;
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
		if (!c) {
			close(fd);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		c->fd = fd;
		struct epoll_event e = {.events = EPOLLIN, .data.fd = fd};
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
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
		olen = 0;
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
	if (bench_server_parse(argc, argv, "server_raw", &o))
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
		fprintf(stderr, "server_raw: --bind must be a numeric IPv4 address\n");
		return 2;
	}
	lfd = bench_listen_tcp4("server_raw", &sin, o.bind_addr, o.port);
	if (lfd < 0)
		return 1;

	table_size = 1024;
	table = calloc(table_size, sizeof *table);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (!table || epfd < 0 || tfd < 0) {
		perror("server_raw: setup");
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
			if (!c)
				continue; /* closed earlier in this batch */
			uint32_t ev = evs[k].events;
			if ((ev & EPOLLOUT) && c->out_len) {
				on_writable(c);
				if (table[fd] != c)
					continue;
			}
			if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
				if (c->eof) {
					if (ev & EPOLLERR)
						close_client(c);
					continue;
				}
				on_readable(c);
			}
		}
	}
	/* Graceful stop: try to deliver what is owed (bounded), then close everyone. */
	for (size_t fd = 0; fd < table_size; fd++) {
		struct client *c = table[fd];
		if (!c)
			continue;
		if (c->out_len) {
			int fl = fcntl(c->fd, F_GETFL);
			fcntl(c->fd, F_SETFL, fl & ~O_NONBLOCK);
			struct timeval tv = {1, 0};
			setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
			if (send(c->fd, c->out + c->out_off, c->out_len, MSG_NOSIGNAL) < 0) {
				/* the peer is gone or stuck: nothing more to do */
			}
		}
		close_client(c);
	}
	bench_print_stats("server_raw", stat_conns, stat_requests, stat_notifs, stat_slow);
	return 0;
}
