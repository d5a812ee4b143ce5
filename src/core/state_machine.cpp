#include "core/state_machine.hpp"

#include <algorithm>

#include "core/assert.hpp"
#include "core/bytes.hpp"

namespace mailbox {
namespace {
constexpr uint8_t kSnapshotFormatVersion = 1;

// FNV-1a, 64 bit: stable across platforms and runs.
struct Fnv {
  uint64_t h = 1469598103934665603ULL;
  void add(std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ULL;
    }
  }
  void add(uint64_t v) { add(std::string_view(reinterpret_cast<const char*>(&v), sizeof v)); }
};
}  // namespace

uint64_t StateMachine::message_bytes(const StoredMessage& m) { return m.body->payload.size(); }

std::vector<CommandResult> StateMachine::apply(const Entry& entry) {
  // Time never goes backwards, even if a new leader's clock is behind.
  clock_ms_ = std::max(clock_ms_, entry.leader_time_ms);
  std::vector<CommandResult> results;
  results.reserve(entry.commands.size());
  for (const auto& command : entry.commands) {
    if (const auto* put = std::get_if<PutCommand>(&command)) {
      results.push_back(apply_put(*put));
    } else {
      results.push_back(apply_consume(std::get<ConsumeCommand>(command)));
    }
  }
  return results;
}

CommandResult StateMachine::apply_put(const PutCommand& put) {
  CommandResult result;
  const uint64_t size = put.payload.size();
  auto it = mailboxes_.find(put.mailbox);
  if (it != mailboxes_.end()) drop_expired_head(it->second);
  const uint64_t box_messages = it == mailboxes_.end() ? 0 : it->second.messages.size();
  const uint64_t box_bytes = it == mailboxes_.end() ? 0 : it->second.bytes;
  if (box_messages + 1 > limits_.max_messages_per_mailbox) {
    result.status = Status::error(ErrorCode::kQuotaExceeded, "mailbox holds its maximum number of messages");
    return result;
  }
  if (box_bytes + size > limits_.max_bytes_per_mailbox) {
    result.status = Status::error(ErrorCode::kQuotaExceeded, "mailbox holds its maximum number of bytes");
    return result;
  }
  if (total_bytes_ + size > limits_.max_total_bytes) {
    result.status = Status::error(ErrorCode::kQuotaExceeded, "the service holds its maximum number of bytes");
    return result;
  }
  if (it == mailboxes_.end()) it = mailboxes_.emplace(put.mailbox, Mailbox{}).first;
  StoredMessage m;
  m.id = next_id_++;
  m.enqueued_at_ms = clock_ms_;
  m.expires_at_ms = clock_ms_ + put.ttl_ms;
  m.body = std::make_shared<const MessageBody>(MessageBody{put.encoding, put.payload});
  it->second.bytes += size;
  it->second.messages.push_back(std::move(m));
  total_bytes_ += size;
  total_messages_ += 1;
  result.put_id = it->second.messages.back().id;
  return result;
}

CommandResult StateMachine::apply_consume(const ConsumeCommand& consume) {
  CommandResult result;
  auto it = mailboxes_.find(consume.mailbox);
  if (it != mailboxes_.end()) {
    Mailbox& box = it->second;
    while (result.messages.size() < consume.max_count) {
      drop_expired_head(box);
      if (box.messages.empty()) break;
      StoredMessage& m = box.messages.front();
      result.messages.push_back(
          DeliveredMessage{consume.mailbox, m.id, m.enqueued_at_ms, m.deliveries + 1, m.body});
      remove_front(box);
    }
    if (box.messages.empty()) mailboxes_.erase(it);
  }
  if (result.messages.empty()) result.status = Status::error(ErrorCode::kEmpty, "mailbox is empty");
  return result;
}

void StateMachine::drop_expired_head(Mailbox& box) {
  // FIFO order is by id, not by expiry; only the head is dropped here. Expired
  // messages further back are skipped by readers and dropped when they reach
  // the head.
  while (!box.messages.empty() && box.messages.front().expires_at_ms <= clock_ms_) remove_front(box);
}

void StateMachine::remove_front(Mailbox& box) {
  MAILBOX_ASSERT(!box.messages.empty(), "remove_front on an empty mailbox");
  const uint64_t size = message_bytes(box.messages.front());
  MAILBOX_ASSERT(box.bytes >= size && total_bytes_ >= size && total_messages_ > 0, "byte accounting");
  box.bytes -= size;
  total_bytes_ -= size;
  total_messages_ -= 1;
  box.messages.pop_front();
}

Status StateMachine::peek(std::string_view mailbox, uint32_t max_count, int64_t now_ms,
                          std::vector<DeliveredMessage>* out) const {
  out->clear();
  auto it = mailboxes_.find(mailbox);
  if (it != mailboxes_.end()) {
    for (const auto& m : it->second.messages) {
      if (out->size() >= max_count) break;
      if (m.expires_at_ms <= now_ms) continue;
      out->push_back(DeliveredMessage{std::string(mailbox), m.id, m.enqueued_at_ms, m.deliveries, m.body});
    }
  }
  if (out->empty()) return Status::error(ErrorCode::kEmpty, "mailbox is empty");
  return Status::ok();
}

MailboxStats StateMachine::stats(std::string_view mailbox, int64_t now_ms) const {
  MailboxStats s;
  auto it = mailboxes_.find(mailbox);
  if (it == mailboxes_.end()) return s;
  for (const auto& m : it->second.messages) {
    if (m.expires_at_ms <= now_ms) continue;
    s.messages += 1;
    s.bytes += message_bytes(m);
    if (s.messages == 1) s.oldest_age_ms = std::max<int64_t>(0, now_ms - m.enqueued_at_ms);
  }
  return s;
}

std::string StateMachine::serialize() const {
  ByteWriter w;
  w.reserve(64 + total_bytes_ + total_messages_ * 48);
  w.u8(kSnapshotFormatVersion);
  w.u64(next_id_);
  w.i64(clock_ms_);
  w.varint(mailboxes_.size());
  for (const auto& [name, box] : mailboxes_) {
    w.bytes(name);
    w.varint(box.messages.size());
    for (const auto& m : box.messages) {
      w.u64(m.id);
      w.i64(m.enqueued_at_ms);
      w.i64(m.expires_at_ms);
      w.u32(m.deliveries);
      w.bytes(m.body->encoding);
      w.bytes(m.body->payload);
    }
  }
  return w.take();
}

bool StateMachine::restore(std::string_view bytes) {
  ByteReader r(bytes);
  if (r.u8() != kSnapshotFormatVersion) return false;
  StateMachine fresh(limits_);
  fresh.next_id_ = r.u64();
  fresh.clock_ms_ = r.i64();
  uint64_t boxes = r.varint();
  if (!r.ok() || boxes > r.remaining()) return false;
  for (uint64_t b = 0; b < boxes; ++b) {
    std::string name(r.bytes());
    uint64_t count = r.varint();
    if (!r.ok() || count > r.remaining()) return false;
    Mailbox box;
    for (uint64_t i = 0; i < count; ++i) {
      StoredMessage m;
      m.id = r.u64();
      m.enqueued_at_ms = r.i64();
      m.expires_at_ms = r.i64();
      m.deliveries = r.u32();
      std::string encoding(r.bytes());
      std::string payload(r.bytes());
      if (!r.ok()) return false;
      m.body = std::make_shared<const MessageBody>(MessageBody{std::move(encoding), std::move(payload)});
      box.bytes += m.body->payload.size();
      box.messages.push_back(std::move(m));
    }
    fresh.total_bytes_ += box.bytes;
    fresh.total_messages_ += box.messages.size();
    if (!box.messages.empty()) fresh.mailboxes_.emplace(std::move(name), std::move(box));
  }
  if (!r.ok() || !r.at_end()) return false;
  mailboxes_ = std::move(fresh.mailboxes_);
  next_id_ = fresh.next_id_;
  clock_ms_ = fresh.clock_ms_;
  total_messages_ = fresh.total_messages_;
  total_bytes_ = fresh.total_bytes_;
  return true;
}

uint64_t StateMachine::digest() const {
  Fnv f;
  f.add(next_id_);
  f.add(static_cast<uint64_t>(clock_ms_));
  for (const auto& [name, box] : mailboxes_) {
    f.add(name);
    for (const auto& m : box.messages) {
      f.add(m.id);
      f.add(static_cast<uint64_t>(m.enqueued_at_ms));
      f.add(static_cast<uint64_t>(m.expires_at_ms));
      f.add(static_cast<uint64_t>(m.deliveries));
      f.add(m.body->encoding);
      f.add(m.body->payload);
    }
  }
  return f.h;
}

}  // namespace mailbox
