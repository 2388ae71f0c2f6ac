#!/usr/bin/env bash
# Writes proto/baseline/drgate_v1.binpb: the descriptor set of proto/drgate/v1 (with its imports,
# without source comments) that the test proto_compatibility compares the API against.
#
# Run it only to accept the current API as the new baseline, after the changes passed
# proto_compatibility (additions) or after a deliberate decision to break (a new package
# version), and commit the baseline on its own, in a commit that says why:
#   bash tools/proto-baseline.sh && git commit -m "proto baseline: <why>" proto/baseline
# usage: tools/proto-baseline.sh [--check]   (--check: exit 1 if the baseline differs)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$root/proto/baseline/drgate_v1.binpb
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
googleapis=${DRGATE_GOOGLEAPIS_DIR:-/usr/share/gocode/src/github.com/gogo/googleapis}
protoc --proto_path="$root/proto" --proto_path="$googleapis" --include_imports \
  --descriptor_set_out="$tmp" \
  drgate/v1/drgate.proto
if [[ ${1:-} == --check ]]; then
  if cmp -s "$tmp" "$out"; then
    echo "proto-baseline: $out is the current API"
    exit 0
  fi
  echo "proto-baseline: $out differs from the current API" >&2
  exit 1
fi
mkdir -p "$(dirname "$out")"
install -m 0644 "$tmp" "$out"
echo "proto-baseline: wrote $out; commit it on its own (git add proto/baseline)"
