#!/usr/bin/env bash
# The whole test suite: set-up, build, then every CTest test (unit and integration, which start
# commserv-sim and drgate on loopback ports chosen at run time; the crash test; the time-boxed
# fuzz run), then the Debian package and the container image (tests/packaging/run.sh), then the
# same suite under AddressSanitizer + UndefinedBehaviorSanitizer (build-asan)
# and the concurrency tests under ThreadSanitizer (build-tsan), see tools/sanitizers.sh.
# Usage: tools/test.sh [extra ctest arguments, e.g. -L unit or -R Codec]
#   With extra arguments only the selected tests of build/ run (no sanitizer stages).
#   DRGATE_QUICK=1 skips the sanitizer stages too (for a developer's quick loop; CI runs them).
# CI=true builds build/ with warnings as errors (DRGATE_WERROR=ON); not yet the sanitizer builds
# (see tools/sanitizers.sh).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

if [[ ${CI:-} == true ]]; then
  export DRGATE_WERROR=ON
fi
# Everything: the tests, the fuzz and bench helpers, and the binaries they start.
bash tools/build.sh
ctest --test-dir build --output-on-failure --timeout 300 -j "${DRGATE_TEST_JOBS:-2}" "$@"

if [[ ${DRGATE_QUICK:-0} == 1 || $# -gt 0 ]]; then
  exit 0
fi
# The Debian package and the container image made from it (docs/packaging.md): lintian, the
# systemd unit, installation into a fresh Debian 12, the image run as Kubernetes runs it.
start=$SECONDS
bash tests/packaging/run.sh build
echo "drgate test: packaging stage took $((SECONDS - start)) s"
for stage in asan tsan; do
  start=$SECONDS
  bash tools/sanitizers.sh "$stage"
  echo "drgate test: $stage stage took $((SECONDS - start)) s"
done
