#!/usr/bin/env bash
# Tracking shared by replicas (registry.postgres.tracking: per_commcell): three drgate replicas on
# one PostgreSQL registry share an estate of CommCells (default 1000; --quick 50) served by four
# commserv-sims, each CommCell under its own path prefix so that the simulators count every
# CommCell's requests apart (GET /_sim/stats, requests_by_prefix). It measures:
#   - start to every CommCell tracked (the replicas' drgate_tracking_commcells add up);
#   - over a window of several intervals: job-list requests per CommCell per interval (counted at
#     the simulators; it must stay one) and how many replicas asked each CommCell (from each
#     replica's drgate_commserv_requests_total; it must be exactly one);
#   - after a SIGKILL of the replica with the largest share: the time until each of its CommCells
#     got a job-list request again (target: the lease plus one interval), then the same window;
#   - no job recorded twice and no intent left open or settled twice: the DR backups triggered
#     before the kill (two per simulator, through the replicas in turn; they run for an hour, so
#     the killed replica's share of them is taken over while running) are in the registry once
#     each, with their request ids, and every intent is settled.
# Every CommCell is followed through its DR job list (tracking.history, history_interval =
# poll_interval = the interval); probes are off (tracking.probe_interval: 0s) so that every job
# list at a simulator is a tracking poll (replicas that do not track a CommCell would otherwise
# each ask it once per probe_interval for their own readiness, see docs/replicas.md).
# Prints markdown table rows (scenario | measure | result | target | verdict); targets are
# reported, never enforced.
#
# Usage: bench/estate-replicas.sh [--quick] [--bin DIR] [--out DIR] [--cells N]
#                                 [--interval SECONDS] [--lease SECONDS] [--windows N]
set -euo pipefail
export LC_ALL=C  # sort and join agree
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
quick=0
bin=$root/build/bin
out=""
cells=""
interval=""
lease=""
windows=3
while (($#)); do
  case $1 in
    --quick) quick=1 ;;
    --bin) bin=$2; shift ;;
    --out) out=$2; shift ;;
    --cells) cells=$2; shift ;;
    --interval) interval=$2; shift ;;
    --lease) lease=$2; shift ;;
    --windows) windows=$2; shift ;;
    *) echo "usage: bench/estate-replicas.sh [--quick] [--bin DIR] [--out DIR] [--cells N]" \
      "[--interval S] [--lease S] [--windows N]" >&2; exit 2 ;;
  esac
  shift
done
if ((quick)); then
  cells=${cells:-50}; interval=${interval:-3}; lease=${lease:-3}
else
  cells=${cells:-1000}; interval=${interval:-20}; lease=${lease:-15}
fi
replicas=3
sims=4
pg_bin=/usr/lib/postgresql/15/bin
out=${out:-$root/.state/bench/out/estate-replicas}
mkdir -p "$out"
out=$(cd "$out" && pwd)
# PostgreSQL refuses root: as root its folder is /tmp-based and owned by `postgres`.
state=$(mktemp -d /tmp/drgate-bench-replicas-XXXXXX)
chmod 755 "$state"

pids=()
pg_pid=""
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ -n $pg_pid ]]; then
    # The postmaster (a child of the as_pg subshell): a fast shutdown.
    kill -INT "$(head -1 "$state/pg/data/postmaster.pid" 2>/dev/null)" 2>/dev/null || true
    wait "$pg_pid" 2>/dev/null || true
  fi
  rm -rf "$state"
}
trap cleanup EXIT

wait_for() {  # FILE PERL_REGEX PID [TRIES of 10 ms]: prints the first match
  local i match tries=${4:-3000}
  for ((i = 0; i < tries; i++)); do
    if match=$(grep -m1 -oP "$2" "$1" 2>/dev/null); then
      echo "$match"
      return 0
    fi
    kill -0 "$3" 2>/dev/null || break
    sleep 0.01
  done
  echo "estate-replicas: timed out waiting for '$2' in $1" >&2
  tail -20 "$1" "${1%.out}.err" >&2 2>/dev/null || true
  return 1
}
ms_now() { echo $(($(date +%s%N) / 1000000)); }
row() { echo "| $1 | $2 | $3 | $4 | $5 |"; }
verdict() { if (($1)); then echo meets; else echo MISSES; fi; }
as_pg() { if ((EUID == 0)); then setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; else "$@"; fi; }

# --- PostgreSQL ---------------------------------------------------------------------------------
mkdir -p "$state/pg"
((EUID == 0)) && chown postgres:postgres "$state/pg"
as_pg "$pg_bin/initdb" -D "$state/pg/data" -U drgate --auth=trust --no-locale -E UTF8 --no-sync \
  >"$out/initdb.log" 2>&1
pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg "$pg_bin/postgres" -D "$state/pg/data" -p "$pg_port" -k "$state/pg" \
  -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=200 \
  >"$out/postgres.log" 2>&1 &
pg_pid=$!
for ((i = 0; i < 300; i++)); do
  pg_isready -q -h 127.0.0.1 -p "$pg_port" && break
  sleep 0.1
done
psql_q() { psql -h 127.0.0.1 -p "$pg_port" -U drgate -d drgate -Atqc "$1"; }
psql -h 127.0.0.1 -p "$pg_port" -U drgate -d postgres -qc 'CREATE DATABASE drgate' >/dev/null

# --- Four simulators ----------------------------------------------------------------------------
password=estate-$RANDOM$RANDOM
printf '%s\n' "$password" >"$state/password"
sim_urls=()
sim_certs=()
for ((s = 0; s < sims; s++)); do
  mkdir -p "$state/sim$s-cert"
  "$bin/commserv-sim" --listen 127.0.0.1:0 --quiet --username admin --password "$password" \
    --cert-out "$state/sim$s-cert" --job-duration-ms 3600000 --first-job-id $((1000000 * (s + 1))) \
    >"$out/sim$s.out" 2>"$out/sim$s.err" &
  pids+=($!)
  sim_urls+=("$(wait_for "$out/sim$s.out" 'commserv-sim listening on \K\S+' $!)")
  sim_certs+=("$(wait_for "$out/sim$s.out" 'commserv-sim certificate \K\S+' $!)")
done
sim_of() { echo $(($1 % sims)); }

# --- Configuration (the same for every replica) -------------------------------------------------
config=$state/drgate.yaml
{
  echo "grpc: {listen: 127.0.0.1:0}"
  echo "metrics: {listen: 127.0.0.1:0, per_commcell_histograms: false}"
  echo "registry:"
  echo "  postgres:"
  echo "    dsn: \"host=127.0.0.1 port=$pg_port dbname=drgate user=drgate\""
  echo "    leader_lease: ${lease}s"
  echo "    tracking: per_commcell"
  echo "log: {level: info, format: json}"
  echo "auth: {mode: insecure}"
  echo "tracking: {poll_interval: ${interval}s, history_interval: ${interval}s, probe_interval: 0s," \
    "history_lookback: 1h}"
  echo "commcells:"
  for ((i = 0; i < cells; i++)); do
    s=$(sim_of "$i")
    echo "  - name: cs$i"
    echo "    url: ${sim_urls[s]}/cs$i/commandcenter/api"
    echo "    username: admin"
    echo "    password_file: $state/password"
    echo "    ca_file: ${sim_certs[s]}"
  done
} >"$config"

# --- Replicas -----------------------------------------------------------------------------------
grpc=()
metrics=()
rpids=()
t0=$(ms_now)
for ((r = 0; r < replicas; r++)); do
  "$bin/drgate" --config "$config" >"$out/drgate$r.out" 2>"$out/drgate$r.err" &
  rpids+=($!)
  pids+=($!)
done
for ((r = 0; r < replicas; r++)); do
  grpc+=("$(wait_for "$out/drgate$r.out" 'gRPC listening on \K\S+' "${rpids[r]}" 30000)")
  metrics+=("http://$(wait_for "$out/drgate$r.out" 'metrics listening on \K\S+' "${rpids[r]}")")
done

gauge() {  # URL NAME: the value of an unlabelled metric
  curl -sS "$1/metrics" | awk -v n="$2" '$1 == n {print $2 + 0}'
}
tracked_total() {  # over the live replicas
  local r sum=0 v
  for ((r = 0; r < replicas; r++)); do
    [[ -z ${rpids[r]} ]] && continue
    v=$(gauge "${metrics[r]}" drgate_tracking_commcells)
    sum=$((sum + ${v%.*}))
  done
  echo "$sum"
}
shares() {
  local r out=""
  for ((r = 0; r < replicas; r++)); do
    [[ -z ${rpids[r]} ]] && continue
    out+="$(gauge "${metrics[r]}" drgate_tracking_commcells) "
  done
  echo "$out"
}
# Every CommCell tracked, and the shares settled: unchanged over a renewal period (lease / 3),
# none empty (the first replica up takes everything, then hands the others' shares over).
period_ms=$((lease * 1000 / 3))
for ((i = 0; i < 600; i++)); do
  before=$(shares)
  sleep "$(awk -v p="$period_ms" 'BEGIN {print p / 1000}')"
  now=$(shares)
  if (($(tracked_total) >= cells)) && [[ $now == "$before" && " $now" != *" 0 "* ]]; then break; fi
done
tracked_ms=$(($(ms_now) - t0))
label="$replicas replicas, $cells CommCells, lease ${lease}s, interval ${interval}s"
row "$label" "start to every CommCell tracked, shares settled (shares)" "$tracked_ms ms ($(shares))" \
  "-" "-"

# Job lists per CommCell at the simulators: "cs<i> <count>" lines.
sim_lists() {
  local s
  for ((s = 0; s < sims; s++)); do
    curl -sS --cacert "${sim_certs[s]}" "${sim_urls[s]}/_sim/stats" |
      python3 -c 'import json, sys
for p, by in json.load(sys.stdin).get("requests_by_prefix", {}).items():
    print(p, by.get("JobList", 0))'
  done | sort
}
# Job-list requests each replica sent per CommCell: "cs<i> <replica> <count>" lines.
replica_lists() {
  local r
  for ((r = 0; r < replicas; r++)); do
    [[ -z ${rpids[r]} ]] && continue
    curl -sS "${metrics[r]}/metrics" |
      grep -oP '^drgate_commserv_requests_total\{code="200",commcell="\Kcs[0-9]+",endpoint="job_list"\} \S+' |
      sed -E "s/\",endpoint=\"job_list\"\\} / $r /" || true  # none yet
  done | sort
}
# window NAME: measures one window of $windows intervals; sets per_interval, one_replica.
window() {
  local before_sim before_rep secs=$((windows * interval))
  before_sim=$(sim_lists)
  before_rep=$(replica_lists)
  sleep "$secs"
  per_interval=$(join <(echo "$before_sim") <(sim_lists) |
    awk -v w="$windows" '{d = $3 - $2; s += d; if (d > max) max = d; if (min == "" || d < min) min = d; n++}
      END {printf "%.2f (min %.2f, max %.2f over %d CommCells)", s / n / w, min / w, max / w, n}')
  one_replica=$(join -j1 <(echo "$before_rep" | awk '{print $1 "/" $2, $3}' | sort) \
    <(replica_lists | awk '{print $1 "/" $2, $3}' | sort) |
    awk '$3 > $2 {split($1, k, "/"); grew[k[1]]++}
      END {for (c in grew) {n++; if (grew[c] == 1) one++} printf "%d of %d", one, n}')
}

# --- DR backups through the replicas in turn: two per simulator (a CommServe runs two full DR
# backups at once), on cs0... --------------------------------------------------------------------
triggered=$((2 * sims))
for ((i = 0; i < triggered; i++)); do
  r=$((i % replicas))
  "$bin/drgatectl" --server "${grpc[r]}" backup --commcell "cs$i" --type full \
    --request-id "bench-cs$i" >/dev/null 2>>"$out/triggers.err" || echo "trigger cs$i failed" >&2
done
window
row "$label" "job lists per CommCell per interval (at the simulators)" "$per_interval" "1" \
  "$(verdict "$(awk -v v="${per_interval%% *}" 'BEGIN {print (v > 0.8 && v < 1.25)}')")"
row "$label" "CommCells asked by exactly one replica" "$one_replica" "all" \
  "$(verdict "$(awk -v s="$one_replica" 'BEGIN {split(s, a, " of "); print (a[1] == a[2] && a[2] > 0)}')")"

# --- SIGKILL the replica with the largest share -------------------------------------------------
victim=0
best=-1
for ((r = 0; r < replicas; r++)); do
  v=$(gauge "${metrics[r]}" drgate_tracking_commcells)
  if ((${v%.*} > best)); then best=${v%.*}; victim=$r; fi
done
# Its CommCells: those whose job-list counter grows on it over one interval.
before_victim=$(replica_lists | awk -v v="$victim" '$2 == v {print $1, $3}')
sleep "$interval"
owned=$(join <(echo "$before_victim") <(replica_lists | awk -v v="$victim" '$2 == v {print $1, $3}') |
  awk '$3 > $2 {print $1}')
at_kill=$(sim_lists)
kill_ms=$(ms_now)
kill -KILL "${rpids[victim]}"
wait "${rpids[victim]}" 2>/dev/null || true
rpids[victim]=""
n_owned=$(wc -w <<<"$owned")
again_ms=-1
for ((i = 0; i < 3000; i++)); do
  now_lists=$(sim_lists)
  waiting=$(join <(echo "$at_kill") <(echo "$now_lists") |
    awk -v list="$owned" 'BEGIN {n = split(list, a, /[ \n]+/); for (i = 1; i <= n; i++) o[a[i]] = 1}
      ($1 in o) && $3 == $2' | wc -l)
  if ((waiting == 0)); then again_ms=$(($(ms_now) - kill_ms)); break; fi
  sleep 0.1
done
bound_ms=$(((lease + interval) * 1000))
row "$label" "SIGKILL of a replica: its $n_owned CommCells polled again after" "$again_ms ms" \
  "< lease + interval = $bound_ms ms" "$(verdict $((again_ms >= 0 && again_ms < bound_ms)))"
for ((i = 0; i < 600; i++)); do
  (($(tracked_total) >= cells)) && break
  sleep 0.1
done
window
row "$label" "after the kill: job lists per CommCell per interval" "$per_interval" "1" \
  "$(verdict "$(awk -v v="${per_interval%% *}" 'BEGIN {print (v > 0.8 && v < 1.25)}')")"
row "$label" "after the kill: CommCells asked by exactly one replica" "$one_replica" "all" \
  "$(verdict "$(awk -v s="$one_replica" 'BEGIN {split(s, a, " of "); print (a[1] == a[2] && a[2] > 0)}')")"

# --- Nothing recorded twice ---------------------------------------------------------------------
jobs=$(psql_q "SELECT count(*) FROM jobs WHERE request_id LIKE 'bench-cs%'")
distinct=$(psql_q "SELECT count(DISTINCT (commcell, request_id)) FROM jobs WHERE request_id LIKE 'bench-cs%'")
open=$(psql_q "SELECT count(*) FROM intents WHERE resolved = 0")
intents=$(psql_q "SELECT count(*) FROM intents WHERE request_id LIKE 'bench-cs%'")
row "$label" "triggered jobs recorded (distinct request ids); intents (open)" \
  "$jobs ($distinct) of $triggered; $intents ($open open)" "$triggered ($triggered); $triggered (0)" \
  "$(verdict $((jobs == triggered && distinct == triggered && intents == triggered && open == 0)))"
echo "estate-replicas: logs in $out" >&2
