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

int64_t trb_streamer_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void trb_streamer_observe_written(worker_t *w, const batch_t *b) {
  struct timespec rt;
  clock_gettime(CLOCK_REALTIME, &rt);
  int64_t now_us = (int64_t)rt.tv_sec * 1000000 + rt.tv_nsec / 1000;
  for (size_t i = 0; i < b->n; i++) {
    const msg_t *m = b->msgs[i];
    if (!m) continue;
    int64_t pub_us = m->publish_time_s * 1000000 + m->publish_time_nanos / 1000;
    trb_sm_hist_observe(&w->e2e_lat, now_us - pub_us);
  }
}

void trb_streamer_count_dead(trb_streamer_t *s, trb_dl_stage_t stage,
                             const char *table) {
  if ((int)stage < 0 || (int)stage >= 4) return;
  size_t col = 64;
  if (table) {
    for (size_t t = 0; t < s->p->n_tables && t < 64; t++) {
      const char *n = s->p->tables[t].name;
      if (n == table || (n && strcmp(n, table) == 0)) {
        col = t;
        break;
      }
    }
  }
  atomic_fetch_add_explicit(&s->c.dead_by_table[stage][col], 1,
                            memory_order_relaxed);
}

void trb_streamer_retire_writer(sink_t *k, trb_bq_writer_t *old) {
  if (!old) return;
  trb_bq_writer_stats_t bs;
  trb_bq_writer_get_stats(old, &bs);
  k->retired_connections += (uint64_t)bs.connections;
  k->retired_retries += (uint64_t)bs.retries;
}

static void retain_push(trb_streamer_t *s, bool acked, trb_wal_lsn_t lsn0,
                        trb_wal_lsn_t lsn1, uint64_t tag,
                        const char *const *ids, const size_t *id_lens,
                        size_t n) {
  /* One allocation: the record, the id pointers, the id texts. */
  size_t bytes = 0;
  for (size_t i = 0; i < n; i++) bytes += id_lens[i] + 1;
  retain_t *r = trb_malloc(sizeof *r + n * sizeof(char *) + bytes);
  if (!r) return; /* the records stay live: safe, only the WAL grows */
  r->lsn[0] = lsn0;
  r->lsn[1] = lsn1;
  r->tag = tag;
  r->next = NULL;
  /* Acked ids: real seconds, never scaled by ms_per_second — the delays
   * before a late copy arrives (reconnect backoff, an outage) are real
   * time even in tests. */
  r->expire_ms = trb_streamer_now_ms() +
                 (acked ? (int64_t)TRB_STREAMER_ACKED_RETENTION_S * 1000
                        : (int64_t)TRB_STREAMER_RETENTION_S * s->ms_per_second);
  r->ids = (char **)(r + 1);
  char *text = (char *)(r->ids + n);
  for (size_t i = 0; i < n; i++) {
    r->ids[i] = text;
    memcpy(text, ids[i], id_lens[i]);
    text[id_lens[i]] = 0;
    text += id_lens[i] + 1;
  }
  r->n_ids = n;
  pthread_mutex_lock(&s->mu);
  retain_t **head = acked ? &s->acked_head : &s->retain_head;
  retain_t **tail = acked ? &s->acked_tail : &s->retain_tail;
  if (*tail) (*tail)->next = r; else *head = r;
  *tail = r;
  pthread_mutex_unlock(&s->mu);
}

void trb_streamer_retain(trb_streamer_t *s, trb_wal_lsn_t lsn0,
                         trb_wal_lsn_t lsn1, const char *const *ids,
                         const size_t *id_lens, size_t n) {
  retain_push(s, false, lsn0, lsn1, lsn0, ids, id_lens, n);
}

void trb_streamer_retain_acked(trb_streamer_t *s, uint64_t tag,
                               const char *const *ids, const size_t *id_lens,
                               size_t n) {
  retain_push(s, true, 0, 0, tag, ids, id_lens, n);
}

static void retain_free(retain_t *r) { trb_free(r); /* ids inside */ }

static void expire_list(trb_streamer_t *s, bool all, bool acked) {
  int64_t now = trb_streamer_now_ms();
  retain_t **head = acked ? &s->acked_head : &s->retain_head;
  retain_t **tail = acked ? &s->acked_tail : &s->retain_tail;
  for (;;) {
    pthread_mutex_lock(&s->mu);
    retain_t *r = *head;
    if (!r || (!all && r->expire_ms > now)) {
      pthread_mutex_unlock(&s->mu);
      return;
    }
    *head = r->next;
    if (!*head) *tail = NULL;
    pthread_mutex_unlock(&s->mu);
    if (!all) {
      for (size_t i = 0; i < r->n_ids; i++)
        trb_idset_forget_tagged(s->ids, r->ids[i], strlen(r->ids[i]),
                                r->tag);
      for (int k = 0; k < 2; k++)
        if (r->lsn[k]) trb_wal_release(s->wal, r->lsn[k]);
    }
    retain_free(r);
  }
}

void trb_streamer_expire(trb_streamer_t *s, bool all) {
  expire_list(s, all, false);
  expire_list(s, all, true);
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
  /* Every held message back first: a parked redelivery handed back with a
   * worker's ids may belong to another worker's subscriber. */
  for (int i = 0; i < s->n_workers; i++) trb_worker_hand_back(&s->workers[i]);
  for (int i = 0; i < s->n_workers; i++) trb_worker_deinit(&s->workers[i]);
  trb_ps_publisher_destroy(s->dlq);
  s->dlq = NULL;
  /* Dead-letter callbacks (run by the destroy) gave their messages back. */
  for (int i = 0; i < s->n_workers; i++) trb_worker_free_pool(&s->workers[i]);
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
  s->table_names = trb_calloc(p->n_tables ? p->n_tables : 1,
                              sizeof *s->table_names);
  if (!s->table_names) {
    pthread_mutex_destroy(&s->mu);
    trb_free(s);
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "oom");
  }
  for (size_t t = 0; t < p->n_tables; t++)
    s->table_names[t] = p->tables[t].name;
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
  /* Dead letters hold their messages until confirmed: retry a recovering
   * topic promptly (the default backoff grows to 60 s, longer than a drain's
   * grace period). */
  pc.backoff_max_ms = 2000;
  pc.max_delay_ms = 1;
  code = trb_ps_publisher_create(s->ctl_loop, o->pubsub, p->dead_letter_topic,
                                 &pc, &s->dlq, st);
  if (code) {
    trb_status_prefix(st, "dead-letter topic %s", p->dead_letter_topic);
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
  trb_free(s->table_names);
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

bool trb_streamer_check_ready(trb_streamer_t *s, trb_status_t *why) {
  pthread_mutex_lock(&s->mu);
  bool stopped = s->stopped;
  pthread_mutex_unlock(&s->mu);
  if (stopped) {
    trb_status_set(why, GRPC_STATUS_UNAVAILABLE, "draining: stopped pulling");
    return false;
  }
  for (int i = 0; i < s->n_workers; i++) {
    trb_ps_subscriber_stats_t ss;
    trb_ps_subscriber_stats(s->workers[i].sub, &ss);
    if (ss.first_error.code != GRPC_STATUS_OK) {
      trb_status_set(why, ss.first_error.code,
                     "Pub/Sub: worker %d's subscriber failed (%s): %s", i,
                     trb_status_code_name(ss.first_error.code),
                     ss.first_error.msg);
      return false;
    }
  }
  if (s->exactly_once && s->wal) {
    trb_status_t ws = {0};
    grpc_status_code wc = trb_wal_health(s->wal, &ws);
    if (wc != GRPC_STATUS_OK) {
      trb_status_set(why, wc, "write-ahead log not writable (%s): %s",
                     trb_status_code_name(wc), ws.msg);
      return false;
    }
  }
  for (int i = 0; i < s->n_workers; i++) {
    worker_t *w = &s->workers[i];
    if (!w->sinks) continue;
    pthread_mutex_lock(&w->mu);
    for (size_t t = 0; t < s->p->n_tables; t++) {
      const sink_t *k = &w->sinks[t];
      const char *why_not = NULL;
      if (!k->writer || k->writer_broken)
        why_not = "BigQuery: writer failed, reopening the write stream";
      else if (k->wal_wait)
        why_not = "write-ahead log full: batches wait for space";
      else if (k->busy && k->retry_at_ms)
        why_not = "BigQuery: AppendRows failing, retrying";
      if (why_not) {
        trb_status_set(why, GRPC_STATUS_UNAVAILABLE, "%s (table %s, stream %s)",
                       why_not, s->p->tables[t].name,
                       k->stream ? k->stream : "-");
        pthread_mutex_unlock(&w->mu);
        return false;
      }
    }
    pthread_mutex_unlock(&w->mu);
  }
  return true;
}

bool trb_streamer_ready(trb_streamer_t *s) {
  return trb_streamer_check_ready(s, NULL);
}

void trb_streamer_metrics(trb_streamer_t *s, trb_stream_metrics_t *m) {
  memset(m, 0, sizeof *m);
  /* Histograms first: end-to-end observations are recorded after their
   * rows are counted, so a scrape never shows more of them than rows
   * written. */
  for (int i = 0; i < s->n_workers; i++) {
    trb_sm_hist_read(&s->workers[i].append_lat, &m->append_latency);
    trb_sm_hist_read(&s->workers[i].e2e_lat, &m->e2e_latency);
  }
  trb_streamer_stats_t x;
  trb_streamer_stats(s, &x);
  m->ready = trb_streamer_check_ready(s, NULL);
  m->received = x.received;
  m->duplicates = x.duplicates;
  m->rows_written = x.rows_written;
  m->batches_written = x.batches_written;
  m->dead_letters = x.dead_letters;
  m->acks_ok = x.acks_ok;
  m->acks_failed = x.acks_failed;
  m->append_retries = x.append_retries;
  m->in_flight = x.in_flight;
  m->wal_full = x.wal_full;
  m->replayed_batches = x.replayed_batches;
  m->replayed_rows = x.replayed_rows;
  m->n_tables = s->p->n_tables < TRB_SM_MAX_TABLES ? s->p->n_tables
                                                   : TRB_SM_MAX_TABLES;
  /* Table names: trb_table_opts_t is not an array of names; the pointers
   * are gathered in the streamer (stable for its life). */
  m->table_names = (const char *const *)s->table_names;
  for (size_t t = 0; t < m->n_tables; t++) m->table_rows[t] = x.table_rows[t];
  for (int sg = 0; sg < TRB_SM_STAGES; sg++)
    for (int t = 0; t <= TRB_SM_MAX_TABLES; t++)
      m->dead[sg][t] = atomic_load_explicit(&s->c.dead_by_table[sg][t],
                                            memory_order_relaxed);
  if (s->exactly_once && s->wal) {
    trb_wal_stats_t ws;
    trb_wal_stats(s->wal, &ws);
    m->has_wal = true;
    m->wal_live_bytes = ws.live_bytes;
    m->wal_live_segments = ws.live_segments;
    m->wal_unreleased_records = ws.unreleased_records;
    m->wal_records_appended = ws.records_appended;
    m->wal_bytes_written = ws.bytes_written;
  }
  for (int i = 0; i < s->n_workers; i++) {
    worker_t *w = &s->workers[i];
    if (w->sub) {
      trb_ps_subscriber_stats_t ss;
      trb_ps_subscriber_stats(w->sub, &ss);
      m->streams_opened += ss.streams_opened;
      m->reconnects += ss.reconnects;
      m->lease_extensions += ss.extensions;
    }
    if (w->sinks) {
      /* The lock keeps a writer from being swapped and destroyed while its
       * counters are read (recreate_writer swaps under it). */
      pthread_mutex_lock(&w->mu);
      for (size_t t = 0; t < s->p->n_tables; t++) {
        m->bq_connections += w->sinks[t].retired_connections;
        m->bq_retries += w->sinks[t].retired_retries;
        if (!w->sinks[t].writer) continue;
        trb_bq_writer_stats_t bs;
        trb_bq_writer_get_stats(w->sinks[t].writer, &bs);
        m->bq_connections += (uint64_t)bs.connections;
        m->bq_retries += (uint64_t)bs.retries;
      }
      pthread_mutex_unlock(&w->mu);
    }
  }
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
  trb_free(s->table_names);
  trb_free(s);
}
