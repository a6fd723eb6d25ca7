#!/usr/bin/env bash
# runtime_libs_check.sh BINARY — every shared library BINARY loads (ldd)
# belongs to a Debian package in the dependency closure of the runtime
# packages deploy/Dockerfile installs, i.e. the runtime image (and the VMs,
# deploy/gce/startup.sh installs the same list) can run it.
#
# Usage: bazel build -c opt //src/cli:tributary &&
#        deploy/test/runtime_libs_check.sh "$(bazel info -c opt bazel-bin)/src/cli/tributary"
# Needs dpkg and apt-cache (Debian 12). Exit 0 pass, 1 fail, 2 usage.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-}
[ -x "$bin" ] || { echo "usage: $0 BINARY" >&2; exit 2; }
# The runtime stage's apt-get install line(s), up to the first `&&`.
want=$(sed -n '/^FROM debian:12-slim/,$p' "$here/../Dockerfile" |
       sed -n '/apt-get install/,/&&/p' | tr '\\\n' '  ' |
       sed 's/.*--no-install-recommends//; s/&&.*//')
want=$(echo $want)
startup=$(sed -n 's/^libs=(\(.*\))$/\1/p' "$here/../gce/startup.sh")
if [ "$(echo $want | tr ' ' '\n' | sort | tr '\n' ' ')" != "$(echo $startup | tr ' ' '\n' | sort | tr '\n' ' ')" ]; then
  echo "runtime_libs_check: FAIL: Dockerfile installs [$want], startup.sh [$startup]"
  exit 1
fi
closure=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
            --no-breaks --no-replaces --no-enhances $want 2>/dev/null |
          grep -v '^ ' | sed 's/:amd64$//' | sort -u)
fail=0
if ldd "$bin" | grep 'not found'; then fail=1; fi
for lib in $(ldd "$bin" | awk '$3 ~ /^\//{print $3}'); do
  pkg=$(dpkg -S "$(readlink -f "$lib")" 2>/dev/null || dpkg -S "$lib" 2>/dev/null)
  pkg=${pkg%%:*}
  if [ -z "$pkg" ]; then
    echo "runtime_libs_check: FAIL: $lib belongs to no Debian package"; fail=1
  elif ! grep -qx "$pkg" <<<"$closure"; then
    echo "runtime_libs_check: FAIL: $lib ($pkg) is not pulled in by: $want"; fail=1
  fi
done
[ $fail -eq 0 ] && echo "runtime_libs_check: PASS ($(ldd "$bin" | grep -c '=> /') libraries, packages: $want)"
exit $fail
