// fuzz_keys.hpp: the fixed Ed25519 test key of the token fuzz targets. The
// seed tokens in tests/fuzz/corpus/ are signed with its private half
// (tests/fuzz/make_seeds.sh), so they reach the claims checks; it signs
// nothing else and no node trusts it.
//
// Threads: the fuzz targets are single-threaded.
#pragma once

#include <cstdint>
#include <memory>

#include "auth/verifier.hpp"

namespace mailbox::fuzz {

inline constexpr const char* kTestPublicKeyPem =
    "-----BEGIN PUBLIC KEY-----\n"
    "MCowBQYDK2VwAyEACFqUhLWtmOECojJD0rin/fm4bb80QPA5F5VImofMm/o=\n"
    "-----END PUBLIC KEY-----\n";
inline constexpr const char* kTestKeyId = "fuzz";
inline constexpr const char* kTestCluster = "fuzz-cluster";
// Tokens are checked at this time (the seeds expire after it).
inline constexpr int64_t kNowS = 1'800'000'000;
// A small cache, so that eviction runs too.
inline constexpr size_t kCacheEntries = 16;

inline auth::TokenVerifier* make_verifier() {
  auto ring = std::make_shared<auth::KeyRing>();
  if (!ring->add_public_key_pem(kTestKeyId, kTestPublicKeyPem).is_ok()) std::abort();
  return new auth::TokenVerifier(kTestCluster, ring, kCacheEntries);
}

}  // namespace mailbox::fuzz
