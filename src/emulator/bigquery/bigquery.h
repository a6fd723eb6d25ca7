/*
 * bigquery.h — the emulator's BigQuery Storage Write service
 * (google.cloud.bigquery.storage.v1.BigQueryWrite): CreateWriteStream,
 * AppendRows, GetWriteStream, FinalizeWriteStream, BatchCommitWriteStreams
 * and FlushRows over tables stored in SQLite.
 *
 * Storage (one SQLite file, trb_bqemu_db_path): every BigQuery table
 * `dataset.table` is the SQL table "dataset.table" with the BigQuery column
 * names; values are readable: INT64 and BOOL (0/1) integers, FLOAT64 reals,
 * STRING/JSON/GEOGRAPHY text, BYTES blobs, TIMESTAMP RFC 3339 UTC with
 * microseconds, DATE/DATETIME/TIME canonical text, NUMERIC/BIGNUMERIC
 * exact decimal text, RECORD and REPEATED columns JSON text. Rows of PENDING
 * and BUFFERED streams wait in the hidden "_staging.dataset.table" until
 * commit / flush move them; "_bq_tables" and "_bq_streams" hold the table
 * definitions and the streams (type, state, next offset, flushed offset,
 * create/commit/finalize time). A stream's rows and its offset bookkeeping
 * are written in one transaction. `tributary sql` (trb_bqemu_sql) makes
 * `SELECT * FROM dataset.table` work.
 *
 * Visibility: COMMITTED and `_default` rows at acknowledgement, PENDING at
 * BatchCommitWriteStreams, BUFFERED up to the FlushRows offset.
 *
 * Schema changes at run time (trb_bqemu_update_table_schema, also reachable
 * as EmulatorAdmin.UpdateTableSchema): additive only; AppendRows
 * connections whose writer schema predates the change get
 * AppendRowsResponse.updated_schema (fact 22). Fault injection
 * (src/emulator/faults.h) covers AppendRows opens and requests, latency,
 * dropped streams, and drop-after-write (rows written, reply lost).
 *
 * Threading: every function is thread-safe unless it says otherwise;
 * handlers run on the rpc server's threads and the db committer thread.
 * Source: google/cloud/bigquery/storage/v1/storage.proto, stream.proto;
 * PROTOCOL.md section A (facts 4–28, 33–37).
 */
#ifndef TRB_SRC_EMULATOR_BIGQUERY_BIGQUERY_H
#define TRB_SRC_EMULATOR_BIGQUERY_BIGQUERY_H

#include <stdbool.h>
#include <stdio.h>

#include <grpc/status.h>

#include "src/bigquery/schema.h"
#include "src/common/status.h"
#include "src/emulator/db.h"
#include "src/emulator/faults.h"
#include "src/rpc/server.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Largest AppendRowsRequest accepted, bytes (storage.proto: "less than
 *  10 MB"); larger requests get INVALID_ARGUMENT in-stream. */
#define TRB_BQEMU_MAX_REQUEST_BYTES (10 * 1000 * 1000)

typedef struct trb_bqemu_s trb_bqemu_t;

/** Service configuration; every pointer is borrowed and must outlive the
 *  service. */
typedef struct trb_bqemu_config_s {
  /** The database (src/emulator/db.h), opened by the caller: in memory when
   *  data_dir is NULL, else at trb_bqemu_db_path(data_dir). */
  trb_db_t *db;
  /** NULL = in memory. */
  const char *data_dir;
  /** Project of every resource name, e.g. "demo". */
  const char *project;
  /** Fault registry; may be NULL. */
  trb_faults_t *faults;
} trb_bqemu_config_t;

/**
 * Path of the BigQuery database under `data_dir`: "<data_dir>/bigquery.sqlite".
 * Returns a trb_malloc'd string (caller frees with trb_free); NULL on
 * allocation failure.
 */
char *trb_bqemu_db_path(const char *data_dir);

/**
 * Create the service: create the bookkeeping tables if needed and load the
 * stored tables and streams (next offsets continue where they were).
 * Returns: OK; INTERNAL (unreadable database); RESOURCE_EXHAUSTED.
 */
grpc_status_code trb_bqemu_create(const trb_bqemu_config_t *cfg,
                                  trb_bqemu_t **out, trb_status_t *st);

/**
 * Register the six BigQueryWrite methods on `srv` (before it starts).
 * Returns: OK; ALREADY_EXISTS / FAILED_PRECONDITION from the server.
 */
grpc_status_code trb_bqemu_register(trb_bqemu_t *bq, trb_rpc_server_t *srv,
                                    trb_status_t *st);

/**
 * Create table `dataset`.`table` (names: letters, digits, '_' and '-',
 * 1..1024 bytes) with definition `def` (borrowed; copied), durably.
 * Returns: OK; ALREADY_EXISTS when present with the same schema;
 *          FAILED_PRECONDITION when present with a different schema;
 *          INVALID_ARGUMENT (names); INTERNAL; RESOURCE_EXHAUSTED.
 * Threading: thread-safe; must not be called from a db callback.
 */
grpc_status_code trb_bqemu_create_table(trb_bqemu_t *bq, const char *dataset,
                                        const char *table,
                                        const trb_bq_table_t *def,
                                        trb_status_t *st);

/**
 * Change the schema of table `dataset`.`table` at run time to `def`
 * (borrowed; only its fields are used, table options are kept), as
 * BigQuery's tables.patch allows: additive changes only — every existing
 * column kept in place with its name, type and max_length/precision/
 * scale, its mode kept or relaxed REQUIRED -> NULLABLE (also inside
 * RECORDs); new columns (top level or inside RECORDs) after the existing
 * ones, NULLABLE or REPEATED. Durable (the SQL tables get the new columns,
 * NULL in existing rows).
 * Effect on AppendRows: requests decoded after the change use the new
 * definition for connections whose writer schema arrives afterwards;
 * connections whose writer schema predates the change keep decoding with
 * it (new columns NULL) and every OK response on them carries
 * AppendRowsResponse.updated_schema (the new TableSchema) until a request
 * brings a writer schema with every top-level column (fact 22). A
 * connection opened later with a writer schema that has fewer top-level
 * fields than the table also gets updated_schema. GetWriteStream and
 * CreateWriteStream return the new schema.
 * Returns: OK (also when `def` equals the current schema: nothing
 *          changes); NOT_FOUND (no such table); INVALID_ARGUMENT (not an
 *          additive change; the message names the column); INTERNAL;
 *          RESOURCE_EXHAUSTED.
 * Threading: thread-safe; blocks on the db; must not be called from a db
 * callback. Two concurrent updates of one table: one may fail (INTERNAL).
 * EmulatorAdmin.UpdateTableSchema reaches it through the fault registry
 * (trb_faults_update_table_schema) when the service has one.
 */
grpc_status_code trb_bqemu_update_table_schema(trb_bqemu_t *bq, const char *dataset,
                                               const char *table,
                                               const trb_bq_table_t *def,
                                               trb_status_t *st);

/**
 * End every open AppendRows stream with UNAVAILABLE and refuse new ones.
 * Call before shutting the rpc server down. Idempotent.
 */
void trb_bqemu_shutdown(trb_bqemu_t *bq);

/**
 * Free the service. REQUIRES: the rpc server was shut down (no handler
 * runs) and the db was closed or has no op of this service queued
 * (trb_db_close first is the safe order). NULL-safe.
 */
void trb_bqemu_destroy(trb_bqemu_t *bq);

/**
 * `tributary sql`: open the stored tables read-only in a new connection and
 * run `sql` (one statement), where `dataset.table` names a BigQuery table
 * (tables are copied into an in-memory schema per dataset for the query, so
 * only tables named in the text are loaded). Prints an aligned text table
 * with a header, or one JSON object per row when `json` (BYTES base64).
 * Returns: OK; INVALID_ARGUMENT with SQLite's message for bad SQL;
 *          NOT_FOUND when `data_dir` (NULL, or without bigquery.sqlite) has
 *          no BigQuery data; INTERNAL.
 * Threading: thread-safe (own connection).
 */
grpc_status_code trb_bqemu_sql(const char *data_dir, const char *sql,
                               bool json, FILE *out, trb_status_t *st);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_EMULATOR_BIGQUERY_BIGQUERY_H */
