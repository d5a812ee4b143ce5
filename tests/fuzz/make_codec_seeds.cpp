// Writes the seed corpora of the codec fuzz targets (entry, raft_message,
// snapshot) into the directory given: well-formed inputs made by the
// production encoders, so the fuzzers start past the parsers' first checks
// (the snapshot file's checksum above all). Run by tests/fuzz/make_seeds.sh;
// the seeds are committed under tests/fuzz/corpus/.
//
// Usage: make_codec_seeds CORPUS_DIR
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "core/commands.hpp"
#include "core/state_machine.hpp"
#include "replication/raft_codec.hpp"
#include "replication/snapshot_store.hpp"
#include "tests/sim/sim_file_system.hpp"

namespace {
using namespace mailbox;

void write_seed(const std::string& dir, const std::string& name, const std::string& bytes) {
  std::ofstream out(dir + "/" + name, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "cannot write %s/%s\n", dir.c_str(), name.c_str());
    std::exit(1);
  }
}

std::vector<Entry> sample_entries() {
  std::vector<Entry> out;
  Entry puts;
  puts.leader_time_ms = 1'790'000'000'000;
  puts.commands.push_back(PutCommand{"alice", "text/plain", "hello", 60'000, "rid-1", 0});
  puts.commands.push_back(PutCommand{"bob", "application/octet-stream", std::string("\0\xff", 2), 1, "", 77});
  out.push_back(puts);
  Entry work;
  work.leader_time_ms = 1'790'000'000'010;
  work.proposer_token = 42;
  work.commands.push_back(ConsumeCommand{"alice", 10, 30'000, "c-1"});
  work.commands.push_back(AckCommand{"alice", 1, ""});
  work.commands.push_back(NackCommand{"alice", 2, "n-1"});
  work.commands.push_back(SweepCommand{});
  work.commands.push_back(ConfigureCommand{StateConfig{}});
  out.push_back(work);
  return out;
}

StateMachine sample_state() {
  StateMachine sm;
  for (const auto& e : sample_entries()) sm.apply(e);
  Entry more;
  more.leader_time_ms = 1'790'000'000'020;
  more.commands.push_back(PutCommand{"carol", "text/plain", "x", 60'000, "", 0});
  more.commands.push_back(ConsumeCommand{"carol", 1, 5'000, ""});
  sm.apply(more);
  return sm;
}

void raft_seeds(const std::string& dir) {
  int n = 0;
  auto emit = [&](const raft_message& m) {
    std::string bytes;
    encode_raft_message(m, &bytes);
    write_seed(dir, "seed-" + std::to_string(++n), bytes);
  };
  raft_message m{};
  m.type = RAFT_REQUEST_VOTE;
  m.request_vote = {};
  m.request_vote.version = 2;
  m.request_vote.term = 3;
  m.request_vote.candidate_id = 2;
  m.request_vote.last_log_index = 17;
  m.request_vote.last_log_term = 2;
  m.request_vote.pre_vote = true;
  emit(m);
  m = {};
  m.type = RAFT_REQUEST_VOTE_RESULT;
  m.request_vote_result.version = 2;
  m.request_vote_result.term = 3;
  m.request_vote_result.vote_granted = true;
  emit(m);
  std::vector<std::string> payloads;
  for (const auto& e : sample_entries()) payloads.push_back(encode_entry(e));
  std::vector<raft_entry> entries(payloads.size());
  for (size_t i = 0; i < payloads.size(); ++i) {
    entries[i].term = 3;
    entries[i].type = RAFT_COMMAND;
    entries[i].buf.base = payloads[i].data();
    entries[i].buf.len = payloads[i].size();
  }
  m = {};
  m.type = RAFT_APPEND_ENTRIES;
  m.append_entries.version = 0;
  m.append_entries.term = 3;
  m.append_entries.prev_log_index = 16;
  m.append_entries.prev_log_term = 2;
  m.append_entries.leader_commit = 16;
  m.append_entries.entries = entries.data();
  m.append_entries.n_entries = static_cast<unsigned>(entries.size());
  emit(m);
  m.append_entries.n_entries = 0;  // a heartbeat
  emit(m);
  m = {};
  m.type = RAFT_APPEND_ENTRIES_RESULT;
  m.append_entries_result.term = 3;
  m.append_entries_result.last_log_index = 18;
  emit(m);
  m = {};
  m.type = RAFT_INSTALL_SNAPSHOT;
  m.install_snapshot.term = 3;
  m.install_snapshot.last_index = 100;
  m.install_snapshot.last_term = 3;
  m.install_snapshot.conf_index = 1;
  emit(m);
  m = {};
  m.type = RAFT_TIMEOUT_NOW;
  m.timeout_now.term = 3;
  m.timeout_now.last_log_index = 18;
  m.timeout_now.last_log_term = 3;
  emit(m);
}

void snapshot_seeds(const std::string& dir) {
  StateMachine sm = sample_state();
  const std::string data = sm.serialize();
  write_seed(dir, "seed-state", std::string(1, '\0') + data);
  write_seed(dir, "seed-empty-state", std::string(1, '\0') + StateMachine().serialize());
  // A whole snapshot file, as a node writes it.
  sim::SimFileSystem fs([](uint64_t bound) { return bound == 0 ? 0 : bound - 1; });
  fs.make_dir("/s");
  const std::string configuration = "conf";  // opaque to the reader
  SnapshotMeta meta;
  meta.index = 100;
  meta.term = 3;
  meta.configuration_index = 1;
  meta.configuration_bytes = configuration.size();
  meta.data_bytes = data.size();
  SnapshotWriter writer(fs, "/s", "/s/snap", "/s/snap.tmp");
  if (!writer.begin(meta).is_ok() || !writer.append(configuration).is_ok() || !writer.append(data).is_ok() ||
      !writer.commit().is_ok()) {
    std::fprintf(stderr, "cannot write a snapshot file\n");
    std::exit(1);
  }
  SnapshotReader reader(fs, "/s/snap");
  std::string raw;
  if (!reader.open().is_ok() || !reader.read_raw(0, meta.file_bytes(), &raw).is_ok()) {
    std::fprintf(stderr, "cannot read the snapshot file back\n");
    std::exit(1);
  }
  write_seed(dir, "seed-file", std::string(1, '\1') + raw);
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_codec_seeds CORPUS_DIR\n");
    return 2;
  }
  const std::string corpus = argv[1];
  int n = 0;
  for (const auto& e : sample_entries()) write_seed(corpus + "/entry", "seed-" + std::to_string(++n), encode_entry(e));
  raft_seeds(corpus + "/raft_message");
  snapshot_seeds(corpus + "/snapshot");
  return 0;
}
