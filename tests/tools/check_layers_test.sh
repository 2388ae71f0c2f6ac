#!/usr/bin/env bash
# The test of tools/check-layers.sh: fixture trees (core/common, core/jobs; jobs may use common)
# with one include each, checked with the script. Every include form of gRPC, protobuf, generated
# drgate.v1 code or plugin/ in core/ must fail, naming the file and the include; allowed ones pass.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

# check EXPECTED_EXIT LINE: a tree whose core/common/file.cc has LINE, checked.
check() {
  local expected=$1 line=$2 tree="$tmp/tree" rc=0
  rm -rf "$tree"
  mkdir -p "$tree/core/common" "$tree/core/jobs" "$tmp/build"
  printf 'common: \njobs: common\n' >"$tmp/build/core_layers.txt"
  printf '#include "core/common/status.h"\n' >"$tree/core/jobs/ok.cc"
  printf '// fixture\n#include <string>\n%s\n' "$line" >"$tree/core/common/file.cc"
  bash "$root/tools/check-layers.sh" "$tmp/build" "$tree" >"$tmp/out" 2>&1 || rc=$?
  if [[ $rc != "$expected" ]]; then
    echo "FAIL: '$line': exit $rc, expected $expected" >&2
    cat "$tmp/out" >&2
    failures=$((failures + 1))
  elif [[ $expected == 1 ]] && ! grep -q "core/common/file.cc:3 includes" "$tmp/out"; then
    echo "FAIL: '$line': the refusal does not name core/common/file.cc:3" >&2
    cat "$tmp/out" >&2
    failures=$((failures + 1))
  fi
}

check 1 '#include <grpcpp/grpcpp.h>'
check 1 '#include <grpc/grpc.h>'
check 1 '#include <grpc++/grpc++.h>'
check 1 '#include "grpcpp/server.h"'
check 1 '#include <drgate/v1/drgate.pb.h>'
check 1 '#include "drgate/v1/drgate.grpc.pb.h"'
check 1 '#include <google/protobuf/message.h>'
check 1 '#  include <grpcpp/grpcpp.h>'
check 1 '  #include "plugin/server.h"'
check 1 '#include <plugin/server.h>'
check 1 '#include "core/jobs/orchestrator.h"'  # common may not use jobs
check 1 '#include <core/jobs/orchestrator.h>'
check 0 '#include "core/common/job.h"'
check 0 '#include <nlohmann/json.hpp>'
check 0 '#include <vector>'

if ((failures)); then
  echo "check_layers_test: $failures case(s) failed" >&2
  exit 1
fi
echo "check_layers_test: 15 cases passed"
