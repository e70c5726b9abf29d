/* twistc_base: what every module shares: version, export macro, the error convention.
 * Programs include <twistc/twistc.h>, which brings this and every other public header.
 *
 * Error convention (the same in every module, see docs/errors.md):
 *   - A function that can fail returns int: 0 (or a count) on success, a negative errno
 *     value on failure (-EINVAL for a misuse of the API, -ENOMEM, -EMFILE, ...).
 *   - A constructor returns a pointer, or NULL with errno set.
 *   - The library never calls exit() or abort() on a caller's mistake, and never prints
 *     unless a trace or a reporting hook was asked for.
 *   - twistc_strerror(err) names any such code (it accepts err or -err).
 */
#ifndef TWISTC_TWISTC_BASE_H
#define TWISTC_TWISTC_BASE_H

#define TWISTC_VERSION_MAJOR 0
#define TWISTC_VERSION_MINOR 1
#define TWISTC_VERSION_PATCH 0
#define TWISTC_VERSION_HEX \
    ((TWISTC_VERSION_MAJOR << 16) | (TWISTC_VERSION_MINOR << 8) | TWISTC_VERSION_PATCH)
#define TWISTC_VERSION_STRING "0.1.0"

/* Marks the library's public functions; everything else is hidden in libtwistc.so. */
#if defined(__GNUC__) || defined(__clang__)
#define TWISTC_API __attribute__((visibility("default")))
#else
#define TWISTC_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Version of the library actually linked (the macros above give the headers' version). */
TWISTC_API unsigned twistc_version(void);
TWISTC_API const char *twistc_version_string(void);

/* A message for a twistc error code; err may be negative (as returned) or positive. */
TWISTC_API const char *twistc_strerror(int err);

#ifdef __cplusplus
}
#endif
#endif
