/*
 * varint.h — protobuf base-128 varints, written (pure, header-only).
 *
 * The encoding of the protobuf wire format ("Encoding", protobuf.dev/
 * programming-guides/encoding): 7 bits per byte, least significant group
 * first, the high bit set on every byte but the last. Shared by the
 * hand-written request encoders (src/pubsub codec / ack_codec,
 * src/bigquery append_codec), which must match nanopb byte for byte.
 * Threading: pure functions.
 */
#ifndef TRB_SRC_COMMON_VARINT_H
#define TRB_SRC_COMMON_VARINT_H

#include <stddef.h>
#include <stdint.h>

/** Bytes of the varint of `v`: 1..10. */
static inline size_t trb_varint_len(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

/** Write the varint of `v` at `p` (room for trb_varint_len(v) bytes, the
 *  caller's); returns the byte after it. */
static inline uint8_t *trb_varint_put(uint8_t *p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  *p++ = (uint8_t)v;
  return p;
}

#endif /* TRB_SRC_COMMON_VARINT_H */
