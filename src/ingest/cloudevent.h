/*
 * cloudevent.h — pure parsing of CloudEvents 1.0 HTTP requests (no I/O):
 * binary content mode (`ce-*` headers, the body is the data) and structured
 * content mode (`application/cloudevents+json`: attributes and `data` /
 * `data_base64` in one JSON object).
 *
 * Attribute names are lower-case; in binary mode a header `ce-<name>` (any
 * case) is attribute `<name>`. Required: specversion ("1.0"), id, source,
 * type. Values are kept as sent (the binding's percent-encoding of
 * non-ASCII header values is not decoded).
 *
 * Source: CloudEvents 1.0 spec, HTTP protocol binding §3.1–3.2 and JSON
 * event format §3 (github.com/cloudevents/spec v1.0.2); PROTOCOL.md fact 77
 * (the headers Eventarc sends for Firestore).
 * Threading: every function is thread-safe.
 */
#ifndef TRB_SRC_INGEST_CLOUDEVENT_H
#define TRB_SRC_INGEST_CLOUDEVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <grpc/status.h>
#include <jansson.h>

#include "src/common/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Most attributes (context + extensions) kept from one event; more is an
 *  error (they become Pub/Sub attributes, at most 100 per message). */
#define TRB_INGEST_CE_MAX_ATTRS 64

/** A header or attribute: name and value, both borrowed. */
typedef struct trb_ingest_kv_s {
  const char *name;
  const char *value;
} trb_ingest_kv_t;

/** A parsed CloudEvent. Every string is borrowed from the headers / JSON
 *  passed to the parser, except names in binary mode, which point into the
 *  header name after its "ce-" prefix (so they keep the sender's case; use
 *  strcasecmp, or the pointers below). */
typedef struct trb_ingest_ce_s {
  trb_ingest_kv_t attrs[TRB_INGEST_CE_MAX_ATTRS]; /* all attributes */
  size_t n_attrs;
  const char *specversion, *id, *source, *type; /* required */
  const char *subject, *time, *datacontenttype, *dataschema; /* or NULL */
  /** Binary mode: the body. Structured mode with data_base64: NULL (see
   *  data_b64). With JSON `data`: NULL. */
  const uint8_t *data;
  size_t data_len;
  /** Structured mode: the `data` member (borrowed) or NULL. */
  const json_t *data_json;
  /** Structured mode: the `data_base64` member's text or NULL. */
  const char *data_b64;
  bool structured;
} trb_ingest_ce_t;

/** Whether any header is a `ce-*` header (a binary-mode CloudEvent). */
bool trb_ingest_ce_is_binary(const trb_ingest_kv_t *headers, size_t n);

/**
 * Parse a binary-mode event from the request headers and body.
 * Params:  headers — all request headers, borrowed; content_type — the
 *          Content-Type header or NULL (becomes datacontenttype); body —
 *          borrowed. out — zero-initialised.
 * Returns: OK; INVALID_ARGUMENT naming the problem ("CloudEvent has no
 *          ce-id header", "unsupported ce-specversion \"0.3\"", "more than
 *          64 CloudEvent attributes", a repeated attribute).
 */
grpc_status_code trb_ingest_ce_from_headers(const trb_ingest_kv_t *headers,
                                            size_t n, const char *content_type,
                                            const uint8_t *body, size_t len,
                                            trb_ingest_ce_t *out,
                                            trb_status_t *st);

/**
 * Parse a structured-mode event (one JSON object).
 * Params:  root — borrowed; must outlive `out`. out — zero-initialised.
 * Returns: OK; INVALID_ARGUMENT ("CloudEvent is not a JSON object",
 *          "CloudEvent has no id", "CloudEvent attribute x is not a
 *          string", both data and data_base64, ...).
 */
grpc_status_code trb_ingest_ce_from_json(const json_t *root,
                                         trb_ingest_ce_t *out,
                                         trb_status_t *st);

/** Bytes of scratch space trb_ingest_ce_from_legacy_firestore needs. */
#define TRB_INGEST_CE_LEGACY_SCRATCH 2048

/**
 * Recognise a Cloud Functions 1st-gen ("legacy") Firestore event —
 * {"eventId", "eventType": "providers/cloud.firestore/eventTypes/
 * document.write", "resource": "projects/p/databases/d/documents/c/id",
 * "timestamp", "data": DocumentEventData JSON}, the four attributes also
 * accepted inside "context" — and convert it to the CloudEvent the
 * Functions Framework makes of it: type google.cloud.firestore.document.v1.
 * {created,updated,deleted,written}, source //firestore.googleapis.com/
 * projects/p/databases/d, subject documents/c/id, data_json = data.
 * Params:  root — borrowed; scratch — TRB_INGEST_CE_LEGACY_SCRATCH bytes
 *          that hold the composed strings (must outlive `out`).
 * Returns: true when `root` is such an event (out filled); false when it
 *          is not (out untouched beyond zeroed fields).
 * Source:  GoogleCloudPlatform/functions-framework-conformance
 *          events/generate/data/firestore_*-legacy-input.json and the
 *          matching *-cloudevent-output.json.
 */
bool trb_ingest_ce_from_legacy_firestore(const json_t *root,
                                         trb_ingest_ce_t *out, char *scratch);

/** Whether `type` is a Firestore document event
 *  ("google.cloud.firestore.document.v1.*", PROTOCOL.md fact 76). */
bool trb_ingest_ce_is_firestore(const char *type);

/** The attribute `name` (case-insensitive), or NULL. */
const char *trb_ingest_ce_attr(const trb_ingest_ce_t *ce, const char *name);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_INGEST_CLOUDEVENT_H */
