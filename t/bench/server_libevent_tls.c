#define _GNU_SOURCE
/* server_libevent_tls: the TLS twin of server_libevent.c: the notification protocol
 * (shared/spec/protocol.md) over TLS the usual libevent 2 way, one
 * bufferevent_openssl_socket_new() per accepted socket (libevent drives SSL_read and
 * SSL_write on the socket and fills the same evbuffers as plaintext), the protocol code
 * of server_libevent.c unchanged. A comparison point for twistc's notif-server --tls-cert
 * --tls-key; the OpenSSL context is made exactly as server_raw_tls.c's (bench_tls.h).
 *
 * Where plaintext half-closes, TLS sends close_notify (SSL_shutdown) before the TCP
 * half-close; a peer that closes without close_notify is an EOF like any other
 * (bufferevent_openssl_set_allow_dirty_shutdown). Over --max-clients a connection is told
 * "error: server full" after its handshake (libevent holds the output until then).
 *
 * Options: those of server_libevent and --tls-cert FILE --tls-key FILE (required).
 * Prints "port=N" once listening. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "bench_common.h"
#include "bench_tls.h"

#define MAX_LINE BENCH_MAX_LINE

struct client {
	struct bufferevent *bev;
	int notify, closing, draining, eof;
	struct client *prev, *next; /* subscribers */
};

static struct event_base *base;
static SSL_CTX *ctx;
static struct client subs = {.prev = &subs, .next = &subs};
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

static void free_client(struct client *c)
{
	unsubscribe(c);
	bufferevent_free(c->bev);
	free(c);
	nclients--;
}

/* Everything owed has been written: half-close, then discard input until the peer
 * closes (a bounded read timeout covers a peer that never does). */
static void finish(struct client *c)
{
	if (c->eof) {
		free_client(c);
		return;
	}
	unsubscribe(c);
	/* close_notify goes straight to the socket (libevent's socket BIO), then the TCP
	 * half-close. */
	if (SSL_shutdown(bufferevent_openssl_get_ssl(c->bev)) < 0)
		ERR_clear_error();
	shutdown(bufferevent_getfd(c->bev), SHUT_WR);
	c->draining = 1;
	struct timeval tv = {5, 0};
	bufferevent_set_timeouts(c->bev, &tv, NULL);
}

static void close_after_flush(struct client *c)
{
	c->closing = 1;
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		finish(c);
	/* else the write callback finishes once the output is drained */
}

static void answer_line(struct client *c, struct evbuffer *out, const char *l, size_t n)
{
	if (n && l[n - 1] == '\r')
		n--;
	if (!n)
		return;
	stat_requests++;
	if (n == 7 && memcmp(l, "random?", 7) == 0) {
		char num[8];
		size_t k = bench_format_number(num, bench_rand_below(&rng, 100000));
		evbuffer_add(out, num, k);
	} else if (n == 11 && memcmp(l, "classified?", 11) == 0) {
		evbuffer_add(out, bench_ads[cur_ad], strlen(bench_ads[cur_ad]));
		evbuffer_add(out, "\n", 1);
	} else if (n == 6 && memcmp(l, "notify", 6) == 0) {
		if (!c->notify) {
			c->notify = 1;
			c->next = &subs;
			c->prev = subs.prev;
			subs.prev->next = c;
			subs.prev = c;
		}
	} else if (n == 4 && memcmp(l, "stop", 4) == 0) {
		unsubscribe(c);
	} else if (n == 4 && memcmp(l, "quit", 4) == 0) {
		c->closing = 1;
	} else {
		evbuffer_add(out, bench_msg_unknown, sizeof bench_msg_unknown - 1);
	}
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer *out = bufferevent_get_output(bev);
	if (c->draining || c->closing) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	for (;;) {
		size_t eol_len = 0;
		struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
		if (eol.pos < 0)
			break;
		size_t n = (size_t)eol.pos;
		if (n > MAX_LINE + 1 || (n == MAX_LINE + 1 && ((const char *)evbuffer_pullup(in, (ssize_t)n))[MAX_LINE] != '\r')) {
			evbuffer_add(out, bench_msg_too_long, sizeof bench_msg_too_long - 1);
			evbuffer_drain(in, evbuffer_get_length(in));
			close_after_flush(c);
			return;
		}
		const char *l = (const char *)evbuffer_pullup(in, (ssize_t)(n + 1));
		answer_line(c, out, l, n);
		evbuffer_drain(in, n + 1);
		if (c->closing) { /* quit */
			evbuffer_drain(in, evbuffer_get_length(in));
			c->closing = 0;
			close_after_flush(c);
			return;
		}
	}
	if (evbuffer_get_length(out) > cap) {
		/* A peer that sends requests but does not read the answers. */
		stat_slow++;
		free_client(c);
		return;
	}
	size_t rest = evbuffer_get_length(in);
	if (rest > MAX_LINE + 1 || (rest == MAX_LINE + 1 && ((const char *)evbuffer_pullup(in, -1))[MAX_LINE] != '\r')) {
		evbuffer_add(out, bench_msg_too_long, sizeof bench_msg_too_long - 1);
		evbuffer_drain(in, rest);
		close_after_flush(c);
	}
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;
	(void)bev;
	if (c->closing && !c->draining)
		finish(c);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct client *c = arg;
	if (what & BEV_EVENT_CONNECTED)
		return; /* the handshake is done */
	if (what & BEV_EVENT_ERROR)
		ERR_clear_error(); /* the next connection's SSL_get_error must not see it */
	if ((what & BEV_EVENT_EOF) && !c->draining &&
	    evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
		/* Half-close with answers owed: deliver them, then close. */
		c->eof = 1;
		c->closing = 1;
		bufferevent_disable(bev, EV_READ);
		return;
	}
	free_client(c);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
	(void)l;
	(void)sa;
	(void)len;
	(void)arg;
	struct client *c = calloc(1, sizeof *c);
	SSL *ssl = c ? SSL_new(ctx) : NULL;
	if (!ssl) {
		ERR_clear_error();
		evutil_closesocket(fd);
		free(c);
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	/* The bufferevent owns the SSL and (BEV_OPT_CLOSE_ON_FREE) the socket. */
	c->bev = bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev) {
		SSL_free(ssl);
		evutil_closesocket(fd);
		free(c);
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	nclients++;
	stat_conns++;
	if (max_clients && nclients > max_clients) {
		evbuffer_add(bufferevent_get_output(c->bev), bench_msg_full, sizeof bench_msg_full - 1);
		close_after_flush(c);
	}
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	size_t len;
	const char *line = bench_next_notification(&cur_ad, &len);
	for (struct client *c = subs.next, *next; c != &subs; c = next) {
		next = c->next;
		struct evbuffer *out = bufferevent_get_output(c->bev);
		if (evbuffer_get_length(out) + len > cap) {
			stat_slow++;
			free_client(c);
			continue;
		}
		evbuffer_add(out, line, len);
		stat_notifs++;
	}
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	(void)arg;
	event_base_loopbreak(base);
}

int main(int argc, char **argv)
{
	struct bench_server_opts o;
	if (bench_server_parse_opts(argc, argv, "server_libevent_tls", &o, 1))
		return 2;
	max_clients = o.max_clients;
	cap = o.cap;
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o.port)};
	if (inet_pton(AF_INET, o.bind_addr, &sin.sin_addr) != 1) {
		fprintf(stderr, "server_libevent_tls: bad arguments\n");
		return 2;
	}
	bench_process_setup();
	bench_rng_seed(&rng, bench_now_ns());
	ctx = bench_tls_server_ctx("server_libevent_tls", o.tls_cert, o.tls_key);
	if (!ctx)
		return 1;

	base = event_base_new();
	if (!base)
		return 1;
	struct evconnlistener *lst = evconnlistener_new_bind(base, accept_cb, NULL,
		LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 4096,
		(struct sockaddr *)&sin, sizeof sin);
	if (!lst) {
		fprintf(stderr, "server_libevent_tls: cannot listen on %s:%d: %s\n", o.bind_addr, o.port, strerror(errno));
		return 1;
	}
	socklen_t sl = sizeof sin;
	getsockname(evconnlistener_get_fd(lst), (struct sockaddr *)&sin, &sl);
	bench_announce_port(ntohs(sin.sin_port));

	struct event *timer = event_new(base, -1, EV_PERSIST, timer_cb, NULL);
	struct timeval tv = {(time_t)o.interval, (suseconds_t)((o.interval - (double)(time_t)o.interval) * 1e6)};
	event_add(timer, &tv);
	struct event *sigint = evsignal_new(base, SIGINT, signal_cb, NULL);
	struct event *sigterm = evsignal_new(base, SIGTERM, signal_cb, NULL);
	event_add(sigint, NULL);
	event_add(sigterm, NULL);

	event_base_dispatch(base);

	bench_print_stats("server_libevent_tls", stat_conns, stat_requests, stat_notifs, stat_slow);
	event_free(timer);
	event_free(sigint);
	event_free(sigterm);
	evconnlistener_free(lst);
	event_base_free(base);
	SSL_CTX_free(ctx);
	return 0;
}
