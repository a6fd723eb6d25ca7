// bq_fixture.h — the BigQuery Write emulator on 127.0.0.1:0 over a durable
// db in a temp dir, with a client loop/channel and helpers to build
// AppendRows requests (hand-encoded rows, nanopb descriptors).
#ifndef TRB_TESTS_EMULATOR_BIGQUERY_BQ_FIXTURE_H
#define TRB_TESTS_EMULATOR_BIGQUERY_BQ_FIXTURE_H

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "google/cloud/bigquery/storage/v1/storage.pb.h"
#include "google/cloud/bigquery/storage/v1/stream.pb.h"
#include "src/common/alloc.h"
#include "src/emulator/bigquery/bigquery.h"
#include "src/rpc/details.h"
#include "src/rpc/pb.h"
#include "src/rpc/rpc.h"
#include "tests/testutil/wait.h"

namespace bqt {

constexpr const char* kSvc = "/google.cloud.bigquery.storage.v1.BigQueryWrite/";
constexpr const char* kTable = "projects/demo/datasets/ds/tables/t";

// Protobuf wire writer for rows.
struct Pb {
  std::string b;
  void Varint(uint64_t v) {
    while (v >= 0x80) {
      b.push_back((char)(v | 0x80));
      v >>= 7;
    }
    b.push_back((char)v);
  }
  Pb& Int(int f, int64_t v) {
    Varint((uint64_t)f << 3);
    Varint((uint64_t)v);
    return *this;
  }
  Pb& Str(int f, const std::string& s) {
    Varint((uint64_t)f << 3 | 2);
    Varint(s.size());
    b += s;
    return *this;
  }
};

// A field for descriptors: name, number, type, label, type_name.
struct F {
  const char* name;
  int number;
  google_protobuf_FieldDescriptorProto_Type type;
  google_protobuf_FieldDescriptorProto_Label label;
  const char* type_name;
};

#define T_(x) google_protobuf_FieldDescriptorProto_Type_TYPE_##x
#define L_(x) google_protobuf_FieldDescriptorProto_Label_LABEL_##x

inline void FillMsg(google_protobuf_DescriptorProto* d, const char* name, const std::vector<F>& fs,
                    google_protobuf_FieldDescriptorProto* storage) {
  memset(d, 0, sizeof *d);
  d->name = (char*)name;
  d->field_count = (pb_size_t)fs.size();
  d->field = storage;
  for (size_t i = 0; i < fs.size(); i++) {
    google_protobuf_FieldDescriptorProto* f = &storage[i];
    memset(f, 0, sizeof *f);
    f->name = (char*)fs[i].name;
    f->has_number = true;
    f->number = fs[i].number;
    f->has_type = true;
    f->type = fs[i].type;
    f->has_label = true;
    f->label = fs[i].label;
    f->type_name = (char*)fs[i].type_name;
  }
}

// Serialized AppendRowsRequest.
inline std::string Append(const char* stream, const google_protobuf_DescriptorProto* desc,
                          const std::vector<std::string>& rows, int64_t offset = -1) {
  google_cloud_bigquery_storage_v1_AppendRowsRequest r;
  memset(&r, 0, sizeof r);
  r.write_stream = (char*)stream;
  if (offset >= 0) {
    r.has_offset = true;
    r.offset.value = offset;
  }
  r.has_proto_rows = true;
  if (desc) {
    r.proto_rows.has_writer_schema = true;
    r.proto_rows.writer_schema.has_proto_descriptor = true;
    r.proto_rows.writer_schema.proto_descriptor = *desc;
  }
  r.proto_rows.has_rows = true;
  std::vector<trb_pb_view_t> v;
  for (const auto& s : rows) v.push_back({(const uint8_t*)s.data(), s.size()});
  r.proto_rows.rows.serialized_rows.items = v.data();
  r.proto_rows.rows.serialized_rows.count = v.size();
  uint8_t* out = nullptr;
  size_t n = 0;
  trb_status_t st{};
  EXPECT_EQ(GRPC_STATUS_OK,
            trb_pb_encode(google_cloud_bigquery_storage_v1_AppendRowsRequest_fields, &r, &out, &n, &st))
      << st.msg;
  std::string s((const char*)out, n);
  trb_free(out);
  return s;
}

// A decoded AppendRowsResponse, flattened.
struct Resp {
  bool ok = false;
  bool has_offset = false;
  int64_t offset = -1;
  int code = 0;
  std::string message;
  int se_code = -1;
  std::string se_entity;
  std::vector<std::pair<int64_t, std::string>> row_errors;
  std::string write_stream;
  bool has_updated_schema = false;
  std::vector<std::string> updated_fields;  // top-level names of updated_schema
};

inline Resp DecodeResp(const uint8_t* data, size_t len) {
  Resp out;
  google_cloud_bigquery_storage_v1_AppendRowsResponse r;
  memset(&r, 0, sizeof r);
  trb_status_t st{};
  EXPECT_EQ(GRPC_STATUS_OK,
            trb_pb_decode(google_cloud_bigquery_storage_v1_AppendRowsResponse_fields, data, len, &r, &st));
  if (r.which_response == google_cloud_bigquery_storage_v1_AppendRowsResponse_append_result_tag) {
    out.ok = true;
    out.has_offset = r.response.append_result.has_offset;
    out.offset = r.response.append_result.offset.value;
  } else {
    out.code = r.response.error.code;
    out.message = r.response.error.message ? r.response.error.message : "";
    for (pb_size_t i = 0; i < r.response.error.details_count; i++) {
      google_cloud_bigquery_storage_v1_StorageError se;
      const google_protobuf_Any* a = &r.response.error.details[i];
      if (trb_pb_decode(google_cloud_bigquery_storage_v1_StorageError_fields, a->value.data, a->value.len,
                        &se, &st) == GRPC_STATUS_OK) {
        out.se_code = se.code;
        out.se_entity = se.entity ? se.entity : "";
      }
      trb_pb_release(google_cloud_bigquery_storage_v1_StorageError_fields, &se);
    }
  }
  for (pb_size_t i = 0; i < r.row_errors_count; i++)
    out.row_errors.push_back({r.row_errors[i].index, r.row_errors[i].message ? r.row_errors[i].message : ""});
  if (r.write_stream) out.write_stream = r.write_stream;
  out.has_updated_schema = r.has_updated_schema;
  for (pb_size_t i = 0; r.has_updated_schema && i < r.updated_schema.fields_count; i++)
    out.updated_fields.push_back(r.updated_schema.fields[i].name ? r.updated_schema.fields[i].name : "");
  trb_pb_release(google_cloud_bigquery_storage_v1_AppendRowsResponse_fields, &r);
  return out;
}

// One AppendRows client stream collecting responses.
struct Stream {
  trb_test::Cond cond;
  std::deque<Resp> resps;  // guarded by cond
  bool closed = false;
  grpc_status_code code = GRPC_STATUS_UNKNOWN;
  std::string message;
  trb_rpc_stream_t* s = nullptr;

  void Start(trb_rpc_loop_t* loop, trb_rpc_channel_t* ch) {
    trb_rpc_stream_cbs_t cbs = {};
    cbs.on_message = [](void* u, trb_rpc_stream_t*, const uint8_t* d, size_t n) {
      Stream* self = (Stream*)u;
      Resp r = DecodeResp(d, n);
      self->cond.Update([&] { self->resps.push_back(r); });
    };
    cbs.on_close = [](void* u, trb_rpc_stream_t*, const trb_rpc_result_t* res) {
      Stream* self = (Stream*)u;
      self->cond.Update([&] {
        self->closed = true;
        self->code = res->code;
        self->message = res->message ? res->message : "";
      });
    };
    trb_status_t st{};
    std::string m = std::string(kSvc) + "AppendRows";
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_stream_start(loop, ch, m.c_str(), nullptr, &cbs, this, &s, &st)) << st.msg;
  }
  void Send(const std::string& req) { ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_stream_write(s, req.data(), req.size(), nullptr)); }
  Resp Next(int timeout_ms = 10000) {
    Resp r;
    bool got = cond.WaitFor([&] { return !resps.empty(); }, timeout_ms);
    EXPECT_TRUE(got) << "no AppendRows response";
    if (!got) return r;
    auto l = cond.Lock();
    r = resps.front();
    resps.pop_front();
    return r;
  }
  Resp Call(const std::string& req) {
    Send(req);
    return Next();
  }
  void Close() {
    if (!s) return;
    trb_rpc_stream_writes_done(s);
    EXPECT_TRUE(cond.WaitFor([&] { return closed; }));
    trb_rpc_stream_release(s);
    s = nullptr;
  }
  ~Stream() {
    if (s) {
      trb_rpc_stream_cancel(s);
      cond.WaitFor([&] { return closed; });
      trb_rpc_stream_release(s);
    }
  }
};

class BqTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/bqemu_test_XXXXXX";
    ASSERT_NE(nullptr, mkdtemp(tmpl));
    dir_ = tmpl;
    trb_rpc_init();
    Open();
  }

  void Open() {
    trb_status_t st{};
    faults_ = trb_faults_create();
    char* path = trb_bqemu_db_path(dir_.c_str());
    trb_db_options_t o = {};
    o.name = "bigquery";
    ASSERT_EQ(GRPC_STATUS_OK, trb_db_open(path, &o, &db_, &st)) << st.msg;
    trb_free(path);
    trb_bqemu_config_t c = {};
    c.db = db_;
    c.data_dir = dir_.c_str();
    c.project = "demo";
    c.faults = faults_;
    ASSERT_EQ(GRPC_STATUS_OK, trb_bqemu_create(&c, &bq_, &st)) << st.msg;
    trb_rpc_server_config_t sc = {};
    sc.host = "127.0.0.1";
    sc.n_threads = 2;
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_server_create(&sc, &srv_, &st)) << st.msg;
    ASSERT_EQ(GRPC_STATUS_OK, trb_bqemu_register(bq_, srv_, &st)) << st.msg;
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_server_start(srv_, &port_, &st)) << st.msg;
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_loop_create("bq-client", &loop_, &st));
    target_ = "127.0.0.1:" + std::to_string(port_);
    trb_rpc_channel_config_t cc = {};
    cc.target = target_.c_str();
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_channel_create(&cc, &ch_, &st));
  }

  void Close() {
    if (bq_) trb_bqemu_shutdown(bq_);
    trb_rpc_server_shutdown(srv_);
    if (loop_) {
      EXPECT_EQ(0, trb_rpc_loop_live_calls(loop_));
    }
    trb_rpc_loop_destroy(loop_);
    trb_rpc_channel_destroy(ch_);
    if (srv_) {
      EXPECT_EQ(0, trb_rpc_server_live_calls(srv_));
    }
    trb_rpc_server_destroy(srv_);
    trb_db_close(db_);
    trb_bqemu_destroy(bq_);
    trb_faults_destroy(faults_);
    loop_ = nullptr;
    ch_ = nullptr;
    srv_ = nullptr;
    db_ = nullptr;
    bq_ = nullptr;
    faults_ = nullptr;
  }

  void TearDown() override {
    Close();
    trb_rpc_shutdown();
    std::string cmd = "rm -rf " + dir_;
    EXPECT_EQ(0, system(cmd.c_str()));
  }

  void CreateTable(const char* dataset, const char* table, const char* json) {
    trb_bq_table_t t;
    trb_status_t st{};
    ASSERT_EQ(GRPC_STATUS_OK, trb_bq_table_parse(json, strlen(json), &t, &st)) << st.msg;
    ASSERT_EQ(GRPC_STATUS_OK, trb_bqemu_create_table(bq_, dataset, table, &t, &st)) << st.msg;
    trb_bq_table_deinit(&t);
  }

  // Unary call; returns the code, fills `resp` (serialized) and details.
  grpc_status_code Unary(const char* method, const pb_msgdesc_t* f, const void* req, std::string* resp,
                         std::string* msg = nullptr, trb_rpc_status_details_t* det = nullptr) {
    uint8_t* b = nullptr;
    size_t n = 0;
    trb_status_t st{};
    EXPECT_EQ(GRPC_STATUS_OK, trb_pb_encode(f, req, &b, &n, &st));
    trb_rpc_response_t out = {};
    std::string m = std::string(kSvc) + method;
    grpc_status_code c = trb_rpc_unary_call(loop_, ch_, m.c_str(), b, n, nullptr, &out);
    trb_free(b);
    if (resp) resp->assign((const char*)out.response, out.response_len);
    if (msg) *msg = out.message ? out.message : "";
    if (det && out.details) trb_rpc_status_details_decode(out.details, out.details_len, det, &st);
    trb_rpc_response_deinit(&out);
    return c;
  }

  std::string CreateStream(int type, grpc_status_code want = GRPC_STATUS_OK, const char* parent = kTable) {
    google_cloud_bigquery_storage_v1_CreateWriteStreamRequest r;
    memset(&r, 0, sizeof r);
    r.parent = (char*)parent;
    r.has_write_stream = true;
    r.write_stream.type = (google_cloud_bigquery_storage_v1_WriteStream_Type)type;
    std::string resp;
    EXPECT_EQ(want, Unary("CreateWriteStream", google_cloud_bigquery_storage_v1_CreateWriteStreamRequest_fields,
                          &r, &resp));
    if (want != GRPC_STATUS_OK) return "";
    google_cloud_bigquery_storage_v1_WriteStream ws;
    trb_status_t st{};
    EXPECT_EQ(GRPC_STATUS_OK, trb_pb_decode(google_cloud_bigquery_storage_v1_WriteStream_fields,
                                            (const uint8_t*)resp.data(), resp.size(), &ws, &st));
    std::string name = ws.name ? ws.name : "";
    EXPECT_TRUE(ws.has_table_schema);
    EXPECT_EQ(type, (int)ws.type);
    trb_pb_release(google_cloud_bigquery_storage_v1_WriteStream_fields, &ws);
    return name;
  }

  // Rows of `sql` as JSON lines.
  std::vector<std::string> Query(const std::string& sql) {
    char* buf = nullptr;
    size_t len = 0;
    FILE* f = open_memstream(&buf, &len);
    trb_status_t st{};
    EXPECT_EQ(GRPC_STATUS_OK, trb_bqemu_sql(dir_.c_str(), sql.c_str(), true, f, &st)) << st.msg;
    fclose(f);
    std::vector<std::string> out;
    std::string s(buf, len);
    free(buf);
    size_t p = 0;
    while (p < s.size()) {
      size_t e = s.find('\n', p);
      out.push_back(s.substr(p, e - p));
      p = e + 1;
    }
    return out;
  }

  std::string dir_;
  trb_faults_t* faults_ = nullptr;
  trb_db_t* db_ = nullptr;
  trb_bqemu_t* bq_ = nullptr;
  trb_rpc_server_t* srv_ = nullptr;
  int port_ = 0;
  std::string target_;
  trb_rpc_loop_t* loop_ = nullptr;
  trb_rpc_channel_t* ch_ = nullptr;
};

}  // namespace bqt

#endif  // TRB_TESTS_EMULATOR_BIGQUERY_BQ_FIXTURE_H
