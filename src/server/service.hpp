// service.hpp: the mailbox service at the Zenoh edge.
//
// What it is for: declares the queryable `<prefix>/**`, the subscriber
// `<prefix>/*` and the cluster administration queryable
// `<prefix>/@cluster/node/*/*`, validates every request
// (server/request.hpp), acts on it or hands it to the node that acts, and
// answers with the shapes in server/replies.hpp. Every query gets exactly
// one answer: a result, or an error reply; never an empty stream while the
// service runs.
//
// How a request reaches the leader (docs/ARCHITECTURE.md): a node's Zenoh
// router is not connected to the other nodes' routers, so a client's query
// or publication reaches only the node the client is connected to, once,
// whatever query target it uses. That node acts on it if it leads;
// otherwise it hands it to the leader over the Raft transport
// (RaftNode::forward: at most once, never duplicated by the network) and
// relays the leader's replies. A request that finds no leader known waits
// up to limits::kMaxLeaderWaitMs for one, then gets `unavailable`; a
// forwarded one whose answer is lost gets `unknown_outcome`; a node that no
// longer leads answers "not the leader" and the request goes on to the
// leader it names (limits::kMaxForwardHops). Status and membership
// requests go to the node they name the same way.
//
// A request flows: Zenoh callback (parse, validate, admit) -> [forward to
// the leader -> its forwarded-request thread] -> RaftNode inbox -> loop
// thread (batch, replicate, apply) -> ReplyWorker (format, reply, finish
// the query; for a forwarded request, send the answer back) -> [on the
// first node: the reply worker relays it to the client].
//
// The RaftNode must be stopped (so its callbacks have run) before the
// service is destroyed: pending callbacks refer to the service.
//
// Threads: `start`/`stop_accepting`/`drain_replies` from the owning thread.
// Zenoh callbacks only parse and enqueue; they never send (the bridge
// asserts it). Requests forwarded here are parsed on the forwarded-request
// thread. Each request is owned by exactly one holder at a time (the
// callback, a pending Raft or forwarding callback, the waiting list, then
// the reply worker), so its last reference, whose release finishes it, is
// always dropped on the reply worker. The RaftNode and the Zenoh session
// must outlive the service.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "auth/token.hpp"
#include "auth/verifier.hpp"
#include "bridge/cpp/zenoh_bridge.hpp"
#include "core/limits.hpp"
#include "replication/raft_node.hpp"
#include "server/exchange.hpp"
#include "server/forwarding.hpp"
#include "server/metrics.hpp"
#include "server/reply_worker.hpp"
#include "server/request.hpp"

namespace mailbox {

struct ServiceOptions {
  std::string prefix = "forge/mailbox";
  uint64_t node_id = 1;
  std::string cluster_name = "mailbox";  // shown by metrics and the status page
  size_t max_payload_bytes = limits::kDefaultMaxPayloadBytes;
  int64_t default_ttl_ms = limits::kDefaultTtlMs;
  RequestLimits request_limits;
  // Access control (SPEC v2): when set, every query and publication must
  // carry a valid token in its attachment (`unauthorized` otherwise) that
  // grants the operation on the mailbox (`forbidden` otherwise), and the
  // membership changes (add, remove, transfer) need the `admin` right.
  // Null: no token is asked for (the open, loopback-only mode). Shared with
  // mailboxd, which replaces its keys on SIGHUP.
  std::shared_ptr<auth::TokenVerifier> verifier;
};

// Counters for logs and status; monotonic, relaxed.
struct ServiceCounters {
  std::atomic<uint64_t> queries{0};               // from this node's clients
  std::atomic<uint64_t> queries_forwarded{0};     // of those, handed to the leader
  std::atomic<uint64_t> requests_from_nodes{0};   // handed here by other nodes
  std::atomic<uint64_t> publications{0};          // from this node's clients
  std::atomic<uint64_t> publications_dropped{0};
  std::atomic<uint64_t> publications_forwarded{0};  // handed to the leader
  std::atomic<uint64_t> rejected_overload{0};
  std::atomic<uint64_t> unauthorized{0};               // queries refused: no valid token
  std::atomic<uint64_t> forbidden{0};                  // queries refused: the token lacks the right
  std::atomic<uint64_t> publications_unauthorized{0};  // dropped (also in publications_dropped)
  std::array<std::atomic<uint64_t>, kDropReasons> publications_dropped_by{};  // by DropReason
};

// The right a request needs (SPEC v2: ack, nack and extend need `ack`).
auth::Right required_right(Operation op);

class MailboxService {
 public:
  MailboxService(ServiceOptions options, zenoh::Session& session, RaftNode& node);
  ~MailboxService();
  MailboxService(const MailboxService&) = delete;
  MailboxService& operator=(const MailboxService&) = delete;

  Status start();
  // Undeclares (no new requests) and answers what waits for a leader;
  // requests other nodes forward from then on get "not the leader". Call
  // before stopping the RaftNode; `drain_replies` after it. Idempotent.
  void stop_accepting();
  // Waits until every admitted request has been answered.
  void drain_replies();

  const ServiceCounters& counters() const { return counters_; }

  // Operability (issue #14), from any thread; never blocks on the Raft loop
  // or a Zenoh callback. `metrics_input`: this node's numbers.
  // `cluster_statuses`: every other member's status JSON (admin `status`),
  // asked over the Raft transport and waited for at most `timeout_ms`; a
  // member that does not answer is left out. Not from a Zenoh callback.
  MetricsInput metrics_input() const;
  std::vector<std::string> cluster_statuses(int64_t timeout_ms);
  // The status page's JSON (status_page_json) with "cluster_nodes": every
  // reachable member's status, this node's first.
  std::string status_page(int64_t timeout_ms);
  // Slots of RequestMetrics beyond the operations.
  static constexpr int kMetricSlotPublication = kMaxMetricOperations - 2;
  static constexpr int kMetricSlotUnparsed = kMaxMetricOperations - 1;

 private:
  // Zenoh callbacks.
  void on_query(zenoh::Query&& query);
  void on_admin_query(zenoh::Query&& query);
  void on_publication(const zenoh::Sample& sample);
  // RaftNode's forward handler (loop thread) and its worker.
  void on_forwarded(uint64_t from, std::string request, ForwardResponder respond);
  void serve_forwarded(uint64_t from, std::string request, ForwardResponder respond);

  // A client request on the mailbox key space: acted on here if this node
  // leads, else handed to the leader.
  void serve_request(SharedExchange exchange);
  void act(SharedExchange exchange, Request&& request);
  void forward_request(SharedExchange exchange, int hops, uint64_t leader_hint, int64_t not_before_ms);
  void relay_answer(SharedExchange exchange, Status status, const std::string& answer, int hops);
  bool leads() const;

  // Requests and publications that wait for a leader to be known (role
  // watcher thread: every kRoleCheckInterval).
  void watch_role();
  void settle_waiting(bool all);

  // Administration: status here, or the node named.
  void serve_admin(SharedExchange exchange, bool forwarded);
  void serve_admin_here(SharedExchange exchange, std::string_view op);
  void forward_admin(SharedExchange exchange, uint64_t node);

  // Publications.
  struct HeldPublication {
    std::string mailbox;
    std::string encoding;
    std::string payload;
    std::optional<std::string> attachment;
    uint64_t publication_id = 0;
    int64_t arrival_ms = 0;  // steady clock
    PublicationOptions options;  // from the attachment (delay, ttl)
  };
  void hold_publication(HeldPublication publication);
  void forward_held_publications();
  void forward_publication(HeldPublication publication, uint64_t leader);
  void store_publication(std::string mailbox, std::string encoding, std::string payload, uint64_t publication_id,
                         const PublicationOptions& options, std::function<void(Status)> done);

  // Checks the token in `attachment` against `right` on `mailbox` (right
  // kAdmin: no mailbox). OK when access control is off.
  Status check_token(std::optional<std::string_view> attachment, auth::Right right, std::string_view mailbox);
  // A publication has no reply: one without a valid token granting `put` on
  // its mailbox is dropped and counted.
  bool publication_authorized(std::optional<std::string_view> attachment, const std::string& mailbox);

  // Operability (service_operability.cpp).
  void name_metric_slots();
  void count_dropped(DropReason reason, uint64_t n = 1);
  void count_reply(const Exchange& exchange, ErrorCode code);

  bool admit();
  void release() { inflight_.fetch_sub(1, std::memory_order_relaxed); }

  void submit_put(SharedExchange exchange, Request&& request);
  void submit_consume(SharedExchange exchange, Request&& request);
  static size_t held_bytes(const Exchange& exchange);
  void submit_read(SharedExchange exchange, ReadRequest&& read, bool batch_shape);
  void submit_settle(SharedExchange exchange, Request&& request);  // ack, nack, extend
  void submit_bulk(SharedExchange exchange, Request&& request);    // purge, redrive
  void submit_list(SharedExchange exchange, Request&& request);

  // Queue replies on the worker; each releases one admission.
  void reply_error(SharedExchange exchange, Status status);
  void reply_messages(SharedExchange exchange, std::string mailbox, std::vector<DeliveredMessage> messages,
                      bool batch_shape);
  void reply_json(SharedExchange exchange, std::string json);
  void reply_json_as(SharedExchange exchange, std::string key, std::string json);

  ServiceOptions options_;
  zenoh::Session& session_;
  RaftNode& node_;
  ReplyWorker worker_;
  ReplyWorker forwarded_worker_{"mbx-forwarded"};  // requests other nodes hand here
  std::atomic<bool> accepting_{false};
  std::mutex declarations_mutex_;  // guards the declarations below
  std::unique_ptr<zenoh::Queryable> queryable_;
  std::unique_ptr<zenoh::Queryable> admin_queryable_;
  std::unique_ptr<zenoh::Subscriber> subscriber_;

  struct Waiting {
    SharedExchange exchange;
    int hops = 0;
    int64_t deadline_ms = 0;    // steady clock: `unavailable` then
    int64_t not_before_ms = 0;  // steady clock: not handed on before
  };
  std::mutex waiting_mutex_;
  std::vector<Waiting> waiting_;  // bounded by limits::kMaxWaitingForLeader

  std::mutex held_mutex_;
  std::deque<HeldPublication> held_publications_;  // bounded: limits::kMaxHeldPublications*
  size_t held_publication_bytes_ = 0;               // guarded by held_mutex_

  std::thread role_watcher_;
  std::mutex watcher_mutex_;
  std::condition_variable watcher_wakeup_;
  bool watcher_stop_ = false;
  std::atomic<size_t> inflight_{0};
  ServiceCounters counters_;
  RequestMetrics request_metrics_;
  std::chrono::steady_clock::time_point started_at_ = std::chrono::steady_clock::now();
};

}  // namespace mailbox
