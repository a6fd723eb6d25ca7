// schema_test.cc — table files: parsing, errors with JSON paths, TableSchema
// round trips.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "src/bigquery/schema.h"
#include "src/common/alloc.h"
#include "src/rpc/pb.h"

namespace {

grpc_status_code Parse(const std::string& s, trb_bq_table_t* t, trb_status_t* st) {
  return trb_bq_table_parse(s.data(), s.size(), t, st);
}

TEST(SchemaTest, ParsesBareArrayWithLegacyTypes) {
  trb_bq_table_t t;
  trb_status_t st{};
  ASSERT_EQ(GRPC_STATUS_OK,
            Parse(R"([{"name":"id","type":"INTEGER","mode":"REQUIRED"},
                      {"name":"score","type":"FLOAT"},{"name":"ok","type":"BOOLEAN"},
                      {"name":"tags","type":"STRING","mode":"REPEATED","maxLength":"10"},
                      {"name":"addr","type":"RECORD","fields":[{"name":"city","type":"string"}]},
                      {"name":"amount","type":"NUMERIC","precision":10,"scale":2}])",
                  &t, &st))
      << st.msg;
  ASSERT_EQ(6u, t.n_fields);
  EXPECT_EQ(TRB_BQ_TYPE_INT64, t.fields[0].type);
  EXPECT_EQ(TRB_BQ_MODE_REQUIRED, t.fields[0].mode);
  EXPECT_EQ(TRB_BQ_TYPE_DOUBLE, t.fields[1].type);
  EXPECT_EQ(TRB_BQ_MODE_NULLABLE, t.fields[1].mode);
  EXPECT_EQ(TRB_BQ_TYPE_BOOL, t.fields[2].type);
  EXPECT_EQ(TRB_BQ_MODE_REPEATED, t.fields[3].mode);
  EXPECT_EQ(10, t.fields[3].max_length);
  EXPECT_EQ(TRB_BQ_TYPE_STRUCT, t.fields[4].type);
  ASSERT_EQ(1u, t.fields[4].n_fields);
  EXPECT_STREQ("city", t.fields[4].fields[0].name);
  EXPECT_EQ(10, t.fields[5].precision);
  EXPECT_EQ(2, t.fields[5].scale);
  trb_bq_table_deinit(&t);
}

TEST(SchemaTest, ParsesTableObjectAndRoundTripsJson) {
  const char* doc = R"({"description":"orders","timePartitioning":{"type":"DAY","field":"event_time"},
    "clustering":{"fields":["product_id"]},
    "schema":{"fields":[{"name":"product_id","type":"STRING","description":"sku"},
                        {"name":"event_time","type":"TIMESTAMP","mode":"REQUIRED"}]}})";
  trb_bq_table_t t;
  trb_status_t st{};
  ASSERT_EQ(GRPC_STATUS_OK, Parse(doc, &t, &st)) << st.msg;
  EXPECT_STREQ("orders", t.description);
  EXPECT_STREQ("DAY", t.partition_type);
  EXPECT_STREQ("event_time", t.partition_field);
  ASSERT_EQ(1u, t.n_clustering);
  EXPECT_STREQ("product_id", t.clustering[0]);
  EXPECT_STREQ("sku", t.fields[0].description);
  char* js = nullptr;
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_table_to_json(&t, &js, &st));
  trb_bq_table_t t2;
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_table_parse(js, strlen(js), &t2, &st)) << st.msg << js;
  EXPECT_TRUE(trb_bq_schema_equal(&t, &t2));
  EXPECT_STREQ("event_time", t2.partition_field);
  EXPECT_STREQ("product_id", t2.clustering[0]);
  trb_bq_table_t t3;
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_table_copy(&t2, &t3, &st));
  EXPECT_TRUE(trb_bq_schema_equal(&t, &t3));
  EXPECT_STREQ("orders", t3.description);
  trb_free(js);
  trb_bq_table_deinit(&t);
  trb_bq_table_deinit(&t2);
  trb_bq_table_deinit(&t3);
}

struct BadCase {
  const char* doc;
  const char* want;  // substring of the message (path first)
};

TEST(SchemaTest, RejectsBadInputWithJsonPath) {
  const BadCase cases[] = {
      {R"([{"name":"a","type":"TEXT"}])", "$[0].type: unknown type \"TEXT\""},
      {R"([{"name":"a","type":"STRING","mode":"OPTIONAL"}])", "$[0].mode: unknown mode"},
      {R"([{"name":"a","type":"STRING"},{"name":"A","type":"INT64"}])", "$[1]: duplicate field name \"A\""},
      {R"([{"name":"a","type":"STRING","colour":1}])", "$[0].colour: unknown key"},
      {R"({"schema":[{"name":"a","type":"STRING"}],"labels":{}})", "$.labels: unknown key"},
      {R"({"schema":{"fields":[{"name":"r","type":"RECORD","fields":[{"name":"x","type":"NOPE"}]}]}})",
       "$.schema.fields[0].fields[0].type: unknown type"},
      {R"([{"name":"r","type":"RECORD"}])", "$[0]: a RECORD needs \"fields\""},
      {R"([{"name":"a","type":"STRING","fields":[{"name":"x","type":"STRING"}]}])", "non-RECORD"},
      {R"([{"name":"1a","type":"STRING"}])", "$[0].name: invalid field name"},
      {R"([{"type":"STRING"}])", "$[0]: missing \"name\""},
      {R"([])", "$: no fields"},
      {R"({"timePartitioning":{"type":"DAY","field":"t"},"schema":[{"name":"a","type":"STRING"}]})",
       "$.timePartitioning.field: no column \"t\""},
      {R"({"timePartitioning":{"type":"WEEK"},"schema":[{"name":"a","type":"STRING"}]})",
       "$.timePartitioning.type: unknown partitioning type"},
      {R"({"clustering":{"fields":["zz"]},"schema":[{"name":"a","type":"STRING"}]})",
       "$.clustering.fields[0]: no column \"zz\""},
      {R"([{"name":"a","type":"INT64","maxLength":3}])", "maxLength is only for STRING"},
      {R"({"schema":[{"name":"a","type":"STRING"}])", "line 1"},
      {R"("x")", "$: want a schema array"},
  };
  for (const BadCase& c : cases) {
    trb_bq_table_t t;
    trb_status_t st{};
    EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, Parse(c.doc, &t, &st)) << c.doc;
    EXPECT_NE(nullptr, strstr(st.msg, c.want)) << c.doc << " -> " << st.msg;
    trb_bq_table_deinit(&t);
  }
}

TEST(SchemaTest, ConvertsToTableSchemaAndBack) {
  trb_bq_table_t t;
  trb_status_t st{};
  ASSERT_EQ(GRPC_STATUS_OK,
            Parse(R"([{"name":"id","type":"STRING","mode":"REQUIRED","maxLength":12},
                      {"name":"items","type":"RECORD","mode":"REPEATED","fields":[
                         {"name":"sku","type":"STRING"},{"name":"price","type":"BIGNUMERIC"}]},
                      {"name":"ts","type":"TIMESTAMP"}])",
                  &t, &st));
  google_cloud_bigquery_storage_v1_TableSchema ts;
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_table_to_proto(&t, &ts, &st));
  ASSERT_EQ(3, ts.fields_count);
  EXPECT_STREQ("id", ts.fields[0].name);
  EXPECT_EQ(google_cloud_bigquery_storage_v1_TableFieldSchema_Type_STRING, ts.fields[0].type);
  EXPECT_EQ(google_cloud_bigquery_storage_v1_TableFieldSchema_Mode_REQUIRED, ts.fields[0].mode);
  EXPECT_EQ(12, ts.fields[0].max_length);
  EXPECT_EQ(google_cloud_bigquery_storage_v1_TableFieldSchema_Type_STRUCT, ts.fields[1].type);
  ASSERT_EQ(2, ts.fields[1].fields_count);
  EXPECT_EQ(google_cloud_bigquery_storage_v1_TableFieldSchema_Type_BIGNUMERIC, ts.fields[1].fields[1].type);
  // Through the wire and back.
  uint8_t* buf = nullptr;
  size_t len = 0;
  ASSERT_EQ(GRPC_STATUS_OK, trb_pb_encode(google_cloud_bigquery_storage_v1_TableSchema_fields, &ts, &buf, &len, &st));
  google_cloud_bigquery_storage_v1_TableSchema ts2;
  ASSERT_EQ(GRPC_STATUS_OK, trb_pb_decode(google_cloud_bigquery_storage_v1_TableSchema_fields, buf, len, &ts2, &st));
  trb_bq_table_t back;
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_table_from_proto(&ts2, &back, &st)) << st.msg;
  EXPECT_TRUE(trb_bq_schema_equal(&t, &back));
  trb_pb_release(google_cloud_bigquery_storage_v1_TableSchema_fields, &ts);
  trb_pb_release(google_cloud_bigquery_storage_v1_TableSchema_fields, &ts2);
  trb_free(buf);
  trb_bq_table_deinit(&t);
  trb_bq_table_deinit(&back);
}

TEST(SchemaTest, FromProtoRejectsDuplicatesAndUnknownTypes) {
  google_cloud_bigquery_storage_v1_TableFieldSchema f[2] = {};
  f[0].name = (char*)"a";
  f[0].type = google_cloud_bigquery_storage_v1_TableFieldSchema_Type_STRING;
  f[1].name = (char*)"A";
  f[1].type = google_cloud_bigquery_storage_v1_TableFieldSchema_Type_STRING;
  google_cloud_bigquery_storage_v1_TableSchema ts = {};
  ts.fields_count = 2;
  ts.fields = f;
  trb_bq_table_t t;
  trb_status_t st{};
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_bq_table_from_proto(&ts, &t, &st));
  EXPECT_NE(nullptr, strstr(st.msg, "duplicate")) << st.msg;
  f[1].name = (char*)"b";
  f[1].type = google_cloud_bigquery_storage_v1_TableFieldSchema_Type_RANGE;
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_bq_table_from_proto(&ts, &t, &st));
}

TEST(SchemaTest, DefaultValueExpressionsRoundTripThroughJsonCopyAndProto) {
  trb_bq_table_t t;
  trb_status_t st{};
  ASSERT_EQ(GRPC_STATUS_OK,
            Parse(R"JS([{"name":"id","type":"STRING","mode":"REQUIRED",
                       "defaultValueExpression":"GENERATE_UUID()"},
                      {"name":"n","type":"INT64","defaultValueExpression":"7"},
                      {"name":"ts","type":"TIMESTAMP"}])JS",
                  &t, &st))
      << st.msg;
  EXPECT_STREQ("GENERATE_UUID()", t.fields[0].default_value_expression);
  EXPECT_STREQ("7", t.fields[1].default_value_expression);
  EXPECT_EQ(nullptr, t.fields[2].default_value_expression);
  char* js = nullptr;
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_table_to_json(&t, &js, &st));
  EXPECT_NE(nullptr, strstr(js, R"JS("defaultValueExpression":"7")JS")) << js;
  trb_bq_table_t t2, t3;
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_table_parse(js, strlen(js), &t2, &st)) << st.msg;
  EXPECT_TRUE(trb_bq_schema_equal(&t, &t2));
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_table_copy(&t2, &t3, &st));
  EXPECT_STREQ("7", t3.fields[1].default_value_expression);
  // Equality sees the expression.
  trb_free(t3.fields[1].default_value_expression);
  t3.fields[1].default_value_expression = trb_strdup("8");
  EXPECT_FALSE(trb_bq_schema_equal(&t, &t3));
  trb_free(t3.fields[1].default_value_expression);
  t3.fields[1].default_value_expression = nullptr;
  EXPECT_FALSE(trb_bq_schema_equal(&t, &t3));
  // TableSchema (what GetWriteStream FULL returns), over the wire and back.
  google_cloud_bigquery_storage_v1_TableSchema ts, ts2;
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_table_to_proto(&t, &ts, &st));
  EXPECT_STREQ("GENERATE_UUID()", ts.fields[0].default_value_expression);
  EXPECT_STREQ("7", ts.fields[1].default_value_expression);
  EXPECT_EQ(nullptr, ts.fields[2].default_value_expression);
  uint8_t* buf = nullptr;
  size_t len = 0;
  ASSERT_EQ(GRPC_STATUS_OK, trb_pb_encode(google_cloud_bigquery_storage_v1_TableSchema_fields, &ts, &buf, &len, &st));
  ASSERT_EQ(GRPC_STATUS_OK, trb_pb_decode(google_cloud_bigquery_storage_v1_TableSchema_fields, buf, len, &ts2, &st));
  trb_bq_table_t back;
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_table_from_proto(&ts2, &back, &st)) << st.msg;
  EXPECT_TRUE(trb_bq_schema_equal(&t, &back));
  EXPECT_STREQ("GENERATE_UUID()", back.fields[0].default_value_expression);
  // from_proto validates like the JSON parser.
  trb_free(ts2.fields[1].default_value_expression);
  ts2.fields[1].default_value_expression = strdup("'seven'");
  trb_bq_table_t bad;
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_bq_table_from_proto(&ts2, &bad, &st));
  EXPECT_NE(nullptr, strstr(st.msg, "fields[1]")) << st.msg;
  EXPECT_NE(nullptr, strstr(st.msg, "a string literal suits")) << st.msg;
  trb_pb_release(google_cloud_bigquery_storage_v1_TableSchema_fields, &ts);
  trb_pb_release(google_cloud_bigquery_storage_v1_TableSchema_fields, &ts2);
  trb_free(buf);
  trb_free(js);
  trb_bq_table_deinit(&t);
  trb_bq_table_deinit(&t2);
  trb_bq_table_deinit(&t3);
  trb_bq_table_deinit(&back);
}

TEST(SchemaTest, RejectsDefaultsTheEmulatorDoesNotAccept) {
  const BadCase cases[] = {
      {R"JS([{"name":"a","type":"INT64","defaultValueExpression":"1+1"}])JS",
       "$[0]: defaultValueExpression: default value expression \"1+1\" for INT64 column a"},
      {R"JS([{"name":"a","type":"DATE","defaultValueExpression":"CURRENT_TIMESTAMP()"}])JS",
       "CURRENT_TIMESTAMP() returns TIMESTAMP"},
      {R"JS([{"name":"a","type":"INT64","defaultValueExpression":5}])JS",
       "$[0].defaultValueExpression: want a string"},
      {R"JS([{"name":"r","type":"RECORD","fields":[{"name":"x","type":"INT64","defaultValueExpression":"1"}]}])JS",
       "$[0].fields[0]: defaultValueExpression: the emulator supports defaults on top-level"},
      {R"JS([{"name":"a","type":"STRING","mode":"REQUIRED","defaultValueExpression":"NULL"}])JS",
       "cannot default to NULL"},
  };
  for (const BadCase& c : cases) {
    trb_bq_table_t t;
    trb_status_t st{};
    EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, Parse(c.doc, &t, &st)) << c.doc;
    EXPECT_NE(nullptr, strstr(st.msg, c.want)) << c.doc << " -> " << st.msg;
    trb_bq_table_deinit(&t);
  }
}

}  // namespace
