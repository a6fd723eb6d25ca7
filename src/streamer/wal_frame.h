/*
 * wal_frame.h — pure codec for write-ahead log records (no I/O): CRC32C and
 * the on-disk record frame used by src/streamer/wal.c.
 *
 * A record is framed as 17 header bytes followed by the payload, all
 * integers little-endian:
 *
 *   offset 0  u32 length   payload length in bytes (<= TRB_WAL_FRAME_MAX_PAYLOAD)
 *   offset 4  u32 crc      CRC32C (Castagnoli, as in iSCSI/ext4) of the byte
 *                          string payload || length || type || lsn, i.e. the
 *                          payload first and then the 13 other header bytes
 *                          (bytes 0..3 and 8..16). Covering the payload first
 *                          lets writers checksum it before its lsn is known.
 *   offset 8  u8  type     record type, 1..255 (0 is never written)
 *   offset 9  u64 lsn      log sequence number, >= 1
 *   offset 17 payload
 *
 * Threading: every function is thread-safe (pure; the CRC tables are
 * constant).
 * Source: CRC32C polynomial 0x1EDC6F41 (reflected 0x82F63B78), RFC 3720
 * section 12.1; check value crc32c("123456789") = 0xE3069283.
 */
#ifndef TRB_SRC_STREAMER_WAL_FRAME_H
#define TRB_SRC_STREAMER_WAL_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Size of a record header in bytes (length, crc, type, lsn). */
#define TRB_WAL_FRAME_HEADER_BYTES 17u

/** Largest payload a record may carry: 256 MiB. */
#define TRB_WAL_FRAME_MAX_PAYLOAD ((size_t)256 * 1024 * 1024)

/**
 * Extend a CRC32C over `len` bytes of `data`.
 *
 * Params:  crc — the CRC of the bytes before (0 to start); data — borrowed,
 *          may be NULL when len is 0.
 * Returns: the CRC32C of the concatenation (standard pre/post inversion is
 *          applied inside, so crc32c(crc32c(0, a), b) == crc32c(0, a || b)).
 *          Uses the SSE4.2 crc32 instruction when the CPU has it, else a
 *          slicing-by-8 table.
 */
uint32_t trb_wal_crc32c(uint32_t crc, const void *data, size_t len);

/** As trb_wal_crc32c, always with the portable table code (for tests). */
uint32_t trb_wal_crc32c_sw(uint32_t crc, const void *data, size_t len);

/**
 * Fill in a record header for a payload whose CRC32C (trb_wal_crc32c(0,
 * payload, len)) is `payload_crc`.
 *
 * Params:  hdr — out, TRB_WAL_FRAME_HEADER_BYTES bytes; type — 1..255;
 *          lsn — >= 1; len — payload bytes, <= TRB_WAL_FRAME_MAX_PAYLOAD.
 */
void trb_wal_frame_header(uint8_t hdr[TRB_WAL_FRAME_HEADER_BYTES], uint8_t type,
                          uint64_t lsn, size_t len, uint32_t payload_crc);

/** Result of trb_wal_frame_decode. */
typedef enum {
  TRB_WAL_FRAME_OK = 0,    /* a complete, intact record */
  TRB_WAL_FRAME_SHORT = 1, /* the buffer ends inside the header or payload */
  TRB_WAL_FRAME_BAD = 2    /* CRC mismatch, type 0, lsn 0 or oversized length */
} trb_wal_frame_result_t;

/** A decoded record; `payload` points into the decoded buffer (borrowed). */
typedef struct trb_wal_frame_s {
  uint8_t type;
  uint64_t lsn;
  const uint8_t *payload;
  size_t len;         /* payload bytes */
  size_t frame_bytes; /* header + payload: where the next record starts */
} trb_wal_frame_t;

/**
 * Decode the record at the start of `buf`.
 *
 * Params:  buf, avail — borrowed bytes (avail may be 0); check_crc — false
 *          skips the CRC (for a second pass over bytes already verified);
 *          out — filled when OK.
 * Returns: TRB_WAL_FRAME_OK; TRB_WAL_FRAME_SHORT when `avail` is smaller than
 *          the header or than header + length; TRB_WAL_FRAME_BAD when the
 *          length exceeds TRB_WAL_FRAME_MAX_PAYLOAD, the type or lsn is 0, or
 *          the CRC does not match.
 */
trb_wal_frame_result_t trb_wal_frame_decode(const uint8_t *buf, size_t avail, bool check_crc,
                                            trb_wal_frame_t *out);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_STREAMER_WAL_FRAME_H */
