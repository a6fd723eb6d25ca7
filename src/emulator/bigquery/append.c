/*
 * append.c — AppendRows (bidirectional stream): first-request rules, writer
 * schema plans, row decoding, offsets, ordered in-stream responses, and one
 * db op per request answered from its done callback.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "google/cloud/bigquery/storage/v1/storage.pb.h"
#include "src/bigquery/default_expr.h"
#include "src/common/alloc.h"
#include "src/common/clock.h"
#include "src/emulator/bigquery/bq_internal.h"
#include "src/rpc/details.h"
#include "src/rpc/pb.h"
#include "src/rpc/pb_view.h"

#define M_APPEND "/google.cloud.bigquery.storage.v1.BigQueryWrite/AppendRows"
#define SE(x) google_cloud_bigquery_storage_v1_StorageError_StorageErrorCode_##x
#define MVI(x) google_cloud_bigquery_storage_v1_AppendRowsRequest_MissingValueInterpretation_##x
#define HIGH_WATER 256 /* requests in flight before reading pauses */
#define LOW_WATER 64

typedef google_cloud_bigquery_storage_v1_AppendRowsRequest req_t;
typedef google_cloud_bigquery_storage_v1_AppendRowsResponse resp_t;

struct bq_conn_s {
  trb_bqemu_t *bq;
  trb_rpc_server_call_t *call;
  pthread_mutex_t mu; /* guards the five flags and `outstanding` */
  bool finished, done_seen, half_closed, paused;
  int outstanding;
  /* server-thread (serialized callbacks) state */
  bool first_seen;
  bq_stream_t *stream;
  bool has_desc;
  google_protobuf_DescriptorProto desc;
  trb_rowdec_plan_t *plan;
  bq_table_t *plan_table;
  const trb_bq_table_t *plan_def; /* the definition the plan was built for */
  /* plan_table->schema_ver the writer schema is known to be current for:
   * while it is below the table's, OK responses carry updated_schema. */
  uint64_t desc_ver;
  int missing_default; /* sticky default_missing_value_interpretation */
  bq_conn_t *prev, *next; /* in bq->conns, guarded by bq->mu */
};

typedef struct append_op_s {
  bq_conn_t *conn;
  bq_stream_t *stream; /* NULL: only deliver `resp` in order */
  uint64_t epoch;
  int64_t start;
  size_t n_rows, n_cols;
  uint8_t *req;
  trb_bq_value_t *vals;
  trb_buf_t text;
  uint8_t *resp; /* pre-encoded response */
  size_t resp_len;
} append_op_t;

static void op_free(append_op_t *op) {
  trb_free(op->req);
  trb_free(op->vals);
  trb_buf_deinit(&op->text);
  trb_free(op->resp);
  trb_free(op);
}

static void conn_free(bq_conn_t *c) {
  trb_rowdec_plan_destroy(c->plan);
  if (c->has_desc) trb_pb_release(google_protobuf_DescriptorProto_fields, &c->desc);
  pthread_mutex_destroy(&c->mu);
  trb_free(c);
}

/* Finish the call once (any thread). */
static void conn_finish(bq_conn_t *c, grpc_status_code code, const char *msg) {
  pthread_mutex_lock(&c->mu);
  bool doit = !c->finished;
  c->finished = true;
  pthread_mutex_unlock(&c->mu);
  if (doit) trb_rpc_server_call_finish(c->call, code, msg, NULL, 0, NULL, 0);
}

void trb_bqemu_drop_conns(trb_bqemu_t *bq, grpc_status_code code, const char *message) {
  pthread_mutex_lock(&bq->mu);
  for (bq_conn_t *c = bq->conns; c; c = c->next) conn_finish(c, code, message);
  pthread_mutex_unlock(&bq->mu);
}

/* Deliver one response for a request that was counted in `outstanding`. */
static void conn_respond(bq_conn_t *c, const uint8_t *data, size_t len) {
  pthread_mutex_lock(&c->mu);
  if (!c->finished && data) trb_rpc_server_call_write(c->call, data, len);
  c->outstanding--;
  if (c->paused && c->outstanding <= LOW_WATER && !c->finished) {
    c->paused = false;
    trb_rpc_server_call_read_resume(c->call);
  }
  bool fin = c->half_closed && c->outstanding == 0 && !c->finished;
  if (fin) c->finished = true;
  bool free_now = c->done_seen && c->outstanding == 0;
  pthread_mutex_unlock(&c->mu);
  if (fin) trb_rpc_server_call_finish(c->call, GRPC_STATUS_OK, NULL, NULL, 0, NULL, 0);
  if (free_now) conn_free(c);
}

/* ---- responses ---------------------------------------------------------- */

typedef struct row_err_s {
  google_cloud_bigquery_storage_v1_RowError *items;
  pb_size_t n;
} row_err_t;

static bool encode_error(grpc_status_code code, const char *msg, int se_code,
                         const char *entity, const char *stream_name,
                         const row_err_t *rows, uint8_t **out, size_t *out_len) {
  resp_t r;
  memset(&r, 0, sizeof r);
  r.which_response = google_cloud_bigquery_storage_v1_AppendRowsResponse_error_tag;
  r.response.error.code = code;
  r.response.error.message = (char *)msg;
  uint8_t *se_buf = NULL;
  size_t se_len = 0;
  google_protobuf_Any any;
  memset(&any, 0, sizeof any);
  if (se_code >= 0) {
    google_cloud_bigquery_storage_v1_StorageError se =
        google_cloud_bigquery_storage_v1_StorageError_init_zero;
    se.code = (google_cloud_bigquery_storage_v1_StorageError_StorageErrorCode)se_code;
    se.entity = (char *)entity;
    se.error_message = (char *)msg;
    if (trb_pb_encode(google_cloud_bigquery_storage_v1_StorageError_fields, &se, &se_buf,
                      &se_len, NULL) == GRPC_STATUS_OK) {
      any.type_url = (char *)TRB_RPC_TYPE_URL_PREFIX
          "google.cloud.bigquery.storage.v1.StorageError";
      any.value.data = se_buf;
      any.value.len = se_len;
      r.response.error.details_count = 1;
      r.response.error.details = &any;
    }
  }
  if (rows) {
    r.row_errors_count = rows->n;
    r.row_errors = rows->items;
  }
  r.write_stream = (char *)stream_name;
  bool ok = trb_pb_encode(google_cloud_bigquery_storage_v1_AppendRowsResponse_fields, &r, out,
                          out_len, NULL) == GRPC_STATUS_OK;
  trb_free(se_buf);
  return ok;
}

/* An OK response; mu held. When the table's schema changed after the
 * connection's writer schema was set, it carries updated_schema (the whole
 * new TableSchema, as BigQuery does, until a writer schema that has every
 * top-level column arrives). */
static bool encode_ok(const bq_conn_t *c, const bq_stream_t *s, int64_t start, uint8_t **out,
                      size_t *out_len) {
  resp_t r;
  memset(&r, 0, sizeof r);
  if (c->desc_ver < s->table->schema_ver) {
    if (trb_bq_table_to_proto(s->table->def, &r.updated_schema, NULL) != GRPC_STATUS_OK)
      return false;
    r.has_updated_schema = true;
  }
  r.which_response = google_cloud_bigquery_storage_v1_AppendRowsResponse_append_result_tag;
  if (s->type != BQ_DEFAULT_TYPE) {
    r.response.append_result.has_offset = true;
    r.response.append_result.offset.value = start;
  }
  r.write_stream = s->name;
  bool ok = trb_pb_encode(google_cloud_bigquery_storage_v1_AppendRowsResponse_fields, &r, out,
                          out_len, NULL) == GRPC_STATUS_OK;
  if (r.has_updated_schema)
    trb_pb_release(google_cloud_bigquery_storage_v1_TableSchema_fields, &r.updated_schema);
  return ok;
}

/* ---- db op -------------------------------------------------------------- */

static grpc_status_code append_apply(trb_db_t *db, sqlite3 *conn, void *user,
                                     trb_status_t *st) {
  (void)conn;
  append_op_t *op = user;
  bq_stream_t *s = op->stream;
  if (!s) return GRPC_STATUS_OK;
  trb_bqemu_t *bq = op->conn->bq;
  bq_table_t *t = s->table;
  if (s->type != BQ_DEFAULT_TYPE) {
    pthread_mutex_lock(&bq->mu);
    bool ok = op->epoch == s->epoch;
    pthread_mutex_unlock(&bq->mu);
    if (!ok)
      return trb_status_set(st, GRPC_STATUS_ABORTED,
                            "Append aborted because of a prior failed append on %s; "
                            "resend from the expected offset", s->name);
  }
  bool staged = s->type == BQ_PENDING || s->type == BQ_BUFFERED;
  sqlite3_stmt *q = trb_db_stmt(db, staged ? t->stage_sql : t->insert_sql, st);
  if (!q) return st ? st->code : GRPC_STATUS_INTERNAL;
  const char *base = op->text.data;
  for (size_t i = 0; i < op->n_rows; i++) {
    if (staged) {
      sqlite3_bind_text(q, 1, s->name, -1, SQLITE_STATIC);
      sqlite3_bind_int64(q, 2, op->start + (int64_t)i);
    }
    trb_bqemu_bind_row(q, staged ? 3 : 1, op->vals + i * op->n_cols, op->n_cols, base);
    if (sqlite3_step(q) != SQLITE_DONE) return trb_db_error(db, "append rows", st);
    sqlite3_reset(q);
  }
  if (s->type != BQ_DEFAULT_TYPE) {
    q = trb_db_stmt(db, "UPDATE _bq_streams SET next_offset = ?2 WHERE name = ?1", st);
    if (!q) return st ? st->code : GRPC_STATUS_INTERNAL;
    sqlite3_bind_text(q, 1, s->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, op->start + (int64_t)op->n_rows);
    if (sqlite3_step(q) != SQLITE_DONE) return trb_db_error(db, "stream offset", st);
  }
  return GRPC_STATUS_OK;
}

static void append_done(void *user, grpc_status_code code, const trb_status_t *st) {
  append_op_t *op = user;
  bq_conn_t *c = op->conn;
  bq_stream_t *s = op->stream;
  if (s && s->type != BQ_DEFAULT_TYPE) {
    trb_bqemu_t *bq = c->bq;
    pthread_mutex_lock(&bq->mu);
    if (code == GRPC_STATUS_OK) {
      int64_t end = op->start + (int64_t)op->n_rows;
      if (end > s->committed) s->committed = end;
    } else if (op->epoch == s->epoch) {
      s->epoch++;
      s->next = s->committed;
    }
    pthread_mutex_unlock(&bq->mu);
  }
  if (code == GRPC_STATUS_OK && s && trb_faults_take_drop_after_write(c->bq->faults, M_APPEND)) {
    /* Fault: the rows are written, the reply is lost with the stream. */
    conn_finish(c, GRPC_STATUS_UNAVAILABLE,
                "stream dropped after the append was written (fault injection)");
    conn_respond(c, NULL, 0);
  } else if (code == GRPC_STATUS_OK) {
    conn_respond(c, op->resp, op->resp_len);
  } else {
    uint8_t *b = NULL;
    size_t n = 0;
    encode_error(code, st ? st->msg : "storage error", -1, NULL, s ? s->name : NULL, NULL, &b,
                 &n);
    conn_respond(c, b, n);
    trb_free(b);
  }
  op_free(op);
}

/* Count a request in flight; pause reading at the high-water mark. */
static void conn_hold(bq_conn_t *c) {
  pthread_mutex_lock(&c->mu);
  c->outstanding++;
  if (!c->paused && c->outstanding >= HIGH_WATER && !c->finished) {
    c->paused = true;
    trb_rpc_server_call_read_pause(c->call);
  }
  pthread_mutex_unlock(&c->mu);
}

static void submit(bq_conn_t *c, append_op_t *op) {
  conn_hold(c);
  trb_status_t st;
  if (trb_db_submit(c->bq->db, append_apply, append_done, op, &st) != GRPC_STATUS_OK) {
    append_done(op, st.code, &st);
  }
}

/* Answer a request with an error, in order behind any request in flight. */
static void respond_error(bq_conn_t *c, grpc_status_code code, const char *msg, int se_code,
                          const char *entity, const row_err_t *rows) {
  const char *sname = c->stream ? c->stream->name : NULL;
  append_op_t *op = trb_calloc(1, sizeof *op);
  if (!op || !encode_error(code, msg, se_code, entity, sname, rows, &op->resp, &op->resp_len)) {
    trb_free(op);
    conn_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  op->conn = c;
  pthread_mutex_lock(&c->mu);
  bool direct = c->outstanding == 0;
  if (direct && !c->finished) trb_rpc_server_call_write(c->call, op->resp, op->resp_len);
  pthread_mutex_unlock(&c->mu);
  if (direct) {
    op_free(op);
    return;
  }
  submit(c, op);
}

/* ---- request handling --------------------------------------------------- */

static void release_req(req_t *r) {
  trb_pb_view_list_free(&r->proto_rows.rows.serialized_rows);
  trb_pb_release(google_cloud_bigquery_storage_v1_AppendRowsRequest_fields, r);
}

static bool build_plan(bq_conn_t *c, bq_table_t *t, char *err, size_t errlen, bool *extra) {
  trb_rowdec_plan_destroy(c->plan);
  c->plan = NULL;
  c->plan_table = NULL;
  *extra = false;
  if (!c->has_desc) {
    snprintf(err, errlen, "The first request on a connection (or for a new table) must carry "
                          "proto_rows.writer_schema");
    return false;
  }
  trb_status_t st;
  pthread_mutex_lock(&c->bq->mu);
  const trb_bq_table_t *def = t->def; /* never freed before the table */
  uint64_t ver = t->schema_ver;
  pthread_mutex_unlock(&c->bq->mu);
  if (trb_rowdec_plan_create(&c->desc, def, &c->plan, extra, &st) != GRPC_STATUS_OK) {
    snprintf(err, errlen, "%s", st.msg);
    return false;
  }
  c->plan_table = t;
  c->plan_def = def;
  /* A writer schema with fewer top-level fields than the table is behind
   * it (a client that missed the updated_schema of an earlier connection). */
  c->desc_ver = (size_t)c->desc.field_count >= def->n_fields ? ver : 0;
  return true;
}

/* ---- missing values (fact 23) ------------------------------------------ */

/* Column defaults of one request: which columns DEFAULT_VALUE fills and
 * with what. Text values live in the op's buffer (offsets stay valid). */
typedef struct fill_s {
  size_t n;
  bool *fillable;          /* n flags for trb_rowdec_decode_fill */
  trb_bq_default_t *dflt;  /* n parsed defaults */
  size_t *text_off;        /* TEXT / CURRENT_*: offset in op->text */
  size_t *text_len;
} fill_t;

static void fill_deinit(fill_t *f) {
  for (size_t i = 0; f->dflt && i < f->n; i++) trb_bq_default_deinit(&f->dflt[i]);
  trb_free(f->fillable);
  trb_free(f->dflt);
  trb_free(f->text_off);
  trb_free(f->text_len);
  memset(f, 0, sizeof *f);
}

/* The interpretation of missing column `i` for this request. */
static int column_mvi(const req_t *r, const trb_bq_field_t *col, int sticky) {
  for (pb_size_t k = 0; k < r->missing_value_interpretations_count; k++) {
    const char *key = r->missing_value_interpretations[k].key;
    if (key && strcasecmp(key, col->name) == 0)
      return (int)r->missing_value_interpretations[k].value;
  }
  return sticky;
}

/* Decide per column; parse the defaults of DEFAULT_VALUE columns and place
 * literal and CURRENT_* texts (evaluated once per request) in `text`.
 * Returns false on out of memory (or a stored default that no longer
 * parses: message in `err`). */
static bool fill_init(fill_t *f, const req_t *r, const trb_bq_table_t *def, int sticky,
                      trb_buf_t *text, char *err, size_t errlen) {
  memset(f, 0, sizeof *f);
  bool any = false;
  for (size_t i = 0; i < def->n_fields; i++) {
    if (def->fields[i].default_value_expression &&
        column_mvi(r, &def->fields[i], sticky) == MVI(DEFAULT_VALUE))
      any = true;
  }
  if (!any) return true;
  f->n = def->n_fields;
  f->fillable = trb_calloc(f->n, sizeof *f->fillable);
  f->dflt = trb_calloc(f->n, sizeof *f->dflt);
  f->text_off = trb_calloc(f->n, sizeof *f->text_off);
  f->text_len = trb_calloc(f->n, sizeof *f->text_len);
  if (!f->fillable || !f->dflt || !f->text_off || !f->text_len) {
    snprintf(err, errlen, "out of memory");
    return false;
  }
  int64_t now = trb_clock_wall_us();
  for (size_t i = 0; i < f->n; i++) {
    const trb_bq_field_t *col = &def->fields[i];
    if (!col->default_value_expression ||
        column_mvi(r, col, sticky) != MVI(DEFAULT_VALUE))
      continue;
    trb_status_t st;
    if (trb_bq_default_parse(col->default_value_expression, col, &f->dflt[i], &st)) {
      snprintf(err, errlen, "%s", st.msg);
      return false;
    }
    trb_bq_default_t *d = &f->dflt[i];
    if (d->kind == TRB_BQ_DEFAULT_NULL) continue; /* reads as NULL: not filled */
    f->fillable[i] = true;
    const char *t = NULL;
    size_t tl = 0;
    char fn[TRB_BQ_DEFAULT_FN_BUF];
    if (d->kind == TRB_BQ_DEFAULT_TEXT) {
      t = d->text;
      tl = d->text_len;
    } else if (d->kind >= TRB_BQ_DEFAULT_CURRENT_TIMESTAMP &&
               d->kind <= TRB_BQ_DEFAULT_CURRENT_TIME) {
      tl = trb_bq_default_eval_fn(d->kind, now, NULL, fn);
      t = fn;
    } else {
      continue;
    }
    f->text_off[i] = text->len;
    f->text_len[i] = tl;
    if (trb_buf_append(text, t, tl)) {
      snprintf(err, errlen, "out of memory");
      return false;
    }
  }
  return true;
}

/* Fill the missing (NULL) fillable columns of one decoded row. */
static bool fill_row(const fill_t *f, trb_bq_value_t *v, trb_buf_t *text) {
  for (size_t i = 0; i < f->n; i++) {
    if (!f->fillable[i] || v[i].kind != TRB_BQV_NULL) continue;
    const trb_bq_default_t *d = &f->dflt[i];
    switch (d->kind) {
      case TRB_BQ_DEFAULT_INT:
        v[i].kind = TRB_BQV_INT;
        v[i].u.i = d->i;
        break;
      case TRB_BQ_DEFAULT_REAL:
        v[i].kind = TRB_BQV_REAL;
        v[i].u.d = d->d;
        break;
      case TRB_BQ_DEFAULT_GENERATE_UUID: {
        uint8_t rnd[16];
        char u[TRB_BQ_DEFAULT_FN_BUF];
        if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) return false;
        size_t ul = trb_bq_default_eval_fn(d->kind, 0, rnd, u);
        v[i].kind = TRB_BQV_BTEXT;
        v[i].u.off = text->len;
        v[i].len = (uint32_t)ul;
        if (trb_buf_append(text, u, ul)) return false;
        break;
      }
      default:
        v[i].kind = TRB_BQV_BTEXT;
        v[i].u.off = f->text_off[i];
        v[i].len = (uint32_t)f->text_len[i];
        break;
    }
  }
  return true;
}

static void handle(bq_conn_t *c, const uint8_t *data, size_t len) {
  trb_bqemu_t *bq = c->bq;
  char msg[TRB_STATUS_MSG_MAX];
  if (bq->faults) {
    grpc_status_code fc;
    int lat = 0;
    bool fail = trb_faults_take(bq->faults, M_APPEND, &fc, msg, sizeof msg, &lat);
    if (lat > 0) usleep((useconds_t)lat * 1000);
    if (fail) {
      respond_error(c, fc, msg, -1, NULL, NULL);
      return;
    }
  }
  if (len >= TRB_BQEMU_MAX_REQUEST_BYTES) {
    snprintf(msg, sizeof msg, "AppendRows request too large: %zu bytes; the limit is %d",
             len, TRB_BQEMU_MAX_REQUEST_BYTES);
    respond_error(c, GRPC_STATUS_INVALID_ARGUMENT, msg, -1, NULL, NULL);
    return;
  }
  append_op_t *op = trb_calloc(1, sizeof *op);
  if (!op || !(op->req = trb_malloc(len ? len : 1))) {
    trb_free(op);
    conn_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  op->conn = c;
  if (len) memcpy(op->req, data, len);
  req_t r;
  trb_status_t st;
  memset(&r, 0, sizeof r); /* the row view list is a callback field */
  if (trb_pb_decode(google_cloud_bigquery_storage_v1_AppendRowsRequest_fields, op->req, len, &r,
                    &st) != GRPC_STATUS_OK) {
    release_req(&r);
    op_free(op);
    snprintf(msg, sizeof msg, "Malformed AppendRowsRequest: %s", st.msg);
    respond_error(c, GRPC_STATUS_INVALID_ARGUMENT, msg, -1, NULL, NULL);
    return;
  }
  grpc_status_code ecode = GRPC_STATUS_INVALID_ARGUMENT;
  int se = -1;
  const char *entity = NULL;
  /* write_stream: required first; switching re-resolves. */
  if (r.write_stream && *r.write_stream &&
      (!c->stream || strcmp(r.write_stream, c->stream->name) != 0)) {
    pthread_mutex_lock(&bq->mu);
    bq_stream_t *s = trb_bqemu_find_stream(bq, r.write_stream);
    pthread_mutex_unlock(&bq->mu);
    if (!s) {
      snprintf(msg, sizeof msg, "Requested stream not found: %s", r.write_stream);
      ecode = GRPC_STATUS_NOT_FOUND;
      se = SE(STREAM_NOT_FOUND);
      entity = r.write_stream;
      goto fail;
    }
    if (!r.has_proto_rows || !r.proto_rows.has_writer_schema) {
      /* fact 12: a new destination needs the writer schema again */
      snprintf(msg, sizeof msg, "proto_rows.writer_schema is required in the first "
                                "AppendRowsRequest for each write_stream; %s names a new "
                                "destination without it", r.write_stream);
      goto fail;
    }
    c->stream = s;
  } else if (!c->stream) {
    snprintf(msg, sizeof msg, "write_stream is required in the first AppendRowsRequest of a "
                              "connection");
    goto fail;
  }
  c->first_seen = true;
  bq_stream_t *s = c->stream;
  if (r.has_arrow_rows) {
    snprintf(msg, sizeof msg, "arrow_rows are not supported by the emulator; send proto_rows");
    goto fail;
  }
  if (!r.has_proto_rows) {
    snprintf(msg, sizeof msg, "proto_rows is required");
    goto fail;
  }
  bool extra = false;
  if (r.proto_rows.has_writer_schema) {
    if (!r.proto_rows.writer_schema.has_proto_descriptor) {
      snprintf(msg, sizeof msg, "writer_schema.proto_descriptor is required");
      goto fail;
    }
    if (c->has_desc) trb_pb_release(google_protobuf_DescriptorProto_fields, &c->desc);
    c->desc = r.proto_rows.writer_schema.proto_descriptor;
    memset(&r.proto_rows.writer_schema.proto_descriptor, 0, sizeof c->desc);
    c->has_desc = true;
    if (!build_plan(c, s->table, msg, sizeof msg, &extra)) goto plan_fail;
  } else if (c->plan_table != s->table || !c->plan) {
    if (!build_plan(c, s->table, msg, sizeof msg, &extra)) goto plan_fail;
  }
  /* missing_value_interpretations (this request only): top-level columns,
   * NULL_VALUE or DEFAULT_VALUE. */
  for (pb_size_t i = 0; i < r.missing_value_interpretations_count; i++) {
    const char *k = r.missing_value_interpretations[i].key ? r.missing_value_interpretations[i].key : "";
    int v = (int)r.missing_value_interpretations[i].value;
    if (trb_bq_field_find(c->plan_def->fields, c->plan_def->n_fields, k, strlen(k)) < 0) {
      snprintf(msg, sizeof msg, "missing_value_interpretations: %s is not a top-level column", k);
      goto fail;
    }
    if (v != MVI(NULL_VALUE) && v != MVI(DEFAULT_VALUE)) {
      snprintf(msg, sizeof msg, "missing_value_interpretations[%s]: want NULL_VALUE or "
                                "DEFAULT_VALUE", k);
      goto fail;
    }
  }
  /* default_missing_value_interpretation: sticky on the connection from
   * this request on (proto3: UNSPECIFIED means "not set here"). */
  int dmvi = (int)r.default_missing_value_interpretation;
  if (dmvi != 0 && dmvi != MVI(NULL_VALUE) && dmvi != MVI(DEFAULT_VALUE)) {
    snprintf(msg, sizeof msg, "default_missing_value_interpretation: unknown value %d; want "
                              "NULL_VALUE or DEFAULT_VALUE", dmvi);
    goto fail;
  }
  if (dmvi != 0) c->missing_default = dmvi;
  if (r.has_offset && s->type == BQ_DEFAULT_TYPE) {
    snprintf(msg, sizeof msg, "offset must not be set when appending to the _default stream %s",
             s->name);
    goto fail;
  }
  /* decode rows */
  const trb_pb_view_list_t *rows = &r.proto_rows.rows.serialized_rows;
  size_t n_cols = trb_rowdec_plan_columns(c->plan);
  op->n_rows = rows->count;
  op->n_cols = n_cols;
  op->vals = trb_malloc((rows->count ? rows->count : 1) * n_cols * sizeof *op->vals);
  if (!op->vals) {
    release_req(&r);
    op_free(op);
    conn_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  fill_t fill;
  if (!fill_init(&fill, &r, c->plan_def, c->missing_default, &op->text, msg,
                 sizeof msg)) {
    fill_deinit(&fill);
    release_req(&r);
    op_free(op);
    conn_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, msg);
    return;
  }
  row_err_t re = {NULL, 0};
  char (*re_msgs)[TRB_STATUS_MSG_MAX] = NULL;
  for (size_t i = 0; i < rows->count; i++) {
    trb_bq_value_t *rv = op->vals + i * n_cols;
    if (trb_rowdec_decode_fill(c->plan, rows->items[i].data, rows->items[i].len,
                               fill.fillable, rv, &op->text, &st) == GRPC_STATUS_OK) {
      if (!fill.n || fill_row(&fill, rv, &op->text)) continue;
      st.code = GRPC_STATUS_RESOURCE_EXHAUSTED;
    }
    if (st.code == GRPC_STATUS_RESOURCE_EXHAUSTED) {
      fill_deinit(&fill);
      trb_free(re.items);
      trb_free(re_msgs);
      release_req(&r);
      op_free(op);
      conn_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
      return;
    }
    if (re.n < 1000) {
      if (!re.items) {
        re.items = trb_calloc(1000, sizeof *re.items);
        re_msgs = trb_calloc(1000, sizeof *re_msgs);
        if (!re.items || !re_msgs) {
          fill_deinit(&fill);
          trb_free(re.items);
          trb_free(re_msgs);
          release_req(&r);
          op_free(op);
          conn_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
          return;
        }
      }
      snprintf(re_msgs[re.n], TRB_STATUS_MSG_MAX, "%s", st.msg);
      re.items[re.n].index = (int64_t)i;
      re.items[re.n].code = google_cloud_bigquery_storage_v1_RowError_RowErrorCode_FIELDS_ERROR;
      re.items[re.n].message = re_msgs[re.n];
      re.n++;
    }
  }
  fill_deinit(&fill);
  if (re.n) {
    snprintf(msg, sizeof msg, "Errors found while processing rows. Please refer to the "
                              "row_errors field for details. The list may not be complete "
                              "because of the size limitations. Entity: %s", s->name);
    release_req(&r);
    op_free(op);
    respond_error(c, GRPC_STATUS_INVALID_ARGUMENT, msg, -1, NULL, &re);
    trb_free(re.items);
    trb_free(re_msgs);
    return;
  }
  /* offsets and stream state */
  pthread_mutex_lock(&bq->mu);
  if (s->state != BQ_OPEN) {
    pthread_mutex_unlock(&bq->mu);
    snprintf(msg, sizeof msg, "Stream has been finalized");
    se = SE(STREAM_FINALIZED);
    entity = s->name;
    goto fail;
  }
  if (s->type != BQ_DEFAULT_TYPE && r.has_offset && r.offset.value != s->next) {
    bool within = r.offset.value < s->next;
    snprintf(msg, sizeof msg, "The offset is %s stream, expected offset %" PRId64
             ", received %" PRId64, within ? "within" : "beyond", s->next, r.offset.value);
    pthread_mutex_unlock(&bq->mu);
    ecode = within ? GRPC_STATUS_ALREADY_EXISTS : GRPC_STATUS_OUT_OF_RANGE;
    se = within ? SE(OFFSET_ALREADY_EXISTS) : SE(OFFSET_OUT_OF_RANGE);
    entity = s->name;
    goto fail;
  }
  op->start = s->next;
  op->epoch = s->epoch;
  op->stream = s;
  if (!encode_ok(c, s, op->start, &op->resp, &op->resp_len)) {
    pthread_mutex_unlock(&bq->mu);
    release_req(&r);
    op_free(op);
    conn_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  /* Reserve the offsets and queue the db op under one hold of bq->mu, so
   * the db applies appends, finalize, commit and flush in the order their
   * checks were made: with two connections on one stream, or a finalize,
   * BatchCommit or FlushRows arriving between the check and the queueing,
   * a later op could otherwise run first (next_offset going backwards;
   * rows staged after their commit or flush moved the staged rows, never
   * becoming visible). trb_db_submit does not block and the committer
   * holds no lock while it calls apply/done. */
  if (s->type != BQ_DEFAULT_TYPE) s->next += (int64_t)op->n_rows;
  conn_hold(c);
  trb_status_t sst;
  grpc_status_code sc = trb_db_submit(bq->db, append_apply, append_done, op, &sst);
  pthread_mutex_unlock(&bq->mu);
  release_req(&r);
  if (sc != GRPC_STATUS_OK) append_done(op, sc, &sst);
  return;
plan_fail:
  if (extra) {
    se = SE(SCHEMA_MISMATCH_EXTRA_FIELDS);
    entity = s->name;
  }
fail:
  respond_error(c, ecode, msg, se, entity, NULL); /* entity may point into r */
  release_req(&r);
  op_free(op);
}

/* ---- stream handler ----------------------------------------------------- */

static void on_start(void *user, trb_rpc_server_call_t *call) {
  trb_bqemu_t *bq = user;
  if (bq->faults) {
    grpc_status_code fc;
    char msg[256];
    int lat = 0;
    bool fail = trb_faults_take(bq->faults, M_APPEND, &fc, msg, sizeof msg, &lat);
    if (lat > 0) usleep((useconds_t)lat * 1000);
    if (fail) {
      trb_rpc_server_call_finish(call, fc, msg, NULL, 0, NULL, 0);
      return;
    }
  }
  bq_conn_t *c = trb_calloc(1, sizeof *c);
  if (!c) {
    trb_rpc_server_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL, 0,
                               NULL, 0);
    return;
  }
  c->bq = bq;
  c->call = call;
  pthread_mutex_init(&c->mu, NULL);
  pthread_mutex_lock(&bq->mu);
  if (bq->shutting_down) {
    pthread_mutex_unlock(&bq->mu);
    conn_free(c);
    trb_rpc_server_call_finish(call, GRPC_STATUS_UNAVAILABLE,
                               "The BigQuery emulator is shutting down", NULL, 0, NULL, 0);
    return;
  }
  c->next = bq->conns;
  if (bq->conns) bq->conns->prev = c;
  bq->conns = c;
  trb_rpc_server_call_set_user(call, c);
  pthread_mutex_unlock(&bq->mu);
}

static void on_message(void *user, trb_rpc_server_call_t *call, const uint8_t *data,
                       size_t len) {
  (void)user;
  bq_conn_t *c = trb_rpc_server_call_user(call);
  if (!c) return;
  pthread_mutex_lock(&c->mu);
  bool fin = c->finished;
  pthread_mutex_unlock(&c->mu);
  if (!fin) handle(c, data, len);
}

static void on_half_close(void *user, trb_rpc_server_call_t *call) {
  (void)user;
  bq_conn_t *c = trb_rpc_server_call_user(call);
  if (!c) return;
  pthread_mutex_lock(&c->mu);
  c->half_closed = true;
  bool fin = c->outstanding == 0 && !c->finished;
  if (fin) c->finished = true;
  pthread_mutex_unlock(&c->mu);
  if (fin) trb_rpc_server_call_finish(call, GRPC_STATUS_OK, NULL, NULL, 0, NULL, 0);
}

static void on_done(void *user, trb_rpc_server_call_t *call, bool cancelled) {
  (void)cancelled;
  trb_bqemu_t *bq = user;
  bq_conn_t *c = trb_rpc_server_call_user(call);
  if (!c) return;
  pthread_mutex_lock(&bq->mu);
  if (c->prev) c->prev->next = c->next;
  else bq->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  pthread_mutex_unlock(&bq->mu);
  pthread_mutex_lock(&c->mu);
  bool need_finish = !c->finished;
  c->finished = true;
  c->done_seen = true;
  bool free_now = c->outstanding == 0;
  pthread_mutex_unlock(&c->mu);
  if (need_finish)
    trb_rpc_server_call_finish(call, GRPC_STATUS_CANCELLED, "cancelled", NULL, 0, NULL, 0);
  if (free_now) conn_free(c);
}

grpc_status_code trb_bqemu_register_append(trb_bqemu_t *bq, trb_rpc_server_t *srv,
                                           trb_status_t *st) {
  trb_rpc_stream_handler_t h = {on_start, on_message, on_half_close, on_done};
  return trb_rpc_server_add_stream(srv, M_APPEND, &h, bq, st);
}
