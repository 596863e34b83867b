#!/usr/bin/env bash
# Makes the certificates of OTLP between the agents and the gateways (and
# between gateways, sharded): a CA, the gateways' certificate (serving,
# and client for gateway -> gateway) and the agents' client certificate,
# with openssl. Prints the two Secrets:
#
#   deploy/tls.sh | kubectl apply -f -
#
# kubestitch-gateway-tls (in the gateway's namespace) and
# kubestitch-agent-tls (in the agents'), each with ca.crt, tls.crt and
# tls.key. The gateway takes OTLP only from a client certificate of this
# CA; the agents check the gateway's against it. The CA's key is made in a
# temp dir that is removed on exit: it signs these two and is gone, so
# nothing in the cluster can mint another client. Re-run before the
# certificates expire (KUBESTITCH_CERT_DAYS, 365 by default): each run
# makes a new CA, which the collectors' exporters read only at start, so
# apply both Secrets together and restart the gateways and the agents
# (deploy/README.md, Trust: mutual TLS).
set -euo pipefail
gateway_ns="${KUBESTITCH_NAMESPACE:-kubestitch}"
agent_ns="${KUBESTITCH_AGENT_NAMESPACE:-kubestitch-node}"
service="${KUBESTITCH_SERVICE:-kubestitch-gateway}"
days="${KUBESTITCH_CERT_DAYS:-365}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out "$1" 2>/dev/null; }
key "$tmp/ca.key"
openssl req -x509 -new -key "$tmp/ca.key" -out "$tmp/ca.crt" -days "$days" \
  -subj "/CN=kubestitch-otlp-ca" >/dev/null 2>&1
# cert NAME CN EXTENSIONS: a certificate signed by the CA.
cert() {
  key "$tmp/$1.key"
  openssl req -new -key "$tmp/$1.key" -out "$tmp/$1.csr" -subj "/CN=$2" >/dev/null 2>&1
  printf '%b' "$3" >"$tmp/$1.ext"
  openssl x509 -req -in "$tmp/$1.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" -CAcreateserial \
    -out "$tmp/$1.crt" -days "$days" -extfile "$tmp/$1.ext" >/dev/null 2>&1
}
# The gateways serve under their Service's name (the sharded agents and
# gateways dial pod IPs and check this name: server_name_override).
cert gateway "$service.$gateway_ns.svc" \
  "subjectAltName=DNS:$service.$gateway_ns.svc,DNS:$service.$gateway_ns.svc.cluster.local\nextendedKeyUsage=serverAuth,clientAuth\n"
cert agent "kubestitch-agent" "extendedKeyUsage=clientAuth\n"

b64() { base64 <"$1" | tr -d '\n'; }
secret() { # NAME NAMESPACE CERT
  cat <<YAML
apiVersion: v1
kind: Secret
metadata:
  name: $1
  namespace: $2
  labels: {app.kubernetes.io/name: kubestitch}
type: kubernetes.io/tls
data:
  ca.crt: $(b64 "$tmp/ca.crt")
  tls.crt: $(b64 "$tmp/$3.crt")
  tls.key: $(b64 "$tmp/$3.key")
---
YAML
}
secret kubestitch-gateway-tls "$gateway_ns" gateway
secret kubestitch-agent-tls "$agent_ns" agent
