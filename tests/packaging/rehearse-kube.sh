#!/usr/bin/env bash
# The Kubernetes journey of deploy/README.md, run as written, without a cluster:
#   1. the Secrets, made by the README's own step-1 commands (each `kubectl create secret` with
#      `--dry-run=client -o json` appended, `drgatectl` from BUILD/bin), stored as podman secrets;
#   2. the README's overlay example (image, drgate.yaml and commserv-ca.pem replaced) on a copy of
#      the base, rendered with `kubectl kustomize`;
#   3. the rendered Deployment (ConfigMap, Secret, PVC and emptyDir volumes, command/args, env,
#      uid/gid, read-only root, dropped capabilities) run with `podman kube play`; the probes run
#      here as the kubelet would (podman 4.3 does not run grpc probes) until the pod is ready;
#   4. every documented `kubectl -n drgate exec deploy/drgate -- ...` line
#      (tests/packaging/rehearsed-exec.txt, checked against the documents by the unit test
#      docs_rehearsed_commands) run in the container with `podman exec`, with its expected exit;
#   5. the CronJob example's pod, run the same way against the Service name, must exit 0.
# commserv-sim from BUILD/bin stands in for the CommServe on loopback.
# Adapted where podman 4.3 falls short, and only there: hostNetwork (the simulator is on
# loopback) with the listen addresses moved to 127.0.0.1, no containerPort entries (refused with
# hostNetwork), `optional: false` on ConfigMap/Secret volumes (podman panics without it), Secret
# values base64-decoded into the podman secret (podman 4.3 does not decode them), the CronJob's
# pod template run as a Pod with drgate.drgate.svc resolving to 127.0.0.1 through a mounted
# /etc/hosts (no cluster DNS; GRPC_DNS_RESOLVER=native, since gRPC's c-ares resolver reads no
# /etc/hosts).
# Runs every step and fails at the end when one failed. Removes its pods, secrets and volumes.
# usage: tests/packaging/rehearse-kube.sh IMAGE [BUILD_DIR]   (as root; called by run.sh)
# Needs podman with catatonit, kubectl and the built commserv-sim and drgatectl.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
image=$1
build=$(realpath "${2:-$root/build}")
# shellcheck source=tools/container-env.sh
source "$root/tools/container-env.sh"

say() { echo "rehearse-kube: $*"; }
die() { echo "rehearse-kube: FAILED: $*" >&2; exit 1; }
failures=()
bad() { echo "rehearse-kube: FAILED: $*" >&2; failures+=("$*"); }
t0=$SECONDS
step_start=$SECONDS
step() { say "$1 ($((SECONDS - step_start)) s)"; step_start=$SECONDS; }

for port in 50051 8443 9464; do
  ! ss -Hltn "sport = :$port" | grep -q . || die "port $port is in use on this host (the rehearsal's pod uses the host network)"
done

work=$(mktemp -d /var/tmp/drgate-rehearse-kube.XXXXXX)
chmod 0755 "$work"
sim_pid=
plays=()
cleanup() {
  local p
  for p in "${plays[@]}"; do drgate_engine kube play --down "$p" >/dev/null 2>&1 || true; done
  drgate_engine secret rm drgate-commserv drgate-caller drgate-tls >/dev/null 2>&1 || true
  # the plays' volumes (ConfigMap, Secret, PVC) persist: remove those this run made
  comm -13 "$work/volumes.before" <(drgate_engine volume ls -q 2>/dev/null | sort) |
    xargs -r "${drgate_engine_cmd[@]}" volume rm -f >/dev/null 2>&1 || true
  [[ -n $sim_pid ]] && { kill -TERM "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT
drgate_engine volume ls -q | sort >"$work/volumes.before"
version=${image##*:}

# ------------------------------------------------------------------ the CommServe stand-in
ops=$work/operator          # the operator's working folder
mkdir -p "$ops" "$work/sim"
printf 'commserv-secret\n' >"$ops/password"
"$build/bin/commserv-sim" --listen 127.0.0.1:0 --cert-out "$work/sim" --username drgate-svc \
  --password-file "$ops/password" --job-duration-ms 2000 --quiet >"$work/sim.out" 2>&1 &
sim_pid=$!
for _ in $(seq 1 100); do grep -q "certificate" "$work/sim.out" && break; sleep 0.1; done
sim_url=$(grep -m1 "listening on" "$work/sim.out" | awk '{print $NF}')
sim_cert=$(grep -m1 "certificate" "$work/sim.out" | awk '{print $NF}')
[[ -n $sim_url && -f $sim_cert ]] || { cat "$work/sim.out" >&2; die "commserv-sim did not start"; }
step "commserv-sim at $sim_url"

# ------------------------------------------------------------------ 1. the README's Secrets
mapfile -t lines < <(python3 "$root/tests/packaging/doc_commands.py" "$root" block deploy/README.md "1. **Namespace")
((${#lines[@]} >= 3)) || die "deploy/README.md step 1 has no commands"
secrets=()
n=0
for line in "${lines[@]}"; do
  say "README step 1: $line"
  case $line in
    "kubectl create namespace "*) continue ;;   # no cluster: the pod is the namespace
    "kubectl "*"create secret "*)
      n=$((n + 1))
      (cd "$ops" && PATH=$build/bin:$PATH eval "$line --dry-run=client -o json") >"$work/secret-$n.json" ||
        die "README step 1 failed: $line"
      secrets+=("$work/secret-$n.json") ;;
    *) (cd "$ops" && PATH=$build/bin:$PATH eval "$line") || die "README step 1 failed: $line" ;;
  esac
done
for f in "${secrets[@]}"; do
  # podman 4.3 writes `data` into the files as it is: decode it first (JSON is YAML).
  name=$(python3 - "$f" "$f.decoded" <<'PY'
import base64, json, sys
s = json.load(open(sys.argv[1]))
s["data"] = {k: base64.b64decode(v).decode() for k, v in s.get("data", {}).items()}
json.dump(s, open(sys.argv[2], "w"))
print(s["metadata"]["name"])
PY
  )
  drgate_engine secret rm "$name" >/dev/null 2>&1 || true
  drgate_engine secret create "$name" "$f.decoded" >/dev/null
  say "podman secret $name: keys $(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["data"]))' "$f")"
done
step "1. Secrets from the README's commands"

# ------------------------------------------------------------------ 2. overlay, render
mkdir -p "$work/k/overlays/prod"
cp -r "$root/deploy/kubernetes/base" "$work/k/base"
# The README's overlay example, as written, with this image.
python3 - "$root/deploy/README.md" >"$work/k/overlays/prod/kustomization.yaml" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
m = re.search(r"```yaml\n(# overlays/prod/kustomization.yaml\n.*?)```", text, re.S)
if not m:
    sys.exit("deploy/README.md has no overlays/prod example")
print(m.group(1), end="")
PY
sed -i "s|newName: registry.example.com/drgate |newName: ${image%:*} |; s|newTag: .*|newTag: $version|" \
  "$work/k/overlays/prod/kustomization.yaml"
# The operator's drgate.yaml: the base's, pointed at the simulator; listening on loopback only,
# since the rehearsal's pod shares the host's network.
sed -e "s|url: https://commserve.example.com/commandcenter/api|url: $sim_url/commandcenter/api|" \
    -e "s|0\.0\.0\.0:|127.0.0.1:|" \
  "$work/k/base/drgate.yaml" >"$work/k/overlays/prod/drgate.yaml"
grep -q "$sim_url" "$work/k/overlays/prod/drgate.yaml" || die "the base's drgate.yaml has no example CommServe url to replace"
cp "$sim_cert" "$work/k/overlays/prod/commserv-ca.pem"
kubectl kustomize "$work/k/overlays/prod" >"$work/rendered.yaml" || die "kubectl kustomize"
grep -q "image: $image\$" "$work/rendered.yaml" || die "the README's overlay does not set the image: $(grep 'image:' "$work/rendered.yaml")"
step "2. overlay rendered ($(grep -c '^kind:' "$work/rendered.yaml") objects)"

# ------------------------------------------------------------------ 3. podman kube play
python3 - "$work/rendered.yaml" "$work/play.yaml" "$work/probes" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
keep = []
for d in docs:
    if d["kind"] not in ("Deployment", "ConfigMap", "PersistentVolumeClaim"):
        continue  # Service, NetworkPolicy, ServiceAccount: nothing podman can enforce
    if d["kind"] == "Deployment":
        spec = d["spec"]["template"]["spec"]
        spec["hostNetwork"] = True
        c = spec["containers"][0]
        named = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        port = lambda x: named.get(x, x)  # a probe may name a port
        c.pop("ports", None)
        with open(sys.argv[3], "w") as f:
            for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                p = c[kind]
                if "grpc" in p:
                    f.write(f"{kind} grpc {port(p['grpc']['port'])} {p['grpc'].get('service', '')}\n")
                elif "httpGet" in p:
                    f.write(f"{kind} http {port(p['httpGet']['port'])} {p['httpGet']['path']}\n")
                else:
                    sys.exit(f"rehearse-kube: no rehearsal for the probe {kind}: {p}")
                # podman would run exec/http probes as health checks; the rehearsal does it
                c.pop(kind)
        for v in spec["volumes"]:
            for k in ("secret", "configMap"):
                if k in v:
                    v[k]["optional"] = False
    keep.append(d)
yaml.safe_dump_all(keep, open(sys.argv[2], "w"), sort_keys=False)
PY
plays+=("$work/play.yaml")
drgate_engine kube play "$work/play.yaml" >"$work/play.out" 2>&1 || { cat "$work/play.out" >&2; die "podman kube play"; }
ctr=$(drgate_engine ps -a --filter label=io.kubernetes.container.name=drgate --format '{{.Names}}' 2>/dev/null | head -n1)
[[ -n $ctr ]] || ctr=$(drgate_engine ps -a --format '{{.Names}}' | grep -E -- '-drgate$' | head -n1)
[[ -n $ctr ]] || { drgate_engine ps -a >&2; die "no drgate container after kube play"; }
say "pod started, container $ctr"
probe() {  # KIND PORT SERVICE|PATH WAIT
  case $1 in
    grpc) python3 "$root/tests/packaging/grpc_health.py" "127.0.0.1:$2" "$3" --wait "$4" ;;
    http) local i; for i in $(seq 1 "$4"); do curl -fsS -o /dev/null "http://127.0.0.1:$2$3" && { echo "http $3: 200"; return 0; }; sleep 1; done; return 1 ;;
  esac
}
while read -r kind type port what; do
  wait_s=10; [[ $kind == startupProbe ]] && wait_s=60; [[ $kind == readinessProbe ]] && wait_s=60
  say "$kind: $type port $port ${what:-(server)}, up to $wait_s s"
  probe "$type" "$port" "$what" "$wait_s" || { drgate_engine logs "$ctr" 2>&1 | tail -20 >&2; die "$kind failed"; }
done <"$work/probes"
[[ $(drgate_engine exec "$ctr" id -u):$(drgate_engine exec "$ctr" id -g) == 10001:10001 ]] || bad "drgate does not run as 10001:10001"
! drgate_engine exec "$ctr" touch /usr/rehearsal 2>/dev/null || bad "the root file system is writable"
[[ $(drgate_engine exec "$ctr" sh -c 'grep ^CapEff /proc/1/status' | awk '{print $2}') == 0000000000000000 ]] || bad "capabilities left"
drgate_engine exec "$ctr" test -s /run/secrets/drgate/tokens.yaml || bad "no tokens.yaml from the Secret"
drgate_engine exec "$ctr" test -s /var/lib/drgate/drgate.db || bad "no registry on the volume"
step "3. pod ready (probes as the kubelet runs them), uid, read-only root, no capabilities"

# ------------------------------------------------------------------ 4. the documented exec lines
while IFS=$'\t' read -r want cmd; do
  [[ -z $want || $want == \#* ]] && continue
  run=${cmd//'{{ $labels.commcell }}'/prod}
  run=${run//'{{ $labels.state }}'/failed}
  run=${run//'{{ $labels.backup_type }}'/full}
  start=$SECONDS
  rc=0
  eval "drgate_engine exec $ctr $run" >"$work/exec.out" 2>&1 || rc=$?
  sed 's/^/    /' "$work/exec.out" | head -n 12
  if [[ $rc == "$want" ]]; then
    say "ok   kubectl -n drgate exec deploy/drgate -- $run  (exit $rc, $((SECONDS - start)) s)"
  else
    bad "kubectl -n drgate exec deploy/drgate -- $run: exit $rc, documented $want"
  fi
done <"$root/tests/packaging/rehearsed-exec.txt"
step "4. documented exec lines"

# ------------------------------------------------------------------ 5. the CronJob example
kubectl kustomize "$root/deploy/kubernetes/examples" >"$work/cron.yaml" || die "kubectl kustomize examples"
printf '127.0.0.1 localhost drgate.drgate.svc\n' >"$work/hosts"
chmod 0644 "$work/hosts"
python3 - "$work/cron.yaml" "$work/cron-play.yaml" "$image" "$work/hosts" <<'PY'
import sys, yaml
cron = next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "CronJob")
pod_t = cron["spec"]["jobTemplate"]["spec"]["template"]
spec = pod_t["spec"]
spec["hostNetwork"] = True
# Stand-in for cluster DNS: an /etc/hosts naming the Service (podman 4.3 ignores hostAliases
# on the host network).
spec.setdefault("volumes", []).append(
    {"name": "rehearsal-hosts", "hostPath": {"path": sys.argv[4], "type": "File"}})
for c in spec["containers"]:
    c["image"] = sys.argv[3]
    c.pop("ports", None)
    # gRPC's default resolver (c-ares) asks DNS only; the stand-in for cluster DNS is the
    # hostAliases entry in /etc/hosts, which the native resolver reads.
    c.setdefault("env", []).append({"name": "GRPC_DNS_RESOLVER", "value": "native"})
    c.setdefault("volumeMounts", []).append(
        {"name": "rehearsal-hosts", "mountPath": "/etc/hosts", "readOnly": True})
for v in spec.get("volumes", []):
    for k in ("secret", "configMap"):
        if k in v:
            v[k]["optional"] = False
pod = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": cron["metadata"]["name"], "labels": pod_t["metadata"]["labels"]},
       "spec": spec}
yaml.safe_dump(pod, open(sys.argv[2], "w"), sort_keys=False)
PY
plays+=("$work/cron-play.yaml")
drgate_engine kube play "$work/cron-play.yaml" >"$work/cron-play.out" 2>&1 || { cat "$work/cron-play.out" >&2; die "podman kube play (CronJob pod)"; }
cron_ctr=$(drgate_engine ps -a --format '{{.Names}}' | grep -E -- '-drgatectl$' | head -n1)
[[ -n $cron_ctr ]] || die "no drgatectl container of the CronJob pod"
say "CronJob pod started ($cron_ctr), waiting up to 120 s for its exit"
cron_rc=$(timeout 120 "${drgate_engine_cmd[@]}" wait "$cron_ctr") || cron_rc=timeout
drgate_engine logs "$cron_ctr" 2>&1 | sed 's/^/    /' | head -n 30
[[ $cron_rc == 0 ]] && say "ok   CronJob pod exit 0" || bad "CronJob pod: exit $cron_rc"
step "5. CronJob example"

if ((${#failures[@]})); then
  say "${#failures[@]} failure(s) in $((SECONDS - t0)) s:"
  printf '  - %s\n' "${failures[@]}" >&2
  exit 1
fi
say "the README's Kubernetes journey works as written ($((SECONDS - t0)) s)"
