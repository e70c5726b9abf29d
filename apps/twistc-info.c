/* twistc-info: what this build of twistc offers.
 *   twistc-info             version and backends, human-readable
 *   twistc-info --backends  the usable backends, one per line, best first (for scripts) */
#include <twistc/reactor.h>

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    const char *const *b = reactor_backends();
    if (argc > 1 && strcmp(argv[1], "--backends") == 0) {
        for (; *b; b++)
            puts(*b);
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "usage: %s [--backends]\n", argv[0]);
        return 2;
    }
    printf("twistc %s (headers %s)\nbackends:", twistc_version_string(), TWISTC_VERSION_STRING);
    for (; *b; b++)
        printf(" %s", *b);
    printf("\n");
    return 0;
}
