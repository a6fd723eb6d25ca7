/*
 * metrics.h — ingest counters and their Prometheus text exposition:
 *   tributary_ingest_requests_total{route,code}
 *   tributary_ingest_events_published_total{route}
 *   tributary_ingest_rejected_total{reason}
 *   tributary_ingest_request_bytes_total, tributary_ingest_published_bytes_total
 *   tributary_ingest_publish_latency_seconds (histogram: publish call →
 *     Pub/Sub confirmation, per event)
 * Route label = the route's path; requests matching no route count under
 * route="(none)".
 *
 * Source: Prometheus text exposition format 0.0.4
 * (prometheus.io/docs/instrumenting/exposition_formats).
 * Threading: every function is thread-safe (relaxed atomics), except
 * create/destroy.
 */
#ifndef TRB_SRC_INGEST_METRICS_H
#define TRB_SRC_INGEST_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "src/common/arena.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Why a request or event was refused (the `reason` label). */
typedef enum trb_ingest_reason_e {
  TRB_INGEST_REASON_BAD_REQUEST = 0, /* malformed body → 400 */
  TRB_INGEST_REASON_TOO_LARGE,       /* 413 */
  TRB_INGEST_REASON_MEDIA_TYPE,      /* 415 */
  TRB_INGEST_REASON_UNAUTHORIZED,    /* 401 */
  TRB_INGEST_REASON_NOT_FOUND,       /* 404 / 405 */
  TRB_INGEST_REASON_BACKPRESSURE,    /* publisher full → 503 */
  TRB_INGEST_REASON_PUBLISH_FAILED,  /* Pub/Sub error → 503 / 500 */
  TRB_INGEST_REASON_DRAINING,        /* shutting down → 503 */
  TRB_INGEST_REASON_COUNT
} trb_ingest_reason_t;

typedef struct trb_ingest_metrics_s trb_ingest_metrics_t;

/**
 * Create counters for `n_routes` routes named by `paths` (copied).
 * Returns NULL on allocation failure.
 */
trb_ingest_metrics_t *trb_ingest_metrics_create(const char *const *paths,
                                                size_t n_routes);

/** Free. NULL-safe. */
void trb_ingest_metrics_destroy(trb_ingest_metrics_t *m);

/** One answered request. route — index, or -1 for no route. */
void trb_ingest_metrics_request(trb_ingest_metrics_t *m, int route,
                                int http_status, size_t body_bytes);

/** `n` events refused for `reason`. */
void trb_ingest_metrics_rejected(trb_ingest_metrics_t *m,
                                 trb_ingest_reason_t reason, uint64_t n);

/** One event confirmed by Pub/Sub: `bytes` of message data, `latency_us`
 *  from publish to confirmation. */
void trb_ingest_metrics_published(trb_ingest_metrics_t *m, int route,
                                  size_t bytes, int64_t latency_us);

/** Events confirmed so far, all routes (tests, /readyz). */
uint64_t trb_ingest_metrics_published_total(const trb_ingest_metrics_t *m);

/**
 * Append the Prometheus text exposition to `out`.
 * Returns: 0; -ENOMEM.
 */
int trb_ingest_metrics_render(const trb_ingest_metrics_t *m, trb_buf_t *out);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_INGEST_METRICS_H */
