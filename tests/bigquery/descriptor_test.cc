// descriptor_test.cc — writer schemas generated from table definitions:
// type and label mapping per BigQuery type, nested RECORD naming, field
// numbering, placeholder names, and a serialize/parse round trip.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "src/bigquery/descriptor.h"
#include "src/bigquery/schema.h"
#include "src/bigquery/transcode.h"
#include "src/common/arena.h"
#include "src/common/alloc.h"
#include "src/rpc/pb.h"

namespace {

using Fd = google_protobuf_FieldDescriptorProto;

class DescriptorTest : public ::testing::Test {
 protected:
  void SetUp() override { memset(&d_, 0, sizeof d_); }
  void TearDown() override {
    trb_bq_descriptor_release(&d_);
    trb_bq_table_deinit(&t_);
  }
  void Build(const std::string& schema) {
    trb_status_t st{};
    ASSERT_EQ(GRPC_STATUS_OK,
              trb_bq_table_parse(schema.data(), schema.size(), &t_, &st))
        << st.msg;
    ASSERT_EQ(GRPC_STATUS_OK, trb_bq_descriptor_build(&t_, &d_, &st)) << st.msg;
  }
  trb_bq_table_t t_{};
  google_protobuf_DescriptorProto d_;
};

void ExpectField(const Fd& f, const char* name, int number, int label, int type) {
  EXPECT_STREQ(name, f.name);
  EXPECT_TRUE(f.has_number);
  EXPECT_EQ(number, f.number) << name;
  EXPECT_TRUE(f.has_label);
  EXPECT_EQ(label, f.label) << name;
  EXPECT_TRUE(f.has_type);
  EXPECT_EQ(type, f.type) << name;
}

constexpr int kOpt = google_protobuf_FieldDescriptorProto_Label_LABEL_OPTIONAL;
constexpr int kReq = google_protobuf_FieldDescriptorProto_Label_LABEL_REQUIRED;
constexpr int kRep = google_protobuf_FieldDescriptorProto_Label_LABEL_REPEATED;
#define T(x) google_protobuf_FieldDescriptorProto_Type_TYPE_##x

TEST_F(DescriptorTest, MapsEveryTypeAndMode) {
  Build(R"([{"name":"S","type":"STRING","mode":"REQUIRED"},
            {"name":"i","type":"INT64"},{"name":"f","type":"FLOAT64"},
            {"name":"b","type":"BOOL","mode":"REPEATED"},{"name":"by","type":"BYTES"},
            {"name":"ts","type":"TIMESTAMP"},{"name":"d","type":"DATE"},
            {"name":"t","type":"TIME"},{"name":"dt","type":"DATETIME"},
            {"name":"g","type":"GEOGRAPHY"},{"name":"n","type":"NUMERIC"},
            {"name":"bn","type":"BIGNUMERIC"},{"name":"iv","type":"INTERVAL"},
            {"name":"j","type":"JSON"}])");
  EXPECT_STREQ("root", d_.name);
  ASSERT_EQ(14, d_.field_count);
  EXPECT_EQ(0, d_.nested_type_count);
  ExpectField(d_.field[0], "s", 1, kReq, T(STRING));
  ExpectField(d_.field[1], "i", 2, kOpt, T(INT64));
  ExpectField(d_.field[2], "f", 3, kOpt, T(DOUBLE));
  ExpectField(d_.field[3], "b", 4, kRep, T(BOOL));
  ExpectField(d_.field[4], "by", 5, kOpt, T(BYTES));
  ExpectField(d_.field[5], "ts", 6, kOpt, T(INT64));
  ExpectField(d_.field[6], "d", 7, kOpt, T(INT32));
  ExpectField(d_.field[7], "t", 8, kOpt, T(INT64));
  ExpectField(d_.field[8], "dt", 9, kOpt, T(INT64));
  ExpectField(d_.field[9], "g", 10, kOpt, T(STRING));
  ExpectField(d_.field[10], "n", 11, kOpt, T(BYTES));
  ExpectField(d_.field[11], "bn", 12, kOpt, T(BYTES));
  ExpectField(d_.field[12], "iv", 13, kOpt, T(STRING));
  ExpectField(d_.field[13], "j", 14, kOpt, T(STRING));
  for (int i = 0; i < d_.field_count; i++) EXPECT_EQ(nullptr, d_.field[i].type_name);
}

TEST_F(DescriptorTest, NestsRecordsWithScopedNames) {
  Build(R"([{"name":"id","type":"STRING"},
            {"name":"Items","type":"RECORD","mode":"REPEATED","fields":[
               {"name":"sku","type":"STRING"},
               {"name":"Dims","type":"RECORD","fields":[{"name":"w","type":"FLOAT"}]}]},
            {"name":"addr","type":"RECORD","mode":"REQUIRED","fields":[
               {"name":"city","type":"STRING"}]}])");
  ASSERT_EQ(3, d_.field_count);
  ExpectField(d_.field[1], "items", 2, kRep, T(MESSAGE));
  EXPECT_STREQ("root__items", d_.field[1].type_name);
  ExpectField(d_.field[2], "addr", 3, kReq, T(MESSAGE));
  EXPECT_STREQ("root__addr", d_.field[2].type_name);
  ASSERT_EQ(2, d_.nested_type_count);
  const auto& items = d_.nested_type[0];
  EXPECT_STREQ("root__items", items.name);
  ASSERT_EQ(2, items.field_count);
  ExpectField(items.field[1], "dims", 2, kOpt, T(MESSAGE));
  EXPECT_STREQ("root__items__dims", items.field[1].type_name);
  ASSERT_EQ(1, items.nested_type_count);
  EXPECT_STREQ("root__items__dims", items.nested_type[0].name);
  ExpectField(items.nested_type[0].field[0], "w", 1, kOpt, T(DOUBLE));
  EXPECT_STREQ("root__addr", d_.nested_type[1].name);
}

TEST_F(DescriptorTest, SerializesAndParsesBack) {
  Build(R"([{"name":"id","type":"STRING","mode":"REQUIRED"},
            {"name":"items","type":"RECORD","mode":"REPEATED","fields":[
               {"name":"sku","type":"STRING"},{"name":"price","type":"NUMERIC"}]}])");
  trb_status_t st{};
  uint8_t* buf = nullptr;
  size_t len = 0;
  ASSERT_EQ(GRPC_STATUS_OK,
            trb_pb_encode(google_protobuf_DescriptorProto_fields, &d_, &buf, &len, &st))
      << st.msg;
  // Zeroed: trb_pb_decode reads the (uninitialized) extension pointers of
  // MessageOptions/FieldOptions otherwise.
  google_protobuf_DescriptorProto back{};
  ASSERT_EQ(GRPC_STATUS_OK, trb_pb_decode(google_protobuf_DescriptorProto_fields, buf,
                                          len, &back, &st))
      << st.msg;
  EXPECT_STREQ("root", back.name);
  ASSERT_EQ(2, back.field_count);
  ExpectField(back.field[1], "items", 2, kRep, T(MESSAGE));
  EXPECT_STREQ("root__items", back.field[1].type_name);
  ASSERT_EQ(1, back.nested_type_count);
  ExpectField(back.nested_type[0].field[1], "price", 2, kOpt, T(BYTES));
  // Re-encoding the parsed descriptor gives the same bytes.
  uint8_t* buf2 = nullptr;
  size_t len2 = 0;
  ASSERT_EQ(GRPC_STATUS_OK,
            trb_pb_encode(google_protobuf_DescriptorProto_fields, &back, &buf2, &len2, &st));
  ASSERT_EQ(len, len2);
  EXPECT_EQ(0, memcmp(buf, buf2, len));
  trb_pb_release(google_protobuf_DescriptorProto_fields, &back);
  trb_free(buf);
  trb_free(buf2);
}

TEST(DescriptorNameTest, PlaceholderForNonIdentifiers) {
  char out[64];
  EXPECT_EQ(5u, trb_bq_proto_field_name("Order", out, sizeof out));
  EXPECT_STREQ("order", out);
  // base64("a-b") = "YS1i"; base64("ab") = "YWI=" -> '=' stripped.
  EXPECT_EQ(8u, trb_bq_proto_field_name("a-b", out, sizeof out));
  EXPECT_STREQ("col_YS1i", out);
  trb_bq_proto_field_name("ab c", out, sizeof out);  // "YWIgYw=="
  EXPECT_STREQ("col_YWIgYw", out);
  trb_bq_proto_field_name("1x", out, sizeof out);  // "MXg="
  EXPECT_STREQ("col_MXg", out);
  // base64("\xfb\xff") = "+/8=" -> "8".
  trb_bq_proto_field_name("\xfb\xff", out, sizeof out);
  EXPECT_STREQ("col_8", out);
  // Truncation reports the full length.
  char small[4];
  EXPECT_EQ(8u, trb_bq_proto_field_name("a-b", small, sizeof small));
  EXPECT_STREQ("col", small);
}

TEST(DescriptorErrorTest, RejectsEmptyTableAndRecord) {
  trb_bq_table_t t{};
  google_protobuf_DescriptorProto d;
  trb_status_t st{};
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_bq_descriptor_build(&t, &d, &st));
  trb_bq_field_t rec{};
  rec.name = const_cast<char*>("r");
  rec.type = TRB_BQ_TYPE_STRUCT;
  rec.mode = TRB_BQ_MODE_NULLABLE;
  t.n_fields = 1;
  t.fields = &rec;
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_bq_descriptor_build(&t, &d, &st));
  EXPECT_NE(nullptr, strstr(st.msg, "root__r")) << st.msg;
  EXPECT_EQ(nullptr, d.field);
}

using Tfs = google_cloud_bigquery_storage_v1_TableFieldSchema;

Tfs Col(const char* name, int type, int mode = 0) {
  Tfs f{};
  f.name = const_cast<char*>(name);
  f.type = (google_cloud_bigquery_storage_v1_TableFieldSchema_Type)type;
  f.mode = (google_cloud_bigquery_storage_v1_TableFieldSchema_Mode)mode;
  return f;
}

// A server TableSchema with a flexible column name and a default value
// expression the emulator does not evaluate: the writer still gets a table
// (placeholder field name in the descriptor) and transcodes rows for it.
TEST(WriteSchemaTest, FlexibleNamesAndDefaultsFromServerSchema) {
  Tfs sub[1] = {Col("Zip Code", TRB_BQ_TYPE_STRING, TRB_BQ_MODE_REQUIRED)};
  Tfs cols[3] = {Col("id", TRB_BQ_TYPE_INT64), Col("total-amount", TRB_BQ_TYPE_NUMERIC),
                 Col("addr", TRB_BQ_TYPE_STRUCT, TRB_BQ_MODE_REPEATED)};
  cols[0].default_value_expression = const_cast<char*>("ABS(RAND() * 10)");
  cols[2].fields_count = 1;
  cols[2].fields = sub;
  google_cloud_bigquery_storage_v1_TableSchema ts{};
  ts.fields_count = 3;
  ts.fields = cols;
  trb_bq_table_t t;
  trb_status_t st{};
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_table_from_write_schema(&ts, &t, &st)) << st.msg;
  ASSERT_EQ(3u, t.n_fields);
  EXPECT_STREQ("total-amount", t.fields[1].name);
  EXPECT_EQ(nullptr, t.fields[0].default_value_expression);
  EXPECT_EQ(TRB_BQ_MODE_NULLABLE, t.fields[0].mode);
  EXPECT_EQ(TRB_BQ_MODE_REPEATED, t.fields[2].mode);
  google_protobuf_DescriptorProto d;
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_descriptor_build(&t, &d, &st)) << st.msg;
  EXPECT_STREQ("col_dG90YWwtYW1vdW50", d.field[1].name);  // base64("total-amount")
  EXPECT_STREQ("col_WmlwIENvZGU", d.nested_type[0].field[0].name);  // "Zip Code"
  trb_buf_t out = TRB_BUF_INIT;
  const std::string row = R"({"ID":"5","Total-Amount":"1","addr":[{"zip code":"x"}]})";
  ASSERT_EQ(GRPC_STATUS_OK,
            trb_bq_transcode_row(&t, row.data(), row.size(), nullptr, &out, &st))
      << st.msg;
  EXPECT_EQ(std::string("\x08\x05\x12\x04\x00\xca\x9a\x3b\x1a\x03\x0a\x01x", 13),
            std::string(out.data, out.len));
  trb_buf_deinit(&out);
  trb_bq_descriptor_release(&d);
  trb_bq_table_deinit(&t);
}

// RANGE<DATE> becomes message{start=1, end=2} of int32 (fact 33) and takes
// {"start":..,"end":..} with null/missing bounds unbounded.
TEST(WriteSchemaTest, RangeAsStartEndMessage) {
  Tfs cols[1] = {Col("period", google_cloud_bigquery_storage_v1_TableFieldSchema_Type_RANGE,
                     TRB_BQ_MODE_REQUIRED)};
  cols[0].has_range_element_type = true;
  cols[0].range_element_type.type =
      (google_cloud_bigquery_storage_v1_TableFieldSchema_Type)TRB_BQ_TYPE_DATE;
  google_cloud_bigquery_storage_v1_TableSchema ts{};
  ts.fields_count = 1;
  ts.fields = cols;
  trb_bq_table_t t;
  trb_status_t st{};
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_table_from_write_schema(&ts, &t, &st)) << st.msg;
  google_protobuf_DescriptorProto d;
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_descriptor_build(&t, &d, &st)) << st.msg;
  ExpectField(d.field[0], "period", 1, kReq, T(MESSAGE));
  ASSERT_EQ(1, d.nested_type_count);
  EXPECT_STREQ("root__period", d.nested_type[0].name);
  ASSERT_EQ(2, d.nested_type[0].field_count);
  ExpectField(d.nested_type[0].field[0], "start", 1, kOpt, T(INT32));
  ExpectField(d.nested_type[0].field[1], "end", 2, kOpt, T(INT32));
  trb_buf_t out = TRB_BUF_INIT;
  std::string row = R"({"period":{"start":"1970-01-02","end":null}})";
  ASSERT_EQ(GRPC_STATUS_OK,
            trb_bq_transcode_row(&t, row.data(), row.size(), nullptr, &out, &st))
      << st.msg;
  EXPECT_EQ(std::string("\x0a\x02\x08\x01", 4), std::string(out.data, out.len));
  row = R"({"period":{"start":"2024-13-01"}})";
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            trb_bq_transcode_row(&t, row.data(), row.size(), nullptr, &out, &st));
  EXPECT_NE(nullptr, strstr(st.msg, "$.period.start: ")) << st.msg;
  trb_buf_deinit(&out);
  trb_bq_descriptor_release(&d);
  trb_bq_table_deinit(&t);
}

TEST(WriteSchemaTest, RejectsRangeDuplicatesAndEmptyRecords) {
  trb_bq_table_t t;
  trb_status_t st{};
  Tfs cols[2] = {Col("a", TRB_BQ_TYPE_STRING), Col("A", TRB_BQ_TYPE_INT64)};
  google_cloud_bigquery_storage_v1_TableSchema ts{};
  ts.fields_count = 2;
  ts.fields = cols;
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_bq_table_from_write_schema(&ts, &t, &st));
  EXPECT_NE(nullptr, strstr(st.msg, "fields[1]: duplicate column name")) << st.msg;
  cols[1] = Col("r", google_cloud_bigquery_storage_v1_TableFieldSchema_Type_RANGE);
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_bq_table_from_write_schema(&ts, &t, &st));
  EXPECT_NE(nullptr, strstr(st.msg, "RANGE element type")) << st.msg;
  cols[1].has_range_element_type = true;
  cols[1].range_element_type.type =
      (google_cloud_bigquery_storage_v1_TableFieldSchema_Type)TRB_BQ_TYPE_INT64;
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_bq_table_from_write_schema(&ts, &t, &st));
  cols[1] = Col("s", TRB_BQ_TYPE_STRUCT);
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_bq_table_from_write_schema(&ts, &t, &st));
  EXPECT_NE(nullptr, strstr(st.msg, "fields[1].fields: no fields")) << st.msg;
  EXPECT_EQ(0u, t.n_fields);
  ts.fields_count = 0;
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_bq_table_from_write_schema(&ts, &t, &st));
}

}  // namespace
