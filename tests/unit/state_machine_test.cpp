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

PutCommand put(std::string box, std::string payload, int64_t ttl_ms = 60'000, std::string rid = "") {
  return PutCommand{std::move(box), "text/plain", std::move(payload), ttl_ms, std::move(rid)};
}
ConsumeCommand take(std::string box, uint32_t n = 1, int64_t lease_ms = 0, std::string rid = "") {
  return ConsumeCommand{std::move(box), n, lease_ms, std::move(rid)};
}

TEST(StateMachine, ConsumeReturnsOldestAndRemovesIt) {
  StateMachine sm;
  auto r = sm.apply(at(1000, {put("user123", "first"), put("user123", "second")}));
  ASSERT_EQ(r.size(), 2u);
  EXPECT_TRUE(r[0].status.is_ok());
  EXPECT_LT(r[0].put_id, r[1].put_id);
  r = sm.apply(at(1001, {take("user123")}));
  ASSERT_EQ(r[0].messages.size(), 1u);
  EXPECT_EQ(r[0].messages[0].body->payload(), "first");
  EXPECT_EQ(r[0].messages[0].id, 1u);
  EXPECT_EQ(r[0].messages[0].deliveries, 1u);
  EXPECT_EQ(r[0].messages[0].enqueued_at_ms, 1000);
  r = sm.apply(at(1002, {take("user123")}));
  EXPECT_EQ(r[0].messages[0].body->payload(), "second");
  r = sm.apply(at(1003, {take("user123")}));
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
  auto r = sm.apply(at(2, {take("b", 4)}));
  ASSERT_EQ(r[0].messages.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(r[0].messages[i].body->payload(), "m" + std::to_string(i));
  r = sm.apply(at(3, {take("b", 100)}));
  ASSERT_EQ(r[0].messages.size(), 6u);
  EXPECT_EQ(r[0].messages[0].body->payload(), "m4");
}

TEST(StateMachine, MailboxesAreIndependent) {
  StateMachine sm;
  sm.apply(at(1, {put("a", "for a"), put("b", "for b")}));
  auto r = sm.apply(at(2, {take("b"), take("b"), take("a")}));
  EXPECT_EQ(r[0].messages[0].body->payload(), "for b");
  EXPECT_EQ(r[1].status.code, ErrorCode::kEmpty);
  EXPECT_EQ(r[2].messages[0].body->payload(), "for a");
}

TEST(StateMachine, ExpiredMessagesAreNeverDelivered) {
  StateMachine sm;
  sm.apply(at(1000, {put("b", "short", 500), put("b", "long", 10'000)}));
  std::vector<DeliveredMessage> seen;
  EXPECT_TRUE(sm.peek("b", 10, 1400, &seen).is_ok());
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_TRUE(sm.peek("b", 10, 1500, &seen).is_ok());
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].body->payload(), "long");
  auto r = sm.apply(at(1500, {take("b", 10)}));
  ASSERT_EQ(r[0].messages.size(), 1u);
  EXPECT_EQ(r[0].messages[0].body->payload(), "long");
}

TEST(StateMachine, ExpiredBehindALiveMessageIsSkipped) {
  StateMachine sm;
  sm.apply(at(1000, {put("b", "long", 10'000), put("b", "short", 100), put("b", "last", 10'000)}));
  auto r = sm.apply(at(2000, {take("b", 10)}));
  ASSERT_EQ(r[0].messages.size(), 2u);
  EXPECT_EQ(r[0].messages[0].body->payload(), "long");
  EXPECT_EQ(r[0].messages[1].body->payload(), "last");
}

TEST(StateMachine, DeadLettersStayInTheirDeadLetterMailbox) {
  StateMachine sm;
  StateConfig config;
  config.max_deliveries = 1;
  sm.apply(at(0, {ConfigureCommand{config}}));
  sm.apply(at(1, {put("x", "bad")}));
  auto r = sm.apply(at(2, {take("x", 1, 100)}));
  sm.apply(at(200, {SweepCommand{}}));
  ASSERT_EQ(sm.stats("x.dlq", 200).messages, 1u);
  EXPECT_EQ(sm.woken(), std::vector<std::string>{"x.dlq"});
  for (int round = 0; round < 3; ++round) {
    const int64_t t = 300 + round * 1000;
    r = sm.apply(at(t, {take("x.dlq", 1, 100)}));
    ASSERT_EQ(r[0].messages.size(), 1u) << round;
    sm.apply(at(t + 200, {SweepCommand{}}));
  }
  r = sm.apply(at(5000, {take("x.dlq", 1, 100)}));
  ASSERT_EQ(r[0].messages.size(), 1u);
  EXPECT_TRUE(sm.apply(at(5001, {NackCommand{"x.dlq", r[0].messages[0].id, ""}}))[0].status.is_ok());
  EXPECT_EQ(sm.stats("x.dlq", 5002).messages, 1u);
  EXPECT_EQ(sm.stats("x.dlq.dlq", 5002).messages, 0u);
}

TEST(StateMachine, ALeaseEndingAfterExpiryDropsTheMessage) {
  StateMachine sm;
  sm.apply(at(0, {put("e", "short", 100)}));
  auto r = sm.apply(at(50, {take("e", 1, 1000)}));
  ASSERT_EQ(r[0].messages.size(), 1u);
  // Expired while leased: no sweep storm, only the lease end is due.
  sm.apply(at(150, {SweepCommand{}}));
  EXPECT_EQ(sm.next_sweep_due_ms(), 1050);
  EXPECT_EQ(sm.stats("e", 200).leased, 1u);
  sm.apply(at(1050, {SweepCommand{}}));
  EXPECT_EQ(sm.total_messages(), 0u);
  EXPECT_EQ(sm.stats("e.dlq", 1050).messages, 0u);
}

TEST(StateMachine, TotalMessageQuota) {
  StateMachine sm;
  StateConfig config;
  config.max_total_messages = 2;
  sm.apply(at(0, {ConfigureCommand{config}}));
  auto r = sm.apply(at(1, {put("a", "1"), put("b", "2"), put("c", "3")}));
  EXPECT_EQ(r[2].status.code, ErrorCode::kQuotaExceeded);
}

TEST(StateMachine, WokenListsMailboxesThatGainedMessages) {
  StateMachine sm;
  sm.apply(at(1, {put("a", "1"), put("b", "2"), take("b")}));
  EXPECT_EQ(sm.woken(), (std::vector<std::string>{"a", "b"}));
  sm.apply(at(2, {take("a")}));
  EXPECT_TRUE(sm.woken().empty());
}

TEST(StateMachine, SweepDropsExpiredAndSchedulesItself) {
  StateMachine sm;
  EXPECT_EQ(sm.next_sweep_due_ms(), INT64_MAX);
  sm.apply(at(1000, {put("b", "x", 500), put("c", "y", 2000)}));
  EXPECT_EQ(sm.next_sweep_due_ms(), 1500);
  sm.apply(at(1500, {SweepCommand{}}));
  EXPECT_EQ(sm.total_messages(), 1u);
  EXPECT_EQ(sm.mailbox_count(), 1u);
  EXPECT_EQ(sm.next_sweep_due_ms(), 3000);
  sm.apply(at(3000, {SweepCommand{}}));
  EXPECT_EQ(sm.total_messages(), 0u);
  EXPECT_EQ(sm.next_sweep_due_ms(), INT64_MAX);
}

TEST(StateMachine, ClockNeverGoesBackwards) {
  StateMachine sm;
  sm.apply(at(5000, {put("b", "x", 1000)}));
  // A new leader with a clock behind: the state's time stays at 5000.
  sm.apply(at(100, {put("b", "y", 1000)}));
  EXPECT_EQ(sm.clock_ms(), 5000);
  auto r = sm.apply(at(100, {take("b", 10)}));
  ASSERT_EQ(r[0].messages.size(), 2u);
  EXPECT_EQ(r[0].messages[1].enqueued_at_ms, 5000);
}

TEST(StateMachine, QuotasComeFromTheLogAndKeepStoredMessages) {
  StateMachine sm;
  StateConfig config;
  config.max_messages_per_mailbox = 2;
  config.max_bytes_per_mailbox = 100;
  config.max_total_bytes = 150;
  sm.apply(at(0, {ConfigureCommand{config}}));
  EXPECT_EQ(sm.config(), config);
  auto r = sm.apply(at(1, {put("a", "1"), put("a", "2"), put("a", "3")}));
  EXPECT_TRUE(r[1].status.is_ok());
  EXPECT_EQ(r[2].status.code, ErrorCode::kQuotaExceeded);
  r = sm.apply(at(2, {put("b", std::string(101, 'x'))}));
  EXPECT_EQ(r[0].status.code, ErrorCode::kQuotaExceeded);
  r = sm.apply(at(3, {put("b", std::string(100, 'x')), put("c", std::string(60, 'x'))}));
  EXPECT_TRUE(r[0].status.is_ok());
  EXPECT_EQ(r[1].status.code, ErrorCode::kQuotaExceeded);
  EXPECT_EQ(sm.total_messages(), 3u);
  // Lowering a quota refuses new work and drops nothing.
  config.max_messages_per_mailbox = 1;
  sm.apply(at(4, {ConfigureCommand{config}}));
  EXPECT_EQ(sm.stats("a", 4).messages, 2u);
  EXPECT_EQ(sm.apply(at(5, {put("a", "4")}))[0].status.code, ErrorCode::kQuotaExceeded);
}

TEST(StateMachine, StatsCountLiveAndLeasedMessages) {
  StateMachine sm;
  sm.apply(at(1000, {put("s", "abc"), put("s", "de", 100)}));
  MailboxStats s = sm.stats("s", 1050);
  EXPECT_EQ(s.messages, 2u);
  EXPECT_EQ(s.bytes, 5u);
  EXPECT_EQ(s.oldest_age_ms, 50);
  s = sm.stats("s", 1100);
  EXPECT_EQ(s.messages, 1u);
  EXPECT_EQ(sm.stats("nobody", 1).messages, 0u);
  sm.apply(at(1100, {take("s", 1, 5000)}));
  s = sm.stats("s", 1200);
  EXPECT_EQ(s.messages, 1u);
  EXPECT_EQ(s.leased, 1u);
}

TEST(StateMachine, RepeatedRidReturnsTheFirstResultAndChangesNothing) {
  StateMachine sm;
  auto r1 = sm.apply(at(1, {put("d", "one", 60'000, "p1")}));
  auto r2 = sm.apply(at(2, {put("d", "one", 60'000, "p1")}));
  EXPECT_EQ(r1[0].put_id, r2[0].put_id);
  EXPECT_TRUE(r2[0].deduplicated);
  EXPECT_EQ(sm.total_messages(), 1u);
  sm.apply(at(3, {put("d", "two")}));
  auto c1 = sm.apply(at(4, {take("d", 1, 0, "c1")}));
  auto c2 = sm.apply(at(5, {take("d", 1, 0, "c1")}));
  ASSERT_EQ(c2[0].messages.size(), 1u);
  EXPECT_EQ(c1[0].messages[0].id, c2[0].messages[0].id);
  EXPECT_EQ(c2[0].messages[0].body->payload(), "one");
  auto c3 = sm.apply(at(6, {take("d", 1, 0, "c2")}));
  EXPECT_EQ(c3[0].messages[0].body->payload(), "two");
  // The same rid on another mailbox or another operation is a new request.
  EXPECT_FALSE(sm.apply(at(7, {put("e", "x", 60'000, "c1")}))[0].deduplicated);
}

TEST(StateMachine, EmptyAndRefusedResultsAreNotRemembered) {
  StateMachine sm;
  auto r = sm.apply(at(1, {take("w", 1, 0, "r")}));
  EXPECT_EQ(r[0].status.code, ErrorCode::kEmpty);
  sm.apply(at(2, {put("w", "late")}));
  r = sm.apply(at(3, {take("w", 1, 0, "r")}));
  ASSERT_EQ(r[0].messages.size(), 1u);
  EXPECT_EQ(r[0].messages[0].body->payload(), "late");
}

TEST(StateMachine, DedupWindowAndBoundForgetOldRecords) {
  StateMachine sm;
  StateConfig config;
  config.dedup_window_ms = 1000;
  config.max_dedup_entries = 2;
  sm.apply(at(0, {ConfigureCommand{config}}));
  sm.apply(at(10, {put("d", "a", 60'000, "r1"), put("d", "b", 60'000, "r2"), put("d", "c", 60'000, "r3")}));
  EXPECT_EQ(sm.dedup_count(), 2u);  // r1 was evicted by the bound
  EXPECT_FALSE(sm.apply(at(11, {put("d", "a", 60'000, "r1")}))[0].deduplicated);
  EXPECT_TRUE(sm.apply(at(12, {put("d", "c", 60'000, "r3")}))[0].deduplicated);
  sm.apply(at(2000, {}));  // any entry forgets records past the window
  EXPECT_EQ(sm.dedup_count(), 0u);
  EXPECT_FALSE(sm.apply(at(2001, {put("d", "c", 60'000, "r3")}))[0].deduplicated);
}

TEST(StateMachine, APublicationIsStoredAtMostOnce) {
  StateMachine sm;
  PutCommand pub = put("f", "fire");
  pub.publication_id = 77;
  auto r = sm.apply(at(1000, {pub, pub}));
  EXPECT_TRUE(r[0].status.is_ok());
  EXPECT_TRUE(r[1].deduplicated);
  EXPECT_EQ(sm.total_messages(), 1u);
  StateMachine copy;
  ASSERT_TRUE(copy.restore(sm.serialize()));
  EXPECT_TRUE(copy.apply(at(1001, {pub}))[0].deduplicated);
  // Forgotten after the window: the id space is the publishers' clocks.
  sm.apply(at(1000 + limits::kPublicationDedupWindowMs, {}));
  EXPECT_FALSE(sm.apply(at(1000 + limits::kPublicationDedupWindowMs, {pub}))[0].deduplicated);
}

TEST(StateMachine, LeaseHidesUntilAckAndReturnsWhenItEnds) {
  StateMachine sm;
  sm.apply(at(1000, {put("l", "job")}));
  auto r = sm.apply(at(1000, {take("l", 1, 500)}));
  ASSERT_EQ(r[0].messages.size(), 1u);
  const uint64_t id = r[0].messages[0].id;
  EXPECT_EQ(r[0].messages[0].lease_expires_at_ms, 1500);
  EXPECT_EQ(r[0].messages[0].deliveries, 1u);
  EXPECT_EQ(sm.apply(at(1100, {take("l")}))[0].status.code, ErrorCode::kEmpty);
  // The lease ends: visible again with its delivery count + 1.
  r = sm.apply(at(1500, {take("l", 1, 500)}));
  ASSERT_EQ(r[0].messages.size(), 1u);
  EXPECT_EQ(r[0].messages[0].id, id);
  EXPECT_EQ(r[0].messages[0].deliveries, 2u);
  EXPECT_TRUE(sm.apply(at(1600, {AckCommand{"l", id, ""}}))[0].status.is_ok());
  EXPECT_EQ(sm.total_messages(), 0u);
  EXPECT_EQ(sm.apply(at(1700, {AckCommand{"l", id, ""}}))[0].status.code, ErrorCode::kNotFound);
}

TEST(StateMachine, AckOfExpiredOrUnknownLeaseIsNotFound) {
  StateMachine sm;
  sm.apply(at(1000, {put("l", "job")}));
  auto r = sm.apply(at(1000, {take("l", 1, 500)}));
  const uint64_t id = r[0].messages[0].id;
  EXPECT_EQ(sm.apply(at(1500, {AckCommand{"l", id, ""}}))[0].status.code, ErrorCode::kNotFound);
  EXPECT_EQ(sm.apply(at(1500, {AckCommand{"l", 999, ""}}))[0].status.code, ErrorCode::kNotFound);
  EXPECT_EQ(sm.apply(at(1500, {AckCommand{"other", id, ""}}))[0].status.code, ErrorCode::kNotFound);
  EXPECT_EQ(sm.total_messages(), 1u);
}

TEST(StateMachine, NackGivesBackAtOnce) {
  StateMachine sm;
  sm.apply(at(1000, {put("l", "job")}));
  auto r = sm.apply(at(1000, {take("l", 1, 60'000)}));
  EXPECT_TRUE(sm.apply(at(1001, {NackCommand{"l", r[0].messages[0].id, ""}}))[0].status.is_ok());
  r = sm.apply(at(1002, {take("l")}));
  ASSERT_EQ(r[0].messages.size(), 1u);
  EXPECT_EQ(r[0].messages[0].deliveries, 2u);
}

TEST(StateMachine, DeliveryLimitMovesToDeadLetters) {
  StateMachine sm;
  StateConfig config;
  config.max_deliveries = 2;
  sm.apply(at(0, {ConfigureCommand{config}}));
  sm.apply(at(1000, {put("job", "poison"), put("job", "fine")}));
  auto r = sm.apply(at(1000, {take("job", 1, 100)}));
  const uint64_t id = r[0].messages[0].id;
  r = sm.apply(at(1100, {take("job", 1, 100)}));  // lease ended: second delivery
  EXPECT_EQ(r[0].messages[0].id, id);
  EXPECT_EQ(r[0].messages[0].deliveries, 2u);
  // The second lease ends at the limit: not delivered again, swept to .dlq.
  r = sm.apply(at(1200, {take("job", 1)}));
  EXPECT_EQ(r[0].messages[0].body->payload(), "fine");
  EXPECT_EQ(sm.apply(at(1200, {take("job", 1)}))[0].status.code, ErrorCode::kEmpty);
  EXPECT_LE(sm.next_sweep_due_ms(), 1200);
  sm.apply(at(1200, {SweepCommand{}}));
  r = sm.apply(at(1201, {take("job.dlq", 1)}));
  ASSERT_EQ(r[0].messages.size(), 1u);
  EXPECT_EQ(r[0].messages[0].body->payload(), "poison");
  EXPECT_EQ(r[0].messages[0].deliveries, 3u);
  EXPECT_EQ(sm.total_messages(), 0u);
  EXPECT_EQ(dead_letter_mailbox("job"), "job.dlq");
}

TEST(StateMachine, NackAtTheLimitMovesToDeadLetters) {
  StateMachine sm;
  StateConfig config;
  config.max_deliveries = 1;
  sm.apply(at(0, {ConfigureCommand{config}}));
  sm.apply(at(1, {put("q", "bad")}));
  auto r = sm.apply(at(2, {take("q", 1, 1000)}));
  EXPECT_TRUE(sm.apply(at(3, {NackCommand{"q", r[0].messages[0].id, ""}}))[0].status.is_ok());
  EXPECT_EQ(sm.stats("q", 4).messages, 0u);
  EXPECT_EQ(sm.stats("q.dlq", 4).messages, 1u);
}

TEST(StateMachine, RepeatedLeasedConsumeReturnsSameMessage) {
  StateMachine sm;
  sm.apply(at(1, {put("l", "a"), put("l", "b")}));
  auto r1 = sm.apply(at(2, {take("l", 1, 10'000, "x")}));
  auto r2 = sm.apply(at(3, {take("l", 1, 10'000, "x")}));
  EXPECT_EQ(r1[0].messages[0].id, r2[0].messages[0].id);
  EXPECT_EQ(sm.stats("l", 3).leased, 1u);
}

TEST(StateMachine, SnapshotRestoresIdenticalState) {
  StateMachine a;
  StateConfig config;
  config.max_deliveries = 3;
  a.apply(at(1, {ConfigureCommand{config}}));
  a.apply(at(10, {put("x", std::string("\0bin\xff", 5)), put("y", "2", 60'000, "rid-y"), put("x", "3")}));
  a.apply(at(20, {take("x", 1, 0, "rid-c"), take("x", 1, 5000)}));
  StateMachine b;
  ASSERT_TRUE(b.restore(a.serialize()));
  EXPECT_EQ(a.digest(), b.digest());
  EXPECT_EQ(b.config(), config);
  EXPECT_EQ(b.dedup_count(), 2u);
  // Both continue identically: ids, dedup, leases.
  std::vector<Command> script = {put("x", "4"), take("x", 5), take("x", 1, 0, "rid-c"),
                                 put("y", "2", 60'000, "rid-y")};
  auto ra = a.apply(at(30, script));
  auto rb = b.apply(at(30, script));
  ASSERT_EQ(ra.size(), rb.size());
  for (size_t i = 0; i < ra.size(); ++i) {
    EXPECT_EQ(ra[i].put_id, rb[i].put_id);
    ASSERT_EQ(ra[i].messages.size(), rb[i].messages.size());
    for (size_t k = 0; k < ra[i].messages.size(); ++k) EXPECT_EQ(ra[i].messages[k].id, rb[i].messages[k].id);
  }
  EXPECT_TRUE(rb[2].deduplicated);
  EXPECT_TRUE(rb[3].deduplicated);
  EXPECT_EQ(a.digest(), b.digest());
  a.apply(at(6000, {SweepCommand{}}));
  b.apply(at(6000, {SweepCommand{}}));
  EXPECT_EQ(a.digest(), b.digest());
}

// Found by replication_sim seed 3189: a leased message whose ttl ends before
// its lease, nacked after a restore, then a sweep. The restored state's
// bounds leave leased messages' expiry out; a nack made the message visible
// without counting its expiry, so the restored replica skipped the mailbox
// in the sweep and kept an expired message its peers removed.
TEST(StateMachine, ReplicasSweepAlikeAfterARestoreAndANack) {
  StateMachine a;
  a.apply(at(1000, {put("b", "short", 900), put("b", "long", 600'000)}));
  auto r = a.apply(at(1100, {take("b", 1, 5000)}));  // "short" leased until 6100, expires at 1900
  ASSERT_EQ(r[0].messages.size(), 1u);
  const uint64_t leased = r[0].messages[0].id;
  StateMachine b;
  ASSERT_TRUE(b.restore(a.serialize()));
  ASSERT_EQ(a.digest(), b.digest());
  for (StateMachine* sm : {&a, &b}) {
    sm->apply(at(1200, {NackCommand{"b", leased, ""}}));  // visible again, until 1900
    sm->apply(at(2000, {SweepCommand{}}));                 // expired: removed
  }
  EXPECT_EQ(a.total_messages(), 1u);
  EXPECT_EQ(b.total_messages(), 1u);
  EXPECT_EQ(a.digest(), b.digest());
  // The same after a sweep recomputed the bounds (no restore involved).
  StateMachine c;
  c.apply(at(1000, {put("b", "short", 900), put("b", "long", 600'000), put("b", "x", 100)}));
  r = c.apply(at(1100, {take("b", 1, 5000)}));
  c.apply(at(1150, {SweepCommand{}}));  // removes "x"; bounds now leave the leased message out
  c.apply(at(1200, {NackCommand{"b", r[0].messages[0].id, ""}}));
  c.apply(at(2000, {SweepCommand{}}));
  EXPECT_EQ(c.total_messages(), 1u);
  EXPECT_LE(c.next_sweep_due_ms(), 600'000 + 1000);
}

TEST(StateMachine, PinnedSnapshotStaysValidWhileTheStateMovesOn) {
  StateMachine a;
  a.apply(at(1, {put("p", "alpha"), put("p", "beta"), put("q", "gamma", 60'000, "rid")}));
  const std::string expected = a.serialize();
  StateMachine::SnapshotParts parts = a.pin_snapshot();
  // Everything the snapshot refers to is consumed, expired or replaced.
  a.apply(at(2, {take("p", 10), take("q", 10)}));
  a.apply(at(10'000'000, {SweepCommand{}}));
  EXPECT_EQ(a.total_messages(), 0u);
  std::string bytes = parts.head;
  for (auto p : parts.payloads) bytes += p;
  EXPECT_EQ(bytes, expected);
  a.unpin_snapshot();
  StateMachine b;
  ASSERT_TRUE(b.restore(bytes));
  EXPECT_EQ(b.stats("p", 2).messages, 2u);
}

TEST(StateMachine, ManyEncodingsBeyondTheInternLimitRoundTrip) {
  StateMachine a;
  std::vector<Command> puts;
  for (size_t i = 0; i < limits::kMaxInternedEncodings + 10; ++i) {
    puts.push_back(PutCommand{"e", "enc/" + std::to_string(i), "x", 60'000, ""});
  }
  a.apply(at(1, std::move(puts)));
  StateMachine b;
  ASSERT_TRUE(b.restore(a.serialize()));
  EXPECT_EQ(a.digest(), b.digest());
  auto r = b.apply(at(2, {take("e", 1000), take("e", 1000)}));
  EXPECT_EQ(r[1].messages.back().body->encoding(), "enc/" + std::to_string(limits::kMaxInternedEncodings + 9));
}

TEST(StateMachine, CorruptSnapshotLeavesStateUnchanged) {
  StateMachine a;
  a.apply(at(10, {put("x", "1")}));
  const uint64_t before = a.digest();
  std::string bytes = a.serialize();
  for (size_t n = 0; n < bytes.size(); ++n) EXPECT_FALSE(a.restore(bytes.substr(0, n))) << n;
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

// ---------------------------------------------------------------- v2: delay

PutCommand delayed(std::string box, std::string payload, int64_t delay_ms, int64_t ttl_ms = 60'000,
                   std::string rid = "") {
  PutCommand p = put(std::move(box), std::move(payload), ttl_ms, std::move(rid));
  p.delay_ms = delay_ms;
  return p;
}

TEST(StateMachine, DelayedMessageIsHiddenUntilDue) {
  StateMachine sm;
  auto r = sm.apply(at(1000, {delayed("d", "later", 5000), put("d", "now")}));
  ASSERT_TRUE(r[0].status.is_ok());
  const uint64_t later_id = r[0].put_id;
  EXPECT_LT(later_id, r[1].put_id);  // it keeps its id
  // Only the visible message wakes waiters now.
  EXPECT_EQ(sm.woken(), std::vector<std::string>{"d"});
  MailboxStats s = sm.stats("d", 1000);
  EXPECT_EQ(s.messages, 2u);
  EXPECT_EQ(s.delayed, 1u);
  EXPECT_EQ(s.leased, 0u);
  std::vector<DeliveredMessage> out;
  ASSERT_TRUE(sm.peek("d", 10, 1000, &out).is_ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].body->payload(), "now");
  // Consume takes the oldest *visible* message.
  r = sm.apply(at(1001, {take("d", 10)}));
  ASSERT_EQ(r[0].messages.size(), 1u);
  EXPECT_EQ(r[0].messages[0].body->payload(), "now");
  EXPECT_EQ(sm.apply(at(5999, {take("d")}))[0].status.code, ErrorCode::kEmpty);
  EXPECT_FALSE(sm.has_visible("d", 5999));
  // Ack, nack and extend do not treat a delay as a lease.
  EXPECT_EQ(sm.apply(at(2000, {AckCommand{"d", later_id, ""}}))[0].status.code, ErrorCode::kNotFound);
  EXPECT_EQ(sm.apply(at(2000, {NackCommand{"d", later_id, ""}}))[0].status.code, ErrorCode::kNotFound);
  EXPECT_EQ(sm.apply(at(2000, {ExtendCommand{"d", later_id, 1000, ""}}))[0].status.code, ErrorCode::kNotFound);
  // The sweep is due when the delay is, and the sweep wakes the mailbox.
  EXPECT_EQ(sm.next_sweep_due_ms(), 6000);
  sm.apply(at(6000, {SweepCommand{}}));
  EXPECT_EQ(sm.woken(), std::vector<std::string>{"d"});
  EXPECT_TRUE(sm.has_visible("d", 6000));
  EXPECT_EQ(sm.stats("d", 6000).delayed, 0u);
  r = sm.apply(at(6001, {take("d")}));
  ASSERT_EQ(r[0].messages.size(), 1u);
  EXPECT_EQ(r[0].messages[0].id, later_id);
  EXPECT_EQ(r[0].messages[0].deliveries, 1u);
  EXPECT_EQ(r[0].messages[0].enqueued_at_ms, 1000);
}

TEST(StateMachine, DelayedMessageIsConsumableWhenDueBeforeAnySweep) {
  StateMachine sm;
  sm.apply(at(0, {delayed("d", "x", 100)}));
  auto r = sm.apply(at(100, {take("d", 1, 50)}));
  ASSERT_EQ(r[0].messages.size(), 1u);
  EXPECT_EQ(r[0].messages[0].lease_expires_at_ms, 150);
  EXPECT_EQ(sm.stats("d", 120).leased, 1u);
  EXPECT_EQ(sm.stats("d", 120).delayed, 0u);
  EXPECT_TRUE(sm.apply(at(120, {AckCommand{"d", r[0].messages[0].id, ""}}))[0].status.is_ok());
}

TEST(StateMachine, DelayedTtlCountsFromWhenVisible) {
  StateMachine sm;
  sm.apply(at(0, {delayed("d", "x", 10'000, 1'000)}));
  EXPECT_EQ(sm.stats("d", 10'500).messages, 1u);  // due at 10s, expires at 11s
  EXPECT_TRUE(sm.has_visible("d", 10'999));
  EXPECT_FALSE(sm.has_visible("d", 11'000));
  sm.apply(at(11'000, {SweepCommand{}}));
  EXPECT_EQ(sm.total_messages(), 0u);
  EXPECT_EQ(sm.mailbox_count(), 0u);
  EXPECT_EQ(sm.next_sweep_due_ms(), INT64_MAX);
}

TEST(StateMachine, DelayedPutWithRidIsDeduplicated) {
  StateMachine sm;
  auto r = sm.apply(at(0, {delayed("d", "x", 1000, 60'000, "r")}));
  auto again = sm.apply(at(1, {delayed("d", "x", 1000, 60'000, "r")}));
  EXPECT_TRUE(again[0].deduplicated);
  EXPECT_EQ(again[0].put_id, r[0].put_id);
  EXPECT_EQ(sm.total_messages(), 1u);
}

TEST(StateMachine, TimerIndexFindsOnlyDueMailboxes) {
  StateMachine sm;
  std::vector<Command> puts;
  for (int i = 0; i < 100; ++i) puts.push_back(put("box" + std::to_string(i), "m", 1'000'000 + i));
  puts.push_back(delayed("late", "x", 50, 10'000'000));
  sm.apply(at(0, std::move(puts)));
  EXPECT_EQ(sm.next_sweep_due_ms(), 50);
  sm.apply(at(50, {SweepCommand{}}));
  EXPECT_EQ(sm.next_sweep_due_ms(), 1'000'000);
  sm.apply(at(1'000'010, {SweepCommand{}}));
  EXPECT_EQ(sm.mailbox_count(), 90u);
  EXPECT_EQ(sm.next_sweep_due_ms(), 1'000'011);
  // A consume that empties a mailbox takes it out of the index.
  sm.apply(at(1'000'010, {take("box11")}));
  EXPECT_EQ(sm.next_sweep_due_ms(), 1'000'012);
}

// ---------------------------------------------------------------- v2: extend

TEST(StateMachine, ExtendMovesTheLeaseEnd) {
  StateMachine sm;
  sm.apply(at(1000, {put("e", "job")}));
  auto r = sm.apply(at(1000, {take("e", 1, 500)}));
  const uint64_t id = r[0].messages[0].id;
  r = sm.apply(at(1400, {ExtendCommand{"e", id, 1000, ""}}));
  ASSERT_TRUE(r[0].status.is_ok());
  EXPECT_EQ(r[0].lease_expires_at_ms, 2400);
  sm.apply(at(1600, {SweepCommand{}}));
  EXPECT_EQ(sm.apply(at(1600, {take("e")}))[0].status.code, ErrorCode::kEmpty);
  EXPECT_EQ(sm.stats("e", 1600).leased, 1u);
  // A shorter lease is allowed too: it ends `lease` from now.
  EXPECT_EQ(sm.apply(at(1700, {ExtendCommand{"e", id, 100, ""}}))[0].lease_expires_at_ms, 1800);
  sm.apply(at(1800, {SweepCommand{}}));
  EXPECT_EQ(sm.apply(at(1800, {ExtendCommand{"e", id, 100, ""}}))[0].status.code, ErrorCode::kNotFound);
  r = sm.apply(at(1801, {take("e")}));
  ASSERT_EQ(r[0].messages.size(), 1u);
  EXPECT_EQ(r[0].messages[0].deliveries, 2u);
}

TEST(StateMachine, ExtendWithRidRepeatsItsResult) {
  StateMachine sm;
  sm.apply(at(0, {put("e", "job")}));
  const uint64_t id = sm.apply(at(0, {take("e", 1, 500)}))[0].messages[0].id;
  auto first = sm.apply(at(100, {ExtendCommand{"e", id, 1000, "x"}}));
  auto again = sm.apply(at(200, {ExtendCommand{"e", id, 1000, "x"}}));
  EXPECT_TRUE(again[0].deduplicated);
  EXPECT_EQ(again[0].lease_expires_at_ms, first[0].lease_expires_at_ms);
  EXPECT_EQ(sm.stats("e", 1050).leased, 1u);
}

// ---------------------------------------------------------------- v2: purge

TEST(StateMachine, PurgeRemovesEverythingIncludingLeasedAndDelayed) {
  StateMachine sm;
  sm.apply(at(0, {put("p", "a"), put("p", "b"), delayed("p", "c", 10'000), put("q", "keep")}));
  sm.apply(at(1, {take("p", 1, 5000)}));
  auto r = sm.apply(at(2, {PurgeCommand{"p", "r1"}}));
  ASSERT_TRUE(r[0].status.is_ok());
  EXPECT_EQ(r[0].count, 3u);
  EXPECT_EQ(sm.stats("p", 2).messages, 0u);
  EXPECT_EQ(sm.total_messages(), 1u);
  EXPECT_EQ(sm.total_bytes(), 4u);
  EXPECT_EQ(sm.mailbox_count(), 1u);
  // A repeat with the same rid answers the first count and removes nothing more.
  sm.apply(at(3, {put("p", "new")}));
  r = sm.apply(at(4, {PurgeCommand{"p", "r1"}}));
  EXPECT_TRUE(r[0].deduplicated);
  EXPECT_EQ(r[0].count, 3u);
  EXPECT_EQ(sm.stats("p", 4).messages, 1u);
  EXPECT_EQ(sm.apply(at(5, {PurgeCommand{"nothing", ""}}))[0].count, 0u);
  EXPECT_EQ(sm.next_sweep_due_ms(), 60'000);
}

// ---------------------------------------------------------------- v2: redrive

// Sends `n` messages of `box` to its dead letters (max_deliveries = 1).
void dead_letter(StateMachine& sm, const std::string& box, int n, int64_t t) {
  std::vector<Command> puts;
  for (int i = 0; i < n; ++i) puts.push_back(put(box, "d" + std::to_string(i), 600'000));
  sm.apply(at(t, std::move(puts)));
  sm.apply(at(t, {take(box, static_cast<uint32_t>(n), 10)}));
  sm.apply(at(t + 10, {SweepCommand{}}));
}

TEST(StateMachine, RedriveMovesDeadLettersBackOldestFirst) {
  StateMachine sm;
  StateConfig config;
  config.max_deliveries = 1;
  sm.apply(at(0, {ConfigureCommand{config}}));
  dead_letter(sm, "r", 5, 100);
  ASSERT_EQ(sm.stats("r.dlq", 200).messages, 5u);
  sm.apply(at(200, {put("r", "fresh")}));
  auto r = sm.apply(at(300, {RedriveCommand{"r", 2, ""}}));
  ASSERT_TRUE(r[0].status.is_ok());
  EXPECT_EQ(r[0].count, 2u);
  EXPECT_EQ(sm.woken(), std::vector<std::string>{"r"});
  r = sm.apply(at(301, {take("r", 10)}));
  ASSERT_EQ(r[0].messages.size(), 3u);
  EXPECT_EQ(r[0].messages[0].body->payload(), "fresh");
  EXPECT_EQ(r[0].messages[1].body->payload(), "d0");
  EXPECT_EQ(r[0].messages[2].body->payload(), "d1");
  EXPECT_EQ(r[0].messages[1].deliveries, 1u);  // reset, then this delivery
  EXPECT_LT(r[0].messages[0].id, r[0].messages[1].id);  // new ids: FIFO by id
  // Without n: the rest.
  r = sm.apply(at(302, {RedriveCommand{"r", 0, "x"}}));
  EXPECT_EQ(r[0].count, 3u);
  EXPECT_EQ(sm.stats("r.dlq", 302).messages, 0u);
  EXPECT_EQ(sm.stats("r", 302).messages, 3u);
  EXPECT_EQ(sm.total_messages(), 3u);
  EXPECT_EQ(sm.apply(at(303, {RedriveCommand{"r", 0, "x"}}))[0].count, 3u);  // repeat
  EXPECT_EQ(sm.apply(at(303, {RedriveCommand{"r", 0, ""}}))[0].count, 0u);   // nothing left
}

TEST(StateMachine, RedriveRespectsQuotaAndSkipsLeased) {
  StateMachine sm;
  StateConfig config;
  config.max_deliveries = 1;
  config.max_messages_per_mailbox = 3;
  sm.apply(at(0, {ConfigureCommand{config}}));
  dead_letter(sm, "q", 3, 100);
  dead_letter(sm, "q", 2, 200);
  ASSERT_EQ(sm.stats("q.dlq", 300).messages, 5u);  // dead letters are never refused
  // One dead letter is leased by someone reading the dead letters.
  auto leased = sm.apply(at(300, {take("q.dlq", 1, 10'000)}));
  ASSERT_EQ(leased[0].messages.size(), 1u);
  sm.apply(at(300, {put("q", "a"), put("q", "b")}));
  auto r = sm.apply(at(301, {RedriveCommand{"q", 0, ""}}));
  EXPECT_EQ(r[0].count, 1u);  // room for one
  EXPECT_EQ(sm.stats("q", 301).messages, 3u);
  r = sm.apply(at(302, {RedriveCommand{"q", 0, ""}}));
  EXPECT_EQ(r[0].status.code, ErrorCode::kQuotaExceeded);
  EXPECT_EQ(r[0].count, 0u);
  sm.apply(at(303, {take("q", 3)}));
  r = sm.apply(at(304, {RedriveCommand{"q", 0, ""}}));
  EXPECT_EQ(r[0].count, sm.stats("q", 304).messages);
  EXPECT_EQ(sm.stats("q.dlq", 304).leased, 1u);
  EXPECT_EQ(sm.stats("q.dlq", 304).messages, 1u);  // only the leased one stays
}

// ---------------------------------------------------------------- v2: listing

TEST(StateMachine, ListPatterns) {
  EXPECT_TRUE(list_pattern_matches("*", "a"));
  EXPECT_TRUE(list_pattern_matches("team-$*", "team-a"));
  EXPECT_TRUE(list_pattern_matches("team-$*", "team-"));
  EXPECT_FALSE(list_pattern_matches("team-$*", "teamx"));
  EXPECT_TRUE(list_pattern_matches("$*-eu", "x-eu"));
  EXPECT_FALSE(list_pattern_matches("$*-eu", "x-us"));
  EXPECT_TRUE(list_pattern_matches("a$*b$*c", "aXbYc"));
  EXPECT_TRUE(list_pattern_matches("a$*b$*c", "abc"));
  EXPECT_FALSE(list_pattern_matches("a$*b$*c", "acb"));
  EXPECT_FALSE(list_pattern_matches("ab$*ba", "aba"));
  EXPECT_EQ(list_pattern_prefix("team-$*"), "team-");
  EXPECT_EQ(list_pattern_prefix("*"), "");
  EXPECT_EQ(list_pattern_prefix("$*x"), "");
}

TEST(StateMachine, ListPagesInNameOrder) {
  StateMachine sm;
  sm.apply(at(0, {put("team-b", "1"), put("team-a", "1"), put("team-a", "2"), put("other", "x"),
                  put("team-c", "1", 10), delayed("team-d", "x", 1000)}));
  std::vector<ListedMailbox> out;
  sm.list(ListQuery{"team-$*", "", 1000}, 20, nullptr, &out);
  ASSERT_EQ(out.size(), 3u);  // team-c's message expired: it holds nothing
  EXPECT_EQ(out[0].name, "team-a");
  EXPECT_EQ(out[0].stats.messages, 2u);
  EXPECT_EQ(out[1].name, "team-b");
  EXPECT_EQ(out[2].name, "team-d");
  EXPECT_EQ(out[2].stats.delayed, 1u);
  sm.list(ListQuery{"team-$*", "", 1}, 20, nullptr, &out);
  ASSERT_EQ(out.size(), 1u);
  sm.list(ListQuery{"team-$*", "team-a", 1}, 20, nullptr, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].name, "team-b");
  sm.list(ListQuery{"team-$*", "team-d", 10}, 20, nullptr, &out);
  EXPECT_TRUE(out.empty());
  sm.list(ListQuery{"*", "", 10}, 20, nullptr, &out);
  EXPECT_EQ(out.size(), 4u);
  sm.list(ListQuery{"*", "", 10}, 20, [](std::string_view n) { return n != "other"; }, &out);
  EXPECT_EQ(out.size(), 3u);
  sm.list(ListQuery{"team-$*", "a", 10}, 20, nullptr, &out);  // `after` before the prefix
  EXPECT_EQ(out.size(), 3u);
}

// ---------------------------------------------------------------- v2: snapshots

TEST(StateMachine, VersionOneSnapshotStillRestores) {
  // Without rid records, format 1 differs from format 2 only in its version.
  StateMachine a;
  a.apply(at(10, {put("x", "1"), put("y", "2", 500)}));
  a.apply(at(20, {take("x", 1, 1000)}));
  std::string bytes = a.serialize();
  bytes[0] = 1;
  StateMachine b;
  ASSERT_TRUE(b.restore(bytes));
  EXPECT_EQ(a.digest(), b.digest());
  EXPECT_EQ(b.next_sweep_due_ms(), 510);
  bytes[0] = 3;
  EXPECT_FALSE(b.restore(bytes));
}

TEST(StateMachine, SnapshotRoundTripKeepsDelayedLeasedAndV2Records) {
  StateMachine a;
  StateConfig config;
  config.max_deliveries = 1;
  a.apply(at(0, {ConfigureCommand{config}}));
  a.apply(at(10, {put("s", "visible"), delayed("s", "later", 5000), put("t", "job"), put("u", "gone")}));
  const uint64_t job = a.apply(at(20, {take("t", 1, 1000)}))[0].messages[0].id;
  a.apply(at(30, {ExtendCommand{"t", job, 2000, "e1"}, PurgeCommand{"u", "p1"}}));
  dead_letter(a, "v", 2, 40);
  a.apply(at(60, {RedriveCommand{"v", 1, "r1"}}));
  StateMachine b;
  ASSERT_TRUE(b.restore(a.serialize()));
  EXPECT_EQ(a.digest(), b.digest());
  // Bounds are lower bounds: the restored ones are exact, never later.
  EXPECT_GE(b.next_sweep_due_ms(), a.next_sweep_due_ms());
  EXPECT_LE(b.next_sweep_due_ms(), 5010);
  EXPECT_EQ(b.stats("s", 100).delayed, 1u);
  EXPECT_EQ(b.stats("t", 100).leased, 1u);
  // Both go on identically: rid repeats, the delay ends, the lease is held.
  const std::vector<Command> next = {ExtendCommand{"t", job, 2000, "e1"}, PurgeCommand{"u", "p1"},
                                     RedriveCommand{"v", 1, "r1"}, SweepCommand{}, take("s", 10)};
  auto ra = a.apply(at(6000, next));
  auto rb = b.apply(at(6000, next));
  EXPECT_EQ(ra[0].lease_expires_at_ms, 2030);
  EXPECT_EQ(rb[0].lease_expires_at_ms, 2030);
  EXPECT_EQ(rb[2].count, 1u);
  EXPECT_TRUE(rb[2].deduplicated);
  ASSERT_EQ(rb[4].messages.size(), 2u);
  EXPECT_EQ(rb[4].messages[1].body->payload(), "later");
  EXPECT_EQ(a.digest(), b.digest());
}

}  // namespace
}  // namespace mailbox
