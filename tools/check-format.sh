#!/usr/bin/env bash
# Fails when a C++ source under core/, plugin/, tools/, tests/ or bench/ is not clang-format clean.
# With --fix, formats them in place instead.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mapfile -t files < <(find core plugin tools tests bench examples -type f \( -name '*.cc' -o -name '*.h' \) 2>/dev/null | sort)
if [[ ${1:-} == --fix ]]; then
  clang-format -i "${files[@]}"
  exit 0
fi
clang-format --dry-run --Werror "${files[@]}"
echo "clang-format: ${#files[@]} files clean"
