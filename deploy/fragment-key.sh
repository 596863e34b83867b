#!/usr/bin/env bash
# Makes the fragment key: 32 random bytes, base64, as the Secret
# kubestitch-fragment-key in the gateway's namespace and in the agents'.
# k8s_watch signs every fragment with it and k8s_stitch takes only signed
# ones (deploy/README.md, Trust). Prints the two Secrets:
#
#   deploy/fragment-key.sh | kubectl apply -f -
#
# Re-running makes a new key. To rotate without losing a fragment, pass
# the key in use as KUBESTITCH_PREVIOUS_FRAGMENT_KEY: the Secrets then
# hold it as `previous`, which the gateways accept beside the new key
# while the agents restart (deploy/README.md, Trust).
set -euo pipefail
gateway_ns="${KUBESTITCH_NAMESPACE:-kubestitch}"
agent_ns="${KUBESTITCH_AGENT_NAMESPACE:-kubestitch-node}"
key="$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
data="$(printf '%s' "$key" | base64 | tr -d '\n')"
previous=""
if [ -n "${KUBESTITCH_PREVIOUS_FRAGMENT_KEY:-}" ]; then
  previous="  previous: $(printf '%s' "$KUBESTITCH_PREVIOUS_FRAGMENT_KEY" | base64 | tr -d '\n')"
fi
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
$previous
---
YAML
done
