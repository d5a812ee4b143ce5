#include "core/state_machine.hpp"

#include <algorithm>
#include <cstring>

#include "core/assert.hpp"
#include "core/bytes.hpp"

namespace mailbox {
namespace {
// Version 2 adds a rid record's count and lease end (purge, redrive,
// extend); version 1 snapshots still restore.
constexpr uint8_t kSnapshotFormatVersion = 2;
constexpr uint8_t kOldestSnapshotFormatVersion = 1;
constexpr uint32_t kEncodingNotInterned = UINT32_MAX;

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
  void add(int64_t v) { add(static_cast<uint64_t>(v)); }
};

std::string dedup_key(char op, std::string_view mailbox, std::string_view rid) {
  std::string key;
  key.reserve(2 + mailbox.size() + rid.size());
  key.push_back(op);
  key.append(mailbox);
  key.push_back('\n');  // never part of a mailbox name
  key.append(rid);
  return key;
}

Status empty_status() { return Status::error(ErrorCode::kEmpty, "mailbox is empty"); }

}  // namespace

std::string dead_letter_mailbox(std::string_view mailbox) {
  return std::string(mailbox) + limits::kDeadLetterSuffix;
}

// ------------------------------------------------------------------ apply

bool StateMachine::is_dead_letter_mailbox(std::string_view name) {
  const std::string_view suffix(limits::kDeadLetterSuffix, limits::kDeadLetterSuffixBytes);
  return name.size() > suffix.size() && name.substr(name.size() - suffix.size()) == suffix;
}

std::vector<CommandResult> StateMachine::apply(const Entry& entry) {
  // Time never goes backwards, even if a new leader's clock is behind.
  clock_ms_ = std::max(clock_ms_, entry.leader_time_ms);
  woken_.clear();
  forget_old_dedup();
  std::vector<CommandResult> results;
  results.reserve(entry.commands.size());
  for (const auto& command : entry.commands) {
    if (const auto* put = std::get_if<PutCommand>(&command)) {
      results.push_back(with_dedup('P', *put, [&] { return apply_put(*put); }));
    } else if (const auto* consume = std::get_if<ConsumeCommand>(&command)) {
      results.push_back(with_dedup('C', *consume, [&] { return apply_consume(*consume); }));
    } else if (const auto* ack = std::get_if<AckCommand>(&command)) {
      results.push_back(with_dedup('A', *ack, [&] { return apply_ack(*ack); }));
    } else if (const auto* nack = std::get_if<NackCommand>(&command)) {
      results.push_back(with_dedup('N', *nack, [&] { return apply_nack(*nack); }));
    } else if (const auto* extend = std::get_if<ExtendCommand>(&command)) {
      results.push_back(with_dedup('E', *extend, [&] { return apply_extend(*extend); }));
    } else if (const auto* purge = std::get_if<PurgeCommand>(&command)) {
      results.push_back(with_dedup('X', *purge, [&] { return apply_purge(*purge); }));
    } else if (const auto* redrive = std::get_if<RedriveCommand>(&command)) {
      results.push_back(with_dedup('R', *redrive, [&] { return apply_redrive(*redrive); }));
    } else if (std::holds_alternative<SweepCommand>(command)) {
      apply_sweep();
      results.emplace_back();
    } else {
      config_ = std::get<ConfigureCommand>(command).config;
      forget_old_dedup();
      results.emplace_back();
    }
  }
  return results;
}

template <typename C, typename F>
CommandResult StateMachine::with_dedup(char op, const C& command, F&& apply_fn) {
  if (command.rid.empty()) return apply_fn();
  std::string key = dedup_key(op, command.mailbox, command.rid);
  auto found = dedup_.find(key);
  if (found != dedup_.end()) {
    CommandResult repeat = found->second.result;
    repeat.deduplicated = true;
    return repeat;
  }
  CommandResult result = apply_fn();
  // Only outcomes that changed the state are remembered: a retry of a
  // refused or empty attempt must be free to succeed later.
  if (result.status.is_ok() && config_.max_dedup_entries > 0) {
    while (dedup_.size() >= config_.max_dedup_entries && !dedup_order_.empty()) {
      forget_dedup_front();
    }
    dedup_order_.emplace_back(clock_ms_, key);
    dedup_.emplace(std::move(key), DedupRecord{clock_ms_, result});
  }
  return result;
}

void StateMachine::forget_old_dedup() {
  while (!publications_order_.empty() &&
         publications_order_.front().first + limits::kPublicationDedupWindowMs <= clock_ms_) {
    publications_seen_.erase(publications_order_.front().second);
    publications_order_.pop_front();
  }
  while (!dedup_order_.empty() &&
         (dedup_order_.front().first + config_.dedup_window_ms <= clock_ms_ ||
          dedup_.size() > config_.max_dedup_entries)) {
    forget_dedup_front();
  }
}

void StateMachine::forget_dedup_front() {
  auto it = dedup_.find(dedup_order_.front().second);
  for (auto& m : it->second.result.messages) release(std::move(m.body));
  dedup_.erase(it);
  dedup_order_.pop_front();
}

StoredMessage StateMachine::make_message(BodyRef body) {
  StoredMessage m;
  m.encoding_id = intern_encoding(body->encoding());
  m.payload_bytes = static_cast<uint32_t>(body->payload().size());
  m.body = std::move(body);
  return m;
}

uint32_t StateMachine::intern_encoding(std::string_view encoding) {
  auto it = encoding_ids_.find(encoding);
  if (it != encoding_ids_.end()) return it->second;
  if (encodings_.size() >= limits::kMaxInternedEncodings) return kEncodingNotInterned;
  const auto id = static_cast<uint32_t>(encodings_.size());
  encodings_.emplace_back(encoding);
  encoding_ids_.emplace(std::string(encoding), id);
  return id;
}

void StateMachine::release(BodyRef body) {
  if (pinned_) graveyard_.push_back(std::move(body));
}

StoredMessage& StateMachine::append(const std::string& name, StoredMessage message) {
  auto it = mailboxes_.find(name);
  if (it == mailboxes_.end()) it = mailboxes_.emplace(MailboxName(name), Mailbox{}).first;
  Mailbox& box = it->second;
  const uint64_t size = message_bytes(message);
  box.bytes += size;
  // A leased or delayed message is due when its hidden time ends, else
  // when it expires.
  lower_due(it, message.lease_expires_at_ms != 0 ? std::min(message.lease_expires_at_ms, message.expires_at_ms)
                                                 : message.expires_at_ms);
  total_bytes_ += size;
  total_messages_ += 1;
  box.messages.push_back(std::move(message));
  return box.messages.back();
}

void StateMachine::lower_due(MailboxMap::iterator it, int64_t due_ms) {
  MailboxMap::value_type* node = &*it;
  if (!timers_.contains(node) || due_ms < timers_.due_of(node)) set_due(it, due_ms);
}

void StateMachine::set_due(MailboxMap::iterator it, int64_t due_ms) {
  if (due_ms == INT64_MAX) {
    timers_.erase(&*it);
  } else {
    timers_.set(&*it, due_ms);
  }
}

CommandResult StateMachine::apply_put(const PutCommand& put) {
  CommandResult result;
  if (put.publication_id != 0 && publications_seen_.count(put.publication_id)) {
    result.deduplicated = true;  // the same publication, proposed by another node
    return result;
  }
  const uint64_t size = put.payload.size();
  auto it = mailboxes_.find(put.mailbox);
  const uint64_t box_messages = it == mailboxes_.end() ? 0 : it->second.messages.size();
  const uint64_t box_bytes = it == mailboxes_.end() ? 0 : it->second.bytes;
  if (box_messages + 1 > max_messages_per_mailbox()) {
    result.status = Status::error(ErrorCode::kQuotaExceeded, "mailbox holds its maximum number of messages");
  } else if (box_bytes + size > config_.max_bytes_per_mailbox) {
    result.status = Status::error(ErrorCode::kQuotaExceeded, "mailbox holds its maximum number of bytes");
  } else if (total_bytes_ + size > config_.max_total_bytes) {
    result.status = Status::error(ErrorCode::kQuotaExceeded, "the service holds its maximum number of bytes");
  } else if (total_messages_ + 1 > config_.max_total_messages) {
    result.status = Status::error(ErrorCode::kQuotaExceeded, "the service holds its maximum number of messages");
  }
  if (!result.status.is_ok()) return result;
  StoredMessage m = make_message(MessageBody::make(put.encoding, put.payload));
  m.id = next_id_++;
  m.enqueued_at_ms = clock_ms_;
  if (put.delay_ms > 0) {
    // Hidden until due (deliveries stay 0: a delay, not a lease); the ttl
    // counts from then.
    m.lease_expires_at_ms = clock_ms_ + put.delay_ms;
    m.expires_at_ms = m.lease_expires_at_ms + put.ttl_ms;
  } else {
    m.expires_at_ms = clock_ms_ + put.ttl_ms;
  }
  result.put_id = append(put.mailbox, std::move(m)).id;
  if (put.delay_ms <= 0) woken_.push_back(put.mailbox);
  if (put.publication_id != 0) {
    if (publications_order_.size() >= limits::kMaxPublicationDedupEntries) {
      publications_seen_.erase(publications_order_.front().second);
      publications_order_.pop_front();
    }
    publications_order_.emplace_back(clock_ms_, put.publication_id);
    publications_seen_.insert(put.publication_id);
  }
  return result;
}

CommandResult StateMachine::apply_consume(const ConsumeCommand& consume) {
  CommandResult result;
  auto it = mailboxes_.find(consume.mailbox);
  if (it != mailboxes_.end()) {
    Mailbox& box = it->second;
    size_t i = 0;
    while (i < box.messages.size() && result.messages.size() < consume.max_count) {
      StoredMessage& m = box.messages[i];
      if (m.expires_at_ms <= clock_ms_ && (m.lease_expires_at_ms == 0 || m.lease_expires_at_ms <= clock_ms_)) {
        erase_at(box, i);  // expired and not under an active lease: never delivered
        continue;
      }
      if (!visible(m, clock_ms_)) {
        ++i;
        continue;
      }
      if (awaiting_dead_letter(m, consume.mailbox)) {
        ++i;  // its lease ended at the delivery limit: the next sweep moves it
        continue;
      }
      m.deliveries += 1;
      if (consume.lease_ms > 0) {
        m.lease_expires_at_ms = clock_ms_ + consume.lease_ms;
        lower_due(it, m.lease_expires_at_ms);
        result.messages.push_back(
            DeliveredMessage{consume.mailbox, m.id, m.enqueued_at_ms, m.deliveries, m.lease_expires_at_ms, m.body});
        ++i;
      } else {
        result.messages.push_back(DeliveredMessage{consume.mailbox, m.id, m.enqueued_at_ms, m.deliveries, 0, m.body});
        erase_at(box, i);
      }
    }
    erase_if_empty(it);
  }
  if (result.messages.empty()) result.status = empty_status();
  return result;
}

size_t StateMachine::find_message(const Mailbox& box, uint64_t id) {
  // Binary search: a mailbox is FIFO by id.
  size_t low = 0;
  size_t high = box.messages.size();
  while (low < high) {
    const size_t mid = low + (high - low) / 2;
    if (box.messages[mid].id < id) {
      low = mid + 1;
    } else {
      high = mid;
    }
  }
  return low < box.messages.size() && box.messages[low].id == id ? low : kNotFound;
}

namespace {
// Ack, nack and extend of a message without an active lease.
Status no_active_lease(uint64_t id) {
  return Status::error(ErrorCode::kNotFound, "no active lease on message " + std::to_string(id) +
                                                 " in this mailbox (unknown, settled, or lease expired)");
}
}  // namespace

CommandResult StateMachine::apply_ack(const AckCommand& ack) {
  CommandResult result;
  auto it = mailboxes_.find(ack.mailbox);
  if (it != mailboxes_.end()) {
    const size_t pos = find_message(it->second, ack.id);
    if (pos != kNotFound && holds_lease(it->second.messages[pos], clock_ms_)) {
      erase_at(it->second, pos);
      erase_if_empty(it);
      return result;
    }
  }
  result.status = no_active_lease(ack.id);
  return result;
}

CommandResult StateMachine::apply_nack(const NackCommand& nack) {
  CommandResult result;
  auto it = mailboxes_.find(nack.mailbox);
  if (it != mailboxes_.end()) {
    Mailbox& box = it->second;
    const size_t pos = find_message(box, nack.id);
    if (pos != kNotFound && holds_lease(box.messages[pos], clock_ms_)) {
      std::vector<StoredMessage> dead;
      lease_ended(it, pos, &dead);
      for (auto& m : dead) {
        m.id = next_id_++;
        append(dead_letter_mailbox(nack.mailbox), std::move(m));
      }
      erase_if_empty(it);
      return result;
    }
  }
  result.status = no_active_lease(nack.id);
  return result;
}

CommandResult StateMachine::apply_extend(const ExtendCommand& extend) {
  CommandResult result;
  auto it = mailboxes_.find(extend.mailbox);
  if (it != mailboxes_.end()) {
    Mailbox& box = it->second;
    const size_t pos = find_message(box, extend.id);
    if (pos != kNotFound && holds_lease(box.messages[pos], clock_ms_)) {
      StoredMessage& m = box.messages[pos];
      m.lease_expires_at_ms = clock_ms_ + extend.lease_ms;
      lower_due(it, m.lease_expires_at_ms);
      result.lease_expires_at_ms = m.lease_expires_at_ms;
      return result;
    }
  }
  result.status = no_active_lease(extend.id);
  return result;
}

CommandResult StateMachine::apply_purge(const PurgeCommand& purge) {
  CommandResult result;
  auto it = mailboxes_.find(purge.mailbox);
  if (it == mailboxes_.end()) return result;
  Mailbox& box = it->second;
  for (auto& m : box.messages) {
    // Counted as stats would count it: an expired message not under a
    // lease is gone already for every reader.
    if (m.expires_at_ms > clock_ms_ || m.lease_expires_at_ms > clock_ms_) result.count += 1;
    const uint64_t size = message_bytes(m);
    MAILBOX_ASSERT(total_bytes_ >= size && total_messages_ > 0, "byte accounting");
    total_bytes_ -= size;
    total_messages_ -= 1;
    release(std::move(m.body));
  }
  box.messages.clear();
  box.bytes = 0;
  erase_if_empty(it);
  return result;
}

// Oldest first, each message that is neither leased nor expired moves while
// it fits the destination's quotas (the totals do not change); the first
// that does not fit stops the move, so the destination stays FIFO.
CommandResult StateMachine::apply_redrive(const RedriveCommand& redrive) {
  CommandResult result;
  auto src_it = mailboxes_.find(dead_letter_mailbox(redrive.mailbox));
  if (src_it == mailboxes_.end()) return result;
  const uint64_t max_count = redrive.max_count == 0 ? UINT64_MAX : redrive.max_count;
  auto dst_it = mailboxes_.find(redrive.mailbox);
  uint64_t dst_messages = dst_it == mailboxes_.end() ? 0 : dst_it->second.messages.size();
  uint64_t dst_bytes = dst_it == mailboxes_.end() ? 0 : dst_it->second.bytes;
  Mailbox& src = src_it->second;
  MessageQueue<StoredMessage> kept;
  std::vector<StoredMessage> moving;
  bool full = false;
  for (auto& m : src.messages) {
    const uint64_t size = message_bytes(m);
    if (m.lease_expires_at_ms > clock_ms_ || full || result.count >= max_count) {
      kept.push_back(std::move(m));
    } else if (m.expires_at_ms <= clock_ms_) {
      src.bytes -= size;  // expired: never delivered, dropped here as a sweep would
      total_bytes_ -= size;
      total_messages_ -= 1;
      release(std::move(m.body));
    } else if (dst_messages + 1 > max_messages_per_mailbox() ||
               dst_bytes + size > config_.max_bytes_per_mailbox) {
      full = true;
      kept.push_back(std::move(m));
    } else {
      dst_messages += 1;
      dst_bytes += size;
      src.bytes -= size;
      total_bytes_ -= size;  // added back by append
      total_messages_ -= 1;
      m.lease_expires_at_ms = 0;
      m.deliveries = 0;
      moving.push_back(std::move(m));
      result.count += 1;
    }
  }
  src.messages = std::move(kept);
  erase_if_empty(src_it);
  for (auto& m : moving) {
    m.id = next_id_++;  // the tail of the destination: FIFO by id holds
    append(redrive.mailbox, std::move(m));
  }
  if (result.count > 0) {
    woken_.push_back(redrive.mailbox);
  } else if (full) {
    result.status = Status::error(ErrorCode::kQuotaExceeded, "the mailbox holds its maximum; nothing was moved");
  }
  return result;
}

// The hidden time of box.messages[index] is over (its lease ended or it was
// nacked; or its delay is over): the message becomes visible (again), or,
// leased past the delivery limit, moves to `dead` (never from a dead-letter
// mailbox), or goes if it has expired meanwhile.
void StateMachine::lease_ended(MailboxMap::iterator it, size_t index, std::vector<StoredMessage>* dead) {
  const std::string_view mailbox = it->first.view();
  Mailbox& box = it->second;
  StoredMessage& m = box.messages[index];
  m.lease_expires_at_ms = 0;
  if (m.expires_at_ms <= clock_ms_) {
    erase_at(box, index);
  } else if (m.deliveries > 0 && m.deliveries >= config_.max_deliveries && !is_dead_letter_mailbox(mailbox)) {
    dead->push_back(m);
    erase_at(box, index);
    woken_.push_back(dead_letter_mailbox(mailbox));
  } else {
    // Visible again: its expiry counts now (a leased message's did not, in
    // bounds recomputed by a sweep or a restore). Every replica must sweep
    // the same mailboxes whatever path its bounds took.
    lower_due(it, m.expires_at_ms);
    woken_.emplace_back(mailbox);
  }
}

void StateMachine::apply_sweep() {
  // The due mailboxes, from the timer index, in name order (the order every
  // version of the state machine sweeps them in).
  std::vector<MailboxMap::value_type*> due_nodes;
  timers_.collect_due(clock_ms_, &due_nodes);
  std::vector<std::string> due;
  due.reserve(due_nodes.size());
  for (const auto* node : due_nodes) due.emplace_back(node->first.view());
  std::sort(due.begin(), due.end());
  std::vector<std::pair<std::string, StoredMessage>> dead;
  for (const auto& name : due) {
    auto it = mailboxes_.find(name);
    MAILBOX_ASSERT(it != mailboxes_.end(), "an indexed mailbox exists");
    std::vector<StoredMessage> dead_here;
    sweep_mailbox(it, &dead_here);
    for (auto& m : dead_here) dead.emplace_back(dead_letter_mailbox(it->first), std::move(m));
    erase_if_empty(it);
  }
  // Dead letters get new ids so each mailbox stays FIFO by id.
  for (auto& [name, m] : dead) {
    m.id = next_id_++;
    append(name, std::move(m));
  }
}

void StateMachine::sweep_mailbox(MailboxMap::iterator it, std::vector<StoredMessage>* dead) {
  Mailbox& box = it->second;
  int64_t next_expiry = INT64_MAX;
  int64_t next_lease_end = INT64_MAX;
  size_t i = 0;
  while (i < box.messages.size()) {
    StoredMessage& m = box.messages[i];
    if (m.lease_expires_at_ms != 0 && m.lease_expires_at_ms <= clock_ms_) {
      const size_t before = box.messages.size();
      lease_ended(it, i, dead);
      if (box.messages.size() < before) continue;  // dropped or dead-lettered
    }
    if (m.lease_expires_at_ms > clock_ms_) {
      // Under an active lease: only its end matters (expiry waits for it).
      next_lease_end = std::min(next_lease_end, m.lease_expires_at_ms);
    } else if (m.expires_at_ms <= clock_ms_) {
      erase_at(box, i);
      continue;
    } else {
      next_expiry = std::min(next_expiry, m.expires_at_ms);
    }
    ++i;
  }
  set_due(it, std::min(next_expiry, next_lease_end));
}

void StateMachine::erase_at(Mailbox& box, size_t index) {
  MAILBOX_ASSERT(index < box.messages.size(), "erase_at within the mailbox");
  const uint64_t size = message_bytes(box.messages[index]);
  MAILBOX_ASSERT(box.bytes >= size && total_bytes_ >= size && total_messages_ > 0, "byte accounting");
  box.bytes -= size;
  total_bytes_ -= size;
  total_messages_ -= 1;
  release(std::move(box.messages[index].body));
  box.messages.erase(index);
}

void StateMachine::erase_if_empty(MailboxMap::iterator it) {
  if (it->second.messages.empty()) {
    MAILBOX_ASSERT(it->second.bytes == 0, "an empty mailbox holds no bytes");
    set_due(it, INT64_MAX);  // out of the timer index before its key goes
    mailboxes_.erase(it);
  }
}

// ------------------------------------------------------------------ reads

Status StateMachine::peek(std::string_view mailbox, uint32_t max_count, int64_t now_ms,
                          std::vector<DeliveredMessage>* out) const {
  out->clear();
  auto it = mailboxes_.find(mailbox);
  if (it != mailboxes_.end()) {
    for (const auto& m : it->second.messages) {
      if (out->size() >= max_count) break;
      if (!visible(m, now_ms) || awaiting_dead_letter(m, mailbox)) continue;
      out->push_back(DeliveredMessage{std::string(mailbox), m.id, m.enqueued_at_ms, m.deliveries, 0, m.body});
    }
  }
  if (out->empty()) return empty_status();
  return Status::ok();
}

bool StateMachine::has_visible(std::string_view mailbox, int64_t now_ms) const {
  auto it = mailboxes_.find(mailbox);
  if (it == mailboxes_.end()) return false;
  for (const auto& m : it->second.messages) {
    if (visible(m, now_ms) && !awaiting_dead_letter(m, mailbox)) return true;
  }
  return false;
}

MailboxStats StateMachine::stats(std::string_view mailbox, int64_t now_ms) const {
  MailboxStats s;
  auto it = mailboxes_.find(mailbox);
  if (it == mailboxes_.end()) return s;
  bool aged = false;
  for (const auto& m : it->second.messages) {
    const bool hidden = m.lease_expires_at_ms > now_ms;
    if (m.expires_at_ms <= now_ms && !hidden) continue;
    s.messages += 1;
    s.bytes += message_bytes(m);
    if (hidden && m.deliveries == 0) {
      s.delayed += 1;
      continue;
    }
    if (hidden) s.leased += 1;
    if (!aged) s.oldest_age_ms = std::max<int64_t>(0, now_ms - m.enqueued_at_ms);
    aged = true;
  }
  return s;
}

std::string_view list_pattern_prefix(std::string_view pattern) {
  if (pattern == "*") return {};
  return pattern.substr(0, std::min(pattern.size(), pattern.find("$*")));
}

bool list_pattern_matches(std::string_view pattern, std::string_view name) {
  if (pattern == "*") return !name.empty();
  // Literal pieces between `$*`: the first anchors the start, the last the
  // end, the others are found in order, leftmost (greedy enough for globs).
  constexpr std::string_view kStar = "$*";
  size_t star = pattern.find(kStar);
  if (star == std::string_view::npos) return pattern == name;
  if (name.substr(0, star) != pattern.substr(0, star)) return false;
  size_t at = star;
  pattern.remove_prefix(star + kStar.size());
  while (true) {
    star = pattern.find(kStar);
    if (star == std::string_view::npos) {
      // The last piece anchors the end.
      return name.size() >= at + pattern.size() && name.substr(name.size() - pattern.size()) == pattern;
    }
    const std::string_view piece = pattern.substr(0, star);
    const size_t found = name.find(piece, at);
    if (found == std::string_view::npos) return false;
    at = found + piece.size();
    pattern.remove_prefix(star + kStar.size());
  }
}

void StateMachine::list(const ListQuery& query, int64_t now_ms, const std::function<bool(std::string_view)>& accept,
                        std::vector<ListedMailbox>* out) const {
  out->clear();
  const std::string_view prefix = list_pattern_prefix(query.pattern);
  auto it = mailboxes_.lower_bound(prefix);
  if (!query.after.empty() && query.after >= prefix) it = mailboxes_.upper_bound(query.after);
  for (; it != mailboxes_.end() && out->size() < query.limit; ++it) {
    const std::string_view name = it->first;
    if (name.substr(0, prefix.size()) != prefix) break;  // past every name with the prefix
    if (!list_pattern_matches(query.pattern, name)) continue;
    if (accept && !accept(name)) continue;
    MailboxStats s = stats(name, now_ms);
    if (s.messages == 0) continue;
    out->push_back(ListedMailbox{it->first.str(), s});
  }
}

int64_t StateMachine::next_sweep_due_ms() const {
  return timers_.min_due_ms();
}

// ------------------------------------------------------------------ snapshot
//
// Layout: u8 version, u64 head size, u64 next_id, i64 clock, config, the
// interned encodings, mailboxes (name, messages: id, times, deliveries,
// encoding id [or the encoding itself], payload size), dedup records (key,
// time, status, put id, [v2: count, lease end,] delivered messages
// likewise); then, after the head,
// every payload in the order the messages appear in the head.

size_t StateMachine::SnapshotParts::total_bytes() const {
  size_t total = head.size();
  for (const auto& p : payloads) total += p.size();
  return total;
}

StateMachine::SnapshotParts StateMachine::pin_snapshot() {
  MAILBOX_ASSERT(!pinned_, "one pinned snapshot at a time");
  pinned_ = true;
  SnapshotParts parts;
  parts.payloads.reserve(total_messages_);
  ByteWriter w;
  w.reserve(256 + total_messages_ * 40);
  w.u8(kSnapshotFormatVersion);
  w.u64(0);  // head size, patched below
  w.u64(next_id_);
  w.i64(clock_ms_);
  encode_config(w, config_);
  w.varint(encodings_.size());
  for (const auto& e : encodings_) w.bytes(e);
  auto write_body = [&](uint32_t encoding_id, const char* data, size_t size, const MessageBody& body_if_needed) {
    w.varint(encoding_id == kEncodingNotInterned ? 0 : uint64_t{encoding_id} + 1);
    if (encoding_id == kEncodingNotInterned) w.bytes(body_if_needed.encoding());
    w.varint(size);
    parts.payloads.emplace_back(data, size);
  };
  w.varint(mailboxes_.size());
  for (const auto& [name, box] : mailboxes_) {
    w.bytes(name);
    w.varint(box.messages.size());
    for (const auto& m : box.messages) {
      w.u64(m.id);
      w.i64(m.enqueued_at_ms);
      w.i64(m.expires_at_ms);
      w.i64(m.lease_expires_at_ms);
      w.u32(m.deliveries);
      write_body(m.encoding_id, MessageBody::payload_data_of(m.body.get()), m.payload_bytes, *m.body);
    }
  }
  w.varint(dedup_order_.size());
  for (const auto& [time, key] : dedup_order_) {
    const DedupRecord& record = dedup_.at(key);
    w.bytes(key);
    w.i64(record.recorded_at_ms);
    w.u8(static_cast<uint8_t>(record.result.status.code));
    w.bytes(record.result.status.message);
    w.u64(record.result.put_id);
    w.u64(record.result.count);
    w.i64(record.result.lease_expires_at_ms);
    w.varint(record.result.messages.size());
    for (const auto& m : record.result.messages) {
      w.bytes(m.mailbox);
      w.u64(m.id);
      w.i64(m.enqueued_at_ms);
      w.u32(m.deliveries);
      w.i64(m.lease_expires_at_ms);
      write_body(kEncodingNotInterned, m.body->payload().data(), m.body->payload().size(), *m.body);
    }
  }
  w.varint(publications_order_.size());
  for (const auto& [time, id] : publications_order_) {
    w.i64(time);
    w.u64(id);
  }
  parts.head = w.take();
  const uint64_t head_size = parts.head.size();
  std::memcpy(parts.head.data() + 1, &head_size, sizeof head_size);
  return parts;
}

void StateMachine::unpin_snapshot() {
  pinned_ = false;
  graveyard_.clear();
}

std::string StateMachine::serialize() {
  SnapshotParts parts = pin_snapshot();
  std::string out;
  out.reserve(parts.total_bytes());
  out += parts.head;
  for (const auto& p : parts.payloads) out += p;
  unpin_snapshot();
  return out;
}

bool StateMachine::restore(std::string_view bytes) {
  if (bytes.size() < 9) return false;
  const uint8_t version = static_cast<uint8_t>(bytes[0]);
  if (version < kOldestSnapshotFormatVersion || version > kSnapshotFormatVersion) return false;
  uint64_t head_size = 0;
  std::memcpy(&head_size, bytes.data() + 1, sizeof head_size);
  if (head_size < 9 || head_size > bytes.size()) return false;
  ByteReader r(bytes.substr(9, head_size - 9));
  std::string_view payloads = bytes.substr(head_size);
  StateMachine fresh;
  fresh.next_id_ = r.u64();
  fresh.clock_ms_ = r.i64();
  fresh.config_ = decode_config(r);
  const uint64_t encoding_count = r.varint();
  if (!r.ok() || encoding_count > limits::kMaxInternedEncodings) return false;
  for (uint64_t i = 0; i < encoding_count; ++i) {
    std::string e(r.bytes());
    if (!r.ok() || fresh.encoding_ids_.count(e)) return false;
    fresh.intern_encoding(e);
  }
  auto read_body = [&]() -> BodyRef {
    const uint64_t tag = r.varint();
    std::string_view encoding;
    if (tag == 0) encoding = r.bytes();
    else if (tag <= fresh.encodings_.size()) encoding = fresh.encodings_[tag - 1];
    else return nullptr;
    const uint64_t size = r.varint();
    if (!r.ok() || size > payloads.size() || size > limits::kMaxPayloadBytesCeiling ||
        encoding.size() > limits::kMaxEncodingBytes) {
      return nullptr;
    }
    BodyRef body = MessageBody::make(encoding, payloads.substr(0, size));
    payloads.remove_prefix(size);
    return body;
  };
  const uint64_t box_count = r.varint();
  if (!r.ok() || box_count > r.remaining()) return false;
  for (uint64_t b = 0; b < box_count; ++b) {
    const std::string_view name = r.bytes();
    const uint64_t count = r.varint();
    if (!r.ok() || count > r.remaining() || count == 0 || count >= MessageQueue<StoredMessage>::kMaxSize) return false;
    // Snapshots list mailboxes in name order: each goes at the map's end,
    // with no search (the timer index is built below, once).
    if (!fresh.mailboxes_.empty() && !(fresh.mailboxes_.rbegin()->first < name)) return false;
    auto it = fresh.mailboxes_.emplace_hint(fresh.mailboxes_.end(), MailboxName(name), Mailbox{});
    Mailbox& box = it->second;
    for (uint64_t i = 0; i < count; ++i) {
      const uint64_t id = r.u64();
      const int64_t enqueued = r.i64();
      const int64_t expires = r.i64();
      const int64_t lease = r.i64();
      const uint32_t deliveries = r.u32();
      auto body = read_body();
      if (!r.ok() || !body) return false;
      StoredMessage m = fresh.make_message(std::move(body));
      m.id = id;
      m.enqueued_at_ms = enqueued;
      m.expires_at_ms = expires;
      m.lease_expires_at_ms = lease;
      m.deliveries = deliveries;
      if (!box.messages.empty() && box.messages.back().id >= id) return false;  // FIFO by id
      box.bytes += m.payload_bytes;
      fresh.total_bytes_ += m.payload_bytes;
      fresh.total_messages_ += 1;
      box.messages.push_back(std::move(m));
    }
  }
  const uint64_t dedup_count = r.varint();
  if (!r.ok() || dedup_count > r.remaining()) return false;
  for (uint64_t d = 0; d < dedup_count; ++d) {
    std::string key(r.bytes());
    DedupRecord record;
    record.recorded_at_ms = r.i64();
    record.result.status.code = static_cast<ErrorCode>(r.u8());
    record.result.status.message = std::string(r.bytes());
    record.result.put_id = r.u64();
    if (version >= 2) {
      record.result.count = r.u64();
      record.result.lease_expires_at_ms = r.i64();
    }
    const uint64_t n = r.varint();
    if (!r.ok() || n > r.remaining()) return false;
    for (uint64_t i = 0; i < n; ++i) {
      DeliveredMessage m;
      m.mailbox = std::string(r.bytes());
      m.id = r.u64();
      m.enqueued_at_ms = r.i64();
      m.deliveries = r.u32();
      m.lease_expires_at_ms = r.i64();
      m.body = read_body();
      if (!r.ok() || !m.body) return false;
      record.result.messages.push_back(std::move(m));
    }
    fresh.dedup_order_.emplace_back(record.recorded_at_ms, key);
    if (!fresh.dedup_.emplace(std::move(key), std::move(record)).second) return false;
  }
  const uint64_t publication_count = r.varint();
  if (!r.ok() || publication_count > r.remaining()) return false;
  for (uint64_t i = 0; i < publication_count; ++i) {
    const int64_t time = r.i64();
    const uint64_t id = r.u64();
    fresh.publications_order_.emplace_back(time, id);
    if (!fresh.publications_seen_.insert(id).second) return false;
  }
  if (!r.ok() || !r.at_end() || !payloads.empty()) return false;
  // Bounds are recomputed exactly, and the timer index with them.
  fresh.timers_.reserve(fresh.mailboxes_.size());
  for (auto it = fresh.mailboxes_.begin(); it != fresh.mailboxes_.end(); ++it) {
    int64_t due = INT64_MAX;
    for (const auto& m : it->second.messages) {
      due = std::min(due, m.lease_expires_at_ms != 0 ? m.lease_expires_at_ms : m.expires_at_ms);
    }
    fresh.set_due(it, due);
  }
  // A pinned snapshot of the old state must keep its payloads alive.
  if (pinned_) {
    for (auto& [name, box] : mailboxes_) {
      for (auto& m : box.messages) graveyard_.push_back(std::move(m.body));
    }
    for (auto& [key, record] : dedup_) {
      for (auto& m : record.result.messages) graveyard_.push_back(std::move(m.body));
    }
    fresh.pinned_ = true;
    fresh.graveyard_ = std::move(graveyard_);
  }
  *this = std::move(fresh);
  return true;
}

uint64_t StateMachine::digest() const {
  Fnv f;
  f.add(next_id_);
  f.add(clock_ms_);
  f.add(config_.max_messages_per_mailbox);
  f.add(config_.max_bytes_per_mailbox);
  f.add(config_.max_total_bytes);
  f.add(config_.max_total_messages);
  f.add(config_.dedup_window_ms);
  f.add(config_.max_dedup_entries);
  f.add(static_cast<uint64_t>(config_.max_deliveries));
  for (const auto& e : encodings_) f.add(e);
  for (const auto& [name, box] : mailboxes_) {
    f.add(name);
    for (const auto& m : box.messages) {
      f.add(m.id);
      f.add(m.enqueued_at_ms);
      f.add(m.expires_at_ms);
      f.add(m.lease_expires_at_ms);
      f.add(static_cast<uint64_t>(m.deliveries));
      f.add(m.body->encoding());
      f.add(m.body->payload());
    }
  }
  for (const auto& [time, key] : dedup_order_) {
    f.add(time);
    f.add(key);
    const DedupRecord& record = dedup_.at(key);
    f.add(static_cast<uint64_t>(record.result.status.code));
    f.add(record.result.put_id);
    f.add(record.result.count);
    f.add(record.result.lease_expires_at_ms);
    for (const auto& m : record.result.messages) {
      f.add(m.mailbox);
      f.add(m.id);
      f.add(static_cast<uint64_t>(m.deliveries));
      f.add(m.lease_expires_at_ms);
      f.add(m.body->encoding());
      f.add(m.body->payload());
    }
  }
  for (const auto& [time, id] : publications_order_) {
    f.add(time);
    f.add(id);
  }
  return f.h;
}

}  // namespace mailbox
