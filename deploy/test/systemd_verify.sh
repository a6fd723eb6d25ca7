#!/usr/bin/env bash
# systemd_verify.sh — CI check of deploy/gce/tributary-stream@.service.
#
# 1. `systemd-analyze verify` on an instance of the template
#    (tributary-stream@ci.service). systemd-analyze needs ExecStart's binary
#    to exist, so the unit's /usr/local/bin/tributary is pointed at
#    $TRIBUTARY_BIN when given (the built binary), else at an executable
#    created here. Any warning (unknown key, unparsable value) fails the
#    check: systemd-analyze itself exits 0 on those.
# 2. The settings the deployment relies on are present (restart policy,
#    SIGTERM drain, stop timeout above the streamer's 10s grace period).
# 3. Negative controls: a copy with an unknown key and one with a missing
#    binary must both be refused, so this check cannot pass vacuously.
#
# Exit: 0 pass, 1 fail, 77 skipped (systemd-analyze missing).
# Usage: deploy/test/systemd_verify.sh
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
unit="$here/../gce/tributary-stream@.service"

if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "systemd_verify: SKIPPED: systemd-analyze not installed (Debian package systemd)"
  exit 77
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bin="${TRIBUTARY_BIN:-}"
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
  bin="$tmp/bin/tributary"
  mkdir -p "$tmp/bin"
  printf '#!/bin/sh\nexit 0\n' >"$bin"
  chmod 0755 "$bin"
fi

fail=0
# verify FILE → 0 when systemd-analyze accepts it without a word.
verify() {
  local out rc
  out=$(cd "$tmp" && SYSTEMD_LOG_COLOR=0 systemd-analyze verify "$1" 2>&1)
  rc=$?
  if [ $rc -ne 0 ] || [ -n "$out" ]; then
    printf '%s\n' "$out" | sed 's/^/  /'
    return 1
  fi
  return 0
}

mkdir -p "$tmp/units"
inst="$tmp/units/tributary-stream@ci.service"
sed "s#/usr/local/bin/tributary#$bin#" "$unit" >"$inst"
if verify "$inst"; then
  echo "systemd_verify: ok: systemd-analyze verify tributary-stream@ci.service"
else
  echo "systemd_verify: FAIL: systemd-analyze verify reported the above"
  fail=1
fi

for want in '^Restart=always$' '^KillSignal=SIGTERM$' '^ExecStart=/usr/local/bin/tributary stream --pipeline ' \
            '^RequiresMountsFor=/var/lib/tributary$' '^Environment=TRIBUTARY_STREAM_WAL_DIR=/var/lib/tributary/%i$' \
            '^\[Install\]$' '^WantedBy=multi-user.target$'; do
  if ! grep -q -- "$want" "$unit"; then
    echo "systemd_verify: FAIL: $unit has no line matching $want"
    fail=1
  fi
done
stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s\{0,1\}$/\1/p' "$unit")
if [ -z "$stop" ] || [ "$stop" -le 10 ]; then
  echo "systemd_verify: FAIL: TimeoutStopSec (${stop:-unset}) must exceed the 10s grace period"
  fail=1
fi

# Negative controls.
bad="$tmp/units/tributary-stream@badkey.service"
sed "s#/usr/local/bin/tributary#$bin#; s/^Restart=always$/Restart=always\nRestartt=always/" "$unit" >"$bad"
if verify "$bad" >/dev/null; then
  echo "systemd_verify: FAIL: an unknown key was not reported (the check is blind)"
  fail=1
fi
bad="$tmp/units/tributary-stream@nobin.service"
sed "s#/usr/local/bin/tributary#$tmp/missing/tributary#" "$unit" >"$bad"
if verify "$bad" >/dev/null; then
  echo "systemd_verify: FAIL: a missing ExecStart binary was not reported (the check is blind)"
  fail=1
fi

[ $fail -eq 0 ] && echo "systemd_verify: PASS"
exit $fail
