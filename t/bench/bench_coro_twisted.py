#!/usr/bin/python3
"""Twisted's inlineCallbacks, timed the same way as t/bench/bench_coro.c:

  await_rt_ns     a generator yields an unfired Deferred (suspend); the caller fires it
                  (resume), up to the next yield: new Deferred + suspend + fire + resume
  await_fired_ns  yield of an already-fired Deferred (succeed(1))
  start_finish_ns calling an @inlineCallbacks function that returns at once
  thread_call_ns  deferToThread of a trivial function, 20000 in flight, reactor running

Run with Debian's python3-twisted:  /usr/bin/python3 t/bench/bench_coro_twisted.py
Prints one "name ns" line per measurement (best of 5 runs).
  --only await|fired|start N   one run of N operations only (for callgrind: run it with
                               N and 2N and divide the difference by N)
"""
import time

from twisted.internet.defer import Deferred, inlineCallbacks, succeed

pending = [None]


@inlineCallbacks
def await_body(n):
    total = 0
    for _ in range(n):
        d = Deferred()
        pending[0] = d
        total += yield d
    pending[0] = None
    return total


def bench_await(n):
    d = await_body(n)
    t0 = time.perf_counter()
    for _ in range(n):
        pending[0].callback(1)
    t = time.perf_counter() - t0
    out = []
    d.addCallback(out.append)
    assert out == [n], out
    return t * 1e9 / n


@inlineCallbacks
def fired_body(n):
    total = 0
    for _ in range(n):
        total += yield succeed(1)
    return total


def bench_await_fired(n):
    t0 = time.perf_counter()
    d = fired_body(n)
    t = time.perf_counter() - t0
    out = []
    d.addCallback(out.append)
    assert out == [n], out
    return t * 1e9 / n


@inlineCallbacks
def empty_body():
    return None
    yield  # makes it a generator


def bench_start(n):
    t0 = time.perf_counter()
    for _ in range(n):
        empty_body()
    t = time.perf_counter() - t0
    return t * 1e9 / n


def bench_threads(n):
    from twisted.internet import reactor, threads
    from twisted.internet.defer import gatherResults

    out = []

    def start():
        t0 = time.perf_counter()
        d = gatherResults([threads.deferToThread(lambda: 1) for _ in range(n)])

        def done(values):
            out.append((time.perf_counter() - t0) * 1e9 / n)
            assert len(values) == n
            reactor.stop()

        d.addCallback(done)

    reactor.callWhenRunning(start)
    reactor.run()
    return out[0]


def best(fn, n):
    return min(fn(n) for _ in range(5))


if __name__ == "__main__":
    import sys

    import twisted

    if len(sys.argv) == 4 and sys.argv[1] == "--only":
        fn = {"await": bench_await, "fired": bench_await_fired, "start": bench_start}[sys.argv[2]]
        fn(int(sys.argv[3]))
        sys.exit(0)

    print("twisted", twisted.__version__)
    print("await_rt_ns     %8.1f" % best(bench_await, 100000))
    print("await_fired_ns  %8.1f" % best(bench_await_fired, 100000))
    print("start_finish_ns %8.1f" % best(bench_start, 100000))
    # A reactor runs once: one run only.
    print("thread_call_ns  %8.1f" % bench_threads(20000))
