/*
 * append_bench — JSON rows appended to `tributary emulator` through
 * src/bigquery/writer.h (JSON text -> proto row transcode -> AppendRows on a
 * COMMITTED stream with offsets), side by side in the same run with Google's
 * official Node.js JSONWriter (@google-cloud/bigquery-storage,
 * perf/node/append_bench.mjs) on a COMMITTED stream of the same table.
 *
 * Rows: the order events of the backend_events corpus (read at run time;
 * every *.jsonl except MANIFEST.jsonl) that transcode against the seed
 * table backend_events.order_events (examples/tables; unknown keys
 * ignored). Row i is corpus order event i % k with "#c<i>" (C) or "#n<i>"
 * (Node) appended to its order_id, so that every row is distinct; all
 * rows are built as JSON text before the clock.
 *
 * Per run: start a durable emulator child (--data-dir) with the seed
 * table; C: create the writer (CreateWriteStream COMMITTED, outside the
 * clock), then time from the first append until every append was
 * acknowledged: `batch` rows per append, at most `inflight` appends
 * unacknowledged. Client CPU = getrusage(RUSAGE_SELF) over that phase (all
 * threads of this process; the emulator is another process). Node: the
 * same rows as JSON text, same batch and in-flight bound; inside its clock
 * JSON.parse, order_date -> Date (JSONWriter takes TIMESTAMP as Date, not
 * as a string) and JSONWriter.appendRows with explicit offsets; it reports
 * process.cpuUsage() over its clock. After each side the emulator's SQL
 * (`tributary sql --data-dir`) must count exactly N rows with N distinct
 * order_ids for that side, or the bench fails.
 *
 * usage: append_bench --tributary PATH [--node-dir DIR] [--runs N]
 *                     [--rows N] [--batch N] [--inflight N]
 *                     [--corpus DIR] [--table FILE]
 * Defaults: --runs 5 --rows 100000 --batch 1000 --inflight 8
 *           --corpus ../shared/corpus/backend_events
 *           --table examples/tables/backend_events.order_events.json
 */
#include <dirent.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "perf/bench_emu.h"
#include "src/bigquery/schema.h"
#include "src/bigquery/transcode.h"
#include "src/bigquery/writer.h"
#include "src/common/arena.h"
#include "src/common/clock.h"
#include "src/rpc/rpc.h"

#define PROJECT "local-project"
#define TABLE_FILE "backend_events.order_events.json"
#define TABLE "projects/" PROJECT "/datasets/backend_events/tables/order_events"
#define MAX_RUNS 15

typedef trb_bench_emu_t emu_t;

/* One corpus order event split at the closing quote of its order_id
 * value: row text = head + "#c<i>" + tail. */
typedef struct {
  char *head;
  char *tail;
} base_t;

static base_t *g_base;
static size_t g_nbase;
static double g_mean_bytes;

typedef struct {
  double rate;    /* rows/s wall */
  double cpu_s;   /* client CPU seconds */
  double per_cpu; /* rows per client CPU-second */
  double emu_cpu_s; /* emulator CPU seconds (for Node: over the whole script) */
} result_t;

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
  *len = (size_t)n;
  return p;
}

/* End (index of the closing quote) of the order_id string value in `line`,
 * or 0 when there is none. */
static size_t order_id_end(const char *line) {
  const char *k = strstr(line, "\"order_id\"");
  if (!k) return 0;
  const char *p = k + 10;
  while (*p == ' ' || *p == '\t') p++;
  if (*p++ != ':') return 0;
  while (*p == ' ' || *p == '\t') p++;
  if (*p++ != '"') return 0;
  for (; *p && *p != '"'; p++) {
    if (*p == '\\' && p[1]) p++;
  }
  return *p == '"' ? (size_t)(p - line) : 0;
}

/* Keep the corpus order events that transcode against the table. */
typedef struct {
  const trb_bq_table_t *table;
  trb_buf_t row;
  size_t cap, bytes;
} corpus_ctx_t;

static void keep_order(void *user, char *line, size_t n) {
  corpus_ctx_t *c = user;
  trb_bq_transcode_opts_t opts = {.ignore_unknown_fields = true};
  if (!strstr(line, "\"order\"")) return;
  size_t at = order_id_end(line);
  trb_status_t st;
  trb_buf_reset(&c->row);
  if (at == 0 ||
      trb_bq_transcode_row(c->table, line, n, &opts, &c->row, &st) != GRPC_STATUS_OK)
    return;
  if (g_nbase == c->cap) {
    c->cap = c->cap ? c->cap * 2 : 16;
    g_base = realloc(g_base, c->cap * sizeof *g_base);
    if (!g_base) trb_bench_die("out of memory");
  }
  g_base[g_nbase].head = strndup(line, at);
  g_base[g_nbase].tail = strdup(line + at);
  c->bytes += n;
  g_nbase++;
}

static void load_corpus(const char *dir, const trb_bq_table_t *table) {
  corpus_ctx_t c = {table, TRB_BUF_INIT, 0, 0};
  trb_bench_corpus_lines(dir, keep_order, &c);
  trb_buf_deinit(&c.row);
  if (g_nbase == 0) trb_bench_die("no corpus order event transcodes against the table");
  g_mean_bytes = (double)c.bytes / (double)g_nbase;
}

/* The base events as JSON lines [head, tail] for the Node script. */
static void write_base_file(const char *path) {
  FILE *f = fopen(path, "w");
  if (!f) trb_bench_die(path);
  for (size_t i = 0; i < g_nbase; i++) {
    json_t *a = json_pack("[ss]", g_base[i].head, g_base[i].tail);
    char *s = a ? json_dumps(a, JSON_COMPACT) : NULL;
    if (!s) trb_bench_die("json_dumps");
    fprintf(f, "%s\n", s);
    free(s);
    json_decref(a);
  }
  fclose(f);
}

/* n row texts: base[i % k] with "#<tag><i>" in its order_id. */
static char **make_rows(long n, char tag) {
  char **rows = malloc((size_t)n * sizeof *rows);
  if (!rows) trb_bench_die("out of memory");
  for (long i = 0; i < n; i++) {
    const base_t *b = &g_base[(size_t)i % g_nbase];
    size_t len = strlen(b->head) + strlen(b->tail) + 32;
    rows[i] = malloc(len);
    if (!rows[i]) trb_bench_die("out of memory");
    snprintf(rows[i], len, "%s#%c%ld%s", b->head, tag, i, b->tail);
  }
  return rows;
}

static void free_rows(char **rows, long n) {
  for (long i = 0; i < n; i++) free(rows[i]);
  free(rows);
}

/* ---- C writer ------------------------------------------------------------ */

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int inflight;
  long written;
  long failed_appends;
  char first_error[256];
} acks_t;

static void on_append(void *user, const trb_bq_append_result_t *r) {
  acks_t *a = user;
  pthread_mutex_lock(&a->mu);
  a->written += (long)r->rows_written;
  if (r->code != GRPC_STATUS_OK || r->n_row_errors != 0) {
    if (a->failed_appends++ == 0)
      snprintf(a->first_error, sizeof a->first_error, "code %d: %s%s%s",
               (int)r->code, r->message ? r->message : "",
               r->n_row_errors ? "; row error: " : "",
               r->n_row_errors ? r->row_errors[0].message : "");
  }
  a->inflight--;
  pthread_cond_broadcast(&a->cv);
  pthread_mutex_unlock(&a->mu);
}

static result_t bench_c(const emu_t *e, long n, int batch, int inflight) {
  char **rows = make_rows(n, 'c');
  trb_status_t st;
  trb_rpc_loop_t *loop;
  trb_rpc_channel_t *ch;
  if (trb_rpc_loop_create("append-bench", &loop, &st) != GRPC_STATUS_OK) trb_bench_die(st.msg);
  trb_rpc_channel_config_t cc = {0};
  cc.target = e->bigquery;
  if (trb_rpc_channel_create(&cc, &ch, &st) != GRPC_STATUS_OK) trb_bench_die(st.msg);
  trb_bq_writer_config_t wc = {0};
  wc.table = TABLE;
  wc.kind = TRB_BQ_STREAM_COMMITTED;
  wc.ignore_unknown_fields = true;
  trb_bq_writer_t *w;
  if (trb_bq_writer_create(loop, ch, &wc, &w, &st) != GRPC_STATUS_OK) trb_bench_die(st.msg);

  acks_t a;
  memset(&a, 0, sizeof a);
  pthread_mutex_init(&a.mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&a.cv, &ca);
  pthread_condattr_destroy(&ca);
  struct timespec dl;
  clock_gettime(CLOCK_MONOTONIC, &dl);
  dl.tv_sec += 600;

  double emu0 = trb_bench_proc_cpu_s(e->pid);
  double cpu0 = trb_bench_rusage_s(RUSAGE_SELF);
  int64_t t0 = trb_clock_mono_ns();
  for (long off = 0; off < n; off += batch) {
    size_t k = (size_t)(n - off < batch ? n - off : batch);
    pthread_mutex_lock(&a.mu);
    while (a.inflight >= inflight) {
      if (pthread_cond_timedwait(&a.cv, &a.mu, &dl) != 0) trb_bench_die("C writer: timed out");
    }
    a.inflight++;
    pthread_mutex_unlock(&a.mu);
    if (trb_bq_writer_append(w, (const char *const *)rows + off, k, on_append, &a,
                             &st) != GRPC_STATUS_OK)
      trb_bench_die(st.msg);
  }
  pthread_mutex_lock(&a.mu);
  while (a.inflight > 0) {
    if (pthread_cond_timedwait(&a.cv, &a.mu, &dl) != 0) trb_bench_die("C writer: timed out");
  }
  pthread_mutex_unlock(&a.mu);
  int64_t t1 = trb_clock_mono_ns();
  double cpu1 = trb_bench_rusage_s(RUSAGE_SELF);
  double emu1 = trb_bench_proc_cpu_s(e->pid);

  if (a.failed_appends) {
    fprintf(stderr, "bench: C writer: %ld appends failed; first: %s\n", a.failed_appends,
            a.first_error);
    exit(1);
  }
  if (a.written != n) trb_bench_die("C writer: not every row was acknowledged");
  trb_bq_writer_stats_t ws;
  trb_bq_writer_get_stats(w, &ws);
  fprintf(stderr, "  C writer: connections %lld requests %lld resent %lld retries %lld\n",
          (long long)ws.connections, (long long)ws.requests_sent,
          (long long)ws.requests_resent, (long long)ws.retries);
  trb_bq_writer_destroy(w);
  trb_rpc_loop_destroy(loop);
  trb_rpc_channel_destroy(ch);
  pthread_cond_destroy(&a.cv);
  pthread_mutex_destroy(&a.mu);
  free_rows(rows, n);
  double wall = (double)(t1 - t0) / 1e9, cpu = cpu1 - cpu0;
  return (result_t){(double)n / wall, cpu, (double)n / cpu, emu1 - emu0};
}

/* ---- Node JSONWriter ------------------------------------------------------ */

static result_t bench_node(const emu_t *e, const char *dir, const char *base_file,
                           long n, int batch, int inflight) {
  char cmd[2048];
  snprintf(cmd, sizeof(cmd),
           "cd %s && BIGQUERY_STORAGE_EMULATOR_HOST=%s BENCH_TABLE=%s "
           "BENCH_BASE=%s BENCH_N=%ld BENCH_BATCH=%d BENCH_INFLIGHT=%d "
           "node append_bench.mjs",
           dir, e->bigquery, TABLE, base_file, n, batch, inflight);
  char last[256];
  double emu0 = trb_bench_proc_cpu_s(e->pid);
  trb_bench_run_last_line(cmd, last, sizeof(last));
  result_t r = {0, 0, 0, trb_bench_proc_cpu_s(e->pid) - emu0};
  if (sscanf(last, "%lf %lf", &r.rate, &r.cpu_s) != 2) trb_bench_die("node output");
  r.per_cpu = (double)n / r.cpu_s;
  return r;
}

/* ---- row count check (the emulator's SQL) ---------------------------------- */

/* Rows (and distinct order_ids) whose order_id carries "#<tag>" must be
 * exactly n; returns a digest of their other columns (total length of their
 * text forms), which must be the same for both sides (same rows). */
static long check_rows(const char *bin, const emu_t *e, char tag, long n) {
  char cmd[1024];
  snprintf(cmd, sizeof(cmd),
           "%s sql --data-dir %s/data --json \"SELECT COUNT(*) AS n, "
           "COUNT(DISTINCT order_id) AS d, SUM(length(coalesce(event_type, ''))"
           " + length(coalesce(customer_id, '')) + length(coalesce(order_date, ''))"
           " + length(coalesce(status, '')) + length(coalesce(items, ''))"
           " + length(coalesce(shipping_address, ''))"
           " + length(coalesce(total_amount, ''))) AS g "
           "FROM backend_events.order_events WHERE order_id LIKE '%%#%c%%'\"",
           bin, e->dir, tag);
  char last[256];
  trb_bench_run_last_line(cmd, last, sizeof(last));
  long rows = -1, distinct = -1, digest = -1;
  const char *pn = strstr(last, "\"n\":"), *pd = strstr(last, "\"d\":"),
             *pg = strstr(last, "\"g\":");
  if (pn) rows = atol(pn + 4);
  if (pd) distinct = atol(pd + 4);
  if (pg) digest = atol(pg + 4);
  if (rows != n || distinct != n || digest <= 0) {
    fprintf(stderr, "bench: %s side: the table holds %ld rows (%ld distinct order_ids), "
                    "expected %ld: %s", tag == 'c' ? "C" : "Node", rows, distinct, n, last);
    exit(1);
  }
  return digest;
}

int main(int argc, char **argv) {
  const char *bin = NULL, *node_dir = NULL;
  const char *corpus = "../shared/corpus/backend_events";
  const char *table_path = "examples/tables/" TABLE_FILE;
  int runs = 5, batch = 1000, inflight = 8;
  long n = 100000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--tributary") == 0) bin = argv[i + 1];
    else if (strcmp(argv[i], "--node-dir") == 0) node_dir = argv[i + 1];
    else if (strcmp(argv[i], "--runs") == 0) runs = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--rows") == 0) n = atol(argv[i + 1]);
    else if (strcmp(argv[i], "--batch") == 0) batch = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--inflight") == 0) inflight = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--corpus") == 0) corpus = argv[i + 1];
    else if (strcmp(argv[i], "--table") == 0) table_path = argv[i + 1];
    else trb_bench_die("usage: append_bench --tributary PATH [--node-dir DIR] [--runs N] "
                       "[--rows N] [--batch N] [--inflight N] [--corpus DIR] [--table FILE]");
  }
  if (argc % 2 == 0) trb_bench_die("flags take one value each");
  if (!bin) trb_bench_die("--tributary PATH is required");
  if (runs < 1 || runs > MAX_RUNS) trb_bench_die("--runs must be 1..15");
  if (n < 1 || batch < 1 || inflight < 1) trb_bench_die("--rows, --batch, --inflight must be >= 1");

  size_t tlen;
  char *table_json = read_file(table_path, &tlen);
  trb_bq_table_t table;
  trb_status_t st;
  if (trb_bq_table_parse(table_json, tlen, &table, &st) != GRPC_STATUS_OK) trb_bench_die(st.msg);
  load_corpus(corpus, &table);
  trb_bq_table_deinit(&table);
  const char *const tables[] = {TABLE_FILE, table_json, NULL};

  trb_rpc_init();
  double c_rate[MAX_RUNS], c_per[MAX_RUNS], c_cpu[MAX_RUNS];
  double n_rate[MAX_RUNS], n_per[MAX_RUNS], n_cpu[MAX_RUNS];
  double r_per[MAX_RUNS], r_rate[MAX_RUNS];
  printf("%ld rows per side: %zu corpus order events (mean %.0f bytes) cycled, "
         "%d rows per append, %d appends in flight, COMMITTED stream, durable emulator\n",
         n, g_nbase, g_mean_bytes, batch, inflight);
  for (int r = 0; r < runs; r++) {
    emu_t e;
    trb_bench_emu_start(bin, NULL, tables, true, &e);
    result_t c = bench_c(&e, n, batch, inflight);
    long c_digest = check_rows(bin, &e, 'c', n);
    printf("run %d  C     %9.0f rows/s  %6.3f CPU-s  %9.0f rows/CPU-s  (emulator %.3f CPU-s)\n",
           r + 1, c.rate, c.cpu_s, c.per_cpu, c.emu_cpu_s);
    c_rate[r] = c.rate;
    c_cpu[r] = c.cpu_s;
    c_per[r] = c.per_cpu;
    if (node_dir) {
      char base_file[400];
      snprintf(base_file, sizeof base_file, "%s/base.jsonl", e.dir);
      write_base_file(base_file);
      result_t nd = bench_node(&e, node_dir, base_file, n, batch, inflight);
      if (check_rows(bin, &e, 'n', n) != c_digest)
        trb_bench_die("the Node rows differ from the C rows (column digest)");
      r_per[r] = c.per_cpu / nd.per_cpu;
      r_rate[r] = c.rate / nd.rate;
      printf("run %d  Node  %9.0f rows/s  %6.3f CPU-s  %9.0f rows/CPU-s  (emulator %.3f CPU-s)"
             "   C/Node per CPU-s %.1fx, wall %.1fx\n",
             r + 1, nd.rate, nd.cpu_s, nd.per_cpu, nd.emu_cpu_s, r_per[r], r_rate[r]);
      n_rate[r] = nd.rate;
      n_cpu[r] = nd.cpu_s;
      n_per[r] = nd.per_cpu;
    }
    fflush(stdout);
    trb_bench_emu_stop(&e);
  }
  printf("median C:    %9.0f rows/s  %6.3f CPU-s  %9.0f rows per client CPU-s\n",
         trb_bench_median(c_rate, runs), trb_bench_median(c_cpu, runs),
         trb_bench_median(c_per, runs));
  if (node_dir) {
    printf("median Node: %9.0f rows/s  %6.3f CPU-s  %9.0f rows per client CPU-s\n",
           trb_bench_median(n_rate, runs), trb_bench_median(n_cpu, runs),
           trb_bench_median(n_per, runs));
    printf("median C/Node: per client CPU-s %.1fx, wall %.1fx\n",
           trb_bench_median(r_per, runs), trb_bench_median(r_rate, runs));
  }
  /* Machine-readable medians for perf/run_all.sh. */
  printf("RESULT c_rate=%.0f c_per_cpu=%.0f\n", trb_bench_median(c_rate, runs),
         trb_bench_median(c_per, runs));
  if (node_dir)
    printf("RESULT node_rate=%.0f node_per_cpu=%.0f ratio=%.2f wall_ratio=%.2f\n",
           trb_bench_median(n_rate, runs), trb_bench_median(n_per, runs),
           trb_bench_median(r_per, runs), trb_bench_median(r_rate, runs));
  for (size_t i = 0; i < g_nbase; i++) {
    free(g_base[i].head);
    free(g_base[i].tail);
  }
  free(g_base);
  free(table_json);
  trb_rpc_shutdown();
  return 0;
}
