/*
 * stream_bench — `tributary stream` (src/streamer: StreamingPull → route by
 * event_type → transcode → WAL → AppendRows → ack) draining a backlog of
 * seed-shaped events from `tributary emulator`, side by side in the same
 * run with a reference pipeline written with Google's official Node.js
 * clients (perf/node/stream_pipeline.mjs: @google-cloud/pubsub subscriber +
 * @google-cloud/bigquery-storage JSONWriter per table), then the streamer's
 * publish→row latency at half of its measured maximum rate.
 *
 * Events: the order (items + shipping_address), inventory and user_activity
 * events of the backend_events corpus (read at run time; every *.jsonl but
 * MANIFEST.jsonl) that transcode against their seed table
 * (examples/tables), cycled; event i gets the id "e<i>" in its
 * order_id / inventory_id / user_id so every row is distinct and the
 * latency poller can map a row back to its publish time.
 *
 * Per run, one durable emulator child (--data-dir) with topic
 * backend-events and one subscription per side (c_fsync, c_nosync, c_alo,
 * node), each writing its own dataset (the three seed tables plus the
 * write_metadata columns subscription_name, message_id, publish_time,
 * attributes); topic lat-events / subscription c_lat / dataset c_lat for
 * the latency phase.
 *
 *  1. Publish N events to backend-events (not timed): every subscription
 *     holds the same backlog.
 *  2. For each C variant (exactly_once + wal_sync fsync; exactly_once +
 *     none; at_least_once): start `tributary stream --pipeline FILE` as a
 *     child; the clock runs from fork until the poller (a read-only SQLite
 *     connection on the emulator's bigquery.sqlite, every 2 ms) counts N
 *     rows in the variant's three tables; the streamer's CPU is its
 *     /proc/<pid>/stat utime+stime at that moment (whole life, start-up
 *     included). Then SIGTERM. `tributary sql` must then count N rows with
 *     N distinct message_ids, else the bench exits non-zero before
 *     printing a figure.
 *  3. Node: stream_pipeline.mjs on subscription `node`, same batch sizes
 *     and flow control; it reports events/s and process.cpuUsage() from
 *     opening the subscription until the last ack was flushed; the same
 *     `tributary sql` check.
 *  4. Latency: the streamer (exactly_once, fsync) on c_lat; this process
 *     publishes lat-events at a steady R = half of step 2's fsync rate for
 *     1 s (warm-up, not counted) + --lat-seconds; each event's publish time
 *     is taken just before trb_ps_publish; the poller reads the new rows of
 *     c_lat's tables (rowid > last seen) every 2 ms and takes the poll's
 *     time as the row's visibility time. Latency = visible − published
 *     (includes publisher batching ≤ --lat-pub-delay-ms, 1 ms, and up to
 *     one poll interval).
 *     The latency streamer's CPU after its start-up + 1 s idle is the
 *     start-up cost; step 2's figures are also printed without it (Node's
 *     clock starts after its start-up).
 *
 * usage: stream_bench --tributary PATH [--node-dir DIR] [--runs N]
 *          [--events N] [--workers N] [--batch-rows N]
 *          [--batch-ms N] [--max-outstanding N] [--lat-seconds N]
 *          [--lat-rate EVENTS_PER_S (default: half the fsync drain rate)]
 *          [--lat-pub-delay-ms N (publisher batching in the latency phase, 1)]
 *          [--lat-wal-sync fsync|none (the latency streamer's wal_sync)]
 *          [--corpus DIR] [--tables DIR] [--no-variants] [--no-latency]
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "perf/bench_emu.h"
#include "src/bigquery/schema.h"
#include "src/bigquery/transcode.h"
#include "src/common/clock.h"
#include "src/pubsub/publisher.h"
#include "src/rpc/rpc.h"

#define PROJECT "local-project"
#define MAX_RUNS 15
#define POLL_MS 2
#define DATAFLOW_PER_VCPU 6000.0
#define N_KINDS 3

static const char *const kTables[N_KINDS] = {"order_events", "inventory_events",
                                             "user_activity_events"};
static const char *const kTypes[N_KINDS] = {"order", "inventory", "user_activity"};
static const char *const kIdKeys[N_KINDS] = {"order_id", "inventory_id", "user_id"};

/* C variants of step 2: dataset/subscription name, delivery, wal_sync. */
typedef struct {
  const char *name;
  const char *delivery;
  const char *wal_sync;
} variant_t;
static const variant_t kVariants[] = {
    {"c_fsync", "exactly_once", "fsync"},
    {"c_nosync", "exactly_once", "none"},
    {"c_alo", "at_least_once", "none"},
};
#define N_VARIANTS 3

static const char kConfig[] =
    "{\"project\":\"" PROJECT "\",\"topics\":[\"backend-events\",\"lat-events\","
    "\"tributary-dead-letter\"],\"subscriptions\":["
    "{\"name\":\"c_fsync\",\"topic\":\"backend-events\",\"ackDeadlineSeconds\":60},"
    "{\"name\":\"c_nosync\",\"topic\":\"backend-events\",\"ackDeadlineSeconds\":60},"
    "{\"name\":\"c_alo\",\"topic\":\"backend-events\",\"ackDeadlineSeconds\":60},"
    "{\"name\":\"node\",\"topic\":\"backend-events\",\"ackDeadlineSeconds\":60},"
    "{\"name\":\"c_lat\",\"topic\":\"lat-events\",\"ackDeadlineSeconds\":60},"
    "{\"name\":\"dead-inspect\",\"topic\":\"tributary-dead-letter\"}]}\n";

/* One corpus event split around its id value: text = head + "e<i>" + tail. */
typedef struct {
  char *head;
  char *tail;
  int kind;
} base_t;

static base_t *g_base;
static size_t g_nbase;
static size_t g_kind_count[N_KINDS];
static double g_mean_bytes;

typedef struct {
  int workers, batch_rows, batch_ms, max_outstanding, lat_seconds;
  double lat_rate; /* events/s of the latency phase; 0 = half the fsync drain rate */
  int lat_pub_delay_ms; /* publisher batching delay of the latency phase */
  const char *lat_wal_sync; /* wal_sync of the latency streamer (fsync) */
} settings_t;

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) trb_bench_die(path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *p = malloc((size_t)n + 1);
  if (!p || fread(p, 1, (size_t)n, f) != (size_t)n) trb_bench_die(path);
  p[n] = '\0';
  fclose(f);
  if (len) *len = (size_t)n;
  return p;
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f || fputs(text, f) < 0 || fclose(f) != 0) trb_bench_die(path);
}

/* The seed table JSON with the write_metadata columns in front. */
static char *table_json(const char *dir, int kind) {
  char path[1024];
  snprintf(path, sizeof path, "%s/backend_events.%s.json", dir, kTables[kind]);
  char *json = read_file(path, NULL);
  const char *key = "\"schema\": [";
  char *at = strstr(json, key);
  if (!at) trb_bench_die("table file without \"schema\": [");
  static const char meta[] =
      "{\"name\": \"subscription_name\", \"type\": \"STRING\"},"
      "{\"name\": \"message_id\", \"type\": \"STRING\"},"
      "{\"name\": \"publish_time\", \"type\": \"TIMESTAMP\"},"
      "{\"name\": \"attributes\", \"type\": \"JSON\"},";
  size_t pre = (size_t)(at - json) + strlen(key);
  size_t len = strlen(json) + sizeof meta;
  char *out = malloc(len);
  if (!out) trb_bench_die("out of memory");
  snprintf(out, len, "%.*s%s%s", (int)pre, json, meta, json + pre);
  free(json);
  return out;
}

/* Index of the closing quote of string value of `key` in `line`, and of
 * its opening quote in *open; 0 when absent. */
static size_t value_span(const char *line, const char *key, size_t *open) {
  char k[64];
  snprintf(k, sizeof k, "\"%s\"", key);
  const char *p = strstr(line, k);
  if (!p) return 0;
  p += strlen(k);
  while (*p == ' ' || *p == '\t') p++;
  if (*p++ != ':') return 0;
  while (*p == ' ' || *p == '\t') p++;
  if (*p != '"') return 0;
  *open = (size_t)(p - line);
  for (p++; *p && *p != '"'; p++) {
    if (*p == '\\' && p[1]) p++;
  }
  return *p == '"' ? (size_t)(p - line) : 0;
}

static int kind_of(const char *line) {
  for (int k = 0; k < N_KINDS; k++) {
    char pat1[64], pat2[64];
    snprintf(pat1, sizeof pat1, "\"event_type\":\"%s\"", kTypes[k]);
    snprintf(pat2, sizeof pat2, "\"event_type\": \"%s\"", kTypes[k]);
    if (strstr(line, pat1) || strstr(line, pat2)) return k;
  }
  return -1;
}

/* Keep the corpus events of the three kinds that transcode (unknown keys
 * ignored) against their seed table. */
typedef struct {
  trb_bq_table_t *tables;
  trb_buf_t row;
  size_t cap, bytes;
} corpus_ctx_t;

static void keep_event(void *user, char *line, size_t n) {
  corpus_ctx_t *c = user;
  trb_bq_transcode_opts_t opts = {.ignore_unknown_fields = true};
  int kind = kind_of(line);
  if (kind < 0) return;
  size_t open = 0, close = value_span(line, kIdKeys[kind], &open);
  trb_status_t st;
  trb_buf_reset(&c->row);
  if (close == 0 || trb_bq_transcode_row(&c->tables[kind], line, n, &opts, &c->row,
                                         &st) != GRPC_STATUS_OK)
    return;
  if (g_nbase == c->cap) {
    c->cap = c->cap ? c->cap * 2 : 16;
    g_base = realloc(g_base, c->cap * sizeof *g_base);
    if (!g_base) trb_bench_die("out of memory");
  }
  g_base[g_nbase].head = strndup(line, open + 1);
  g_base[g_nbase].tail = strdup(line + close);
  g_base[g_nbase].kind = kind;
  g_kind_count[kind]++;
  c->bytes += n;
  g_nbase++;
}

static void load_corpus(const char *dir, trb_bq_table_t *tables) {
  corpus_ctx_t c = {tables, TRB_BUF_INIT, 0, 0};
  trb_bench_corpus_lines(dir, keep_event, &c);
  trb_buf_deinit(&c.row);
  for (int k = 0; k < N_KINDS; k++)
    if (g_kind_count[k] == 0) trb_bench_die("the corpus lacks a valid event of some kind");
  g_mean_bytes = (double)c.bytes / (double)g_nbase;
}

static char *event_text(long i, size_t *len) {
  const base_t *b = &g_base[(size_t)i % g_nbase];
  size_t cap = strlen(b->head) + strlen(b->tail) + 32;
  char *s = malloc(cap);
  if (!s) trb_bench_die("out of memory");
  int n = snprintf(s, cap, "%se%ld%s", b->head, i, b->tail);
  *len = (size_t)n;
  return s;
}

/* ---- publishing ------------------------------------------------------------ */

typedef struct {
  atomic_long ok, failed;
} pubcount_t;

static void on_published(void *user, grpc_status_code code, const char *msg, const char *id) {
  (void)msg;
  (void)id;
  pubcount_t *c = user;
  if (code == GRPC_STATUS_OK) atomic_fetch_add(&c->ok, 1);
  else atomic_fetch_add(&c->failed, 1);
}

static trb_ps_publisher_t *publisher(trb_rpc_loop_t *loop, trb_rpc_channel_t *ch,
                                     const char *topic, int delay_ms) {
  trb_status_t st;
  trb_ps_publisher_config_t cfg = {0};
  cfg.max_messages = 1000;
  cfg.max_bytes = 9 * 1024 * 1024;
  cfg.max_delay_ms = delay_ms;
  cfg.flow_max_messages = 20000;
  cfg.flow = TRB_PS_FLOW_BLOCK;
  char full[256];
  snprintf(full, sizeof full, "projects/" PROJECT "/topics/%s", topic);
  trb_ps_publisher_t *p;
  if (trb_ps_publisher_create(loop, ch, full, &cfg, &p, &st) != GRPC_STATUS_OK)
    trb_bench_die(st.msg);
  return p;
}

static void publish_one(trb_ps_publisher_t *p, long i, pubcount_t *c) {
  size_t len;
  char *text = event_text(i, &len);
  trb_ps_attr_t a = {"origin", "bench"};
  trb_ps_message_t m = {(const uint8_t *)text, len, &a, 1, NULL};
  trb_status_t st;
  if (trb_ps_publish(p, &m, on_published, c, &st) != GRPC_STATUS_OK) trb_bench_die(st.msg);
  free(text);
}

static void publisher_finish(trb_ps_publisher_t *p, pubcount_t *c, long n) {
  trb_status_t st;
  if (trb_ps_publisher_flush(p, 300000, &st) != GRPC_STATUS_OK) trb_bench_die(st.msg);
  trb_ps_publisher_stats_t s;
  if (trb_ps_publisher_shutdown(p, 10000, &s, &st) != GRPC_STATUS_OK) trb_bench_die(st.msg);
  trb_ps_publisher_destroy(p);
  if (atomic_load(&c->ok) != n || atomic_load(&c->failed) != 0)
    trb_bench_die("not every event was published");
}

/* ---- the emulator's store, read-only ---------------------------------------- */

static sqlite3 *store_open(const trb_bench_emu_t *e) {
  char uri[512];
  snprintf(uri, sizeof uri, "file:%s/data/bigquery.sqlite?mode=ro", e->dir);
  sqlite3 *db;
  if (sqlite3_open_v2(uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL) != SQLITE_OK)
    trb_bench_die("cannot open the emulator's bigquery.sqlite");
  sqlite3_busy_timeout(db, 5000);
  return db;
}

/* Rows in dataset.<each seed table> (max rowid: rows are only appended). */
static long store_rows(sqlite3 *db, const char *dataset) {
  long total = 0;
  for (int k = 0; k < N_KINDS; k++) {
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT coalesce(max(rowid), 0) FROM \"%s.%s\"", dataset,
             kTables[k]);
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK) {
      fprintf(stderr, "bench: %s: %s\n", sql, sqlite3_errmsg(db));
      exit(1);
    }
    if (sqlite3_step(q) == SQLITE_ROW) total += (long)sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
  }
  return total;
}

/* `tributary sql`: rows and distinct message_ids of a dataset must both be
 * n; otherwise exit before any figure is printed. */
static void check_rows(const char *bin, const trb_bench_emu_t *e, const char *dataset, long n) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "%s sql --data-dir %s/data --json \"SELECT (SELECT COUNT(*) FROM %s.order_events) + "
           "(SELECT COUNT(*) FROM %s.inventory_events) + (SELECT COUNT(*) FROM "
           "%s.user_activity_events) AS n, (SELECT COUNT(DISTINCT message_id) FROM (SELECT "
           "message_id FROM %s.order_events UNION ALL SELECT message_id FROM %s.inventory_events "
           "UNION ALL SELECT message_id FROM %s.user_activity_events)) AS d\"",
           bin, e->dir, dataset, dataset, dataset, dataset, dataset, dataset);
  char last[256];
  trb_bench_run_last_line(cmd, last, sizeof last);
  const char *pn = strstr(last, "\"n\":"), *pd = strstr(last, "\"d\":");
  long rows = pn ? atol(pn + 4) : -1, distinct = pd ? atol(pd + 4) : -1;
  if (rows != n || distinct != n) {
    fprintf(stderr, "bench: %s: the tables hold %ld rows (%ld distinct message_ids), expected %ld\n",
            dataset, rows, distinct, n);
    exit(1);
  }
}

/* ---- the streamer child ------------------------------------------------------ */

static void write_pipeline(const trb_bench_emu_t *e, const settings_t *s, const char *name,
                           const char *delivery, const char *wal_sync, char *path,
                           size_t path_len) {
  snprintf(path, path_len, "%s/%s.pipeline.json", e->dir, name);
  char json[4096];
  snprintf(json, sizeof json,
           "{\"project\": \"" PROJECT "\", \"subscription\": \"%s\",\n"
           " \"dead_letter_topic\": \"tributary-dead-letter\", \"delivery\": \"%s\",\n"
           " \"workers\": %d, \"batch_max_rows\": %d, \"batch_max_latency\": \"%dms\",\n"
           " \"max_outstanding_messages\": %d, \"http_port\": -1,\n"
           " \"wal_dir\": \"%s/%s.wal\", \"wal_sync\": \"%s\",\n"
           " \"routes\": [{\"equals\": \"order\", \"table\": \"%s.order_events\"},\n"
           "   {\"equals\": \"inventory\", \"table\": \"%s.inventory_events\"},\n"
           "   {\"equals\": \"user_activity\", \"table\": \"%s.user_activity_events\"}],\n"
           " \"tables\": {\"%s.order_events\": {\"write_metadata\": true, \"unknown_fields\": \"ignore\"},\n"
           "   \"%s.inventory_events\": {\"write_metadata\": true, \"unknown_fields\": \"ignore\"},\n"
           "   \"%s.user_activity_events\": {\"write_metadata\": true, \"unknown_fields\": \"ignore\"}}}\n",
           name, delivery, s->workers, s->batch_rows, s->batch_ms, s->max_outstanding, e->dir,
           name, wal_sync, name, name, name, name, name, name);
  write_file(path, json);
}

static pid_t stream_start(const char *bin, const trb_bench_emu_t *e, const char *pipeline,
                          const char *name) {
  char log[512], ps[128], bq[128];
  snprintf(log, sizeof log, "%s/%s.log", e->dir, name);
  snprintf(ps, sizeof ps, "PUBSUB_EMULATOR_HOST=%s", e->pubsub);
  snprintf(bq, sizeof bq, "BIGQUERY_STORAGE_EMULATOR_HOST=%s", e->bigquery);
  pid_t pid = fork();
  if (pid < 0) trb_bench_die("fork");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* dies with the bench */
    if (getppid() == 1) _exit(127);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    setenv("PUBSUB_EMULATOR_HOST", e->pubsub, 1);
    setenv("BIGQUERY_STORAGE_EMULATOR_HOST", e->bigquery, 1);
    if (!getenv("TRB_LOG_LEVEL")) setenv("TRB_LOG_LEVEL", "warning", 1);
    execl(bin, bin, "stream", "--pipeline", pipeline, (char *)NULL);
    _exit(127);
  }
  return pid;
}

static void stream_stop(pid_t pid, const trb_bench_emu_t *e, const char *name) {
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "bench: tributary stream (%s) ended with status %d; log %s/%s.log\n", name,
            status, e->dir, name);
  }
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

typedef struct {
  double rate;    /* events/s wall */
  double cpu_s;   /* streamer (or node) CPU seconds */
  double per_cpu; /* events per CPU-second */
  double emu_cpu_s;
} result_t;

/* Step 2: drain the backlog of subscription `v->name` with a streamer child. */
static result_t drain_c(const char *bin, const trb_bench_emu_t *e, const settings_t *s,
                        const variant_t *v, long n) {
  char pipeline[512];
  write_pipeline(e, s, v->name, v->delivery, v->wal_sync, pipeline, sizeof pipeline);
  sqlite3 *db = store_open(e);
  double emu0 = trb_bench_proc_cpu_s(e->pid);
  int64_t t0 = trb_clock_mono_ns();
  pid_t pid = stream_start(bin, e, pipeline, v->name);
  int64_t deadline = t0 + (int64_t)600 * 1000000000;
  long rows = 0;
  double cpu = 0;
  int64_t t1 = 0;
  for (;;) {
    rows = store_rows(db, v->name);
    if (rows >= n) {
      t1 = trb_clock_mono_ns();
      cpu = trb_bench_proc_cpu_s(pid);
      break;
    }
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      fprintf(stderr, "bench: tributary stream (%s) exited early (status %d); log %s/%s.log\n",
              v->name, status, e->dir, v->name);
      exit(1);
    }
    if (trb_clock_mono_ns() > deadline) trb_bench_die("streamer: timed out draining the backlog");
    sleep_ms(POLL_MS);
  }
  double emu1 = trb_bench_proc_cpu_s(e->pid);
  stream_stop(pid, e, v->name);
  sqlite3_close(db);
  check_rows(bin, e, v->name, n);
  double wall = (double)(t1 - t0) / 1e9;
  return (result_t){(double)n / wall, cpu, (double)n / cpu, emu1 - emu0};
}

/* Step 3: the Node reference pipeline on subscription `node`. */
static result_t drain_node(const char *bin, const trb_bench_emu_t *e, const settings_t *s,
                           const char *node_dir, long n) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "cd %s && PUBSUB_EMULATOR_HOST=%s BIGQUERY_STORAGE_EMULATOR_HOST=%s "
           "BENCH_PROJECT=" PROJECT " BENCH_SUB=node BENCH_DATASET=node BENCH_N=%ld "
           "BENCH_BATCH_ROWS=%d BENCH_BATCH_MS=%d BENCH_FLOW=%d BENCH_STREAMS=%d "
           "node stream_pipeline.mjs",
           node_dir, e->pubsub, e->bigquery, n, s->batch_rows, s->batch_ms,
           s->max_outstanding * s->workers, s->workers);
  char last[256];
  double emu0 = trb_bench_proc_cpu_s(e->pid);
  trb_bench_run_last_line(cmd, last, sizeof last);
  result_t r = {0, 0, 0, trb_bench_proc_cpu_s(e->pid) - emu0};
  if (sscanf(last, "%lf %lf", &r.rate, &r.cpu_s) != 2) trb_bench_die("node output");
  r.per_cpu = (double)n / r.cpu_s;
  check_rows(bin, e, "node", n);
  return r;
}

/* ---- step 4: latency at a steady rate ---------------------------------------- */

typedef struct {
  const trb_bench_emu_t *e;
  long n;             /* events to publish */
  int64_t *pub_ns;    /* per event: monotonic ns just before publish; 0 = not yet */
  int64_t *seen_ns;   /* per event: poll time it was first seen; 0 = not yet */
  atomic_long seen;
  atomic_bool stop;
  long bad_ids;
} lat_t;

static void *lat_poller(void *arg) {
  lat_t *l = arg;
  sqlite3 *db = store_open(l->e);
  int64_t last[N_KINDS] = {0};
  sqlite3_stmt *q[N_KINDS];
  for (int k = 0; k < N_KINDS; k++) {
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT rowid, \"%s\" FROM \"c_lat.%s\" WHERE rowid > ?",
             kIdKeys[k], kTables[k]);
    if (sqlite3_prepare_v2(db, sql, -1, &q[k], NULL) != SQLITE_OK) trb_bench_die(sqlite3_errmsg(db));
  }
  while (!atomic_load(&l->stop)) {
    for (int k = 0; k < N_KINDS; k++) {
      sqlite3_bind_int64(q[k], 1, last[k]);
      int64_t now = trb_clock_mono_ns();
      while (sqlite3_step(q[k]) == SQLITE_ROW) {
        last[k] = sqlite3_column_int64(q[k], 0);
        const char *id = (const char *)sqlite3_column_text(q[k], 1);
        long i = id && id[0] == 'e' ? atol(id + 1) : -1;
        if (i < 0 || i >= l->n || l->seen_ns[i] != 0) {
          l->bad_ids++;
          continue;
        }
        l->seen_ns[i] = now;
        atomic_fetch_add(&l->seen, 1);
      }
      sqlite3_reset(q[k]);
    }
    sleep_ms(POLL_MS);
  }
  for (int k = 0; k < N_KINDS; k++) sqlite3_finalize(q[k]);
  sqlite3_close(db);
  return NULL;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

typedef struct {
  double p50_ms, p99_ms, max_ms, rate, cpu_cores, emu_cores;
  double startup_cpu_s; /* streamer CPU after start-up + 1 s idle */
} lat_result_t;

static lat_result_t latency_c(const char *bin, const trb_bench_emu_t *e, const settings_t *s,
                              trb_rpc_loop_t *loop, trb_rpc_channel_t *ch, double rate) {
  char pipeline[512];
  write_pipeline(e, s, "c_lat", "exactly_once", s->lat_wal_sync, pipeline, sizeof pipeline);
  long warm = (long)rate;  /* 1 s warm-up */
  long n = warm + (long)(rate * s->lat_seconds);
  lat_t l = {.e = e, .n = n};
  l.pub_ns = calloc((size_t)n, sizeof *l.pub_ns);
  l.seen_ns = calloc((size_t)n, sizeof *l.seen_ns);
  if (!l.pub_ns || !l.seen_ns) trb_bench_die("out of memory");
  atomic_init(&l.seen, 0);
  atomic_init(&l.stop, false);
  pid_t pid = stream_start(bin, e, pipeline, "c_lat");
  sleep_ms(1000); /* start-up (WAL, write streams, StreamingPull) outside the figures */
  double startup_cpu = trb_bench_proc_cpu_s(pid);
  pthread_t th;
  pthread_create(&th, NULL, lat_poller, &l);
  trb_ps_publisher_t *p = publisher(loop, ch, "lat-events", s->lat_pub_delay_ms);
  pubcount_t c;
  atomic_init(&c.ok, 0);
  atomic_init(&c.failed, 0);
  double cpu0 = 0, emu0 = 0;
  int64_t t0 = trb_clock_mono_ns(), tm = 0;
  for (long i = 0; i < n; i++) {
    int64_t due = t0 + (int64_t)((double)i * 1e9 / rate);
    int64_t now = trb_clock_mono_ns();
    if (due > now + 200000) {
      struct timespec ts = {0, (long)(due - now)};
      nanosleep(&ts, NULL);
    }
    if (i == warm) {
      tm = trb_clock_mono_ns();
      cpu0 = trb_bench_proc_cpu_s(pid);
      emu0 = trb_bench_proc_cpu_s(e->pid);
    }
    l.pub_ns[i] = trb_clock_mono_ns();
    publish_one(p, i, &c);
  }
  int64_t t1 = trb_clock_mono_ns();
  double cpu1 = trb_bench_proc_cpu_s(pid);
  double emu1 = trb_bench_proc_cpu_s(e->pid);
  publisher_finish(p, &c, n);
  int64_t deadline = trb_clock_mono_ns() + (int64_t)60 * 1000000000;
  while (atomic_load(&l.seen) < n && trb_clock_mono_ns() < deadline) sleep_ms(10);
  atomic_store(&l.stop, true);
  pthread_join(th, NULL);
  stream_stop(pid, e, "c_lat");
  if (atomic_load(&l.seen) != n || l.bad_ids) {
    fprintf(stderr, "bench: latency: %ld of %ld rows seen, %ld unexpected ids\n",
            atomic_load(&l.seen), n, l.bad_ids);
    exit(1);
  }
  check_rows(bin, e, "c_lat", n);
  /* The worst latency per second of publishing (stall vs falling behind). */
  printf("      worst publish->row latency per second of publishing (ms):");
  for (long from = 0; from < n; from += warm > 0 ? warm : n) {
    double worst = 0;
    for (long i = from; i < n && i < from + (warm > 0 ? warm : n); i++) {
      double x = (double)(l.seen_ns[i] - l.pub_ns[i]) / 1e6;
      if (x > worst) worst = x;
    }
    printf(" %.0f", worst);
  }
  printf(" (first: warm-up)\n");
  size_t m = (size_t)(n - warm);
  double *ms = malloc(m * sizeof *ms);
  if (!ms) trb_bench_die("out of memory");
  for (size_t j = 0; j < m; j++)
    ms[j] = (double)(l.seen_ns[warm + (long)j] - l.pub_ns[warm + (long)j]) / 1e6;
  qsort(ms, m, sizeof *ms, cmp_double);
  lat_result_t r = {ms[m / 2], ms[(size_t)((double)(m - 1) * 0.99)], ms[m - 1],
                    (double)(n - warm) / ((double)(t1 - tm) / 1e9),
                    (cpu1 - cpu0) / ((double)(t1 - tm) / 1e9),
                    (emu1 - emu0) / ((double)(t1 - tm) / 1e9), startup_cpu};
  free(ms);
  free(l.pub_ns);
  free(l.seen_ns);
  return r;
}

/* ---- main ---------------------------------------------------------------------- */

int main(int argc, char **argv) {
  const char *bin = NULL, *node_dir = NULL;
  const char *corpus = "../shared/corpus/backend_events", *tables_dir = "examples/tables";
  int runs = 5;
  long n = 100000;
  bool variants = true, latency = true;
  settings_t s = {.workers = 2, .batch_rows = 500, .batch_ms = 50, .max_outstanding = 2000,
                  .lat_seconds = 5, .lat_pub_delay_ms = 1, .lat_wal_sync = "fsync"};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--no-variants") == 0) variants = false;
    else if (strcmp(a, "--no-latency") == 0) latency = false;
    else if (!v) trb_bench_die("flags take one value each (see the usage in stream_bench.c)");
    else if (strcmp(a, "--tributary") == 0) bin = v, i++;
    else if (strcmp(a, "--node-dir") == 0) node_dir = v, i++;
    else if (strcmp(a, "--runs") == 0) runs = atoi(v), i++;
    else if (strcmp(a, "--events") == 0) n = atol(v), i++;
    else if (strcmp(a, "--workers") == 0) s.workers = atoi(v), i++;
    else if (strcmp(a, "--batch-rows") == 0) s.batch_rows = atoi(v), i++;
    else if (strcmp(a, "--batch-ms") == 0) s.batch_ms = atoi(v), i++;
    else if (strcmp(a, "--max-outstanding") == 0) s.max_outstanding = atoi(v), i++;
    else if (strcmp(a, "--lat-seconds") == 0) s.lat_seconds = atoi(v), i++;
    else if (strcmp(a, "--lat-rate") == 0) s.lat_rate = atof(v), i++;
    else if (strcmp(a, "--lat-pub-delay-ms") == 0) s.lat_pub_delay_ms = atoi(v), i++;
    else if (strcmp(a, "--lat-wal-sync") == 0) s.lat_wal_sync = v, i++;
    else if (strcmp(a, "--corpus") == 0) corpus = v, i++;
    else if (strcmp(a, "--tables") == 0) tables_dir = v, i++;
    else trb_bench_die("unknown flag (see the usage in stream_bench.c)");
  }
  if (!bin) trb_bench_die("--tributary PATH is required");
  if (runs < 1 || runs > MAX_RUNS) trb_bench_die("--runs must be 1..15");
  if (n < 1 || s.workers < 1 || s.batch_rows < 1 || s.batch_ms < 1 || s.max_outstanding < 1 ||
      s.lat_seconds < 1)
    trb_bench_die("numeric flags must be >= 1");

  /* Seed tables (+ metadata columns) for every dataset; corpus filter. */
  trb_bq_table_t seed[N_KINDS];
  char *tjson[N_KINDS];
  for (int k = 0; k < N_KINDS; k++) {
    tjson[k] = table_json(tables_dir, k);
    trb_status_t st;
    if (trb_bq_table_parse(tjson[k], strlen(tjson[k]), &seed[k], &st) != GRPC_STATUS_OK)
      trb_bench_die(st.msg);
  }
  load_corpus(corpus, seed);
  for (int k = 0; k < N_KINDS; k++) trb_bq_table_deinit(&seed[k]);
  static const char *const datasets[] = {"c_fsync", "c_nosync", "c_alo", "node", "c_lat"};
  const char *tables[2 * 5 * N_KINDS + 1];
  char names[5 * N_KINDS][128];
  int nt = 0;
  for (int d = 0; d < 5; d++) {
    for (int k = 0; k < N_KINDS; k++) {
      snprintf(names[d * N_KINDS + k], sizeof names[0], "%s.%s.json", datasets[d], kTables[k]);
      tables[nt++] = names[d * N_KINDS + k];
      tables[nt++] = tjson[k];
    }
  }
  tables[nt] = NULL;

  printf("%ld events per side: %zu corpus events cycled (%zu order, %zu inventory, %zu "
         "user_activity; mean %.0f bytes); workers %d, batch_max_rows %d, batch_max_latency "
         "%d ms, max_outstanding_messages %d per worker; durable emulator\n",
         n, g_nbase, g_kind_count[0], g_kind_count[1], g_kind_count[2], g_mean_bytes, s.workers,
         s.batch_rows, s.batch_ms, s.max_outstanding);
  fflush(stdout);

  trb_rpc_init();
  double v_rate[N_VARIANTS][MAX_RUNS], v_per[N_VARIANTS][MAX_RUNS], v_cpu[N_VARIANTS][MAX_RUNS];
  double n_rate[MAX_RUNS], n_per[MAX_RUNS], ratio[MAX_RUNS];
  double l_p50[MAX_RUNS], l_p99[MAX_RUNS], l_max[MAX_RUNS], l_rate[MAX_RUNS];
  double su[MAX_RUNS], v_steady[N_VARIANTS][MAX_RUNS], ratio_steady[MAX_RUNS];
  int nv = variants ? N_VARIANTS : 1;
  for (int r = 0; r < runs; r++) {
    trb_bench_emu_t e;
    trb_bench_emu_start(bin, kConfig, tables, true, &e);
    trb_status_t st;
    trb_rpc_loop_t *loop;
    trb_rpc_channel_t *ch;
    if (trb_rpc_loop_create("stream-bench", &loop, &st) != GRPC_STATUS_OK) trb_bench_die(st.msg);
    trb_rpc_channel_config_t cc = {0};
    cc.target = e.pubsub;
    if (trb_rpc_channel_create(&cc, &ch, &st) != GRPC_STATUS_OK) trb_bench_die(st.msg);

    /* 1. the backlog */
    trb_ps_publisher_t *p = publisher(loop, ch, "backend-events", 10);
    pubcount_t c;
    atomic_init(&c.ok, 0);
    atomic_init(&c.failed, 0);
    for (long i = 0; i < n; i++) publish_one(p, i, &c);
    publisher_finish(p, &c, n);

    /* 2. the streamer */
    for (int v = 0; v < nv; v++) {
      result_t x = drain_c(bin, &e, &s, &kVariants[v], n);
      printf("run %d  C %-8s %-13s wal %-5s %9.0f events/s  %6.3f CPU-s  %9.0f events/CPU-s"
             "  (emulator %.2f CPU-s)\n",
             r + 1, kVariants[v].name, kVariants[v].delivery, kVariants[v].wal_sync, x.rate,
             x.cpu_s, x.per_cpu, x.emu_cpu_s);
      fflush(stdout);
      v_rate[v][r] = x.rate;
      v_per[v][r] = x.per_cpu;
      v_cpu[v][r] = x.cpu_s;
    }
    /* 3. Node */
    if (node_dir) {
      result_t x = drain_node(bin, &e, &s, node_dir, n);
      n_rate[r] = x.rate;
      n_per[r] = x.per_cpu;
      ratio[r] = v_per[0][r] / x.per_cpu;
      printf("run %d  Node reference                %9.0f events/s  %6.3f CPU-s  %9.0f "
             "events/CPU-s  (emulator %.2f CPU-s)   C/Node per CPU-s %.1fx\n",
             r + 1, x.rate, x.cpu_s, x.per_cpu, x.emu_cpu_s, ratio[r]);
      fflush(stdout);
    }
    /* 4. latency at half of the fsync variant's rate */
    if (latency) {
      lat_result_t x =
          latency_c(bin, &e, &s, loop, ch, s.lat_rate > 0 ? s.lat_rate : v_rate[0][r] / 2);
      l_p50[r] = x.p50_ms;
      l_p99[r] = x.p99_ms;
      l_max[r] = x.max_ms;
      l_rate[r] = x.rate;
      printf("run %d  latency at %.0f events/s (streamer %.2f cores, emulator %.2f cores): "
             "publish->row p50 %.1f ms  p99 %.1f ms  max %.1f ms\n",
             r + 1, x.rate, x.cpu_cores, x.emu_cores, x.p50_ms, x.p99_ms, x.max_ms);
      /* Start-up CPU (the same binary and tables; measured on the idle
       * latency streamer) taken out of each drain: Node's figure excludes
       * its start-up too. */
      su[r] = x.startup_cpu_s;
      for (int v = 0; v < nv; v++) v_steady[v][r] = (double)n / (v_cpu[v][r] - su[r]);
      if (node_dir) ratio_steady[r] = v_steady[0][r] / n_per[r];
      printf("run %d  start-up CPU %.3f s; excluding it, events/CPU-s:", r + 1, su[r]);
      for (int v = 0; v < nv; v++) printf(" %s %.0f", kVariants[v].name, v_steady[v][r]);
      if (node_dir) printf("  C/Node %.1fx", ratio_steady[r]);
      printf("\n");
      fflush(stdout);
    }
    trb_rpc_loop_destroy(loop);
    trb_rpc_channel_destroy(ch);
    trb_bench_emu_stop(&e);
  }

  printf("\nmedians of %d runs (%ld events):\n", runs, n);
  for (int v = 0; v < nv; v++) {
    printf("  C %-8s %-13s wal %-5s %9.0f events/s  %6.3f CPU-s  %9.0f events/CPU-s "
           "(%.1fx Dataflow's ~6,000/vCPU)\n",
           kVariants[v].name, kVariants[v].delivery, kVariants[v].wal_sync,
           trb_bench_median(v_rate[v], runs), trb_bench_median(v_cpu[v], runs),
           trb_bench_median(v_per[v], runs), trb_bench_median(v_per[v], runs) / DATAFLOW_PER_VCPU);
  }
  if (node_dir) {
    printf("  Node reference                         %9.0f events/s  %9.0f events/CPU-s\n",
           trb_bench_median(n_rate, runs), trb_bench_median(n_per, runs));
    printf("  C (exactly_once, fsync) / Node per CPU-second: %.1fx (median of paired ratios)\n",
           trb_bench_median(ratio, runs));
  }
  if (latency) {
    printf("  latency at half the fsync rate (%.0f events/s): p50 %.1f ms  p99 %.1f ms  max %.1f "
           "ms\n",
           trb_bench_median(l_rate, runs), trb_bench_median(l_p50, runs),
           trb_bench_median(l_p99, runs), trb_bench_median(l_max, runs));
    printf("  streamer start-up CPU %.3f s; excluding it, events/CPU-s:", trb_bench_median(su, runs));
    for (int v = 0; v < nv; v++)
      printf(" %s %.0f", kVariants[v].name, trb_bench_median(v_steady[v], runs));
    if (node_dir) printf("; C/Node per CPU-s %.1fx", trb_bench_median(ratio_steady, runs));
    printf("\n");
  }
  /* Machine-readable medians for perf/run_all.sh (v0 = exactly_once fsync). */
  for (int v = 0; v < nv; v++)
    printf("RESULT v%d_rate=%.0f v%d_per_cpu=%.0f\n", v, trb_bench_median(v_rate[v], runs), v,
           trb_bench_median(v_per[v], runs));
  if (node_dir)
    printf("RESULT node_rate=%.0f node_per_cpu=%.0f ratio=%.2f\n", trb_bench_median(n_rate, runs),
           trb_bench_median(n_per, runs), trb_bench_median(ratio, runs));
  if (latency)
    printf("RESULT lat_rate=%.0f p50_ms=%.1f p99_ms=%.1f\n", trb_bench_median(l_rate, runs),
           trb_bench_median(l_p50, runs), trb_bench_median(l_p99, runs));
  for (int k = 0; k < N_KINDS; k++) free(tjson[k]);
  for (size_t i = 0; i < g_nbase; i++) {
    free(g_base[i].head);
    free(g_base[i].tail);
  }
  free(g_base);
  trb_rpc_shutdown();
  return 0;
}
