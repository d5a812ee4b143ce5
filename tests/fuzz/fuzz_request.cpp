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
    // A wildcard only in the list form of stats (SPEC v2).
    if (request.op == Operation::kList) check(is_valid_list_pattern(request.mailbox));
    else check(is_valid_mailbox_name(request.mailbox));
    if (request.op == Operation::kAck || request.op == Operation::kNack || request.op == Operation::kExtend) {
      check(request.message_id.has_value());
    }
    if (request.op == Operation::kExtend) check(request.lease_ms.has_value());
    const uint32_t max_n =
        request.op == Operation::kRedrive ? limits::kMaxRedriveMessages : limits::kMaxBatchMessages;
    if (request.max_count) check(*request.max_count >= 1 && *request.max_count <= max_n);
    if (request.delay_ms) check(*request.delay_ms > 0 && *request.delay_ms <= limits::kMaxDelayMs);
    if (request.limit) check(*request.limit >= 1 && *request.limit <= limits::kMaxListLimit);
    if (request.after) check(request.op == Operation::kList && is_valid_mailbox_name(*request.after));
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
  // The whole input as a publication's attachment (SPEC v2 delay/ttl).
  PublicationOptions options;
  Status po = parse_publication_options(input, &options);
  if (po.is_ok()) {
    if (options.delay_ms) check(*options.delay_ms > 0 && *options.delay_ms <= limits::kMaxDelayMs);
    if (options.ttl_ms) check(*options.ttl_ms > 0 && *options.ttl_ms <= limits::kMaxTtlMs);
  } else {
    check(po.code == ErrorCode::kInvalidArgument && !po.message.empty());
  }
  int64_t ms = 0;
  if (parse_duration_ms(parameters, &ms)) check(ms >= 0);
  (void)find_parameter(parameters, "id");
  return 0;
}
