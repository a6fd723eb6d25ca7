// emulator_test — the whole emulator in-process and as the CLI: declared
// resources, seed tables, data-directory lock, fault injection over the
// EmulatorAdmin RPCs, garbage on the port, clean SIGTERM.
#include "src/emulator/emulator.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <fstream>
#include <string>

#include "google/pubsub/v1/pubsub.pb.h"
#include "tests/emulator/child.h"
#include "tests/testutil/wait.h"
#include "tributary/emulator/v1/admin.pb.h"

namespace {

using trb_test::Client;

class EmulatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = trb_test::MakeTempDir();
    std::ofstream(dir_ + "/emu.json") << R"({"project": "p1", "topics": ["topic-t", "dlq"],
      "subscriptions": [{"name": "sub-s", "topic": "topic-t", "deadLetterPolicy": {"deadLetterTopic": "dlq"}}]})";
  }
  void TearDown() override {
    trb_emulator_stop(emu_);
    trb_test::RemoveDir(dir_);
  }
  grpc_status_code Start(trb_status_t* st, const char* tables = "examples/tables") {
    trb_emulator_config_t cfg = {};
    cfg.data_dir = data_.empty() ? nullptr : data_.c_str();
    cfg.config_path = cfg_.empty() ? nullptr : cfg_.c_str();
    cfg.tables_dir = tables;
    return trb_emulator_start(&cfg, &emu_, st);
  }
  std::string PubsubTarget() { return "127.0.0.1:" + std::to_string(trb_emulator_pubsub_port(emu_)); }

  std::string dir_;
  std::string data_ = "", cfg_ = "";
  trb_emulator_t* emu_ = nullptr;
};

grpc_status_code PublishOne(Client* c, const char* topic, std::string* message = nullptr) {
  google_pubsub_v1_PubsubMessage m = google_pubsub_v1_PubsubMessage_init_zero;
  m.data.data = reinterpret_cast<const uint8_t*>("x");
  m.data.len = 1;
  google_pubsub_v1_PublishRequest req = google_pubsub_v1_PublishRequest_init_zero;
  req.topic = const_cast<char*>(topic);
  req.messages_count = 1;
  req.messages = &m;
  return c->Call("/google.pubsub.v1.Publisher/Publish", google_pubsub_v1_PublishRequest_fields, &req,
                 nullptr, nullptr, message);
}

TEST_F(EmulatorTest, DeclaredResourcesSeedTablesAndRestart) {
  data_ = dir_ + "/data";
  cfg_ = dir_ + "/emu.json";
  trb_status_t st = {};
  ASSERT_EQ(GRPC_STATUS_OK, Start(&st)) << st.msg;
  EXPECT_STREQ("p1", trb_emulator_project(emu_));
  EXPECT_GT(trb_emulator_pubsub_port(emu_), 0);
  EXPECT_GT(trb_emulator_bigquery_port(emu_), 0);
  EXPECT_NE(trb_emulator_pubsub_port(emu_), trb_emulator_bigquery_port(emu_));
  {
    Client c(PubsubTarget());
    EXPECT_EQ(GRPC_STATUS_OK, PublishOne(&c, "projects/p1/topics/topic-t"));
    std::string msg;
    EXPECT_EQ(GRPC_STATUS_NOT_FOUND, PublishOne(&c, "projects/p1/topics/nope", &msg));
    google_pubsub_v1_GetSubscriptionRequest g = google_pubsub_v1_GetSubscriptionRequest_init_zero;
    g.subscription = const_cast<char*>("projects/p1/subscriptions/sub-s");
    google_pubsub_v1_Subscription sub = google_pubsub_v1_Subscription_init_zero;
    ASSERT_EQ(GRPC_STATUS_OK, c.Call("/google.pubsub.v1.Subscriber/GetSubscription",
                                     google_pubsub_v1_GetSubscriptionRequest_fields, &g,
                                     google_pubsub_v1_Subscription_fields, &sub));
    EXPECT_STREQ("projects/p1/topics/topic-t", sub.topic);
    EXPECT_TRUE(sub.has_dead_letter_policy);
    trb_pb_release(google_pubsub_v1_Subscription_fields, &sub);
  }
  // A second emulator on the same directory is refused while this one runs.
  trb_emulator_t* second = nullptr;
  trb_emulator_config_t cfg = {};
  cfg.data_dir = data_.c_str();
  EXPECT_EQ(GRPC_STATUS_FAILED_PRECONDITION, trb_emulator_start(&cfg, &second, &st));
  EXPECT_NE(std::string(st.msg).find("in use"), std::string::npos) << st.msg;

  // Restart on the same directory: declared resources already exist (kept),
  // seed tables already exist (kept), everything starts again.
  trb_emulator_stop(emu_);
  emu_ = nullptr;
  ASSERT_EQ(GRPC_STATUS_OK, Start(&st)) << st.msg;
  // The seed tables exist and can be queried (empty).
  std::vector<std::string> rows = trb_test::SqlJson(data_, "SELECT count(*) AS n FROM tributary.raw_orders");
  ASSERT_EQ(1u, rows.size());
  EXPECT_NE(rows[0].find("\"n\":0"), std::string::npos) << rows[0];
}

TEST_F(EmulatorTest, BadConfigAndTablesAreRejectedWithTheFileAndReason) {
  cfg_ = dir_ + "/bad.json";
  std::ofstream(cfg_) << R"({"topics": ["topic-t"], "subscriptions": [{"name": "sub-s"}]})";
  trb_status_t st = {};
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, Start(&st));
  EXPECT_NE(std::string(st.msg).find("bad.json: subscriptions[0]: needs a \"topic\""), std::string::npos) << st.msg;
  emu_ = nullptr;

  cfg_ = dir_ + "/emu.json";
  mkdir((dir_ + "/tables").c_str(), 0755);
  std::ofstream(dir_ + "/tables/ds.t.json") << R"([{"name": "a", "type": "NOPE"}])";
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, Start(&st, (dir_ + "/tables").c_str()));
  EXPECT_NE(std::string(st.msg).find("ds.t.json"), std::string::npos) << st.msg;
  emu_ = nullptr;

  std::ofstream(dir_ + "/tables/ds.t.json") << R"([{"name": "a", "type": "STRING"}])";
  std::ofstream(dir_ + "/tables/notable.json") << R"([{"name": "a", "type": "STRING"}])";
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, Start(&st, (dir_ + "/tables").c_str()));
  EXPECT_NE(std::string(st.msg).find("<dataset>.<table>.json"), std::string::npos) << st.msg;
  emu_ = nullptr;
}

TEST_F(EmulatorTest, FaultInjectionOverTheAdminRpc) {
  cfg_ = dir_ + "/emu.json";
  trb_status_t st = {};
  ASSERT_EQ(GRPC_STATUS_OK, Start(&st)) << st.msg;
  Client c(PubsubTarget());
  tributary_emulator_v1_InjectFaultRequest inj = tributary_emulator_v1_InjectFaultRequest_init_zero;
  inj.method = const_cast<char*>("/google.pubsub.v1.Publisher/Publish");
  inj.count = 2;
  inj.code = GRPC_STATUS_UNAVAILABLE;
  inj.message = const_cast<char*>("injected for the test");
  ASSERT_EQ(GRPC_STATUS_OK, c.Call("/tributary.emulator.v1.EmulatorAdmin/InjectFault",
                                   tributary_emulator_v1_InjectFaultRequest_fields, &inj, nullptr, nullptr));
  std::string msg;
  EXPECT_EQ(GRPC_STATUS_UNAVAILABLE, PublishOne(&c, "projects/p1/topics/topic-t", &msg));
  EXPECT_EQ("injected for the test", msg);
  EXPECT_EQ(GRPC_STATUS_UNAVAILABLE, PublishOne(&c, "projects/p1/topics/topic-t"));
  EXPECT_EQ(GRPC_STATUS_OK, PublishOne(&c, "projects/p1/topics/topic-t"));

  // Bad admin requests are INVALID_ARGUMENT with a reason.
  inj.code = 0;
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT,
            c.Call("/tributary.emulator.v1.EmulatorAdmin/InjectFault",
                   tributary_emulator_v1_InjectFaultRequest_fields, &inj, nullptr, nullptr, &msg));
  EXPECT_NE(msg.find("not a non-OK gRPC status code"), std::string::npos) << msg;

  // Every method, until cleared.
  inj.method = const_cast<char*>("*");
  inj.count = -1;
  inj.code = GRPC_STATUS_INTERNAL;
  ASSERT_EQ(GRPC_STATUS_OK, c.Call("/tributary.emulator.v1.EmulatorAdmin/InjectFault",
                                   tributary_emulator_v1_InjectFaultRequest_fields, &inj, nullptr, nullptr));
  for (int i = 0; i < 3; i++) EXPECT_EQ(GRPC_STATUS_INTERNAL, PublishOne(&c, "projects/p1/topics/topic-t"));
  tributary_emulator_v1_ClearFaultsRequest clr = tributary_emulator_v1_ClearFaultsRequest_init_zero;
  ASSERT_EQ(GRPC_STATUS_OK, c.Call("/tributary.emulator.v1.EmulatorAdmin/ClearFaults",
                                   tributary_emulator_v1_ClearFaultsRequest_fields, &clr, nullptr, nullptr));
  EXPECT_EQ(GRPC_STATUS_OK, PublishOne(&c, "projects/p1/topics/topic-t"));
  EXPECT_EQ(5, trb_faults_injected(trb_emulator_faults(emu_)));
}

TEST_F(EmulatorTest, GarbageOnThePortAndUnknownMethodsDoNotHurt) {
  cfg_ = dir_ + "/emu.json";
  trb_status_t st = {};
  ASSERT_EQ(GRPC_STATUS_OK, Start(&st)) << st.msg;
  for (int port : {trb_emulator_pubsub_port(emu_), trb_emulator_bigquery_port(emu_)}) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in a = {};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(0, connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)));
    std::string junk = "GET / HTTP/1.1\r\nHost: x\r\n\r\n" + std::string(4096, '\xff');
    ASSERT_GT(write(fd, junk.data(), junk.size()), 0);
    close(fd);
  }
  Client c(PubsubTarget());
  google_pubsub_v1_PublishRequest empty = google_pubsub_v1_PublishRequest_init_zero;
  EXPECT_EQ(GRPC_STATUS_UNIMPLEMENTED, c.Call("/google.pubsub.v1.Publisher/NoSuchMethod",
                                              google_pubsub_v1_PublishRequest_fields, &empty,
                                              nullptr, nullptr));
  EXPECT_EQ(GRPC_STATUS_OK, PublishOne(&c, "projects/p1/topics/topic-t"));
}

TEST(EmulatorCli, PrintsAddressesAndStopsCleanlyOnSigterm) {
  trb_rpc_init();
  {
    trb_test::EmulatorChild child;
    std::string err;
    ASSERT_TRUE(child.Start({"--project", "cli"}, &err)) << err;
    EXPECT_EQ(0u, child.pubsub().rfind("127.0.0.1:", 0)) << child.pubsub();
    EXPECT_EQ(0u, child.bigquery().rfind("127.0.0.1:", 0)) << child.bigquery();
    int status = child.Stop(SIGTERM);
    EXPECT_TRUE(WIFEXITED(status));
    EXPECT_EQ(0, WEXITSTATUS(status));
  }
  trb_rpc_shutdown();
}

}  // namespace
