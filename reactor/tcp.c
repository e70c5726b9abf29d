/* TCP entry points: parse the address, then the generic listener/connector. */
#include "reactor/transport_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

listener *reactor_listen_tcp_flags(reactor *r, const char *interface, int port, factory *f,
                                   int backlog, unsigned flags)
{
    if (port < 0 || port > 65535) {
        errno = EINVAL;
        return NULL;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (!interface || !*interface) {
        in4->sin_family = AF_INET;
        in4->sin_addr.s_addr = htonl(INADDR_ANY);
        in4->sin_port = htons((uint16_t)port);
        len = sizeof *in4;
    } else if (inet_pton(AF_INET, interface, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        len = sizeof *in4;
    } else if (inet_pton(AF_INET6, interface, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        len = sizeof *in6;
    } else {
        errno = EINVAL; /* interfaces are numeric, as in Twisted */
        return NULL;
    }
    return listener__create(r, (struct sockaddr *)&ss, len, f, backlog, flags);
}

listener *reactor_listen_tcp(reactor *r, const char *interface, int port, factory *f,
                             int backlog)
{
    return reactor_listen_tcp_flags(r, interface, port, f, backlog, 0);
}

connector *reactor_connect_tcp(reactor *r, const char *host, int port, factory *f,
                               double timeout)
{
    if (!host || !*host) {
        errno = EINVAL;
        return NULL;
    }
    return connector__create(r, host, port, NULL, f, timeout);
}
