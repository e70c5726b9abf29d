/* Unix-domain entry points: the same listeners, connectors and transports as TCP. */
#include "reactor/transport_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/un.h>

listener *reactor_listen_unix(reactor *r, const char *path, factory *f, int backlog)
{
    struct sockaddr_un un;
    if (!path || !*path) {
        errno = EINVAL;
        return NULL;
    }
    if (strlen(path) >= sizeof un.sun_path) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    memset(&un, 0, sizeof un);
    un.sun_family = AF_UNIX;
    memcpy(un.sun_path, path, strlen(path) + 1);
    return listener__create(r, (struct sockaddr *)&un, sizeof un, f, backlog, 0);
}

connector *reactor_connect_unix(reactor *r, const char *path, factory *f, double timeout)
{
    if (!path || !*path) {
        errno = EINVAL;
        return NULL;
    }
    return connector__create(r, NULL, 0, path, f, timeout);
}
