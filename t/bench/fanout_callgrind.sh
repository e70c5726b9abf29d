#!/bin/sh
# Instructions per relayed event and per notification written by one relaying instance
# (callgrind, so independent of the load): sh t/bench/fanout_callgrind.sh [CLIENTS] (500).
# Runs a redis-server and the instance under callgrind twice (20 and 220 events, 20 ms
# apart, from build/bench/bench_fanout) and takes the difference.
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
C=${1:-500}
tmp=$(mktemp -d)
fp() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
R=$(fp)
redis-server --port "$R" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" --logfile "$tmp/log" --daemonize no & RP=$!
sleep 0.3
for n in 20 220; do
  P=$(fp)
  valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.$n" "$BUILD/bin/notif-server" --port "$P" \
     --redis "redis://127.0.0.1:$R" --redis-channel cg --interval 0 >/dev/null 2>"$tmp/err.$n" & VP=$!
  i=0; while ! python3 -c "import socket; socket.create_connection(('127.0.0.1',$P),0.2).close()" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.2; i=$((i+1)); done
  sleep 1
  "$BUILD/bench/bench_fanout" latency redis "$R" cg "$C" "$n" "$P" >/dev/null
  kill -TERM $VP; wait $VP
  eval "ir$n=\$(sed -n 's/^summary: //p' $tmp/cg.$n)"
done
kill $RP; wait $RP
echo "clients=$C Ir(20)=$ir20 Ir(220)=$ir220 per_event=$(( (ir220 - ir20) / 200 )) per_notification=$(( (ir220 - ir20) / 200 / C ))"
rm -rf "$tmp"
