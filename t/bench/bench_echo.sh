#!/bin/sh
# bench_echo.sh: the twistc line echo server (apps/echo-server.c: LineReceiver +
# transports) against a hand-written raw epoll echo server (t/bench/echo_raw.c), in one
# run, with the same load generator (t/bench/loadgen.c --echo). Prints one line per run
# and a ratio table (twistc req/s divided by raw req/s, medians).
#
#   make bench && t/bench/bench_echo.sh
#
# Environment: RUNS (5), SECONDS_PER_RUN (3), SCENARIOS ("1/1 50/1 50/16"),
# BUILD (build), SERVER_CPU (1), LOADGEN_CPU (0). Loopback only; every run is bounded.
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
RUNS=${RUNS:-5}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-3}
SCENARIOS=${SCENARIOS:-"1/1 50/1 50/16"}
SERVER_CPU=${SERVER_CPU:-1}
LOADGEN_CPU=${LOADGEN_CPU:-0}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench_echo.XXXXXX") || exit 1
PIDS=
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	for p in $PIDS; do wait "$p" 2>/dev/null; done
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

start() { # name command...: starts a server printing port=N, sets PORT_name and PID_name
	name=$1; shift
	taskset -c "$SERVER_CPU" "$@" >"$TMP/$name.out" 2>&1 &
	pid=$!
	PIDS="$PIDS $pid"
	i=0
	while ! grep -q '^port=' "$TMP/$name.out" 2>/dev/null; do
		i=$((i + 1))
		[ $i -gt 100 ] && { echo "bench_echo: $name did not start" >&2; exit 1; }
		sleep 0.05
	done
	eval "PORT_$name=$(sed -n 's/^port=//p' "$TMP/$name.out")"
	eval "PID_$name=$pid"
}

# private copies: a concurrent rebuild of the tree cannot swap a binary mid-run
cp "$BUILD/bin/echo-server" "$BUILD/bench/echo_raw" "$BUILD/bench/loadgen" "$TMP/" || exit 1
start twistc "$TMP/echo-server" 0
start raw "$TMP/echo_raw" --port 0

for sc in $SCENARIOS; do
	c=${sc%/*}; d=${sc#*/}
	for run in $(seq "$RUNS"); do
		for name in twistc raw; do
			eval "port=\$PORT_$name pid=\$PID_$name"
			line=$(taskset -c "$LOADGEN_CPU" "$TMP/loadgen" --echo --port "$port" \
				--conns "$c" --depth "$d" --seconds "$SECONDS_PER_RUN" --server-pid "$pid")
			echo "server=$name $line"
			echo "$name $c $d $(echo "$line" | sed -n 's/.* rps=\([0-9]*\).*/\1/p') $(echo "$line" | sed -n 's/.*server_cpu_ns_per_req=\([0-9]*\).*/\1/p')" >>"$TMP/results"
		done
	done
done

echo
echo "| conns/depth | twistc req/s (median) | raw epoll req/s (median) | ratio | twistc ns CPU/req | raw ns CPU/req |"
echo "|---|---|---|---|---|---|"
for sc in $SCENARIOS; do
	c=${sc%/*}; d=${sc#*/}
	med() { awk -v n="$1" -v c="$c" -v d="$d" -v f="$2" '$1==n && $2==c && $3==d {print $f}' "$TMP/results" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
	t=$(med twistc 4); r=$(med raw 4); tc=$(med twistc 5); rc=$(med raw 5)
	ratio=$(awk -v t="$t" -v r="$r" 'BEGIN {printf "%.2f", t / r}')
	echo "| $c/$d | $t | $r | $ratio | $tc | $rc |"
done
