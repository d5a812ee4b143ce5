// Unit tests of the mailbox state machine: scripts of entries and the
// results and state they must produce.
#include <gtest/gtest.h>

#include "core/state_machine.hpp"

namespace mailbox {
namespace {

Entry at(int64_t time_ms, std::vector<Command> commands) {
  Entry e;
  e.leader_time_ms = time_ms;
  e.commands = std::move(commands);
  return e;
}

PutCommand put(std::string box, std::string payload, int64_t ttl_ms = 60'000) {
  return PutCommand{std::move(box), "text/plain", std::move(payload), ttl_ms};
}

TEST(StateMachine, ConsumeReturnsOldestAndRemovesIt) {
  StateMachine sm;
  auto r = sm.apply(at(1000, {put("user123", "first"), put("user123", "second")}));
  ASSERT_EQ(r.size(), 2u);
  EXPECT_TRUE(r[0].status.is_ok());
  EXPECT_LT(r[0].put_id, r[1].put_id);
  r = sm.apply(at(1001, {ConsumeCommand{"user123", 1}}));
  ASSERT_EQ(r[0].messages.size(), 1u);
  EXPECT_EQ(r[0].messages[0].body->payload, "first");
  EXPECT_EQ(r[0].messages[0].id, 1u);
  EXPECT_EQ(r[0].messages[0].deliveries, 1u);
  EXPECT_EQ(r[0].messages[0].enqueued_at_ms, 1000);
  r = sm.apply(at(1002, {ConsumeCommand{"user123", 1}}));
  EXPECT_EQ(r[0].messages[0].body->payload, "second");
  r = sm.apply(at(1003, {ConsumeCommand{"user123", 1}}));
  EXPECT_EQ(r[0].status.code, ErrorCode::kEmpty);
  EXPECT_TRUE(r[0].messages.empty());
  EXPECT_EQ(sm.total_messages(), 0u);
  EXPECT_EQ(sm.total_bytes(), 0u);
}

TEST(StateMachine, BatchConsumeIsFifoAndBounded) {
  StateMachine sm;
  std::vector<Command> puts;
  for (int i = 0; i < 10; ++i) puts.push_back(put("b", "m" + std::to_string(i)));
  sm.apply(at(1, std::move(puts)));
  auto r = sm.apply(at(2, {ConsumeCommand{"b", 4}}));
  ASSERT_EQ(r[0].messages.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(r[0].messages[i].body->payload, "m" + std::to_string(i));
  r = sm.apply(at(3, {ConsumeCommand{"b", 100}}));
  ASSERT_EQ(r[0].messages.size(), 6u);
  EXPECT_EQ(r[0].messages[0].body->payload, "m4");
}

TEST(StateMachine, MailboxesAreIndependent) {
  StateMachine sm;
  sm.apply(at(1, {put("a", "for a"), put("b", "for b")}));
  auto r = sm.apply(at(2, {ConsumeCommand{"b", 1}, ConsumeCommand{"b", 1}, ConsumeCommand{"a", 1}}));
  EXPECT_EQ(r[0].messages[0].body->payload, "for b");
  EXPECT_EQ(r[1].status.code, ErrorCode::kEmpty);
  EXPECT_EQ(r[2].messages[0].body->payload, "for a");
}

TEST(StateMachine, ExpiredMessagesAreNeverDelivered) {
  StateMachine sm;
  sm.apply(at(1000, {put("b", "short", 500), put("b", "long", 10'000)}));
  std::vector<DeliveredMessage> seen;
  EXPECT_TRUE(sm.peek("b", 10, 1400, &seen).is_ok());
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_TRUE(sm.peek("b", 10, 1500, &seen).is_ok());
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].body->payload, "long");
  auto r = sm.apply(at(1500, {ConsumeCommand{"b", 10}}));
  ASSERT_EQ(r[0].messages.size(), 1u);
  EXPECT_EQ(r[0].messages[0].body->payload, "long");
}

TEST(StateMachine, ClockNeverGoesBackwards) {
  StateMachine sm;
  sm.apply(at(5000, {put("b", "x", 1000)}));
  // A new leader with a clock behind: the state's time stays at 5000.
  auto r = sm.apply(at(100, {put("b", "y", 1000)}));
  EXPECT_EQ(sm.clock_ms(), 5000);
  r = sm.apply(at(100, {ConsumeCommand{"b", 10}}));
  ASSERT_EQ(r[0].messages.size(), 2u);
  EXPECT_EQ(r[0].messages[1].enqueued_at_ms, 5000);
}

TEST(StateMachine, QuotasRefuseNewWorkAndKeepStoredMessages) {
  StateLimits limits;
  limits.max_messages_per_mailbox = 2;
  limits.max_bytes_per_mailbox = 100;
  limits.max_total_bytes = 150;
  StateMachine sm(limits);
  auto r = sm.apply(at(1, {put("a", "1"), put("a", "2"), put("a", "3")}));
  EXPECT_TRUE(r[1].status.is_ok());
  EXPECT_EQ(r[2].status.code, ErrorCode::kQuotaExceeded);
  r = sm.apply(at(2, {put("b", std::string(101, 'x'))}));
  EXPECT_EQ(r[0].status.code, ErrorCode::kQuotaExceeded);
  r = sm.apply(at(3, {put("b", std::string(100, 'x')), put("c", std::string(60, 'x'))}));
  EXPECT_TRUE(r[0].status.is_ok());
  EXPECT_EQ(r[1].status.code, ErrorCode::kQuotaExceeded);
  EXPECT_EQ(sm.total_messages(), 3u);
  EXPECT_EQ(sm.stats("a", 3).messages, 2u);
}

TEST(StateMachine, StatsCountLiveMessages) {
  StateMachine sm;
  sm.apply(at(1000, {put("s", "abc"), put("s", "de", 100)}));
  MailboxStats s = sm.stats("s", 1050);
  EXPECT_EQ(s.messages, 2u);
  EXPECT_EQ(s.bytes, 5u);
  EXPECT_EQ(s.oldest_age_ms, 50);
  s = sm.stats("s", 1100);
  EXPECT_EQ(s.messages, 1u);
  EXPECT_EQ(sm.stats("nobody", 1).messages, 0u);
}

TEST(StateMachine, SnapshotRestoresIdenticalState) {
  StateMachine a;
  a.apply(at(10, {put("x", std::string("\0bin\xff", 5)), put("y", "2"), put("x", "3")}));
  a.apply(at(20, {ConsumeCommand{"x", 1}}));
  StateMachine b;
  ASSERT_TRUE(b.restore(a.serialize()));
  EXPECT_EQ(a.digest(), b.digest());
  // Both continue identically, ids included.
  auto ra = a.apply(at(30, {put("x", "4"), ConsumeCommand{"x", 5}}));
  auto rb = b.apply(at(30, {put("x", "4"), ConsumeCommand{"x", 5}}));
  EXPECT_EQ(ra[0].put_id, rb[0].put_id);
  ASSERT_EQ(ra[1].messages.size(), rb[1].messages.size());
  EXPECT_EQ(a.digest(), b.digest());
}

TEST(StateMachine, CorruptSnapshotLeavesStateUnchanged) {
  StateMachine a;
  a.apply(at(10, {put("x", "1")}));
  const uint64_t before = a.digest();
  std::string bytes = a.serialize();
  EXPECT_FALSE(a.restore(bytes.substr(0, bytes.size() - 1)));
  EXPECT_FALSE(a.restore("garbage"));
  EXPECT_EQ(a.digest(), before);
}

TEST(StateMachine, DigestDiffersWhenStateDiffers) {
  StateMachine a;
  StateMachine b;
  a.apply(at(10, {put("x", "1")}));
  b.apply(at(10, {put("x", "2")}));
  EXPECT_NE(a.digest(), b.digest());
}

}  // namespace
}  // namespace mailbox
