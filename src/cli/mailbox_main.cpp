// mailbox: the command-line client. put, get (consume), peek and stats
// against a mailboxd reachable at --connect (default tcp/127.0.0.1:7447).
//
// Exit codes: 0 ok, 1 the service answered with an error, 2 usage error,
// 3 the mailbox is empty, 4 no reply (no server reachable, or timeout).
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/client.hpp"
#include "server/request.hpp"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitServiceError = 1;
constexpr int kExitUsage = 2;
constexpr int kExitEmpty = 3;
constexpr int kExitNoReply = 4;

bool is_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return false;
    }
    i += n;
  }
  return true;
}

std::string base64(const std::string& in) {
  static constexpr char kTable[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += {kTable[v >> 18], kTable[(v >> 12) & 63], kTable[(v >> 6) & 63], kTable[v & 63]};
  }
  if (i + 1 == in.size()) {
    const uint32_t v = uint8_t(in[i]) << 16;
    out += {kTable[v >> 18], kTable[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += {kTable[v >> 18], kTable[(v >> 12) & 63], kTable[(v >> 6) & 63], '='};
  }
  return out;
}

void print_message_json(nlohmann::json meta, const std::string& payload, const std::string& encoding) {
  meta["encoding"] = encoding;
  if (is_utf8(payload)) meta["payload"] = payload;
  else meta["payload_base64"] = base64(payload);
  std::cout << meta.dump() << "\n";
}

// Prints an error reply and maps it to an exit code.
int report_error(const mailbox::ClientReply& reply) {
  auto parsed = nlohmann::json::parse(reply.payload, nullptr, false);
  std::string code = "internal";
  std::string message = reply.payload;
  if (parsed.is_object()) {
    code = parsed.value("code", code);
    message = parsed.value("message", message);
  }
  std::cerr << "mailbox: " << code << ": " << message << "\n";
  return code == "empty" ? kExitEmpty : kExitServiceError;
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  CLI::App app{"mailbox: command-line client of the mailbox service"};
  app.require_subcommand(1);
  std::vector<std::string> connect{"tcp/127.0.0.1:7447"};
  std::string prefix = "forge/mailbox";
  uint64_t timeout_ms = 10000;
  bool json = false;
  app.add_option("--connect", connect, "Zenoh endpoint(s) of a mailboxd")->capture_default_str();
  app.add_option("--prefix", prefix, "key prefix of the service")->capture_default_str();
  app.add_option("--timeout-ms", timeout_ms, "query timeout")->capture_default_str();
  app.add_flag("--json", json, "print metadata as JSON (one object per message)");

  std::string box;
  std::optional<std::string> payload_arg;
  std::string ttl;
  std::string encoding;
  bool fire_and_forget = false;
  auto* put = app.add_subcommand("put", "put a message (acknowledged unless --fire-and-forget); payload from the argument or stdin");
  put->add_option("mailbox", box, "mailbox name")->required();
  put->add_option("payload", payload_arg, "the message; read from stdin when absent");
  put->add_option("--ttl", ttl, "time to live, e.g. 30s, 5m, 24h");
  put->add_option("--encoding", encoding, "Zenoh encoding of the payload, e.g. text/plain");
  put->add_flag("--fire-and-forget", fire_and_forget, "publish without acknowledgement");

  uint32_t count = 0;
  auto* get = app.add_subcommand("get", "consume: remove and print the oldest message(s)");
  get->alias("consume");
  get->add_option("mailbox", box, "mailbox name")->required();
  get->add_option("-n,--count", count, "up to this many messages (batch reply)");
  auto* peek = app.add_subcommand("peek", "print the oldest message(s) without removing them");
  peek->add_option("mailbox", box, "mailbox name")->required();
  peek->add_option("-n,--count", count, "up to this many messages (batch reply)");
  auto* stats = app.add_subcommand("stats", "print a mailbox's statistics as JSON");
  stats->add_option("mailbox", box, "mailbox name")->required();
  CLI11_PARSE(app, argc, argv);

  if (!mailbox::is_valid_mailbox_name(box)) {
    std::cerr << "mailbox: bad mailbox name '" << box
              << "': use 1-128 bytes of [A-Za-z0-9._~+=@-], not starting with '@' or '.'\n";
    return kExitUsage;
  }
  std::string error;
  auto client = mailbox::Client::connect(connect, &error);
  if (!client) {
    std::cerr << "mailbox: cannot open a Zenoh session: " << error << "\n";
    return kExitNoReply;
  }
  mailbox::zenoh::GetOptions options;
  options.timeout_ms = timeout_ms;
  const std::string base = prefix + "/" + box;

  if (put->parsed()) {
    std::string payload;
    if (payload_arg) payload = *payload_arg;
    else payload.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    if (fire_and_forget) {
      std::optional<std::string> enc;
      if (!encoding.empty()) enc = encoding;
      return client->publish(base, payload, enc) ? kExitOk : kExitServiceError;
    }
    std::string selector = base + "/put";
    if (!ttl.empty()) selector += "?ttl=" + ttl;
    options.payload = payload;
    if (!encoding.empty()) options.encoding = encoding;
    auto replies = client->query(selector, options);
    if (replies.empty()) {
      std::cerr << "mailbox: no reply (no server reachable, or timeout)\n";
      return kExitNoReply;
    }
    if (!replies[0].ok) return report_error(replies[0]);
    if (json) std::cout << replies[0].payload << "\n";
    else std::cout << nlohmann::json::parse(replies[0].payload, nullptr, false).value("id", "") << "\n";
    return kExitOk;
  }

  std::string selector;
  if (get->parsed()) selector = base + "/consume";
  else if (peek->parsed()) selector = base + "/peek";
  else selector = base + "/stats";
  if (count > 0) selector += "?n=" + std::to_string(count);
  auto replies = client->query(selector, options);
  if (replies.empty()) {
    std::cerr << "mailbox: no reply (no server reachable, or timeout)\n";
    return kExitNoReply;
  }
  const auto& reply = replies[0];
  if (!reply.ok) return report_error(reply);
  if (stats->parsed()) {
    std::cout << reply.payload << "\n";
    return kExitOk;
  }
  auto meta = nlohmann::json::parse(reply.attachment.value_or("{}"), nullptr, false);
  if (count > 0) {
    // Batch shape: the payload is the messages' payloads concatenated; the
    // attachment lists each message with its size.
    size_t offset = 0;
    for (const auto& m : meta.value("messages", nlohmann::json::array())) {
      const size_t size = m.value("size", size_t{0});
      const std::string one = reply.payload.substr(offset, size);
      offset += size;
      if (json) {
        nlohmann::json item = m;
        item["mailbox"] = meta.value("mailbox", box);
        item.erase("size");
        print_message_json(item, one, m.value("encoding", ""));
      } else {
        std::cout << one << "\n";
      }
    }
    return kExitOk;
  }
  if (json) print_message_json(meta, reply.payload, reply.encoding);
  else std::cout.write(reply.payload.data(), static_cast<std::streamsize>(reply.payload.size()));
  std::cout.flush();
  return kExitOk;
}
