/*
 * writer.c — see writer.h. One mutex guards the queue; a supervisor thread
 * (re)opens the AppendRows connection after a backoff; stream callbacks
 * run on the loop thread. Append callbacks always run without the lock.
 *
 * Queue: every unresolved request ("chunk") in send order; the first
 * `n_sent` are on the current connection awaiting their response (which
 * arrives in order), the rest wait for a connection.
 */
#include "src/bigquery/writer.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "google/cloud/bigquery/storage/v1/storage.pb.h"
#include "google/cloud/bigquery/storage/v1/stream.pb.h"
#include "src/bigquery/append_codec.h"
#include "src/bigquery/descriptor.h"
#include "src/bigquery/transcode.h"
#include "src/bigquery/write_rpc.h"
#include "src/common/alloc.h"
#include "src/common/arena.h"
#include "src/rpc/pb.h"
#include "src/rpc/retry.h"

#define SVC "/google.cloud.bigquery.storage.v1.BigQueryWrite/"
/* Per-row framing in ProtoRows (tag + length varint) and per-request
 * overhead (write_stream, offset, writer_schema are added on top). */
#define ROW_OVERHEAD 6

typedef struct rowerr_s {
  size_t index;
  char *message;
} rowerr_t;

typedef struct append_s {
  trb_bq_append_cb cb;
  void *user;
  size_t chunks_left;
  grpc_status_code code;
  char message[TRB_STATUS_MSG_MAX];
  int64_t offset;
  size_t rows_written;
  rowerr_t *errs;
  size_t n_errs, cap_errs;
  struct append_s *next_done; /* completion list */
} append_t;

/* A writer schema: the table schema rows are transcoded against and the
 * descriptor sent as writer_schema. Replaced (never changed) when the
 * server reports updated_schema; chunks keep the one they were encoded
 * with. `refs` is atomic (a schema may outlive its writer, see
 * trb_bq_writer_schema). */
typedef struct trb_bq_writer_schema_s {
  int refs;
  trb_bq_table_t table;
  google_protobuf_DescriptorProto desc;
  uint8_t *desc_bytes; /* `desc` serialized once (writer_schema bytes) */
  size_t desc_len;
} wschema_t; /* = trb_bq_writer_schema_t of writer.h */

typedef struct chunk_s {
  append_t *ap;
  wschema_t *schema; /* reference */
  trb_buf_t rows;   /* concatenated serialized rows */
  size_t *row_len;  /* per row */
  size_t *row_idx;  /* index in the append's json_rows */
  size_t n;
  int64_t offset;   /* COMMITTED: offset of the first row */
  uint64_t epoch;   /* the stream it goes to (see trb_bq_writer_s) */
  int64_t first_fail_ms; /* first retryable failure it waited on; 0 none */
  bool sent;        /* written on some connection before */
  struct chunk_s *next;
} chunk_t;

typedef struct conn_s {
  trb_bq_writer_t *w;
  trb_rpc_stream_t *s;
  uint64_t gen;
} conn_t;

struct trb_bq_writer_s {
  trb_rpc_loop_t *loop;
  trb_rpc_channel_t *ch;
  char *table;
  char *stream;
  char *routing; /* "write_stream=<name>" */
  bool committed; /* explicit stream with offsets (COMMITTED, PENDING,
                     BUFFERED) */
  bool pending;
  bool buffered;
  int stream_type;  /* WriteStream.Type; 0 for _default */
  int64_t max_retry_ms;
  char **retired;   /* stream names / routing values replaced by rotations */
  size_t n_retired;
  size_t max_bytes;
  int max_attempts;
  trb_bq_transcode_opts_t topts;
  wschema_t *cur;         /* schema for new appends (reference) */
  wschema_t *conn_schema; /* writer_schema of the current connection, NULL
                             until its first request (reference) */

  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t sup;
  bool sup_started;
  bool closing;
  bool fatal;
  chunk_t *head, *tail;
  size_t n_sent;
  size_t n_pending_appends;
  int64_t next_offset;
  conn_t *conn;       /* current connection, NULL when none */
  bool first_on_conn; /* next write on conn carries stream + schema */
  uint64_t gen;
  int live_conns;
  bool want_connect;
  int64_t connect_at_ms;
  trb_backoff_t backoff;
  int attempts;
  grpc_status_code last_code;
  char last_msg[TRB_STATUS_MSG_MAX];
  int64_t hold_until_ms; /* unsent chunks wait until then (backoff) */
  /* Rotation: chunks carry the epoch of the stream they belong to;
   * `stream_epoch` is w->stream's, `append_epoch` the one new appends get
   * (ahead of stream_epoch while a rotation drains the old stream). */
  uint64_t stream_epoch, append_epoch;
  bool rotating;
  bool hold_connect;     /* no connection while the streams are swapped */
  int64_t rot_old_next;  /* while rotating: the old stream's next offset */
  trb_bq_writer_stats_t stats;
};

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void append_set_error(append_t *a, grpc_status_code code,
                             const char *msg) {
  if (a->code != GRPC_STATUS_OK) return;
  a->code = code;
  snprintf(a->message, sizeof a->message, "%s", msg ? msg : "");
}

static void append_add_rowerr(append_t *a, size_t index, const char *msg) {
  if (a->n_errs == a->cap_errs) {
    size_t cap = a->cap_errs ? a->cap_errs * 2 : 4;
    rowerr_t *e = trb_realloc(a->errs, cap * sizeof *e);
    if (!e) abort();
    a->errs = e;
    a->cap_errs = cap;
  }
  a->errs[a->n_errs].index = index;
  a->errs[a->n_errs].message = trb_strdup(msg ? msg : "");
  if (!a->errs[a->n_errs].message) abort();
  a->n_errs++;
}

static void append_finish(append_t *a) {
  trb_bq_row_error_t *re = NULL;
  if (a->n_errs) {
    re = trb_calloc(a->n_errs, sizeof *re);
    if (!re) abort();
    for (size_t i = 0; i < a->n_errs; i++) {
      re[i].index = a->errs[i].index;
      re[i].message = a->errs[i].message;
    }
  }
  trb_bq_append_result_t r = {a->code, a->message, a->offset, a->rows_written,
                              re, a->n_errs};
  a->cb(a->user, &r);
  trb_free(re);
  for (size_t i = 0; i < a->n_errs; i++) trb_free(a->errs[i].message);
  trb_free(a->errs);
  trb_free(a);
}

/* Run the callbacks of `done` (a list); lock NOT held. */
static void finish_list(append_t *done) {
  while (done) {
    append_t *n = done->next_done;
    append_finish(done);
    done = n;
  }
}

static void schema_unref(wschema_t *ws) {
  if (!ws || __atomic_sub_fetch(&ws->refs, 1, __ATOMIC_ACQ_REL) > 0) return;
  trb_bq_descriptor_release(&ws->desc);
  trb_free(ws->desc_bytes);
  trb_bq_table_deinit(&ws->table);
  trb_free(ws);
}

/* A new schema object owning `*table` (moved; left empty). */
static grpc_status_code schema_new(trb_bq_table_t *table, wschema_t **out,
                                   trb_status_t *st) {
  wschema_t *ws = trb_calloc(1, sizeof *ws);
  if (!ws) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  grpc_status_code code = trb_bq_descriptor_build(table, &ws->desc, st);
  if (code == GRPC_STATUS_OK) {
    code = trb_pb_encode(google_protobuf_DescriptorProto_fields, &ws->desc,
                         &ws->desc_bytes, &ws->desc_len, st);
    if (code != GRPC_STATUS_OK) trb_bq_descriptor_release(&ws->desc);
  }
  if (code != GRPC_STATUS_OK) {
    trb_free(ws);
    return code;
  }
  ws->table = *table;
  memset(table, 0, sizeof *table);
  ws->refs = 1;
  *out = ws;
  return GRPC_STATUS_OK;
}

/* Lock held when the chunk holds a schema reference (queued chunks). */
static void chunk_free(chunk_t *c) {
  if (!c) return;
  schema_unref(c->schema);
  trb_buf_deinit(&c->rows);
  trb_free(c->row_len);
  trb_free(c->row_idx);
  trb_free(c);
}

/* Pop the head chunk; when it was its append's last, move the append to
 * `*done`. Lock held. */
static void pop_head(trb_bq_writer_t *w, append_t **done) {
  chunk_t *c = w->head;
  w->head = c->next;
  if (!w->head) w->tail = NULL;
  if (w->n_sent) w->n_sent--;
  append_t *a = c->ap;
  chunk_free(c);
  if (w->rotating) pthread_cond_broadcast(&w->cv);
  if (--a->chunks_left == 0) {
    w->n_pending_appends--;
    a->next_done = *done;
    *done = a;
  }
}

/* Encode (append_codec.h: one sizing pass over the row lengths, one copy
 * of the rows) and write chunk `c` on the current connection. The first
 * request of a connection carries write_stream and writer_schema. Lock
 * held. */
static grpc_status_code send_chunk(trb_bq_writer_t *w, chunk_t *c) {
  trb_bq_append_req_t r;
  memset(&r, 0, sizeof r);
  if (w->first_on_conn) {
    r.write_stream = w->stream;
    r.has_writer_schema = true;
    r.descriptor = c->schema->desc_bytes;
    r.descriptor_len = c->schema->desc_len;
  }
  r.has_offset = w->committed;
  r.offset = c->offset;
  r.rows = (const uint8_t *)c->rows.data;
  r.row_len = c->row_len;
  r.n_rows = c->n;
  uint8_t *buf = NULL;
  size_t len = 0;
  if (!trb_bq_append_req_encode(&r, &buf, &len)) {
    return GRPC_STATUS_RESOURCE_EXHAUSTED;
  }
  grpc_status_code code = trb_rpc_stream_write(w->conn->s, buf, len, NULL);
  trb_free(buf);
  if (code == GRPC_STATUS_OK) w->first_on_conn = false;
  return code;
}

static void reset_conn(trb_bq_writer_t *w, int64_t delay_ms);

/* Send every unsent chunk while connected. Lock held. */
static void pump(trb_bq_writer_t *w) {
  if (!w->conn) return;
  if (w->hold_until_ms) {
    if (now_ms() < w->hold_until_ms) return;
    w->hold_until_ms = 0;
  }
  chunk_t *c = w->head;
  for (size_t i = 0; c && i < w->n_sent; i++) c = c->next;
  while (c) {
    if (c->epoch != w->stream_epoch) return; /* for the next stream */
    if (!w->conn_schema) {
      w->conn_schema = c->schema;
      __atomic_add_fetch(&w->conn_schema->refs, 1, __ATOMIC_RELAXED);
    } else if (c->schema != w->conn_schema) {
      /* Encoded under another writer schema: it goes on a new connection
       * that starts with that schema (as the Java client does, fact 22),
       * once every request of this one is answered. */
      if (w->n_sent == 0) {
        w->stats.schema_reconnects++;
        reset_conn(w, 0);
      }
      return;
    }
    if (send_chunk(w, c) != GRPC_STATUS_OK) return; /* on_close follows */
    if (c->sent) w->stats.requests_resent++;
    c->sent = true;
    w->stats.requests_sent++;
    w->n_sent++;
    c = c->next;
  }
}

/* Drop the current connection (its late messages are ignored) and schedule
 * a new one after `delay_ms`; unanswered chunks will be resent. Lock held. */
static void reset_conn(trb_bq_writer_t *w, int64_t delay_ms) {
  if (w->conn) {
    trb_rpc_stream_cancel(w->conn->s);
    w->conn = NULL;
  }
  schema_unref(w->conn_schema);
  w->conn_schema = NULL;
  w->gen++;
  w->n_sent = 0;
  w->hold_until_ms = 0;
  w->want_connect = true;
  w->connect_at_ms = now_ms() + delay_ms;
  pthread_cond_broadcast(&w->cv);
}

/* Fail every queued chunk (fatal error or destroy). Lock held. */
static void fail_all(trb_bq_writer_t *w, grpc_status_code code,
                     const char *msg, append_t **done) {
  while (w->head) {
    append_set_error(w->head->ap, code, msg);
    pop_head(w, done);
  }
  w->n_sent = 0;
}

/* The head chunk failed for good: report it and shift the offsets of the
 * chunks behind it (same stream). Lock held. */
static void drop_head(trb_bq_writer_t *w, grpc_status_code code,
                      const char *msg, append_t **done) {
  chunk_t *c = w->head;
  append_set_error(c->ap, code, msg);
  if (w->committed) {
    for (chunk_t *x = c->next; x; x = x->next)
      if (x->epoch == c->epoch) x->offset -= (int64_t)c->n;
    if (c->epoch == w->append_epoch) w->next_offset -= (int64_t)c->n;
    else w->rot_old_next -= (int64_t)c->n;
  }
  pop_head(w, done);
}

/* drop_head, then resend what was already sent behind it (at its new
 * offset, on a new connection). Lock held. */
static void head_failed(trb_bq_writer_t *w, grpc_status_code code,
                        const char *msg, append_t **done) {
  bool later_sent = w->n_sent > 1;
  drop_head(w, code, msg, done);
  if (w->committed && later_sent) reset_conn(w, 0);
}

/* A retryable failure: every queued chunk now waits on a retry (from this
 * moment unless it already did); from the head, the chunks that have been
 * waiting for max_retry_ms fail with this status (the total retry time
 * per append, Java's maxRetryDuration, fact 29). Returns whether any
 * failed. Lock held. */
static bool expire_retries(trb_bq_writer_t *w, grpc_status_code code,
                           const char *msg, append_t **done) {
  int64_t now = now_ms();
  for (chunk_t *c = w->head; c; c = c->next)
    if (!c->first_fail_ms) c->first_fail_ms = now;
  bool any = false;
  while (w->head && now - w->head->first_fail_ms >= w->max_retry_ms) {
    w->stats.retries_expired++;
    drop_head(w, code, msg, done);
    any = true;
  }
  return any;
}

/* A retryable failure (connection or in-stream). Lock held. */
static void retry_later(trb_bq_writer_t *w, grpc_status_code code,
                        const char *msg, append_t **done) {
  w->last_code = code;
  snprintf(w->last_msg, sizeof w->last_msg, "%s", msg ? msg : "");
  expire_retries(w, code, msg, done);
  if (++w->attempts >= w->max_attempts) {
    w->fatal = true;
    fail_all(w, code, msg, done);
    if (w->conn) {
      trb_rpc_stream_cancel(w->conn->s);
      w->conn = NULL;
      w->gen++;
    }
    return;
  }
  reset_conn(w, trb_backoff_next_ms(&w->backoff));
}

/* A retryable in-stream error for the head chunk. When nothing sent behind
 * it depends on its offset (it is the only one in flight, or the stream
 * has no offsets), it goes back to the unsent part of the queue — behind
 * the chunks still in flight — and sending pauses for a backoff on the
 * same connection; otherwise the connection is reopened (retry_later).
 * Lock held. */
static void retry_head(trb_bq_writer_t *w, grpc_status_code code,
                       const char *msg, append_t **done) {
  w->stats.retries++;
  if (expire_retries(w, code, msg, done)) {
    /* The head (and maybe more) failed: requests sent behind it on a
     * stream with offsets are resent at their new offsets. */
    if (w->committed && w->n_sent > 0) reset_conn(w, 0);
    return;
  }
  if (w->committed && w->n_sent > 1) {
    retry_later(w, code, msg, done);
    return;
  }
  w->last_code = code;
  snprintf(w->last_msg, sizeof w->last_msg, "%s", msg ? msg : "");
  if (++w->attempts >= w->max_attempts) {
    retry_later(w, code, msg, done); /* gives up */
    return;
  }
  chunk_t *c = w->head;
  if (w->n_sent > 1) {
    /* Move c behind the other in-flight chunks. */
    chunk_t *last_sent = c;
    for (size_t i = 1; i < w->n_sent; i++) last_sent = last_sent->next;
    w->head = c->next;
    c->next = last_sent->next;
    last_sent->next = c;
    if (w->tail == last_sent) w->tail = c;
  }
  w->n_sent--;
  w->hold_until_ms = now_ms() + trb_backoff_next_ms(&w->backoff);
  if (w->hold_until_ms == 0) w->hold_until_ms = 1;
  pthread_cond_broadcast(&w->cv);
}

static void on_message(void *user, trb_rpc_stream_t *s, const uint8_t *data,
                       size_t len) {
  (void)s;
  conn_t *cn = user;
  trb_bq_writer_t *w = cn->w;
  google_cloud_bigquery_storage_v1_AppendRowsResponse r;
  memset(&r, 0, sizeof r);
  trb_status_t st;
  grpc_status_code dc = trb_pb_decode(
      google_cloud_bigquery_storage_v1_AppendRowsResponse_fields, data, len,
      &r, &st);
  append_t *done = NULL;
  /* updated_schema (fact 22): the table schema changed; build the new
   * writer schema outside the lock, install it below if it differs. */
  wschema_t *upd = NULL;
  if (dc == GRPC_STATUS_OK && r.has_updated_schema) {
    trb_bq_table_t t;
    if (trb_bq_table_from_write_schema(&r.updated_schema, &t, &st) == GRPC_STATUS_OK) {
      pthread_mutex_lock(&w->mu);
      bool same = trb_bq_schema_equal(&t, &w->cur->table);
      pthread_mutex_unlock(&w->mu);
      if (!same && schema_new(&t, &upd, &st) != GRPC_STATUS_OK) upd = NULL;
      trb_bq_table_deinit(&t);
    }
  }
  pthread_mutex_lock(&w->mu);
  if (upd && cn->gen == w->gen && !trb_bq_schema_equal(&upd->table, &w->cur->table)) {
    schema_unref(w->cur);
    w->cur = upd;
    upd = NULL;
    w->stats.schema_updates++;
  }
  if (cn->gen != w->gen || w->conn != cn || !w->head || w->n_sent == 0) {
    goto out; /* stale connection or unexpected response */
  }
  if (dc != GRPC_STATUS_OK) {
    retry_later(w, GRPC_STATUS_INTERNAL, "undecodable AppendRowsResponse",
                &done);
    goto out;
  }
  chunk_t *c = w->head;
  bool is_result = r.which_response ==
                   google_cloud_bigquery_storage_v1_AppendRowsResponse_append_result_tag;
  grpc_status_code code =
      is_result ? GRPC_STATUS_OK : (grpc_status_code)r.response.error.code;
  const char *msg = is_result ? "" : r.response.error.message;
  if (code == GRPC_STATUS_OK ||
      (code == GRPC_STATUS_ALREADY_EXISTS && w->committed)) {
    if (code == GRPC_STATUS_ALREADY_EXISTS) w->stats.already_exists++;
    append_t *a = c->ap;
    int64_t off = -1;
    if (w->committed) {
      off = (is_result && r.response.append_result.has_offset)
                ? r.response.append_result.offset.value
                : c->offset;
    }
    if (off >= 0 && (a->offset < 0 || off < a->offset)) a->offset = off;
    a->rows_written += c->n;
    w->attempts = 0;
    trb_backoff_reset(&w->backoff);
    pop_head(w, &done);
  } else if (r.row_errors_count > 0) {
    for (pb_size_t i = 0; i < r.row_errors_count; i++) {
      int64_t ix = r.row_errors[i].index;
      size_t orig = (ix >= 0 && (size_t)ix < c->n) ? c->row_idx[ix] : (size_t)ix;
      append_add_rowerr(c->ap, orig, r.row_errors[i].message);
    }
    head_failed(w, GRPC_STATUS_INVALID_ARGUMENT,
                msg && *msg ? msg : "rows rejected by the server", &done);
  } else if (trb_rpc_is_retryable(TRB_RPC_OP_APPEND_ROWS, code, msg)) {
    retry_head(w, code, msg, &done);
  } else {
    head_failed(w, code, msg, &done);
  }
  if (w->conn == cn) pump(w); /* requests held for a schema switch */
out:
  schema_unref(upd);
  pthread_mutex_unlock(&w->mu);
  trb_pb_release(google_cloud_bigquery_storage_v1_AppendRowsResponse_fields,
                 &r);
  finish_list(done);
}

static void on_close(void *user, trb_rpc_stream_t *s,
                     const trb_rpc_result_t *res) {
  conn_t *cn = user;
  trb_bq_writer_t *w = cn->w;
  append_t *done = NULL;
  pthread_mutex_lock(&w->mu);
  bool current = w->conn == cn;
  if (current) w->conn = NULL; /* never leave a pointer to a freed conn */
  if (current && cn->gen == w->gen && !w->closing) {
    grpc_status_code code = res->code;
    if (code == GRPC_STATUS_OK) code = GRPC_STATUS_UNAVAILABLE; /* server closed */
    if (code == GRPC_STATUS_UNAVAILABLE || code == GRPC_STATUS_OK ||
        trb_rpc_is_retryable(TRB_RPC_OP_APPEND_ROWS, code, res->message)) {
      if (!w->head) {
        /* Idle: reconnect after a backoff without counting an attempt. */
        reset_conn(w, trb_backoff_next_ms(&w->backoff));
      } else {
        retry_later(w, code, res->message, &done);
      }
    } else {
      w->fatal = true;
      w->gen++;
      fail_all(w, code, res->message, &done);
    }
  }
  w->live_conns--;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
  trb_rpc_stream_release(s);
  trb_free(cn);
  finish_list(done);
}

/* Open a connection. Lock held. */
static void connect_now(trb_bq_writer_t *w, append_t **done) {
  conn_t *cn = trb_calloc(1, sizeof *cn);
  if (!cn) abort();
  cn->w = w;
  cn->gen = w->gen;
  trb_rpc_md_t md = {"x-goog-request-params", w->routing, 0};
  trb_rpc_call_opts_t o = {0};
  o.md = &md;
  o.n_md = 1;
  trb_rpc_stream_cbs_t cbs = {0};
  cbs.on_message = on_message;
  cbs.on_close = on_close;
  trb_status_t st;
  w->live_conns++;
  grpc_status_code code = trb_rpc_stream_start(
      w->loop, w->ch, SVC "AppendRows", &o, &cbs, cn, &cn->s, &st);
  if (code != GRPC_STATUS_OK) {
    w->live_conns--;
    trb_free(cn);
    retry_later(w, code, st.msg, done);
    return;
  }
  w->conn = cn;
  w->first_on_conn = true;
  schema_unref(w->conn_schema);
  w->conn_schema = NULL;
  w->stats.connections++;
  pump(w);
}

static void *supervisor(void *arg) {
  trb_bq_writer_t *w = arg;
  pthread_mutex_lock(&w->mu);
  while (!w->closing) {
    if (w->hold_until_ms && !w->want_connect) {
      int64_t now = now_ms();
      if (now >= w->hold_until_ms) {
        pump(w); /* clears the hold */
        w->hold_until_ms = 0;
        continue;
      }
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      int64_t ns = ts.tv_nsec + (w->hold_until_ms - now) * 1000000;
      ts.tv_sec += ns / 1000000000;
      ts.tv_nsec = ns % 1000000000;
      pthread_cond_timedwait(&w->cv, &w->mu, &ts);
    } else if (w->want_connect && !w->fatal && !w->hold_connect) {
      int64_t now = now_ms();
      if (now >= w->connect_at_ms) {
        w->want_connect = false;
        append_t *done = NULL;
        connect_now(w, &done);
        if (done) {
          pthread_mutex_unlock(&w->mu);
          finish_list(done);
          pthread_mutex_lock(&w->mu);
        }
        continue;
      }
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      int64_t ns = ts.tv_nsec + (w->connect_at_ms - now) * 1000000;
      ts.tv_sec += ns / 1000000000;
      ts.tv_nsec = ns % 1000000000;
      pthread_cond_timedwait(&w->cv, &w->mu, &ts);
    } else {
      pthread_cond_wait(&w->cv, &w->mu);
    }
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

grpc_status_code trb_bq_writer_create(trb_rpc_loop_t *loop,
                                      trb_rpc_channel_t *ch,
                                      const trb_bq_writer_config_t *cfg,
                                      trb_bq_writer_t **out, trb_status_t *st) {
  *out = NULL;
  if (!loop || !ch || !cfg || !cfg->table || !*cfg->table)
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "writer: loop, channel and table are required");
  trb_bq_writer_t *w = trb_calloc(1, sizeof *w);
  if (!w) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  w->loop = loop;
  w->ch = ch;
  w->pending = cfg->kind == TRB_BQ_STREAM_PENDING;
  w->buffered = cfg->kind == TRB_BQ_STREAM_BUFFERED;
  w->committed = cfg->kind == TRB_BQ_STREAM_COMMITTED || w->pending || w->buffered;
  w->stream_type = (int)cfg->kind; /* equal to WriteStream.Type (0 = _default) */
  w->max_retry_ms = cfg->max_retry_ms > 0 ? cfg->max_retry_ms
                    : cfg->max_retry_ms == 0 ? 300000 : INT64_MAX;
  w->max_bytes = cfg->max_request_bytes ? cfg->max_request_bytes : 9000000;
  w->max_attempts = cfg->max_attempts > 0 ? cfg->max_attempts : 10;
  w->topts.ignore_unknown_fields = cfg->ignore_unknown_fields;
  trb_backoff_init(&w->backoff, cfg->backoff_initial_ms > 0 ? cfg->backoff_initial_ms : 50,
                   cfg->backoff_max_ms > 0 ? cfg->backoff_max_ms : 5000, 2.0, 0);
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  grpc_status_code code = GRPC_STATUS_OK;
  w->table = trb_strdup(cfg->table);
  if (!w->table) {
    code = trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    goto fail;
  }
  if (!w->committed) {
    size_t n = strlen(w->table) + sizeof "/streams/_default";
    w->stream = trb_malloc(n);
    if (!w->stream) {
      code = trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
      goto fail;
    }
    snprintf(w->stream, n, "%s/streams/_default", w->table);
  }
  {
    trb_bq_table_t t;
    if (w->committed && cfg->stream_name && *cfg->stream_name) {
      /* An existing explicit stream: GetWriteStream (view FULL). */
      w->stream = trb_strdup(cfg->stream_name);
      if (!w->stream) {
        code = trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        goto fail;
      }
      code = trb_bq_rpc_open_stream(loop, ch, w->table, 0, &w->stream, &t, st);
    } else {
      code = trb_bq_rpc_open_stream(loop, ch, w->table, w->stream_type, &w->stream, &t, st);
    }
    if (code == GRPC_STATUS_OK) code = schema_new(&t, &w->cur, st);
    trb_bq_table_deinit(&t);
    if (code != GRPC_STATUS_OK) goto fail;
  }
  size_t rn = strlen(w->stream) + sizeof "write_stream=";
  w->routing = trb_malloc(rn);
  if (!w->routing) {
    code = trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    goto fail;
  }
  snprintf(w->routing, rn, "write_stream=%s", w->stream);
  w->want_connect = true;
  w->connect_at_ms = 0;
  if (pthread_create(&w->sup, NULL, supervisor, w) != 0) {
    code = trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                          "writer: cannot start its thread");
    goto fail;
  }
  w->sup_started = true;
  *out = w;
  return GRPC_STATUS_OK;
fail:
  trb_bq_writer_destroy(w);
  return code;
}

const char *trb_bq_writer_stream(const trb_bq_writer_t *w) { return w->stream; }

static chunk_t *chunk_new(append_t *a, size_t cap_rows) {
  chunk_t *c = trb_calloc(1, sizeof *c);
  if (!c) return NULL;
  trb_buf_init(&c->rows);
  c->ap = a;
  c->row_len = trb_calloc(cap_rows, sizeof *c->row_len);
  c->row_idx = trb_calloc(cap_rows, sizeof *c->row_idx);
  if (!c->row_len || !c->row_idx) {
    chunk_free(c);
    return NULL;
  }
  return c;
}

grpc_status_code trb_bq_writer_append(trb_bq_writer_t *w,
                                      const char *const *json_rows, size_t n,
                                      trb_bq_append_cb cb, void *user,
                                      trb_status_t *st) {
  if (!cb || (n && !json_rows))
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "append: callback and rows are required");
  append_t *a = trb_calloc(1, sizeof *a);
  if (!a) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  a->cb = cb;
  a->user = user;
  a->offset = -1;
  pthread_mutex_lock(&w->mu);
  wschema_t *ws = w->cur; /* rows are encoded against this writer schema */
  __atomic_add_fetch(&ws->refs, 1, __ATOMIC_RELAXED);
  pthread_mutex_unlock(&w->mu);
  /* Transcode outside the lock into a private list of chunks. */
  chunk_t *first = NULL, *last = NULL;
  size_t budget = w->max_bytes > 512 ? w->max_bytes - 512 : w->max_bytes;
  size_t cap = n ? n : 1;
  grpc_status_code code = GRPC_STATUS_OK;
  trb_status_t rst;
  for (size_t i = 0; i < n; i++) {
    if (!last || last->rows.len >= budget) {
      chunk_t *c = chunk_new(a, cap);
      if (!c) {
        code = trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        goto fail;
      }
      if (last) last->next = c; else first = c;
      last = c;
    }
    size_t before = last->rows.len;
    const char *row = json_rows[i] ? json_rows[i] : "";
    grpc_status_code rc = trb_bq_transcode_row(&ws->table, row, strlen(row),
                                               &w->topts, &last->rows, &rst);
    if (rc == GRPC_STATUS_RESOURCE_EXHAUSTED) {
      code = trb_status_set(st, rc, "%s", rst.msg);
      goto fail;
    }
    if (rc != GRPC_STATUS_OK) {
      append_add_rowerr(a, i, rst.msg);
      continue;
    }
    size_t rl = last->rows.len - before;
    if (rl + ROW_OVERHEAD > budget) {
      code = trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "row %zu: %zu bytes exceed the request limit", i, rl);
      goto fail;
    }
    if (last->n && last->rows.len + (last->n + 1) * ROW_OVERHEAD > budget) {
      /* Move this row into a new chunk. */
      chunk_t *c = chunk_new(a, cap);
      if (!c || trb_buf_append(&c->rows, last->rows.data + before, rl) != 0) {
        chunk_free(c);
        code = trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        goto fail;
      }
      last->rows.len = before;
      last->next = c;
      last = c;
    }
    last->row_len[last->n] = rl;
    last->row_idx[last->n] = i;
    last->n++;
  }
  /* Drop a trailing empty chunk. */
  {
    chunk_t **pp = &first;
    last = NULL;
    while (*pp) {
      if ((*pp)->n == 0) {
        chunk_t *d = *pp;
        *pp = d->next;
        chunk_free(d);
      } else {
        last = *pp;
        pp = &(*pp)->next;
      }
    }
  }
  pthread_mutex_lock(&w->mu);
  if (w->closing || w->fatal) {
    code = trb_status_set(st, GRPC_STATUS_FAILED_PRECONDITION,
                          "writer: %s", w->closing ? "closing" : w->last_msg);
    pthread_mutex_unlock(&w->mu);
    goto fail;
  }
  if (!first) {
    schema_unref(ws);
    pthread_mutex_unlock(&w->mu);
    if (a->n_errs)
      append_set_error(a, GRPC_STATUS_INVALID_ARGUMENT, "every row was rejected");
    append_finish(a);
    return GRPC_STATUS_OK;
  }
  for (chunk_t *c = first; c; c = c->next) {
    a->chunks_left++;
    c->offset = w->next_offset;
    w->next_offset += (int64_t)c->n;
    c->schema = ws;
    __atomic_add_fetch(&ws->refs, 1, __ATOMIC_RELAXED);
    c->epoch = w->append_epoch;
  }
  schema_unref(ws);
  w->n_pending_appends++;
  if (w->tail) w->tail->next = first; else w->head = first;
  w->tail = last;
  pump(w);
  pthread_mutex_unlock(&w->mu);
  return GRPC_STATUS_OK;
fail:
  while (first) {
    chunk_t *nx = first->next;
    chunk_free(first); /* holds no schema reference yet */
    first = nx;
  }
  pthread_mutex_lock(&w->mu);
  schema_unref(ws);
  pthread_mutex_unlock(&w->mu);
  for (size_t i = 0; i < a->n_errs; i++) trb_free(a->errs[i].message);
  trb_free(a->errs);
  trb_free(a);
  return code;
}

trb_bq_writer_schema_t *trb_bq_writer_schema(trb_bq_writer_t *w) {
  pthread_mutex_lock(&w->mu);
  wschema_t *ws = w->cur;
  __atomic_add_fetch(&ws->refs, 1, __ATOMIC_RELAXED);
  pthread_mutex_unlock(&w->mu);
  return ws;
}

const trb_bq_table_t *trb_bq_writer_schema_table(const trb_bq_writer_schema_t *s) {
  return &s->table;
}

void trb_bq_writer_schema_release(trb_bq_writer_t *w, trb_bq_writer_schema_t *s) {
  (void)w;
  schema_unref(s);
}

grpc_status_code trb_bq_writer_append_encoded(
    trb_bq_writer_t *w, trb_bq_writer_schema_t *schema, int64_t offset,
    const uint8_t *rows, const size_t *row_lens, size_t n, trb_bq_append_cb cb,
    void *user, trb_status_t *st) {
  if (!cb || !n || !rows || !row_lens)
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "append: callback and at least one row are required");
  if (offset >= 0 && !w->committed)
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "append: offsets are for explicit streams, not _default");
  size_t total = 0;
  for (size_t i = 0; i < n; i++) total += row_lens[i] + ROW_OVERHEAD;
  size_t budget = w->max_bytes > 512 ? w->max_bytes - 512 : w->max_bytes;
  if (total > budget)
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "append: %zu rows of %zu bytes exceed the request limit",
                          n, total);
  append_t *a = trb_calloc(1, sizeof *a);
  chunk_t *c = a ? chunk_new(a, n) : NULL;
  if (!c || trb_buf_append(&c->rows, rows, total - n * ROW_OVERHEAD) != 0) {
    if (c) chunk_free(c);
    trb_free(a);
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  }
  a->cb = cb;
  a->user = user;
  a->offset = -1;
  for (size_t i = 0; i < n; i++) {
    c->row_len[i] = row_lens[i];
    c->row_idx[i] = i;
  }
  c->n = n;
  pthread_mutex_lock(&w->mu);
  if (w->closing || w->fatal) {
    grpc_status_code code = trb_status_set(
        st, GRPC_STATUS_FAILED_PRECONDITION, "writer: %s",
        w->closing ? "closing" : w->last_msg);
    pthread_mutex_unlock(&w->mu);
    chunk_free(c);
    trb_free(a);
    return code;
  }
  a->chunks_left = 1;
  if (offset >= 0) w->next_offset = offset;
  c->offset = w->next_offset;
  w->next_offset += (int64_t)n;
  c->schema = schema ? schema : w->cur;
  __atomic_add_fetch(&c->schema->refs, 1, __ATOMIC_RELAXED);
  c->epoch = w->append_epoch;
  w->n_pending_appends++;
  if (w->tail) w->tail->next = c; else w->head = c;
  w->tail = c;
  pump(w);
  pthread_mutex_unlock(&w->mu);
  return GRPC_STATUS_OK;
}

grpc_status_code trb_bq_writer_refresh_schema(trb_bq_writer_t *w, bool *changed,
                                              trb_status_t *st) {
  if (changed) *changed = false;
  pthread_mutex_lock(&w->mu);
  char *name = trb_strdup(w->stream);
  pthread_mutex_unlock(&w->mu);
  if (!name) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  trb_bq_table_t t;
  /* Type 0: GetWriteStream(name, view FULL) on the stream in use. */
  grpc_status_code code = trb_bq_rpc_open_stream(w->loop, w->ch, w->table, 0, &name, &t, st);
  trb_free(name);
  if (code != GRPC_STATUS_OK) return code;
  wschema_t *ws = NULL;
  pthread_mutex_lock(&w->mu);
  if (!trb_bq_schema_equal(&t, &w->cur->table)) {
    code = schema_new(&t, &ws, st);
    if (code == GRPC_STATUS_OK) {
      schema_unref(w->cur);
      w->cur = ws;
      w->stats.schema_updates++;
      if (changed) *changed = true;
    }
  }
  pthread_mutex_unlock(&w->mu);
  trb_bq_table_deinit(&t);
  return code;
}

void trb_bq_writer_get_stats(trb_bq_writer_t *w, trb_bq_writer_stats_t *out) {
  pthread_mutex_lock(&w->mu);
  *out = w->stats;
  pthread_mutex_unlock(&w->mu);
}

size_t trb_bq_writer_pending(trb_bq_writer_t *w) {
  pthread_mutex_lock(&w->mu);
  size_t n = w->n_pending_appends;
  pthread_mutex_unlock(&w->mu);
  return n;
}

grpc_status_code trb_bq_writer_finalize(trb_bq_writer_t *w,
                                        int64_t *row_count, trb_status_t *st) {
  if (!w->committed)
    return trb_status_set(st, GRPC_STATUS_FAILED_PRECONDITION,
                          "finalize: not supported on _default");
  if (trb_bq_writer_pending(w))
    return trb_status_set(st, GRPC_STATUS_FAILED_PRECONDITION,
                          "finalize: appends are pending");
  return trb_bq_rpc_finalize(w->loop, w->ch, w->stream, row_count, st);
}

grpc_status_code trb_bq_writer_flush(trb_bq_writer_t *w, int64_t offset,
                                     int64_t *flushed_offset, trb_status_t *st) {
  if (!w->buffered)
    return trb_status_set(st, GRPC_STATUS_FAILED_PRECONDITION,
                          "flush: only BUFFERED streams are flushed");
  if (offset < 0)
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT, "flush: offset %lld < 0",
                          (long long)offset);
  pthread_mutex_lock(&w->mu);
  char *name = trb_strdup(w->stream);
  pthread_mutex_unlock(&w->mu);
  if (!name) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  grpc_status_code code = trb_bq_rpc_flush(w->loop, w->ch, name, offset, flushed_offset, st);
  trb_free(name);
  return code;
}

/* Keep a retired string until destroy (trb_bq_writer_stream's pointers
 * stay valid). Lock held. */
static void retire(trb_bq_writer_t *w, char *s) {
  char **n = trb_realloc(w->retired, (w->n_retired + 1) * sizeof *n);
  if (!n) abort();
  w->retired = n;
  w->retired[w->n_retired++] = s;
}

/* Give the chunks queued since the rotation began back to the old stream:
 * their offsets continue after its rows. Lock held. */
static void rotation_abort(trb_bq_writer_t *w) {
  for (chunk_t *c = w->head; c; c = c->next) {
    if (c->epoch != w->append_epoch) continue;
    c->offset += w->rot_old_next;
    c->epoch = w->stream_epoch;
  }
  w->next_offset += w->rot_old_next;
  w->append_epoch = w->stream_epoch;
  w->rotating = false;
  w->hold_connect = false;
  w->connect_at_ms = now_ms();
  pthread_cond_broadcast(&w->cv);
}

grpc_status_code trb_bq_writer_rotate(trb_bq_writer_t *w, int64_t *row_count,
                                      char **old_stream, trb_status_t *st) {
  if (old_stream) *old_stream = NULL;
  if (!w->committed)
    return trb_status_set(st, GRPC_STATUS_FAILED_PRECONDITION,
                          "rotate: not supported on _default");
  pthread_mutex_lock(&w->mu);
  if (w->rotating || w->closing || w->fatal) {
    grpc_status_code c = trb_status_set(
        st, GRPC_STATUS_FAILED_PRECONDITION, "rotate: %s",
        w->rotating ? "a rotation is running" : w->closing ? "closing" : w->last_msg);
    pthread_mutex_unlock(&w->mu);
    return c;
  }
  /* From here on appends go to the next stream, from offset 0. */
  w->rotating = true;
  w->rot_old_next = w->next_offset;
  w->next_offset = 0;
  w->append_epoch++;
  /* Wait for the old stream's requests to be answered (or failed). */
  while (!w->fatal && !w->closing && w->head && w->head->epoch == w->stream_epoch)
    pthread_cond_wait(&w->cv, &w->mu);
  if (w->fatal || w->closing) {
    grpc_status_code c = trb_status_set(st, GRPC_STATUS_FAILED_PRECONDITION, "rotate: %s",
                                        w->closing ? "closing" : w->last_msg);
    rotation_abort(w);
    pthread_mutex_unlock(&w->mu);
    return c;
  }
  /* Close the old stream's connection; no new one until the swap. */
  w->hold_connect = true;
  reset_conn(w, 0);
  char *old = trb_strdup(w->stream);
  pthread_mutex_unlock(&w->mu);
  if (!old) {
    pthread_mutex_lock(&w->mu);
    rotation_abort(w);
    pthread_mutex_unlock(&w->mu);
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  }
  grpc_status_code code = trb_bq_rpc_finalize(w->loop, w->ch, old, row_count, st);
  if (code != GRPC_STATUS_OK) {
    /* The old stream still takes appends: carry on there. */
    pthread_mutex_lock(&w->mu);
    rotation_abort(w);
    pthread_mutex_unlock(&w->mu);
    trb_free(old);
    return code;
  }
  char *name = NULL;
  trb_bq_table_t t;
  code = trb_bq_rpc_open_stream(w->loop, w->ch, w->table, w->stream_type, &name, &t, st);
  wschema_t *ws = NULL;
  char *routing = NULL;
  if (code == GRPC_STATUS_OK && asprintf(&routing, "write_stream=%s", name) < 0) {
    routing = NULL;
    code = trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  }
  append_t *done = NULL;
  pthread_mutex_lock(&w->mu);
  if (code == GRPC_STATUS_OK && !trb_bq_schema_equal(&t, &w->cur->table) &&
      schema_new(&t, &ws, st) == GRPC_STATUS_OK) {
    schema_unref(w->cur); /* the new stream's schema is newer */
    w->cur = ws;
    w->stats.schema_updates++;
  }
  if (code != GRPC_STATUS_OK) {
    /* The old stream is finalized and there is no new one: the queued
     * appends cannot be written. */
    w->fatal = true;
    w->last_code = code;
    snprintf(w->last_msg, sizeof w->last_msg, "%s", st ? st->msg : "rotate failed");
    fail_all(w, code, w->last_msg, &done);
    w->rotating = false;
    w->hold_connect = false;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    finish_list(done);
    free(routing);
    trb_free(name);
    trb_bq_table_deinit(&t);
    trb_free(old);
    return code;
  }
  retire(w, w->stream);
  retire(w, w->routing);
  w->stream = name;
  w->routing = trb_strdup(routing);
  free(routing);
  if (!w->routing) abort();
  w->stream_epoch = w->append_epoch;
  w->rotating = false;
  w->hold_connect = false;
  w->want_connect = true;
  w->connect_at_ms = now_ms();
  w->stats.rotations++;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
  trb_bq_table_deinit(&t);
  if (old_stream) *old_stream = old;
  else trb_free(old);
  return GRPC_STATUS_OK;
}

void trb_bq_writer_destroy(trb_bq_writer_t *w) {
  if (!w) return;
  append_t *done = NULL;
  pthread_mutex_lock(&w->mu);
  w->closing = true;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
  if (w->sup_started) pthread_join(w->sup, NULL);
  pthread_mutex_lock(&w->mu);
  if (w->conn) {
    trb_rpc_stream_cancel(w->conn->s);
    w->conn = NULL;
  }
  w->gen++;
  while (w->live_conns > 0) pthread_cond_wait(&w->cv, &w->mu);
  fail_all(w, GRPC_STATUS_CANCELLED, "writer destroyed", &done);
  pthread_mutex_unlock(&w->mu);
  finish_list(done);
  schema_unref(w->conn_schema);
  schema_unref(w->cur);
  for (size_t i = 0; i < w->n_retired; i++) trb_free(w->retired[i]);
  trb_free(w->retired);
  trb_free(w->table);
  trb_free(w->stream);
  trb_free(w->routing);
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
  trb_free(w);
}
