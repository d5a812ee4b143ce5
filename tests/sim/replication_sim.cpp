// replication_sim: a deterministic simulation of a mailbox cluster that runs
// the production replication code over a simulated disk and network.
//
// Every node is the real RaftDriver (libraft's algorithm through raft_step)
// with the real state machine, log store, term-vote store, snapshot store,
// start-up path (node_startup) and message codec; only the environment is
// simulated: time, the disk (tests/sim/sim_file_system: unsynced writes
// lost or torn at a crash, EIO, ENOSPC, bit flips), and the network (delay,
// loss, duplication, reordering, partitions, snapshot files streamed in
// chunks). A seeded schedule mixes client work (puts with and without rid,
// consumes with rid, leases with ack and nack, long-polls, short TTLs,
// linearizable peeks) with faults (crashes, crashes in the middle of a
// write, disk errors, a full disk, a flipped bit in a log at rest, network
// faults, clock jumps, leadership transfers, and replacing a node: removed,
// wiped, rejoined as a spare and promoted). Then everything is healed and
// drained, and the checker verifies on the committed history:
//   - every acknowledged put is committed with the id the client got, and
//     delivered (unless it expired);
//   - no message is delivered twice without a lease, nor after removal;
//   - FIFO per mailbox among messages never leased;
//   - nothing is delivered at or after its expiry;
//   - a client's consume got exactly what the log says it removed;
//   - peeks are neither stale nor return removed messages;
//   - replicas that applied an index hold identical state there;
//   - a node refuses to start only when its data was damaged, and then does.
// The same seed gives the same run; a failure prints the seed and the
// command that replays it (-v traces it).
//
// Usage: replication_sim [--seeds N] [--first S] [--seed S] [--seconds T] [-v]
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <queue>
#include <set>
#include <string>
#include <vector>

#include "core/assert.hpp"
#include "core/state_machine.hpp"
#include "replication/node_startup.hpp"
#include "replication/raft_codec.hpp"
#include "replication/raft_driver.hpp"
#include "replication/snapshot_store.hpp"
#include "tests/sim/sim_file_system.hpp"
#include "util/log.hpp"

namespace mailbox::sim {
namespace {

// splitmix64: a small deterministic generator, identical on every platform.
struct Rng {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  uint64_t below(uint64_t n) { return n == 0 ? 0 : next() % n; }
  bool chance(unsigned percent) { return below(100) < percent; }
  int64_t between(int64_t lo, int64_t hi) { return lo + static_cast<int64_t>(below(static_cast<uint64_t>(hi - lo + 1))); }
};

constexpr int64_t kTickMs = 20;
constexpr int64_t kPrepareIntervalMs = 100;
constexpr int64_t kWallClockEpochMs = 1'790'000'000'000;
constexpr int64_t kLongTtlMs = 3'600'000;
constexpr int64_t kShortTtlMs = 400;
constexpr int64_t kLeaseMs = 300;
// Delayed puts (SPEC v2) are due within this.
constexpr int64_t kMaxDelayMs = 1500;
constexpr uint32_t kSimMaxDeliveries = 2;
constexpr uint64_t kSegmentBytes = 8 * 1024;
constexpr uint64_t kChunkBytes = 16 * 1024;
constexpr unsigned kMaxClientsInFlight = 8;
constexpr int64_t kDrainBudgetMs = 120'000;
constexpr int64_t kLivenessBudgetMs = 6'000;
constexpr int kMaxDiskRetries = 3;
const char* const kMailboxes[] = {"a", "b", "c"};

struct SimCrash {
  std::string why;
};

// Over every seed of a run, for the summary line (what the faults exercised).
struct Totals {
  uint64_t kills = 0, crashes_mid_write = 0, fatal_crashes = 0, refusals = 0, transfers = 0, installs = 0,
           replacements = 0, disk_errors = 0, torn_repairs = 0, committed = 0, leaders_forgotten = 0,
           promotion_probes = 0, refused_disk_full = 0, disk_full_transfers = 0;
  // The v2 operations that did something (committed, first application).
  uint64_t delayed_delivered = 0;
  uint64_t extended = 0;
  uint64_t purged = 0;
  uint64_t redriven = 0;
};
Totals g_totals;

// What a driver counted over its life, added when it stops.
void add_driver_totals(const DriverStatus& status) {
  g_totals.leaders_forgotten += status.leaders_forgotten;
  g_totals.refused_disk_full += status.refused_disk_full;
  g_totals.disk_full_transfers += status.disk_full_transfers;
}

class World;

// ---------------------------------------------------------------- a node

class SimNode final : public DriverEnv {
 public:
  SimNode(World& world, uint64_t id);

  // Opens the node's storage and starts its driver; false (with `refusal`
  // set) when the node refuses to start.
  bool start(const std::vector<RaftPeer>& initial_voters);
  // Power loss: everything volatile goes; the disk keeps what was durable,
  // and pieces of what was not.
  void crash(const std::string& why);
  bool up() const { return driver_ != nullptr; }
  RaftDriver& driver() { return *driver_; }
  uint64_t id() const { return id_; }
  uint64_t incarnation() const { return incarnation_; }
  SimFileSystem& fs() { return *fs_; }
  void wipe_disk();
  std::string address() const { return "node" + std::to_string(id_); }

  // Incoming.
  void deliver(uint64_t from, const std::string& bytes);
  void deliver_chunk(uint64_t from, uint64_t transfer, const raft_message& metadata, uint64_t file_bytes,
                     uint64_t offset, const std::string& bytes);

  // Faults.
  int64_t clock_skew_ms = 0;
  int64_t disk_latency_ms = 2;
  bool crash_at_next_sync = false;
  std::string refusal;
  bool damaged = false;  // a bit was flipped in its data at rest
  std::vector<std::pair<std::string, std::pair<uint64_t, unsigned>>> flips;  // path, offset, bit

  // DriverEnv.
  int64_t monotonic_ms() override;
  int64_t wall_clock_ms() override;
  uint32_t random_seed() override;
  IoStatus save_term_vote(uint64_t term, uint64_t voted_for) override;
  void append_entries(uint64_t ticket, std::vector<LogEntry> entries) override;
  void install_snapshot(uint64_t ticket, InstallJob job) override;
  void compact_log(uint64_t index) override;
  void write_snapshot(uint64_t ticket, SnapshotJob job) override;
  void load_snapshot(uint64_t ticket, std::string path) override;
  void remove_snapshot(std::string path) override;
  void send(const raft_message& message) override;
  void send_snapshot(const raft_message& message, const std::string& path) override;
  void arm_timer(int64_t at_ms) override;
  std::string snapshot_dir() override { return snapshot_dir_of(kDataDir); }
  [[noreturn]] void fatal(const std::string& what) override { throw SimCrash{what}; }

  static constexpr const char* kDataDir = "/node";

 private:
  struct DiskOp {
    bool install = false;
    uint64_t ticket = 0;
    std::vector<LogEntry> entries;
    InstallJob job;
    int retries = 0;
  };
  void kick_disk();
  void run_disk_op();
  void schedule_tick();
  void schedule_prepare();
  IoStatus sync_hook();

  World& world_;
  uint64_t id_;
  uint64_t incarnation_ = 0;
  std::unique_ptr<SimFileSystem> fs_;
  std::unique_ptr<LogStore> log_;
  std::unique_ptr<TermVoteStore> term_vote_;
  std::unique_ptr<RaftDriver> driver_;
  std::deque<DiskOp> disk_queue_;
  bool disk_busy_ = false;
  bool disk_full_reported_ = false;  // the driver was told the disk is full
  uint64_t timer_generation_ = 0;
  // Snapshot transfers being received, by sender.
  struct Receiving {
    uint64_t transfer = 0;
    std::unique_ptr<SnapshotStager> stager;
  };
  std::map<uint64_t, Receiving> receiving_;
};

// ---------------------------------------------------------------- the world

struct Delivery {
  uint64_t index = 0;
  size_t position = 0;
  std::string mailbox;
  uint64_t id = 0;
  std::string payload;
  bool leased = false;
  int64_t at_ms = 0;
  int64_t enqueued_at_ms = 0;
  bool repeat = false;
};

struct Peek {
  uint64_t issued_commit = 0;
  uint64_t applied = 0;
  std::string mailbox;
  uint64_t id = 0;
};

class World {
 public:
  World(uint64_t seed, int64_t seconds, bool verbose);
  // The nodes go first: stopping a driver calls back into the history.
  ~World() {
    for (auto& n : nodes_) n.reset();
  }
  std::vector<std::string> run();
  void fail(std::string what) {
    if (failures_.size() < 20) failures_.push_back(std::move(what));
  }
  void log(const char* format, ...) __attribute__((format(printf, 2, 3)));

  // Events.
  void at(int64_t when, SimNode* node, std::function<void()> fn);
  // A node restored the state at `index` from a snapshot: it must equal the
  // digest the replicas recorded there.
  void check_restored(uint64_t node_id, uint64_t index, uint64_t digest);
  int64_t now() const { return now_; }
  Rng& rng() { return rng_; }
  SimNode* node(uint64_t id) { return id >= 1 && id <= nodes_.size() ? nodes_[id - 1].get() : nullptr; }

  // Network.
  void send(uint64_t from, uint64_t to, std::string bytes);
  void start_transfer(uint64_t from, uint64_t to, const raft_message& metadata, const std::string& path);

  // The committed history, from every replica's applies.
  void observe(uint64_t node, uint64_t index, uint64_t term, const Entry& entry,
               const std::vector<CommandResult>& results, uint64_t digest);
  void note_transfer_done(uint64_t from, uint64_t to) { transfers_.erase({from, to}); }
  // Runs `fn` on node `n`'s driver; a fatal error in it crashes that node.
  template <typename F>
  void on_node(SimNode& n, F&& fn) {
    if (!n.up()) return;
    try {
      fn(n.driver());
    } catch (const SimCrash& c) {
      ++crashes_;
      n.crash(c.why);
    }
  }

 private:
  struct Event {
    int64_t at = 0;
    uint64_t seq = 0;
    SimNode* node = nullptr;
    uint64_t incarnation = 0;
    std::function<void()> fn;
    bool operator>(const Event& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };
  struct Link {
    bool up = true;
    unsigned loss_per_mille = 0;
    int64_t min_delay_ms = 1;
    int64_t max_delay_ms = 5;
    int64_t last_delivery_ms = 0;  // ordered delivery (a stream)
  };
  struct Transfer {
    uint64_t id = 0;
    uint64_t last_index = 0;
  };
  struct Committed {
    uint64_t term = 0;
    Entry entry;
    std::vector<CommandResult> results;
  };
  struct Request {
    Command command;
    uint64_t node = 0;
  };

  void run_until(int64_t when);
  void setup();
  void random_fault();
  void heal();
  void restart(SimNode& n);
  void tick_clients();
  void send_request(Command command);
  void on_result(const Command& command, CommandResult&& result, uint64_t request);
  void keep_for_retry(const Command& command);
  Command random_command();
  void peek();
  uint64_t leader();
  void replace_node();
  void drain();
  void check();
  Link& link(uint64_t from, uint64_t to) { return links_[(from - 1) * kMaxNodes + (to - 1)]; }

  static constexpr unsigned kMaxNodes = 5;
  Rng rng_;
  Rng client_rng_;
  uint64_t seed_;
  int64_t seconds_;
  bool verbose_;
  int64_t now_ = 0;
  uint64_t next_seq_ = 0;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events_;
  std::vector<std::unique_ptr<SimNode>> nodes_;
  std::vector<RaftPeer> voters_;
  Link links_[kMaxNodes * kMaxNodes];
  std::map<std::pair<uint64_t, uint64_t>, Transfer> transfers_;
  uint64_t next_transfer_ = 1;
  std::vector<std::string> failures_;

  // History.
  std::map<uint64_t, Committed> committed_;
  std::map<std::pair<uint64_t, uint64_t>, uint64_t> digests_;  // (index, node) -> digest
  std::map<uint64_t, std::map<uint64_t, uint64_t>> digest_at_;   // index -> node -> digest
  std::map<std::string, uint64_t> acked_puts_;                  // payload -> id the client got
  std::map<std::string, int64_t> ttl_of_;
  std::map<std::string, int64_t> delay_of_;
  std::map<std::string, std::vector<uint64_t>> client_consumed_;  // mailbox/rid -> ids the client got
  std::vector<Command> retries_;
  std::vector<std::pair<std::string, uint64_t>> leased_;
  std::set<std::pair<std::string, uint64_t>> acked_leases_;
  std::vector<Peek> peeks_;
  unsigned in_flight_ = 0;
  // What each request in flight is (for a report of those never answered).
  std::map<uint64_t, std::string> in_flight_what_;
  uint64_t next_request_ = 1;
  uint64_t begin_request(uint64_t node_id, const Command& c, int64_t wait_ms);
  uint64_t next_payload_ = 0;
  uint64_t next_rid_ = 0;
  bool replacing_ = false;
  uint64_t replacing_victim_ = 0;
  // The promotion probe (issue #12, libraft's election stall): the leader
  // dies after appending a promotion its promotee has not received yet and
  // stays down while a quorum of the new configuration is up; a leader must
  // then be elected within kLivenessBudgetMs.
  void probe_promotion();
  void check_liveness();
  bool probed_this_promotion_ = false;
  uint64_t held_down_ = 0;           // a node kept down until held_down_until_
  int64_t held_down_until_ = 0;
  int64_t liveness_deadline_ = 0;    // 0: no watch
  std::string liveness_what_;
  uint64_t crashes_ = 0, refusals_ = 0, installs_ = 0;
};

// ---------------------------------------------------------------- SimNode

SimNode::SimNode(World& world, uint64_t id) : world_(world), id_(id) { wipe_disk(); }

void SimNode::wipe_disk() {
  const uint64_t seed = world_.rng().next();
  auto rng = std::make_shared<Rng>(Rng{seed});
  fs_ = std::make_unique<SimFileSystem>([rng](uint64_t n) { return rng->below(n); });
  fs_->make_dir(kDataDir);
}

int64_t SimNode::monotonic_ms() { return world_.now(); }
int64_t SimNode::wall_clock_ms() { return kWallClockEpochMs + world_.now() + clock_skew_ms; }
uint32_t SimNode::random_seed() { return static_cast<uint32_t>(world_.rng().next()); }

bool SimNode::start(const std::vector<RaftPeer>& initial_voters) {
  MAILBOX_ASSERT(!up(), "start a stopped node");
  ++incarnation_;
  refusal.clear();
  log_ = std::make_unique<LogStore>(*fs_, log_dir_of(kDataDir), LogStoreOptions{id_, kSegmentBytes, 2});
  term_vote_ = std::make_unique<TermVoteStore>(*fs_, raft_state_path_of(kDataDir), id_);
  DurableState durable;
  std::vector<std::string> notes;
  StartupOptions options;
  options.identity = NodeIdentity{id_, "sim"};
  options.initial_voters = initial_voters;
  Status s;
  try {
    s = open_node_storage(*fs_, kDataDir, options, *log_, *term_vote_, &durable, &notes);
  } catch (const SimCrash& c) {
    s = Status::error(ErrorCode::kInternal, "crashed while starting: " + c.why);
  }
  for (const auto& n : notes) {
    world_.log("node %llu: %s", static_cast<unsigned long long>(id_), n.c_str());
    if (n.find("torn") != std::string::npos) ++g_totals.torn_repairs;
  }
  if (!s.is_ok()) {
    refusal = s.message;
    log_.reset();
    term_vote_.reset();
    return false;
  }
  DriverOptions driver_options;
  driver_options.node_id = id_;
  driver_options.address = address();
  driver_options.election_timeout_ms = 1000;
  // Few deliveries before the dead letters, so that redrive has work.
  driver_options.state_config.max_deliveries = kSimMaxDeliveries;
  driver_options.heartbeat_timeout_ms = 100;
  driver_options.install_snapshot_timeout_ms = 5000;
  // Small: snapshots often, and often installed on a follower behind.
  driver_options.snapshot_threshold_entries = static_cast<unsigned>(8 + world_.rng().below(40));
  driver_options.min_snapshot_log_bytes = 16 * 1024;
  driver_options.snapshot_max_log_bytes = 64 * 1024;
  driver_options.snapshot_trailing_bytes = world_.rng().chance(50) ? 0 : 4096;
  driver_options.snapshot_trailing_entries = static_cast<unsigned>(world_.rng().below(16));
  driver_options.max_inflight_entries = static_cast<unsigned>(4 + world_.rng().below(60));
  driver_ = std::make_unique<RaftDriver>(driver_options, *this);
  driver_->set_apply_observer([this](uint64_t index, uint64_t term, const Entry& entry,
                                     const std::vector<CommandResult>& results) {
    world_.observe(id_, index, term, entry, results, driver_->state().digest());
  });
  try {
    s = driver_->start(std::move(durable));
  } catch (const SimCrash& c) {
    s = Status::error(ErrorCode::kInternal, c.why);
  }
  if (!s.is_ok()) {
    refusal = s.message;
    driver_.reset();
    log_.reset();
    term_vote_.reset();
    return false;
  }
  // A state restored from a snapshot equals the state the replicas had at
  // its index.
  if (const DriverStatus st = driver_->status(); st.snapshot_index != 0 && st.applied_index == st.snapshot_index) {
    world_.check_restored(id_, st.snapshot_index, driver_->state().digest());
  }
  schedule_tick();
  schedule_prepare();
  return true;
}

void SimNode::crash(const std::string& why) {
  if (!up()) return;
  world_.log("node %llu crashes: %s", static_cast<unsigned long long>(id_), why.c_str());
  ++incarnation_;  // its scheduled events die with it
  add_driver_totals(driver_->status());
  auto driver = std::move(driver_);
  driver.reset();  // pending requests: unknown outcome / unavailable
  log_.reset();
  term_vote_.reset();
  disk_queue_.clear();
  disk_busy_ = false;
  disk_full_reported_ = false;
  receiving_.clear();
  crash_at_next_sync = false;
  fs_->crash();
}

void SimNode::schedule_tick() {
  world_.at(world_.now() + kTickMs, this, [this] {
    driver_->tick();
    schedule_tick();
  });
}

void SimNode::schedule_prepare() {
  world_.at(world_.now() + kPrepareIntervalMs, this, [this] {
    log_->prepare();  // ENOSPC is remembered by the store; the writer prepares itself if it must
    schedule_prepare();
  });
}

IoStatus SimNode::save_term_vote(uint64_t term, uint64_t voted_for) {
  if (crash_at_next_sync) throw SimCrash{"crash while saving the term"};
  return term_vote_->save(term, voted_for);
}

void SimNode::append_entries(uint64_t ticket, std::vector<LogEntry> entries) {
  DiskOp op;
  op.ticket = ticket;
  op.entries = std::move(entries);
  disk_queue_.push_back(std::move(op));
  kick_disk();
}

void SimNode::install_snapshot(uint64_t ticket, InstallJob job) {
  DiskOp op;
  op.install = true;
  op.ticket = ticket;
  op.job = std::move(job);
  disk_queue_.push_back(std::move(op));
  kick_disk();
}

void SimNode::kick_disk() {
  if (disk_busy_ || disk_queue_.empty()) return;
  disk_busy_ = true;
  uint64_t bytes = 0;
  for (const auto& e : disk_queue_.front().entries) bytes += e.payload.size();
  world_.at(world_.now() + disk_latency_ms + static_cast<int64_t>(bytes / 65536), this, [this] { run_disk_op(); });
}

// The log writer: one op at a time, in order; consecutive appends that
// continue each other are written together (group commit), as production's
// writer thread does.
void SimNode::run_disk_op() {
  std::vector<DiskOp> batch;
  batch.push_back(std::move(disk_queue_.front()));
  disk_queue_.pop_front();
  if (!batch[0].install) {
    while (!disk_queue_.empty() && !disk_queue_.front().install && !batch.back().entries.empty() &&
           !disk_queue_.front().entries.empty() &&
           disk_queue_.front().entries.front().index == batch.back().entries.back().index + 1) {
      batch.push_back(std::move(disk_queue_.front()));
      disk_queue_.pop_front();
    }
  }
  IoStatus status;
  if (crash_at_next_sync) {
    // The process dies in the middle of the write: what reached the page
    // cache may or may not reach the disk, in part.
    fs_->set_error_rates(0, 1000);
  }
  if (batch[0].install) {
    const InstallJob& job = batch[0].job;
    status = fs_->rename(job.staged_path, job.final_path);
    if (status.is_ok()) status = fs_->sync_dir(snapshot_dir());
    if (status.is_ok()) status = log_->reset(job.index + 1);
  } else {
    std::vector<LogEntry> all;
    for (auto& op : batch) all.insert(all.end(), op.entries.begin(), op.entries.end());
    // SIM_MUTANT=lose-writes: a log writer that reports writes it never
    // made durable (the checker must catch the acknowledged puts it loses).
    static const bool lose_writes = std::getenv("SIM_MUTANT") && std::string(std::getenv("SIM_MUTANT")) == "lose-writes";
    status = lose_writes ? IoStatus::ok() : log_->append(all.data(), all.size());
  }
  if (crash_at_next_sync) {
    fs_->set_error_rates(0, 0);
    ++g_totals.crashes_mid_write;
    crash("in the middle of a log write");
    return;
  }
  if (!status.is_ok()) {
    // A full disk waits for space; EIO is retried a few times, then fatal.
    const bool no_space = status.is_no_space();
    if (no_space && !disk_full_reported_) {
      disk_full_reported_ = true;
      driver_->on_log_space(true);
      if (!up()) return;
    }
    if (!no_space && ++batch[0].retries > kMaxDiskRetries) {
      for (auto& op : batch) driver_->on_log_written(op.ticket, status);  // fatal: throws
      return;
    }
    for (auto it = batch.rbegin(); it != batch.rend(); ++it) disk_queue_.push_front(std::move(*it));
    world_.at(world_.now() + (no_space ? 50 : 5), this, [this] { run_disk_op(); });
    return;
  }
  disk_busy_ = false;
  if (disk_full_reported_) {
    disk_full_reported_ = false;
    driver_->on_log_space(false);
    if (!up()) return;
  }
  for (auto& op : batch) {
    driver_->on_log_written(op.ticket, IoStatus::ok());
    if (!up()) return;
  }
  kick_disk();
}

void SimNode::compact_log(uint64_t index) {
  world_.at(world_.now() + 1, this, [this, index] { log_->compact(index); });
}

void SimNode::write_snapshot(uint64_t ticket, SnapshotJob job) {
  world_.at(world_.now() + disk_latency_ms * 2 + world_.rng().between(0, 20), this,
            [this, ticket, job = std::move(job)] {
              const IoStatus s = write_snapshot_job(*fs_, snapshot_dir(), job);
              driver_->on_snapshot_written(ticket, s);
            });
}

void SimNode::load_snapshot(uint64_t ticket, std::string path) {
  world_.at(world_.now() + disk_latency_ms * 2, this, [this, ticket, path] {
    SnapshotReader reader(*fs_, path);
    Status s = reader.open();
    if (s.is_ok()) s = reader.verify();
    std::string data;
    if (s.is_ok()) s = reader.read_data(&data);
    auto state = std::make_unique<StateMachine>();
    if (s.is_ok() && !state->restore(data)) s = Status::error(ErrorCode::kInternal, "the snapshot does not decode");
    driver_->on_snapshot_loaded(ticket, s, std::move(state));
  });
}

void SimNode::remove_snapshot(std::string path) {
  world_.log("node %llu removes %s", static_cast<unsigned long long>(id_), path.c_str());
  world_.at(world_.now() + 1, this, [this, path] {
    if (fs_->remove(path).is_ok()) fs_->sync_dir(snapshot_dir());
  });
}

void SimNode::send(const raft_message& message) {
  if (std::getenv("SIM_TRACE_MESSAGES")) {
    world_.log("%llu -> %llu: type %d term %llu %s", static_cast<unsigned long long>(id_),
               static_cast<unsigned long long>(message.server_id), static_cast<int>(message.type),
               static_cast<unsigned long long>(message.type == RAFT_APPEND_ENTRIES ? message.append_entries.term
                                               : message.type == RAFT_APPEND_ENTRIES_RESULT
                                                   ? message.append_entries_result.term
                                                   : 0),
               message.type == RAFT_APPEND_ENTRIES
                   ? ("prev " + std::to_string(message.append_entries.prev_log_index) + " n " +
                      std::to_string(message.append_entries.n_entries) + " commit " +
                      std::to_string(message.append_entries.leader_commit))
                         .c_str()
               : message.type == RAFT_APPEND_ENTRIES_RESULT
                   ? ("rejected " + std::to_string(message.append_entries_result.rejected) + " last " +
                      std::to_string(message.append_entries_result.last_log_index))
                         .c_str()
                   : "");
  }
  std::string bytes;
  encode_raft_message(message, &bytes);
  world_.send(id_, message.server_id, std::move(bytes));
}

void SimNode::send_snapshot(const raft_message& message, const std::string& path) {
  world_.start_transfer(id_, message.server_id, message, path);
}

void SimNode::arm_timer(int64_t at_ms) {
  const uint64_t generation = ++timer_generation_;
  world_.at(std::max(at_ms, world_.now()), this, [this, generation] {
    if (generation == timer_generation_) driver_->on_timeout();
  });
}

void SimNode::deliver(uint64_t from, const std::string& bytes) {
  DecodedMessage decoded;
  Status s = decode_raft_message(bytes, &decoded);
  if (!s.is_ok()) {
    world_.fail("a message of ours does not decode: " + s.message);
    return;
  }
  SimNode* sender = world_.node(from);
  driver_->on_message(std::move(decoded), from, sender->address());
}

void SimNode::deliver_chunk(uint64_t from, uint64_t transfer, const raft_message& metadata, uint64_t file_bytes,
                            uint64_t offset, const std::string& bytes) {
  Receiving& r = receiving_[from];
  if (offset == 0) {
    r.transfer = transfer;
    r.stager = std::make_unique<SnapshotStager>(
        *fs_, join_path(snapshot_dir(), "incoming-" + std::to_string(from) + "-" + std::to_string(transfer) + ".tmp"),
        file_bytes);
    if (!r.stager->open().is_ok()) {
      r.stager.reset();
      return;
    }
  }
  if (!r.stager || r.transfer != transfer || r.stager->received() != offset) {
    r.stager.reset();  // a chunk was lost: the transfer is abandoned
    return;
  }
  if (!r.stager->write(offset, bytes).is_ok()) {
    r.stager.reset();
    return;
  }
  if (r.stager->received() < r.stager->expected()) return;
  SnapshotMeta meta;
  std::string configuration;
  Status s = r.stager->finish(&meta, &configuration);
  if (!s.is_ok() || meta.index != metadata.install_snapshot.last_index) {
    r.stager.reset();
    return;
  }
  const std::string staged = r.stager->path();
  r.stager->release();
  r.stager.reset();
  driver_->on_snapshot_received(metadata, from, world_.node(from)->address(), staged, configuration);
}

// ---------------------------------------------------------------- World

World::World(uint64_t seed, int64_t seconds, bool verbose)
    : rng_{seed}, client_rng_{seed ^ 0x5bd1e995ULL}, seed_(seed), seconds_(seconds), verbose_(verbose) {}

void World::log(const char* format, ...) {
  if (!verbose_) return;
  va_list args;
  va_start(args, format);
  std::fprintf(stderr, "[t=%lld] ", static_cast<long long>(now_));
  std::vfprintf(stderr, format, args);
  std::fprintf(stderr, "\n");
  va_end(args);
}

void World::at(int64_t when, SimNode* node, std::function<void()> fn) {
  events_.push(Event{std::max(when, now_), next_seq_++, node, node ? node->incarnation() : 0, std::move(fn)});
}

void World::run_until(int64_t when) {
  while (!events_.empty() && events_.top().at <= when && failures_.empty()) {
    Event e = events_.top();
    events_.pop();
    now_ = e.at;
    if (e.node != nullptr && (!e.node->up() || e.node->incarnation() != e.incarnation)) continue;
    try {
      e.fn();
    } catch (const SimCrash& c) {
      ++crashes_;
      if (e.node != nullptr) e.node->crash(c.why);
    }
  }
  now_ = std::max(now_, when);
}

void World::send(uint64_t from, uint64_t to, std::string bytes) {
  SimNode* target = node(to);
  if (target == nullptr) return;
  Link& l = link(from, to);
  if (!l.up || (l.loss_per_mille > 0 && rng_.below(1000) < l.loss_per_mille)) return;
  const int64_t delay = rng_.between(l.min_delay_ms, l.max_delay_ms);
  // Mostly in order, as over one connection; sometimes overtaken (a new
  // connection after a broken one).
  int64_t when = now_ + delay;
  if (!rng_.chance(3)) when = std::max(when, l.last_delivery_ms);
  l.last_delivery_ms = std::max(l.last_delivery_ms, when);
  const bool duplicate = rng_.chance(1);
  for (int copy = 0; copy < (duplicate ? 2 : 1); ++copy) {
    at(when + copy, nullptr, [this, from, to, bytes] {
      SimNode* n = node(to);
      if (n == nullptr || !n->up()) return;
      try {
        n->deliver(from, bytes);
      } catch (const SimCrash& c) {
        ++crashes_;
        n->crash(c.why);
      }
    });
  }
}

// Streams a snapshot file in chunks over the link (in order; a lost chunk
// abandons the transfer, and the leader's next InstallSnapshot starts a new
// one). One transfer per pair at a time.
void World::start_transfer(uint64_t from, uint64_t to, const raft_message& metadata, const std::string& path) {
  auto key = std::make_pair(from, to);
  if (transfers_.count(key)) return;
  SimNode* sender = node(from);
  auto reader = std::make_shared<SnapshotReader>(sender->fs(), path);
  if (Status s = reader->open(); !s.is_ok()) {
    log("transfer from %llu to %llu: cannot open %s: %s", static_cast<unsigned long long>(from),
        static_cast<unsigned long long>(to), path.c_str(), s.message.c_str());
    return;
  }
  const uint64_t id = next_transfer_++;
  const uint64_t file_bytes = reader->meta().file_bytes();
  transfers_[key] = Transfer{id, metadata.install_snapshot.last_index};
  ++installs_;
  ++g_totals.transfers;
  log("transfer %llu: snapshot %llu from %llu to %llu (%llu bytes)", static_cast<unsigned long long>(id),
      static_cast<unsigned long long>(metadata.install_snapshot.last_index), static_cast<unsigned long long>(from),
      static_cast<unsigned long long>(to), static_cast<unsigned long long>(file_bytes));
  const uint64_t incarnation = sender->incarnation();
  auto send_chunk = std::make_shared<std::function<void(uint64_t)>>();
  *send_chunk = [this, from, to, id, metadata, file_bytes, reader, incarnation, send_chunk](uint64_t offset) {
    SimNode* s = node(from);
    if (!s->up() || s->incarnation() != incarnation) {
      note_transfer_done(from, to);
      return;
    }
    std::string chunk;
    if (!reader->read_raw(offset, static_cast<size_t>(std::min<uint64_t>(kChunkBytes, file_bytes - offset)), &chunk)
             .is_ok()) {
      note_transfer_done(from, to);
      return;
    }
    Link& l = link(from, to);
    const bool lost = !l.up || (l.loss_per_mille > 0 && rng_.below(1000) < l.loss_per_mille);
    if (!lost) {
      const int64_t when = std::max(now_ + rng_.between(l.min_delay_ms, l.max_delay_ms), l.last_delivery_ms);
      l.last_delivery_ms = when;
      at(when, nullptr, [this, from, to, id, metadata, file_bytes, offset, chunk] {
        SimNode* n = node(to);
        if (n != nullptr && n->up()) {
          try {
            n->deliver_chunk(from, id, metadata, file_bytes, offset, chunk);
          } catch (const SimCrash& c) {
            ++crashes_;
            n->crash(c.why);
          }
        }
      });
    }
    if (offset + chunk.size() >= file_bytes) {
      note_transfer_done(from, to);
      return;
    }
    at(now_ + 1, nullptr, [send_chunk, offset, n = chunk.size()] { (*send_chunk)(offset + n); });
  };
  (*send_chunk)(0);
}

void World::observe(uint64_t node_id, uint64_t index, uint64_t term, const Entry& entry,
                    const std::vector<CommandResult>& results, uint64_t digest) {
  auto [it, inserted] = committed_.emplace(index, Committed{term, entry, results});
  if (!inserted && it->second.term != term) {
    fail("replicas applied different entries at index " + std::to_string(index) + " (terms " +
         std::to_string(it->second.term) + " and " + std::to_string(term) + ")");
  }
  auto& at_index = digest_at_[index];
  for (const auto& [other, d] : at_index) {
    if (other != node_id && d != digest) {
      fail("replicas " + std::to_string(other) + " and " + std::to_string(node_id) + " differ after index " +
           std::to_string(index));
    }
  }
  at_index[node_id] = digest;
}

void World::check_restored(uint64_t node_id, uint64_t index, uint64_t digest) {
  auto it = digest_at_.find(index);
  if (it == digest_at_.end()) return;
  for (const auto& [other, d] : it->second) {
    if (d != digest) {
      fail("node " + std::to_string(node_id) + " restored a snapshot at index " + std::to_string(index) +
           " that differs from node " + std::to_string(other) + "'s state there");
      return;
    }
  }
}

void World::setup() {
  const unsigned n = rng_.chance(30) ? 5 : 3;
  for (unsigned i = 1; i <= n; ++i) {
    nodes_.push_back(std::make_unique<SimNode>(*this, i));
    voters_.push_back(RaftPeer{i, "node" + std::to_string(i)});
  }
  for (auto& l : links_) l = Link{};
  for (auto& node : nodes_) {
    // Half the seeds run servers whose clocks disagree by up to 3 s.
    if (seed_ % 2 == 0) node->clock_skew_ms = rng_.between(-3000, 3000);
    if (!node->start(voters_)) fail("node " + std::to_string(node->id()) + " did not start: " + node->refusal);
  }
}

uint64_t World::leader() {
  uint64_t found = 0, best_term = 0;
  for (auto& n : nodes_) {
    if (n->up() && n->driver().is_leader() && n->driver().status().term >= best_term) {
      found = n->id();
      best_term = n->driver().status().term;
    }
  }
  return found;
}

void World::restart(SimNode& n) {
  if (n.up()) return;
  if (n.id() == held_down_ && now_ < held_down_until_) return;
  if (n.damaged) {
    // The damage must be found: the node refuses to start.
    if (n.start(voters_)) {
      fail("node " + std::to_string(n.id()) + " started on damaged data (a bit flipped in its log)");
      return;
    }
    log("node %llu refuses to start, as it should: %s", static_cast<unsigned long long>(n.id()),
        n.refusal.c_str());
    ++refusals_;
    ++g_totals.refusals;
    // The operator repairs it (here: the bit flips back).
    for (const auto& [path, at] : n.flips) n.fs().flip_bit(path, at.first, at.second);
    n.flips.clear();
    n.damaged = false;
  }
  if (!n.start(voters_)) fail("node " + std::to_string(n.id()) + " refused to start: " + n.refusal);
}

void World::heal() {
  for (auto& l : links_) {
    l.up = true;
    l.loss_per_mille = 0;
    l.min_delay_ms = 1;
    l.max_delay_ms = 5;
  }
  for (auto& n : nodes_) {
    n->fs().set_error_rates(0, 0);
    n->fs().set_capacity(UINT64_MAX);
    n->disk_latency_ms = 2;
    n->crash_at_next_sync = false;
    if (!n->up() && !replacing_) restart(*n);
  }
}

void World::random_fault() {
  SimNode& n = *nodes_[rng_.below(nodes_.size())];
  SimNode& m = *nodes_[rng_.below(nodes_.size())];
  switch (rng_.below(16)) {
    case 0:
      if (n.up()) {
        ++crashes_;
        ++g_totals.kills;
        n.crash("killed");
      }
      break;
    case 1:
      for (auto& k : nodes_) {
        if (!k->up() && !(replacing_ && k.get() == &n)) {
          restart(*k);
          break;
        }
      }
      break;
    case 2:
      if (&n != &m) {
        log("cut %llu -> %llu", static_cast<unsigned long long>(n.id()), static_cast<unsigned long long>(m.id()));
        link(n.id(), m.id()).up = false;
        if (rng_.chance(50)) link(m.id(), n.id()).up = false;
      }
      break;
    case 3:
      log("isolate %llu", static_cast<unsigned long long>(n.id()));
      for (auto& k : nodes_) {
        if (k.get() == &n) continue;
        link(n.id(), k->id()).up = false;
        link(k->id(), n.id()).up = false;
      }
      break;
    case 4:
      if (&n != &m) {
        Link& l = link(n.id(), m.id());
        l.loss_per_mille = static_cast<unsigned>(rng_.below(300));
        l.max_delay_ms = l.min_delay_ms + rng_.between(0, 80);
      }
      break;
    case 5:
      n.disk_latency_ms = rng_.between(1, 30);
      break;
    case 6:
      if (n.up()) {
        log("node %llu will crash in its next log write", static_cast<unsigned long long>(n.id()));
        n.crash_at_next_sync = true;
      }
      break;
    case 7:
      if (rng_.chance(30)) n.fs().set_error_rates(static_cast<unsigned>(rng_.below(20)), static_cast<unsigned>(rng_.below(20)));
      break;
    case 8:
      if (rng_.chance(50)) {
        // Half the time the leader's: it must refuse work and hand off.
        SimNode* full = &n;
        if (rng_.chance(50) && leader() != 0) full = node(leader());
        log("node %llu's disk is full", static_cast<unsigned long long>(full->id()));
        full->fs().set_capacity(full->fs().used_bytes() + rng_.below(4 * 1024));
        if (rng_.chance(70)) {
          // Space comes back (an operator frees some); the event is the
          // world's, so it outlives a crash of the node.
          at(now_ + rng_.between(500, 5000), nullptr, [this, id = full->id()] {
            log("node %llu's disk has space again", static_cast<unsigned long long>(id));
            node(id)->fs().set_capacity(UINT64_MAX);
          });
        }
      }
      break;
    case 9:
      // A bit flips in the middle of a log segment at rest (a node that is
      // down, in a segment with data after the flip).
      if (n.up() && !replacing_) {
        ++crashes_;
        ++g_totals.kills;
        n.crash("killed (its disk is about to be damaged)");
      }
      if (!n.up() && !n.damaged && !replacing_) {
        std::vector<std::string> segments;
        for (const auto& p : n.fs().files()) {
          if (p.find("/log/seg-") != std::string::npos) segments.push_back(p);
        }
        std::sort(segments.begin(), segments.end());
        if (segments.size() >= 2) {
          const std::string& victim = segments[rng_.below(segments.size() - 1)];  // not the newest
          const uint64_t size = n.fs().file_size(victim);
          // A record header past the segment header, where data is.
          const uint64_t offset = 4096 + 8 * rng_.below(8);
          const unsigned bit = static_cast<unsigned>(rng_.below(8));
          if (size > offset && n.fs().flip_bit(victim, offset, bit)) {
            log("a bit flips in %s at %llu", victim.c_str(), static_cast<unsigned long long>(offset));
            n.damaged = true;
            n.flips.push_back({victim, {offset, bit}});
          }
        }
      }
      break;
    case 10:
      heal();
      break;
    case 11:
      if (uint64_t l = leader(); l != 0) {
        on_node(*node(l), [this](RaftDriver& d) {
          d.submit_membership(MembershipRequest{MembershipRequest::Op::kTransfer, 0, ""},
                              [this](Status&& s) { log("transfer: %s", s.message.c_str()); });
        });
      }
      break;
    case 12:
      n.clock_skew_ms += rng_.between(-2000, 2000);
      break;
    case 13:
      if (rng_.chance(40)) replace_node();
      break;
    default:
      break;
  }
}

// Removes a follower, wipes its disk, starts it empty (joining) and adds it
// back: it catches up (by snapshot when far behind) as a spare, then is
// promoted to voter.
void World::replace_node() {
  if (replacing_) return;
  const uint64_t l = leader();
  if (l == 0) return;
  std::vector<uint64_t> followers;
  for (auto& n : nodes_) {
    if (n->id() != l && n->up()) followers.push_back(n->id());
  }
  if (followers.empty()) return;
  const uint64_t victim = followers[rng_.below(followers.size())];
  replacing_ = true;
  replacing_victim_ = victim;
  probed_this_promotion_ = false;
  log("replacing node %llu", static_cast<unsigned long long>(victim));
  on_node(*node(l), [&](RaftDriver& d) { d.submit_membership(
      MembershipRequest{MembershipRequest::Op::kRemove, victim, ""}, [this, victim](Status&& s) {
        if (!s.is_ok()) {
          log("remove %llu: %s", static_cast<unsigned long long>(victim), s.message.c_str());
          replacing_ = false;
          return;
        }
        // Later (outside the driver's callback): wipe it and bring it back empty.
        at(now_ + 50, nullptr, [this, victim] {
          SimNode* n = node(victim);
          n->crash("removed from the cluster");
          n->wipe_disk();
          n->damaged = false;
          n->flips.clear();
          if (!n->start({})) fail("a wiped node did not start: " + n->refusal);
          auto add = std::make_shared<std::function<void(int)>>();
          *add = [this, victim, add](int attempt) {
            const uint64_t l2 = leader();
            if (l2 == 0 || l2 == victim) {
              if (attempt < 200) at(now_ + 100, nullptr, [add, attempt] { (*add)(attempt + 1); });
              else replacing_ = false;
              return;
            }
            on_node(*node(l2), [&](RaftDriver& d) { d.submit_membership(
                MembershipRequest{MembershipRequest::Op::kAdd, victim, "node" + std::to_string(victim)},
                [this, victim, add, attempt](Status&& s) {
                  log("add %llu: %s", static_cast<unsigned long long>(victim), s.is_ok() ? "ok" : s.message.c_str());
                  if (s.is_ok()) {
                    ++g_totals.replacements;
                    replacing_ = false;
                  } else if (attempt < 200) {
                    at(now_ + 200, nullptr, [add, attempt] { (*add)(attempt + 1); });
                  } else {
                    replacing_ = false;
                  }
                }); });
          };
          (*add)(0);
        });
      }); });
  if (!node(l)->up()) replacing_ = false;
}

void World::probe_promotion() {
  if (liveness_deadline_ != 0 || !replacing_ || replacing_victim_ == 0 || probed_this_promotion_) return;
  const uint64_t l = leader();
  SimNode* victim = node(replacing_victim_);
  if (l == 0 || l == replacing_victim_ || !victim->up()) return;
  auto role_in = [](SimNode& viewer, uint64_t id) {
    for (const auto& server : viewer.driver().status().configuration) {
      if (server.id == id) return server.role;
    }
    return std::string("none");
  };
  if (role_in(*node(l), replacing_victim_) != "voter" || role_in(*victim, replacing_victim_) == "voter") return;
  probed_this_promotion_ = true;
  if (!rng_.chance(50)) return;
  heal();
  ++crashes_;
  ++g_totals.kills;
  ++g_totals.promotion_probes;
  node(l)->crash("killed right after appending a promotion");
  held_down_ = l;
  held_down_until_ = now_ + 8000;
  at(held_down_until_, nullptr, [this, l] {
    if (held_down_ == l) held_down_ = 0;
    restart(*node(l));
  });
  // Liveness is owed only when some node that is up sees a quorum of its
  // configuration's voters up.
  bool quorum = false;
  for (auto& n : nodes_) {
    if (!n->up()) continue;
    size_t voters = 0, up = 0;
    for (const auto& server : n->driver().status().configuration) {
      if (server.role != "voter") continue;
      ++voters;
      up += node(server.id)->up() ? 1 : 0;
    }
    quorum = quorum || (voters > 0 && up * 2 > voters);
  }
  log("probe: leader %llu dies while node %llu's promotion travels; %s", static_cast<unsigned long long>(l),
      static_cast<unsigned long long>(replacing_victim_), quorum ? "a quorum is up" : "no quorum is up");
  if (!quorum) return;
  liveness_deadline_ = now_ + kLivenessBudgetMs;
  liveness_what_ = "leader " + std::to_string(l) + " died while node " + std::to_string(replacing_victim_) +
                   "'s promotion travelled";
}

void World::check_liveness() {
  if (leader() != 0) {
    log("probe: a leader is elected");
    liveness_deadline_ = 0;
    return;
  }
  if (now_ < liveness_deadline_) return;
  liveness_deadline_ = 0;
  fail("no leader within " + std::to_string(kLivenessBudgetMs) + " ms with a quorum up: " + liveness_what_);
}

// ---------------------------------------------------------------- clients

Command World::random_command() {
  const std::string box = kMailboxes[client_rng_.below(3)];
  const uint64_t pick = client_rng_.below(100);
  if (!retries_.empty() && pick < 15) {
    const size_t i = client_rng_.below(retries_.size());
    Command c = retries_[i];
    retries_.erase(retries_.begin() + static_cast<std::ptrdiff_t>(i));
    return c;
  }
  if (pick < 50) {
    PutCommand p;
    p.mailbox = box;
    p.encoding = "text/plain";
    p.payload = "m" + std::to_string(next_payload_++) + std::string(client_rng_.chance(5) ? 3000 : 0, 'x');
    p.ttl_ms = client_rng_.chance(10) ? kShortTtlMs : kLongTtlMs;
    p.rid = client_rng_.chance(70) ? "p" + std::to_string(next_rid_++) : "";
    if (client_rng_.chance(15)) p.delay_ms = 1 + static_cast<int64_t>(client_rng_.below(kMaxDelayMs));
    return p;
  }
  if (pick < 85) {
    ConsumeCommand k;
    k.mailbox = box;
    k.max_count = static_cast<uint32_t>(1 + client_rng_.below(3));
    k.lease_ms = client_rng_.chance(20) ? kLeaseMs : 0;
    k.rid = "c" + std::to_string(next_rid_++);
    return k;
  }
  // The v2 operations: rarely a purge (it removes acknowledged messages,
  // which the check then excuses), some redrives of the dead letters.
  if (pick < 86 && client_rng_.chance(10)) {
    return PurgeCommand{box, client_rng_.chance(50) ? "x" + std::to_string(next_rid_++) : ""};
  }
  if (pick < 89) {
    return RedriveCommand{box, static_cast<uint32_t>(client_rng_.below(3)), "r" + std::to_string(next_rid_++)};
  }
  if (pick < 93 && !leased_.empty()) {
    const auto& [mailbox, id] = leased_[client_rng_.below(leased_.size())];
    return ExtendCommand{mailbox, id, kLeaseMs, client_rng_.chance(50) ? "e" + std::to_string(next_rid_++) : ""};
  }
  if (!leased_.empty()) {
    const size_t i = client_rng_.below(leased_.size());
    auto [mailbox, id] = leased_[i];
    leased_.erase(leased_.begin() + static_cast<std::ptrdiff_t>(i));
    if (client_rng_.chance(70)) return AckCommand{mailbox, id, "a" + std::to_string(next_rid_++)};
    return NackCommand{mailbox, id, "n" + std::to_string(next_rid_++)};
  }
  PutCommand p;
  p.mailbox = box;
  p.encoding = "text/plain";
  p.payload = "m" + std::to_string(next_payload_++);
  p.ttl_ms = kLongTtlMs;
  p.rid = "p" + std::to_string(next_rid_++);
  return p;
}

void World::keep_for_retry(const Command& c) {
  if (const auto* p = std::get_if<PutCommand>(&c); p && p->rid.empty()) return;
  retries_.push_back(c);
}

uint64_t World::begin_request(uint64_t node_id, const Command& c, int64_t wait_ms) {
  in_flight_ += 1;
  const uint64_t id = next_request_++;
  const char* kind = std::holds_alternative<PutCommand>(c) ? "put" : std::holds_alternative<ConsumeCommand>(c) ? "consume" : "other";
  in_flight_what_[id] = std::string(kind) + " to node " + std::to_string(node_id) + " at t=" + std::to_string(now_) +
                        (wait_ms > 0 ? " (wait " + std::to_string(wait_ms) + " ms)" : "");
  return id;
}

void World::on_result(const Command& c, CommandResult&& res, uint64_t request) {
  in_flight_ -= 1;
  in_flight_what_.erase(request);
  if (res.status.code == ErrorCode::kUnavailable || res.status.code == ErrorCode::kUnknownOutcome) {
    keep_for_retry(c);
    return;
  }
  if (const auto* p = std::get_if<PutCommand>(&c)) {
    if (!res.status.is_ok()) return;
    auto [pos, inserted] = acked_puts_.emplace(p->payload, res.put_id);
    if (!inserted && pos->second != res.put_id) {
      fail("a repeated put (rid " + p->rid + ") got id " + std::to_string(res.put_id) + " after " +
           std::to_string(pos->second));
    }
    ttl_of_.emplace(p->payload, p->ttl_ms);
    delay_of_.emplace(p->payload, p->delay_ms);
  } else if (const auto* a = std::get_if<AckCommand>(&c)) {
    if (res.status.is_ok()) acked_leases_.emplace(a->mailbox, a->id);
  } else if (const auto* k = std::get_if<ConsumeCommand>(&c)) {
    if (!res.status.is_ok()) return;
    std::vector<uint64_t> ids;
    for (const auto& m : res.messages) {
      ids.push_back(m.id);
      if (k->lease_ms > 0) leased_.emplace_back(k->mailbox, m.id);
    }
    auto [pos, inserted] = client_consumed_.emplace(k->mailbox + "/" + k->rid, ids);
    if (!inserted && pos->second != ids) fail("a repeated consume (rid " + k->rid + ") got other messages");
  }
}

void World::send_request(Command command) {
  // Most requests go to the node that leads; some to another node (which
  // refuses with `unavailable`, as a follower does).
  uint64_t target = leader();
  if (target == 0 || client_rng_.chance(10)) target = 1 + client_rng_.below(nodes_.size());
  SimNode* n = node(target);
  if (n == nullptr || !n->up()) {
    keep_for_retry(command);
    return;
  }
  const int64_t wait = std::holds_alternative<ConsumeCommand>(command) && client_rng_.chance(5) ? 300 : 0;
  const uint64_t request = begin_request(target, command, wait);
  Command copy = command;
  n->driver().submit_command(std::move(command),
                             [this, copy, request](CommandResult&& r) { on_result(copy, std::move(r), request); }, wait);
}

void World::peek() {
  const uint64_t l = leader();
  if (l == 0) return;
  uint64_t issued = 0;
  for (auto& n : nodes_) {
    if (n->up()) issued = std::max(issued, n->driver().status().commit_index);
  }
  ReadRequest read;
  read.kind = ReadRequest::Kind::kPeek;
  read.mailbox = kMailboxes[client_rng_.below(3)];
  const std::string mailbox = read.mailbox;
  SimNode* n = node(l);
  n->driver().submit_read(std::move(read), [this, n, issued, mailbox](ReadResult&& r) {
    if (!r.status.is_ok() && r.status.code != ErrorCode::kEmpty) return;
    Peek p;
    p.issued_commit = issued;
    p.applied = n->up() ? n->driver().status().applied_index : 0;
    p.mailbox = mailbox;
    if (r.status.is_ok() && !r.messages.empty()) p.id = r.messages.front().id;
    peeks_.push_back(p);
  });
}

void World::tick_clients() {
  if (in_flight_ < kMaxClientsInFlight && client_rng_.chance(60)) send_request(random_command());
  if (client_rng_.chance(5)) peek();
}

// ---------------------------------------------------------------- drain and check

void World::drain() {
  heal();
  const int64_t deadline = now_ + kDrainBudgetMs;
  // Let the replacement finish, if one is under way.
  while (replacing_ && now_ < deadline && failures_.empty()) run_until(now_ + 100);
  heal();
  int64_t quiet_since = -1;
  while (now_ < deadline && failures_.empty()) {
    const uint64_t l = leader();
    if (l != 0 && in_flight_ == 0) {
      std::vector<Command> commands = std::move(retries_);
      retries_.clear();
      for (const char* box : kMailboxes) {
        commands.push_back(ConsumeCommand{box, 1000, 0, "d" + std::to_string(next_rid_++)});
        commands.push_back(ConsumeCommand{dead_letter_mailbox(box), 1000, 0, "d" + std::to_string(next_rid_++)});
      }
      for (auto& c : commands) {
        SimNode* n = node(l);
        const uint64_t request = begin_request(l, c, 0);
        Command copy = c;
        n->driver().submit_command(std::move(c),
                                   [this, copy, request](CommandResult&& r) { on_result(copy, std::move(r), request); });
      }
    }
    run_until(now_ + 50);
    heal();  // nodes that crashed while draining come back
    if (verbose_ && now_ % 5000 < 50) {
      for (auto& n : nodes_) {
        if (!n->up()) {
          log("node %llu down", static_cast<unsigned long long>(n->id()));
          continue;
        }
        const DriverStatus st = n->driver().status();
        log("node %llu: %s term %llu commit %llu applied %llu last %llu persisted %llu snapshot %llu voters %zu "
            "transferee %llu parked %zu proposals %zu",
            static_cast<unsigned long long>(n->id()), st.state.c_str(), static_cast<unsigned long long>(st.term),
            static_cast<unsigned long long>(st.commit_index), static_cast<unsigned long long>(st.applied_index),
            static_cast<unsigned long long>(st.last_index), static_cast<unsigned long long>(st.persisted_index),
            static_cast<unsigned long long>(st.snapshot_index), st.voters,
            static_cast<unsigned long long>(st.transferee), st.parked_commands, st.pending_proposals);
      }
    }
    const uint64_t l2 = leader();
    const bool empty = l2 != 0 && node(l2)->driver().state().total_messages() == 0 && retries_.empty() && in_flight_ == 0;
    if (empty) {
      if (quiet_since < 0) quiet_since = now_;
      if (now_ - quiet_since > 1000) break;
    } else {
      quiet_since = -1;
    }
  }
  if (failures_.empty() && (leader() == 0 || node(leader())->driver().state().total_messages() != 0 ||
                            !retries_.empty())) {
    fail("the cluster did not drain within " + std::to_string(kDrainBudgetMs / 1000) + " s after healing (leader " +
         std::to_string(leader()) + ", retries " + std::to_string(retries_.size()) + ", in flight " +
         std::to_string(in_flight_) + (in_flight_what_.empty() ? "" : ": " + in_flight_what_.begin()->second) + ")");
  }
  // Every replica catches up.
  run_until(now_ + 5000);
}

void World::check() {
  // Deliveries, from the committed history in log order.
  std::vector<Delivery> deliveries;
  std::map<std::string, std::pair<uint64_t, std::vector<uint64_t>>> removed_by_rid;  // first occurrence
  std::map<std::string, uint64_t> committed_puts;                                       // payload -> id
  std::map<std::string, std::pair<uint64_t, std::string>> put_at;                       // payload -> (index, mailbox)
  std::set<std::pair<std::string, uint64_t>> delayed_ids;  // (mailbox, id) of delayed puts
  std::map<std::string, uint64_t> last_purge;              // mailbox -> index of its last purge
  // The state machine's clock: entry times made monotonic (a new leader's
  // clock may be behind), as expiry and delays are decided.
  int64_t clock_ms = 0;
  for (const auto& [index, c] : committed_) {
    clock_ms = std::max(clock_ms, c.entry.leader_time_ms);
    for (size_t i = 0; i < c.results.size(); ++i) {
      const Command& cmd = c.entry.commands[i];
      const CommandResult& res = c.results[i];
      if (const auto* p = std::get_if<PutCommand>(&cmd)) {
        if (res.status.is_ok() && !res.deduplicated) {
          committed_puts.emplace(p->payload, res.put_id);
          put_at.emplace(p->payload, std::make_pair(index, p->mailbox));
          if (p->delay_ms > 0) delayed_ids.emplace(p->mailbox, res.put_id);
        }
      }
      if (const auto* purge = std::get_if<PurgeCommand>(&cmd); purge && !res.deduplicated) {
        last_purge[purge->mailbox] = index;
        g_totals.purged += res.count;
      }
      if (std::holds_alternative<RedriveCommand>(cmd) && !res.deduplicated) g_totals.redriven += res.count;
      if (std::holds_alternative<ExtendCommand>(cmd) && !res.deduplicated && res.status.is_ok()) {
        g_totals.extended += 1;
      }
      const auto* k = std::get_if<ConsumeCommand>(&cmd);
      if (k == nullptr || !res.status.is_ok()) continue;
      std::vector<uint64_t> ids;
      for (const auto& m : res.messages) {
        ids.push_back(m.id);
        deliveries.push_back(Delivery{index, deliveries.size(), k->mailbox, m.id, std::string(m.body->payload()), k->lease_ms > 0,
                                      clock_ms, m.enqueued_at_ms, res.deduplicated});
      }
      removed_by_rid.emplace(k->mailbox + "/" + k->rid, std::make_pair(index, ids));
    }
  }
  for (const auto& [payload, id] : acked_puts_) {
    auto it = committed_puts.find(payload);
    if (it == committed_puts.end()) {
      fail("acknowledged put " + std::to_string(id) + " (" + payload.substr(0, 20) + ") is not in the committed log");
    } else if (it->second != id) {
      fail("acknowledged put " + payload.substr(0, 20) + " got id " + std::to_string(id) + " but the log says " +
           std::to_string(it->second));
    }
  }
  for (const auto& [key, ids] : client_consumed_) {
    auto it = removed_by_rid.find(key);
    if (it == removed_by_rid.end()) {
      if (!ids.empty()) fail("consume " + key + " returned messages but is not in the committed log");
    } else if (it->second.second != ids) {
      fail("consume " + key + " returned other messages than the log says it removed");
    }
  }
  std::map<uint64_t, unsigned> unleased_count;
  std::map<std::string, uint64_t> last_id;
  std::set<std::string> delivered_payloads;
  std::set<std::pair<std::string, uint64_t>> ever_leased;
  for (const auto& d : deliveries) {
    if (d.leased) ever_leased.emplace(d.mailbox, d.id);
  }
  std::set<std::pair<std::string, uint64_t>> removed;
  for (const auto& d : deliveries) {
    if (!d.repeat && removed.count({d.mailbox, d.id})) {
      fail("message " + std::to_string(d.id) + " delivered again after a consume without a lease removed it");
    }
    if (!d.leased && !d.repeat) removed.emplace(d.mailbox, d.id);
    if (!d.leased) delivered_payloads.insert(d.payload);
    auto ttl = ttl_of_.find(d.payload);
    const int64_t delay = delay_of_.count(d.payload) ? delay_of_[d.payload] : 0;
    if (!d.repeat && ttl != ttl_of_.end() && d.at_ms >= d.enqueued_at_ms + delay + ttl->second) {
      fail("message " + std::to_string(d.id) + " delivered at " + std::to_string(d.at_ms) +
           ", at or after its expiry " + std::to_string(d.enqueued_at_ms + delay + ttl->second));
    }
    if (!d.repeat && delay > 0) g_totals.delayed_delivered += 1;
    if (!d.repeat && d.at_ms < d.enqueued_at_ms + delay) {
      fail("delayed message " + std::to_string(d.id) + " delivered at " + std::to_string(d.at_ms) +
           ", before it was due at " + std::to_string(d.enqueued_at_ms + delay));
    }
    if (d.leased || d.repeat) continue;
    if (++unleased_count[d.id] > 1) fail("message " + std::to_string(d.id) + " delivered twice without a lease");
    const bool dead_letter = d.mailbox.find(".dlq") != std::string::npos;
    // FIFO by id among messages visible together: a delayed message keeps
    // its (smaller) id and is delivered when due (docs/PROTOCOL.md).
    if (!dead_letter && !ever_leased.count({d.mailbox, d.id}) && !delayed_ids.count({d.mailbox, d.id})) {
      if (d.id <= last_id[d.mailbox]) {
        fail("FIFO broken in " + d.mailbox + ": " + std::to_string(d.id) + " after " +
             std::to_string(last_id[d.mailbox]));
      }
      last_id[d.mailbox] = d.id;
    }
  }
  for (const auto& d : deliveries) {
    if (d.leased && acked_leases_.count({d.mailbox, d.id})) delivered_payloads.insert(d.payload);
  }
  for (const auto& [payload, id] : acked_puts_) {
    if (delivered_payloads.count(payload)) continue;
    if (ttl_of_[payload] == kShortTtlMs) continue;  // may have expired first
    // A purge of its mailbox (or of its dead letters) after it was put may
    // have removed it.
    if (auto at = put_at.find(payload); at != put_at.end()) {
      const auto& [put_index, box] = at->second;
      auto purged = [&](const std::string& name) {
        auto it = last_purge.find(name);
        return it != last_purge.end() && it->second >= put_index;
      };
      if (purged(box) || purged(dead_letter_mailbox(box))) continue;
    }
    fail("acknowledged message " + std::to_string(id) + " (" + payload.substr(0, 20) + ") was never delivered");
  }
  std::map<std::pair<std::string, uint64_t>, uint64_t> removed_at;
  for (const auto& d : deliveries) {
    if (d.leased) continue;
    auto [pos, inserted] = removed_at.emplace(std::make_pair(d.mailbox, d.id), d.index);
    if (!inserted) pos->second = std::min(pos->second, d.index);
  }
  for (const auto& p : peeks_) {
    if (p.applied < p.issued_commit) {
      fail("stale peek: served at index " + std::to_string(p.applied) + ", but index " +
           std::to_string(p.issued_commit) + " was committed before it was issued");
    }
    if (p.id == 0) continue;
    auto it = removed_at.find({p.mailbox, p.id});
    if (it != removed_at.end() && it->second <= p.applied) {
      fail("peek at index " + std::to_string(p.applied) + " returned message " + std::to_string(p.id) +
           ", removed at index " + std::to_string(it->second));
    }
  }
}

std::vector<std::string> World::run() {
  setup();
  const int64_t end = seconds_ * 1000;
  int64_t next_fault = 500;
  while (now_ < end && failures_.empty()) {
    if (liveness_deadline_ != 0) {
      check_liveness();  // no other fault meanwhile
    } else if (now_ >= next_fault) {
      random_fault();
      next_fault = now_ + rng_.between(100, 1500);
    }
    probe_promotion();
    tick_clients();
    run_until(now_ + rng_.between(1, 10));
  }
  if (held_down_ != 0) {
    held_down_until_ = 0;
    held_down_ = 0;
  }
  if (failures_.empty()) drain();
  if (failures_.empty()) check();
  g_totals.committed += committed_.size();
  for (auto& n : nodes_) {
    g_totals.disk_errors += n->fs().injected_errors();
    if (n->up()) add_driver_totals(n->driver().status());
  }
  log("end: %zu committed entries, %llu crashes, %llu refusals on damage, %llu snapshot transfers",
      committed_.size(), static_cast<unsigned long long>(crashes_), static_cast<unsigned long long>(refusals_),
      static_cast<unsigned long long>(installs_));
  return failures_;
}

}  // namespace
}  // namespace mailbox::sim

int main(int argc, char** argv) {
  uint64_t first = 1;
  uint64_t seeds = 100;
  int64_t seconds = 20;
  bool verbose = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> uint64_t {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "replication_sim: %s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return std::strtoull(argv[++i], nullptr, 10);
    };
    if (arg == "--seeds") seeds = value();
    else if (arg == "--first") first = value();
    else if (arg == "--seed") {
      first = value();
      seeds = 1;
    } else if (arg == "--seconds") seconds = static_cast<int64_t>(value());
    else if (arg == "-v") verbose = true;
    else {
      std::fprintf(stderr, "usage: replication_sim [--seeds N] [--first S] [--seed S] [--seconds T] [-v]\n");
      return 2;
    }
  }
  mailbox::set_log_level(verbose ? mailbox::LogLevel::kDebug : mailbox::LogLevel::kError);
  unsigned passed = 0, failed = 0;
  for (uint64_t seed = first; seed < first + seeds; ++seed) {
    mailbox::sim::World world(seed, seconds, verbose);
    const auto failures = world.run();
    if (failures.empty()) {
      ++passed;
      continue;
    }
    ++failed;
    std::printf("seed %" PRIu64 " FAILED: %s\n", seed, failures.front().c_str());
    for (size_t i = 1; i < failures.size() && i < 5; ++i) std::printf("  also: %s\n", failures[i].c_str());
    std::printf("  replay: %s --seed %" PRIu64 " --seconds %lld -v\n", argv[0], seed, static_cast<long long>(seconds));
    std::fflush(stdout);
  }
  const auto& t = mailbox::sim::g_totals;
  std::printf("exercised: %llu committed entries, %llu kills, %llu crashes in a log write (%llu torn tails cut), "
              "%llu disk errors injected, %llu refusals to start on a flipped bit, %llu snapshot transfers, %llu "
              "node replacements, %llu leaders killed mid-promotion, %llu silent leaders forgotten by non-voters, "
              "%llu requests refused by a leader on a full disk, %llu leaderships handed off a full disk\n",
              static_cast<unsigned long long>(t.committed), static_cast<unsigned long long>(t.kills),
              static_cast<unsigned long long>(t.crashes_mid_write), static_cast<unsigned long long>(t.torn_repairs),
              static_cast<unsigned long long>(t.disk_errors), static_cast<unsigned long long>(t.refusals),
              static_cast<unsigned long long>(t.transfers), static_cast<unsigned long long>(t.replacements),
              static_cast<unsigned long long>(t.promotion_probes), static_cast<unsigned long long>(t.leaders_forgotten),
              static_cast<unsigned long long>(t.refused_disk_full),
              static_cast<unsigned long long>(t.disk_full_transfers));
  std::printf("v2 operations: %llu delayed messages delivered, %llu leases extended, %llu messages purged, %llu "
              "redriven\n",
              static_cast<unsigned long long>(t.delayed_delivered), static_cast<unsigned long long>(t.extended),
              static_cast<unsigned long long>(t.purged), static_cast<unsigned long long>(t.redriven));
  std::printf("%u passed, %u failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
