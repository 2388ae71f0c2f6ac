#!/usr/bin/env bash
# Builds the drgate container image from the drgate Debian package (deploy/container/Containerfile).
#
# usage: tools/image.sh [--build-dir DIR] [--deb FILE] [--repository NAME] [--push]
#   --build-dir DIR    build tree to make the package in (default: build/, configured if absent);
#                      only drgate, drgatectl and their man pages are built (target `deb`)
#   --deb FILE         use this package instead of building one
#   --repository NAME  image name without tag (default: localhost/drgate); the tag is the version
#   --push             push NAME:VERSION afterwards (needs a registry and a login)
# Prints the image reference on the last line of stdout.
#
# Engine: $DRGATE_CONTAINER_ENGINE, else podman when installed, else docker. The base image
# debian:12-slim is used when the engine has it or can pull it; on a machine without a registry
# (podman as root) it is made from the Debian mirror with mmdebstrap and tagged locally, so the
# Containerfile's `FROM debian:12-slim` is the same everywhere.
# With podman, $DRGATE_CONTAINERS_DIR (if set) keeps images and containers in a store of their
# own under that folder instead of the system's (the tests use this); podman runs with runc and
# the shell's hard open-file limit (tools/container-env.sh).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

build_dir=$root/build
deb=
repository=localhost/drgate
push=0
while (($#)); do
  case $1 in
    --build-dir) build_dir=$(realpath -m "$2"); shift 2 ;;
    --deb) deb=$(realpath "$2"); shift 2 ;;
    --repository) repository=$2; shift 2 ;;
    --push) push=1; shift ;;
    -h | --help) sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "image.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

# shellcheck source=tools/container-env.sh
source "$root/tools/container-env.sh"

log() { echo "image.sh: $*" >&2; }

# 1. The package.
if [[ -z $deb ]]; then
  if [[ ! -f $build_dir/build.ninja ]]; then
    cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >&2
  fi
  cmake --build "$build_dir" -j "${DRGATE_BUILD_JOBS:-2}" --target deb >&2
  deb=$(ls "$build_dir"/packages/drgate_*.deb | sort -V | tail -n 1)
fi
[[ -f $deb ]] || { log "no package $deb"; exit 1; }
version=$(dpkg-deb -f "$deb" Version)
log "package $deb (version $version)"

# 2. The base image.
base=debian:12-slim
if ! drgate_engine image exists "$base" 2>/dev/null && ! drgate_engine image inspect "$base" >/dev/null 2>&1; then
  if ! timeout 120 "${drgate_engine_cmd[@]}" pull -q "$base" >/dev/null 2>&1; then
    if [[ ${drgate_engine_cmd[0]} != podman ]]; then
      log "cannot pull $base and only podman can import a locally made base; pull it first"
      exit 1
    fi
    log "$base cannot be pulled: making it from the Debian mirror with mmdebstrap"
    bash "$root/tools/debian-base.sh" "$base"
  fi
fi

# 3. The image, from a context that holds only the package.
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp "$deb" "$context/"
image=$repository:$version
start=$SECONDS
drgate_engine build -q -f "$root/deploy/container/Containerfile" \
  --build-arg DRGATE_VERSION="$version" -t "$image" "$context" >&2
log "built $image in $((SECONDS - start)) s"
if ((push)); then
  drgate_engine push "$image" >&2
fi
echo "$image"
