/*
 * emulator.c — wires the two services, their databases, the fault registry
 * and the declared resources into one start/stop pair.
 */
#include "src/emulator/emulator.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "src/bigquery/schema.h"
#include "src/common/alloc.h"
#include "src/common/log.h"
#include "src/emulator/admin.h"
#include "src/emulator/config.h"
#include "src/emulator/db.h"
#include "src/rpc/rpc.h"

struct trb_emulator_s {
  char project[128];
  int lock_fd;
  trb_faults_t *faults;
  trb_db_t *ps_db, *bq_db;
  trb_psemu_t *ps;
  trb_bqemu_t *bq;
  trb_rpc_server_t *ps_srv, *bq_srv;
  int ps_port, bq_port;
  bool rpc_inited;
  bool require_routing;
  pthread_mutex_t auth_mu; /* guards auth_header */
  char *auth_header;       /* "Bearer <token>"; NULL = no check */
};

/* Google's answers to a call without / with a wrong access token. */
#define MISSING_CREDENTIAL                                                   \
  "Request is missing required authentication credential. Expected OAuth 2 " \
  "access token, login cookie or other valid authentication credential. "    \
  "See https://developers.google.com/identity/sign-in/web/devconsole-project."
#define INVALID_CREDENTIAL                                                   \
  "Request had invalid authentication credentials. Expected OAuth 2 access " \
  "token, login cookie or other valid authentication credential. See "       \
  "https://developers.google.com/identity/sign-in/web/devconsole-project."

/* The routing key each routed method's x-goog-request-params must carry
 * (GAPIC routing annotations of google/pubsub/v1/pubsub.proto and
 * google/cloud/bigquery/storage/v1/storage.proto). */
static const struct {
  const char *method;
  const char *key;
} kRouting[] = {
    {"/google.pubsub.v1.Publisher/Publish", "topic"},
    {"/google.pubsub.v1.Subscriber/Pull", "subscription"},
    {"/google.pubsub.v1.Subscriber/StreamingPull", "subscription"},
    {"/google.pubsub.v1.Subscriber/Acknowledge", "subscription"},
    {"/google.pubsub.v1.Subscriber/ModifyAckDeadline", "subscription"},
    {"/google.cloud.bigquery.storage.v1.BigQueryWrite/AppendRows", "write_stream"},
    {"/google.cloud.bigquery.storage.v1.BigQueryWrite/FlushRows", "write_stream"},
    {"/google.cloud.bigquery.storage.v1.BigQueryWrite/CreateWriteStream", "parent"},
    {"/google.cloud.bigquery.storage.v1.BigQueryWrite/BatchCommitWriteStreams",
     "parent"},
    {"/google.cloud.bigquery.storage.v1.BigQueryWrite/GetWriteStream", "name"},
    {"/google.cloud.bigquery.storage.v1.BigQueryWrite/FinalizeWriteStream", "name"},
};

/* Whether `params` ("k1=v1&k2=v2", length n) has `key` with a non-empty
 * value. */
static bool has_param(const char *params, size_t n, const char *key) {
  size_t k = strlen(key);
  size_t i = 0;
  while (i < n) {
    size_t end = i;
    while (end < n && params[end] != '&') end++;
    if (end - i > k + 1 && memcmp(params + i, key, k) == 0 &&
        params[i + k] == '=') {
      return true;
    }
    i = end + 1;
  }
  return false;
}

static grpc_status_code check_routing(trb_rpc_server_call_t *call, char *msg,
                                      size_t cap) {
  const char *method = trb_rpc_server_call_method(call);
  for (size_t i = 0; i < sizeof(kRouting) / sizeof(kRouting[0]); i++) {
    if (strcmp(method, kRouting[i].method) != 0) continue;
    size_t n = 0;
    const char *p =
        trb_rpc_server_call_metadata(call, "x-goog-request-params", &n);
    if (p == NULL || !has_param(p, n, kRouting[i].key)) {
      snprintf(msg, cap,
               "%s: the x-goog-request-params routing header has no %s= "
               "(got \"%.*s\")",
               method, kRouting[i].key, p ? (int)(n > 200 ? 200 : n) : 0,
               p ? p : "");
      return GRPC_STATUS_INVALID_ARGUMENT;
    }
    return GRPC_STATUS_OK;
  }
  return GRPC_STATUS_OK;
}

static grpc_status_code authorize(void *user, trb_rpc_server_call_t *call,
                                  char *msg, size_t cap) {
  trb_emulator_t *emu = user;
  size_t n = 0;
  const char *got = trb_rpc_server_call_metadata(call, "authorization", &n);
  grpc_status_code code = GRPC_STATUS_OK;
  pthread_mutex_lock(&emu->auth_mu);
  if (emu->auth_header != NULL) {
    if (got == NULL) {
      code = GRPC_STATUS_UNAUTHENTICATED;
      snprintf(msg, cap, "%s", MISSING_CREDENTIAL);
    } else if (n != strlen(emu->auth_header) ||
               memcmp(got, emu->auth_header, n) != 0) {
      code = GRPC_STATUS_UNAUTHENTICATED;
      snprintf(msg, cap, "%s", INVALID_CREDENTIAL);
    }
  }
  pthread_mutex_unlock(&emu->auth_mu);
  if (code != GRPC_STATUS_OK) {
    TRB_LOG(TRB_LOG_INFO, "emulator", "%s from %s: %s",
            trb_rpc_server_call_method(call), trb_rpc_server_call_peer(call),
            got == NULL ? "no authorization header" : "wrong bearer token");
    return code;
  }
  if (emu->require_routing) {
    code = check_routing(call, msg, cap);
    if (code != GRPC_STATUS_OK) {
      TRB_LOG(TRB_LOG_WARNING, "emulator", "%s", msg);
    }
  }
  return code;
}

static char *make_auth_header(const char *token) {
  size_t n = strlen(token);
  char *h = trb_malloc(n + 8);
  if (h == NULL) return NULL;
  memcpy(h, "Bearer ", 7);
  memcpy(h + 7, token, n + 1);
  return h;
}

grpc_status_code trb_emulator_set_bearer_token(trb_emulator_t *emu,
                                               const char *token,
                                               trb_status_t *st) {
  char *h = NULL;
  if (token != NULL && (h = make_auth_header(token)) == NULL) {
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                          "bearer token: out of memory");
  }
  pthread_mutex_lock(&emu->auth_mu);
  char *old = emu->auth_header;
  emu->auth_header = h;
  pthread_mutex_unlock(&emu->auth_mu);
  trb_free(old);
  return GRPC_STATUS_OK;
}

static grpc_status_code lock_data_dir(trb_emulator_t *emu, const char *dir,
                                      trb_status_t *st) {
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
    int e = errno;
    return trb_status_set(st, GRPC_STATUS_UNAVAILABLE,
                          "data directory %s: %s", dir, strerror(e));
  }
  char path[4096];
  snprintf(path, sizeof(path), "%s/LOCK", dir);
  emu->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (emu->lock_fd < 0) {
    int e = errno;
    return trb_status_set(st, GRPC_STATUS_UNAVAILABLE, "%s: %s", path,
                          strerror(e));
  }
  if (flock(emu->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    char pid[32] = "";
    ssize_t n = pread(emu->lock_fd, pid, sizeof(pid) - 1, 0);
    pid[n > 0 ? n : 0] = '\0';
    pid[strcspn(pid, "\n")] = '\0';
    return trb_status_set(st, GRPC_STATUS_FAILED_PRECONDITION,
                          "data directory %s is in use by another emulator "
                          "(pid %s)", dir, *pid ? pid : "unknown");
  }
  char pid[32];
  int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
  if (ftruncate(emu->lock_fd, 0) != 0 || pwrite(emu->lock_fd, pid, (size_t)n, 0) != n) {
    TRB_LOG(TRB_LOG_WARNING, "emulator", "cannot write pid to %s", path);
  }
  return GRPC_STATUS_OK;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static grpc_status_code read_file(const char *path, char **out, size_t *len,
                                  trb_status_t *st) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    int e = errno;
    return trb_status_set(st, trb_status_from_errno(e), "%s: %s", path, strerror(e));
  }
  struct stat sb;
  if (fstat(fileno(f), &sb) != 0 || sb.st_size > (64 << 20)) {
    fclose(f);
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "%s: not a regular file under 64 MiB", path);
  }
  char *buf = trb_malloc((size_t)sb.st_size + 1);
  if (!buf) {
    fclose(f);
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "%s", path);
  }
  size_t n = fread(buf, 1, (size_t)sb.st_size, f);
  fclose(f);
  buf[n] = '\0';
  *out = buf;
  *len = n;
  return GRPC_STATUS_OK;
}

/* One table file: "<dataset>.<table>.json". */
static grpc_status_code create_table_file(trb_emulator_t *emu, const char *dir,
                                          const char *file, trb_status_t *st) {
  char path[4096];
  snprintf(path, sizeof(path), "%s/%s", dir, file);
  size_t flen = strlen(file) - strlen(".json");
  const char *dot = memchr(file, '.', flen);
  if (!dot || dot == file || dot + 1 >= file + flen ||
      memchr(dot + 1, '.', (size_t)(file + flen - dot - 1))) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "%s: table files are named <dataset>.<table>.json",
                          path);
  }
  char dataset[256], table[1024];
  snprintf(dataset, sizeof(dataset), "%.*s", (int)(dot - file), file);
  snprintf(table, sizeof(table), "%.*s", (int)(file + flen - dot - 1), dot + 1);

  char *text = NULL;
  size_t len = 0;
  grpc_status_code code = read_file(path, &text, &len, st);
  if (code != GRPC_STATUS_OK) return code;
  trb_bq_table_t *def = NULL;
  code = trb_bq_table_parse_json(text, len, &def, st);
  trb_free(text);
  if (code != GRPC_STATUS_OK) {
    trb_status_prefix(st, "%s", path);
    return code;
  }
  code = trb_bqemu_create_table(emu->bq, dataset, table, def, st);
  trb_bq_table_free(def);
  if (code == GRPC_STATUS_ALREADY_EXISTS) return GRPC_STATUS_OK;
  if (code != GRPC_STATUS_OK) trb_status_prefix(st, "%s", path);
  return code;
}

static grpc_status_code create_tables(trb_emulator_t *emu, const char *dir,
                                      trb_status_t *st) {
  DIR *d = opendir(dir);
  if (!d) {
    int e = errno;
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "tables directory %s: %s", dir, strerror(e));
  }
  char **names = NULL;
  size_t n = 0, cap = 0;
  grpc_status_code code = GRPC_STATUS_OK;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    size_t l = strlen(de->d_name);
    if (de->d_name[0] == '.' || l <= 5 || strcmp(de->d_name + l - 5, ".json") != 0)
      continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      char **nn = trb_realloc(names, cap * sizeof(*names));
      if (!nn) {
        code = trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "tables");
        break;
      }
      names = nn;
    }
    names[n] = trb_strdup(de->d_name);
    if (!names[n]) {
      code = trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "tables");
      break;
    }
    n++;
  }
  closedir(d);
  if (n) qsort(names, n, sizeof(*names), cmp_names);
  for (size_t i = 0; i < n; i++) {
    if (code == GRPC_STATUS_OK) code = create_table_file(emu, dir, names[i], st);
    trb_free(names[i]);
  }
  trb_free(names);
  return code;
}

static grpc_status_code declare_config(trb_emulator_t *emu,
                                       const trb_emu_file_t *cf,
                                       const char *origin, trb_status_t *st) {
  for (size_t i = 0; i < cf->n_topics; i++) {
    grpc_status_code code = trb_psemu_create_topic(emu->ps, &cf->topics[i], st);
    if (code != GRPC_STATUS_OK && code != GRPC_STATUS_ALREADY_EXISTS) {
      trb_status_prefix(st, "%s: topics[%zu]", origin, i);
      return code;
    }
  }
  for (size_t i = 0; i < cf->n_subscriptions; i++) {
    grpc_status_code code =
        trb_psemu_create_subscription(emu->ps, &cf->subscriptions[i], st);
    if (code != GRPC_STATUS_OK && code != GRPC_STATUS_ALREADY_EXISTS) {
      trb_status_prefix(st, "%s: subscriptions[%zu]", origin, i);
      return code;
    }
  }
  return GRPC_STATUS_OK;
}

static grpc_status_code start_server(trb_emulator_t *emu,
                                     const trb_emulator_config_t *cfg, int port,
                                     trb_rpc_server_t **srv, trb_status_t *st) {
  trb_rpc_server_config_t sc = {0};
  sc.host = cfg->host ? cfg->host : "127.0.0.1";
  sc.port = port;
  sc.n_threads = cfg->server_threads > 0 ? cfg->server_threads : 2;
  sc.tls_cert_chain_pem = cfg->tls_cert_chain_pem;
  sc.tls_private_key_pem = cfg->tls_private_key_pem;
  sc.authorize = authorize;
  sc.authorize_user = emu;
  return trb_rpc_server_create(&sc, srv, st);
}

static grpc_status_code start(trb_emulator_t *emu,
                              const trb_emulator_config_t *cfg,
                              trb_status_t *st) {
  grpc_status_code code = GRPC_STATUS_OK;
  trb_emu_file_t cf = {0};
  const char *tables_dir = cfg->tables_dir;
  if (cfg->config_path) {
    code = trb_emu_file_load(cfg->config_path, cfg->project, cfg->project != NULL,
                             &cf, st);
    if (code != GRPC_STATUS_OK) return code;
    if (!tables_dir) tables_dir = cf.tables_dir;
  }
  const char *project = cfg->project ? cfg->project
                        : cf.project ? cf.project
                                     : "local-project";
  snprintf(emu->project, sizeof(emu->project), "%s", project);

  emu->faults = trb_faults_create();
  if (!emu->faults) code = trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "faults");

  char *ps_path = NULL, *bq_path = NULL;
  if (code == GRPC_STATUS_OK && cfg->data_dir) {
    code = lock_data_dir(emu, cfg->data_dir, st);
    if (code == GRPC_STATUS_OK) {
      size_t n = strlen(cfg->data_dir) + 32;
      ps_path = trb_malloc(n);
      bq_path = trb_bqemu_db_path(cfg->data_dir);
      if (ps_path) snprintf(ps_path, n, "%s/pubsub.sqlite", cfg->data_dir);
      if (!ps_path || !bq_path)
        code = trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "paths");
    }
  }
  if (code == GRPC_STATUS_OK) {
    trb_db_options_t o = {.fsync = cfg->fsync, .name = "pubsub"};
    code = trb_db_open(ps_path, &o, &emu->ps_db, st);
  }
  if (code == GRPC_STATUS_OK) {
    trb_db_options_t o = {.fsync = cfg->fsync, .name = "bigquery"};
    code = trb_db_open(bq_path, &o, &emu->bq_db, st);
  }
  trb_free(ps_path);
  trb_free(bq_path);

  if (code == GRPC_STATUS_OK) {
    trb_psemu_config_t pc = {0};
    pc.db = emu->ps_db;
    pc.project = emu->project;
    pc.faults = emu->faults;
    pc.test_ms_per_second = cfg->test_ms_per_second;
    code = trb_psemu_create(&pc, &emu->ps, st);
  }
  if (code == GRPC_STATUS_OK) {
    trb_bqemu_config_t bc = {0};
    bc.db = emu->bq_db;
    bc.data_dir = cfg->data_dir;
    bc.project = emu->project;
    bc.faults = emu->faults;
    code = trb_bqemu_create(&bc, &emu->bq, st);
  }
  if (code == GRPC_STATUS_OK) code = declare_config(emu, &cf, cfg->config_path, st);
  if (code == GRPC_STATUS_OK && tables_dir) code = create_tables(emu, tables_dir, st);
  trb_emu_file_deinit(&cf);

  if (code == GRPC_STATUS_OK) {
    trb_rpc_init();
    emu->rpc_inited = true;
    code = start_server(emu, cfg, cfg->pubsub_port, &emu->ps_srv, st);
  }
  if (code == GRPC_STATUS_OK) code = start_server(emu, cfg, cfg->bigquery_port, &emu->bq_srv, st);
  if (code == GRPC_STATUS_OK) code = trb_psemu_register(emu->ps, emu->ps_srv, st);
  if (code == GRPC_STATUS_OK) code = trb_bqemu_register(emu->bq, emu->bq_srv, st);
  if (code == GRPC_STATUS_OK) code = trb_emu_admin_register(emu->ps_srv, emu->faults, st);
  if (code == GRPC_STATUS_OK) code = trb_emu_admin_register(emu->bq_srv, emu->faults, st);
  if (code == GRPC_STATUS_OK) {
    code = trb_rpc_server_start(emu->ps_srv, &emu->ps_port, st);
    if (code != GRPC_STATUS_OK) trb_status_prefix(st, "Pub/Sub port %d", cfg->pubsub_port);
  }
  if (code == GRPC_STATUS_OK) {
    code = trb_rpc_server_start(emu->bq_srv, &emu->bq_port, st);
    if (code != GRPC_STATUS_OK) trb_status_prefix(st, "BigQuery port %d", cfg->bigquery_port);
  }
  return code;
}

grpc_status_code trb_emulator_start(const trb_emulator_config_t *cfg,
                                    trb_emulator_t **out, trb_status_t *st) {
  *out = NULL;
  trb_emulator_t *emu = trb_calloc(1, sizeof(*emu));
  if (!emu) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "emulator");
  emu->lock_fd = -1;
  emu->require_routing = cfg->require_routing_params;
  pthread_mutex_init(&emu->auth_mu, NULL);
  if (cfg->bearer_token != NULL &&
      (emu->auth_header = make_auth_header(cfg->bearer_token)) == NULL) {
    trb_emulator_stop(emu);
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "emulator");
  }
  grpc_status_code code = start(emu, cfg, st);
  if (code != GRPC_STATUS_OK) {
    trb_emulator_stop(emu);
    return code;
  }
  TRB_LOG(TRB_LOG_INFO, "emulator",
          "ready: project %s, Pub/Sub on port %d, BigQuery Storage Write on "
          "port %d, %s%s%s", emu->project, emu->ps_port, emu->bq_port,
          cfg->data_dir ? cfg->data_dir : "in memory",
          cfg->tls_cert_chain_pem ? ", TLS" : "",
          cfg->bearer_token ? ", bearer token required" : "");
  *out = emu;
  return GRPC_STATUS_OK;
}

int trb_emulator_pubsub_port(const trb_emulator_t *emu) { return emu->ps_port; }
int trb_emulator_bigquery_port(const trb_emulator_t *emu) { return emu->bq_port; }
const char *trb_emulator_project(const trb_emulator_t *emu) { return emu->project; }
trb_faults_t *trb_emulator_faults(trb_emulator_t *emu) { return emu->faults; }
trb_psemu_t *trb_emulator_pubsub(trb_emulator_t *emu) { return emu->ps; }
trb_bqemu_t *trb_emulator_bigquery(trb_emulator_t *emu) { return emu->bq; }

void trb_emulator_stop(trb_emulator_t *emu) {
  if (!emu) return;
  if (emu->ps) trb_psemu_shutdown(emu->ps);
  if (emu->bq) trb_bqemu_shutdown(emu->bq);
  trb_rpc_server_destroy(emu->ps_srv);
  trb_rpc_server_destroy(emu->bq_srv);
  /* Pub/Sub waits for its own queued db ops, then its db closes; the
   * BigQuery db is closed (running every queued append) before the
   * service those ops point into is freed. */
  trb_psemu_destroy(emu->ps);
  trb_db_close(emu->ps_db);
  trb_db_close(emu->bq_db);
  trb_bqemu_destroy(emu->bq);
  trb_faults_destroy(emu->faults);
  if (emu->rpc_inited) trb_rpc_shutdown();
  if (emu->lock_fd >= 0) close(emu->lock_fd); /* releases the flock */
  pthread_mutex_destroy(&emu->auth_mu);
  trb_free(emu->auth_header);
  trb_free(emu);
}
