#!/usr/bin/env bash
# Run every test under AddressSanitizer + UndefinedBehaviorSanitizer and print
# a final line "N passed, N failed" counting GoogleTest cases (from the
# test.xml files Bazel writes), which is what CI reads.
#
# Usage: bazel/test.sh [extra bazel flags...]   (default config: asan)
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

config=(--config=asan)
[ "${TRB_TEST_NOASAN:-0}" = "1" ] && config=()

# Tests read the shared corpus (events and fixtures written by other people)
# from ../shared at run time; it is never copied into the repository.
shared="${TRIBUTARY_SHARED:-}"
if [ -z "$shared" ]; then
  for d in "$top/../shared" /work/shared; do
    # A populated corpus only (a stray empty ../shared must not win).
    if compgen -G "$d/corpus/backend_events/*.jsonl" >/dev/null &&
       compgen -G "$d/corpus/push/*" >/dev/null; then
      shared=$(cd "$d" && pwd); break
    fi
  done
fi
[ -n "$shared" ] || echo "test.sh: no shared corpus found (set TRIBUTARY_SHARED); corpus tests will fail" >&2

bazel test "${config[@]}" --test_env=TRIBUTARY_SHARED="$shared" "$@" //... 2>&1 | grep -v 'linux-sandbox'
rc=${PIPESTATUS[0]}

testlogs=$(bazel info "${config[@]}" bazel-testlogs 2>/dev/null)
passed=0
failed=0
while IFS= read -r -d '' xml; do
  # GoogleTest writes the totals on <testsuites>; for a plain test binary
  # Bazel writes one <testsuite tests="1" ...> of its own.
  t=$(grep -o '<testsuites [^>]*' "$xml" | head -1)
  [ -z "$t" ] && t=$(grep -o '<testsuite [^>]*' "$xml" | head -1)
  n=$(sed -n 's/.* tests="\([0-9]*\)".*/\1/p' <<<"$t")
  f=$(sed -n 's/.* failures="\([0-9]*\)".*/\1/p' <<<"$t")
  e=$(sed -n 's/.* errors="\([0-9]*\)".*/\1/p' <<<"$t")
  if [ -z "$n" ]; then
    # A test binary that crashed before writing its report.
    failed=$((failed + 1))
    continue
  fi
  passed=$((passed + n - ${f:-0} - ${e:-0}))
  failed=$((failed + ${f:-0} + ${e:-0}))
done < <(find "$testlogs" -name test.xml -not -path '*/run_*_of_*/*' \
           -not -path '*/shard_*_of_*/*' -print0 2>/dev/null)

# A target that failed to build or crashed is a failure even without a report.
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1
fi

# Fuzz: the transcoder's libFuzzer target (tests/bigquery/transcode_fuzz.c,
# clang -fsanitize=fuzzer,address,undefined) for a bounded time
# (TRB_FUZZ_SECONDS, default 30), counted as one test. A crash fails the run
# and prints the reproducer's path. TRB_TEST_FUZZ=0 skips it.
if [ "${TRB_TEST_FUZZ:-1}" = "1" ]; then
  if tests/bigquery/transcode_fuzz.sh --seconds "${TRB_FUZZ_SECONDS:-30}" "${config[@]}"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
  fi
fi

# Conformance: Google's official Node.js clients against the emulator binary
# that the bazel run above built (under the same sanitizers). Node's test
# runner prints TAP; its "# pass N" / "# fail N" summary joins the counts.
if [ "${TRB_TEST_CONFORMANCE:-1}" = "1" ] && [ -d tests/conformance/node_modules ]; then
  bin="$(bazel info "${config[@]}" bazel-bin 2>/dev/null)/src/cli/tributary"
  if [ -x "$bin" ]; then
    tap=$(cd tests/conformance && TRIBUTARY_BIN="$bin" \
          node --test --test-reporter=tap --test-concurrency=1 ./*.test.mjs 2>&1)
    crc=$?
    printf '%s\n' "$tap" | grep -E '^(not ok|ok|# (pass|fail|tests))|^ +(not ok|ok) ' | sed 's/^/conformance: /'
    printf '%s\n' "$tap" | grep -q '^not ok' && printf '%s\n' "$tap" | grep -A30 'not ok' | head -120
    cp=$(printf '%s\n' "$tap" | sed -n 's/^# pass \([0-9]*\)$/\1/p' | tail -1)
    cf=$(printf '%s\n' "$tap" | sed -n 's/^# fail \([0-9]*\)$/\1/p' | tail -1)
    passed=$((passed + ${cp:-0}))
    failed=$((failed + ${cf:-0}))
    if [ "$crc" -ne 0 ] && [ "${cf:-0}" -eq 0 ]; then failed=$((failed + 1)); fi
  else
    echo "conformance: $bin was not built" >&2
    failed=$((failed + 1))
  fi
fi
# Deploy: the streamer's systemd unit (deploy/gce/tributary-stream@.service)
# passes `systemd-analyze verify`, and deploy/terraform passes the offline
# checks (fmt, locals evaluated against examples/); one test each. Each is
# skipped, saying so, only when its tool is missing (exit 77).
# TRB_TEST_DEPLOY=0 skips them.
if [ "${TRB_TEST_DEPLOY:-1}" = "1" ]; then
  for check in deploy/test/systemd_verify.sh deploy/test/terraform_check.sh; do
    "$check"
    case $? in
      0) passed=$((passed + 1)) ;;
      77) ;;
      *) failed=$((failed + 1)) ;;
    esac
  done
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$rc" -eq 0 ]
