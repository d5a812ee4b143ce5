// libFuzzer target: the token parser (auth/verifier.hpp): compact JWS
// splitting, base64url, the header and claims JSON, the signature check
// (OpenSSL) and the claim checks, with a fixed test key so that seeds
// signed by it reach the claims.
//
// Input: a token. Also, each dot-separated part is decoded and handed to
// the header and claims parsers directly, so mutations of the claims are
// parsed even though their signature no longer verifies.
// Checked: nothing crashes or trips a sanitizer; base64url decoding is
// canonical (re-encoding gives the input back); accepted claims hold only
// valid mailbox patterns and known rights; every refusal is `unauthorized`.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "auth/base64url.hpp"
#include "auth/verifier.hpp"
#include "fuzz_keys.hpp"

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}

void check_claims(const mailbox::auth::TokenClaims& c) {
  using namespace mailbox::auth;
  check(!c.subject.empty() && !c.audiences.empty());
  for (const auto& p : c.mailbox_patterns) check(is_valid_mailbox_pattern(p));
  constexpr RightSet kKnown = (static_cast<RightSet>(Right::kAdmin) << 1) - 1;
  check((c.rights & ~kKnown) == 0);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mailbox;
  static auth::TokenVerifier* verifier = fuzz::make_verifier();
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::shared_ptr<const auth::TokenClaims> claims;
  Status s = verifier->verify(input, fuzz::kNowS, &claims);
  if (s.is_ok()) {
    check(claims != nullptr);
    check_claims(*claims);
  } else {
    check(s.code == ErrorCode::kUnauthorized && !s.message.empty());
  }
  size_t start = 0;
  for (int part = 0; part < 3 && start <= input.size(); ++part) {
    size_t dot = input.find('.', start);
    if (dot == std::string_view::npos) dot = input.size();
    const std::string_view encoded = input.substr(start, dot - start);
    std::string decoded;
    if (auth::base64url_decode(encoded, &decoded)) {
      check(auth::base64url_encode(decoded) == encoded);
      std::string kid;
      if (auth::parse_token_header(decoded, &kid).is_ok()) check(!kid.empty());
      auth::TokenClaims c;
      if (auth::parse_token_claims(decoded, &c).is_ok()) check_claims(c);
    }
    start = dot + 1;
  }
  auth::TokenClaims c;
  if (auth::parse_token_claims(input, &c).is_ok()) check_claims(c);
  return 0;
}
