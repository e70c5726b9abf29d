#!/bin/sh
# Interoperability check of the notification protocol: runs a server and a client of it
# against each other on loopback and checks the client's transcript.
#
#   t/interop/run.sh SERVER CLIENT [SERVER CLIENT ...]
#
# SERVER is one of: twisted (t/interop/twisted_server.py), ours ($BUILD/bin/notif-server),
# twisted-tls / ours-tls (the same over TLS, with a certificate made here),
# relay (t/interop/relay_server.sh: our server relaying, through a redis-server, the
# events another instance produces), raw, libevent, libuv ($BUILD/bench/server_*), or a command line (used as given).
# CLIENT is one of: twisted (t/interop/twisted_client.py), ours ($BUILD/bin/notif-client),
# twisted-tls / ours-tls (TLS, verifying the server against the CA made here),
# or a command line. BUILD defaults to "build".
#
# What a server command must accept: --port N --interval SECONDS (appended here).
# What a client command must accept: --host 127.0.0.1 --port N [--notify N] (appended),
# and print:
#   default flow: exactly two lines: the random number (decimal 0..99999), then the ad;
#   --notify 3:   exactly three lines, "random: NUMBER" or "classified: AD" each;
# and exit 0. For each pair both flows are run against one server, then the server is
# stopped with SIGTERM and must exit.
#
# Exit status: 0 every pair passed; 1 some pair failed; 77 every pair was skipped
# (python3-twisted missing where a Twisted side was asked for). Twisted runs with
# /usr/bin/python3 (the python3 on PATH may be a different one without Twisted).
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
PY=${INTEROP_PYTHON:-/usr/bin/python3}
INTERVAL=${INTERVAL:-0.2}
NOTIFY=${NOTIFY:-3}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/interop.XXXXXX") || exit 1
SRV_PID=
cleanup() {
	if [ -n "$SRV_PID" ]; then kill "$SRV_PID" 2>/dev/null; fi
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

if [ $# -eq 0 ] || [ $(($# % 2)) -ne 0 ]; then
	echo "usage: $0 SERVER CLIENT [SERVER CLIENT ...]" >&2
	exit 2
fi

twisted_ok() {
	[ -x "$PY" ] && "$PY" -c 'import twisted' >/dev/null 2>&1
}

# TLS pairs (twisted-tls, ours-tls): a throwaway CA and a certificate for 127.0.0.1.
. t/interop/make_certs.sh
TLS_SERVER_ARGS="--tls-cert $TMP/server.pem --tls-key $TMP/server.key"
TLS_CLIENT_ARGS="--tls --cafile $TMP/ca.pem"

server_cmd() {
	case $1 in
	twisted) echo "$PY t/interop/twisted_server.py" ;;
	twisted-tls) echo "$PY t/interop/twisted_server.py $TLS_SERVER_ARGS" ;;
	ours) echo "$BUILD/bin/notif-server" ;;
	ours-tls) echo "$BUILD/bin/notif-server $TLS_SERVER_ARGS" ;;
	relay) echo "sh t/interop/relay_server.sh" ;;
	raw) echo "$BUILD/bench/server_raw" ;;
	libevent) echo "$BUILD/bench/server_libevent" ;;
	libuv) echo "$BUILD/bench/server_libuv" ;;
	*) echo "$1" ;;
	esac
}

client_cmd() {
	case $1 in
	twisted) echo "$PY t/interop/twisted_client.py" ;;
	twisted-tls) echo "$PY t/interop/twisted_client.py $TLS_CLIENT_ARGS" ;;
	ours) echo "$BUILD/bin/notif-client" ;;
	ours-tls) echo "$BUILD/bin/notif-client $TLS_CLIENT_ARGS" ;;
	*) echo "$1" ;;
	esac
}

free_port() {
	"$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
		echo $((20000 + $$ % 20000))
}

# Does something accept on 127.0.0.1:$1? Python when there is one, else bash's /dev/tcp
# (a fresh machine may have no Python at all; the ours/ours pair must still run).
port_open() {
	if [ -x "$PY" ]; then
		"$PY" -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),0.2).close()' "$1" 2>/dev/null
	else
		timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
	fi
}

# Wait (bounded, 10 s) until something accepts on 127.0.0.1:$1.
wait_port() {
	i=0
	while [ $i -lt 100 ]; do
		if port_open "$1"; then
			return 0
		fi
		if ! kill -0 "$SRV_PID" 2>/dev/null; then return 1; fi
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

check_default() { # file: exactly a number line then an ad line
	awk 'NR==1 && !/^[0-9]+$/ { bad=1 } NR==1 && $0+0 > 99999 { bad=1 }
	     NR==2 && (/^$/ || /^error:/ || /^notif:/) { bad=1 }
	     END { exit (bad || NR != 2) }' "$1"
}

check_notify() { # file: exactly $2 lines of "random: N" / "classified: AD"
	awk -v n="$2" '!/^random: [0-9]+$/ && !/^classified: ./ { bad=1 }
	     /^random: / && substr($0, 9)+0 > 99999 { bad=1 }
	     END { exit (bad || NR != n) }' "$1"
}

passed=0 failed=0 skipped=0
while [ $# -gt 0 ]; do
	sname=$1 cname=$2
	shift 2
	pair="server=$sname client=$cname"
	case "$sname $cname" in
	*-tls*)
		if ! make_certs; then
			echo "FAIL: $pair: cannot make the test certificates (openssl command)"
			failed=$((failed + 1))
			continue
		fi ;;
	esac
	if { [ "${sname%-tls}" = twisted ] || [ "${cname%-tls}" = twisted ]; } && ! twisted_ok; then
		echo "SKIP: python3-twisted not available ($PY cannot import twisted; apt-get install python3-twisted) [$pair]"
		skipped=$((skipped + 1))
		continue
	fi
	if [ "$sname" = relay ] && ! command -v redis-server >/dev/null 2>&1; then
		echo "SKIP: redis-server not installed (sh tools/deps.sh redis-server) [$pair]"
		skipped=$((skipped + 1))
		continue
	fi
	scmd=$(server_cmd "$sname")
	ccmd=$(client_cmd "$cname")
	for exe in "${scmd%% *}" "${ccmd%% *}"; do
		if [ ! -x "$exe" ] && ! command -v "$exe" >/dev/null 2>&1; then
			echo "FAIL: $pair: $exe not found (build it first)"
			failed=$((failed + 1))
			continue 2
		fi
	done
	port=$(free_port)
	# shellcheck disable=SC2086 # the commands are word-split on purpose
	$scmd --port "$port" --interval "$INTERVAL" >"$TMP/server.out" 2>"$TMP/server.err" &
	SRV_PID=$!
	ok=1
	if ! wait_port "$port"; then
		echo "FAIL: $pair: server did not start listening on port $port"
		sed 's/^/  server: /' "$TMP/server.err"
		ok=0
	fi
	if [ $ok = 1 ]; then
		# shellcheck disable=SC2086
		timeout 20 $ccmd --host 127.0.0.1 --port "$port" >"$TMP/default.out" 2>"$TMP/default.err"
		rc=$?
		if [ $rc -ne 0 ] || ! check_default "$TMP/default.out"; then
			echo "FAIL: $pair: default flow (exit $rc)"
			sed 's/^/  stdout: /' "$TMP/default.out"
			sed 's/^/  stderr: /' "$TMP/default.err"
			ok=0
		fi
	fi
	if [ $ok = 1 ]; then
		# shellcheck disable=SC2086
		timeout 30 $ccmd --host 127.0.0.1 --port "$port" --notify "$NOTIFY" >"$TMP/notify.out" 2>"$TMP/notify.err"
		rc=$?
		if [ $rc -ne 0 ] || ! check_notify "$TMP/notify.out" "$NOTIFY"; then
			echo "FAIL: $pair: notify flow (--notify $NOTIFY, exit $rc)"
			sed 's/^/  stdout: /' "$TMP/notify.out"
			sed 's/^/  stderr: /' "$TMP/notify.err"
			ok=0
		fi
	fi
	# The server must still be up, and must stop on SIGTERM within 10 s.
	if ! kill -TERM "$SRV_PID" 2>/dev/null; then
		echo "FAIL: $pair: server died during the run"
		sed 's/^/  server: /' "$TMP/server.err"
		ok=0
	else
		i=0
		while kill -0 "$SRV_PID" 2>/dev/null && [ $i -lt 100 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		if kill -0 "$SRV_PID" 2>/dev/null; then
			echo "FAIL: $pair: server still running 10 s after SIGTERM"
			kill -KILL "$SRV_PID" 2>/dev/null
			ok=0
		fi
	fi
	wait "$SRV_PID" 2>/dev/null
	SRV_PID=
	if [ $ok = 1 ]; then
		echo "PASS: $pair: default flow ($(tr '\n' '|' <"$TMP/default.out")) and --notify $NOTIFY"
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
	fi
done

echo "interop: $passed passed, $failed failed, $skipped skipped"
if [ $failed -gt 0 ]; then exit 1; fi
if [ $passed -eq 0 ] && [ $skipped -gt 0 ]; then exit 77; fi
exit 0
