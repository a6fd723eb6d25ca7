/*
 * wal.h — the streamer's write-ahead log: typed opaque records, durable with
 * group commit, replayed at open, compacted by prefix as the caller releases
 * records (DESIGN.md "Delivery semantics", steps 2 and 5).
 *
 * The WAL gives records no meaning; the streamer does (batch logged before an
 * AppendRows, batch done, dead letter confirmed).
 *
 * On disk: one directory, owned by one process (flock on DIR/LOCK, which
 * holds the owner's pid), with segment files DIR/wal-<first lsn %020llu>.log.
 * Each segment is a sequence of records framed as in wal_frame.h:
 * [u32 length][u32 crc32c][u8 type][u64 lsn][payload]. LSNs are consecutive
 * within and across segments.
 *
 * Recovery at open: a torn or corrupt tail of the LAST segment (a crash in
 * the middle of a write) is truncated away, with a WARNING log line naming
 * the file and offset. Any bad record elsewhere, an lsn out of sequence or a
 * gap between segments fails the open with DATA_LOSS naming the file and
 * offset; nothing is silently skipped. A bad record inside the last segment
 * cannot be told from a torn write: everything from it on is truncated
 * (with the warning), as PostgreSQL does at the end of its WAL.
 *
 * Writing: appends are queued to one writer thread, which takes everything
 * queued, writes it with writev(2), calls fdatasync(2) once (FSYNC mode),
 * then runs the done callbacks in lsn order (group commit). Segment files
 * are created and deleted by the writer thread; in FSYNC mode the directory
 * is fsynced after each create or delete.
 *
 * Compaction: when every record of the oldest segment is released and it is
 * not the current (newest) segment, it stops counting as live at once and
 * the writer thread deletes its file — strictly oldest first, each unlink
 * made durable (FSYNC mode) before the next, so a crash never leaves a hole
 * between segments. If an unlink fails, compaction stops (ERROR log) until
 * the WAL is reopened; the records of the undeleted segments are then
 * replayed again.
 *
 * Threading: trb_wal_append, trb_wal_appendv, trb_wal_release,
 * trb_wal_stats and trb_wal_health are thread-safe; trb_wal_open and trb_wal_close are called
 * once each, by the owner.
 * Source: design after PostgreSQL's WAL (CRC per record, stop at the first
 * bad record of the tail) and RocksDB's group commit.
 */
#ifndef TRB_SRC_STREAMER_WAL_H
#define TRB_SRC_STREAMER_WAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <grpc/status.h>

#include "src/common/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A write-ahead log (opaque); created by trb_wal_open, freed by trb_wal_close. */
typedef struct trb_wal_s trb_wal_t;

/** When a record counts as durable. */
typedef enum {
  /** fdatasync once per group commit (default): survives power loss. */
  TRB_WAL_SYNC_FSYNC = 0,
  /** write(2) only: survives kill -9 of the process, not power loss. */
  TRB_WAL_SYNC_NONE = 1
} trb_wal_sync_t;

/** Configuration of trb_wal_open; borrowed for the duration of the call. */
typedef struct trb_wal_config_s {
  /** Directory; created if missing (one level, mode 0755). Owned by one
   *  process: trb_wal_open takes an flock on DIR/LOCK; a second opener gets
   *  FAILED_PRECONDITION naming the holder pid. */
  const char *dir;
  /** Durability policy (TRB_WAL_SYNC_FSYNC by default). */
  trb_wal_sync_t sync;
  /** Roll to a new segment file when a record would take the current one
   *  past this size in bytes (a segment always takes at least one record);
   *  0 = 64 MiB. When max_bytes is set the effective size is at most
   *  max_bytes / 4, so that compaction can free space in quarters. */
  size_t segment_bytes;
  /** Disk budget in bytes of live segments (records framed, queued or
   *  written); 0 = unlimited. An append that would exceed it fails with
   *  RESOURCE_EXHAUSTED ("WAL full: N bytes live of M") without writing;
   *  releases free space. */
  uint64_t max_bytes;
  /** How long the writer may wait, in microseconds, after the first record
   *  of a group is queued for more records to join it; 0 = no waiting
   *  (commit what is queued). */
  int64_t max_group_delay_us;
} trb_wal_config_t;

/** Log sequence number: starts at 1 (0 is never a record's lsn, so callers
 *  may use it for "none"), strictly increasing across segments and restarts
 *  (an lsn whose record is not in the log at the next open — its append
 *  failed, or it was torn off the tail by a crash before it was durable —
 *  is given again after the WAL is reopened). */
typedef uint64_t trb_wal_lsn_t;

/**
 * Replay callback: called in log order for every record of every live
 * segment, on the opening thread, during trb_wal_open, after the whole log
 * was verified (so a DATA_LOSS open calls it for no record).
 * `payload` (`len` bytes) is borrowed for the call only.
 */
typedef void (*trb_wal_replay_cb)(void *user, trb_wal_lsn_t lsn, uint8_t type,
                                  const uint8_t *payload, size_t len);

/**
 * Done callback: exactly once per accepted append, on the WAL's writer
 * thread, in lsn order, after the record is durable per the sync policy
 * (`code` OK, `message` "") or failed: INTERNAL on a write error,
 * RESOURCE_EXHAUSTED when the disk is full (ENOSPC/EDQUOT), DATA_LOSS on an
 * fdatasync error, `message` naming the file and the errno text. Records
 * after a failed one also fail with the same code: the WAL is then broken
 * (FAILED_PRECONDITION for later appends; close it and open it again). A
 * failed record is not known to be durable, yet it may have reached the disk:
 * the next open may replay it. `message` is borrowed for the call. The
 * callback may call trb_wal_append/appendv/release/stats, never
 * trb_wal_close.
 */
typedef void (*trb_wal_done_cb)(void *user, trb_wal_lsn_t lsn, grpc_status_code code,
                                const char *message);

/**
 * Open (or create) the WAL in cfg->dir, replay it and start the writer
 * thread.
 *
 * Params:  cfg — borrowed; cfg->dir required.
 *          replay — may be NULL; called as described at trb_wal_replay_cb
 *                   with `user` (borrowed). Replayed records are live until
 *                   the caller releases them (trb_wal_release).
 *          out — receives the owned WAL (trb_wal_close); NULL on failure.
 *          st — may be NULL; detail on failure.
 * Returns: OK; INVALID_ARGUMENT for a NULL/empty dir; FAILED_PRECONDITION
 *          ("WAL directory D is locked by pid P") when another open WAL
 *          holds the directory; DATA_LOSS ("WAL segment wal-….log offset N: … in D")
 *          for corruption outside the tail of the last segment; an
 *          errno-derived code (trb_status_from_errno) for I/O errors;
 *          RESOURCE_EXHAUSTED when memory runs out.
 * Threading: call once per WAL; blocks on I/O.
 */
grpc_status_code trb_wal_open(const trb_wal_config_t *cfg, trb_wal_replay_cb replay, void *user,
                              trb_wal_t **out, trb_status_t *st);

/**
 * Append a record. The payload is copied and checksummed on the calling
 * thread; the write is queued to the writer thread.
 *
 * Params:  type — 1..255, chosen by the caller.
 *          payload — `len` bytes, borrowed for the call (NULL when len 0);
 *                    len <= 256 MiB.
 *          cb — may be NULL; else called once as trb_wal_done_cb says,
 *               with `user` (borrowed) — never when this returns an error.
 *          lsn — out: the record's lsn, known immediately so the caller can
 *                index it before durability (the callback may run before
 *                the caller reads it).
 *          st — may be NULL; detail on failure.
 * Returns: OK; INVALID_ARGUMENT for type 0 or len over 256 MiB;
 *          RESOURCE_EXHAUSTED over the budget (nothing written) or out of
 *          memory; FAILED_PRECONDITION when the WAL is broken or closing.
 * Threading: thread-safe; never blocks on I/O (the queue is bounded only by
 *          max_bytes).
 */
grpc_status_code trb_wal_append(trb_wal_t *w, uint8_t type, const void *payload, size_t len,
                                trb_wal_done_cb cb, void *user, trb_wal_lsn_t *lsn,
                                trb_status_t *st);

/**
 * Gather variant of trb_wal_append: the payload is the concatenation of
 * `iovcnt` buffers (e.g. a batch header and many rows), copied in order.
 *
 * Params:  iov — `iovcnt` (>= 0) entries, borrowed for the call; the total
 *          length is <= 256 MiB. Other params as trb_wal_append.
 * Returns: as trb_wal_append (INVALID_ARGUMENT also for iovcnt < 0).
 * Threading: thread-safe; never blocks on I/O.
 */
grpc_status_code trb_wal_appendv(trb_wal_t *w, uint8_t type, const struct iovec *iov, int iovcnt,
                                 trb_wal_done_cb cb, void *user, trb_wal_lsn_t *lsn,
                                 trb_status_t *st);

/** Most buffers one trb_wal_appendv_lent call may lend. */
#define TRB_WAL_MAX_LENT 4

/**
 * trb_wal_appendv without copying the last `n_lent` buffers of `iov`: the
 * WAL writes them from the caller's memory, which must stay valid and
 * unchanged until the done callback has run (the first iovcnt - n_lent
 * buffers are copied, as by trb_wal_appendv). For a large payload the
 * caller holds until it is durable anyway (a batch's rows). The record's
 * bytes on disk and on replay are the same as trb_wal_appendv's.
 *
 * Params:  n_lent — 0..TRB_WAL_MAX_LENT, at most iovcnt; cb — required
 *          when n_lent > 0 (it tells when the buffers are free again).
 *          Other params as trb_wal_appendv.
 * Returns: as trb_wal_appendv; INVALID_ARGUMENT also for a bad n_lent or
 *          a missing cb. On error nothing is kept of `iov`.
 * Threading: thread-safe; never blocks on I/O.
 */
grpc_status_code trb_wal_appendv_lent(trb_wal_t *w, uint8_t type, const struct iovec *iov,
                                      int iovcnt, int n_lent, trb_wal_done_cb cb, void *user,
                                      trb_wal_lsn_t *lsn, trb_status_t *st);

/**
 * The caller no longer needs record `lsn` (e.g. its batch is written and its
 * messages acked). Segments are deleted oldest-first once every record in
 * them is released (prefix compaction; the current segment is never
 * deleted, except that a fully released current segment is rolled over when
 * it alone stands in the way of an append under max_bytes). Releasing an lsn
 * twice, an unknown lsn or one of an already deleted segment is ignored.
 * Records replayed at open must also be released by the caller when no
 * longer needed. A record may be released before it is durable.
 *
 * Threading: thread-safe; never blocks on I/O (files are deleted by the
 * writer thread).
 */
void trb_wal_release(trb_wal_t *w, trb_wal_lsn_t lsn);

/** Counters of a WAL (trb_wal_stats). */
typedef struct {
  uint64_t live_bytes;         /* framed bytes of live segments (queued + on disk) */
  uint64_t live_segments;      /* segments not yet compacted away */
  uint64_t records_appended;   /* appends accepted since open */
  uint64_t groups_committed;   /* group commits (writev + fdatasync rounds) since open */
  uint64_t bytes_written;      /* bytes written to segment files since open */
  uint64_t unreleased_records; /* live records (replayed or appended) not released */
  trb_wal_lsn_t oldest_unreleased; /* lowest unreleased lsn; 0 when none */
} trb_wal_stats_t;

/**
 * Read the counters.
 * Params:  out — filled.
 * Threading: thread-safe; O(live segments) plus a bitmap scan of the oldest
 *          segment with an unreleased record.
 */
void trb_wal_stats(trb_wal_t *w, trb_wal_stats_t *out);

/**
 * Whether the WAL still accepts appends (for a readiness probe: "WAL
 * writable").
 * Params:  st — may be NULL; set to the failure when not OK.
 * Returns: OK; the code of the write or fdatasync failure that broke the
 *          WAL (INTERNAL, RESOURCE_EXHAUSTED or DATA_LOSS, st naming the file
 *          and errno text) once broken; FAILED_PRECONDITION while closing.
 * Threading: thread-safe.
 */
grpc_status_code trb_wal_health(trb_wal_t *w, trb_status_t *st);

/**
 * Wait until everything appended has been committed (or failed), then stop
 * the writer thread, delete compacted segments, close files, release the
 * directory lock and free `w`. Done callbacks have all run when it returns.
 * NULL-safe. Appends made once close has begun (from done callbacks, or by
 * threads the owner stops before close returns) fail with
 * FAILED_PRECONDITION; no thread may touch `w` after close returns.
 * Threading: owner only; not from a done callback.
 */
void trb_wal_close(trb_wal_t *w);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_STREAMER_WAL_H */
