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
  std::string row;  // TEXT/BLOB values point into it
  grpc_status_code Decode(const std::string& r) {
    row = r;
    trb_buf_reset(&buf);
    return trb_rowdec_decode(plan, (const uint8_t*)row.data(), row.size(), v.data(), &buf, &st);
  }
  std::string Text(size_t i) {
    const trb_bq_value_t& x = v[i];
    if (x.kind == TRB_BQV_BTEXT || x.kind == TRB_BQV_BJSON || x.kind == TRB_BQV_BBLOB) return std::string(buf.data + x.u.off, x.len);
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

// ---- enums (Go wraps each enum in a message "<full_name>_E") --------------

constexpr const char* kEnumSchema =
    R"([{"name":"s","type":"STRING"},{"name":"i","type":"INT64"},
        {"name":"tags","type":"STRING","mode":"REPEATED"}])";

struct EnumDesc {
  google_protobuf_EnumValueDescriptorProto vals[3];
  google_protobuf_EnumDescriptorProto color;
  google_protobuf_DescriptorProto wrapper, root;
  google_protobuf_FieldDescriptorProto f[3];
  EnumDesc(const char* type_name = ".root.Color_E.Color") {
    const char* names[] = {"RED", "GREEN", "BLUE"};
    int nums[] = {0, 1, 5};
    for (int k = 0; k < 3; k++) {
      memset(&vals[k], 0, sizeof vals[k]);
      vals[k].name = (char*)names[k];
      vals[k].has_number = true;
      vals[k].number = nums[k];
    }
    memset(&color, 0, sizeof color);
    color.name = (char*)"Color";
    color.value_count = 3;
    color.value = vals;
    FillMsg(&wrapper, "Color_E", {}, nullptr);
    wrapper.enum_type_count = 1;
    wrapper.enum_type = &color;
    FillMsg(&root, "root",
            {{"s", 1, T_(ENUM), L_(OPTIONAL), type_name},
             {"i", 2, T_(ENUM), L_(OPTIONAL), type_name},
             {"tags", 3, T_(ENUM), L_(REPEATED), type_name}},
            f);
    root.nested_type_count = 1;
    root.nested_type = &wrapper;
  }
};

TEST(RowdecEnums, StringColumnsStoreTheNameIntColumnsTheNumber) {
  EnumDesc d;
  Plan p;
  ASSERT_EQ(GRPC_STATUS_OK, p.Create(kEnumSchema, &d.root)) << p.st.msg;
  ASSERT_EQ(GRPC_STATUS_OK,
            p.Decode(Pb().Int(1, 5).Int(2, 5).Int(3, 1).Str(3, std::string("\x05\x00", 2)).b))
      << p.st.msg;
  EXPECT_EQ("BLUE", p.Text(0));
  EXPECT_EQ("5", p.Text(1));
  EXPECT_EQ(R"(["GREEN","BLUE","RED"])", p.Text(2));
  ASSERT_EQ(GRPC_STATUS_OK, p.Decode(Pb().Int(1, 0).b)) << p.st.msg;
  EXPECT_EQ("RED", p.Text(0));
  EXPECT_EQ("NULL", p.Text(1));

  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, p.Decode(Pb().Int(1, 3).b));
  EXPECT_STREQ("Invalid enum value 3 on field s.", p.st.msg);
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, p.Decode(Pb().Int(3, 2).b));
  EXPECT_STREQ("Invalid enum value 2 on field tags.", p.st.msg);
}

TEST(RowdecEnums, UnresolvableEnumTypeIsAPlanError) {
  EnumDesc d(".root.Colour_E.Colour");
  Plan p;
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, p.Create(kEnumSchema, &d.root));
  EXPECT_NE(nullptr, strstr(p.st.msg, "enum type")) << p.st.msg;
  EXPECT_FALSE(p.extra);
}

// ---- proto2 default values -------------------------------------------------

constexpr const char* kDefaultSchema =
    R"([{"name":"a","type":"INT64"},{"name":"b","type":"STRING"},{"name":"c","type":"BYTES"},
        {"name":"d","type":"BOOL"},{"name":"e","type":"FLOAT64"},{"name":"f","type":"TIMESTAMP"},
        {"name":"g","type":"STRING"},{"name":"h","type":"INT64"},{"name":"n","type":"NUMERIC"},
        {"name":"r","type":"INT64","mode":"REQUIRED"},{"name":"z","type":"STRING"},
        {"name":"rec","type":"RECORD","fields":[{"name":"x","type":"STRING"}]}])";

struct DefaultDesc : EnumDesc {
  google_protobuf_FieldDescriptorProto df[12];
  google_protobuf_FieldDescriptorProto recf[1];
  google_protobuf_DescriptorProto rec;
  google_protobuf_DescriptorProto nested[2];
  DefaultDesc() {
    FillMsg(&root, "root",
            {{"a", 1, T_(INT64), L_(OPTIONAL), nullptr},
             {"b", 2, T_(STRING), L_(OPTIONAL), nullptr},
             {"c", 3, T_(BYTES), L_(OPTIONAL), nullptr},
             {"d", 4, T_(BOOL), L_(OPTIONAL), nullptr},
             {"e", 5, T_(DOUBLE), L_(OPTIONAL), nullptr},
             {"f", 6, T_(INT64), L_(OPTIONAL), nullptr},
             {"g", 7, T_(ENUM), L_(OPTIONAL), ".root.Color_E.Color"},
             {"h", 8, T_(SINT32), L_(OPTIONAL), nullptr},
             {"n", 9, T_(STRING), L_(OPTIONAL), nullptr},
             {"r", 10, T_(INT64), L_(OPTIONAL), nullptr},
             {"z", 11, T_(STRING), L_(OPTIONAL), nullptr},
             {"rec", 12, T_(MESSAGE), L_(OPTIONAL), ".root.Rec"}},
            df);
    const char* defaults[] = {"42",    "hello", "a\\001b\\x02", "true", "2.5", "1704164645123456",
                              "BLUE", "-5",    "1.50",          "7",    "",    nullptr};
    for (int k = 0; k < 12; k++) df[k].default_value = (char*)defaults[k];
    FillMsg(&rec, "Rec", {{"x", 1, T_(STRING), L_(OPTIONAL), nullptr}}, recf);
    recf[0].default_value = (char*)"inner";
    nested[0] = wrapper;
    nested[1] = rec;
    root.nested_type_count = 2;
    root.nested_type = nested;
  }
};

TEST(RowdecDefaults, AbsentFieldsReadAsTheirProto2Default) {
  DefaultDesc d;
  Plan p;
  ASSERT_EQ(GRPC_STATUS_OK, p.Create(kDefaultSchema, &d.root)) << p.st.msg;
  ASSERT_EQ(GRPC_STATUS_OK, p.Decode(Pb().Int(10, 1).Str(12, "").b)) << p.st.msg;
  EXPECT_EQ("42", p.Text(0));
  EXPECT_EQ("hello", p.Text(1));
  EXPECT_EQ(TRB_BQV_BBLOB, p.v[2].kind);
  EXPECT_EQ(std::string("a\001b\002", 4), p.Text(2));
  EXPECT_EQ("1", p.Text(3));
  EXPECT_EQ(TRB_BQV_REAL, p.v[4].kind);
  EXPECT_EQ(2.5, p.v[4].u.d);
  EXPECT_EQ("2024-01-02T03:04:05.123456Z", p.Text(5));
  EXPECT_EQ("BLUE", p.Text(6));
  EXPECT_EQ("-5", p.Text(7));
  EXPECT_EQ("1.5", p.Text(8));
  EXPECT_EQ("1", p.Text(9));
  EXPECT_EQ(TRB_BQV_BTEXT, p.v[10].kind);  // empty default: "", not NULL
  EXPECT_EQ("", p.Text(10));
  EXPECT_EQ(R"({"x":"inner"})", p.Text(11));  // defaults apply in records too
  // Present fields win over defaults.
  ASSERT_EQ(GRPC_STATUS_OK, p.Decode(Pb().Int(1, 9).Str(2, "x").Int(7, 0).Int(10, 1).b)) << p.st.msg;
  EXPECT_EQ("9", p.Text(0));
  EXPECT_EQ("x", p.Text(1));
  EXPECT_EQ("RED", p.Text(6));
  EXPECT_EQ("NULL", p.Text(11));  // absent message field: NULL
}

TEST(RowdecDefaults, RequiredColumnNeedsAPresentField) {
  DefaultDesc d;
  Plan p;
  ASSERT_EQ(GRPC_STATUS_OK, p.Create(kDefaultSchema, &d.root)) << p.st.msg;
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, p.Decode(Pb().Int(1, 1).b));
  EXPECT_STREQ("Missing required field: r.", p.st.msg);
}

TEST(RowdecDefaults, FillableColumnsSkipRequiredAndTheProto2DefaultStillWins) {
  DefaultDesc d;
  Plan p;
  ASSERT_EQ(GRPC_STATUS_OK, p.Create(kDefaultSchema, &d.root)) << p.st.msg;
  bool fillable[12] = {};
  fillable[9] = true;   // r: REQUIRED, proto2 default 7
  fillable[11] = true;  // rec: no proto2 default
  p.row = Pb().Int(1, 1).b;
  ASSERT_EQ(GRPC_STATUS_OK, trb_rowdec_decode_fill(p.plan, (const uint8_t*)p.row.data(), p.row.size(),
                                                   fillable, p.v.data(), &p.buf, &p.st))
      << p.st.msg;
  EXPECT_EQ("7", p.Text(9));      // absent REQUIRED field with a proto2 default
  EXPECT_EQ("NULL", p.Text(11));  // missing: left NULL for the caller to fill
  // Not fillable: REQUIRED still needs a present field.
  fillable[9] = false;
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            trb_rowdec_decode_fill(p.plan, (const uint8_t*)p.row.data(), p.row.size(), fillable,
                                   p.v.data(), &p.buf, &p.st));
  EXPECT_STREQ("Missing required field: r.", p.st.msg);
}

TEST(RowdecDefaults, InvalidDefaultTextIsAPlanError) {
  const char* bad[][2] = {{"0", "4x"}, {"3", "false?"}, {"3", "\\"}, {"6", "PURPLE"},
                          {"7", "3000000000"}, {"4", "x"}};
  for (auto& b : bad) {
    DefaultDesc d;
    d.df[atoi(b[0]) == 3 ? 3 : atoi(b[0])].default_value = (char*)b[1];
    if (strcmp(b[0], "3") == 0 && strcmp(b[1], "\\") == 0) {
      d.df[3].default_value = (char*)"true";
      d.df[2].default_value = (char*)b[1];
    }
    Plan p;
    EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, p.Create(kDefaultSchema, &d.root)) << b[1];
    EXPECT_NE(nullptr, strstr(p.st.msg, "invalid default value")) << p.st.msg;
  }
  // An out-of-range default is a row error when it is used.
  DefaultDesc d;
  d.df[5].default_value = (char*)"-9223372036854775808";
  Plan p;
  ASSERT_EQ(GRPC_STATUS_OK, p.Create(kDefaultSchema, &d.root)) << p.st.msg;
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, p.Decode(Pb().Int(10, 1).b));
  EXPECT_NE(nullptr, strstr(p.st.msg, "on field f.")) << p.st.msg;
}

}  // namespace
