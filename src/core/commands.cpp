#include "core/commands.hpp"

#include "core/bytes.hpp"

namespace mailbox {
namespace {

// Tags are stable: never renumber. kDelayedPut is a put with a delay (a put
// without one keeps the kPut bytes).
enum class CommandTag : uint8_t {
  kPut = 1,
  kConsume = 2,
  kAck = 3,
  kNack = 4,
  kSweep = 5,
  kConfigure = 6,
  kDelayedPut = 7,
  kExtend = 8,
  kPurge = 9,
  kRedrive = 10,
};

struct Encoder {
  ByteWriter& w;
  void operator()(const PutCommand& c) {
    w.u8(static_cast<uint8_t>(c.delay_ms != 0 ? CommandTag::kDelayedPut : CommandTag::kPut));
    w.bytes(c.mailbox);
    w.bytes(c.encoding);
    w.bytes(c.payload);
    w.i64(c.ttl_ms);
    w.bytes(c.rid);
    w.u64(c.publication_id);
    if (c.delay_ms != 0) w.i64(c.delay_ms);
  }
  void operator()(const ExtendCommand& c) {
    w.u8(static_cast<uint8_t>(CommandTag::kExtend));
    w.bytes(c.mailbox);
    w.u64(c.id);
    w.i64(c.lease_ms);
    w.bytes(c.rid);
  }
  void operator()(const PurgeCommand& c) {
    w.u8(static_cast<uint8_t>(CommandTag::kPurge));
    w.bytes(c.mailbox);
    w.bytes(c.rid);
  }
  void operator()(const RedriveCommand& c) {
    w.u8(static_cast<uint8_t>(CommandTag::kRedrive));
    w.bytes(c.mailbox);
    w.u32(c.max_count);
    w.bytes(c.rid);
  }
  void operator()(const ConsumeCommand& c) {
    w.u8(static_cast<uint8_t>(CommandTag::kConsume));
    w.bytes(c.mailbox);
    w.u32(c.max_count);
    w.i64(c.lease_ms);
    w.bytes(c.rid);
  }
  void operator()(const AckCommand& c) {
    w.u8(static_cast<uint8_t>(CommandTag::kAck));
    w.bytes(c.mailbox);
    w.u64(c.id);
    w.bytes(c.rid);
  }
  void operator()(const NackCommand& c) {
    w.u8(static_cast<uint8_t>(CommandTag::kNack));
    w.bytes(c.mailbox);
    w.u64(c.id);
    w.bytes(c.rid);
  }
  void operator()(const SweepCommand&) { w.u8(static_cast<uint8_t>(CommandTag::kSweep)); }
  void operator()(const ConfigureCommand& c) {
    w.u8(static_cast<uint8_t>(CommandTag::kConfigure));
    encode_config(w, c.config);
  }
};

bool decode_command(ByteReader& r, Command* command) {
  const auto tag = static_cast<CommandTag>(r.u8());
  switch (tag) {
    case CommandTag::kPut:
    case CommandTag::kDelayedPut: {
      PutCommand c;
      c.mailbox = std::string(r.bytes());
      c.encoding = std::string(r.bytes());
      c.payload = std::string(r.bytes());
      c.ttl_ms = r.i64();
      c.rid = std::string(r.bytes());
      c.publication_id = r.u64();
      if (tag == CommandTag::kDelayedPut) {
        c.delay_ms = r.i64();
        // A delayed put always has a delay (the plain tag has none), in range.
        if (c.delay_ms <= 0 || c.delay_ms > limits::kMaxDelayMs) return false;
      }
      *command = std::move(c);
      return r.ok();
    }
    case CommandTag::kExtend: {
      ExtendCommand c;
      c.mailbox = std::string(r.bytes());
      c.id = r.u64();
      c.lease_ms = r.i64();
      c.rid = std::string(r.bytes());
      *command = std::move(c);
      return r.ok();
    }
    case CommandTag::kPurge: {
      PurgeCommand c;
      c.mailbox = std::string(r.bytes());
      c.rid = std::string(r.bytes());
      *command = std::move(c);
      return r.ok();
    }
    case CommandTag::kRedrive: {
      RedriveCommand c;
      c.mailbox = std::string(r.bytes());
      c.max_count = r.u32();
      c.rid = std::string(r.bytes());
      *command = std::move(c);
      return r.ok();
    }
    case CommandTag::kConsume: {
      ConsumeCommand c;
      c.mailbox = std::string(r.bytes());
      c.max_count = r.u32();
      c.lease_ms = r.i64();
      c.rid = std::string(r.bytes());
      *command = std::move(c);
      return r.ok();
    }
    case CommandTag::kAck: {
      AckCommand c;
      c.mailbox = std::string(r.bytes());
      c.id = r.u64();
      c.rid = std::string(r.bytes());
      *command = std::move(c);
      return r.ok();
    }
    case CommandTag::kNack: {
      NackCommand c;
      c.mailbox = std::string(r.bytes());
      c.id = r.u64();
      c.rid = std::string(r.bytes());
      *command = std::move(c);
      return r.ok();
    }
    case CommandTag::kSweep:
      *command = SweepCommand{};
      return r.ok();
    case CommandTag::kConfigure:
      *command = ConfigureCommand{decode_config(r)};
      return r.ok();
  }
  return false;
}

}  // namespace

void encode_config(ByteWriter& w, const StateConfig& c) {
  w.u64(c.max_messages_per_mailbox);
  w.u64(c.max_bytes_per_mailbox);
  w.u64(c.max_total_bytes);
  w.u64(c.max_total_messages);
  w.i64(c.dedup_window_ms);
  w.u64(c.max_dedup_entries);
  w.u32(c.max_deliveries);
}

StateConfig decode_config(ByteReader& r) {
  StateConfig c;
  c.max_messages_per_mailbox = r.u64();
  c.max_bytes_per_mailbox = r.u64();
  c.max_total_bytes = r.u64();
  c.max_total_messages = r.u64();
  c.dedup_window_ms = r.i64();
  c.max_dedup_entries = r.u64();
  c.max_deliveries = r.u32();
  return c;
}

size_t encoded_size_hint(const Command& command) {
  constexpr size_t kOverheadBytes = 48;
  if (const auto* put = std::get_if<PutCommand>(&command)) {
    return kOverheadBytes + put->mailbox.size() + put->encoding.size() + put->payload.size() + put->rid.size();
  }
  if (const auto* consume = std::get_if<ConsumeCommand>(&command)) {
    return kOverheadBytes + consume->mailbox.size() + consume->rid.size();
  }
  return kOverheadBytes + 2 * limits::kMaxMailboxNameBytes;
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
  Encoder encoder{w};
  for (const auto& c : entry.commands) std::visit(encoder, c);
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
