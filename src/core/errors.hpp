// errors.hpp: the service's stable error codes, shared by every layer.
//
// What it is for: an error a caller can act on is a value (`ErrorCode` plus a
// message for a person), never an exception across module lines. The names
// returned by `error_code_name` are public API (SPEC.md "Replies") and must
// never change.
//
// Threads: pure values and functions; safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace mailbox {

enum class ErrorCode : uint8_t {
  kOk = 0,
  kEmpty = 1,
  kInvalidArgument = 2,
  kNotFound = 3,
  kTooLarge = 4,
  kQuotaExceeded = 5,
  kUnavailable = 6,
  kUnknownOutcome = 7,
  kForbidden = 8,
  kInternal = 9,
  kUnauthorized = 10,  // v2: credentials missing, malformed, expired or not for this cluster
};

// The wire name of a code, e.g. "invalid_argument". "ok" for kOk.
std::string_view error_code_name(ErrorCode code);

// The code for a wire name; false when the name is not a known code.
bool error_code_from_name(std::string_view name, ErrorCode* code);

// An outcome: kOk, or a code and a message for a person.
struct Status {
  ErrorCode code = ErrorCode::kOk;
  std::string message;

  static Status ok() { return {}; }
  static Status error(ErrorCode code, std::string message) { return {code, std::move(message)}; }
  bool is_ok() const { return code == ErrorCode::kOk; }
};

}  // namespace mailbox
