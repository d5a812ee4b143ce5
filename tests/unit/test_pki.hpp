// test_pki.hpp: throwaway certificate authorities and leaf certificates for
// unit tests of TLS (OpenSSL 3, ECDSA P-256), written as PEM files.
//
// Test-only; one thread. TestCa owns its key and certificate.
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <stdexcept>
#include <string>

namespace mailbox::testing_pki {

inline EVP_PKEY* make_key() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  if (key == nullptr) throw std::runtime_error("EVP_EC_gen failed");
  return key;
}

inline void add_extension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) throw std::runtime_error("bad extension");
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

inline void write_pem(const std::string& path, X509* cert, EVP_PKEY* key) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) throw std::runtime_error("cannot write " + path);
  if (cert != nullptr) PEM_write_X509(f, cert);
  if (key != nullptr) PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
}

// A CA whose certificate is DIR/<name>-ca.pem; issue() writes leaf
// certificates (serverAuth and clientAuth) signed by it.
class TestCa {
 public:
  TestCa(std::string dir, const std::string& name) : dir_(std::move(dir)) {
    key_ = make_key();
    cert_ = X509_new();
    fill(cert_, name + " test CA", key_, nullptr, 1);
    add_extension(cert_, cert_, NID_basic_constraints, "critical,CA:TRUE");
    add_extension(cert_, cert_, NID_key_usage, "critical,keyCertSign,cRLSign");
    X509_sign(cert_, key_, EVP_sha256());
    ca_file_ = dir_ + "/" + name + "-ca.pem";
    write_pem(ca_file_, cert_, nullptr);
  }
  ~TestCa() {
    X509_free(cert_);
    EVP_PKEY_free(key_);
  }
  TestCa(const TestCa&) = delete;
  TestCa& operator=(const TestCa&) = delete;

  const std::string& ca_file() const { return ca_file_; }

  // Writes DIR/<file>.pem and DIR/<file>.key for subject `common_name`.
  void issue(const std::string& file, const std::string& common_name) {
    EVP_PKEY* key = make_key();
    X509* cert = X509_new();
    fill(cert, common_name, key, cert_, ++serial_);
    add_extension(cert, cert_, NID_basic_constraints, "critical,CA:FALSE");
    add_extension(cert, cert_, NID_key_usage, "critical,digitalSignature");
    add_extension(cert, cert_, NID_ext_key_usage, "serverAuth,clientAuth");
    X509_sign(cert, key_, EVP_sha256());
    write_pem(dir_ + "/" + file + ".pem", cert, nullptr);
    write_pem(dir_ + "/" + file + ".key", nullptr, key);
    X509_free(cert);
    EVP_PKEY_free(key);
  }
  std::string certificate(const std::string& file) const { return dir_ + "/" + file + ".pem"; }
  std::string key(const std::string& file) const { return dir_ + "/" + file + ".key"; }

 private:
  void fill(X509* cert, const std::string& common_name, EVP_PKEY* key, X509* issuer, long serial) {
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), serial);
    X509_gmtime_adj(X509_getm_notBefore(cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert), 24 * 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(common_name.c_str()),
                               -1, -1, 0);
    X509_set_issuer_name(cert, issuer != nullptr ? X509_get_subject_name(issuer) : name);
  }

  std::string dir_;
  EVP_PKEY* key_ = nullptr;
  X509* cert_ = nullptr;
  std::string ca_file_;
  long serial_ = 1;
};

}  // namespace mailbox::testing_pki
