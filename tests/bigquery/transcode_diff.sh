#!/usr/bin/env bash
# Differential fuzzing of the JSON -> proto row transcoder: this tree's
# src/bigquery/transcode.c against the one of git revision REV (default
# HEAD), for a bounded time, with tests/bigquery/transcode_diff_fuzz.c
# (clang -fsanitize=fuzzer,address,undefined). Use it when optimizing the
# transcoder: output bytes and error messages must not change.
#
# Usage: tests/bigquery/transcode_diff.sh [--rev REV] [--seconds N]
# Exit: 0 no difference found; 1 a difference or a crash (reproducer
# printed); 2 build failure.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
rev=HEAD
seconds=60
while [ $# -gt 0 ]; do
  case $1 in
    --rev) rev=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    *) echo "usage: $0 [--rev REV] [--seconds N]" >&2; exit 2 ;;
  esac
done
say() { echo "transcode_diff: $*"; }
cc=${TRB_FUZZ_CC:-}
if [ -z "$cc" ]; then
  for c in clang clang-14; do
    if command -v "$c" >/dev/null 2>&1; then cc=$c; break; fi
  done
fi
[ -n "$cc" ] || { say "clang not found" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/trb-transcode-diff-XXXXXX")
git show "$rev:src/bigquery/transcode.c" >"$work/old_transcode.c" ||
  { say "no src/bigquery/transcode.c at $rev" >&2; exit 2; }
labels=$(bazel query --noshow_progress \
  'kind("source file|generated file", deps(//tests/bigquery:transcode_fuzz_replay))' 2>/dev/null |
  grep -E '^//[^:]*:.*\.c$' | grep -v '^//tests/bigquery:transcode_fuzz\.c$')
bazel build --noshow_progress //googleapis >/dev/null 2>&1 || { say "bazel build //googleapis failed" >&2; exit 2; }
bin=$(bazel info bazel-bin 2>/dev/null)
flags=(-std=c11 -D_GNU_SOURCE -DPB_ENABLE_MALLOC=1 -O1 -g -fno-omit-frame-pointer
       -fsanitize=address,undefined -fno-sanitize-recover=all
       -I. -I"$bin" -I"$bin/googleapis" -Igoogleapis)
objs=()
i=0
while IFS= read -r l; do
  pkg=${l#//}; pkg=${pkg%%:*}; file=${l#*:}
  if [ -f "$pkg/$file" ]; then s="$pkg/$file"; else s="$bin/$pkg/$file"; fi
  o="$work/o$i.o"; i=$((i + 1))
  "$cc" "${flags[@]}" -fsanitize=fuzzer-no-link -c "$s" -o "$o" 2>"$work/build.log" ||
    { say "compiling $s failed:" >&2; cat "$work/build.log" >&2; exit 2; }
  objs+=("$o")
done <<<"$labels"
"$cc" "${flags[@]}" -fsanitize=fuzzer-no-link -Dtrb_bq_transcode_row=old_transcode_row \
  -Dtrb_bq_json_check=old_json_check -Dtrb_bq_transcode_row_extra=old_transcode_row_extra -c "$work/old_transcode.c" -o "$work/old.o" \
  2>"$work/build.log" || { say "compiling $rev's transcode.c failed:" >&2; cat "$work/build.log" >&2; exit 2; }
ar rcs "$work/libtrb.a" "${objs[@]}"
"$cc" "${flags[@]}" -fsanitize=fuzzer tests/bigquery/transcode_diff_fuzz.c "$work/old.o" \
  "$work/libtrb.a" -ljansson -lprotobuf-nanopb -lpthread -lm -o "$work/diff_fuzz" \
  2>"$work/build.log" || { say "linking failed:" >&2; cat "$work/build.log" >&2; exit 2; }
mkdir -p "$work/corpus" "$work/artifacts"
say "fuzzing $rev vs the tree for ${seconds}s in $work"
ASAN_OPTIONS=detect_leaks=1 "$work/diff_fuzz" -max_total_time="$seconds" -max_len=4096 \
  -timeout=10 -dict=tests/bigquery/transcode_fuzz.dict -artifact_prefix="$work/artifacts/" \
  "$work/corpus" tests/bigquery/fuzz_seeds >"$work/fuzz.log" 2>&1
frc=$?
found=$(find "$work/artifacts" -type f | sort)
if [ "$frc" -ne 0 ] || [ -n "$found" ]; then
  grep -E -A12 'DIFF|ERROR|runtime error' "$work/fuzz.log" | head -60 >&2
  say "FAILED; log $work/fuzz.log; reproducers: $found" >&2
  exit 1
fi
runs=$(sed -n 's/^Done \([0-9]*\) runs in .*/\1/p' "$work/fuzz.log" | tail -1)
say "passed: ${runs:-0} inputs in ${seconds}s, no difference"
rm -rf "$work"
exit 0
