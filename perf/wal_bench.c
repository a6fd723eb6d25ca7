/*
 * wal_bench — src/streamer/wal.h throughput: records/s and MB/s for 600-byte
 * and 300 KB records in both sync modes (FSYNC: fdatasync per group commit;
 * NONE: write(2) only), medians of 5 runs.
 *
 * Each run opens a fresh WAL in DIR/run-N (default DIR: ./wal_bench.tmp, on
 * the disk under test), appends from P producer threads with at most
 * `window` records in flight (appended, not yet durable), releases each
 * record in its done callback (so compaction deletes segments as the run
 * goes, as the streamer would), and measures from the first append to the
 * last done callback. CPU-seconds of the process over the same interval are
 * reported too. The last case keeps one record in flight per producer thread
 * (window 1), so its records/s is the inverse of the group-commit latency
 * (write + fdatasync).
 *
 * Usage: wal_bench [--dir DIR] [--producers P] [--runs N]
 *   bazel build -c opt //perf:wal_bench && cp bazel-bin/perf/wal_bench /tmp/
 *   /tmp/wal_bench --dir /var/tmp/walb
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "src/common/clock.h"
#include "src/streamer/wal.h"

typedef struct {
  trb_wal_t *w;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  uint64_t inflight, done, failed;
  uint64_t window; /* records in flight per producer thread */
  int producers;
  uint64_t per_producer;
  size_t size;
  const uint8_t *payload;
} run_t;

static void on_done(void *user, trb_wal_lsn_t lsn, grpc_status_code code, const char *msg) {
  run_t *r = (run_t *)user;
  (void)msg;
  trb_wal_release(r->w, lsn);
  pthread_mutex_lock(&r->mu);
  r->inflight--;
  r->done++;
  if (code != GRPC_STATUS_OK) r->failed++;
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
}

static void *producer(void *arg) {
  run_t *r = (run_t *)arg;
  for (uint64_t i = 0; i < r->per_producer; i++) {
    pthread_mutex_lock(&r->mu);
    while (r->inflight >= r->window * (uint64_t)r->producers) pthread_cond_wait(&r->cv, &r->mu);
    r->inflight++;
    pthread_mutex_unlock(&r->mu);
    trb_status_t st;
    trb_wal_lsn_t lsn;
    if (trb_wal_append(r->w, 1, r->payload, r->size, on_done, r, &lsn, &st) != GRPC_STATUS_OK) {
      fprintf(stderr, "append: %s\n", st.msg);
      exit(1);
    }
  }
  return NULL;
}

typedef struct {
  double rec_per_s, mb_per_s, rec_per_cpu_s, groups;
} result_t;

static result_t one_run(const char *dir, trb_wal_sync_t sync, size_t size, uint64_t records,
                        int producers, uint64_t window) {
  result_t res = {0, 0, 0, 0};
  char cmd[4200];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  if (system(cmd) != 0) exit(1);
  uint8_t *payload = (uint8_t *)malloc(size ? size : 1);
  for (size_t i = 0; i < size; i++) payload[i] = (uint8_t)(i * 131 + 7);
  trb_wal_config_t cfg;
  memset(&cfg, 0, sizeof(cfg));
  cfg.dir = dir;
  cfg.sync = sync;
  run_t r;
  memset(&r, 0, sizeof(r));
  pthread_mutex_init(&r.mu, NULL);
  pthread_cond_init(&r.cv, NULL);
  r.window = window;
  r.producers = producers;
  r.per_producer = records / (uint64_t)producers;
  r.size = size;
  r.payload = payload;
  trb_status_t st;
  if (trb_wal_open(&cfg, NULL, NULL, &r.w, &st) != GRPC_STATUS_OK) {
    fprintf(stderr, "open %s: %s\n", dir, st.msg);
    exit(1);
  }
  uint64_t total = r.per_producer * (uint64_t)producers;
  int64_t t0 = trb_clock_mono_ns(), c0 = trb_clock_cpu_ns();
  pthread_t th[64];
  for (int i = 0; i < producers; i++) pthread_create(&th[i], NULL, producer, &r);
  for (int i = 0; i < producers; i++) pthread_join(th[i], NULL);
  pthread_mutex_lock(&r.mu);
  while (r.done < total) pthread_cond_wait(&r.cv, &r.mu);
  pthread_mutex_unlock(&r.mu);
  int64_t t1 = trb_clock_mono_ns(), c1 = trb_clock_cpu_ns();
  trb_wal_stats_t s;
  trb_wal_stats(r.w, &s);
  trb_wal_close(r.w);
  if (r.failed) {
    fprintf(stderr, "%" PRIu64 " appends failed\n", r.failed);
    exit(1);
  }
  double secs = (double)(t1 - t0) / 1e9, cpu = (double)(c1 - c0) / 1e9;
  res.rec_per_s = (double)total / secs;
  res.mb_per_s = (double)s.bytes_written / secs / 1e6;
  res.rec_per_cpu_s = cpu > 0 ? (double)total / cpu : 0;
  res.groups = (double)s.groups_committed;
  if (system(cmd) != 0) exit(1);
  free(payload);
  pthread_mutex_destroy(&r.mu);
  pthread_cond_destroy(&r.cv);
  return res;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof(double), cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv) {
  const char *dir = "wal_bench.tmp";
  int producers = 2, runs = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--dir") == 0) dir = argv[i + 1];
    else if (strcmp(argv[i], "--producers") == 0) producers = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--runs") == 0) runs = atoi(argv[i + 1]);
    else {
      fprintf(stderr, "usage: %s [--dir DIR] [--producers P] [--runs N]\n", argv[0]);
      return 2;
    }
  }
  if (producers < 1 || producers > 64 || runs < 1 || runs > 100) return 2;
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
    perror(dir);
    return 1;
  }
  struct {
    const char *name;
    trb_wal_sync_t sync;
    size_t size;
    uint64_t records, window;
  } cases[] = {
      {"600 B  fsync", TRB_WAL_SYNC_FSYNC, 600, 200000, 10000},
      {"600 B  none ", TRB_WAL_SYNC_NONE, 600, 400000, 10000},
      {"300 KB fsync", TRB_WAL_SYNC_FSYNC, 300000, 1000, 50},
      {"300 KB none ", TRB_WAL_SYNC_NONE, 300000, 1000, 50},
      /* One record in flight per producer: the commit latency (1/rate). */
      {"600 B fsync 1", TRB_WAL_SYNC_FSYNC, 600, 2000, 1},
  };
  printf("wal_bench: %d producer threads, window = records in flight per producer, %d runs, "
         "dir %s\n",
         producers, runs, dir);
  printf("%-13s %12s %10s %14s %10s   (medians; per-run rec/s)\n", "case", "records/s", "MB/s",
         "records/CPU-s", "groups");
  /* Runs interleave the cases (case A run 1, case B run 1, ...) so a noisy
   * neighbour hits every case alike. */
  enum { NCASES = sizeof(cases) / sizeof(cases[0]) };
  double rps[NCASES][100], mbps[NCASES][100], rpc[NCASES][100], grp[NCASES][100];
  char sub[4096];
  for (int k = 0; k < runs; k++) {
    for (int c = 0; c < NCASES; c++) {
      snprintf(sub, sizeof(sub), "%s/run-%d", dir, c);
      result_t r = one_run(sub, cases[c].sync, cases[c].size, cases[c].records, producers,
                           cases[c].window);
      rps[c][k] = r.rec_per_s;
      mbps[c][k] = r.mb_per_s;
      rpc[c][k] = r.rec_per_cpu_s;
      grp[c][k] = r.groups;
    }
  }
  for (int c = 0; c < NCASES; c++) {
    char runs_txt[1024] = "";
    size_t used = 0;
    for (int k = 0; k < runs && used < sizeof(runs_txt) - 32; k++)
      used += (size_t)snprintf(runs_txt + used, sizeof(runs_txt) - used, " %.0f", rps[c][k]);
    printf("%-13s %12.0f %10.1f %14.0f %10.0f  %s\n", cases[c].name, median(rps[c], runs),
           median(mbps[c], runs), median(rpc[c], runs), median(grp[c], runs), runs_txt);
  }
  /* Machine-readable medians for perf/run_all.sh (keys: case0..case4 in the order above). */
  for (int c = 0; c < NCASES; c++)
    printf("RESULT case%d_rps=%.0f case%d_mbs=%.1f\n", c, median(rps[c], runs), c,
           median(mbps[c], runs));
  rmdir(dir);
  return 0;
}
