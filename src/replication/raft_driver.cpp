#include "replication/raft_driver.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "core/assert.hpp"
#include "core/limits.hpp"
#include "util/log.hpp"

namespace mailbox {
namespace {
uint64_t elapsed_us(std::chrono::steady_clock::time_point from, std::chrono::steady_clock::time_point to) {
  if (from.time_since_epoch().count() == 0 || to < from) return 0;
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(to - from).count());
}
}  // namespace

IoStatus write_snapshot_job(FileSystem& fs, const std::string& dir, const SnapshotJob& job) {
  SnapshotWriter writer(fs, dir, job.path, job.path + ".tmp");
  IoStatus s = writer.begin(job.meta);
  if (s.is_ok()) s = writer.append(job.configuration);
  if (s.is_ok()) s = writer.append(job.parts->head);
  for (const auto& p : job.parts->payloads) {
    if (s.is_ok() && !p.empty()) s = writer.append(p);
  }
  if (s.is_ok()) s = writer.commit();
  return s;
}

namespace {

// How often the leader checks whether a sweep (expiry, lease end) is due.
constexpr int64_t kSweepCheckIntervalMs = 100;
// Follow-up events (configurations, promotions) stepped after one event.
constexpr size_t kMaxFollowupsPerEvent = 1024;
// Back-pressure: the leader proposes no more while this much of its log is
// not yet durable locally (libraft does not bound it).
constexpr uint64_t kMaxUnpersistedEntries = 8192;
// A leader whose disk stays full this long hands leadership to another voter,
// and tries again at most this often.
constexpr int64_t kDiskFullTransferAfterMs = 500;
constexpr int64_t kDiskFullTransferIntervalMs = 5000;
// A server being added may take this long to catch up (a snapshot install
// of a large state, a restart in the middle) before the add fails.
constexpr int64_t kMaxCatchUpMs = 120'000;
constexpr uint64_t kMaxUnpersistedBytes = 512ULL << 20;

std::string encode_configuration(const raft_configuration& configuration) {
  raft_buffer buffer{};
  const int rv = raft_configuration_encode(&configuration, &buffer);
  MAILBOX_ASSERT(rv == 0, "raft_configuration_encode");
  std::string out(static_cast<const char*>(buffer.base), buffer.len);
  raft_free(buffer.base);
  return out;
}

// Decodes into `out` (initialised here); false when malformed.
bool decode_configuration(std::string_view bytes, raft_configuration* out) {
  raft_configuration_init(out);
  if (bytes.empty()) return false;
  // libraft's decoder takes a non-const buffer it does not modify.
  raft_buffer buffer{const_cast<char*>(bytes.data()), bytes.size()};
  if (raft_configuration_decode(&buffer, out) != 0) {
    raft_configuration_init(out);  // the decoder released what it had made
    return false;
  }
  return true;
}

void copy_configuration(const raft_configuration& from, raft_configuration* to) {
  raft_configuration_init(to);
  for (unsigned i = 0; i < from.n; ++i) {
    const int rv = raft_configuration_add(to, from.servers[i].id, from.servers[i].address, from.servers[i].role);
    MAILBOX_ASSERT(rv == 0, "copying a valid configuration");
  }
}

const char* role_name(int role) { return role == RAFT_VOTER ? "voter" : role == RAFT_STANDBY ? "standby" : "spare"; }

Status unavailable(std::string message) { return Status::error(ErrorCode::kUnavailable, std::move(message)); }

// A long-poll that finds the waiters at their bounds (it took nothing).
Status too_many_waiters() {
  return unavailable("too many long-polls are waiting on the leader (at most " +
                     std::to_string(limits::kMaxParkedWaiters) + ", holding at most " +
                     std::to_string(limits::kMaxParkedWaiterBytes >> 20) + " MiB); retry later");
}

}  // namespace

RaftDriver::RaftDriver(DriverOptions options, DriverEnv& env)
    : options_(std::move(options)), env_(env), state_(std::make_unique<StateMachine>()) {}

RaftDriver::~RaftDriver() {
  stop();
  if (raft_initialized_) raft_close(&raft_, nullptr);
}

// ---------------------------------------------------------------- start

Status RaftDriver::start(DurableState durable) {
  MAILBOX_ASSERT(!raft_initialized_, "start once");
  int rv = raft_init(&raft_, nullptr, nullptr, options_.node_id, options_.address.c_str());
  if (rv != 0) return Status::error(ErrorCode::kInternal, std::string("raft_init: ") + raft_strerror(rv));
  raft_initialized_ = true;
  raft_.tracer = nullptr;  // its formatting buffer is shared by every instance in the process
  raft_seed(&raft_, env_.random_seed());
  raft_set_election_timeout(&raft_, options_.election_timeout_ms);
  raft_set_heartbeat_timeout(&raft_, options_.heartbeat_timeout_ms);
  raft_set_install_snapshot_timeout(&raft_, options_.install_snapshot_timeout_ms);
  raft_set_pre_vote(&raft_, true);
  raft_set_max_inflight_entries(&raft_, options_.max_inflight_entries);
  raft_set_capacity_threshold(&raft_, 0);

  // The state machine from the snapshot.
  uint64_t snapshot_index = 0, snapshot_term = 0;
  raft_snapshot_metadata metadata{};
  if (durable.has_snapshot) {
    if (!state_->restore(durable.snapshot_data)) {
      return Status::error(ErrorCode::kInternal, "the snapshot " + durable.snapshot_file.path + " does not decode");
    }
    durable.snapshot_data.clear();
    durable.snapshot_data.shrink_to_fit();
    snapshot_index = durable.snapshot.index;
    snapshot_term = durable.snapshot.term;
    snapshot_index_ = snapshot_index;
    snapshot_term_ = snapshot_term;
    snapshot_path_ = durable.snapshot_file.path;
    last_applied_ = snapshot_index;
    applied_term_ = snapshot_term;
    configurations_[durable.snapshot.configuration_index] = durable.snapshot_configuration;
    metadata.index = snapshot_index;
    metadata.term = snapshot_term;
    metadata.configuration_index = durable.snapshot.configuration_index;
    if (!decode_configuration(durable.snapshot_configuration, &metadata.configuration)) {
      return Status::error(ErrorCode::kInternal, "the configuration in snapshot " + durable.snapshot_file.path +
                                                     " does not decode");
    }
  }

  // The log, reconciled with the snapshot: it must continue it.
  std::vector<LogEntry>& entries = durable.log.entries;
  uint64_t first = durable.log.first_index;
  const uint64_t last = entries.empty() ? first - 1 : entries.back().index;
  if (durable.has_snapshot) {
    const bool covers = !entries.empty() && first <= snapshot_index && snapshot_index <= last;
    if (covers && entries[snapshot_index - first].term == snapshot_term) {
      // The log holds the snapshot's last entry; the older part is trailing
      // log. Keep in memory only the share a snapshot keeps (as before the
      // restart): the disk, cut a segment at a time, may hold far more.
      const uint64_t budget = std::min<uint64_t>(options_.snapshot_trailing_bytes,
                                                 std::max<uint64_t>(limits::kMinTrailingLogBytes,
                                                                    durable.snapshot.data_bytes /
                                                                        limits::kTrailingLogSnapshotFraction));
      const size_t at_snapshot = static_cast<size_t>(snapshot_index - first);
      size_t kept = 0;
      uint64_t bytes = 0;
      for (size_t j = at_snapshot + 1; j-- > 0;) {
        bytes += entries[j].payload.size();
        const bool within = kept < options_.snapshot_trailing_entries ||
                            (bytes <= budget && kept < limits::kMaxTrailingEntries);
        if (!within) break;
        kept += 1;
      }
      const size_t drop = at_snapshot + 1 - kept;
      if (drop > 0) {
        entries.erase(entries.begin(), entries.begin() + static_cast<std::ptrdiff_t>(drop));
        first += drop;
      }
    } else if (first == snapshot_index + 1 || (entries.empty() && first <= snapshot_index + 1)) {
      // It starts right after the snapshot (or is empty).
    } else if (first > snapshot_index + 1) {
      if (metadata.configuration.servers) raft_configuration_close(&metadata.configuration);
      return Status::error(ErrorCode::kInternal,
                           "the log starts at index " + std::to_string(first) + " but the newest snapshot ends at " +
                               std::to_string(snapshot_index) + ": entries between them are missing (a snapshot "
                               "file lost?); this node refuses to start");
    } else {
      // It ends before the snapshot, or disagrees with it: a crash between
      // installing a snapshot and resetting the log left the old log.
      entries.clear();
    }
    if (entries.empty()) first = snapshot_index + 1;
  } else if (!entries.empty() && first != 1) {
    return Status::error(ErrorCode::kInternal, "the log starts at index " + std::to_string(first) +
                                                   " and there is no snapshot: earlier entries are missing; this "
                                                   "node refuses to start");
  } else if (entries.empty() && first != 1) {
    return Status::error(ErrorCode::kInternal, "the log continues at index " + std::to_string(first) +
                                                   " after a snapshot, but no snapshot is there; this node refuses "
                                                   "to start");
  }
  log_first_index_ = entries.empty() ? first : entries.front().index;
  for (auto& e : entries) {
    if (e.type == RAFT_CHANGE) configurations_[e.index] = std::string(e.payload.view());
    log_bytes_ += e.payload.size();
    log_.push_back(std::move(e));
  }
  entries.clear();

  // RAFT_START: terms and configurations only; libraft keeps nothing of
  // the entries on success. It frees the batches on failure, so they point
  // at one dummy block (the payloads are ours).
  raft_event event{};
  event.type = RAFT_START;
  event.start.term = durable.term;
  event.start.voted_for = durable.voted_for;
  event.start.metadata = durable.has_snapshot ? &metadata : nullptr;
  event.start.start_index = log_.empty() ? (durable.has_snapshot ? snapshot_index + 1 : 1) : log_first_index_;
  raft_entry* start_entries = nullptr;
  void* dummy = nullptr;
  if (!log_.empty()) {
    start_entries = static_cast<raft_entry*>(raft_calloc(log_.size(), sizeof(raft_entry)));
    dummy = raft_malloc(8);
    MAILBOX_ASSERT(start_entries != nullptr && dummy != nullptr, "memory for RAFT_START");
    for (size_t i = 0; i < log_.size(); ++i) {
      start_entries[i].term = log_[i].term;
      start_entries[i].type = static_cast<raft_entry_type>(log_[i].type);
      start_entries[i].buf.base = const_cast<char*>(log_[i].payload.view().data());
      start_entries[i].buf.len = log_[i].payload.size();
      start_entries[i].batch = dummy;
    }
  }
  event.start.entries = start_entries;
  event.start.n_entries = static_cast<unsigned>(log_.size());
  running_ = true;
  rv = step(event);
  if (rv != 0) env_.fatal(std::string("RAFT_START: ") + raft_strerror(rv) + ": " + raft_errmsg(&raft_));
  if (start_entries != nullptr) raft_free(start_entries);
  if (dummy != nullptr) raft_free(dummy);
  refresh_views();
  log_info("raft: started at term %llu with %zu log entries from index %llu (snapshot %llu)",
           static_cast<unsigned long long>(raft_current_term(&raft_)), log_.size(),
           static_cast<unsigned long long>(log_first_index_), static_cast<unsigned long long>(snapshot_index));
  return Status::ok();
}

void RaftDriver::stop() {
  if (!running_) return;
  running_ = false;
  fail_pending_on_shutdown();
}

// ---------------------------------------------------------------- stepping

int RaftDriver::step(raft_event& event) {
  MAILBOX_ASSERT(!stepping_, "raft_step is not re-entrant");
  event.time = static_cast<raft_time>(env_.monotonic_ms());
  event.capacity = 0;
  raft_update update{};
  stepping_ = true;
  const int rv = raft_step(&raft_, &event, &update);
  if (rv != 0) {
    stepping_ = false;
    if (event.type == RAFT_SUBMIT || event.type == RAFT_TRANSFER) return rv;  // the caller's to report
    env_.fatal(std::string("raft_step: ") + raft_strerror(rv) + ": " + raft_errmsg(&raft_));
  }
  process_update(update, event);
  stepping_ = false;
  return 0;
}

void RaftDriver::process_update(const raft_update& update, raft_event& event) {
  if (update.flags & (RAFT_UPDATE_CURRENT_TERM | RAFT_UPDATE_VOTED_FOR)) {
    const IoStatus s = env_.save_term_vote(raft_current_term(&raft_), raft_voted_for(&raft_));
    if (!s.is_ok()) env_.fatal("cannot persist the term and vote: " + s.message());
  }
  if (update.flags & RAFT_UPDATE_ENTRIES) persist_entries(update);
  if (update.flags & RAFT_UPDATE_SNAPSHOT) start_install(update);
  if (update.flags & RAFT_UPDATE_MESSAGES) send_messages(update);
  apply_committed();
  if (update.flags & RAFT_UPDATE_STATE) on_state_change();
  arm_timer(event.type == RAFT_TIMEOUT);
}

void RaftDriver::after_step() {
  drain_followups();
  // A configuration entry libraft still holds as uncommitted although it is
  // committed and applied (e.g. restored from a log a snapshot covered):
  // confirm it, or every later change fails.
  const uint64_t uncommitted = raft_.configuration_uncommitted_index;
  if (uncommitted != 0 && uncommitted <= raft_commit_index(&raft_) && uncommitted <= last_applied_ &&
      entry_at(uncommitted) != nullptr) {
    if (entry_at(uncommitted)->type != RAFT_CHANGE) {
      log_error("raft %llu: uncommitted configuration at %llu (committed %llu) but our entry there is type %d term "
                "%llu; log %llu..%llu, raft last %llu, snapshot %llu, commit %llu, applied %llu, state %d",
                static_cast<unsigned long long>(options_.node_id), static_cast<unsigned long long>(uncommitted),
                static_cast<unsigned long long>(raft_.configuration_committed_index), entry_at(uncommitted)->type,
                static_cast<unsigned long long>(entry_at(uncommitted)->term),
                static_cast<unsigned long long>(log_first_index_),
                static_cast<unsigned long long>(log_first_index_ + log_.size() - 1),
                static_cast<unsigned long long>(raft_last_index(&raft_)),
                static_cast<unsigned long long>(snapshot_index_), static_cast<unsigned long long>(raft_commit_index(&raft_)),
                static_cast<unsigned long long>(last_applied_), raft_state(&raft_));
    }
    MAILBOX_ASSERT(entry_at(uncommitted)->type == RAFT_CHANGE,
                   "libraft's uncommitted configuration is a configuration entry of our log");
    raft_event event{};
    event.type = RAFT_CONFIGURATION;
    event.configuration.index = uncommitted;
    if (decode_configuration(entry_at(uncommitted)->payload.view(), &event.configuration.conf)) {
      step(event);
      drain_followups();
    }
  }
  progress_membership();
  refresh_views();
  if (!woken_.empty()) wake_waiters();
}

void RaftDriver::drain_followups() {
  size_t stepped = 0;
  while (!followups_.empty()) {
    MAILBOX_ASSERT(++stepped <= kMaxFollowupsPerEvent, "follow-up events are bounded");
    raft_event event = followups_.front();
    followups_.erase(followups_.begin());
    step(event);
  }
}

void RaftDriver::arm_timer(bool after_timeout) {
  const int64_t now = env_.monotonic_ms();
  int64_t at = static_cast<int64_t>(raft_timeout(&raft_));
  // libraft can leave its timeout in the past (a spare's stale send time):
  // never spin.
  if (after_timeout && at <= now) at = now + options_.heartbeat_timeout_ms;
  env_.arm_timer(at);
}

// ---------------------------------------------------------------- the log in memory

const LogEntry* RaftDriver::entry_at(uint64_t index) const {
  if (index < log_first_index_ || index >= log_first_index_ + log_.size()) return nullptr;
  return &log_[index - log_first_index_];
}

uint64_t RaftDriver::term_at(uint64_t index) const {
  const LogEntry* e = entry_at(index);
  return e ? e->term : 0;
}

void RaftDriver::truncate_from(uint64_t index) {
  if (log_.empty()) {
    log_first_index_ = index;
    return;
  }
  MAILBOX_ASSERT(index >= log_first_index_ && index <= log_first_index_ + log_.size(),
                 "new entries continue or overwrite the log in memory");
  while (log_first_index_ + log_.size() > index) {
    log_bytes_ -= log_.back().payload.size();
    log_.pop_back();
  }
  configurations_.erase(configurations_.lower_bound(index), configurations_.end());
  if (log_.empty()) log_first_index_ = index;
}

void RaftDriver::append_to_log(LogEntry entry) {
  MAILBOX_ASSERT(entry.index == log_first_index_ + log_.size(), "log entries are contiguous");
  log_bytes_ += entry.payload.size();
  if (entry.type == RAFT_CHANGE) configurations_[entry.index] = std::string(entry.payload.view());
  log_.push_back(std::move(entry));
}

void RaftDriver::forget_through(uint64_t index) {
  while (!log_.empty() && log_first_index_ <= index) {
    log_bytes_ -= log_.front().payload.size();
    log_.pop_front();
    ++log_first_index_;
  }
  if (log_.empty()) log_first_index_ = std::max(log_first_index_, index + 1);
  // Keep the newest configuration at or below `index`, drop older ones.
  auto keep = configurations_.upper_bound(index);
  if (keep != configurations_.begin()) {
    --keep;
    configurations_.erase(configurations_.begin(), keep);
  }
}

void RaftDriver::persist_entries(const raft_update& update) {
  const uint64_t first = update.entries.index;
  truncate_from(first);
  std::vector<LogEntry> to_write;
  to_write.reserve(update.entries.n);
  PendingAppend pending;
  pending.first = first;
  const void* previous_batch = nullptr;
  std::shared_ptr<const void> owner;
  for (unsigned i = 0; i < update.entries.n; ++i) {
    const raft_entry& e = update.entries.batch[i];
    MAILBOX_ASSERT(e.batch != nullptr, "an entry to persist has its memory block");
    // Ours now: each distinct block is freed when its last entry goes.
    if (e.batch != previous_batch) {
      owner = std::shared_ptr<const void>(e.batch, [](const void* p) { raft_free(const_cast<void*>(p)); });
      previous_batch = e.batch;
    }
    LogEntry entry{first + i, e.term, static_cast<uint8_t>(e.type),
                   Payload(owner, static_cast<const char*>(e.buf.base), e.buf.len)};
    pending.terms.push_back(e.term);
    if (e.type == RAFT_CHANGE) {
      log_debug("raft %llu: configuration entry at %llu (term %llu)", static_cast<unsigned long long>(options_.node_id),
                static_cast<unsigned long long>(first + i), static_cast<unsigned long long>(e.term));
    }
    log_bytes_since_snapshot_ += e.buf.len;
    log_entries_since_snapshot_ += 1;
    to_write.push_back(entry);
    append_to_log(std::move(entry));
  }
  const uint64_t ticket = next_ticket_++;
  appends_in_flight_.emplace(ticket, std::move(pending));
  env_.append_entries(ticket, std::move(to_write));
}

void RaftDriver::on_log_written(uint64_t ticket, const IoStatus& status) {
  if (ticket == install_ticket_) return on_install_written(ticket, status);
  if (!status.is_ok()) env_.fatal("cannot write the Raft log: " + status.message());
  auto it = appends_in_flight_.find(ticket);
  if (it == appends_in_flight_.end()) return;
  MAILBOX_ASSERT(it == appends_in_flight_.begin(), "log writes complete in order");
  PendingAppend done = std::move(it->second);
  appends_in_flight_.erase(it);
  if (!running_ || installing_) return;
  // The longest prefix still in the log (a later truncation may have
  // replaced the rest, an install all of it).
  uint64_t persisted = 0;
  for (size_t k = 0; k < done.terms.size(); ++k) {
    const LogEntry* e = entry_at(done.first + k);
    if (e == nullptr || e->term != done.terms[k]) break;
    persisted = done.first + k;
  }
  if (persisted == 0 || persisted <= raft_.last_stored || persisted > raft_last_index(&raft_) ||
      raft_state(&raft_) == RAFT_CANDIDATE) {
    return;
  }
  raft_event event{};
  event.type = RAFT_PERSISTED_ENTRIES;
  event.persisted_entries.index = persisted;
  step(event);
  after_step();
  drive();
}

void RaftDriver::send_messages(const raft_update& update) {
  for (unsigned i = 0; i < update.messages.n; ++i) {
    raft_message& m = update.messages.batch[i];
    switch (m.type) {
      case RAFT_APPEND_ENTRIES: {
        auto& ae = m.append_entries;
        std::vector<raft_entry> entries(ae.n_entries);
        bool complete = true;
        for (unsigned k = 0; k < ae.n_entries; ++k) {
          const LogEntry* e = entry_at(ae.prev_log_index + 1 + k);
          if (e == nullptr) {
            complete = false;
            break;
          }
          entries[k].term = e->term;
          entries[k].type = static_cast<raft_entry_type>(e->type);
          entries[k].buf.base = const_cast<char*>(e->payload.view().data());
          entries[k].buf.len = e->payload.size();
        }
        if (!complete) break;  // libraft re-sends after a timeout
        ae.entries = entries.data();
        env_.send(m);
        ae.entries = nullptr;
        break;
      }
      case RAFT_INSTALL_SNAPSHOT: {
        auto& is = m.install_snapshot;
        if (is.last_index != snapshot_index_ || snapshot_path_.empty()) {
          log_warn("raft: no snapshot file at index %llu to send", static_cast<unsigned long long>(is.last_index));
          break;
        }
        is.last_term = snapshot_term_;
        env_.send_snapshot(m, snapshot_path_);
        break;
      }
      default:
        env_.send(m);
    }
  }
}

// ---------------------------------------------------------------- applying

void RaftDriver::apply_committed() {
  if (!running_ || restoring_ || installing_) return;
  const uint64_t commit = raft_commit_index(&raft_);
  while (last_applied_ < commit) {
    const LogEntry* e = entry_at(last_applied_ + 1);
    if (e == nullptr) break;  // not here yet (after an install)
    const LogEntry entry = *e;  // apply may submit follow-ups; keep a copy of the handle
    apply_entry(entry);
    last_applied_ = entry.index;
    applied_term_ = entry.term;
  }
  maybe_take_snapshot();
}

void RaftDriver::apply_entry(const LogEntry& e) {
  switch (e.type) {
    case RAFT_COMMAND: {
      Entry entry;
      const bool decoded = decode_entry(e.payload.view(), &entry);
      // A committed entry that does not decode means a bug or damage: stop
      // rather than diverge from the other replicas.
      MAILBOX_ASSERT(decoded, "committed log entry does not decode");
      const auto apply_started = std::chrono::steady_clock::now();
      std::vector<CommandResult> results = state_->apply(entry);
      const auto applied_at = std::chrono::steady_clock::now();
      timings_.apply.record(elapsed_us(apply_started, applied_at));
      if (apply_observer_) apply_observer_(e.index, e.term, entry, results);
      if (waiter_count() > 0) {
        for (const auto& name : state_->woken()) woken_.push_back(name);
      }
      auto it = proposals_.find(e.index);
      if (it != proposals_.end() && it->second.term == e.term) {
        Proposal proposal = std::move(it->second);
        proposals_.erase(it);
        timings_.commit.record(elapsed_us(proposal.proposed_at, applied_at));
        MAILBOX_ASSERT(results.size() == proposal.callbacks.size(), "result count matches the proposal");
        const int64_t now = env_.monotonic_ms();
        const bool leader = raft_state(&raft_) == RAFT_LEADER;
        for (auto& [i, retry] : proposal.retries) {
          if (results[i].status.code != ErrorCode::kEmpty || retry.wait_deadline_ms <= now) continue;
          if (!leader) {
            results[i].status = unavailable("this node is no longer the leader; retry");
            continue;
          }
          retry.done = std::move(proposal.callbacks[i]);
          proposal.callbacks[i] = nullptr;
          const auto& mailbox = std::get<ConsumeCommand>(retry.command).mailbox;
          if (state_->has_visible(mailbox, state_->clock_ms())) {
            parked_commands_.push_back(std::move(retry));  // a message arrived meanwhile
          } else if (!park(std::move(retry))) {
            proposal.callbacks[i] = std::move(retry.done);
            results[i].status = too_many_waiters();  // it took nothing: the consume found the mailbox empty
          }
        }
        for (size_t i = 0; i < proposal.callbacks.size(); ++i) {
          if (proposal.callbacks[i]) proposal.callbacks[i](std::move(results[i]));
        }
      }
      break;
    }
    case RAFT_BARRIER: {
      auto it = barriers_.find(e.index);
      if (it != barriers_.end() && it->second.term == e.term) {
        Barrier barrier = std::move(it->second);
        barriers_.erase(it);
        barrier_pending_ = false;
        serve_reads(barrier.reads);
      }
      break;
    }
    case RAFT_CHANGE: {
      raft_event event{};
      event.type = RAFT_CONFIGURATION;
      event.configuration.index = e.index;
      if (!decode_configuration(e.payload.view(), &event.configuration.conf)) {
        MAILBOX_ASSERT(false, "committed configuration entry does not decode");
      }
      followups_.push_back(event);
      if (change_ && change_->change_index == e.index) {
        if (change_->change_term != e.term) {
          finish_membership(unavailable("the membership change was overwritten by a new leader; retry"));
        } else if (change_->phase == MembershipChange::Phase::kAddSpare) {
          change_->phase = MembershipChange::Phase::kCatchUp;
          change_->change_index = 0;
        } else {
          finish_membership(Status::ok());
        }
      }
      break;
    }
  }
  settle_proposals_at(e.index, e.term);
}

// Requests registered at `index` under another term than the entry applied
// there: that entry replaced theirs, which was never committed.
void RaftDriver::settle_proposals_at(uint64_t index, uint64_t applied_term) {
  auto p = proposals_.find(index);
  if (p != proposals_.end() && p->second.term != applied_term) {
    for (auto& done : p->second.callbacks) {
      if (!done) continue;
      CommandResult r;
      r.status = unavailable("a new leader replaced this request's log entry: it was not applied; retry");
      done(std::move(r));
    }
    proposals_.erase(p);
  }
  auto b = barriers_.find(index);
  if (b != barriers_.end() && b->second.term != applied_term) {
    for (auto& r : b->second.reads) {
      ReadResult result;
      result.status = unavailable("leadership changed before the read; retry");
      r.done(std::move(result));
    }
    barriers_.erase(b);
  }
}

void RaftDriver::on_state_change() {
  const unsigned short now_state = raft_state(&raft_);
  const int64_t now = env_.monotonic_ms();
  if (previous_state_ == RAFT_LEADER && now_state != RAFT_LEADER) {
    // Entries proposed in this term may still commit under the next leader:
    // their callers wait for the entry at their index (or a timeout).
    for (auto& [index, p] : proposals_) {
      if (p.leadership_lost_ms == 0) p.leadership_lost_ms = now;
    }
    for (auto& [index, b] : barriers_) {
      if (b.leadership_lost_ms == 0) b.leadership_lost_ms = now;
    }
    barrier_pending_ = false;
    for (auto& r : waiting_reads_) parked_reads_.push_back(std::move(r));
    waiting_reads_.clear();
    fail_waiters(unavailable("this node is no longer the leader; retry"));
    // A transfer succeeds by losing leadership: progress_membership says
    // where it went once the new leader is known.
    if (change_ && change_->phase != MembershipChange::Phase::kTransfer) {
      finish_membership(unavailable("leadership was lost during the membership change; retry"));
    }
    sweep_in_flight_ = false;
    configure_in_flight_ = false;
  }
  previous_state_ = now_state;
}

void RaftDriver::refresh_views() {
  raft_id id = 0;
  const char* address = nullptr;
  raft_leader(&raft_, &id, &address);
  leader_id_ = id;
  configuration_view_.clear();
  size_t voters = 0;
  for (unsigned i = 0; i < raft_.configuration.n; ++i) {
    const raft_server& server = raft_.configuration.servers[i];
    voters += server.role == RAFT_VOTER ? 1 : 0;
    configuration_view_.push_back(RaftServerInfo{server.id, server.address, role_name(server.role)});
  }
  voters_ = voters;
  sole_voter_ = voters == 1 && configuration_view_.size() == 1 && configuration_view_[0].id == options_.node_id &&
                configuration_view_[0].role == "voter";
}

// ---------------------------------------------------------------- events

// libraft 0.22.1 records a configuration entry received in an AppendEntries
// at the index of the message's first new entry, not at its own
// (replication.c, replicationAppend: membershipUncommittedChange(r, index,
// entry) for every entry): the configuration is then tracked at the wrong
// index, never confirmed, and every later change fails. So an AppendEntries
// whose configuration entries are not first is handed to libraft in
// pieces, each starting at a configuration entry (each piece with its own
// payload block, which libraft frees or hands over independently).
bool RaftDriver::deliver_split_at_configurations(const raft_message& m, uint64_t from_id,
                                                 const std::string& from_address) {
  const auto& ae = m.append_entries;
  bool change_inside = false;
  for (unsigned k = 1; k < ae.n_entries; ++k) change_inside |= ae.entries[k].type == RAFT_CHANGE;
  if (!change_inside) return false;
  unsigned begin = 0;
  while (begin < ae.n_entries && running_) {
    unsigned end = begin + 1;
    while (end < ae.n_entries && ae.entries[end].type != RAFT_CHANGE) ++end;
    size_t bytes = 0;
    for (unsigned k = begin; k < end; ++k) bytes += ae.entries[k].buf.len;
    auto* entries = static_cast<raft_entry*>(raft_calloc(end - begin, sizeof(raft_entry)));
    void* batch = raft_malloc(bytes == 0 ? 1 : bytes);
    MAILBOX_ASSERT(entries != nullptr && batch != nullptr, "memory for a split AppendEntries");
    size_t at = 0;
    for (unsigned k = begin; k < end; ++k) {
      entries[k - begin] = ae.entries[k];
      entries[k - begin].buf.base = static_cast<char*>(batch) + at;
      entries[k - begin].batch = batch;
      std::memcpy(entries[k - begin].buf.base, ae.entries[k].buf.base, ae.entries[k].buf.len);
      at += ae.entries[k].buf.len;
    }
    raft_message piece = m;
    piece.server_id = from_id;
    piece.server_address = from_address.c_str();
    piece.append_entries.prev_log_index = ae.prev_log_index + begin;
    piece.append_entries.prev_log_term = begin == 0 ? ae.prev_log_term : ae.entries[begin - 1].term;
    piece.append_entries.entries = entries;
    piece.append_entries.n_entries = end - begin;
    raft_event event{};
    event.type = RAFT_RECEIVE;
    event.receive.message = &piece;
    step(event);  // libraft frees the batch or hands it over
    raft_free(entries);
    begin = end;
  }
  return true;
}

void RaftDriver::on_message(DecodedMessage decoded, uint64_t from_id, const std::string& from_address) {
  if (!running_) return;
  raft_message& m = decoded.message();
  if (m.type == RAFT_APPEND_ENTRIES && deliver_split_at_configurations(m, from_id, from_address)) {
    after_step();
    drive();
    return;  // the decoded message (never given to libraft) frees its own memory
  }
  m.server_id = from_id;
  m.server_address = from_address.c_str();
  raft_event event{};
  event.type = RAFT_RECEIVE;
  event.receive.message = &m;
  // libraft refuses every vote while this server is not a voter in its
  // latest configuration, even when the cluster's newest configuration made
  // it one (a promotion committed before it arrived here): the cluster can
  // stall for good. A vote is safe from any server (the candidate counts it
  // by its own configuration; one vote per term, the log check and the
  // leader check still apply), so present this server as a voter for the
  // duration of a vote request.
  int saved_role = -1;
  if (m.type == RAFT_REQUEST_VOTE) {
    for (unsigned i = 0; i < raft_.configuration.n; ++i) {
      raft_server& self = raft_.configuration.servers[i];
      if (self.id == options_.node_id && self.role != RAFT_VOTER) {
        saved_role = self.role;
        self.role = RAFT_VOTER;
      }
    }
  }
  step(event);
  if (saved_role >= 0) {
    for (unsigned i = 0; i < raft_.configuration.n; ++i) {
      raft_server& self = raft_.configuration.servers[i];
      if (self.id == options_.node_id && self.role == RAFT_VOTER) self.role = saved_role;
    }
  }
  // libraft freed an AppendEntries' payload block or handed it over.
  if (m.type == RAFT_APPEND_ENTRIES && m.append_entries.n_entries > 0) decoded.release_batch();
  after_step();
  drive();
}

void RaftDriver::on_snapshot_received(const raft_message& metadata, uint64_t from_id, const std::string& from_address,
                                      const std::string& staged_path, const std::string& configuration) {
  if (!running_) {
    env_.remove_snapshot(staged_path);
    return;
  }
  raft_message m = metadata;
  m.type = RAFT_INSTALL_SNAPSHOT;
  m.server_id = from_id;
  m.server_address = from_address.c_str();
  auto& is = m.install_snapshot;
  if (!decode_configuration(configuration, &is.conf)) {
    log_warn("raft: the configuration of a received snapshot does not decode; ignored");
    env_.remove_snapshot(staged_path);
    return;
  }
  // The data libraft hands back with RAFT_UPDATE_SNAPSHOT: where it is staged.
  is.data.len = staged_path.size() + 1;
  is.data.base = raft_malloc(is.data.len);
  MAILBOX_ASSERT(is.data.base != nullptr, "memory for a snapshot descriptor");
  std::memcpy(is.data.base, staged_path.c_str(), is.data.len);
  const bool was_installing = raft_.snapshot.installing;
  const uint64_t term_before = raft_current_term(&raft_);
  const uint64_t installs_before = installs_started_;
  raft_event event{};
  event.type = RAFT_RECEIVE;
  event.receive.message = &m;
  step(event);
  if (installs_started_ == installs_before) {
    // Not installed (libraft has it, or is installing one already).
    if (was_installing && is.term >= term_before) {
      // libraft ignores it then, freeing nothing.
      raft_configuration_close(&is.conf);
      raft_free(is.data.base);
    }
    env_.remove_snapshot(staged_path);
  }
  after_step();
  drive();
}

void RaftDriver::on_timeout() {
  if (!running_) return;
  const bool forget_leader = non_voter_leader_timed_out();
  raft_event event{};
  event.type = RAFT_TIMEOUT;
  step(event);
  if (forget_leader && raft_state(&raft_) == RAFT_FOLLOWER && raft_.follower_state.current_leader.id != 0) {
    // libraft 0.22.1 never lets a follower that is not a voter (a spare, a
    // standby, a promoted server that has not yet received its promotion,
    // or one not in its configuration) time its leader out: it keeps
    // rejecting every vote ("local server has a leader"), while servers that
    // did apply its promotion count it as a voter and may need its vote; an
    // election then stalls until the old leader is back (as etcd #10998).
    // After an election timeout without hearing from the leader, forget it.
    ++leaders_forgotten_;
    raft_.follower_state.current_leader.id = 0;
    raft_.follower_state.current_leader.address = nullptr;
  }
  after_step();
  drive();
}

bool RaftDriver::non_voter_leader_timed_out() const {
  if (raft_state(const_cast<raft*>(&raft_)) != RAFT_FOLLOWER || raft_.follower_state.current_leader.id == 0) {
    return false;
  }
  for (unsigned i = 0; i < raft_.configuration.n; ++i) {
    const raft_server& server = raft_.configuration.servers[i];
    if (server.id == options_.node_id && server.role == RAFT_VOTER) return false;  // libraft times it out
  }
  const int64_t now = env_.monotonic_ms();
  return static_cast<uint64_t>(now) >=
         raft_.election_timer_start + raft_.follower_state.randomized_election_timeout;
}

void RaftDriver::tick() {
  if (!running_) return;
  expire_waiters();
  expire_fates();
  if (raft_state(&raft_) == RAFT_LEADER) {
    if (!configure_in_flight_ && !(state_->config() == options_.state_config)) {
      propose_internal(ConfigureCommand{options_.state_config}, &configure_in_flight_);
    }
    const int64_t now = env_.monotonic_ms();
    if (!sweep_in_flight_ && now - last_sweep_check_ms_ >= kSweepCheckIntervalMs) {
      last_sweep_check_ms_ = now;
      if (state_->next_sweep_due_ms() <= env_.wall_clock_ms()) propose_internal(SweepCommand{}, &sweep_in_flight_);
    }
  }
  maybe_leave_full_disk();
  progress_membership();
  after_step();
  drive();
}

void RaftDriver::on_log_space(bool full) {
  if (full == log_disk_full_ || !running_) return;
  log_disk_full_ = full;
  if (full) {
    disk_full_since_ms_ = env_.monotonic_ms();
    // What is proposed may not become durable here until space returns
    // (elsewhere it may): its callers hear `unknown_outcome` after the fate
    // wait, as after a lost leadership, unless it commits first.
    for (auto& [index, p] : proposals_) {
      if (p.leadership_lost_ms == 0) p.leadership_lost_ms = disk_full_since_ms_;
    }
    for (auto& [index, b] : barriers_) {
      if (b.leadership_lost_ms == 0) b.leadership_lost_ms = disk_full_since_ms_;
    }
    log_error("raft: the disk is full: this node's log cannot grow%s",
              raft_state(&raft_) == RAFT_LEADER ? "; refusing client requests and handing leadership off" : "");
  } else {
    log_info("raft: the log writes again: disk space is back");
  }
  drive();
}

// A leader on a full disk cannot make new entries durable here; another
// voter with space can lead. libraft picks the most up-to-date voter.
void RaftDriver::maybe_leave_full_disk() {
  if (!log_disk_full_ || raft_state(&raft_) != RAFT_LEADER || voters_ < 2 || change_ ||
      raft_transferee(&raft_) != 0) {
    return;
  }
  const int64_t now = env_.monotonic_ms();
  if (now - disk_full_since_ms_ < kDiskFullTransferAfterMs ||
      (last_disk_full_transfer_ms_ != 0 && now - last_disk_full_transfer_ms_ < kDiskFullTransferIntervalMs)) {
    return;
  }
  last_disk_full_transfer_ms_ = now;
  ++disk_full_transfers_;
  MembershipRequest transfer;
  transfer.op = MembershipRequest::Op::kTransfer;
  start_membership(transfer, [](Status s) {
    if (!s.is_ok()) log_warn("raft: handing leadership off a full disk failed: %s", s.message.c_str());
  });
}

void RaftDriver::refuse_parked_work(const Status& status) {
  while (!parked_commands_.empty()) {
    CommandResult r;
    r.status = status;
    auto done = std::move(parked_commands_.front().done);
    parked_commands_.pop_front();
    done(std::move(r));
  }
  while (!parked_reads_.empty()) {
    ReadResult r;
    r.status = status;
    auto done = std::move(parked_reads_.front().done);
    parked_reads_.pop_front();
    done(std::move(r));
  }
}

// ---------------------------------------------------------------- client work

void RaftDriver::submit_command(Command command, CommandCallback done, int64_t wait_ms, size_t held_bytes) {
  const int64_t now = env_.monotonic_ms();
  const int64_t deadline = wait_ms > 0 && std::holds_alternative<ConsumeCommand>(command) ? now + wait_ms : 0;
  parked_commands_.push_back(PendingCommand{std::move(command), std::move(done), now, deadline, held_bytes});
}

void RaftDriver::submit_read(ReadRequest read, ReadCallback done) {
  const int64_t now = env_.monotonic_ms();
  const int64_t deadline = read.wait_ms > 0 && read.kind == ReadRequest::Kind::kPeek ? now + read.wait_ms : 0;
  parked_reads_.push_back(PendingRead{std::move(read), std::move(done), now, deadline});
}

// Moves parked work forward: proposes when leading, waits (boundedly) for a
// leader otherwise.
void RaftDriver::drive() {
  if (!running_ || stepping_ || driving_) return;
  driving_ = true;
  struct Done {
    bool& flag;
    ~Done() { flag = false; }
  } done_driving{driving_};
  const bool leader = raft_state(&raft_) == RAFT_LEADER && raft_transferee(&raft_) == 0;
  if (leader && log_disk_full_) {
    refused_disk_full_ += parked_commands_.size() + parked_reads_.size();
    refuse_parked_work(unavailable("the leader's disk is full: its Raft log cannot grow; retry (leadership moves "
                                   "to a node with space, or space is freed)"));
    return;
  }
  if (leader) {
    while (!parked_commands_.empty()) {
      const uint64_t unpersisted = raft_last_index(&raft_) - raft_.last_stored;
      if (unpersisted >= kMaxUnpersistedEntries || log_bytes_ > kMaxUnpersistedBytes + options_.snapshot_max_log_bytes) {
        break;  // the disk is behind: hold until writes complete
      }
      std::vector<PendingCommand> batch;
      size_t bytes = 0;
      while (!parked_commands_.empty() && batch.size() < limits::kMaxCommandsPerEntry) {
        const size_t size = encoded_size_hint(parked_commands_.front().command);
        if (!batch.empty() && bytes + size > limits::kMaxEntryBytes) break;
        bytes += size;
        batch.push_back(std::move(parked_commands_.front()));
        parked_commands_.pop_front();
      }
      propose_commands(batch);
    }
    for (auto& r : parked_reads_) waiting_reads_.push_back(std::move(r));
    parked_reads_.clear();
    if (!barrier_pending_ && !waiting_reads_.empty()) issue_barrier();
    return;
  }
  // Not the leader: with another leader known, refuse at once (it serves
  // through its own queryable); with none, wait a while for one.
  const int64_t now = env_.monotonic_ms();
  const bool other_leader = leader_id_ != 0 && leader_id_ != options_.node_id;
  const int64_t patience = other_leader ? 0 : static_cast<int64_t>(options_.leader_wait_ms);
  while (!parked_commands_.empty() && now - parked_commands_.front().arrived_ms >= patience) {
    CommandResult r;
    r.status = unavailable("no leader: the cluster is electing one or has lost its quorum");
    auto done = std::move(parked_commands_.front().done);
    parked_commands_.pop_front();
    done(std::move(r));
  }
  while (!parked_reads_.empty() && now - parked_reads_.front().arrived_ms >= patience) {
    ReadResult r;
    r.status = unavailable("no leader: the cluster is electing one or has lost its quorum");
    auto done = std::move(parked_reads_.front().done);
    parked_reads_.pop_front();
    done(std::move(r));
  }
}

bool RaftDriver::submit_entries(std::vector<raft_entry>& entries, uint64_t* first_index) {
  *first_index = raft_last_index(&raft_) + 1;
  raft_event event{};
  event.type = RAFT_SUBMIT;
  event.submit.entries = entries.data();
  event.submit.n = static_cast<unsigned>(entries.size());
  const int rv = step(event);
  if (rv != 0) {
    log_debug("raft: submit refused: %s", raft_strerror(rv));
    return false;
  }
  return true;
}

void RaftDriver::propose_commands(std::vector<PendingCommand>& batch) {
  Entry entry;
  entry.leader_time_ms = env_.wall_clock_ms();
  entry.commands.reserve(batch.size());
  Proposal proposal;
  proposal.term = raft_current_term(&raft_);
  proposal.callbacks.reserve(batch.size());
  for (auto& c : batch) {
    if (c.wait_deadline_ms != 0) {
      proposal.retries.emplace_back(proposal.callbacks.size(), PendingCommand{c.command, nullptr, c.arrived_ms,
                                                                              c.wait_deadline_ms, c.held_bytes});
    }
    entry.commands.push_back(std::move(c.command));
    proposal.callbacks.push_back(std::move(c.done));
  }
  const std::string bytes = encode_entry(entry);
  std::vector<raft_entry> entries(1);
  entries[0].term = proposal.term;
  entries[0].type = RAFT_COMMAND;
  entries[0].buf.len = bytes.size();
  entries[0].buf.base = raft_malloc(bytes.size());
  MAILBOX_ASSERT(entries[0].buf.base != nullptr, "memory for a log entry");
  std::memcpy(entries[0].buf.base, bytes.data(), bytes.size());
  entries[0].batch = entries[0].buf.base;
  uint64_t index = 0;
  if (!submit_entries(entries, &index)) {
    raft_free(entries[0].buf.base);
    for (auto& done : proposal.callbacks) {
      CommandResult r;
      r.status = unavailable("this node cannot propose now (not the leader, or a leadership transfer); retry");
      done(std::move(r));
    }
    return;
  }
  // An older proposal at this index (an earlier term's, waiting for its
  // fate) was truncated from this leader's log: it never committed. Its
  // callers hear so before the new proposal takes the index.
  settle_superseded(index);
  proposal.proposed_at = std::chrono::steady_clock::now();
  proposals_.emplace(index, std::move(proposal));
  after_step();
}

void RaftDriver::settle_superseded(uint64_t index) {
  if (auto it = proposals_.find(index); it != proposals_.end()) {
    settle_lost_proposal(it->second);
    proposals_.erase(it);
  }
  if (auto it = barriers_.find(index); it != barriers_.end()) {
    settle_lost_barrier(it->second);
    barriers_.erase(it);
  }
}

void RaftDriver::settle_lost_proposal(Proposal& proposal) {
  for (auto& done : proposal.callbacks) {
    if (!done) continue;
    CommandResult r;
    r.status = Status::error(ErrorCode::kUnknownOutcome,
                             "leadership was lost before this was committed; it may or may not be applied: "
                             "retry with the same rid");
    ++unknown_outcomes_;
    done(std::move(r));
  }
}

void RaftDriver::settle_lost_barrier(Barrier& barrier) {
  for (auto& r : barrier.reads) {
    ReadResult result;
    result.status = unavailable("leadership was lost before the read; retry");
    r.done(std::move(result));
  }
}

void RaftDriver::propose_internal(Command command, bool* in_flight) {
  *in_flight = true;
  std::vector<PendingCommand> batch;
  batch.push_back(PendingCommand{std::move(command), [in_flight](CommandResult&&) { *in_flight = false; },
                                 env_.monotonic_ms(), 0});
  propose_commands(batch);
}

void RaftDriver::issue_barrier() {
  std::vector<raft_entry> entries(1);
  entries[0].term = raft_current_term(&raft_);
  entries[0].type = RAFT_BARRIER;
  entries[0].buf.len = 8;
  entries[0].buf.base = raft_calloc(1, 8);
  MAILBOX_ASSERT(entries[0].buf.base != nullptr, "memory for a barrier");
  entries[0].batch = entries[0].buf.base;
  Barrier barrier;
  barrier.term = entries[0].term;
  barrier.reads = std::move(waiting_reads_);
  waiting_reads_.clear();
  uint64_t index = 0;
  barrier_pending_ = true;
  if (!submit_entries(entries, &index)) {
    barrier_pending_ = false;
    raft_free(entries[0].buf.base);
    for (auto& r : barrier.reads) {
      ReadResult result;
      result.status = unavailable("cannot read now (not the leader); retry");
      r.done(std::move(result));
    }
    return;
  }
  settle_superseded(index);
  barriers_.emplace(index, std::move(barrier));
  after_step();
}

void RaftDriver::serve_reads(std::vector<PendingRead>& reads) {
  // Reads see expiry at the later of the log's time and this node's clock.
  const int64_t now = std::max(state_->clock_ms(), env_.wall_clock_ms());
  const int64_t monotonic_now = env_.monotonic_ms();
  for (auto& r : reads) {
    ReadResult result;
    if (r.read.kind == ReadRequest::Kind::kPeek) {
      result.status = state_->peek(r.read.mailbox, r.read.max_count, now, &result.messages);
      if (result.status.code == ErrorCode::kEmpty && r.wait_deadline_ms > monotonic_now &&
          raft_state(&raft_) == RAFT_LEADER) {
        if (park(std::move(r))) continue;
        result.status = too_many_waiters();
      }
    } else if (r.read.kind == ReadRequest::Kind::kList) {
      state_->list(r.read.list, now, r.read.accept, &result.listed);
    } else {
      result.stats = state_->stats(r.read.mailbox, now);
    }
    r.done(std::move(result));
  }
}

void RaftDriver::expire_fates() {
  const int64_t now = env_.monotonic_ms();
  for (auto it = proposals_.begin(); it != proposals_.end();) {
    if (it->second.leadership_lost_ms != 0 && now - it->second.leadership_lost_ms >= options_.proposal_fate_wait_ms) {
      settle_lost_proposal(it->second);
      it = proposals_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = barriers_.begin(); it != barriers_.end();) {
    if (it->second.leadership_lost_ms != 0 && now - it->second.leadership_lost_ms >= options_.proposal_fate_wait_ms) {
      settle_lost_barrier(it->second);
      it = barriers_.erase(it);
    } else {
      ++it;
    }
  }
}

void RaftDriver::fail_pending_on_shutdown() {
  auto shutting_down = [] { return unavailable("the server is shutting down"); };
  while (!parked_commands_.empty()) {
    auto done = std::move(parked_commands_.front().done);
    parked_commands_.pop_front();
    CommandResult r;
    r.status = shutting_down();
    done(std::move(r));
  }
  while (!parked_reads_.empty()) {
    auto done = std::move(parked_reads_.front().done);
    parked_reads_.pop_front();
    ReadResult r;
    r.status = shutting_down();
    done(std::move(r));
  }
  for (auto& rd : waiting_reads_) {
    ReadResult r;
    r.status = shutting_down();
    rd.done(std::move(r));
  }
  waiting_reads_.clear();
  for (auto& [index, p] : proposals_) {
    for (auto& done : p.callbacks) {
      if (!done) continue;
      CommandResult r;
      r.status = Status::error(ErrorCode::kUnknownOutcome,
                               "the server stopped before this was committed; it may or may not be applied: retry "
                               "with the same rid");
      done(std::move(r));
    }
  }
  proposals_.clear();
  for (auto& [index, b] : barriers_) {
    for (auto& rd : b.reads) {
      ReadResult r;
      r.status = shutting_down();
      rd.done(std::move(r));
    }
  }
  barriers_.clear();
  fail_waiters(shutting_down());
  if (change_) finish_membership(shutting_down());
  for (auto& [request, done] : queued_changes_) done(shutting_down());
  queued_changes_.clear();
}

// ---------------------------------------------------------------- long-poll waiters

uint64_t RaftDriver::waiter_charge(size_t held_bytes) {
  return limits::kParkedWaiterOverheadBytes + static_cast<uint64_t>(held_bytes);
}

bool RaftDriver::may_park(size_t held_bytes) {
  if (waiter_count() < limits::kMaxParkedWaiters &&
      parked_waiter_bytes_ + waiter_charge(held_bytes) <= limits::kMaxParkedWaiterBytes) {
    return true;
  }
  ++waiters_refused_;
  return false;
}

void RaftDriver::uncharge_waiter(size_t held_bytes) {
  const uint64_t charge = waiter_charge(held_bytes);
  MAILBOX_ASSERT(parked_waiter_bytes_ >= charge, "a parked waiter's charge was counted when it parked");
  parked_waiter_bytes_ -= charge;
}

bool RaftDriver::park(PendingCommand&& command) {
  if (!may_park(command.held_bytes)) return false;
  parked_waiter_bytes_ += waiter_charge(command.held_bytes);
  const std::string mailbox = std::get<ConsumeCommand>(command.command).mailbox;  // before the move
  const int64_t deadline = command.wait_deadline_ms;
  command_waiters_.add(mailbox, deadline, std::move(command));
  MAILBOX_ASSERT(waiter_count() <= limits::kMaxParkedWaiters && parked_waiter_bytes_ <= limits::kMaxParkedWaiterBytes,
                 "parked waiters stay within their bounds");
  return true;
}

bool RaftDriver::park(PendingRead&& read) {
  if (!may_park(read.read.held_bytes)) return false;
  parked_waiter_bytes_ += waiter_charge(read.read.held_bytes);
  const std::string mailbox = read.read.mailbox;
  const int64_t deadline = read.wait_deadline_ms;
  read_waiters_.add(mailbox, deadline, std::move(read));
  MAILBOX_ASSERT(waiter_count() <= limits::kMaxParkedWaiters && parked_waiter_bytes_ <= limits::kMaxParkedWaiterBytes,
                 "parked waiters stay within their bounds");
  return true;
}

// Every waiter of a mailbox that received a message races through the log
// again (its consume is proposed anew; a peek reads after a new barrier):
// what it gets is what the state machine hands it then.
void RaftDriver::wake_waiters() {
  std::vector<PendingCommand> commands;
  std::vector<PendingRead> reads;
  for (const auto& name : woken_) {
    command_waiters_.take_mailbox(name, &commands);
    read_waiters_.take_mailbox(name, &reads);
  }
  woken_.clear();
  for (auto& c : commands) {
    uncharge_waiter(c.held_bytes);
    parked_commands_.push_back(std::move(c));
  }
  for (auto& r : reads) {
    uncharge_waiter(r.read.held_bytes);
    parked_reads_.push_back(std::move(r));
  }
}

namespace {
template <typename Result, typename Waiter>
void complete_waiters(std::vector<Waiter>& waiters, const Status& status) {
  for (auto& w : waiters) {
    Result r;
    r.status = status;
    auto done = std::move(w.done);
    done(std::move(r));
  }
}
}  // namespace

void RaftDriver::fail_waiters(Status status) {
  std::vector<PendingCommand> commands;
  std::vector<PendingRead> reads;
  command_waiters_.take_all(&commands);
  read_waiters_.take_all(&reads);
  parked_waiter_bytes_ = 0;
  complete_waiters<CommandResult>(commands, status);
  complete_waiters<ReadResult>(reads, status);
}

// The waiters whose wait is over, found by deadline: no walk of the others.
void RaftDriver::expire_waiters() {
  const int64_t now = env_.monotonic_ms();
  if (command_waiters_.next_deadline_ms() > now && read_waiters_.next_deadline_ms() > now) return;
  std::vector<PendingCommand> commands;
  std::vector<PendingRead> reads;
  command_waiters_.take_due(now, &commands);
  read_waiters_.take_due(now, &reads);
  for (const auto& c : commands) uncharge_waiter(c.held_bytes);
  for (const auto& r : reads) uncharge_waiter(r.read.held_bytes);
  MAILBOX_ASSERT(waiter_count() > 0 || parked_waiter_bytes_ == 0, "parked waiters' charges add up");
  const Status empty = Status::error(ErrorCode::kEmpty, "mailbox is empty");
  complete_waiters<CommandResult>(commands, empty);
  complete_waiters<ReadResult>(reads, empty);
}

// ---------------------------------------------------------------- snapshots

std::string RaftDriver::configuration_at(uint64_t index) const {
  auto it = configurations_.upper_bound(index);
  MAILBOX_ASSERT(it != configurations_.begin(), "a configuration at or below every applied index");
  return std::prev(it)->second;
}

void RaftDriver::maybe_take_snapshot() {
  if (snapshot_in_progress_ || installing_ || restoring_ || raft_.snapshot.installing) return;
  if (last_applied_ <= snapshot_index_ || entry_at(last_applied_) == nullptr) return;
  const uint64_t byte_limit = std::clamp<uint64_t>(state_->total_bytes() / 4, options_.min_snapshot_log_bytes,
                                                   std::max(options_.min_snapshot_log_bytes,
                                                            options_.snapshot_max_log_bytes));
  // A snapshot walks the whole state: with a large one (a million
  // mailboxes), taking it every few thousand small entries would cost the
  // loop more than the entries do. The entry threshold grows with the
  // state; the byte limit still bounds the log held in memory.
  const uint64_t entry_limit = std::max<uint64_t>(
      options_.snapshot_threshold_entries, state_->total_messages() / limits::kSnapshotMessagesPerLogEntry);
  if (log_entries_since_snapshot_ < entry_limit && log_bytes_since_snapshot_ < byte_limit) {
    return;
  }
  const auto started = std::chrono::steady_clock::now();
  snapshot_started_ = started;
  snapshot_parts_ = std::make_unique<StateMachine::SnapshotParts>(state_->pin_snapshot());
  const int64_t us =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started).count();
  longest_snapshot_stall_us_ = std::max(longest_snapshot_stall_us_, us);
  SnapshotJob job;
  job.configuration = configuration_at(last_applied_);
  job.meta.index = last_applied_;
  job.meta.term = applied_term_;
  job.meta.configuration_index = std::prev(configurations_.upper_bound(last_applied_))->first;
  job.meta.configuration_bytes = job.configuration.size();
  job.meta.data_bytes = snapshot_parts_->total_bytes();
  job.parts = snapshot_parts_.get();
  job.path = join_path(env_.snapshot_dir(), snapshot_file_name(job.meta.index, job.meta.term));
  snapshot_in_progress_ = true;
  snapshot_meta_in_progress_ = job.meta;
  snapshot_path_in_progress_ = job.path;
  snapshot_ticket_ = next_ticket_++;
  installs_at_snapshot_start_ = installs_started_;
  log_info("raft: snapshot at index %llu: %llu messages, %llu bytes (loop busy %lld us)",
           static_cast<unsigned long long>(job.meta.index), static_cast<unsigned long long>(state_->total_messages()),
           static_cast<unsigned long long>(job.meta.data_bytes), static_cast<long long>(us));
  env_.write_snapshot(snapshot_ticket_, std::move(job));
}

void RaftDriver::on_snapshot_written(uint64_t ticket, const IoStatus& status) {
  if (!snapshot_in_progress_ || ticket != snapshot_ticket_) return;
  snapshot_in_progress_ = false;
  snapshot_parts_.reset();
  state_->unpin_snapshot();
  const SnapshotMeta meta = snapshot_meta_in_progress_;
  if (!status.is_ok()) {
    log_error("raft: cannot write snapshot %s: %s (will retry)", snapshot_path_in_progress_.c_str(),
              status.message().c_str());
    return;
  }
  if (!running_ || installs_started_ != installs_at_snapshot_start_ || installing_ || restoring_ ||
      meta.index <= snapshot_index_ || meta.index <= raft_.trail.offset || meta.index > raft_last_index(&raft_)) {
    // An install overtook it: the log it describes is gone.
    log_debug("raft %llu: snapshot at %llu discarded (newest is %llu)", static_cast<unsigned long long>(options_.node_id),
              static_cast<unsigned long long>(meta.index), static_cast<unsigned long long>(snapshot_index_));
    if (snapshot_path_in_progress_ != snapshot_path_) env_.remove_snapshot(snapshot_path_in_progress_);
    return;
  }
  timings_.snapshot.record(elapsed_us(snapshot_started_, std::chrono::steady_clock::now()));
  snapshot_bytes_written_ += meta.data_bytes;
  // Keep about snapshot_trailing_bytes of log behind the snapshot, or an
  // eighth of the snapshot's size if that is less.
  uint64_t trailing = options_.snapshot_trailing_entries;
  if (log_entries_since_snapshot_ > 0) {
    const uint64_t average = std::max<uint64_t>(1, log_bytes_since_snapshot_ / log_entries_since_snapshot_);
    const uint64_t trailing_bytes =
        std::min<uint64_t>(options_.snapshot_trailing_bytes,
                           std::max<uint64_t>(limits::kMinTrailingLogBytes,
                                              meta.data_bytes / limits::kTrailingLogSnapshotFraction));
    trailing = std::clamp<uint64_t>(trailing_bytes / average, options_.snapshot_trailing_entries,
                                    std::max<uint64_t>(options_.snapshot_trailing_entries, limits::kMaxTrailingEntries));
  }
  raft_event event{};
  event.type = RAFT_SNAPSHOT;
  event.snapshot.metadata.index = meta.index;
  event.snapshot.metadata.term = meta.term;
  event.snapshot.metadata.configuration_index = meta.configuration_index;
  if (!decode_configuration(configuration_at(meta.index), &event.snapshot.metadata.configuration)) {
    MAILBOX_ASSERT(false, "a configuration of our own log decodes");
  }
  event.snapshot.trailing = static_cast<unsigned>(trailing);
  // The newest snapshot is this one before libraft hears of it (stepping
  // may apply entries and consider the next snapshot).
  if (!snapshot_path_.empty() && snapshot_path_ != snapshot_path_in_progress_) {
    older_snapshots_.push_back(snapshot_path_);
  }
  snapshot_index_ = meta.index;
  snapshot_term_ = meta.term;
  snapshot_path_ = snapshot_path_in_progress_;
  snapshots_taken_ += 1;
  log_bytes_since_snapshot_ = 0;
  log_entries_since_snapshot_ = 0;
  step(event);
  // Mirror libraft's trail: it keeps entries after `index - trailing`.
  if (meta.index > trailing) {
    forget_through(meta.index - trailing);
    env_.compact_log(meta.index - trailing);
  }
  for (auto& path : older_snapshots_) env_.remove_snapshot(path);
  older_snapshots_.clear();
  after_step();
  drive();
}

void RaftDriver::start_install(const raft_update& update) {
  const raft_snapshot_metadata& md = update.snapshot.metadata;
  // The chunk is the descriptor made in on_snapshot_received: the staged path.
  std::string staged(static_cast<const char*>(update.snapshot.chunk.base));
  raft_free(update.snapshot.chunk.base);
  installs_started_ += 1;
  installing_ = true;
  install_metadata_ = md;  // the configuration goes back to libraft with PERSISTED_SNAPSHOT
  install_path_ = join_path(env_.snapshot_dir(), snapshot_file_name(md.index, md.term));
  // The log is replaced by the snapshot: nothing in memory is kept, and
  // requests waiting on entries it covered can no longer be told apart.
  log_.clear();
  log_bytes_ = 0;
  log_first_index_ = md.index + 1;
  configurations_.clear();
  configurations_[md.configuration_index] = encode_configuration(md.configuration);
  for (auto it = proposals_.begin(); it != proposals_.end() && it->first <= md.index;) {
    for (auto& done : it->second.callbacks) {
      if (!done) continue;
      CommandResult r;
      r.status = Status::error(ErrorCode::kUnknownOutcome,
                               "this node installed a snapshot past this request; it may or may not be applied: "
                               "retry with the same rid");
      ++unknown_outcomes_;
      done(std::move(r));
    }
    it = proposals_.erase(it);
  }
  for (auto it = barriers_.begin(); it != barriers_.end() && it->first <= md.index;) {
    for (auto& r : it->second.reads) {
      ReadResult result;
      result.status = unavailable("this node installed a snapshot before the read; retry");
      r.done(std::move(result));
    }
    it = barriers_.erase(it);
  }
  log_info("raft: installing a snapshot at index %llu (term %llu) from %s", static_cast<unsigned long long>(md.index),
           static_cast<unsigned long long>(md.term), staged.c_str());
  install_ticket_ = next_ticket_++;
  env_.install_snapshot(install_ticket_, InstallJob{staged, install_path_, md.index});
}

void RaftDriver::on_install_written(uint64_t ticket, const IoStatus& status) {
  if (ticket != install_ticket_ || !installing_) return;
  if (!status.is_ok()) env_.fatal("cannot persist an installed snapshot: " + status.message());
  installing_ = false;
  if (!snapshot_path_.empty() && snapshot_path_ != install_path_) older_snapshots_.push_back(snapshot_path_);
  snapshot_index_ = install_metadata_.index;
  snapshot_term_ = install_metadata_.term;
  snapshot_path_ = install_path_;
  snapshots_installed_ += 1;
  log_bytes_since_snapshot_ = 0;
  log_entries_since_snapshot_ = 0;
  raft_event event{};
  event.type = RAFT_PERSISTED_SNAPSHOT;
  event.persisted_snapshot.metadata = install_metadata_;  // libraft takes the configuration back
  event.persisted_snapshot.offset = 0;
  event.persisted_snapshot.last = true;
  install_metadata_ = {};
  restoring_ = true;
  restore_ticket_ = next_ticket_++;
  step(event);
  for (auto& path : older_snapshots_) env_.remove_snapshot(path);
  older_snapshots_.clear();
  // The log was reset past the snapshot: the segments before it hold
  // nothing the node needs (without this they pile up, install after
  // install, and a restart reads them all).
  env_.compact_log(snapshot_index_);
  env_.load_snapshot(restore_ticket_, snapshot_path_);
  after_step();
  drive();
}

void RaftDriver::on_snapshot_loaded(uint64_t ticket, Status status, std::unique_ptr<StateMachine> state) {
  if (ticket != restore_ticket_ || !restoring_) return;
  if (!status.is_ok()) env_.fatal("cannot load the installed snapshot: " + status.message);
  state_ = std::move(state);
  restoring_ = false;
  last_applied_ = snapshot_index_;
  applied_term_ = snapshot_term_;
  fail_waiters(unavailable("the state was replaced by a snapshot; retry"));
  log_info("raft: restored a snapshot at index %llu: %llu messages in %zu mailboxes",
           static_cast<unsigned long long>(snapshot_index_), static_cast<unsigned long long>(state_->total_messages()),
           state_->mailbox_count());
  apply_committed();
  after_step();
  drive();
}

// ---------------------------------------------------------------- membership

void RaftDriver::submit_membership(MembershipRequest request, StatusCallback done) {
  if (change_) {
    done(unavailable("another membership change is in progress; retry"));
    return;
  }
  start_membership(std::move(request), std::move(done));
}

bool RaftDriver::submit_configuration(const raft_configuration& configuration, uint64_t* index) {
  raft_buffer buffer{};
  if (raft_configuration_encode(&configuration, &buffer) != 0) return false;
  std::vector<raft_entry> entries(1);
  entries[0].term = raft_current_term(&raft_);
  entries[0].type = RAFT_CHANGE;
  entries[0].buf = buffer;
  entries[0].batch = buffer.base;
  if (!submit_entries(entries, index)) {
    raft_free(buffer.base);
    return false;
  }
  return true;
}

void RaftDriver::start_membership(MembershipRequest request, StatusCallback done) {
  if (raft_state(&raft_) != RAFT_LEADER) {
    done(unavailable("membership changes go to the leader"));
    return;
  }
  if (raft_.configuration_uncommitted_index != 0 || raft_.leader_state.promotee_id != 0 ||
      raft_transferee(&raft_) != 0) {
    done(unavailable("a configuration change is still in progress; retry"));
    return;
  }
  change_ = std::make_unique<MembershipChange>();
  change_->request = request;
  change_->done = std::move(done);
  change_->started_ms = env_.monotonic_ms();
  const raft_server* present = nullptr;
  for (unsigned i = 0; i < raft_.configuration.n; ++i) {
    if (raft_.configuration.servers[i].id == request.id) present = &raft_.configuration.servers[i];
  }
  raft_configuration next;
  switch (request.op) {
    case MembershipRequest::Op::kAdd: {
      if (present != nullptr && present->role == RAFT_VOTER) {
        finish_membership(Status::ok());  // already a voter
        return;
      }
      if (present != nullptr) {
        change_->phase = MembershipChange::Phase::kCatchUp;  // a spare or standby: promote it
        break;
      }
      copy_configuration(raft_.configuration, &next);
      const int rv = raft_configuration_add(&next, request.id, request.address.c_str(), RAFT_SPARE);
      if (rv != 0) {
        raft_configuration_close(&next);
        finish_membership(Status::error(ErrorCode::kInvalidArgument, std::string("cannot add server: ") +
                                                                         raft_strerror(rv)));
        return;
      }
      change_->phase = MembershipChange::Phase::kAddSpare;
      change_->change_term = raft_current_term(&raft_);
      const bool ok = submit_configuration(next, &change_->change_index);
      raft_configuration_close(&next);
      if (!ok) finish_membership(unavailable("cannot propose the configuration change; retry"));
      return;
    }
    case MembershipRequest::Op::kRemove: {
      if (present == nullptr) {
        finish_membership(Status::error(ErrorCode::kNotFound, "no such server in the configuration"));
        return;
      }
      raft_configuration_init(&next);
      for (unsigned i = 0; i < raft_.configuration.n; ++i) {
        const raft_server& s = raft_.configuration.servers[i];
        if (s.id != request.id) raft_configuration_add(&next, s.id, s.address, s.role);
      }
      size_t voters = 0;
      for (unsigned i = 0; i < next.n; ++i) voters += next.servers[i].role == RAFT_VOTER ? 1 : 0;
      if (voters == 0) {
        raft_configuration_close(&next);
        finish_membership(Status::error(ErrorCode::kInvalidArgument, "cannot remove the last voter"));
        return;
      }
      change_->phase = MembershipChange::Phase::kRemove;
      change_->change_term = raft_current_term(&raft_);
      const bool ok = submit_configuration(next, &change_->change_index);
      raft_configuration_close(&next);
      if (!ok) finish_membership(unavailable("cannot propose the configuration change; retry"));
      return;
    }
    case MembershipRequest::Op::kTransfer: {
      if (request.id == options_.node_id && raft_state(&raft_) == RAFT_LEADER) {
        finish_membership(Status::ok());  // it leads already: nothing to move
        return;
      }
      raft_event event{};
      event.type = RAFT_TRANSFER;
      event.transfer.server_id = request.id;
      change_->phase = MembershipChange::Phase::kTransfer;
      const int rv = step(event);
      if (rv != 0) {
        const ErrorCode code = rv == RAFT_NOTLEADER ? ErrorCode::kUnavailable : ErrorCode::kInvalidArgument;
        finish_membership(Status::error(code, std::string("cannot transfer leadership: ") + raft_strerror(rv)));
        return;
      }
      after_step();
      return;
    }
  }
  progress_membership();
}

void RaftDriver::progress_membership() {
  if (!change_ || stepping_) return;
  const bool leader = raft_state(&raft_) == RAFT_LEADER;
  switch (change_->phase) {
    case MembershipChange::Phase::kCatchUp: {
      if (!leader) return;
      int status = RAFT_CATCH_UP_NONE;
      if (raft_catch_up(&raft_, change_->request.id, &status) != 0) {
        finish_membership(Status::error(ErrorCode::kNotFound, "the server to promote is not in the configuration"));
        return;
      }
      if (status == RAFT_CATCH_UP_NONE && raft_.leader_state.promotee_id == 0) {
        raft_event event{};
        event.type = RAFT_CATCH_UP;
        event.catch_up.server_id = change_->request.id;
        step(event);
        return;
      }
      if (status == RAFT_CATCH_UP_ABORTED) {
        // libraft aborts a catch-up when the server does not answer for an
        // election timeout, which a server installing a large snapshot (or
        // restarting meanwhile) does not. Start it again while the change
        // is young; only a server that stays behind that long fails it.
        if (env_.monotonic_ms() - change_->started_ms < kMaxCatchUpMs) {
          ++catch_up_restarts_;
          raft_event event{};
          event.type = RAFT_CATCH_UP;
          event.catch_up.server_id = change_->request.id;
          step(event);
          return;
        }
        finish_membership(unavailable("the new server could not catch up with the log in " +
                                      std::to_string(kMaxCatchUpMs / 1000) + " s; retry"));
        return;
      }
      if (status != RAFT_CATCH_UP_FINISHED) return;
      if (raft_transferee(&raft_) != 0) {
        finish_membership(unavailable("leadership is moving; retry"));
        return;
      }
      raft_configuration next;
      copy_configuration(raft_.configuration, &next);
      for (unsigned i = 0; i < next.n; ++i) {
        if (next.servers[i].id == change_->request.id) next.servers[i].role = RAFT_VOTER;
      }
      change_->phase = MembershipChange::Phase::kPromote;
      change_->change_term = raft_current_term(&raft_);
      const bool ok = submit_configuration(next, &change_->change_index);
      raft_configuration_close(&next);
      if (!ok) finish_membership(unavailable("cannot propose the promotion; retry"));
      return;
    }
    case MembershipChange::Phase::kTransfer: {
      const int64_t waited_ms = env_.monotonic_ms() - change_->started_ms;
      if (leader_id_ != 0 && leader_id_ != options_.node_id) {
        if (change_->request.id == 0 || leader_id_ == change_->request.id) {
          finish_membership(Status::ok());
        } else {
          finish_membership(unavailable("leadership moved to node " + std::to_string(leader_id_) + ", not node " +
                                        std::to_string(change_->request.id)));
        }
      } else if (leader && raft_transferee(&raft_) == 0 &&
                 waited_ms > static_cast<int64_t>(options_.election_timeout_ms)) {
        finish_membership(unavailable("leadership did not move in time"));
      } else if (!leader && waited_ms > 3 * static_cast<int64_t>(options_.election_timeout_ms)) {
        finish_membership(unavailable("leadership left this node; no new leader is known yet"));
      }
      return;
    }
    default:
      return;  // waiting for the configuration entry to be applied
  }
}

void RaftDriver::finish_membership(Status status) {
  if (!change_) return;
  auto change = std::move(change_);
  refresh_views();
  change->done(std::move(status));
}

// ---------------------------------------------------------------- views

DriverStatus RaftDriver::status() const {
  DriverStatus s;
  const int st = raft_initialized_ ? raft_state(const_cast<raft*>(&raft_)) : RAFT_UNAVAILABLE;
  s.state = raft_state_name(st);
  s.is_leader = st == RAFT_LEADER;
  s.leader_id = leader_id_;
  s.term = raft_initialized_ ? raft_current_term(&raft_) : 0;
  s.commit_index = raft_initialized_ ? raft_commit_index(&raft_) : 0;
  s.applied_index = last_applied_;
  s.last_index = raft_initialized_ ? raft_last_index(const_cast<raft*>(&raft_)) : 0;
  s.persisted_index = raft_.last_stored;
  s.snapshot_index = snapshot_index_;
  s.configuration = configuration_view_;
  s.voters = voters_;
  s.sole_voter = sole_voter_;
  s.parked_waiters = waiter_count();
  s.parked_waiter_bytes = parked_waiter_bytes_;
  s.waiters_refused = waiters_refused_;
  s.snapshots_taken = snapshots_taken_;
  s.snapshots_installed = snapshots_installed_;
  s.longest_snapshot_stall_us = longest_snapshot_stall_us_;
  s.messages = state_->total_messages();
  s.log_entries_in_memory = log_.size();
  s.log_bytes_in_memory = log_bytes_;
  s.unknown_outcomes = unknown_outcomes_;
  s.leaders_forgotten = leaders_forgotten_;
  s.transferee = raft_initialized_ ? raft_transferee(const_cast<raft*>(&raft_)) : 0;
  s.parked_commands = parked_commands_.size();
  s.pending_proposals = proposals_.size();
  s.log_disk_full = log_disk_full_;
  s.refused_disk_full = refused_disk_full_;
  s.disk_full_transfers = disk_full_transfers_;
  s.catch_up_restarts = catch_up_restarts_;
  s.snapshot_bytes_written = snapshot_bytes_written_;
  if (s.is_leader) {
    for (const auto& server : configuration_view_) {
      if (server.id == options_.node_id) continue;
      raft_index match = 0;
      if (raft_match_index(&raft_, server.id, &match) == 0) s.followers.push_back({server.id, match});
    }
  }
  return s;
}

bool RaftDriver::is_leader() const { return raft_initialized_ && raft_state(const_cast<raft*>(&raft_)) == RAFT_LEADER; }
uint64_t RaftDriver::leader_id() const { return leader_id_; }
bool RaftDriver::sole_voter() const { return sole_voter_; }

}  // namespace mailbox
