// token_file_test.cc — TRB_RPC_CREDS_TLS with `bearer_token_file` (an
// access token read from a file and read again when the file changes), the
// server's `authorize` admission hook, and the environment path
// (TRIBUTARY_ACCESS_TOKEN_FILE, TRIBUTARY_<X>_ENDPOINT) that `tributary
// ingest` and `tributary stream` use. TLS with a certificate minted at test
// time (tests/rpc/test_cert.h).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <string>

#include "src/rpc/rpc.h"
#include "src/rpc/server.h"
#include "tests/rpc/test_cert.h"

namespace {

constexpr char kMethod[] = "/google.pubsub.v1.Publisher/GetTopic";

struct Server {
  std::mutex mu;
  std::string last_authorization;  // guarded by mu
  std::string required;            // guarded by mu; "" = admit all
  std::atomic<int> handled{0};
};

void OnGetTopic(void* user, trb_rpc_server_call_t* call, const uint8_t* req, size_t len) {
  auto* s = static_cast<Server*>(user);
  size_t n = 0;
  const char* auth = trb_rpc_server_call_metadata(call, "authorization", &n);
  {
    std::lock_guard<std::mutex> g(s->mu);
    s->last_authorization = auth ? std::string(auth, n) : "";
  }
  s->handled++;
  trb_rpc_server_call_finish(call, GRPC_STATUS_OK, nullptr, nullptr, 0, req, len);
}

grpc_status_code Authorize(void* user, trb_rpc_server_call_t* call, char* msg, size_t cap) {
  auto* s = static_cast<Server*>(user);
  std::lock_guard<std::mutex> g(s->mu);
  if (s->required.empty()) return GRPC_STATUS_OK;
  size_t n = 0;
  const char* auth = trb_rpc_server_call_metadata(call, "authorization", &n);
  if (auth != nullptr && std::string(auth, n) == "Bearer " + s->required) return GRPC_STATUS_OK;
  snprintf(msg, cap, "test server: want token %s", s->required.c_str());
  return GRPC_STATUS_UNAUTHENTICATED;
}

// Write `text` to `path` atomically (write + rename), as a token refresher would.
void WriteFileAtomically(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << text;
  }
  ASSERT_EQ(0, rename(tmp.c_str(), path.c_str()));
}

class TokenFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    trb_rpc_init();
    ASSERT_TRUE(trb_test::MintLocalhostCertificate(&cert_, &key_));
    char tmpl[] = "/tmp/trb_token_file_test_XXXXXX";
    ASSERT_NE(nullptr, mkdtemp(tmpl));
    dir_ = tmpl;
    token_path_ = dir_ + "/token";
    trb_rpc_server_config_t cfg = {};
    cfg.tls_cert_chain_pem = cert_.c_str();
    cfg.tls_private_key_pem = key_.c_str();
    cfg.authorize = Authorize;
    cfg.authorize_user = &server_;
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_server_create(&cfg, &srv_, &st_)) << st_.msg;
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_server_add_unary(srv_, kMethod, OnGetTopic, &server_, &st_));
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_server_start(srv_, &port_, &st_)) << st_.msg;
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_loop_create("token-client", &loop_, &st_));
    target_ = "127.0.0.1:" + std::to_string(port_);
  }
  void TearDown() override {
    trb_rpc_channel_destroy(ch_);
    trb_rpc_loop_destroy(loop_);
    trb_rpc_server_destroy(srv_);
    trb_rpc_shutdown();
    unlink(token_path_.c_str());
    rmdir(dir_.c_str());
  }
  grpc_status_code Open(const char* token_file) {
    trb_rpc_channel_config_t cc = {};
    cc.target = target_.c_str();
    cc.creds = TRB_RPC_CREDS_TLS;
    cc.root_certs_pem = cert_.c_str();
    cc.bearer_token_file = token_file;
    return trb_rpc_channel_create(&cc, &ch_, &st_);
  }
  grpc_status_code Call(std::string* message = nullptr) {
    std::string req = std::string("\x0a\x13", 2) + "projects/p/topics/t";
    trb_rpc_call_opts_t opts = {};
    opts.timeout_ms = 10000;
    trb_rpc_response_t resp;
    grpc_status_code code =
        trb_rpc_unary_call(loop_, ch_, kMethod, req.data(), req.size(), &opts, &resp);
    if (message) *message = resp.message ? resp.message : "";
    trb_rpc_response_deinit(&resp);
    return code;
  }
  std::string LastAuthorization() {
    std::lock_guard<std::mutex> g(server_.mu);
    return server_.last_authorization;
  }
  void Require(const std::string& token) {
    std::lock_guard<std::mutex> g(server_.mu);
    server_.required = token;
  }

  std::string cert_, key_, dir_, token_path_, target_;
  trb_status_t st_ = {};
  Server server_;
  trb_rpc_server_t* srv_ = nullptr;
  trb_rpc_loop_t* loop_ = nullptr;
  trb_rpc_channel_t* ch_ = nullptr;
  int port_ = 0;
};

TEST_F(TokenFileTest, TokenFromFileIsSentAndTrimmed) {
  WriteFileAtomically(token_path_, "  token-one\n");
  ASSERT_EQ(GRPC_STATUS_OK, Open(token_path_.c_str())) << st_.msg;
  ASSERT_EQ(GRPC_STATUS_OK, Call());
  EXPECT_EQ("Bearer token-one", LastAuthorization());
}

TEST_F(TokenFileTest, ChangedFileIsReadAgainOnTheSameChannel) {
  Require("token-one");
  WriteFileAtomically(token_path_, "token-one\n");
  ASSERT_EQ(GRPC_STATUS_OK, Open(token_path_.c_str())) << st_.msg;
  ASSERT_EQ(GRPC_STATUS_OK, Call());
  EXPECT_EQ(1, server_.handled.load());

  // The token expires: the server wants a new one, the old one is refused
  // before the handler sees the call, with the server's message.
  Require("token-two");
  std::string msg;
  EXPECT_EQ(GRPC_STATUS_UNAUTHENTICATED, Call(&msg));
  EXPECT_EQ("test server: want token token-two", msg);
  EXPECT_EQ(1, server_.handled.load());

  // The refresher writes the new token; the next call on the same channel
  // carries it.
  WriteFileAtomically(token_path_, "token-two\n");
  ASSERT_EQ(GRPC_STATUS_OK, Call());
  EXPECT_EQ("Bearer token-two", LastAuthorization());
  EXPECT_EQ(2, server_.handled.load());

  // Rewritten in place (same inode) with a token of another length.
  {
    std::ofstream f(token_path_, std::ios::trunc);
    f << "token-three-longer";
  }
  Require("token-three-longer");
  ASSERT_EQ(GRPC_STATUS_OK, Call());
  EXPECT_EQ("Bearer token-three-longer", LastAuthorization());
}

TEST_F(TokenFileTest, VanishedFileKeepsTheLastGoodToken) {
  WriteFileAtomically(token_path_, "token-one");
  ASSERT_EQ(GRPC_STATUS_OK, Open(token_path_.c_str())) << st_.msg;
  ASSERT_EQ(0, unlink(token_path_.c_str()));
  ASSERT_EQ(GRPC_STATUS_OK, Call());
  EXPECT_EQ("Bearer token-one", LastAuthorization());
  WriteFileAtomically(token_path_, "\n\n");  // empty: still the last good one
  ASSERT_EQ(GRPC_STATUS_OK, Call());
  EXPECT_EQ("Bearer token-one", LastAuthorization());
}

TEST_F(TokenFileTest, MissingOrEmptyFileIsUnauthenticatedAtCreate) {
  std::string missing = dir_ + "/nope";
  EXPECT_EQ(GRPC_STATUS_UNAUTHENTICATED, Open(missing.c_str()));
  EXPECT_EQ(nullptr, ch_);
  EXPECT_NE(nullptr, strstr(st_.msg, missing.c_str())) << st_.msg;
  EXPECT_NE(nullptr, strstr(st_.msg, "No such file")) << st_.msg;

  WriteFileAtomically(token_path_, " \n");
  EXPECT_EQ(GRPC_STATUS_UNAUTHENTICATED, Open(token_path_.c_str()));
  EXPECT_NE(nullptr, strstr(st_.msg, "empty")) << st_.msg;

  WriteFileAtomically(token_path_, "two words");
  EXPECT_EQ(GRPC_STATUS_UNAUTHENTICATED, Open(token_path_.c_str()));
  EXPECT_NE(nullptr, strstr(st_.msg, "not a token")) << st_.msg;
}

TEST_F(TokenFileTest, NoTokenIsRefusedByTheAuthorizeHook) {
  Require("token-one");
  trb_rpc_channel_config_t cc = {};
  cc.target = target_.c_str();
  cc.creds = TRB_RPC_CREDS_TLS;
  cc.root_certs_pem = cert_.c_str();
  ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_channel_create(&cc, &ch_, &st_)) << st_.msg;
  std::string msg;
  EXPECT_EQ(GRPC_STATUS_UNAUTHENTICATED, Call(&msg));
  EXPECT_EQ("test server: want token token-one", msg);
  EXPECT_EQ(0, server_.handled.load());
}

TEST(TokenFileConfigTest, ConflictingSettingsAreRejected) {
  trb_status_t st = {};
  trb_rpc_channel_t* ch = nullptr;
  trb_rpc_channel_config_t cc = {};
  cc.target = "127.0.0.1:1";
  cc.creds = TRB_RPC_CREDS_INSECURE;
  cc.bearer_token_file = "/dev/null";
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_rpc_channel_create(&cc, &ch, &st));
  cc.creds = TRB_RPC_CREDS_TLS;
  cc.bearer_token = "t";
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_rpc_channel_create(&cc, &ch, &st));
  EXPECT_NE(nullptr, strstr(st.msg, "both")) << st.msg;
  EXPECT_EQ(nullptr, ch);
}

TEST(TokenFileConfigTest, EnvironmentSelectsEndpointAndTokenFile) {
  trb_rpc_channel_config_t cc;
  unsetenv("PUBSUB_EMULATOR_HOST");
  setenv("TRIBUTARY_PUBSUB_ENDPOINT", "localhost:8443", 1);
  setenv("TRIBUTARY_ACCESS_TOKEN_FILE", "/run/token", 1);
  EXPECT_FALSE(trb_rpc_channel_config_from_env(&cc, "pubsub.googleapis.com:443",
                                               "PUBSUB_EMULATOR_HOST"));
  EXPECT_STREQ("localhost:8443", cc.target);
  EXPECT_EQ(TRB_RPC_CREDS_TLS, cc.creds);
  EXPECT_STREQ("/run/token", cc.bearer_token_file);
  EXPECT_EQ(nullptr, cc.root_certs_pem);

  // The other API keeps its default endpoint; the token file applies.
  EXPECT_FALSE(trb_rpc_channel_config_from_env(&cc, "bigquerystorage.googleapis.com:443",
                                               "BIGQUERY_STORAGE_EMULATOR_HOST"));
  EXPECT_STREQ("bigquerystorage.googleapis.com:443", cc.target);
  setenv("TRIBUTARY_BIGQUERY_STORAGE_ENDPOINT", "localhost:9443", 1);
  EXPECT_FALSE(trb_rpc_channel_config_from_env(&cc, "bigquerystorage.googleapis.com:443",
                                               "BIGQUERY_STORAGE_EMULATOR_HOST"));
  EXPECT_STREQ("localhost:9443", cc.target);

  // Without a token file: Application Default Credentials.
  unsetenv("TRIBUTARY_ACCESS_TOKEN_FILE");
  EXPECT_FALSE(trb_rpc_channel_config_from_env(&cc, "pubsub.googleapis.com:443",
                                               "PUBSUB_EMULATOR_HOST"));
  EXPECT_EQ(TRB_RPC_CREDS_GOOGLE_DEFAULT, cc.creds);
  EXPECT_EQ(nullptr, cc.bearer_token_file);

  // The emulator variable wins over everything (plaintext).
  setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:8085", 1);
  EXPECT_TRUE(trb_rpc_channel_config_from_env(&cc, "pubsub.googleapis.com:443",
                                              "PUBSUB_EMULATOR_HOST"));
  EXPECT_EQ(TRB_RPC_CREDS_INSECURE, cc.creds);
  unsetenv("PUBSUB_EMULATOR_HOST");
  unsetenv("TRIBUTARY_PUBSUB_ENDPOINT");
  unsetenv("TRIBUTARY_BIGQUERY_STORAGE_ENDPOINT");
}

}  // namespace
