#!/usr/bin/env python3
"""The mail lesson (docs/mail-lesson.md): planets --mail-to in its three --smtp-mode's
against a slow SMTP server (make check runs this after t/planets/run.py).

Starts planet-server (no delay) and t/smtp_peer.py (Debian's python3-aiosmtpd, a real
independent SMTP server) holding each of its replies DELAY seconds, on loopback, ephemeral
ports. Runs planets --latency in the three modes at once (they share nothing but the two
servers), each mailing the titles of two planets to its own address while the embedded
notification server is pinged every 10 ms. One mail is an exchange of 7 replies
(greeting, EHLO, MAIL, RCPT, DATA, the final ".", QUIT), so EXCHANGE = 7 x DELAY.
Checks, with generous bounds (the machine may be loaded; these are not benchmarks):
  - every mode prints the titles and "mailed the title of URL to ADDR", exits 0, and
    the sink received one message per planet for that address, From the sender, with
    the planet in the Subject and its title as the body;
  - blocking: the pinging client waited at least 0.8 x EXCHANGE for some answer (the
    loop was frozen for a whole SMTP exchange); thread and async: no answer took
    0.5 x EXCHANGE or longer (the loop went on serving);
  - with REACTOR_SLOW_MS (when the slow-callback detector is built) blocking mode's
    report names the callback that blocked, and the other two modes report nothing
    that slow;
  - a title starting with "." arrives intact (dot-stuffing), in every mode;
  - planets --coro mails too (the coroutine awaits the mail's Deferred);
  - a refused recipient, a server that is not SMTP and a refused connection each print "cannot mail the title of
    URL: REASON" with the server's or the system's words, the page line still printed,
    exit 1; bad --smtp / --smtp-mode / --mail-to values are refused (exit 2).
Skipped, saying why, when /usr/bin/python3 has no aiosmtpd. BUILD names the build folder.
"""
import json
import os
import re
import subprocess
import sys
import socket
import tempfile
import threading

BUILD = os.environ.get("BUILD", "build")
BIN = os.path.join(BUILD, "bin")
PLANETS = os.path.join(BIN, "planets")
PY = os.environ.get("INTEROP_PYTHON", "/usr/bin/python3")  # Debian's, with aiosmtpd
DELAY = 0.1
EXCHANGE = 7 * DELAY
MODES = ["blocking", "thread", "async"]
PAGES = [  # path, first <h3> title (written out here, independently of the server)
    ("/planet.debian.net/", "Bits from the DPL: December"),
    ("/planet.gnome.org/", "GNOME 49 release party"),
]
SENDER = "notifier@lesson.test"
# PLANETS_WRAPPER="valgrind ..." (make valgrind) runs planets under it; then the timing
# bounds are not asserted (valgrind runs one thread at a time, slowly), everything else is.
WRAPPER = os.environ.get("PLANETS_WRAPPER", "").split()
TIMED = not WRAPPER

failures = 0
procs = []


def check(ok, what, detail=""):
    global failures
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures += 1
        if detail:
            print("     " + str(detail).replace("\n", "\n     "))


def start(argv, pattern):
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    procs.append(p)
    line = p.stdout.readline()
    m = re.search(pattern, line)
    if not m:
        p.wait(timeout=10)
        return p, None
    return p, m.group(1)


def planets(args, env=None):
    """Starts planets; returns the Popen (collect it with finish())."""
    return subprocess.Popen(WRAPPER + [PLANETS] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ, **(env or {})))


def finish(p, timeout=60):
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out.splitlines(), err


def read_latency(path):
    pings, mails = [], []
    for line in open(path):
        f = line.split()
        if f[0] == "ping":
            pings.append((float(f[2]), float(f[3]) / 1000))
        elif f[0] == "mail":
            mails.append((f[2], float(f[3]), float(f[4])))
    return pings, mails


def received(sink):
    if not os.path.exists(sink):
        return []
    return [json.loads(l) for l in open(sink) if l.strip()]


def slow_lines(err):
    return [l for l in err.splitlines() if l.startswith("slow callback:")]


def test_modes(base, smtp, sink, tmp, detector):
    urls = [base + path for path, _ in PAGES]
    runs = {}
    slow_ms = int(EXCHANGE * 1000 / 2)
    for mode in MODES:  # all three at once: the test waits for the slowest only
        lat = os.path.join(tmp, mode + ".latency")
        env = {"REACTOR_SLOW_MS": str(slow_ms)} if detector else None
        runs[mode] = (lat, planets(["--mail-to", mode + "@lesson.test", "--mail-from", SENDER,
                                    "--smtp", smtp, "--smtp-mode", mode, "--latency", lat] + urls,
                                   env))
    mails = received(sink)
    for mode in MODES:
        lat, p = runs[mode]
        rc, out, err = finish(p)
        want = ["first article on %s%s: %s" % (base, path, t) for path, t in PAGES] + \
               ["mailed the title of %s to %s@lesson.test" % (u, mode) for u in urls]
        lines = [l for l in out if not l.startswith("latency (")]
        check(rc == 0 and sorted(lines) == sorted(want),
              "%s: two titles printed and mailed" % mode, "exit %d\n%s\n%s" % (rc, "\n".join(out), err))
        mails = received(sink)
        got = [m for m in mails if m["to"] == [mode + "@lesson.test"]]
        ok = len(got) == len(PAGES)
        for (path, title) in PAGES:
            ok = ok and any(m["from"] == SENDER
                            and "\r\nSubject: first article on %s%s\r\n" % (base, path) in m["data"]
                            and m["data"].endswith("\r\n\r\n%s\r\n" % title) for m in got)
        check(ok, "%s: the sink got one mail per planet, its title as the body" % mode,
              json.dumps(got, indent=1)[:1500])
        if not os.path.exists(lat):
            check(False, "%s: --latency wrote %s" % (mode, lat))
            continue
        pings, spans = read_latency(lat)
        worst = max(l for _, l in pings) if pings else 0
        check(len(pings) >= 10 and len(spans) == len(PAGES),
              "%s: %d pings and %d mail spans in the latency file" % (mode, len(pings), len(spans)))
        # Pings sent while a mail was on its way (the ones that could suffer).
        during = [l for t, l in pings if any(s <= t <= e for _, s, e in spans)]
        if not TIMED:
            print("     %s: max %.0f ms, not checked under %s" % (mode, worst * 1000, WRAPPER[0]))
        elif mode == "blocking":
            check(worst >= 0.8 * EXCHANGE,
                  "blocking: the other client waited %.0f ms for an answer (>= 0.8 x the %.0f ms "
                  "of one SMTP exchange)" % (worst * 1000, EXCHANGE * 1000))
        else:
            check(worst < 0.5 * EXCHANGE and len(during) >= 5,
                  "%s: the other client never waited long: max %.0f ms (< 0.5 x %.0f ms), %d pings "
                  "answered while the mails were on their way" % (
                      mode, worst * 1000, EXCHANGE * 1000, len(during)))
        if detector and TIMED:
            slow = slow_lines(err)
            if mode == "blocking":
                check(any("print_first_title" in l for l in slow),
                      "blocking: REACTOR_SLOW_MS=%d reports the callback: %s" % (
                          slow_ms, slow[0] if slow else "nothing"), err[-2000:])
            else:
                check(slow == [], "%s: REACTOR_SLOW_MS=%d reports nothing" % (mode, slow_ms),
                      "\n".join(slow))


def serve_garbage(lst):
    while True:
        try:
            c, _ = lst.accept()
        except OSError:
            return  # closed: the test is over
        c.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        c.close()


def test_errors(base, smtp, fast_smtp, sink):
    url = base + PAGES[0][0]
    page = "first article on %s: %s" % (url, PAGES[0][1])
    runs = []
    for mode in MODES:  # dot-stuffing: the body's only line starts with "."
        if WRAPPER:  # under valgrind: the failure paths only (the modes ran already)
            runs.append(("refused", mode, planets(["--mail-to", "nobody@lesson.test", "--smtp",
                                                   fast_smtp, "--smtp-mode", mode, url])))
            continue
        runs.append(("dot", mode, planets(["--mail-to", "dot-%s@lesson.test" % mode, "--smtp", fast_smtp,
                                           "--smtp-mode", mode, "--xpath", 'concat(".", //h3)', url])))
        runs.append(("refused", mode, planets(["--mail-to", "nobody@lesson.test", "--smtp", fast_smtp,
                                               "--smtp-mode", mode, url])))
    for mode in MODES if not WRAPPER else []:  # the coroutine version awaits the mail
        runs.append(("coro", mode, planets(["--coro", "--mail-to", "coro-%s@lesson.test" % mode,
                                            "--smtp", fast_smtp, "--smtp-mode", mode, url])))
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    port = dead.getsockname()[1]
    garbage = socket.socket()  # answers every connection with a line that is not SMTP
    garbage.bind(("127.0.0.1", 0))
    garbage.listen(16)
    threading.Thread(target=serve_garbage, args=(garbage,), daemon=True).start()
    for mode in MODES if not WRAPPER else []:
        runs.append(("garbage", mode, planets(["--mail-to", "x@lesson.test", "--smtp", "127.0.0.1:%d"
                                               % garbage.getsockname()[1], "--smtp-mode", mode, url])))
    for mode in MODES if not WRAPPER else []:
        runs.append(("no server", mode, planets(["--mail-to", "x@lesson.test", "--smtp",
                                                 "127.0.0.1:%d" % port, "--smtp-mode", mode, url])))
    for what, mode, p in runs:
        rc, out, err = finish(p)
        if what == "dot":
            got = [m for m in received(sink) if m["to"] == ["dot-%s@lesson.test" % mode]]
            check(rc == 0 and len(got) == 1 and got[0]["data"].endswith("\r\n\r\n.%s\r\n" % PAGES[0][1]),
                  "%s: a body line starting with '.' arrives intact" % mode,
                  "exit %d %s %s %s" % (rc, out, err, got))
        elif what == "coro":
            got = [m for m in received(sink) if m["to"] == ["coro-%s@lesson.test" % mode]]
            check(rc == 0 and out == [page, "mailed the title of %s to coro-%s@lesson.test" % (url, mode)]
                  and len(got) == 1 and got[0]["data"].endswith("\r\n\r\n%s\r\n" % PAGES[0][1]),
                  "%s --coro: the title printed, then mailed" % mode, "exit %d %s %s %s" % (rc, out, err, got))
        elif what == "refused":
            check(rc == 1 and out[:1] == [page] and len(out) == 2 and
                  out[1].startswith("cannot mail the title of %s: " % url) and
                  "RCPT TO <nobody@lesson.test>" in out[1] and "550" in out[1],
                  "%s: a refused recipient: %s" % (mode, out[1] if len(out) > 1 else out),
                  "exit %d %s %s" % (rc, out, err))
        elif what == "garbage":
            check(rc == 1 and out[:1] == [page] and len(out) == 2 and
                  out[1].startswith("cannot mail the title of %s: " % url) and "greeting" in out[1],
                  "%s: a server that is not SMTP: %s" % (mode, out[1] if len(out) > 1 else out),
                  "exit %d %s %s" % (rc, out, err))
        else:
            check(rc == 1 and out[:1] == [page] and len(out) == 2 and
                  out[1].startswith("cannot mail the title of %s: " % url) and "refused" in out[1].lower(),
                  "%s: no SMTP server: %s" % (mode, out[1] if len(out) > 1 else out),
                  "exit %d %s %s" % (rc, out, err))
    dead.close()
    garbage.close()
    if WRAPPER:
        return  # the option checks exit before anything is allocated: not worth valgrind's time
    for bad, why in [(["--smtp-mode", "carrier-pigeon"], "--smtp-mode"),
                     (["--smtp", "127.0.0.1:99999"], "--smtp"),
                     (["--smtp", "::1:25"], "--smtp"),
                     (["--mail-to", "a b@c"], "--mail-to")]:
        rc, out, err = finish(planets(["--mail-to", "x@lesson.test"] + bad + [url]))
        check(rc == 2 and out == [] and why in err, "refused before any fetch: %s" % " ".join(bad),
              "exit %d %s %s" % (rc, out, err))


def main():
    if not os.path.exists(PLANETS):
        print("mail lesson: SKIP (planets is not built)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        sink = os.path.join(tmp, "mails.jsonl")
        try:
            _, base = start([os.path.join(BIN, "planet-server"), "--port", "0", "--delay", "0"],
                            r"listening on (http://127\.0\.0\.1:\d+)/")
            peer = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "smtp_peer.py")
            p, port = start([PY, peer, "--delay", str(DELAY), "--out", sink], r"PORT (\d+)")
            if port is None:
                print("mail lesson: SKIP (%s %s could not start: %s)" % (
                    PY, "t/smtp_peer.py", "aiosmtpd not installed (apt-get install python3-aiosmtpd)"
                    if p.returncode == 77 else "exit %s" % p.returncode))
                return 0
            _, fast = start([PY, peer, "--refuse", "nobody@lesson.test", "--out", sink], r"PORT (\d+)")
            if base is None or fast is None:
                raise SystemExit("mail lesson: a server did not start")
            hdr = os.path.join(BUILD, "include", "twistc", "reactor.h")
            detector = os.path.exists(hdr) and "reactor_set_slow_callback_ms" in open(hdr).read()
            if not detector:
                print("SKIP the slow-callback detector's report: not in this build")
            test_modes(base, "127.0.0.1:" + port, sink, tmp, detector)
            test_errors(base, "127.0.0.1:" + port, "127.0.0.1:" + fast, sink)
        finally:
            for p in procs:
                p.stdin.close()  # the SMTP peers exit when their stdin closes
                p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
    print("mail lesson: %s" % ("all passed" if failures == 0 else "%d FAILED" % failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
