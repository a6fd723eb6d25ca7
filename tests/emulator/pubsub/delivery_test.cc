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

// Data of the messages with ordering key `key` among got[from..].
std::vector<std::string> KeyData(const std::vector<Got>& got, size_t from, const std::string& key) {
  std::vector<std::string> out;
  for (size_t i = from; i < got.size(); i++) {
    if (got[i].ordering_key == key) out.push_back(got[i].data);
  }
  return out;
}

std::string AckIdOf(const std::vector<Got>& got, const std::string& data) {
  for (auto& g : got) {
    if (g.data == data) return g.ack_id;
  }
  return "";
}

class OrderingTest : public PsTest {
 protected:
  // Topic "events", ordered subscription "ord"; A: a0..a5 in three
  // requests, B: b0..b2, one message without key.
  void PublishKeys(const SubOpts& extra = SubOpts()) {
    ASSERT_EQ(GRPC_STATUS_OK, CreateTopic("events"));
    SubOpts o = extra;
    o.ordering = true;
    ASSERT_EQ(GRPC_STATUS_OK, CreateSub("ord", "events", o).code);
    for (int i = 0; i < 6; i += 2) {
      ASSERT_EQ(GRPC_STATUS_OK,
                PublishMsgs("events", {{"a" + std::to_string(i), {}, "A"},
                                       {"a" + std::to_string(i + 1), {}, "A"}})
                    .code);
      ASSERT_EQ(GRPC_STATUS_OK,
                PublishMsgs("events", {{"b" + std::to_string(i / 2), {}, "B"}}).code);
    }
    ASSERT_EQ(GRPC_STATUS_OK, Publish("events", {"free"}));
  }
  const std::vector<std::string> a_ = {"a0", "a1", "a2", "a3", "a4", "a5"};
  const std::vector<std::string> b_ = {"b0", "b1", "b2"};
};

TEST_F(OrderingTest, SeveralMessagesOfAKeyOutstandingInPublishOrder) {
  PublishKeys();
  Stream* s = StartPull("ord", 600);
  // No ack is needed for the next message of a key: all 10 arrive.
  ASSERT_TRUE(s->WaitCount(10));
  EXPECT_TRUE(s->props_ordering);
  auto g = s->Snapshot();
  EXPECT_EQ(a_, KeyData(g, 0, "A"));
  EXPECT_EQ(b_, KeyData(g, 0, "B"));
  EXPECT_EQ(1u, KeyData(g, 0, "").size());
  // Unary Pull on a second ordered subscription: in order in one response.
  SubOpts o;
  o.ordering = true;
  ASSERT_EQ(GRPC_STATUS_OK, CreateSub("ord2", "events", o).code);
  ASSERT_EQ(GRPC_STATUS_OK, PublishMsgs("events", {{"c0", {}, "C"}, {"c1", {}, "C"}}).code);
  ASSERT_EQ(GRPC_STATUS_OK, PublishMsgs("events", {{"c2", {}, "C"}}).code);
  std::vector<Got> p;
  ASSERT_EQ(GRPC_STATUS_OK, Pull("ord2", 10, &p).code);
  EXPECT_EQ((std::vector<std::string>{"c0", "c1", "c2"}), KeyData(p, 0, "C"));
}

TEST_F(OrderingTest, NackRedeliversItAndEveryLaterMessageOfTheKeyInOrder) {
  PublishKeys();
  Stream* s = StartPull("ord", 600);
  ASSERT_TRUE(s->WaitCount(10));
  // a6 is published while a0..a5 are outstanding and delivered after them.
  ASSERT_EQ(GRPC_STATUS_OK, PublishMsgs("events", {{"a6", {}, "A"}}).code);
  ASSERT_TRUE(s->WaitCount(11));
  auto g = s->Snapshot();
  EXPECT_EQ("a6", g[10].data);
  // a0, a1 acked; a2 nacked: a2..a6 come again, in order, and nothing else.
  StreamAck(s, {AckIdOf(g, "a0"), AckIdOf(g, "a1")});
  StreamModAck(s, {AckIdOf(g, "a2")}, 0);
  ASSERT_TRUE(s->WaitCount(16));
  auto again = s->Snapshot();
  EXPECT_EQ((std::vector<std::string>{"a2", "a3", "a4", "a5", "a6"}), KeyData(again, 11, "A"));
  EXPECT_EQ(16u, again.size());
  // The old leases of a3..a6 were taken back: acking the new deliveries
  // settles the key; nothing of A comes back after that.
  std::vector<std::string> acks;
  for (size_t i = 11; i < again.size(); i++) acks.push_back(again[i].ack_id);
  for (auto& d : b_) acks.push_back(AckIdOf(g, d));
  acks.push_back(AckIdOf(g, "free"));
  StreamAck(s, acks);
  ASSERT_EQ(GRPC_STATUS_OK, PublishMsgs("events", {{"a7", {}, "A"}}).code);
  ASSERT_TRUE(s->WaitCount(17));
  EXPECT_EQ("a7", s->Snapshot()[16].data);
  std::vector<Got> left;
  ASSERT_EQ(GRPC_STATUS_OK, Pull("ord", 10, &left).code);
  EXPECT_EQ(0u, left.size());  // a7 is leased to the stream; the rest acked
}

TEST_F(OrderingTest, ExpiryOfOneMessageRedeliversTheLaterOnesOfTheKey) {
  PublishKeys();
  Stream* s = StartPull("ord", 600);
  ASSERT_TRUE(s->WaitCount(10));
  auto g = s->Snapshot();
  // Only a3's lease is shortened (10 s = 200 ms here); a4 and a5 keep
  // 600 s leases but come again behind a3 when a3's lease expires.
  StreamModAck(s, {AckIdOf(g, "a3")}, 10);
  ASSERT_TRUE(s->WaitCount(13));
  auto again = s->Snapshot();
  EXPECT_EQ((std::vector<std::string>{"a3", "a4", "a5"}), KeyData(again, 10, "A"));
  EXPECT_EQ(13u, again.size());
  EXPECT_TRUE(KeyData(again, 10, "B").empty());
}

TEST_F(OrderingTest, AKeyStaysWithTheStreamHoldingItsMessages) {
  PublishKeys();
  Stream* s1 = StartPull("ord", 600);
  ASSERT_TRUE(s1->WaitCount(10));
  Stream* s2 = StartPull("ord", 600);
  // A and B are outstanding on s1: their new messages go to s1 only; a
  // message of a new key or without key may go to either.
  ASSERT_EQ(GRPC_STATUS_OK, PublishMsgs("events", {{"a6", {}, "A"}}).code);
  ASSERT_EQ(GRPC_STATUS_OK, PublishMsgs("events", {{"b3", {}, "B"}}).code);
  ASSERT_EQ(GRPC_STATUS_OK, PublishMsgs("events", {{"d0", {}, "D"}}).code);
  ASSERT_TRUE(s1->WaitCount(12));
  auto g1 = s1->Snapshot();
  EXPECT_EQ("a6", KeyData(g1, 10, "A").at(0));
  EXPECT_EQ("b3", KeyData(g1, 10, "B").at(0));
  EXPECT_TRUE(KeyData(s2->Snapshot(), 0, "A").empty());
  // s2 is served meanwhile: d0 or the unkeyed messages may go there.
  EXPECT_EQ(10u, KeyData(g1, 0, "A").size() + KeyData(g1, 0, "B").size() - 1);
}

TEST_F(OrderingTest, DeadLetteredMessageLetsTheRestOfItsKeyThrough) {
  ASSERT_EQ(GRPC_STATUS_OK, CreateTopic("dead"));
  ASSERT_EQ(GRPC_STATUS_OK, CreateSub("deadsub", "dead"));
  SubOpts o;
  o.dlq = "dead";
  o.max_attempts = 5;
  PublishKeys(o);
  Stream* s = StartPull("ord", 600);
  ASSERT_TRUE(s->WaitCount(10));
  // Nack a0 five times: each time a0..a5 come again, in order.
  size_t seen = 10;
  for (int attempt = 1; attempt <= 5; attempt++) {
    auto g = s->Snapshot();
    std::string a0;
    for (size_t i = 0; i < g.size(); i++) {
      if (g[i].data == "a0") a0 = g[i].ack_id;
    }
    StreamModAck(s, {a0}, 0);
    if (attempt == 5) break;
    ASSERT_TRUE(s->WaitCount(seen + 6)) << attempt;
    auto again = s->Snapshot();
    EXPECT_EQ(a_, KeyData(again, seen, "A")) << attempt;
    EXPECT_EQ(attempt + 1, again[seen].delivery_attempt);
    seen += 6;
  }
  // The fifth nack dead-letters a0; a1..a5 are redelivered.
  ASSERT_TRUE(s->WaitCount(seen + 5));
  auto g = s->Snapshot();
  EXPECT_EQ((std::vector<std::string>{"a1", "a2", "a3", "a4", "a5"}), KeyData(g, seen, "A"));
  Stream* d = StartPull("deadsub", 600);
  ASSERT_TRUE(d->WaitCount(1));
  EXPECT_EQ("a0", d->Snapshot()[0].data);
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
  // INVALID_ARGUMENT as the real service (pull.c cites the sources).
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, r.code);
  ASSERT_FALSE(r.details.empty());
  trb_rpc_status_details_t d = {};
  ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_status_details_decode(r.details.data(), r.details.size(), &d, &st_));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, d.code);
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
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, r.code);
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
