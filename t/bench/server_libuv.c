#define _GNU_SOURCE
/* server_libuv: the notification protocol (shared/spec/protocol.md) written the usual
 * libuv way (uv_tcp_t per client, uv_read_start, a repeating uv_timer), as a comparison
 * point for the library's server. Reads land in one static 64 KiB buffer (the callback
 * consumes it before returning); only an incomplete line is kept per client. The answers
 * to one read are gathered and sent with uv_try_write, falling back to a queued uv_write
 * (with a copy) for what the socket does not take.
 *
 * Options: --port N (6789; 0 picks one), --bind ADDR (127.0.0.1), --interval SECONDS (1),
 * --max-clients N (0 = no limit), --cap BYTES (1 MiB). Prints "port=N" once listening. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "bench_common.h"

#define MAX_LINE BENCH_MAX_LINE
#define RBUF_SIZE (64 * 1024)
#define OBUF_SIZE (64 * 1024)

struct client {
	uv_tcp_t tcp; /* first: the handle's address is the client's */
	int notify, closing, draining, eof, dead;
	size_t pending; /* bytes queued in uv_write requests */
	uint16_t in_len;
	char *in;
	struct client *prev, *next;
	uv_shutdown_t shut;
};

struct wreq {
	uv_write_t req;
	struct client *c;
	size_t len;
	char data[];
};

static uv_loop_t *loop;
static uv_tcp_t server;
static struct client subs = {.prev = &subs, .next = &subs};
static char rbuf[RBUF_SIZE];
static int rbuf_busy;
static char obuf[OBUF_SIZE];
static size_t olen;
static unsigned cur_ad;
static uint64_t rng = BENCH_RNG_INIT;
static long max_clients, nclients;
static size_t cap;
static unsigned long long stat_conns, stat_requests, stat_notifs, stat_slow;

static void unsubscribe(struct client *c)
{
	if (c->notify) {
		c->prev->next = c->next;
		c->next->prev = c->prev;
		c->notify = 0;
	}
}

static void on_closed(uv_handle_t *h)
{
	struct client *c = (struct client *)h;
	free(c->in);
	free(c);
}

static void close_client(struct client *c)
{
	if (c->dead)
		return;
	c->dead = 1;
	unsubscribe(c);
	nclients--;
	uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct client *c = req->data;
	if (status < 0)
		close_client(c);
	/* else keep reading (and discarding) until the peer closes */
}

/* All owed output is queued: half-close after it (uv_shutdown waits for queued writes),
 * then discard input until EOF. */
static void finish(struct client *c)
{
	if (c->dead)
		return;
	if (c->eof) {
		if (!c->pending)
			close_client(c);
		return;
	}
	unsubscribe(c);
	c->draining = 1;
	c->shut.data = c;
	if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown) < 0)
		close_client(c);
}

static void on_written(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;
	struct client *c = w->c;
	c->pending -= w->len;
	free(w);
	if (status < 0) {
		close_client(c);
		return;
	}
	if (c->eof && !c->pending)
		close_client(c);
}

static int flush_out(struct client *c)
{
	if (!olen || c->dead)
		return c->dead ? -1 : 0;
	size_t len = olen, done = 0;
	olen = 0;
	if (!c->pending) {
		uv_buf_t b = uv_buf_init(obuf, (unsigned)len);
		int r = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
		if (r < 0 && r != UV_EAGAIN) {
			close_client(c);
			return -1;
		}
		done = r > 0 ? (size_t)r : 0;
		if (done == len)
			return 0;
	}
	size_t rest = len - done;
	if (c->pending + rest > cap) {
		stat_slow++;
		close_client(c);
		return -1;
	}
	struct wreq *w = malloc(sizeof *w + rest);
	if (!w) {
		close_client(c);
		return -1;
	}
	w->c = c;
	w->len = rest;
	memcpy(w->data, obuf + done, rest);
	uv_buf_t b = uv_buf_init(w->data, (unsigned)rest);
	if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0) {
		free(w);
		close_client(c);
		return -1;
	}
	c->pending += rest;
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
	if (n == 7 && memcmp(l, "random?", 7) == 0) {
		char num[8];
		size_t k = bench_format_number(num, bench_rand_below(&rng, 100000));
		return out_append(c, num, k) < 0 ? LINE_CLOSED : LINE_OK;
	}
	if (n == 11 && memcmp(l, "classified?", 11) == 0) {
		const char *ad = bench_ads[cur_ad];
		if (out_append(c, ad, strlen(ad)) < 0 || out_append(c, "\n", 1) < 0)
			return LINE_CLOSED;
		return LINE_OK;
	}
	if (n == 6 && memcmp(l, "notify", 6) == 0) {
		if (!c->notify) {
			c->notify = 1;
			c->next = &subs;
			c->prev = subs.prev;
			subs.prev->next = c;
			subs.prev = c;
		}
		return LINE_OK;
	}
	if (n == 4 && memcmp(l, "stop", 4) == 0) {
		unsubscribe(c);
		return LINE_OK;
	}
	if (n == 4 && memcmp(l, "quit", 4) == 0)
		return LINE_QUIT;
	return out_append(c, bench_msg_unknown, sizeof bench_msg_unknown - 1) < 0 ? LINE_CLOSED : LINE_OK;
}

static void flush_and_finish(struct client *c)
{
	if (flush_out(c) < 0)
		return;
	c->closing = 1;
	finish(c);
}

static void too_long(struct client *c)
{
	if (out_append(c, bench_msg_too_long, sizeof bench_msg_too_long - 1) < 0)
		return;
	flush_and_finish(c);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	(void)suggested;
	/* One shared buffer: read_cb consumes it before the next read. */
	if (rbuf_busy) {
		*buf = uv_buf_init(NULL, 0);
		return;
	}
	rbuf_busy = 1;
	*buf = uv_buf_init(rbuf, RBUF_SIZE);
}

static void process(struct client *c, const char *p, const char *end)
{
	if (c->in_len) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t take = nl ? (size_t)(nl - p) : (size_t)(end - p);
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
		free(c->in);
		c->in = NULL;
	}
	flush_out(c);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct client *c = (struct client *)s;
	if (buf->base == rbuf)
		rbuf_busy = 0;
	if (nread == 0 || c->dead)
		return;
	if (nread < 0) {
		if (nread == UV_EOF && !c->draining && c->pending) {
			/* Half-close with answers owed: deliver them, then close. */
			c->eof = 1;
			uv_read_stop(s);
			return;
		}
		close_client(c);
		return;
	}
	if (c->draining || c->closing)
		return;
	process(c, buf->base, buf->base + nread);
}

static void on_connection(uv_stream_t *srv, int status)
{
	if (status < 0)
		return;
	struct client *c = calloc(1, sizeof *c);
	if (!c)
		return;
	uv_tcp_init(loop, &c->tcp);
	if (uv_accept(srv, (uv_stream_t *)&c->tcp) < 0) {
		uv_close((uv_handle_t *)&c->tcp, on_closed);
		return;
	}
	nclients++;
	stat_conns++;
	if (max_clients && nclients > max_clients) {
		olen = 0;
		out_append(c, bench_msg_full, sizeof bench_msg_full - 1);
		flush_out(c);
		close_client(c);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

static void timer_cb(uv_timer_t *t)
{
	(void)t;
	size_t len;
	const char *line = bench_next_notification(&cur_ad, &len);
	for (struct client *c = subs.next, *next; c != &subs; c = next) {
		next = c->next;
		stat_notifs++;
		olen = 0;
		out_append(c, line, len);
		flush_out(c);
	}
}

static void close_walk(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h)) {
		if (h->type == UV_TCP && h != (uv_handle_t *)&server)
			close_client((struct client *)h);
		else
			uv_close(h, NULL);
	}
}

static void signal_cb(uv_signal_t *s, int sig)
{
	(void)s;
	(void)sig;
	uv_stop(loop);
}

int main(int argc, char **argv)
{
	struct bench_server_opts o;
	if (bench_server_parse(argc, argv, "server_libuv", &o))
		return 2;
	max_clients = o.max_clients;
	cap = o.cap;
	struct sockaddr_in sin;
	if (uv_ip4_addr(o.bind_addr, o.port, &sin) < 0) {
		fprintf(stderr, "server_libuv: bad arguments\n");
		return 2;
	}
	bench_process_setup();
	bench_rng_seed(&rng, uv_hrtime());
	loop = uv_default_loop();
	uv_tcp_init(loop, &server);
	int r = uv_tcp_bind(&server, (const struct sockaddr *)&sin, 0);
	if (!r)
		r = uv_listen((uv_stream_t *)&server, 4096, on_connection);
	if (r) {
		fprintf(stderr, "server_libuv: cannot listen on %s:%d: %s\n", o.bind_addr, o.port, uv_strerror(r));
		return 1;
	}
	int namelen = sizeof sin;
	uv_tcp_getsockname(&server, (struct sockaddr *)&sin, &namelen);
	bench_announce_port(ntohs(sin.sin_port));

	uv_timer_t timer;
	uv_timer_init(loop, &timer);
	uint64_t ms = (uint64_t)(o.interval * 1000.0);
	if (!ms)
		ms = 1;
	uv_timer_start(&timer, timer_cb, ms, ms);
	uv_signal_t sigint, sigterm;
	uv_signal_init(loop, &sigint);
	uv_signal_init(loop, &sigterm);
	uv_signal_start(&sigint, signal_cb, SIGINT);
	uv_signal_start(&sigterm, signal_cb, SIGTERM);

	uv_run(loop, UV_RUN_DEFAULT);

	bench_print_stats("server_libuv", stat_conns, stat_requests, stat_notifs, stat_slow);
	uv_walk(loop, close_walk, NULL);
	uv_run(loop, UV_RUN_DEFAULT);
	uv_loop_close(loop);
	return 0;
}
