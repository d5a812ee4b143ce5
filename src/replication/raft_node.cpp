#include "replication/raft_node.hpp"

#include <uv.h>

#include <pthread.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <future>
#include <random>

#include "core/assert.hpp"
#include "core/limits.hpp"
#include "replication/nodelay_transport.hpp"
#include "replication/raft_include.hpp"
#include "util/log.hpp"
#include "util/no_blocking_sends.hpp"

namespace mailbox {
namespace {

constexpr unsigned kStatusRefreshIntervalMs = 20;
constexpr const char* kNotRunningMessage = "the server is shutting down";
// How often the leader checks whether a sweep (expiry, lease end) is due.
constexpr int64_t kSweepCheckIntervalMs = 100;
constexpr size_t kRaftBlockSizeBytes = 4096;
// Below this much log, a snapshot is never forced by bytes.
constexpr uint64_t kMinSnapshotLogBytes = 32ULL << 20;

int64_t wall_clock_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A configuration of `voters`, all voting; the caller closes it on success.
Status voters_configuration(const std::vector<RaftPeer>& voters, raft_configuration* configuration) {
  raft_configuration_init(configuration);
  for (const auto& peer : voters) {
    const int rv = raft_configuration_add(configuration, peer.id, peer.address.c_str(), RAFT_VOTER);
    if (rv != 0) {
      raft_configuration_close(configuration);
      return Status::error(ErrorCode::kInvalidArgument, std::string("bad voter ") + std::to_string(peer.id) + ": " +
                                                            raft_strerror(rv));
    }
  }
  return Status::ok();
}

int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

// Everything the loop thread owns. Fields above `mutex` are touched only on
// the loop thread (after start); the inbox is shared under `mutex`.
struct RaftNode::Impl {
  struct PendingCommand {
    Command command;
    CommandCallback done;
    int64_t arrived_ms = 0;
    int64_t wait_deadline_ms = 0;  // steady clock; 0: no long-poll
  };
  struct PendingRead {
    ReadRequest read;
    ReadCallback done;
    int64_t arrived_ms = 0;
    int64_t wait_deadline_ms = 0;
  };
  // One proposed log entry and the callers waiting on it.
  struct Proposal {
    struct raft_apply request{};
    Impl* impl = nullptr;
    uint64_t token = 0;
    std::vector<CommandCallback> callbacks;
    // For long-polling consumes: the command again and its deadline, so an
    // empty result can be parked and retried.
    std::vector<std::pair<size_t, PendingCommand>> retries;
    std::vector<CommandResult> results;
    bool applied = false;
  };
  struct PendingMembership {
    MembershipRequest request;
    StatusCallback done;
  };
  // One membership change in flight with libraft.
  struct Change {
    struct raft_change request{};
    struct raft_transfer transfer{};
    Impl* impl = nullptr;
    PendingMembership pending;
    bool promoting = false;  // add: the second step, spare -> voter
  };
  // One barrier shared by every read queued when it was issued.
  struct ReadBatch {
    struct raft_barrier request{};
    Impl* impl = nullptr;
    std::vector<PendingRead> reads;
  };

  explicit Impl(const RaftNodeOptions& o) : options(o) {}

  RaftNodeOptions options;
  StateMachine state;

  uv_loop_t loop{};
  uv_async_t wakeup{};
  uv_timer_t status_timer{};
  NoDelayTransport transport;
  raft_io io{};
  raft_fsm fsm{};
  raft raft_instance{};
  bool transport_initialized = false;
  bool io_initialized = false;
  bool raft_initialized = false;
  bool closing = false;

  uint64_t token_base = 0;
  uint64_t next_seq = 1;
  std::unordered_map<uint64_t, std::unique_ptr<Proposal>> proposals;
  std::deque<PendingCommand> parked_commands;  // waiting for a leader
  std::deque<PendingRead> parked_reads;
  std::vector<PendingRead> waiting_reads;      // waiting for the next barrier
  bool barrier_in_flight = false;
  // Long-poll waiters by mailbox, woken when a message may have arrived.
  std::unordered_map<std::string, std::vector<PendingCommand>> command_waiters;
  std::unordered_map<std::string, std::vector<PendingRead>> read_waiters;
  size_t waiter_count = 0;
  std::vector<std::string> woken;  // mailboxes that gained messages in applied entries
  bool sweep_in_flight = false;
  bool configure_in_flight = false;
  int64_t last_sweep_check_ms = 0;
  uint64_t snapshots_taken = 0;
  int64_t longest_snapshot_stall_us = 0;
  std::unique_ptr<StateMachine::SnapshotParts> snapshot_parts;  // until snapshot_finalize
  uint64_t log_bytes_since_snapshot = 0;
  uint64_t log_entries_since_snapshot = 0;
  bool snapshot_forced = false;

  // Shared with other threads.
  std::mutex mutex;
  std::vector<PendingCommand> inbox_commands;
  std::vector<PendingRead> inbox_reads;
  std::vector<PendingMembership> inbox_membership;
  bool accepting = false;
  bool stop_requested = false;

  std::atomic<bool> running{false};
  std::atomic<bool> is_leader{false};
  std::atomic<uint64_t> leader_id{0};
  std::atomic<uint64_t> term{0};
  std::atomic<uint64_t> commit_index{0};
  std::atomic<uint64_t> applied_index{0};
  std::atomic<uint64_t> last_index{0};
  std::atomic<size_t> parked_waiters{0};
  std::atomic<uint64_t> snapshots_taken_shared{0};
  std::atomic<int64_t> longest_snapshot_stall_us_shared{0};
  std::atomic<uint64_t> messages{0};
  mutable std::mutex status_mutex;  // guards the two fields below
  std::vector<RaftServerInfo> configuration_view;
  std::string state_name;
  std::atomic<size_t> voters{0};
  std::atomic<bool> sole_voter{false};

  // --- setup, on the loop thread before the loop runs ---
  Status open_raft();

  // --- loop-thread handlers ---
  void on_wakeup();
  void on_status_timer();
  void refresh_status();
  void drive();
  void propose(std::vector<PendingCommand>& batch);
  void propose_internal(Command command, bool* in_flight);
  void account_log_bytes(size_t entry_bytes);
  void change_membership(PendingMembership&& pending);
  void fail_waiters(Status status);
  static void on_changed(struct raft_change* request, int status);
  static void on_transferred(struct raft_transfer* request);
  void maintain();
  bool park(PendingCommand&& command);
  bool park(PendingRead&& read);
  void wake_waiters();
  void expire_waiters(bool all);
  void issue_barrier();
  void serve_reads(std::vector<PendingRead>& reads);
  void begin_close();
  void fail_all_pending();

  // --- libraft callbacks ---
  static int fsm_apply(raft_fsm* fsm, const raft_buffer* buf, void** result);
  static int fsm_snapshot(raft_fsm* fsm, raft_buffer* bufs[], unsigned* n_bufs);
  static int fsm_snapshot_finalize(raft_fsm* fsm, raft_buffer* bufs[], unsigned* n_bufs);
  static int fsm_restore(raft_fsm* fsm, raft_buffer* buf);
  static void on_applied(struct raft_apply* request, int status, void* result);
  static void on_barrier(struct raft_barrier* request, int status);
  static void on_raft_closed(raft* r);
};

// ---------------------------------------------------------------- FSM

int RaftNode::Impl::fsm_apply(raft_fsm* fsm, const raft_buffer* buf, void** result) {
  auto* self = static_cast<Impl*>(fsm->data);
  *result = nullptr;
  Entry entry;
  const bool decoded = decode_entry(std::string_view(static_cast<const char*>(buf->base), buf->len), &entry);
  // A committed entry we cannot decode means a bug or a corrupted log: stop
  // loudly rather than diverge from the other replicas.
  MAILBOX_ASSERT(decoded, "committed log entry does not decode");
  std::vector<CommandResult> results = self->state.apply(entry);
  self->account_log_bytes(buf->len);
  if (self->waiter_count > 0 && !self->state.woken().empty()) {
    for (const auto& name : self->state.woken()) self->woken.push_back(name);
    // Waiters are retried from the loop, outside libraft's callback.
    if (!self->closing) uv_async_send(&self->wakeup);
  }
  auto it = self->proposals.find(entry.proposer_token);
  if (it != self->proposals.end()) {
    Proposal& p = *it->second;
    MAILBOX_ASSERT(results.size() == p.callbacks.size(), "result count matches the proposal");
    p.results = std::move(results);
    p.applied = true;
  }
  return 0;
}

// libraft counts only entries; entries here vary from bytes to megabytes. A
// snapshot is forced (threshold 1) once the log holds more bytes than the
// policy allows, which bounds both replay time and the memory libraft keeps
// for the log.
void RaftNode::Impl::account_log_bytes(size_t entry_bytes) {
  log_bytes_since_snapshot += entry_bytes;
  log_entries_since_snapshot += 1;
  if (snapshot_forced || !raft_initialized) return;
  const uint64_t limit =
      std::clamp<uint64_t>(state.total_bytes() / 4, kMinSnapshotLogBytes, options.snapshot_max_log_bytes);
  if (log_bytes_since_snapshot >= limit) {
    snapshot_forced = true;
    raft_set_snapshot_threshold(&raft_instance, 1);
  }
}

// Snapshots without copying payloads: the buffers are the metadata head and
// then every message's payload in place. The state keeps every body alive
// while the snapshot is pinned, until libraft calls snapshot_finalize after
// its thread pool has written them; the loop only serializes metadata.
int RaftNode::Impl::fsm_snapshot(raft_fsm* fsm, raft_buffer* bufs[], unsigned* n_bufs) {
  auto* self = static_cast<Impl*>(fsm->data);
  MAILBOX_ASSERT(!self->snapshot_parts, "one snapshot at a time");
  const auto started = std::chrono::steady_clock::now();
  auto parts = std::make_unique<StateMachine::SnapshotParts>(self->state.pin_snapshot());
  size_t count = 1;
  for (const auto& p : parts->payloads) count += p.empty() ? 0 : 1;
  auto* array = static_cast<raft_buffer*>(raft_malloc(count * sizeof(raft_buffer)));
  if (array == nullptr) {
    self->state.unpin_snapshot();
    return RAFT_NOMEM;
  }
  array[0].base = parts->head.data();
  array[0].len = parts->head.size();
  size_t i = 1;
  for (const auto& p : parts->payloads) {
    if (p.empty()) continue;
    array[i].base = const_cast<char*>(p.data());  // read only by libraft
    array[i].len = p.size();
    ++i;
  }
  *bufs = array;
  *n_bufs = static_cast<unsigned>(count);
  const int64_t us =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started).count();
  self->snapshots_taken += 1;
  self->longest_snapshot_stall_us = std::max(self->longest_snapshot_stall_us, us);
  log_info("snapshot of %llu messages (%zu bytes): loop busy %lld us",
           static_cast<unsigned long long>(self->state.total_messages()), parts->total_bytes(),
           static_cast<long long>(us));
  self->snapshot_parts = std::move(parts);
  // Keep about snapshot_trailing_bytes of log behind this snapshot (libraft
  // truncates with the trailing count set now, when the snapshot is stored).
  if (self->log_entries_since_snapshot > 0) {
    const uint64_t average_entry_bytes =
        std::max<uint64_t>(1, self->log_bytes_since_snapshot / self->log_entries_since_snapshot);
    const uint64_t trailing = std::clamp<uint64_t>(self->options.snapshot_trailing_bytes / average_entry_bytes,
                                                   self->options.snapshot_trailing_entries,
                                                   std::max<uint64_t>(self->options.snapshot_trailing_entries,
                                                                      limits::kMaxTrailingEntries));
    raft_set_snapshot_trailing(&self->raft_instance, static_cast<unsigned>(trailing));
  }
  self->log_bytes_since_snapshot = 0;
  self->log_entries_since_snapshot = 0;
  if (self->snapshot_forced) {
    self->snapshot_forced = false;
    raft_set_snapshot_threshold(&self->raft_instance, self->options.snapshot_threshold_entries);
  }
  return 0;
}

int RaftNode::Impl::fsm_snapshot_finalize(raft_fsm* fsm, raft_buffer* bufs[], unsigned* n_bufs) {
  auto* self = static_cast<Impl*>(fsm->data);
  if (*bufs != nullptr) raft_free(*bufs);
  *bufs = nullptr;
  *n_bufs = 0;
  self->snapshot_parts.reset();
  self->state.unpin_snapshot();
  return 0;
}

int RaftNode::Impl::fsm_restore(raft_fsm* fsm, raft_buffer* buf) {
  auto* self = static_cast<Impl*>(fsm->data);
  const bool restored = self->state.restore(std::string_view(static_cast<const char*>(buf->base), buf->len));
  MAILBOX_ASSERT(restored, "snapshot does not decode");
  raft_free(buf->base);
  log_info("restored snapshot: %llu messages in %zu mailboxes",
           static_cast<unsigned long long>(self->state.total_messages()), self->state.mailbox_count());
  return 0;
}

// ---------------------------------------------------------------- setup

Status RaftNode::Impl::open_raft() {
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  if (ec) return Status::error(ErrorCode::kInternal, "cannot create data directory " + options.data_dir + ": " + ec.message());
  const bool pristine = std::filesystem::is_empty(options.data_dir, ec);

  int rv = uv_loop_init(&loop);
  if (rv != 0) return Status::error(ErrorCode::kInternal, std::string("uv_loop_init: ") + uv_strerror(rv));
  rv = nodelay_transport_init(&transport, &loop);
  if (rv != 0) return Status::error(ErrorCode::kInternal, std::string("raft_uv_tcp_init: ") + raft_strerror(rv));
  transport_initialized = true;
  rv = raft_uv_init(&io, &loop, options.data_dir.c_str(), &transport.outer);
  if (rv != 0) return Status::error(ErrorCode::kInternal, std::string("raft_uv_init: ") + io.errmsg);
  io_initialized = true;
  // Auto-recovery can drop entries this node had acknowledged: never.
  raft_uv_set_auto_recovery(&io, false);

  fsm.version = 2;
  fsm.data = this;
  fsm.apply = &Impl::fsm_apply;
  fsm.snapshot = &Impl::fsm_snapshot;
  fsm.restore = &Impl::fsm_restore;
  fsm.snapshot_finalize = &Impl::fsm_snapshot_finalize;

  rv = raft_init(&raft_instance, &io, &fsm, options.node_id, options.raft_address.c_str());
  if (rv != 0) return Status::error(ErrorCode::kInternal, std::string("raft_init: ") + raft_errmsg(&raft_instance));
  raft_initialized = true;
  raft_instance.data = this;
  raft_uv_set_block_size(&io, kRaftBlockSizeBytes);
  raft_set_pre_vote(&raft_instance, true);
  raft_set_election_timeout(&raft_instance, options.election_timeout_ms);
  raft_set_heartbeat_timeout(&raft_instance, options.heartbeat_timeout_ms);
  raft_set_snapshot_threshold(&raft_instance, options.snapshot_threshold_entries);
  raft_set_snapshot_trailing(&raft_instance, options.snapshot_trailing_entries);

  if (options.recover) {
    if (pristine) return Status::error(ErrorCode::kInvalidArgument, "--recover needs an existing data directory");
    raft_configuration configuration;
    Status built = voters_configuration(options.initial_voters, &configuration);
    if (!built.is_ok()) return built;
    rv = raft_recover(&raft_instance, &configuration);
    raft_configuration_close(&configuration);
    if (rv != 0) return Status::error(ErrorCode::kInternal, std::string("raft_recover: ") + raft_errmsg(&raft_instance));
    log_warn("recovered: forced a new configuration of %zu voters into %s", options.initial_voters.size(),
             options.data_dir.c_str());
  } else if (pristine && !options.initial_voters.empty()) {
    raft_configuration configuration;
    Status built = voters_configuration(options.initial_voters, &configuration);
    if (!built.is_ok()) return built;
    rv = raft_bootstrap(&raft_instance, &configuration);
    raft_configuration_close(&configuration);
    if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) {
      return Status::error(ErrorCode::kInternal, std::string("raft_bootstrap: ") + raft_errmsg(&raft_instance));
    }
    log_info("bootstrapped a new cluster in %s", options.data_dir.c_str());
  }

  std::random_device random;
  token_base = (static_cast<uint64_t>(random()) << 32) ^ (static_cast<uint64_t>(random()) << 16);
  raft_seed(&raft_instance, random());

  rv = raft_start(&raft_instance);
  if (rv != 0) return Status::error(ErrorCode::kInternal, std::string("raft_start: ") + raft_errmsg(&raft_instance));

  uv_async_init(&loop, &wakeup, [](uv_async_t* h) { static_cast<Impl*>(h->data)->on_wakeup(); });
  wakeup.data = this;
  uv_timer_init(&loop, &status_timer);
  status_timer.data = this;
  uv_timer_start(
      &status_timer, [](uv_timer_t* h) { static_cast<Impl*>(h->data)->on_status_timer(); },
      kStatusRefreshIntervalMs, kStatusRefreshIntervalMs);
  refresh_status();
  return Status::ok();
}

// ---------------------------------------------------------------- loop thread

void RaftNode::Impl::refresh_status() {
  raft_id id = 0;
  const char* address = nullptr;
  raft_leader(&raft_instance, &id, &address);
  leader_id.store(id);
  const int raft_role = raft_state(&raft_instance);
  if (raft_role == RAFT_UNAVAILABLE && !closing) {
    // A Raft instance that can no longer work must not linger as a zombie.
    log_error("the Raft instance became unavailable (%s); exiting so a supervisor restarts this node",
              raft_errmsg(&raft_instance));
    std::abort();
  }
  const bool leader_now = raft_role == RAFT_LEADER;
  if (!leader_now && waiter_count > 0) {
    // Not (or no longer) the leader: waiters must go and find the new one.
    fail_waiters(Status::error(ErrorCode::kUnavailable, "this node is no longer the leader; retry"));
  }
  is_leader.store(leader_now);
  {
    std::vector<RaftServerInfo> servers;
    size_t voter_count = 0;
    for (unsigned i = 0; i < raft_instance.configuration.n; ++i) {
      const raft_server& server = raft_instance.configuration.servers[i];
      const char* role = server.role == RAFT_VOTER ? "voter" : server.role == RAFT_STANDBY ? "standby" : "spare";
      voter_count += server.role == RAFT_VOTER ? 1 : 0;
      servers.push_back(RaftServerInfo{server.id, server.address, role});
    }
    voters.store(voter_count);
    sole_voter.store(voter_count == 1 && servers.size() == 1 && servers[0].id == options.node_id &&
                     servers[0].role == "voter");
    std::lock_guard<std::mutex> lock(status_mutex);
    configuration_view = std::move(servers);
    state_name = raft_state_name(raft_role);
  }
  term.store(raft_current_term(&raft_instance));
  commit_index.store(raft_commit_index(&raft_instance));
  applied_index.store(raft_last_applied(&raft_instance));
  last_index.store(raft_last_index(&raft_instance));
  parked_waiters.store(waiter_count);
  snapshots_taken_shared.store(snapshots_taken);
  longest_snapshot_stall_us_shared.store(longest_snapshot_stall_us);
  messages.store(state.total_messages());
}

void RaftNode::Impl::on_status_timer() {
  if (closing) return;
  refresh_status();
  expire_waiters(/*all=*/false);
  maintain();
  drive();
}

// Leader housekeeping: share this node's business settings, and sweep when
// expiries or lease ends are due.
void RaftNode::Impl::maintain() {
  if (raft_state(&raft_instance) != RAFT_LEADER) return;
  if (!configure_in_flight && !(state.config() == options.state_config)) {
    propose_internal(ConfigureCommand{options.state_config}, &configure_in_flight);
  }
  const int64_t now = steady_ms();
  if (sweep_in_flight || now - last_sweep_check_ms < kSweepCheckIntervalMs) return;
  last_sweep_check_ms = now;
  if (state.next_sweep_due_ms() <= wall_clock_ms()) propose_internal(SweepCommand{}, &sweep_in_flight);
}

void RaftNode::Impl::propose_internal(Command command, bool* in_flight) {
  *in_flight = true;
  std::vector<PendingCommand> batch;
  batch.push_back(PendingCommand{std::move(command), [in_flight](CommandResult&&) { *in_flight = false; },
                                 steady_ms(), 0});
  propose(batch);
}

bool RaftNode::Impl::park(PendingCommand&& command) {
  if (waiter_count >= limits::kMaxParkedWaiters) return false;
  const auto& consume = std::get<ConsumeCommand>(command.command);
  command_waiters[consume.mailbox].push_back(std::move(command));
  ++waiter_count;
  return true;
}

bool RaftNode::Impl::park(PendingRead&& read) {
  if (waiter_count >= limits::kMaxParkedWaiters) return false;
  read_waiters[read.read.mailbox].push_back(std::move(read));
  ++waiter_count;
  return true;
}

// Moves the waiters of mailboxes that gained messages back into the queues.
void RaftNode::Impl::wake_waiters() {
  if (waiter_count == 0) {
    woken.clear();
    return;
  }
  auto requeue_commands = [this](std::vector<PendingCommand>& list) {
    for (auto& c : list) parked_commands.push_back(std::move(c));
    waiter_count -= list.size();
  };
  auto requeue_reads = [this](std::vector<PendingRead>& list) {
    for (auto& r : list) parked_reads.push_back(std::move(r));
    waiter_count -= list.size();
  };
  for (const auto& name : woken) {
    if (auto it = command_waiters.find(name); it != command_waiters.end()) {
      requeue_commands(it->second);
      command_waiters.erase(it);
    }
    if (auto it = read_waiters.find(name); it != read_waiters.end()) {
      requeue_reads(it->second);
      read_waiters.erase(it);
    }
  }
  woken.clear();
}

namespace {
// Completes every waiter of `waiters` for which `due(waiter)` holds with
// `status`; returns how many it completed.
template <typename Waiter, typename Result, typename Due>
size_t complete_waiters(std::unordered_map<std::string, std::vector<Waiter>>& waiters, const Status& status,
                        Due due) {
  size_t completed = 0;
  for (auto it = waiters.begin(); it != waiters.end();) {
    auto& list = it->second;
    for (size_t i = 0; i < list.size();) {
      if (!due(list[i])) {
        ++i;
        continue;
      }
      Result r;
      r.status = status;
      list[i].done(std::move(r));
      list[i] = std::move(list.back());
      list.pop_back();
      ++completed;
    }
    it = list.empty() ? waiters.erase(it) : std::next(it);
  }
  return completed;
}
}  // namespace

void RaftNode::Impl::fail_waiters(Status status) {
  auto all = [](const auto&) { return true; };
  waiter_count -= complete_waiters<PendingCommand, CommandResult>(command_waiters, status, all);
  waiter_count -= complete_waiters<PendingRead, ReadResult>(read_waiters, status, all);
}

// Completes waiters whose wait has ended with `empty` (all of them, with
// `unavailable`, when `all`).
void RaftNode::Impl::expire_waiters(bool all) {
  if (waiter_count == 0) return;
  if (all) {
    fail_waiters(Status::error(ErrorCode::kUnavailable, "the server is shutting down"));
    return;
  }
  const int64_t now = steady_ms();
  auto ended = [now](const auto& w) { return w.wait_deadline_ms <= now; };
  const Status empty = Status::error(ErrorCode::kEmpty, "mailbox is empty");
  waiter_count -= complete_waiters<PendingCommand, CommandResult>(command_waiters, empty, ended);
  waiter_count -= complete_waiters<PendingRead, ReadResult>(read_waiters, empty, ended);
}

void RaftNode::Impl::on_wakeup() {
  std::vector<PendingCommand> commands;
  std::vector<PendingRead> reads;
  std::vector<PendingMembership> changes;
  bool stop = false;
  {
    std::lock_guard<std::mutex> lock(mutex);
    commands.swap(inbox_commands);
    reads.swap(inbox_reads);
    changes.swap(inbox_membership);
    stop = stop_requested;
  }
  for (auto& c : changes) {
    if (stop) {
      c.done(Status::error(ErrorCode::kUnavailable, "the server is shutting down"));
    } else {
      change_membership(std::move(c));
    }
  }
  for (auto& c : commands) parked_commands.push_back(std::move(c));
  for (auto& r : reads) parked_reads.push_back(std::move(r));
  if (stop) {
    begin_close();
    return;
  }
  wake_waiters();
  refresh_status();
  maintain();
  drive();
}

// Moves parked work forward: proposes when leader, waits for a leader for a
// bounded time, refuses otherwise.
void RaftNode::Impl::drive() {
  if (closing) return;
  const bool leader = raft_state(&raft_instance) == RAFT_LEADER;
  if (leader) {
    while (!parked_commands.empty()) {
      std::vector<PendingCommand> batch;
      size_t bytes = 0;
      while (!parked_commands.empty() && batch.size() < limits::kMaxCommandsPerEntry) {
        const size_t size = encoded_size_hint(parked_commands.front().command);
        if (!batch.empty() && bytes + size > limits::kMaxEntryBytes) break;
        bytes += size;
        batch.push_back(std::move(parked_commands.front()));
        parked_commands.pop_front();
      }
      propose(batch);
    }
    for (auto& r : parked_reads) waiting_reads.push_back(std::move(r));
    parked_reads.clear();
    if (!barrier_in_flight && !waiting_reads.empty()) issue_barrier();
    return;
  }
  // Not the leader. Reads that waited for a barrier go back to the queue.
  for (auto& r : waiting_reads) parked_reads.push_back(std::move(r));
  waiting_reads.clear();
  // Another known leader serves through its own queryable:
  // refuse at once. With no leader known, wait a bounded time for this node
  // to become it (a cluster of one at start-up, or a re-election).
  raft_id known_leader = 0;
  const char* known_address = nullptr;
  raft_leader(&raft_instance, &known_leader, &known_address);
  const int64_t now = steady_ms();
  const int64_t deadline_age =
      known_leader != 0 && known_leader != options.node_id ? 0 : static_cast<int64_t>(options.leader_wait_ms);
  while (!parked_commands.empty() && now - parked_commands.front().arrived_ms >= deadline_age) {
    CommandResult r;
    r.status = Status::error(ErrorCode::kUnavailable, "no leader: the cluster is electing one or has lost its quorum");
    parked_commands.front().done(std::move(r));
    parked_commands.pop_front();
  }
  while (!parked_reads.empty() && now - parked_reads.front().arrived_ms >= deadline_age) {
    ReadResult r;
    r.status = Status::error(ErrorCode::kUnavailable, "no leader: the cluster is electing one or has lost its quorum");
    parked_reads.front().done(std::move(r));
    parked_reads.pop_front();
  }
}

void RaftNode::Impl::propose(std::vector<PendingCommand>& batch) {
  auto proposal = std::make_unique<Proposal>();
  proposal->impl = this;
  proposal->token = token_base + next_seq++;
  Entry entry;
  entry.leader_time_ms = wall_clock_ms();
  entry.proposer_token = proposal->token;
  entry.commands.reserve(batch.size());
  proposal->callbacks.reserve(batch.size());
  for (auto& c : batch) {
    if (c.wait_deadline_ms != 0) {
      proposal->retries.emplace_back(proposal->callbacks.size(),
                                     PendingCommand{c.command, nullptr, c.arrived_ms, c.wait_deadline_ms});
    }
    entry.commands.push_back(std::move(c.command));
    proposal->callbacks.push_back(std::move(c.done));
  }
  std::string bytes = encode_entry(entry);
  raft_buffer buffer;
  buffer.len = bytes.size();
  buffer.base = raft_malloc(buffer.len);
  MAILBOX_ASSERT(buffer.base != nullptr, "raft_malloc for a log entry");
  std::memcpy(buffer.base, bytes.data(), bytes.size());
  proposal->request.data = proposal.get();
  const int rv = raft_apply(&raft_instance, &proposal->request, &buffer, 1, &Impl::on_applied);
  if (rv != 0) {
    // libraft frees the buffer itself on failures after its log took it; it
    // leaves it to us only when it refused up front (not the leader). After
    // the append, the entry may still be replicated: the outcome is unknown.
    const bool refused_up_front = rv == RAFT_NOTLEADER;
    if (refused_up_front) raft_free(buffer.base);
    log_warn("raft_apply failed: %s (%s)", raft_strerror(rv), raft_errmsg(&raft_instance));
    const ErrorCode code = refused_up_front ? ErrorCode::kUnavailable : ErrorCode::kUnknownOutcome;
    const std::string message = std::string("cannot propose: ") + raft_strerror(rv) +
                                (refused_up_front ? "" : "; retry with the same rid");
    for (auto& done : proposal->callbacks) {
      CommandResult r;
      r.status = Status::error(code, message);
      done(std::move(r));
    }
    return;
  }
  const uint64_t token = proposal->token;
  proposals.emplace(token, std::move(proposal));
}

void RaftNode::Impl::on_applied(struct raft_apply* request, int status, void*) {
  auto* proposal = static_cast<Proposal*>(request->data);
  Impl* self = proposal->impl;
  auto owned = std::move(self->proposals.at(proposal->token));
  self->proposals.erase(proposal->token);
  if (status == 0) {
    MAILBOX_ASSERT(owned->applied, "an applied proposal has results");
    // A long-polling consume that found nothing waits for a message.
    const int64_t now = steady_ms();
    bool requeued = false;
    const bool still_leader = raft_state(&self->raft_instance) == RAFT_LEADER;
    for (auto& [index, retry] : owned->retries) {
      if (owned->results[index].status.code != ErrorCode::kEmpty || retry.wait_deadline_ms <= now) continue;
      if (!still_leader) {
        // Messages will arrive at the new leader: send the client there.
        owned->results[index].status =
            Status::error(ErrorCode::kUnavailable, "this node is no longer the leader; retry");
        continue;
      }
      retry.done = std::move(owned->callbacks[index]);
      owned->callbacks[index] = nullptr;
      // A message may have arrived in a later entry applied in the same
      // step, whose wake-up came before this consume was parked: retry now.
      const auto& mailbox = std::get<ConsumeCommand>(retry.command).mailbox;
      if (self->state.has_visible(mailbox, self->state.clock_ms())) {
        self->parked_commands.push_back(std::move(retry));
        requeued = true;
      } else if (!self->park(std::move(retry))) {
        owned->callbacks[index] = std::move(retry.done);
      }
    }
    if (requeued && !self->closing) uv_async_send(&self->wakeup);
    for (size_t i = 0; i < owned->callbacks.size(); ++i) {
      if (owned->callbacks[i]) owned->callbacks[i](std::move(owned->results[i]));
    }
    return;
  }
  // The entry was appended locally; it may or may not be committed by a
  // later leader. Only a retry with the same rid can settle it.
  for (auto& done : owned->callbacks) {
    CommandResult r;
    r.status = Status::error(ErrorCode::kUnknownOutcome,
                             std::string("the cluster may or may not have applied this (") + raft_strerror(status) +
                                 "); retry with the same rid");
    done(std::move(r));
  }
}

void RaftNode::Impl::issue_barrier() {
  auto batch = std::make_unique<ReadBatch>();
  batch->impl = this;
  batch->reads = std::move(waiting_reads);
  waiting_reads.clear();
  batch->request.data = batch.get();
  const int rv = raft_barrier(&raft_instance, &batch->request, &Impl::on_barrier);
  if (rv != 0) {
    for (auto& r : batch->reads) {
      ReadResult result;
      result.status = Status::error(ErrorCode::kUnavailable, std::string("cannot read: ") + raft_strerror(rv));
      r.done(std::move(result));
    }
    return;
  }
  barrier_in_flight = true;
  batch.release();  // owned by libraft until on_barrier
}

void RaftNode::Impl::on_barrier(struct raft_barrier* request, int status) {
  std::unique_ptr<ReadBatch> batch(static_cast<ReadBatch*>(request->data));
  Impl* self = batch->impl;
  self->barrier_in_flight = false;
  if (status == 0) {
    self->serve_reads(batch->reads);
  } else {
    for (auto& r : batch->reads) {
      ReadResult result;
      result.status = Status::error(ErrorCode::kUnavailable, std::string("read interrupted: ") + raft_strerror(status));
      r.done(std::move(result));
    }
  }
  if (!self->closing && !self->waiting_reads.empty()) self->drive();
}

void RaftNode::Impl::serve_reads(std::vector<PendingRead>& reads) {
  // Reads see expiry at the later of the log's time and this leader's clock.
  const int64_t now = std::max(state.clock_ms(), wall_clock_ms());
  const int64_t steady_now = steady_ms();
  for (auto& r : reads) {
    ReadResult result;
    if (r.read.kind == ReadRequest::Kind::kPeek) {
      result.status = state.peek(r.read.mailbox, r.read.max_count, now, &result.messages);
      if (result.status.code == ErrorCode::kEmpty && r.wait_deadline_ms > steady_now) {
        if (park(std::move(r))) continue;
      }
    } else {
      result.stats = state.stats(r.read.mailbox, now);
    }
    r.done(std::move(result));
  }
}

void RaftNode::Impl::fail_all_pending() {
  auto unavailable = [] { return Status::error(ErrorCode::kUnavailable, "the server is shutting down"); };
  for (auto& c : parked_commands) {
    CommandResult r;
    r.status = unavailable();
    c.done(std::move(r));
  }
  parked_commands.clear();
  for (auto& list : {&parked_reads}) {
    for (auto& rd : *list) {
      ReadResult r;
      r.status = unavailable();
      rd.done(std::move(r));
    }
    list->clear();
  }
  for (auto& rd : waiting_reads) {
    ReadResult r;
    r.status = unavailable();
    rd.done(std::move(r));
  }
  waiting_reads.clear();
  expire_waiters(/*all=*/true);
}

void RaftNode::Impl::begin_close() {
  if (closing) return;
  closing = true;
  fail_all_pending();
  uv_timer_stop(&status_timer);
  uv_close(reinterpret_cast<uv_handle_t*>(&status_timer), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&wakeup), nullptr);
  // In-flight proposals and barriers get their callbacks from raft_close.
  raft_close(&raft_instance, &Impl::on_raft_closed);
}

void RaftNode::Impl::on_raft_closed(raft* r) {
  auto* self = static_cast<Impl*>(r->data);
  raft_uv_close(&self->io);
  nodelay_transport_close(&self->transport);
  self->running.store(false);
}

// ---------------------------------------------------------------- membership

void RaftNode::Impl::change_membership(PendingMembership&& pending) {
  if (raft_state(&raft_instance) != RAFT_LEADER) {
    pending.done(Status::error(ErrorCode::kUnavailable, "membership changes go to the leader"));
    return;
  }
  auto change = std::make_unique<Change>();
  change->impl = this;
  change->pending = std::move(pending);
  const MembershipRequest& req = change->pending.request;
  int rv = 0;
  change->request.data = change.get();
  change->transfer.data = change.get();
  switch (req.op) {
    case MembershipRequest::Op::kAdd: {
      // Already in the configuration but not voting (an earlier promotion
      // failed): promote it.
      bool present = false;
      for (unsigned i = 0; i < raft_instance.configuration.n; ++i) {
        const raft_server& server = raft_instance.configuration.servers[i];
        if (server.id == req.id && server.role != RAFT_VOTER) present = true;
      }
      if (present) {
        change->promoting = true;
        rv = raft_assign(&raft_instance, &change->request, req.id, RAFT_VOTER, &Impl::on_changed);
      } else {
        rv = raft_add(&raft_instance, &change->request, req.id, req.address.c_str(), &Impl::on_changed);
      }
      break;
    }
    case MembershipRequest::Op::kRemove:
      rv = raft_remove(&raft_instance, &change->request, req.id, &Impl::on_changed);
      break;
    case MembershipRequest::Op::kTransfer:
      rv = raft_transfer(&raft_instance, &change->transfer, req.id, &Impl::on_transferred);
      break;
  }
  if (rv != 0) {
    // Retryable: not the leader, or another change is still in progress.
    const ErrorCode code =
        rv == RAFT_NOTLEADER || rv == RAFT_CANTCHANGE ? ErrorCode::kUnavailable : ErrorCode::kInvalidArgument;
    change->pending.done(Status::error(code, std::string(raft_strerror(rv)) + ": " + raft_errmsg(&raft_instance)));
    return;
  }
  change.release();  // owned by libraft until its callback
}

void RaftNode::Impl::on_changed(struct raft_change* request, int status) {
  std::unique_ptr<Change> change(static_cast<Change*>(request->data));
  Impl* self = change->impl;
  if (status != 0) {
    change->pending.done(Status::error(ErrorCode::kUnavailable, std::string("membership change failed: ") +
                                                                    raft_strerror(status)));
    return;
  }
  const MembershipRequest& req = change->pending.request;
  if (req.op == MembershipRequest::Op::kAdd && !change->promoting) {
    // Step two: promote the new spare to voter; libraft first lets it catch
    // up (by snapshot when it is far behind).
    change->promoting = true;
    change->request = {};
    change->request.data = change.get();
    const int rv = raft_assign(&self->raft_instance, &change->request, req.id, RAFT_VOTER, &Impl::on_changed);
    if (rv != 0) {
      change->pending.done(Status::error(ErrorCode::kUnavailable, std::string("cannot promote to voter: ") +
                                                                      raft_strerror(rv)));
      return;
    }
    change.release();
    return;
  }
  // The status others read shows the new configuration before the caller
  // hears that the change is done.
  self->refresh_status();
  change->pending.done(Status::ok());
}

void RaftNode::Impl::on_transferred(struct raft_transfer* request) {
  std::unique_ptr<Change> change(static_cast<Change*>(request->data));
  Impl* self = change->impl;
  raft_id id = 0;
  const char* address = nullptr;
  raft_leader(&self->raft_instance, &id, &address);
  if (id != 0 && id != self->options.node_id &&
      (change->pending.request.id == 0 || id == change->pending.request.id)) {
    change->pending.done(Status::ok());
  } else {
    change->pending.done(Status::error(ErrorCode::kUnavailable, "leadership did not move in time"));
  }
}

// ---------------------------------------------------------------- public

RaftNode::RaftNode(RaftNodeOptions options) : options_(std::move(options)) {}

RaftNode::~RaftNode() { stop(); }

Status RaftNode::start() {
  MAILBOX_ASSERT(!impl_, "start called twice");
  impl_ = std::make_unique<Impl>(options_);
  std::promise<Status> started;
  auto started_future = started.get_future();
  loop_thread_ = std::thread([this, &started] {
    pthread_setname_np(pthread_self(), "mbx-raft-loop");
    // Result callbacks run here: they hand replies to another thread.
    NoBlockingSendsScope no_sends("on the Raft loop thread: hand replies to the reply worker");
    Impl& impl = *impl_;
    Status s = impl.open_raft();
    if (!s.is_ok()) {
      if (impl.raft_initialized) {
        impl.closing = true;
        raft_close(&impl.raft_instance, [](raft* r) {
          auto* self = static_cast<Impl*>(r->data);
          raft_uv_close(&self->io);
          nodelay_transport_close(&self->transport);
        });
      } else {
        if (impl.io_initialized) raft_uv_close(&impl.io);
        if (impl.transport_initialized) nodelay_transport_close(&impl.transport);
      }
      uv_run(&impl.loop, UV_RUN_DEFAULT);
      uv_loop_close(&impl.loop);
      started.set_value(s);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(impl.mutex);
      impl.accepting = true;
    }
    impl.running.store(true);
    started.set_value(Status::ok());
    uv_run(&impl.loop, UV_RUN_DEFAULT);
    const int rv = uv_loop_close(&impl.loop);
    if (rv != 0) log_error("uv_loop_close: %s", uv_strerror(rv));
  });
  Status s = started_future.get();
  if (!s.is_ok()) {
    loop_thread_.join();
    impl_.reset();
  }
  return s;
}

void RaftNode::stop() {
  if (!impl_) return;
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    const bool was_running = impl_->accepting;
    impl_->accepting = false;
    impl_->stop_requested = true;
    if (was_running) uv_async_send(&impl_->wakeup);
  }
  if (loop_thread_.joinable()) loop_thread_.join();
  // Anything that slipped into the inbox after the loop drained it.
  auto unavailable = [] { return Status::error(ErrorCode::kUnavailable, "the server is shutting down"); };
  for (auto& c : impl_->inbox_commands) {
    CommandResult r;
    r.status = unavailable();
    c.done(std::move(r));
  }
  for (auto& rd : impl_->inbox_reads) {
    ReadResult r;
    r.status = unavailable();
    rd.done(std::move(r));
  }
  for (auto& m : impl_->inbox_membership) m.done(unavailable());
  impl_.reset();
}

bool RaftNode::submit_command(Command command, CommandCallback done, int64_t wait_ms) {
  if (!impl_) {
    CommandResult refused;
    refused.status = Status::error(ErrorCode::kUnavailable, kNotRunningMessage);
    done(std::move(refused));
    return false;
  }
  const int64_t now = steady_ms();
  const int64_t deadline = wait_ms > 0 && std::holds_alternative<ConsumeCommand>(command) ? now + wait_ms : 0;
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    if (impl_->accepting) {
      impl_->inbox_commands.push_back(Impl::PendingCommand{std::move(command), std::move(done), now, deadline});
      // Under the lock: the loop closes the handle only after `accepting` is false.
      uv_async_send(&impl_->wakeup);
      return true;
    }
  }
  CommandResult refused;
  refused.status = Status::error(ErrorCode::kUnavailable, kNotRunningMessage);
  done(std::move(refused));
  return false;
}

bool RaftNode::submit_membership(MembershipRequest request, StatusCallback done) {
  if (impl_) {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    if (impl_->accepting) {
      impl_->inbox_membership.push_back(Impl::PendingMembership{std::move(request), std::move(done)});
      uv_async_send(&impl_->wakeup);
      return true;
    }
  }
  done(Status::error(ErrorCode::kUnavailable, kNotRunningMessage));
  return false;
}

bool RaftNode::submit_read(ReadRequest read, ReadCallback done) {
  if (impl_) {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    if (impl_->accepting) {
      const int64_t now = steady_ms();
      const int64_t deadline = read.wait_ms > 0 && read.kind == ReadRequest::Kind::kPeek ? now + read.wait_ms : 0;
      impl_->inbox_reads.push_back(Impl::PendingRead{std::move(read), std::move(done), now, deadline});
      uv_async_send(&impl_->wakeup);
      return true;
    }
  }
  ReadResult refused;
  refused.status = Status::error(ErrorCode::kUnavailable, kNotRunningMessage);
  done(std::move(refused));
  return false;
}

bool RaftNode::is_leader() const { return impl_ && impl_->is_leader.load(); }
uint64_t RaftNode::leader_id() const { return impl_ ? impl_->leader_id.load() : 0; }
size_t RaftNode::voters() const { return impl_ ? impl_->voters.load() : 0; }
bool RaftNode::single_voter() const { return impl_ && impl_->sole_voter.load(); }

RaftNodeStatus RaftNode::status() const {
  RaftNodeStatus s;
  if (!impl_) return s;
  s.running = impl_->running.load();
  s.is_leader = impl_->is_leader.load();
  s.leader_id = impl_->leader_id.load();
  s.term = impl_->term.load();
  s.commit_index = impl_->commit_index.load();
  s.applied_index = impl_->applied_index.load();
  s.last_index = impl_->last_index.load();
  s.parked_waiters = impl_->parked_waiters.load();
  s.snapshots_taken = impl_->snapshots_taken_shared.load();
  s.longest_snapshot_stall_us = impl_->longest_snapshot_stall_us_shared.load();
  s.messages = impl_->messages.load();
  s.voters = impl_->voters.load();
  {
    std::lock_guard<std::mutex> lock(impl_->status_mutex);
    s.configuration = impl_->configuration_view;
    s.state = impl_->state_name;
  }
  return s;
}

}  // namespace mailbox
