#!/bin/sh
# A notification server that only relays events produced by another instance, through
# Redis (docs/scaling.md): the multi-instance setup for t/interop/run.sh ("relay").
#
#   t/interop/relay_server.sh --port N --interval SECONDS
#
# Starts a redis-server on a free loopback port (temporary directory, no persistence),
# a producer instance (notif-server --redis ... --interval SECONDS, on a free port) and,
# on port N, the instance the client talks to: notif-server --redis ... --interval 0.
# So every notification the client gets crossed Redis. SIGTERM/SIGINT stop all three.
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
PY=${INTEROP_PYTHON:-/usr/bin/python3}
port= interval=0.2
while [ $# -gt 0 ]; do
	case $1 in
	--port) port=$2; shift 2 ;;
	--interval) interval=$2; shift 2 ;;
	*) echo "relay_server: unknown argument $1" >&2; exit 2 ;;
	esac
done
[ -n "$port" ] || { echo "relay_server: --port is required" >&2; exit 2; }
REDIS=$(command -v redis-server) || { echo "relay_server: redis-server not installed" >&2; exit 77; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/relay.XXXXXX") || exit 1
rport=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
	echo $((30000 + $$ % 20000)))
RP= PP= SP=
stop() {
	[ -n "$SP" ] && kill -TERM "$SP" 2>/dev/null
	[ -n "$PP" ] && kill -TERM "$PP" 2>/dev/null
	[ -n "$SP" ] && wait "$SP" 2>/dev/null
	[ -n "$PP" ] && wait "$PP" 2>/dev/null
	[ -n "$RP" ] && kill -TERM "$RP" 2>/dev/null && wait "$RP" 2>/dev/null
	rm -rf "$tmp"
}
trap 'stop; exit 0' TERM INT
"$REDIS" --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" \
	--logfile "$tmp/redis.log" --daemonize no &
RP=$!
url=redis://127.0.0.1:$rport
# The instances need not wait for Redis: they start, report it away, and retry.
"$BUILD/bin/notif-server" --port 0 --redis "$url" --interval "$interval" >"$tmp/producer.out" 2>&1 &
PP=$!
"$BUILD/bin/notif-server" --port "$port" --redis "$url" --interval 0 &
SP=$!
wait "$SP"
rc=$?
stop
exit $rc
