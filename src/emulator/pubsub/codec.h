/*
 * codec.h — pure helpers of the Pub/Sub emulator (no I/O, no state):
 * resource-name validation, ack-ID encoding, and a minimal protobuf wire
 * writer for the hot-path responses (ReceivedMessage lists).
 *
 * Threading: thread-safe (no shared state).
 * Source: google/pubsub/v1/pubsub.proto (resource name rules in the Topic
 * and Subscription comments); protobuf wire format
 * (https://protobuf.dev/programming-guides/encoding/).
 */
#ifndef TRB_SRC_EMULATOR_PUBSUB_CODEC_H
#define TRB_SRC_EMULATOR_PUBSUB_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <grpc/status.h>

#include "src/common/arena.h"
#include "src/common/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Validate `name` as "projects/{project}/{kind}/{id}" (`kind` "topics" or
 * "subscriptions"). The id must be 3..255 characters, start with a letter,
 * contain only letters, digits and "-_.~+%", and not start with "goog".
 * The project must be non-empty without '/'.
 * Params:  project, id — may be NULL; receive borrowed pointers into
 *          `name` (project is not NUL-terminated: *project_len bytes).
 * Returns: OK; INVALID_ARGUMENT with the reason (st names the field
 *          `what`, e.g. "topic").
 */
grpc_status_code trb_ps_name_parse(const char *name, const char *kind,
                                   const char *what, const char **project,
                                   size_t *project_len, const char **id,
                                   trb_status_t *st);

/** Parsed ack ID. */
typedef struct trb_ps_ackid_s {
  int64_t sub_id;   /* subscription row id */
  int64_t seq;      /* message sequence number (= message_id) */
  uint32_t gen;     /* lease generation */
  uint32_t epoch;   /* process epoch */
} trb_ps_ackid_t;

/** Longest ack ID written by trb_ps_ackid_format, including the NUL. */
#define TRB_PS_ACKID_MAX 56

/** Write "<sub>-<seq>-<gen>-<epoch>" in lower-case hex into `out`
 *  (TRB_PS_ACKID_MAX bytes). Returns the length (without NUL). */
size_t trb_ps_ackid_format(const trb_ps_ackid_t *a, char *out);

/** Parse an ack ID; false when malformed (anything but the exact shape
 *  written by trb_ps_ackid_format, negative ids included). */
bool trb_ps_ackid_parse(const char *s, trb_ps_ackid_t *out);

/* ---- protobuf wire writer (appends to a trb_buf_t) ------------------- */

/** Bytes a varint of `v` takes. */
size_t trb_ps_wire_varint_len(uint64_t v);
/** Append a varint. Returns 0 or -ENOMEM. */
int trb_ps_wire_varint(trb_buf_t *b, uint64_t v);
/** Append tag (field, wire type 2) + length + bytes. Returns 0 or -ENOMEM. */
int trb_ps_wire_bytes(trb_buf_t *b, uint32_t field, const void *data,
                      size_t len);
/** Append tag (field, wire type 0) + varint. Returns 0 or -ENOMEM. */
int trb_ps_wire_uint(trb_buf_t *b, uint32_t field, uint64_t v);

/**
 * Bytes one encoded ReceivedMessage occupies inside a repeated field 1
 * (tag + length + body), for `ack_len`, `msg_len` (serialized
 * PubsubMessage) and `delivery_attempt` (0 = omitted).
 */
size_t trb_ps_wire_received_len(size_t ack_len, size_t msg_len,
                                int32_t delivery_attempt);

/**
 * Append one ReceivedMessage{ack_id=1, message=2, delivery_attempt=3} as
 * field 1 of the enclosing message (PullResponse and StreamingPullResponse
 * both carry `received_messages` = 1). Returns 0 or -ENOMEM.
 */
int trb_ps_wire_received(trb_buf_t *b, const char *ack_id, size_t ack_len,
                         const uint8_t *msg, size_t msg_len,
                         int32_t delivery_attempt);

/** Format `wall_us` (µs since the epoch) as RFC 3339 UTC with microseconds,
 *  "2023-09-13T09:51:21.340000Z", into out (32 bytes). */
void trb_ps_rfc3339(int64_t wall_us, char *out, size_t out_len);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_EMULATOR_PUBSUB_CODEC_H */
