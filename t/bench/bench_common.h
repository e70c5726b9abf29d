/* bench_common.h: what the comparison servers (server_raw.c, server_libuv.c,
 * server_libevent.c, their TLS twins server_raw_tls.c and server_libevent_tls.c, whose
 * OpenSSL set-up is in bench_tls.h) and echo_raw.c do alike, whatever their event library: command-line
 * options, process set-up, and the protocol work of shared/spec/protocol.md that does
 * not touch I/O (ads, random numbers, digits, command names, notification lines).
 *
 * A header of static inline functions and static const data, not a .c file, because
 * every bench program is built standalone from its one .c (see the Makefile's
 * $(BUILD)/bench/% rule). Keeping the protocol work here, written once, is what makes
 * the servers differ only by their framework: the measurements compare the libraries'
 * idioms, so nothing that does I/O or buffering belongs in this file.
 *
 * Every includer defines _GNU_SOURCE first (SOCK_NONBLOCK, accept4, MSG_NOSIGNAL). */
#ifndef TWISTC_BENCH_COMMON_H
#define TWISTC_BENCH_COMMON_H

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* protocol.md: a line is at most 1024 bytes, not counting its LF; a CR before the LF is
 * allowed on top (1025 bytes). */
#define BENCH_MAX_LINE 1024

static const char *const bench_ads[] = {
	"nice flat in the 11e",
	"bicycle for sale, barely used",
	"looking for a C programmer who likes Twisted",
	"piano lessons, first one free",
	"lost cat answering to Reactor",
	"sunny room near the canal",
};
#define BENCH_N_ADS (sizeof bench_ads / sizeof bench_ads[0])

static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The random-number state starts from this constant, mixed with a clock at start-up
 * (bench_rng_seed). The state is the caller's: a static of each server. */
#define BENCH_RNG_INIT 0x9e3779b97f4a7c15ull

static inline void bench_rng_seed(uint64_t *rng, uint64_t clock_ns)
{
	*rng ^= clock_ns * 0x9E3779B97F4A7C15ull;
}

/* xorshift64*: fast, good enough for demo numbers. A number in [0, n). */
static inline uint32_t bench_rand_below(uint64_t *rng, uint32_t n)
{
	uint64_t x = *rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*rng = x;
	return (uint32_t)(((x * 0x2545F4914F6CDD1Dull) >> 32) % n);
}

/* protocol.md's answer to random?: decimal digits of v (< 10,000,000) followed by LF,
 * into p (at least 8 bytes); returns the length. server_raw writes the same digits
 * in place instead (no copy): folding it onto this function made the compiler call
 * memcpy here, a few instructions per request more, so it was left as it is. */
static inline size_t bench_format_number(char *p, uint32_t v)
{
	char tmp[8];
	int k = 7;
	tmp[k--] = '\n';
	do {
		tmp[k--] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	size_t n = (size_t)(7 - k);
	memcpy(p, tmp + k + 1, n);
	return n;
}

/* The fixed answers and notices (lengths without a terminating NUL: sizeof - 1). */
static const char bench_msg_unknown[] = "error: unknown command\n";
static const char bench_msg_too_long[] = "error: line too long\n";
static const char bench_msg_full[] = "error: server full\n";

/* True when a line of n bytes (LF not counted), or a partial line of n bytes so far,
 * is over the limit: more than 1025 bytes, or 1025 whose last is not the allowed CR. */
static inline int bench_line_too_long(const char *p, size_t n)
{
	return n > BENCH_MAX_LINE + 1 || (n == BENCH_MAX_LINE + 1 && p[BENCH_MAX_LINE] != '\r');
}

/* The next timer notification: every other one announces a new classified ad (and
 * moves *cur_ad to it), the others a random number. Returns the line, its length in
 * *len. */
static inline const char *bench_next_notification(unsigned *cur_ad, size_t *len)
{
	static unsigned tick;
	if (tick++ & 1) {
		*cur_ad = (*cur_ad + 1) % (unsigned)BENCH_N_ADS;
		*len = 18;
		return "notif: classified\n";
	}
	*len = 14;
	return "notif: random\n";
}

/* The options every notification server takes. */
struct bench_server_opts {
	int port;              /* --port N (6789; 0 picks one) */
	const char *bind_addr; /* --bind ADDR (127.0.0.1) */
	double interval;       /* --interval SECONDS (1) */
	long max_clients;      /* --max-clients N (0 = no limit) */
	size_t cap;            /* --cap BYTES (1 MiB pending output per connection) */
	const char *tls_cert;  /* --tls-cert FILE (PEM chain): TLS servers only, required there */
	const char *tls_key;   /* --tls-key FILE (PEM private key): likewise */
};

/* Parses the options above (tls: the server speaks TLS, so --tls-cert and --tls-key are
 * required; a plaintext server refuses them). Returns 0, or 2 (the exit status) after
 * printing usage or "NAME: bad arguments" (port out of range, interval <= 0, a stray
 * argument). The bind address is checked by the caller, in its library's way. */
static inline int bench_server_parse_opts(int argc, char **argv, const char *name,
					  struct bench_server_opts *o, int tls)
{
	static const struct option lopts[] = {
		{"port", 1, 0, 'p'}, {"bind", 1, 0, 'b'}, {"interval", 1, 0, 'i'},
		{"max-clients", 1, 0, 'm'}, {"cap", 1, 0, 'c'}, {"tls-cert", 1, 0, 'C'},
		{"tls-key", 1, 0, 'K'}, {0, 0, 0, 0}};
	int ch;
	o->port = 6789;
	o->bind_addr = "127.0.0.1";
	o->interval = 1.0;
	o->max_clients = 0;
	o->cap = 1 << 20;
	o->tls_cert = o->tls_key = NULL;
	while ((ch = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (ch) {
		case 'p': o->port = atoi(optarg); break;
		case 'b': o->bind_addr = optarg; break;
		case 'i': o->interval = atof(optarg); break;
		case 'm': o->max_clients = atol(optarg); break;
		case 'c': o->cap = (size_t)atol(optarg); break;
		case 'C': o->tls_cert = optarg; break;
		case 'K': o->tls_key = optarg; break;
		default:
			fprintf(stderr, "usage: %s [--port N] [--bind ADDR] [--interval S] [--max-clients N] [--cap BYTES]%s\n",
				name, tls ? " --tls-cert FILE --tls-key FILE" : "");
			return 2;
		}
	}
	if (o->port < 0 || o->port > 65535 || o->interval <= 0 || optind != argc ||
	    (tls ? !o->tls_cert || !o->tls_key : o->tls_cert || o->tls_key)) {
		fprintf(stderr, "%s: bad arguments\n", name);
		return 2;
	}
	return 0;
}

/* The plaintext servers' options. */
static inline int bench_server_parse(int argc, char **argv, const char *name,
				     struct bench_server_opts *o)
{
	return bench_server_parse_opts(argc, argv, name, o, 0);
}

/* Process set-up of every server: room for many connections (the 100k benchmark: ask
 * for 2^20 descriptors, which root may raise the hard limit to, else take the hard
 * limit), and no SIGPIPE (writes to a closed peer fail with EPIPE instead). */
static inline void bench_process_setup(void)
{
	struct rlimit rl = {1 << 20, 1 << 20};
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0 && getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
}

/* The line the scripts wait for: the port actually bound (--port 0 picks one). */
static inline void bench_announce_port(int port)
{
	printf("port=%d\n", port);
	fflush(stdout);
}

/* The closing summary of a notification server, on stderr. */
static inline void bench_print_stats(const char *name, unsigned long long conns,
				     unsigned long long requests, unsigned long long notifs,
				     unsigned long long slow)
{
	fprintf(stderr, "%s: connections=%llu requests=%llu notifications=%llu slow_dropped=%llu\n",
		name, conns, requests, notifs, slow);
}

/* For the servers written straight on epoll (server_raw, echo_raw): a non-blocking
 * listening socket on sin (SO_REUSEADDR, backlog 4096), whose bound port is announced.
 * Returns it, or -1 after saying why on stderr. */
static inline int bench_listen_tcp4(const char *name, struct sockaddr_in *sin, const char *bind_addr, int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (fd < 0 || bind(fd, (struct sockaddr *)sin, sizeof *sin) < 0 || listen(fd, 4096) < 0) {
		fprintf(stderr, "%s: cannot listen on %s:%d: %s\n", name, bind_addr, port, strerror(errno));
		return -1;
	}
	socklen_t sl = sizeof *sin;
	getsockname(fd, (struct sockaddr *)sin, &sl);
	bench_announce_port(ntohs(sin->sin_port));
	return fd;
}

/* For the fd-indexed client tables of the epoll servers: the table old of *size
 * entries of elem bytes grown (doubling) until index fd fits, the new entries zeroed.
 * Returns the new table (*size updated), or NULL with old and *size untouched. */
static inline void *bench_table_grow(void *old, size_t *size, int fd, size_t elem)
{
	size_t ns = *size * 2;
	while (ns <= (size_t)fd)
		ns *= 2;
	char *nt = realloc(old, ns * elem);
	if (!nt)
		return NULL;
	memset(nt + *size * elem, 0, (ns - *size) * elem);
	*size = ns;
	return nt;
}

#endif
