// libFuzzer target: the Raft message codec (replication/raft_codec.hpp),
// which decodes every frame body a peer sends before anything reaches
// libraft.
//
// Checked: decoding never crashes, leaks or trips a sanitizer (a refused
// body frees what it had decoded); what decodes re-encodes to bytes that
// decode and encode to the same bytes again.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "replication/raft_codec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mailbox;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  DecodedMessage decoded;
  if (!decode_raft_message(input, &decoded).is_ok()) return 0;
  std::string once;
  encode_raft_message(decoded.message(), &once);
  DecodedMessage again;
  if (!decode_raft_message(once, &again).is_ok()) std::abort();
  std::string twice;
  encode_raft_message(again.message(), &twice);
  if (twice != once) std::abort();
  return 0;
}
