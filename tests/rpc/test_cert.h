// test_cert.h — a self-signed server certificate minted at test time with
// OpenSSL (nothing is committed): P-256 key, CN and SAN DNS:localhost,
// IP:127.0.0.1, CA:TRUE so it is its own root, valid for ±1 hour.
#ifndef TRB_TESTS_RPC_TEST_CERT_H
#define TRB_TESTS_RPC_TEST_CERT_H

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <string>

namespace trb_test {

// Fills `cert_pem` and `key_pem`; returns false (both empty) on failure.
inline bool MintLocalhostCertificate(std::string* cert_pem, std::string* key_pem) {
  cert_pem->clear();
  key_pem->clear();
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  bool ok = key != nullptr && x != nullptr;
  if (ok) {
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
    const char* exts[][2] = {{"subjectAltName", "DNS:localhost,IP:127.0.0.1"},
                             {"basicConstraints", "critical,CA:TRUE"}};
    for (auto& e : exts) {
      X509_EXTENSION* ext = X509V3_EXT_conf(nullptr, &ctx, e[0], e[1]);
      ok = ok && ext != nullptr && X509_add_ext(x, ext, -1) == 1;
      X509_EXTENSION_free(ext);
    }
    ok = ok && X509_sign(x, key, EVP_sha256()) > 0;
  }
  if (ok) {
    BIO* b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, x);
    char* data = nullptr;
    long n = BIO_get_mem_data(b, &data);
    cert_pem->assign(data, static_cast<size_t>(n));
    BIO_free(b);
    b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr);
    n = BIO_get_mem_data(b, &data);
    key_pem->assign(data, static_cast<size_t>(n));
    BIO_free(b);
  }
  X509_free(x);
  EVP_PKEY_free(key);
  return ok;
}

}  // namespace trb_test

#endif  // TRB_TESTS_RPC_TEST_CERT_H
