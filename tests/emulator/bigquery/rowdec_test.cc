// rowdec_test.cc — descriptor-driven row decoder: every BigQuery type from
// its accepted protobuf types, packed repeated fields, nested records,
// plan-time errors, and mutation fuzzing (never a crash, only OK or
// INVALID_ARGUMENT).
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "src/bigquery/values.h"
#include "src/emulator/bigquery/rowdec.h"
#include "tests/emulator/bigquery/bq_fixture.h"

namespace {

using namespace bqt;

constexpr const char* kAll =
    R"([{"name":"i","type":"INT64"},{"name":"b","type":"BOOL"},{"name":"d","type":"FLOAT64"},
        {"name":"s","type":"STRING"},{"name":"y","type":"BYTES"},{"name":"ts","type":"TIMESTAMP"},
        {"name":"dt","type":"DATE"},{"name":"tm","type":"TIME"},{"name":"dtm","type":"DATETIME"},
        {"name":"n","type":"NUMERIC"},{"name":"bn","type":"BIGNUMERIC"},{"name":"ds","type":"DATE"},
        {"name":"ri","type":"INT64","mode":"REPEATED"},
        {"name":"items","type":"RECORD","mode":"REPEATED","fields":[{"name":"sku","type":"STRING","mode":"REQUIRED"},{"name":"q","type":"INT64"}]}])";

struct AllDesc {
  google_protobuf_FieldDescriptorProto f[14];
  google_protobuf_FieldDescriptorProto itf[2];
  google_protobuf_DescriptorProto item, root;
  AllDesc() {
    FillMsg(&root, "root",
            {{"i", 1, T_(SINT64), L_(OPTIONAL), nullptr}, {"b", 2, T_(BOOL), L_(OPTIONAL), nullptr},
             {"d", 3, T_(DOUBLE), L_(OPTIONAL), nullptr}, {"s", 4, T_(STRING), L_(OPTIONAL), nullptr},
             {"y", 5, T_(BYTES), L_(OPTIONAL), nullptr}, {"ts", 6, T_(INT64), L_(OPTIONAL), nullptr},
             {"dt", 7, T_(INT32), L_(OPTIONAL), nullptr}, {"tm", 8, T_(INT64), L_(OPTIONAL), nullptr},
             {"dtm", 9, T_(STRING), L_(OPTIONAL), nullptr}, {"n", 10, T_(BYTES), L_(OPTIONAL), nullptr},
             {"bn", 11, T_(STRING), L_(OPTIONAL), nullptr}, {"ds", 12, T_(STRING), L_(OPTIONAL), nullptr},
             {"ri", 13, T_(INT64), L_(REPEATED), nullptr}, {"items", 100, T_(MESSAGE), L_(REPEATED), "Item"}},
            f);
    FillMsg(&item, "Item", {{"sku", 1, T_(STRING), L_(REQUIRED), nullptr}, {"q", 2, T_(INT32), L_(OPTIONAL), nullptr}},
            itf);
    root.nested_type_count = 1;
    root.nested_type = &item;
  }
};

class RowdecTest : public ::testing::Test {
 protected:
  void SetUp() override {
    trb_status_t st{};
    ASSERT_EQ(GRPC_STATUS_OK, trb_bq_table_parse(kAll, strlen(kAll), &table_, &st)) << st.msg;
    bool extra = false;
    ASSERT_EQ(GRPC_STATUS_OK, trb_rowdec_plan_create(&desc_.root, &table_, &plan_, &extra, &st)) << st.msg;
  }
  void TearDown() override {
    trb_rowdec_plan_destroy(plan_);
    trb_bq_table_deinit(&table_);
    trb_buf_deinit(&buf_);
  }
  std::string Text(const trb_bq_value_t& v) {
    if (v.kind == TRB_BQV_BTEXT || v.kind == TRB_BQV_BJSON) return std::string(buf_.data + v.u.off, v.len);
    if (v.kind == TRB_BQV_TEXT || v.kind == TRB_BQV_BLOB) return std::string((const char*)v.u.p, v.len);
    return "?";
  }
  std::string Good() {
    Pb items;
    Pb p;
    p.Int(1, 7 << 1 | 1);  // sint64 zigzag: -8
    p.Int(2, 1);
    double d = 2.5;
    uint64_t bits;
    memcpy(&bits, &d, 8);
    p.Varint(3 << 3 | 1);
    for (int k = 0; k < 8; k++) p.b.push_back((char)(bits >> (8 * k)));
    p.Str(4, "héllo").Str(5, std::string("\0\1", 2)).Int(6, 1704164645123456LL).Int(7, 19782);
    p.Int(8, trb_bq_time_pack(12, 34, 56, 0)).Str(9, "2024-01-02 03:04:05.5");
    p.Str(10, std::string("\x00\x2F\x68\x59", 4)).Str(11, "1e-38").Str(12, "2024-02-29");
    p.Str(13, std::string("\x01\x02\x03", 3));  // packed 1,2,3
    p.Int(13, 4);                               // and one unpacked
    p.Str(100, Pb().Str(1, "a").Int(2, 2).b).Str(100, Pb().Str(1, "b\"").b);
    return p.b;
  }
  AllDesc desc_;
  trb_bq_table_t table_;
  trb_rowdec_plan_t* plan_ = nullptr;
  trb_buf_t buf_ = TRB_BUF_INIT;
  trb_bq_value_t v_[14];
};

TEST_F(RowdecTest, DecodesEveryType) {
  std::string row = Good();
  trb_status_t st{};
  ASSERT_EQ(GRPC_STATUS_OK, trb_rowdec_decode(plan_, (const uint8_t*)row.data(), row.size(), v_, &buf_, &st)) << st.msg;
  EXPECT_EQ(-8, v_[0].u.i);
  EXPECT_EQ(1, v_[1].u.i);
  EXPECT_EQ(2.5, v_[2].u.d);
  EXPECT_EQ("héllo", Text(v_[3]));
  EXPECT_EQ(TRB_BQV_BLOB, v_[4].kind);
  EXPECT_EQ("2024-01-02T03:04:05.123456Z", Text(v_[5]));
  EXPECT_EQ("2024-02-29", Text(v_[6]));
  EXPECT_EQ("12:34:56", Text(v_[7]));
  EXPECT_EQ("2024-01-02T03:04:05.500000", Text(v_[8]));
  EXPECT_EQ("1.5", Text(v_[9]));
  EXPECT_EQ("0.00000000000000000000000000000000000001", Text(v_[10]));
  EXPECT_EQ("2024-02-29", Text(v_[11]));
  EXPECT_EQ("[1,2,3,4]", Text(v_[12]));
  EXPECT_EQ(R"([{"sku":"a","q":2},{"sku":"b\"","q":null}])", Text(v_[13]));
}

TEST_F(RowdecTest, RowErrors) {
  struct Case {
    std::string row;
    const char* want;
  } cases[] = {
      {Pb().Int(7, 2932897).b, "Date field value is out of range: 2932897 on field dt."},
      {Pb().Str(12, "2023-02-29").b, "on field ds."},
      {Pb().Int(8, trb_bq_time_pack(24, 0, 0, 0)).b, "on field tm."},
      {Pb().Str(10, std::string(17, '\x01')).b, "on field n."},
      {Pb().Str(100, Pb().Int(2, 1).b).b, "Missing required field: sku."},
      {Pb().Str(4, "\xc3\x28").b, "Invalid UTF-8 in field s."},
      {Pb().Int(4, 1).b, "wire type"},
      {std::string("\x08", 1), "Could not parse"},
      {std::string("\x00\x01", 2), "Could not parse"},
  };
  for (const Case& c : cases) {
    trb_status_t st{};
    EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
              trb_rowdec_decode(plan_, (const uint8_t*)c.row.data(), c.row.size(), v_, &buf_, &st));
    EXPECT_NE(nullptr, strstr(st.msg, c.want)) << st.msg;
  }
  EXPECT_EQ(0u, buf_.len);  // nothing left behind by failed rows
}

TEST_F(RowdecTest, PlanErrors) {
  trb_status_t st{};
  bool extra = false;
  trb_rowdec_plan_t* p = nullptr;
  AllDesc d1;
  d1.f[0].type = T_(STRING);  // STRING into INT64
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_rowdec_plan_create(&d1.root, &table_, &p, &extra, &st));
  EXPECT_FALSE(extra);
  AllDesc d2;
  d2.f[12].label = L_(OPTIONAL);  // not repeated for a REPEATED column
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_rowdec_plan_create(&d2.root, &table_, &p, &extra, &st));
  AllDesc d3;
  d3.itf[0].type = T_(MESSAGE);
  d3.itf[0].type_name = (char*)"Item";  // recursive / incompatible
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_rowdec_plan_create(&d3.root, &table_, &p, &extra, &st));
  AllDesc d4;
  d4.f[3].name = (char*)"unknown_col";
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_rowdec_plan_create(&d4.root, &table_, &p, &extra, &st));
  EXPECT_TRUE(extra);
  EXPECT_NE(nullptr, strstr(st.msg, "extra fields: 'unknown_col'")) << st.msg;
  AllDesc d5;
  d5.f[2].has_number = false;
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_rowdec_plan_create(&d5.root, &table_, &p, &extra, &st));
  AllDesc d6;
  d6.f[2].type = T_(GROUP);
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_rowdec_plan_create(&d6.root, &table_, &p, &extra, &st));
  EXPECT_EQ(nullptr, p);
}

TEST_F(RowdecTest, MutatedRowsNeverCrash) {
  std::string good = Good();
  std::mt19937 rng(1234);
  int ok = 0, bad = 0;
  for (int i = 0; i < 20000; i++) {
    std::string m = good;
    int edits = 1 + rng() % 4;
    for (int k = 0; k < edits; k++) {
      switch (rng() % 4) {
        case 0: m[rng() % m.size()] ^= (char)(1 << (rng() % 8)); break;
        case 1: m.resize(rng() % (m.size() + 1)); break;
        case 2: m.insert(rng() % (m.size() + 1), 1, (char)rng()); break;
        default: m[rng() % m.size()] = (char)rng(); break;
      }
      if (m.empty()) m = "\x08";
    }
    trb_status_t st{};
    trb_buf_reset(&buf_);
    grpc_status_code c = trb_rowdec_decode(plan_, (const uint8_t*)m.data(), m.size(), v_, &buf_, &st);
    ASSERT_TRUE(c == GRPC_STATUS_OK || c == GRPC_STATUS_INVALID_ARGUMENT) << c;
    (c == GRPC_STATUS_OK ? ok : bad)++;
  }
  EXPECT_GT(ok, 0);
  EXPECT_GT(bad, 0);
}

}  // namespace
