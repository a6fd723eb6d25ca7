/*
 * rowdec.h — descriptor-driven protobuf row decoder for AppendRows (pure
 * codec, no I/O): compiles a writer schema (google.protobuf.DescriptorProto,
 * proto2 semantics) against a table schema into a plan once per connection,
 * then decodes each serialized row into one value per top-level column
 * without per-field allocation.
 *
 * Output values: INT64 and BOOL as integers (BOOL 0/1), FLOAT64 as a real,
 * STRING/JSON/GEOGRAPHY/INTERVAL as text pointing into the row, BYTES as a
 * blob pointing into the row, TIMESTAMP/DATE/TIME/DATETIME/NUMERIC/
 * BIGNUMERIC as canonical text (src/bigquery/values.h) and RECORD or
 * REPEATED columns as JSON text — both written to the caller's buffer and
 * given as offsets (the buffer may move while it grows). An absent REPEATED
 * column is "[]", an absent NULLABLE one NULL.
 *
 * Type compatibility (plan time) follows PROTOCOL.md fact 35; wrapper and
 * well-known types and RANGE are not supported (INVALID_ARGUMENT at plan
 * time). Unknown field numbers in a row are skipped (proto2).
 *
 * Enums (fact 35: INTEGER and STRING accept enum): the enum type is looked
 * up by the last component of the field's type_name among the
 * descriptor's enum types at any nesting level (Go wraps each enum in a
 * nested message "<full_name>_E"); it must resolve at plan time. An INT64
 * column stores the number as sent; a STRING column stores the value's
 * name, and a number the enum does not define is a row error.
 *
 * Proto2 default values (fact 14: rows are decoded "with proto2
 * semantics, notably for how default values are encoded"): under proto2 an
 * absent optional field that declares default_value reads as that default,
 * so the emulator stores the default (converted and range-checked like a
 * sent value). A REQUIRED column is satisfied only by a field present in
 * the row: a default does not make an absent REQUIRED field valid. An
 * invalid default_value text is INVALID_ARGUMENT at plan time. Defaults of
 * repeated fields are ignored (proto2 has none).
 *
 * Missing values (fact 23; trb_rowdec_decode_fill): a top-level column the
 * caller marks fillable (AppendRows DEFAULT_VALUE with a column default)
 * is not checked for REQUIRED; when the row lacks it, the proto2 default
 * still wins if the writer schema declares one (proto2: an absent field
 * with a default reads as the default), otherwise the value is left
 * TRB_BQV_NULL for the caller to fill. A present field never decodes to
 * TRB_BQV_NULL, so a NULL value in a fillable column means "missing".
 *
 * Threading: a plan is thread-compatible (it holds scratch space used while
 * decoding): one thread at a time per plan.
 * Source: protobuf wire format (varint, ZigZag, fixed32/64, length-delimited,
 * packed repeated); google/protobuf/descriptor.proto; PROTOCOL.md A.3
 * facts 14–15, A.6 facts 33–37.
 */
#ifndef TRB_SRC_EMULATOR_BIGQUERY_ROWDEC_H
#define TRB_SRC_EMULATOR_BIGQUERY_ROWDEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <grpc/status.h>

#include "google/protobuf/descriptor.pb.h"
#include "src/bigquery/schema.h"
#include "src/common/arena.h"
#include "src/common/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Kinds of decoded values. */
typedef enum trb_bqv_kind_e {
  TRB_BQV_NULL = 0,
  TRB_BQV_INT = 1,   /* u.i */
  TRB_BQV_REAL = 2,  /* u.d */
  TRB_BQV_TEXT = 3,  /* u.p, len: text inside the row (or static) */
  TRB_BQV_BLOB = 4,  /* u.p, len: bytes inside the row */
  TRB_BQV_BTEXT = 5, /* u.off, len: text in the output buffer */
  TRB_BQV_BJSON = 6, /* u.off, len: JSON text in the output buffer */
  TRB_BQV_BBLOB = 7, /* u.off, len: bytes in the output buffer */
} trb_bqv_kind_t;

/** One decoded value. */
typedef struct trb_bq_value_s {
  uint8_t kind; /* trb_bqv_kind_t */
  uint32_t len;
  union {
    int64_t i;
    double d;
    const uint8_t *p;
    size_t off;
  } u;
} trb_bq_value_t;

typedef struct trb_rowdec_plan_s trb_rowdec_plan_t;

/**
 * Compile `desc` (borrowed; not kept) against `table` (borrowed; must
 * outlive the plan).
 * Params:  extra_field — set true when the failure is a descriptor field
 *          the table lacks (StorageError SCHEMA_MISMATCH_EXTRA_FIELDS).
 * Returns: OK; INVALID_ARGUMENT (extra field, incompatible type or mode,
 *          invalid descriptor: duplicate or missing numbers or names,
 *          unresolvable or recursive message types, groups);
 *          RESOURCE_EXHAUSTED.
 */
grpc_status_code trb_rowdec_plan_create(const google_protobuf_DescriptorProto *desc,
                                        const trb_bq_table_t *table,
                                        trb_rowdec_plan_t **out,
                                        bool *extra_field, trb_status_t *st);

/** Free a plan. NULL-safe. */
void trb_rowdec_plan_destroy(trb_rowdec_plan_t *p);

/** Number of values a decoded row has (the table's top-level columns). */
size_t trb_rowdec_plan_columns(const trb_rowdec_plan_t *p);

/**
 * Decode one serialized row.
 * Params:  row, len — the row (borrowed; TEXT/BLOB values point into it).
 *          vals — trb_rowdec_plan_columns() values, overwritten.
 *          out — buffer receiving BTEXT/BJSON text (appended; on error its
 *          length is restored).
 * Returns: OK; INVALID_ARGUMENT with the row error message (malformed
 *          protobuf, value out of range, missing REQUIRED field, over
 *          max_length, invalid UTF-8); RESOURCE_EXHAUSTED.
 */
grpc_status_code trb_rowdec_decode(trb_rowdec_plan_t *p, const uint8_t *row,
                                   size_t len, trb_bq_value_t *vals,
                                   trb_buf_t *out, trb_status_t *st);

/**
 * As trb_rowdec_decode, with `fillable` (NULL, or one flag per top-level
 * column): a fillable column missing from the row (no field, no proto2
 * default) is left TRB_BQV_NULL and is exempt from the REQUIRED check; the
 * caller fills it. Nested fields are never fillable.
 * Returns: as trb_rowdec_decode.
 */
grpc_status_code trb_rowdec_decode_fill(trb_rowdec_plan_t *p, const uint8_t *row,
                                        size_t len, const bool *fillable,
                                        trb_bq_value_t *vals, trb_buf_t *out,
                                        trb_status_t *st);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_EMULATOR_BIGQUERY_ROWDEC_H */
