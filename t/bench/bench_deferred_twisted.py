#!/usr/bin/python3
"""The operations of bench_deferred.c on Twisted's Deferred (Debian's python3-twisted).

Run with /usr/bin/python3; bench_deferred runs it and prints the ratios.
Best of 3 runs each, printed as key=value lines.

    bench_deferred_twisted.py --only cff|chain N
runs N operations untimed, for valgrind --tool=callgrind (the difference between two
N gives instructions per operation).
"""
import sys
import time

from twisted.internet.defer import Deferred

QUICK = "--quick" in sys.argv
N_CFF = 20000 if QUICK else 500000
CHAIN_LEN = 1000  # pairs per Deferred in the chain benchmark
N_CHAIN = 20000 if QUICK else 1000000  # callbacks in total
# One long chain: Twisted pops its callback list from the front (list.pop(0)), so a
# chain of n pairs costs O(n^2); 100 000 already takes seconds (1 000 000: minutes).
N_LONG = 10000 if QUICK else 100000
N_IMPL = 5000 if QUICK else 100000


def keep(r):
    return r


def add_one(r):
    return r + 1


def create_fire_free(n):
    t0 = time.perf_counter()
    for i in range(n):
        d = Deferred()
        d.addCallback(keep)
        d.callback(i)
        del d
    return n / (time.perf_counter() - t0)


def one_chain(length):
    d = Deferred()
    for _ in range(length):
        d.addCallback(add_one)
    d.callback(0)
    assert d.result == length
    del d


def chain(n):
    t0 = time.perf_counter()
    for _ in range(n // CHAIN_LEN):
        one_chain(CHAIN_LEN)
    return n / (time.perf_counter() - t0)


def long_chain(n):
    t0 = time.perf_counter()
    one_chain(n)
    return n / (time.perf_counter() - t0)


def implicit_chain(n):
    t0 = time.perf_counter()
    ds = [Deferred() for _ in range(n)]
    for i in range(n - 1):
        nxt = ds[i + 1]
        ds[i].addCallback(lambda _, nxt=nxt: nxt)
    for i in range(n - 1):
        ds[i].callback(None)
    ds[0].addCallback(keep)
    ds[n - 1].callback(1)
    assert ds[0].result == 1
    del ds
    return n / (time.perf_counter() - t0)


def best(fn, n):
    return max(fn(n) for _ in range(3))


if len(sys.argv) == 4 and sys.argv[1] == "--only":
    {"cff": create_fire_free, "chain": chain}[sys.argv[2]](int(sys.argv[3]))
    sys.exit(0)

print("twisted_create_fire_free_per_s=%.0f" % best(create_fire_free, N_CFF), flush=True)
print("twisted_chain_callbacks_per_s=%.0f" % best(chain, N_CHAIN), flush=True)
print("twisted_implicit_chain_deferreds_per_s=%.0f" % best(implicit_chain, N_IMPL), flush=True)
print("twisted_long_chain_n=%d" % N_LONG, flush=True)
print("twisted_long_chain_callbacks_per_s=%.0f" % long_chain(N_LONG), flush=True)
