#!/usr/bin/env python3
"""Twisted's web server as an independent peer for the HTTP client's tests.

Listens on 127.0.0.1 port 0, prints "PORT n", serves until stdin closes. Exits 77
when Twisted is not installed (the test then reports itself skipped).
  /hello     a static body with Content-Length
  /chunked   written in pieces without a length: Twisted sends it chunked
  /redirect  302 to /hello (twisted.web.util.redirectTo)
  /gzip      /hello's text through Twisted's gzip encoder (asks Accept-Encoding)
  /missing   Twisted's own 404 page
"""
import sys

try:
    from twisted.internet import reactor, stdio
    from twisted.internet.protocol import Protocol
    from twisted.web import resource, server, util
except ImportError:
    sys.exit(77)


class Hello(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/plain")
        return b"hello from twisted"


class Chunked(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        for i in range(5):
            request.write(b"piece %d;" % i)
        request.finish()
        return server.NOT_DONE_YET


class Redirect(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        return util.redirectTo(b"/hello", request)


class Gzip(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        return b"gzip me " * 100


class Stdin(Protocol):
    def connectionLost(self, reason):
        reactor.stop()


root = resource.Resource()
root.putChild(b"hello", Hello())
root.putChild(b"chunked", Chunked())
root.putChild(b"redirect", Redirect())
root.putChild(b"gzip", resource.EncodingResourceWrapper(Gzip(), [server.GzipEncoderFactory()]))
port = reactor.listenTCP(0, server.Site(root), interface="127.0.0.1")
print("PORT %d 0" % port.getHost().port, flush=True)
stdio.StandardIO(Stdin())
reactor.run()
