#!/usr/bin/env bash
# One version everywhere: project(VERSION) of CMakeLists.txt (passed in by CMake) must be what
# `drgate --version` and `drgatectl --version` print, the kustomize base's image tag, every
# `drgate:X.Y.Z` image reference in deploy/, examples/ and the documentation, and the newest
# release of CHANGELOG.md. (drgate_build_info and the Debian package take the same CMake
# variable; the image's tag is the package's version, tools/image.sh.)
# usage: check_version.sh VERSION SOURCE_DIR DRGATE DRGATECTL
set -euo pipefail
version=$1 src=$2 drgate=$3 drgatectl=$4
status=0
bad() { echo "check_version: $*" >&2; status=1; }

re_version=${version//./\\.}
for bin in "$drgate" "$drgatectl"; do
  name=$(basename "$bin")
  out=$("$bin" --version)
  if ! grep -qE "^$name $re_version \(revision ([0-9a-f]{12}|unknown), [A-Za-z]+ build\)$" <<<"$out"; then
    bad "$name --version prints '$out', expected '$name $version (revision <12 hex digits>, <build type> build)'"
  fi
done

tag=$(sed -n 's/^ *newTag: *//p' "$src/deploy/kubernetes/base/kustomization.yaml")
[[ $tag == "$version" ]] || bad "deploy/kubernetes/base/kustomization.yaml: newTag '$tag', expected $version"

# Image references with a version, in manifests and docs.
while IFS= read -r hit; do
  ref=${hit#*:*:}                    # file:line:match
  [[ $ref == *"drgate:$version" ]] || bad "$hit: expected the image tag $version"
done < <(cd "$src" && grep -rnoE '[A-Za-z0-9./-]*drgate:[0-9]+\.[0-9]+\.[0-9]+' \
           --include='*.yaml' --include='*.md' --include='*.sh' --include='Containerfile' \
           deploy examples docs README.md tools 2>/dev/null || true)

# Kustomize image tags written in overlays and docs.
while IFS= read -r hit; do
  [[ $hit == *"newTag: $version" ]] || bad "$hit: expected newTag: $version"
done < <(cd "$src" && grep -rnE '^\s*newTag: ' --include='*.yaml' --include='*.md' \
           deploy examples docs README.md 2>/dev/null || true)

release=$(grep -m1 -oE '^## \[[0-9]+\.[0-9]+\.[0-9]+\]' "$src/CHANGELOG.md" | tr -d '#[] ' || true)
[[ $release == "$version" ]] || bad "CHANGELOG.md: newest release '$release', expected $version"

if ((status == 0)); then
  echo "check_version: $version in --version, the kustomize base, image references and CHANGELOG.md"
fi
exit $status
