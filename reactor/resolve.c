#define _GNU_SOURCE
/* Host name lookups without blocking the loop: getaddrinfo() runs on a short-lived
 * worker thread, and the answer comes back through reactor_call_from_thread(), the
 * reactor's one thread-safe entry.
 *
 * The hard part is lifetime: the connector may give up (cancel) or the whole reactor may
 * be freed while the thread is still inside getaddrinfo(). One process-wide mutex guards
 * the hand-over: the thread either queues the job to the reactor (queued=1) or, if the
 * reactor is gone (orphaned=1), frees the job itself. */
#include "reactor/transport_internal.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t resolve_lock = PTHREAD_MUTEX_INITIALIZER;

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
    free(job->host);
    free(job);
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
    int rc = getaddrinfo(job->host, NULL, &hints, &res);
    if (rc == 0 && res) {
        memcpy(&job->addr, res->ai_addr, res->ai_addrlen);
        job->addrlen = res->ai_addrlen;
        if (job->addr.ss_family == AF_INET)
            ((struct sockaddr_in *)&job->addr)->sin_port = htons((uint16_t)job->port);
        else if (job->addr.ss_family == AF_INET6)
            ((struct sockaddr_in6 *)&job->addr)->sin6_port = htons((uint16_t)job->port);
        else
            rc = EAI_FAMILY;
    } else if (rc == 0) {
        rc = EAI_NONAME;
    }
    if (res)
        freeaddrinfo(res);
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
