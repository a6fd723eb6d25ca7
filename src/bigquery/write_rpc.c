/*
 * write_rpc.c — see write_rpc.h.
 */
#include "src/bigquery/write_rpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "google/cloud/bigquery/storage/v1/storage.pb.h"
#include "google/cloud/bigquery/storage/v1/stream.pb.h"
#include "src/bigquery/descriptor.h"
#include "src/bigquery/writer.h"
#include "src/common/alloc.h"
#include "src/rpc/pb.h"

#define SVC "/google.cloud.bigquery.storage.v1.BigQueryWrite/"

/* One unary call with routing header `params` ("key=value"); on OK the
 * response is in `resp` (trb_rpc_response_deinit), else `st` is set. */
static grpc_status_code call(trb_rpc_loop_t *loop, trb_rpc_channel_t *ch,
                             const char *method, const pb_msgdesc_t *fields,
                             const void *msg, const char *key, const char *value,
                             trb_rpc_response_t *resp, trb_status_t *st) {
  uint8_t *req = NULL;
  size_t len = 0;
  grpc_status_code code = trb_pb_encode(fields, msg, &req, &len, st);
  if (code != GRPC_STATUS_OK) return code;
  char *params = NULL;
  if (asprintf(&params, "%s=%s", key, value) < 0) {
    trb_free(req);
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  }
  trb_rpc_md_t md = {"x-goog-request-params", params, 0};
  trb_rpc_call_opts_t o = {0};
  o.md = &md;
  o.n_md = 1;
  memset(resp, 0, sizeof *resp);
  code = trb_rpc_unary_call(loop, ch, method, req, len, &o, resp);
  trb_free(req);
  free(params);
  if (code != GRPC_STATUS_OK) {
    trb_status_set(st, code, "%s: %s", method + strlen(SVC),
                   resp->message ? resp->message : "");
    trb_rpc_response_deinit(resp);
  }
  return code;
}

grpc_status_code trb_bq_rpc_open_stream(trb_rpc_loop_t *loop, trb_rpc_channel_t *ch,
                                        const char *table, int type, char **name,
                                        trb_bq_table_t *schema, trb_status_t *st) {
  memset(schema, 0, sizeof *schema);
  trb_rpc_response_t resp;
  grpc_status_code code;
  if (type != 0) {
    google_cloud_bigquery_storage_v1_CreateWriteStreamRequest r;
    memset(&r, 0, sizeof r);
    r.parent = (char *)table;
    r.has_write_stream = true;
    r.write_stream.type = (google_cloud_bigquery_storage_v1_WriteStream_Type)type;
    code = call(loop, ch, SVC "CreateWriteStream",
                google_cloud_bigquery_storage_v1_CreateWriteStreamRequest_fields, &r,
                "parent", table, &resp, st);
  } else {
    google_cloud_bigquery_storage_v1_GetWriteStreamRequest r;
    memset(&r, 0, sizeof r);
    r.name = *name;
    r.view = google_cloud_bigquery_storage_v1_WriteStreamView_FULL;
    code = call(loop, ch, SVC "GetWriteStream",
                google_cloud_bigquery_storage_v1_GetWriteStreamRequest_fields, &r, "name",
                *name, &resp, st);
  }
  if (code != GRPC_STATUS_OK) return code;
  google_cloud_bigquery_storage_v1_WriteStream ws;
  memset(&ws, 0, sizeof ws);
  code = trb_pb_decode(google_cloud_bigquery_storage_v1_WriteStream_fields,
                       resp.response, resp.response_len, &ws, st);
  trb_rpc_response_deinit(&resp);
  if (code == GRPC_STATUS_OK && !ws.has_table_schema) {
    code = trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "the write stream came without table_schema");
  }
  char *created = NULL;
  if (code == GRPC_STATUS_OK && type != 0) {
    if (!ws.name || !*ws.name) {
      code = trb_status_set(st, GRPC_STATUS_INTERNAL, "CreateWriteStream returned no name");
    } else if (!(created = trb_strdup(ws.name))) {
      code = trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    }
  }
  if (code == GRPC_STATUS_OK)
    code = trb_bq_table_from_write_schema(&ws.table_schema, schema, st);
  trb_pb_release(google_cloud_bigquery_storage_v1_WriteStream_fields, &ws);
  if (code != GRPC_STATUS_OK) {
    trb_free(created);
    return code;
  }
  if (type != 0) *name = created;
  return GRPC_STATUS_OK;
}

grpc_status_code trb_bq_rpc_finalize(trb_rpc_loop_t *loop, trb_rpc_channel_t *ch,
                                     const char *stream, int64_t *row_count,
                                     trb_status_t *st) {
  google_cloud_bigquery_storage_v1_FinalizeWriteStreamRequest r;
  memset(&r, 0, sizeof r);
  r.name = (char *)stream;
  trb_rpc_response_t resp;
  grpc_status_code code =
      call(loop, ch, SVC "FinalizeWriteStream",
           google_cloud_bigquery_storage_v1_FinalizeWriteStreamRequest_fields, &r, "name",
           stream, &resp, st);
  if (code != GRPC_STATUS_OK) return code;
  google_cloud_bigquery_storage_v1_FinalizeWriteStreamResponse fr;
  memset(&fr, 0, sizeof fr);
  code = trb_pb_decode(google_cloud_bigquery_storage_v1_FinalizeWriteStreamResponse_fields,
                       resp.response, resp.response_len, &fr, st);
  if (code == GRPC_STATUS_OK && row_count) *row_count = fr.row_count;
  trb_pb_release(google_cloud_bigquery_storage_v1_FinalizeWriteStreamResponse_fields, &fr);
  trb_rpc_response_deinit(&resp);
  return code;
}

grpc_status_code trb_bq_rpc_flush(trb_rpc_loop_t *loop, trb_rpc_channel_t *ch,
                                  const char *stream, int64_t offset, int64_t *flushed,
                                  trb_status_t *st) {
  google_cloud_bigquery_storage_v1_FlushRowsRequest r;
  memset(&r, 0, sizeof r);
  r.write_stream = (char *)stream;
  r.has_offset = true;
  r.offset.value = offset;
  trb_rpc_response_t resp;
  grpc_status_code code =
      call(loop, ch, SVC "FlushRows", google_cloud_bigquery_storage_v1_FlushRowsRequest_fields,
           &r, "write_stream", stream, &resp, st);
  if (code != GRPC_STATUS_OK) return code;
  google_cloud_bigquery_storage_v1_FlushRowsResponse fr;
  memset(&fr, 0, sizeof fr);
  code = trb_pb_decode(google_cloud_bigquery_storage_v1_FlushRowsResponse_fields,
                       resp.response, resp.response_len, &fr, st);
  if (code == GRPC_STATUS_OK && flushed) *flushed = fr.offset;
  trb_pb_release(google_cloud_bigquery_storage_v1_FlushRowsResponse_fields, &fr);
  trb_rpc_response_deinit(&resp);
  return code;
}

grpc_status_code trb_bq_batch_commit(trb_rpc_loop_t *loop,
                                     trb_rpc_channel_t *ch, const char *table,
                                     const char *const *streams, size_t n,
                                     int64_t *commit_time_us,
                                     trb_status_t *st) {
  if (!table || !streams || n == 0 || n > 0xffff)
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "batch commit: a table and 1..65535 streams");
  google_cloud_bigquery_storage_v1_BatchCommitWriteStreamsRequest r;
  memset(&r, 0, sizeof r);
  r.parent = (char *)table;
  r.write_streams_count = (pb_size_t)n;
  r.write_streams = (char **)streams;
  uint8_t *req = NULL;
  size_t len = 0;
  grpc_status_code code = trb_pb_encode(
      google_cloud_bigquery_storage_v1_BatchCommitWriteStreamsRequest_fields,
      &r, &req, &len, st);
  if (code != GRPC_STATUS_OK) return code;
  char *params = NULL;
  if (asprintf(&params, "parent=%s", table) < 0) {
    trb_free(req);
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  }
  trb_rpc_md_t md = {"x-goog-request-params", params, 0};
  trb_rpc_call_opts_t o = {0};
  o.md = &md;
  o.n_md = 1;
  trb_rpc_response_t resp = {0};
  code = trb_rpc_unary_call(loop, ch, SVC "BatchCommitWriteStreams", req, len,
                            &o, &resp);
  trb_free(req);
  free(params);
  if (code != GRPC_STATUS_OK) {
    trb_status_set(st, code, "BatchCommitWriteStreams: %s",
                   resp.message ? resp.message : "");
    trb_rpc_response_deinit(&resp);
    return code;
  }
  google_cloud_bigquery_storage_v1_BatchCommitWriteStreamsResponse br;
  memset(&br, 0, sizeof br);
  code = trb_pb_decode(
      google_cloud_bigquery_storage_v1_BatchCommitWriteStreamsResponse_fields,
      resp.response, resp.response_len, &br, st);
  trb_rpc_response_deinit(&resp);
  if (code == GRPC_STATUS_OK) {
    if (br.stream_errors_count > 0) {
      const google_cloud_bigquery_storage_v1_StorageError *e = &br.stream_errors[0];
      code = trb_status_set(st, GRPC_STATUS_FAILED_PRECONDITION,
                            "batch commit: %s: StorageError %d: %s",
                            e->entity ? e->entity : "?", (int)e->code,
                            e->error_message ? e->error_message : "");
    } else if (!br.has_commit_time) {
      code = trb_status_set(st, GRPC_STATUS_FAILED_PRECONDITION,
                            "batch commit: no commit_time (not committed)");
    } else if (commit_time_us) {
      *commit_time_us = br.commit_time.seconds * 1000000 +
                        br.commit_time.nanos / 1000;
    }
  }
  trb_pb_release(
      google_cloud_bigquery_storage_v1_BatchCommitWriteStreamsResponse_fields,
      &br);
  return code;
}

