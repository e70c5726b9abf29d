#define _GNU_SOURCE /* getopt_long */
/* smtp-send: mails the message read from stdin with smtp_send() (docs/smtp.md).
 *
 *   smtp-send --host H --port P --from A --to B [--to C ...] [--starttls] [--cafile F]
 *             [--user U --password P] [--helo NAME] [--timeout SECONDS] < message
 *
 * Exit 0 when the server took the message for at least one recipient; each recipient it
 * refused is printed on stdout as "refused reject@y.org: 550 5.1.1 no such user here".
 * Otherwise exit 1 with the failure (the step, the server's words) on one stderr line;
 * 2 for a usage error. --starttls requires STARTTLS (fails if not offered); --cafile
 * alone uses it when the server offers it. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <twistc/deferred.h>
#include <twistc/reactor.h>
#include <twistc/smtp.h>

static const char usage_text[] =
    "usage: smtp-send --host H --port P --from A --to B [--to C ...] [options] < message\n"
    "  --starttls          require STARTTLS (the server's certificate is checked)\n"
    "  --cafile F          trust these CAs (PEM) too; STARTTLS when offered\n"
    "  --user U --password P   AUTH (PLAIN or LOGIN), only over TLS\n"
    "  --helo NAME         the name given in EHLO (default: this host's name)\n"
    "  --timeout SECONDS   every step's timeout (default: RFC 5321's, 2 to 10 minutes)\n";

static void usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "smtp-send: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", usage_text);
    exit(2);
}

static int status = 1;

static deferred_result sent(deferred_result r, void *arg)
{
    smtp_result *res = smtp_result_get(&r);
    for (size_t i = 0; i < smtp_result_refused_count(res); i++) {
        printf("refused %s: %d ", smtp_result_refused_address(res, i),
               smtp_result_refused_code(res, i));
        /* The server's words on one line. */
        for (const char *p = smtp_result_refused_text(res, i); *p; p++)
            putchar(*p == '\n' ? ' ' : *p);
        putchar('\n');
    }
    fflush(stdout);
    status = 0;
    deferred_result_clear(&r);
    reactor_stop(arg);
    return deferred_none();
}

static deferred_result failed(deferred_result r, void *arg)
{
    fprintf(stderr, "smtp-send: %s\n", r.u.failure->message);
    deferred_result_clear(&r);
    reactor_stop(arg);
    return deferred_none();
}

static char *read_all(FILE *f, size_t *len)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
        if (n == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb)
                free(buf);
            buf = nb;
        }
    }
    if (buf && ferror(f)) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'h'},     {"port", required_argument, NULL, 'p'},
        {"from", required_argument, NULL, 'f'},     {"to", required_argument, NULL, 't'},
        {"starttls", no_argument, NULL, 's'},       {"cafile", required_argument, NULL, 'c'},
        {"user", required_argument, NULL, 'u'},     {"password", required_argument, NULL, 'w'},
        {"helo", required_argument, NULL, 'e'},     {"timeout", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, '?'},           {NULL, 0, NULL, 0},
    };
    const char *host = NULL, *from = NULL;
    const char **to = calloc((size_t)argc, sizeof *to);
    size_t n_to = 0;
    long port = 0;
    smtp_options o;
    memset(&o, 0, sizeof o);
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'h': host = optarg; break;
        case 'p':
            port = strtol(optarg, &end, 10);
            if (*end || port < 1 || port > 65535)
                usage_error("bad --port \"%s\"", optarg);
            break;
        case 'f': from = optarg; break;
        case 't': to[n_to++] = optarg; break;
        case 's': o.starttls = SMTP_STARTTLS_REQUIRED; break;
        case 'c': o.ca_file = optarg; break;
        case 'u': o.username = optarg; break;
        case 'w': o.password = optarg; break;
        case 'e': o.helo_name = optarg; break;
        case 'T':
            o.timeout = strtod(optarg, &end);
            if (*end || !(o.timeout > 0))
                usage_error("bad --timeout \"%s\"", optarg);
            break;
        default: usage_error("%s", "unknown option"); break;
        }
    }
    if (optind < argc)
        usage_error("unexpected argument \"%s\"", argv[optind]);
    if (!host || !port || !from || !n_to)
        usage_error("%s", "--host, --port, --from and at least one --to are needed");
    if (!o.username != !o.password)
        usage_error("%s", "--user and --password go together");
    size_t len = 0;
    char *msg = read_all(stdin, &len);
    if (!msg) {
        fprintf(stderr, "smtp-send: cannot read the message: %s\n", strerror(errno));
        return 1;
    }
    reactor *r = reactor_new();
    if (!r) {
        fprintf(stderr, "smtp-send: reactor_new: %s\n", strerror(errno));
        return 1;
    }
    deferred *d = smtp_send(r, host, (int)port, from, to, n_to, msg, len, &o);
    free(msg);
    if (!d) {
        fprintf(stderr, "smtp-send: %s\n", strerror(errno));
        return 1;
    }
    deferred_add_callbacks(d, sent, failed, r);
    if (!deferred_called(d))
        reactor_run(r);
    deferred_unref(d);
    reactor_free(r);
    free(to);
    return status;
}
