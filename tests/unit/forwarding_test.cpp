// The codec of what one node hands another on a client's behalf.
#include "server/forwarding.hpp"

#include <gtest/gtest.h>

namespace mailbox {
namespace {

TEST(Forwarding, RequestRoundTrips) {
  ForwardedRequest r;
  r.kind = ForwardedRequest::Kind::kPublication;
  r.key = "forge/mailbox/alice";
  r.parameters = "rid=1;ttl=5s";
  r.payload = std::string("\0binary\xff", 8);
  r.encoding = "application/octet-stream";
  r.attachment = R"({"token":"x"})";
  r.publication_id = 0x1234567890abcdefULL;
  ForwardedRequest back;
  ASSERT_TRUE(decode_forwarded_request(encode_forwarded_request(r), &back));
  EXPECT_EQ(back.kind, r.kind);
  EXPECT_EQ(back.key, r.key);
  EXPECT_EQ(back.parameters, r.parameters);
  EXPECT_EQ(back.payload, r.payload);
  EXPECT_EQ(back.encoding, r.encoding);
  EXPECT_EQ(back.attachment, r.attachment);
  EXPECT_EQ(back.publication_id, r.publication_id);

  ForwardedRequest bare;
  bare.key = "forge/mailbox/bob";
  ASSERT_TRUE(decode_forwarded_request(encode_forwarded_request(bare), &back));
  EXPECT_FALSE(back.payload.has_value());
  EXPECT_FALSE(back.encoding.has_value());
  EXPECT_FALSE(back.attachment.has_value());
  EXPECT_EQ(back.kind, ForwardedRequest::Kind::kQuery);
}

TEST(Forwarding, AnswerRoundTrips) {
  ForwardedAnswer a;
  a.replies.push_back(ForwardedReply{true, "forge/mailbox/a", "payload", "zenoh/bytes", std::string("{}")});
  a.replies.push_back(ForwardedReply{false, "", R"({"code":"empty"})", "application/json", std::nullopt});
  ForwardedAnswer back;
  ASSERT_TRUE(decode_forwarded_answer(encode_forwarded_answer(a), &back));
  ASSERT_EQ(back.replies.size(), 2u);
  EXPECT_FALSE(back.not_leader);
  EXPECT_TRUE(back.replies[0].ok);
  EXPECT_EQ(back.replies[0].attachment, std::optional<std::string>("{}"));
  EXPECT_FALSE(back.replies[1].ok);
  EXPECT_EQ(back.replies[1].payload, R"({"code":"empty"})");

  ForwardedAnswer not_leader;
  not_leader.not_leader = true;
  not_leader.leader_hint = 3;
  ASSERT_TRUE(decode_forwarded_answer(encode_forwarded_answer(not_leader), &back));
  EXPECT_TRUE(back.not_leader);
  EXPECT_EQ(back.leader_hint, 3u);
  EXPECT_TRUE(back.replies.empty());
}

TEST(Forwarding, MalformedBytesAreRefused) {
  ForwardedRequest r;
  r.key = "forge/mailbox/alice";
  r.payload = "x";
  const std::string good = encode_forwarded_request(r);
  ForwardedRequest back;
  for (size_t cut = 0; cut < good.size(); ++cut) {
    EXPECT_FALSE(decode_forwarded_request(good.substr(0, cut), &back)) << "truncated at " << cut;
  }
  EXPECT_FALSE(decode_forwarded_request(good + "extra", &back));
  std::string wrong_version = good;
  wrong_version[0] = 9;
  EXPECT_FALSE(decode_forwarded_request(wrong_version, &back));
  std::string wrong_kind = good;
  wrong_kind[1] = 0;
  EXPECT_FALSE(decode_forwarded_request(wrong_kind, &back));

  ForwardedAnswer answer;
  answer.replies.push_back(ForwardedReply{true, "k", "p", "e", std::nullopt});
  const std::string encoded = encode_forwarded_answer(answer);
  ForwardedAnswer decoded;
  for (size_t cut = 0; cut < encoded.size(); ++cut) {
    EXPECT_FALSE(decode_forwarded_answer(encoded.substr(0, cut), &decoded)) << "truncated at " << cut;
  }
  std::string many = encoded;
  many[10] = 0x7f;  // more replies than bytes left
  EXPECT_FALSE(decode_forwarded_answer(many, &decoded));
}

}  // namespace
}  // namespace mailbox
