#!/bin/sh
# callgrind.sh: user-space instructions per request of a notification server, the
# noise-free figure (wall-clock and CPU time on a shared 2-core VM vary by 10% or more).
#
#   t/bench/callgrind.sh [NAME=COMMAND | NAME] ...
#
# NAME is ours ($BUILD/bin/notif-server), raw, libevent or libuv ($BUILD/bench/server_*);
# NAME=COMMAND is any server of protocol.md ("--port N --interval 1000" is appended).
# Default: raw libevent libuv, and ours when built.
#
# Method: for each scenario C/P, the server runs under valgrind --tool=callgrind twice:
# once while loadgen sends N1 requests, once for N2 (same connections, same start-up and
# shutdown); instructions per request = (Ir(N2) - Ir(N1)) / (N2 - N1), so start-up,
# connection set-up and exit cancel out. Ir counts user-space instructions of the server
# process (program and libraries), not the kernel's. The long notification interval keeps
# timer work out of the count.
#
# Environment: SCENARIOS ("1/1 50/16"), N1_1 / N2_1 (requests at depth 1: 5000 / 25000),
# N1_P / N2_P (pipelined: 50000 / 250000), BUILD (build), REQUEST (random?),
# SERVER_ARGS (appended to every server command, e.g. "--tls-cert F --tls-key K"),
# LOADGEN_ARGS (given to loadgen, e.g. "--tls", or "--tls --handshakes": then N counts
# connect-handshake-request-close cycles), UNIT (the table's unit: request).
# t/bench/compare_tls.sh runs it that way for the TLS servers.
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
SCENARIOS=${SCENARIOS:-"1/1 50/16"}
N1_1=${N1_1:-5000}
N2_1=${N2_1:-25000}
N1_P=${N1_P:-50000}
N2_P=${N2_P:-250000}
REQUEST=${REQUEST:-random?}
SERVER_ARGS=${SERVER_ARGS:-}
LOADGEN_ARGS=${LOADGEN_ARGS:-}
UNIT=${UNIT:-request}
LOADGEN=$BUILD/bench/loadgen
PY=/usr/bin/python3
TMP=$(mktemp -d "${TMPDIR:-/tmp}/callgrind.XXXXXX") || exit 1
SRV=
cleanup() {
	[ -n "$SRV" ] && kill "$SRV" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

command -v valgrind >/dev/null 2>&1 || { echo "callgrind: valgrind not installed" >&2; exit 2; }
[ -x "$LOADGEN" ] || { echo "callgrind: $LOADGEN not built (make bench)" >&2; exit 2; }

known_cmd() {
	case $1 in
	ours) echo "$BUILD/bin/notif-server" ;;
	raw | libevent | libuv) echo "$BUILD/bench/server_$1" ;;
	*) return 1 ;;
	esac
}

if [ $# -eq 0 ]; then
	set -- raw libevent libuv
	[ -x "$BUILD/bin/notif-server" ] && set -- ours "$@"
fi

free_port() {
	"$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() { # port pid (bounded: 60 s, valgrind starts slowly)
	i=0
	while [ $i -lt 600 ]; do
		"$PY" -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),0.5).close()' "$1" 2>/dev/null && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# One measurement: prints the server's total Ir for N requests at C/P.
measure() { # cmd conns depth n
	port=$(free_port)
	out=$TMP/cg.out
	rm -f "$out"
	# shellcheck disable=SC2086
	valgrind --tool=callgrind --callgrind-out-file="$out" $1 --port "$port" --interval 1000 $SERVER_ARGS \
		>"$TMP/srv.out" 2>"$TMP/srv.err" &
	SRV=$!
	if ! wait_port "$port" "$SRV"; then
		echo "callgrind: server did not start: $1" >&2
		cat "$TMP/srv.err" >&2
		return 1
	fi
	# shellcheck disable=SC2086
	if ! "$LOADGEN" --port "$port" --conns "$2" --depth "$3" --requests "$4" --seconds 600 \
		--request "$REQUEST" --expect $LOADGEN_ARGS >"$TMP/lg.out" 2>&1; then
		echo "callgrind: loadgen failed: $(cat "$TMP/lg.out")" >&2
		kill "$SRV" 2>/dev/null
		wait "$SRV" 2>/dev/null
		SRV=
		return 1
	fi
	kill -INT "$SRV"
	i=0
	while kill -0 "$SRV" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
	if kill -0 "$SRV" 2>/dev/null; then
		kill -TERM "$SRV"
		sleep 2
	fi
	wait "$SRV" 2>/dev/null
	SRV=
	ir=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$out" 2>/dev/null)
	[ -z "$ir" ] && ir=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$out" 2>/dev/null)
	if [ -z "$ir" ]; then
		echo "callgrind: no instruction total for $1 (did it exit cleanly on SIGINT?)" >&2
		return 1
	fi
	echo "$ir"
}

printf '| server | conns/depth | N1 | N2 | Ir(N1) | Ir(N2) | instructions/%s |\n' "$UNIT"
printf '|---|---|---:|---:|---:|---:|---:|\n'
status=0
for arg in "$@"; do
	case $arg in
	*=*) name=${arg%%=*} cmd=${arg#*=} ;;
	*) name=$arg
	   if ! cmd=$(known_cmd "$arg"); then echo "callgrind: unknown server $arg" >&2; exit 2; fi ;;
	esac
	if [ ! -x "${cmd%% *}" ] && ! command -v "${cmd%% *}" >/dev/null 2>&1; then
		echo "callgrind: $name: ${cmd%% *} not found" >&2
		status=1
		continue
	fi
	for sc in $SCENARIOS; do
		conns=${sc%/*} depth=${sc#*/}
		if [ "$depth" -gt 1 ]; then n1=$N1_P n2=$N2_P; else n1=$N1_1 n2=$N2_1; fi
		if ! a=$(measure "$cmd" "$conns" "$depth" "$n1") || ! b=$(measure "$cmd" "$conns" "$depth" "$n2"); then
			status=1
			continue
		fi
		per=$(awk -v a="$a" -v b="$b" -v n1="$n1" -v n2="$n2" 'BEGIN { printf "%.0f", (b - a) / (n2 - n1) }')
		printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$sc" "$n1" "$n2" "$a" "$b" "$per"
	done
done
exit $status
