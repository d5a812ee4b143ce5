// commands.hpp: the replicated commands, the log entry that carries a batch of
// them, and their binary codec.
//
// What it is for: everything that changes mailbox state travels through the
// Raft log as an `Entry`: a batch of commands stamped with the leader's clock
// (`leader_time_ms`), so every replica applies the same commands at the same
// time. The codec is versioned (`kEntryFormatVersion`); decoding never trusts
// its input and reports malformed bytes as false.
//
// Compatibility: the v2 operations (delayed put, extend, purge, redrive) are
// new command tags inside format version 1, so every log written before
// them still decodes. A binary that predates them stops on an entry that
// holds one (it cannot apply it): upgrade every node before using them.
//
// Threads: pure values and functions; safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/limits.hpp"

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
  std::string rid;     // empty: no idempotency key
  // For a fire-and-forget publication: a hash of its Zenoh timestamp (the
  // same on every node that received it), so that two nodes that both
  // believed they led cannot store it twice. 0: none.
  uint64_t publication_id = 0;
  // Delayed delivery (SPEC v2 `delay=`): hidden from consume and peek until
  // the entry's time + delay_ms; its ttl counts from then. 0: visible now.
  // Encoded under its own tag so that entries without a delay keep the
  // version-1 bytes.
  int64_t delay_ms = 0;  // 0..limits::kMaxDelayMs
};

// Take up to `max_count` of the oldest visible messages: remove them, or with
// `lease_ms > 0` hide them until acked or the lease ends.
struct ConsumeCommand {
  std::string mailbox;
  uint32_t max_count = 1;  // 1..limits::kMaxBatchMessages
  int64_t lease_ms = 0;    // 0: remove (exactly once)
  std::string rid;
};

// Settle a leased message: remove it.
struct AckCommand {
  std::string mailbox;
  uint64_t id = 0;
  std::string rid;
};

// Give a leased message back at once.
struct NackCommand {
  std::string mailbox;
  uint64_t id = 0;
  std::string rid;
};

// Extend a held lease (SPEC v2 `extend`): it now ends `lease_ms` after the
// entry's time.
struct ExtendCommand {
  std::string mailbox;
  uint64_t id = 0;
  int64_t lease_ms = 0;  // > 0
  std::string rid;
};

// Remove every message of a mailbox, leased and delayed ones included.
struct PurgeCommand {
  std::string mailbox;
  std::string rid;
};

// Move up to `max_count` messages from `<mailbox>.dlq` to the tail of
// `mailbox`, oldest first, with new ids and their delivery count reset.
struct RedriveCommand {
  std::string mailbox;     // the destination; the source is its dead-letter mailbox
  uint32_t max_count = 0;  // 0: as many as there are (and fit)
  std::string rid;
};

// Housekeeping at the entry's time: drop expired messages, end expired
// leases (moving messages past the delivery limit to their dead-letter
// mailbox), forget old dedup records. Proposed by the leader when due.
struct SweepCommand {};

// The business settings every replica must share; proposed by a leader whose
// flags differ from the state's.
struct StateConfig {
  uint64_t max_messages_per_mailbox = limits::kDefaultMaxMessagesPerMailbox;
  uint64_t max_bytes_per_mailbox = limits::kDefaultMaxBytesPerMailbox;
  uint64_t max_total_bytes = limits::kDefaultMaxTotalBytes;
  uint64_t max_total_messages = limits::kDefaultMaxTotalMessages;
  int64_t dedup_window_ms = limits::kDefaultDedupWindowMs;
  uint64_t max_dedup_entries = limits::kDefaultMaxDedupEntries;
  uint32_t max_deliveries = limits::kDefaultMaxDeliveries;
  bool operator==(const StateConfig&) const = default;
};

struct ConfigureCommand {
  StateConfig config;
};

using Command = std::variant<PutCommand, ConsumeCommand, AckCommand, NackCommand, SweepCommand, ConfigureCommand,
                             ExtendCommand, PurgeCommand, RedriveCommand>;

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

class ByteWriter;
class ByteReader;
void encode_config(ByteWriter& w, const StateConfig& config);
StateConfig decode_config(ByteReader& r);

}  // namespace mailbox
