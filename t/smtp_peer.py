#!/usr/bin/python3
"""An independent SMTP server for the SMTP client's tests and the mail lesson
(Debian's python3-aiosmtpd; run it with /usr/bin/python3).

Listens on 127.0.0.1 port 0, prints "PORT n" on its first line (t/peer_helpers.c reads
it) and serves until killed or its stdin closes. Every message it accepts is written as
one JSON line: {"from": ..., "to": [...], "data": latin-1 text, "data_hex": hex,
"tls": bool, "auth": user or null} to --out FILE (appended, flushed per message) or to
stdout.

    --delay S             wait S seconds before every reply (a slow server: the lesson)
    --tls-cert F --tls-key F   offer STARTTLS with this certificate
    --require-tls         refuse everything but EHLO/STARTTLS/QUIT before STARTTLS
    --auth USER:PASS      offer AUTH PLAIN and LOGIN (after STARTTLS, unless
                          --auth-plaintext) and accept only these credentials
    --auth-plaintext      offer AUTH on a plaintext connection too
    --refuse ADDR         answer RCPT TO:<ADDR> with "550 5.1.1 no such user here"
                          (repeatable)
    --out FILE            where the JSON lines go (default: stdout)
Exit status 77: aiosmtpd is not installed (the tests then skip, saying why).
"""
import argparse
import asyncio
import json
import logging
import os
import socket
import ssl
import stat
import sys
import threading

try:
    from aiosmtpd.smtp import SMTP, AuthResult
except ImportError:
    print("aiosmtpd not installed (apt-get install python3-aiosmtpd)", file=sys.stderr)
    sys.exit(77)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--require-tls", action="store_true")
    ap.add_argument("--auth")
    ap.add_argument("--auth-plaintext", action="store_true")
    ap.add_argument("--refuse", action="append", default=[])
    ap.add_argument("--out")
    a = ap.parse_args()

    out = open(a.out, "a") if a.out else sys.stdout
    refused = {x.lower() for x in a.refuse}
    delay = a.delay

    class Handler:
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            if address.lower() in refused:
                return "550 5.1.1 no such user here"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):
            data = envelope.original_content or b""
            rec = {
                "from": envelope.mail_from,
                "to": envelope.rcpt_tos,
                "data": data.decode("latin-1"),
                "data_hex": data.hex(),
                "tls": session.ssl is not None,
                "auth": session.auth_data,
            }
            out.write(json.dumps(rec) + "\n")
            out.flush()
            return "250 2.0.0 Message accepted for delivery"

    class SlowSMTP(SMTP):
        async def push(self, status):
            # One delay per reply: only before its last line ("250 x", not "250-x").
            s = status if isinstance(status, bytes) else status.encode("utf-8", "replace")
            if delay > 0 and (len(s) < 4 or s[3:4] != b"-"):
                await asyncio.sleep(delay)
            await super().push(status)

    def authenticator(server, session, envelope, mechanism, auth_data):
        user, _, pw = a.auth.partition(":")
        ok = (auth_data.login.decode() == user and auth_data.password.decode() == pw)
        # handled=False: aiosmtpd answers 235 or 535 itself.
        return AuthResult(success=ok, handled=False, auth_data=user if ok else None)

    tls_ctx = None
    if a.tls_cert:
        tls_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_ctx.load_cert_chain(a.tls_cert, a.tls_key)

    kw = dict(hostname="peer.test", decode_data=False, tls_context=tls_ctx,
              require_starttls=a.require_tls)
    if a.auth:
        kw.update(authenticator=authenticator, auth_require_tls=not a.auth_plaintext)
    else:
        # No AUTH offered at all: its absence is what a test of that case needs.
        kw.update(auth_exclude_mechanism=["LOGIN", "PLAIN"])

    # aiosmtpd logs every refused handshake with a traceback: the tests cause those.
    logging.getLogger("mail.log").setLevel(logging.CRITICAL)
    logging.captureWarnings(True)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    handler = Handler()
    server = loop.run_until_complete(
        loop.create_server(lambda: SlowSMTP(handler, loop=loop, **kw), sock=sock))
    print("PORT %d" % sock.getsockname()[1], flush=True)

    def watch_stdin():
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        os._exit(0)

    # Started by a test (stdin a pipe): exit when the test closes it. Started by hand or
    # in the background of a script (a terminal, /dev/null): run until killed.
    if stat.S_ISFIFO(os.fstat(0).st_mode):
        threading.Thread(target=watch_stdin, daemon=True).start()
    try:
        loop.run_forever()
    finally:
        server.close()


if __name__ == "__main__":
    main()
