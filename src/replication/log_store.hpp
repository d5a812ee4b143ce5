// log_store.hpp: the Raft log on disk: preallocated, zero-filled segment
// files of checksummed records (log_format.hpp).
//
// What it is for: the replication driver hands it entries to make durable
// and reads the whole log back at start. Every write lands in a segment that
// was zero-filled and fsynced ahead of need (by `prepare`, on another
// thread), so an append is an overwrite of already written blocks followed
// by one fdatasync: no file size or extent changes on the write path.
//
//   - append: the entries continue the log, or (a suffix truncation by a new
//     leader) start at or below its end; a truncation starts a new segment
//     whose header names the index it continues at, written and fsynced
//     with the first new records, so it is crash-atomic: after a crash the
//     log is either the old one or the truncated one with the new records.
//   - reset: after a snapshot install the log is empty and continues at the
//     index after the snapshot (a header-only segment; the same rule).
//   - compact: deletes, oldest first, segments whose records are all at or
//     below an index (the snapshot's, less the trailing log kept).
//   - open: reads every segment back. A torn last write (every record after
//     the damage belongs to the write that covers it, and nothing was
//     written after it) is cut off; damage anywhere else refuses to open,
//     naming the file and the offset, because an entry there may have been
//     acknowledged.
//
// Threads: `open` first, alone. Then `append` and `reset` from one thread
// (the log writer), `prepare` and `compact` from one other thread (the
// storage helper); `disk_bytes`, `prepared_count` and `out_of_space` from
// any. The segment lists are shared under a mutex; files are written outside
// it. Ownership: the store owns its files; `LogEntry::payload` is shared.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/errors.hpp"
#include "util/latency_histogram.hpp"
#include "replication/file_system.hpp"

namespace mailbox {

// Immutable bytes with shared ownership: the owner keeps `data` alive.
class Payload {
 public:
  Payload() = default;
  Payload(std::shared_ptr<const void> owner, const char* data, size_t size)
      : owner_(std::move(owner)), data_(data), size_(size) {}
  static Payload copy_of(std::string_view bytes);
  std::string_view view() const { return {data_, size_}; }
  size_t size() const { return size_; }

 private:
  std::shared_ptr<const void> owner_;
  const char* data_ = nullptr;
  size_t size_ = 0;
};

struct LogEntry {
  uint64_t index = 0;
  uint64_t term = 0;
  uint8_t type = 0;  // RAFT_COMMAND, RAFT_BARRIER, RAFT_CHANGE
  Payload payload;
};

struct LogStoreOptions {
  uint64_t node_id = 0;
  // Bytes of each segment file (header included). A record that does not
  // fit an empty segment gets a segment of its own, sized for it.
  uint64_t segment_bytes = 64ULL << 20;
  // Segments kept zero-filled and ready ahead of the writer.
  unsigned prepared_segments = 2;
};

// What `open` found.
struct RecoveredLog {
  // The log is entries[0..n), contiguous from `first_index`; when empty it
  // would continue at `first_index` (1 for a new log; after a reset, the
  // index after the installed snapshot).
  uint64_t first_index = 1;
  std::vector<LogEntry> entries;
  // What was repaired, for the log: e.g. a torn last write cut off.
  std::vector<std::string> repairs;
};

class LogStore {
 public:
  LogStore(FileSystem& fs, std::string dir, LogStoreOptions options);
  ~LogStore();
  LogStore(const LogStore&) = delete;
  LogStore& operator=(const LogStore&) = delete;

  // Creates the directory if needed and reads the log. An error means the
  // log cannot be trusted (damage in the middle, unreadable files): the
  // node must not start.
  Status open(RecoveredLog* log);

  // Writes `entries` (contiguous; entries[0].index is at most last_index()+1,
  // and below it means the entries from there on are replaced) and makes
  // them durable. On an error nothing written may be relied on; the caller
  // retries the same append.
  IoStatus append(const LogEntry* entries, size_t count);
  // Durably empties the log: it continues at `next_index`.
  IoStatus reset(uint64_t next_index);
  // The index of the last entry appended (first index - 1 when empty).
  uint64_t last_index() const { return last_index_; }

  // Prepares segments until `prepared_segments` are ready. ENOSPC is
  // remembered (out_of_space) and returned.
  IoStatus prepare();
  // Deletes whole segments whose entries are all at or below `index`,
  // oldest first; never the segment being written.
  IoStatus compact(uint64_t index);

  uint64_t disk_bytes() const;
  size_t prepared_count() const;
  // True when the writer has no prepared segment left and the last attempt
  // to prepare one found the disk full.
  bool out_of_space() const;
  // fdatasync timings of appends (writer thread records; any thread reads).
  const LatencyHistogram& fsync_timings() const { return fsync_timings_; }
  uint64_t segment_bytes() const { return options_.segment_bytes; }

 private:
  struct Segment {
    uint64_t seq = 0;
    std::string path;
    uint64_t file_bytes = 0;
    uint64_t first_index = 0;      // the index it continues the log at
    uint64_t last_index = 0;       // its last record's index (first_index - 1 if none)
    uint64_t effective_last = 0;   // after later segments' truncations
  };

  std::string segment_path(uint64_t seq, bool preparing) const;
  IoStatus create_segment(uint64_t bytes, Segment* out);
  // Takes the next prepared segment (or prepares one now) and makes it
  // current, continuing at `first_index`.
  IoStatus start_segment(uint64_t first_index, uint64_t min_bytes);
  IoStatus write_current(std::string& buffer, bool with_header);
  Status read_segment(Segment& segment, bool has_later_data, std::vector<LogEntry>* records, bool* torn,
                      std::string* repair);

  FileSystem& fs_;
  std::string dir_;
  LogStoreOptions options_;

  // Writer thread only.
  std::unique_ptr<File> current_;
  uint64_t current_offset_ = 0;   // next write position in the current segment
  uint64_t current_bytes_ = 0;    // its size
  bool current_has_header_ = false;
  uint64_t last_index_ = 0;
  uint64_t next_write_seq_ = 1;
  std::string write_buffer_;

  mutable std::mutex mutex_;
  std::deque<Segment> segments_;  // in use, by seq (the last is current)
  std::deque<Segment> prepared_;  // zero-filled, unused, by seq
  uint64_t next_seq_ = 1;
  bool out_of_space_ = false;
  LatencyHistogram fsync_timings_;
};

}  // namespace mailbox
