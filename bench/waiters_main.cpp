// mailbox-waiters: many waiting clients (issue #15, item 7) from C++, with
// no Python in the way. Parks N long-polls (`get P/w<i>?wait=`), one per
// mailbox, from K client sessions; waits until the node reports them
// parked; then wakes W of them with one publication each (from S
// publishing sessions, one thread each) and reports when the replies
// arrive, counted from the first publication. docs/BENCHMARKS.md, "Many
// waiting clients", has the commands and numbers.
//
// Threads: main parks and reports; one thread per publishing session; the
// reply callbacks run on the client sessions' Zenoh threads and only record
// a time under a mutex.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "bridge/cpp/zenoh_bridge.hpp"
#include "cli/zenoh_config.hpp"

namespace {

using Clock = std::chrono::steady_clock;

// CPU seconds (user + system) process `pid` has used (0 when unknown).
double cpu_s(int pid) {
  if (pid <= 0) return 0;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Resident set of process `pid` in KiB (0 when unknown).
long rss_kib(int pid) {
  if (pid <= 0) return 0;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return 0;
}

// The node's `parked_waiters` from its status (-1: no answer).
long parked_waiters(mailbox::zenoh::Session& session, const std::string& prefix, unsigned node) {
  mailbox::zenoh::GetOptions options;
  options.timeout_ms = 5000;
  auto found = std::make_shared<long>(-1);
  std::mutex mutex;
  std::condition_variable cv;
  bool done = false;
  session.get(
      prefix + "/@cluster/node/" + std::to_string(node) + "/status", options,
      [found](const mailbox::zenoh::Reply& r) {
        if (!r.ok) return;
        const std::string text(r.payload);
        const auto at = text.find("\"parked_waiters\":");
        if (at != std::string::npos) *found = std::strtol(text.c_str() + at + 17, nullptr, 10);
      },
      [&] {
        std::lock_guard<std::mutex> lock(mutex);
        done = true;
        cv.notify_all();
      });
  std::unique_lock<std::mutex> lock(mutex);
  cv.wait(lock, [&] { return done; });
  return *found;
}

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mailbox-waiters: park many long-polls, wake some, time the replies"};
  std::string connect = "tcp/127.0.0.1:7447";
  std::string prefix = "forge/mailbox";
  std::string box_prefix = "w";
  size_t waiters = 10000;
  size_t wake = 0;
  unsigned wait_s = 60;
  size_t query_sessions = 1;
  size_t publish_sessions = 1;
  unsigned node = 1;
  int server_pid = 0;
  double park_timeout_s = 120;
  bool acknowledged = false;
  unsigned wait_spread_ms = 0;
  bool hold = false;
  app.add_option("--connect", connect)->capture_default_str();
  app.add_option("--prefix", prefix)->capture_default_str();
  app.add_option("--box-prefix", box_prefix, "mailboxes are <box-prefix><i>")->capture_default_str();
  app.add_option("--waiters", waiters, "long-polls parked, one per mailbox")->capture_default_str();
  app.add_option("--wake", wake, "mailboxes to publish one message to (0: all)")->capture_default_str();
  app.add_option("--wait", wait_s, "each long-poll's wait= in seconds")->capture_default_str();
  app.add_option("--query-sessions", query_sessions, "client sessions the long-polls are spread over")
      ->capture_default_str();
  app.add_option("--publish-sessions", publish_sessions, "publishing sessions, one thread each")
      ->capture_default_str();
  app.add_option("--acknowledged", acknowledged, "wake with acknowledged puts (queries) instead of publications")
      ->capture_default_str();
  app.add_option("--wait-spread", wait_spread_ms,
                 "long-poll i waits wait + (i % this) ms: their ends spread as a steady stream of devices' would")
      ->capture_default_str();
  app.add_option("--hold", hold,
                 "after the report, keep the sessions until every other long-poll has ended (its wait is over) "
                 "and report that too, with the server's CPU time meanwhile")
      ->capture_default_str();
  app.add_option("--node", node, "the node id whose status tells how many are parked")->capture_default_str();
  app.add_option("--server-pid", server_pid, "mailboxd's pid: its RSS is reported")->capture_default_str();
  app.add_option("--park-timeout", park_timeout_s, "seconds to wait for every long-poll to park")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (wake == 0 || wake > waiters) wake = waiters;
  query_sessions = std::max<size_t>(1, query_sessions);
  publish_sessions = std::max<size_t>(1, publish_sessions);

  std::string error;
  std::vector<std::unique_ptr<mailbox::zenoh::Session>> queriers;
  for (size_t i = 0; i < query_sessions; ++i) {
    auto s = mailbox::zenoh::Session::open(mailbox::client_config({connect}), &error);
    if (!s) {
      std::fprintf(stderr, "mailbox-waiters: %s\n", error.c_str());
      return 1;
    }
    queriers.push_back(std::move(s));
  }
  std::vector<std::unique_ptr<mailbox::zenoh::Session>> publishers;
  for (size_t i = 0; i < publish_sessions; ++i) {
    auto s = mailbox::zenoh::Session::open(mailbox::client_config({connect}), &error);
    if (!s) {
      std::fprintf(stderr, "mailbox-waiters: %s\n", error.c_str());
      return 1;
    }
    publishers.push_back(std::move(s));
  }

  const long rss_before = rss_kib(server_pid);
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<Clock::time_point> arrivals;
  arrivals.reserve(waiters);
  size_t errors = 0, finished = 0;
  std::string first_error;
  mailbox::zenoh::GetOptions options;
  options.timeout_ms = (wait_s + 60) * 1000ULL;
  if (wait_spread_ms > 0) options.timeout_ms += wait_spread_ms;
  auto wait_param = [&](size_t i) {
    if (wait_spread_ms == 0) return "?wait=" + std::to_string(wait_s) + "s";
    return "?wait=" + std::to_string(wait_s * 1000ULL + i % wait_spread_ms) + "ms";
  };
  const auto park_started = Clock::now();
  for (size_t i = 0; i < waiters; ++i) {
    auto got = std::make_shared<bool>(false);
    queriers[i % query_sessions]->get(
        prefix + "/" + box_prefix + std::to_string(i) + wait_param(i), options,
        [&, got](const mailbox::zenoh::Reply& r) {
          const auto now = Clock::now();
          std::lock_guard<std::mutex> lock(mutex);
          *got = true;
          if (r.ok) {
            arrivals.push_back(now);
          } else {
            if (first_error.empty()) {
              first_error = std::string(r.payload.substr(0, 120));
              std::replace(first_error.begin(), first_error.end(), '"', '\'');
            }
            ++errors;
          }
        },
        [&, got] {
          std::lock_guard<std::mutex> lock(mutex);
          if (!*got) {
            ++errors;  // no reply at all
            if (first_error.empty()) first_error = "no reply";
          }
          ++finished;
          cv.notify_all();
        });
  }
  // Parked once the node says so.
  long parked = 0;
  while (seconds_between(park_started, Clock::now()) < park_timeout_s) {
    parked = parked_waiters(*publishers[0], prefix, node);
    if (parked >= static_cast<long>(waiters)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  const double park_s = seconds_between(park_started, Clock::now());
  const long rss_parked = rss_kib(server_pid);
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (finished > 0) {
      std::fprintf(stderr, "mailbox-waiters: %zu long-polls ended before the publications (%s)\n", finished,
                   first_error.c_str());
    }
  }

  // Wake: mailbox i goes to publisher i % S.
  const auto t0 = Clock::now();
  std::vector<std::thread> threads;
  std::atomic<size_t> publish_failures{0};
  std::vector<double> publish_done_s(publish_sessions, 0);
  for (size_t p = 0; p < publish_sessions; ++p) {
    threads.emplace_back([&, p] {
      auto& session = *publishers[p];
      if (!acknowledged) {
        for (size_t i = p; i < wake; i += publish_sessions) {
          if (!session.put(prefix + "/" + box_prefix + std::to_string(i), "x", std::nullopt, std::nullopt, true)) {
            publish_failures.fetch_add(1);
          }
        }
      } else {
        // Acknowledged puts, all in flight at once (the node batches them).
        std::mutex m;
        std::condition_variable done_cv;
        size_t outstanding = 0;
        mailbox::zenoh::GetOptions put_options;
        put_options.payload = "x";
        put_options.timeout_ms = 60000;
        for (size_t i = p; i < wake; i += publish_sessions) {
          {
            std::lock_guard<std::mutex> lock(m);
            ++outstanding;
          }
          auto ok = std::make_shared<bool>(false);
          session.get(
              prefix + "/" + box_prefix + std::to_string(i) + "/put", put_options,
              [ok](const mailbox::zenoh::Reply& r) { *ok = r.ok; },
              [&, ok] {
                if (!*ok) publish_failures.fetch_add(1);
                std::lock_guard<std::mutex> lock(m);
                --outstanding;
                done_cv.notify_all();
              });
        }
        std::unique_lock<std::mutex> lock(m);
        done_cv.wait(lock, [&] { return outstanding == 0; });
      }
      publish_done_s[p] = seconds_between(t0, Clock::now());
    });
  }
  for (auto& t : threads) t.join();
  const double publish_s = *std::max_element(publish_done_s.begin(), publish_done_s.end());
  {
    std::unique_lock<std::mutex> lock(mutex);
    cv.wait_for(lock, std::chrono::seconds(60), [&] { return arrivals.size() >= wake; });
  }
  std::vector<double> latency;
  size_t replies = 0, errors_seen = 0;
  std::string error_text;
  {
    std::lock_guard<std::mutex> lock(mutex);
    for (const auto& a : arrivals) latency.push_back(seconds_between(t0, a));
    replies = arrivals.size();
    errors_seen = errors;
    error_text = first_error;
  }
  std::sort(latency.begin(), latency.end());
  auto pct = [&](double p) {
    if (latency.empty()) return -1.0;
    return latency[std::min(latency.size() - 1, static_cast<size_t>(p * static_cast<double>(latency.size())))];
  };
  const long rss_woken = rss_kib(server_pid);
  std::printf(
      "{\"waiters\":%zu,\"parked\":%ld,\"park_s\":%.3f,\"woken\":%zu,\"replies\":%zu,\"errors\":%zu,"
      "\"first_error\":\"%s\",\"publish_failures\":%zu,\"query_sessions\":%zu,\"publish_sessions\":%zu,"
      "\"acknowledged\":%s,\"publish_s\":%.3f,\"p50_s\":%.3f,\"p99_s\":%.3f,\"max_s\":%.3f,"
      "\"server_rss_kib_before\":%ld,\"server_rss_kib_parked\":%ld,\"server_rss_kib_after\":%ld}\n",
      waiters, parked, park_s, wake, replies, errors_seen, error_text.c_str(), publish_failures.load(),
      query_sessions, publish_sessions, acknowledged ? "true" : "false", publish_s, pct(0.5), pct(0.99),
      latency.empty() ? -1.0 : latency.back(), rss_before, rss_parked, rss_woken);
  std::fflush(stdout);
  if (hold) {
    // The others end when their wait is over (`empty`): the server's work
    // meanwhile is ending them, found by deadline.
    const auto hold_started = Clock::now();
    const double cpu_before = cpu_s(server_pid);
    size_t ended = 0;
    {
      std::unique_lock<std::mutex> lock(mutex);
      cv.wait_for(lock, std::chrono::seconds(wait_s + wait_spread_ms / 1000 + 60),
                  [&] { return finished >= waiters; });
      ended = finished;
    }
    std::printf("{\"held_s\":%.3f,\"ended\":%zu,\"server_cpu_s_while_held\":%.2f,\"server_rss_kib_end\":%ld}\n",
                seconds_between(hold_started, Clock::now()), ended, cpu_s(server_pid) - cpu_before,
                rss_kib(server_pid));
    std::fflush(stdout);
  }
  // The long-polls not woken end with their wait (or the session's close).
  publishers.clear();
  queriers.clear();
  return 0;
}
