#define _GNU_SOURCE /* MAP_ANONYMOUS, MAP_STACK, MAP_NORESERVE */
/* Coroutine stacks: one anonymous mapping per stack, its lowest page PROT_NONE.
 * A small per-thread cache keeps a few stacks of finished coroutines for the next ones:
 * mapping, protecting and unmapping a stack costs three system calls and a page fault,
 * microseconds against the tens of nanoseconds of taking one from the cache.
 *
 * Why mmap and not malloc: the memory is only committed when touched, so a 256 KiB
 * stack whose coroutine uses 6 KiB costs 8 KiB of RAM; and a guard page can only be
 * set on whole pages we own. The guard turns an overflow into a SIGSEGV at the faulting
 * frame instead of silent corruption of the neighbouring heap. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "deferred/coro_switch_internal.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define CORO__HAVE_VALGRIND 1
#endif
#endif

#if defined(TWISTC_ASAN)
#include <sanitizer/asan_interface.h>
#endif

#ifndef MAP_ANONYMOUS
#define MAP_ANONYMOUS MAP_ANON
#endif
#ifndef MAP_STACK
#define MAP_STACK 0
#endif
#ifndef MAP_NORESERVE
#define MAP_NORESERVE 0
#endif

static size_t page_size(void)
{
    static size_t cached;
    size_t p = cached;
    if (p == 0) {
        long v = sysconf(_SC_PAGESIZE);
        p = v > 0 ? (size_t)v : 4096;
        cached = p; /* racy but idempotent: every thread stores the same value */
    }
    return p;
}

int coro__stack_alloc(coro__stack *s, size_t size)
{
    memset(s, 0, sizeof *s);
    size_t pg = page_size();
    if (size == 0)
        size = CORO__DEFAULT_STACK_SIZE;
    if (size < CORO__MIN_STACK_SIZE)
        size = CORO__MIN_STACK_SIZE;
    if (size > SIZE_MAX / 2)
        return -ENOMEM;
    size = (size + pg - 1) & ~(pg - 1);
    size_t total = size + pg;
    void *map = mmap(NULL, total, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
    if (map == MAP_FAILED)
        return -ENOMEM;
    /* Stacks grow down on every platform we switch on: the guard goes at the bottom. */
    if (mprotect(map, pg, PROT_NONE) != 0) {
        int err = errno;
        munmap(map, total);
        return -(err ? err : ENOMEM);
    }
    s->map = map;
    s->map_size = total;
    s->lo = (char *)map + pg;
    s->hi = (char *)map + total;
#if defined(CORO__HAVE_VALGRIND)
    s->vg_id = VALGRIND_STACK_REGISTER(s->lo, s->hi);
#endif
    return 0;
}

void coro__stack_free(coro__stack *s)
{
    if (s->map == NULL)
        return;
#if defined(CORO__HAVE_VALGRIND)
    if (s->vg_id != 0)
        VALGRIND_STACK_DEREGISTER(s->vg_id);
#endif
#if defined(TWISTC_ASAN)
    /* Frames that never returned (a fiber dropped while suspended, or the last frames of
     * a finished one) leave poisoned redzones in the shadow memory; a later mapping at
     * the same address would inherit them and report false overflows. */
    __asan_unpoison_memory_region(s->lo, coro__stack_size(s));
#endif
    munmap(s->map, s->map_size);
    memset(s, 0, sizeof *s);
}

/* ---- the per-thread cache -------------------------------------------------------- */

#define CACHE_SLOTS 8

struct stack_cache {
    coro__stack s[CACHE_SLOTS];
    int n;
    int registered; /* the thread-exit destructor knows about it */
};

static _Thread_local struct stack_cache cache;
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static int cache_key_ok;

static void cache_flush(struct stack_cache *c)
{
    while (c->n > 0)
        coro__stack_free(&c->s[--c->n]);
}

/* Runs at thread exit (pthread key destructors run before the thread's TLS goes). */
static void cache_destructor(void *p)
{
    cache_flush(p);
}

static void cache_key_init(void)
{
    cache_key_ok = pthread_key_create(&cache_key, cache_destructor) == 0;
}

size_t coro__stack_round(size_t size)
{
    size_t pg = page_size();
    size_t want = size == 0 ? CORO__DEFAULT_STACK_SIZE : size;
    if (want < CORO__MIN_STACK_SIZE)
        want = CORO__MIN_STACK_SIZE;
    if (want <= SIZE_MAX / 2)
        want = (want + pg - 1) & ~(pg - 1);
    return want;
}

int coro__stack_get(coro__stack *s, size_t size)
{
    size_t want = coro__stack_round(size);
    struct stack_cache *c = &cache;
    for (int i = c->n - 1; i >= 0; i--)
        if (coro__stack_size(&c->s[i]) == want) {
            *s = c->s[i];
            c->s[i] = c->s[--c->n];
            return 0;
        }
    return coro__stack_alloc(s, size);
}

void coro__stack_put(coro__stack *s)
{
    if (s->map == NULL)
        return;
    struct stack_cache *c = &cache;
    if (!c->registered) {
        pthread_once(&cache_once, cache_key_init);
        if (cache_key_ok && pthread_setspecific(cache_key, c) == 0)
            c->registered = 1;
    }
    if (!c->registered || c->n == CACHE_SLOTS) {
        coro__stack_free(s);
        return;
    }
#if defined(TWISTC_ASAN)
    /* The frames left on it are dead: clear their redzones for the next user. */
    __asan_unpoison_memory_region(s->lo, coro__stack_size(s));
#endif
    c->s[c->n++] = *s;
    memset(s, 0, sizeof *s);
}

void coro__stack_cache_flush(void)
{
    cache_flush(&cache);
}
