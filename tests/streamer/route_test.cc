// trb_json_field_first's fast path (the wanted key is the first member)
// against its general member scan, and trb_pipeline_route_first (precomputed key and rule lengths, raw-byte
// compare of values without escapes) against the general trb_pipeline_route
// on random rule sets and random documents whose route value is written
// with random escapes: whenever the fast route answers it must be the full
// route's answer, and it must answer whenever a rule matches.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

extern "C" {
#include "src/streamer/jsonfield.h"
#include "src/streamer/pipeline.h"
}

namespace {

// Decoded characters the values are made of (UTF-8 text).
const std::vector<std::string> kChars = {"o", "r", "d", "7", "\"", "\\",
                                         "\n", "/", "\xc3\xa9", "x"};

std::string RandText(std::mt19937 &rng, size_t max_len) {
  std::string s;
  size_t n = rng() % (max_len + 1);
  for (size_t i = 0; i < n; i++) s += kChars[rng() % kChars.size()];
  return s;
}

// `text` as the body of a JSON string; with `random_escapes`, characters
// that need no escape are sometimes escaped anyway (\u00XX, \/).
std::string Escape(const std::string &text, std::mt19937 *rng) {
  std::string o;
  for (size_t i = 0; i < text.size(); i++) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    bool esc = rng && (*rng)() % 3 == 0;
    if (c == 0xc3 && i + 1 < text.size()) {  // é
      if (esc) o += "\\u00e9";
      else o += text.substr(i, 2);
      i++;
    } else if (c == '"') {
      o += esc ? "\\u0022" : "\\\"";
    } else if (c == '\\') {
      o += esc ? "\\u005C" : "\\\\";
    } else if (c == '\n') {
      o += esc ? "\\u000a" : "\\n";
    } else if (c == '/' && esc) {
      o += "\\/";
    } else if (esc) {
      char b[8];
      snprintf(b, sizeof b, "\\u%04x", c);
      o += b;
    } else {
      o += static_cast<char>(c);
    }
  }
  return o;
}

struct Pipe {
  trb_pipeline_t p{};
  Pipe() { EXPECT_EQ(trb_pipeline_defaults(&p, nullptr), GRPC_STATUS_OK); }
  ~Pipe() { trb_pipeline_free(&p); }
};

TEST(RouteFirst, AgreesWithTheFullRouteOnRandomValues) {
  std::mt19937 rng(777);
  const char *none[1] = {nullptr};
  for (int round = 0; round < 300; round++) {
    // Rules: string values, some numbers and booleans, maybe a default.
    std::vector<std::string> texts;
    std::string routes;
    int n_rules = 1 + static_cast<int>(rng() % 5);
    for (int i = 0; i < n_rules; i++) {
      std::string eq;
      int kind = static_cast<int>(rng() % 5);
      if (kind == 0) {
        eq = std::to_string(rng() % 10);
        texts.push_back(eq);
      } else if (kind == 1) {
        eq = rng() % 2 ? "true" : "false";
        texts.push_back(eq);
      } else {
        std::string t = RandText(rng, 3);
        texts.push_back(t);
        eq = "\"" + Escape(t, nullptr) + "\"";
      }
      if (!routes.empty()) routes += ",";
      routes += "{\"equals\": " + eq + ", \"table\": \"d.t" +
                std::to_string(i) + "\"}";
    }
    bool with_default = rng() % 2;
    std::string file =
        "{\"project\":\"p\",\"subscription\":\"s\",\"dead_letter_topic\":\"d\","
        "\"routes\": [" + routes + "]" +
        (with_default ? ",\"default_table\": \"d.def\"" : "") + "}";
    Pipe fin, raw;  // finished (precomputed), and not finished
    trb_status_t st{};
    ASSERT_EQ(trb_pipeline_apply_json(&fin.p, "p.json", file.data(),
                                      file.size(), &st),
              GRPC_STATUS_OK)
        << st.msg << "\n" << file;
    ASSERT_EQ(trb_pipeline_finish(&fin.p, &st), GRPC_STATUS_OK) << st.msg;
    ASSERT_TRUE(fin.p.first_ready);
    ASSERT_EQ(trb_pipeline_apply_json(&raw.p, "p.json", file.data(),
                                      file.size(), &st),
              GRPC_STATUS_OK);
    ASSERT_FALSE(raw.p.first_ready);
    for (int d = 0; d < 200; d++) {
      // The value: mostly one of the rules' texts (so matches happen),
      // written with random escapes; sometimes random text, a number or
      // a literal.
      std::string val;
      int vk = static_cast<int>(rng() % 8);
      if (vk < 5) {
        const std::string &t = texts[rng() % texts.size()];
        bool as_number = !t.empty() && (t[0] >= '0' && t[0] <= '9');
        bool as_literal = t == "true" || t == "false";
        if ((as_number || as_literal) && rng() % 2)
          val = t;
        else
          val = "\"" + Escape(t, &rng) + "\"";
      } else if (vk == 5) {
        val = "\"" + Escape(RandText(rng, 3), &rng) + "\"";
      } else if (vk == 6) {
        val = std::to_string(rng() % 10);
      } else {
        val = rng() % 2 ? "null" : "{\"event_type\":\"o\"}";
      }
      std::string doc = "{\"a\":[1,{\"b\":\"\\\"\"}],\"event_type\":" + val +
                        ",\"z\":\"" + Escape(RandText(rng, 4), &rng) + "\"}";
      int64_t full = trb_pipeline_route(&fin.p, doc.data(), doc.size(), none,
                                        none, 0);
      const char *key = nullptr, *rv = nullptr;
      size_t rl = 0;
      int64_t first = trb_pipeline_route_first(&fin.p, doc.data(), doc.size(),
                                               &key, &rv, &rl);
      const char *key2 = nullptr, *rv2 = nullptr;
      size_t rl2 = 0;
      int64_t first2 = trb_pipeline_route_first(&raw.p, doc.data(), doc.size(),
                                                &key2, &rv2, &rl2);
      ASSERT_EQ(first, first2) << doc;
      // A rule matched (not the default): the fast route finds it.
      bool rule_matched =
          full >= 0 && !(with_default && full == fin.p.default_table);
      if (rule_matched) {
        ASSERT_EQ(first, full) << doc << "\n" << file;
        ASSERT_STREQ(key, "event_type");
        ASSERT_EQ(std::string(rv, rl), val);
      } else {
        ASSERT_EQ(first, TRB_PIPELINE_ROUTE_FULL) << doc << "\n" << file;
      }
    }
  }
}

// Random objects (keys that match, almost match or are spelled with
// escapes; values of every kind, some malformed): the same document with
// a member "~" put first (so the wanted key is never first: the general
// scan) gives the same kind, value and raw text.
TEST(JsonFieldFirst, FastPathAgreesWithTheGeneralScan) {
  std::mt19937 rng(4242);
  // Keys with a bare quote or a control byte cannot be read as one JSON
  // string: the fast path must not take them.
  const std::vector<std::string> keys = {"event_type", "a", "ev\\\"x",
                                         "a\"b", "x\ny"};
  const std::vector<std::string> member_keys = {
      "event_type", "event_typ", "event_type2", "a", "event\\u005ftype",
      "ev\\\"x", "a\"b", "x\ny", ""};
  const std::vector<std::string> values = {
      "\"order\"", "\"or\\\"der\"", "7", "-1.5e3", "true", "false", "null",
      "{\"event_type\":1}", "[1,\"x\",[]]", "\"\\u00e9\"", "tru", "\"open",
      "{\"a\":", "01", "\"a\\\\b\"", "\"tab\there\"", "\"\\u0022\"", ""};
  const std::vector<std::string> spaces = {"", " ", "\n\t ", "  "};
  auto sp = [&] { return spaces[rng() % spaces.size()]; };
  for (int i = 0; i < 20000; i++) {
    int n = static_cast<int>(rng() % 4);
    std::string members;
    for (int m = 0; m < n; m++) {
      if (m) members += sp() + "," + sp();
      members += "\"" + member_keys[rng() % member_keys.size()] + "\"" + sp() +
                 (rng() % 20 ? ":" : "") + sp() + values[rng() % values.size()];
    }
    std::string head = sp() + "{" + sp();
    std::string tail = sp() + (rng() % 10 ? "}" : "") + sp();
    std::string doc = head + members + tail;
    std::string slow =
        head + "\"~\":0" + (members.empty() ? "" : "," + sp()) + members + tail;
    const std::string &key = keys[rng() % keys.size()];
    const char *v1 = nullptr, *r1 = nullptr, *v2 = nullptr, *r2 = nullptr;
    size_t vl1 = 0, rl1 = 0, vl2 = 0, rl2 = 0;
    trb_json_kind_t k1 = trb_json_field_first(doc.data(), doc.size(),
                                              key.data(), key.size(), &v1,
                                              &vl1, &r1, &rl1);
    trb_json_kind_t k2 = trb_json_field_first(slow.data(), slow.size(),
                                              key.data(), key.size(), &v2,
                                              &vl2, &r2, &rl2);
    ASSERT_EQ(k1, k2) << doc << " | " << key;
    bool plain = trb_json_key_plain(key.data(), key.size());
    ASSERT_EQ(plain, key.find_first_of("\"\\\n") == std::string::npos) << key;
    const char *v3 = nullptr, *r3 = nullptr;
    size_t vl3 = 0, rl3 = 0;
    if (plain) {
      // The variant for keys checked once: the same answers.
      trb_json_kind_t k3 = trb_json_field_first_plain(
          doc.data(), doc.size(), key.data(), key.size(), &v3, &vl3, &r3, &rl3);
      ASSERT_EQ(k3, k1) << doc << " | " << key;
      if (k3 != TRB_JSON_MISSING && k3 != TRB_JSON_MALFORMED) {
        ASSERT_EQ(std::string(v3, vl3), std::string(v1, vl1)) << doc;
        ASSERT_EQ(std::string(r3, rl3), std::string(r1, rl1)) << doc;
      }
    }
    if (k1 == TRB_JSON_MISSING || k1 == TRB_JSON_MALFORMED) continue;
    ASSERT_EQ(std::string(v1, vl1), std::string(v2, vl2)) << doc;
    ASSERT_EQ(std::string(r1, rl1), std::string(r2, rl2)) << doc;
  }
}

}  // namespace
