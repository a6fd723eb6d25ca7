/*
 * emulator_bench — throughput of `tributary emulator` with a durable
 * --data-dir, driven by our own C client (src/rpc + nanopb stubs) and, in
 * the same run, by Google's official Node.js clients (the scripts in perf/node).
 *
 *   pubsub:   Publish → StreamingPull → Acknowledge of 600-byte messages
 *             (C: 1000-message Publish requests, 8 in flight; acks sent on
 *             the stream).
 *   bigquery: AppendRows of ~600-byte rows into one COMMITTED stream with
 *             offsets (C: 1000 rows per request, 8 requests in flight).
 *
 * Each run starts a fresh emulator process, so that its CPU time can be
 * read from /proc and set against the wall time: an emulator using well
 * under its 2 cores while the client saturates one is not the bottleneck.
 *
 * usage: emulator_bench --tributary PATH [--node-dir DIR] [--runs N]
 *                       [--messages N] [--rows N]
 * Prints one line per measurement and a summary of medians.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "google/cloud/bigquery/storage/v1/storage.pb.h"
#include "google/pubsub/v1/pubsub.pb.h"
#include "perf/bench_emu.h"
#include "src/common/clock.h"
#include "src/rpc/pb.h"
#include "src/rpc/rpc.h"

#define MSG_BYTES 600
#define BATCH 1000
#define IN_FLIGHT 8
#define PROJECT "bench"
#define TOPIC "projects/" PROJECT "/topics/bench"
#define SUB "projects/" PROJECT "/subscriptions/bench-sub"
#define TABLE "projects/" PROJECT "/datasets/bench/tables/events"

static const char *g_bin;
static const char *g_node_dir;

/* ---- emulator process ---------------------------------------------------- */

static const char kConfig[] =
    "{\"project\":\"" PROJECT "\",\"topics\":[\"bench\"],"
    "\"subscriptions\":[{\"name\":\"bench-sub\",\"topic\":\"bench\","
    "\"ackDeadlineSeconds\":60}]}\n";
static const char *const kTables[] = {
    "bench.events.json",
    "[{\"name\":\"id\",\"type\":\"INT64\",\"mode\":\"REQUIRED\"},"
    "{\"name\":\"user_id\",\"type\":\"STRING\"},"
    "{\"name\":\"event_type\",\"type\":\"STRING\"},"
    "{\"name\":\"amount\",\"type\":\"FLOAT64\"},"
    "{\"name\":\"event_time\",\"type\":\"TIMESTAMP\"},"
    "{\"name\":\"payload\",\"type\":\"STRING\"}]\n",
    NULL};

typedef trb_bench_emu_t emu_t;

typedef struct {
  double rate;       /* messages or rows per second */
  double emu_cores;  /* emulator CPU-s per wall-s */
  double client_cores;
  double emu_cpu_s_per_m; /* emulator CPU-s per million messages / rows */
} result_t;

/* ---- C Pub/Sub client ------------------------------------------------- */

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  long published, acked, target;
  int in_flight;
  bool failed;
  char error[256];
  trb_rpc_stream_t *pull;
  bool pull_closed;
  uint8_t *publish_req;
  size_t publish_len;
} ps_bench_t;

static void on_published(void *user, const trb_rpc_result_t *r) {
  ps_bench_t *b = user;
  pthread_mutex_lock(&b->mu);
  b->in_flight--;
  if (r->code != GRPC_STATUS_OK) {
    b->failed = true;
    snprintf(b->error, sizeof(b->error), "Publish: %s", r->message);
  } else {
    b->published += BATCH;
  }
  pthread_cond_broadcast(&b->cv);
  pthread_mutex_unlock(&b->mu);
}

static void on_pull_message(void *user, trb_rpc_stream_t *s,
                            const uint8_t *data, size_t len) {
  ps_bench_t *b = user;
  google_pubsub_v1_StreamingPullResponse resp =
      google_pubsub_v1_StreamingPullResponse_init_zero;
  trb_status_t st;
  if (trb_pb_decode(google_pubsub_v1_StreamingPullResponse_fields, data, len,
                    &resp, &st) != GRPC_STATUS_OK) {
    trb_bench_die("bad StreamingPullResponse");
  }
  pb_size_t n = resp.received_messages_count;
  if (n > 0) {
    google_pubsub_v1_StreamingPullRequest ack =
        google_pubsub_v1_StreamingPullRequest_init_zero;
    ack.ack_ids_count = n;
    ack.ack_ids = malloc(n * sizeof(char *));
    for (pb_size_t i = 0; i < n; i++) ack.ack_ids[i] = resp.received_messages[i].ack_id;
    uint8_t *buf;
    size_t blen;
    if (trb_pb_encode(google_pubsub_v1_StreamingPullRequest_fields, &ack, &buf,
                      &blen, &st) != GRPC_STATUS_OK)
      trb_bench_die("encode ack");
    free(ack.ack_ids);
    trb_rpc_stream_write(s, buf, blen, NULL);
    trb_pb_free(buf);
    pthread_mutex_lock(&b->mu);
    b->acked += n;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
  }
  trb_pb_release(google_pubsub_v1_StreamingPullResponse_fields, &resp);
}

static void on_pull_close(void *user, trb_rpc_stream_t *s,
                          const trb_rpc_result_t *r) {
  ps_bench_t *b = user;
  (void)s;
  pthread_mutex_lock(&b->mu);
  if (r->code != GRPC_STATUS_OK && r->code != GRPC_STATUS_CANCELLED) {
    b->failed = true;
    snprintf(b->error, sizeof(b->error), "StreamingPull: %s (%d)", r->message, r->code);
  }
  b->pull_closed = true;
  pthread_cond_broadcast(&b->cv);
  pthread_mutex_unlock(&b->mu);
}

static result_t bench_pubsub_c(const emu_t *e, long n_messages) {
  trb_status_t st;
  trb_rpc_loop_t *loop;
  trb_rpc_channel_t *ch;
  trb_rpc_channel_config_t cc = {0};
  cc.target = e->pubsub;
  cc.creds = TRB_RPC_CREDS_INSECURE;
  if (trb_rpc_loop_create("bench", &loop, &st) != GRPC_STATUS_OK ||
      trb_rpc_channel_create(&cc, &ch, &st) != GRPC_STATUS_OK)
    trb_bench_die(st.msg);

  ps_bench_t b = {.target = n_messages};
  pthread_mutex_init(&b.mu, NULL);
  pthread_cond_init(&b.cv, NULL);

  /* One PublishRequest of BATCH messages, reused. */
  static char data[MSG_BYTES];
  memset(data, 'x', sizeof(data));
  google_pubsub_v1_PublishRequest req = google_pubsub_v1_PublishRequest_init_zero;
  req.topic = TOPIC;
  req.messages_count = BATCH;
  req.messages = calloc(BATCH, sizeof(*req.messages));
  for (int i = 0; i < BATCH; i++) {
    req.messages[i].data.data = (const uint8_t *)data;
    req.messages[i].data.len = MSG_BYTES;
  }
  if (trb_pb_encode(google_pubsub_v1_PublishRequest_fields, &req, &b.publish_req,
                    &b.publish_len, &st) != GRPC_STATUS_OK)
    trb_bench_die(st.msg);
  free(req.messages);

  trb_rpc_md_t md = {"x-goog-request-params", "subscription=" SUB, 0};
  trb_rpc_call_opts_t opts = {.md = &md, .n_md = 1};
  trb_rpc_stream_cbs_t cbs = {.on_message = on_pull_message, .on_close = on_pull_close};
  if (trb_rpc_stream_start(loop, ch, "/google.pubsub.v1.Subscriber/StreamingPull",
                           &opts, &cbs, &b, &b.pull, &st) != GRPC_STATUS_OK)
    trb_bench_die(st.msg);
  google_pubsub_v1_StreamingPullRequest first = google_pubsub_v1_StreamingPullRequest_init_zero;
  first.subscription = SUB;
  first.stream_ack_deadline_seconds = 60;
  first.max_outstanding_messages = 20000;
  uint8_t *fb;
  size_t fl;
  trb_pb_encode(google_pubsub_v1_StreamingPullRequest_fields, &first, &fb, &fl, &st);
  trb_rpc_stream_write(b.pull, fb, fl, NULL);
  trb_pb_free(fb);

  double cpu0 = trb_bench_rusage_s(RUSAGE_SELF), ecpu0 = trb_bench_proc_cpu_s(e->pid);
  int64_t t0 = trb_clock_mono_ns();
  long sent = 0;
  pthread_mutex_lock(&b.mu);
  while (!b.failed && b.acked < n_messages) {
    while (sent < n_messages && b.in_flight < IN_FLIGHT) {
      b.in_flight++;
      sent += BATCH;
      pthread_mutex_unlock(&b.mu);
      if (trb_rpc_unary_start(loop, ch, "/google.pubsub.v1.Publisher/Publish",
                              b.publish_req, b.publish_len, NULL, on_published,
                              &b, &st) != GRPC_STATUS_OK)
        trb_bench_die(st.msg);
      pthread_mutex_lock(&b.mu);
    }
    pthread_cond_wait(&b.cv, &b.mu);
  }
  pthread_mutex_unlock(&b.mu);
  int64_t t1 = trb_clock_mono_ns();
  double cpu1 = trb_bench_rusage_s(RUSAGE_SELF), ecpu1 = trb_bench_proc_cpu_s(e->pid);
  if (b.failed) trb_bench_die(b.error);

  trb_rpc_stream_writes_done(b.pull);
  trb_rpc_stream_cancel(b.pull);
  pthread_mutex_lock(&b.mu);
  while (!b.pull_closed || b.in_flight > 0) pthread_cond_wait(&b.cv, &b.mu);
  pthread_mutex_unlock(&b.mu);
  trb_rpc_stream_release(b.pull);
  trb_pb_free(b.publish_req);
  trb_rpc_loop_destroy(loop);
  trb_rpc_channel_destroy(ch);
  double wall = (double)(t1 - t0) / 1e9;
  return (result_t){b.acked / wall, (ecpu1 - ecpu0) / wall, (cpu1 - cpu0) / wall,
                    (ecpu1 - ecpu0) * 1e6 / (double)b.acked};
}

/* ---- C BigQuery client ------------------------------------------------ */

static size_t put_varint(uint8_t *p, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    p[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  p[n++] = (uint8_t)v;
  return n;
}

static size_t put_string(uint8_t *p, int field, const char *s, size_t len) {
  size_t n = put_varint(p, (uint64_t)(field << 3 | 2));
  n += put_varint(p + n, len);
  memcpy(p + n, s, len);
  return n + len;
}

/* One row of the bench table (~600 bytes serialized). */
static size_t encode_row(uint8_t *p, int64_t id) {
  static char payload[520];
  if (!payload[0]) memset(payload, 'p', sizeof(payload) - 1);
  size_t n = put_varint(p, 1 << 3 | 0);
  n += put_varint(p + n, (uint64_t)id);
  n += put_string(p + n, 2, "user-000123", 11);
  n += put_string(p + n, 3, "order", 5);
  p[n++] = 4 << 3 | 1; /* double */
  double amount = 12.5;
  memcpy(p + n, &amount, 8);
  n += 8;
  n += put_varint(p + n, 5 << 3 | 0);
  n += put_varint(p + n, (uint64_t)1700000000000000LL + (uint64_t)id);
  n += put_string(p + n, 6, payload, sizeof(payload) - 1);
  return n;
}

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  long acked_rows;
  int in_flight;
  bool failed, closed;
  char error[256];
} bq_bench_t;

static void on_append_response(void *user, trb_rpc_stream_t *s,
                               const uint8_t *data, size_t len) {
  bq_bench_t *b = user;
  (void)s;
  google_cloud_bigquery_storage_v1_AppendRowsResponse r =
      google_cloud_bigquery_storage_v1_AppendRowsResponse_init_zero;
  trb_status_t st;
  if (trb_pb_decode(google_cloud_bigquery_storage_v1_AppendRowsResponse_fields,
                    data, len, &r, &st) != GRPC_STATUS_OK)
    trb_bench_die("bad AppendRowsResponse");
  pthread_mutex_lock(&b->mu);
  if (r.which_response == google_cloud_bigquery_storage_v1_AppendRowsResponse_error_tag) {
    b->failed = true;
    snprintf(b->error, sizeof(b->error), "AppendRows: %s",
             r.response.error.message ? r.response.error.message : "?");
  } else {
    b->acked_rows += BATCH;
  }
  b->in_flight--;
  pthread_cond_broadcast(&b->cv);
  pthread_mutex_unlock(&b->mu);
  trb_pb_release(google_cloud_bigquery_storage_v1_AppendRowsResponse_fields, &r);
}

static void on_append_close(void *user, trb_rpc_stream_t *s,
                            const trb_rpc_result_t *r) {
  bq_bench_t *b = user;
  (void)s;
  pthread_mutex_lock(&b->mu);
  if (r->code != GRPC_STATUS_OK) {
    if (!b->failed)
      snprintf(b->error, sizeof(b->error), "AppendRows closed: %s (%d)", r->message, r->code);
    b->failed = b->failed || b->acked_rows == 0 || r->code != GRPC_STATUS_CANCELLED;
  }
  b->closed = true;
  pthread_cond_broadcast(&b->cv);
  pthread_mutex_unlock(&b->mu);
}

static google_protobuf_FieldDescriptorProto field(const char *name, int number,
                                                  google_protobuf_FieldDescriptorProto_Type type,
                                                  bool required) {
  google_protobuf_FieldDescriptorProto f = google_protobuf_FieldDescriptorProto_init_zero;
  f.name = (char *)name;
  f.has_number = true;
  f.number = number;
  f.has_label = true;
  f.label = required ? google_protobuf_FieldDescriptorProto_Label_LABEL_REQUIRED
                     : google_protobuf_FieldDescriptorProto_Label_LABEL_OPTIONAL;
  f.has_type = true;
  f.type = type;
  return f;
}

static result_t bench_bigquery_c(const emu_t *e, long n_rows) {
  trb_status_t st;
  trb_rpc_loop_t *loop;
  trb_rpc_channel_t *ch;
  trb_rpc_channel_config_t cc = {0};
  cc.target = e->bigquery;
  cc.creds = TRB_RPC_CREDS_INSECURE;
  if (trb_rpc_loop_create("bench", &loop, &st) != GRPC_STATUS_OK ||
      trb_rpc_channel_create(&cc, &ch, &st) != GRPC_STATUS_OK)
    trb_bench_die(st.msg);

  /* CreateWriteStream(COMMITTED). */
  google_cloud_bigquery_storage_v1_CreateWriteStreamRequest cr =
      google_cloud_bigquery_storage_v1_CreateWriteStreamRequest_init_zero;
  cr.parent = TABLE;
  cr.has_write_stream = true;
  cr.write_stream.type = google_cloud_bigquery_storage_v1_WriteStream_Type_COMMITTED;
  uint8_t *buf;
  size_t blen;
  trb_pb_encode(google_cloud_bigquery_storage_v1_CreateWriteStreamRequest_fields, &cr, &buf, &blen, &st);
  trb_rpc_response_t resp = {0};
  if (trb_rpc_unary_call(loop, ch, "/google.cloud.bigquery.storage.v1.BigQueryWrite/CreateWriteStream",
                         buf, blen, NULL, &resp) != GRPC_STATUS_OK) {
    fprintf(stderr, "CreateWriteStream: %s\n", resp.message);
    exit(1);
  }
  trb_pb_free(buf);
  google_cloud_bigquery_storage_v1_WriteStream ws = google_cloud_bigquery_storage_v1_WriteStream_init_zero;
  trb_pb_decode(google_cloud_bigquery_storage_v1_WriteStream_fields, resp.response, resp.response_len, &ws, &st);
  trb_rpc_response_deinit(&resp);

  /* The rows of one request, reused with fresh offsets. */
  static uint8_t rows[BATCH][700];
  trb_pb_view_t views[BATCH];
  for (int i = 0; i < BATCH; i++) {
    views[i].data = rows[i];
    views[i].len = encode_row(rows[i], i);
  }
  google_protobuf_FieldDescriptorProto fields[6] = {
      field("id", 1, google_protobuf_FieldDescriptorProto_Type_TYPE_INT64, true),
      field("user_id", 2, google_protobuf_FieldDescriptorProto_Type_TYPE_STRING, false),
      field("event_type", 3, google_protobuf_FieldDescriptorProto_Type_TYPE_STRING, false),
      field("amount", 4, google_protobuf_FieldDescriptorProto_Type_TYPE_DOUBLE, false),
      field("event_time", 5, google_protobuf_FieldDescriptorProto_Type_TYPE_INT64, false),
      field("payload", 6, google_protobuf_FieldDescriptorProto_Type_TYPE_STRING, false),
  };

  bq_bench_t b = {0};
  pthread_mutex_init(&b.mu, NULL);
  pthread_cond_init(&b.cv, NULL);
  char params[512];
  snprintf(params, sizeof(params), "write_stream=%s", ws.name);
  trb_rpc_md_t md = {"x-goog-request-params", params, 0};
  trb_rpc_call_opts_t opts = {.md = &md, .n_md = 1};
  trb_rpc_stream_cbs_t cbs = {.on_message = on_append_response, .on_close = on_append_close};
  trb_rpc_stream_t *s;
  if (trb_rpc_stream_start(loop, ch, "/google.cloud.bigquery.storage.v1.BigQueryWrite/AppendRows",
                           &opts, &cbs, &b, &s, &st) != GRPC_STATUS_OK)
    trb_bench_die(st.msg);

  double cpu0 = trb_bench_rusage_s(RUSAGE_SELF), ecpu0 = trb_bench_proc_cpu_s(e->pid);
  int64_t t0 = trb_clock_mono_ns();
  long sent = 0;
  pthread_mutex_lock(&b.mu);
  while (!b.failed && b.acked_rows < n_rows) {
    while (sent < n_rows && b.in_flight < IN_FLIGHT) {
      b.in_flight++;
      google_cloud_bigquery_storage_v1_AppendRowsRequest r =
          google_cloud_bigquery_storage_v1_AppendRowsRequest_init_zero;
      if (sent == 0) {
        r.write_stream = ws.name;
        r.proto_rows.has_writer_schema = true;
        r.proto_rows.writer_schema.has_proto_descriptor = true;
        r.proto_rows.writer_schema.proto_descriptor.name = "root";
        r.proto_rows.writer_schema.proto_descriptor.field_count = 6;
        r.proto_rows.writer_schema.proto_descriptor.field = fields;
      }
      r.has_offset = true;
      r.offset.value = sent;
      r.has_proto_rows = true;
      r.proto_rows.has_rows = true;
      r.proto_rows.rows.serialized_rows.items = views;
      r.proto_rows.rows.serialized_rows.count = BATCH;
      if (trb_pb_encode(google_cloud_bigquery_storage_v1_AppendRowsRequest_fields, &r, &buf, &blen, &st) != GRPC_STATUS_OK)
        trb_bench_die(st.msg);
      sent += BATCH;
      pthread_mutex_unlock(&b.mu);
      trb_rpc_stream_write(s, buf, blen, NULL);
      trb_pb_free(buf);
      pthread_mutex_lock(&b.mu);
    }
    if (b.closed) break;
    pthread_cond_wait(&b.cv, &b.mu);
  }
  pthread_mutex_unlock(&b.mu);
  int64_t t1 = trb_clock_mono_ns();
  double cpu1 = trb_bench_rusage_s(RUSAGE_SELF), ecpu1 = trb_bench_proc_cpu_s(e->pid);
  if (b.failed || b.acked_rows < n_rows) trb_bench_die(b.error[0] ? b.error : "AppendRows stream ended early");
  trb_rpc_stream_writes_done(s);
  pthread_mutex_lock(&b.mu);
  while (!b.closed) pthread_cond_wait(&b.cv, &b.mu);
  pthread_mutex_unlock(&b.mu);
  trb_rpc_stream_release(s);
  trb_pb_release(google_cloud_bigquery_storage_v1_WriteStream_fields, &ws);
  trb_rpc_loop_destroy(loop);
  trb_rpc_channel_destroy(ch);
  double wall = (double)(t1 - t0) / 1e9;
  return (result_t){b.acked_rows / wall, (ecpu1 - ecpu0) / wall, (cpu1 - cpu0) / wall,
                    (ecpu1 - ecpu0) * 1e6 / (double)b.acked_rows};
}

/* ---- Node.js clients (perf/node) -------------------------------------- */

/* Run `node <script>`; it prints "<rate>" on its last stdout line. */
static result_t bench_node(const emu_t *e, const char *script, long n) {
  char cmd[1024];
  snprintf(cmd, sizeof(cmd),
           "cd %s && PUBSUB_EMULATOR_HOST=%s BIGQUERY_STORAGE_EMULATOR_HOST=%s "
           "BENCH_PROJECT=" PROJECT " BENCH_N=%ld node %s",
           g_node_dir, e->pubsub, e->bigquery, n, script);
  double ccpu0 = trb_bench_rusage_s(RUSAGE_CHILDREN), ecpu0 = trb_bench_proc_cpu_s(e->pid);
  int64_t t0 = trb_clock_mono_ns();
  char last[256];
  trb_bench_run_last_line(cmd, last, sizeof(last));
  int64_t t1 = trb_clock_mono_ns();
  double ccpu1 = trb_bench_rusage_s(RUSAGE_CHILDREN), ecpu1 = trb_bench_proc_cpu_s(e->pid);
  double wall = (double)(t1 - t0) / 1e9;
  /* The Node process's own timing covers only the measured phase; CPU
   * shares are over the whole child lifetime (startup included). */
  return (result_t){atof(last), (ecpu1 - ecpu0) / wall, (ccpu1 - ccpu0) / wall,
                    (ecpu1 - ecpu0) * 1e6 / (double)n};
}

/* ---- main --------------------------------------------------------------- */

#define MAX_RUNS 15
enum { PS_C, PS_NODE, BQ_C, BQ_NODE, N_KINDS };
static const char *kind_name[N_KINDS] = {"pubsub C client", "pubsub Node client",
                                          "bigquery C client", "bigquery Node client"};

int main(int argc, char **argv) {
  int runs = 5;
  long messages = 200000, rows = 200000, node_messages = 50000, node_rows = 50000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--tributary") == 0) g_bin = argv[i + 1];
    else if (strcmp(argv[i], "--node-dir") == 0) g_node_dir = argv[i + 1];
    else if (strcmp(argv[i], "--runs") == 0) runs = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--messages") == 0) messages = atol(argv[i + 1]);
    else if (strcmp(argv[i], "--rows") == 0) rows = atol(argv[i + 1]);
    else if (strcmp(argv[i], "--node-messages") == 0) node_messages = atol(argv[i + 1]);
    else if (strcmp(argv[i], "--node-rows") == 0) node_rows = atol(argv[i + 1]);
    else trb_bench_die("usage: emulator_bench --tributary PATH [--node-dir DIR] [--runs N] "
             "[--messages N] [--rows N] [--node-messages N] [--node-rows N]");
  }
  if (!g_bin) trb_bench_die("--tributary PATH is required (bazel-bin/src/cli/tributary, -c opt)");
  if (runs < 1 || runs > MAX_RUNS) trb_bench_die("--runs must be 1..15");
  messages = (messages + BATCH - 1) / BATCH * BATCH;
  rows = (rows + BATCH - 1) / BATCH * BATCH;
  signal(SIGPIPE, SIG_IGN);
  trb_rpc_init();

  double rate[N_KINDS][MAX_RUNS], emu_cores[N_KINDS][MAX_RUNS], cli_cores[N_KINDS][MAX_RUNS];
  double emu_cost[N_KINDS][MAX_RUNS];
  for (int r = 0; r < runs; r++) {
    emu_t e;
    trb_bench_emu_start(g_bin, kConfig, kTables, true, &e);
    result_t res[N_KINDS];
    res[PS_C] = bench_pubsub_c(&e, messages);
    res[BQ_C] = bench_bigquery_c(&e, rows);
    if (g_node_dir) {
      res[PS_NODE] = bench_node(&e, "pubsub_bench.mjs", node_messages);
      res[BQ_NODE] = bench_node(&e, "bigquery_bench.mjs", node_rows);
    }
    trb_bench_emu_stop(&e);
    for (int k = 0; k < N_KINDS; k++) {
      if (!g_node_dir && (k == PS_NODE || k == BQ_NODE)) continue;
      rate[k][r] = res[k].rate;
      emu_cores[k][r] = res[k].emu_cores;
      cli_cores[k][r] = res[k].client_cores;
      emu_cost[k][r] = res[k].emu_cpu_s_per_m;
      printf("run %d %-22s %10.0f /s   emulator %.2f cores, %.2f CPU-s/M   client %.2f cores\n",
             r + 1, kind_name[k], res[k].rate, res[k].emu_cores, res[k].emu_cpu_s_per_m,
             res[k].client_cores);
      fflush(stdout);
    }
  }
  printf("\nmedians over %d runs (durable --data-dir, 600-byte messages/rows):\n", runs);
  for (int k = 0; k < N_KINDS; k++) {
    if (!g_node_dir && (k == PS_NODE || k == BQ_NODE)) continue;
    printf("  %-22s %10.0f /s   emulator %.2f cores, %.2f CPU-s/M   client %.2f cores\n",
           kind_name[k], trb_bench_median(rate[k], runs), trb_bench_median(emu_cores[k], runs),
           trb_bench_median(emu_cost[k], runs), trb_bench_median(cli_cores[k], runs));
  }
  if (g_node_dir) {
    double ps_ratio[MAX_RUNS], bq_ratio[MAX_RUNS];
    for (int r = 0; r < runs; r++) {
      ps_ratio[r] = rate[PS_C][r] / rate[PS_NODE][r];
      bq_ratio[r] = rate[BQ_C][r] / rate[BQ_NODE][r];
    }
    printf("  median paired ratio C/Node: pubsub %.2f, bigquery %.2f\n",
           trb_bench_median(ps_ratio, runs), trb_bench_median(bq_ratio, runs));
    printf("RESULT ps_ratio=%.2f bq_ratio=%.2f\n", trb_bench_median(ps_ratio, runs),
           trb_bench_median(bq_ratio, runs));
  }
  /* Machine-readable medians for perf/run_all.sh. */
  for (int k = 0; k < N_KINDS; k++) {
    static const char *const kKey[N_KINDS] = {"ps_c", "ps_node", "bq_c", "bq_node"};
    if (!g_node_dir && (k == PS_NODE || k == BQ_NODE)) continue;
    printf("RESULT %s_rate=%.0f %s_emu_cost=%.2f\n", kKey[k], trb_bench_median(rate[k], runs),
           kKey[k], trb_bench_median(emu_cost[k], runs));
  }
  trb_rpc_shutdown();
  return 0;
}
