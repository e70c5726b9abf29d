/* Coroutines over Deferreds (coro.h), on the raw switch of coro_switch.c.
 *
 * How an await works: coro_await(d) adds one waiter pair to d (coro_internal.h) and
 * switches back to whoever resumed the coroutine. When d's chain reaches the pair,
 * d's loop (deferred.c) moves the result into the coroutine and switches to it, on the
 * stack that fired d; the coroutine returns the result from coro_await and runs to its
 * next await or its end, then control comes back to d's loop, which goes on with NONE.
 * The switch is inline on both sides (coro_await here, the loop there): each function
 * returned through after a switch costs a branch misprediction, so there is one frame
 * per side, coro_await and the caller's deferred_callback.
 *
 * How cancellation works (Twisted's _cancellableInlineCallbacks, in C): the result of
 * the body goes to co->target, which starts as the Deferred coro_start returned. Each
 * target is made with a canceller (co_canceller). Cancelling the target fires it
 * "chained to" a fresh target (as if a first callback had returned
 * deferred_continue_with(fresh)), makes the fresh one the body's target and cancels the
 * awaited Deferred (which resumes the body with the cancellation result), so the
 * cancelled Deferred gets whatever the body finally returns, when it returns.
 *
 * Lifetime of struct coro: reference counted: one reference for the running body
 * (dropped when it returns), and a temporary one while the registry closes it. Nothing
 * else points to it once the body has returned: the canceller of a target only runs on
 * an unfired target, and a waiter pair holds no reference: it is consumed when it wakes
 * the coroutine, reports to it when discarded unrun, and is neutralised
 * (deferred__detach_waiter) if the coroutine stops waiting for another reason. */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "deferred/coro_internal.h"
#include "reactor/module_internal.h"
#include "reactor/slow_internal.h"

struct coro_registry {
    reactor *r;
    coro *head;
    size_t count;
};

/* Left as the module data after reg_free: coroutines started later in reactor_free()
 * (by another module's free hook) run without a registry. */
static char reg_gone;

_Thread_local coro *coro__current DEFERRED__TLS_IE;

/* A per-thread cache of freed coroutine structs, each with its stack still attached:
 * starting a coroutine then costs no malloc/free (calloc, which bypasses glibc's fast
 * per-thread bins, was ~40 % of a start + finish) and no trip through the stack cache.
 * Off under the sanitizers so that they see every use after free. Drained at thread
 * exit (key destructor) and at exit (main thread). */
#if !defined(TWISTC_ASAN) && !defined(TWISTC_TSAN)
#define CO_CACHE_MAX 8
#else
#define CO_CACHE_MAX 0
#endif

#if CO_CACHE_MAX > 0
struct co_cache {
    coro *head; /* linked through next */
    unsigned n;
    int registered;
};
static _Thread_local struct co_cache co_cache DEFERRED__TLS_IE;
static pthread_key_t co_cache_key;
static pthread_once_t co_cache_once = PTHREAD_ONCE_INIT;
static int co_cache_key_ok;

static void co_cache_drain(void *p)
{
    struct co_cache *c = p;
    while (c->head) {
        coro *co = c->head;
        c->head = co->next;
        coro__stack_free(&co->fiber.stack); /* not into the stack cache: the thread ends */
        free(co);
    }
    c->n = 0;
}
static void co_cache_main_exit(void) { co_cache_drain(&co_cache); }
static void co_cache_key_init(void)
{
    co_cache_key_ok = pthread_key_create(&co_cache_key, co_cache_drain) == 0;
    atexit(co_cache_main_exit);
}

/* A cached struct (its fiber DONE or never run, maybe with a stack), or NULL. */
static coro *co_cache_get(void)
{
    struct co_cache *c = &co_cache;
    coro *co = c->head;
    if (co) {
        c->head = co->next;
        c->n--;
    }
    return co;
}

static void co_release(coro *co)
{
    struct co_cache *c = &co_cache;
    if (!c->registered) {
        pthread_once(&co_cache_once, co_cache_key_init);
        if (co_cache_key_ok && pthread_setspecific(co_cache_key, c) == 0)
            c->registered = 1;
    }
    if (c->registered && c->n < CO_CACHE_MAX) {
        co->next = c->head;
        c->head = co;
        c->n++;
        return;
    }
    coro__fiber_destroy(&co->fiber);
    free(co);
}
void coro__cache_flush(void)
{
    co_cache_drain(&co_cache);
    coro__stack_cache_flush();
}
#else
void coro__cache_flush(void)
{
    coro__stack_cache_flush();
}
static coro *co_cache_get(void) { return NULL; }
static void co_release(coro *co)
{
    coro__fiber_destroy(&co->fiber);
    free(co);
}
#endif

static void co_unref(coro *co)
{
    if (--co->refs == 0)
        co_release(co);
}

/* The slow-callback detector is on in some reactor: the run of the coroutine's body until
 * its next await is a timed section named after its function (reactor/slow.c). */
void coro__resume_timed(coro *co)
{
    reactor__slow_mark m;
    reactor__slow_enter(&m, REACTOR__SLOW_CORO, (void (*)(void))co->fn, NULL);
    coro__resume(co);
    reactor__slow_leave(&m);
}

/* Not inline: for the rare resumes (start, orphaned, closing). */
static void co_resume(coro *co)
{
    if (atomic_load_explicit(&reactor__slow_users, memory_order_relaxed))
        coro__resume_timed(co);
    else
        coro__resume(co);
}

/* The awaited Deferred was freed without firing and discarded our waiter pair. Nothing
 * will ever resume the coroutine, so it is resumed now with a failure (Python closes a
 * generator that is garbage collected in the same spirit). */
void coro__waiter_discarded(void *p)
{
    coro *co = p;
    if (co->waiting == NULL || co->have_result || co->closing ||
        co->fiber.state == CORO__FIBER_DONE)
        return;
    co->waiting = NULL;
    co->orphaned = 1;
    if (co->fiber.state == CORO__FIBER_SUSPENDED)
        co_resume(co); /* its body's reference keeps co alive until it returns */
    /* RUNNING: coro_await_take dropped the last reference itself, or adding the pair
     * failed; it sees waiting == NULL and does not suspend. */
}

/* ---- the per-reactor registry (closing on reactor_free) ------------------------- */

static void reg_remove(coro *co)
{
    struct coro_registry *reg = co->reg;
    if (!reg)
        return;
    if (co->prev)
        co->prev->next = co->next;
    else
        reg->head = co->next;
    if (co->next)
        co->next->prev = co->prev;
    co->prev = co->next = NULL;
    co->reg = NULL;
    reg->count--;
}

/* Module free hook: reactor_free() on a reactor with coroutines still suspended. */
static void reg_free(void *data)
{
    struct coro_registry *reg = data;
    while (reg->head) {
        coro *co = reg->head;
        reg_remove(co);
        co->closing = 1;
        if (co->fiber.state == CORO__FIBER_SUSPENDED) {
            /* Detach from the awaited Deferred (its pair stays but drops the
             * result) and let the body run out. */
            if (co->waiting) {
                deferred__detach_waiter(co->waiting, co);
                co->waiting = NULL;
            }
            co->refs++;
            co_resume(co);
            co_unref(co);
        }
        /* RUNNING: reactor_free() called from inside this very coroutine (or one it
         * resumed); it is finishing on its own, the registry just forgets it. */
    }
    reactor__set_module_data(reg->r, REACTOR__MOD_CORO, &reg_gone, NULL);
    free(reg);
}

static struct coro_registry *reg_get(reactor *r)
{
    struct coro_registry *reg = reactor__module_data(r, REACTOR__MOD_CORO);
    if (reg)
        return reg;
    reg = calloc(1, sizeof *reg);
    if (!reg)
        return NULL;
    reg->r = r;
    if (reactor__set_module_data(r, REACTOR__MOD_CORO, reg, reg_free) < 0) {
        free(reg);
        return NULL;
    }
    return reg;
}

/* ---- targets and cancellation --------------------------------------------------- */

static void co_canceller(deferred *d, void *arg);

static deferred *make_target(coro *co)
{
    return deferred_new_cancellable(co_canceller, co);
}

/* The target d was cancelled before the body returned (Twisted's
 * _cancellableInlineCallbacks): d fires now "waiting for a fresh target", which gets
 * whatever the body finally returns, and the awaited Deferred is cancelled, which
 * resumes the body with the cancellation result. So d has no result until the body
 * returns, and the body may handle the cancellation (test_asynchronousCancellation,
 * test_errorToSuccessTranslation). Only ever called while the body has not returned
 * (d unfired), so co is alive. */
static void co_canceller(deferred *d, void *arg)
{
    coro *co = arg;
    deferred *fresh = make_target(co);
    if (!fresh) {
        deferred_errback_new(d, ENOMEM, "coroutine cancelled (out of memory)");
        return; /* the body goes on; what it returns fires a Deferred nobody has */
    }
    co->target = fresh;
    if (deferred__fire_chained(d, fresh) < 0)
        deferred_errback_new(d, ENOMEM, "coroutine cancelled (out of memory)");
    deferred_unref(d); /* co->target's reference; deferred_cancel holds one meanwhile */
    if (co->waiting)
        deferred_cancel(co->waiting); /* may resume the body, even to its end */
}

/* ---- running ---------------------------------------------------------------------- */

void coro__finish(coro *co)
{
    reg_remove(co);
    deferred *t = co->target;
    co->target = NULL;
    deferred_callback(t, deferred_result_take(&co->final));
    deferred_unref(t);
    /* The stack normally goes back with the struct (co_release, just below). If
     * something still holds the struct (the registry closing it), the stack goes back
     * now. We are on the resumer's stack: safe. */
    if (co->refs > 1)
        coro__fiber_destroy(&co->fiber);
    co_unref(co); /* the body's reference */
}

static void co_entry(void *arg)
{
    coro *co = arg;
    co->final = co->fn(co->arg);
    if (co->final.kind == DEFERRED_DEFERRED) /* `return deferred_continue_with(d)` */
        co->final = coro_await_take(co->final.u.deferred);
}

deferred *coro_start(reactor *r, coro_fn fn, void *arg, size_t stack_size)
{
    if (!fn) {
        errno = EINVAL;
        return NULL;
    }
    coro *co = co_cache_get();
    int rc;
    if (co) {
        rc = coro__fiber_reinit(&co->fiber, stack_size, co_entry, co);
    } else {
        co = malloc(sizeof *co);
        if (!co) {
            errno = ENOMEM;
            return NULL;
        }
        rc = coro__fiber_init(&co->fiber, stack_size, co_entry, co);
    }
    if (rc < 0) {
        coro__fiber_destroy(&co->fiber);
        free(co);
        errno = -rc;
        return NULL;
    }
    /* Everything after the fiber starts zeroed (NONE results, no flags). */
    memset((char *)co + offsetof(coro, waiting), 0, sizeof *co - offsetof(coro, waiting));
    co->fn = fn;
    co->arg = arg;
    co->refs = 1; /* the body's */
    co->target = make_target(co);
    struct coro_registry *reg = NULL;
    if (co->target && r) {
        reg = reg_get(r);
        if (reg == (struct coro_registry *)&reg_gone)
            reg = NULL; /* reactor being freed: no registry */
        else if (!reg) {
            deferred_unref(co->target);
            co->target = NULL;
        }
    }
    if (!co->target) {
        coro__fiber_destroy(&co->fiber);
        co_unref(co);
        errno = ENOMEM;
        return NULL;
    }
    if (reg) {
        co->reg = reg;
        co->next = reg->head;
        if (reg->head)
            reg->head->prev = co;
        reg->head = co;
        reg->count++;
    }
    deferred *result = deferred_ref(co->target);
    co_resume(co);
    return result;
}

/* ---- awaiting --------------------------------------------------------------------- */

/* The two halves of an await, around the switch. take: the caller's reference on d is
 * dropped, before suspending (so that a producer dropping d unfired is noticed, see
 * coro__waiter_discarded).
 *
 * coro__await_begin: returns the coroutine to suspend (the switch is the caller's), or
 * NULL when *out is the answer already (fired Deferred, error).
 * coro__await_end: after the resume, in the coroutine: its result into *out. */
#if defined(__GNUC__) || defined(__clang__)
/* Called only from the assembly stub below, which the compiler cannot see: `used` keeps
 * a link-time-optimised build (-flto) from dropping them. */
#define CORO__ASM_CALLED __attribute__((used))
#else
#define CORO__ASM_CALLED
#endif
CORO__ASM_CALLED coro *coro__await_begin(deferred_result *out, deferred *d, int take);
CORO__ASM_CALLED void coro__await_end(deferred_result *out);

/* The awaits that do not wait: out of line, so that the common case is a tail call. */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((noinline))
#endif
static coro *await_refused(deferred_result *out, deferred *d, coro *co, int take)
{
    if (!d)
        *out = deferred_error(EINVAL, "coro_await(NULL)");
    else if (!co)
        *out = deferred_error(EINVAL, "coro_await called outside a coroutine");
    else if (co->closing)
        *out = deferred_error(ECANCELED, "coroutine closed: its reactor was freed");
    else
        *out = deferred_error(EDEADLK, "a coroutine cannot await its own Deferred");
    if (d && take)
        deferred_unref(d);
    return NULL;
}

CORO__ASM_CALLED coro *coro__await_begin(deferred_result *out, deferred *d, int take)
{
    coro *co = coro__current;
    if (d && co && !co->closing && d != co->target)
        return deferred__await_add(d, co, out, take); /* drops the reference if take */
    return await_refused(out, d, co, take);
}

CORO__ASM_CALLED void coro__await_end(deferred_result *out)
{
    coro *co = coro__current;
    co->waiting = NULL;
    if (co->have_result) {
        co->have_result = 0;
        *out = deferred_result_take(&co->awaited);
    } else if (co->orphaned) {
        co->orphaned = 0;
        *out = deferred_error(ECANCELED, "the awaited Deferred was freed without firing");
    } else {
        *out = deferred_error(ECANCELED, "coroutine closed: its reactor was freed");
    }
}

#if defined(TWISTC_CORO_ASM_X86_64) && !defined(TWISTC_ASAN) && !defined(TWISTC_TSAN)
/* x86-64: coro_await and coro_await_take are written in assembly, around the two C
 * halves, so that a resumed coroutine goes back to its body with an indirect jump
 * instead of a `ret`. After a stack switch the CPU's return-address predictor holds the
 * resumer's calls, so the `ret` of a C coro_await always mispredicts (~7 ns here, a
 * sixth of a whole await round trip); the jump is predicted like any other branch.
 * The switch follows coro__swap's protocol (coro_switch_internal.h): rbx and r12-r15
 * are saved here, then the resume address, rbp and the floating-point control words.
 * Sanitizer builds use the C version below (the switch must be announced to them).
 *
 *   coro_await(out = rdi [hidden result pointer], d = rsi), take = 0 / 1 in edx:
 *     push out; co = coro__await_begin(out, d, take); if co: switch out, and back;
 *     coro__await_end(out); rax = out; pop the return address and jump to it. */
_Static_assert(offsetof(coro, fiber) == 0 && offsetof(coro__fiber, sp) == 0 &&
                   offsetof(coro__fiber, caller_sp) == 8,
               "coro_await's assembly knows these offsets");
__asm__(
    ".text\n"
    ".globl coro_await_take\n"
    ".type coro_await_take, @function\n"
    ".p2align 4\n"
    "coro_await_take:\n"
    "    .cfi_startproc\n"
    "    movl $1, %edx\n"
    "    jmp coro__await_asm\n"
    "    .cfi_endproc\n"
    ".size coro_await_take, .-coro_await_take\n"
    ".globl coro_await\n"
    ".type coro_await, @function\n"
    ".p2align 4\n"
    "coro_await:\n"
    "    .cfi_startproc\n"
    "    xorl %edx, %edx\n"
    "    jmp coro__await_asm\n"
    "    .cfi_endproc\n"
    ".size coro_await, .-coro_await\n"
    ".type coro__await_asm, @function\n"
    ".p2align 4\n"
    "coro__await_asm:\n"
    "    .cfi_startproc\n"
    "    pushq %rdi\n"
    "    .cfi_adjust_cfa_offset 8\n"
    "    call coro__await_begin\n"
    "    testq %rax, %rax\n"
    "    jz 2f\n"
    "    pushq %rbx\n"
    "    pushq %r12\n"
    "    pushq %r13\n"
    "    pushq %r14\n"
    "    pushq %r15\n"
    "    .cfi_adjust_cfa_offset 40\n"
    "    leaq 1f(%rip), %rcx\n"
    "    pushq %rcx\n"
    "    pushq %rbp\n"
    "    subq $8, %rsp\n"
    "    .cfi_adjust_cfa_offset 24\n"
    "    stmxcsr (%rsp)\n"
    "    fnstcw 4(%rsp)\n"
    "    movl (%rsp), %ecx\n"
    "    movzwl 4(%rsp), %edx\n"
    "    movq %rsp, (%rax)\n"  /* co->fiber.sp */
    "    movq 8(%rax), %rsp\n" /* co->fiber.caller_sp: the resumer's side */
    "    cmpl (%rsp), %ecx\n"
    "    je 3f\n"
    "    ldmxcsr (%rsp)\n"
    "3:\n"
    "    cmpw 4(%rsp), %dx\n"
    "    je 4f\n"
    "    fldcw 4(%rsp)\n"
    "4:\n"
    "    addq $8, %rsp\n"
    "    popq %rbp\n"
    "    popq %rcx\n"
    "    jmpq *%rcx\n"
    "1:\n" /* resumed: the resumer popped the control words, rbp and this address */
    "    .cfi_adjust_cfa_offset -24\n"
    "    popq %r15\n"
    "    popq %r14\n"
    "    popq %r13\n"
    "    popq %r12\n"
    "    popq %rbx\n"
    "    .cfi_adjust_cfa_offset -40\n"
    "    movq (%rsp), %rdi\n"
    "    call coro__await_end\n"
    "2:\n"
    "    popq %rax\n"
    "    .cfi_adjust_cfa_offset -8\n"
    "    popq %rcx\n"
    "    .cfi_adjust_cfa_offset -8\n"
    "    .cfi_register rip, rcx\n"
    "    jmpq *%rcx\n"
    "    .cfi_endproc\n"
    ".size coro__await_asm, .-coro__await_asm\n");
#else
static CORO__INLINE deferred_result await_impl(deferred *d, int take)
{
    deferred_result out;
    coro *co = coro__await_begin(&out, d, take);
    if (co) {
        coro__fiber_yield(&co->fiber); /* inline: one frame returned through */
        coro__await_end(&out);
    }
    return out;
}

deferred_result coro_await(deferred *d)
{
    return await_impl(d, 0);
}

deferred_result coro_await_take(deferred *d)
{
    return await_impl(d, 1);
}
#endif

/* ---- small queries ------------------------------------------------------------------ */

int coro_in_coroutine(void)
{
    return coro__current != NULL;
}

size_t coro_default_stack_size(void)
{
    return CORO__DEFAULT_STACK_SIZE;
}

size_t coro_count(reactor *r)
{
    struct coro_registry *reg = r ? reactor__module_data(r, REACTOR__MOD_CORO) : NULL;
    return reg && reg != (struct coro_registry *)&reg_gone ? reg->count : 0;
}

const char *coro_backend(void)
{
    return coro__backend_name();
}
