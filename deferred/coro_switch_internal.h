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

#include <errno.h>
#include <stddef.h>

/* The asm backends need an ELF target (symbol directives) and no control-flow
 * enforcement: -fcf-protection=return sets bit 2 of __CET__ (a shadow stack would
 * reject a stack-swapping `ret`), =branch sets bit 1 (indirect-branch tracking would
 * reject our jumps to resume and return addresses, which carry no endbr64); glibc's
 * swapcontext knows how to handle both. */
#if defined(__ELF__) && !(defined(__CET__) && (__CET__ & 3))
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
/* The usable size a stack asked with `size` gets (0: default; minimum; whole pages). */
size_t coro__stack_round(size_t size);
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
/* The same for a fiber that ran before and is DONE (or READY, never run), keeping its
 * stack when it has the size asked (rounded as coro__stack_round does): a finished
 * coroutine's struct and stack are reused together. Else its stack goes back through
 * the cache and a fitting one is taken. 0, -ENOMEM, -ENOSYS, -EINVAL (f running or
 * suspended). */
int coro__fiber_reinit(coro__fiber *f, size_t stack_size, coro__entry_fn entry, void *arg);
/* Releases the stack (into this thread's cache, see coro__stack_put) of a fiber that
 * is not running: DONE, READY or SUSPENDED. A
 * suspended fiber is dropped without unwinding (whatever its frames own leaks): callers
 * should let it finish first. Never call it from f itself. */
void coro__fiber_destroy(coro__fiber *f);
static inline int coro__fiber_done(const coro__fiber *f)
{
    return f->state == CORO__FIBER_DONE;
}

/* ---- the switch itself ----------------------------------------------------------- */

#if defined(TWISTC_ASAN)
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(TWISTC_TSAN)
#include <sanitizer/tsan_interface.h>
#endif

#if defined(__GNUC__) || defined(__clang__)
#define CORO__INLINE inline __attribute__((always_inline))
#else
#define CORO__INLINE inline
#endif

#if defined(TWISTC_CORO_ASM_X86_64)
/* x86-64: the switch is inline assembly, expanded where it is used (resume, yield),
 * not a function that is called and returns.
 *
 * Why: a `ret` after a stack switch returns to an address the CPU's return-address
 * predictor has never seen (it holds the other stack's calls), so every function
 * returned through after a switch costs a misprediction (~7 ns on the test machine,
 * more than the whole switch). A called switch routine adds two such returns per
 * switch (its own and its caller's). Inline, the switch jumps (an ordinary indirect
 * jump, which the branch predictor learns) and only the frames of the code around it
 * remain; coro.c and deferred.c keep those to one per side (docs/coroutines.md).
 *
 * Protocol, shared by every switch and by the first entry (coro_switch.c): the side
 * that leaves steps over the red zone (128 bytes under rsp that the compiler may use in
 * a leaf function), pushes its resume address, rbp and the floating-point control
 * words (MXCSR, x87 control word: callee-saved in the ABI), saves rsp; the side that
 * arrives loads rsp and pops the same three. Every other callee-saved register (rbx,
 * r12-r15) is declared clobbered, so the compiler saves and restores what it needs
 * around the asm, as it does around a call; caller-saved registers are clobbered as
 * by any call. rbp is saved by hand because it may be the frame pointer, which cannot
 * be declared clobbered. */
#if defined(__AVX512F__)
#define CORO__CLOBBER_AVX512 , "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", \
    "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31", \
    "k1", "k2", "k3", "k4", "k5", "k6", "k7"
#else
#define CORO__CLOBBER_AVX512
#endif
static CORO__INLINE void coro__swap(void **save_sp, void *new_sp)
{
    __asm__ volatile(
        "subq $128, %%rsp\n\t"
        "leaq 1f(%%rip), %%rax\n\t"
        "pushq %%rax\n\t"
        "pushq %%rbp\n\t"
        "subq $8, %%rsp\n\t"
        "stmxcsr (%%rsp)\n\t"
        "fnstcw 4(%%rsp)\n\t"
        "movl (%%rsp), %%ecx\n\t"
        "movzwl 4(%%rsp), %%edx\n\t"
        "movq %%rsp, (%0)\n\t"
        "movq %1, %%rsp\n\t"
        "cmpl (%%rsp), %%ecx\n\t"
        "je 2f\n\t"
        "ldmxcsr (%%rsp)\n\t"
        "2:\n\t"
        "cmpw 4(%%rsp), %%dx\n\t"
        "je 3f\n\t"
        "fldcw 4(%%rsp)\n\t"
        "3:\n\t"
        "addq $8, %%rsp\n\t"
        "popq %%rbp\n\t"
        "popq %%rax\n\t"
        "jmpq *%%rax\n\t"
        "1:\n\t"
        "addq $128, %%rsp\n\t"
        : "+D"(save_sp), "+S"(new_sp)
        :
        : "rax", "rbx", "rcx", "rdx", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
          "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
          "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "st",
          "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)", "st(7)"
          CORO__CLOBBER_AVX512);
}
#define CORO__SWITCH_TO_FIBER(f) coro__swap(&(f)->caller_sp, (f)->sp)
#define CORO__SWITCH_TO_CALLER(f) coro__swap(&(f)->sp, (f)->caller_sp)
#elif defined(TWISTC_CORO_ASM_AARCH64)
/* AArch64: an out-of-line routine that saves the callee-saved registers (coro_switch.c). */
void coro__switch_asm(void **save_sp, void *new_sp);
#define CORO__SWITCH_TO_FIBER(f) coro__switch_asm(&(f)->caller_sp, (f)->sp)
#define CORO__SWITCH_TO_CALLER(f) coro__switch_asm(&(f)->sp, (f)->caller_sp)
#elif defined(TWISTC_CORO_UCONTEXT)
#define CORO__SWITCH_TO_FIBER(f) swapcontext(&(f)->caller, &(f)->ctx)
#define CORO__SWITCH_TO_CALLER(f) swapcontext(&(f)->ctx, &(f)->caller)
#endif

/* ---- telling ASan and TSan which stack we are on ------------------------------- */
/* ASan keeps per-stack bookkeeping (bounds, fake frames for use-after-return); it must
 * hear of a switch just before it (start) and just after it (finish), or it reports
 * the new stack pointer as a wild access. TSan keeps a per-fiber state of clocks. */

static CORO__INLINE void coro__san_enter_fiber(coro__fiber *f)
{
#if defined(TWISTC_ASAN)
    __sanitizer_start_switch_fiber(&f->asan_caller_fake, f->stack.lo,
                                   coro__stack_size(&f->stack));
#endif
#if defined(TWISTC_TSAN)
    f->tsan_caller = __tsan_get_current_fiber();
    __tsan_switch_to_fiber(f->tsan_fiber, 0);
#endif
    (void)f;
}

static CORO__INLINE void coro__san_back_in_caller(coro__fiber *f)
{
#if defined(TWISTC_ASAN)
    __sanitizer_finish_switch_fiber(f->asan_caller_fake, NULL, NULL);
#endif
    (void)f;
}

/* `final`: the fiber will never run again, so ASan may drop its fake stack. */
static CORO__INLINE void coro__san_leave_fiber(coro__fiber *f, int final)
{
#if defined(TWISTC_ASAN)
    __sanitizer_start_switch_fiber(final ? NULL : &f->asan_fake, f->caller_bottom,
                                   f->caller_size);
#endif
#if defined(TWISTC_TSAN)
    __tsan_switch_to_fiber(f->tsan_caller, 0);
#endif
    (void)f;
    (void)final;
}

static CORO__INLINE void coro__san_in_fiber(coro__fiber *f, int first)
{
#if defined(TWISTC_ASAN)
    /* Also learns the caller's stack bounds: a fiber may be resumed from a different
     * stack each time (the main stack, or another fiber). */
    __sanitizer_finish_switch_fiber(first ? NULL : f->asan_fake, &f->caller_bottom,
                                    &f->caller_size);
#endif
    (void)f;
    (void)first;
}

/* Switches to f (READY or SUSPENDED) and returns when it yields or its entry returns.
 * -EINVAL if f is running or done (nothing happens then). Inline: see coro__swap. */
static CORO__INLINE int coro__fiber_resume(coro__fiber *f)
{
    if (f->state != CORO__FIBER_READY && f->state != CORO__FIBER_SUSPENDED)
        return -EINVAL;
#if defined(CORO__SWITCH_TO_FIBER)
    f->state = CORO__FIBER_RUNNING;
    coro__san_enter_fiber(f);
    CORO__SWITCH_TO_FIBER(f);
    coro__san_back_in_caller(f);
    return 0;
#else
    return -ENOSYS;
#endif
}

/* From inside f (it must be the fiber running now): switches back to the caller of
 * the resume() that ran it; returns when f is resumed again. */
static CORO__INLINE void coro__fiber_yield(coro__fiber *f)
{
    f->state = CORO__FIBER_SUSPENDED;
    coro__san_leave_fiber(f, 0);
#if defined(CORO__SWITCH_TO_CALLER)
    CORO__SWITCH_TO_CALLER(f);
#endif
    coro__san_in_fiber(f, 0);
}

/* "asm-x86_64", "asm-aarch64", "ucontext" or "none". */
const char *coro__backend_name(void);

#endif
