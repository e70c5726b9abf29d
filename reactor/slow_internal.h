/* The slow-callback detector's hooks (slow.c) and the function namer (symbols.c).
 * Private to libtwistc; deferred/ uses the timed sections around Deferred callbacks.
 *
 * Cost when off: the reactor tests r->slow (NULL when off) once before each timer, thread
 * call and signal callback; fd dispatch folds it into the test it already made for the
 * trace (r->hooks); deferred/ tests reactor__slow_users (0 when no reactor of the process
 * has the detector on) once per callback. Nothing else runs when off. */
#ifndef TWISTC_SLOW_INTERNAL_H
#define TWISTC_SLOW_INTERNAL_H

#include <twistc/reactor.h>

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* What a timed section runs; the report names it ("timer", "deferred callback"...). */
enum reactor__slow_kind {
    REACTOR__SLOW_FD,
    REACTOR__SLOW_TIMER,
    REACTOR__SLOW_THREAD_CALL,
    REACTOR__SLOW_SIGNAL,
    REACTOR__SLOW_IDLE,
    REACTOR__SLOW_DEFERRED_CB,
    REACTOR__SLOW_DEFERRED_EB,
    REACTOR__SLOW_CORO,
    REACTOR__SLOW_KINDS
};

/* Reactors of the process with the detector on (relaxed reads: a section that begins
 * while another thread turns its reactor on is simply not timed). */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((visibility("hidden"))) /* a direct load, not through the GOT */
#endif
extern atomic_int reactor__slow_users;

/* A section opened by reactor__slow_enter, closed by reactor__slow_leave with the same
 * mark (on the caller's stack; the detector keeps no pointer to it). */
typedef struct reactor__slow_mark {
    reactor *r;    /* NULL: not timed (no reactor of this thread has the detector on) */
    reactor *prev; /* the thread's reactor before the section */
    int depth;
} reactor__slow_mark;

/* A timed section inside the reactor callback running on this thread, if that reactor has
 * the detector on (else m->r = NULL and leave does nothing). fn names the code that runs
 * (looked up only when a report is printed); name, when not NULL, is used instead.
 * Sections nest; a leave that skips inner sections still open (a coroutine switched away
 * inside them) closes them too, without a report. */
void reactor__slow_enter(reactor__slow_mark *m, int kind, void (*fn)(void), const char *name);
void reactor__slow_leave(reactor__slow_mark *m);

/* A section of the reactor's own (only when r->slow is set): this thread runs r's
 * callbacks from now until the leave. */
void reactor__slow_open(reactor *r, reactor__slow_mark *m, int kind, void (*fn)(void),
                        const char *name);

/* The reactor's own callbacks, timed (called only when r->slow is set). */
void reactor__slow_io(reactor *r, int fd, unsigned events, reactor_io_fn fn, void *data,
                      const char *name);
void reactor__slow_call(reactor *r, int kind, reactor_fn fn, void *data, const char *name,
                        int signo);

/* The detector's state, freed with the reactor; REACTOR_SLOW_MS read at creation. */
void reactor__slow_init(reactor *r);
void reactor__slow_free(reactor *r);

/* ---- slow.c asks the modules of reactor/ for context ---- */

/* transport.c: for its own fd callback, the protocol's data_received (the code that the
 * read runs), else NULL. */
void (*reactor__transport_slow_fn(reactor_io_fn fn, void *data))(void);

/* timers.c: timers whose deadline is <= now and that have not run yet (due this pass
 * and still to run, or waiting in the heap); *oldest gets the earliest such deadline. */
size_t reactor__timers_overdue(reactor *r, int64_t now, int64_t *oldest);

/* ---- symbols.c: a function's name from its address ---- */

/* Writes "name", "name+0x1c" or, where no symbol covers it, "0x55d0c1a2b3c4
 * (object+0x1c3c4)" into buf (always NUL-terminated). Reads the object's ELF file the
 * first time (cached): only when a report is printed, never on a hot path. */
void reactor__symbol_name(const void *addr, char *buf, size_t len);

/* The ELF parser behind it (the fuzz target's entry): the function symbols of an ELF
 * image of this process's class and byte order, from .symtab (static functions too) or
 * else .dynsym. Every offset and size is checked against len. */
typedef struct reactor__elf_fn {
    uint64_t value, size;
    uint32_t name; /* offset into strtab */
} reactor__elf_fn;
typedef struct reactor__elf_syms {
    reactor__elf_fn *fns; /* sorted by value */
    size_t n;
    char *strtab; /* a NUL-terminated copy */
    size_t strtab_len;
} reactor__elf_syms;
/* 0, or -ENOEXEC (not an ELF image we can read: nothing allocated), -ENOMEM. */
int reactor__elf_parse(const unsigned char *img, size_t len, reactor__elf_syms *out);
/* The function covering offset `off` (its name, *delta = off - value), or NULL. */
const char *reactor__elf_lookup(const reactor__elf_syms *s, uint64_t off, uint64_t *delta);
void reactor__elf_free(reactor__elf_syms *s);

#endif
