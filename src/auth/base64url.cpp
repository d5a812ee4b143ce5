#include "auth/base64url.hpp"

#include <openssl/evp.h>

namespace mailbox::auth {

std::string base64url_encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    else if (c == '/') c = '_';
  }
  return out;
}

bool base64url_decode(std::string_view text, std::string* out) {
  if (text.size() % 4 == 1) return false;
  std::string standard;
  standard.reserve(text.size() + 3);
  for (char c : text) {
    const bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (alnum) standard += c;
    else if (c == '-') standard += '+';
    else if (c == '_') standard += '/';
    else return false;
  }
  const size_t padding = (4 - standard.size() % 4) % 4;
  standard.append(padding, '=');
  std::string decoded(standard.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(decoded.data()),
                                reinterpret_cast<const unsigned char*>(standard.data()),
                                static_cast<int>(standard.size()));
  if (n < 0) return false;
  // EVP_DecodeBlock counts the padding as zero bytes.
  decoded.resize(static_cast<size_t>(n) - padding);
  // Canonical only: re-encoding gives the same text (no stray trailing bits).
  if (base64url_encode(decoded) != text) return false;
  *out = std::move(decoded);
  return true;
}

}  // namespace mailbox::auth
