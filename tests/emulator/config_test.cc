// config_test — the emulator's --config file: names, fields, errors.
#include "src/emulator/config.h"

#include <gtest/gtest.h>

#include <string>

namespace {

grpc_status_code Parse(const std::string& json, trb_emu_file_t* f, trb_status_t* st,
                       const char* project = "flagproj", bool overrides = false) {
  return trb_emu_file_parse(json.data(), json.size(), "dir/emu.json", project, overrides, f, st);
}

TEST(EmuConfig, FullDocument) {
  trb_emu_file_t f;
  trb_status_t st = {};
  ASSERT_EQ(GRPC_STATUS_OK, Parse(R"({
    "project": "demo", "tables": "tables",
    "topics": ["events", {"name": "projects/other/topics/dlq", "labels": {"team": "data"}}],
    "subscriptions": [{"name": "events-sub", "topic": "events", "ackDeadlineSeconds": 30,
      "enableMessageOrdering": true, "enableExactlyOnceDelivery": true,
      "filter": "attributes:kind", "messageRetentionDuration": "604800s",
      "deadLetterPolicy": {"deadLetterTopic": "projects/other/topics/dlq", "maxDeliveryAttempts": 7},
      "retryPolicy": {"minimumBackoff": "1.5s", "maximumBackoff": "600s"}}]})", &f, &st))
      << st.msg;
  EXPECT_STREQ("demo", f.project);
  EXPECT_STREQ("dir/tables", f.tables_dir);
  ASSERT_EQ(2u, f.n_topics);
  EXPECT_STREQ("projects/demo/topics/events", f.topics[0].name);
  EXPECT_STREQ("projects/other/topics/dlq", f.topics[1].name);
  ASSERT_EQ(1, f.topics[1].labels_count);
  EXPECT_STREQ("team", f.topics[1].labels[0].key);
  EXPECT_STREQ("data", f.topics[1].labels[0].value);
  ASSERT_EQ(1u, f.n_subscriptions);
  const google_pubsub_v1_Subscription& s = f.subscriptions[0];
  EXPECT_STREQ("projects/demo/subscriptions/events-sub", s.name);
  EXPECT_STREQ("projects/demo/topics/events", s.topic);
  EXPECT_EQ(30, s.ack_deadline_seconds);
  EXPECT_TRUE(s.enable_message_ordering);
  EXPECT_TRUE(s.enable_exactly_once_delivery);
  EXPECT_STREQ("attributes:kind", s.filter);
  EXPECT_TRUE(s.has_message_retention_duration);
  EXPECT_EQ(604800, s.message_retention_duration.seconds);
  ASSERT_TRUE(s.has_dead_letter_policy);
  EXPECT_STREQ("projects/other/topics/dlq", s.dead_letter_policy.dead_letter_topic);
  EXPECT_EQ(7, s.dead_letter_policy.max_delivery_attempts);
  ASSERT_TRUE(s.has_retry_policy);
  EXPECT_EQ(1, s.retry_policy.minimum_backoff.seconds);
  EXPECT_EQ(500000000, s.retry_policy.minimum_backoff.nanos);
  EXPECT_EQ(600, s.retry_policy.maximum_backoff.seconds);
  trb_emu_file_deinit(&f);
}

TEST(EmuConfig, ProjectPrecedence) {
  trb_emu_file_t f;
  trb_status_t st = {};
  ASSERT_EQ(GRPC_STATUS_OK, Parse(R"({"project": "filep", "topics": ["a"]})", &f, &st, "flagp", true));
  EXPECT_STREQ("projects/flagp/topics/a", f.topics[0].name);
  trb_emu_file_deinit(&f);
  ASSERT_EQ(GRPC_STATUS_OK, Parse(R"({"project": "filep", "topics": ["a"]})", &f, &st, nullptr, false));
  EXPECT_STREQ("projects/filep/topics/a", f.topics[0].name);
  trb_emu_file_deinit(&f);
  ASSERT_EQ(GRPC_STATUS_OK, Parse(R"({"topics": ["a"]})", &f, &st, nullptr, false));
  EXPECT_STREQ("projects/local-project/topics/a", f.topics[0].name);
  trb_emu_file_deinit(&f);
}

TEST(EmuConfig, ErrorsNameFilePathAndReason) {
  struct Case {
    const char* json;
    const char* want;
  } cases[] = {
      {"{", "dir/emu.json:"},
      {"[]", "$: must be a JSON object"},
      {R"({"topic": []})", "$.topic: unknown key"},
      {R"({"topics": {}})", "$.topics: must be an array"},
      {R"({"topics": [1]})", "topics[0]: must be a topic name"},
      {R"({"topics": [{"labels": {}}]})", "topics[0]: needs a \"name\""},
      {R"({"subscriptions": [{"name": "s"}]})", "subscriptions[0]: needs a \"topic\""},
      {R"({"subscriptions": [{"name": "s", "topic": "t", "ackDeadline": 5}]})",
       "subscriptions[0].ackDeadline: unknown key"},
      {R"({"subscriptions": [{"name": "s", "topic": "t", "ackDeadlineSeconds": "5"}]})",
       "subscriptions[0].ackDeadlineSeconds: must be an integer"},
      {R"({"subscriptions": [{"name": "s", "topic": "t", "retryPolicy": {"minimumBackoff": "10"}}]})",
       "subscriptions[0].retryPolicy.minimumBackoff: \"10\" is not a duration"},
      {R"({"subscriptions": [{"name": "s", "topic": "t", "deadLetterPolicy": {}}]})",
       "subscriptions[0].deadLetterPolicy: needs a \"deadLetterTopic\""},
      {R"({"topics": ["a"], "topics": ["b"]})", "duplicate"},
  };
  for (const Case& c : cases) {
    trb_emu_file_t f;
    trb_status_t st = {};
    EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, Parse(c.json, &f, &st)) << c.json;
    EXPECT_NE(std::string(st.msg).find(c.want), std::string::npos)
        << c.json << " -> " << st.msg;
    EXPECT_EQ(0u, f.n_topics);
    EXPECT_EQ(nullptr, f.topics);
  }
}

TEST(EmuConfig, LoadReportsMissingFile) {
  trb_emu_file_t f;
  trb_status_t st = {};
  EXPECT_EQ(GRPC_STATUS_NOT_FOUND, trb_emu_file_load("/nonexistent/emu.json", nullptr, false, &f, &st));
  EXPECT_NE(std::string(st.msg).find("/nonexistent/emu.json"), std::string::npos);
}

}  // namespace
