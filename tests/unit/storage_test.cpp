// Node storage (identity, term and vote), snapshot files and the Raft
// message codec.
#include <gtest/gtest.h>

#include <random>

#include "replication/node_storage.hpp"
#include "replication/raft_codec.hpp"
#include "replication/snapshot_store.hpp"
#include "tests/sim/sim_file_system.hpp"

namespace mailbox {
namespace {

struct Disk {
  std::mt19937_64 rng{7};
  sim::SimFileSystem fs{[this](uint64_t n) { return rng() % n; }};
  Disk() { fs.make_dir("/d"); }
  void touch(const std::string& path, const std::string& text = "x") {
    std::unique_ptr<File> f;
    ASSERT_TRUE(fs.open(path, OpenMode::kCreateExclusive, &f).is_ok());
    ASSERT_TRUE(f->write_at(0, text.data(), text.size()).is_ok());
  }
};

// ---------------------------------------------------------------- data directory

TEST(DataDirectory, AnEmptyDirectoryIsPristineAndOtherFilesAreIgnored) {
  Disk d;
  d.fs.make_dir("/d/lost+found");
  d.touch("/d/.keep");
  DataDirectoryState state;
  ASSERT_TRUE(inspect_data_directory(d.fs, "/d", NodeIdentity{1, "c"}, &state).is_ok());
  EXPECT_TRUE(state.pristine);
  ASSERT_EQ(state.notes.size(), 2u);
  EXPECT_NE(state.notes[0].find(".keep"), std::string::npos);
  EXPECT_NE(state.notes[1].find("lost+found"), std::string::npos);
}

TEST(DataDirectory, AnotherNodesOrClustersDataIsRefused) {
  Disk d;
  ASSERT_TRUE(write_identity(d.fs, "/d", NodeIdentity{1, "prod"}).is_ok());
  DataDirectoryState state;
  ASSERT_TRUE(inspect_data_directory(d.fs, "/d", NodeIdentity{1, "prod"}, &state).is_ok());
  EXPECT_FALSE(state.pristine);
  Status s = inspect_data_directory(d.fs, "/d", NodeIdentity{2, "prod"}, &state);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message.find("belongs to node 1"), std::string::npos) << s.message;
  s = inspect_data_directory(d.fs, "/d", NodeIdentity{1, "staging"}, &state);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message.find("cluster 'prod'"), std::string::npos) << s.message;
}

TEST(DataDirectory, LibraftFilesAndAnonymousRaftDataAreRefused) {
  Disk d;
  d.touch("/d/metadata1");
  DataDirectoryState state;
  Status s = inspect_data_directory(d.fs, "/d", NodeIdentity{1, "c"}, &state);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message.find("libraft"), std::string::npos) << s.message;
  Disk e;
  e.touch("/d/raft-state");
  s = inspect_data_directory(e.fs, "/d", NodeIdentity{1, "c"}, &state);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message.find("no identity"), std::string::npos) << s.message;
}

// ---------------------------------------------------------------- term and vote

TEST(TermVote, SavedValuesSurviveACrashAndATornSlot) {
  Disk d;
  {
    TermVoteStore store(d.fs, "/d/raft-state", 3);
    uint64_t term = 9, vote = 9;
    ASSERT_TRUE(store.load(&term, &vote).is_ok());
    EXPECT_EQ(term, 0u);
    EXPECT_EQ(vote, 0u);
    ASSERT_TRUE(store.save(4, 2).is_ok());
    ASSERT_TRUE(store.save(5, 3).is_ok());
  }
  d.fs.crash();
  {
    TermVoteStore store(d.fs, "/d/raft-state", 3);
    uint64_t term = 0, vote = 0;
    ASSERT_TRUE(store.load(&term, &vote).is_ok());
    EXPECT_EQ(term, 5u);
    EXPECT_EQ(vote, 3u);
  }
  // The newest slot damaged: the previous one stands.
  ASSERT_TRUE(d.fs.flip_bit("/d/raft-state", 16, 1));  // slot 0 holds seq 2 (term 5)
  TermVoteStore store(d.fs, "/d/raft-state", 3);
  uint64_t term = 0, vote = 0;
  ASSERT_TRUE(store.load(&term, &vote).is_ok());
  EXPECT_EQ(term, 4u);
  // Both damaged: refuse.
  ASSERT_TRUE(d.fs.flip_bit("/d/raft-state", 512 + 16, 1));
  TermVoteStore broken(d.fs, "/d/raft-state", 3);
  EXPECT_FALSE(broken.load(&term, &vote).is_ok());
}

// ---------------------------------------------------------------- snapshots

SnapshotMeta write_snapshot(Disk& d, uint64_t index, const std::string& conf, const std::string& data) {
  SnapshotMeta meta{index, 3, 1, conf.size(), data.size()};
  const std::string path = "/d/" + snapshot_file_name(index, 3);
  SnapshotWriter w(d.fs, "/d", path, path + ".tmp");
  EXPECT_TRUE(w.begin(meta).is_ok());
  EXPECT_TRUE(w.append(conf).is_ok());
  for (size_t at = 0; at < data.size(); at += 1000) EXPECT_TRUE(w.append(data.substr(at, 1000)).is_ok());
  EXPECT_TRUE(w.commit().is_ok());
  return meta;
}

TEST(Snapshots, WrittenWholeReadBackAndCheckedEndToEnd) {
  Disk d;
  const std::string data(3'000'000, 'q');
  write_snapshot(d, 42, "conf", data);
  d.fs.crash();
  std::vector<SnapshotFile> files;
  ASSERT_TRUE(list_snapshots(d.fs, "/d", &files).is_ok());
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].index, 42u);
  SnapshotReader r(d.fs, files[0].path);
  ASSERT_TRUE(r.open().is_ok());
  ASSERT_TRUE(r.verify().is_ok());
  EXPECT_EQ(r.configuration(), "conf");
  std::string got;
  ASSERT_TRUE(r.read_data(&got).is_ok());
  EXPECT_EQ(got, data);
  ASSERT_TRUE(d.fs.flip_bit(files[0].path, kSnapshotHeaderBytes + 2'000'000, 5));
  SnapshotReader damaged(d.fs, files[0].path);
  ASSERT_TRUE(damaged.open().is_ok());
  EXPECT_FALSE(damaged.verify().is_ok());
}

TEST(Snapshots, AnUncommittedWriteLeavesNothing) {
  Disk d;
  {
    SnapshotWriter w(d.fs, "/d", "/d/" + snapshot_file_name(5, 1), "/d/x.tmp");
    ASSERT_TRUE(w.begin(SnapshotMeta{5, 1, 1, 1, 1}).is_ok());
    ASSERT_TRUE(w.append("c").is_ok());
  }
  std::vector<SnapshotFile> files;
  ASSERT_TRUE(list_snapshots(d.fs, "/d", &files).is_ok());
  EXPECT_TRUE(files.empty());
  EXPECT_FALSE(d.fs.exists("/d/x.tmp"));
}

TEST(Snapshots, AStagedTransferIsCheckedWhole) {
  Disk d;
  const SnapshotMeta meta = write_snapshot(d, 7, "cc", std::string(100'000, 'z'));
  SnapshotReader source(d.fs, "/d/" + snapshot_file_name(7, 3));
  ASSERT_TRUE(source.open().is_ok());
  SnapshotStager stager(d.fs, "/d/incoming.tmp", meta.file_bytes());
  ASSERT_TRUE(stager.open().is_ok());
  std::string chunk;
  for (uint64_t at = 0; at < meta.file_bytes(); at += 4096) {
    ASSERT_TRUE(source.read_raw(at, 4096, &chunk).is_ok());
    ASSERT_TRUE(stager.write(at, chunk).is_ok());
  }
  SnapshotMeta got;
  std::string conf;
  ASSERT_TRUE(stager.finish(&got, &conf).is_ok());
  EXPECT_EQ(got.index, 7u);
  EXPECT_EQ(conf, "cc");
}

// ---------------------------------------------------------------- codec

std::string encoded(const raft_message& m) {
  std::string out;
  encode_raft_message(m, &out);
  return out;
}

TEST(RaftCodec, EveryMessageTypeRoundTrips) {
  raft_message rv{};
  rv.type = RAFT_REQUEST_VOTE;
  rv.request_vote = {2, 7, 3, 100, 6, true, true};
  raft_message rvr{};
  rvr.type = RAFT_REQUEST_VOTE_RESULT;
  rvr.request_vote_result = {2, 7, true, true, 1, 500};
  raft_message aer{};
  aer.type = RAFT_APPEND_ENTRIES_RESULT;
  aer.append_entries_result = {2, 9, 44, 43, 1, 7};
  raft_message tn{};
  tn.type = RAFT_TIMEOUT_NOW;
  tn.timeout_now = {0, 9, 50, 8};
  raft_message is{};
  is.type = RAFT_INSTALL_SNAPSHOT;
  is.install_snapshot.term = 9;
  is.install_snapshot.last_index = 1000;
  is.install_snapshot.last_term = 8;
  is.install_snapshot.conf_index = 3;
  for (const raft_message* m : {&rv, &rvr, &aer, &tn, &is}) {
    DecodedMessage d;
    ASSERT_TRUE(decode_raft_message(encoded(*m), &d).is_ok());
    EXPECT_EQ(encoded(d.message()), encoded(*m));
  }
  DecodedMessage d;
  ASSERT_TRUE(decode_raft_message(encoded(rv), &d).is_ok());
  EXPECT_EQ(d.message().request_vote.candidate_id, 3u);
  EXPECT_TRUE(d.message().request_vote.pre_vote);
}

TEST(RaftCodec, AppendEntriesCarriesEntriesInOneBlock) {
  std::string a = "first", b = "second entry";
  raft_entry entries[2]{};
  entries[0] = {4, RAFT_COMMAND, {a.data(), a.size()}, nullptr};
  entries[1] = {5, RAFT_CHANGE, {b.data(), b.size()}, nullptr};
  raft_message ae{};
  ae.type = RAFT_APPEND_ENTRIES;
  ae.append_entries.term = 5;
  ae.append_entries.prev_log_index = 10;
  ae.append_entries.prev_log_term = 4;
  ae.append_entries.leader_commit = 9;
  ae.append_entries.entries = entries;
  ae.append_entries.n_entries = 2;
  DecodedMessage d;
  ASSERT_TRUE(decode_raft_message(encoded(ae), &d).is_ok());
  const auto& got = d.message().append_entries;
  ASSERT_EQ(got.n_entries, 2u);
  EXPECT_EQ(std::string(static_cast<char*>(got.entries[1].buf.base), got.entries[1].buf.len), b);
  EXPECT_EQ(got.entries[1].type, RAFT_CHANGE);
  EXPECT_EQ(got.entries[0].batch, got.entries[1].batch);
  EXPECT_EQ(got.entries[0].buf.base, got.entries[0].batch);
}

TEST(RaftCodec, MalformedBodiesAreRefused) {
  raft_message ae{};
  ae.type = RAFT_APPEND_ENTRIES;
  std::string e = "x";
  raft_entry one{1, RAFT_COMMAND, {e.data(), e.size()}, nullptr};
  ae.append_entries.entries = &one;
  ae.append_entries.n_entries = 1;
  const std::string good = encoded(ae);
  DecodedMessage d;
  for (size_t cut = 0; cut < good.size(); ++cut) {
    EXPECT_FALSE(decode_raft_message(good.substr(0, cut), &d).is_ok()) << cut;
  }
  EXPECT_FALSE(decode_raft_message(good + "z", &d).is_ok());
  std::string bad_type = good;
  bad_type[0] = 99;
  EXPECT_FALSE(decode_raft_message(bad_type, &d).is_ok());
  std::string bad_entry_type = good;
  bad_entry_type[2 + 8 * 4 + 4 + 8] = 9;
  EXPECT_FALSE(decode_raft_message(bad_entry_type, &d).is_ok());
}

}  // namespace
}  // namespace mailbox
