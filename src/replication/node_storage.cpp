#include "replication/node_storage.hpp"

#include <xxhash.h>

#include <algorithm>
#include <cstring>

namespace mailbox {
namespace {

constexpr size_t kSlotBytes = 512;
constexpr char kSlotMagic[8] = {'M', 'B', 'X', 'T', 'V', '0', '0', '1'};
constexpr size_t kSlotFieldsBytes = 8 + 8 + 8 + 8 + 8;  // magic, seq, term, vote, node id
constexpr size_t kMaxIdentityBytes = 4096;

void put64(char* at, uint64_t v) {
  for (int i = 0; i < 8; ++i) at[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
uint64_t get64(const char* at) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(at[i])) << (8 * i);
  return v;
}

std::string identity_text(const NodeIdentity& identity) {
  return "# mailbox node data directory: do not edit\nformat " + std::to_string(kDataFormatVersion) + "\nnode " +
         std::to_string(identity.node_id) + "\ncluster " + identity.cluster + "\n";
}

bool parse_identity(const std::string& text, uint32_t* format, NodeIdentity* identity) {
  bool have_format = false, have_node = false, have_cluster = false;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(at, end - at);
    at = end + 1;
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.find(' ');
    if (space == std::string::npos) return false;
    const std::string key = line.substr(0, space);
    const std::string value = line.substr(space + 1);
    char* stop = nullptr;
    if (key == "format") {
      *format = static_cast<uint32_t>(std::strtoul(value.c_str(), &stop, 10));
      have_format = stop && *stop == '\0' && !value.empty();
    } else if (key == "node") {
      identity->node_id = std::strtoull(value.c_str(), &stop, 10);
      have_node = stop && *stop == '\0' && !value.empty();
    } else if (key == "cluster") {
      identity->cluster = value;
      have_cluster = true;
    }
  }
  return have_format && have_node && have_cluster;
}

// File names of libraft's raft_uv layout (mailboxd before the replication
// rewrite): metadata1/2, open-N, START-END closed segments, snapshot-*.
bool is_libraft_file(const std::string& name) {
  if (name == "metadata1" || name == "metadata2") return true;
  if (name.rfind("open-", 0) == 0 || name.rfind("snapshot-", 0) == 0) return true;
  const size_t dash = name.find('-');
  return dash == 16 && name.size() == 33 &&
         std::all_of(name.begin(), name.end(), [](char c) { return (c >= '0' && c <= '9') || c == '-'; });
}

IoStatus read_file(FileSystem& fs, const std::string& path, size_t max_bytes, std::string* out) {
  std::unique_ptr<File> file;
  IoStatus s = fs.open(path, OpenMode::kRead, &file);
  if (!s.is_ok()) return s;
  out->assign(max_bytes, '\0');
  size_t read = 0;
  s = file->read_at(0, out->data(), out->size(), &read);
  out->resize(read);
  return s;
}

}  // namespace

Status inspect_data_directory(FileSystem& fs, const std::string& dir, const NodeIdentity& identity,
                              DataDirectoryState* state) {
  state->pristine = true;
  state->notes.clear();
  IoStatus io = fs.make_dir(dir);
  std::vector<std::string> names;
  if (io.is_ok()) io = fs.list(dir, &names);
  if (!io.is_ok()) return Status::error(ErrorCode::kInternal, "cannot use the data directory: " + io.message());
  bool has_identity = false, has_node_data = false;
  for (const auto& name : names) {
    if (name == kIdentityFileName) {
      has_identity = true;
    } else if (name == kRaftStateFileName) {
      has_node_data = true;
    } else if (name == kLogDirName || name == kSnapshotDirName) {
      std::vector<std::string> inner;
      if (fs.list(join_path(dir, name), &inner).is_ok() && !inner.empty()) has_node_data = true;
    } else if (is_libraft_file(name)) {
      return Status::error(ErrorCode::kInternal,
                           "the data directory " + dir + " holds libraft raft_uv files (" + name +
                               "): the format of mailboxd before its own replication layer, which this version "
                               "cannot read. Start this node with an empty data directory and let it catch up "
                               "from the cluster (docs/OPERATIONS.md, upgrades).");
    } else {
      state->notes.push_back("ignored " + join_path(dir, name) + ": not a file of a mailbox node");
    }
  }
  if (!has_identity) {
    if (has_node_data) {
      return Status::error(ErrorCode::kInternal, "the data directory " + dir +
                                                     " holds Raft data but no identity file (" + kIdentityFileName +
                                                     "): refusing to guess whose it is");
    }
    return Status::ok();
  }
  std::string text;
  io = read_file(fs, join_path(dir, kIdentityFileName), kMaxIdentityBytes, &text);
  if (!io.is_ok()) return Status::error(ErrorCode::kInternal, "cannot read the node identity: " + io.message());
  uint32_t format = 0;
  NodeIdentity found;
  if (!parse_identity(text, &format, &found)) {
    return Status::error(ErrorCode::kInternal, "the node identity file " + join_path(dir, kIdentityFileName) +
                                                   " is malformed");
  }
  if (format != kDataFormatVersion) {
    return Status::error(ErrorCode::kInternal, "the data directory " + dir + " has format " +
                                                   std::to_string(format) + "; this mailboxd reads format " +
                                                   std::to_string(kDataFormatVersion));
  }
  if (found.node_id != identity.node_id) {
    return Status::error(ErrorCode::kInvalidArgument,
                         "the data directory " + dir + " belongs to node " + std::to_string(found.node_id) +
                             ", not to node " + std::to_string(identity.node_id) +
                             " (--node-id): refusing to run one node on another's data");
  }
  if (found.cluster != identity.cluster) {
    return Status::error(ErrorCode::kInvalidArgument,
                         "the data directory " + dir + " belongs to cluster '" + found.cluster + "', not to '" +
                             identity.cluster + "' (--cluster-name): refusing to mix clusters");
  }
  state->pristine = false;
  return Status::ok();
}

Status write_identity(FileSystem& fs, const std::string& dir, const NodeIdentity& identity) {
  const std::string tmp = join_path(dir, std::string(kIdentityFileName) + ".tmp");
  const std::string text = identity_text(identity);
  fs.remove(tmp);
  std::unique_ptr<File> file;
  IoStatus io = fs.open(tmp, OpenMode::kCreateExclusive, &file);
  if (io.is_ok()) io = file->write_at(0, text.data(), text.size());
  if (io.is_ok()) io = file->sync_data();
  file.reset();
  if (io.is_ok()) io = fs.rename(tmp, join_path(dir, kIdentityFileName));
  if (io.is_ok()) io = fs.sync_dir(dir);
  if (!io.is_ok()) return Status::error(ErrorCode::kInternal, "cannot write the node identity: " + io.message());
  return Status::ok();
}

TermVoteStore::TermVoteStore(FileSystem& fs, std::string path, uint64_t node_id)
    : fs_(fs), path_(std::move(path)), node_id_(node_id) {}

Status TermVoteStore::load(uint64_t* term, uint64_t* voted_for) {
  *term = 0;
  *voted_for = 0;
  IoStatus io;
  if (!fs_.exists(path_)) {
    std::unique_ptr<File> file;
    const std::string zeros(2 * kSlotBytes, '\0');
    const std::string tmp = path_ + ".tmp";
    fs_.remove(tmp);
    io = fs_.open(tmp, OpenMode::kCreateExclusive, &file);
    if (io.is_ok()) io = file->write_at(0, zeros.data(), zeros.size());
    if (io.is_ok()) io = file->sync_data();
    file.reset();
    if (io.is_ok()) io = fs_.rename(tmp, path_);
    const size_t slash = path_.rfind('/');
    if (io.is_ok()) io = fs_.sync_dir(slash == std::string::npos ? "." : path_.substr(0, slash));
    if (!io.is_ok()) return Status::error(ErrorCode::kInternal, "cannot create the Raft state: " + io.message());
  }
  io = fs_.open(path_, OpenMode::kReadWrite, &file_);
  std::string bytes(2 * kSlotBytes, '\0');
  size_t read = 0;
  if (io.is_ok()) io = file_->read_at(0, bytes.data(), bytes.size(), &read);
  if (!io.is_ok()) return Status::error(ErrorCode::kInternal, "cannot read the Raft state: " + io.message());
  bytes.resize(read);
  bool any_written = false;
  bool found = false;
  for (size_t slot = 0; slot < 2; ++slot) {
    if ((slot + 1) * kSlotBytes > bytes.size()) continue;
    const char* p = bytes.data() + slot * kSlotBytes;
    if (std::any_of(p, p + kSlotBytes, [](char c) { return c != 0; })) any_written = true;
    if (std::memcmp(p, kSlotMagic, sizeof kSlotMagic) != 0) continue;
    if (get64(p + kSlotFieldsBytes) != XXH3_64bits(p, kSlotFieldsBytes)) continue;
    if (get64(p + 32) != node_id_) {
      return Status::error(ErrorCode::kInternal, "the Raft state " + path_ + " belongs to node " +
                                                     std::to_string(get64(p + 32)) + ", not " +
                                                     std::to_string(node_id_));
    }
    const uint64_t seq = get64(p + 8);
    if (!found || seq > seq_) {
      found = true;
      seq_ = seq;
      *term = get64(p + 16);
      *voted_for = get64(p + 24);
    }
  }
  if (any_written && !found) {
    return Status::error(ErrorCode::kInternal, "the Raft state " + path_ +
                                                   " is damaged (no slot checks): this node refuses to start, "
                                                   "since it may have voted in a term it cannot remember");
  }
  return Status::ok();
}

IoStatus TermVoteStore::save(uint64_t term, uint64_t voted_for) {
  char slot[kSlotBytes] = {0};
  const uint64_t seq = seq_ + 1;
  std::memcpy(slot, kSlotMagic, sizeof kSlotMagic);
  put64(slot + 8, seq);
  put64(slot + 16, term);
  put64(slot + 24, voted_for);
  put64(slot + 32, node_id_);
  put64(slot + kSlotFieldsBytes, XXH3_64bits(slot, kSlotFieldsBytes));
  IoStatus io = file_->write_at((seq % 2) * kSlotBytes, slot, sizeof slot);
  if (io.is_ok()) io = file_->sync_data();
  if (io.is_ok()) seq_ = seq;
  return io;
}

}  // namespace mailbox
