// snapshot_store.hpp: snapshot files: written whole or not at all, read in
// chunks, checked end to end.
//
// A snapshot file `snap-<index>-<term>.snap` (16 hex digits each) is
//   header block (kSnapshotHeaderBytes, rest zero):
//     magic "MBXSNAP1" | format u32 | 0 u32 | index u64 | term u64 |
//     configuration index u64 | configuration bytes u64 | data bytes u64 |
//     xxh3 of the above u64
//   the configuration (libraft's encoding), then the data (the state
//   machine's snapshot), then xxh3 of configuration + data (u64).
// It is written under a temporary name, fsynced, renamed and its directory
// fsynced, so a crash leaves the old snapshot or the new one, never half of
// one. The same bytes travel to a follower (the transport streams the file
// in chunks and the receiver stages them in a temporary file), so the
// checksum covers the transfer too.
//
// Threads: a SnapshotWriter or SnapshotReader belongs to one thread at a
// time (the storage helper, or the transport's file I/O). The free
// functions may run on any thread. Ownership: writers and readers own their
// files; a writer removes its temporary file unless `commit` succeeded.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/errors.hpp"
#include "replication/file_system.hpp"

namespace mailbox {

inline constexpr size_t kSnapshotHeaderBytes = 4096;
inline constexpr size_t kSnapshotTrailerBytes = 8;

struct SnapshotMeta {
  uint64_t index = 0;
  uint64_t term = 0;
  uint64_t configuration_index = 0;
  uint64_t configuration_bytes = 0;
  uint64_t data_bytes = 0;
  uint64_t file_bytes() const {
    return kSnapshotHeaderBytes + configuration_bytes + data_bytes + kSnapshotTrailerBytes;
  }
};

// "snap-<index>-<term>.snap"
std::string snapshot_file_name(uint64_t index, uint64_t term);
// Parses a snapshot file name; false for any other name.
bool parse_snapshot_file_name(const std::string& name, uint64_t* index, uint64_t* term);

// Writes one snapshot file. begin, then the configuration and the data in
// order (any number of appends), then commit.
class SnapshotWriter {
 public:
  // `final_path`: where commit puts it; `temp_path`: where it is written.
  SnapshotWriter(FileSystem& fs, std::string dir, std::string final_path, std::string temp_path);
  ~SnapshotWriter();
  SnapshotWriter(const SnapshotWriter&) = delete;
  SnapshotWriter& operator=(const SnapshotWriter&) = delete;

  IoStatus begin(const SnapshotMeta& meta);
  // Appends configuration then data bytes (buffered).
  IoStatus append(std::string_view bytes);
  // Checks the length, writes the checksum, fsyncs, renames, fsyncs the directory.
  IoStatus commit();

 private:
  IoStatus flush();
  FileSystem& fs_;
  std::string dir_, final_path_, temp_path_;
  std::unique_ptr<File> file_;
  SnapshotMeta meta_;
  uint64_t written_ = 0;  // body bytes appended
  uint64_t offset_ = 0;   // file offset of the buffer
  std::string buffer_;
  void* hash_state_ = nullptr;  // XXH3_state_t
  bool committed_ = false;
};

// Receives a file's raw bytes in order (a snapshot streamed from the leader)
// into a staging file, then checks it whole. Same threading as the writer.
class SnapshotStager {
 public:
  SnapshotStager(FileSystem& fs, std::string path, uint64_t file_bytes);
  ~SnapshotStager();  // removes the staging file unless released
  SnapshotStager(const SnapshotStager&) = delete;
  SnapshotStager& operator=(const SnapshotStager&) = delete;
  IoStatus open();
  // The next bytes of the file, at `offset` (must follow what was written).
  IoStatus write(uint64_t offset, std::string_view bytes);
  uint64_t received() const { return received_; }
  uint64_t expected() const { return expected_; }
  // Once everything arrived: fsyncs and checks the file end to end.
  Status finish(SnapshotMeta* meta, std::string* configuration);
  // Gives up ownership: the staging file stays (its path was handed on).
  void release() { released_ = true; }
  const std::string& path() const { return path_; }

 private:
  FileSystem& fs_;
  std::string path_;
  uint64_t expected_;
  uint64_t received_ = 0;
  std::unique_ptr<File> file_;
  bool released_ = false;
};

// Reads a snapshot file: `open` checks the header; `verify` reads it all
// and checks the checksum; `read` streams raw file bytes (for sending) or
// body bytes.
class SnapshotReader {
 public:
  SnapshotReader(FileSystem& fs, std::string path);
  Status open();
  Status verify();
  const SnapshotMeta& meta() const { return meta_; }
  const std::string& configuration() const { return configuration_; }
  // The data (the state machine's snapshot), whole.
  Status read_data(std::string* data);
  // Raw file bytes at `offset` (up to `length`).
  IoStatus read_raw(uint64_t offset, size_t length, std::string* out);
  const std::string& path() const { return path_; }

 private:
  FileSystem& fs_;
  std::string path_;
  std::unique_ptr<File> file_;
  SnapshotMeta meta_;
  std::string configuration_;
};

// The snapshots in `dir`, newest (highest index) first, by name.
struct SnapshotFile {
  uint64_t index = 0;
  uint64_t term = 0;
  std::string path;
};
IoStatus list_snapshots(FileSystem& fs, const std::string& dir, std::vector<SnapshotFile>* out);

}  // namespace mailbox
