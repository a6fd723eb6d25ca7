/*
 * streamer.c — streamer lifecycle, id retention and counters (see
 * streamer.h; the per-message work is in worker.c, the WAL replay in
 * replay.c).
 */
#include "src/streamer/streamer.h"

#include <string.h>
#include <time.h>

#include "src/common/alloc.h"
#include "src/common/log.h"
#include "src/streamer/streamer_int.h"

int64_t trb_streamer_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void trb_streamer_retain(trb_streamer_t *s, trb_wal_lsn_t lsn0,
                         trb_wal_lsn_t lsn1, const char *const *ids,
                         const size_t *id_lens, size_t n) {
  retain_t *r = trb_calloc(1, sizeof *r);
  if (!r) return; /* the records stay live: safe, only the WAL grows */
  r->lsn[0] = lsn0;
  r->lsn[1] = lsn1;
  r->expire_ms = trb_streamer_now_ms() +
                 (int64_t)TRB_STREAMER_RETENTION_S * s->ms_per_second;
  r->ids = trb_calloc(n ? n : 1, sizeof *r->ids);
  if (r->ids) {
    for (size_t i = 0; i < n; i++) {
      r->ids[i] = trb_malloc(id_lens[i] + 1);
      if (!r->ids[i]) break;
      memcpy(r->ids[i], ids[i], id_lens[i]);
      r->ids[i][id_lens[i]] = 0;
      r->n_ids++;
    }
  }
  pthread_mutex_lock(&s->mu);
  if (s->retain_tail) s->retain_tail->next = r; else s->retain_head = r;
  s->retain_tail = r;
  pthread_mutex_unlock(&s->mu);
}

static void retain_free(retain_t *r) {
  for (size_t i = 0; i < r->n_ids; i++) trb_free(r->ids[i]);
  trb_free(r->ids);
  trb_free(r);
}

void trb_streamer_expire(trb_streamer_t *s, bool all) {
  int64_t now = trb_streamer_now_ms();
  for (;;) {
    pthread_mutex_lock(&s->mu);
    retain_t *r = s->retain_head;
    if (!r || (!all && r->expire_ms > now)) {
      pthread_mutex_unlock(&s->mu);
      return;
    }
    s->retain_head = r->next;
    if (!s->retain_head) s->retain_tail = NULL;
    pthread_mutex_unlock(&s->mu);
    if (!all) {
      for (size_t i = 0; i < r->n_ids; i++)
        trb_idset_forget_tagged(s->ids, r->ids[i], strlen(r->ids[i]),
                                r->lsn[0]);
      for (int k = 0; k < 2; k++)
        if (r->lsn[k]) trb_wal_release(s->wal, r->lsn[k]);
    }
    retain_free(r);
  }
}

static void teardown(trb_streamer_t *s) {
  atomic_store(&s->closing, true);
  for (int i = 0; i < s->n_workers; i++)
    trb_worker_stop_ticker(&s->workers[i]);
  /* WAL done callbacks may still send appends: let them run out first. */
  while (atomic_load(&s->wal_pending) > 0) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  for (int i = 0; i < s->n_workers; i++)
    trb_worker_destroy_writers(&s->workers[i]);
  if (s->dlq) {
    trb_status_t st;
    trb_ps_publisher_shutdown(s->dlq, 0, NULL, &st);
  }
  for (int i = 0; i < s->n_workers; i++) trb_worker_deinit(&s->workers[i]);
  trb_ps_publisher_destroy(s->dlq);
  s->dlq = NULL;
  trb_streamer_expire(s, true);
  trb_wal_close(s->wal);
  s->wal = NULL;
  trb_idset_destroy(s->ids, NULL, NULL);
  s->ids = NULL;
  if (s->ctl_loop) trb_rpc_loop_destroy(s->ctl_loop);
  s->ctl_loop = NULL;
}

grpc_status_code trb_streamer_start(const trb_pipeline_t *p,
                                    const trb_streamer_opts_t *o,
                                    trb_streamer_t **out, trb_status_t *st) {
  *out = NULL;
  if (!o || !o->pubsub || !o->bigquery)
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "streamer: both channels are required");
  trb_streamer_t *s = trb_calloc(1, sizeof *s);
  if (!s) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "oom");
  s->p = p;
  s->o = *o;
  s->exactly_once = p->delivery == TRB_DELIVERY_EXACTLY_ONCE;
  s->ms_per_second = o->ms_per_second > 0 ? o->ms_per_second : 1000;
  pthread_mutex_init(&s->mu, NULL);
  grpc_status_code code = trb_rpc_loop_create("stream-ctl", &s->ctl_loop, st);
  if (code) goto fail;
  if (s->exactly_once) {
    s->ids = trb_idset_create();
    if (!s->ids) {
      code = trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "oom");
      goto fail;
    }
    code = trb_streamer_replay(s, st);
    if (code) goto fail;
  }
  trb_ps_publisher_config_t pc = {0};
  pc.flow = TRB_PS_FLOW_REJECT;
  code = trb_ps_publisher_create(s->ctl_loop, o->pubsub, p->dead_letter_topic,
                                 &pc, &s->dlq, st);
  if (code) {
    trb_status_prefix(st, "dead-letter topic %s: ", p->dead_letter_topic);
    goto fail;
  }
  s->workers = trb_calloc((size_t)p->workers, sizeof *s->workers);
  if (!s->workers) {
    code = trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "oom");
    goto fail;
  }
  for (int i = 0; i < (int)p->workers; i++) {
    s->n_workers = i + 1;
    code = trb_worker_init(s, &s->workers[i], i, st);
    if (code) goto fail;
  }
  for (int i = 0; i < s->n_workers; i++) {
    code = trb_worker_start(&s->workers[i], st);
    if (code) goto fail;
  }
  TRB_LOG(TRB_LOG_INFO, "streamer",
          "streaming %s: %d worker(s) x %d stream(s), %zu table(s), %s",
          p->subscription, s->n_workers, (int)p->streams_per_worker,
          p->n_tables, s->exactly_once ? "exactly once" : "at least once");
  *out = s;
  return GRPC_STATUS_OK;
fail:
  teardown(s);
  pthread_mutex_destroy(&s->mu);
  trb_free(s->workers);
  trb_free(s);
  return code;
}

void trb_streamer_stats(trb_streamer_t *s, trb_streamer_stats_t *o) {
  memset(o, 0, sizeof *o);
  o->received = atomic_load(&s->c.received);
  o->duplicates = atomic_load(&s->c.duplicates);
  o->rows_written = atomic_load(&s->c.rows_written);
  o->batches_written = atomic_load(&s->c.batches_written);
  o->dead_letters = atomic_load(&s->c.dead_letters);
  for (int i = 0; i < 4; i++) o->dead_by_stage[i] = atomic_load(&s->c.dead_by_stage[i]);
  o->acks_ok = atomic_load(&s->c.acks_ok);
  o->acks_failed = atomic_load(&s->c.acks_failed);
  o->append_retries = atomic_load(&s->c.append_retries);
  o->replayed_batches = atomic_load(&s->c.replayed_batches);
  o->replayed_rows = atomic_load(&s->c.replayed_rows);
  o->in_flight = atomic_load(&s->c.in_flight);
  o->wal_full = atomic_load(&s->c.wal_full);
  for (int i = 0; i < 64; i++) o->table_rows[i] = atomic_load(&s->c.table_rows[i]);
}

bool trb_streamer_ready(trb_streamer_t *s) {
  pthread_mutex_lock(&s->mu);
  bool ok = !s->stopped;
  pthread_mutex_unlock(&s->mu);
  if (!ok) return false;
  for (int i = 0; i < s->n_workers; i++) {
    trb_ps_subscriber_stats_t ss;
    trb_ps_subscriber_stats(s->workers[i].sub, &ss);
    if (ss.first_error.code != GRPC_STATUS_OK) return false;
  }
  return true;
}

grpc_status_code trb_streamer_stop(trb_streamer_t *s, int64_t grace_ms,
                                   trb_status_t *st) {
  pthread_mutex_lock(&s->mu);
  if (s->stopped) {
    pthread_mutex_unlock(&s->mu);
    return GRPC_STATUS_OK;
  }
  s->stopped = true;
  pthread_mutex_unlock(&s->mu);
  int64_t deadline = trb_streamer_now_ms() + (grace_ms < 0 ? 0 : grace_ms);
  grpc_status_code rc = GRPC_STATUS_OK;
  /* Seal everything held, then let each subscriber wait for its messages
   * to be settled (the workers' timers keep sealing what still arrives). */
  for (int i = 0; i < s->n_workers; i++) trb_worker_seal_all(&s->workers[i]);
  for (int i = 0; i < s->n_workers; i++) {
    int64_t left = deadline - trb_streamer_now_ms();
    if (left < 0) left = 0;
    trb_status_t sst;
    trb_worker_seal_all(&s->workers[i]);
    if (trb_ps_subscriber_stop(s->workers[i].sub, left, &sst) != GRPC_STATUS_OK)
      rc = trb_status_set(st, GRPC_STATUS_DEADLINE_EXCEEDED,
                          "streamer: grace period over with messages in "
                          "flight (they will be redelivered)");
  }
  if (s->dlq) {
    int64_t left = deadline - trb_streamer_now_ms();
    trb_status_t pst;
    trb_ps_publisher_shutdown(s->dlq, left < 0 ? 0 : left, NULL, &pst);
  }
  TRB_LOG(TRB_LOG_INFO, "streamer", "stopped (%s)",
          rc == GRPC_STATUS_OK ? "drained" : "grace period over");
  return rc;
}

void trb_streamer_destroy(trb_streamer_t *s) {
  if (!s) return;
  trb_streamer_stop(s, 0, NULL);
  teardown(s);
  pthread_mutex_destroy(&s->mu);
  trb_free(s->workers);
  trb_free(s);
}
