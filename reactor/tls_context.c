/* TLS contexts: one SSL_CTX with its certificates, verification and ALPN settings,
 * shared (reference counted) by the listeners, connectors and connections using it. */
#include "reactor/tls_context_internal.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TLS_DEFAULT_CLOSE_TIMEOUT 5.0
#define TLS_DEFAULT_HANDSHAKE_TIMEOUT 30.0

/* One line into err: what we tried, then OpenSSL's reason (the queue's first entry: the
 * cause, where later ones only say which call failed). */
static void set_err(char *err, size_t n, const char *fmt, ...)
{
    unsigned long e = ERR_peek_error();
    ERR_clear_error();
    if (!err || !n)
        return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(err, n, fmt, ap);
    va_end(ap);
    if (k >= 0 && (size_t)k < n && e) {
        const char *why = ERR_reason_error_string(e);
        snprintf(err + k, n - (size_t)k, ": %s", why ? why : "unknown OpenSSL error");
    }
}

/* A file OpenSSL is about to read: say plainly when it is missing or unreadable. */
static int check_file(const char *what, const char *path, char *err, size_t n)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = errno;
        if (err && n)
            snprintf(err, n, "cannot read %s '%s': %s", what, path, strerror(e));
        return -e;
    }
    fclose(f);
    return 0;
}

static tls_context *ctx_new(int server)
{
    tls_context *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->ssl = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!c->ssl) {
        free(c);
        errno = ENOMEM;
        return NULL;
    }
    atomic_init(&c->refs, 1);
    c->server = server;
    c->close_timeout = TLS_DEFAULT_CLOSE_TIMEOUT;
    c->handshake_timeout = TLS_DEFAULT_HANDSHAKE_TIMEOUT;
    SSL_CTX_set_min_proto_version(c->ssl, TLS1_2_VERSION);
    /* Idle connections give their record buffers back; the layer may hand SSL_write a
     * buffer that moved since a retry (the plaintext grows while the handshake runs). */
    SSL_CTX_set_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return c;
}

int tls_context_use_certificate(tls_context *c, const char *cert_file, const char *key_file,
                                char *err, size_t n)
{
    if (!c || !cert_file || !key_file)
        return -EINVAL;
    int rc = check_file("certificate file", cert_file, err, n);
    if (rc < 0)
        return rc;
    rc = check_file("key file", key_file, err, n);
    if (rc < 0)
        return rc;
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(c->ssl, cert_file) != 1) {
        set_err(err, n, "cannot load the certificate chain from '%s'", cert_file);
        return -EINVAL;
    }
    if (SSL_CTX_use_PrivateKey_file(c->ssl, key_file, SSL_FILETYPE_PEM) != 1) {
        set_err(err, n, "cannot use the private key in '%s' (with '%s')", key_file, cert_file);
        return -EINVAL;
    }
    if (SSL_CTX_check_private_key(c->ssl) != 1) {
        set_err(err, n, "the key in '%s' does not match the certificate in '%s'", key_file,
                cert_file);
        return -EINVAL;
    }
    return 0;
}

tls_context *tls_context_new_server(const char *cert_file, const char *key_file, char *err,
                                    size_t n)
{
    if (!cert_file || !key_file) {
        errno = EINVAL;
        return NULL;
    }
    tls_context *c = ctx_new(1);
    if (!c)
        return NULL;
    int rc = tls_context_use_certificate(c, cert_file, key_file, err, n);
    if (rc < 0) {
        tls_context_unref(c);
        errno = -rc;
        return NULL;
    }
    return c;
}

int tls_context_load_ca(tls_context *c, const char *cafile, const char *capath, char *err,
                        size_t n)
{
    if (!c || (!cafile && !capath))
        return -EINVAL;
    if (cafile) {
        int rc = check_file("CA file", cafile, err, n);
        if (rc < 0)
            return rc;
    }
    ERR_clear_error();
    if (SSL_CTX_load_verify_locations(c->ssl, cafile, capath) != 1) {
        set_err(err, n, "cannot load the CA certificates from '%s'", cafile ? cafile : capath);
        return -EINVAL;
    }
    return 0;
}

tls_context *tls_context_new_client(const char *cafile, const char *capath, char *err,
                                    size_t n)
{
    tls_context *c = ctx_new(0);
    if (!c)
        return NULL;
    /* The system's CA store. Its hashed directory is read lazily (only the certificates
     * a verification needs); the bundle file is parsed whole (~90 ms for Debian's 140
     * CAs), so it is loaded only when there is no directory or SSL_CERT_FILE names it.
     * A machine with neither still trusts cafile/capath. */
    const char *dir = getenv(X509_get_default_cert_dir_env());
    struct stat st;
    if (!dir)
        dir = X509_get_default_cert_dir();
    if (getenv(X509_get_default_cert_file_env()) || stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        SSL_CTX_set_default_verify_file(c->ssl);
    SSL_CTX_set_default_verify_dir(c->ssl);
    ERR_clear_error();
    if (cafile || capath) {
        int rc = tls_context_load_ca(c, cafile, capath, err, n);
        if (rc < 0) {
            tls_context_unref(c);
            errno = -rc;
            return NULL;
        }
    }
    tls_context_set_verify(c, TLS_VERIFY_PEER);
    return c;
}

int tls_context_set_verify(tls_context *c, int mode)
{
    if (!c || mode < TLS_VERIFY_NONE || mode > TLS_VERIFY_REQUIRE)
        return -EINVAL;
    int m = SSL_VERIFY_NONE;
    if (mode >= TLS_VERIFY_PEER)
        m = SSL_VERIFY_PEER;
    if (mode == TLS_VERIFY_REQUIRE && c->server)
        m |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(c->ssl, m, NULL);
    c->verify = mode;
    return 0;
}

/* Server side of ALPN: the first protocol of our list that the client offers. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned inlen, void *arg)
{
    (void)ssl;
    tls_context *c = arg;
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, outlen, c->alpn, (unsigned)c->alpn_len, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; /* no common protocol: go on without one */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

int tls_context_set_alpn(tls_context *c, const char *const *protos, size_t count)
{
    if (!c || (!protos && count))
        return -EINVAL;
    size_t len = 0;
    for (size_t i = 0; i < count; i++) {
        size_t l = protos[i] ? strlen(protos[i]) : 0;
        if (l == 0 || l > 255)
            return -EINVAL;
        len += 1 + l;
    }
    unsigned char *wire = NULL;
    if (len) {
        wire = malloc(len);
        if (!wire)
            return -ENOMEM;
        unsigned char *p = wire;
        for (size_t i = 0; i < count; i++) { /* the wire format: length-prefixed names */
            size_t l = strlen(protos[i]);
            *p++ = (unsigned char)l;
            memcpy(p, protos[i], l);
            p += l;
        }
    }
    free(c->alpn);
    c->alpn = wire;
    c->alpn_len = len;
    if (c->server)
        SSL_CTX_set_alpn_select_cb(c->ssl, wire ? alpn_select : NULL, c);
    else if (SSL_CTX_set_alpn_protos(c->ssl, wire, (unsigned)len) != 0) /* 0 is success */
        return -ENOMEM;
    return 0;
}

int tls_context_set_close_timeout(tls_context *c, double seconds)
{
    if (!c || !(seconds > 0))
        return -EINVAL;
    c->close_timeout = seconds;
    return 0;
}

int tls_context_set_handshake_timeout(tls_context *c, double seconds)
{
    if (!c || !(seconds >= 0) || seconds > 1e9)
        return -EINVAL;
    c->handshake_timeout = seconds;
    return 0;
}

void *tls_context_ssl_ctx(tls_context *c) { return c ? c->ssl : NULL; }

tls_context *tls_context_ref(tls_context *c)
{
    if (c)
        atomic_fetch_add(&c->refs, 1);
    return c;
}

void tls_context_unref(tls_context *c)
{
    if (!c || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    SSL_CTX_free(c->ssl);
    free(c->alpn);
    free(c);
}
