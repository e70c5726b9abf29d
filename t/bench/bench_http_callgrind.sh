#!/bin/sh
# bench_http_callgrind.sh: user-space instructions per request of the HTTP clients of
# bench_http (twistc's and libcurl's multi interface), the noise-free figure.
#
#   t/bench/bench_http_callgrind.sh [CONC...]        default: 1 50
#   PROTOS="http https" (default) chooses plain and/or TLS.
#
# Method: bench_http --serve runs the server natively; the client runs alone under
# valgrind --tool=callgrind twice per client and concurrency, for N1 and N2 counted
# requests (same warm-up, same connections); instructions per request =
# (Ir(N2) - Ir(N1)) / (N2 - N1), so start-up, connecting and exit cancel out.
# Environment: N1 (2000), N2 (10000), BUILD (build), PROTOS.
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
N1=${N1:-2000}
N2=${N2:-10000}
PROTOS=${PROTOS:-"http https"}
BIN=$BUILD/bench/bench_http
TMP=$(mktemp -d "${TMPDIR:-/tmp}/httpcg.XXXXXX") || exit 1
SRV=
cleanup() {
	[ -n "$SRV" ] && kill "$SRV" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
command -v valgrind >/dev/null 2>&1 || { echo "bench_http_callgrind: valgrind not installed" >&2; exit 2; }
[ -x "$BIN" ] || { echo "bench_http_callgrind: $BIN not built (make bench, needs libcurl)" >&2; exit 2; }
[ $# -eq 0 ] && set -- 1 50

start_server() { # http|https
	[ -n "$SRV" ] && { kill "$SRV"; wait "$SRV" 2>/dev/null; }
	rm -f "$TMP/port"
	if [ "$1" = https ]; then "$BIN" --serve --tls >"$TMP/port" & else "$BIN" --serve --proto http >"$TMP/port" & fi
	SRV=$!
	i=0
	while ! grep -q PORT "$TMP/port" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	port=$(sed -n 's/^PORT //p' "$TMP/port")
	cert=$(sed -n 's/^CERT //p' "$TMP/port")
	[ -n "$port" ] || { echo "bench_http_callgrind: server did not start" >&2; exit 1; }
}

measure() { # proto client conc n
	out=$TMP/cg.out
	rm -f "$out"
	extra=""
	[ "$1" = https ] && extra="--cert $cert"
	# shellcheck disable=SC2086
	valgrind --tool=callgrind --callgrind-out-file="$out" "$BIN" --port "$port" --proto "$1" \
		--only "$2" --conc "$3" --requests "$4" --rounds 1 $extra >"$TMP/out" 2>"$TMP/err" || {
		echo "bench_http_callgrind: $1 $2 failed: $(tail -3 "$TMP/err")" >&2
		return 1
	}
	sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$out"
}

printf '| proto | client | concurrent | N1 | N2 | Ir(N1) | Ir(N2) | instructions/request |\n'
printf '|---|---|---:|---:|---:|---:|---:|---:|\n'
status=0
for proto in $PROTOS; do
	start_server "$proto"
	for conc in "$@"; do
		for client in ours curl; do
			if ! a=$(measure "$proto" $client "$conc" "$N1") || ! b=$(measure "$proto" $client "$conc" "$N2"); then
				status=1
				continue
			fi
			per=$(awk -v a="$a" -v b="$b" -v n1="$N1" -v n2="$N2" 'BEGIN { printf "%.0f", (b - a) / (n2 - n1) }')
			printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$proto" "$client" "$conc" "$N1" "$N2" "$a" "$b" "$per"
		done
	done
done
exit $status
