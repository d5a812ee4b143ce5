#include "core/commands.hpp"

#include "core/bytes.hpp"

namespace mailbox {
namespace {

enum class CommandTag : uint8_t { kPut = 1, kConsume = 2 };

void encode_command(ByteWriter& w, const Command& command) {
  if (const auto* put = std::get_if<PutCommand>(&command)) {
    w.u8(static_cast<uint8_t>(CommandTag::kPut));
    w.bytes(put->mailbox);
    w.bytes(put->encoding);
    w.bytes(put->payload);
    w.i64(put->ttl_ms);
  } else if (const auto* consume = std::get_if<ConsumeCommand>(&command)) {
    w.u8(static_cast<uint8_t>(CommandTag::kConsume));
    w.bytes(consume->mailbox);
    w.u32(consume->max_count);
  }
}

bool decode_command(ByteReader& r, Command* command) {
  switch (static_cast<CommandTag>(r.u8())) {
    case CommandTag::kPut: {
      PutCommand put;
      put.mailbox = std::string(r.bytes());
      put.encoding = std::string(r.bytes());
      put.payload = std::string(r.bytes());
      put.ttl_ms = r.i64();
      *command = std::move(put);
      return r.ok();
    }
    case CommandTag::kConsume: {
      ConsumeCommand consume;
      consume.mailbox = std::string(r.bytes());
      consume.max_count = r.u32();
      *command = std::move(consume);
      return r.ok();
    }
  }
  return false;
}

}  // namespace

size_t encoded_size_hint(const Command& command) {
  constexpr size_t kOverheadBytes = 32;
  if (const auto* put = std::get_if<PutCommand>(&command)) {
    return kOverheadBytes + put->mailbox.size() + put->encoding.size() + put->payload.size();
  }
  return kOverheadBytes + std::get<ConsumeCommand>(command).mailbox.size();
}

std::string encode_entry(const Entry& entry) {
  ByteWriter w;
  size_t total = 32;
  for (const auto& c : entry.commands) total += encoded_size_hint(c);
  w.reserve(total);
  w.u8(kEntryFormatVersion);
  w.i64(entry.leader_time_ms);
  w.u64(entry.proposer_token);
  w.varint(entry.commands.size());
  for (const auto& c : entry.commands) encode_command(w, c);
  while (w.size() % kEntryAlignmentBytes != 0) w.u8(0);
  return w.take();
}

bool decode_entry(std::string_view bytes, Entry* entry) {
  ByteReader r(bytes);
  if (r.u8() != kEntryFormatVersion) return false;
  entry->leader_time_ms = r.i64();
  entry->proposer_token = r.u64();
  uint64_t n = r.varint();
  if (!r.ok() || n > r.remaining()) return false;  // each command takes >= 1 byte
  entry->commands.clear();
  entry->commands.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    Command c;
    if (!decode_command(r, &c)) return false;
    entry->commands.push_back(std::move(c));
  }
  if (!r.ok() || r.remaining() >= kEntryAlignmentBytes) return false;
  while (!r.at_end()) {
    if (r.u8() != 0) return false;
  }
  return true;
}

}  // namespace mailbox
