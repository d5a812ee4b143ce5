// state_machine.hpp: the mailbox state machine, the deterministic core of the
// service.
//
// What it is for: it holds every mailbox, the idempotency (rid) records and
// the shared business settings, and applies log entries to them. It is pure:
// no I/O, threads, clocks or randomness. Time comes only from the entries
// (`Entry::leader_time_ms`, made monotonic here), ids from a counter in the
// state. Two replicas that apply the same entries from the same snapshot hold
// identical state (`digest()` proves it) and produce identical results.
//
// Business errors (empty mailbox, quota, unknown lease) are results, never
// failures: a follower must be able to apply every committed entry.
//
// Semantics in brief (docs/PROTOCOL.md has the full contract):
//  - put appends with a new id; refused with quota_exceeded when full; a
//    delayed put's message is stored now but hidden until it is due (its
//    ttl counts from then); it keeps its id, so consume returns the oldest
//    *visible* message, which may have a larger id than a hidden one;
//  - consume takes the oldest visible messages: removes them, or with a lease
//    hides them until ack (remove), nack (visible again) or lease end;
//  - a message whose lease ends after `max_deliveries` deliveries moves to
//    the mailbox `<name>.dlq` (dead letters), never dropped;
//  - an expired message (ttl) is never delivered; sweep removes it;
//  - extend moves the end of a held lease; purge removes every message of a
//    mailbox; redrive moves dead letters back to the tail of their mailbox
//    with new ids and the delivery count reset;
//  - a command with a rid that already succeeded within the dedup window
//    returns its first result and changes nothing.
//
// Hidden messages: `lease_expires_at_ms` is the end of the time a message is
// hidden. A leased message has been delivered (deliveries > 0); a delayed
// one never has (deliveries == 0), so a delay costs no memory beyond an
// ordinary message. When it ends, a lease makes the message visible again
// (or dead-letters it); a delay makes it visible.
//
// Timers: each mailbox has a due time, a lower bound of its next expiry and
// next end of a hidden time; the state indexes mailboxes by it (`timers_`,
// a heap), so finding what a sweep must do never scans every mailbox.
//
// Memory (issue #15 item 6, docs/BENCHMARKS.md "A million mailboxes"): a
// mailbox of one small message costs a map node (name and `Mailbox`, the
// message's metadata inline: 144 bytes with malloc's header, for a name of
// up to 15 bytes), the body (one block: 96 for 64 payload bytes) and a
// timer heap entry (16).
//
// Threads: not thread-safe. The replication loop thread owns it and is the
// only caller. Results hand out `BodyRef`s, which other threads may read
// and drop after the call returns: bodies are immutable.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "core/commands.hpp"
#include "core/errors.hpp"
#include "core/limits.hpp"
#include "core/mailbox_name.hpp"
#include "core/message_body.hpp"
#include "core/message_queue.hpp"
#include "core/timer_heap.hpp"

namespace mailbox {

// A message as stored in a mailbox (56 bytes). `payload_bytes` and
// `encoding_id` repeat what the body holds so that a snapshot can walk the
// mailboxes without touching (cache-missing on) every body; the payload
// itself is at a fixed offset from the body (MessageBody::payload_data_of).
struct StoredMessage {
  uint64_t id = 0;
  int64_t enqueued_at_ms = 0;
  int64_t expires_at_ms = 0;
  int64_t lease_expires_at_ms = 0;  // 0: not hidden; leased (deliveries > 0) or delayed (deliveries == 0) until then
  BodyRef body;
  uint32_t deliveries = 0;     // deliveries so far
  uint32_t encoding_id = 0;    // into the state's interned encodings
  uint32_t payload_bytes = 0;  // body->payload().size()
};

// A message handed to a client.
struct DeliveredMessage {
  std::string mailbox;
  uint64_t id = 0;
  int64_t enqueued_at_ms = 0;
  uint32_t deliveries = 0;          // including this delivery for a consume
  int64_t lease_expires_at_ms = 0;  // 0 unless leased by this consume
  BodyRef body;
};

// The result of one command, in the order of the entry's commands.
struct CommandResult {
  Status status;                           // kOk, kEmpty, kQuotaExceeded, kNotFound, ...
  uint64_t put_id = 0;                     // for a successful put
  std::vector<DeliveredMessage> messages;  // for a successful consume
  bool deduplicated = false;               // a repeat answered from the rid record (or a repeated publication)
  uint64_t count = 0;                      // purge: messages removed; redrive: messages moved
  int64_t lease_expires_at_ms = 0;         // extend: the lease's new end
};

struct MailboxStats {
  uint64_t messages = 0;  // stored and unexpired, leased included
  uint64_t bytes = 0;
  int64_t oldest_age_ms = 0;  // 0 when empty
  uint64_t leased = 0;        // under an active lease
  uint64_t delayed = 0;       // stored, not due yet (counted in `messages`; not in the oldest age)
};

// A page of the mailbox listing (SPEC v2 `get P/<pattern>/stats`).
struct ListQuery {
  std::string pattern;  // "*", or a chunk with `$*` wildcards (each matches any run of characters)
  std::string after;    // only names after this one; empty: from the start
  uint32_t limit = limits::kDefaultListLimit;
};
struct ListedMailbox {
  std::string name;
  MailboxStats stats;
};

// True when mailbox name `name` matches a list pattern (see ListQuery).
bool list_pattern_matches(std::string_view pattern, std::string_view name);
// The literal characters every name a list pattern matches starts with.
std::string_view list_pattern_prefix(std::string_view pattern);

// The name of the mailbox that receives `mailbox`'s dead letters.
std::string dead_letter_mailbox(std::string_view mailbox);

class StateMachine {
 public:
  StateMachine() = default;
  // The timer index refers to the mailboxes' map nodes: no copies.
  StateMachine(const StateMachine&) = delete;
  StateMachine& operator=(const StateMachine&) = delete;
  StateMachine(StateMachine&&) = default;
  StateMachine& operator=(StateMachine&&) = default;

  // Applies every command of `entry` in order; returns one result per command.
  std::vector<CommandResult> apply(const Entry& entry);

  // Read-only views at time `now_ms` (expired messages are invisible).
  Status peek(std::string_view mailbox, uint32_t max_count, int64_t now_ms,
              std::vector<DeliveredMessage>* out) const;
  MailboxStats stats(std::string_view mailbox, int64_t now_ms) const;
  // Up to `query.limit` mailboxes that match `query.pattern`, come after
  // `query.after`, hold messages at `now_ms` and pass `accept` (may be
  // empty), in name order. Walks the ordered map from the pattern's literal
  // prefix (or `after`), never the whole map for one page when the pattern
  // has a prefix.
  void list(const ListQuery& query, int64_t now_ms, const std::function<bool(std::string_view)>& accept,
            std::vector<ListedMailbox>* out) const;
  // True when `mailbox` has a message a consume at `now_ms` would take.
  bool has_visible(std::string_view mailbox, int64_t now_ms) const;

  // The earliest time a sweep has work to do (an expiry, a lease end, a
  // delayed message due); INT64_MAX when none. May be early, never late.
  // O(1): the first entry of the timer index. (Old rid and publication
  // records are forgotten by every entry; they need no sweep.)
  int64_t next_sweep_due_ms() const;

  // Mailboxes that gained visible messages in the last `apply` (puts, nacks,
  // ended leases and delays, dead letters, redrives), for waking long-poll
  // waiters. Cleared by the
  // next `apply`. Not part of the state.
  const std::vector<std::string>& woken() const { return woken_; }

  const StateConfig& config() const { return config_; }
  // The time of the last applied entry (monotonic).
  int64_t clock_ms() const { return clock_ms_; }
  uint64_t total_messages() const { return total_messages_; }
  uint64_t total_bytes() const { return total_bytes_; }
  size_t mailbox_count() const { return mailboxes_.size(); }
  size_t dedup_count() const { return dedup_.size(); }
  // Operators' views (mailboxd's status page and metrics): calls
  // visit(name, stored messages, bytes, leased, delayed at now_ms) for
  // every mailbox; expired messages not yet swept are counted.
  // O(mailboxes), and O(messages) with count_hidden (else leased and
  // delayed are 0).
  template <typename Visit>
  void for_each_mailbox(int64_t now_ms, bool count_hidden, Visit&& visit) const {
    for (const auto& [name, box] : mailboxes_) {
      uint64_t leased = 0;
      uint64_t delayed = 0;
      if (count_hidden) {
        for (const auto& m : box.messages) {
          leased += holds_lease(m, now_ms) ? 1 : 0;
          delayed += is_delayed(m, now_ms) ? 1 : 0;
        }
      }
      visit(std::string_view(name), box.messages.size(), box.bytes, leased, delayed);
    }
  }

  // Snapshot: the whole state as bytes, and back. The bytes are `head`
  // followed by each of `payloads`, in order, so a caller can write them
  // without copying payloads. `pin_snapshot` walks only the mailboxes'
  // message arrays (not the bodies); until `unpin_snapshot`, every body the
  // state lets go of is kept alive, so the payload views stay valid while the
  // state keeps changing. One pinned snapshot at a time.
  // `serialize` concatenates a pinned snapshot (for tests and tools).
  // `restore` replaces the state only when `bytes` is a well-formed snapshot;
  // otherwise it returns false and leaves the state unchanged.
  struct SnapshotParts {
    std::string head;
    std::vector<std::string_view> payloads;
    size_t total_bytes() const;
  };
  SnapshotParts pin_snapshot();
  void unpin_snapshot();
  std::string serialize();
  bool restore(std::string_view bytes);

  // A digest of the whole state, equal on replicas with equal state.
  uint64_t digest() const;

 private:
  // 88 bytes (its first message inline): with its name, a 144-byte map node.
  struct Mailbox {
    MessageQueue<StoredMessage> messages;  // FIFO by id
    uint64_t bytes = 0;
    // Its entry in `timers_`, whose time is a lower bound of the earlier of
    // its next expiry (of a visible message) and its next end of a hidden
    // time (lease or delay): exact after a sweep of it, lowered by every
    // put, lease and extend. Not in the heap: nothing due.
    uint32_t timer_position = UINT32_MAX;
  };
  using MailboxMap = std::map<MailboxName, Mailbox, std::less<>>;
  struct TimerPosition {
    uint32_t& operator()(MailboxMap::value_type* node) const { return node->second.timer_position; }
  };
  using Timers = TimerHeap<MailboxMap::value_type, TimerPosition>;
  static_assert(Timers::kAbsent == UINT32_MAX, "a new mailbox is not in the timer heap");
  struct DedupRecord {
    int64_t recorded_at_ms = 0;
    CommandResult result;
  };

  CommandResult apply_put(const PutCommand& put);
  CommandResult apply_consume(const ConsumeCommand& consume);
  CommandResult apply_ack(const AckCommand& ack);
  CommandResult apply_nack(const NackCommand& nack);
  CommandResult apply_extend(const ExtendCommand& extend);
  CommandResult apply_purge(const PurgeCommand& purge);
  CommandResult apply_redrive(const RedriveCommand& redrive);
  void apply_sweep();
  static constexpr size_t kNotFound = SIZE_MAX;

  template <typename C, typename F>
  CommandResult with_dedup(char op, const C& command, F&& apply_fn);
  void forget_old_dedup();
  void forget_dedup_front();

  // Appends a message to `name`, creating the mailbox (no quota check).
  StoredMessage& append(const std::string& name, StoredMessage message);
  StoredMessage make_message(BodyRef body);
  uint32_t intern_encoding(std::string_view encoding);
  // Keeps `body` alive while a snapshot is pinned.
  void release(BodyRef body);
  void sweep_mailbox(MailboxMap::iterator it, std::vector<StoredMessage>* dead);
  void erase_at(Mailbox& box, size_t index);
  // Erases the mailbox when it holds nothing (and its timer index entry).
  void erase_if_empty(MailboxMap::iterator it);
  // Lowers the mailbox's due time to `due_ms` if that is earlier;
  // `set_due` sets it to exactly `due_ms` (INT64_MAX: out of the heap).
  void lower_due(MailboxMap::iterator it, int64_t due_ms);
  void set_due(MailboxMap::iterator it, int64_t due_ms);
  // The index of the message with `id`, or kNotFound.
  static size_t find_message(const Mailbox& box, uint64_t id);
  static bool is_dead_letter_mailbox(std::string_view name);
  // Where a message goes when its lease ends or it is nacked.
  void lease_ended(MailboxMap::iterator it, size_t index, std::vector<StoredMessage>* dead);
  static bool visible(const StoredMessage& m, int64_t now_ms) {
    return m.expires_at_ms > now_ms && (m.lease_expires_at_ms == 0 || m.lease_expires_at_ms <= now_ms);
  }
  static bool holds_lease(const StoredMessage& m, int64_t now_ms) {
    return m.deliveries > 0 && m.lease_expires_at_ms > now_ms;
  }
  static bool is_delayed(const StoredMessage& m, int64_t now_ms) {
    return m.deliveries == 0 && m.lease_expires_at_ms > now_ms;
  }
  // Its lease ended at the delivery limit: the next sweep moves it to the
  // dead letters; nobody may take it meanwhile.
  bool awaiting_dead_letter(const StoredMessage& m, std::string_view mailbox) const {
    return m.lease_expires_at_ms != 0 && m.deliveries > 0 && m.deliveries >= config_.max_deliveries &&
           !is_dead_letter_mailbox(mailbox);
  }
  static uint64_t message_bytes(const StoredMessage& m) { return m.payload_bytes; }
  // The per-mailbox message quota, within what a mailbox's queue can hold.
  uint64_t max_messages_per_mailbox() const {
    return std::min<uint64_t>(config_.max_messages_per_mailbox, MessageQueue<StoredMessage>::kMaxSize - 1);
  }

  StateConfig config_;
  MailboxMap mailboxes_;
  // Mailboxes by their due time; entries point at the map's nodes. Derived
  // state: not in snapshots or the digest; rebuilt by `restore`.
  Timers timers_;
  std::map<std::string, DedupRecord, std::less<>> dedup_;
  std::deque<std::pair<int64_t, std::string>> dedup_order_;  // (recorded_at, key), oldest first
  // Publications stored recently: (stored_at, publication id), oldest first.
  std::deque<std::pair<int64_t, uint64_t>> publications_order_;
  std::unordered_set<uint64_t> publications_seen_;
  uint64_t next_id_ = 1;
  int64_t clock_ms_ = 0;
  uint64_t total_messages_ = 0;
  uint64_t total_bytes_ = 0;
  // Interned encodings (deterministic ids, in order of first use); past
  // limits::kMaxInternedEncodings a message keeps kEncodingNotInterned.
  std::vector<std::string> encodings_;
  std::map<std::string, uint32_t, std::less<>> encoding_ids_;
  std::vector<std::string> woken_;
  // While a snapshot is pinned: bodies the state let go of.
  bool pinned_ = false;
  std::vector<BodyRef> graveyard_;
};

}  // namespace mailbox
