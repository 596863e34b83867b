# Sourced by tls.sh and components/admission/self-signed.sh, not run on
# its own: a CA and the certificates it signs, with openssl, in "$tmp"
# (the caller's temp dir, removed on exit), valid "$days" days.

# key FILE: an ECDSA P-256 private key.
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out "$1" 2>/dev/null; }

# ca CN: "$tmp/ca.key" and the self-signed "$tmp/ca.crt".
ca() {
  key "$tmp/ca.key"
  openssl req -x509 -new -key "$tmp/ca.key" -out "$tmp/ca.crt" -days "$days" \
    -subj "/CN=$1" >/dev/null 2>&1
}

# cert NAME CN EXTENSIONS: "$tmp/NAME.key" and "$tmp/NAME.crt", signed by
# the CA; EXTENSIONS are openssl extension lines (printf %b: \n between).
cert() {
  key "$tmp/$1.key"
  openssl req -new -key "$tmp/$1.key" -out "$tmp/$1.csr" -subj "/CN=$2" >/dev/null 2>&1
  printf '%b' "$3" >"$tmp/$1.ext"
  openssl x509 -req -in "$tmp/$1.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" -CAcreateserial \
    -out "$tmp/$1.crt" -days "$days" -extfile "$tmp/$1.ext" >/dev/null 2>&1
}

# b64 FILE: the file in base64, one line.
b64() { base64 <"$1" | tr -d '\n'; }
