/*
 * worker.c — one streamer worker: its subscriber's messages through
 * de-duplication, parse, route, shape and transcode into per-table
 * batches; batches through the WAL and AppendRows; acks; dead letters.
 * See streamer.h for the pipeline and streamer_int.h for the structures.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <time.h>

#include "src/common/alloc.h"
#include "src/common/log.h"
#include "src/streamer/streamer_int.h"
#include "src/streamer/jsonfield.h"
#include "src/streamer/walrec.h"

/* ------------------------------------------------------------------------ */
/* Messages                                                                  */
/* ------------------------------------------------------------------------ */

/* The worker's record of a message: its id is copied (it outlives the
 * handle: settlement and retention); data and attributes are read in place
 * from the handle, which holds them until it is settled. From the worker's
 * pool when the id fits inline (every Pub/Sub id does), else allocated.
 * On the worker's loop thread (the pool's owner). */
static msg_t *msg_new(worker_t *w, const trb_ps_received_t *r, size_t idl,
                      trb_ps_ack_handle_t *h) {
  bool pooled = idl < TRB_MSG_ID_INLINE;
  msg_t *m = pooled ? trb_pool_take(&w->msgs)
                    : trb_malloc(sizeof(msg_t) + idl + 1);
  if (!m) return NULL;
  const trb_ps_received_t *hm = trb_ps_ack_handle_message(h);
  m->w = w;
  m->pooled = pooled;
  m->h = h;
  m->idref = NULL;
  m->id = (char *)(m + 1);
  memcpy(m->id, r->message_id, idl + 1);
  m->id_len = idl;
  m->data = hm->data;
  m->len = hm->data_len;
  m->attrs = hm->attrs;
  m->n_attrs = hm->n_attrs;
  m->attempt = r->delivery_attempt;
  m->publish_time_s = r->publish_time_s;
  m->publish_time_nanos = r->publish_time_nanos;
  return m;
}

/* Give back `m` (NULL-safe). Any thread. */
static void msg_free(msg_t *m) {
  if (!m) return;
  if (m->pooled)
    trb_pool_give(&m->w->msgs, m);
  else
    trb_free(m);
}

/* ------------------------------------------------------------------------ */
/* Acks                                                                      */
/* ------------------------------------------------------------------------ */

typedef struct idref_s {
  trb_streamer_t *s;
  uint64_t tag;
  trb_wal_lsn_t release; /* WAL record to release on success; 0 = none */
  bool settles;          /* this ack settles the id (a dead letter), not a
                            redelivered copy of a settled one */
  size_t len;
  char id[];
} idref_t;

static idref_t *idref_new(trb_streamer_t *s, const char *id, uint64_t tag,
                          trb_wal_lsn_t release, bool settles) {
  size_t n = strlen(id);
  idref_t *r = trb_malloc(sizeof *r + n + 1);
  if (!r) return NULL;
  r->s = s;
  r->tag = tag;
  r->release = release;
  r->settles = settles;
  r->len = n;
  memcpy(r->id, id, n + 1);
  return r;
}

/* Ack result of a message settled through its id alone (a redelivered
 * copy, or a dead letter). A dead letter's id is remembered a while longer
 * once its ack is confirmed (a copy redelivered meanwhile must not be
 * dead-lettered again); a copy's ack changes nothing: the id's first
 * settlement keeps it. */
static void on_id_acked(void *user, trb_ps_ack_status_t res,
                        const trb_status_t *st) {
  idref_t *r = user;
  trb_streamer_t *s = r->s;
  if (res == TRB_PS_ACK_SUCCESS) {
    atomic_fetch_add(&s->c.acks_ok, 1);
    if (s->exactly_once && r->settles) {
      const char *ids[1] = {r->id};
      size_t lens[1] = {r->len};
      trb_streamer_retain_acked(s, r->tag, ids, lens, 1);
      if (r->release) trb_wal_release(s->wal, r->release);
    }
  } else {
    atomic_fetch_add(&s->c.acks_failed, 1);
    if (res != TRB_PS_ACK_STOPPED)
      TRB_LOG(TRB_LOG_WARNING, "streamer", "ack of message %s failed: %s", r->id,
                   st ? st->msg : "");
    if (s->exactly_once && r->settles) {
      const char *ids[1] = {r->id};
      size_t lens[1] = {r->len};
      trb_streamer_retain(s, r->release, 0, ids, lens, 1);
    }
  }
  atomic_fetch_sub(&s->c.in_flight, 1);
  trb_free(r);
}

static void ack_id(trb_streamer_t *s, trb_ps_ack_handle_t *h, const char *id,
                   uint64_t tag, trb_wal_lsn_t release, bool settles) {
  idref_t *r = idref_new(s, id, tag, release, settles);
  if (!r) {
    trb_ps_ack(h);
    atomic_fetch_sub(&s->c.in_flight, 1);
    return;
  }
  trb_ps_ack_with_result(h, on_id_acked, r);
}

/* A parked redelivery whose first copy has settled. */
static void on_waiter(void *ctx, void *waiter, trb_id_state_t state) {
  trb_streamer_t *s = ctx;
  trb_ps_ack_handle_t *h = waiter;
  if (state == TRB_ID_WRITTEN || state == TRB_ID_DEAD) {
    atomic_fetch_add(&s->c.duplicates, 1);
    trb_ps_ack(h);
  } else {
    trb_ps_nack(h);
  }
  atomic_fetch_sub(&s->c.in_flight, 1);
}

/* ------------------------------------------------------------------------ */
/* Dead letters                                                              */
/* ------------------------------------------------------------------------ */

typedef struct dl_s {
  trb_streamer_t *s;
  msg_t *m;
} dl_t;

static void on_dead_published(void *user, grpc_status_code code,
                              const char *message, const char *message_id) {
  (void)message_id;
  dl_t *d = user;
  trb_streamer_t *s = d->s;
  msg_t *m = d->m;
  size_t idl = m->id_len;
  if (code != GRPC_STATUS_OK) {
    TRB_LOG(TRB_LOG_ERROR, "streamer", "dead-letter publish of message %s failed (%s); "
                  "nacked, it will be redelivered",
                  m->id, message);
    if (s->exactly_once) trb_idset_forget(s->ids, m->id, idl, on_waiter, s);
    trb_ps_nack(m->h);
    atomic_fetch_sub(&s->c.in_flight, 1);
  } else {
    atomic_fetch_add(&s->c.dead_letters, 1);
    trb_wal_lsn_t lsn = 0;
    if (s->exactly_once && !atomic_load(&s->closing)) {
      trb_buf_t b = TRB_BUF_INIT;
      trb_status_t st;
      if (trb_walrec_dead(m->id, &b, &st) == GRPC_STATUS_OK &&
          trb_wal_append(s->wal, TRB_WALREC_DEAD, b.data, b.len, NULL, NULL,
                         &lsn, &st) != GRPC_STATUS_OK) {
        TRB_LOG(TRB_LOG_WARNING, "streamer", "WAL dead-letter record for %s: %s", m->id,
                     st.msg);
        lsn = 0;
      }
      trb_buf_deinit(&b);
    }
    if (s->exactly_once)
      trb_idset_mark(s->ids, m->id, idl, TRB_ID_DEAD, lsn, on_waiter, s);
    ack_id(s, m->h, m->id, lsn, lsn, true);
  }
  msg_free(m);
  trb_free(d);
}

/* Publish `m` (owned) to the dead-letter topic with why; ack after the
 * publish is confirmed. Any thread, no worker lock needed. */
static void dead_letter(trb_streamer_t *s, msg_t *m, trb_dl_stage_t stage,
                        const char *reason_msg, const char *table) {
  char path[256];
  const char *reason = trb_dl_split_path(reason_msg, path, sizeof path);
  char attempt[16], ptime[32];
  snprintf(attempt, sizeof attempt, "%d", (int)m->attempt);
  snprintf(ptime, sizeof ptime, "%" PRId64 ".%09d", m->publish_time_s,
           (int)m->publish_time_nanos);
  size_t n = m->n_attrs;
  trb_ps_attr_t *a = trb_calloc(n + TRB_DL_MAX_EXTRA, sizeof *a);
  dl_t *d = trb_malloc(sizeof *d);
  if (!a || !d) {
    trb_free(a);
    trb_free(d);
    trb_ps_nack(m->h);
    atomic_fetch_sub(&s->c.in_flight, 1);
    msg_free(m);
    return;
  }
  size_t k = 0;
  /* Original attributes, except ours from an earlier dead-lettering. */
  for (size_t i = 0; i < n; i++)
    if (strncmp(m->attrs[i].key, "tributary_", 10) != 0) a[k++] = m->attrs[i];
  a[k++] = (trb_ps_attr_t){TRB_DL_ATTR_STAGE, trb_dl_stage_name(stage)};
  a[k++] = (trb_ps_attr_t){TRB_DL_ATTR_REASON, reason};
  if (table) a[k++] = (trb_ps_attr_t){TRB_DL_ATTR_TABLE, table};
  if (path[0]) a[k++] = (trb_ps_attr_t){TRB_DL_ATTR_PATH, path};
  a[k++] = (trb_ps_attr_t){TRB_DL_ATTR_SUBSCRIPTION, s->p->subscription};
  a[k++] = (trb_ps_attr_t){TRB_DL_ATTR_MESSAGE_ID, m->id};
  a[k++] = (trb_ps_attr_t){TRB_DL_ATTR_ATTEMPT, attempt};
  a[k++] = (trb_ps_attr_t){TRB_DL_ATTR_PUBLISH_TIME, ptime};
  atomic_fetch_add(&s->c.dead_by_stage[stage], 1);
  trb_streamer_count_dead(s, stage, table);
  TRB_LOG(TRB_LOG_INFO, "streamer", "dead letter: message %s stage %s table %s: %s",
               m->id, trb_dl_stage_name(stage), table ? table : "-",
               reason_msg);
  d->s = s;
  d->m = m;
  trb_ps_message_t pm = {m->data, m->len, a, k, NULL};
  trb_status_t st;
  grpc_status_code code = trb_ps_publish(s->dlq, &pm, on_dead_published, d, &st);
  trb_free(a);
  if (code != GRPC_STATUS_OK) {
    TRB_LOG(TRB_LOG_ERROR, "streamer", "dead-letter publish of message %s refused (%s); "
                  "nacked",
                  m->id, st.msg);
    if (s->exactly_once)
      trb_idset_forget(s->ids, m->id, m->id_len, on_waiter, s);
    trb_ps_nack(m->h);
    atomic_fetch_sub(&s->c.in_flight, 1);
    msg_free(m);
    trb_free(d);
  }
}

/* ------------------------------------------------------------------------ */
/* Batches                                                                   */
/* ------------------------------------------------------------------------ */

static void batch_free(batch_t *b) {
  if (!b) return;
  for (size_t i = 0; i < b->n; i++) msg_free(b->msgs[i]);
  trb_free(b->msgs);
  trb_free(b->row_len);
  trb_free(b->acks);
  trb_buf_deinit(&b->rows);
  trb_bq_writer_schema_release(NULL, b->schema);
  trb_free(b);
}

static batch_t *batch_new(sink_t *k, size_t cap) {
  batch_t *b = trb_calloc(1, sizeof *b);
  if (!b) return NULL;
  b->sink = k;
  b->s = k->w->s;
  b->cap = cap;
  b->offset = -1;
  /* Only [0, n) of msgs and row_len is ever read: not zeroed. */
  if (cap <= SIZE_MAX / sizeof(size_t)) {
    b->msgs = trb_malloc(cap * sizeof *b->msgs);
    b->row_len = trb_malloc(cap * sizeof *b->row_len);
  }
  trb_buf_init(&b->rows);
  if (!b->msgs || !b->row_len) {
    batch_free(b);
    return NULL;
  }
  /* Room for as many bytes as the last batch had (plus an eighth), so the
   * rows are not copied by regrowth as the batch fills; at most
   * batch_max_bytes. A failure only means growing as rows come. */
  size_t hint = k->rows_hint + k->rows_hint / 8;
  size_t max_bytes = (size_t)k->w->s->p->batch_max_bytes;
  if (hint > max_bytes) hint = max_bytes;
  if (hint) (void)trb_buf_reserve(&b->rows, hint);
  b->schema = trb_bq_writer_schema(k->writer);
  b->opened_ms = trb_streamer_now_ms();
  /* Lock held: wake the timer thread if it sleeps past this deadline. */
  worker_t *w = k->w;
  if (w->ticker_wake_ms &&
      w->ticker_wake_ms > b->opened_ms + b->s->p->batch_max_latency_ms)
    pthread_cond_broadcast(&w->cv);
  return b;
}

static void kick(sink_t *k);

/* Seal the open batch. Lock held. */
static void seal(sink_t *k) {
  batch_t *b = k->open;
  if (!b) return;
  k->open = NULL;
  if (b->n == 0) {
    /* Opened for a message that was then parked or dead-lettered: an empty
     * append would be refused (and retried) forever, blocking the sink. */
    batch_free(b);
    return;
  }
  k->rows_hint = b->rows.len;
  if (k->q_tail) k->q_tail->next = b; else k->q_head = b;
  k->q_tail = b;
  kick(k);
}

static void on_append(void *user, const trb_bq_append_result_t *r);

static int64_t next_backoff(sink_t *k) {
  k->backoff_ms = k->backoff_ms ? k->backoff_ms * 2 : 100;
  if (k->backoff_ms > 5000) k->backoff_ms = 5000;
  return k->backoff_ms;
}

/* Send the busy batch. Lock held. */
static void send_busy(sink_t *k) {
  batch_t *b = k->busy;
  trb_status_t st;
  k->retry_at_ms = 0;
  b->sent_us = trb_streamer_now_us();
  grpc_status_code code = trb_bq_writer_append_encoded(
      k->writer, b->schema, b->offset, (const uint8_t *)b->rows.data,
      b->row_len, b->n,
      on_append, b, &st);
  if (code != GRPC_STATUS_OK) {
    TRB_LOG(TRB_LOG_WARNING, "streamer", "append to %s refused (%s); retrying",
                 k->stream, st.msg);
    if (code == GRPC_STATUS_FAILED_PRECONDITION) k->writer_broken = true;
    k->retry_at_ms = trb_streamer_now_ms() + next_backoff(k);
  }
}

static void on_batch_logged(void *user, trb_wal_lsn_t lsn,
                            grpc_status_code code, const char *message) {
  batch_t *b = user;
  sink_t *k = b->sink;
  worker_t *w = k->w;
  trb_streamer_t *s = w->s;
  (void)lsn;
  pthread_mutex_lock(&w->mu);
  if (code != GRPC_STATUS_OK) {
    TRB_LOG(TRB_LOG_ERROR, "streamer", "WAL write failed (%s): pulling stops, nothing "
                  "unwritten is acked",
                  message);
    /* The batch stays busy; its messages are held and will be redelivered
     * after the process stops. */
  } else if (!atomic_load(&s->closing)) {
    send_busy(k);
  }
  pthread_mutex_unlock(&w->mu);
  atomic_fetch_sub(&s->wal_pending, 1);
}

/* Log the busy batch (exactly_once). Lock held. */
static void log_busy(sink_t *k) {
  batch_t *b = k->busy;
  trb_streamer_t *s = k->w->s;
  trb_buf_t hdr = TRB_BUF_INIT;
  size_t n1 = b->n ? b->n : 1;
  const char **ids = trb_malloc(n1 * (sizeof *ids + sizeof(size_t)));
  trb_status_t st;
  grpc_status_code code = GRPC_STATUS_RESOURCE_EXHAUSTED;
  if (ids) {
    size_t *lens = (size_t *)(ids + n1);
    for (size_t i = 0; i < b->n; i++) {
      ids[i] = b->msgs[i]->id;
      lens[i] = b->msgs[i]->id_len;
    }
    code = trb_walrec_batch_header_n(s->p->tables[k->table].path, k->stream,
                                     b->offset, (uint32_t)b->n, ids, lens,
                                     b->row_len, &hdr, &st);
  }
  trb_free(ids);
  if (code == GRPC_STATUS_OK) {
    struct iovec iov[2] = {{hdr.data, hdr.len}, {b->rows.data, b->rows.len}};
    trb_wal_lsn_t lsn = 0;
    atomic_fetch_add(&s->wal_pending, 1);
    /* The rows are lent, not copied: the busy batch keeps them unchanged
     * until on_batch_logged (nothing sends, drops rows or frees the batch
     * before: sends start there, teardown waits for wal_pending). */
    code = trb_wal_appendv_lent(s->wal, TRB_WALREC_BATCH, iov, 2,
                                b->rows.len ? 1 : 0, on_batch_logged, b, &lsn,
                                &st);
    if (code == GRPC_STATUS_OK) {
      b->lsn = lsn;
      k->wal_wait = false;
      k->retry_at_ms = 0;
    } else {
      atomic_fetch_sub(&s->wal_pending, 1);
    }
  }
  trb_buf_deinit(&hdr);
  if (code != GRPC_STATUS_OK) {
    if (!k->wal_wait) {
      TRB_LOG(TRB_LOG_WARNING, "streamer", "cannot log a batch for %s (%s); waiting",
                   s->p->tables[k->table].name, st.msg);
      atomic_fetch_add(&s->c.wal_full, 1);
    }
    k->wal_wait = true;
    k->retry_at_ms = trb_streamer_now_ms() + next_backoff(k);
  }
}

/* Start the next sealed batch when none is busy. Lock held. */
static void kick(sink_t *k) {
  trb_streamer_t *s = k->w->s;
  if (k->busy || !k->q_head || atomic_load(&s->closing)) return;
  batch_t *b = k->q_head;
  k->q_head = b->next;
  if (!k->q_head) k->q_tail = NULL;
  b->next = NULL;
  k->busy = b;
  if (s->exactly_once) {
    b->offset = k->next_offset;
    k->next_offset += (int64_t)b->n;
    log_busy(k);
  } else {
    send_busy(k);
  }
}

typedef struct ackref_s {
  batch_t *b;
  size_t i;
} ackref_t;

static void batch_settled(batch_t *b) {
  trb_streamer_t *s = b->s;
  if (s->exactly_once) {
    if (b->ack_failed) {
      const char **ids = trb_malloc(b->n * sizeof *ids);
      size_t *lens = trb_malloc(b->n * sizeof *lens);
      if (ids && lens) {
        for (size_t i = 0; i < b->n; i++) {
          ids[i] = b->msgs[i]->id;
          lens[i] = b->msgs[i]->id_len;
        }
        trb_streamer_retain(s, b->lsn, b->done_lsn, ids, lens, b->n);
      }
      trb_free(ids);
      trb_free(lens);
    } else {
      /* Every ack succeeded: the WAL records go, the ids stay a while (a
       * copy redelivered while an ack was in flight is acked, not written
       * again). */
      const char **ids = trb_malloc(b->n * sizeof *ids);
      size_t *lens = trb_malloc(b->n * sizeof *lens);
      if (ids && lens) {
        for (size_t i = 0; i < b->n; i++) {
          ids[i] = b->msgs[i]->id;
          lens[i] = b->msgs[i]->id_len;
        }
        trb_streamer_retain_acked(s, b->lsn, ids, lens, b->n);
      } else {
        for (size_t i = 0; i < b->n; i++)
          trb_idset_forget_tagged(s->ids, b->msgs[i]->id,
                                  b->msgs[i]->id_len, b->lsn);
      }
      trb_free(ids);
      trb_free(lens);
      trb_wal_release(s->wal, b->lsn);
      if (b->done_lsn) trb_wal_release(s->wal, b->done_lsn);
    }
  }
  batch_free(b);
}

static void on_row_acked(void *user, trb_ps_ack_status_t res,
                         const trb_status_t *st) {
  ackref_t *r = user;
  batch_t *b = r->b;
  trb_streamer_t *s = b->s;
  msg_t *m = b->msgs[r->i];
  if (res == TRB_PS_ACK_SUCCESS) {
    atomic_fetch_add(&s->c.acks_ok, 1); /* the id is kept: batch_settled */
  } else {
    atomic_fetch_add(&s->c.acks_failed, 1);
    if (res != TRB_PS_ACK_STOPPED)
      TRB_LOG(TRB_LOG_WARNING, "streamer", "ack of message %s failed: %s", m->id,
                   st ? st->msg : "");
    b->ack_failed = true; /* before the decrement below (seq_cst) */
  }
  atomic_fetch_sub(&s->c.in_flight, 1);
  /* `r` is b->acks[i]: freed with the batch. */
  if (__atomic_sub_fetch(&b->unsettled, 1, __ATOMIC_SEQ_CST) == 0)
    batch_settled(b);
}

/* The busy batch is written: ack its messages. Lock held. */
static void batch_written(sink_t *k, batch_t *b) {
  trb_streamer_t *s = k->w->s;
  atomic_fetch_add(&s->c.rows_written, b->n);
  atomic_fetch_add(&s->c.batches_written, 1);
  if (k->table < 64) atomic_fetch_add(&s->c.table_rows[k->table], b->n);
  trb_streamer_observe_written(k->w, b);
  k->busy = NULL;
  k->backoff_ms = 0;
  if (s->exactly_once && !atomic_load(&s->closing)) {
    uint8_t rec[9];
    trb_walrec_done(b->lsn, rec);
    trb_status_t st;
    if (trb_wal_append(s->wal, TRB_WALREC_DONE, rec, sizeof rec, NULL, NULL,
                       &b->done_lsn, &st) != GRPC_STATUS_OK)
      b->done_lsn = 0;
  }
  b->unsettled = (int)b->n;
  size_t n = b->n;
  /* One ack reference per message, in one allocation per batch. */
  trb_free(b->acks);
  b->acks = trb_malloc((n ? n : 1) * sizeof *b->acks);
  for (size_t i = 0; i < n; i++) {
    msg_t *m = b->msgs[i];
    if (s->exactly_once) {
      if (m->idref)
        trb_idset_mark_ref(s->ids, m->idref, TRB_ID_WRITTEN, b->lsn,
                           on_waiter, s);
      else
        trb_idset_mark(s->ids, m->id, m->id_len, TRB_ID_WRITTEN, b->lsn,
                       on_waiter, s);
      m->idref = NULL;
    }
    ackref_t *r = b->acks ? &b->acks[i] : NULL;
    if (r) {
      r->b = b;
      r->i = i;
      trb_ps_ack_with_result(m->h, on_row_acked, r);
    } else {
      trb_ps_ack(m->h);
      b->ack_failed = true;
      atomic_fetch_sub(&s->c.in_flight, 1);
      if (__atomic_sub_fetch(&b->unsettled, 1, __ATOMIC_SEQ_CST) == 0)
        batch_settled(b);
    }
  }
  /* `b` may be freed now. */
  kick(k);
}

/* Remove the rows the server rejected; dead-letter their messages. Lock
 * held. Returns false when out of memory. */
static bool drop_rejected(sink_t *k, batch_t *b,
                          const trb_bq_append_result_t *r) {
  trb_streamer_t *s = k->w->s;
  bool *bad = trb_calloc(b->n ? b->n : 1, sizeof *bad);
  if (!bad) return false;
  for (size_t e = 0; e < r->n_row_errors; e++) {
    size_t i = r->row_errors[e].index;
    if (i >= b->n || bad[i]) continue;
    bad[i] = true;
    dead_letter(s, b->msgs[i], TRB_DL_APPEND, r->row_errors[e].message,
                s->p->tables[k->table].name);
    b->msgs[i] = NULL;
  }
  size_t j = 0, off = 0, woff = 0;
  for (size_t i = 0; i < b->n; i++) {
    size_t len = b->row_len[i];
    if (!bad[i]) {
      memmove(b->rows.data + woff, b->rows.data + off, len);
      b->row_len[j] = len;
      b->msgs[j] = b->msgs[i];
      j++;
      woff += len;
    }
    off += len;
  }
  b->n = j;
  b->rows.len = woff;
  trb_free(bad);
  return true;
}

static void on_append(void *user, const trb_bq_append_result_t *r) {
  batch_t *b = user;
  sink_t *k = b->sink;
  worker_t *w = k->w;
  trb_streamer_t *s = w->s;
  pthread_mutex_lock(&w->mu);
  if (r->code == GRPC_STATUS_OK && r->n_row_errors == 0) {
    trb_sm_hist_observe(&w->append_lat, trb_streamer_now_us() - b->sent_us);
    batch_written(k, b);
  } else if (atomic_load(&s->closing)) {
    /* Written or not, the WAL knows the batch: it is replayed at the next
     * start. Its messages are handed back (nacked) by the teardown. */
  } else if (r->n_row_errors > 0 && r->rows_written == 0) {
    TRB_LOG(TRB_LOG_WARNING, "streamer", "%s rejected %zu row(s) at offset %" PRId64
                 "; dead-lettering them and resending the rest",
                 s->p->tables[k->table].name, r->n_row_errors, b->offset);
    trb_wal_lsn_t old = b->lsn;
    if (!drop_rejected(k, b, r)) {
      k->retry_at_ms = trb_streamer_now_ms() + next_backoff(k);
    } else if (b->n == 0) {
      k->busy = NULL;
      if (s->exactly_once) {
        /* Nothing was written: the offset is free again and the record
         * goes. No DONE record: replayed after a crash it would make the
         * ids "written", and a message whose dead letter had failed would
         * come back, be acked and be lost. */
        k->next_offset = b->offset;
        trb_wal_release(s->wal, old);
      }
      batch_free(b);
      kick(k);
    } else if (s->exactly_once) {
      /* Log the rest again at the same offset (supersedes the old record),
       * then send it. */
      k->next_offset = b->offset + (int64_t)b->n;
      /* No row of the request was written (row errors fail it whole), so
       * the old record can go now — kept while the rest waits for WAL
       * space, it pinned the oldest segment and the WAL never drained. */
      trb_wal_release(s->wal, old);
      b->lsn = 0;
      log_busy(k);
    } else {
      send_busy(k);
    }
  } else {
    atomic_fetch_add(&s->c.append_retries, 1);
    TRB_LOG(TRB_LOG_WARNING, "streamer", "append of %zu rows to %s at offset %" PRId64
                 " failed (%s: %s); resending the same rows at the same "
                 "offset",
                 b->n, k->stream, b->offset, trb_status_code_name(r->code),
                 r->message);
    k->retry_at_ms = trb_streamer_now_ms() + next_backoff(k);
  }
  pthread_mutex_unlock(&w->mu);
}

/* ------------------------------------------------------------------------ */
/* Receiving                                                                 */
/* ------------------------------------------------------------------------ */

/* The transcoder's message for a key that names no column. */
#define TRB_UNKNOWN_FIELD_MSG "no such field in the table schema"
/* Most messages parked per table while its schema is fetched again. */
#define MAX_PARKED 10000

/* Park `m` until the ticker has refreshed the table schema. Lock held.
 * Returns false when the message cannot be parked (then it is handled as
 * the row error it is). */
static bool park(sink_t *k, msg_t *m) {
  if (k->n_parked >= MAX_PARKED) return false;
  if (k->n_parked == k->cap_parked) {
    size_t cap = k->cap_parked ? k->cap_parked * 2 : 16;
    msg_t **n = trb_realloc(k->parked, cap * sizeof *n);
    if (!n) return false;
    k->parked = n;
    k->cap_parked = cap;
  }
  k->parked[k->n_parked++] = m;
  k->refresh_wanted = true;
  pthread_cond_broadcast(&k->w->cv);
  return true;
}

/* Whether the message data is not well-formed JSON. */
static bool is_malformed(const msg_t *m) {
  trb_status_t st;
  return trb_bq_json_check((const char *)m->data, m->len, &st) !=
         GRPC_STATUS_OK;
}

/* Dead-letter `m` (owned) with stage "parse" when its data is not
 * well-formed JSON; returns whether it did. */
static bool parse_failed(trb_streamer_t *s, msg_t *m) {
  trb_status_t st;
  if (trb_bq_json_check((const char *)m->data, m->len, &st) == GRPC_STATUS_OK)
    return false;
  dead_letter(s, m, TRB_DL_PARSE, st.msg, NULL);
  return true;
}

/* Append message `x`'s row to batch `b` of sink `k`. */
static grpc_status_code encode_row(batch_t *b, sink_t *k,
                                   const trb_shape_extras_t *x,
                                   trb_bq_watch_t *watch, trb_status_t *st) {
  trb_bq_transcode_opts_t o = k->topts;
  o.watch = watch;
  return trb_bq_transcode_row_extra(trb_bq_writer_schema_table(b->schema),
                                    x->row, x->row_len, x->f, x->n, &o,
                                    &b->rows, st);
}

/* Route, shape, transcode and batch one message (owned). `shape` is a
 * scratch buffer of the calling thread. `allow_refresh`: a row with a field
 * the writer schema lacks may be parked for a schema refresh (once). */
static void route_and_batch_as(worker_t *w, msg_t *m, trb_buf_t *shape,
                               bool allow_refresh, bool fast);

static void route_and_batch(worker_t *w, msg_t *m, trb_buf_t *shape,
                            bool allow_refresh) {
  route_and_batch_as(w, m, shape, allow_refresh, true);
}

/* As route_and_batch. `fast`: route on the first occurrence of a top-level
 * route field (trb_pipeline_route_first) and have the transcoder watch the
 * key's later occurrences; when the last one's raw value differs, or when
 * anything fails on the way, the row is dropped from the batch and the
 * message goes through again with the full-scan route (fast = false, the
 * last occurrence wins) — the same table and dead-letter stage/reason as
 * the full scan alone. */
static void route_and_batch_as(worker_t *w, msg_t *m, trb_buf_t *shape,
                               bool allow_refresh, bool fast) {
  trb_streamer_t *s = w->s;
  const trb_pipeline_t *p = s->p;
  trb_status_t st;
  /* The message is not checked up front: transcoding reads (and checks)
   * the whole document. Whenever routing, shaping or transcoding fails —
   * and for envelope tables, whose transcode does not read the data as
   * JSON — parse_failed() tells malformed JSON (stage "parse", with the
   * checker's byte offset) from the other failures. */
  int64_t t = TRB_PIPELINE_ROUTE_FULL;
  const char *wkey = NULL, *fraw = NULL;
  size_t fraw_len = 0;
  if (fast)
    t = trb_pipeline_route_first(p, (const char *)m->data, m->len, &wkey,
                                 &fraw, &fraw_len);
  if (t >= 0 && p->tables[t].envelope) t = TRB_PIPELINE_ROUTE_FULL;
  bool watching = t >= 0;
  size_t wkey_len = 0;
  if (wkey)
    wkey_len = p->first_ready && wkey == p->first_key ? p->first_key_len
                                                      : strlen(wkey);
  trb_bq_watch_t watch = {wkey, wkey_len, 0, NULL, 0};
  trb_bq_watch_t *wp = watching ? &watch : NULL;
  if (!watching) {
    const char *keys[64], *vals[64];
    size_t na = m->n_attrs < 64 ? m->n_attrs : 64;
    for (size_t i = 0; i < na; i++) {
      keys[i] = m->attrs[i].key;
      vals[i] = m->attrs[i].value;
    }
    t = trb_pipeline_route(p, (const char *)m->data, m->len, keys, vals, na);
  }
  if (t < 0) {
    if (parse_failed(s, m)) return;
    char why[256];
    const char *v;
    size_t vl;
    trb_json_kind_t kd = trb_json_field((const char *)m->data, m->len,
                                        p->route_field, &v, &vl);
    if (kd == TRB_JSON_MISSING)
      snprintf(why, sizeof why, "no route: the message has no field \"%s\"",
               p->route_field);
    else
      snprintf(why, sizeof why, "no route matches $.%s = %s%.*s%s",
               p->route_field, kd == TRB_JSON_STRING ? "\"" : "",
               (int)(vl > 100 ? 100 : vl), v,
               kd == TRB_JSON_STRING ? "\"" : "");
    dead_letter(s, m, TRB_DL_ROUTE, why, NULL);
    return;
  }
  const trb_table_opts_t *to = &p->tables[t];
  sink_t *k = &w->sinks[t];
  trb_ps_ack_handle_t *h = m->h;
  trb_shape_meta_t meta = {p->subscription,        m->id,
                           m->publish_time_s,       m->publish_time_nanos,
                           m->attrs,                m->n_attrs,
                           w->subscription_len,     m->id_len};
  /* Metadata columns and the envelope payload are given to the
   * transcoder as top-level members after the row's own (the same bytes
   * as transcoding the rewritten row text, without writing it). */
  trb_shape_extras_t x;
  if (to->envelope && parse_failed(s, m)) return;
  if (trb_shape_extras(m->data, m->len, to->envelope, to->write_metadata,
                       &meta, shape, &x, &st) != GRPC_STATUS_OK) {
    if (watching) {
      route_and_batch_as(w, m, shape, allow_refresh, false);
      return;
    }
    if (parse_failed(s, m)) return;
    dead_letter(s, m, TRB_DL_TRANSCODE, st.msg, to->name);
    return;
  }
  pthread_mutex_lock(&w->mu);
  batch_t *b = k->open;
  if (!b) {
    b = k->open = batch_new(k, (size_t)p->batch_max_rows);
    if (!b) {
      pthread_mutex_unlock(&w->mu);
      if (s->exactly_once)
        trb_idset_forget(s->ids, m->id, m->id_len, on_waiter, s);
      trb_ps_nack(h);
      atomic_fetch_sub(&s->c.in_flight, 1);
      msg_free(m);
      return;
    }
  }
  size_t before = b->rows.len;
  grpc_status_code code =
      encode_row(b, k, &x, wp, &st);
  if (code == GRPC_STATUS_OK && b->n > 0 &&
      b->rows.len > (size_t)p->batch_max_bytes) {
    /* This row starts the next batch (encoded again: the next batch may
     * have a newer writer schema). */
    b->rows.len = before;
    seal(k);
    b = k->open = batch_new(k, (size_t)p->batch_max_rows);
    if (!b) {
      pthread_mutex_unlock(&w->mu);
      if (s->exactly_once)
        trb_idset_forget(s->ids, m->id, m->id_len, on_waiter, s);
      trb_ps_nack(h);
      atomic_fetch_sub(&s->c.in_flight, 1);
      msg_free(m);
      return;
    }
    before = 0;
    code = encode_row(b, k, &x, wp, &st);
  }
  if (code == GRPC_STATUS_OK && b->rows.len - before > 9000000 - 65536) {
    size_t big = b->rows.len - before;
    b->rows.len = before;
    code = trb_status_set(&st, GRPC_STATUS_INVALID_ARGUMENT,
                          "$: the row is %zu bytes, over the AppendRows "
                          "request limit",
                          big);
  }
  if (code == GRPC_STATUS_INVALID_ARGUMENT && !to->ignore_unknown_fields &&
      strstr(st.msg, TRB_UNKNOWN_FIELD_MSG)) {
    /* A field the writer schema lacks: maybe a column added since. With a
     * newer writer schema already known, start a batch with it; else park
     * the message until the table schema has been fetched again. */
    trb_bq_writer_schema_t *cur = trb_bq_writer_schema(k->writer);
    bool newer = cur != b->schema;
    trb_bq_writer_schema_release(k->writer, cur);
    if (newer) {
      if (b->n) {
        seal(k);
        b = k->open = batch_new(k, (size_t)p->batch_max_rows);
      } else {
        trb_bq_writer_schema_release(k->writer, b->schema);
        b->schema = trb_bq_writer_schema(k->writer);
      }
      if (b) {
        before = b->rows.len;
        code = encode_row(b, k, &x, wp, &st);
      }
    }
    if (watching && b && code != GRPC_STATUS_OK) {
      pthread_mutex_unlock(&w->mu);
      route_and_batch_as(w, m, shape, allow_refresh, false);
      return;
    }
    /* Malformed JSON is not parked: it is a parse failure (below). */
    if (b && code != GRPC_STATUS_OK && allow_refresh &&
        !is_malformed(m) && park(k, m)) {
      pthread_mutex_unlock(&w->mu);
      return;
    }
    if (!b) {
      pthread_mutex_unlock(&w->mu);
      if (s->exactly_once)
        trb_idset_forget(s->ids, m->id, m->id_len, on_waiter, s);
      trb_ps_nack(h);
      atomic_fetch_sub(&s->c.in_flight, 1);
      msg_free(m);
      return;
    }
  }
  if (code != GRPC_STATUS_OK) {
    pthread_mutex_unlock(&w->mu);
    if (watching) {
      route_and_batch_as(w, m, shape, allow_refresh, false);
      return;
    }
    if (parse_failed(s, m)) return;
    dead_letter(s, m, TRB_DL_TRANSCODE, st.msg, to->name);
    return;
  }
  if (watching && (watch.count == 0 || watch.last_len != fraw_len ||
                   memcmp(watch.last, fraw, fraw_len) != 0)) {
    /* The route key again later with another value: the last one routes. */
    b->rows.len = before;
    pthread_mutex_unlock(&w->mu);
    route_and_batch_as(w, m, shape, allow_refresh, false);
    return;
  }
  size_t rl = b->rows.len - before;
  b->msgs[b->n] = m;
  b->row_len[b->n] = rl;
  b->n++;
  if (b->n >= (size_t)p->batch_max_rows ||
      b->rows.len >= (size_t)p->batch_max_bytes)
    seal(k);
  pthread_mutex_unlock(&w->mu);
}

static void on_message(void *user, const trb_ps_received_t *r,
                       trb_ps_ack_handle_t *h) {
  worker_t *w = user;
  trb_streamer_t *s = w->s;
  atomic_fetch_add(&s->c.received, 1);
  atomic_fetch_add(&s->c.in_flight, 1);
  trb_idset_ref_t ref = NULL;
  size_t idl = strlen(r->message_id);
  if (s->exactly_once) {
    uint64_t tag = 0;
    trb_id_state_t was =
        trb_idset_claim_ref(s->ids, r->message_id, idl, h, &tag, &ref);
    if (was == TRB_ID_PENDING) return; /* parked until the first copy settles */
    if (was == TRB_ID_WRITTEN || was == TRB_ID_DEAD) {
      atomic_fetch_add(&s->c.duplicates, 1);
      ack_id(s, h, r->message_id, tag, 0, false);
      return;
    }
  }
  msg_t *m = msg_new(w, r, idl, h);
  if (!m) {
    if (s->exactly_once)
      trb_idset_forget(s->ids, r->message_id, idl, on_waiter, s);
    trb_ps_nack(h);
    atomic_fetch_sub(&s->c.in_flight, 1);
    return;
  }
  m->idref = ref;
  route_and_batch(w, m, &w->shape, true);
}

static void on_stream_error(void *user, const trb_status_t *st,
                            int streams_left) {
  worker_t *w = user;
  TRB_LOG(TRB_LOG_ERROR, "streamer", "worker %d: StreamingPull ended for good (%s); %d "
                "stream(s) left",
                w->idx, st->msg, streams_left);
}

/* ------------------------------------------------------------------------ */
/* Timer thread                                                              */
/* ------------------------------------------------------------------------ */

static void recreate_writer(sink_t *k) {
  trb_streamer_t *s = k->w->s;
  trb_bq_writer_config_t cfg = {0};
  cfg.table = s->p->tables[k->table].path;
  cfg.kind = s->exactly_once ? TRB_BQ_STREAM_COMMITTED : TRB_BQ_STREAM_DEFAULT;
  cfg.stream_name = s->exactly_once ? k->stream : NULL;
  cfg.ignore_unknown_fields = k->topts.ignore_unknown_fields;
  trb_bq_writer_t *nw = NULL;
  trb_status_t st;
  if (trb_bq_writer_create(k->w->loop, s->o.bigquery, &cfg, &nw, &st) !=
      GRPC_STATUS_OK) {
    TRB_LOG(TRB_LOG_WARNING, "streamer", "reopening write stream %s: %s", k->stream, st.msg);
    return;
  }
  pthread_mutex_lock(&k->w->mu);
  trb_bq_writer_t *old = k->writer;
  k->writer = nw;
  k->writer_broken = false;
  trb_streamer_retire_writer(k, old);
  pthread_mutex_unlock(&k->w->mu);
  trb_bq_writer_destroy(old);
}

static void *ticker(void *arg) {
  worker_t *w = arg;
  trb_streamer_t *s = w->s;
  const trb_pipeline_t *p = s->p;
  /* Housekeeping (retries, schema refreshes, id expiry) runs at least
   * every `tick`; an open batch is sealed at its deadline (opened +
   * batch_max_latency_ms): the thread sleeps until the earliest one, and
   * batch_new wakes it when it opens a batch. */
  int64_t tick = p->batch_max_latency_ms / 2;
  if (tick < 1) tick = 1;
  if (tick > 50) tick = 50;
  pthread_mutex_lock(&w->mu);
  while (!w->ticker_stop) {
    int64_t wake = trb_streamer_now_ms() + tick;
    for (size_t t = 0; t < p->n_tables; t++) {
      sink_t *k = &w->sinks[t];
      if (k->open && k->open->opened_ms + p->batch_max_latency_ms < wake)
        wake = k->open->opened_ms + p->batch_max_latency_ms;
    }
    w->ticker_wake_ms = wake;
    if (wake > trb_streamer_now_ms()) {
      /* Absolute, on the same clock as trb_streamer_now_ms (CLOCK_MONOTONIC,
       * the condition variable's clock). */
      struct timespec ts = {(time_t)(wake / 1000), (long)(wake % 1000) * 1000000L};
      pthread_cond_timedwait(&w->cv, &w->mu, &ts);
    }
    w->ticker_wake_ms = 0;
    if (w->ticker_stop) break;
    int64_t now = trb_streamer_now_ms();
    for (size_t t = 0; t < p->n_tables; t++) {
      sink_t *k = &w->sinks[t];
      if (k->open && now - k->open->opened_ms >= p->batch_max_latency_ms)
        seal(k);
      if (k->busy && k->retry_at_ms && now >= k->retry_at_ms &&
          !atomic_load(&s->closing)) {
        if (k->wal_wait) {
          log_busy(k);
        } else {
          if (k->writer_broken) {
            pthread_mutex_unlock(&w->mu);
            recreate_writer(k);
            pthread_mutex_lock(&w->mu);
          }
          send_busy(k);
        }
      }
    }
    for (size_t t = 0; t < p->n_tables; t++) {
      sink_t *k = &w->sinks[t];
      if (!k->refresh_wanted || atomic_load(&s->closing) ||
          now - k->last_refresh_ms < 1000)
        continue;
      /* Rows with fields the writer schema lacks: fetch the table schema
       * again (a column may have been added), then handle them once more;
       * what still does not fit is dead-lettered. */
      msg_t **parked = k->parked;
      size_t n = k->n_parked;
      k->parked = NULL;
      k->n_parked = k->cap_parked = 0;
      k->refresh_wanted = false;
      k->last_refresh_ms = now;
      pthread_mutex_unlock(&w->mu);
      bool changed = false;
      trb_status_t rst;
      if (trb_bq_writer_refresh_schema(k->writer, &changed, &rst) !=
          GRPC_STATUS_OK)
        TRB_LOG(TRB_LOG_WARNING, "streamer", "schema refresh of %s: %s",
                p->tables[t].name, rst.msg);
      else if (changed)
        TRB_LOG(TRB_LOG_INFO, "streamer",
                "table %s has a new schema; writing with it from now on",
                p->tables[t].name);
      trb_buf_t shape = TRB_BUF_INIT;
      for (size_t i = 0; i < n; i++) route_and_batch(w, parked[i], &shape, false);
      trb_buf_deinit(&shape);
      trb_free(parked);
      pthread_mutex_lock(&w->mu);
    }
    if (w->idx == 0) {
      pthread_mutex_unlock(&w->mu);
      trb_streamer_expire(s, false);
      pthread_mutex_lock(&w->mu);
    }
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                 */
/* ------------------------------------------------------------------------ */

static bool has_column(const trb_bq_table_t *t, const char *name) {
  for (size_t i = 0; i < t->n_fields; i++)
    if (strcasecmp(t->fields[i].name, name) == 0) return true;
  return false;
}

grpc_status_code trb_worker_init(trb_streamer_t *s, worker_t *w, int idx,
                                 trb_status_t *st) {
  const trb_pipeline_t *p = s->p;
  w->s = s;
  w->idx = idx;
  pthread_mutex_init(&w->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&w->cv, &ca);
  pthread_condattr_destroy(&ca);
  trb_buf_init(&w->shape);
  w->subscription_len = strlen(p->subscription);
  int64_t pool_cap = p->max_outstanding_messages;
  if (pool_cap < 16) pool_cap = 16;
  if (pool_cap > 1 << 20) pool_cap = 1 << 20;
  trb_pool_init(&w->msgs, sizeof(msg_t) + TRB_MSG_ID_INLINE, (size_t)pool_cap);
  char name[32];
  snprintf(name, sizeof name, "stream-w%d", idx);
  grpc_status_code code = trb_rpc_loop_create(name, &w->loop, st);
  if (code) return code;
  w->sinks = trb_calloc(p->n_tables, sizeof *w->sinks);
  if (!w->sinks) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "oom");
  for (size_t t = 0; t < p->n_tables; t++) {
    sink_t *k = &w->sinks[t];
    const trb_table_opts_t *to = &p->tables[t];
    k->w = w;
    k->table = t;
    k->topts.ignore_unknown_fields = to->ignore_unknown_fields;
    trb_bq_writer_config_t cfg = {0};
    cfg.table = to->path;
    cfg.kind = s->exactly_once ? TRB_BQ_STREAM_COMMITTED : TRB_BQ_STREAM_DEFAULT;
    cfg.ignore_unknown_fields = to->ignore_unknown_fields;
    code = trb_bq_writer_create(w->loop, s->o.bigquery, &cfg, &k->writer, st);
    if (code) {
      trb_status_prefix(st, "write stream for %s", to->name);
      return code;
    }
    const char *sn = trb_bq_writer_stream(k->writer);
    k->stream = trb_malloc(strlen(sn) + 1);
    if (!k->stream) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "oom");
    strcpy(k->stream, sn);
    trb_bq_writer_schema_t *ws = trb_bq_writer_schema(k->writer);
    const trb_bq_table_t *schema = trb_bq_writer_schema_table(ws);
    code = GRPC_STATUS_OK;
    if (to->write_metadata) {
      static const char *cols[] = {"subscription_name", "message_id",
                                   "publish_time", "attributes"};
      for (int c = 0; c < 4 && !code; c++)
        if (!has_column(schema, cols[c]))
          code = trb_status_set(st, GRPC_STATUS_FAILED_PRECONDITION,
                                "table %s: write_metadata needs a column "
                                "\"%s\" (subscription_name STRING, message_id "
                                "STRING, publish_time TIMESTAMP, attributes "
                                "JSON or STRING)",
                                to->name, cols[c]);
    }
    if (!code && to->envelope && !has_column(schema, "payload"))
      code = trb_status_set(st, GRPC_STATUS_FAILED_PRECONDITION,
                            "table %s: envelope needs a STRING column "
                            "\"payload\"",
                            to->name);
    trb_bq_writer_schema_release(k->writer, ws);
    if (code) return code;
  }
  trb_ps_subscriber_config_t sc = {0};
  sc.streams = (int)p->streams_per_worker;
  sc.max_outstanding_messages = p->max_outstanding_messages;
  sc.max_outstanding_bytes = p->max_outstanding_bytes;
  sc.ms_per_second = s->ms_per_second;
  sc.on_stream_error = on_stream_error;
  sc.on_stream_error_user = w;
  code = trb_ps_subscriber_create(w->loop, s->o.pubsub, p->subscription, &sc,
                                  on_message, w, &w->sub, st);
  return code;
}

grpc_status_code trb_worker_start(worker_t *w, trb_status_t *st) {
  if (pthread_create(&w->ticker, NULL, ticker, w) != 0)
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                          "cannot start a timer thread");
  w->ticker_started = true;
  return trb_ps_subscriber_start(w->sub, st);
}

void trb_worker_seal_all(worker_t *w) {
  pthread_mutex_lock(&w->mu);
  for (size_t t = 0; t < w->s->p->n_tables; t++)
    if (w->sinks) seal(&w->sinks[t]);
  pthread_mutex_unlock(&w->mu);
}

void trb_worker_stop_ticker(worker_t *w) {
  if (!w->ticker_started) return;
  pthread_mutex_lock(&w->mu);
  w->ticker_stop = true;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
  pthread_join(w->ticker, NULL);
  w->ticker_started = false;
}

void trb_worker_destroy_writers(worker_t *w) {
  if (!w->sinks) return;
  for (size_t t = 0; t < w->s->p->n_tables; t++) {
    trb_bq_writer_destroy(w->sinks[t].writer); /* cancels pending appends */
    w->sinks[t].writer = NULL;
  }
}

static void hand_back_batch(trb_streamer_t *s, batch_t *b) {
  for (size_t i = 0; i < b->n; i++) {
    if (s->exactly_once)
      trb_idset_forget(s->ids, b->msgs[i]->id, b->msgs[i]->id_len,
                       on_waiter, s);
    trb_ps_nack(b->msgs[i]->h);
    atomic_fetch_sub(&s->c.in_flight, 1);
  }
  batch_free(b);
}

/* Nack whatever is still held (the WAL keeps what was logged). Parked
 * redelivered copies handed back with the ids may belong to any worker's
 * subscriber: the streamer calls this for every worker before it destroys
 * any subscriber (destroy frees the handles). Idempotent. */
void trb_worker_hand_back(worker_t *w) {
  trb_streamer_t *s = w->s;
  if (w->sinks) {
    for (size_t t = 0; t < s->p->n_tables; t++) {
      sink_t *k = &w->sinks[t];
      for (size_t i = 0; i < k->n_parked; i++) {
        msg_t *m = k->parked[i];
        if (s->exactly_once)
          trb_idset_forget(s->ids, m->id, m->id_len, on_waiter, s);
        trb_ps_nack(m->h);
        atomic_fetch_sub(&s->c.in_flight, 1);
        msg_free(m);
      }
      trb_free(k->parked);
      k->parked = NULL;
      k->n_parked = k->cap_parked = 0;
      if (k->open) hand_back_batch(s, k->open);
      if (k->busy) hand_back_batch(s, k->busy);
      k->open = k->busy = NULL;
      while (k->q_head) {
        batch_t *b = k->q_head;
        k->q_head = b->next;
        hand_back_batch(s, b);
      }
      k->q_tail = NULL;
    }
  }
}

/* Hand back (if not done yet), free. */
void trb_worker_deinit(worker_t *w) {
  trb_streamer_t *s = w->s;
  trb_worker_hand_back(w);
  if (w->sinks) {
    for (size_t t = 0; t < s->p->n_tables; t++) {
      sink_t *k = &w->sinks[t];
      trb_free(k->stream);
      k->stream = NULL;
    }
  }
  /* Ack results still pending come back STOPPED here; they touch their
   * batches (not the sinks), then the sinks can go. */
  trb_ps_subscriber_destroy(w->sub);
  w->sub = NULL;
  trb_free(w->sinks);
  w->sinks = NULL;
  if (w->loop) trb_rpc_loop_destroy(w->loop);
  w->loop = NULL;
  trb_buf_deinit(&w->shape);
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
}

void trb_worker_free_pool(worker_t *w) { trb_pool_deinit(&w->msgs); }
