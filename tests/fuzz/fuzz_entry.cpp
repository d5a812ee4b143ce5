// libFuzzer target: the log-entry codec (core/commands.hpp), which every
// node runs on entries it receives from the leader and reads from its log.
//
// Checked: decoding never crashes or trips a sanitizer; what decodes
// re-encodes to bytes that decode to the same entry (encode, decode and
// encode again give identical bytes).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/commands.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mailbox;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  Entry entry;
  if (!decode_entry(input, &entry)) return 0;
  const std::string once = encode_entry(entry);
  Entry again;
  if (!decode_entry(once, &again)) std::abort();  // our own encoding must decode
  if (encode_entry(again) != once) std::abort();  // and round-trip exactly
  return 0;
}
