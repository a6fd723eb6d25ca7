// End to end against the emulator: the shared backend_events corpus plus
// malformed messages through `tributary stream`'s pipeline — every message
// id ends exactly once in a table or on the dead-letter topic, with the
// reason.
#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "tests/streamer/stream_fixture.h"

namespace {

using st_test::DeadLetter;
using st_test::Pipeline;
using st_test::StreamEnv;

const char* kTables[] = {"backend_events.order_events", "backend_events.inventory_events",
                         "backend_events.user_activity_events"};

struct Outcome {
  std::map<std::string, std::string> table_of;  // message id -> table
  std::map<std::string, DeadLetter> dead;        // message id -> dead letter
  int duplicates = 0;
};

Outcome Collect(StreamEnv& env) {
  Outcome o;
  for (const char* t : kTables)
    for (const auto& id : env.Column(t, "message_id"))
      if (!o.table_of.emplace(id, t).second) o.duplicates++;
  for (auto& d : env.PullDeadLetters()) {
    std::string id = d.attrs["tributary_source_message_id"];
    if (o.table_of.count(id) || !o.dead.emplace(id, d).second) o.duplicates++;
  }
  return o;
}

class StreamerTest : public ::testing::Test {
 protected:
  StreamEnv env;
  void SetUp() override { env.Start(); }
};

TEST_F(StreamerTest, CorpusAndMalformedMessagesEndExactlyOnceWithReasons) {
  std::vector<std::string> lines = st_test::CorpusLines();
  ASSERT_GE(lines.size(), 30u) << "corpus not found under " << st_test::SharedDir()
                               << " (set TRIBUTARY_SHARED)";
  // Cases every pipeline must dead-letter, with the stage it must name.
  std::vector<std::pair<std::string, std::string>> bad = {
      {"{\"event_type\": \"order\", ", "parse"},
      {"\xff\xfe not json", "parse"},
      {"{\"event_type\": \"refund\", \"order_id\": \"r-1\"}", "route"},
      {"{\"order_id\": \"no-type\"}", "route"},
      {"{\"event_type\": \"order\", \"order_id\": \"o-1\", \"order_date\": \"yesterday\"}",
       "transcode"},
      {"{\"event_type\": \"inventory\", \"inventory_id\": \"i-1\", \"quantity_change\": \"many\"}",
       "transcode"},
      // Routable, malformed after the route field: still stage "parse"
      // (trailing data; an unknown key then bad JSON; an unclosed value).
      {"{\"event_type\": \"order\", \"order_id\": \"o-2\"}}", "parse"},
      {"{\"event_type\": \"order\", \"order_id\": \"o-3\", \"nope\": 1, \"x\": tru}", "parse"},
      {"{\"event_type\": \"user_activity\", \"user_id\": \"u-1\", \"x\": [1,}", "parse"},
  };
  size_t n_corpus = lines.size();
  for (auto& b : bad) lines.push_back(b.first);
  std::vector<std::string> ids = env.Publish(lines);

  Pipeline pl;
  trb_status_t st{};
  ASSERT_EQ(GRPC_STATUS_OK, pl.Load(env.PipelineJson(), &st)) << st.msg;
  trb_streamer_opts_t o = {env.ps_ch, env.bq_ch, 0};
  trb_streamer_t* s = nullptr;
  ASSERT_EQ(GRPC_STATUS_OK, trb_streamer_start(&pl.p, &o, &s, &st)) << st.msg;
  EXPECT_TRUE(st_test::WaitStats(s, [&](const trb_streamer_stats_t& x) {
    return x.rows_written + x.dead_letters >= lines.size() && x.acks_ok >= lines.size();
  })) << "rows+dead letters never reached " << lines.size();
  ASSERT_EQ(GRPC_STATUS_OK, trb_streamer_stop(s, 10000, &st)) << st.msg;
  trb_streamer_stats_t x;
  trb_streamer_stats(s, &x);
  trb_streamer_destroy(s);
  EXPECT_EQ(x.rows_written + x.dead_letters, lines.size());
  EXPECT_EQ(x.in_flight, 0u);

  Outcome out = Collect(env);
  EXPECT_EQ(out.duplicates, 0);
  EXPECT_EQ(out.table_of.size() + out.dead.size(), lines.size());
  EXPECT_EQ(out.table_of.size(), x.rows_written);
  for (size_t i = 0; i < lines.size(); i++) {
    bool in_table = out.table_of.count(ids[i]) > 0;
    bool dead = out.dead.count(ids[i]) > 0;
    EXPECT_TRUE(in_table != dead) << "message " << i << " (" << lines[i] << ") in table "
                                  << in_table << ", dead " << dead;
    if (dead) {
      DeadLetter& d = out.dead[ids[i]];
      EXPECT_EQ(d.data, lines[i]) << "dead letters carry the original data";
      EXPECT_EQ(d.attrs.at("origin"), "test") << "and the original attributes";
      EXPECT_FALSE(d.attrs["tributary_error_reason"].empty());
      EXPECT_EQ(d.attrs["tributary_source_subscription"],
                "projects/" + env.project + "/subscriptions/backend-events-tributary");
      EXPECT_FALSE(d.attrs["tributary_delivery_attempt"].empty());
    }
    if (in_table) {
      // Routed by event_type to the table of that name.
      std::string want = lines[i].find("\"inventory\"") != std::string::npos ? "inventory"
                         : lines[i].find("\"user_activity\"") != std::string::npos
                             ? "user_activity"
                             : "order";
      EXPECT_NE(out.table_of[ids[i]].find(want), std::string::npos) << lines[i];
    }
  }
  for (size_t k = 0; k < bad.size(); k++) {
    const std::string& id = ids[n_corpus + k];
    ASSERT_TRUE(out.dead.count(id)) << bad[k].first;
    EXPECT_EQ(out.dead[id].attrs["tributary_error_stage"], bad[k].second) << bad[k].first;
  }
  EXPECT_EQ(out.dead[ids[n_corpus + 4]].attrs["tributary_json_path"], "$.order_date");
  EXPECT_EQ(out.dead[ids[n_corpus + 4]].attrs["tributary_table"], "backend_events.order_events");
  EXPECT_EQ(out.dead[ids[n_corpus + 5]].attrs["tributary_json_path"], "$.quantity_change");
  // A seed order with nested items and address, written with exact values.
  auto orders = env.Column("backend_events.order_events", "order_id");
  EXPECT_NE(std::find(orders.begin(), orders.end(), "test-order-003"), orders.end());
  auto totals = env.Column("backend_events.order_events", "total_amount");
  EXPECT_NE(std::find(totals.begin(), totals.end(), "40"), totals.end());
  auto items = env.Column("backend_events.order_events", "items");
  bool found = false;
  for (auto& it : items) found |= it.find("AnotherWidget") != std::string::npos;
  EXPECT_TRUE(found) << "nested items written";
  // The corpus has events of every type that are valid for their table.
  for (const char* t : kTables) EXPECT_GT(env.Column(t, "message_id").size(), 0u) << t;
}

}  // namespace

namespace {

// A new NULLABLE column added while streaming is written without a
// restart: rows that carry it are parked, the table schema is fetched
// again, and they are written with it — none is dead-lettered.
TEST_F(StreamerTest, NewNullableColumnIsPickedUpWithoutRestart) {
  Pipeline pl;
  trb_status_t st{};
  ASSERT_EQ(GRPC_STATUS_OK, pl.Load(env.PipelineJson(), &st)) << st.msg;
  trb_streamer_opts_t o = {env.ps_ch, env.bq_ch, 0};
  trb_streamer_t* s = nullptr;
  ASSERT_EQ(GRPC_STATUS_OK, trb_streamer_start(&pl.p, &o, &s, &st)) << st.msg;
  auto order = [](int i, bool coupon) {
    return std::string(R"({"event_type":"order","order_id":"o-)") + std::to_string(i) +
           R"(","order_date":"2025-02-24T12:30:00Z")" +
           (coupon ? R"(,"coupon":"SAVE10")" : "") + "}";
  };
  std::vector<std::string> before, after;
  for (int i = 0; i < 50; i++) before.push_back(order(i, false));
  for (int i = 50; i < 100; i++) after.push_back(order(i, true));
  env.Publish(before);
  ASSERT_TRUE(st_test::WaitStats(s, [](const trb_streamer_stats_t& x) {
    return x.rows_written >= 50;
  }));
  trb_bq_table_t def;
  ASSERT_TRUE(env.TableDef("backend_events", "order_events",
                           R"({"name": "coupon", "type": "STRING"})", &def));
  ASSERT_EQ(GRPC_STATUS_OK, trb_bqemu_update_table_schema(trb_emulator_bigquery(env.emu),
                                                          "backend_events", "order_events",
                                                          &def, &st))
      << st.msg;
  trb_bq_table_deinit(&def);
  env.Publish(after);
  EXPECT_TRUE(st_test::WaitStats(s, [](const trb_streamer_stats_t& x) {
    return x.rows_written + x.dead_letters >= 100;
  }));
  trb_streamer_stats_t x;
  trb_streamer_stats(s, &x);
  EXPECT_EQ(x.dead_letters, 0u);
  EXPECT_EQ(x.rows_written, 100u);
  ASSERT_EQ(GRPC_STATUS_OK, trb_streamer_stop(s, 10000, &st)) << st.msg;
  trb_streamer_destroy(s);
  auto coupons = env.Column("backend_events.order_events", "coupon");
  EXPECT_EQ(std::count(coupons.begin(), coupons.end(), "SAVE10"), 50);
  EXPECT_EQ(std::count(coupons.begin(), coupons.end(), "null"), 50);
}

}  // namespace

namespace {

std::vector<std::string> Orders(int from, int n) {
  std::vector<std::string> v;
  for (int i = from; i < from + n; i++)
    v.push_back(R"({"event_type":"order","order_id":"o-)" + std::to_string(i) +
                R"(","order_date":"2025-02-24T12:30:00Z","items":[{"product_id":"p","quantity":1,"price":"1.10"}]})");
  return v;
}

// Runs `lines` through a streamer with `extra` pipeline settings; returns
// the outcome once rows + dead letters account for every message.
Outcome RunPipeline(StreamEnv& env, const std::vector<std::string>& lines, const std::string& extra,
                    trb_streamer_stats_t* stats) {
  std::vector<std::string> ids = env.Publish(lines);
  Pipeline pl;
  trb_status_t st{};
  EXPECT_EQ(GRPC_STATUS_OK, pl.Load(env.PipelineJson(extra), &st)) << st.msg;
  trb_streamer_opts_t o = {env.ps_ch, env.bq_ch, 0};
  trb_streamer_t* s = nullptr;
  EXPECT_EQ(GRPC_STATUS_OK, trb_streamer_start(&pl.p, &o, &s, &st)) << st.msg;
  if (!s) return Outcome{};
  EXPECT_TRUE(st_test::WaitStats(
      s,
      [&](const trb_streamer_stats_t& x) {
        return x.rows_written + x.dead_letters >= lines.size();
      },
      60000));
  EXPECT_EQ(GRPC_STATUS_OK, trb_streamer_stop(s, 10000, &st)) << st.msg;
  trb_streamer_stats(s, stats);
  trb_streamer_destroy(s);
  Outcome out = Collect(env);
  for (auto& id : ids)
    EXPECT_TRUE(out.table_of.count(id) + out.dead.count(id) == 1) << id;
  return out;
}

TEST_F(StreamerTest, AtLeastOnceWritesEveryMessageToTheDefaultStream) {
  std::vector<std::string> lines = Orders(0, 300);
  lines.push_back("{broken");
  trb_streamer_stats_t x;
  Outcome out = RunPipeline(env, lines, R"(, "delivery": "at_least_once")", &x);
  EXPECT_EQ(out.duplicates, 0);
  EXPECT_EQ(out.table_of.size(), 300u);
  EXPECT_EQ(out.dead.size(), 1u);
  // No write-ahead log in this mode.
  EXPECT_NE(access(env.wal_dir.c_str(), F_OK), 0);
}

// A WAL budget far smaller than the data streamed: segments roll and are
// compacted as batches are acked, so streaming never stalls on it.
TEST_F(StreamerTest, WriteAheadLogStaysWithinItsBudget) {
  std::vector<std::string> lines = Orders(0, 6000);  // ~2 MB of logged rows
  trb_streamer_stats_t x;
  Outcome out = RunPipeline(env, lines, R"(, "wal_max_bytes": "256KiB", "batch_max_rows": 50)", &x);
  EXPECT_EQ(out.duplicates, 0);
  EXPECT_EQ(out.table_of.size(), 6000u);
  uint64_t bytes = 0;
  std::string cmd = "du -sb " + env.wal_dir + " > " + env.dir + "/du.txt";
  ASSERT_EQ(0, system(cmd.c_str()));
  bytes = std::stoull(st_test::ReadFile(env.dir + "/du.txt"));
  EXPECT_LE(bytes, 300u * 1024) << "WAL directory after the run";
}

}  // namespace

namespace {

// A table whose only message in a batch window fails to transcode (it is
// dead-lettered, leaving an opened batch with no row) keeps writing: the
// empty batch is dropped when sealed, not appended (an empty append is
// refused and retried forever, stalling the table — fixed in f11c5e3).
TEST_F(StreamerTest, TableKeepsWritingAfterABatchWhoseOnlyRowWasDeadLettered) {
  Pipeline pl;
  trb_status_t st{};
  ASSERT_EQ(GRPC_STATUS_OK, pl.Load(env.PipelineJson(), &st)) << st.msg;
  trb_streamer_opts_t o = {env.ps_ch, env.bq_ch, 0};
  trb_streamer_t* s = nullptr;
  ASSERT_EQ(GRPC_STATUS_OK, trb_streamer_start(&pl.p, &o, &s, &st)) << st.msg;
  std::vector<std::string> ids = env.Publish(
      {R"({"event_type":"order","order_id":"bad","order_date":"yesterday"})"});
  // The dead letter's ack confirmed: by then the batch window (5 ms) of
  // the batch opened for it has passed several times.
  ASSERT_TRUE(st_test::WaitStats(s, [](const trb_streamer_stats_t& x) {
    return x.dead_letters >= 1 && x.acks_ok >= 1;
  }));
  std::vector<std::string> good = Orders(0, 20);
  env.Publish(good);
  EXPECT_TRUE(st_test::WaitStats(
      s, [](const trb_streamer_stats_t& x) { return x.rows_written >= 20; }, 20000))
      << "the order table stalled after the empty batch";
  trb_streamer_stats_t x;
  ASSERT_EQ(GRPC_STATUS_OK, trb_streamer_stop(s, 10000, &st)) << st.msg;
  trb_streamer_stats(s, &x);
  trb_streamer_destroy(s);
  EXPECT_EQ(x.rows_written, 20u);
  EXPECT_EQ(x.dead_letters, 1u);
  Outcome out = Collect(env);
  EXPECT_EQ(out.duplicates, 0);
  ASSERT_EQ(out.dead.count(ids[0]), 1u);
  EXPECT_EQ(out.dead[ids[0]].attrs["tributary_error_stage"], "transcode");
  EXPECT_EQ(env.Column("backend_events.order_events", "message_id").size(), 20u);
}

}  // namespace

namespace {

// Route on a top-level field with duplicate keys: the streamer routes on
// the first occurrence and has the transcoder check the last one; the
// outcome (table, or dead-letter stage, reason and table) must be the full
// scan's, where the LAST occurrence wins.
struct StreamRun {
  std::vector<std::string> ids;
  Outcome out;
};

StreamRun StreamLines(StreamEnv& env, const std::string& pipeline_json,
                const std::vector<std::string>& lines) {
  StreamRun r;
  Pipeline pl;
  trb_status_t st{};
  EXPECT_EQ(GRPC_STATUS_OK, pl.Load(pipeline_json, &st)) << st.msg;
  trb_streamer_opts_t o = {env.ps_ch, env.bq_ch, 0};
  trb_streamer_t* s = nullptr;
  EXPECT_EQ(GRPC_STATUS_OK, trb_streamer_start(&pl.p, &o, &s, &st)) << st.msg;
  if (!s) return r;
  r.ids = env.Publish(lines);
  EXPECT_TRUE(st_test::WaitStats(s, [&](const trb_streamer_stats_t& x) {
    return x.rows_written + x.dead_letters >= lines.size() && x.acks_ok >= lines.size();
  }));
  EXPECT_EQ(GRPC_STATUS_OK, trb_streamer_stop(s, 10000, &st)) << st.msg;
  trb_streamer_destroy(s);
  r.out = Collect(env);
  EXPECT_EQ(r.out.duplicates, 0);
  return r;
}

TEST_F(StreamerTest, DuplicateRouteKeysAsAColumnRouteOnTheLastOccurrence) {
  const std::string o = R"("order_id":"o-1","order_date":"2026-01-01T00:00:00Z")";
  std::vector<std::string> lines = {
      // event_type is a column: twice is a transcode error — of the table
      // the LAST occurrence routes to.
      "{\"event_type\":\"order\"," + o + ",\"event_type\":\"inventory\"}",
      "{\"event_type\":\"inventory\"," + o + ",\"event_type\":\"order\"}",
      // Escaped spelling: not the route key for routing (raw compare), the
      // same column for the transcoder.
      "{\"event_type\":\"order\"," + o + ",\"event\\u005ftype\":\"inventory\"}",
      // The last occurrence matches no route.
      "{\"event_type\":\"order\"," + o + ",\"event_type\":\"refund\"}",
      // Malformed between the occurrences.
      "{\"event_type\":\"order\"," + o + ",\"x\":tru,\"event_type\":\"inventory\"}",
      // Twice the same value: still "field given twice".
      "{\"event_type\":\"order\"," + o + ",\"event_type\":\"order\"}",
      // Control: once.
      "{\"event_type\":\"order\"," + o + "}",
  };
  StreamRun r = StreamLines(env, env.PipelineJson(), lines);
  ASSERT_EQ(r.ids.size(), lines.size());
  auto dead = [&](size_t i) -> DeadLetter& { return r.out.dead[r.ids[i]]; };
  for (size_t i = 0; i < 6; i++) ASSERT_EQ(r.out.dead.count(r.ids[i]), 1u) << lines[i];
  EXPECT_EQ(dead(0).attrs["tributary_error_stage"], "transcode");
  EXPECT_EQ(dead(0).attrs["tributary_table"], "backend_events.inventory_events");
  EXPECT_EQ(dead(0).attrs["tributary_json_path"], "$.order_id");  // no such column there
  EXPECT_EQ(dead(1).attrs["tributary_error_stage"], "transcode");
  EXPECT_EQ(dead(1).attrs["tributary_table"], "backend_events.order_events");
  EXPECT_EQ(dead(2).attrs["tributary_error_stage"], "transcode");
  EXPECT_EQ(dead(2).attrs["tributary_table"], "backend_events.order_events");
  EXPECT_EQ(dead(3).attrs["tributary_error_stage"], "route");
  EXPECT_EQ(dead(3).attrs["tributary_error_reason"],
            "no route matches $.event_type = \"refund\"");
  EXPECT_EQ(dead(4).attrs["tributary_error_stage"], "parse");
  EXPECT_EQ(dead(5).attrs["tributary_error_stage"], "transcode");
  EXPECT_EQ(dead(5).attrs["tributary_table"], "backend_events.order_events");
  EXPECT_EQ(r.out.table_of[r.ids[6]], "backend_events.order_events");
}

TEST_F(StreamerTest, DuplicateRouteKeysAsAnIgnoredFieldRouteOnTheLastOccurrence) {
  // Route on "kind", a key no table has (ignored); each row fits both tables.
  std::string pipeline = R"({"project": ")" + env.project + R"(",
      "subscription": "backend-events-tributary",
      "dead_letter_topic": "tributary-dead-letter",
      "workers": 2, "batch_max_latency": "5ms", "http_port": -1,
      "wal_dir": ")" + env.wal_dir + R"(", "wal_sync": "none",
      "route_field": "kind",
      "routes": [
        {"equals": "order", "table": "backend_events.order_events"},
        {"equals": "inventory", "table": "backend_events.inventory_events"}],
      "tables": {
        "backend_events.order_events": {"write_metadata": true, "unknown_fields": "ignore"},
        "backend_events.inventory_events": {"write_metadata": true,
                                            "unknown_fields": "ignore"},
        "backend_events.user_activity_events": {"write_metadata": true}}})";
  const std::string b =
      R"("event_type":"e","order_id":"o-1","order_date":"2026-01-01T00:00:00Z",)"
      R"("inventory_id":"i-1","timestamp":"2026-01-01T00:00:00Z")";
  std::vector<std::string> lines = {
      "{\"kind\":\"order\"," + b + ",\"kind\":\"inventory\"}",              // 0 inventory
      "{\"kind\":\"inventory\"," + b + ",\"kind\":\"order\"}",              // 1 order
      "{\"kind\":\"order\"," + b + ",\"kind\":\"order\"}",                  // 2 order
      "{\"kind\":\"order\"," + b + ",\"\\u006bind\":\"inventory\"}",        // 3 order
      "{\"kind\":\"order\"," + b + ",\"x\":{\"kind\":\"inventory\"}}",      // 4 order
      "{\"kind\":\"order\"," + b + ",\"kind\":\"refund\"}",                 // 5 route
      "{\"kind\":\"order\"," + b + ",\"y\":[1,},\"kind\":\"inventory\"}",   // 6 parse
      "{\"kind\":\"order\"," + b + ",\"kind\":\"inventory\",\"kind\":\"order\"}",  // 7 order
      "{\"kind\":\"order\"," + b + ",\"kind\":\"\\u006frder\"}",  // 8 order (escaped value)
      "{\"kind\":\"order\"," + b + ",\"kind\": \"inventory\" }",            // 9 inventory
      "{\"kind\":\"order\"," + b + ",\"kind\":7}",                          // 10 route
  };
  StreamRun r = StreamLines(env, pipeline, lines);
  ASSERT_EQ(r.ids.size(), lines.size());
  const char* inv = "backend_events.inventory_events";
  const char* ord = "backend_events.order_events";
  std::vector<std::pair<size_t, const char*>> written = {
      {0, inv}, {1, ord}, {2, ord}, {3, ord}, {4, ord}, {7, ord}, {8, ord}, {9, inv}};
  for (auto& w : written) EXPECT_EQ(r.out.table_of[r.ids[w.first]], w.second) << lines[w.first];
  ASSERT_EQ(r.out.dead.count(r.ids[5]), 1u);
  EXPECT_EQ(r.out.dead[r.ids[5]].attrs["tributary_error_stage"], "route");
  EXPECT_EQ(r.out.dead[r.ids[5]].attrs["tributary_error_reason"],
            "no route matches $.kind = \"refund\"");
  ASSERT_EQ(r.out.dead.count(r.ids[6]), 1u);
  EXPECT_EQ(r.out.dead[r.ids[6]].attrs["tributary_error_stage"], "parse");
  ASSERT_EQ(r.out.dead.count(r.ids[10]), 1u);
  EXPECT_EQ(r.out.dead[r.ids[10]].attrs["tributary_error_stage"], "route");
  EXPECT_EQ(r.out.dead[r.ids[10]].attrs["tributary_error_reason"], "no route matches $.kind = 7");
  EXPECT_EQ(r.out.table_of.size(), written.size());
}

}  // namespace
