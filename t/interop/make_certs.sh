# Sourced by the interop scripts: make_certs makes a throwaway CA and a certificate for
# localhost / 127.0.0.1 it signs, in $TMP (ca.pem, server.pem, server.key), with the
# openssl command (no key is committed). Returns non-zero when openssl fails.
make_certs() {
	[ -f "$TMP/server.pem" ] && return 0
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj "/CN=twistc interop CA" -keyout "$TMP/ca.key" -out "$TMP/ca.pem" 2>/dev/null &&
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-subj "/CN=localhost" -keyout "$TMP/server.key" -out "$TMP/server.csr" 2>/dev/null &&
	printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$TMP/san.ext" &&
	openssl x509 -req -in "$TMP/server.csr" -CA "$TMP/ca.pem" -CAkey "$TMP/ca.key" \
		-CAcreateserial -days 2 -extfile "$TMP/san.ext" -out "$TMP/server.pem" 2>/dev/null
}
