/* deferred-basics: the two columns of a Deferred (docs/deferred.md, "The picture").
 *
 * A result travels down the chain; a success goes to the next callback (left column),
 * a failure to the next errback (right column). An errback that returns a success
 * puts the result back on the left.
 *
 *   build/bin/deferred-basics */
#include <errno.h>
#include <stdio.h>

#include <twistc/deferred.h>

static deferred_result basics_double_it(deferred_result r, void *arg)
{
    printf("callback 1: got %lld, doubling\n", (long long)r.u.i);
    r.u.i *= 2;
    return r;
}

static deferred_result basics_refuse_odd(deferred_result r, void *arg)
{
    if (r.u.i % 4 != 0) {
        printf("callback 2: %lld is not a multiple of 4, failing\n", (long long)r.u.i);
        return deferred_error(EDOM, "%lld is not a multiple of 4", (long long)r.u.i);
    }
    printf("callback 2: fine\n");
    return r;
}

static deferred_result basics_skipped(deferred_result r, void *arg)
{
    printf("callback 3: only on the success path\n");
    return r;
}

static deferred_result basics_recover(deferred_result r, void *arg)
{
    printf("errback 4: recovering from \"%s\" (%s)\n", r.u.failure->message,
           deferred_code_name(r.u.failure->code));
    deferred_result_clear(&r); /* we handled it: drop the failure */
    return deferred_int(0);
}

static deferred_result basics_show(deferred_result r, void *arg)
{
    printf("callback 5: final value %lld\n", (long long)r.u.i);
    return r;
}

static void basics_run(long long value)
{
    deferred *d = deferred_new();
    deferred_add_callback(d, basics_double_it, NULL);   /* (double_it,  pass)    */
    deferred_add_callback(d, basics_refuse_odd, NULL);  /* (refuse_odd, pass)    */
    deferred_add_callback(d, basics_skipped, NULL);     /* (skipped,    pass)    */
    deferred_add_errback(d, basics_recover, NULL);      /* (pass,       recover) */
    deferred_add_callback(d, basics_show, NULL);        /* (show,       pass)    */
    printf("-- firing with %lld\n", value);
    deferred_callback(d, deferred_int(value)); /* the whole chain runs here */
    deferred_unref(d);
}

int main(void)
{
    basics_run(2); /* 2 -> 4: left column all the way */
    basics_run(3); /* 3 -> 6: fails at 2, recovers at 4, goes on at 5 */
    return 0;
}
