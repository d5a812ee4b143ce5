// raft_codec.hpp: libraft's messages on the wire (libraft has no codec).
//
// What it is for: the transport (production TCP, or the simulation's
// network) carries each Raft message as one body encoded here. Every field
// libraft reads travels, versions, features, capacity, pre-vote and
// disrupt-leader included. An InstallSnapshot body carries only its
// metadata: the snapshot file itself is streamed separately
// (replication/transport.hpp) and checked end to end.
//
// Body: u8 message type, u8 message version, then the type's fields, all
// little-endian; AppendEntries adds u32 entry count, per entry (term u64,
// type u8, payload bytes u32), then the payloads back to back. Decoding
// checks every length and rejects trailing bytes; a body that does not
// decode is never handed to libraft.
//
// Threads: pure functions, any thread. Ownership: see DecodedMessage.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/errors.hpp"
#include "replication/raft_include.hpp"

namespace mailbox {

// Largest encoded message body (an AppendEntries with its entries).
inline constexpr size_t kMaxRaftMessageBytes = 256u << 20;

// Appends the encoding of `message` (its type's fields; AppendEntries with
// the entries it points to) to `out`. InstallSnapshot: metadata only.
void encode_raft_message(const raft_message& message, std::string* out);

// A decoded message, owning what it points to until handed to libraft:
// the entries array (always ours) and, for AppendEntries, one raft_malloc
// block holding every payload (`batch`), which libraft either frees itself
// or hands back in a RAFT_UPDATE_ENTRIES update (replication/raft_driver).
class DecodedMessage {
 public:
  DecodedMessage() = default;
  ~DecodedMessage();
  DecodedMessage(const DecodedMessage&) = delete;
  DecodedMessage& operator=(const DecodedMessage&) = delete;
  DecodedMessage(DecodedMessage&& other) noexcept;
  DecodedMessage& operator=(DecodedMessage&& other) noexcept;

  raft_message& message() { return message_; }
  const raft_message& message() const { return message_; }
  // libraft took (or freed) the payload block: do not free it here. The
  // entries array is still freed by the destructor.
  void release_batch() { batch_ = nullptr; }
  void* batch() const { return batch_; }

 private:
  friend Status decode_raft_message(std::string_view bytes, DecodedMessage* out);
  void reset();
  raft_message message_{};
  raft_entry* entries_ = nullptr;  // raft_malloc'd array
  void* batch_ = nullptr;          // raft_malloc'd payloads
};

// Decodes a body produced by encode_raft_message. The sender's id and
// address are not in the body: the caller sets message().server_id and
// server_address from the connection.
Status decode_raft_message(std::string_view bytes, DecodedMessage* out);

}  // namespace mailbox
