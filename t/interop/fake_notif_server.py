#!/usr/bin/python3
"""A misbehaving notification server for the client's edge cases (t/apps.sh).

    python3 t/interop/fake_notif_server.py

Prints "port N", serves one connection: "random?" -> "7", "classified?" -> an ad with a
NUL byte inside, "quit" -> closes with a reset (SO_LINGER 0) instead of a clean close.
Exits after that connection, or after 10 seconds.
"""
import socket
import struct
import sys

srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(1)
srv.settimeout(10)
print("port", srv.getsockname()[1], flush=True)
conn, _ = srv.accept()
conn.settimeout(10)
buf = b""
while True:
    d = conn.recv(4096)
    if not d:
        break
    buf += d
    while b"\n" in buf:
        line, buf = buf.split(b"\n", 1)
        if line == b"random?":
            conn.sendall(b"7\n")
        elif line == b"classified?":
            conn.sendall(b"ad with a \x00 inside\n")
        elif line == b"quit":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            sys.exit(0)
sys.exit(0)
