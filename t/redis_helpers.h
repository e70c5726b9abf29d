/* A real redis-server for the Redis suites: started by the test on a free loopback port,
 * in a temporary directory, without persistence, stopped by its pid. */
#ifndef TWISTC_T_REDIS_HELPERS_H
#define TWISTC_T_REDIS_HELPERS_H

#include <sys/types.h>

struct trs {
    char dir[64];  /* the temporary directory (pid file "pid", log "log") */
    int port;
    int ok;        /* 1 once started */
    char why[160]; /* why it could not start */
};

/* Starts redis-server on 127.0.0.1:port (0: a free port) and waits (bounded, 10 s) until
 * it accepts. Returns 0, or -1 with s->why set (redis-server missing, did not start). */
int trs_start(struct trs *s, int port);
/* The server's pid (from the pid file, so it is right in a forked test too), or -1. */
pid_t trs_pid(const struct trs *s);
/* SIGKILL (hard) and wait until it is gone; trs_start(s, s->port) brings it back. */
void trs_kill(struct trs *s);
/* SIGSTOP / SIGCONT. */
void trs_signal(struct trs *s, int sig);
/* Stops the server (SIGCONT, SIGTERM, wait) and removes the directory. */
void trs_stop(struct trs *s);
/* Prints "SKIP <test>: <why>" once per call when the server is not there; returns 1 then
 * (the test returns at once: skipped with its reason printed, not passed in silence). */
int trs_skip(const struct trs *s, const char *test);

#endif
