/*
 * append_codec.c — see append_codec.h.
 *
 * Layout written (tags are field_number << 3 | 2, all length-delimited):
 *   0x0a len write_stream
 *   0x12 len { 0x08 varint(offset) }            (value omitted when 0)
 *   0x22 len ProtoData {
 *     0x0a len ProtoSchema { 0x0a len descriptor }
 *     0x12 len ProtoRows { (0x0a len row)* } }
 */
#include "src/bigquery/append_codec.h"

#include <string.h>

#include "src/common/alloc.h"
#include "src/common/varint.h"

/* A length-delimited field of a `len`-byte body: tag + length + body. */
static size_t ld(size_t len) { return 1 + trb_varint_len(len) + len; }

static uint8_t *put_ld_header(uint8_t *p, uint8_t tag, size_t len) {
  *p++ = tag;
  return trb_varint_put(p, len);
}

bool trb_bq_append_req_encode(const trb_bq_append_req_t *r, uint8_t **out,
                              size_t *out_len) {
  /* Sizes, innermost first. Row bytes are not read here. */
  size_t rows_body = 0;
  for (size_t i = 0; i < r->n_rows; i++) {
    size_t n = r->row_len[i];
    rows_body += 1 + (n < 0x80 ? 1 : trb_varint_len(n)) + n;
  }
  size_t schema_body = r->has_writer_schema ? ld(r->descriptor_len) : 0;
  size_t data_body = ld(rows_body) + (r->has_writer_schema ? ld(schema_body) : 0);
  /* Int64Value is encoded as a plain varint of the two's complement. */
  size_t offset_body =
      r->has_offset && r->offset != 0 ? 1 + trb_varint_len((uint64_t)r->offset) : 0;
  size_t stream_len = r->write_stream ? strlen(r->write_stream) : 0;
  size_t total = (r->write_stream ? ld(stream_len) : 0) +
                 (r->has_offset ? ld(offset_body) : 0) + ld(data_body);

  uint8_t *buf = trb_malloc(total);
  *out = buf;
  *out_len = 0;
  if (!buf) return false;
  uint8_t *p = buf;
  if (r->write_stream) {
    p = put_ld_header(p, 0x0a, stream_len);
    memcpy(p, r->write_stream, stream_len);
    p += stream_len;
  }
  if (r->has_offset) {
    p = put_ld_header(p, 0x12, offset_body);
    if (offset_body) {
      *p++ = 0x08;
      p = trb_varint_put(p, (uint64_t)r->offset);
    }
  }
  p = put_ld_header(p, 0x22, data_body);
  if (r->has_writer_schema) {
    p = put_ld_header(p, 0x0a, schema_body);
    p = put_ld_header(p, 0x0a, r->descriptor_len);
    if (r->descriptor_len) memcpy(p, r->descriptor, r->descriptor_len);
    p += r->descriptor_len;
  }
  p = put_ld_header(p, 0x12, rows_body);
  const uint8_t *row = r->rows;
  for (size_t i = 0; i < r->n_rows; i++) {
    size_t n = r->row_len[i];
    *p++ = 0x0a;
    if (n < 0x80) {
      *p++ = (uint8_t)n;
    } else {
      p = trb_varint_put(p, n);
    }
    if (n) memcpy(p, row, n);
    p += n;
    row += n;
  }
  *out_len = (size_t)(p - buf);
  return true;
}
