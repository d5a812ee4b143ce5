#include <gtest/gtest.h>

#include "core/commands.hpp"

namespace mailbox {
namespace {

TEST(Commands, EntryRoundTripsEveryCommand) {
  Entry e;
  e.leader_time_ms = 1234567;
  e.proposer_token = 0xdeadbeef12345678ULL;
  e.commands.push_back(PutCommand{"alice", "text/plain", std::string("a\0b", 3), 5000, "r1"});
  e.commands.push_back(ConsumeCommand{"bob", 7, 3000, "r2"});
  e.commands.push_back(AckCommand{"carol", 42, "r3"});
  e.commands.push_back(NackCommand{"dave", 43, ""});
  e.commands.push_back(SweepCommand{});
  StateConfig config;
  config.max_deliveries = 9;
  config.dedup_window_ms = 1234;
  e.commands.push_back(ConfigureCommand{config});
  const std::string bytes = encode_entry(e);
  Entry d;
  ASSERT_TRUE(decode_entry(bytes, &d));
  EXPECT_EQ(d.leader_time_ms, 1234567);
  EXPECT_EQ(d.proposer_token, 0xdeadbeef12345678ULL);
  ASSERT_EQ(d.commands.size(), 6u);
  const auto& put = std::get<PutCommand>(d.commands[0]);
  EXPECT_EQ(put.mailbox, "alice");
  EXPECT_EQ(put.encoding, "text/plain");
  EXPECT_EQ(put.payload, std::string("a\0b", 3));
  EXPECT_EQ(put.ttl_ms, 5000);
  EXPECT_EQ(put.rid, "r1");
  const auto& consume = std::get<ConsumeCommand>(d.commands[1]);
  EXPECT_EQ(consume.mailbox, "bob");
  EXPECT_EQ(consume.max_count, 7u);
  EXPECT_EQ(consume.lease_ms, 3000);
  EXPECT_EQ(consume.rid, "r2");
  EXPECT_EQ(std::get<AckCommand>(d.commands[2]).id, 42u);
  EXPECT_EQ(std::get<AckCommand>(d.commands[2]).rid, "r3");
  EXPECT_EQ(std::get<NackCommand>(d.commands[3]).mailbox, "dave");
  EXPECT_TRUE(std::holds_alternative<SweepCommand>(d.commands[4]));
  EXPECT_EQ(std::get<ConfigureCommand>(d.commands[5]).config, config);
}

TEST(Commands, V2CommandsRoundTrip) {
  Entry e;
  PutCommand delayed{"alice", "text/plain", "later", 5000, "r1"};
  delayed.delay_ms = 30'000;
  e.commands.push_back(delayed);
  e.commands.push_back(ExtendCommand{"bob", 7, 60'000, "r2"});
  e.commands.push_back(PurgeCommand{"carol", "r3"});
  e.commands.push_back(RedriveCommand{"dave", 100, ""});
  Entry d;
  ASSERT_TRUE(decode_entry(encode_entry(e), &d));
  ASSERT_EQ(d.commands.size(), 4u);
  EXPECT_EQ(std::get<PutCommand>(d.commands[0]).delay_ms, 30'000);
  EXPECT_EQ(std::get<PutCommand>(d.commands[0]).payload, "later");
  const auto& extend = std::get<ExtendCommand>(d.commands[1]);
  EXPECT_EQ(extend.mailbox, "bob");
  EXPECT_EQ(extend.id, 7u);
  EXPECT_EQ(extend.lease_ms, 60'000);
  EXPECT_EQ(extend.rid, "r2");
  EXPECT_EQ(std::get<PurgeCommand>(d.commands[2]).rid, "r3");
  EXPECT_EQ(std::get<RedriveCommand>(d.commands[3]).max_count, 100u);
  EXPECT_EQ(std::get<RedriveCommand>(d.commands[3]).mailbox, "dave");
}

TEST(Commands, APutWithoutDelayKeepsItsVersionOneBytes) {
  // Tag 1, then the fields as before the v2 operations: an old node reads it.
  Entry e;
  e.commands.push_back(PutCommand{"a", "", "x", 1, ""});
  const std::string bytes = encode_entry(e);
  EXPECT_EQ(static_cast<uint8_t>(bytes[0]), 1u);  // format version
  EXPECT_EQ(static_cast<uint8_t>(bytes[1 + 8 + 8 + 1]), 1u);  // after time, token, count: the put tag
  PutCommand delayed{"a", "", "x", 1, ""};
  delayed.delay_ms = 1;
  Entry f;
  f.commands.push_back(delayed);
  EXPECT_EQ(static_cast<uint8_t>(encode_entry(f)[1 + 8 + 8 + 1]), 7u);  // the delayed-put tag
  // A delayed-put tag with no delay, or one beyond 366 days, is malformed.
  Entry out;
  ASSERT_TRUE(decode_entry(encode_entry(f), &out));
  delayed.delay_ms = limits::kMaxDelayMs + 1;
  f.commands[0] = delayed;
  EXPECT_FALSE(decode_entry(encode_entry(f), &out));
}

TEST(Commands, EntriesArePaddedToEightBytes) {
  for (size_t size = 0; size < 20; ++size) {
    Entry e;
    e.commands.push_back(PutCommand{"a", "", std::string(size, 'x'), 1, ""});
    EXPECT_EQ(encode_entry(e).size() % kEntryAlignmentBytes, 0u);
  }
}

TEST(Commands, EveryTruncationIsRejected) {
  Entry e;
  e.commands.push_back(PutCommand{"alice", "zenoh/bytes", "hello", 1, "rid"});
  e.commands.push_back(ConsumeCommand{"alice", 1, 0, ""});
  e.commands.push_back(AckCommand{"alice", 5, ""});
  e.commands.push_back(ConfigureCommand{});
  const std::string bytes = encode_entry(e);
  // Cutting into the padding may still leave a valid entry; cut before it.
  size_t unpadded = bytes.size();
  while (bytes[unpadded - 1] == 0) --unpadded;
  for (size_t n = 0; n < unpadded; ++n) {
    Entry d;
    EXPECT_FALSE(decode_entry(std::string_view(bytes).substr(0, n), &d)) << "prefix of " << n << " bytes";
  }
}

TEST(Commands, TrailingBytesAndUnknownVersionAreRejected) {
  Entry e;
  e.commands.push_back(ConsumeCommand{"alice", 1, 0, ""});
  std::string bytes = encode_entry(e);
  Entry d;
  EXPECT_FALSE(decode_entry(bytes + "x", &d));
  EXPECT_FALSE(decode_entry(bytes + std::string(8, '\0'), &d));
  bytes[0] = 99;
  EXPECT_FALSE(decode_entry(bytes, &d));
}

TEST(Commands, HugeCountIsRejectedWithoutAllocating) {
  // version, time, token, then a varint count far beyond the bytes present.
  std::string bytes(1, static_cast<char>(kEntryFormatVersion));
  bytes += std::string(16, '\0');
  bytes += "\xff\xff\xff\xff\x0f";
  Entry d;
  EXPECT_FALSE(decode_entry(bytes, &d));
}

}  // namespace
}  // namespace mailbox
