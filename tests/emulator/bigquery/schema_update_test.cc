// schema_update_test.cc — trb_bqemu_update_table_schema: additive changes
// only (as BigQuery's tables.patch), new columns stored (durably), open
// AppendRows connections told through AppendRowsResponse.updated_schema
// until their writer schema has the new columns; the fault registry's hook
// (EmulatorAdmin.UpdateTableSchema); and the drop-after-write fault.
#include "src/bigquery/schema.h"
#include "src/emulator/admin.h"
#include "tests/emulator/bigquery/bq_fixture.h"
#include "tributary/emulator/v1/admin.pb.h"

namespace {

using namespace bqt;

constexpr const char* kSchema =
    R"([{"name":"id","type":"INT64","mode":"REQUIRED"},{"name":"name","type":"STRING"},)"
    R"({"name":"addr","type":"RECORD","fields":[{"name":"city","type":"STRING"}]}])";
constexpr const char* kSchema2 =
    R"([{"name":"id","type":"INT64","mode":"REQUIRED"},{"name":"name","type":"STRING"},)"
    R"({"name":"addr","type":"RECORD","fields":[{"name":"city","type":"STRING"},{"name":"zip","type":"STRING"}]},)"
    R"({"name":"colour","type":"STRING"},{"name":"tags","type":"STRING","mode":"REPEATED"}])";

struct Desc {
  google_protobuf_FieldDescriptorProto root_f[5];
  google_protobuf_FieldDescriptorProto addr_f[1];
  google_protobuf_DescriptorProto nested;
  google_protobuf_DescriptorProto root;
  explicit Desc(bool v2 = false) {
    std::vector<F> fs = {{"id", 1, T_(INT64), L_(OPTIONAL), nullptr},
                         {"name", 2, T_(STRING), L_(OPTIONAL), nullptr},
                         {"addr", 3, T_(MESSAGE), L_(OPTIONAL), ".root.Addr"}};
    if (v2) {
      fs.push_back({"colour", 4, T_(STRING), L_(OPTIONAL), nullptr});
      fs.push_back({"tags", 5, T_(STRING), L_(REPEATED), nullptr});
    }
    FillMsg(&root, "root", fs, root_f);
    FillMsg(&nested, "Addr", {{"city", 1, T_(STRING), L_(OPTIONAL), nullptr}}, addr_f);
    root.nested_type_count = 1;
    root.nested_type = &nested;
  }
};

std::string Row(int64_t id) { return Pb().Int(1, id).Str(2, "n").b; }
std::string Row2(int64_t id, const std::string& colour) { return Pb().Int(1, id).Str(4, colour).Str(5, "t").b; }

const std::vector<std::string> kV1 = {"id", "name", "addr"};
const std::vector<std::string> kV2 = {"id", "name", "addr", "colour", "tags"};

class SchemaUpdateTest : public BqTest {
 protected:
  void SetUp() override {
    BqTest::SetUp();
    CreateTable("ds", "t", kSchema);
  }
  grpc_status_code Update(const char* json, std::string* msg = nullptr) {
    trb_bq_table_t t;
    trb_status_t st{};
    EXPECT_EQ(GRPC_STATUS_OK, trb_bq_table_parse(json, strlen(json), &t, &st)) << st.msg;
    grpc_status_code c = trb_bqemu_update_table_schema(bq_, "ds", "t", &t, &st);
    trb_bq_table_deinit(&t);
    if (msg) *msg = st.msg;
    return c;
  }
  std::vector<std::string> StreamFields(const std::string& name) {
    google_cloud_bigquery_storage_v1_GetWriteStreamRequest r;
    memset(&r, 0, sizeof r);
    r.name = (char*)name.c_str();
    r.view = google_cloud_bigquery_storage_v1_WriteStreamView_FULL;
    std::string resp;
    EXPECT_EQ(GRPC_STATUS_OK,
              Unary("GetWriteStream", google_cloud_bigquery_storage_v1_GetWriteStreamRequest_fields, &r, &resp));
    google_cloud_bigquery_storage_v1_WriteStream ws;
    memset(&ws, 0, sizeof ws);
    trb_status_t st{};
    EXPECT_EQ(GRPC_STATUS_OK, trb_pb_decode(google_cloud_bigquery_storage_v1_WriteStream_fields,
                                            (const uint8_t*)resp.data(), resp.size(), &ws, &st));
    std::vector<std::string> out;
    for (pb_size_t i = 0; i < ws.table_schema.fields_count; i++) out.push_back(ws.table_schema.fields[i].name);
    trb_pb_release(google_cloud_bigquery_storage_v1_WriteStream_fields, &ws);
    return out;
  }
  Desc v1_, v2_{true};
};

TEST_F(SchemaUpdateTest, OpenConnectionsGetUpdatedSchemaUntilTheirWriterSchemaCatchesUp) {
  std::string s = CreateStream(1);
  Stream a;
  a.Start(loop_, ch_);
  Resp r = a.Call(Append(s.c_str(), &v1_.root, {Row(0)}));
  ASSERT_TRUE(r.ok) << r.message;
  EXPECT_FALSE(r.has_updated_schema);
  EXPECT_EQ(kV1, StreamFields(s));

  ASSERT_EQ(GRPC_STATUS_OK, Update(kSchema2));
  EXPECT_EQ(kV2, StreamFields(s));
  EXPECT_EQ(kV2, StreamFields(std::string(kTable) + "/_default"));
  // The open connection (old writer schema) is told, and keeps working.
  r = a.Call(Append(nullptr, nullptr, {Row(1)}));
  ASSERT_TRUE(r.ok) << r.message;
  EXPECT_TRUE(r.has_updated_schema);
  EXPECT_EQ(kV2, r.updated_fields);
  r = a.Call(Append(nullptr, nullptr, {Row(2)}));
  ASSERT_TRUE(r.ok) << r.message;
  EXPECT_TRUE(r.has_updated_schema);  // still behind
  // A new connection with the old writer schema is behind too.
  Stream b;
  b.Start(loop_, ch_);
  r = b.Call(Append(s.c_str(), &v1_.root, {Row(3)}));
  ASSERT_TRUE(r.ok) << r.message;
  EXPECT_TRUE(r.has_updated_schema);
  b.Close();
  // Before the change, a writer schema with the new column was an extra
  // field; now the new writer schema is accepted and the column stored.
  r = a.Call(Append(s.c_str(), &v2_.root, {Row2(4, "red")}));
  ASSERT_TRUE(r.ok) << r.message;
  EXPECT_FALSE(r.has_updated_schema);
  EXPECT_EQ(4, r.offset);
  r = a.Call(Append(nullptr, nullptr, {Row2(5, "blue")}));
  ASSERT_TRUE(r.ok) << r.message;
  EXPECT_FALSE(r.has_updated_schema);
  a.Close();
  EXPECT_EQ((std::vector<std::string>{R"({"id":0,"colour":null,"tags":null})", R"({"id":1,"colour":null,"tags":null})",
                                      R"({"id":2,"colour":null,"tags":null})", R"({"id":3,"colour":null,"tags":"[]"})",
                                      R"({"id":4,"colour":"red","tags":"[\"t\"]"})",
                                      R"({"id":5,"colour":"blue","tags":"[\"t\"]"})"}),
            Query("SELECT id, colour, tags FROM ds.t ORDER BY id"));
  // Durable: after a restart the table has the new schema.
  Close();
  Open();
  EXPECT_EQ(kV2, StreamFields(s));
  Stream c;
  c.Start(loop_, ch_);
  r = c.Call(Append(s.c_str(), &v2_.root, {Row2(6, "green")}));
  ASSERT_TRUE(r.ok) << r.message;
  EXPECT_FALSE(r.has_updated_schema);
  c.Close();
  EXPECT_EQ(std::vector<std::string>{R"({"colour":"green"})"}, Query("SELECT colour FROM ds.t WHERE id = 6"));
}

TEST_F(SchemaUpdateTest, BeforeTheChangeTheNewColumnIsAnExtraField) {
  std::string s = CreateStream(1);
  Stream a;
  a.Start(loop_, ch_);
  Resp r = a.Call(Append(s.c_str(), &v2_.root, {Row2(0, "red")}));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, r.code);
  EXPECT_EQ(7, r.se_code);  // SCHEMA_MISMATCH_EXTRA_FIELDS
  a.Close();
}

// Rows staged on a PENDING stream before the change are committed after it
// with the new columns NULL.
TEST_F(SchemaUpdateTest, StagedRowsCommitAfterTheChange) {
  std::string p = CreateStream(2);
  Stream a;
  a.Start(loop_, ch_);
  ASSERT_TRUE(a.Call(Append(p.c_str(), &v1_.root, {Row(0), Row(1)})).ok);
  ASSERT_EQ(GRPC_STATUS_OK, Update(kSchema2));
  ASSERT_TRUE(a.Call(Append(p.c_str(), &v2_.root, {Row2(2, "red")})).ok);
  a.Close();
  google_cloud_bigquery_storage_v1_FinalizeWriteStreamRequest f;
  memset(&f, 0, sizeof f);
  f.name = (char*)p.c_str();
  ASSERT_EQ(GRPC_STATUS_OK,
            Unary("FinalizeWriteStream", google_cloud_bigquery_storage_v1_FinalizeWriteStreamRequest_fields, &f, nullptr));
  google_cloud_bigquery_storage_v1_BatchCommitWriteStreamsRequest c;
  memset(&c, 0, sizeof c);
  c.parent = (char*)kTable;
  char* names[] = {(char*)p.c_str()};
  c.write_streams_count = 1;
  c.write_streams = names;
  ASSERT_EQ(GRPC_STATUS_OK, Unary("BatchCommitWriteStreams",
                                  google_cloud_bigquery_storage_v1_BatchCommitWriteStreamsRequest_fields, &c, nullptr));
  EXPECT_EQ((std::vector<std::string>{R"({"id":0,"colour":null})", R"({"id":1,"colour":null})",
                                      R"({"id":2,"colour":"red"})"}),
            Query("SELECT id, colour FROM ds.t ORDER BY id"));
}

TEST_F(SchemaUpdateTest, OnlyAdditiveChanges) {
  std::string msg;
  // dropped column
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, Update(R"([{"name":"id","type":"INT64","mode":"REQUIRED"}])", &msg));
  // type change
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            Update(R"([{"name":"id","type":"STRING","mode":"REQUIRED"},{"name":"name","type":"STRING"},)"
                   R"({"name":"addr","type":"RECORD","fields":[{"name":"city","type":"STRING"}]}])", &msg));
  EXPECT_NE(std::string::npos, msg.find("id")) << msg;
  // NULLABLE -> REQUIRED
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            Update(R"([{"name":"id","type":"INT64","mode":"REQUIRED"},{"name":"name","type":"STRING","mode":"REQUIRED"},)"
                   R"({"name":"addr","type":"RECORD","fields":[{"name":"city","type":"STRING"}]}])", &msg));
  // a new REQUIRED column, also inside a RECORD
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            Update(R"([{"name":"id","type":"INT64","mode":"REQUIRED"},{"name":"name","type":"STRING"},)"
                   R"({"name":"addr","type":"RECORD","fields":[{"name":"city","type":"STRING"}]},)"
                   R"({"name":"x","type":"STRING","mode":"REQUIRED"}])", &msg));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            Update(R"([{"name":"id","type":"INT64","mode":"REQUIRED"},{"name":"name","type":"STRING"},)"
                   R"({"name":"addr","type":"RECORD","fields":[{"name":"city","type":"STRING"},)"
                   R"({"name":"zip","type":"STRING","mode":"REQUIRED"}]}])", &msg));
  EXPECT_NE(std::string::npos, msg.find("addr.zip")) << msg;
  // reordered
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            Update(R"([{"name":"name","type":"STRING"},{"name":"id","type":"INT64","mode":"REQUIRED"},)"
                   R"({"name":"addr","type":"RECORD","fields":[{"name":"city","type":"STRING"}]}])", &msg));
  std::string s = CreateStream(1);
  EXPECT_EQ(kV1, StreamFields(s));
  // unknown table
  trb_bq_table_t t;
  trb_status_t st{};
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_table_parse(kSchema, strlen(kSchema), &t, &st));
  EXPECT_EQ(GRPC_STATUS_NOT_FOUND, trb_bqemu_update_table_schema(bq_, "ds", "nope", &t, &st));
  trb_bq_table_deinit(&t);
  // the same schema: OK, nothing changes (no updated_schema)
  EXPECT_EQ(GRPC_STATUS_OK, Update(kSchema));
  Stream a;
  a.Start(loop_, ch_);
  Resp r = a.Call(Append(s.c_str(), &v1_.root, {Row(0)}));
  ASSERT_TRUE(r.ok) << r.message;
  EXPECT_FALSE(r.has_updated_schema);
  // REQUIRED -> NULLABLE is allowed; the relaxed column may then be absent
  // for a writer schema that arrives afterwards.
  EXPECT_EQ(GRPC_STATUS_OK,
            Update(R"([{"name":"id","type":"INT64"},{"name":"name","type":"STRING"},)"
                   R"({"name":"addr","type":"RECORD","fields":[{"name":"city","type":"STRING"}]}])", &msg))
      << msg;
  r = a.Call(Append(s.c_str(), &v1_.root, {Pb().Str(2, "no id").b}));
  EXPECT_TRUE(r.ok) << r.message;
  a.Close();
}

// EmulatorAdmin.UpdateTableSchema reaches the service through the fault
// registry's hook; both name forms.
TEST_F(SchemaUpdateTest, FaultRegistryHook) {
  trb_status_t st{};
  const char* add1 =
      R"([{"name":"id","type":"INT64","mode":"REQUIRED"},{"name":"name","type":"STRING"},)"
      R"({"name":"addr","type":"RECORD","fields":[{"name":"city","type":"STRING"}]},{"name":"colour","type":"STRING"}])";
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_update_table_schema(faults_, "ds.t", add1, strlen(add1), &st)) << st.msg;
  ASSERT_EQ(GRPC_STATUS_OK,
            trb_faults_update_table_schema(faults_, kTable, kSchema2, strlen(kSchema2), &st)) << st.msg;
  EXPECT_EQ(kV2, StreamFields(CreateStream(1)));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_faults_update_table_schema(faults_, "nodot", add1, strlen(add1), &st));
  EXPECT_EQ(GRPC_STATUS_NOT_FOUND, trb_faults_update_table_schema(faults_, "ds.other", add1, strlen(add1), &st));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_faults_update_table_schema(faults_, "ds.t", "[", 1, &st));
}

// The admin RPCs over gRPC (a second server carrying EmulatorAdmin on the
// same fault registry): UpdateTableSchema and InjectFault.drop_after_write.
TEST_F(SchemaUpdateTest, AdminRpcs) {
  trb_status_t st{};
  trb_rpc_server_t* admin = nullptr;
  trb_rpc_server_config_t sc = {};
  sc.host = "127.0.0.1";
  sc.n_threads = 1;
  ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_server_create(&sc, &admin, &st)) << st.msg;
  ASSERT_EQ(GRPC_STATUS_OK, trb_emu_admin_register(admin, faults_, &st)) << st.msg;
  int port = 0;
  ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_server_start(admin, &port, &st)) << st.msg;
  std::string target = "127.0.0.1:" + std::to_string(port);
  trb_rpc_channel_config_t cc = {};
  cc.target = target.c_str();
  trb_rpc_channel_t* ach = nullptr;
  ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_channel_create(&cc, &ach, &st));
  auto call = [&](const char* method, const pb_msgdesc_t* f, const void* req, std::string* msg) {
    uint8_t* b = nullptr;
    size_t n = 0;
    EXPECT_EQ(GRPC_STATUS_OK, trb_pb_encode(f, req, &b, &n, &st));
    trb_rpc_response_t out = {};
    std::string m = std::string("/tributary.emulator.v1.EmulatorAdmin/") + method;
    grpc_status_code c = trb_rpc_unary_call(loop_, ach, m.c_str(), b, n, nullptr, &out);
    trb_free(b);
    if (msg) *msg = out.message ? out.message : "";
    trb_rpc_response_deinit(&out);
    return c;
  };
  tributary_emulator_v1_UpdateTableSchemaRequest u = tributary_emulator_v1_UpdateTableSchemaRequest_init_zero;
  u.table = (char*)"ds.t";
  u.schema_json = (char*)kSchema2;
  std::string msg;
  EXPECT_EQ(GRPC_STATUS_OK, call("UpdateTableSchema", tributary_emulator_v1_UpdateTableSchemaRequest_fields, &u, &msg))
      << msg;
  std::string s = CreateStream(1);
  EXPECT_EQ(kV2, StreamFields(s));
  u.schema_json = (char*)kSchema;  // drops columns
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            call("UpdateTableSchema", tributary_emulator_v1_UpdateTableSchemaRequest_fields, &u, &msg));
  EXPECT_NE(std::string::npos, msg.find("additive")) << msg;
  u.table = (char*)"";
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            call("UpdateTableSchema", tributary_emulator_v1_UpdateTableSchemaRequest_fields, &u, &msg));
  tributary_emulator_v1_InjectFaultRequest inj = tributary_emulator_v1_InjectFaultRequest_init_zero;
  std::string append = std::string(kSvc) + "AppendRows";
  inj.method = (char*)append.c_str();
  inj.drop_after_write = 1;
  EXPECT_EQ(GRPC_STATUS_OK, call("InjectFault", tributary_emulator_v1_InjectFaultRequest_fields, &inj, &msg)) << msg;
  Stream a;
  a.Start(loop_, ch_);
  a.Send(Append(s.c_str(), &v2_.root, {Row2(0, "red")}, 0));
  ASSERT_TRUE(a.cond.WaitFor([&] { return a.closed; }));
  EXPECT_EQ(GRPC_STATUS_UNAVAILABLE, a.code);
  EXPECT_EQ(1u, Query("SELECT id FROM ds.t").size());
  inj.drop_after_write = -1;
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            call("InjectFault", tributary_emulator_v1_InjectFaultRequest_fields, &inj, &msg));
  trb_rpc_channel_destroy(ach);
  trb_rpc_server_shutdown(admin);
  trb_rpc_server_destroy(admin);
}

// The append is written, then the stream ends without its reply; resending
// at the same offset meets ALREADY_EXISTS.
TEST_F(SchemaUpdateTest, DropAfterWriteFault) {
  std::string s = CreateStream(1);
  trb_status_t st{};
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_add_drop_after_write(faults_, std::string(std::string(kSvc) + "AppendRows").c_str(), 1, &st));
  Stream a;
  a.Start(loop_, ch_);
  a.Send(Append(s.c_str(), &v1_.root, {Row(0), Row(1)}, 0));
  ASSERT_TRUE(a.cond.WaitFor([&] { return a.closed; }));
  EXPECT_EQ(GRPC_STATUS_UNAVAILABLE, a.code);
  EXPECT_TRUE(a.resps.empty());
  EXPECT_EQ(1, trb_faults_injected(faults_));
  EXPECT_EQ(2u, Query("SELECT id FROM ds.t").size());  // written
  Stream b;
  b.Start(loop_, ch_);
  Resp r = b.Call(Append(s.c_str(), &v1_.root, {Row(0), Row(1)}, 0));
  EXPECT_EQ(GRPC_STATUS_ALREADY_EXISTS, r.code);
  r = b.Call(Append(nullptr, nullptr, {Row(2)}, 2));
  EXPECT_TRUE(r.ok) << r.message;  // the rule was used up
  b.Close();
  EXPECT_EQ(3u, Query("SELECT id FROM ds.t").size());
}

}  // namespace
