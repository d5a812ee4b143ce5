#include "core/errors.hpp"

#include <array>
#include <utility>

namespace mailbox {
namespace {
constexpr std::array<std::pair<ErrorCode, std::string_view>, 11> kNames = {{
    {ErrorCode::kOk, "ok"},
    {ErrorCode::kEmpty, "empty"},
    {ErrorCode::kInvalidArgument, "invalid_argument"},
    {ErrorCode::kNotFound, "not_found"},
    {ErrorCode::kTooLarge, "too_large"},
    {ErrorCode::kQuotaExceeded, "quota_exceeded"},
    {ErrorCode::kUnavailable, "unavailable"},
    {ErrorCode::kUnknownOutcome, "unknown_outcome"},
    {ErrorCode::kForbidden, "forbidden"},
    {ErrorCode::kInternal, "internal"},
    {ErrorCode::kUnauthorized, "unauthorized"},
}};
}  // namespace

std::string_view error_code_name(ErrorCode code) {
  for (const auto& [c, name] : kNames) {
    if (c == code) return name;
  }
  return "internal";
}

bool error_code_from_name(std::string_view name, ErrorCode* code) {
  for (const auto& [c, n] : kNames) {
    if (n == name) {
      *code = c;
      return true;
    }
  }
  return false;
}

}  // namespace mailbox
