// token_bench: what checking a request's token costs (Google Benchmark).
// docs/BENCHMARKS.md, "Token verification", records the numbers.
//
//   build/token_bench
#include <benchmark/benchmark.h>

#include "auth/signing.hpp"
#include "auth/verifier.hpp"

namespace {
using namespace mailbox::auth;

constexpr int64_t kNow = 1'800'000'000;

struct Fixture {
  KeyPairPem pair;
  std::shared_ptr<KeyRing> ring = std::make_shared<KeyRing>();
  std::vector<std::string> tokens;
  explicit Fixture(int count) {
    generate_ed25519_key_pair(&pair);
    ring->add_public_key_pem("k1", pair.public_pem);
    for (int i = 0; i < count; ++i) {
      TokenRequest r;
      r.key_id = "k1";
      r.subject = "user" + std::to_string(i);
      r.audience = "bench";
      r.issued_at_s = kNow;
      r.expires_at_s = kNow + 3600;
      r.mailbox_patterns = {"user" + std::to_string(i), "team-*"};
      r.rights = static_cast<RightSet>(Right::kPut) | static_cast<RightSet>(Right::kConsume);
      std::string token;
      create_token(pair.private_pem, r, &token);
      tokens.push_back(token);
    }
  }
};

// Every request a signature check: two tokens alternate through a cache of one.
void BM_VerifyUncached(benchmark::State& state) {
  Fixture f(2);
  TokenVerifier v("bench", f.ring, 1);
  std::shared_ptr<const TokenClaims> claims;
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(v.verify(f.tokens[i++ & 1], kNow, &claims));
  }
}
BENCHMARK(BM_VerifyUncached);

// The steady state: the token is in the cache (a hash of ~300 bytes).
void BM_VerifyCached(benchmark::State& state) {
  Fixture f(1);
  TokenVerifier v("bench", f.ring);
  std::shared_ptr<const TokenClaims> claims;
  for (auto _ : state) benchmark::DoNotOptimize(v.verify(f.tokens[0], kNow, &claims));
}
BENCHMARK(BM_VerifyCached);

// What the service does per request: parse the attachment JSON, look the
// token up, check the right on the mailbox.
void BM_AttachmentCachedAndAuthorize(benchmark::State& state) {
  Fixture f(1);
  TokenVerifier v("bench", f.ring);
  const std::string attachment = "{\"token\":\"" + f.tokens[0] + "\"}";
  std::shared_ptr<const TokenClaims> claims;
  for (auto _ : state) {
    benchmark::DoNotOptimize(v.verify_attachment(attachment, kNow, &claims));
    benchmark::DoNotOptimize(authorize(*claims, Right::kConsume, "user0"));
  }
}
BENCHMARK(BM_AttachmentCachedAndAuthorize);

// Many distinct tokens, all cached (a busy node with 1000 users).
void BM_VerifyCachedManyUsers(benchmark::State& state) {
  Fixture f(1000);
  TokenVerifier v("bench", f.ring);
  std::shared_ptr<const TokenClaims> claims;
  size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(v.verify(f.tokens[i++ % f.tokens.size()], kNow, &claims));
}
BENCHMARK(BM_VerifyCachedManyUsers);

}  // namespace

BENCHMARK_MAIN();
