// publisher_test.cc — the Publisher (src/pubsub/publisher.h) against the
// in-process emulator on 127.0.0.1:0: exactly-once completion with ids,
// batching limits, flow control, retries, ordering keys, flush/shutdown,
// trb_ps_publish_many.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "google/pubsub/v1/pubsub.pb.h"
#include "src/common/alloc.h"
#include "src/emulator/emulator.h"
#include "src/emulator/faults.h"
#include "src/pubsub/codec.h"
#include "src/pubsub/publisher.h"
#include "src/rpc/pb.h"
#include "src/rpc/rpc.h"
#include "tests/testutil/wait.h"

namespace {

constexpr char kPublish[] = "/google.pubsub.v1.Publisher/Publish";

// Completion record of every message, by the test's own index.
struct Done {
  trb_test::Cond cond;
  std::map<int, std::vector<std::pair<grpc_status_code, std::string>>> got;  // idx → calls
  std::vector<int> order;  // completion order
  size_t n = 0;

  struct Ctx {
    Done* d;
    int idx;
  };
  std::vector<std::unique_ptr<Ctx>> ctxs;

  void* Make(int idx) {
    ctxs.emplace_back(new Ctx{this, idx});
    return ctxs.back().get();
  }
  static void Cb(void* user, grpc_status_code code, const char* message, const char* id) {
    auto* c = static_cast<Ctx*>(user);
    EXPECT_NE(nullptr, message);
    if (code == GRPC_STATUS_OK) {
      EXPECT_NE(nullptr, id);
    } else {
      EXPECT_EQ(nullptr, id);
    }
    c->d->cond.Update([&] {
      c->d->got[c->idx].emplace_back(code, code == GRPC_STATUS_OK ? id : message);
      c->d->order.push_back(c->idx);
      c->d->n++;
    });
  }
  bool WaitN(size_t want, int ms = 20000) {
    return cond.WaitFor([&] { return n >= want; }, ms);
  }
};

// A callback that blocks the loop thread until released: holds back every
// later completion on the loop, deterministically.
struct Gate {
  trb_test::Cond cond;
  bool entered = false, open = false;
  static void Cb(void* user, grpc_status_code, const char*, const char*) {
    auto* g = static_cast<Gate*>(user);
    g->cond.Update([&] { g->entered = true; });
    g->cond.WaitFor([&] { return g->open; }, 30000);
  }
  void Open() {
    cond.Update([&] { open = true; });
  }
};

struct Pulled {
  std::string data, id, key;
  std::map<std::string, std::string> attrs;
};

class PublisherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    trb_rpc_init();
    trb_emulator_config_t cfg = {};
    cfg.host = "127.0.0.1";
    ASSERT_EQ(GRPC_STATUS_OK, trb_emulator_start(&cfg, &emu_, &st_)) << st_.msg;
    project_ = trb_emulator_project(emu_);
    faults_ = trb_emulator_faults(emu_);
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_loop_create("pub-test", &loop_, &st_)) << st_.msg;
    target_ = "127.0.0.1:" + std::to_string(trb_emulator_pubsub_port(emu_));
    trb_rpc_channel_config_t cc = {};
    cc.target = target_.c_str();
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_channel_create(&cc, &ch_, &st_)) << st_.msg;
    CreateTopic("top");
    CreateSub("sub", "top", false);
    CreateSub("sub-ordered", "top", true);
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

  std::string Topic(const std::string& id) { return "projects/" + project_ + "/topics/" + id; }
  std::string Sub(const std::string& id) {
    return "projects/" + project_ + "/subscriptions/" + id;
  }

  void CreateTopic(const std::string& id) {
    google_pubsub_v1_Topic t = google_pubsub_v1_Topic_init_zero;
    std::string name = Topic(id);
    t.name = &name[0];
    ASSERT_EQ(GRPC_STATUS_OK, trb_psemu_create_topic(trb_emulator_pubsub(emu_), &t, &st_))
        << st_.msg;
  }
  void CreateSub(const std::string& id, const std::string& topic, bool ordered) {
    google_pubsub_v1_Subscription s = google_pubsub_v1_Subscription_init_zero;
    std::string name = Sub(id), tn = Topic(topic);
    s.name = &name[0];
    s.topic = &tn[0];
    s.ack_deadline_seconds = 600;
    s.enable_message_ordering = ordered;
    ASSERT_EQ(GRPC_STATUS_OK,
              trb_psemu_create_subscription(trb_emulator_pubsub(emu_), &s, &st_))
        << st_.msg;
  }

  void Make(trb_ps_publisher_config_t cfg, const std::string& topic = "top") {
    ASSERT_EQ(GRPC_STATUS_OK,
              trb_ps_publisher_create(loop_, ch_, Topic(topic).c_str(), &cfg, &pub_, &st_))
        << st_.msg;
  }

  grpc_status_code Pub(const std::string& data, Done* d, int idx, const char* key = nullptr,
                       const std::vector<trb_ps_attr_t>& attrs = {}) {
    trb_ps_message_t m = {};
    m.data = reinterpret_cast<const uint8_t*>(data.data());
    m.data_len = data.size();
    m.attrs = attrs.empty() ? nullptr : attrs.data();
    m.n_attrs = attrs.size();
    m.ordering_key = key;
    return trb_ps_publish(pub_, &m, d ? Done::Cb : nullptr, d ? d->Make(idx) : nullptr, &st_);
  }

  // Unary Pull (return_immediately) + Acknowledge until `want` messages
  // arrived or 20 s passed.
  std::vector<Pulled> PullAll(const std::string& sub, size_t want) {
    std::vector<Pulled> out;
    std::string sn = Sub(sub);
    int64_t end = trb_clock_mono_ms_for_test() + 20000;
    while (out.size() < want && trb_clock_mono_ms_for_test() < end) {
      google_pubsub_v1_PullRequest r = google_pubsub_v1_PullRequest_init_zero;
      r.subscription = &sn[0];
      r.max_messages = 1000;
      r.return_immediately = false;  // server holds the call briefly
      uint8_t* buf = nullptr;
      size_t len = 0;
      EXPECT_EQ(GRPC_STATUS_OK, trb_pb_encode(google_pubsub_v1_PullRequest_fields, &r, &buf,
                                              &len, &st_));
      trb_rpc_response_t resp = {};
      trb_rpc_call_opts_t opts = {};
      opts.timeout_ms = 10000;
      trb_rpc_unary_call(loop_, ch_, "/google.pubsub.v1.Subscriber/Pull", buf, len, &opts,
                         &resp);
      trb_free(buf);
      EXPECT_EQ(GRPC_STATUS_OK, resp.code) << (resp.message ? resp.message : "");
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
        Pulled p;
        p.data.assign(reinterpret_cast<const char*>(m.data.data), m.data.len);
        p.id = m.message_id ? m.message_id : "";
        p.key = m.ordering_key ? m.ordering_key : "";
        for (pb_size_t a = 0; a < m.attributes_count; a++) {
          p.attrs[m.attributes[a].key] = m.attributes[a].value ? m.attributes[a].value : "";
        }
        out.push_back(p);
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

  static int64_t trb_clock_mono_ms_for_test() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

  trb_ps_publisher_stats_t Stats() {
    trb_ps_publisher_stats_t s;
    trb_ps_publisher_stats(pub_, &s);
    return s;
  }

  trb_status_t st_ = {};
  trb_emulator_t* emu_ = nullptr;
  trb_faults_t* faults_ = nullptr;
  trb_rpc_loop_t* loop_ = nullptr;
  trb_rpc_channel_t* ch_ = nullptr;
  trb_ps_publisher_t* pub_ = nullptr;
  std::string project_, target_;
};

trb_ps_publisher_config_t Fast() {
  trb_ps_publisher_config_t c = {};
  c.backoff_initial_ms = 1;
  c.backoff_max_ms = 5;
  c.backoff_multiplier = 2;
  c.seed = 42;
  return c;
}

TEST(PublisherCodecTest, RequestRoundTripsThroughNanopb) {
  trb_ps_attr_t attrs[] = {{"k1", "v1"}, {"k2", ""}};
  const uint8_t data[] = {0, 1, 2, 3};
  size_t n = trb_ps_msg_encoded_len(data, 4, attrs, 2, "ok");
  std::vector<uint8_t> m(n);
  ASSERT_EQ(n, trb_ps_msg_encode(m.data(), data, 4, attrs, 2, "ok"));
  const uint8_t* msgs[] = {m.data(), m.data()};
  size_t lens[] = {n, n};
  const char* topic = "projects/p/topics/t";
  size_t total = trb_ps_request_topic_cost(topic) + 2 * trb_ps_request_msg_cost(n);
  std::vector<uint8_t> req(total);
  ASSERT_EQ(total, trb_ps_request_encode(req.data(), topic, msgs, lens, 2));
  google_pubsub_v1_PublishRequest r = google_pubsub_v1_PublishRequest_init_zero;
  trb_status_t st;
  ASSERT_EQ(GRPC_STATUS_OK,
            trb_pb_decode(google_pubsub_v1_PublishRequest_fields, req.data(), total, &r, &st));
  EXPECT_STREQ(topic, r.topic);
  ASSERT_EQ(2u, r.messages_count);
  EXPECT_EQ(4u, r.messages[1].data.len);
  EXPECT_EQ(0, memcmp(data, r.messages[1].data.data, 4));
  ASSERT_EQ(2u, r.messages[1].attributes_count);
  EXPECT_STREQ("k1", r.messages[1].attributes[0].key);
  EXPECT_STREQ("v1", r.messages[1].attributes[0].value);
  EXPECT_STREQ("ok", r.messages[1].ordering_key);
  trb_pb_release(google_pubsub_v1_PublishRequest_fields, &r);

  // Response ids, with an unknown varint field skipped; truncation refused.
  const uint8_t resp[] = {0x0a, 2, 'a', 'b', 0x10, 7, 0x0a, 1, 'c'};
  std::vector<std::string> ids;
  size_t n_ids = 0;
  ASSERT_EQ(GRPC_STATUS_OK,
            trb_ps_response_ids(
                resp, sizeof(resp),
                [](void* u, size_t, const char* id, size_t l) {
                  static_cast<std::vector<std::string>*>(u)->emplace_back(id, l);
                },
                &ids, &n_ids, &st));
  EXPECT_EQ(2u, n_ids);
  EXPECT_EQ((std::vector<std::string>{"ab", "c"}), ids);
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            trb_ps_response_ids(resp, 3, nullptr, nullptr, &n_ids, &st));
}

// Every prefix of a response and random bytes: OK or INVALID_ARGUMENT, never
// a read past the end (ASan) or an id outside the buffer.
TEST(PublisherCodecTest, ResponseParserSurvivesTruncationAndGarbage) {
  std::vector<uint8_t> resp;
  for (int i = 0; i < 20; i++) {
    std::string id = std::to_string(1000000 + i);
    resp.push_back(0x0a);
    resp.push_back(static_cast<uint8_t>(id.size()));
    resp.insert(resp.end(), id.begin(), id.end());
  }
  struct Span {
    const uint8_t* lo;
    const uint8_t* hi;
  };
  auto check = [](void* u, size_t, const char* id, size_t l) {
    auto* sp = static_cast<Span*>(u);
    const uint8_t* p = reinterpret_cast<const uint8_t*>(id);
    EXPECT_TRUE(p >= sp->lo && p + l <= sp->hi);
  };
  trb_status_t st;
  for (size_t len = 0; len <= resp.size(); len++) {
    std::vector<uint8_t> prefix(resp.begin(), resp.begin() + static_cast<long>(len));
    Span sp{prefix.data(), prefix.data() + prefix.size()};
    size_t n = 0;
    grpc_status_code rc = trb_ps_response_ids(prefix.data(), prefix.size(), check, &sp, &n, &st);
    bool boundary = len % 9 == 0;  // each entry is 9 bytes
    EXPECT_EQ(boundary ? GRPC_STATUS_OK : GRPC_STATUS_INVALID_ARGUMENT, rc) << len;
    if (boundary) {
      EXPECT_EQ(len / 9, n);
    }
  }
  uint64_t x = 88172645463325252ull;
  for (int round = 0; round < 2000; round++) {
    std::vector<uint8_t> junk(static_cast<size_t>(round % 64));
    for (auto& b : junk) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      b = static_cast<uint8_t>(x);
    }
    Span sp{junk.data(), junk.data() + junk.size()};
    size_t n = 0;
    grpc_status_code rc = trb_ps_response_ids(junk.data(), junk.size(), check, &sp, &n, &st);
    EXPECT_TRUE(rc == GRPC_STATUS_OK || rc == GRPC_STATUS_INVALID_ARGUMENT);
  }
}

TEST_F(PublisherTest, EveryMessagePublishedExactlyOnceWithItsId) {
  Make(Fast());
  Done d;
  const int kN = 1500;
  for (int i = 0; i < kN; i++) {
    std::string a = std::to_string(i);
    std::vector<trb_ps_attr_t> attrs = {{"i", a.c_str()}};
    ASSERT_EQ(GRPC_STATUS_OK, Pub("m" + a, &d, i, nullptr, attrs)) << st_.msg;
  }
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publisher_flush(pub_, 20000, &st_)) << st_.msg;
  // flush returns after every callback has returned.
  std::map<std::string, int> id_to_idx;
  {
    auto l = d.cond.Lock();
    ASSERT_EQ(static_cast<size_t>(kN), d.n);
    for (int i = 0; i < kN; i++) {
      ASSERT_EQ(1u, d.got[i].size()) << i;
      ASSERT_EQ(GRPC_STATUS_OK, d.got[i][0].first);
      EXPECT_FALSE(d.got[i][0].second.empty());
      EXPECT_TRUE(id_to_idx.emplace(d.got[i][0].second, i).second) << "duplicate id";
    }
  }
  auto pulled = PullAll("sub", kN);
  ASSERT_EQ(static_cast<size_t>(kN), pulled.size());
  std::set<std::string> seen;
  for (const auto& p : pulled) {
    ASSERT_TRUE(seen.insert(p.id).second);
    auto it = id_to_idx.find(p.id);
    ASSERT_NE(id_to_idx.end(), it) << p.id;
    EXPECT_EQ("m" + std::to_string(it->second), p.data);
    EXPECT_EQ(std::to_string(it->second), p.attrs.at("i"));
  }
  trb_ps_publisher_stats_t s;
  EXPECT_EQ(GRPC_STATUS_OK, trb_ps_publisher_shutdown(pub_, 10000, &s, &st_)) << st_.msg;
  EXPECT_EQ(static_cast<uint64_t>(kN), s.accepted);
  EXPECT_EQ(static_cast<uint64_t>(kN), s.succeeded);
  EXPECT_EQ(0u, s.failed);
  EXPECT_GE(s.requests, static_cast<uint64_t>(kN / 100));
}

TEST_F(PublisherTest, LocalValidationIsInvalidArgument) {
  Make(Fast());
  Done d;
  trb_ps_message_t m = {};
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_ps_publish(pub_, &m, Done::Cb, d.Make(0), &st_));
  std::vector<std::string> keys;
  std::vector<trb_ps_attr_t> many;
  for (int i = 0; i < 101; i++) keys.push_back("k" + std::to_string(i));
  for (auto& k : keys) many.push_back({k.c_str(), "v"});
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, Pub("x", &d, 1, nullptr, many));
  many.pop_back();
  EXPECT_EQ(GRPC_STATUS_OK, Pub("x", &d, 2, nullptr, many)) << st_.msg;
  std::string long_key(257, 'k'), long_val(1025, 'v'), ok_key(256, 'k'), ok_val(1024, 'v');
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, Pub("x", &d, 3, nullptr, {{long_key.c_str(), "v"}}));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, Pub("x", &d, 4, nullptr, {{"k", long_val.c_str()}}));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, Pub("x", &d, 5, nullptr, {{"", "v"}}));
  EXPECT_EQ(GRPC_STATUS_OK, Pub("x", &d, 6, nullptr, {{ok_key.c_str(), ok_val.c_str()}}));
  std::string long_ok(1025, 'o');
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, Pub("x", &d, 7, long_ok.c_str()));
  // Attributes only is a valid message.
  EXPECT_EQ(GRPC_STATUS_OK, Pub("", &d, 8, nullptr, {{"only", "attrs"}}));
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publisher_flush(pub_, 20000, &st_));
  auto l = d.cond.Lock();
  EXPECT_EQ(3u, d.n);  // only the accepted ones call back
  EXPECT_EQ(1u, d.got[2].size());
  EXPECT_EQ(1u, d.got[6].size());
  EXPECT_EQ(1u, d.got[8].size());

  trb_ps_publisher_config_t bad = {};
  bad.max_messages = 1001;
  trb_ps_publisher_t* p2 = nullptr;
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            trb_ps_publisher_create(loop_, ch_, Topic("top").c_str(), &bad, &p2, &st_));
  bad.max_messages = 0;
  bad.max_bytes = 10000001;
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            trb_ps_publisher_create(loop_, ch_, Topic("top").c_str(), &bad, &p2, &st_));
  EXPECT_EQ(nullptr, p2);
}

TEST_F(PublisherTest, BatchesByMessageCount) {
  auto c = Fast();
  c.max_messages = 100;
  c.max_delay_ms = 600000;  // only count and flush send
  c.max_in_flight = 100;
  Make(c);
  Done d;
  for (int i = 0; i < 250; i++) ASSERT_EQ(GRPC_STATUS_OK, Pub("m", &d, i));
  // 2 full batches are sent by count; 50 wait for the delay or a flush.
  ASSERT_TRUE(d.WaitN(200));
  EXPECT_EQ(2u, Stats().requests);
  EXPECT_EQ(200u, Stats().succeeded);
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publisher_flush(pub_, 20000, &st_));
  EXPECT_EQ(3u, Stats().requests);
  EXPECT_EQ(250u, Stats().succeeded);
}

TEST_F(PublisherTest, HardCountLimitIs1000PerRequest) {
  auto c = Fast();
  c.max_messages = 1000;
  c.max_bytes = TRB_PS_MAX_REQUEST_BYTES;
  c.max_delay_ms = 600000;
  c.max_in_flight = 100;
  Make(c);
  Done d;
  for (int i = 0; i < 2500; i++) ASSERT_EQ(GRPC_STATUS_OK, Pub("m", &d, i));
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publisher_flush(pub_, 20000, &st_));
  EXPECT_EQ(3u, Stats().requests);  // 1000 + 1000 + 500
  EXPECT_EQ(2500u, Stats().succeeded);
  EXPECT_EQ(2500u, PullAll("sub", 2500).size());
}

TEST_F(PublisherTest, BatchesByBytesSmallAndLarge) {
  auto c = Fast();
  c.max_bytes = 2000;
  c.max_delay_ms = 600000;
  c.max_in_flight = 100;
  Make(c);
  Done d;
  // A 600-byte message costs 604 request bytes; the topic field ~35, so 3
  // fit in 2000 bytes and the 4th trips the threshold: 6 × 3 + 2 by flush.
  std::string six(600, 'x');
  for (int i = 0; i < 20; i++) ASSERT_EQ(GRPC_STATUS_OK, Pub(six, &d, i));
  ASSERT_TRUE(d.WaitN(18));
  EXPECT_EQ(6u, Stats().requests);
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publisher_flush(pub_, 20000, &st_));
  EXPECT_EQ(7u, Stats().requests);
  // A message larger than max_bytes travels alone.
  std::string big(5000, 'b');
  ASSERT_EQ(GRPC_STATUS_OK, Pub(big, &d, 20));
  ASSERT_EQ(GRPC_STATUS_OK, Pub(big, &d, 21));
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publisher_flush(pub_, 20000, &st_));
  EXPECT_EQ(9u, Stats().requests);
  EXPECT_EQ(22u, Stats().succeeded);
}

TEST_F(PublisherTest, HardByteLimitIs10MBPerRequest) {
  auto c = Fast();
  c.max_messages = 1000;
  c.max_bytes = TRB_PS_MAX_REQUEST_BYTES;
  c.max_delay_ms = 600000;
  Make(c);
  Done d;
  std::string three(3 * 1000 * 1000, 'z');
  for (int i = 0; i < 5; i++) ASSERT_EQ(GRPC_STATUS_OK, Pub(three, &d, i));
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publisher_flush(pub_, 30000, &st_)) << st_.msg;
  EXPECT_EQ(2u, Stats().requests);  // 3 × 3 MB, then 2 × 3 MB
  EXPECT_EQ(5u, Stats().succeeded);
  // A message that cannot fit any request is refused locally.
  std::string huge(TRB_PS_MAX_REQUEST_BYTES, 'h');
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, Pub(huge, &d, 9));
}

TEST_F(PublisherTest, FlowControlReject) {
  auto c = Fast();
  c.flow = TRB_PS_FLOW_REJECT;
  c.flow_max_messages = 3;
  c.max_delay_ms = -1;  // send at once
  Make(c);
  Gate g;
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_ps_publish(pub_, nullptr, nullptr, nullptr, &st_));
  trb_ps_message_t m = {};
  m.data = reinterpret_cast<const uint8_t*>("g");
  m.data_len = 1;
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publish(pub_, &m, Gate::Cb, &g, &st_));
  ASSERT_TRUE(g.cond.WaitFor([&] { return g.entered; }));
  // The gate's message stays outstanding until its callback returns.
  Done d;
  EXPECT_EQ(GRPC_STATUS_OK, Pub("a", &d, 0));
  EXPECT_EQ(GRPC_STATUS_OK, Pub("b", &d, 1));
  EXPECT_EQ(GRPC_STATUS_RESOURCE_EXHAUSTED, Pub("c", &d, 2));
  EXPECT_NE(nullptr, strstr(st_.msg, "flow control"));
  g.Open();
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publisher_flush(pub_, 20000, &st_));
  EXPECT_EQ(GRPC_STATUS_OK, Pub("c", &d, 2));
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publisher_flush(pub_, 20000, &st_));
  auto l = d.cond.Lock();
  EXPECT_EQ(3u, d.n);
}

TEST_F(PublisherTest, FlowControlBlockWaitsForRoomWithDeadline) {
  auto c = Fast();
  c.flow = TRB_PS_FLOW_BLOCK;
  c.flow_max_messages = 2;
  c.flow_max_bytes = 1000000;
  c.block_timeout_ms = 50;
  c.max_delay_ms = -1;
  Make(c);
  Gate g;
  trb_ps_message_t m = {};
  m.data = reinterpret_cast<const uint8_t*>("g");
  m.data_len = 1;
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publish(pub_, &m, Gate::Cb, &g, &st_));
  ASSERT_TRUE(g.cond.WaitFor([&] { return g.entered; }));
  Done d;
  EXPECT_EQ(GRPC_STATUS_OK, Pub("a", &d, 0));
  EXPECT_EQ(GRPC_STATUS_DEADLINE_EXCEEDED, Pub("b", &d, 1));  // waited 50 ms
  // Larger than the byte limit: refused at once.
  std::string big(1000001, 'x');
  EXPECT_EQ(GRPC_STATUS_RESOURCE_EXHAUSTED, Pub(big, &d, 9));
  g.Open();
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publisher_flush(pub_, 20000, &st_));
  trb_ps_publisher_destroy(pub_);
  pub_ = nullptr;

  // A blocked publisher proceeds once room is made.
  c.block_timeout_ms = 30000;
  Make(c);
  Gate g2;
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publish(pub_, &m, Gate::Cb, &g2, &st_));
  ASSERT_TRUE(g2.cond.WaitFor([&] { return g2.entered; }));
  EXPECT_EQ(GRPC_STATUS_OK, Pub("a", &d, 10));
  std::atomic<int> rc{-1};
  std::thread t([&] {
    trb_status_t st;
    trb_ps_message_t mm = {};
    mm.data = reinterpret_cast<const uint8_t*>("blocked");
    mm.data_len = 7;
    rc = trb_ps_publish(pub_, &mm, Done::Cb, d.Make(11), &st);
  });
  EXPECT_EQ(-1, rc.load());  // cannot have room while the gate holds
  g2.Open();
  t.join();
  EXPECT_EQ(GRPC_STATUS_OK, rc.load());
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publisher_flush(pub_, 20000, &st_));
  auto l = d.cond.Lock();
  EXPECT_EQ(1u, d.got[11].size());
  EXPECT_EQ(GRPC_STATUS_OK, d.got[11][0].first);
}

TEST_F(PublisherTest, RetriesUnavailableThenSucceeds) {
  Make(Fast());
  ASSERT_EQ(GRPC_STATUS_OK,
            trb_faults_add_error(faults_, kPublish, 3, GRPC_STATUS_UNAVAILABLE, "injected", &st_));
  Done d;
  for (int i = 0; i < 10; i++) ASSERT_EQ(GRPC_STATUS_OK, Pub("r" + std::to_string(i), &d, i));
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publisher_flush(pub_, 20000, &st_));
  auto s = Stats();
  EXPECT_EQ(10u, s.succeeded);
  EXPECT_EQ(3u, s.retries);
  EXPECT_EQ(s.retries + 1, s.requests);
  auto pulled = PullAll("sub", 10);
  EXPECT_EQ(10u, pulled.size());  // once each, no duplicates
}

TEST_F(PublisherTest, NonRetryableErrorsReachTheCallback) {
  Make(Fast());
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_add_error(faults_, kPublish, 1,
                                                 GRPC_STATUS_INVALID_ARGUMENT, "bad", &st_));
  Done d;
  ASSERT_EQ(GRPC_STATUS_OK, Pub("x", &d, 0));
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publisher_flush(pub_, 20000, &st_));
  {
    auto l = d.cond.Lock();
    ASSERT_EQ(1u, d.got[0].size());
    EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, d.got[0][0].first);
  }
  EXPECT_EQ(1u, Stats().requests);
  trb_ps_publisher_stats_t s;
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_ps_publisher_shutdown(pub_, 1000, &s, &st_));
  EXPECT_EQ(1u, s.failed);
  trb_ps_publisher_destroy(pub_);
  pub_ = nullptr;

  Make(Fast(), "no-such-topic");
  ASSERT_EQ(GRPC_STATUS_OK, Pub("y", &d, 1));
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publisher_flush(pub_, 20000, &st_));
  auto l = d.cond.Lock();
  ASSERT_EQ(1u, d.got[1].size());
  EXPECT_EQ(GRPC_STATUS_NOT_FOUND, d.got[1][0].first);
}

TEST_F(PublisherTest, RetryDeadlineEndsRetries) {
  auto c = Fast();
  c.retry_deadline_ms = 150;
  Make(c);
  ASSERT_EQ(GRPC_STATUS_OK,
            trb_faults_add_error(faults_, kPublish, -1, GRPC_STATUS_UNAVAILABLE, "down", &st_));
  Done d;
  ASSERT_EQ(GRPC_STATUS_OK, Pub("x", &d, 0));
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publisher_flush(pub_, 20000, &st_));
  auto l = d.cond.Lock();
  ASSERT_EQ(1u, d.got[0].size());
  EXPECT_EQ(GRPC_STATUS_UNAVAILABLE, d.got[0][0].first);
  EXPECT_GE(Stats().retries, 1u);
  trb_faults_clear(faults_);
}

TEST_F(PublisherTest, OrderingKeepsPerKeyOrderUnderRetries) {
  auto c = Fast();
  c.max_messages = 7;
  Make(c);
  ASSERT_EQ(GRPC_STATUS_OK,
            trb_faults_add_error(faults_, kPublish, 5, GRPC_STATUS_UNAVAILABLE, "flaky", &st_));
  Done d;
  const int kPer = 60;
  const char* keys[] = {"a", "b", "c"};
  int idx = 0;
  for (int i = 0; i < kPer; i++) {
    for (const char* k : keys) {
      ASSERT_EQ(GRPC_STATUS_OK, Pub(std::string(k) + ":" + std::to_string(i), &d, idx++, k));
    }
  }
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publisher_flush(pub_, 20000, &st_));
  EXPECT_EQ(5u, Stats().retries);
  {
    // Callbacks per key came in publish order.
    auto l = d.cond.Lock();
    std::map<int, int> last;  // key index → last seq
    for (int x : d.order) {
      int k = x % 3, seq = x / 3;
      if (last.count(k)) {
        EXPECT_EQ(last[k] + 1, seq);
      }
      last[k] = seq;
      EXPECT_EQ(GRPC_STATUS_OK, d.got[x][0].first);
    }
  }
  auto pulled = PullAll("sub-ordered", 3 * kPer);
  ASSERT_EQ(static_cast<size_t>(3 * kPer), pulled.size());
  std::map<std::string, int> next;
  for (const auto& p : pulled) {
    EXPECT_EQ(p.key, p.data.substr(0, 1));
    EXPECT_EQ(p.key + ":" + std::to_string(next[p.key]), p.data);
    next[p.key]++;
  }
}

TEST_F(PublisherTest, FailedKeyPausesUntilResume) {
  auto c = Fast();
  c.max_delay_ms = -1;  // every publish is sent at once
  Make(c);
  // Hold the loop so that the failure of k:0 is seen only after k:1 and k:2
  // are queued behind it.
  Gate g;
  trb_ps_message_t m = {};
  m.data = reinterpret_cast<const uint8_t*>("g");
  m.data_len = 1;
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publish(pub_, &m, Gate::Cb, &g, &st_));
  ASSERT_TRUE(g.cond.WaitFor([&] { return g.entered; }));
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_add_error(faults_, kPublish, 1,
                                                 GRPC_STATUS_PERMISSION_DENIED, "no", &st_));
  Done d;
  ASSERT_EQ(GRPC_STATUS_OK, Pub("k:0", &d, 0, "k"));
  ASSERT_EQ(GRPC_STATUS_OK, Pub("k:1", &d, 1, "k"));
  ASSERT_EQ(GRPC_STATUS_OK, Pub("k:2", &d, 2, "k"));
  g.Open();
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publisher_flush(pub_, 20000, &st_));
  {
    auto l = d.cond.Lock();
    EXPECT_EQ(GRPC_STATUS_PERMISSION_DENIED, d.got[0][0].first);
    EXPECT_EQ(GRPC_STATUS_FAILED_PRECONDITION, d.got[1][0].first);
    EXPECT_EQ(GRPC_STATUS_FAILED_PRECONDITION, d.got[2][0].first);
  }
  EXPECT_EQ(GRPC_STATUS_FAILED_PRECONDITION, Pub("k:3", &d, 3, "k"));
  EXPECT_NE(nullptr, strstr(st_.msg, "paused"));
  EXPECT_EQ(GRPC_STATUS_OK, Pub("j:0", &d, 4, "j"));  // other keys unaffected
  trb_ps_publisher_resume(pub_, "k");
  EXPECT_EQ(GRPC_STATUS_OK, Pub("k:5", &d, 5, "k"));
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publisher_flush(pub_, 20000, &st_));
  auto l = d.cond.Lock();
  EXPECT_EQ(GRPC_STATUS_OK, d.got[4][0].first);
  EXPECT_EQ(GRPC_STATUS_OK, d.got[5][0].first);
  EXPECT_EQ(5u, d.n);
}

TEST_F(PublisherTest, DelaySendsAPartialBatchWithoutFlush) {
  auto c = Fast();
  c.max_delay_ms = 5;
  Make(c);
  Done d;
  ASSERT_EQ(GRPC_STATUS_OK, Pub("lonely", &d, 0));
  ASSERT_EQ(GRPC_STATUS_OK, Pub("keyed", &d, 1, "key"));
  ASSERT_TRUE(d.WaitN(2, 10000));
  EXPECT_EQ(2u, Stats().requests);
}

// Messages queued behind a key's request in flight, below every threshold,
// leave after the delay once that request completes (no flush).
TEST_F(PublisherTest, QueuedBehindKeyLeaveAfterDelay) {
  auto c = Fast();
  c.max_delay_ms = 300;  // far longer than k:0 takes to complete
  Make(c);
  Gate g;
  trb_ps_message_t m = {};
  m.data = reinterpret_cast<const uint8_t*>("g");
  m.data_len = 1;
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publish(pub_, &m, Gate::Cb, &g, &st_));
  ASSERT_TRUE(g.cond.WaitFor([&] { return g.entered; }));
  Done d;
  ASSERT_EQ(GRPC_STATUS_OK, Pub("k:0", &d, 0, "k"));
  // Wait (bounded) until k:0 is on the wire; its completion is held.
  int64_t end = trb_clock_mono_ms_for_test() + 10000;
  while (Stats().requests < 2 && trb_clock_mono_ms_for_test() < end) std::this_thread::yield();
  ASSERT_EQ(2u, Stats().requests);
  ASSERT_EQ(GRPC_STATUS_OK, Pub("k:1", &d, 1, "k"));
  ASSERT_EQ(GRPC_STATUS_OK, Pub("k:2", &d, 2, "k"));
  g.Open();
  ASSERT_TRUE(d.WaitN(3, 10000));
  EXPECT_EQ(3u, Stats().requests);
  auto l = d.cond.Lock();
  EXPECT_EQ((std::vector<int>{0, 1, 2}), d.order);
}

TEST_F(PublisherTest, InFlightRequestsAreCapped) {
  auto c = Fast();
  c.max_messages = 1;
  c.max_in_flight = 2;
  Make(c);
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_set_latency(faults_, kPublish, 2, &st_));
  Done d;
  for (int i = 0; i < 40; i++) ASSERT_EQ(GRPC_STATUS_OK, Pub("x", &d, i));
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publisher_flush(pub_, 20000, &st_));
  EXPECT_EQ(40u, Stats().requests);
  EXPECT_LE(Stats().peak_in_flight, 2u);
  EXPECT_GE(Stats().peak_in_flight, 1u);
  trb_faults_clear(faults_);
}

// The completion callback may publish (REJECT flow control) and resume.
struct Chain {
  trb_ps_publisher_t* pub;
  trb_test::Cond cond;
  int done = 0;
  std::vector<grpc_status_code> codes;
  static void Cb(void* user, grpc_status_code code, const char*, const char*) {
    auto* c = static_cast<Chain*>(user);
    int n = 0;
    c->cond.Update([&] {
      c->codes.push_back(code);
      n = ++c->done;
    });
    if (n < 5) {
      trb_ps_message_t m = {};
      m.data = reinterpret_cast<const uint8_t*>("next");
      m.data_len = 4;
      m.ordering_key = "chain";
      trb_ps_publisher_resume(c->pub, "chain");
      trb_status_t st;
      EXPECT_EQ(GRPC_STATUS_OK, trb_ps_publish(c->pub, &m, Chain::Cb, c, &st)) << st.msg;
    }
  }
};

TEST_F(PublisherTest, CallbackMayPublishAndResume) {
  auto c = Fast();
  c.flow = TRB_PS_FLOW_REJECT;
  c.max_delay_ms = 1;
  Make(c);
  Chain ch;
  ch.pub = pub_;
  trb_ps_message_t m = {};
  m.data = reinterpret_cast<const uint8_t*>("first");
  m.data_len = 5;
  m.ordering_key = "chain";
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publish(pub_, &m, Chain::Cb, &ch, &st_));
  ASSERT_TRUE(ch.cond.WaitFor([&] { return ch.done == 5; }, 10000));
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publisher_flush(pub_, 10000, &st_));
  auto l = ch.cond.Lock();
  EXPECT_EQ(std::vector<grpc_status_code>(5, GRPC_STATUS_OK), ch.codes);
}

TEST_F(PublisherTest, ManyKeysAndThreads) {
  Make(Fast());
  Done d;
  const int kThreads = 4, kPer = 1500, kKeys = 50;
  for (int i = 0; i < kThreads * kPer; i++) d.Make(i);  // contexts up front
  std::vector<std::thread> ts;
  std::atomic<int> bad{0};
  for (int t = 0; t < kThreads; t++) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < kPer; i++) {
        int idx = t * kPer + i;
        // Thread t owns keys t, t+4, ...: per-key order is this loop's order.
        std::string key = std::to_string((i % (kKeys / kThreads)) * kThreads + t);
        std::string data = key + ":" + std::to_string(i);
        trb_ps_message_t m = {};
        m.data = reinterpret_cast<const uint8_t*>(data.data());
        m.data_len = data.size();
        m.ordering_key = (i % 3 == 0) ? nullptr : key.c_str();  // mixed
        trb_status_t st;
        if (trb_ps_publish(pub_, &m, Done::Cb, d.ctxs[idx].get(), &st) != GRPC_STATUS_OK) bad++;
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(0, bad.load());
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publisher_flush(pub_, 30000, &st_)) << st_.msg;
  auto l = d.cond.Lock();
  ASSERT_EQ(static_cast<size_t>(kThreads * kPer), d.n);
  std::set<std::string> ids;
  for (int i = 0; i < kThreads * kPer; i++) {
    ASSERT_EQ(1u, d.got[i].size());
    EXPECT_EQ(GRPC_STATUS_OK, d.got[i][0].first);
    EXPECT_TRUE(ids.insert(d.got[i][0].second).second);
  }
  // Per ordering key, completions follow publish order.
  std::map<int, int> last;  // thread*1000+key slot -> last i
  for (int idx : d.order) {
    int t = idx / kPer, i = idx % kPer;
    if (i % 3 == 0) continue;
    int slot = t * 1000 + i % (kKeys / kThreads);
    auto it = last.find(slot);
    if (it != last.end()) {
      EXPECT_LT(it->second, i);
    }
    last[slot] = i;
  }
}

TEST_F(PublisherTest, ShutdownDrainsEverything) {
  auto c = Fast();
  c.max_delay_ms = 600000;  // nothing leaves until shutdown flushes
  Make(c);
  Done d;
  for (int i = 0; i < 30; i++) ASSERT_EQ(GRPC_STATUS_OK, Pub("s", &d, i, i % 2 ? "odd" : nullptr));
  EXPECT_EQ(0u, Stats().requests);
  trb_ps_publisher_stats_t s;
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publisher_shutdown(pub_, 20000, &s, &st_)) << st_.msg;
  EXPECT_EQ(30u, s.succeeded);
  EXPECT_EQ(GRPC_STATUS_FAILED_PRECONDITION, Pub("late", &d, 99));
  auto l = d.cond.Lock();
  EXPECT_EQ(30u, d.n);
}

TEST_F(PublisherTest, ShutdownDeadlineReportsWhatFailed) {
  auto c = Fast();
  c.backoff_initial_ms = 20;
  c.backoff_max_ms = 20;
  c.max_delay_ms = 600000;
  Make(c);
  ASSERT_EQ(GRPC_STATUS_OK,
            trb_faults_add_error(faults_, kPublish, -1, GRPC_STATUS_UNAVAILABLE, "down", &st_));
  Done d;
  for (int i = 0; i < 5; i++) ASSERT_EQ(GRPC_STATUS_OK, Pub("x", &d, i));
  trb_ps_publisher_stats_t s;
  grpc_status_code rc = trb_ps_publisher_shutdown(pub_, 100, &s, &st_);
  EXPECT_TRUE(rc == GRPC_STATUS_DEADLINE_EXCEEDED || rc == GRPC_STATUS_UNAVAILABLE) << rc;
  EXPECT_NE(nullptr, strstr(st_.msg, "5 of 5 messages failed")) << st_.msg;
  EXPECT_EQ(5u, s.failed);
  auto l = d.cond.Lock();
  EXPECT_EQ(5u, d.n);
  trb_faults_clear(faults_);
}

// trb_ps_publish_many: a batch of messages under one lock acquisition.
// Checks the accepted prefix on a refusal, exactly one completion per
// accepted message, per-key order, and that messages after a refusal are
// not sent.
// Completions by the test's message index.
struct ManyDone {
  trb_test::Cond cond;
  std::map<int, std::vector<std::pair<grpc_status_code, std::string>>> got;
  size_t n = 0;
  std::vector<std::pair<ManyDone*, int>> ctx;  // stable: reserved up front

  explicit ManyDone(size_t cap) { ctx.reserve(cap); }
  void* Make(int idx) {
    ctx.emplace_back(this, idx);
    return &ctx.back();
  }
  static void Cb(void* user, grpc_status_code code, const char* message, const char* id) {
    auto* c = static_cast<std::pair<ManyDone*, int>*>(user);
    ASSERT_NE(nullptr, message);
    c->first->cond.Update([&] {
      c->first->got[c->second].emplace_back(code, code == GRPC_STATUS_OK ? id : message);
      c->first->n++;
    });
  }
};

class PublishManyTest : public PublisherTest {
 protected:
  // Messages with data `prefix<i>`, ordering key `key` (may be NULL).
  struct Batch {
    std::vector<std::string> data;
    std::vector<trb_ps_message_t> msgs;
    std::vector<void*> users;
  };
  Batch MakeBatch(ManyDone* d, int first, int n, const char* key) {
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
  // The data of what "sub-ordered" delivers (acked), in delivery order.
  std::vector<std::string> PulledData(size_t want) {
    std::vector<std::string> out;
    for (const auto& p : PullAll("sub-ordered", want)) out.push_back(p.data);
    return out;
  }
};

TEST_F(PublishManyTest, WholeBatchAcceptedInOrderOneRequest) {
  trb_ps_publisher_config_t c = {};
  c.max_messages = 1000;
  c.max_delay_ms = 60000;  // sent by the flush below, all in one request
  c.backoff_initial_ms = 10;
  Make(c);
  const int kN = 300;
  ManyDone d(kN);
  Batch b = MakeBatch(&d, 0, kN, "k");
  size_t acc = 12345;
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publish_many(pub_, b.msgs.data(), kN, ManyDone::Cb,
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
  auto pulled = PulledData(kN);
  ASSERT_EQ(static_cast<size_t>(kN), pulled.size());
  for (int i = 0; i < kN; i++) EXPECT_EQ("m" + std::to_string(i), pulled[i]) << i;
}

TEST_F(PublishManyTest, StopsAtTheFirstRefusedMessage) {
  trb_ps_publisher_config_t c = {};
  c.max_delay_ms = -1;
  Make(c);
  ManyDone d(8);
  Batch b = MakeBatch(&d, 0, 4, nullptr);
  b.msgs[2].data_len = 0;  // no data, no attributes: INVALID_ARGUMENT
  size_t acc = 0;
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_ps_publish_many(pub_, b.msgs.data(), 4, ManyDone::Cb,
                                                              b.users.data(), &acc, &st_));
  EXPECT_EQ(2u, acc);
  // The caller goes on after the refused one.
  EXPECT_EQ(GRPC_STATUS_OK, trb_ps_publish_many(pub_, b.msgs.data() + 3, 1, ManyDone::Cb,
                                                b.users.data() + 3, &acc, &st_));
  EXPECT_EQ(1u, acc);
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publisher_flush(pub_, 20000, &st_)) << st_.msg;
  {
    auto l = d.cond.Lock();
    EXPECT_EQ(3u, d.n);
    EXPECT_EQ(0u, d.got.count(2));
    for (int i : {0, 1, 3}) ASSERT_EQ(1u, d.got[i].size()) << i;
  }
  auto pulled = PulledData(3);
  std::sort(pulled.begin(), pulled.end());
  EXPECT_EQ((std::vector<std::string>{"m0", "m1", "m3"}), pulled);
}

TEST_F(PublishManyTest, FlowControlRejectMidBatch) {
  trb_ps_publisher_config_t c = {};
  c.flow = TRB_PS_FLOW_REJECT;
  c.flow_max_messages = 3;
  c.max_delay_ms = 60000;  // nothing completes before the flush
  Make(c);
  ManyDone d(5);
  Batch b = MakeBatch(&d, 0, 5, nullptr);
  size_t acc = 0;
  EXPECT_EQ(GRPC_STATUS_RESOURCE_EXHAUSTED, trb_ps_publish_many(pub_, b.msgs.data(), 5, ManyDone::Cb,
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
  ManyDone d(2);
  Batch b = MakeBatch(&d, 0, 2, nullptr);
  size_t acc = 7;
  EXPECT_EQ(GRPC_STATUS_OK,
            trb_ps_publish_many(pub_, nullptr, 0, ManyDone::Cb, nullptr, &acc, &st_));
  EXPECT_EQ(0u, acc);
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            trb_ps_publish_many(pub_, b.msgs.data(), 2, ManyDone::Cb, nullptr, &acc, &st_));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            trb_ps_publish_many(nullptr, b.msgs.data(), 2, ManyDone::Cb, b.users.data(), &acc, &st_));
  ASSERT_EQ(GRPC_STATUS_OK, trb_ps_publisher_shutdown(pub_, 10000, nullptr, &st_)) << st_.msg;
  EXPECT_EQ(GRPC_STATUS_FAILED_PRECONDITION,
            trb_ps_publish_many(pub_, b.msgs.data(), 2, ManyDone::Cb, b.users.data(), &acc, &st_));
  EXPECT_EQ(0u, acc);
  auto l = d.cond.Lock();
  EXPECT_EQ(0u, d.n);
}

}  // namespace
