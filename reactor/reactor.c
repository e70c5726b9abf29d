/* The reactor loop. TEMPORARY first version so the tree links: backend selection
 * works, everything else returns -ENOSYS until the real loop lands (next commits). */
#include <twistc/reactor.h>

#include "reactor/module_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct reactor {
    const char *backend;
    void *mod_data[REACTOR__MOD_COUNT];
    void (*mod_free[REACTOR__MOD_COUNT])(void *);
};

static const char *const backends[] = {"epoll", "poll", "select", NULL};

const char *const *reactor_backends(void) { return backends; }

reactor *reactor_new(void) { return reactor_new_with_backend(getenv("REACTOR_BACKEND")); }

reactor *reactor_new_with_backend(const char *backend)
{
    if (backend && !*backend)
        backend = NULL;
    const char *found = NULL;
    for (int i = 0; backends[i]; i++)
        if (!backend || strcmp(backend, backends[i]) == 0) {
            found = backends[i];
            break;
        }
    if (!found) {
        errno = strcmp(backend, "kqueue") == 0 ? ENOSYS : EINVAL;
        return NULL;
    }
    reactor *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->backend = found;
    return r;
}

int reactor_free(reactor *r)
{
    if (!r)
        return -EINVAL;
    for (int i = 0; i < REACTOR__MOD_COUNT; i++)
        if (r->mod_free[i])
            r->mod_free[i](r->mod_data[i]);
    free(r);
    return 0;
}

const char *reactor_backend_name(const reactor *r) { return r->backend; }
int reactor_run(reactor *r) { (void)r; return -ENOSYS; }
int reactor_stop(reactor *r) { (void)r; return -ENOSYS; }
int reactor_iterate(reactor *r, double max_wait) { (void)r; (void)max_wait; return -ENOSYS; }
int reactor_running(const reactor *r) { (void)r; return 0; }
uint64_t reactor_iterations(const reactor *r) { (void)r; return 0; }
int reactor_watch_named(reactor *r, int fd, unsigned events, reactor_io_fn fn, void *data,
                        const char *name)
{
    (void)r; (void)fd; (void)events; (void)fn; (void)data; (void)name;
    return -ENOSYS;
}
int reactor_watch_events(reactor *r, int fd, unsigned events) { (void)r; (void)fd; (void)events; return -ENOSYS; }
int reactor_unwatch(reactor *r, int fd) { (void)r; (void)fd; return -ENOSYS; }
double reactor_seconds(const reactor *r) { (void)r; return 0; }
reactor_timer *reactor_call_later_named(reactor *r, double delay, reactor_fn fn, void *data,
                                        const char *name)
{
    (void)r; (void)delay; (void)fn; (void)data; (void)name;
    errno = ENOSYS;
    return NULL;
}
int reactor_timer_cancel(reactor_timer *t) { (void)t; return -ENOSYS; }
int reactor_timer_reset(reactor_timer *t, double s) { (void)t; (void)s; return -ENOSYS; }
int reactor_timer_delay(reactor_timer *t, double s) { (void)t; (void)s; return -ENOSYS; }
int reactor_timer_active(const reactor_timer *t) { (void)t; return 0; }
double reactor_timer_time(const reactor_timer *t) { (void)t; return 0; }
reactor_timer *reactor_timer_hold(reactor_timer *t) { return t; }
void reactor_timer_release(reactor_timer *t) { (void)t; }
size_t reactor_pending_timers(const reactor *r) { (void)r; return 0; }
int reactor_use_fake_clock(reactor *r, double start) { (void)r; (void)start; return -ENOSYS; }
int reactor_advance(reactor *r, double s) { (void)r; (void)s; return -ENOSYS; }
int reactor_call_when_running(reactor *r, reactor_fn fn, void *data) { (void)r; (void)fn; (void)data; return -ENOSYS; }
reactor_trigger *reactor_add_trigger(reactor *r, reactor_phase p, reactor_fn fn, void *data)
{
    (void)r; (void)p; (void)fn; (void)data;
    errno = ENOSYS;
    return NULL;
}
int reactor_remove_trigger(reactor *r, reactor_trigger *t) { (void)r; (void)t; return -ENOSYS; }
void reactor_shutdown_hold(reactor *r) { (void)r; }
void reactor_shutdown_release(reactor *r) { (void)r; }
int reactor_on_signal(reactor *r, int signo, reactor_fn fn, void *data) { (void)r; (void)signo; (void)fn; (void)data; return -ENOSYS; }
int reactor_stop_on_signals(reactor *r) { (void)r; return -ENOSYS; }
int reactor_call_from_thread(reactor *r, reactor_fn fn, void *data) { (void)r; (void)fn; (void)data; return -ENOSYS; }
void reactor_set_trace(reactor *r, FILE *out) { (void)r; (void)out; }
FILE *reactor_trace_file(const reactor *r) { (void)r; return NULL; }

void *reactor__module_data(reactor *r, enum reactor__module id)
{
    return (unsigned)id < REACTOR__MOD_COUNT ? r->mod_data[id] : NULL;
}

int reactor__set_module_data(reactor *r, enum reactor__module id, void *data,
                             void (*free_fn)(void *data))
{
    if ((unsigned)id >= REACTOR__MOD_COUNT)
        return -EINVAL;
    r->mod_data[id] = data;
    r->mod_free[id] = free_fn;
    return 0;
}
