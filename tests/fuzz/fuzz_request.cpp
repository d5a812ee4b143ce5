// libFuzzer target: the selector and parameter parser (server/request.hpp),
// the first thing every query meets.
//
// Input: the key expression, a newline, then the selector parameters.
// Checked: nothing crashes or trips a sanitizer; an accepted request is
// well formed (valid mailbox name, ack/nack with an id, n within bounds,
// durations within their limits); the duration and publication-key parsers
// agree with the query parser.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "server/request.hpp"

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mailbox;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t newline = input.find('\n');
  const std::string_view key = input.substr(0, newline);
  const std::string_view parameters = newline == std::string_view::npos ? std::string_view() : input.substr(newline + 1);
  const RequestLimits limits;
  Request request;
  Status s = parse_query("forge/mailbox", key, parameters, limits, &request);
  if (s.is_ok()) {
    check(is_valid_mailbox_name(request.mailbox));
    if (request.op == Operation::kAck || request.op == Operation::kNack) check(request.message_id.has_value());
    if (request.max_count) check(*request.max_count >= 1 && *request.max_count <= limits::kMaxBatchMessages);
    if (request.wait_ms) check(*request.wait_ms >= 0 && *request.wait_ms <= limits.max_wait_ms);
    if (request.lease_ms) check(*request.lease_ms > 0 && *request.lease_ms <= limits.max_lease_ms);
    if (request.ttl_ms) check(*request.ttl_ms > 0 && *request.ttl_ms <= limits::kMaxTtlMs);
    if (request.rid) check(!request.rid->empty() && request.rid->size() <= limits::kMaxRidBytes);
  } else {
    check(s.code == ErrorCode::kInvalidArgument && !s.message.empty());
  }
  std::string mailbox;
  if (parse_publication_key("forge/mailbox", key, &mailbox).is_ok()) {
    check(is_valid_mailbox_name(mailbox));
    // A valid publication key is a valid consume query.
    check(parse_query("forge/mailbox", key, "", limits, &request).is_ok() && request.op == Operation::kConsume);
  }
  int64_t ms = 0;
  if (parse_duration_ms(parameters, &ms)) check(ms >= 0);
  (void)find_parameter(parameters, "id");
  return 0;
}
