/*
 * emulator_cmd.c — thin mains for `tributary emulator` and `tributary sql`.
 */
#include "src/cli/emulator_cmd.h"

#include <pthread.h>
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/cli/flags.h"
#include "src/common/log.h"
#include "src/emulator/bigquery/bigquery.h"
#include "src/emulator/emulator.h"

typedef struct {
  char *host;
  int64_t pubsub_port;
  int64_t bigquery_port;
  char *data_dir;
  char *project;
  char *tables;
  char *config;
  bool fsync;
  int64_t threads;
  char *tls_cert;
  char *tls_key;
  char *bearer_token;
  bool require_routing_params;
} emu_flags_t;

static const trb_config_entry_t kEmuEntries[] = {
    {"host", TRB_CONFIG_STRING, "127.0.0.1", offsetof(emu_flags_t, host), 0, 0,
     0, 0, NULL, "Address both services listen on."},
    {"pubsub_port", TRB_CONFIG_INT64, "8085", offsetof(emu_flags_t, pubsub_port),
     0, 65535, 0, 0, "port", "Pub/Sub gRPC port; 0 picks a free port."},
    {"bigquery_port", TRB_CONFIG_INT64, "9060",
     offsetof(emu_flags_t, bigquery_port), 0, 65535, 0, 0, "port",
     "BigQuery Storage Write gRPC port; 0 picks a free port."},
    {"data_dir", TRB_CONFIG_STRING, NULL, offsetof(emu_flags_t, data_dir), 0, 0,
     0, 0, NULL, "Directory for durable data; unset = in memory."},
    {"project", TRB_CONFIG_STRING, NULL, offsetof(emu_flags_t, project), 0, 0, 0,
     0, NULL, "Project for short names and tables (default: the config "
     "file's, else local-project)."},
    {"tables", TRB_CONFIG_STRING, NULL, offsetof(emu_flags_t, tables), 0, 0, 0,
     0, NULL, "Directory of <dataset>.<table>.json table files to create."},
    {"config", TRB_CONFIG_STRING, NULL, offsetof(emu_flags_t, config), 0, 0, 0,
     0, NULL, "JSON file declaring topics and subscriptions to create."},
    {"fsync", TRB_CONFIG_BOOL, "false", offsetof(emu_flags_t, fsync), 0, 0, 0, 0,
     NULL, "fsync every commit (power-loss safe; kill -9 safe without it)."},
    {"threads", TRB_CONFIG_INT64, "2", offsetof(emu_flags_t, threads), 1, 64, 0,
     0, "threads", "gRPC server threads per service."},
    {"tls_cert", TRB_CONFIG_STRING, NULL, offsetof(emu_flags_t, tls_cert), 0,
     0, 0, 0, NULL, "PEM certificate chain file: serve TLS (with --tls-key)."},
    {"tls_key", TRB_CONFIG_STRING, NULL, offsetof(emu_flags_t, tls_key), 0, 0,
     0, 0, NULL, "PEM private key file of --tls-cert."},
    {"bearer_token", TRB_CONFIG_STRING, NULL,
     offsetof(emu_flags_t, bearer_token), 0, 0, 0, 0, NULL,
     "Require `authorization: Bearer <token>` on every call "
     "(UNAUTHENTICATED otherwise)."},
    {"require_routing_params", TRB_CONFIG_BOOL, "false",
     offsetof(emu_flags_t, require_routing_params), 0, 0, 0, 0, NULL,
     "Refuse routed calls without their x-goog-request-params key "
     "(INVALID_ARGUMENT)."},
};
static const trb_config_table_t kEmuTable = {
    "emulator", kEmuEntries, sizeof(kEmuEntries) / sizeof(kEmuEntries[0])};

#define EMU_USAGE                                                         \
  "tributary emulator [--host 127.0.0.1] [--pubsub-port 8085]"            \
  " [--bigquery-port 9060] [--data-dir DIR] [--project PROJECT]"          \
  " [--tables DIR] [--config FILE] [--fsync]"                             \
  " [--tls-cert FILE --tls-key FILE] [--bearer-token TOKEN]"

/* Whole file as a NUL-terminated heap string, or NULL (errno set). */
static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  while (buf != NULL) {
    n += fread(buf + n, 1, cap - 1 - n, f);
    if (ferror(f)) {
      free(buf);
      buf = NULL;
      break;
    }
    if (feof(f)) break;
    if (n == cap - 1) {
      char *bigger = realloc(buf, cap * 2);
      if (bigger == NULL) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = bigger;
      cap *= 2;
    }
  }
  fclose(f);
  if (buf != NULL) buf[n] = '\0';
  return buf;
}

int trb_cli_emulator(int argc, char **argv) {
  emu_flags_t f = {0};
  trb_status_t st = {0};
  char *pos[1];
  int npos = 0;
  bool help = false;
  if (trb_cli_flags_parse(&kEmuTable, &f, "TRB_EMULATOR_", argc, argv, pos, 0,
                          &npos, &help, &st) != GRPC_STATUS_OK) {
    fprintf(stderr, "tributary emulator: %s\n", st.msg);
    trb_config_free(&kEmuTable, &f);
    return 2;
  }
  if (help) {
    trb_cli_flags_usage(&kEmuTable, EMU_USAGE, "TRB_EMULATOR_", false);
    trb_config_free(&kEmuTable, &f);
    return 0;
  }
  trb_log_init_from_env(NULL);

  /* Block the stop signals before any thread starts, so that only the
   * sigwait below receives them. */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);
  signal(SIGPIPE, SIG_IGN);

  trb_emulator_config_t cfg = {0};
  cfg.host = f.host;
  cfg.pubsub_port = (int)f.pubsub_port;
  cfg.bigquery_port = (int)f.bigquery_port;
  cfg.data_dir = f.data_dir;
  cfg.project = f.project;
  cfg.tables_dir = f.tables;
  cfg.config_path = f.config;
  cfg.fsync = f.fsync;
  cfg.server_threads = (int)f.threads;
  cfg.bearer_token = f.bearer_token && *f.bearer_token ? f.bearer_token : NULL;
  cfg.require_routing_params = f.require_routing_params;
  char *cert = NULL, *key = NULL;
  if ((f.tls_cert != NULL) != (f.tls_key != NULL)) {
    fprintf(stderr, "tributary emulator: --tls-cert and --tls-key go "
                    "together\n");
    trb_config_free(&kEmuTable, &f);
    return 2;
  }
  if (f.tls_cert != NULL) {
    const char *bad = NULL;
    if ((cert = slurp(f.tls_cert)) == NULL) bad = f.tls_cert;
    else if ((key = slurp(f.tls_key)) == NULL) bad = f.tls_key;
    if (bad != NULL) {
      fprintf(stderr, "tributary emulator: %s: %s\n", bad, strerror(errno));
      free(cert);
      trb_config_free(&kEmuTable, &f);
      return 2;
    }
    cfg.tls_cert_chain_pem = cert;
    cfg.tls_private_key_pem = key;
  }
  trb_emulator_t *emu = NULL;
  if (trb_emulator_start(&cfg, &emu, &st) != GRPC_STATUS_OK) {
    fprintf(stderr, "tributary emulator: %s (%s)\n", st.msg,
            trb_status_code_name(st.code));
    free(cert);
    free(key);
    trb_config_free(&kEmuTable, &f);
    return 1;
  }
  free(key); /* copied by the servers; `cert` is kept as the TLS flag */
  /* An IPv6 host needs brackets in host:port. */
  bool v6 = strchr(f.host, ':') != NULL;
  /* With TLS the *_EMULATOR_HOST variables (plaintext by definition) do
   * not apply: clients take the Google Cloud path with an endpoint override
   * (rpc.h trb_rpc_channel_config_from_env). */
  const char *ps_var = cert ? "TRIBUTARY_PUBSUB_ENDPOINT" : "PUBSUB_EMULATOR_HOST";
  const char *bq_var = cert ? "TRIBUTARY_BIGQUERY_STORAGE_ENDPOINT"
                            : "BIGQUERY_STORAGE_EMULATOR_HOST";
  printf("%s=%s%s%s:%d\n", ps_var, v6 ? "[" : "", f.host, v6 ? "]" : "",
         trb_emulator_pubsub_port(emu));
  printf("%s=%s%s%s:%d\n", bq_var, v6 ? "[" : "", f.host, v6 ? "]" : "",
         trb_emulator_bigquery_port(emu));
  fflush(stdout);

  int sig = 0;
  sigwait(&stop, &sig);
  TRB_LOG(TRB_LOG_INFO, "emulator", "%s: stopping", strsignal(sig));
  trb_emulator_stop(emu);
  TRB_LOG(TRB_LOG_INFO, "emulator", "stopped");
  free(cert);
  trb_config_free(&kEmuTable, &f);
  return 0;
}

typedef struct {
  char *data_dir;
  bool json;
} sql_flags_t;

static const trb_config_entry_t kSqlEntries[] = {
    {"data_dir", TRB_CONFIG_STRING, NULL, offsetof(sql_flags_t, data_dir), 0, 0,
     0, 0, NULL, "The emulator's --data-dir."},
    {"json", TRB_CONFIG_BOOL, "false", offsetof(sql_flags_t, json), 0, 0, 0, 0,
     NULL, "Print one JSON object per row instead of a table."},
};
static const trb_config_table_t kSqlTable = {
    "sql", kSqlEntries, sizeof(kSqlEntries) / sizeof(kSqlEntries[0])};

#define SQL_USAGE "tributary sql --data-dir DIR [--json] \"SELECT ...\""

int trb_cli_sql(int argc, char **argv) {
  sql_flags_t f = {0};
  trb_status_t st = {0};
  char *pos[1];
  int npos = 0;
  bool help = false;
  if (trb_cli_flags_parse(&kSqlTable, &f, "TRB_SQL_", argc, argv, pos, 1,
                          &npos, &help, &st) != GRPC_STATUS_OK) {
    fprintf(stderr, "tributary sql: %s\n", st.msg);
    trb_config_free(&kSqlTable, &f);
    return 2;
  }
  if (help || npos != 1 || !f.data_dir) {
    trb_cli_flags_usage(&kSqlTable, SQL_USAGE, "TRB_SQL_", !help);
    if (!help && !f.data_dir)
      fprintf(stderr, "\ntributary sql: --data-dir is required (the "
                      "emulator's data directory)\n");
    trb_config_free(&kSqlTable, &f);
    return help ? 0 : 2;
  }
  int rc = 0;
  if (trb_bqemu_sql(f.data_dir, pos[0], f.json, stdout, &st) != GRPC_STATUS_OK) {
    fprintf(stderr, "tributary sql: %s\n", st.msg);
    rc = 1;
  }
  trb_config_free(&kSqlTable, &f);
  return rc;
}
