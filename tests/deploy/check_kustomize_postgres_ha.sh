#!/usr/bin/env bash
# Renders the postgres-ha overlay and checks what it promises (README, "Several replicas on
# PostgreSQL"): three replicas rolled one at a time, a PodDisruptionBudget, the registry in
# PostgreSQL (registry.postgres in the config, its password from a Secret mounted as a file), no
# SQLite volume claim, egress to PostgreSQL, and no Secret in the output.
#
# usage: check_kustomize_postgres_ha.sh KUBECTL OVERLAY_DIR
set -euo pipefail
kubectl=$1
overlay=$2

out=$("$kubectl" kustomize "$overlay")

status=0
expect() {  # expect DESCRIPTION EXTENDED_REGEX: the rendered output must contain a matching line
  if ! grep -Eq -- "$2" <<<"$out"; then
    echo "check_kustomize_postgres_ha: missing $1 (/$2/)" >&2
    status=1
  fi
}
refuse() {  # refuse DESCRIPTION EXTENDED_REGEX: no line may match
  if grep -Eq -- "$2" <<<"$out"; then
    echo "check_kustomize_postgres_ha: unexpected $1 (/$2/)" >&2
    status=1
  fi
}
expect "Deployment" '^kind: Deployment$'
expect "PodDisruptionBudget" '^kind: PodDisruptionBudget$'
expect "PDB keeps two" '^  minAvailable: 2$'
expect "3 replicas" '^  replicas: 3$'
expect "RollingUpdate strategy" '^    type: RollingUpdate$'
expect "postgres registry in the config" '^      postgres:$'
expect "dsn in the config" '^        dsn: "host='
expect "registry password file in the config" 'password_file: /run/secrets/drgate-registry/password'
expect "registry secret mount" 'mountPath: /run/secrets/drgate-registry$'
expect "registry secret volume" 'secretName: drgate-registry$'
expect "CommServe CA kept" '^  commserv-ca.pem: '
expect "egress to PostgreSQL" 'port: 5432$'
expect "readiness probe" 'path: /readyz$'
refuse "SQLite path in the config" 'path: /var/lib/drgate/drgate.db'
refuse "PersistentVolumeClaim" '^kind: PersistentVolumeClaim$'
refuse "claim of the SQLite volume" 'claimName: drgate-registry'
refuse "Recreate strategy" '^    type: Recreate$'
refuse "Secret" '^kind: Secret$'
refuse "password in the DSN" 'dsn: .*password='
if ((status == 0)); then
  echo "check_kustomize_postgres_ha: $(grep -c '^kind:' <<<"$out") objects rendered, all checks passed"
fi
exit $status
