// commands.hpp: the replicated commands, the log entry that carries a batch of
// them, and their binary codec.
//
// What it is for: everything that changes mailbox state travels through the
// Raft log as an `Entry`: a batch of commands stamped with the leader's clock
// (`leader_time_ms`), so every replica applies the same commands at the same
// time. The codec is versioned (`kEntryFormatVersion`); decoding never trusts
// its input and reports malformed bytes as false.
//
// Threads: pure values and functions; safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace mailbox {

inline constexpr uint8_t kEntryFormatVersion = 1;
// Encoded entries are padded with zero bytes to a multiple of this (libraft
// requires 8-byte aligned entry buffers).
inline constexpr size_t kEntryAlignmentBytes = 8;

// Enqueue one message.
struct PutCommand {
  std::string mailbox;
  std::string encoding;
  std::string payload;
  int64_t ttl_ms = 0;  // > 0
};

// Remove and return up to `max_count` of the oldest live messages.
struct ConsumeCommand {
  std::string mailbox;
  uint32_t max_count = 1;  // 1..limits::kMaxBatchMessages
};

using Command = std::variant<PutCommand, ConsumeCommand>;

// One Raft log entry: a batch of commands applied in order at one time.
struct Entry {
  int64_t leader_time_ms = 0;   // the proposing leader's wall clock, Unix ms
  uint64_t proposer_token = 0;  // lets the proposer find its waiting requests; not state
  std::vector<Command> commands;
};

// Approximate encoded size of a command, for batching limits.
size_t encoded_size_hint(const Command& command);

std::string encode_entry(const Entry& entry);
// False when `bytes` is not a well-formed entry of a known version.
bool decode_entry(std::string_view bytes, Entry* entry);

}  // namespace mailbox
