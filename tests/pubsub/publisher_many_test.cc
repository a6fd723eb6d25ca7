// trb_ps_publish_many (src/pubsub/publisher.h): a batch of messages under
// one lock acquisition, against the in-process emulator. Checks the
// accepted prefix on a refusal, exactly one completion per accepted
// message, per-key order, and that messages after a refusal are not sent.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "google/pubsub/v1/pubsub.pb.h"
#include "src/common/alloc.h"
#include "src/emulator/emulator.h"
#include "src/pubsub/publisher.h"
#include "src/rpc/pb.h"
#include "src/rpc/rpc.h"
#include "tests/testutil/wait.h"

namespace {

// Completions by the test's message index.
struct Done {
  trb_test::Cond cond;
  std::map<int, std::vector<std::pair<grpc_status_code, std::string>>> got;
  size_t n = 0;
  std::vector<std::pair<Done*, int>> ctx;  // stable: reserved up front

  explicit Done(size_t cap) { ctx.reserve(cap); }
  void* Make(int idx) {
    ctx.emplace_back(this, idx);
    return &ctx.back();
  }
  static void Cb(void* user, grpc_status_code code, const char* message, const char* id) {
    auto* c = static_cast<std::pair<Done*, int>*>(user);
    ASSERT_NE(nullptr, message);
    c->first->cond.Update([&] {
      c->first->got[c->second].emplace_back(code, code == GRPC_STATUS_OK ? id : message);
      c->first->n++;
    });
  }
};

class PublishManyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    trb_rpc_init();
    trb_emulator_config_t cfg = {};
    cfg.host = "127.0.0.1";
    ASSERT_EQ(GRPC_STATUS_OK, trb_emulator_start(&cfg, &emu_, &st_)) << st_.msg;
    project_ = trb_emulator_project(emu_);
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_loop_create("many-test", &loop_, &st_)) << st_.msg;
    target_ = "127.0.0.1:" + std::to_string(trb_emulator_pubsub_port(emu_));
    trb_rpc_channel_config_t cc = {};
    cc.target = target_.c_str();
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_channel_create(&cc, &ch_, &st_)) << st_.msg;
    google_pubsub_v1_Topic t = google_pubsub_v1_Topic_init_zero;
    std::string tn = Name("topics/top");
    t.name = &tn[0];
    ASSERT_EQ(GRPC_STATUS_OK, trb_psemu_create_topic(trb_emulator_pubsub(emu_), &t, &st_))
        << st_.msg;
    google_pubsub_v1_Subscription s = google_pubsub_v1_Subscription_init_zero;
    std::string sn = Name("subscriptions/sub");
    s.name = &sn[0];
    s.topic = &tn[0];
    s.ack_deadline_seconds = 600;
    s.enable_message_ordering = true;
    ASSERT_EQ(GRPC_STATUS_OK,
              trb_psemu_create_subscription(trb_emulator_pubsub(emu_), &s, &st_))
        << st_.msg;
  }
  void TearDown() override {
    trb_ps_publisher_destroy(pub_);
    if (loop_) {
      EXPECT_EQ(0, trb_rpc_loop_live_calls(loop_));
    }
    trb_rpc_loop_destroy(loop_);
    trb_rpc_channel_destroy(ch_);
    trb_emulator_stop(emu_);
    trb_rpc_shutdown();
  }
  std::string Name(const std::string& rest) { return "projects/" + project_ + "/" + rest; }
  void Make(trb_ps_publisher_config_t cfg) {
    ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publisher_create(loop_, ch_, Name("topics/top").c_str(),
                                                      &cfg, &pub_, &st_))
        << st_.msg;
  }
  // Messages with data `prefix<i>`, ordering key `key` (may be NULL).
  struct Batch {
    std::vector<std::string> data;
    std::vector<trb_ps_message_t> msgs;
    std::vector<void*> users;
  };
  Batch MakeBatch(Done* d, int first, int n, const char* key) {
    Batch b;
    b.data.reserve(n);
    for (int i = 0; i < n; i++) b.data.push_back("m" + std::to_string(first + i));
    for (int i = 0; i < n; i++) {
      trb_ps_message_t m = {};
      m.data = reinterpret_cast<const uint8_t*>(b.data[i].data());
      m.data_len = b.data[i].size();
      m.ordering_key = key;
      b.msgs.push_back(m);
      b.users.push_back(d->Make(first + i));
    }
    return b;
  }
  // Pull (and ack) until `want` messages arrived or 20 s passed; data in
  // delivery order.
  std::vector<std::string> PullAll(size_t want) {
    std::vector<std::string> out;
    std::string sn = Name("subscriptions/sub");
    for (int round = 0; round < 200 && out.size() < want; round++) {
      google_pubsub_v1_PullRequest r = google_pubsub_v1_PullRequest_init_zero;
      r.subscription = &sn[0];
      r.max_messages = 1000;
      uint8_t* buf = nullptr;
      size_t len = 0;
      EXPECT_EQ(GRPC_STATUS_OK,
                trb_pb_encode(google_pubsub_v1_PullRequest_fields, &r, &buf, &len, &st_));
      trb_rpc_response_t resp = {};
      trb_rpc_call_opts_t opts = {};
      opts.timeout_ms = 10000;
      trb_rpc_unary_call(loop_, ch_, "/google.pubsub.v1.Subscriber/Pull", buf, len, &opts,
                         &resp);
      trb_free(buf);
      EXPECT_EQ(GRPC_STATUS_OK, resp.code);
      if (resp.code != GRPC_STATUS_OK) {
        trb_rpc_response_deinit(&resp);
        break;
      }
      google_pubsub_v1_PullResponse pr = google_pubsub_v1_PullResponse_init_zero;
      EXPECT_EQ(GRPC_STATUS_OK, trb_pb_decode(google_pubsub_v1_PullResponse_fields,
                                              resp.response, resp.response_len, &pr, &st_));
      std::vector<char*> acks;
      for (pb_size_t i = 0; i < pr.received_messages_count; i++) {
        const auto& m = pr.received_messages[i].message;
        out.emplace_back(reinterpret_cast<const char*>(m.data.data), m.data.len);
        acks.push_back(pr.received_messages[i].ack_id);
      }
      if (!acks.empty()) {
        google_pubsub_v1_AcknowledgeRequest ar = google_pubsub_v1_AcknowledgeRequest_init_zero;
        ar.subscription = &sn[0];
        ar.ack_ids_count = static_cast<pb_size_t>(acks.size());
        ar.ack_ids = acks.data();
        uint8_t* ab = nullptr;
        size_t al = 0;
        EXPECT_EQ(GRPC_STATUS_OK, trb_pb_encode(google_pubsub_v1_AcknowledgeRequest_fields,
                                                &ar, &ab, &al, &st_));
        trb_rpc_response_t aresp = {};
        EXPECT_EQ(GRPC_STATUS_OK,
                  trb_rpc_unary_call(loop_, ch_, "/google.pubsub.v1.Subscriber/Acknowledge",
                                     ab, al, &opts, &aresp));
        trb_free(ab);
        trb_rpc_response_deinit(&aresp);
      }
      trb_pb_release(google_pubsub_v1_PullResponse_fields, &pr);
      trb_rpc_response_deinit(&resp);
    }
    return out;
  }

  trb_status_t st_ = {};
  trb_emulator_t* emu_ = nullptr;
  trb_rpc_loop_t* loop_ = nullptr;
  trb_rpc_channel_t* ch_ = nullptr;
  trb_ps_publisher_t* pub_ = nullptr;
  std::string project_, target_;
};

TEST_F(PublishManyTest, WholeBatchAcceptedInOrderOneRequest) {
  trb_ps_publisher_config_t c = {};
  c.max_messages = 1000;
  c.max_delay_ms = 60000;  // sent by the flush below, all in one request
  c.backoff_initial_ms = 10;
  Make(c);
  const int kN = 300;
  Done d(kN);
  Batch b = MakeBatch(&d, 0, kN, "k");
  size_t acc = 12345;
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publish_many(pub_, b.msgs.data(), kN, Done::Cb,
                                                b.users.data(), &acc, &st_))
      << st_.msg;
  EXPECT_EQ(static_cast<size_t>(kN), acc);
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publisher_flush(pub_, 20000, &st_)) << st_.msg;
  {
    auto l = d.cond.Lock();
    ASSERT_EQ(static_cast<size_t>(kN), d.n);
    for (int i = 0; i < kN; i++) {
      ASSERT_EQ(1u, d.got[i].size()) << i;
      EXPECT_EQ(GRPC_STATUS_OK, d.got[i][0].first) << d.got[i][0].second;
      EXPECT_FALSE(d.got[i][0].second.empty());
    }
  }
  trb_ps_publisher_stats_t s;
  trb_ps_publisher_stats(pub_, &s);
  EXPECT_EQ(1u, s.requests);
  EXPECT_EQ(static_cast<uint64_t>(kN), s.accepted);
  auto pulled = PullAll(kN);
  ASSERT_EQ(static_cast<size_t>(kN), pulled.size());
  for (int i = 0; i < kN; i++) EXPECT_EQ("m" + std::to_string(i), pulled[i]) << i;
}

TEST_F(PublishManyTest, StopsAtTheFirstRefusedMessage) {
  trb_ps_publisher_config_t c = {};
  c.max_delay_ms = -1;
  Make(c);
  Done d(8);
  Batch b = MakeBatch(&d, 0, 4, nullptr);
  b.msgs[2].data_len = 0;  // no data, no attributes: INVALID_ARGUMENT
  size_t acc = 0;
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_ps_publish_many(pub_, b.msgs.data(), 4, Done::Cb,
                                                              b.users.data(), &acc, &st_));
  EXPECT_EQ(2u, acc);
  // The caller goes on after the refused one.
  EXPECT_EQ(GRPC_STATUS_OK, trb_ps_publish_many(pub_, b.msgs.data() + 3, 1, Done::Cb,
                                                b.users.data() + 3, &acc, &st_));
  EXPECT_EQ(1u, acc);
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publisher_flush(pub_, 20000, &st_)) << st_.msg;
  {
    auto l = d.cond.Lock();
    EXPECT_EQ(3u, d.n);
    EXPECT_EQ(0u, d.got.count(2));
    for (int i : {0, 1, 3}) ASSERT_EQ(1u, d.got[i].size()) << i;
  }
  auto pulled = PullAll(3);
  std::sort(pulled.begin(), pulled.end());
  EXPECT_EQ((std::vector<std::string>{"m0", "m1", "m3"}), pulled);
}

TEST_F(PublishManyTest, FlowControlRejectMidBatch) {
  trb_ps_publisher_config_t c = {};
  c.flow = TRB_PS_FLOW_REJECT;
  c.flow_max_messages = 3;
  c.max_delay_ms = 60000;  // nothing completes before the flush
  Make(c);
  Done d(5);
  Batch b = MakeBatch(&d, 0, 5, nullptr);
  size_t acc = 0;
  EXPECT_EQ(GRPC_STATUS_RESOURCE_EXHAUSTED, trb_ps_publish_many(pub_, b.msgs.data(), 5, Done::Cb,
                                                                b.users.data(), &acc, &st_));
  EXPECT_EQ(3u, acc);
  EXPECT_NE(nullptr, strstr(st_.msg, "flow control")) << st_.msg;
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publisher_flush(pub_, 20000, &st_)) << st_.msg;
  auto l = d.cond.Lock();
  EXPECT_EQ(3u, d.n);
  for (int i = 0; i < 3; i++) EXPECT_EQ(1u, d.got[i].size()) << i;
}

TEST_F(PublishManyTest, ArgumentsAndShutdown) {
  trb_ps_publisher_config_t c = {};
  Make(c);
  Done d(2);
  Batch b = MakeBatch(&d, 0, 2, nullptr);
  size_t acc = 7;
  EXPECT_EQ(GRPC_STATUS_OK,
            trb_ps_publish_many(pub_, nullptr, 0, Done::Cb, nullptr, &acc, &st_));
  EXPECT_EQ(0u, acc);
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            trb_ps_publish_many(pub_, b.msgs.data(), 2, Done::Cb, nullptr, &acc, &st_));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            trb_ps_publish_many(nullptr, b.msgs.data(), 2, Done::Cb, b.users.data(), &acc, &st_));
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publisher_shutdown(pub_, 10000, nullptr, &st_)) << st_.msg;
  EXPECT_EQ(GRPC_STATUS_FAILED_PRECONDITION,
            trb_ps_publish_many(pub_, b.msgs.data(), 2, Done::Cb, b.users.data(), &acc, &st_));
  EXPECT_EQ(0u, acc);
  auto l = d.cond.Lock();
  EXPECT_EQ(0u, d.n);
}

}  // namespace
