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

#include <uthash.h>

#endif
