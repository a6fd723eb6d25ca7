// fixture.h — an rpc server on 127.0.0.1:0 and a client loop + channel.
#ifndef TRB_TESTS_RPC_FIXTURE_H
#define TRB_TESTS_RPC_FIXTURE_H

#include <gtest/gtest.h>

#include <string>

#include "src/rpc/rpc.h"
#include "src/rpc/server.h"
#include "tests/testutil/wait.h"

namespace trb_test {

class RpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    trb_rpc_init();
    trb_rpc_server_config_t cfg = {};
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    cfg.n_threads = server_threads_;
    ConfigureServer(&cfg);
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_server_create(&cfg, &srv_, &st_)) << st_.msg;
  }

  virtual void ConfigureServer(trb_rpc_server_config_t*) {}

  // Call after registering handlers.
  void Start() {
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_server_start(srv_, &port_, &st_)) << st_.msg;
    ASSERT_GT(port_, 0);
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_loop_create("test-client", &loop_, &st_)) << st_.msg;
    target_ = "127.0.0.1:" + std::to_string(port_);
    trb_rpc_channel_config_t cc = {};
    cc.target = target_.c_str();
    cc.creds = TRB_RPC_CREDS_INSECURE;
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_channel_create(&cc, &ch_, &st_)) << st_.msg;
  }

  void TearDown() override {
    if (loop_) {
      EXPECT_EQ(0, trb_rpc_loop_live_calls(loop_)) << "client calls leaked";
    }
    trb_rpc_loop_destroy(loop_);
    trb_rpc_channel_destroy(ch_);
    trb_rpc_server_shutdown(srv_);
    if (srv_) {
      EXPECT_EQ(0, trb_rpc_server_live_calls(srv_)) << "server calls leaked";
    }
    trb_rpc_server_destroy(srv_);
    trb_rpc_shutdown();
  }

  int server_threads_ = 1;
  trb_status_t st_ = {};
  trb_rpc_server_t* srv_ = nullptr;
  int port_ = 0;
  std::string target_;
  trb_rpc_loop_t* loop_ = nullptr;
  trb_rpc_channel_t* ch_ = nullptr;
};

}  // namespace trb_test

#endif  // TRB_TESTS_RPC_FIXTURE_H
