// subscriber_test.cc — the Subscriber (src/pubsub/subscriber.h) against the
// in-process emulator on 127.0.0.1:0: every message acked exactly once,
// nack → redelivery, client flow control, stream drops → reconnect, ack
// retries on UNAVAILABLE, lease extension past the ack deadline, per-ack
// results (exactly-once), stream errors reported, the keepalive timeout.
#include <gtest/gtest.h>

#include <stdlib.h>

#include <algorithm>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "google/pubsub/v1/pubsub.pb.h"
#include "src/common/alloc.h"
#include "src/emulator/emulator.h"
#include "src/emulator/faults.h"
#include "src/pubsub/publisher.h"
#include "src/pubsub/subscriber.h"
#include "src/rpc/pb.h"
#include "src/rpc/rpc.h"
#include "tests/testutil/wait.h"

namespace {

constexpr char kAcknowledge[] = "/google.pubsub.v1.Subscriber/Acknowledge";

// What the message callback saw. Modes: ack at once, hold the handle, or
// nack the first delivery of each message and ack the next.
struct Rx {
  enum Mode { kAck, kHold, kNackFirst } mode = kAck;
  trb_test::Cond cond;
  std::map<std::string, int> count;  // message data → deliveries
  std::vector<std::string> order;    // data in delivery order
  std::vector<trb_ps_ack_handle_t*> held;
  size_t deliveries = 0;
  size_t max_held = 0;

  static void Cb(void* user, const trb_ps_received_t* m, trb_ps_ack_handle_t* h) {
    auto* rx = static_cast<Rx*>(user);
    std::string data(reinterpret_cast<const char*>(m->data), m->data_len);
    EXPECT_NE(nullptr, m->message_id);
    EXPECT_STRNE("", m->message_id);
    int n = 0;
    rx->cond.Update([&] {
      n = ++rx->count[data];
      rx->order.push_back(data);
      rx->deliveries++;
      if (rx->mode == kHold) {
        rx->held.push_back(h);
        rx->max_held = std::max(rx->max_held, rx->held.size());
      }
    });
    if (rx->mode == kAck) {
      trb_ps_ack(h);
    } else if (rx->mode == kNackFirst) {
      if (n == 1) {
        trb_ps_nack(h);
      } else {
        trb_ps_ack(h);
      }
    }
  }
  size_t Distinct() {
    auto l = cond.Lock();
    return count.size();
  }
  // Settle one held handle from the test thread; false when none.
  bool AckOne() {
    trb_ps_ack_handle_t* h = nullptr;
    {
      auto l = cond.Lock();
      if (held.empty()) return false;
      h = held.front();
      held.erase(held.begin());
    }
    trb_ps_ack(h);
    return true;
  }
};

// Per-ack results (trb_ps_ack_result_cb): one Res per ack / nack call.
struct Res {
  trb_test::Cond* cond = nullptr;
  int calls = 0;
  trb_ps_ack_status_t result = TRB_PS_ACK_SUCCESS;
  grpc_status_code code = GRPC_STATUS_OK;
  std::string msg;
  std::thread::id thread;

  static void Cb(void* user, trb_ps_ack_status_t result, const trb_status_t* st) {
    auto* r = static_cast<Res*>(user);
    r->cond->Update([&] {
      r->calls++;
      r->result = result;
      r->code = st->code;
      r->msg = st->msg;
      r->thread = std::this_thread::get_id();
    });
  }
};

// Streams ended for good (trb_ps_subscriber_config_t.on_stream_error).
struct StreamErrors {
  trb_test::Cond cond;
  std::vector<grpc_status_code> codes;
  std::vector<std::string> msgs;
  std::vector<int> left;

  static void Cb(void* user, const trb_status_t* st, int streams_left) {
    auto* e = static_cast<StreamErrors*>(user);
    e->cond.Update([&] {
      e->codes.push_back(st->code);
      e->msgs.push_back(st->msg);
      e->left.push_back(streams_left);
    });
  }
};

class SubscriberTest : public ::testing::Test {
 protected:
  void Start(int ms_per_second = 0, bool exactly_once = false, bool ordered = false,
             const char* data_dir = nullptr) {
    trb_rpc_init();
    trb_emulator_config_t cfg = {};
    cfg.host = "127.0.0.1";
    cfg.test_ms_per_second = ms_per_second;
    cfg.data_dir = data_dir;
    ASSERT_EQ(GRPC_STATUS_OK, trb_emulator_start(&cfg, &emu_, &st_)) << st_.msg;
    project_ = trb_emulator_project(emu_);
    faults_ = trb_emulator_faults(emu_);
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_loop_create("sub-test", &loop_, &st_)) << st_.msg;
    target_ = "127.0.0.1:" + std::to_string(trb_emulator_pubsub_port(emu_));
    trb_rpc_channel_config_t cc = {};
    cc.target = target_.c_str();
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_channel_create(&cc, &ch_, &st_)) << st_.msg;
    google_pubsub_v1_Topic t = google_pubsub_v1_Topic_init_zero;
    std::string tn = "projects/" + project_ + "/topics/top";
    t.name = &tn[0];
    ASSERT_EQ(GRPC_STATUS_OK, trb_psemu_create_topic(trb_emulator_pubsub(emu_), &t, &st_))
        << st_.msg;
    google_pubsub_v1_Subscription s = google_pubsub_v1_Subscription_init_zero;
    sub_ = "projects/" + project_ + "/subscriptions/sub";
    s.name = &sub_[0];
    s.topic = &tn[0];
    s.ack_deadline_seconds = 10;
    s.enable_exactly_once_delivery = exactly_once;
    s.enable_message_ordering = ordered;
    ASSERT_EQ(GRPC_STATUS_OK,
              trb_psemu_create_subscription(trb_emulator_pubsub(emu_), &s, &st_))
        << st_.msg;
    trb_ps_publisher_config_t pc = {};
    pc.max_delay_ms = 1;
    ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publisher_create(loop_, ch_, tn.c_str(), &pc, &pub_, &st_))
        << st_.msg;
    started_ = true;
  }

  void TearDown() override {
    if (!started_) return;
    trb_ps_subscriber_destroy(sub_client_);
    trb_ps_publisher_destroy(pub_);
    EXPECT_EQ(0, trb_rpc_loop_live_calls(loop_));
    trb_rpc_loop_destroy(loop_);
    trb_rpc_channel_destroy(ch_);
    trb_emulator_stop(emu_);
    trb_rpc_shutdown();
  }

  void Publish(int from, int n, const char* key = nullptr) {
    for (int i = from; i < from + n; i++) {
      std::string d = "m" + std::to_string(i);
      trb_ps_message_t m = {};
      m.ordering_key = key;
      m.data = reinterpret_cast<const uint8_t*>(d.data());
      m.data_len = d.size();
      ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publish(pub_, &m, nullptr, nullptr, &st_)) << st_.msg;
    }
    ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publisher_flush(pub_, 20000, &st_)) << st_.msg;
  }

  void Subscribe(trb_ps_subscriber_config_t cfg, Rx* rx) {
    ASSERT_EQ(GRPC_STATUS_OK, trb_ps_subscriber_create(loop_, ch_, sub_.c_str(), &cfg, Rx::Cb,
                                                       rx, &sub_client_, &st_))
        << st_.msg;
    ASSERT_EQ(GRPC_STATUS_OK, trb_ps_subscriber_start(sub_client_, &st_)) << st_.msg;
  }

  trb_ps_subscriber_stats_t Stats() {
    trb_ps_subscriber_stats_t s;
    trb_ps_subscriber_stats(sub_client_, &s);
    return s;
  }

  bool WaitStats(const std::function<bool(const trb_ps_subscriber_stats_t&)>& pred,
                 int ms = 20000) {
    trb_test::Cond c;
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < end) {
      if (pred(Stats())) return true;
      c.WaitFor([] { return false; }, 2);  // poll interval, bounded by `end`
    }
    return pred(Stats());
  }

  // Take one held handle (the oldest), or nullptr.
  static trb_ps_ack_handle_t* Take(Rx* rx) {
    auto l = rx->cond.Lock();
    if (rx->held.empty()) return nullptr;
    trb_ps_ack_handle_t* h = rx->held.front();
    rx->held.erase(rx->held.begin());
    return h;
  }

  grpc_status_code DeleteSubscription() {
    google_pubsub_v1_DeleteSubscriptionRequest r =
        google_pubsub_v1_DeleteSubscriptionRequest_init_zero;
    r.subscription = &sub_[0];
    uint8_t* buf = nullptr;
    size_t len = 0;
    EXPECT_EQ(GRPC_STATUS_OK, trb_pb_encode(google_pubsub_v1_DeleteSubscriptionRequest_fields,
                                            &r, &buf, &len, &st_));
    trb_rpc_response_t resp = {};
    trb_rpc_call_opts_t opts = {};
    opts.timeout_ms = 10000;
    trb_rpc_unary_call(loop_, ch_, "/google.pubsub.v1.Subscriber/DeleteSubscription", buf, len,
                       &opts, &resp);
    trb_free(buf);
    grpc_status_code c = resp.code;
    trb_rpc_response_deinit(&resp);
    return c;
  }

  // Messages a unary Pull (return_immediately) finds in the subscription.
  size_t Backlog() {
    google_pubsub_v1_PullRequest r = google_pubsub_v1_PullRequest_init_zero;
    r.subscription = &sub_[0];
    r.max_messages = 1000;
    r.return_immediately = true;
    uint8_t* buf = nullptr;
    size_t len = 0;
    EXPECT_EQ(GRPC_STATUS_OK,
              trb_pb_encode(google_pubsub_v1_PullRequest_fields, &r, &buf, &len, &st_));
    trb_rpc_response_t resp = {};
    trb_rpc_call_opts_t opts = {};
    opts.timeout_ms = 10000;
    trb_rpc_unary_call(loop_, ch_, "/google.pubsub.v1.Subscriber/Pull", buf, len, &opts, &resp);
    trb_free(buf);
    EXPECT_EQ(GRPC_STATUS_OK, resp.code) << (resp.message ? resp.message : "");
    google_pubsub_v1_PullResponse pr = google_pubsub_v1_PullResponse_init_zero;
    size_t n = 0;
    if (resp.code == GRPC_STATUS_OK) {
      EXPECT_EQ(GRPC_STATUS_OK, trb_pb_decode(google_pubsub_v1_PullResponse_fields,
                                              resp.response, resp.response_len, &pr, &st_));
      n = pr.received_messages_count;
    }
    trb_pb_release(google_pubsub_v1_PullResponse_fields, &pr);
    trb_rpc_response_deinit(&resp);
    return n;
  }

  trb_status_t st_ = {};
  bool started_ = false;
  trb_emulator_t* emu_ = nullptr;
  trb_faults_t* faults_ = nullptr;
  trb_rpc_loop_t* loop_ = nullptr;
  trb_rpc_channel_t* ch_ = nullptr;
  trb_ps_publisher_t* pub_ = nullptr;
  trb_ps_subscriber_t* sub_client_ = nullptr;
  std::string project_, target_, sub_;
};

trb_ps_subscriber_config_t Fast() {
  trb_ps_subscriber_config_t c = {};
  c.backoff_initial_ms = 1;
  c.backoff_max_ms = 20;
  c.seed = 7;
  return c;
}

TEST_F(SubscriberTest, RejectsBadConfig) {
  Start();
  Rx rx;
  trb_ps_subscriber_config_t c = {};
  c.min_ack_deadline_s = 5;
  trb_ps_subscriber_t* s = nullptr;
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            trb_ps_subscriber_create(loop_, ch_, sub_.c_str(), &c, Rx::Cb, &rx, &s, &st_));
  EXPECT_EQ(nullptr, s);
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            trb_ps_subscriber_create(loop_, ch_, "", nullptr, Rx::Cb, &rx, &s, &st_));
}

TEST_F(SubscriberTest, ReceivesAndAcksEveryMessageExactlyOnce) {
  Start();
  Publish(0, 300);
  Rx rx;
  trb_ps_subscriber_config_t c = Fast();
  c.streams = 3;
  Subscribe(c, &rx);
  ASSERT_TRUE(rx.cond.WaitFor([&] { return rx.count.size() >= 300; }, 20000))
      << rx.count.size();
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_subscriber_stop(sub_client_, 10000, &st_)) << st_.msg;
  for (const auto& kv : rx.count) EXPECT_EQ(1, kv.second) << kv.first;
  EXPECT_EQ(300u, rx.deliveries);
  trb_ps_subscriber_stats_t s = Stats();
  EXPECT_EQ(300u, s.acked);
  EXPECT_EQ(3u, s.streams_opened);
  EXPECT_GE(s.ack_rpcs, 1u);
  EXPECT_LE(s.ack_rpcs, 300u);
  // Acks within a (scaled) second: the p99 deadline drops to the minimum.
  EXPECT_EQ(10, s.ack_deadline_s);
  EXPECT_EQ(GRPC_STATUS_OK, s.first_error.code) << s.first_error.msg;
  EXPECT_EQ(0u, Backlog());
}

// Handles are recycled (a free list bounded by max_outstanding_messages):
// messages of mixed sizes — small, one pooled size class up, and above the
// pooled limit — each arrive intact, with their attributes, through reused
// blocks (ASan poisons released blocks and the unused tail of reused ones).
TEST_F(SubscriberTest, RecycledHandlesKeepEachMessageIntact) {
  Start();
  const size_t kSizes[] = {1, 200, 3000, 70000, 20, 1500};
  std::vector<std::string> want;
  for (int i = 0; i < 60; i++) {
    std::string d = "m" + std::to_string(i) + ":";
    d += std::string(kSizes[i % 6], static_cast<char>('a' + i % 26));
    std::string v = std::string(static_cast<size_t>(i % 5) * 40, 'v');
    trb_ps_attr_t attr = {"k", v.c_str()};
    trb_ps_message_t m = {};
    m.data = reinterpret_cast<const uint8_t*>(d.data());
    m.data_len = d.size();
    m.attrs = &attr;
    m.n_attrs = 1;
    ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publish(pub_, &m, nullptr, nullptr, &st_)) << st_.msg;
    want.push_back(d + "|" + v);
  }
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publisher_flush(pub_, 20000, &st_)) << st_.msg;
  struct Seen {
    trb_test::Cond cond;
    std::map<std::string, int> count;
    static void Cb(void* user, const trb_ps_received_t* m, trb_ps_ack_handle_t* h) {
      auto* seen = static_cast<Seen*>(user);
      std::string key(reinterpret_cast<const char*>(m->data), m->data_len);
      key += "|";
      if (m->n_attrs == 1 && std::string(m->attrs[0].key) == "k") key += m->attrs[0].value;
      seen->cond.Update([&] { seen->count[key]++; });
      trb_ps_ack(h);
    }
  } seen;
  trb_ps_subscriber_config_t c = Fast();
  c.max_outstanding_messages = 3;
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_subscriber_create(loop_, ch_, sub_.c_str(), &c, Seen::Cb,
                                                     &seen, &sub_client_, &st_))
      << st_.msg;
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_subscriber_start(sub_client_, &st_)) << st_.msg;
  ASSERT_TRUE(seen.cond.WaitFor([&] { return seen.count.size() >= want.size(); }, 20000))
      << seen.count.size();
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_subscriber_stop(sub_client_, 10000, &st_)) << st_.msg;
  auto l = seen.cond.Lock();
  for (const auto& w : want) EXPECT_EQ(1, seen.count[w]) << w.substr(0, 40);
  EXPECT_EQ(want.size(), seen.count.size());
}

TEST_F(SubscriberTest, ThroughputAndAckBatchesOfAtMost1000) {
  Start();
  const int kN = 5000;
  Publish(0, kN);
  Rx rx;
  trb_ps_subscriber_config_t c = Fast();
  c.streams = 2;
  c.max_outstanding_messages = 2000;
  auto t0 = std::chrono::steady_clock::now();
  Subscribe(c, &rx);
  ASSERT_TRUE(rx.cond.WaitFor([&] { return rx.count.size() >= kN; }, 60000))
      << rx.count.size();
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_subscriber_stop(sub_client_, 20000, &st_)) << st_.msg;
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  trb_ps_subscriber_stats_t s = Stats();
  printf("subscriber: %d messages received and acked in %.3f s (%.0f msg/s), %llu Acknowledge "
         "RPCs, largest %llu ids\n",
         kN, secs, kN / secs, static_cast<unsigned long long>(s.ack_rpcs),
         static_cast<unsigned long long>(s.peak_ids_per_request));
  EXPECT_EQ(static_cast<uint64_t>(kN), s.acked);
  EXPECT_LE(s.peak_ids_per_request, 1000u);
  EXPECT_GT(s.peak_ids_per_request, 1u);  // batched
  EXPECT_GE(s.ack_rpcs, static_cast<uint64_t>(kN / 1000));
  for (const auto& kv : rx.count) EXPECT_EQ(1, kv.second) << kv.first;
  EXPECT_EQ(0u, Backlog());
}

TEST_F(SubscriberTest, NackRedelivers) {
  Start();
  Publish(0, 5);
  Rx rx;
  rx.mode = Rx::kNackFirst;
  Subscribe(Fast(), &rx);
  ASSERT_TRUE(rx.cond.WaitFor(
      [&] {
        if (rx.count.size() < 5) return false;
        for (const auto& kv : rx.count) {
          if (kv.second < 2) return false;
        }
        return true;
      },
      20000));
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_subscriber_stop(sub_client_, 10000, &st_)) << st_.msg;
  trb_ps_subscriber_stats_t s = Stats();
  EXPECT_EQ(5u, s.nacked);
  EXPECT_EQ(5u, s.acked);
  EXPECT_GE(s.modack_rpcs, 1u);
  EXPECT_EQ(0u, Backlog());
}

// trb_ps_ack_handle_message: a held message stays readable after its
// callback returned, while later responses arrive, until it is settled
// (ASan would flag a read of freed or reused memory).
TEST_F(SubscriberTest, HandleMessageReadableUntilSettled) {
  Start();
  const int kN = 50;
  for (int i = 0; i < kN; i++) {
    std::string d = "m" + std::to_string(i), v = "v" + std::to_string(i);
    trb_ps_attr_t a[2] = {{"k", v.c_str()}, {"second", "x"}};
    trb_ps_message_t m = {};
    m.data = reinterpret_cast<const uint8_t*>(d.data());
    m.data_len = d.size();
    m.attrs = a;
    m.n_attrs = 2;
    ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publish(pub_, &m, nullptr, nullptr, &st_)) << st_.msg;
  }
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publisher_flush(pub_, 20000, &st_)) << st_.msg;
  Rx rx;
  rx.mode = Rx::kHold;
  Subscribe(Fast(), &rx);
  ASSERT_TRUE(rx.cond.WaitFor([&] { return rx.deliveries >= static_cast<size_t>(kN); }, 20000))
      << rx.deliveries;
  std::vector<trb_ps_ack_handle_t*> held;
  std::vector<std::string> order;
  {
    auto l = rx.cond.Lock();
    held = rx.held;
    order = rx.order;
    rx.held.clear();
  }
  ASSERT_EQ(static_cast<size_t>(kN), held.size());
  std::map<std::string, int> ids;
  for (size_t i = 0; i < held.size(); i++) {
    const trb_ps_received_t* m = trb_ps_ack_handle_message(held[i]);
    ASSERT_NE(nullptr, m);
    std::string data(reinterpret_cast<const char*>(m->data), m->data_len);
    EXPECT_EQ(order[i], data);  // the callback's message
    ASSERT_EQ('m', data[0]);
    int k = std::atoi(data.c_str() + 1);
    ASSERT_NE(nullptr, m->message_id);
    EXPECT_STRNE("", m->message_id);
    ids[m->message_id]++;
    EXPECT_STREQ("", m->ordering_key);
    ASSERT_EQ(2u, m->n_attrs);
    std::map<std::string, std::string> attrs;
    for (size_t j = 0; j < m->n_attrs; j++) attrs[m->attrs[j].key] = m->attrs[j].value;
    EXPECT_EQ("v" + std::to_string(k), attrs["k"]);
    EXPECT_EQ("x", attrs["second"]);
    EXPECT_GT(m->publish_time_s, 0);
  }
  EXPECT_EQ(static_cast<size_t>(kN), ids.size());  // distinct ids
  for (auto* h : held) trb_ps_ack(h);
  ASSERT_TRUE(WaitStats([&](const trb_ps_subscriber_stats_t& s) {
    return s.acked == static_cast<uint64_t>(kN);
  }));
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_subscriber_stop(sub_client_, 10000, &st_)) << st_.msg;
  EXPECT_EQ(0u, Backlog());
}

TEST_F(SubscriberTest, FlowControlBoundsHeldMessages) {
  Start();
  Publish(0, 60);
  Rx rx;
  rx.mode = Rx::kHold;
  trb_ps_subscriber_config_t c = Fast();
  c.max_outstanding_messages = 4;
  c.streams = 2;
  Subscribe(c, &rx);
  // The application acks one message at a time, after the subscriber has
  // filled the flow-control window.
  while (true) {
    ASSERT_TRUE(rx.cond.WaitFor([&] { return rx.held.size() >= 4 || rx.count.size() >= 60; },
                                20000))
        << rx.count.size();
    if (!rx.AckOne()) break;
    if (rx.count.size() >= 60) {
      while (rx.AckOne()) {
      }
      break;
    }
  }
  EXPECT_EQ(60u, rx.Distinct());
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_subscriber_stop(sub_client_, 10000, &st_)) << st_.msg;
  EXPECT_EQ(4u, rx.max_held);
  EXPECT_EQ(4u, Stats().peak_held);
  for (const auto& kv : rx.count) EXPECT_EQ(1, kv.second) << kv.first;
  EXPECT_EQ(0u, Backlog());
}

TEST_F(SubscriberTest, ReconnectsAfterServerDropsStreams) {
  Start();
  Publish(0, 20);
  Rx rx;
  trb_ps_subscriber_config_t c = Fast();
  c.streams = 2;
  Subscribe(c, &rx);
  ASSERT_TRUE(rx.cond.WaitFor([&] { return rx.count.size() >= 20; }, 20000));
  // At least the stream that delivered is open on the server (the other
  // one's first request may still be on its way, and escape the drop).
  trb_faults_drop_streams(faults_, GRPC_STATUS_UNAVAILABLE, "rebalance");
  ASSERT_TRUE(WaitStats([](const trb_ps_subscriber_stats_t& s) {
    return s.reconnects >= 1 && s.streams_opened >= 2 + s.reconnects;
  }));
  Publish(20, 20);
  ASSERT_TRUE(rx.cond.WaitFor([&] { return rx.count.size() >= 40; }, 20000))
      << rx.count.size();
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_subscriber_stop(sub_client_, 10000, &st_)) << st_.msg;
  for (const auto& kv : rx.count) EXPECT_EQ(1, kv.second) << kv.first;
  EXPECT_EQ(GRPC_STATUS_OK, Stats().first_error.code) << Stats().first_error.msg;
  EXPECT_EQ(0u, Backlog());
}

TEST_F(SubscriberTest, ReconnectsAcrossEmulatorRestartLosingNothing) {
  const char* tmp = getenv("TEST_TMPDIR");
  std::string dir = std::string(tmp ? tmp : "/tmp") + "/sub-restart-XXXXXX";
  ASSERT_NE(nullptr, mkdtemp(&dir[0]));
  Start(0, false, false, dir.c_str());
  int port = trb_emulator_pubsub_port(emu_);
  Publish(0, 10);
  Rx rx;
  Subscribe(Fast(), &rx);
  ASSERT_TRUE(rx.cond.WaitFor([&] { return rx.count.size() >= 10; }, 20000));
  // The server shuts down: streams end with UNAVAILABLE, reconnects fail
  // (connection refused) until it is back on the same port and data.
  trb_emulator_stop(emu_);
  emu_ = nullptr;
  ASSERT_TRUE(WaitStats([](const trb_ps_subscriber_stats_t& s) { return s.reconnects >= 2; }));
  trb_emulator_config_t cfg = {};
  cfg.host = "127.0.0.1";
  cfg.pubsub_port = port;
  cfg.data_dir = dir.c_str();
  ASSERT_EQ(GRPC_STATUS_OK, trb_emulator_start(&cfg, &emu_, &st_)) << st_.msg;
  faults_ = trb_emulator_faults(emu_);
  Publish(10, 10);
  ASSERT_TRUE(rx.cond.WaitFor([&] { return rx.count.size() >= 20; }, 30000))
      << rx.count.size();
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_subscriber_stop(sub_client_, 10000, &st_)) << st_.msg;
  // At-least-once: an ack in flight at the shutdown may have been lost
  // (CANCELLED by the server: not retried, fact 60). No stream gave up.
  EXPECT_EQ(20u, rx.Distinct());
  std::string err = Stats().first_error.msg;
  EXPECT_EQ(std::string::npos, err.find("StreamingPull")) << err;
  EXPECT_EQ(0u, Backlog());
}

TEST_F(SubscriberTest, AcknowledgeRetriedOnUnavailable) {
  Start();
  ASSERT_EQ(GRPC_STATUS_OK,
            trb_faults_add_error(faults_, kAcknowledge, 2, GRPC_STATUS_UNAVAILABLE, "flaky", &st_));
  Publish(0, 10);
  Rx rx;
  Subscribe(Fast(), &rx);
  ASSERT_TRUE(rx.cond.WaitFor([&] { return rx.count.size() >= 10; }, 20000));
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_subscriber_stop(sub_client_, 10000, &st_)) << st_.msg;
  trb_ps_subscriber_stats_t s = Stats();
  EXPECT_EQ(2, trb_faults_injected(faults_));
  EXPECT_GE(s.ack_retries, 2u);
  EXPECT_EQ(0u, s.ack_failures);
  EXPECT_EQ(10u, rx.deliveries);
  EXPECT_EQ(0u, Backlog());
}

TEST_F(SubscriberTest, LeaseExtensionPreventsRedelivery) {
  // One second of ack deadline lasts 10 ms on both sides: the initial 60 s
  // stream deadline expires after 600 ms unless extended.
  Start(10);
  Publish(0, 1);
  Rx rx;
  rx.mode = Rx::kHold;
  trb_ps_subscriber_config_t c = Fast();
  c.ms_per_second = 10;
  Subscribe(c, &rx);
  ASSERT_TRUE(rx.cond.WaitFor([&] { return rx.held.size() == 1; }, 20000));
  // Held for more than three deadlines.
  ASSERT_TRUE(WaitStats([](const trb_ps_subscriber_stats_t& s) { return s.extensions >= 4; }));
  EXPECT_EQ(1u, rx.deliveries);
  EXPECT_EQ(0u, Backlog());
  ASSERT_TRUE(rx.AckOne());
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_subscriber_stop(sub_client_, 10000, &st_)) << st_.msg;
  EXPECT_EQ(1u, rx.deliveries);
  EXPECT_EQ(0u, Backlog());
}

TEST_F(SubscriberTest, ExactlyOnceExpiredAckIdIsPermanentFailureNotRetried) {
  // Exactly-once: deadline >= 60 s = 600 ms here. The lease may be extended
  // for 50 ms only, so the held message expires and is redelivered; acking
  // the stale copy fails with PERMANENT_FAILURE_INVALID_ACK_ID.
  Start(10, true);
  Publish(0, 1);
  Rx rx;
  rx.mode = Rx::kHold;
  trb_ps_subscriber_config_t c = Fast();
  c.ms_per_second = 10;
  c.max_extension_ms = 50;
  Subscribe(c, &rx);
  ASSERT_TRUE(rx.cond.WaitFor([&] { return rx.held.size() == 2; }, 20000)) << rx.held.size();
  EXPECT_EQ(60, Stats().ack_deadline_s);
  ASSERT_TRUE(rx.AckOne());  // the stale delivery
  ASSERT_TRUE(WaitStats([](const trb_ps_subscriber_stats_t& s) { return s.ack_invalid >= 1; }));
  ASSERT_TRUE(rx.AckOne());  // the live one
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_subscriber_stop(sub_client_, 10000, &st_)) << st_.msg;
  trb_ps_subscriber_stats_t s = Stats();
  EXPECT_EQ(1u, s.ack_invalid);
  EXPECT_EQ(1u, s.ack_failures);
  EXPECT_EQ(0u, s.ack_retries);
  EXPECT_EQ(2u, s.acked);
  EXPECT_EQ(0u, Backlog());
}

TEST_F(SubscriberTest, OrderingKeyDeliveredInPublishOrder) {
  Start(0, false, true);
  Publish(0, 200, "k");
  Rx rx;
  trb_ps_subscriber_config_t c = Fast();
  c.streams = 2;
  Subscribe(c, &rx);
  ASSERT_TRUE(rx.cond.WaitFor([&] { return rx.count.size() >= 200; }, 20000));
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_subscriber_stop(sub_client_, 10000, &st_)) << st_.msg;
  ASSERT_EQ(200u, rx.order.size());
  for (int i = 0; i < 200; i++) EXPECT_EQ("m" + std::to_string(i), rx.order[i]);
  EXPECT_EQ(0u, Backlog());
}

TEST_F(SubscriberTest, MissingSubscriptionEndsStreamsWithoutRetry) {
  Start();
  Rx rx;
  trb_ps_subscriber_config_t c = Fast();
  c.streams = 2;
  std::string missing = "projects/" + project_ + "/subscriptions/nope";
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_subscriber_create(loop_, ch_, missing.c_str(), &c, Rx::Cb,
                                                     &rx, &sub_client_, &st_));
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_subscriber_start(sub_client_, &st_));
  ASSERT_TRUE(WaitStats([](const trb_ps_subscriber_stats_t& s) {
    return s.first_error.code != GRPC_STATUS_OK;
  }));
  EXPECT_EQ(GRPC_STATUS_NOT_FOUND, Stats().first_error.code) << Stats().first_error.msg;
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_subscriber_stop(sub_client_, 10000, &st_)) << st_.msg;
  EXPECT_EQ(2u, Stats().streams_opened);
  EXPECT_EQ(0u, Stats().reconnects);
  EXPECT_EQ(GRPC_STATUS_FAILED_PRECONDITION, trb_ps_subscriber_start(sub_client_, &st_));
}

TEST_F(SubscriberTest, StopNacksMessagesStillHeld) {
  Start();
  Publish(0, 3);
  Rx rx;
  rx.mode = Rx::kHold;
  Subscribe(Fast(), &rx);
  ASSERT_TRUE(rx.cond.WaitFor([&] { return rx.held.size() == 3; }, 20000));
  EXPECT_EQ(GRPC_STATUS_DEADLINE_EXCEEDED, trb_ps_subscriber_stop(sub_client_, 50, &st_));
  EXPECT_EQ(3u, Stats().nacked);
  // Nacked: available again at once (the nack RPC may still be in flight
  // after the deadline; an empty Pull leases nothing).
  size_t found = 0;
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (found < 3 && std::chrono::steady_clock::now() < end) found += Backlog();
  EXPECT_EQ(3u, found);
  while (rx.AckOne()) {  // settling abandoned handles only frees them
  }
}

}  // namespace

namespace {

TEST_F(SubscriberTest, ExactlyOnceAckResultsStaleIdInvalidLiveIdSuccess) {
  // As ExactlyOnceExpiredAckIdIsPermanentFailureNotRetried, with results:
  // the stale delivery's ack is reported INVALID_ACK_ID once, the live
  // one's SUCCESS once, both on the loop thread.
  Start(10, true);
  Publish(0, 1);
  Rx rx;
  rx.mode = Rx::kHold;
  trb_ps_subscriber_config_t c = Fast();
  c.ms_per_second = 10;
  c.max_extension_ms = 50;
  Subscribe(c, &rx);
  ASSERT_TRUE(rx.cond.WaitFor([&] { return rx.held.size() == 2; }, 20000)) << rx.held.size();
  trb_test::Cond cond;
  Res stale, live;
  stale.cond = live.cond = &cond;
  trb_ps_ack_with_result(Take(&rx), Res::Cb, &stale);
  ASSERT_TRUE(cond.WaitFor([&] { return stale.calls > 0; }, 20000));
  trb_ps_ack_with_result(Take(&rx), Res::Cb, &live);
  ASSERT_TRUE(cond.WaitFor([&] { return live.calls > 0; }, 20000));
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_subscriber_stop(sub_client_, 10000, &st_)) << st_.msg;
  trb_ps_subscriber_destroy(sub_client_);
  sub_client_ = nullptr;
  EXPECT_EQ(1, stale.calls);
  EXPECT_EQ(TRB_PS_ACK_INVALID_ACK_ID, stale.result);
  EXPECT_NE(GRPC_STATUS_OK, stale.code);
  EXPECT_NE(std::string::npos, stale.msg.find("PERMANENT_FAILURE_INVALID_ACK_ID")) << stale.msg;
  EXPECT_NE(std::this_thread::get_id(), stale.thread);
  EXPECT_EQ(1, live.calls);
  EXPECT_EQ(TRB_PS_ACK_SUCCESS, live.result) << live.msg;
  EXPECT_EQ(GRPC_STATUS_OK, live.code);
  EXPECT_EQ(0u, Backlog());
}

TEST_F(SubscriberTest, ExactlyOnceTransientAckFailuresRetriedThenSuccess) {
  // Two Acknowledge calls fail with UNAVAILABLE (retryable): the results
  // wait for the retry that succeeds; every message is reported SUCCESS
  // exactly once and none comes back.
  Start(0, true);
  ASSERT_EQ(GRPC_STATUS_OK,
            trb_faults_add_error(faults_, kAcknowledge, 2, GRPC_STATUS_UNAVAILABLE, "flaky", &st_));
  Publish(0, 20);
  Rx rx;
  rx.mode = Rx::kHold;
  Subscribe(Fast(), &rx);
  ASSERT_TRUE(rx.cond.WaitFor([&] { return rx.held.size() == 20; }, 20000)) << rx.held.size();
  trb_test::Cond cond;
  std::vector<Res> res(20);
  for (auto& r : res) {
    r.cond = &cond;
    trb_ps_ack_with_result(Take(&rx), Res::Cb, &r);
  }
  ASSERT_TRUE(cond.WaitFor(
      [&] {
        for (auto& r : res) {
          if (r.calls == 0) return false;
        }
        return true;
      },
      20000));
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_subscriber_stop(sub_client_, 10000, &st_)) << st_.msg;
  trb_ps_subscriber_destroy(sub_client_);
  sub_client_ = nullptr;
  EXPECT_EQ(2, trb_faults_injected(faults_));
  for (auto& r : res) {
    EXPECT_EQ(1, r.calls);
    EXPECT_EQ(TRB_PS_ACK_SUCCESS, r.result) << r.msg;
  }
  EXPECT_EQ(20u, rx.deliveries);
  EXPECT_EQ(0u, Backlog());
}

TEST_F(SubscriberTest, AckResultsReportFinalFailures) {
  // Without exactly-once: PERMISSION_DENIED is final at once; UNAVAILABLE
  // past ack_retry_deadline_ms is reported OTHER with its code; a nack is
  // reported SUCCESS.
  Start();
  Publish(0, 3);
  Rx rx;
  rx.mode = Rx::kHold;
  trb_ps_subscriber_config_t c = Fast();
  c.ack_retry_deadline_ms = 100;
  Subscribe(c, &rx);
  ASSERT_TRUE(rx.cond.WaitFor([&] { return rx.held.size() == 3; }, 20000)) << rx.held.size();
  trb_test::Cond cond;
  Res denied, exhausted, nacked;
  denied.cond = exhausted.cond = nacked.cond = &cond;
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_add_error(faults_, kAcknowledge, 1,
                                                 GRPC_STATUS_PERMISSION_DENIED, "no", &st_));
  trb_ps_ack_with_result(Take(&rx), Res::Cb, &denied);
  ASSERT_TRUE(cond.WaitFor([&] { return denied.calls > 0; }, 20000));
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_add_error(faults_, kAcknowledge, -1,
                                                 GRPC_STATUS_UNAVAILABLE, "down", &st_));
  trb_ps_ack_with_result(Take(&rx), Res::Cb, &exhausted);
  ASSERT_TRUE(cond.WaitFor([&] { return exhausted.calls > 0; }, 20000));
  trb_faults_clear(faults_);
  trb_ps_nack_with_result(Take(&rx), Res::Cb, &nacked);
  ASSERT_TRUE(cond.WaitFor([&] { return nacked.calls > 0; }, 20000));
  // The nacked message comes back; the others stay leased (their acks
  // failed, their leases are no longer extended).
  ASSERT_TRUE(rx.cond.WaitFor([&] { return rx.deliveries >= 4; }, 20000));
  trb_ps_subscriber_stop(sub_client_, 0, &st_);
  while (rx.AckOne()) {
  }
  trb_ps_subscriber_destroy(sub_client_);
  sub_client_ = nullptr;
  EXPECT_EQ(1, denied.calls);
  EXPECT_EQ(TRB_PS_ACK_PERMISSION_DENIED, denied.result);
  EXPECT_EQ(GRPC_STATUS_PERMISSION_DENIED, denied.code);
  EXPECT_EQ(1, exhausted.calls);
  EXPECT_EQ(TRB_PS_ACK_OTHER, exhausted.result);
  EXPECT_EQ(GRPC_STATUS_UNAVAILABLE, exhausted.code);
  EXPECT_NE(std::string::npos, exhausted.msg.find("down")) << exhausted.msg;
  EXPECT_EQ(1, nacked.calls);
  EXPECT_EQ(TRB_PS_ACK_SUCCESS, nacked.result) << nacked.msg;
  EXPECT_EQ(4u, rx.deliveries);
}

TEST_F(SubscriberTest, AckResultAfterStopGaveUpIsStoppedOnCallerThread) {
  Start();
  Publish(0, 1);
  Rx rx;
  rx.mode = Rx::kHold;
  Subscribe(Fast(), &rx);
  ASSERT_TRUE(rx.cond.WaitFor([&] { return rx.held.size() == 1; }, 20000));
  EXPECT_EQ(GRPC_STATUS_DEADLINE_EXCEEDED, trb_ps_subscriber_stop(sub_client_, 20, &st_));
  trb_test::Cond cond;
  Res r;
  r.cond = &cond;
  trb_ps_ack_with_result(Take(&rx), Res::Cb, &r);
  EXPECT_EQ(1, r.calls);  // synchronously
  EXPECT_EQ(TRB_PS_ACK_STOPPED, r.result);
  EXPECT_EQ(GRPC_STATUS_CANCELLED, r.code);
  EXPECT_EQ(std::this_thread::get_id(), r.thread);
}

TEST_F(SubscriberTest, AckResultStillRetryingAtDestroyIsStopped) {
  // Every Acknowledge fails with UNAVAILABLE (retried for 60 s): stop gives
  // up at its deadline, destroy reports the ack as STOPPED, once, on the
  // destroying thread.
  Start();
  Publish(0, 1);
  Rx rx;
  rx.mode = Rx::kHold;
  Subscribe(Fast(), &rx);
  ASSERT_TRUE(rx.cond.WaitFor([&] { return rx.held.size() == 1; }, 20000));
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_add_error(faults_, kAcknowledge, -1,
                                                 GRPC_STATUS_UNAVAILABLE, "down", &st_));
  trb_test::Cond cond;
  Res r;
  r.cond = &cond;
  trb_ps_ack_with_result(Take(&rx), Res::Cb, &r);
  ASSERT_TRUE(WaitStats([](const trb_ps_subscriber_stats_t& s) { return s.ack_retries >= 1; }));
  EXPECT_EQ(GRPC_STATUS_DEADLINE_EXCEEDED, trb_ps_subscriber_stop(sub_client_, 50, &st_));
  EXPECT_EQ(0, r.calls);
  trb_ps_subscriber_destroy(sub_client_);
  sub_client_ = nullptr;
  EXPECT_EQ(1, r.calls);
  EXPECT_EQ(TRB_PS_ACK_STOPPED, r.result);
  EXPECT_EQ(GRPC_STATUS_CANCELLED, r.code);
  EXPECT_EQ(std::this_thread::get_id(), r.thread);
  trb_faults_clear(faults_);
}

TEST_F(SubscriberTest, DeletedSubscriptionReportedOncePerStream) {
  Start();
  Publish(0, 5);
  Rx rx;
  StreamErrors errs;
  trb_ps_subscriber_config_t c = Fast();
  c.streams = 2;
  c.on_stream_error = StreamErrors::Cb;
  c.on_stream_error_user = &errs;
  Subscribe(c, &rx);
  ASSERT_TRUE(rx.cond.WaitFor([&] { return rx.count.size() >= 5; }, 20000));
  // Both streams are open on the server once each has had a response.
  ASSERT_TRUE(WaitStats([](const trb_ps_subscriber_stats_t& s) { return s.streams_opened == 2; }));
  ASSERT_EQ(GRPC_STATUS_OK, DeleteSubscription());
  ASSERT_TRUE(errs.cond.WaitFor([&] { return errs.codes.size() >= 2; }, 20000))
      << errs.codes.size();
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_subscriber_stop(sub_client_, 10000, &st_)) << st_.msg;
  trb_ps_subscriber_stats_t s = Stats();
  auto l = errs.cond.Lock();
  ASSERT_EQ(2u, errs.codes.size());
  for (size_t i = 0; i < 2; i++) {
    EXPECT_EQ(GRPC_STATUS_NOT_FOUND, errs.codes[i]);
    EXPECT_EQ(0u, errs.msgs[i].rfind("StreamingPull: ", 0)) << errs.msgs[i];
  }
  EXPECT_EQ(1, errs.left[0]);
  EXPECT_EQ(0, errs.left[1]);
  EXPECT_EQ(2u, s.streams_failed);
  EXPECT_EQ(0u, s.reconnects);
  EXPECT_EQ(GRPC_STATUS_NOT_FOUND, s.first_error.code);
}

TEST_F(SubscriberTest, KeepaliveTimeoutReopensStalledStream) {
  // The server stalls every new StreamingPull for 1 s (fault latency):
  // pings sent every 20 ms go unanswered, so after 100 ms the client
  // cancels the stream and reopens it. Once the stall is removed, a stream
  // answers and messages flow. A stream cancelled during its stall may
  // still be registered (its first request read) before its cancellation
  // is, and lease messages that then wait for their ack deadline (as on the
  // real service): one second of deadline lasts 10 ms here, so they come
  // back within a second.
  Start(10);
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_set_latency(
                                faults_, "/google.pubsub.v1.Subscriber/StreamingPull", 1000, &st_));
  Rx rx;
  trb_ps_subscriber_config_t c = Fast();
  c.heartbeat_ms = 20;
  c.keepalive_timeout_ms = 100;
  c.ms_per_second = 10;
  Subscribe(c, &rx);
  ASSERT_TRUE(
      WaitStats([](const trb_ps_subscriber_stats_t& s) { return s.keepalive_timeouts >= 1; }));
  EXPECT_TRUE(WaitStats([](const trb_ps_subscriber_stats_t& s) { return s.streams_opened >= 2; }));
  trb_faults_clear(faults_);
  Publish(0, 10);
  ASSERT_TRUE(rx.cond.WaitFor([&] { return rx.count.size() >= 10; }, 30000))
      << rx.count.size() << " opened " << Stats().streams_opened << " reconnects "
      << Stats().reconnects << " keepalive " << Stats().keepalive_timeouts << " received "
      << Stats().received << " err " << Stats().first_error.msg;
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_subscriber_stop(sub_client_, 10000, &st_)) << st_.msg;
  EXPECT_EQ(GRPC_STATUS_OK, Stats().first_error.code) << Stats().first_error.msg;
  EXPECT_EQ(0u, Backlog());
}

TEST_F(SubscriberTest, KeepaliveAnsweredKeepsStreamOpen) {
  // Pings every 10 ms, answered by the server (protocol_version=1): no
  // timeout in 100 pings' time (over three keepalive timeouts).
  Start();
  Rx rx;
  trb_ps_subscriber_config_t c = Fast();
  c.heartbeat_ms = 10;
  c.keepalive_timeout_ms = 300;
  Subscribe(c, &rx);
  Publish(0, 1);
  ASSERT_TRUE(rx.cond.WaitFor([&] { return rx.count.size() >= 1; }, 20000));
  trb_test::Cond idle;
  idle.WaitFor([] { return false; }, 1000);  // elapsed time is the subject
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_subscriber_stop(sub_client_, 10000, &st_)) << st_.msg;
  EXPECT_EQ(0u, Stats().keepalive_timeouts);
  EXPECT_EQ(1u, Stats().streams_opened);
}

}  // namespace
