#!/usr/bin/env bash
# perf/run_all.sh — run every benchmark of the project and write
# perf/report.md (tables) and perf/report.png (chart).
#
# Usage: perf/run_all.sh [--quick] [--only NAME[,NAME...]] [--out DIR]
#   --quick  fewer runs and smaller counts (minutes instead of ~half an hour)
#   --only   run a subset (rpc,emulator,publish,subscribe,transcode,append,
#            wal,stream,ingest,up); the report then holds only those
#   --out    where report.md / report.png go (default: perf/)
#
# Builds the opt binaries once (bazel build -c opt //perf/... //src/cli:tributary),
# copies them out of bazel-bin, runs each benchmark from the repository's
# top directory (the corpus is read from ../shared/corpus/backend_events),
# and takes each figure from the benchmark's final machine-readable
# `RESULT key=value ...` lines (medians over the benchmark's own runs;
# ratios are the medians of per-run paired ratios where the bench computes
# them). A benchmark that exits non-zero, or prints no RESULT line or misses
# a figure, stops the script with a non-zero status before any report is
# written: the report never holds a made-up or stale number.
#
# Needs: bazel, node + perf/node/node_modules (bazel/setup.sh), wrk, nginx,
# gnuplot (gnuplot-nox; bazel/setup.sh installs all of them).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
quick=0
only=""
out="$top/perf"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --only) only=$2; shift ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "run_all: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$out"
out=$(cd "$out" && pwd)

die() { echo "run_all: FAILED: $*" >&2; exit 1; }
want() { [ -z "$only" ] || [[ ",$only," == *",$1,"* ]]; }

for tool in bazel node wrk nginx gnuplot awk; do
  command -v "$tool" >/dev/null || die "needs $tool (run bazel/setup.sh)"
done
[ -d "$top/perf/node/node_modules" ] || die "perf/node/node_modules missing (run bazel/setup.sh)"
corpus="$top/../shared/corpus/backend_events"
[ -d "$corpus" ] || die "corpus $corpus missing"

work=$(mktemp -d /tmp/run_all.XXXXXX)
echo "run_all: logs in $work"
cd "$top"

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
t_start=$(date +%s)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$( { git status --porcelain --untracked-files=no 2>/dev/null || true; } | wc -l)

# ---- build once, copy out of bazel-bin (it moves with the configuration)
echo "run_all: building (bazel build -c opt //perf/... //src/cli:tributary)"
bazel build -c opt //perf/... //src/cli:tributary >"$work/build.log" 2>&1 ||
  { tail -30 "$work/build.log" >&2; die "bazel build"; }
binsrc=$(bazel info -c opt bazel-bin 2>/dev/null) || die "bazel info -c opt bazel-bin"
mkdir -p "$work/bin"
for b in perf/rpc_bench perf/emulator_bench perf/publish_bench perf/subscribe_bench \
         perf/transcode_bench perf/append_bench perf/wal_bench perf/stream_bench \
         src/cli/tributary; do
  cp "$binsrc/$b" "$work/bin/" || die "copy $binsrc/$b"
done
B=$work/bin
T=$B/tributary

# ---- run one benchmark: NAME CMD... ; its RESULT lines go to $work/NAME.res
run_bench() {
  local name=$1; shift
  local t0=$(date +%s)
  echo "run_all: [$name] $*"
  # A hung benchmark fails too (timeout signals its whole process group).
  if ! timeout -k 30 "$limit" "$@" >"$work/$name.log" 2>"$work/$name.err"; then
    tail -20 "$work/$name.log" "$work/$name.err" >&2
    die "$name exited non-zero or ran over ${limit} s (logs: $work/$name.log, $work/$name.err)"
  fi
  grep '^RESULT ' "$work/$name.log" | sed 's/^RESULT //' | tr ' ' '\n' | grep '=' \
    >"$work/$name.res" || die "$name printed no RESULT line ($work/$name.log)"
  echo "run_all: [$name] done in $(( $(date +%s) - t0 )) s: $(tr '\n' ' ' <"$work/$name.res")"
}

# get NAME KEY -> the value. If the bench did not print it or it is not a
# positive number: a message, and $work/failed (get runs inside $(...), where
# exiting would not stop the script; the report is not written if it exists).
get() {
  local v
  v=$(awk -F= -v k="$2" '$1 == k { v = $2 } END { print v }' "$work/$1.res" 2>/dev/null)
  if [ -z "$v" ] || ! awk -v x="$v" 'BEGIN { exit !(x + 0 > 0) }'; then
    echo "run_all: FAILED: $1 printed no figure '$2' (got '$v')" >&2
    touch "$work/failed"
    printf 'MISSING'
    return 1
  fi
  printf '%s' "$v"
}

if (( quick )); then
  limit=900
  rpc_args=(--runs 3 --total-mib 256 --messages 300000)
  emu_args=(--runs 3 --messages 100000 --rows 100000 --node-messages 30000 --node-rows 50000)
  pub_args=(--runs 3 --messages 200000 --node-messages 100000)
  sub_args=(--runs 3 --messages 50000)
  tc_args=(--runs 5 --ms 200)
  app_args=(--runs 3 --rows 50000)
  wal_args=(--runs 3)
  str_args=(--runs 3 --events 30000)
  ing_args=(3 5 128)
  up_runs=3; up_events=100000
else
  limit=1800
  rpc_args=(--runs 9)
  emu_args=(--runs 5 --messages 300000 --rows 300000 --node-messages 60000 --node-rows 100000)
  pub_args=(--runs 5 --messages 500000 --node-messages 500000)
  sub_args=(--runs 5 --messages 200000)
  tc_args=(--runs 7 --ms 300)
  app_args=(--runs 5 --rows 200000)
  wal_args=(--runs 5)
  str_args=(--runs 5 --events 100000)
  ing_args=(5 8 128)
  up_runs=3; up_events=100000
fi

want rpc && run_bench rpc "$B/rpc_bench" "${rpc_args[@]}"
want emulator && run_bench emulator "$B/emulator_bench" --tributary "$T" --node-dir perf/node "${emu_args[@]}"
want publish && run_bench publish "$B/publish_bench" --tributary "$T" --node-dir perf/node "${pub_args[@]}"
want subscribe && run_bench subscribe "$B/subscribe_bench" --tributary "$T" --node-dir perf/node "${sub_args[@]}"
want transcode && run_bench transcode "$B/transcode_bench" "$corpus" "${tc_args[@]}"
want append && run_bench append "$B/append_bench" --tributary "$T" --node-dir perf/node --corpus "$corpus" "${app_args[@]}"
want wal && run_bench wal "$B/wal_bench" --dir "$work/wal" "${wal_args[@]}"
want stream && run_bench stream "$B/stream_bench" --tributary "$T" --node-dir perf/node --corpus "$corpus" "${str_args[@]}"
want ingest && run_bench ingest perf/ingest_bench/run.sh "${ing_args[@]}"

# ---- end to end: `tributary up` on a fresh data directory, several runs,
# figures parsed from its summary (throughput, p50/p99 publish -> row).
up_once() {
  local i=$1 log="$work/up-$i.log" dir="$work/up-data-$i"
  timeout -k 30 "$limit" "$T" up --data-dir "$dir" --events "$up_events" --corpus "$corpus"/*.jsonl \
    >"$log" 2>"$work/up-$i.err" || { tail -30 "$log" "$work/up-$i.err" >&2; die "tributary up run $i exited non-zero"; }
  grep -q '^check .* OK$' "$log" || { tail -30 "$log" >&2; die "tributary up run $i: rows + dead letters != accepted"; }
  awk '
    /^throughput / { gsub(",", ""); for (k = 1; k <= NF; k++) if ($k == "events/s") {
                       if (!a) a = $(k - 1); else e = $(k - 1) } }
    /^latency / { gsub(",", ""); for (k = 1; k <= NF; k++) {
                    if ($k == "p50" && !p50) p50 = $(k + 1); if ($k == "p99" && !p99) p99 = $(k + 1);
                    if ($k == "request:") { h = 1 } if (h && $k == "p50") hp50 = $(k + 1); if (h && $k == "p99") hp99 = $(k + 1) } }
    /^  accepted / { gsub(",", ""); acc = $2 }
    END { printf "%s %s %s %s %s %s %s\n", a, e, p50 + 0, p99 + 0, hp50 + 0, hp99 + 0, acc }' "$log"
}
if want up; then
  echo "run_all: [up] $up_runs x tributary up --events $up_events --corpus ../shared/corpus/backend_events/*.jsonl"
  : >"$work/up.rows"
  for i in $(seq "$up_runs"); do
    up_once "$i" >>"$work/up.rows"
    rm -rf "$work/up-data-$i"
  done
  awk '
    function med(c,   i, j, n, t, v) { n = 0; for (i = 1; i <= NR; i++) v[++n] = row[i, c]
      for (i = 2; i <= n; i++) { t = v[i]; j = i - 1; while (j > 0 && v[j] > t) { v[j + 1] = v[j]; j-- } v[j + 1] = t }
      return (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }
    { for (c = 1; c <= 7; c++) row[NR, c] = $c }
    END { printf "send_rate=%.0f e2e_rate=%.0f p50_ms=%.0f p99_ms=%.0f http_p50_ms=%.1f http_p99_ms=%.1f accepted=%.0f\n",
                 med(1), med(2), med(3), med(4), med(5), med(6), med(7) }' "$work/up.rows" |
    tr ' ' '\n' >"$work/up.res"
  echo "run_all: [up] $(tr '\n' ' ' <"$work/up.res")"
fi

load_after=$(cut -d' ' -f1-3 /proc/loadavg)
minutes=$(( ($(date +%s) - t_start + 59) / 60 ))

# ---- the report -----------------------------------------------------------
fmt() { awk -v x="$1" -v d="${2:-0}" 'BEGIN {
  s = sprintf("%." d "f", x); i = index(s, "."); ip = i ? substr(s, 1, i - 1) : s; fp = i ? substr(s, i) : ""
  neg = ip ~ /^-/; if (neg) ip = substr(ip, 2)
  o = ""; while (length(ip) > 3) { o = "," substr(ip, length(ip) - 2) o; ip = substr(ip, 1, length(ip) - 3) }
  printf "%s%s%s%s", neg ? "-" : "", ip, o, fp }'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { print (a + 0 >= b + 0) ? "**met**" : "**not met**" }'; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { print (a + 0 < b + 0) ? "**met**" : "**not met**" }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

md="$work/report.md"
summary="$work/summary.md"
chart_t="$work/chart_tput.dat"   # label ours baseline
chart_l="$work/chart_lat.dat"    # label ours-p50 ours-p99 base-p50 base-p99
: >"$summary"; : >"$chart_t"; : >"$chart_l"
body="$work/body.md"; : >"$body"
S() { echo "$*" >>"$summary"; }
W() { echo "$*" >>"$body"; }

if want rpc; then
  r=$(get rpc ratio)
  W "## rpc_bench — src/rpc bidi stream vs raw TCP (loopback)"; W
  W "| figure | ours (src/rpc) | baseline (raw TCP, same run) | ratio | target | met |"
  W "|---|---|---|---|---|---|"
  W "| 64 KiB messages, MB/s | $(fmt "$(get rpc rpc_mbs)" 1) | $(fmt "$(get rpc raw_mbs)" 1) | $r (median of paired) | ≥ 0.5 | $(ge "$r" 0.5) |"
  W "| 600 B messages, msg/s | $(fmt "$(get rpc small_msgs)") | — | — | — | — |"
  W "| 600 B messages, CPU-s per million | $(get rpc small_cpu_per_m) | — | — | — | — |"
  W
  S "| rpc: 64 KiB stream vs raw TCP (MB/s) | $(fmt "$(get rpc rpc_mbs)" 1) | $(fmt "$(get rpc raw_mbs)" 1) | $r | ≥ 0.5 | $(ge "$r" 0.5) |"
  echo "\"rpc 64KiB\\nMB/s\" $(get rpc rpc_mbs) $(get rpc raw_mbs)" >>"$chart_t"
fi
if want emulator; then
  psr=$(get emulator ps_c_rate); bqr=$(get emulator bq_c_rate)
  W "## emulator_bench — durable \`tributary emulator\`, our C client vs Google's Node clients"; W
  W "| figure | ours (C client) | baseline (Node client, same emulator) | ratio C/Node | target | met |"
  W "|---|---|---|---|---|---|"
  W "| Pub/Sub publish → pull → ack, msg/s | $(fmt "$psr") | $(fmt "$(get emulator ps_node_rate)") | $(get emulator ps_ratio) | ≥ 100,000 msg/s | $(ge "$psr" 100000) |"
  W "| BigQuery AppendRows, rows/s | $(fmt "$bqr") | $(fmt "$(get emulator bq_node_rate)") | $(get emulator bq_ratio) | ≥ 100,000 rows/s | $(ge "$bqr" 100000) |"
  W "| emulator CPU-s per million (pubsub C / Node) | $(get emulator ps_c_emu_cost) | $(get emulator ps_node_emu_cost) | — | — | — |"
  W "| emulator CPU-s per million (bigquery C / Node) | $(get emulator bq_c_emu_cost) | $(get emulator bq_node_emu_cost) | — | — | — |"
  W
  S "| emulator: Pub/Sub msg/s (C vs Node client) | $(fmt "$psr") | $(fmt "$(get emulator ps_node_rate)") | $(get emulator ps_ratio) | ≥ 100,000 msg/s | $(ge "$psr" 100000) |"
  S "| emulator: AppendRows rows/s (C vs Node client) | $(fmt "$bqr") | $(fmt "$(get emulator bq_node_rate)") | $(get emulator bq_ratio) | ≥ 100,000 rows/s | $(ge "$bqr" 100000) |"
  echo "\"emu pubsub\\nmsg/s\" $psr $(get emulator ps_node_rate)" >>"$chart_t"
  echo "\"emu bigquery\\nrows/s\" $bqr $(get emulator bq_node_rate)" >>"$chart_t"
fi
for side in publish subscribe; do
  want $side || continue
  r=$(get $side ratio)
  W "## ${side}_bench — src/pubsub $( [ $side = publish ] && echo Publisher || echo Subscriber) vs the official Node.js client"; W
  W "| figure | ours (C) | baseline (Node, same run) | ratio C/Node | target | met |"
  W "|---|---|---|---|---|---|"
  W "| messages per client CPU-second | $(fmt "$(get $side c_per_cpu)") | $(fmt "$(get $side node_per_cpu)") | $r (median of paired) | ≥ 10× | $(ge "$r" 10) |"
  W "| messages/s wall | $(fmt "$(get $side c_rate)") | $(fmt "$(get $side node_rate)") | — | — | — |"
  [ $side = subscribe ] &&
    W "| vs Google's published Java anchor (~$(fmt "$(get subscribe java_per_core)") msg/s per core) | $(fmt "$(get subscribe c_per_cpu)") | $(fmt "$(get subscribe java_per_core)") | $(div "$(get subscribe c_per_cpu)" "$(get subscribe java_per_core)") | — | — |"
  W
  S "| $side: msg per client CPU-s (C vs Node) | $(fmt "$(get $side c_per_cpu)") | $(fmt "$(get $side node_per_cpu)") | $r | ≥ 10× | $(ge "$r" 10) |"
  echo "\"$side\\nmsg/CPU-s\" $(get $side c_per_cpu) $(get $side node_per_cpu)" >>"$chart_t"
done
if want transcode; then
  tc=$(get transcode transcode)
  W "## transcode_bench — JSON row → protobuf row, per core (order events, $(get transcode mean_bytes) bytes on average)"; W
  W "| figure | ours (transcode) | baseline | ratio | target | met |"
  W "|---|---|---|---|---|---|"
  W "| events/s per core vs jansson parse-only | $(fmt "$tc") | $(fmt "$(get transcode jansson)") | $(div "$tc" "$(get transcode jansson)") | ≥ 250,000 events/s | $(ge "$tc" 250000) |"
  W "| vs parse-only, same reader | $(fmt "$tc") | $(fmt "$(get transcode check)") | $(div "$tc" "$(get transcode check)") | — | — |"
  W "| vs memcpy of the same bytes | $(fmt "$tc") | $(fmt "$(get transcode memcpy)") | $(awk -v a="$tc" -v b="$(get transcode memcpy)" 'BEGIN{printf "%.4f", a/b}') | — | — |"
  W; W "Ratios of the medians; one thread, thread CPU time."; W
  S "| transcode: events/s per core (vs jansson parse-only) | $(fmt "$tc") | $(fmt "$(get transcode jansson)") | $(div "$tc" "$(get transcode jansson)") | ≥ 250,000 | $(ge "$tc" 250000) |"
  echo "\"transcode\\nev/s/core\" $tc $(get transcode jansson)" >>"$chart_t"
fi
if want append; then
  W "## append_bench — src/bigquery writer vs the official Node.js JSONWriter (durable emulator)"; W
  W "| figure | ours (C writer) | baseline (Node JSONWriter, same run) | ratio C/Node | target | met |"
  W "|---|---|---|---|---|---|"
  W "| rows per client CPU-second | $(fmt "$(get append c_per_cpu)") | $(fmt "$(get append node_per_cpu)") | $(get append ratio) (median of paired) | none set (issue 5: report it) | — |"
  W "| rows/s wall | $(fmt "$(get append c_rate)") | $(fmt "$(get append node_rate)") | $(get append wall_ratio) | — | — |"
  W
  S "| append: rows per client CPU-s (C vs Node) | $(fmt "$(get append c_per_cpu)") | $(fmt "$(get append node_per_cpu)") | $(get append ratio) | — | — |"
  echo "\"append\\nrows/CPU-s\" $(get append c_per_cpu) $(get append node_per_cpu)" >>"$chart_t"
fi
if want wal; then
  W "## wal_bench — src/streamer WAL (2 producer threads; no baseline, no target)"; W
  W "| case | records/s | MB/s |"
  W "|---|---|---|"
  c=0
  for name in "600 B, fsync" "600 B, no sync" "300 KB, fsync" "300 KB, no sync" "600 B, fsync, 1 in flight per producer"; do
    W "| $name | $(fmt "$(get wal case${c}_rps)") | $(fmt "$(get wal case${c}_mbs)" 1) |"
    c=$((c + 1))
  done
  W
  S "| wal: 600 B records/s, fsync | $(fmt "$(get wal case0_rps)") | — | — | — | — |"
fi
if want stream; then
  r=$(get stream ratio); per=$(get stream v0_per_cpu); p99=$(get stream p99_ms)
  W "## stream_bench — \`tributary stream\` vs a reference pipeline on Google's Node.js clients"; W
  W "| figure | ours (streamer) | baseline (Node pipeline, same run) | ratio | target | met |"
  W "|---|---|---|---|---|---|"
  W "| events per CPU-second (exactly_once, fsync) | $(fmt "$per") | $(fmt "$(get stream node_per_cpu)") | $r (median of paired) | ≥ 10× Node | $(ge "$r" 10) |"
  W "| events per CPU-second, per core | $(fmt "$per") | ~6,000 (Dataflow, published anchor) | $(div "$per" 6000) | ≥ 100,000 | $(ge "$per" 100000) |"
  W "| events per CPU-second (exactly_once, wal_sync none) | $(fmt "$(get stream v1_per_cpu)") | — | — | — | — |"
  W "| events per CPU-second (at_least_once) | $(fmt "$(get stream v2_per_cpu)") | — | — | — | — |"
  W "| drain events/s wall (fsync) | $(fmt "$(get stream v0_rate)") | $(fmt "$(get stream node_rate)") | $(div "$(get stream v0_rate)" "$(get stream node_rate)") | — | — |"
  W "| publish → row p50 / p99 at $(fmt "$(get stream lat_rate)") events/s (half the drain rate) | $(get stream p50_ms) / $p99 ms | — | — | p99 < 250 ms | $(lt "$p99" 250) |"
  W
  S "| stream: events per CPU-s (C vs Node pipeline) | $(fmt "$per") | $(fmt "$(get stream node_per_cpu)") | $r | ≥ 10× | $(ge "$r" 10) |"
  S "| stream: events per CPU-s per core | $(fmt "$per") | ~6,000 (Dataflow anchor) | $(div "$per" 6000) | ≥ 100,000 | $(ge "$per" 100000) |"
  S "| stream: p99 publish → row at half the max rate (ms) | $p99 | — | — | < 250 ms | $(lt "$p99" 250) |"
  echo "\"stream\\nev/CPU-s\" $per $(get stream node_per_cpu)" >>"$chart_t"
  echo "\"stream\\npublish->row\" $(get stream p50_ms) $p99 - -" >>"$chart_l"
fi
if want ingest; then
  r=$(get ingest ratio)
  W "## ingest_bench — \`tributary ingest\` vs nginx answering 204 (wrk, 600-byte JSON POSTs)"; W
  W "| figure | ours (ingest) | baseline (nginx, same run) | ratio | target | met |"
  W "|---|---|---|---|---|---|"
  W "| requests per server CPU-second | $(fmt "$(get ingest ingest_per_cpu)") | $(fmt "$(get ingest nginx_per_cpu)") | $r (median of paired) | ≥ 0.6 | $(ge "$r" 0.6) |"
  W "| requests/s | $(fmt "$(get ingest ingest_rps)") | $(fmt "$(get ingest nginx_rps)") | $(div "$(get ingest ingest_rps)" "$(get ingest nginx_rps)") | — | — |"
  W "| wrk latency p50 / p99 | $(get ingest ingest_p50_ms) / $(get ingest ingest_p99_ms) ms | $(get ingest nginx_p50_ms) / $(get ingest nginx_p99_ms) ms | — | — | — |"
  W; W "ingest answers after the emulator confirmed the Publish; nginx discards the body."; W
  S "| ingest: requests per server CPU-s (vs nginx) | $(fmt "$(get ingest ingest_per_cpu)") | $(fmt "$(get ingest nginx_per_cpu)") | $r | ≥ 0.6 | $(ge "$r" 0.6) |"
  echo "\"ingest\\nreq/CPU-s\" $(get ingest ingest_per_cpu) $(get ingest nginx_per_cpu)" >>"$chart_t"
  echo "\"ingest\\nHTTP (wrk)\" $(get ingest ingest_p50_ms) $(get ingest ingest_p99_ms) $(get ingest nginx_p50_ms) $(get ingest nginx_p99_ms)" >>"$chart_l"
fi
if want up; then
  W "## end to end — \`tributary up\` (emulator + ingest + streamers, HTTP feed; medians of $up_runs runs)"; W
  W "Each run: \`tributary up --data-dir <fresh> --events $(fmt "$up_events") --corpus ../shared/corpus/backend_events/*.jsonl\`;"
  W "every run's summary had to say rows + dead letters = accepted (OK)."; W
  W "| figure | ours | baseline | ratio | target | met |"
  W "|---|---|---|---|---|---|"
  W "| events accepted (per run) | $(fmt "$(get up accepted)") | — | — | rows + dead letters = accepted | **met** (every run) |"
  W "| events/s accepted while sending | $(fmt "$(get up send_rate)") | — | — | — | — |"
  W "| events/s end to end (to rows + dead letters) | $(fmt "$(get up e2e_rate)") | — | — | — | — |"
  W "| Pub/Sub publish → row p50 / p99 | $(get up p50_ms) / $(get up p99_ms) ms | — | — | — | — |"
  W "| HTTP request p50 / p99 | $(get up http_p50_ms) / $(get up http_p99_ms) ms | — | — | — | — |"
  W
  S "| up: events/s end to end | $(fmt "$(get up e2e_rate)") | — | — | rows + dead letters = accepted | **met** |"
  S "| up: publish → row p50 / p99 (ms) | $(get up p50_ms) / $(get up p99_ms) | — | — | — | — |"
  echo "\"up e2e\\nev/s\" $(get up e2e_rate) -" >>"$chart_t"
  echo "\"up\\npublish->row\" $(get up p50_ms) $(get up p99_ms) - -" >>"$chart_l"
  echo "\"up\\nHTTP\" $(get up http_p50_ms) $(get up http_p99_ms) - -" >>"$chart_l"
fi

# ---- chart: throughput (left, log scale) and latency (right), each with its baseline
png="$work/report.png"
{
  echo 'set terminal pngcairo size 1900,720 font ",10" noenhanced' 2>/dev/null
  echo "set output '$png'"
  echo 'set datafile missing "-"'
  echo 'set style data histograms'
  echo 'set style histogram clustered gap 1'
  echo 'set style fill solid 0.85 border -1'
  echo 'set boxwidth 0.9'
  echo 'set grid ytics'
  echo 'set key inside top left'
  echo 'set bmargin 4'
  echo 'set xtics rotate by 0 font ",8"'
  echo 'set multiplot layout 1,2 title "Tributary perf report — '"$started"', '"$(nproc)"' vCPU shared VM'"$( ((quick)) && echo ' (--quick)')"'"'
  echo 'set title "Throughput: ours vs baseline (log scale; unit under each group)"'
  echo 'set logscale y'
  echo 'set yrange [1000:1e8]'
  if [ -s "$chart_t" ]; then
    echo "plot '$chart_t' using 2:xtic(1) title 'ours' lc rgb '#1f77b4', '' using 3 title 'baseline (same run)' lc rgb '#bbbbbb'"
  else
    echo 'set xrange [0:1]'; echo 'set label 1 "no throughput figure in this run" at graph 0.5, 0.5 center'
    echo 'plot NaN notitle'; echo 'unset label 1'; echo 'set autoscale x'
  fi
  echo 'unset logscale y'
  echo 'set yrange [0:*]'
  echo 'set offsets 0, 0, graph 0.25, 0'
  echo 'set title "Latency (ms): ours p50/p99 vs baseline p50/p99"'
  if [ -s "$chart_l" ]; then
    echo "plot '$chart_l' using 2:xtic(1) title 'ours p50' lc rgb '#6baed6', '' using 3 title 'ours p99' lc rgb '#08519c', '' using 4 title 'baseline p50' lc rgb '#dddddd', '' using 5 title 'baseline p99' lc rgb '#888888'"
  else
    echo 'set xrange [0:1]'; echo 'set yrange [0:1]'; echo 'set label 2 "no latency figure in this run" at graph 0.5, 0.5 center'
    echo 'plot NaN notitle'
  fi
  echo 'unset multiplot'
} >"$work/chart.gp"
gnuplot "$work/chart.gp" 2>"$work/gnuplot.err" || { cat "$work/gnuplot.err" >&2; die "gnuplot"; }
[ -s "$png" ] || die "gnuplot wrote no chart"

{
  echo "# Tributary perf report"
  echo
  echo "Written by \`perf/run_all.sh$( ((quick)) && echo ' --quick')\` on $started ($minutes min; commit $commit$( ((dirty)) && echo ", plus $dirty uncommitted tracked file(s) of work in progress in the shared checkout")). Regenerate with \`perf/run_all.sh\` (see perf/README.md)."
  echo
  echo "**Machine:** $(nproc) vCPU, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.1f GiB RAM", $2/1048576}' /proc/meminfo), $(uname -sr)."
  echo "Load average (1/5/15 min) before: $load_before; after: $load_after."
  echo "The VM is **shared** with other engineers' builds and benchmarks, and has CPU steal:"
  echo "absolute rates move by ±25% or more from one run to the next; the ratios are measured"
  echo "in the same run (paired) and are the figures to compare. Each figure is the median over"
  echo "$( ((quick)) && echo "the benchmark's runs (--quick: 3 runs each, smaller counts)" || echo "the benchmark's runs (5, rpc 9, transcode 7, up 3)")."
  echo
  echo "![throughput and latency, ours vs baseline](report.png)"
  echo
  echo "## Summary"
  echo
  echo "| benchmark | ours | baseline (same run) | ratio | target | met |"
  echo "|---|---|---|---|---|---|"
  cat "$summary"
  echo
  cat "$body"
  echo "Raw logs of this run: $work (not kept in the repository)."
} >"$md"

[ ! -e "$work/failed" ] || die "a benchmark figure is missing (see above); no report written"
grep -q MISSING "$md" && die "a benchmark figure is missing; no report written"
cp "$md" "$out/report.md"
cp "$png" "$out/report.png"
echo "run_all: wrote $out/report.md and $out/report.png"
