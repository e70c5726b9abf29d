#!/usr/bin/python3
"""Twisted's ESMTP server (twisted.mail.smtp) for the SMTP client's tests: a second,
independent implementation beside aiosmtpd (t/smtp_peer.py).

Listens on 127.0.0.1 port 0, prints "PORT n", exits when its stdin closes. Twisted
hands a message to one IMessage per recipient: each is written as one JSON line
{"from", "to": [one], "data": latin-1 text, "data_hex"} to --out FILE.
    --refuse ADDR   refuse that recipient (550, Twisted's SMTPBadRcpt; repeatable)
    --tls-cert F --tls-key F   offer STARTTLS (needs python3-openssl)
Exit status 77: Twisted is not installed.
"""
import argparse
import json
import os
import sys

try:
    from twisted.internet import defer, reactor, stdio
    from twisted.internet.protocol import Protocol
    from twisted.mail import smtp
    from zope.interface import implementer
except ImportError:
    print("python3-twisted not installed", file=sys.stderr)
    sys.exit(77)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--refuse", action="append", default=[])
    ap.add_argument("--out", required=True)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    a = ap.parse_args()
    out = open(a.out, "a")
    refused = {x.lower() for x in a.refuse}

    @implementer(smtp.IMessage)
    class Message:
        def __init__(self, origin, user, proto):
            self.origin, self.user, self.lines, self.proto = origin, user, [], proto

        def lineReceived(self, line):
            self.lines.append(line)

        def eomReceived(self):
            data = b"".join(l + b"\r\n" for l in self.lines)
            out.write(json.dumps({"from": str(self.origin), "to": [str(self.user.dest)],
                                  "data": data.decode("latin-1"), "data_hex": data.hex(),
                                  "tls": bool(self.proto.startedTLS)}) + "\n")
            out.flush()
            return defer.succeed(None)

        def connectionLost(self):
            pass

    @implementer(smtp.IMessageDelivery)
    class Delivery:
        def __init__(self, proto):
            self.proto = proto

        def receivedHeader(self, helo, origin, recipients):
            return None

        def validateFrom(self, helo, origin):
            self.origin = origin
            return origin

        def validateTo(self, user):
            if str(user.dest).lower() in refused:
                raise smtp.SMTPBadRcpt(user.dest)
            origin, proto = self.origin, self.proto
            return lambda: Message(origin, user, proto)

    class Factory(smtp.SMTPFactory):
        protocol = smtp.ESMTP

        def buildProtocol(self, addr):
            p = smtp.SMTPFactory.buildProtocol(self, addr)
            p.delivery = Delivery(p)
            p.ctx = ctx
            return p

    ctx = None
    if a.tls_cert:
        from twisted.internet import ssl
        ctx = ssl.DefaultOpenSSLContextFactory(a.tls_key, a.tls_cert)
    f = Factory()
    port = reactor.listenTCP(0, f, interface="127.0.0.1")
    print("PORT %d" % port.getHost().port, flush=True)

    class Stdin(Protocol):
        def connectionLost(self, reason):
            os._exit(0)

    stdio.StandardIO(Stdin(), stdout=os.open(os.devnull, os.O_WRONLY))
    reactor.run()


if __name__ == "__main__":
    main()
