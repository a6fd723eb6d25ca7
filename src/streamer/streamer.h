/*
 * streamer.h — `tributary stream`: Pub/Sub StreamingPull in, BigQuery
 * Storage Write AppendRows out, exactly once (DESIGN.md "Delivery
 * semantics"; docs/streamer.md for the operator's view).
 *
 * Pipeline per message (on its worker's loop thread):
 *   de-duplicate (message id already written / dead-lettered → ack) →
 *   parse (JSON) → route (trb_pipeline_route) → shape (metadata columns,
 *   envelope) → transcode (writer schema of the table's write stream) →
 *   batch. A message that fails a step goes to the dead-letter topic with
 *   attributes saying why (shape.h TRB_DL_ATTR_*), and is acked once the
 *   publish is confirmed.
 *
 * Batches (per worker and table; at most one in flight per write stream,
 * so a batch's offset never moves):
 *   sealed at batch_max_rows / batch_max_bytes / batch_max_latency →
 *   exactly_once: offset assigned, BATCH record logged to the write-ahead
 *   log (group commit) → AppendRows at that offset on the worker's
 *   COMMITTED stream (OK or ALREADY_EXISTS = written; retried at the same
 *   offset, byte-identical, until it is) → messages acked with results →
 *   WAL record released once every ack succeeded.
 *   at_least_once: AppendRows on the table's _default stream → ack.
 * Rows the server rejects (row_errors) are dead-lettered (stage "append")
 * and the rest logged again and resent at the same offset.
 *
 * Start-up (exactly_once): the WAL is replayed first: batches not known to
 * be written are appended again at their recorded offsets on their
 * recorded streams (ALREADY_EXISTS when they were), and every message id
 * the WAL still holds is remembered, so a redelivered message that was
 * already written or dead-lettered is acked without being written again.
 *
 * Threading: `workers` loop threads (each with its subscriber, its write
 * streams and a timer thread), one loop for the dead-letter publisher,
 * the WAL's writer thread. trb_streamer_* functions are thread-safe except
 * destroy.
 */
#ifndef TRB_SRC_STREAMER_STREAMER_H
#define TRB_SRC_STREAMER_STREAMER_H

#include <stdbool.h>
#include <stdint.h>

#include <grpc/status.h>

#include "src/common/status.h"
#include "src/rpc/rpc.h"
#include "src/streamer/metrics.h"
#include "src/streamer/pipeline.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Connections of a streamer. */
typedef struct trb_streamer_opts_s {
  /** Pub/Sub and BigQuery Storage channels (borrowed; must outlive the
   *  streamer). */
  trb_rpc_channel_t *pubsub;
  trb_rpc_channel_t *bigquery;
  /** TEST ONLY: milliseconds per "second" of ack deadline (must match the
   *  emulator's); 0 = 1000. */
  int ms_per_second;
} trb_streamer_opts_t;

/** Counters (monotonic unless noted). */
typedef struct trb_streamer_stats_s {
  uint64_t received;        /* messages delivered by the subscribers */
  uint64_t duplicates;      /* redeliveries acked without a write */
  uint64_t rows_written;    /* rows acknowledged by AppendRows */
  uint64_t batches_written; /* AppendRows requests acknowledged */
  uint64_t dead_letters;    /* dead letters confirmed */
  uint64_t dead_by_stage[4];/* per trb_dl_stage_t */
  uint64_t acks_ok;         /* acks with a SUCCESS result */
  uint64_t acks_failed;     /* acks with another result */
  uint64_t append_retries;  /* batches resent after a failed append */
  uint64_t replayed_batches;/* WAL batches appended again at start */
  uint64_t replayed_rows;
  uint64_t in_flight;       /* now: messages held (not yet acked) */
  uint64_t wal_full;        /* times a batch waited for WAL space */
  /** now: rows written per table, in trb_pipeline_t.tables order (the
   *  first 64 tables). */
  uint64_t table_rows[64];
} trb_streamer_stats_t;

typedef struct trb_streamer_s trb_streamer_t;

/**
 * Start: open the WAL and replay it (exactly_once), create the write
 * streams (one per worker and table; their schemas become the writer
 * schemas), the dead-letter publisher, and the subscribers.
 * Params:  p — loaded and finished pipeline (trb_pipeline_finish);
 *          borrowed, must outlive the streamer. o — borrowed.
 * Returns: OK; the failing step's status: FAILED_PRECONDITION (WAL locked
 *          by another process, a table without the write_metadata columns),
 *          DATA_LOSS (corrupt WAL), NOT_FOUND (table or subscription),
 *          UNAVAILABLE (service unreachable), ... — the message names the
 *          step and the resource.
 * Threading: blocks; call from a thread that is not a loop thread.
 */
grpc_status_code trb_streamer_start(const trb_pipeline_t *p,
                                    const trb_streamer_opts_t *o,
                                    trb_streamer_t **out, trb_status_t *st);

/** Copy the counters. Thread-safe. */
void trb_streamer_stats(trb_streamer_t *s, trb_streamer_stats_t *out);

/**
 * Readiness (for /readyz): true when the streamer is started and not
 * draining, no subscriber's StreamingPull ended for good (e.g. NOT_FOUND
 * after the subscription was deleted), the write-ahead log is writable
 * (exactly_once: trb_wal_health) and has room, and every table's writer is
 * usable with no AppendRows waiting for a resend.
 * Params:  why — may be NULL; when not ready, set to the first reason
 *          found (code: the failure's, or UNAVAILABLE; message names the
 *          worker / table / stream).
 * Returns: true when ready.
 * Threading: thread-safe (takes each worker's lock briefly); not after
 *          trb_streamer_destroy began.
 */
bool trb_streamer_check_ready(trb_streamer_t *s, trb_status_t *why);

/** trb_streamer_check_ready(s, NULL). */
bool trb_streamer_ready(trb_streamer_t *s);

/**
 * Snapshot of every /metrics value: the counters, per-table rows and dead
 * letters (per stage), the append and end-to-end latency histograms summed
 * over workers, the WAL's trb_wal_stats, the subscribers' streams opened,
 * reconnects and lease extensions (trb_ps_subscriber_stats) and the
 * writers' connections and retries (trb_bq_writer_get_stats; writers
 * replaced after a failure included), and readiness. `out->table_names` is borrowed from the streamer (valid until
 * destroy).
 * Threading: thread-safe; lock-free except for brief per-worker locks;
 *          not after trb_streamer_destroy began.
 */
void trb_streamer_metrics(trb_streamer_t *s, trb_stream_metrics_t *out);

/**
 * Drain: stop pulling, seal and append every batch, ack, close streams;
 * wait at most `grace_ms` (messages still held then are nacked and come
 * back — never lost). Idempotent.
 * Returns: OK; DEADLINE_EXCEEDED when the grace period ran out.
 * Threading: thread-safe; not on a loop thread.
 */
grpc_status_code trb_streamer_stop(trb_streamer_t *s, int64_t grace_ms,
                                   trb_status_t *st);

/** Stop (grace 0) if needed and free everything. NULL-safe. Exclusive. */
void trb_streamer_destroy(trb_streamer_t *s);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_STREAMER_STREAMER_H */
