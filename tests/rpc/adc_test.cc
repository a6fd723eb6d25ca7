// adc_test.cc — TRB_RPC_CREDS_GOOGLE_DEFAULT (Application Default
// Credentials) end to end, offline: a service-account key minted at test
// time in GOOGLE_APPLICATION_CREDENTIALS (gRPC signs a JWT with it, no token
// exchange) and the test server's certificate as gRPC's default roots
// (GRPC_DEFAULT_SSL_ROOTS_FILE_PATH), so the call crosses the same code path
// as one to *.googleapis.com.
#include <gtest/gtest.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "src/rpc/rpc.h"
#include "src/rpc/server.h"

namespace {

constexpr char kMethod[] = "/google.pubsub.v1.Publisher/GetTopic";
constexpr char kEmail[] = "tributary-test@demo.iam.gserviceaccount.com";

std::string Pem(EVP_PKEY* key, X509* cert) {
  BIO* b = BIO_new(BIO_s_mem());
  if (cert) PEM_write_bio_X509(b, cert);
  if (key) PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(b);
  return out;
}

void MintServerCert(std::string* cert_pem, std::string* key_pem) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, key);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(x, X509_get_subject_name(x));
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
  X509_EXTENSION* san = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, "DNS:localhost");
  X509_add_ext(x, san, -1);
  X509_EXTENSION_free(san);
  X509_sign(x, key, EVP_sha256());
  *cert_pem = Pem(nullptr, x);
  *key_pem = Pem(key, nullptr);
  X509_free(x);
  EVP_PKEY_free(key);
}

std::string JsonEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\n') out += "\\n";
    else if (c == '"') out += "\\\"";
    else out += c;
  }
  return out;
}

std::string WriteTemp(const std::string& name, const std::string& body) {
  const char* dir = std::getenv("TEST_TMPDIR");
  std::string path = std::string(dir ? dir : "/tmp") + "/" + name;
  std::ofstream(path) << body;
  return path;
}

// base64url → bytes (enough for a JWT payload).
std::string B64UrlDecode(const std::string& in) {
  std::string s = in;
  for (char& c : s) c = c == '-' ? '+' : c == '_' ? '/' : c;
  while (s.size() % 4) s += '=';
  std::string out(s.size(), '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(&out[0]),
                          reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

struct Seen {
  std::string authorization;
};

void OnGetTopic(void* user, trb_rpc_server_call_t* call, const uint8_t* req, size_t len) {
  size_t n = 0;
  const char* auth = trb_rpc_server_call_metadata(call, "authorization", &n);
  static_cast<Seen*>(user)->authorization = auth ? std::string(auth, n) : "";
  trb_rpc_server_call_finish(call, GRPC_STATUS_OK, nullptr, nullptr, 0, req, len);
}

TEST(AdcTest, ServiceAccountJwtOverTlsWithDefaultRoots) {
  std::string cert, key;
  MintServerCert(&cert, &key);
  setenv("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", WriteTemp("roots.pem", cert).c_str(), 1);
  EVP_PKEY* sa_key = EVP_RSA_gen(2048);
  ASSERT_NE(nullptr, sa_key);
  std::string sa_json = std::string("{\"type\":\"service_account\",\"project_id\":\"demo\",") +
                        "\"private_key_id\":\"k1\",\"private_key\":\"" +
                        JsonEscape(Pem(sa_key, nullptr)) + "\",\"client_email\":\"" + kEmail +
                        "\",\"client_id\":\"1\",\"token_uri\":\"https://oauth2.googleapis.com/token\"}";
  EVP_PKEY_free(sa_key);
  setenv("GOOGLE_APPLICATION_CREDENTIALS", WriteTemp("sa.json", sa_json).c_str(), 1);

  trb_rpc_init();
  trb_status_t st = {};
  Seen seen;
  trb_rpc_server_config_t scfg = {};
  scfg.tls_cert_chain_pem = cert.c_str();
  scfg.tls_private_key_pem = key.c_str();
  trb_rpc_server_t* srv = nullptr;
  ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_server_create(&scfg, &srv, &st)) << st.msg;
  ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_server_add_unary(srv, kMethod, OnGetTopic, &seen, &st));
  int port = 0;
  ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_server_start(srv, &port, &st)) << st.msg;
  trb_rpc_loop_t* loop = nullptr;
  ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_loop_create("adc", &loop, &st));

  std::string target = "127.0.0.1:" + std::to_string(port);
  trb_rpc_channel_config_t cc = {};
  cc.target = target.c_str();
  cc.creds = TRB_RPC_CREDS_GOOGLE_DEFAULT;
  cc.tls_server_name = "localhost";
  trb_rpc_channel_t* ch = nullptr;
  ASSERT_EQ(GRPC_STATUS_OK, trb_rpc_channel_create(&cc, &ch, &st)) << st.msg;
  trb_rpc_call_opts_t opts = {};
  opts.timeout_ms = 10000;
  trb_rpc_response_t resp;
  EXPECT_EQ(GRPC_STATUS_OK, trb_rpc_unary_call(loop, ch, kMethod, "", 0, &opts, &resp))
      << resp.message;
  trb_rpc_response_deinit(&resp);

  // "Bearer <header>.<payload>.<signature>", payload naming the account.
  ASSERT_EQ(0u, seen.authorization.rfind("Bearer ", 0)) << seen.authorization;
  std::string jwt = seen.authorization.substr(7);
  size_t d1 = jwt.find('.'), d2 = jwt.find('.', d1 + 1);
  ASSERT_NE(std::string::npos, d2);
  std::string payload = B64UrlDecode(jwt.substr(d1 + 1, d2 - d1 - 1));
  EXPECT_NE(std::string::npos, payload.find(kEmail)) << payload;

  trb_rpc_channel_destroy(ch);
  trb_rpc_loop_destroy(loop);
  trb_rpc_server_destroy(srv);
  trb_rpc_shutdown();
}

}  // namespace
