/*
 * envelope.h — pure builders for what `tributary ingest` publishes (no I/O):
 * the flat "issues" envelope, UUID v4 text, RFC 3339 UTC timestamps.
 *
 * The envelope is the seed contract: one flat JSON object
 *   {"issue_id": "<UUID v4>", "source": "manual-api" | "firestore-eventarc",
 *    "created_at": "<RFC 3339 UTC>", "payload": "<the event JSON as a string>"}
 * so that schema-strict consumers (the BigQuery `issues` table: issue_id,
 * source, created_at, payload — all STRING) accept it unchanged.
 *
 * Source: ../shared/DESIGN.md "Example data" (issues envelope); issue 7;
 * RFC 4122 §4.4 (version 4 UUIDs); RFC 3339 §5.6.
 * Threading: every function is thread-safe.
 */
#ifndef TRB_SRC_INGEST_ENVELOPE_H
#define TRB_SRC_INGEST_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include "src/common/arena.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Bytes of a UUID's text form including the NUL (8-4-4-4-12 hex). */
#define TRB_INGEST_UUID_LEN 37
/** Bytes of trb_ingest_rfc3339_ms's output including the NUL. */
#define TRB_INGEST_TIME_LEN 25

/** `source` of events from POST / (the seed's manual API). */
#define TRB_INGEST_SOURCE_MANUAL "manual-api"
/** `source` of Firestore document events delivered by Eventarc. */
#define TRB_INGEST_SOURCE_FIRESTORE "firestore-eventarc"

/**
 * Format 16 random bytes as a version 4, variant 1 UUID ("xxxxxxxx-xxxx-
 * 4xxx-[89ab]xxx-xxxxxxxxxxxx", lower-case); the version and variant bits
 * of `rnd` are overwritten in the output, not in `rnd`.
 */
void trb_ingest_uuid4_format(const uint8_t rnd[16],
                             char out[TRB_INGEST_UUID_LEN]);

/**
 * Format a wall-clock time (microseconds since the Unix epoch) as RFC 3339
 * UTC with milliseconds: "2026-11-21T01:34:32.123Z".
 */
void trb_ingest_rfc3339_ms(int64_t wall_us, char out[TRB_INGEST_TIME_LEN]);

/**
 * Append the envelope JSON object to `b`.
 * Params:  issue_id, source, created_at — NUL-terminated, borrowed;
 *          payload — `payload_len` bytes of valid UTF-8 (the event JSON),
 *          borrowed; written as a JSON string.
 * Returns: 0; -ENOMEM (discard `b`).
 */
int trb_ingest_envelope_append(trb_buf_t *b, const char *issue_id,
                               const char *source, const char *created_at,
                               const char *payload, size_t payload_len);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_INGEST_ENVELOPE_H */
