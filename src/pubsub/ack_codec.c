/*
 * ack_codec.c — see ack_codec.h.
 */
#include "src/pubsub/ack_codec.h"

#include <string.h>

#include "src/common/varint.h"

/* int32 fields are varints of the sign-extended 64-bit value. */
static uint64_t int32_wire(int32_t v) { return (uint64_t)(int64_t)v; }

size_t trb_ps_ackreq_header_len(size_t sub_len, bool ack, int32_t secs) {
  size_t n = 1 + trb_varint_len(sub_len) + sub_len;
  if (!ack && secs != 0) n += 1 + trb_varint_len(int32_wire(secs));
  return n;
}

size_t trb_ps_ackreq_put_header(uint8_t *out, const char *subscription,
                                size_t sub_len, bool ack, int32_t secs) {
  uint8_t *p = out;
  *p++ = 0x0a; /* subscription = 1 */
  p = trb_varint_put(p, sub_len);
  if (sub_len) memcpy(p, subscription, sub_len);
  p += sub_len;
  if (!ack && secs != 0) {
    *p++ = 0x18; /* ack_deadline_seconds = 3, varint */
    p = trb_varint_put(p, int32_wire(secs));
  }
  return (size_t)(p - out);
}

size_t trb_ps_ackreq_id_len(size_t id_len) {
  return 1 + trb_varint_len(id_len) + id_len;
}

size_t trb_ps_ackreq_put_id(uint8_t *out, bool ack, const char *id,
                            size_t id_len) {
  uint8_t *p = out;
  *p++ = ack ? 0x12 : 0x22; /* ack_ids = 2 (Acknowledge) / 4 (ModifyAckDeadline) */
  p = trb_varint_put(p, id_len);
  if (id_len) memcpy(p, id, id_len);
  p += id_len;
  return (size_t)(p - out);
}

size_t trb_ps_ackreq_move_id(uint8_t *req, size_t at, trb_ps_ackreq_id_t *id) {
  size_t entry = trb_ps_ackreq_id_len(id->len);
  size_t start = (size_t)id->off + id->len - entry;
  if (start != at) memmove(req + at, req + start, entry);
  at += entry;
  id->off = (uint32_t)(at - id->len);
  return at;
}
