#define _GNU_SOURCE /* ucontext on glibc/BSD */
/* Switching stacks for coro__fiber: setting up a new fiber's stack, its first entry, the
 * out-of-line AArch64 switch and the ucontext glue. resume() and yield() themselves are
 * inline in coro_switch_internal.h (on x86-64 the switch is inline assembly there).
 *
 * The asm backends save only what the ABI says a called function must preserve: a
 * context switch is, to the C code on either side, an ordinary function call that
 * happens to return on another stack. Everything else (caller-saved registers, the
 * signal mask) is left alone, which is why they cost a few nanoseconds where glibc's
 * swapcontext, which also saves and restores the signal mask with a syscall, costs a
 * few hundred. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "deferred/coro_switch_internal.h"


/* Runs on the fiber's stack the first time it is resumed; never returns. Not static:
 * the asm trampolines call it by name (hidden by -fvisibility=hidden). */
void coro__fiber_entry(coro__fiber *f) __attribute__((noreturn, used));

/* ---- the raw switch, per backend ------------------------------------------------ */

#if defined(TWISTC_CORO_ASM_X86_64)
/* The switch is inline (coro__swap in coro_switch_internal.h). A new fiber's stack is
 * prepared as if it had left through coro__swap: from the saved sp up,
 * [mxcsr:4 fpucw:2 pad:2] rbp rip, with rip = the trampoline and rbp = the fiber.
 * The trampoline is the first code run on the new stack: rsp is 16-byte aligned there;
 * it pushes a zero return address (which ends backtraces and gives the entry function
 * the alignment of a call) and jumps, rather than calls, into coro__fiber_entry, so the
 * CPU's return-address predictor gets no entry that is never returned through.
 * rbp = 0 ends frame-pointer backtraces; the CFI says there is no caller, which ends
 * DWARF backtraces. */
void coro__trampoline_asm(void);
__asm__(
    ".text\n"
    ".globl coro__trampoline_asm\n"
    ".hidden coro__trampoline_asm\n"
    ".type coro__trampoline_asm, @function\n"
    ".p2align 4\n"
    "coro__trampoline_asm:\n"
    "    .cfi_startproc\n"
    "    .cfi_undefined rip\n"
    "    movq %rbp, %rdi\n"
    "    xorl %ebp, %ebp\n"
    "    pushq $0\n"
    "    jmp coro__fiber_entry\n"
    "    ud2\n"
    "    .cfi_endproc\n"
    ".size coro__trampoline_asm, .-coro__trampoline_asm\n");

static void ctx_prepare(coro__fiber *f)
{
    uintptr_t top = (uintptr_t)f->stack.hi & ~(uintptr_t)15;
    void **sp = (void **)top;
    uint32_t mxcsr;
    uint16_t fpucw;
    /* The new fiber starts with its creator's floating-point modes. */
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(fpucw));
    *--sp = (void *)coro__trampoline_asm; /* popped and jumped to */
    *--sp = f;                             /* rbp: the trampoline's argument */
    --sp;
    uint64_t fp = (uint64_t)mxcsr | ((uint64_t)fpucw << 32);
    memcpy(sp, &fp, sizeof fp);
    f->sp = sp;
}

#elif defined(TWISTC_CORO_ASM_AARCH64)
/* AAPCS64: x19-x28, x29 (frame pointer), x30 (link register), sp and the low halves
 * of v8-v15 (d8-d15) are callee-saved. Frame (160 bytes, sp stays 16-aligned):
 * d8..d15 at 0..63, x19..x28 at 64..143, x29 at 144, x30 at 152. `ret` jumps to the
 * restored x30: the other side's return address, or the trampoline the first time. */
void coro__trampoline_asm(void);
__asm__(
    ".text\n"
    ".globl coro__switch_asm\n"
    ".hidden coro__switch_asm\n"
    ".type coro__switch_asm, %function\n"
    ".p2align 4\n"
    "coro__switch_asm:\n"
    "    sub sp, sp, #160\n"
    "    stp d8, d9, [sp, #0]\n"
    "    stp d10, d11, [sp, #16]\n"
    "    stp d12, d13, [sp, #32]\n"
    "    stp d14, d15, [sp, #48]\n"
    "    stp x19, x20, [sp, #64]\n"
    "    stp x21, x22, [sp, #80]\n"
    "    stp x23, x24, [sp, #96]\n"
    "    stp x25, x26, [sp, #112]\n"
    "    stp x27, x28, [sp, #128]\n"
    "    stp x29, x30, [sp, #144]\n"
    "    mov x9, sp\n"
    "    str x9, [x0]\n"
    "    mov sp, x1\n"
    "    ldp d8, d9, [sp, #0]\n"
    "    ldp d10, d11, [sp, #16]\n"
    "    ldp d12, d13, [sp, #32]\n"
    "    ldp d14, d15, [sp, #48]\n"
    "    ldp x19, x20, [sp, #64]\n"
    "    ldp x21, x22, [sp, #80]\n"
    "    ldp x23, x24, [sp, #96]\n"
    "    ldp x25, x26, [sp, #112]\n"
    "    ldp x27, x28, [sp, #128]\n"
    "    ldp x29, x30, [sp, #144]\n"
    "    add sp, sp, #160\n"
    "    ret\n"
    ".size coro__switch_asm, .-coro__switch_asm\n"
    ".globl coro__trampoline_asm\n"
    ".hidden coro__trampoline_asm\n"
    ".type coro__trampoline_asm, %function\n"
    ".p2align 4\n"
    "coro__trampoline_asm:\n"
    "    .cfi_startproc\n"
    "    .cfi_undefined x30\n"
    "    mov x0, x19\n"
    "    bl coro__fiber_entry\n"
    "    brk #0\n"
    "    .cfi_endproc\n"
    ".size coro__trampoline_asm, .-coro__trampoline_asm\n");

static void ctx_prepare(coro__fiber *f)
{
    uintptr_t top = (uintptr_t)f->stack.hi & ~(uintptr_t)15;
    void **sp = (void **)(top - 160);
    memset(sp, 0, 160);
    sp[8] = f;                             /* x19: the trampoline's argument */
    sp[18] = NULL;                         /* x29 = 0 ends frame-pointer backtraces */
    sp[19] = (void *)coro__trampoline_asm; /* x30: where `ret` goes */
    f->sp = sp;
}

#elif defined(TWISTC_CORO_UCONTEXT)
/* makecontext() passes only int arguments portably: the pointer goes in two halves. */
static void uc_entry(unsigned hi, unsigned lo)
{
    uintptr_t p = ((uintptr_t)hi << 16 << 16) | (uintptr_t)lo;
    coro__fiber_entry((coro__fiber *)p);
}

static int uc_prepare(coro__fiber *f)
{
    if (getcontext(&f->ctx) != 0)
        return -errno;
    f->ctx.uc_stack.ss_sp = f->stack.lo;
    f->ctx.uc_stack.ss_size = coro__stack_size(&f->stack);
    f->ctx.uc_link = NULL; /* uc_entry never returns */
    uintptr_t p = (uintptr_t)f;
    makecontext(&f->ctx, (void (*)(void))uc_entry, 2, (unsigned)(p >> 16 >> 16),
                (unsigned)(p & 0xffffffffu));
    return 0;
}
#endif

#if defined(TWISTC_CORO_ASM_X86_64) || defined(TWISTC_CORO_ASM_AARCH64) || \
    defined(TWISTC_CORO_UCONTEXT)
#define CORO__HAVE_BACKEND 1
#endif

const char *coro__backend_name(void)
{
#if defined(TWISTC_CORO_ASM_X86_64)
    return "asm-x86_64";
#elif defined(TWISTC_CORO_ASM_AARCH64)
    return "asm-aarch64";
#elif defined(TWISTC_CORO_UCONTEXT)
    return "ucontext";
#else
    return "none";
#endif
}

/* ---- the fiber API ------------------------------------------------------------- */

/* Sets up f on the stack it holds (f->stack), for its first resume. */
static int fiber_setup(coro__fiber *f, coro__entry_fn entry, void *arg)
{
#if !defined(CORO__HAVE_BACKEND)
    (void)f;
    (void)entry;
    (void)arg;
    return -ENOSYS;
#else
    f->entry = entry;
    f->arg = arg;
    f->state = CORO__FIBER_READY;
#if defined(TWISTC_CORO_UCONTEXT)
    int rc = uc_prepare(f);
    if (rc < 0)
        return rc;
#else
    ctx_prepare(f);
#endif
#if defined(TWISTC_TSAN)
    f->tsan_fiber = __tsan_create_fiber(0);
#endif
    return 0;
#endif
}

int coro__fiber_init(coro__fiber *f, size_t stack_size, coro__entry_fn entry, void *arg)
{
    memset(f, 0, sizeof *f);
#if !defined(CORO__HAVE_BACKEND)
    (void)stack_size;
    return fiber_setup(f, entry, arg);
#else
    int rc = coro__stack_get(&f->stack, stack_size);
    if (rc < 0)
        return rc;
    rc = fiber_setup(f, entry, arg);
    if (rc < 0)
        coro__stack_put(&f->stack);
    return rc;
#endif
}

int coro__fiber_reinit(coro__fiber *f, size_t stack_size, coro__entry_fn entry, void *arg)
{
    if (f->state == CORO__FIBER_RUNNING || f->state == CORO__FIBER_SUSPENDED)
        return -EINVAL;
    if (f->stack.map == NULL || coro__stack_size(&f->stack) != coro__stack_round(stack_size)) {
        coro__fiber_destroy(f);
        return coro__fiber_init(f, stack_size, entry, arg);
    }
#if defined(TWISTC_TSAN)
    if (f->tsan_fiber != NULL)
        __tsan_destroy_fiber(f->tsan_fiber);
#endif
    coro__stack st = f->stack;
    memset(f, 0, sizeof *f);
    f->stack = st;
    return fiber_setup(f, entry, arg);
}

void coro__fiber_entry(coro__fiber *f)
{
    coro__san_in_fiber(f, 1);
    f->entry(f->arg);
    f->state = CORO__FIBER_DONE;
    coro__san_leave_fiber(f, 1);
#if defined(CORO__HAVE_BACKEND)
    CORO__SWITCH_TO_CALLER(f);
#endif
    /* Unreachable: nobody resumes a DONE fiber. */
    __builtin_trap();
}

void coro__fiber_destroy(coro__fiber *f)
{
    if (f->state == CORO__FIBER_RUNNING)
        return; /* misuse: freeing the stack we may be standing on */
#if defined(TWISTC_TSAN)
    if (f->tsan_fiber != NULL) {
        __tsan_destroy_fiber(f->tsan_fiber);
        f->tsan_fiber = NULL;
    }
#endif
    coro__stack_put(&f->stack);
}
