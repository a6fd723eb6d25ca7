/*
 * codec.h — pure protobuf wire encoding for the Publisher (no I/O): one
 * google.pubsub.v1.PubsubMessage, a PublishRequest assembled from messages
 * already encoded, and the message ids of a PublishResponse.
 *
 * Encoding by hand (instead of nanopb structs) lets the publisher encode a
 * message once at publish time, know its exact size on the wire for the
 * batch byte limit, and concatenate messages into a request without copies
 * of parsed structures.
 *
 * Source: google/pubsub/v1/pubsub.proto — PubsubMessage{data=1,
 * attributes=2 (map<string,string>: key=1, value=2), ordering_key=5},
 * PublishRequest{topic=1, messages=2}, PublishResponse{message_ids=1}
 * (PROTOCOL.md fact 43).
 */
#ifndef TRB_SRC_PUBSUB_CODEC_H
#define TRB_SRC_PUBSUB_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include <grpc/status.h>

#include "src/common/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** One attribute (map entry). Both strings borrowed, NUL-terminated. */
typedef struct trb_ps_attr_s {
  const char *key;
  const char *value;
} trb_ps_attr_t;

/** Bytes of a varint encoding of `v` (1..10). */
size_t trb_ps_varint_len(uint64_t v);

/**
 * Bytes of the encoded PubsubMessage (without the enclosing field tag and
 * length). `ordering_key` may be NULL or "". Pure.
 */
size_t trb_ps_msg_encoded_len(const uint8_t *data, size_t data_len,
                              const trb_ps_attr_t *attrs, size_t n_attrs,
                              const char *ordering_key);

/**
 * Encode a PubsubMessage into `out`, which must hold
 * trb_ps_msg_encoded_len(...) bytes. Returns the bytes written. Pure.
 */
size_t trb_ps_msg_encode(uint8_t *out, const uint8_t *data, size_t data_len,
                         const trb_ps_attr_t *attrs, size_t n_attrs,
                         const char *ordering_key);

/** Bytes a message of `msg_len` encoded bytes adds to a PublishRequest
 *  (tag + length prefix + body). Pure. */
size_t trb_ps_request_msg_cost(size_t msg_len);

/** Bytes of the topic field of a PublishRequest. Pure. */
size_t trb_ps_request_topic_cost(const char *topic);

/**
 * Encode a PublishRequest of `topic` and `n` encoded messages (`msgs[i]`,
 * `lens[i]`, as produced by trb_ps_msg_encode) into `out`, which must hold
 * trb_ps_request_topic_cost(topic) + Σ trb_ps_request_msg_cost(lens[i])
 * bytes. Returns the bytes written. Pure.
 */
size_t trb_ps_request_encode(uint8_t *out, const char *topic,
                             const uint8_t *const *msgs, const size_t *lens,
                             size_t n);

/**
 * Incremental form of trb_ps_request_encode: write the topic field
 * (trb_ps_request_topic_cost(topic) bytes) or the header of one messages
 * field (trb_ps_request_msg_cost(msg_len) - msg_len bytes; the encoded
 * message follows it). Return the bytes written. Pure.
 */
size_t trb_ps_request_put_topic(uint8_t *out, const char *topic);
size_t trb_ps_request_put_msg_header(uint8_t *out, size_t msg_len);

/**
 * Visit the message_ids of a serialized PublishResponse in order.
 * Params:  buf, len — borrowed. `fn(user, i, id, id_len)` is called per id;
 *          `id` points into `buf` (not NUL-terminated).
 * Returns: OK with *n_ids set; INVALID_ARGUMENT for malformed input.
 * Unknown fields are skipped. Pure.
 */
grpc_status_code trb_ps_response_ids(const uint8_t *buf, size_t len,
                                     void (*fn)(void *user, size_t i,
                                                const char *id, size_t id_len),
                                     void *user, size_t *n_ids,
                                     trb_status_t *st);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_PUBSUB_CODEC_H */
