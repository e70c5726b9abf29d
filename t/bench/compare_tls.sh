#!/bin/sh
# compare_tls.sh: the notification servers over TLS, side by side in one run, as ratios to
# the hand-written OpenSSL-over-epoll server (t/bench/server_raw_tls.c).
#
#   t/bench/compare_tls.sh [NAME=COMMAND | NAME ...]
#
# NAME is ours ($BUILD/bin/notif-server), raw ($BUILD/bench/server_raw_tls) or libevent
# ($BUILD/bench/server_libevent_tls: bufferevent_openssl); NAME=COMMAND is any TLS server
# of protocol.md. Default: ours raw libevent, those that are built ("raw" is always in:
# ratios are to it). Every command gets "--port N --interval 1000 --tls-cert FILE
# --tls-key FILE" appended.
#
# The certificates are made at run time with the openssl command in a temporary
# directory (removed at the end): a throwaway CA and a server certificate for 127.0.0.1
# and localhost signed by it. KEY=ec (default: ECDSA P-256) or KEY=rsa (RSA 2048). No
# private key is ever written anywhere else.
#
# What is measured (PARTS, default "rps hs mem"; add "cg" for callgrind):
#   rps  requests/s and server CPU per request at SCENARIOS ("1/1 50/16": connections /
#        requests in flight each), one TLS handshake per connection before the clock starts;
#   hs   full handshakes per second and server CPU per handshake: for each N in HS_CONNS
#        ("1 8"), N connections each connect, handshake, send one request, read the
#        answer, send close_notify, close, and start over (loadgen --handshakes; no
#        session resumption). 1 connection shows the latency of one cycle (a delayed
#        ACK or a missed wake-up costs 40 ms there), 8 the throughput;
#   mem  bytes per idle TLS connection: a FRESH server per measurement, one warm-up
#        connection of 100 requests, VmRSS; then IDLE_CONNS (10,000) connections held
#        open, each through its handshake and one answered request (loadgen --hold),
#        VmRSS again; (after - before) / IDLE_CONNS. MEM_RUNS (3) times, interleaved;
#   cg   user-space instructions per request (1/1 and 50/16) and per handshake, under
#        valgrind --tool=callgrind (t/bench/callgrind.sh with LOADGEN_ARGS/SERVER_ARGS):
#        exact, independent of the machine's load.
# rps and hs: every server runs pinned to CPU $SERVER_CPU (1), loadgen to $LOADGEN_CPU
# (0); each of $RUNS (5) runs measures every server once, in turn, for $SECONDS_PER_RUN
# (3); the tables give medians and the median of each run's own ratio ("same-run").
#
# Environment: RUNS, SECONDS_PER_RUN, SCENARIOS, HS_CONNS, HS_CG_CONNS (8: the callgrind
# handshake count's connections), IDLE_CONNS, MEM_RUNS, PARTS,
# KEY, VERIFY (0: loadgen does not verify the server; 1: against the CA, with the IP
# checked), BUILD (build), PIN (1), OUT (keep the raw result lines in this file).
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
RUNS=${RUNS:-5}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-3}
SCENARIOS=${SCENARIOS:-"1/1 50/16"}
HS_CONNS=${HS_CONNS:-"1 8"}
IDLE_CONNS=${IDLE_CONNS:-10000}
MEM_RUNS=${MEM_RUNS:-3}
PARTS=${PARTS:-"rps hs mem"}
KEY=${KEY:-ec}
VERIFY=${VERIFY:-0}
SERVER_CPU=${SERVER_CPU:-1}
LOADGEN_CPU=${LOADGEN_CPU:-0}
LOADGEN=$BUILD/bench/loadgen
PY=/usr/bin/python3
TMP=$(mktemp -d "${TMPDIR:-/tmp}/compare_tls.XXXXXX") || exit 1
RESULTS=${OUT:-$TMP/results.txt}
: >"$RESULTS"
PIDS=
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	for p in $PIDS; do wait "$p" 2>/dev/null; done
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

for tool in openssl "$LOADGEN" "$BUILD/bench/server_raw_tls"; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "compare_tls: $tool not found (make bench; openssl is Debian's openssl package)" >&2
		exit 2
	fi
done

# ---- certificates (throwaway, in $TMP) ----
case $KEY in
ec) newkey="-newkey ec -pkeyopt ec_paramgen_curve:P-256" ;;
rsa) newkey="-newkey rsa:2048" ;;
*) echo "compare_tls: KEY must be ec or rsa" >&2; exit 2 ;;
esac
# shellcheck disable=SC2086
if ! openssl req -x509 $newkey -nodes -days 2 -subj /CN=twistc-bench-ca \
	-keyout "$TMP/ca.key" -out "$TMP/ca.pem" >/dev/null 2>&1 ||
   ! openssl req $newkey -nodes -subj /CN=127.0.0.1 \
	-keyout "$TMP/server.key" -out "$TMP/server.csr" >/dev/null 2>&1 ||
   ! printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$TMP/ext.cnf" ||
   ! openssl x509 -req -in "$TMP/server.csr" -CA "$TMP/ca.pem" -CAkey "$TMP/ca.key" \
	-CAcreateserial -days 2 -extfile "$TMP/ext.cnf" -out "$TMP/server.pem" >/dev/null 2>&1; then
	echo "compare_tls: openssl could not make the test certificates" >&2
	exit 2
fi
TLS_ARGS="--tls-cert $TMP/server.pem --tls-key $TMP/server.key"
LG_TLS="--tls"
[ "$VERIFY" = 1 ] && LG_TLS="--tls --tls-ca $TMP/ca.pem"

PIN_S= PIN_L=
if [ "${PIN:-1}" = 0 ]; then
	echo "compare_tls: PIN=0: running unpinned" >&2
elif command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
	PIN_S="taskset -c $SERVER_CPU"
	PIN_L="taskset -c $LOADGEN_CPU"
else
	echo "compare_tls: taskset or a second CPU missing: running unpinned" >&2
fi

known_cmd() {
	case $1 in
	ours) echo "$BUILD/bin/notif-server" ;;
	raw) echo "$BUILD/bench/server_raw_tls" ;;
	libevent) echo "$BUILD/bench/server_libevent_tls" ;;
	*) return 1 ;;
	esac
}

# The server list: lines "name<TAB>command".
if [ $# -eq 0 ]; then
	set -- ours raw libevent
	only_built=1
else
	only_built=0
fi
printf 'raw\t%s\n' "$BUILD/bench/server_raw_tls" >"$TMP/servers"
for arg in "$@"; do
	case $arg in
	*=*) name=${arg%%=*} cmd=${arg#*=} ;;
	*) name=$arg
	   if ! cmd=$(known_cmd "$arg"); then echo "compare_tls: unknown server $arg" >&2; exit 2; fi ;;
	esac
	[ "$name" = raw ] && continue
	exe=${cmd%% *}
	if [ ! -x "$exe" ] && ! command -v "$exe" >/dev/null 2>&1; then
		if [ $only_built = 1 ]; then
			echo "compare_tls: skipping $name ($exe not built)" >&2
			continue
		fi
		echo "compare_tls: $name: $exe not found" >&2
		exit 2
	fi
	printf '%s\t%s\n' "$name" "$cmd" >>"$TMP/servers"
done

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

rss_kb() {
	sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$1/status"
}

# Private copies of the programs: a rebuild in the shared tree during the run (others
# run make) cannot swap or truncate a binary under us.
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

# start NAME CMD: one server on a fresh port, pinned; prints "port pid".
start() {
	port=$(free_port)
	# shellcheck disable=SC2086
	$PIN_S $2 --port "$port" --interval 1000 $TLS_ARGS >"$TMP/$1.out" 2>"$TMP/$1.err" &
	pid=$!
	PIDS="$PIDS $pid"
	if ! wait_port "$port" "$pid"; then
		echo "compare_tls: $1 did not start (does it take --tls-cert/--tls-key?):" >&2
		cat "$TMP/$1.err" >&2
		return 1
	fi
	echo "$port $pid"
}

stop() { # pid
	kill "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}

status=0
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)
: >"$TMP/running"
case " $PARTS " in
*" rps "* | *" hs "*)
	while IFS='	' read -r name cmd; do
		if ! pp=$(start "$name" "$cmd"); then
			[ "$name" = raw ] && exit 1
			status=1
			continue
		fi
		printf '%s\t%s\t%s\n' "$name" "${pp% *}" "${pp#* }" >>"$TMP/running"
	done <"$TMP/servers.copy"
	echo "compare_tls: servers: $(cut -f1 "$TMP/running" | tr '\n' ' ')(KEY=$KEY, VERIFY=$VERIFY)" >&2
	;;
esac

# measure PART LABEL LOADGEN-ARGS...: every running server once per run, RUNS runs.
measure() {
	part=$1 label=$2
	shift 2
	run=1
	while [ $run -le "$RUNS" ]; do
		while IFS='	' read -r name port pid; do
			# shellcheck disable=SC2086
			line=$($PIN_L "$LOADGEN" --port "$port" $LG_TLS --expect --seconds "$SECONDS_PER_RUN" \
				--server-pid "$pid" "$@" 2>"$TMP/lg.err")
			rc=$?
			echo "part=$part server=$name scenario=$label run=$run rc=$rc $line" >>"$RESULTS"
			if [ $rc -ne 0 ]; then
				echo "compare_tls: $name $label run $run: loadgen exit $rc: $(cat "$TMP/lg.err")" >&2
				status=1
			fi
		done <"$TMP/running"
		run=$((run + 1))
	done
	echo "compare_tls: $part $label done" >&2
}

case " $PARTS " in *" rps "*)
	for sc in $SCENARIOS; do
		measure rps "$sc" --conns "${sc%/*}" --depth "${sc#*/}"
	done ;;
esac
case " $PARTS " in *" hs "*)
	for n in $HS_CONNS; do
		measure hs "$n/hs" --conns "$n" --handshakes
	done ;;
esac
while IFS='	' read -r name port pid; do stop "$pid"; done <"$TMP/running"

case " $PARTS " in *" mem "*)
	run=1
	while [ $run -le "$MEM_RUNS" ]; do
		while IFS='	' read -r name cmd; do
			pp=$(start "$name" "$cmd") || { status=1; continue; }
			port=${pp% *} pid=${pp#* }
			# shellcheck disable=SC2086
			"$LOADGEN" --port "$port" $LG_TLS --requests 100 --expect >/dev/null 2>&1
			before=$(rss_kb "$pid")
			# shellcheck disable=SC2086
			$PIN_L "$LOADGEN" --port "$port" $LG_TLS --hold --conns "$IDLE_CONNS" --seconds 300 \
				>"$TMP/hold.out" 2>"$TMP/hold.err" &
			lg=$!
			i=0
			while ! grep -q '^ready' "$TMP/hold.out" && kill -0 "$lg" 2>/dev/null && [ $i -lt 3600 ]; do
				sleep 0.1
				i=$((i + 1))
			done
			sleep 1 # let the server settle (it is another process: nothing to await)
			after=$(rss_kb "$pid")
			ready=$(grep '^ready' "$TMP/hold.out")
			kill "$lg" 2>/dev/null
			wait "$lg" 2>/dev/null
			stop "$pid"
			case $ready in
			"ready conns=$IDLE_CONNS "*"errors=0")
				echo "part=mem server=$name scenario=$IDLE_CONNS/idle run=$run rc=0 rss_before_kb=$before rss_after_kb=$after bytes_per_conn=$(( (after - before) * 1024 / IDLE_CONNS ))" >>"$RESULTS" ;;
			*)
				echo "compare_tls: $name: idle connections not all held: $ready $(cat "$TMP/hold.err")" >&2
				echo "part=mem server=$name scenario=$IDLE_CONNS/idle run=$run rc=1" >>"$RESULTS"
				status=1 ;;
			esac
		done <"$TMP/servers.copy"
		run=$((run + 1))
	done
	echo "compare_tls: mem done" >&2 ;;
esac

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)
"$PY" - "$RESULTS" "$LOAD_START" "$LOAD_END" "$(nproc)" <<'EOF'
import sys, statistics
print("compare_tls: every ratio is (this server) / (server_raw_tls, the hand-written OpenSSL-over-epoll")
print("server) measured in the same run. Higher is better for req/s and handshakes/s, lower for CPU and")
print("bytes. 'x raw (medians)': median of this server / median of raw; 'same-run x raw': median of the")
print("per-run ratios (steadier when the machine's load changes between runs). Load average at start /")
print("end: %s / %s on %s CPUs (wall-clock rates are only comparable on a quiet machine)." % (sys.argv[2], sys.argv[3], sys.argv[4]))
print()
rows = [dict(kv.split("=", 1) for kv in line.split() if "=" in kv) for line in open(sys.argv[1])]
servers, scen = [], []
for d in rows:
    if d["server"] not in servers:
        servers.append(d["server"])
    if (d["part"], d["scenario"]) not in scen:
        scen.append((d["part"], d["scenario"]))

def med(v):
    return statistics.median(v) if v else None

def col(sc, srv, key):
    out = []
    for d in rows:
        if (d["part"], d["scenario"]) == sc and d["server"] == srv and key in d and d.get("rc") == "0":
            out.append(float(d[key]))
    return out

def same_run(sc, srv, key):
    by_run = {}
    for d in rows:
        if (d["part"], d["scenario"]) == sc and key in d and d.get("rc") == "0":
            by_run.setdefault(d["run"], {})[d["server"]] = float(d[key])
    return med([r[srv] / r["raw"] for r in by_run.values() if srv in r and r.get("raw")])

def f(v, fmt):
    return fmt % v if v is not None else "-"

METRICS = {"rps": [("req/s", "rps", "%.0f", 1), ("server CPU ns/req", "server_cpu_ns_per_req", "%.0f", -1)],
           "hs": [("handshakes/s", "hs_per_s", "%.0f", 1), ("server CPU ns/handshake", "server_cpu_ns_per_hs", "%.0f", -1)],
           "mem": [("bytes per idle TLS connection", "bytes_per_conn", "%.0f", -1)]}
ratios = {}
print("| what | scenario | server | median | x raw (medians) | same-run x raw | runs | failed runs |")
print("|---|---|---|---:|---:|---:|---|---:|")
for sc in scen:
    for label, key, fmt, _ in METRICS[sc[0]]:
        raw = med(col(sc, "raw", key))
        for srv in servers:
            v = med(col(sc, srv, key))
            r = v / raw if v is not None and raw else None
            ratios[(label, sc[1], srv)] = (r, same_run(sc, srv, key))
            fails = sum(1 for d in rows if (d["part"], d["scenario"]) == sc and d["server"] == srv and d.get("rc") != "0")
            print("| %s | %s | %s | %s | %s | %s | %s | %d |" % (label, sc[1], srv, f(v, fmt), f(r, "%.2f"),
                  f(same_run(sc, srv, key), "%.2f"), " ".join(fmt % x for x in col(sc, srv, key)), fails))

# The issue's goals, for every server other than raw: ratio of medians / same-run ratio.
GOALS = [("req/s", ">=", 0.95), ("server CPU ns/req", "<=", 1.10), ("handshakes/s", ">=", 0.95),
         ("server CPU ns/handshake", "<=", 1.10), ("bytes per idle TLS connection", "<=", 1.10)]
print()
print("| goal | scenario | " + " | ".join("%s (medians / same-run)" % s for s in servers if s != "raw") + " |")
print("|---|---|" + "---:|" * (len(servers) - 1))
for label, op, lim in GOALS:
    for sc in scen:
        if (label, sc[1], "raw") not in ratios:
            continue
        cells = []
        for srv in servers:
            if srv == "raw":
                continue
            r, s = ratios.get((label, sc[1], srv), (None, None))
            ok = r is not None and (r >= lim if op == ">=" else r <= lim)
            cells.append("%s / %s %s" % (f(r, "%.2f"), f(s, "%.2f"), "met" if ok else "MISSED"))
        print("| %s %s %.2fx raw | %s | %s |" % (label, op, lim, sc[1], " | ".join(cells)))
EOF
case " $PARTS " in *" cg "*)
	echo "compare_tls: callgrind (instructions per request, then per handshake)" >&2
	cg_args=
	while IFS='	' read -r name cmd; do cg_args="$cg_args $name=$cmd"; done <"$TMP/servers.copy"
	# shellcheck disable=SC2086
	LOADGEN_ARGS="$LG_TLS" SERVER_ARGS="$TLS_ARGS" sh t/bench/callgrind.sh $cg_args || status=1
	# shellcheck disable=SC2086
	LOADGEN_ARGS="$LG_TLS --handshakes" SERVER_ARGS="$TLS_ARGS" SCENARIOS=${HS_CG_CONNS:-8}/1 \
		N1_1=${HS_N1:-200} N2_1=${HS_N2:-1000} UNIT=handshake sh t/bench/callgrind.sh $cg_args || status=1 ;;
esac
exit $status
