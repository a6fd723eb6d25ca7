/*
 * bq_internal.h — shared state of the BigQuery Write emulator (service.c,
 * append.c). Not a public interface.
 */
#ifndef TRB_SRC_EMULATOR_BIGQUERY_BQ_INTERNAL_H
#define TRB_SRC_EMULATOR_BIGQUERY_BQ_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "src/emulator/bigquery/bigquery.h"
#include "src/emulator/bigquery/rowdec.h"

#define BQ_DEFAULT_TYPE 0 /* stream type of `_default` */
#define BQ_COMMITTED 1
#define BQ_PENDING 2
#define BQ_BUFFERED 3

#define BQ_OPEN 0
#define BQ_FINALIZED 1
#define BQ_COMMITTED_STATE 2

typedef struct bq_table_s bq_table_t;
typedef struct bq_stream_s bq_stream_t;
typedef struct bq_conn_s bq_conn_t;

/* A stream; every field is guarded by trb_bqemu_t.mu. */
struct bq_stream_s {
  char *name;        /* canonical name */
  bq_table_t *table;
  int type;          /* BQ_* */
  int state;         /* BQ_OPEN, BQ_FINALIZED, BQ_COMMITTED_STATE */
  int64_t next;      /* next offset, including appends not yet committed */
  int64_t committed; /* next offset as committed in the db */
  int64_t flushed;   /* BUFFERED: rows < flushed are visible */
  int64_t create_us, commit_us, finalize_us;
  uint64_t epoch;    /* bumped when a failed append voids later ones */
  bq_stream_t *hnext;
};

/* A table definition replaced by a schema update: kept until the table is
 * freed, because row decoding plans of open connections borrow it. */
typedef struct bq_old_def_s {
  trb_bq_table_t *def;
  struct bq_old_def_s *next;
} bq_old_def_t;

struct bq_table_s {
  char *dataset, *table;
  char *sql_name;     /* "dataset.table" */
  trb_bq_table_t *def; /* current definition; the pointer is replaced (under
                          trb_bqemu_t.mu) by trb_bqemu_update_table_schema,
                          the pointee never changes */
  uint64_t schema_ver; /* bumped by each schema update; guarded by mu */
  bq_old_def_t *old_defs;
  int64_t create_us;
  /* SQL texts: read and (on a schema update) replaced on the db committer
   * thread only. Column lists are explicit, so a statement built for an
   * older definition still inserts (the new columns NULL). */
  char *insert_sql;   /* INSERT INTO "d.t"(cols) VALUES(?...) */
  char *stage_sql;    /* INSERT INTO "_staging.d.t"(_stream,_offset,cols)
                         VALUES(?, ?, ?...) */
  char *move_sql;     /* INSERT INTO "d.t" SELECT cols FROM staging WHERE
                         _stream = ?1 AND _offset < ?2 ORDER BY _offset */
  char *unstage_sql;  /* DELETE FROM staging WHERE _stream = ?1 AND
                         _offset < ?2 */
  bq_stream_t dflt;   /* the `_default` stream */
  bq_table_t *next;
};

struct trb_bqemu_s {
  trb_db_t *db;
  char *project;
  trb_faults_t *faults;
  pthread_mutex_t mu; /* guards everything below and every bq_stream_t */
  bq_table_t *tables;
  bq_stream_t **buckets;
  size_t n_buckets, n_streams;
  uint64_t id_counter;
  bq_conn_t *conns;   /* open AppendRows calls */
  bool shutting_down;
};

/* service.c */
bq_table_t *trb_bqemu_find_table(trb_bqemu_t *bq, const char *dataset,
                                 size_t dlen, const char *table, size_t tlen);
/* Resolve a stream name (explicit or either `_default` form); mu held. */
bq_stream_t *trb_bqemu_find_stream(trb_bqemu_t *bq, const char *name);
/* google.rpc.Status with one StorageError detail, serialized. */
grpc_status_code trb_bqemu_storage_status(grpc_status_code code,
                                          const char *message, int se_code,
                                          const char *entity, uint8_t **out,
                                          size_t *out_len);
/* Bind decoded values of one row starting at parameter `first`. */
void trb_bqemu_bind_row(sqlite3_stmt *s, int first, const trb_bq_value_t *v,
                        size_t n, const char *text_base);

/* append.c */
grpc_status_code trb_bqemu_register_append(trb_bqemu_t *bq,
                                           trb_rpc_server_t *srv,
                                           trb_status_t *st);
/* End every open AppendRows call with code/message. */
void trb_bqemu_drop_conns(trb_bqemu_t *bq, grpc_status_code code,
                          const char *message);

#endif /* TRB_SRC_EMULATOR_BIGQUERY_BQ_INTERNAL_H */
