/*
 * firestore.h — pure rendering of Firestore document events as readable
 * JSON (no I/O). Input: google.events.cloud.firestore.v1.DocumentEventData,
 * either protobuf bytes (Eventarc's `application/protobuf`, decoded with the
 * nanopb stubs of googleapis/cloudevents) or its proto3 JSON form
 * (`application/json`: {"value": {"name", "fields": {"f": {"stringValue":
 * ...}}, "createTime", "updateTime"}, "oldValue", "updateMask":
 * {"fieldPaths": [...]}}).
 *
 * Output (the same for both inputs): typed Firestore Values become plain
 * JSON —
 *   nullValue → null, booleanValue → true/false, integerValue → number
 *   (JSON form: from its string), doubleValue → number with 17 significant
 *   digits, exact round trip (NaN/±Infinity stay
 *   strings), timestampValue → RFC 3339 string, stringValue /
 *   referenceValue → string, bytesValue → base64 string, geoPointValue →
 *   {"latitude", "longitude"}, arrayValue → array, mapValue → object —
 * in {"value": {"name", "fields": {...}, "create_time", "update_time"},
 *     "old_value": {...}, "update_mask": ["field", ...]}, where a member is
 * left out when the event does not carry it (creates have no old_value,
 * deletes no value; an empty document `{}` counts as absent).
 *
 * Source: google-cloudevents proto/google/events/cloud/firestore/v1/
 * data.proto (PROTOCOL.md facts 76–78); proto3 JSON mapping (Timestamp as
 * RFC 3339, int64 as string, bytes as base64).
 * Threading: every function is thread-safe.
 */
#ifndef TRB_SRC_INGEST_FIRESTORE_H
#define TRB_SRC_INGEST_FIRESTORE_H

#include <stddef.h>
#include <stdint.h>

#include <grpc/status.h>
#include <jansson.h>

#include "src/common/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Deepest nesting of Firestore Values accepted (arrays in maps in ...). */
#define TRB_INGEST_FIRESTORE_MAX_DEPTH 64

/**
 * Render protobuf DocumentEventData bytes.
 * Params:  out — receives a new JSON object (json_decref) on OK.
 * Returns: OK; INVALID_ARGUMENT ("malformed DocumentEventData protobuf:
 *          <nanopb reason>", values nested deeper than the limit, a string
 *          that is not UTF-8); RESOURCE_EXHAUSTED.
 */
grpc_status_code trb_ingest_firestore_from_proto(const uint8_t *buf,
                                                 size_t len, json_t **out,
                                                 trb_status_t *st);

/**
 * Render DocumentEventData in its proto3 JSON form.
 * Params:  data — borrowed JSON object. out — as above.
 * Returns: OK; INVALID_ARGUMENT naming the bad member ("value.fields.n: no
 *          known Firestore value type", "integerValue \"x\" is not an
 *          int64", ...); RESOURCE_EXHAUSTED.
 */
grpc_status_code trb_ingest_firestore_from_json(const json_t *data,
                                                json_t **out,
                                                trb_status_t *st);

/** RFC 3339 UTC text of a protobuf Timestamp with 0, 3, 6 or 9 fraction
 *  digits (as the proto3 JSON mapping). `out` holds 40 bytes. */
void trb_ingest_timestamp_format(int64_t seconds, int32_t nanos,
                                 char out[40]);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_INGEST_FIRESTORE_H */
