// mailbox-fill: puts N acknowledged messages of a given size into one mailbox
// (or round-robin into `--mailboxes` mailboxes named `<mailbox>-<i>`, the
// same names `mailbox bench --mailboxes` uses) with a window of queries in
// flight, then prints the rate. Used by the benchmarks in docs/BENCHMARKS.md
// to build large states quickly.
#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>

#include "bridge/cpp/zenoh_bridge.hpp"
#include "cli/zenoh_config.hpp"

int main(int argc, char** argv) {
  CLI::App app{"mailbox-fill: put many acknowledged messages quickly"};
  std::string connect = "tcp/127.0.0.1:7447";
  std::string prefix = "forge/mailbox";
  std::string box = "bench";
  uint64_t count = 100000;
  size_t size_bytes = 1024;
  size_t window = 256;
  uint64_t mailboxes = 1;
  app.add_option("--connect", connect)->capture_default_str();
  app.add_option("--prefix", prefix)->capture_default_str();
  app.add_option("--mailbox", box)->capture_default_str();
  app.add_option("--count", count)->capture_default_str();
  app.add_option("--size", size_bytes, "payload bytes")->capture_default_str();
  app.add_option("--window", window, "queries in flight")->capture_default_str();
  app.add_option("--mailboxes", mailboxes, "spread the puts round-robin over this many mailboxes")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);

  std::string error;
  auto session = mailbox::zenoh::Session::open(mailbox::client_config({connect}), &error);
  if (!session) {
    std::fprintf(stderr, "mailbox-fill: %s\n", error.c_str());
    return 1;
  }
  const std::string payload(size_bytes, 'x');
  auto selector_of = [&](uint64_t i) {
    const std::string name = mailboxes <= 1 ? box : box + "-" + std::to_string(i % mailboxes);
    return prefix + "/" + name + "/put";
  };
  std::mutex mutex;
  std::condition_variable cv;
  size_t in_flight = 0;
  std::atomic<uint64_t> ok{0}, failed{0};
  const auto start = std::chrono::steady_clock::now();
  for (uint64_t i = 0; i < count; ++i) {
    {
      std::unique_lock<std::mutex> lock(mutex);
      cv.wait(lock, [&] { return in_flight < window; });
      ++in_flight;
    }
    mailbox::zenoh::GetOptions options;
    options.payload = payload;
    options.timeout_ms = 60000;
    auto got_ok = std::make_shared<bool>(false);
    session->get(
        selector_of(i), options, [got_ok](const mailbox::zenoh::Reply& r) { *got_ok = r.ok; },
        [&, got_ok] {
          (*got_ok ? ok : failed).fetch_add(1);
          std::lock_guard<std::mutex> lock(mutex);
          --in_flight;
          cv.notify_all();
        });
  }
  {
    std::unique_lock<std::mutex> lock(mutex);
    cv.wait(lock, [&] { return in_flight == 0; });
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("{\"ok\":%llu,\"failed\":%llu,\"seconds\":%.3f,\"puts_per_second\":%.0f}\n",
              static_cast<unsigned long long>(ok.load()), static_cast<unsigned long long>(failed.load()), seconds,
              static_cast<double>(ok.load()) / seconds);
  session.reset();
  return failed.load() == 0 ? 0 : 1;
}
