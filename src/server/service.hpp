// service.hpp: the mailbox service at the Zenoh edge.
//
// What it is for: declares the queryable `<prefix>/**` and the subscriber
// `<prefix>/*`, validates every request (server/request.hpp), hands valid
// ones to the RaftNode and answers with the shapes in server/replies.hpp.
// Every query gets an answer: a result, or an error reply; never an empty
// stream while the service runs.
//
// In a cluster the routers of all nodes are connected and every node
// declares `<prefix>/**` (incomplete) for its whole life, so a query reaches
// every node whichever router the client uses (Zenoh sends a default-target
// query to every matching incomplete queryable). Only the leader acts on it.
// The leader also declares a liveliness token `<prefix>/@cluster/leader/<id>`;
// a follower that sees the token of the leader it knows finishes the query
// without a reply (the leader answers), and one that sees no live leader
// (election, crash, partition) answers `unavailable`, so a client gets one
// reply, not an empty stream. A query sent to all queryables therefore
// consumes at most what it asked for. (Declaring the queryable only on the
// leader was tried: Zenoh 1.10 routers that join after the same key
// expression was declared and undeclared elsewhere never route to the new
// declaration.) Publications reach every node; only the leader stores them.
// Each node also serves `<prefix>/@cluster/node/<id>/...` (status, add,
// remove, transfer) for `mailbox cluster`.
//
// The RaftNode must be stopped (so its callbacks have run) before the
// service is destroyed: pending callbacks refer to the service.
//
// A request flows: Zenoh callback (parse, validate, admit) -> RaftNode inbox
// -> loop thread (batch, replicate, apply) -> ReplyWorker (format, reply,
// finish the query).
//
// Threads: `start`/`stop` from the owning thread. Zenoh callbacks only parse
// and enqueue; they never send (no reply, no finished query: the bridge
// asserts it). Each query is owned by exactly one holder at a time (the
// callback, then a pending Raft callback or the held list, then the reply
// worker), so its last reference, whose release finishes it, is always
// dropped on the reply worker. The RaftNode and the Zenoh session must outlive the service.
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

#include "bridge/cpp/zenoh_bridge.hpp"
#include "core/limits.hpp"
#include "replication/raft_node.hpp"
#include "server/reply_worker.hpp"
#include "server/request.hpp"

namespace mailbox {

struct ServiceOptions {
  std::string prefix = "forge/mailbox";
  uint64_t node_id = 1;
  size_t max_payload_bytes = limits::kDefaultMaxPayloadBytes;
  int64_t default_ttl_ms = limits::kDefaultTtlMs;
  RequestLimits request_limits;
};

// Counters for logs and status; monotonic, relaxed.
struct ServiceCounters {
  std::atomic<uint64_t> queries{0};
  std::atomic<uint64_t> publications{0};
  std::atomic<uint64_t> publications_dropped{0};
  std::atomic<uint64_t> publications_forwarded{0};  // held by this follower, then sent to the leader
  std::atomic<uint64_t> rejected_overload{0};
};

class MailboxService {
 public:
  MailboxService(ServiceOptions options, zenoh::Session& session, RaftNode& node);
  ~MailboxService();
  MailboxService(const MailboxService&) = delete;
  MailboxService& operator=(const MailboxService&) = delete;

  Status start();
  // The key of this node's cluster administration queryable.
  std::string admin_key() const;
  // Undeclares (no new requests), then waits until every admitted request
  // has been answered. Call before stopping the RaftNode... and after: see
  // mailboxd's shutdown order. Idempotent.
  void stop_accepting();
  void drain_replies();

  const ServiceCounters& counters() const { return counters_; }

 private:
  using SharedQuery = std::shared_ptr<zenoh::Query>;

  void on_query(zenoh::Query&& query);
  void on_admin_query(zenoh::Query&& query);
  void on_forwarded_publication(SharedQuery query);
  void watch_role();
  void update_declarations();
  void note_leader_token(std::string_view key, bool alive);
  void resync_leader_tokens();
  std::string leader_token_prefix() const { return options_.prefix + "/@cluster/leader/"; }
  // False (and the query answered, or finished for the leader to answer)
  // when this node must not act on it.
  bool may_act(SharedQuery& query);
  bool other_leader_token_seen() const;
  std::vector<uint64_t> leader_tokens_seen() const;  // node ids, in no particular order
  std::string unavailable_message(uint64_t leader) const;
  void settle_undecided(bool all);
  void on_publication(const zenoh::Sample& sample);
  // Role watcher: hands held publications to the leader (or to this node's
  // Raft when it leads now), drops those held too long.
  void forward_held_publications();
  void store_publication(std::string mailbox, std::string encoding, std::string payload, uint64_t publication_id,
                         std::function<void(Status)> done);
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
  // Ends the query's reply stream without a reply (another node answers it),
  // on the worker: finishing a query is a Zenoh send.
  void finish_without_reply(SharedQuery query);

  ServiceOptions options_;
  zenoh::Session& session_;
  RaftNode& node_;
  ReplyWorker worker_;
  std::mutex declarations_mutex_;  // guards the declarations below
  std::unique_ptr<zenoh::Queryable> queryable_;
  std::unique_ptr<zenoh::LivelinessToken> leader_token_;  // while leading
  std::unique_ptr<zenoh::Queryable> admin_queryable_;
  std::unique_ptr<zenoh::Subscriber> subscriber_;
  std::unique_ptr<zenoh::Subscriber> leader_watch_;
  mutable std::mutex leaders_mutex_;
  std::vector<uint64_t> live_leader_tokens_;  // node ids whose leader token is alive
  int64_t last_token_resync_ms_ = 0;           // role watcher only
  std::atomic<int> token_resyncs_in_flight_{0};
  // The latest completed resync (liveliness get of the leader tokens plus a
  // status query to every node): when it started (steady ms) and whether a
  // node other than this one answered that it leads. A held query is
  // answered `unavailable` only after a resync that started after it arrived
  // found no leader.
  std::mutex resync_mutex_;
  int64_t completed_resync_started_ms_ = 0;  // guarded by resync_mutex_
  bool completed_resync_found_leader_ = false;  // guarded by resync_mutex_
  std::atomic<int64_t> newest_undecided_arrival_ms_{0};
  struct Undecided {
    SharedQuery query;
    int64_t arrival_ms = 0;   // steady clock
    int64_t deadline_ms = 0;  // steady clock: grace period over
  };
  std::mutex undecided_mutex_;
  std::vector<Undecided> undecided_;  // bounded by limits::kMaxUndecidedQueries
  struct HeldPublication {
    std::string mailbox;
    std::string encoding;
    std::string payload;
    uint64_t publication_id = 0;
    int64_t arrival_ms = 0;  // steady clock
  };
  std::mutex held_mutex_;
  std::deque<HeldPublication> held_publications_;  // bounded: limits::kMaxHeldPublications*
  size_t held_publication_bytes_ = 0;               // guarded by held_mutex_
  std::thread role_watcher_;
  std::mutex watcher_mutex_;
  std::condition_variable watcher_wakeup_;
  bool watcher_stop_ = false;
  std::atomic<size_t> inflight_{0};
  ServiceCounters counters_;
};

}  // namespace mailbox
