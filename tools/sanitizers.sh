#!/usr/bin/env bash
# The sanitizer stages of tools/test.sh, each in a build folder of its own next to build/:
#   tools/sanitizers.sh asan   build-asan: everything built with AddressSanitizer and
#                              UndefinedBehaviorSanitizer (gcc, -O1, no debug info), then the
#                              whole CTest suite against it (the integration tests start the
#                              instrumented drgate, commserv-sim and drgatectl).
#   tools/sanitizers.sh tsan   build-tsan: ThreadSanitizer, only the tests of concurrent code
#                              that does not depend on gRPC's (uninstrumented) internals.
# Lean on purpose: -O1 -g0 keeps the compile time down (the stack traces still name functions),
# and the TSan folder builds only the test binaries it runs.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
stage=${1:?usage: tools/sanitizers.sh asan|tsan}
jobs=${DRGATE_BUILD_JOBS:-2}

# Warnings are not errors here, not even under CI=true (tools/test.sh): the instrumented gcc -O1
# builds have not yet been checked to be warning-free (gcc's flow-based warnings see the
# instrumented code). build/ compiles the same sources with -Werror in CI.
configure() {  # folder, sanitizers
  if [[ ! -f $1/build.ninja ]]; then
    # Debug with its flags replaced: no -g, -O1, and assertions stay on (no NDEBUG).
    cmake -S . -B "$1" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-O1 \
      -DDRGATE_SANITIZE="$2" -DDRGATE_BUILD_BENCH=OFF >/dev/null
  fi
}

case $stage in
  asan)
    configure build-asan address,undefined
    cmake --build build-asan -j "$jobs"
    # detect_leaks: a leak fails the test too. The deploy checks and format_check do not run
    # drgate code, the fuzz run has its own instrumented build, and the examples test clients
    # in Go, Python and Ansible against paths the integration tests already cover: skipped here.
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=0
    export LSAN_OPTIONS=suppressions=$root/tools/sanitizers/lsan.supp:print_suppressions=0
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    ctest --test-dir build-asan --output-on-failure --timeout 600 -j "${DRGATE_TEST_JOBS:-2}" \
      -E '^(format_check|promtool_.*|grafana_dashboard_json|kustomize_.*|container_runtime_packages|fuzz_.*|examples_.*)$'
    ;;
  tsan)
    configure build-tsan thread
    # The concurrent parts of core: orchestrator (in-flight map, coalescing, thread pools),
    # the keyed read pool, tracker + watch hub, WatchJob's stream state machine (kept out of the
    # gRPC reactor for this), the registry's connection pool, the session's shared login and the
    # Beast transport's strands. gRPC is not in any of them: its prebuilt libraries are not
    # instrumented, so TSan would see only half of each synchronisation there.
    tests=(orchestrator_test keyed_executor_test watch_stream_test tracker_test registry_test
           session_test transport_test)
    cmake --build build-tsan -j "$jobs" --target "${tests[@]}"
    export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$root/tools/sanitizers/tsan.supp"
    for t in "${tests[@]}"; do
      echo "tsan: $t"
      build-tsan/tests/"$t" --gtest_brief=1
    done
    ;;
  *) echo "usage: tools/sanitizers.sh asan|tsan" >&2; exit 2 ;;
esac
