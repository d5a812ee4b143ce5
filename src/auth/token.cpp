#include "auth/token.hpp"

#include <array>
#include <utility>

#include "core/limits.hpp"

namespace mailbox::auth {
namespace {

constexpr std::array<std::pair<Right, std::string_view>, 9> kRightNames = {{
    {Right::kPut, "put"},
    {Right::kConsume, "consume"},
    {Right::kPeek, "peek"},
    {Right::kStats, "stats"},
    {Right::kAck, "ack"},
    {Right::kPurge, "purge"},
    {Right::kRedrive, "redrive"},
    {Right::kList, "list"},
    {Right::kAdmin, "admin"},
}};

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == '~' || c == '+' || c == '=' || c == '@' || c == '-';
}

constexpr std::string_view kDeadLetterSuffix(limits::kDeadLetterSuffix, limits::kDeadLetterSuffixBytes);

}  // namespace

std::string_view right_name(Right right) {
  for (const auto& [r, name] : kRightNames) {
    if (r == right) return name;
  }
  return "?";
}

bool right_from_name(std::string_view name, Right* right) {
  for (const auto& [r, n] : kRightNames) {
    if (n == name) {
      *right = r;
      return true;
    }
  }
  return false;
}

bool parse_rights(std::string_view list, RightSet* out, std::string* bad) {
  RightSet rights = 0;
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t end = list.find(',', pos);
    if (end == std::string_view::npos) end = list.size();
    const std::string_view name = list.substr(pos, end - pos);
    Right r;
    if (!right_from_name(name, &r)) {
      *bad = std::string(name);
      return false;
    }
    rights |= static_cast<RightSet>(r);
    pos = end + 1;
  }
  *out = rights;
  return true;
}

std::string rights_to_string(RightSet rights) {
  std::string out;
  for (const auto& [r, name] : kRightNames) {
    if ((rights & static_cast<RightSet>(r)) == 0) continue;
    if (!out.empty()) out += ",";
    out += name;
  }
  return out;
}

bool is_valid_mailbox_pattern(std::string_view pattern) {
  if (pattern.empty() || pattern.size() > limits::kMaxMailboxNameBytes + 1) return false;
  if (pattern.back() == '*') pattern.remove_suffix(1);
  else if (pattern.size() > limits::kMaxMailboxNameBytes) return false;
  if (pattern.empty()) return true;  // "*": every mailbox
  if (pattern.front() == '@' || pattern.front() == '.') return false;
  for (char c : pattern) {
    if (!is_name_char(c)) return false;
  }
  return true;
}

bool mailbox_pattern_matches(std::string_view pattern, std::string_view mailbox) {
  if (!pattern.empty() && pattern.back() == '*') {
    pattern.remove_suffix(1);
    return mailbox.substr(0, pattern.size()) == pattern;
  }
  if (mailbox == pattern) return true;
  // An exact name also covers its dead-letter mailbox.
  return mailbox.size() == pattern.size() + kDeadLetterSuffix.size() &&
         mailbox.substr(0, pattern.size()) == pattern && mailbox.substr(pattern.size()) == kDeadLetterSuffix;
}

bool TokenClaims::covers(std::string_view mailbox) const {
  for (const auto& p : mailbox_patterns) {
    if (mailbox_pattern_matches(p, mailbox)) return true;
  }
  return false;
}

Status authorize(const TokenClaims& claims, Right right, std::string_view mailbox) {
  if (!claims.has_right(right)) {
    return Status::error(ErrorCode::kForbidden,
                         "the token does not grant '" + std::string(right_name(right)) + "' (it grants: " +
                             (claims.rights ? rights_to_string(claims.rights) : std::string("nothing")) + ")");
  }
  if (right != Right::kAdmin && !claims.covers(mailbox)) {
    return Status::error(ErrorCode::kForbidden, "the token does not cover mailbox '" + std::string(mailbox) + "'");
  }
  return Status::ok();
}

void filter_listable(const TokenClaims& claims, std::vector<std::string>* mailboxes) {
  if (!claims.has_right(Right::kList)) {
    mailboxes->clear();
    return;
  }
  std::erase_if(*mailboxes, [&](const std::string& box) { return !claims.covers(box); });
}

}  // namespace mailbox::auth
