/*
 * stream_cmd.c — `tributary stream` (see stream_cmd.h).
 */
#include "src/cli/stream_cmd.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/common/alloc.h"
#include "src/common/log.h"
#include "src/rpc/rpc.h"
#include "src/streamer/pipeline.h"
#include "src/streamer/ops_http.h"
#include "src/streamer/streamer.h"

#define STREAM_USAGE                                                        \
  "tributary stream [--pipeline FILE] [--<setting> VALUE ...]\n"            \
  "\n"                                                                      \
  "Streams a Pub/Sub subscription into BigQuery tables (docs/streamer.md).\n" \
  "The pipeline file (JSON) also holds `routes`, `default_table` and\n"     \
  "`tables`; the settings below may be given in it, as\n"                   \
  "TRIBUTARY_STREAM_<SETTING> environment variables, or as flags\n"         \
  "(flags win over the environment, which wins over the file)."

static void usage(FILE *out) {
  trb_buf_t b = TRB_BUF_INIT;
  trb_config_help(&trb_pipeline_table, TRB_PIPELINE_ENV_PREFIX, &b, NULL);
  fprintf(out, "usage: %s\n\n%.*s", STREAM_USAGE, (int)b.len,
          b.data ? b.data : "");
  trb_buf_deinit(&b);
}

/* Flags after the file and the environment: --key value / --key=value. */
static int apply_flags(trb_pipeline_t *p, int argc, char **argv,
                       const char **pipeline_file, bool *help) {
  trb_config_seen_t *seen = trb_config_seen_create(&trb_pipeline_table);
  int rc = 0;
  /* First pass: --pipeline and --help only (the file is applied first). */
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) *help = true;
    if (!strcmp(argv[i], "--pipeline") && i + 1 < argc) *pipeline_file = argv[++i];
    else if (!strncmp(argv[i], "--pipeline=", 11)) *pipeline_file = argv[i] + 11;
  }
  if (*help) goto out;
  trb_status_t st = {0};
  if (*pipeline_file &&
      trb_pipeline_load_file(p, *pipeline_file, &st) != GRPC_STATUS_OK) {
    fprintf(stderr, "tributary stream: %s\n", st.msg);
    rc = 2;
    goto out;
  }
  if (trb_config_apply_env(&trb_pipeline_table, p, TRB_PIPELINE_ENV_PREFIX,
                           &st) != GRPC_STATUS_OK) {
    fprintf(stderr, "tributary stream: %s\n", st.msg);
    rc = 2;
    goto out;
  }
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--pipeline")) {
      i++;
      continue;
    }
    if (!strncmp(a, "--pipeline=", 11)) continue;
    if (strncmp(a, "--", 2) != 0) {
      fprintf(stderr, "tributary stream: unexpected argument \"%s\"\n", a);
      rc = 2;
      goto out;
    }
    char key[128];
    const char *eq = strchr(a + 2, '=');
    size_t kl = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
    if (kl >= sizeof key) kl = sizeof key - 1;
    memcpy(key, a + 2, kl);
    key[kl] = 0;
    for (char *c = key; *c; c++)
      if (*c == '-') *c = '_';
    const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
    if (!val) {
      fprintf(stderr, "tributary stream: flag --%s needs a value\n", key);
      rc = 2;
      goto out;
    }
    char src[160];
    snprintf(src, sizeof src, "flag --%s", key);
    if (trb_config_set(&trb_pipeline_table, p, seen, key, val, src, &st) !=
        GRPC_STATUS_OK) {
      fprintf(stderr, "tributary stream: %s\n", st.msg);
      rc = 2;
      goto out;
    }
  }
out:
  trb_config_seen_destroy(seen);
  return rc;
}

/* How a channel authenticates, for the start-up log line. */
static const char *creds_name(const trb_rpc_channel_config_t *c) {
  if (c->creds == TRB_RPC_CREDS_INSECURE) return "emulator, plaintext";
  if (c->creds == TRB_RPC_CREDS_GOOGLE_DEFAULT)
    return "TLS + Application Default Credentials";
  return c->bearer_token_file ? "TLS + access token file" : "TLS";
}

int trb_cli_stream(int argc, char **argv) {
  trb_pipeline_t p = {0};
  trb_status_t st = {0};
  if (trb_pipeline_defaults(&p, &st) != GRPC_STATUS_OK) {
    fprintf(stderr, "tributary stream: %s\n", st.msg);
    return 2;
  }
  bool help = false;
  const char *file = NULL;
  int rc = apply_flags(&p, argc, argv, &file, &help);
  if (help) {
    usage(stdout);
    trb_pipeline_free(&p);
    return 0;
  }
  if (rc == 0 && trb_pipeline_finish(&p, &st) != GRPC_STATUS_OK) {
    fprintf(stderr, "tributary stream: %s%s%s\n", file ? file : "",
            file ? ": " : "", st.msg);
    rc = 2;
  }
  if (rc) {
    trb_pipeline_free(&p);
    return rc;
  }
  trb_log_init_from_env(NULL);

  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);
  signal(SIGPIPE, SIG_IGN);

  trb_rpc_init();
  trb_rpc_channel_config_t pc = {0}, bc = {0};
  (void)trb_rpc_channel_config_from_env(&pc, "pubsub.googleapis.com:443",
                                                "PUBSUB_EMULATOR_HOST");
  (void)trb_rpc_channel_config_from_env(
      &bc, "bigquerystorage.googleapis.com:443",
      "BIGQUERY_STORAGE_EMULATOR_HOST");
  trb_rpc_channel_t *ps = NULL, *bq = NULL;
  trb_streamer_t *s = NULL;
  trb_stream_ops_t *ops = NULL;
  rc = 1;
  /* The ops endpoints come up first: /healthz answers during a long WAL
   * replay, /readyz says 503 until the streamer is started. */
  if (p.http_port >= 0) {
    if (trb_stream_ops_start(NULL, (int)p.http_port, &ops, &st) !=
        GRPC_STATUS_OK) {
      fprintf(stderr, "tributary stream: %s\n", st.msg);
      goto out;
    }
    printf("tributary stream: ops http on port %d\n",
           trb_stream_ops_port(ops));
    fflush(stdout);
  }
  if (trb_rpc_channel_create(&pc, &ps, &st) != GRPC_STATUS_OK ||
      trb_rpc_channel_create(&bc, &bq, &st) != GRPC_STATUS_OK) {
    fprintf(stderr, "tributary stream: channel: %s\n", st.msg);
    goto out;
  }
  TRB_LOG(TRB_LOG_INFO, "stream", "Pub/Sub at %s (%s), BigQuery at %s (%s)",
          pc.target, creds_name(&pc), bc.target, creds_name(&bc));
  trb_streamer_opts_t o = {ps, bq, 0};
  const char *mps = getenv("TRIBUTARY_TEST_MS_PER_SECOND");
  if (mps && *mps) o.ms_per_second = atoi(mps);
  if (trb_streamer_start(&p, &o, &s, &st) != GRPC_STATUS_OK) {
    fprintf(stderr, "tributary stream: %s (%s)\n", st.msg,
            trb_status_code_name(st.code));
    goto out;
  }
  if (ops) trb_stream_ops_attach(ops, s);
  printf("tributary stream: streaming %s\n", p.subscription);
  fflush(stdout);
  int sig = 0;
  sigwait(&stop, &sig);
  TRB_LOG(TRB_LOG_INFO, "stream", "%s: draining (grace period %lld ms)",
          strsignal(sig), (long long)p.grace_period_ms);
  rc = trb_streamer_stop(s, p.grace_period_ms, &st) == GRPC_STATUS_OK ? 0 : 1;
  if (rc) TRB_LOG(TRB_LOG_WARNING, "stream", "%s", st.msg);
out:
  /* After the drain (/metrics and /readyz 503 stay up during it), before
   * the streamer is freed. */
  trb_stream_ops_destroy(ops);
  trb_streamer_destroy(s);
  if (ps) trb_rpc_channel_destroy(ps);
  if (bq) trb_rpc_channel_destroy(bq);
  trb_rpc_shutdown();
  trb_pipeline_free(&p);
  return rc;
}
