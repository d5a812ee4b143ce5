// zenoh_bridge.hpp: a thin C++ RAII wrapper over the Rust bridge's C ABI
// (bridge/include/mailbox_bridge.h). The only place C++ code touches Zenoh.
//
// Threads: a Session may be used from any thread. Callbacks run on Zenoh's
// threads; they must be quick, must not throw and must only hand work to
// another thread: no send of any kind (reply, finishing a query, put, get,
// declare, undeclare) may start inside one, because a send can wait for a
// queue that only a Zenoh task frees. Every send asserts this, in release
// builds too (util/no_blocking_sends.hpp). A handler that receives a Query
// must move it out, never let it die inside the callback. `Query` objects are owned, move-only and may be answered
// from any thread; destroying one ends the client's reply stream.
//
// Ownership: Session owns the Zenoh session and must outlive every Queryable
// and Subscriber declared on it; Queryable/Subscriber own their callback
// object and undeclare themselves on destruction, after which no callback
// runs. Views (`std::string_view`) handed to callbacks are valid only during
// the callback.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mailbox_bridge.h"

namespace mailbox::zenoh {

// An incoming query; answering it is optional, dropping it finishes it.
class Query {
 public:
  explicit Query(MbzQuery* handle) : handle_(handle) {}
  Query(Query&& other) noexcept : handle_(other.handle_) { other.handle_ = nullptr; }
  Query& operator=(Query&& other) noexcept;
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;
  ~Query() { finish(); }

  std::string_view key() const;
  std::string_view parameters() const;
  std::optional<std::string_view> payload() const;
  std::optional<std::string_view> encoding() const;
  std::optional<std::string_view> attachment() const;

  // Both return false when Zenoh refused the reply.
  bool reply(std::string_view key, std::string_view payload, std::string_view encoding,
             std::optional<std::string_view> attachment) const;
  bool reply_error(std::string_view payload, std::string_view encoding) const;
  // Ends the reply stream now (also done by the destructor).
  void finish();

 private:
  MbzQuery* handle_;
};

struct Sample {
  std::string_view key;
  std::string_view payload;
  std::string_view encoding;
  std::optional<std::string_view> attachment;
  std::optional<std::string_view> timestamp;  // set by the first router on the way
};

struct Reply {
  bool ok = false;
  std::string_view key;  // empty for an error reply
  std::string_view payload;
  std::string_view encoding;
  std::optional<std::string_view> attachment;
};

enum class QueryTarget : int32_t {
  kBestMatching = MBZ_TARGET_BEST_MATCHING,
  kAll = MBZ_TARGET_ALL,
  kAllComplete = MBZ_TARGET_ALL_COMPLETE,
};
enum class Consolidation : int32_t {
  kAuto = MBZ_CONSOLIDATION_AUTO,
  kNone = MBZ_CONSOLIDATION_NONE,
  kMonotonic = MBZ_CONSOLIDATION_MONOTONIC,
  kLatest = MBZ_CONSOLIDATION_LATEST,
};

struct GetOptions {
  uint64_t timeout_ms = 10000;
  QueryTarget target = QueryTarget::kBestMatching;
  Consolidation consolidation = Consolidation::kAuto;
  std::optional<std::string_view> payload;
  std::optional<std::string_view> encoding;
  std::optional<std::string_view> attachment;
};

// Settings laid over a base configuration: (path such as
// "transport/link/tls/root_ca_certificate", JSON value).
using ConfigOverrides = std::vector<std::pair<std::string, std::string>>;

using QueryHandler = std::function<void(Query&&)>;
using SampleHandler = std::function<void(const Sample&)>;
using ReplyHandler = std::function<void(const Reply&)>;
using DoneHandler = std::function<void()>;
using LivelinessHandler = std::function<void(std::string_view key, bool alive)>;

class Queryable;
class Subscriber;
class LivelinessToken;

class Session {
 public:
  // Opens a session from a JSON5 config; null and `*error` set on failure.
  static std::unique_ptr<Session> open(const std::string& config_json5, std::string* error);
  // Opens a session that neither listens nor connects until `start`, so a
  // server can declare everything it serves before its first client
  // arrives (SPEC v2, "Readiness").
  static std::unique_ptr<Session> open_deferred(const std::string& config_json5, std::string* error);
  // The same from `base_json5` (an operator's file) with each override
  // (Zenoh config path, JSON value) inserted over it, in order.
  static std::unique_ptr<Session> open_deferred(const std::string& base_json5, const ConfigOverrides& overrides,
                                                std::string* error);
  // Starts a session from `open_deferred`: listens and connects. False (and
  // `*error`) when it fails or the session was already started.
  bool start(std::string* error);
  // The Zenoh sessions this one holds, by the other end's kind (a router:
  // its clients, and the peers and routers connected to it). Any thread.
  struct SessionCounts {
    uint64_t clients = 0;
    uint64_t peers = 0;
    uint64_t routers = 0;
  };
  std::optional<SessionCounts> session_counts() const;
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  std::unique_ptr<Queryable> declare_queryable(const std::string& key_expr, bool complete, QueryHandler handler,
                                               std::string* error);
  std::unique_ptr<Subscriber> declare_subscriber(const std::string& key_expr, SampleHandler handler,
                                                 std::string* error);
  // Publishes. `block`: wait for room in every transport queue on the way
  // rather than let Zenoh drop the publication when one is full (Zenoh's
  // default for puts is to drop; docs/PROTOCOL.md, "Fire-and-forget puts").
  bool put(std::string_view key_expr, std::string_view payload, std::optional<std::string_view> encoding,
           std::optional<std::string_view> attachment, bool block = true);
  // A token alive in the network while the returned object (and this
  // session) lives.
  std::unique_ptr<LivelinessToken> declare_liveliness_token(const std::string& key_expr, std::string* error);
  // Calls `handler` for each matching token already alive, then as tokens
  // appear and go. Undeclared (no more calls) when the result is destroyed.
  std::unique_ptr<Subscriber> declare_liveliness_subscriber(const std::string& key_expr, LivelinessHandler handler,
                                                            std::string* error);
  // Asks which matching tokens are alive: `on_reply` per live token (its key
  // in `Reply::key`), `on_done` exactly once at the end.
  bool liveliness_get(std::string_view key_expr, uint64_t timeout_ms, ReplyHandler on_reply, DoneHandler on_done);
  // Sends a query; `on_reply` per reply, `on_done` exactly once at the end
  // (even when this returns false).
  bool get(std::string_view selector, const GetOptions& options, ReplyHandler on_reply, DoneHandler on_done);

 private:
  explicit Session(MbzSession* handle) : handle_(handle) {}
  MbzSession* handle_;
};

class Queryable {
 public:
  ~Queryable();
  Queryable(const Queryable&) = delete;
  Queryable& operator=(const Queryable&) = delete;

 private:
  friend class Session;
  Queryable() = default;
  MbzQueryable* handle_ = nullptr;
  QueryHandler handler_;
};

class Subscriber {
 public:
  ~Subscriber();
  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;

 private:
  friend class Session;
  Subscriber() = default;
  MbzSubscriber* handle_ = nullptr;
  SampleHandler handler_;
  LivelinessHandler liveliness_handler_;
};

class LivelinessToken {
 public:
  ~LivelinessToken();
  LivelinessToken(const LivelinessToken&) = delete;
  LivelinessToken& operator=(const LivelinessToken&) = delete;

 private:
  friend class Session;
  LivelinessToken() = default;
  MbzLivelinessToken* handle_ = nullptr;
};

// Initialises Zenoh's logging from RUST_LOG, else `default_level`.
void init_logging(const char* default_level);

// Zenoh's runtime layout for this process unless the environment variable
// ZENOH_RUNTIME already sets one: the `tx` runtime (the tasks that drain
// each link's transmission queue into its socket) on threads of its own,
// and every other runtime (rx: receive and route; net, acc: links and
// accepts; app: callbacks and timers) handed over to one `app` runtime.
//
// Why these two and no fewer: a Zenoh send (routing a query to another
// router, a reply, finishing a query) that finds the link's queue full
// waits synchronously, on the thread that makes it, for the tx task to free
// a batch. Messages over one batch (64 KiB) fill it at once. If the tx task
// ran on the same single worker, nothing could free it: the send stalled
// until Zenoh closed the link 5 s later and the reply was lost (issue #11).
// A tx runtime of its own cannot be blocked by a send, because no send runs
// on it. Why not Zenoh's default (six threads in five runtimes): on two
// cores the hand-offs between them cost CPU per request
// (docs/BENCHMARKS.md, "Performance pass" and "Zenoh runtime layout").
// Sets ZENOH_RUNTIME, so call it first thing in main, before any thread
// starts and before any other call into Zenoh (the runtimes are built on
// first use).
inline constexpr int kAppRuntimeWorkerThreads = 1;
inline constexpr int kTxRuntimeWorkerThreads = 1;
void use_mailbox_runtime_unless_configured();

}  // namespace mailbox::zenoh
