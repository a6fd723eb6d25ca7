// codecs_test.cc — the pure codecs of src/ingest (no I/O): JSON input
// checks, NDJSON, escaping, the issues envelope, base64, Pub/Sub push
// bodies (every fixture of ../shared/corpus/push), CloudEvents, routes.
#include <gtest/gtest.h>
#include <jansson.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "src/common/alloc.h"
#include "src/common/arena.h"
#include "src/ingest/cloudevent.h"
#include "src/ingest/envelope.h"
#include "src/ingest/json_input.h"
#include "src/ingest/push.h"
#include "src/ingest/routes.h"
#include "tests/ingest/corpus.h"

namespace {

std::string ParseError(const std::string& s, int depth = 0) {
  json_t* root = nullptr;
  trb_status_t st = {};
  grpc_status_code c = trb_ingest_json_parse(s.data(), s.size(), depth, &root, &st);
  json_decref(root);
  if (c == GRPC_STATUS_OK) return "";
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, c);
  return st.msg;
}

TEST(JsonInputTest, Utf8) {
  size_t bad = 99;
  EXPECT_TRUE(trb_ingest_utf8_valid("h\xc3\xa9llo \xf0\x9f\x98\x80", 11, &bad));
  EXPECT_FALSE(trb_ingest_utf8_valid("ab\xc3", 3, &bad));  // truncated
  EXPECT_EQ(2u, bad);
  EXPECT_FALSE(trb_ingest_utf8_valid("\xc0\xaf", 2, &bad));          // overlong
  EXPECT_FALSE(trb_ingest_utf8_valid("\xed\xa0\x80", 3, &bad));      // surrogate
  EXPECT_FALSE(trb_ingest_utf8_valid("\xf4\x90\x80\x80", 4, &bad));  // > U+10FFFF
  EXPECT_FALSE(trb_ingest_utf8_valid("x\xff", 2, &bad));
  EXPECT_EQ(1u, bad);
}

TEST(JsonInputTest, DepthIgnoresStrings) {
  EXPECT_EQ(0, trb_ingest_json_depth("1", 1, 64));
  EXPECT_EQ(2, trb_ingest_json_depth("{\"a\":[1]}", 9, 64));
  std::string s = "{\"a\":\"[[[[\\\"[[\"}";
  EXPECT_EQ(1, trb_ingest_json_depth(s.data(), s.size(), 64));
  std::string deep(1000, '[');
  EXPECT_EQ(65, trb_ingest_json_depth(deep.data(), deep.size(), 64));
}

TEST(JsonInputTest, ErrorsNameTheProblem) {
  EXPECT_EQ("", ParseError("{\"title\":\"x\"}"));
  EXPECT_EQ("empty body", ParseError(""));
  EXPECT_EQ("empty body", ParseError(" \r\n\t"));
  EXPECT_EQ("invalid UTF-8 at byte 7", ParseError("{\"a\":\"x\xff\"}"));
  std::string deep = std::string(65, '[') + std::string(65, ']');
  EXPECT_EQ("JSON nested deeper than 64 levels", ParseError(deep));
  EXPECT_EQ("", ParseError(std::string(64, '[') + std::string(64, ']')));
  EXPECT_EQ("JSON nested deeper than 3 levels", ParseError("[[[[]]]]", 3));
  EXPECT_NE(std::string::npos, ParseError("{\"a\":").find("malformed JSON at line 1"));
  EXPECT_NE(std::string::npos, ParseError("{\"a\":1,\"a\":2}").find("malformed JSON"));
  EXPECT_NE(std::string::npos, ParseError("{\"a\":1} x").find("malformed JSON"));
}

TEST(JsonInputTest, NdjsonLines) {
  std::string s = "{\"a\":1}\r\n\n  \n{\"b\":2}\n{\"c\":3}";
  size_t pos = 0, lineno = 0, len = 0;
  const char* line = nullptr;
  std::vector<std::pair<size_t, std::string>> got;
  while (trb_ingest_ndjson_next(s.data(), s.size(), &pos, &line, &len, &lineno)) {
    got.emplace_back(lineno, std::string(line, len));
  }
  ASSERT_EQ(3u, got.size());
  EXPECT_EQ(1u, got[0].first);
  EXPECT_EQ("{\"a\":1}", got[0].second);
  EXPECT_EQ(4u, got[1].first);
  EXPECT_EQ("{\"b\":2}", got[1].second);
  EXPECT_EQ(5u, got[2].first);
  EXPECT_EQ("{\"c\":3}", got[2].second);
}

TEST(JsonInputTest, EscapeRoundTripsThroughJansson) {
  static const char kIn[] = "q\"b\\s/\n\r\t\b\f\x01\x1f \xc3\xa9";
  std::string in(kIn, sizeof(kIn) - 1);
  trb_buf_t b = TRB_BUF_INIT;
  ASSERT_EQ(0, trb_ingest_json_append_str(&b, in.data(), in.size()));
  json_error_t err;
  json_t* j = json_loadb(b.data, b.len, JSON_DECODE_ANY, &err);
  ASSERT_NE(nullptr, j) << b.data;
  EXPECT_EQ(in, std::string(json_string_value(j), json_string_length(j)));
  json_decref(j);
  trb_buf_deinit(&b);
}

TEST(JsonInputTest, EscapeAppendsAfterExistingContentAndIsExact) {
  trb_buf_t b = TRB_BUF_INIT;
  ASSERT_EQ(0, trb_buf_append_str(&b, "x="));
  std::string in = std::string("\"\"\"") + std::string(1, '\0') + "a\\" +
                   std::string(300, '\n') + "end";
  ASSERT_EQ(0, trb_ingest_json_append_str(&b, in.data(), in.size()));
  std::string want = "x=\"\\\"\\\"\\\"\\u0000a\\\\";
  for (int i = 0; i < 300; i++) want += "\\n";
  want += "end\"";
  EXPECT_EQ(want, std::string(b.data, b.len));
  EXPECT_EQ('\0', b.data[b.len]);
  trb_buf_deinit(&b);
}

// Every special byte at every offset of a long string (the scanners and
// the escaper look at eight bytes at a time).
TEST(JsonInputTest, SpecialBytesAtEveryOffset) {
  const std::string specials[] = {"\"", "\\", std::string(1, '\0'), "\x01", "\x1f",
                                  "\n", "\xc3\xa9", "\x7f", " "};
  for (const std::string& sp : specials) {
    for (size_t at = 0; at < 40; at++) {
      std::string in = std::string(at, 'a') + sp + std::string(40 - at, 'x');
      SCOPED_TRACE(at);
      trb_buf_t b = TRB_BUF_INIT;
      ASSERT_EQ(0, trb_ingest_json_append_str(&b, in.data(), in.size()));
      json_error_t err;
      json_t* j = json_loadb(b.data, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
      ASSERT_NE(nullptr, j) << b.data;
      EXPECT_EQ(in, std::string(json_string_value(j), json_string_length(j)));
      json_decref(j);
      // The escaped form is a valid text; the raw bytes inside quotes are
      // valid only when the special byte needs no escape.
      trb_ingest_json_shape_t sh;
      bool plain = sp == "\xc3\xa9" || sp == "\x7f" || sp == " ";
      bool has_nul = sp == std::string(1, '\0');
      EXPECT_EQ(!has_nul, trb_ingest_json_fast_check(b.data, b.len, 0, &sh)) << b.data;
      std::string raw = "\"" + in + "\"";
      EXPECT_EQ(plain, trb_ingest_json_fast_check(raw.data(), raw.size(), 0, &sh));
      trb_buf_deinit(&b);
    }
  }
}

// The one-pass scanner never accepts what trb_ingest_json_parse refuses;
// the texts it accepts it reports the shape of.
struct FastCase {
  std::string text;
  bool fast;  // expected verdict of trb_ingest_json_fast_check
};

TEST(JsonInputTest, FastCheckAgreesWithParse) {
  std::string deep64 = std::string(64, '[') + std::string(64, ']');
  std::string deep65 = std::string(65, '[') + std::string(65, ']');
  std::string many_keys = "{";
  for (int i = 0; i < 40; i++) many_keys += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":1";
  many_keys += "}";
  const std::vector<FastCase> cases = {
      {"{\"title\":\"x\"}", true},
      {"  {\"a\":[1,-2.5e10,0,-0,1E+2,true,false,null,{},[]],\"b\":{\"c\":\"\\u00e9\\ud83d\\ude00\\n\"}} \n", true},
      {"{\"a\":{\"x\":1},\"b\":{\"x\":1}}", true},  // same key in two objects
      {"[1,2]", true},
      {"\"s\"", true},
      {"42", true},
      {"{\"h\xc3\xa9\":\"\xf0\x9f\x98\x80\xe2\x82\xac\"}", true},
      {deep64, true},
      {deep65, false},
      {"", false},
      {" \n", false},
      {"{\"a\":1,\"a\":2}", false},
      {"{\"a\":{\"b\":1,\"b\":1}}", false},
      {"{\"a\":1}}", false},
      {"{\"a\":1} x", false},
      {"{\"a\":", false},
      {"{\"a\" 1}", false},
      {"{\"a\":1,}", false},
      {"[1,]", false},
      {"{,}", false},
      {"[01]", false},
      {"[1.]", false},
      {"[.5]", false},
      {"[1e]", false},
      {"[-]", false},
      {"[+1]", false},
      {"[tru]", false},
      {"[nul]", false},
      {"{\"a\":\"x\xff\"}", false},
      {"{\"a\":\"\xc0\xaf\"}", false},          // overlong
      {"{\"a\":\"\xed\xa0\x80\"}", false},      // surrogate
      {"{\"a\":\"\xf4\x90\x80\x80\"}", false},  // > U+10FFFF
      {"{\"a\":\"\xe2\x82\"}", false},          // truncated
      {std::string("{\"a\":\"\x01\"}"), false},
      {"{\"a\":\"\\x\"}", false},
      {"{\"a\":\"\\u12G4\"}", false},
      {"{\"a\":\"\\ud800\"}", false},           // lone high surrogate
      {"{\"a\":\"\\udc00\"}", false},           // lone low surrogate
      {"{\"a\":\"\\ud800\\u0041\"}", false},
      {"\xef\xbb\xbf{}", false},                // BOM
      // Valid, but left to jansson (undecided by the scanner):
      {"{\"\\u0061\":1}", false},               // escaped key
      {"{\"a\":\"\\u0000\"}", false},
      {"[12345678901234567890]", false},        // may overflow json_int_t
      {"[1e400]", false},
      {many_keys, false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    trb_ingest_json_shape_t sh;
    bool fast = trb_ingest_json_fast_check(c.text.data(), c.text.size(), 0, &sh);
    EXPECT_EQ(c.fast, fast);
    json_t* root = nullptr;
    trb_status_t st = {};
    grpc_status_code code =
        trb_ingest_json_parse(c.text.data(), c.text.size(), 0, &root, &st);
    if (fast) {
      ASSERT_EQ(GRPC_STATUS_OK, code) << st.msg;
      EXPECT_EQ(json_is_object(root), sh.is_object);
      std::string trimmed = c.text.substr(sh.start, sh.end - sh.start);
      json_error_t err;
      json_t* again = json_loadb(trimmed.data(), trimmed.size(), JSON_DECODE_ANY, &err);
      ASSERT_NE(nullptr, again) << trimmed;
      EXPECT_TRUE(json_equal(root, again));
      json_decref(again);
    }
    json_decref(root);
  }
  trb_ingest_json_shape_t sh;
  EXPECT_FALSE(trb_ingest_json_fast_check("[[[[]]]]", 8, 3, &sh));
  EXPECT_TRUE(trb_ingest_json_fast_check("[[[]]]", 6, 3, &sh));
  std::string t = "{\"data\":{},\"event_type\":\"x\",\"o\":{\"data\":1}}";
  ASSERT_TRUE(trb_ingest_json_fast_check(t.data(), t.size(), 0, &sh));
  EXPECT_TRUE(sh.is_object);
  EXPECT_TRUE(sh.has_data);
  EXPECT_TRUE(sh.has_event_type);
  t = "{\"o\":{\"data\":1,\"event_type\":2}}";
  ASSERT_TRUE(trb_ingest_json_fast_check(t.data(), t.size(), 0, &sh));
  EXPECT_FALSE(sh.has_data);
  EXPECT_FALSE(sh.has_event_type);
}

TEST(EnvelopeTest, UuidV4) {
  uint8_t rnd[16];
  memset(rnd, 0xff, sizeof(rnd));
  char id[TRB_INGEST_UUID_LEN];
  trb_ingest_uuid4_format(rnd, id);
  EXPECT_STREQ("ffffffff-ffff-4fff-bfff-ffffffffffff", id);
  memset(rnd, 0, sizeof(rnd));
  trb_ingest_uuid4_format(rnd, id);
  EXPECT_STREQ("00000000-0000-4000-8000-000000000000", id);
}

TEST(EnvelopeTest, Rfc3339Millis) {
  char t[TRB_INGEST_TIME_LEN];
  trb_ingest_rfc3339_ms(0, t);
  EXPECT_STREQ("1970-01-01T00:00:00.000Z", t);
  trb_ingest_rfc3339_ms(1700000000123456LL, t);
  EXPECT_STREQ("2023-11-14T22:13:20.123Z", t);
  // Same second again (the per-thread cache), then the next second.
  trb_ingest_rfc3339_ms(1700000000999000LL, t);
  EXPECT_STREQ("2023-11-14T22:13:20.999Z", t);
  trb_ingest_rfc3339_ms(1700000001007999LL, t);
  EXPECT_STREQ("2023-11-14T22:13:21.007Z", t);
  trb_ingest_rfc3339_ms(-1000, t);
  EXPECT_STREQ("1969-12-31T23:59:59.999Z", t);
}

TEST(EnvelopeTest, FlatObjectWithPayloadString) {
  trb_buf_t b = TRB_BUF_INIT;
  std::string payload = "{\"title\":\"Checkout \\\"broken\\\"\", \"n\": 1}";
  ASSERT_EQ(0, trb_ingest_envelope_append(&b, "00000000-0000-4000-8000-000000000000",
                                          TRB_INGEST_SOURCE_MANUAL,
                                          "2023-11-14T22:13:20.123Z", payload.data(),
                                          payload.size()));
  json_error_t err;
  json_t* j = json_loadb(b.data, b.len, 0, &err);
  ASSERT_NE(nullptr, j) << b.data;
  EXPECT_EQ(4u, json_object_size(j));
  EXPECT_STREQ("00000000-0000-4000-8000-000000000000",
               json_string_value(json_object_get(j, "issue_id")));
  EXPECT_STREQ("manual-api", json_string_value(json_object_get(j, "source")));
  EXPECT_STREQ("2023-11-14T22:13:20.123Z", json_string_value(json_object_get(j, "created_at")));
  EXPECT_EQ(payload, json_string_value(json_object_get(j, "payload")));
  json_decref(j);
  trb_buf_deinit(&b);
}

std::string B64(const std::string& s) {
  std::vector<uint8_t> out(s.size() / 4 * 3 + 3);
  int64_t n = trb_ingest_base64_decode(s.data(), s.size(), out.data());
  if (n < 0) return "<bad>";
  return std::string(reinterpret_cast<char*>(out.data()), static_cast<size_t>(n));
}

TEST(PushTest, Base64) {
  EXPECT_EQ("", B64(""));
  EXPECT_EQ("hello world", B64("aGVsbG8gd29ybGQ="));
  EXPECT_EQ("hello world", B64("aGVsbG8gd29ybGQ"));  // padding optional
  EXPECT_EQ(std::string("\x01\x02\x03\x04", 4), B64("AQIDBA=="));
  EXPECT_EQ(std::string("\xfb\xff", 2), B64("+/8="));
  EXPECT_EQ(std::string("\xfb\xff", 2), B64("-_8="));  // URL-safe
  EXPECT_EQ("<bad>", B64("aGVsbG8@"));
  EXPECT_EQ("<bad>", B64("a"));
  EXPECT_EQ("<bad>", B64("aGVsbG8gd29ybGQ=="));  // wrong padding
  EXPECT_EQ("<bad>", B64("AQ=ID"));
  EXPECT_EQ("<bad>", B64("AR=="));  // non-zero trailing bits
  EXPECT_EQ("<bad>", B64("aGVs bG8="));
}

struct PushCase {
  std::string name;
  std::string body;  // JSON text
};

// Every push fixture: each .json file, and each line of push_examples.jsonl
// (its "body" object or "body_raw" text).
std::vector<PushCase> PushFixtures() {
  std::vector<PushCase> out;
  std::string dir = trb_test::CorpusDir() + "/push";
  std::vector<std::string> files;
  trb_test::ListFiles(dir, ".json", &files);
  for (const auto& f : files) {
    PushCase c;
    c.name = f.substr(dir.size() + 1);
    EXPECT_TRUE(trb_test::ReadFile(f, &c.body)) << f;
    out.push_back(c);
  }
  std::string jsonl;
  EXPECT_TRUE(trb_test::ReadFile(dir + "/push_examples.jsonl", &jsonl));
  size_t pos = 0, n = 0;
  while (pos < jsonl.size()) {
    size_t nl = jsonl.find('\n', pos);
    std::string line = jsonl.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? jsonl.size() : nl + 1;
    if (line.empty()) continue;
    n++;
    json_error_t err;
    json_t* j = json_loads(line.c_str(), 0, &err);
    EXPECT_NE(nullptr, j) << line;
    if (!j) continue;
    PushCase c;
    c.name = "push_examples.jsonl:" + std::to_string(n);
    if (json_t* body = json_object_get(j, "body")) {
      char* t = json_dumps(body, JSON_COMPACT);
      c.body = t;
      free(t);
    } else if (json_t* raw = json_object_get(j, "body_raw")) {
      c.body = json_string_value(raw);
    }
    json_decref(j);
    out.push_back(c);
  }
  return out;
}

// The message a fixture carries, read independently with jansson: the
// first object among .message, .data.message, .data that has "data".
void ExpectedMessage(json_t* root, std::string* data_b64,
                     std::map<std::string, std::string>* attrs) {
  json_t* m = json_object_get(root, "message");
  if (!m) {
    json_t* d = json_object_get(root, "data");
    m = json_object_get(d, "message") ? json_object_get(d, "message") : d;
  }
  ASSERT_TRUE(json_is_object(m));
  *data_b64 = json_string_value(json_object_get(m, "data"));
  const char* k;
  json_t* v;
  json_object_foreach(json_object_get(m, "attributes"), k, v) {
    (*attrs)[k] = json_string_value(v);
  }
}

TEST(PushTest, EveryCorpusFixtureDecodes) {
  auto cases = PushFixtures();
  ASSERT_GE(cases.size(), 20u) << "corpus at " << trb_test::CorpusDir();
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    json_error_t err;
    json_t* root = json_loads(c.body.c_str(), 0, &err);
    ASSERT_NE(nullptr, root);
    trb_ingest_push_msg_t m;
    memset(&m, 0, sizeof(m));
    trb_status_t st = {};
    ASSERT_EQ(GRPC_STATUS_OK, trb_ingest_push_decode(root, &m, &st)) << st.msg;
    std::string b64;
    std::map<std::string, std::string> attrs;
    ExpectedMessage(root, &b64, &attrs);
    EXPECT_EQ(B64(b64), std::string(reinterpret_cast<char*>(m.data), m.data_len));
    ASSERT_EQ(attrs.size(), m.n_attrs);
    for (size_t i = 0; i < m.n_attrs; i++) {
      EXPECT_EQ(attrs[m.attrs[i].key], m.attrs[i].value);
    }
    trb_ingest_push_msg_deinit(&m);
    json_decref(root);
  }
}

TEST(PushTest, FieldsOfTheComplexExample) {
  std::string body;
  ASSERT_TRUE(trb_test::ReadFile(trb_test::CorpusDir() +
                                     "/push/googleapis__google-cloudevents/examples/binary/"
                                     "pubsub/MessagePublishedData-complex.json",
                                 &body));
  json_error_t err;
  json_t* root = json_loads(body.c_str(), 0, &err);
  ASSERT_NE(nullptr, root);
  trb_ingest_push_msg_t m;
  memset(&m, 0, sizeof(m));
  ASSERT_EQ(GRPC_STATUS_OK, trb_ingest_push_decode(root, &m, nullptr));
  EXPECT_EQ("test message 3", std::string(reinterpret_cast<char*>(m.data), m.data_len));
  EXPECT_STREQ("message-id", m.message_id);
  EXPECT_STREQ("ordering-key", m.ordering_key);
  EXPECT_STREQ("2021-02-05T04:06:14.109Z", m.publish_time);
  EXPECT_STREQ("projects/test-project/subscriptions/my-subscription", m.subscription);
  trb_ingest_push_msg_deinit(&m);
  json_decref(root);
}

TEST(PushTest, BadBodies) {
  struct {
    const char* body;
    const char* err;
  } cases[] = {
      {"[]", "push body is not a JSON object"},
      {"{\"subscription\":\"s\"}", "push body has no message object"},
      {"{\"message\":\"x\"}", "push body has no message object"},
      {"{\"message\":{\"data\":\"!!!!\"}}", "message.data is not valid base64"},
      {"{\"message\":{\"data\":12}}", "message.data is not a string"},
      {"{\"message\":{}}", "message has neither data nor attributes"},
      {"{\"message\":{\"data\":\"\"}}", "message has neither data nor attributes"},
      {"{\"message\":{\"data\":\"eA==\",\"attributes\":{\"k\":1}}}",
       "message.attributes.k is not a string"},
      {"{\"message\":{\"data\":\"eA==\",\"attributes\":[]}}",
       "message.attributes is not an object"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.body);
    json_error_t err;
    json_t* root = json_loads(c.body, JSON_DECODE_ANY, &err);
    ASSERT_NE(nullptr, root);
    trb_ingest_push_msg_t m;
    memset(&m, 0, sizeof(m));
    trb_status_t st = {};
    EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_ingest_push_decode(root, &m, &st));
    EXPECT_STREQ(c.err, st.msg);
    trb_ingest_push_msg_deinit(&m);
    json_decref(root);
  }
}

TEST(PushTest, AttributesOnlyMessageIsValid) {
  json_error_t err;
  json_t* root = json_loads("{\"message\":{\"attributes\":{\"a\":\"b\"}}}", 0, &err);
  trb_ingest_push_msg_t m;
  memset(&m, 0, sizeof(m));
  EXPECT_EQ(GRPC_STATUS_OK, trb_ingest_push_decode(root, &m, nullptr));
  EXPECT_EQ(0u, m.data_len);
  EXPECT_EQ(1u, m.n_attrs);
  trb_ingest_push_msg_deinit(&m);
  json_decref(root);
}

TEST(CloudEventTest, BinaryHeaders) {
  trb_ingest_kv_t h[] = {{"Host", "x"},
                         {"Ce-Specversion", "1.0"},
                         {"ce-id", "1234567890"},
                         {"ce-type", "google.cloud.firestore.document.v1.created"},
                         {"CE-SOURCE", "//firestore.googleapis.com/projects/p/databases/(default)"},
                         {"ce-subject", "documents/c/d"},
                         {"ce-database", "(default)"}};
  EXPECT_TRUE(trb_ingest_ce_is_binary(h, 7));
  EXPECT_FALSE(trb_ingest_ce_is_binary(h, 1));
  trb_ingest_ce_t ce;
  memset(&ce, 0, sizeof(ce));
  trb_status_t st = {};
  ASSERT_EQ(GRPC_STATUS_OK,
            trb_ingest_ce_from_headers(h, 7, "application/protobuf",
                                       reinterpret_cast<const uint8_t*>("x"), 1, &ce, &st))
      << st.msg;
  EXPECT_STREQ("1234567890", ce.id);
  EXPECT_STREQ("documents/c/d", ce.subject);
  EXPECT_STREQ("application/protobuf", ce.datacontenttype);
  EXPECT_STREQ("(default)", trb_ingest_ce_attr(&ce, "database"));
  EXPECT_TRUE(trb_ingest_ce_is_firestore(ce.type));
  EXPECT_EQ(1u, ce.data_len);
}

TEST(CloudEventTest, BinaryMissingAndBad) {
  trb_ingest_kv_t h[] = {{"ce-specversion", "1.0"}, {"ce-type", "t"}, {"ce-source", "s"}};
  trb_ingest_ce_t ce;
  memset(&ce, 0, sizeof(ce));
  trb_status_t st = {};
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            trb_ingest_ce_from_headers(h, 3, nullptr, nullptr, 0, &ce, &st));
  EXPECT_STREQ("CloudEvent has no ce-id", st.msg);
  trb_ingest_kv_t h2[] = {{"ce-specversion", "0.3"}, {"ce-type", "t"}, {"ce-source", "s"},
                          {"ce-id", "1"}};
  memset(&ce, 0, sizeof(ce));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            trb_ingest_ce_from_headers(h2, 4, nullptr, nullptr, 0, &ce, &st));
  EXPECT_STREQ("unsupported CloudEvent specversion \"0.3\" (want 1.0)", st.msg);
  trb_ingest_kv_t h3[] = {{"ce-id", "1"}, {"CE-ID", "2"}};
  memset(&ce, 0, sizeof(ce));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            trb_ingest_ce_from_headers(h3, 2, nullptr, nullptr, 0, &ce, &st));
  EXPECT_STREQ("CloudEvent attribute ID given twice", st.msg);
}

TEST(CloudEventTest, StructuredJson) {
  json_error_t err;
  json_t* root = json_loads(
      "{\"specversion\":\"1.0\",\"id\":\"a\",\"source\":\"s\",\"type\":\"t\","
      "\"subject\":\"sub\",\"myext\":\"v\",\"data\":{\"k\":1}}",
      0, &err);
  trb_ingest_ce_t ce;
  memset(&ce, 0, sizeof(ce));
  trb_status_t st = {};
  ASSERT_EQ(GRPC_STATUS_OK, trb_ingest_ce_from_json(root, &ce, &st)) << st.msg;
  EXPECT_TRUE(ce.structured);
  EXPECT_STREQ("sub", ce.subject);
  EXPECT_STREQ("v", trb_ingest_ce_attr(&ce, "myext"));
  EXPECT_TRUE(json_is_object(ce.data_json));
  EXPECT_FALSE(trb_ingest_ce_is_firestore(ce.type));
  json_decref(root);

  root = json_loads("{\"specversion\":\"1.0\",\"source\":\"s\",\"type\":\"t\"}", 0, &err);
  memset(&ce, 0, sizeof(ce));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_ingest_ce_from_json(root, &ce, &st));
  EXPECT_STREQ("CloudEvent has no id", st.msg);
  json_decref(root);
}

TEST(CloudEventTest, LegacyFirestoreConvertsLikeTheFunctionsFramework) {
  // Each conformance legacy input must convert to the attributes of its
  // cloudevent output twin.
  std::string dir = trb_test::CorpusDir() +
                    "/firestore/GoogleCloudPlatform__functions-framework-conformance/events/"
                    "generate/data/";
  for (const char* kind : {"simple", "complex"}) {
    for (const char* form : {"legacy-input", "legacy-output"}) {
      SCOPED_TRACE(std::string(kind) + " " + form);
      std::string legacy, want;
      ASSERT_TRUE(trb_test::ReadFile(dir + "firestore_" + kind + "-" + form + ".json", &legacy));
      ASSERT_TRUE(trb_test::ReadFile(dir + "firestore_" + kind + "-cloudevent-output.json", &want));
      json_error_t err;
      json_t* l = json_loads(legacy.c_str(), 0, &err);
      json_t* w = json_loads(want.c_str(), 0, &err);
      ASSERT_NE(nullptr, l);
      ASSERT_NE(nullptr, w);
      trb_ingest_ce_t ce;
      memset(&ce, 0, sizeof(ce));
      char scratch[TRB_INGEST_CE_LEGACY_SCRATCH];
      ASSERT_TRUE(trb_ingest_ce_from_legacy_firestore(l, &ce, scratch));
      for (const char* a : {"specversion", "type", "source", "subject", "id", "time"}) {
        EXPECT_STREQ(json_string_value(json_object_get(w, a)), trb_ingest_ce_attr(&ce, a)) << a;
      }
      EXPECT_TRUE(json_equal(json_object_get(w, "data"), const_cast<json_t*>(ce.data_json)));
      json_decref(l);
      json_decref(w);
    }
  }
  json_error_t err;
  json_t* other = json_loads("{\"eventType\":\"x\",\"data\":{}}", 0, &err);
  trb_ingest_ce_t ce;
  memset(&ce, 0, sizeof(ce));
  char scratch[TRB_INGEST_CE_LEGACY_SCRATCH];
  EXPECT_FALSE(trb_ingest_ce_from_legacy_firestore(other, &ce, scratch));
  json_decref(other);
}

TEST(RoutesTest, Parse) {
  trb_ingest_routes_t r = {};
  trb_status_t st = {};
  ASSERT_EQ(GRPC_STATUS_OK,
            trb_ingest_routes_parse(" /=issues , /events=backend-events:raw,"
                                    "/push=projects/o/topics/replay:push",
                                    "p", &r, &st))
      << st.msg;
  ASSERT_EQ(3u, r.n);
  EXPECT_STREQ("projects/p/topics/issues", r.routes[0].topic);
  EXPECT_EQ(TRB_INGEST_MODE_WRAP, r.routes[0].mode);
  EXPECT_EQ(TRB_INGEST_MODE_RAW, trb_ingest_routes_match(&r, "/events")->mode);
  EXPECT_STREQ("projects/o/topics/replay", trb_ingest_routes_match(&r, "/push")->topic);
  EXPECT_EQ(nullptr, trb_ingest_routes_match(&r, "/nope"));
  trb_ingest_routes_deinit(&r);

  const char* bad[][2] = {{"issues", "want PATH=TOPIC"},
                          {"x=issues", "must start with '/'"},
                          {"/=", "empty topic"},
                          {"/=t:zip", "unknown mode"},
                          {"/=a,/=b", "given twice"},
                          {"/a\"b=t", "not allowed"},
                          {"", "no routes"}};
  for (const auto& b : bad) {
    trb_ingest_routes_t r2 = {};
    EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_ingest_routes_parse(b[0], "p", &r2, &st)) << b[0];
    EXPECT_NE(nullptr, strstr(st.msg, b[1])) << st.msg;
    trb_ingest_routes_deinit(&r2);
  }
}

}  // namespace
