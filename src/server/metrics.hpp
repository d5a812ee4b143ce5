// metrics.hpp: the node's numbers for operators, in Prometheus' text
// exposition format (version 0.0.4) and as JSON for the status page.
//
// What it is for: one place that names every metric (docs/OPERATIONS.md,
// "Monitoring"), so the HTTP endpoint (`--metrics-listen`, /metrics) and the
// Zenoh admin key (`<prefix>/@cluster/node/<id>/metrics`) give the same
// numbers. Names follow Prometheus' conventions: `mailbox_` prefix, base
// units (`_seconds`, `_bytes`), `_total` for counters, histograms for
// latencies.
//
// RequestMetrics is written by the service's threads (Zenoh callbacks, the
// Raft loop's callbacks, the reply worker) with relaxed atomics and read by
// any thread. The formatting functions are pure: they take a MetricsInput,
// a plain copy of everything (gathered by `gather_metrics` from the node's
// thread-safe status snapshot), so a scrape never blocks the Raft loop or a
// Zenoh callback. Ownership: plain values.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/errors.hpp"
#include "replication/raft_node.hpp"
#include "util/latency_histogram.hpp"

namespace mailbox {

// Slots for operations and reply codes; the service's operations and codes
// must fit (asserted when counted).
inline constexpr size_t kMaxMetricOperations = 32;
inline constexpr size_t kMaxMetricCodes = 32;

// Why a publication (fire-and-forget put) was not stored.
enum class DropReason : uint8_t {
  kInvalid = 0,       // bad key, empty or too large payload, long encoding
  kUnauthorized = 1,  // no valid token granting put
  kOverload = 2,      // too many held or in flight
  kExpired = 3,       // held longer than the hold limit without a leader
  kShutdown = 4,      // the node stopped while holding it
  kRefused = 5,       // the leader (or this node's Raft) refused to store it
};
inline constexpr size_t kDropReasons = 6;
std::string_view drop_reason_name(DropReason reason);

// Requests served, by operation and reply code, and latency by operation.
class RequestMetrics {
 public:
  // `operation` is a slot (< kMaxMetricOperations) named once by
  // `name_operation`; unnamed slots are not exported.
  void name_operation(size_t operation, std::string_view name);
  void count(size_t operation, ErrorCode code);
  void record_latency_us(size_t operation, uint64_t us) { latency_[slot(operation)].record(us); }

  struct Row {
    std::string operation;
    std::string code;
    uint64_t count = 0;
  };
  struct Latency {
    std::string operation;
    HistogramSnapshot histogram;
  };
  std::vector<Row> rows() const;
  std::vector<Latency> latencies() const;  // operations with at least one sample

 private:
  static size_t slot(size_t operation);
  std::array<std::array<std::atomic<uint64_t>, kMaxMetricCodes>, kMaxMetricOperations> counts_{};
  std::array<LatencyHistogram, kMaxMetricOperations> latency_{};
  std::array<std::string, kMaxMetricOperations> names_{};  // set before serving starts
};

// Everything one exposition shows, copied.
struct MetricsInput {
  uint64_t node_id = 0;
  std::string cluster;
  RaftNodeStatus raft;
  MailboxOverview mailboxes;
  std::vector<RequestMetrics::Row> requests;
  std::vector<RequestMetrics::Latency> request_latency;
  std::array<uint64_t, kDropReasons> publications_dropped{};
  uint64_t publications_received = 0;
  uint64_t publications_forwarded = 0;
  uint64_t queries_received = 0;
  uint64_t queries_forwarded = 0;
  uint64_t rejected_overload = 0;
  // Zenoh sessions open to this node's router, by the other end's kind
  // (clients; peers and routers: other nodes); not shown when unknown.
  struct ZenohSessions {
    uint64_t clients = 0;
    uint64_t peers = 0;
    uint64_t routers = 0;
  };
  std::optional<ZenohSessions> zenoh_sessions;
  double uptime_seconds = 0;
};

// The Prometheus text exposition of `in` (ends with a newline).
std::string prometheus_text(const MetricsInput& in);
// The status page's JSON: this node's view (roles, lag, totals, the
// deepest and dead-letter mailboxes, request counts and latency quantiles).
std::string status_page_json(const MetricsInput& in);

// The numeric value of metric `name` with exactly the labels `labels`
// (e.g. `op="put",code="ok"`, or empty) in an exposition; false if absent.
// For tests and tools.
bool find_metric_value(std::string_view exposition, std::string_view name, std::string_view labels, double* value);

}  // namespace mailbox
