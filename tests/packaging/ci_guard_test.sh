#!/usr/bin/env bash
# tests/packaging/run.sh as a user that is not root: skipped (exit 0) for a developer, failed
# (exit 1, saying why) under CI=true. Run as root, the check drops to nobody with setpriv.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
as_user=()
if [[ $(id -u) == 0 ]]; then
  as_user=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
fi
run() {  # CI value -> sets rc and out
  rc=0
  out=$(cd / && "${as_user[@]}" env -u CI ${1:+CI=$1} bash "$root/tests/packaging/run.sh" \
    /nonexistent 2>&1) || rc=$?
}
failures=0
expect() {  # case, expected rc, expected text
  if [[ $rc != "$2" || $out != *"$3"* ]]; then
    echo "FAIL: $1: exit $rc, expected $2 with '$3'; output: $out" >&2
    failures=$((failures + 1))
  fi
}
run ""
expect "no CI" 0 "packaging: SKIPPED: needs root"
run true
expect "CI=true" 1 "packaging: FAILED: needs root"
run false
expect "CI=false" 0 "packaging: SKIPPED: needs root"
((failures == 0)) || exit 1
echo "ci_guard_test: passed"
