// faults_test — the streamer (in process) against the in-process emulator
// with faults injected through the emulator's registry (faults.h):
// AppendRows failing (UNAVAILABLE / INTERNAL / RESOURCE_EXHAUSTED), slow
// (latency), its streams dropped and dropped right after a write (the
// resend meets ALREADY_EXISTS); StreamingPull streams dropped;
// Acknowledge failing; Publish to the dead-letter topic failing for a
// while; a row the server rejects with row_errors that the transcoder
// accepts (a STRING over its maxLength). Every test ends with every
// message id exactly once in the tables ∪ the dead-letter topic.
#include <inttypes.h>

#include <memory>
#include <random>
#include <set>

#include "tests/streamer/stream_fixture.h"

namespace {

using st_test::Pipeline;
using st_test::StreamEnv;

const char* kAppendRows = "/google.cloud.bigquery.storage.v1.BigQueryWrite/AppendRows";
const char* kAck = "/google.pubsub.v1.Subscriber/Acknowledge";
const char* kPublish = "/google.pubsub.v1.Publisher/Publish";
const char* kTables[] = {"backend_events.order_events", "backend_events.inventory_events",
                         "backend_events.user_activity_events"};

// Seed-shaped events; one in `bad_every` malformed (dead-lettered at parse,
// route or transcode).
std::vector<std::string> Events(int n, uint32_t seed, int bad_every = 50) {
  std::mt19937 rng(seed);
  std::vector<std::string> out;
  for (int i = 0; i < n; i++) {
    std::string id = std::to_string(i);
    int kind = (int)(rng() % 100);
    if (i % bad_every == bad_every - 1) {
      const char* bad[] = {"{\"event_type\": \"order\", \"order_id\": ",
                           "{\"event_type\": \"refund\", \"refund_id\": \"x\"}",
                           "{\"event_type\": \"inventory\", \"quantity_change\": \"lots\", "
                           "\"timestamp\": \"2025-01-01T00:00:00Z\"}"};
      out.push_back(bad[rng() % 3]);
    } else {
      out.push_back(st_test::ValidEvent(kind, id));
    }
  }
  return out;
}

struct Tally {
  std::vector<std::string> table_ids;  // one per row
  std::multiset<std::string> dead;     // tributary_source_message_id
  std::map<std::string, st_test::DeadLetter> dead_letters;
};

class FaultsTest : public ::testing::Test {
 protected:
  StreamEnv env;
  std::string sub_name = "faults";
  std::unique_ptr<Pipeline> pl;  // replaced by each StartStreamer
  trb_streamer_t* s = nullptr;
  Tally tally;
  std::vector<std::string> tables{kTables, kTables + 3};

  void SetUp() override {
    env.Start(100);  // 1 "second" = 100 ms: ack deadline 10 s = 1 s
    // No dead-letter policy: Pub/Sub's own dead-lettering must not step in.
    google_pubsub_v1_Subscription sb = google_pubsub_v1_Subscription_init_zero;
    std::string name = "projects/" + env.project + "/subscriptions/" + sub_name;
    std::string topic = "projects/" + env.project + "/topics/backend-events";
    sb.name = &name[0];
    sb.topic = &topic[0];
    sb.ack_deadline_seconds = 10;
    ASSERT_EQ(GRPC_STATUS_OK, trb_psemu_create_subscription(trb_emulator_pubsub(env.emu), &sb, &env.st))
        << env.st.msg;
  }
  void TearDown() override {
    if (s) trb_streamer_destroy(s);
    s = nullptr;
  }

  trb_faults_t* F() { return trb_emulator_faults(env.emu); }

  std::string Json(const std::string& extra = "") {
    std::string json = env.PipelineJson(R"(, "max_outstanding_messages": 500)" + extra);
    json.replace(json.find("backend-events-tributary"), strlen("backend-events-tributary"), sub_name);
    return json;
  }

  void StartStreamer(const std::string& json) {
    trb_status_t st{};
    ASSERT_EQ(s, nullptr);
    pl.reset(new Pipeline());
    ASSERT_EQ(GRPC_STATUS_OK, pl->Load(json, &st)) << st.msg;
    trb_streamer_opts_t o = {env.ps_ch, env.bq_ch, 100};
    ASSERT_EQ(GRPC_STATUS_OK, trb_streamer_start(&pl->p, &o, &s, &st)) << st.msg;
  }

  // Read what ended where (dead letters accumulate: pulling acks them).
  void Collect() {
    for (auto& d : env.PullDeadLetters()) {
      std::string id = d.attrs["tributary_source_message_id"];
      tally.dead.insert(id);
      tally.dead_letters[id] = d;
    }
    tally.table_ids.clear();
    for (auto& t : tables)
      for (auto& id : env.Column(t, "message_id")) tally.table_ids.push_back(id);
  }

  size_t Covered(const std::set<std::string>& want) {
    std::set<std::string> got(tally.table_ids.begin(), tally.table_ids.end());
    got.insert(tally.dead.begin(), tally.dead.end());
    size_t n = 0;
    for (auto& id : want) n += got.count(id);
    return n;
  }

  // Wait (bounded) until every id is in a table or dead-lettered and the
  // streamer holds nothing; stop it; then every id exactly once.
  void Verify(const std::vector<std::string>& ids, int wait_ms = 120000) {
    std::set<std::string> want(ids.begin(), ids.end());
    ASSERT_EQ(want.size(), ids.size());
    trb_test::Cond c;
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
    while (std::chrono::steady_clock::now() < end) {
      Collect();
      trb_streamer_stats_t x;
      trb_streamer_stats(s, &x);
      if (Covered(want) == want.size() && x.in_flight == 0) break;
      c.WaitFor([] { return false; }, 100);  // poll interval, bounded by `end`
    }
    trb_status_t st{};
    EXPECT_EQ(GRPC_STATUS_OK, trb_streamer_stop(s, 10000, &st)) << st.msg;
    trb_streamer_destroy(s);
    s = nullptr;
    Collect();
    std::multiset<std::string> rows(tally.table_ids.begin(), tally.table_ids.end());
    size_t missing = 0, row_dups = 0, dead_dups = 0, both = 0, extra = 0;
    for (auto& id : want) {
      size_t r = rows.count(id), d = tally.dead.count(id);
      if (r + d == 0) missing++;
      if (r > 1) row_dups += r - 1;
      if (d > 1) dead_dups += d - 1;
      if (r && d) both++;
    }
    for (auto& id : rows) extra += !want.count(id);
    for (auto& id : tally.dead) extra += !want.count(id);
    EXPECT_EQ(missing, 0u) << "of " << ids.size();
    EXPECT_EQ(row_dups, 0u);
    EXPECT_EQ(dead_dups, 0u);
    EXPECT_EQ(both, 0u) << "messages both written and dead-lettered";
    EXPECT_EQ(extra, 0u);
  }

  // backend_events.limited: order_events whose `status` is STRING(12).
  void CreateLimitedTable() {
    // A table whose `status` is STRING(12): the transcoder does not check
    // maxLength, the server rejects the row with a row error.
    std::string json = st_test::ReadFile("examples/tables/backend_events.order_events.json");
    size_t at = json.find("\"schema\": [");
    ASSERT_NE(at, std::string::npos);
    json.insert(at + strlen("\"schema\": ["),
                R"({"name": "subscription_name", "type": "STRING"},
                   {"name": "message_id", "type": "STRING"},
                   {"name": "publish_time", "type": "TIMESTAMP"},
                   {"name": "attributes", "type": "JSON"},)");
    size_t sp = json.find("{\"name\": \"status\", \"type\": \"STRING\"");
    ASSERT_NE(sp, std::string::npos);
    json.insert(sp + strlen("{\"name\": \"status\", \"type\": \"STRING\""), ", \"maxLength\": 12");
    trb_bq_table_t def;
    ASSERT_EQ(GRPC_STATUS_OK, trb_bq_table_parse(json.data(), json.size(), &def, &env.st)) << env.st.msg;
    ASSERT_EQ(GRPC_STATUS_OK,
              trb_bqemu_create_table(trb_emulator_bigquery(env.emu), "backend_events", "limited", &def,
                                     &env.st))
        << env.st.msg;
    trb_bq_table_deinit(&def);
    tables[0] = "backend_events.limited";
  }

  // Let the streamer run a while (a schedule, not a synchronisation).
  static void Pause(int ms) {
    trb_test::Cond c;
    c.WaitFor([] { return false; }, ms);
  }
};

class AppendErrorTest : public FaultsTest,
                        public ::testing::WithParamInterface<grpc_status_code> {};

TEST_P(AppendErrorTest, AppendRowsFailsThenRecovers) {
  std::vector<std::string> ids = env.Publish(Events(3000, 1));
  // Fail the next 12 AppendRows calls (opens and in-stream requests).
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_add_error(F(), kAppendRows, 12, GetParam(),
                                                 "injected append failure", &env.st));
  StartStreamer(Json());
  Verify(ids);
  EXPECT_EQ(trb_faults_injected(F()), 12);
}

INSTANTIATE_TEST_SUITE_P(Codes, AppendErrorTest,
                         ::testing::Values(GRPC_STATUS_UNAVAILABLE, GRPC_STATUS_INTERNAL,
                                           GRPC_STATUS_RESOURCE_EXHAUSTED));

TEST_F(FaultsTest, AppendRowsFailsForSecondsEveryBatchResentAtItsOffset) {
  std::vector<std::string> ids = env.Publish(Events(2000, 2));
  // Every AppendRows fails until cleared: the writer's own retries and the
  // streamer's resends at the same offset all meet the fault.
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_add_error(F(), kAppendRows, -1, GRPC_STATUS_UNAVAILABLE,
                                                 "injected outage", &env.st));
  StartStreamer(Json());
  ASSERT_TRUE(st_test::WaitStats(s, [](const trb_streamer_stats_t& x) { return x.received > 0; }));
  Pause(1500);
  trb_streamer_stats_t x;
  trb_streamer_stats(s, &x);
  EXPECT_EQ(x.rows_written, 0u) << "nothing can be written during the outage";
  trb_faults_clear(F());
  Verify(ids);
  EXPECT_GT(trb_faults_injected(F()), 1);
}

TEST_F(FaultsTest, LatencyOnAppendRowsStreamingPullAndAcknowledge) {
  std::vector<std::string> ids = env.Publish(Events(2000, 3));
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_set_latency(F(), kAppendRows, 150, &env.st));
  // StreamingPull: consulted when a stream opens (each open waits).
  ASSERT_EQ(GRPC_STATUS_OK,
            trb_faults_set_latency(F(), "/google.pubsub.v1.Subscriber/StreamingPull", 300, &env.st));
  // Acks slower than the 1 s ack deadline: messages are redelivered while
  // their ack is in flight; the redelivered copies are acked, not written.
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_set_latency(F(), kAck, 1500, &env.st));
  StartStreamer(Json());
  Pause(4000);
  trb_faults_clear(F());
  Verify(ids);
}

TEST_F(FaultsTest, StreamsDroppedWhileStreaming) {
  std::vector<std::string> ids = env.Publish(Events(6000, 4));
  StartStreamer(Json());
  ASSERT_TRUE(st_test::WaitStats(s, [](const trb_streamer_stats_t& x) { return x.received > 0; }));
  // StreamingPull and AppendRows streams all ended with UNAVAILABLE, ten
  // times, 100 ms apart (what a server restart looks like to clients).
  for (int i = 0; i < 10; i++) {
    Pause(100);
    trb_faults_drop_streams(F(), GRPC_STATUS_UNAVAILABLE, "injected drop");
  }
  Verify(ids);
}

TEST_F(FaultsTest, DroppedAfterWriteResendMeetsAlreadyExists) {
  std::vector<std::string> ids = env.Publish(Events(3000, 5));
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_add_drop_after_write(F(), kAppendRows, 10, &env.st));
  StartStreamer(Json());
  Verify(ids);
  EXPECT_EQ(trb_faults_injected(F()), 10);
}

TEST_F(FaultsTest, AcknowledgeFailsRedeliveriesAckedNotWrittenAgain) {
  std::vector<std::string> ids = env.Publish(Events(2000, 6));
  // FAILED_PRECONDITION is not retried: those acks fail for good and the
  // messages come back after the ack deadline.
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_add_error(F(), kAck, 4, GRPC_STATUS_FAILED_PRECONDITION,
                                                 "injected ack failure", &env.st));
  StartStreamer(Json());
  // (The failures are all taken by the streamer's acks before this test
  // pulls — and acks — dead letters itself.)
  EXPECT_TRUE(st_test::WaitStats(s, [&](const trb_streamer_stats_t& x) {
    return trb_faults_injected(F()) == 4 && x.acks_failed > 0 && x.duplicates >= x.acks_failed;
  }, 60000)) << "failed acks are redelivered and acked as duplicates";
  trb_streamer_stats_t x;
  trb_streamer_stats(s, &x);
  printf("ack faults: %" PRIu64 " acks failed, %" PRIu64 " redeliveries acked without a write\n",
         (uint64_t)x.acks_failed, (uint64_t)x.duplicates);
  Verify(ids);
  EXPECT_EQ(trb_faults_injected(F()), 4);
}

TEST_F(FaultsTest, DeadLetterPublishFailsForAWhileMessagesNackedThenDeadLettered) {
  std::vector<std::string> lines = Events(1000, 7, 10);  // 100 malformed
  std::vector<std::string> ids = env.Publish(lines);
  // Publish (only the dead-letter publisher publishes from now on) refused
  // with a status the publisher does not retry: each dead letter fails,
  // its message is nacked and redelivered.
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_add_error(F(), kPublish, -1, GRPC_STATUS_PERMISSION_DENIED,
                                                 "injected: topic not writable", &env.st));
  StartStreamer(Json());
  // Every good row written while the dead letters keep failing; then each
  // malformed message has been tried at least twice.
  std::set<std::string> good;
  for (size_t i = 0; i < ids.size(); i++)
    if (i % 10 != 9) good.insert(ids[i]);
  trb_test::Cond c;
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < end) {
    Collect();
    if (Covered(good) == good.size() && trb_faults_injected(F()) >= 200) break;
    c.WaitFor([] { return false; }, 100);  // poll interval
  }
  EXPECT_EQ(Covered(good), good.size());
  EXPECT_GE(trb_faults_injected(F()), 200) << "dead letters nacked and redelivered";
  EXPECT_EQ(tally.dead.size(), 0u);
  trb_streamer_stats_t x;
  trb_streamer_stats(s, &x);
  EXPECT_EQ(x.dead_letters, 0u);
  trb_faults_clear(F());
  Verify(ids);
  EXPECT_EQ(tally.dead.size(), 100u);
  for (auto& kv : tally.dead_letters)
    EXPECT_FALSE(kv.second.attrs["tributary_error_stage"].empty());
}

TEST_F(FaultsTest, RowRejectedByServerDeadLetteredRestWrittenAtSameOffset) {
  CreateLimitedTable();

  std::vector<std::string> lines = Events(1500, 8);
  std::set<size_t> long_status;
  for (size_t i = 0; i < lines.size(); i++) {
    size_t p = lines[i].find("\"status\":\"processing\"");
    if (p != std::string::npos && i % 37 == 0) {
      lines[i].replace(p, strlen("\"status\":\"processing\""), "\"status\":\"processing-for-too-long\"");
      long_status.insert(i);
    }
  }
  ASSERT_GE(long_status.size(), 5u);
  std::vector<std::string> ids = env.Publish(lines);
  std::string pj = Json();
  for (size_t p; (p = pj.find("backend_events.order_events")) != std::string::npos;)
    pj.replace(p, strlen("backend_events.order_events"), "backend_events.limited");
  StartStreamer(pj);
  Verify(ids);
  size_t rows_limited = 0;
  for (auto& id : env.Column("backend_events.limited", "message_id")) rows_limited += !id.empty();
  for (size_t i : long_status) {
    ASSERT_TRUE(tally.dead_letters.count(ids[i])) << lines[i];
    auto& d = tally.dead_letters[ids[i]];
    EXPECT_EQ(d.attrs["tributary_error_stage"], "append");
    EXPECT_EQ(d.attrs["tributary_table"], "backend_events.limited");
    EXPECT_NE(d.attrs["tributary_error_reason"].find("status"), std::string::npos)
        << d.attrs["tributary_error_reason"];
    EXPECT_EQ(d.data, lines[i]);
  }
  // The rest of each batch was written: every order row but the rejected.
  size_t orders = 0;
  for (size_t i = 0; i < lines.size(); i++)
    orders += lines[i].rfind("{\"event_type\":\"order\"", 0) == 0 && !long_status.count(i);
  EXPECT_EQ(rows_limited, orders);
}

// Row errors while the WAL is at its budget: the remainder of each batch
// is logged again (a new record at the same offset) — possibly only after
// waiting for WAL space — and the superseded record must be released, or
// compaction stops at it and the streamer stalls on a full WAL.
TEST_F(FaultsTest, RowErrorsUnderATinyWalBudgetNeverStall) {
  CreateLimitedTable();
  std::vector<std::string> lines = Events(6000, 9);
  size_t rejected = 0;
  for (size_t i = 0; i < lines.size(); i++) {
    size_t p = lines[i].find("\"status\":\"processing\"");
    if (p != std::string::npos && i % 3 == 0) {
      lines[i].replace(p, strlen("\"status\":\"processing\""), "\"status\":\"processing-for-too-long\"");
      rejected++;
    }
  }
  std::vector<std::string> ids = env.Publish(lines);
  std::string pj = Json(R"(, "wal_max_bytes": "64KiB", "batch_max_rows": 20)");
  for (size_t p; (p = pj.find("backend_events.order_events")) != std::string::npos;)
    pj.replace(p, strlen("backend_events.order_events"), "backend_events.limited");
  StartStreamer(pj);
  Verify(ids, 60000);
  size_t append_dead = 0;
  for (auto& kv : tally.dead_letters) append_dead += kv.second.attrs["tributary_error_stage"] == "append";
  EXPECT_EQ(append_dead, rejected);
}

// Redelivered copies of held messages are parked (their id is PENDING) on
// whichever worker's stream they arrive — often another worker's than the
// first copy's. Destroying the streamer then must nack every parked copy
// before any worker's subscriber (which frees its handles) is destroyed.
TEST_F(FaultsTest, DestroyWithRedeliveriesParkedAcrossWorkers) {
  std::vector<std::string> ids = env.Publish(Events(600, 10));
  const char* kModAck = "/google.pubsub.v1.Subscriber/ModifyAckDeadline";
  // Nothing is written (so nothing is acked) and leases are not extended:
  // after the 1 s ack deadline every held message is delivered again.
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_add_error(F(), kAppendRows, -1, GRPC_STATUS_UNAVAILABLE,
                                                 "injected outage", &env.st));
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_add_error(F(), kModAck, -1, GRPC_STATUS_UNAVAILABLE,
                                                 "injected modack failure", &env.st));
  StartStreamer(Json());
  EXPECT_TRUE(st_test::WaitStats(s, [&](const trb_streamer_stats_t& x) {
    return x.received >= ids.size() + 200;
  }, 60000)) << "held messages redelivered";
  trb_streamer_destroy(s);  // grace 0: everything held is handed back
  s = nullptr;
  trb_faults_clear(F());
  // A new streamer on the same WAL finishes the job, exactly once.
  StartStreamer(Json());
  Verify(ids);
}

// A batch whose every row the server rejects leaves nothing written: its
// WAL record must not say "written" (a DONE record) — after a restart the
// replay would remember its ids as written, and the messages, whose dead
// letters had failed and which come back, would be acked and lost.
TEST_F(FaultsTest, AllRowsRejectedDeadLettersFailRestartNothingLost) {
  CreateLimitedTable();
  std::vector<std::string> lines = Events(400, 11);
  size_t rejected = 0;
  for (auto& l : lines) {
    size_t p = l.find("\"status\":\"processing\"");
    if (p == std::string::npos) continue;
    l.replace(p, strlen("\"status\":\"processing\""), "\"status\":\"processing-for-too-long\"");
    rejected++;
  }
  std::vector<std::string> ids = env.Publish(lines);
  std::string pj = Json(R"(, "batch_max_rows": 10)");
  for (size_t p; (p = pj.find("backend_events.order_events")) != std::string::npos;)
    pj.replace(p, strlen("backend_events.order_events"), "backend_events.limited");
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_add_error(F(), kPublish, -1, GRPC_STATUS_PERMISSION_DENIED,
                                                 "injected: topic not writable", &env.st));
  StartStreamer(pj);
  // Every rejected row's dead letter tried (and failed) at least once.
  EXPECT_TRUE(st_test::WaitStats(s, [&](const trb_streamer_stats_t& x) {
    return x.dead_by_stage[3] >= rejected;  // 3 = TRB_DL_APPEND (shape.h)
  }, 60000));
  trb_streamer_destroy(s);
  s = nullptr;
  trb_faults_clear(F());
  StartStreamer(pj);  // same WAL: replayed
  // Well within the de-duplication retention (600 "s" = 60 s here).
  Verify(ids, 30000);
  size_t append_dead = 0;
  for (auto& kv : tally.dead_letters) append_dead += kv.second.attrs["tributary_error_stage"] == "append";
  EXPECT_EQ(append_dead, rejected);
}

}  // namespace
