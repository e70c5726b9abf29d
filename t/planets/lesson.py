#!/usr/bin/env python3
"""Measures the planets lesson (docs/planets.md) and draws its picture.

    make planets-lesson           (builds, then runs this; needs gnuplot-nox)
    python3 t/planets/lesson.py [--runs N] [--delay S]

Starts planet-server on loopback with --delay S (default 1 s) and runs each way of
fetching its four planets N times (default 5), the ways interleaved run by run so that
the machine's load hits them alike. For each run: the wall-clock time, the CPU time
(user + system) and the peak resident memory of the program (through GNU time).
The median of each goes into the table between the <!-- timing --> markers of
docs/planets.md. The last run of each way writes its --timeline; gnuplot draws those
into docs/planets-timeline.svg. With --tsan-report FILE (make planets-lesson passes the
report `make tsan-planets` wrote) the first race of that report goes between the
<!-- tsan --> markers.
"""
import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

BUILD = os.environ.get("BUILD", "build")
BIN = os.path.join(BUILD, "bin")
DOC = "docs/planets.md"
SVG = "docs/planets-timeline.svg"
PATHS = ["/planet.debian.net/", "/planetzope.org/", "/planet.gnome.org/",
         "/gstreamer.freedesktop.org/planet/"]
SHORT = {"/planet.debian.net/": "debian", "/planetzope.org/": "zope",
         "/planet.gnome.org/": "gnome", "/gstreamer.freedesktop.org/planet/": "gstreamer"}
WAYS = [  # label, argv, timeline name (None: not drawn)
    ("blocking (`planets-blocking`)", ["planets-blocking"], "blocking"),
    ("threads, the slide's (`planets-threads`)", ["planets-threads"], None),
    ("threads, fixed (`planets-threads --fixed`)", ["planets-threads", "--fixed"], "threads-fixed"),
    ("reactor, callbacks (`planets`)", ["planets"], "reactor"),
    ("reactor, coroutines (`planets --coro`)", ["planets", "--coro"], "coroutines"),
]


def measure(argv):
    """Wall clock, CPU seconds and peak RSS (KiB) of one run. The peak RSS comes from GNU
    time: a child forked from this Python would count Python's own memory in its peak
    (Linux keeps the peak across exec), time's is small. The CPU time comes from wait4
    on time (it includes the program it waited for, in microseconds; time's own %U/%S
    have 10 ms steps)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.NamedTemporaryFile("r") as tf:
        t0 = time.monotonic()
        p = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", tf.name] + argv,
                             stdout=out, stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.monotonic() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        rss = int(tf.read().split()[-1])
        out.seek(0)
        text = out.read()
    if p.returncode != 0 or text.count("first article on") != 4:
        raise SystemExit("%s failed:\n%s" % (" ".join(argv), text))
    return wall, ru.ru_utime + ru.ru_stime, rss


def replace_between(text, tag, body):
    pat = re.compile(r"(<!-- %s -->\n).*?(<!-- /%s -->)" % (tag, tag), re.S)
    if not pat.search(text):
        raise SystemExit("%s has no <!-- %s --> ... <!-- /%s --> markers" % (DOC, tag, tag))
    return pat.sub(lambda m: m.group(1) + body + m.group(2), text)


def draw(timeline, svg):
    rows = []  # (y, label, asked, got, printed, way index)
    order = [w[2] for w in WAYS if w[2]]
    spans = [l.split() for l in open(timeline)]
    y = 0
    for wi, way in enumerate(order):
        for prog, worker, url, asked, got, printed in (s for s in spans if s[0] == way):
            path = "/" + url.split("/", 3)[3]
            rows.append((y, "%s: %s (%s)" % (way, SHORT.get(path, path), worker),
                         float(asked), float(got), float(printed), wi))
            y -= 1
        y -= 0.6  # a gap between the ways
    with tempfile.NamedTemporaryFile("w", suffix=".dat", delete=False) as d:
        for r in rows:
            d.write('%g "%s" %f %f %f %d\n' % r)
    end = max(r[4] for r in rows)
    script = """
set terminal svg size 900,520 font "sans,12" background "white"
set output '%s'
set title "Four planets, %s s delay each: who waits when (measured, t/planets/lesson.py)"
set xlabel "seconds since the program started"
set xrange [0:%f]
set yrange [%f:1]
set ytics scale 0 font "sans,10"
set grid xtics
set key bottom right box opaque
set style fill solid 0.8 noborder
set palette maxcolors 4
plot '%s' using (($3+$4)/2):1:(($4-$3)/2):(0.35):($6+1):ytic(2) with boxxyerror lc variable \\
       title "waiting for the page", \\
     '' using 5:1:(0.012):(0.35) with boxxyerror lc rgb "black" title "title printed"
""" % (svg, DELAY, end * 1.08 + 0.05, min(r[0] for r in rows) - 1, d.name)
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    os.unlink(d.name)


def main():
    global DELAY
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--delay", type=float, default=1.0)
    ap.add_argument("--tsan-report")
    a = ap.parse_args()
    DELAY = a.delay
    srv = subprocess.Popen([os.path.join(BIN, "planet-server"), "--port", "0", "--delay",
                            str(a.delay)], stdout=subprocess.PIPE, text=True)
    try:
        base = re.search(r"(http://\S+):(\d+)/", srv.stdout.readline()).group(0).rstrip("/")
        urls = [base + p for p in PATHS]
        res = {w[0]: [] for w in WAYS}
        timeline = tempfile.mktemp(suffix=".timeline")
        for run in range(a.runs):
            for label, argv, tl in WAYS:
                extra = ["--timeline", timeline] if tl and run == a.runs - 1 else []
                res[label].append(measure([os.path.join(BIN, argv[0])] + argv[1:] + extra + urls))
                print("%-45s run %d: %.3f s, CPU %.1f ms, %d KiB" % (
                    label, run + 1, res[label][-1][0], res[label][-1][1] * 1000, res[label][-1][2]))
    finally:
        srv.terminate()
        srv.wait(timeout=5)
    table = ["| way | wall clock | CPU (user + system) | peak memory (RSS) |",
             "|---|---|---|---|"]
    for label, _, _ in WAYS:
        walls, cpus, rss = zip(*res[label])
        table.append("| %s | %.2f s | %.1f ms | %.1f MiB |" % (
            label, statistics.median(walls), statistics.median(cpus) * 1000,
            statistics.median(rss) / 1024))
    cpu = "unknown CPU"
    try:
        cpu = re.search(r"model name\s*:\s*(.*)", open("/proc/cpuinfo").read()).group(1)
    except (OSError, AttributeError):
        pass
    table.append("")
    table.append("Medians of %d interleaved runs, four pages, `planet-server --delay %g` on "
                 "loopback; measured by `make planets-lesson` on %s (%s, %d cores, %s), "
                 "a machine shared with other jobs at the time." % (
                     a.runs, a.delay, time.strftime("%Y-%m-%d"), cpu, os.cpu_count(),
                     platform.system() + " " + platform.release()))
    text = open(DOC).read()
    text = replace_between(text, "timing", "\n".join(table) + "\n")
    if a.tsan_report:
        report = open(a.tsan_report).read()
        first = report.split("==================\n")[1] if "==================\n" in report else report
        first = re.sub(r"\(pid=\d+\)", "(pid=...)", first)
        first = re.sub(r" \(\S+\+0x[0-9a-f]+\)", "", first)  # build-specific addresses
        first = re.sub(r"0x[0-9a-f]{8,}", "0x...", first)
        first = re.sub(r"\(tid=\d+, ", "(", first)
        first = re.sub(r"\.\./\.\./\.\./\.\./src/libsanitizer/\S+", "(libtsan)", first)
        text = replace_between(text, "tsan", "```\n" + first.rstrip() + "\n```\n")
    open(DOC, "w").write(text)
    draw(timeline, SVG)
    os.unlink(timeline)
    print("wrote the table into %s and the picture %s" % (DOC, SVG))


if __name__ == "__main__":
    main()
