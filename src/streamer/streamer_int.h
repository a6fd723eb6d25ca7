/*
 * streamer_int.h — internal structures of the streamer, shared by
 * streamer.c (lifecycle, retention), worker.c (messages, batches, appends,
 * dead letters) and replay.c (WAL replay at start). Not a public header.
 */
#ifndef TRB_SRC_STREAMER_STREAMER_INT_H
#define TRB_SRC_STREAMER_STREAMER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "src/bigquery/schema.h"
#include "src/bigquery/transcode.h"
#include "src/bigquery/writer.h"
#include "src/common/arena.h"
#include "src/pubsub/publisher.h"
#include "src/pubsub/subscriber.h"
#include "src/streamer/idset.h"
#include "src/streamer/metrics.h"
#include "src/streamer/pool.h"
#include "src/streamer/shape.h"
#include "src/streamer/streamer.h"
#include "src/streamer/wal.h"

/* How long ids of settled-but-unconfirmed messages (a failed ack, WAL
 * replay) are remembered for de-duplication, in ms of "seconds" scaled by
 * ms_per_second/1000: 600 s, the longest ack deadline. */
#define TRB_STREAMER_RETENTION_S 600
/* How long ids of messages whose ack succeeded are still remembered (no WAL
 * record kept): Pub/Sub may deliver a message again after a successful ack
 * (a copy redelivered while the ack was in flight, e.g. an ack slower than
 * the ack deadline, or an ack id gone stale across a server restart);
 * forgetting at once would write that copy again. Real seconds (not
 * scaled by ms_per_second). Memory: ~100 bytes per message acked in this
 * window. */
#define TRB_STREAMER_ACKED_RETENTION_S 60

typedef struct worker_s worker_t;
typedef struct sink_s sink_t;

/* Bytes of a message id (with its NUL) a pooled msg_t holds inline, after
 * the struct; a longer id gets a msg_t allocated to its size. */
#define TRB_MSG_ID_INLINE 64

/* One message held in a batch (one object: struct + id; from the worker's
 * pool `msgs` when the id fits TRB_MSG_ID_INLINE). */
typedef struct msg_s {
  trb_ps_ack_handle_t *h;
  struct worker_s *w; /* the worker whose pool it returns to */
  bool pooled;
  trb_idset_ref_t idref; /* the claimed id's entry (exactly_once); NULL =
                            none, or no longer valid (mark by id) */
  char *id;             /* copied: needed after the handle is settled */
  size_t id_len;
  /* Data and attributes: the handle's (trb_ps_ack_handle_message), valid
   * until `h` is settled — the worker never reads them after. */
  const uint8_t *data;
  size_t len;
  const trb_ps_attr_t *attrs;
  size_t n_attrs;
  int32_t attempt;
  int64_t publish_time_s;
  int32_t publish_time_nanos;
} msg_t;

typedef struct batch_s {
  sink_t *sink;          /* not valid once the batch is settling */
  trb_streamer_t *s;
  trb_bq_writer_schema_t *schema; /* rows are encoded against it */
  trb_buf_t rows;
  size_t *row_len;
  msg_t **msgs;
  size_t n, cap;
  int64_t opened_ms;
  int64_t offset;        /* -1 on _default */
  trb_wal_lsn_t lsn;     /* BATCH record; 0 = none */
  trb_wal_lsn_t done_lsn;/* DONE record; 0 = none */
  int unsettled;         /* acks without a result yet */
  struct ackref_s *acks; /* one per message, for the ack results (n) */
  bool ack_failed;
  int64_t sent_us;       /* monotonic µs of the last send (append latency) */
  struct batch_s *next;
} batch_t;

struct sink_s {
  worker_t *w;
  size_t table;            /* index into the pipeline's tables */
  trb_bq_writer_t *writer;
  trb_bq_transcode_opts_t topts;
  char *stream;            /* write stream name */
  batch_t *open;           /* accumulating */
  batch_t *q_head, *q_tail;/* sealed, waiting for `busy` */
  batch_t *busy;           /* logging or appending (one at a time) */
  int64_t next_offset;
  size_t rows_hint;        /* rows bytes of the last sealed batch: the next
                              batch reserves that much (no regrowth) */
  int64_t retry_at_ms;     /* busy batch resent then; 0 = not waiting */
  int64_t backoff_ms;
  bool wal_wait;           /* busy batch waits for WAL space */
  bool writer_broken;      /* the writer gave up: reopen the stream */
  /* Counters of writers replaced by recreate_writer (for /metrics). */
  uint64_t retired_connections, retired_retries;
  /* Messages with fields the writer schema lacks, waiting for the ticker
   * to fetch the table schema again (at most once a second). */
  msg_t **parked;
  size_t n_parked, cap_parked;
  bool refresh_wanted;
  int64_t last_refresh_ms;
};

struct worker_s {
  trb_streamer_t *s;
  int idx;
  trb_rpc_loop_t *loop;
  trb_ps_subscriber_t *sub;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t ticker;
  bool ticker_started;
  bool ticker_stop;
  int64_t ticker_wake_ms; /* when the sleeping timer thread wakes (monotonic
                             ms); 0 while it runs. Under mu. */
  sink_t *sinks; /* one per table */
  trb_sm_hist_t append_lat; /* per AppendRows acknowledged (lock-free) */
  trb_sm_hist_t e2e_lat;    /* publish_time → written, per message */
  trb_buf_t shape;
  size_t subscription_len; /* strlen(p->subscription) */
  /* Free msg_t objects (sizeof(msg_t) + TRB_MSG_ID_INLINE bytes): taken on
   * the loop thread (on_message), given back from any thread. Keeps at
   * most max_outstanding_messages (flow control's bound on the messages a
   * worker holds: its peak working set) free ones. Freed by
   * trb_worker_free_pool, after the dead-letter publisher (whose callbacks
   * give messages back) is gone. */
  trb_pool_t msgs;
};

/* Ids (and WAL records) kept for de-duplication until `expire_ms`. */
typedef struct retain_s {
  trb_wal_lsn_t lsn[2];
  uint64_t tag;       /* idset tag the ids are forgotten with */
  int64_t expire_ms;
  size_t n_ids;
  char **ids;         /* inside the same allocation as the record */
  struct retain_s *next;
} retain_t;

struct trb_streamer_s {
  const trb_pipeline_t *p;
  trb_streamer_opts_t o;
  bool exactly_once;
  int ms_per_second;
  trb_rpc_loop_t *ctl_loop; /* dead-letter publisher, replay writers */
  trb_ps_publisher_t *dlq;
  trb_wal_t *wal;
  trb_idset_t *ids;
  worker_t *workers;
  int n_workers;
  const char **table_names; /* p->tables[i].name, for /metrics labels */

  pthread_mutex_t mu; /* retention list, stop state */
  retain_t *retain_head, *retain_tail;
  retain_t *acked_head, *acked_tail; /* TRB_STREAMER_ACKED_RETENTION_S */
  atomic_bool closing;   /* no new sends, retries or WAL records */
  atomic_int wal_pending;/* WAL appends whose done callback has not run */
  bool stopped;

  struct {
    atomic_uint_fast64_t received, duplicates, rows_written, batches_written,
        dead_letters, acks_ok, acks_failed, append_retries, replayed_batches,
        replayed_rows, in_flight, wal_full;
    atomic_uint_fast64_t dead_by_stage[4];
    atomic_uint_fast64_t table_rows[64];
    /* per trb_dl_stage_t and table; column 64 = no table */
    atomic_uint_fast64_t dead_by_table[4][65];
  } c;
};

/* streamer.c */
int64_t trb_streamer_now_ms(void);
/* Monotonic clock in microseconds (latencies). */
int64_t trb_streamer_now_us(void);
/* Metrics: the end-to-end latency of `b`'s messages (publish_time → now,
 * wall clock), recorded when AppendRows acknowledged it. Lock-free. */
void trb_streamer_observe_written(worker_t *w, const batch_t *b);
/* Metrics: one dead letter at `stage` for `table` (a pipeline table's name,
 * or NULL). Lock-free. */
void trb_streamer_count_dead(trb_streamer_t *s, trb_dl_stage_t stage,
                             const char *table);
/* Metrics: `old`, about to be replaced as `k`'s writer, keeps counting in
 * /metrics (its connections and retries are added to k's retired ones).
 * Worker lock held. */
void trb_streamer_retire_writer(sink_t *k, trb_bq_writer_t *old);
/* Remember ids under WAL records `lsn0`/`lsn1` (0 = none) for the
 * retention period; then the ids are forgotten and the records released.
 * `ids` are copied. */
void trb_streamer_retain(trb_streamer_t *s, trb_wal_lsn_t lsn0,
                         trb_wal_lsn_t lsn1, const char *const *ids,
                         const size_t *id_lens, size_t n);
/* Remember ids (idset tag `tag`) of messages whose ack succeeded for
 * TRB_STREAMER_ACKED_RETENTION_S; no WAL record is kept. `ids` copied. */
void trb_streamer_retain_acked(trb_streamer_t *s, uint64_t tag,
                               const char *const *ids, const size_t *id_lens,
                               size_t n);
void trb_streamer_expire(trb_streamer_t *s, bool all);

/* worker.c */
grpc_status_code trb_worker_init(trb_streamer_t *s, worker_t *w, int idx,
                                 trb_status_t *st);
grpc_status_code trb_worker_start(worker_t *w, trb_status_t *st);
void trb_worker_seal_all(worker_t *w);
void trb_worker_stop_ticker(worker_t *w);
void trb_worker_destroy_writers(worker_t *w);
/* Nack everything `w` holds; call for every worker before any deinit. */
void trb_worker_hand_back(worker_t *w);
void trb_worker_deinit(worker_t *w);
/* Free `w`'s message pool: after every worker's deinit and the dead-letter
 * publisher's destroy (nothing gives a message back any more). */
void trb_worker_free_pool(worker_t *w);

/* replay.c: replay the WAL in `s->p->wal_dir` (opens s->wal). */
grpc_status_code trb_streamer_replay(trb_streamer_t *s, trb_status_t *st);

#endif /* TRB_SRC_STREAMER_STREAMER_INT_H */
