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

bazel test "${config[@]}" "$@" //... 2>&1 | grep -v 'linux-sandbox'
rc=${PIPESTATUS[0]}

testlogs=$(bazel info "${config[@]}" bazel-testlogs 2>/dev/null)
passed=0
failed=0
while IFS= read -r -d '' xml; do
  t=$(grep -o '<testsuites [^>]*' "$xml" | head -1)
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
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$rc" -eq 0 ]
