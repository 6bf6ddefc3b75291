#!/usr/bin/env bash
# Self-signed TLS for the sealgate admission webhook, for clusters without
# cert-manager: makes a CA and a serving certificate for the webhook
# Service with openssl, stores them as the TLS Secret the Deployment mounts,
# and puts the CA into the ValidatingWebhookConfiguration's caBundle.
#
# Usage: deploy/webhook/bootstrap-tls.sh        (after kubectl apply -k deploy/webhook)
# Environment (defaults in brackets):
#   NAMESPACE [sealgate-system]  SERVICE [sealgate-webhook]
#   SECRET [sealgate-webhook-tls]  WEBHOOK [sealgate-gate]  DAYS [365]
#   KUBECTL [kubectl]  OUT_DIR (keep ca.crt/tls.crt/tls.key there; default: a
#   temporary directory that is removed; the CA key is never kept)
#
# Re-running rotates: a new CA and certificate. The previous CA stays in
# the caBundle next to the new one, so the apiserver keeps trusting the
# running pods until they re-read the Secret (within --tls-reload-interval).
set -euo pipefail

NAMESPACE=${NAMESPACE:-sealgate-system}
SERVICE=${SERVICE:-sealgate-webhook}
SECRET=${SECRET:-sealgate-webhook-tls}
WEBHOOK=${WEBHOOK:-sealgate-gate}
DAYS=${DAYS:-365}
KUBECTL=${KUBECTL:-kubectl}

command -v openssl >/dev/null || { echo "bootstrap-tls: openssl not found" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
umask 077

host="$SERVICE.$NAMESPACE.svc"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout "$work/ca.key" -out "$work/ca.crt" -days "$DAYS" \
  -subj "/CN=sealgate-webhook-ca" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout "$work/tls.key" -out "$work/tls.csr" -subj "/CN=$host" 2>/dev/null
cat > "$work/ext.cnf" <<EXT
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:$SERVICE,DNS:$SERVICE.$NAMESPACE,DNS:$host,DNS:$host.cluster.local
EXT
openssl x509 -req -in "$work/tls.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
  -CAcreateserial -days "$DAYS" -extfile "$work/ext.cnf" -out "$work/tls.crt" 2>/dev/null
openssl verify -CAfile "$work/ca.crt" "$work/tls.crt" >/dev/null

# The Secret lives in sealgate-system, which the webhook's namespaceSelector
# excludes: the webhook never reviews its own key.
"$KUBECTL" -n "$NAMESPACE" create secret tls "$SECRET" \
  --cert="$work/tls.crt" --key="$work/tls.key" --dry-run=client -o yaml |
  "$KUBECTL" apply --server-side --field-manager=sealgate-bootstrap --force-conflicts -f -

# New CA first, then the previous one (only the most recent), so rotation
# has no window in which the apiserver distrusts the serving pods.
bundle="$work/bundle.pem"
cp "$work/ca.crt" "$bundle"
old=$("$KUBECTL" get validatingwebhookconfiguration "$WEBHOOK" \
  -o jsonpath='{.webhooks[0].clientConfig.caBundle}' 2>/dev/null || true)
if [ -n "$old" ]; then
  printf '%s' "$old" | base64 -d 2>/dev/null |
    awk '/-----BEGIN CERTIFICATE-----/{n++} n==1' >> "$bundle" || true
fi
ca_b64=$(base64 < "$bundle" | tr -d '\n')

count=$("$KUBECTL" get validatingwebhookconfiguration "$WEBHOOK" \
  -o jsonpath='{range .webhooks[*]}x{end}' | tr -d '\n' | wc -c)
if [ "$count" -eq 0 ]; then
  echo "bootstrap-tls: ValidatingWebhookConfiguration $WEBHOOK not found; apply deploy/webhook first" >&2
  exit 1
fi
ops=""
for i in $(seq 0 $((count - 1))); do
  ops="$ops{\"op\":\"add\",\"path\":\"/webhooks/$i/clientConfig/caBundle\",\"value\":\"$ca_b64\"},"
done
"$KUBECTL" patch validatingwebhookconfiguration "$WEBHOOK" --type=json -p "[${ops%,}]"

if [ -n "${OUT_DIR:-}" ]; then
  mkdir -p "$OUT_DIR"
  cp "$work/ca.crt" "$work/tls.crt" "$work/tls.key" "$OUT_DIR/"
fi
echo "bootstrap-tls: $NAMESPACE/$SECRET holds a certificate for $host (valid $DAYS days); caBundle of $WEBHOOK updated"
