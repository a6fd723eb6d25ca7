/*
 * db.h — the emulator's durable storage primitive: one SQLite connection
 * owned by one committer thread, with group commit.
 *
 * Model
 * -----
 * Every write is an "op": an `apply` function that runs on the committer
 * thread with the connection, inside a transaction shared with every other
 * op queued at the same moment (group commit: one COMMIT, and so one WAL
 * append, covers many ops). Each op runs inside its own SAVEPOINT, so an op
 * whose `apply` fails is rolled back alone and the others still commit.
 * After COMMIT returns, each op's `done` runs (on the committer thread) with
 * the op's outcome; only then may a service acknowledge the request to its
 * client. This is how an acknowledged Publish, append, commit or ack survives
 * `kill -9`: it was in a committed SQLite WAL transaction before the reply.
 *
 * Durability: WAL journal. `synchronous=NORMAL` (default) survives the
 * process being killed at any moment (the WAL is in the OS page cache);
 * `fsync = true` selects `synchronous=FULL`, which also survives power loss.
 * A NULL path gives a private in-memory database (nothing durable).
 *
 * Reads that must see committed state (start-up loading, `GetWriteStream`
 * bookkeeping) also go through ops: apply may SELECT freely.
 *
 * Source: SQLite C API (sqlite3_prepare_v3 with SQLITE_PREPARE_PERSISTENT,
 * SAVEPOINT/RELEASE, WAL mode, PRAGMA synchronous), https://sqlite.org/c3ref.
 */
#ifndef TRB_SRC_EMULATOR_DB_H
#define TRB_SRC_EMULATOR_DB_H

#include <stdbool.h>
#include <stddef.h>

#include <grpc/status.h>
#include <sqlite3.h>

#include "src/common/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct trb_db_s trb_db_t;

/** Open options. Zero-initialize. */
typedef struct trb_db_options_s {
  /** true: PRAGMA synchronous=FULL (power-loss safe); false: NORMAL. */
  bool fsync;
  /** Most ops committed in one transaction; 0 = 4096. */
  int max_batch_ops;
  /** Label used in logs ("pubsub", "bigquery"). Borrowed; may be NULL. */
  const char *name;
} trb_db_options_t;

/**
 * Open (creating if needed) the database at `path` and start its committer
 * thread. `path` NULL = private in-memory database.
 * Returns: OK; UNAVAILABLE when the file cannot be opened or locked (the
 *          message names the path and SQLite's reason); RESOURCE_EXHAUSTED.
 * Threading: thread-safe.
 */
grpc_status_code trb_db_open(const char *path, const trb_db_options_t *opt,
                             trb_db_t **out, trb_status_t *st);

/**
 * Finish every queued op (their `done` callbacks run), stop the committer
 * thread, finalize cached statements and close. NULL-safe. Must not be
 * called from an op callback. Threading: owner only; no submit may race it.
 */
void trb_db_close(trb_db_t *db);

/**
 * Apply callback: runs on the committer thread inside a SAVEPOINT.
 * Return OK to keep its changes, any other code (with `st` set) to roll
 * this op back. Use trb_db_stmt() for statements.
 */
typedef grpc_status_code (*trb_db_apply_cb)(trb_db_t *db, sqlite3 *conn,
                                            void *user, trb_status_t *st);

/**
 * Done callback: the op's outcome after the transaction ended. `code` is
 * apply's code, or the COMMIT failure (then every op of the batch gets it,
 * typically UNAVAILABLE / RESOURCE_EXHAUSTED for a full disk). `st` is
 * borrowed for the callback. Runs once, on the committer thread; it may
 * submit further ops (they go into a later transaction).
 */
typedef void (*trb_db_done_cb)(void *user, grpc_status_code code,
                               const trb_status_t *st);

/**
 * Queue an op. `done` may be NULL.
 * Returns: OK (callbacks will run exactly once each);
 *          UNAVAILABLE after trb_db_close began (callbacks never run);
 *          RESOURCE_EXHAUSTED (callbacks never run).
 * Threading: thread-safe, including from inside apply/done callbacks.
 */
grpc_status_code trb_db_submit(trb_db_t *db, trb_db_apply_cb apply,
                               trb_db_done_cb done, void *user,
                               trb_status_t *st);

/**
 * Queue an op and wait for its commit. Returns apply's code (or the
 * commit's). Must not be called from the committer thread (an apply or
 * done callback). Threading: thread-safe.
 */
grpc_status_code trb_db_run(trb_db_t *db, trb_db_apply_cb apply, void *user,
                            trb_status_t *st);

/**
 * A prepared statement for `sql`, cached for the connection's lifetime
 * (keyed by the SQL text), reset and with bindings cleared. NULL with `st`
 * set (INTERNAL, SQLite's message) when it does not prepare.
 * Threading: committer thread only (inside apply).
 */
sqlite3_stmt *trb_db_stmt(trb_db_t *db, const char *sql, trb_status_t *st);

/**
 * Run SQL without results (DDL, PRAGMA, several statements allowed).
 * Returns OK or INTERNAL with SQLite's message. Committer thread only.
 */
grpc_status_code trb_db_exec(trb_db_t *db, const char *sql, trb_status_t *st);

/**
 * Set `st` from the connection's last error: INTERNAL (RESOURCE_EXHAUSTED
 * for SQLITE_FULL/NOMEM), message "<what>: <sqlite errmsg>". Returns the
 * code. Committer thread only.
 */
grpc_status_code trb_db_error(trb_db_t *db, const char *what,
                              trb_status_t *st);

/** Ops committed so far / transactions committed (for benchmarks and
 *  tests). Thread-safe. */
void trb_db_stats(trb_db_t *db, long long *ops, long long *commits);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_EMULATOR_DB_H */
