// mailbox: the command-line client. put, get (consume), peek, ack, nack,
// extend, stats, ls, purge, redrive and watch against a mailboxd reachable at --connect (default
// tcp/127.0.0.1:7447, or tls/127.0.0.1:7447 with --tls-ca); `keys create`
// and `token create` make the Ed25519 keys and tokens of secure mode
// (docs/SECURITY.md). Every request carries --token / MAILBOX_TOKEN.
//
// Exit codes: 0 ok, 1 the service answered with an error, 2 usage error,
// 3 the mailbox is empty, 4 no reply (no server reachable, or timeout).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <functional>
#include <thread>
#include <algorithm>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "auth/signing.hpp"
#include "cli/bench.hpp"
#include "cli/client.hpp"
#include "server/request.hpp"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitServiceError = 1;
constexpr int kExitUsage = 2;
constexpr int kExitEmpty = 3;
constexpr int kExitNoReply = 4;
// `mailbox top`: mailboxes per list query, and the most rows it shows.
constexpr size_t kTopPageSize = 10000;
constexpr size_t kMaxTopRows = 1000;
// A query waiting server-side needs a longer client timeout than its wait.
constexpr uint64_t kWaitTimeoutMarginMs = 5000;
constexpr int kRetryDelayMs = 1000;
// Longest token lifetime `token create` makes (short-lived tokens are the
// way to revoke: docs/SECURITY.md).
constexpr int64_t kMaxTokenTtlS = 366LL * 24 * 60 * 60;
constexpr int64_t kSecondsPerDay = 24 * 60 * 60;

// `30d`, or any duration of parse_duration_ms, in whole seconds.
bool parse_ttl_s(const std::string& text, int64_t* out_s) {
  if (text.size() > 1 && text.back() == 'd') {
    int64_t days_ms = 0;  // read the number as seconds, then scale
    if (!mailbox::parse_duration_ms(text.substr(0, text.size() - 1), &days_ms)) return false;
    const int64_t days = days_ms / 1000;
    if (days > kMaxTokenTtlS / kSecondsPerDay) return false;
    *out_s = days * kSecondsPerDay;
    return *out_s > 0;
  }
  int64_t ms = 0;
  if (!mailbox::parse_duration_ms(text, &ms)) return false;
  *out_s = ms / 1000;
  return *out_s > 0;
}

bool read_file(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream text;
  text << in.rdbuf();
  *out = text.str();
  return true;
}

// Writes a new file (never over an existing one) with `mode`.
bool write_new_file(const std::string& path, const std::string& text, mode_t mode) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    std::cerr << "mailbox: " << path << " exists; not overwriting it\n";
    return false;
  }
  std::ofstream out(path, std::ios::binary);
  out << text;
  out.close();
  if (!out || chmod(path.c_str(), mode) != 0) {
    std::cerr << "mailbox: cannot write " << path << "\n";
    return false;
  }
  return true;
}

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

// One message as the CLI sees it, whichever reply shape carried it.
struct Message {
  nlohmann::json meta;  // id, mailbox, enqueued_at, deliveries, [lease_expires_at], encoding
  std::string payload;
};

// Splits an OK reply into messages: the single shape, or the batch shape.
std::vector<Message> messages_of(const mailbox::ClientReply& reply, bool batch_shape) {
  std::vector<Message> out;
  auto meta = nlohmann::json::parse(reply.attachment.value_or("{}"), nullptr, false);
  if (!meta.is_object()) meta = nlohmann::json::object();
  if (!batch_shape) {
    meta["encoding"] = reply.encoding;
    out.push_back(Message{meta, reply.payload});
    return out;
  }
  size_t offset = 0;
  for (auto m : meta.value("messages", nlohmann::json::array())) {
    const size_t size = m.value("size", size_t{0});
    m["mailbox"] = meta.value("mailbox", "");
    m.erase("size");
    out.push_back(Message{m, reply.payload.substr(offset, size)});
    offset += size;
  }
  return out;
}

void print_message(const Message& m, bool json, bool newline) {
  if (json) {
    nlohmann::json line = m.meta;
    if (is_utf8(m.payload)) line["payload"] = m.payload;
    else line["payload_base64"] = base64(m.payload);
    std::cout << line.dump() << "\n";
  } else {
    std::cout.write(m.payload.data(), static_cast<std::streamsize>(m.payload.size()));
    if (newline) std::cout << "\n";
  }
  std::cout.flush();
}

struct ErrorReply {
  std::string code = "internal";
  std::string message;
};

ErrorReply error_of(const mailbox::ClientReply& reply) {
  ErrorReply e;
  e.message = reply.payload;
  auto parsed = nlohmann::json::parse(reply.payload, nullptr, false);
  if (parsed.is_object()) {
    e.code = parsed.value("code", e.code);
    e.message = parsed.value("message", e.message);
  }
  return e;
}

// Prints an error reply and maps it to an exit code.
int report_error(const mailbox::ClientReply& reply) {
  const ErrorReply e = error_of(reply);
  std::cerr << "mailbox: " << e.code << ": " << e.message << "\n";
  return e.code == "empty" ? kExitEmpty : kExitServiceError;
}

std::string with_params(std::string selector, const std::vector<std::pair<std::string, std::string>>& params) {
  char sep = '?';
  for (const auto& [k, v] : params) {
    if (v.empty()) continue;
    selector += sep + k + "=" + v;
    sep = ';';
  }
  return selector;
}

bool valid_duration(const std::string& text) {
  int64_t ms = 0;
  return text.empty() || mailbox::parse_duration_ms(text, &ms);
}

// `watch --exec`: runs `command` under /bin/sh with the message's payload on
// its stdin and its metadata in MAILBOX_ID, MAILBOX_MAILBOX and
// MAILBOX_DELIVERIES; calls `tick` about every `tick_ms` while it runs.
// Returns its exit status (-1 when it could not run or was killed).
int run_handler(const std::string& command, const Message& m, int64_t tick_ms, const std::function<void()>& tick) {
  // Everything the child needs is built before fork: after it, only
  // async-signal-safe calls (this process has other threads).
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  env_strings.push_back("MAILBOX_ID=" + m.meta.value("id", ""));
  env_strings.push_back("MAILBOX_MAILBOX=" + m.meta.value("mailbox", ""));
  env_strings.push_back("MAILBOX_DELIVERIES=" + std::to_string(m.meta.value("deliveries", 0)));
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string sh = "/bin/sh", dash_c = "-c", script = command;
  char* argv[] = {sh.data(), dash_c.data(), script.data(), nullptr};
  int in[2];
  if (pipe(in) != 0) return -1;
  const pid_t pid = fork();
  if (pid < 0) {
    close(in[0]);
    close(in[1]);
    return -1;
  }
  if (pid == 0) {
    dup2(in[0], STDIN_FILENO);
    close(in[0]);
    close(in[1]);
    execve(argv[0], argv, envp.data());
    _exit(127);
  }
  close(in[0]);
  // The payload is written from its own thread: a handler that does not
  // read its stdin must not block the lease extension.
  std::thread writer([fd = in[1], payload = m.payload] {
    size_t done = 0;
    while (done < payload.size()) {
      const ssize_t n = write(fd, payload.data() + done, payload.size() - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    close(fd);
  });
  int status = 0;
  auto last_tick = std::chrono::steady_clock::now();
  constexpr auto kPoll = std::chrono::milliseconds(20);
  for (;;) {
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0) {
      status = -1;
      break;
    }
    std::this_thread::sleep_for(kPoll);
    if (tick && std::chrono::steady_clock::now() - last_tick >= std::chrono::milliseconds(tick_ms)) {
      tick();
      last_tick = std::chrono::steady_clock::now();
    }
  }
  writer.join();
  return status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool stdin_is_terminal() { return isatty(STDIN_FILENO) == 1; }

// Every mailbox matching `pattern` that holds messages (SPEC v2 list, paged
// by `page_size`), in name order, at most `limit` (0: all). On a failure:
// false, with the exit code in *exit_code (an error reply is reported).
bool list_mailboxes(mailbox::Client& client, const std::string& prefix, const std::string& pattern, size_t page_size,
                    size_t limit, uint64_t timeout_ms, std::vector<nlohmann::json>* rows, int* exit_code) {
  // A name without wildcards lists that one mailbox: the pattern `name$*`
  // would list more, so ask for its stats instead.
  const bool exact = pattern != "*" && pattern.find("$*") == std::string::npos;
  mailbox::zenoh::GetOptions options;
  options.timeout_ms = timeout_ms;
  std::string after;
  for (;;) {
    std::string selector = prefix + "/" + pattern + "/stats";
    if (!exact) {
      selector = with_params(selector, {{"limit", std::to_string(page_size)}, {"after", after}});
    }
    auto replies = client.query(selector, options);
    if (replies.empty()) {
      std::cerr << "mailbox: no reply (no server reachable, or timeout)\n";
      *exit_code = kExitNoReply;
      return false;
    }
    std::vector<nlohmann::json> page;
    for (const auto& r : replies) {
      if (!r.ok) {
        if (error_of(r).code == "empty") break;
        *exit_code = report_error(r);
        return false;
      }
      auto j = nlohmann::json::parse(r.payload, nullptr, false);
      if (j.is_object() && j.value("messages", uint64_t{0}) > 0) page.push_back(std::move(j));
    }
    // Zenoh's consolidation may reorder replies: the page is sorted here.
    std::sort(page.begin(), page.end(),
              [](const auto& a, const auto& b) { return a.value("mailbox", "") < b.value("mailbox", ""); });
    for (auto& j : page) rows->push_back(j);
    if (exact || page.size() < page_size || (limit > 0 && rows->size() >= limit)) break;
    after = page.back().value("mailbox", "");
  }
  return true;
}

// Every reachable node's status (admin key `*/status`), by id.
std::vector<nlohmann::json> node_statuses(mailbox::Client& client, const std::string& prefix, uint64_t timeout_ms) {
  mailbox::zenoh::GetOptions all;
  all.timeout_ms = timeout_ms;
  all.target = mailbox::zenoh::QueryTarget::kAll;
  all.consolidation = mailbox::zenoh::Consolidation::kNone;
  std::vector<nlohmann::json> nodes;
  for (const auto& r : client.query(prefix + "/@cluster/node/*/status", all)) {
    auto j = nlohmann::json::parse(r.payload, nullptr, false);
    if (r.ok && j.is_object()) nodes.push_back(j);
  }
  std::sort(nodes.begin(), nodes.end(), [](const auto& a, const auto& b) { return a["id"] < b["id"]; });
  return nodes;
}

// `mailbox top`: a live view of the cluster and the busiest mailboxes, like
// `nats top`. One frame every `interval_ms`, `frames` times (0: until
// interrupted); on a terminal each frame clears the screen. A mailbox's rate
// is the change of its depth per second since the previous frame.
int run_top(mailbox::Client& client, const std::string& prefix, size_t rows_shown, uint64_t interval_ms,
            uint64_t frames, uint64_t timeout_ms) {
  std::map<std::string, uint64_t> previous_depth;
  auto previous_at = std::chrono::steady_clock::now();
  const bool terminal = isatty(STDOUT_FILENO) != 0;
  for (uint64_t frame = 0; frames == 0 || frame < frames; ++frame) {
    if (frame > 0) std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
    const auto nodes = node_statuses(client, prefix, timeout_ms);
    std::vector<nlohmann::json> boxes;
    int exit_code = kExitOk;
    if (!list_mailboxes(client, prefix, "*", kTopPageSize, 0, timeout_ms, &boxes, &exit_code)) return exit_code;
    const auto now = std::chrono::steady_clock::now();
    const double seconds = std::max(1e-3, std::chrono::duration<double>(now - previous_at).count());
    std::stable_sort(boxes.begin(), boxes.end(), [](const auto& a, const auto& b) {
      return a.value("messages", uint64_t{0}) > b.value("messages", uint64_t{0});
    });
    uint64_t total_messages = 0, total_bytes = 0;
    for (const auto& b : boxes) {
      total_messages += b.value("messages", uint64_t{0});
      total_bytes += b.value("bytes", uint64_t{0});
    }
    if (terminal) std::printf("\033[H\033[2J");
    std::time_t wall = std::time(nullptr);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%H:%M:%S", std::localtime(&wall));
    std::printf("mailbox top  %s  %zu mailboxes, %llu messages, %llu bytes\n\n", stamp, boxes.size(),
                static_cast<unsigned long long>(total_messages), static_cast<unsigned long long>(total_bytes));
    std::printf("%-5s %-10s %-6s %-10s %-10s %s\n", "node", "state", "term", "commit", "applied", "disk");
    for (const auto& n : nodes) {
      std::printf("%-5llu %-10s %-6llu %-10llu %-10llu %s\n",
                  static_cast<unsigned long long>(n.value("id", uint64_t{0})), n.value("state", "?").c_str(),
                  static_cast<unsigned long long>(n.value("term", uint64_t{0})),
                  static_cast<unsigned long long>(n.value("commit_index", uint64_t{0})),
                  static_cast<unsigned long long>(n.value("applied_index", uint64_t{0})),
                  n.value("log_disk_full", false) ? "FULL" : "ok");
    }
    if (nodes.empty()) std::printf("(no node answered its status)\n");
    std::printf("\n%-40s %10s %10s %8s %8s %12s %14s\n", "mailbox", "messages", "rate/s", "leased", "delayed", "bytes",
                "oldest_age_ms");
    std::map<std::string, uint64_t> depth;
    for (size_t i = 0; i < boxes.size(); ++i) {
      const auto& b = boxes[i];
      const std::string name = b.value("mailbox", "");
      const uint64_t messages = b.value("messages", uint64_t{0});
      depth[name] = messages;
      if (i >= rows_shown) continue;
      std::string rate = "-";
      if (frame > 0) {
        auto it = previous_depth.find(name);
        const double before = it == previous_depth.end() ? 0.0 : static_cast<double>(it->second);
        char buffer[32];
        std::snprintf(buffer, sizeof buffer, "%+.1f", (static_cast<double>(messages) - before) / seconds);
        rate = buffer;
      }
      std::printf("%-40s %10llu %10s %8llu %8llu %12llu %14lld\n", name.c_str(),
                  static_cast<unsigned long long>(messages), rate.c_str(),
                  static_cast<unsigned long long>(b.value("leased", uint64_t{0})),
                  static_cast<unsigned long long>(b.value("delayed", uint64_t{0})),
                  static_cast<unsigned long long>(b.value("bytes", uint64_t{0})),
                  static_cast<long long>(b.value("oldest_age_ms", int64_t{0})));
    }
    std::fflush(stdout);
    previous_depth = std::move(depth);
    previous_at = now;
  }
  return kExitOk;
}

uint64_t timeout_for_wait(uint64_t timeout_ms, const std::string& wait) {
  int64_t wait_ms = 0;
  if (!wait.empty() && mailbox::parse_duration_ms(wait, &wait_ms)) {
    return std::max<uint64_t>(timeout_ms, static_cast<uint64_t>(wait_ms) + kWaitTimeoutMarginMs);
  }
  return timeout_ms;
}

}  // namespace

int main(int argc, char** argv) {
  mailbox::zenoh::use_mailbox_runtime_unless_configured();  // before any thread starts
  signal(SIGPIPE, SIG_IGN);
  CLI::App app{"mailbox: command-line client of the mailbox service"};
  app.require_subcommand(1);
  // Global options (--json, --connect, ...) may come after the subcommand too.
  app.fallthrough();
  std::vector<std::string> connect{"tcp/127.0.0.1:7447"};
  std::string prefix = "forge/mailbox";
  uint64_t timeout_ms = 10000;
  bool json = false;
  app.add_option("--connect", connect, "Zenoh endpoint(s) of a mailboxd")
      ->capture_default_str()
      ->envname("MAILBOX_CONNECT");
  app.add_option("--prefix", prefix, "key prefix of the service")->capture_default_str();
  app.add_option("--timeout-ms", timeout_ms, "query timeout (raised to cover --wait)")->capture_default_str();
  app.add_flag("--json", json, "print messages as JSON lines with their metadata");
  mailbox::ClientAccess access;
  app.add_option("--token", access.token, "the token every request carries (secure mode)")->envname("MAILBOX_TOKEN");
  app.add_option("--tls-ca", access.security.ca_file, "CA certificate of a secure service: connect over TLS")
      ->envname("MAILBOX_TLS_CA");
  app.add_option("--tls-cert", access.security.certificate_file, "client certificate (certificate authentication)")
      ->envname("MAILBOX_TLS_CERT");
  app.add_option("--tls-key", access.security.private_key_file, "client certificate's private key")
      ->envname("MAILBOX_TLS_KEY");
  app.add_option("--user", access.security.user, "user name (password authentication)")->envname("MAILBOX_USER");
  app.add_option("--password", access.security.password, "password (password authentication)")
      ->envname("MAILBOX_PASSWORD");

  std::string box;
  std::optional<std::string> payload_arg;
  std::string ttl, encoding, rid, wait, lease;
  uint32_t count = 0;
  uint64_t message_id = 0;
  bool fire_and_forget = false;
  bool auto_ack = false;
  uint64_t watch_limit = 0;

  auto* put = app.add_subcommand("put", "put a message (acknowledged unless --fire-and-forget); payload from the argument or stdin");
  put->add_option("mailbox", box, "mailbox name")->required();
  put->add_option("payload", payload_arg, "the message; read from stdin when absent");
  put->add_option("--ttl", ttl, "time to live, e.g. 30s, 5m, 24h");
  put->add_option("--encoding", encoding, "Zenoh encoding of the payload, e.g. text/plain");
  put->add_option("--rid", rid, "idempotency key: a repeat returns the first id");
  put->add_flag("--fire-and-forget", fire_and_forget,
                "publish without acknowledgement (--ttl and --delay travel in the attachment)");
  std::string delay;
  put->add_option("--delay", delay, "delayed delivery: visible only after this long (at most 366 days)");

  auto* get = app.add_subcommand("get", "consume: take the oldest message(s) and print them");
  get->alias("consume");
  get->add_option("mailbox", box, "mailbox name")->required();
  get->add_option("-n,--count", count, "up to this many messages (batch reply), one per line");
  get->add_option("--wait", wait, "long-poll: wait this long for a message");
  get->add_option("--lease", lease, "at-least-once: hide the message until acked, at most this long");
  get->add_option("--rid", rid, "idempotency key: a repeat returns the same messages");

  auto* peek = app.add_subcommand("peek", "print the oldest message(s) without removing them");
  peek->add_option("mailbox", box, "mailbox name")->required();
  peek->add_option("-n,--count", count, "up to this many messages (batch reply)");
  peek->add_option("--wait", wait, "long-poll: wait this long for a message");

  auto* ack = app.add_subcommand("ack", "settle a leased message (remove it)");
  ack->add_option("mailbox", box, "mailbox name")->required();
  ack->add_option("id", message_id, "message id")->required();
  ack->add_option("--rid", rid, "idempotency key");
  auto* nack = app.add_subcommand("nack", "give a leased message back at once");
  nack->add_option("mailbox", box, "mailbox name")->required();
  nack->add_option("id", message_id, "message id")->required();
  nack->add_option("--rid", rid, "idempotency key");

  auto* extend = app.add_subcommand("extend", "keep a leased message hidden longer: its lease ends LEASE from now");
  extend->add_option("mailbox", box, "mailbox name")->required();
  extend->add_option("id", message_id, "message id")->required();
  extend->add_option("lease", lease, "the new lease, from now, e.g. 30s")->required();
  extend->add_option("--rid", rid, "idempotency key");

  auto* stats = app.add_subcommand("stats", "print a mailbox's statistics as JSON");
  stats->add_option("mailbox", box, "mailbox name")->required();

  std::string list_pattern = "*";
  std::string list_sort = "name";
  uint64_t list_limit = 0;
  uint32_t list_page = 1000;
  auto* ls = app.add_subcommand("ls", "list mailboxes that hold messages, with their statistics (pages through all)");
  ls->add_option("pattern", list_pattern, "* or a name with $* wildcards, e.g. 'team-$*'")->capture_default_str();
  ls->add_option("--sort", list_sort, "name, depth (most messages first) or age (oldest message first)")
      ->check(CLI::IsMember({"name", "depth", "age"}))
      ->capture_default_str();
  ls->add_option("--limit", list_limit, "show at most this many mailboxes (0: all)");
  ls->add_option("--page-size", list_page, "mailboxes per query (1..10000)")->capture_default_str();

  size_t top_rows = 20;
  uint64_t top_interval_ms = 2000;
  uint64_t top_frames = 0;
  auto* top = app.add_subcommand("top", "a live view of the cluster and the busiest mailboxes (Ctrl-C stops)");
  top->add_option("--rows", top_rows, "mailboxes shown, deepest first")
      ->check(CLI::Range(size_t{1}, kMaxTopRows))
      ->capture_default_str();
  top->add_option("--interval-ms", top_interval_ms, "time between frames")
      ->check(CLI::Range(uint64_t{100}, uint64_t{3'600'000}))
      ->capture_default_str();
  top->add_option("--frames", top_frames, "stop after this many frames (0: never)")->capture_default_str();

  bool assume_yes = false;
  auto* purge = app.add_subcommand("purge", "remove every message of a mailbox (asks first on a terminal)");
  purge->add_option("mailbox", box, "mailbox name")->required();
  purge->add_flag("-y,--yes", assume_yes, "do not ask for confirmation");
  purge->add_option("--rid", rid, "idempotency key");

  auto* redrive = app.add_subcommand("redrive", "move dead letters from <mailbox>.dlq back to <mailbox>");
  redrive->add_option("mailbox", box, "mailbox name (not the .dlq one)")->required();
  redrive->add_option("-n,--count", count, "move at most this many (1..100000; default: all that fit)");
  redrive->add_option("--rid", rid, "idempotency key");

  auto* cluster = app.add_subcommand("cluster", "cluster status and membership");
  cluster->require_subcommand(1);
  uint64_t member_id = 0;
  std::string member_address;
  auto* cluster_status = cluster->add_subcommand("status", "every reachable node's role, term, indexes and lag");
  auto* cluster_add = cluster->add_subcommand("add", "add a node (started with --join) as a voter");
  cluster_add->add_option("id", member_id, "its node id")->required();
  cluster_add->add_option("address", member_address, "its Raft address host:port")->required();
  auto* cluster_remove = cluster->add_subcommand("remove", "remove a node from the cluster");
  cluster_remove->add_option("id", member_id, "its node id")->required();
  auto* cluster_transfer = cluster->add_subcommand("transfer", "move leadership (to id, or to any voter)");
  cluster_transfer->add_option("id", member_id, "the new leader's id (default: any voter)");

  mailbox::BenchOptions bench_options;
  std::string bench_duration = "10s";
  std::string bench_warmup = "2s";
  bool bench_fire_and_forget = false;
  auto* bench = app.add_subcommand("bench", "load generator: producers and consumers, throughput and latency");
  bench->add_option("--producers", bench_options.producers, "producer clients")->capture_default_str();
  bench->add_option("--consumers", bench_options.consumers, "consumer clients")->capture_default_str();
  bench->add_option("--size", bench_options.message_bytes, "message bytes")->capture_default_str();
  bench->add_flag("--fire-and-forget", bench_fire_and_forget, "publish instead of acknowledged puts");
  bench->add_option("--batch", bench_options.batch, "consume n= messages per query")->capture_default_str();
  bench->add_flag("--rid", bench_options.rid, "every put and consume carries a rid");
  bench->add_option("--sessions", bench_options.sessions,
                    "Zenoh sessions the clients share (0: one per client)")
      ->capture_default_str();
  std::string bench_driver = "threads";
  bench->add_option("--driver", bench_driver,
                    "threads: a thread per client; callbacks: no thread per client, each completion callback "
                    "queues its client and one sender thread sends the next request (closed loop, acknowledged "
                    "puts)")
      ->check(CLI::IsMember({"threads", "callbacks"}))
      ->capture_default_str();
  bench->add_option("--rate", bench_options.rate_per_second, "total put rate per second (0: closed loop)")
      ->capture_default_str();
  bench->add_option("--duration", bench_duration, "measured time")->capture_default_str();
  bench->add_option("--warmup", bench_warmup, "unmeasured time first")->capture_default_str();
  bench->add_option("--mailbox", bench_options.mailbox, "mailbox (prefix of names with --mailboxes)")
      ->capture_default_str();
  bench->add_option("--mailboxes", bench_options.mailboxes, "spread clients over this many mailboxes")
      ->capture_default_str();

  auto* keys = app.add_subcommand("keys", "Ed25519 key pairs that sign tokens");
  keys->require_subcommand(1);
  std::string key_id = "k1";
  std::string key_dir = ".";
  auto* keys_create = keys->add_subcommand("create", "write <dir>/<kid>.key (private) and <dir>/<kid>.pub");
  keys_create->add_option("--kid", key_id, "key id (the tokens' kid)")->capture_default_str();
  keys_create->add_option("--out", key_dir, "directory to write to")->capture_default_str();

  auto* token = app.add_subcommand("token", "tokens that grant operations on mailboxes");
  token->require_subcommand(1);
  std::string token_sub, token_mailboxes, token_ops, token_ttl = "1h", token_key, token_kid, token_cluster;
  auto* token_create = token->add_subcommand("create", "sign a token and print it");
  token_create->add_option("--sub", token_sub, "who the token is for")->required();
  token_create->add_option("--mailboxes", token_mailboxes, "mailbox patterns: names, or prefixes ending in *")
      ->required();
  token_create->add_option("--ops", token_ops,
                           "rights: put,consume,peek,stats,ack,purge,redrive,list,admin (comma-separated)")
      ->required();
  token_create->add_option("--ttl", token_ttl, "lifetime: 30d, 12h, 15m, ... (at most 366d)")->capture_default_str();
  token_create->add_option("--key", token_key, "the private key file (from `mailbox keys create`)")->required();
  token_create->add_option("--kid", token_kid, "key id (default: the key file's name without .key)");
  int64_t token_expires_at = 0;
  token_create->add_option("--expires-at", token_expires_at,
                           "expiry as Unix seconds instead of --ttl (scripted rotation, tests of expired tokens)");
  token_create->add_option("--cluster", token_cluster, "the cluster's name (secure.toml cluster-name)")
      ->envname("MAILBOX_CLUSTER")
      ->required();

  auto* watch = app.add_subcommand("watch", "consume messages as they arrive (long-poll loop); Ctrl-C stops");
  watch->add_option("mailbox", box, "mailbox name")->required();
  watch->add_option("--lease", lease, "lease each message for this long");
  watch->add_flag("--auto-ack", auto_ack, "ack each leased message after printing it");
  watch->add_option("--wait", wait, "long-poll wait per query")->default_str("30s");
  watch->add_option("--limit", watch_limit, "stop after this many messages (0: never)");
  std::string watch_exec;
  watch->add_option("--exec", watch_exec,
                    "run this shell command per message (payload on stdin, MAILBOX_ID in the environment); with "
                    "--lease the lease is extended while it runs, then acked if it exits 0, nacked otherwise");
  CLI11_PARSE(app, argc, argv);

  if (keys_create->parsed()) {
    mailbox::auth::KeyPairPem pair;
    mailbox::Status s = mailbox::auth::generate_ed25519_key_pair(&pair);
    if (!s.is_ok()) {
      std::cerr << "mailbox: " << s.message << "\n";
      return kExitServiceError;
    }
    const std::string base = (std::filesystem::path(key_dir) / key_id).string();
    if (!write_new_file(base + ".key", pair.private_pem, 0600) || !write_new_file(base + ".pub", pair.public_pem, 0644)) {
      return kExitServiceError;
    }
    std::cout << base << ".key (keep it secret: it signs tokens)\n" << base
              << ".pub (copy it into every node's token-keys/ and send SIGHUP)\n";
    return kExitOk;
  }
  if (token_create->parsed()) {
    mailbox::auth::TokenRequest request;
    request.subject = token_sub;
    request.audience = token_cluster;
    request.key_id = token_kid;
    if (request.key_id.empty()) {
      std::string stem = std::filesystem::path(token_key).filename().string();
      if (stem.size() > 4 && stem.ends_with(".key")) stem.resize(stem.size() - 4);
      request.key_id = stem;
    }
    std::string bad;
    if (!mailbox::auth::parse_rights(token_ops, &request.rights, &bad)) {
      std::cerr << "mailbox: unknown operation '" << bad
                << "': use put, consume, peek, stats, ack, purge, redrive, list, admin\n";
      return kExitUsage;
    }
    for (size_t pos = 0; pos <= token_mailboxes.size();) {
      size_t end = token_mailboxes.find(',', pos);
      if (end == std::string::npos) end = token_mailboxes.size();
      request.mailbox_patterns.push_back(token_mailboxes.substr(pos, end - pos));
      pos = end + 1;
    }
    int64_t ttl_s = 0;
    if (!parse_ttl_s(token_ttl, &ttl_s) || ttl_s > kMaxTokenTtlS) {
      std::cerr << "mailbox: bad --ttl " << token_ttl << ": use 30d, 12h, 15m, ... up to 366d\n";
      return kExitUsage;
    }
    request.issued_at_s =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    request.expires_at_s = request.issued_at_s + ttl_s;
    if (token_expires_at > 0) {
      request.expires_at_s = token_expires_at;
      request.issued_at_s = std::min(request.issued_at_s, token_expires_at - 1);
    }
    std::string pem;
    if (!read_file(token_key, &pem)) {
      std::cerr << "mailbox: cannot read " << token_key << "\n";
      return kExitUsage;
    }
    std::string jwt;
    mailbox::Status s = mailbox::auth::create_token(pem, request, &jwt);
    if (!s.is_ok()) {
      std::cerr << "mailbox: " << s.message << "\n";
      return kExitUsage;
    }
    std::cout << jwt << "\n";
    return kExitOk;
  }
  if (access.security.enabled() && connect == std::vector<std::string>{"tcp/127.0.0.1:7447"}) {
    connect = {"tls/127.0.0.1:7447"};
  }
  if (access.security.certificate_file.empty() != access.security.private_key_file.empty()) {
    std::cerr << "mailbox: --tls-cert and --tls-key go together\n";
    return kExitUsage;
  }

  if (bench->parsed()) {
    int64_t duration_ms = 0;
    int64_t warmup_ms = 0;
    if (!mailbox::parse_duration_ms(bench_duration, &duration_ms) || duration_ms <= 0 ||
        !mailbox::parse_duration_ms(bench_warmup, &warmup_ms)) {
      std::cerr << "mailbox: bad --duration or --warmup\n";
      return kExitUsage;
    }
    bench_options.connect = connect;
    bench_options.security = access.security;
    bench_options.token = access.token;
    bench_options.prefix = prefix;
    bench_options.acknowledged = !bench_fire_and_forget;
    bench_options.callback_driver = bench_driver == "callbacks";
    if (bench_options.callback_driver && (bench_fire_and_forget || bench_options.rate_per_second > 0)) {
      std::fprintf(stderr, "mailbox: --driver callbacks needs a closed loop of acknowledged puts\n");
      return 2;
    }
    bench_options.duration_s = static_cast<double>(duration_ms) / 1000.0;
    bench_options.warmup_s = static_cast<double>(warmup_ms) / 1000.0;
    return mailbox::run_bench(bench_options, json);
  }

  if (cluster->parsed()) {
    std::string error;
    auto client = mailbox::Client::connect(connect, access, &error);
    if (!client) {
      std::cerr << "mailbox: cannot open a Zenoh session: " << error << "\n";
      return kExitNoReply;
    }
    const std::vector<nlohmann::json> nodes = node_statuses(*client, prefix, timeout_ms);
    if (nodes.empty()) {
      std::cerr << "mailbox: no node answered (no server reachable, or timeout)\n";
      return kExitNoReply;
    }
    uint64_t leader = 0;
    uint64_t leader_commit = 0;
    for (const auto& n : nodes) {
      if (n.value("state", "") == "leader") {
        leader = n.value("id", uint64_t{0});
        leader_commit = n.value("commit_index", uint64_t{0});
      }
    }
    if (cluster_status->parsed()) {
      if (json) {
        std::cout << nlohmann::json(nodes).dump() << "\n";
        return kExitOk;
      }
      std::printf("%-5s %-10s %-7s %-6s %-10s %-10s %-8s %s\n", "node", "state", "leader", "term", "commit",
                  "applied", "lag", "messages");
      for (const auto& n : nodes) {
        const uint64_t applied = n.value("applied_index", uint64_t{0});
        // Statuses are read one by one: a follower may be a little ahead.
        const long long lag =
            leader ? std::max(0LL, static_cast<long long>(leader_commit) - static_cast<long long>(applied)) : -1;
        std::printf("%-5llu %-10s %-7llu %-6llu %-10llu %-10llu %-8s %llu\n",
                    static_cast<unsigned long long>(n.value("id", uint64_t{0})), n.value("state", "?").c_str(),
                    static_cast<unsigned long long>(n.value("leader", uint64_t{0})),
                    static_cast<unsigned long long>(n.value("term", uint64_t{0})),
                    static_cast<unsigned long long>(n.value("commit_index", uint64_t{0})),
                    static_cast<unsigned long long>(applied), lag < 0 ? "?" : std::to_string(lag).c_str(),
                    static_cast<unsigned long long>(n.value("messages", uint64_t{0})));
      }
      std::cout << "configuration:";
      const nlohmann::json* view = &nodes.front();
      for (const auto& n : nodes) {
        if (n.value("id", uint64_t{0}) == leader) view = &n;
      }
      for (const auto& server : view->value("configuration", nlohmann::json::array())) {
        std::cout << " " << server.value("id", 0) << "=" << server.value("address", "") << "("
                  << server.value("role", "") << ")";
      }
      std::cout << "\n";
      return leader ? kExitOk : kExitServiceError;
    }
    if (leader == 0) {
      std::cerr << "mailbox: no leader among the nodes that answered\n";
      return kExitServiceError;
    }
    std::string op;
    if (cluster_add->parsed()) op = "add?id=" + std::to_string(member_id) + ";address=" + member_address;
    else if (cluster_remove->parsed()) op = "remove?id=" + std::to_string(member_id);
    else op = member_id ? "transfer?id=" + std::to_string(member_id) : "transfer";
    mailbox::zenoh::GetOptions one;
    one.timeout_ms = std::max<uint64_t>(timeout_ms, 60000);  // promotion waits for catch-up
    auto result = client->query(prefix + "/@cluster/node/" + std::to_string(leader) + "/" + op, one);
    if (result.empty()) {
      std::cerr << "mailbox: no reply from the leader\n";
      return kExitNoReply;
    }
    return result[0].ok ? kExitOk : report_error(result[0]);
  }

  if (top->parsed()) {
    std::string error;
    auto client = mailbox::Client::connect(connect, access, &error);
    if (!client) {
      std::cerr << "mailbox: cannot open a Zenoh session: " << error << "\n";
      return kExitNoReply;
    }
    return run_top(*client, prefix, top_rows, top_interval_ms, top_frames, timeout_ms);
  }

  if (ls->parsed()) {
    if (list_pattern != "*" && !mailbox::is_valid_list_pattern(list_pattern) &&
        !mailbox::is_valid_mailbox_name(list_pattern)) {
      std::cerr << "mailbox: bad pattern '" << list_pattern << "': use * or a name with $* wildcards\n";
      return kExitUsage;
    }
    if (list_page < 1 || list_page > 10000) {
      std::cerr << "mailbox: --page-size is 1..10000\n";
      return kExitUsage;
    }
    std::string error;
    auto client = mailbox::Client::connect(connect, access, &error);
    if (!client) {
      std::cerr << "mailbox: cannot open a Zenoh session: " << error << "\n";
      return kExitNoReply;
    }
    std::vector<nlohmann::json> rows;
    int exit_code = kExitOk;
    // Pages come in name order: the deepest or oldest 20 need every page.
    const size_t fetch_limit = list_sort == "name" ? list_limit : 0;
    if (!list_mailboxes(*client, prefix, list_pattern, list_page, fetch_limit, timeout_ms, &rows, &exit_code)) {
      return exit_code;
    }
    if (list_sort == "depth") {
      std::stable_sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
        return a.value("messages", uint64_t{0}) > b.value("messages", uint64_t{0});
      });
    } else if (list_sort == "age") {
      std::stable_sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
        return a.value("oldest_age_ms", int64_t{0}) > b.value("oldest_age_ms", int64_t{0});
      });
    }
    if (list_limit > 0 && rows.size() > list_limit) rows.resize(list_limit);
    if (json) {
      for (const auto& j : rows) std::cout << j.dump() << "\n";
      return kExitOk;
    }
    std::printf("%-40s %10s %8s %8s %12s %14s\n", "mailbox", "messages", "leased", "delayed", "bytes",
                "oldest_age_ms");
    for (const auto& j : rows) {
      std::printf("%-40s %10llu %8llu %8llu %12llu %14lld\n", j.value("mailbox", "").c_str(),
                  static_cast<unsigned long long>(j.value("messages", uint64_t{0})),
                  static_cast<unsigned long long>(j.value("leased", uint64_t{0})),
                  static_cast<unsigned long long>(j.value("delayed", uint64_t{0})),
                  static_cast<unsigned long long>(j.value("bytes", uint64_t{0})),
                  static_cast<long long>(j.value("oldest_age_ms", int64_t{0})));
    }
    return kExitOk;
  }

  if (!mailbox::is_valid_mailbox_name(box)) {
    std::cerr << "mailbox: bad mailbox name '" << box
              << "': use 1-128 bytes of [A-Za-z0-9._~+=@-], not starting with '@' or '.'\n";
    return kExitUsage;
  }
  for (const auto* d : {&ttl, &wait, &lease, &delay}) {
    if (!valid_duration(*d)) {
      std::cerr << "mailbox: bad duration '" << *d << "': use 500ms, 30s, 5m, 24h or seconds\n";
      return kExitUsage;
    }
  }
  if (auto_ack && lease.empty()) {
    std::cerr << "mailbox: --auto-ack needs --lease\n";
    return kExitUsage;
  }
  if (auto_ack && !watch_exec.empty()) {
    std::cerr << "mailbox: --exec acks by the handler's exit status: drop --auto-ack\n";
    return kExitUsage;
  }
  if (redrive->parsed() && count > 100000) {
    std::cerr << "mailbox: --count is 1..100000\n";
    return kExitUsage;
  }
  if (purge->parsed() && !assume_yes) {
    if (!stdin_is_terminal()) {
      // Scripts say so explicitly: nothing to answer a question here.
      std::cerr << "mailbox: purge removes every message of " << box << "; pass --yes to confirm\n";
      return kExitUsage;
    }
    std::cerr << "Remove every message of mailbox '" << box << "', leased and delayed ones included? [y/N] ";
    std::string answer;
    std::getline(std::cin, answer);
    if (answer != "y" && answer != "Y" && answer != "yes") {
      std::cerr << "mailbox: not purged\n";
      return kExitUsage;
    }
  }
  if (watch->parsed() && wait.empty()) wait = "30s";

  std::string error;
  auto client = mailbox::Client::connect(connect, access, &error);
  if (!client) {
    std::cerr << "mailbox: cannot open a Zenoh session: " << error << "\n";
    return kExitNoReply;
  }
  mailbox::zenoh::GetOptions options;
  options.timeout_ms = timeout_for_wait(timeout_ms, wait);
  const std::string base = prefix + "/" + box;
  const std::string n = count > 0 ? std::to_string(count) : "";

  auto one_reply = [&](const std::string& selector, mailbox::ClientReply* out) -> int {
    auto replies = client->query(selector, options);
    if (replies.empty()) {
      std::cerr << "mailbox: no reply (no server reachable, or timeout)\n";
      return kExitNoReply;
    }
    *out = std::move(replies[0]);
    return kExitOk;
  };
  mailbox::ClientReply reply;

  if (put->parsed()) {
    std::string payload;
    if (payload_arg) payload = *payload_arg;
    else payload.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    if (fire_and_forget) {
      std::optional<std::string> enc;
      if (!encoding.empty()) enc = encoding;
      std::vector<std::pair<std::string, std::string>> publication_options;
      if (!delay.empty()) publication_options.emplace_back("delay", delay);
      if (!ttl.empty()) publication_options.emplace_back("ttl", ttl);
      return client->publish(base, payload, enc, publication_options) ? kExitOk : kExitServiceError;
    }
    options.payload = payload;
    if (!encoding.empty()) options.encoding = encoding;
    if (int rc = one_reply(with_params(base + "/put", {{"ttl", ttl}, {"delay", delay}, {"rid", rid}}), &reply)) {
      return rc;
    }
    if (!reply.ok) return report_error(reply);
    if (json) std::cout << reply.payload << "\n";
    else std::cout << nlohmann::json::parse(reply.payload, nullptr, false).value("id", "") << "\n";
    return kExitOk;
  }

  if (ack->parsed() || nack->parsed()) {
    const std::string op = ack->parsed() ? "/ack" : "/nack";
    if (int rc = one_reply(with_params(base + op, {{"id", std::to_string(message_id)}, {"rid", rid}}), &reply)) {
      return rc;
    }
    return reply.ok ? kExitOk : report_error(reply);
  }

  if (extend->parsed()) {
    if (int rc = one_reply(with_params(base + "/extend", {{"id", std::to_string(message_id)}, {"lease", lease},
                                                          {"rid", rid}}),
                           &reply)) {
      return rc;
    }
    if (!reply.ok) return report_error(reply);
    if (json) std::cout << reply.payload << "\n";
    else std::cout << nlohmann::json::parse(reply.payload, nullptr, false).value("lease_expires_at", int64_t{0}) << "\n";
    return kExitOk;
  }

  if (purge->parsed() || redrive->parsed()) {
    const std::string selector = purge->parsed() ? with_params(base + "/purge", {{"rid", rid}})
                                                 : with_params(base + "/redrive", {{"n", n}, {"rid", rid}});
    if (int rc = one_reply(selector, &reply)) return rc;
    if (!reply.ok) return report_error(reply);
    if (json) {
      std::cout << reply.payload << "\n";
    } else {
      const char* field = purge->parsed() ? "purged" : "moved";
      std::cout << nlohmann::json::parse(reply.payload, nullptr, false).value(field, uint64_t{0}) << "\n";
    }
    return kExitOk;
  }

  if (stats->parsed()) {
    if (int rc = one_reply(base + "/stats", &reply)) return rc;
    if (!reply.ok) return report_error(reply);
    std::cout << reply.payload << "\n";
    return kExitOk;
  }

  if (get->parsed() || peek->parsed()) {
    const std::string selector =
        get->parsed() ? with_params(base + "/consume", {{"n", n}, {"wait", wait}, {"lease", lease}, {"rid", rid}})
                      : with_params(base + "/peek", {{"n", n}, {"wait", wait}});
    if (int rc = one_reply(selector, &reply)) return rc;
    if (!reply.ok) return report_error(reply);
    for (const auto& m : messages_of(reply, count > 0)) print_message(m, json, count > 0);
    return kExitOk;
  }

  // watch: long-poll consume in a loop.
  uint64_t delivered = 0;
  const std::string selector = with_params(base + "/consume", {{"wait", wait}, {"lease", lease}});
  for (;;) {
    auto replies = client->query(selector, options);
    if (replies.empty()) {
      std::cerr << "mailbox: no reply (no server reachable, or timeout); retrying\n";
      std::this_thread::sleep_for(std::chrono::milliseconds(kRetryDelayMs));
      continue;
    }
    const auto& r = replies[0];
    if (!r.ok) {
      const ErrorReply e = error_of(r);
      if (e.code == "empty") continue;
      if (e.code == "unavailable" || e.code == "unknown_outcome") {
        std::cerr << "mailbox: " << e.code << ": " << e.message << "; retrying\n";
        std::this_thread::sleep_for(std::chrono::milliseconds(kRetryDelayMs));
        continue;
      }
      return report_error(r);
    }
    for (const auto& m : messages_of(r, false)) {
      const std::string id = m.meta.value("id", "");
      if (!watch_exec.empty()) {
        // The handler runs; a lease is extended every third of its length
        // while it does, so a long job keeps its message hidden.
        int64_t lease_ms = 0;
        if (!lease.empty()) mailbox::parse_duration_ms(lease, &lease_ms);
        std::function<void()> keep_leased;
        if (lease_ms > 0) {
          keep_leased = [&] {
            mailbox::ClientReply extended;
            if (one_reply(base + "/extend?id=" + id + ";lease=" + lease, &extended) == kExitOk && !extended.ok) {
              report_error(extended);
            }
          };
        }
        const int status = run_handler(watch_exec, m, std::max<int64_t>(lease_ms / 3, 1), keep_leased);
        if (lease_ms > 0) {
          mailbox::ClientReply settled;
          const std::string op = status == 0 ? "/ack?id=" : "/nack?id=";
          if (int rc = one_reply(base + op + id, &settled)) return rc;
          if (!settled.ok) report_error(settled);
        }
        if (status != 0) std::cerr << "mailbox: handler exited with " << status << " for message " << id << "\n";
        if (watch_limit > 0 && ++delivered >= watch_limit) return kExitOk;
        continue;
      }
      print_message(m, json, true);
      if (auto_ack) {
        mailbox::ClientReply ack_reply;
        if (int rc = one_reply(base + "/ack?id=" + id, &ack_reply)) return rc;
        if (!ack_reply.ok) report_error(ack_reply);
      }
      if (watch_limit > 0 && ++delivered >= watch_limit) return kExitOk;
    }
  }
}
