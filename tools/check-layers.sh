#!/usr/bin/env bash
# Fails when a file under core/<folder>/ includes a header of a core/ folder that its library does
# not link (core/CMakeLists.txt, written to BUILD/core_layers.txt at configure time), or includes
# plugin/ or generated protobuf code: the dependency direction inside core/ is the build's.
# Every include form counts: "..." and <...>, with or without spaces after '#', so neither
# `#include <grpcpp/grpcpp.h>` nor `#  include "drgate/v1/drgate.pb.h"` slips through.
# Usage: tools/check-layers.sh BUILD_DIR [SOURCE_ROOT]
#   SOURCE_ROOT: the tree whose core/ is checked (default: this repository; the test of this
#   script, tests/tools/check_layers_test.sh, points it at fixture trees).
set -euo pipefail
root=${2:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
layers=${1:?usage: tools/check-layers.sh BUILD_DIR [SOURCE_ROOT]}/core_layers.txt
[[ -f $layers ]] || { echo "check-layers: $layers is missing (configure first)" >&2; exit 2; }
declare -A allowed
while IFS=: read -r folder deps; do
  [[ -n $folder ]] && allowed[$folder]="$folder $deps"
done <"$layers"
bad=0
for dir in "$root"/core/*/; do
  folder=$(basename "$dir")
  if [[ -z ${allowed[$folder]+x} ]]; then
    echo "core/$folder has no library in core/CMakeLists.txt" >&2
    bad=1
    continue
  fi
  while IFS= read -r hit; do
    file=${hit%%:*}
    rest=${hit#*:}
    line=${rest%%:*}
    target=$(sed -E 's/^[0-9]+:[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]([^>"]+)[>"].*/\1/' \
      <<<"$rest")
    case $target in
      core/*)
        dep=$(cut -d/ -f2 <<<"$target")
        if [[ " ${allowed[$folder]} " != *" $dep "* ]]; then
          echo "${file#"$root"/}:$line includes $target, but core/$folder may only use: ${allowed[$folder]}" >&2
          bad=1
        fi
        ;;
      plugin/*)
        echo "${file#"$root"/}:$line includes $target: core/ does not depend on plugin/" >&2
        bad=1
        ;;
      drgate/* | google/* | grpc*)
        echo "${file#"$root"/}:$line includes $target: core/ has no gRPC or protobuf dependency" >&2
        bad=1
        ;;
    esac
  done < <(grep -HnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]' "$dir"*.h "$dir"*.cc \
    2>/dev/null || true)
done
if ((bad)); then exit 1; fi
echo "check-layers: every core/ include follows core/CMakeLists.txt (${#allowed[@]} libraries)"
