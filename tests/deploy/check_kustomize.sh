#!/usr/bin/env bash
# Renders the Kustomize base and checks the properties deploy/README.md promises: one replica
# with the Recreate strategy (SQLite has a single writer), the hardened security context, native
# probes, TLS, the mounts, and no Secret in the output (the password Secret is created apart).
#
# usage: check_kustomize.sh KUBECTL BASE_DIR
set -euo pipefail
kubectl=$1
base=$2

out=$("$kubectl" kustomize "$base")

status=0
expect() {  # expect DESCRIPTION EXTENDED_REGEX: the rendered output must contain a matching line
  if ! grep -Eq -- "$2" <<<"$out"; then
    echo "check_kustomize: missing $1 (/$2/)" >&2
    status=1
  fi
}
expect "Deployment" '^kind: Deployment$'
expect "Service" '^kind: Service$'
expect "ConfigMap" '^kind: ConfigMap$'
expect "PersistentVolumeClaim" '^kind: PersistentVolumeClaim$'
expect "ServiceAccount" '^kind: ServiceAccount$'
expect "NetworkPolicy" '^kind: NetworkPolicy$'
expect "1 replica" '^  replicas: 1$'
expect "Recreate strategy" '^    type: Recreate$'
expect "runAsNonRoot" 'runAsNonRoot: true'
expect "uid 10001" 'runAsUser: 10001'
expect "read-only root" 'readOnlyRootFilesystem: true'
expect "no privilege escalation" 'allowPrivilegeEscalation: false'
expect "drop ALL" '^ *- ALL$'
expect "seccomp RuntimeDefault" 'type: RuntimeDefault'
expect "liveness probe" 'path: /healthz$'
expect "readiness probe" 'path: /readyz$'
expect "TLS secret mount" 'mountPath: /run/secrets/drgate-tls$'
expect "gRPC TLS in the config" 'cert_file: /run/secrets/drgate-tls/tls.crt'
expect "config mount" 'mountPath: /etc/drgate$'
expect "secret mount" 'mountPath: /run/secrets/drgate$'
expect "registry mount" 'mountPath: /var/lib/drgate$'
expect "tmp mount" 'mountPath: /tmp$'
expect "args" '- /etc/drgate/drgate.yaml$'
expect "grpc port" 'port: 50051$'
expect "metrics port" 'port: 9464$'
expect "https port" 'port: 8443$'
expect "scrape annotation" 'prometheus.io/scrape: "true"'
expect "no service account token" 'automountServiceAccountToken: false'
expect "registry path in the config" 'path: /var/lib/drgate/drgate.db'
expect "password file in the config" 'password_file: /run/secrets/drgate/password'
expect "caller tokens in the config" "tokens_file: /run/secrets/drgate/tokens.yaml"
if grep -Eq '^kind: Secret$' <<<"$out"; then
  echo "check_kustomize: the base renders a Secret: credentials must not be part of it" >&2
  status=1
fi
if ((status == 0)); then
  echo "check_kustomize: $(grep -c '^kind:' <<<"$out") objects rendered, all checks passed"
fi
exit $status
