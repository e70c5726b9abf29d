#!/bin/sh
# make demo: the talk's notification pair, live.
#
#   sh apps/demo.sh [BINDIR]        (BINDIR: build/bin)
#
# Starts notif-server on a free loopback port, runs the talk's flow (a random number,
# then a classified ad), a short notification session, and two of the slide programs
# against it, stops the server with SIGTERM (it flushes, closes every connection and
# prints its summary), then shows the transcript. Every step is bounded in time.
set -u
BIN=${1:-build/bin}
T=$(mktemp -d "${TMPDIR:-/tmp}/twistc-demo.XXXXXX") || exit 1
SRV=
cleanup() {
	if [ -n "$SRV" ] && kill -0 "$SRV" 2>/dev/null; then kill -KILL "$SRV" 2>/dev/null; fi
	rm -rf "$T"
}
trap cleanup EXIT INT TERM

for p in notif-server notif-client talk-coroutine talk-dispatch; do
	if [ ! -x "$BIN/$p" ]; then
		echo "demo: $BIN/$p is missing (run make first)" >&2
		exit 1
	fi
done
# timeout(1) where there is one, so that nothing can hang the demo
if command -v timeout >/dev/null 2>&1; then TO="timeout 20"; else TO=; fi

LOG=$T/transcript
say() { printf '%s\n' "$*" | tee -a "$LOG"; }
run() { # run CMD...: show it, run it bounded, keep its output in the transcript
	say "\$ $*"
	# shellcheck disable=SC2086
	$TO "$@" >"$T/out" 2>&1
	rc=$?
	sed 's/^/  /' "$T/out" | tee -a "$LOG"
	[ $rc -eq 0 ] || say "  (exit status $rc)"
	return $rc
}

say "== twistc demo: the talk's notification server and client =="
"$BIN/notif-server" --port 0 --interval 0.3 >"$T/server.out" 2>"$T/server.err" &
SRV=$!
port=
i=0
while [ $i -lt 100 ]; do # at most 10 s
	port=$(sed -n 's/^listening on [0-9a-f.:]*:\([0-9][0-9]*\).*/\1/p' "$T/server.out" | head -n 1)
	[ -n "$port" ] && break
	kill -0 "$SRV" 2>/dev/null || break
	sleep 0.1
	i=$((i + 1))
done
if [ -z "$port" ]; then
	echo "demo: the server did not start" >&2
	cat "$T/server.err" >&2
	exit 1
fi
say "\$ notif-server --port 0 --interval 0.3 &"
sed 's/^/  /' "$T/server.out" | tee -a "$LOG"

fail=0
say ""
say "-- the talk's flow: a random number, then a classified ad"
run "$BIN/notif-client" --port "$port" || fail=1
say ""
say "-- notification mode: on each notification, stop, ask, print, notify again"
run "$BIN/notif-client" --port "$port" --notify 3 || fail=1
say ""
say "-- the inlineCallbacks slide, in C (apps/talk-coroutine.c)"
run "$BIN/talk-coroutine" "$port" || fail=1
say ""
say "-- the random_available / classified_available slide (apps/talk-dispatch.c)"
run "$BIN/talk-dispatch" "$port" 2 || fail=1

say ""
say "-- SIGTERM: the server answers what it owes, closes every connection, sums up"
kill -TERM "$SRV" 2>/dev/null
i=0
while kill -0 "$SRV" 2>/dev/null && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
if kill -0 "$SRV" 2>/dev/null; then
	say "  the server did not stop within 10 s"
	fail=1
else
	wait "$SRV"
	rc=$?
	[ $rc -eq 0 ] || { say "  server exit status $rc"; fail=1; }
fi
SRV=
sed -n '2,$p' "$T/server.out" | sed 's/^/  /' | tee -a "$LOG"
if [ -s "$T/server.err" ]; then sed 's/^/  server stderr: /' "$T/server.err" | tee -a "$LOG"; fi

say ""
if [ $fail -eq 0 ]; then
	say "== demo ok ($(grep -c '^\$' "$LOG") commands; docs/demo.md explains what happened)"
else
	say "== demo FAILED"
fi
exit $fail
