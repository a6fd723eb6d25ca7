// rowdec_types_test.cc — descriptors as Google's clients build them:
// the Node.js client (adapt.convertStorageSchemaToProto2Descriptor maps
// NUMERIC/BIGNUMERIC/DATETIME/TIME to string, DATE to int32, TIMESTAMP to
// int64), Go's enum wrappers (`<name>_E`), and proto2 default values.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "src/bigquery/values.h"
#include "src/emulator/bigquery/rowdec.h"
#include "tests/emulator/bigquery/bq_fixture.h"

namespace {

using namespace bqt;

// A table, a plan from a descriptor, and decoding helpers.
struct Plan {
  trb_bq_table_t table{};
  trb_rowdec_plan_t* plan = nullptr;
  trb_buf_t buf = TRB_BUF_INIT;
  std::vector<trb_bq_value_t> v;
  trb_status_t st{};
  bool extra = false;
  grpc_status_code Create(const char* schema, const google_protobuf_DescriptorProto* d) {
    EXPECT_EQ(GRPC_STATUS_OK, trb_bq_table_parse(schema, strlen(schema), &table, &st)) << st.msg;
    grpc_status_code c = trb_rowdec_plan_create(d, &table, &plan, &extra, &st);
    if (plan) v.resize(trb_rowdec_plan_columns(plan));
    return c;
  }
  ~Plan() {
    trb_rowdec_plan_destroy(plan);
    trb_bq_table_deinit(&table);
    trb_buf_deinit(&buf);
  }
  grpc_status_code Decode(const std::string& row) {
    trb_buf_reset(&buf);
    return trb_rowdec_decode(plan, (const uint8_t*)row.data(), row.size(), v.data(), &buf, &st);
  }
  std::string Text(size_t i) {
    const trb_bq_value_t& x = v[i];
    if (x.kind == TRB_BQV_BTEXT || x.kind == TRB_BQV_BJSON) return std::string(buf.data + x.u.off, x.len);
    if (x.kind == TRB_BQV_TEXT || x.kind == TRB_BQV_BLOB) return std::string((const char*)x.u.p, x.len);
    if (x.kind == TRB_BQV_NULL) return "NULL";
    if (x.kind == TRB_BQV_INT) return std::to_string(x.u.i);
    return "?";
  }
};

// ---- Node.js client descriptors ------------------------------------------

constexpr const char* kNodeSchema =
    R"([{"name":"n","type":"NUMERIC"},{"name":"bn","type":"BIGNUMERIC"},
        {"name":"dtm","type":"DATETIME"},{"name":"tm","type":"TIME"},
        {"name":"d","type":"DATE"},{"name":"ts","type":"TIMESTAMP"}])";

struct NodeDesc {
  google_protobuf_FieldDescriptorProto f[6];
  google_protobuf_DescriptorProto root;
  NodeDesc() {
    FillMsg(&root, "root",
            {{"n", 1, T_(STRING), L_(OPTIONAL), nullptr},
             {"bn", 2, T_(STRING), L_(OPTIONAL), nullptr},
             {"dtm", 3, T_(STRING), L_(OPTIONAL), nullptr},
             {"tm", 4, T_(STRING), L_(OPTIONAL), nullptr},
             {"d", 5, T_(INT32), L_(OPTIONAL), nullptr},
             {"ts", 6, T_(INT64), L_(OPTIONAL), nullptr}},
            f);
  }
};

TEST(RowdecNodeTypes, StringDecimalsAndCivilTimesStoreCanonicalText) {
  NodeDesc d;
  Plan p;
  ASSERT_EQ(GRPC_STATUS_OK, p.Create(kNodeSchema, &d.root)) << p.st.msg;
  ASSERT_EQ(GRPC_STATUS_OK, p.Decode(Pb()
                                         .Str(1, "123.456")
                                         .Str(2, "-0.000000001")
                                         .Str(3, "2024-01-02 03:04:05.123456")
                                         .Str(4, "23:59:59.999999")
                                         .Int(5, 19724)
                                         .Int(6, 1704164645123456LL)
                                         .b))
      << p.st.msg;
  EXPECT_EQ("123.456", p.Text(0));
  EXPECT_EQ("-0.000000001", p.Text(1));
  EXPECT_EQ("2024-01-02T03:04:05.123456", p.Text(2));
  EXPECT_EQ("23:59:59.999999", p.Text(3));
  EXPECT_EQ("2024-01-02", p.Text(4));
  EXPECT_EQ("2024-01-02T03:04:05.123456Z", p.Text(5));

  ASSERT_EQ(GRPC_STATUS_OK, p.Decode(Pb()
                                         .Str(1, "-99999999999999999999999999999.999999999")
                                         .Str(2, "1e-38")
                                         .Str(3, "2024-01-02T03:04:05")
                                         .Str(4, "00:00:00")
                                         .Int(5, -719162)
                                         .Int(6, 0)
                                         .b))
      << p.st.msg;
  EXPECT_EQ("-99999999999999999999999999999.999999999", p.Text(0));
  EXPECT_EQ("0.00000000000000000000000000000000000001", p.Text(1));
  EXPECT_EQ("2024-01-02T03:04:05", p.Text(2));
  EXPECT_EQ("00:00:00", p.Text(3));
  EXPECT_EQ("0001-01-01", p.Text(4));
  EXPECT_EQ("1970-01-01T00:00:00.000000Z", p.Text(5));
}

TEST(RowdecNodeTypes, MalformedOrOutOfRangeStringsAreRowErrors) {
  NodeDesc d;
  Plan p;
  ASSERT_EQ(GRPC_STATUS_OK, p.Create(kNodeSchema, &d.root)) << p.st.msg;
  struct Case {
    std::string row;
    const char* field;
  } cases[] = {
      {Pb().Str(1, "100000000000000000000000000000").b, "on field n."},  // 10^29
      {Pb().Str(1, "12.5x").b, "on field n."},
      {Pb().Str(1, "").b, "on field n."},
      {Pb().Str(1, "1..2").b, "on field n."},
      {Pb().Str(2, "abc").b, "on field bn."},
      {Pb().Str(2, "1e80").b, "on field bn."},
      {Pb().Str(3, "2024-13-01 00:00:00").b, "on field dtm."},
      {Pb().Str(3, "2023-02-29T00:00:00").b, "on field dtm."},
      {Pb().Str(3, "2024-01-02").b, "on field dtm."},
      {Pb().Str(3, "10000-01-01 00:00:00").b, "on field dtm."},
      {Pb().Str(4, "24:00:00").b, "on field tm."},
      {Pb().Str(4, "23:59:60").b, "on field tm."},
      {Pb().Str(4, "12:00:00.1234567").b, "on field tm."},
      {Pb().Str(4, "noon").b, "on field tm."},
      {Pb().Int(5, 2932897).b, "on field d."},
      {Pb().Int(6, INT64_MIN).b, "Timestamp field value is out of range: -9223372036854775808 on field ts."},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, p.Decode(c.row)) << c.field;
    EXPECT_NE(nullptr, strstr(p.st.msg, c.field)) << p.st.msg;
  }
}

}  // namespace
