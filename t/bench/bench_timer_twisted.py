#!/usr/bin/python3
"""Twisted's figures for the workloads of bench_timer_peers.c (issue 15), for readers who
come from Twisted: reactor.callLater, DelayedCall.reset, DelayedCall.cancel.

    /usr/bin/python3 t/bench/bench_timer_twisted.py [--runs R] [--sizes N,N,...]

Same workloads as the C program (see its header): hold (N pending, each fire schedules
one more at a random delay in [0, N * 100 ns), on the running reactor), reset (N pending
calls, a random one reset to the same timeout from now, one reactor iteration every 256
resets; the timeout is 3600 s here, not 30 s: creating 1M calls can take longer than
30 s), cancel (N pending at random deadlines in [100 s, 200 s), cancelled in random
order). A quarter as many hold and reset operations as the C program (Twisted is slow).
CPU time per operation (time.process_time), median of the runs; the interpreter is
included, as it is in every Twisted program.
"""
import random
import statistics
import sys
import time

from twisted.internet import reactor

RESET_SECONDS = 3600.0  # 30 s in the C program; longer here: creating 1M calls takes a while
ITER_EVERY = 256


def never():
    pass


def hold(n, goal):
    rng = random.Random(1)
    window = 100e-9 * n
    state = {"fired": 0}

    def fire():
        state["fired"] += 1
        if state["fired"] >= goal:
            if state["fired"] == goal:
                reactor.crash()
            return
        reactor.callLater(rng.random() * window, fire)

    calls = [reactor.callLater(rng.random() * window, fire) for _ in range(n)]
    del calls
    c0 = time.process_time()
    reactor.run(installSignalHandlers=False)
    c1 = time.process_time()
    for c in reactor.getDelayedCalls():
        c.cancel()
    reactor.runUntilCurrent()
    return (c1 - c0) * 1e9 / state["fired"]


def reset(n, ops):
    rng = random.Random(2)
    calls = [reactor.callLater(RESET_SECONDS, never) for _ in range(n)]
    order = [rng.randrange(n) for _ in range(ops)]
    c0 = time.process_time()
    for k, i in enumerate(order):
        calls[i].reset(RESET_SECONDS)
        if k % ITER_EVERY == ITER_EVERY - 1:
            reactor.iterate(0)
    c1 = time.process_time()
    for c in calls:
        c.cancel()
    reactor.runUntilCurrent()
    return (c1 - c0) * 1e9 / ops


def cancel(n):
    rng = random.Random(3)
    calls = [reactor.callLater(100.0 + 100.0 * rng.random(), never) for _ in range(n)]
    rng.shuffle(calls)
    c0 = time.process_time()
    for c in calls:
        c.cancel()
    c1 = time.process_time()
    reactor.runUntilCurrent()
    return (c1 - c0) * 1e9 / n


def main(argv):
    runs, sizes = 3, [10000, 100000, 1000000]
    i = 1
    while i < len(argv):
        if argv[i] == "--runs":
            runs = int(argv[i + 1])
            i += 2
        elif argv[i] == "--sizes":
            sizes = [int(x) for x in argv[i + 1].split(",")]
            i += 2
        else:
            sys.exit(__doc__)
    res = {}
    for run in range(runs):
        for n in sizes:
            for w in ("hold", "reset", "cancel"):
                if w == "hold":
                    v = hold(n, max(n, 1000000) // 4)  # a quarter: Twisted is slow
                elif w == "reset":
                    v = reset(n, max(n, 1000000) // 4)
                else:
                    v = cancel(n)
                res.setdefault((w, n), []).append(v)
                print("run %d %-6s %8d Twisted %10.1f ns/op" % (run + 1, w, n, v),
                      file=sys.stderr, flush=True)
    import twisted
    print("CPU ns per operation, median of %d runs (Twisted %s, %s, %s)\n"
          % (runs, twisted.__version__, reactor.__class__.__name__, sys.version.split()[0]))
    print("| workload | pending | Twisted |")
    print("|---|---:|---:|")
    for w in ("hold", "reset", "cancel"):
        for n in sizes:
            print("| %s | %d | %.1f |" % (w, n, statistics.median(res[(w, n)])))


if __name__ == "__main__":
    main(sys.argv)
