// exchange.hpp: one client request and the replies it gets, wherever it
// came from: a Zenoh query on this node, or a query another node forwarded
// here on its client's behalf (server/forwarding.hpp).
//
// What it is for: the service acts on a request and replies the same way
// whichever node the client is connected to.
//
// Threads: the accessors from any thread. `reply`, `reply_error` and the
// destructor (which ends the reply stream: for a Zenoh query, the query's
// final message; for a forwarded one, the answer sent back to the node that
// forwarded it) only on the reply worker: they may send on Zenoh.
// Ownership: shared (SharedExchange); the last reference ends it.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "bridge/cpp/zenoh_bridge.hpp"
#include "replication/requests.hpp"
#include "server/forwarding.hpp"

namespace mailbox {

class Exchange {
 public:
  virtual ~Exchange() = default;
  virtual std::string_view key() const = 0;
  virtual std::string_view parameters() const = 0;
  virtual std::optional<std::string_view> payload() const = 0;
  virtual std::optional<std::string_view> encoding() const = 0;
  virtual std::optional<std::string_view> attachment() const = 0;
  virtual void reply(std::string_view key, std::string_view payload, std::string_view encoding,
                     std::optional<std::string_view> attachment) = 0;
  virtual void reply_error(std::string_view payload, std::string_view encoding) = 0;

  // For metrics (server/metrics.hpp): when the request arrived, and the
  // slot of its operation once known (-1: not a counted request). Set by
  // the thread that parses it, before it is handed on.
  const std::chrono::steady_clock::time_point arrived_at = std::chrono::steady_clock::now();
  int metric_slot = -1;
};

using SharedExchange = std::shared_ptr<Exchange>;

// A query from a client of this node.
class ZenohExchange final : public Exchange {
 public:
  explicit ZenohExchange(zenoh::Query&& query) : query_(std::move(query)) {}
  std::string_view key() const override { return query_.key(); }
  std::string_view parameters() const override { return query_.parameters(); }
  std::optional<std::string_view> payload() const override { return query_.payload(); }
  std::optional<std::string_view> encoding() const override { return query_.encoding(); }
  std::optional<std::string_view> attachment() const override { return query_.attachment(); }
  void reply(std::string_view key, std::string_view payload, std::string_view encoding,
             std::optional<std::string_view> attachment) override {
    query_.reply(key, payload, encoding, attachment);
  }
  void reply_error(std::string_view payload, std::string_view encoding) override {
    query_.reply_error(payload, encoding);
  }

 private:
  zenoh::Query query_;
};

// A query another node forwarded: its replies are collected and sent back
// as one answer when it ends.
class ForwardedExchange final : public Exchange {
 public:
  ForwardedExchange(ForwardedRequest request, ForwardResponder respond)
      : request_(std::move(request)), respond_(std::move(respond)) {}
  ~ForwardedExchange() override {
    if (respond_) respond_(encode_forwarded_answer(answer_));
  }
  std::string_view key() const override { return request_.key; }
  std::string_view parameters() const override { return request_.parameters; }
  std::optional<std::string_view> payload() const override { return view(request_.payload); }
  std::optional<std::string_view> encoding() const override { return view(request_.encoding); }
  std::optional<std::string_view> attachment() const override { return view(request_.attachment); }
  void reply(std::string_view key, std::string_view payload, std::string_view encoding,
             std::optional<std::string_view> attachment) override {
    ForwardedReply r;
    r.ok = true;
    r.key = std::string(key);
    r.payload = std::string(payload);
    r.encoding = std::string(encoding);
    if (attachment) r.attachment = std::string(*attachment);
    answer_.replies.push_back(std::move(r));
  }
  void reply_error(std::string_view payload, std::string_view encoding) override {
    ForwardedReply r;
    r.ok = false;
    r.payload = std::string(payload);
    r.encoding = std::string(encoding);
    answer_.replies.push_back(std::move(r));
  }
  // Answers "this node does not lead; nothing done" instead of replies.
  void answer_not_leader(uint64_t leader_hint) {
    answer_.not_leader = true;
    answer_.leader_hint = leader_hint;
    answer_.replies.clear();
  }

 private:
  static std::optional<std::string_view> view(const std::optional<std::string>& s) {
    if (!s) return std::nullopt;
    return std::string_view(*s);
  }
  ForwardedRequest request_;
  ForwardedAnswer answer_;
  ForwardResponder respond_;
};

}  // namespace mailbox
