// kill9_test — `tributary stream` (the real binary, as a child process)
// killed with SIGKILL at random moments while it streams a 100,000-message
// backlog (TRB_KILL9_MESSAGES, TRB_KILL9_KILLS override), then restarted on
// the same write-ahead log; and a run during which the emulator restarts.
// In the end every message id is exactly once in the tables ∪ the
// dead-letter topic.
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

// Synthetic seed-shaped events: orders with items and address, inventory,
// user activity; one in 100 malformed in one of four ways.
std::vector<std::string> Events(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::string> out;
  out.reserve(n);
  for (int i = 0; i < n; i++) {
    std::string id = std::to_string(i);
    int kind = (int)(rng() % 100);
    if (kind == 0) {
      const char* bad[] = {"{\"event_type\": \"order\", \"order_id\": ",
                           "{\"event_type\": \"refund\", \"refund_id\": \"x\"}",
                           "{\"event_type\": \"inventory\", \"quantity_change\": \"lots\", "
                           "\"timestamp\": \"2025-01-01T00:00:00Z\"}",
                           "[1, 2, 3]"};
      out.push_back(bad[rng() % 4]);
    } else if (kind < 50) {
      out.push_back(R"({"event_type":"order","order_id":"o-)" + id +
                    R"(","customer_id":"c-)" + std::to_string(rng() % 1000) +
                    R"(","order_date":"2025-02-24T12:30:00Z","status":"processing","items":[{"product_id":"p)" +
                    std::to_string(rng() % 50) +
                    R"(","product_name":"Widget","quantity":2,"price":8.25}],"shipping_address":{"street":"1 Main St","city":"Amsterdam","country":"NL"},"total_amount":16.50})");
    } else if (kind < 75) {
      out.push_back(R"({"event_type":"inventory","inventory_id":"i-)" + id +
                    R"(","product_id":"p1","warehouse_id":"wh-1","quantity_change":-3,"reason":"sale","timestamp":"2025-02-23T11:00:00Z"})");
    } else {
      out.push_back(R"({"event_type":"user_activity","user_id":"u-)" + id +
                    R"(","activity_type":"login","ip_address":"10.0.0.1","user_agent":"curl","timestamp":"2025-02-23T09:15:00Z","metadata":{"session_id":"s","platform":"web"}})");
    }
  }
  return out;
}


class Kill9Test : public ::testing::Test {
 protected:
  StreamEnv env;
  std::string sub_name = "kill9";
  std::string pipeline_path, log_path;

  void SetUp() override {
    env.Start(50);  // 1 "second" of ack deadline = 50 ms
    CreateSubscription();
    pipeline_path = env.dir + "/pipeline.json";
    log_path = env.dir + "/stream.log";
    std::string json = env.PipelineJson(R"(, "max_outstanding_messages": 1000)");
    json.replace(json.find("backend-events-tributary"), strlen("backend-events-tributary"), sub_name);
    std::ofstream(pipeline_path) << json;
  }

  // A subscription without a dead-letter policy: kills hold messages many
  // times, and Pub/Sub's own dead-lettering must not interfere.
  void CreateSubscription() {
    google_pubsub_v1_Subscription s = google_pubsub_v1_Subscription_init_zero;
    std::string name = "projects/" + env.project + "/subscriptions/" + sub_name;
    std::string topic = "projects/" + env.project + "/topics/backend-events";
    s.name = &name[0];
    s.topic = &topic[0];
    s.ack_deadline_seconds = 10;
    ASSERT_EQ(GRPC_STATUS_OK,
              trb_psemu_create_subscription(trb_emulator_pubsub(env.emu), &s, &env.st))
        << env.st.msg;
  }

  // The streamer's log (warnings and errors), its last 20,000 bytes.
  std::string Log() {
    std::string l = st_test::ReadFile(log_path);
    return l.size() > 20000 ? l.substr(l.size() - 20000) : l;
  }

  // Wait (bounded) until rows + dead letters account for every message.
  void Verify(const std::vector<std::string>& ids, size_t max_dead_dups) {
    std::set<std::string> want(ids.begin(), ids.end());
    ASSERT_EQ(want.size(), ids.size());
    std::multiset<std::string> dead;
    size_t rows = 0;
    trb_test::Cond c;
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(240);
    std::vector<std::string> table_ids;
    while (std::chrono::steady_clock::now() < end) {
      for (auto& d : env.PullDeadLetters()) dead.insert(d.attrs["tributary_source_message_id"]);
      table_ids.clear();
      for (const char* t : {"backend_events.order_events", "backend_events.inventory_events",
                            "backend_events.user_activity_events"})
        for (auto& id : env.Column(t, "message_id")) table_ids.push_back(id);
      rows = table_ids.size();
      // Done when every message id is accounted for (dead-letter duplicates
      // must not end the wait early).
      size_t covered = 0;
      {
        std::set<std::string> seen(table_ids.begin(), table_ids.end());
        seen.insert(dead.begin(), dead.end());
        for (auto& id : want) covered += seen.count(id);
      }
      if (covered == want.size()) break;
      c.WaitFor([] { return false; }, 500);  // poll interval, bounded by `end`
    }
    std::multiset<std::string> all(table_ids.begin(), table_ids.end());
    all.insert(dead.begin(), dead.end());
    size_t dups = 0, missing = 0, extra = 0, table_dups = 0, dead_dups = 0;
    {
      std::multiset<std::string> t(table_ids.begin(), table_ids.end());
      for (auto it = t.begin(); it != t.end(); it = t.upper_bound(*it)) table_dups += t.count(*it) - 1;
      for (auto it = dead.begin(); it != dead.end(); it = dead.upper_bound(*it))
        dead_dups += dead.count(*it) - 1;
    }
    for (auto& id : want) {
      size_t n = all.count(id);
      if (n == 0) missing++;
      if (n > 1) dups += n - 1;
    }
    for (auto& id : all)
      if (!want.count(id)) extra++;
    // Rows: exactly once. Dead letters: a publish the server stored whose
    // confirmation the killed process never saw is published again after
    // the restart (Pub/Sub has no idempotent publish): those duplicates are
    // counted, bounded and removable by tributary_source_message_id.
    EXPECT_EQ(missing, 0u) << "rows " << rows << " dead " << dead.size() << "\n" << Log();
    EXPECT_EQ(table_dups, 0u) << "rows " << rows << " dead " << dead.size() << "\n" << Log();
    EXPECT_EQ(dups, table_dups + dead_dups);
    EXPECT_LE(dead_dups, max_dead_dups) << "dead-letter duplicates";
    printf("kill9: %zu rows, %zu dead letters, %zu dead-letter duplicate(s)\n", rows, dead.size(),
           dead_dups);
    EXPECT_EQ(extra, 0u);
    EXPECT_GT(dead.size(), 0u);
    EXPECT_GT(rows, ids.size() / 2);
  }
};

TEST_F(Kill9Test, StreamerKilledRepeatedlyEveryMessageExactlyOnce) {
  int n = EnvInt("TRB_KILL9_MESSAGES", 100000);
  int kills = EnvInt("TRB_KILL9_KILLS", 20);
  std::vector<std::string> ids = env.Publish(Events(n, 1234));
  std::mt19937 rng(99);
  StreamChild child;
  trb_test::Cond c;
  for (int k = 0; k < kills; k++) {
    ASSERT_TRUE(child.Start(pipeline_path, env, log_path));
    // The kill schedule (not a synchronisation): 150..900 ms into the run,
    // which covers start-up and replay as well as streaming.
    int ms = 150 + (int)(rng() % 750);
    c.WaitFor([] { return false; }, ms);
    ASSERT_FALSE(child.Exited()) << "the streamer exited by itself:\n" << Log();
    child.Kill();
  }
  ASSERT_TRUE(child.Start(pipeline_path, env, log_path));
  Verify(ids, (size_t)kills * 25);
  EXPECT_EQ(child.Term(), 0) << Log();
}

TEST_F(Kill9Test, EmulatorRestartsWhileStreaming) {
  int n = EnvInt("TRB_KILL9_MESSAGES", 100000) / 4;
  std::vector<std::string> ids = env.Publish(Events(n, 777));
  StreamChild child;
  ASSERT_TRUE(child.Start(pipeline_path, env, log_path));
  trb_test::Cond c;
  for (int r = 0; r < 3; r++) {
    c.WaitFor([] { return false; }, 400);  // restart schedule
    env.RestartEmulator();
  }
  Verify(ids, 3 * 25);
  EXPECT_EQ(child.Term(), 0) << Log();
}

}  // namespace
