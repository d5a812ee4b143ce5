// Table-driven tests of request parsing: every bad input gets
// invalid_argument, every good one the request it means.
#include <gtest/gtest.h>

#include "server/request.hpp"

namespace mailbox {
namespace {

constexpr std::string_view kPrefix = "forge/mailbox";

Status parse(std::string_view key, std::string_view params, Request* r) {
  return parse_query(kPrefix, key, params, RequestLimits{}, r);
}

TEST(Request, Operations) {
  Request r;
  ASSERT_TRUE(parse("forge/mailbox/user123", "", &r).is_ok());
  EXPECT_EQ(r.op, Operation::kConsume);
  EXPECT_EQ(r.mailbox, "user123");
  EXPECT_FALSE(r.max_count.has_value());
  ASSERT_TRUE(parse("forge/mailbox/a/consume", "n=50", &r).is_ok());
  EXPECT_EQ(r.op, Operation::kConsume);
  EXPECT_EQ(*r.max_count, 50u);
  ASSERT_TRUE(parse("forge/mailbox/a/peek", "", &r).is_ok());
  EXPECT_EQ(r.op, Operation::kPeek);
  ASSERT_TRUE(parse("forge/mailbox/a/put", "ttl=500ms", &r).is_ok());
  EXPECT_EQ(r.op, Operation::kPut);
  EXPECT_EQ(*r.ttl_ms, 500);
  ASSERT_TRUE(parse("forge/mailbox/a/stats", "", &r).is_ok());
  EXPECT_EQ(r.op, Operation::kStats);
  ASSERT_TRUE(parse("forge/mailbox/a/ack", "id=42", &r).is_ok());
  EXPECT_EQ(*r.message_id, 42u);
  ASSERT_TRUE(parse("forge/mailbox/A-z.0_~+=@x", "", &r).is_ok());
}

TEST(Request, BadKeysAndParameters) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"forge/mailbox/*", ""},
      {"forge/mailbox/**", ""},
      {"forge/mailbox/a*", ""},
      {"forge/mailbox/$*", ""},
      {"forge/mailbox/a/*", ""},
      {"forge/mailbox/@a", ""},
      {"forge/mailbox/.a", ""},
      {"forge/mailbox/a b", ""},
      {"forge/mailbox/a%2f", ""},
      {"forge/mailbox/" + std::string(129, 'a'), ""},
      {"forge/mailbox/a/frobnicate", ""},
      {"forge/mailbox/a/consume/extra", ""},
      {"forge/mailbox", ""},
      {"forge/mailboxes/a", ""},
      {"other/a", ""},
      {"forge/mailbox/a", "n=0"},
      {"forge/mailbox/a", "n=1001"},
      {"forge/mailbox/a", "n=-1"},
      {"forge/mailbox/a", "n=abc"},
      {"forge/mailbox/a", "n="},
      {"forge/mailbox/a", "n=99999999999999999999999"},
      {"forge/mailbox/a", "n=1;n=2"},
      {"forge/mailbox/a", "colour=red"},
      {"forge/mailbox/a", "ttl=5s"},
      {"forge/mailbox/a", "wait=-1s"},
      {"forge/mailbox/a", "wait=1d"},
      {"forge/mailbox/a", "wait=10m"},
      {"forge/mailbox/a", "wait=1.5s"},
      {"forge/mailbox/a", "wait=99999999999999999999h"},
      {"forge/mailbox/a", "lease=0s"},
      {"forge/mailbox/a", "rid="},
      {"forge/mailbox/a/put", "ttl=0"},
      {"forge/mailbox/a/put", "ttl=abc"},
      {"forge/mailbox/a/put", "ttl=9999h"},
      {"forge/mailbox/a/put", "n=1"},
      {"forge/mailbox/a/peek", "lease=5s"},
      {"forge/mailbox/a/stats", "n=1"},
      {"forge/mailbox/a/ack", ""},
      {"forge/mailbox/a/ack", "id=0"},
      {"forge/mailbox/a/ack", "id=x"},
      {"forge/mailbox/a/nack", "id=-4"},
      // v2
      {"forge/mailbox/a/put", "delay=abc"},
      {"forge/mailbox/a/put", "delay=8785h"},  // more than 366 days
      {"forge/mailbox/a/put", "delay=-1s"},
      {"forge/mailbox/a", "delay=5s"},
      {"forge/mailbox/a/extend", "id=1"},
      {"forge/mailbox/a/extend", "lease=5s"},
      {"forge/mailbox/a/extend", "id=1;lease=0"},
      {"forge/mailbox/a/extend", "id=1;lease=13h"},
      {"forge/mailbox/a/extend", "id=1;lease=5s;n=1"},
      {"forge/mailbox/a/purge", "n=1"},
      {"forge/mailbox/a/purge", "id=1"},
      {"forge/mailbox/a/redrive", "n=0"},
      {"forge/mailbox/a/redrive", "n=100001"},
      {"forge/mailbox/a/redrive", "lease=1s"},
      {"forge/mailbox/*/peek", ""},
      {"forge/mailbox/*/purge", ""},
      {"forge/mailbox/team-$*/redrive", ""},
      {"forge/mailbox/team-$*", ""},
      {"forge/mailbox/**/stats", ""},
      {"forge/mailbox/*/stats/x", ""},
      {"forge/mailbox/a*/stats", ""},
      {"forge/mailbox/@$*/stats", ""},
      {"forge/mailbox/.$*/stats", ""},
      {"forge/mailbox/a b$*/stats", ""},
      {"forge/mailbox/*/stats", "limit=0"},
      {"forge/mailbox/*/stats", "limit=10001"},
      {"forge/mailbox/*/stats", "after=*"},
      {"forge/mailbox/*/stats", "after=@x"},
      {"forge/mailbox/*/stats", "n=1"},
      {"forge/mailbox/a/stats", "limit=5"},
  };
  for (const auto& [key, params] : bad) {
    Request r;
    Status s = parse(key, params, &r);
    EXPECT_EQ(s.code, ErrorCode::kInvalidArgument) << key << "?" << params;
    EXPECT_FALSE(s.message.empty()) << key << "?" << params;
  }
}

TEST(Request, QueueFeatures) {
  Request r;
  ASSERT_TRUE(parse("forge/mailbox/a/put", "delay=30s;ttl=1h;rid=x", &r).is_ok());
  EXPECT_EQ(*r.delay_ms, 30'000);
  EXPECT_EQ(*r.ttl_ms, 3'600'000);
  ASSERT_TRUE(parse("forge/mailbox/a/put", "delay=8784h", &r).is_ok());  // 366 days
  EXPECT_EQ(*r.delay_ms, limits::kMaxDelayMs);
  ASSERT_TRUE(parse("forge/mailbox/a/put", "delay=0", &r).is_ok());
  EXPECT_FALSE(r.delay_ms.has_value());
  ASSERT_TRUE(parse("forge/mailbox/a/extend", "id=7;lease=30s;rid=r", &r).is_ok());
  EXPECT_EQ(r.op, Operation::kExtend);
  EXPECT_EQ(*r.message_id, 7u);
  EXPECT_EQ(*r.lease_ms, 30'000);
  ASSERT_TRUE(parse("forge/mailbox/a/purge", "rid=r", &r).is_ok());
  EXPECT_EQ(r.op, Operation::kPurge);
  ASSERT_TRUE(parse("forge/mailbox/a/redrive", "", &r).is_ok());
  EXPECT_EQ(r.op, Operation::kRedrive);
  EXPECT_FALSE(r.max_count.has_value());
  ASSERT_TRUE(parse("forge/mailbox/a/redrive", "n=100000", &r).is_ok());
  EXPECT_EQ(*r.max_count, 100'000u);
  ASSERT_TRUE(parse("forge/mailbox/*/stats", "", &r).is_ok());
  EXPECT_EQ(r.op, Operation::kList);
  EXPECT_EQ(r.mailbox, "*");
  ASSERT_TRUE(parse("forge/mailbox/team-$*/stats", "limit=10;after=team-b", &r).is_ok());
  EXPECT_EQ(r.op, Operation::kList);
  EXPECT_EQ(r.mailbox, "team-$*");
  EXPECT_EQ(*r.limit, 10u);
  EXPECT_EQ(*r.after, "team-b");
  ASSERT_TRUE(parse("forge/mailbox/$*-eu/stats", "", &r).is_ok());
  ASSERT_TRUE(parse("forge/mailbox/a$*b$*c/stats", "", &r).is_ok());
}

TEST(Request, PublicationOptions) {
  PublicationOptions o;
  EXPECT_TRUE(parse_publication_options(std::nullopt, &o).is_ok());
  EXPECT_FALSE(o.delay_ms.has_value());
  EXPECT_TRUE(parse_publication_options("not json", &o).is_ok());
  EXPECT_TRUE(parse_publication_options("{\"token\":\"x\"}", &o).is_ok());
  EXPECT_FALSE(o.delay_ms.has_value());
  ASSERT_TRUE(parse_publication_options("{\"token\":\"x\",\"delay\":\"30s\",\"ttl\":\"5m\"}", &o).is_ok());
  EXPECT_EQ(*o.delay_ms, 30'000);
  EXPECT_EQ(*o.ttl_ms, 300'000);
  for (const char* bad : {"{\"delay\":30}", "{\"delay\":\"soon\"}", "{\"delay\":\"8785h\"}",
                          "{\"ttl\":\"0\"}"}) {
    EXPECT_EQ(parse_publication_options(std::string_view(bad), &o).code, ErrorCode::kInvalidArgument) << bad;
  }
}

TEST(Request, Durations) {
  int64_t ms = 0;
  ASSERT_TRUE(parse_duration_ms("500ms", &ms));
  EXPECT_EQ(ms, 500);
  ASSERT_TRUE(parse_duration_ms("30s", &ms));
  EXPECT_EQ(ms, 30'000);
  ASSERT_TRUE(parse_duration_ms("5m", &ms));
  EXPECT_EQ(ms, 300'000);
  ASSERT_TRUE(parse_duration_ms("24h", &ms));
  EXPECT_EQ(ms, 86'400'000);
  ASSERT_TRUE(parse_duration_ms("7", &ms));
  EXPECT_EQ(ms, 7'000);
  for (const char* bad : {"", "s", "-1", "1.5", "1 s", "1sec", "1S", "ms", "1e3", "99999999999999999999"}) {
    EXPECT_FALSE(parse_duration_ms(bad, &ms)) << bad;
  }
}

TEST(Request, PublicationKeys) {
  std::string box;
  EXPECT_TRUE(parse_publication_key(kPrefix, "forge/mailbox/alice", &box).is_ok());
  EXPECT_EQ(box, "alice");
  EXPECT_FALSE(parse_publication_key(kPrefix, "forge/mailbox/alice/put", &box).is_ok());
  EXPECT_FALSE(parse_publication_key(kPrefix, "forge/mailbox/*", &box).is_ok());
  EXPECT_FALSE(parse_publication_key(kPrefix, "forge/mailbox/@x", &box).is_ok());
}

}  // namespace
}  // namespace mailbox
