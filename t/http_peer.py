#!/usr/bin/env python3
"""An independent HTTP/1.1 server for the HTTP client's tests (Python's http.server).

Listens on 127.0.0.1 port 0 (or [::1] with --v6), prints "PORT n" and serves until
killed or stdin closes. With --tls CERT KEY it speaks https. One thread per connection,
so a slow answer never holds up the others. Each path is one behaviour the tests ask for;
/raw/NAME sends a hand-written (often broken) answer byte for byte.
"""
import gzip
import http.server
import os
import socket
import ssl
import sys
import threading
import time
import zlib

RAW = {
    "garbage": b"HELLO THERE\r\n\r\n",
    "nocolon": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nThis has no colon\r\n\r\nok",
    "badchunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    "short": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b",
    "midheader": b"HTTP/1.1 200 OK\r\nContent-Ty",
    "continue": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal",
    "te_cl": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"5\r\nhello\r\n0\r\n\r\n",
    "trailers": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nExpires: never\r\nX-T: 1\r\n\r\n",
    "lf_only": b"HTTP/1.1 200 OK\nContent-Length: 2\nX-A: b\n\nok",
    "http10": b"HTTP/1.0 200 OK\r\n\r\nclose-delimited body",
    "no_reason": b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok",
    "bigheader": None,  # a 10 MB header line, written in pieces
    "nobody304": b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n",
    "nobody204": b"HTTP/1.1 204 No Content\r\n\r\n",
    "conflict_cl": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
}


BOMB = []


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stalls
    conn_counter = 0
    lock = threading.Lock()

    def setup(self):
        super().setup()
        with Handler.lock:
            Handler.conn_counter += 1
            self.conn_id = Handler.conn_counter

    def log_message(self, *args):
        pass

    def reply(self, code, body=b"", headers=(), reason=None):
        self.send_response(code, reason)
        for k, v in headers:
            self.send_header(k, v)
        if code not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and code not in (204, 304):
            self.wfile.write(body)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_HEAD(self):
        self.do_GET()

    def do_POST(self):
        body = self.read_body()
        if self.path == "/303":
            self.reply(303, b"", [("Location", "/echo")])
        elif self.path == "/302":
            self.reply(302, b"", [("Location", "/echo")])
        elif self.path == "/307":
            self.reply(307, b"", [("Location", "/echo")])
        else:
            self.echo(body)

    do_PUT = do_POST
    do_DELETE = do_POST

    def echo(self, body=b""):
        out = "%s %s\n" % (self.command, self.path)
        for k, v in self.headers.items():
            out += "%s: %s\n" % (k.lower(), v)
        out += "\n"
        self.reply(200, out.encode() + body, [("Content-Type", "text/plain")])

    def do_GET(self):
        p = self.path
        if p == "/hello":
            self.reply(200, b"hello world", [("Content-Type", "text/plain")])
        elif p == "/echo":
            self.echo()
        elif p == "/conn":
            self.reply(200, str(self.conn_id).encode())
        elif p.startswith("/bytes/"):
            n = int(p[7:])
            self.reply(200, bytes((i % 251 for i in range(n))))
        elif p == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if self.command != "HEAD":
                for part in (b"first,", b"second,", b"x" * 3000, b"last"):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.write(b"0\r\nX-Trailer: yes\r\n\r\n")
        elif p == "/close":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"until the close")
            self.close_connection = True
        elif p.startswith("/redirect/"):
            n = int(p[10:])
            if n == 0:
                self.reply(200, b"arrived")
            else:
                self.reply(302, b"moved", [("Location", "/redirect/%d" % (n - 1))])
        elif p == "/redirect-abs":
            host = self.headers.get("Host")
            self.reply(301, b"", [("Location", "http://%s/hello" % host)])
        elif p == "/redirect-rel":
            self.reply(307, b"", [("Location", "sub/../hello?x=1")])
        elif p == "/loop":
            self.reply(302, b"", [("Location", "/loop")])
        elif p.startswith("/status/"):
            code = int(p[8:])
            self.reply(code, b"status body %d" % code)
        elif p.startswith("/slow/"):
            time.sleep(int(p[6:]) / 1000.0)
            self.reply(200, b"slow")
        elif p == "/idleclose":
            # Keep-alive answer, then the server drops the connection (idle timeout).
            self.reply(200, b"bye")
            self.wfile.flush()
            self.close_connection = True
        elif p == "/gzip" or p == "/deflate" or p == "/rawdeflate":
            data = b"compressed " * 200
            if p == "/gzip":
                enc, body = "gzip", gzip.compress(data)
            elif p == "/deflate":
                enc, body = "deflate", zlib.compress(data)
            else:
                c = zlib.compressobj(wbits=-15)
                enc, body = "deflate", c.compress(data) + c.flush()
            self.reply(200, body, [("Content-Encoding", enc)])
        elif p == "/bomb":
            if not BOMB:
                BOMB.append(gzip.compress(b"\0" * (4 * 1024 * 1024), 1))
            self.reply(200, BOMB[0], [("Content-Encoding", "gzip")])
        elif p.startswith("/raw/"):
            self.raw(p[5:])
        else:
            self.reply(404, b"not found")

    def raw(self, name):
        self.close_connection = True
        if name == "bigheader":
            try:
                self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Big: ")
                chunk = b"a" * 65536
                for _ in range(160):
                    self.wfile.write(chunk)
                self.wfile.write(b"\r\n\r\n")
            except OSError:
                pass
            return
        try:
            self.wfile.write(RAW[name])
            self.wfile.flush()
        except (OSError, KeyError):
            pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass  # clients that reset (tests of cancel and timeouts) are normal here


class Server6(Server):
    address_family = socket.AF_INET6


def main():
    srv = Server(("127.0.0.1", 0), Handler)
    servers = [srv]
    try:
        srv6 = Server6(("::1", 0), Handler)
        servers.append(srv6)
    except OSError:
        srv6 = None  # no IPv6 loopback here: the test says so
    if "--tls" in sys.argv:
        i = sys.argv.index("--tls")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[i + 1], sys.argv[i + 2])
        for s in servers:
            s.socket = ctx.wrap_socket(s.socket, server_side=True)
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    print("PORT %d %d" % (srv.server_address[1], srv6.server_address[1] if srv6 else 0),
          flush=True)
    # Exit when the test (our parent) goes away and stdin closes.
    try:
        sys.stdin.read()
    except KeyboardInterrupt:
        pass
    os._exit(0)


if __name__ == "__main__":
    main()
