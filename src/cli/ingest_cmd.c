/*
 * ingest_cmd.c — thin main for `tributary ingest`.
 */
#include "src/cli/ingest_cmd.h"

#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/cli/flags.h"
#include "src/common/log.h"
#include "src/ingest/ingest.h"
#include "src/rpc/rpc.h"

typedef struct {
  char *host;
  int64_t port;
  int64_t threads;
  int64_t max_connections;
  int64_t max_body;
  int64_t max_depth;
  int64_t max_batch_events;
  char *project;
  char *topic;
  char *routes;
  char *bearer_token;
  int64_t grace;
  int64_t retry_after;
  int64_t batch_delay;
  int64_t batch_max_messages;
  int64_t batch_max_bytes;
  char *flow_control;
  int64_t flow_max_messages;
  int64_t flow_max_bytes;
  int64_t block_timeout;
  int64_t publish_timeout;
  int64_t rpc_timeout;
} ingest_flags_t;

static const trb_config_entry_t kEntries[] = {
    {"host", TRB_CONFIG_STRING, "0.0.0.0", offsetof(ingest_flags_t, host), 0, 0,
     0, 0, NULL, "IPv4 address to listen on."},
    {"port", TRB_CONFIG_INT64, "-1", offsetof(ingest_flags_t, port), -1, 65535,
     0, 0, "port", "HTTP port; -1 = $PORT, else 8080; 0 picks a free port."},
    {"threads", TRB_CONFIG_INT64, "2", offsetof(ingest_flags_t, threads), 1, 256,
     0, 0, "threads", "HTTP polling threads."},
    {"max_connections", TRB_CONFIG_INT64, "256",
     offsetof(ingest_flags_t, max_connections), 1, 100000, 0, 0, "connections",
     "Most open HTTP connections."},
    {"max_body", TRB_CONFIG_SIZE_BYTES, "1MiB", offsetof(ingest_flags_t, max_body),
     1, 10 * 1024 * 1024, 0, 0, NULL,
     "Largest request body (413 above it); at most 10MiB."},
    {"max_depth", TRB_CONFIG_INT64, "64", offsetof(ingest_flags_t, max_depth), 1,
     1000, 0, 0, "levels", "Deepest JSON nesting accepted (400 above it)."},
    {"max_batch_events", TRB_CONFIG_INT64, "1000",
     offsetof(ingest_flags_t, max_batch_events), 1, 100000, 0, 0, "events",
     "Most events in one NDJSON / JSON-array request."},
    {"project", TRB_CONFIG_STRING, NULL, offsetof(ingest_flags_t, project), 0, 0,
     0, 0, NULL, "Project of topic ids (default $GOOGLE_CLOUD_PROJECT)."},
    {"topic", TRB_CONFIG_STRING, NULL, offsetof(ingest_flags_t, topic), 0, 0, 0,
     0, NULL, "Topic of POST / (wrap mode) when --routes is not given."},
    {"routes", TRB_CONFIG_STRING, NULL, offsetof(ingest_flags_t, routes), 0, 0, 0,
     0, NULL, "PATH=TOPIC[:wrap|raw|push],... e.g. "
     "\"/=issues,/events=backend-events:raw,/push=replay:push\"."},
    {"bearer_token", TRB_CONFIG_STRING, NULL,
     offsetof(ingest_flags_t, bearer_token), 0, 0, 0, 0, NULL,
     "When set, POSTs need Authorization: Bearer <token>."},
    {"grace", TRB_CONFIG_DURATION_MS, "10s", offsetof(ingest_flags_t, grace), 0,
     3600000, 0, 0, NULL, "Shutdown grace period after SIGTERM."},
    {"retry_after", TRB_CONFIG_INT64, "1", offsetof(ingest_flags_t, retry_after),
     1, 3600, 0, 0, "seconds", "Retry-After of 503 replies."},
    {"batch_delay", TRB_CONFIG_DURATION_MS, "5ms",
     offsetof(ingest_flags_t, batch_delay), 0, 10000, 0, 0, NULL,
     "Longest wait to fill a Publish batch."},
    {"batch_max_messages", TRB_CONFIG_INT64, "100",
     offsetof(ingest_flags_t, batch_max_messages), 1, 1000, 0, 0, "messages",
     "Messages per Publish request."},
    {"batch_max_bytes", TRB_CONFIG_SIZE_BYTES, "1000000",
     offsetof(ingest_flags_t, batch_max_bytes), 1, 10000000, 0, 0, NULL,
     "Bytes per Publish request."},
    {"flow_control", TRB_CONFIG_STRING, "reject",
     offsetof(ingest_flags_t, flow_control), 0, 0, 0, 0, NULL,
     "When the publish buffer is full: reject (503 at once) or block "
     "(wait up to --block-timeout)."},
    {"flow_max_messages", TRB_CONFIG_INT64, "10000",
     offsetof(ingest_flags_t, flow_max_messages), 1, 10000000, 0, 0, "messages",
     "Events accepted and not yet confirmed."},
    {"flow_max_bytes", TRB_CONFIG_SIZE_BYTES, "100MiB",
     offsetof(ingest_flags_t, flow_max_bytes), 0, 0, 0, 0, NULL,
     "Bytes accepted and not yet confirmed."},
    {"block_timeout", TRB_CONFIG_DURATION_MS, "5s",
     offsetof(ingest_flags_t, block_timeout), 0, 600000, 0, 0, NULL,
     "With --flow-control block: longest wait for room."},
    {"publish_timeout", TRB_CONFIG_DURATION_MS, "30s",
     offsetof(ingest_flags_t, publish_timeout), 1, 600000, 0, 0, NULL,
     "Retry deadline of one Publish (then 503)."},
    {"rpc_timeout", TRB_CONFIG_DURATION_MS, "10s",
     offsetof(ingest_flags_t, rpc_timeout), 1, 600000, 0, 0, NULL,
     "Deadline of one Publish attempt."},
};
static const trb_config_table_t kTable = {
    "ingest", kEntries, sizeof(kEntries) / sizeof(kEntries[0])};

#define USAGE                                                                 \
  "tributary ingest [--port 8080] (--topic T | --routes SPEC) [--project P]" \
  " [options]\n\n"                                                            \
  "Publishes to Pub/Sub at $PUBSUB_EMULATOR_HOST (plaintext) or else\n"      \
  "pubsub.googleapis.com:443 with Application Default Credentials."

int trb_cli_ingest(int argc, char **argv) {
  ingest_flags_t f = {0};
  trb_status_t st = {0};
  char *pos[1];
  int npos = 0;
  bool help = false;
  int rc = 0;
  if (trb_cli_flags_parse(&kTable, &f, "TRB_INGEST_", argc, argv, pos, 0, &npos,
                          &help, &st) != GRPC_STATUS_OK) {
    fprintf(stderr, "tributary ingest: %s\n", st.msg);
    trb_config_free(&kTable, &f);
    return 2;
  }
  if (help) {
    trb_cli_flags_usage(&kTable, USAGE, "TRB_INGEST_", false);
    trb_config_free(&kTable, &f);
    return 0;
  }
  trb_log_init_from_env(NULL);
  if (f.port < 0) {
    const char *p = getenv("PORT");
    char *end = NULL;
    long v = p && *p ? strtol(p, &end, 10) : 8080;
    if (p && *p && (*end != '\0' || v < 0 || v > 65535)) {
      fprintf(stderr, "tributary ingest: bad $PORT \"%s\"\n", p);
      trb_config_free(&kTable, &f);
      return 2;
    }
    f.port = v;
  }
  const char *project = f.project;
  if (!project || !*project) project = getenv("GOOGLE_CLOUD_PROJECT");
  bool block = false;
  if (strcmp(f.flow_control, "block") == 0) {
    block = true;
  } else if (strcmp(f.flow_control, "reject") != 0) {
    fprintf(stderr, "tributary ingest: --flow-control: want reject or block, "
                    "not \"%s\"\n", f.flow_control);
    trb_config_free(&kTable, &f);
    return 2;
  }

  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);
  signal(SIGPIPE, SIG_IGN);

  trb_rpc_init();
  trb_rpc_loop_t *loop = NULL;
  trb_rpc_channel_t *ch = NULL;
  trb_ingest_t *ing = NULL;
  trb_rpc_channel_config_t cc = {0};
  bool emu = trb_rpc_channel_config_from_env(&cc, "pubsub.googleapis.com:443",
                                             "PUBSUB_EMULATOR_HOST");
  if (trb_rpc_loop_create("ingest-pub", &loop, &st) != GRPC_STATUS_OK ||
      trb_rpc_channel_create(&cc, &ch, &st) != GRPC_STATUS_OK) {
    fprintf(stderr, "tributary ingest: %s\n", st.msg);
    rc = 1;
    goto done;
  }
  trb_ingest_config_t cfg = {0};
  cfg.host = f.host;
  cfg.port = (int)f.port;
  cfg.threads = (int)f.threads;
  cfg.max_connections = (int)f.max_connections;
  cfg.max_body_bytes = f.max_body;
  cfg.max_depth = (int)f.max_depth;
  cfg.max_batch_events = (int)f.max_batch_events;
  cfg.project = project;
  cfg.topic = f.topic;
  cfg.routes = f.routes;
  cfg.bearer_token = f.bearer_token;
  cfg.retry_after_s = (int)f.retry_after;
  cfg.publisher.max_delay_ms = f.batch_delay > 0 ? f.batch_delay : -1;
  cfg.publisher.max_messages = (int)f.batch_max_messages;
  cfg.publisher.max_bytes = f.batch_max_bytes;
  cfg.publisher.flow = block ? TRB_PS_FLOW_BLOCK : TRB_PS_FLOW_REJECT;
  cfg.publisher_flow_set = true;
  cfg.publisher.flow_max_messages = f.flow_max_messages;
  cfg.publisher.flow_max_bytes = f.flow_max_bytes;
  cfg.publisher.block_timeout_ms = f.block_timeout;
  cfg.publisher.retry_deadline_ms = f.publish_timeout;
  cfg.publisher.rpc_timeout_ms = f.rpc_timeout;
  if (trb_ingest_start(&cfg, loop, ch, &ing, &st) != GRPC_STATUS_OK) {
    fprintf(stderr, "tributary ingest: %s (%s)\n", st.msg,
            trb_status_code_name(st.code));
    rc = 1;
    goto done;
  }
  TRB_LOG(TRB_LOG_INFO, "ingest", "serving on %s:%d, publishing to %s",
          f.host, trb_ingest_port(ing), emu ? cc.target : "Google Cloud Pub/Sub");
  printf("INGEST_URL=http://%s:%d\n",
         strcmp(f.host, "0.0.0.0") == 0 ? "127.0.0.1" : f.host,
         trb_ingest_port(ing));
  fflush(stdout);

  int sig = 0;
  sigwait(&stop, &sig);
  TRB_LOG(TRB_LOG_INFO, "ingest", "%s: draining (grace %lld ms)", strsignal(sig),
          (long long)f.grace);
  if (trb_ingest_shutdown(ing, f.grace, &st) != GRPC_STATUS_OK) {
    TRB_LOG(TRB_LOG_WARNING, "ingest",
            "some accepted events were not confirmed (answered non-2xx): %s",
            st.msg);
    rc = 1;
  }
done:
  trb_ingest_destroy(ing);
  trb_rpc_channel_destroy(ch);
  trb_rpc_loop_destroy(loop);
  trb_rpc_shutdown();
  trb_config_free(&kTable, &f);
  return rc;
}
