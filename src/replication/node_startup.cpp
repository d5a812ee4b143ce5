#include "replication/node_startup.hpp"

#include <algorithm>

#include "replication/raft_include.hpp"
#include "replication/snapshot_store.hpp"

namespace mailbox {
namespace {

Status configuration_of(std::vector<RaftPeer> voters, std::string* encoded) {
  if (voters.empty()) return Status::error(ErrorCode::kInvalidArgument, "no voters");
  // Every node of a new cluster must write the same first entry.
  std::sort(voters.begin(), voters.end(), [](const RaftPeer& a, const RaftPeer& b) { return a.id < b.id; });
  raft_configuration configuration;
  raft_configuration_init(&configuration);
  for (const auto& peer : voters) {
    const int rv = raft_configuration_add(&configuration, peer.id, peer.address.c_str(), RAFT_VOTER);
    if (rv != 0) {
      raft_configuration_close(&configuration);
      return Status::error(ErrorCode::kInvalidArgument,
                           "bad voter " + std::to_string(peer.id) + " (" + peer.address + "): " + raft_strerror(rv));
    }
  }
  raft_buffer buffer{};
  const int rv = raft_configuration_encode(&configuration, &buffer);
  raft_configuration_close(&configuration);
  if (rv != 0) return Status::error(ErrorCode::kInternal, std::string("cannot encode a configuration: ") + raft_strerror(rv));
  encoded->assign(static_cast<const char*>(buffer.base), buffer.len);
  raft_free(buffer.base);
  return Status::ok();
}

Status io_error(const std::string& what, const IoStatus& s) {
  return Status::error(ErrorCode::kInternal, what + ": " + s.message());
}

}  // namespace

std::string log_dir_of(const std::string& data_dir) { return join_path(data_dir, kLogDirName); }
std::string snapshot_dir_of(const std::string& data_dir) { return join_path(data_dir, kSnapshotDirName); }
std::string raft_state_path_of(const std::string& data_dir) { return join_path(data_dir, kRaftStateFileName); }

Status open_node_storage(FileSystem& fs, const std::string& data_dir, const StartupOptions& options, LogStore& log,
                         TermVoteStore& term_vote, DurableState* out, std::vector<std::string>* notes) {
  DataDirectoryState dir_state;
  Status s = inspect_data_directory(fs, data_dir, options.identity, &dir_state);
  if (!s.is_ok()) return s;
  notes->insert(notes->end(), dir_state.notes.begin(), dir_state.notes.end());
  if (dir_state.pristine) {
    if (options.recover) {
      return Status::error(ErrorCode::kInvalidArgument, "--recover needs this node's existing data directory");
    }
    s = write_identity(fs, data_dir, options.identity);
    if (!s.is_ok()) return s;
  }
  const std::string snapshots = snapshot_dir_of(data_dir);
  IoStatus io = fs.make_dir(snapshots);
  if (!io.is_ok()) return io_error("cannot create the snapshot directory", io);

  uint64_t term = 0, vote = 0;
  s = term_vote.load(&term, &vote);
  if (!s.is_ok()) return s;
  s = log.open(&out->log);
  if (!s.is_ok()) return s;
  notes->insert(notes->end(), out->log.repairs.begin(), out->log.repairs.end());

  // Snapshots: the newest must check end to end; temporary files of
  // interrupted writes and transfers go.
  std::vector<std::string> names;
  io = fs.list(snapshots, &names);
  if (!io.is_ok()) return io_error("cannot list snapshots", io);
  bool removed = false;
  for (const auto& name : names) {
    uint64_t index = 0, snapshot_term = 0;
    if (parse_snapshot_file_name(name, &index, &snapshot_term)) continue;
    if (name.size() > 4 && name.substr(name.size() - 4) == ".tmp") {
      fs.remove(join_path(snapshots, name));
      removed = true;
    } else {
      notes->push_back("ignored " + join_path(snapshots, name) + ": not a snapshot");
    }
  }
  if (removed) {
    io = fs.sync_dir(snapshots);
    if (!io.is_ok()) return io_error("cannot clean the snapshot directory", io);
  }
  std::vector<SnapshotFile> files;
  io = list_snapshots(fs, snapshots, &files);
  if (!io.is_ok()) return io_error("cannot list snapshots", io);
  out->has_snapshot = false;
  if (!files.empty()) {
    SnapshotReader reader(fs, files.front().path);
    s = reader.open();
    if (s.is_ok()) s = reader.verify();
    if (s.is_ok() && (reader.meta().index != files.front().index || reader.meta().term != files.front().term)) {
      s = Status::error(ErrorCode::kInternal, "its header does not match its name");
    }
    if (!s.is_ok()) {
      return Status::error(ErrorCode::kInternal, "the newest snapshot " + files.front().path +
                                                     " is damaged (" + s.message +
                                                     "): this node refuses to start. Replace its data from a "
                                                     "healthy replica (docs/OPERATIONS.md).");
    }
    s = reader.read_data(&out->snapshot_data);
    if (!s.is_ok()) return s;
    out->has_snapshot = true;
    out->snapshot_file = files.front();
    out->snapshot = reader.meta();
    out->snapshot_configuration = reader.configuration();
    // Older snapshots are superseded.
    for (size_t k = 1; k < files.size(); ++k) fs.remove(files[k].path);
  }

  const bool empty_log = out->log.entries.empty() && out->log.first_index == 1;
  if (term == 0 && empty_log && !out->has_snapshot && !options.initial_voters.empty() && !options.recover) {
    // A brand-new cluster: term 1, and the first configuration at index 1.
    std::string conf;
    s = configuration_of(options.initial_voters, &conf);
    if (!s.is_ok()) return s;
    io = term_vote.save(1, 0);
    if (!io.is_ok()) return io_error("cannot bootstrap", io);
    term = 1;
    LogEntry first{1, 1, RAFT_CHANGE, Payload::copy_of(conf)};
    io = log.append(&first, 1);
    if (!io.is_ok()) return io_error("cannot bootstrap", io);
    out->log.entries.push_back(first);
    notes->push_back("bootstrapped a new cluster of " + std::to_string(options.initial_voters.size()) + " voters");
  } else if (options.recover) {
    // raft_recover's rule: the new configuration follows the last entry,
    // in its term.
    std::string conf;
    s = configuration_of(options.initial_voters, &conf);
    if (!s.is_ok()) return s;
    uint64_t next = out->log.entries.empty() ? out->log.first_index : out->log.entries.back().index + 1;
    uint64_t last_term = out->log.entries.empty() ? 0 : out->log.entries.back().term;
    if (out->has_snapshot && next <= out->snapshot.index) next = out->snapshot.index + 1;
    if (last_term == 0) last_term = out->has_snapshot ? out->snapshot.term : term;
    if (last_term == 0) return Status::error(ErrorCode::kInvalidArgument, "--recover: this node has no log to recover");
    LogEntry change{next, last_term, RAFT_CHANGE, Payload::copy_of(conf)};
    if (next != log.last_index() + 1) {
      // The log ends before the snapshot: it continues after it.
      io = log.reset(next);
      if (!io.is_ok()) return io_error("cannot recover", io);
      out->log.entries.clear();
      out->log.first_index = next;
    }
    if (out->log.entries.empty()) out->log.first_index = next;
    io = log.append(&change, 1);
    if (!io.is_ok()) return io_error("cannot recover", io);
    out->log.entries.push_back(change);
    notes->push_back("recovered: forced a configuration of " + std::to_string(options.initial_voters.size()) +
                     " voters at index " + std::to_string(next));
  }
  out->term = term;
  out->voted_for = vote;
  return Status::ok();
}

}  // namespace mailbox
