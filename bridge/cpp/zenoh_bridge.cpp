#include "zenoh_bridge.hpp"

#include <cstdlib>
#include <cstring>
#include <string>

#include "util/no_blocking_sends.hpp"

namespace mailbox::zenoh {
namespace {

// Held by every trampoline while it runs a handler: a handler runs on a
// Zenoh worker and must never wait on a Zenoh send (util/no_blocking_sends.hpp).
constexpr const char* kInZenohCallback = "inside a Zenoh callback: hand sends and finished queries to another thread";

constexpr size_t kErrorBufferBytes = 512;

MbzBytes bytes_of(std::string_view s) { return MbzBytes{reinterpret_cast<const uint8_t*>(s.data() ? s.data() : ""), s.size()}; }
MbzBytes optional_bytes(std::optional<std::string_view> s) {
  return s ? bytes_of(*s) : MbzBytes{nullptr, 0};
}
std::string_view view_of(MbzBytes b) {
  return b.data == nullptr ? std::string_view() : std::string_view(reinterpret_cast<const char*>(b.data), b.len);
}
std::optional<std::string_view> optional_view(MbzBytes b) {
  if (b.data == nullptr) return std::nullopt;
  return view_of(b);
}

struct GetContext {
  ReplyHandler on_reply;
  DoneHandler on_done;
};

}  // namespace

Query& Query::operator=(Query&& other) noexcept {
  if (this != &other) {
    finish();
    handle_ = other.handle_;
    other.handle_ = nullptr;
  }
  return *this;
}

std::string_view Query::key() const { return view_of(mbz_query_key(handle_)); }
std::string_view Query::parameters() const { return view_of(mbz_query_parameters(handle_)); }
std::optional<std::string_view> Query::payload() const { return optional_view(mbz_query_payload(handle_)); }
std::optional<std::string_view> Query::encoding() const { return optional_view(mbz_query_encoding(handle_)); }
std::optional<std::string_view> Query::attachment() const { return optional_view(mbz_query_attachment(handle_)); }

bool Query::reply(std::string_view key, std::string_view payload, std::string_view encoding,
                  std::optional<std::string_view> attachment) const {
  if (handle_ == nullptr) return false;
  assert_may_block_on_zenoh("Query::reply");
  return mbz_query_reply(handle_, bytes_of(key), bytes_of(payload), bytes_of(encoding), optional_bytes(attachment)) ==
         MBZ_OK;
}

bool Query::reply_error(std::string_view payload, std::string_view encoding) const {
  if (handle_ == nullptr) return false;
  assert_may_block_on_zenoh("Query::reply_error");
  return mbz_query_reply_err(handle_, bytes_of(payload), bytes_of(encoding)) == MBZ_OK;
}

void Query::finish() {
  if (handle_ != nullptr) {
    assert_may_block_on_zenoh("Query::finish");
    mbz_query_drop(handle_);
    handle_ = nullptr;
  }
}

std::unique_ptr<Session> Session::open(const std::string& config_json5, std::string* error) {
  char buffer[kErrorBufferBytes] = {0};
  MbzSession* handle = mbz_session_open(bytes_of(config_json5), buffer, sizeof buffer);
  if (handle == nullptr) {
    if (error) *error = buffer;
    return nullptr;
  }
  return std::unique_ptr<Session>(new Session(handle));
}

std::unique_ptr<Session> Session::open_deferred(const std::string& config_json5, std::string* error) {
  return open_deferred(config_json5, {}, error);
}

std::unique_ptr<Session> Session::open_deferred(const std::string& base_json5, const ConfigOverrides& overrides,
                                                std::string* error) {
  char buffer[kErrorBufferBytes] = {0};
  std::vector<MbzConfigEntry> entries;
  entries.reserve(overrides.size());
  for (const auto& [key, value] : overrides) entries.push_back(MbzConfigEntry{bytes_of(key), bytes_of(value)});
  MbzSession* handle = mbz_session_open_deferred(bytes_of(base_json5), entries.data(), entries.size(), buffer,
                                                 sizeof buffer);
  if (handle == nullptr) {
    if (error) *error = buffer;
    return nullptr;
  }
  return std::unique_ptr<Session>(new Session(handle));
}

bool Session::start(std::string* error) {
  assert_may_block_on_zenoh("Session::start");
  char buffer[kErrorBufferBytes] = {0};
  if (mbz_session_start(handle_, buffer, sizeof buffer) == MBZ_OK) return true;
  if (error) *error = buffer;
  return false;
}

std::optional<Session::SessionCounts> Session::session_counts() const {
  assert_may_block_on_zenoh("Session::session_counts");
  MbzSessionCounts counts{};
  if (mbz_session_counts(handle_, &counts) != MBZ_OK) return std::nullopt;
  return SessionCounts{counts.clients, counts.peers, counts.routers};
}

Session::~Session() { mbz_session_close(handle_); }

std::unique_ptr<Queryable> Session::declare_queryable(const std::string& key_expr, bool complete,
                                                      QueryHandler handler, std::string* error) {
  assert_may_block_on_zenoh("Session::declare_queryable");
  std::unique_ptr<Queryable> q(new Queryable());
  q->handler_ = std::move(handler);
  char buffer[kErrorBufferBytes] = {0};
  auto trampoline = [](void* context, MbzQuery* query) {
    auto* self = static_cast<Queryable*>(context);
    NoBlockingSendsScope scope(kInZenohCallback);
    try {
      self->handler_(Query(query));
    } catch (...) {
      // A handler must not throw; the query has been finished by ~Query.
    }
  };
  q->handle_ = mbz_declare_queryable(handle_, bytes_of(key_expr), complete, trampoline, q.get(), buffer, sizeof buffer);
  if (q->handle_ == nullptr) {
    if (error) *error = buffer;
    return nullptr;
  }
  return q;
}

std::unique_ptr<Subscriber> Session::declare_subscriber(const std::string& key_expr, SampleHandler handler,
                                                        std::string* error) {
  assert_may_block_on_zenoh("Session::declare_subscriber");
  std::unique_ptr<Subscriber> s(new Subscriber());
  s->handler_ = std::move(handler);
  char buffer[kErrorBufferBytes] = {0};
  auto trampoline = [](void* context, const MbzSample* sample) {
    auto* self = static_cast<Subscriber*>(context);
    Sample view{view_of(sample->key), view_of(sample->payload), view_of(sample->encoding),
                optional_view(sample->attachment), optional_view(sample->timestamp)};
    NoBlockingSendsScope scope(kInZenohCallback);
    try {
      self->handler_(view);
    } catch (...) {
    }
  };
  s->handle_ = mbz_declare_subscriber(handle_, bytes_of(key_expr), trampoline, s.get(), buffer, sizeof buffer);
  if (s->handle_ == nullptr) {
    if (error) *error = buffer;
    return nullptr;
  }
  return s;
}

std::unique_ptr<LivelinessToken> Session::declare_liveliness_token(const std::string& key_expr, std::string* error) {
  assert_may_block_on_zenoh("Session::declare_liveliness_token");
  std::unique_ptr<LivelinessToken> t(new LivelinessToken());
  char buffer[kErrorBufferBytes] = {0};
  t->handle_ = mbz_declare_liveliness_token(handle_, bytes_of(key_expr), buffer, sizeof buffer);
  if (t->handle_ == nullptr) {
    if (error) *error = buffer;
    return nullptr;
  }
  return t;
}

std::unique_ptr<Subscriber> Session::declare_liveliness_subscriber(const std::string& key_expr,
                                                                   LivelinessHandler handler, std::string* error) {
  assert_may_block_on_zenoh("Session::declare_liveliness_subscriber");
  std::unique_ptr<Subscriber> s(new Subscriber());
  s->liveliness_handler_ = std::move(handler);
  char buffer[kErrorBufferBytes] = {0};
  auto trampoline = [](void* context, MbzBytes key, bool alive) {
    auto* self = static_cast<Subscriber*>(context);
    NoBlockingSendsScope scope(kInZenohCallback);
    try {
      self->liveliness_handler_(view_of(key), alive);
    } catch (...) {
    }
  };
  s->handle_ = mbz_declare_liveliness_subscriber(handle_, bytes_of(key_expr), trampoline, s.get(), buffer,
                                                 sizeof buffer);
  if (s->handle_ == nullptr) {
    if (error) *error = buffer;
    return nullptr;
  }
  return s;
}

LivelinessToken::~LivelinessToken() {
  assert_may_block_on_zenoh("~LivelinessToken");
  mbz_undeclare_liveliness_token(handle_);
}

bool Session::put(std::string_view key_expr, std::string_view payload, std::optional<std::string_view> encoding,
                  std::optional<std::string_view> attachment, bool block) {
  assert_may_block_on_zenoh("Session::put");
  return mbz_put(handle_, bytes_of(key_expr), bytes_of(payload), optional_bytes(encoding), optional_bytes(attachment),
                 block ? MBZ_CONGESTION_BLOCK : MBZ_CONGESTION_DROP) == MBZ_OK;
}

namespace {
void get_reply_trampoline(void* ctx, const MbzReply* reply) {
  auto* c = static_cast<GetContext*>(ctx);
  Reply r{reply->is_ok, view_of(reply->key), view_of(reply->payload), view_of(reply->encoding),
          optional_view(reply->attachment)};
  NoBlockingSendsScope scope(kInZenohCallback);
  try {
    if (c->on_reply) c->on_reply(r);
  } catch (...) {
  }
}
void get_done_trampoline(void* ctx) {
  NoBlockingSendsScope scope(kInZenohCallback);
  std::unique_ptr<GetContext> c(static_cast<GetContext*>(ctx));
  try {
    if (c->on_done) c->on_done();
  } catch (...) {
  }
}
}  // namespace

bool Session::liveliness_get(std::string_view key_expr, uint64_t timeout_ms, ReplyHandler on_reply,
                             DoneHandler on_done) {
  auto* context = new GetContext{std::move(on_reply), std::move(on_done)};
  return mbz_liveliness_get(handle_, bytes_of(key_expr), timeout_ms, get_reply_trampoline, get_done_trampoline,
                            context) == MBZ_OK;
}

bool Session::get(std::string_view selector, const GetOptions& options, ReplyHandler on_reply, DoneHandler on_done) {
  assert_may_block_on_zenoh("Session::get");
  auto* context = new GetContext{std::move(on_reply), std::move(on_done)};
  MbzGetOptions raw{options.timeout_ms, static_cast<int32_t>(options.target),
                    static_cast<int32_t>(options.consolidation)};
  return mbz_get(handle_, bytes_of(selector), optional_bytes(options.payload), optional_bytes(options.encoding),
                 optional_bytes(options.attachment), &raw, get_reply_trampoline, get_done_trampoline, context) == MBZ_OK;
}

Queryable::~Queryable() {
  assert_may_block_on_zenoh("~Queryable");
  mbz_undeclare_queryable(handle_);
}
Subscriber::~Subscriber() {
  assert_may_block_on_zenoh("~Subscriber");
  mbz_undeclare_subscriber(handle_);
}

void use_mailbox_runtime_unless_configured() {
  const std::string layout = "(app:(worker_threads:" + std::to_string(kAppRuntimeWorkerThreads) +
                             "),rx:(handover:app),net:(handover:app),acc:(handover:app),tx:(worker_threads:" +
                             std::to_string(kTxRuntimeWorkerThreads) + "))";
  setenv("ZENOH_RUNTIME", layout.c_str(), /*overwrite=*/0);
}

void init_logging(const char* default_level) {
  mbz_init_logging(bytes_of(default_level ? std::string_view(default_level) : std::string_view("error")));
}

}  // namespace mailbox::zenoh
