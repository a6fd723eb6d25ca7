/*
 * ops_http.c — see ops_http.h. Every request is answered on the server
 * thread that received it (the work is a few counter reads).
 */
#include "src/streamer/ops_http.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "src/common/alloc.h"
#include "src/common/arena.h"
#include "src/common/log.h"
#include "src/ingest/http_server.h"
#include "src/streamer/metrics.h"

struct trb_stream_ops_s {
  trb_http_server_t *srv;
  /* Guards `s` and is held while a request uses it, so detaching waits
   * for those requests. */
  pthread_mutex_t mu;
  trb_streamer_t *s;
};

static const char kMetricsType[] = "text/plain; version=0.0.4; charset=utf-8";

static void json_str(trb_buf_t *b, const char *v) {
  trb_buf_append_str(b, "\"");
  for (const unsigned char *c = (const unsigned char *)v; *c; c++) {
    if (*c == '"' || *c == '\\') trb_buf_appendf(b, "\\%c", *c);
    else if (*c < 0x20) trb_buf_appendf(b, "\\u%04x", *c);
    else trb_buf_append(b, c, 1);
  }
  trb_buf_append_str(b, "\"");
}

static void respond_buf(trb_http_request_t *r, int status, const char *type,
                        trb_buf_t *b) {
  trb_http_respond(r, status, type, b->data ? b->data : "", b->len, NULL, 0,
                   false);
  trb_buf_deinit(b);
}

static void readyz(trb_stream_ops_t *o, trb_http_request_t *r) {
  trb_status_t why = {0};
  bool ok = false;
  pthread_mutex_lock(&o->mu);
  if (o->s) ok = trb_streamer_check_ready(o->s, &why);
  else trb_status_set(&why, GRPC_STATUS_UNAVAILABLE, "starting");
  pthread_mutex_unlock(&o->mu);
  trb_buf_t b = TRB_BUF_INIT;
  if (ok) {
    trb_buf_append_str(&b, "{\"ready\":true}\n");
  } else {
    trb_buf_append_str(&b, "{\"ready\":false,\"code\":");
    json_str(&b, trb_status_code_name(why.code));
    trb_buf_append_str(&b, ",\"reason\":");
    json_str(&b, why.msg);
    trb_buf_append_str(&b, "}\n");
  }
  respond_buf(r, ok ? 200 : 503, "application/json", &b);
}

static void metrics(trb_stream_ops_t *o, trb_http_request_t *r) {
  trb_stream_metrics_t *m = trb_calloc(1, sizeof *m);
  trb_buf_t b = TRB_BUF_INIT;
  if (!m) {
    trb_http_respond(r, 500, "text/plain", "out of memory\n", 14, NULL, 0,
                     false);
    return;
  }
  pthread_mutex_lock(&o->mu);
  if (o->s) trb_streamer_metrics(o->s, m);
  /* Rendered under the lock: table names are the streamer's. */
  int rc = trb_stream_metrics_render(m, &b);
  pthread_mutex_unlock(&o->mu);
  trb_free(m);
  if (rc != 0) {
    trb_buf_deinit(&b);
    trb_http_respond(r, 500, "text/plain", "out of memory\n", 14, NULL, 0,
                     false);
    return;
  }
  respond_buf(r, 200, kMetricsType, &b);
}

static void handle(void *user, trb_http_request_t *r) {
  trb_stream_ops_t *o = user;
  const char *method = trb_http_request_method(r);
  const char *path = trb_http_request_path(r);
  bool known = !strcmp(path, "/healthz") || !strcmp(path, "/readyz") ||
               !strcmp(path, "/metrics");
  if (!known) {
    trb_http_respond(r, 404, "text/plain", "not found\n", 10, NULL, 0, false);
    return;
  }
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
    trb_http_header_t allow = {"Allow", "GET, HEAD"};
    trb_http_respond(r, 405, "text/plain", "method not allowed\n", 19, &allow,
                     1, false);
    return;
  }
  if (!strcmp(path, "/healthz"))
    trb_http_respond(r, 200, "text/plain", "ok\n", 3, NULL, 0, false);
  else if (!strcmp(path, "/readyz"))
    readyz(o, r);
  else
    metrics(o, r);
}

grpc_status_code trb_stream_ops_start(const char *host, int port,
                                      trb_stream_ops_t **out,
                                      trb_status_t *st) {
  *out = NULL;
  if (port < 0 || port > 65535)
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "ops http: port %d out of range", port);
  trb_stream_ops_t *o = trb_calloc(1, sizeof *o);
  if (!o) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "oom");
  pthread_mutex_init(&o->mu, NULL);
  trb_http_server_config_t cfg = {0};
  cfg.host = host;
  cfg.port = port;
  cfg.threads = 1;
  cfg.max_body_bytes = 4096;
  cfg.max_connections = 64;
  cfg.idle_timeout_s = 30;
  grpc_status_code code = trb_http_server_start(&cfg, handle, o, &o->srv, st);
  if (code != GRPC_STATUS_OK) {
    trb_status_prefix(st, "ops http on port %d", port);
    pthread_mutex_destroy(&o->mu);
    trb_free(o);
    return code;
  }
  TRB_LOG(TRB_LOG_INFO, "stream",
          "ops http on %s:%d (/healthz /readyz /metrics)",
          host ? host : "0.0.0.0", trb_http_server_port(o->srv));
  *out = o;
  return GRPC_STATUS_OK;
}

int trb_stream_ops_port(const trb_stream_ops_t *o) {
  return trb_http_server_port(o->srv);
}

void trb_stream_ops_attach(trb_stream_ops_t *o, trb_streamer_t *s) {
  pthread_mutex_lock(&o->mu);
  o->s = s;
  pthread_mutex_unlock(&o->mu);
}

void trb_stream_ops_destroy(trb_stream_ops_t *o) {
  if (!o) return;
  trb_http_server_quiesce(o->srv);
  trb_http_server_destroy(o->srv);
  pthread_mutex_destroy(&o->mu);
  trb_free(o);
}
