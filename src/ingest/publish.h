/*
 * publish.h — the publish layer of `tributary ingest`: one Pub/Sub
 * Publisher (src/pubsub/publisher.h) per destination topic, and batches of
 * events whose completion is reported once, when Pub/Sub has confirmed or
 * refused every event of the batch.
 *
 * Threading: trb_ingest_pubs_publish is thread-safe (called on HTTP
 * threads); the done callback runs once, on the rpc loop thread or — when
 * every event was refused at once — on the calling thread before
 * trb_ingest_pubs_publish returns.
 */
#ifndef TRB_SRC_INGEST_PUBLISH_H
#define TRB_SRC_INGEST_PUBLISH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <grpc/status.h>

#include "src/common/arena.h"
#include "src/common/status.h"
#include "src/ingest/envelope.h"
#include "src/ingest/metrics.h"
#include "src/pubsub/publisher.h"
#include "src/rpc/rpc.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Most attributes ingest puts on one message. */
#define TRB_INGEST_EVENT_MAX_ATTRS 80

/** One event to publish (input only). Only needs to live until
 *  trb_ingest_pubs_publish returns: the publisher copies what it keeps, so
 *  callers may build events in per-thread scratch storage reused across
 *  requests. */
typedef struct trb_ingest_event_s {
  /** The message data; owned by the event. */
  trb_buf_t data;
  /** Attribute strings are borrowed. */
  trb_ps_attr_t attrs[TRB_INGEST_EVENT_MAX_ATTRS];
  size_t n_attrs;
  /** The envelope's issue_id ("" when the event is not wrapped). */
  char issue_id[TRB_INGEST_UUID_LEN];
} trb_ingest_event_t;

/** Free an event's data (not the struct). NULL-safe. */
void trb_ingest_event_deinit(trb_ingest_event_t *e);

/** Message ids up to this many bytes (NUL included) are kept inline. */
#define TRB_INGEST_ID_INLINE 40

/** The outcome of one event, filled by trb_ingest_pubs_publish and the
 *  publisher's completion. Zero-initialize before the publish. */
typedef struct trb_ingest_outcome_s {
  grpc_status_code code; /* OK = confirmed */
  bool refused;          /* refused by the publisher (not sent) */
  /** When OK: the server-assigned id; points into `id_inline`, or to a
   *  heap copy when longer (trb_ingest_outcome_deinit frees it). */
  const char *message_id;
  char error[160]; /* why, when not OK */
  /** The caller's: the envelope's issue_id ("" when not wrapped); not
   *  touched by the publish layer. */
  char issue_id[TRB_INGEST_UUID_LEN];
  /* Internal. */
  char id_inline[TRB_INGEST_ID_INLINE];
  struct trb_ingest_batch_s *batch;
  size_t data_len;
  int64_t start_ns;
} trb_ingest_outcome_t;

/** Free a long message id (not the struct). NULL-safe. */
void trb_ingest_outcome_deinit(trb_ingest_outcome_t *o);

/** Batch completion: `outs` (the caller's array) now hold outcomes. */
typedef void (*trb_ingest_batch_done_cb)(void *user, trb_ingest_outcome_t *outs,
                                         size_t n);

/** Bookkeeping of one batch in flight. Storage provided by the caller
 *  (e.g. inside its request object, so a batch costs no allocation of its
 *  own); fields are internal. Must stay valid until `done` has run. */
typedef struct trb_ingest_batch_s {
  struct trb_ingest_pubs_s *p;
  trb_ingest_outcome_t *outs;
  size_t n;
  int route;
  size_t remaining; /* atomic: outcomes missing + 1 while publishing */
  trb_ingest_batch_done_cb done;
  void *user;
} trb_ingest_batch_t;

typedef struct trb_ingest_pubs_s trb_ingest_pubs_t;

/**
 * Create one publisher per topic.
 * Params:  topics — `n` full topic names, copied. cfg — copied.
 *          metrics — borrowed; must outlive the publishers.
 * Returns: OK; INVALID_ARGUMENT; RESOURCE_EXHAUSTED.
 */
grpc_status_code trb_ingest_pubs_create(trb_rpc_loop_t *loop,
                                        trb_rpc_channel_t *ch,
                                        const char *const *topics, size_t n,
                                        const trb_ps_publisher_config_t *cfg,
                                        trb_ingest_metrics_t *metrics,
                                        trb_ingest_pubs_t **out,
                                        trb_status_t *st);

/**
 * Publish `n` events (n ≥ 1) to topic number `topic` (metrics under
 * `route`), under one acquisition of the publisher's lock
 * (trb_ps_publish_many); `done` runs exactly once when every event has an
 * outcome.
 * Params:  events — borrowed for the call only. outs — `n` zeroed
 *          outcomes; batch — storage for the bookkeeping; both must stay
 *          valid until `done` runs.
 */
void trb_ingest_pubs_publish(trb_ingest_pubs_t *p, size_t topic, int route,
                             const trb_ingest_event_t *events,
                             trb_ingest_outcome_t *outs, size_t n,
                             trb_ingest_batch_t *batch,
                             trb_ingest_batch_done_cb done, void *user);

/**
 * Check that every topic exists and Pub/Sub answers: one
 * google.pubsub.v1.Publisher/GetTopic per topic not yet confirmed (5 s
 * deadline), unless a check is already running or the publishers are
 * shutting down. Asynchronous; thread-safe.
 */
void trb_ingest_pubs_probe(trb_ingest_pubs_t *p);

/** Whether GetTopic confirmed every topic (OK, or PERMISSION_DENIED: a
 *  publisher-only service account may not get topics) and the most recent
 *  publish outcome was not a Pub/Sub outage. Thread-safe. */
bool trb_ingest_pubs_ready(const trb_ingest_pubs_t *p);

/** Whether the most recent publish outcome was a Pub/Sub failure. */
bool trb_ingest_pubs_failing(const trb_ingest_pubs_t *p);

/**
 * Stop probing (waiting for a GetTopic in flight, at most its 5 s
 * deadline), then shut every publisher down within `timeout_ms`
 * (trb_ps_publisher_shutdown: unsent events complete with
 * DEADLINE_EXCEEDED). Idempotent.
 * Returns: OK or the first failure of any publisher.
 * Threading: not on the loop thread.
 */
grpc_status_code trb_ingest_pubs_shutdown(trb_ingest_pubs_t *p,
                                          int64_t timeout_ms,
                                          trb_status_t *st);

/** Shut down (no deadline) if needed and free. NULL-safe. */
void trb_ingest_pubs_destroy(trb_ingest_pubs_t *p);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_INGEST_PUBLISH_H */
