#!/usr/bin/env bash
# Checks that the runtime stage of deploy/container/Containerfile installs exactly the Debian
# packages whose shared libraries the built binaries load (`ldd` on each binary, each library
# resolved to its package with `dpkg -S`), plus ca-certificates. Catches a new dependency or a
# soname bump (the image would fail at start with "error while loading shared libraries") and a
# package no binary needs any more (the image should carry only what drgate loads).
#
# usage: check_runtime_packages.sh CONTAINERFILE BINARY...
set -euo pipefail

containerfile=$1
shift
# The runtime stage without comments: from its FROM line to the end of the file.
stage=$(sed -n '/^FROM .* AS runtime/,$p' "$containerfile" | grep -v '^[[:space:]]*#' || true)
if [[ -z $stage ]]; then
  echo "check_runtime_packages: no 'FROM ... AS runtime' stage in $containerfile" >&2
  exit 1
fi
# Its words, one a line (line continuations removed).
words=$(tr -s '[:space:]' '\n' <<<"${stage//\\/ }")

package_of() {  # the package owning a library path (merged /usr: try both spellings)
  local lib=$1 candidate out
  for candidate in "$(readlink -f "$lib")" "$lib" "/usr$lib" "${lib#/usr}"; do
    if out=$(dpkg -S "$candidate" 2>/dev/null); then
      out=${out%%:*}        # "pkg:arch: /path" or "pkg: /path"
      echo "${out%%,*}"     # first of several owners
      return 0
    fi
  done
  return 1
}

status=0
declare -A seen=()
if (($# == 0)); then
  echo "check_runtime_packages: no binary given" >&2
  exit 1
fi
for bin in "$@"; do
  if ! libs=$(ldd "$bin"); then
    echo "check_runtime_packages: ldd $bin failed (not built?)" >&2
    status=1
    continue
  fi
  if grep -q 'not found' <<<"$libs"; then
    echo "check_runtime_packages: $bin has unresolved libraries:" >&2
    grep 'not found' <<<"$libs" >&2
    status=1
  fi
  while read -r lib; do
    pkg=$(package_of "$lib") || {
      echo "check_runtime_packages: no Debian package owns $lib (needed by $bin)" >&2
      status=1
      continue
    }
    [[ -n ${seen[$pkg]:-} ]] && continue
    seen[$pkg]=1
    if ! grep -Fqx -- "$pkg" <<<"$words"; then
      echo "check_runtime_packages: $containerfile runtime stage lacks $pkg (owns $lib, needed by $bin)" >&2
      status=1
    fi
  done < <(awk '$2 == "=>" && $3 ~ /^\// {print $3}' <<<"$libs")
done

# The other direction: every package of the runtime stage's `apt-get install` is needed; besides
# the libraries only ca-certificates (the trust store CommServe certificates are verified against).
extra_allowed=(ca-certificates)
# The words between `apt-get install` and the next `&&`, without options.
installed=$(tr '\n' ' ' <<<"$words" | sed -n 's/.*apt-get install \([^&]*\)&&.*/\1/p' |
  tr ' ' '\n' | grep -E '^[a-z0-9][a-z0-9+.-]+$' || true)
for pkg in $installed; do
  if [[ -z ${seen[$pkg]:-} ]] && ! printf '%s\n' "${extra_allowed[@]}" | grep -qxF -- "$pkg"; then
    echo "check_runtime_packages: $containerfile installs $pkg, which none of $* needs" >&2
    status=1
  fi
done

for pkg in "${extra_allowed[@]}"; do
  if ! grep -qxF -- "$pkg" <<<"$installed"; then
    echo "check_runtime_packages: $containerfile does not install $pkg" >&2
    status=1
  fi
done

if ((status == 0 && ${#seen[@]} == 0)); then
  echo "check_runtime_packages: no shared library found in $*" >&2
  status=1
elif ((status == 0)); then
  echo "check_runtime_packages: ${#seen[@]} packages, all in the runtime stage: ${!seen[*]}"
fi
exit $status
