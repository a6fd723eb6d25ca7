/*
 * replay.c — open the write-ahead log and replay it before streaming
 * (DESIGN.md "Delivery semantics", step 5):
 *   - BATCH records without a DONE record (and not superseded by a later
 *     BATCH for the same stream and offset) are appended again, byte-
 *     identical, at their recorded offsets on their recorded streams; OK or
 *     ALREADY_EXISTS both mean written;
 *   - every message id of a written batch or a DEAD record is remembered
 *     (WRITTEN / DEAD) for the retention period, so that the redelivered
 *     messages are acked, not written again.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/common/alloc.h"
#include "src/common/log.h"
#include "src/streamer/streamer_int.h"
#include "src/streamer/walrec.h"

typedef struct rec_s {
  trb_wal_lsn_t lsn;
  uint8_t type;
  uint8_t *payload;
  size_t len;
  trb_walrec_batch_t b; /* BATCH */
  trb_wal_lsn_t done;   /* BATCH: its DONE record, 0 = none */
  bool superseded;
  bool handled; /* replayed (or given up) in this run */
} rec_t;

typedef struct {
  rec_t *r;
  size_t n, cap;
  bool oom;
} recs_t;

static void on_record(void *user, trb_wal_lsn_t lsn, uint8_t type,
                      const uint8_t *payload, size_t len) {
  recs_t *rs = user;
  if (rs->oom) return;
  if (rs->n == rs->cap) {
    size_t cap = rs->cap ? rs->cap * 2 : 256;
    rec_t *n = trb_realloc(rs->r, cap * sizeof *n);
    if (!n) {
      rs->oom = true;
      return;
    }
    rs->r = n;
    rs->cap = cap;
  }
  rec_t *r = &rs->r[rs->n];
  memset(r, 0, sizeof *r);
  r->payload = trb_malloc(len ? len : 1);
  if (!r->payload) {
    rs->oom = true;
    return;
  }
  memcpy(r->payload, payload, len);
  r->lsn = lsn;
  r->type = type;
  r->len = len;
  rs->n++;
}

static rec_t *find_lsn(recs_t *rs, trb_wal_lsn_t lsn) {
  size_t lo = 0, hi = rs->n; /* records are in lsn order */
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (rs->r[mid].lsn < lsn) lo = mid + 1; else hi = mid;
  }
  return lo < rs->n && rs->r[lo].lsn == lsn ? &rs->r[lo] : NULL;
}

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done;
  grpc_status_code code;
  char msg[256];
  size_t n_row_errors;
} waiter_t;

static void on_replayed(void *user, const trb_bq_append_result_t *r) {
  waiter_t *w = user;
  pthread_mutex_lock(&w->mu);
  w->code = r->code;
  w->n_row_errors = r->n_row_errors;
  snprintf(w->msg, sizeof w->msg, "%s", r->message ? r->message : "");
  w->done = true;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

static void remember(trb_streamer_t *s, rec_t *r, trb_id_state_t state,
                     trb_wal_lsn_t done_lsn) {
  size_t n = r->b.n;
  const char **ids = trb_malloc((n ? n : 1) * sizeof *ids);
  size_t *lens = trb_malloc((n ? n : 1) * sizeof *lens);
  if (!ids || !lens) {
    trb_free(ids);
    trb_free(lens);
    return; /* records stay live; ids not remembered (safe: at worst a
               duplicate the message_id column can remove) */
  }
  for (uint32_t i = 0; i < n; i++) {
    trb_walrec_batch_id(&r->b, i, &ids[i], &lens[i]);
    trb_idset_mark(s->ids, ids[i], lens[i], state, r->lsn, NULL, NULL);
  }
  trb_streamer_retain(s, r->lsn, done_lsn, ids, lens, n);
  trb_free(ids);
  trb_free(lens);
}

/* Append one logged batch again on `w`; true when written. */
static bool replay_batch(trb_bq_writer_t *wr, rec_t *r) {
  size_t *lens = trb_malloc((r->b.n ? r->b.n : 1) * sizeof *lens);
  if (!lens) return false;
  for (uint32_t i = 0; i < r->b.n; i++)
    lens[i] = trb_walrec_batch_row_len(&r->b, i);
  waiter_t w = {0};
  pthread_mutex_init(&w.mu, NULL);
  pthread_cond_init(&w.cv, NULL);
  trb_status_t st;
  bool ok = false;
  for (int attempt = 0; attempt < 5 && !ok; attempt++) {
    w.done = false;
    grpc_status_code code = trb_bq_writer_append_encoded(
        wr, NULL, r->b.offset, r->b.rows, lens, r->b.n, on_replayed, &w, &st);
    if (code != GRPC_STATUS_OK) {
      snprintf(w.msg, sizeof w.msg, "%s", st.msg);
      break;
    }
    pthread_mutex_lock(&w.mu);
    while (!w.done) pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    ok = w.code == GRPC_STATUS_OK && w.n_row_errors == 0;
    if (w.n_row_errors) break;
  }
  if (!ok)
    TRB_LOG(TRB_LOG_WARNING, "streamer",
            "WAL replay: batch of %u rows at offset %" PRId64
            " on %.*s not written (%s); its messages will be redelivered and "
            "handled again",
            r->b.n, r->b.offset, (int)r->b.stream_len, r->b.stream, w.msg);
  pthread_cond_destroy(&w.cv);
  pthread_mutex_destroy(&w.mu);
  trb_free(lens);
  return ok;
}

grpc_status_code trb_streamer_replay(trb_streamer_t *s, trb_status_t *st) {
  const trb_pipeline_t *p = s->p;
  recs_t rs = {0};
  trb_wal_config_t wc = {0};
  wc.dir = p->wal_dir;
  wc.sync = p->wal_fsync ? TRB_WAL_SYNC_FSYNC : TRB_WAL_SYNC_NONE;
  wc.max_bytes = (uint64_t)p->wal_max_bytes;
  grpc_status_code code = trb_wal_open(&wc, on_record, &rs, &s->wal, st);
  if (code) {
    trb_status_prefix(st, "write-ahead log");
    goto out;
  }
  if (rs.oom) {
    code = trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                          "write-ahead log: out of memory during replay");
    goto out;
  }
  /* Decode; link DONE records to their batches. */
  for (size_t i = 0; i < rs.n; i++) {
    rec_t *r = &rs.r[i];
    if (r->type == TRB_WALREC_BATCH) {
      code = trb_walrec_batch_decode(r->payload, r->len, &r->b, st);
      if (code) {
        trb_status_prefix(st, "write-ahead log record %" PRIu64, r->lsn);
        goto out;
      }
    } else if (r->type == TRB_WALREC_DONE) {
      uint64_t bl;
      if (trb_walrec_done_decode(r->payload, r->len, &bl, st) != GRPC_STATUS_OK) {
        code = GRPC_STATUS_DATA_LOSS;
        goto out;
      }
      rec_t *b = find_lsn(&rs, bl);
      if (b && b->type == TRB_WALREC_BATCH) b->done = r->lsn;
      else trb_wal_release(s->wal, r->lsn); /* its batch is gone */
    }
  }
  /* A later BATCH for the same stream and offset supersedes. */
  for (size_t i = 0; i < rs.n; i++) {
    rec_t *a = &rs.r[i];
    if (a->type != TRB_WALREC_BATCH) continue;
    for (size_t j = i + 1; j < rs.n; j++) {
      rec_t *b = &rs.r[j];
      if (b->type == TRB_WALREC_BATCH && b->b.offset == a->b.offset &&
          b->b.stream_len == a->b.stream_len &&
          memcmp(b->b.stream, a->b.stream, a->b.stream_len) == 0) {
        a->superseded = true;
        break;
      }
    }
  }
  size_t replayed = 0, remembered = 0;
  for (size_t i = 0; i < rs.n; i++) {
    rec_t *r = &rs.r[i];
    if (r->type == TRB_WALREC_DEAD) {
      const char *id;
      size_t idl;
      if (trb_walrec_dead_decode(r->payload, r->len, &id, &idl, st)) {
        code = GRPC_STATUS_DATA_LOSS;
        goto out;
      }
      trb_idset_mark(s->ids, id, idl, TRB_ID_DEAD, r->lsn, NULL, NULL);
      trb_streamer_retain(s, r->lsn, 0, &id, &idl, 1);
      remembered++;
      continue;
    }
    if (r->type != TRB_WALREC_BATCH || r->handled) continue;
    if (r->superseded) {
      if (r->done) trb_wal_release(s->wal, r->done);
      trb_wal_release(s->wal, r->lsn);
      continue;
    }
    if (r->done) {
      remember(s, r, TRB_ID_WRITTEN, r->done);
      remembered += r->b.n;
      continue;
    }
    /* Not known to be written: append again on its stream. Batches of one
     * stream are in lsn order, which is offset order. */
    char table[TRB_WALREC_MAX_NAME + 1], stream[TRB_WALREC_MAX_NAME + 1];
    memcpy(table, r->b.table, r->b.table_len);
    table[r->b.table_len] = 0;
    memcpy(stream, r->b.stream, r->b.stream_len);
    stream[r->b.stream_len] = 0;
    trb_bq_writer_config_t cfg = {0};
    cfg.table = table;
    cfg.kind = TRB_BQ_STREAM_COMMITTED;
    cfg.stream_name = stream;
    trb_bq_writer_t *wr = NULL;
    trb_status_t wst;
    code = trb_bq_writer_create(s->ctl_loop, s->o.bigquery, &cfg, &wr, &wst);
    if (code) {
      /* Without the stream the batch cannot be checked: refuse to start
       * rather than risk writing it twice. */
      code = trb_status_set(st, code,
                            "write-ahead log replay: write stream %s: %s",
                            stream, wst.msg);
      goto out;
    }
    for (size_t j = i; j < rs.n; j++) {
      rec_t *b = &rs.r[j];
      if (b->type != TRB_WALREC_BATCH || b->done || b->superseded ||
          b->handled ||
          b->b.stream_len != r->b.stream_len ||
          memcmp(b->b.stream, stream, r->b.stream_len) != 0)
        continue;
      if (replay_batch(wr, b)) {
        uint8_t rec[9];
        trb_walrec_done(b->lsn, rec);
        trb_wal_lsn_t dl = 0;
        trb_status_t dst;
        trb_wal_append(s->wal, TRB_WALREC_DONE, rec, sizeof rec, NULL, NULL,
                       &dl, &dst);
        b->handled = true;
        remember(s, b, TRB_ID_WRITTEN, dl);
        atomic_fetch_add(&s->c.replayed_batches, 1);
        atomic_fetch_add(&s->c.replayed_rows, b->b.n);
        replayed++;
      } else {
        b->handled = true; /* its messages come again */
        trb_wal_release(s->wal, b->lsn);
      }
    }
    trb_bq_writer_destroy(wr);
  }
  if (rs.n)
    TRB_LOG(TRB_LOG_INFO, "streamer",
            "write-ahead log: %zu record(s); %zu batch(es) appended again, "
            "%zu message id(s) remembered for de-duplication",
            rs.n, replayed, remembered);
  code = GRPC_STATUS_OK;
out:
  for (size_t i = 0; i < rs.n; i++) trb_free(rs.r[i].payload);
  trb_free(rs.r);
  return code;
}
