/*
 * ack_codec.h — pure wire encoder (no I/O) of the subscriber's
 * google.pubsub.v1.AcknowledgeRequest and ModifyAckDeadlineRequest, built
 * incrementally: a header (subscription, and ack_deadline_seconds for a
 * ModifyAckDeadline) followed by one ack_ids field per ack id, appended as
 * ids arrive. A request is `header + Σ ids` in that order, which is the
 * field-number order nanopb writes, so the bytes are identical to
 * trb_pb_encode of the same nanopb struct (a non-NULL subscription is
 * always sent, ack_deadline_seconds only when non-zero, negative values as
 * 10-byte varints).
 *
 * Source: google/pubsub/v1/pubsub.proto — AcknowledgeRequest{subscription=1,
 * ack_ids=2}, ModifyAckDeadlineRequest{subscription=1,
 * ack_deadline_seconds=3, ack_ids=4}. Threading: pure functions,
 * thread-safe.
 */
#ifndef TRB_SRC_PUBSUB_ACK_CODEC_H
#define TRB_SRC_PUBSUB_ACK_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Bytes of the header of an Acknowledge (`ack` true; `secs` ignored) or
 * ModifyAckDeadline (`ack` false; ack_deadline_seconds = `secs`) request
 * for `subscription` (`sub_len` bytes, not necessarily NUL-terminated).
 */
size_t trb_ps_ackreq_header_len(size_t sub_len, bool ack, int32_t secs);

/**
 * Write that header into `out` (trb_ps_ackreq_header_len bytes).
 * Returns the bytes written.
 */
size_t trb_ps_ackreq_put_header(uint8_t *out, const char *subscription,
                                size_t sub_len, bool ack, int32_t secs);

/** Bytes one ack_ids entry of `id_len` bytes takes (tag, length, id). */
size_t trb_ps_ackreq_id_len(size_t id_len);

/**
 * Write one ack_ids entry (`id`, `id_len` bytes) of an Acknowledge (`ack`
 * true) or ModifyAckDeadline request into `out`
 * (trb_ps_ackreq_id_len(id_len) bytes). Returns the bytes written; the id
 * itself is the last `id_len` of them.
 */
size_t trb_ps_ackreq_put_id(uint8_t *out, bool ack, const char *id,
                            size_t id_len);

/** Where one ack id is inside an encoded request: its bytes at
 *  req + off, `len` long (the end of its ack_ids entry). */
typedef struct trb_ps_ackreq_id_s {
  uint32_t off, len;
} trb_ps_ackreq_id_t;

/**
 * Move the ack_ids entry of `*id` inside request `req` down to offset
 * `at` (<= its current start; entries kept in order never overlap badly:
 * memmove) and update id->off. Used to drop the ids not to retry.
 * Returns the offset just past the moved entry.
 */
size_t trb_ps_ackreq_move_id(uint8_t *req, size_t at, trb_ps_ackreq_id_t *id);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_PUBSUB_ACK_CODEC_H */
