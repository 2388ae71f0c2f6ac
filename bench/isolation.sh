#!/usr/bin/env bash
# drgate-bench isolation: 100 CommCells, 10 of whose CommServes hang on the DR job list. The
# healthy CommCells run on one commserv-sim, the hung ones on a second whose job list never
# answers (fault "hang"); every CommCell has running jobs to follow, so each is polled, not only
# probed. Prints rows of the result table (bench/README.md): job-list requests per poll interval
# on the healthy simulator and per healthy CommCell (drgate's counters), requests sent to the
# hung simulator during the window, drgate's CPU and memory. bench/run.sh calls it; it also runs
# alone.
#
# Usage: bench/isolation.sh --bin DIR [--drgate PATH] [--quick] [--out DIR]
#   --bin DIR      commserv-sim, drgate and drgate-bench (built)
#   --drgate PATH  another drgate binary to measure (e.g. an older build, for a baseline)
#   --quick        10 CommCells (2 hung), 300 ms polls, a 3 s window
#   --out DIR      logs and state (default: a temporary folder, removed at the end)
set -euo pipefail
bin=""
drgate=""
quick=0
out=""
while (($#)); do
  case $1 in
    --bin) bin=$2; shift ;;
    --drgate) drgate=$2; shift ;;
    --quick) quick=1 ;;
    --out) out=$2; shift ;;
    *) echo "usage: bench/isolation.sh --bin DIR [--drgate PATH] [--quick] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done
[[ -n $bin ]] || { echo "bench/isolation.sh: --bin DIR is required" >&2; exit 2; }
drgate=${drgate:-$bin/drgate}
remove=0
if [[ -z $out ]]; then
  out=$(mktemp -d)
  remove=1
fi
mkdir -p "$out"
if ((quick)); then
  healthy=8; hung=2; interval_ms=300; window=3
else
  healthy=90; hung=10; interval_ms=1000; window=10
fi

pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if ((remove)); then rm -rf "$out"; fi
}
trap cleanup EXIT

# wait_for FILE PERL_REGEX PID: the first match (\K keeps the value); fails when PID exits first
# or after 30 s.
wait_for() {
  local i match
  for ((i = 0; i < 3000; i++)); do
    if match=$(grep -m1 -oP "$2" "$1" 2>/dev/null); then
      echo "$match"
      return 0
    fi
    kill -0 "$3" 2>/dev/null || break
    sleep 0.01
  done
  echo "bench/isolation.sh: timed out waiting for '$2' in $1" >&2
  cat "$1" "${1%.out}.err" >&2 2>/dev/null || true
  return 1
}

password=bench-$RANDOM$RANDOM
printf '%s\n' "$password" >"$out/password"

# start_sim NAME: sets url, cert, pid (jobs run for ten hours).
start_sim() {
  mkdir -p "$out/$1-cert"
  : >"$out/$1.out"
  "$bin/commserv-sim" --listen 127.0.0.1:0 --quiet --username admin --password "$password" \
    --cert-out "$out/$1-cert" --job-duration-ms 36000000 >"$out/$1.out" 2>"$out/$1.err" &
  pid=$!
  pids+=("$pid")
  url=$(wait_for "$out/$1.out" 'commserv-sim listening on \K\S+' "$pid")
  cert=$(wait_for "$out/$1.out" 'commserv-sim certificate \K\S+' "$pid")
}
start_sim sim-isolation
ok_url=$url ok_cert=$cert
start_sim sim-isolation-hung
hung_url=$url hung_cert=$cert

rm -f "$out/isolation.db" "$out/isolation.db-wal" "$out/isolation.db-shm"
"$bin/drgate-bench" seed --db "$out/isolation.db" --prefix ok --cells "$healthy" --jobs-per-cell 3 \
  --sim "$ok_url" --ca "$ok_cert" --password "$password" >/dev/null
"$bin/drgate-bench" seed --db "$out/isolation.db" --prefix hung --cells "$hung" --jobs-per-cell 1 \
  --sim "$hung_url" --ca "$hung_cert" --password "$password" >/dev/null
# From the first poll on, the second simulator's DR job list never answers (10 minutes).
curl -sf --cacert "$hung_cert" -X POST -H 'Content-Type: application/json' \
  -d '{"endpoint": "JobList", "action": "hang", "count": -1}' "$hung_url/_sim/faults" >/dev/null

{
  echo "grpc: {listen: 127.0.0.1:0}"
  echo "metrics: {listen: 127.0.0.1:0}"
  echo "registry: {path: $out/isolation.db}"
  echo "log: {level: info, format: json}"
  echo "auth: {mode: insecure}"
  echo "tracking: {poll_interval: ${interval_ms}ms, retention: 0s}"
  echo "commcells:"
  for ((i = 0; i < healthy + hung; i++)); do
    if ((i < healthy)); then name=ok$i u=$ok_url c=$ok_cert; else name=hung$((i - healthy)) u=$hung_url c=$hung_cert; fi
    echo "  - name: $name"
    echo "    url: $u/commandcenter/api"
    echo "    username: admin"
    echo "    password_file: $out/password"
    echo "    ca_file: $c"
  done
} >"$out/isolation.yaml"
: >"$out/drgate-isolation.out"
"$drgate" --config "$out/isolation.yaml" >"$out/drgate-isolation.out" 2>"$out/drgate-isolation.err" &
drgate_pid=$!
pids+=("$drgate_pid")
wait_for "$out/drgate-isolation.out" 'gRPC listening on \K\S+' "$drgate_pid" >/dev/null
metrics=http://$(wait_for "$out/drgate-isolation.out" 'metrics listening on \K\S+' "$drgate_pid")

"$bin/drgate-bench" isolation --label "$((healthy + hung)) CommCells, $hung hung" \
  --sim "$ok_url" --ca "$ok_cert" --hung-sim "$hung_url" --hung-ca "$hung_cert" \
  --metrics "$metrics" --pid "$drgate_pid" --cells "$healthy" --hung-cells "$hung" \
  --interval "$(awk "BEGIN {print $interval_ms / 1000}")" --window "$window"
