#include "auth/signing.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "auth/base64url.hpp"

namespace mailbox::auth {
namespace {

Status invalid(std::string message) { return Status::error(ErrorCode::kInvalidArgument, std::move(message)); }

struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

}  // namespace

Status generate_ed25519_key_pair(KeyPairPem* out) {
  std::unique_ptr<EVP_PKEY, PkeyDeleter> key(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  if (!key) return Status::error(ErrorCode::kInternal, "cannot generate an Ed25519 key");
  std::unique_ptr<BIO, BioDeleter> priv(BIO_new(BIO_s_mem()));
  std::unique_ptr<BIO, BioDeleter> pub(BIO_new(BIO_s_mem()));
  if (!priv || !pub || PEM_write_bio_PrivateKey(priv.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1 ||
      PEM_write_bio_PUBKEY(pub.get(), key.get()) != 1) {
    return Status::error(ErrorCode::kInternal, "cannot write the key pair as PEM");
  }
  out->private_pem = bio_text(priv.get());
  out->public_pem = bio_text(pub.get());
  return Status::ok();
}

Status create_token(std::string_view private_key_pem, const TokenRequest& request, std::string* token) {
  if (request.key_id.empty() || request.key_id.size() > kMaxKeyIdBytes) return invalid("a key id is required");
  if (request.subject.empty() || request.subject.size() > kMaxSubjectBytes) return invalid("a subject is required");
  if (request.audience.empty()) return invalid("the cluster's name (audience) is required");
  if (request.expires_at_s <= request.issued_at_s) return invalid("the token must expire after it is issued");
  if (request.rights == 0) return invalid("a token needs at least one operation");
  if (request.mailbox_patterns.empty() || request.mailbox_patterns.size() > kMaxMailboxPatterns) {
    return invalid("a token needs 1-" + std::to_string(kMaxMailboxPatterns) + " mailbox patterns");
  }
  for (const auto& p : request.mailbox_patterns) {
    if (!is_valid_mailbox_pattern(p)) return invalid("bad mailbox pattern '" + p + "': a name, or a prefix and *");
  }
  std::unique_ptr<BIO, BioDeleter> bio(BIO_new_mem_buf(private_key_pem.data(), static_cast<int>(private_key_pem.size())));
  std::unique_ptr<EVP_PKEY, PkeyDeleter> key(
      bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) return invalid("not a PEM private key");
  if (!EVP_PKEY_is_a(key.get(), "ED25519")) return invalid("not an Ed25519 private key");

  nlohmann::json header = {{"alg", "EdDSA"}, {"typ", "JWT"}, {"kid", request.key_id}};
  nlohmann::json ops = nlohmann::json::array();
  for (RightSet bit = 1; bit != 0; bit = static_cast<RightSet>(bit << 1)) {
    if (request.rights & bit) ops.push_back(std::string(right_name(static_cast<Right>(bit))));
  }
  nlohmann::json claims = {{"sub", request.subject},     {"aud", request.audience},
                           {"iat", request.issued_at_s}, {"exp", request.expires_at_s},
                           {"mbx", request.mailbox_patterns}, {"ops", ops}};
  const std::string signed_part = base64url_encode(header.dump()) + "." + base64url_encode(claims.dump());
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  size_t length = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &length, reinterpret_cast<const unsigned char*>(signed_part.data()),
                     signed_part.size()) != 1) {
    return Status::error(ErrorCode::kInternal, "cannot sign the token");
  }
  std::string signature(length, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &length,
                     reinterpret_cast<const unsigned char*>(signed_part.data()), signed_part.size()) != 1) {
    return Status::error(ErrorCode::kInternal, "cannot sign the token");
  }
  signature.resize(length);
  *token = signed_part + "." + base64url_encode(signature);
  return Status::ok();
}

}  // namespace mailbox::auth
