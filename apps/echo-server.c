/* echo-server: the smallest complete twistc protocol. Every line it gets, it sends back.
 *
 *   echo-server [PORT]     (default 8007; 0 picks a free port; prints "port=N")
 *   printf 'hello\n' | nc 127.0.0.1 8007
 *
 * A protocol is a struct with the library's LineReceiver first; a factory builds one per
 * connection; the reactor runs them all. Ctrl-C stops it cleanly. */
#include <stdio.h>
#include <stdlib.h>

#include <twistc/twistc.h> /* the whole API */

struct echo {
    line_receiver lr; /* first: a struct echo * is a line_receiver * is a protocol * */
};

static int echo_line(line_receiver *lr, const char *line, size_t len)
{
    return line_receiver_send_line(lr, line, len); /* buffered; sent once per read */
}

static void echo_lost(line_receiver *lr, const protocol_reason *reason)
{
    (void)reason;
    free(lr); /* the last call for this connection */
}

static const line_receiver_ops echo_ops = {
    .delimiter = "\n",
    .max_length = 65536,
    .line_received = echo_line,
    .connection_lost = echo_lost,
};

static protocol *build_echo(factory *f, const struct sockaddr *addr, socklen_t len)
{
    (void)f, (void)addr, (void)len;
    struct echo *e = malloc(sizeof *e);
    if (!e || line_receiver_init(&e->lr, &echo_ops) < 0) {
        free(e);
        return NULL; /* refused: the connection is closed */
    }
    return &e->lr.base;
}

static const factory_ops echo_factory_ops = {.build_protocol = build_echo};

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 8007;
    reactor *r = reactor_new();
    factory f;
    factory_init(&f, &echo_factory_ops, NULL);
    listener *l = r ? reactor_listen_tcp(r, "127.0.0.1", port, &f, 0) : NULL;
    if (!l) {
        perror("echo-server");
        return 1;
    }
    printf("port=%d\n", listener_port(l));
    fflush(stdout);
    reactor_stop_on_signals(r);
    reactor_run(r);
    reactor_free(r); /* closes the listener and any connection left */
    return 0;
}
