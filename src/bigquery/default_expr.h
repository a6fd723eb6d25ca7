/*
 * default_expr.h — column default value expressions
 * (TableFieldSchema.default_value_expression) as a pure codec (no I/O, no
 * clock, no randomness): parse and type-check a literal expression against
 * its column, and turn the non-deterministic functions into canonical text
 * from a time and random bytes the caller supplies.
 *
 * Accepted expressions (surrounding whitespace ignored; keywords and
 * function names case-insensitive). BigQuery accepts any constant
 * expression; the emulator accepts these literals only:
 *   NULL                        any column that is not REQUIRED
 *   TRUE, FALSE                 BOOL
 *   integer  ("-12", "+3")      INT64, FLOAT64, NUMERIC, BIGNUMERIC
 *   decimal  ("1.5", "2e3")     FLOAT64, NUMERIC, BIGNUMERIC
 *   'text' or "text"            STRING (backslash escapes \\ \' \" \n \t
 *                               \r; max_length checked in characters),
 *                               DATE, TIME, DATETIME, TIMESTAMP (the text
 *                               must parse as that type; values.h)
 *   CURRENT_TIMESTAMP()         TIMESTAMP
 *   CURRENT_DATE()              DATE      (UTC)
 *   CURRENT_DATETIME()          DATETIME  (UTC)
 *   CURRENT_TIME()              TIME      (UTC)
 *   GENERATE_UUID()             STRING    (random version 4 UUID, lower-case)
 * REPEATED and RECORD columns take no default here.
 *
 * Memory: a trb_bq_default_t owns `text`; release with
 * trb_bq_default_deinit. Threading: thread-safe (no state).
 * Source: table.proto TableFieldSchema.default_value_expression (field 10);
 * BigQuery "Specify default column values" (literal and function
 * defaults); PROTOCOL.md A.3 fact 23.
 */
#ifndef TRB_SRC_BIGQUERY_DEFAULT_EXPR_H
#define TRB_SRC_BIGQUERY_DEFAULT_EXPR_H

#include <stddef.h>
#include <stdint.h>

#include <grpc/status.h>

#include "src/bigquery/schema.h"
#include "src/common/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** What a default expression evaluates to. */
typedef enum trb_bq_default_kind_e {
  TRB_BQ_DEFAULT_NULL = 0,
  TRB_BQ_DEFAULT_INT = 1,   /* `i`: INT64, or BOOL as 0/1 */
  TRB_BQ_DEFAULT_REAL = 2,  /* `d`: FLOAT64 */
  TRB_BQ_DEFAULT_TEXT = 3,  /* `text`: canonical text (STRING, NUMERIC,
                               DATE, TIME, DATETIME, TIMESTAMP) */
  TRB_BQ_DEFAULT_CURRENT_TIMESTAMP = 4,
  TRB_BQ_DEFAULT_CURRENT_DATE = 5,
  TRB_BQ_DEFAULT_CURRENT_DATETIME = 6,
  TRB_BQ_DEFAULT_CURRENT_TIME = 7,
  TRB_BQ_DEFAULT_GENERATE_UUID = 8,
} trb_bq_default_kind_t;

/** A parsed default. */
typedef struct trb_bq_default_s {
  trb_bq_default_kind_t kind;
  int64_t i;
  double d;
  char *text;      /* owned (trb_malloc), NUL-terminated; TEXT only */
  size_t text_len; /* bytes, without the NUL */
} trb_bq_default_t;

/** Buffer size (bytes, NUL included) for trb_bq_default_eval_fn. */
#define TRB_BQ_DEFAULT_FN_BUF 37

/**
 * Parse `expr` (NUL-terminated) as the default of column `f` (its type,
 * mode and max_length are used) into `out` (overwritten).
 * Returns: OK; INVALID_ARGUMENT naming the expression and why it is not
 *          accepted (not a supported literal, wrong type for the column,
 *          value out of range, NULL on a REQUIRED column, default on a
 *          REPEATED or RECORD column); RESOURCE_EXHAUSTED.
 */
grpc_status_code trb_bq_default_parse(const char *expr, const trb_bq_field_t *f,
                                      trb_bq_default_t *out, trb_status_t *st);

/** Free what `d` owns and zero it. NULL-safe. */
void trb_bq_default_deinit(trb_bq_default_t *d);

/**
 * Evaluate a function default (CURRENT_* or GENERATE_UUID) as canonical
 * text into `out` (TRB_BQ_DEFAULT_FN_BUF bytes).
 * Params:  now_us — wall-clock microseconds since the epoch (CURRENT_*);
 *          rnd — 16 random bytes (GENERATE_UUID; the version and variant
 *          bits are set here); may be NULL for the others.
 * Returns: the text length; 0 when `kind` is not a function or `now_us` is
 *          outside the TIMESTAMP range.
 */
size_t trb_bq_default_eval_fn(trb_bq_default_kind_t kind, int64_t now_us,
                              const uint8_t *rnd, char *out);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_BIGQUERY_DEFAULT_EXPR_H */
