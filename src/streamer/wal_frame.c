/*
 * wal_frame.c — CRC32C and the WAL record frame (see wal_frame.h).
 */
#include "src/streamer/wal_frame.h"

#include <pthread.h>
#include <string.h>

/* Reflected Castagnoli polynomial. */
#define CRC32C_POLY 0x82F63B78u

/* Slicing-by-8 tables, built once on first use. */
static uint32_t crc_table[8][256];
static pthread_once_t crc_table_once = PTHREAD_ONCE_INIT;

static void crc_table_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
    crc_table[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = crc_table[0][i];
    for (int t = 1; t < 8; t++) {
      c = crc_table[0][c & 0xff] ^ (c >> 8);
      crc_table[t][i] = c;
    }
  }
}

static void crc_tables(void) { pthread_once(&crc_table_once, crc_table_init); }

uint32_t trb_wal_crc32c_sw(uint32_t crc, const void *data, size_t len) {
  const uint8_t *p = (const uint8_t *)data;
  uint32_t c = ~crc;
  crc_tables();
  while (len > 0 && ((uintptr_t)p & 7) != 0) {
    c = crc_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    len--;
  }
  while (len >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    w ^= c; /* little-endian hosts only (x86_64, aarch64) */
    c = crc_table[7][w & 0xff] ^ crc_table[6][(w >> 8) & 0xff] ^
        crc_table[5][(w >> 16) & 0xff] ^ crc_table[4][(w >> 24) & 0xff] ^
        crc_table[3][(w >> 32) & 0xff] ^ crc_table[2][(w >> 40) & 0xff] ^
        crc_table[1][(w >> 48) & 0xff] ^ crc_table[0][w >> 56];
    p += 8;
    len -= 8;
  }
  while (len-- > 0) c = crc_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
  return ~c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const void *data,
                                                             size_t len) {
  const uint8_t *p = (const uint8_t *)data;
  uint64_t c = (uint32_t)~crc;
  while (len > 0 && ((uintptr_t)p & 7) != 0) {
    c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
    len--;
  }
  while (len >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    c = __builtin_ia32_crc32di(c, w);
    p += 8;
    len -= 8;
  }
  while (len-- > 0) c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
  return ~(uint32_t)c;
}
#endif

uint32_t trb_wal_crc32c(uint32_t crc, const void *data, size_t len) {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("sse4.2")) return crc32c_hw(crc, data, len);
#endif
  return trb_wal_crc32c_sw(crc, data, len);
}

static void put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

static uint64_t get_u64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

/* CRC of payload || length || type || lsn, given the payload's CRC and the
 * header with its length/type/lsn fields filled in. */
static uint32_t header_crc(uint32_t payload_crc, const uint8_t *hdr) {
  uint32_t c = trb_wal_crc32c(payload_crc, hdr, 4);
  return trb_wal_crc32c(c, hdr + 8, TRB_WAL_FRAME_HEADER_BYTES - 8);
}

void trb_wal_frame_header(uint8_t hdr[TRB_WAL_FRAME_HEADER_BYTES], uint8_t type,
                          uint64_t lsn, size_t len, uint32_t payload_crc) {
  put_u32(hdr, (uint32_t)len);
  hdr[8] = type;
  put_u64(hdr + 9, lsn);
  put_u32(hdr + 4, header_crc(payload_crc, hdr));
}

trb_wal_frame_result_t trb_wal_frame_decode(const uint8_t *buf, size_t avail, bool check_crc,
                                            trb_wal_frame_t *out) {
  if (avail < TRB_WAL_FRAME_HEADER_BYTES) return TRB_WAL_FRAME_SHORT;
  size_t len = get_u32(buf);
  if (len > TRB_WAL_FRAME_MAX_PAYLOAD) return TRB_WAL_FRAME_BAD;
  if (avail - TRB_WAL_FRAME_HEADER_BYTES < len) return TRB_WAL_FRAME_SHORT;
  uint8_t type = buf[8];
  uint64_t lsn = get_u64(buf + 9);
  if (type == 0 || lsn == 0) return TRB_WAL_FRAME_BAD;
  const uint8_t *payload = buf + TRB_WAL_FRAME_HEADER_BYTES;
  if (check_crc) {
    uint32_t c = header_crc(trb_wal_crc32c(0, payload, len), buf);
    if (c != get_u32(buf + 4)) return TRB_WAL_FRAME_BAD;
  }
  out->type = type;
  out->lsn = lsn;
  out->payload = payload;
  out->len = len;
  out->frame_bytes = TRB_WAL_FRAME_HEADER_BYTES + len;
  return TRB_WAL_FRAME_OK;
}
