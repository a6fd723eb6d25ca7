/*
 * append_codec.h — pure wire encoder (no I/O) of the AppendRowsRequest
 * shapes the Storage Write client sends: write_stream (first request of a
 * connection), offset (streams with offsets), proto_rows.writer_schema
 * (first request; the DescriptorProto given already serialized) and
 * proto_rows.rows.serialized_rows (the chunk's rows).
 *
 * The output is byte-identical to nanopb's encoding of the same
 * google_cloud_bigquery_storage_v1_AppendRowsRequest (trb_pb_encode):
 * fields in field-number order, minimal varints, a present offset always
 * encoded (an Int64Value of 0 is the empty message), a present
 * writer_schema always carries proto_descriptor, rows always present
 * (possibly with no serialized_rows). Sizes are computed arithmetically
 * from the row lengths (one pass over the lengths, none over the row
 * bytes), and the rows are copied once.
 *
 * Source: google/cloud/bigquery/storage/v1/storage.proto
 * AppendRowsRequest{write_stream=1, offset=2 (google.protobuf.Int64Value
 * {value=1}), proto_rows=4 (ProtoData{writer_schema=1 (ProtoSchema
 * {proto_descriptor=1}), rows=2 (ProtoRows{serialized_rows=1})})};
 * protobuf.proto. Threading: pure functions, thread-safe.
 */
#ifndef TRB_SRC_BIGQUERY_APPEND_CODEC_H
#define TRB_SRC_BIGQUERY_APPEND_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** One AppendRowsRequest to encode. Everything borrowed. */
typedef struct trb_bq_append_req_s {
  /** AppendRowsRequest.write_stream (NUL-terminated); NULL: absent. An
   *  empty string is sent (as nanopb does for a non-NULL pointer). */
  const char *write_stream;
  /** AppendRowsRequest.offset present (Int64Value with `offset`). */
  bool has_offset;
  int64_t offset;
  /** proto_rows.writer_schema present, proto_descriptor = the
   *  `descriptor_len` bytes at `descriptor` (a serialized DescriptorProto;
   *  may be empty). */
  bool has_writer_schema;
  const uint8_t *descriptor;
  size_t descriptor_len;
  /** proto_rows.rows.serialized_rows: `n_rows` rows, concatenated at
   *  `rows`, row i `row_len[i]` bytes (0 allowed). */
  const uint8_t *rows;
  const size_t *row_len;
  size_t n_rows;
} trb_bq_append_req_t;

/**
 * Encode `r` into one buffer.
 * Params:  out, out_len — receive a trb_malloc'd buffer (caller frees with
 *          trb_free) of exactly *out_len bytes.
 * Returns: true; false when out of memory (*out NULL).
 */
bool trb_bq_append_req_encode(const trb_bq_append_req_t *r, uint8_t **out,
                              size_t *out_len);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_BIGQUERY_APPEND_CODEC_H */
