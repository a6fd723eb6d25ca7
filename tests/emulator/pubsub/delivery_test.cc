// delivery_test.cc — delivery semantics of the Pub/Sub emulator: nack and
// delivery_attempt, dead-letter topic with its attributes, retry backoff,
// ordering keys, attribute filters, exactly-once confirmations and
// ErrorInfo results.
#include "tests/emulator/pubsub/ps_fixture.h"

namespace {

using trb_test::Got;
using trb_test::PsTest;
using trb_test::Result;
using trb_test::Stream;

TEST_F(PsTest, DeadLetterAfterMaxAttemptsWithSourceAttributes) {
  ASSERT_EQ(GRPC_STATUS_OK, CreateTopic("events"));
  ASSERT_EQ(GRPC_STATUS_OK, CreateTopic("dead"));
  ASSERT_EQ(GRPC_STATUS_OK, CreateSub("deadsub", "dead"));
  SubOpts o;
  o.dlq = "dead";
  o.max_attempts = 5;
  ASSERT_EQ(GRPC_STATUS_OK, CreateSub("src", "events", o).code);
  ASSERT_EQ(GRPC_STATUS_OK, PublishMsgs("events", {{"poison", {{"a", "1"}}, ""}}).code);
  Stream* s = StartPull("src", 600);
  // Nack it five times; attempts count 1..5.
  for (int i = 1; i <= 5; i++) {
    ASSERT_TRUE(s->WaitCount(static_cast<size_t>(i))) << "attempt " << i;
    Got g = s->Snapshot()[static_cast<size_t>(i - 1)];
    EXPECT_EQ(i, g.delivery_attempt);
    EXPECT_EQ("poison", g.data);
    StreamModAck(s, {g.ack_id}, 0);
  }
  Stream* d = StartPull("deadsub", 600);
  ASSERT_TRUE(d->WaitCount(1));
  Got dl = d->Snapshot()[0];
  EXPECT_EQ("poison", dl.data);
  EXPECT_EQ("1", dl.attrs["a"]);
  EXPECT_EQ("5", dl.attrs["CloudPubSubDeadLetterSourceDeliveryCount"]);
  EXPECT_EQ("src", dl.attrs["CloudPubSubDeadLetterSourceSubscription"]);
  EXPECT_EQ("demo", dl.attrs["CloudPubSubDeadLetterSourceSubscriptionProject"]);
  std::string pt = dl.attrs["CloudPubSubDeadLetterSourceTopicPublishTime"];
  EXPECT_EQ(27u, pt.size()) << pt;  // 2026-11-20T23:11:26.123456Z
  EXPECT_EQ('Z', pt.back());
  EXPECT_EQ(0, dl.delivery_attempt);  // deadsub has no policy
  // The source no longer delivers it, also not after a restart.
  EXPECT_EQ(5u, s->Count());
  ASSERT_EQ(GRPC_STATUS_OK, Ack("deadsub", {dl.ack_id}).code);  // durable when answered
  Reopen();
  std::vector<Got> left;
  ASSERT_EQ(GRPC_STATUS_OK, Pull("src", 10, &left).code);
  EXPECT_EQ(0u, left.size());
  ASSERT_EQ(GRPC_STATUS_OK, Pull("deadsub", 10, &left).code);
  EXPECT_EQ(0u, left.size());
}

TEST_F(PsTest, ExpiryCountsAsDeliveryAttempt) {
  ASSERT_EQ(GRPC_STATUS_OK, CreateTopic("events"));
  ASSERT_EQ(GRPC_STATUS_OK, CreateTopic("dead"));
  SubOpts o;
  o.dlq = "dead";
  ASSERT_EQ(GRPC_STATUS_OK, CreateSub("src", "events", o).code);
  ASSERT_EQ(GRPC_STATUS_OK, Publish("events", {"slow"}));
  Stream* s = StartPull("src", 10);  // 200 ms leases here
  ASSERT_TRUE(s->WaitCount(2));
  auto g = s->Snapshot();
  EXPECT_EQ(1, g[0].delivery_attempt);
  EXPECT_EQ(2, g[1].delivery_attempt);
  EXPECT_NE(g[0].ack_id, g[1].ack_id);
  StreamAck(s, {g[1].ack_id});
}

TEST_F(PsTest, RetryPolicyDelaysRedelivery) {
  ASSERT_EQ(GRPC_STATUS_OK, CreateTopic("events"));
  SubOpts o;
  o.min_backoff_s = 10;  // 200 ms here
  o.max_backoff_s = 20;
  ASSERT_EQ(GRPC_STATUS_OK, CreateSub("retry", "events", o).code);
  o.min_backoff_s = 700;
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, CreateSub("retry2", "events", o).code);
  ASSERT_EQ(GRPC_STATUS_OK, Publish("events", {"x"}));
  std::vector<Got> got;
  ASSERT_EQ(GRPC_STATUS_OK, Pull("retry", 1, &got).code);
  ASSERT_EQ(1u, got.size());
  ASSERT_EQ(GRPC_STATUS_OK, ModAck("retry", {got[0].ack_id}, 0).code);
  std::vector<Got> now;
  ASSERT_EQ(GRPC_STATUS_OK, Pull("retry", 1, &now).code);
  EXPECT_EQ(0u, now.size());  // backing off, not "as soon as possible"
  Stream* s = StartPull("retry", 600);
  ASSERT_TRUE(s->WaitCount(1));
  EXPECT_EQ("x", s->Snapshot()[0].data);
}

TEST_F(PsTest, OrderingKeysDeliverInOrderOneAtATime) {
  ASSERT_EQ(GRPC_STATUS_OK, CreateTopic("events"));
  SubOpts o;
  o.ordering = true;
  ASSERT_EQ(GRPC_STATUS_OK, CreateSub("ord", "events", o).code);
  for (int i = 0; i < 3; i++) {
    ASSERT_EQ(GRPC_STATUS_OK, PublishMsgs("events", {{"a" + std::to_string(i), {}, "A"},
                                                     {"a" + std::to_string(i) + "'", {}, "A"}})
                                  .code);
    ASSERT_EQ(GRPC_STATUS_OK, PublishMsgs("events", {{"b" + std::to_string(i), {}, "B"}}).code);
  }
  ASSERT_EQ(GRPC_STATUS_OK, Publish("events", {"free"}));
  Stream* s = StartPull("ord", 600);
  // First round: the head of each key plus the unkeyed message.
  ASSERT_TRUE(s->WaitCount(3));
  EXPECT_TRUE(s->props_ordering);
  auto g = s->Snapshot();
  std::map<std::string, std::vector<std::string>> by_key;
  std::vector<std::string> expect_a = {"a0", "a0'", "a1", "a1'", "a2", "a2'"};
  std::vector<std::string> expect_b = {"b0", "b1", "b2"};
  // Nack the head of A once: it must come back before anything after it.
  std::string a_ack;
  for (auto& m : g) {
    if (m.ordering_key == "A") a_ack = m.ack_id;
  }
  ASSERT_FALSE(a_ack.empty());
  StreamModAck(s, {a_ack}, 0);
  size_t seen = 3;
  std::vector<std::string> order_a, order_b;
  bool first_a = true;
  for (int round = 0; round < 40 && (order_a.size() < 6 || order_b.size() < 3); round++) {
    ASSERT_TRUE(s->WaitCount(seen + 1)) << "round " << round;
    auto all = s->Snapshot();
    std::vector<std::string> acks;
    for (size_t i = (round == 0 ? 0 : seen); i < all.size(); i++) {
      const Got& m = all[i];
      if (m.ordering_key == "A") {
        if (first_a && m.ack_id == a_ack) continue;  // the nacked delivery
        first_a = false;
        order_a.push_back(m.data);
      } else if (m.ordering_key == "B") {
        order_b.push_back(m.data);
      }
      acks.push_back(m.ack_id);
    }
    seen = all.size();
    StreamAck(s, acks);
  }
  EXPECT_EQ(expect_a, order_a);
  EXPECT_EQ(expect_b, order_b);
}

TEST_F(PsTest, FilterDeliversOnlyMatchingMessages) {
  ASSERT_EQ(GRPC_STATUS_OK, CreateTopic("events"));
  SubOpts o;
  o.filter = "attributes.kind = \"order\"";
  ASSERT_EQ(GRPC_STATUS_OK, CreateSub("orders", "events", o).code);
  ASSERT_EQ(GRPC_STATUS_OK, CreateSub("all", "events"));
  ASSERT_EQ(GRPC_STATUS_OK, PublishMsgs("events", {{"1", {{"kind", "order"}}, ""},
                                                   {"2", {{"kind", "user"}}, ""},
                                                   {"3", {}, ""},
                                                   {"4", {{"kind", "order"}}, ""}})
                                .code);
  std::vector<Got> got;
  ASSERT_EQ(GRPC_STATUS_OK, Pull("orders", 10, &got).code);
  ASSERT_EQ(2u, got.size());
  EXPECT_EQ("1", got[0].data);
  EXPECT_EQ("4", got[1].data);
  std::vector<Got> all;
  ASSERT_EQ(GRPC_STATUS_OK, Pull("all", 10, &all).code);
  EXPECT_EQ(4u, all.size());
  // Non-matching messages were never stored for the filtered subscription.
  Reopen();
  std::vector<Got> after;
  ASSERT_EQ(GRPC_STATUS_OK, Pull("orders", 10, &after).code);
  EXPECT_EQ(2u, after.size());
}

TEST_F(PsTest, ExactlyOnceConfirmationsOnStream) {
  ASSERT_EQ(GRPC_STATUS_OK, CreateTopic("events"));
  SubOpts o;
  o.eod = true;
  ASSERT_EQ(GRPC_STATUS_OK, CreateSub("eod", "events", o).code);
  ASSERT_EQ(GRPC_STATUS_OK, Publish("events", {"a", "b"}));
  Stream* s = StartPull("eod", 600);
  ASSERT_TRUE(s->WaitCount(2));
  EXPECT_TRUE(s->props_eod);
  auto g = s->Snapshot();
  StreamModAck(s, {g[1].ack_id}, 60);
  ASSERT_TRUE(s->cond.WaitFor([&] { return s->modack_ok.size() == 1; }));
  EXPECT_EQ(g[1].ack_id, s->modack_ok[0]);
  StreamAck(s, {g[0].ack_id});
  ASSERT_TRUE(s->cond.WaitFor([&] { return s->acked_ok.size() == 1; }));
  EXPECT_EQ(g[0].ack_id, s->acked_ok[0]);
  // Acking again: invalid (already acknowledged).
  StreamAck(s, {g[0].ack_id});
  ASSERT_TRUE(s->cond.WaitFor([&] { return s->acked_invalid.size() == 1; }));
  EXPECT_EQ(g[0].ack_id, s->acked_invalid[0]);
  StreamAck(s, {g[1].ack_id});
  ASSERT_TRUE(s->cond.WaitFor([&] { return s->acked_ok.size() == 2; }));
}

TEST_F(PsTest, ExactlyOnceUnaryErrorInfo) {
  ASSERT_EQ(GRPC_STATUS_OK, CreateTopic("events"));
  SubOpts o;
  o.eod = true;
  ASSERT_EQ(GRPC_STATUS_OK, CreateSub("eod", "events", o).code);
  ASSERT_EQ(GRPC_STATUS_OK, Publish("events", {"a"}));
  std::vector<Got> got;
  ASSERT_EQ(GRPC_STATUS_OK, Pull("eod", 1, &got).code);
  ASSERT_EQ(1u, got.size());
  // Let the lease expire (10 s = 200 ms), then the old ack ID is invalid.
  std::vector<Got> again;
  for (int i = 0; i < 400 && again.empty(); i++) {
    ASSERT_EQ(GRPC_STATUS_OK, Pull("eod", 1, &again).code);
    if (again.empty()) usleep(5000);
  }
  ASSERT_EQ(1u, again.size());
  Result r = Ack("eod", {got[0].ack_id, "malformed", again[0].ack_id});
  EXPECT_EQ(GRPC_STATUS_FAILED_PRECONDITION, r.code);
  ASSERT_FALSE(r.details.empty());
  trb_rpc_status_details_t d = {};
  ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_status_details_decode(r.details.data(), r.details.size(), &d, &st_));
  const trb_rpc_any_t* any = trb_rpc_status_details_find(&d, "google.rpc.ErrorInfo");
  ASSERT_NE(nullptr, any);
  google_rpc_ErrorInfo info = google_rpc_ErrorInfo_init_zero;
  ASSERT_EQ(GRPC_STATUS_OK,
            trb_pb_decode(google_rpc_ErrorInfo_fields, any->value, any->value_len, &info, &st_));
  EXPECT_STREQ("pubsub.googleapis.com", info.domain);
  std::map<std::string, std::string> md;
  for (pb_size_t i = 0; i < info.metadata_count; i++) md[info.metadata[i].key] = info.metadata[i].value;
  EXPECT_EQ(2u, md.size());
  EXPECT_EQ("PERMANENT_FAILURE_INVALID_ACK_ID", md[got[0].ack_id]);
  EXPECT_EQ("PERMANENT_FAILURE_INVALID_ACK_ID", md["malformed"]);
  EXPECT_EQ(0u, md.count(again[0].ack_id));
  trb_pb_release(google_rpc_ErrorInfo_fields, &info);
  trb_rpc_status_details_deinit(&d);
  // The valid one was acknowledged: nothing comes back.
  std::vector<Got> none;
  ASSERT_EQ(GRPC_STATUS_OK, Pull("eod", 1, &none).code);
  EXPECT_EQ(0u, none.size());
  r = ModAck("eod", {again[0].ack_id}, 30);
  EXPECT_EQ(GRPC_STATUS_FAILED_PRECONDITION, r.code);
}

TEST_F(PsTest, CancelledStreamLeasesExpireThenRedeliver) {
  ASSERT_EQ(GRPC_STATUS_OK, CreateTopic("events"));
  ASSERT_EQ(GRPC_STATUS_OK, CreateSub("sub", "events"));
  Stream* a = StartPull("sub", 10);
  ASSERT_EQ(GRPC_STATUS_OK, Publish("events", {"x"}));
  ASSERT_TRUE(a->WaitCount(1));
  trb_rpc_stream_cancel(a->s);
  ASSERT_TRUE(a->WaitClosed());
  Stream* b = StartPull("sub", 600);
  ASSERT_TRUE(b->WaitCount(1));  // after the 200 ms lease of `a`
  EXPECT_EQ("x", b->Snapshot()[0].data);
}

TEST_F(PsTest, SlowStreamIsNotQueuedUnboundedData) {
  ASSERT_EQ(GRPC_STATUS_OK, CreateTopic("events"));
  ASSERT_EQ(GRPC_STATUS_OK, CreateSub("sub", "events"));
  Stream* slow = StartPull("sub", 600);  // no flow control of its own
  ASSERT_EQ(GRPC_STATUS_OK, Publish("events", {"first"}));
  ASSERT_TRUE(slow->WaitCount(1));
  trb_rpc_stream_read_pause(slow->s);
  // 40 MB for a client that reads nothing: the server stops leasing to it
  // once its send queue is full, so most messages stay available.
  std::vector<std::string> big(50, std::string(100000, 'x'));
  for (int i = 0; i < 8; i++) ASSERT_EQ(GRPC_STATUS_OK, Publish("events", big));
  size_t pulled = 0;
  for (int i = 0; i < 10; i++) {  // a PullResponse carries at most ~10 MB
    std::vector<Got> got;
    ASSERT_EQ(GRPC_STATUS_OK, Pull("sub", 1000, &got).code);
    pulled += got.size();
  }
  EXPECT_GT(pulled, 200u) << "the paused stream took almost everything";
  trb_rpc_stream_read_resume(slow->s);
}

TEST_F(PsTest, SeekToTimeAcknowledgesOlderMessages) {
  ASSERT_EQ(GRPC_STATUS_OK, CreateTopic("events"));
  ASSERT_EQ(GRPC_STATUS_OK, CreateSub("sub", "events"));
  ASSERT_EQ(GRPC_STATUS_OK, Publish("events", {"old"}));
  // Publish times have microsecond resolution; make sure they differ.
  std::vector<Got> first;
  ASSERT_EQ(GRPC_STATUS_OK, Pull("sub", 10, &first).code);
  ASSERT_EQ(1u, first.size());
  std::vector<Got> second;
  for (int i = 0; i < 100 && second.empty(); i++) {
    ASSERT_EQ(GRPC_STATUS_OK, Publish("events", {"new"}));
    ASSERT_EQ(GRPC_STATUS_OK, Pull("sub", 10, &second).code);
    if (!second.empty() && second[0].publish_seconds == first[0].publish_seconds &&
        second[0].publish_nanos == first[0].publish_nanos) {
      second.clear();
    }
  }
  ASSERT_EQ(1u, second.size());
  std::string sn = SubName("sub");
  google_pubsub_v1_SeekRequest r = google_pubsub_v1_SeekRequest_init_zero;
  r.subscription = &sn[0];
  r.which_target = google_pubsub_v1_SeekRequest_time_tag;
  r.target.time.seconds = second[0].publish_seconds;
  r.target.time.nanos = second[0].publish_nanos;
  Result res = Call(std::string(trb_test::kSub) + "Seek", google_pubsub_v1_SeekRequest_fields, &r);
  ASSERT_EQ(GRPC_STATUS_OK, res.code) << res.message;
  // "old" is acknowledged now; "new" (published at the seek time) is not.
  EXPECT_EQ(GRPC_STATUS_OK, ModAck("sub", {first[0].ack_id, second[0].ack_id}, 0).code);
  Reopen();
  std::vector<Got> left;
  ASSERT_EQ(GRPC_STATUS_OK, Pull("sub", 10, &left).code);
  ASSERT_LE(1u, left.size());
  for (auto& g : left) EXPECT_EQ("new", g.data);
  r.which_target = google_pubsub_v1_SeekRequest_snapshot_tag;
  r.target.snapshot = const_cast<char*>("projects/demo/snapshots/snap");
  EXPECT_EQ(GRPC_STATUS_UNIMPLEMENTED,
            Call(std::string(trb_test::kSub) + "Seek", google_pubsub_v1_SeekRequest_fields, &r).code);
}

}  // namespace
