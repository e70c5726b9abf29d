#!/usr/bin/env python3
"""Draws the charts of docs/benchmarks.md from the benchmarks' own result files.

    make charts            (or: python3 tools/charts.py)

Each file in docs/results/ is what one benchmark command printed, kept verbatim, after
comment lines (#) that give the command, the date and the conditions. This script reads
the markdown tables in them and has gnuplot (Debian: gnuplot-nox) draw one SVG per chart
into docs/charts/. The charts are never edited by hand: change a results file (by running
its command again) and run this. A results file that is missing is reported and its chart
skipped; a missing gnuplot is an error.
"""
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "docs", "results")
CHARTS = os.path.join(ROOT, "docs", "charts")


def tables(path):
    """The markdown tables of a file, each a list of rows (lists of cell strings);
    the header row first, the |---| line dropped."""
    out, cur = [], None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line.startswith("|"):
                cells = [c.strip() for c in line.strip("|").split("|")]
                if all(set(c) <= set("-: ") for c in cells):
                    continue
                if cur is None:
                    cur = []
                    out.append(cur)
                cur.append(cells)
            else:
                cur = None
    return out


def num(s):
    s = s.replace(",", "").replace("*", "").strip()
    try:
        return float(s)
    except ValueError:
        return None


def quote(s):
    return '"' + s.replace('"', "'") + '"'


def bars(name, title, ylabel, groups, series, rows, logscale=False):
    """A clustered bar chart: one cluster per group, one bar per series.
    rows[g][s] is a number or None (no bar)."""
    data = ["group " + " ".join(quote(s) for s in series)]
    for g, vals in zip(groups, rows):
        data.append(quote(g) + " " + " ".join("NaN" if v is None else repr(v) for v in vals))
    plots = ", ".join(
        "$data using %d:xtic(1) title columnheader(%d)" % (i + 2, i + 2)
        for i in range(len(series)))
    script = "\n".join([
        "set terminal svg size 900,400 font 'sans,10' background rgb 'white'",
        "set output %s" % quote(os.path.join(CHARTS, name + ".svg")),
        "set title %s" % quote(title),
        "set ylabel %s" % quote(ylabel),
        "set style data histogram",
        "set style histogram cluster gap 1",
        "set style fill solid 0.85 border -1",
        "set boxwidth 0.9",
        "set key outside right top",
        "set xtics rotate by -30",
        "set grid ytics",
        "set yrange [%s:*]" % ("1" if logscale else "0"),
        "set logscale y" if logscale else "unset logscale y",
        "$data << EOD", *data, "EOD",
        "plot " + plots, ""])
    subprocess.run(["gnuplot"], input=script.encode(), check=True)
    print("charts: wrote docs/charts/%s.svg" % name)


def notif_instructions():
    """t/bench/callgrind.sh: | server | conns/depth | N1 | N2 | Ir(N1) | Ir(N2) | instructions/request |"""
    path = os.path.join(RESULTS, "notif_callgrind.txt")
    if not os.path.exists(path):
        return print("charts: skipped notif_instructions (no %s)" % path)
    per = {}
    order = []
    for t in tables(path):
        head = t[0]
        if "instructions/request" not in head:
            continue
        for row in t[1:]:
            server, sc, v = row[0], row[1], num(row[-1])
            if server not in order:
                order.append(server)
            per[(server, sc)] = v
    scen = ["1/1", "50/16"]
    bars("notif_instructions",
         "Notification server: user-space instructions per request (callgrind)",
         "instructions per request (log scale)", order,
         ["%s conns/depth" % s for s in scen],
         [[per.get((srv, s)) for s in scen] for srv in order], logscale=True)


def timer_peers():
    """bench_timer_peers: | workload | pending | twistc | libev | libuv | ... | twistc / libev |"""
    path = os.path.join(RESULTS, "timer_peers.txt")
    if not os.path.exists(path):
        return print("charts: skipped timer_peers (no %s)" % path)
    for t in tables(path):
        head = t[0]
        if head[:2] != ["workload", "pending"]:
            continue
        peers = [h for h in head[2:] if "/" not in h]
        groups = ["%s %s" % (r[0], r[1]) for r in t[1:]]
        rows = [[num(r[2 + i]) for i in range(len(peers))] for r in t[1:]]
        # Twisted's figures for the same workloads (t/bench/bench_timer_twisted.py).
        tw = os.path.join(RESULTS, "timer_twisted.txt")
        if os.path.exists(tw):
            vals = {}
            for tt in tables(tw):
                if tt[0][:2] == ["workload", "pending"]:
                    for r in tt[1:]:
                        vals["%s %s" % (r[0], r[1])] = num(r[2])
            peers = peers + ["Twisted"]
            rows = [row + [vals.get(g)] for g, row in zip(groups, rows)]
        bars("timer_peers", "Timers: CPU ns per operation (median of the runs)",
             "ns per operation (log scale)", groups, peers, rows, logscale=True)
        return


def timer_memory():
    """bench_timer_peers' second table: | memory | pending | twistc | ... | libev | ..."""
    path = os.path.join(RESULTS, "timer_peers.txt")
    if not os.path.exists(path):
        return print("charts: skipped timer_memory (no %s)" % path)
    for t in tables(path):
        head = t[0]
        if head[:2] != ["memory", "pending"]:
            continue
        peers = head[2:]
        groups = ["%s pending" % r[1] for r in t[1:]]
        rows = [[num(r[2 + i]) for i in range(len(peers))] for r in t[1:]]
        bars("timer_memory", "Timers: bytes per pending 30 s timer (heap growth / N + per-timer storage)",
             "bytes per pending timer", groups, peers, rows)
        return


def main():
    if not shutil.which("gnuplot"):
        sys.exit("charts: gnuplot not found (Debian: gnuplot-nox; tools/deps.sh gnuplot-nox)")
    os.makedirs(CHARTS, exist_ok=True)
    notif_instructions()
    timer_peers()
    timer_memory()


if __name__ == "__main__":
    main()
