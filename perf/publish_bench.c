/*
 * publish_bench — src/pubsub Publisher vs Google's official Node.js
 * Publisher (perf/node/publish_bench.mjs), both publishing 600-byte
 * messages to `tributary emulator` (a child process, in memory).
 *
 * Figure of merit: messages per client CPU-second (user + system of the
 * publishing process over the publish phase), plus messages/s wall. Both
 * clients batch 1000 messages / 10 ms and keep up to 20000 messages
 * outstanding (C: flow control BLOCK at 20000 messages, 8 RPCs in flight).
 *
 * usage: publish_bench --tributary PATH [--node-dir DIR] [--runs N]
 *                      [--messages N] [--node-messages N]
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "src/common/clock.h"
#include "perf/bench_emu.h"
#include "src/pubsub/publisher.h"
#include "src/rpc/rpc.h"

#define MSG_BYTES 600
#define PROJECT "bench"
#define TOPIC "projects/" PROJECT "/topics/bench"

static const char kConfig[] =
    "{\"project\":\"" PROJECT "\",\"topics\":[\"bench\"]}\n";

typedef trb_bench_emu_t emu_t;

typedef struct {
  double rate;   /* messages/s wall */
  double cpu_s;  /* client CPU seconds */
  double per_cpu; /* messages per client CPU-second */
} result_t;

typedef struct {
  pthread_mutex_t mu;
  long ok, failed;
} counts_t;

static void on_done(void *user, grpc_status_code code, const char *msg,
                    const char *id) {
  (void)msg;
  (void)id;
  counts_t *c = user;
  pthread_mutex_lock(&c->mu);
  if (code == GRPC_STATUS_OK) {
    c->ok++;
  } else {
    c->failed++;
  }
  pthread_mutex_unlock(&c->mu);
}

static result_t bench_c(const emu_t *e, long n) {
  trb_status_t st;
  trb_rpc_loop_t *loop;
  trb_rpc_channel_t *ch;
  if (trb_rpc_loop_create("pub-bench", &loop, &st) != GRPC_STATUS_OK) trb_bench_die(st.msg);
  trb_rpc_channel_config_t cc = {0};
  cc.target = e->pubsub;
  if (trb_rpc_channel_create(&cc, &ch, &st) != GRPC_STATUS_OK) trb_bench_die(st.msg);
  trb_ps_publisher_config_t cfg = {0};
  cfg.max_messages = 1000;
  cfg.max_bytes = 9 * 1024 * 1024;
  cfg.max_delay_ms = 10;
  cfg.flow_max_messages = 20000;
  cfg.flow = TRB_PS_FLOW_BLOCK;
  trb_ps_publisher_t *p;
  if (trb_ps_publisher_create(loop, ch, TOPIC, &cfg, &p, &st) != GRPC_STATUS_OK)
    trb_bench_die(st.msg);
  counts_t c = {PTHREAD_MUTEX_INITIALIZER, 0, 0};
  static uint8_t data[MSG_BYTES];
  memset(data, 'x', sizeof(data));
  trb_ps_message_t m = {data, sizeof(data), NULL, 0, NULL};
  /* Connect first, outside the clock. */
  if (trb_ps_publish(p, &m, on_done, &c, &st) != GRPC_STATUS_OK) trb_bench_die(st.msg);
  if (trb_ps_publisher_flush(p, 30000, &st) != GRPC_STATUS_OK) trb_bench_die(st.msg);

  double cpu0 = trb_bench_rusage_s(RUSAGE_SELF);
  int64_t t0 = trb_clock_mono_ns();
  for (long i = 0; i < n; i++) {
    if (trb_ps_publish(p, &m, on_done, &c, &st) != GRPC_STATUS_OK) trb_bench_die(st.msg);
  }
  if (trb_ps_publisher_flush(p, 120000, &st) != GRPC_STATUS_OK) trb_bench_die(st.msg);
  int64_t t1 = trb_clock_mono_ns();
  double cpu1 = trb_bench_rusage_s(RUSAGE_SELF);
  trb_ps_publisher_stats_t s;
  if (trb_ps_publisher_shutdown(p, 10000, &s, &st) != GRPC_STATUS_OK) trb_bench_die(st.msg);
  if (c.ok != n + 1 || c.failed != 0) trb_bench_die("not every message was published");
  trb_ps_publisher_destroy(p);
  trb_rpc_loop_destroy(loop);
  trb_rpc_channel_destroy(ch);
  double wall = (double)(t1 - t0) / 1e9, cpu = cpu1 - cpu0;
  return (result_t){(double)n / wall, cpu, (double)n / cpu};
}

static result_t bench_node(const emu_t *e, const char *dir, long n) {
  char cmd[1024];
  snprintf(cmd, sizeof(cmd),
           "cd %s && PUBSUB_EMULATOR_HOST=%s BENCH_PROJECT=" PROJECT
           " BENCH_N=%ld node publish_bench.mjs",
           dir, e->pubsub, n);
  char last[256];
  trb_bench_run_last_line(cmd, last, sizeof(last));
  result_t r = {0, 0, 0};
  if (sscanf(last, "%lf %lf", &r.rate, &r.cpu_s) != 2) trb_bench_die("node output");
  r.per_cpu = (double)n / r.cpu_s;
  return r;
}

#define MAX_RUNS 15

int main(int argc, char **argv) {
  const char *bin = NULL, *node_dir = NULL;
  int runs = 3;
  long messages = 500000, node_messages = 500000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--tributary") == 0) bin = argv[i + 1];
    else if (strcmp(argv[i], "--node-dir") == 0) node_dir = argv[i + 1];
    else if (strcmp(argv[i], "--runs") == 0) runs = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--messages") == 0) messages = atol(argv[i + 1]);
    else if (strcmp(argv[i], "--node-messages") == 0) node_messages = atol(argv[i + 1]);
    else trb_bench_die("usage: publish_bench --tributary PATH [--node-dir DIR] [--runs N] "
             "[--messages N] [--node-messages N]");
  }
  if (!bin) trb_bench_die("--tributary PATH is required");
  if (runs < 1 || runs > MAX_RUNS) trb_bench_die("--runs must be 1..15");
  trb_rpc_init();
  double c_rate[MAX_RUNS], c_per[MAX_RUNS], n_rate[MAX_RUNS], n_per[MAX_RUNS];
  double ratio[MAX_RUNS]; /* paired C/Node per client CPU-s, for the RESULT line */
  for (int r = 0; r < runs; r++) {
    emu_t e;
    trb_bench_emu_start(bin, kConfig, NULL, false, &e);
    result_t c = bench_c(&e, messages);
    printf("run %d  C     %9.0f msg/s  %6.3f CPU-s  %9.0f msg/CPU-s\n", r + 1,
           c.rate, c.cpu_s, c.per_cpu);
    c_rate[r] = c.rate;
    c_per[r] = c.per_cpu;
    if (node_dir) {
      result_t nd = bench_node(&e, node_dir, node_messages);
      printf("run %d  Node  %9.0f msg/s  %6.3f CPU-s  %9.0f msg/CPU-s\n", r + 1,
             nd.rate, nd.cpu_s, nd.per_cpu);
      n_rate[r] = nd.rate;
      n_per[r] = nd.per_cpu;
      ratio[r] = c.per_cpu / nd.per_cpu;
    }
    fflush(stdout);
    trb_bench_emu_stop(&e);
  }
  printf("median C:    %9.0f msg/s  %9.0f msg per client CPU-s\n",
         trb_bench_median(c_rate, runs), trb_bench_median(c_per, runs));
  if (node_dir) {
    printf("median Node: %9.0f msg/s  %9.0f msg per client CPU-s\n",
           trb_bench_median(n_rate, runs), trb_bench_median(n_per, runs));
  }
  /* Machine-readable medians for perf/run_all.sh. */
  printf("RESULT c_rate=%.0f c_per_cpu=%.0f\n", trb_bench_median(c_rate, runs),
         trb_bench_median(c_per, runs));
  if (node_dir)
    printf("RESULT node_rate=%.0f node_per_cpu=%.0f ratio=%.2f\n",
           trb_bench_median(n_rate, runs), trb_bench_median(n_per, runs),
           trb_bench_median(ratio, runs));
  trb_rpc_shutdown();
  return 0;
}
