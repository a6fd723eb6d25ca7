/*
 * pull_codec.h — pure protobuf wire decoding of a StreamingPullResponse for
 * the Subscriber (no I/O, no allocation per message): every field the
 * subscriber uses is a view into the response buffer.
 *
 * Decoding by hand (instead of nanopb structs) avoids nanopb's per-element
 * realloc of `received_messages` and a heap copy of every ack id, message
 * id and ordering key that the subscriber would copy again anyway. The
 * caller's message array is reused from one response to the next.
 *
 * Source: google/pubsub/v1/pubsub.proto (PROTOCOL.md fact 49) —
 * StreamingPullResponse{received_messages=1, subscription_properties=4
 * {exactly_once_delivery_enabled=1, message_ordering_enabled=2};
 * modify_ack_deadline_confirmation=3, acknowledge_confirmation=5 skipped},
 * ReceivedMessage{ack_id=1, message=2, delivery_attempt=3},
 * PubsubMessage{data=1, attributes=2 (map<string,string>: key=1, value=2),
 * message_id=3, publish_time=4 (Timestamp{seconds=1, nanos=2}),
 * ordering_key=5}. Unknown fields are skipped.
 */
#ifndef TRB_SRC_PUBSUB_PULL_CODEC_H
#define TRB_SRC_PUBSUB_PULL_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <grpc/status.h>

#include "src/common/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** One received message. Every pointer points into the decoded buffer
 *  (not NUL-terminated); absent fields are {NULL or "", 0}. */
typedef struct trb_ps_rx_msg_s {
  const char *ack_id;
  size_t ack_id_len;
  const char *message_id;
  size_t message_id_len;
  const uint8_t *data;
  size_t data_len;
  const char *ordering_key;
  size_t ordering_key_len;
  /** Attributes: count, total key + value bytes, and the encoded
   *  PubsubMessage to iterate them (trb_ps_rx_attr_next). */
  size_t n_attrs;
  size_t attr_bytes;
  const uint8_t *msg;
  size_t msg_len;
  /** Offset in `msg` of the first attributes entry (msg_len when none)
   *  and just past it, and that first entry decoded (views into `msg`):
   *  trb_ps_rx_attr_next returns it without parsing, then goes on from
   *  attr1_at. */
  size_t attr_at, attr1_at;
  const char *attr0_key, *attr0_value;
  size_t attr0_key_len, attr0_value_len;
  int64_t publish_s;
  int32_t publish_nanos;
  int32_t delivery_attempt;
} trb_ps_rx_msg_t;

/** A decoded StreamingPullResponse. Zero-initialise; reuse across calls;
 *  free with trb_ps_pull_response_deinit. */
typedef struct trb_ps_pull_response_s {
  trb_ps_rx_msg_t *msgs; /* owned array, `n` valid entries */
  size_t n, cap;
  bool has_properties;
  bool exactly_once;
  bool ordering;
} trb_ps_pull_response_t;

/**
 * Decode `buf` (borrowed; the views point into it) into `r`, replacing its
 * previous content (the array is kept and grown as needed).
 * Returns: OK; INVALID_ARGUMENT for malformed input (r->n is then 0);
 *          RESOURCE_EXHAUSTED when the array cannot grow.
 */
grpc_status_code trb_ps_pull_response_decode(const uint8_t *buf, size_t len,
                                             trb_ps_pull_response_t *r,
                                             trb_status_t *st);

/** Free the array of `r` and zero it. NULL-safe. */
void trb_ps_pull_response_deinit(trb_ps_pull_response_t *r);

/**
 * Next attribute of `m` from `*pos` (start at 0). On true, key / value
 * (views into the buffer) and their lengths are set and *pos advanced;
 * false when there are no more. Only valid for a message produced by
 * trb_ps_pull_response_decode (already validated). Pure.
 */
bool trb_ps_rx_attr_next(const trb_ps_rx_msg_t *m, size_t *pos,
                         const char **key, size_t *key_len,
                         const char **value, size_t *value_len);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_PUBSUB_PULL_CODEC_H */
