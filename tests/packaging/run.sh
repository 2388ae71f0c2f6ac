#!/usr/bin/env bash
# The packaging stage of tools/test.sh: the Debian package and the container image made from it.
#   1. `cmake --build BUILD --target deb`: drgate_<version>_<arch>.deb; lintian reports no error;
#      `systemd-analyze verify` accepts drgate.service.
#   2. tools/image.sh builds the image with podman (no registry needed: a missing debian:12-slim
#      is made with mmdebstrap), in a container store of its own.
#   3. The package installed with apt into a fresh debian:12-slim: its Depends resolve every
#      library, postinst made the user, the state folder and a token, --version and
#      --check-config work, purge removes what the package made.
#      Then docs/packaging.md's first steps and docs/administration.md's registry backup and
#      restore, run as written against commserv-sim (tests/packaging/rehearse-vm.sh: the unit's
#      ExecStart as the unit's user).
#   4. The image as Kubernetes runs it (uid 10001, --read-only, --cap-drop all,
#      no-new-privileges, host network) against commserv-sim from BUILD/bin on loopback: gRPC
#      health SERVING, /metrics with drgate_build_info of this version, `drgatectl backup --wait`
#      inside the image succeeds, SIGTERM ends drgate with exit 0 within shutdown_grace.
#   5. deploy/README.md's Kubernetes journey run as written with `podman kube play`
#      (tests/packaging/rehearse-kube.sh): Secrets, render, ready pod, every documented
#      `kubectl exec` line, the CronJob example's pod.
# Prints the time of each step and the image size. Removes its containers, images and store
# at the end (DRGATE_KEEP_CONTAINERS=1 keeps the store and the base image for the next run).
# usage: tests/packaging/run.sh [BUILD_DIR]    (default build/)
# Not root: a developer's run skips the stage (exit 0, "SKIPPED"); with CI=true it fails (exit 1):
# CI must not pass without having run it.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if [[ $(id -u) != 0 ]]; then
  # mmdebstrap --mode=root, rootful podman and a state folder owned by uid 10001 need root
  # (CI runs as root).
  if [[ ${CI:-} == true ]]; then
    echo "packaging: FAILED: needs root (uid $(id -u)); CI=true does not skip the packaging stage" >&2
    exit 1
  fi
  echo "packaging: SKIPPED: needs root" >&2
  exit 0
fi
build=$(realpath "${1:-$root/build}")
export DRGATE_CONTAINERS_DIR=${DRGATE_CONTAINERS_DIR:-/var/tmp/drgate-containers}
mkdir -p "$DRGATE_CONTAINERS_DIR"
# shellcheck source=tools/container-env.sh
source "$root/tools/container-env.sh"

say() { echo "packaging: $*"; }
fail() { echo "packaging: FAILED: $*" >&2; exit 1; }
step_start=$SECONDS
step() { say "$1 took $((SECONDS - step_start)) s"; step_start=$SECONDS; }

work=$(mktemp -d /var/tmp/drgate-packaging.XXXXXX)
chmod 0755 "$work"
pids=()
containers=()
image=
cleanup() {
  local c
  for c in "${containers[@]}"; do drgate_engine rm -f "$c" >/dev/null 2>&1 || true; done
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  [[ -n $image ]] && drgate_engine rmi -f "$image" >/dev/null 2>&1 || true
  if [[ ${DRGATE_KEEP_CONTAINERS:-0} != 1 ]]; then
    drgate_engine rmi -a -f >/dev/null 2>&1 || true
    rm -rf "$DRGATE_CONTAINERS_DIR"
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# ------------------------------------------------------------------ 1. package, lintian, unit
cmake --build "$build" -j "${DRGATE_BUILD_JOBS:-2}" --target deb commserv-sim >/dev/null
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
arch=$(dpkg --print-architecture)
deb=$build/packages/drgate_${version}_${arch}.deb
[[ -f $deb ]] || fail "no $deb"
say "$(basename "$deb"): $(du -k "$deb" | cut -f1) KiB; Depends: $(dpkg-deb -f "$deb" Depends)"
for path in ./usr/sbin/drgate ./usr/bin/drgatectl ./etc/drgate/drgate.yaml \
            ./lib/systemd/system/drgate.service ./var/lib/drgate/ \
            ./usr/share/man/man8/drgate.8.gz ./usr/share/man/man1/drgatectl.1.gz; do
  dpkg-deb -c "$deb" | awk '{print $6}' | grep -qxF "$path" || fail "$deb lacks $path"
done
[[ $(dpkg-deb -f "$deb" Depends) == *libgrpc++* ]] || fail "Depends was not computed from the binaries"
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | grep -qx /etc/drgate/drgate.yaml ||
  fail "/etc/drgate/drgate.yaml is not a conffile"
lintian_rc=0
lintian --fail-on error "$deb" >"$work/lintian.out" 2>&1 || lintian_rc=$?
grep -v "running with root privileges" "$work/lintian.out" >&2 || true
((lintian_rc == 0)) || fail "lintian reports errors"
# The unit as installed, with ExecStart pointing at the built binary (not installed here).
mkdir -p "$work/unit"
sed "s|/usr/sbin/drgate|$build/bin/drgate|" "$root/packaging/drgate.service" >"$work/unit/drgate.service"
systemd-analyze verify --man=no "$work/unit/drgate.service" || fail "systemd-analyze verify drgate.service"
exposure=$(systemd-analyze security --offline=yes "$work/unit/drgate.service" 2>/dev/null |
  sed -n 's/.*Overall exposure level for drgate.service: //p')
say "lintian: no error; systemd-analyze verify: ok; exposure: $exposure"
step "package, lintian and unit"

# ------------------------------------------------------------------ 2. image
image=$(bash "$root/tools/image.sh" --deb "$deb" | tail -n 1)
[[ $image == *":$version" ]] || fail "image tag $image is not the version $version"
size=$(drgate_engine image inspect --format '{{.Size}}' "$image")
say "image $image: $((size / 1000000)) MB ($size bytes; goal: under 150 MB)"
# No secret in the image: the token a host installation gets was removed.
etc=$(drgate_engine run --rm --entrypoint /bin/ls "$image" -A /etc/drgate)
[[ $etc == drgate.yaml ]] || fail "the image's /etc/drgate holds '$etc', expected only drgate.yaml"
step "image build"

# ------------------------------------------------------------------ commserv-sim (steps 3 and 4)
state=$work/state
mkdir -p "$work/etc" "$work/sim" "$state"
chown 10001:10001 "$state"
printf 'commserv-secret\n' >"$work/etc/password"
"$build/bin/commserv-sim" --listen 127.0.0.1:0 --cert-out "$work/sim" --username drgate-svc \
  --password-file "$work/etc/password" --job-duration-ms 2000 --quiet >"$work/sim.out" 2>&1 &
pids+=($!)
wait_line() {  # FILE-PRODUCING-COMMAND PATTERN: the last word of the first matching line
  local i line
  for i in $(seq 1 600); do
    if line=$(eval "$1" 2>/dev/null | grep -m1 "$2"); then echo "${line##* }"; return 0; fi
    sleep 0.1
  done
  eval "$1" >&2 || true
  fail "timed out waiting for '$2'"
}
sim_url=$(wait_line "cat $work/sim.out" "listening on")
sim_cert=$(wait_line "cat $work/sim.out" "certificate")
cp "$sim_cert" "$work/etc/sim-ca.pem"
# ------------------------------------------------------------------ 3. the package in a fresh root
mkdir -p "$work/pkg" && cp "$deb" "$work/pkg/"
cp "$root/tests/packaging/rehearse-vm.sh" "$work/etc/sim-ca.pem" "$work/etc/password" "$work/pkg/"
for spec in "first-steps docs/packaging.md First steps after installing" \
            "backup docs/administration.md ## Back up the registry" \
            "restore docs/administration.md ## Restore the registry"; do
  read -r out doc start <<<"$spec"
  python3 "$root/tests/packaging/doc_commands.py" "$root" block "$doc" "$start" >"$work/pkg/$out.txt"
  [[ -s $work/pkg/$out.txt ]] || fail "$doc has no commands after '$start'"
done
chmod -R a+rX "$work/pkg"
# The package's configuration listens on 127.0.0.1:50051 and :9464, here the host's loopback.
for port in 50051 9464; do
  ! ss -Hltn "sport = :$port" | grep -q . || fail "port $port is in use on this host (the VM rehearsal runs on the host network)"
done
drgate_engine run --rm --network host -v "$work/pkg:/pkg:ro" -e SIM_URL="$sim_url" debian:12-slim bash -euo pipefail -c '
  fail() { echo "install test: $*" >&2; exit 1; }
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends /pkg/*.deb >/dev/null
  getent passwd drgate | grep -q ":/var/lib/drgate:/usr/sbin/nologin$" || fail "no user drgate"
  [ "$(stat -c "%U:%G %a" /var/lib/drgate)" = "drgate:drgate 750" ] || fail "/var/lib/drgate: $(stat -c "%U:%G %a" /var/lib/drgate)"
  [ "$(stat -c "%U:%G %a" /etc/drgate/tokens.yaml)" = "root:drgate 640" ] || fail "tokens.yaml mode"
  [ "$(stat -c "%U %a" /etc/drgate/operator.token)" = "root 600" ] || fail "operator.token mode"
  ! ldd /usr/sbin/drgate /usr/bin/drgatectl | grep "not found" || fail "unresolved libraries"
  drgate --version
  drgatectl --version
  rc=0; drgate --config /etc/drgate/drgate.yaml --check-config 2>err || rc=$?
  [ $rc = 2 ] && grep -q "commcells\[0\].password_file.*commserv-password" err ||
    fail "check-config without the password file: exit $rc, $(cat err)"
  grep -q "identity: local-operator" /etc/drgate/tokens.yaml || fail "no operator entry"
  # docs/packaging.md, first steps as written; the token the postinst made is used there.
  bash /pkg/rehearse-vm.sh /pkg "$SIM_URL" /pkg/sim-ca.pem /pkg/password
  setpriv --reuid drgate --regid drgate --init-groups \
    drgate --config /etc/drgate/drgate.yaml --check-config
  # The CA file the rehearsal put there belongs to the operator: dpkg rightly leaves it.
  rm -f /etc/drgate/commserv-ca.pem
  dpkg --purge drgate >/dev/null
  for p in /var/lib/drgate /etc/drgate /usr/sbin/drgate /lib/systemd/system/drgate.service; do
    [ ! -e $p ] || fail "$p left after purge"
  done
  echo "install test: installed, configured, checked and purged"
' || fail "package installation test"
step "package installation in debian:12-slim"

# ------------------------------------------------------------------ 4. the image against commserv-sim
cat >"$work/etc/drgate.yaml" <<YAML
registry:
  path: /var/lib/drgate/drgate.db
shutdown_grace: 5s
tracking:
  poll_interval: 1s
auth:
  mode: insecure
commcells:
  - name: sim
    url: $sim_url/commandcenter/api
    username: drgate-svc
    password_file: /etc/drgate/password
    ca_file: /etc/drgate/sim-ca.pem
YAML
chmod 0755 "$work/etc" && chmod 0644 "$work/etc"/*
name=drgate-smoke-$$
containers+=("$name")
drgate_engine run -d --name "$name" --network host --user 10001:10001 --read-only \
  --cap-drop all --security-opt no-new-privileges \
  -v "$work/etc:/etc/drgate:ro" -v "$state:/var/lib/drgate" \
  "$image" --config /etc/drgate/drgate.yaml --grpc-listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
  >/dev/null
grpc=$(wait_line "drgate_engine logs $name" "gRPC listening on")
metrics=$(wait_line "drgate_engine logs $name" "metrics listening on")
[[ $(drgate_engine exec "$name" id -u) == 10001 ]] || fail "drgate does not run as uid 10001"
/usr/bin/python3 "$root/tests/packaging/grpc_health.py" "$grpc" "" --wait 30 || fail "gRPC health"
/usr/bin/python3 "$root/tests/packaging/grpc_health.py" "$grpc" readiness --wait 60 || fail "gRPC readiness"
curl -fsS "http://$metrics/metrics" >"$work/metrics"
grep -E "^drgate_build_info\{.*revision=\"[0-9a-f]{12}\".*version=\"$version\"" "$work/metrics" ||
  fail "/metrics has no drgate_build_info for $version"
drgate_engine exec "$name" drgatectl --server "$grpc" backup --commcell sim --type full \
  --request-id "image-smoke-$$" --wait || fail "drgatectl backup --wait inside the image"
start_ns=$(date +%s%N)
drgate_engine kill --signal TERM "$name" >/dev/null
exit_code=$(timeout 30 "${drgate_engine_cmd[@]}" wait "$name") || fail "drgate did not stop within 30 s"
stop_ms=$((($(date +%s%N) - start_ns) / 1000000))
[[ $exit_code == 0 ]] || { drgate_engine logs "$name" | tail -20 >&2; fail "exit code $exit_code after SIGTERM"; }
((stop_ms <= 5000 + 2000)) || fail "SIGTERM took $stop_ms ms (shutdown_grace 5 s)"
say "image smoke: health SERVING, /metrics, drgatectl backup --wait, SIGTERM -> exit 0 in $stop_ms ms"
step "image smoke test"

# ------------------------------------------------------------------ 5. the Kubernetes rehearsal
bash "$root/tests/packaging/rehearse-kube.sh" "$image" "$build" || fail "Kubernetes rehearsal of deploy/README.md"
step "Kubernetes rehearsal"
say "all packaging checks passed (image $image, $((size / 1000000)) MB)"
