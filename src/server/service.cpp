#include "server/service.hpp"

#include "core/assert.hpp"
#include "server/replies.hpp"

#include <pthread.h>

#include <algorithm>
#include <cstdlib>
#include "util/log.hpp"

namespace mailbox {
namespace {
constexpr std::string_view kDefaultEncoding = "zenoh/bytes";
constexpr auto kRoleCheckInterval = std::chrono::milliseconds(20);

int64_t unix_now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

int64_t steady_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A non-zero 64-bit id of a publication from its Zenoh timestamp (FNV-1a).
uint64_t publication_id(std::string_view timestamp) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : timestamp) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h == 0 ? 1 : h;
}

std::optional<std::string> owned(std::optional<std::string_view> v) {
  if (!v) return std::nullopt;
  return std::string(*v);
}

ForwardedRequest forwarded_from(ForwardedRequest::Kind kind, const Exchange& exchange) {
  ForwardedRequest r;
  r.kind = kind;
  r.key = std::string(exchange.key());
  r.parameters = std::string(exchange.parameters());
  r.payload = owned(exchange.payload());
  r.encoding = owned(exchange.encoding());
  r.attachment = owned(exchange.attachment());
  return r;
}

// The replies another node gave, to this node's client (reply worker).
void relay_replies(Exchange& exchange, const ForwardedAnswer& answer) {
  for (const ForwardedReply& r : answer.replies) {
    if (r.ok) {
      exchange.reply(r.key, r.payload, r.encoding, r.attachment);
    } else {
      exchange.reply_error(r.payload, r.encoding);
    }
  }
}

Status unavailable_no_leader(uint64_t node_id) {
  return Status::error(ErrorCode::kUnavailable, "node " + std::to_string(node_id) +
                                                    " sees no leader: the cluster is electing one or has lost its "
                                                    "quorum; retry");
}

std::string status_json(uint64_t node_id, const RaftNodeStatus& s, const ServiceCounters& counters) {
  std::string out = "{\"id\":" + std::to_string(node_id);
  out += ",\"state\":";
  append_json_string(out, s.state);
  out += ",\"leader\":" + std::to_string(s.leader_id);
  out += ",\"term\":" + std::to_string(s.term);
  out += ",\"commit_index\":" + std::to_string(s.commit_index);
  out += ",\"applied_index\":" + std::to_string(s.applied_index);
  out += ",\"last_index\":" + std::to_string(s.last_index);
  out += ",\"voters\":" + std::to_string(s.voters);
  out += ",\"messages\":" + std::to_string(s.messages);
  out += ",\"parked_waiters\":" + std::to_string(s.parked_waiters);
  out += ",\"parked_waiter_bytes\":" + std::to_string(s.parked_waiter_bytes);
  out += ",\"waiters_refused\":" + std::to_string(s.waiters_refused);
  out += ",\"snapshots\":" + std::to_string(s.snapshots_taken);
  out += ",\"snapshots_installed\":" + std::to_string(s.snapshots_installed);
  out += ",\"snapshot_index\":" + std::to_string(s.snapshot_index);
  out += ",\"longest_snapshot_stall_us\":" + std::to_string(s.longest_snapshot_stall_us);
  out += std::string(",\"log_disk_full\":") + (s.log_disk_full ? "true" : "false");
  out += ",\"refused_disk_full\":" + std::to_string(s.refused_disk_full);
  out += ",\"disk_full_transfers\":" + std::to_string(s.disk_full_transfers);
  out += ",\"queries\":" + std::to_string(counters.queries.load(std::memory_order_relaxed));
  out += ",\"publications\":" + std::to_string(counters.publications.load(std::memory_order_relaxed));
  out += ",\"publications_dropped\":" + std::to_string(counters.publications_dropped.load(std::memory_order_relaxed));
  out += ",\"publications_forwarded\":" +
         std::to_string(counters.publications_forwarded.load(std::memory_order_relaxed));
  out += ",\"rejected_overload\":" + std::to_string(counters.rejected_overload.load(std::memory_order_relaxed));
  out += ",\"unauthorized\":" + std::to_string(counters.unauthorized.load(std::memory_order_relaxed));
  out += ",\"forbidden\":" + std::to_string(counters.forbidden.load(std::memory_order_relaxed));
  out += ",\"publications_unauthorized\":" +
         std::to_string(counters.publications_unauthorized.load(std::memory_order_relaxed));
  out += ",\"queries_forwarded\":" + std::to_string(counters.queries_forwarded.load(std::memory_order_relaxed));
  out += ",\"requests_from_nodes\":" + std::to_string(counters.requests_from_nodes.load(std::memory_order_relaxed));
  out += ",\"forwards_lost\":" + std::to_string(s.forwards_lost);
  out += ",\"transport_connections_refused\":" + std::to_string(s.transport_connections_refused);
  out += ",\"forwards_pending\":" + std::to_string(s.forwards_pending);
  out += ",\"configuration\":[";
  for (size_t i = 0; i < s.configuration.size(); ++i) {
    if (i) out += ",";
    out += "{\"id\":" + std::to_string(s.configuration[i].id) + ",\"address\":";
    append_json_string(out, s.configuration[i].address);
    out += ",\"role\":";
    append_json_string(out, s.configuration[i].role);
    out += "}";
  }
  out += "]}";
  return out;
}

}  // namespace

auth::Right required_right(Operation op) {
  switch (op) {
    case Operation::kPut: return auth::Right::kPut;
    case Operation::kConsume: return auth::Right::kConsume;
    case Operation::kPeek: return auth::Right::kPeek;
    case Operation::kStats: return auth::Right::kStats;
    case Operation::kAck:
    case Operation::kNack:
    case Operation::kExtend: return auth::Right::kAck;
    case Operation::kPurge: return auth::Right::kPurge;
    case Operation::kRedrive: return auth::Right::kRedrive;
    case Operation::kList: return auth::Right::kList;
  }
  return auth::Right::kAdmin;  // unreachable: the strictest
}

Status MailboxService::check_token(std::optional<std::string_view> attachment, auth::Right right,
                                   std::string_view mailbox) {
  if (!options_.verifier) return Status::ok();
  std::shared_ptr<const auth::TokenClaims> claims;
  Status s = options_.verifier->verify_attachment(attachment, unix_now_s(), &claims);
  if (!s.is_ok()) {
    counters_.unauthorized.fetch_add(1, std::memory_order_relaxed);
    return s;
  }
  s = auth::authorize(*claims, right, mailbox);
  if (!s.is_ok()) counters_.forbidden.fetch_add(1, std::memory_order_relaxed);
  return s;
}

bool MailboxService::publication_authorized(std::optional<std::string_view> attachment, const std::string& mailbox) {
  if (!options_.verifier) return true;
  std::shared_ptr<const auth::TokenClaims> claims;
  Status s = options_.verifier->verify_attachment(attachment, unix_now_s(), &claims);
  if (s.is_ok()) s = auth::authorize(*claims, auth::Right::kPut, mailbox);
  if (s.is_ok()) return true;
  counters_.publications_unauthorized.fetch_add(1, std::memory_order_relaxed);
  count_dropped(DropReason::kUnauthorized);
  log_request_debug("publication", mailbox.c_str(), "dropped: %s", s.message.c_str());
  return false;
}

MailboxService::MailboxService(ServiceOptions options, zenoh::Session& session, RaftNode& node)
    : options_(std::move(options)), session_(session), node_(node) {
  name_metric_slots();
}

std::string MailboxService::status_page(int64_t timeout_ms) {
  std::string json = status_page_json(metrics_input());
  MAILBOX_ASSERT(!json.empty() && json.back() == '}', "status page JSON is an object");
  json.pop_back();
  json += ",\"cluster_nodes\":[" + status_json(options_.node_id, node_.status(), counters_);
  for (const auto& peer : cluster_statuses(timeout_ms)) json += "," + peer;
  return json + "]}";
}

MailboxService::~MailboxService() {
  node_.set_forward_handler(nullptr);
  stop_accepting();
  drain_replies();
}

Status MailboxService::start() {
  std::string error;
  {
    std::lock_guard<std::mutex> lock(declarations_mutex_);
    // Complete: a client's router that sees several (a router connected to
    // more than one node: see docs/OPERATIONS.md) sends a default query to
    // the nearest one only.
    queryable_ = session_.declare_queryable(
        options_.prefix + "/**", true, [this](zenoh::Query&& q) { on_query(std::move(q)); }, &error);
    if (!queryable_) return Status::error(ErrorCode::kInternal, "cannot declare queryable: " + error);
    admin_queryable_ = session_.declare_queryable(
        options_.prefix + "/@cluster/node/*/*", true, [this](zenoh::Query&& q) { on_admin_query(std::move(q)); },
        &error);
    if (!admin_queryable_) return Status::error(ErrorCode::kInternal, "cannot declare queryable: " + error);
    subscriber_ = session_.declare_subscriber(
        options_.prefix + "/*", [this](const zenoh::Sample& s) { on_publication(s); }, &error);
    if (!subscriber_) return Status::error(ErrorCode::kInternal, "cannot declare subscriber: " + error);
  }
  accepting_.store(true);
  node_.set_forward_handler([this](uint64_t from, std::string request, ForwardResponder respond) {
    on_forwarded(from, std::move(request), std::move(respond));
  });
  role_watcher_ = std::thread([this] { watch_role(); });
  return Status::ok();
}

void MailboxService::stop_accepting() {
  accepting_.store(false);
  {
    std::lock_guard<std::mutex> lock(watcher_mutex_);
    watcher_stop_ = true;
  }
  watcher_wakeup_.notify_all();
  if (role_watcher_.joinable()) role_watcher_.join();
  {
    std::lock_guard<std::mutex> lock(declarations_mutex_);
    queryable_.reset();
    admin_queryable_.reset();
    subscriber_.reset();
  }
  settle_waiting(/*all=*/true);
  std::lock_guard<std::mutex> lock(held_mutex_);
  count_dropped(DropReason::kShutdown, held_publications_.size());
  held_publications_.clear();
  held_publication_bytes_ = 0;
}

void MailboxService::drain_replies() {
  settle_waiting(/*all=*/true);
  forwarded_worker_.stop();  // its tasks may still queue replies
  worker_.stop();
}

bool MailboxService::leads() const {
  // A cluster of one waits (boundedly) for itself to win its election.
  return node_.is_leader() || (node_.leader_id() == 0 && node_.single_voter());
}

bool MailboxService::admit() {
  if (inflight_.fetch_add(1, std::memory_order_relaxed) >= limits::kMaxInflightRequests) {
    inflight_.fetch_sub(1, std::memory_order_relaxed);
    counters_.rejected_overload.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  return true;
}

void MailboxService::watch_role() {
  pthread_setname_np(pthread_self(), "mbx-roles");
  std::unique_lock<std::mutex> wait_lock(watcher_mutex_);
  while (!watcher_wakeup_.wait_for(wait_lock, kRoleCheckInterval, [this] { return watcher_stop_; })) {
    settle_waiting(/*all=*/false);
    forward_held_publications();
  }
}

// ---------------------------------------------------------------- requests

void MailboxService::on_query(zenoh::Query&& raw) {
  counters_.queries.fetch_add(1, std::memory_order_relaxed);
  serve_request(std::make_shared<ZenohExchange>(std::move(raw)));
}

// Admission and validation happen on the node the client reached: bad input
// is answered there. A valid request is acted on here if this node leads,
// handed to the leader otherwise.
void MailboxService::serve_request(SharedExchange exchange) {
  exchange->metric_slot = kMetricSlotUnparsed;
  if (!admit()) {
    // Not admitted: answer without counting it (bounded by Zenoh's own queues).
    inflight_.fetch_add(1, std::memory_order_relaxed);
    return reply_error(std::move(exchange), Status::error(ErrorCode::kUnavailable, "server overloaded; retry later"));
  }
  // Access control: no valid token is `unauthorized` before anything else
  // is looked at; a valid one without the right is `forbidden`. Checked
  // where the client's query arrived and again on the leader.
  std::shared_ptr<const auth::TokenClaims> claims;
  if (options_.verifier) {
    Status s = options_.verifier->verify_attachment(exchange->attachment(), unix_now_s(), &claims);
    if (!s.is_ok()) {
      counters_.unauthorized.fetch_add(1, std::memory_order_relaxed);
      return reply_error(std::move(exchange), std::move(s));
    }
  }
  Request request;
  Status s = parse_query(options_.prefix, exchange->key(), exchange->parameters(), options_.request_limits, &request);
  if (!s.is_ok()) return reply_error(std::move(exchange), std::move(s));
  exchange->metric_slot = static_cast<int>(request.op);
  if (claims) {
    // A list names a pattern, not a mailbox: it needs the right at all
    // here, and shows only the mailboxes the token covers (submit_list).
    s = request.op == Operation::kList
            ? (claims->has_right(auth::Right::kList)
                   ? Status::ok()
                   : Status::error(ErrorCode::kForbidden, "this token does not grant list"))
            : auth::authorize(*claims, required_right(request.op), request.mailbox);
    if (!s.is_ok()) {
      counters_.forbidden.fetch_add(1, std::memory_order_relaxed);
      return reply_error(std::move(exchange), std::move(s));
    }
  }
  if (request.op != Operation::kPut && exchange->payload().has_value() && !exchange->payload()->empty()) {
    return reply_error(std::move(exchange), Status::error(ErrorCode::kInvalidArgument,
                                                          std::string(operation_name(request.op)) +
                                                              " takes no payload"));
  }
  if (leads()) return act(std::move(exchange), std::move(request));
  exchange->metric_slot = -1;  // counted by the node that answers it
  if (auto* forwarded = dynamic_cast<ForwardedExchange*>(exchange.get())) {
    // Handed here by a node that thought this one leads: it goes on.
    forwarded->answer_not_leader(node_.leader_id());
    worker_.push([this, exchange = std::move(exchange)]() mutable {
      exchange.reset();
      release();
    });
    return;
  }
  forward_request(std::move(exchange), 0, 0, 0);
}

void MailboxService::act(SharedExchange exchange, Request&& request) {
  exchange->metric_slot = static_cast<int>(request.op);  // answered here: counted here
  switch (request.op) {
    case Operation::kPut:
      return submit_put(std::move(exchange), std::move(request));
    case Operation::kConsume:
      return submit_consume(std::move(exchange), std::move(request));
    case Operation::kPeek: {
      ReadRequest read;
      read.kind = ReadRequest::Kind::kPeek;
      read.mailbox = request.mailbox;
      read.max_count = request.max_count.value_or(1);
      read.wait_ms = request.wait_ms.value_or(0);
      read.held_bytes = held_bytes(*exchange);
      return submit_read(std::move(exchange), std::move(read), request.max_count.has_value());
    }
    case Operation::kStats: {
      ReadRequest read;
      read.kind = ReadRequest::Kind::kStats;
      read.mailbox = request.mailbox;
      return submit_read(std::move(exchange), std::move(read), false);
    }
    case Operation::kAck:
    case Operation::kNack:
    case Operation::kExtend:
      return submit_settle(std::move(exchange), std::move(request));
    case Operation::kPurge:
    case Operation::kRedrive:
      return submit_bulk(std::move(exchange), std::move(request));
    case Operation::kList:
      return submit_list(std::move(exchange), std::move(request));
  }
}

// To the leader (the one a node that no longer leads named, else the one
// this node knows), or onto the waiting list until one is known (the role
// watcher tries again every kRoleCheckInterval), not before `not_before_ms`.
void MailboxService::forward_request(SharedExchange exchange, int hops, uint64_t leader_hint,
                                     int64_t not_before_ms) {
  const uint64_t leader = leader_hint != 0 && leader_hint != options_.node_id ? leader_hint : node_.leader_id();
  if (leader == 0 || leader == options_.node_id || not_before_ms > steady_now_ms()) {
    std::lock_guard<std::mutex> lock(waiting_mutex_);
    if (waiting_.size() < limits::kMaxWaitingForLeader) {
      waiting_.push_back(Waiting{std::move(exchange), hops, steady_now_ms() + limits::kMaxLeaderWaitMs, not_before_ms});
      return;
    }
    counters_.rejected_overload.fetch_add(1, std::memory_order_relaxed);
    return reply_error(std::move(exchange), unavailable_no_leader(options_.node_id));
  }
  if (hops == 0) counters_.queries_forwarded.fetch_add(1, std::memory_order_relaxed);
  // A long-poll waits on the leader: its wait counts in the time allowed.
  int64_t wait_ms = 0;
  Request parsed;
  if (parse_query(options_.prefix, exchange->key(), exchange->parameters(), options_.request_limits, &parsed)
          .is_ok()) {
    wait_ms = parsed.wait_ms.value_or(0);
  }
  std::string body = encode_forwarded_request(forwarded_from(ForwardedRequest::Kind::kQuery, *exchange));
  node_.forward(leader, std::move(body), limits::kForwardTimeoutMs + wait_ms,
                [this, exchange = std::move(exchange), hops](Status status, std::string answer) mutable {
                  // On the loop thread: the reply worker relays it.
                  worker_.push([this, exchange = std::move(exchange), hops, status = std::move(status),
                                answer = std::move(answer)]() mutable {
                    relay_answer(std::move(exchange), std::move(status), answer, hops);
                  });
                });
}

// On the reply worker: the leader's replies to the client, or, from a node
// that no longer leads, on to the leader it names.
void MailboxService::relay_answer(SharedExchange exchange, Status status, const std::string& answer, int hops) {
  if (!status.is_ok()) {
    exchange->reply_error(error_reply(status), kJsonEncoding);
    exchange.reset();
    return release();
  }
  ForwardedAnswer decoded;
  if (!decode_forwarded_answer(answer, &decoded)) {
    log_error("the leader's answer to a forwarded request does not decode");
    exchange->reply_error(error_reply(Status::error(ErrorCode::kUnknownOutcome,
                                                    "the leader's answer was unreadable; the request may have "
                                                    "been applied: retry with the same rid")),
                          kJsonEncoding);
    exchange.reset();
    return release();
  }
  if (decoded.not_leader) {
    if (hops + 1 < limits::kMaxForwardHops && accepting_.load()) {
      // On to the leader it names; naming none, it is as lost as this node
      // may be: wait a little for the view to change.
      return forward_request(std::move(exchange), hops + 1, decoded.leader_hint,
                             decoded.leader_hint == 0 ? steady_now_ms() + limits::kForwardRetryBackoffMs : 0);
    }
    exchange->reply_error(error_reply(unavailable_no_leader(options_.node_id)), kJsonEncoding);
    exchange.reset();
    return release();
  }
  relay_replies(*exchange, decoded);
  exchange.reset();
  release();
}

// Requests that wait for a leader to be known: acted on here once this node
// leads, handed to the leader once one is known, `unavailable` when their
// time is up (nothing was done with them).
void MailboxService::settle_waiting(bool all) {
  std::vector<Waiting> ready;
  {
    std::lock_guard<std::mutex> lock(waiting_mutex_);
    if (waiting_.empty()) return;
    const uint64_t leader = node_.leader_id();
    const bool known = leads() || (leader != 0 && leader != options_.node_id);
    const int64_t now = steady_now_ms();
    for (size_t i = 0; i < waiting_.size();) {
      if (all || (known && waiting_[i].not_before_ms <= now) || waiting_[i].deadline_ms <= now) {
        ready.push_back(std::move(waiting_[i]));
        waiting_[i] = std::move(waiting_.back());
        waiting_.pop_back();
      } else {
        ++i;
      }
    }
  }
  for (auto& w : ready) {
    if (all || !accepting_.load()) {
      reply_error(std::move(w.exchange), Status::error(ErrorCode::kUnavailable, "the server is shutting down"));
    } else if (leads()) {
      Request request;
      Status s = parse_query(options_.prefix, w.exchange->key(), w.exchange->parameters(), options_.request_limits,
                             &request);
      if (!s.is_ok()) {
        reply_error(std::move(w.exchange), std::move(s));
      } else {
        act(std::move(w.exchange), std::move(request));
      }
    } else if (w.deadline_ms <= steady_now_ms() && (node_.leader_id() == 0 || node_.leader_id() == options_.node_id)) {
      reply_error(std::move(w.exchange), unavailable_no_leader(options_.node_id));
    } else {
      forward_request(std::move(w.exchange), w.hops, 0, 0);
    }
  }
}

// ---------------------------------------------------------------- requests from other nodes

// On the Raft loop thread: only hand it over.
void MailboxService::on_forwarded(uint64_t from, std::string request, ForwardResponder respond) {
  forwarded_worker_.push([this, from, request = std::move(request), respond = std::move(respond)]() mutable {
    serve_forwarded(from, std::move(request), std::move(respond));
  });
}

void MailboxService::serve_forwarded(uint64_t from, std::string request, ForwardResponder respond) {
  counters_.requests_from_nodes.fetch_add(1, std::memory_order_relaxed);
  ForwardedRequest decoded;
  if (!decode_forwarded_request(request, &decoded)) {
    log_warn("node %llu forwarded a request that does not decode", static_cast<unsigned long long>(from));
    ForwardedAnswer answer;
    answer.replies.push_back(ForwardedReply{
        false, "", error_reply(Status::error(ErrorCode::kInternal, "a node forwarded a malformed request")),
        std::string(kJsonEncoding), std::nullopt});
    respond(encode_forwarded_answer(answer));
    return;
  }
  const ForwardedRequest::Kind kind = decoded.kind;
  const uint64_t id = decoded.publication_id;
  auto exchange = std::make_shared<ForwardedExchange>(std::move(decoded), std::move(respond));
  if (!accepting_.load() || (kind != ForwardedRequest::Kind::kAdmin && !leads())) {
    exchange->answer_not_leader(accepting_.load() ? node_.leader_id() : 0);
    return;  // the answer leaves as the exchange ends, here
  }
  switch (kind) {
    case ForwardedRequest::Kind::kQuery:
      return serve_request(std::move(exchange));
    case ForwardedRequest::Kind::kAdmin:
      inflight_.fetch_add(1, std::memory_order_relaxed);  // released by the reply
      return serve_admin(std::move(exchange), /*forwarded=*/true);
    case ForwardedRequest::Kind::kPublication: {
      std::string mailbox;
      const auto payload = exchange->payload();
      const auto encoding = exchange->encoding();
      Status s = parse_publication_key(options_.prefix, exchange->key(), &mailbox);
      inflight_.fetch_add(1, std::memory_order_relaxed);  // released by the reply
      if (!s.is_ok() || !payload || payload->empty() || payload->size() > options_.max_payload_bytes ||
          (encoding && encoding->size() > limits::kMaxEncodingBytes)) {
        return reply_error(std::move(exchange),
                           Status::error(ErrorCode::kInvalidArgument, "a malformed forwarded publication"));
      }
      if (!publication_authorized(exchange->attachment(), mailbox)) {
        return reply_error(std::move(exchange), Status::error(ErrorCode::kUnauthorized, "publication refused"));
      }
      PublicationOptions options;
      if (Status bad = parse_publication_options(exchange->attachment(), &options); !bad.is_ok()) {
        return reply_error(std::move(exchange), std::move(bad));
      }
      std::string body(*payload);
      std::string enc(encoding ? *encoding : std::string_view());
      store_publication(std::move(mailbox), std::move(enc), std::move(body), id, options,
                        [this, exchange = std::move(exchange)](Status status) mutable {
                          if (!status.is_ok()) return reply_error(std::move(exchange), std::move(status));
                          reply_json(std::move(exchange), "{\"ok\":true}");
                        });
      return;
    }
  }
}

// ---------------------------------------------------------------- administration

void MailboxService::on_admin_query(zenoh::Query&& raw) {
  inflight_.fetch_add(1, std::memory_order_relaxed);  // released by the reply
  serve_admin(std::make_shared<ZenohExchange>(std::move(raw)), /*forwarded=*/false);
}

// `P/@cluster/node/<id>/<op>`: served here when <id> is this node, handed to
// node <id> otherwise; `P/@cluster/node/*/status` is every node's status.
void MailboxService::serve_admin(SharedExchange exchange, bool forwarded) {
  const std::string base = options_.prefix + "/@cluster/node/";
  const std::string_view key = exchange->key();
  const std::string_view rest = key.size() > base.size() ? key.substr(base.size()) : std::string_view();
  const size_t slash = rest.find('/');
  const std::string_view target = rest.substr(0, slash);
  const std::string_view op = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
  const std::string self = std::to_string(options_.node_id);
  if (target == self) return serve_admin_here(std::move(exchange), op);
  if (forwarded) {
    return reply_error(std::move(exchange), Status::error(ErrorCode::kInvalidArgument,
                                                          "node " + self + " is not node " + std::string(target)));
  }
  if (target == "*") {
    if (op != "status") {
      return reply_error(std::move(exchange),
                         Status::error(ErrorCode::kInvalidArgument,
                                       "name one node: " + base + "<id>/" + std::string(op)));
    }
    // Every node's status, each under its own key: this node's, then the
    // others' as they answer (one that does not is left out).
    for (const RaftServerInfo& server : node_.status().configuration) {
      if (server.id == options_.node_id) continue;
      forward_admin(exchange, server.id);
    }
    reply_json_as(std::move(exchange), base + self + "/status",
                  status_json(options_.node_id, node_.status(), counters_));
    return;
  }
  char* end = nullptr;
  const std::string target_text(target);
  const uint64_t id = std::strtoull(target_text.c_str(), &end, 10);
  if (target_text.empty() || *end != '\0' || id == 0) {
    return reply_error(std::move(exchange), Status::error(ErrorCode::kInvalidArgument,
                                                          "use " + base + "<id>/<op> or " + base + "*/status"));
  }
  forward_admin(std::move(exchange), id);
  release();  // the exchange is counted by the relay no more: it ends when its last holder does
}

// Hands an administration request to node `id`; its replies reach the
// client as they come (the exchange ends when its last holder lets go).
void MailboxService::forward_admin(SharedExchange exchange, uint64_t id) {
  ForwardedRequest request = forwarded_from(ForwardedRequest::Kind::kAdmin, *exchange);
  const std::string base = options_.prefix + "/@cluster/node/";
  const std::string_view key = exchange->key();
  const size_t op_at = key.find('/', base.size());
  request.key = base + std::to_string(id) + (op_at == std::string_view::npos ? "" : std::string(key.substr(op_at)));
  node_.forward(id, encode_forwarded_request(request), limits::kAdminForwardTimeoutMs,
                [this, exchange = std::move(exchange), id](Status status, std::string answer) mutable {
                  worker_.push([exchange = std::move(exchange), id, status = std::move(status),
                                answer = std::move(answer)]() mutable {
                    ForwardedAnswer decoded;
                    if (!status.is_ok()) {
                      exchange->reply_error(error_reply(Status::error(
                                                status.code, "node " + std::to_string(id) + ": " + status.message)),
                                            kJsonEncoding);
                    } else if (decode_forwarded_answer(answer, &decoded)) {
                      relay_replies(*exchange, decoded);
                    }
                    exchange.reset();
                  });
                });
}

void MailboxService::serve_admin_here(SharedExchange exchange, std::string_view op) {
  if (op == "status") {
    return reply_json(std::move(exchange), status_json(options_.node_id, node_.status(), counters_));
  }
  if (op == "metrics") {  // the same numbers as --metrics-listen's /metrics
    // Gathered on the reply worker: counting Zenoh sessions may block.
    worker_.push([this, exchange = std::move(exchange)]() mutable {
      exchange->reply(exchange->key(), prometheus_text(metrics_input()), "text/plain", std::nullopt);
      exchange.reset();
      release();
    });
    return;
  }
  MembershipRequest request;
  if (op == "add") request.op = MembershipRequest::Op::kAdd;
  else if (op == "remove") request.op = MembershipRequest::Op::kRemove;
  else if (op == "transfer") request.op = MembershipRequest::Op::kTransfer;
  else {
    return reply_error(std::move(exchange), Status::error(ErrorCode::kInvalidArgument,
                                                          "unknown cluster operation: use status, metrics, add, "
                                                          "remove, transfer"));
  }
  // Membership changes need the `admin` right (status does not: every
  // authenticated session may read it; it names no mailbox).
  if (Status s = check_token(exchange->attachment(), auth::Right::kAdmin, ""); !s.is_ok()) {
    return reply_error(std::move(exchange), std::move(s));
  }
  const std::string id_text = find_parameter(exchange->parameters(), "id");
  request.address = find_parameter(exchange->parameters(), "address");
  char* end = nullptr;
  request.id = id_text.empty() ? 0 : std::strtoull(id_text.c_str(), &end, 10);
  const bool id_ok = id_text.empty() ? request.op == MembershipRequest::Op::kTransfer : *end == '\0' && request.id > 0;
  if (!id_ok || (request.op == MembershipRequest::Op::kAdd && request.address.empty())) {
    return reply_error(std::move(exchange), Status::error(ErrorCode::kInvalidArgument,
                                                       "use add?id=<n>;address=<host:port>, remove?id=<n>, "
                                                       "transfer[?id=<n>]"));
  }
  auto done = [this, exchange = std::move(exchange)](Status&& s) mutable {
    if (!s.is_ok()) return reply_error(std::move(exchange), std::move(s));
    reply_json(std::move(exchange), "{\"ok\":true}");
  };
  node_.submit_membership(std::move(request), std::move(done));
}

void MailboxService::submit_settle(SharedExchange exchange, Request&& request) {
  Command command;
  if (request.op == Operation::kAck) {
    command = AckCommand{request.mailbox, *request.message_id, request.rid.value_or("")};
  } else if (request.op == Operation::kNack) {
    command = NackCommand{request.mailbox, *request.message_id, request.rid.value_or("")};
  } else {
    command = ExtendCommand{request.mailbox, *request.message_id, *request.lease_ms, request.rid.value_or("")};
  }
  const uint64_t id = *request.message_id;
  const bool extend = request.op == Operation::kExtend;
  auto done = [this, exchange = std::move(exchange), id, extend](CommandResult&& r) mutable {
    if (!r.status.is_ok()) return reply_error(std::move(exchange), std::move(r.status));
    reply_json(std::move(exchange), extend ? extend_reply(id, r.lease_expires_at_ms) : put_reply(id));
  };
  node_.submit_command(std::move(command), std::move(done));
}

void MailboxService::submit_bulk(SharedExchange exchange, Request&& request) {
  Command command;
  const bool purge = request.op == Operation::kPurge;
  if (purge) {
    command = PurgeCommand{request.mailbox, request.rid.value_or("")};
  } else {
    command = RedriveCommand{request.mailbox, request.max_count.value_or(0), request.rid.value_or("")};
  }
  auto done = [this, exchange = std::move(exchange), purge](CommandResult&& r) mutable {
    if (!r.status.is_ok()) return reply_error(std::move(exchange), std::move(r.status));
    reply_json(std::move(exchange), ::mailbox::count_reply(purge ? "purged" : "moved", r.count));
  };
  node_.submit_command(std::move(command), std::move(done));
}

// A page of the listing: one stats reply per mailbox, each on its own key
// (so Zenoh's default consolidation keeps them all); none: `empty`.
void MailboxService::submit_list(SharedExchange exchange, Request&& request) {
  ReadRequest read;
  read.kind = ReadRequest::Kind::kList;
  read.list = ListQuery{request.mailbox, request.after.value_or(""), request.limit.value_or(limits::kDefaultListLimit)};
  if (options_.verifier) {
    // The token was checked where the query arrived; its claims decide
    // which mailboxes this page may show.
    std::shared_ptr<const auth::TokenClaims> claims;
    Status s = options_.verifier->verify_attachment(exchange->attachment(), unix_now_s(), &claims);
    if (!s.is_ok()) {
      counters_.unauthorized.fetch_add(1, std::memory_order_relaxed);
      return reply_error(std::move(exchange), std::move(s));
    }
    if (!claims->has_right(auth::Right::kList)) {
      counters_.forbidden.fetch_add(1, std::memory_order_relaxed);
      return reply_error(std::move(exchange), Status::error(ErrorCode::kForbidden, "this token does not grant list"));
    }
    read.accept = [claims](std::string_view name) { return claims->covers(name); };
  }
  auto done = [this, exchange = std::move(exchange)](ReadResult&& r) mutable {
    if (!r.status.is_ok()) return reply_error(std::move(exchange), std::move(r.status));
    if (r.listed.empty()) {
      return reply_error(std::move(exchange), Status::error(ErrorCode::kEmpty, "no mailbox that matches holds messages"));
    }
    worker_.push([this, exchange = std::move(exchange), listed = std::move(r.listed)]() mutable {
      for (const ListedMailbox& m : listed) {
        exchange->reply(options_.prefix + "/" + m.name + "/stats", stats_reply(m.name, m.stats), kJsonEncoding,
                        std::nullopt);
      }
      exchange.reset();
      release();
    });
  };
  node_.submit_read(std::move(read), std::move(done));
}

void MailboxService::submit_put(SharedExchange exchange, Request&& request) {
  const auto payload = exchange->payload();
  if (!payload || payload->empty()) {
    return reply_error(std::move(exchange),
                       Status::error(ErrorCode::kInvalidArgument, "put needs a payload: the message to store"));
  }
  if (payload->size() > options_.max_payload_bytes) {
    return reply_error(std::move(exchange),
                       Status::error(ErrorCode::kTooLarge, "payload is " + std::to_string(payload->size()) +
                                                               " bytes; the limit is " +
                                                               std::to_string(options_.max_payload_bytes)));
  }
  const auto encoding = exchange->encoding();
  if (encoding && encoding->size() > limits::kMaxEncodingBytes) {
    return reply_error(std::move(exchange), Status::error(ErrorCode::kInvalidArgument, "encoding is too long"));
  }
  PutCommand put;
  put.mailbox = std::move(request.mailbox);
  put.encoding = std::string(encoding && !encoding->empty() ? *encoding : kDefaultEncoding);
  put.payload = std::string(*payload);
  put.ttl_ms = request.ttl_ms.value_or(options_.default_ttl_ms);
  put.rid = request.rid.value_or("");
  put.delay_ms = request.delay_ms.value_or(0);
  auto done = [this, exchange = std::move(exchange)](CommandResult&& r) mutable {
    if (!r.status.is_ok()) return reply_error(std::move(exchange), std::move(r.status));
    reply_json(std::move(exchange), put_reply(r.put_id));
  };
  node_.submit_command(std::move(put), std::move(done));
}

// The bytes of its query a request's exchange holds while it waits (a
// parked long-poll is charged them: limits::kMaxParkedWaiterBytes).
size_t MailboxService::held_bytes(const Exchange& exchange) {
  auto size = [](const std::optional<std::string_view>& part) { return part ? part->size() : 0; };
  return exchange.key().size() + exchange.parameters().size() + size(exchange.payload()) +
         size(exchange.encoding()) + size(exchange.attachment());
}

void MailboxService::submit_consume(SharedExchange exchange, Request&& request) {
  const size_t held = held_bytes(*exchange);  // before the exchange moves into `done`
  const bool batch_shape = request.max_count.has_value();
  ConsumeCommand consume{request.mailbox, request.max_count.value_or(1), request.lease_ms.value_or(0),
                         request.rid.value_or("")};
  auto done = [this, exchange = std::move(exchange), batch_shape, mailbox = request.mailbox](CommandResult&& r) mutable {
    if (!r.status.is_ok()) return reply_error(std::move(exchange), std::move(r.status));
    reply_messages(std::move(exchange), std::move(mailbox), std::move(r.messages), batch_shape);
  };
  node_.submit_command(std::move(consume), std::move(done), request.wait_ms.value_or(0), held);
}

void MailboxService::submit_read(SharedExchange exchange, ReadRequest&& read, bool batch_shape) {
  const ReadRequest::Kind kind = read.kind;
  std::string mailbox = read.mailbox;
  auto done = [this, exchange = std::move(exchange), kind, batch_shape, mailbox](ReadResult&& r) mutable {
    if (!r.status.is_ok()) return reply_error(std::move(exchange), std::move(r.status));
    if (kind == ReadRequest::Kind::kStats) return reply_json(std::move(exchange), stats_reply(mailbox, r.stats));
    reply_messages(std::move(exchange), std::move(mailbox), std::move(r.messages), batch_shape);
  };
  node_.submit_read(std::move(read), std::move(done));
}

void MailboxService::reply_error(SharedExchange exchange, Status status) {
  worker_.push([this, exchange = std::move(exchange), status = std::move(status)]() mutable {
    count_reply(*exchange, status.code);
    exchange->reply_error(error_reply(status), kJsonEncoding);
    exchange.reset();  // finishes it here, on the worker
    release();
  });
}

void MailboxService::reply_json(SharedExchange exchange, std::string json) {
  worker_.push([this, exchange = std::move(exchange), json = std::move(json)]() mutable {
    count_reply(*exchange, ErrorCode::kOk);
    exchange->reply(exchange->key(), json, kJsonEncoding, std::nullopt);
    exchange.reset();
    release();
  });
}

void MailboxService::reply_json_as(SharedExchange exchange, std::string key, std::string json) {
  worker_.push([this, exchange = std::move(exchange), key = std::move(key), json = std::move(json)]() mutable {
    exchange->reply(key, json, kJsonEncoding, std::nullopt);
    exchange.reset();
    release();
  });
}

void MailboxService::reply_messages(SharedExchange exchange, std::string mailbox, std::vector<DeliveredMessage> messages,
                                    bool batch_shape) {
  worker_.push([this, exchange = std::move(exchange), mailbox = std::move(mailbox), messages = std::move(messages),
                batch_shape]() mutable {
    count_reply(*exchange, ErrorCode::kOk);
    // A repeat (rid) of a batch may come without n=: never drop messages.
    if (batch_shape || messages.size() > 1) {
      std::string payload;
      std::string attachment;
      batch_reply(mailbox, messages, &payload, &attachment);
      exchange->reply(exchange->key(), payload, kBatchEncoding, attachment);
    } else {
      const DeliveredMessage& m = messages.front();
      exchange->reply(exchange->key(), m.body->payload(), m.body->encoding(), message_attachment(m));
    }
    exchange.reset();
    release();
  });
}

// ---------------------------------------------------------------- publications

// A publication reaches only the node its publisher is connected to: the
// leader stores it; another node hands it to the leader, or holds it while
// no leader is known. The publication id (from its Zenoh timestamp) makes a
// retried hand-over store it once.
void MailboxService::on_publication(const zenoh::Sample& sample) {
  counters_.publications.fetch_add(1, std::memory_order_relaxed);
  std::string mailbox;
  Status s = parse_publication_key(options_.prefix, sample.key, &mailbox);
  const bool valid = s.is_ok() && !sample.payload.empty() && sample.payload.size() <= options_.max_payload_bytes &&
                     sample.encoding.size() <= limits::kMaxEncodingBytes;
  if (!valid) {
    count_dropped(DropReason::kInvalid);
    log_request_debug("publication", s.is_ok() ? mailbox.c_str() : nullptr, "dropped: invalid (key %.*s, %zu bytes)",
                      static_cast<int>(sample.key.size()), sample.key.data(), sample.payload.size());
    return;
  }
  if (!publication_authorized(sample.attachment, mailbox)) return;
  PublicationOptions options;
  if (Status bad = parse_publication_options(sample.attachment, &options); !bad.is_ok()) {
    counters_.publications_dropped.fetch_add(1, std::memory_order_relaxed);
    log_debug("dropped publication on %s: %s", mailbox.c_str(), bad.message.c_str());
    return;
  }
  HeldPublication publication{std::move(mailbox), std::string(sample.encoding), std::string(sample.payload),
                              owned(sample.attachment), sample.timestamp ? publication_id(*sample.timestamp) : 0,
                              steady_now_ms(), options};
  if (leads()) {
    std::string box = publication.mailbox;
    return store_publication(std::move(publication.mailbox), std::move(publication.encoding),
                             std::move(publication.payload), publication.publication_id, publication.options,
                             [this, box = std::move(box)](Status status) {
                               if (status.is_ok()) return;
                               count_dropped(DropReason::kRefused);
                               log_request_warn("publication", box.c_str(), "not stored: %s", status.message.c_str());
                             });
  }
  const uint64_t leader = node_.leader_id();
  if (leader != 0 && leader != options_.node_id) return forward_publication(std::move(publication), leader);
  hold_publication(std::move(publication));
}

void MailboxService::hold_publication(HeldPublication publication) {
  std::lock_guard<std::mutex> lock(held_mutex_);
  const size_t bytes = publication.payload.size() + publication.encoding.size() + publication.mailbox.size();
  if (!accepting_.load() || steady_now_ms() - publication.arrival_ms > limits::kMaxPublicationHoldMs ||
      held_publications_.size() >= limits::kMaxHeldPublications ||
      held_publication_bytes_ + bytes > limits::kMaxHeldPublicationBytes) {
    count_dropped(DropReason::kOverload);
    return;
  }
  held_publication_bytes_ += bytes;
  held_publications_.push_back(std::move(publication));
}

// Role watcher: hands held publications to the leader (or to this node's
// Raft when it leads now), drops those held too long.
void MailboxService::forward_held_publications() {
  std::deque<HeldPublication> batch;
  const bool leading = leads();
  const uint64_t leader = node_.leader_id();
  {
    std::lock_guard<std::mutex> lock(held_mutex_);
    if (held_publications_.empty()) return;
    const int64_t now = steady_now_ms();
    while (!held_publications_.empty() && now - held_publications_.front().arrival_ms > limits::kMaxPublicationHoldMs) {
      held_publication_bytes_ -= held_publications_.front().payload.size() +
                                 held_publications_.front().encoding.size() +
                                 held_publications_.front().mailbox.size();
      held_publications_.pop_front();
      count_dropped(DropReason::kExpired);
    }
    if (!leading && (leader == 0 || leader == options_.node_id)) return;  // keep holding
    batch.swap(held_publications_);
    held_publication_bytes_ = 0;
  }
  for (auto& held : batch) {
    if (leading) {
      std::string box = held.mailbox;
      store_publication(std::move(held.mailbox), std::move(held.encoding), std::move(held.payload),
                        held.publication_id, held.options, [this, box = std::move(box)](Status status) {
                          if (status.is_ok()) return;
                          count_dropped(DropReason::kRefused);
                          log_request_warn("publication", box.c_str(), "held, then not stored: %s",
                                           status.message.c_str());
                        });
    } else {
      forward_publication(std::move(held), leader);
    }
  }
}

// The leader's answer decides: stored; refused (dropped, counted); or held
// again and retried while its hold time lasts: the node did not lead, the
// leader was out of reach, or the answer was lost (retried only with a
// publication id, which the leader stores once).
void MailboxService::forward_publication(HeldPublication publication, uint64_t leader) {
  counters_.publications_forwarded.fetch_add(1, std::memory_order_relaxed);
  ForwardedRequest request;
  request.kind = ForwardedRequest::Kind::kPublication;
  request.key = options_.prefix + "/" + publication.mailbox;
  request.payload = publication.payload;
  request.encoding = publication.encoding;
  request.attachment = publication.attachment;
  request.publication_id = publication.publication_id;
  node_.forward(leader, encode_forwarded_request(request), limits::kForwardTimeoutMs,
                [this, publication = std::move(publication)](Status status, std::string answer) mutable {
                  // On the loop thread: decide, hold again at most.
                  bool again = false;
                  if (status.is_ok()) {
                    ForwardedAnswer decoded;
                    if (decode_forwarded_answer(answer, &decoded) && decoded.not_leader) {
                      again = true;
                    } else if (decoded.replies.size() == 1 && decoded.replies.front().ok) {
                      return;  // stored
                    }
                  } else {
                    again = status.code == ErrorCode::kUnavailable ||
                            (status.code == ErrorCode::kUnknownOutcome && publication.publication_id != 0);
                  }
                  if (again) return hold_publication(std::move(publication));
                  count_dropped(DropReason::kRefused);
                  log_request_warn("publication", publication.mailbox.c_str(), "not stored by the leader: %s",
                                   status.is_ok() ? "refused" : status.message.c_str());
                });
}

// Proposes a publication on this node (the leader); `done` runs once, on the
// Raft loop thread or here, with the outcome.
void MailboxService::store_publication(std::string mailbox, std::string encoding, std::string payload,
                                       uint64_t publication_id, const PublicationOptions& options,
                                       std::function<void(Status)> done) {
  if (!admit()) return done(Status::error(ErrorCode::kUnavailable, "server overloaded"));
  PutCommand put;
  put.mailbox = std::move(mailbox);
  put.encoding = encoding.empty() ? std::string(kDefaultEncoding) : std::move(encoding);
  put.payload = std::move(payload);
  put.ttl_ms = options.ttl_ms.value_or(options_.default_ttl_ms);
  put.delay_ms = options.delay_ms.value_or(0);
  put.publication_id = publication_id;
  node_.submit_command(std::move(put), [this, done = std::move(done)](CommandResult&& r) {
    release();
    done(std::move(r.status));
  });
}

}  // namespace mailbox
