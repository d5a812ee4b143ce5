#include "replication/snapshot_store.hpp"

#include <xxhash.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "core/assert.hpp"

namespace mailbox {
namespace {

constexpr char kMagic[8] = {'M', 'B', 'X', 'S', 'N', 'A', 'P', '1'};
constexpr uint32_t kFormat = 1;
constexpr size_t kFieldsBytes = 8 + 4 + 4 + 8 * 5;
constexpr size_t kWriteBufferBytes = 1 << 20;
constexpr size_t kVerifyChunkBytes = 1 << 20;

void put32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint64_t get64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}
uint32_t get32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

std::string encode_header(const SnapshotMeta& m) {
  std::string out;
  out.append(kMagic, sizeof kMagic);
  put32(&out, kFormat);
  put32(&out, 0);
  put64(&out, m.index);
  put64(&out, m.term);
  put64(&out, m.configuration_index);
  put64(&out, m.configuration_bytes);
  put64(&out, m.data_bytes);
  put64(&out, XXH3_64bits(out.data(), out.size()));
  out.resize(kSnapshotHeaderBytes, '\0');
  return out;
}

bool decode_header(const std::string& block, SnapshotMeta* m) {
  if (block.size() < kSnapshotHeaderBytes) return false;
  const char* p = block.data();
  if (std::memcmp(p, kMagic, sizeof kMagic) != 0) return false;
  if (get64(p + kFieldsBytes) != XXH3_64bits(p, kFieldsBytes)) return false;
  if (get32(p + 8) != kFormat) return false;
  m->index = get64(p + 16);
  m->term = get64(p + 24);
  m->configuration_index = get64(p + 32);
  m->configuration_bytes = get64(p + 40);
  m->data_bytes = get64(p + 48);
  return true;
}

XXH3_state_t* state_of(void* p) { return static_cast<XXH3_state_t*>(p); }

std::string hex16(uint64_t v) {
  char buffer[17];
  std::snprintf(buffer, sizeof buffer, "%016" PRIx64, v);
  return buffer;
}

bool parse_hex16(const std::string& s, uint64_t* v) {
  if (s.size() != 16) return false;
  uint64_t r = 0;
  for (char c : s) {
    const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return false;
    r = r * 16 + static_cast<uint64_t>(d);
  }
  *v = r;
  return true;
}

}  // namespace

std::string snapshot_file_name(uint64_t index, uint64_t term) {
  return "snap-" + hex16(index) + "-" + hex16(term) + ".snap";
}

bool parse_snapshot_file_name(const std::string& name, uint64_t* index, uint64_t* term) {
  // snap- (5) + 16 + '-' + 16 + .snap (5) = 43
  if (name.size() != 43 || name.rfind("snap-", 0) != 0 || name[21] != '-' || name.substr(38) != ".snap") return false;
  return parse_hex16(name.substr(5, 16), index) && parse_hex16(name.substr(22, 16), term);
}

IoStatus list_snapshots(FileSystem& fs, const std::string& dir, std::vector<SnapshotFile>* out) {
  out->clear();
  std::vector<std::string> names;
  IoStatus s = fs.list(dir, &names);
  if (!s.is_ok()) return s;
  for (const auto& name : names) {
    SnapshotFile f;
    if (parse_snapshot_file_name(name, &f.index, &f.term)) {
      f.path = join_path(dir, name);
      out->push_back(std::move(f));
    }
  }
  std::sort(out->begin(), out->end(), [](const SnapshotFile& a, const SnapshotFile& b) { return a.index > b.index; });
  return IoStatus::ok();
}

// ---------------------------------------------------------------- writer

SnapshotWriter::SnapshotWriter(FileSystem& fs, std::string dir, std::string final_path, std::string temp_path)
    : fs_(fs), dir_(std::move(dir)), final_path_(std::move(final_path)), temp_path_(std::move(temp_path)) {
  hash_state_ = XXH3_createState();
  MAILBOX_ASSERT(hash_state_ != nullptr, "XXH3_createState");
}

SnapshotWriter::~SnapshotWriter() {
  file_.reset();
  if (!committed_) fs_.remove(temp_path_);
  XXH3_freeState(state_of(hash_state_));
}

IoStatus SnapshotWriter::begin(const SnapshotMeta& meta) {
  meta_ = meta;
  fs_.remove(temp_path_);  // a leftover of an interrupted attempt
  IoStatus s = fs_.open(temp_path_, OpenMode::kCreateExclusive, &file_);
  if (!s.is_ok()) return s;
  XXH3_64bits_reset(state_of(hash_state_));
  buffer_ = encode_header(meta);
  buffer_.reserve(kWriteBufferBytes);
  offset_ = 0;
  written_ = 0;
  return IoStatus::ok();
}

IoStatus SnapshotWriter::flush() {
  if (buffer_.empty()) return IoStatus::ok();
  IoStatus s = file_->write_at(offset_, buffer_.data(), buffer_.size());
  offset_ += buffer_.size();
  buffer_.clear();
  return s;
}

IoStatus SnapshotWriter::append(std::string_view bytes) {
  MAILBOX_ASSERT(written_ + bytes.size() <= meta_.configuration_bytes + meta_.data_bytes,
                 "snapshot body longer than announced");
  XXH3_64bits_update(state_of(hash_state_), bytes.data(), bytes.size());
  written_ += bytes.size();
  if (buffer_.size() + bytes.size() > kWriteBufferBytes) {
    IoStatus s = flush();
    if (!s.is_ok()) return s;
    if (bytes.size() >= kWriteBufferBytes) {
      s = file_->write_at(offset_, bytes.data(), bytes.size());
      offset_ += bytes.size();
      return s;
    }
  }
  buffer_.append(bytes.data(), bytes.size());
  return IoStatus::ok();
}

IoStatus SnapshotWriter::commit() {
  MAILBOX_ASSERT(written_ == meta_.configuration_bytes + meta_.data_bytes, "snapshot body length as announced");
  const uint64_t digest = XXH3_64bits_digest(state_of(hash_state_));
  put64(&buffer_, digest);
  IoStatus s = flush();
  if (s.is_ok()) s = file_->sync_data();
  file_.reset();
  if (s.is_ok()) s = fs_.rename(temp_path_, final_path_);
  if (s.is_ok()) s = fs_.sync_dir(dir_);
  if (s.is_ok()) committed_ = true;
  return s;
}

// ---------------------------------------------------------------- stager

SnapshotStager::SnapshotStager(FileSystem& fs, std::string path, uint64_t file_bytes)
    : fs_(fs), path_(std::move(path)), expected_(file_bytes) {}

SnapshotStager::~SnapshotStager() {
  file_.reset();
  if (!released_) fs_.remove(path_);
}

IoStatus SnapshotStager::open() {
  fs_.remove(path_);
  return fs_.open(path_, OpenMode::kCreateExclusive, &file_);
}

IoStatus SnapshotStager::write(uint64_t offset, std::string_view bytes) {
  MAILBOX_ASSERT(offset == received_, "snapshot chunks arrive in order");
  MAILBOX_ASSERT(received_ + bytes.size() <= expected_, "snapshot chunks stay within the announced size");
  IoStatus s = file_->write_at(offset, bytes.data(), bytes.size());
  if (s.is_ok()) received_ += bytes.size();
  return s;
}

Status SnapshotStager::finish(SnapshotMeta* meta, std::string* configuration) {
  if (received_ != expected_) {
    return Status::error(ErrorCode::kInternal, "staged snapshot incomplete: " + std::to_string(received_) + " of " +
                                                   std::to_string(expected_) + " bytes");
  }
  IoStatus io = file_->sync_data();
  file_.reset();
  if (!io.is_ok()) return Status::error(ErrorCode::kInternal, "cannot stage the snapshot: " + io.message());
  SnapshotReader reader(fs_, path_);
  Status s = reader.open();
  if (s.is_ok()) s = reader.verify();
  if (!s.is_ok()) return s;
  if (reader.meta().file_bytes() != expected_) {
    return Status::error(ErrorCode::kInternal, "staged snapshot size does not match its header");
  }
  *meta = reader.meta();
  *configuration = reader.configuration();
  return Status::ok();
}

// ---------------------------------------------------------------- reader

SnapshotReader::SnapshotReader(FileSystem& fs, std::string path) : fs_(fs), path_(std::move(path)) {}

Status SnapshotReader::open() {
  IoStatus io = fs_.open(path_, OpenMode::kRead, &file_);
  std::string block(kSnapshotHeaderBytes, '\0');
  size_t read = 0;
  if (io.is_ok()) io = file_->read_at(0, block.data(), block.size(), &read);
  if (!io.is_ok()) return Status::error(ErrorCode::kInternal, "cannot read snapshot: " + io.message());
  block.resize(read);
  if (!decode_header(block, &meta_)) {
    return Status::error(ErrorCode::kInternal, "snapshot " + path_ + " has a damaged header");
  }
  uint64_t bytes = 0;
  io = file_->size(&bytes);
  if (!io.is_ok()) return Status::error(ErrorCode::kInternal, "cannot read snapshot: " + io.message());
  if (bytes != meta_.file_bytes()) {
    return Status::error(ErrorCode::kInternal, "snapshot " + path_ + " is " + std::to_string(bytes) +
                                                   " bytes; its header says " + std::to_string(meta_.file_bytes()));
  }
  configuration_.assign(meta_.configuration_bytes, '\0');
  io = file_->read_at(kSnapshotHeaderBytes, configuration_.data(), configuration_.size(), &read);
  if (!io.is_ok() || read != configuration_.size()) {
    return Status::error(ErrorCode::kInternal, "cannot read snapshot configuration: " + path_);
  }
  return Status::ok();
}

Status SnapshotReader::verify() {
  XXH3_state_t* state = XXH3_createState();
  MAILBOX_ASSERT(state != nullptr, "XXH3_createState");
  XXH3_64bits_reset(state);
  const uint64_t body = meta_.configuration_bytes + meta_.data_bytes;
  std::string chunk;
  Status result = Status::ok();
  for (uint64_t at = 0; at < body && result.is_ok(); at += kVerifyChunkBytes) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(kVerifyChunkBytes, body - at));
    chunk.resize(n);
    size_t read = 0;
    IoStatus io = file_->read_at(kSnapshotHeaderBytes + at, chunk.data(), n, &read);
    if (!io.is_ok() || read != n) result = Status::error(ErrorCode::kInternal, "cannot read snapshot " + path_);
    else XXH3_64bits_update(state, chunk.data(), n);
  }
  if (result.is_ok()) {
    char trailer[kSnapshotTrailerBytes];
    size_t read = 0;
    IoStatus io = file_->read_at(kSnapshotHeaderBytes + body, trailer, sizeof trailer, &read);
    if (!io.is_ok() || read != sizeof trailer || get64(trailer) != XXH3_64bits_digest(state)) {
      result = Status::error(ErrorCode::kInternal, "snapshot " + path_ + " does not match its checksum");
    }
  }
  XXH3_freeState(state);
  return result;
}

Status SnapshotReader::read_data(std::string* data) {
  data->assign(meta_.data_bytes, '\0');
  size_t read = 0;
  IoStatus io = file_->read_at(kSnapshotHeaderBytes + meta_.configuration_bytes, data->data(), data->size(), &read);
  if (!io.is_ok() || read != data->size()) return Status::error(ErrorCode::kInternal, "cannot read snapshot " + path_);
  return Status::ok();
}

IoStatus SnapshotReader::read_raw(uint64_t offset, size_t length, std::string* out) {
  out->resize(length);
  size_t read = 0;
  IoStatus io = file_->read_at(offset, out->data(), length, &read);
  out->resize(read);
  return io;
}

}  // namespace mailbox
