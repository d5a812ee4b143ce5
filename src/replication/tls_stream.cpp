#include "replication/tls_stream.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "core/assert.hpp"

namespace mailbox {
namespace {

// Longest common name read (X.509 caps it at 64 characters).
constexpr int kMaxCommonNameBytes = 256;

// OpenSSL's error queue of this thread as one line (and cleared).
std::string openssl_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char line[256];
    ERR_error_string_n(e, line, sizeof line);
    if (!out.empty()) out += "; ";
    out += line;
  }
  return out.empty() ? "no detail from OpenSSL" : out;
}

Status invalid(const std::string& what) { return Status::error(ErrorCode::kInvalidArgument, what); }

}  // namespace

std::string node_subject(uint64_t node_id) { return "node-" + std::to_string(node_id); }

Status TlsContext::create(const std::string& ca_file, const std::string& certificate_file,
                          const std::string& private_key_file, std::shared_ptr<const TlsContext>* out) {
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_method());
  if (ctx == nullptr) return Status::error(ErrorCode::kInternal, "cannot make a TLS context: " + openssl_errors());
  std::shared_ptr<const TlsContext> context(new TlsContext(ctx));
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1) {
    return Status::error(ErrorCode::kInternal, "cannot require TLS 1.3: " + openssl_errors());
  }
  // The cluster's CA is the only trust anchor (no system store).
  if (SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr) != 1) {
    return invalid(ca_file + ": cannot load the CA certificate: " + openssl_errors());
  }
  if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(ca_file.c_str())) {
    SSL_CTX_set_client_CA_list(ctx, names);
  }
  if (SSL_CTX_use_certificate_chain_file(ctx, certificate_file.c_str()) != 1) {
    return invalid(certificate_file + ": cannot load the certificate: " + openssl_errors());
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, private_key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return invalid(private_key_file + ": cannot load the private key: " + openssl_errors());
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    return invalid(private_key_file + " is not the key of " + certificate_file);
  }
  // Both ends present a certificate of the CA, or the handshake fails.
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  SSL_CTX_set_num_tickets(ctx, 0);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  *out = std::move(context);
  return Status::ok();
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

TlsStream::TlsStream(std::shared_ptr<const TlsContext> context, Role role) : context_(std::move(context)) {
  MAILBOX_ASSERT(context_ != nullptr, "a TLS stream needs a context");
  ssl_ = SSL_new(context_->native());
  MAILBOX_ASSERT(ssl_ != nullptr, "SSL_new succeeds (out of memory otherwise)");
  network_in_ = BIO_new(BIO_s_mem());
  network_out_ = BIO_new(BIO_s_mem());
  MAILBOX_ASSERT(network_in_ != nullptr && network_out_ != nullptr, "memory BIOs are made");
  BIO_set_mem_eof_return(network_in_, -1);  // empty means "more to come", not EOF
  SSL_set_bio(ssl_, network_in_, network_out_);
  if (role == Role::kClient) {
    SSL_set_connect_state(ssl_);
  } else {
    SSL_set_accept_state(ssl_);
  }
}

TlsStream::~TlsStream() { SSL_free(ssl_); }

Status TlsStream::fail(const char* what) {
  failed_ = true;
  std::string detail = openssl_errors();
  const long verify = SSL_get_verify_result(ssl_);
  if (verify != X509_V_OK) detail += std::string("; certificate: ") + X509_verify_cert_error_string(verify);
  return Status::error(ErrorCode::kUnauthorized, std::string(what) + ": " + detail);
}

Status TlsStream::finish_handshake() {
  if (SSL_get_verify_result(ssl_) != X509_V_OK) return fail("the peer's certificate does not verify");
  X509* peer = SSL_get1_peer_certificate(ssl_);
  if (peer == nullptr) return fail("the peer presented no certificate");
  char name[kMaxCommonNameBytes];
  const int n = X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, name, sizeof name);
  X509_free(peer);
  if (n <= 0) return fail("the peer's certificate has no common name");
  peer_common_name_.assign(name, static_cast<size_t>(n));
  established_ = true;
  return Status::ok();
}

Status TlsStream::start() {
  ERR_clear_error();
  const int rv = SSL_do_handshake(ssl_);
  if (rv == 1) return finish_handshake();
  const int e = SSL_get_error(ssl_, rv);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return Status::ok();
  return fail("TLS handshake failed");
}

Status TlsStream::receive(const char* data, size_t length, std::string* plaintext) {
  if (failed_) return Status::error(ErrorCode::kUnauthorized, "the TLS stream has failed");
  ERR_clear_error();
  if (length > 0 && BIO_write(network_in_, data, static_cast<int>(length)) != static_cast<int>(length)) {
    return fail("cannot buffer TLS input");
  }
  if (!established_) {
    const int rv = SSL_do_handshake(ssl_);
    if (rv != 1) {
      const int e = SSL_get_error(ssl_, rv);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return Status::ok();
      return fail("TLS handshake failed");
    }
    if (Status s = finish_handshake(); !s.is_ok()) return s;
  }
  char buffer[kTlsReadChunkBytes];
  for (;;) {
    const int n = SSL_read(ssl_, buffer, sizeof buffer);
    if (n > 0) {
      plaintext->append(buffer, static_cast<size_t>(n));
      continue;
    }
    const int e = SSL_get_error(ssl_, n);
    if (e == SSL_ERROR_WANT_READ) return Status::ok();
    if (e == SSL_ERROR_ZERO_RETURN) {
      failed_ = true;
      return Status::error(ErrorCode::kUnavailable, "the peer closed the TLS stream");
    }
    return fail("bad TLS record");
  }
}

Status TlsStream::send(std::string_view plaintext) {
  MAILBOX_ASSERT(established_, "TLS data is sent only after the handshake");
  if (failed_) return Status::error(ErrorCode::kUnauthorized, "the TLS stream has failed");
  ERR_clear_error();
  size_t at = 0;
  while (at < plaintext.size()) {
    size_t written = 0;
    // A memory BIO takes everything: SSL_write_ex writes it all or fails.
    if (SSL_write_ex(ssl_, plaintext.data() + at, plaintext.size() - at, &written) != 1) return fail("TLS write failed");
    at += written;
  }
  return Status::ok();
}

std::string TlsStream::take_output() {
  std::string out;
  const size_t pending = BIO_ctrl_pending(network_out_);
  if (pending == 0) return out;
  out.resize(pending);
  const int n = BIO_read(network_out_, out.data(), static_cast<int>(pending));
  MAILBOX_ASSERT(n == static_cast<int>(pending), "a memory BIO gives back what it holds");
  return out;
}

}  // namespace mailbox
