#include "replication/raft_codec.hpp"

#include <cstring>
#include <limits>
#include <utility>

namespace mailbox {
namespace {

class Writer {
 public:
  explicit Writer(std::string* out) : out_(out) {}
  void u8(uint8_t v) { out_->push_back(static_cast<char>(v)); }
  void u16(uint16_t v) { fixed(v, 2); }
  void u32(uint32_t v) { fixed(v, 4); }
  void u64(uint64_t v) { fixed(v, 8); }
  void bytes(const void* p, size_t n) { out_->append(static_cast<const char*>(p), n); }

 private:
  void fixed(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out_->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  std::string* out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool u8(uint8_t* v) {
    uint64_t x;
    if (!fixed(&x, 1)) return false;
    *v = static_cast<uint8_t>(x);
    return true;
  }
  bool u16(uint16_t* v) {
    uint64_t x;
    if (!fixed(&x, 2)) return false;
    *v = static_cast<uint16_t>(x);
    return true;
  }
  bool u32(uint32_t* v) {
    uint64_t x;
    if (!fixed(&x, 4)) return false;
    *v = static_cast<uint32_t>(x);
    return true;
  }
  bool u64(uint64_t* v) { return fixed(v, 8); }
  bool u64(unsigned long long* v) {  // raft_term, raft_index, raft_id
    uint64_t x;
    if (!fixed(&x, 8)) return false;
    *v = x;
    return true;
  }
  bool boolean(bool* v) {
    uint8_t x;
    if (!u8(&x) || x > 1) return false;
    *v = x == 1;
    return true;
  }
  bool take(size_t n, std::string_view* out) {
    if (in_.size() - at_ < n) return false;
    *out = in_.substr(at_, n);
    at_ += n;
    return true;
  }
  size_t remaining() const { return in_.size() - at_; }

 private:
  bool fixed(uint64_t* v, int n) {
    if (in_.size() - at_ < static_cast<size_t>(n)) return false;
    uint64_t x = 0;
    for (int i = 0; i < n; ++i) x |= static_cast<uint64_t>(static_cast<unsigned char>(in_[at_ + i])) << (8 * i);
    at_ += static_cast<size_t>(n);
    *v = x;
    return true;
  }
  std::string_view in_;
  size_t at_ = 0;
};

constexpr size_t kEntryHeaderBytes = 8 + 1 + 4;

Status malformed(const char* what) {
  return Status::error(ErrorCode::kInvalidArgument, std::string("malformed Raft message: ") + what);
}

}  // namespace

void encode_raft_message(const raft_message& m, std::string* out) {
  Writer w(out);
  w.u8(static_cast<uint8_t>(m.type));
  switch (m.type) {
    case RAFT_REQUEST_VOTE: {
      const auto& p = m.request_vote;
      w.u8(p.version);
      w.u64(p.term);
      w.u64(p.candidate_id);
      w.u64(p.last_log_index);
      w.u64(p.last_log_term);
      w.u8(p.disrupt_leader ? 1 : 0);
      w.u8(p.pre_vote ? 1 : 0);
      break;
    }
    case RAFT_REQUEST_VOTE_RESULT: {
      const auto& p = m.request_vote_result;
      w.u8(p.version);
      w.u64(p.term);
      w.u8(p.vote_granted ? 1 : 0);
      w.u8(p.pre_vote ? 1 : 0);
      w.u16(p.features);
      w.u16(p.capacity);
      break;
    }
    case RAFT_APPEND_ENTRIES: {
      const auto& p = m.append_entries;
      w.u8(p.version);
      w.u64(p.term);
      w.u64(p.prev_log_index);
      w.u64(p.prev_log_term);
      w.u64(p.leader_commit);
      w.u32(p.n_entries);
      for (unsigned i = 0; i < p.n_entries; ++i) {
        w.u64(p.entries[i].term);
        w.u8(static_cast<uint8_t>(p.entries[i].type));
        w.u32(static_cast<uint32_t>(p.entries[i].buf.len));
      }
      for (unsigned i = 0; i < p.n_entries; ++i) w.bytes(p.entries[i].buf.base, p.entries[i].buf.len);
      break;
    }
    case RAFT_APPEND_ENTRIES_RESULT: {
      const auto& p = m.append_entries_result;
      w.u8(p.version);
      w.u64(p.term);
      w.u64(p.rejected);
      w.u64(p.last_log_index);
      w.u16(p.features);
      w.u16(p.capacity);
      break;
    }
    case RAFT_INSTALL_SNAPSHOT: {
      const auto& p = m.install_snapshot;
      w.u8(p.version);
      w.u64(p.term);
      w.u64(p.last_index);
      w.u64(p.last_term);
      w.u64(p.conf_index);
      break;
    }
    case RAFT_TIMEOUT_NOW: {
      const auto& p = m.timeout_now;
      w.u8(p.version);
      w.u64(p.term);
      w.u64(p.last_log_index);
      w.u64(p.last_log_term);
      break;
    }
  }
}

DecodedMessage::~DecodedMessage() { reset(); }

DecodedMessage::DecodedMessage(DecodedMessage&& other) noexcept
    : message_(other.message_), entries_(std::exchange(other.entries_, nullptr)),
      batch_(std::exchange(other.batch_, nullptr)) {
  other.message_ = {};
}

DecodedMessage& DecodedMessage::operator=(DecodedMessage&& other) noexcept {
  if (this != &other) {
    reset();
    message_ = other.message_;
    entries_ = std::exchange(other.entries_, nullptr);
    batch_ = std::exchange(other.batch_, nullptr);
    other.message_ = {};
  }
  return *this;
}

void DecodedMessage::reset() {
  if (entries_ != nullptr) raft_free(entries_);
  if (batch_ != nullptr) raft_free(batch_);
  entries_ = nullptr;
  batch_ = nullptr;
  message_ = {};
}

Status decode_raft_message(std::string_view bytes, DecodedMessage* out) {
  out->reset();
  if (bytes.size() > kMaxRaftMessageBytes) return malformed("too large");
  Reader r(bytes);
  uint8_t type = 0;
  if (!r.u8(&type)) return malformed("empty");
  raft_message& m = out->message_;
  m = {};
  m.type = static_cast<raft_message_type>(type);
  bool ok = true;
  switch (type) {
    case RAFT_REQUEST_VOTE: {
      auto& p = m.request_vote;
      uint64_t candidate = 0;
      ok = r.u8(&p.version) && r.u64(&p.term) && r.u64(&candidate) && r.u64(&p.last_log_index) &&
           r.u64(&p.last_log_term) && r.boolean(&p.disrupt_leader) && r.boolean(&p.pre_vote);
      p.candidate_id = candidate;
      break;
    }
    case RAFT_REQUEST_VOTE_RESULT: {
      auto& p = m.request_vote_result;
      ok = r.u8(&p.version) && r.u64(&p.term) && r.boolean(&p.vote_granted) && r.boolean(&p.pre_vote) &&
           r.u16(&p.features) && r.u16(&p.capacity);
      break;
    }
    case RAFT_APPEND_ENTRIES: {
      auto& p = m.append_entries;
      uint32_t count = 0;
      ok = r.u8(&p.version) && r.u64(&p.term) && r.u64(&p.prev_log_index) && r.u64(&p.prev_log_term) &&
           r.u64(&p.leader_commit) && r.u32(&count);
      if (!ok) break;
      if (count > r.remaining() / kEntryHeaderBytes) return malformed("entry count");
      if (count == 0) break;
      auto* entries = static_cast<raft_entry*>(raft_calloc(count, sizeof(raft_entry)));
      if (entries == nullptr) return Status::error(ErrorCode::kInternal, "out of memory decoding a Raft message");
      out->entries_ = entries;
      uint64_t total = 0;
      for (uint32_t i = 0; i < count && ok; ++i) {
        uint8_t entry_type = 0;
        uint32_t length = 0;
        ok = r.u64(&entries[i].term) && r.u8(&entry_type) && r.u32(&length);
        if (ok && (entry_type < RAFT_COMMAND || entry_type > RAFT_CHANGE)) return malformed("entry type");
        entries[i].type = static_cast<raft_entry_type>(entry_type);
        entries[i].buf.len = length;
        total += length;
      }
      if (!ok) break;
      if (total != r.remaining()) return malformed("entry payloads");
      std::string_view payloads;
      r.take(static_cast<size_t>(total), &payloads);
      // One block for every payload, as libraft expects of a received batch.
      void* batch = raft_malloc(total == 0 ? 1 : static_cast<size_t>(total));
      if (batch == nullptr) return Status::error(ErrorCode::kInternal, "out of memory decoding a Raft message");
      out->batch_ = batch;
      if (total > 0) std::memcpy(batch, payloads.data(), static_cast<size_t>(total));
      size_t at = 0;
      for (uint32_t i = 0; i < count; ++i) {
        entries[i].buf.base = static_cast<char*>(batch) + at;
        entries[i].batch = batch;
        at += entries[i].buf.len;
      }
      p.entries = entries;
      p.n_entries = count;
      break;
    }
    case RAFT_APPEND_ENTRIES_RESULT: {
      auto& p = m.append_entries_result;
      ok = r.u8(&p.version) && r.u64(&p.term) && r.u64(&p.rejected) && r.u64(&p.last_log_index) &&
           r.u16(&p.features) && r.u16(&p.capacity);
      break;
    }
    case RAFT_INSTALL_SNAPSHOT: {
      auto& p = m.install_snapshot;
      ok = r.u8(&p.version) && r.u64(&p.term) && r.u64(&p.last_index) && r.u64(&p.last_term) &&
           r.u64(&p.conf_index);
      break;
    }
    case RAFT_TIMEOUT_NOW: {
      auto& p = m.timeout_now;
      ok = r.u8(&p.version) && r.u64(&p.term) && r.u64(&p.last_log_index) && r.u64(&p.last_log_term);
      break;
    }
    default:
      return malformed("unknown type");
  }
  if (!ok) return malformed("truncated");
  if (r.remaining() != 0) return malformed("trailing bytes");
  return Status::ok();
}

}  // namespace mailbox
