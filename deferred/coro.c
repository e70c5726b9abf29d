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
 * target is made with a canceller and, as its very first pair, an errback (cancel_eb).
 * Cancelling the target errbacks it with a marker failure that only cancel_eb sees:
 * cancel_eb swaps in a fresh target, cancels the awaited Deferred (which resumes the
 * body with the cancellation result) and returns deferred_chain(new target), so the
 * cancelled Deferred gets whatever the body finally returns, when it returns.
 *
 * Lifetime of struct coro: reference counted. One reference for the running body
 * (dropped when it returns), one per cancel_eb pair (a target the user paused may run
 * it after the body returned). A waiter pair holds none: it is consumed when it wakes
 * the coroutine, reports to it when discarded unrun, and is neutralised
 * (deferred__detach_waiter) if the coroutine stops waiting for another reason, so it
 * never points to a coroutine that has gone. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

#include "deferred/coro_internal.h"
#include "reactor/module_internal.h"

struct coro_registry {
    reactor *r;
    coro *head;
    size_t count;
};

/* Left as the module data after reg_free: coroutines started later in reactor_free()
 * (by another module's free hook) run without a registry. */
static char reg_gone;

_Thread_local coro *coro__current;

static void co_unref(coro *co)
{
    if (--co->refs == 0)
        free(co);
}

static void co_unref_void(void *co)
{
    co_unref(co);
}

/* Not inline: for the rare resumes (start, orphaned, closing). */
static void co_resume(coro *co)
{
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
static deferred_result cancel_eb(deferred_result r, void *arg);

static deferred *make_target(coro *co)
{
    deferred *d = deferred_new_cancellable(co_canceller, co);
    if (!d)
        return NULL;
    co->refs++; /* owned by the pair (a paused target may run it late) */
    if (!deferred_add_callbacks_full(d, NULL, cancel_eb, co, co_unref_void)) {
        deferred_unref(d);
        return NULL;
    }
    return d;
}

/* The target was cancelled before the body returned. */
static void co_canceller(deferred *d, void *arg)
{
    coro *co = arg;
    co->cancel_pending = 1;
    deferred_errback_new(d, ECANCELED, "coroutine cancelled");
}

static deferred_result cancel_eb(deferred_result r, void *arg)
{
    coro *co = arg;
    if (!co->cancel_pending)
        return r; /* the body's own failure: pass it on */
    co->cancel_pending = 0;
    deferred_result_clear(&r);
    deferred *fresh = make_target(co);
    if (!fresh)
        return deferred_error(ENOMEM, "coroutine cancelled (out of memory)");
    /* The old target is running this chain and holds itself alive meanwhile. */
    deferred *old = co->target;
    co->target = fresh;
    deferred_ref(fresh); /* for the chain result below, taken before the body may fire
                          * and drop co->target */
    if (co->waiting)
        deferred_cancel(co->waiting); /* may resume the body, even to its end */
    deferred_unref(old);
    return deferred_chain(fresh);
}

/* ---- running ---------------------------------------------------------------------- */

void coro__finish(coro *co)
{
    reg_remove(co);
    coro__fiber_destroy(&co->fiber); /* we are on the resumer's stack: safe */
    deferred *t = co->target;
    co->target = NULL;
    deferred_callback(t, deferred_result_take(&co->final));
    deferred_unref(t);
    co_unref(co); /* the body's reference */
}

static void co_entry(void *arg)
{
    coro *co = arg;
    co->final = co->fn(co->arg);
    if (co->final.kind == DEFERRED_DEFERRED) /* `return deferred_chain(d)` */
        co->final = coro_await_take(co->final.u.deferred);
}

deferred *coro_start(reactor *r, coro_fn fn, void *arg, size_t stack_size)
{
    if (!fn) {
        errno = EINVAL;
        return NULL;
    }
    coro *co = calloc(1, sizeof *co);
    if (!co) {
        errno = ENOMEM;
        return NULL;
    }
    co->fn = fn;
    co->arg = arg;
    co->refs = 1; /* the body's; make_target adds the cancel pair's */
    int rc = coro__fiber_init(&co->fiber, stack_size, co_entry, co);
    if (rc < 0) {
        free(co);
        errno = -rc;
        return NULL;
    }
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
coro *coro__await_begin(deferred_result *out, deferred *d, int take);
void coro__await_end(deferred_result *out);

coro *coro__await_begin(deferred_result *out, deferred *d, int take)
{
    coro *co = coro__current;
    if (!d) {
        *out = deferred_error(EINVAL, "coro_await(NULL)");
        return NULL;
    }
    if (!co)
        *out = deferred_error(EINVAL, "coro_await called outside a coroutine");
    else if (co->closing)
        *out = deferred_error(ECANCELED, "coroutine closed: its reactor was freed");
    else if (d == co->target)
        *out = deferred_error(EDEADLK, "a coroutine cannot await its own Deferred");
    else {
        int rc = deferred__await_add(d, co, out, take); /* drops the reference if take */
        if (rc < 0) {
            *out = deferred_error(-rc, "coro_await: cannot add callbacks");
        } else if (rc == 0) {
            if (co->waiting) { /* still waiting (d was not freed unfired) */
                co->fiber.state = CORO__FIBER_SUSPENDED;
                return co;
            }
            coro__await_end(out); /* orphaned at once */
        }
        /* rc == 1: already fired, *out has its result (20 000 such awaits in a loop
         * use no stack: no pair, no switch) */
        return NULL;
    }
    if (take)
        deferred_unref(d);
    return NULL;
}

void coro__await_end(deferred_result *out)
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
    "    movq %rsp, (%rax)\n"  /* co->fiber.sp */
    "    movq 8(%rax), %rsp\n" /* co->fiber.caller_sp: the resumer's side */
    "    ldmxcsr (%rsp)\n"
    "    fldcw 4(%rsp)\n"
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
