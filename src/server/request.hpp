// request.hpp: turning a Zenoh key expression and selector parameters into a
// validated mailbox request, and the pure helpers it needs (mailbox names,
// durations).
//
// What it is for: the server's first line of defence. Everything a client
// can get wrong (wildcards, malformed names, unknown operations or
// parameters, bad durations, missing payloads, oversized batches) is refused
// here with `invalid_argument` and a message for a person, before anything is
// queued. Pure functions; unit-tested in tests/unit/request_test.cpp.
//
// Threads: pure; safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/errors.hpp"
#include "core/limits.hpp"

namespace mailbox {

enum class Operation : uint8_t {
  kConsume,
  kPeek,
  kPut,
  kAck,
  kNack,
  kStats,
  kExtend,   // v2
  kPurge,    // v2
  kRedrive,  // v2
  kList,     // v2: `get P/<pattern>/stats`
};
// How many operations there are (keep in step with the enum's last value).
inline constexpr int kOperationCount = static_cast<int>(Operation::kList) + 1;

std::string_view operation_name(Operation op);

struct Request {
  Operation op = Operation::kConsume;
  std::string mailbox;  // for kList: the pattern (`*` or a chunk with `$*`)
  // n=: present when the client asked for a batch (reply in the batch shape).
  std::optional<uint32_t> max_count;
  std::optional<int64_t> wait_ms;
  std::optional<int64_t> ttl_ms;
  std::optional<int64_t> lease_ms;
  std::optional<std::string> rid;
  std::optional<uint64_t> message_id;  // ack/nack/extend id=
  std::optional<int64_t> delay_ms;     // put delay=
  std::optional<uint32_t> limit;       // list limit=
  std::optional<std::string> after;    // list after=
};

// What a fire-and-forget publication may carry in its attachment beside its
// token: `{"delay": "30s", "ttl": "1h"}` (durations as in parameters).
struct PublicationOptions {
  std::optional<int64_t> delay_ms;
  std::optional<int64_t> ttl_ms;
};

// Reads the options of a publication's attachment. No attachment, or one
// that is not a JSON object (open mode lets a publisher attach anything):
// no options. A JSON object whose `delay` or `ttl` is not a valid duration
// string: `invalid_argument` (the publication is dropped and counted).
Status parse_publication_options(std::optional<std::string_view> attachment, PublicationOptions* out);

struct RequestLimits {
  int64_t max_wait_ms = limits::kDefaultMaxWaitMs;
  int64_t max_lease_ms = limits::kMaxLeaseMs;
};

// True when `name` is a valid mailbox name (SPEC "Words").
bool is_valid_mailbox_name(std::string_view name);

// Parses `500ms`, `30s`, `5m`, `24h` or a bare number of seconds into
// milliseconds. False for anything else, negative values, or overflow.
bool parse_duration_ms(std::string_view text, int64_t* out_ms);

// Parses a query on `key` with `parameters` under `prefix` (no trailing
// slash). On error returns a Status with kInvalidArgument and leaves `out`
// unspecified.
Status parse_query(std::string_view prefix, std::string_view key, std::string_view parameters,
                   const RequestLimits& limits, Request* out);

// The value of `name` in selector parameters (`k=v;k=v`); empty when absent.
std::string find_parameter(std::string_view parameters, std::string_view name);

// Calls `visit(name, value)` for each non-empty `name[=value]` pair of
// selector parameters, in order, until it returns false.
template <typename Visit>
void for_each_parameter(std::string_view parameters, Visit visit) {
  size_t pos = 0;
  while (pos < parameters.size()) {
    size_t end = parameters.find(';', pos);
    if (end == std::string_view::npos) end = parameters.size();
    const std::string_view pair = parameters.substr(pos, end - pos);
    pos = end + 1;
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    const std::string_view name = pair.substr(0, eq);
    const std::string_view value = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    if (!visit(name, value)) return;
  }
}

// True when `pattern` is a valid list pattern: `*`, or a chunk of mailbox
// name characters and `$*` wildcards with at least one `$*`.
bool is_valid_list_pattern(std::string_view pattern);

// Parses the key of a fire-and-forget publication: `prefix/<box>` only.
Status parse_publication_key(std::string_view prefix, std::string_view key, std::string* mailbox);

}  // namespace mailbox
