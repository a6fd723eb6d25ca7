/*
 * walrec.c — WAL record layouts (see walrec.h).
 */
#include "src/streamer/walrec.h"

#include <string.h>

static void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
static void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t get16(const uint8_t *p) {
  return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}
static uint32_t get32(const uint8_t *p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--) v = v << 8 | p[i];
  return v;
}
static uint64_t get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

static int add_str(trb_buf_t *b, const char *s, size_t n) {
  uint8_t l[2];
  put16(l, (uint16_t)n);
  if (trb_buf_append(b, l, 2) != 0) return -1;
  return trb_buf_append(b, s, n);
}

grpc_status_code trb_walrec_batch_header_n(
    const char *table, const char *stream, int64_t offset, uint32_t n,
    const char *const *ids, const size_t *id_lens, const size_t *row_lens,
    trb_buf_t *out, trb_status_t *st) {
  size_t tl = strlen(table), sl = strlen(stream);
  if (tl > TRB_WALREC_MAX_NAME || sl > TRB_WALREC_MAX_NAME)
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "WAL batch: table or stream name too long");
  /* Sizes first (one reservation), then the bytes in place. */
  size_t total = 1 + 2 + tl + 2 + sl + 12 + (size_t)n * (2 + 4);
  for (uint32_t i = 0; i < n; i++) {
    size_t il = id_lens ? id_lens[i] : strlen(ids[i]);
    if (il > TRB_WALREC_MAX_NAME)
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "WAL batch: message id too long");
    if (row_lens[i] > UINT32_MAX)
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "WAL batch: row too large");
    total += il;
  }
  if (trb_buf_reserve(out, total))
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  uint8_t *p = (uint8_t *)out->data + out->len;
  *p++ = 1;
  put16(p, (uint16_t)tl);
  memcpy(p + 2, table, tl);
  p += 2 + tl;
  put16(p, (uint16_t)sl);
  memcpy(p + 2, stream, sl);
  p += 2 + sl;
  put64(p, (uint64_t)offset);
  put32(p + 8, n);
  p += 12;
  for (uint32_t i = 0; i < n; i++) {
    size_t il = id_lens ? id_lens[i] : strlen(ids[i]);
    put16(p, (uint16_t)il);
    memcpy(p + 2, ids[i], il);
    p += 2 + il;
  }
  for (uint32_t i = 0; i < n; i++) {
    put32(p, (uint32_t)row_lens[i]);
    p += 4;
  }
  out->len += total;
  out->data[out->len] = '\0';
  return GRPC_STATUS_OK;
}

grpc_status_code trb_walrec_batch_header(const char *table, const char *stream,
                                         int64_t offset, uint32_t n,
                                         const char *const *ids,
                                         const size_t *row_lens, trb_buf_t *out,
                                         trb_status_t *st) {
  return trb_walrec_batch_header_n(table, stream, offset, n, ids, NULL,
                                   row_lens, out, st);
}

#define NEED(k)                                                          \
  do {                                                                   \
    if ((size_t)(end - p) < (size_t)(k))                                 \
      return trb_status_set(st, GRPC_STATUS_DATA_LOSS,                   \
                            "WAL batch record truncated at byte %zu",    \
                            (size_t)(p - start));                        \
  } while (0)

grpc_status_code trb_walrec_batch_decode(const uint8_t *p, size_t len,
                                         trb_walrec_batch_t *out,
                                         trb_status_t *st) {
  const uint8_t *start = p, *end = p + len;
  memset(out, 0, sizeof *out);
  NEED(1);
  if (*p != 1)
    return trb_status_set(st, GRPC_STATUS_DATA_LOSS,
                          "WAL batch record version %u unknown", *p);
  p++;
  NEED(2);
  out->table_len = get16(p);
  p += 2;
  NEED(out->table_len);
  out->table = (const char *)p;
  p += out->table_len;
  NEED(2);
  out->stream_len = get16(p);
  p += 2;
  NEED(out->stream_len);
  out->stream = (const char *)p;
  p += out->stream_len;
  NEED(12);
  out->offset = (int64_t)get64(p);
  out->n = get32(p + 8);
  p += 12;
  out->ids = p;
  for (uint32_t i = 0; i < out->n; i++) {
    NEED(2);
    size_t il = get16(p);
    p += 2;
    NEED(il);
    p += il;
  }
  NEED((size_t)out->n * 4);
  out->row_lens = p;
  size_t total = 0;
  for (uint32_t i = 0; i < out->n; i++) total += get32(p + 4 * (size_t)i);
  p += (size_t)out->n * 4;
  if ((size_t)(end - p) != total)
    return trb_status_set(st, GRPC_STATUS_DATA_LOSS,
                          "WAL batch record: rows are %zu bytes, lengths say "
                          "%zu",
                          (size_t)(end - p), total);
  out->rows = p;
  out->rows_len = total;
  return GRPC_STATUS_OK;
}

void trb_walrec_batch_id(const trb_walrec_batch_t *b, uint32_t i,
                         const char **id, size_t *id_len) {
  const uint8_t *p = b->ids;
  for (uint32_t k = 0; k < i; k++) p += 2 + get16(p);
  *id_len = get16(p);
  *id = (const char *)p + 2;
}

uint32_t trb_walrec_batch_row_len(const trb_walrec_batch_t *b, uint32_t i) {
  return get32(b->row_lens + 4 * (size_t)i);
}

void trb_walrec_done(uint64_t batch_lsn, uint8_t out[9]) {
  out[0] = 1;
  put64(out + 1, batch_lsn);
}

grpc_status_code trb_walrec_done_decode(const uint8_t *p, size_t len,
                                        uint64_t *lsn, trb_status_t *st) {
  if (len != 9 || p[0] != 1)
    return trb_status_set(st, GRPC_STATUS_DATA_LOSS, "WAL done record malformed");
  *lsn = get64(p + 1);
  return GRPC_STATUS_OK;
}

grpc_status_code trb_walrec_dead(const char *message_id, trb_buf_t *out,
                                 trb_status_t *st) {
  size_t n = strlen(message_id);
  if (n > TRB_WALREC_MAX_NAME)
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "WAL dead record: message id too long");
  uint8_t v = 1;
  if (trb_buf_append(out, &v, 1) || add_str(out, message_id, n))
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  return GRPC_STATUS_OK;
}

grpc_status_code trb_walrec_dead_decode(const uint8_t *p, size_t len,
                                        const char **id, size_t *id_len,
                                        trb_status_t *st) {
  if (len < 3 || p[0] != 1 || (size_t)get16(p + 1) + 3 != len)
    return trb_status_set(st, GRPC_STATUS_DATA_LOSS, "WAL dead record malformed");
  *id_len = get16(p + 1);
  *id = (const char *)p + 3;
  return GRPC_STATUS_OK;
}
