/*
 * http_server.c — see http_server.h.
 *
 * Request life: on_access is called first with the headers (the request
 * context is created), then once per body chunk, then with no data: the
 * handler runs. If it did not answer, the connection is suspended; the
 * answer (trb_http_respond, any thread) resumes it, and libmicrohttpd calls
 * on_access again, which queues the stored response. on_completed frees the
 * context.
 */
#include "src/ingest/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "src/common/alloc.h"
#include "src/common/arena.h"
#include "src/common/clock.h"
#include "src/common/log.h"

enum { ST_HANDLING = 1, ST_SUSPENDED, ST_ANSWERED, ST_QUEUED };

struct trb_http_request_s {
  trb_http_server_t *srv;
  struct MHD_Connection *conn;
  pthread_mutex_t mu; /* guards state, resp, status */
  int state;          /* 0 while reading the body */
  bool too_large;
  bool counted; /* in srv->pending */
  struct MHD_Response *resp;
  unsigned int status;
  char *path;
  char method[16];
  trb_buf_t body;
  trb_ingest_kv_t headers[TRB_HTTP_MAX_HEADERS];
  size_t n_headers;
  /* srv->pending_list links, guarded by srv->mu */
  trb_http_request_t *prev, *next;
};

struct trb_http_server_s {
  struct MHD_Daemon *d;
  trb_http_handler_cb handler;
  void (*on_too_large)(void *user);
  void *user;
  trb_http_server_config_t cfg;
  int port;
  pthread_mutex_t mu; /* guards pending, pending_list, quiesced; see active */
  pthread_cond_t idle;
  int64_t pending; /* handed to the handler, not answered */
  /* Created, not yet completed (reply not yet sent). Incremented without
   * mu; decremented under mu, which also broadcasts `idle` at zero, so a
   * waiter holding mu cannot miss the last completion. */
  _Atomic int64_t active;
  trb_http_request_t *pending_list;
  bool quiesced;
};

static void mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  if (!trb_log_enabled(TRB_LOG_DEBUG)) return;
  char buf[512];
  vsnprintf(buf, sizeof(buf), fmt, ap);
  size_t n = strlen(buf);
  if (n > 0 && buf[n - 1] == '\n') buf[n - 1] = '\0';
  TRB_LOG(TRB_LOG_DEBUG, "http", "libmicrohttpd: %s", buf);
}

static struct MHD_Response *make_response(const char *content_type,
                                          const char *body, size_t len,
                                          const trb_http_header_t *headers,
                                          size_t n_headers, bool close) {
  struct MHD_Response *r = MHD_create_response_from_buffer(
      len, (void *)(len ? body : ""), MHD_RESPMEM_MUST_COPY);
  if (!r) return NULL;
  if (content_type) MHD_add_response_header(r, "Content-Type", content_type);
  for (size_t i = 0; i < n_headers; i++) {
    MHD_add_response_header(r, headers[i].name, headers[i].value);
  }
  if (close) MHD_add_response_header(r, "Connection", "close");
  return r;
}

static enum MHD_Result queue_and_release(struct MHD_Connection *conn,
                                         unsigned int status,
                                         struct MHD_Response *resp) {
  if (!resp) return MHD_NO; /* out of memory: drop the connection */
  enum MHD_Result ret = MHD_queue_response(conn, status, resp);
  MHD_destroy_response(resp);
  return ret;
}

/* 413 with a JSON error; the connection is closed after it. */
static enum MHD_Result queue_too_large(trb_http_server_t *s,
                                       struct MHD_Connection *conn) {
  char msg[128];
  int n = snprintf(msg, sizeof(msg),
                   "{\"error\":\"request body larger than %lld bytes\"}",
                   (long long)s->cfg.max_body_bytes);
  return queue_and_release(
      conn, 413, make_response("application/json", msg, (size_t)n, NULL, 0, true));
}

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind,
                                      const char *key, const char *value) {
  (void)kind;
  trb_http_request_t *r = cls;
  if (r->n_headers < TRB_HTTP_MAX_HEADERS) {
    r->headers[r->n_headers].name = key;
    r->headers[r->n_headers].value = value ? value : "";
    r->n_headers++;
  }
  return MHD_YES;
}

static void pending_add(trb_http_server_t *s, trb_http_request_t *r) {
  pthread_mutex_lock(&s->mu);
  s->pending++;
  r->counted = true;
  r->prev = NULL;
  r->next = s->pending_list;
  if (s->pending_list) s->pending_list->prev = r;
  s->pending_list = r;
  pthread_mutex_unlock(&s->mu);
}

/* Caller holds s->mu. */
static void pending_remove_locked(trb_http_server_t *s, trb_http_request_t *r) {
  if (!r->counted) return;
  r->counted = false;
  if (r->prev) r->prev->next = r->next;
  else s->pending_list = r->next;
  if (r->next) r->next->prev = r->prev;
  r->prev = r->next = NULL;
  s->pending--;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn,
                                 const char *url, const char *method,
                                 const char *version, const char *upload_data,
                                 size_t *upload_size, void **con_cls) {
  (void)version;
  trb_http_server_t *s = cls;
  trb_http_request_t *r = *con_cls;
  if (!r) {
    r = trb_calloc(1, sizeof(*r));
    if (!r) return MHD_NO;
    r->srv = s;
    r->conn = conn;
    pthread_mutex_init(&r->mu, NULL);
    trb_buf_init(&r->body);
    snprintf(r->method, sizeof(r->method), "%s", method);
    r->path = trb_strdup(url ? url : "/");
    *con_cls = r;
    atomic_fetch_add(&s->active, 1);
    if (!r->path) return MHD_NO;
    const char *cl =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    long long declared = cl ? strtoll(cl, NULL, 10) : 0;
    if (declared > s->cfg.max_body_bytes) {
      r->too_large = true;
      if (s->on_too_large) s->on_too_large(s->user);
      /* A client waiting for "100 Continue" has sent no body yet: answer
       * now. So for absurd sizes, not worth reading. Otherwise read and
       * drop the body first, so the client is reading when the 413 comes
       * (answering early and closing would reset a connection whose
       * client is still sending, and it would never see the 413). */
      const char *expect =
          MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Expect");
      if ((expect && strcasecmp(expect, "100-continue") == 0) ||
          declared / 16 > s->cfg.max_body_bytes) {
        r->state = ST_QUEUED;
        return queue_too_large(s, conn);
      }
    }
    return MHD_YES;
  }
  if (*upload_size > 0) {
    if (!r->too_large && r->state == 0) {
      if ((int64_t)(r->body.len + *upload_size) > s->cfg.max_body_bytes) {
        r->too_large = true;
        if (s->on_too_large) s->on_too_large(s->user);
        trb_buf_deinit(&r->body);
      } else if (trb_buf_append(&r->body, upload_data, *upload_size) != 0) {
        return MHD_NO;
      }
    }
    *upload_size = 0;
    return MHD_YES;
  }

  pthread_mutex_lock(&r->mu);
  if (r->state == ST_ANSWERED) {
    r->state = ST_QUEUED;
    struct MHD_Response *resp = r->resp;
    unsigned int status = r->status;
    r->resp = NULL;
    pthread_mutex_unlock(&r->mu);
    return queue_and_release(conn, status, resp);
  }
  int state = r->state;
  pthread_mutex_unlock(&r->mu);
  if (state != 0) return MHD_YES; /* spurious call while handling */

  if (r->too_large) {
    r->state = ST_QUEUED;
    return queue_too_large(s, conn);
  }
  r->state = ST_HANDLING;
  MHD_get_connection_values(conn, MHD_HEADER_KIND, collect_header, r);
  pending_add(s, r);
  s->handler(s->user, r);

  pthread_mutex_lock(&r->mu);
  if (r->state == ST_ANSWERED) {
    r->state = ST_QUEUED;
    struct MHD_Response *resp = r->resp;
    unsigned int status = r->status;
    r->resp = NULL;
    pthread_mutex_unlock(&r->mu);
    return queue_and_release(conn, status, resp);
  }
  MHD_suspend_connection(conn);
  r->state = ST_SUSPENDED;
  pthread_mutex_unlock(&r->mu);
  return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn,
                         void **con_cls, enum MHD_RequestTerminationCode toe) {
  (void)conn;
  (void)toe;
  trb_http_server_t *s = cls;
  trb_http_request_t *r = *con_cls;
  if (!r) return;
  *con_cls = NULL;
  pthread_mutex_lock(&s->mu);
  pending_remove_locked(s, r); /* only if never answered */
  if (atomic_fetch_sub(&s->active, 1) == 1) pthread_cond_broadcast(&s->idle);
  pthread_mutex_unlock(&s->mu);
  if (r->resp) MHD_destroy_response(r->resp);
  trb_buf_deinit(&r->body);
  trb_free(r->path);
  pthread_mutex_destroy(&r->mu);
  trb_free(r);
}

void trb_http_respond(trb_http_request_t *r, int status,
                      const char *content_type, const char *body, size_t len,
                      const trb_http_header_t *headers, size_t n_headers,
                      bool close) {
  trb_http_server_t *s = r->srv;
  struct MHD_Response *resp =
      make_response(content_type, body, len, headers, n_headers, close);
  pthread_mutex_lock(&s->mu);
  pending_remove_locked(s, r);
  pthread_mutex_unlock(&s->mu);
  pthread_mutex_lock(&r->mu);
  r->resp = resp;
  r->status = (unsigned int)status;
  bool resume = r->state == ST_SUSPENDED;
  r->state = ST_ANSWERED;
  if (resume) MHD_resume_connection(r->conn);
  pthread_mutex_unlock(&r->mu);
}

grpc_status_code trb_http_server_start(const trb_http_server_config_t *cfg,
                                       trb_http_handler_cb handler, void *user,
                                       trb_http_server_t **out,
                                       trb_status_t *st) {
  *out = NULL;
  trb_http_server_t *s = trb_calloc(1, sizeof(*s));
  if (!s) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  if (cfg) s->cfg = *cfg;
  s->cfg.host = NULL; /* not kept */
  if (s->cfg.threads <= 0) s->cfg.threads = 2;
  if (s->cfg.max_body_bytes <= 0) s->cfg.max_body_bytes = 1024 * 1024;
  if (s->cfg.max_connections <= 0) s->cfg.max_connections = 256;
  if (s->cfg.idle_timeout_s <= 0) s->cfg.idle_timeout_s = 60;
  s->handler = handler;
  s->on_too_large = cfg ? cfg->on_too_large : NULL;
  s->user = user;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->idle, NULL);

  struct sockaddr_in addr;
  memset(&addr, 0, sizeof(addr));
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)(cfg ? cfg->port : 0));
  const char *host = cfg && cfg->host ? cfg->host : "0.0.0.0";
  if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
    trb_http_server_destroy(s);
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "http: bad IPv4 address \"%s\"", host);
  }
  /* poll(2) vs epoll and the turbo flag (no shutdown(2) before close,
   * optimistic reads): see the header and perf/ingest_bench/README.md. */
  bool use_poll = s->cfg.max_connections <= TRB_HTTP_POLL_MAX_CONNECTIONS;
  unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD |
                       (use_poll ? MHD_USE_POLL : MHD_USE_EPOLL) |
                       MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
                       MHD_USE_TURBO;
  s->d = MHD_start_daemon(
      flags, 0, NULL, NULL, on_access, s,
      MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
      MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
      MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)s->cfg.threads,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned int)s->cfg.max_connections,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)TRB_HTTP_CONNECTION_MEMORY,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)s->cfg.idle_timeout_s,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
      MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int)1024,
      MHD_OPTION_END);
  if (!s->d) {
    int err = errno;
    trb_http_server_destroy(s);
    return trb_status_set(st, GRPC_STATUS_UNAVAILABLE,
                          "http: cannot listen on %s:%d (%s)", host,
                          cfg ? cfg->port : 0, strerror(err));
  }
  const union MHD_DaemonInfo *info =
      MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
  s->port = info ? info->port : (cfg ? cfg->port : 0);
  *out = s;
  return GRPC_STATUS_OK;
}

int trb_http_server_port(const trb_http_server_t *s) { return s->port; }

void trb_http_server_quiesce(trb_http_server_t *s) {
  pthread_mutex_lock(&s->mu);
  bool was = s->quiesced;
  s->quiesced = true;
  pthread_mutex_unlock(&s->mu);
  if (was || !s->d) return;
  MHD_socket fd = MHD_quiesce_daemon(s->d);
  if (fd != MHD_INVALID_SOCKET) close(fd);
}

int64_t trb_http_server_pending(trb_http_server_t *s) {
  pthread_mutex_lock(&s->mu);
  int64_t n = s->pending;
  pthread_mutex_unlock(&s->mu);
  return n;
}

bool trb_http_server_wait_idle(trb_http_server_t *s, int64_t timeout_ms) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  if (timeout_ms >= 0) {
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (timeout_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000;
    }
  }
  pthread_mutex_lock(&s->mu);
  while (atomic_load(&s->active) > 0) {
    if (timeout_ms < 0) {
      pthread_cond_wait(&s->idle, &s->mu);
    } else if (pthread_cond_timedwait(&s->idle, &s->mu, &until) == ETIMEDOUT) {
      break;
    }
  }
  bool idle = atomic_load(&s->active) == 0;
  pthread_mutex_unlock(&s->mu);
  return idle;
}

void trb_http_server_destroy(trb_http_server_t *s) {
  if (!s) return;
  if (s->d) {
    /* Answer whatever is still pending so every suspended connection is
     * resumed (libmicrohttpd cannot stop with suspended connections). */
    for (;;) {
      pthread_mutex_lock(&s->mu);
      trb_http_request_t *r = s->pending_list;
      pthread_mutex_unlock(&s->mu);
      if (!r) break;
      static const char kBody[] = "{\"error\":\"server stopping\"}";
      trb_http_respond(r, 503, "application/json", kBody, sizeof(kBody) - 1,
                       NULL, 0, true);
    }
    MHD_stop_daemon(s->d);
  }
  pthread_cond_destroy(&s->idle);
  pthread_mutex_destroy(&s->mu);
  trb_free(s);
}

const char *trb_http_request_method(const trb_http_request_t *r) {
  return r->method;
}
const char *trb_http_request_path(const trb_http_request_t *r) { return r->path; }

const char *trb_http_request_header(const trb_http_request_t *r,
                                    const char *name) {
  return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const trb_ingest_kv_t *trb_http_request_headers(const trb_http_request_t *r,
                                                size_t *n) {
  *n = r->n_headers;
  return r->headers;
}

const char *trb_http_request_body(const trb_http_request_t *r, size_t *len) {
  *len = r->body.len;
  return r->body.data ? r->body.data : "";
}
