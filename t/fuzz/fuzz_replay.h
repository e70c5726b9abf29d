/* The replay half of every fuzz target's main() when it is built without libFuzzer:
 * `fuzz_TARGET FILE...` runs each file (at most 1 MiB of it) through
 * LLVMFuzzerTestOneInput, as libFuzzer would replay a crash. Returns the exit status
 * (0, or 1 for a file that cannot be opened), or -1 when the arguments ask for
 * something else (none, or "--random N"): the target then runs its own generator. */
#ifndef TWISTC_FUZZ_REPLAY_H
#define TWISTC_FUZZ_REPLAY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fuzz_replay_files(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--random") == 0)
        return -1;
    static uint8_t buf[1 << 20];
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            perror(argv[i]);
            return 1;
        }
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        LLVMFuzzerTestOneInput(buf, n);
    }
    return 0;
}

#endif
