/*
 * subscribe_bench — src/pubsub Subscriber vs Google's official Node.js
 * streaming subscriber (perf/node/subscribe_bench.mjs): receive + ack of a
 * preloaded backlog of 600-byte messages from `tributary emulator` (a
 * child process, in memory).
 *
 * Per run: start the emulator (topic "bench", subscription "bench-sub",
 * ack deadline 60 s), preload N messages with the C Publisher, then time
 * only receive + ack by the C Subscriber (1 stream, 1000 outstanding
 * messages) until every message was acked and the acks were sent; then
 * preload N again and run the Node script (flowControl maxMessages 1000,
 * ack each message), which reports its own rate and process CPU.
 *
 * Figure of merit: messages per client CPU-second (user + system of the
 * subscribing process over the receive phase), plus messages/s wall.
 * Reference: Google's published figure for the Java client, about 31,000
 * messages/s per core (receive + ack only).
 *
 * usage: subscribe_bench --tributary PATH [--node-dir DIR] [--runs N]
 *                        [--messages N]
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "perf/bench_emu.h"
#include "src/common/clock.h"
#include "src/pubsub/publisher.h"
#include "src/pubsub/subscriber.h"
#include "src/rpc/rpc.h"

#define MSG_BYTES 600
#define PROJECT "bench"
#define TOPIC "projects/" PROJECT "/topics/bench"
#define SUB "projects/" PROJECT "/subscriptions/bench-sub"
#define FLOW_MESSAGES 1000
#define JAVA_PER_CORE 31000.0

static const char kConfig[] =
    "{\"project\":\"" PROJECT "\",\"topics\":[\"bench\"],"
    "\"subscriptions\":[{\"name\":\"bench-sub\",\"topic\":\"bench\","
    "\"ackDeadlineSeconds\":60}]}\n";

typedef trb_bench_emu_t emu_t;

typedef struct {
  double rate;    /* messages/s wall */
  double cpu_s;   /* client CPU seconds */
  double per_cpu; /* messages per client CPU-second */
} result_t;

typedef struct {
  pthread_mutex_t mu;
  long ok, failed;
} counts_t;

static void on_published(void *user, grpc_status_code code, const char *msg,
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

/* Publish n 600-byte messages to TOPIC and wait for every message id. */
static void preload(trb_rpc_loop_t *loop, trb_rpc_channel_t *ch, long n) {
  trb_status_t st;
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
  for (long i = 0; i < n; i++) {
    if (trb_ps_publish(p, &m, on_published, &c, &st) != GRPC_STATUS_OK)
      trb_bench_die(st.msg);
  }
  if (trb_ps_publisher_flush(p, 300000, &st) != GRPC_STATUS_OK) trb_bench_die(st.msg);
  trb_ps_publisher_stats_t s;
  if (trb_ps_publisher_shutdown(p, 10000, &s, &st) != GRPC_STATUS_OK) trb_bench_die(st.msg);
  if (c.ok != n || c.failed != 0) trb_bench_die("preload: not every message was published");
  trb_ps_publisher_destroy(p);
}

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  long target;
  atomic_long acked;
} sub_state_t;

static void on_message(void *user, const trb_ps_received_t *msg,
                       trb_ps_ack_handle_t *h) {
  (void)msg;
  sub_state_t *s = user;
  trb_ps_ack(h);
  if (atomic_fetch_add(&s->acked, 1) + 1 == s->target) {
    pthread_mutex_lock(&s->mu);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
  }
}

static result_t bench_c(const emu_t *e, long n) {
  trb_status_t st;
  trb_rpc_loop_t *loop;
  trb_rpc_channel_t *ch;
  if (trb_rpc_loop_create("sub-bench", &loop, &st) != GRPC_STATUS_OK) trb_bench_die(st.msg);
  trb_rpc_channel_config_t cc = {0};
  cc.target = e->pubsub;
  if (trb_rpc_channel_create(&cc, &ch, &st) != GRPC_STATUS_OK) trb_bench_die(st.msg);
  preload(loop, ch, n);

  sub_state_t ss;
  pthread_mutex_init(&ss.mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&ss.cv, &ca);
  pthread_condattr_destroy(&ca);
  ss.target = n;
  atomic_init(&ss.acked, 0);
  trb_ps_subscriber_config_t cfg = {0};
  cfg.streams = 1;
  cfg.max_outstanding_messages = FLOW_MESSAGES;
  trb_ps_subscriber_t *s;
  if (trb_ps_subscriber_create(loop, ch, SUB, &cfg, on_message, &ss, &s, &st) !=
      GRPC_STATUS_OK)
    trb_bench_die(st.msg);

  double cpu0 = trb_bench_rusage_s(RUSAGE_SELF);
  int64_t t0 = trb_clock_mono_ns();
  if (trb_ps_subscriber_start(s, &st) != GRPC_STATUS_OK) trb_bench_die(st.msg);
  struct timespec dl;
  clock_gettime(CLOCK_MONOTONIC, &dl);
  dl.tv_sec += 600;
  pthread_mutex_lock(&ss.mu);
  while (atomic_load(&ss.acked) < n) {
    if (pthread_cond_timedwait(&ss.cv, &ss.mu, &dl) != 0) break;
  }
  pthread_mutex_unlock(&ss.mu);
  if (atomic_load(&ss.acked) < n) trb_bench_die("C subscriber: timed out");
  /* Until the last acks are sent (stop flushes them). */
  if (trb_ps_subscriber_stop(s, 30000, &st) != GRPC_STATUS_OK) trb_bench_die(st.msg);
  int64_t t1 = trb_clock_mono_ns();
  double cpu1 = trb_bench_rusage_s(RUSAGE_SELF);
  trb_ps_subscriber_stats_t stats;
  trb_ps_subscriber_stats(s, &stats);
  if (stats.first_error.code != GRPC_STATUS_OK) trb_bench_die(stats.first_error.msg);
  if (stats.ack_failures != 0) trb_bench_die("C subscriber: ack failures");
  fprintf(stderr,
          "  C subscriber: received %llu acked %llu ack_rpcs %llu peak_held %llu "
          "peak_ids/request %llu\n",
          (unsigned long long)stats.received, (unsigned long long)stats.acked,
          (unsigned long long)stats.ack_rpcs, (unsigned long long)stats.peak_held,
          (unsigned long long)stats.peak_ids_per_request);
  trb_ps_subscriber_destroy(s);
  trb_rpc_loop_destroy(loop);
  trb_rpc_channel_destroy(ch);
  pthread_cond_destroy(&ss.cv);
  pthread_mutex_destroy(&ss.mu);
  double wall = (double)(t1 - t0) / 1e9, cpu = cpu1 - cpu0;
  return (result_t){(double)n / wall, cpu, (double)n / cpu};
}

/* Preload n messages with the C publisher, then run the Node subscriber. */
static result_t bench_node(const emu_t *e, const char *dir, long n) {
  trb_status_t st;
  trb_rpc_loop_t *loop;
  trb_rpc_channel_t *ch;
  if (trb_rpc_loop_create("sub-bench-pre", &loop, &st) != GRPC_STATUS_OK) trb_bench_die(st.msg);
  trb_rpc_channel_config_t cc = {0};
  cc.target = e->pubsub;
  if (trb_rpc_channel_create(&cc, &ch, &st) != GRPC_STATUS_OK) trb_bench_die(st.msg);
  preload(loop, ch, n);
  trb_rpc_loop_destroy(loop);
  trb_rpc_channel_destroy(ch);

  char cmd[1024];
  snprintf(cmd, sizeof(cmd),
           "cd %s && PUBSUB_EMULATOR_HOST=%s BENCH_PROJECT=" PROJECT
           " BENCH_N=%ld BENCH_FLOW=%d node subscribe_bench.mjs",
           dir, e->pubsub, n, FLOW_MESSAGES);
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
  long messages = 200000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--tributary") == 0) bin = argv[i + 1];
    else if (strcmp(argv[i], "--node-dir") == 0) node_dir = argv[i + 1];
    else if (strcmp(argv[i], "--runs") == 0) runs = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--messages") == 0) messages = atol(argv[i + 1]);
    else trb_bench_die("usage: subscribe_bench --tributary PATH [--node-dir DIR] "
                       "[--runs N] [--messages N]");
  }
  if (!bin) trb_bench_die("--tributary PATH is required");
  if (runs < 1 || runs > MAX_RUNS) trb_bench_die("--runs must be 1..15");
  if (messages < 1) trb_bench_die("--messages must be >= 1");
  trb_rpc_init();
  double c_rate[MAX_RUNS], c_per[MAX_RUNS], n_rate[MAX_RUNS], n_per[MAX_RUNS],
      ratio[MAX_RUNS];
  printf("receive + ack of %ld preloaded 600-byte messages, 1 stream, "
         "%d outstanding messages\n", messages, FLOW_MESSAGES);
  for (int r = 0; r < runs; r++) {
    emu_t e;
    trb_bench_emu_start(bin, kConfig, NULL, false, &e);
    result_t c = bench_c(&e, messages);
    printf("run %d  C     %9.0f msg/s  %6.3f CPU-s  %9.0f msg/CPU-s\n", r + 1,
           c.rate, c.cpu_s, c.per_cpu);
    c_rate[r] = c.rate;
    c_per[r] = c.per_cpu;
    if (node_dir) {
      result_t nd = bench_node(&e, node_dir, messages);
      ratio[r] = c.per_cpu / nd.per_cpu;
      printf("run %d  Node  %9.0f msg/s  %6.3f CPU-s  %9.0f msg/CPU-s   "
             "C/Node per CPU-s %.1fx\n",
             r + 1, nd.rate, nd.cpu_s, nd.per_cpu, ratio[r]);
      n_rate[r] = nd.rate;
      n_per[r] = nd.per_cpu;
    }
    fflush(stdout);
    trb_bench_emu_stop(&e);
  }
  double c_med = trb_bench_median(c_per, runs);
  printf("median C:    %9.0f msg/s  %9.0f msg per client CPU-s\n",
         trb_bench_median(c_rate, runs), c_med);
  if (node_dir) {
    printf("median Node: %9.0f msg/s  %9.0f msg per client CPU-s\n",
           trb_bench_median(n_rate, runs), trb_bench_median(n_per, runs));
    printf("median C/Node per client CPU-s: %.1fx\n", trb_bench_median(ratio, runs));
  }
  printf("reference: Java client (Google's published figure) ~%.0f msg/s per "
         "core, receive + ack only; C = %.2fx of it\n",
         JAVA_PER_CORE, c_med / JAVA_PER_CORE);
  /* Machine-readable medians for perf/run_all.sh. */
  printf("RESULT c_rate=%.0f c_per_cpu=%.0f java_per_core=%.0f\n",
         trb_bench_median(c_rate, runs), c_med, JAVA_PER_CORE);
  if (node_dir)
    printf("RESULT node_rate=%.0f node_per_cpu=%.0f ratio=%.2f\n",
           trb_bench_median(n_rate, runs), trb_bench_median(n_per, runs),
           trb_bench_median(ratio, runs));
  trb_rpc_shutdown();
  return 0;
}
