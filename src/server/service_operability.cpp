// service_operability.cpp: MailboxService's numbers for operators
// (metrics, the status page): counting replies and dropped publications,
// gathering a MetricsInput, asking the other members for their status.
// Kept apart from the request paths in service.cpp. Threads: see
// service.hpp (count_* from the reply worker and callbacks; the rest from
// the HTTP endpoint's workers).
#include <condition_variable>
#include <mutex>

#include "server/service.hpp"

namespace mailbox {

// One slot per operation, then publications and unparsed requests.
void MailboxService::name_metric_slots() {
  static_assert(kOperationCount <= kMetricSlotPublication, "a metric slot for every operation");
  for (int i = 0; i < kOperationCount; ++i) {
    request_metrics_.name_operation(i, operation_name(static_cast<Operation>(i)));
  }
  request_metrics_.name_operation(kMetricSlotPublication, "publication");
  request_metrics_.name_operation(kMetricSlotUnparsed, "unknown");
}

void MailboxService::count_dropped(DropReason reason, uint64_t n) {
  counters_.publications_dropped.fetch_add(n, std::memory_order_relaxed);
  counters_.publications_dropped_by[static_cast<size_t>(reason)].fetch_add(n, std::memory_order_relaxed);
}

void MailboxService::count_reply(const Exchange& exchange, ErrorCode code) {
  if (exchange.metric_slot < 0) return;
  request_metrics_.count(static_cast<size_t>(exchange.metric_slot), code);
  request_metrics_.record_latency_us(
      static_cast<size_t>(exchange.metric_slot),
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                std::chrono::steady_clock::now() - exchange.arrived_at)
                                .count()));
}

MetricsInput MailboxService::metrics_input() const {
  MetricsInput in;
  in.node_id = options_.node_id;
  in.cluster = options_.cluster_name;
  in.raft = node_.status();
  in.mailboxes = node_.mailbox_overview();
  in.requests = request_metrics_.rows();
  in.request_latency = request_metrics_.latencies();
  for (size_t i = 0; i < kDropReasons; ++i) {
    in.publications_dropped[i] = counters_.publications_dropped_by[i].load(std::memory_order_relaxed);
  }
  in.publications_received = counters_.publications.load(std::memory_order_relaxed);
  in.publications_forwarded = counters_.publications_forwarded.load(std::memory_order_relaxed);
  in.queries_received = counters_.queries.load(std::memory_order_relaxed);
  in.queries_forwarded = counters_.queries_forwarded.load(std::memory_order_relaxed);
  in.rejected_overload = counters_.rejected_overload.load(std::memory_order_relaxed);
  if (auto sessions = session_.session_counts()) {
    in.zenoh_sessions = MetricsInput::ZenohSessions{sessions->clients, sessions->peers, sessions->routers};
  }
  in.uptime_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_at_).count();
  return in;
}

std::vector<std::string> MailboxService::cluster_statuses(int64_t timeout_ms) {
  struct Gathered {
    std::mutex mutex;
    std::condition_variable done;
    std::vector<std::string> statuses;
    size_t outstanding = 0;
  };
  auto gathered = std::make_shared<Gathered>();
  const std::string base = options_.prefix + "/@cluster/node/";
  for (const RaftServerInfo& server : node_.status().configuration) {
    if (server.id == options_.node_id) continue;
    ForwardedRequest request;
    request.kind = ForwardedRequest::Kind::kAdmin;
    request.key = base + std::to_string(server.id) + "/status";
    {
      std::lock_guard<std::mutex> lock(gathered->mutex);
      gathered->outstanding += 1;
    }
    // The callback runs exactly once: on the loop thread, or here at once
    // when the node refuses (not running).
    node_.forward(server.id, encode_forwarded_request(request), timeout_ms,
                  [gathered](Status status, std::string answer) {
                    ForwardedAnswer decoded;
                    std::lock_guard<std::mutex> lock(gathered->mutex);
                    if (status.is_ok() && decode_forwarded_answer(answer, &decoded) && decoded.replies.size() == 1 &&
                        decoded.replies.front().ok) {
                      gathered->statuses.push_back(decoded.replies.front().payload);
                    }
                    gathered->outstanding -= 1;
                    gathered->done.notify_all();
                  });
  }
  std::unique_lock<std::mutex> lock(gathered->mutex);
  gathered->done.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return gathered->outstanding == 0; });
  return gathered->statuses;
}

}  // namespace mailbox
