#!/usr/bin/env bash
# Builds the libFuzzer targets with clang into build-fuzz/ (configured once, next to build/) and
# runs each one for a fixed time on its committed seed corpus (tests/fuzz/corpus/<target>/).
# New interesting inputs go to build-fuzz/corpus/<target>/ (the committed corpus is only read);
# a crash leaves its input in build-fuzz/artifacts/ and fails the run.
#
# Usage: tests/fuzz/run.sh [--seconds N] [target...]
#   targets: json_response xml_response job_summary config time http_request http_framing
#            (default: all)
#   --seconds N   time per target (default 15: the CTest test runs all seven in about 105 s)
# Longer runs: tests/fuzz/run.sh --seconds 3600 json_response   (see docs/reliability.md).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
seconds=15
targets=()
while (($#)); do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
((${#targets[@]})) || targets=(json_response xml_response job_summary config time http_request
                                http_framing)

build=${DRGATE_FUZZ_BUILD_DIR:-$root/build-fuzz}
cxx=${DRGATE_FUZZ_CXX:-$(command -v clang++-14 || command -v clang++)}
if [[ ! -f $build/build.ninja ]]; then
  cmake -S "$root/tests/fuzz" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" >/dev/null
fi
cmake --build "$build" -j "${DRGATE_BUILD_JOBS:-2}" --target "${targets[@]/#/fuzz_}"

mkdir -p "$build/artifacts"
status=0
for t in "${targets[@]}"; do
  mkdir -p "$build/corpus/$t"
  echo "fuzz: $t for ${seconds}s"
  # -timeout: one input taking longer than 10 s is a hang; -rss_limit_mb: a runaway allocation.
  # detect_leaks stays on: a leak in a decoder is a bug too.
  if ! "$build/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -max_len=65536 -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-" \
      "$build/corpus/$t" "$root/tests/fuzz/corpus/$t" 2> "$build/$t.log"; then
    echo "fuzz: $t FAILED; its input is in $build/artifacts/ (log: $build/$t.log)" >&2
    tail -n 60 "$build/$t.log" >&2
    status=1
  else
    grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "$build/$t.log" | tail -2 || true
  fi
done
exit $status
