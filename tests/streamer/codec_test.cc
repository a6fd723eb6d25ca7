// Pure streamer codecs: pipeline file and routing, JSON field lookup, row
// shaping, WAL record layouts, the message-id set.
#include <gtest/gtest.h>

#include <map>
#include <time.h>

#include <cstdio>
#include <cstring>

#include <random>
#include <string>
#include <vector>

extern "C" {
#include "src/bigquery/schema.h"
#include "src/bigquery/transcode.h"
#include "src/streamer/idset.h"
#include "src/streamer/jsonfield.h"
#include "src/streamer/pipeline.h"
#include "src/streamer/shape.h"
#include "src/streamer/walrec.h"
}

namespace {

struct Pipe {
  trb_pipeline_t p{};
  Pipe() { EXPECT_EQ(trb_pipeline_defaults(&p, nullptr), GRPC_STATUS_OK); }
  ~Pipe() { trb_pipeline_free(&p); }
  grpc_status_code Load(const std::string &json, std::string *err) {
    trb_status_t st{};
    grpc_status_code c =
        trb_pipeline_apply_json(&p, "pipe.json", json.data(), json.size(), &st);
    if (c == GRPC_STATUS_OK) c = trb_pipeline_finish(&p, &st);
    if (err) *err = st.msg;
    return c;
  }
};

const char kSeed[] = R"({
  "project": "local-project",
  "subscription": "backend-events-tributary",
  "dead_letter_topic": "tributary-dead-letter",
  "workers": 3, "batch_max_bytes": "1MiB", "batch_max_latency": "20ms",
  "routes": [
    {"equals": "order", "table": "backend_events.order_events"},
    {"equals": "inventory", "table": "backend_events.inventory_events"},
    {"field": "meta.kind", "equals": 7, "table": "d.numbers"},
    {"attribute": "type", "equals": "issue", "table": "tributary.issues"}
  ],
  "tables": {"tributary.issues": {"envelope": true, "write_metadata": true,
                                  "unknown_fields": "ignore"}}
})";

TEST(Pipeline, LoadsTheSeedShape) {
  Pipe p;
  std::string err;
  ASSERT_EQ(p.Load(kSeed, &err), GRPC_STATUS_OK) << err;
  EXPECT_STREQ(p.p.subscription,
               "projects/local-project/subscriptions/backend-events-tributary");
  EXPECT_STREQ(p.p.dead_letter_topic,
               "projects/local-project/topics/tributary-dead-letter");
  EXPECT_EQ(p.p.workers, 3);
  EXPECT_EQ(p.p.batch_max_bytes, 1 << 20);
  EXPECT_EQ(p.p.batch_max_latency_ms, 20);
  EXPECT_EQ(p.p.delivery, TRB_DELIVERY_EXACTLY_ONCE);
  ASSERT_EQ(p.p.n_tables, 4u);
  EXPECT_STREQ(p.p.tables[0].name, "tributary.issues");
  EXPECT_TRUE(p.p.tables[0].envelope);
  EXPECT_TRUE(p.p.tables[0].ignore_unknown_fields);
  EXPECT_STREQ(p.p.tables[1].path,
               "projects/local-project/datasets/backend_events/tables/"
               "order_events");
  EXPECT_EQ(p.p.default_table, -1);
}

TEST(Pipeline, RoutesByFieldNestedFieldAttributeAndDefault) {
  Pipe p;
  ASSERT_EQ(p.Load(kSeed, nullptr), GRPC_STATUS_OK);
  auto route = [&](const std::string &j, const char *ak = nullptr,
                   const char *av = nullptr) {
    const char *k[1] = {ak}, *v[1] = {av};
    return trb_pipeline_route(&p.p, j.data(), j.size(), k, v, ak ? 1 : 0);
  };
  EXPECT_EQ(route(R"({"event_type":"order","x":[1,{"event_type":"no"}]})"), 1);
  EXPECT_EQ(route(R"({"a":{"event_type":"order"},"event_type":"inventory"})"),
            2);
  EXPECT_EQ(route(R"({"event_type":"\u006frder"})"), 1);  // escapes decoded
  EXPECT_EQ(route(R"({"meta":{"kind":7}})"), 3);
  EXPECT_EQ(route(R"({"meta":{"kind":"7"}})"), 3);  // string "7" matches too
  EXPECT_EQ(route(R"({"meta":{"kind":70}})"), -1);
  EXPECT_EQ(route(R"({"event_type":"unknown"})"), -1);
  EXPECT_EQ(route("not json", "type", "issue"), 0);
  EXPECT_EQ(route(R"({"event_type":"order")"), -1);  // truncated
  std::string err;
  Pipe q;
  ASSERT_EQ(q.Load(R"({"project":"p","subscription":"s",
      "dead_letter_topic":"d","default_table":"tributary.issues"})",
                   &err),
            GRPC_STATUS_OK)
      << err;
  const char *none[1] = {nullptr};
  EXPECT_EQ(trb_pipeline_route(&q.p, "{}", 2, none, none, 0), 0);
  // Rules alternating between fields, in order: a field's value is looked
  // up once per run of rules on it, and again after a rule on another.
  Pipe a;
  ASSERT_EQ(a.Load(R"({"project":"p","subscription":"s","dead_letter_topic":"d",
      "routes": [{"equals": "order", "table": "d.a"},
                 {"field": "meta.kind", "equals": 7, "table": "d.b"},
                 {"equals": "inventory", "table": "d.c"},
                 {"equals": "user", "table": "d.d"}]})",
                   &err),
            GRPC_STATUS_OK)
      << err;
  auto route_a = [&](const std::string &j) {
    return trb_pipeline_route(&a.p, j.data(), j.size(), none, none, 0);
  };
  EXPECT_EQ(route_a(R"({"event_type":"order","meta":{"kind":7}})"), 0);
  EXPECT_EQ(route_a(R"({"event_type":"inventory","meta":{"kind":7}})"), 1);
  EXPECT_EQ(route_a(R"({"event_type":"inventory","meta":{"kind":8}})"), 2);
  EXPECT_EQ(route_a(R"({"meta":{"kind":8},"event_type":"user"})"), 3);
  EXPECT_EQ(route_a(R"({"event_type":"x","event_type":"user"})"), 3);  // last wins
  EXPECT_EQ(route_a(R"({"meta":{"kind":8}})"), -1);
}

// The fast route: the first top-level occurrence, stopping there; only
// for rules that are all JSON rules on one top-level field.
TEST(Pipeline, RouteFirstStopsAtTheFirstOccurrence) {
  const char *v, *raw;
  size_t vl, rl;
  std::string j = R"({"x":{"k":"no"}, "k" : "a\"b" ,"k":"c", then garbage)";
  ASSERT_EQ(trb_json_field_first(j.data(), j.size(), "k", 1, &v, &vl, &raw, &rl),
            TRB_JSON_STRING);
  EXPECT_EQ(std::string(v, vl), "a\\\"b");
  EXPECT_EQ(std::string(raw, rl), "\"a\\\"b\"");
  j = R"({"k\u0020":1,"k":[1,2] ,"k":3})";
  ASSERT_EQ(trb_json_field_first(j.data(), j.size(), "k", 1, &v, &vl, &raw, &rl),
            TRB_JSON_ARRAY);
  EXPECT_EQ(std::string(raw, rl), "[1,2]");
  j = R"({"a":1,"b":{"k":2}})";
  EXPECT_EQ(trb_json_field_first(j.data(), j.size(), "k", 1, &v, &vl, &raw, &rl),
            TRB_JSON_MISSING);
  j = R"({"a":tru,"k":2})";
  EXPECT_EQ(trb_json_field_first(j.data(), j.size(), "k", 1, &v, &vl, &raw, &rl),
            TRB_JSON_MALFORMED);
  j = "[1]";
  EXPECT_EQ(trb_json_field_first(j.data(), j.size(), "k", 1, &v, &vl, &raw, &rl),
            TRB_JSON_MISSING);

  std::string err;
  Pipe a;
  ASSERT_EQ(a.Load(R"({"project":"p","subscription":"s","dead_letter_topic":"d",
      "routes": [{"equals": "order", "table": "d.a"},
                 {"equals": 7, "table": "d.b"},
                 {"equals": "inventory", "table": "d.c"}]})",
                   &err),
            GRPC_STATUS_OK)
      << err;
  const char *key = nullptr;
  std::string held;  // the text `raw` points into
  auto first = [&](const Pipe &p, const std::string &js) {
    raw = nullptr;
    held = js;
    return trb_pipeline_route_first(&p.p, held.data(), held.size(), &key, &raw, &rl);
  };
  EXPECT_EQ(first(a, R"({"event_type":"order","event_type":"inventory"})"), 0);
  EXPECT_STREQ(key, "event_type");
  EXPECT_EQ(std::string(raw, rl), "\"order\"");
  EXPECT_EQ(first(a, R"({"event_type":7,"x":})"), 1);  // the rest is not read
  EXPECT_EQ(std::string(raw, rl), "7");
  EXPECT_EQ(first(a, R"({"event_type":"\u0069nventory"})"), 2);
  // Not found, no rule matches, or malformed before it: the full scan.
  EXPECT_EQ(first(a, R"({"x":{"event_type":"order"}})"), TRB_PIPELINE_ROUTE_FULL);
  EXPECT_EQ(first(a, R"({"event_type":"refund","event_type":"order"})"),
            TRB_PIPELINE_ROUTE_FULL);
  EXPECT_EQ(first(a, R"({"event_type":null})"), TRB_PIPELINE_ROUTE_FULL);
  EXPECT_EQ(first(a, R"({"x":[,"event_type":"order"})"), TRB_PIPELINE_ROUTE_FULL);
  EXPECT_EQ(first(a, R"({"event\u005ftype":"order"})"), TRB_PIPELINE_ROUTE_FULL);
  // Attribute rules, nested fields or rules on two fields: the full scan.
  Pipe seed;
  ASSERT_EQ(seed.Load(kSeed, nullptr), GRPC_STATUS_OK);
  EXPECT_EQ(first(seed, R"({"event_type":"order"})"), TRB_PIPELINE_ROUTE_FULL);
  Pipe nested;
  ASSERT_EQ(nested.Load(R"({"project":"p","subscription":"s","dead_letter_topic":"d",
      "route_field": "m.k", "routes": [{"equals": "order", "table": "d.a"}]})",
                        &err),
            GRPC_STATUS_OK)
      << err;
  EXPECT_EQ(first(nested, R"({"m.k":"order","m":{"k":"order"}})"), TRB_PIPELINE_ROUTE_FULL);
  Pipe two;
  ASSERT_EQ(two.Load(R"({"project":"p","subscription":"s","dead_letter_topic":"d",
      "routes": [{"equals": "order", "table": "d.a"},
                 {"field": "kind", "equals": "x", "table": "d.b"}]})",
                     &err),
            GRPC_STATUS_OK)
      << err;
  EXPECT_EQ(first(two, R"({"event_type":"order"})"), TRB_PIPELINE_ROUTE_FULL);
}

TEST(Pipeline, ErrorsNameFilePathAndReason) {
  struct Case {
    const char *json, *want;
  } cases[] = {
      {"{", "pipe.json: $: line 1"},
      {"[]", "pipe.json: $: the pipeline file must be a JSON object"},
      {R"({"wokers": 2})", "unknown configuration key \"wokers\""},
      {R"({"workers": 0})", "below the minimum 1"},
      {R"({"batch_max_latency": "fast"})", "batch_max_latency"},
      {R"({"routes": {}})", "pipe.json: $.routes: must be an array"},
      {R"({"routes": [{"equals": "x", "table": "nodot"}]})",
       "$.routes[0]: table must be \"<dataset>.<table>\""},
      {R"({"routes": [{"table": "a.b"}]})", "$.routes[0]: equals is required"},
      {R"({"routes": [{"equals":"x","table":"a.b","tabel":1}]})",
       "unknown key \"tabel\""},
      {R"({"tables": {"a.b": {"unknown_fields": "drop"}}})",
       "$.tables[\"a.b\"].unknown_fields: must be \"reject\" or \"ignore\""},
      {R"({"project":"p","subscription":"s","dead_letter_topic":"d"})",
       "no route and no default_table"},
      {R"({"project":"p","dead_letter_topic":"d","default_table":"a.b"})",
       "subscription: is required"},
      {R"({"project":"p","subscription":"s","dead_letter_topic":"d",
          "default_table":"a.b","delivery":"twice"})",
       "delivery: \"twice\" is not exactly_once or at_least_once"},
      {R"({"project":"p","subscription":"projects/p/topics/x",
          "dead_letter_topic":"d","default_table":"a.b"})",
       "is not a subscriptions name"},
  };
  for (const auto &c : cases) {
    Pipe p;
    std::string err;
    EXPECT_EQ(p.Load(c.json, &err), GRPC_STATUS_INVALID_ARGUMENT) << c.json;
    EXPECT_NE(err.find(c.want), std::string::npos)
        << c.json << "\n got: " << err;
  }
}

TEST(JsonField, KindsEscapesAndMalformedText) {
  const char *v;
  size_t n;
  std::string j = R"( {"a" : "x\"y", "b": -1.5e3, "c": true, "d": null,
                      "e": {"f": [1, 2]}, "a": "last"} )";
  EXPECT_EQ(trb_json_field(j.data(), j.size(), "a", &v, &n), TRB_JSON_STRING);
  EXPECT_EQ(std::string(v, n), "last");
  EXPECT_EQ(trb_json_field(j.data(), j.size(), "b", &v, &n), TRB_JSON_NUMBER);
  EXPECT_EQ(std::string(v, n), "-1.5e3");
  EXPECT_EQ(trb_json_field(j.data(), j.size(), "c", &v, &n), TRB_JSON_BOOL);
  EXPECT_EQ(trb_json_field(j.data(), j.size(), "d", &v, &n), TRB_JSON_NULL);
  EXPECT_EQ(trb_json_field(j.data(), j.size(), "e.f", &v, &n), TRB_JSON_ARRAY);
  EXPECT_EQ(std::string(v, n), "[1, 2]");
  EXPECT_EQ(trb_json_field(j.data(), j.size(), "e.g", &v, &n),
            TRB_JSON_MISSING);
  EXPECT_EQ(trb_json_field(j.data(), j.size(), "a.b", &v, &n),
            TRB_JSON_MISSING);
  std::string bad = R"({"a": [1, 2}, "b": 1})";
  EXPECT_EQ(trb_json_field(bad.data(), bad.size(), "b", &v, &n),
            TRB_JSON_MALFORMED);
  std::string deep(100, '[');
  deep = "{\"a\":" + deep;
  EXPECT_EQ(trb_json_field(deep.data(), deep.size(), "b", &v, &n),
            TRB_JSON_MALFORMED);
  EXPECT_TRUE(trb_json_string_equals("caf\\u00e9 \\ud83d\\ude00", 22,
                                     "caf\xc3\xa9 \xf0\x9f\x98\x80"));
  EXPECT_FALSE(trb_json_string_equals("ab", 2, "abc"));
  EXPECT_FALSE(trb_json_string_equals("abc", 3, "ab"));
  EXPECT_FALSE(trb_json_string_equals("\\ud83d", 6, "x"));  // lone surrogate
}

// Strings are scanned 8 bytes at a time: a quote, backslash or control
// byte at every position of a word (and across word ends) is still seen.
TEST(JsonField, WordScanFindsEverySpecialByte) {
  for (size_t pre = 0; pre < 20; pre++) {
    for (size_t post = 0; post < 12; post++) {
      std::string pad(pre, 'x'), tail(post, 'y');
      // An escaped quote inside a key's value: the value is skipped whole.
      std::string d = "{\"k" + pad + "\":\"" + pad + "\\\"" + tail +
                      "\",\"e\":\"" + pad + "\xc3\xa9" + tail + "\"}";
      const char *v;
      size_t n;
      ASSERT_EQ(trb_json_field(d.data(), d.size(), "e", &v, &n),
                TRB_JSON_STRING)
          << d;
      EXPECT_EQ(std::string(v, n), pad + "\xc3\xa9" + tail);
      std::string k = "k" + pad;
      ASSERT_EQ(trb_json_field(d.data(), d.size(), k.c_str(), &v, &n),
                TRB_JSON_STRING);
      EXPECT_EQ(std::string(v, n), pad + "\\\"" + tail);
      // A raw control byte anywhere in a string is malformed.
      std::string bad = "{\"e\":\"" + pad + "\x1f" + tail + "\",\"f\":1}";
      EXPECT_EQ(trb_json_field(bad.data(), bad.size(), "f", &v, &n),
                TRB_JSON_MALFORMED)
          << pre << " " << post;
      // An unterminated string is malformed, not read past its end.
      std::string open = "{\"e\":\"" + pad + tail;
      EXPECT_EQ(trb_json_field(open.data(), open.size(), "e", &v, &n),
                TRB_JSON_MALFORMED);
    }
  }
}

TEST(Shape, MetadataEnvelopeAndErrors) {
  trb_ps_attr_t attrs[2] = {{"k", "v\"1"}, {"type", "issue"}};
  trb_shape_meta_t m = {"projects/p/subscriptions/s", "42", 1700000000,
                        123456789, attrs, 2};
  trb_buf_t out = TRB_BUF_INIT;
  std::string d = " {\"a\": 1} \n";
  ASSERT_EQ(trb_shape_row((const uint8_t *)d.data(), d.size(), false, true, &m,
                          &out, nullptr),
            GRPC_STATUS_OK);
  EXPECT_EQ(std::string(out.data, out.len),
            "{\"a\": 1,\"subscription_name\":\"projects/p/subscriptions/s\","
            "\"message_id\":\"42\",\"publish_time\":"
            "\"2023-11-14T22:13:20.123456Z\",\"attributes\":"
            "\"{\\\"k\\\":\\\"v\\\\\\\"1\\\",\\\"type\\\":\\\"issue\\\"}\"}");
  {
    // The lengths given (as the worker does) produce the same row.
    std::string want(out.data, out.len);
    trb_shape_meta_t ml = m;
    ml.subscription_len = strlen(m.subscription);
    ml.message_id_len = 2;
    ASSERT_EQ(trb_shape_row((const uint8_t *)d.data(), d.size(), false, true,
                            &ml, &out, nullptr),
              GRPC_STATUS_OK);
    EXPECT_EQ(std::string(out.data, out.len), want);
  }
  d = "{ }";
  ASSERT_EQ(trb_shape_row((const uint8_t *)d.data(), d.size(), false, true, &m,
                          &out, nullptr),
            GRPC_STATUS_OK);
  EXPECT_EQ(std::string(out.data, 23), "{ \"subscription_name\":\"");
  d = "[1]";
  trb_status_t st{};
  EXPECT_EQ(trb_shape_row((const uint8_t *)d.data(), d.size(), false, true, &m,
                          &out, &st),
            GRPC_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(std::string(st.msg).find("not a JSON object"), std::string::npos);
  d = "not \"json\"\n\x01";
  ASSERT_EQ(trb_shape_row((const uint8_t *)d.data(), d.size(), true, false, &m,
                          &out, nullptr),
            GRPC_STATUS_OK);
  EXPECT_EQ(std::string(out.data, out.len),
            "{\"payload\":\"not \\\"json\\\"\\n\\u0001\"}");
  trb_buf_deinit(&out);
  char path[64];
  const char *reason = trb_dl_split_path("$.items[2].price: not a number",
                                         path, sizeof path);
  EXPECT_STREQ(path, "$.items[2].price");
  EXPECT_STREQ(reason, "not a number");
  reason = trb_dl_split_path("no route", path, sizeof path);
  EXPECT_STREQ(path, "");
  EXPECT_STREQ(reason, "no route");
}

// The worker transcodes trb_shape_extras' row + members: the same bytes
// (or the same error message) as transcoding trb_shape_row's text, for
// metadata, envelopes, escapes in attributes, a column given twice, an
// unknown member, and data that is not an object (same reason, from the
// shaping step in both).
TEST(Shape, ExtrasTranscodeLikeTheShapedRow) {
  const char *schema =
      "{\"schema\": [{\"name\": \"a\", \"type\": \"INTEGER\"},"
      " {\"name\": \"payload\", \"type\": \"STRING\"},"
      " {\"name\": \"subscription_name\", \"type\": \"STRING\"},"
      " {\"name\": \"message_id\", \"type\": \"STRING\"},"
      " {\"name\": \"publish_time\", \"type\": \"TIMESTAMP\"},"
      " {\"name\": \"attributes\", \"type\": \"JSON\"}]}";
  const char *narrow =
      "{\"schema\": [{\"name\": \"a\", \"type\": \"INTEGER\"}]}";
  trb_bq_table_t wide{}, small{};
  trb_status_t st{};
  ASSERT_EQ(trb_bq_table_parse(schema, strlen(schema), &wide, &st),
            GRPC_STATUS_OK)
      << st.msg;
  ASSERT_EQ(trb_bq_table_parse(narrow, strlen(narrow), &small, &st),
            GRPC_STATUS_OK)
      << st.msg;
  trb_ps_attr_t attrs[3] = {{"k", "v\"1\\"}, {"type", "line\nbreak\x01"},
                            {"caf\xc3\xa9", "\xf0\x9f\x98\x80"}};
  const char *datas[] = {"{\"a\": 1}", " { } \n", "{\"a\":2,\"message_id\":\"x\"}",
                         "{\"a\": \"no\"}", "[1]", "\"s\"", "{\"a\":1,\"zz\":[1,{}]}",
                         "{\"a\":1} trailing"};
  int compared = 0, errors = 0;
  for (const trb_bq_table_t *t : {&wide, &small}) {
    for (bool ignore : {false, true}) {
      trb_bq_transcode_opts_t opts{};
      opts.ignore_unknown_fields = ignore;
      for (size_t na : {size_t{0}, size_t{1}, size_t{3}}) {
        trb_shape_meta_t m = {"projects/p/subscriptions/s", "42", 1700000000,
                              123456789, na ? attrs : nullptr, na};
        for (const char *d : datas) {
          for (int mode = 0; mode < 4; mode++) {
            bool env = mode & 1, meta = mode & 2;
            const uint8_t *du = (const uint8_t *)d;
            trb_buf_t text = TRB_BUF_INIT, scratch = TRB_BUF_INIT;
            trb_buf_t o1 = TRB_BUF_INIT, o2 = TRB_BUF_INIT;
            trb_status_t s1{}, s2{};
            trb_shape_extras_t x;
            grpc_status_code c1 = trb_shape_row(du, strlen(d), env, meta, &m,
                                                &text, &s1);
            grpc_status_code c2 = trb_shape_extras(du, strlen(d), env, meta,
                                                   &m, &scratch, &x, &s2);
            ASSERT_EQ(c1, c2) << d;
            if (c1 == GRPC_STATUS_OK) {
              c1 = trb_bq_transcode_row(t, text.data, text.len, &opts, &o1,
                                        &s1);
              c2 = trb_bq_transcode_row_extra(t, x.row, x.row_len, x.f, x.n,
                                              &opts, &o2, &s2);
            }
            ASSERT_EQ(c1, c2) << d << " mode " << mode;
            if (c1 == GRPC_STATUS_OK) {
              EXPECT_EQ(std::string(o1.data, o1.len),
                        std::string(o2.data, o2.len))
                  << d << " mode " << mode;
              compared++;
            } else {
              EXPECT_STREQ(s1.msg, s2.msg) << d << " mode " << mode;
              errors++;
            }
            trb_buf_deinit(&text);
            trb_buf_deinit(&scratch);
            trb_buf_deinit(&o1);
            trb_buf_deinit(&o2);
          }
        }
      }
    }
  }
  EXPECT_GT(compared, 50);
  EXPECT_GT(errors, 50);
  trb_bq_table_deinit(&wide);
  trb_bq_table_deinit(&small);
}

// The extras' typed publish_time (microseconds, taken by a TIMESTAMP column
// without parsing) and the attributes' object text, against the shaped row
// text transcoded: the same bytes or message for random publish times —
// years 0001..9999, and outside (year 0 and before, after 9999, negative
// or oversized nanos: text only, has_us false) — with publish_time as
// TIMESTAMP, STRING and INT64 columns; and attribute keys and values of
// random bytes (quotes, backslashes, control bytes, UTF-8, invalid UTF-8)
// escaped like an independent escaper.
TEST(Shape, ExtrasMatchTheShapedRowForAnyTimeAndAttributes) {
  const char *types[] = {"TIMESTAMP", "STRING", "INTEGER"};
  trb_bq_table_t t[3] = {};
  trb_status_t st{};
  for (int i = 0; i < 3; i++) {
    std::string s = std::string("{\"schema\": [") +
                    "{\"name\": \"subscription_name\", \"type\": \"STRING\"}," +
                    "{\"name\": \"message_id\", \"type\": \"STRING\"}," +
                    "{\"name\": \"publish_time\", \"type\": \"" + types[i] + "\"}," +
                    "{\"name\": \"attributes\", \"type\": \"STRING\"}]}";
    ASSERT_EQ(trb_bq_table_parse(s.data(), s.size(), &t[i], &st), GRPC_STATUS_OK) << st.msg;
  }
  auto escape = [](const std::string &v) {
    std::string r = "\"";
    for (unsigned char c : v) {
      char b[8];
      if (c == '"') r += "\\\"";
      else if (c == '\\') r += "\\\\";
      else if (c == '\n') r += "\\n";
      else if (c == '\r') r += "\\r";
      else if (c == '\t') r += "\\t";
      else if (c < 0x20) { snprintf(b, sizeof b, "\\u%04x", c); r += b; }
      else r += (char)c;
    }
    return r + "\"";
  };
  std::mt19937_64 rng(5);
  const char alphabet[] = "ab\"\\\n\r\t\x01\x1f\x7f \xc3\xa9\xff{}:,";
  auto rnd = [&](size_t maxlen) {
    std::string v;
    size_t n = rng() % (maxlen + 1);
    for (size_t i = 0; i < n; i++) {
      if (rng() % 3 == 0) v += alphabet[rng() % (sizeof alphabet - 1)];
      else v += (char)('a' + rng() % 26);
    }
    return v;
  };
  int typed = 0, text_only = 0, ok = 0, bad = 0;
  for (int i = 0; i < 3000; i++) {
    int64_t sec;
    int32_t nanos = (int32_t)(rng() % 1000000000);
    switch (i % 6) {
      case 0: sec = -62135596800LL + (int64_t)(rng() % 400) - 200; break;  // year 1 edge
      case 1: sec = 253402300799LL + (int64_t)(rng() % 400) - 200; break;  // year 9999 edge
      case 2: sec = -62167219200LL - (int64_t)(rng() % 100000); break;     // before year 0
      case 3: nanos = -(int32_t)(rng() % 1000000000); sec = (int64_t)(rng() % 4000000000); break;
      case 4: nanos = 1000000000 + (int32_t)(rng() % 100000000); sec = 1700000000; break;
      default: sec = (int64_t)(rng() % 315537897600ULL) - 62135596800LL; break;
    }
    std::vector<std::string> keys, vals;
    size_t na = rng() % 4;
    for (size_t a = 0; a < na; a++) {
      keys.push_back(rnd(12));
      vals.push_back(rnd(40));
    }
    std::vector<trb_ps_attr_t> attrs;
    for (size_t a = 0; a < na; a++) attrs.push_back({keys[a].c_str(), vals[a].c_str()});
    trb_shape_meta_t m = {"projects/p/subscriptions/s", "42", sec, nanos,
                          na ? attrs.data() : nullptr, na};
    const uint8_t *du = (const uint8_t *)"{}";
    trb_buf_t text = TRB_BUF_INIT, scratch = TRB_BUF_INIT;
    trb_shape_extras_t x;
    ASSERT_EQ(trb_shape_row(du, 2, false, true, &m, &text, &st), GRPC_STATUS_OK);
    ASSERT_EQ(trb_shape_extras(du, 2, false, true, &m, &scratch, &x, &st), GRPC_STATUS_OK);
    ASSERT_EQ(x.n, 4u);
    // The attributes' object text, by an independent escaper.
    std::string obj = "{";
    for (size_t a = 0; a < na; a++)
      obj += (a ? "," : "") + escape(keys[a]) + ":" + escape(vals[a]);
    obj += "}";
    EXPECT_EQ(obj, std::string(x.f[3].value, x.f[3].value_len));
    EXPECT_NE(std::string(text.data, text.len).find(escape(obj)), std::string::npos);
    (x.f[2].has_us ? typed : text_only)++;
    for (int k = 0; k < 3; k++) {
      trb_buf_t o1 = TRB_BUF_INIT, o2 = TRB_BUF_INIT;
      trb_status_t s1{}, s2{};
      grpc_status_code c1 = trb_bq_transcode_row(&t[k], text.data, text.len, nullptr, &o1, &s1);
      grpc_status_code c2 =
          trb_bq_transcode_row_extra(&t[k], x.row, x.row_len, x.f, x.n, nullptr, &o2, &s2);
      ASSERT_EQ(c1, c2) << text.data;
      if (c1 == GRPC_STATUS_OK) {
        EXPECT_EQ(std::string(o1.data, o1.len), std::string(o2.data, o2.len)) << text.data;
        ok++;
      } else {
        // Invalid UTF-8 in the attributes is reported at its byte in the
        // value by the extras path (shape.h); otherwise the same message.
        if (strstr(s1.msg, "invalid UTF-8") == nullptr) {
          EXPECT_STREQ(s1.msg, s2.msg) << text.data;
        }
        bad++;
      }
      trb_buf_deinit(&o1);
      trb_buf_deinit(&o2);
    }
    trb_buf_deinit(&text);
    trb_buf_deinit(&scratch);
  }
  EXPECT_GT(typed, 1000);
  EXPECT_GT(text_only, 1000);
  EXPECT_GT(ok, 1000);
  EXPECT_GT(bad, 1000);
  for (auto &tt : t) trb_bq_table_deinit(&tt);
}

// publish_time is formatted without strftime: same text as strftime for
// times across leap years and centuries up to the end of year 9999 (before
// year 1000 strftime does not pad %Y to 4 digits; the fast path does);
// no attributes give the JSON text "{}".
TEST(Shape, PublishTimeMatchesStrftimeAndEmptyAttributes) {
  const int64_t secs[] = {0,           1,           86399,        86400,
                          951782400,   951868799,   1700000000,   4107542399,
                          -1,          -86401,      -2208988800,  253402300799,
                          1582934400,  1709251199,  13574563200};
  trb_buf_t out = TRB_BUF_INIT;
  std::string d = "{}";
  auto check = [&](int64_t sec, int32_t nanos) {
    trb_shape_meta_t m = {"s", "1", sec, nanos, nullptr, 0};
    ASSERT_EQ(trb_shape_row((const uint8_t *)d.data(), d.size(), false, true,
                            &m, &out, nullptr),
              GRPC_STATUS_OK);
    time_t t = (time_t)sec;
    struct tm tm;
    gmtime_r(&t, &tm);
    char want[64];
    size_t k = strftime(want, sizeof want, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(want + k, sizeof want - k, ".%06dZ", (int)(nanos / 1000));
    EXPECT_EQ(std::string(out.data, out.len),
              std::string("{\"subscription_name\":\"s\",\"message_id\":\"1\","
                          "\"publish_time\":\"") +
                  want + "\",\"attributes\":\"{}\"}")
        << sec;
  };
  for (int64_t s : secs) check(s, 999999999);
  for (int64_t s = -400LL * 366 * 86400; s < 800LL * 366 * 86400;
       s += 86400 * 7 + 3601)
    check(s, 1000);
  trb_buf_deinit(&out);
}

// The header layout, byte by byte (a WAL written before must replay the
// same): version 1, u16 table length + table, u16 stream length + stream,
// u64 offset, u32 n, n × (u16 id length + id), n × u32 row length; all
// little-endian. With or without the ids' lengths given, appended after
// what the buffer holds.
TEST(WalRec, BatchHeaderBytes) {
  auto le = [](uint64_t v, int bytes) {
    std::string o;
    for (int i = 0; i < bytes; i++) o += (char)(uint8_t)(v >> (8 * i));
    return o;
  };
  std::string want = "pre";
  want += '\x01';
  want += le(2, 2) + "tb" + le(3, 2) + "stm";
  want += le(0x0102030405060708ULL, 8) + le(3, 4);
  want += le(1, 2) + "1" + le(2, 2) + "22" + le(300, 2) + std::string(300, 'x');
  want += le(2, 4) + le(0, 4) + le(70000, 4);
  std::string long_id(300, 'x');
  const char *ids[3] = {"1", "22", long_id.c_str()};
  size_t id_lens[3] = {1, 2, 300};
  size_t row_lens[3] = {2, 0, 70000};
  for (int with_lens = 0; with_lens < 2; with_lens++) {
    trb_buf_t b = TRB_BUF_INIT;
    ASSERT_EQ(trb_buf_append(&b, "pre", 3), 0);
    ASSERT_EQ(with_lens ? trb_walrec_batch_header_n("tb", "stm",
                                                    0x0102030405060708LL, 3,
                                                    ids, id_lens, row_lens,
                                                    &b, nullptr)
                        : trb_walrec_batch_header("tb", "stm",
                                                  0x0102030405060708LL, 3, ids,
                                                  row_lens, &b, nullptr),
              GRPC_STATUS_OK);
    EXPECT_EQ(std::string(b.data, b.len), want) << with_lens;
    EXPECT_EQ(b.data[b.len], '\0');
    trb_buf_deinit(&b);
  }
  // Given lengths are used as they are: ids need not be NUL-terminated.
  const char *pre[1] = {"abcdef"};
  size_t pl[1] = {3}, rl[1] = {1};
  trb_buf_t b = TRB_BUF_INIT;
  ASSERT_EQ(trb_walrec_batch_header_n("t", "s", 0, 1, pre, pl, rl, &b,
                                      nullptr),
            GRPC_STATUS_OK);
  trb_walrec_batch_t d;
  std::string rec(b.data, b.len);
  rec += "r";
  ASSERT_EQ(trb_walrec_batch_decode((const uint8_t *)rec.data(), rec.size(),
                                    &d, nullptr),
            GRPC_STATUS_OK);
  const char *id;
  size_t il;
  trb_walrec_batch_id(&d, 0, &id, &il);
  EXPECT_EQ(std::string(id, il), "abc");
  trb_buf_deinit(&b);
  // An id over the limit is refused and nothing is appended.
  std::string too_long(TRB_WALREC_MAX_NAME + 1, 'y');
  const char *bad[1] = {too_long.c_str()};
  size_t bl[1] = {too_long.size()};
  trb_status_t st;
  EXPECT_EQ(trb_walrec_batch_header_n("t", "s", 0, 1, bad, bl, rl, &b, &st),
            GRPC_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(b.len, 0u);
  trb_buf_deinit(&b);
}

TEST(WalRec, BatchRoundTripAndCorruption) {
  const char *ids[3] = {"1", "22", "333"};
  std::string rows = "abcdefghij";
  size_t lens[3] = {2, 0, 8};
  trb_buf_t b = TRB_BUF_INIT;
  ASSERT_EQ(trb_walrec_batch_header("projects/p/datasets/d/tables/t",
                                    "projects/p/datasets/d/tables/t/streams/s",
                                    1234567890123LL, 3, ids, lens, &b, nullptr),
            GRPC_STATUS_OK);
  std::string rec(b.data, b.len);
  rec += rows;
  trb_walrec_batch_t d;
  ASSERT_EQ(trb_walrec_batch_decode((const uint8_t *)rec.data(), rec.size(),
                                    &d, nullptr),
            GRPC_STATUS_OK);
  EXPECT_EQ(std::string(d.table, d.table_len), "projects/p/datasets/d/tables/t");
  EXPECT_EQ(d.offset, 1234567890123LL);
  ASSERT_EQ(d.n, 3u);
  for (uint32_t i = 0; i < 3; i++) {
    const char *id;
    size_t il;
    trb_walrec_batch_id(&d, i, &id, &il);
    EXPECT_EQ(std::string(id, il), ids[i]);
    EXPECT_EQ(trb_walrec_batch_row_len(&d, i), lens[i]);
  }
  EXPECT_EQ(std::string((const char *)d.rows, d.rows_len), rows);
  // Every truncation and a wrong version are DATA_LOSS, never a crash.
  for (size_t cut = 0; cut < rec.size(); cut++)
    EXPECT_EQ(trb_walrec_batch_decode((const uint8_t *)rec.data(), cut, &d,
                                      nullptr),
              GRPC_STATUS_DATA_LOSS)
        << cut;
  rec[0] = 2;
  EXPECT_EQ(trb_walrec_batch_decode((const uint8_t *)rec.data(), rec.size(),
                                    &d, nullptr),
            GRPC_STATUS_DATA_LOSS);
  trb_buf_deinit(&b);

  uint8_t done[9];
  trb_walrec_done(77, done);
  uint64_t lsn = 0;
  EXPECT_EQ(trb_walrec_done_decode(done, 9, &lsn, nullptr), GRPC_STATUS_OK);
  EXPECT_EQ(lsn, 77u);
  EXPECT_EQ(trb_walrec_done_decode(done, 8, &lsn, nullptr),
            GRPC_STATUS_DATA_LOSS);
  trb_buf_t dd = TRB_BUF_INIT;
  ASSERT_EQ(trb_walrec_dead("msg-9", &dd, nullptr), GRPC_STATUS_OK);
  const char *id;
  size_t il;
  ASSERT_EQ(trb_walrec_dead_decode((const uint8_t *)dd.data, dd.len, &id, &il,
                                   nullptr),
            GRPC_STATUS_OK);
  EXPECT_EQ(std::string(id, il), "msg-9");
  EXPECT_EQ(trb_walrec_dead_decode((const uint8_t *)dd.data, dd.len - 1, &id,
                                   &il, nullptr),
            GRPC_STATUS_DATA_LOSS);
  trb_buf_deinit(&dd);
}

void Collect(void *ctx, void *waiter, trb_id_state_t st) {
  auto *v = static_cast<std::vector<std::pair<intptr_t, int>> *>(ctx);
  v->push_back({reinterpret_cast<intptr_t>(waiter), st});
}

TEST(IdSet, ClaimParkMarkForget) {
  trb_idset_t *s = trb_idset_create();
  ASSERT_NE(s, nullptr);
  std::vector<std::pair<intptr_t, int>> got;
  uint64_t tag = 0;
  EXPECT_EQ(trb_idset_claim(s, "a", 1, (void *)1, &tag), TRB_ID_NONE);
  EXPECT_EQ(trb_idset_claim(s, "a", 1, (void *)2, &tag), TRB_ID_PENDING);
  EXPECT_EQ(trb_idset_claim(s, "a", 1, (void *)3, &tag), TRB_ID_PENDING);
  trb_idset_mark(s, "a", 1, TRB_ID_WRITTEN, 9, Collect, &got);
  ASSERT_EQ(got.size(), 2u);  // both parked copies handed back as WRITTEN
  EXPECT_EQ(got[0].second, TRB_ID_WRITTEN);
  EXPECT_EQ(trb_idset_claim(s, "a", 1, (void *)4, &tag), TRB_ID_WRITTEN);
  EXPECT_EQ(tag, 9u);
  EXPECT_FALSE(trb_idset_forget_tagged(s, "a", 1, 8));  // older record
  EXPECT_TRUE(trb_idset_forget_tagged(s, "a", 1, 9));
  EXPECT_EQ(trb_idset_get(s, "a", 1), TRB_ID_NONE);
  // A failed first copy hands its parked copies back as NONE (nack them).
  got.clear();
  EXPECT_EQ(trb_idset_claim(s, "b", 1, nullptr, nullptr), TRB_ID_NONE);
  EXPECT_EQ(trb_idset_claim(s, "b", 1, (void *)5, nullptr), TRB_ID_PENDING);
  trb_idset_forget(s, "b", 1, Collect, &got);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].first, 5);
  EXPECT_EQ(got[0].second, TRB_ID_NONE);
  // Growth across many ids; every one found with its state.
  for (int i = 0; i < 20000; i++) {
    std::string id = "id-" + std::to_string(i);
    trb_idset_mark(s, id.data(), id.size(),
                   i % 2 ? TRB_ID_DEAD : TRB_ID_WRITTEN, (uint64_t)i, nullptr,
                   nullptr);
  }
  EXPECT_EQ(trb_idset_size(s), 20000u);
  for (int i = 0; i < 20000; i += 997) {
    std::string id = "id-" + std::to_string(i);
    EXPECT_EQ(trb_idset_get(s, id.data(), id.size()),
              i % 2 ? TRB_ID_DEAD : TRB_ID_WRITTEN);
  }
  got.clear();
  EXPECT_EQ(trb_idset_claim(s, "c", 1, nullptr, nullptr), TRB_ID_NONE);
  EXPECT_EQ(trb_idset_claim(s, "c", 1, (void *)6, nullptr), TRB_ID_PENDING);
  trb_idset_destroy(s, Collect, &got);  // parked waiters handed back
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].first, 6);
}

// Removals from the open-addressing table (backward shift, no tombstones)
// against a model: random claims, marks, forgets and tagged forgets over a
// small id space (long probe runs, wrap-around), every id checked after
// each round; then everything forgotten leaves the set empty.
TEST(IdSet, RandomOpsMatchModel) {
  trb_idset_t *s = trb_idset_create();
  ASSERT_NE(s, nullptr);
  std::map<std::string, std::pair<int, uint64_t>> model;  // state, tag
  uint64_t x = 88172645463325252ull;
  auto rnd = [&]() {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  for (int round = 0; round < 40; round++) {
    for (int op = 0; op < 2000; op++) {
      std::string id = "id" + std::to_string(rnd() % 3000);
      auto it = model.find(id);
      switch (rnd() % 4) {
        case 0: {  // claim
          uint64_t tag = 0;
          trb_id_state_t want =
              it == model.end() ? TRB_ID_NONE : (trb_id_state_t)it->second.first;
          if (want == TRB_ID_PENDING) break;  // would park a waiter
          ASSERT_EQ(trb_idset_claim(s, id.data(), id.size(), nullptr, &tag), want);
          if (want == TRB_ID_NONE)
            model[id] = {TRB_ID_PENDING, 0};
          else
            EXPECT_EQ(tag, it->second.second);
          break;
        }
        case 1: {  // mark
          uint64_t tag = rnd() % 4;
          trb_id_state_t st = rnd() % 2 ? TRB_ID_WRITTEN : TRB_ID_DEAD;
          trb_idset_mark(s, id.data(), id.size(), st, tag, nullptr, nullptr);
          model[id] = {st, tag};
          break;
        }
        case 2:  // forget
          trb_idset_forget(s, id.data(), id.size(), nullptr, nullptr);
          model.erase(id);
          break;
        default: {  // forget tagged
          uint64_t tag = rnd() % 4;
          bool want = it != model.end() && it->second.second == tag &&
                      it->second.first != TRB_ID_PENDING;
          EXPECT_EQ(trb_idset_forget_tagged(s, id.data(), id.size(), tag), want);
          if (want) model.erase(it);
        }
      }
    }
    ASSERT_EQ(trb_idset_size(s), model.size()) << round;
    for (int i = 0; i < 3000; i++) {
      std::string id = "id" + std::to_string(i);
      auto it = model.find(id);
      ASSERT_EQ(trb_idset_get(s, id.data(), id.size()),
                it == model.end() ? TRB_ID_NONE : (trb_id_state_t)it->second.first)
          << round << " " << id;
    }
  }
  for (auto &kv : model)
    trb_idset_forget(s, kv.first.data(), kv.first.size(), nullptr, nullptr);
  EXPECT_EQ(trb_idset_size(s), 0u);
  trb_idset_destroy(s, nullptr, nullptr);
}

}  // namespace

namespace {

// The example pipeline files load and route as documented.
// Claimed ids marked through their entry: the entry survives the set's
// growth (thousands of other ids inserted meanwhile), parked copies are
// handed back, and the id is then found settled under its tag.
TEST(IdSet, ClaimRefMarkRefAcrossGrowth) {
  trb_idset_t *s = trb_idset_create();
  ASSERT_NE(s, nullptr);
  std::vector<std::pair<intptr_t, int>> got;
  std::vector<trb_idset_ref_t> refs;
  for (int i = 0; i < 100; i++) {
    std::string id = "m" + std::to_string(i);
    trb_idset_ref_t ref = nullptr;
    ASSERT_EQ(trb_idset_claim_ref(s, id.data(), id.size(), nullptr, nullptr, &ref),
              TRB_ID_NONE);
    ASSERT_NE(ref, nullptr);
    refs.push_back(ref);
  }
  trb_idset_ref_t none = (trb_idset_ref_t)1;
  EXPECT_EQ(trb_idset_claim_ref(s, "m7", 2, (void *)7, nullptr, &none), TRB_ID_PENDING);
  EXPECT_EQ(none, nullptr);  // no reference for a copy
  for (int i = 0; i < 30000; i++) {
    std::string id = "other-" + std::to_string(i);
    trb_idset_mark(s, id.data(), id.size(), TRB_ID_WRITTEN, 1, nullptr, nullptr);
  }
  for (int i = 0; i < 100; i++)
    trb_idset_mark_ref(s, refs[i], i % 2 ? TRB_ID_DEAD : TRB_ID_WRITTEN, 1000 + i, Collect,
                       &got);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].first, 7);
  EXPECT_EQ(got[0].second, TRB_ID_DEAD);
  for (int i = 0; i < 100; i++) {
    std::string id = "m" + std::to_string(i);
    uint64_t tag = 0;
    EXPECT_EQ(trb_idset_claim(s, id.data(), id.size(), nullptr, &tag),
              i % 2 ? TRB_ID_DEAD : TRB_ID_WRITTEN);
    EXPECT_EQ(tag, 1000u + i);
    EXPECT_TRUE(trb_idset_forget_tagged(s, id.data(), id.size(), 1000 + i));
  }
  EXPECT_EQ(trb_idset_size(s), 30000u);
  trb_idset_destroy(s, nullptr, nullptr);
}

TEST(Pipeline, ExampleFilesLoad) {
  for (const char *f : {"examples/pipelines/backend-events.json", "examples/pipelines/issues.json",
                        "examples/pipelines/raw-orders.json"}) {
    trb_pipeline_t p{};
    ASSERT_EQ(trb_pipeline_defaults(&p, nullptr), GRPC_STATUS_OK);
    trb_status_t st{};
    EXPECT_EQ(trb_pipeline_load_file(&p, f, &st), GRPC_STATUS_OK) << f << ": " << st.msg;
    EXPECT_EQ(trb_pipeline_finish(&p, &st), GRPC_STATUS_OK) << f << ": " << st.msg;
    EXPECT_GE(p.n_tables, 1u) << f;
    trb_pipeline_free(&p);
  }
  trb_pipeline_t p{};
  ASSERT_EQ(trb_pipeline_defaults(&p, nullptr), GRPC_STATUS_OK);
  trb_status_t st{};
  EXPECT_EQ(trb_pipeline_load_file(&p, "examples/pipelines/nope.json", &st),
            GRPC_STATUS_NOT_FOUND);
  ASSERT_EQ(trb_pipeline_load_file(&p, "examples/pipelines/backend-events.json", &st),
            GRPC_STATUS_OK);
  ASSERT_EQ(trb_pipeline_finish(&p, &st), GRPC_STATUS_OK);
  std::string inv = R"({"event_type": "inventory"})";
  const char *none[1] = {nullptr};
  ASSERT_GE(trb_pipeline_route(&p, inv.data(), inv.size(), none, none, 0), 0);
  EXPECT_STREQ(p.tables[trb_pipeline_route(&p, inv.data(), inv.size(), none, none, 0)].name,
               "backend_events.inventory_events");
  trb_pipeline_free(&p);
}

}  // namespace
