#include "replication/log_store.hpp"

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "core/assert.hpp"
#include "replication/log_format.hpp"

namespace mailbox {
namespace {

constexpr size_t kZeroChunkBytes = 1 << 20;
constexpr size_t kSegmentNameDigits = 16;

// "seg-<16 hex>.log" (in use), "prep-<16 hex>.seg" (prepared),
// "prep-<16 hex>.tmp" (being prepared).
enum class NameKind { kUsed, kPrepared, kPreparing, kOther };

NameKind parse_name(const std::string& name, uint64_t* number) {
  auto hex_at = [&](size_t at) {
    if (name.size() < at + kSegmentNameDigits) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < kSegmentNameDigits; ++i) {
      const char c = name[at + i];
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (d < 0) return false;
      v = v * 16 + static_cast<uint64_t>(d);
    }
    *number = v;
    return true;
  };
  if (name.size() == 4 + kSegmentNameDigits + 4 && name.rfind("seg-", 0) == 0 && name.substr(20) == ".log" &&
      hex_at(4)) {
    return NameKind::kUsed;
  }
  if (name.size() == 5 + kSegmentNameDigits + 4 && name.rfind("prep-", 0) == 0 && hex_at(5)) {
    if (name.substr(21) == ".seg") return NameKind::kPrepared;
    if (name.substr(21) == ".tmp") return NameKind::kPreparing;
  }
  return NameKind::kOther;
}

std::string hex16(uint64_t v) {
  char buffer[kSegmentNameDigits + 1];
  std::snprintf(buffer, sizeof buffer, "%016" PRIx64, v);
  return buffer;
}

IoStatus read_all(File& file, std::string* out) {
  uint64_t bytes = 0;
  IoStatus s = file.size(&bytes);
  if (!s.is_ok()) return s;
  out->resize(bytes);
  size_t read = 0;
  s = file.read_at(0, out->data(), out->size(), &read);
  if (!s.is_ok()) return s;
  out->resize(read);
  return IoStatus::ok();
}

}  // namespace

Payload Payload::copy_of(std::string_view bytes) {
  auto owner = std::make_shared<std::string>(bytes);
  const char* data = owner->data();
  return Payload(std::move(owner), data, bytes.size());
}

LogStore::LogStore(FileSystem& fs, std::string dir, LogStoreOptions options)
    : fs_(fs), dir_(std::move(dir)), options_(options) {
  MAILBOX_ASSERT(options_.segment_bytes >= logfmt::kSegmentHeaderBytes + logfmt::record_bytes(0),
                 "segment_bytes holds a header and a record");
}

LogStore::~LogStore() = default;

std::string LogStore::segment_path(uint64_t seq, bool preparing) const {
  (void)preparing;
  return join_path(dir_, "seg-" + hex16(seq) + ".log");
}

// A prepared segment: zero-filled under a temporary name, fsynced, renamed,
// directory fsynced. Its blocks are all written, so the writer's overwrites
// change no extent and fdatasync flushes data only.
IoStatus LogStore::create_segment(uint64_t bytes, Segment* out) {
  uint64_t id = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    id = next_seq_++;  // a unique id; the seq is given when it is used
  }
  const std::string tmp = join_path(dir_, "prep-" + hex16(id) + ".tmp");
  const std::string ready = join_path(dir_, "prep-" + hex16(id) + ".seg");
  std::unique_ptr<File> file;
  IoStatus s = fs_.open(tmp, OpenMode::kCreateExclusive, &file);
  if (!s.is_ok()) return s;
  const std::string zeros(kZeroChunkBytes, '\0');
  for (uint64_t at = 0; at < bytes && s.is_ok(); at += kZeroChunkBytes) {
    s = file->write_at(at, zeros.data(), static_cast<size_t>(std::min<uint64_t>(kZeroChunkBytes, bytes - at)));
  }
  if (s.is_ok()) s = file->sync_data();
  file.reset();
  if (s.is_ok()) s = fs_.rename(tmp, ready);
  if (s.is_ok()) s = fs_.sync_dir(dir_);
  if (!s.is_ok()) {
    fs_.remove(tmp);
    return s;
  }
  out->seq = id;
  out->path = ready;
  out->file_bytes = bytes;
  return IoStatus::ok();
}

IoStatus LogStore::prepare() {
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (prepared_.size() >= options_.prepared_segments) {
        out_of_space_ = false;
        return IoStatus::ok();
      }
    }
    Segment segment;
    IoStatus s = create_segment(options_.segment_bytes, &segment);
    std::lock_guard<std::mutex> lock(mutex_);
    if (!s.is_ok()) {
      if (s.is_no_space()) out_of_space_ = true;
      return s;
    }
    out_of_space_ = false;
    prepared_.push_back(std::move(segment));
  }
}

// Takes a prepared segment (or prepares one now: the helper fell behind, or
// the next record needs more room than a segment has), renames it to the
// next seq and makes it current. Its header goes out with its first write.
IoStatus LogStore::start_segment(uint64_t first_index, uint64_t min_bytes) {
  Segment segment;
  bool have = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!prepared_.empty() && prepared_.front().file_bytes >= min_bytes) {
      segment = std::move(prepared_.front());
      prepared_.pop_front();
      have = true;
    }
  }
  if (!have) {
    IoStatus s = create_segment(std::max<uint64_t>(options_.segment_bytes, min_bytes), &segment);
    if (!s.is_ok()) {
      if (s.is_no_space()) {
        std::lock_guard<std::mutex> lock(mutex_);
        out_of_space_ = true;
      }
      return s;
    }
  }
  uint64_t seq = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    seq = next_seq_++;
  }
  const std::string path = join_path(dir_, "seg-" + hex16(seq) + ".log");
  IoStatus s = fs_.rename(segment.path, path);
  if (!s.is_ok()) {
    std::lock_guard<std::mutex> lock(mutex_);
    prepared_.push_front(std::move(segment));
    return s;
  }
  std::unique_ptr<File> file;
  s = fs_.open(path, OpenMode::kReadWrite, &file);
  if (!s.is_ok()) return s;
  current_ = std::move(file);
  current_offset_ = 0;
  current_bytes_ = segment.file_bytes;
  current_has_header_ = false;
  segment.seq = seq;
  segment.path = path;
  segment.first_index = first_index;
  segment.last_index = first_index - 1;
  segment.effective_last = first_index - 1;
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& older : segments_) older.effective_last = std::min(older.effective_last, first_index - 1);
  segments_.push_back(std::move(segment));
  return IoStatus::ok();
}

// One write (header first when the segment is new) and one fdatasync; a
// new segment's rename is made durable with it.
IoStatus LogStore::write_current(std::string& buffer, bool with_header) {
  IoStatus s = current_->write_at(current_offset_, buffer.data(), buffer.size());
  if (s.is_ok()) {
    const auto started = std::chrono::steady_clock::now();
    s = current_->sync_data();
    fsync_timings_.record(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started).count()));
  }
  if (s.is_ok() && with_header) s = fs_.sync_dir(dir_);
  if (!s.is_ok()) return s;
  current_offset_ += buffer.size();
  current_has_header_ = true;
  return IoStatus::ok();
}

IoStatus LogStore::append(const LogEntry* entries, size_t count) {
  MAILBOX_ASSERT(count > 0, "append of no entries");
  const uint64_t first = entries[0].index;
  MAILBOX_ASSERT(first >= 1 && first <= last_index_ + 1, "append continues the log or truncates it");
  for (size_t k = 1; k < count; ++k) {
    MAILBOX_ASSERT(entries[k].index == first + k, "appended entries are contiguous");
  }
  if (current_ == nullptr || first <= last_index_) {
    IoStatus s = start_segment(first, logfmt::kSegmentHeaderBytes + logfmt::record_bytes(entries[0].payload.size()));
    if (!s.is_ok()) return s;
  }
  size_t i = 0;
  while (i < count) {
    const bool fresh = !current_has_header_;
    write_buffer_.clear();
    uint64_t segment_seq = 0;
    uint64_t segment_first = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      segment_seq = segments_.back().seq;
      segment_first = segments_.back().first_index;
    }
    if (fresh) {
      logfmt::encode_segment_header(logfmt::SegmentHeader{segment_seq, segment_first, options_.node_id},
                                    &write_buffer_);
    }
    const uint64_t start = current_offset_;
    const uint64_t seq = next_write_seq_++;
    const size_t begin = i;
    while (i < count && start + write_buffer_.size() + logfmt::record_bytes(entries[i].payload.size()) <=
                            current_bytes_) {
      logfmt::RecordHeader h;
      h.type = entries[i].type;
      h.index = entries[i].index;
      h.term = entries[i].term;
      h.write_seq = seq;
      h.write_start = start;
      logfmt::append_record(h, entries[i].payload.view(), &write_buffer_);
      ++i;
    }
    if (i == begin) {
      // The current segment is full: continue in a new one.
      MAILBOX_ASSERT(!fresh, "a new segment holds its first record");
      IoStatus s =
          start_segment(entries[i].index, logfmt::kSegmentHeaderBytes + logfmt::record_bytes(entries[i].payload.size()));
      if (!s.is_ok()) return s;
      continue;
    }
    IoStatus s = write_current(write_buffer_, fresh);
    if (!s.is_ok()) return s;
    last_index_ = entries[i - 1].index;
    std::lock_guard<std::mutex> lock(mutex_);
    segments_.back().last_index = last_index_;
    segments_.back().effective_last = last_index_;
  }
  return IoStatus::ok();
}

IoStatus LogStore::reset(uint64_t next_index) {
  MAILBOX_ASSERT(next_index >= 1, "the log continues at index 1 or later");
  IoStatus s = start_segment(next_index, logfmt::kSegmentHeaderBytes + logfmt::record_bytes(0));
  if (!s.is_ok()) return s;
  uint64_t segment_seq = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    segment_seq = segments_.back().seq;
  }
  logfmt::encode_segment_header(logfmt::SegmentHeader{segment_seq, next_index, options_.node_id}, &write_buffer_);
  s = write_current(write_buffer_, /*with_header=*/true);
  if (!s.is_ok()) return s;
  last_index_ = next_index - 1;
  return IoStatus::ok();
}

IoStatus LogStore::compact(uint64_t index) {
  std::vector<Segment> victims;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    while (segments_.size() > 1 && segments_.front().effective_last <= index) {
      victims.push_back(std::move(segments_.front()));
      segments_.pop_front();
    }
  }
  if (victims.empty()) return IoStatus::ok();
  for (const auto& v : victims) {
    IoStatus s = fs_.remove(v.path);
    if (!s.is_ok() && s.error != ENOENT) return s;
  }
  return fs_.sync_dir(dir_);
}

uint64_t LogStore::disk_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  uint64_t total = 0;
  for (const auto& s : segments_) total += s.file_bytes;
  for (const auto& s : prepared_) total += s.file_bytes;
  return total;
}

size_t LogStore::prepared_count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return prepared_.size();
}

bool LogStore::out_of_space() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return out_of_space_;
}

// Reads one segment's records. `records` gets the valid ones in order; the
// segment's data ends at `*end_offset` (a torn last write is cut there when
// `!has_later_data`). Damage that is not a torn last write is an error.
Status LogStore::read_segment(Segment& segment, bool has_later_data, std::vector<LogEntry>* records, bool* torn,
                              std::string* repair) {
  *torn = false;
  std::unique_ptr<File> file;
  IoStatus io = fs_.open(segment.path, OpenMode::kRead, &file);
  std::string bytes;
  if (io.is_ok()) io = read_all(*file, &bytes);
  if (!io.is_ok()) return Status::error(ErrorCode::kInternal, "cannot read the Raft log: " + io.message());
  segment.file_bytes = bytes.size();
  uint64_t offset = logfmt::kSegmentHeaderBytes;
  uint64_t expected = segment.first_index;
  uint64_t previous_seq = 0;
  // Valid record headers at or after `from` (8-byte steps; a cheap magic
  // check first, most of a segment's tail is zeros).
  auto for_each_header_after = [&](uint64_t from, auto&& visit) {
    for (uint64_t pos = from; pos + logfmt::kRecordHeaderBytes <= bytes.size(); pos += logfmt::kRecordAlignBytes) {
      uint32_t magic = 0;
      std::memcpy(&magic, bytes.data() + pos, sizeof magic);
      if (magic != logfmt::kRecordMagic) continue;
      logfmt::RecordHeader h;
      if (logfmt::decode_record_header(std::string_view(bytes).substr(pos), &h) == logfmt::RecordCheck::kValid) {
        if (!visit(pos, h)) return;
      }
    }
  };
  // Records of writes newer than the last good one after `at` must all
  // belong to the write torn across `at` (it began at or before `at`):
  // otherwise a later write followed damage, which no crash explains.
  auto later_write_after = [&](uint64_t at, uint64_t* found_at) {
    bool found = false;
    for_each_header_after(at + logfmt::kRecordAlignBytes, [&](uint64_t pos, const logfmt::RecordHeader& h) {
      if (h.write_seq > previous_seq && h.write_start > at) {
        found = true;
        *found_at = pos;
        return false;
      }
      return true;
    });
    return found;
  };
  auto damaged_at = [&](uint64_t at, const std::string& why) -> Status {
    uint64_t later = 0;
    if (later_write_after(at, &later)) {
      return Status::error(ErrorCode::kInternal,
                           "the Raft log is damaged in the middle: " + segment.path + " at offset " +
                               std::to_string(at) + " (" + why + "; later writes follow it, at offset " +
                               std::to_string(later) + "). An entry there may have been acknowledged: this node "
                               "refuses to start. Replace its data from a healthy replica (docs/OPERATIONS.md).");
    }
    if (has_later_data) {
      return Status::error(ErrorCode::kInternal, "the Raft log is damaged in the middle: " + segment.path +
                                                     " at offset " + std::to_string(at) + " (" + why +
                                                     ") and later segments hold data. This node refuses to start. "
                                                     "Replace its data from a healthy replica (docs/OPERATIONS.md).");
    }
    *torn = true;
    *repair = "cut off a torn last write in " + segment.path + " at offset " + std::to_string(at) + " (" + why +
              "): entries from index " + std::to_string(expected) + " were never acknowledged";
    return Status::ok();
  };
  while (offset + logfmt::kRecordHeaderBytes <= bytes.size()) {
    logfmt::RecordHeader h;
    const auto check = logfmt::decode_record_header(std::string_view(bytes).substr(offset), &h);
    if (check == logfmt::RecordCheck::kZero) {
      // The end of the written part, unless a later write follows zeros
      // (a lost block, not a crash).
      uint64_t later = 0;
      if (later_write_after(offset, &later)) {
        return Status::error(ErrorCode::kInternal,
                             "the Raft log is damaged in the middle: " + segment.path + " holds zeros at offset " +
                                 std::to_string(offset) + " where later writes (at offset " + std::to_string(later) +
                                 ") say data was written. This node refuses to start. Replace its data from a "
                                 "healthy replica (docs/OPERATIONS.md).");
      }
      break;
    }
    if (check == logfmt::RecordCheck::kDamaged) {
      Status s = damaged_at(offset, "a record header does not check");
      if (!s.is_ok()) return s;
      break;
    }
    if (h.write_seq < previous_seq) break;  // stale: left behind by an earlier repair
    if (offset + logfmt::record_bytes(h.payload_bytes) > bytes.size()) {
      Status s = damaged_at(offset, "a record runs past the end of the file");
      if (!s.is_ok()) return s;
      break;
    }
    const std::string_view payload(bytes.data() + offset + logfmt::kRecordHeaderBytes, h.payload_bytes);
    if (logfmt::payload_hash(payload) != h.payload_hash) {
      Status s = damaged_at(offset, "a record's payload does not check");
      if (!s.is_ok()) return s;
      break;
    }
    if (h.index != expected || h.write_start > offset) {
      Status s = damaged_at(offset, "record index " + std::to_string(h.index) + " where " + std::to_string(expected) +
                                        " belongs");
      if (!s.is_ok()) return s;
      break;
    }
    records->push_back(LogEntry{h.index, h.term, h.type, Payload::copy_of(payload)});
    next_write_seq_ = std::max(next_write_seq_, h.write_seq + 1);
    previous_seq = h.write_seq;
    ++expected;
    offset += logfmt::record_bytes(h.payload_bytes);
  }
  // Whatever lies past the end (a torn write's remnants, stale records of an
  // earlier repair) must never look like a continuation of what is written
  // next: new writes get higher write numbers than any of it.
  if (!has_later_data) {
    for_each_header_after(offset, [&](uint64_t, const logfmt::RecordHeader& h) {
      next_write_seq_ = std::max(next_write_seq_, h.write_seq + 1);
      return true;
    });
  }
  segment.last_index = expected - 1;
  segment.effective_last = segment.last_index;
  current_offset_ = offset;  // meaningful for the last segment only
  return Status::ok();
}

Status LogStore::open(RecoveredLog* log) {
  log->first_index = 1;
  log->entries.clear();
  log->repairs.clear();
  IoStatus io = fs_.make_dir(dir_);
  std::vector<std::string> names;
  if (io.is_ok()) io = fs_.list(dir_, &names);
  if (!io.is_ok()) return Status::error(ErrorCode::kInternal, "cannot open the Raft log: " + io.message());

  struct Candidate {
    uint64_t seq = 0;
    std::string path;
    logfmt::HeaderCheck check = logfmt::HeaderCheck::kZero;
    logfmt::SegmentHeader header;
  };
  std::vector<Candidate> used;
  std::vector<std::pair<uint64_t, std::string>> prepared;
  uint64_t max_number = 0;
  bool removed = false;
  for (const auto& name : names) {
    uint64_t number = 0;
    const NameKind kind = parse_name(name, &number);
    const std::string path = join_path(dir_, name);
    max_number = kind == NameKind::kOther ? max_number : std::max(max_number, number);
    switch (kind) {
      case NameKind::kUsed:
        used.push_back(Candidate{number, path});
        break;
      case NameKind::kPrepared:
        prepared.emplace_back(number, path);
        break;
      case NameKind::kPreparing:
        fs_.remove(path);  // an interrupted preparation
        removed = true;
        break;
      case NameKind::kOther:
        log->repairs.push_back("ignored " + path + ": not a log segment");
        break;
    }
  }
  std::sort(used.begin(), used.end(), [](const Candidate& a, const Candidate& b) { return a.seq < b.seq; });
  for (auto& c : used) {
    std::unique_ptr<File> file;
    std::string block(logfmt::kSegmentHeaderBytes, '\0');
    size_t read = 0;
    io = fs_.open(c.path, OpenMode::kRead, &file);
    if (io.is_ok()) io = file->read_at(0, block.data(), block.size(), &read);
    if (!io.is_ok()) return Status::error(ErrorCode::kInternal, "cannot read the Raft log: " + io.message());
    block.resize(read);
    c.check = block.size() < logfmt::kSegmentHeaderBytes ? logfmt::HeaderCheck::kDamaged
                                                          : logfmt::decode_segment_header(block, &c.header);
    if (c.check == logfmt::HeaderCheck::kValid && (c.header.seq != c.seq || c.header.node_id != options_.node_id)) {
      return Status::error(ErrorCode::kInternal,
                           "the Raft log segment " + c.path + " belongs to node " + std::to_string(c.header.node_id) +
                               " (seq " + std::to_string(c.header.seq) + "), not to node " +
                               std::to_string(options_.node_id) + ": wrong data directory?");
    }
  }
  // Segments past the last one with a valid header never got their first
  // write to disk whole: they hold nothing that was acknowledged.
  size_t last_valid = used.size();
  for (size_t k = used.size(); k-- > 0;) {
    if (used[k].check == logfmt::HeaderCheck::kValid) {
      last_valid = k;
      break;
    }
  }
  for (size_t k = 0; k < used.size(); ++k) {
    if (used[k].check == logfmt::HeaderCheck::kValid) continue;
    if (last_valid != used.size() && k < last_valid) {
      return Status::error(ErrorCode::kInternal, "the Raft log segment " + used[k].path +
                                                     " has a damaged header but later segments hold data: this node "
                                                     "refuses to start. Replace its data from a healthy replica "
                                                     "(docs/OPERATIONS.md).");
    }
    fs_.remove(used[k].path);
    removed = true;
    log->repairs.push_back("removed " + used[k].path + ": its first write never reached the disk whole");
  }
  if (last_valid == used.size()) used.clear();
  else used.resize(last_valid + 1);

  std::vector<LogEntry>& entries = log->entries;
  std::deque<Segment> segments;
  for (size_t k = 0; k < used.size(); ++k) {
    Segment segment;
    segment.seq = used[k].seq;
    segment.path = used[k].path;
    segment.first_index = used[k].header.first_index;
    std::vector<LogEntry> records;
    bool torn = false;
    std::string repair;
    Status s = read_segment(segment, /*has_later_data=*/k + 1 < used.size(), &records, &torn, &repair);
    if (!s.is_ok()) return s;
    if (torn) log->repairs.push_back(repair);
    // The log continues at this segment's first index.
    const uint64_t first = segment.first_index;
    const uint64_t end = entries.empty() ? log->first_index - 1 : entries.back().index;
    if (!entries.empty() && first <= end && first > log->first_index) {
      entries.resize(first - log->first_index);  // a suffix truncation
    } else if (entries.empty() || first > end + 1 || first <= log->first_index) {
      entries.clear();  // a reset (after a snapshot install): the log restarts here
      log->first_index = first;
    }
    for (auto& older : segments) older.effective_last = std::min(older.effective_last, first - 1);
    for (auto& r : records) entries.push_back(std::move(r));
    segments.push_back(std::move(segment));
  }
  for (const auto& [number, path] : prepared) {
    std::unique_ptr<File> file;
    uint64_t bytes = 0;
    io = fs_.open(path, OpenMode::kRead, &file);
    if (io.is_ok()) io = file->size(&bytes);
    if (!io.is_ok() || bytes < logfmt::kSegmentHeaderBytes + logfmt::record_bytes(0)) {
      fs_.remove(path);
      removed = true;
      continue;
    }
    prepared_.push_back(Segment{number, path, bytes, 0, 0, 0});
  }
  if (removed) {
    io = fs_.sync_dir(dir_);
    if (!io.is_ok()) return Status::error(ErrorCode::kInternal, "cannot repair the Raft log: " + io.message());
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    next_seq_ = max_number + 1;
    segments_ = std::move(segments);
  }
  last_index_ = entries.empty() ? log->first_index - 1 : entries.back().index;
  if (!segments_.empty()) {
    const Segment& last = segments_.back();
    std::unique_ptr<File> file;
    io = fs_.open(last.path, OpenMode::kReadWrite, &file);
    if (!io.is_ok()) return Status::error(ErrorCode::kInternal, "cannot open the Raft log: " + io.message());
    current_ = std::move(file);
    current_bytes_ = last.file_bytes;
    current_has_header_ = true;
    // current_offset_ was left at the end of the last segment's data.
  }
  return Status::ok();
}

}  // namespace mailbox
