/* The raw switching layer (deferred/coro_switch_internal.h): stacks, resume/yield,
 * nesting, registers surviving a switch, the guard page. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deferred/coro_switch_internal.h"

/* ---- ping-pong ---------------------------------------------------------------- */

struct pingpong {
    coro__fiber f;
    int trace[16];
    int n;
};

static void pingpong_body(void *arg)
{
    struct pingpong *p = arg;
    for (int i = 0; i < 3; i++) {
        p->trace[p->n++] = 100 + i;
        coro__fiber_yield(&p->f);
    }
    p->trace[p->n++] = 200;
}

START_TEST(test_resume_yield_order)
{
    struct pingpong p;
    memset(&p, 0, sizeof p);
    ck_assert_int_eq(coro__fiber_init(&p.f, 0, pingpong_body, &p), 0);
    ck_assert_int_eq(p.f.state, CORO__FIBER_READY);
    ck_assert_int_eq(p.n, 0); /* nothing runs before the first resume */
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(coro__fiber_resume(&p.f), 0);
        ck_assert_int_eq(p.f.state, CORO__FIBER_SUSPENDED);
        p.trace[p.n++] = i;
    }
    ck_assert_int_eq(coro__fiber_resume(&p.f), 0);
    ck_assert(coro__fiber_done(&p.f));
    int want[] = {100, 0, 101, 1, 102, 2, 200};
    ck_assert_int_eq(p.n, 7);
    for (int i = 0; i < 7; i++)
        ck_assert_int_eq(p.trace[i], want[i]);
    /* A finished fiber cannot be resumed again. */
    ck_assert_int_eq(coro__fiber_resume(&p.f), -EINVAL);
    coro__fiber_destroy(&p.f);
}
END_TEST

static void empty_body(void *arg)
{
    (*(int *)arg)++;
}

START_TEST(test_backend_and_destroy_unstarted)
{
    const char *b = coro__backend_name();
    ck_assert_str_ne(b, "none");
    coro__fiber f;
    int ran = 0;
    ck_assert_int_eq(coro__fiber_init(&f, 0, empty_body, &ran), 0);
    coro__fiber_destroy(&f); /* never resumed: just frees the stack */
    ck_assert_int_eq(ran, 0);
    ck_assert_int_eq(coro__fiber_init(&f, 0, empty_body, &ran), 0);
    ck_assert_int_eq(coro__fiber_resume(&f), 0);
    ck_assert_int_eq(ran, 1);
    ck_assert(coro__fiber_done(&f));
    coro__fiber_destroy(&f);
    coro__fiber_destroy(&f); /* second destroy is a no-op */
}
END_TEST

/* ---- stacks --------------------------------------------------------------------- */

START_TEST(test_stack_sizes)
{
    long pg = sysconf(_SC_PAGESIZE);
    coro__stack s;
    ck_assert_int_eq(coro__stack_alloc(&s, 0), 0);
    ck_assert_uint_eq(coro__stack_size(&s), CORO__DEFAULT_STACK_SIZE);
    ck_assert_ptr_eq((char *)s.lo - pg, s.map); /* one guard page below */
    ck_assert_uint_eq(s.map_size, CORO__DEFAULT_STACK_SIZE + (size_t)pg);
    /* The whole usable range is writable. */
    memset(s.lo, 0xab, coro__stack_size(&s));
    coro__stack_free(&s);
    ck_assert_ptr_null(s.map);
    coro__stack_free(&s);

    ck_assert_int_eq(coro__stack_alloc(&s, 1), 0);
    ck_assert_uint_eq(coro__stack_size(&s), CORO__MIN_STACK_SIZE);
    coro__stack_free(&s);

    ck_assert_int_eq(coro__stack_alloc(&s, CORO__MIN_STACK_SIZE + 1), 0);
    ck_assert_uint_eq(coro__stack_size(&s), CORO__MIN_STACK_SIZE + (size_t)pg);
    coro__stack_free(&s);

    ck_assert_int_eq(coro__stack_alloc(&s, SIZE_MAX - 10), -ENOMEM);
}
END_TEST

/* Uses about `depth` KiB of stack, touching every frame. */
static int __attribute__((noinline)) burn(int depth)
{
    volatile char buf[1024];
    memset((char *)buf, depth & 0xff, sizeof buf);
    if (depth <= 1)
        return buf[10];
    return burn(depth - 1) + buf[depth % 1000];
}

struct deep {
    coro__fiber f;
    int depth;
    int result;
};

static void deep_body(void *arg)
{
    struct deep *d = arg;
    d->result = burn(d->depth);
    coro__fiber_yield(&d->f);
    d->result += burn(d->depth);
}

START_TEST(test_deep_recursion_fits)
{
    /* 1 MiB stack, ~600 KiB used (ASan frames are bigger, hence the margin). */
    struct deep d = {.depth = 600};
    ck_assert_int_eq(coro__fiber_init(&d.f, 1024 * 1024, deep_body, &d), 0);
    ck_assert_int_eq(coro__fiber_resume(&d.f), 0);
    int first = d.result;
    ck_assert_int_eq(first, burn(600));
    ck_assert_int_eq(coro__fiber_resume(&d.f), 0);
    ck_assert_int_eq(d.result, 2 * first);
    coro__fiber_destroy(&d.f);
}
END_TEST

/* Runs in a forked child only: recursing past the end of a 32 KiB stack must hit the
 * guard page and die of SIGSEGV (not corrupt memory and go on). */
START_TEST(test_overflow_hits_guard_page)
{
    struct deep d = {.depth = 10000};
    ck_assert_int_eq(coro__fiber_init(&d.f, 32 * 1024, deep_body, &d), 0);
    coro__fiber_resume(&d.f);
    ck_abort_msg("the fiber overflowed its stack without a fault");
}
END_TEST

/* ---- nesting and many fibers ------------------------------------------------------ */

struct nest {
    coro__fiber outer, inner;
    char log[32];
    int n;
};

static void inner_body(void *arg)
{
    struct nest *x = arg;
    x->log[x->n++] = 'i';
    coro__fiber_yield(&x->inner);
    x->log[x->n++] = 'j';
}

static void outer_body(void *arg)
{
    struct nest *x = arg;
    x->log[x->n++] = 'o';
    ck_assert_int_eq(coro__fiber_init(&x->inner, 0, inner_body, x), 0);
    coro__fiber_resume(&x->inner); /* a fiber resuming another fiber */
    x->log[x->n++] = 'p';
    coro__fiber_yield(&x->outer);
    /* Resumed from the main stack again; finish the inner one from here. */
    coro__fiber_resume(&x->inner);
    ck_assert(coro__fiber_done(&x->inner));
    coro__fiber_destroy(&x->inner); /* freeing another fiber's stack, not ours */
    x->log[x->n++] = 'q';
}

START_TEST(test_nested_fibers)
{
    struct nest x;
    memset(&x, 0, sizeof x);
    ck_assert_int_eq(coro__fiber_init(&x.outer, 0, outer_body, &x), 0);
    coro__fiber_resume(&x.outer);
    ck_assert_str_eq(x.log, "oip");
    ck_assert_int_eq(coro__fiber_resume(&x.outer), 0);
    ck_assert_str_eq(x.log, "oipjq");
    ck_assert(coro__fiber_done(&x.outer));
    coro__fiber_destroy(&x.outer);
}
END_TEST

/* Running fibers refuse resume and destroy. */
struct self_ref {
    coro__fiber f;
    int resume_rc;
};

static void self_body(void *arg)
{
    struct self_ref *s = arg;
    s->resume_rc = coro__fiber_resume(&s->f);
    coro__fiber_destroy(&s->f); /* ignored: it is running */
    ck_assert_ptr_nonnull(s->f.stack.map);
}

START_TEST(test_running_fiber_refuses_resume)
{
    struct self_ref s = {.resume_rc = 1};
    ck_assert_int_eq(coro__fiber_init(&s.f, 0, self_body, &s), 0);
    coro__fiber_resume(&s.f);
    ck_assert_int_eq(s.resume_rc, -EINVAL);
    coro__fiber_destroy(&s.f);
}
END_TEST

#define NFIB 64
struct many {
    coro__fiber f[NFIB];
    long sum[NFIB];
};
struct many_arg {
    struct many *m;
    int i;
};

/* Keeps many values live across switches, in integer and floating-point registers, so
 * a register the switch forgets to save shows up as a wrong sum. */
static void many_body(void *arg)
{
    struct many_arg *a = arg;
    long x1 = a->i, x2 = a->i * 2, x3 = a->i * 3, x4 = a->i * 5, x5 = a->i * 7;
    double d1 = a->i * 0.5, d2 = a->i * 0.25, d3 = a->i + 0.125;
    for (int round = 0; round < 10; round++) {
        coro__fiber_yield(&a->m->f[a->i]);
        x1 += 1;
        x2 += x1;
        x3 ^= x2;
        x4 += x3 & 0xff;
        x5 -= x4;
        d1 += 1.0;
        d2 *= 1.5;
        d3 -= 0.5;
    }
    a->m->sum[a->i] = x1 + x2 + x3 + x4 + x5 + (long)(d1 * 8) + (long)(d2 * 1024) +
                      (long)(d3 * 8);
}

static long many_expected(int i)
{
    long x1 = i, x2 = i * 2, x3 = i * 3, x4 = i * 5, x5 = i * 7;
    double d1 = i * 0.5, d2 = i * 0.25, d3 = i + 0.125;
    for (int round = 0; round < 10; round++) {
        x1 += 1;
        x2 += x1;
        x3 ^= x2;
        x4 += x3 & 0xff;
        x5 -= x4;
        d1 += 1.0;
        d2 *= 1.5;
        d3 -= 0.5;
    }
    return x1 + x2 + x3 + x4 + x5 + (long)(d1 * 8) + (long)(d2 * 1024) + (long)(d3 * 8);
}

START_TEST(test_many_interleaved)
{
    struct many *m = calloc(1, sizeof *m);
    struct many_arg args[NFIB];
    ck_assert_ptr_nonnull(m);
    for (int i = 0; i < NFIB; i++) {
        args[i] = (struct many_arg){m, i};
        ck_assert_int_eq(coro__fiber_init(&m->f[i], 32 * 1024, many_body, &args[i]), 0);
    }
    /* Round robin, with this side's registers busy too. */
    long mine = 0;
    for (int round = 0; round < 11; round++)
        for (int i = 0; i < NFIB; i++) {
            mine += i * round;
            ck_assert_int_eq(coro__fiber_resume(&m->f[i]), 0);
        }
    ck_assert_int_eq(mine, 55L * (NFIB * (NFIB - 1) / 2));
    for (int i = 0; i < NFIB; i++) {
        ck_assert(coro__fiber_done(&m->f[i]));
        ck_assert_int_eq(m->sum[i], many_expected(i));
        coro__fiber_destroy(&m->f[i]);
    }
    free(m);
}
END_TEST

/* A suspended fiber can be dropped (its stack unmapped) without running it to the end;
 * a new one then reuses the address range cleanly (ASan: no stale poisoning). */
static void suspend_forever(void *arg)
{
    coro__fiber *f = arg;
    volatile char big[4096];
    memset((char *)big, 1, sizeof big);
    coro__fiber_yield(f);
    ck_abort_msg("resumed a dropped fiber");
}

START_TEST(test_drop_suspended)
{
    for (int i = 0; i < 50; i++) {
        coro__fiber f;
        ck_assert_int_eq(coro__fiber_init(&f, 0, suspend_forever, &f), 0);
        ck_assert_int_eq(coro__fiber_resume(&f), 0);
        ck_assert_int_eq(f.state, CORO__FIBER_SUSPENDED);
        coro__fiber_destroy(&f);
    }
}
END_TEST

extern Suite *suite_deferred_coro_switch(void);
/* Stacks of finished fibers are reused (same size), and the cache can be emptied. */
START_TEST(test_stack_cache_reuse)
{
    coro__stack_cache_flush();
    coro__fiber f;
    int ran = 0;
    ck_assert_int_eq(coro__fiber_init(&f, 64 * 1024, empty_body, &ran), 0);
    void *lo = f.stack.lo;
    ck_assert_int_eq(coro__fiber_resume(&f), 0);
    coro__fiber_destroy(&f);
    ck_assert_ptr_null(f.stack.map);
    ck_assert_int_eq(coro__fiber_init(&f, 64 * 1024, empty_body, &ran), 0);
    ck_assert_ptr_eq(f.stack.lo, lo); /* from the cache */
    coro__fiber_destroy(&f);
    /* Another size does not take it. */
    ck_assert_int_eq(coro__fiber_init(&f, 128 * 1024, empty_body, &ran), 0);
    ck_assert_uint_eq(coro__stack_size(&f.stack), 128 * 1024);
    coro__fiber_destroy(&f);
    /* More than the cache holds: the extra ones are unmapped. */
    coro__fiber many[12];
    for (int i = 0; i < 12; i++)
        ck_assert_int_eq(coro__fiber_init(&many[i], 0, empty_body, &ran), 0);
    for (int i = 0; i < 12; i++)
        coro__fiber_destroy(&many[i]);
    coro__stack_cache_flush();
}
END_TEST

/* A thread that used fibers exits: its cached stacks are unmapped by the destructor
 * (checked by the tools: no leak, no error). */
static void *thread_with_fibers(void *arg)
{
    int ran = 0;
    for (int i = 0; i < 4; i++) {
        coro__fiber f;
        if (coro__fiber_init(&f, 0, empty_body, &ran) < 0)
            return NULL;
        coro__fiber_resume(&f);
        coro__fiber_destroy(&f);
    }
    *(int *)arg = ran;
    return NULL;
}

START_TEST(test_fibers_on_a_thread)
{
    pthread_t t;
    int ran = 0;
    ck_assert_int_eq(pthread_create(&t, NULL, thread_with_fibers, &ran), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_eq(ran, 4);
}
END_TEST

Suite *suite_deferred_coro_switch(void)
{
    Suite *s = suite_create("deferred_coro_switch");
    TCase *tc = tcase_create("switch");
    tcase_add_test(tc, test_resume_yield_order);
    tcase_add_test(tc, test_backend_and_destroy_unstarted);
    tcase_add_test(tc, test_stack_sizes);
    tcase_add_test(tc, test_deep_recursion_fits);
    tcase_add_test(tc, test_nested_fibers);
    tcase_add_test(tc, test_running_fiber_refuses_resume);
    tcase_add_test(tc, test_many_interleaved);
    tcase_add_test(tc, test_drop_suspended);
    tcase_add_test(tc, test_stack_cache_reuse);
    suite_add_tcase(s, tc);

    TCase *tt = tcase_create("thread");
    tcase_set_tags(tt, "threads");
    tcase_add_test(tt, test_fibers_on_a_thread);
    suite_add_tcase(s, tt);

    /* The guard-page test needs a child process to die in, and no tool that catches
     * SIGSEGV itself (ASan reports and aborts; valgrind reports it as an error). */
    const char *fork_env = getenv("CK_FORK");
    const char *vg = getenv("TWISTC_UNDER_VALGRIND");
    int forking = !(fork_env && strcmp(fork_env, "no") == 0);
    int under_tool = (vg && *vg && strcmp(vg, "0") != 0);
#if defined(TWISTC_ASAN) || defined(TWISTC_TSAN)
    under_tool = 1;
#endif
    if (forking && !under_tool) {
        TCase *tg = tcase_create("guard_page");
        tcase_add_test_raise_signal(tg, test_overflow_hits_guard_page, SIGSEGV);
        suite_add_tcase(s, tg);
    }
    return s;
}
