#include "core/assert.hpp"

#include <cstdio>
#include <cstdlib>

namespace mailbox::detail {
void assertion_failed(const char* condition, const char* message, const char* file, int line) {
  std::fprintf(stderr, "mailbox: assertion failed: %s (%s) at %s:%d\n", condition, message, file, line);
  std::fflush(stderr);
  std::abort();
}
}  // namespace mailbox::detail
