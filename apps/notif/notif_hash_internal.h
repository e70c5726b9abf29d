/* uthash, wrapped for the notification pair (docs/conventions: one internal header so
 * every translation unit sees the same settings).
 *
 * uthash's default reaction to out-of-memory is exit(-1); a library must never exit on
 * its caller's behalf. With HASH_NONFATAL_OOM the add is abandoned instead and
 * uthash_nonfatal_oom(obj) runs: we record it in notif__hash_oom so the caller, which
 * checks right after each HASH_ADD, can refuse that one connection / command cleanly. */
#ifndef TWISTC_NOTIF_HASH_INTERNAL_H
#define TWISTC_NOTIF_HASH_INTERNAL_H

extern _Thread_local int notif__hash_oom; /* set by a failed add; reset by the caller before adding */

#define HASH_NONFATAL_OOM 1
#define uthash_nonfatal_oom(obj) (notif__hash_oom = 1)
/* Never reached with HASH_NONFATAL_OOM, but make sure exit() can never be compiled in. */
#define uthash_fatal(msg) (notif__hash_oom = 1)

#include <stdint.h>
#include <string.h>

/* Key comparison, after uthash has matched hash and length. Keys here are short (the
 * commands: 4 to 11 bytes; ids: 8): two overlapping word loads instead of a call to
 * memcmp, which was a fifth of the server's own cost per request. */
static inline int notif__keycmp(const void *a, const void *b, size_t n)
{
    const char *x = a, *y = b;
    if (n >= 8 && n <= 16) {
        uint64_t p, q, r, s;
        memcpy(&p, x, 8), memcpy(&q, y, 8), memcpy(&r, x + n - 8, 8), memcpy(&s, y + n - 8, 8);
        return (p != q) | (r != s);
    }
    if (n >= 4 && n < 8) {
        uint32_t p, q, r, s;
        memcpy(&p, x, 4), memcpy(&q, y, 4), memcpy(&r, x + n - 4, 4), memcpy(&s, y + n - 4, 4);
        return (p != q) | (r != s);
    }
    return memcmp(x, y, n) != 0;
}
#define HASH_KEYCMP(a, b, n) notif__keycmp((a), (b), (size_t)(n))

#include <uthash.h>

#endif
