// signing.hpp: making Ed25519 key pairs and mailbox tokens (for `mailbox
// keys create` and `mailbox token create`, and for tests).
//
// What it is for: the only place that holds a private key. Nodes never do:
// they verify with public keys only (auth/verifier.hpp). Everything is
// OpenSSL 3's EVP API; the JWT is the compact JWS of RFC 7515 with header
// {"alg":"EdDSA","typ":"JWT","kid":...}.
//
// Threads: pure functions; safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "auth/token.hpp"
#include "core/errors.hpp"

namespace mailbox::auth {

struct KeyPairPem {
  std::string private_pem;  // PKCS#8
  std::string public_pem;   // SubjectPublicKeyInfo
};

// A fresh Ed25519 key pair.
Status generate_ed25519_key_pair(KeyPairPem* out);

// What a new token says.
struct TokenRequest {
  std::string key_id;
  std::string subject;
  std::string audience;  // the cluster's name
  int64_t issued_at_s = 0;
  int64_t expires_at_s = 0;
  std::vector<std::string> mailbox_patterns;
  RightSet rights = 0;
};

// Signs a token with an Ed25519 private key (PEM). `invalid_argument` for a
// bad key or request (empty subject, audience or key id, bad pattern, no
// rights, expiry not after issue).
Status create_token(std::string_view private_key_pem, const TokenRequest& request, std::string* token);

}  // namespace mailbox::auth
