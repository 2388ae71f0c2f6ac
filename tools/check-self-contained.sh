#!/usr/bin/env bash
# Fails when a file of the repository points to a path outside it: the team's reference folder
# that sits beside a checkout (a sibling directory reached with "..") is not part of drgate, so
# code, comments and docs must restate what they rely on under docs/ instead of linking there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# Built from two halves so that this script does not match itself.
pattern='\.\./'"shared"
if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  echo "check-self-contained: not a git checkout; nothing to check" >&2
  exit 0
fi
if hits=$(git grep -n -I -E "$pattern" -- . 2>/dev/null); then
  echo "These lines point outside the repository; restate what they need under docs/:" >&2
  echo "$hits" >&2
  exit 1
fi
echo "check-self-contained: $(git ls-files | wc -l) tracked files, none points outside the repository"
