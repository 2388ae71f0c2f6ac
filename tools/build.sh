#!/usr/bin/env bash
# Installs what is missing (Debian 12 packages), configures build/ once, and builds everything.
# Shared by tools/demo.sh and tools/test.sh; safe to run again (reuses build/).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

bash tools/setup/install-deps.sh

if [[ ! -f build/build.ninja ]]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
# -j2: the machines have 2 cores; more jobs only add memory pressure.
cmake --build build -j "${DRGATE_BUILD_JOBS:-2}"
