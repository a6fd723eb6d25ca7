// missing_values_test.cc — AppendRows missing-value interpretation (fact
// 23): per-request missing_value_interpretations vs the sticky
// default_missing_value_interpretation, column default expressions
// evaluated at append time, proto2 defaults taking precedence, REQUIRED
// columns satisfied by a default, bad map entries, GetWriteStream(FULL)
// carrying default_value_expression, and defaults across a restart.
#include "src/bigquery/values.h"
#include "src/common/clock.h"
#include "tests/emulator/bigquery/bq_fixture.h"

namespace {

using namespace bqt;

// id is the only column every row sends.
constexpr const char* kSchema = R"JS([
  {"name":"id","type":"INT64","mode":"REQUIRED"},
  {"name":"uid","type":"STRING","mode":"REQUIRED","defaultValueExpression":"GENERATE_UUID()"},
  {"name":"n","type":"INT64","defaultValueExpression":"7"},
  {"name":"label","type":"STRING","defaultValueExpression":"'none'"},
  {"name":"at","type":"TIMESTAMP","defaultValueExpression":"CURRENT_TIMESTAMP()"},
  {"name":"flag","type":"BOOL","defaultValueExpression":"TRUE"},
  {"name":"plain","type":"STRING"},
  {"name":"p2","type":"INT64","defaultValueExpression":"5"}])JS";

#define MVI(x) google_cloud_bigquery_storage_v1_AppendRowsRequest_MissingValueInterpretation_##x
typedef google_cloud_bigquery_storage_v1_AppendRowsRequest_MissingValueInterpretation mvi_t;
typedef google_cloud_bigquery_storage_v1_AppendRowsRequest_MissingValueInterpretationsEntry mvi_entry_t;

struct Desc {
  google_protobuf_FieldDescriptorProto f[3];
  google_protobuf_DescriptorProto root;
  // id (1), label (2), p2 (3) with a proto2 default of 99.
  Desc() {
    FillMsg(&root, "root",
            {{"id", 1, T_(INT64), L_(OPTIONAL), nullptr},
             {"label", 2, T_(STRING), L_(OPTIONAL), nullptr},
             {"p2", 3, T_(INT64), L_(OPTIONAL), nullptr}},
            f);
    f[2].default_value = (char*)"99";
  }
};

// An AppendRowsRequest with missing-value options.
std::string AppendMv(const char* stream, const google_protobuf_DescriptorProto* desc,
                     const std::vector<std::string>& rows,
                     std::vector<std::pair<const char*, int>> map, int dflt) {
  std::string base = Append(stream, desc, rows);
  google_cloud_bigquery_storage_v1_AppendRowsRequest r;
  memset(&r, 0, sizeof r);
  std::vector<mvi_entry_t> es;
  for (auto& kv : map) {
    mvi_entry_t e{};
    e.key = (char*)kv.first;
    e.value = (mvi_t)kv.second;
    es.push_back(e);
  }
  r.missing_value_interpretations_count = (pb_size_t)es.size();
  r.missing_value_interpretations = es.data();
  r.default_missing_value_interpretation = (mvi_t)dflt;
  uint8_t* out = nullptr;
  size_t n = 0;
  trb_status_t st{};
  EXPECT_EQ(GRPC_STATUS_OK,
            trb_pb_encode(google_cloud_bigquery_storage_v1_AppendRowsRequest_fields, &r, &out, &n, &st));
  // Protobuf messages concatenate: fields 7 and 8 join the rest.
  std::string s = base + std::string((const char*)out, n);
  trb_free(out);
  return s;
}

std::string Row(int64_t id) { return Pb().Int(1, id).b; }

// {"uid":"xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx"}, lower-case hex.
bool IsUuid4Row(const std::string& s) {
  const std::string pre = R"({"uid":")", post = R"("})";
  if (s.size() != pre.size() + 36 + post.size() || s.compare(0, pre.size(), pre) ||
      s.compare(s.size() - post.size(), post.size(), post))
    return false;
  std::string u = s.substr(pre.size(), 36);
  for (size_t i = 0; i < 36; i++) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? u[i] != '-' : !strchr("0123456789abcdef", u[i])) return false;
  }
  return u[14] == '4' && strchr("89ab", u[19]) != nullptr;
}

class MissingValuesTest : public BqTest {
 protected:
  void SetUp() override {
    BqTest::SetUp();
    CreateTable("ds", "t", kSchema);
  }
  std::string Sel(int64_t id, const char* cols) {
    auto rows = Query(std::string("SELECT ") + cols + " FROM ds.t WHERE id = " + std::to_string(id));
    EXPECT_EQ(1u, rows.size()) << id;
    return rows.empty() ? "" : rows[0];
  }
  Desc desc_;
  const char* dflt_ = "projects/demo/datasets/ds/tables/t/_default";
};

TEST_F(MissingValuesTest, NoInterpretationMeansNullAndRequiredStillNeedsAField) {
  Stream st;
  st.Start(loop_, ch_);
  // uid is REQUIRED and missing: a row error without DEFAULT_VALUE.
  Resp r = st.Call(AppendMv(dflt_, &desc_.root, {Row(1)}, {}, 0));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, r.code);
  ASSERT_EQ(1u, r.row_errors.size());
  EXPECT_NE(std::string::npos, r.row_errors[0].second.find("uid")) << r.row_errors[0].second;
  // NULL_VALUE everywhere: still a row error for uid.
  r = st.Call(AppendMv(nullptr, nullptr, {Row(1)}, {{"uid", MVI(NULL_VALUE)}}, 0));
  EXPECT_EQ(1u, r.row_errors.size());
  // uid by DEFAULT_VALUE only; the rest NULL, p2 from its proto2 default.
  r = st.Call(AppendMv(nullptr, nullptr, {Row(1)}, {{"UID", MVI(DEFAULT_VALUE)}}, 0));
  ASSERT_TRUE(r.ok) << r.message;
  st.Close();
  EXPECT_EQ(R"({"n":null,"label":null,"at":null,"flag":null,"plain":null,"p2":99})",
            Sel(1, "n, label, at, flag, plain, p2"));
  std::string uid = Sel(1, "uid");
  EXPECT_TRUE(IsUuid4Row(uid)) << uid;
}

TEST_F(MissingValuesTest, StickyDefaultAppliesUntilChangedAndMapIsPerRequest) {
  int64_t before = trb_clock_wall_us();
  Stream st;
  st.Start(loop_, ch_);
  // DEFAULT_VALUE from here on; `n` opts out for this request only.
  Resp r = st.Call(AppendMv(dflt_, &desc_.root, {Row(1), Row(2)}, {{"n", MVI(NULL_VALUE)}},
                            MVI(DEFAULT_VALUE)));
  ASSERT_TRUE(r.ok) << r.message;
  // No options: the sticky DEFAULT_VALUE still applies, the map does not.
  r = st.Call(AppendMv(nullptr, nullptr, {Row(3)}, {}, 0));
  ASSERT_TRUE(r.ok) << r.message;
  // A sent field is never replaced.
  r = st.Call(AppendMv(nullptr, nullptr, {Pb().Int(1, 4).Str(2, "mine").b}, {}, 0));
  ASSERT_TRUE(r.ok) << r.message;
  // Back to NULL_VALUE (sticky), DEFAULT_VALUE for uid only.
  r = st.Call(AppendMv(nullptr, nullptr, {Row(5)}, {{"uid", MVI(DEFAULT_VALUE)}}, MVI(NULL_VALUE)));
  ASSERT_TRUE(r.ok) << r.message;
  r = st.Call(AppendMv(nullptr, nullptr, {Row(6)}, {}, 0));  // uid missing again
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, r.code);
  EXPECT_EQ(1u, r.row_errors.size());
  st.Close();
  int64_t after = trb_clock_wall_us();
  const char* cols = "n, label, flag, plain, p2";
  EXPECT_EQ(R"({"n":null,"label":"none","flag":1,"plain":null,"p2":99})", Sel(1, cols));
  EXPECT_EQ(R"({"n":7,"label":"none","flag":1,"plain":null,"p2":99})", Sel(3, cols));
  EXPECT_EQ(R"({"n":7,"label":"mine","flag":1,"plain":null,"p2":99})", Sel(4, cols));
  EXPECT_EQ(R"({"n":null,"label":null,"flag":null,"plain":null,"p2":99})", Sel(5, cols));
  // Every row got its own UUID; CURRENT_TIMESTAMP is the append time.
  EXPECT_EQ(5u, Query("SELECT DISTINCT uid FROM ds.t").size());  // rows 1-5
  char lo[TRB_BQ_TIMESTAMP_BUF], hi[TRB_BQ_TIMESTAMP_BUF];
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_timestamp_format(before, lo, nullptr));
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_timestamp_format(after, hi, nullptr));
  auto at = Query(std::string("SELECT id FROM ds.t WHERE at >= '") + lo + "' AND at <= '" + hi +
                  "' ORDER BY id");
  ASSERT_EQ(4u, at.size());  // row 5 had NULL_VALUE for `at`
  EXPECT_EQ(R"({"id":1})", at[0]);
  EXPECT_EQ(R"({"id":4})", at[3]);
}

TEST_F(MissingValuesTest, Proto2DefaultWinsOverTheColumnDefault) {
  Stream st;
  st.Start(loop_, ch_);
  // p2 has column default 5 and proto2 default 99: absent reads as 99.
  Resp r = st.Call(AppendMv(dflt_, &desc_.root, {Row(1)}, {}, MVI(DEFAULT_VALUE)));
  ASSERT_TRUE(r.ok) << r.message;
  // A writer schema without a proto2 default: the column default.
  Desc d2;
  d2.f[2].default_value = nullptr;
  r = st.Call(AppendMv(dflt_, &d2.root, {Row(2)}, {}, 0));
  ASSERT_TRUE(r.ok) << r.message;
  st.Close();
  EXPECT_EQ(R"({"p2":99})", Sel(1, "p2"));
  EXPECT_EQ(R"({"p2":5})", Sel(2, "p2"));
}

TEST_F(MissingValuesTest, BadMapEntriesAndValuesAreInvalidArgument) {
  Stream st;
  st.Start(loop_, ch_);
  ASSERT_TRUE(st.Call(AppendMv(dflt_, &desc_.root, {Row(1)}, {{"uid", MVI(DEFAULT_VALUE)}}, 0)).ok);
  Resp r = st.Call(AppendMv(nullptr, nullptr, {Row(2)}, {{"nope", MVI(DEFAULT_VALUE)}}, 0));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, r.code);
  EXPECT_NE(std::string::npos, r.message.find("nope is not a top-level column")) << r.message;
  r = st.Call(AppendMv(nullptr, nullptr, {Row(2)}, {{"uid", MVI(MISSING_VALUE_INTERPRETATION_UNSPECIFIED)}}, 0));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, r.code);
  EXPECT_NE(std::string::npos, r.message.find("want NULL_VALUE or DEFAULT_VALUE")) << r.message;
  r = st.Call(AppendMv(nullptr, nullptr, {Row(2)}, {}, 7));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, r.code);
  EXPECT_NE(std::string::npos, r.message.find("default_missing_value_interpretation")) << r.message;
  // The failed request with 7 did not change the sticky value (still unset).
  r = st.Call(AppendMv(nullptr, nullptr, {Row(2)}, {}, 0));
  EXPECT_EQ(1u, r.row_errors.size());
  st.Close();
  EXPECT_EQ(1u, Query("SELECT * FROM ds.t").size());
}

TEST_F(MissingValuesTest, GetWriteStreamFullCarriesDefaultsAndTheyOutliveARestart) {
  google_cloud_bigquery_storage_v1_GetWriteStreamRequest g = {};
  g.name = (char*)dflt_;
  g.view = google_cloud_bigquery_storage_v1_WriteStreamView_FULL;
  std::string resp;
  ASSERT_EQ(GRPC_STATUS_OK, Unary("GetWriteStream", google_cloud_bigquery_storage_v1_GetWriteStreamRequest_fields,
                                  &g, &resp));
  google_cloud_bigquery_storage_v1_WriteStream ws;
  trb_status_t tst{};
  ASSERT_EQ(GRPC_STATUS_OK, trb_pb_decode(google_cloud_bigquery_storage_v1_WriteStream_fields,
                                          (const uint8_t*)resp.data(), resp.size(), &ws, &tst));
  ASSERT_EQ(8, ws.table_schema.fields_count);
  EXPECT_EQ(nullptr, ws.table_schema.fields[0].default_value_expression);
  EXPECT_STREQ("GENERATE_UUID()", ws.table_schema.fields[1].default_value_expression);
  EXPECT_STREQ("'none'", ws.table_schema.fields[3].default_value_expression);
  trb_pb_release(google_cloud_bigquery_storage_v1_WriteStream_fields, &ws);
  Close();
  Open();
  std::string s = CreateStream(1);
  Stream st;
  st.Start(loop_, ch_);
  Resp r = st.Call(AppendMv(s.c_str(), &desc_.root, {Row(1)}, {}, MVI(DEFAULT_VALUE)));
  ASSERT_TRUE(r.ok) << r.message;
  EXPECT_EQ(0, r.offset);
  st.Close();
  EXPECT_EQ(R"({"n":7,"label":"none"})", Sel(1, "n, label"));
}

}  // namespace
