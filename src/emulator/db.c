/*
 * db.c — SQLite connection owned by one committer thread; group commit.
 *
 * Submitters append ops to a mutex-protected FIFO and signal. The committer
 * takes everything queued (up to max_batch_ops), runs BEGIN, then each op in
 * its own SAVEPOINT, then COMMIT, then every op's done callback. While a
 * batch commits, new ops queue up and form the next batch: the busier the
 * emulator, the more ops share one WAL append.
 */
#include "src/emulator/db.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "src/common/alloc.h"
#include "src/common/log.h"

typedef struct op_s {
  trb_db_apply_cb apply;
  trb_db_done_cb done;
  void *user;
  grpc_status_code code;
  trb_status_t st;
  struct op_s *next;
} op_t;

typedef struct stmt_s {
  char *sql;
  sqlite3_stmt *stmt;
  struct stmt_s *next;
} stmt_t;

#define STMT_BUCKETS 64

struct trb_db_s {
  sqlite3 *conn;
  char name[32];
  int max_batch_ops;

  pthread_mutex_t mu;
  pthread_cond_t cv;
  op_t *head, *tail;
  bool closing;
  pthread_t thread;
  bool thread_started;

  stmt_t *stmts[STMT_BUCKETS];
  long long n_ops, n_commits;
};

static uint32_t hash_sql(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
  return h;
}

grpc_status_code trb_db_error(trb_db_t *db, const char *what,
                              trb_status_t *st) {
  int rc = sqlite3_extended_errcode(db->conn) & 0xff;
  grpc_status_code code = GRPC_STATUS_INTERNAL;
  if (rc == SQLITE_FULL || rc == SQLITE_NOMEM) code = GRPC_STATUS_RESOURCE_EXHAUSTED;
  return trb_status_set(st, code, "%s: %s", what, sqlite3_errmsg(db->conn));
}

sqlite3_stmt *trb_db_stmt(trb_db_t *db, const char *sql, trb_status_t *st) {
  uint32_t b = hash_sql(sql) % STMT_BUCKETS;
  for (stmt_t *s = db->stmts[b]; s; s = s->next) {
    if (strcmp(s->sql, sql) == 0) {
      sqlite3_reset(s->stmt);
      sqlite3_clear_bindings(s->stmt);
      return s->stmt;
    }
  }
  stmt_t *s = trb_calloc(1, sizeof(*s));
  if (s) s->sql = trb_strdup(sql);
  if (!s || !s->sql) {
    if (s) trb_free(s);
    trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "statement cache");
    return NULL;
  }
  if (sqlite3_prepare_v3(db->conn, sql, -1, SQLITE_PREPARE_PERSISTENT,
                         &s->stmt, NULL) != SQLITE_OK) {
    trb_db_error(db, "prepare", st);
    sqlite3_finalize(s->stmt);
    trb_free(s->sql);
    trb_free(s);
    return NULL;
  }
  s->next = db->stmts[b];
  db->stmts[b] = s;
  return s->stmt;
}

grpc_status_code trb_db_exec(trb_db_t *db, const char *sql, trb_status_t *st) {
  char *err = NULL;
  if (sqlite3_exec(db->conn, sql, NULL, NULL, &err) != SQLITE_OK) {
    int rc = sqlite3_extended_errcode(db->conn) & 0xff;
    grpc_status_code code = (rc == SQLITE_FULL || rc == SQLITE_NOMEM)
                                ? GRPC_STATUS_RESOURCE_EXHAUSTED
                                : GRPC_STATUS_INTERNAL;
    trb_status_set(st, code, "%s", err ? err : sqlite3_errmsg(db->conn));
    sqlite3_free(err);
    return code;
  }
  return GRPC_STATUS_OK;
}

/* Run one batch: BEGIN; per op SAVEPOINT/apply/RELEASE or ROLLBACK TO;
 * COMMIT. On a failed COMMIT every op that succeeded gets the failure. */
static void run_batch(trb_db_t *db, op_t *batch) {
  trb_status_t st = {0};
  grpc_status_code begin = trb_db_exec(db, "BEGIN IMMEDIATE", &st);
  for (op_t *op = batch; op; op = op->next) {
    if (begin != GRPC_STATUS_OK) {
      op->code = begin;
      op->st = st;
      continue;
    }
    if (trb_db_exec(db, "SAVEPOINT op", &op->st) != GRPC_STATUS_OK) {
      op->code = op->st.code;
      continue;
    }
    op->code = op->apply(db, db->conn, op->user, &op->st);
    if (op->code != GRPC_STATUS_OK) {
      trb_status_t ignore = {0};
      trb_db_exec(db, "ROLLBACK TO op", &ignore);
    }
    trb_status_t rst = {0};
    if (trb_db_exec(db, "RELEASE op", &rst) != GRPC_STATUS_OK &&
        op->code == GRPC_STATUS_OK) {
      op->code = rst.code;
      op->st = rst;
    }
  }
  if (begin == GRPC_STATUS_OK) {
    trb_status_t cst = {0};
    if (trb_db_exec(db, "COMMIT", &cst) != GRPC_STATUS_OK) {
      TRB_LOG(TRB_LOG_ERROR, "db", "%s: commit failed: %s", db->name, cst.msg);
      trb_status_t ignore = {0};
      trb_db_exec(db, "ROLLBACK", &ignore);
      for (op_t *op = batch; op; op = op->next) {
        if (op->code == GRPC_STATUS_OK) {
          op->code = cst.code == GRPC_STATUS_OK ? GRPC_STATUS_INTERNAL : cst.code;
          op->st = cst;
        }
      }
    }
  }
  /* Count before any done callback runs, so that a caller woken by one
   * sees its own transaction in trb_db_stats. */
  int n = 0;
  for (op_t *op = batch; op; op = op->next) n++;
  pthread_mutex_lock(&db->mu);
  db->n_ops += n;
  if (begin == GRPC_STATUS_OK) db->n_commits++;
  pthread_mutex_unlock(&db->mu);
  while (batch) {
    op_t *next = batch->next;
    if (batch->done) batch->done(batch->user, batch->code, &batch->st);
    trb_free(batch);
    batch = next;
  }
}

static void *committer_main(void *arg) {
  trb_db_t *db = arg;
  pthread_mutex_lock(&db->mu);
  for (;;) {
    while (!db->head && !db->closing) pthread_cond_wait(&db->cv, &db->mu);
    if (!db->head && db->closing) break;
    op_t *batch = db->head, *last = batch;
    int n = 1;
    while (last->next && n < db->max_batch_ops) {
      last = last->next;
      n++;
    }
    db->head = last->next;
    if (!db->head) db->tail = NULL;
    last->next = NULL;
    pthread_mutex_unlock(&db->mu);
    run_batch(db, batch);
    pthread_mutex_lock(&db->mu);
  }
  pthread_mutex_unlock(&db->mu);
  return NULL;
}

static grpc_status_code enqueue(trb_db_t *db, op_t *op, trb_status_t *st) {
  pthread_mutex_lock(&db->mu);
  if (db->closing) {
    pthread_mutex_unlock(&db->mu);
    trb_free(op);
    return trb_status_set(st, GRPC_STATUS_UNAVAILABLE, "%s database is closing",
                          db->name);
  }
  if (db->tail) db->tail->next = op;
  else db->head = op;
  db->tail = op;
  pthread_cond_signal(&db->cv);
  pthread_mutex_unlock(&db->mu);
  return GRPC_STATUS_OK;
}

grpc_status_code trb_db_submit(trb_db_t *db, trb_db_apply_cb apply,
                               trb_db_done_cb done, void *user,
                               trb_status_t *st) {
  op_t *op = trb_calloc(1, sizeof(*op));
  if (!op) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "db op");
  op->apply = apply;
  op->done = done;
  op->user = user;
  return enqueue(db, op, st);
}

typedef struct {
  trb_db_apply_cb apply;
  void *user;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool finished;
  grpc_status_code code;
  trb_status_t st;
} sync_op_t;

static grpc_status_code sync_apply(trb_db_t *db, sqlite3 *conn, void *user,
                                   trb_status_t *st) {
  sync_op_t *s = user;
  return s->apply(db, conn, s->user, st);
}

static void sync_done(void *user, grpc_status_code code,
                      const trb_status_t *st) {
  sync_op_t *s = user;
  pthread_mutex_lock(&s->mu);
  s->code = code;
  if (st) s->st = *st;
  s->finished = true;
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

grpc_status_code trb_db_run(trb_db_t *db, trb_db_apply_cb apply, void *user,
                            trb_status_t *st) {
  sync_op_t s = {.apply = apply, .user = user};
  pthread_mutex_init(&s.mu, NULL);
  pthread_cond_init(&s.cv, NULL);
  grpc_status_code code = trb_db_submit(db, sync_apply, sync_done, &s, st);
  if (code == GRPC_STATUS_OK) {
    pthread_mutex_lock(&s.mu);
    while (!s.finished) pthread_cond_wait(&s.cv, &s.mu);
    pthread_mutex_unlock(&s.mu);
    code = s.code;
    if (code != GRPC_STATUS_OK && st) *st = s.st;
  }
  pthread_cond_destroy(&s.cv);
  pthread_mutex_destroy(&s.mu);
  return code;
}

grpc_status_code trb_db_open(const char *path, const trb_db_options_t *opt,
                             trb_db_t **out, trb_status_t *st) {
  *out = NULL;
  trb_db_t *db = trb_calloc(1, sizeof(*db));
  if (!db) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "db");
  snprintf(db->name, sizeof(db->name), "%s",
           opt && opt->name ? opt->name : "db");
  db->max_batch_ops = opt && opt->max_batch_ops > 0 ? opt->max_batch_ops : 4096;
  pthread_mutex_init(&db->mu, NULL);
  pthread_cond_init(&db->cv, NULL);

  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(path ? path : ":memory:", &db->conn, flags, NULL);
  grpc_status_code code = GRPC_STATUS_OK;
  if (rc != SQLITE_OK) {
    code = trb_status_set(st, GRPC_STATUS_UNAVAILABLE, "open %s: %s",
                          path ? path : ":memory:",
                          db->conn ? sqlite3_errmsg(db->conn) : "out of memory");
  }
  if (code == GRPC_STATUS_OK) {
    sqlite3_busy_timeout(db->conn, 5000);
    char pragmas[256];
    snprintf(pragmas, sizeof(pragmas),
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s;"
             " PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY;"
             " PRAGMA wal_autocheckpoint=16384; PRAGMA journal_size_limit=67108864;",
             opt && opt->fsync ? "FULL" : "NORMAL");
    trb_status_t pst = {0};
    if (trb_db_exec(db, pragmas, &pst) != GRPC_STATUS_OK) {
      code = trb_status_set(st, GRPC_STATUS_UNAVAILABLE, "open %s: %s",
                            path ? path : ":memory:", pst.msg);
    }
  }
  if (code == GRPC_STATUS_OK) {
    if (pthread_create(&db->thread, NULL, committer_main, db) != 0) {
      code = trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                            "db committer thread");
    } else {
      db->thread_started = true;
    }
  }
  if (code != GRPC_STATUS_OK) {
    trb_db_close(db);
    return code;
  }
  *out = db;
  return GRPC_STATUS_OK;
}

void trb_db_close(trb_db_t *db) {
  if (!db) return;
  pthread_mutex_lock(&db->mu);
  db->closing = true;
  pthread_cond_broadcast(&db->cv);
  pthread_mutex_unlock(&db->mu);
  if (db->thread_started) pthread_join(db->thread, NULL);
  for (int b = 0; b < STMT_BUCKETS; b++) {
    stmt_t *s = db->stmts[b];
    while (s) {
      stmt_t *next = s->next;
      sqlite3_finalize(s->stmt);
      trb_free(s->sql);
      trb_free(s);
      s = next;
    }
  }
  if (db->conn) sqlite3_close(db->conn);
  pthread_cond_destroy(&db->cv);
  pthread_mutex_destroy(&db->mu);
  trb_free(db);
}

void trb_db_stats(trb_db_t *db, long long *ops, long long *commits) {
  pthread_mutex_lock(&db->mu);
  if (ops) *ops = db->n_ops;
  if (commits) *commits = db->n_commits;
  pthread_mutex_unlock(&db->mu);
}
