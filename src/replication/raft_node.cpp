#include "replication/raft_node.hpp"

#include <pthread.h>
#include <uv.h>

#include <chrono>
#include <condition_variable>
#include <future>
#include <random>
#include <set>

#include "core/assert.hpp"
#include "core/limits.hpp"
#include "replication/file_system.hpp"
#include "replication/log_store.hpp"
#include "replication/node_startup.hpp"
#include "replication/node_storage.hpp"
#include "replication/raft_driver.hpp"
#include "replication/snapshot_store.hpp"
#include "replication/transport.hpp"
#include "util/latency_histogram.hpp"
#include "util/log.hpp"
#include "util/no_blocking_sends.hpp"

namespace mailbox {
namespace {

constexpr uint64_t kStatusRefreshIntervalMs = 20;  // also the driver's tick
// The mailbox overview: recomputed at most this often, while it was asked
// for within the interest window.
constexpr int64_t kOverviewIntervalMs = 1000;
constexpr int64_t kOverviewInterestMs = 30'000;
constexpr int64_t kPrepareIntervalMs = 200;       // the helper checks prepared segments
constexpr int kMaxLogWriteRetries = 3;            // an EIO is retried, then fatal
constexpr int64_t kLogWriteRetryMs = 10;
constexpr int64_t kNoSpaceRetryMs = 100;          // a full disk is retried until space returns
constexpr size_t kMaxOpenSnapshotFiles = 4;       // files kept open for transfers
constexpr uint64_t kSlowIterationUs = 5'000;
constexpr unsigned kPreparedSegments = 1;           // zero-filled segments kept ready ahead of the writer

int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
uint64_t steady_us() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

// A thread that runs posted tasks in order.
class Worker {
 public:
  explicit Worker(const char* name) : name_(name) {}
  ~Worker() { stop(); }
  void start() {
    thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), name_);
      run();
    });
  }
  void post(std::function<void()> task) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    tasks_.push_back(std::move(task));
    ready_.notify_one();
  }
  // Runs what is queued, then stops.
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      ready_.notify_one();
    }
    if (thread_.joinable()) thread_.join();
  }

 private:
  void run() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
        if (tasks_.empty()) return;
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }
  const char* name_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> tasks_;  // bounded by the driver: one snapshot, chunk reads per transfer
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace

// Everything the loop thread owns, and the threads around it.
struct RaftNode::Impl : DriverEnv, TransportHandler {
  explicit Impl(const RaftNodeOptions& o) : options(o) {}

  RaftNodeOptions options;
  PosixFileSystem fs;
  std::unique_ptr<LogStore> log;
  std::unique_ptr<TermVoteStore> term_vote;
  std::unique_ptr<RaftDriver> driver;
  std::unique_ptr<Transport> transport;

  uv_loop_t loop{};
  uv_async_t wakeup{};       // the inbox has work
  uv_async_t completions{};  // I/O threads finished something
  uv_timer_t raft_timer{};
  uv_timer_t tick_timer{};
  uv_prepare_t before_poll{};
  uv_check_t after_poll{};
  bool loop_initialized = false;
  bool handles_initialized = false;
  bool closing = false;
  uint64_t iteration_started_us = 0;

  // The log writer: one FIFO of appends and installs.
  struct LogOp {
    bool install = false;
    uint64_t ticket = 0;
    std::vector<LogEntry> entries;
    InstallJob job;
  };
  std::thread writer;
  std::mutex writer_mutex;
  std::condition_variable writer_ready;
  std::deque<LogOp> writer_queue;  // bounded by the driver's back-pressure on unpersisted entries
  bool writer_stopping = false;
  Worker helper{"mbx-storage"};
  Worker snapshots{"mbx-snapshots"};
  // Snapshot worker only: files kept open for transfers (by path).
  std::deque<std::pair<std::string, std::unique_ptr<File>>> open_snapshot_files;

  // Completions from the I/O threads, run on the loop.
  std::mutex completion_mutex;
  std::vector<std::function<void()>> completion_queue;
  bool loop_accepts_completions = false;

  // Snapshots being received, by sender.
  struct Receiving {
    uint64_t transfer = 0;
    std::shared_ptr<SnapshotStager> stager;
  };
  std::map<uint64_t, Receiving> receiving;

  // The inbox, shared under `mutex`.
  struct InboxCommand {
    Command command;
    CommandCallback done;
    int64_t wait_ms = 0;
    size_t held_bytes = 0;
  };
  std::mutex mutex;
  std::vector<InboxCommand> inbox_commands;
  std::vector<std::pair<ReadRequest, ReadCallback>> inbox_reads;
  std::vector<std::pair<MembershipRequest, StatusCallback>> inbox_membership;
  struct InboxForward {
    uint64_t to = 0;
    std::string request;
    int64_t timeout_ms = 0;
    ForwardCallback done;
  };
  std::vector<InboxForward> inbox_forwards;
  bool accepting = false;
  bool stop_requested = false;

  // Views for other threads.
  std::atomic<bool> running{false};
  std::atomic<bool> is_leader{false};
  std::atomic<uint64_t> leader_id{0};
  std::atomic<size_t> voters{0};
  std::atomic<bool> sole_voter{false};
  std::atomic<bool> disk_full{false};
  mutable std::mutex status_mutex;
  RaftNodeStatus status_view;  // guarded by status_mutex
  MailboxOverview overview_view;  // guarded by status_mutex
  std::atomic<int64_t> overview_wanted_until_ms{0};
  int64_t overview_computed_ms = 0;  // loop thread
  LatencyHistogram loop_iterations;
  LatencyHistogram log_writes;
  std::atomic<uint64_t> entries_written{0};

  // Forwarding (loop thread): requests handed to other nodes, by id.
  struct PendingForward {
    uint64_t to = 0;
    std::string request;  // kept until sent
    int64_t send_deadline_ms = 0;  // not sent by then: `unavailable`
    int64_t deadline_ms = 0;       // not answered by then: `unknown_outcome`
    bool sent = false;
    ForwardCallback done;
    // The deadline that applies now.
    int64_t active_deadline_ms() const { return sent ? deadline_ms : send_deadline_ms; }
  };
  std::map<uint64_t, PendingForward> forwards;
  // The same forwards by (active deadline, id), and the ids not sent yet:
  // the forward timer takes only the due ones and tries only the unsent
  // ones, never walking the rest (a long-poll handed to the leader waits
  // here for its whole wait: up to limits::kMaxPendingForwards of them).
  std::set<std::pair<int64_t, uint64_t>> forward_deadlines;
  std::set<uint64_t> unsent_forwards;
  uint64_t next_forward_id = 1;
  uv_timer_t forward_timer{};  // runs while a request waits to be sent or answered
  std::shared_ptr<ForwardSlot> forward_slot;
  // Answers come from the server's threads, possibly after this node
  // stopped: they reach the loop through this gate, closed by stop().
  struct Gate {
    std::mutex mutex;
    Impl* impl = nullptr;  // null once stopped
  };
  std::shared_ptr<Gate> gate = std::make_shared<Gate>();

  void start_forward(InboxForward f);
  bool try_send_forward(uint64_t id, PendingForward& f);
  void on_forward_timer();
  void finish_forward(std::map<uint64_t, PendingForward>::iterator it, Status status, std::string reply);

  // --- start and stop (loop thread)
  Status open();
  void begin_close();

  // --- loop handlers
  void on_wakeup();
  void on_completions();
  void on_tick();
  void refresh_status();
  void post_to_loop(std::function<void()> fn);

  // --- log writer thread
  void run_writer();

  // --- DriverEnv
  int64_t monotonic_ms() override { return steady_ms(); }
  int64_t wall_clock_ms() override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  uint32_t random_seed() override { return std::random_device{}(); }
  IoStatus save_term_vote(uint64_t term, uint64_t voted_for) override { return term_vote->save(term, voted_for); }
  void append_entries(uint64_t ticket, std::vector<LogEntry> entries) override {
    std::lock_guard<std::mutex> lock(writer_mutex);
    LogOp op;
    op.ticket = ticket;
    op.entries = std::move(entries);
    writer_queue.push_back(std::move(op));
    writer_ready.notify_one();
  }
  void install_snapshot(uint64_t ticket, InstallJob job) override {
    std::lock_guard<std::mutex> lock(writer_mutex);
    LogOp op;
    op.install = true;
    op.ticket = ticket;
    op.job = std::move(job);
    writer_queue.push_back(std::move(op));
    writer_ready.notify_one();
  }
  void compact_log(uint64_t index) override {
    helper.post([this, index] {
      IoStatus s = log->compact(index);
      if (!s.is_ok()) log_warn("cannot delete old log segments: %s", s.message().c_str());
    });
  }
  void write_snapshot(uint64_t ticket, SnapshotJob job) override;
  void load_snapshot(uint64_t ticket, std::string path) override;
  void remove_snapshot(std::string path) override {
    helper.post([this, path] {
      if (fs.remove(path).is_ok()) fs.sync_dir(snapshot_dir_of(options.data_dir));
    });
  }
  void send(const raft_message& message) override {
    std::string body;
    encode_raft_message(message, &body);
    transport->send(message.server_id, message.server_address, std::move(body));
  }
  void send_snapshot(const raft_message& message, const std::string& path) override {
    std::unique_ptr<File> file;
    uint64_t bytes = 0;
    if (!fs.open(path, OpenMode::kRead, &file).is_ok() || !file->size(&bytes).is_ok()) {
      log_warn("cannot open snapshot %s to send it", path.c_str());
      return;
    }
    transport->send_snapshot(message.server_id, message.server_address, message, path, bytes);
  }
  void arm_timer(int64_t at_ms) override {
    const int64_t delay = std::max<int64_t>(0, at_ms - steady_ms());
    uv_timer_start(&raft_timer, [](uv_timer_t* t) { static_cast<Impl*>(t->data)->driver->on_timeout(); },
                   static_cast<uint64_t>(delay), 0);
  }
  std::string snapshot_dir() override { return snapshot_dir_of(options.data_dir); }
  [[noreturn]] void fatal(const std::string& what) override {
    log_error("replication: %s; exiting so that a supervisor restarts this node from its durable state",
              what.c_str());
    std::abort();
  }

  // --- TransportHandler
  void on_raft_message(uint64_t from, const std::string& from_address, DecodedMessage message) override {
    driver->on_message(std::move(message), from, from_address);
  }
  bool on_snapshot_chunk(uint64_t from, const std::string& from_address, uint64_t transfer,
                         const raft_message& metadata, uint64_t file_bytes, uint64_t offset,
                         std::string_view bytes) override;
  void on_snapshot_abandoned(uint64_t from, uint64_t transfer) override {
    auto it = receiving.find(from);
    if (it != receiving.end() && it->second.transfer == transfer) receiving.erase(it);
  }
  void read_snapshot_chunk(const std::string& path, uint64_t offset, size_t length,
                           std::function<void(bool ok, std::string bytes)> done) override;
  void on_forward(uint64_t from, uint64_t connection, uint64_t id, std::string_view request) override;
  void on_forward_reply(uint64_t to, uint64_t id, std::string_view reply) override {
    auto it = forwards.find(id);
    if (it == forwards.end() || it->second.to != to) return;  // timed out meanwhile
    finish_forward(it, Status::ok(), std::string(reply));
  }
  void on_forward_lost(uint64_t to, uint64_t id) override {
    auto it = forwards.find(id);
    if (it == forwards.end() || it->second.to != to) return;
    finish_forward(it, Status::error(ErrorCode::kUnknownOutcome,
                                     "the connection to node " + std::to_string(to) +
                                         " closed before it answered; the request may have been applied: retry "
                                         "with the same rid"),
                   std::string());
  }
};

// ---------------------------------------------------------------- start

Status RaftNode::Impl::open() {
  int rv = uv_loop_init(&loop);
  if (rv != 0) return Status::error(ErrorCode::kInternal, std::string("uv_loop_init: ") + uv_strerror(rv));
  loop_initialized = true;
  log = std::make_unique<LogStore>(fs, log_dir_of(options.data_dir),
                                   LogStoreOptions{options.node_id, options.log_segment_bytes, kPreparedSegments});
  term_vote = std::make_unique<TermVoteStore>(fs, raft_state_path_of(options.data_dir), options.node_id);
  StartupOptions startup;
  startup.identity = NodeIdentity{options.node_id, options.cluster_name};
  startup.initial_voters = options.initial_voters;
  startup.recover = options.recover;
  DurableState durable;
  std::vector<std::string> notes;
  Status s = open_node_storage(fs, options.data_dir, startup, *log, *term_vote, &durable, &notes);
  for (const auto& note : notes) {
    if (note.rfind("bootstrapped", 0) == 0 || note.rfind("recovered", 0) == 0) {
      log_info("%s in %s", note.c_str(), options.data_dir.c_str());
    } else {
      log_warn("data directory: %s", note.c_str());
    }
  }
  if (!s.is_ok()) return s;

  uv_async_init(&loop, &wakeup, [](uv_async_t* h) { static_cast<Impl*>(h->data)->on_wakeup(); });
  wakeup.data = this;
  uv_async_init(&loop, &completions, [](uv_async_t* h) { static_cast<Impl*>(h->data)->on_completions(); });
  completions.data = this;
  uv_timer_init(&loop, &raft_timer);
  raft_timer.data = this;
  uv_timer_init(&loop, &tick_timer);
  tick_timer.data = this;
  uv_timer_init(&loop, &forward_timer);
  forward_timer.data = this;
  uv_prepare_init(&loop, &before_poll);
  before_poll.data = this;
  uv_check_init(&loop, &after_poll);
  after_poll.data = this;
  handles_initialized = true;
  // A loop iteration: from the end of its poll for I/O to the start of the next.
  uv_check_start(&after_poll, [](uv_check_t* h) { static_cast<Impl*>(h->data)->iteration_started_us = steady_us(); });
  uv_prepare_start(&before_poll, [](uv_prepare_t* h) {
    auto* self = static_cast<Impl*>(h->data);
    if (self->iteration_started_us != 0) self->loop_iterations.record(steady_us() - self->iteration_started_us);
  });
  {
    std::lock_guard<std::mutex> lock(completion_mutex);
    loop_accepts_completions = true;
  }

  writer = std::thread([this] {
    pthread_setname_np(pthread_self(), "mbx-log-writer");
    run_writer();
  });
  helper.start();
  snapshots.start();
  helper.post([this] { log->prepare(); });

  transport = std::make_unique<Transport>(&loop, TransportOptions{options.node_id, options.cluster_name,
                                                                  options.raft_address, options.transport_tls},
                                          *this);
  s = transport->listen();
  if (!s.is_ok()) return s;

  DriverOptions d;
  d.node_id = options.node_id;
  d.address = options.raft_address;
  d.election_timeout_ms = options.election_timeout_ms;
  d.heartbeat_timeout_ms = options.heartbeat_timeout_ms;
  d.max_inflight_entries = options.max_inflight_entries;
  d.snapshot_threshold_entries = options.snapshot_threshold_entries;
  d.min_snapshot_log_bytes = options.min_snapshot_log_bytes;
  d.snapshot_max_log_bytes = options.snapshot_max_log_bytes;
  d.snapshot_trailing_bytes = options.snapshot_trailing_bytes;
  d.snapshot_trailing_entries = options.snapshot_trailing_entries;
  d.leader_wait_ms = options.leader_wait_ms;
  d.state_config = options.state_config;
  driver = std::make_unique<RaftDriver>(d, *this);
  if (durable.has_snapshot) {
    log_info("loading snapshot %s (%llu bytes of state)", durable.snapshot_file.path.c_str(),
             static_cast<unsigned long long>(durable.snapshot.data_bytes));
  }
  s = driver->start(std::move(durable));
  if (!s.is_ok()) return s;
  uv_timer_start(&tick_timer, [](uv_timer_t* t) { static_cast<Impl*>(t->data)->on_tick(); }, kStatusRefreshIntervalMs,
                 kStatusRefreshIntervalMs);
  refresh_status();
  return Status::ok();
}

// ---------------------------------------------------------------- loop

void RaftNode::Impl::post_to_loop(std::function<void()> fn) {
  std::lock_guard<std::mutex> lock(completion_mutex);
  if (!loop_accepts_completions) return;
  completion_queue.push_back(std::move(fn));
  uv_async_send(&completions);
}

void RaftNode::Impl::on_completions() {
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard<std::mutex> lock(completion_mutex);
    batch.swap(completion_queue);
  }
  for (auto& fn : batch) {
    if (closing) break;
    fn();
  }
}

void RaftNode::Impl::on_wakeup() {
  std::vector<InboxCommand> commands;
  std::vector<std::pair<ReadRequest, ReadCallback>> reads;
  std::vector<std::pair<MembershipRequest, StatusCallback>> changes;
  std::vector<InboxForward> to_forward;
  bool stop = false;
  {
    std::lock_guard<std::mutex> lock(mutex);
    commands.swap(inbox_commands);
    reads.swap(inbox_reads);
    changes.swap(inbox_membership);
    to_forward.swap(inbox_forwards);
    stop = stop_requested;
  }
  for (auto& f : to_forward) start_forward(std::move(f));
  for (auto& c : commands) driver->submit_command(std::move(c.command), std::move(c.done), c.wait_ms, c.held_bytes);
  for (auto& [read, done] : reads) driver->submit_read(std::move(read), std::move(done));
  for (auto& [request, done] : changes) {
    // The status others read shows the new configuration before the
    // caller hears that the change is done.
    driver->submit_membership(std::move(request), [this, done = std::move(done)](Status&& s) mutable {
      refresh_status();
      done(std::move(s));
    });
  }
  if (stop) {
    begin_close();
    return;
  }
  driver->flush();
}

void RaftNode::Impl::on_tick() {
  if (closing) return;
  driver->tick();
  refresh_status();
  const int64_t now = steady_ms();
  if (now < overview_wanted_until_ms.load() && now - overview_computed_ms >= kOverviewIntervalMs) {
    overview_computed_ms = now;
    const uint64_t started_us = steady_us();
    MailboxOverview o = driver->mailbox_overview();
    o.walk_us = steady_us() - started_us;
    std::lock_guard<std::mutex> lock(status_mutex);
    overview_view = std::move(o);
  }
  if (log->prepared_count() < kPreparedSegments) helper.post([this] { log->prepare(); });
}

void RaftNode::Impl::refresh_status() {
  const DriverStatus d = driver->status();
  if (d.state == "unavailable" && !closing) {
    log_error("the Raft instance became unavailable; exiting so a supervisor restarts this node");
    std::abort();
  }
  is_leader.store(d.is_leader);
  leader_id.store(d.leader_id);
  voters.store(d.voters);
  sole_voter.store(d.sole_voter);
  disk_full.store(log->out_of_space());
  RaftNodeStatus s;
  s.running = running.load();
  s.is_leader = d.is_leader;
  s.state = d.state;
  s.configuration = d.configuration;
  s.voters = d.voters;
  s.leader_id = d.leader_id;
  s.term = d.term;
  s.commit_index = d.commit_index;
  s.applied_index = d.applied_index;
  s.last_index = d.last_index;
  s.persisted_index = d.persisted_index;
  s.snapshot_index = d.snapshot_index;
  s.parked_waiters = d.parked_waiters;
  s.parked_waiter_bytes = d.parked_waiter_bytes;
  s.waiters_refused = d.waiters_refused;
  s.snapshots_taken = d.snapshots_taken;
  s.snapshots_installed = d.snapshots_installed;
  s.longest_snapshot_stall_us = d.longest_snapshot_stall_us;
  s.messages = d.messages;
  s.log_disk_bytes = log->disk_bytes();
  s.log_disk_full = d.log_disk_full || log->out_of_space();
  s.refused_disk_full = d.refused_disk_full;
  s.disk_full_transfers = d.disk_full_transfers;
  s.unknown_outcomes = d.unknown_outcomes;
  s.loop_iterations = loop_iterations.total();
  s.loop_iteration_max_us = loop_iterations.max_us();
  uint64_t over = 0;
  for (size_t i = 0; i < LatencyHistogram::kBuckets; ++i) {
    if (i >= LatencyHistogram::kBoundsUs.size() || LatencyHistogram::kBoundsUs[i] > kSlowIterationUs) {
      over += loop_iterations.count(i);
    }
  }
  s.loop_iterations_over_5ms = over;
  s.log_writes = log_writes.total();
  s.log_write_p50_us = log_writes.quantile_bound_us(0.5);
  s.log_write_p99_us = log_writes.quantile_bound_us(0.99);
  s.entries_per_write_x100 = s.log_writes == 0 ? 0 : entries_written.load() * 100 / s.log_writes;
  const TransportCounters& t = transport->counters();
  s.transport_bytes_sent = t.bytes_sent;
  s.transport_bytes_received = t.bytes_received;
  s.transport_messages_dropped = t.messages_dropped;
  s.transport_connections_refused = t.connections_refused;
  s.forwards_sent = t.forwards_sent;
  s.forwards_received = t.forwards_received;
  s.forwards_lost = t.forwards_lost;
  s.forwards_pending = forwards.size();
  s.followers = d.followers;
  s.snapshot_bytes_written = d.snapshot_bytes_written;
  s.loop_iteration_us = loop_iterations.snapshot();
  s.log_write_us = log_writes.snapshot();
  s.log_fsync_us = log->fsync_timings().snapshot();
  s.apply_us = driver->timings().apply.snapshot();
  s.commit_us = driver->timings().commit.snapshot();
  s.snapshot_us = driver->timings().snapshot.snapshot();
  std::lock_guard<std::mutex> lock(status_mutex);
  status_view = std::move(s);
}

// ---------------------------------------------------------------- log writer

// Writes what is queued, in order: consecutive appends that continue each
// other go in one write and one fdatasync (group commit). A full disk waits
// for space (the node says so in its status); EIO is retried, then fatal.
void RaftNode::Impl::run_writer() {
  bool disk_full_reported = false;  // the driver was told the disk is full
  for (;;) {
    std::deque<LogOp> batch;
    {
      std::unique_lock<std::mutex> lock(writer_mutex);
      writer_ready.wait(lock, [this] { return writer_stopping || !writer_queue.empty(); });
      if (writer_stopping) return;
      batch.swap(writer_queue);
    }
    while (!batch.empty()) {
      std::vector<uint64_t> tickets;
      IoStatus status;
      const uint64_t started = steady_us();
      size_t written_entries = 0;
      if (batch.front().install) {
        LogOp op = std::move(batch.front());
        batch.pop_front();
        tickets.push_back(op.ticket);
        for (int attempt = 0;; ++attempt) {
          status = fs.rename(op.job.staged_path, op.job.final_path);
          if (status.is_ok() || status.error == ENOENT) {
            // (ENOENT: renamed by an attempt whose directory fsync failed)
            status = fs.sync_dir(snapshot_dir_of(options.data_dir));
          }
          if (status.is_ok()) status = log->reset(op.job.index + 1);
          if (status.is_ok() || attempt >= kMaxLogWriteRetries) break;
          std::this_thread::sleep_for(std::chrono::milliseconds(kLogWriteRetryMs));
        }
      } else {
        std::vector<LogEntry> all;
        while (!batch.empty() && !batch.front().install &&
               (all.empty() || batch.front().entries.front().index == all.back().index + 1)) {
          LogOp op = std::move(batch.front());
          batch.pop_front();
          tickets.push_back(op.ticket);
          for (auto& e : op.entries) all.push_back(std::move(e));
        }
        written_entries = all.size();
        for (int attempt = 0;; ++attempt) {
          status = log->append(all.data(), all.size());
          if (status.is_ok()) break;
          if (status.is_no_space()) {
            // Space may come back (an operator frees some, old segments go);
            // meanwhile the driver refuses client work if it leads.
            if (!disk_full_reported) {
              disk_full_reported = true;
              post_to_loop([this] { driver->on_log_space(true); });
            }
            log_error("the Raft log cannot grow: %s; retrying every %lld ms", status.message().c_str(),
                      static_cast<long long>(kNoSpaceRetryMs));
            std::this_thread::sleep_for(std::chrono::milliseconds(kNoSpaceRetryMs));
            std::lock_guard<std::mutex> lock(writer_mutex);
            if (writer_stopping) return;
            continue;
          }
          if (attempt >= kMaxLogWriteRetries) break;
          std::this_thread::sleep_for(std::chrono::milliseconds(kLogWriteRetryMs));
        }
      }
      if (status.is_ok() && disk_full_reported) {
        disk_full_reported = false;
        post_to_loop([this] { driver->on_log_space(false); });
      }
      log_writes.record(steady_us() - started);
      entries_written.fetch_add(written_entries, std::memory_order_relaxed);
      post_to_loop([this, tickets = std::move(tickets), status] {
        for (uint64_t ticket : tickets) driver->on_log_written(ticket, status);
      });
    }
  }
}

// ---------------------------------------------------------------- snapshots

void RaftNode::Impl::write_snapshot(uint64_t ticket, SnapshotJob job) {
  snapshots.post([this, ticket, job = std::move(job)] {
    const auto started = std::chrono::steady_clock::now();
    const IoStatus s = write_snapshot_job(fs, snapshot_dir_of(options.data_dir), job);
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
    if (s.is_ok()) {
      log_info("wrote snapshot %s (%llu bytes) in %lld ms", job.path.c_str(),
               static_cast<unsigned long long>(job.meta.file_bytes()), static_cast<long long>(ms));
    }
    post_to_loop([this, ticket, s] { driver->on_snapshot_written(ticket, s); });
  });
}

void RaftNode::Impl::load_snapshot(uint64_t ticket, std::string path) {
  snapshots.post([this, ticket, path] {
    SnapshotReader reader(fs, path);
    Status s = reader.open();
    if (s.is_ok()) s = reader.verify();
    std::string data;
    if (s.is_ok()) s = reader.read_data(&data);
    auto state = std::make_shared<std::unique_ptr<StateMachine>>(std::make_unique<StateMachine>());
    if (s.is_ok() && !(*state)->restore(data)) s = Status::error(ErrorCode::kInternal, "the snapshot does not decode");
    post_to_loop([this, ticket, s, state]() mutable { driver->on_snapshot_loaded(ticket, s, std::move(*state)); });
  });
}

void RaftNode::Impl::read_snapshot_chunk(const std::string& path, uint64_t offset, size_t length,
                                         std::function<void(bool ok, std::string bytes)> done) {
  snapshots.post([this, path, offset, length, done = std::move(done)]() mutable {
    // Keep the file open: a newer snapshot may remove it while it streams.
    File* file = nullptr;
    for (auto& [p, f] : open_snapshot_files) {
      if (p == path) file = f.get();
    }
    if (file == nullptr) {
      std::unique_ptr<File> opened;
      if (fs.open(path, OpenMode::kRead, &opened).is_ok()) {
        file = opened.get();
        open_snapshot_files.emplace_back(path, std::move(opened));
        if (open_snapshot_files.size() > kMaxOpenSnapshotFiles) open_snapshot_files.pop_front();
      }
    }
    std::string bytes(length, '\0');
    size_t read = 0;
    const bool ok = file != nullptr && file->read_at(offset, bytes.data(), length, &read).is_ok() && read == length;
    post_to_loop([done = std::move(done), ok, bytes = std::move(bytes)]() mutable { done(ok, std::move(bytes)); });
  });
}

// A snapshot streamed from the leader: each chunk written to its staging
// file as it comes (page cache: cheap on the loop); when whole, it is
// fsynced and checked on the snapshot worker, then handed to the driver.
bool RaftNode::Impl::on_snapshot_chunk(uint64_t from, const std::string& from_address, uint64_t transfer,
                                       const raft_message& metadata, uint64_t file_bytes, uint64_t offset,
                                       std::string_view bytes) {
  if (offset == 0 && bytes.empty()) {
    Receiving r;
    r.transfer = transfer;
    r.stager = std::make_shared<SnapshotStager>(
        fs,
        join_path(snapshot_dir_of(options.data_dir),
                  "incoming-" + std::to_string(from) + "-" + std::to_string(transfer) + ".tmp"),
        file_bytes);
    if (!r.stager->open().is_ok()) return false;
    receiving[from] = std::move(r);
    log_info("receiving snapshot %llu (%llu bytes) from node %llu",
             static_cast<unsigned long long>(metadata.install_snapshot.last_index),
             static_cast<unsigned long long>(file_bytes), static_cast<unsigned long long>(from));
    return true;
  }
  auto it = receiving.find(from);
  if (it == receiving.end() || it->second.transfer != transfer) return false;
  auto stager = it->second.stager;
  if (!stager->write(offset, bytes).is_ok()) {
    receiving.erase(it);
    return false;
  }
  if (stager->received() < stager->expected()) return true;
  receiving.erase(it);
  raft_message meta = metadata;
  snapshots.post([this, stager, meta, from, from_address] {
    SnapshotMeta got;
    std::string configuration;
    Status s = stager->finish(&got, &configuration);
    if (s.is_ok() && got.index != meta.install_snapshot.last_index) {
      s = Status::error(ErrorCode::kInternal, "the staged snapshot is not the announced one");
    }
    if (!s.is_ok()) {
      log_warn("a snapshot from node %llu is unusable: %s", static_cast<unsigned long long>(from), s.message.c_str());
      return;  // the stager removes its file; the leader sends it again
    }
    stager->release();
    const std::string staged = stager->path();
    post_to_loop([this, meta, from, from_address, staged, configuration] {
      driver->on_snapshot_received(meta, from, from_address, staged, configuration);
    });
  });
  return true;
}

// ---------------------------------------------------------------- forwarding

void RaftNode::Impl::start_forward(InboxForward f) {
  if (forwards.size() >= limits::kMaxPendingForwards) {
    f.done(Status::error(ErrorCode::kUnavailable, "too many requests waiting for another node; retry later"),
           std::string());
    return;
  }
  bool known = false;
  for (const RaftServerInfo& server : driver->configuration()) known = known || server.id == f.to;
  if (!known || f.to == options.node_id) {
    f.done(Status::error(ErrorCode::kUnavailable,
                         "node " + std::to_string(f.to) + " is not another server of this cluster's configuration"),
           std::string());
    return;
  }
  const uint64_t id = next_forward_id++;
  PendingForward& p = forwards[id];
  p.to = f.to;
  p.request = std::move(f.request);
  const int64_t now = steady_ms();
  p.deadline_ms = now + std::max<int64_t>(0, f.timeout_ms);
  p.send_deadline_ms = std::min(p.deadline_ms, now + limits::kMaxLeaderWaitMs);
  p.done = std::move(f.done);
  forward_deadlines.emplace(p.send_deadline_ms, id);
  unsent_forwards.insert(id);
  try_send_forward(id, p);
  if (!uv_is_active(reinterpret_cast<uv_handle_t*>(&forward_timer))) {
    uv_timer_start(&forward_timer, [](uv_timer_t* t) { static_cast<Impl*>(t->data)->on_forward_timer(); },
                   static_cast<uint64_t>(limits::kForwardRetryMs), static_cast<uint64_t>(limits::kForwardRetryMs));
  }
}

// Sends it if the node is in the configuration and reachable now.
bool RaftNode::Impl::try_send_forward(uint64_t id, PendingForward& f) {
  for (const RaftServerInfo& server : driver->configuration()) {
    if (server.id != f.to || server.id == options.node_id) continue;
    if (!transport->forward(server.id, server.address, id, f.request)) return false;
    forward_deadlines.erase({f.send_deadline_ms, id});
    f.sent = true;
    forward_deadlines.emplace(f.deadline_ms, id);
    unsent_forwards.erase(id);
    std::string().swap(f.request);
    return true;
  }
  return false;
}

void RaftNode::Impl::on_forward_timer() {
  if (closing) return;
  for (auto u = unsent_forwards.begin(); u != unsent_forwards.end();) {
    const uint64_t id = *u++;  // a send erases it from the set
    auto it = forwards.find(id);
    MAILBOX_ASSERT(it != forwards.end(), "an unsent forward is pending");
    try_send_forward(id, it->second);
  }
  const int64_t now = steady_ms();
  while (!forward_deadlines.empty() && forward_deadlines.begin()->first <= now) {
    auto it = forwards.find(forward_deadlines.begin()->second);
    MAILBOX_ASSERT(it != forwards.end(), "a forward's deadline belongs to a pending forward");
    const uint64_t to = it->second.to;
    finish_forward(it,
                   it->second.sent
                       ? Status::error(ErrorCode::kUnknownOutcome,
                                       "node " + std::to_string(to) +
                                           " did not answer in time; the request may have been applied: retry "
                                           "with the same rid")
                       : Status::error(ErrorCode::kUnavailable, "cannot reach node " + std::to_string(to) + "; retry"),
                   std::string());
  }
  if (forwards.empty()) uv_timer_stop(&forward_timer);
}

void RaftNode::Impl::finish_forward(std::map<uint64_t, PendingForward>::iterator it, Status status, std::string reply) {
  const size_t erased = forward_deadlines.erase({it->second.active_deadline_ms(), it->first});
  MAILBOX_ASSERT(erased == 1, "every pending forward has one deadline entry");
  unsent_forwards.erase(it->first);
  ForwardCallback done = std::move(it->second.done);
  forwards.erase(it);
  done(std::move(status), std::move(reply));
}

// A request another node handed here: to the server's handler; its answer
// comes back to the loop and leaves on the connection it came in on.
void RaftNode::Impl::on_forward(uint64_t from, uint64_t connection, uint64_t id, std::string_view request) {
  ForwardHandler handler;
  {
    std::lock_guard<std::mutex> lock(forward_slot->mutex);
    handler = forward_slot->handler;
  }
  if (!handler) return;  // nobody answers: the sender's time runs out
  handler(from, std::string(request), [gate = gate, connection, id](std::string reply) {
    std::lock_guard<std::mutex> lock(gate->mutex);
    Impl* impl = gate->impl;
    if (impl == nullptr) return;
    impl->post_to_loop([impl, connection, id, reply = std::move(reply)] {
      impl->transport->reply_forward(connection, id, reply);
    });
  });
}

// ---------------------------------------------------------------- stop

void RaftNode::Impl::begin_close() {
  if (closing) return;
  closing = true;
  driver->stop();  // pending requests are answered
  {
    std::lock_guard<std::mutex> lock(completion_mutex);
    loop_accepts_completions = false;
    completion_queue.clear();
  }
  receiving.clear();
  // Requests handed to other nodes: their answers will not be read.
  while (!forwards.empty()) {
    auto it = forwards.begin();
    const bool sent = it->second.sent;
    finish_forward(it,
                   sent ? Status::error(ErrorCode::kUnknownOutcome,
                                        "the server is shutting down; the request may have been applied: retry with "
                                        "the same rid")
                        : Status::error(ErrorCode::kUnavailable, "the server is shutting down"),
                   std::string());
  }
  uv_timer_stop(&raft_timer);
  uv_timer_stop(&tick_timer);
  uv_timer_stop(&forward_timer);
  for (uv_handle_t* h : {reinterpret_cast<uv_handle_t*>(&raft_timer), reinterpret_cast<uv_handle_t*>(&tick_timer),
                         reinterpret_cast<uv_handle_t*>(&forward_timer),
                         reinterpret_cast<uv_handle_t*>(&wakeup), reinterpret_cast<uv_handle_t*>(&completions),
                         reinterpret_cast<uv_handle_t*>(&before_poll), reinterpret_cast<uv_handle_t*>(&after_poll)}) {
    uv_close(h, nullptr);
  }
  transport->close([this] { running.store(false); });
}

// ---------------------------------------------------------------- public

RaftNode::RaftNode(RaftNodeOptions options) : options_(std::move(options)) {}

RaftNode::~RaftNode() { stop(); }

Status RaftNode::start() {
  MAILBOX_ASSERT(!impl_, "start called twice");
  impl_ = std::make_unique<Impl>(options_);
  impl_->forward_slot = forward_slot_;
  impl_->gate->impl = impl_.get();
  std::promise<Status> started;
  auto started_future = started.get_future();
  loop_thread_ = std::thread([this, &started] {
    pthread_setname_np(pthread_self(), "mbx-raft-loop");
    // Result callbacks run here: they hand replies to the reply worker.
    NoBlockingSendsScope no_sends("on the Raft loop thread: hand replies to the reply worker");
    Impl& impl = *impl_;
    Status s = impl.open();
    if (!s.is_ok()) {
      if (impl.handles_initialized) {
        impl.closing = true;
        for (uv_handle_t* h :
             {reinterpret_cast<uv_handle_t*>(&impl.raft_timer), reinterpret_cast<uv_handle_t*>(&impl.tick_timer),
              reinterpret_cast<uv_handle_t*>(&impl.forward_timer),
              reinterpret_cast<uv_handle_t*>(&impl.wakeup), reinterpret_cast<uv_handle_t*>(&impl.completions),
              reinterpret_cast<uv_handle_t*>(&impl.before_poll), reinterpret_cast<uv_handle_t*>(&impl.after_poll)}) {
          uv_close(h, nullptr);
        }
        {
          std::lock_guard<std::mutex> lock(impl.completion_mutex);
          impl.loop_accepts_completions = false;
        }
        if (impl.transport) impl.transport->close([] {});
      }
      if (impl.driver) impl.driver->stop();
      if (impl.loop_initialized) {
        uv_run(&impl.loop, UV_RUN_DEFAULT);
        uv_loop_close(&impl.loop);
      }
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
    {
      std::lock_guard<std::mutex> lock(impl_->writer_mutex);
      impl_->writer_stopping = true;
      impl_->writer_ready.notify_one();
    }
    if (impl_->writer.joinable()) impl_->writer.join();
    impl_->helper.stop();
    impl_->snapshots.stop();
    {
      std::lock_guard<std::mutex> lock(impl_->gate->mutex);
      impl_->gate->impl = nullptr;
    }
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
  {
    std::lock_guard<std::mutex> lock(impl_->gate->mutex);
    impl_->gate->impl = nullptr;
  }
  {
    std::lock_guard<std::mutex> lock(impl_->writer_mutex);
    impl_->writer_stopping = true;
    impl_->writer_ready.notify_one();
  }
  if (impl_->writer.joinable()) impl_->writer.join();
  impl_->helper.stop();
  impl_->snapshots.stop();
  // Anything that slipped into the inbox after the loop drained it.
  auto unavailable = [] { return Status::error(ErrorCode::kUnavailable, "the server is shutting down"); };
  for (auto& c : impl_->inbox_commands) {
    CommandResult r;
    r.status = unavailable();
    c.done(std::move(r));
  }
  for (auto& [read, done] : impl_->inbox_reads) {
    ReadResult r;
    r.status = unavailable();
    done(std::move(r));
  }
  for (auto& [request, done] : impl_->inbox_membership) done(unavailable());
  for (auto& f : impl_->inbox_forwards) f.done(unavailable(), std::string());
  impl_->driver.reset();
  impl_.reset();
}

namespace {
constexpr const char* kNotRunningMessage = "the server is shutting down";

// Queues `item` on inbox `queue` of a running node and wakes its loop
// (under the lock: the loop closes the wake-up only after `accepting` is
// false); otherwise calls `refuse` on this thread.
template <typename Queue, typename Item, typename Refuse>
bool enqueue_or_refuse(RaftNode::Impl* impl, Queue RaftNode::Impl::*queue, Item&& item, Refuse&& refuse) {
  if (impl != nullptr) {
    std::lock_guard<std::mutex> lock(impl->mutex);
    if (impl->accepting) {
      (impl->*queue).push_back(std::forward<Item>(item));
      uv_async_send(&impl->wakeup);
      return true;
    }
  }
  refuse(Status::error(ErrorCode::kUnavailable, kNotRunningMessage));
  return false;
}

}  // namespace

bool RaftNode::submit_command(Command command, CommandCallback done, int64_t wait_ms, size_t held_bytes) {
  Impl::InboxCommand item{std::move(command), std::move(done), wait_ms, held_bytes};
  return enqueue_or_refuse(impl_.get(), &Impl::inbox_commands, std::move(item), [&item](Status s) {
    CommandResult refused;
    refused.status = std::move(s);
    item.done(std::move(refused));
  });
}

bool RaftNode::submit_read(ReadRequest read, ReadCallback done) {
  std::pair<ReadRequest, ReadCallback> item{std::move(read), std::move(done)};
  return enqueue_or_refuse(impl_.get(), &Impl::inbox_reads, std::move(item), [&item](Status s) {
    ReadResult refused;
    refused.status = std::move(s);
    item.second(std::move(refused));
  });
}

bool RaftNode::submit_membership(MembershipRequest request, StatusCallback done) {
  std::pair<MembershipRequest, StatusCallback> item{std::move(request), std::move(done)};
  return enqueue_or_refuse(impl_.get(), &Impl::inbox_membership, std::move(item),
                           [&item](Status s) { item.second(std::move(s)); });
}

bool RaftNode::forward(uint64_t to, std::string request, int64_t timeout_ms, ForwardCallback done) {
  Impl::InboxForward item{to, std::move(request), timeout_ms, std::move(done)};
  return enqueue_or_refuse(impl_.get(), &Impl::inbox_forwards, std::move(item),
                           [&item](Status s) { item.done(std::move(s), std::string()); });
}

void RaftNode::set_forward_handler(ForwardHandler handler) {
  std::lock_guard<std::mutex> lock(forward_slot_->mutex);
  forward_slot_->handler = std::move(handler);
}

RaftNodeStatus RaftNode::status() const {
  if (!impl_) return RaftNodeStatus{};
  std::lock_guard<std::mutex> lock(impl_->status_mutex);
  RaftNodeStatus s = impl_->status_view;
  s.running = impl_->running.load();
  return s;
}

MailboxOverview RaftNode::mailbox_overview() const {
  if (!impl_) return MailboxOverview{};
  impl_->overview_wanted_until_ms.store(steady_ms() + kOverviewInterestMs);
  std::lock_guard<std::mutex> lock(impl_->status_mutex);
  return impl_->overview_view;
}

bool RaftNode::is_leader() const { return impl_ && impl_->is_leader.load(); }
uint64_t RaftNode::leader_id() const { return impl_ ? impl_->leader_id.load() : 0; }
size_t RaftNode::voters() const { return impl_ ? impl_->voters.load() : 0; }
bool RaftNode::single_voter() const { return impl_ && impl_->sole_voter.load(); }

}  // namespace mailbox
