#!/usr/bin/env bash
# Runbook (a) of the trigger comparison: what an operator's shell script does to start a DR
# backup without drgate. Logs in with curl, then POSTs CommServ/DRBackup with the token; fails
# unless a job id comes back.
# Usage: runbook.sh BASE_URL CA_FILE USERNAME PASSWORD
set -euo pipefail
base=$1 ca=$2 user=$3 password=$4
password64=$(printf '%s' "$password" | base64)
token=$(curl -sS --fail --cacert "$ca" \
  -H 'Accept: application/json' -H 'Content-Type: application/json' \
  -d "{\"username\":\"$user\",\"password\":\"$password64\",\"domain\":\"\",\"deviceId\":\"runbook\",\"timeout\":30}" \
  "$base/Login" | sed -n 's/.*"token" *: *"\([^"]*\)".*/\1/p')
[[ -n $token ]] || { echo "runbook: login failed" >&2; exit 1; }
curl -sS --fail --cacert "$ca" \
  -H 'Accept: application/json' -H 'Content-Type: application/json' -H "Authtoken: $token" \
  -d '{"isCompressionEnabled":false,"jobType":1,"backupType":1}' \
  "$base/CommServ/DRBackup" | grep -q '"jobIds"'
