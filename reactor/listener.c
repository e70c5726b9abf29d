#define _GNU_SOURCE
/* Listening sockets: accept with a budget, refuse through the factory, survive EMFILE.
 * tcp.c and unix.c turn addresses into a sockaddr and call listener__create(). */
#include "reactor/transport_internal.h"
#include <twistc/tls.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define LISTENER_DEFAULT_BUDGET 32
#define LISTENER_EMFILE_PAUSE 0.1 /* seconds the listener sleeps after EMFILE/ENFILE */

struct listener {
    struct transport_owner base;
    factory *f;
    struct listener *prev, *next; /* module list */
    reactor_timer *resume;        /* EMFILE pause */
    int fd;
    int port;
    unsigned budget;
    unsigned conns; /* live connections accepted here */
    unsigned stopped : 1, freed : 1, is_unix : 1;
    char *path; /* Unix: the socket file, removed at stop */
};

int transport__set_nonblock_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    int fdfl = fcntl(fd, F_GETFD);
    if (fdfl < 0 || fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) < 0)
        return -errno;
    return 0;
}

/* A non-blocking, close-on-exec socket that never raises SIGPIPE. -errno. */
int transport__socket(int domain, int type)
{
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
    int fd = socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
#else
    int fd = socket(domain, type, 0);
    if (fd < 0)
        return -errno;
    int rc = transport__set_nonblock_cloexec(fd);
    if (rc < 0) {
        close(fd);
        return rc;
    }
#endif
#ifdef SO_NOSIGPIPE
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
    return fd;
}

static int accept_one(int lfd, struct sockaddr_storage *ss, socklen_t *len)
{
    *len = sizeof *ss;
#if defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__)
    int fd = accept4(lfd, (struct sockaddr *)ss, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
#else
    int fd = accept(lfd, (struct sockaddr *)ss, len);
    if (fd >= 0 && transport__set_nonblock_cloexec(fd) < 0) {
        close(fd);
        errno = EMFILE;
        return -1;
    }
#endif
#ifdef SO_NOSIGPIPE
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
    }
#endif
    return fd;
}

static void on_accept(reactor *r, int fd, unsigned events, void *data);

static void resume_listening(reactor *r, void *data)
{
    listener *l = data;
    l->resume = NULL;
    if (!l->stopped)
        reactor_watch(r, l->fd, REACTOR_READABLE, on_accept, l);
}

/* Out of descriptors. Level-triggered readiness would call us again at once, forever:
 * shed the waiting connections with the spare fd (they see a close instead of hanging),
 * then stop watching the listener for a moment. */
static void out_of_fds(listener *l)
{
    struct transport_mod *m = l->base.mod;
    if (m->spare_fd >= 0) {
        close(m->spare_fd);
        m->spare_fd = -1;
        for (unsigned i = 0; i < l->budget; i++) {
            struct sockaddr_storage ss;
            socklen_t len = sizeof ss;
            int fd = accept(l->fd, (struct sockaddr *)&ss, &len);
            if (fd < 0)
                break;
            close(fd);
        }
        m->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    reactor_unwatch(m->r, l->fd);
    l->resume = reactor_call_later(m->r, LISTENER_EMFILE_PAUSE, resume_listening, l);
}

static void on_accept(reactor *r, int lfd, unsigned events, void *data)
{
    (void)r;
    (void)lfd;
    (void)events;
    listener *l = data;
    struct transport_mod *m = l->base.mod;
    for (unsigned i = 0; i < l->budget && !l->stopped; i++) {
        struct sockaddr_storage ss;
        socklen_t len;
        int fd = accept_one(l->fd, &ss, &len);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                out_of_fds(l);
            return; /* EAGAIN: nothing more waiting */
        }
        transport *t = transport__alloc(m);
        if (!t) { /* out of memory: shed this one */
            close(fd);
            continue;
        }
        protocol *p = l->f->ops->build_protocol(l->f, (struct sockaddr *)&ss, len);
        if (!p) { /* refused by the factory */
            free(t);
            close(fd);
            continue;
        }
        l->conns++;
        transport__start(m, t, l, fd, p, l->is_unix ? T_UNIX : 0);
    }
}

listener *listener__create(reactor *r, const struct sockaddr *addr, socklen_t alen, factory *f,
                           int backlog, unsigned flags)
{
    if (!r || !addr || !f || !f->ops || !f->ops->build_protocol) {
        errno = EINVAL;
        return NULL;
    }
    struct transport_mod *m = transport__mod(r);
    if (!m)
        return NULL;
    listener *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->base.mod = m;
    l->f = f;
    l->budget = LISTENER_DEFAULT_BUDGET;
    l->is_unix = addr->sa_family == AF_UNIX;
    int fd = transport__socket(addr->sa_family, SOCK_STREAM);
    if (fd < 0) {
        free(l);
        errno = -fd;
        return NULL;
    }
    int one = 1;
    if (!l->is_unix)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
#ifdef SO_REUSEPORT
    if (flags & LISTEN_REUSEPORT)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
#endif
#ifdef IPV6_V6ONLY
    if (addr->sa_family == AF_INET6) {
        int v6 = (flags & LISTEN_V6ONLY) != 0;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6, sizeof v6);
    }
#endif
    if (bind(fd, addr, alen) < 0 || listen(fd, backlog > 0 ? backlog : 128) < 0) {
        int e = errno;
        close(fd);
        free(l);
        errno = e;
        return NULL;
    }
    if (l->is_unix) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)addr;
        l->path = strdup(un->sun_path);
    } else {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
            l->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                               : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    int rc = reactor_watch(r, fd, REACTOR_READABLE, on_accept, l);
    if (rc == 0 && (rc = factory__do_start(m, f)) < 0)
        reactor_unwatch(r, fd);
    if (rc < 0) {
        if (l->path)
            unlink(l->path);
        close(fd);
        free(l->path);
        free(l);
        errno = -rc;
        return NULL;
    }
    l->fd = fd;
    if (m->spare_fd < 0)
        m->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    l->next = m->listeners;
    if (m->listeners)
        m->listeners->prev = l;
    m->listeners = l;
    return l;
}

int listener_port(const listener *l) { return l ? l->port : 0; }

void listener_set_accept_budget(listener *l, unsigned n)
{
    if (l)
        l->budget = n ? n : 1;
}

int listener_stop(listener *l)
{
    if (!l)
        return -EINVAL;
    if (l->stopped)
        return 0;
    l->stopped = 1;
    struct transport_mod *m = l->base.mod;
    if (l->resume) {
        transport__cancel(m, l->resume);
        l->resume = NULL;
    } else {
        transport__unwatch(m, l->fd);
    }
    close(l->fd);
    l->fd = -1;
    if (l->path)
        unlink(l->path);
    factory__do_stop(m, l->f);
    return 0;
}

static void really_free(listener *l)
{
    struct transport_mod *m = l->base.mod;
    if (l->prev)
        l->prev->next = l->next;
    else if (m->listeners == l)
        m->listeners = l->next;
    if (l->next)
        l->next->prev = l->prev;
    free(l->path);
    tls_context_unref(l->base.tls);
    free(l);
}

void listener_free(listener *l)
{
    if (!l)
        return;
    listener_stop(l);
    l->freed = 1;
    if (l->conns == 0)
        really_free(l);
}

void listener__conn_closed(listener *l)
{
    if (--l->conns == 0 && l->freed)
        really_free(l);
}

void listener__stop_all(struct transport_mod *m)
{
    for (listener *l = m->listeners; l; l = l->next)
        listener_stop(l);
}

void listener__free_all(struct transport_mod *m)
{
    while (m->listeners) {
        listener *l = m->listeners;
        listener_stop(l);
        l->conns = 0; /* close_all ran first */
        really_free(l);
    }
}
