/*
 * schema.h — BigQuery table definitions as a pure codec (no I/O): the JSON
 * schema that `bq mk --schema` takes, a table file that adds table options,
 * and conversion to and from the Storage Write API's TableSchema.
 *
 * Table file format (one BigQuery table; see examples/tables/):
 *   - either the bare schema array: [{"name": "id", "type": "STRING",
 *     "mode": "REQUIRED"}, ...]
 *   - or an object with the BigQuery REST Table resource's names:
 *     {"description": "...",
 *      "timePartitioning": {"type": "DAY", "field": "event_time"},
 *      "clustering": {"fields": ["product_id"]},
 *      "schema": [...] | {"fields": [...]}}
 * Field keys: name (required), type (required), mode, fields, description,
 * maxLength, precision, scale (numbers or decimal strings, as the REST API
 * writes int64), defaultValueExpression (top-level columns only; a literal
 * as src/bigquery/default_expr.h accepts, checked against the column's
 * type: INVALID_ARGUMENT otherwise). Types: STRING, BYTES, INTEGER/INT64, FLOAT/FLOAT64,
 * NUMERIC, BIGNUMERIC, BOOLEAN/BOOL, TIMESTAMP, DATE, TIME, DATETIME,
 * GEOGRAPHY, JSON, INTERVAL, RECORD/STRUCT (case-insensitive). Modes:
 * NULLABLE (default), REQUIRED, REPEATED. Unknown keys, bad types or modes,
 * duplicate names (case-insensitive, per level), RECORD without fields or
 * fields on a non-RECORD are INVALID_ARGUMENT with the JSON path of the
 * problem ("$.schema[2].type: unknown type \"TEXT\"").
 *
 * Memory: a trb_bq_table_t owns everything it points to (trb_malloc);
 * release with trb_bq_table_deinit.
 * Threading: thread-compatible; functions keep no state.
 * Source: BigQuery REST Table resource (schema.fields, timePartitioning,
 * clustering, description) and `bq mk --schema` JSON;
 * google/cloud/bigquery/storage/v1/table.proto (TableSchema,
 * TableFieldSchema; PROTOCOL.md A.1 fact 3).
 */
#ifndef TRB_SRC_BIGQUERY_SCHEMA_H
#define TRB_SRC_BIGQUERY_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <grpc/status.h>

#include "google/cloud/bigquery/storage/v1/table.pb.h"
#include "src/common/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Column types; values equal google.cloud.bigquery.storage.v1.
 *  TableFieldSchema.Type. */
typedef enum trb_bq_type_e {
  TRB_BQ_TYPE_UNSPECIFIED = 0,
  TRB_BQ_TYPE_STRING = 1,
  TRB_BQ_TYPE_INT64 = 2,
  TRB_BQ_TYPE_DOUBLE = 3,
  TRB_BQ_TYPE_STRUCT = 4,
  TRB_BQ_TYPE_BYTES = 5,
  TRB_BQ_TYPE_BOOL = 6,
  TRB_BQ_TYPE_TIMESTAMP = 7,
  TRB_BQ_TYPE_DATE = 8,
  TRB_BQ_TYPE_TIME = 9,
  TRB_BQ_TYPE_DATETIME = 10,
  TRB_BQ_TYPE_GEOGRAPHY = 11,
  TRB_BQ_TYPE_NUMERIC = 12,
  TRB_BQ_TYPE_BIGNUMERIC = 13,
  TRB_BQ_TYPE_INTERVAL = 14,
  TRB_BQ_TYPE_JSON = 15,
} trb_bq_type_t;

/** Column modes; values equal TableFieldSchema.Mode. */
typedef enum trb_bq_mode_e {
  TRB_BQ_MODE_NULLABLE = 1,
  TRB_BQ_MODE_REQUIRED = 2,
  TRB_BQ_MODE_REPEATED = 3,
} trb_bq_mode_t;

/** One column (or a nested field of a RECORD). */
typedef struct trb_bq_field_s {
  char *name;        /* owned; never NULL */
  trb_bq_type_t type;
  trb_bq_mode_t mode;
  char *description; /* owned; NULL when absent */
  int64_t max_length; /* STRING characters / BYTES bytes; 0 = none */
  int64_t precision;  /* NUMERIC/BIGNUMERIC; 0 = none */
  int64_t scale;      /* NUMERIC/BIGNUMERIC; 0 = none */
  char *default_value_expression; /* owned; NULL when absent; validated
                                     by trb_bq_default_parse (top-level
                                     columns only) */
  size_t n_fields;    /* RECORD only */
  struct trb_bq_field_s *fields; /* owned array of n_fields */
} trb_bq_field_t;

/** A table definition: schema plus table options. */
typedef struct trb_bq_table_s {
  char *description;      /* owned; NULL when absent */
  char *partition_type;   /* "DAY", "HOUR", "MONTH", "YEAR"; NULL = none */
  char *partition_field;  /* NULL = ingestion time (when partitioned) */
  size_t n_clustering;
  char **clustering;      /* owned array of owned names (at most 4) */
  size_t n_fields;
  trb_bq_field_t *fields; /* owned array of n_fields top-level columns */
} trb_bq_table_t;

/**
 * Parse a table file (`len` bytes of JSON text; no NUL needed) into `out`
 * (overwritten). On error `out` is left empty (nothing to release, though
 * deinit is harmless).
 * Returns: OK; INVALID_ARGUMENT with the JSON path (or jansson's line and
 *          column for malformed JSON); RESOURCE_EXHAUSTED.
 */
grpc_status_code trb_bq_table_parse(const char *json, size_t len,
                                    trb_bq_table_t *out, trb_status_t *st);

/**
 * Serialize `t` as a table file (the object form, REST names) into a
 * trb_malloc'd NUL-terminated string the caller frees with trb_free.
 * trb_bq_table_parse of the result gives an equal table.
 * Returns: OK; RESOURCE_EXHAUSTED.
 */
grpc_status_code trb_bq_table_to_json(const trb_bq_table_t *t, char **out,
                                      trb_status_t *st);

/** Free what `t` owns and zero it. NULL-safe. */
void trb_bq_table_deinit(trb_bq_table_t *t);

/**
 * As trb_bq_table_parse into a heap table: `*out` receives an owned table
 * (free with trb_bq_table_free), NULL on error.
 */
grpc_status_code trb_bq_table_parse_json(const char *json, size_t len,
                                         trb_bq_table_t **out,
                                         trb_status_t *st);

/** Deinit and free a table from trb_bq_table_parse_json. NULL-safe. */
void trb_bq_table_free(trb_bq_table_t *t);

/**
 * Deep copy `src` into `dst` (overwritten).
 * Returns: OK; RESOURCE_EXHAUSTED (dst left empty).
 */
grpc_status_code trb_bq_table_copy(const trb_bq_table_t *src,
                                   trb_bq_table_t *dst, trb_status_t *st);

/** Whether the two schemas are equal: same fields in the same order with
 *  the same names (case-insensitive), types, modes, max_length, precision,
 *  scale, default value expressions (exact text) and nested fields. Descriptions and table options are ignored. */
bool trb_bq_schema_equal(const trb_bq_table_t *a, const trb_bq_table_t *b);

/** Index of the field named `name` (case-insensitive, `len` bytes) among
 *  `n` fields, or -1. */
int trb_bq_field_find(const trb_bq_field_t *fields, size_t n, const char *name,
                      size_t len);

/** Canonical standard SQL name of a type ("INT64", "STRUCT", ...). */
const char *trb_bq_type_name(trb_bq_type_t t);

/** Name of a mode ("NULLABLE", "REQUIRED", "REPEATED"). */
const char *trb_bq_mode_name(trb_bq_mode_t m);

/**
 * Parse a type name, legacy or standard, case-insensitive ("INTEGER",
 * "int64", "RECORD"). Returns false for an unknown name.
 */
bool trb_bq_type_parse(const char *name, trb_bq_type_t *out);

/**
 * Fill a nanopb TableSchema from `t` (for WriteStream.table_schema in the
 * FULL view). Strings and arrays are malloc'd the way nanopb's pb_release
 * frees them: release with trb_pb_release(
 * google_cloud_bigquery_storage_v1_TableSchema_fields, out).
 * Returns: OK; RESOURCE_EXHAUSTED (out released and zeroed).
 */
grpc_status_code trb_bq_table_to_proto(
    const trb_bq_table_t *t, google_cloud_bigquery_storage_v1_TableSchema *out,
    trb_status_t *st);

/**
 * Build a table definition (no table options) from a TableSchema.
 * Returns: OK; INVALID_ARGUMENT (missing or duplicate names, unknown types,
 *          RANGE which the emulator does not store, a default value
 *          expression the emulator does not accept or on a nested field);
 *          RESOURCE_EXHAUSTED.
 */
grpc_status_code trb_bq_table_from_proto(
    const google_cloud_bigquery_storage_v1_TableSchema *in,
    trb_bq_table_t *out, trb_status_t *st);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_BIGQUERY_SCHEMA_H */
