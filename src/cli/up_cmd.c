/*
 * up_cmd.c — `tributary up`: emulator, ingest and three streamers as child
 * processes, events through HTTP, live progress, and a summary that adds
 * up (see up_cmd.h).
 */
#include "src/cli/up_cmd.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "src/cli/flags.h"
#include "src/common/alloc.h"
#include "src/common/clock.h"
#include "src/emulator/bigquery/bigquery.h"
#include "src/gen/feed.h"
#include "src/gen/source.h"
#include "src/rpc/rpc.h"
#include "src/up/child.h"
#include "src/up/deadletters.h"
#include "src/up/snapshot.h"

typedef struct {
  char *data_dir;
  int64_t events;
  int64_t duration;
  double rate;
  char *corpus;
  bool keep_running;
  int64_t seed;
  double malformed;
  int64_t connections;
  int64_t settle_timeout;
  char *examples;
  int64_t interval;
} up_flags_t;

static const trb_config_entry_t kEntries[] = {
    {"data_dir", TRB_CONFIG_STRING, "./tributary-data",
     offsetof(up_flags_t, data_dir), 0, 0, 0, 0, NULL,
     "Where the emulator keeps its data, the streamers their WALs, and the "
     "children their logs (logs/*.log). Running again continues with it."},
    {"events", TRB_CONFIG_INT64, "-1", offsetof(up_flags_t, events), -1,
     INT64_MAX, 0, 0, "events",
     "Generated events to send (-1: 10000 unless --duration is given)."},
    {"duration", TRB_CONFIG_DURATION_MS, "0", offsetof(up_flags_t, duration), 0,
     INT64_MAX, 0, 0, NULL, "Generate for this long instead of --events."},
    {"rate", TRB_CONFIG_DOUBLE, "0", offsetof(up_flags_t, rate), 0, 0, 0, 0,
     "events/s", "Send rate; 0 = as fast as ingest takes them."},
    {"corpus", TRB_CONFIG_STRING, NULL, offsetof(up_flags_t, corpus), 0, 0, 0,
     0, NULL,
     "JSON Lines files (comma-separated; more may follow as arguments) sent "
     "verbatim to the backend-events route before the generated events."},
    {"keep_running", TRB_CONFIG_BOOL, "false",
     offsetof(up_flags_t, keep_running), 0, 0, 0, 0, NULL,
     "After the summary, keep the pipeline running until Ctrl-C."},
    {"seed", TRB_CONFIG_INT64, "1", offsetof(up_flags_t, seed), INT64_MIN,
     INT64_MAX, 0, 0, NULL, "Generator seed."},
    {"malformed", TRB_CONFIG_DOUBLE, "0.05", offsetof(up_flags_t, malformed), 0,
     0, 0, 0, "fraction", "Fraction of backend events made malformed."},
    {"connections", TRB_CONFIG_INT64, "4", offsetof(up_flags_t, connections), 1,
     64, 0, 0, NULL, "Parallel HTTP connections to ingest."},
    {"settle_timeout", TRB_CONFIG_DURATION_MS, "120s",
     offsetof(up_flags_t, settle_timeout), 1, INT64_MAX, 0, 0, NULL,
     "After sending, longest wait for rows + dead letters to account for "
     "every accepted event."},
    {"examples", TRB_CONFIG_STRING, NULL, offsetof(up_flags_t, examples), 0, 0,
     0, 0, NULL,
     "Directory with emulator.json, tables/ and pipelines/ (default: "
     "./examples, else the binary's runfiles, else $TRIBUTARY_EXAMPLES)."},
    {"interval", TRB_CONFIG_DURATION_MS, "0", offsetof(up_flags_t, interval), 0,
     INT64_MAX, 0, 0, NULL,
     "Progress period (0: 1s on a terminal, else 5s)."},
};
static const trb_config_table_t kTable = {
    "up", kEntries, sizeof(kEntries) / sizeof(kEntries[0])};

#define USAGE                                                                 \
  "tributary up [--data-dir DIR] [--events N | --duration D] [--rate R] "     \
  "[--corpus FILE[,FILE]] [FILE...] [--keep-running]"

#define N_STREAMS 3
static const char *const kPipelines[N_STREAMS] = {"backend-events", "issues",
                                                   "raw-orders"};
#define ROUTES "/=issues,/events=backend-events:raw,/orders=raw-orders:raw"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
  (void)sig;
  g_stop++;
}

typedef struct {
  up_flags_t f;
  char exe[PATH_MAX];
  char data[PATH_MAX];
  char examples[PATH_MAX];
  trb_up_child_t emu, ingest, streams[N_STREAMS];
  bool emu_started, ingest_started;
  int n_streams_started;
  char pubsub_host[128], bq_host[128];
  int ingest_port;
  int stream_ports[N_STREAMS];
  trb_gen_source_t *src;
  trb_feed_t *feed;
  pthread_t feeder;
  bool feeder_started;
  volatile bool feed_done;
  uint64_t generated, replayed, malformed;
  uint64_t by_defect[TRB_GEN_DEFECTS];
  int64_t t0_ms, t_sent_ms;
  bool tty;
  int64_t since_us; /* wall clock at start: this run's dead letters */
  bool rpc_inited;
  trb_rpc_loop_t *loop;
  trb_rpc_channel_t *ch;
  trb_up_deadletters_t *dls;
} up_t;

static bool is_dir_with(const char *dir) {
  char p[PATH_MAX + 32];
  snprintf(p, sizeof p, "%s/emulator.json", dir);
  if (access(p, R_OK) != 0) return false;
  snprintf(p, sizeof p, "%s/tables", dir);
  if (access(p, R_OK) != 0) return false;
  snprintf(p, sizeof p, "%s/pipelines/backend-events.json", dir);
  return access(p, R_OK) == 0;
}

/* The examples directory: flag, ./examples, runfiles, $TRIBUTARY_EXAMPLES. */
static bool find_examples(up_t *u) {
  char cand[6][PATH_MAX];
  int n = 0;
  if (u->f.examples) snprintf(cand[n++], PATH_MAX, "%s", u->f.examples);
  snprintf(cand[n++], PATH_MAX, "examples");
  snprintf(cand[n++], PATH_MAX, "%s.runfiles/tributary/examples", u->exe);
  snprintf(cand[n++], PATH_MAX, "%s.runfiles/_main/examples", u->exe);
  const char *rf = getenv("RUNFILES_DIR");
  if (rf) snprintf(cand[n++], PATH_MAX, "%s/tributary/examples", rf);
  const char *env = getenv("TRIBUTARY_EXAMPLES");
  if (env) snprintf(cand[n++], PATH_MAX, "%s", env);
  for (int i = 0; i < n; i++) {
    if (u->f.examples && i > 0) break;
    if (is_dir_with(cand[i]) && realpath(cand[i], u->examples)) return true;
  }
  return false;
}

static int mkdirs(const char *path) {
  char tmp[PATH_MAX];
  snprintf(tmp, sizeof tmp, "%s", path);
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -errno;
    *p = '/';
  }
  if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -errno;
  return 0;
}

static void fmt_n(double v, char *out, size_t cap) {
  long long n = (long long)(v + (v >= 0 ? 0.5 : -0.5));
  char digits[32];
  snprintf(digits, sizeof digits, "%lld", n < 0 ? -n : n);
  size_t len = strlen(digits), k = 0;
  if (n < 0 && k + 1 < cap) out[k++] = '-';
  for (size_t i = 0; i < len && k + 2 < cap; i++) {
    if (i && (len - i) % 3 == 0) out[k++] = ',';
    out[k++] = digits[i];
  }
  out[k] = '\0';
}

/* Up to 8 formatted numbers per printf call. */
static const char *N(double v) {
  static char ring[8][32];
  static int i;
  char *o = ring[i++ % 8];
  fmt_n(v, o, 32);
  return o;
}

static void *feeder_main(void *arg) {
  up_t *u = arg;
  trb_gen_item_t it;
  int64_t t0 = trb_clock_mono_ns();
  int64_t end_ns = u->f.duration > 0 ? t0 + u->f.duration * 1000000 : 0;
  uint64_t n = 0;
  while (!g_stop && trb_gen_source_next(u->src, &it)) {
    if (end_ns && !it.replayed && trb_clock_mono_ns() >= end_ns) break;
    if (u->f.rate > 0) {
      int64_t due = t0 + (int64_t)((double)n * 1e9 / u->f.rate);
      int64_t now = trb_clock_mono_ns();
      if (due > now) {
        trb_feed_flush(u->feed);
        struct timespec ts = {(time_t)((due - now) / 1000000000),
                              (long)((due - now) % 1000000000)};
        nanosleep(&ts, NULL);
      }
    }
    n++;
    if (it.replayed) {
      __atomic_fetch_add(&u->replayed, 1, __ATOMIC_RELAXED);
    } else {
      __atomic_fetch_add(&u->generated, 1, __ATOMIC_RELAXED);
      if (it.ev.defect != TRB_GEN_VALID)
        __atomic_fetch_add(&u->malformed, 1, __ATOMIC_RELAXED);
      __atomic_fetch_add(&u->by_defect[it.ev.defect], 1, __ATOMIC_RELAXED);
    }
    if (trb_feed_add(u->feed, it.path, it.json, it.len, it.batchable) != 0)
      break;
  }
  if (!g_stop) trb_feed_finish(u->feed);
  u->t_sent_ms = trb_clock_mono_ms();
  __atomic_store_n(&u->feed_done, true, __ATOMIC_RELEASE);
  return NULL;
}

static int start_child(up_t *u, trb_up_child_t *c, const char *name,
                       char *const argv[], char *const env[], pid_t pgid) {
  char log[PATH_MAX + 64];
  snprintf(log, sizeof log, "%s/logs/%s.log", u->data, name);
  /* Should `up` die without stopping them: ingest and the streamers are
   * killed at once (the streamers' WAL makes that safe; their peers are
   * going away anyway), the emulator stops cleanly. */
  int rc = trb_up_child_start(c, name, log, argv, env, pgid,
                              pgid ? SIGKILL : SIGTERM);
  if (rc) fprintf(stderr, "tributary up: cannot start %s: %s\n", name,
                  strerror(-rc));
  return rc;
}

static int wait_line(trb_up_child_t *c, const char *prefix, char *out,
                     size_t cap) {
  int rc = trb_up_child_wait_line(c, prefix, out, cap, 60000);
  if (rc) {
    fprintf(stderr, "tributary up: %s %s (log %s):\n", c->name,
            rc == -ECHILD ? "exited during start" : "did not become ready",
            c->log_path);
    trb_up_child_print_tail(c, 10, stderr);
  }
  return rc;
}

static int start_all(up_t *u) {
  char tables[PATH_MAX + 16], config[PATH_MAX + 32];
  snprintf(tables, sizeof tables, "%s/tables", u->examples);
  snprintf(config, sizeof config, "%s/emulator.json", u->examples);
  char *emu_argv[] = {u->exe, "emulator", "--host", "127.0.0.1",
                      "--pubsub-port", "0", "--bigquery-port", "0",
                      "--data-dir", u->data, "--tables", tables, "--config",
                      config, NULL};
  if (start_child(u, &u->emu, "emulator", emu_argv, NULL, 0)) return -1;
  u->emu_started = true;
  pid_t pgid = u->emu.pid;
  if (wait_line(&u->emu, "PUBSUB_EMULATOR_HOST=", u->pubsub_host,
                sizeof u->pubsub_host) ||
      wait_line(&u->emu, "BIGQUERY_STORAGE_EMULATOR_HOST=", u->bq_host,
                sizeof u->bq_host))
    return -1;
  char env1[200], env2[200];
  snprintf(env1, sizeof env1, "PUBSUB_EMULATOR_HOST=%s", u->pubsub_host);
  snprintf(env2, sizeof env2, "BIGQUERY_STORAGE_EMULATOR_HOST=%s", u->bq_host);
  char *env[] = {env1, env2, NULL};
  char *ing_argv[] = {u->exe, "ingest", "--host", "127.0.0.1", "--port", "0",
                      "--project", "local-project", "--routes", ROUTES,
                      "--flow-control", "block", NULL};
  if (start_child(u, &u->ingest, "ingest", ing_argv, env, pgid)) return -1;
  u->ingest_started = true;
  for (int i = 0; i < N_STREAMS; i++) {
    char pipeline[PATH_MAX + 64], wal[PATH_MAX + 64], name[64];
    snprintf(pipeline, sizeof pipeline, "%s/pipelines/%s.json", u->examples,
             kPipelines[i]);
    snprintf(wal, sizeof wal, "%s/wal-%s", u->data, kPipelines[i]);
    snprintf(name, sizeof name, "stream-%s", kPipelines[i]);
    char *argv[] = {u->exe, "stream", "--pipeline", pipeline, "--wal-dir", wal,
                    "--http-port", "0", NULL};
    if (start_child(u, &u->streams[i], name, argv, env, pgid)) return -1;
    u->n_streams_started++;
  }
  char line[256];
  if (wait_line(&u->ingest, "INGEST_URL=http://127.0.0.1:", line, sizeof line))
    return -1;
  u->ingest_port = atoi(line);
  for (int i = 0; i < N_STREAMS; i++) {
    if (wait_line(&u->streams[i], "tributary stream: ops http on port ", line,
                  sizeof line))
      return -1;
    u->stream_ports[i] = atoi(line);
    if (wait_line(&u->streams[i], "tributary stream: streaming ", line,
                  sizeof line))
      return -1;
  }
  return 0;
}

static void stop_all(up_t *u) {
  /* Streamers first (they drain and ack), then ingest, then the emulator. */
  for (int i = 0; i < u->n_streams_started; i++)
    if (u->streams[i].pid > 0 && !u->streams[i].reaped)
      kill(u->streams[i].pid, SIGTERM);
  for (int i = 0; i < u->n_streams_started; i++)
    trb_up_child_stop(&u->streams[i], 15000);
  if (u->ingest_started) trb_up_child_stop(&u->ingest, 15000);
  if (u->emu_started) {
    trb_up_child_stop(&u->emu, 15000);
    kill(-u->emu.pid, SIGKILL); /* anything left in the group */
  }
}

static bool children_alive(up_t *u, const char **dead) {
  if (u->emu_started && !trb_up_child_alive(&u->emu)) {
    *dead = "emulator";
    return false;
  }
  if (u->ingest_started && !trb_up_child_alive(&u->ingest)) {
    *dead = "ingest";
    return false;
  }
  for (int i = 0; i < u->n_streams_started; i++)
    if (!trb_up_child_alive(&u->streams[i])) {
      *dead = u->streams[i].name;
      return false;
    }
  return true;
}

/* Rows in a table (all runs), via the emulator's SQL; -1 on error. */
static long long table_rows(const up_t *u, const char *table) {
  char sql[256];
  snprintf(sql, sizeof sql, "SELECT COUNT(*) AS n FROM %s", table);
  char *buf = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&buf, &len);
  if (!m) return -1;
  trb_status_t st = {0};
  grpc_status_code c = trb_bqemu_sql(u->data, sql, true, m, &st);
  fclose(m);
  long long n = -1;
  const char *p = buf ? strstr(buf, "\"n\":") : NULL;
  if (c == GRPC_STATUS_OK && p) n = strtoll(p + 4, NULL, 10);
  free(buf);
  return n;
}

static double ms_of(double seconds) { return seconds * 1000.0; }

static void progress(up_t *u, const trb_up_snapshot_t *d, int *drawn,
                     bool final_draw) {
  trb_feed_stats_t fs;
  trb_feed_stats(u->feed, &fs);
  double el = (double)(trb_clock_mono_ms() - u->t0_ms) / 1000.0;
  double lag = (double)fs.accepted - d->rows - d->dead;
  if (lag < 0) lag = 0;
  double p50 = trb_prom_hist_quantile(&d->e2e, 0.5);
  double p99 = trb_prom_hist_quantile(&d->e2e, 0.99);
  if (!u->tty) {
    printf("up %6.1fs sent %s accepted %s published %s rows %s dead-letters %s "
           "lag %s (%s ev/s)\n",
           el, N((double)fs.sent), N((double)fs.accepted), N(d->published),
           N(d->rows), N(d->dead), N(lag),
           N(el > 0 ? (double)fs.accepted / el : 0));
    fflush(stdout);
    return;
  }
  if (*drawn) printf("\033[%dA", *drawn);
  int lines = 0;
  printf("\033[K\033[1mtributary up\033[0m  %.1f s   %s\n", el,
         u->feed_done ? (final_draw ? "done" : "all sent; waiting for the "
                                               "streamers")
                      : "sending");
  lines++;
  printf("\033[K  sent %s  accepted %s (%s/s)  refused %s  published %s\n",
         N((double)fs.sent), N((double)fs.accepted),
         N(el > 0 ? (double)fs.accepted / el : 0), N((double)fs.refused),
         N(d->published));
  lines++;
  printf("\033[K  rows %s  dead letters %s  lag %s  in flight %s  e2e p50 "
         "%.0f ms p99 %.0f ms\n",
         N(d->rows), N(d->dead), N(lag), N(d->in_flight),
         p50 < 0 ? 0 : ms_of(p50), p99 < 0 ? 0 : ms_of(p99));
  lines++;
  for (int i = 0; i < d->n_tables; i++) {
    printf("\033[K    %-40s %12s rows\n", d->tables[i].table,
           N(d->tables[i].n));
    lines++;
  }
  fflush(stdout);
  *drawn = lines;
}

static const char *stage_meaning(const char *stage) {
  if (strcmp(stage, "parse") == 0) return "not JSON";
  if (strcmp(stage, "route") == 0) return "no table for its event_type";
  if (strcmp(stage, "transcode") == 0) return "does not fit the table";
  if (strcmp(stage, "append") == 0) return "row rejected by BigQuery";
  return "";
}

static int summary(up_t *u, const trb_up_snapshot_t *d, bool interrupted) {
  trb_feed_stats_t fs;
  trb_feed_stats(u->feed, &fs);
  double send_s = (double)((u->t_sent_ms ? u->t_sent_ms : trb_clock_mono_ms()) -
                           u->t0_ms) / 1000.0;
  double total_s = (double)(trb_clock_mono_ms() - u->t0_ms) / 1000.0;
  printf("\n== tributary up: %s in %.1f s ==\n",
         interrupted ? "interrupted" : "done", total_s);
  printf("events sent          %12s   (%s generated, %s of them malformed on "
         "purpose; %s corpus lines)\n",
         N((double)fs.sent), N((double)u->generated), N((double)u->malformed),
         N((double)u->replayed));
  printf("  refused by ingest  %12s   (HTTP 4xx: not a JSON object — never "
         "published)\n",
         N((double)fs.refused));
  if (fs.failed)
    printf("  failed             %12s   (5xx or no answer after retries)\n",
           N((double)fs.failed));
  printf("  accepted           %12s   (published to Pub/Sub)\n",
         N((double)fs.accepted));
  printf("rows written         %12s\n", N(d->rows));
  for (int i = 0; i < d->n_tables; i++) {
    long long all = table_rows(u, d->tables[i].table);
    printf("  %-36s %10s   (table now holds %s)\n", d->tables[i].table,
           N(d->tables[i].n), all >= 0 ? N((double)all) : "?");
  }
  printf("dead letters         %12s   (topic tributary-dead-letter, "
         "subscription tributary-dead-letter-inspect)\n",
         N(d->dead));
  for (int i = 0; i < d->n_dl; i++) {
    if (d->dl[i].n <= 0) continue;
    printf("  %-9s %-36s %8s   (%s)\n", d->dl[i].stage,
           d->dl[i].table[0] ? d->dl[i].table : "-", N(d->dl[i].n),
           stage_meaning(d->dl[i].stage));
  }
  if (u->dls) {
    trb_up_reason_t r[12];
    int nr = trb_up_deadletters_reasons(u->dls, r, 12);
    uint64_t seen = trb_up_deadletters_count(u->dls);
    printf("  by reason (read back from the dead-letter topic: %s of %s; "
           "top %d):\n",
           N((double)seen), N(d->dead), nr);
    for (int i = 0; i < nr; i++)
      printf("    %8s  %-9s %s\n", N((double)r[i].n), r[i].stage,
             r[i].reason);
  }
  if (u->malformed) {
    static const char *const kWhere[TRB_GEN_DEFECTS] = {
        "", "refused by ingest (HTTP 400)", "dead letter, stage route",
        "dead letter, stage transcode", "dead letter, stage transcode"};
    printf("malformed on purpose %12s   (what the generator broke, and where "
           "the pipeline must stop it)\n",
           N((double)u->malformed));
    for (int k = 1; k < TRB_GEN_DEFECTS; k++)
      printf("  %-18s %12s   -> %s\n",
             trb_gen_defect_name((trb_gen_defect_t)k),
             N((double)u->by_defect[k]), kWhere[k]);
  }
  double accounted = d->rows + d->dead;
  double acc = (double)fs.accepted;
  bool ok = accounted >= acc && acc > 0 && !fs.failed;
  bool exact = accounted == acc;
  printf("check                rows %s + dead letters %s = %s %s accepted %s%s\n",
         N(d->rows), N(d->dead), N(accounted), exact ? "=" : accounted > acc ? ">" : "<",
         N(acc),
         exact ? "  OK"
         : accounted > acc
             ? "  (the extra came from an earlier run's messages still in "
               "the subscriptions)"
         : interrupted ? "  (interrupted: the rest stays in the "
                         "subscriptions; the next run on this data "
                         "directory writes it)"
                       : "  MISSING");
  printf("throughput           %s events/s accepted while sending (%.1f s); "
         "%s events/s end to end (%.1f s)\n",
         N(send_s > 0 ? acc / send_s : 0), send_s,
         N(total_s > 0 ? accounted / total_s : 0), total_s);
  double p50 = trb_prom_hist_quantile(&d->e2e, 0.5);
  double p99 = trb_prom_hist_quantile(&d->e2e, 0.99);
  printf("latency              Pub/Sub publish -> row in table: p50 %.0f ms, "
         "p99 %.0f ms; HTTP request: p50 %.1f ms, p99 %.1f ms\n",
         p50 < 0 ? 0 : ms_of(p50), p99 < 0 ? 0 : ms_of(p99),
         (double)fs.rtt_p50_us / 1000.0, (double)fs.rtt_p99_us / 1000.0);
  const char *bwd = getenv("BUILD_WORKING_DIRECTORY");
  printf("look at the data:\n  %s sql --data-dir %s \"SELECT status, "
         "COUNT(*) AS n, ROUND(SUM(total_amount), 2) AS revenue FROM "
         "backend_events.order_events GROUP BY status ORDER BY n DESC\"\n",
         bwd && *bwd ? "bazel run -c opt //src/cli:tributary --" : u->exe,
         u->data);
  printf("logs: %s/logs/\n", u->data);
  fflush(stdout);
  return ok ? 0 : 1;
}

static void sleep_ms(int64_t ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

int trb_cli_up(int argc, char **argv) {
  static up_t u;
  memset(&u, 0, sizeof u);
  trb_status_t st = {0};
  char *pos[256];
  int npos = 0;
  bool help = false;
  if (trb_cli_flags_parse(&kTable, &u.f, "TRB_UP_", argc, argv, pos, 256,
                          &npos, &help, &st) != GRPC_STATUS_OK) {
    fprintf(stderr, "tributary up: %s\n", st.msg);
    trb_config_free(&kTable, &u.f);
    return 2;
  }
  if (help) {
    trb_cli_flags_usage(&kTable, USAGE, "TRB_UP_", false);
    trb_config_free(&kTable, &u.f);
    return 0;
  }
  int rc = 1;
  char *corpus = u.f.corpus ? trb_strdup(u.f.corpus) : NULL;
  const char *files[300];
  size_t nfiles = 0;
  char *list[300];
  size_t nlist = 0;
  for (char *save = NULL, *t = corpus ? strtok_r(corpus, ",", &save) : NULL;
       t && nlist < 40; t = strtok_r(NULL, ",", &save))
    list[nlist++] = t;
  for (int i = 0; i < npos; i++) list[nlist++] = pos[i];
  for (size_t i = 0; i < nlist; i++) {
    const char *base = strrchr(list[i], '/');
    base = base ? base + 1 : list[i];
    if (strcmp(base, "MANIFEST.jsonl") == 0) {
      fprintf(stderr, "tributary up: skipping %s (the corpus's manifest, not "
                      "events)\n", list[i]);
      continue;
    }
    files[nfiles++] = list[i];
  }
  ssize_t el = readlink("/proc/self/exe", u.exe, sizeof u.exe - 1);
  if (el <= 0) {
    fprintf(stderr, "tributary up: cannot find my own binary\n");
    goto out;
  }
  u.exe[el] = '\0';
  if (!find_examples(&u)) {
    fprintf(stderr,
            "tributary up: cannot find the example configuration "
            "(emulator.json, tables/, pipelines/): run from the repository "
            "root, or pass --examples DIR\n");
    rc = 2;
    goto out;
  }
  if (mkdirs(u.f.data_dir) != 0 || !realpath(u.f.data_dir, u.data)) {
    fprintf(stderr, "tributary up: cannot create %s: %s\n", u.f.data_dir,
            strerror(errno));
    goto out;
  }
  char logs[PATH_MAX + 8];
  snprintf(logs, sizeof logs, "%s/logs", u.data);
  if (mkdirs(logs) != 0) {
    fprintf(stderr, "tributary up: cannot create %s\n", logs);
    goto out;
  }
  int64_t events = u.f.events;
  if (events < 0) events = u.f.duration > 0 ? -1 : 10000;
  trb_gen_config_t gc = {0};
  gc.seed = (uint64_t)u.f.seed;
  gc.malformed_fraction = u.f.malformed;
  /* Event times end about now (the generator spaces events ~50 ms). */
  gc.base_time_us = trb_clock_wall_us() - (events > 0 ? events : 0) * 50000;
  char err[512];
  u.src = trb_gen_source_create(files, nfiles, "/events", "backend-events",
                                &gc, events, err, sizeof err);
  if (!u.src) {
    fprintf(stderr, "tributary up: %s\n", err);
    rc = 2;
    goto out;
  }
  u.tty = isatty(1);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  u.since_us = trb_clock_wall_us() - 1000000;
  printf("tributary up: data in %s, examples from %s\n", u.data, u.examples);
  fflush(stdout);
  if (start_all(&u) != 0) goto out;
  /* Read the dead letters back (after the last fork: gRPC threads from
   * here on). */
  setenv("PUBSUB_EMULATOR_HOST", u.pubsub_host, 1);
  trb_rpc_init();
  u.rpc_inited = true;
  {
    trb_rpc_channel_config_t cc = {0};
    trb_rpc_channel_config_from_env(&cc, "pubsub.googleapis.com:443",
                                    "PUBSUB_EMULATOR_HOST");
    if (trb_rpc_loop_create("up-dlq", &u.loop, &st) != GRPC_STATUS_OK ||
        trb_rpc_channel_create(&cc, &u.ch, &st) != GRPC_STATUS_OK ||
        trb_up_deadletters_start(
            u.loop, u.ch,
            "projects/local-project/subscriptions/tributary-dead-letter-inspect",
            u.since_us, &u.dls, &st) != GRPC_STATUS_OK) {
      fprintf(stderr, "tributary up: dead-letter reasons unavailable: %s\n",
              st.msg);
      u.dls = NULL;
    }
  }
  printf("tributary up: emulator (Pub/Sub %s, BigQuery %s), ingest "
         "http://127.0.0.1:%d, streamers on ports %d %d %d\n",
         u.pubsub_host, u.bq_host, u.ingest_port, u.stream_ports[0],
         u.stream_ports[1], u.stream_ports[2]);
  fflush(stdout);

  trb_up_snapshot_t base, now, d;
  trb_up_snapshot_scrape(&base, u.ingest_port, u.stream_ports, N_STREAMS, 5000);
  trb_feed_config_t fc = {0};
  fc.host = "127.0.0.1";
  fc.port = u.ingest_port;
  fc.connections = (int)u.f.connections;
  int batch = 100;
  if (u.f.rate > 0 && u.f.rate / 100 < batch) batch = (int)(u.f.rate / 100);
  fc.batch_max = batch < 1 ? 1 : batch;
  u.feed = trb_feed_create(&fc);
  if (!u.feed) {
    fprintf(stderr, "tributary up: out of memory\n");
    goto out;
  }
  u.t0_ms = trb_clock_mono_ms();
  if (pthread_create(&u.feeder, NULL, feeder_main, &u) != 0) {
    fprintf(stderr, "tributary up: cannot start the sender thread\n");
    goto out;
  }
  u.feeder_started = true;
  int64_t period = u.f.interval > 0 ? u.f.interval : u.tty ? 1000 : 5000;
  int drawn = 0;
  int64_t next_draw = trb_clock_mono_ms() + period;
  int64_t settle_deadline = 0;
  bool interrupted = false, child_died = false;
  const char *dead = NULL;
  for (;;) {
    sleep_ms(100);
    if (g_stop) {
      interrupted = true;
      break;
    }
    if (!children_alive(&u, &dead)) {
      child_died = true;
      break;
    }
    bool done = __atomic_load_n(&u.feed_done, __ATOMIC_ACQUIRE);
    bool settled = false;
    if (done) {
      if (!settle_deadline)
        settle_deadline = trb_clock_mono_ms() + u.f.settle_timeout;
      trb_up_snapshot_scrape(&now, u.ingest_port, u.stream_ports, N_STREAMS,
                             5000);
      trb_up_snapshot_diff(&now, &base, &d);
      trb_feed_stats_t fs;
      trb_feed_stats(u.feed, &fs);
      settled = d.rows + d.dead >= (double)fs.accepted && d.in_flight == 0;
      if (settled || trb_clock_mono_ms() >= settle_deadline) break;
    }
    if (trb_clock_mono_ms() >= next_draw) {
      trb_up_snapshot_scrape(&now, u.ingest_port, u.stream_ports, N_STREAMS,
                             5000);
      trb_up_snapshot_diff(&now, &base, &d);
      progress(&u, &d, &drawn, false);
      next_draw += period;
    }
  }
  if (interrupted) {
    printf("\ntributary up: stopping (Ctrl-C)...\n");
    trb_feed_cancel(u.feed);
  }
  if (u.feeder_started) {
    pthread_join(u.feeder, NULL);
    u.feeder_started = false;
  }
  trb_up_snapshot_scrape(&now, u.ingest_port, u.stream_ports, N_STREAMS, 5000);
  trb_up_snapshot_diff(&now, &base, &d);
  if (u.tty && drawn) progress(&u, &d, &drawn, true);
  if (u.dls && !interrupted && !child_died) {
    int64_t until = trb_clock_mono_ms() + 10000;
    while (!g_stop && (double)trb_up_deadletters_count(u.dls) < d.dead &&
           trb_clock_mono_ms() < until)
      sleep_ms(50);
  }
  if (child_died) {
    fprintf(stderr, "tributary up: %s exited unexpectedly:\n", dead);
    for (int i = 0; i < N_STREAMS; i++)
      if (strcmp(u.streams[i].name, dead) == 0)
        trb_up_child_print_tail(&u.streams[i], 10, stderr);
    if (strcmp(dead, "ingest") == 0) trb_up_child_print_tail(&u.ingest, 10, stderr);
    if (strcmp(dead, "emulator") == 0) trb_up_child_print_tail(&u.emu, 10, stderr);
  }
  rc = summary(&u, &d, interrupted);
  if (child_died) rc = 1;
  if (!interrupted && !child_died && u.f.keep_running) {
    printf("\nThe pipeline keeps running (Ctrl-C stops it):\n"
           "  curl -X POST http://127.0.0.1:%d/events -H 'Content-Type: "
           "application/json' -d '{\"event_type\": \"inventory\", "
           "\"inventory_id\": \"inv-1\", \"product_id\": \"prod-001\", "
           "\"quantity_change\": 5, \"reason\": \"restock\", \"timestamp\": "
           "\"2025-01-15T10:31:00Z\"}'\n"
           "  PUBSUB_EMULATOR_HOST=%s BIGQUERY_STORAGE_EMULATOR_HOST=%s\n",
           u.ingest_port, u.pubsub_host, u.bq_host);
    fflush(stdout);
    while (!g_stop && children_alive(&u, &dead)) sleep_ms(200);
  }
  if (interrupted) rc = 130;
out:
  if (u.feeder_started) {
    trb_feed_cancel(u.feed);
    pthread_join(u.feeder, NULL);
  }
  trb_up_deadletters_destroy(u.dls, 5000);
  if (u.ch) trb_rpc_channel_destroy(u.ch);
  if (u.loop) trb_rpc_loop_destroy(u.loop);
  if (u.rpc_inited) trb_rpc_shutdown();
  stop_all(&u);
  trb_feed_destroy(u.feed);
  trb_gen_source_destroy(u.src);
  trb_free(corpus);
  trb_config_free(&kTable, &u.f);
  return rc;
}
