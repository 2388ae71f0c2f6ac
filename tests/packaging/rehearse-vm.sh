#!/usr/bin/env bash
# The VM journey of docs/packaging.md ("First steps after installing") and of
# docs/administration.md (registry backup while drgate runs, restore), run as written in a fresh
# Debian root where the package was just installed (tests/packaging/run.sh runs this inside
# debian:12-slim, as root, on the host network). commserv-sim on loopback is the CommServe.
# Each documented line runs as it is, except what a container has not:
#   sudo X               -> X (we are root; sudo is not installed)
#   sudoedit FILE        -> the edit an operator makes: drgate.yaml pointed at the simulator (url,
#                           its CA as ca_file), commserv-password holding the password
#   systemctl enable --now drgate
#                        -> the unit's ExecStart, run as the unit's User/Group with its
#                           RuntimeDirectory, StateDirectory, WorkingDirectory, UMask and
#                           LimitNOFILE, no new privileges and no capabilities
#   systemctl stop|start drgate -> SIGTERM to that process | the same start again
#   journalctl -u drgate -> that process's output
# Between the documents' blocks the rehearsal starts a DR backup of its own before the registry
# backup and one after it: after the restore, `jobs list` must show the first, and drgate's own
# jobs (--origin drgate) the first and not the second.
# usage: rehearse-vm.sh DIR SIM_URL SIM_CA_FILE SIM_PASSWORD_FILE
#   DIR holds first-steps.txt, backup.txt and restore.txt (doc_commands.py block ...)
set -euo pipefail
dir=$1 sim_url=$2 sim_ca=$3 sim_password=$4
say() { echo "rehearse-vm: $*"; }
fail() { echo "rehearse-vm: FAILED: $*" >&2; [[ -f /var/tmp/drgate.log ]] && tail -20 /var/tmp/drgate.log >&2; exit 1; }
unit=/lib/systemd/system/drgate.service
key() { sed -n "s/^$1=//p" "$unit" | tail -n1; }
drgate_pid=
stop() {
  [[ -n $drgate_pid ]] || return 0
  kill -TERM "$drgate_pid" 2>/dev/null || true
  wait "$drgate_pid" 2>/dev/null || true
  drgate_pid=
}
trap stop EXIT

edit() {  # sudoedit FILE: what the operator types into the editor
  case $1 in
    /etc/drgate/drgate.yaml)
      install -m 0644 "$sim_ca" /etc/drgate/commserv-ca.pem
      sed -i -e "s|url: https://commserve.example.com/commandcenter/api|url: $sim_url/commandcenter/api|" \
             -e "s|# ca_file: /etc/drgate/commserv-ca.pem.*|ca_file: /etc/drgate/commserv-ca.pem|" "$1"
      grep -q "url: $sim_url" "$1" || fail "drgate.yaml has no example url to replace"
      grep -q "^    ca_file: /etc/drgate/commserv-ca.pem" "$1" || fail "drgate.yaml has no ca_file line to uncomment" ;;
    /etc/drgate/commserv-password) cat "$sim_password" >"$1" ;;
    *) fail "no rehearsed edit for $1" ;;
  esac
}

start_unit() {  # systemctl enable --now drgate, as the unit says
  local user group exec_start rt state wd umask_ nofile
  user=$(key User) group=$(key Group) exec_start=$(key ExecStart)
  rt=$(key RuntimeDirectory) state=$(key StateDirectory) wd=$(key WorkingDirectory)
  umask_=$(key UMask) nofile=$(key LimitNOFILE)
  [[ -n $user && -n $exec_start ]] || fail "the unit has no User or ExecStart"
  [[ -z $state ]] || install -d -o "$user" -g "$group" -m "$(key StateDirectoryMode)" "/var/lib/$state"
  [[ -z $rt ]] || install -d -o "$user" -g "$group" -m "$(key RuntimeDirectoryMode | grep . || echo 0755)" "/run/$rt"
  say "ExecStart as $user:$group: $exec_start"
  (
    cd "${wd:-/}"
    [[ -z $umask_ ]] || umask "$umask_"
    # systemd raises the hard limit too; a container cannot go above its own
    [[ -z $nofile ]] || ulimit -n "$nofile" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    # shellcheck disable=SC2086  # ExecStart is a command line
    exec setpriv --reuid "$user" --regid "$group" --init-groups --no-new-privs \
      --inh-caps=-all --bounding-set=-all $exec_start
  ) >/var/tmp/drgate.log 2>&1 &
  drgate_pid=$!
  local i
  for i in $(seq 1 100); do
    grep -q "gRPC listening on" /var/tmp/drgate.log && break
    kill -0 "$drgate_pid" 2>/dev/null || fail "drgate exited at start"
    sleep 0.2
  done
  grep -q "gRPC listening on" /var/tmp/drgate.log || fail "drgate did not listen within 20 s"
  [[ $(stat -c %U "/proc/$drgate_pid") == "$user" ]] || fail "drgate does not run as $user"
  say "drgate running as $user (pid $drgate_pid)"
}

run_block() {  # FILE: the documented lines, each as written; the output of the last in $out
  local line cmd
  while IFS= read -r line; do
    [[ -n $line ]] || continue
    cmd=${line%%  #*}                # the documents' trailing comments
    cmd=${cmd%"${cmd##*[![:space:]]}"}
    say "docs: $cmd"
    out=
    case $cmd in
      "sudoedit "*) edit "${cmd#sudoedit }" ;;
      "sudo systemctl enable --now drgate" | "sudo systemctl start drgate") start_unit ;;
      "sudo systemctl stop drgate") stop ;;
      "journalctl -u drgate") cat /var/tmp/drgate.log ;;
      *)
        out=$(eval "${cmd#sudo }" 2>&1) || { echo "$out" >&2; fail "exit $? from: $cmd"; }
        [[ -z $out ]] || echo "$out" | head -n 20 | sed 's/^/    /'
        if [[ $cmd == *integrity_check* && $out != ok ]]; then fail "integrity check: $out"; fi ;;
    esac
  done <"$1"
}
ctl() { drgatectl --token-file /etc/drgate/operator.token --output json "$@"; }
job_of() { sed -n 's/.*"job_id": *"\{0,1\}\([0-9][0-9]*\).*/\1/p' | head -n1; }

run_block "$dir/first-steps.txt"
[[ -n $drgate_pid ]] || fail "the documented first steps never started drgate"
before=$(ctl backup --commcell prod --type full --request-id rehearsal-before --wait | job_of)
[[ -n $before ]] || fail "no job id from the backup before the registry backup"
run_block "$dir/backup.txt"
after=$(ctl backup --commcell prod --type differential --request-id rehearsal-after --wait | job_of)
[[ -n $after ]] || fail "no job id from the backup after the registry backup"
run_block "$dir/restore.txt"
grep -qw "$before" <<<"$out" || fail "after the restore, jobs list lacks job $before (taken before the backup)"
# drgate may record the later job again from the CommServe's DR job list, but as the
# CommServe's (origin commserv): as drgate's own it must be gone with the restore.
own=$(ctl jobs list --origin drgate --all)
grep -q "\"$before\"" <<<"$own" || fail "after the restore, drgate's own jobs lack $before: $own"
! grep -q "\"$after\"" <<<"$own" || fail "after the restore, drgate's own jobs still have $after (started after the backup)"
stop
say "docs/packaging.md's first steps, registry backup and restore work as written (jobs $before kept, $after gone)"
