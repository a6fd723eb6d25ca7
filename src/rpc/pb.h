/*
 * pb.h — nanopb encode/decode helpers for the generated Google API stubs
 * (googleapis/, nanopb with fallback_type FT_POINTER: strings, bytes and
 * repeated fields are heap pointers).
 *
 * Threading: thread-compatible. Source: nanopb 0.4.7 pb_encode/pb_decode.
 */
#ifndef TRB_SRC_RPC_PB_H
#define TRB_SRC_RPC_PB_H

#include <stddef.h>
#include <stdint.h>

#include <pb.h>

#include <grpc/status.h>

#include "src/common/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Serialize `msg` (a generated struct described by `fields`, e.g.
 * google_pubsub_v1_PublishRequest_fields).
 * Params:  out, out_len — receive a trb_malloc'd buffer (caller frees with
 *          trb_free); a zero-length message yields a 1-byte allocation and
 *          *out_len == 0.
 * Returns: OK; RESOURCE_EXHAUSTED; INTERNAL with nanopb's reason.
 */
grpc_status_code trb_pb_encode(const pb_msgdesc_t *fields, const void *msg,
                               uint8_t **out, size_t *out_len,
                               trb_status_t *st);

/**
 * Parse `buf` into `msg`. REQUIRES: `msg` zero-initialized (the generated
 * `<Message>_init_zero`): nanopb resets the fields itself but follows the
 * extension-list pointers of messages with extension ranges (descriptor.proto
 * options), which must be NULL. On success and on failure, release it with
 * trb_pb_release.
 * Returns: OK; INVALID_ARGUMENT with nanopb's reason for malformed input.
 */
grpc_status_code trb_pb_decode(const pb_msgdesc_t *fields, const uint8_t *buf,
                               size_t len, void *msg, trb_status_t *st);

/** Free the heap parts of a decoded message (pb_release). NULL-safe. */
void trb_pb_release(const pb_msgdesc_t *fields, void *msg);

/**
 * A heap copy of `len` bytes as a pb_bytes_array_t (for bytes fields in
 * messages built by hand); free with trb_pb_free (or pb_release of the
 * enclosing message). NULL on allocation failure.
 */
pb_bytes_array_t *trb_pb_bytes(const void *data, size_t len);

/** A heap copy of a NUL-terminated string for a string field (free with
 *  trb_pb_free or pb_release of the enclosing message). */
char *trb_pb_strdup(const char *s);

/** Free memory obtained from trb_pb_bytes / trb_pb_strdup. NULL-safe. */
void trb_pb_free(void *p);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_RPC_PB_H */
