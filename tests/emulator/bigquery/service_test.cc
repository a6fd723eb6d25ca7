// service_test.cc — BigQueryWrite emulator through the rpc client: every RPC,
// offsets, errors with StorageError codes and messages, row errors,
// visibility of PENDING / BUFFERED rows, durability across a restart.
#include "tests/emulator/bigquery/bq_fixture.h"

namespace {

using namespace bqt;

constexpr const char* kSchema =
    R"([{"name":"id","type":"INT64","mode":"REQUIRED"},{"name":"name","type":"STRING","maxLength":10},
        {"name":"ts","type":"TIMESTAMP"},{"name":"tags","type":"STRING","mode":"REPEATED"},
        {"name":"addr","type":"RECORD","fields":[{"name":"city","type":"STRING"}]}])";

struct Desc {
  google_protobuf_FieldDescriptorProto root_f[6];
  google_protobuf_FieldDescriptorProto addr_f[1];
  google_protobuf_DescriptorProto nested;
  google_protobuf_DescriptorProto root;
  explicit Desc(bool extra = false) {
    std::vector<F> fs = {{"id", 1, T_(INT64), L_(OPTIONAL), nullptr},
                         {"name", 2, T_(STRING), L_(OPTIONAL), nullptr},
                         {"ts", 3, T_(INT64), L_(OPTIONAL), nullptr},
                         {"tags", 4, T_(STRING), L_(REPEATED), nullptr},
                         {"addr", 5, T_(MESSAGE), L_(OPTIONAL), ".root.Addr"}};
    if (extra) fs.push_back({"colour", 6, T_(STRING), L_(OPTIONAL), nullptr});
    FillMsg(&root, "root", fs, root_f);
    FillMsg(&nested, "Addr", {{"city", 1, T_(STRING), L_(OPTIONAL), nullptr}}, addr_f);
    root.nested_type_count = 1;
    root.nested_type = &nested;
  }
};

std::string Row(int64_t id, const std::string& name = "n") { return Pb().Int(1, id).Str(2, name).b; }

class ServiceTest : public BqTest {
 protected:
  void SetUp() override {
    BqTest::SetUp();
    CreateTable("ds", "t", kSchema);
  }
  Desc desc_;
};

TEST_F(ServiceTest, CommittedOffsetsAreStartOffsets) {
  std::string s = CreateStream(1);
  Stream st;
  st.Start(loop_, ch_);
  Resp a = st.Call(Append(s.c_str(), &desc_.root, {Row(1)}));
  ASSERT_TRUE(a.ok) << a.message;
  EXPECT_TRUE(a.has_offset);
  EXPECT_EQ(0, a.offset);
  EXPECT_EQ(s, a.write_stream);
  Resp b = st.Call(Append(nullptr, nullptr, {Row(2), Row(3)}, 1));
  ASSERT_TRUE(b.ok) << b.message;
  EXPECT_EQ(1, b.offset);
  Resp c = st.Call(Append(nullptr, nullptr, {Row(4)}));
  ASSERT_TRUE(c.ok) << c.message;
  EXPECT_EQ(3, c.offset);
  st.Close();
  EXPECT_EQ(GRPC_STATUS_OK, st.code);
  auto rows = Query("SELECT id FROM ds.t ORDER BY id");
  ASSERT_EQ(4u, rows.size());
  EXPECT_EQ(R"({"id":1})", rows[0]);
  EXPECT_EQ(R"({"id":4})", rows[3]);
}

TEST_F(ServiceTest, OffsetErrorsCarryStorageErrorAndKeepTheStream) {
  std::string s = CreateStream(1);
  Stream st;
  st.Start(loop_, ch_);
  ASSERT_TRUE(st.Call(Append(s.c_str(), &desc_.root, {Row(1)}, 0)).ok);
  Resp dup = st.Call(Append(nullptr, nullptr, {Row(1)}, 0));
  EXPECT_EQ(GRPC_STATUS_ALREADY_EXISTS, dup.code);
  EXPECT_EQ("The offset is within stream, expected offset 1, received 0", dup.message);
  EXPECT_EQ(8, dup.se_code);  // OFFSET_ALREADY_EXISTS
  EXPECT_EQ(s, dup.se_entity);
  Resp gap = st.Call(Append(nullptr, nullptr, {Row(2)}, 10));
  EXPECT_EQ(GRPC_STATUS_OUT_OF_RANGE, gap.code);
  EXPECT_EQ("The offset is beyond stream, expected offset 1, received 10", gap.message);
  EXPECT_EQ(9, gap.se_code);  // OFFSET_OUT_OF_RANGE
  EXPECT_EQ(s, gap.se_entity);
  Resp ok = st.Call(Append(nullptr, nullptr, {Row(2)}, 1));
  ASSERT_TRUE(ok.ok) << ok.message;
  EXPECT_EQ(1, ok.offset);
  st.Close();
  EXPECT_EQ(2u, Query("SELECT * FROM ds.t").size());
}

TEST_F(ServiceTest, PipelinedRequestsAnsweredInOrder) {
  std::string s = CreateStream(1);
  Stream st;
  st.Start(loop_, ch_);
  st.Send(Append(s.c_str(), &desc_.root, {Row(1)}, 0));
  st.Send(Append(nullptr, nullptr, {Row(2)}, 5));  // error, behind a pending append
  st.Send(Append(nullptr, nullptr, {Row(2), Row(3)}, 1));
  for (int i = 0; i < 50; i++) st.Send(Append(nullptr, nullptr, {Row(10 + i)}));
  Resp a = st.Next(), b = st.Next(), c = st.Next();
  EXPECT_TRUE(a.ok);
  EXPECT_EQ(0, a.offset);
  EXPECT_EQ(GRPC_STATUS_OUT_OF_RANGE, b.code);
  EXPECT_TRUE(c.ok);
  EXPECT_EQ(1, c.offset);
  for (int i = 0; i < 50; i++) {
    Resp r = st.Next();
    ASSERT_TRUE(r.ok);
    EXPECT_EQ(3 + i, r.offset);
  }
  st.Close();
}

TEST_F(ServiceTest, DefaultStreamBothNamesNoOffsets) {
  Stream st;
  st.Start(loop_, ch_);
  Resp a = st.Call(Append("projects/demo/datasets/ds/tables/t/_default", &desc_.root, {Row(1)}));
  ASSERT_TRUE(a.ok) << a.message;
  EXPECT_FALSE(a.has_offset);
  Resp b = st.Call(Append("projects/demo/datasets/ds/tables/t/streams/_default", nullptr, {Row(2)}));
  ASSERT_TRUE(b.ok) << b.message;
  Resp c = st.Call(Append(nullptr, nullptr, {Row(3)}, 2));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, c.code);
  EXPECT_NE(std::string::npos, c.message.find("offset must not be set")) << c.message;
  st.Close();
  EXPECT_EQ(2u, Query("SELECT * FROM ds.t").size());
  // GetWriteStream answers for _default (FULL carries the schema).
  google_cloud_bigquery_storage_v1_GetWriteStreamRequest g = {};
  g.name = (char*)"projects/demo/datasets/ds/tables/t/_default";
  g.view = google_cloud_bigquery_storage_v1_WriteStreamView_FULL;
  std::string resp;
  ASSERT_EQ(GRPC_STATUS_OK, Unary("GetWriteStream", google_cloud_bigquery_storage_v1_GetWriteStreamRequest_fields,
                                  &g, &resp));
  google_cloud_bigquery_storage_v1_WriteStream ws;
  trb_status_t tst{};
  ASSERT_EQ(GRPC_STATUS_OK, trb_pb_decode(google_cloud_bigquery_storage_v1_WriteStream_fields,
                                          (const uint8_t*)resp.data(), resp.size(), &ws, &tst));
  EXPECT_STREQ("projects/demo/datasets/ds/tables/t/streams/_default", ws.name);
  EXPECT_TRUE(ws.has_table_schema);
  EXPECT_EQ(5, ws.table_schema.fields_count);
  trb_pb_release(google_cloud_bigquery_storage_v1_WriteStream_fields, &ws);
  g.view = google_cloud_bigquery_storage_v1_WriteStreamView_BASIC;
  ASSERT_EQ(GRPC_STATUS_OK, Unary("GetWriteStream", google_cloud_bigquery_storage_v1_GetWriteStreamRequest_fields,
                                  &g, &resp));
  ASSERT_EQ(GRPC_STATUS_OK, trb_pb_decode(google_cloud_bigquery_storage_v1_WriteStream_fields,
                                          (const uint8_t*)resp.data(), resp.size(), &ws, &tst));
  EXPECT_FALSE(ws.has_table_schema);
  trb_pb_release(google_cloud_bigquery_storage_v1_WriteStream_fields, &ws);
}

TEST_F(ServiceTest, RowErrorsRejectTheWholeRequest) {
  std::string s = CreateStream(1);
  Stream st;
  st.Start(loop_, ch_);
  std::string bad_ts = Pb().Int(1, 2).Int(3, INT64_MIN).b;
  std::string no_id = Pb().Str(2, "x").b;
  std::string long_name = Row(4, "abcdefghijkl");
  Resp r = st.Call(Append(s.c_str(), &desc_.root, {Row(1), bad_ts, no_id, long_name, "\xff"}));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, r.code);
  ASSERT_EQ(4u, r.row_errors.size());
  EXPECT_EQ(1, r.row_errors[0].first);
  EXPECT_EQ("Timestamp field value is out of range: -9223372036854775808 on field ts.", r.row_errors[0].second);
  EXPECT_EQ(2, r.row_errors[1].first);
  EXPECT_NE(std::string::npos, r.row_errors[1].second.find("id")) << r.row_errors[1].second;
  EXPECT_EQ(3, r.row_errors[2].first);
  EXPECT_EQ("Field name: STRING(10) has maximum length 10 but got a value with length 12 on field name.",
            r.row_errors[2].second);
  EXPECT_EQ(4, r.row_errors[3].first);
  Resp ok = st.Call(Append(nullptr, nullptr, {Row(1)}));
  ASSERT_TRUE(ok.ok);
  EXPECT_EQ(0, ok.offset);  // nothing of the failed request was written
  st.Close();
  EXPECT_EQ(1u, Query("SELECT * FROM ds.t").size());
}

TEST_F(ServiceTest, StoresReadableValues) {
  Stream st;
  st.Start(loop_, ch_);
  std::string row = Pb().Int(1, 7).Str(2, "a\"b").Int(3, 1704164645123456LL).Str(4, "x").Str(4, "y")
                        .Str(5, Pb().Str(1, "Oslo").b).b;
  ASSERT_TRUE(st.Call(Append("projects/demo/datasets/ds/tables/t/_default", &desc_.root, {row, Row(8)})).ok);
  st.Close();
  auto rows = Query("SELECT * FROM ds.t ORDER BY id");
  ASSERT_EQ(2u, rows.size());
  EXPECT_EQ(R"({"id":7,"name":"a\"b","ts":"2024-01-02T03:04:05.123456Z","tags":"[\"x\",\"y\"]","addr":"{\"city\":\"Oslo\"}"})",
            rows[0]);
  EXPECT_EQ(R"({"id":8,"name":"n","ts":null,"tags":"[]","addr":null})", rows[1]);
}

TEST_F(ServiceTest, SchemaMismatchExtraField) {
  Desc extra(true);
  std::string s = CreateStream(1);
  Stream st;
  st.Start(loop_, ch_);
  Resp r = st.Call(Append(s.c_str(), &extra.root, {Row(1)}));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, r.code);
  EXPECT_EQ(7, r.se_code);  // SCHEMA_MISMATCH_EXTRA_FIELDS
  EXPECT_NE(std::string::npos, r.message.find("colour")) << r.message;
  // The connection stays usable with a good schema.
  Resp ok = st.Call(Append(s.c_str(), &desc_.root, {Row(1)}));
  EXPECT_TRUE(ok.ok) << ok.message;
  st.Close();
}

TEST_F(ServiceTest, FirstRequestNeedsStreamAndSchema) {
  Stream st;
  st.Start(loop_, ch_);
  Resp a = st.Call(Append(nullptr, &desc_.root, {Row(1)}));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, a.code);
  EXPECT_NE(std::string::npos, a.message.find("write_stream is required")) << a.message;
  std::string s = CreateStream(1);
  Resp b = st.Call(Append(s.c_str(), nullptr, {Row(1)}));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, b.code);
  EXPECT_NE(std::string::npos, b.message.find("writer_schema")) << b.message;
  Resp c = st.Call(Append("projects/demo/datasets/ds/tables/t/streams/nope", &desc_.root, {Row(1)}));
  EXPECT_EQ(GRPC_STATUS_NOT_FOUND, c.code);
  EXPECT_EQ(3, c.se_code);  // STREAM_NOT_FOUND
  st.Close();
}

TEST_F(ServiceTest, MalformedAndOversizeRequests) {
  Stream st;
  st.Start(loop_, ch_);
  Resp a = st.Call(std::string("\x0a\xff\xff\xff", 4));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, a.code);
  std::string big(TRB_BQEMU_MAX_REQUEST_BYTES + 10, 'x');
  Resp b = st.Call(Append("projects/demo/datasets/ds/tables/t/_default", &desc_.root, {big}));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, b.code);
  EXPECT_NE(std::string::npos, b.message.find("too large")) << b.message;
  // Invalid descriptors: duplicate numbers, unresolvable type, recursion.
  Desc d;
  d.root_f[1].number = 1;
  Resp c = st.Call(Append("projects/demo/datasets/ds/tables/t/_default", &d.root, {Row(1)}));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, c.code);
  Desc d2;
  d2.root_f[4].type_name = (char*)".root.Missing";
  Resp e = st.Call(Append("projects/demo/datasets/ds/tables/t/_default", &d2.root, {Row(1)}));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, e.code);
  Resp ok = st.Call(Append("projects/demo/datasets/ds/tables/t/_default", &desc_.root, {Row(1)}));
  EXPECT_TRUE(ok.ok) << ok.message;
  st.Close();
}


TEST_F(ServiceTest, PendingInvisibleUntilCommit) {
  std::string s = CreateStream(2);
  Stream st;
  st.Start(loop_, ch_);
  ASSERT_TRUE(st.Call(Append(s.c_str(), &desc_.root, {Row(1), Row(2)})).ok);
  EXPECT_EQ(0u, Query("SELECT * FROM ds.t").size());
  // Commit before finalize fails with INVALID_STREAM_STATE and commits nothing.
  google_cloud_bigquery_storage_v1_BatchCommitWriteStreamsRequest bc = {};
  bc.parent = (char*)kTable;
  char* names[1] = {(char*)s.c_str()};
  bc.write_streams_count = 1;
  bc.write_streams = names;
  std::string resp;
  ASSERT_EQ(GRPC_STATUS_OK, Unary("BatchCommitWriteStreams",
                                  google_cloud_bigquery_storage_v1_BatchCommitWriteStreamsRequest_fields, &bc, &resp));
  google_cloud_bigquery_storage_v1_BatchCommitWriteStreamsResponse br;
  trb_status_t tst{};
  ASSERT_EQ(GRPC_STATUS_OK, trb_pb_decode(google_cloud_bigquery_storage_v1_BatchCommitWriteStreamsResponse_fields,
                                          (const uint8_t*)resp.data(), resp.size(), &br, &tst));
  EXPECT_FALSE(br.has_commit_time);
  ASSERT_EQ(1, br.stream_errors_count);
  EXPECT_EQ(5, br.stream_errors[0].code);  // INVALID_STREAM_STATE
  trb_pb_release(google_cloud_bigquery_storage_v1_BatchCommitWriteStreamsResponse_fields, &br);
  // Finalize: row_count; appends after it fail with STREAM_FINALIZED.
  google_cloud_bigquery_storage_v1_FinalizeWriteStreamRequest fr = {};
  fr.name = (char*)s.c_str();
  ASSERT_EQ(GRPC_STATUS_OK, Unary("FinalizeWriteStream",
                                  google_cloud_bigquery_storage_v1_FinalizeWriteStreamRequest_fields, &fr, &resp));
  google_cloud_bigquery_storage_v1_FinalizeWriteStreamResponse fresp;
  ASSERT_EQ(GRPC_STATUS_OK, trb_pb_decode(google_cloud_bigquery_storage_v1_FinalizeWriteStreamResponse_fields,
                                          (const uint8_t*)resp.data(), resp.size(), &fresp, &tst));
  EXPECT_EQ(2, fresp.row_count);
  Resp fin = st.Call(Append(nullptr, nullptr, {Row(3)}));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, fin.code);
  EXPECT_EQ("Stream has been finalized", fin.message);
  EXPECT_EQ(6, fin.se_code);  // STREAM_FINALIZED
  st.Close();
  // Atomic: a batch with one unknown stream commits nothing.
  char* two[2] = {(char*)s.c_str(), (char*)"projects/demo/datasets/ds/tables/t/streams/zzz"};
  bc.write_streams_count = 2;
  bc.write_streams = two;
  ASSERT_EQ(GRPC_STATUS_OK, Unary("BatchCommitWriteStreams",
                                  google_cloud_bigquery_storage_v1_BatchCommitWriteStreamsRequest_fields, &bc, &resp));
  ASSERT_EQ(GRPC_STATUS_OK, trb_pb_decode(google_cloud_bigquery_storage_v1_BatchCommitWriteStreamsResponse_fields,
                                          (const uint8_t*)resp.data(), resp.size(), &br, &tst));
  EXPECT_FALSE(br.has_commit_time);
  ASSERT_EQ(1, br.stream_errors_count);
  EXPECT_EQ(3, br.stream_errors[0].code);  // STREAM_NOT_FOUND
  trb_pb_release(google_cloud_bigquery_storage_v1_BatchCommitWriteStreamsResponse_fields, &br);
  EXPECT_EQ(0u, Query("SELECT * FROM ds.t").size());
  bc.write_streams_count = 1;
  bc.write_streams = names;
  ASSERT_EQ(GRPC_STATUS_OK, Unary("BatchCommitWriteStreams",
                                  google_cloud_bigquery_storage_v1_BatchCommitWriteStreamsRequest_fields, &bc, &resp));
  ASSERT_EQ(GRPC_STATUS_OK, trb_pb_decode(google_cloud_bigquery_storage_v1_BatchCommitWriteStreamsResponse_fields,
                                          (const uint8_t*)resp.data(), resp.size(), &br, &tst));
  EXPECT_TRUE(br.has_commit_time);
  EXPECT_EQ(0, br.stream_errors_count);
  trb_pb_release(google_cloud_bigquery_storage_v1_BatchCommitWriteStreamsResponse_fields, &br);
  EXPECT_EQ(2u, Query("SELECT * FROM ds.t").size());
  // Twice: STREAM_ALREADY_COMMITTED.
  ASSERT_EQ(GRPC_STATUS_OK, Unary("BatchCommitWriteStreams",
                                  google_cloud_bigquery_storage_v1_BatchCommitWriteStreamsRequest_fields, &bc, &resp));
  ASSERT_EQ(GRPC_STATUS_OK, trb_pb_decode(google_cloud_bigquery_storage_v1_BatchCommitWriteStreamsResponse_fields,
                                          (const uint8_t*)resp.data(), resp.size(), &br, &tst));
  ASSERT_EQ(1, br.stream_errors_count);
  EXPECT_EQ(2, br.stream_errors[0].code);
  trb_pb_release(google_cloud_bigquery_storage_v1_BatchCommitWriteStreamsResponse_fields, &br);
  EXPECT_EQ(2u, Query("SELECT * FROM ds.t").size());
}

TEST_F(ServiceTest, BufferedFlushIsIdempotent) {
  std::string s = CreateStream(3);
  Stream st;
  st.Start(loop_, ch_);
  ASSERT_TRUE(st.Call(Append(s.c_str(), &desc_.root, {Row(1), Row(2), Row(3)})).ok);
  EXPECT_EQ(0u, Query("SELECT * FROM ds.t").size());
  google_cloud_bigquery_storage_v1_FlushRowsRequest f = {};
  f.write_stream = (char*)s.c_str();
  f.has_offset = true;
  f.offset.value = 1;
  std::string resp;
  for (int i = 0; i < 2; i++) {
    ASSERT_EQ(GRPC_STATUS_OK, Unary("FlushRows", google_cloud_bigquery_storage_v1_FlushRowsRequest_fields, &f, &resp));
    EXPECT_EQ(2u, Query("SELECT * FROM ds.t").size());
  }
  f.offset.value = 0;
  ASSERT_EQ(GRPC_STATUS_OK, Unary("FlushRows", google_cloud_bigquery_storage_v1_FlushRowsRequest_fields, &f, &resp));
  EXPECT_EQ(2u, Query("SELECT * FROM ds.t").size());
  f.offset.value = 3;
  std::string msg;
  EXPECT_EQ(GRPC_STATUS_OUT_OF_RANGE,
            Unary("FlushRows", google_cloud_bigquery_storage_v1_FlushRowsRequest_fields, &f, &resp, &msg));
  f.offset.value = 2;
  ASSERT_EQ(GRPC_STATUS_OK, Unary("FlushRows", google_cloud_bigquery_storage_v1_FlushRowsRequest_fields, &f, &resp));
  auto rows = Query("SELECT id FROM ds.t ORDER BY id");
  ASSERT_EQ(3u, rows.size());
  // FlushRows on a COMMITTED stream or _default: INVALID_ARGUMENT.
  std::string c = CreateStream(1);
  f.write_stream = (char*)c.c_str();
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            Unary("FlushRows", google_cloud_bigquery_storage_v1_FlushRowsRequest_fields, &f, &resp));
  st.Close();
}

TEST_F(ServiceTest, UnaryErrors) {
  CreateStream(1, GRPC_STATUS_NOT_FOUND, "projects/demo/datasets/ds/tables/nope");
  CreateStream(0, GRPC_STATUS_INVALID_ARGUMENT);
  CreateStream(1, GRPC_STATUS_INVALID_ARGUMENT, "garbage");
  google_cloud_bigquery_storage_v1_FinalizeWriteStreamRequest fr = {};
  fr.name = (char*)"projects/demo/datasets/ds/tables/t/_default";
  std::string resp;
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            Unary("FinalizeWriteStream", google_cloud_bigquery_storage_v1_FinalizeWriteStreamRequest_fields, &fr, &resp));
  fr.name = (char*)"projects/demo/datasets/ds/tables/t/streams/none";
  trb_rpc_status_details_t det = {};
  std::string msg;
  EXPECT_EQ(GRPC_STATUS_NOT_FOUND, Unary("FinalizeWriteStream",
                                         google_cloud_bigquery_storage_v1_FinalizeWriteStreamRequest_fields, &fr,
                                         &resp, &msg, &det));
  EXPECT_NE(nullptr, trb_rpc_status_details_find(&det, "google.cloud.bigquery.storage.v1.StorageError"));
  trb_rpc_status_details_deinit(&det);
  // Malformed protobuf on a unary call.
  trb_rpc_response_t out = {};
  std::string m = std::string(kSvc) + "GetWriteStream";
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_rpc_unary_call(loop_, ch_, m.c_str(), "\x0a\x05", 2, nullptr, &out));
  trb_rpc_response_deinit(&out);
}

TEST_F(ServiceTest, CreateTableAlreadyExists) {
  trb_bq_table_t t;
  trb_status_t st{};
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_table_parse(kSchema, strlen(kSchema), &t, &st));
  EXPECT_EQ(GRPC_STATUS_ALREADY_EXISTS, trb_bqemu_create_table(bq_, "ds", "t", &t, &st));
  trb_bq_table_deinit(&t);
  const char* other = R"([{"name":"id","type":"STRING"}])";
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_table_parse(other, strlen(other), &t, &st));
  EXPECT_EQ(GRPC_STATUS_FAILED_PRECONDITION, trb_bqemu_create_table(bq_, "ds", "t", &t, &st));
  trb_bq_table_deinit(&t);
}

TEST_F(ServiceTest, FaultsFailCallsAndDropStreams) {
  trb_status_t st{};
  const char* m = "/google.cloud.bigquery.storage.v1.BigQueryWrite/AppendRows";
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_add_error(faults_, m, 1, GRPC_STATUS_INTERNAL, "injected", &st));
  Stream a;
  a.Start(loop_, ch_);  // the open consumes the rule
  EXPECT_TRUE(a.cond.WaitFor([&] { return a.closed; }));
  EXPECT_EQ(GRPC_STATUS_INTERNAL, a.code);
  EXPECT_EQ("injected", a.message);
  Stream b;
  b.Start(loop_, ch_);
  EXPECT_TRUE(b.Call(Append("projects/demo/datasets/ds/tables/t/_default", &desc_.root, {Row(1)})).ok);
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_add_error(faults_, m, 1, GRPC_STATUS_INTERNAL, "injected", &st));
  Resp r = b.Call(Append(nullptr, nullptr, {Row(2)}));
  EXPECT_EQ(GRPC_STATUS_INTERNAL, r.code);  // in-stream; the stream stays usable
  EXPECT_TRUE(b.Call(Append(nullptr, nullptr, {Row(3)})).ok);
  EXPECT_EQ(2u, Query("SELECT * FROM ds.t").size());
  trb_faults_drop_streams(faults_, GRPC_STATUS_UNAVAILABLE, "dropped");
  EXPECT_TRUE(b.cond.WaitFor([&] { return b.closed; }));
  EXPECT_EQ(GRPC_STATUS_UNAVAILABLE, b.code);
}

TEST_F(ServiceTest, DurableAcrossRestart) {
  std::string s = CreateStream(1);
  {
    Stream st;
    st.Start(loop_, ch_);
    ASSERT_TRUE(st.Call(Append(s.c_str(), &desc_.root, {Row(1), Row(2)})).ok);
    st.Close();
  }
  std::string p = CreateStream(2);
  {
    Stream st;
    st.Start(loop_, ch_);
    ASSERT_TRUE(st.Call(Append(p.c_str(), &desc_.root, {Row(9)})).ok);
    st.Close();
  }
  Close();
  Open();
  Stream st;
  st.Start(loop_, ch_);
  Resp r = st.Call(Append(s.c_str(), &desc_.root, {Row(3)}));
  ASSERT_TRUE(r.ok) << r.message;
  EXPECT_EQ(2, r.offset);  // the next offset continues
  Resp dup = st.Call(Append(nullptr, nullptr, {Row(3)}, 0));
  EXPECT_EQ(GRPC_STATUS_ALREADY_EXISTS, dup.code);
  Resp pr = st.Call(Append(p.c_str(), &desc_.root, {Row(10)}));
  ASSERT_TRUE(pr.ok) << pr.message;
  EXPECT_EQ(1, pr.offset);
  st.Close();
  EXPECT_EQ(3u, Query("SELECT * FROM ds.t").size());  // pending rows stay invisible
}

TEST_F(ServiceTest, NewDestinationNeedsWriterSchema) {
  std::string a = CreateStream(1);
  std::string b = CreateStream(1);
  Stream st;
  st.Start(loop_, ch_);
  ASSERT_TRUE(st.Call(Append(a.c_str(), &desc_.root, {Row(1)})).ok);
  Resp no = st.Call(Append(b.c_str(), nullptr, {Row(2)}));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, no.code);
  EXPECT_NE(std::string::npos, no.message.find("writer_schema")) << no.message;
  Resp still_a = st.Call(Append(nullptr, nullptr, {Row(3)}));  // destination unchanged
  ASSERT_TRUE(still_a.ok) << still_a.message;
  EXPECT_EQ(a, still_a.write_stream);
  EXPECT_EQ(1, still_a.offset);
  Resp yes = st.Call(Append(b.c_str(), &desc_.root, {Row(4)}));
  ASSERT_TRUE(yes.ok) << yes.message;
  EXPECT_EQ(b, yes.write_stream);
  EXPECT_EQ(0, yes.offset);
  Resp later = st.Call(Append(nullptr, nullptr, {Row(5)}));
  ASSERT_TRUE(later.ok) << later.message;
  EXPECT_EQ(b, later.write_stream);
  st.Close();
}

// Two connections pipelining appends into one PENDING stream while it is
// finalized and committed: every acknowledged row is committed (none left
// staged), finalize's row_count counts exactly the acknowledged rows
// reserved before it, and after a restart the stream's next offset is the
// end of the acknowledged rows.
TEST_F(ServiceTest, ConcurrentAppendsFinalizeAndCommit) {
  int64_t total = 0;
  for (int round = 0; round < 5; round++) {
    std::string s = CreateStream(2);
    constexpr int kPer = 150;
    Stream c1, c2;
    c1.Start(loop_, ch_);
    c2.Start(loop_, ch_);
    for (int i = 0; i < kPer; i++) {
      c1.Send(Append(i ? nullptr : s.c_str(), i ? nullptr : &desc_.root, {Row(i), Row(i)}));
      c2.Send(Append(i ? nullptr : s.c_str(), i ? nullptr : &desc_.root, {Row(i)}));
    }
    google_cloud_bigquery_storage_v1_FinalizeWriteStreamRequest fr = {};
    fr.name = (char*)s.c_str();
    std::string resp;
    ASSERT_EQ(GRPC_STATUS_OK, Unary("FinalizeWriteStream",
                                    google_cloud_bigquery_storage_v1_FinalizeWriteStreamRequest_fields, &fr, &resp));
    google_cloud_bigquery_storage_v1_BatchCommitWriteStreamsRequest bc = {};
    bc.parent = (char*)kTable;
    char* names[1] = {(char*)s.c_str()};
    bc.write_streams_count = 1;
    bc.write_streams = names;
    std::string cresp;
    ASSERT_EQ(GRPC_STATUS_OK, Unary("BatchCommitWriteStreams",
                                    google_cloud_bigquery_storage_v1_BatchCommitWriteStreamsRequest_fields, &bc, &cresp));
    int64_t acked = 0, max_end = 0;
    for (Stream* c : {&c1, &c2}) {
      for (int i = 0; i < kPer; i++) {
        Resp r = c->Next();
        if (!r.ok) {
          EXPECT_EQ(6, r.se_code) << r.message;  // STREAM_FINALIZED
          continue;
        }
        int64_t n = c == &c1 ? 2 : 1;
        acked += n;
        max_end = std::max(max_end, r.offset + n);
      }
      c->Close();
    }
    google_cloud_bigquery_storage_v1_FinalizeWriteStreamResponse fresp;
    trb_status_t tst{};
    ASSERT_EQ(GRPC_STATUS_OK, trb_pb_decode(google_cloud_bigquery_storage_v1_FinalizeWriteStreamResponse_fields,
                                            (const uint8_t*)resp.data(), resp.size(), &fresp, &tst));
    EXPECT_EQ(acked, fresp.row_count);
    EXPECT_EQ(acked, max_end);
    total += acked;
    EXPECT_EQ("{\"n\":" + std::to_string(total) + "}", Query("SELECT count(*) AS n FROM ds.t")[0]);
  }
}

// Two connections on one COMMITTED stream: after a restart the next offset
// is the number of acknowledged rows (the durable next_offset never goes
// backwards whatever order the two connections' appends were queued in).
TEST_F(ServiceTest, TwoConnectionsOneStreamDurableNextOffset) {
  std::string s = CreateStream(1);
  constexpr int kPer = 300;
  {
    Stream c1, c2;
    c1.Start(loop_, ch_);
    c2.Start(loop_, ch_);
    for (int i = 0; i < kPer; i++) {
      c1.Send(Append(i ? nullptr : s.c_str(), i ? nullptr : &desc_.root, {Row(i)}));
      c2.Send(Append(i ? nullptr : s.c_str(), i ? nullptr : &desc_.root, {Row(i), Row(i)}));
    }
    for (int i = 0; i < kPer; i++) {
      ASSERT_TRUE(c1.Next().ok);
      ASSERT_TRUE(c2.Next().ok);
    }
    c1.Close();
    c2.Close();
  }
  Close();
  Open();
  Stream st;
  st.Start(loop_, ch_);
  Resp r = st.Call(Append(s.c_str(), &desc_.root, {Row(1)}));
  ASSERT_TRUE(r.ok) << r.message;
  EXPECT_EQ(3 * kPer, r.offset);
  st.Close();
  EXPECT_EQ("{\"n\":" + std::to_string(3 * kPer + 1) + "}", Query("SELECT count(*) AS n FROM ds.t")[0]);
}

}  // namespace
