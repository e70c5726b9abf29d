#define _GNU_SOURCE
/* Host name lookups without blocking the loop: getaddrinfo() runs on a short-lived
 * worker thread, and the answer comes back through reactor_call_from_thread(), the
 * reactor's one thread-safe entry.
 *
 * The hard part is lifetime: the connector may give up (cancel) or the whole reactor may
 * be freed while the thread is still inside getaddrinfo(). One process-wide mutex guards
 * the hand-over: the thread either queues the job to the reactor (queued=1) or, if the
 * reactor is gone (orphaned=1), frees the job itself.
 *
 * The answer is every usable address, in getaddrinfo's order (RFC 6724: the preferred
 * one first), capped at RESOLVE__MAX_ADDRS: the connector tries them one after another,
 * like Twisted's HostnameEndpoint and CPython's socket.create_connection. */
#include "reactor/transport_internal.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t resolve_lock = PTHREAD_MUTEX_INITIALIZER;

/* The test seam (transport_internal.h): read on the loop thread by resolve__start. */
resolve__gai_fn resolve__getaddrinfo = getaddrinfo;
resolve__freeai_fn resolve__freeaddrinfo = freeaddrinfo;

static void unlink_job(struct resolve_job *job)
{
    struct resolve_job **pp = &job->mod->jobs;
    while (*pp && *pp != job)
        pp = &(*pp)->next;
    if (*pp)
        *pp = job->next;
}

static void free_job(struct resolve_job *job)
{
    free(job->addrs);
    free(job->host);
    free(job);
}

void resolve__free(struct resolve_job *job) { free_job(job); }

/* An IPv4 or IPv6 stream address of the expected size (anything else is skipped). */
static int usable(const struct addrinfo *ai)
{
    if (!ai->ai_addr)
        return 0;
    if (ai->ai_family == AF_INET)
        return ai->ai_addrlen == sizeof(struct sockaddr_in);
    return ai->ai_family == AF_INET6 && ai->ai_addrlen == sizeof(struct sockaddr_in6);
}

/* Copies the usable addresses of res, in order, with the port set, at most
 * RESOLVE__MAX_ADDRS. Returns 0, EAI_MEMORY, or EAI_FAMILY when none is usable. */
static int take_addrs(struct resolve_job *job, const struct addrinfo *res)
{
    int n = 0;
    for (const struct addrinfo *ai = res; ai && n < RESOLVE__MAX_ADDRS; ai = ai->ai_next)
        n += usable(ai);
    if (n == 0)
        return EAI_FAMILY;
    job->addrs = calloc((size_t)n, sizeof *job->addrs);
    if (!job->addrs)
        return EAI_MEMORY;
    for (const struct addrinfo *ai = res; ai && job->naddrs < n; ai = ai->ai_next) {
        if (!usable(ai))
            continue;
        struct resolve_addr *a = &job->addrs[job->naddrs++];
        memcpy(&a->u, ai->ai_addr, ai->ai_addrlen);
        a->len = ai->ai_addrlen;
        if (ai->ai_family == AF_INET)
            a->u.in4.sin_port = htons((uint16_t)job->port);
        else
            a->u.in6.sin6_port = htons((uint16_t)job->port);
    }
    return 0;
}

/* On the loop thread. */
static void job_done(reactor *r, void *data)
{
    (void)r;
    struct resolve_job *job = data;
    unlink_job(job);
    if (job->cancelled) {
        free_job(job);
        return;
    }
    job->done(job); /* takes ownership of job */
}

static void *worker(void *arg)
{
    struct resolve_job *job = arg;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    int rc = job->gai(job->host, NULL, &hints, &res);
    if (rc == 0 && res)
        rc = take_addrs(job, res);
    else if (rc == 0)
        rc = EAI_NONAME;
    if (res)
        job->gai_free(res);
    job->gai_err = rc;

    pthread_mutex_lock(&resolve_lock);
    if (job->orphaned) {
        pthread_mutex_unlock(&resolve_lock);
        free_job(job);
        return NULL;
    }
    /* Mark it queued first: once the call is queued the loop may run job_done and free
     * the job at any moment, so we must not touch it after a successful call. */
    job->queued = 1;
    if (reactor_call_from_thread(job->mod->r, job_done, job) != 0) {
        job->queued = 0;
        job->orphaned = 1; /* the reactor is closing: its teardown frees the job */
    }
    pthread_mutex_unlock(&resolve_lock);
    return NULL;
}

struct resolve_job *resolve__start(struct transport_mod *m, const char *host, int port,
                                   void (*done)(struct resolve_job *), void *data)
{
    struct resolve_job *job = calloc(1, sizeof *job);
    if (!job)
        return NULL;
    job->host = strdup(host);
    if (!job->host) {
        free(job);
        return NULL;
    }
    job->mod = m;
    job->port = port;
    job->done = done;
    job->data = data;
    job->gai = resolve__getaddrinfo; /* the worker never reads the globals */
    job->gai_free = resolve__freeaddrinfo;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t th;
    int rc = pthread_create(&th, &attr, worker, job);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        free_job(job);
        errno = rc;
        return NULL;
    }
    job->next = m->jobs;
    m->jobs = job;
    return job;
}

void resolve__cancel(struct resolve_job *job)
{
    job->cancelled = 1; /* job_done frees it */
}

void resolve__teardown(struct transport_mod *m)
{
    pthread_mutex_lock(&resolve_lock);
    struct resolve_job *job = m->jobs;
    m->jobs = NULL;
    while (job) {
        struct resolve_job *next = job->next;
        if (job->queued || job->orphaned)
            free_job(job); /* the thread is done with it; job_done will never run */
        else
            job->orphaned = 1; /* the thread frees it */
        job = next;
    }
    pthread_mutex_unlock(&resolve_lock);
}
