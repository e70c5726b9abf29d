/* Per-reactor state for the modules built on the reactor (transports, Deferred glue,
 * the thread pool), so that none of them needs a global. Internal to libtwistc. */
#ifndef TWISTC_MODULE_INTERNAL_H
#define TWISTC_MODULE_INTERNAL_H

#include <twistc/reactor.h>

/* reactor_free() frees them in this order. */
enum reactor__module {
    REACTOR__MOD_HTTP,       /* protocols/ HTTP client pool: first, it closes its connectors
                              * and connections while the transports still work */
    REACTOR__MOD_TRANSPORT,  /* reactor/ transports: shared read buffer, connection list */
    REACTOR__MOD_DEFERRED,   /* deferred/ glue: live Deferreds reported at shutdown */
    REACTOR__MOD_THREADPOOL, /* deferred/ defer_to_thread worker pool */
    REACTOR__MOD_CORO,       /* deferred/ coroutines still suspended (closed by reactor_free) */
    REACTOR__MOD_CONNECT,    /* deferred/ reactor_connect_protocol records (after TRANSPORT) */
    REACTOR__MOD_SPARE,
    REACTOR__MOD_COUNT
};

/* The module's state for this reactor, or NULL if never set. */
void *reactor__module_data(reactor *r, enum reactor__module id);
/* Sets it; free_fn (may be NULL) runs from reactor_free(), after every trigger. */
int reactor__set_module_data(reactor *r, enum reactor__module id, void *data,
                             void (*free_fn)(void *data));

/* Runs at the end of every reactor_run(), after the "after shutdown" triggers. A module
 * above the reactor registers it (deferred/: the report of live unhandled failures), so
 * the reactor calls up without depending on that module. NULL removes it. */
typedef void (*reactor__end_of_run_fn)(void);
void reactor__set_end_of_run_hook(reactor__end_of_run_fn fn);

#endif
