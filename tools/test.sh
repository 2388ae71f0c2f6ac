#!/usr/bin/env bash
# The whole test suite: set-up, build, then every CTest test (unit and integration, which start
# commserv-sim and drgate on loopback ports chosen at run time).
# Usage: tools/test.sh [extra ctest arguments, e.g. -L unit or -R Codec]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

bash tools/build.sh
ctest --test-dir build --output-on-failure --timeout 300 -j "${DRGATE_TEST_JOBS:-2}" "$@"
