// token.hpp: what a mailbox token grants (SPEC v2, "Access control").
//
// What it is for: the claims of a verified token (who, for which cluster,
// until when, which mailboxes, which operations) and the pure checks on
// them: does this token allow operation X on mailbox Y. Parsing and
// signature checking live in auth/verifier.hpp; making tokens in
// auth/signing.hpp.
//
// Mailbox patterns (`mbx`): an exact mailbox name, which also covers its
// dead-letter mailbox `<name>.dlq`, or a prefix ending in `*` (`team-*`;
// `*` alone is every mailbox).
//
// Threads: pure values and functions; safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/errors.hpp"

namespace mailbox::auth {

// The longest token accepted (bytes of the compact JWT).
inline constexpr size_t kMaxTokenBytes = 8192;
// The most mailbox patterns one token may carry.
inline constexpr size_t kMaxMailboxPatterns = 256;
// Longest `sub` and `kid`.
inline constexpr size_t kMaxSubjectBytes = 256;
inline constexpr size_t kMaxKeyIdBytes = 128;
// Clocks of the token maker and the node may differ this much: `exp` is
// honoured until this long after it, `nbf` from this long before it.
inline constexpr int64_t kClockSkewAllowanceS = 30;

// One right each; a token carries a set of them (`ops`).
enum class Right : uint16_t {
  kPut = 1 << 0,
  kConsume = 1 << 1,
  kPeek = 1 << 2,
  kStats = 1 << 3,
  kAck = 1 << 4,  // ack, nack and extend
  kPurge = 1 << 5,
  kRedrive = 1 << 6,
  kList = 1 << 7,
  kAdmin = 1 << 8,  // cluster membership: add, remove, transfer
};
using RightSet = uint16_t;

// The wire name of a right ("put", "consume", ...).
std::string_view right_name(Right right);
// The right for a wire name; false when the name is unknown.
bool right_from_name(std::string_view name, Right* right);
// Parses "put,consume" (comma-separated names); false and `*bad` set to the
// first unknown name otherwise.
bool parse_rights(std::string_view list, RightSet* out, std::string* bad);
// "put,consume": the names of a set, in the enum's order.
std::string rights_to_string(RightSet rights);

// True when `pattern` is a valid `mbx` entry: a mailbox name, or a prefix of
// one followed by `*`.
bool is_valid_mailbox_pattern(std::string_view pattern);
// True when `pattern` covers `mailbox` (see the header comment).
bool mailbox_pattern_matches(std::string_view pattern, std::string_view mailbox);

struct TokenClaims {
  std::string subject;                        // sub
  std::vector<std::string> audiences;         // aud (one or several cluster names)
  int64_t expires_at_s = 0;                   // exp, Unix seconds
  int64_t not_before_s = 0;                   // nbf, 0 when absent
  std::vector<std::string> mailbox_patterns;  // mbx
  RightSet rights = 0;                        // ops
  std::string key_id;                         // kid of the header

  bool has_right(Right right) const { return (rights & static_cast<RightSet>(right)) != 0; }
  // True when one of the patterns covers `mailbox`.
  bool covers(std::string_view mailbox) const;
};

// `forbidden` unless `claims` grant `right` on `mailbox`; the message names
// the operation and mailbox, never the token.
Status authorize(const TokenClaims& claims, Right right, std::string_view mailbox);

// The list operation (`get P/<pattern>/stats`) returns only mailboxes the
// token may list: removes the others from `mailboxes`, keeping order.
void filter_listable(const TokenClaims& claims, std::vector<std::string>* mailboxes);

}  // namespace mailbox::auth
