#!/usr/bin/python3
"""Edge cases of the notification protocol (shared/spec/protocol.md) against a running server.

    python3 t/interop/edge_cases.py --port N [--tls [--cafile FILE]]

Plain sockets, no Twisted needed. With --tls every connection speaks TLS (Python's ssl,
verifying the server against --cafile, or not at all); the half-close cases then shut
down the TCP sending side under TLS (an EOF without close_notify) and keep reading. The server should publish notifications often (e.g.
started with --interval 0.2) for the notification case. Prints one line per case and
exits 1 if any case fails. Every wait is bounded.
"""
import argparse
import re
import socket
import ssl
import sys
import time

NUM = re.compile(rb"^[0-9]{1,5}$")
TLS = None  # an ssl.SSLContext with --tls


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=2)
    return TLS.wrap_socket(s, server_hostname="127.0.0.1") if TLS else s


def half_close(s):
    """Shut down the TCP sending side. Under TLS too (the base class's shutdown keeps the
    TLS session for reading): Python cannot send a close_notify and keep reading, so the
    server sees an EOF without close_notify after the requests."""
    socket.socket.shutdown(s, socket.SHUT_WR)


def talk(port, data, shut=False, total=3.0, until_eof=True):
    """Send data (optionally half-close), collect lines until EOF or total seconds."""
    s = connect(port)
    s.sendall(data)
    if shut:
        half_close(s)
    s.settimeout(0.3)
    out, eof, t0 = b"", False, time.time()
    while time.time() - t0 < total:
        try:
            d = s.recv(65536)
        except socket.timeout:
            if not until_eof:
                break
            continue
        except (ConnectionResetError, ssl.SSLError):
            eof = "reset"
            break
        if not d:
            eof = True
            break
        out += d
    s.close()
    lines = out.split(b"\n")
    partial = lines.pop()
    return lines, partial, eof


def is_ad(line):
    return bool(line) and not line.startswith(b"error:") and not line.startswith(b"notif:")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--cafile")
    a = ap.parse_args()
    global TLS
    if a.tls:
        TLS = ssl.create_default_context(cafile=a.cafile) if a.cafile else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if not a.cafile:
            TLS.check_hostname = False
            TLS.verify_mode = ssl.CERT_NONE
    p = a.port
    failures = 0

    def check(name, ok, detail):
        nonlocal failures
        print("%s: %s%s" % ("PASS" if ok else "FAIL", name, "" if ok else " -> %r" % (detail,)))
        if not ok:
            failures += 1

    unk = b"error: unknown command"
    too_long = b"error: line too long"

    l, part, eof = talk(p, b"random?\r\nclassified?\n\nfoo\nRandom?\n random?\nquit\n")
    check("CRLF, empty line, unknown and case-sensitive commands, quit",
          len(l) == 5 and NUM.match(l[0]) and is_ad(l[1]) and l[2:] == [unk] * 3 and eof is True and not part,
          (l, part, eof))

    l, part, eof = talk(p, b"random?\nrandom?\n" + b"a" * 2000)
    check("answers before an over-long partial line, then error and close",
          len(l) == 3 and NUM.match(l[0]) and NUM.match(l[1]) and l[2] == too_long and eof, (l, eof))

    l, part, eof = talk(p, b"random?\n" + b"a" * 1024 + b"\nrandom?\nquit\n")
    check("a 1024-byte line is accepted (unknown command)",
          len(l) == 3 and NUM.match(l[0]) and l[1] == unk and NUM.match(l[2]) and eof, (l, eof))

    l, part, eof = talk(p, b"random?\n" + b"a" * 1024 + b"\r\nquit\n")
    check("a 1024-byte line with CRLF is accepted",
          len(l) == 2 and NUM.match(l[0]) and l[1] == unk and eof, (l, eof))

    l, part, eof = talk(p, b"random?\n" + b"a" * 1025 + b"\nrandom?\n")
    check("a 1025-byte line: error and close",
          len(l) == 2 and NUM.match(l[0]) and l[1] == too_long and eof, (l, eof))

    # Under TLS the half-close is an EOF without close_notify: OpenSSL reports it to the
    # server as an error, after which the server may close without close_notify too
    # (seen here as "reset"). Every answer must still arrive.
    half_ends = (True, "reset") if TLS else (True,)
    l, part, eof = talk(p, b"random?\nclassified?\n", shut=True)
    check("half-close: every answer, then close",
          len(l) == 2 and NUM.match(l[0]) and is_ad(l[1]) and eof in half_ends, (l, eof))

    l, part, eof = talk(p, b"random?\n" * 10000, shut=True, total=10)
    check("10,000 pipelined requests in one write",
          len(l) == 10000 and all(NUM.match(x) for x in l) and eof in half_ends, (len(l), eof))

    l, part, eof = talk(p, b"\x00\xff\x01binary\nquit\n")
    check("binary bytes and NUL: unknown command", l == [unk] and eof, (l, eof))

    # Notification mode: notif lines arrive, requests still answered, stop ends them.
    s = connect(p)
    s.sendall(b"notify\n")
    buf, t0 = b"", time.time()
    while buf.count(b"notif: ") < 2 and time.time() - t0 < 5:
        s.settimeout(0.5)
        try:
            buf += s.recv(4096)
        except socket.timeout:
            pass
    got = [x for x in buf.split(b"\n") if x]
    okn = len(got) >= 2 and all(x in (b"notif: random", b"notif: classified") for x in got)
    s.sendall(b"random?\nstop\n")
    buf, t0 = b"", time.time()
    while time.time() - t0 < 1.5:
        s.settimeout(0.3)
        try:
            d = s.recv(4096)
            if not d:
                break
            buf += d
        except socket.timeout:
            pass
    after = [x for x in buf.split(b"\n") if x]
    answers = [x for x in after if not x.startswith(b"notif: ")]
    notifs_after = [x for x in after if x.startswith(b"notif: ")]
    # One notification may cross the "stop"; the interval is short, so more would mean
    # stop did not work (at 0.2 s, 1.5 s would bring about 7).
    okn = okn and len(answers) == 1 and NUM.match(answers[0]) and len(notifs_after) <= 2
    s.close()
    check("notify: notif lines, answers in between, stop ends them", okn, (got, after))

    print("edge cases: %d failed" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
