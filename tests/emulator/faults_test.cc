// faults_test — next-N errors, wildcard rules, latency, stream droppers.
#include "src/emulator/faults.h"

#include <gtest/gtest.h>

#include <string>

namespace {

const char* kPublish = "/google.pubsub.v1.Publisher/Publish";

TEST(Faults, NextNCallsFailThenPass) {
  trb_faults_t* f = trb_faults_create();
  ASSERT_NE(nullptr, f);
  trb_status_t st = {};
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_add_error(f, kPublish, 2, GRPC_STATUS_UNAVAILABLE, "try later", &st));
  grpc_status_code code = GRPC_STATUS_OK;
  char msg[64];
  int lat = -1;
  EXPECT_TRUE(trb_faults_take(f, kPublish, &code, msg, sizeof(msg), &lat));
  EXPECT_EQ(GRPC_STATUS_UNAVAILABLE, code);
  EXPECT_STREQ("try later", msg);
  EXPECT_EQ(0, lat);
  EXPECT_FALSE(trb_faults_take(f, "/google.pubsub.v1.Subscriber/Pull", &code, msg, sizeof(msg), &lat));
  EXPECT_TRUE(trb_faults_take(f, kPublish, &code, msg, sizeof(msg), &lat));
  EXPECT_FALSE(trb_faults_take(f, kPublish, &code, msg, sizeof(msg), &lat));
  EXPECT_EQ(2, trb_faults_injected(f));
  trb_faults_destroy(f);
}

TEST(Faults, WildcardUnlimitedUntilClearedAndExactRuleWins) {
  trb_faults_t* f = trb_faults_create();
  trb_status_t st = {};
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_add_error(f, "*", -1, GRPC_STATUS_INTERNAL, "boom", &st));
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_add_error(f, kPublish, 1, GRPC_STATUS_ABORTED, "exact", &st));
  grpc_status_code code;
  char msg[64];
  EXPECT_TRUE(trb_faults_take(f, kPublish, &code, msg, sizeof(msg), nullptr));
  EXPECT_EQ(GRPC_STATUS_ABORTED, code);
  for (int i = 0; i < 5; i++) {
    EXPECT_TRUE(trb_faults_take(f, "/x/Y", &code, msg, sizeof(msg), nullptr));
    EXPECT_EQ(GRPC_STATUS_INTERNAL, code);
  }
  EXPECT_TRUE(trb_faults_take(f, kPublish, &code, msg, sizeof(msg), nullptr));
  EXPECT_EQ(GRPC_STATUS_INTERNAL, code);  // exact rule used up, "*" applies
  trb_faults_clear(f);
  EXPECT_FALSE(trb_faults_take(f, "/x/Y", &code, msg, sizeof(msg), nullptr));
  trb_faults_destroy(f);
}

TEST(Faults, LatencyAndValidation) {
  trb_faults_t* f = trb_faults_create();
  trb_status_t st = {};
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_faults_set_latency(f, kPublish, -1, &st));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_faults_add_error(f, "", 1, GRPC_STATUS_INTERNAL, "", &st));
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_faults_add_error(f, kPublish, 1, GRPC_STATUS_OK, "", &st));
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_set_latency(f, kPublish, 25, &st));
  grpc_status_code code;
  int lat = 0;
  EXPECT_FALSE(trb_faults_take(f, kPublish, &code, nullptr, 0, &lat));
  EXPECT_EQ(25, lat);
  trb_faults_destroy(f);
}

TEST(Faults, DropStreamsCallsEveryDropper) {
  trb_faults_t* f = trb_faults_create();
  trb_status_t st = {};
  struct Seen {
    int n = 0;
    grpc_status_code code = GRPC_STATUS_OK;
    std::string msg;
  } a, b;
  auto cb = [](void* u, grpc_status_code code, const char* m) {
    auto* s = static_cast<Seen*>(u);
    s->n++;
    s->code = code;
    s->msg = m;
  };
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_on_drop(f, cb, &a, &st));
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_on_drop(f, cb, &b, &st));
  trb_faults_drop_streams(f, GRPC_STATUS_UNAVAILABLE, "restart");
  EXPECT_EQ(1, a.n);
  EXPECT_EQ(1, b.n);
  EXPECT_EQ(GRPC_STATUS_UNAVAILABLE, b.code);
  EXPECT_EQ("restart", a.msg);
  trb_faults_off_drop(f, cb, &a);
  trb_faults_drop_streams(f, GRPC_STATUS_ABORTED, "again");
  EXPECT_EQ(1, a.n);
  EXPECT_EQ(2, b.n);
  EXPECT_EQ(GRPC_STATUS_ABORTED, b.code);
  trb_faults_destroy(f);
}

TEST(Faults, DropAfterWriteCountsDownPerMethod) {
  trb_faults_t* f = trb_faults_create();
  trb_status_t st = {};
  const char* kAppend = "/google.cloud.bigquery.storage.v1.BigQueryWrite/AppendRows";
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_faults_add_drop_after_write(f, "", 1, &st));
  EXPECT_FALSE(trb_faults_take_drop_after_write(f, kAppend));
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_add_drop_after_write(f, kAppend, 2, &st));
  EXPECT_FALSE(trb_faults_take_drop_after_write(f, kPublish));
  EXPECT_TRUE(trb_faults_take_drop_after_write(f, kAppend));
  // An error rule on the same method is independent of it.
  grpc_status_code code;
  EXPECT_FALSE(trb_faults_take(f, kAppend, &code, nullptr, 0, nullptr));
  EXPECT_TRUE(trb_faults_take_drop_after_write(f, kAppend));
  EXPECT_FALSE(trb_faults_take_drop_after_write(f, kAppend));
  EXPECT_EQ(2, trb_faults_injected(f));
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_add_drop_after_write(f, "*", 1, &st));
  EXPECT_TRUE(trb_faults_take_drop_after_write(f, kAppend));
  EXPECT_FALSE(trb_faults_take_drop_after_write(f, kAppend));
  ASSERT_EQ(GRPC_STATUS_OK, trb_faults_add_drop_after_write(f, kAppend, 5, &st));
  trb_faults_clear(f);
  EXPECT_FALSE(trb_faults_take_drop_after_write(f, kAppend));
  EXPECT_FALSE(trb_faults_take_drop_after_write(nullptr, kAppend));
  trb_faults_destroy(f);
}

TEST(Faults, SchemaUpdateHookForwardsAndUnregisters) {
  trb_faults_t* f = trb_faults_create();
  trb_status_t st = {};
  EXPECT_EQ(GRPC_STATUS_UNIMPLEMENTED, trb_faults_update_table_schema(f, "d.t", "[]", 2, &st));
  struct Seen {
    int n = 0;
    std::string table, json;
  } a, b;
  auto cb = [](void* u, const char* table, const char* json, size_t len, trb_status_t* st) {
    auto* s = static_cast<Seen*>(u);
    s->n++;
    s->table = table;
    s->json.assign(json, len);
    return s->n > 1 ? trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT, "second") : GRPC_STATUS_OK;
  };
  trb_faults_on_schema_update(f, cb, &a);
  EXPECT_EQ(GRPC_STATUS_OK, trb_faults_update_table_schema(f, "d.t", "[1]", 3, &st));
  EXPECT_EQ(1, a.n);
  EXPECT_EQ("d.t", a.table);
  EXPECT_EQ("[1]", a.json);
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_faults_update_table_schema(f, "d.t", "[1]", 3, &st));
  EXPECT_STREQ("second", st.msg);
  trb_faults_off_schema_update(f, cb, &b);  // not the registered one: no-op
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_faults_update_table_schema(f, "d.t", "[1]", 3, &st));
  trb_faults_off_schema_update(f, cb, &a);
  EXPECT_EQ(GRPC_STATUS_UNIMPLEMENTED, trb_faults_update_table_schema(f, "d.t", "[1]", 3, &st));
  EXPECT_EQ(3, a.n);
  EXPECT_EQ(0, b.n);
  trb_faults_destroy(f);
}

}  // namespace
