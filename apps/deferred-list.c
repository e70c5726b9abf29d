/* deferred-list: waiting for several Deferreds (docs/deferred.md, "Many at once").
 *
 *   build/bin/deferred-list */
#include <errno.h>
#include <stdio.h>

#include <twistc/deferred.h>

static deferred_result list_show(deferred_result r, void *title)
{
    deferred_list_result *lr = deferred_list_result_of(&r);
    printf("%s:\n", (const char *)title);
    for (size_t i = 0; i < lr->count; i++) {
        const deferred_list_item *it = &lr->items[i];
        if (it->ok)
            printf("  [%zu] ok   %lld\n", i, (long long)it->result.u.i);
        else
            printf("  [%zu] fail %s\n", i, it->result.u.failure->message);
    }
    return r;
}

static deferred_result list_first_error(deferred_result r, void *arg)
{
    const deferred_failure *f = r.u.failure;
    printf("gather failed: input %d: %s\n", f->index, f->cause->message);
    deferred_result_clear(&r);
    return deferred_none();
}

int main(void)
{
    deferred *ds[3] = {deferred_new(), deferred_new(), deferred_new()};

    /* The values only, or the first failure (FirstError). */
    deferred *values = deferred_gather(ds, 3, 0);
    deferred_add_callbacks(values, list_show, list_first_error, "gather");

    /* All results, in input order, whatever happens. CONSUME_ERRORS: each input's
     * failure is replaced by NONE in that input's own chain (after this pair), so it
     * is the list's business now and never reported as unhandled. */
    deferred *all = deferred_list_new(ds, 3, DEFERRED_LIST_CONSUME_ERRORS);
    deferred_add_callback(all, list_show, "DeferredList");

    deferred_callback(ds[2], deferred_int(30)); /* any order */
    deferred_callback(ds[0], deferred_int(10));
    deferred_errback_new(ds[1], ECONNREFUSED, "server 2 refused the connection");

    for (int i = 0; i < 3; i++)
        deferred_unref(ds[i]);
    deferred_unref(all);
    deferred_unref(values);
    return 0;
}
