#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "server/replies.hpp"

namespace mailbox {
namespace {

DeliveredMessage message(uint64_t id, std::string payload) {
  return DeliveredMessage{"alice", id, 1700000000000, 1, 0,
                          MessageBody::make("text/plain", payload)};
}

TEST(Replies, MessageAttachmentHasTheSpecFields) {
  auto j = nlohmann::json::parse(message_attachment(message(42, "x")));
  EXPECT_EQ(j["id"], "42");
  EXPECT_EQ(j["mailbox"], "alice");
  EXPECT_EQ(j["enqueued_at"], 1700000000000);
  EXPECT_EQ(j["deliveries"], 1);
}

TEST(Replies, BatchConcatenatesPayloadsAndListsSizes) {
  std::string payload;
  std::string attachment;
  batch_reply("alice", {message(1, "ab"), message(2, std::string("\0c", 2)), message(3, "")}, &payload, &attachment);
  EXPECT_EQ(payload, std::string("ab\0c", 4));
  auto j = nlohmann::json::parse(attachment);
  EXPECT_EQ(j["count"], 3);
  ASSERT_EQ(j["messages"].size(), 3u);
  EXPECT_EQ(j["messages"][0]["id"], "1");
  EXPECT_EQ(j["messages"][1]["size"], 2);
  EXPECT_EQ(j["messages"][2]["size"], 0);
  EXPECT_EQ(j["messages"][1]["encoding"], "text/plain");
}

TEST(Replies, ErrorsAreJsonWithStableCodes) {
  auto j = nlohmann::json::parse(error_reply(Status::error(ErrorCode::kInvalidArgument, "bad \"name\"\n")));
  EXPECT_EQ(j["code"], "invalid_argument");
  EXPECT_EQ(j["message"], "bad \"name\"\n");
  for (auto [code, name] : {std::pair{ErrorCode::kEmpty, "empty"}, {ErrorCode::kUnavailable, "unavailable"},
                            {ErrorCode::kUnknownOutcome, "unknown_outcome"}, {ErrorCode::kTooLarge, "too_large"},
                            {ErrorCode::kQuotaExceeded, "quota_exceeded"}, {ErrorCode::kNotFound, "not_found"},
                            {ErrorCode::kForbidden, "forbidden"}, {ErrorCode::kInternal, "internal"}}) {
    EXPECT_EQ(error_code_name(code), name);
    ErrorCode back;
    ASSERT_TRUE(error_code_from_name(name, &back));
    EXPECT_EQ(back, code);
  }
}

TEST(Replies, StatsAndPut) {
  auto j = nlohmann::json::parse(stats_reply("alice", MailboxStats{3, 15, 1234, 0}));
  EXPECT_EQ(j["messages"], 3);
  EXPECT_EQ(j["bytes"], 15);
  EXPECT_EQ(j["oldest_age_ms"], 1234);
  EXPECT_EQ(j["leased"], 0);
  EXPECT_EQ(nlohmann::json::parse(put_reply(7))["id"], "7");
}

}  // namespace
}  // namespace mailbox
