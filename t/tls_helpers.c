/* Certificates for the TLS suites (see tls_helpers.h). */
#define _GNU_SOURCE
#include "tls_helpers.h"

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static EVP_PKEY *new_key(void) { return EVP_EC_gen("P-256"); }

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext)
        return -1;
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

/* A certificate for key, signed by (issuer, ikey), or self-signed when issuer is NULL;
 * valid from now+from_days to now+to_days. san: subjectAltName or NULL. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *ikey, long from_days,
                       long to_days, const char *san, int ca, long serial)
{
    X509 *x = X509_new();
    if (!x)
        return NULL;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_gmtime_adj(X509_getm_notBefore(x), from_days * 86400);
    X509_gmtime_adj(X509_getm_notAfter(x), to_days * 86400);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    X509 *iss = issuer ? issuer : x;
    int bad = 0;
    if (ca) {
        bad |= add_ext(x, iss, NID_basic_constraints, "critical,CA:TRUE");
        bad |= add_ext(x, iss, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        bad |= add_ext(x, iss, NID_basic_constraints, "CA:FALSE");
        bad |= add_ext(x, iss, NID_ext_key_usage, "serverAuth,clientAuth");
    }
    bad |= add_ext(x, iss, NID_subject_key_identifier, "hash");
    if (san)
        bad |= add_ext(x, iss, NID_subject_alt_name, san);
    if (bad || !X509_sign(x, issuer ? ikey : key, EVP_sha256())) {
        X509_free(x);
        return NULL;
    }
    return x;
}

static int write_pem(const char *path, X509 *x, EVP_PKEY *k)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    int ok = x ? PEM_write_X509(f, x) : PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

static int leaf(struct th_certs *c, const char *cert_path, const char *key_path, const char *cn,
                const char *san, long from, long to, X509 *ca, EVP_PKEY *cakey, long serial)
{
    EVP_PKEY *k = new_key();
    X509 *x = k ? make_cert(k, cn, ca, cakey, from, to, san, 0, serial) : NULL;
    int rc = (x && write_pem(cert_path, x, NULL) == 0 && write_pem(key_path, NULL, k) == 0) ? 0 : -1;
    (void)c;
    X509_free(x);
    EVP_PKEY_free(k);
    return rc;
}

int th_certs_make(struct th_certs *c)
{
    memset(c, 0, sizeof *c);
    const char *tmp = getenv("TMPDIR");
    snprintf(c->dir, sizeof c->dir, "%s/twistc-tls-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(c->dir))
        return -1;
#define P(field, name) snprintf(c->field, sizeof c->field, "%s/" name, c->dir)
    P(ca, "ca.pem");
    P(cert, "server.pem");
    P(key, "server.key");
    P(expired, "expired.pem");
    P(expired_key, "expired.key");
    P(wrong, "wrong.pem");
    P(wrong_key, "wrong.key");
    P(client, "client.pem");
    P(client_key, "client.key");
    P(other_ca, "other-ca.pem");
#undef P
    EVP_PKEY *cak = new_key(), *ok = new_key();
    X509 *ca = cak ? make_cert(cak, "twistc test CA", NULL, NULL, -1, 30, NULL, 1, 1) : NULL;
    X509 *other = ok ? make_cert(ok, "twistc other CA", NULL, NULL, -1, 30, NULL, 1, 2) : NULL;
    const char *san = "DNS:localhost,IP:127.0.0.1,IP:::1";
    int rc = (ca && other && write_pem(c->ca, ca, NULL) == 0 &&
              write_pem(c->other_ca, other, NULL) == 0 &&
              leaf(c, c->cert, c->key, "localhost", san, -1, 30, ca, cak, 10) == 0 &&
              leaf(c, c->expired, c->expired_key, "localhost", san, -10, -2, ca, cak, 11) == 0 &&
              leaf(c, c->wrong, c->wrong_key, "other.example", "DNS:other.example", -1, 30, ca,
                   cak, 12) == 0 &&
              leaf(c, c->client, c->client_key, "twistc test client", NULL, -1, 30, ca, cak,
                   13) == 0)
                 ? 0
                 : -1;
    X509_free(ca);
    X509_free(other);
    EVP_PKEY_free(cak);
    EVP_PKEY_free(ok);
    if (rc < 0)
        th_certs_remove(c);
    return rc;
}

void th_certs_remove(struct th_certs *c)
{
    const char *files[] = {c->ca,    c->cert,  c->key,       c->expired,    c->expired_key,
                           c->wrong, c->wrong_key, c->client, c->client_key, c->other_ca};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        if (files[i][0])
            unlink(files[i]);
    if (c->dir[0])
        rmdir(c->dir);
    c->dir[0] = '\0';
}
