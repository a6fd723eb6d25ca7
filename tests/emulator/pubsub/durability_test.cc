// durability_test.cc — what the Pub/Sub emulator answers only after its db
// op committed, and the delivery state that survives a restart (destroy +
// reopen of the same SQLite file).
#include <thread>

#include "tests/emulator/pubsub/ps_fixture.h"

namespace {

using trb_test::Cond;
using trb_test::Got;
using trb_test::PsTest;
using trb_test::Result;

// Holds the db's committer thread inside one op until Release(): every op
// submitted meanwhile waits for a later transaction.
struct DbGate {
  Cond cond;
  bool entered = false, released = false;

  static grpc_status_code Apply(trb_db_t*, sqlite3*, void* user, trb_status_t*) {
    auto* g = static_cast<DbGate*>(user);
    g->cond.Update([&] { g->entered = true; });
    g->cond.WaitFor([&] { return g->released; }, 60000);
    return GRPC_STATUS_OK;
  }
  void Hold(trb_db_t* db) {
    trb_status_t st;
    ASSERT_EQ(GRPC_STATUS_OK, trb_db_submit(db, Apply, nullptr, this, &st)) << st.msg;
    ASSERT_TRUE(cond.WaitFor([&] { return entered; }));
  }
  void Release() {
    cond.Update([&] { released = true; });
  }
};

// Two Acknowledge calls for one message race: whichever comes second finds
// the message already gone from memory. Neither may be answered before the
// delete committed, or a crash after the reply brings the message back.
TEST_F(PsTest, RepeatedAckIsAnsweredOnlyAfterTheFirstAckCommitted) {
  ASSERT_EQ(GRPC_STATUS_OK, CreateTopic("events"));
  ASSERT_EQ(GRPC_STATUS_OK, CreateSub("sub", "events"));
  ASSERT_EQ(GRPC_STATUS_OK, Publish("events", {"a"}));
  std::vector<Got> got;
  ASSERT_EQ(GRPC_STATUS_OK, Pull("sub", 1, &got).code);
  ASSERT_EQ(1u, got.size());

  DbGate gate;
  gate.Hold(db_);
  Cond done;
  int answered = 0;
  Result r[2];
  std::thread t[2];
  for (int i = 0; i < 2; i++) {
    t[i] = std::thread([&, i] {
      r[i] = Ack("sub", {got[0].ack_id});
      done.Update([&] { answered++; });
    });
  }
  // While the committer is held no ack can have committed: no answer yet.
  EXPECT_FALSE(done.WaitFor([&] { return answered > 0; }, 500))
      << "an Acknowledge was answered before any ack committed";
  gate.Release();
  for (auto& x : t) x.join();
  EXPECT_EQ(GRPC_STATUS_OK, r[0].code) << r[0].message;
  EXPECT_EQ(GRPC_STATUS_OK, r[1].code) << r[1].message;
  Reopen();
  std::vector<Got> after;
  ASSERT_EQ(GRPC_STATUS_OK, Pull("sub", 10, &after).code);
  EXPECT_EQ(0u, after.size());
}

// Delivery attempts counted before a restart still count after it: a
// poison message cannot escape dead-lettering by an emulator restart.
TEST_F(PsTest, DeliveryAttemptsSurviveARestartAndStillDeadLetter) {
  ASSERT_EQ(GRPC_STATUS_OK, CreateTopic("events"));
  ASSERT_EQ(GRPC_STATUS_OK, CreateTopic("dead"));
  ASSERT_EQ(GRPC_STATUS_OK, CreateSub("deadsub", "dead"));
  SubOpts o;
  o.ack_deadline = 600;  // no expiry during the test: only nacks count
  o.dlq = "dead";
  o.max_attempts = 5;
  ASSERT_EQ(GRPC_STATUS_OK, CreateSub("src", "events", o).code);
  ASSERT_EQ(GRPC_STATUS_OK, Publish("events", {"poison"}));
  auto pull_nack = [&](int attempt) {
    std::vector<Got> got;
    ASSERT_EQ(GRPC_STATUS_OK, Pull("src", 10, &got).code);
    ASSERT_EQ(1u, got.size()) << "attempt " << attempt;
    EXPECT_EQ(attempt, got[0].delivery_attempt);
    Result r = ModAck("src", {got[0].ack_id}, 0);
    ASSERT_EQ(GRPC_STATUS_OK, r.code) << r.message;
  };
  pull_nack(1);
  pull_nack(2);
  Reopen();
  pull_nack(3);
  pull_nack(4);
  Reopen();
  pull_nack(5);  // the fifth nack moves it to the dead-letter topic
  std::vector<Got> dl;
  ASSERT_EQ(GRPC_STATUS_OK, Pull("deadsub", 10, &dl, true).code);
  ASSERT_EQ(1u, dl.size());
  EXPECT_EQ("poison", dl[0].data);
  EXPECT_EQ("5", dl[0].attrs["CloudPubSubDeadLetterSourceDeliveryCount"]);
  std::vector<Got> left;
  ASSERT_EQ(GRPC_STATUS_OK, Pull("src", 10, &left).code);
  EXPECT_EQ(0u, left.size());
}

grpc_status_code ExecSql(trb_db_t* db, const char* sql, trb_status_t* st) {
  return trb_db_run(
      db,
      [](trb_db_t* d, sqlite3*, void* user, trb_status_t* s) {
        return trb_db_exec(d, static_cast<const char*>(user), s);
      },
      const_cast<char*>(sql), st);
}

// A dead-letter move whose transaction fails (here: the insert into the
// dead-letter topic's subscription is refused) leaves the message with its
// source subscription, in memory as in the db, and it moves later.
TEST_F(PsTest, FailedDeadLetterMoveKeepsTheMessage) {
  ASSERT_EQ(GRPC_STATUS_OK, CreateTopic("events"));
  ASSERT_EQ(GRPC_STATUS_OK, CreateTopic("dead"));
  ASSERT_EQ(GRPC_STATUS_OK, CreateSub("deadsub", "dead"));
  SubOpts o;
  o.ack_deadline = 600;
  o.dlq = "dead";
  o.max_attempts = 5;
  ASSERT_EQ(GRPC_STATUS_OK, CreateSub("src", "events", o).code);
  ASSERT_EQ(GRPC_STATUS_OK, CreateSub("other", "events"));
  ASSERT_EQ(GRPC_STATUS_OK, Publish("events", {"poison"}));
  ASSERT_EQ(GRPC_STATUS_OK,
            ExecSql(db_,
                    "CREATE TEMP TRIGGER refuse BEFORE INSERT ON main.ps_unacked"
                    " WHEN NEW.sub_id = (SELECT id FROM main.ps_subs WHERE name ="
                    " 'projects/demo/subscriptions/deadsub')"
                    " BEGIN SELECT RAISE(ABORT, 'injected'); END;",
                    &st_))
      << st_.msg;
  std::vector<Got> got;
  for (int attempt = 1; attempt <= 5; attempt++) {
    got.clear();
    ASSERT_EQ(GRPC_STATUS_OK, Pull("src", 10, &got).code);
    ASSERT_EQ(1u, got.size()) << "attempt " << attempt;
    ASSERT_EQ(attempt, got[0].delivery_attempt);
    ASSERT_EQ(GRPC_STATUS_OK, ModAck("src", {got[0].ack_id}, 0).code);
  }
  // The move failed (the nack is answered after it): still deliverable.
  got.clear();
  ASSERT_EQ(GRPC_STATUS_OK, Pull("src", 10, &got).code);
  ASSERT_EQ(1u, got.size());
  EXPECT_EQ(6, got[0].delivery_attempt);
  // The other subscription acks its copy: the body must stay for "src".
  std::vector<Got> og;
  ASSERT_EQ(GRPC_STATUS_OK, Pull("other", 10, &og).code);
  ASSERT_EQ(1u, og.size());
  ASSERT_EQ(GRPC_STATUS_OK, Ack("other", {og[0].ack_id}).code);
  ASSERT_EQ(GRPC_STATUS_OK, ExecSql(db_, "DROP TRIGGER temp.refuse;", &st_)) << st_.msg;
  Reopen();
  got.clear();
  ASSERT_EQ(GRPC_STATUS_OK, Pull("src", 10, &got).code);
  ASSERT_EQ(1u, got.size());
  EXPECT_EQ("poison", got[0].data);
  ASSERT_EQ(GRPC_STATUS_OK, ModAck("src", {got[0].ack_id}, 0).code);
  std::vector<Got> dl;
  ASSERT_EQ(GRPC_STATUS_OK, Pull("deadsub", 10, &dl, true).code);
  ASSERT_EQ(1u, dl.size());
  EXPECT_EQ("poison", dl[0].data);
}

}  // namespace
