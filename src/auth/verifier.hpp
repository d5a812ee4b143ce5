// verifier.hpp: checking mailbox tokens (SPEC v2, "Access control").
//
// What it is for: a request carries a JWT in its attachment
// (`{"token": "<JWT>"}`); the service turns it into TokenClaims here, or
// into `unauthorized` with the check that failed (never echoing the token).
// A token is accepted when it is a compact JWS with header `alg` `EdDSA`
// and a `kid` naming one of the node's public keys, its Ed25519 signature
// verifies (OpenSSL 3 EVP), and its claims are well formed: `sub`, `aud`
// containing this cluster's name, `exp` not past, `nbf` (optional) not in
// the future, `mbx` and `ops` as auth/token.hpp describes.
//
// Verified tokens are cached (bounded: kDefaultVerifiedTokenCacheEntries,
// oldest evicted first), so a client that sends the same token with every
// request costs one signature check, then a hash lookup; a cached token is
// still refused once its `exp` passes. Replacing the keys (SIGHUP) empties
// the cache, so a removed key stops working at once.
//
// Threads: KeyRing is immutable once loaded; share it freely.
// TokenVerifier may be called from any thread (a mutex guards the cache and
// the current keys); `replace_keys` from any thread too.
// Ownership: TokenVerifier shares the KeyRing it was given; claims handed
// out are shared and immutable.
#pragma once

#include <openssl/types.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "auth/token.hpp"
#include "core/errors.hpp"

namespace mailbox::auth {

// Most verified tokens remembered per node.
inline constexpr size_t kDefaultVerifiedTokenCacheEntries = 10000;
// Largest request attachment parsed for its token.
inline constexpr size_t kMaxAttachmentBytes = 64 * 1024;
// Most verification keys one node holds.
inline constexpr size_t kMaxVerificationKeys = 64;
// Largest key file read.
inline constexpr size_t kMaxKeyFileBytes = 64 * 1024;

// The public keys a node verifies tokens with, by key id (`kid`).
class KeyRing {
 public:
  KeyRing() = default;
  ~KeyRing();
  KeyRing(const KeyRing&) = delete;
  KeyRing& operator=(const KeyRing&) = delete;

  // Adds an Ed25519 public key (PEM, SubjectPublicKeyInfo) under `kid`.
  // `invalid_argument` for a bad key, a non-Ed25519 key or a repeated kid.
  Status add_public_key_pem(const std::string& kid, std::string_view pem);
  // Loads every `<kid>.pub` file of `directory`. `invalid_argument` when one
  // is bad or none is found.
  static Status load_directory(const std::string& directory, std::shared_ptr<KeyRing>* out);

  // The key for `kid`, or null; valid while this ring lives.
  EVP_PKEY* find(std::string_view kid) const;
  size_t size() const { return keys_.size(); }
  std::string key_ids() const;  // "k1,k2", for logs

 private:
  std::map<std::string, EVP_PKEY*, std::less<>> keys_;  // owned
};

struct VerifierStats {
  uint64_t cache_hits = 0;
  uint64_t signature_checks = 0;  // cache misses that reached a key
  uint64_t rejected = 0;          // every `unauthorized`
  size_t cached = 0;
};

class TokenVerifier {
 public:
  TokenVerifier(std::string cluster_name, std::shared_ptr<const KeyRing> keys,
                size_t cache_entries = kDefaultVerifiedTokenCacheEntries);

  // `*out` = the claims of `token` at `now_s` (Unix seconds), or
  // `unauthorized` naming the failed check.
  Status verify(std::string_view token, int64_t now_s, std::shared_ptr<const TokenClaims>* out);
  // The same for a request's attachment (`{"token": "..."}`; other members
  // are allowed beside it). No attachment: `unauthorized`.
  Status verify_attachment(std::optional<std::string_view> attachment, int64_t now_s,
                           std::shared_ptr<const TokenClaims>* out);
  // New keys (key rotation); forgets every cached token.
  void replace_keys(std::shared_ptr<const KeyRing> keys);

  const std::string& cluster_name() const { return cluster_name_; }
  VerifierStats stats() const;

 private:
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  void remember(std::string_view token, std::shared_ptr<const TokenClaims> claims);  // mutex held

  const std::string cluster_name_;
  const size_t cache_entries_;
  mutable std::mutex mutex_;
  std::shared_ptr<const KeyRing> keys_;  // guarded by mutex_
  std::unordered_map<std::string, std::shared_ptr<const TokenClaims>, StringHash, std::equal_to<>>
      cache_;                        // guarded by mutex_
  std::deque<std::string> order_;    // insertion order of cache_ keys, guarded by mutex_
  std::atomic<uint64_t> cache_hits_{0};
  std::atomic<uint64_t> signature_checks_{0};
  std::atomic<uint64_t> rejected_{0};
};

// The pieces of verification, exposed for tests and fuzzing. Each returns
// `unauthorized` with a message for a person.
// The token's `alg` and `kid` from its header JSON.
Status parse_token_header(std::string_view header_json, std::string* key_id);
// The claims of a payload JSON, checked for shape only (not time, not audience).
Status parse_token_claims(std::string_view payload_json, TokenClaims* out);
// The token string of a request attachment.
Status token_from_attachment(std::optional<std::string_view> attachment, std::string* token);
// True (and `*token`) when the attachment is exactly `{"token":"<JWT>"}`
// with only JWT characters: the fast path of token_from_attachment, which
// must agree with the JSON parser (the attachment fuzz target checks it).
bool exact_token_attachment(std::string_view attachment, std::string* token);

}  // namespace mailbox::auth
