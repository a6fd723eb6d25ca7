// append_server.h — a BigQueryWrite.AppendRows-shaped streaming handler for
// rpc tests: checks request offsets arrive in order and answers each with an
// AppendRowsResponse carrying the same offset, optionally failing with a
// StorageError detail at a chosen offset.
#ifndef TRB_TESTS_RPC_APPEND_SERVER_H
#define TRB_TESTS_RPC_APPEND_SERVER_H

#include <cstdint>
#include <string>
#include <vector>

#include "google/cloud/bigquery/storage/v1/storage.pb.h"
#include "src/common/alloc.h"
#include "src/rpc/details.h"
#include "src/rpc/pb.h"
#include "src/rpc/server.h"
#include "tests/testutil/wait.h"

namespace trb_test {

constexpr char kAppendRows[] = "/google.cloud.bigquery.storage.v1.BigQueryWrite/AppendRows";
constexpr char kStream[] = "projects/p/datasets/d/tables/t/streams/s1";

inline std::vector<uint8_t> EncodeAppend(int64_t offset, const std::string& row) {
  trb_pb_view_t rows[1] = {{reinterpret_cast<const uint8_t*>(row.data()), row.size()}};
  google_cloud_bigquery_storage_v1_AppendRowsRequest req =
      google_cloud_bigquery_storage_v1_AppendRowsRequest_init_zero;
  req.write_stream = const_cast<char*>(kStream);
  req.has_offset = true;
  req.offset.value = offset;
  req.has_proto_rows = true;
  req.proto_rows.has_rows = true;
  req.proto_rows.rows.serialized_rows.items = rows;
  req.proto_rows.rows.serialized_rows.count = 1;
  uint8_t* buf = nullptr;
  size_t len = 0;
  trb_status_t st;
  if (trb_pb_encode(google_cloud_bigquery_storage_v1_AppendRowsRequest_fields, &req, &buf, &len,
                    &st) != GRPC_STATUS_OK) {
    return {};
  }
  std::vector<uint8_t> out(buf, buf + len);
  trb_free(buf);
  return out;
}

// Offset in an AppendRowsResponse's append_result, or -1.
inline int64_t DecodeAppendResult(const uint8_t* data, size_t len) {
  google_cloud_bigquery_storage_v1_AppendRowsResponse r =
      google_cloud_bigquery_storage_v1_AppendRowsResponse_init_zero;
  trb_status_t st;
  int64_t off = -1;
  if (trb_pb_decode(google_cloud_bigquery_storage_v1_AppendRowsResponse_fields, data, len, &r,
                    &st) == GRPC_STATUS_OK &&
      r.which_response == google_cloud_bigquery_storage_v1_AppendRowsResponse_append_result_tag &&
      r.response.append_result.has_offset) {
    off = r.response.append_result.offset.value;
  }
  trb_pb_release(google_cloud_bigquery_storage_v1_AppendRowsResponse_fields, &r);
  return off;
}

class AppendServer {
 public:
  // Fail with INVALID_ARGUMENT + StorageError(OFFSET_OUT_OF_RANGE) when this
  // offset arrives (-1: never).
  int64_t fail_at = -1;
  // Do not answer (hold the stream open) — for deadline/cancel/shutdown tests.
  bool silent = false;

  Cond cond;
  int started = 0;      // guarded by cond
  int done = 0;         // guarded by cond
  int cancelled = 0;    // guarded by cond
  int64_t received = 0; // guarded by cond
  int order_errors = 0; // guarded by cond
  // When > 0, no response is sent before this many streams have started.
  int barrier = 0;
  std::vector<trb_rpc_server_call_t*> held;  // guarded by cond (barrier)

  static trb_rpc_stream_handler_t Handler() {
    trb_rpc_stream_handler_t h = {};
    h.on_start = OnStart;
    h.on_message = OnMessage;
    h.on_half_close = OnHalfClose;
    h.on_done = OnDone;
    return h;
  }

 private:
  struct Call {
    int64_t next = 0;
    bool finished = false;
    std::vector<int64_t> pending;  // held by the barrier
  };

  static void Reply(trb_rpc_server_call_t* call, int64_t offset) {
    google_cloud_bigquery_storage_v1_AppendRowsResponse r =
        google_cloud_bigquery_storage_v1_AppendRowsResponse_init_zero;
    r.which_response = google_cloud_bigquery_storage_v1_AppendRowsResponse_append_result_tag;
    r.response.append_result.has_offset = true;
    r.response.append_result.offset.value = offset;
    uint8_t* buf = nullptr;
    size_t len = 0;
    trb_status_t st;
    if (trb_pb_encode(google_cloud_bigquery_storage_v1_AppendRowsResponse_fields, &r, &buf, &len,
                      &st) == GRPC_STATUS_OK) {
      trb_rpc_server_call_write(call, buf, len);
    }
    trb_free(buf);
  }

  static void Finish(trb_rpc_server_call_t* call, grpc_status_code code, const char* msg,
                     const std::vector<uint8_t>& details = {}) {
    auto* c = static_cast<Call*>(trb_rpc_server_call_user(call));
    if (c->finished) return;
    c->finished = true;
    trb_rpc_server_call_finish(call, code, msg, details.empty() ? nullptr : details.data(),
                               details.size(), nullptr, 0);
  }

  static void OnStart(void* user, trb_rpc_server_call_t* call) {
    auto* s = static_cast<AppendServer*>(user);
    trb_rpc_server_call_set_user(call, new Call());
    std::vector<trb_rpc_server_call_t*> release;
    s->cond.Update([&] {
      s->started++;
      if (s->barrier > 0) {
        s->held.push_back(call);
        if (static_cast<int>(s->held.size()) == s->barrier) release.swap(s->held);
      }
    });
    // The last stream to arrive answers everything the others held back
    // (tests using the barrier run one server thread).
    if (!release.empty()) {
      s->cond.Update([&] { s->barrier = 0; });
      for (auto* other : release) ReleaseHeld(other);
    }
  }

  static void ReleaseHeld(trb_rpc_server_call_t* call) {
    auto* c = static_cast<Call*>(trb_rpc_server_call_user(call));
    for (int64_t off : c->pending) Reply(call, off);
    c->pending.clear();
  }

  static void OnMessage(void* user, trb_rpc_server_call_t* call, const uint8_t* data, size_t len) {
    auto* s = static_cast<AppendServer*>(user);
    auto* c = static_cast<Call*>(trb_rpc_server_call_user(call));
    google_cloud_bigquery_storage_v1_AppendRowsRequest req =
        google_cloud_bigquery_storage_v1_AppendRowsRequest_init_zero;
    trb_status_t st;
    if (trb_pb_decode(google_cloud_bigquery_storage_v1_AppendRowsRequest_fields, data, len, &req,
                      &st) != GRPC_STATUS_OK) {
      trb_pb_release(google_cloud_bigquery_storage_v1_AppendRowsRequest_fields, &req);
      Finish(call, GRPC_STATUS_INVALID_ARGUMENT, st.msg);
      return;
    }
    int64_t off = req.has_offset ? req.offset.value : -1;
    trb_pb_view_list_free(&req.proto_rows.rows.serialized_rows);
    trb_pb_release(google_cloud_bigquery_storage_v1_AppendRowsRequest_fields, &req);
    bool in_order = off == c->next;
    c->next = off + 1;
    bool hold = false;
    s->cond.Update([&] {
      s->received++;
      if (!in_order) s->order_errors++;
      hold = s->barrier > 0;
    });
    if (off == s->fail_at) {
      FailWithStorageError(call, off);
      return;
    }
    if (s->silent) return;
    if (hold) {
      c->pending.push_back(off);
      return;
    }
    Reply(call, off);
  }

  static void FailWithStorageError(trb_rpc_server_call_t* call, int64_t off) {
    google_cloud_bigquery_storage_v1_StorageError se =
        google_cloud_bigquery_storage_v1_StorageError_init_zero;
    se.code = google_cloud_bigquery_storage_v1_StorageError_StorageErrorCode_OFFSET_OUT_OF_RANGE;
    se.entity = const_cast<char*>(kStream);
    std::string msg = "Offset " + std::to_string(off) + " is beyond the end of the stream";
    se.error_message = &msg[0];
    uint8_t* se_buf = nullptr;
    size_t se_len = 0;
    trb_status_t st;
    trb_pb_encode(google_cloud_bigquery_storage_v1_StorageError_fields, &se, &se_buf, &se_len, &st);
    trb_rpc_any_t any = {"type.googleapis.com/google.cloud.bigquery.storage.v1.StorageError",
                         se_buf, se_len};
    uint8_t* det = nullptr;
    size_t det_len = 0;
    trb_rpc_status_details_encode(GRPC_STATUS_OUT_OF_RANGE, msg.c_str(), &any, 1, &det, &det_len,
                                  &st);
    std::vector<uint8_t> details(det, det + det_len);
    trb_free(det);
    trb_free(se_buf);
    Finish(call, GRPC_STATUS_OUT_OF_RANGE, msg.c_str(), details);
  }

  static void OnHalfClose(void*, trb_rpc_server_call_t* call) {
    Finish(call, GRPC_STATUS_OK, nullptr);
  }

  static void OnDone(void* user, trb_rpc_server_call_t* call, bool cancelled) {
    auto* s = static_cast<AppendServer*>(user);
    auto* c = static_cast<Call*>(trb_rpc_server_call_user(call));
    bool was_finished = c->finished;
    if (!was_finished) {
      c->finished = true;
      trb_rpc_server_call_finish(call, GRPC_STATUS_CANCELLED, "gone", nullptr, 0, nullptr, 0);
    }
    delete c;
    s->cond.Update([&] {
      s->done++;
      if (cancelled) s->cancelled++;
    });
  }
};

}  // namespace trb_test

#endif  // TRB_TESTS_RPC_APPEND_SERVER_H
