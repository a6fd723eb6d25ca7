/*
 * transcode_bench.c — JSON row -> protobuf row throughput per core
 * (src/bigquery/transcode.h) for order events from the backend_events
 * corpus, side by side in the same run with:
 *   - parse-only with the same JSON reader (trb_bq_json_check),
 *   - parse-only with jansson (json_loadb + json_decref; reference),
 *   - memcpy of the same bytes;
 * and, against the order table plus the four write_metadata columns of
 * `tributary stream` (subscription_name, message_id, publish_time,
 * attributes), two ways to add them to every row:
 *   - "metadata as row text": the members appended to the row text (as
 *     src/streamer/shape.c writes them; the text is built once up front,
 *     so only the transcoding is timed),
 *   - "metadata as extras": trb_bq_transcode_row_extra on the original
 *     text, publish_time also as microseconds like the streamer's (checked
 *     to give the same bytes at load time).
 *
 * Usage: bazel run -c opt //perf:transcode_bench -- <corpus dir> [--runs N]
 *            [--ms M]
 *   <corpus dir>  e.g. /work/shared/corpus/backend_events (read at run time;
 *                 every *.jsonl except MANIFEST.jsonl; the order events
 *                 that transcode against the order table below are used).
 * Each run times each mode for about M ms (default 300) of thread CPU time
 * (CLOCK_THREAD_CPUTIME_ID, so one core); prints every run, then medians
 * and the ratios of the medians. Exit status non-zero when no event
 * transcodes.
 */
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "src/bigquery/schema.h"
#include "src/bigquery/transcode.h"
#include "src/common/arena.h"

static const char ORDER_TABLE[] =
    "[{\"name\":\"event_type\",\"type\":\"STRING\",\"mode\":\"REQUIRED\"},"
    "{\"name\":\"order_id\",\"type\":\"STRING\"},"
    "{\"name\":\"customer_id\",\"type\":\"STRING\"},"
    "{\"name\":\"order_date\",\"type\":\"TIMESTAMP\"},"
    "{\"name\":\"status\",\"type\":\"STRING\"},"
    "{\"name\":\"total_amount\",\"type\":\"NUMERIC\"},"
    "{\"name\":\"currency\",\"type\":\"STRING\"},"
    "{\"name\":\"event_date\",\"type\":\"DATE\"},"
    "{\"name\":\"items\",\"type\":\"RECORD\",\"mode\":\"REPEATED\",\"fields\":["
    "{\"name\":\"product_id\",\"type\":\"STRING\"},"
    "{\"name\":\"product_name\",\"type\":\"STRING\"},"
    "{\"name\":\"quantity\",\"type\":\"INT64\"},"
    "{\"name\":\"price\",\"type\":\"NUMERIC\"}]},"
    "{\"name\":\"shipping_address\",\"type\":\"RECORD\",\"fields\":["
    "{\"name\":\"street\",\"type\":\"STRING\"},"
    "{\"name\":\"city\",\"type\":\"STRING\"},"
    "{\"name\":\"country\",\"type\":\"STRING\"}]}]";

typedef struct {
  char *p;
  size_t n;
  char *shaped; /* p with the metadata members appended */
  size_t shaped_n;
} ev_t;

/* The metadata values a pipeline adds (message without attributes);
 * publish_time also typed, as src/streamer/shape.c gives it
 * (1795234928123456 us = 2026-11-21T04:22:08.123456Z). */
static const trb_bq_extra_field_t META[4] = {
    {"subscription_name", "projects/local-project/subscriptions/backend-events-c", 53,
     false, 0},
    {"message_id", "1234567", 7, false, 0},
    {"publish_time", "2026-11-21T04:22:08.123456Z", 27, true, 1795234928123456LL},
    {"attributes", "{}", 2, false, 0},
};
static const char META_TEXT[] =
    ",\"subscription_name\":\"projects/local-project/subscriptions/backend-events-c\""
    ",\"message_id\":\"1234567\",\"publish_time\":\"2026-11-21T04:22:08.123456Z\""
    ",\"attributes\":\"{}\"}";
static const char META_COLUMNS[] =
    ",{\"name\":\"subscription_name\",\"type\":\"STRING\"},"
    "{\"name\":\"message_id\",\"type\":\"STRING\"},"
    "{\"name\":\"publish_time\",\"type\":\"TIMESTAMP\"},"
    "{\"name\":\"attributes\",\"type\":\"JSON\"}]";
static trb_bq_table_t g_meta_table;

static ev_t *g_ev;
static size_t g_nev;
static size_t g_bytes; /* total bytes of one pass */
static trb_bq_table_t g_table;

static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void load_corpus(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) {
    perror(dir);
    exit(2);
  }
  struct dirent *e;
  trb_buf_t row = TRB_BUF_INIT;
  trb_bq_transcode_opts_t opts = {.ignore_unknown_fields = true};
  size_t cap = 0;
  while ((e = readdir(d))) {
    size_t nl = strlen(e->d_name);
    if (nl < 6 || strcmp(e->d_name + nl - 6, ".jsonl") != 0 ||
        strcmp(e->d_name, "MANIFEST.jsonl") == 0)
      continue;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t n;
    while ((n = getline(&line, &lcap, f)) > 0) {
      while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
      if (!strstr(line, "\"order\"") || !strstr(line, "\"items\"")) continue;
      trb_status_t st;
      trb_buf_reset(&row);
      if (trb_bq_transcode_row(&g_table, line, (size_t)n, &opts, &row, &st) !=
          GRPC_STATUS_OK) {
        fprintf(stderr, "skipped %s: %s\n", e->d_name, st.msg);
        continue;
      }
      if (g_nev == cap) {
        cap = cap ? cap * 2 : 16;
        g_ev = realloc(g_ev, cap * sizeof *g_ev);
      }
      g_ev[g_nev].p = malloc((size_t)n);
      memcpy(g_ev[g_nev].p, line, (size_t)n);
      g_ev[g_nev].n = (size_t)n;
      /* The shaped row: the text up to its closing brace, then META_TEXT. */
      size_t close = (size_t)n;
      while (close > 0 && line[close - 1] != '}') close--;
      if (close == 0) abort();
      g_ev[g_nev].shaped = malloc(close + sizeof META_TEXT);
      memcpy(g_ev[g_nev].shaped, line, close - 1);
      memcpy(g_ev[g_nev].shaped + close - 1, META_TEXT, sizeof META_TEXT);
      g_ev[g_nev].shaped_n = close - 1 + sizeof META_TEXT - 1;
      trb_buf_t a = TRB_BUF_INIT, b = TRB_BUF_INIT;
      if (trb_bq_transcode_row(&g_meta_table, g_ev[g_nev].shaped,
                               g_ev[g_nev].shaped_n, &opts, &a, &st) != GRPC_STATUS_OK ||
          trb_bq_transcode_row_extra(&g_meta_table, line, (size_t)n, META, 4, &opts, &b,
                                     &st) != GRPC_STATUS_OK ||
          a.len != b.len || memcmp(a.data, b.data, a.len) != 0) {
        fprintf(stderr, "metadata as text and as extras differ: %s\n", line);
        exit(1);
      }
      trb_buf_deinit(&a);
      trb_buf_deinit(&b);
      g_bytes += (size_t)n;
      g_nev++;
    }
    free(line);
    fclose(f);
  }
  closedir(d);
  trb_buf_deinit(&row);
}

enum { M_TRANSCODE, M_CHECK, M_JANSSON, M_MEMCPY, M_META_TEXT, M_META_EXTRA, M_COUNT };
static const char *MODE_NAME[M_COUNT] = {"transcode", "parse-only (same reader)",
                                         "parse-only (jansson)", "memcpy",
                                         "metadata as row text", "metadata as extras"};

static volatile size_t g_sink;

/* Events per CPU second for `mode` over about `ms` of CPU time. */
static double run_mode(int mode, double ms) {
  trb_buf_t out = TRB_BUF_INIT;
  trb_bq_transcode_opts_t opts = {.ignore_unknown_fields = true};
  char *dst = malloc(65536);
  size_t events = 0;
  double t0 = cpu_now(), t1 = t0;
  while ((t1 - t0) * 1000 < ms) {
    for (int rep = 0; rep < 64; rep++) {
      for (size_t i = 0; i < g_nev; i++) {
        const ev_t *e = &g_ev[i];
        trb_status_t st;
        switch (mode) {
          case M_TRANSCODE:
            trb_buf_reset(&out);
            if (trb_bq_transcode_row(&g_table, e->p, e->n, &opts, &out, &st) !=
                GRPC_STATUS_OK)
              abort();
            g_sink += out.len;
            break;
          case M_CHECK:
            if (trb_bq_json_check(e->p, e->n, &st) != GRPC_STATUS_OK) abort();
            break;
          case M_JANSSON: {
            json_error_t je;
            json_t *j = json_loadb(e->p, e->n, 0, &je);
            if (!j) abort();
            json_decref(j);
            break;
          }
          case M_META_TEXT:
            trb_buf_reset(&out);
            if (trb_bq_transcode_row(&g_meta_table, e->shaped, e->shaped_n, &opts, &out,
                                     &st) != GRPC_STATUS_OK)
              abort();
            g_sink += out.len;
            break;
          case M_META_EXTRA:
            trb_buf_reset(&out);
            if (trb_bq_transcode_row_extra(&g_meta_table, e->p, e->n, META, 4, &opts, &out,
                                           &st) != GRPC_STATUS_OK)
              abort();
            g_sink += out.len;
            break;
          case M_MEMCPY:
            memcpy(dst, e->p, e->n);
            g_sink += (unsigned char)dst[e->n / 2];
            break;
        }
      }
      events += g_nev;
    }
    t1 = cpu_now();
  }
  trb_buf_deinit(&out);
  free(dst);
  return (double)events / (t1 - t0);
}

int main(int argc, char **argv) {
  const char *dir = NULL;
  int runs = 7;
  double ms = 300;
  int only_transcode = 0; /* for profiling: the other modes are skipped */
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
      runs = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--ms") == 0 && i + 1 < argc) {
      ms = atof(argv[++i]);
    } else if (strcmp(argv[i], "--only-transcode") == 0) {
      only_transcode = 1;
    } else {
      dir = argv[i];
    }
  }
  if (!dir || runs < 1 || runs > 101) {
    fprintf(stderr, "usage: transcode_bench <corpus dir> [--runs N] [--ms M] [--only-transcode]\n");
    return 2;
  }
  trb_status_t st;
  if (trb_bq_table_parse(ORDER_TABLE, sizeof ORDER_TABLE - 1, &g_table, &st) !=
      GRPC_STATUS_OK) {
    fprintf(stderr, "table: %s\n", st.msg);
    return 1;
  }
  char meta_table[sizeof ORDER_TABLE + sizeof META_COLUMNS];
  memcpy(meta_table, ORDER_TABLE, sizeof ORDER_TABLE - 2); /* without ']' */
  memcpy(meta_table + sizeof ORDER_TABLE - 2, META_COLUMNS, sizeof META_COLUMNS);
  if (trb_bq_table_parse(meta_table, strlen(meta_table), &g_meta_table, &st) !=
      GRPC_STATUS_OK) {
    fprintf(stderr, "table: %s\n", st.msg);
    return 1;
  }
  load_corpus(dir);
  if (g_nev == 0) {
    fprintf(stderr, "no order event in %s transcodes\n", dir);
    return 1;
  }
  printf("%zu order events, mean %.0f bytes; %d runs x %.0f ms CPU per mode\n",
         g_nev, (double)g_bytes / (double)g_nev, runs, ms);
  double *r[M_COUNT];
  for (int m = 0; m < M_COUNT; m++) r[m] = calloc((size_t)runs, sizeof(double));
  for (int i = 0; i < runs; i++) {
    printf("run %d:", i + 1);
    for (int m = 0; m < M_COUNT; m++) {
      r[m][i] = m == M_TRANSCODE || !only_transcode ? run_mode(m, ms) : 1;
      printf("  %s %.0f/s", MODE_NAME[m], r[m][i]);
    }
    printf("\n");
  }
  double med[M_COUNT];
  for (int m = 0; m < M_COUNT; m++) {
    qsort(r[m], (size_t)runs, sizeof(double), cmp_d);
    med[m] = r[m][runs / 2];
    printf("median %-26s %12.0f events/s per core  %8.1f MB/s\n",
           MODE_NAME[m], med[m], med[m] * (double)g_bytes / (double)g_nev / 1e6);
    free(r[m]);
  }
  printf("ratio transcode / parse-only (same reader): %.2f\n",
         med[M_TRANSCODE] / med[M_CHECK]);
  printf("ratio transcode / parse-only (jansson):     %.2f\n",
         med[M_TRANSCODE] / med[M_JANSSON]);
  printf("ratio transcode / memcpy:                   %.4f\n",
         med[M_TRANSCODE] / med[M_MEMCPY]);
  /* Machine-readable medians for perf/run_all.sh. */
  printf("ratio metadata as extras / as row text:     %.2f\n",
         med[M_META_EXTRA] / med[M_META_TEXT]);
  printf("RESULT transcode=%.0f check=%.0f jansson=%.0f memcpy=%.0f mean_bytes=%.0f "
         "meta_text=%.0f meta_extra=%.0f\n",
         med[M_TRANSCODE], med[M_CHECK], med[M_JANSSON], med[M_MEMCPY],
         (double)g_bytes / (double)g_nev, med[M_META_TEXT], med[M_META_EXTRA]);
  for (size_t i = 0; i < g_nev; i++) {
    free(g_ev[i].p);
    free(g_ev[i].shaped);
  }
  free(g_ev);
  trb_bq_table_deinit(&g_table);
  trb_bq_table_deinit(&g_meta_table);
  return 0;
}
