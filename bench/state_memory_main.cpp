// state-memory: what N mailboxes with one message each cost the state
// machine alone (heap bytes per mailbox from glibc's mallinfo2, RSS), and how
// long a snapshot of them takes to make and to restore. The numbers in
// docs/BENCHMARKS.md ("A million mailboxes") come from it; the whole-process
// numbers come from mailboxd itself.
//
//   state-memory [mailboxes=1000000] [payload_bytes=64] [name_prefix=bench-]
#include <malloc.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "core/state_machine.hpp"

namespace {

using Clock = std::chrono::steady_clock;

size_t heap_bytes() { return mallinfo2().uordblks + mallinfo2().hblkhd; }

long rss_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return 0;
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

constexpr size_t kPutsPerEntry = 256;

}  // namespace

int main(int argc, char** argv) {
  const size_t mailboxes = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1'000'000;
  const size_t payload_bytes = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 64;
  const std::string prefix = argc > 3 ? argv[3] : "bench-";
  const std::string payload(payload_bytes, 'x');

  const size_t heap_before = heap_bytes();
  const long rss_before = rss_kib();
  auto start = Clock::now();
  mailbox::StateMachine sm;
  for (size_t done = 0; done < mailboxes; done += kPutsPerEntry) {
    mailbox::Entry e;
    e.leader_time_ms = 1;
    for (size_t i = done; i < done + kPutsPerEntry && i < mailboxes; ++i) {
      e.commands.push_back(
          mailbox::PutCommand{prefix + std::to_string(i), "zenoh/bytes", payload, 86'400'000, ""});
    }
    sm.apply(e);
  }
  const double fill_s = seconds_since(start);
  const size_t heap_after = heap_bytes();
  const long rss_after = rss_kib();
  std::printf("mailboxes %zu, payload %zu bytes, names %s<i>\n", mailboxes, payload_bytes, prefix.c_str());
  std::printf("fill: %.2f s\n", fill_s);
  std::printf("heap: %.1f MiB, %.1f bytes per mailbox\n", (heap_after - heap_before) / 1048576.0,
              static_cast<double>(heap_after - heap_before) / static_cast<double>(mailboxes));
  std::printf("rss:  %.1f MiB, %.1f bytes per mailbox\n", (rss_after - rss_before) / 1024.0,
              (rss_after - rss_before) * 1024.0 / static_cast<double>(mailboxes));

  start = Clock::now();
  auto parts = sm.pin_snapshot();
  const double pin_s = seconds_since(start);
  const size_t snapshot_bytes = parts.total_bytes();
  sm.unpin_snapshot();
  const std::string bytes = sm.serialize();
  std::printf("snapshot: %.1f MiB, pin %.0f ms\n", snapshot_bytes / 1048576.0, pin_s * 1000);
  const uint64_t digest = sm.digest();
  {
    mailbox::StateMachine discard = std::move(sm);
  }
  start = Clock::now();
  mailbox::StateMachine restored;
  const bool ok = restored.restore(bytes);
  std::printf("restore: %s in %.0f ms, digest %s\n", ok ? "ok" : "FAILED", seconds_since(start) * 1000,
              restored.digest() == digest ? "equal" : "DIFFERENT");
  return ok && restored.digest() == digest ? 0 : 1;
}
