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

# shellcheck source=certs.sh
. "$(dirname "$0")/certs.sh"
ca kubestitch-otlp-ca
# The gateways serve under their Service's name (the sharded agents and
# gateways dial pod IPs and check this name: server_name_override).
cert gateway "$service.$gateway_ns.svc" \
  "subjectAltName=DNS:$service.$gateway_ns.svc,DNS:$service.$gateway_ns.svc.cluster.local\nextendedKeyUsage=serverAuth,clientAuth\n"
cert agent "kubestitch-agent" "extendedKeyUsage=clientAuth\n"

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
