/*
 * pb_view.h — zero-copy bytes fields for the generated Google API stubs.
 *
 * Debian's nanopb runtime has a 16-bit pb_size_t, which caps a
 * pb_bytes_array_t at 65,535 bytes. The fields that carry payloads
 * (PubsubMessage.data, Any.value, ProtoRows.serialized_rows; see
 * googleapis/nanopb.options) are therefore generated as callback fields of
 * these types, handled by trb_pb_view_cb:
 *
 * - Decoding points into the input buffer: a view is valid only while the
 *   buffer given to pb_decode/trb_pb_decode is. No copy, no size cap.
 * - Encoding writes the bytes the view points at (borrowed).
 *
 * Threading: thread-compatible. Source: nanopb 0.4 `callback_datatype` /
 * `callback_function` field options.
 */
#ifndef TRB_SRC_RPC_PB_VIEW_H
#define TRB_SRC_RPC_PB_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pb.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A borrowed byte range. {NULL, 0} is the empty (absent) value. */
typedef struct trb_pb_view_s {
  const uint8_t *data;
  size_t len;
} trb_pb_view_t;

/**
 * A repeated bytes field: `count` views. For encoding, point `items` at the
 * caller's array (`cap` 0: not owned). Decoding appends into a heap array
 * (`cap` > 0) that the caller frees with trb_pb_view_list_free — pb_release
 * does not know about it — after a successful and after a failed decode
 * alike. No list is generated inside a oneof union, where a later member
 * would overwrite it (googleapis/nanopb.options: AppendRowsRequest is
 * generated with no_unions, so its `rows` oneof is has_proto_rows /
 * has_arrow_rows).
 */
typedef struct trb_pb_view_list_s {
  trb_pb_view_t *items;
  size_t count;
  size_t cap;
} trb_pb_view_list_t;

/** Free a decoded list's array (when owned) and zero it. NULL-safe. */
void trb_pb_view_list_free(trb_pb_view_list_t *l);

/**
 * nanopb field callback for trb_pb_view_t and trb_pb_view_list_t fields
 * (named in the generated *_CALLBACK macros; not called directly).
 * Decoding REQUIRES a stream from pb_istream_from_buffer; other streams fail
 * with "view needs a buffer stream".
 */
bool trb_pb_view_cb(pb_istream_t *istream, pb_ostream_t *ostream,
                    const pb_field_t *field);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_RPC_PB_VIEW_H */
