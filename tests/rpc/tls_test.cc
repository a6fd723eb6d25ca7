// tls_test.cc — TLS with custom roots + a bearer token, end to end, with a
// certificate minted at test time by OpenSSL (nothing is committed).
#include <gtest/gtest.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstring>
#include <string>

#include "src/rpc/rpc.h"
#include "src/rpc/server.h"

namespace {

constexpr char kMethod[] = "/google.pubsub.v1.Publisher/GetTopic";

std::string BioToString(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(n));
}

// A self-signed certificate for "localhost" (SAN DNS:localhost,
// IP:127.0.0.1) and its key, both PEM.
void MintCertificate(std::string* cert_pem, std::string* key_pem) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  ASSERT_NE(nullptr, key);
  X509* x = X509_new();
  ASSERT_NE(nullptr, x);
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
  X509_EXTENSION* san =
      X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
  ASSERT_NE(nullptr, san);
  X509_add_ext(x, san, -1);
  X509_EXTENSION_free(san);
  X509_EXTENSION* bc = X509V3_EXT_conf_nid(nullptr, &ctx, NID_basic_constraints, "critical,CA:TRUE");
  X509_add_ext(x, bc, -1);
  X509_EXTENSION_free(bc);
  ASSERT_GT(X509_sign(x, key, EVP_sha256()), 0);

  BIO* cb = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(cb, x);
  *cert_pem = BioToString(cb);
  BIO_free(cb);
  BIO* kb = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(kb, key, nullptr, nullptr, 0, nullptr, nullptr);
  *key_pem = BioToString(kb);
  BIO_free(kb);
  X509_free(x);
  EVP_PKEY_free(key);
}

struct Seen {
  std::string authorization;
};

void OnGetTopic(void* user, trb_rpc_server_call_t* call, const uint8_t* req, size_t len) {
  auto* seen = static_cast<Seen*>(user);
  size_t n = 0;
  const char* auth = trb_rpc_server_call_metadata(call, "authorization", &n);
  seen->authorization = auth ? std::string(auth, n) : "";
  if (seen->authorization != "Bearer test-token") {
    trb_rpc_server_call_finish(call, GRPC_STATUS_UNAUTHENTICATED, "missing token", nullptr, 0,
                               nullptr, 0);
    return;
  }
  // Echo the request (a serialized GetTopicRequest) as the response.
  trb_rpc_server_call_finish(call, GRPC_STATUS_OK, nullptr, nullptr, 0, req, len);
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    trb_rpc_init();
    MintCertificate(&cert_, &key_);
    trb_rpc_server_config_t cfg = {};
    cfg.tls_cert_chain_pem = cert_.c_str();
    cfg.tls_private_key_pem = key_.c_str();
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_server_create(&cfg, &srv_, &st_)) << st_.msg;
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_server_add_unary(srv_, kMethod, OnGetTopic, &seen_, &st_));
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_server_start(srv_, &port_, &st_)) << st_.msg;
    ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_loop_create("tls-client", &loop_, &st_));
    target_ = "127.0.0.1:" + std::to_string(port_);
  }
  void TearDown() override {
    trb_rpc_loop_destroy(loop_);
    trb_rpc_server_destroy(srv_);
    trb_rpc_shutdown();
  }
  grpc_status_code Call(const char* roots, const char* token, std::string* body) {
    trb_rpc_channel_config_t cc = {};
    cc.target = target_.c_str();
    cc.creds = TRB_RPC_CREDS_TLS;
    cc.root_certs_pem = roots;
    cc.bearer_token = token;
    cc.tls_server_name = "localhost";
    trb_rpc_channel_t* ch = nullptr;
    EXPECT_EQ(GRPC_STATUS_OK, trb_rpc_channel_create(&cc, &ch, &st_)) << st_.msg;
    // GetTopicRequest{topic = "projects/p/topics/t"}: field 1, length-delimited.
    std::string req = std::string("\x0a\x13", 2) + "projects/p/topics/t";
    trb_rpc_call_opts_t opts = {};
    opts.timeout_ms = 10000;
    trb_rpc_response_t resp;
    grpc_status_code code =
        trb_rpc_unary_call(loop_, ch, kMethod, req.data(), req.size(), &opts, &resp);
    if (body) body->assign(reinterpret_cast<char*>(resp.response), resp.response_len);
    trb_rpc_response_deinit(&resp);
    trb_rpc_channel_destroy(ch);
    return code;
  }

  std::string cert_, key_;
  trb_status_t st_ = {};
  trb_rpc_server_t* srv_ = nullptr;
  trb_rpc_loop_t* loop_ = nullptr;
  int port_ = 0;
  std::string target_;
  Seen seen_;
};

TEST_F(TlsTest, TokenRoundTripOverTls) {
  std::string body;
  ASSERT_EQ(GRPC_STATUS_OK, Call(cert_.c_str(), "test-token", &body));
  EXPECT_EQ("Bearer test-token", seen_.authorization);
  EXPECT_EQ(std::string("\x0a\x13", 2) + "projects/p/topics/t", body);
}

TEST_F(TlsTest, UntrustedServerIsRefused) {
  std::string other_cert, other_key;
  MintCertificate(&other_cert, &other_key);
  EXPECT_EQ(GRPC_STATUS_UNAVAILABLE, Call(other_cert.c_str(), "test-token", nullptr));
  EXPECT_EQ("", seen_.authorization);
}

TEST_F(TlsTest, MissingTokenIsVisibleToTheServer) {
  EXPECT_EQ(GRPC_STATUS_UNAUTHENTICATED, Call(cert_.c_str(), nullptr, nullptr));
  EXPECT_EQ("", seen_.authorization);
}

TEST(ChannelConfigTest, TlsSettingsOnAnInsecureChannelAreRejected) {
  trb_rpc_channel_config_t cc = {};
  cc.target = "127.0.0.1:1";
  cc.creds = TRB_RPC_CREDS_INSECURE;
  cc.bearer_token = "t";
  trb_rpc_channel_t* ch = nullptr;
  trb_status_t st;
  EXPECT_EQ(GRPC_STATUS_INVALID_ARGUMENT, trb_rpc_channel_create(&cc, &ch, &st));
  EXPECT_EQ(nullptr, ch);
}

TEST(ChannelConfigTest, EmulatorHostFromEnvironment) {
  trb_rpc_channel_config_t cc;
  setenv("TRB_TEST_EMULATOR_HOST", "127.0.0.1:8085", 1);
  EXPECT_TRUE(trb_rpc_channel_config_from_env(&cc, "pubsub.googleapis.com:443",
                                              "TRB_TEST_EMULATOR_HOST"));
  EXPECT_STREQ("127.0.0.1:8085", cc.target);
  EXPECT_EQ(TRB_RPC_CREDS_INSECURE, cc.creds);
  unsetenv("TRB_TEST_EMULATOR_HOST");
  EXPECT_FALSE(trb_rpc_channel_config_from_env(&cc, "pubsub.googleapis.com:443",
                                               "TRB_TEST_EMULATOR_HOST"));
  EXPECT_STREQ("pubsub.googleapis.com:443", cc.target);
  EXPECT_EQ(TRB_RPC_CREDS_GOOGLE_DEFAULT, cc.creds);
}

}  // namespace
