/* DeferredList and gather (A20-A22).
 *
 * Shape, chosen so that no reference cycle can form:
 *   - one refcounted state, held by the pair appended to each input (one ref per
 *     slot) and by the list's own Deferred (its canceller argument);
 *   - the state holds a reference on the list's Deferred only while some input can
 *     still fire it (a slot is pending and the list has not fired): the inputs keep
 *     the list alive, as in Twisted, even if the caller dropped it;
 *   - the state knows the inputs only weakly (for cancel): an input's slot is
 *     released when its pair ran or the input was freed, which clears the pointer. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "deferred/deferred_internal.h"

struct dlist;
struct dlist_slot {
    struct dlist *st;
    size_t index;
};

struct dlist {
    unsigned refs;
    unsigned flags;
    int fired;
    size_t pending;    /* slots not released yet */
    deferred *out;     /* the list's Deferred; NULL once it is freed */
    int holds_out;     /* 1 while the state owns a reference on out */
    deferred **inputs; /* weak; inputs[i] NULL once slot i is released */
    size_t n, finished;
    deferred_list_result *res; /* results in input order, NULL once handed out */
    struct dlist_slot slots[];
};

static void dlist_unref(struct dlist *st)
{
    if (--st->refs > 0)
        return;
    if (st->res)
        deferred_list_result_free(st->res);
    free(st->inputs);
    free(st);
}

/* Nobody can fire the list any more (it fired, or every input is gone): stop keeping
 * it alive. */
static void drop_out(struct dlist *st)
{
    if (st->holds_out) {
        st->holds_out = 0;
        deferred_unref(st->out); /* may free out: out_gone clears st->out */
    }
}

static void slot_release(void *arg)
{
    struct dlist_slot *slot = arg;
    struct dlist *st = slot->st;
    st->inputs[slot->index] = NULL;
    if (--st->pending == 0)
        drop_out(st);
    dlist_unref(st);
}

void deferred_list_result_free(void *p)
{
    deferred_list_result *lr = p;
    if (!lr)
        return;
    for (size_t i = 0; i < lr->count; i++)
        deferred_result_clear(&lr->items[i].result);
    free(lr);
}

deferred_list_result *deferred_list_result_of(const deferred_result *r)
{
    if (r && r->kind == DEFERRED_PTR && r->free_fn == deferred_list_result_free)
        return r->u.p;
    return NULL;
}

static deferred_list_result *list_result_new(size_t n)
{
    deferred_list_result *lr = malloc(sizeof *lr + n * sizeof lr->items[0]);
    if (!lr)
        return NULL;
    lr->count = n;
    lr->index = 0;
    for (size_t i = 0; i < n; i++) {
        lr->items[i].ok = 0;
        lr->items[i].result = deferred_none();
    }
    return lr;
}

/* What the list keeps of an input's result, leaving in *r what the input's own chain
 * goes on with: shared when sharing is free, moved when the value owns memory. */
static deferred_result share(deferred_result *r)
{
    switch (r->kind) {
    case DEFERRED_FAILURE:
        return deferred_failure_result(deferred_failure_ref(r->u.failure));
    case DEFERRED_STR:
    case DEFERRED_PTR:
        if (r->free_fn)
            return deferred_result_take(r);
        return *r;
    default:
        return *r;
    }
}

static void fire_out(struct dlist *st, deferred_result r)
{
    st->fired = 1;
    deferred *out = st->out;
    if (!out) {
        deferred_result_clear(&r);
        return;
    }
    deferred_ref(out);
    deferred_callback(out, r);
    drop_out(st);
    deferred_unref(out);
}

static deferred_result on_input(deferred_result r, void *arg)
{
    struct dlist_slot *slot = arg;
    struct dlist *st = slot->st;
    size_t i = slot->index;
    int ok = r.kind != DEFERRED_FAILURE;
    st->finished++;
    if (!st->fired && st->out) {
        if (ok && (st->flags & DEFERRED_LIST_FIRE_ON_ONE_CALLBACK)) {
            deferred_list_result *one = list_result_new(1);
            if (one) {
                one->index = i;
                one->items[0].ok = 1;
                one->items[0].result = share(&r);
                fire_out(st, deferred_ptr(one, deferred_list_result_free));
            } else {
                fire_out(st, deferred_failure_result(deferred_failure_ref(&deferred__enomem_failure)));
            }
        } else if (!ok && (st->flags & DEFERRED_LIST_FIRE_ON_ONE_ERRBACK)) {
            deferred_failure *f =
                deferred_failure_wrap(deferred_failure_ref(r.u.failure), DEFERRED_EFIRST,
                                      "FirstError: input %zu failed: %s", i, r.u.failure->message);
            if (f != &deferred__enomem_failure)
                f->index = (int)i;
            fire_out(st, deferred_failure_result(f));
        } else {
            if (st->res) {
                st->res->items[i].ok = ok;
                st->res->items[i].result = share(&r);
            }
            if (st->finished == st->n && st->res) {
                deferred_list_result *lr = st->res;
                st->res = NULL;
                fire_out(st, deferred_ptr(lr, deferred_list_result_free));
            }
        }
    }
    if (!ok && (st->flags & DEFERRED_LIST_CONSUME_ERRORS)) {
        deferred_result_clear(&r);
        return deferred_none();
    }
    return r;
}

static void cancel_list(deferred *out, void *arg)
{
    struct dlist *st = arg;
    (void)out;
    /* A21: cancel the inputs given at construction that have not delivered yet (the
     * others would ignore it). Cancelling one may fire the list or release slots, so
     * each input is re-read and held across its cancel. */
    st->refs++;
    for (size_t i = 0; i < st->n; i++) {
        deferred *in = st->inputs[i];
        if (!in)
            continue;
        deferred_ref(in);
        deferred_cancel(in);
        deferred_unref(in);
    }
    dlist_unref(st);
}

/* The list's own Deferred is being freed. */
static void out_gone(void *arg)
{
    struct dlist *st = arg;
    st->out = NULL;
    dlist_unref(st);
}

deferred *deferred_list_new_at(deferred *const *ds, size_t n, unsigned flags, const char *file,
                               int line)
{
    if (n > 0 && !ds) {
        errno = EINVAL;
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (!ds[i]) {
            errno = EINVAL;
            return NULL;
        }
    struct dlist *st = malloc(sizeof *st + n * sizeof st->slots[0]);
    deferred *out = deferred_new_at(file, line, NULL, NULL);
    deferred **in = n ? malloc(n * sizeof *in) : NULL;
    deferred_list_result *res = list_result_new(n);
    if (!st || !out || (n && !in) || !res) {
        free(st);
        deferred_unref(out);
        free(in);
        free(res);
        errno = ENOMEM;
        return NULL;
    }
    st->refs = 1; /* the list Deferred's (released by out_gone) */
    st->flags = flags;
    st->fired = 0;
    st->pending = 0;
    st->out = out;
    st->holds_out = 0;
    st->inputs = in;
    st->n = n;
    st->finished = 0;
    st->res = res;
    for (size_t i = 0; i < n; i++)
        in[i] = ds[i];
    deferred_set_canceller(out, cancel_list, st, out_gone);

    if (n == 0) {
        if (!(flags & DEFERRED_LIST_FIRE_ON_ONE_CALLBACK)) {
            st->res = NULL;
            fire_out(st, deferred_ptr(res, deferred_list_result_free));
        }
        return out;
    }
    /* Inputs that already fired run the pair now, and may fire the list before the
     * loop ends (fire-on-one): the remaining inputs still get their pair, as in
     * Twisted. Iterate over the caller's array: st->inputs may be released meanwhile. */
    st->holds_out = 1;
    deferred_ref(out);
    st->pending = n;
    st->refs += n; /* one per slot, released by slot_release */
    for (size_t i = 0; i < n; i++) {
        st->slots[i].st = st;
        st->slots[i].index = i;
    }
    deferred_ref(out); /* ours across the loop */
    for (size_t i = 0; i < n; i++) {
        if (!deferred_add_callbacks_full(ds[i], on_input, on_input, &st->slots[i], slot_release)) {
            /* Out of memory (slot_release already ran): count this input as finished
             * with an ENOMEM failure so that the list still fires. */
            deferred_result lost = on_input(
                deferred_failure_result(deferred_failure_ref(&deferred__enomem_failure)),
                &st->slots[i]);
            deferred_result_clear(&lost);
        }
    }
    deferred_unref(out);
    return out;
}

deferred *deferred_gather_at(deferred *const *ds, size_t n, int consume_errors, const char *file,
                             int line)
{
    return deferred_list_new_at(ds, n,
                                DEFERRED_LIST_FIRE_ON_ONE_ERRBACK |
                                    (consume_errors ? DEFERRED_LIST_CONSUME_ERRORS : 0u),
                                file, line);
}
