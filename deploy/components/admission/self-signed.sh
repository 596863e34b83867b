#!/usr/bin/env bash
# Without cert-manager: makes a CA, a serving certificate for the gateway's
# Service and kube-apiserver's client certificate with openssl. Prints the
# Secret kubestitch-webhook-tls (tls.crt, tls.key, and ca.crt, which the
# receiver checks kube-apiserver's certificate against) and the
# ValidatingWebhookConfiguration with the CA in its caBundle:
#
#   deploy/components/admission/self-signed.sh | kubectl apply -f -
#
# and writes kube-apiserver's side into KUBESTITCH_APISERVER_DIR
# (./kubestitch-apiserver by default): webhook-kubeconfig.yaml (the client
# certificate, embedded) and admission-config.yaml, for the control plane's
# /etc/kubernetes/kubestitch/ (README.md). The CA's key is made in a temp
# dir that is removed on exit. Re-run before the certificates expire (1
# year, KUBESTITCH_CERT_DAYS): a run makes a new CA, so install both sides
# and restart kube-apiserver (it reads the kubeconfig at start).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
service="${KUBESTITCH_SERVICE:-kubestitch-gateway}"
namespace="${KUBESTITCH_NAMESPACE:-kubestitch}"
days="${KUBESTITCH_CERT_DAYS:-365}"
apiserver_dir="${KUBESTITCH_APISERVER_DIR:-kubestitch-apiserver}"
apiserver_path="${KUBESTITCH_APISERVER_CONFIG_PATH:-/etc/kubernetes/kubestitch}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# shellcheck source=../../certs.sh
. "$here/../../certs.sh"
ca kubestitch-webhook-ca
# The serving certificate (its CN and tls.crt/tls.key in the Secret), and
# kube-apiserver's client certificate.
cert tls "$service.$namespace.svc" \
  "subjectAltName=DNS:$service.$namespace.svc,DNS:$service.$namespace.svc.cluster.local\nextendedKeyUsage=serverAuth\n"
cert client kube-apiserver-kubestitch-webhook-client "extendedKeyUsage=clientAuth\n"

# kube-apiserver's side: the client certificate for the webhook's host
# (its Service's DNS name; with the port too, which some versions match).
umask 077
mkdir -p "$apiserver_dir"
{
  printf 'apiVersion: v1\nkind: Config\nusers:\n'
  for name in "$service.$namespace.svc" "$service.$namespace.svc:443"; do
    printf -- '- name: "%s"\n  user:\n    client-certificate-data: %s\n    client-key-data: %s\n' \
      "$name" "$(b64 "$tmp/client.crt")" "$(b64 "$tmp/client.key")"
  done
} >"$apiserver_dir/webhook-kubeconfig.yaml"
sed -e "s|/etc/kubernetes/kubestitch/webhook-kubeconfig.yaml|$apiserver_path/webhook-kubeconfig.yaml|" \
  "$here/../../control-plane/admission-config.yaml" >"$apiserver_dir/admission-config.yaml"
echo "self-signed.sh: kube-apiserver's files are in $apiserver_dir (its client key: keep it out of version control): copy them to $apiserver_path on every control-plane node, pass --admission-control-config-file=$apiserver_path/admission-config.yaml and restart kube-apiserver" >&2

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
  ca.crt: $(b64 "$tmp/ca.crt")
---
YAML
# The webhook of this component, with the CA filled in and cert-manager's
# annotation dropped.
sed -e '/cert-manager.io\/inject-ca-from/d' -e '/^  annotations:$/d' \
    -e "s|^    clientConfig:\$|    clientConfig:\n      caBundle: $(b64 "$tmp/ca.crt")|" \
    -e "s|name: kubestitch-gateway\$|name: $service|" -e "s|namespace: kubestitch\$|namespace: $namespace|" \
    "$here/webhook.yaml"
