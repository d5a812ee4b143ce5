// raft_node.hpp: the libraft adapter. Runs one Raft server and the mailbox
// state machine on a dedicated libuv loop thread.
//
// What it is for: it turns client commands into replicated, fsynced log
// entries and linearizable reads into barrier-guarded reads of the state:
//  - commands queued from any thread are packed many to one log entry
//    (batching is where throughput comes from), stamped with this leader's
//    clock, and each caller gets the result of its own command;
//  - reads wait for one shared `raft_barrier`, then read the state;
//  - an entry whose fate became unknown (leadership lost) reports
//    `unknown_outcome`; no leader within `leader_wait_ms` reports `unavailable`.
//
// Threads: `start`, `stop` and the destructor belong to the owning thread.
// `submit_command`, `submit_read` and `status` may be called from any thread.
// Everything else, including every libraft call and callback and the state
// machine, runs on the loop thread. Result callbacks run on the loop thread:
// they must be quick and must only hand the result to another thread.
//
// Ownership: the node owns the state machine, the libuv loop and libraft's
// I/O. Callbacks passed in are owned by the node until it calls them, exactly
// once each (also on stop, with `unavailable` or `unknown_outcome`).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/commands.hpp"
#include "core/errors.hpp"
#include "core/state_machine.hpp"
#include "replication/requests.hpp"

namespace mailbox {

struct RaftNodeOptions {
  uint64_t node_id = 1;
  std::string raft_address = "127.0.0.1:7450";
  std::string data_dir;
  // The voters a brand-new cluster bootstraps with (this node included).
  // Empty: never bootstrap (a node that waits to be added).
  std::vector<RaftPeer> initial_voters;
  // Disaster recovery after losing a majority: force `initial_voters` as the
  // new configuration into this node's existing log (raft_recover), then run.
  bool recover = false;
  unsigned election_timeout_ms = 1000;
  unsigned heartbeat_timeout_ms = 100;
  // A snapshot is taken when the log since the last one holds this many
  // entries, or more bytes than a quarter of the state (clamped to
  // [kMinSnapshotLogBytes, snapshot_max_log_bytes]), whichever comes first.
  unsigned snapshot_threshold_entries = 8192;
  uint64_t snapshot_max_log_bytes = 256ULL << 20;
  // Log kept after a snapshot, so that a lagging follower catches up by
  // entries instead of a snapshot install (which can crash a follower in
  // libraft 0.22.1, docs/RELIABILITY.md): about snapshot_trailing_bytes of
  // recent entries, at least snapshot_trailing_entries and at most
  // limits::kMaxTrailingEntries.
  unsigned snapshot_trailing_entries = 64;
  uint64_t snapshot_trailing_bytes = 64ULL << 20;
  // How long a request waits for a leader to be known before `unavailable`.
  unsigned leader_wait_ms = 3000;
  // The business settings this node proposes when it leads (the state's own
  // copy is what every replica applies with).
  StateConfig state_config;
};

// A consistent-enough view for status displays; not linearizable.
struct RaftNodeStatus {
  bool running = false;
  bool is_leader = false;
  std::string state;  // follower, candidate, leader, unavailable
  std::vector<RaftServerInfo> configuration;
  size_t voters = 0;
  uint64_t leader_id = 0;
  uint64_t term = 0;
  uint64_t commit_index = 0;
  uint64_t applied_index = 0;
  uint64_t last_index = 0;
  size_t parked_waiters = 0;
  uint64_t snapshots_taken = 0;
  int64_t longest_snapshot_stall_us = 0;  // longest time the loop spent in one snapshot
  uint64_t messages = 0;                  // total stored messages (as of the last refresh)
};

class RaftNode {
 public:
  explicit RaftNode(RaftNodeOptions options);
  ~RaftNode();
  RaftNode(const RaftNode&) = delete;
  RaftNode& operator=(const RaftNode&) = delete;

  // Loads the log from the data directory (bootstrapping a pristine one),
  // starts Raft and the loop thread. Returns once started, or the error.
  Status start();
  // Stops Raft and the loop thread; pending callbacks are called. Idempotent.
  void stop();

  // Queue work for the loop thread. False when the node is not running; the
  // callback has then been called, on the calling thread, with
  // `unavailable`. Either way the callback is called exactly once, so it
  // may own what it answers. A consume with `wait_ms > 0` that finds
  // its mailbox empty is parked and retried when a message arrives, until
  // the wait ends (then it completes with `empty`); so is a peek read with
  // `ReadRequest::wait_ms`. At most limits::kMaxParkedWaiters wait at once;
  // beyond that a request completes at once.
  bool submit_command(Command command, CommandCallback done, int64_t wait_ms = 0);
  bool submit_read(ReadRequest read, ReadCallback done);
  // Add (as a voter, after it catches up), remove, or transfer leadership.
  bool submit_membership(MembershipRequest request, StatusCallback done);

  RaftNodeStatus status() const;
  // Cheap views for the hot path (atomics).
  bool is_leader() const;
  uint64_t leader_id() const;
  size_t voters() const;
  // True when the configuration is this node alone, as a voter (a cluster
  // of one). False for a node waiting to be added.
  bool single_voter() const;
  uint64_t node_id() const { return options_.node_id; }

  struct Impl;  // loop-thread state, defined in raft_node.cpp

 private:
  RaftNodeOptions options_;
  std::unique_ptr<Impl> impl_;
  std::thread loop_thread_;
};

}  // namespace mailbox
