# Sourced by tools/image.sh and the packaging tests: which container engine to use, and how.
#
# drgate_engine ARGS...  runs the engine (podman or docker) with the settings below.
# With podman:
#   - runc as the OCI runtime and the shell's hard open-file limit as the containers' default:
#     on hosts whose cgroup setup crun cannot handle, or that refuse podman's default limits,
#     these work, and they work everywhere else too (a containers.conf of our own, unless
#     CONTAINERS_CONF is already set);
#   - $DRGATE_CONTAINERS_DIR set: images, containers and their run state live under it
#     (a storage.conf of our own), never in the system's store.
# shellcheck shell=bash

if [[ -n ${DRGATE_CONTAINER_ENGINE:-} ]]; then
  drgate_engine_cmd=("$DRGATE_CONTAINER_ENGINE")
elif command -v podman >/dev/null; then
  drgate_engine_cmd=(podman)
elif command -v docker >/dev/null; then
  drgate_engine_cmd=(docker)
else
  echo "no container engine: install podman (tools/setup/install-deps.sh) or docker" >&2
  return 1 2>/dev/null || exit 1
fi

if [[ ${drgate_engine_cmd[0]} == podman ]]; then
  drgate_conf_dir=${DRGATE_CONTAINERS_DIR:-${XDG_RUNTIME_DIR:-/tmp}/drgate-podman-$(id -u)}
  mkdir -p "$drgate_conf_dir"
  if [[ -z ${CONTAINERS_CONF:-} ]]; then
    hard_nofile=$(ulimit -Hn)
    [[ $hard_nofile == unlimited ]] && hard_nofile=1048576
    runtime_line=
    command -v runc >/dev/null && runtime_line='runtime = "runc"'
    cat >"$drgate_conf_dir/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$hard_nofile:$hard_nofile", "nproc=32768:32768"]
[engine]
$runtime_line
CONF
    export CONTAINERS_CONF=$drgate_conf_dir/containers.conf
  fi
  if [[ -n ${DRGATE_CONTAINERS_DIR:-} ]]; then
    mkdir -p "$DRGATE_CONTAINERS_DIR/storage" "$DRGATE_CONTAINERS_DIR/run"
    cat >"$DRGATE_CONTAINERS_DIR/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$DRGATE_CONTAINERS_DIR/storage"
runroot = "$DRGATE_CONTAINERS_DIR/run"
CONF
    export CONTAINERS_STORAGE_CONF=$DRGATE_CONTAINERS_DIR/storage.conf
  fi
fi

drgate_engine() { "${drgate_engine_cmd[@]}" "$@"; }
