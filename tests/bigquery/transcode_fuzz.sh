#!/usr/bin/env bash
# Coverage-guided fuzzing of the JSON -> proto row transcoder for a bounded
# time: tests/bigquery/transcode_fuzz.c (LLVMFuzzerTestOneInput) built with
# clang -fsanitize=fuzzer,address,undefined and run by libFuzzer, starting
# from tests/bigquery/fuzz_seeds with tests/bigquery/transcode_fuzz.dict.
# bazel/test.sh runs it and counts it as one test.
#
# The C sources are those of the Bazel target
# //tests/bigquery:transcode_fuzz_replay (`bazel query`), so the list follows
# the BUILD files; the nanopb sources Bazel generates (googleapis) come from
# `bazel build //googleapis` with the given flags. Everything is compiled into
# a temporary directory (nothing in the checkout changes).
#
# Usage: tests/bigquery/transcode_fuzz.sh [--seconds N] [bazel flags...]
#   --seconds N   libFuzzer -max_total_time (default 30; env TRB_FUZZ_SECONDS)
#   env TRB_FUZZ_CC   the compiler (default: clang, else clang-14)
# Exit: 0 when libFuzzer ran and found nothing; 1 when it found a crash, a
# leak, a timeout or an out-of-memory input (the reproducer's path and the
# command that replays it are printed; its directory is kept); 2 when the
# target could not be built or run.
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"

seconds=${TRB_FUZZ_SECONDS:-30}
if [ "${1:-}" = "--seconds" ]; then
  seconds=$2
  shift 2
fi
bazel_flags=("$@")

say() { echo "transcode_fuzz: $*"; }

cc=${TRB_FUZZ_CC:-}
if [ -z "$cc" ]; then
  for c in clang clang-14; do
    if command -v "$c" >/dev/null 2>&1; then cc=$c; break; fi
  done
fi
if [ -z "$cc" ]; then
  say "clang not found (Debian package clang; bazel/setup.sh installs it)" >&2
  exit 2
fi

# The replay target's C sources (source and generated files of its deps).
labels=$(bazel query --noshow_progress \
  'kind("source file|generated file", deps(//tests/bigquery:transcode_fuzz_replay))' 2>/dev/null |
  grep -E '^//[^:]*:.*\.c$' | grep -v '^//tests/bigquery:transcode_fuzz\.c$')
if [ -z "$labels" ]; then
  say "bazel query found no sources for //tests/bigquery:transcode_fuzz_replay" >&2
  exit 2
fi
if ! bazel build --noshow_progress "${bazel_flags[@]}" //googleapis >/dev/null 2>&1; then
  say "bazel build //googleapis failed" >&2
  exit 2
fi
bin=$(bazel info "${bazel_flags[@]}" bazel-bin 2>/dev/null)
srcs=()
while IFS= read -r l; do
  pkg=${l#//}
  pkg=${pkg%%:*}
  file=${l#*:}
  if [ -f "$pkg/$file" ]; then
    srcs+=("$pkg/$file")
  elif [ -f "$bin/$pkg/$file" ]; then
    srcs+=("$bin/$pkg/$file")
  else
    say "source $l not found (in the tree or under $bin)" >&2
    exit 2
  fi
done <<<"$labels"

work=$(mktemp -d "${TMPDIR:-/tmp}/trb-transcode-fuzz-XXXXXX")
flags=(-std=c11 -D_GNU_SOURCE -DPB_ENABLE_MALLOC=1 -O1 -g -fno-omit-frame-pointer
       -fsanitize=address,undefined -fno-sanitize-recover=all
       -I. -I"$bin" -I"$bin/googleapis" -Igoogleapis)

# Libraries: instrumented for coverage (fuzzer-no-link), archived so that only
# the objects the target needs are linked.
say "building with $cc (${#srcs[@]} sources) in $work"
objs=()
i=0
for s in "${srcs[@]}"; do
  o="$work/o$i.o"
  i=$((i + 1))
  if ! "$cc" "${flags[@]}" -fsanitize=fuzzer-no-link -c "$s" -o "$o" 2>"$work/build.log"; then
    say "compiling $s failed:" >&2
    cat "$work/build.log" >&2
    exit 2
  fi
  objs+=("$o")
done
ar rcs "$work/libtrb.a" "${objs[@]}"
if ! "$cc" "${flags[@]}" -fsanitize=fuzzer -DTRB_FUZZ_LIBFUZZER \
     tests/bigquery/transcode_fuzz.c "$work/libtrb.a" \
     -ljansson -lprotobuf-nanopb -lpthread -lm -o "$work/transcode_fuzz" 2>"$work/build.log"; then
  say "linking the fuzz target failed:" >&2
  cat "$work/build.log" >&2
  exit 2
fi

# Fuzz. New inputs go to $work/corpus; the seeds are read, never written.
mkdir -p "$work/corpus" "$work/artifacts"
say "fuzzing for ${seconds}s"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
"$work/transcode_fuzz" -max_total_time="$seconds" -max_len=4096 -timeout=10 \
  -rss_limit_mb=2048 -print_final_stats=1 \
  -dict=tests/bigquery/transcode_fuzz.dict \
  -artifact_prefix="$work/artifacts/" \
  "$work/corpus" tests/bigquery/fuzz_seeds >"$work/fuzz.log" 2>&1
frc=$?

found=$(find "$work/artifacts" -type f | sort)
if [ "$frc" -ne 0 ] || [ -n "$found" ]; then
  grep -E -A40 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|runtime error|SUMMARY' \
    "$work/fuzz.log" | head -120 >&2
  say "FAILED (libFuzzer exit $frc); log $work/fuzz.log" >&2
  if [ -n "$found" ]; then
    while IFS= read -r a; do
      say "reproducer: $a" >&2
      say "replay:     $work/transcode_fuzz $a" >&2
    done <<<"$found"
  else
    say "no reproducer was written; see the log" >&2
  fi
  exit 1
fi
runs=$(sed -n 's/^Done \([0-9]*\) runs in .*/\1/p' "$work/fuzz.log" | tail -1)
if [ -z "$runs" ] || [ "$runs" -eq 0 ]; then
  tail -20 "$work/fuzz.log" >&2
  say "libFuzzer did not run any input; log $work/fuzz.log" >&2
  exit 2
fi
cov=$(grep -E '^#[0-9]+.*DONE' "$work/fuzz.log" | tail -1 | sed -n 's/.*\(cov: [0-9]*\).*\(ft: [0-9]*\).*\(corp: [^ ]*\).*/\1 \2 \3/p')
say "passed: $runs inputs in ${seconds}s, no crash ($cov)"
rm -rf "$work"
exit 0
