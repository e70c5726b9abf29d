#define _GNU_SOURCE /* mkdtemp */
#include "redis_helpers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *find_server(void)
{
    const char *env = getenv("REDIS_SERVER");
    if (env && *env)
        return access(env, X_OK) == 0 ? env : NULL;
    static const char *const cands[] = {"/usr/bin/redis-server", "/usr/local/bin/redis-server",
                                        "/usr/sbin/redis-server"};
    for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++)
        if (access(cands[i], X_OK) == 0)
            return cands[i];
    return NULL;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static int accepts(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

pid_t trs_pid(const struct trs *s)
{
    char path[96];
    snprintf(path, sizeof path, "%s/pid", s->dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long pid = -1;
    if (fscanf(f, "%ld", &pid) != 1)
        pid = -1;
    fclose(f);
    return (pid_t)pid;
}

int trs_start(struct trs *s, int port)
{
    const char *bin = find_server();
    if (!bin) {
        snprintf(s->why, sizeof s->why,
                 "redis-server not installed (sh tools/deps.sh redis-server)");
        return -1;
    }
    if (!s->dir[0]) {
        snprintf(s->dir, sizeof s->dir, "/tmp/twistc-redis.XXXXXX");
        if (!mkdtemp(s->dir)) {
            snprintf(s->why, sizeof s->why, "mkdtemp: %s", strerror(errno));
            s->dir[0] = '\0';
            return -1;
        }
    }
    if (port == 0)
        port = free_port();
    if (port <= 0) {
        snprintf(s->why, sizeof s->why, "no free port");
        return -1;
    }
    char portstr[16], log[96];
    snprintf(portstr, sizeof portstr, "%d", port);
    snprintf(log, sizeof log, "%s/log", s->dir);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(s->why, sizeof s->why, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        /* Its own session: Check kills a forked test's process group when the test ends,
         * and a server restarted by a test must outlive that test. */
        setsid();
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
        }
        execl(bin, bin, "--port", portstr, "--bind", "127.0.0.1", "--save", "", "--appendonly",
              "no", "--dir", s->dir, "--logfile", log, "--daemonize", "no", (char *)NULL);
        _exit(127);
    }
    char path[96];
    snprintf(path, sizeof path, "%s/pid", s->dir);
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "%ld\n", (long)pid);
        fclose(f);
    }
    for (int i = 0; i < 1000; i++) { /* bounded: 10 s */
        if (accepts(port)) {
            s->port = port;
            s->ok = 1;
            return 0;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid)
            break;
        pause_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    snprintf(s->why, sizeof s->why, "redis-server did not start on port %d (see %s)", port, log);
    return -1;
}

/* A zombie (the server was the Check parent's child, killed from a forked test) holds no
 * socket any more: gone for our purposes. */
static int zombie(pid_t pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] == 'Z';
}

static void wait_gone(pid_t pid)
{
    for (int i = 0; i < 1000; i++) {
        if (zombie(pid))
            return;
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return;
        if (kill(pid, 0) < 0 && errno == ESRCH)
            return; /* not our child (a forked test started it) and gone */
        pause_ms(5);
    }
}

void trs_kill(struct trs *s)
{
    pid_t pid = trs_pid(s);
    if (pid > 0) {
        kill(pid, SIGKILL);
        wait_gone(pid);
    }
    s->ok = 0;
}

void trs_signal(struct trs *s, int sig)
{
    pid_t pid = trs_pid(s);
    if (pid > 0)
        kill(pid, sig);
}

void trs_stop(struct trs *s)
{
    pid_t pid = trs_pid(s);
    if (pid > 0) {
        kill(pid, SIGCONT);
        kill(pid, SIGTERM);
        wait_gone(pid);
    }
    s->ok = 0;
    if (s->dir[0]) {
        char path[128];
        snprintf(path, sizeof path, "%s/pid", s->dir);
        unlink(path);
        snprintf(path, sizeof path, "%s/log", s->dir);
        unlink(path);
        rmdir(s->dir);
        s->dir[0] = '\0';
    }
}

int trs_skip(const struct trs *s, const char *test)
{
    if (s->ok)
        return 0;
    fprintf(stderr, "SKIP %s: %s\n", test, s->why[0] ? s->why : "no redis-server");
    return 1;
}
