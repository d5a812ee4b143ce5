// Long-poll waiters: the index that finds them by mailbox and deadline, and
// the driver's bounds (limits::kMaxParkedWaiters, kMaxParkedWaiterBytes)
// through a single-node RaftDriver over the simulated disk.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "core/limits.hpp"
#include "replication/log_store.hpp"
#include "replication/node_startup.hpp"
#include "replication/raft_driver.hpp"
#include "replication/waiter_index.hpp"
#include "tests/sim/sim_file_system.hpp"

namespace mailbox {
namespace {

// ---------------------------------------------------------------- WaiterIndex

TEST(WaiterIndex, TakesAMailboxsWaitersInParkingOrder) {
  WaiterIndex<int> index;
  index.add("a", 300, 1);
  index.add("b", 100, 2);
  index.add("a", 100, 3);
  index.add("a", 200, 4);
  EXPECT_EQ(index.size(), 4u);
  EXPECT_EQ(index.next_deadline_ms(), 100);
  std::vector<int> out;
  index.take_mailbox("a", &out);
  EXPECT_EQ(out, (std::vector<int>{1, 3, 4}));
  EXPECT_EQ(index.size(), 1u);
  EXPECT_EQ(index.next_deadline_ms(), 100);
  out.clear();
  index.take_mailbox("a", &out);  // none left
  index.take_mailbox("zz", &out);
  EXPECT_TRUE(out.empty());
  index.take_mailbox("b", &out);
  EXPECT_EQ(out, (std::vector<int>{2}));
  EXPECT_TRUE(index.empty());
  EXPECT_EQ(index.next_deadline_ms(), INT64_MAX);
}

TEST(WaiterIndex, TakesOnlyTheDueOnesAndKeepsEachMailboxsList) {
  WaiterIndex<int> index;
  // Mailbox "m": deadlines 50 (head), 10 (middle), 30 (tail), 70.
  index.add("m", 50, 1);
  index.add("m", 10, 2);
  index.add("m", 30, 3);
  index.add("m", 70, 4);
  index.add("n", 10, 5);
  std::vector<int> out;
  index.take_due(9, &out);
  EXPECT_TRUE(out.empty());
  index.take_due(10, &out);  // a middle one of m, and n's only one
  EXPECT_EQ(out, (std::vector<int>{2, 5}));
  out.clear();
  index.take_due(50, &out);  // m's tail-side 30, then its head 50
  EXPECT_EQ(out, (std::vector<int>{3, 1}));
  out.clear();
  index.add("m", 5, 6);  // already due: parked behind 4
  index.take_mailbox("m", &out);
  EXPECT_EQ(out, (std::vector<int>{4, 6}));
  EXPECT_TRUE(index.empty());
  index.add("m", 1, 7);  // the mailbox's list starts afresh
  out.clear();
  index.take_due(1, &out);
  EXPECT_EQ(out, (std::vector<int>{7}));
  EXPECT_TRUE(index.empty());
}

TEST(WaiterIndex, ManyMailboxesSurviveRehashing) {
  WaiterIndex<int> index;
  for (int i = 0; i < 20000; ++i) index.add("box" + std::to_string(i % 5000), 1000 + i, i);
  std::vector<int> out;
  index.take_mailbox("box7", &out);
  EXPECT_EQ(out, (std::vector<int>{7, 5007, 10007, 15007}));
  out.clear();
  index.take_due(1000 + 9999, &out);  // 0..9999 but 7 and 5007, taken already
  EXPECT_EQ(out.size(), 9998u);
  out.clear();
  index.take_all(&out);
  EXPECT_EQ(out.size(), 20000u - 4 - 9998);
  EXPECT_TRUE(index.empty());
}

// ---------------------------------------------------------------- the driver's bounds

constexpr const char* kDataDir = "/data";

// One node over the simulated disk: appends complete when `settle` runs,
// time moves only when the test says so.
class OneNode final : public DriverEnv {
 public:
  OneNode() : fs_([](uint64_t n) { return n / 2; }) {
    fs_.make_dir(kDataDir);
    log_ = std::make_unique<LogStore>(fs_, log_dir_of(kDataDir), LogStoreOptions{1, 1 << 20, 2});
    term_vote_ = std::make_unique<TermVoteStore>(fs_, raft_state_path_of(kDataDir), 1);
    DurableState durable;
    std::vector<std::string> notes;
    StartupOptions options;
    options.identity = NodeIdentity{1, "unit"};
    options.initial_voters = {RaftPeer{1, "127.0.0.1:1"}};
    Status s = open_node_storage(fs_, kDataDir, options, *log_, *term_vote_, &durable, &notes);
    MAILBOX_ASSERT(s.is_ok(), "the test node's storage opens");
    DriverOptions driver_options;
    driver_options.node_id = 1;
    driver_options.address = "127.0.0.1:1";
    driver_ = std::make_unique<RaftDriver>(driver_options, *this);
    s = driver_->start(std::move(durable));
    MAILBOX_ASSERT(s.is_ok(), "the test node starts");
    for (int i = 0; i < 100 && !driver_->is_leader(); ++i) advance(50);
    MAILBOX_ASSERT(driver_->is_leader(), "a sole voter leads");
  }
  ~OneNode() override { driver_->stop(); }

  RaftDriver& driver() { return *driver_; }

  // Completes every queued append, and whatever those lead to.
  void settle() {
    for (int rounds = 0; rounds < 1000 && !appends_.empty(); ++rounds) {
      auto batch = std::move(appends_);
      appends_.clear();
      for (auto& [ticket, entries] : batch) {
        log_->prepare();
        IoStatus s = log_->append(entries.data(), entries.size());
        MAILBOX_ASSERT(s.is_ok(), "the simulated disk takes the append");
        driver_->on_log_written(ticket, s);
      }
      driver_->flush();
    }
  }
  // Moves time on by `ms`, firing the timer and the 20 ms tick.
  void advance(int64_t ms) {
    const int64_t until = now_ + ms;
    while (now_ < until) {
      now_ = std::min(until, now_ + 20);
      if (timer_at_ != 0 && timer_at_ <= now_) {
        timer_at_ = 0;
        driver_->on_timeout();
      }
      driver_->tick();
      settle();
    }
  }

  int64_t monotonic_ms() override { return now_; }
  int64_t wall_clock_ms() override { return 1'800'000'000'000 + now_; }
  uint32_t random_seed() override { return 7; }
  IoStatus save_term_vote(uint64_t term, uint64_t voted_for) override { return term_vote_->save(term, voted_for); }
  void append_entries(uint64_t ticket, std::vector<LogEntry> entries) override {
    appends_.emplace_back(ticket, std::move(entries));
  }
  void install_snapshot(uint64_t, InstallJob) override { MAILBOX_ASSERT(false, "no installs in this test"); }
  void compact_log(uint64_t) override {}
  void write_snapshot(uint64_t, SnapshotJob) override {}  // never completes: no snapshot in these tests
  void load_snapshot(uint64_t, std::string) override { MAILBOX_ASSERT(false, "no snapshot loads in this test"); }
  void remove_snapshot(std::string) override {}
  void send(const raft_message&) override {}
  void send_snapshot(const raft_message&, const std::string&) override {}
  void arm_timer(int64_t at_ms) override { timer_at_ = at_ms; }
  std::string snapshot_dir() override { return snapshot_dir_of(kDataDir); }
  [[noreturn]] void fatal(const std::string& what) override {
    MAILBOX_ASSERT(false, what.c_str());
    std::abort();
  }

 private:
  sim::SimFileSystem fs_;
  std::unique_ptr<LogStore> log_;
  std::unique_ptr<TermVoteStore> term_vote_;
  std::unique_ptr<RaftDriver> driver_;
  std::vector<std::pair<uint64_t, std::vector<LogEntry>>> appends_;
  int64_t now_ = 1000;
  int64_t timer_at_ = 0;
};

std::string box_name(size_t i) { return "w" + std::to_string(i); }

// Beyond kMaxParkedWaiters a long-poll is answered `unavailable` at once
// (SPEC: a limit refuses new work; its consume found the mailbox empty and
// took nothing); a put wakes exactly its mailbox's waiter with exactly that
// message; the rest end with `empty` when their wait is over.
TEST(RaftDriverWaiters, AtMostKMaxParkedWaitersThenUnavailable) {
  OneNode node;
  RaftDriver& d = node.driver();
  const size_t n = limits::kMaxParkedWaiters + 2;
  std::vector<CommandResult> results(n);
  std::vector<bool> answered(n, false);
  for (size_t i = 0; i < n; ++i) {
    d.submit_command(ConsumeCommand{box_name(i), 1, 0, ""},
                     [&, i](CommandResult&& r) {
                       EXPECT_FALSE(answered[i]) << "answered once";
                       answered[i] = true;
                       results[i] = std::move(r);
                     },
                     /*wait_ms=*/60'000, /*held_bytes=*/40);
  }
  d.flush();
  node.settle();
  EXPECT_EQ(d.status().parked_waiters, limits::kMaxParkedWaiters);
  EXPECT_EQ(d.status().parked_waiter_bytes, limits::kMaxParkedWaiters * (limits::kParkedWaiterOverheadBytes + 40));
  EXPECT_EQ(d.status().waiters_refused, 2u);
  size_t refused = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!answered[i]) continue;
    ++refused;
    EXPECT_EQ(results[i].status.code, ErrorCode::kUnavailable) << results[i].status.message;
    EXPECT_TRUE(results[i].messages.empty());
  }
  EXPECT_EQ(refused, 2u);

  // A put to a parked mailbox wakes its waiter, which gets that message.
  size_t woken = n;
  for (size_t i = 0; i < n; ++i) {
    if (!answered[i]) {
      woken = i;
      break;
    }
  }
  ASSERT_LT(woken, n);
  PutCommand put;
  put.mailbox = box_name(woken);
  put.payload = "for the waiter";
  put.encoding = "text/plain";
  put.ttl_ms = 60'000;
  uint64_t put_id = 0;
  d.submit_command(std::move(put), [&](CommandResult&& r) {
    ASSERT_TRUE(r.status.is_ok());
    put_id = r.put_id;
  });
  d.flush();
  node.settle();
  node.advance(20);
  ASSERT_TRUE(answered[woken]);
  ASSERT_TRUE(results[woken].status.is_ok()) << results[woken].status.message;
  ASSERT_EQ(results[woken].messages.size(), 1u);
  EXPECT_EQ(results[woken].messages[0].id, put_id);
  EXPECT_EQ(results[woken].messages[0].body->payload(), "for the waiter");
  EXPECT_EQ(d.status().parked_waiters, limits::kMaxParkedWaiters - 1);
  EXPECT_EQ(d.state().stats(box_name(woken), 0).messages, 0u) << "delivered once, and gone";

  // With room again, a new long-poll parks.
  bool late_answered = false;
  d.submit_command(ConsumeCommand{"late", 1, 0, ""}, [&](CommandResult&&) { late_answered = true; }, 60'000, 40);
  d.flush();
  node.settle();
  EXPECT_FALSE(late_answered);
  EXPECT_EQ(d.status().parked_waiters, limits::kMaxParkedWaiters);

  // Their waits end: every other one hears `empty`, exactly once.
  node.advance(61'000);
  EXPECT_EQ(d.status().parked_waiters, 0u);
  EXPECT_EQ(d.status().parked_waiter_bytes, 0u);
  EXPECT_TRUE(late_answered);
  for (size_t i = 0; i < n; ++i) {
    ASSERT_TRUE(answered[i]) << i;
    if (i == woken || results[i].status.code == ErrorCode::kUnavailable) continue;
    EXPECT_EQ(results[i].status.code, ErrorCode::kEmpty) << i;
  }
}

// The byte bound: a long-poll whose query would take the charged bytes past
// kMaxParkedWaiterBytes is refused, even with few waiting.
TEST(RaftDriverWaiters, ChargedBytesAreBounded) {
  OneNode node;
  RaftDriver& d = node.driver();
  const size_t big = limits::kMaxParkedWaiterBytes / 3;  // a query that holds a third of the bound
  std::vector<ErrorCode> codes;
  for (int i = 0; i < 3; ++i) {
    d.submit_command(ConsumeCommand{"big" + std::to_string(i), 1, 0, ""},
                     [&](CommandResult&& r) { codes.push_back(r.status.code); }, 60'000, big);
  }
  ReadRequest peek;
  peek.kind = ReadRequest::Kind::kPeek;
  peek.mailbox = "small";
  peek.wait_ms = 60'000;
  peek.held_bytes = 10;
  d.submit_read(peek, [&](ReadResult&& r) { codes.push_back(r.status.code); });
  d.flush();
  node.settle();
  // Two fit; the third's charge (overhead + a third) does not; the small
  // peek still does.
  ASSERT_EQ(codes.size(), 1u);
  EXPECT_EQ(codes[0], ErrorCode::kUnavailable);
  EXPECT_EQ(d.status().parked_waiters, 3u);
  EXPECT_LE(d.status().parked_waiter_bytes, limits::kMaxParkedWaiterBytes);
  node.advance(61'000);
  EXPECT_EQ(codes.size(), 4u);
  EXPECT_EQ(d.status().parked_waiter_bytes, 0u);
}

}  // namespace
}  // namespace mailbox
