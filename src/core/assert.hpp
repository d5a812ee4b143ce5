// assert.hpp: invariant checks that stay on in release builds.
//
// MAILBOX_ASSERT(cond, msg) aborts the process with the condition, message,
// file and line when `cond` is false. Use it for invariants whose violation
// means the program is wrong (a corrupted state machine must not keep
// serving); use `Status` values for errors a caller can act on.
#pragma once

namespace mailbox::detail {
[[noreturn]] void assertion_failed(const char* condition, const char* message, const char* file, int line);
}  // namespace mailbox::detail

#define MAILBOX_ASSERT(cond, msg)                                                \
  do {                                                                           \
    if (!(cond)) ::mailbox::detail::assertion_failed(#cond, (msg), __FILE__, __LINE__); \
  } while (0)
