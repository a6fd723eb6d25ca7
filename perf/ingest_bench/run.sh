#!/usr/bin/env bash
# perf/ingest_bench/run.sh — `tributary ingest` vs nginx answering 204, the
# same 600-byte JSON POSTs over keep-alive from wrk, side by side in each run
# (issue 7). ingest publishes every event to the in-memory emulator and
# answers only after Pub/Sub confirmed it; nginx discards the body.
#
# Reported per run and as medians: requests/s, server CPU-seconds (utime +
# stime of the server process from /proc, emulator and wrk excluded),
# requests per server CPU-second ("per core"), the ratio ingest/nginx of
# that, and wrk's p50/p99 latency.
#
# Usage: perf/ingest_bench/run.sh [runs=5] [seconds=10] [connections=32]
# Needs: wrk, nginx (Debian packages), a -c opt build (done here; or set
# TRB_INGEST_BENCH_BIN to a tributary binary built earlier, e.g. to measure
# an older commit side by side).
set -euo pipefail
runs=${1:-5}
secs=${2:-10}
conns=${3:-32}
top=$(cd "$(dirname "$0")/../.." && pwd)
here="$top/perf/ingest_bench"
command -v wrk >/dev/null || { echo "ingest_bench: needs wrk (apt-get install wrk)" >&2; exit 2; }
command -v nginx >/dev/null || { echo "ingest_bench: needs nginx (apt-get install nginx)" >&2; exit 2; }

work=$(mktemp -d /tmp/ingest_bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

if [[ -n "${TRB_INGEST_BENCH_BIN:-}" ]]; then
  cp "$TRB_INGEST_BENCH_BIN" "$work/tributary"
else
  (cd "$top" && bazel build -c opt //src/cli:tributary >/dev/null 2>&1)
  cp "$top/bazel-bin/src/cli/tributary" "$work/tributary"
fi

cat > "$work/emulator.json" <<JSON
{"project": "bench", "topics": ["issues"]}
JSON
TRB_LOG_LEVEL=warning "$work/tributary" emulator --pubsub-port 0 --bigquery-port 0 \
  --config "$work/emulator.json" >"$work/emu.out" 2>"$work/emu.err" &
pids+=($!)
for _ in $(seq 100); do grep -q PUBSUB_EMULATOR_HOST "$work/emu.out" && break; sleep 0.1; done
emu=$(sed -n 's/^PUBSUB_EMULATOR_HOST=//p' "$work/emu.out")

PUBSUB_EMULATOR_HOST=$emu TRB_LOG_LEVEL=warning "$work/tributary" ingest \
  --host 127.0.0.1 --port 0 --threads 1 --project bench --topic issues \
  --flow-control block >"$work/ing.out" 2>"$work/ing.err" &
ing_pid=$!
pids+=($ing_pid)
for _ in $(seq 100); do grep -q INGEST_URL "$work/ing.out" && break; sleep 0.1; done
ing_url=$(sed -n 's/^INGEST_URL=//p' "$work/ing.out")

nginx_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/nginx"
cat > "$work/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx;
  client_max_body_size 1m;
  client_body_buffer_size 16k;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$nginx_port;
    location / { return 204; }
  }
}
CONF
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" &
pids+=($!)
sleep 0.5
nginx_worker=$(pgrep -P "$(cat "$work/nginx/nginx.pid")" | head -1)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# One wrk run against $1 (URL), measuring the CPU of pid $2.
# Prints: req_per_s cpu_s p50_ms p99_ms non2xx
measure() {
  local url=$1 pid=$2 c0 c1 out
  c0=$(cpu_ticks "$pid")
  out=$(wrk -t1 -c"$conns" -d"${secs}s" --latency -s "$here/post.lua" "$url/")
  c1=$(cpu_ticks "$pid")
  echo "$out" | awk -v cpu="$(( c1 - c0 ))" -v hz="$hz" '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0;
                     if (v ~ /s$/) return v * 1000; return v }
    /^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) }
    /^Requests\/sec/ { rps = $2 } /Non-2xx/ { bad = $NF }
    END { printf "%.0f %.2f %.2f %.2f %d\n", rps, cpu / hz, p50, p99, bad + 0 }'
}

echo "ingest_bench: ${runs} runs x ${secs}s, wrk -t1 -c${conns}, 600-byte JSON POST"
printf "%-4s | %-38s | %-38s | %s\n" run "nginx 204: req/s cpu-s req/cpu-s p50 p99" \
  "ingest: req/s cpu-s req/cpu-s p50 p99" "ratio/cpu-s"
ratios=(); results=()
for r in $(seq "$runs"); do
  # Alternate the order so drift does not favour one side.
  if (( r % 2 )); then
    n=$(measure "http://127.0.0.1:$nginx_port" "$nginx_worker"); i=$(measure "$ing_url" "$ing_pid")
  else
    i=$(measure "$ing_url" "$ing_pid"); n=$(measure "http://127.0.0.1:$nginx_port" "$nginx_worker")
  fi
  read -r n_rps n_cpu n_p50 n_p99 n_bad <<<"$n"
  read -r i_rps i_cpu i_p50 i_p99 i_bad <<<"$i"
  n_eff=$(awk -v a="$n_rps" -v c="$n_cpu" -v s="$secs" 'BEGIN{printf "%.0f", a*s/c}')
  i_eff=$(awk -v a="$i_rps" -v c="$i_cpu" -v s="$secs" 'BEGIN{printf "%.0f", a*s/c}')
  ratio=$(awk -v a="$i_eff" -v b="$n_eff" 'BEGIN{printf "%.3f", a/b}')
  ratios+=("$ratio")
  results+=("$n_rps $n_eff $n_p50 $n_p99 $i_rps $i_eff $i_p50 $i_p99")
  printf "%-4s | %7s %6s %8s %6sms %6sms | %7s %6s %8s %6sms %6sms | %s%s\n" "$r" \
    "$n_rps" "$n_cpu" "$n_eff" "$n_p50" "$n_p99" "$i_rps" "$i_cpu" "$i_eff" "$i_p50" "$i_p99" \
    "$ratio" "$( (( i_bad > 0 )) && echo " ($i_bad non-2xx from ingest)")"
done
median=$(printf "%s\n" "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}')
echo "median ingest/nginx requests per server CPU-second: $median (target >= 0.6)"
# Machine-readable medians for perf/run_all.sh (per column over the runs).
printf "%s\n" "${results[@]}" | awk -v ratio="$median" '
  function med(col,   i, n, v, t) { n = 0; for (i = 1; i <= NR; i++) v[++n] = row[i, col]
    for (i = 2; i <= n; i++) { t = v[i]; j = i - 1; while (j > 0 && v[j] > t) { v[j + 1] = v[j]; j-- } v[j + 1] = t }
    return (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }
  { for (c = 1; c <= 8; c++) row[NR, c] = $c }
  END { printf "RESULT nginx_rps=%.0f nginx_per_cpu=%.0f nginx_p50_ms=%.2f nginx_p99_ms=%.2f ", med(1), med(2), med(3), med(4)
        printf "ingest_rps=%.0f ingest_per_cpu=%.0f ingest_p50_ms=%.2f ingest_p99_ms=%.2f ratio=%s\n", med(5), med(6), med(7), med(8), ratio }'
# Every 2xx'd request was published: the emulator's topic holds them all
# (checked by the e2e tests; here the published counter is printed).
curl -s "$ing_url/metrics" 2>/dev/null | grep -E '^tributary_ingest_(events_published_total|rejected_total\{reason="backpressure"\})' || true
