// ps_fixture.h — the Pub/Sub emulator on 127.0.0.1:0 over a SQLite file in
// a temp dir, an rpc client, and helpers for unary calls and StreamingPull.
#ifndef TRB_TESTS_EMULATOR_PUBSUB_PS_FIXTURE_H
#define TRB_TESTS_EMULATOR_PUBSUB_PS_FIXTURE_H

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "google/pubsub/v1/pubsub.pb.h"
#include "google/rpc/error_details.pb.h"
#include "src/common/alloc.h"
#include "src/emulator/db.h"
#include "src/emulator/faults.h"
#include "src/emulator/pubsub/pubsub.h"
#include "src/rpc/details.h"
#include "src/rpc/pb.h"
#include "src/rpc/rpc.h"
#include "src/rpc/server.h"
#include "tests/testutil/wait.h"

namespace trb_test {

constexpr char kPub[] = "/google.pubsub.v1.Publisher/";
constexpr char kSub[] = "/google.pubsub.v1.Subscriber/";

// One unary result.
struct Result {
  grpc_status_code code = GRPC_STATUS_UNKNOWN;
  std::string message;
  std::vector<uint8_t> response;
  std::vector<uint8_t> details;
};

// A received message, decoded.
struct Got {
  std::string ack_id;
  std::string data;
  std::string message_id;
  std::string ordering_key;
  std::map<std::string, std::string> attrs;
  int32_t delivery_attempt = 0;
  int64_t publish_seconds = 0;
  int32_t publish_nanos = 0;
};

inline std::vector<Got> DecodeReceived(const google_pubsub_v1_ReceivedMessage* rm, size_t n) {
  std::vector<Got> out;
  for (size_t i = 0; i < n; i++) {
    Got g;
    g.ack_id = rm[i].ack_id ? rm[i].ack_id : "";
    const auto& m = rm[i].message;
    g.data.assign(reinterpret_cast<const char*>(m.data.data), m.data.len);
    g.message_id = m.message_id ? m.message_id : "";
    g.ordering_key = m.ordering_key ? m.ordering_key : "";
    for (pb_size_t a = 0; a < m.attributes_count; a++) {
      g.attrs[m.attributes[a].key] = m.attributes[a].value ? m.attributes[a].value : "";
    }
    g.delivery_attempt = rm[i].delivery_attempt;
    g.publish_seconds = m.publish_time.seconds;
    g.publish_nanos = m.publish_time.nanos;
    out.push_back(g);
  }
  return out;
}

// Client side of one StreamingPull.
struct Stream {
  Cond cond;
  std::vector<Got> got;                    // guarded by cond
  int responses = 0;                       // guarded by cond
  int empty_responses = 0;                 // guarded by cond
  bool props_eod = false, props_ordering = false;
  std::vector<std::string> acked_ok, acked_invalid;     // confirmations
  std::vector<std::string> modack_ok, modack_invalid;
  bool closed = false;
  grpc_status_code code = GRPC_STATUS_UNKNOWN;
  std::string message;
  trb_rpc_stream_t* s = nullptr;

  static trb_rpc_stream_cbs_t Callbacks() {
    trb_rpc_stream_cbs_t cbs = {};
    cbs.on_message = [](void* user, trb_rpc_stream_t*, const uint8_t* data, size_t len) {
      auto* c = static_cast<Stream*>(user);
      google_pubsub_v1_StreamingPullResponse r = google_pubsub_v1_StreamingPullResponse_init_zero;
      trb_status_t st;
      bool ok = trb_pb_decode(google_pubsub_v1_StreamingPullResponse_fields, data, len, &r, &st) ==
                GRPC_STATUS_OK;
      c->cond.Update([&] {
        c->responses++;
        if (len == 0) c->empty_responses++;
        if (!ok) return;
        auto g = DecodeReceived(r.received_messages, r.received_messages_count);
        c->got.insert(c->got.end(), g.begin(), g.end());
        if (r.has_subscription_properties) {
          c->props_eod = r.subscription_properties.exactly_once_delivery_enabled;
          c->props_ordering = r.subscription_properties.message_ordering_enabled;
        }
        if (r.has_acknowledge_confirmation) {
          auto& a = r.acknowledge_confirmation;
          for (pb_size_t i = 0; i < a.ack_ids_count; i++) c->acked_ok.push_back(a.ack_ids[i]);
          for (pb_size_t i = 0; i < a.invalid_ack_ids_count; i++)
            c->acked_invalid.push_back(a.invalid_ack_ids[i]);
        }
        if (r.has_modify_ack_deadline_confirmation) {
          auto& a = r.modify_ack_deadline_confirmation;
          for (pb_size_t i = 0; i < a.ack_ids_count; i++) c->modack_ok.push_back(a.ack_ids[i]);
          for (pb_size_t i = 0; i < a.invalid_ack_ids_count; i++)
            c->modack_invalid.push_back(a.invalid_ack_ids[i]);
        }
      });
      trb_pb_release(google_pubsub_v1_StreamingPullResponse_fields, &r);
    };
    cbs.on_close = [](void* user, trb_rpc_stream_t*, const trb_rpc_result_t* r) {
      auto* c = static_cast<Stream*>(user);
      c->cond.Update([&] {
        c->closed = true;
        c->code = r->code;
        c->message = r->message;
      });
    };
    return cbs;
  }

  size_t Count() {
    auto l = cond.Lock();
    return got.size();
  }
  bool WaitCount(size_t n, int ms = 10000) {
    return cond.WaitFor([&] { return got.size() >= n || closed; }, ms) && got.size() >= n;
  }
  bool WaitClosed(int ms = 10000) {
    return cond.WaitFor([&] { return closed; }, ms);
  }
  std::vector<Got> Snapshot() {
    auto l = cond.Lock();
    return got;
  }
};

class PsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    trb_rpc_init();
    const char* tmp = getenv("TEST_TMPDIR");
    std::string base = tmp ? tmp : "/tmp";
    dir_ = base + "/psXXXXXX";
    ASSERT_NE(nullptr, mkdtemp(&dir_[0]));
    path_ = dir_ + "/pubsub.sqlite";
    Open();
  }

  virtual int ServerThreads() { return 2; }

  void Open() {
    // A registry per service instance: a drop callback stays registered for
    // the registry's lifetime (faults.h has no unregister).
    faults_ = trb_faults_create();
    ASSERT_NE(nullptr, faults_);
    trb_db_options_t o = {};
    o.name = "pubsub";
    ASSERT_EQ(GRPC_STATUS_OK, trb_db_open(path_.c_str(), &o, &db_, &st_)) << st_.msg;
    trb_psemu_config_t cfg = {};
    cfg.db = db_;
    cfg.project = "demo";
    cfg.faults = faults_;
    cfg.test_ms_per_second = ms_per_second_;
    ASSERT_EQ(GRPC_STATUS_OK, trb_psemu_create(&cfg, &ps_, &st_)) << st_.msg;
    trb_rpc_server_config_t sc = {};
    sc.host = "127.0.0.1";
    sc.n_threads = ServerThreads();
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_server_create(&sc, &srv_, &st_)) << st_.msg;
    ASSERT_EQ(GRPC_STATUS_OK, trb_psemu_register(ps_, srv_, &st_)) << st_.msg;
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_server_start(srv_, &port_, &st_)) << st_.msg;
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_loop_create("ps-client", &loop_, &st_)) << st_.msg;
    target_ = "127.0.0.1:" + std::to_string(port_);
    trb_rpc_channel_config_t cc = {};
    cc.target = target_.c_str();
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_channel_create(&cc, &ch_, &st_)) << st_.msg;
  }

  // Stops everything (streams end with UNAVAILABLE) but keeps the files.
  void Close() {
    if (ps_) trb_psemu_shutdown(ps_);
    for (auto& s : streams_) {
      EXPECT_TRUE(s->WaitClosed()) << "stream not closed at shutdown";
      trb_rpc_stream_release(s->s);
    }
    streams_.clear();
    if (loop_) {
      EXPECT_EQ(0, trb_rpc_loop_live_calls(loop_));
    }
    trb_rpc_loop_destroy(loop_);
    loop_ = nullptr;
    trb_rpc_channel_destroy(ch_);
    ch_ = nullptr;
    trb_rpc_server_shutdown(srv_);
    if (srv_) {
      EXPECT_EQ(0, trb_rpc_server_live_calls(srv_));
    }
    trb_rpc_server_destroy(srv_);
    srv_ = nullptr;
    trb_psemu_destroy(ps_);
    ps_ = nullptr;
    trb_db_close(db_);
    db_ = nullptr;
    trb_faults_destroy(faults_);
    faults_ = nullptr;
  }

  void Reopen() {
    Close();
    Open();
  }

  void TearDown() override {
    Close();
    std::string cmd = "rm -rf '" + dir_ + "'";
    EXPECT_EQ(0, system(cmd.c_str()));
    trb_rpc_shutdown();
  }

  // ---- unary helpers ----
  Result Call(const std::string& method, const pb_msgdesc_t* f, const void* msg) {
    uint8_t* buf = nullptr;
    size_t len = 0;
    EXPECT_EQ(GRPC_STATUS_OK, trb_pb_encode(f, msg, &buf, &len, &st_));
    Result r = CallRaw(method, buf, len);
    trb_free(buf);
    return r;
  }
  Result CallRaw(const std::string& method, const void* buf, size_t len) {
    trb_rpc_response_t resp = {};
    trb_rpc_call_opts_t opts = {};
    opts.timeout_ms = 10000;
    trb_rpc_unary_call(loop_, ch_, method.c_str(), buf, len, &opts, &resp);
    Result r;
    r.code = resp.code;
    r.message = resp.message ? resp.message : "";
    if (resp.response) r.response.assign(resp.response, resp.response + resp.response_len);
    if (resp.details) r.details.assign(resp.details, resp.details + resp.details_len);
    trb_rpc_response_deinit(&resp);
    return r;
  }

  std::string Topic(const std::string& id) { return "projects/demo/topics/" + id; }
  std::string SubName(const std::string& id) { return "projects/demo/subscriptions/" + id; }

  grpc_status_code CreateTopic(const std::string& id) {
    google_pubsub_v1_Topic t = google_pubsub_v1_Topic_init_zero;
    std::string name = Topic(id);
    t.name = &name[0];
    return Call(std::string(kPub) + "CreateTopic", google_pubsub_v1_Topic_fields, &t).code;
  }

  struct SubOpts {
    int ack_deadline = 0;
    bool ordering = false;
    bool eod = false;
    std::string filter;
    std::string dlq;  // topic id
    int max_attempts = 0;
    int min_backoff_s = -1, max_backoff_s = -1;
  };
  Result CreateSub(const std::string& id, const std::string& topic, const SubOpts& o) {
    google_pubsub_v1_Subscription s = google_pubsub_v1_Subscription_init_zero;
    std::string name = SubName(id), tn = Topic(topic), dlq = Topic(o.dlq), filter = o.filter;
    s.name = &name[0];
    s.topic = &tn[0];
    s.ack_deadline_seconds = o.ack_deadline;
    s.enable_message_ordering = o.ordering;
    s.enable_exactly_once_delivery = o.eod;
    if (!filter.empty()) s.filter = &filter[0];
    if (!o.dlq.empty()) {
      s.has_dead_letter_policy = true;
      s.dead_letter_policy.dead_letter_topic = &dlq[0];
      s.dead_letter_policy.max_delivery_attempts = o.max_attempts;
    }
    if (o.min_backoff_s >= 0) {
      s.has_retry_policy = true;
      s.retry_policy.has_minimum_backoff = true;
      s.retry_policy.minimum_backoff.seconds = o.min_backoff_s;
      s.retry_policy.has_maximum_backoff = true;
      s.retry_policy.maximum_backoff.seconds = o.max_backoff_s;
    }
    return Call(std::string(kSub) + "CreateSubscription", google_pubsub_v1_Subscription_fields, &s);
  }
  grpc_status_code CreateSub(const std::string& id, const std::string& topic) {
    Result r = CreateSub(id, topic, SubOpts());
    if (r.code != GRPC_STATUS_OK) fprintf(stderr, "CreateSub %s: %s\n", id.c_str(), r.message.c_str());
    return r.code;
  }

  struct Msg {
    std::string data;
    std::map<std::string, std::string> attrs;
    std::string key;
  };
  Result PublishMsgs(const std::string& topic, const std::vector<Msg>& msgs,
                     std::vector<std::string>* ids = nullptr) {
    std::string tn = Topic(topic);
    google_pubsub_v1_PublishRequest r = google_pubsub_v1_PublishRequest_init_zero;
    r.topic = &tn[0];
    std::vector<google_pubsub_v1_PubsubMessage> pm(msgs.size());
    std::vector<std::vector<google_pubsub_v1_PubsubMessage_AttributesEntry>> at(msgs.size());
    for (size_t i = 0; i < msgs.size(); i++) {
      pm[i] = google_pubsub_v1_PubsubMessage_init_zero;
      pm[i].data.data = reinterpret_cast<const uint8_t*>(msgs[i].data.data());
      pm[i].data.len = msgs[i].data.size();
      for (auto& kv : msgs[i].attrs) {
        at[i].push_back({const_cast<char*>(kv.first.c_str()), const_cast<char*>(kv.second.c_str())});
      }
      pm[i].attributes_count = static_cast<pb_size_t>(at[i].size());
      pm[i].attributes = at[i].data();
      if (!msgs[i].key.empty()) pm[i].ordering_key = const_cast<char*>(msgs[i].key.c_str());
    }
    r.messages_count = static_cast<pb_size_t>(pm.size());
    r.messages = pm.data();
    Result res = Call(std::string(kPub) + "Publish", google_pubsub_v1_PublishRequest_fields, &r);
    if (ids && res.code == GRPC_STATUS_OK) {
      google_pubsub_v1_PublishResponse out = google_pubsub_v1_PublishResponse_init_zero;
      EXPECT_EQ(GRPC_STATUS_OK, trb_pb_decode(google_pubsub_v1_PublishResponse_fields,
                                              res.response.data(), res.response.size(), &out, &st_));
      for (pb_size_t i = 0; i < out.message_ids_count; i++) ids->push_back(out.message_ids[i]);
      trb_pb_release(google_pubsub_v1_PublishResponse_fields, &out);
    }
    return res;
  }
  grpc_status_code Publish(const std::string& topic, const std::vector<std::string>& data,
                           std::vector<std::string>* ids = nullptr) {
    std::vector<Msg> m;
    for (auto& d : data) m.push_back({d, {}, ""});
    return PublishMsgs(topic, m, ids).code;
  }

  // return_immediately unless `wait` (then the server holds the call up to
  // about a second for messages to arrive).
  Result Pull(const std::string& sub, int max, std::vector<Got>* got, bool wait = false) {
    std::string sn = SubName(sub);
    google_pubsub_v1_PullRequest r = google_pubsub_v1_PullRequest_init_zero;
    r.subscription = &sn[0];
    r.max_messages = max;
    r.return_immediately = !wait;
    Result res = Call(std::string(kSub) + "Pull", google_pubsub_v1_PullRequest_fields, &r);
    if (got && res.code == GRPC_STATUS_OK) {
      google_pubsub_v1_PullResponse out = google_pubsub_v1_PullResponse_init_zero;
      EXPECT_EQ(GRPC_STATUS_OK, trb_pb_decode(google_pubsub_v1_PullResponse_fields,
                                              res.response.data(), res.response.size(), &out, &st_));
      *got = DecodeReceived(out.received_messages, out.received_messages_count);
      trb_pb_release(google_pubsub_v1_PullResponse_fields, &out);
    }
    return res;
  }

  Result Ack(const std::string& sub, const std::vector<std::string>& ids) {
    std::string sn = SubName(sub);
    std::vector<char*> p;
    for (auto& i : ids) p.push_back(const_cast<char*>(i.c_str()));
    google_pubsub_v1_AcknowledgeRequest r = google_pubsub_v1_AcknowledgeRequest_init_zero;
    r.subscription = &sn[0];
    r.ack_ids_count = static_cast<pb_size_t>(p.size());
    r.ack_ids = p.data();
    return Call(std::string(kSub) + "Acknowledge", google_pubsub_v1_AcknowledgeRequest_fields, &r);
  }
  Result ModAck(const std::string& sub, const std::vector<std::string>& ids, int secs) {
    std::string sn = SubName(sub);
    std::vector<char*> p;
    for (auto& i : ids) p.push_back(const_cast<char*>(i.c_str()));
    google_pubsub_v1_ModifyAckDeadlineRequest r = google_pubsub_v1_ModifyAckDeadlineRequest_init_zero;
    r.subscription = &sn[0];
    r.ack_ids_count = static_cast<pb_size_t>(p.size());
    r.ack_ids = p.data();
    r.ack_deadline_seconds = secs;
    return Call(std::string(kSub) + "ModifyAckDeadline",
                google_pubsub_v1_ModifyAckDeadlineRequest_fields, &r);
  }

  // ---- streaming helpers ----
  Stream* OpenStream(const std::string& sub_id = "") {
    auto s = std::make_unique<Stream>();
    trb_rpc_stream_cbs_t cbs = Stream::Callbacks();
    std::string routing = "subscription=" + SubName(sub_id);
    trb_rpc_md_t md[] = {{"x-goog-request-params", routing.c_str(), 0}};
    trb_rpc_call_opts_t opts = {};
    opts.md = md;
    opts.n_md = 1;
    EXPECT_EQ(GRPC_STATUS_OK, trb_rpc_stream_start(loop_, ch_,
                                                   (std::string(kSub) + "StreamingPull").c_str(),
                                                   &opts, &cbs, s.get(), &s->s, &st_))
        << st_.msg;
    streams_.push_back(std::move(s));
    return streams_.back().get();
  }
  void Send(Stream* s, const google_pubsub_v1_StreamingPullRequest& r) {
    uint8_t* buf = nullptr;
    size_t len = 0;
    ASSERT_EQ(GRPC_STATUS_OK,
              trb_pb_encode(google_pubsub_v1_StreamingPullRequest_fields, &r, &buf, &len, &st_));
    trb_rpc_stream_write(s->s, buf, len, nullptr);
    trb_free(buf);
  }
  Stream* StartPull(const std::string& sub_id, int deadline = 10, int64_t max_msgs = 0,
                    int64_t protocol_version = 0) {
    Stream* s = OpenStream(sub_id);
    std::string sn = SubName(sub_id);
    google_pubsub_v1_StreamingPullRequest r = google_pubsub_v1_StreamingPullRequest_init_zero;
    r.subscription = &sn[0];
    r.stream_ack_deadline_seconds = deadline;
    r.max_outstanding_messages = max_msgs;
    r.protocol_version = protocol_version;
    Send(s, r);
    return s;
  }
  void StreamAck(Stream* s, const std::vector<std::string>& ids) {
    std::vector<char*> p;
    for (auto& i : ids) p.push_back(const_cast<char*>(i.c_str()));
    google_pubsub_v1_StreamingPullRequest r = google_pubsub_v1_StreamingPullRequest_init_zero;
    r.ack_ids_count = static_cast<pb_size_t>(p.size());
    r.ack_ids = p.data();
    Send(s, r);
  }
  void StreamModAck(Stream* s, const std::vector<std::string>& ids, int secs) {
    std::vector<char*> p;
    std::vector<int32_t> d;
    for (auto& i : ids) {
      p.push_back(const_cast<char*>(i.c_str()));
      d.push_back(secs);
    }
    google_pubsub_v1_StreamingPullRequest r = google_pubsub_v1_StreamingPullRequest_init_zero;
    r.modify_deadline_ack_ids_count = static_cast<pb_size_t>(p.size());
    r.modify_deadline_ack_ids = p.data();
    r.modify_deadline_seconds_count = static_cast<pb_size_t>(d.size());
    r.modify_deadline_seconds = d.data();
    Send(s, r);
  }

  int ms_per_second_ = 20;  // a 10 s ack deadline lasts 200 ms
  trb_status_t st_ = {};
  std::string dir_, path_;
  trb_faults_t* faults_ = nullptr;
  trb_db_t* db_ = nullptr;
  trb_psemu_t* ps_ = nullptr;
  trb_rpc_server_t* srv_ = nullptr;
  int port_ = 0;
  std::string target_;
  trb_rpc_loop_t* loop_ = nullptr;
  trb_rpc_channel_t* ch_ = nullptr;
  std::vector<std::unique_ptr<Stream>> streams_;
};

}  // namespace trb_test

#endif  // TRB_TESTS_EMULATOR_PUBSUB_PS_FIXTURE_H
