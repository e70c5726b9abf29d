#!/bin/sh
# compare.sh: throughput and server CPU per request of several notification servers in
# one run, against the hand-written raw epoll server (the limit: no abstraction).
#
#   t/bench/compare.sh [NAME=COMMAND ...]
#
# Without arguments it compares every server that is built: ours ($BUILD/bin/notif-server),
# raw, libevent, libuv ($BUILD/bench/server_*). Arguments replace that set; NAME alone is
# one of those four, NAME=COMMAND is any server command, e.g.
#   t/bench/compare.sh raw libuv twisted="/usr/bin/python3 t/interop/twisted_server.py"
# "raw" is always added: ratios are to it. Each COMMAND gets "--port N --interval 1000"
# appended (a server of protocol.md; the long interval keeps notification timers out).
#
# Method: every server runs pinned to CPU $SERVER_CPU (1), the load generator to CPU
# $LOADGEN_CPU (0). For each scenario C/P (C connections, P requests in flight each),
# each run measures every server once, in turn, for $SECONDS_PER_RUN; $RUNS runs; the table
# gives medians. CPU per request is the server's on-CPU time (user + system, exact
# nanoseconds from /proc/PID/task/*/schedstat) during the run divided by the answers.
#
# Environment: RUNS (5), SECONDS_PER_RUN (3), SCENARIOS ("1/1 50/1 50/16 1000/1"),
# REQUEST (random?), BUILD (build), SERVER_CPU (1), LOADGEN_CPU (0), PIN (1; 0 = no taskset,
# the setup of the Twisted reference figures in semantics.md), OUT (a results file
# of raw loadgen lines; default: a temporary file, removed).
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
RUNS=${RUNS:-5}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-3}
SCENARIOS=${SCENARIOS:-"1/1 50/1 50/16 1000/1"}
REQUEST=${REQUEST:-random?}
SERVER_CPU=${SERVER_CPU:-1}
LOADGEN_CPU=${LOADGEN_CPU:-0}
LOADGEN=$BUILD/bench/loadgen
PY=/usr/bin/python3
TMP=$(mktemp -d "${TMPDIR:-/tmp}/compare.XXXXXX") || exit 1
RESULTS=${OUT:-$TMP/results.txt}
: >"$RESULTS"
PIDS=
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	for p in $PIDS; do wait "$p" 2>/dev/null; done
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

if [ ! -x "$LOADGEN" ]; then
	echo "compare: $LOADGEN not built (make bench)" >&2
	exit 2
fi
PIN_S= PIN_L=
if [ "${PIN:-1}" = 0 ]; then
	echo "compare: PIN=0: running unpinned" >&2
elif command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
	PIN_S="taskset -c $SERVER_CPU"
	PIN_L="taskset -c $LOADGEN_CPU"
else
	echo "compare: taskset or a second CPU missing: running unpinned" >&2
fi

known_cmd() {
	case $1 in
	ours) echo "$BUILD/bin/notif-server" ;;
	raw | libevent | libuv) echo "$BUILD/bench/server_$1" ;;
	*) return 1 ;;
	esac
}

# The server list: lines "name<TAB>command".
: >"$TMP/servers"
if [ $# -eq 0 ]; then
	set -- ours raw libevent libuv
	only_built=1
else
	only_built=0
fi
echo "raw	$BUILD/bench/server_raw" >>"$TMP/servers"
for arg in "$@"; do
	case $arg in
	*=*) name=${arg%%=*} cmd=${arg#*=} ;;
	*) name=$arg
	   if ! cmd=$(known_cmd "$arg"); then echo "compare: unknown server $arg" >&2; exit 2; fi ;;
	esac
	[ "$name" = raw ] && continue
	exe=${cmd%% *}
	if [ ! -x "$exe" ] && ! command -v "$exe" >/dev/null 2>&1; then
		if [ $only_built = 1 ]; then
			echo "compare: skipping $name ($exe not built)" >&2
			continue
		fi
		echo "compare: $name: $exe not found" >&2
		exit 2
	fi
	printf '%s\t%s\n' "$name" "$cmd" >>"$TMP/servers"
done
if [ ! -x "$BUILD/bench/server_raw" ]; then
	echo "compare: $BUILD/bench/server_raw not built (make bench)" >&2
	exit 2
fi

free_port() {
	"$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() { # port pid: bounded (20 s)
	i=0
	while [ $i -lt 200 ]; do
		"$PY" -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),0.2).close()' "$1" 2>/dev/null && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# Run private copies of the programs, so that a rebuild in the shared tree during the run
# (others run make) cannot swap or truncate a binary under us.
mkdir -p "$TMP/bin"
cp "$LOADGEN" "$TMP/bin/loadgen" && LOADGEN=$TMP/bin/loadgen
while IFS='	' read -r name cmd; do
	exe=${cmd%% *} rest=
	[ "$exe" != "$cmd" ] && rest=" ${cmd#* }"
	case $exe in
	"$BUILD"/*) cp "$exe" "$TMP/bin/$name.exe" && cmd="$TMP/bin/$name.exe$rest" ;;
	esac
	printf '%s\t%s\n' "$name" "$cmd"
done <"$TMP/servers" >"$TMP/servers.copy"

# Start every server once, on its own port, pinned.
: >"$TMP/running"
while IFS='	' read -r name cmd; do
	port=$(free_port)
	# shellcheck disable=SC2086
	$PIN_S $cmd --port "$port" --interval 1000 >"$TMP/$name.out" 2>"$TMP/$name.err" &
	pid=$!
	PIDS="$PIDS $pid"
	if ! wait_port "$port" "$pid"; then
		echo "compare: $name did not start:" >&2
		cat "$TMP/$name.err" >&2
		exit 1
	fi
	printf '%s\t%s\t%s\n' "$name" "$port" "$pid" >>"$TMP/running"
done <"$TMP/servers.copy"
echo "compare: servers: $(cut -f1 "$TMP/running" | tr '\n' ' ')" >&2
echo "compare: scenarios: $SCENARIOS; $RUNS runs x ${SECONDS_PER_RUN}s; request $REQUEST" >&2

status=0
for sc in $SCENARIOS; do
	conns=${sc%/*} depth=${sc#*/}
	run=1
	while [ $run -le "$RUNS" ]; do
		while IFS='	' read -r name port pid; do
			# shellcheck disable=SC2086
			line=$($PIN_L "$LOADGEN" --port "$port" --conns "$conns" --depth "$depth" \
				--request "$REQUEST" --expect --seconds "$SECONDS_PER_RUN" --server-pid "$pid" 2>"$TMP/lg.err")
			rc=$?
			echo "server=$name scenario=$sc run=$run rc=$rc $line" >>"$RESULTS"
			if [ $rc -ne 0 ]; then
				echo "compare: $name $sc run $run: loadgen exit $rc: $(cat "$TMP/lg.err")" >&2
				status=1
			fi
		done <"$TMP/running"
		run=$((run + 1))
	done
	echo "compare: scenario $sc done" >&2
done

"$PY" - "$RESULTS" <<'EOF'
import sys, statistics
rows = []
for line in open(sys.argv[1]):
    d = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
    rows.append(d)
servers = []
for d in rows:
    if d["server"] not in servers:
        servers.append(d["server"])
scen = []
for d in rows:
    if d["scenario"] not in scen:
        scen.append(d["scenario"])

def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None

def col(sc, srv, key):
    out = []
    for d in rows:
        if d["scenario"] == sc and d["server"] == srv and key in d:
            try:
                out.append(float(d[key]))
            except ValueError:
                pass
    return out

# Ratios of medians move when the machine changes state during a scenario (a run of
# every server is a few seconds; another program may start in between). The servers of
# one run are measured back to back, so the ratio within each run, then its median over
# the runs, is the steadier figure: "same-run x raw".
def same_run_ratio(sc, srv, key):
    by_run = {}
    for d in rows:
        if d["scenario"] == sc and key in d and d.get("rc") == "0":
            try:
                by_run.setdefault(d["run"], {})[d["server"]] = float(d[key])
            except ValueError:
                pass
    return med([r[srv] / r["raw"] for r in by_run.values() if srv in r and r.get("raw")])

print("| conns/depth | server | req/s (median) | x raw | same-run x raw | CPU ns/req (median) | x raw | same-run x raw | p50 / p99 us | runs (req/s) | failed runs |")
print("|---|---|---:|---:|---:|---:|---:|---:|---|---|---:|")
for sc in scen:
    raw_rps = med(col(sc, "raw", "rps"))
    raw_cpu = med(col(sc, "raw", "server_cpu_ns_per_req"))
    for srv in servers:
        rps = med(col(sc, srv, "rps"))
        cpu = med(col(sc, srv, "server_cpu_ns_per_req"))
        p50 = med(col(sc, srv, "p50_us"))
        p99 = med(col(sc, srv, "p99_us"))
        fails = sum(1 for d in rows if d["scenario"] == sc and d["server"] == srv and d.get("rc") != "0")
        runs = " ".join("%.0f" % v for v in col(sc, srv, "rps"))
        def f(v, fmt):
            return fmt % v if v is not None else "-"
        print("| %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s | %d |" % (
            sc, srv, f(rps, "%.0f"),
            f(rps / raw_rps if rps and raw_rps else None, "%.2f"),
            f(same_run_ratio(sc, srv, "rps"), "%.2f"),
            f(cpu, "%.0f"),
            f(cpu / raw_cpu if cpu and raw_cpu else None, "%.2f"),
            f(same_run_ratio(sc, srv, "server_cpu_ns_per_req"), "%.2f"),
            f(p50, "%.1f"), f(p99, "%.1f"), runs, fails))
EOF
exit $status
