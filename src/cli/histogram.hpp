// histogram.hpp: a log-linear latency histogram (microseconds) with about
// 0.2% relative precision, for the load generator's percentiles.
//
// Values below 1024 us are counted exactly; above, each power of two is
// split into 512 equal buckets. Fixed memory (kBucketCount counters), O(1)
// record, mergeable.
//
// Threads: not thread-safe; one per thread, merged at the end.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

namespace mailbox {

class Histogram {
 public:
  static constexpr int kExactBelowUs = 1024;
  static constexpr int kSubBuckets = 512;
  static constexpr int kMaxExponent = 30;  // up to ~2^40 us
  static constexpr size_t kBucketCount = kExactBelowUs + kMaxExponent * kSubBuckets;

  Histogram() : counts_(kBucketCount, 0) {}

  void record(uint64_t value_us) {
    counts_[index_of(value_us)] += 1;
    total_ += 1;
    max_ = std::max(max_, value_us);
  }
  void merge(const Histogram& other) {
    for (size_t i = 0; i < kBucketCount; ++i) counts_[i] += other.counts_[i];
    total_ += other.total_;
    max_ = std::max(max_, other.max_);
  }
  uint64_t count() const { return total_; }
  uint64_t max() const { return max_; }
  // The value at quantile q (0..1): the upper edge of the bucket holding it.
  uint64_t quantile(double q) const {
    if (total_ == 0) return 0;
    const uint64_t rank = std::max<uint64_t>(1, static_cast<uint64_t>(q * static_cast<double>(total_) + 0.5));
    uint64_t seen = 0;
    for (size_t i = 0; i < kBucketCount; ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::min(upper_edge(i), max_);
    }
    return max_;
  }

  static size_t index_of(uint64_t v) {
    if (v < static_cast<uint64_t>(kExactBelowUs)) return static_cast<size_t>(v);
    int exponent = 63 - __builtin_clzll(v) - 9;  // v >> exponent is in [512, 1024)
    if (exponent > kMaxExponent) return kBucketCount - 1;
    const uint64_t mantissa = v >> exponent;
    return static_cast<size_t>(kExactBelowUs + (exponent - 1) * kSubBuckets + (mantissa - kSubBuckets));
  }
  static uint64_t upper_edge(size_t index) {
    if (index < static_cast<size_t>(kExactBelowUs)) return index;
    const size_t rest = index - kExactBelowUs;
    const int exponent = static_cast<int>(rest / kSubBuckets) + 1;
    const uint64_t mantissa = kSubBuckets + rest % kSubBuckets;
    return ((mantissa + 1) << exponent) - 1;
  }

 private:
  std::vector<uint64_t> counts_;
  uint64_t total_ = 0;
  uint64_t max_ = 0;
};

}  // namespace mailbox
