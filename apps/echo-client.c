/* echo-client: sends each argument as a line to an echo server, prints what comes back,
 * and exits once every line was echoed (or the connection failed).
 *
 *   echo-client [HOST [PORT [LINE...]]]      (defaults: 127.0.0.1 8007 "hello")
 *
 * Shows the client side: a ClientFactory whose client_connection_failed gets a reason
 * saying why (refused, timed out, unreachable, DNS), and connection_made sending. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <twistc/line_receiver.h>
#include <twistc/reactor.h>
#include <twistc/transport.h>

struct client {
    line_receiver lr;
    char **lines;
    int nlines, answered;
};

static struct client the_client;
static int exit_code = 1;

static void client_made(line_receiver *lr)
{
    struct client *c = (struct client *)lr;
    for (int i = 0; i < c->nlines; i++) /* all in one send: writes are buffered */
        line_receiver_send_line(lr, c->lines[i], strlen(c->lines[i]));
}

static int client_line(line_receiver *lr, const char *line, size_t len)
{
    struct client *c = (struct client *)lr;
    printf("%.*s\n", (int)len, line);
    if (++c->answered == c->nlines) {
        exit_code = 0;
        transport_lose_connection(lr->base.transport);
    }
    return 0;
}

static void client_lost(line_receiver *lr, const protocol_reason *reason)
{
    (void)lr;
    if (!protocol_reason_clean(reason) || exit_code) {
        char msg[256];
        protocol_reason_format(reason, msg, sizeof msg);
        fprintf(stderr, "echo-client: %s\n", msg);
    }
    reactor_stop(transport_reactor(lr->base.transport));
}

static const line_receiver_ops client_ops = {
    .delimiter = "\n",
    .connection_made = client_made,
    .line_received = client_line,
    .connection_lost = client_lost,
};

static protocol *build_client(factory *f, const struct sockaddr *addr, socklen_t len)
{
    (void)f, (void)addr, (void)len;
    line_receiver_init(&the_client.lr, &client_ops);
    return &the_client.lr.base;
}

static void connect_failed(factory *f, connector *c, const protocol_reason *reason)
{
    char msg[256];
    protocol_reason_format(reason, msg, sizeof msg);
    fprintf(stderr, "echo-client: %s\n", msg);
    reactor_stop(f->data);
}

static const factory_ops client_factory_ops = {
    .build_protocol = build_client,
    .client_connection_failed = connect_failed,
};

int main(int argc, char **argv)
{
    static char *dflt[] = {"hello"};
    const char *host = argc > 1 ? argv[1] : "127.0.0.1";
    int port = argc > 2 ? atoi(argv[2]) : 8007;
    the_client.lines = argc > 3 ? argv + 3 : dflt;
    the_client.nlines = argc > 3 ? argc - 3 : 1;

    reactor *r = reactor_new();
    if (!r) {
        perror("echo-client");
        return 1;
    }
    factory f;
    factory_init(&f, &client_factory_ops, r);
    connector *c = reactor_connect_tcp(r, host, port, &f, 5.0);
    if (!c) {
        perror("echo-client");
        return 1;
    }
    reactor_run(r);
    connector_free(c);
    reactor_free(r);
    return exit_code;
}
