#!/usr/bin/env bash
# The demo: builds drgate, drgatectl and commserv-sim (only those three: tools/test.sh builds the
# rest), starts commserv-sim (a CommServe stand-in, over TLS with its own certificate) and drgate
# on free loopback ports, triggers a full DR backup with drgatectl, shows the recorded job and the
# metrics that counted it, then stops both. Each phase is announced on stdout ("== ..."); the
# package installation and the build report their progress on stderr.
# State (the SQLite registry, the simulator's certificate) lives under .state/demo/.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

echo "== setting up: missing Debian packages, then configuring build/ (first run) and building" \
  "drgate drgatectl commserv-sim (a fresh machine: about 2 min of packages, 6 min of build)"
bash tools/build.sh drgate drgatectl commserv-sim >&2

state="$root/.state/demo"
mkdir -p "$state/sim"
# Output of an earlier run must not be mistaken for this run's addresses.
rm -f "$state/sim.out" "$state/drgate.out"
bin="$root/build/bin"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

# Waits for a line matching $2 in file $1 and prints its last field.
wait_for() {
  local file=$1 pattern=$2 i
  for i in $(seq 1 200); do
    if grep -q "$pattern" "$file" 2>/dev/null; then
      grep "$pattern" "$file" | head -n1 | awk '{print $NF}'
      return 0
    fi
    sleep 0.05
  done
  echo "demo: timed out waiting for '$pattern' in $file" >&2
  cat "$file" >&2
  return 1
}

echo "== starting commserv-sim, the CommServe simulator (user admin, TLS with a self-signed certificate)"
printf 'admin\n' > "$state/password"
chmod 600 "$state/password"
"$bin/commserv-sim" --listen 127.0.0.1:0 --cert-out "$state/sim" --username admin \
  --password-file "$state/password" --job-duration-ms 3000 --quiet \
  --first-job-id "$(date +%s)" > "$state/sim.out" &  # ids unique across demo runs, as a CommServe's are
pids+=($!)
sim_url=$(wait_for "$state/sim.out" "listening on")
sim_cert=$(wait_for "$state/sim.out" "certificate")
echo "   $sim_url"

cat > "$state/drgate.yaml" <<YAML
# Written by tools/demo.sh. Everything not set here uses drgate's embedded defaults.
registry:
  path: drgate.db          # relative to this file: .state/demo/drgate.db
tracking:
  poll_interval: 1s        # the simulator's jobs take 3 s; production keeps the 10 s default
auth:
  mode: insecure           # loopback-only demo; production uses mode: tokens (docs/security.md)
commcells:
  - name: demo
    url: $sim_url/commandcenter/api
    username: admin
    password_file: password
    ca_file: $sim_cert     # trust the simulator's self-signed certificate; verification stays on
YAML

echo "== starting drgate (registry $state/drgate.db)"
"$bin/drgate" --config "$state/drgate.yaml" --grpc-listen 127.0.0.1:0 \
  --metrics-listen 127.0.0.1:0 > "$state/drgate.out" 2> "$state/drgate.log" &
pids+=($!)
grpc=$(wait_for "$state/drgate.out" "gRPC listening on")
metrics=$(wait_for "$state/drgate.out" "metrics listening on")
echo "   gRPC $grpc, metrics http://$metrics/metrics"

ctl=("$bin/drgatectl" --server "$grpc")
echo "== triggering a full DR backup and waiting for it (the simulator's jobs take 3 s):"
echo "   drgatectl backup --commcell demo --type full --compress --wait"
"${ctl[@]}" backup --commcell demo --type full --compress --request-id "demo-$(date +%s)" --wait
echo "== the job as the registry recorded it: drgatectl jobs list --commcell demo"
"${ctl[@]}" jobs list --commcell demo
echo "== drgatectl jobs list --output json"
"${ctl[@]}" --output json jobs list --commcell demo --page-size 1
echo
echo "== metrics that counted it"
curl -fsS "http://$metrics/metrics" | grep -E '^drgate_(backup_triggers_total|commserv_requests_total|backup_trigger_duration_seconds_count|backup_jobs_finished_total|backup_last_success_timestamp_seconds)' | grep -v ' 0$'
echo "== done in ${SECONDS}s: registry kept at $state/drgate.db; stopping drgate and commserv-sim"
