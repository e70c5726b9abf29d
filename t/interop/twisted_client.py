#!/usr/bin/python3
"""A Twisted client of the notification protocol (shared/spec/protocol.md).

The interoperability reference for twistc's server and client. Requests return
Deferreds; pending requests are a FIFO of Deferreds (a single self.d, as on the talk's
first slides, breaks under pipelining); "notif: " lines are dispatched to the
notification handler and never taken for an answer.

    /usr/bin/python3 t/interop/twisted_client.py [--host H] [--port N] [--notify N]
        [--timeout SECONDS]

Default: the talk's flow: print a random number, print a classified ad, exit 0.
--notify N: enter notification mode and handle N notifications; on each: stop, ask the
matching request, print "random: NUMBER" or "classified: AD", notify again.
Exit status: 0 on success, 1 on any error (no server, connection closed, an error:
answer, an invalid answer, timeout), with a message on stderr.
"""
import argparse
import collections
import re
import sys

from twisted.internet import defer, reactor
from twisted.internet.protocol import ClientFactory
from twisted.protocols.basic import LineReceiver


class ServerError(Exception):
    pass


class NotifClientProtocol(LineReceiver):
    delimiter = b"\n"
    MAX_LENGTH = 1025

    def connectionMade(self):
        self.pending = collections.deque()
        self.closed = False
        self.on_notif = None  # set by the user: called with b"random" / b"classified"
        self.factory.connected.callback(self)

    def _request(self, line):
        d = defer.Deferred()
        self.pending.append(d)
        self.sendLine(line)
        return d

    def random(self):
        return self._request(b"random?").addCallback(self._check_random)

    def classified(self):
        return self._request(b"classified?").addCallback(self._check_ad)

    def notify(self):
        self.sendLine(b"notify")

    def stop_notify(self):
        self.sendLine(b"stop")

    def quit(self):
        self.sendLine(b"quit")

    @staticmethod
    def _check_random(line):
        if not re.fullmatch(rb"[0-9]{1,5}", line):
            raise ServerError("not a random number: %r" % line)
        return int(line)

    @staticmethod
    def _check_ad(line):
        if not line:
            raise ServerError("empty classified ad")
        return line.decode("utf-8", "replace")

    def lineReceived(self, line):
        if line.endswith(b"\r"):
            line = line[:-1]
        if line.startswith(b"notif: "):
            if self.on_notif:
                self.on_notif(line[7:])
            return
        if not self.pending:
            self.factory.fail("unexpected line from the server: %r" % line)
            return
        d = self.pending.popleft()
        if line.startswith(b"error: "):
            d.errback(ServerError(line.decode("utf-8", "replace")))
        else:
            d.callback(line)

    def lineLengthExceeded(self, line):
        self.factory.fail("line from the server too long")
        self.transport.abortConnection()

    def connectionLost(self, reason):
        self.closed = True
        pending, self.pending = self.pending, collections.deque()
        for d in pending:
            d.errback(ServerError("connection lost with a request pending"))
        self.factory.lost(reason)


class NotifClientFactory(ClientFactory):
    protocol = NotifClientProtocol

    def __init__(self):
        self.connected = defer.Deferred()
        self.done = False
        self.status = None

    def clientConnectionFailed(self, connector, reason):
        self.fail("cannot connect: %s" % reason.getErrorMessage())

    def fail(self, msg):
        if self.status is None:
            sys.stderr.write("twisted_client: %s\n" % msg)
            self.status = 1
        if reactor.running:
            reactor.stop()

    def succeed(self):
        if self.status is None:
            self.status = 0

    def lost(self, reason):
        if self.status is None:
            if self.done:
                self.status = 0
            else:
                self.fail("server closed the connection")
                return
        if reactor.running:
            reactor.stop()


@defer.inlineCallbacks
def default_flow(p, f):
    number = yield p.random()
    print(number, flush=True)
    ad = yield p.classified()
    print(ad, flush=True)
    f.done = True
    p.quit()


def notify_flow(p, f, count):
    handled = [0]
    busy = [False]

    def on_notif(kind):
        if busy[0]:
            return  # a notification can arrive just after "stop": ignore it
        if kind == b"random":
            req, label = p.random, "random"
        elif kind == b"classified":
            req, label = p.classified, "classified"
        else:
            f.fail("unknown notification %r" % kind)
            return
        busy[0] = True
        p.stop_notify()
        d = req()

        def got(value):
            print("%s: %s" % (label, value), flush=True)
            handled[0] += 1
            busy[0] = False
            if handled[0] >= count:
                f.done = True
                p.quit()
            else:
                p.notify()

        d.addCallback(got)
        d.addErrback(lambda fl: f.fail(fl.getErrorMessage()))

    p.on_notif = on_notif
    p.notify()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=6789)
    ap.add_argument("--notify", type=int, default=0, metavar="N")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--tls", action="store_true", help="connect with TLS (verified)")
    ap.add_argument("--cafile", help="the CA to trust (with --tls)")
    a = ap.parse_args()
    if a.notify < 0 or a.timeout <= 0:
        ap.error("bad --notify or --timeout")

    f = NotifClientFactory()

    def start(p):
        if a.notify:
            notify_flow(p, f, a.notify)
        else:
            default_flow(p, f).addErrback(lambda fl: f.fail(fl.getErrorMessage()))

    f.connected.addCallback(start)
    if a.tls:
        from twisted.internet import ssl
        root = ssl.platformTrust()
        if a.cafile:
            with open(a.cafile) as c:
                root = ssl.Certificate.loadPEM(c.read())
        opts = ssl.optionsForClientTLS(a.host, trustRoot=root)
        reactor.connectSSL(a.host, a.port, f, opts, timeout=min(a.timeout, 10))
    else:
        reactor.connectTCP(a.host, a.port, f, timeout=min(a.timeout, 10))
    reactor.callLater(a.timeout, f.fail, "timed out after %g s" % a.timeout)
    reactor.run()
    return 1 if f.status is None else f.status


if __name__ == "__main__":
    sys.exit(main())
