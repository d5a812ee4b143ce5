// service.hpp: the mailbox service at the Zenoh edge.
//
// What it is for: declares the queryable `<prefix>/**` and the subscriber
// `<prefix>/*`, validates every request (server/request.hpp), hands valid
// ones to the RaftNode and answers with the shapes in server/replies.hpp.
// Every query gets an answer: a result, or an error reply; never an empty
// stream while the service runs.
//
// A request flows: Zenoh callback (parse, validate, admit) -> RaftNode inbox
// -> loop thread (batch, replicate, apply) -> ReplyWorker (format, reply,
// finish the query).
//
// Threads: `start`/`stop` from the owning thread. Zenoh callbacks only parse
// and enqueue. The RaftNode and the Zenoh session must outlive the service.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "bridge/cpp/zenoh_bridge.hpp"
#include "core/limits.hpp"
#include "replication/raft_node.hpp"
#include "server/reply_worker.hpp"
#include "server/request.hpp"

namespace mailbox {

struct ServiceOptions {
  std::string prefix = "forge/mailbox";
  size_t max_payload_bytes = limits::kDefaultMaxPayloadBytes;
  int64_t default_ttl_ms = limits::kDefaultTtlMs;
  RequestLimits request_limits;
};

// Counters for logs and status; monotonic, relaxed.
struct ServiceCounters {
  std::atomic<uint64_t> queries{0};
  std::atomic<uint64_t> publications{0};
  std::atomic<uint64_t> publications_dropped{0};
  std::atomic<uint64_t> rejected_overload{0};
};

class MailboxService {
 public:
  MailboxService(ServiceOptions options, zenoh::Session& session, RaftNode& node);
  ~MailboxService();
  MailboxService(const MailboxService&) = delete;
  MailboxService& operator=(const MailboxService&) = delete;

  Status start();
  // Undeclares (no new requests), then waits until every admitted request
  // has been answered. Call before stopping the RaftNode... and after: see
  // mailboxd's shutdown order. Idempotent.
  void stop_accepting();
  void drain_replies();

  const ServiceCounters& counters() const { return counters_; }

 private:
  using SharedQuery = std::shared_ptr<zenoh::Query>;

  void on_query(zenoh::Query&& query);
  void on_publication(const zenoh::Sample& sample);
  bool admit();
  void release() { inflight_.fetch_sub(1, std::memory_order_relaxed); }

  void submit_put(SharedQuery query, Request&& request);
  void submit_consume(SharedQuery query, Request&& request);
  void submit_read(SharedQuery query, ReadRequest&& read, bool batch_shape);
  void submit_settle(SharedQuery query, Request&& request);

  // Queue replies on the worker; each releases one admission.
  void reply_error(SharedQuery query, Status status);
  void reply_messages(SharedQuery query, std::string mailbox, std::vector<DeliveredMessage> messages,
                      bool batch_shape);
  void reply_json(SharedQuery query, std::string json);

  ServiceOptions options_;
  zenoh::Session& session_;
  RaftNode& node_;
  ReplyWorker worker_;
  std::unique_ptr<zenoh::Queryable> queryable_;
  std::unique_ptr<zenoh::Subscriber> subscriber_;
  std::atomic<size_t> inflight_{0};
  ServiceCounters counters_;
};

}  // namespace mailbox
