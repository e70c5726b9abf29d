/* bench_tls.h: the OpenSSL set-up shared by the TLS comparison servers (server_raw_tls.c,
 * server_libevent_tls.c): one server context made the same way for both, so that the
 * measurements differ only by how each server drives OpenSSL, never by what OpenSSL is
 * asked to do. twistc's notif-server makes its own context (reactor/tls*); what matters
 * for a fair comparison is listed here and in docs/tls.md "Performance": minimum TLS 1.2,
 * OpenSSL's default ciphers, groups and session tickets, SSL_MODE_RELEASE_BUFFERS.
 *
 * Static inline functions, like bench_common.h (every bench program is one .c file). */
#ifndef TWISTC_BENCH_TLS_H
#define TWISTC_BENCH_TLS_H

#include <stdio.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

/* Ends a message on stderr with ": OpenSSL's reasons" and empties the error queue. */
static inline void bench_tls_reasons(void)
{
	unsigned long e;
	char buf[256];
	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof buf);
		fprintf(stderr, ": %s", buf);
	}
	fputc('\n', stderr);
}

/* Prints "NAME: WHAT: OpenSSL's reasons" on stderr and empties the error queue. */
static inline void bench_tls_error(const char *name, const char *what)
{
	fprintf(stderr, "%s: %s", name, what);
	bench_tls_reasons();
}

/* A server context: the certificate chain and the private key from PEM files (checked to
 * match), TLS 1.2 at least, and idle connections holding no record buffers
 * (SSL_MODE_RELEASE_BUFFERS: the read and write buffers, ~17 KiB each, are freed when
 * empty and allocated again by the next record). Returns NULL after saying why. */
static inline SSL_CTX *bench_tls_server_ctx(const char *name, const char *cert, const char *key)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		bench_tls_error(name, "SSL_CTX_new");
		return NULL;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
		bench_tls_error(name, "cannot set the minimum version");
	} else if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		fprintf(stderr, "%s: certificate %s", name, cert);
		bench_tls_reasons();
	} else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		fprintf(stderr, "%s: private key %s", name, key);
		bench_tls_reasons();
	} else if (SSL_CTX_check_private_key(ctx) != 1) {
		fprintf(stderr, "%s: %s does not match %s", name, key, cert);
		bench_tls_reasons();
	} else {
		SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
		return ctx;
	}
	SSL_CTX_free(ctx);
	return NULL;
}

#endif
