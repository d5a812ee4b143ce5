#include "server/request.hpp"

#include <charconv>
#include <limits>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/limits.hpp"

namespace mailbox {
namespace {

Status invalid(std::string message) { return Status::error(ErrorCode::kInvalidArgument, std::move(message)); }

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == '~' || c == '+' || c == '=' || c == '@' || c == '-';
}

bool parse_u64(std::string_view text, uint64_t* out) {
  if (text.empty()) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && ptr == text.data() + text.size();
}

// Splits `prefix/<rest>`; false when `key` is not under `prefix`.
bool strip_prefix(std::string_view prefix, std::string_view key, std::string_view* rest) {
  if (key.size() <= prefix.size() + 1 || key.substr(0, prefix.size()) != prefix || key[prefix.size()] != '/') {
    return false;
  }
  *rest = key.substr(prefix.size() + 1);
  return true;
}

Status check_mailbox(std::string_view name) {
  if (name.find('*') != std::string_view::npos || name.find('$') != std::string_view::npos) {
    return invalid("wildcards are not allowed in a mailbox name");
  }
  if (!is_valid_mailbox_name(name)) {
    return invalid("bad mailbox name: use 1-128 bytes of [A-Za-z0-9._~+=@-], not starting with '@' or '.'");
  }
  return Status::ok();
}

bool allowed(Operation op, std::string_view param) {
  switch (op) {
    case Operation::kConsume:
      return param == "n" || param == "wait" || param == "rid" || param == "lease";
    case Operation::kPeek:
      return param == "n" || param == "wait";
    case Operation::kPut:
      return param == "ttl" || param == "rid" || param == "delay";
    case Operation::kAck:
    case Operation::kNack:
      return param == "id" || param == "rid";
    case Operation::kExtend:
      return param == "id" || param == "rid" || param == "lease";
    case Operation::kPurge:
      return param == "rid";
    case Operation::kRedrive:
      return param == "n" || param == "rid";
    case Operation::kStats:
      return false;
    case Operation::kList:
      return param == "limit" || param == "after";
  }
  return false;
}

// Checks one parameter against the request's operation and stores it.
Status apply_parameter(std::string_view name, std::string_view value, const RequestLimits& request_limits,
                       std::vector<std::string_view>* seen_names, Request* out) {
  std::vector<std::string_view>& seen = *seen_names;
  if (name == "_anyke") return Status::ok();  // added by Zenoh itself for disjoint replies
  if (!allowed(out->op, name)) {
    return invalid("unknown parameter '" + std::string(name) + "' for " + std::string(operation_name(out->op)));
  }
  for (auto n : seen) {
    if (n == name) return invalid("parameter '" + std::string(name) + "' is repeated");
  }
  seen.push_back(name);
  if (name == "n") {
    const uint64_t max = out->op == Operation::kRedrive ? limits::kMaxRedriveMessages : limits::kMaxBatchMessages;
    uint64_t n = 0;
    if (!parse_u64(value, &n) || n < 1 || n > max) {
      return invalid("n must be a whole number from 1 to " + std::to_string(max));
    }
    out->max_count = static_cast<uint32_t>(n);
  } else if (name == "limit") {
    uint64_t n = 0;
    if (!parse_u64(value, &n) || n < 1 || n > limits::kMaxListLimit) {
      return invalid("limit must be a whole number from 1 to " + std::to_string(limits::kMaxListLimit));
    }
    out->limit = static_cast<uint32_t>(n);
  } else if (name == "after") {
    if (!is_valid_mailbox_name(value)) return invalid("after must be a mailbox name");
    out->after = std::string(value);
  } else if (name == "delay") {
    int64_t ms = 0;
    if (!parse_duration_ms(value, &ms)) {
      return invalid("delay must be a duration such as 500ms, 30s, 5m, 24h or a number of seconds");
    }
    if (ms > limits::kMaxDelayMs) return invalid("delay must be at most 366 days");
    if (ms > 0) out->delay_ms = ms;  // delay=0: no delay
  } else if (name == "wait" || name == "ttl" || name == "lease") {
    int64_t ms = 0;
    if (!parse_duration_ms(value, &ms)) {
      return invalid(std::string(name) + " must be a duration such as 500ms, 30s, 5m, 24h or a number of seconds");
    }
    if (name == "wait") {
      if (ms > request_limits.max_wait_ms) {
        return invalid("wait is longer than the server's maximum of " +
                       std::to_string(request_limits.max_wait_ms) + "ms");
      }
      out->wait_ms = ms;
    } else if (name == "ttl") {
      if (ms <= 0 || ms > limits::kMaxTtlMs) return invalid("ttl must be more than 0 and at most 366 days");
      out->ttl_ms = ms;
    } else {
      if (ms <= 0 || ms > request_limits.max_lease_ms) {
        return invalid("lease must be more than 0 and at most " + std::to_string(request_limits.max_lease_ms) +
                       "ms");
      }
      out->lease_ms = ms;
    }
  } else if (name == "rid") {
    if (value.empty() || value.size() > limits::kMaxRidBytes) return invalid("rid must be 1-128 bytes");
    out->rid = std::string(value);
  } else if (name == "id") {
    uint64_t id = 0;
    if (!parse_u64(value, &id) || id == 0) return invalid("id must be a message id (a positive whole number)");
    out->message_id = id;
  }
  return Status::ok();
}

}  // namespace

std::string find_parameter(std::string_view parameters, std::string_view name) {
  std::string found;
  for_each_parameter(parameters, [&](std::string_view n, std::string_view v) {
    if (n != name) return true;
    found = std::string(v);
    return false;
  });
  return found;
}

std::string_view operation_name(Operation op) {
  switch (op) {
    case Operation::kConsume: return "consume";
    case Operation::kPeek: return "peek";
    case Operation::kPut: return "put";
    case Operation::kAck: return "ack";
    case Operation::kNack: return "nack";
    case Operation::kStats: return "stats";
    case Operation::kExtend: return "extend";
    case Operation::kPurge: return "purge";
    case Operation::kRedrive: return "redrive";
    case Operation::kList: return "list";
  }
  return "consume";
}

bool is_valid_mailbox_name(std::string_view name) {
  // A dead-letter mailbox (`<name>.dlq`) of a valid name is valid even when
  // the suffix takes it past the length limit.
  constexpr std::string_view kSuffix(limits::kDeadLetterSuffix, limits::kDeadLetterSuffixBytes);
  if (name.size() > limits::kMaxMailboxNameBytes && name.size() > kSuffix.size() &&
      name.substr(name.size() - kSuffix.size()) == kSuffix) {
    name.remove_suffix(kSuffix.size());
  }
  if (name.empty() || name.size() > limits::kMaxMailboxNameBytes) return false;
  if (name.front() == '@' || name.front() == '.') return false;
  for (char c : name) {
    if (!is_name_char(c)) return false;
  }
  return true;
}

bool parse_duration_ms(std::string_view text, int64_t* out_ms) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0) return false;
  uint64_t value = 0;
  if (!parse_u64(text.substr(0, digits), &value)) return false;
  const std::string_view unit = text.substr(digits);
  uint64_t scale_ms = 0;
  if (unit.empty() || unit == "s") scale_ms = 1000;
  else if (unit == "ms") scale_ms = 1;
  else if (unit == "m") scale_ms = 60 * 1000;
  else if (unit == "h") scale_ms = 60 * 60 * 1000;
  else return false;
  constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  if (value > kMax / scale_ms) return false;
  *out_ms = static_cast<int64_t>(value * scale_ms);
  return true;
}

Status parse_publication_key(std::string_view prefix, std::string_view key, std::string* mailbox) {
  std::string_view rest;
  if (!strip_prefix(prefix, key, &rest)) return invalid("key is not under the mailbox prefix");
  if (rest.find('/') != std::string_view::npos) {
    return invalid("publish to <prefix>/<box>; operations are queries");
  }
  Status s = check_mailbox(rest);
  if (!s.is_ok()) return s;
  *mailbox = std::string(rest);
  return Status::ok();
}

bool is_valid_list_pattern(std::string_view pattern) {
  if (pattern == "*") return true;
  if (pattern.find("$*") == std::string_view::npos || pattern.size() > limits::kMaxMailboxNameBytes) return false;
  // Without its wildcards, what is left must be name characters, and a
  // name may not start with '@' or '.'.
  if (pattern.front() == '@' || pattern.front() == '.') return false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern.substr(i, 2) == "$*") {
      ++i;
      continue;
    }
    if (!is_name_char(pattern[i])) return false;
  }
  return pattern.find("$*$*") == std::string_view::npos;  // Zenoh's canonical form has no `$*$*`
}

Status parse_publication_options(std::optional<std::string_view> attachment, PublicationOptions* out) {
  *out = PublicationOptions{};
  if (!attachment || attachment->empty() || attachment->front() != '{') return Status::ok();
  auto parsed = nlohmann::json::parse(*attachment, nullptr, false);
  if (!parsed.is_object()) return Status::ok();
  for (const char* field : {"delay", "ttl"}) {
    auto it = parsed.find(field);
    if (it == parsed.end()) continue;
    int64_t ms = 0;
    if (!it->is_string() || !parse_duration_ms(it->get<std::string>(), &ms)) {
      return invalid(std::string(field) + " in the attachment must be a duration string such as \"30s\"");
    }
    if (std::string_view(field) == "delay") {
      if (ms > limits::kMaxDelayMs) return invalid("delay must be at most 366 days");
      if (ms > 0) out->delay_ms = ms;
    } else {
      if (ms <= 0 || ms > limits::kMaxTtlMs) return invalid("ttl must be more than 0 and at most 366 days");
      out->ttl_ms = ms;
    }
  }
  return Status::ok();
}

Status parse_query(std::string_view prefix, std::string_view key, std::string_view parameters,
                   const RequestLimits& request_limits, Request* out) {
  std::string_view rest;
  if (!strip_prefix(prefix, key, &rest)) return invalid("key is not under the mailbox prefix");
  const size_t slash = rest.find('/');
  const std::string_view box = rest.substr(0, slash);
  *out = Request{};
  // The list form of stats is the one place a wildcard is allowed.
  if (slash != std::string_view::npos && rest.substr(slash + 1) == "stats" &&
      (box == "*" || box.find("$*") != std::string_view::npos)) {
    if (!is_valid_list_pattern(box)) {
      return invalid("bad list pattern: use * or one chunk of mailbox name characters with $* (e.g. team-$*)");
    }
    out->op = Operation::kList;
    out->mailbox = std::string(box);
  } else {
    Status s = check_mailbox(box);
    if (!s.is_ok()) return s;
    out->mailbox = std::string(box);
  }
  if (out->op == Operation::kList) {
    // parameters below
  } else if (slash == std::string_view::npos) {
    out->op = Operation::kConsume;
  } else {
    const std::string_view op = rest.substr(slash + 1);
    if (op == "consume") out->op = Operation::kConsume;
    else if (op == "peek") out->op = Operation::kPeek;
    else if (op == "put") out->op = Operation::kPut;
    else if (op == "ack") out->op = Operation::kAck;
    else if (op == "nack") out->op = Operation::kNack;
    else if (op == "stats") out->op = Operation::kStats;
    else if (op == "extend") out->op = Operation::kExtend;
    else if (op == "purge") out->op = Operation::kPurge;
    else if (op == "redrive") out->op = Operation::kRedrive;
    else if (op.find('*') != std::string_view::npos) return invalid("wildcards are not allowed in the operation");
    else {
      return invalid("unknown operation '" + std::string(op) +
                     "': use consume, peek, put, ack, nack, extend, stats, purge or redrive");
    }
  }

  if (parameters.size() > limits::kMaxParametersBytes) return invalid("parameters are too long");
  std::vector<std::string_view> seen;
  Status error;
  for_each_parameter(parameters, [&](std::string_view name, std::string_view value) {
    error = apply_parameter(name, value, request_limits, &seen, out);
    return error.is_ok();
  });
  if (!error.is_ok()) return error;
  if ((out->op == Operation::kAck || out->op == Operation::kNack || out->op == Operation::kExtend) &&
      !out->message_id) {
    return invalid(std::string(operation_name(out->op)) + " needs id=<message id>");
  }
  if (out->op == Operation::kExtend && !out->lease_ms) return invalid("extend needs lease=<duration>");
  return Status::ok();
}

}  // namespace mailbox
