// ops_test — the streamer's operations endpoints (/healthz, /readyz,
// /metrics) against the in-process emulator: counters and histogram counts
// match what was streamed; readiness before start, while streaming, after
// the subscription is deleted and while draining; and `tributary stream`
// (the real binary, as a child) serving /metrics on --http-port 0 and
// exiting 0 on SIGTERM.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <chrono>
#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "tests/streamer/stream_child.h"
#include "tests/streamer/stream_fixture.h"

extern "C" {
#include "src/streamer/ops_http.h"
}

namespace {

using st_test::Pipeline;
using st_test::StreamEnv;

struct Reply {
  int status = 0;  // 0 = transport failure
  std::string body;
};

// One GET over a fresh connection (Connection: close; read to EOF).
Reply Get(int port, const std::string& path) {
  Reply r;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return r;
  struct timeval tv = {10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  struct sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<struct sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return r;
  }
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) != (ssize_t)req.size()) {
    close(fd);
    return r;
  }
  std::string all;
  char buf[65536];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof buf, 0)) > 0) all.append(buf, (size_t)n);
  close(fd);
  size_t end = all.find("\r\n\r\n");
  size_t sp = all.find(' ');
  if (end == std::string::npos || sp == std::string::npos) return r;
  r.status = atoi(all.c_str() + sp + 1);
  r.body = all.substr(end + 4);
  return r;
}

// Prometheus samples: "name{labels}" → value.
std::map<std::string, double> Samples(const std::string& text) {
  std::map<std::string, double> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.empty() || line[0] == '#') continue;
    size_t sp = line.rfind(' ');
    if (sp == std::string::npos) continue;
    out[line.substr(0, sp)] = strtod(line.c_str() + sp + 1, nullptr);
  }
  return out;
}

const std::string P = "tributary_stream_";
const char* kTables[] = {"backend_events.order_events", "backend_events.inventory_events",
                         "backend_events.user_activity_events"};

double RowsSum(std::map<std::string, double>& m) {
  double n = 0;
  for (const char* t : kTables) n += m[P + "rows_appended_total{table=\"" + t + "\"}"];
  return n;
}

// Poll `fn` every 10 ms until it holds or `ms` pass.
template <typename F>
bool Eventually(F fn, int ms = 30000) {
  trb_test::Cond c;
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < end) {
    if (fn()) return true;
    c.WaitFor([] { return false; }, 10);
  }
  return fn();
}

std::vector<std::string> Messages() {
  return {
      R"({"event_type":"order","order_id":"o-1","customer_id":"c-1","order_date":"2025-02-24T12:30:00Z","status":"processing","items":[{"product_id":"p1","product_name":"Widget","quantity":2,"price":8.25}],"shipping_address":{"street":"1 Main St","city":"Amsterdam","country":"NL"},"total_amount":16.50})",
      R"({"event_type":"order","order_id":"o-2","customer_id":"c-2","order_date":"2025-02-24T12:31:00Z","status":"shipped","items":[],"total_amount":1})",
      R"({"event_type":"inventory","inventory_id":"i-1","product_id":"p1","warehouse_id":"wh-1","quantity_change":-3,"reason":"sale","timestamp":"2025-02-23T11:00:00Z"})",
      R"({"event_type":"user_activity","user_id":"u-1","activity_type":"login","ip_address":"10.0.0.1","user_agent":"curl","timestamp":"2025-02-23T09:15:00Z","metadata":{"session_id":"s","platform":"web"}})",
      R"({"event_type":"user_activity","user_id":"u-2","activity_type":"logout","ip_address":"10.0.0.2","user_agent":"curl","timestamp":"2025-02-23T09:16:00Z","metadata":{"session_id":"t","platform":"web"}})",
      // Dead letters: one not JSON (parse), one that does not fit the order
      // table (transcode), one with no route.
      R"({"event_type": "order", )",
      R"({"event_type":"order","order_id":"o-3","order_date":"yesterday"})",
      R"({"event_type":"refund","refund_id":"r-1"})",
  };
}
std::string k_rows() { return P + "rows_appended_total{table=\"backend_events.inventory_events\"}"; }
const double kValid = 5, kOrders = 2, kInventory = 1, kActivity = 2;

class OpsTest : public ::testing::Test {
 protected:
  StreamEnv env;
  void SetUp() override { env.Start(); }

  // Starts the ops endpoints (127.0.0.1, port 0) and the streamer on `pl`
  // loaded from env.PipelineJson(extra), and attaches the streamer to them.
  // Fatal failure when any step fails; the caller stops and destroys both.
  void StartAttached(trb_stream_ops_t** ops, int* port, Pipeline* pl, trb_streamer_t** s,
                     const std::string& extra = "") {
    trb_status_t st{};
    ASSERT_EQ(GRPC_STATUS_OK, trb_stream_ops_start("127.0.0.1", 0, ops, &st)) << st.msg;
    *port = trb_stream_ops_port(*ops);
    ASSERT_EQ(GRPC_STATUS_OK, pl->Load(env.PipelineJson(extra), &st)) << st.msg;
    trb_streamer_opts_t o = {env.ps_ch, env.bq_ch, 0};
    ASSERT_EQ(GRPC_STATUS_OK, trb_streamer_start(&pl->p, &o, s, &st)) << st.msg;
    trb_stream_ops_attach(*ops, *s);
  }

  void DeleteSubscription(const std::string& sub) {
    google_pubsub_v1_DeleteSubscriptionRequest r = google_pubsub_v1_DeleteSubscriptionRequest_init_zero;
    std::string name = "projects/" + env.project + "/subscriptions/" + sub;
    r.subscription = &name[0];
    uint8_t* buf = nullptr;
    size_t len = 0;
    trb_status_t st{};
    ASSERT_EQ(GRPC_STATUS_OK,
              trb_pb_encode(google_pubsub_v1_DeleteSubscriptionRequest_fields, &r, &buf, &len, &st));
    trb_rpc_response_t resp = {};
    trb_rpc_call_opts_t opts = {};
    opts.timeout_ms = 10000;
    trb_rpc_unary_call(env.loop, env.ps_ch, "/google.pubsub.v1.Subscriber/DeleteSubscription", buf,
                       len, &opts, &resp);
    trb_free(buf);
    EXPECT_EQ(GRPC_STATUS_OK, resp.code) << resp.message;
    trb_rpc_response_deinit(&resp);
  }
};

TEST_F(OpsTest, EndpointsMatchWhatWasStreamed) {
  trb_stream_ops_t* ops = nullptr;
  trb_status_t st{};
  ASSERT_EQ(GRPC_STATUS_OK, trb_stream_ops_start("127.0.0.1", 0, &ops, &st)) << st.msg;
  int port = trb_stream_ops_port(ops);
  ASSERT_GT(port, 0);

  // Before the streamer is attached: alive, not ready, zero counters.
  Reply r = Get(port, "/healthz");
  EXPECT_EQ(r.status, 200);
  r = Get(port, "/readyz");
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("\"ready\":false"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("starting"), std::string::npos) << r.body;
  r = Get(port, "/metrics");
  ASSERT_EQ(r.status, 200);
  auto m0 = Samples(r.body);
  EXPECT_EQ(m0[P + "up"], 1);
  EXPECT_EQ(m0[P + "ready"], 0);
  EXPECT_EQ(m0[P + "messages_received_total"], 0);
  EXPECT_EQ(Get(port, "/nope").status, 404);

  std::vector<std::string> msgs = Messages();
  env.Publish(msgs);

  Pipeline pl;
  ASSERT_EQ(GRPC_STATUS_OK, pl.Load(env.PipelineJson(), &st)) << st.msg;
  trb_streamer_opts_t o = {env.ps_ch, env.bq_ch, 0};
  trb_streamer_t* s = nullptr;
  ASSERT_EQ(GRPC_STATUS_OK, trb_streamer_start(&pl.p, &o, &s, &st)) << st.msg;
  trb_stream_ops_attach(ops, s);

  std::map<std::string, double> m;
  EXPECT_TRUE(Eventually([&] {
    r = Get(port, "/metrics");
    m = Samples(r.body);
    return r.status == 200 && m[P + "acks_total{result=\"ok\"}"] >= msgs.size() &&
           m[P + "messages_in_flight"] == 0;
  })) << r.body;
  r = Get(port, "/readyz");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, "{\"ready\":true}\n");
  EXPECT_EQ(m[P + "ready"], 1);

  EXPECT_EQ(m[P + "messages_received_total"], msgs.size());
  EXPECT_EQ(m[P + "duplicates_acked_total"], 0);
  EXPECT_EQ(m[P + "rows_appended_total{table=\"backend_events.order_events\"}"], kOrders);
  EXPECT_EQ(m[P + "rows_appended_total{table=\"backend_events.inventory_events\"}"], kInventory);
  EXPECT_EQ(m[P + "rows_appended_total{table=\"backend_events.user_activity_events\"}"], kActivity);
  EXPECT_EQ(RowsSum(m), kValid);
  EXPECT_EQ(m[P + "dead_letters_total{stage=\"parse\",table=\"\"}"], 1);
  EXPECT_EQ(m[P + "dead_letters_total{stage=\"route\",table=\"\"}"], 1);
  EXPECT_EQ(m[P + "dead_letters_total{stage=\"transcode\",table=\"backend_events.order_events\"}"], 1);
  EXPECT_EQ(m[P + "dead_letters_total{stage=\"transcode\",table=\"backend_events.inventory_events\"}"], 0);
  EXPECT_EQ(m[P + "dead_letters_total{stage=\"append\",table=\"backend_events.order_events\"}"], 0);
  EXPECT_EQ(m[P + "dead_letters_confirmed_total"], 3);
  EXPECT_EQ(m[P + "acks_total{result=\"ok\"}"], msgs.size());
  EXPECT_EQ(m[P + "acks_total{result=\"failed\"}"], 0);
  EXPECT_EQ(m[P + "append_retries_total"], 0);
  // Histograms: one append-latency observation per acknowledged AppendRows,
  // one end-to-end observation per row written.
  const std::string a = P + "append_latency_seconds";
  const std::string e = P + "end_to_end_latency_seconds";
  EXPECT_GE(m[P + "batches_appended_total"], 3);  // three tables
  EXPECT_EQ(m[a + "_count"], m[P + "batches_appended_total"]);
  EXPECT_EQ(m[a + "_bucket{le=\"+Inf\"}"], m[a + "_count"]);
  EXPECT_GT(m[a + "_sum"], 0);
  EXPECT_EQ(m[e + "_count"], kValid);
  EXPECT_EQ(m[e + "_bucket{le=\"+Inf\"}"], kValid);
  EXPECT_GT(m[e + "_sum"], 0);
  EXPECT_LE(m[e + "_bucket{le=\"0.001\"}"], m[e + "_bucket{le=\"60\"}"]);
  // The WAL (exactly_once): every batch and its DONE record were logged.
  EXPECT_GE(m[P + "wal_records_appended_total"], 2 * m[P + "batches_appended_total"]);
  EXPECT_GT(m[P + "wal_live_bytes"], 0);
  EXPECT_GE(m[P + "wal_live_segments"], 1);
  EXPECT_EQ(m[P + "wal_full_total"], 0);
  EXPECT_EQ(m[P + "replayed_batches_total"], 0);
  // Two workers, one StreamingPull stream each at least.
  EXPECT_GE(m[P + "pubsub_streams_opened_total"], 2);
  EXPECT_GE(m[P + "bigquery_connections_total"], 3);

  // The counters agree with the streamer's own.
  trb_streamer_stats_t x;
  trb_streamer_stats(s, &x);
  EXPECT_EQ(m[P + "messages_received_total"], x.received);
  EXPECT_EQ(m[P + "batches_appended_total"], x.batches_written);
  EXPECT_EQ(RowsSum(m), x.rows_written);

  // Draining: not ready, metrics still served.
  ASSERT_EQ(GRPC_STATUS_OK, trb_streamer_stop(s, 10000, &st)) << st.msg;
  r = Get(port, "/readyz");
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("draining"), std::string::npos) << r.body;
  EXPECT_EQ(Get(port, "/metrics").status, 200);
  trb_stream_ops_attach(ops, nullptr);
  trb_streamer_destroy(s);
  trb_stream_ops_destroy(ops);
  // The rows are really there.
  double in_tables = 0;
  for (const char* t : kTables) in_tables += (double)env.Column(t, "message_id").size();
  EXPECT_EQ(in_tables, kValid);
}

TEST_F(OpsTest, NotReadyAfterTheSubscriptionIsDeleted) {
  trb_stream_ops_t* ops = nullptr;
  trb_status_t st{};
  int port = 0;
  Pipeline pl;
  trb_streamer_t* s = nullptr;
  ASSERT_NO_FATAL_FAILURE(StartAttached(&ops, &port, &pl, &s));
  Reply r;
  EXPECT_TRUE(Eventually([&] { return (r = Get(port, "/readyz")).status == 200; })) << r.body;

  DeleteSubscription("backend-events-tributary");
  EXPECT_TRUE(Eventually([&] { return (r = Get(port, "/readyz")).status == 503; })) << r.body;
  EXPECT_NE(r.body.find("\"code\":\"NOT_FOUND\""), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("Pub/Sub"), std::string::npos) << r.body;
  auto m = Samples(Get(port, "/metrics").body);
  EXPECT_EQ(m[P + "ready"], 0);
  EXPECT_EQ(Get(port, "/healthz").status, 200);

  trb_streamer_stop(s, 1000, &st);
  trb_stream_ops_attach(ops, nullptr);
  trb_streamer_destroy(s);
  trb_stream_ops_destroy(ops);
}

// Scrapes racing a busy streamer: every counter and histogram count only
// grows from one scrape to the next, and the final figures add up.
TEST_F(OpsTest, ScrapesDuringStreamingAreMonotonic) {
  const int kN = 3000;
  std::vector<std::string> msgs;
  for (int i = 0; i < kN; i++)
    msgs.push_back(R"({"event_type":"inventory","inventory_id":"i-)" + std::to_string(i) +
                   R"(","product_id":"p1","warehouse_id":"wh-1","quantity_change":-3,"reason":"sale","timestamp":"2025-02-23T11:00:00Z"})");
  env.Publish(msgs);
  trb_stream_ops_t* ops = nullptr;
  trb_status_t st{};
  int port = 0;
  Pipeline pl;
  trb_streamer_t* s = nullptr;
  ASSERT_NO_FATAL_FAILURE(StartAttached(&ops, &port, &pl, &s, R"(, "batch_max_rows": 50)"));

  const std::vector<std::string> keys = {
      P + "messages_received_total", P + "rows_appended_total{table=\"backend_events.inventory_events\"}",
      P + "batches_appended_total", P + "acks_total{result=\"ok\"}",
      P + "append_latency_seconds_count", P + "end_to_end_latency_seconds_count",
      P + "end_to_end_latency_seconds_bucket{le=\"0.1\"}", P + "wal_records_appended_total"};
  std::atomic<bool> done{false};
  int scrapes = 0, regressions = 0, failures = 0;
  std::map<std::string, double> last;
  std::thread scraper([&] {
    while (!done.load()) {
      Reply r = Get(port, "/metrics");
      if (r.status != 200) {
        failures++;
        continue;
      }
      auto m = Samples(r.body);
      for (auto& k : keys) {
        if (m[k] < last[k]) {
          regressions++;
          ADD_FAILURE() << k << " went from " << last[k] << " to " << m[k];
        }
        last[k] = m[k];
      }
      // Within one scrape (histograms are read before the counters): no
      // more end-to-end observations than rows written.
      if (m[P + "end_to_end_latency_seconds_count"] > m[k_rows()]) {
        regressions++;
        ADD_FAILURE() << "e2e count " << m[P + "end_to_end_latency_seconds_count"] << " > rows "
                      << m[k_rows()];
      }
      Get(port, "/readyz");
      scrapes++;
    }
  });
  EXPECT_TRUE(st_test::WaitStats(s, [&](const trb_streamer_stats_t& x) {
    return x.acks_ok >= (uint64_t)kN && x.in_flight == 0;
  }, 60000));
  done = true;
  scraper.join();
  EXPECT_GT(scrapes, 3);
  EXPECT_EQ(regressions, 0);
  EXPECT_EQ(failures, 0);
  auto m = Samples(Get(port, "/metrics").body);
  EXPECT_EQ(m[k_rows()], kN);
  EXPECT_EQ(m[P + "end_to_end_latency_seconds_count"], kN);
  EXPECT_EQ(m[P + "append_latency_seconds_count"], m[P + "batches_appended_total"]);
  EXPECT_GE(m[P + "batches_appended_total"], kN / 50);
  trb_streamer_stop(s, 10000, &st);
  trb_stream_ops_attach(ops, nullptr);
  trb_streamer_destroy(s);
  trb_stream_ops_destroy(ops);
}

// An AppendRows outage, then every stream dropped: /readyz says 503 with a
// BigQuery reason while appends fail and 200 again after; retries and
// StreamingPull reconnects are counted; nothing is counted twice.
TEST_F(OpsTest, OutageShowsInReadyzAndRetryAndReconnectCounters) {
  const char* kAppendRows = "/google.cloud.bigquery.storage.v1.BigQueryWrite/AppendRows";
  trb_faults_t* f = trb_emulator_faults(env.emu);
  trb_stream_ops_t* ops = nullptr;
  trb_status_t st{};
  int port = 0;
  Pipeline pl;
  trb_streamer_t* s = nullptr;
  ASSERT_NO_FATAL_FAILURE(StartAttached(&ops, &port, &pl, &s));
  Reply r;
  ASSERT_TRUE(Eventually([&] { return (r = Get(port, "/readyz")).status == 200; })) << r.body;

  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_add_error(f, kAppendRows, -1, GRPC_STATUS_UNAVAILABLE,
                                                 "injected outage", &st));
  std::vector<std::string> msgs = Messages();
  env.Publish(msgs);
  EXPECT_TRUE(Eventually([&] { return (r = Get(port, "/readyz")).status == 503; })) << r.body;
  EXPECT_NE(r.body.find("BigQuery"), std::string::npos) << r.body;
  std::map<std::string, double> m;
  EXPECT_TRUE(Eventually([&] {
    m = Samples(Get(port, "/metrics").body);
    return m[P + "append_retries_total"] >= 1;
  }));
  EXPECT_EQ(RowsSum(m), 0) << "nothing is written during the outage";
  EXPECT_EQ(m[P + "end_to_end_latency_seconds_count"], 0);
  EXPECT_EQ(m[P + "append_latency_seconds_count"], 0);
  EXPECT_GT(m[P + "messages_in_flight"], 0);
  trb_faults_clear(f);

  double opened = m[P + "pubsub_streams_opened_total"];
  trb_faults_drop_streams(f, GRPC_STATUS_UNAVAILABLE, "injected drop");
  EXPECT_TRUE(Eventually([&] {
    m = Samples(Get(port, "/metrics").body);
    return m[P + "acks_total{result=\"ok\"}"] >= msgs.size() && m[P + "messages_in_flight"] == 0 &&
           m[P + "pubsub_reconnects_total"] >= 1 && Get(port, "/readyz").status == 200;
  })) << Get(port, "/readyz").body;
  EXPECT_GT(m[P + "pubsub_streams_opened_total"], opened);
  EXPECT_EQ(RowsSum(m), kValid);
  EXPECT_EQ(m[P + "end_to_end_latency_seconds_count"], kValid);
  EXPECT_EQ(m[P + "append_latency_seconds_count"], m[P + "batches_appended_total"]);
  EXPECT_EQ(m[P + "dead_letters_confirmed_total"], 3);

  trb_streamer_stop(s, 10000, &st);
  trb_stream_ops_attach(ops, nullptr);
  trb_streamer_destroy(s);
  trb_stream_ops_destroy(ops);
}

// Batches logged to the WAL but never written (AppendRows down, stopped
// with no grace): the next streamer on the same WAL replays them — counted
// in replayed_batches/rows — and acks the redelivered copies as duplicates
// (not written again: no rows_appended, no end-to-end observation).
// Ack deadlines scaled (1 "second" = 50 ms) so the messages the first
// streamer held come back quickly.
class OpsReplayTest : public ::testing::Test {
 protected:
  StreamEnv env;
  void SetUp() override { env.Start(50); }
};

TEST_F(OpsReplayTest, ReplayAndDuplicatesAreCounted) {
  const char* kAppendRows = "/google.cloud.bigquery.storage.v1.BigQueryWrite/AppendRows";
  trb_faults_t* f = trb_emulator_faults(env.emu);
  trb_status_t st{};
  std::vector<std::string> msgs = Messages();
  env.Publish(msgs);
  Pipeline pl;
  ASSERT_EQ(GRPC_STATUS_OK, pl.Load(env.PipelineJson(), &st)) << st.msg;
  trb_streamer_opts_t o = {env.ps_ch, env.bq_ch, 50};
  {
    ASSERT_EQ(GRPC_STATUS_OK, trb_faults_add_error(f, kAppendRows, -1, GRPC_STATUS_UNAVAILABLE,
                                                   "injected outage", &st));
    trb_streamer_t* s = nullptr;
    ASSERT_EQ(GRPC_STATUS_OK, trb_streamer_start(&pl.p, &o, &s, &st)) << st.msg;
    trb_stream_metrics_t m{};
    // Every valid message is in a logged batch, and its append failed.
    EXPECT_TRUE(Eventually([&] {
      trb_streamer_metrics(s, &m);
      return m.append_retries >= 1 && m.dead_letters == 3 &&
             m.wal_records_appended >= 3 + 3;  // >= 1 BATCH per table, 3 DEAD
    }));
    EXPECT_EQ(m.rows_written, 0u);
    trb_streamer_stop(s, 0, &st);
    trb_streamer_destroy(s);
    trb_faults_clear(f);
  }
  trb_stream_ops_t* ops = nullptr;
  ASSERT_EQ(GRPC_STATUS_OK, trb_stream_ops_start("127.0.0.1", 0, &ops, &st)) << st.msg;
  int port = trb_stream_ops_port(ops);
  trb_streamer_t* s = nullptr;
  ASSERT_EQ(GRPC_STATUS_OK, trb_streamer_start(&pl.p, &o, &s, &st)) << st.msg;
  trb_stream_ops_attach(ops, s);
  std::map<std::string, double> m;
  Reply r;
  EXPECT_TRUE(Eventually([&] {
    r = Get(port, "/metrics");
    m = Samples(r.body);
    return m[P + "duplicates_acked_total"] >= kValid && m[P + "messages_in_flight"] == 0;
  })) << r.body;
  EXPECT_GE(m[P + "replayed_batches_total"], 3);  // one table each at least
  EXPECT_EQ(m[P + "replayed_rows_total"], kValid);
  EXPECT_EQ(RowsSum(m), 0) << "the replay wrote them; the copies are not written again";
  EXPECT_EQ(m[P + "end_to_end_latency_seconds_count"], 0);
  // The dead letters were acked by the first streamer (unless its acks were
  // cut short by the stop: then they come back as duplicates too).
  EXPECT_LE(m[P + "duplicates_acked_total"], msgs.size());
  EXPECT_EQ(m[P + "dead_letters_confirmed_total"], 0);
  trb_streamer_stop(s, 10000, &st);
  trb_stream_ops_attach(ops, nullptr);
  trb_streamer_destroy(s);
  trb_stream_ops_destroy(ops);
  double in_tables = 0;
  for (const char* t : kTables) in_tables += (double)env.Column(t, "message_id").size();
  EXPECT_EQ(in_tables, kValid);
}

// `tributary stream --http-port 0` as a child: prints its port, serves
// /metrics with what it streamed, exits 0 on SIGTERM within the grace
// period.
TEST_F(OpsTest, CliServesMetricsAndExitsCleanlyOnSigterm) {
  std::string pipeline = env.dir + "/pipeline.json";
  std::ofstream(pipeline) << env.PipelineJson(R"(, "grace_period": "5s")");
  std::vector<std::string> envs = st_test::ChildEnv(env, {"TRB_LOG_LEVEL=warning"});
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(out[1], 1);
    close(out[0]);
    close(out[1]);
    st_test::ExecChild({(char*)"src/cli/tributary", (char*)"stream", (char*)"--pipeline",
                        (char*)pipeline.c_str(), (char*)"--http-port", (char*)"0", nullptr},
                       std::move(envs));
  }
  close(out[1]);
  // Its stdout: "... ops http on port N" then "... streaming ...".
  FILE* f = fdopen(out[0], "r");
  ASSERT_NE(f, nullptr);
  int port = 0;
  bool streaming = false;
  char line[512];
  while (!streaming && fgets(line, sizeof line, f)) {
    const char* at = strstr(line, "ops http on port ");
    if (at) port = atoi(at + strlen("ops http on port "));
    if (strstr(line, "streaming ")) streaming = true;
  }
  fclose(f);
  ASSERT_GT(port, 0) << "no port printed";
  ASSERT_TRUE(streaming);

  std::vector<std::string> msgs = Messages();
  env.Publish(msgs);
  Reply r;
  std::map<std::string, double> m;
  EXPECT_TRUE(Eventually([&] {
    r = Get(port, "/metrics");
    m = Samples(r.body);
    return m[P + "acks_total{result=\"ok\"}"] >= msgs.size();
  })) << r.body;
  EXPECT_EQ(RowsSum(m), kValid);
  EXPECT_EQ(m[P + "end_to_end_latency_seconds_count"], kValid);
  EXPECT_EQ(m[P + "dead_letters_confirmed_total"], 3);
  EXPECT_EQ(Get(port, "/healthz").status, 200);
  EXPECT_EQ(Get(port, "/readyz").status, 200);

  ASSERT_EQ(kill(pid, SIGTERM), 0);
  int status = 0;
  bool exited = Eventually([&] { return waitpid(pid, &status, WNOHANG) == pid; }, 5000 + 3000);
  if (!exited) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  EXPECT_TRUE(exited) << "not gone within the 5 s grace period";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  EXPECT_EQ(Get(port, "/healthz").status, 0) << "the port is closed after exit";
}

}  // namespace
