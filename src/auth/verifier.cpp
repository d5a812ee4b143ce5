#include "auth/verifier.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "auth/base64url.hpp"
#include "core/assert.hpp"

namespace mailbox::auth {
namespace {

constexpr size_t kEd25519SignatureBytes = 64;
constexpr std::string_view kPublicKeySuffix = ".pub";

Status unauthorized(std::string message) { return Status::error(ErrorCode::kUnauthorized, std::move(message)); }

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

bool verify_ed25519(EVP_PKEY* key, std::string_view signed_part, std::string_view signature) {
  if (signature.size() != kEd25519SignatureBytes) return false;
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key) != 1) return false;
  return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                          reinterpret_cast<const unsigned char*>(signed_part.data()), signed_part.size()) == 1;
}

// A JSON number that is a whole number of seconds, as int64.
bool whole_seconds(const nlohmann::json& v, int64_t* out) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) return false;
    *out = static_cast<int64_t>(u);
    return true;
  }
  if (v.is_number_integer()) {
    *out = v.get<int64_t>();
    return true;
  }
  return false;
}

}  // namespace

KeyRing::~KeyRing() {
  for (auto& [kid, key] : keys_) EVP_PKEY_free(key);
}

Status KeyRing::add_public_key_pem(const std::string& kid, std::string_view pem) {
  if (kid.empty() || kid.size() > kMaxKeyIdBytes) {
    return Status::error(ErrorCode::kInvalidArgument, "a key id must be 1-" + std::to_string(kMaxKeyIdBytes) + " bytes");
  }
  if (keys_.count(kid)) return Status::error(ErrorCode::kInvalidArgument, "key id '" + kid + "' is repeated");
  if (keys_.size() >= kMaxVerificationKeys) {
    return Status::error(ErrorCode::kInvalidArgument,
                         "more than " + std::to_string(kMaxVerificationKeys) + " verification keys");
  }
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (!bio) return Status::error(ErrorCode::kInternal, "out of memory");
  EVP_PKEY* key = PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (!key) return Status::error(ErrorCode::kInvalidArgument, "key '" + kid + "' is not a PEM public key");
  if (!EVP_PKEY_is_a(key, "ED25519")) {
    EVP_PKEY_free(key);
    return Status::error(ErrorCode::kInvalidArgument, "key '" + kid + "' is not an Ed25519 key");
  }
  keys_.emplace(kid, key);
  return Status::ok();
}

Status KeyRing::load_directory(const std::string& directory, std::shared_ptr<KeyRing>* out) {
  namespace fs = std::filesystem;
  auto ring = std::make_shared<KeyRing>();
  std::error_code ec;
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(directory, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() > kPublicKeySuffix.size() && name.ends_with(kPublicKeySuffix)) files.push_back(entry.path());
  }
  if (ec) return Status::error(ErrorCode::kInvalidArgument, "cannot read " + directory + ": " + ec.message());
  std::sort(files.begin(), files.end());
  for (const auto& path : files) {
    if (fs::file_size(path, ec) > kMaxKeyFileBytes || ec) {
      return Status::error(ErrorCode::kInvalidArgument, path.string() + " is too large or unreadable");
    }
    std::ifstream in(path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    const std::string name = path.filename().string();
    Status s = ring->add_public_key_pem(name.substr(0, name.size() - kPublicKeySuffix.size()), text.str());
    if (!s.is_ok()) return Status::error(s.code, path.string() + ": " + s.message);
  }
  if (ring->size() == 0) {
    return Status::error(ErrorCode::kInvalidArgument, "no token verification key (<kid>.pub) in " + directory);
  }
  *out = std::move(ring);
  return Status::ok();
}

EVP_PKEY* KeyRing::find(std::string_view kid) const {
  auto it = keys_.find(kid);
  return it == keys_.end() ? nullptr : it->second;
}

std::string KeyRing::key_ids() const {
  std::string out;
  for (const auto& [kid, key] : keys_) out += (out.empty() ? "" : ",") + kid;
  return out;
}

Status parse_token_header(std::string_view header_json, std::string* key_id) {
  auto header = nlohmann::json::parse(header_json, nullptr, false);
  if (!header.is_object()) return unauthorized("malformed token: its header is not a JSON object");
  auto alg = header.find("alg");
  if (alg == header.end() || !alg->is_string() || alg->get_ref<const std::string&>() != "EdDSA") {
    return unauthorized("token not accepted: alg must be EdDSA");
  }
  if (header.contains("crit")) return unauthorized("token not accepted: critical header extensions are not supported");
  auto kid = header.find("kid");
  if (kid == header.end() || !kid->is_string() || kid->get_ref<const std::string&>().empty() ||
      kid->get_ref<const std::string&>().size() > kMaxKeyIdBytes) {
    return unauthorized("malformed token: its header has no kid");
  }
  *key_id = kid->get<std::string>();
  return Status::ok();
}

Status parse_token_claims(std::string_view payload_json, TokenClaims* out) {
  auto claims = nlohmann::json::parse(payload_json, nullptr, false);
  if (!claims.is_object()) return unauthorized("malformed token: its claims are not a JSON object");
  TokenClaims c;
  auto sub = claims.find("sub");
  if (sub == claims.end() || !sub->is_string() || sub->get_ref<const std::string&>().empty() ||
      sub->get_ref<const std::string&>().size() > kMaxSubjectBytes) {
    return unauthorized("malformed token: sub must be a non-empty string");
  }
  c.subject = sub->get<std::string>();
  auto aud = claims.find("aud");
  if (aud != claims.end() && aud->is_string()) {
    c.audiences.push_back(aud->get<std::string>());
  } else if (aud != claims.end() && aud->is_array() && aud->size() <= kMaxMailboxPatterns) {
    for (const auto& a : *aud) {
      if (!a.is_string()) return unauthorized("malformed token: aud must be strings");
      c.audiences.push_back(a.get<std::string>());
    }
  }
  if (c.audiences.empty()) return unauthorized("malformed token: aud (the cluster's name) is missing");
  auto exp = claims.find("exp");
  if (exp == claims.end() || !whole_seconds(*exp, &c.expires_at_s)) {
    return unauthorized("malformed token: exp must be a whole number of seconds");
  }
  auto nbf = claims.find("nbf");
  if (nbf != claims.end() && !whole_seconds(*nbf, &c.not_before_s)) {
    return unauthorized("malformed token: nbf must be a whole number of seconds");
  }
  auto mbx = claims.find("mbx");
  if (mbx == claims.end() || !mbx->is_array() || mbx->size() > kMaxMailboxPatterns) {
    return unauthorized("malformed token: mbx must be an array of mailbox patterns");
  }
  for (const auto& p : *mbx) {
    if (!p.is_string() || !is_valid_mailbox_pattern(p.get_ref<const std::string&>())) {
      return unauthorized("malformed token: mbx holds an invalid mailbox pattern");
    }
    c.mailbox_patterns.push_back(p.get<std::string>());
  }
  auto ops = claims.find("ops");
  if (ops == claims.end() || !ops->is_array()) return unauthorized("malformed token: ops must be an array");
  for (const auto& o : *ops) {
    Right r;
    if (!o.is_string() || !right_from_name(o.get_ref<const std::string&>(), &r)) {
      return unauthorized("malformed token: ops holds an unknown operation");
    }
    c.rights |= static_cast<RightSet>(r);
  }
  *out = std::move(c);
  return Status::ok();
}

// The attachment every client of ours sends, `{"token":"<JWT>"}` with
// nothing else and only JWT characters inside the quotes, parses to the
// same token as the JSON parser would give; recognising it saves that
// parse (about 2 us per request, docs/BENCHMARKS.md).
bool exact_token_attachment(std::string_view attachment, std::string* token) {
  constexpr std::string_view kOpen = "{\"token\":\"";
  constexpr std::string_view kClose = "\"}";
  if (attachment.size() < kOpen.size() + kClose.size() || !attachment.starts_with(kOpen) ||
      !attachment.ends_with(kClose)) {
    return false;
  }
  const std::string_view inner = attachment.substr(kOpen.size(), attachment.size() - kOpen.size() - kClose.size());
  for (char c : inner) {
    const bool jwt_char = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                          c == '_' || c == '.';
    if (!jwt_char) return false;
  }
  *token = std::string(inner);
  return true;
}

Status token_from_attachment(std::optional<std::string_view> attachment, std::string* token) {
  if (!attachment || attachment->empty()) {
    return unauthorized("no token: send {\"token\": \"<JWT>\"} as the attachment");
  }
  if (attachment->size() > kMaxAttachmentBytes) return unauthorized("the attachment is too large");
  if (exact_token_attachment(*attachment, token)) return Status::ok();
  auto parsed = nlohmann::json::parse(*attachment, nullptr, false);
  if (!parsed.is_object()) return unauthorized("the attachment is not a JSON object with a token");
  auto t = parsed.find("token");
  if (t == parsed.end() || !t->is_string()) {
    return unauthorized("no token: send {\"token\": \"<JWT>\"} as the attachment");
  }
  *token = t->get<std::string>();
  return Status::ok();
}

TokenVerifier::TokenVerifier(std::string cluster_name, std::shared_ptr<const KeyRing> keys, size_t cache_entries)
    : cluster_name_(std::move(cluster_name)), cache_entries_(cache_entries), keys_(std::move(keys)) {
  MAILBOX_ASSERT(keys_ != nullptr, "a verifier needs keys");
  MAILBOX_ASSERT(cache_entries_ > 0, "a verifier needs room for one token");
}

Status TokenVerifier::verify(std::string_view token, int64_t now_s, std::shared_ptr<const TokenClaims>* out) {
  auto reject = [this](std::string message) {
    rejected_.fetch_add(1, std::memory_order_relaxed);
    return unauthorized(std::move(message));
  };
  auto check_time = [&](const TokenClaims& c) -> Status {
    if (now_s > c.expires_at_s + kClockSkewAllowanceS) return reject("token expired");
    if (c.not_before_s != 0 && now_s + kClockSkewAllowanceS < c.not_before_s) return reject("token not valid yet");
    return Status::ok();
  };
  std::shared_ptr<const KeyRing> keys;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = cache_.find(token);
    if (it != cache_.end()) {
      cache_hits_.fetch_add(1, std::memory_order_relaxed);
      Status s = check_time(*it->second);
      if (s.is_ok()) *out = it->second;
      return s;
    }
    keys = keys_;
  }
  if (token.empty()) return reject("no token");
  if (token.size() > kMaxTokenBytes) return reject("malformed token: too long");
  const size_t dot1 = token.find('.');
  const size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return reject("malformed token: not a compact JWS (header.claims.signature)");
  }
  std::string header_json, payload_json, signature;
  if (!base64url_decode(token.substr(0, dot1), &header_json) ||
      !base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1), &payload_json) ||
      !base64url_decode(token.substr(dot2 + 1), &signature)) {
    return reject("malformed token: bad base64url");
  }
  std::string kid;
  Status s = parse_token_header(header_json, &kid);
  if (!s.is_ok()) return reject(std::move(s.message));
  EVP_PKEY* key = keys->find(kid);
  if (!key) return reject("token signed with an unknown key (kid '" + kid + "')");
  signature_checks_.fetch_add(1, std::memory_order_relaxed);
  if (!verify_ed25519(key, token.substr(0, dot2), signature)) return reject("token signature does not verify");
  auto claims = std::make_shared<TokenClaims>();
  s = parse_token_claims(payload_json, claims.get());
  if (!s.is_ok()) return reject(std::move(s.message));
  claims->key_id = std::move(kid);
  if (std::find(claims->audiences.begin(), claims->audiences.end(), cluster_name_) == claims->audiences.end()) {
    return reject("token is for another cluster (this is '" + cluster_name_ + "')");
  }
  s = check_time(*claims);
  if (!s.is_ok()) return s;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    // Keys replaced meanwhile: do not cache what the old keys accepted.
    if (keys_ == keys) remember(token, claims);
  }
  *out = std::move(claims);
  return Status::ok();
}

void TokenVerifier::remember(std::string_view token, std::shared_ptr<const TokenClaims> claims) {
  if (cache_.count(token)) return;
  while (cache_.size() >= cache_entries_) {
    MAILBOX_ASSERT(!order_.empty(), "token cache order lost track");
    cache_.erase(order_.front());
    order_.pop_front();
  }
  order_.emplace_back(token);
  cache_.emplace(std::string(token), std::move(claims));
}

Status TokenVerifier::verify_attachment(std::optional<std::string_view> attachment, int64_t now_s,
                                        std::shared_ptr<const TokenClaims>* out) {
  std::string token;
  Status s = token_from_attachment(attachment, &token);
  if (!s.is_ok()) {
    rejected_.fetch_add(1, std::memory_order_relaxed);
    return s;
  }
  return verify(token, now_s, out);
}

void TokenVerifier::replace_keys(std::shared_ptr<const KeyRing> keys) {
  MAILBOX_ASSERT(keys != nullptr, "a verifier needs keys");
  std::lock_guard<std::mutex> lock(mutex_);
  keys_ = std::move(keys);
  cache_.clear();
  order_.clear();
}

VerifierStats TokenVerifier::stats() const {
  VerifierStats s;
  s.cache_hits = cache_hits_.load(std::memory_order_relaxed);
  s.signature_checks = signature_checks_.load(std::memory_order_relaxed);
  s.rejected = rejected_.load(std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(mutex_);
  s.cached = cache_.size();
  return s;
}

}  // namespace mailbox::auth
