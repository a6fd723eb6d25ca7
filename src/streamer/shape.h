/*
 * shape.h — the row a message becomes, before transcoding (pure, no I/O):
 * the message data as is, or with metadata columns added (as BigQuery
 * subscriptions' write_metadata: subscription_name, message_id,
 * publish_time, attributes), or as an envelope (the whole data as the
 * STRING column `payload`).
 *
 * Also the attributes of a dead letter: why a message could not be
 * written (stage, reason, table, JSON path) plus where it came from.
 *
 * Threading: thread-safe (no state).
 * Cost: JSON strings are escaped in place after one reservation (runs
 * found with src/common/json_scan.h); no allocation once `out`/`scratch`
 * have grown.
 */
#ifndef TRB_SRC_STREAMER_SHAPE_H
#define TRB_SRC_STREAMER_SHAPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <grpc/status.h>

#include "src/bigquery/transcode.h"
#include "src/common/arena.h"
#include "src/common/status.h"
#include "src/pubsub/codec.h"

#ifdef __cplusplus
extern "C" {
#endif

/** What a message carries besides its data. Borrowed strings. */
typedef struct trb_shape_meta_s {
  const char *subscription;
  const char *message_id;
  int64_t publish_time_s;
  int32_t publish_time_nanos;
  const trb_ps_attr_t *attrs;
  size_t n_attrs;
  /** Lengths of subscription / message_id when known; 0 = measure them
   *  (strlen). */
  size_t subscription_len;
  size_t message_id_len;
} trb_shape_meta_t;

/**
 * Build the JSON row for a message into `out` (reset first).
 * envelope: {"payload": "<data as a JSON string>"}; write_metadata: the
 * members "subscription_name", "message_id", "publish_time" (RFC 3339 UTC,
 * microseconds) and "attributes" (a JSON object text, as a string) are
 * added after the message's own members.
 * Returns: OK; INVALID_ARGUMENT when metadata must be added to data that is
 *          not a JSON object ("message data is not a JSON object");
 *          RESOURCE_EXHAUSTED.
 */
grpc_status_code trb_shape_row(const uint8_t *data, size_t len, bool envelope,
                               bool write_metadata, const trb_shape_meta_t *m,
                               trb_buf_t *out, trb_status_t *st);

/** Most top-level members trb_shape_extras adds: payload + 4 metadata. */
#define TRB_SHAPE_MAX_EXTRA 5

/** A message as a row text plus caller-supplied top-level members, for
 *  trb_bq_transcode_row_extra. Pointers refer to the message data, the
 *  meta strings, `ts` below and the scratch buffer given to
 *  trb_shape_extras: valid while those are (do not copy the struct). */
typedef struct trb_shape_extras_s {
  const char *row;
  size_t row_len;
  trb_bq_extra_field_t f[TRB_SHAPE_MAX_EXTRA];
  size_t n;
  char ts[64]; /* publish_time text */
} trb_shape_extras_t;

/**
 * The same row as trb_shape_row, as a row text plus members for
 * trb_bq_transcode_row_extra (transcoding it gives the same bytes as
 * transcoding trb_shape_row's text, without building that text; the one
 * difference: invalid UTF-8 in an attribute is reported at its byte in the
 * attributes' object text, "... at byte N of the value"):
 * envelope: row "{}", members payload = data (then the metadata ones);
 * write_metadata: row = data, members subscription_name, message_id,
 * publish_time, attributes (the attributes' JSON object text, "{}" when
 * none); neither: row = data, no members. publish_time is given as its
 * RFC 3339 text and, for times in years 0001-9999, also typed (has_us,
 * us = the text's microseconds since the epoch), so that a TIMESTAMP
 * column takes it without parsing the text back (same bytes).
 * Params:  scratch — holds the attributes' object text (reset first;
 *          reused across calls, no allocation once grown); x — filled.
 * Returns: OK; INVALID_ARGUMENT "$: message data is not a JSON object"
 *          exactly when trb_shape_row returns it; RESOURCE_EXHAUSTED.
 */
grpc_status_code trb_shape_extras(const uint8_t *data, size_t len,
                                  bool envelope, bool write_metadata,
                                  const trb_shape_meta_t *m, trb_buf_t *scratch,
                                  trb_shape_extras_t *x, trb_status_t *st);

/** Where the pipeline gave up on a message (attribute values). */
typedef enum trb_dl_stage_e {
  TRB_DL_PARSE = 0,     /* not JSON */
  TRB_DL_ROUTE = 1,     /* no route matched and no default table */
  TRB_DL_TRANSCODE = 2, /* does not fit the table's schema */
  TRB_DL_APPEND = 3,    /* BigQuery rejected the row (row error) */
} trb_dl_stage_t;

/** "parse", "route", "transcode", "append". */
const char *trb_dl_stage_name(trb_dl_stage_t s);

/** Attribute keys added to dead letters. */
#define TRB_DL_ATTR_STAGE "tributary_error_stage"
#define TRB_DL_ATTR_REASON "tributary_error_reason"
#define TRB_DL_ATTR_TABLE "tributary_table"
#define TRB_DL_ATTR_PATH "tributary_json_path"
#define TRB_DL_ATTR_SUBSCRIPTION "tributary_source_subscription"
#define TRB_DL_ATTR_MESSAGE_ID "tributary_source_message_id"
#define TRB_DL_ATTR_ATTEMPT "tributary_delivery_attempt"
#define TRB_DL_ATTR_PUBLISH_TIME "tributary_source_publish_time"

/** Most attributes of a dead letter besides the original ones. */
#define TRB_DL_MAX_EXTRA 8

/**
 * Split a transcoder / server message "<$.path>: <reason>" into its JSON
 * path and reason. Without a leading "$" the path is empty.
 * Params:  path — receives up to `cap` bytes, NUL-terminated.
 * Returns: pointer to the reason inside `msg`.
 */
const char *trb_dl_split_path(const char *msg, char *path, size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_STREAMER_SHAPE_H */
