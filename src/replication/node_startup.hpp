// node_startup.hpp: opening a node's durable state before Raft starts.
//
// What it is for: one function that both the production node (RaftNode)
// and the simulation run, so the simulation tests the real start-up path:
// check the data directory (identity, foreign files), bootstrap a brand-new
// cluster (term 1 and a first configuration entry, as libraft's raft_uv did),
// force a new configuration for disaster recovery, open the log (repairing a
// torn tail, refusing damage), load term and vote, and find the newest
// snapshot that checks end to end.
//
// Threads: the calling thread, before the node runs. Ownership: the caller
// owns the stores; `out` receives the log entries and the snapshot's bytes.
#pragma once

#include <string>
#include <vector>

#include "core/errors.hpp"
#include "replication/file_system.hpp"
#include "replication/log_store.hpp"
#include "replication/node_storage.hpp"
#include "replication/raft_driver.hpp"

namespace mailbox {

struct StartupOptions {
  NodeIdentity identity;
  // Voters of a brand-new cluster (this node included); empty: a node that
  // waits to be added (its data directory stays without a log).
  std::vector<RaftPeer> initial_voters;
  // Disaster recovery: append a configuration of `initial_voters` to this
  // node's existing log (docs/OPERATIONS.md, "Losing a majority").
  bool recover = false;
};

// Paths inside a data directory.
std::string log_dir_of(const std::string& data_dir);
std::string snapshot_dir_of(const std::string& data_dir);
std::string raft_state_path_of(const std::string& data_dir);

// Opens everything and fills `out` (and `notes`: what was ignored or
// repaired, for warnings). An error means the node must not start.
Status open_node_storage(FileSystem& fs, const std::string& data_dir, const StartupOptions& options, LogStore& log,
                         TermVoteStore& term_vote, DurableState* out, std::vector<std::string>* notes);

}  // namespace mailbox
