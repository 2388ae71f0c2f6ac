#!/usr/bin/env bash
# Installs what is missing (Debian 12 packages), configures build/ once, and builds.
# Shared by tools/demo.sh and tools/test.sh; safe to run again (reuses build/).
# Usage: tools/build.sh [target...]
#   No target: everything (tests, fuzz helpers, benchmarks; what tools/test.sh needs).
#   Targets: only those and what they depend on (tools/demo.sh builds its three binaries).
# DRGATE_WERROR=ON|OFF (tools/test.sh sets ON when CI=true) configures build/ with warnings as
# errors, or back without; unset keeps what build/ was configured with (OFF when new).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
targets=("$@")

bash tools/setup/install-deps.sh

configure_args=()
if [[ -n ${DRGATE_WERROR:-} ]]; then
  configure_args+=("-DDRGATE_WERROR=$DRGATE_WERROR")
fi
if [[ ! -f build/build.ninja ]]; then
  echo "drgate build: configuring build/ (CMake, Ninja, RelWithDebInfo)"
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${configure_args[@]}" >/dev/null
elif [[ -n ${DRGATE_WERROR:-} ]] &&
  ! grep -qx "DRGATE_WERROR:BOOL=$DRGATE_WERROR" build/CMakeCache.txt; then
  echo "drgate build: reconfiguring build/ with DRGATE_WERROR=$DRGATE_WERROR"
  cmake -S . -B build "${configure_args[@]}" >/dev/null
fi

# What is out of date: Ninja's dry run lists the steps without running them (after CMake has
# regenerated build.ninja, if a CMakeLists.txt changed: a dry run would only list that step).
ninja -C build build.ninja >/dev/null
steps=$(ninja -C build -n "${targets[@]}" | grep -c '^\[' || true)
what=${targets[*]:-every target}
if ((steps == 0)); then
  echo "drgate build: $what up to date"
  exit 0
fi
echo "drgate build: building $what: $steps step(s), -j${DRGATE_BUILD_JOBS:-2}"
# -j2: the machines have 2 cores; more jobs only add memory pressure.
# NINJA_STATUS: each line starts with [done/total percent elapsed] as the build goes.
target_args=()
if ((${#targets[@]})); then
  target_args=(--target "${targets[@]}")
fi
NINJA_STATUS="[%f/%t %p %es] " cmake --build build -j "${DRGATE_BUILD_JOBS:-2}" "${target_args[@]}"
echo "drgate build: done in ${SECONDS}s"
