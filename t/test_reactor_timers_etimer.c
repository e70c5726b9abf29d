/* Embedded timers (reactor_etimer): the statements of semantics D1-D3 (never early, in
 * time order, FIFO among equal deadlines, one pass per iteration, exact poll timeout)
 * and the ownership rules of reactor.h (stop from inside, restart inside, free after
 * stop, free inside its own function, reactor_free stops what is active). Fake clock
 * where possible; the real-clock tests run on every backend. */
#include <check.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <time.h>

#include "helpers.h"
#include "reactor/reactor_internal.h" /* heap root and poll timeout: exact after lazy moves */

#define MAXLOG 256

typedef struct {
    int id[MAXLOG];
    double at[MAXLOG];
    uint64_t iter[MAXLOG];
    int n;
} elog;

typedef struct item {
    reactor_etimer t;
    elog *log;
    int id;
    int action; /* what the function does besides logging */
    struct item *other;
} item;

enum { A_NONE, A_STOP_SELF, A_RESTART_SELF, A_FREE_SELF, A_STOP_FREE_OTHER, A_AGAIN_OTHER };

static item *item_of(reactor_etimer *t)
{
    return (item *)((char *)t - offsetof(item, t));
}

static void fire(reactor *r, reactor_etimer *t)
{
    item *it = item_of(t);
    elog *l = it->log;
    ck_assert_int_lt(l->n, MAXLOG);
    l->id[l->n] = it->id;
    l->at[l->n] = reactor_seconds(r);
    l->iter[l->n] = reactor_iterations(r);
    l->n++;
    switch (it->action) {
    case A_STOP_SELF:
        ck_assert_int_eq(reactor_etimer_stop(r, t), 0);
        ck_assert(!reactor_etimer_active(t));
        break;
    case A_RESTART_SELF:
        it->action = A_NONE;
        ck_assert_int_eq(reactor_etimer_start(r, t, 0, 0), 0);
        break;
    case A_FREE_SELF:
        free(it);
        break;
    case A_STOP_FREE_OTHER:
        ck_assert_int_eq(reactor_etimer_stop(r, &it->other->t), 0);
        free(it->other);
        it->other = NULL;
        break;
    case A_AGAIN_OTHER:
        ck_assert_int_eq(reactor_etimer_again(r, &it->other->t), 0);
        break;
    }
}

static void item_init(item *it, elog *l, int id)
{
    *it = (item){.log = l, .id = id};
    reactor_etimer_init(&it->t, fire);
}

static reactor *fake(int i)
{
    reactor *r = th_reactor(i);
    ck_assert_int_eq(reactor_use_fake_clock(r, 0), 0);
    return r;
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Time order, and start order among equal deadlines, shared with calls made through the
 * handle API (one heap): embedded and call_later calls due at 2 run as scheduled. */
static void call_fn(reactor *r, void *data)
{
    fire(r, &((item *)data)->t);
}

START_TEST(test_etimer_order)
{
    reactor *r = fake(_i);
    elog l = {0};
    enum { N = 40 };
    item it[N];
    for (int k = 0; k < N; k++) {
        item_init(&it[k], &l, k);
        double after = k % 3 == 0 ? 2 : 1 + (double)(N - k) / 100; /* 2, or 1.01..1.39 */
        if (k % 5 == 4)
            ck_assert_ptr_nonnull(reactor_call_later(r, after, call_fn, &it[k]));
        else
            ck_assert_int_eq(reactor_etimer_start(r, &it[k].t, after, 0), 0);
    }
    ck_assert_int_eq(reactor_advance(r, 5), 0);
    ck_assert_int_eq(l.n, N);
    int seen2 = -1;
    for (int i = 0; i < N; i++) {
        if (i > 0)
            ck_assert(l.at[i] >= l.at[i - 1]);
        int k = l.id[i];
        if (k % 3 == 0) { /* the ones at 2: in the order scheduled */
            ck_assert_int_gt(k, seen2);
            seen2 = k;
        }
    }
    for (int k = 0; k < N; k++)
        ck_assert(!reactor_etimer_active(&it[k].t));
    reactor_free(r);
}
END_TEST

/* Never early (fake clock): not one ns before its deadline; the poll timeout is the real
 * deadline after lazy moves later (again) and a move sooner (start). */
START_TEST(test_etimer_never_early_exact_timeout)
{
    reactor *r = fake(_i);
    elog l = {0};
    item a;
    item_init(&a, &l, 1);
    ck_assert_int_eq(reactor_etimer_start(r, &a.t, 2.5, 3), 0);
    ck_assert(reactor_etimer_active(&a.t));
    ck_assert(reactor_etimer_time(&a.t) == 2.5);
    ck_assert_int_eq(reactor__timer_timeout_ms(r), 2500);
    ck_assert_int_eq(reactor_advance(r, 1), 0);
    ck_assert_int_eq(reactor_etimer_again(r, &a.t), 0); /* now 1: due at 4 (lazy) */
    ck_assert(reactor_etimer_time(&a.t) == 4.0);
    ck_assert(r->heap[0].when == 4000000000); /* the root is at its real deadline */
    ck_assert_int_eq(reactor__timer_timeout_ms(r), 3000);
    ck_assert_int_eq(reactor_advance(r, 2.999999999), 0);
    ck_assert_int_eq(l.n, 0);
    ck_assert_int_eq(reactor_advance(r, 1e-9), 0);
    ck_assert_int_eq(l.n, 1);
    ck_assert(l.at[0] == 4.0);
    ck_assert(reactor_etimer_active(&a.t)); /* repeating: next at 7 */
    ck_assert(reactor_etimer_time(&a.t) == 7.0);
    ck_assert_int_eq(reactor_etimer_start(r, &a.t, 0.5, 0), 0); /* sooner, one-shot */
    ck_assert_int_eq(reactor__timer_timeout_ms(r), 500);
    ck_assert_int_eq(reactor_advance(r, 0.5), 0);
    ck_assert_int_eq(l.n, 2);
    ck_assert(l.at[1] == 4.5);
    ck_assert(!reactor_etimer_active(&a.t));
    ck_assert_uint_eq(r->heap_n, 0);
    ck_assert_int_eq(reactor__timer_timeout_ms(r), -1);
    reactor_free(r);
}
END_TEST

/* Many timers pushed back at random by again() (the idle-timeout workload), some stopped:
 * each runs once, at its last again + repeat (never before, and at the first advance
 * that reaches it); the stopped ones never. */
START_TEST(test_etimer_again_many)
{
    reactor *r = fake(_i);
    elog l = {0};
    enum { N = 200 };
    static item it[N];
    double due[N];
    for (int k = 0; k < N; k++) {
        item_init(&it[k], &l, k);
        ck_assert_int_eq(reactor_etimer_start(r, &it[k].t, 10, 10), 0);
        due[k] = 10;
    }
    uint64_t x = 12345;
    for (int step = 1; step <= 50; step++) {
        ck_assert_int_eq(reactor_advance(r, 0.1), 0);
        for (int j = 0; j < 20; j++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            int k = (int)((x >> 33) % N);
            ck_assert_int_eq(reactor_etimer_again(r, &it[k].t), 0);
            due[k] = reactor_now(r) + 10;
            ck_assert(reactor_etimer_time(&it[k].t) > due[k] - 1e-6);
        }
    }
    int stopped = 0;
    for (int k = 0; k < N; k += 7, stopped++) {
        ck_assert_int_eq(reactor_etimer_stop(r, &it[k].t), 0);
        ck_assert_int_eq(reactor_etimer_stop(r, &it[k].t), 0); /* twice: fine */
    }
    ck_assert_uint_eq(r->heap_n, (size_t)(N - stopped));
    for (int step = 0; step < 220; step++) { /* to 16: each at most once (repeat 10) */
        ck_assert_int_eq(reactor_advance(r, 0.05), 0);
        ck_assert(r->heap_n == 0 || r->heap[0].when == r->heap[0].t->when);
    }
    ck_assert_int_eq(l.n, N - stopped);
    for (int i = 0; i < l.n; i++) {
        int k = l.id[i];
        ck_assert_int_ne(k % 7, 0);
        ck_assert(l.at[i] >= due[k] - 1e-6);
        ck_assert(l.at[i] < due[k] + 0.05 + 1e-6);
        if (i > 0)
            ck_assert(l.at[i] >= l.at[i - 1]);
    }
    for (int k = 0; k < N; k++)
        ck_assert_int_eq(reactor_etimer_stop(r, &it[k].t), 0);
    ck_assert_uint_eq(r->heap_n, 0);
    reactor_free(r);
}
END_TEST

/* A repeating timer stopped from inside its own function does not run again; a one-shot
 * timer stopping itself is a no-op (it is not active any more). */
START_TEST(test_etimer_stop_inside_own_callback)
{
    reactor *r = fake(_i);
    elog l = {0};
    item a, b;
    item_init(&a, &l, 1);
    item_init(&b, &l, 2);
    a.action = A_STOP_SELF;
    b.action = A_STOP_SELF;
    ck_assert_int_eq(reactor_etimer_start(r, &a.t, 1, 1), 0);
    ck_assert_int_eq(reactor_etimer_start(r, &b.t, 1, 0), 0);
    ck_assert_int_eq(reactor_advance(r, 10), 0);
    ck_assert_int_eq(l.n, 2);
    ck_assert(!reactor_etimer_active(&a.t) && !reactor_etimer_active(&b.t));
    ck_assert_uint_eq(r->heap_n, 0);
    reactor_free(r);
}
END_TEST

/* Restarted with 0 from inside its function, a timer runs again on the next iteration,
 * after one poll, not in the same pass (real clock, every backend). */
START_TEST(test_etimer_restart_inside_waits_next_iteration)
{
    reactor *r = th_reactor(_i);
    elog l = {0};
    item a;
    item_init(&a, &l, 1);
    a.action = A_RESTART_SELF;
    ck_assert_int_eq(reactor_etimer_start(r, &a.t, 0, 0), 0);
    for (int k = 0; k < 100 && l.n < 2; k++)
        ck_assert_int_eq(reactor_iterate(r, 1), 0);
    ck_assert_int_eq(l.n, 2);
    ck_assert(l.iter[1] > l.iter[0]);
    ck_assert(!reactor_etimer_active(&a.t));
    reactor_free(r);
}
END_TEST

/* Never early on the real clock: the deadline counts from reactor_now(), which inside an
 * iteration is a reading taken before the function runs; the independent clock agrees. */
static double started_now;
static item real_item;
static void start_from_loop(reactor *r, void *data)
{
    (void)data;
    started_now = reactor_now(r);
    ck_assert(started_now <= mono());
    ck_assert_int_eq(reactor_etimer_start(r, &real_item.t, 0.02, 0), 0);
}

START_TEST(test_etimer_real_clock_never_early)
{
    reactor *r = th_reactor(_i);
    elog l = {0};
    item_init(&real_item, &l, 1);
    ck_assert_ptr_nonnull(reactor_call_soon(r, start_from_loop, NULL));
    uint64_t it0 = reactor_iterations(r);
    for (int k = 0; k < 1000 && l.n < 1; k++)
        ck_assert_int_eq(reactor_iterate(r, -1), 0);
    ck_assert_int_eq(l.n, 1);
    ck_assert(l.at[0] >= started_now + 0.02);
    ck_assert(mono() >= started_now + 0.02);
    ck_assert_uint_lt(reactor_iterations(r) - it0, 20); /* it slept: no spin */
    reactor_free(r);
}
END_TEST

/* Free after stop: a stopped timer's memory is the caller's at once, also when it was
 * collected to run in the same pass as the timer that stops it (it then does not run).
 * ASan and valgrind see any later touch. A one-shot timer may free itself. */
START_TEST(test_etimer_free_after_stop)
{
    reactor *r = fake(_i);
    elog l = {0};
    item *killer = malloc(sizeof *killer), *victim = malloc(sizeof *victim);
    item *self = malloc(sizeof *self), *later = malloc(sizeof *later);
    ck_assert(killer && victim && self && later);
    item_init(killer, &l, 1);
    item_init(victim, &l, 2);
    item_init(self, &l, 3);
    item_init(later, &l, 4);
    killer->action = A_STOP_FREE_OTHER;
    killer->other = victim;
    self->action = A_FREE_SELF;
    ck_assert_int_eq(reactor_etimer_start(r, &killer->t, 1, 0), 0);
    ck_assert_int_eq(reactor_etimer_start(r, &victim->t, 1, 0), 0); /* due in the same pass */
    ck_assert_int_eq(reactor_etimer_start(r, &self->t, 1, 0), 0);
    ck_assert_int_eq(reactor_etimer_start(r, &later->t, 5, 0), 0);
    ck_assert_int_eq(reactor_etimer_stop(r, &later->t), 0);
    free(later); /* stopped while in the heap */
    ck_assert_int_eq(reactor_advance(r, 10), 0);
    ck_assert_int_eq(l.n, 2);
    ck_assert_int_eq(l.id[0], 1);
    ck_assert_int_eq(l.id[1], 3);
    ck_assert_uint_eq(r->heap_n, 0);
    free(killer);
    reactor_free(r);
}
END_TEST

/* again() on a timer collected for this pass moves it out of the pass: it waits. */
START_TEST(test_etimer_again_other_due_same_pass)
{
    reactor *r = fake(_i);
    elog l = {0};
    item a, b;
    item_init(&a, &l, 1);
    item_init(&b, &l, 2);
    a.action = A_AGAIN_OTHER;
    a.other = &b;
    ck_assert_int_eq(reactor_etimer_start(r, &a.t, 1, 0), 0);
    ck_assert_int_eq(reactor_etimer_start(r, &b.t, 1, 2), 0);
    ck_assert_int_eq(reactor_advance(r, 1), 0);
    ck_assert_int_eq(l.n, 1); /* b was moved to 3 */
    ck_assert(reactor_etimer_time(&b.t) == 3.0);
    ck_assert_int_eq(reactor_advance(r, 1.999), 0);
    ck_assert_int_eq(l.n, 1);
    ck_assert_int_eq(reactor_advance(r, 0.001), 0);
    ck_assert_int_eq(l.n, 2);
    ck_assert(l.at[1] == 3.0);
    ck_assert_int_eq(reactor_etimer_stop(r, &b.t), 0);
    reactor_free(r);
}
END_TEST

/* Repeating: on the grid (drift-free), missed points skipped after a stall. */
START_TEST(test_etimer_repeat_grid)
{
    reactor *r = fake(_i);
    elog l = {0};
    item a;
    item_init(&a, &l, 1);
    ck_assert_int_eq(reactor_etimer_start(r, &a.t, 0.5, 0.3), 0);
    for (int k = 0; k < 10; k++)
        ck_assert_int_eq(reactor_advance(r, 0.1), 0);
    ck_assert_int_eq(l.n, 2); /* 0.5, 0.8 */
    ck_assert(l.at[0] == 0.5);
    ck_assert(reactor_etimer_time(&a.t) > 1.09 && reactor_etimer_time(&a.t) < 1.11);
    ck_assert_int_eq(reactor_advance(r, 1.0), 0); /* stall to 2.0: 1.1..2.0 -> once */
    ck_assert_int_eq(l.n, 3);
    ck_assert(reactor_etimer_time(&a.t) > 2.29 && reactor_etimer_time(&a.t) < 2.31);
    ck_assert_int_eq(reactor_etimer_stop(r, &a.t), 0);
    reactor_free(r);
}
END_TEST

/* reactor_free() stops what is still active; bad arguments are refused; a timer is
 * refused by a reactor that does not hold it. */
START_TEST(test_etimer_free_reactor_and_bad_args)
{
    reactor *r = fake(_i), *r2 = fake(_i);
    elog l = {0};
    item a, b;
    item_init(&a, &l, 1);
    item_init(&b, &l, 2);
    ck_assert_int_eq(reactor_etimer_start(r, &a.t, -1, 0), -EINVAL);
    ck_assert_int_eq(reactor_etimer_start(r, &a.t, 1, 1e-9), -EINVAL);
    ck_assert_int_eq(reactor_etimer_start(NULL, &a.t, 1, 0), -EINVAL);
    ck_assert_int_eq(reactor_etimer_again(r, &a.t), -EINVAL); /* no repeat */
    ck_assert(!reactor_etimer_active(&a.t));
    ck_assert_int_eq(reactor_etimer_stop(r, &a.t), 0); /* never started: fine */
    ck_assert_int_eq(reactor_etimer_start(r, &a.t, 1, 0), 0);
    ck_assert_int_eq(reactor_etimer_start(r2, &b.t, 1, 0), 0);
    ck_assert_int_eq(reactor_etimer_stop(r2, &a.t), -EINVAL); /* r's, not r2's */
    ck_assert(reactor_etimer_active(&a.t));
    reactor_etimer empty;
    reactor_etimer_init(&empty, NULL);
    ck_assert_int_eq(reactor_etimer_start(r, &empty, 1, 0), -EINVAL); /* no function */
    ck_assert_int_eq(reactor_free(r), 0);
    ck_assert(!reactor_etimer_active(&a.t));
    ck_assert(reactor_etimer_active(&b.t));
    ck_assert_int_eq(reactor_advance(r2, 1), 0);
    ck_assert_int_eq(l.n, 1);
    ck_assert_int_eq(l.id[0], 2);
    reactor_free(r2);
}
END_TEST

/* Random starts, agains, stops and advances against a model of what must run: every
 * timer runs exactly at its deadline, and the timers of one pass in (deadline, order of
 * scheduling) order; a move keeps its place, a start from inactive or a re-arm takes a
 * new one. Catches a heap whose order or slots go wrong. */
typedef struct {
    int active;
    int64_t due, rep; /* ns */
    uint64_t seq;
} model;

static model mdl[300];
static uint64_t mseq;
static int mfired[300 * 8], mnfired;

static void mfire(reactor *r, reactor_etimer *t)
{
    (void)r;
    ck_assert_int_lt(mnfired, 300 * 8);
    mfired[mnfired++] = item_of(t)->id;
}

static int cmp_due(const void *a, const void *b)
{
    const model *x = &mdl[*(const int *)a], *y = &mdl[*(const int *)b];
    if (x->due != y->due)
        return x->due < y->due ? -1 : 1;
    return x->seq < y->seq ? -1 : 1;
}

START_TEST(test_etimer_random_against_model)
{
    reactor *r = fake(_i);
    enum { N = 300 };
    static item it[N];
    elog l = {0};
    int64_t now = 0;
    mseq = 0;
    for (int k = 0; k < N; k++) {
        item_init(&it[k], &l, k);
        reactor_etimer_init(&it[k].t, mfire);
        mdl[k] = (model){0};
    }
    uint64_t x = 987654321;
#define RND(n) ((x = x * 6364136223846793005ULL + 1442695040888963407ULL), (int)((x >> 33) % (n)))
    for (int op = 0; op < 4000; op++) {
        int k = RND(N), what = RND(10);
        model *m = &mdl[k];
        if (what < 4) { /* start: 0..2 s in whole ms (many ties), a third repeating */
            int64_t after = (int64_t)RND(2000) * 1000000, rep = RND(3) == 0 ? 1000000000 : 0;
            ck_assert_int_eq(reactor_etimer_start(r, &it[k].t, (double)after / 1e9,
                                                  (double)rep / 1e9), 0);
            if (!m->active)
                m->seq = mseq++;
            *m = (model){1, now + after, rep, m->seq};
        } else if (what < 6) {
            if (m->rep == 0) {
                ck_assert_int_eq(reactor_etimer_again(r, &it[k].t), -EINVAL);
                continue;
            }
            ck_assert_int_eq(reactor_etimer_again(r, &it[k].t), 0);
            if (!m->active)
                m->seq = mseq++;
            m->active = 1;
            m->due = now + m->rep;
        } else if (what < 8) {
            ck_assert_int_eq(reactor_etimer_stop(r, &it[k].t), 0);
            m->active = 0;
        } else { /* advance 0..300 ms: one pass */
            int64_t step = (int64_t)RND(300) * 1000000;
            now += step;
            int due[N], nd = 0;
            for (int j = 0; j < N; j++)
                if (mdl[j].active && mdl[j].due <= now)
                    due[nd++] = j;
            qsort(due, (size_t)nd, sizeof due[0], cmp_due);
            mnfired = 0;
            ck_assert_int_eq(reactor_advance(r, (double)step / 1e9), 0);
            ck_assert_int_eq(mnfired, nd);
            for (int i = 0; i < nd; i++) {
                model *d = &mdl[due[i]];
                ck_assert_int_eq(mfired[i], due[i]);
                if (d->rep) {
                    while (d->due <= now)
                        d->due += d->rep;
                    d->seq = mseq++;
                } else {
                    d->active = 0;
                }
            }
        }
        for (int j = 0; j < N; j += 37)
            ck_assert_int_eq(reactor_etimer_active(&it[j].t), mdl[j].active);
        ck_assert(r->heap_n == 0 || r->heap[0].when == r->heap[0].t->when);
    }
#undef RND
    reactor_free(r);
    for (int k = 0; k < N; k++)
        ck_assert(!reactor_etimer_active(&it[k].t));
}
END_TEST

extern Suite *suite_reactor_timers_etimer(void);
Suite *suite_reactor_timers_etimer(void)
{
    Suite *s = suite_create("reactor_timers_etimer");
    TCase *tc = tcase_create("etimer");
    int n = th_backend_count();
    tcase_add_loop_test(tc, test_etimer_order, 0, n);
    tcase_add_loop_test(tc, test_etimer_never_early_exact_timeout, 0, n);
    tcase_add_loop_test(tc, test_etimer_again_many, 0, n);
    tcase_add_loop_test(tc, test_etimer_stop_inside_own_callback, 0, n);
    tcase_add_loop_test(tc, test_etimer_restart_inside_waits_next_iteration, 0, n);
    tcase_add_loop_test(tc, test_etimer_real_clock_never_early, 0, n);
    tcase_add_loop_test(tc, test_etimer_free_after_stop, 0, n);
    tcase_add_loop_test(tc, test_etimer_again_other_due_same_pass, 0, n);
    tcase_add_loop_test(tc, test_etimer_repeat_grid, 0, n);
    tcase_add_loop_test(tc, test_etimer_free_reactor_and_bad_args, 0, n);
    tcase_add_loop_test(tc, test_etimer_random_against_model, 0, n);
    suite_add_tcase(s, tc);
    return s;
}
