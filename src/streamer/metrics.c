/*
 * metrics.c — see metrics.h.
 */
#include "src/streamer/metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "src/streamer/shape.h"

const double trb_sm_bounds_s[TRB_SM_BOUNDS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5,   1,      2.5,   5,    10,    30,    60};

/* The bounds in microseconds (exact: every bound is a whole µs). */
static const int64_t bounds_us[TRB_SM_BOUNDS] = {
    1000,    2500,    5000,    10000,    25000,    50000,    100000, 250000,
    500000, 1000000, 2500000, 5000000, 10000000, 30000000, 60000000};

static size_t bucket_of(int64_t us) {
  size_t lo = 0, hi = TRB_SM_BOUNDS; /* first bound >= us, or +Inf */
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (bounds_us[mid] >= us) hi = mid; else lo = mid + 1;
  }
  return lo;
}

void trb_sm_hist_observe_n(trb_sm_hist_t *h, int64_t us, uint64_t n) {
  if (n == 0) return;
  if (us < 0) us = 0;
  __atomic_fetch_add(&h->bucket[bucket_of(us)], n, __ATOMIC_RELAXED);
  __atomic_fetch_add(&h->sum_us, (uint64_t)us * n, __ATOMIC_RELAXED);
}

void trb_sm_hist_observe(trb_sm_hist_t *h, int64_t us) {
  trb_sm_hist_observe_n(h, us, 1);
}

void trb_sm_hist_read(const trb_sm_hist_t *h, trb_sm_hist_t *acc) {
  for (size_t i = 0; i <= TRB_SM_BOUNDS; i++)
    acc->bucket[i] += __atomic_load_n(&h->bucket[i], __ATOMIC_RELAXED);
  acc->sum_us += __atomic_load_n(&h->sum_us, __ATOMIC_RELAXED);
}

uint64_t trb_sm_hist_count(const trb_sm_hist_t *h) {
  uint64_t n = 0;
  for (size_t i = 0; i <= TRB_SM_BOUNDS; i++) n += h->bucket[i];
  return n;
}

/* ------------------------------------------------------------------------ */

#define P "tributary_stream_"

static int head(trb_buf_t *o, const char *name, const char *type,
                const char *help) {
  return trb_buf_appendf(o, "# HELP " P "%s %s\n# TYPE " P "%s %s\n", name,
                         help, name, type);
}

static int scalar(trb_buf_t *o, const char *name, const char *type,
                  const char *help, uint64_t v) {
  if (head(o, name, type, help)) return -ENOMEM;
  return trb_buf_appendf(o, P "%s %" PRIu64 "\n", name, v);
}

/* A label value, escaped per the exposition format. */
static int label(trb_buf_t *o, const char *v) {
  for (const char *c = v ? v : ""; *c; c++) {
    int rc;
    if (*c == '\\') rc = trb_buf_append_str(o, "\\\\");
    else if (*c == '"') rc = trb_buf_append_str(o, "\\\"");
    else if (*c == '\n') rc = trb_buf_append_str(o, "\\n");
    else rc = trb_buf_append(o, c, 1);
    if (rc) return -ENOMEM;
  }
  return 0;
}

static int hist(trb_buf_t *o, const char *name, const char *help,
                const trb_sm_hist_t *h) {
  if (head(o, name, "histogram", help)) return -ENOMEM;
  uint64_t cum = 0;
  for (size_t i = 0; i <= TRB_SM_BOUNDS; i++) {
    cum += h->bucket[i];
    int rc = i < TRB_SM_BOUNDS
                 ? trb_buf_appendf(o, P "%s_bucket{le=\"%g\"} %" PRIu64 "\n",
                                   name, trb_sm_bounds_s[i], cum)
                 : trb_buf_appendf(o, P "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n",
                                   name, cum);
    if (rc) return -ENOMEM;
  }
  return trb_buf_appendf(o,
                         P "%s_sum %" PRIu64 ".%06" PRIu64 "\n" P
                           "%s_count %" PRIu64 "\n",
                         name, h->sum_us / 1000000, h->sum_us % 1000000, name,
                         cum);
}

int trb_stream_metrics_render(const trb_stream_metrics_t *m, trb_buf_t *o) {
  size_t nt = m->n_tables < TRB_SM_MAX_TABLES ? m->n_tables : TRB_SM_MAX_TABLES;
  if (!m->table_names) nt = 0;
#define CK(x) \
  do {        \
    if ((x)) return -ENOMEM; \
  } while (0)
  CK(scalar(o, "up", "gauge", "1 while the process runs.", 1));
  CK(scalar(o, "ready", "gauge",
            "1 when connected to Pub/Sub and BigQuery and the WAL is "
            "writable (/readyz).",
            m->ready ? 1 : 0));
  CK(scalar(o, "messages_received_total", "counter",
            "Messages delivered by StreamingPull.", m->received));
  CK(scalar(o, "duplicates_acked_total", "counter",
            "Redeliveries of messages already written or dead-lettered, "
            "acked without a write.",
            m->duplicates));
  CK(head(o, "rows_appended_total", "counter",
          "Rows acknowledged by AppendRows, per table."));
  for (size_t t = 0; t < nt; t++) {
    CK(trb_buf_append_str(o, P "rows_appended_total{table=\""));
    CK(label(o, m->table_names[t]));
    CK(trb_buf_appendf(o, "\"} %" PRIu64 "\n", m->table_rows[t]));
  }
  CK(scalar(o, "batches_appended_total", "counter",
            "AppendRows requests acknowledged.", m->batches_written));
  CK(head(o, "dead_letters_total", "counter",
          "Messages sent to the dead-letter topic, per stage and table "
          "(table=\"\" before routing)."));
  for (int sg = 0; sg < TRB_SM_STAGES; sg++) {
    for (size_t t = 0; t <= nt; t++) {
      size_t col = t < nt ? t : TRB_SM_MAX_TABLES;
      uint64_t v = m->dead[sg][col];
      /* Every table appears for append/transcode; "" only when used or for
       * the stages that have no table. */
      bool tabled = sg == TRB_DL_TRANSCODE || sg == TRB_DL_APPEND;
      if (t == nt && tabled && v == 0) continue;
      if (t < nt && !tabled && v == 0) continue;
      CK(trb_buf_appendf(o, P "dead_letters_total{stage=\"%s\",table=\"",
                         trb_dl_stage_name((trb_dl_stage_t)sg)));
      if (t < nt) CK(label(o, m->table_names[t]));
      CK(trb_buf_appendf(o, "\"} %" PRIu64 "\n", v));
    }
  }
  CK(scalar(o, "dead_letters_confirmed_total", "counter",
            "Dead letters whose publish the dead-letter topic confirmed.",
            m->dead_letters));
  CK(head(o, "acks_total", "counter",
          "Acknowledge results (exactly-once: SUCCESS = ok)."));
  CK(trb_buf_appendf(o, P "acks_total{result=\"ok\"} %" PRIu64 "\n" P
                          "acks_total{result=\"failed\"} %" PRIu64 "\n",
                     m->acks_ok, m->acks_failed));
  CK(scalar(o, "append_retries_total", "counter",
            "Batches resent at the same offset after a failed AppendRows.",
            m->append_retries));
  CK(scalar(o, "messages_in_flight", "gauge",
            "Messages held (received, not yet acked or nacked).",
            m->in_flight));
  CK(hist(o, "append_latency_seconds",
          "AppendRows request sent to acknowledged (seconds).",
          &m->append_latency));
  CK(hist(o, "end_to_end_latency_seconds",
          "Pub/Sub publish_time to row acknowledged by BigQuery, per "
          "message (seconds; wall clocks).",
          &m->e2e_latency));
  if (m->has_wal) {
    CK(scalar(o, "wal_live_bytes", "gauge",
              "Framed bytes in live write-ahead log segments.",
              m->wal_live_bytes));
    CK(scalar(o, "wal_live_segments", "gauge",
              "Write-ahead log segments not yet compacted away.",
              m->wal_live_segments));
    CK(scalar(o, "wal_unreleased_records", "gauge",
              "Write-ahead log records still needed.",
              m->wal_unreleased_records));
    CK(scalar(o, "wal_records_appended_total", "counter",
              "Records appended to the write-ahead log since start.",
              m->wal_records_appended));
    CK(scalar(o, "wal_bytes_written_total", "counter",
              "Bytes written to write-ahead log segments since start.",
              m->wal_bytes_written));
  }
  CK(scalar(o, "wal_full_total", "counter",
            "Times a batch waited for write-ahead log space.", m->wal_full));
  CK(scalar(o, "replayed_batches_total", "counter",
            "Write-ahead log batches appended again at start.",
            m->replayed_batches));
  CK(scalar(o, "replayed_rows_total", "counter",
            "Rows of the replayed batches.", m->replayed_rows));
  CK(scalar(o, "pubsub_streams_opened_total", "counter",
            "StreamingPull calls started (reconnects included).",
            m->streams_opened));
  CK(scalar(o, "pubsub_reconnects_total", "counter",
            "StreamingPull streams reopened after ending.", m->reconnects));
  CK(scalar(o, "lease_extensions_total", "counter",
            "Ack deadlines extended (ModifyAckDeadline, per ack id).",
            m->lease_extensions));
  CK(scalar(o, "bigquery_connections_total", "counter",
            "AppendRows connections opened (write streams reopened included).",
            m->bq_connections));
  CK(scalar(o, "bigquery_append_retries_total", "counter",
            "Retryable AppendRows errors retried by the writers.",
            m->bq_retries));
#undef CK
  return 0;
}
