// base64url.hpp: the unpadded base64url encoding of JWTs (RFC 7515 §2),
// on top of OpenSSL's base64 codec.
//
// Threads: pure; safe from any thread.
#pragma once

#include <string>
#include <string_view>

namespace mailbox::auth {

std::string base64url_encode(std::string_view bytes);
// False for anything but canonical unpadded base64url (a padding '=', a
// character outside the alphabet, a length of 1 mod 4, or non-zero
// trailing bits).
bool base64url_decode(std::string_view text, std::string* out);

}  // namespace mailbox::auth
