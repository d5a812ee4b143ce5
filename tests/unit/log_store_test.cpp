// The log store as scripts: appends, truncations, resets, compaction, and
// what recovery does with torn writes and damage (on the simulated disk, so
// a crash can lose and tear unsynced writes).
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "replication/log_format.hpp"
#include "replication/log_store.hpp"
#include "replication/raft_include.hpp"
#include "tests/sim/sim_file_system.hpp"

namespace mailbox {
namespace {

constexpr uint64_t kSmallSegmentBytes = 16 * 1024;

LogEntry entry(uint64_t index, uint64_t term, std::string payload) {
  return LogEntry{index, term, RAFT_COMMAND, Payload::copy_of(payload)};
}

std::vector<LogEntry> entries(uint64_t first, uint64_t count, uint64_t term, size_t bytes = 100) {
  std::vector<LogEntry> out;
  for (uint64_t i = 0; i < count; ++i) {
    out.push_back(entry(first + i, term, std::string(bytes, static_cast<char>('a' + (first + i) % 26))));
  }
  return out;
}

struct Fixture {
  std::mt19937_64 rng{42};
  sim::SimFileSystem fs{[this](uint64_t n) { return rng() % n; }};
  std::string dir = "/data/log";
  LogStoreOptions options{7, kSmallSegmentBytes, 2};

  Fixture() { fs.make_dir("/data"); }
  std::unique_ptr<LogStore> open(RecoveredLog* log, Status* status = nullptr) {
    auto store = std::make_unique<LogStore>(fs, dir, options);
    Status s = store->open(log);
    if (status) *status = s;
    else EXPECT_TRUE(s.is_ok()) << s.message;
    return store;
  }
};

void expect_log(const RecoveredLog& log, uint64_t first, uint64_t last, uint64_t term_of_last) {
  ASSERT_EQ(log.first_index, first);
  ASSERT_EQ(log.entries.size(), last + 1 - first);
  if (!log.entries.empty()) {
    EXPECT_EQ(log.entries.back().index, last);
    EXPECT_EQ(log.entries.back().term, term_of_last);
  }
  for (size_t i = 0; i < log.entries.size(); ++i) EXPECT_EQ(log.entries[i].index, first + i);
}

TEST(LogStore, AppendsSurviveReopenAcrossSegments) {
  Fixture f;
  RecoveredLog log;
  auto store = f.open(&log);
  expect_log(log, 1, 0, 0);
  for (uint64_t i = 1; i <= 300; i += 10) {
    auto batch = entries(i, 10, 1, 700);
    ASSERT_TRUE(store->append(batch.data(), batch.size()).is_ok());
  }
  EXPECT_EQ(store->last_index(), 300u);
  store.reset();
  store = f.open(&log);
  expect_log(log, 1, 300, 1);
  EXPECT_EQ(log.entries[41].payload.view(), std::string(700, static_cast<char>('a' + 42 % 26)));
  EXPECT_TRUE(log.repairs.empty());
}

TEST(LogStore, SurvivesACrashAfterEverySyncedWrite) {
  Fixture f;
  RecoveredLog log;
  auto store = f.open(&log);
  auto batch = entries(1, 50, 1, 300);
  ASSERT_TRUE(store->append(batch.data(), batch.size()).is_ok());
  store.reset();
  f.fs.crash();
  store = f.open(&log);
  expect_log(log, 1, 50, 1);
}

TEST(LogStore, ASuffixTruncationReplacesTheTailCrashAtomically) {
  Fixture f;
  RecoveredLog log;
  auto store = f.open(&log);
  auto old = entries(1, 10, 1);
  ASSERT_TRUE(store->append(old.data(), old.size()).is_ok());
  auto replacement = entries(6, 3, 2);
  ASSERT_TRUE(store->append(replacement.data(), replacement.size()).is_ok());
  EXPECT_EQ(store->last_index(), 8u);
  store.reset();
  f.fs.crash();
  store = f.open(&log);
  expect_log(log, 1, 8, 2);
  EXPECT_EQ(log.entries[4].term, 1u);
  EXPECT_EQ(log.entries[5].term, 2u);
  // And it goes on from there.
  auto more = entries(9, 2, 2);
  ASSERT_TRUE(store->append(more.data(), more.size()).is_ok());
  store.reset();
  store = f.open(&log);
  expect_log(log, 1, 10, 2);
}

TEST(LogStore, AResetContinuesAfterASnapshotAndSurvivesReopen) {
  Fixture f;
  RecoveredLog log;
  auto store = f.open(&log);
  auto old = entries(1, 10, 1);
  ASSERT_TRUE(store->append(old.data(), old.size()).is_ok());
  ASSERT_TRUE(store->reset(101).is_ok());
  store.reset();
  store = f.open(&log);
  expect_log(log, 101, 100, 0);
  auto next = entries(101, 5, 3);
  ASSERT_TRUE(store->append(next.data(), next.size()).is_ok());
  store.reset();
  store = f.open(&log);
  expect_log(log, 101, 105, 3);
}

TEST(LogStore, CompactionDeletesWholeOldSegmentsOnly) {
  Fixture f;
  RecoveredLog log;
  auto store = f.open(&log);
  for (uint64_t i = 1; i <= 200; i += 20) {
    auto batch = entries(i, 20, 1, 700);
    ASSERT_TRUE(store->append(batch.data(), batch.size()).is_ok());
  }
  const uint64_t before = store->disk_bytes();
  ASSERT_TRUE(store->compact(150).is_ok());
  EXPECT_LT(store->disk_bytes(), before);
  store.reset();
  store = f.open(&log);
  ASSERT_FALSE(log.entries.empty());
  EXPECT_LE(log.first_index, 151u);
  EXPECT_EQ(log.entries.back().index, 200u);
}

TEST(LogStore, CompactionRespectsTruncatedSegments) {
  Fixture f;
  RecoveredLog log;
  auto store = f.open(&log);
  auto a = entries(1, 60, 1, 700);  // several segments
  ASSERT_TRUE(store->append(a.data(), a.size()).is_ok());
  auto b = entries(30, 5, 2, 700);  // truncates at 30 into a new segment
  ASSERT_TRUE(store->append(b.data(), b.size()).is_ok());
  ASSERT_TRUE(store->compact(29).is_ok());
  store.reset();
  store = f.open(&log);
  ASSERT_FALSE(log.entries.empty());
  EXPECT_EQ(log.entries.back().index, 34u);
  EXPECT_EQ(log.entries.back().term, 2u);
  for (const auto& e : log.entries) EXPECT_TRUE(e.index < 30 ? e.term == 1 : e.term == 2) << e.index;
}

// A crash during an unsynced write: recovery keeps everything synced and
// cuts what the torn write left, whatever part of it reached the disk.
TEST(LogStore, ATornLastWriteIsCutOffAndNothingSyncedIsLost) {
  for (int trial = 0; trial < 200; ++trial) {
    Fixture f;
    f.rng.seed(trial);
    RecoveredLog log;
    auto store = f.open(&log);
    auto synced = entries(1, 20, 1, 300);
    ASSERT_TRUE(store->append(synced.data(), synced.size()).is_ok());
    // The next write reaches the page cache but never its fdatasync.
    f.fs.set_error_rates(0, 1000);
    auto unsynced = entries(21, 15, 1, 300);
    EXPECT_FALSE(store->append(unsynced.data(), unsynced.size()).is_ok());
    f.fs.set_error_rates(0, 0);
    store.reset();
    f.fs.crash();
    Status s;
    store = f.open(&log, &s);
    ASSERT_TRUE(s.is_ok()) << "trial " << trial << ": " << s.message;
    ASSERT_GE(log.entries.size(), 20u) << "trial " << trial;
    for (size_t i = 0; i < log.entries.size(); ++i) ASSERT_EQ(log.entries[i].index, i + 1);
    // Writing on after the repair, and reopening, still gives a clean log.
    const uint64_t next = log.entries.back().index + 1;
    auto more = entries(next, 3, 2, 300);
    ASSERT_TRUE(store->append(more.data(), more.size()).is_ok());
    store.reset();
    store = f.open(&log, &s);
    ASSERT_TRUE(s.is_ok()) << "trial " << trial << ": " << s.message;
    expect_log(log, 1, next + 2, 2);
  }
}

TEST(LogStore, DamageInTheMiddleRefusesToOpenNamingFileAndOffset) {
  Fixture f;
  RecoveredLog log;
  auto store = f.open(&log);
  for (uint64_t i = 1; i <= 10; ++i) {
    auto one = entries(i, 1, 1, 300);
    ASSERT_TRUE(store->append(one.data(), one.size()).is_ok());  // one write per entry
  }
  store.reset();
  std::string segment;
  for (const auto& path : f.fs.files()) {
    if (path.find("/seg-") != std::string::npos) segment = path;
  }
  ASSERT_FALSE(segment.empty());
  // A bit flips in the third record's payload: later writes follow it.
  const uint64_t third = logfmt::kSegmentHeaderBytes + 2 * logfmt::record_bytes(300) + logfmt::kRecordHeaderBytes + 5;
  ASSERT_TRUE(f.fs.flip_bit(segment, third, 3));
  Status s;
  store = f.open(&log, &s);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message.find(segment), std::string::npos) << s.message;
  EXPECT_NE(s.message.find("offset " + std::to_string(logfmt::kSegmentHeaderBytes + 2 * logfmt::record_bytes(300))),
            std::string::npos)
      << s.message;
  EXPECT_NE(s.message.find("refuses to start"), std::string::npos) << s.message;
}

TEST(LogStore, DamageInAnEarlierSegmentRefusesToOpen) {
  Fixture f;
  RecoveredLog log;
  auto store = f.open(&log);
  for (uint64_t i = 1; i <= 100; i += 5) {
    auto batch = entries(i, 5, 1, 700);
    ASSERT_TRUE(store->append(batch.data(), batch.size()).is_ok());
  }
  store.reset();
  std::vector<std::string> segments;
  for (const auto& path : f.fs.files()) {
    if (path.find("/seg-") != std::string::npos) segments.push_back(path);
  }
  ASSERT_GE(segments.size(), 2u);
  std::sort(segments.begin(), segments.end());
  ASSERT_TRUE(f.fs.flip_bit(segments.back() == segments[0] ? segments[1] : segments[0],
                            logfmt::kSegmentHeaderBytes + logfmt::kRecordHeaderBytes + 1, 0));
  Status s;
  store = f.open(&log, &s);
  EXPECT_FALSE(s.is_ok());
}

TEST(LogStore, PreparedSegmentsAreReusedAfterReopen) {
  Fixture f;
  RecoveredLog log;
  auto store = f.open(&log);
  ASSERT_TRUE(store->prepare().is_ok());
  EXPECT_EQ(store->prepared_count(), 2u);
  store.reset();
  store = f.open(&log);
  EXPECT_EQ(store->prepared_count(), 2u);
  auto batch = entries(1, 3, 1);
  ASSERT_TRUE(store->append(batch.data(), batch.size()).is_ok());
  EXPECT_EQ(store->prepared_count(), 1u);
}

TEST(LogStore, ARecordLargerThanASegmentGetsASegmentOfItsOwn) {
  Fixture f;
  RecoveredLog log;
  auto store = f.open(&log);
  auto big = entries(1, 1, 1, 3 * kSmallSegmentBytes);
  ASSERT_TRUE(store->append(big.data(), big.size()).is_ok());
  auto small = entries(2, 2, 1, 10);
  ASSERT_TRUE(store->append(small.data(), small.size()).is_ok());
  store.reset();
  store = f.open(&log);
  expect_log(log, 1, 3, 1);
  EXPECT_EQ(log.entries[0].payload.size(), 3 * kSmallSegmentBytes);
}

TEST(LogStore, NoSpaceIsReportedAndNothingIsLost) {
  Fixture f;
  RecoveredLog log;
  auto store = f.open(&log);
  auto batch = entries(1, 10, 1, 100);
  ASSERT_TRUE(store->append(batch.data(), batch.size()).is_ok());
  f.fs.set_capacity(f.fs.used_bytes() + 1000);
  IoStatus s = store->prepare();
  EXPECT_TRUE(s.is_no_space());
  EXPECT_TRUE(store->out_of_space());
  f.fs.set_capacity(UINT64_MAX);
  store.reset();
  store = f.open(&log);
  expect_log(log, 1, 10, 1);
}

TEST(LogStore, WorksOnTheRealDisk) {
  const std::string dir = (std::filesystem::temp_directory_path() / "mailbox-log-store-test").string();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  PosixFileSystem fs;
  LogStoreOptions options{1, 64 * 1024, 1};
  {
    LogStore store(fs, dir + "/log", options);
    RecoveredLog log;
    ASSERT_TRUE(store.open(&log).is_ok());
    ASSERT_TRUE(store.prepare().is_ok());
    auto batch = entries(1, 100, 1, 1000);
    ASSERT_TRUE(store.append(batch.data(), batch.size()).is_ok());
    auto tail = entries(90, 5, 2, 1000);
    ASSERT_TRUE(store.append(tail.data(), tail.size()).is_ok());
  }
  LogStore store(fs, dir + "/log", options);
  RecoveredLog log;
  ASSERT_TRUE(store.open(&log).is_ok());
  expect_log(log, 1, 94, 2);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace mailbox
