/*
 * values.h — BigQuery value encodings used by the Storage Write API, as pure
 * codecs (no I/O): the wire form a writer sends (epoch days, packed civil
 * times, epoch microseconds, NUMERIC bytes) and the canonical text the
 * emulator stores and `tributary sql` prints.
 *
 * Canonical text forms (what the *_format functions write):
 *   DATE       "YYYY-MM-DD"
 *   TIME       "HH:MM:SS" or "HH:MM:SS.ffffff" (6 digits, only when the
 *              microseconds are not zero)
 *   DATETIME   "YYYY-MM-DDTHH:MM:SS[.ffffff]" (same fraction rule)
 *   TIMESTAMP  RFC 3339 UTC, always with microseconds:
 *              "2024-01-02T03:04:05.123456Z"
 *   NUMERIC / BIGNUMERIC  exact decimal: optional '-', integer digits, and
 *              when the value has a fraction '.' and the fraction digits
 *              without trailing zeros ("-12.5", "0", "0.000000001").
 *
 * Ranges enforced (both directions):
 *   DATE       days since 1970-01-01 in [-719162, 2932896]
 *              (0001-01-01 .. 9999-12-31)
 *   TIMESTAMP  microseconds since the epoch in
 *              [-62135596800000000, 253402300799999999]
 *   TIME       00:00:00 .. 23:59:59.999999
 *   DATETIME   0001-01-01T00:00:00 .. 9999-12-31T23:59:59.999999
 *   NUMERIC    scale 9, at most 29 integer digits (|v| < 10^29)
 *   BIGNUMERIC scale 38, the unscaled value a 256-bit two's complement
 *              integer
 *
 * Errors: every function returns GRPC_STATUS_OK or INVALID_ARGUMENT with a
 * message naming the value and the rule it broke (`st` may be NULL).
 * Threading: thread-safe (no state).
 * Source: PROTOCOL.md A.6 facts 33–37: CivilTimeEncoder packing (Java
 * JBS/CivilTimeEncoder.java), BigDecimalByteStringEncoder (little-endian
 * two's-complement unscaled value), the "Supported protocol buffer data
 * types" page (DATE range); BigQuery's documented type ranges.
 */
#ifndef TRB_SRC_BIGQUERY_VALUES_H
#define TRB_SRC_BIGQUERY_VALUES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <grpc/status.h>

#include "src/common/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** DATE range, days since 1970-01-01 (0001-01-01 and 9999-12-31). */
#define TRB_BQ_DATE_MIN (-719162)
#define TRB_BQ_DATE_MAX 2932896
/** TIMESTAMP range, microseconds since the epoch. */
#define TRB_BQ_TIMESTAMP_MIN_US (-62135596800000000LL)
#define TRB_BQ_TIMESTAMP_MAX_US 253402300799999999LL

/** Buffer sizes (bytes, NUL included) for the *_format functions. */
#define TRB_BQ_DATE_BUF 11
#define TRB_BQ_TIME_BUF 16
#define TRB_BQ_DATETIME_BUF 27
#define TRB_BQ_TIMESTAMP_BUF 28
/** Enough for any BIGNUMERIC: sign, 77 digits, '.', '0', NUL. */
#define TRB_BQ_NUMERIC_BUF 84
/** Largest NUMERIC / BIGNUMERIC byte encoding, bytes. */
#define TRB_BQ_NUMERIC_BYTES_MAX 32

/** Scales of the two decimal types. */
#define TRB_BQ_NUMERIC_SCALE 9
#define TRB_BQ_BIGNUMERIC_SCALE 38

/* ---- DATE: int32 days since 1970-01-01 --------------------------------- */

/**
 * Write `days` as "YYYY-MM-DD" into `out` (TRB_BQ_DATE_BUF bytes).
 * Returns: OK; INVALID_ARGUMENT when outside the DATE range.
 */
grpc_status_code trb_bq_date_format(int64_t days, char *out, trb_status_t *st);

/**
 * Parse "YYYY-MM-DD" (exactly; `len` bytes, no NUL needed) into days.
 * Returns: OK; INVALID_ARGUMENT for any other shape, an impossible day or
 * a year outside 1..9999.
 */
grpc_status_code trb_bq_date_parse(const char *s, size_t len, int32_t *days,
                                   trb_status_t *st);

/** Days since 1970-01-01 of a proleptic Gregorian date (no checks). */
int64_t trb_bq_days_from_civil(int64_t y, unsigned m, unsigned d);

/** The civil date of `days` since 1970-01-01 (no checks). */
void trb_bq_civil_from_days(int64_t days, int64_t *y, unsigned *m,
                            unsigned *d);

/* ---- TIME / DATETIME: CivilTimeEncoder packed int64 -------------------- */

/** Pack a TIME: ((h<<12 | mi<<6 | s) << 20) | micros. No checks. */
int64_t trb_bq_time_pack(unsigned h, unsigned mi, unsigned s, unsigned us);

/** Pack a DATETIME: ((y<<26 | mo<<22 | d<<17 | h<<12 | mi<<6 | s) << 20)
 *  | micros. No checks. */
int64_t trb_bq_datetime_pack(unsigned y, unsigned mo, unsigned d, unsigned h,
                             unsigned mi, unsigned s, unsigned us);

/**
 * Write a packed TIME as text (TRB_BQ_TIME_BUF bytes).
 * Returns: OK; INVALID_ARGUMENT when a bit outside the encoding is set or
 * a part is out of range (hour 24, second 60, micros >= 1e6).
 */
grpc_status_code trb_bq_time_format(int64_t packed, char *out,
                                    trb_status_t *st);

/**
 * Parse "HH:MM:SS[.f{1,6}]" into a packed TIME.
 * Returns: OK; INVALID_ARGUMENT (shape, range).
 */
grpc_status_code trb_bq_time_parse(const char *s, size_t len, int64_t *packed,
                                   trb_status_t *st);

/** As trb_bq_time_format for a packed DATETIME (TRB_BQ_DATETIME_BUF);
 *  also checks the calendar date. */
grpc_status_code trb_bq_datetime_format(int64_t packed, char *out,
                                        trb_status_t *st);

/**
 * Parse "YYYY-MM-DD[T| ]HH:MM:SS[.f{1,6}]" into a packed DATETIME.
 * Returns: OK; INVALID_ARGUMENT.
 */
grpc_status_code trb_bq_datetime_parse(const char *s, size_t len,
                                       int64_t *packed, trb_status_t *st);

/* ---- TIMESTAMP: int64 microseconds since the epoch --------------------- */

/**
 * Write `us` as RFC 3339 UTC with microseconds (TRB_BQ_TIMESTAMP_BUF).
 * Returns: OK; INVALID_ARGUMENT outside the TIMESTAMP range.
 */
grpc_status_code trb_bq_timestamp_format(int64_t us, char *out,
                                         trb_status_t *st);

/**
 * Parse RFC 3339: "YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|±HH:MM)" ('t', 'z' and a
 * space for 'T' accepted). Digits beyond microseconds must be zero.
 * Returns: OK; INVALID_ARGUMENT (shape, range).
 */
grpc_status_code trb_bq_timestamp_parse(const char *s, size_t len,
                                        int64_t *us, trb_status_t *st);

/* ---- NUMERIC / BIGNUMERIC ---------------------------------------------- */

/**
 * Write the decimal value of a little-endian two's-complement unscaled
 * integer (`len` bytes, 1..16 for NUMERIC, 1..32 for BIGNUMERIC) with the
 * type's scale (9 or 38) into `out` (`cap` bytes, TRB_BQ_NUMERIC_BUF is
 * always enough).
 * Returns: OK; INVALID_ARGUMENT (empty, too long, NUMERIC out of range,
 * `cap` too small).
 */
grpc_status_code trb_bq_numeric_format(const uint8_t *le, size_t len,
                                       bool big, char *out, size_t cap,
                                       trb_status_t *st);

/**
 * Parse decimal text ("-12.5", "+3", ".5", "1e3", "1.5E-7") into the
 * minimal little-endian two's-complement unscaled bytes (as Java's
 * BigInteger.toByteArray, reversed). Fraction digits beyond the scale are
 * rounded half away from zero.
 * Params:  out — TRB_BQ_NUMERIC_BYTES_MAX bytes; out_len receives the count.
 * Returns: OK; INVALID_ARGUMENT (shape, out of range).
 */
grpc_status_code trb_bq_numeric_parse(const char *s, size_t len, bool big,
                                      uint8_t *out, size_t *out_len,
                                      trb_status_t *st);

/**
 * Normalize decimal text to the canonical form (parse + format): for
 * NUMERIC/BIGNUMERIC values a writer sends as strings or numbers.
 * Returns: as trb_bq_numeric_parse.
 */
grpc_status_code trb_bq_numeric_canonical(const char *s, size_t len, bool big,
                                          char *out, size_t cap,
                                          trb_status_t *st);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_BIGQUERY_VALUES_H */
