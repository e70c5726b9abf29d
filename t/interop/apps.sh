#!/bin/sh
# The notification programs' own edge cases, run by `make check` after the interop pairs:
#   - notif-server honours REACTOR_BACKEND when --backend is not given (like reactor_new),
#     and refuses an unknown name, from the environment or from --backend;
#   - notif-client exits 0 when the server resets the connection after `quit` (every
#     answer was printed), and prints an answer holding a NUL byte whole;
#   - kv-client, the key-value client pattern shown in docs/protocols.md, against
#     kv-server;
#   - smtp-send against aiosmtpd, in clear and with STARTTLS.
# The client cases need /usr/bin/python3 (plain sockets, no Twisted) for the misbehaving
# server; without it they are skipped, with the reason. Every wait is bounded.
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
PY=${INTEROP_PYTHON:-/usr/bin/python3}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/apps.XXXXXX") || exit 1
PIDS=
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
fails=0
pass() { echo "PASS: apps: $1"; }
fail() { echo "FAIL: apps: $1"; fails=$((fails + 1)); }

# Waits (bounded, 10 s) until file $1 holds a line matching $2.
wait_for() {
	i=0
	while [ $i -lt 100 ]; do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# 1. REACTOR_BACKEND chooses the server's backend (the trace names it on every poll).
for be in poll select; do
	REACTOR_BACKEND=$be "$BUILD/bin/notif-server" --port 0 --trace >"$TMP/out" 2>"$TMP/err" &
	pid=$!
	PIDS="$PIDS $pid"
	if wait_for "$TMP/out" '^listening on' && wait_for "$TMP/err" 'phase=poll'; then
		if grep 'phase=poll' "$TMP/err" | grep -qv "backend=$be "; then
			fail "REACTOR_BACKEND=$be: another backend was used"
		else
			pass "REACTOR_BACKEND=$be is used without --backend"
		fi
	else
		fail "REACTOR_BACKEND=$be: the server did not start"
	fi
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
done

# 2. Unknown names are errors (exit 2, one message), from the environment or the option.
REACTOR_BACKEND=bogus timeout 10 "$BUILD/bin/notif-server" --port 0 >"$TMP/out" 2>"$TMP/err"
rc=$?
if [ $rc -eq 2 ] && grep -q "REACTOR_BACKEND: 'bogus' is not available" "$TMP/err"; then
	pass "REACTOR_BACKEND=bogus is refused"
else
	fail "REACTOR_BACKEND=bogus: exit $rc, stderr: $(cat "$TMP/err")"
fi
timeout 10 "$BUILD/bin/notif-server" --port 0 --backend bogus >"$TMP/out" 2>"$TMP/err"
rc=$?
if [ $rc -eq 2 ] && grep -q "'bogus' is not available" "$TMP/err"; then
	pass "--backend bogus is refused"
else
	fail "--backend bogus: exit $rc, stderr: $(cat "$TMP/err")"
fi

# 3. The client against a server that resets after quit and sends a NUL in an answer.
if [ -x "$PY" ]; then
	"$PY" t/interop/fake_notif_server.py >"$TMP/port" 2>"$TMP/srv_err" &
	pid=$!
	PIDS="$PIDS $pid"
	if wait_for "$TMP/port" '^port '; then
		port=$(sed -n 's/^port //p' "$TMP/port")
		timeout 10 "$BUILD/bin/notif-client" --port "$port" >"$TMP/cout" 2>"$TMP/cerr"
		rc=$?
		printf '7\nad with a \000 inside\n' >"$TMP/want"
		if [ $rc -eq 0 ]; then
			pass "notif-client exits 0 when the server resets after quit"
		else
			fail "notif-client: exit $rc after a reset following quit: $(cat "$TMP/cerr")"
		fi
		if cmp -s "$TMP/want" "$TMP/cout"; then
			pass "notif-client prints the answers, one with a NUL byte, whole"
		else
			fail "notif-client output differs: $(od -c "$TMP/cout" | head -3)"
		fi
	else
		fail "the fake server did not start: $(cat "$TMP/srv_err")"
	fi
	wait "$pid" 2>/dev/null
else
	echo "SKIP: apps: notif-client edge cases need $PY (not found)"
fi

# 4. The key-value pair of docs/protocols.md: the client pattern runs as documented.
"$BUILD/bin/kv-server" 0 >"$TMP/kvout" 2>"$TMP/kverr" &
pid=$!
PIDS="$PIDS $pid"
if wait_for "$TMP/kvout" '^listening on'; then
	port=$(sed -n 's/^listening on 127.0.0.1://p' "$TMP/kvout")
	out=$(timeout 10 "$BUILD/bin/kv-client" "$port" "set a 1" "set b two words" "get a" \
		"get b" "get c" "bogus" 2>&1)
	rc=$?
	want=$(printf 'OK\nOK\n1\ntwo words\n(nil)\nerror: unknown command')
	if [ $rc -eq 0 ] && [ "$out" = "$want" ]; then
		pass "kv-client against kv-server"
	else
		fail "kv-client: exit $rc, output: $out"
	fi
	timeout 10 "$BUILD/bin/kv-client" 1 "get a" >/dev/null 2>"$TMP/kcerr"
	rc=$?
	if [ $rc -eq 1 ] && grep -q "refused" "$TMP/kcerr"; then
		pass "kv-client reports a refused connection"
	else
		fail "kv-client to a closed port: exit $rc, $(cat "$TMP/kcerr")"
	fi
else
	fail "kv-server did not start: $(cat "$TMP/kverr")"
fi
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null

# 5. smtp-send against aiosmtpd (t/smtp_peer.py): delivered in clear and over STARTTLS
#    (exit 0, a refused recipient printed with the server's words), all refused (exit 1,
#    the server's words on one line).
. t/interop/make_certs.sh
if [ -x "$PY" ] && "$PY" -c 'import aiosmtpd' >/dev/null 2>&1 && make_certs; then
	# stdin not a pipe: the peer runs until cleanup kills it.
	"$PY" t/smtp_peer.py --tls-cert "$TMP/server.pem" --tls-key "$TMP/server.key" \
		--refuse reject@y.org --out "$TMP/smtp.json" </dev/null >"$TMP/smtpport" 2>"$TMP/smtperr" &
	PIDS="$PIDS $!"
	if wait_for "$TMP/smtpport" '^PORT'; then
		port=$(sed -n 's/^PORT //p' "$TMP/smtpport")
		for mode in clear starttls; do
			opts=
			[ $mode = starttls ] && opts="--starttls --cafile $TMP/ca.pem"
			out=$(printf 'Subject: %s\n\n.dot\n' "$mode" | timeout 20 "$BUILD/bin/smtp-send" \
				--host 127.0.0.1 --port "$port" --from me@x.org --to ann@y.org \
				--to reject@y.org $opts 2>&1)
			rc=$?
			tls=false
			[ $mode = starttls ] && tls=true
			if [ $rc -eq 0 ] && [ "$out" = "refused reject@y.org: 550 5.1.1 no such user here" ] &&
				grep "Subject: $mode" "$TMP/smtp.json" | grep -q "\"tls\": $tls"; then
				pass "smtp-send delivers to aiosmtpd ($mode)"
			else
				fail "smtp-send ($mode): exit $rc, output: $out"
			fi
		done
		out=$(printf 'x\n' | timeout 20 "$BUILD/bin/smtp-send" --host 127.0.0.1 --port "$port" \
			--from me@x.org --to reject@y.org 2>&1)
		rc=$?
		if [ $rc -eq 1 ] && [ "$out" = "smtp-send: RCPT TO <reject@y.org>: 550 5.1.1 no such user here (every recipient was refused)" ]; then
			pass "smtp-send: every recipient refused"
		else
			fail "smtp-send, all refused: exit $rc, output: $out"
		fi
	else
		fail "t/smtp_peer.py did not start: $(cat "$TMP/smtperr")"
	fi
else
	echo "SKIP: apps: smtp-send needs $PY with aiosmtpd (python3-aiosmtpd) and openssl"
fi

echo "apps: $fails failed"
[ $fails -eq 0 ]
