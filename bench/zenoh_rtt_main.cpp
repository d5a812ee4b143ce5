// zenoh-rtt: the round trip of one Zenoh query over TCP loopback through our
// bridge, the floor under every acknowledged put and consume. A server
// process (this program with --serve, started first: a router session, as in
// mailboxd) listens and declares a queryable whose callback hands the query
// to a ReplyWorker, which replies at once (as mailboxd does: a Zenoh
// callback never sends); this process opens a client session to it, sends
// sequential gets and prints the percentiles as JSON. Two processes, as a
// client and mailboxd are, both with mailboxd's Zenoh runtime layout. Used
// by `make bench` (bench/suite.py).
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bridge/cpp/zenoh_bridge.hpp"
#include "cli/zenoh_config.hpp"
#include "server/reply_worker.hpp"

namespace {

constexpr const char* kKey = "bench/rtt";

// Sends one get and waits for its end; the round trip in microseconds, or a
// negative value when no reply came.
double one_get(mailbox::zenoh::Session& session, const std::string& key, const std::string& payload) {
  std::mutex mutex;
  std::condition_variable cv;
  bool done = false;
  bool ok = false;
  mailbox::zenoh::GetOptions options;
  options.payload = payload;
  options.timeout_ms = 5000;
  const auto start = std::chrono::steady_clock::now();
  session.get(
      key, options, [&](const mailbox::zenoh::Reply& reply) { ok = ok || reply.ok; },
      [&] {
        std::lock_guard<std::mutex> lock(mutex);
        done = true;
        cv.notify_all();
      });
  std::unique_lock<std::mutex> lock(mutex);
  cv.wait(lock, [&] { return done; });
  const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
  return ok ? us : -1.0;
}

// The server process: a router session listening on `listen` whose
// queryable replies from a ReplyWorker, until SIGTERM.
int serve_until_stopped(const std::string& listen) {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  mailbox::zenoh::use_mailbox_runtime_unless_configured();
  mailbox::zenoh::init_logging("error");
  mailbox::ReplyWorker replier;
  std::string error;
  auto server = mailbox::zenoh::Session::open(mailbox::router_config({listen}, {}, false), &error);
  if (!server) {
    std::fprintf(stderr, "zenoh-rtt: server session: %s\n", error.c_str());
    return 1;
  }
  auto queryable = server->declare_queryable(
      kKey, true,
      [&replier](mailbox::zenoh::Query&& query) {
        auto owned = std::make_shared<mailbox::zenoh::Query>(std::move(query));
        replier.push([owned = std::move(owned)]() mutable {
          owned->reply(kKey, "", "text/plain", std::nullopt);
          owned.reset();
        });
      },
      &error);
  if (!queryable) {
    std::fprintf(stderr, "zenoh-rtt: queryable: %s\n", error.c_str());
    return 1;
  }
  int signal_number = 0;
  sigwait(&stop, &signal_number);
  queryable.reset();
  replier.stop();
  server.reset();
  return 0;
}

double percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const size_t rank = std::min(sorted.size() - 1, static_cast<size_t>(q * static_cast<double>(sorted.size())));
  return sorted[rank];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"zenoh-rtt: Zenoh query round trip over TCP loopback through the bridge"};
  std::string listen = "tcp/127.0.0.1:17480";
  uint64_t count = 2000;
  uint64_t warmup = 200;
  size_t size_bytes = 1024;
  app.add_option("--listen", listen, "endpoint of the replying (router) session")->capture_default_str();
  app.add_option("--count", count, "measured sequential gets")->capture_default_str();
  app.add_option("--warmup", warmup, "unmeasured gets first")->capture_default_str();
  app.add_option("--size", size_bytes, "query payload bytes (the reply is empty)")->capture_default_str();
  bool serve = false;
  app.add_flag("--serve", serve, "be the server process (started by the measuring one)");
  CLI11_PARSE(app, argc, argv);

  if (serve) return serve_until_stopped(listen);

  // The server process first: no Zenoh thread may exist in a process that
  // starts another (posix_spawn is safe, but start it before Zenoh anyway).
  std::vector<std::string> server_args{argv[0], "--serve", "--listen", listen};
  std::vector<char*> raw_args;
  for (auto& a : server_args) raw_args.push_back(a.data());
  raw_args.push_back(nullptr);
  pid_t server_pid = 0;
  if (posix_spawn(&server_pid, "/proc/self/exe", nullptr, nullptr, raw_args.data(), environ) != 0) {
    std::fprintf(stderr, "zenoh-rtt: cannot start the server process\n");
    return 1;
  }
  struct StopServer {
    pid_t pid;
    ~StopServer() {
      kill(pid, SIGTERM);
      waitpid(pid, nullptr, 0);
    }
  } stop_server{server_pid};
  mailbox::zenoh::use_mailbox_runtime_unless_configured();
  mailbox::zenoh::init_logging("error");
  std::string error;
  // The server process may not listen yet: retry opening for a while.
  std::unique_ptr<mailbox::zenoh::Session> client;
  const auto open_until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!(client = mailbox::zenoh::Session::open(mailbox::client_config({listen}), &error))) {
    if (std::chrono::steady_clock::now() > open_until) {
      std::fprintf(stderr, "zenoh-rtt: client session: %s\n", error.c_str());
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const std::string payload(size_bytes, 'x');
  // The queryable's declaration reaches the client asynchronously: wait for a reply.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (one_get(*client, kKey, payload) < 0) {
    if (std::chrono::steady_clock::now() > give_up) {
      std::fprintf(stderr, "zenoh-rtt: no reply from the queryable\n");
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (uint64_t i = 0; i < warmup; ++i) one_get(*client, kKey, payload);
  std::vector<double> samples;
  samples.reserve(count);
  uint64_t failed = 0;
  for (uint64_t i = 0; i < count; ++i) {
    const double us = one_get(*client, kKey, payload);
    if (us < 0) {
      ++failed;
    } else {
      samples.push_back(us);
    }
  }
  std::sort(samples.begin(), samples.end());
  double sum = 0;
  for (double s : samples) sum += s;
  const double mean = samples.empty() ? 0 : sum / static_cast<double>(samples.size());
  std::printf(
      "{\"count\":%zu,\"failed\":%llu,\"payload_bytes\":%zu,\"mean_ms\":%.4f,\"p50_ms\":%.4f,\"p90_ms\":%.4f,"
      "\"p99_ms\":%.4f,\"max_ms\":%.4f}\n",
      samples.size(), static_cast<unsigned long long>(failed), size_bytes, mean / 1000.0,
      percentile(samples, 0.50) / 1000.0, percentile(samples, 0.90) / 1000.0, percentile(samples, 0.99) / 1000.0,
      samples.empty() ? 0.0 : samples.back() / 1000.0);
  client.reset();
  return failed == 0 ? 0 : 1;
}
