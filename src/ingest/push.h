/*
 * push.h — pure decoding of Pub/Sub push request bodies (no I/O): the
 * PubsubWrapper JSON body, the same data inside a structured CloudEvent
 * (google.cloud.pubsub.topic.v1.messagePublished, MessagePublishedData),
 * and the Cloud Functions 1st-gen "legacy" forms whose `data` is the
 * PubsubMessage itself.
 *
 * Shapes accepted (first match wins):
 *   {"message": {...}, "subscription": "...", "deliveryAttempt": N}
 *   {"specversion": ..., "data": {"message": {...}, "subscription": ...}}
 *   {"context"|"eventId": ..., "data": {"@type": "...PubsubMessage",
 *                                      "data": ..., "attributes": ...}}
 * The message: `data` (standard or URL-safe base64, padding optional;
 * absent or null = empty), `attributes` (object of strings), `messageId` or
 * `message_id`, `publishTime` or `publish_time`, `orderingKey` or
 * `ordering_key`.
 *
 * Source: PROTOCOL.md facts 66 and 79–80 (push body, MessagePublishedData,
 * standard base64 per the proto3 JSON mapping of bytes); fact 46 (attribute
 * limits); RFC 4648 §4–5.
 * Threading: every function is thread-safe.
 */
#ifndef TRB_SRC_INGEST_PUSH_H
#define TRB_SRC_INGEST_PUSH_H

#include <stddef.h>
#include <stdint.h>

#include <grpc/status.h>
#include <jansson.h>

#include "src/common/status.h"
#include "src/pubsub/codec.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Most attributes a decoded push message may carry (Pub/Sub's limit). */
#define TRB_INGEST_PUSH_MAX_ATTRS 100

/** A decoded push message. Strings are borrowed from the JSON root passed
 *  to trb_ingest_push_decode (valid while it is); `data` is owned. */
typedef struct trb_ingest_push_msg_s {
  uint8_t *data; /* decoded bytes (trb_malloc'd; NULL when empty) */
  size_t data_len;
  trb_ps_attr_t attrs[TRB_INGEST_PUSH_MAX_ATTRS];
  size_t n_attrs;
  const char *message_id;   /* NULL when absent */
  const char *publish_time; /* NULL when absent */
  const char *ordering_key; /* NULL when absent */
  const char *subscription; /* NULL when absent */
} trb_ingest_push_msg_t;

/**
 * Decode standard (`+/`) or URL-safe (`-_`) base64, with or without `=`
 * padding, no whitespace.
 * Params:  out — room for at least (len / 4 + 1) * 3 bytes.
 * Returns: the decoded length, or -1 when `s` is not base64 (bad character,
 *          misplaced padding, impossible length, non-zero trailing bits).
 */
int64_t trb_ingest_base64_decode(const char *s, size_t len, uint8_t *out);

/**
 * Decode a push body (see the file comment for the shapes).
 * Params:  root — parsed body, borrowed (must outlive `out`'s strings).
 *          out — zero-initialised; release with trb_ingest_push_msg_deinit
 *          whatever this returns.
 * Returns: OK; INVALID_ARGUMENT naming the problem ("push body has no
 *          message object", "message.data is not valid base64",
 *          "message.attributes.k is not a string", "message has neither
 *          data nor attributes", attribute limits); RESOURCE_EXHAUSTED.
 */
grpc_status_code trb_ingest_push_decode(const json_t *root,
                                        trb_ingest_push_msg_t *out,
                                        trb_status_t *st);

/** Free `data`. NULL-safe; leaves `m` empty. */
void trb_ingest_push_msg_deinit(trb_ingest_push_msg_t *m);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_INGEST_PUSH_H */
