#include "cli/bench.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/client.hpp"
#include "cli/histogram.hpp"

namespace mailbox {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint64_t kQueryTimeoutMs = 30000;
constexpr const char* kConsumeWait = "1s";  // consumers long-poll an empty mailbox

struct Totals {
  std::mutex mutex;
  Histogram put_latency;
  Histogram consume_latency;
  uint64_t puts = 0;
  uint64_t messages = 0;
  uint64_t errors = 0;
  std::string first_error;
};

uint64_t micros_between(Clock::time_point a, Clock::time_point b) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(b - a).count());
}

// Number of messages in an OK consume reply (single or batch shape).
uint64_t messages_in(const ClientReply& reply, bool batch_shape) {
  if (!batch_shape) return 1;
  auto meta = nlohmann::json::parse(reply.attachment.value_or("{}"), nullptr, false);
  return meta.is_object() ? meta.value("count", uint64_t{0}) : 0;
}

bool retryable(const ClientReply& reply) {
  auto err = nlohmann::json::parse(reply.payload, nullptr, false);
  const std::string code = err.is_object() ? err.value("code", "") : "";
  return code == "unavailable" || code == "unknown_outcome";
}

}  // namespace

int run_bench(const BenchOptions& o, bool json) {
  Totals totals;
  std::atomic<bool> stop{false};
  const auto start = Clock::now();
  const auto measure_from = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.warmup_s));
  const auto end = measure_from + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.duration_s));
  const std::string payload(o.message_bytes, 'x');
  std::vector<std::thread> threads;

  auto box_of = [&](unsigned i) {
    return o.mailboxes <= 1 ? o.mailbox : o.mailbox + "-" + std::to_string(i % o.mailboxes);
  };
  auto note_error = [&](const std::string& what) {
    std::lock_guard<std::mutex> lock(totals.mutex);
    totals.errors += 1;
    if (totals.first_error.empty()) totals.first_error = what;
  };

  for (unsigned p = 0; p < o.producers; ++p) {
    threads.emplace_back([&, p] {
      std::string error;
      auto client = Client::connect(o.connect, &error);
      if (!client) return note_error("connect: " + error);
      Histogram latency;
      uint64_t count = 0;
      const std::string key = o.prefix + "/" + box_of(p);
      const double per_producer_rate = o.rate_per_second > 0 ? o.rate_per_second / o.producers : 0;
      const auto interval = per_producer_rate > 0
                                ? std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / per_producer_rate))
                                : Clock::duration::zero();
      auto next_send = Clock::now();
      uint64_t seq = 0;
      zenoh::GetOptions options;
      options.timeout_ms = kQueryTimeoutMs;
      options.payload = payload;
      while (Clock::now() < end) {
        if (per_producer_rate > 0) {
          std::this_thread::sleep_until(next_send);
        } else {
          next_send = Clock::now();
        }
        const auto intended = next_send;
        next_send += interval;
        if (!o.acknowledged) {
          client->publish(key, payload, std::nullopt);
          if (intended >= measure_from) ++count;
          continue;
        }
        std::string selector = key + "/put";
        if (o.rid) selector += "?rid=b" + std::to_string(p) + "-" + std::to_string(seq++);
        for (;;) {
          auto replies = client->query(selector, options);
          if (!replies.empty() && replies[0].ok) break;
          if (replies.empty() || retryable(replies[0])) {
            if (Clock::now() >= end) break;
            continue;  // retry (with the same rid, if any)
          }
          note_error(replies[0].payload);
          break;
        }
        const auto done = Clock::now();
        if (intended >= measure_from && done <= end) {
          latency.record(micros_between(intended, done));
          ++count;
        }
      }
      std::lock_guard<std::mutex> lock(totals.mutex);
      totals.put_latency.merge(latency);
      totals.puts += count;
    });
  }

  for (unsigned c = 0; c < o.consumers; ++c) {
    threads.emplace_back([&, c] {
      std::string error;
      auto client = Client::connect(o.connect, &error);
      if (!client) return note_error("connect: " + error);
      Histogram latency;
      uint64_t messages = 0;
      uint64_t seq = 0;
      const std::string key = o.prefix + "/" + box_of(c);
      zenoh::GetOptions options;
      options.timeout_ms = kQueryTimeoutMs;
      while (Clock::now() < end) {
        std::string selector = key + "/consume?wait=" + kConsumeWait;
        if (o.batch > 1) selector += ";n=" + std::to_string(o.batch);
        if (o.rid) selector += ";rid=c" + std::to_string(c) + "-" + std::to_string(seq++);
        const auto sent = Clock::now();
        auto replies = client->query(selector, options);
        const auto done = Clock::now();
        if (replies.empty()) continue;
        if (!replies[0].ok) {
          auto err = nlohmann::json::parse(replies[0].payload, nullptr, false);
          const std::string code = err.is_object() ? err.value("code", "") : "";
          if (code != "empty" && !retryable(replies[0])) note_error(replies[0].payload);
          if (o.rid && retryable(replies[0])) --seq;  // retry with the same rid
          continue;
        }
        if (sent >= measure_from && done <= end) {
          latency.record(micros_between(sent, done));
          messages += messages_in(replies[0], o.batch > 1);
        }
      }
      std::lock_guard<std::mutex> lock(totals.mutex);
      totals.consume_latency.merge(latency);
      totals.messages += messages;
    });
  }
  for (auto& t : threads) t.join();

  const double seconds = o.duration_s;
  auto ms = [](uint64_t us) { return static_cast<double>(us) / 1000.0; };
  auto summary = [&](const Histogram& h) {
    return nlohmann::json{{"count", h.count()},         {"p50_ms", ms(h.quantile(0.50))},
                          {"p90_ms", ms(h.quantile(0.90))}, {"p99_ms", ms(h.quantile(0.99))},
                          {"p999_ms", ms(h.quantile(0.999))}, {"max_ms", ms(h.max())}};
  };
  nlohmann::json report = {
      {"producers", o.producers},
      {"consumers", o.consumers},
      {"message_bytes", o.message_bytes},
      {"acknowledged", o.acknowledged},
      {"batch", o.batch},
      {"rid", o.rid},
      {"target_rate_per_second", o.rate_per_second},
      {"duration_s", o.duration_s},
      {"warmup_s", o.warmup_s},
      {"puts_per_second", static_cast<double>(totals.puts) / seconds},
      {"messages_consumed_per_second", static_cast<double>(totals.messages) / seconds},
      {"put_latency", summary(totals.put_latency)},
      {"consume_latency", summary(totals.consume_latency)},
      {"errors", totals.errors},
  };
  if (!totals.first_error.empty()) report["first_error"] = totals.first_error;
  if (json) {
    std::printf("%s\n", report.dump().c_str());
  } else {
    std::printf("%u producers, %u consumers, %zu B messages, %s puts, batch %u, rid %s, %s, %.0f s (+%.0f s warm-up)\n",
                o.producers, o.consumers, o.message_bytes, o.acknowledged ? "acknowledged" : "fire-and-forget",
                o.batch, o.rid ? "on" : "off",
                o.rate_per_second > 0 ? ("target " + std::to_string(static_cast<long>(o.rate_per_second)) + "/s").c_str()
                                      : "closed loop",
                o.duration_s, o.warmup_s);
    std::printf("  puts:     %10.0f /s", report["puts_per_second"].get<double>());
    if (o.acknowledged) {
      const auto& h = totals.put_latency;
      std::printf("   latency ms p50 %.2f p90 %.2f p99 %.2f p99.9 %.2f max %.2f", ms(h.quantile(0.5)),
                  ms(h.quantile(0.9)), ms(h.quantile(0.99)), ms(h.quantile(0.999)), ms(h.max()));
    }
    std::printf("\n  consumed: %10.0f /s", report["messages_consumed_per_second"].get<double>());
    const auto& c = totals.consume_latency;
    std::printf("   latency ms p50 %.2f p90 %.2f p99 %.2f p99.9 %.2f max %.2f\n", ms(c.quantile(0.5)),
                ms(c.quantile(0.9)), ms(c.quantile(0.99)), ms(c.quantile(0.999)), ms(c.max()));
    if (totals.errors) std::printf("  errors: %llu (first: %s)\n", static_cast<unsigned long long>(totals.errors),
                                   totals.first_error.c_str());
  }
  return totals.errors == 0 ? 0 : 1;
}

}  // namespace mailbox
