/* Independent peers for the tests: a program (python3 http.server, Twisted, ...) started
 * by the test on loopback, which prints "PORT n [m]" on its first line and exits when
 * its stdin closes. Start one per suite (an unchecked fixture), stop it at teardown. */
#ifndef TWISTC_T_PEER_HELPERS_H
#define TWISTC_T_PEER_HELPERS_H

#include <sys/types.h>

#include <twistc/deferred.h>

struct peer {
    pid_t pid;
    int port, port2; /* the numbers of its "PORT" line (0 if absent) */
    int in_fd;       /* its stdin: closing it tells the peer to exit */
    char skip[200];  /* why it could not start (the test reports itself skipped) */
};

/* Runs argv (argv[0] looked up in PATH unless it has a slash), waits up to 20 s for
 * its "PORT" line. Returns 0, or -1 with p->skip saying why (exit status 77 or a
 * missing program: "not installed"). */
int peer_start(struct peer *p, const char *const argv[]);
/* Closes its stdin, kills it (SIGKILL) unless it already exited, reaps it. */
void peer_stop(struct peer *p);

/* A test that needs peer p: skipped, saying so, when it could not start. */
#define PEER_NEED(p)                                                         \
    do {                                                                     \
        if (!(p).port) {                                                     \
            fprintf(stderr, "%s: skipped: %s\n", __func__, (p).skip);        \
            return;                                                          \
        }                                                                    \
    } while (0)

/* The outcome of a request to a peer: done once its Deferred fired; r is its result
 * (the test's: deferred_result_clear it). */
struct peer_res {
    int done;
    deferred_result r;
};
/* Zeroes s, catches d's result into it, drops the caller's reference on d (not NULL). */
void peer_watch(deferred *d, struct peer_res *s);

#endif
