#!/usr/bin/env bash
# Installs every Debian 12 package drgate needs to build, test and run its demo.
# Idempotent: packages already installed are skipped, and apt-get is not called at all when
# nothing is missing (so a warm machine pays no network round trip).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates curl openssl
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto
  golang-github-gogo-googleapis-dev
  # protoc-gen-swagger: the OpenAPI document of the HTTP/JSON routes, made from drgate.proto at
  # build time (proto/CMakeLists.txt; docs/http.md).
  golang-grpc-gateway
  libboost-dev libboost-system-dev libssl-dev
  prometheus-cpp-dev libgtest-dev libgmock-dev
  libsqlite3-dev sqlite3 libpq-dev postgresql nlohmann-json3-dev libpugixml-dev libyaml-cpp-dev libcli11-dev
  libspdlog-dev libfmt-dev
  prometheus clang-format
  # examples/ and their tests: the Go operator (offline GOPATH build), Ansible, Python clients.
  # golang-github-golang-protobuf-1-5-dev is named so apt does not pick -1-3-dev for grpc-go:
  # that one cannot marshal the messages protoc-gen-go 1.28 generates (a panic at run time).
  golang-go golang-google-grpc-dev golang-google-protobuf-dev golang-google-genproto-dev
  golang-github-golang-protobuf-1-5-dev
  protoc-gen-go protoc-gen-go-grpc ansible-core python3-grpcio python3-protobuf
  # Reliability tests (issue 6): clang-14 + libclang-rt-14-dev (libFuzzer's runtime and clang's
  # sanitizer runtimes) build the fuzz targets; python3 runs the crash test driver and the soak.
  clang-14 libclang-rt-14-dev python3
  # Packaging (tests/packaging/run.sh): the Debian package (dpkg-shlibdeps from dpkg-dev,
  # help2man for the man pages, lintian), its systemd unit (systemd-analyze), and the container
  # image built without a registry: podman/buildah with runc, a debian:12-slim base made by
  # mmdebstrap from the Debian mirror. catatonit: the pod's infra process, which
  # `podman kube play` needs for the Kubernetes rehearsal (tests/packaging/rehearse-kube.sh).
  dpkg-dev help2man lintian systemd podman buildah runc mmdebstrap uidmap catatonit
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "drgate setup: all ${#packages[@]} Debian packages are installed" >&2
  exit 0
fi

echo "drgate setup: installing ${#missing[@]} of ${#packages[@]} Debian packages" \
  "(apt-get; a fresh machine takes a minute or two): ${missing[*]}" >&2
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
  sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "drgate setup: ${#missing[@]} package(s) installed in ${SECONDS}s" >&2
