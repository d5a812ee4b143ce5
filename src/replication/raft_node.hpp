// raft_node.hpp: one node's replication: libraft's algorithm (through
// raft_step, replication/raft_driver.hpp) with the mailbox state machine,
// our log store, snapshots and TCP transport, on a dedicated libuv loop
// thread and three I/O threads.
//
// What it is for: it turns client commands into replicated, fsynced log
// entries and linearizable reads into barrier-guarded reads of the state:
//  - commands queued from any thread are packed many to one log entry
//    (batching is where throughput comes from), stamped with the leader's
//    clock, and each caller gets the result of its own command;
//  - reads share one barrier entry, then read the state;
//  - an entry whose fate is unknown when leadership is lost is waited for
//    (its index tells whether it committed), then reported `unknown_outcome`;
//    no leader within `leader_wait_ms` reports `unavailable`.
//
// Threads (docs/ARCHITECTURE.md, "Replication"):
//  - the loop thread runs the driver, libraft, the state machine, the
//    transport and every timer; a loop iteration's time is measured;
//  - the log writer writes and fsyncs appended entries (all that queued
//    during the previous write go in one write: group commit) and installs
//    snapshots, in order;
//  - the storage helper prepares log segments ahead of need, deletes old
//    segments and snapshots;
//  - the snapshot worker writes and loads state snapshots, reads snapshot
//    files being sent and checks those received.
// `start`, `stop` and the destructor belong to the owning thread.
// `submit_*`, `status` and the views may be called from any thread. Result
// callbacks run on the loop thread: they must be quick and must only hand
// the result to another thread (no Zenoh send: asserted).
//
// Ownership: the node owns the state machine, its storage, the loop and the
// threads. Callbacks passed in are owned by the node until it calls them,
// exactly once each (also on stop, with `unavailable` or `unknown_outcome`).
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
#include "replication/raft_driver.hpp"
#include "replication/requests.hpp"
#include "replication/tls_stream.hpp"

namespace mailbox {

struct RaftNodeOptions {
  uint64_t node_id = 1;
  std::string raft_address = "127.0.0.1:7450";
  std::string data_dir;
  // The cluster's name: a data directory or a peer of another cluster is
  // refused.
  std::string cluster_name = "mailbox";
  // Secure mode: mutual TLS between nodes, each pinned to the certificate
  // naming its id (tls_stream.hpp); null for plain TCP.
  std::shared_ptr<const TlsContext> transport_tls;
  // The voters a brand-new cluster bootstraps with (this node included).
  // Empty: never bootstrap (a node that waits to be added).
  std::vector<RaftPeer> initial_voters;
  // Disaster recovery after losing a majority: force `initial_voters` as the
  // new configuration into this node's existing log, then run.
  bool recover = false;
  unsigned election_timeout_ms = 1000;
  unsigned heartbeat_timeout_ms = 100;
  // A snapshot is taken when the log since the last one holds this many
  // entries (or stored messages / 16, if more: limits::
  // kSnapshotMessagesPerLogEntry), or more bytes than a quarter of the state (clamped to
  // [min_snapshot_log_bytes, snapshot_max_log_bytes]), whichever comes first.
  unsigned snapshot_threshold_entries = 8192;
  uint64_t min_snapshot_log_bytes = 16ULL << 20;
  uint64_t snapshot_max_log_bytes = 256ULL << 20;
  // Log kept after a snapshot, so that a follower a little behind catches
  // up by entries rather than a snapshot install: about
  // snapshot_trailing_bytes of recent entries (at most an eighth of the
  // snapshot's size: limits::kTrailingLogSnapshotFraction), at least
  // snapshot_trailing_entries and at most limits::kMaxTrailingEntries.
  unsigned snapshot_trailing_entries = 64;
  uint64_t snapshot_trailing_bytes = 64ULL << 20;
  // Log segment files (preallocated and zero-filled ahead of need).
  uint64_t log_segment_bytes = 64ULL << 20;
  // Entries in flight to each follower (libraft's pipelining window).
  unsigned max_inflight_entries = 64;
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
  uint64_t persisted_index = 0;  // durable in this node's log
  uint64_t snapshot_index = 0;
  size_t parked_waiters = 0;
  uint64_t parked_waiter_bytes = 0;  // what they are charged (limits::kMaxParkedWaiterBytes)
  uint64_t waiters_refused = 0;      // long-polls answered `unavailable`: the waiters were at their bounds
  uint64_t snapshots_taken = 0;
  uint64_t snapshots_installed = 0;
  int64_t longest_snapshot_stall_us = 0;  // longest time the loop spent starting one snapshot
  uint64_t messages = 0;                  // total stored messages (as of the last refresh)
  uint64_t log_disk_bytes = 0;
  bool log_disk_full = false;             // the log cannot grow: the disk is full
  uint64_t refused_disk_full = 0;         // client requests refused while leading on a full disk
  uint64_t disk_full_transfers = 0;       // leadership handed off because the disk was full
  uint64_t unknown_outcomes = 0;
  uint64_t loop_iterations = 0;
  uint64_t loop_iteration_max_us = 0;
  uint64_t loop_iterations_over_5ms = 0;
  uint64_t log_writes = 0;
  uint64_t log_write_p50_us = 0;          // write + fdatasync, bucket bounds
  uint64_t log_write_p99_us = 0;
  uint64_t entries_per_write_x100 = 0;    // group commit: average entries per write, times 100
  uint64_t transport_bytes_sent = 0;
  uint64_t transport_bytes_received = 0;
  uint64_t transport_messages_dropped = 0;
  uint64_t transport_connections_refused = 0;
  uint64_t forwards_sent = 0;      // requests this node handed to others
  uint64_t forwards_received = 0;  // requests others handed to this node
  uint64_t forwards_lost = 0;      // sent, then the connection closed before the answer
  size_t forwards_pending = 0;
  // Operability (metrics): the leader's view of each follower, snapshot
  // bytes written, and timings (microseconds).
  std::vector<DriverStatus::Follower> followers;
  uint64_t snapshot_bytes_written = 0;
  HistogramSnapshot loop_iteration_us, log_write_us, log_fsync_us, apply_us, commit_us, snapshot_us;
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
  // `ReadRequest::wait_ms`. At most limits::kMaxParkedWaiters wait at once,
  // charged limits::kParkedWaiterOverheadBytes plus `held_bytes` each
  // (ReadRequest::held_bytes for a peek: what the caller holds for the
  // request while it waits) against limits::kMaxParkedWaiterBytes; beyond
  // either bound a long-poll completes at once with `unavailable`.
  bool submit_command(Command command, CommandCallback done, int64_t wait_ms = 0, size_t held_bytes = 0);
  bool submit_read(ReadRequest read, ReadCallback done);
  // Add (as a voter, after it catches up), remove, or transfer leadership.
  bool submit_membership(MembershipRequest request, StatusCallback done);

  // Hands `request` to node `to` (a server of the configuration) over the
  // Raft transport, at most once (replication/transport.hpp), and calls
  // `done` once, on the loop thread, with OK and the answer; `unavailable`
  // when nothing was sent within `timeout_ms` (no connection to it, a full
  // queue, a node not in the configuration, shutting down: it never acted);
  // or `unknown_outcome` when it was sent but its connection closed, or
  // `timeout_ms` passed, before the answer came. At most
  // limits::kMaxPendingForwards wait at once; beyond that, `unavailable`.
  bool forward(uint64_t to, std::string request, int64_t timeout_ms, ForwardCallback done);
  // What answers the requests other nodes forward here (none: they go
  // unanswered). It is called on the loop thread and must only hand the
  // request to another thread; `respond` may be called once, from any
  // thread (a request never answered is reported lost to its sender when
  // its time is up there). Any thread, any time.
  void set_forward_handler(ForwardHandler handler);

  RaftNodeStatus status() const;
  // The mailboxes' overview (deepest, dead letters, totals): computed on the
  // loop thread about once a second while someone keeps asking (for
  // kOverviewInterestMs after the last call); the latest, possibly empty
  // until the first computation.
  MailboxOverview mailbox_overview() const;
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
  struct ForwardSlot {
    std::mutex mutex;
    ForwardHandler handler;
  };
  std::shared_ptr<ForwardSlot> forward_slot_ = std::make_shared<ForwardSlot>();
  std::unique_ptr<Impl> impl_;
  std::thread loop_thread_;
};

}  // namespace mailbox
