/* The raw coroutine switching layer: stacks with a guard page and an asymmetric
 * "resume / yield" switch between the caller's stack and a fiber's own stack.
 * Internal to libtwistc; knows nothing about Deferreds or the reactor (coro.c builds
 * the public coroutine API on it). docs/coroutines.md explains the choices.
 *
 * Backends, chosen at compile time (coro__backend_name() says which):
 *   "asm-x86_64", "asm-aarch64": a hand-written switch that saves only the
 *       callee-saved registers (no syscall, a few ns);
 *   "ucontext": getcontext/makecontext/swapcontext, the portable fallback (glibc's
 *       swapcontext makes an rt_sigprocmask syscall per switch). Forced with
 *       -DTWISTC_CORO_UCONTEXT.
 *   If neither is available (no asm backend and no ucontext), coro__fiber_init()
 *   fails with ENOSYS.
 *
 * Sanitizers and valgrind: every stack switch is announced to ASan
 * (__sanitizer_start/finish_switch_fiber) when TWISTC_ASAN is set, to TSan
 * (__tsan_switch_to_fiber) when TWISTC_TSAN is set, and every stack is registered with
 * valgrind (VALGRIND_STACK_REGISTER) when <valgrind/valgrind.h> exists.
 *
 * Threads: a fiber may be resumed from any thread, but only by one thread at a time,
 * and it must not migrate while other code holds pointers into its stack (in practice:
 * keep a fiber on the thread of its reactor).
 */
#ifndef TWISTC_CORO_SWITCH_INTERNAL_H
#define TWISTC_CORO_SWITCH_INTERNAL_H

#include <stddef.h>

/* The asm backends need an ELF target (symbol directives) and no hardware shadow stack
 * (-fcf-protection=return sets bit 2 of __CET__: a shadow stack would reject our
 * stack-swapping `ret`; glibc's swapcontext knows how to handle it). */
#if defined(__ELF__) && !(defined(__CET__) && (__CET__ & 2))
#define CORO__ASM_OK 1
#endif
#if !defined(TWISTC_CORO_UCONTEXT) && defined(CORO__ASM_OK) && defined(__x86_64__)
#define TWISTC_CORO_ASM_X86_64 1
#elif !defined(TWISTC_CORO_UCONTEXT) && defined(CORO__ASM_OK) && defined(__aarch64__)
#define TWISTC_CORO_ASM_AARCH64 1
#elif defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) || \
    defined(__OpenBSD__) || defined(__DragonFly__) || defined(__GLIBC__)
#ifndef TWISTC_CORO_UCONTEXT
#define TWISTC_CORO_UCONTEXT 1
#endif
#endif

#if defined(TWISTC_CORO_UCONTEXT)
#include <ucontext.h>
#endif

/* Default stack: 256 KiB of address space, of which only the touched pages cost memory
 * (mmap is lazy). 64 KiB would be enough for plain C code, but not for everything a
 * coroutine body commonly calls (printf with a long format, getaddrinfo, ~20-60 KiB),
 * nor for an ASan build, whose redzones make frames two to three times larger. */
#define CORO__DEFAULT_STACK_SIZE ((size_t)256 * 1024)
/* Smallest stack accepted (rounded up to whole pages, plus the guard page). */
#define CORO__MIN_STACK_SIZE ((size_t)16 * 1024)

/* A stack: [map, map + guard) is PROT_NONE, [lo, hi) is usable; it grows down from hi,
 * so running past lo hits the guard page and the process gets SIGSEGV instead of
 * silently overwriting whatever lies below. */
typedef struct coro__stack {
    void *map;          /* start of the mapping (the guard page) */
    size_t map_size;    /* whole mapping, guard included */
    void *lo;           /* lowest usable byte (just above the guard) */
    void *hi;           /* one past the highest usable byte */
    unsigned vg_id;     /* valgrind stack id, 0 when not registered */
} coro__stack;

/* Maps a stack of at least `size` usable bytes (0: default) plus a guard page.
 * 0 or -errno (-ENOMEM). */
int coro__stack_alloc(coro__stack *s, size_t size);
/* Unmaps it (no-op on a zeroed or already freed stack). Never call it on the stack
 * you are running on. */
void coro__stack_free(coro__stack *s);
/* Same as alloc/free, through this thread's cache of up to 8 stacks: get() takes a
 * cached stack of the same (rounded) size if there is one, put() keeps the stack for
 * later if there is room (else frees it). Cached stacks are unmapped when the thread
 * exits, or by coro__stack_cache_flush(). */
int coro__stack_get(coro__stack *s, size_t size);
void coro__stack_put(coro__stack *s);
void coro__stack_cache_flush(void);
static inline size_t coro__stack_size(const coro__stack *s)
{
    return (size_t)((char *)s->hi - (char *)s->lo);
}

typedef void (*coro__entry_fn)(void *arg);

enum coro__fiber_state {
    CORO__FIBER_READY,     /* initialised, never resumed */
    CORO__FIBER_RUNNING,   /* resumed and not yet yielded back */
    CORO__FIBER_SUSPENDED, /* yielded; resume() continues it */
    CORO__FIBER_DONE,      /* entry returned; only destroy() is left */
};

/* A fiber: a function running on its own stack. Asymmetric: resume() runs it from
 * any stack (the "caller"), yield() from inside it goes back to that caller. A fiber
 * may resume another fiber (nesting), but never itself or one that is running. */
typedef struct coro__fiber {
#if defined(TWISTC_CORO_UCONTEXT)
    ucontext_t ctx;      /* the fiber's saved context */
    ucontext_t caller;   /* the caller's, saved by resume() */
#else
    void *sp;            /* the fiber's saved stack pointer */
    void *caller_sp;     /* the caller's, saved by resume() */
#endif
    coro__stack stack;
    coro__entry_fn entry;
    void *arg;
    enum coro__fiber_state state;
#if defined(TWISTC_ASAN)
    void *asan_fake;          /* the fiber's fake stack while it is switched out */
    void *asan_caller_fake;   /* the caller's, while the fiber runs */
    const void *caller_bottom; /* the caller's stack bounds, learnt at each resume */
    size_t caller_size;
#endif
#if defined(TWISTC_TSAN)
    void *tsan_fiber;
    void *tsan_caller;
#endif
} coro__fiber;

/* Prepares f to run entry(arg) on a new stack of stack_size bytes (0: default) on its
 * first resume. 0, -ENOMEM, or -ENOSYS when no switching backend was compiled in. */
int coro__fiber_init(coro__fiber *f, size_t stack_size, coro__entry_fn entry, void *arg);
/* Switches to f (READY or SUSPENDED) and returns when it yields or its entry returns.
 * -EINVAL if f is running or done (nothing happens then). */
int coro__fiber_resume(coro__fiber *f);
/* From inside f (it must be the fiber running now): switches back to the caller of
 * the resume() that ran it; returns when f is resumed again. */
void coro__fiber_yield(coro__fiber *f);
/* Releases the stack (into this thread's cache, see coro__stack_put) of a fiber that
 * is not running: DONE, READY or SUSPENDED. A
 * suspended fiber is dropped without unwinding (whatever its frames own leaks): callers
 * should let it finish first. Never call it from f itself. */
void coro__fiber_destroy(coro__fiber *f);
static inline int coro__fiber_done(const coro__fiber *f)
{
    return f->state == CORO__FIBER_DONE;
}
/* "asm-x86_64", "asm-aarch64", "ucontext" or "none". */
const char *coro__backend_name(void);

#endif
