#!/bin/sh
# Fan-out through Redis vs one process (docs/scaling.md):
#   sh t/bench/fanout.sh [CLIENTS] [EVENTS]        (defaults 10000 and 100)
# 1. latency: one event to CLIENTS notify-mode clients spread over 3 notif-server
#    instances sharing a redis-server (the event is a PUBLISH), then the same clients on
#    one notif_server without Redis; p50/p99/max over EVENTS events each.
# 2. throughput: the highest rate (events/s, from a fixed ladder) at which the 3-instance
#    setup delivers every event to 1000 clients with none more than 100 ms late.
# Starts and stops its own redis-server (loopback, free port, no persistence).
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
CLIENTS=${1:-10000}
EVENTS=${2:-100}
B=$BUILD/bench/bench_fanout
[ -x "$B" ] || { echo "fanout: $B not built (make bench)"; exit 1; }
command -v redis-server >/dev/null || { echo "fanout: SKIP: redis-server not installed"; exit 77; }
tmp=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RPORT=$(free_port)
PIDS=
cleanup() { for p in $PIDS; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" \
	--logfile "$tmp/redis.log" --daemonize no &
PIDS="$PIDS $!"
CH=bench:fanout
PORTS=
for i in 1 2 3; do
	p=$(free_port)
	"$BUILD/bin/notif-server" --port "$p" --redis "redis://127.0.0.1:$RPORT" --redis-channel "$CH" \
		--interval 0 --max-clients 0 >"$tmp/inst$i.out" 2>"$tmp/inst$i.err" &
	PIDS="$PIDS $!"
	PORTS="$PORTS $p"
done
sleep 1
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
# shellcheck disable=SC2086
"$B" latency redis "$RPORT" "$CH" "$CLIENTS" "$EVENTS" $PORTS
"$B" latency local "$CLIENTS" "$EVENTS"
# shellcheck disable=SC2086
"$B" throughput "$RPORT" "$CH" 1000 2 1000 2000 5000 10000 20000 40000 80000 -- $PORTS
