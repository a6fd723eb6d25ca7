/*
 * gen_cmd.c — thin main for `tributary gen`.
 */
#include "src/cli/gen_cmd.h"

#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "src/cli/flags.h"
#include "src/common/alloc.h"
#include "src/common/clock.h"
#include "src/gen/feed.h"
#include "src/gen/source.h"
#include "src/ingest/envelope.h"
#include "src/pubsub/publisher.h"
#include "src/rpc/rpc.h"

typedef struct {
  char *target;
  int64_t events;
  int64_t duration;
  double rate;
  int64_t seed;
  double malformed;
  char *replay;
  char *replay_path;
  char *project;
  int64_t connections;
  int64_t batch;
  int64_t start;
} gen_flags_t;

static const trb_config_entry_t kEntries[] = {
    {"target", TRB_CONFIG_STRING, "http://127.0.0.1:8080",
     offsetof(gen_flags_t, target), 0, 0, 0, 0, NULL,
     "Where events go: http://HOST:PORT (tributary ingest; routes /events, "
     "/ and /orders as `tributary up` sets them), pubsub (topics "
     "backend-events, issues, raw-orders at $PUBSUB_EMULATOR_HOST), or "
     "stdout (JSON Lines)."},
    {"events", TRB_CONFIG_INT64, "-1", offsetof(gen_flags_t, events), -1,
     INT64_MAX, 0, 0, "events",
     "Events to generate (-1: 1000, or 0 when files are replayed)."},
    {"duration", TRB_CONFIG_DURATION_MS, "0", offsetof(gen_flags_t, duration),
     0, INT64_MAX, 0, 0, NULL, "Generate for this long instead of --events."},
    {"rate", TRB_CONFIG_DOUBLE, "0", offsetof(gen_flags_t, rate), 0, 0, 0, 0,
     "events/s", "Send rate; 0 = as fast as the target takes them."},
    {"seed", TRB_CONFIG_INT64, "1", offsetof(gen_flags_t, seed), INT64_MIN,
     INT64_MAX, 0, 0, NULL, "Generator seed (same seed, same events)."},
    {"malformed", TRB_CONFIG_DOUBLE, "0.05", offsetof(gen_flags_t, malformed),
     0, 0, 0, 0, "fraction",
     "Fraction of backend events made malformed (0..1)."},
    {"replay", TRB_CONFIG_STRING, NULL, offsetof(gen_flags_t, replay), 0, 0, 0,
     0, NULL, "Comma-separated JSON Lines files to send first, verbatim."},
    {"replay_path", TRB_CONFIG_STRING, "/events",
     offsetof(gen_flags_t, replay_path), 0, 0, 0, 0, NULL,
     "Ingest route of replayed lines."},
    {"project", TRB_CONFIG_STRING, "local-project",
     offsetof(gen_flags_t, project), 0, 0, 0, 0, NULL,
     "Project of the topics (--target pubsub)."},
    {"connections", TRB_CONFIG_INT64, "4", offsetof(gen_flags_t, connections),
     1, 256, 0, 0, NULL, "Parallel HTTP connections."},
    {"batch", TRB_CONFIG_INT64, "100", offsetof(gen_flags_t, batch), 1, 1000,
     0, 0, "events", "Most events per HTTP request (NDJSON)."},
    {"start", TRB_CONFIG_INT64, "0", offsetof(gen_flags_t, start), 0,
     INT64_MAX / 1000000, 0, 0, "Unix seconds",
     "Event time of the first event (0 = now). With --seed it makes the "
     "output identical run after run."},
};
static const trb_config_table_t kTable = {
    "gen", kEntries, sizeof(kEntries) / sizeof(kEntries[0])};

#define USAGE                                                                 \
  "tributary gen [--target http://HOST:PORT|pubsub|stdout] [--events N | "    \
  "--duration D] [--rate R] [--seed S] [--malformed F] [--replay F1,F2] "     \
  "[FILE...]"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
  (void)sig;
  g_stop = 1;
}

/* Pace: sleep until event `i` is due at `rate` events/s from `t0_ns`. */
static void pace(int64_t t0_ns, uint64_t i, double rate) {
  if (rate <= 0) return;
  int64_t due = t0_ns + (int64_t)((double)i * 1e9 / rate);
  int64_t now = trb_clock_mono_ns();
  if (due <= now) return;
  struct timespec ts = {(time_t)((due - now) / 1000000000),
                        (long)((due - now) % 1000000000)};
  nanosleep(&ts, NULL);
}

typedef struct {
  uint64_t ok, failed;
} ps_counts_t;

static void on_published(void *user, grpc_status_code code, const char *msg,
                         const char *id) {
  (void)msg;
  (void)id;
  ps_counts_t *c = user;
  if (code == GRPC_STATUS_OK) {
    __atomic_fetch_add(&c->ok, 1, __ATOMIC_RELAXED);
  } else {
    __atomic_fetch_add(&c->failed, 1, __ATOMIC_RELAXED);
  }
}

int trb_cli_gen(int argc, char **argv) {
  gen_flags_t f = {0};
  trb_status_t st = {0};
  char *pos[256];
  int npos = 0;
  bool help = false;
  if (trb_cli_flags_parse(&kTable, &f, "TRB_GEN_", argc, argv, pos, 256, &npos,
                          &help, &st) != GRPC_STATUS_OK) {
    fprintf(stderr, "tributary gen: %s\n", st.msg);
    trb_config_free(&kTable, &f);
    return 2;
  }
  if (help) {
    trb_cli_flags_usage(&kTable, USAGE, "TRB_GEN_", false);
    trb_config_free(&kTable, &f);
    return 0;
  }
  const char *files[300];
  size_t nfiles = 0;
  char *replay = f.replay ? trb_strdup(f.replay) : NULL;
  for (char *save = NULL, *t = replay ? strtok_r(replay, ",", &save) : NULL;
       t && nfiles < 44; t = strtok_r(NULL, ",", &save))
    files[nfiles++] = t;
  for (int i = 0; i < npos; i++) files[nfiles++] = pos[i];
  int64_t events = f.events;
  if (events < 0) events = f.duration > 0 ? -1 : (nfiles ? 0 : 1000);
  trb_gen_config_t gc = {0};
  gc.seed = (uint64_t)f.seed;
  gc.malformed_fraction = f.malformed;
  gc.base_time_us = f.start > 0 ? f.start * 1000000 : trb_clock_wall_us();
  char err[512];
  trb_gen_source_t *src = trb_gen_source_create(
      files, nfiles, f.replay_path, "backend-events", &gc, events, err,
      sizeof err);
  int rc = 0;
  if (!src) {
    fprintf(stderr, "tributary gen: %s\n", err);
    trb_free(replay);
    trb_config_free(&kTable, &f);
    return 2;
  }
  enum { T_HTTP, T_PUBSUB, T_STDOUT } kind;
  char host[64] = "127.0.0.1";
  int port = 8080;
  if (strncmp(f.target, "http://", 7) == 0) {
    kind = T_HTTP;
    const char *h = f.target + 7;
    const char *colon = strchr(h, ':');
    size_t hl = colon ? (size_t)(colon - h) : strcspn(h, "/");
    if (hl == 0 || hl >= sizeof host) hl = 0;
    if (hl) {
      memcpy(host, h, hl);
      host[hl] = '\0';
    }
    port = colon ? atoi(colon + 1) : 80;
  } else if (strcmp(f.target, "pubsub") == 0) {
    kind = T_PUBSUB;
  } else if (strcmp(f.target, "stdout") == 0) {
    kind = T_STDOUT;
  } else {
    fprintf(stderr, "tributary gen: --target: want http://HOST:PORT, pubsub "
                    "or stdout, not \"%s\"\n", f.target);
    trb_gen_source_destroy(src);
    trb_free(replay);
    trb_config_free(&kTable, &f);
    return 2;
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  signal(SIGPIPE, SIG_IGN);

  trb_feed_t *feed = NULL;
  trb_rpc_loop_t *loop = NULL;
  trb_rpc_channel_t *ch = NULL;
  trb_ps_publisher_t *pubs[3] = {NULL, NULL, NULL};
  static const char *const kTopics[3] = {"backend-events", "issues",
                                         "raw-orders"};
  ps_counts_t pc = {0, 0};
  if (kind == T_HTTP) {
    trb_feed_config_t fc = {0};
    fc.host = host;
    fc.port = port;
    fc.connections = (int)f.connections;
    int batch = (int)f.batch;
    if (f.rate > 0 && f.rate / 100 < batch) batch = (int)(f.rate / 100);
    fc.batch_max = batch < 1 ? 1 : batch;
    feed = trb_feed_create(&fc);
    if (!feed) {
      fprintf(stderr, "tributary gen: out of memory\n");
      rc = 1;
      goto done;
    }
  } else if (kind == T_PUBSUB) {
    trb_rpc_init();
    trb_rpc_channel_config_t cc = {0};
    trb_rpc_channel_config_from_env(&cc, "pubsub.googleapis.com:443",
                                    "PUBSUB_EMULATOR_HOST");
    if (trb_rpc_loop_create("gen-pub", &loop, &st) != GRPC_STATUS_OK ||
        trb_rpc_channel_create(&cc, &ch, &st) != GRPC_STATUS_OK) {
      fprintf(stderr, "tributary gen: %s\n", st.msg);
      rc = 1;
      goto done;
    }
    trb_ps_publisher_config_t pcfg = {0};
    pcfg.flow = TRB_PS_FLOW_BLOCK;
    pcfg.flow_max_messages = 10000;
    pcfg.block_timeout_ms = -1;
    for (int i = 0; i < 3; i++) {
      char topic[256];
      snprintf(topic, sizeof topic, "projects/%s/topics/%s", f.project,
               kTopics[i]);
      if (trb_ps_publisher_create(loop, ch, topic, &pcfg, &pubs[i], &st) !=
          GRPC_STATUS_OK) {
        fprintf(stderr, "tributary gen: %s: %s\n", topic, st.msg);
        rc = 1;
        goto done;
      }
    }
  }
  int64_t t0 = trb_clock_mono_ns();
  int64_t end_ns = f.duration > 0 ? t0 + f.duration * 1000000 : 0;
  uint64_t n = 0, n_bad = 0;
  trb_gen_item_t it;
  trb_buf_t env = TRB_BUF_INIT;
  while (!g_stop && trb_gen_source_next(src, &it)) {
    if (end_ns && trb_clock_mono_ns() >= end_ns) break;
    if (f.rate > 0) {
      int64_t due = t0 + (int64_t)((double)n * 1e9 / f.rate);
      if (due > trb_clock_mono_ns() && feed) trb_feed_flush(feed);
      pace(t0, n, f.rate);
    }
    n++;
    n_bad += it.ev.defect != TRB_GEN_VALID;
    if (kind == T_STDOUT) {
      fwrite(it.json, 1, it.len, stdout);
      fputc('\n', stdout);
    } else if (kind == T_HTTP) {
      if (trb_feed_add(feed, it.path, it.json, it.len, it.batchable) != 0)
        break;
    } else {
      int ti = strcmp(it.topic, "issues") == 0       ? 1
               : strcmp(it.topic, "raw-orders") == 0 ? 2
                                                     : 0;
      const char *data = it.json;
      size_t len = it.len;
      if (ti == 1) {
        uint8_t rnd[16];
        char id[TRB_INGEST_UUID_LEN], ts[TRB_INGEST_TIME_LEN];
        if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd) memset(rnd, 7, 16);
        trb_ingest_uuid4_format(rnd, id);
        trb_ingest_rfc3339_ms(trb_clock_wall_us(), ts);
        trb_buf_reset(&env);
        trb_ingest_envelope_append(&env, id, TRB_INGEST_SOURCE_MANUAL, ts,
                                   it.json, it.len);
        data = env.data;
        len = env.len;
      }
      trb_ps_attr_t attr = {"event_type", it.ev.event_type};
      trb_ps_message_t m = {(const uint8_t *)data, len,
                            it.ev.event_type ? &attr : NULL,
                            it.ev.event_type ? 1u : 0u, NULL};
      if (trb_ps_publish(pubs[ti], &m, on_published, &pc, &st) !=
          GRPC_STATUS_OK) {
        __atomic_fetch_add(&pc.failed, 1, __ATOMIC_RELAXED);
      }
    }
  }
  trb_buf_deinit(&env);
  uint64_t accepted = 0, refused = 0, failed = 0;
  if (kind == T_HTTP) {
    if (!g_stop) trb_feed_finish(feed);
    trb_feed_stats_t s;
    trb_feed_stats(feed, &s);
    accepted = s.accepted;
    refused = s.refused;
    failed = s.failed + (s.queued - s.sent);
  } else if (kind == T_PUBSUB) {
    for (int i = 0; i < 3; i++)
      trb_ps_publisher_shutdown(pubs[i], 60000, NULL, &st);
    accepted = pc.ok;
    failed = pc.failed;
  } else {
    fflush(stdout);
    accepted = n;
  }
  double secs = (double)(trb_clock_mono_ns() - t0) / 1e9;
  fprintf(stderr,
          "tributary gen: %llu events (%llu malformed on purpose) in %.1f s "
          "(%.0f events/s): %llu accepted, %llu refused (4xx), %llu failed\n",
          (unsigned long long)n, (unsigned long long)n_bad, secs,
          secs > 0 ? (double)n / secs : 0.0, (unsigned long long)accepted,
          (unsigned long long)refused, (unsigned long long)failed);
  rc = failed || g_stop ? 1 : 0;
done:
  trb_feed_destroy(feed);
  for (int i = 0; i < 3; i++) trb_ps_publisher_destroy(pubs[i]);
  if (ch) trb_rpc_channel_destroy(ch);
  if (loop) trb_rpc_loop_destroy(loop);
  if (kind == T_PUBSUB) trb_rpc_shutdown();
  trb_gen_source_destroy(src);
  trb_free(replay);
  trb_config_free(&kTable, &f);
  return rc;
}
