#!/usr/bin/env bash
# The VM journey of docs/packaging.md ("First steps after installing"), run as written in a fresh
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
#   journalctl -u drgate -> that process's output
# usage: rehearse-vm.sh COMMANDS_FILE SIM_URL SIM_CA_FILE SIM_PASSWORD_FILE
set -euo pipefail
commands=$1 sim_url=$2 sim_ca=$3 sim_password=$4
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
    [[ -z $nofile ]] || ulimit -n "$nofile"
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

while IFS= read -r line; do
  [[ -n $line ]] || continue
  cmd=${line%%#*}                  # the documents' trailing comments
  cmd=${cmd%"${cmd##*[![:space:]]}"}
  say "docs/packaging.md: $cmd"
  case $cmd in
    "sudoedit "*) edit "${cmd#sudoedit }" ;;
    "sudo systemctl enable --now drgate") start_unit ;;
    "journalctl -u drgate") cat /var/tmp/drgate.log ;;
    "sudo "*) eval "${cmd#sudo }" || fail "exit $? from: $cmd" ;;
    *) eval "$cmd" || fail "exit $? from: $cmd" ;;
  esac
done <"$commands"
[[ -n $drgate_pid ]] || fail "the documented steps never started drgate"
stop
say "docs/packaging.md's first steps work as written"
