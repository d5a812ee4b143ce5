// state_machine.hpp: the mailbox state machine, the deterministic core of the
// service.
//
// What it is for: it holds every mailbox and applies log entries to them.
// It is pure: no I/O, threads, clocks or randomness. Time comes only from the
// entries (`Entry::leader_time_ms`, made monotonic here), ids from a counter
// in the state. Two replicas that apply the same entries from the same
// snapshot hold identical state (`digest()` proves it) and produce identical
// results.
//
// Business errors (empty mailbox, quota) are results, never failures: a
// follower must be able to apply every committed entry.
//
// Threads: not thread-safe. The replication loop thread owns it and is the
// only caller. Results hand out `std::shared_ptr<const MessageBody>`, which
// other threads may read after the call returns: bodies are immutable.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/commands.hpp"
#include "core/errors.hpp"
#include "core/limits.hpp"

namespace mailbox {

// The immutable part of a message, shared between the state and replies.
struct MessageBody {
  std::string encoding;
  std::string payload;
};

// A message as stored in a mailbox.
struct StoredMessage {
  uint64_t id = 0;
  int64_t enqueued_at_ms = 0;
  int64_t expires_at_ms = 0;
  uint32_t deliveries = 0;  // completed deliveries so far
  std::shared_ptr<const MessageBody> body;
};

// A message handed to a client: the stored message plus its mailbox.
struct DeliveredMessage {
  std::string mailbox;
  uint64_t id = 0;
  int64_t enqueued_at_ms = 0;
  uint32_t deliveries = 0;  // including this delivery for a consume
  std::shared_ptr<const MessageBody> body;
};

// The result of one command, in the order of the entry's commands.
struct CommandResult {
  Status status;                            // kOk, kEmpty, kQuotaExceeded, ...
  uint64_t put_id = 0;                      // for a successful put
  std::vector<DeliveredMessage> messages;   // for a successful consume
};

struct MailboxStats {
  uint64_t messages = 0;
  uint64_t bytes = 0;
  int64_t oldest_age_ms = 0;  // 0 when empty
  uint64_t leased = 0;
};

// Quotas applied inside `apply`; they must be the same on every replica.
struct StateLimits {
  uint64_t max_messages_per_mailbox = limits::kDefaultMaxMessagesPerMailbox;
  uint64_t max_bytes_per_mailbox = limits::kDefaultMaxBytesPerMailbox;
  uint64_t max_total_bytes = limits::kDefaultMaxTotalBytes;
};

class StateMachine {
 public:
  explicit StateMachine(StateLimits limits = {}) : limits_(limits) {}

  // Applies every command of `entry` in order; returns one result per command.
  std::vector<CommandResult> apply(const Entry& entry);

  // Read-only views at time `now_ms` (expired messages are invisible).
  Status peek(std::string_view mailbox, uint32_t max_count, int64_t now_ms,
              std::vector<DeliveredMessage>* out) const;
  MailboxStats stats(std::string_view mailbox, int64_t now_ms) const;

  // The time of the last applied entry (monotonic).
  int64_t clock_ms() const { return clock_ms_; }
  uint64_t total_messages() const { return total_messages_; }
  uint64_t total_bytes() const { return total_bytes_; }
  size_t mailbox_count() const { return mailboxes_.size(); }

  // Snapshot: the whole state as bytes, and back. `restore` replaces the
  // state only when `bytes` is a well-formed snapshot; otherwise it returns
  // false and leaves the state unchanged.
  std::string serialize() const;
  bool restore(std::string_view bytes);

  // A digest of the whole state, equal on replicas with equal state.
  uint64_t digest() const;

 private:
  struct Mailbox {
    std::deque<StoredMessage> messages;  // FIFO by id
    uint64_t bytes = 0;
  };

  CommandResult apply_put(const PutCommand& put);
  CommandResult apply_consume(const ConsumeCommand& consume);
  // Drops expired messages at the head of `box` (deterministic, time from the log).
  void drop_expired_head(Mailbox& box);
  void remove_front(Mailbox& box);
  static uint64_t message_bytes(const StoredMessage& m);

  StateLimits limits_;
  std::map<std::string, Mailbox, std::less<>> mailboxes_;
  uint64_t next_id_ = 1;
  int64_t clock_ms_ = 0;
  uint64_t total_messages_ = 0;
  uint64_t total_bytes_ = 0;
};

}  // namespace mailbox
