/*
 * details.h — google.rpc.Status in the `grpc-status-details-bin` trailer:
 * the rich error model through which BigQuery's StorageError and Pub/Sub's
 * ErrorInfo (exactly-once ack results) reach clients.
 *
 * Threading: all functions are thread-compatible (no shared state).
 * Source: google/rpc/status.proto (code=1, message=2, details=3 Any),
 * google/protobuf/any.proto (type_url=1, value=2).
 */
#ifndef TRB_SRC_RPC_DETAILS_H
#define TRB_SRC_RPC_DETAILS_H

#include <stddef.h>
#include <stdint.h>

#include <grpc/status.h>

#include "src/common/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Prefix of every Google API type URL. */
#define TRB_RPC_TYPE_URL_PREFIX "type.googleapis.com/"

/** One google.protobuf.Any: a full type URL and the serialized message. */
typedef struct trb_rpc_any_s {
  /** e.g. "type.googleapis.com/google.rpc.ErrorInfo"; NUL-terminated. */
  const char *type_url;
  const uint8_t *value;
  size_t value_len;
} trb_rpc_any_t;

/**
 * Serialize google.rpc.Status{code, message, details}.
 *
 * Params:  message — may be NULL (""); details — array of `n_details`,
 *          borrowed. out, out_len — receive a trb_malloc'd buffer the
 *          caller frees with trb_free (NULL/0 only on error).
 * Returns: OK; RESOURCE_EXHAUSTED on allocation failure; INTERNAL if the
 *          encoder fails.
 */
grpc_status_code trb_rpc_status_details_encode(grpc_status_code code,
                                               const char *message,
                                               const trb_rpc_any_t *details,
                                               size_t n_details, uint8_t **out,
                                               size_t *out_len,
                                               trb_status_t *st);

/** A decoded google.rpc.Status; everything owned by the struct. */
typedef struct trb_rpc_status_details_s {
  int32_t code;
  /** NUL-terminated; never NULL after a successful decode. */
  char *message;
  size_t n_details;
  /** Array of `n_details`; strings and bytes owned by this struct. */
  trb_rpc_any_t *details;
  void *impl_; /* decoded nanopb message backing the pointers */
} trb_rpc_status_details_t;

/**
 * Parse a serialized google.rpc.Status (e.g. trb_rpc_result_t.details).
 * `out` must be released with trb_rpc_status_details_deinit, also on error.
 * Returns: OK; INVALID_ARGUMENT when the bytes are not a Status;
 *          RESOURCE_EXHAUSTED.
 */
grpc_status_code trb_rpc_status_details_decode(const uint8_t *buf, size_t len,
                                               trb_rpc_status_details_t *out,
                                               trb_status_t *st);

/** Free what `d` owns and zero it. NULL-safe. */
void trb_rpc_status_details_deinit(trb_rpc_status_details_t *d);

/**
 * The first detail whose type URL is `type_url` (a full URL, or just the
 * message name such as "google.rpc.ErrorInfo"), or NULL. Borrowed from `d`.
 */
const trb_rpc_any_t *trb_rpc_status_details_find(
    const trb_rpc_status_details_t *d, const char *type_url);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_RPC_DETAILS_H */
