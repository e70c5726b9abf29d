#!/usr/bin/python3
"""A Twisted server of the notification protocol (shared/spec/protocol.md).

The interoperability reference for twistc's server and client, written the ordinary
Twisted way: a LineReceiver per connection, a Factory that keeps the subscribers, and a
LoopingCall that publishes the events.

    /usr/bin/python3 t/interop/twisted_server.py [--port N] [--bind ADDR]
        [--interval SECONDS] [--max-clients N] [--cap BYTES]

--port 0 picks a free port. Once listening it prints "port=N" on stdout (flushed), so a
script can start it on port 0 and read the port back.
"""
import argparse
import random
import signal
import sys

from twisted.internet import reactor, task
from twisted.protocols.basic import LineReceiver
from twisted.internet.protocol import Factory
from zope.interface import implementer
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer

MAX_LINE = 1024

ADS = [
    b"nice flat in the 11e",
    b"bicycle for sale, barely used",
    b"looking for a C programmer who likes Twisted",
    b"piano lessons, first one free",
    b"lost cat answering to Reactor",
    b"sunny room near the canal",
]


@implementer(IPushProducer, IHalfCloseableProtocol)
class NotifProtocol(LineReceiver):
    delimiter = b"\n"
    # One more than the protocol's limit so that a CR before the LF fits; the exact
    # limit is checked on the line once the CR is stripped.
    MAX_LENGTH = MAX_LINE + 1

    def connectionMade(self):
        f = self.factory
        if f.max_clients and len(f.clients) >= f.max_clients:
            self.transport.write(b"error: server full\n")
            self.transport.loseConnection()
            self.refused = True
            return
        self.refused = False
        f.clients.add(self)
        f.connections += 1
        # The transport pauses us when its buffer fills (the peer does not read); what
        # we queue while paused is counted against the cap.
        self.paused_output = None
        self.transport.registerProducer(self, True)

    def close(self):
        # Over TLS, Twisted's transport (unlike TCP's) sends close_notify only once the
        # producer is unregistered; we have nothing more to produce.
        self.transport.unregisterProducer()
        self.transport.loseConnection()

    def connectionLost(self, reason):
        self.factory.clients.discard(self)
        self.factory.subscribers.discard(self)

    # IHalfCloseableProtocol: a client that half-closes still gets every answer owed;
    # loseConnection flushes them before closing.
    def readConnectionLost(self):
        self.factory.subscribers.discard(self)
        self.close()

    def writeConnectionLost(self):
        pass

    # IPushProducer: called by the transport.
    def pauseProducing(self):
        self.paused_output = 0

    def resumeProducing(self):
        self.paused_output = None

    def stopProducing(self):
        pass

    def send(self, data):
        if self.paused_output is not None:
            self.paused_output += len(data)
            if self.paused_output > self.factory.cap:
                self.factory.slow_dropped += 1
                self.factory.subscribers.discard(self)
                self.transport.abortConnection()
                return
        self.transport.write(data)

    def lineReceived(self, line):
        if self.refused:
            return
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > MAX_LINE:
            return self.lineLengthExceeded(line)
        if not line:
            return
        f = self.factory
        f.requests += 1
        if line == b"random?":
            self.send(b"%d\n" % random.randint(0, 99999))
        elif line == b"classified?":
            self.send(f.current_ad + b"\n")
        elif line == b"notify":
            f.subscribers.add(self)
        elif line == b"stop":
            f.subscribers.discard(self)
        elif line == b"quit":
            f.subscribers.discard(self)
            self.close()
        else:
            self.send(b"error: unknown command\n")

    def lineLengthExceeded(self, line):
        self.factory.subscribers.discard(self)
        self.transport.write(b"error: line too long\n")
        self.close()


class NotifFactory(Factory):
    protocol = NotifProtocol

    def __init__(self, max_clients, cap):
        self.max_clients = max_clients
        self.cap = cap
        self.clients = set()
        self.subscribers = set()
        self.current_ad = ADS[0]
        self.tick = 0
        self.connections = self.requests = self.notifications = self.slow_dropped = 0

    def publish(self):
        # Events alternate: a new random number, then a new classified ad.
        if self.tick % 2 == 0:
            line = b"notif: random\n"
        else:
            self.current_ad = ADS[(self.tick // 2 + 1) % len(ADS)]
            line = b"notif: classified\n"
        self.tick += 1
        for p in list(self.subscribers):
            self.notifications += 1
            p.send(line)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=6789)
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--max-clients", type=int, default=0)
    ap.add_argument("--cap", type=int, default=1 << 20)
    ap.add_argument("--tls-cert", help="serve TLS with this certificate (PEM)")
    ap.add_argument("--tls-key", help="... and this key (PEM)")
    a = ap.parse_args()
    if a.interval <= 0 or not 0 <= a.port <= 65535:
        ap.error("bad --interval or --port")

    f = NotifFactory(a.max_clients, a.cap)
    if a.tls_cert:
        from twisted.internet import ssl
        with open(a.tls_cert) as c, open(a.tls_key) as k:
            opts = ssl.PrivateCertificate.loadPEM(c.read() + k.read()).options()
        port = reactor.listenSSL(a.port, f, opts, backlog=4096, interface=a.bind)
    else:
        port = reactor.listenTCP(a.port, f, backlog=4096, interface=a.bind)
    print("port=%d" % port.getHost().port, flush=True)
    loop = task.LoopingCall(f.publish)
    loop.start(a.interval, now=False)

    def stop(*_):
        reactor.callFromThread(reactor.stop)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    reactor.run(installSignalHandlers=False)
    sys.stderr.write(
        "twisted_server: connections=%d requests=%d notifications=%d slow_dropped=%d\n"
        % (f.connections, f.requests, f.notifications, f.slow_dropped))


if __name__ == "__main__":
    main()
