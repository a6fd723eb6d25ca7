/*
 * sql.c — `tributary sql`: query the stored BigQuery tables read-only.
 * Each table named in the query is copied into an in-memory schema named
 * after its dataset, so `SELECT * FROM dataset.table` works.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <jansson.h>
#include <sqlite3.h>

#include "src/common/alloc.h"
#include "src/common/arena.h"
#include "src/emulator/bigquery/bigquery.h"

static bool mentions(const char *sql, const char *name) {
  size_t n = strlen(name);
  for (const char *p = sql; *p; p++)
    if (strncasecmp(p, name, n) == 0) return true;
  return false;
}

static char *b64(const unsigned char *s, size_t n) {
  static const char t[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char *o = trb_malloc((n + 2) / 3 * 4 + 1), *w = o;
  if (!o) return NULL;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t x = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0) |
                 (i + 2 < n ? s[i + 2] : 0);
    *w++ = t[x >> 18];
    *w++ = t[x >> 12 & 63];
    *w++ = i + 1 < n ? t[x >> 6 & 63] : '=';
    *w++ = i + 2 < n ? t[x & 63] : '=';
  }
  *w = 0;
  return o;
}

/* Text of column i (owned; NULL -> "NULL"). */
static char *cell(sqlite3_stmt *q, int i) {
  switch (sqlite3_column_type(q, i)) {
    case SQLITE_NULL: return trb_strdup("NULL");
    case SQLITE_BLOB:
      return b64(sqlite3_column_blob(q, i), (size_t)sqlite3_column_bytes(q, i));
    default: return trb_strdup((const char *)sqlite3_column_text(q, i));
  }
}

static grpc_status_code attach_tables(sqlite3 *db, const char *sql, trb_status_t *st) {
  sqlite3_stmt *q;
  if (sqlite3_prepare_v2(db, "SELECT dataset, tbl FROM _store._bq_tables ORDER BY dataset", -1, &q,
                         NULL) != SQLITE_OK)
    return trb_status_set(st, GRPC_STATUS_NOT_FOUND, "no BigQuery tables: %s",
                          sqlite3_errmsg(db));
  grpc_status_code c = GRPC_STATUS_OK;
  char last[1100] = "";
  while (c == GRPC_STATUS_OK && sqlite3_step(q) == SQLITE_ROW) {
    const char *d = (const char *)sqlite3_column_text(q, 0);
    const char *t = (const char *)sqlite3_column_text(q, 1);
    if (!mentions(sql, t)) continue;
    trb_buf_t b = TRB_BUF_INIT;
    if (strcmp(last, d) != 0) {
      snprintf(last, sizeof last, "%s", d);
      trb_buf_appendf(&b, "ATTACH ':memory:' AS \"%s\";", d);
    }
    trb_buf_appendf(&b, "CREATE TABLE \"%s\".\"%s\" AS SELECT * FROM _store.\"%s.%s\";", d, t, d,
                    t);
    char *err = NULL;
    if (!b.data || sqlite3_exec(db, b.data, NULL, NULL, &err) != SQLITE_OK) {
      c = trb_status_set(st, GRPC_STATUS_INTERNAL, "loading %s.%s: %s", d, t,
                         err ? err : "out of memory");
    }
    sqlite3_free(err);
    trb_buf_deinit(&b);
  }
  sqlite3_finalize(q);
  return c;
}

grpc_status_code trb_bqemu_sql(const char *data_dir, const char *sql, bool json, FILE *out,
                               trb_status_t *st) {
  if (!data_dir)
    return trb_status_set(st, GRPC_STATUS_NOT_FOUND, "no --data-dir: nothing is stored");
  char *path = trb_bqemu_db_path(data_dir);
  if (!path) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  struct stat sb;
  if (stat(path, &sb) != 0) {
    grpc_status_code c =
        trb_status_set(st, GRPC_STATUS_NOT_FOUND, "%s: no BigQuery data in %s", path, data_dir);
    trb_free(path);
    return c;
  }
  /* A private in-memory main database (so the per-dataset schemas can be
   * written) with the stored file attached read-only as "_store". */
  sqlite3 *db = NULL;
  int rc = sqlite3_open_v2(":memory:", &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI, NULL);
  char *att = rc == SQLITE_OK ? sqlite3_mprintf("ATTACH 'file:%q?mode=ro' AS _store", path) : NULL;
  trb_free(path);
  if (rc == SQLITE_OK) rc = att ? sqlite3_exec(db, att, NULL, NULL, NULL) : SQLITE_NOMEM;
  sqlite3_free(att);
  if (rc != SQLITE_OK) {
    grpc_status_code c = trb_status_set(st, GRPC_STATUS_NOT_FOUND, "cannot open: %s",
                                        db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_close(db);
    return c;
  }
  sqlite3_busy_timeout(db, 5000);
  grpc_status_code c = attach_tables(db, sql, st);
  sqlite3_stmt *q = NULL;
  if (c == GRPC_STATUS_OK && sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
    c = trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT, "%s", sqlite3_errmsg(db));
  if (c == GRPC_STATUS_OK && !q)
    c = trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT, "empty SQL");
  if (c != GRPC_STATUS_OK) {
    sqlite3_close(db);
    return c;
  }
  int nc = sqlite3_column_count(q);
  size_t n_rows = 0, cap = 0;
  char **cells = NULL;
  size_t *width = trb_calloc((size_t)nc + 1, sizeof *width);
  for (int i = 0; width && i < nc; i++) width[i] = strlen(sqlite3_column_name(q, i));
  while (c == GRPC_STATUS_OK && width && (rc = sqlite3_step(q)) == SQLITE_ROW) {
    if (json) {
      json_t *o = json_object();
      for (int i = 0; o && i < nc; i++) {
        json_t *v;
        switch (sqlite3_column_type(q, i)) {
          case SQLITE_NULL: v = json_null(); break;
          case SQLITE_INTEGER: v = json_integer(sqlite3_column_int64(q, i)); break;
          case SQLITE_FLOAT: v = json_real(sqlite3_column_double(q, i)); break;
          default: {
            char *s = cell(q, i);
            v = json_string(s ? s : "");
            trb_free(s);
          }
        }
        json_object_set_new(o, sqlite3_column_name(q, i), v);
      }
      char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
      if (s) fprintf(out, "%s\n", s);
      free(s);
      json_decref(o);
      continue;
    }
    if (n_rows + 1 > cap) {
      cap = cap ? cap * 2 : 64;
      char **nc2 = trb_realloc(cells, cap * (size_t)nc * sizeof *cells);
      if (!nc2) {
        c = trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        break;
      }
      cells = nc2;
    }
    for (int i = 0; i < nc; i++) {
      char *s = cell(q, i);
      cells[n_rows * (size_t)nc + (size_t)i] = s;
      if (s && strlen(s) > width[i]) width[i] = strlen(s);
    }
    n_rows++;
  }
  if (c == GRPC_STATUS_OK && rc != SQLITE_DONE)
    c = trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT, "%s", sqlite3_errmsg(db));
  if (c == GRPC_STATUS_OK && !json && width) {
    for (int i = 0; i < nc; i++)
      fprintf(out, "%s%-*s", i ? " | " : "", (int)width[i], sqlite3_column_name(q, i));
    fputc('\n', out);
    for (int i = 0; i < nc; i++) {
      fputs(i ? "-+-" : "", out);
      for (size_t k = 0; k < width[i]; k++) fputc('-', out);
    }
    fputc('\n', out);
    for (size_t r = 0; r < n_rows; r++) {
      for (int i = 0; i < nc; i++) {
        const char *s = cells[r * (size_t)nc + (size_t)i];
        fprintf(out, "%s%-*s", i ? " | " : "", (int)width[i], s ? s : "");
      }
      fputc('\n', out);
    }
    fprintf(out, "(%zu row%s)\n", n_rows, n_rows == 1 ? "" : "s");
  }
  for (size_t k = 0; k < n_rows * (size_t)nc; k++) trb_free(cells[k]);
  trb_free(cells);
  trb_free(width);
  sqlite3_finalize(q);
  sqlite3_close(db);
  return c;
}
