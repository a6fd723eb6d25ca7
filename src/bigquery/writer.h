/*
 * writer.h — a BigQuery Storage Write client for JSON rows: one write
 * stream at a time (an explicit COMMITTED, PENDING or BUFFERED stream it
 * creates, or the table's _default stream), one AppendRows connection at a
 * time, rows transcoded with src/bigquery/transcode.h against a writer
 * schema built from the server's TableSchema (src/bigquery/descriptor.h)
 * and rebuilt when the server reports a newer one.
 *
 * Protocol (PROTOCOL.md part A):
 *   - COMMITTED/PENDING/BUFFERED: CreateWriteStream(parent=table, type),
 *     whose FULL view carries table_schema (fact 9); _default:
 *     GetWriteStream (name=<table>/streams/_default, view FULL) (fact 10).
 *   - AppendRows is opened with `x-goog-request-params:
 *     write_stream=<name>` (fact 25); the first request on each connection
 *     carries write_stream and writer_schema, later ones neither (11, 12).
 *   - Offsets (explicit streams only; never on _default, fact 5) are
 *     tracked by the client: each request carries the offset of its first
 *     row.
 *   - Requests are split so that each stays under `max_request_bytes`
 *     (default 9 MB, headroom under the 10 MB limit of fact 24).
 *   - Responses come in request order (fact 16). A broken connection is
 *     reopened after a backoff and every unanswered request is resent in
 *     order with its original offset (fact 29); ALREADY_EXISTS on a request
 *     with an offset means it was written (fact 30) and counts as success
 *     (a reply lost after the server wrote the rows).
 *     Retryable in-stream errors (trb_rpc_is_retryable APPEND_ROWS:
 *     ABORTED, UNAVAILABLE, CANCELLED, INTERNAL, DEADLINE_EXCEEDED,
 *     UNKNOWN, RESOURCE_EXHAUSTED) resend the request after a backoff: on
 *     the same connection when nothing in flight depends on its offset
 *     (_default, or the only request in flight; on _default it then goes
 *     behind the requests already in flight), else by reopening the
 *     connection as above.
 *     Retries stop for an append after max_retry_ms (total retry time,
 *     default 5 minutes as Java's maxRetryDuration) — it fails with the
 *     last status and the writer goes on with the others — or for every
 *     queued append after max_attempts consecutive failures (the writer
 *     then stops).
 *     A request that fails for good (row errors, INVALID_ARGUMENT, an
 *     OUT_OF_RANGE the client did not cause, an expired retry, ...) is
 *     reported to its append; the offsets of the requests behind it are
 *     moved down by its row count, and if any of them were already sent
 *     the connection is reopened so they are resent at their new offsets
 *     (the server had rejected them with OUT_OF_RANGE anyway, fact 30).
 *   - updated_schema (fact 22): when a response carries a TableSchema that
 *     differs from the writer's, the writer schema (descriptor and
 *     transcoding table) is rebuilt and used for every append encoded
 *     after that point. Requests encoded before keep their writer schema:
 *     they are sent (and resent) on connections opened with it; the first
 *     request under the new schema waits until the current connection has
 *     no request in flight and then opens a new connection whose first
 *     request carries the new writer_schema (as the Java client does). No
 *     row is lost or sent twice by the switch. A JSON key the old schema
 *     lacked is handled by the unknown-field policy (ignore_unknown_fields)
 *     until the new schema is in place.
 *   - Rotation (trb_bq_writer_rotate): FinalizeWriteStream on the current
 *     stream once its appends are done, CreateWriteStream for the next;
 *     appends made meanwhile wait and go to the new stream from offset 0.
 *   - BUFFERED: trb_bq_writer_flush calls FlushRows (fact 28).
 *
 * Exactly-once: on an explicit stream every row is written exactly once
 * across reconnects, retries, schema switches and rotations (offsets +
 * ALREADY_EXISTS). On _default (no offsets) a resent request may
 * duplicate rows: at-least-once, as the official clients document.
 *
 * Threading: trb_bq_writer_append is thread-safe. Completion callbacks run
 * on the loop's thread — or on the writer's reconnect thread when it gives
 * up or an append's retry time runs out while reconnecting, on the
 * caller's thread before trb_bq_writer_append returns for an append that
 * produced no request, on the rotating thread for appends failed by a
 * rotation that could not open the new stream, and on the destroying
 * thread for appends cancelled by trb_bq_writer_destroy. They never run
 * with a writer lock held and may call trb_bq_writer_append.
 * Each writer owns one thread (reconnects after a backoff, resumes sending
 * after an in-stream retry's backoff). create/finalize/rotate/flush/destroy
 * block and must not be called on the loop's thread.
 * Source: google/cloud/bigquery/storage/v1/storage.proto, stream.proto;
 * PROTOCOL.md A facts 5, 7–12, 16–22, 24–31.
 */
#ifndef TRB_SRC_BIGQUERY_WRITER_H
#define TRB_SRC_BIGQUERY_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <grpc/status.h>

#include "src/bigquery/schema.h"
#include "src/common/status.h"
#include "src/rpc/rpc.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Which write stream a writer appends to (WriteStream.Type). */
typedef enum trb_bq_stream_kind_e {
  /** The table's _default stream: committed on ack, no offsets. */
  TRB_BQ_STREAM_DEFAULT = 0,
  /** A new explicit COMMITTED stream: committed on ack, with offsets. */
  TRB_BQ_STREAM_COMMITTED = 1,
  /** A new explicit PENDING stream: with offsets; rows become visible only
   *  after trb_bq_writer_finalize and trb_bq_batch_commit (fact 7). */
  TRB_BQ_STREAM_PENDING = 2,
  /** A new explicit BUFFERED stream: with offsets; rows become visible
   *  only up to the offset given to trb_bq_writer_flush (fact 8, 28). */
  TRB_BQ_STREAM_BUFFERED = 3,
} trb_bq_stream_kind_t;

/** Writer settings. Zero-initialize, then set what you need. */
typedef struct trb_bq_writer_config_s {
  /** Table "projects/{p}/datasets/{d}/tables/{t}". Required; copied. */
  const char *table;
  trb_bq_stream_kind_t kind;
  /** Largest serialized AppendRowsRequest, bytes; 0 = 9,000,000. */
  size_t max_request_bytes;
  /** Unknown JSON keys are skipped instead of being row errors. */
  bool ignore_unknown_fields;
  /** Backoff before a reconnect: first ceiling and cap, milliseconds;
   *  0 = 50 and 5000. */
  int64_t backoff_initial_ms;
  int64_t backoff_max_ms;
  /** Consecutive failed attempts (reconnects or retryable errors without
   *  any acknowledged request in between) before every queued append
   *  fails with the last status and the writer stops (FAILED_PRECONDITION
   *  for later appends); 0 = 10. */
  int max_attempts;
  /** Total retry time per append, milliseconds: an append still waiting
   *  on retries (reconnects, retryable in-stream errors) this long after
   *  the first failure it waited on fails with the last status, at the
   *  next failure (so within one backoff of the limit); the writer goes on
   *  with the appends behind it (on a stream with offsets they move down).
   *  0 = 300000 (5 minutes, the Java client's default maxRetryDuration,
   *  fact 29); < 0 = no time limit. Whichever of this and max_attempts
   *  comes first applies. */
  int64_t max_retry_ms;
  /** COMMITTED / PENDING / BUFFERED: the name of an existing stream of
   *  `table` to append to (GetWriteStream, view FULL) instead of creating
   *  one — e.g. to resend logged rows after a restart. The writer does not
   *  know such a stream's length: give explicit offsets
   *  (trb_bq_writer_append_encoded). NULL = create a new stream. Copied. */
  const char *stream_name;
} trb_bq_writer_config_t;

/** One rejected row of an append. */
typedef struct trb_bq_row_error_s {
  /** Index of the row in the `json_rows` array given to the append. */
  size_t index;
  /** Reason: the transcoder's "<JSON path>: <reason>" for rows rejected
   *  before sending, or the server's RowError.message. */
  const char *message;
} trb_bq_row_error_t;

/** The outcome of one append; everything borrowed for the callback. */
typedef struct trb_bq_append_result_s {
  /** OK: every row not listed in `row_errors` was written. Otherwise the
   *  first failure of the append's requests (INVALID_ARGUMENT for rows the
   *  server rejected; the in-stream or connection status else); rows of
   *  the append's other requests may have been written (`rows_written`). */
  grpc_status_code code;
  const char *message;
  /** Offset of the append's first written row on a COMMITTED stream (the
   *  server's AppendResult.offset of its first request); -1 on _default or
   *  when nothing was written. */
  int64_t offset;
  /** Rows of this append acknowledged by the server. */
  size_t rows_written;
  /** Rows not written because they were rejected: by the transcoder (bad
   *  JSON / schema mismatch; those rows are left out of the request, the
   *  others are sent) or by the server (AppendRowsResponse.row_errors;
   *  then no row of that request is written, fact 21, and `code` is
   *  INVALID_ARGUMENT). Ordered by index within each source. */
  const trb_bq_row_error_t *row_errors;
  size_t n_row_errors;
} trb_bq_append_result_t;

/** Append completion: exactly once per trb_bq_writer_append that returned
 *  OK (see the threading note above for the thread). */
typedef void (*trb_bq_append_cb)(void *user, const trb_bq_append_result_t *r);

typedef struct trb_bq_writer_s trb_bq_writer_t;

/**
 * Create the writer: create or look up the write stream, fetch its schema,
 * build the writer schema, and open the AppendRows connection (lazily
 * connected by gRPC).
 * Params:  loop, ch — borrowed; must outlive the writer. cfg — borrowed.
 *          out — receives the writer (owned; trb_bq_writer_destroy).
 * Returns: OK; INVALID_ARGUMENT (no table, unusable schema); the status of
 *          CreateWriteStream / GetWriteStream (NOT_FOUND for an unknown
 *          table, ...); RESOURCE_EXHAUSTED.
 * Threading: blocks; not on `loop`'s thread.
 */
grpc_status_code trb_bq_writer_create(trb_rpc_loop_t *loop,
                                      trb_rpc_channel_t *ch,
                                      const trb_bq_writer_config_t *cfg,
                                      trb_bq_writer_t **out, trb_status_t *st);

/** The write stream's name ("projects/../streams/<id>" or "_default"
 *  form); valid until destroy (a rotation makes it the old stream's name:
 *  call again for the new one). Not concurrently with
 *  trb_bq_writer_rotate. */
const char *trb_bq_writer_stream(const trb_bq_writer_t *w);

/**
 * Append `n` JSON rows (each a NUL-terminated JSON object; borrowed for the
 * call). Rows that do not transcode are left out and reported in the
 * result's row_errors; the others are sent in order, split into requests
 * under max_request_bytes, offsets assigned consecutively.
 * Params:  cb — required; user — its argument.
 * Returns: OK (cb will run exactly once); INVALID_ARGUMENT (NULL cb, a row
 *          larger than max_request_bytes); FAILED_PRECONDITION after a
 *          fatal writer error or while destroying; RESOURCE_EXHAUSTED.
 *          On error cb is not called and nothing is sent.
 */
grpc_status_code trb_bq_writer_append(trb_bq_writer_t *w,
                                      const char *const *json_rows, size_t n,
                                      trb_bq_append_cb cb, void *user,
                                      trb_status_t *st);

/** A writer schema: the table schema rows are encoded against, sent as
 *  writer_schema with them (opaque, reference-counted). */
typedef struct trb_bq_writer_schema_s trb_bq_writer_schema_t;

/**
 * The writer schema new appends use now (the server's table schema at
 * create, replaced when AppendRowsResponse.updated_schema or a rotation
 * brings a newer one). Returns a reference: release it with
 * trb_bq_writer_schema_release. Thread-safe.
 */
trb_bq_writer_schema_t *trb_bq_writer_schema(trb_bq_writer_t *w);

/** The table definition of a writer schema, for trb_bq_transcode_row
 *  (borrowed while the reference is held). */
const trb_bq_table_t *trb_bq_writer_schema_table(const trb_bq_writer_schema_t *s);

/** Drop a reference from trb_bq_writer_schema. NULL-safe. Thread-safe. */
void trb_bq_writer_schema_release(trb_bq_writer_t *w, trb_bq_writer_schema_t *s);

/**
 * Append rows the caller already serialized (trb_bq_transcode_row against
 * `schema`'s table) as ONE AppendRowsRequest — the streamer's path: its
 * write-ahead log holds exactly these bytes, so a resend after a crash is
 * byte-identical.
 * Params:  schema — the writer schema the rows were encoded against (a
 *          reference from trb_bq_writer_schema; the writer takes its own),
 *          or NULL for the current one.
 *          offset — on explicit streams, the offset of the first row
 *          (later appends without an offset continue after it); -1 = the
 *          writer's next offset, or none on _default.
 *          rows — the concatenated rows; row_lens — `n` (>= 1) lengths.
 *          Both copied. Row indexes in the result are 0..n-1.
 * Returns: OK (cb will run exactly once, as for trb_bq_writer_append);
 *          INVALID_ARGUMENT (no rows or callback, an offset on _default,
 *          over max_request_bytes); FAILED_PRECONDITION after a fatal
 *          writer error or while destroying; RESOURCE_EXHAUSTED.
 * Threading: thread-safe.
 */
grpc_status_code trb_bq_writer_append_encoded(
    trb_bq_writer_t *w, trb_bq_writer_schema_t *schema, int64_t offset,
    const uint8_t *rows, const size_t *row_lens, size_t n, trb_bq_append_cb cb,
    void *user, trb_status_t *st);

/**
 * Fetch the table schema again (GetWriteStream, view FULL, on the stream in
 * use) and, when it differs from the current writer schema, make it the
 * writer schema of later appends — what the official writers do when a row
 * has a field the writer schema lacks (a column added since the stream was
 * opened, before any updated_schema arrived).
 * Params:  changed — may be NULL; set true when the schema was replaced.
 * Returns: OK; the RPC's status; INVALID_ARGUMENT (an unusable schema);
 *          RESOURCE_EXHAUSTED.
 * Threading: blocks; not on the loop's thread; thread-safe otherwise.
 */
grpc_status_code trb_bq_writer_refresh_schema(trb_bq_writer_t *w, bool *changed,
                                              trb_status_t *st);

/** Counters since create (monotonic). */
typedef struct trb_bq_writer_stats_s {
  /** AppendRows connections opened (1 when nothing went wrong). */
  int64_t connections;
  /** AppendRowsRequests written, including resends. */
  int64_t requests_sent;
  /** Requests written again after a reconnect or a retryable error. */
  int64_t requests_resent;
  /** Resent requests answered ALREADY_EXISTS (already written). */
  int64_t already_exists;
  /** Retryable in-stream errors (AppendRowsResponse.error). */
  int64_t retries;
  /** Newer table schemas taken from AppendRowsResponse.updated_schema
   *  (each rebuilt the writer schema for the appends that follow). */
  int64_t schema_updates;
  /** Connections reopened to send requests encoded under a different
   *  writer schema than the current connection's. */
  int64_t schema_reconnects;
  /** Completed trb_bq_writer_rotate calls. */
  int64_t rotations;
  /** Requests failed because they hit max_retry_ms. */
  int64_t retries_expired;
} trb_bq_writer_stats_t;

/** Copy the counters. Thread-safe. */
void trb_bq_writer_get_stats(trb_bq_writer_t *w, trb_bq_writer_stats_t *out);

/** Appends whose callback has not run yet. Thread-safe. */
size_t trb_bq_writer_pending(trb_bq_writer_t *w);

/**
 * FinalizeWriteStream (COMMITTED or PENDING; fact 26): no more appends will be
 * accepted by the server. Call after every append has completed.
 * Params:  row_count — receives FinalizeWriteStreamResponse.row_count.
 * Returns: OK; FAILED_PRECONDITION on _default or with appends pending;
 *          the RPC's status.
 * Threading: blocks; not on the loop's thread.
 */
grpc_status_code trb_bq_writer_finalize(trb_bq_writer_t *w,
                                        int64_t *row_count, trb_status_t *st);

/**
 * Stream rotation (COMMITTED, PENDING or BUFFERED): finalize the current
 * write stream and continue on a new one of the same type, without gaps or
 * duplicates. Appends made from the moment of the call go to the new
 * stream, at offsets from 0 (they are held until it exists); the appends
 * made before are completed on the old stream first (retries and resends
 * included), then the old stream's connection is closed,
 * FinalizeWriteStream is called on it and CreateWriteStream opens the new
 * one (whose table schema replaces the writer schema if it is newer).
 * Params:  row_count — may be NULL; receives the old stream's
 *          FinalizeWriteStreamResponse.row_count.
 *          old_stream — may be NULL; receives the old stream's name
 *          (trb_malloc'd; trb_free) — a PENDING stream still needs
 *          trb_bq_batch_commit, a BUFFERED one its last flush before.
 * Returns: OK; FAILED_PRECONDITION on _default, while another rotation
 *          runs, after a fatal writer error or while destroying; the
 *          status of FinalizeWriteStream — then nothing changed and the
 *          writer carries on with the old stream (the held appends follow
 *          its rows); the status of CreateWriteStream — then the old stream
 *          is finalized, there is no new one, the held appends fail with
 *          that status and the writer stops (FAILED_PRECONDITION after).
 * Threading: blocks; not on the loop's thread; not concurrently with
 *          finalize, flush, destroy or trb_bq_writer_stream. Appends may
 *          run concurrently.
 */
grpc_status_code trb_bq_writer_rotate(trb_bq_writer_t *w, int64_t *row_count,
                                      char **old_stream, trb_status_t *st);

/**
 * FlushRows on a BUFFERED stream: rows at offsets up to and including
 * `offset` become visible (fact 28). Offsets are those the appends'
 * results report (trb_bq_append_result_t.offset + rows).
 * Params:  flushed_offset — may be NULL; receives FlushRowsResponse.offset.
 * Returns: OK; FAILED_PRECONDITION for other stream kinds; INVALID_ARGUMENT
 *          (offset < 0); the RPC's status (OUT_OF_RANGE beyond the rows
 *          written, ...).
 * Threading: blocks; not on the loop's thread; thread-safe otherwise.
 */
grpc_status_code trb_bq_writer_flush(trb_bq_writer_t *w, int64_t offset,
                                     int64_t *flushed_offset, trb_status_t *st);

/**
 * BatchCommitWriteStreams: commit finalized PENDING streams of `table`
 * atomically (fact 27).
 * Params:  table — "projects/{p}/datasets/{d}/tables/{t}"; streams — `n`
 *          stream names (trb_bq_writer_stream); all borrowed.
 *          commit_time_us — may be NULL; receives the commit time in
 *          microseconds since the epoch on success.
 * Returns: OK when committed; FAILED_PRECONDITION when the response lists
 *          stream_errors (then no stream was committed; `st` names the
 *          first stream, its StorageErrorCode and message), or when it has
 *          no commit_time; INVALID_ARGUMENT (n == 0); the RPC's status.
 * Threading: blocks; not on `loop`'s thread.
 */
grpc_status_code trb_bq_batch_commit(trb_rpc_loop_t *loop,
                                     trb_rpc_channel_t *ch, const char *table,
                                     const char *const *streams, size_t n,
                                     int64_t *commit_time_us,
                                     trb_status_t *st);

/**
 * Close the connection and free the writer. Appends still pending complete
 * with CANCELLED (on this thread). NULL-safe. Not on the loop's thread.
 */
void trb_bq_writer_destroy(trb_bq_writer_t *w);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_BIGQUERY_WRITER_H */
