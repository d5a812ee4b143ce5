#include "server/service.hpp"

#include "server/replies.hpp"

#include <pthread.h>

#include <algorithm>
#include <cstdlib>
#include "util/log.hpp"

namespace mailbox {
namespace {
constexpr std::string_view kDefaultEncoding = "zenoh/bytes";

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
}  // namespace

MailboxService::MailboxService(ServiceOptions options, zenoh::Session& session, RaftNode& node)
    : options_(std::move(options)), session_(session), node_(node) {}

MailboxService::~MailboxService() {
  stop_accepting();
  drain_replies();
}

std::string MailboxService::admin_key() const {
  return options_.prefix + "/@cluster/node/" + std::to_string(options_.node_id);
}

Status MailboxService::start() {
  std::string error;
  {
    std::lock_guard<std::mutex> lock(declarations_mutex_);
    queryable_ = session_.declare_queryable(
        options_.prefix + "/**", false, [this](zenoh::Query&& q) { on_query(std::move(q)); }, &error);
    if (!queryable_) return Status::error(ErrorCode::kInternal, "cannot declare queryable: " + error);
    admin_queryable_ = session_.declare_queryable(
        admin_key() + "/*", true, [this](zenoh::Query&& q) { on_admin_query(std::move(q)); }, &error);
    if (!admin_queryable_) return Status::error(ErrorCode::kInternal, "cannot declare queryable: " + error);
    subscriber_ = session_.declare_subscriber(
        options_.prefix + "/*", [this](const zenoh::Sample& s) { on_publication(s); }, &error);
    if (!subscriber_) return Status::error(ErrorCode::kInternal, "cannot declare subscriber: " + error);
    leader_watch_ = session_.declare_liveliness_subscriber(
        leader_token_prefix() + "*", [this](std::string_view key, bool alive) { note_leader_token(key, alive); },
        &error);
    if (!leader_watch_) return Status::error(ErrorCode::kInternal, "cannot watch leaders: " + error);
  }
  update_declarations();
  role_watcher_ = std::thread([this] { watch_role(); });
  return Status::ok();
}

void MailboxService::note_leader_token(std::string_view key, bool alive) {
  const std::string prefix = leader_token_prefix();
  if (key.size() <= prefix.size()) return;
  const uint64_t id = std::strtoull(std::string(key.substr(prefix.size())).c_str(), nullptr, 10);
  std::lock_guard<std::mutex> lock(leaders_mutex_);
  auto pos = std::find(live_leader_tokens_.begin(), live_leader_tokens_.end(), id);
  if (alive && pos == live_leader_tokens_.end()) live_leader_tokens_.push_back(id);
  if (!alive && pos != live_leader_tokens_.end()) live_leader_tokens_.erase(pos);
}

// A router that connects after a token was declared may never pass it to the
// liveliness subscriber, and a router whose link to the leader just came back
// routes queries there before the token reaches the subscriber: when in
// doubt, ask the network, both which leader tokens live and (through the
// same routes as queries take) which node says it leads.
void MailboxService::resync_leader_tokens() {
  constexpr uint64_t kResyncTimeoutMs = 500;
  struct Resync {
    int64_t started_ms = 0;
    std::atomic<int> pending{2};
    std::atomic<bool> found_leader{false};
  };
  auto resync = std::make_shared<Resync>();
  resync->started_ms = steady_now_ms();
  token_resyncs_in_flight_.fetch_add(1);
  auto finish_one = [this, resync] {
    if (resync->pending.fetch_sub(1) != 1) return;
    {
      std::lock_guard<std::mutex> lock(resync_mutex_);
      if (resync->started_ms > completed_resync_started_ms_) {
        completed_resync_started_ms_ = resync->started_ms;
        completed_resync_found_leader_ = resync->found_leader.load();
      }
    }
    token_resyncs_in_flight_.fetch_sub(1);
  };
  session_.liveliness_get(
      leader_token_prefix() + "*", kResyncTimeoutMs,
      [this](const zenoh::Reply& r) {
        if (r.ok) note_leader_token(r.key, true);
      },
      finish_one);  // on failure the done callback has already run
  zenoh::GetOptions options;
  options.timeout_ms = kResyncTimeoutMs;
  options.target = zenoh::QueryTarget::kAll;
  options.consolidation = zenoh::Consolidation::kNone;
  const std::string self = "{\"id\":" + std::to_string(options_.node_id) + ",";
  session_.get(
      options_.prefix + "/@cluster/node/*/status", options,
      [resync, self](const zenoh::Reply& r) {
        if (r.ok && r.payload.find("\"state\":\"leader\"") != std::string_view::npos &&
            r.payload.substr(0, self.size()) != self) {
          resync->found_leader.store(true);
        }
      },
      finish_one);
}

void MailboxService::watch_role() {
  pthread_setname_np(pthread_self(), "mbx-roles");
  constexpr auto kRoleCheckInterval = std::chrono::milliseconds(20);
  std::unique_lock<std::mutex> wait_lock(watcher_mutex_);
  while (!watcher_wakeup_.wait_for(wait_lock, kRoleCheckInterval, [this] { return watcher_stop_; })) {
    update_declarations();
    settle_undecided(/*all=*/false);
    forward_held_publications();
  }
}

std::vector<uint64_t> MailboxService::leader_tokens_seen() const {
  std::lock_guard<std::mutex> lock(leaders_mutex_);
  return live_leader_tokens_;
}

bool MailboxService::other_leader_token_seen() const {
  std::lock_guard<std::mutex> lock(leaders_mutex_);
  for (uint64_t id : live_leader_tokens_) {
    if (id != options_.node_id) return true;
  }
  return false;
}

// The leader token follows leadership; a follower that cannot see its
// leader's token asks the network again.
void MailboxService::update_declarations() {
  const bool leader = node_.is_leader();
  const bool leader_seen = other_leader_token_seen();
  constexpr int64_t kTokenResyncIntervalMs = 300;
  const int64_t now_ms = steady_now_ms();
  // Periodically while no leader is seen, and at once for a query that
  // arrived after the last resync started (it waits for one).
  const bool query_waits = newest_undecided_arrival_ms_.load() >= last_token_resync_ms_;
  if (!leader && !leader_seen && (query_waits || now_ms - last_token_resync_ms_ >= kTokenResyncIntervalMs) &&
      token_resyncs_in_flight_.load() == 0) {
    last_token_resync_ms_ = now_ms;
    resync_leader_tokens();
  }
  std::lock_guard<std::mutex> lock(declarations_mutex_);
  if (!admin_queryable_) return;  // stopped
  std::string error;
  if (leader && !leader_token_) {
    leader_token_ = session_.declare_liveliness_token(leader_token_prefix() + std::to_string(options_.node_id), &error);
    if (!leader_token_) log_error("cannot declare the leader token: %s", error.c_str());
    log_info("node %llu leads", static_cast<unsigned long long>(options_.node_id));
  }
  if (!leader && leader_token_) {
    leader_token_.reset();
    log_info("node %llu no longer leads", static_cast<unsigned long long>(options_.node_id));
  }
}

void MailboxService::stop_accepting() {
  {
    std::lock_guard<std::mutex> lock(watcher_mutex_);
    watcher_stop_ = true;
  }
  watcher_wakeup_.notify_all();
  if (role_watcher_.joinable()) role_watcher_.join();
  while (token_resyncs_in_flight_.load() != 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::lock_guard<std::mutex> lock(declarations_mutex_);
  // The token goes first: followers must not stay silent for queries this
  // node no longer receives.
  leader_token_.reset();
  queryable_.reset();
  admin_queryable_.reset();
  subscriber_.reset();
  leader_watch_.reset();
}

// Every node receives every query (see docs/ARCHITECTURE.md); exactly one
// should answer, and `unavailable` must mean that no node acted. A follower
// therefore stays silent while it sees any other node's leader token: that
// node received the query too and answers it (acting, or answering for
// itself if it no longer leads). Seeing none, it holds the query for a grace
// period (a just-elected leader's token may be on its way) and answers
// `unavailable` only if still none shows.
bool MailboxService::may_act(SharedQuery& query) {
  if (node_.is_leader()) return true;
  // A cluster of one waits (boundedly) for itself to win its election.
  if (node_.leader_id() == 0 && node_.single_voter()) return true;
  if (other_leader_token_seen()) {
    finish_without_reply(std::move(query));
    return false;
  }
  std::lock_guard<std::mutex> lock(undecided_mutex_);
  if (undecided_.size() < limits::kMaxUndecidedQueries) {
    const int64_t now = steady_now_ms();
    undecided_.push_back(Undecided{std::move(query), now, now + limits::kLeaderTokenGraceMs});
    newest_undecided_arrival_ms_.store(now);
    return false;
  }
  // Too many held: say nothing rather than a possibly false `unavailable`
  // (the client's query times out: an unknown outcome).
  counters_.rejected_overload.fetch_add(1, std::memory_order_relaxed);
  finish_without_reply(std::move(query));
  return false;
}

std::string MailboxService::unavailable_message(uint64_t leader) const {
  const std::string node = "node " + std::to_string(options_.node_id);
  return leader == 0 ? node + " sees no leader: the cluster is electing one or has lost its quorum; retry"
                     : node + " cannot reach a live leader (node " + std::to_string(leader) + " was); retry";
}

// Queries held by a follower that saw no leader token: finished silently
// once one shows or a resync that started after the query arrived found a
// leader (that leader answered); answered `unavailable` when the grace
// period is over and such a resync found none (a router whose link to the
// leader just came back routes queries there before this node hears of the
// token), or at the latest after kMaxUndecidedHoldMs.
void MailboxService::settle_undecided(bool all) {
  const uint64_t leader = node_.leader_id();
  const bool seen = other_leader_token_seen();
  const bool leading = node_.is_leader();
  std::vector<std::pair<Undecided, bool>> settle;  // query, a leader answers it
  {
    std::lock_guard<std::mutex> lock(undecided_mutex_);
    const int64_t now = steady_now_ms();
    int64_t resynced_since = 0;
    bool resync_found_leader = false;
    {
      std::lock_guard<std::mutex> resync_lock(resync_mutex_);
      resynced_since = completed_resync_started_ms_;
      resync_found_leader = completed_resync_found_leader_;
    }
    for (size_t i = 0; i < undecided_.size();) {
      const Undecided& u = undecided_[i];
      const bool resynced = resynced_since > u.arrival_ms;
      const bool expired = (u.deadline_ms <= now && resynced) || now - u.arrival_ms >= limits::kMaxUndecidedHoldMs;
      const bool leader_answers = seen || (resynced && resync_found_leader);
      if (all || leading || leader_answers || expired) {
        settle.emplace_back(std::move(undecided_[i]), leader_answers);
        undecided_[i] = std::move(undecided_.back());
        undecided_.pop_back();
      } else {
        ++i;
      }
    }
  }
  for (auto& [u, leader_answers] : settle) {
    if (leading) {
      // Never handed to this node's Raft, but a previous leader whose token
      // this node did not see may have acted on it.
      reply_error(std::move(u.query),
                  Status::error(ErrorCode::kUnknownOutcome,
                                "leadership changed while the query waited; it may have been applied: retry with "
                                "the same rid"));
    } else if (leader_answers) {
      finish_without_reply(std::move(u.query));  // the live leader answers it
    } else {
      reply_error(std::move(u.query), Status::error(ErrorCode::kUnavailable, unavailable_message(leader)));
    }
  }
}

void MailboxService::drain_replies() {
  settle_undecided(/*all=*/true);
  worker_.stop();
}

bool MailboxService::admit() {
  if (inflight_.fetch_add(1, std::memory_order_relaxed) >= limits::kMaxInflightRequests) {
    inflight_.fetch_sub(1, std::memory_order_relaxed);
    counters_.rejected_overload.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  return true;
}

void MailboxService::on_query(zenoh::Query&& raw) {
  counters_.queries.fetch_add(1, std::memory_order_relaxed);
  auto query = std::make_shared<zenoh::Query>(std::move(raw));
  // Only the node that acts answers (one reply per query, bad input
  // included): decide that first.
  inflight_.fetch_add(1, std::memory_order_relaxed);
  if (!may_act(query)) return;
  release();
  if (!admit()) {
    // Not admitted: answer without counting it (bounded by Zenoh's own queues).
    inflight_.fetch_add(1, std::memory_order_relaxed);
    reply_error(std::move(query), Status::error(ErrorCode::kUnavailable, "server overloaded; retry later"));
    return;
  }
  Request request;
  Status s = parse_query(options_.prefix, query->key(), query->parameters(), options_.request_limits, &request);
  if (!s.is_ok()) return reply_error(std::move(query), std::move(s));

  if (request.op != Operation::kPut && query->payload().has_value() && !query->payload()->empty()) {
    return reply_error(std::move(query), Status::error(ErrorCode::kInvalidArgument,
                                                       std::string(operation_name(request.op)) + " takes no payload"));
  }
  switch (request.op) {
    case Operation::kPut:
      return submit_put(std::move(query), std::move(request));
    case Operation::kConsume:
      return submit_consume(std::move(query), std::move(request));
    case Operation::kPeek: {
      ReadRequest read{ReadRequest::Kind::kPeek, request.mailbox, request.max_count.value_or(1),
                       request.wait_ms.value_or(0)};
      return submit_read(std::move(query), std::move(read), request.max_count.has_value());
    }
    case Operation::kStats: {
      ReadRequest read{ReadRequest::Kind::kStats, request.mailbox, 1, 0};
      return submit_read(std::move(query), std::move(read), false);
    }
    case Operation::kAck:
    case Operation::kNack:
      return submit_settle(std::move(query), std::move(request));
  }
}

void MailboxService::submit_settle(SharedQuery query, Request&& request) {
  Command command;
  if (request.op == Operation::kAck) {
    command = AckCommand{request.mailbox, *request.message_id, request.rid.value_or("")};
  } else {
    command = NackCommand{request.mailbox, *request.message_id, request.rid.value_or("")};
  }
  const uint64_t id = *request.message_id;
  auto done = [this, query = std::move(query), id](CommandResult&& r) mutable {
    if (!r.status.is_ok()) return reply_error(std::move(query), std::move(r.status));
    reply_json(std::move(query), put_reply(id));
  };
  node_.submit_command(std::move(command), std::move(done));
}

void MailboxService::submit_put(SharedQuery query, Request&& request) {
  const auto payload = query->payload();
  if (!payload || payload->empty()) {
    return reply_error(std::move(query),
                       Status::error(ErrorCode::kInvalidArgument, "put needs a payload: the message to store"));
  }
  if (payload->size() > options_.max_payload_bytes) {
    return reply_error(std::move(query),
                       Status::error(ErrorCode::kTooLarge, "payload is " + std::to_string(payload->size()) +
                                                               " bytes; the limit is " +
                                                               std::to_string(options_.max_payload_bytes)));
  }
  const auto encoding = query->encoding();
  if (encoding && encoding->size() > limits::kMaxEncodingBytes) {
    return reply_error(std::move(query), Status::error(ErrorCode::kInvalidArgument, "encoding is too long"));
  }
  PutCommand put;
  put.mailbox = std::move(request.mailbox);
  put.encoding = std::string(encoding && !encoding->empty() ? *encoding : kDefaultEncoding);
  put.payload = std::string(*payload);
  put.ttl_ms = request.ttl_ms.value_or(options_.default_ttl_ms);
  put.rid = request.rid.value_or("");
  auto done = [this, query = std::move(query)](CommandResult&& r) mutable {
    if (!r.status.is_ok()) return reply_error(std::move(query), std::move(r.status));
    reply_json(std::move(query), put_reply(r.put_id));
  };
  node_.submit_command(std::move(put), std::move(done));
}

void MailboxService::submit_consume(SharedQuery query, Request&& request) {
  const bool batch_shape = request.max_count.has_value();
  ConsumeCommand consume{request.mailbox, request.max_count.value_or(1), request.lease_ms.value_or(0),
                         request.rid.value_or("")};
  auto done = [this, query = std::move(query), batch_shape, mailbox = request.mailbox](CommandResult&& r) mutable {
    if (!r.status.is_ok()) return reply_error(std::move(query), std::move(r.status));
    reply_messages(std::move(query), std::move(mailbox), std::move(r.messages), batch_shape);
  };
  node_.submit_command(std::move(consume), std::move(done), request.wait_ms.value_or(0));
}

void MailboxService::submit_read(SharedQuery query, ReadRequest&& read, bool batch_shape) {
  const ReadRequest::Kind kind = read.kind;
  std::string mailbox = read.mailbox;
  auto done = [this, query = std::move(query), kind, batch_shape, mailbox](ReadResult&& r) mutable {
    if (!r.status.is_ok()) return reply_error(std::move(query), std::move(r.status));
    if (kind == ReadRequest::Kind::kStats) return reply_json(std::move(query), stats_reply(mailbox, r.stats));
    reply_messages(std::move(query), std::move(mailbox), std::move(r.messages), batch_shape);
  };
  node_.submit_read(std::move(read), std::move(done));
}

void MailboxService::reply_error(SharedQuery query, Status status) {
  worker_.push([this, query = std::move(query), status = std::move(status)]() mutable {
    // `unavailable` claims that no node acted. A node that just lost its
    // leadership while another node's leader token is visible cannot claim
    // that: the other leader received this query too and answers it.
    const bool someone_else_answers = status.code == ErrorCode::kUnavailable && !node_.is_leader() &&
                                      query->key().rfind(options_.prefix + "/@", 0) != 0 &&
                                      other_leader_token_seen();
    if (!someone_else_answers) query->reply_error(error_reply(status), kJsonEncoding);
    query.reset();  // finishes the query here, on the worker
    release();
  });
}

void MailboxService::reply_json(SharedQuery query, std::string json) {
  worker_.push([this, query = std::move(query), json = std::move(json)]() mutable {
    query->reply(query->key(), json, kJsonEncoding, std::nullopt);
    query.reset();
    release();
  });
}

void MailboxService::finish_without_reply(SharedQuery query) {
  worker_.push([this, query = std::move(query)]() mutable {
    query.reset();
    release();
  });
}

void MailboxService::reply_messages(SharedQuery query, std::string mailbox, std::vector<DeliveredMessage> messages,
                                    bool batch_shape) {
  worker_.push([this, query = std::move(query), mailbox = std::move(mailbox), messages = std::move(messages),
                batch_shape]() mutable {
    // A repeat (rid) of a batch may come without n=: never drop messages.
    if (batch_shape || messages.size() > 1) {
      std::string payload;
      std::string attachment;
      batch_reply(mailbox, messages, &payload, &attachment);
      query->reply(query->key(), payload, kBatchEncoding, attachment);
    } else {
      const DeliveredMessage& m = messages.front();
      query->reply(query->key(), m.body->payload, m.body->encoding, message_attachment(m));
    }
    query.reset();
    release();
  });
}

void MailboxService::on_publication(const zenoh::Sample& sample) {
  counters_.publications.fetch_add(1, std::memory_order_relaxed);
  std::string mailbox;
  Status s = parse_publication_key(options_.prefix, sample.key, &mailbox);
  const bool leads = node_.is_leader() || (node_.leader_id() == 0 && node_.single_voter());
  const bool valid = s.is_ok() && !sample.payload.empty() && sample.payload.size() <= options_.max_payload_bytes &&
                     sample.encoding.size() <= limits::kMaxEncodingBytes;
  const uint64_t id = sample.timestamp ? publication_id(*sample.timestamp) : 0;
  if (!leads) {
    // The leader received it too and stores it, if this node's router
    // reaches it: a visible leader token says so. If none is visible (this
    // node just started, or leadership is changing), hold it and forward it
    // once a leader shows (forward_held_publications); the publication id
    // makes the leader store it once even if the original reached it too.
    // Without a timestamp there is no id: forwarding could store it twice.
    if (!valid || other_leader_token_seen()) return;
    if (id == 0) {
      counters_.publications_dropped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    std::lock_guard<std::mutex> lock(held_mutex_);
    const size_t bytes = sample.payload.size() + sample.encoding.size() + mailbox.size();
    if (held_publications_.size() >= limits::kMaxHeldPublications ||
        held_publication_bytes_ + bytes > limits::kMaxHeldPublicationBytes) {
      counters_.publications_dropped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    held_publication_bytes_ += bytes;
    held_publications_.push_back(HeldPublication{std::move(mailbox), std::string(sample.encoding),
                                                 std::string(sample.payload), id, steady_now_ms()});
    return;
  }
  if (!valid) {
    counters_.publications_dropped.fetch_add(1, std::memory_order_relaxed);
    log_debug("dropped publication on %.*s", static_cast<int>(sample.key.size()), sample.key.data());
    return;
  }
  store_publication(std::move(mailbox), std::string(sample.encoding), std::string(sample.payload), id,
                    [this](Status status) {
                      if (status.is_ok()) return;
                      counters_.publications_dropped.fetch_add(1, std::memory_order_relaxed);
                      log_warn("publication not stored: %s", status.message.c_str());
                    });
}

// Proposes a publication on this node (the leader); `done` runs once, on the
// Raft loop thread or here, with the outcome.
void MailboxService::store_publication(std::string mailbox, std::string encoding, std::string payload,
                                       uint64_t publication_id, std::function<void(Status)> done) {
  if (!admit()) return done(Status::error(ErrorCode::kUnavailable, "server overloaded"));
  PutCommand put;
  put.mailbox = std::move(mailbox);
  put.encoding = encoding.empty() ? std::string(kDefaultEncoding) : std::move(encoding);
  put.payload = std::move(payload);
  put.ttl_ms = options_.default_ttl_ms;
  put.publication_id = publication_id;
  node_.submit_command(std::move(put), [this, done = std::move(done)](CommandResult&& r) {
    release();
    done(std::move(r.status));
  });
}

void MailboxService::forward_held_publications() {
  std::deque<HeldPublication> batch;
  {
    std::lock_guard<std::mutex> lock(held_mutex_);
    if (held_publications_.empty()) return;
    const int64_t now = steady_now_ms();
    while (!held_publications_.empty() && now - held_publications_.front().arrival_ms > limits::kMaxPublicationHoldMs) {
      held_publication_bytes_ -= held_publications_.front().payload.size() +
                                 held_publications_.front().encoding.size() +
                                 held_publications_.front().mailbox.size();
      held_publications_.pop_front();
      counters_.publications_dropped.fetch_add(1, std::memory_order_relaxed);
    }
    if (!node_.is_leader() && !other_leader_token_seen()) return;  // keep holding
    batch.swap(held_publications_);
    held_publication_bytes_ = 0;
  }
  const bool leads = node_.is_leader();
  uint64_t leader = 0;
  if (!leads) {
    std::lock_guard<std::mutex> lock(leaders_mutex_);
    for (uint64_t id : live_leader_tokens_) {
      if (id != options_.node_id) leader = id;
    }
  }
  for (auto& held : batch) {
    counters_.publications_forwarded.fetch_add(1, std::memory_order_relaxed);
    auto done = [this](Status status) {
      if (status.is_ok()) return;
      counters_.publications_dropped.fetch_add(1, std::memory_order_relaxed);
      log_warn("held publication not stored: %s", status.message.c_str());
    };
    if (leads) {
      store_publication(std::move(held.mailbox), std::move(held.encoding), std::move(held.payload),
                        held.publication_id, done);
      continue;
    }
    // To the leader's admin key; it proposes the put with the same id.
    zenoh::GetOptions options;
    options.timeout_ms = limits::kMaxPublicationHoldMs;
    options.payload = held.payload;
    options.encoding = held.encoding;
    const std::string selector = options_.prefix + "/@cluster/node/" + std::to_string(leader) +
                                 "/publish?mailbox=" + held.mailbox + ";publication=" +
                                 std::to_string(held.publication_id);
    struct Outcome {
      std::atomic<bool> ok{false};
    };
    auto outcome = std::make_shared<Outcome>();
    session_.get(
        selector, options, [outcome](const zenoh::Reply& r) { if (r.ok) outcome->ok.store(true); },
        [outcome, done] {
          done(outcome->ok.load() ? Status::ok()
                                  : Status::error(ErrorCode::kUnavailable, "the leader did not store it"));
        });
  }
}

}  // namespace mailbox

namespace mailbox {
namespace {

std::string status_json(uint64_t node_id, const RaftNodeStatus& s, const ServiceCounters& counters,
                        const std::vector<uint64_t>& leader_tokens) {
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
  out += ",\"snapshots\":" + std::to_string(s.snapshots_taken);
  out += ",\"longest_snapshot_stall_us\":" + std::to_string(s.longest_snapshot_stall_us);
  out += ",\"queries\":" + std::to_string(counters.queries.load(std::memory_order_relaxed));
  out += ",\"publications\":" + std::to_string(counters.publications.load(std::memory_order_relaxed));
  out += ",\"publications_dropped\":" + std::to_string(counters.publications_dropped.load(std::memory_order_relaxed));
  out += ",\"publications_forwarded\":" +
         std::to_string(counters.publications_forwarded.load(std::memory_order_relaxed));
  out += ",\"rejected_overload\":" + std::to_string(counters.rejected_overload.load(std::memory_order_relaxed));
  out += ",\"leader_tokens_seen\":[";
  for (size_t i = 0; i < leader_tokens.size(); ++i) out += (i ? "," : "") + std::to_string(leader_tokens[i]);
  out += "]";
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

void MailboxService::on_admin_query(zenoh::Query&& raw) {
  auto query = std::make_shared<zenoh::Query>(std::move(raw));
  inflight_.fetch_add(1, std::memory_order_relaxed);  // released by the reply
  const std::string_view key = query->key();
  const std::string base = admin_key() + "/";
  const std::string_view op = key.size() > base.size() ? key.substr(base.size()) : std::string_view();
  if (op == "status") return reply_json(std::move(query), status_json(options_.node_id, node_.status(), counters_, leader_tokens_seen()));

  if (op == "publish") return on_forwarded_publication(std::move(query));

  MembershipRequest request;
  if (op == "add") request.op = MembershipRequest::Op::kAdd;
  else if (op == "remove") request.op = MembershipRequest::Op::kRemove;
  else if (op == "transfer") request.op = MembershipRequest::Op::kTransfer;
  else {
    return reply_error(std::move(query), Status::error(ErrorCode::kInvalidArgument,
                                                       "unknown cluster operation: use status, add, remove, "
                                                       "transfer, publish"));
  }
  const std::string id_text = find_parameter(query->parameters(), "id");
  request.address = find_parameter(query->parameters(), "address");
  char* end = nullptr;
  request.id = id_text.empty() ? 0 : std::strtoull(id_text.c_str(), &end, 10);
  const bool id_ok = id_text.empty() ? request.op == MembershipRequest::Op::kTransfer : *end == '\0' && request.id > 0;
  if (!id_ok || (request.op == MembershipRequest::Op::kAdd && request.address.empty())) {
    return reply_error(std::move(query), Status::error(ErrorCode::kInvalidArgument,
                                                       "use add?id=<n>;address=<host:port>, remove?id=<n>, "
                                                       "transfer[?id=<n>]"));
  }
  auto done = [this, query = std::move(query)](Status&& s) mutable {
    if (!s.is_ok()) return reply_error(std::move(query), std::move(s));
    reply_json(std::move(query), "{\"ok\":true}");
  };
  node_.submit_membership(std::move(request), std::move(done));
}

}  // namespace mailbox

namespace mailbox {

// `P/@cluster/node/<id>/publish?mailbox=<box>;publication=<id>` with the
// payload and encoding: a publication a follower held (it saw no leader
// token when it arrived), stored here once, by its publication id.
void MailboxService::on_forwarded_publication(SharedQuery query) {
  std::string mailbox;
  const std::string box = find_parameter(query->parameters(), "mailbox");
  const std::string id_text = find_parameter(query->parameters(), "publication");
  char* end = nullptr;
  const uint64_t id = id_text.empty() ? 0 : std::strtoull(id_text.c_str(), &end, 10);
  const auto payload = query->payload();
  const auto encoding = query->encoding();
  Status s = parse_publication_key(options_.prefix, options_.prefix + "/" + box, &mailbox);
  if (!s.is_ok() || id == 0 || *end != '\0' || !payload || payload->empty() ||
      payload->size() > options_.max_payload_bytes || (encoding && encoding->size() > limits::kMaxEncodingBytes)) {
    return reply_error(std::move(query), Status::error(ErrorCode::kInvalidArgument,
                                                       "use publish?mailbox=<box>;publication=<id> with the payload"));
  }
  if (!node_.is_leader()) {
    return reply_error(std::move(query), Status::error(ErrorCode::kUnavailable, "this node does not lead"));
  }
  std::string body(*payload);
  std::string enc(encoding ? *encoding : std::string_view());
  release();  // store_publication admits it again
  store_publication(std::move(mailbox), std::move(enc), std::move(body), id,
                    [this, query = std::move(query)](Status status) mutable {
                      inflight_.fetch_add(1, std::memory_order_relaxed);  // released by the reply
                      if (!status.is_ok()) return reply_error(std::move(query), std::move(status));
                      reply_json(std::move(query), "{\"ok\":true}");
                    });
}

}  // namespace mailbox
