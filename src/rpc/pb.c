/*
 * pb.c — nanopb helpers (see pb.h).
 *
 * nanopb's pb_release frees pointer fields with free(); memory placed in
 * messages by hand therefore comes from malloc, not trb_malloc.
 */
#include "src/rpc/pb.h"

#include <stdlib.h>
#include <string.h>

#include <pb_decode.h>
#include <pb_encode.h>

#include "src/common/alloc.h"

grpc_status_code trb_pb_encode(const pb_msgdesc_t *fields, const void *msg,
                               uint8_t **out, size_t *out_len,
                               trb_status_t *st) {
  size_t size = 0;
  uint8_t *buf;
  pb_ostream_t os;

  *out = NULL;
  *out_len = 0;
  if (!pb_get_encoded_size(&size, fields, msg)) {
    return trb_status_set(st, GRPC_STATUS_INTERNAL,
                          "protobuf encode: cannot size message");
  }
  buf = trb_malloc(size ? size : 1);
  if (buf == NULL) {
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                          "protobuf encode: out of memory (%zu bytes)", size);
  }
  os = pb_ostream_from_buffer(buf, size);
  if (!pb_encode(&os, fields, msg)) {
    trb_free(buf);
    return trb_status_set(st, GRPC_STATUS_INTERNAL, "protobuf encode: %s",
                          PB_GET_ERROR(&os));
  }
  *out = buf;
  *out_len = os.bytes_written;
  return GRPC_STATUS_OK;
}

grpc_status_code trb_pb_decode(const pb_msgdesc_t *fields, const uint8_t *buf,
                               size_t len, void *msg, trb_status_t *st) {
  pb_istream_t is = pb_istream_from_buffer(buf, len);
  if (!pb_decode(&is, fields, msg)) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "protobuf decode: %s", PB_GET_ERROR(&is));
  }
  return GRPC_STATUS_OK;
}

void trb_pb_release(const pb_msgdesc_t *fields, void *msg) {
  if (msg != NULL) pb_release(fields, msg);
}

pb_bytes_array_t *trb_pb_bytes(const void *data, size_t len) {
  pb_bytes_array_t *b;
  if (len > PB_SIZE_MAX) return NULL;
  b = malloc(PB_BYTES_ARRAY_T_ALLOCSIZE(len));
  if (b == NULL) return NULL;
  b->size = (pb_size_t)len;
  if (len) memcpy(b->bytes, data, len);
  return b;
}

char *trb_pb_strdup(const char *s) {
  size_t n;
  char *d;
  if (s == NULL) return NULL;
  n = strlen(s) + 1;
  d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

void trb_pb_free(void *p) { free(p); }
