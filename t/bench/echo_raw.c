#define _GNU_SOURCE
/* echo_raw: a line echo server written straight on epoll, the baseline for the echo
 * benchmark. Level-triggered; one read of up to 64 KiB per readiness; the complete lines
 * of a read go back in one write (straight from the read buffer when no partial line was
 * kept); only an incomplete line is kept per connection; output is queued only when the
 * socket does not take it all.
 *
 * Options: --port N (6789; 0 picks one), --bind ADDR (127.0.0.1), --max-line N (65536).
 * Prints "port=N" on stdout once listening. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_common.h"

#define RBUF_SIZE (64 * 1024)

struct client {
	int fd;
	int want_out;
	size_t in_len;
	char *in; /* incomplete line */
	char *out;
	size_t out_off, out_len;
};

static int epfd, lfd;
static struct client **table;
static size_t table_size;
static char rbuf[RBUF_SIZE];
static size_t max_line = 65536;
static volatile sig_atomic_t stop_flag;

static void close_client(struct client *c)
{
	table[c->fd] = NULL;
	close(c->fd);
	free(c->in);
	free(c->out);
	free(c);
}

static void set_events(struct client *c, uint32_t ev)
{
	struct epoll_event e = {.events = ev, .data.fd = c->fd};
	epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &e);
}

static int send_or_queue(struct client *c, const char *p, size_t n)
{
	size_t done = 0;
	if (!c->out_len) {
		ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno != EAGAIN && errno != EINTR) {
				close_client(c);
				return -1;
			}
			w = 0;
		}
		done = (size_t)w;
		if (done == n)
			return 0;
	}
	char *nb = realloc(c->out, c->out_off + c->out_len + (n - done));
	if (!nb) {
		close_client(c);
		return -1;
	}
	c->out = nb;
	memcpy(c->out + c->out_off + c->out_len, p + done, n - done);
	c->out_len += n - done;
	if (c->out_len > (16u << 20)) { /* a peer that does not read */
		close_client(c);
		return -1;
	}
	if (!c->want_out) {
		c->want_out = 1;
		set_events(c, EPOLLIN | EPOLLOUT);
	}
	return 0;
}

static void on_readable(struct client *c)
{
	ssize_t r = recv(c->fd, rbuf, sizeof rbuf, 0);
	if (r <= 0) {
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		close_client(c);
		return;
	}
	/* Find the end of the last complete line. */
	const char *p = rbuf, *end = rbuf + r;
	const char *last = NULL;
	for (const char *q = end; q > p; q--)
		if (q[-1] == '\n') {
			last = q;
			break;
		}
	if (!last) {
		if (c->in_len + (size_t)r > max_line) {
			close_client(c);
			return;
		}
		char *n = realloc(c->in, c->in_len + (size_t)r);
		if (!n) {
			close_client(c);
			return;
		}
		c->in = n;
		memcpy(c->in + c->in_len, p, (size_t)r);
		c->in_len += (size_t)r;
		return;
	}
	if (c->in_len) {
		/* The kept partial line goes first: join it with this read's lines so they
		 * still leave in one write (rare: only when a line straddled two reads). */
		size_t n = c->in_len + (size_t)(last - p);
		char *j = realloc(c->in, n);
		if (!j) {
			close_client(c);
			return;
		}
		memcpy(j + c->in_len, p, (size_t)(last - p));
		c->in = NULL;
		c->in_len = 0;
		int rc = send_or_queue(c, j, n);
		free(j);
		if (rc < 0)
			return;
	} else if (send_or_queue(c, p, (size_t)(last - p)) < 0) {
		return;
	}
	if (last < end) {
		size_t rest = (size_t)(end - last);
		if (rest > max_line || !(c->in = malloc(rest))) {
			close_client(c);
			return;
		}
		memcpy(c->in, last, rest);
		c->in_len = rest;
	}
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
	c->out_off = 0;
	c->want_out = 0;
	set_events(c, EPOLLIN);
}

static void on_accept(void)
{
	for (int budget = 64; budget > 0; budget--) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
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
	}
}

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{"port", 1, 0, 'p'}, {"bind", 1, 0, 'b'}, {"max-line", 1, 0, 'm'}, {0, 0, 0, 0}};
	int port = 6789, ch;
	const char *bind_addr = "127.0.0.1";
	while ((ch = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (ch) {
		case 'p': port = atoi(optarg); break;
		case 'b': bind_addr = optarg; break;
		case 'm': max_line = (size_t)atol(optarg); break;
		default:
			fprintf(stderr, "usage: echo_raw [--port N] [--bind ADDR] [--max-line N]\n");
			return 2;
		}
	}
	bench_process_setup();
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (port < 0 || port > 65535 || inet_pton(AF_INET, bind_addr, &sin.sin_addr) != 1) {
		fprintf(stderr, "echo_raw: bad --port or --bind\n");
		return 2;
	}
	lfd = bench_listen_tcp4("echo_raw", &sin, bind_addr, port);
	if (lfd < 0)
		return 1;
	table_size = 1024;
	table = calloc(table_size, sizeof *table);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (!table || epfd < 0)
		return 1;
	struct epoll_event e = {.events = EPOLLIN, .data.fd = lfd};
	epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &e);
	struct epoll_event evs[256];
	while (!stop_flag) {
		int n = epoll_wait(epfd, evs, 256, -1);
		for (int k = 0; k < n; k++) {
			int fd = evs[k].data.fd;
			if (fd == lfd) {
				on_accept();
				continue;
			}
			struct client *c = (size_t)fd < table_size ? table[fd] : NULL;
			if (!c)
				continue;
			if ((evs[k].events & EPOLLOUT) && c->out_len) {
				on_writable(c);
				if (table[fd] != c)
					continue;
			}
			if (evs[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
				on_readable(c);
		}
	}
	for (size_t fd = 0; fd < table_size; fd++)
		if (table[fd])
			close_client(table[fd]);
	free(table);
	return 0;
}
