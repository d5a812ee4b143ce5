// node_storage.hpp: what a node's data directory holds besides the log and
// the snapshots: its identity, and Raft's term and vote.
//
// Layout of a data directory (docs/OPERATIONS.md):
//   mailbox-node   identity: format, node id, cluster name (text)
//   raft-state     current term and vote, in two checksummed slots
//   log/           the Raft log (log_store.hpp)
//   snapshots/     snapshots (snapshot_store.hpp)
// Anything else is ignored with a warning (a `lost+found`, a `.keep`); a
// directory of another node or cluster, or of the libraft raft_uv format
// mailboxd used before, is refused.
//
// Threads: `inspect_data_directory` and `write_identity` at start, from
// one thread. A TermVoteStore from the Raft loop thread only; `save` is
// synchronous and durable (Raft sends nothing that depends on a term or a
// vote before they are on disk). Ownership: plain values; the store owns
// its file.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/errors.hpp"
#include "replication/file_system.hpp"

namespace mailbox {

inline constexpr uint32_t kDataFormatVersion = 2;
inline constexpr const char* kIdentityFileName = "mailbox-node";
inline constexpr const char* kRaftStateFileName = "raft-state";
inline constexpr const char* kLogDirName = "log";
inline constexpr const char* kSnapshotDirName = "snapshots";

struct NodeIdentity {
  uint64_t node_id = 0;
  std::string cluster;  // the cluster's name (mailboxd --cluster-name)
};

struct DataDirectoryState {
  bool pristine = true;            // nothing of a node's data yet
  std::vector<std::string> notes;  // files ignored, for warnings
};

// Checks `dir` (creating it if missing) against the identity this node
// runs with. Errors (with a message for an operator): another node's or
// another cluster's data, an unknown format version, libraft raft_uv files,
// node data without an identity file, or an unreadable directory.
Status inspect_data_directory(FileSystem& fs, const std::string& dir, const NodeIdentity& identity,
                              DataDirectoryState* state);
// Writes the identity file (temporary file, fsync, rename, directory fsync).
Status write_identity(FileSystem& fs, const std::string& dir, const NodeIdentity& identity);

// Raft's current term and vote, durable: two fixed slots written in turn,
// each with a sequence number and a checksum, so a torn write of one slot
// leaves the other intact.
class TermVoteStore {
 public:
  TermVoteStore(FileSystem& fs, std::string path, uint64_t node_id);
  // Reads the newest valid slot (creating the file, term 0 and no vote, if
  // missing). An error when the file exists but no slot checks.
  Status load(uint64_t* term, uint64_t* voted_for);
  // Writes both values and makes them durable before returning.
  IoStatus save(uint64_t term, uint64_t voted_for);

 private:
  FileSystem& fs_;
  std::string path_;
  uint64_t node_id_;
  std::unique_ptr<File> file_;
  uint64_t seq_ = 0;
};

}  // namespace mailbox
