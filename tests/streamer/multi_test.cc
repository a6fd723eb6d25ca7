// multi_test — two `tributary stream` processes (the real binary, as
// children) share one subscription, each with its own write streams and
// write-ahead log. One is killed with SIGKILL mid-run and never restarted;
// the other finishes the backlog, including the dead instance's unacked
// messages once their ack deadline passes. Guaranteed (docs/streamer.md,
// "Several instances on one subscription"): no message is missing; rows
// the dead instance wrote but never acked are written again by the
// survivor — each such duplicate has the same message_id and identical
// columns, so it is removable by message_id. The figure is printed.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <random>
#include <set>

#include "tests/streamer/stream_child.h"
#include "tests/streamer/stream_fixture.h"

namespace {

using st_test::StreamChild;
using st_test::StreamEnv;

int EnvInt(const char* name, int def) {
  const char* v = getenv(name);
  return v && *v ? atoi(v) : def;
}

std::vector<std::string> Events(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::string> out;
  for (int i = 0; i < n; i++) {
    std::string id = std::to_string(i);
    int kind = (int)(rng() % 100);
    if (kind == 0) {
      out.push_back("{\"event_type\": \"refund\", \"refund_id\": \"x" + id + "\"}");
    } else {
      out.push_back(st_test::ValidEvent(kind, id));
    }
  }
  return out;
}


const char* kTables[] = {"backend_events.order_events", "backend_events.inventory_events",
                         "backend_events.user_activity_events"};

// Every row of `table` as the emulator's SQL renders it (one JSON object
// per row), keyed by message_id.
std::multimap<std::string, std::string> Rows(StreamEnv& env, const std::string& table) {
  char* buf = nullptr;
  size_t len = 0;
  FILE* f = open_memstream(&buf, &len);
  std::string sql = "SELECT * FROM " + table;
  EXPECT_EQ(GRPC_STATUS_OK, trb_bqemu_sql(env.data_dir.c_str(), sql.c_str(), true, f, &env.st))
      << env.st.msg;
  fclose(f);
  std::multimap<std::string, std::string> out;
  std::istringstream in(std::string(buf, len));
  free(buf);
  std::string line;
  while (std::getline(in, line)) {
    json_error_t e;
    json_t* j = json_loads(line.c_str(), 0, &e);
    if (!j) continue;
    json_t* id = json_object_get(j, "message_id");
    if (json_is_string(id)) out.emplace(json_string_value(id), line);
    json_decref(j);
  }
  return out;
}

class MultiInstanceTest : public ::testing::Test {
 protected:
  StreamEnv env;
  std::string sub_name = "shared";
  std::string log_a, log_b, pipe_a, pipe_b;

  void SetUp() override {
    env.Start(50);  // 1 "second" = 50 ms: ack deadline 10 s = 500 ms
    google_pubsub_v1_Subscription s = google_pubsub_v1_Subscription_init_zero;
    std::string name = "projects/" + env.project + "/subscriptions/" + sub_name;
    std::string topic = "projects/" + env.project + "/topics/backend-events";
    s.name = &name[0];
    s.topic = &topic[0];
    s.ack_deadline_seconds = 10;
    ASSERT_EQ(GRPC_STATUS_OK, trb_psemu_create_subscription(trb_emulator_pubsub(env.emu), &s, &env.st))
        << env.st.msg;
    pipe_a = Pipeline("a");
    pipe_b = Pipeline("b");
    log_a = env.dir + "/a.log";
    log_b = env.dir + "/b.log";
  }

  // Same subscription, own WAL directory per instance.
  std::string Pipeline(const std::string& who) {
    std::string json = env.PipelineJson(R"(, "max_outstanding_messages": 1000)");
    json.replace(json.find("backend-events-tributary"), strlen("backend-events-tributary"), sub_name);
    json.replace(json.find(env.wal_dir), env.wal_dir.size(), env.wal_dir + "-" + who);
    std::string path = env.dir + "/pipeline-" + who + ".json";
    std::ofstream(path) << json;
    return path;
  }

  std::string Logs() {
    return "--- a:\n" + st_test::ReadFile(log_a).substr(0, 10000) + "--- b:\n" +
           st_test::ReadFile(log_b).substr(0, 10000);
  }
};

TEST_F(MultiInstanceTest, OneInstanceDiesForGoodTheOtherFinishesDuplicatesRemovableByMessageId) {
  int n = EnvInt("TRB_MULTI_MESSAGES", 30000);
  std::vector<std::string> ids = env.Publish(Events(n, 4242));
  std::set<std::string> want(ids.begin(), ids.end());
  ASSERT_EQ(want.size(), ids.size());
  StreamChild a, b;
  ASSERT_TRUE(a.Start(pipe_a, env, log_a));
  ASSERT_TRUE(b.Start(pipe_b, env, log_b));
  // Kill `a` once a quarter of the backlog is in the tables (both
  // instances are then streaming); it is never restarted.
  trb_test::Cond c;
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  size_t rows = 0;
  while (std::chrono::steady_clock::now() < end) {
    rows = 0;
    for (const char* t : kTables) rows += env.Column(t, "message_id").size();
    if (rows >= (size_t)n / 4) break;
    c.WaitFor([] { return false; }, 50);  // poll interval, bounded by `end`
  }
  ASSERT_GE(rows, (size_t)n / 4) << Logs();
  ASSERT_FALSE(a.Exited()) << Logs();
  a.Kill();

  // The survivor finishes, including what `a` held unacked.
  std::multiset<std::string> dead;
  std::multimap<std::string, std::string> all;
  end = std::chrono::steady_clock::now() + std::chrono::seconds(240);
  while (std::chrono::steady_clock::now() < end) {
    for (auto& d : env.PullDeadLetters()) dead.insert(d.attrs["tributary_source_message_id"]);
    all.clear();
    for (const char* t : kTables)
      for (auto& kv : Rows(env, t)) all.insert(kv);
    std::set<std::string> got;
    for (auto& kv : all) got.insert(kv.first);
    got.insert(dead.begin(), dead.end());
    if (got.size() >= want.size()) break;
    c.WaitFor([] { return false; }, 250);  // poll interval, bounded by `end`
  }
  EXPECT_EQ(b.Term(), 0) << Logs();
  for (auto& d : env.PullDeadLetters()) dead.insert(d.attrs["tributary_source_message_id"]);
  all.clear();
  for (const char* t : kTables)
    for (auto& kv : Rows(env, t)) all.insert(kv);

  size_t missing = 0, row_dups = 0, dead_dups = 0, both = 0, not_identical = 0, extra = 0;
  for (auto& id : want) {
    size_t r = all.count(id), d = dead.count(id);
    if (r + d == 0) missing++;
    if (r > 1) row_dups += r - 1;
    if (d > 1) dead_dups += d - 1;
    if (r && d) both++;
    if (r > 1) {
      auto range = all.equal_range(id);
      for (auto it = range.first; it != range.second; ++it)
        if (it->second != range.first->second) not_identical++;
    }
  }
  for (auto& kv : all) extra += !want.count(kv.first);
  for (auto& id : dead) extra += !want.count(id);
  size_t distinct_rows = 0;
  for (auto it = all.begin(); it != all.end(); it = all.upper_bound(it->first)) distinct_rows++;
  printf("multi-instance: %d messages, %zu rows (%zu distinct message_id), %zu dead letters; "
         "instance killed after %zu rows; duplicates: %zu rows (%.3f%% of rows), %zu dead letters\n",
         n, all.size(), distinct_rows, dead.size(), rows, row_dups,
         all.empty() ? 0.0 : 100.0 * (double)row_dups / (double)all.size(), dead_dups);
  EXPECT_EQ(missing, 0u) << Logs();
  EXPECT_EQ(extra, 0u);
  EXPECT_EQ(both, 0u) << "a message both written and dead-lettered";
  EXPECT_EQ(not_identical, 0u) << "duplicates must differ in nothing but being two rows";
  // The duplicates come from what the dead instance held unacked: at most
  // its flow-control window (workers x max_outstanding_messages).
  EXPECT_LE(row_dups + dead_dups, 2u * 1000u);
  // De-duplicated by message_id, the tables hold each written message once.
  EXPECT_EQ(distinct_rows + dead.size() - dead_dups, want.size());
  // ... with the query docs/streamer.md gives (standard SQL: BigQuery and
  // the emulator's SQLite both run it).
  size_t deduped = 0;
  std::set<std::string> deduped_ids;
  for (const char* t : kTables) {
    std::string q = std::string("(SELECT message_id, ROW_NUMBER() OVER (PARTITION BY message_id "
                                "ORDER BY publish_time) AS rn FROM ") +
                    t + ") WHERE rn = 1";
    for (auto& id : env.Column(q, "message_id")) {
      deduped++;
      deduped_ids.insert(id);
    }
  }
  EXPECT_EQ(deduped, distinct_rows);
  EXPECT_EQ(deduped_ids.size(), distinct_rows);
}

}  // namespace
