#include "server/replies.hpp"

#include <cstdio>

namespace mailbox {

void append_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
}

namespace {
void append_message_fields(std::string& out, const DeliveredMessage& m) {
  out += "\"id\":\"";
  out += std::to_string(m.id);
  out += "\",\"enqueued_at\":";
  out += std::to_string(m.enqueued_at_ms);
  out += ",\"deliveries\":";
  out += std::to_string(m.deliveries);
  if (m.lease_expires_at_ms != 0) {
    out += ",\"lease_expires_at\":";
    out += std::to_string(m.lease_expires_at_ms);
  }
}
}  // namespace

std::string message_attachment(const DeliveredMessage& m) {
  std::string out = "{";
  append_message_fields(out, m);
  out += ",\"mailbox\":";
  append_json_string(out, m.mailbox);
  out += "}";
  return out;
}

void batch_reply(std::string_view mailbox, const std::vector<DeliveredMessage>& messages, std::string* payload,
                 std::string* attachment) {
  size_t total = 0;
  for (const auto& m : messages) total += m.body->payload().size();
  payload->clear();
  payload->reserve(total);
  std::string& a = *attachment;
  a = "{\"mailbox\":";
  append_json_string(a, mailbox);
  a += ",\"count\":";
  a += std::to_string(messages.size());
  a += ",\"messages\":[";
  bool first = true;
  for (const auto& m : messages) {
    payload->append(m.body->payload());
    if (!first) a += ",";
    first = false;
    a += "{";
    append_message_fields(a, m);
    a += ",\"encoding\":";
    append_json_string(a, m.body->encoding());
    a += ",\"size\":";
    a += std::to_string(m.body->payload().size());
    a += "}";
  }
  a += "]}";
}

std::string put_reply(uint64_t id) { return "{\"id\":\"" + std::to_string(id) + "\"}"; }

std::string extend_reply(uint64_t id, int64_t lease_expires_at_ms) {
  return "{\"id\":\"" + std::to_string(id) + "\",\"lease_expires_at\":" + std::to_string(lease_expires_at_ms) + "}";
}

std::string count_reply(std::string_view name, uint64_t count) {
  std::string out = "{";
  append_json_string(out, name);
  out += ":" + std::to_string(count) + "}";
  return out;
}

std::string stats_reply(std::string_view mailbox, const MailboxStats& stats) {
  std::string out = "{\"mailbox\":";
  append_json_string(out, mailbox);
  out += ",\"messages\":" + std::to_string(stats.messages);
  out += ",\"bytes\":" + std::to_string(stats.bytes);
  out += ",\"oldest_age_ms\":" + std::to_string(stats.oldest_age_ms);
  out += ",\"leased\":" + std::to_string(stats.leased);
  out += ",\"delayed\":" + std::to_string(stats.delayed);
  out += "}";
  return out;
}

std::string error_reply(const Status& status) {
  std::string out = "{\"code\":";
  append_json_string(out, error_code_name(status.code));
  out += ",\"message\":";
  append_json_string(out, status.message);
  out += "}";
  return out;
}

}  // namespace mailbox
