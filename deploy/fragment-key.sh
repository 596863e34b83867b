#!/usr/bin/env bash
# Makes the fragment key: 32 random bytes, base64, as the Secret
# kubestitch-fragment-key in the gateway's namespace and in the agents'.
# k8s_watch signs every fragment with it and k8s_stitch takes only signed
# ones (deploy/README.md, Trust). Prints the two Secrets:
#
#   deploy/fragment-key.sh | kubectl apply -f -
#
# Re-running makes a new key: apply it, then restart the agents and the
# gateways (until all have it, fragments signed with the old key are
# taken as app spans and counted in otelcol_k8sstitch_fragments_unverified).
set -euo pipefail
gateway_ns="${KUBESTITCH_NAMESPACE:-kubestitch}"
agent_ns="${KUBESTITCH_AGENT_NAMESPACE:-kubestitch-node}"
key="$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
data="$(printf '%s' "$key" | base64 | tr -d '\n')"
for ns in "$gateway_ns" "$agent_ns"; do
  cat <<YAML
apiVersion: v1
kind: Secret
metadata:
  name: kubestitch-fragment-key
  namespace: $ns
  labels: {app.kubernetes.io/name: kubestitch}
type: Opaque
data:
  key: $data
---
YAML
done
