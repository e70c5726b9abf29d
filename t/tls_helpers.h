/* Throwaway certificates for the TLS suites, made with the OpenSSL API at run time (no
 * key is ever committed): a CA, and certificates it signs for 127.0.0.1/localhost (good,
 * expired, for another host), plus a client certificate. EC P-256 keys: fast to make. */
#ifndef TWISTC_T_TLS_HELPERS_H
#define TWISTC_T_TLS_HELPERS_H

#define TH_PATH 192
#define TH_DIR 128

struct th_certs {
    char dir[TH_DIR];
    char ca[TH_PATH];         /* the CA's certificate (PEM) */
    char cert[TH_PATH], key[TH_PATH];       /* localhost, 127.0.0.1, ::1 */
    char expired[TH_PATH], expired_key[TH_PATH];
    char wrong[TH_PATH], wrong_key[TH_PATH]; /* for "other.example" only */
    char client[TH_PATH], client_key[TH_PATH]; /* CN=twistc test client */
    char other_ca[TH_PATH];   /* a CA that signed none of them */
};

/* Makes them in a fresh directory under $TMPDIR (or /tmp); 0 or -1. */
int th_certs_make(struct th_certs *c);
/* Removes the files and the directory. */
void th_certs_remove(struct th_certs *c);

#endif
