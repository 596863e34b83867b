#!/usr/bin/env bash
# Without cert-manager: makes a CA and a serving certificate for the
# gateway's Service with openssl, and prints the Secret kubestitch-webhook-tls
# and the ValidatingWebhookConfiguration with the CA in its caBundle:
#
#   deploy/components/admission/self-signed.sh | kubectl apply -f -
#
# The keys are made in a temp dir that is removed on exit; only the
# printed Secret keeps them. Re-run before the certificate expires (1 year).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
service="${KUBESTITCH_SERVICE:-kubestitch-gateway}"
namespace="${KUBESTITCH_NAMESPACE:-kubestitch}"
days="${KUBESTITCH_CERT_DAYS:-365}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$tmp/ca.key" -out "$tmp/ca.crt" -days "$days" \
  -subj "/CN=kubestitch-webhook-ca" >/dev/null 2>&1
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$tmp/tls.key" -out "$tmp/tls.csr" -subj "/CN=$service.$namespace.svc" >/dev/null 2>&1
printf 'subjectAltName=DNS:%s.%s.svc,DNS:%s.%s.svc.cluster.local\nextendedKeyUsage=serverAuth\n' \
  "$service" "$namespace" "$service" "$namespace" >"$tmp/ext"
openssl x509 -req -in "$tmp/tls.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" -CAcreateserial \
  -out "$tmp/tls.crt" -days "$days" -extfile "$tmp/ext" >/dev/null 2>&1

b64() { base64 <"$1" | tr -d '\n'; }
cat <<YAML
apiVersion: v1
kind: Secret
metadata:
  name: kubestitch-webhook-tls
  namespace: $namespace
type: kubernetes.io/tls
data:
  tls.crt: $(b64 "$tmp/tls.crt")
  tls.key: $(b64 "$tmp/tls.key")
---
YAML
# The webhook of this component, with the CA filled in and cert-manager's
# annotation dropped.
sed -e '/cert-manager.io\/inject-ca-from/d' -e '/^  annotations:$/d' \
    -e "s|^    clientConfig:\$|    clientConfig:\n      caBundle: $(b64 "$tmp/ca.crt")|" \
    -e "s|name: kubestitch-gateway\$|name: $service|" -e "s|namespace: kubestitch\$|namespace: $namespace|" \
    "$here/webhook.yaml"
