// The Raft transport's framing and its forwarding between nodes: real TCP on
// loopback, two transports on one libuv loop in the test thread.
#include "replication/transport.hpp"

#include "transport_fixture.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <vector>

namespace mailbox {
namespace {

TEST(TransportFrames, RoundTripAndRejections) {
  std::string wire;
  append_frame(FrameKind::kForward, "hello", &wire);
  size_t consumed = 0;
  ParsedFrame frame;
  ASSERT_TRUE(parse_frame(wire, &consumed, &frame).is_ok());
  EXPECT_EQ(consumed, wire.size());
  EXPECT_EQ(frame.kind, FrameKind::kForward);
  EXPECT_EQ(frame.body, "hello");
  // Incomplete: more bytes needed, no error.
  ASSERT_TRUE(parse_frame(std::string_view(wire).substr(0, wire.size() - 1), &consumed, &frame).is_ok());
  EXPECT_EQ(consumed, 0u);
  std::string bad = wire;
  bad.back() ^= 1;  // body no longer matches its checksum
  EXPECT_FALSE(parse_frame(bad, &consumed, &frame).is_ok());
  bad = wire;
  bad[4] = 42;  // unknown kind
  EXPECT_FALSE(parse_frame(bad, &consumed, &frame).is_ok());
  bad = wire;
  bad[5] = 9;  // unknown version
  EXPECT_FALSE(parse_frame(bad, &consumed, &frame).is_ok());
}

class TransportForwarding : public LoopbackTransports {
 protected:
  TransportForwarding() : LoopbackTransports(21000) {}
  void SetUp() override {
    LoopbackTransports::SetUp();
    start();
  }
};

TEST_F(TransportForwarding, NothingIsSentWithoutAConnectionThenTheAnswerComesBack) {
  rec_b_.answer = [](std::string_view request) { return "answer to " + std::string(request); };
  EXPECT_FALSE(a_->forward(2, address_b_, 1, "first")) << "no connection yet: refused, nothing sent";
  ASSERT_TRUE(forward_when_connected(7, "consume alice"));
  ASSERT_TRUE(run_until([&] { return rec_a_.replies.size() == 1; }));
  EXPECT_EQ(rec_a_.replies[0], std::make_pair(uint64_t{7}, std::string("answer to consume alice")));
  ASSERT_EQ(rec_b_.requests.size(), 1u) << "the refused attempt never reached the other node";
  EXPECT_EQ(rec_b_.requests[0].second, "consume alice");
  EXPECT_TRUE(rec_a_.lost.empty());
  EXPECT_EQ(a_->counters().forwards_sent, 1u);
  EXPECT_EQ(b_->counters().forwards_received, 1u);
}

TEST_F(TransportForwarding, ManyRequestsEachDeliveredOnceAndAnswered) {
  rec_b_.answer = [](std::string_view request) { return std::string(request); };
  ASSERT_TRUE(forward_when_connected(1, std::string(300 * 1024, 'x')));  // a large one
  for (uint64_t id = 2; id <= 200; ++id) ASSERT_TRUE(a_->forward(2, address_b_, id, "r" + std::to_string(id)));
  ASSERT_TRUE(run_until([&] { return rec_a_.replies.size() == 200; }));
  EXPECT_EQ(rec_b_.requests.size(), 200u);
  for (uint64_t id = 2; id <= 200; ++id) EXPECT_EQ(rec_a_.replies[id - 1].second, "r" + std::to_string(id));
}

TEST_F(TransportForwarding, AnAnswerThatNeverComesIsReportedLostWhenTheConnectionCloses) {
  // Node 2 takes the request and goes away before answering.
  ASSERT_TRUE(forward_when_connected(5, "put bob"));
  ASSERT_TRUE(run_until([&] { return rec_b_.requests.size() == 1; }));
  int closed = 0;
  b_->close([&] { ++closed; });
  ASSERT_TRUE(run_until([&] { return closed == 1 && rec_a_.lost.size() == 1; }));
  b_.reset();
  EXPECT_EQ(rec_a_.lost[0], 5u);
  EXPECT_TRUE(rec_a_.replies.empty());
  EXPECT_EQ(a_->counters().forwards_lost, 1u);
}

TEST_F(TransportForwarding, AnAnswerForAClosedConnectionIsDropped) {
  // Answered later, through a connection id that no longer exists.
  ASSERT_TRUE(forward_when_connected(3, "stats"));
  ASSERT_TRUE(run_until([&] { return rec_b_.requests.size() == 1; }));
  b_->reply_forward(/*connection=*/999999, 3, "late");
  for (int i = 0; i < 50; ++i) {
    uv_run(&loop_, UV_RUN_NOWAIT);
    usleep(1000);
  }
  EXPECT_TRUE(rec_a_.replies.empty());
}

}  // namespace
}  // namespace mailbox
