/*
 * walrec.h — the streamer's write-ahead log records (pure codec, no I/O).
 * The WAL (wal.h) stores them as opaque typed payloads; this file gives
 * them their layout. All integers little-endian.
 *
 *   BATCH (type 1): rows logged before their AppendRows, at a fixed offset.
 *     u8 version (1) | u16 table_len | table | u16 stream_len | stream |
 *     i64 offset | u32 n | n × (u16 id_len | message id) |
 *     n × u32 row_len | rows (concatenated serialized protobuf rows)
 *   DONE  (type 2): the append of BATCH record `lsn` was acknowledged (OK or
 *     ALREADY_EXISTS), or every row of it was dead-lettered instead.
 *     u8 version | u64 batch lsn
 *   DEAD  (type 3): the message was published to the dead-letter topic and
 *     the publish confirmed.
 *     u8 version | u16 id_len | message id
 *
 * A later BATCH record for the same (stream, offset) supersedes an earlier
 * one (rows rejected by the server were dead-lettered and the rest logged
 * again at the same offset).
 *
 * Threading: thread-safe (no state). Source: DESIGN.md "Delivery
 * semantics" (steps 2–5).
 */
#ifndef TRB_SRC_STREAMER_WALREC_H
#define TRB_SRC_STREAMER_WALREC_H

#include <stddef.h>
#include <stdint.h>

#include <grpc/status.h>

#include "src/common/arena.h"
#include "src/common/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TRB_WALREC_BATCH 1
#define TRB_WALREC_DONE 2
#define TRB_WALREC_DEAD 3
/** SEEN (type 4, layout of DEAD): the message was written or dead-lettered
 *  but its ack did not succeed; a redelivered copy is acked, not written. */
#define TRB_WALREC_SEEN 4

/** Longest table path / stream name / message id stored, bytes. */
#define TRB_WALREC_MAX_NAME 1024

/** A decoded BATCH record; every pointer points into the payload. */
typedef struct trb_walrec_batch_s {
  const char *table;
  size_t table_len;
  const char *stream;
  size_t stream_len;
  int64_t offset;
  uint32_t n;
  /** Byte position of the first id entry / row length in the payload. */
  const uint8_t *ids;
  const uint8_t *row_lens;
  const uint8_t *rows;
  size_t rows_len;
} trb_walrec_batch_t;

/**
 * Encode a BATCH header (everything before the rows) into `out`
 * (appended). The rows follow as a second buffer (gather write).
 * Params:  ids — `n` NUL-terminated message ids; row_lens — `n` lengths
 *          whose sum is the rows buffer's length.
 * Returns: OK; INVALID_ARGUMENT (a name or id over TRB_WALREC_MAX_NAME, a
 *          row over 4 GiB); RESOURCE_EXHAUSTED.
 */
grpc_status_code trb_walrec_batch_header(const char *table, const char *stream,
                                         int64_t offset, uint32_t n,
                                         const char *const *ids,
                                         const size_t *row_lens, trb_buf_t *out,
                                         trb_status_t *st);

/**
 * trb_walrec_batch_header with the ids' lengths given (byte-identical
 * output; no strlen per id).
 * Params:  id_lens — `n` lengths of `ids` (the ids need not be
 *          NUL-terminated), or NULL to measure them with strlen.
 * Returns: as trb_walrec_batch_header.
 */
grpc_status_code trb_walrec_batch_header_n(
    const char *table, const char *stream, int64_t offset, uint32_t n,
    const char *const *ids, const size_t *id_lens, const size_t *row_lens,
    trb_buf_t *out, trb_status_t *st);

/** Decode a BATCH payload. Returns OK; DATA_LOSS naming what is wrong. */
grpc_status_code trb_walrec_batch_decode(const uint8_t *p, size_t len,
                                         trb_walrec_batch_t *out,
                                         trb_status_t *st);

/** Message id `i` (< n) of a decoded batch (not NUL-terminated). */
void trb_walrec_batch_id(const trb_walrec_batch_t *b, uint32_t i,
                         const char **id, size_t *id_len);

/** Row length `i` (< n) of a decoded batch. */
uint32_t trb_walrec_batch_row_len(const trb_walrec_batch_t *b, uint32_t i);

/** DONE payload: 9 bytes into `out`. */
void trb_walrec_done(uint64_t batch_lsn, uint8_t out[9]);
/** Returns OK and the batch lsn; DATA_LOSS. */
grpc_status_code trb_walrec_done_decode(const uint8_t *p, size_t len,
                                        uint64_t *lsn, trb_status_t *st);

/** DEAD payload into `out` (appended). Returns OK; INVALID_ARGUMENT;
 *  RESOURCE_EXHAUSTED. */
grpc_status_code trb_walrec_dead(const char *message_id, trb_buf_t *out,
                                 trb_status_t *st);
/** Returns OK and the id (into the payload); DATA_LOSS. */
grpc_status_code trb_walrec_dead_decode(const uint8_t *p, size_t len,
                                        const char **id, size_t *id_len,
                                        trb_status_t *st);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_STREAMER_WALREC_H */
