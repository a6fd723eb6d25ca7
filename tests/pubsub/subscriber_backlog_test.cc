// Memory stays bounded while the Subscriber drains a large backlog: with
// max_outstanding_messages 1000 and an application that first holds every
// message, then acks slowly, then at once, the messages the client has
// received but not yet settled (held + queued) never exceed a bound tied to
// flow control, and (outside ASan, whose quarantine keeps freed memory
// resident) the process RSS grows by less than the backlog would take.
//
// The backlog is TRB_BACKLOG_MESSAGES (default 200000) 600-byte messages in
// an in-process emulator subscription (issue 4 asks for 1,000,000; run
// with TRB_BACKLOG_MESSAGES=1000000 outside ASan for that).
#include <gtest/gtest.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <vector>

#include "google/pubsub/v1/pubsub.pb.h"
#include "src/emulator/emulator.h"
#include "src/pubsub/publisher.h"
#include "src/pubsub/subscriber.h"
#include "src/rpc/rpc.h"
#include "tests/testutil/wait.h"

#if defined(__SANITIZE_ADDRESS__)
#define TRB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TRB_ASAN 1
#endif
#endif

namespace {

constexpr int64_t kFlow = 1000;
// Held (<= kFlow) plus what the streams may have read before push-back
// stops them: at most one more flow-control window.
constexpr uint64_t kUnsettledBound = 2 * kFlow;
constexpr size_t kMsgBytes = 600;

long RssBytes() {
  FILE* f = fopen("/proc/self/statm", "r");
  if (!f) return -1;
  long size = 0, resident = 0;
  int n = fscanf(f, "%ld %ld", &size, &resident);
  fclose(f);
  return n == 2 ? resident * sysconf(_SC_PAGESIZE) : -1;
}

long BacklogMessages() {
  const char* e = getenv("TRB_BACKLOG_MESSAGES");
  long n = e ? atol(e) : 0;
  return n > 0 ? n : 200000;
}

struct App {
  trb_test::Cond cond;
  std::vector<trb_ps_ack_handle_t*> held;
  std::atomic<bool> ack_at_once{false};
  std::atomic<uint64_t> delivered{0};
  std::atomic<uint64_t> max_unsettled{0};
  std::atomic<long> max_rss{0};
  trb_ps_subscriber_t* sub = nullptr;

  void Sample() {
    trb_ps_subscriber_stats_t s;
    trb_ps_subscriber_stats(sub, &s);
    uint64_t unsettled = s.received - s.acked - s.nacked;
    uint64_t m = max_unsettled.load();
    while (unsettled > m && !max_unsettled.compare_exchange_weak(m, unsettled)) {
    }
    long rss = RssBytes();
    long r = max_rss.load();
    while (rss > r && !max_rss.compare_exchange_weak(r, rss)) {
    }
  }

  static void Cb(void* user, const trb_ps_received_t* m, trb_ps_ack_handle_t* h) {
    auto* app = static_cast<App*>(user);
    EXPECT_EQ(kMsgBytes, m->data_len);
    uint64_t d = ++app->delivered;
    if (d % 256 == 0) app->Sample();
    if (app->ack_at_once.load()) {
      trb_ps_ack(h);
      return;
    }
    app->cond.Update([&] { app->held.push_back(h); });
  }

  // Ack up to n held messages from the test thread; returns how many.
  size_t AckSome(size_t n) {
    std::vector<trb_ps_ack_handle_t*> take;
    {
      auto l = cond.Lock();
      n = std::min(n, held.size());
      take.assign(held.begin(), held.begin() + static_cast<long>(n));
      held.erase(held.begin(), held.begin() + static_cast<long>(n));
    }
    for (auto* h : take) trb_ps_ack(h);
    return n;
  }
  size_t Held() {
    auto l = cond.Lock();
    return held.size();
  }
};

TEST(SubscriberBacklogTest, LargeBacklogUnsettledAndRssBoundedByFlowControl) {
  const long kN = BacklogMessages();
  trb_status_t st = {};
  trb_rpc_init();
  trb_emulator_config_t ec = {};
  ec.host = "127.0.0.1";
  trb_emulator_t* emu = nullptr;
  ASSERT_EQ(GRPC_STATUS_OK, trb_emulator_start(&ec, &emu, &st)) << st.msg;
  std::string project = trb_emulator_project(emu);
  std::string tn = "projects/" + project + "/topics/top";
  std::string sn = "projects/" + project + "/subscriptions/sub";
  google_pubsub_v1_Topic t = google_pubsub_v1_Topic_init_zero;
  t.name = &tn[0];
  ASSERT_EQ(GRPC_STATUS_OK, trb_psemu_create_topic(trb_emulator_pubsub(emu), &t, &st)) << st.msg;
  google_pubsub_v1_Subscription s = google_pubsub_v1_Subscription_init_zero;
  s.name = &sn[0];
  s.topic = &tn[0];
  s.ack_deadline_seconds = 60;
  ASSERT_EQ(GRPC_STATUS_OK, trb_psemu_create_subscription(trb_emulator_pubsub(emu), &s, &st))
      << st.msg;

  trb_rpc_loop_t* loop = nullptr;
  trb_rpc_channel_t* ch = nullptr;
  ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_loop_create("backlog-test", &loop, &st)) << st.msg;
  std::string target = "127.0.0.1:" + std::to_string(trb_emulator_pubsub_port(emu));
  trb_rpc_channel_config_t cc = {};
  cc.target = target.c_str();
  ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_channel_create(&cc, &ch, &st)) << st.msg;

  // Preload the backlog.
  auto t0 = std::chrono::steady_clock::now();
  trb_ps_publisher_config_t pc = {};
  pc.max_messages = 1000;
  pc.max_delay_ms = 5;
  pc.flow_max_messages = 20000;
  pc.flow = TRB_PS_FLOW_BLOCK;
  trb_ps_publisher_t* pub = nullptr;
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publisher_create(loop, ch, tn.c_str(), &pc, &pub, &st))
      << st.msg;
  std::string data(kMsgBytes, 'x');
  trb_ps_message_t m = {};
  m.data = reinterpret_cast<const uint8_t*>(data.data());
  m.data_len = data.size();
  for (long i = 0; i < kN; i++) {
    ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publish(pub, &m, nullptr, nullptr, &st)) << st.msg;
  }
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publisher_flush(pub, 120000, &st)) << st.msg;
  trb_ps_publisher_destroy(pub);
  double preload_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  long rss0 = RssBytes();
  ASSERT_GT(rss0, 0);

  App app;
  app.max_rss = rss0;
  trb_ps_subscriber_config_t c = {};
  c.streams = 1;
  c.max_outstanding_messages = kFlow;
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_subscriber_create(loop, ch, sn.c_str(), &c, App::Cb, &app,
                                                     &app.sub, &st))
      << st.msg;
  auto t1 = std::chrono::steady_clock::now();
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_subscriber_start(app.sub, &st)) << st.msg;

  // Phase 1: the application holds everything; the window fills and stays
  // full (nothing more is delivered while it is full).
  ASSERT_TRUE(app.cond.WaitFor([&] { return app.held.size() >= kFlow; }, 30000))
      << app.Held();
  trb_test::Cond idle;
  for (int i = 0; i < 20; i++) {  // observe the full window for ~200 ms
    app.Sample();
    idle.WaitFor([] { return false; }, 10);
  }
  EXPECT_EQ(static_cast<size_t>(kFlow), app.Held());

  // Phase 2: slow acks — 50 at a time, each time waiting for the window to
  // refill, until 20 windows have gone through.
  while (app.delivered.load() < 20 * static_cast<uint64_t>(kFlow)) {
    ASSERT_EQ(50u, app.AckSome(50));
    ASSERT_TRUE(app.cond.WaitFor([&] { return app.held.size() >= kFlow; }, 30000))
        << app.Held();
    app.Sample();
  }

  // Phase 3: ack at once; drain the rest.
  app.ack_at_once = true;
  app.AckSome(SIZE_MAX);
  trb_test::Cond poll;
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(240);
  trb_ps_subscriber_stats_t stats;
  while (true) {
    app.AckSome(SIZE_MAX);  // anything queued by a callback racing the switch
    app.Sample();
    trb_ps_subscriber_stats(app.sub, &stats);
    if (stats.acked >= static_cast<uint64_t>(kN)) break;
    ASSERT_LT(std::chrono::steady_clock::now(), end) << stats.acked << " of " << kN;
    poll.WaitFor([] { return false; }, 20);
  }
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_subscriber_stop(app.sub, 30000, &st)) << st.msg;
  double drain_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  trb_ps_subscriber_stats(app.sub, &stats);
  long rss_growth = app.max_rss.load() - rss0;
  printf("backlog: %ld x %zu-byte messages preloaded in %.1f s, drained in %.1f s; max "
         "unsettled (received - acked - nacked) %llu (bound %llu), peak held %llu, max RSS "
         "growth %.1f MiB (backlog payload %.1f MiB)\n",
         kN, kMsgBytes, preload_s, drain_s,
         static_cast<unsigned long long>(app.max_unsettled.load()),
         static_cast<unsigned long long>(kUnsettledBound),
         static_cast<unsigned long long>(stats.peak_held), rss_growth / 1048576.0,
         kN * static_cast<double>(kMsgBytes) / 1048576.0);
  EXPECT_EQ(static_cast<uint64_t>(kN), stats.acked);
  EXPECT_EQ(static_cast<uint64_t>(kN), stats.received);  // no redelivery
  EXPECT_EQ(static_cast<uint64_t>(kFlow), stats.peak_held);
  EXPECT_LE(app.max_unsettled.load(), kUnsettledBound);
  EXPECT_GE(app.max_unsettled.load(), static_cast<uint64_t>(kFlow));  // the sampler saw it
#ifndef TRB_ASAN
  // The subscriber may hold about two windows of messages; well under what
  // buffering the backlog would take.
  EXPECT_LT(rss_growth, 64L * 1048576) << rss_growth;
#endif
  EXPECT_EQ(GRPC_STATUS_OK, stats.first_error.code) << stats.first_error.msg;

  trb_ps_subscriber_destroy(app.sub);
  EXPECT_EQ(0, trb_rpc_loop_live_calls(loop));
  trb_rpc_loop_destroy(loop);
  trb_rpc_channel_destroy(ch);
  trb_emulator_stop(emu);
  trb_rpc_shutdown();
}

}  // namespace
