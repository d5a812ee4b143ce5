// raft_driver.hpp: libraft's algorithm driven through raft_step(), with our
// own log, snapshots and transport, around the mailbox state machine.
//
// What it is for: it is the replication layer's single-threaded core. It
// owns libraft's `struct raft` (initialised without its legacy I/O), the
// in-memory log (every entry from the oldest kept one to the last), the
// state machine, and every pending client request. It turns client
// commands into log entries (many commands per entry), feeds libraft its
// events (messages, completed writes, timeouts) and carries out what each
// `raft_update` asks, in the order libraft requires: term and vote durable
// first, then entries to the log writer, then messages, then applying
// committed entries, then leadership changes, then the next timeout.
// docs/ARCHITECTURE.md, "Replication", walks a put through it.
//
// Everything that is not pure computation goes through DriverEnv: the log
// writer (one FIFO for appends and snapshot installs, completed in order),
// the snapshot worker (writing and loading state snapshots), the network
// (messages and streamed snapshot files) and the clock and timer. The
// production environment (replication/raft_node.cpp) runs that on a libuv
// loop and threads; the simulation (tests/sim) runs the very same driver,
// log store, snapshot store and codec over a simulated disk and network.
//
// Threads: not thread-safe. Every method, including the callbacks it
// calls, runs on the environment's loop (one thread). Result callbacks must
// be quick and only hand results on.
// Ownership: the driver owns libraft's instance, the state machine and the
// in-memory log; entries handed to the log writer share their payloads.
// Callbacks passed in are called exactly once.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/commands.hpp"
#include "core/errors.hpp"
#include "core/state_machine.hpp"
#include "replication/log_store.hpp"
#include "replication/raft_codec.hpp"
#include "replication/raft_include.hpp"
#include "replication/requests.hpp"
#include "replication/snapshot_store.hpp"
#include "replication/waiter_index.hpp"
#include "util/latency_histogram.hpp"

namespace mailbox {

// ---------------------------------------------------------------- settings

struct DriverOptions {
  uint64_t node_id = 1;
  std::string address;
  unsigned election_timeout_ms = 1000;
  unsigned heartbeat_timeout_ms = 100;
  // A transfer of a large snapshot must fit in this (libraft re-sends).
  unsigned install_snapshot_timeout_ms = 10 * 60 * 1000;
  // Entries in flight to each follower (libraft's pipelining window).
  unsigned max_inflight_entries = 64;
  // A snapshot is taken when the log since the last one holds this many
  // entries (or stored messages / limits::kSnapshotMessagesPerLogEntry, if
  // more), or more bytes than a quarter of the state (clamped to
  // [min_snapshot_log_bytes, snapshot_max_log_bytes]).
  unsigned snapshot_threshold_entries = 8192;
  uint64_t min_snapshot_log_bytes = 16ULL << 20;
  uint64_t snapshot_max_log_bytes = 256ULL << 20;
  // Log kept after a snapshot so that a follower a little behind catches up
  // by entries: about this many bytes (at most an eighth of the snapshot but
  // not below limits::kMinTrailingLogBytes,
  // limits::kTrailingLogSnapshotFraction), at least this many entries.
  uint64_t snapshot_trailing_bytes = 64ULL << 20;
  unsigned snapshot_trailing_entries = 64;
  // How long a request waits for a leader to be known before `unavailable`.
  unsigned leader_wait_ms = 3000;
  // A proposal whose fate is still unknown this long after leadership was
  // lost gets `unknown_outcome`.
  unsigned proposal_fate_wait_ms = 5000;
  // The business settings this node proposes when it leads.
  StateConfig state_config;
};

// What the node found on disk (RaftNode / the simulation read it with the
// log store, the term-vote store and the snapshot store before starting).
struct DurableState {
  uint64_t term = 0;
  uint64_t voted_for = 0;
  // The newest snapshot, if any: its file, metadata, configuration (libraft
  // encoding) and the state machine's bytes.
  bool has_snapshot = false;
  SnapshotFile snapshot_file;
  SnapshotMeta snapshot;
  std::string snapshot_configuration;
  std::string snapshot_data;
  RecoveredLog log;
};

// ---------------------------------------------------------------- environment

// A state snapshot to write: the state machine's pinned parts (see
// StateMachine::pin_snapshot: valid until the driver unpins them, after the
// write completed) and the file's metadata.
struct SnapshotJob {
  SnapshotMeta meta;
  std::string configuration;
  const StateMachine::SnapshotParts* parts = nullptr;
  std::string path;  // the final snapshot file
};

// Writes a SnapshotJob's file in `dir` (temporary name, fsync, rename,
// directory fsync): what an environment's snapshot worker runs. Any thread.
IoStatus write_snapshot_job(FileSystem& fs, const std::string& dir, const SnapshotJob& job);

// An installed snapshot to persist: the staged file (streamed from the
// leader, already checked) becomes the newest snapshot and the log is reset
// to continue after it, durably, in the log writer's order.
struct InstallJob {
  std::string staged_path;
  std::string final_path;
  uint64_t index = 0;
};

class DriverEnv {
 public:
  virtual ~DriverEnv() = default;
  // Monotonic milliseconds (libraft's time) and the wall clock (Unix ms, the
  // leader's stamp on entries).
  virtual int64_t monotonic_ms() = 0;
  virtual int64_t wall_clock_ms() = 0;
  // Seeds libraft's election randomness (the simulation's comes from its seed).
  virtual uint32_t random_seed() = 0;
  // Durable before it returns. A failure is fatal (the driver aborts).
  virtual IoStatus save_term_vote(uint64_t term, uint64_t voted_for) = 0;
  // The log writer's FIFO: appends and installs complete with
  // on_log_written(ticket, ...), in submission order.
  virtual void append_entries(uint64_t ticket, std::vector<LogEntry> entries) = 0;
  virtual void install_snapshot(uint64_t ticket, InstallJob job) = 0;
  // Background: deletes log segments at or below `index`; no completion.
  virtual void compact_log(uint64_t index) = 0;
  // The snapshot worker: completes with on_snapshot_written(ticket, ...).
  virtual void write_snapshot(uint64_t ticket, SnapshotJob job) = 0;
  // Reads and decodes a snapshot file into a fresh state machine; completes
  // with on_snapshot_loaded(ticket, ...).
  virtual void load_snapshot(uint64_t ticket, std::string path) = 0;
  // Removes a snapshot file (no completion; a file being sent stays
  // readable until its transfer ends).
  virtual void remove_snapshot(std::string path) = 0;
  // Sends a message (serialise it before returning: its memory is libraft's).
  virtual void send(const raft_message& message) = 0;
  // Streams snapshot file `path` to the server named in `message` (an
  // InstallSnapshot whose metadata describes the file).
  virtual void send_snapshot(const raft_message& message, const std::string& path) = 0;
  // Arms the one timer at `at_ms` (monotonic); it calls on_timeout().
  virtual void arm_timer(int64_t at_ms) = 0;
  // Where snapshot files live.
  virtual std::string snapshot_dir() = 0;
  // The node cannot go on (a write that cannot be made durable, a log that
  // diverged): production logs and aborts, so that a supervisor restarts it
  // from its durable state; the simulation crashes the simulated node.
  [[noreturn]] virtual void fatal(const std::string& what) = 0;
};

// A view for status displays.
struct DriverStatus {
  std::string state;  // follower, candidate, leader
  bool is_leader = false;
  uint64_t leader_id = 0;
  uint64_t term = 0;
  uint64_t commit_index = 0;
  uint64_t applied_index = 0;
  uint64_t last_index = 0;
  uint64_t persisted_index = 0;
  uint64_t snapshot_index = 0;
  std::vector<RaftServerInfo> configuration;
  size_t voters = 0;
  bool sole_voter = false;
  size_t parked_waiters = 0;
  uint64_t parked_waiter_bytes = 0;  // charged: limits::kParkedWaiterOverheadBytes + each one's held bytes
  uint64_t waiters_refused = 0;      // long-polls answered `unavailable`: the waiters were at their bounds
  uint64_t snapshots_taken = 0;
  uint64_t snapshots_installed = 0;
  int64_t longest_snapshot_stall_us = 0;
  uint64_t messages = 0;
  uint64_t log_entries_in_memory = 0;
  uint64_t log_bytes_in_memory = 0;
  uint64_t unknown_outcomes = 0;
  uint64_t leaders_forgotten = 0;  // a non-voter's silent leader forgotten (see on_timeout)
  uint64_t transferee = 0;         // a leader handing leadership to this server (0: none)
  size_t parked_commands = 0;      // commands not yet proposed
  size_t pending_proposals = 0;    // entries proposed whose callers wait
  bool log_disk_full = false;      // the log writer waits for disk space
  uint64_t refused_disk_full = 0;  // client requests refused: this leader's disk was full
  uint64_t disk_full_transfers = 0;  // leadership handed off because the disk was full
  uint64_t catch_up_restarts = 0;    // a joining server's catch-up started again after libraft aborted it
  // Operability (metrics, status page): each other member's match index as
  // the leader sees it (empty on a follower), and snapshot bytes written.
  struct Follower {
    uint64_t id = 0;
    uint64_t match_index = 0;
  };
  std::vector<Follower> followers;
  uint64_t snapshot_bytes_written = 0;
};

// Timings for metrics, recorded on the loop thread, read from any thread.
struct DriverTimings {
  LatencyHistogram apply;     // the state machine applying one entry
  LatencyHistogram commit;    // a command entry from proposal to applied (leader)
  LatencyHistogram snapshot;  // a snapshot from its start to durable on disk
};

// A bounded view of the mailboxes for operators (the status page, metrics):
// the deepest, the dead-letter ones, and totals. Computed on request.
inline constexpr size_t kMaxOverviewMailboxes = 20;
// Above this many stored messages the leased total is not counted (it walks
// every message); the overview says so with leased_known = false.
inline constexpr uint64_t kMaxOverviewScanMessages = 200'000;
struct MailboxOverview {
  struct Box {
    std::string name;
    uint64_t messages = 0;
    uint64_t bytes = 0;
    uint64_t leased = 0;
    int64_t oldest_age_ms = 0;
  };
  std::vector<Box> deepest;       // by messages, at most kMaxOverviewMailboxes
  std::vector<Box> dead_letters;  // dead-letter mailboxes holding messages, deepest first, bounded alike
  uint64_t mailboxes = 0;
  uint64_t messages = 0;
  uint64_t bytes = 0;
  uint64_t leased = 0;   // delivered, lease not ended
  uint64_t delayed = 0;  // put with a delay, not due yet
  bool leased_known = false;  // leased and delayed were counted (a walk of every message)
  uint64_t dead_letter_messages = 0;
  uint64_t walk_us = 0;  // how long the walk held the loop (set by RaftNode)
};

class RaftDriver {
 public:
  RaftDriver(DriverOptions options, DriverEnv& env);
  ~RaftDriver();
  RaftDriver(const RaftDriver&) = delete;
  RaftDriver& operator=(const RaftDriver&) = delete;

  // Restores the state machine from the snapshot and starts libraft with
  // the durable state. An error means the node must not run.
  Status start(DurableState durable);
  // Fails every pending request (unavailable, or unknown_outcome for
  // entries already proposed) and stops; nothing is called afterwards.
  void stop();

  // Client work (the node is running). Commands and reads are queued;
  // `flush` proposes what is queued (many commands to one entry, all reads
  // behind one barrier), so call it once after queueing a batch.
  // A consume with `wait_ms > 0` (a peek with ReadRequest::wait_ms) that
  // finds its mailbox empty is parked here (the leader) until a message
  // arrives or the wait ends (`empty`). `held_bytes` (ReadRequest's too):
  // what the caller holds for it while it waits (its query's key,
  // parameters, attachment), charged with limits::kParkedWaiterOverheadBytes
  // against limits::kMaxParkedWaiterBytes. A long-poll that finds
  // limits::kMaxParkedWaiters waiting, or the bytes spent, is answered
  // `unavailable` (SPEC: a limit refuses new work; nothing was taken).
  void submit_command(Command command, CommandCallback done, int64_t wait_ms = 0, size_t held_bytes = 0);
  void submit_read(ReadRequest read, ReadCallback done);
  void submit_membership(MembershipRequest request, StatusCallback done);
  void flush() { drive(); }

  // Events.
  void on_message(DecodedMessage message, uint64_t from_id, const std::string& from_address);
  // A snapshot streamed from the leader, staged and checked: delivered to
  // libraft as its InstallSnapshot message.
  void on_snapshot_received(const raft_message& metadata, uint64_t from_id, const std::string& from_address,
                            const std::string& staged_path, const std::string& configuration);
  // An append or an install of the log writer completed (in order).
  void on_log_written(uint64_t ticket, const IoStatus& status);
  void on_snapshot_written(uint64_t ticket, const IoStatus& status);
  void on_snapshot_loaded(uint64_t ticket, Status status, std::unique_ptr<StateMachine> state);
  void on_timeout();
  // The log writer found the disk full (`full`: an append waits for space)
  // or writes again (`!full`). While full, a leader refuses client work with
  // `unavailable` and hands leadership to another voter (see tick).
  void on_log_space(bool full);
  // Every ~20 ms: leader housekeeping (sweeps, settings), ended long-polls,
  // requests that waited too long for a leader, membership progress.
  void tick();

  // Called after every command entry is applied, with its index, term,
  // commands and results (the simulation's checker records the committed
  // history from it; status and metrics may too). On the loop; quick.
  using ApplyObserver =
      std::function<void(uint64_t index, uint64_t term, const Entry& entry, const std::vector<CommandResult>& results)>;
  void set_apply_observer(ApplyObserver observer) { apply_observer_ = std::move(observer); }

  DriverStatus status() const;
  bool is_leader() const;
  const DriverTimings& timings() const { return timings_; }
  // Loop thread: a walk of every mailbox (O(mailboxes)); call rarely.
  MailboxOverview mailbox_overview() const;
  uint64_t leader_id() const;
  // The configuration is this node alone, as a voter.
  bool sole_voter() const;
  // The servers of the newest configuration.
  const std::vector<RaftServerInfo>& configuration() const { return configuration_view_; }
  const StateMachine& state() const { return *state_; }
  // Index and term of the entry at `index` in memory (0 if not held).
  uint64_t term_at(uint64_t index) const;

 private:
  struct PendingCommand {
    Command command;
    CommandCallback done;
    int64_t arrived_ms = 0;
    int64_t wait_deadline_ms = 0;  // monotonic; 0: no long-poll
    size_t held_bytes = 0;         // a long-poll's: see submit_command
  };
  struct PendingRead {
    ReadRequest read;
    ReadCallback done;
    int64_t arrived_ms = 0;
    int64_t wait_deadline_ms = 0;
  };
  // One proposed entry and the callers waiting on it, found by (index, term).
  struct Proposal {
    uint64_t term = 0;
    std::vector<CommandCallback> callbacks;
    std::vector<std::pair<size_t, PendingCommand>> retries;  // long-polls, to park on `empty`
    std::chrono::steady_clock::time_point proposed_at{};     // for the commit timing
    int64_t leadership_lost_ms = 0;                           // 0 while this node leads and its disk has space
  };
  // A barrier entry and the reads waiting for it.
  struct Barrier {
    uint64_t term = 0;
    std::vector<PendingRead> reads;
    int64_t leadership_lost_ms = 0;
  };
  struct PendingAppend {
    uint64_t first = 0;
    std::vector<uint64_t> terms;
  };
  struct MembershipChange {
    enum class Phase : uint8_t { kAddSpare, kCatchUp, kPromote, kRemove, kTransfer };
    Phase phase = Phase::kAddSpare;
    MembershipRequest request;
    StatusCallback done;
    uint64_t change_index = 0;  // the configuration entry in flight
    uint64_t change_term = 0;
    int64_t started_ms = 0;
  };

  // --- stepping
  int step(raft_event& event);
  void process_update(const raft_update& update, raft_event& event);
  void persist_entries(const raft_update& update);
  void send_messages(const raft_update& update);
  void apply_committed();
  void apply_entry(const LogEntry& entry);
  // After an event: follow-up events, membership progress, views, waiters.
  void after_step();
  void drain_followups();
  void arm_timer(bool after_timeout);
  void on_state_change();
  void refresh_views();
  void on_install_written(uint64_t ticket, const IoStatus& status);
  bool deliver_split_at_configurations(const raft_message& message, uint64_t from_id, const std::string& from_address);

  // --- log in memory
  const LogEntry* entry_at(uint64_t index) const;
  void truncate_from(uint64_t index);
  void append_to_log(LogEntry entry);
  void forget_through(uint64_t index);

  // --- proposals
  void propose_commands(std::vector<PendingCommand>& batch);
  void propose_internal(Command command, bool* in_flight);
  bool submit_entries(std::vector<raft_entry>& entries, uint64_t* first_index);
  void issue_barrier();
  void drive();
  void settle_proposals_at(uint64_t index, uint64_t applied_term);
  void expire_fates();
  void fail_pending_on_shutdown();

  // --- waiters
  size_t waiter_count() const { return command_waiters_.size() + read_waiters_.size(); }
  // What a parked waiter is charged against limits::kMaxParkedWaiterBytes.
  static uint64_t waiter_charge(size_t held_bytes);
  // False (and nothing parked) when the waiters are at their bounds.
  bool may_park(size_t held_bytes);
  void uncharge_waiter(size_t held_bytes);
  bool park(PendingCommand&& command);
  bool park(PendingRead&& read);
  void wake_waiters();
  void fail_waiters(Status status);
  void expire_waiters();
  void serve_reads(std::vector<PendingRead>& reads);

  // --- snapshots
  void maybe_take_snapshot();
  std::string configuration_at(uint64_t index) const;
  void start_install(const raft_update& update);

  // --- membership
  void start_membership(MembershipRequest request, StatusCallback done);
  void progress_membership();
  void finish_membership(Status status);
  bool submit_configuration(const raft_configuration& configuration, uint64_t* index);

  DriverOptions options_;
  DriverEnv& env_;
  std::unique_ptr<StateMachine> state_;
  raft raft_{};
  bool raft_initialized_ = false;
  bool running_ = false;
  bool stepping_ = false;

  // The log in memory: entries first_index_ .. first_index_ + size - 1.
  std::deque<LogEntry> log_;
  uint64_t log_first_index_ = 1;
  uint64_t log_bytes_ = 0;
  // Configurations by the index of their RAFT_CHANGE entry (and the
  // snapshot's), encoded, for snapshot metadata.
  std::map<uint64_t, std::string> configurations_;

  uint64_t last_applied_ = 0;
  uint64_t applied_term_ = 0;  // term of the entry at last_applied_
  uint64_t next_ticket_ = 1;
  std::map<uint64_t, PendingAppend> appends_in_flight_;  // by ticket (FIFO)
  std::vector<raft_event> followups_;                    // stepped after the current update

  std::map<uint64_t, Proposal> proposals_;  // by index
  std::map<uint64_t, Barrier> barriers_;    // by index
  bool barrier_pending_ = false;            // a barrier in flight this term
  std::deque<PendingCommand> parked_commands_;
  std::deque<PendingRead> parked_reads_;
  std::vector<PendingRead> waiting_reads_;  // for the next barrier
  // Parked long-polls (at most limits::kMaxParkedWaiters together, charged
  // at most limits::kMaxParkedWaiterBytes), found by mailbox and deadline.
  WaiterIndex<PendingCommand> command_waiters_;
  WaiterIndex<PendingRead> read_waiters_;
  uint64_t parked_waiter_bytes_ = 0;
  uint64_t waiters_refused_ = 0;
  std::vector<std::string> woken_;
  bool sweep_in_flight_ = false;
  bool configure_in_flight_ = false;
  int64_t last_sweep_check_ms_ = 0;
  unsigned short previous_state_ = RAFT_UNAVAILABLE;

  // Snapshots.
  bool snapshot_in_progress_ = false;
  uint64_t snapshot_ticket_ = 0;
  SnapshotMeta snapshot_meta_in_progress_;
  std::string snapshot_path_in_progress_;
  std::unique_ptr<StateMachine::SnapshotParts> snapshot_parts_;
  uint64_t log_bytes_since_snapshot_ = 0;
  uint64_t log_entries_since_snapshot_ = 0;
  uint64_t snapshot_index_ = 0;  // newest snapshot on disk
  uint64_t snapshot_term_ = 0;
  std::string snapshot_path_;
  std::vector<std::string> older_snapshots_;  // removed once a newer one is in
  // An install in flight: persisting, then loading the state.
  bool installing_ = false;
  uint64_t install_ticket_ = 0;
  raft_snapshot_metadata install_metadata_{};
  std::string install_path_;
  bool restoring_ = false;
  uint64_t restore_ticket_ = 0;
  uint64_t installs_started_ = 0;  // to discard a local snapshot an install overtook
  uint64_t installs_at_snapshot_start_ = 0;
  bool driving_ = false;
  uint64_t snapshots_taken_ = 0;
  uint64_t snapshots_installed_ = 0;
  int64_t longest_snapshot_stall_us_ = 0;
  DriverTimings timings_;
  std::chrono::steady_clock::time_point snapshot_started_{};
  uint64_t snapshot_bytes_written_ = 0;

  std::unique_ptr<MembershipChange> change_;
  std::deque<std::pair<MembershipRequest, StatusCallback>> queued_changes_;
  uint64_t unknown_outcomes_ = 0;

  ApplyObserver apply_observer_;

  // Views.
  std::vector<RaftServerInfo> configuration_view_;
  // A follower that is not a voter whose leader went silent for an election
  // timeout (see on_timeout); how many times its leader was forgotten.
  bool non_voter_leader_timed_out() const;
  // Answers the callers of a proposal or barrier of an earlier term at
  // `index`, which a new one is about to take (see propose_commands).
  void settle_superseded(uint64_t index);
  // Tell a lost proposal's callers the outcome is unknown / a lost
  // barrier's readers to retry (the caller erases it).
  void settle_lost_proposal(Proposal& proposal);
  void settle_lost_barrier(Barrier& barrier);
  uint64_t leaders_forgotten_ = 0;
  // A full disk (on_log_space): since when, what was refused and handed off.
  bool log_disk_full_ = false;
  int64_t disk_full_since_ms_ = 0;
  int64_t last_disk_full_transfer_ms_ = 0;
  uint64_t refused_disk_full_ = 0;
  uint64_t disk_full_transfers_ = 0;
  uint64_t catch_up_restarts_ = 0;
  void refuse_parked_work(const Status& status);
  void maybe_leave_full_disk();
  size_t voters_ = 0;
  bool sole_voter_ = false;
  uint64_t leader_id_ = 0;
};

}  // namespace mailbox
