/*
 * metrics.h — the streamer's metrics: lock-free latency histograms (recorded
 * on the hot path) and the Prometheus text exposition of a snapshot
 * (trb_stream_metrics_t → text; pure, no I/O). Served on /metrics by
 * ops_http.h.
 *
 * Exposed (all prefixed tributary_stream_; counters end in _total):
 *   messages_received_total, duplicates_acked_total,
 *   rows_appended_total{table}, batches_appended_total,
 *   dead_letters_total{stage,table} (table="" when none: parse, route),
 *   dead_letters_confirmed_total, acks_total{result="ok"|"failed"},
 *   append_retries_total, messages_in_flight (gauge),
 *   append_latency_seconds (histogram: AppendRows sent → acknowledged),
 *   end_to_end_latency_seconds (histogram: Pub/Sub publish_time → row
 *     acknowledged by BigQuery, per message),
 *   wal_live_bytes, wal_live_segments, wal_unreleased_records (gauges),
 *   wal_records_appended_total, wal_bytes_written_total, wal_full_total,
 *   replayed_batches_total, replayed_rows_total,
 *   pubsub_streams_opened_total, pubsub_reconnects_total,
 *   lease_extensions_total, bigquery_connections_total,
 *   bigquery_append_retries_total, up (gauge, 1), ready (gauge, 0/1).
 *
 * Source: Prometheus text exposition format 0.0.4
 * (prometheus.io/docs/instrumenting/exposition_formats): HELP/TYPE lines,
 * label values escaped (\\, \", \n), histogram buckets cumulative with
 * le="+Inf" equal to _count.
 */
#ifndef TRB_SRC_STREAMER_METRICS_H
#define TRB_SRC_STREAMER_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "src/common/arena.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Finite histogram bucket bounds (le, seconds); one more bucket is +Inf. */
#define TRB_SM_BOUNDS 15
/** The bounds: 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10
 *  30 60 (seconds). */
extern const double trb_sm_bounds_s[TRB_SM_BOUNDS];

/** Most tables with their own rows / dead-letter series (the pipeline's
 *  first 64; matches trb_streamer_stats_t.table_rows). */
#define TRB_SM_MAX_TABLES 64
/** Dead-letter stages (trb_dl_stage_t: parse, route, transcode, append). */
#define TRB_SM_STAGES 4

/**
 * A live latency histogram: per-bucket counts (NOT cumulative; index
 * TRB_SM_BOUNDS is +Inf) and the sum in microseconds. Zero-initialise.
 * Written with relaxed atomic adds (no lock); read with trb_sm_hist_read.
 */
typedef struct trb_sm_hist_s {
  uint64_t bucket[TRB_SM_BOUNDS + 1];
  uint64_t sum_us;
} trb_sm_hist_t;

/**
 * Record one observation of `us` microseconds (negative = 0).
 * Threading: thread-safe, lock-free (two relaxed atomic adds).
 */
void trb_sm_hist_observe(trb_sm_hist_t *h, int64_t us);

/**
 * Record `n` observations of the same value (one batch's append latency
 * for each of its rows, e.g.). Threading: as trb_sm_hist_observe.
 */
void trb_sm_hist_observe_n(trb_sm_hist_t *h, int64_t us, uint64_t n);

/**
 * Add `h`'s current counts into `acc` (plain, not shared): sums per-worker
 * histograms into one snapshot. Each field is read atomically; the fields
 * together are not one instant (a scrape may see a bucket before its sum).
 * Threading: thread-safe for `h`; `acc` owned by the caller.
 */
void trb_sm_hist_read(const trb_sm_hist_t *h, trb_sm_hist_t *acc);

/** Observations in a snapshot (the sum of its buckets). */
uint64_t trb_sm_hist_count(const trb_sm_hist_t *h);

/** A snapshot of everything /metrics shows. Zero-initialise, then fill. */
typedef struct trb_stream_metrics_s {
  bool ready;
  uint64_t received, duplicates;
  uint64_t rows_written, batches_written;
  uint64_t dead_letters;            /* confirmed by the dead-letter topic */
  uint64_t acks_ok, acks_failed;
  uint64_t append_retries;
  uint64_t in_flight;               /* gauge */
  uint64_t wal_full;
  uint64_t replayed_batches, replayed_rows;
  /** Tables: `n_tables` (<= TRB_SM_MAX_TABLES) names, borrowed. */
  size_t n_tables;
  const char *const *table_names;
  uint64_t table_rows[TRB_SM_MAX_TABLES];
  /** Dead letters per stage and table; column TRB_SM_MAX_TABLES = none. */
  uint64_t dead[TRB_SM_STAGES][TRB_SM_MAX_TABLES + 1];
  /** WAL (trb_wal_stats); has_wal false = at_least_once, no WAL series. */
  bool has_wal;
  uint64_t wal_live_bytes, wal_live_segments, wal_unreleased_records;
  uint64_t wal_records_appended, wal_bytes_written;
  /** Subscribers (trb_ps_subscriber_stats, summed over workers). */
  uint64_t streams_opened, reconnects, lease_extensions;
  /** Writers (trb_bq_writer_get_stats, summed over every writer). */
  uint64_t bq_connections, bq_retries;
  trb_sm_hist_t append_latency; /* per AppendRows request */
  trb_sm_hist_t e2e_latency;    /* per message */
} trb_stream_metrics_t;

/**
 * Append the Prometheus text exposition of `m` to `out`.
 * Returns: 0; -ENOMEM (out keeps what was appended).
 * Threading: thread-compatible (pure).
 */
int trb_stream_metrics_render(const trb_stream_metrics_t *m, trb_buf_t *out);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_STREAMER_METRICS_H */
