// libFuzzer target: the request attachment parser (auth/verifier.hpp,
// `{"token": "<JWT>"}` beside a put's metadata) and what follows it: the
// token found there goes through the verifier.
//
// Checked: nothing crashes or trips a sanitizer; every refusal is
// `unauthorized` with a message, and no message echoes the token.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "auth/verifier.hpp"
#include "fuzz_keys.hpp"

namespace {
// A token worth not echoing: three dot-separated parts without spaces. (A
// token made of words from the refusal messages themselves, which the first
// 120 s run found, is "echoed" by any message and proves nothing.)
bool looks_like_a_jwt(const std::string& token) {
  return token.size() >= 16 && std::count(token.begin(), token.end(), '.') == 2 &&
         token.find(' ') == std::string::npos;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mailbox;
  static auth::TokenVerifier* verifier = fuzz::make_verifier();
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string token;
  Status s = auth::token_from_attachment(input, &token);
  if (!s.is_ok()) {
    if (s.code != ErrorCode::kUnauthorized || s.message.empty()) std::abort();
    return 0;
  }
  // The fast path agrees with the JSON parser.
  std::string fast;
  if (auth::exact_token_attachment(input, &fast)) {
    auto parsed = nlohmann::json::parse(input, nullptr, false);
    if (!parsed.is_object() || parsed.size() != 1 || !parsed["token"].is_string() ||
        parsed["token"].get<std::string>() != fast || fast != token) {
      std::abort();
    }
  }
  std::shared_ptr<const auth::TokenClaims> claims;
  s = verifier->verify_attachment(input, fuzz::kNowS, &claims);
  if (s.is_ok()) {
    if (!claims || claims->subject.empty()) std::abort();
  } else if (s.code != ErrorCode::kUnauthorized || (looks_like_a_jwt(token) && s.message.find(token) != std::string::npos)) {
    std::abort();
  }
  return 0;
}
