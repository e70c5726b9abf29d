#!/usr/bin/env python3
"""Measures the mail lesson (docs/mail-lesson.md) and draws its picture.

    make mail-lesson           (builds, then runs this; needs gnuplot-nox, python3-aiosmtpd)
    python3 t/planets/mail_lesson.py [--runs N] [--smtp-delay S]

Starts, on loopback, four planet-servers (the talk's four planets are four hosts; each
answers after its own delay, so the pages arrive one by one, far enough apart that one
mail's SMTP exchange ends before the next page comes) and t/smtp_peer.py (Debian's
aiosmtpd) holding each of its replies S seconds (default 0.1 s: one mail, 7 replies,
takes 0.7 s). Then runs `planets --mail-to ... --latency FILE` in the three
--smtp-mode's N times (default 3), interleaved run by run, with REACTOR_SLOW_MS set
(the slow-callback detector, when built). For each run: the wall clock, the pings'
median, 99th percentile and worst answer time, and the detector's lines on stderr.
The medians over the runs go into the table between the <!-- mail-timing --> markers of
docs/mail-lesson.md; the last blocking run's detector lines between the <!-- slowcb -->
markers; gnuplot draws the last run of each mode into docs/mail-lesson-latency.svg.
Every run's line, and every detector line of every run, go to docs/results/mail_lesson.txt
(rewritten each time).
"""
import argparse
import json
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
PY = os.environ.get("INTEROP_PYTHON", "/usr/bin/python3")
DOC = "docs/mail-lesson.md"
SVG = "docs/mail-lesson-latency.svg"
RAW = "docs/results/mail_lesson.txt"  # every run's line and the detector's lines, raw
PATHS = ["/planet.debian.net/", "/planetzope.org/", "/planet.gnome.org/",
         "/gstreamer.freedesktop.org/planet/"]
MODES = ["blocking", "thread", "async"]
LABELS = {"blocking": "blocking (the slide: SMTP inside the callback)",
          "thread": "thread (defer_to_thread)", "async": "async (smtp_send)"}


def start(argv, pattern):
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    m = re.search(pattern, p.stdout.readline())
    if not m:
        raise SystemExit("%s did not start" % argv[0])
    return p, m.group(1)


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def replace_between(text, tag, body):
    pat = re.compile(r"(<!-- %s -->\n).*?(<!-- /%s -->)" % (tag, tag), re.S)
    if not pat.search(text):
        raise SystemExit("%s has no <!-- %s --> ... <!-- /%s --> markers" % (DOC, tag, tag))
    return pat.sub(lambda m: m.group(1) + body + m.group(2), text)


def read_latency(path):
    pings, mails = [], []
    for line in open(path):
        f = line.split()
        if f[0] == "ping":
            pings.append((float(f[2]), float(f[3])))
        elif f[0] == "mail":
            mails.append((float(f[3]), float(f[4])))
    return pings, mails


def draw(files, svg, smtp_delay):
    """One picture, three panels on one time axis: each mode's pings (one bar per ping,
    from when it was sent to when its answer came, as high as that wait), its SMTP
    exchanges shaded."""
    colors = {"blocking": "#d62728", "thread": "#1f77b4", "async": "#2ca02c"}
    data = {m: read_latency(files[m]) for m in MODES}
    end = max(t for pings, _ in data.values() for t, _ in pings) + 0.1
    top = max(ms for pings, _ in data.values() for _, ms in pings)
    top = max(100.0, (int(top * 1.3 / 100) + 1) * 100)  # room for the labels above the bars
    tmp, parts = [], []
    h = 0.85 / len(MODES)
    for k, mode in enumerate(MODES):
        pings, mails = data[mode]
        with tempfile.NamedTemporaryFile("w", suffix=".dat", delete=False) as d:
            for t, ms in pings:
                d.write("%f %f\n" % (t, ms))
        tmp.append(d.name)
        worst = max(ms for _, ms in pings)
        objs = "\n".join("set object %d rect from %f, graph 0 to %f, graph 1 fc rgb '#eeeeee' "
                         "fs solid 1.0 noborder behind" % (i + 1, s0, e) for i, (s0, e) in enumerate(mails))
        last = k == len(MODES) - 1
        parts.append("""
unset object
%s
set origin 0, %f
set size 1, %f
set label 1 "%s: worst answer %.0f ms, median %.2f ms" at graph 0.01, graph 0.9 left front
%s
plot '%s' using ($1+$2/2000):($2/2):($1):($1+$2/1000):(0):($2) with boxxyerror fs solid 0.7 lc rgb '%s' notitle
""" % (objs, 0 if last else 0.07 + (len(MODES) - 1 - k) * h, h + 0.07 if last else h, LABELS[mode], worst,
       statistics.median(ms for _, ms in pings),
       'set xlabel "seconds since planets started (grey: that run\'s SMTP exchanges)"\nset format x "%g"'
       if last else 'unset xlabel\nset format x ""', d.name, colors[mode]))
    script = """
set terminal svg size 900,560 font "sans,12" background "white"
set termoption noenhanced
set style textbox opaque noborder
set output '%s'
set multiplot title "How long another client of the same reactor waits for an answer, a ping every 10 ms\\nwhile planets mails each title (SMTP server: %g s per reply, 7 replies a mail; measured, t/planets/mail_lesson.py)"
set lmargin 10
set xrange [0:%f]
set yrange [0:%f]
set ytics %f
set ylabel "ms"
set grid xtics ytics
%s
unset multiplot
""" % (svg, smtp_delay, end, top, top / 2, "".join(parts))
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    for f in tmp:
        os.unlink(f)


def run_once(mode, urls, smtp, lat, slow_ms):
    env = dict(os.environ, REACTOR_SLOW_MS=str(slow_ms))
    t0 = time.monotonic()
    p = subprocess.run([os.path.join(BIN, "planets"), "--mail-to", mode + "@lesson.test",
                        "--smtp", smtp, "--smtp-mode", mode, "--latency", lat] + urls,
                       capture_output=True, text=True, timeout=120, env=env)
    wall = time.monotonic() - t0
    if p.returncode != 0 or p.stdout.count("mailed the title of") != len(urls):
        raise SystemExit("planets --smtp-mode %s failed:\n%s%s" % (mode, p.stdout, p.stderr))
    pings, _ = read_latency(lat)
    ms = [l for _, l in pings]
    slow = [l for l in p.stderr.splitlines() if l.startswith("slow callback:")]
    return {"wall": wall, "median": statistics.median(ms), "p99": pct(ms, 0.99),
            "max": max(ms), "pings": len(ms), "slow": slow,
            "frozen": sum(l for l in ms if l > 10) / 1000}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--smtp-delay", type=float, default=0.1)
    a = ap.parse_args()
    exchange = 7 * a.smtp_delay
    # Page i arrives at 0.5 + i * (exchange + 0.5) s: one exchange fits between two pages.
    planet_delays = [0.5 + i * (exchange + 0.5) for i in range(len(PATHS))]
    slow_ms = 100  # asyncio debug mode's default (slow_callback_duration = 0.1 s)
    load_before = open("/proc/loadavg").read().split()[:3]
    procs = []
    tmp = tempfile.mkdtemp()
    res = {m: [] for m in MODES}
    raw = ["# make mail-lesson (t/planets/mail_lesson.py --runs %d --smtp-delay %g), %s UTC" % (
        a.runs, a.smtp_delay, time.strftime("%Y-%m-%d %H:%M", time.gmtime()))]
    files = {}
    try:
        urls = []
        for path, delay in zip(PATHS, planet_delays):
            p, base = start([os.path.join(BIN, "planet-server"), "--port", "0", "--delay",
                             "%g" % delay], r"listening on (http://\S+?)/?$")
            procs.append(p)
            urls.append(base + path)
        p, port = start([PY, "t/smtp_peer.py", "--delay", "%g" % a.smtp_delay, "--out",
                         os.path.join(tmp, "mails.jsonl")], r"PORT (\d+)")
        procs.append(p)
        smtp = "127.0.0.1:" + port
        for run in range(a.runs):
            for mode in MODES:
                lat = os.path.join(tmp, "%s-%d.latency" % (mode, run))
                r = run_once(mode, urls, smtp, lat, slow_ms)
                res[mode].append(r)
                files[mode] = lat
                line = ("%-9s run %d: %.2f s, %d pings, median %.2f ms, p99 %.1f ms, max %.1f ms, "
                        "%.2f s in answers over 10 ms, %d slow-callback lines" % (
                            mode, run + 1, r["wall"], r["pings"], r["median"], r["p99"], r["max"],
                            r["frozen"], len(r["slow"])))
                print(line)
                raw.append(line)
                raw.extend("    " + l for l in r["slow"])
        mails = [json.loads(l) for l in open(os.path.join(tmp, "mails.jsonl"))]
        if len(mails) != a.runs * len(MODES) * len(PATHS):
            raise SystemExit("the sink got %d mails, expected %d" % (
                len(mails), a.runs * len(MODES) * len(PATHS)))
        load_after = open("/proc/loadavg").read().split()[:3]
        draw(files, SVG, a.smtp_delay)
    finally:
        for p in procs:
            p.stdin.close()
            p.terminate()
            p.wait(timeout=5)
    med = lambda mode, k: statistics.median(r[k] for r in res[mode])
    table = ["| --smtp-mode | wall clock | ping answer: median | 99th percentile | worst | "
             "time spent in answers over 10 ms | slow-callback reports |",
             "|---|---|---|---|---|---|---|"]
    for mode in MODES:
        table.append("| `%s` | %.2f s | %.2f ms | %.1f ms | %.1f ms | %.2f s | %g |" % (
            mode, med(mode, "wall"), med(mode, "median"), med(mode, "p99"), med(mode, "max"),
            med(mode, "frozen"), statistics.median(len(r["slow"]) for r in res[mode])))
    cpu = "unknown CPU"
    try:
        cpu = re.search(r"model name\s*:\s*(.*)", open("/proc/cpuinfo").read()).group(1)
    except (OSError, AttributeError):
        pass
    table.append("")
    table.append(
        "Medians of %d interleaved runs of each mode; four pages from four planet-servers "
        "answering after %s s, one mail each through t/smtp_peer.py `--delay %g` (7 replies: "
        "%.1f s an exchange), a ping every 10 ms, `REACTOR_SLOW_MS=%d`. Measured by "
        "`make mail-lesson` on %s (%s, %d cores, %s); load average %s before and %s after, "
        "a machine shared with other jobs." % (
            a.runs, ", ".join("%g" % d for d in planet_delays), a.smtp_delay, exchange, slow_ms,
            time.strftime("%Y-%m-%d"), cpu, os.cpu_count(),
            platform.system() + " " + platform.release(), " ".join(load_before),
            " ".join(load_after)))
    text = open(DOC).read()
    text = replace_between(text, "mail-timing", "\n".join(table) + "\n")
    slow = res["blocking"][-1]["slow"]
    report = "\n".join(re.sub(r"\(fd \d+\)", "(fd N)", l) for l in slow) if slow else \
        "(no report: this build has no slow-callback detector)"
    text = replace_between(text, "slowcb", "```\n$ REACTOR_SLOW_MS=%d build/bin/planets --smtp-mode "
                           "blocking ...\n%s\n```\n" % (slow_ms, report))
    open(DOC, "w").write(text)
    raw.append("# load average %s before, %s after; %s, %d cores" % (
        " ".join(load_before), " ".join(load_after), cpu, os.cpu_count()))
    open(RAW, "w").write("\n".join(raw) + "\n")
    print("wrote the table and the detector's report into %s, the picture %s, the runs %s" % (
        DOC, SVG, RAW))


if __name__ == "__main__":
    main()
