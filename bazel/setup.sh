#!/usr/bin/env bash
# Install what Tributary's build and tests need on Debian 12, idempotently.
#
# - Debian packages: installed only when missing; each one is named as it goes.
# - google-proto-files (npm tarball with Google's official .proto files):
#   fetched with `npm pack` into googleapis/, pinned by version and checked
#   against the sha512 integrity recorded in googleapis/protos.bzl.
#
# Usage: bazel/setup.sh            (run from anywhere; needs root for apt-get)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)

packages=(
  bazel-bootstrap bazel-rules-java default-jdk-headless
  build-essential pkg-config ca-certificates openssl
  libgrpc-dev libssl-dev
  protobuf-compiler nanopb libnanopb-dev
  libgtest-dev
  libjansson-dev libsqlite3-dev
  libhttp-parser-dev
  python3
  systemd
  clang libclang-rt-dev
  gnuplot-nox wrk nginx
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
# Node.js and npm may come from Debian or from NodeSource (which bundles npm).
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  echo "setup: installed ${#missing[@]} package(s)"
else
  echo "setup: Debian packages present"
fi

# Google's official protos, pinned and integrity-checked.
version=$(sed -n 's/^GOOGLE_PROTO_FILES_VERSION = "\(.*\)"/\1/p' "$top/googleapis/protos.bzl")
want=$(sed -n 's/^GOOGLE_PROTO_FILES_INTEGRITY = "\(.*\)"/\1/p' "$top/googleapis/protos.bzl")
tgz="$top/googleapis/google-proto-files-$version.tgz"
check() { [ -f "$tgz" ] && [ "sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)" = "$want" ]; }
if check; then
  echo "setup: google-proto-files@$version present and verified"
else
  echo "setup: fetching google-proto-files@$version (npm pack)"
  rm -f "$tgz"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "google-proto-files@$version" >/dev/null)
  mv "$tmp/google-proto-files-$version.tgz" "$tgz"
  rm -rf "$tmp"
  if ! check; then
    echo "setup: google-proto-files@$version does not match $want; refusing it" >&2
    rm -f "$tgz"
    exit 1
  fi
  echo "setup: google-proto-files@$version verified ($want)"
fi

# Google's official Node.js clients for the conformance tests and benchmarks
# (tests/conformance, perf/node): exact versions from the committed lockfile.
for dir in tests/conformance perf/node; do
  [ -f "$top/$dir/package-lock.json" ] || continue
  if [ -d "$top/$dir/node_modules" ] &&
     [ "$top/$dir/node_modules/.package-lock.json" -nt "$top/$dir/package-lock.json" ]; then
    echo "setup: $dir node modules present"
  else
    echo "setup: npm ci in $dir"
    (cd "$top/$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done
