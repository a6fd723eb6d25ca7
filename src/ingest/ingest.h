/*
 * ingest.h — `tributary ingest`: the HTTP front end that validates, wraps
 * and publishes events to Pub/Sub, and answers 2xx only for events Pub/Sub
 * confirmed (a message id).
 *
 * Endpoints
 *   POST <route path>  events (routes.h: path → topic, mode wrap/raw/push)
 *   GET  /healthz      200 while the process serves
 *   GET  /readyz       200 when Publisher.GetTopic found every route's
 *                      topic (checked at start, and again by /readyz while
 *                      not confirmed) and the last publish outcome was not
 *                      a Pub/Sub outage; else 503 (also while draining)
 *   GET  /metrics      Prometheus text (metrics.h)
 *
 * Bodies, by Content-Type (parameters such as charset ignored):
 *   application/json            one JSON object → one event; a JSON array
 *                               of objects → a batch
 *   application/x-ndjson,       one JSON object per line → a batch
 *   application/jsonl
 *   application/cloudevents+json  structured CloudEvent
 *   any, with ce-* headers      binary CloudEvent (Content-Type is its
 *                               datacontenttype; application/protobuf for
 *                               Firestore DocumentEventData)
 *   push routes: the body is a Pub/Sub push JSON body whatever the
 *   Content-Type says (curl -d sends x-www-form-urlencoded).
 *
 * Replies (always JSON)
 *   one event:  200 {"issue_id": "...", "status": "created"} (wrap) or
 *               200 {"message_id": "...", "status": "published"} (raw,
 *               push, passed-through CloudEvents)
 *   a batch:    {"results": [one of the above, or {"status": "error",
 *               "code": 503, "error": "..."}], "published": n, "failed":
 *               m} with 200 when all were published, 207 when some were,
 *               else the status of the first failure
 *   refused:    {"error": "<what is wrong>"} with 400 (malformed JSON,
 *               invalid UTF-8, nesting deeper than max_depth, non-object,
 *               empty body, bad base64, malformed CloudEvent or protobuf),
 *               401 (bearer token), 404, 405, 413 (body over
 *               max_body_bytes), 415 (Content-Type), 503 + Retry-After
 *               (publisher buffer full, Pub/Sub unavailable after retries,
 *               draining), 500 (Pub/Sub refused the publish for good:
 *               NOT_FOUND topic, PERMISSION_DENIED, ...).
 *   A batch is validated whole before anything is published: one bad
 *   event refuses the batch (400 naming the event) and publishes nothing.
 *
 * Delivery: every event answered 2xx has a Pub/Sub message id. An event
 * not confirmed (publisher full, retries exhausted, shutdown deadline) is
 * answered non-2xx; it may still have reached Pub/Sub (a Publish whose
 * reply was lost), so a client retry can duplicate it — never lose it.
 *
 * Shutdown (SIGTERM on Cloud Run): stop accepting connections, answer
 * requests that arrive on open connections with 503 + Connection: close,
 * wait for the publishes of accepted requests, flush the publishers, reply,
 * and return within the grace period.
 *
 * Source: issue 7; ../shared/DESIGN.md (ingest); PROTOCOL.md facts 44–47
 * (message limits), 66 (push body), 76–80 (Eventarc/Firestore).
 */
#ifndef TRB_SRC_INGEST_INGEST_H
#define TRB_SRC_INGEST_INGEST_H

#include <stdbool.h>
#include <stdint.h>

#include <grpc/status.h>

#include "src/common/status.h"
#include "src/pubsub/publisher.h"
#include "src/rpc/rpc.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Settings. Zero-initialise; 0 / NULL means the default shown. Strings
 *  are borrowed for trb_ingest_start (copied as needed). */
typedef struct trb_ingest_config_s {
  /** Listen address (IPv4); NULL = "0.0.0.0". */
  const char *host;
  /** Port; 0 = a free one (trb_ingest_port). The CLI defaults to $PORT,
   *  else 8080. */
  int port;
  /** HTTP polling threads (default 2). */
  int threads;
  /** Most open connections (default 256; memory for bodies is at most
   *  max_connections × max_body_bytes). */
  int max_connections;
  /** Largest request body, bytes (default 1 MiB; at most 10 MiB, Pub/Sub's
   *  message limit). */
  int64_t max_body_bytes;
  /** Deepest JSON nesting accepted (default 64). */
  int max_depth;
  /** Most events in one batch request (default 1000). */
  int max_batch_events;
  /** Project for topic ids in routes (required unless every topic is a
   *  full name). */
  const char *project;
  /** Routes (routes.h syntax); NULL = "/=" + `topic` in wrap mode. */
  const char *routes;
  /** Topic of the default route when `routes` is NULL (id or full name). */
  const char *topic;
  /** When set, POST requests need "Authorization: Bearer <token>". */
  const char *bearer_token;
  /** Seconds in Retry-After of 503 replies (default 1). */
  int retry_after_s;
  /** Publisher settings (one publisher per topic). flow defaults to
   *  REJECT here (answer 503 at once when the buffer is full), max_delay_ms
   *  to 5 ms, retry_deadline_ms to 30 s and rpc_timeout_ms to 10 s (a
   *  shutdown may overrun its grace period by up to one rpc_timeout_ms
   *  while a Publish already sent is answered). */
  trb_ps_publisher_config_t publisher;
  /** Set when `publisher.flow` was chosen explicitly (BLOCK is 0). */
  bool publisher_flow_set;
} trb_ingest_config_t;

typedef struct trb_ingest_s trb_ingest_t;

/**
 * Create the publishers and start serving.
 * Params:  loop, ch — borrowed; must outlive the ingest (the publishers'
 *          RPCs run on `loop`).
 * Returns: OK; INVALID_ARGUMENT (bad routes, limits, no topic);
 *          UNAVAILABLE (cannot listen); RESOURCE_EXHAUSTED.
 * Threading: thread-safe.
 */
grpc_status_code trb_ingest_start(const trb_ingest_config_t *cfg,
                                  trb_rpc_loop_t *loop, trb_rpc_channel_t *ch,
                                  trb_ingest_t **out, trb_status_t *st);

/** The bound HTTP port. Thread-safe. */
int trb_ingest_port(const trb_ingest_t *ing);

/** Requests handed to the handler and not yet answered (events being
 *  published). Thread-safe. */
int64_t trb_ingest_pending(const trb_ingest_t *ing);

/** Events confirmed by Pub/Sub so far. Thread-safe. */
uint64_t trb_ingest_published(const trb_ingest_t *ing);

/**
 * Graceful stop within `grace_ms` (see the file comment): after return no
 * request is pending and the server no longer listens. Idempotent.
 * Returns: OK when every accepted event was confirmed; otherwise the
 *          publishers' first failure (such events were answered non-2xx).
 * Threading: thread-safe; not on the loop thread or in a handler.
 */
grpc_status_code trb_ingest_shutdown(trb_ingest_t *ing, int64_t grace_ms,
                                     trb_status_t *st);

/** Shut down (grace 10 s) if needed, then free. NULL-safe. Exclusive. */
void trb_ingest_destroy(trb_ingest_t *ing);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_INGEST_INGEST_H */
