/*
 * write_rpc.h — the unary BigQueryWrite calls the writer makes
 * (CreateWriteStream, GetWriteStream, FinalizeWriteStream, FlushRows), each
 * blocking on one trb_rpc_unary_call with the `x-goog-request-params`
 * routing header (PROTOCOL.md fact 25). Internal to //src/bigquery:writer;
 * trb_bq_batch_commit (writer.h) is implemented here too.
 *
 * Every function: blocks; must not be called on `loop`'s thread; `loop`
 * and `ch` borrowed. Messages in `st` start with the method name.
 * Threading: thread-safe (no state).
 * Source: google/cloud/bigquery/storage/v1/storage.proto, stream.proto;
 * PROTOCOL.md A facts 9, 10, 26, 28.
 */
#ifndef TRB_SRC_BIGQUERY_WRITE_RPC_H
#define TRB_SRC_BIGQUERY_WRITE_RPC_H

#include <stdint.h>

#include <grpc/status.h>

#include "src/bigquery/schema.h"
#include "src/common/status.h"
#include "src/rpc/rpc.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Open a write stream and fetch its table schema.
 * `type` is WriteStream.Type: 1 COMMITTED, 2 PENDING, 3 BUFFERED call
 * CreateWriteStream(parent=`table`) and `*name` receives the new stream's
 * name (trb_malloc'd; caller frees); 0 (_default) calls
 * GetWriteStream(name=`*name`, view FULL) and leaves `*name` alone.
 * `schema` receives the table schema (release with trb_bq_table_deinit).
 * Returns: OK; the RPC's status; INVALID_ARGUMENT (no table_schema, an
 *          unusable schema); INTERNAL (no name); RESOURCE_EXHAUSTED.
 */
grpc_status_code trb_bq_rpc_open_stream(trb_rpc_loop_t *loop, trb_rpc_channel_t *ch,
                                        const char *table, int type, char **name,
                                        trb_bq_table_t *schema, trb_status_t *st);

/**
 * FinalizeWriteStream(name=`stream`); `row_count` (may be NULL) receives
 * FinalizeWriteStreamResponse.row_count.
 * Returns: OK; the RPC's status; RESOURCE_EXHAUSTED.
 */
grpc_status_code trb_bq_rpc_finalize(trb_rpc_loop_t *loop, trb_rpc_channel_t *ch,
                                     const char *stream, int64_t *row_count,
                                     trb_status_t *st);

/**
 * FlushRows(write_stream=`stream`, offset=`offset`): rows up to and
 * including `offset` of a BUFFERED stream become visible (fact 28).
 * `flushed` (may be NULL) receives FlushRowsResponse.offset.
 * Returns: OK; the RPC's status; RESOURCE_EXHAUSTED.
 */
grpc_status_code trb_bq_rpc_flush(trb_rpc_loop_t *loop, trb_rpc_channel_t *ch,
                                  const char *stream, int64_t offset, int64_t *flushed,
                                  trb_status_t *st);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_BIGQUERY_WRITE_RPC_H */
