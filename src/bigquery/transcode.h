/*
 * transcode.h — JSON rows to serialized protobuf rows for the writer
 * schema of src/bigquery/descriptor.h (pure codec, no I/O): what a Storage
 * Write client does for JsonStreamWriter-style appends before it fills
 * ProtoRows.serialized_rows.
 *
 * JSON reader: a schema-driven, single-pass recursive-descent reader over
 * the input bytes written for this file — no DOM, no per-value allocation
 * (strings without escapes are copied straight from the input; a scratch
 * buffer is used only for escaped strings), numbers kept as their source
 * text so NUMERIC/BIGNUMERIC are exact and INT64 never passes through a
 * double. Chosen over jansson (a DOM: ~150k events/s parse-only on the
 * project machine, TOOLCHAIN.md, below the 250k/s target, and it turns
 * decimals into doubles) and jsmn (not packaged in the toolchain; tokens
 * still need a second pass for escapes and numbers). It accepts exactly
 * RFC 8259 JSON (UTF-8 checked; no comments, trailing commas, NaN literals;
 * nesting deeper than TRB_BQ_JSON_MAX_DEPTH rejected).
 *
 * Conversion rules (PROTOCOL.md A.6 fact 38, Java JsonToProtoMessage):
 *   - the row is a JSON object; keys match column names case-insensitively;
 *     an unknown key is a row error unless opts->ignore_unknown_fields; the
 *     same column twice (in any case) is a row error;
 *   - null or an absent key: NULLABLE omitted, REPEATED empty, REQUIRED a
 *     row error; null inside an array is a row error;
 *   - STRING: string, or an integer or boolean as its JSON text;
 *     BYTES: base64 string (RFC 4648, padding optional) or an array of
 *     integers 0..255;
 *   - INT64: integer number or a string holding one ("+"/"-" allowed),
 *     range-checked to int64; fractions and exponents rejected;
 *   - FLOAT64: number, or a string holding a number, "NaN", "Infinity",
 *     "-Infinity";
 *   - BOOL: true/false or the strings "true"/"false" (any case);
 *   - NUMERIC/BIGNUMERIC: number or string, exact decimal (values.h
 *     rounding: half away from zero beyond scale 9/38; range-checked),
 *     encoded as little-endian two's complement bytes (fact 36);
 *   - TIMESTAMP: a string parsed leniently like Java,
 *     "yyyy[-/]MM[-/]dd[T| ]HH:mm[:ss][.f{1,9}][ ][Z|UTC|±HH:MM|±HHMM]"
 *     (no zone = UTC; fraction digits beyond microseconds must be zero),
 *     or — an extension BigQuery's own literals allow, Java does not — a
 *     bare date "yyyy-MM-dd" (midnight UTC); or an integer number or
 *     integer string = microseconds since the epoch; range-checked;
 *   - DATE: "YYYY-MM-DD" or an integer (days since the epoch), range-checked;
 *   - TIME, DATETIME: literal text (values.h parse rules; DATETIME accepts
 *     'T' or ' ') or an integer already CivilTimeEncoder-packed (checked);
 *   - GEOGRAPHY, INTERVAL: string, passed through;
 *   - JSON: a string is passed through; an object, array, number or boolean
 *     is serialized compactly (insignificant whitespace removed, text
 *     otherwise as written);
 *   - RECORD: object (recursively); REPEATED: array.
 * RANGE<T>: a table from trb_bq_table_from_write_schema models it as a
 * RECORD {start T, end T}, so the value is an object {"start":..,"end":..}
 * (missing or null bound = unbounded). Range literal strings
 * ("[2024-01-01, UNBOUNDED)") are not accepted.
 *
 * Errors: a row error is INVALID_ARGUMENT with "<JSON path>: <reason>", the
 * path in the row's terms ("$.items[2].price: NUMERIC out of range",
 * "$: unexpected character 'x' at byte 17").
 *
 * Threading: thread-safe (no shared state); `t` is only read.
 * Cost: one pass over the text; column names are matched by length, then
 * exactly, then case-insensitively, with each fields array's name lengths
 * measured once per call (arrays of up to 64 columns, 8 arrays per row;
 * beyond that the byte-by-byte search) — nothing is cached across calls,
 * so a table may be freed and another built at the same address.
 * Source: PROTOCOL.md A.6 facts 33–38; protobuf wire format (varint,
 * fixed64, length-delimited; repeated scalars written unpacked, which
 * proto2 parsers accept either way); RFC 8259; RFC 4648.
 */
#ifndef TRB_SRC_BIGQUERY_TRANSCODE_H
#define TRB_SRC_BIGQUERY_TRANSCODE_H

#include <stdbool.h>
#include <stddef.h>

#include <grpc/status.h>

#include "src/bigquery/schema.h"
#include "src/common/arena.h"
#include "src/common/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Deepest JSON nesting accepted (objects and arrays). */
#define TRB_BQ_JSON_MAX_DEPTH 64

/**
 * A top-level key to watch while a row is transcoded (the streamer's route
 * field: it routes on the first occurrence and checks the last one here).
 * Watching never changes the output bytes or the error messages.
 */
typedef struct trb_bq_watch_s {
  /** In: the key as spelled between the quotes in the row text (raw, not
   *  unescaped: compared byte for byte, like trb_json_field); borrowed. */
  const char *key;
  size_t key_len;
  /** Out (valid when the call returns OK): how many members of the row's
   *  top-level object have that key (extras and nested objects are not
   *  counted), and the raw text of the last one's value (a string with
   *  its quotes, as written; no surrounding whitespace) — a span of the
   *  row text; NULL/0 when count is 0. */
  size_t count;
  const char *last;
  size_t last_len;
} trb_bq_watch_t;

/** Per-call options. */
typedef struct trb_bq_transcode_opts_s {
  /** Skip keys that name no column (Java ignoreUnknownFields) instead of
   *  failing the row. */
  bool ignore_unknown_fields;
  /** NULL, or a key to watch (filled in by the call; see trb_bq_watch_t). */
  trb_bq_watch_t *watch;
} trb_bq_transcode_opts_t;

/**
 * Convert one JSON row (`len` bytes at `json`, no NUL needed) into the
 * serialized protobuf message of trb_bq_descriptor_build(t) and append it
 * to `out`.
 * Params:  t — table definition (borrowed).
 *          opts — NULL for defaults (unknown keys are errors).
 *          out — receives the row bytes (appended); on any error its
 *          length is restored, so no partial row is ever left.
 * Returns: OK; INVALID_ARGUMENT (row error, message as above);
 *          RESOURCE_EXHAUSTED.
 */
grpc_status_code trb_bq_transcode_row(const trb_bq_table_t *t,
                                      const char *json, size_t len,
                                      const trb_bq_transcode_opts_t *opts,
                                      trb_buf_t *out, trb_status_t *st);

/**
 * A top-level column value given by the caller instead of the row text:
 * what a pipeline adds to every row (subscription name, message id,
 * publish time, attributes as JSON text, or the whole message as the
 * payload of an envelope row) without rewriting the row text.
 */
typedef struct trb_bq_extra_field_s {
  /** Column name, NUL-terminated, matched like a key of the row
   *  (case-insensitively); borrowed for the call. */
  const char *name;
  /** The value's text, as the decoded content of a JSON string (no
   *  quotes, no escapes; any bytes but invalid UTF-8); borrowed for the
   *  call; may be NULL when value_len is 0. */
  const char *value;
  size_t value_len;
  /** Optional typed form of a timestamp value (false/0, the zero value,
   *  when not given): with has_us the caller guarantees that `value` is a
   *  timestamp text the TIMESTAMP rules above read as exactly `us`
   *  microseconds since the epoch, within TIMESTAMP's range (e.g. RFC 3339
   *  "YYYY-MM-DDTHH:MM:SS.ffffffZ", years 0001-9999). A TIMESTAMP column
   *  then takes `us` without parsing the text (the same bytes); any other
   *  column type still reads the text. */
  bool has_us;
  int64_t us;
} trb_bq_extra_field_t;

/**
 * As trb_bq_transcode_row on the row text with `n_extra` members
 * `"name": "<value>"` (value JSON-escaped) appended, in order, at the end
 * of its top-level object — the same output bytes and the same error
 * messages, except that invalid UTF-8 in a value is reported as
 * "$.<name>: invalid UTF-8 in string at byte N of the value" (N counted
 * in the value) — but without building that text or reading it again.
 * A column given by the row and by an extra is "field given twice" (path
 * of the extra); an extra naming no column is skipped with
 * opts->ignore_unknown_fields, else a row error.
 * Params:  extra — array of n_extra values (borrowed); NULL when n_extra
 *          is 0. Others as trb_bq_transcode_row.
 * Returns: as trb_bq_transcode_row.
 * Threading: thread-safe; `t` and `extra` are only read.
 */
grpc_status_code trb_bq_transcode_row_extra(
    const trb_bq_table_t *t, const char *json, size_t len,
    const trb_bq_extra_field_t *extra, size_t n_extra,
    const trb_bq_transcode_opts_t *opts, trb_buf_t *out, trb_status_t *st);

/**
 * Parse-only: check that `len` bytes at `json` are one well-formed JSON
 * value (same reader and rules as trb_bq_transcode_row, no conversion).
 * Returns: OK; INVALID_ARGUMENT with the byte offset of the problem.
 */
grpc_status_code trb_bq_json_check(const char *json, size_t len,
                                   trb_status_t *st);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_BIGQUERY_TRANSCODE_H */
