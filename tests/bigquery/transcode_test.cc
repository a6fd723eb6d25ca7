// transcode_test.cc — JSON rows to protobuf rows: golden wire bytes, every
// BigQuery type and its edges checked by decoding with the emulator's row
// decoder (the inverse codec), row errors with JSON paths, no partial rows,
// and a seeded mutation test (never crashes; OK or INVALID_ARGUMENT).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "src/bigquery/descriptor.h"
#include "src/bigquery/schema.h"
#include "src/bigquery/transcode.h"
#include "src/bigquery/values.h"
#include "src/common/arena.h"
#include "src/emulator/bigquery/rowdec.h"

namespace {

std::string Hex(const char* p, size_t n) {
  std::string s;
  char b[4];
  for (size_t i = 0; i < n; i++) {
    snprintf(b, sizeof b, "%02x", (unsigned char)p[i]);
    s += b;
  }
  return s;
}

// `seed` after `edits` random edits (overwrite, insert, erase, truncate)
// with bytes that matter to a JSON reader, drawn from `rng`.
std::string Mutate(const std::string& seed, int edits, std::mt19937& rng) {
  static const char alphabet[] = "{}[]\":,\\-+.eE0123456789 tfnulxz\x00\xff\xc3\xa9";
  std::string m = seed;
  for (int e = 0; e < edits; e++) {
    size_t pos = rng() % (m.size() + 1);
    char ch = alphabet[rng() % (sizeof alphabet - 1)];
    switch (rng() % 4) {
      case 0: if (pos < m.size()) m[pos] = ch; break;
      case 1: m.insert(m.begin() + pos, ch); break;
      case 2: if (pos < m.size()) m.erase(pos, 1 + rng() % 8); break;
      case 3: m.resize(pos); break;
    }
  }
  return m;
}

class TranscodeTest : public ::testing::Test {
 protected:
  void TearDown() override {
    trb_rowdec_plan_destroy(plan_);
    trb_bq_descriptor_release(&desc_);
    trb_bq_table_deinit(&t_);
    trb_buf_deinit(&out_);
    trb_buf_deinit(&dec_);
  }
  void Schema(const std::string& s) {
    trb_rowdec_plan_destroy(plan_);
    plan_ = nullptr;
    trb_bq_descriptor_release(&desc_);
    trb_bq_table_deinit(&t_);
    trb_status_t st{};
    ASSERT_EQ(GRPC_STATUS_OK, trb_bq_table_parse(s.data(), s.size(), &t_, &st)) << st.msg;
    ASSERT_EQ(GRPC_STATUS_OK, trb_bq_descriptor_build(&t_, &desc_, &st)) << st.msg;
    bool extra = false;
    ASSERT_EQ(GRPC_STATUS_OK, trb_rowdec_plan_create(&desc_, &t_, &plan_, &extra, &st))
        << st.msg;
  }
  grpc_status_code Row(const std::string& json, bool ignore_unknown = false) {
    trb_bq_transcode_opts_t o{ignore_unknown};
    trb_buf_reset(&out_);
    st_ = trb_status_t{};
    return trb_bq_transcode_row(&t_, json.data(), json.size(), &o, &out_, &st_);
  }
  std::string Bytes() const { return Hex(out_.data, out_.len); }
  // Decode the last row with rowdec; one canonical string per column
  // ("NULL" for NULL).
  std::vector<std::string> Decode() {
    std::vector<trb_bq_value_t> v(trb_rowdec_plan_columns(plan_));
    trb_buf_reset(&dec_);
    trb_status_t st{};
    EXPECT_EQ(GRPC_STATUS_OK, trb_rowdec_decode(plan_, (const uint8_t*)out_.data, out_.len,
                                                v.data(), &dec_, &st))
        << st.msg;
    std::vector<std::string> r;
    for (auto& x : v) {
      char b[64];
      switch (x.kind) {
        case TRB_BQV_NULL: r.push_back("NULL"); break;
        case TRB_BQV_INT: r.push_back(std::to_string(x.u.i)); break;
        case TRB_BQV_REAL: snprintf(b, sizeof b, "%.17g", x.u.d); r.push_back(b); break;
        case TRB_BQV_TEXT:
        case TRB_BQV_BLOB: r.push_back(std::string((const char*)x.u.p, x.len)); break;
        default: r.push_back(std::string(dec_.data + x.u.off, x.len)); break;
      }
    }
    return r;
  }
  std::string One(const std::string& json) {
    EXPECT_EQ(GRPC_STATUS_OK, Row(json)) << json << ": " << st_.msg;
    if (st_.code != GRPC_STATUS_OK && out_.len == 0) return "<error>";
    auto v = Decode();
    return v.empty() ? "<none>" : v[0];
  }
  void ExpectError(const std::string& json, const char* msg_part) {
    out_.len = 0;
    trb_buf_append(&out_, "KEEP", 4);
    trb_bq_transcode_opts_t o{false};
    trb_status_t st{};
    EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
              trb_bq_transcode_row(&t_, json.data(), json.size(), &o, &out_, &st))
        << json;
    EXPECT_NE(nullptr, strstr(st.msg, msg_part)) << json << " -> " << st.msg;
    EXPECT_EQ(std::string("KEEP"), std::string(out_.data, out_.len)) << "partial row left";
  }

  trb_bq_table_t t_{};
  google_protobuf_DescriptorProto desc_{};
  trb_rowdec_plan_t* plan_ = nullptr;
  trb_buf_t out_ = TRB_BUF_INIT;
  trb_buf_t dec_ = TRB_BUF_INIT;
  trb_status_t st_{};
};

TEST_F(TranscodeTest, GoldenWireBytes) {
  Schema(R"([{"name":"s","type":"STRING"},{"name":"i","type":"INT64"},
             {"name":"f","type":"FLOAT64"},{"name":"b","type":"BOOL"},
             {"name":"r","type":"RECORD","fields":[{"name":"x","type":"INT64"}]},
             {"name":"n","type":"NUMERIC"},{"name":"d","type":"DATE"}])");
  ASSERT_EQ(GRPC_STATUS_OK, Row(R"({"s":"hi","i":-1,"f":1.5,"b":true,"r":{"x":150},
                                    "n":"1","d":"1969-12-31"})"))
      << st_.msg;
  EXPECT_EQ(
      "0a026869"                      // 1: "hi"
      "10ffffffffffffffffff01"        // 2: -1 (10-byte varint)
      "19000000000000f83f"            // 3: 1.5 double
      "2001"                          // 4: true
      "2a03089601"                    // 5: {1: 150}
      "320400ca9a3b"                  // 6: 1e9 unscaled, little-endian
      "38ffffffffffffffffff01",       // 7: day -1
      Bytes());
  // Field order follows the JSON; keys match case-insensitively.
  ASSERT_EQ(GRPC_STATUS_OK, Row(R"({"I":"42","S":"a"})")) << st_.msg;
  EXPECT_EQ("102a0a0161", Bytes());
  // Long nested content widens the length prefix.
  std::string big(200, 'z');
  Schema(R"([{"name":"r","type":"RECORD","fields":[{"name":"s","type":"STRING"}]}])");
  ASSERT_EQ(GRPC_STATUS_OK, Row("{\"r\":{\"s\":\"" + big + "\"}}")) << st_.msg;
  EXPECT_EQ("0acb010ac801" + Hex(big.data(), big.size()), Bytes());
}

TEST_F(TranscodeTest, ScalarTypesRoundTripThroughRowDecoder) {
  Schema(R"([{"name":"v","type":"STRING"}])");
  EXPECT_EQ("h\xc3\xa9\xf0\x9f\x98\x80\n\"", One(R"({"v":"h\u00e9\ud83d\ude00\n\""})"));
  EXPECT_EQ("12", One(R"({"v":12})"));
  EXPECT_EQ("true", One(R"({"v":true})"));
  ExpectError(R"({"v":1.5})", "$.v: STRING wants a string, integer or boolean");
  EXPECT_EQ("", One(R"({"v":""})"));
  EXPECT_EQ("NULL", One(R"({"v":null})"));
  EXPECT_EQ("NULL", One(R"({})"));
}

#define COLUMN(type) "[{\"name\":\"v\",\"type\":\"" type "\"}]"

TEST_F(TranscodeTest, Int64) {
  Schema(COLUMN("INT64"));
  EXPECT_EQ("9223372036854775807", One(R"({"v":9223372036854775807})"));
  EXPECT_EQ("-9223372036854775808", One(R"({"v":"-9223372036854775808"})"));
  EXPECT_EQ("7", One(R"({"v":"+7"})"));
  ExpectError(R"({"v":9223372036854775808})", "$.v: INT64 out of range");
  ExpectError(R"({"v":1.5})", "$.v: INT64 wants an integer");
  ExpectError(R"({"v":"12x"})", "INT64 wants an integer");
  ExpectError(R"({"v":true})", "INT64 wants an integer");
}

TEST_F(TranscodeTest, Float64AndBool) {
  Schema(R"([{"name":"f","type":"FLOAT64"},{"name":"b","type":"BOOL"}])");
  ASSERT_EQ(GRPC_STATUS_OK, Row(R"({"f":-2.5e-3,"b":"TRUE"})")) << st_.msg;
  auto v = Decode();
  EXPECT_EQ("-0.0025000000000000001", v[0]);
  EXPECT_EQ("1", v[1]);
  ASSERT_EQ(GRPC_STATUS_OK, Row(R"({"f":"NaN","b":false})"));
  EXPECT_EQ("nan", Decode()[0].substr(Decode()[0].size() - 3));
  ASSERT_EQ(GRPC_STATUS_OK, Row(R"({"f":"-Infinity","b":"false"})"));
  EXPECT_EQ("-inf", Decode()[0]);
  EXPECT_EQ("0", Decode()[1]);
  ExpectError(R"({"f":1e999})", "$.f: FLOAT64 wants a finite number");
  ExpectError(R"({"b":"yes"})", "$.b: BOOL wants true or false");
  ExpectError(R"({"b":1})", "BOOL wants true or false");
}

TEST_F(TranscodeTest, NumericExactWithoutFloat) {
  Schema(R"([{"name":"n","type":"NUMERIC"},{"name":"b","type":"BIGNUMERIC"}])");
  ASSERT_EQ(GRPC_STATUS_OK, Row(R"({"n":0.1,"b":0.1})"));
  EXPECT_EQ("0.1", Decode()[0]);
  EXPECT_EQ("0.1", Decode()[1]);
  ASSERT_EQ(GRPC_STATUS_OK,
            Row(R"({"n":"99999999999999999999999999999.999999999",
                    "b":"-578960446186580977117854925043439539266.34992332820282019728792003956564819968"})"))
      << st_.msg;
  auto v = Decode();
  EXPECT_EQ("99999999999999999999999999999.999999999", v[0]);
  EXPECT_EQ("-578960446186580977117854925043439539266.34992332820282019728792003956564819968",
            v[1]);
  ASSERT_EQ(GRPC_STATUS_OK, Row(R"({"n":-1.5e-9,"b":12345678901234567890})"));
  v = Decode();
  EXPECT_EQ("-0.000000002", v[0]);  // half away from zero at scale 9
  EXPECT_EQ("12345678901234567890", v[1]);
  ExpectError(R"({"n":"1e29"})", "$.n: ");
  ExpectError(R"({"n":"abc"})", "$.n: ");
}

// Every NUMERIC encoding (including the transcoder's int64 fast path)
// equals values.h's trb_bq_numeric_parse bytes for the same text.
TEST_F(TranscodeTest, NumericBytesMatchValuesCodec) {
  Schema(COLUMN("NUMERIC"));
  std::mt19937 rng(7);
  std::vector<std::string> texts = {"0", "-0", "+1", ".5", "-.000000001", "127", "128",
                                    "-128", "-129", "255", "999999999.999999999",
                                    "-999999999.999999999", "1000000000", "0.0000000005",
                                    "12.5", "-32768", "8388607.5"};
  for (int i = 0; i < 3000; i++) {
    std::string t = (rng() % 2) ? "-" : "";
    int ip = rng() % 12, fp = rng() % 12;
    for (int k = 0; k < ip; k++) t += char('0' + rng() % 10);
    if (fp) {
      t += ".";
      for (int k = 0; k < fp; k++) t += char('0' + rng() % 10);
    }
    if (ip + fp == 0) t += "0";
    texts.push_back(t);
  }
  for (const auto& t : texts) {
    uint8_t want[TRB_BQ_NUMERIC_BYTES_MAX];
    size_t wn = 0;
    trb_status_t st{};
    bool valid = trb_bq_numeric_parse(t.data(), t.size(), false, want, &wn, &st) ==
                 GRPC_STATUS_OK;
    grpc_status_code rc = Row("{\"v\":\"" + t + "\"}");
    ASSERT_EQ(valid, rc == GRPC_STATUS_OK) << t << ": " << st_.msg;
    if (!valid) continue;
    // Row = tag 0x0a, one-byte length, the bytes.
    ASSERT_EQ(2 + wn, out_.len) << t;
    EXPECT_EQ(Hex((const char*)want, wn), Hex(out_.data + 2, out_.len - 2)) << t;
  }
}

TEST_F(TranscodeTest, TimestampForms) {
  Schema(COLUMN("TIMESTAMP"));
  EXPECT_EQ("2025-01-15T10:30:00.000000Z", One(R"({"v":"2025-01-15T10:30:00Z"})"));
  EXPECT_EQ("2025-01-15T10:30:00.000000Z", One(R"({"v":"2025-01-15 10:30:00"})"));
  EXPECT_EQ("2025-01-15T08:30:00.123400Z", One(R"({"v":"2025-01-15T10:30:00.1234+02:00"})"));
  EXPECT_EQ("2023-01-01T00:00:00.000000Z", One(R"({"v":"2023-01-01"})"));
  EXPECT_EQ("1969-12-31T23:59:59.999999Z", One(R"({"v":-1})"));
  EXPECT_EQ("1970-01-01T00:00:01.000000Z", One(R"({"v":"1000000"})"));
  EXPECT_EQ("0001-01-01T00:00:00.000000Z", One(R"({"v":"0001-01-01T00:00:00Z"})"));
  EXPECT_EQ("9999-12-31T23:59:59.999999Z", One(R"({"v":253402300799999999})"));
  EXPECT_EQ("2025-01-15T10:30:00.000000Z", One(R"({"v":"2025/01/15 10:30"})"));
  EXPECT_EQ("2025-01-15T10:30:00.000000Z", One(R"({"v":"2025-01-15T12:30 +0200"})"));
  EXPECT_EQ("2025-01-15T10:30:05.000000Z", One(R"({"v":"2025-01-15 10:30:05 UTC"})"));
  EXPECT_EQ("2024-02-29T23:59:59.000000Z", One(R"({"v":"2024-03-01T00:59:59+01:00"})"));
  EXPECT_EQ("1900-01-01T00:00:00.000000Z", One(R"({"v":-2208988800000000})"));
  ExpectError(R"({"v":"2025-01-15T10"})", "$.v: invalid TIMESTAMP");
  ExpectError(R"({"v":"2025.01.15"})", "$.v: invalid TIMESTAMP");
  ExpectError(R"({"v":"2025-01-15T10:30:00.0000001Z"})", "$.v: ");
  ExpectError(R"({"v":253402300800000000})", "$.v: TIMESTAMP out of range");
  ExpectError(R"({"v":"2025-02-30T00:00:00Z"})", "$.v: ");
  ExpectError(R"({"v":1.5})", "TIMESTAMP wants");
}

TEST_F(TranscodeTest, DateTimeDatetime) {
  Schema(R"([{"name":"d","type":"DATE"},{"name":"t","type":"TIME"},
             {"name":"dt","type":"DATETIME"}])");
  ASSERT_EQ(GRPC_STATUS_OK,
            Row(R"({"d":"2024-02-29","t":"23:59:59.999999","dt":"2000-02-29 12:00:00.5"})"))
      << st_.msg;
  auto v = Decode();
  EXPECT_EQ("2024-02-29", v[0]);
  EXPECT_EQ("23:59:59.999999", v[1]);
  EXPECT_EQ("2000-02-29T12:00:00.500000", v[2]);
  // Integers: epoch days; packed TIME (12:34:56 -> (12<<12|34<<6|56)<<20).
  long long packed = ((12LL << 12) | (34 << 6) | 56) << 20;
  ASSERT_EQ(GRPC_STATUS_OK,
            Row("{\"d\":-719162,\"t\":" + std::to_string(packed) + "}"));
  v = Decode();
  EXPECT_EQ("0001-01-01", v[0]);
  EXPECT_EQ("12:34:56", v[1]);
  ExpectError(R"({"d":"2023-02-29"})", "$.d: ");
  ExpectError(R"({"dt":"2023-02-29T00:00:00"})", "$.dt: ");
  ExpectError(R"({"d":"1900-02-29"})", "$.d: ");
  ExpectError(R"({"d":2932897})", "$.d: DATE wants");
  ExpectError(R"({"t":"24:00:00"})", "$.t: ");
  ExpectError(R"({"t":62914560})", "$.t: ");  // packed second 60
  ExpectError(R"({"dt":"2023-01-01T25:00:00"})", "$.dt: ");
}

TEST_F(TranscodeTest, BytesGeographyJson) {
  Schema(R"([{"name":"b","type":"BYTES"},{"name":"g","type":"GEOGRAPHY"},
             {"name":"j","type":"JSON"},{"name":"iv","type":"INTERVAL"}])");
  ASSERT_EQ(GRPC_STATUS_OK,
            Row(R"J({"b":"aGVsbG8=","g":"POINT(1 2)","j":{ "a" : [1, 2, {"b": "x y"}] }})J"))
      << st_.msg;
  auto v = Decode();
  EXPECT_EQ("hello", v[0]);
  EXPECT_EQ("POINT(1 2)", v[1]);
  EXPECT_EQ(R"({"a":[1,2,{"b":"x y"}]})", v[2]);
  ASSERT_EQ(GRPC_STATUS_OK, Row(R"({"b":[104,105],"j":"{\"k\":1}"})")) << st_.msg;
  v = Decode();
  EXPECT_EQ("hi", v[0]);
  EXPECT_EQ(R"({"k":1})", v[2]);
  ASSERT_EQ(GRPC_STATUS_OK, Row(R"({"iv":"1-2 3 4:5:6","j":[]})")) << st_.msg;
  v = Decode();
  EXPECT_EQ("NULL", v[0]);
  EXPECT_EQ("[]", v[2]);
  EXPECT_EQ("1-2 3 4:5:6", v[3]);
  ASSERT_EQ(GRPC_STATUS_OK, Row(R"({"b":"aGk"})"));  // unpadded
  EXPECT_EQ("hi", Decode()[0]);
  ExpectError(R"({"b":"a$=="})", "$.b: BYTES is not valid base64");
  ExpectError(R"({"b":[256]})", "$.b: BYTES array element");
  ExpectError(R"({"g":1})", "$.g: GEOGRAPHY wants a string");
}

TEST_F(TranscodeTest, RecordsRepeatedAndPaths) {
  Schema(R"([{"name":"order_id","type":"STRING","mode":"REQUIRED"},
             {"name":"items","type":"RECORD","mode":"REPEATED","fields":[
                {"name":"sku","type":"STRING","mode":"REQUIRED"},
                {"name":"price","type":"NUMERIC"},
                {"name":"tags","type":"STRING","mode":"REPEATED"}]},
             {"name":"address","type":"RECORD","fields":[
                {"name":"city","type":"STRING"},
                {"name":"geo","type":"RECORD","fields":[{"name":"lat","type":"FLOAT64"}]}]}])");
  ASSERT_EQ(GRPC_STATUS_OK,
            Row(R"({"order_id":"o1","items":[{"sku":"a","price":9.99,"tags":["x","y"]},
                    {"sku":"b","tags":[]}],"address":{"city":"NYC","geo":{"lat":40.5}}})"))
      << st_.msg;
  auto v = Decode();
  EXPECT_EQ("o1", v[0]);
  EXPECT_NE(std::string::npos, v[1].find("\"9.99\"")) << v[1];
  EXPECT_NE(std::string::npos, v[1].find("\"b\"")) << v[1];
  EXPECT_NE(std::string::npos, v[2].find("40.5")) << v[2];
  ASSERT_EQ(GRPC_STATUS_OK, Row(R"({"order_id":"o2","items":[],"address":null})"));
  v = Decode();
  EXPECT_EQ("[]", v[1]);
  EXPECT_EQ("NULL", v[2]);
  ExpectError(R"({"order_id":"o","items":[{"sku":"a"},{"sku":"b"},{"sku":"c","price":"x"}]})",
              "$.items[2].price: ");
  ExpectError(R"({"items":[]})", "$.order_id: missing REQUIRED field");
  ExpectError(R"({"order_id":"o","items":[{"price":1}]})", "$.items[0].sku: missing REQUIRED");
  ExpectError(R"({"order_id":null})", "$.order_id: null for a REQUIRED field");
  ExpectError(R"({"order_id":"o","items":[null]})", "$.items[0]: null element");
  ExpectError(R"({"order_id":"o","items":{}})", "$.items: REPEATED field wants a JSON array");
  ExpectError(R"({"order_id":"o","address":{"geo":{"lat":"x"}}})", "$.address.geo.lat: ");
  ExpectError(R"({"order_id":"o","Order_ID":"p"})", "$.order_id: field given twice");
  ExpectError(R"({"order_id":"o","address":{"zip":1}})",
              "$.address.zip: no such field in the table schema");
  ExpectError(R"({"order_id":"o"} x)", "trailing data");
  ExpectError(R"([1])", "$: a row is a JSON object");
  ExpectError(R"({"order_id":"o",})", "expected a key");
  ExpectError("{\"order_id\":\"\xff\"}", "invalid UTF-8");
  ExpectError(R"({"order_id":"\ud800"})", "lone high surrogate");
  // Keys are unescaped before matching.
  ASSERT_EQ(GRPC_STATUS_OK, Row(R"({"\u006Frder_ID":"\u00e9"})")) << st_.msg;
  EXPECT_EQ("\xc3\xa9", Decode()[0]);
  // Unknown fields may be ignored per call (the value is still checked).
  ASSERT_EQ(GRPC_STATUS_OK,
            Row(R"({"order_id":"o","extra":{"deep":[1,{"x":null}]}})", true))
      << st_.msg;
  EXPECT_EQ("o", Decode()[0]);
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, Row(R"({"order_id":"o","extra":[1,}]})", true));
}

TEST_F(TranscodeTest, DeepNestingLimits) {
  // 15 nested RECORD levels (BigQuery's maximum).
  std::string schema = R"([{"name":"v","type":"INT64"}])";
  for (int i = 0; i < 15; i++)
    schema = R"([{"name":"r","type":"RECORD","fields":)" + schema + "}]";
  Schema(schema);
  std::string row = R"({"v":7})";
  for (int i = 0; i < 15; i++) row = R"({"r":)" + row + "}";
  ASSERT_EQ(GRPC_STATUS_OK, Row(row)) << st_.msg;
  EXPECT_NE(std::string::npos, Decode()[0].find("7"));
  // JSON deeper than the reader's limit is a row error, not a crash.
  std::string deep(100000, '[');
  ASSERT_EQ(GRPC_STATUS_INVALID_ARGUMENT, Row(R"({"r":{"x":)" + deep, true));
  trb_status_t st{};
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_bq_json_check(deep.data(), deep.size(), &st));
  EXPECT_NE(nullptr, strstr(st.msg, "nesting deeper")) << st.msg;
}

// Error paths are built only when a row error is reported: the texts are
// those of the path pushed per key (column names in the schema's spelling,
// unknown keys as written, "..." for names that do not fit 240 bytes).
TEST_F(TranscodeTest, ErrorPathsExact) {
  Schema(R"([{"name":"s","type":"STRING","mode":"REQUIRED"},
             {"name":"Items","type":"RECORD","mode":"REPEATED","fields":[
                {"name":"n","type":"INT64","mode":"REPEATED"},
                {"name":"Sub","type":"RECORD","fields":[{"name":"z","type":"STRING"}]}]},
             {"name":"ts","type":"TIMESTAMP"}])");
  auto msg = [&](const std::string& json, bool ignore = false) {
    EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, Row(json, ignore)) << json;
    EXPECT_EQ(0u, out_.len);
    return std::string(st_.msg);
  };
  EXPECT_EQ("$.Items[1].n[2]: INT64 wants an integer, got x",
            msg(R"({"s":"a","ITEMS":[{},{"N":[1,2,"x"]}]})"));
  EXPECT_EQ("$.Items[0].Sub.z: STRING wants a string, integer or boolean",
            msg(R"({"items":[{"sub":{"Z":1.5}}],"s":"a"})"));
  // Keys out of column order (the lookup wraps around).
  EXPECT_EQ("$.s: field given twice", msg(R"({"ts":null,"items":[],"s":"a","S":"b"})"));
  EXPECT_EQ("$.s: missing REQUIRED field", msg(R"({"ts":null,"items":[]})"));
  EXPECT_EQ("$.q: no such field in the table schema", msg(R"({"s":"a","q":1})"));
  std::string long_key(250, 'k');
  EXPECT_EQ("$...: no such field in the table schema",
            msg("{\"s\":\"a\",\"" + long_key + "\":1}"));
  // An escaped unknown key keeps its text in the path while its value is
  // skipped (and read strings reuse the scratch buffer).
  EXPECT_EQ("$.xyz: invalid literal: unexpected character 't' at byte 31",
            msg(R"({"s":"a","\u0078yz":["\u00e9", tru]})", true));
  EXPECT_EQ("$.Items[0]: RECORD wants a JSON object", msg(R"({"s":"a","items":[1]})"));
  EXPECT_EQ("$.ts: invalid TIMESTAMP \"0000-12-31T00:00:00Z\": want RFC 3339 "
            "(YYYY-MM-DDTHH:MM:SS[.ffffff]Z or \u00b1HH:MM offset)",
            msg(R"({"s":"a","ts":"0000-12-31T00:00:00Z"})"));
}

// The common timestamp shape takes a shortcut; the values and the edges
// must be those of the general parser.
TEST_F(TranscodeTest, TimestampShortcutEdges) {
  Schema(COLUMN("TIMESTAMP"));
  EXPECT_EQ("2024-02-29T23:59:59.123456Z", One(R"({"v":"2024-02-29T23:59:59.123456000Z"})"));
  ExpectError(R"({"v":"2024-02-29T23:59:59.123456789Z"})", "$.v: invalid TIMESTAMP");
  EXPECT_EQ("2024-02-29T23:59:59.100000Z", One(R"({"v":"2024-02-29 23:59:59.1Z"})"));
  EXPECT_EQ("2000-02-29T00:00:00.123456Z", One(R"({"v":"2000-02-29T00:00:00.123456000Z"})"));
  EXPECT_EQ("9999-12-31T23:59:59.999999Z", One(R"({"v":"9999-12-31T23:59:59.999999Z"})"));
  EXPECT_EQ("2025-01-15T10:30:00.000000Z", One(R"({"v":"2025-01-15t10:30:00z"})"));
  ExpectError(R"({"v":"1900-02-29T00:00:00Z"})", "$.v: ");
  ExpectError(R"({"v":"2024-02-29T24:00:00Z"})", "$.v: ");
  ExpectError(R"({"v":"2024-02-29T23:60:00Z"})", "$.v: ");
  ExpectError(R"({"v":"2024-02-29T23:59:60Z"})", "$.v: ");
  ExpectError(R"({"v":"2024-13-01T00:00:00Z"})", "$.v: ");
  ExpectError(R"({"v":"2024-02-29T23:59:59.Z"})", "$.v: ");
  ExpectError(R"({"v":"2024-02-29T23:59:59.1234567891Z"})", "$.v: ");
  ExpectError(R"({"v":"2024-02-29T23:59:59.0000001Z"})", "$.v: ");
  ExpectError(R"({"v":"0000-01-01T00:00:00Z"})", "$.v: ");
}

// JSON-escape `v` as a string literal (what a pipeline writes when it adds
// members to the row text).
std::string JsonString(const std::string& v) {
  std::string r = "\"";
  for (unsigned char c : v) {
    char b[8];
    if (c == '"' || c == '\\') {
      r += '\\';
      r += (char)c;
    } else if (c < 0x20) {
      snprintf(b, sizeof b, "\\u%04x", c);
      r += b;
    } else {
      r += (char)c;
    }
  }
  return r + "\"";
}

// trb_bq_transcode_row_extra gives the bytes and messages of
// trb_bq_transcode_row on the row text with the members appended.
TEST_F(TranscodeTest, ExtraFieldsEqualAppendedMembers) {
  Schema(R"([{"name":"event_type","type":"STRING","mode":"REQUIRED"},
             {"name":"n","type":"INT64"},
             {"name":"tags","type":"STRING","mode":"REPEATED"},
             {"name":"rec","type":"RECORD","fields":[{"name":"x","type":"STRING"}]},
             {"name":"raw","type":"BYTES"},
             {"name":"subscription_name","type":"STRING"},
             {"name":"message_id","type":"STRING","mode":"REQUIRED"},
             {"name":"publish_time","type":"TIMESTAMP"},
             {"name":"attributes","type":"JSON"}])");
  using Extras = std::vector<std::pair<std::string, std::string>>;
  const Extras meta = {{"subscription_name", "projects/p/subscriptions/s"},
                       {"message_id", "1234567"},
                       {"publish_time", "2026-11-21T04:22:08.123456Z"},
                       {"attributes", R"({"k":"v \"q\"\n","\u00e9":"\u00e9"})"}};
  const std::vector<Extras> sets = {
      meta,
      {},
      {{"Message_ID", "with \"quotes\", \\ and \x01 control bytes, \xc3\xa9"}},
      {{"message_id", "m"}, {"publish_time", "not a time"}},
      {{"message_id", "m"}, {"tags", "x"}},
      {{"message_id", "m"}, {"rec", "x"}},
      {{"message_id", "m"}, {"raw", "aGVsbG8="}},
      {{"message_id", "m"}, {"raw", "!!"}},
      {{"message_id", "m"}, {"n", "42"}},
      {{"message_id", "m"}, {"n", "4.5"}},
      {{"message_id", "m"}, {"no_such_column", "v"}},
      {{"message_id", "m"}, {"message_id", "twice"}},
      {{"subscription_name", std::string("nul\0byte", 8)}, {"message_id", ""}},
  };
  const std::vector<std::string> rows = {
      R"({"event_type":"order","n":1})",
      R"( { } )",
      R"({"event_type":"x","message_id":"already"})",
      R"({"event_type":"x","MESSAGE_ID":"already","subscription_name":null})",
      R"({"event_type":"x","tags":["a","b"],"rec":{"x":"y"},"zz":[1]})",
      R"({"event_type":"x","n":"bad"})",
      R"({"n":1})",
  };
  int compared = 0, errors = 0;
  for (const auto& row : rows) {
    for (const auto& set : sets) {
      for (bool ignore : {false, true}) {
        // The row text with the members appended (as a pipeline's shaping).
        size_t e = row.find_last_of('}'), b = row.find('{');
        std::string inner = row.substr(b + 1, e - b - 1);
        bool empty = inner.find_first_not_of(" \t\r\n") == std::string::npos;
        std::string text = row.substr(0, e);
        for (size_t i = 0; i < set.size(); i++) {
          if (i > 0 || !empty) text += ",";
          text += JsonString(set[i].first) + ":" + JsonString(set[i].second);
        }
        text += "}";
        grpc_status_code want = Row(text, ignore);
        std::string want_bytes = Bytes(), want_msg = st_.msg;
        std::vector<trb_bq_extra_field_t> ex;
        for (const auto& kv : set)
          ex.push_back({kv.first.c_str(), kv.second.data(), kv.second.size()});
        trb_bq_transcode_opts_t o{ignore};
        trb_buf_reset(&out_);
        trb_buf_append(&out_, "KEEP", 4);
        trb_status_t st{};
        grpc_status_code got = trb_bq_transcode_row_extra(
            &t_, row.data(), row.size(), ex.empty() ? nullptr : ex.data(), ex.size(), &o,
            &out_, &st);
        ASSERT_EQ(want, got) << text << " " << want_msg << " / " << st.msg;
        ASSERT_EQ(0, memcmp(out_.data, "KEEP", 4));
        if (got == GRPC_STATUS_OK) {
          EXPECT_EQ(want_bytes, Hex(out_.data + 4, out_.len - 4)) << text;
        } else {
          errors++;
          EXPECT_EQ(want_msg, st.msg) << text;
          EXPECT_EQ(4u, out_.len) << text;
        }
        EXPECT_EQ('\0', out_.data[out_.len]);
        compared++;
      }
    }
  }
  EXPECT_EQ(int(rows.size() * sets.size() * 2), compared);
  EXPECT_GT(errors, 20);
  EXPECT_LT(errors, compared - 10);

  // Invalid UTF-8 in a value: the offset is counted in the value.
  trb_bq_extra_field_t bad[] = {{"message_id", "ab\xff", 3}};
  trb_status_t st{};
  trb_buf_reset(&out_);
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            trb_bq_transcode_row_extra(&t_, "{\"event_type\":\"x\"}", 18, bad, 1, nullptr,
                                       &out_, &st));
  EXPECT_STREQ("$.message_id: invalid UTF-8 in string at byte 2 of the value", st.msg);
  EXPECT_EQ(0u, out_.len);
}

// A publish_time extra with its microseconds (has_us, as the streamer's
// shaping gives it): a TIMESTAMP column gets the same bytes as from the
// text, any other column type still reads the text (a STRING column gets
// it as is, an INT64 column fails as for the text), and the text's UTF-8
// check and the "field given twice" check still apply.
TEST_F(TranscodeTest, ExtraTimestampMicrosGiveTheTextsBytes) {
  Schema(R"([{"name":"publish_time","type":"TIMESTAMP"},{"name":"as_text","type":"STRING"},
             {"name":"as_int","type":"INT64"}])");
  std::mt19937_64 rng(7);
  int compared = 0;
  for (int i = 0; i < 400; i++) {
    // Times across 0001-01-01 .. 9999-12-31 (and the ends exactly).
    int64_t lo = TRB_BQ_TIMESTAMP_MIN_US, hi = TRB_BQ_TIMESTAMP_MAX_US;
    int64_t us = i == 0 ? lo : i == 1 ? hi : lo + (int64_t)(rng() % (uint64_t)(hi - lo));
    if (i % 3 == 2) us -= us % 1000000;  // whole seconds too
    int64_t sec = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
    int64_t micros = us - sec * 1000000;
    time_t t = (time_t)sec;
    struct tm tm;
    ASSERT_NE(nullptr, gmtime_r(&t, &tm));
    char text[64];
    snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long long)micros);
    int64_t parsed = 0;
    trb_status_t pst{};
    ASSERT_EQ(GRPC_STATUS_OK, trb_bq_timestamp_parse(text, strlen(text), &parsed, &pst))
        << text << pst.msg;
    ASSERT_EQ(us, parsed) << text;
    for (const char* col : {"publish_time", "as_text", "as_int", "PUBLISH_TIME"}) {
      trb_bq_extra_field_t typed = {col, text, strlen(text), true, us};
      trb_bq_extra_field_t plain = {col, text, strlen(text), false, 0};
      trb_buf_t a = TRB_BUF_INIT, b = TRB_BUF_INIT;
      trb_status_t sa{}, sb{};
      grpc_status_code ra = trb_bq_transcode_row_extra(&t_, "{}", 2, &typed, 1, nullptr, &a, &sa);
      grpc_status_code rb = trb_bq_transcode_row_extra(&t_, "{}", 2, &plain, 1, nullptr, &b, &sb);
      ASSERT_EQ(rb, ra) << col << " " << text;
      EXPECT_EQ(std::string(b.data ? b.data : "", b.len), std::string(a.data ? a.data : "", a.len))
          << col << " " << text;
      EXPECT_STREQ(sb.msg, sa.msg);
      if (strcmp(col, "as_int") == 0)
        EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, ra);
      else
        EXPECT_EQ(GRPC_STATUS_OK, ra);
      trb_buf_deinit(&a);
      trb_buf_deinit(&b);
      compared++;
    }
  }
  EXPECT_EQ(1600, compared);
  // The text is still checked, and the column still counted.
  trb_bq_extra_field_t bad = {"publish_time", "2026\xff", 5, true, 0};
  trb_status_t st{};
  trb_buf_reset(&out_);
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            trb_bq_transcode_row_extra(&t_, "{}", 2, &bad, 1, nullptr, &out_, &st));
  EXPECT_STREQ("$.publish_time: invalid UTF-8 in string at byte 4 of the value", st.msg);
  trb_bq_extra_field_t ok = {"publish_time", "1970-01-01T00:00:00.000001Z", 27, true, 1};
  const char row[] = R"({"publish_time":"2020-01-01T00:00:00Z"})";
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            trb_bq_transcode_row_extra(&t_, row, strlen(row), &ok, 1, nullptr, &out_, &st));
  EXPECT_STREQ("$.publish_time: field given twice", st.msg);
}

// Column lookup: keys are matched by length, then exactly, then without
// ASCII case, with the lengths measured once per call for arrays of up to
// 64 columns and 8 arrays per row; wider tables and deeper rows use the
// byte-by-byte search. Both must pick the same column: a row against a
// table of 60 columns (fast) and the same table with 20 more unused
// columns (80, byte-by-byte) gives the same bytes and messages, for keys
// in other cases, prefixes and extensions of names, escaped keys, a NUL in
// a key, unknown keys and repeated keys; and a RECORD nested 12 deep (more
// arrays than slots) matches keys in any case at every level.
TEST_F(TranscodeTest, ColumnLookupSameOnEveryPath) {
  std::vector<std::string> names;
  for (int i = 0; i < 60; i++) {
    static const char* stems[] = {"a", "ab", "abc", "Order_Id", "order_date", "x_y", "Q"};
    names.push_back(std::string(stems[i % 7]) + (i < 7 ? "" : std::to_string(i)));
  }
  auto table = [&](int n) {
    std::string s = "[";
    for (int i = 0; i < n; i++) {
      std::string nm = i < 60 ? names[i] : "unused_" + std::to_string(i);
      s += (i ? "," : "") + std::string("{\"name\":\"") + nm + "\",\"type\":\"" +
           (i % 3 == 0 ? "INT64" : "STRING") + "\"}";
    }
    return s + "]";
  };
  trb_bq_table_t narrow{}, wide{};
  trb_status_t st{};
  std::string tn = table(60), tw = table(80);
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_table_parse(tn.data(), tn.size(), &narrow, &st)) << st.msg;
  ASSERT_EQ(GRPC_STATUS_OK, trb_bq_table_parse(tw.data(), tw.size(), &wide, &st)) << st.msg;
  std::mt19937 rng(11);
  auto key = [&](const std::string& nm) {
    std::string k = nm;
    switch (rng() % 8) {
      case 0: for (auto& ch : k) ch = (char)toupper((unsigned char)ch); break;
      case 1: for (auto& ch : k) ch = (char)tolower((unsigned char)ch); break;
      case 2: k = k.substr(0, k.size() - 1); break;              // a prefix
      case 3: k += "z"; break;                                    // longer
      case 4: k = "\\u00" + std::string("41") + k; break;        // escaped "A" + name
      case 5:  // escaped, the same name
        if (k[0] == 'a') k.replace(0, 1, "\\u0061");
        break;
      case 6: k += "\\u0000"; break;                              // a NUL byte
      default: break;
    }
    return k;
  };
  int same_ok = 0, same_err = 0;
  for (int r = 0; r < 3000; r++) {
    std::string row = "{";
    int nk = 1 + (int)(rng() % 6);
    for (int i = 0; i < nk; i++) {
      const std::string& nm = names[rng() % names.size()];
      row += (i ? "," : "") + std::string("\"") + key(nm) + "\":" + (rng() % 2 ? "\"7\"" : "7");
    }
    row += "}";
    for (bool ignore : {false, true}) {
      trb_bq_transcode_opts_t o{ignore};
      trb_buf_t a = TRB_BUF_INIT, b = TRB_BUF_INIT;
      trb_status_t sa{}, sb{};
      grpc_status_code ra = trb_bq_transcode_row(&narrow, row.data(), row.size(), &o, &a, &sa);
      grpc_status_code rb = trb_bq_transcode_row(&wide, row.data(), row.size(), &o, &b, &sb);
      ASSERT_EQ(ra, rb) << row;
      if (ra == GRPC_STATUS_OK) {
        EXPECT_EQ(Hex(a.data, a.len), Hex(b.data, b.len)) << row;
        same_ok++;
      } else {
        EXPECT_STREQ(sa.msg, sb.msg) << row;
        same_err++;
      }
      trb_buf_deinit(&a);
      trb_buf_deinit(&b);
    }
  }
  EXPECT_GT(same_ok, 500);
  EXPECT_GT(same_err, 500);
  trb_bq_table_deinit(&narrow);
  trb_bq_table_deinit(&wide);

  // 12 nested RECORDs: the deeper ones search without lengths.
  std::string sch = R"({"name":"leaf","type":"STRING"})";
  for (int d = 11; d >= 0; d--)
    sch = R"({"name":"Lvl_)" + std::to_string(d) + R"(","type":"RECORD","fields":[)" + sch +
          R"(,{"name":"n)" + std::to_string(d) + R"(","type":"INT64"}]})";
  Schema("[" + sch + "]");
  // The members of Lvl_d's object: Lvl_{d+1} (or leaf) and n<d>; keys in
  // upper case when `up`, n<d> first when `swap`.
  std::function<std::string(int, bool, bool)> body = [&](int d, bool up, bool swap) {
    auto cs = [&](std::string k) {
      if (up)
        for (auto& ch : k) ch = (char)toupper((unsigned char)ch);
      return "\"" + k + "\"";
    };
    std::string inner = d == 11 ? cs("leaf") + ":\"v\""
                                : cs("Lvl_" + std::to_string(d + 1)) + ":{" +
                                      body(d + 1, up, swap) + "}";
    std::string n = cs("n" + std::to_string(d)) + ":" + std::to_string(d);
    return swap ? n + "," + inner : inner + "," + n;
  };
  std::string canon = "{\"Lvl_0\":{" + body(0, false, false) + "}}";
  std::string upper = "{\"LVL_0\":{" + body(0, true, false) + "}}";
  std::string mixed = "{\"lvl_0\":{" + body(0, true, true) + "}}";
  ASSERT_EQ(GRPC_STATUS_OK, Row(canon)) << canon << st_.msg;
  std::string want = Bytes();
  ASSERT_EQ(GRPC_STATUS_OK, Row(upper)) << upper << st_.msg;
  EXPECT_EQ(want, Bytes()) << upper;
  ASSERT_EQ(GRPC_STATUS_OK, Row(mixed)) << mixed << st_.msg;
  EXPECT_NE(want, Bytes());  // other member order, other field order
  ExpectError(R"({"LVL_0":{"LVL_1":{"nope":1}}})", "$.Lvl_0.Lvl_1.nope: no such field");
}

TEST(JsonCheckTest, AcceptsAndRejects) {
  trb_status_t st{};
  for (const char* ok : {"{}", " [1, -0.5e+3, \"a\\u0041\", true, false, null] ", "\"x\"",
                         "0", "{\"a\":{\"b\":[]}}"})
    EXPECT_EQ(GRPC_STATUS_OK, trb_bq_json_check(ok, strlen(ok), &st)) << ok << st.msg;
  for (const char* bad : {"", "{", "[1,]", "01", "1.", "-", "tru", "{\"a\" 1}", "\"\\x\"",
                          "\"a\nb\"", "[1] [2]", "NaN", "{'a':1}"})
    EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_bq_json_check(bad, strlen(bad), &st)) << bad;
}

// Seeded mutations of a valid order row: every result is OK or
// INVALID_ARGUMENT, OK rows decode with rowdec, errors leave no bytes.
TEST_F(TranscodeTest, MutatedRowsNeverCrash) {
  Schema(R"([{"name":"event_type","type":"STRING"},{"name":"order_id","type":"STRING"},
             {"name":"order_date","type":"TIMESTAMP"},{"name":"total_amount","type":"NUMERIC"},
             {"name":"qty","type":"INT64"},{"name":"ok","type":"BOOL"},{"name":"d","type":"DATE"},
             {"name":"j","type":"JSON"},{"name":"b","type":"BYTES"},{"name":"f","type":"FLOAT64"},
             {"name":"items","type":"RECORD","mode":"REPEATED","fields":[
               {"name":"product_id","type":"STRING"},{"name":"quantity","type":"INT64"},
               {"name":"price","type":"BIGNUMERIC"}]},
             {"name":"shipping_address","type":"RECORD","fields":[
               {"name":"city","type":"STRING"},{"name":"t","type":"TIME"}]}])");
  const std::string seed =
      R"({"event_type":"order","order_id":"ord-1","order_date":"2025-01-15T10:30:00Z",)"
      R"("total_amount":299.99,"qty":3,"ok":true,"d":"2024-02-29","j":{"a":[1,"\u00e9"]},)"
      R"("b":"aGk=","f":1.25,"items":[{"product_id":"p","quantity":2,"price":"99.99"}],)"
      R"("shipping_address":{"city":"Amsterdam","t":"10:00:00"}})";
  ASSERT_EQ(GRPC_STATUS_OK, Row(seed)) << st_.msg;
  std::mt19937 rng(12345);
  int ok = 0, bad = 0;
  for (int iter = 0; iter < 20000; iter++) {
    int edits = 1 + rng() % 4;
    std::string m = Mutate(seed, edits, rng);
    grpc_status_code rc = Row(m, rng() % 2);
    if (rc == GRPC_STATUS_OK) {
      ok++;
      std::vector<trb_bq_value_t> v(trb_rowdec_plan_columns(plan_));
      trb_buf_reset(&dec_);
      trb_status_t st{};
      EXPECT_EQ(GRPC_STATUS_OK, trb_rowdec_decode(plan_, (const uint8_t*)out_.data, out_.len,
                                                  v.data(), &dec_, &st))
          << m << ": " << st.msg;
    } else {
      bad++;
      ASSERT_EQ(GRPC_STATUS_INVALID_ARGUMENT, rc) << m;
      ASSERT_EQ(0u, out_.len) << m;
      ASSERT_EQ('$', st_.msg[0]) << st_.msg;
    }
  }
  EXPECT_GT(ok, 100);
  EXPECT_GT(bad, 100);
}

// The watch (trb_bq_watch_t) counts top-level members with the key as
// written (raw bytes, escapes intact) and reports the last one's raw value;
// it never changes the output bytes or the error message.
TEST_F(TranscodeTest, WatchReportsTheLastTopLevelOccurrence) {
  Schema(R"([{"name":"event_type","type":"STRING"},{"name":"n","type":"INT64"},
             {"name":"r","type":"RECORD","fields":[{"name":"event_type","type":"STRING"}]}])");
  std::string held;  // the text w->last points into
  auto watch = [&](const std::string& json, bool ignore, trb_bq_watch_t* w) {
    held = json;
    trb_bq_transcode_opts_t o{ignore, w};
    trb_buf_reset(&out_);
    st_ = trb_status_t{};
    w->key = "event_type";
    w->key_len = strlen(w->key);
    return trb_bq_transcode_row(&t_, held.data(), held.size(), &o, &out_, &st_);
  };
  trb_bq_watch_t w{};
  ASSERT_EQ(GRPC_STATUS_OK, watch(R"({"n":1, "event_type" :  "order" , "r":{"event_type":"x"}})",
                                  false, &w))
      << st_.msg;
  EXPECT_EQ(w.count, 1u);
  EXPECT_EQ(std::string(w.last, w.last_len), "\"order\"");
  // Unknown (ignored) keys: nested ones do not count.
  ASSERT_EQ(GRPC_STATUS_OK,
            watch(R"({"event_type":"a","x":{"event_type":"no"},"n":2})", true, &w))
      << st_.msg;
  EXPECT_EQ(w.count, 1u) << "keys of nested objects do not count";
  EXPECT_EQ(std::string(w.last, w.last_len), "\"a\"");
  // Escaped spelling: the same column for the transcoder (given twice), not
  // the watched key — and it is a row error anyway.
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            watch(R"({"event_type":"a","event\u005ftype":"b"})", false, &w));
  Schema(R"([{"name":"n","type":"INT64"}])");
  ASSERT_EQ(GRPC_STATUS_OK,
            watch(R"({"event_type":"a","n":1,"event\u005ftype":"b","EVENT_TYPE":3,)"
                  R"("event_type":[1, {"q":2}] })",
                  true, &w))
      << st_.msg;
  EXPECT_EQ(w.count, 2u) << "escaped or other-case spellings are other keys";
  EXPECT_EQ(std::string(w.last, w.last_len), R"([1, {"q":2}])");
  ASSERT_EQ(GRPC_STATUS_OK, watch(R"({"n":1})", true, &w)) << st_.msg;
  EXPECT_EQ(w.count, 0u);
  EXPECT_EQ(w.last, nullptr);
}

TEST_F(TranscodeTest, WatchNeverAltersOutputOrMessages) {
  Schema(R"([{"name":"event_type","type":"STRING"},{"name":"order_id","type":"STRING"},
             {"name":"qty","type":"INT64"},{"name":"j","type":"JSON"},
             {"name":"items","type":"RECORD","mode":"REPEATED","fields":[
               {"name":"event_type","type":"STRING"},{"name":"quantity","type":"INT64"}]}])");
  const std::string seed =
      R"({"event_type":"order","order_id":"o","qty":3,"j":{"event_type":[1]},)"
      R"("kind":"a","items":[{"event_type":"x","quantity":2}],"kind" : "b" })";
  std::mt19937 rng(777);
  const trb_bq_extra_field_t ex[] = {{"order_id", "m", 1}, {"event_type", "e", 1}};
  int same_ok = 0, same_err = 0;
  for (int iter = 0; iter < 20000; iter++) {
    int edits = rng() % 4;
    std::string m = Mutate(seed, edits, rng);
    bool ignore = rng() % 2;
    size_t n_ex = rng() % 3;
    const char* key = (rng() % 4) ? "event_type" : "kind";
    trb_bq_transcode_opts_t plain{ignore};
    trb_bq_watch_t w{key, strlen(key), 99, "junk", 4};
    trb_bq_transcode_opts_t watched{ignore, &w};
    trb_buf_t a = TRB_BUF_INIT, b = TRB_BUF_INIT;
    trb_buf_append(&a, "P", 1);
    trb_buf_append(&b, "P", 1);
    trb_status_t sa{}, sb{};
    grpc_status_code ra = trb_bq_transcode_row_extra(&t_, m.data(), m.size(), n_ex ? ex : nullptr,
                                                     n_ex, &plain, &a, &sa);
    grpc_status_code rb = trb_bq_transcode_row_extra(&t_, m.data(), m.size(), n_ex ? ex : nullptr,
                                                     n_ex, &watched, &b, &sb);
    ASSERT_EQ(ra, rb) << m;
    ASSERT_EQ(std::string(a.data, a.len), std::string(b.data, b.len)) << m;
    ASSERT_STREQ(sa.msg, sb.msg) << m;
    if (ra == GRPC_STATUS_OK) {
      same_ok++;
      // The reported span is inside the row text and is a value's text.
      if (w.count) {
        ASSERT_GE(w.last, m.data());
        ASSERT_LE(w.last + w.last_len, m.data() + m.size());
        ASSERT_GT(w.last_len, 0u);
      }
      if (m == seed && !n_ex) {
        EXPECT_EQ(w.count, key[0] == 'k' ? 2u : 1u);
        EXPECT_EQ(std::string(w.last, w.last_len), key[0] == 'k' ? "\"b\"" : "\"order\"");
      }
    } else {
      same_err++;
    }
    trb_buf_deinit(&a);
    trb_buf_deinit(&b);
  }
  EXPECT_GT(same_ok, 100);
  EXPECT_GT(same_err, 100);
}

}  // namespace
