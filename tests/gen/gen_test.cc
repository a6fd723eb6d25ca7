// gen_test — the event generator: every valid event is routed by the
// example pipeline to its table and transcodes against the example table;
// every malformed one fails exactly the stage it is tagged with; the same
// seed gives the same bytes; the mix has the promised variety.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "src/bigquery/schema.h"
#include "src/bigquery/transcode.h"
#include "src/common/arena.h"
#include "src/gen/gen.h"
#include "src/ingest/envelope.h"
#include "src/streamer/pipeline.h"

namespace {

std::string ReadFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Table {
  trb_bq_table_t def{};
  bool loaded = false;
  ~Table() {
    if (loaded) trb_bq_table_deinit(&def);
  }
};

struct Pipelines {
  trb_pipeline_t p[3]{};
  const char *topics[3] = {"backend-events", "issues", "raw-orders"};
  Pipelines() {
    const char *files[3] = {"examples/pipelines/backend-events.json",
                            "examples/pipelines/issues.json",
                            "examples/pipelines/raw-orders.json"};
    for (int i = 0; i < 3; i++) {
      trb_status_t st{};
      EXPECT_EQ(trb_pipeline_defaults(&p[i], nullptr), GRPC_STATUS_OK);
      EXPECT_EQ(trb_pipeline_load_file(&p[i], files[i], &st), GRPC_STATUS_OK) << st.msg;
      EXPECT_EQ(trb_pipeline_finish(&p[i], &st), GRPC_STATUS_OK) << st.msg;
    }
  }
  ~Pipelines() {
    for (auto &x : p) trb_pipeline_free(&x);
  }
  const trb_pipeline_t *For(const char *topic) {
    for (int i = 0; i < 3; i++)
      if (std::string(topic) == topics[i]) return &p[i];
    return nullptr;
  }
};

class GenTest : public ::testing::Test {
 protected:
  std::map<std::string, Table> tables;
  Pipelines pipes;

  const trb_bq_table_t *TableDef(const std::string &name) {
    Table &t = tables[name];
    if (!t.loaded) {
      std::string json = ReadFile("examples/tables/" + name + ".json");
      trb_status_t st{};
      EXPECT_EQ(trb_bq_table_parse(json.data(), json.size(), &t.def, &st), GRPC_STATUS_OK)
          << name << ": " << st.msg;
      t.loaded = true;
    }
    return &t.def;
  }

  static std::vector<std::pair<std::string, trb_gen_event_t>> Generate(uint64_t seed, double bad,
                                                                      int n) {
    trb_gen_config_t cfg{};
    cfg.seed = seed;
    cfg.malformed_fraction = bad;
    trb_gen_t g;
    trb_gen_init(&g, &cfg);
    std::vector<std::pair<std::string, trb_gen_event_t>> out;
    trb_buf_t b = TRB_BUF_INIT;
    for (int i = 0; i < n; i++) {
      trb_buf_reset(&b);
      trb_gen_event_t ev;
      EXPECT_EQ(trb_gen_next(&g, &b, &ev), 0);
      out.emplace_back(std::string(b.data, b.len), ev);
    }
    trb_buf_deinit(&b);
    return out;
  }

  // What the streamer would do: the table index, or -1 (route stage).
  int64_t Route(const trb_pipeline_t *p, const std::string &json) {
    const char *none[1] = {nullptr};
    return trb_pipeline_route(p, json.data(), json.size(), none, none, 0);
  }

  // The message data the streamer gets: for issues, ingest's envelope.
  static std::string Published(const std::string &json, const trb_gen_event_t &ev) {
    if (ev.kind != TRB_GEN_ISSUE) return json;
    trb_buf_t b = TRB_BUF_INIT;
    EXPECT_EQ(trb_ingest_envelope_append(&b, "0b9c1d2e-3f40-4a5b-8c6d-7e8f9a0b1c2d",
                                         TRB_INGEST_SOURCE_MANUAL, "2025-01-15T10:30:00.000Z",
                                         json.data(), json.size()),
              0);
    std::string s(b.data, b.len);
    trb_buf_deinit(&b);
    return s;
  }

  grpc_status_code Transcode(const trb_pipeline_t *p, int64_t ti, const std::string &data,
                             std::string *err) {
    const trb_table_opts_t &o = p->tables[ti];
    trb_bq_transcode_opts_t opts{};
    opts.ignore_unknown_fields = o.ignore_unknown_fields;
    trb_buf_t out = TRB_BUF_INIT;
    trb_status_t st{};
    grpc_status_code c =
        trb_bq_transcode_row(TableDef(o.name), data.data(), data.size(), &opts, &out, &st);
    trb_buf_deinit(&out);
    *err = st.msg;
    return c;
  }
};

TEST_F(GenTest, EveryEventMeetsTheStageItIsTaggedWith) {
  auto evs = Generate(42, 0.2, 20000);
  std::map<int, int> defects, kinds;
  for (auto &[json, ev] : evs) {
    SCOPED_TRACE(json);
    defects[ev.defect]++;
    kinds[ev.kind]++;
    ASSERT_EQ(json.find('\n'), std::string::npos);
    const trb_pipeline_t *p = pipes.For(ev.topic);
    ASSERT_NE(p, nullptr) << ev.topic;
    trb_status_t st{};
    if (ev.defect == TRB_GEN_BROKEN_JSON) {
      EXPECT_STREQ(ev.stage, "parse");
      EXPECT_NE(trb_bq_json_check(json.data(), json.size(), &st), GRPC_STATUS_OK);
      continue;
    }
    std::string data = Published(json, ev);
    ASSERT_EQ(trb_bq_json_check(data.data(), data.size(), &st), GRPC_STATUS_OK) << st.msg;
    int64_t ti = Route(p, data);
    if (ev.defect == TRB_GEN_UNKNOWN_TYPE) {
      EXPECT_STREQ(ev.stage, "route");
      EXPECT_EQ(ti, -1);
      continue;
    }
    ASSERT_GE(ti, 0);
    EXPECT_STREQ(p->tables[ti].name, ev.table);
    std::string err;
    grpc_status_code c = Transcode(p, ti, data, &err);
    if (ev.defect == TRB_GEN_VALID) {
      EXPECT_EQ(ev.stage, nullptr);
      EXPECT_EQ(c, GRPC_STATUS_OK) << err;
    } else {
      EXPECT_STREQ(ev.stage, "transcode");
      EXPECT_EQ(c, GRPC_STATUS_INVALID_ARGUMENT) << trb_gen_defect_name(ev.defect);
    }
  }
  for (int d = 0; d < TRB_GEN_DEFECTS; d++) EXPECT_GT(defects[d], 100) << d;
  for (int k = 0; k < TRB_GEN_KINDS; k++) EXPECT_GT(kinds[k], 500) << k;
  // 20% of the backend-events kinds (85% of the mix) are malformed.
  int bad = 20000 - defects[TRB_GEN_VALID];
  EXPECT_NEAR(bad / 20000.0, 0.2 * 0.85, 0.02);
}

TEST_F(GenTest, NoMalformedEventsWhenTheFractionIsZero) {
  for (auto &[json, ev] : Generate(7, 0.0, 5000)) {
    EXPECT_EQ(ev.defect, TRB_GEN_VALID) << json;
    EXPECT_EQ(ev.stage, nullptr);
  }
}

TEST_F(GenTest, SameSeedSameBytesOtherSeedOtherBytes) {
  auto a = Generate(123, 0.1, 2000), b = Generate(123, 0.1, 2000), c = Generate(124, 0.1, 2000);
  size_t same_c = 0;
  for (size_t i = 0; i < a.size(); i++) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_EQ(a[i].second.defect, b[i].second.defect);
    same_c += a[i].first == c[i].first;
  }
  EXPECT_LT(same_c, 10u);
}

TEST_F(GenTest, ValuesVaryLikeTheCorpus) {
  std::set<std::string> seen;
  const char *want[] = {
      "\"status\": \"pending\"", "\"status\": \"processing\"", "\"status\": \"shipped\"",
      "\"status\": \"delivered\"", "\"reason\": \"restock\"", "\"reason\": \"sale\"",
      "\"reason\": \"return\"", "\"reason\": \"damage\"", "\"activity_type\": \"login\"",
      "\"activity_type\": \"logout\"", "\"activity_type\": \"view_product\"",
      "\"activity_type\": \"add_to_cart\"", "\"activity_type\": \"remove_from_cart\"",
      "\"platform\": \"tablet\"", "\"shipping_address\": {", "\"items\": [{"};
  std::map<std::string, int> found;
  int date_only = 0, offset = 0, micros = 0, uuids = 0;
  for (auto &[json, ev] : Generate(9, 0.0, 5000)) {
    for (const char *w : want)
      if (json.find(w) != std::string::npos) found[w]++;
    if (json.find("\"order_date\": \"2025-01-1") != std::string::npos &&
        json.find("\"order_date\": \"2025-01-1", 0) != std::string::npos) {
      size_t p = json.find("\"order_date\": \"") + 15;
      if (json[p + 10] == '"') date_only++;
    }
    if (json.find("+02:00\"") != std::string::npos || json.find("-05:00\"") != std::string::npos)
      offset++;
    if (json.find(".") != std::string::npos && json.find("Z\"") != std::string::npos) micros++;
    if (json.find("-4") != std::string::npos && json.find("\"order_id\": \"") != std::string::npos &&
        json[json.find("\"order_id\": \"") + 13 + 8] == '-')
      uuids++;
  }
  for (const char *w : want) EXPECT_GT(found[w], 0) << w;
  EXPECT_GT(date_only, 10);
  EXPECT_GT(offset, 100);
  EXPECT_GT(micros, 100);
  EXPECT_GT(uuids, 10);
}

TEST(GenTime, FormatsEveryStyle) {
  int64_t us = 1736937000123456LL;  // 2025-01-15T10:30:00.123456Z
  char t[40];
  const char *want[] = {"2025-01-15T10:30:00Z",      "2025-01-15T10:30:00.123Z",
                        "2025-01-15T10:30:00.123456Z", "2025-01-15T12:30:00+02:00",
                        "2025-01-15T05:30:00-05:00", "2025-01-15"};
  for (int s = 0; s < 6; s++) {
    trb_gen_format_time(us, s, t);
    EXPECT_STREQ(t, want[s]) << s;
  }
}

}  // namespace
