// The rule of bridge/cpp/zenoh_bridge.hpp: no Zenoh send inside a Zenoh
// callback (nor on the Raft loop). A violation must abort, in release
// builds too, not deadlock a worker until Zenoh closes the link (issue #11).
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "bridge/cpp/zenoh_bridge.hpp"
#include "util/no_blocking_sends.hpp"

namespace mailbox {
namespace {

constexpr const char* kLocalSessionConfig =
    "{mode:\"peer\",listen:{endpoints:[]},connect:{endpoints:[]},scouting:{multicast:{enabled:false},"
    "gossip:{enabled:false}}}";

TEST(NoBlockingSends, AllowedOutsideAnyScope) {
  EXPECT_EQ(no_blocking_sends_reason(), nullptr);
  assert_may_block_on_zenoh("test");  // does not abort
}

TEST(NoBlockingSends, ScopesNestAndEnd) {
  {
    NoBlockingSendsScope outer("outer");
    {
      NoBlockingSendsScope inner("inner");
      EXPECT_STREQ(no_blocking_sends_reason(), "inner");
    }
    EXPECT_STREQ(no_blocking_sends_reason(), "outer");
  }
  EXPECT_EQ(no_blocking_sends_reason(), nullptr);
}

TEST(NoBlockingSends, ASendInsideAScopeAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        NoBlockingSendsScope scope("on the Raft loop thread");
        assert_may_block_on_zenoh("Query::reply");
      },
      "Query::reply.*Raft loop");
}

TEST(NoBlockingSends, AReplyFromInsideAQueryableCallbackAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        std::string error;
        auto session = zenoh::Session::open(kLocalSessionConfig, &error);
        if (!session) std::abort();
        auto queryable = session->declare_queryable(
            "nbs/test", true, [](zenoh::Query&& q) { q.reply(q.key(), "x", "text/plain", std::nullopt); }, &error);
        zenoh::GetOptions options;
        options.timeout_ms = 2000;
        session->get("nbs/test", options, [](const zenoh::Reply&) {}, [] {});
        std::this_thread::sleep_for(std::chrono::seconds(3));
        std::fprintf(stderr, "no abort\n");
        std::exit(0);
      },
      "Query::reply.*inside a Zenoh callback");
}

TEST(NoBlockingSends, AQueryLeftToDieInsideTheCallbackAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        std::string error;
        auto session = zenoh::Session::open(kLocalSessionConfig, &error);
        if (!session) std::abort();
        auto queryable = session->declare_queryable("nbs/drop", true, [](zenoh::Query&& q) { q.finish(); }, &error);
        zenoh::GetOptions options;
        options.timeout_ms = 2000;
        session->get("nbs/drop", options, [](const zenoh::Reply&) {}, [] {});
        std::this_thread::sleep_for(std::chrono::seconds(3));
        std::exit(0);
      },
      "Query::finish.*inside a Zenoh callback");
}

}  // namespace
}  // namespace mailbox
