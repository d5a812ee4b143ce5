// latency_histogram.hpp: a fixed-bucket latency histogram, recorded by one
// thread and read by any (relaxed atomics: a reader sees each counter whole,
// not all counters of one instant).
//
// What it is for: the node's own timings (loop iterations, log writes and
// fsyncs, snapshots) for its status and metrics. The bucket bounds are fixed
// so that they map directly onto Prometheus histogram buckets (le=...).
//
// Threads: `record` from one thread at a time; the rest from any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

namespace mailbox {

// A plain copy of a histogram's counters (for metrics: Prometheus buckets
// are cumulative; these are not).
struct HistogramSnapshot {
  std::array<uint64_t, 17> counts{};  // per bucket, the last one +Inf
  uint64_t sum_us = 0;
  uint64_t count = 0;
};

class LatencyHistogram {
 public:
  // Upper bounds of the buckets, in microseconds; the last bucket is +Inf.
  static constexpr std::array<uint64_t, 16> kBoundsUs = {50,     100,    250,     500,     1'000,   2'500,
                                                         5'000,  10'000, 25'000,  50'000,  100'000, 250'000,
                                                         500'000, 1'000'000, 2'500'000, 10'000'000};
  static constexpr size_t kBuckets = kBoundsUs.size() + 1;

  void record(uint64_t us) {
    size_t i = 0;
    while (i < kBoundsUs.size() && us > kBoundsUs[i]) ++i;
    counts_[i].fetch_add(1, std::memory_order_relaxed);
    sum_us_.fetch_add(us, std::memory_order_relaxed);
    uint64_t seen = max_us_.load(std::memory_order_relaxed);
    while (us > seen && !max_us_.compare_exchange_weak(seen, us, std::memory_order_relaxed)) {
    }
  }
  uint64_t count(size_t bucket) const { return counts_[bucket].load(std::memory_order_relaxed); }
  uint64_t total() const {
    uint64_t t = 0;
    for (const auto& c : counts_) t += c.load(std::memory_order_relaxed);
    return t;
  }
  uint64_t sum_us() const { return sum_us_.load(std::memory_order_relaxed); }
  HistogramSnapshot snapshot() const {
    static_assert(HistogramSnapshot{}.counts.size() == kBuckets);
    HistogramSnapshot s;
    for (size_t i = 0; i < kBuckets; ++i) {
      s.counts[i] = count(i);
      s.count += s.counts[i];
    }
    s.sum_us = sum_us();
    return s;
  }
  uint64_t max_us() const { return max_us_.load(std::memory_order_relaxed); }
  // The upper bound of the bucket holding the q-quantile (q in [0, 1]);
  // 0 when empty; the largest bound for the +Inf bucket.
  uint64_t quantile_bound_us(double q) const {
    const uint64_t n = total();
    if (n == 0) return 0;
    const uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(n - 1)) + 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      seen += count(i);
      if (seen >= rank) return i < kBoundsUs.size() ? kBoundsUs[i] : max_us();
    }
    return max_us();
  }

 private:
  std::array<std::atomic<uint64_t>, kBuckets> counts_{};
  std::atomic<uint64_t> sum_us_{0};
  std::atomic<uint64_t> max_us_{0};
};

}  // namespace mailbox
