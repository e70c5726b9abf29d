/* kv-server [PORT]: a tiny key-value server for kv-client (docs/protocols.md), one line
 * per request: "set KEY VALUE" -> "OK", "get KEY" -> the value or "(nil)", anything
 * else -> "error: unknown command". Prints "listening on 127.0.0.1:PORT" (0: any port).
 * Keys and values live in one small list shared by every connection. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <twistc/line_receiver.h>
#include <twistc/reactor.h>
#include <twistc/transport.h>

struct entry {
    struct entry *next;
    char *key, *value;
};
static struct entry *table;

static struct entry *find(const char *key, size_t klen)
{
    for (struct entry *e = table; e; e = e->next)
        if (strlen(e->key) == klen && memcmp(e->key, key, klen) == 0)
            return e;
    return NULL;
}

static int reply(line_receiver *lr, const char *s)
{
    return line_receiver_send_line(lr, s, strlen(s));
}

static int kv_line(line_receiver *lr, const char *line, size_t len)
{
    const char *sp = memchr(line, ' ', len);
    size_t cmd = sp ? (size_t)(sp - line) : len;
    const char *key = sp ? sp + 1 : line + len;
    size_t rest = len - (size_t)(key - line);
    if (cmd == 3 && memcmp(line, "get", 3) == 0) {
        struct entry *e = find(key, rest);
        return reply(lr, e ? e->value : "(nil)");
    }
    const char *vsp = memchr(key, ' ', rest);
    if (cmd == 3 && memcmp(line, "set", 3) == 0 && vsp) {
        size_t klen = (size_t)(vsp - key), vlen = rest - klen - 1;
        struct entry *e = find(key, klen);
        char *v = strndup(vsp + 1, vlen);
        if (!v)
            return reply(lr, "error: out of memory");
        if (!e && (e = calloc(1, sizeof *e)) && !(e->key = strndup(key, klen))) {
            free(e);
            e = NULL;
        }
        if (!e) {
            free(v);
            return reply(lr, "error: out of memory");
        }
        if (!e->value) {
            e->next = table;
            table = e;
        }
        free(e->value);
        e->value = v;
        return reply(lr, "OK");
    }
    return reply(lr, "error: unknown command");
}

static void kv_lost(line_receiver *lr, const protocol_reason *reason)
{
    free(lr);
}

static const line_receiver_ops kv_ops = {
    .delimiter = "\n", .line_received = kv_line, .connection_lost = kv_lost};

static protocol *build(factory *f, const struct sockaddr *addr, socklen_t len)
{
    line_receiver *lr = malloc(sizeof *lr);
    if (!lr || line_receiver_init(lr, &kv_ops) < 0) {
        free(lr);
        return NULL;
    }
    return &lr->base;
}

static const factory_ops kv_factory_ops = {.build_protocol = build};

int main(int argc, char **argv)
{
    reactor *r = reactor_new();
    factory f;
    factory_init(&f, &kv_factory_ops, NULL);
    listener *l = r ? reactor_listen_tcp(r, "127.0.0.1", argc > 1 ? atoi(argv[1]) : 7000, &f, 0)
                    : NULL;
    if (!l) {
        perror("kv-server");
        return 1;
    }
    printf("listening on 127.0.0.1:%d\n", listener_port(l));
    fflush(stdout);
    reactor_stop_on_signals(r);
    reactor_run(r);
    listener_free(l);
    reactor_free(r);
    while (table) {
        struct entry *e = table;
        table = e->next;
        free(e->key);
        free(e->value);
        free(e);
    }
    return 0;
}
