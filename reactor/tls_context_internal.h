/* The TLS context's fields, shared by tls_context.c and the layer. Internal. */
#ifndef TWISTC_TLS_CONTEXT_INTERNAL_H
#define TWISTC_TLS_CONTEXT_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>

#include <twistc/tls.h>

#include <openssl/ssl.h>

struct tls_context {
    SSL_CTX *ssl;
    atomic_int refs;
    int server;
    int verify;           /* TLS_VERIFY_* */
    double close_timeout; /* seconds lose_connection waits for the peer's close_notify */
    double handshake_timeout; /* seconds a handshake may take, 0: no limit */
    unsigned char *alpn;  /* ALPN wire format (length-prefixed names), or NULL */
    size_t alpn_len;
};

#endif
