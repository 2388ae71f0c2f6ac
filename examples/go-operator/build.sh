#!/usr/bin/env bash
# Builds drgate-upgrade-gate offline with Debian's Go toolchain, in GOPATH mode:
#   golang-go, golang-google-grpc-dev, golang-google-protobuf-dev, golang-google-genproto-dev,
#   protoc-gen-go, protoc-gen-go-grpc (and protobuf-compiler for protoc).
# The Go code of proto/drgate/v1/drgate.proto is generated here, into OUT_DIR/gopath (never
# committed); its go_package "drgate/gen/drgate/v1" is the import path main.go uses.
# Nothing is downloaded: GOPROXY=off, GOTOOLCHAIN=local, modules off.
#
# usage: build.sh [OUT_DIR]   (default: <repo>/build/examples/go-operator)
# Writes OUT_DIR/drgate-upgrade-gate. The Go build cache is OUT_DIR/gocache unless GOCACHE is set.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=$(mkdir -p "${1:-$repo/build/examples/go-operator}" && cd "${1:-$repo/build/examples/go-operator}" && pwd)

# grpc-go marshals through github.com/golang/protobuf: version 1.3 (golang-github-golang-protobuf-1-3-dev,
# which apt may pick for golang-google-grpc-dev) builds, then panics on protoc-gen-go 1.28 messages.
if [[ -e /usr/share/gocode/src/github.com/golang/protobuf/proto/table_unmarshal.go ]]; then
  echo "build.sh: github.com/golang/protobuf is version 1.3; install golang-github-golang-protobuf-1-5-dev" >&2
  exit 1
fi

gopath=$out/gopath
rm -rf "$gopath/src/drgate"
mkdir -p "$gopath/src"
# drgate.proto imports google/api/annotations.proto (its HTTP routes); Debian's copy of that file
# names no usable go_package, so its import path is given: genproto's package, which
# golang-google-genproto-dev installs.
googleapis=/usr/share/gocode/src/github.com/gogo/googleapis
genproto=google.golang.org/genproto/googleapis/api/annotations
protoc --proto_path="$repo/proto" --proto_path="$googleapis" \
  --go_opt=Mgoogle/api/annotations.proto=$genproto --go_opt=Mgoogle/api/http.proto=$genproto \
  --go-grpc_opt=Mgoogle/api/annotations.proto=$genproto \
  --go-grpc_opt=Mgoogle/api/http.proto=$genproto \
  --go_out="$gopath/src" --go-grpc_out="$gopath/src" \
  "$repo/proto/drgate/v1/drgate.proto"

export GO111MODULE=off GOPROXY=off GOTOOLCHAIN=local GOFLAGS= CGO_ENABLED=0
export GOPATH="$gopath:/usr/share/gocode"
export GOCACHE="${GOCACHE:-$out/gocache}"
cd "$here"
go build -o "$out/drgate-upgrade-gate" .
echo "built $out/drgate-upgrade-gate"
