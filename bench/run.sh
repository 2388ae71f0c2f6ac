#!/usr/bin/env bash
# drgate's benchmarks in one command: builds what it needs (reusing build/), starts
# commserv-sim (TLS, no added latency) and drgate on loopback ports picked at run time, runs every
# scenario with its baseline, prints the result table (markdown), keeps raw latency samples, and
# plots the trigger latency distributions with gnuplot when it is installed.
#
# Usage: bench/run.sh [--quick] [--bin DIR] [--out DIR]
#   --quick    a few seconds per scenario, small sizes (the CTest smoke test uses it)
#   --bin DIR  use the binaries in DIR and build nothing (default: build them into build/bin)
#   --out DIR  results.md, raw samples (one latency in microseconds per line), the plot and the
#              processes' logs (default: .state/bench/out); registry files are kept in
#              .state/bench (or DIR/state with --quick) and reused by the next run
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
quick=0
bin=""
out=""
while (($#)); do
  case $1 in
    --quick) quick=1 ;;
    --bin) bin=$2; shift ;;
    --out) out=$2; shift ;;
    *) echo "usage: bench/run.sh [--quick] [--bin DIR] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done

if [[ -z $bin ]]; then
  bash "$root/tools/setup/install-deps.sh"
  if [[ ! -f $root/build/build.ninja ]]; then
    cmake -S "$root" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >&2
  fi
  cmake --build "$root/build" -j "${DRGATE_BUILD_JOBS:-2}" \
    --target drgate commserv-sim drgate-bench >&2
  bin=$root/build/bin
fi
out=${out:-$root/.state/bench/out}
mkdir -p "$out"
out=$(cd "$out" && pwd)
if ((quick)); then state=$out/state; else state=$root/.state/bench; fi
mkdir -p "$state"
bench=$bin/drgate-bench

if ((quick)); then
  sizes=(10000); get_samples=2000; pages=20
  load_seconds=0.3; load_warmup=0.1
  rounds=1; per_round=10; runbook_per_round=2
  cells=10; interval_ms=300; window=1; watchers=200; scrapes=10
else
  sizes=(10000 100000 1000000); get_samples=20000; pages=200
  load_seconds=3; load_warmup=0.5
  rounds=5; per_round=60; runbook_per_round=6
  cells=100; interval_ms=1000; window=5; watchers=10000; scrapes=200
fi

pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

# wait_for FILE PERL_REGEX PID: prints the first match (use \K to keep only the value); fails
# when process PID exits first or after 30 s.
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
  echo "bench: timed out waiting for '$2' in $1" >&2
  cat "$1" "${1%.out}.err" >&2 2>/dev/null || true
  return 1
}

password=bench-$RANDOM$RANDOM
printf '%s\n' "$password" >"$state/password"

# start_sim NAME JOB_DURATION_MS: sets sim_url, sim_cert, sim_pid.
start_sim() {
  mkdir -p "$state/$1-cert"
  # Emptied here: the child's own redirection may come after wait_for has read an old file.
  : >"$out/$1.out"
  "$bin/commserv-sim" --listen 127.0.0.1:0 --quiet --username admin --password "$password" \
    --cert-out "$state/$1-cert" --job-duration-ms "$2" >"$out/$1.out" 2>"$out/$1.err" &
  sim_pid=$!
  pids+=("$sim_pid")
  sim_url=$(wait_for "$out/$1.out" 'commserv-sim listening on \K\S+' "$sim_pid")
  sim_cert=$(wait_for "$out/$1.out" 'commserv-sim certificate \K\S+' "$sim_pid")
}

# drgate_config FILE REGISTRY POLL_INTERVAL CELL_NAMES...: a config with every CommCell on the
# current simulator.
drgate_config() {
  local file=$1 registry=$2 poll=$3 name
  shift 3
  {
    echo "grpc: {listen: 127.0.0.1:0}"
    echo "http: {listen: 127.0.0.1:0}"
    echo "metrics: {listen: 127.0.0.1:0}"
    echo "registry: {path: $registry}"
    echo "log: {level: info, format: json}"
    echo "auth: {mode: insecure}"
    echo "tracking: {poll_interval: ${poll}, retention: 0s}"
    echo "commcells:"
    for name in "$@"; do
      echo "  - name: $name"
      echo "    url: $sim_url/commandcenter/api"
      echo "    username: admin"
      echo "    password_file: $state/password"
      echo "    ca_file: $sim_cert"
    done
  } >"$file"
}

# start_drgate NAME CONFIG: sets grpc, metrics, drgate_pid, startup_ms (launch to serving).
start_drgate() {
  local t0 t1
  : >"$out/$1.out"
  t0=$(date +%s%N)
  "$bin/drgate" --config "$2" >"$out/$1.out" 2>"$out/$1.err" &
  drgate_pid=$!
  pids+=("$drgate_pid")
  grpc=$(wait_for "$out/$1.out" 'gRPC listening on \K\S+' "$drgate_pid")
  t1=$(date +%s%N)
  metrics=http://$(wait_for "$out/$1.out" 'metrics listening on \K\S+' "$drgate_pid")
  http=http://$(wait_for "$out/$1.out" 'HTTP listening on \K\S+' "$drgate_pid")
  startup_ms=$(((t1 - t0) / 1000000))
}

stop() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

rows=$out/rows.md
: >"$rows"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# --- Registry scale, in process -------------------------------------------------------------------
echo "bench: registry (${sizes[*]} jobs)" >&2
"$bench" registry --dir "$state" --sizes "${sizes[@]}" --get-samples "$get_samples" \
  --pages "$pages" --out "$out" | tee -a "$rows"

# --- Read path and drgate's start on the largest registry ----------------------------------------
biggest=${sizes[-1]}
start_sim sim 0
drgate_config "$state/read.yaml" "$state/registry-$biggest.db" 10s bench
start_drgate drgate-read "$state/read.yaml"
start_target="< 1 s"
verdict=$( ((startup_ms < 1000)) && echo meets || echo MISSES)
echo "| registry $biggest jobs | drgate process start to serving gRPC | $startup_ms ms | $start_target | $verdict |" |
  tee -a "$rows"
# ListJobs with the default page (50 jobs), and with pages of 10 (a dashboard's "latest jobs").
for load in "GetJob 50" "ListJobs 50" "ListJobs 10"; do
  read -r method page <<<"$load"
  echo "bench: read path $method (page $page)" >&2
  "$bench" load --target "$grpc" --method "$method" --page-size "$page" --concurrency 1 16 256 \
    --seconds "$load_seconds" --warmup "$load_warmup" --jobs "$biggest" --pid "$drgate_pid" \
    --out "$out" | tee -a "$rows"
done
# GetJob over the HTTP/JSON port, beside the gRPC figures above (same drgate, same registry).
echo "bench: read path GetJob over HTTP/JSON" >&2
"$bench" load --target "$grpc" --http "$http" --method GetJob --concurrency 1 16 \
  --seconds "$load_seconds" --warmup "$load_warmup" --jobs "$biggest" --pid "$drgate_pid" \
  --out "$out" | tee -a "$rows"
stop "$drgate_pid"

# --- Trigger latency: (a) runbook, (b) Beast floor, (c) drgate; jobs end at once ------------------
echo "bench: trigger latency" >&2
rm -f "$state/trigger.db" "$state/trigger.db-wal" "$state/trigger.db-shm"
drgate_config "$state/trigger.yaml" "$state/trigger.db" 10s bench
start_drgate drgate-trigger "$state/trigger.yaml"
trigger_pid=$drgate_pid
trigger_grpc=$grpc
trigger_http=$http
# (c'): the same on a registry in tmpfs, where fsync is free, to tell drgate's cost from the disk's.
tmpfs_args=()
if [[ -d /dev/shm && -w /dev/shm ]]; then
  tmpfs=$(mktemp -d /dev/shm/drgate-bench.XXXXXX)
  drgate_config "$state/trigger-tmpfs.yaml" "$tmpfs/trigger.db" 10s bench
  start_drgate drgate-trigger-tmpfs "$state/trigger-tmpfs.yaml"
  tmpfs_args=(--target-tmpfs "$grpc")
fi
"$bench" trigger --sim "$sim_url" --ca "$sim_cert" --password "$password" --target "$trigger_grpc" \
  --http "$trigger_http" \
  "${tmpfs_args[@]}" \
  --runbook "$root/bench/runbook.sh" --rounds "$rounds" --per-round "$per_round" \
  --runbook-per-round "$runbook_per_round" --out "$out" | tee -a "$rows"
stop "$trigger_pid"
if ((${#tmpfs_args[@]})); then
  stop "$drgate_pid"
  rm -rf "$tmpfs"
fi
stop "$sim_pid"

# --- Tracking scale: N CommCells on one simulator whose jobs run for hours ------------------------
names=()
for ((i = 0; i < cells; i++)); do names+=("cs$i"); done
start_sim sim-tracking 36000000
for jobs in 1 3; do
  echo "bench: tracking, $cells CommCells x $jobs job(s)" >&2
  rm -f "$state/tracking.db" "$state/tracking.db-wal" "$state/tracking.db-shm"
  watch_job=$("$bench" seed --db "$state/tracking.db" --cells "$cells" --jobs-per-cell "$jobs" \
    --sim "$sim_url" --ca "$sim_cert" --password "$password")
  drgate_config "$state/tracking.yaml" "$state/tracking.db" "${interval_ms}ms" "${names[@]}"
  start_drgate drgate-tracking-$jobs "$state/tracking.yaml"
  extra=()
  if ((jobs == 3)); then
    extra=(--watchers "$watchers" --watch-commcell cs0 --watch-job "$watch_job" --scrapes "$scrapes")
  fi
  "$bench" tracking --label "$cells CommCells x $jobs job(s)" --sim "$sim_url" --ca "$sim_cert" \
    --target "$grpc" --metrics "$metrics" --pid "$drgate_pid" --cells "$cells" \
    --interval "$(awk "BEGIN {print $interval_ms / 1000}")" --window "$window" --out "$out" "${extra[@]}" | tee -a "$rows"
  stop "$drgate_pid"
done
stop "$sim_pid"

# --- Isolation: 100 CommCells, 10 of whose CommServes hang on the DR job list ---------------------
echo "bench: isolation, CommCells with hung CommServes" >&2
isolation_args=(--bin "$bin" --out "$out/isolation")
if ((quick)); then isolation_args+=(--quick); fi
bash "$root/bench/isolation.sh" "${isolation_args[@]}" | tee -a "$rows"

# --- Estate: 1000 CommCells (--quick: 50) on four simulators, both metrics modes ----------------
echo "bench: estate, many CommCells with a week of DR history each" >&2
estate_args=(--bin "$bin" --out "$out/estate")
if ((quick)); then estate_args+=(--quick); fi
bash "$root/bench/estate.sh" "${estate_args[@]}" | tee -a "$rows"

# --- Estate on replicas: three drgates on PostgreSQL share the CommCells, one is killed ---------
echo "bench: estate on replicas, per-CommCell leases and a SIGKILL" >&2
replicas_args=(--bin "$bin" --out "$out/estate-replicas")
if ((quick)); then replicas_args+=(--quick); fi
bash "$root/bench/estate-replicas.sh" "${replicas_args[@]}" | tee -a "$rows"

# --- /metrics serialisation in process: drgate's serialiser and prometheus-cpp's it replaced ------
for serializer in drgate prometheus-cpp; do
  "$bench" exposition --cells "$cells" --iterations "$scrapes" --serializer "$serializer" |
    tee -a "$rows"
done

# --- The table ---------------------------------------------------------------------------------
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
{
  echo "drgate benchmarks, $started ($( ((quick)) && echo quick || echo full) run)"
  echo "machine: $(nproc) CPUs ($cpu), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM;" \
    "load average (1/5/15 min) before $load_before, after $load_after"
  echo
  echo "| scenario | measure | result | target | verdict |"
  echo "| --- | --- | --- | --- | --- |"
  cat "$rows"
} >"$out/results.md"
echo
cat "$out/results.md"

# --- The plot ----------------------------------------------------------------------------------
if command -v gnuplot >/dev/null; then
  gnuplot <<GP
set terminal pngcairo size 1000,600 font ",11"
set output "$out/trigger-latency.png"
set title "Time to start one DR backup (commserv-sim over TLS on loopback, no added latency)"
set xlabel "latency (ms, log scale)"
set ylabel "fraction of calls at or below"
set logscale x
set grid
set key bottom right
plot "$out/trigger-b-beast.txt" using (\$1/1000):(1) smooth cnormal lw 2 title "(b) direct Beast, keep-alive (floor)", \
     "$out/trigger-c-drgate.txt" using (\$1/1000):(1) smooth cnormal lw 2 title "(c) TriggerBackup through drgate", \
     "$out/trigger-c-drgate-tmpfs.txt" using (\$1/1000):(1) smooth cnormal lw 2 dt 2 title "(c') the same, registry on tmpfs (no fsync cost)", \
     "$out/trigger-b0-beast-cold.txt" using (\$1/1000):(1) smooth cnormal lw 2 title "(b0) direct Beast, new connection + login", \
     "$out/trigger-a-runbook.txt" using (\$1/1000):(1) smooth cnormal lw 2 title "(a) shell runbook: curl login + POST"
GP
  echo "plot: $out/trigger-latency.png" >&2
else
  echo "bench: gnuplot is not installed (apt-get install gnuplot-nox): no plot" >&2
fi
echo "raw samples and logs: $out" >&2
