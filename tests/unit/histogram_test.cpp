#include <gtest/gtest.h>

#include "cli/histogram.hpp"

namespace mailbox {
namespace {

TEST(Histogram, ExactBelow1024AndCloseAbove) {
  Histogram h;
  for (uint64_t v = 1; v <= 100; ++v) h.record(v);
  EXPECT_EQ(h.count(), 100u);
  EXPECT_EQ(h.quantile(0.5), 50u);
  EXPECT_EQ(h.quantile(0.99), 99u);
  EXPECT_EQ(h.quantile(1.0), 100u);
  Histogram big;
  for (uint64_t v : {5'000ULL, 123'456ULL, 9'876'543ULL}) {
    big.record(v);
    const uint64_t edge = Histogram::upper_edge(Histogram::index_of(v));
    EXPECT_GE(edge, v);
    EXPECT_LE(static_cast<double>(edge - v), 0.002 * static_cast<double>(v) + 1) << v;
  }
  EXPECT_EQ(big.quantile(1.0), 9'876'543u);
}

TEST(Histogram, BucketsAreMonotonicAndMerge) {
  size_t last = 0;
  for (uint64_t v = 0; v < 5'000'000; v += 997) {
    const size_t i = Histogram::index_of(v);
    EXPECT_GE(i, last);
    EXPECT_GE(Histogram::upper_edge(i), v);
    last = i;
  }
  Histogram a, b;
  a.record(10);
  b.record(20);
  a.merge(b);
  EXPECT_EQ(a.count(), 2u);
  EXPECT_EQ(a.max(), 20u);
  EXPECT_EQ(Histogram().quantile(0.5), 0u);
}

}  // namespace
}  // namespace mailbox
