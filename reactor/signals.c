/* Signals through a self-pipe, only when asked for (reactor_on_signal,
 * reactor_stop_on_signals): a library must not take over a process's signals.
 *
 * The handler does the least a handler may: it saves errno, marks the signal pending
 * (an atomic flag) and writes one byte to the owning reactor's pipe, then restores
 * errno. The loop sees the pipe readable, drains it, and runs the callbacks of every
 * pending signal from loop context, where any code may run. A burst of deliveries
 * between two looks gives one run. One reactor at a time owns a given signal. */
#include "reactor/reactor_internal.h"
#include "reactor/slow_internal.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

/* Process-wide, as signal dispositions are. Written by loop threads under sig_lock;
 * the handler only reads sig_wfd and sets sig_pending (lock-free atomics). */
static atomic_int sig_wfd[REACTOR__NSIG];
static atomic_int sig_pending[REACTOR__NSIG];
static reactor *sig_owner[REACTOR__NSIG];
static struct sigaction sig_old[REACTOR__NSIG];
static pthread_mutex_t sig_lock = PTHREAD_MUTEX_INITIALIZER;

static void on_signal(int signo)
{
    int saved = errno;
    if (signo > 0 && signo < REACTOR__NSIG) {
        atomic_store(&sig_pending[signo], 1);
        int fd = atomic_load(&sig_wfd[signo]) - 1; /* stored +1 so 0 means "none" */
        if (fd >= 0) {
            ssize_t w = write(fd, "", 1);
            (void)w; /* EAGAIN: the pipe already holds a wake byte */
        }
    }
    errno = saved;
}

/* The self-pipe's I/O callback: drain, then run the callbacks of each pending signal. */
static void reactor_signals(reactor *r, int fd, unsigned events, void *data)
{
    (void)events;
    (void)data;
    char buf[64];
    while (read(fd, buf, sizeof buf) > 0)
        ;
    for (int signo = 1; signo < REACTOR__NSIG; signo++) {
        if (!r->sig_owned[signo] || !atomic_exchange(&sig_pending[signo], 0))
            continue;
        REACTOR__TRACE(r, "signal signo=%d", signo);
        for (reactor__sig *s = r->sigs; s; s = s->next)
            if (s->signo == signo) {
                if (r->slow)
                    reactor__slow_call(r, REACTOR__SLOW_SIGNAL, s->fn, s->data, NULL, signo);
                else
                    s->fn(r, s->data);
            }
    }
}

static int pipe_open(reactor *r)
{
    if (r->sig_fd[0] >= 0)
        return 0;
    int rc = reactor__pipe(r->sig_fd);
    if (rc < 0)
        return rc;
    rc = reactor_watch(r, r->sig_fd[0], REACTOR_READABLE, reactor_signals, NULL);
    if (rc < 0) {
        close(r->sig_fd[0]);
        close(r->sig_fd[1]);
        r->sig_fd[0] = r->sig_fd[1] = -1;
    }
    return rc;
}

int reactor_on_signal(reactor *r, int signo, reactor_fn fn, void *data)
{
    if (!r || !fn || signo <= 0 || signo >= REACTOR__NSIG || signo == SIGKILL ||
        signo == SIGSTOP)
        return -EINVAL;
    reactor__sig *s = malloc(sizeof *s);
    if (!s)
        return -ENOMEM;
    pthread_mutex_lock(&sig_lock);
    int rc = 0;
    if (sig_owner[signo] && sig_owner[signo] != r)
        rc = -EBUSY; /* another reactor has it */
    else if ((rc = pipe_open(r)) == 0 && !r->sig_owned[signo]) {
        struct sigaction sa = {0};
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART; /* spare other code EINTR; our poll sees the pipe */
        atomic_store(&sig_wfd[signo], r->sig_fd[1] + 1);
        if (sigaction(signo, &sa, &sig_old[signo]) < 0) {
            rc = -errno;
            atomic_store(&sig_wfd[signo], 0);
        } else {
            sig_owner[signo] = r;
            r->sig_owned[signo] = 1;
        }
    }
    pthread_mutex_unlock(&sig_lock);
    if (rc < 0) {
        free(s);
        return rc;
    }
    *s = (reactor__sig){.signo = signo, .fn = fn, .data = data};
    reactor__sig **tail = &r->sigs; /* appended: callbacks run in registration order */
    while (*tail)
        tail = &(*tail)->next;
    *tail = s;
    return 0;
}

static void stop_on_signal(reactor *r, void *data)
{
    (void)data;
    REACTOR__TRACE(r, "signal action=stop");
    reactor_stop(r); /* -EALREADY on a second ^C, -EINVAL if not running: both fine */
}

int reactor_stop_on_signals(reactor *r)
{
    if (!r)
        return -EINVAL;
    /* A SIGINT ignored when we started (a background job of a shell, nohup) stays
     * ignored, as in Twisted: whoever started us asked for it. */
    struct sigaction cur;
    int rc = 0;
    if (sigaction(SIGINT, NULL, &cur) < 0 || cur.sa_handler != SIG_IGN || r->sig_owned[SIGINT])
        rc = reactor_on_signal(r, SIGINT, stop_on_signal, NULL);
    return rc ? rc : reactor_on_signal(r, SIGTERM, stop_on_signal, NULL);
}

void reactor__signals_free(reactor *r)
{
    pthread_mutex_lock(&sig_lock);
    for (int signo = 1; signo < REACTOR__NSIG; signo++) {
        if (!r->sig_owned[signo])
            continue;
        /* Old disposition back first, then forget the pipe, then close it: a late
         * handler never writes to a closed (maybe reused) fd. */
        sigaction(signo, &sig_old[signo], NULL);
        atomic_store(&sig_wfd[signo], 0);
        atomic_store(&sig_pending[signo], 0);
        sig_owner[signo] = NULL;
        r->sig_owned[signo] = 0;
    }
    pthread_mutex_unlock(&sig_lock);
    if (r->sig_fd[0] >= 0) {
        reactor_unwatch(r, r->sig_fd[0]);
        close(r->sig_fd[0]);
        close(r->sig_fd[1]);
        r->sig_fd[0] = r->sig_fd[1] = -1;
    }
    while (r->sigs) {
        reactor__sig *s = r->sigs;
        r->sigs = s->next;
        free(s);
    }
}

int reactor__signals_after_fork(reactor *r)
{
    if (r->sig_fd[0] < 0)
        return 0;
    /* The pipe is shared with the parent: a signal to either would wake both. */
    reactor_unwatch(r, r->sig_fd[0]);
    close(r->sig_fd[0]);
    close(r->sig_fd[1]);
    r->sig_fd[0] = r->sig_fd[1] = -1;
    int rc = pipe_open(r);
    pthread_mutex_init(&sig_lock, NULL);
    for (int signo = 1; signo < REACTOR__NSIG; signo++)
        if (r->sig_owned[signo])
            atomic_store(&sig_wfd[signo], rc == 0 ? r->sig_fd[1] + 1 : 0);
    return rc;
}
