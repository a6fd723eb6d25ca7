/*
 * wal_internal.h — state shared by wal.c (appends, writer thread, release,
 * compaction) and wal_recover.c (directory lock, verification, torn-tail
 * truncation and replay at open). Not a public header: only the two files
 * of //src/streamer:wal include it.
 *
 * Threading: the fields of trb_wal_s marked "guarded by mu" are read and
 * written under `mu` once the writer thread runs; trb_wal_recover runs
 * before it starts, on the opening thread, without the lock.
 */
#ifndef TRB_SRC_STREAMER_WAL_INTERNAL_H
#define TRB_SRC_STREAMER_WAL_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "src/common/status.h"
#include "src/streamer/wal.h"

/* Segment file names: "wal-" + 20 digits + ".log". */
#define TRB_WAL_SEG_NAME_LEN 28

/* One queued record: the frame (header + payload) follows the struct. */
typedef struct trb_wal_rec_s {
  struct trb_wal_rec_s *next;
  trb_wal_lsn_t lsn;
  trb_wal_done_cb cb;
  void *user;
  size_t frame_bytes;  /* the whole record: header + payload */
  size_t own_bytes;    /* bytes of `frame`: header + copied payload */
  int n_lent;          /* payload buffers after `frame`, lent by the caller
                          (trb_wal_appendv_lent) until `cb` runs */
  struct iovec lent[TRB_WAL_MAX_LENT];
  bool starts_segment; /* first record of a new segment file */
  uint8_t frame[];
} trb_wal_rec_t;

/* One live segment: records [first_lsn, first_lsn + n_records). */
typedef struct trb_wal_seg_s {
  trb_wal_lsn_t first_lsn;
  uint64_t n_records;
  uint64_t n_released;
  uint64_t bytes;     /* framed bytes, queued or on disk */
  uint64_t *released; /* bitmap, one bit per record; `words` words */
  size_t words;
} trb_wal_seg_t;

struct trb_wal_s {
  char *dir;
  trb_wal_sync_t sync;
  uint64_t seg_bytes;
  uint64_t max_bytes;
  int64_t group_delay_ns;
  int dir_fd;
  int lock_fd;

  pthread_mutex_t mu;
  pthread_cond_t cv; /* the writer waits on it (CLOCK_MONOTONIC) */
  pthread_t writer;
  bool writer_started;

  /* Guarded by mu. */
  trb_wal_rec_t *qhead;
  trb_wal_rec_t **qtail;
  int64_t q_first_ns; /* when the oldest queued record was queued */
  trb_wal_lsn_t next_lsn;
  trb_wal_seg_t **segs; /* oldest first; segs[nsegs-1] is the current segment */
  size_t nsegs, segcap;
  trb_wal_lsn_t *dead; /* compacted segments whose files await deletion, ascending */
  size_t ndead, deadcap;
  uint64_t live_bytes, unreleased, records_appended, groups, bytes_written;
  bool closing, broken;
  bool delete_failed; /* an unlink failed: no more deletions until reopened */
  grpc_status_code broken_code;
  char broken_msg[TRB_STATUS_MSG_MAX];
  trb_wal_lsn_t cur_first; /* first lsn of the file the writer appends to */

  /* Writer thread only (and open/close). */
  int cur_fd;
};

/** Name of the segment file whose first lsn is `first` ("wal-%020llu.log"). */
void trb_wal_seg_name(trb_wal_lsn_t first, char *buf, size_t cap);

/** Path of the segment file whose first lsn is `first`, into buf (cap bytes). */
void trb_wal_seg_path(const trb_wal_t *w, trb_wal_lsn_t first, char *buf, size_t cap);

/**
 * Set `st` to the code of errno value `err` (INTERNAL when it maps to OK)
 * with "WAL <what> failed: <strerror>: <path>". Returns the code.
 */
grpc_status_code trb_wal_errno_status(trb_status_t *st, int err, const char *what,
                                      const char *path);

/** A segment of `n_records` records and `bytes` bytes, none released, or
 *  NULL when out of memory. Free with trb_wal_seg_free. */
trb_wal_seg_t *trb_wal_seg_new(trb_wal_lsn_t first, uint64_t n_records, uint64_t bytes);

/** Free a segment and its release bitmap; NULL-safe. */
void trb_wal_seg_free(trb_wal_seg_t *s);

/** Append `s` to w->segs (newest last); false when out of memory. */
bool trb_wal_segs_push(trb_wal_t *w, trb_wal_seg_t *s);

/** fsync(2) the directory in FSYNC mode; 0 or an errno value. */
int trb_wal_sync_dir(trb_wal_t *w);

/**
 * Open time, before the writer starts: create the directory, take the lock,
 * verify every segment (truncating a torn tail of the last one), fill
 * w->segs, live_bytes, unreleased, next_lsn, cur_fd and cur_first (creating
 * the first segment of an empty log), then replay (when `replay` is set).
 * Returns: as trb_wal_open.
 */
grpc_status_code trb_wal_recover(trb_wal_t *w, trb_wal_replay_cb replay, void *user,
                                 trb_status_t *st);

#endif /* TRB_SRC_STREAMER_WAL_INTERNAL_H */
