/* Version and error strings shared by every module. */
#include <twistc/twistc_base.h>

#include <string.h>

unsigned twistc_version(void) { return TWISTC_VERSION_HEX; }

const char *twistc_version_string(void) { return TWISTC_VERSION_STRING; }

const char *twistc_strerror(int err)
{
    if (err < 0)
        err = -err;
    /* strerror() is enough: every twistc error is an errno value. */
    return strerror(err);
}
