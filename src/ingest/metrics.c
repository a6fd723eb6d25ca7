/*
 * metrics.c — see metrics.h.
 */
#include "src/ingest/metrics.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "src/common/alloc.h"

/* HTTP codes with their own series; everything else counts as "other". */
static const int kCodes[] = {200, 207, 400, 401, 404, 405, 413, 415, 500, 503};
#define N_CODES (sizeof(kCodes) / sizeof(kCodes[0]) + 1)

/* Histogram upper bounds, microseconds. */
static const int64_t kBucketsUs[] = {500,    1000,   2500,    5000,   10000,
                                     25000,  50000,  100000,  250000, 500000,
                                     1000000, 2500000, 10000000};
#define N_BUCKETS (sizeof(kBucketsUs) / sizeof(kBucketsUs[0]))

static const char *const kReasons[TRB_INGEST_REASON_COUNT] = {
    "bad_request", "too_large",      "unsupported_media_type", "unauthorized",
    "not_found",   "backpressure",   "publish_failed",         "draining"};

typedef struct {
  char *path;
  _Atomic uint64_t requests[N_CODES];
  _Atomic uint64_t published;
} route_metrics_t;

struct trb_ingest_metrics_s {
  size_t n_routes;
  route_metrics_t *routes; /* n_routes + 1 ("(none)" last) */
  _Atomic uint64_t rejected[TRB_INGEST_REASON_COUNT];
  _Atomic uint64_t request_bytes;
  _Atomic uint64_t published_bytes;
  _Atomic uint64_t published_total;
  _Atomic uint64_t buckets[N_BUCKETS + 1];
  _Atomic uint64_t latency_sum_us;
};

trb_ingest_metrics_t *trb_ingest_metrics_create(const char *const *paths,
                                                size_t n_routes) {
  trb_ingest_metrics_t *m = trb_calloc(1, sizeof(*m));
  if (!m) return NULL;
  m->routes = trb_calloc(n_routes + 1, sizeof(*m->routes));
  if (!m->routes) {
    trb_free(m);
    return NULL;
  }
  m->n_routes = n_routes;
  for (size_t i = 0; i <= n_routes; i++) {
    m->routes[i].path = trb_strdup(i < n_routes ? paths[i] : "(none)");
    if (!m->routes[i].path) {
      trb_ingest_metrics_destroy(m);
      return NULL;
    }
  }
  return m;
}

void trb_ingest_metrics_destroy(trb_ingest_metrics_t *m) {
  if (!m) return;
  if (m->routes) {
    for (size_t i = 0; i <= m->n_routes; i++) trb_free(m->routes[i].path);
  }
  trb_free(m->routes);
  trb_free(m);
}

static route_metrics_t *route_of(trb_ingest_metrics_t *m, int route) {
  if (route < 0 || (size_t)route >= m->n_routes) return &m->routes[m->n_routes];
  return &m->routes[route];
}

void trb_ingest_metrics_request(trb_ingest_metrics_t *m, int route,
                                int http_status, size_t body_bytes) {
  size_t c = N_CODES - 1;
  for (size_t i = 0; i < N_CODES - 1; i++) {
    if (kCodes[i] == http_status) c = i;
  }
  atomic_fetch_add_explicit(&route_of(m, route)->requests[c], 1,
                            memory_order_relaxed);
  atomic_fetch_add_explicit(&m->request_bytes, body_bytes, memory_order_relaxed);
}

void trb_ingest_metrics_rejected(trb_ingest_metrics_t *m,
                                 trb_ingest_reason_t reason, uint64_t n) {
  if ((int)reason < 0 || reason >= TRB_INGEST_REASON_COUNT) return;
  atomic_fetch_add_explicit(&m->rejected[reason], n, memory_order_relaxed);
}

void trb_ingest_metrics_published(trb_ingest_metrics_t *m, int route,
                                  size_t bytes, int64_t latency_us) {
  atomic_fetch_add_explicit(&route_of(m, route)->published, 1,
                            memory_order_relaxed);
  atomic_fetch_add_explicit(&m->published_total, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&m->published_bytes, bytes, memory_order_relaxed);
  if (latency_us < 0) latency_us = 0;
  size_t b = N_BUCKETS;
  for (size_t i = 0; i < N_BUCKETS; i++) {
    if (latency_us <= kBucketsUs[i]) {
      b = i;
      break;
    }
  }
  atomic_fetch_add_explicit(&m->buckets[b], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&m->latency_sum_us, (uint64_t)latency_us,
                            memory_order_relaxed);
}

uint64_t trb_ingest_metrics_published_total(const trb_ingest_metrics_t *m) {
  return atomic_load_explicit(&((trb_ingest_metrics_t *)m)->published_total,
                              memory_order_relaxed);
}

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

int trb_ingest_metrics_render(const trb_ingest_metrics_t *cm, trb_buf_t *out) {
  trb_ingest_metrics_t *m = (trb_ingest_metrics_t *)cm;
  int rc = 0;
  rc |= trb_buf_append_str(out,
      "# HELP tributary_ingest_requests_total HTTP requests answered, by route and status code.\n"
      "# TYPE tributary_ingest_requests_total counter\n");
  for (size_t r = 0; r <= m->n_routes; r++) {
    for (size_t c = 0; c < N_CODES; c++) {
      uint64_t v = LOAD(m->routes[r].requests[c]);
      if (v == 0) continue;
      char code[16];
      if (c < N_CODES - 1) {
        snprintf(code, sizeof(code), "%d", kCodes[c]);
      } else {
        snprintf(code, sizeof(code), "other");
      }
      rc |= trb_buf_appendf(out,
                            "tributary_ingest_requests_total{route=\"%s\",code=\"%s\"} %llu\n",
                            m->routes[r].path, code, (unsigned long long)v);
    }
  }
  rc |= trb_buf_append_str(out,
      "# HELP tributary_ingest_events_published_total Events confirmed by Pub/Sub (a message id), by route.\n"
      "# TYPE tributary_ingest_events_published_total counter\n");
  for (size_t r = 0; r < m->n_routes; r++) {
    rc |= trb_buf_appendf(out, "tributary_ingest_events_published_total{route=\"%s\"} %llu\n",
                          m->routes[r].path,
                          (unsigned long long)LOAD(m->routes[r].published));
  }
  rc |= trb_buf_append_str(out,
      "# HELP tributary_ingest_rejected_total Requests or events refused, by reason.\n"
      "# TYPE tributary_ingest_rejected_total counter\n");
  for (int i = 0; i < TRB_INGEST_REASON_COUNT; i++) {
    rc |= trb_buf_appendf(out, "tributary_ingest_rejected_total{reason=\"%s\"} %llu\n",
                          kReasons[i], (unsigned long long)LOAD(m->rejected[i]));
  }
  rc |= trb_buf_appendf(out,
      "# HELP tributary_ingest_request_bytes_total Request body bytes received.\n"
      "# TYPE tributary_ingest_request_bytes_total counter\n"
      "tributary_ingest_request_bytes_total %llu\n"
      "# HELP tributary_ingest_published_bytes_total Message data bytes confirmed by Pub/Sub.\n"
      "# TYPE tributary_ingest_published_bytes_total counter\n"
      "tributary_ingest_published_bytes_total %llu\n",
      (unsigned long long)LOAD(m->request_bytes),
      (unsigned long long)LOAD(m->published_bytes));
  rc |= trb_buf_append_str(out,
      "# HELP tributary_ingest_publish_latency_seconds Time from publish to Pub/Sub confirmation, per event.\n"
      "# TYPE tributary_ingest_publish_latency_seconds histogram\n");
  uint64_t cum = 0;
  for (size_t i = 0; i <= N_BUCKETS; i++) {
    cum += LOAD(m->buckets[i]);
    if (i < N_BUCKETS) {
      rc |= trb_buf_appendf(out,
                            "tributary_ingest_publish_latency_seconds_bucket{le=\"%g\"} %llu\n",
                            (double)kBucketsUs[i] / 1e6, (unsigned long long)cum);
    } else {
      rc |= trb_buf_appendf(out,
                            "tributary_ingest_publish_latency_seconds_bucket{le=\"+Inf\"} %llu\n",
                            (unsigned long long)cum);
    }
  }
  rc |= trb_buf_appendf(out,
                        "tributary_ingest_publish_latency_seconds_sum %.6f\n"
                        "tributary_ingest_publish_latency_seconds_count %llu\n",
                        (double)LOAD(m->latency_sum_us) / 1e6, (unsigned long long)cum);
  return rc ? -ENOMEM : 0;
}
