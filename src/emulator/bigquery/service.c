/*
 * service.c — BigQuery Write emulator: state, storage layout, tables, and
 * the unary RPCs (CreateWriteStream, GetWriteStream, FinalizeWriteStream,
 * BatchCommitWriteStreams, FlushRows). AppendRows is in append.c.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "google/cloud/bigquery/storage/v1/storage.pb.h"
#include "google/cloud/bigquery/storage/v1/stream.pb.h"
#include "src/common/alloc.h"
#include "src/common/arena.h"
#include "src/common/clock.h"
#include "src/emulator/bigquery/bq_internal.h"
#include "src/rpc/details.h"
#include "src/rpc/pb.h"

#define SVC "/google.cloud.bigquery.storage.v1.BigQueryWrite/"
#define M_CREATE SVC "CreateWriteStream"
#define M_GET SVC "GetWriteStream"
#define M_FINALIZE SVC "FinalizeWriteStream"
#define M_COMMIT SVC "BatchCommitWriteStreams"
#define M_FLUSH SVC "FlushRows"

#define SE(x) google_cloud_bigquery_storage_v1_StorageError_StorageErrorCode_##x

static grpc_status_code oom(trb_status_t *st) {
  return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
}

char *trb_bqemu_db_path(const char *data_dir) {
  size_t n = strlen(data_dir) + sizeof "/bigquery.sqlite";
  char *p = trb_malloc(n);
  if (p) snprintf(p, n, "%s/bigquery.sqlite", data_dir);
  return p;
}

/* ---- names -------------------------------------------------------------- */

typedef struct rname_s {
  const char *project, *dataset, *table, *rest;
  size_t plen, dlen, tlen;
} rname_t;

static bool seg(const char **s, const char *lit, const char **v, size_t *len) {
  size_t n = strlen(lit);
  if (strncmp(*s, lit, n) != 0) return false;
  *v = *s + n;
  const char *e = strchr(*v, '/');
  *len = e ? (size_t)(e - *v) : strlen(*v);
  *s = *v + *len;
  return *len > 0;
}

/* "projects/P/datasets/D/tables/T" + rest. */
static bool parse_table_name(const char *s, rname_t *r) {
  if (!s) return false;
  return seg(&s, "projects/", &r->project, &r->plen) &&
         seg(&s, "/datasets/", &r->dataset, &r->dlen) &&
         seg(&s, "/tables/", &r->table, &r->tlen) && (r->rest = s, true);
}

static bool valid_ident(const char *s, size_t n) {
  if (n == 0 || n > 1024) return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_' || c == '-'))
      return false;
  }
  return true;
}

bq_table_t *trb_bqemu_find_table(trb_bqemu_t *bq, const char *d, size_t dl,
                                 const char *t, size_t tl) {
  for (bq_table_t *x = bq->tables; x; x = x->next) {
    if (strlen(x->dataset) == dl && strncmp(x->dataset, d, dl) == 0 &&
        strlen(x->table) == tl && strncmp(x->table, t, tl) == 0)
      return x;
  }
  return NULL;
}

static bq_table_t *table_of_name(trb_bqemu_t *bq, const rname_t *r) {
  if (r->plen != strlen(bq->project) ||
      strncmp(r->project, bq->project, r->plen) != 0)
    return NULL;
  return trb_bqemu_find_table(bq, r->dataset, r->dlen, r->table, r->tlen);
}

static size_t hash_name(const char *s) {
  uint64_t h = 1469598103934665603ULL;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ULL;
  return (size_t)h;
}

bq_stream_t *trb_bqemu_find_stream(trb_bqemu_t *bq, const char *name) {
  rname_t r;
  if (!parse_table_name(name, &r)) return NULL;
  if (strcmp(r.rest, "/_default") == 0 ||
      strcmp(r.rest, "/streams/_default") == 0) {
    bq_table_t *t = table_of_name(bq, &r);
    return t ? &t->dflt : NULL;
  }
  if (!bq->n_buckets) return NULL;
  for (bq_stream_t *s = bq->buckets[hash_name(name) % bq->n_buckets]; s;
       s = s->hnext)
    if (strcmp(s->name, name) == 0) return s;
  return NULL;
}

static bool stream_insert(trb_bqemu_t *bq, bq_stream_t *s) {
  if (bq->n_streams + 1 > bq->n_buckets * 2) {
    size_t nb = bq->n_buckets ? bq->n_buckets * 4 : 64;
    bq_stream_t **b = trb_calloc(nb, sizeof *b);
    if (!b) return false;
    for (size_t i = 0; i < bq->n_buckets; i++) {
      bq_stream_t *x = bq->buckets[i];
      while (x) {
        bq_stream_t *nx = x->hnext;
        size_t h = hash_name(x->name) % nb;
        x->hnext = b[h];
        b[h] = x;
        x = nx;
      }
    }
    trb_free(bq->buckets);
    bq->buckets = b;
    bq->n_buckets = nb;
  }
  size_t h = hash_name(s->name) % bq->n_buckets;
  s->hnext = bq->buckets[h];
  bq->buckets[h] = s;
  bq->n_streams++;
  return true;
}

static void stream_free(bq_stream_t *s) {
  if (!s) return;
  trb_free(s->name);
  trb_free(s);
}

/* ---- SQL layout --------------------------------------------------------- */

static int quote_ident(trb_buf_t *b, const char *s) {
  if (trb_buf_append(b, "\"", 1)) return -1;
  for (; *s; s++) {
    if (*s == '"' && trb_buf_append(b, "\"", 1)) return -1;
    if (trb_buf_append(b, s, 1)) return -1;
  }
  return trb_buf_append(b, "\"", 1);
}

static const char *sql_type(trb_bq_type_t t) {
  switch (t) {
    case TRB_BQ_TYPE_INT64: return "INTEGER";
    case TRB_BQ_TYPE_BOOL: return "BOOLEAN";
    case TRB_BQ_TYPE_DOUBLE: return "REAL";
    case TRB_BQ_TYPE_BYTES: return "BLOB";
    default: return "TEXT";
  }
}

/* Append `"c1","c2",...` of `d`. */
static int column_list(trb_buf_t *b, const trb_bq_table_t *d) {
  int e = 0;
  for (size_t i = 0; !e && i < d->n_fields; i++)
    e = (i && trb_buf_append_str(b, ",")) || quote_ident(b, d->fields[i].name);
  return e;
}

/* The per-table SQL statements for definition `d`. */
typedef struct table_sqls_s {
  char *insert_sql, *stage_sql, *move_sql, *unstage_sql;
} table_sqls_t;

static void sqls_free(table_sqls_t *q) {
  trb_free(q->insert_sql);
  trb_free(q->stage_sql);
  trb_free(q->move_sql);
  trb_free(q->unstage_sql);
  memset(q, 0, sizeof *q);
}

static bool build_sqls(const char *sql_name, const trb_bq_table_t *d, table_sqls_t *q) {
  memset(q, 0, sizeof *q);
  trb_buf_t b = TRB_BUF_INIT;
  char stage[1100];
  snprintf(stage, sizeof stage, "_staging.%s", sql_name);
  int e = trb_buf_append_str(&b, "INSERT INTO ") || quote_ident(&b, sql_name) ||
          trb_buf_append_str(&b, "(") || column_list(&b, d) ||
          trb_buf_append_str(&b, ") VALUES(");
  for (size_t i = 0; !e && i < d->n_fields; i++) e = trb_buf_append_str(&b, i ? ",?" : "?");
  e = e || trb_buf_append_str(&b, ")");
  if (e) goto fail;
  q->insert_sql = trb_buf_take(&b, NULL);
  e = trb_buf_append_str(&b, "INSERT INTO ") || quote_ident(&b, stage) ||
      trb_buf_append_str(&b, "(_stream,_offset,") || column_list(&b, d) ||
      trb_buf_append_str(&b, ") VALUES(?,?");
  for (size_t i = 0; !e && i < d->n_fields; i++) e = trb_buf_append_str(&b, ",?");
  e = e || trb_buf_append_str(&b, ")");
  if (e) goto fail;
  q->stage_sql = trb_buf_take(&b, NULL);
  e = trb_buf_append_str(&b, "INSERT INTO ") || quote_ident(&b, sql_name) ||
      trb_buf_append_str(&b, "(") || column_list(&b, d) ||
      trb_buf_append_str(&b, ") SELECT ") || column_list(&b, d);
  e = e || trb_buf_append_str(&b, " FROM ") || quote_ident(&b, stage) ||
      trb_buf_append_str(&b, " WHERE _stream = ?1 AND _offset < ?2 ORDER BY _offset");
  if (e) goto fail;
  q->move_sql = trb_buf_take(&b, NULL);
  e = trb_buf_append_str(&b, "DELETE FROM ") || quote_ident(&b, stage) ||
      trb_buf_append_str(&b, " WHERE _stream = ?1 AND _offset < ?2");
  if (e) goto fail;
  q->unstage_sql = trb_buf_take(&b, NULL);
  if (q->insert_sql && q->stage_sql && q->move_sql && q->unstage_sql) return true;
fail:
  trb_buf_deinit(&b);
  sqls_free(q);
  return false;
}

static bool table_sql(bq_table_t *t) {
  table_sqls_t q;
  if (!build_sqls(t->sql_name, t->def, &q)) return false;
  t->insert_sql = q.insert_sql;
  t->stage_sql = q.stage_sql;
  t->move_sql = q.move_sql;
  t->unstage_sql = q.unstage_sql;
  return true;
}

static grpc_status_code create_sql_tables(trb_db_t *db, const bq_table_t *t,
                                          trb_status_t *st) {
  trb_buf_t b = TRB_BUF_INIT;
  char stage[1100];
  snprintf(stage, sizeof stage, "_staging.%s", t->sql_name);
  int e = 0;
  for (int pass = 0; pass < 2 && !e; pass++) {
    e = trb_buf_append_str(&b, "CREATE TABLE IF NOT EXISTS ") ||
        quote_ident(&b, pass ? stage : t->sql_name) ||
        trb_buf_append_str(&b, pass ? "(_stream TEXT NOT NULL, _offset INTEGER NOT NULL" : "(");
    for (size_t i = 0; !e && i < t->def->n_fields; i++) {
      const trb_bq_field_t *f = &t->def->fields[i];
      e = ((pass || i) && trb_buf_append_str(&b, ", ")) || quote_ident(&b, f->name) ||
          trb_buf_appendf(&b, " %s", f->mode == TRB_BQ_MODE_REPEATED ? "TEXT" : sql_type(f->type));
    }
    e = e || trb_buf_append_str(&b, ");");
  }
  e = e || trb_buf_append_str(&b, "CREATE INDEX IF NOT EXISTS ") ||
      quote_ident(&b, stage) == -1 ||
      (b.len--, trb_buf_append_str(&b, "_idx\" ON ")) || quote_ident(&b, stage) ||
      trb_buf_append_str(&b, "(_stream, _offset);");
  if (e) {
    trb_buf_deinit(&b);
    return oom(st);
  }
  grpc_status_code c = trb_db_exec(db, b.data, st);
  trb_buf_deinit(&b);
  return c;
}

static const char kBookkeeping[] =
    "CREATE TABLE IF NOT EXISTS _bq_tables(dataset TEXT NOT NULL, tbl TEXT "
    "NOT NULL, def TEXT NOT NULL, create_us INTEGER NOT NULL, PRIMARY "
    "KEY(dataset, tbl));"
    "CREATE TABLE IF NOT EXISTS _bq_streams(name TEXT PRIMARY KEY, dataset "
    "TEXT NOT NULL, tbl TEXT NOT NULL, type INTEGER NOT NULL, state INTEGER "
    "NOT NULL, next_offset INTEGER NOT NULL, flushed_offset INTEGER NOT NULL, "
    "create_us INTEGER NOT NULL, commit_us INTEGER, finalize_us INTEGER);";

static void table_free(bq_table_t *t) {
  if (!t) return;
  trb_free(t->dataset);
  trb_free(t->table);
  trb_free(t->sql_name);
  trb_free(t->insert_sql);
  trb_free(t->stage_sql);
  trb_free(t->move_sql);
  trb_free(t->unstage_sql);
  trb_free(t->dflt.name);
  trb_bq_table_free(t->def);
  while (t->old_defs) {
    bq_old_def_t *o = t->old_defs;
    t->old_defs = o->next;
    trb_bq_table_free(o->def);
    trb_free(o);
  }
  trb_free(t);
}

static bq_table_t *table_new(const trb_bqemu_t *bq, const char *d, const char *tn,
                             const trb_bq_table_t *def, int64_t create_us) {
  bq_table_t *t = trb_calloc(1, sizeof *t);
  if (!t) return NULL;
  size_t n = strlen(d) + strlen(tn) + 2;
  size_t nn = strlen(bq->project) + n + 64;
  t->dataset = trb_strdup(d);
  t->table = trb_strdup(tn);
  t->sql_name = trb_malloc(n);
  t->dflt.name = trb_malloc(nn);
  t->create_us = create_us;
  t->def = trb_calloc(1, sizeof *t->def);
  if (!t->dataset || !t->table || !t->sql_name || !t->dflt.name || !t->def ||
      trb_bq_table_copy(def, t->def, NULL) != GRPC_STATUS_OK) {
    table_free(t);
    return NULL;
  }
  snprintf(t->sql_name, n, "%s.%s", d, tn);
  snprintf(t->dflt.name, nn, "projects/%s/datasets/%s/tables/%s/streams/_default",
           bq->project, d, tn);
  t->dflt.table = t;
  t->dflt.type = BQ_DEFAULT_TYPE;
  t->dflt.create_us = create_us;
  if (!table_sql(t)) {
    table_free(t);
    return NULL;
  }
  return t;
}

/* ---- create / load ------------------------------------------------------ */

static grpc_status_code load_apply(trb_db_t *db, sqlite3 *conn, void *user,
                                  trb_status_t *st) {
  (void)conn;
  trb_bqemu_t *bq = user;
  grpc_status_code c = trb_db_exec(db, kBookkeeping, st);
  if (c) return c;
  sqlite3_stmt *s = trb_db_stmt(db, "SELECT dataset, tbl, def, create_us FROM _bq_tables", st);
  if (!s) return st ? st->code : GRPC_STATUS_INTERNAL;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    const char *js = (const char *)sqlite3_column_text(s, 2);
    trb_bq_table_t def;
    c = trb_bq_table_parse(js, strlen(js), &def, st);
    if (c) {
      trb_status_prefix(st, "stored table %s.%s", sqlite3_column_text(s, 0),
                        sqlite3_column_text(s, 1));
      return GRPC_STATUS_INTERNAL;
    }
    bq_table_t *t = table_new(bq, (const char *)sqlite3_column_text(s, 0),
                              (const char *)sqlite3_column_text(s, 1), &def,
                              sqlite3_column_int64(s, 3));
    trb_bq_table_deinit(&def);
    if (!t) return oom(st);
    t->next = bq->tables;
    bq->tables = t;
  }
  if (rc != SQLITE_DONE) return trb_db_error(db, "load tables", st);
  s = trb_db_stmt(db,
                  "SELECT name, dataset, tbl, type, state, next_offset, "
                  "flushed_offset, create_us, commit_us, finalize_us FROM "
                  "_bq_streams",
                  st);
  if (!s) return st ? st->code : GRPC_STATUS_INTERNAL;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    const char *d = (const char *)sqlite3_column_text(s, 1);
    const char *tn = (const char *)sqlite3_column_text(s, 2);
    bq_table_t *t = trb_bqemu_find_table(bq, d, strlen(d), tn, strlen(tn));
    if (!t) continue;
    bq_stream_t *x = trb_calloc(1, sizeof *x);
    if (!x || !(x->name = trb_strdup((const char *)sqlite3_column_text(s, 0)))) {
      trb_free(x);
      return oom(st);
    }
    x->table = t;
    x->type = sqlite3_column_int(s, 3);
    x->state = sqlite3_column_int(s, 4);
    x->next = x->committed = sqlite3_column_int64(s, 5);
    x->flushed = sqlite3_column_int64(s, 6);
    x->create_us = sqlite3_column_int64(s, 7);
    x->commit_us = sqlite3_column_int64(s, 8);
    x->finalize_us = sqlite3_column_int64(s, 9);
    if (!stream_insert(bq, x)) {
      stream_free(x);
      return oom(st);
    }
  }
  if (rc != SQLITE_DONE) return trb_db_error(db, "load streams", st);
  return GRPC_STATUS_OK;
}

static void on_drop(void *user, grpc_status_code code, const char *message) {
  trb_bqemu_drop_conns(user, code, message);
}

/* The fault registry's schema-update hook (EmulatorAdmin.UpdateTableSchema):
 * `name` is "projects/{p}/datasets/{d}/tables/{t}" or "{d}.{t}". */
static grpc_status_code on_schema_update(void *user, const char *name, const char *json,
                                         size_t len, trb_status_t *st) {
  trb_bqemu_t *bq = user;
  char d[1025], t[1025];
  rname_t r;
  if (name && parse_table_name(name, &r) && !*r.rest && r.dlen < sizeof d && r.tlen < sizeof t) {
    if (r.plen != strlen(bq->project) || strncmp(r.project, bq->project, r.plen) != 0)
      return trb_status_set(st, GRPC_STATUS_NOT_FOUND, "Not found: project of %s", name);
    snprintf(d, sizeof d, "%.*s", (int)r.dlen, r.dataset);
    snprintf(t, sizeof t, "%.*s", (int)r.tlen, r.table);
  } else {
    const char *dot = name ? strchr(name, '.') : NULL;
    if (!dot || (size_t)(dot - name) >= sizeof d || strlen(dot + 1) >= sizeof t)
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "table: want projects/P/datasets/D/tables/T or D.T, got \"%s\"",
                            name ? name : "");
    snprintf(d, sizeof d, "%.*s", (int)(dot - name), name);
    snprintf(t, sizeof t, "%s", dot + 1);
  }
  trb_bq_table_t def;
  grpc_status_code c = trb_bq_table_parse(json ? json : "", json ? len : 0, &def, st);
  if (c) return c;
  c = trb_bqemu_update_table_schema(bq, d, t, &def, st);
  trb_bq_table_deinit(&def);
  return c;
}

grpc_status_code trb_bqemu_create(const trb_bqemu_config_t *cfg,
                                  trb_bqemu_t **out, trb_status_t *st) {
  *out = NULL;
  trb_bqemu_t *bq = trb_calloc(1, sizeof *bq);
  if (!bq) return oom(st);
  pthread_mutex_init(&bq->mu, NULL);
  bq->db = cfg->db;
  bq->faults = cfg->faults;
  bq->project = trb_strdup(cfg->project ? cfg->project : "demo");
  if (!bq->project) {
    trb_bqemu_destroy(bq);
    return oom(st);
  }
  grpc_status_code c = trb_db_run(bq->db, load_apply, bq, st);
  if (c == GRPC_STATUS_OK && bq->faults)
    c = trb_faults_on_drop(bq->faults, on_drop, bq, st);
  if (c == GRPC_STATUS_OK && bq->faults)
    trb_faults_on_schema_update(bq->faults, on_schema_update, bq);
  if (c) {
    trb_bqemu_destroy(bq);
    return c;
  }
  *out = bq;
  return GRPC_STATUS_OK;
}

void trb_bqemu_shutdown(trb_bqemu_t *bq) {
  if (!bq) return;
  pthread_mutex_lock(&bq->mu);
  bq->shutting_down = true;
  pthread_mutex_unlock(&bq->mu);
  trb_bqemu_drop_conns(bq, GRPC_STATUS_UNAVAILABLE,
                       "The BigQuery emulator is shutting down");
}

void trb_bqemu_destroy(trb_bqemu_t *bq) {
  if (!bq) return;
  if (bq->faults) trb_faults_off_schema_update(bq->faults, on_schema_update, bq);
  for (size_t i = 0; i < bq->n_buckets; i++) {
    bq_stream_t *s = bq->buckets[i];
    while (s) {
      bq_stream_t *n = s->hnext;
      stream_free(s);
      s = n;
    }
  }
  trb_free(bq->buckets);
  bq_table_t *t = bq->tables;
  while (t) {
    bq_table_t *n = t->next;
    table_free(t);
    t = n;
  }
  trb_free(bq->project);
  pthread_mutex_destroy(&bq->mu);
  trb_free(bq);
}

/* ---- create_table ------------------------------------------------------- */

typedef struct ct_op_s {
  trb_bqemu_t *bq;
  bq_table_t *t;
} ct_op_t;

static grpc_status_code ct_apply(trb_db_t *db, sqlite3 *conn, void *user,
                                 trb_status_t *st) {
  (void)conn;
  ct_op_t *op = user;
  grpc_status_code c = create_sql_tables(db, op->t, st);
  if (c) return c;
  char *js = NULL;
  if ((c = trb_bq_table_to_json(op->t->def, &js, st))) return c;
  sqlite3_stmt *s = trb_db_stmt(db, "INSERT INTO _bq_tables VALUES(?1, ?2, ?3, ?4)", st);
  if (!s) {
    trb_free(js);
    return st ? st->code : GRPC_STATUS_INTERNAL;
  }
  sqlite3_bind_text(s, 1, op->t->dataset, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, op->t->table, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 3, js, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s, 4, op->t->create_us);
  int rc = sqlite3_step(s);
  trb_free(js);
  if (rc != SQLITE_DONE) return trb_db_error(db, "create table", st);
  return GRPC_STATUS_OK;
}

grpc_status_code trb_bqemu_create_table(trb_bqemu_t *bq, const char *dataset,
                                        const char *table,
                                        const trb_bq_table_t *def,
                                        trb_status_t *st) {
  if (!valid_ident(dataset, strlen(dataset)) || !valid_ident(table, strlen(table)))
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "invalid table name %s.%s (letters, digits, '_' "
                          "and '-')", dataset, table);
  if (def->n_fields == 0)
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT, "table %s.%s has no fields",
                          dataset, table);
  pthread_mutex_lock(&bq->mu);
  bq_table_t *t = trb_bqemu_find_table(bq, dataset, strlen(dataset), table, strlen(table));
  bool same = t && trb_bq_schema_equal(t->def, def);
  pthread_mutex_unlock(&bq->mu);
  if (t) {
    return same ? trb_status_set(st, GRPC_STATUS_ALREADY_EXISTS,
                                 "Already Exists: Table %s:%s.%s", bq->project,
                                 dataset, table)
                : trb_status_set(st, GRPC_STATUS_FAILED_PRECONDITION,
                                 "Table %s:%s.%s exists with a different "
                                 "schema", bq->project, dataset, table);
  }
  ct_op_t op = {bq, table_new(bq, dataset, table, def, trb_clock_wall_us())};
  if (!op.t) return oom(st);
  grpc_status_code c = trb_db_run(bq->db, ct_apply, &op, st);
  if (c) {
    table_free(op.t);
    return c;
  }
  pthread_mutex_lock(&bq->mu);
  if (trb_bqemu_find_table(bq, dataset, strlen(dataset), table, strlen(table))) {
    /* a concurrent create won; the SQL tables are shared and identical */
    pthread_mutex_unlock(&bq->mu);
    table_free(op.t);
    return trb_status_set(st, GRPC_STATUS_ALREADY_EXISTS, "Already Exists: Table %s:%s.%s",
                          bq->project, dataset, table);
  }
  op.t->next = bq->tables;
  bq->tables = op.t;
  pthread_mutex_unlock(&bq->mu);
  return GRPC_STATUS_OK;
}

/* ---- update_table_schema ------------------------------------------------ */

/* Whether `nw` (n_nw fields) is an additive change of `old` as BigQuery
 * allows it: every old field kept in place with the same name
 * (case-insensitive), type, max_length, precision and scale, its mode kept
 * or relaxed REQUIRED -> NULLABLE, RECORDs checked recursively; new fields
 * only after the old ones and NULLABLE or REPEATED. */
static bool additive(const trb_bq_field_t *old, size_t n_old, const trb_bq_field_t *nw,
                     size_t n_nw, const char *path, trb_status_t *st) {
  if (n_nw < n_old) {
    trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                   "%s: the new schema drops columns (%zu of %zu kept); only additive "
                   "changes are allowed", path, n_nw, n_old);
    return false;
  }
  for (size_t i = 0; i < n_nw; i++) {
    const trb_bq_field_t *b = &nw[i];
    char sub[512];
    snprintf(sub, sizeof sub, "%s%s%s", path, *path ? "." : "", b->name);
    if (i >= n_old) {
      if (b->mode == TRB_BQ_MODE_REQUIRED) {
        trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                       "%s: a new column must be NULLABLE or REPEATED, not REQUIRED", sub);
        return false;
      }
      continue;
    }
    const trb_bq_field_t *a = &old[i];
    if (strcasecmp(a->name, b->name) != 0) {
      trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                     "%s: column %zu was %s; existing columns keep their names and "
                     "order (new ones go at the end)", sub, i, a->name);
      return false;
    }
    if (a->type != b->type || a->max_length != b->max_length ||
        a->precision != b->precision || a->scale != b->scale) {
      trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                     "%s: the type of an existing column cannot change (%s -> %s)", sub,
                     trb_bq_type_name(a->type), trb_bq_type_name(b->type));
      return false;
    }
    if (a->mode != b->mode &&
        !(a->mode == TRB_BQ_MODE_REQUIRED && b->mode == TRB_BQ_MODE_NULLABLE)) {
      trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                     "%s: mode %s -> %s is not allowed (only REQUIRED -> NULLABLE)", sub,
                     trb_bq_mode_name(a->mode), trb_bq_mode_name(b->mode));
      return false;
    }
    if (a->type == TRB_BQ_TYPE_STRUCT &&
        !additive(a->fields, a->n_fields, b->fields, b->n_fields, sub, st))
      return false;
  }
  return true;
}

typedef struct us_op_s {
  trb_bqemu_t *bq;
  bq_table_t *t;
  trb_bq_table_t *def; /* the new definition (owned until installed) */
  size_t n_old;        /* top-level columns before */
  table_sqls_t sqls;   /* statements for `def` */
} us_op_t;

static grpc_status_code us_apply(trb_db_t *db, sqlite3 *conn, void *user,
                                 trb_status_t *st) {
  (void)conn;
  us_op_t *op = user;
  bq_table_t *t = op->t;
  char stage[1100];
  snprintf(stage, sizeof stage, "_staging.%s", t->sql_name);
  trb_buf_t b = TRB_BUF_INIT;
  int e = 0;
  for (size_t i = op->n_old; !e && i < op->def->n_fields; i++) {
    const trb_bq_field_t *f = &op->def->fields[i];
    for (int pass = 0; pass < 2 && !e; pass++) {
      e = trb_buf_append_str(&b, "ALTER TABLE ") || quote_ident(&b, pass ? stage : t->sql_name) ||
          trb_buf_append_str(&b, " ADD COLUMN ") || quote_ident(&b, f->name) ||
          trb_buf_appendf(&b, " %s;", f->mode == TRB_BQ_MODE_REPEATED ? "TEXT" : sql_type(f->type));
    }
  }
  if (e) {
    trb_buf_deinit(&b);
    return oom(st);
  }
  grpc_status_code c = b.len ? trb_db_exec(db, b.data, st) : GRPC_STATUS_OK;
  trb_buf_deinit(&b);
  if (c) return c;
  char *js = NULL;
  if ((c = trb_bq_table_to_json(op->def, &js, st))) return c;
  sqlite3_stmt *s = trb_db_stmt(db, "UPDATE _bq_tables SET def = ?3 WHERE dataset = ?1 AND "
                                    "tbl = ?2", st);
  if (!s) {
    trb_free(js);
    return st ? st->code : GRPC_STATUS_INTERNAL;
  }
  sqlite3_bind_text(s, 1, t->dataset, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, t->table, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 3, js, -1, SQLITE_STATIC);
  int rc = sqlite3_step(s);
  trb_free(js);
  if (rc != SQLITE_DONE) return trb_db_error(db, "update table schema", st);
  return GRPC_STATUS_OK;
}

/* Swap the table's SQL texts for the new ones (the old ones are freed by
 * the caller through op->sqls). Runs on the committer thread. */
static grpc_status_code us_install(trb_db_t *db, sqlite3 *conn, void *user,
                                   trb_status_t *st) {
  (void)db;
  (void)conn;
  (void)st;
  us_op_t *op = user;
  bq_table_t *t = op->t;
  char *x;
  x = t->insert_sql, t->insert_sql = op->sqls.insert_sql, op->sqls.insert_sql = x;
  x = t->stage_sql, t->stage_sql = op->sqls.stage_sql, op->sqls.stage_sql = x;
  x = t->move_sql, t->move_sql = op->sqls.move_sql, op->sqls.move_sql = x;
  x = t->unstage_sql, t->unstage_sql = op->sqls.unstage_sql, op->sqls.unstage_sql = x;
  return GRPC_STATUS_OK;
}

grpc_status_code trb_bqemu_update_table_schema(trb_bqemu_t *bq, const char *dataset,
                                               const char *table,
                                               const trb_bq_table_t *def,
                                               trb_status_t *st) {
  pthread_mutex_lock(&bq->mu);
  bq_table_t *t = trb_bqemu_find_table(bq, dataset, strlen(dataset), table, strlen(table));
  const trb_bq_table_t *cur = t ? t->def : NULL;
  pthread_mutex_unlock(&bq->mu);
  if (!t)
    return trb_status_set(st, GRPC_STATUS_NOT_FOUND, "Not found: Table %s:%s.%s",
                          bq->project, dataset, table);
  /* `cur` stays valid: definitions are never freed before the table. */
  if (!additive(cur->fields, cur->n_fields, def->fields, def->n_fields, "", st))
    return st ? st->code : GRPC_STATUS_INVALID_ARGUMENT;
  if (trb_bq_schema_equal(cur, def)) return GRPC_STATUS_OK;
  us_op_t op = {bq, t, trb_calloc(1, sizeof *op.def), cur->n_fields, {0}};
  if (!op.def || trb_bq_table_copy(def, op.def, st) != GRPC_STATUS_OK) {
    trb_free(op.def);
    return oom(st);
  }
  /* Table options (partitioning, clustering, description) are kept. */
  trb_bq_table_t *o = op.def;
  trb_free(o->description);
  trb_free(o->partition_type);
  trb_free(o->partition_field);
  for (size_t i = 0; i < o->n_clustering; i++) trb_free(o->clustering[i]);
  trb_free(o->clustering);
  o->description = o->partition_type = o->partition_field = NULL;
  o->clustering = NULL;
  o->n_clustering = 0;
  trb_bq_table_t opts = *cur;
  opts.n_fields = 0;
  opts.fields = NULL;
  trb_bq_table_t tmp;
  if (trb_bq_table_copy(&opts, &tmp, st) != GRPC_STATUS_OK) {
    trb_bq_table_free(op.def);
    return oom(st);
  }
  tmp.n_fields = o->n_fields;
  tmp.fields = o->fields;
  o->n_fields = 0;
  o->fields = NULL;
  trb_bq_table_deinit(o);
  *o = tmp;
  bq_old_def_t *old = trb_calloc(1, sizeof *old);
  if (!old || !build_sqls(t->sql_name, op.def, &op.sqls)) {
    trb_free(old);
    trb_bq_table_free(op.def);
    return oom(st);
  }
  grpc_status_code c = trb_db_run(bq->db, us_apply, &op, st);
  if (c) {
    trb_free(old);
    sqls_free(&op.sqls);
    trb_bq_table_free(op.def);
    return c;
  }
  /* Install: the SQL texts through an op (they are committer-thread
   * state), the definition under mu. */
  c = trb_db_run(bq->db, us_install, &op, st);
  pthread_mutex_lock(&bq->mu);
  old->def = t->def;
  old->next = t->old_defs;
  t->old_defs = old;
  t->def = op.def;
  t->schema_ver++;
  pthread_mutex_unlock(&bq->mu);
  sqls_free(&op.sqls);
  return c;
}

/* ---- shared helpers ----------------------------------------------------- */

void trb_bqemu_bind_row(sqlite3_stmt *s, int first, const trb_bq_value_t *v,
                        size_t n, const char *base) {
  for (size_t i = 0; i < n; i++) {
    int k = first + (int)i;
    switch (v[i].kind) {
      case TRB_BQV_INT: sqlite3_bind_int64(s, k, v[i].u.i); break;
      case TRB_BQV_REAL: sqlite3_bind_double(s, k, v[i].u.d); break;
      case TRB_BQV_TEXT:
        sqlite3_bind_text(s, k, (const char *)v[i].u.p, (int)v[i].len, SQLITE_STATIC);
        break;
      case TRB_BQV_BLOB:
        sqlite3_bind_blob(s, k, v[i].len ? (const void *)v[i].u.p : "", (int)v[i].len,
                          SQLITE_STATIC);
        break;
      case TRB_BQV_BTEXT:
      case TRB_BQV_BJSON:
        sqlite3_bind_text(s, k, v[i].len ? base + v[i].u.off : "", (int)v[i].len,
                          SQLITE_STATIC);
        break;
      case TRB_BQV_BBLOB:
        sqlite3_bind_blob(s, k, v[i].len ? base + v[i].u.off : "", (int)v[i].len,
                          SQLITE_STATIC);
        break;
      default: sqlite3_bind_null(s, k); break;
    }
  }
}

grpc_status_code trb_bqemu_storage_status(grpc_status_code code,
                                          const char *message, int se_code,
                                          const char *entity, uint8_t **out,
                                          size_t *out_len) {
  google_cloud_bigquery_storage_v1_StorageError se =
      google_cloud_bigquery_storage_v1_StorageError_init_zero;
  se.code = (google_cloud_bigquery_storage_v1_StorageError_StorageErrorCode)se_code;
  se.entity = (char *)entity;
  se.error_message = (char *)message;
  uint8_t *sb = NULL;
  size_t sl = 0;
  grpc_status_code c = trb_pb_encode(google_cloud_bigquery_storage_v1_StorageError_fields,
                                     &se, &sb, &sl, NULL);
  if (c) return c;
  trb_rpc_any_t any = {TRB_RPC_TYPE_URL_PREFIX "google.cloud.bigquery.storage.v1.StorageError",
                       sb, sl};
  c = trb_rpc_status_details_encode(code, message, &any, 1, out, out_len, NULL);
  trb_free(sb);
  return c;
}

static void finish_err(trb_rpc_server_call_t *call, grpc_status_code code,
                       const char *msg, int se_code, const char *entity) {
  uint8_t *d = NULL;
  size_t dl = 0;
  if (se_code >= 0) trb_bqemu_storage_status(code, msg, se_code, entity, &d, &dl);
  trb_rpc_server_call_finish(call, code, msg, d, dl, NULL, 0);
  trb_free(d);
}

static void finish_msg(trb_rpc_server_call_t *call, const pb_msgdesc_t *f,
                       const void *msg) {
  uint8_t *b = NULL;
  size_t n = 0;
  trb_status_t st;
  if (trb_pb_encode(f, msg, &b, &n, &st)) {
    trb_rpc_server_call_finish(call, st.code, st.msg, NULL, 0, NULL, 0);
    return;
  }
  trb_rpc_server_call_finish(call, GRPC_STATUS_OK, NULL, NULL, 0, b, n);
  trb_free(b);
}

/* Consult fault injection; true when the call was failed. */
static bool take_fault(trb_bqemu_t *bq, trb_rpc_server_call_t *call,
                       const char *method) {
  if (!bq->faults) return false;
  grpc_status_code code;
  char msg[256];
  int lat = 0;
  bool fail = trb_faults_take(bq->faults, method, &code, msg, sizeof msg, &lat);
  if (lat > 0) usleep((useconds_t)lat * 1000); /* test facility: blocks */
  if (fail) trb_rpc_server_call_finish(call, code, msg, NULL, 0, NULL, 0);
  return fail;
}

static void ts_from_us(int64_t us, google_protobuf_Timestamp *t) {
  t->seconds = us / 1000000;
  t->nanos = (int32_t)(us % 1000000) * 1000;
}

/* Fill a WriteStream view of `s` (mu held). Strings are borrowed from s; the
 * table schema is malloc'd: release with release_ws. */
static void fill_ws(const bq_stream_t *s, bool full,
                    google_cloud_bigquery_storage_v1_WriteStream *ws) {
  memset(ws, 0, sizeof *ws);
  ws->name = s->name;
  ws->type = s->type == BQ_DEFAULT_TYPE
                 ? google_cloud_bigquery_storage_v1_WriteStream_Type_COMMITTED
                 : (google_cloud_bigquery_storage_v1_WriteStream_Type)s->type;
  ws->has_create_time = true;
  ts_from_us(s->create_us, &ws->create_time);
  if (s->type == BQ_COMMITTED || s->type == BQ_DEFAULT_TYPE) {
    ws->has_commit_time = true;
    ts_from_us(s->create_us, &ws->commit_time);
  } else if (s->state == BQ_COMMITTED_STATE) {
    ws->has_commit_time = true;
    ts_from_us(s->commit_us, &ws->commit_time);
  }
  ws->write_mode = google_cloud_bigquery_storage_v1_WriteStream_WriteMode_INSERT;
  if (full) {
    ws->has_table_schema =
        trb_bq_table_to_proto(s->table->def, &ws->table_schema, NULL) == GRPC_STATUS_OK;
  }
}

static void release_ws(google_cloud_bigquery_storage_v1_WriteStream *ws) {
  if (ws->has_table_schema)
    trb_pb_release(google_cloud_bigquery_storage_v1_TableSchema_fields, &ws->table_schema);
}

static const char *type_word(int t) {
  return t == BQ_PENDING ? "PENDING" : t == BQ_BUFFERED ? "BUFFERED" : "COMMITTED";
}

/* ---- stream bookkeeping op ---------------------------------------------- */

typedef struct unary_op_s {
  trb_bqemu_t *bq;
  trb_rpc_server_call_t *call;
  int kind;             /* 0 create, 1 finalize, 2 commit, 3 flush */
  bq_stream_t *s;       /* create: the new stream; finalize/flush: target */
  bq_stream_t **list;   /* commit */
  size_t n;
  int64_t value;        /* finalize row_count, flush offset, commit time */
  int prev_state;
  int64_t prev_flushed;
} unary_op_t;

static grpc_status_code exec_update(trb_db_t *db, const char *sql,
                                    const bq_stream_t *s, int64_t a,
                                    trb_status_t *st) {
  sqlite3_stmt *q = trb_db_stmt(db, sql, st);
  if (!q) return st ? st->code : GRPC_STATUS_INTERNAL;
  sqlite3_bind_text(q, 1, s->name, -1, SQLITE_STATIC);
  sqlite3_bind_int64(q, 2, a);
  if (sqlite3_step(q) != SQLITE_DONE) return trb_db_error(db, "update stream", st);
  return GRPC_STATUS_OK;
}

/* Move staged rows of `s` with offsets < `end` into the table. */
static grpc_status_code move_rows(trb_db_t *db, const bq_stream_t *s,
                                  int64_t end, trb_status_t *st) {
  grpc_status_code c = exec_update(db, s->table->move_sql, s, end, st);
  if (c == GRPC_STATUS_OK) c = exec_update(db, s->table->unstage_sql, s, end, st);
  return c;
}

static grpc_status_code unary_apply(trb_db_t *db, sqlite3 *conn, void *user,
                                    trb_status_t *st) {
  (void)conn;
  unary_op_t *op = user;
  bq_stream_t *s = op->s;
  grpc_status_code c = GRPC_STATUS_OK;
  switch (op->kind) {
    case 0: {
      sqlite3_stmt *q = trb_db_stmt(
          db, "INSERT INTO _bq_streams VALUES(?1,?2,?3,?4,0,0,0,?5,?6,NULL)", st);
      if (!q) return st ? st->code : GRPC_STATUS_INTERNAL;
      sqlite3_bind_text(q, 1, s->name, -1, SQLITE_STATIC);
      sqlite3_bind_text(q, 2, s->table->dataset, -1, SQLITE_STATIC);
      sqlite3_bind_text(q, 3, s->table->table, -1, SQLITE_STATIC);
      sqlite3_bind_int(q, 4, s->type);
      sqlite3_bind_int64(q, 5, s->create_us);
      if (s->type == BQ_COMMITTED) sqlite3_bind_int64(q, 6, s->create_us);
      if (sqlite3_step(q) != SQLITE_DONE) return trb_db_error(db, "create stream", st);
      return GRPC_STATUS_OK;
    }
    case 1:
      return exec_update(db, "UPDATE _bq_streams SET state = 1, finalize_us = ?2 WHERE name = ?1",
                         s, s->finalize_us, st);
    case 2:
      for (size_t i = 0; c == GRPC_STATUS_OK && i < op->n; i++) {
        c = move_rows(db, op->list[i], INT64_MAX, st);
        if (c == GRPC_STATUS_OK)
          c = exec_update(db, "UPDATE _bq_streams SET state = 2, commit_us = ?2 WHERE name = ?1",
                          op->list[i], op->value, st);
      }
      return c;
    case 3:
      c = move_rows(db, s, op->value + 1, st);
      if (c == GRPC_STATUS_OK)
        c = exec_update(db,
                        "UPDATE _bq_streams SET flushed_offset = max(flushed_offset, ?2) "
                        "WHERE name = ?1",
                        s, op->value + 1, st);
      return c;
    default:
      return GRPC_STATUS_INTERNAL;
  }
}

static void unary_done(void *user, grpc_status_code code, const trb_status_t *st) {
  unary_op_t *op = user;
  trb_bqemu_t *bq = op->bq;
  if (code != GRPC_STATUS_OK) {
    pthread_mutex_lock(&bq->mu);
    if (op->kind == 1) op->s->state = op->prev_state;
    if (op->kind == 2)
      for (size_t i = 0; i < op->n; i++) op->list[i]->state = BQ_FINALIZED;
    if (op->kind == 3 && op->s->flushed == op->value + 1) op->s->flushed = op->prev_flushed;
    pthread_mutex_unlock(&bq->mu);
    trb_rpc_server_call_finish(op->call, code, st ? st->msg : "storage error", NULL, 0,
                               NULL, 0);
    if (op->kind == 0) stream_free(op->s);
    trb_free(op->list);
    trb_free(op);
    return;
  }
  switch (op->kind) {
    case 0: {
      google_cloud_bigquery_storage_v1_WriteStream ws;
      pthread_mutex_lock(&bq->mu);
      bool ok = stream_insert(bq, op->s);
      if (ok) fill_ws(op->s, true, &ws);
      pthread_mutex_unlock(&bq->mu);
      if (!ok) {
        stream_free(op->s);
        trb_rpc_server_call_finish(op->call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory",
                                   NULL, 0, NULL, 0);
        break;
      }
      finish_msg(op->call, google_cloud_bigquery_storage_v1_WriteStream_fields, &ws);
      release_ws(&ws);
      break;
    }
    case 1: {
      google_cloud_bigquery_storage_v1_FinalizeWriteStreamResponse r = {op->value};
      finish_msg(op->call, google_cloud_bigquery_storage_v1_FinalizeWriteStreamResponse_fields,
                 &r);
      break;
    }
    case 2: {
      google_cloud_bigquery_storage_v1_BatchCommitWriteStreamsResponse r;
      memset(&r, 0, sizeof r);
      r.has_commit_time = true;
      ts_from_us(op->value, &r.commit_time);
      finish_msg(op->call,
                 google_cloud_bigquery_storage_v1_BatchCommitWriteStreamsResponse_fields, &r);
      break;
    }
    case 3: {
      google_cloud_bigquery_storage_v1_FlushRowsResponse r = {op->value};
      finish_msg(op->call, google_cloud_bigquery_storage_v1_FlushRowsResponse_fields, &r);
      break;
    }
    default:
      break;
  }
  trb_free(op->list);
  trb_free(op);
}

/* Queue `op` with bq->mu held (the caller's state change and the op's
 * place in the db queue are one step, ordered with appends: see append.c)
 * and release bq->mu. */
static void submit_unary_unlock(trb_bqemu_t *bq, unary_op_t *op) {
  trb_status_t st;
  grpc_status_code c = trb_db_submit(bq->db, unary_apply, unary_done, op, &st);
  pthread_mutex_unlock(&bq->mu);
  if (c != GRPC_STATUS_OK) unary_done(op, c, &st);
}

static void submit_unary(trb_bqemu_t *bq, unary_op_t *op) {
  pthread_mutex_lock(&bq->mu);
  submit_unary_unlock(bq, op);
}

/* ---- CreateWriteStream -------------------------------------------------- */

static void not_found_table(trb_rpc_server_call_t *call, const char *name) {
  char msg[TRB_STATUS_MSG_MAX];
  snprintf(msg, sizeof msg, "Table not found: %s", name ? name : "");
  finish_err(call, GRPC_STATUS_NOT_FOUND, msg, SE(TABLE_NOT_FOUND), name);
}

static void h_create(void *user, trb_rpc_server_call_t *call, const uint8_t *req,
                     size_t len) {
  trb_bqemu_t *bq = user;
  if (take_fault(bq, call, M_CREATE)) return;
  google_cloud_bigquery_storage_v1_CreateWriteStreamRequest r;
  trb_status_t st;
  if (trb_pb_decode(google_cloud_bigquery_storage_v1_CreateWriteStreamRequest_fields, req, len,
                    &r, &st)) {
    trb_rpc_server_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, st.msg, NULL, 0, NULL, 0);
    goto out;
  }
  rname_t rn;
  if (!parse_table_name(r.parent, &rn) || *rn.rest) {
    finish_err(call, GRPC_STATUS_INVALID_ARGUMENT,
               "parent must be projects/{project}/datasets/{dataset}/tables/{table}", -1, NULL);
    goto out;
  }
  int type = r.has_write_stream ? (int)r.write_stream.type : 0;
  if (type < BQ_COMMITTED || type > BQ_BUFFERED) {
    finish_err(call, GRPC_STATUS_INVALID_ARGUMENT,
               "write_stream.type must be COMMITTED, PENDING or BUFFERED", -1, NULL);
    goto out;
  }
  pthread_mutex_lock(&bq->mu);
  bq_table_t *t = table_of_name(bq, &rn);
  uint64_t id = ++bq->id_counter;
  pthread_mutex_unlock(&bq->mu);
  if (!t) {
    not_found_table(call, r.parent);
    goto out;
  }
  unary_op_t *op = trb_calloc(1, sizeof *op);
  bq_stream_t *s = trb_calloc(1, sizeof *s);
  size_t n = strlen(r.parent) + 64;
  char *name = trb_malloc(n);
  if (!op || !s || !name) {
    trb_free(op);
    trb_free(s);
    trb_free(name);
    trb_rpc_server_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL, 0,
                               NULL, 0);
    goto out;
  }
  s->create_us = trb_clock_wall_us();
  snprintf(name, n, "%s/streams/%016" PRIx64 "%08" PRIx64, r.parent, (uint64_t)s->create_us,
           id);
  s->name = name;
  s->table = t;
  s->type = type;
  s->commit_us = type == BQ_COMMITTED ? s->create_us : 0;
  op->bq = bq;
  op->call = call;
  op->kind = 0;
  op->s = s;
  submit_unary(bq, op);
out:
  trb_pb_release(google_cloud_bigquery_storage_v1_CreateWriteStreamRequest_fields, &r);
}

/* ---- GetWriteStream ----------------------------------------------------- */

static void stream_not_found(trb_rpc_server_call_t *call, const char *name) {
  char msg[TRB_STATUS_MSG_MAX];
  snprintf(msg, sizeof msg, "Requested stream not found: %s", name ? name : "");
  finish_err(call, GRPC_STATUS_NOT_FOUND, msg, SE(STREAM_NOT_FOUND), name);
}

static void h_get(void *user, trb_rpc_server_call_t *call, const uint8_t *req, size_t len) {
  trb_bqemu_t *bq = user;
  if (take_fault(bq, call, M_GET)) return;
  google_cloud_bigquery_storage_v1_GetWriteStreamRequest r;
  trb_status_t st;
  if (trb_pb_decode(google_cloud_bigquery_storage_v1_GetWriteStreamRequest_fields, req, len, &r,
                    &st)) {
    trb_rpc_server_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, st.msg, NULL, 0, NULL, 0);
    goto out;
  }
  google_cloud_bigquery_storage_v1_WriteStream ws;
  pthread_mutex_lock(&bq->mu);
  bq_stream_t *s = trb_bqemu_find_stream(bq, r.name);
  if (s) fill_ws(s, r.view == google_cloud_bigquery_storage_v1_WriteStreamView_FULL, &ws);
  pthread_mutex_unlock(&bq->mu);
  if (!s) {
    stream_not_found(call, r.name);
    goto out;
  }
  finish_msg(call, google_cloud_bigquery_storage_v1_WriteStream_fields, &ws);
  release_ws(&ws);
out:
  trb_pb_release(google_cloud_bigquery_storage_v1_GetWriteStreamRequest_fields, &r);
}

/* ---- FinalizeWriteStream ------------------------------------------------ */

static void h_finalize(void *user, trb_rpc_server_call_t *call, const uint8_t *req,
                       size_t len) {
  trb_bqemu_t *bq = user;
  if (take_fault(bq, call, M_FINALIZE)) return;
  google_cloud_bigquery_storage_v1_FinalizeWriteStreamRequest r;
  trb_status_t st;
  if (trb_pb_decode(google_cloud_bigquery_storage_v1_FinalizeWriteStreamRequest_fields, req,
                    len, &r, &st)) {
    trb_rpc_server_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, st.msg, NULL, 0, NULL, 0);
    goto out;
  }
  pthread_mutex_lock(&bq->mu);
  bq_stream_t *s = trb_bqemu_find_stream(bq, r.name);
  if (!s) {
    pthread_mutex_unlock(&bq->mu);
    stream_not_found(call, r.name);
    goto out;
  }
  if (s->type == BQ_DEFAULT_TYPE) {
    pthread_mutex_unlock(&bq->mu);
    finish_err(call, GRPC_STATUS_INVALID_ARGUMENT,
               "FinalizeWriteStream is not supported on the _default stream",
               SE(INVALID_STREAM_TYPE), s->name);
    goto out;
  }
  if (s->state != BQ_OPEN) { /* already finalized: idempotent */
    google_cloud_bigquery_storage_v1_FinalizeWriteStreamResponse resp = {s->next};
    pthread_mutex_unlock(&bq->mu);
    finish_msg(call, google_cloud_bigquery_storage_v1_FinalizeWriteStreamResponse_fields,
               &resp);
    goto out;
  }
  unary_op_t *op = trb_calloc(1, sizeof *op);
  if (!op) {
    pthread_mutex_unlock(&bq->mu);
    trb_rpc_server_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL, 0,
                               NULL, 0);
    goto out;
  }
  op->prev_state = s->state;
  s->state = BQ_FINALIZED;
  s->finalize_us = trb_clock_wall_us();
  op->bq = bq;
  op->call = call;
  op->kind = 1;
  op->s = s;
  op->value = s->next;
  submit_unary_unlock(bq, op);
out:
  trb_pb_release(google_cloud_bigquery_storage_v1_FinalizeWriteStreamRequest_fields, &r);
}

/* ---- BatchCommitWriteStreams -------------------------------------------- */

static void h_commit(void *user, trb_rpc_server_call_t *call, const uint8_t *req, size_t len) {
  trb_bqemu_t *bq = user;
  if (take_fault(bq, call, M_COMMIT)) return;
  google_cloud_bigquery_storage_v1_BatchCommitWriteStreamsRequest r;
  trb_status_t st;
  if (trb_pb_decode(google_cloud_bigquery_storage_v1_BatchCommitWriteStreamsRequest_fields, req,
                    len, &r, &st)) {
    trb_rpc_server_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, st.msg, NULL, 0, NULL, 0);
    goto out;
  }
  rname_t rn;
  if (!parse_table_name(r.parent, &rn) || *rn.rest) {
    finish_err(call, GRPC_STATUS_INVALID_ARGUMENT,
               "parent must be projects/{project}/datasets/{dataset}/tables/{table}", -1, NULL);
    goto out;
  }
  if (r.write_streams_count == 0) {
    finish_err(call, GRPC_STATUS_INVALID_ARGUMENT, "write_streams must not be empty", -1, NULL);
    goto out;
  }
  unary_op_t *op = trb_calloc(1, sizeof *op);
  google_cloud_bigquery_storage_v1_StorageError *errs =
      trb_calloc(r.write_streams_count, sizeof *errs);
  char(*msgs)[160] = trb_calloc(r.write_streams_count, sizeof *msgs);
  if (op) op->list = trb_calloc(r.write_streams_count, sizeof *op->list);
  if (!op || !errs || !msgs || !op->list) {
    if (op) trb_free(op->list);
    trb_free(op);
    trb_free(errs);
    trb_free(msgs);
    trb_rpc_server_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL, 0,
                               NULL, 0);
    goto out;
  }
  pb_size_t n_err = 0;
  pthread_mutex_lock(&bq->mu);
  bq_table_t *t = table_of_name(bq, &rn);
  if (!t) {
    pthread_mutex_unlock(&bq->mu);
    trb_free(op->list);
    trb_free(op);
    trb_free(errs);
    trb_free(msgs);
    not_found_table(call, r.parent);
    goto out;
  }
  for (pb_size_t i = 0; i < r.write_streams_count; i++) {
    const char *name = r.write_streams[i];
    bq_stream_t *s = trb_bqemu_find_stream(bq, name);
    int code = -1;
    const char *why = NULL;
    if (!s || s->table != t) {
      code = SE(STREAM_NOT_FOUND);
      why = "Stream is not found";
    } else if (s->type != BQ_PENDING) {
      code = SE(INVALID_STREAM_TYPE);
      why = "Stream is not a PENDING stream";
    } else if (s->state == BQ_COMMITTED_STATE) {
      code = SE(STREAM_ALREADY_COMMITTED);
      why = "Stream is already committed";
    } else if (s->state != BQ_FINALIZED) {
      code = SE(INVALID_STREAM_STATE);
      why = "Stream is not finalized";
    } else {
      for (size_t k = 0; k < op->n; k++)
        if (op->list[k] == s) code = SE(INVALID_STREAM_STATE), why = "Stream is listed twice";
    }
    if (code >= 0) {
      snprintf(msgs[n_err], sizeof msgs[n_err], "%s: %s", why, name);
      errs[n_err].code = (google_cloud_bigquery_storage_v1_StorageError_StorageErrorCode)code;
      errs[n_err].entity = (char *)name;
      errs[n_err].error_message = msgs[n_err];
      n_err++;
    } else {
      op->list[op->n++] = s;
    }
  }
  if (n_err) {
    pthread_mutex_unlock(&bq->mu);
    google_cloud_bigquery_storage_v1_BatchCommitWriteStreamsResponse resp;
    memset(&resp, 0, sizeof resp);
    resp.stream_errors_count = n_err;
    resp.stream_errors = errs;
    finish_msg(call, google_cloud_bigquery_storage_v1_BatchCommitWriteStreamsResponse_fields,
               &resp);
    trb_free(op->list);
    trb_free(op);
  } else {
    op->value = trb_clock_wall_us();
    for (size_t k = 0; k < op->n; k++) {
      op->list[k]->state = BQ_COMMITTED_STATE;
      op->list[k]->commit_us = op->value;
    }
    op->bq = bq;
    op->call = call;
    op->kind = 2;
    submit_unary_unlock(bq, op);
  }
  trb_free(errs);
  trb_free(msgs);
out:
  trb_pb_release(google_cloud_bigquery_storage_v1_BatchCommitWriteStreamsRequest_fields, &r);
}

/* ---- FlushRows ---------------------------------------------------------- */

static void h_flush(void *user, trb_rpc_server_call_t *call, const uint8_t *req, size_t len) {
  trb_bqemu_t *bq = user;
  if (take_fault(bq, call, M_FLUSH)) return;
  google_cloud_bigquery_storage_v1_FlushRowsRequest r;
  trb_status_t st;
  char msg[TRB_STATUS_MSG_MAX];
  if (trb_pb_decode(google_cloud_bigquery_storage_v1_FlushRowsRequest_fields, req, len, &r,
                    &st)) {
    trb_rpc_server_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, st.msg, NULL, 0, NULL, 0);
    goto out;
  }
  pthread_mutex_lock(&bq->mu);
  bq_stream_t *s = trb_bqemu_find_stream(bq, r.write_stream);
  if (!s) {
    pthread_mutex_unlock(&bq->mu);
    stream_not_found(call, r.write_stream);
    goto out;
  }
  if (s->type != BQ_BUFFERED) {
    snprintf(msg, sizeof msg, "FlushRows is only supported on BUFFERED streams; %s is %s",
             s->name, s->type == BQ_DEFAULT_TYPE ? "the _default stream" : type_word(s->type));
    pthread_mutex_unlock(&bq->mu);
    finish_err(call, GRPC_STATUS_INVALID_ARGUMENT, msg, SE(INVALID_STREAM_TYPE), r.write_stream);
    goto out;
  }
  int64_t off = r.has_offset ? r.offset.value : s->next - 1;
  if (off < 0 || off >= s->next) {
    snprintf(msg, sizeof msg, "The offset is beyond stream, expected offset %" PRId64
             ", received %" PRId64, s->next - 1 < 0 ? 0 : s->next - 1, off);
    pthread_mutex_unlock(&bq->mu);
    finish_err(call, GRPC_STATUS_OUT_OF_RANGE, msg, SE(OFFSET_OUT_OF_RANGE), r.write_stream);
    goto out;
  }
  if (off + 1 <= s->flushed) { /* already flushed: idempotent */
    pthread_mutex_unlock(&bq->mu);
    google_cloud_bigquery_storage_v1_FlushRowsResponse resp = {off};
    finish_msg(call, google_cloud_bigquery_storage_v1_FlushRowsResponse_fields, &resp);
    goto out;
  }
  unary_op_t *op = trb_calloc(1, sizeof *op);
  if (!op) {
    pthread_mutex_unlock(&bq->mu);
    trb_rpc_server_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL, 0,
                               NULL, 0);
    goto out;
  }
  op->prev_flushed = s->flushed;
  s->flushed = off + 1;
  op->bq = bq;
  op->call = call;
  op->kind = 3;
  op->s = s;
  op->value = off;
  submit_unary_unlock(bq, op);
out:
  trb_pb_release(google_cloud_bigquery_storage_v1_FlushRowsRequest_fields, &r);
}

grpc_status_code trb_bqemu_register(trb_bqemu_t *bq, trb_rpc_server_t *srv,
                                    trb_status_t *st) {
  grpc_status_code c;
  if ((c = trb_rpc_server_add_unary(srv, M_CREATE, h_create, bq, st))) return c;
  if ((c = trb_rpc_server_add_unary(srv, M_GET, h_get, bq, st))) return c;
  if ((c = trb_rpc_server_add_unary(srv, M_FINALIZE, h_finalize, bq, st))) return c;
  if ((c = trb_rpc_server_add_unary(srv, M_COMMIT, h_commit, bq, st))) return c;
  if ((c = trb_rpc_server_add_unary(srv, M_FLUSH, h_flush, bq, st))) return c;
  return trb_bqemu_register_append(bq, srv, st);
}
