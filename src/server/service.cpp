#include "server/service.hpp"

#include "server/replies.hpp"
#include "util/log.hpp"

namespace mailbox {
namespace {
constexpr std::string_view kDefaultEncoding = "zenoh/bytes";
}  // namespace

MailboxService::MailboxService(ServiceOptions options, zenoh::Session& session, RaftNode& node)
    : options_(std::move(options)), session_(session), node_(node) {}

MailboxService::~MailboxService() {
  stop_accepting();
  drain_replies();
}

Status MailboxService::start() {
  std::string error;
  queryable_ = session_.declare_queryable(
      options_.prefix + "/**", /*complete=*/true, [this](zenoh::Query&& q) { on_query(std::move(q)); }, &error);
  if (!queryable_) return Status::error(ErrorCode::kInternal, "cannot declare queryable: " + error);
  subscriber_ = session_.declare_subscriber(
      options_.prefix + "/*", [this](const zenoh::Sample& s) { on_publication(s); }, &error);
  if (!subscriber_) return Status::error(ErrorCode::kInternal, "cannot declare subscriber: " + error);
  return Status::ok();
}

void MailboxService::stop_accepting() {
  queryable_.reset();
  subscriber_.reset();
}

void MailboxService::drain_replies() { worker_.stop(); }

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
  auto done = [this, query, id](CommandResult&& r) mutable {
    if (!r.status.is_ok()) return reply_error(std::move(query), std::move(r.status));
    reply_json(std::move(query), put_reply(id));
  };
  if (!node_.submit_command(std::move(command), std::move(done))) {
    reply_error(std::move(query), Status::error(ErrorCode::kUnavailable, "the server is shutting down"));
  }
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
  auto done = [this, query](CommandResult&& r) mutable {
    if (!r.status.is_ok()) return reply_error(std::move(query), std::move(r.status));
    reply_json(std::move(query), put_reply(r.put_id));
  };
  if (!node_.submit_command(std::move(put), std::move(done))) {
    reply_error(std::move(query), Status::error(ErrorCode::kUnavailable, "the server is shutting down"));
  }
}

void MailboxService::submit_consume(SharedQuery query, Request&& request) {
  const bool batch_shape = request.max_count.has_value();
  ConsumeCommand consume{request.mailbox, request.max_count.value_or(1), request.lease_ms.value_or(0),
                         request.rid.value_or("")};
  auto done = [this, query, batch_shape, mailbox = request.mailbox](CommandResult&& r) mutable {
    if (!r.status.is_ok()) return reply_error(std::move(query), std::move(r.status));
    reply_messages(std::move(query), std::move(mailbox), std::move(r.messages), batch_shape);
  };
  if (!node_.submit_command(std::move(consume), std::move(done), request.wait_ms.value_or(0))) {
    reply_error(std::move(query), Status::error(ErrorCode::kUnavailable, "the server is shutting down"));
  }
}

void MailboxService::submit_read(SharedQuery query, ReadRequest&& read, bool batch_shape) {
  const ReadRequest::Kind kind = read.kind;
  std::string mailbox = read.mailbox;
  auto done = [this, query, kind, batch_shape, mailbox](ReadResult&& r) mutable {
    if (!r.status.is_ok()) return reply_error(std::move(query), std::move(r.status));
    if (kind == ReadRequest::Kind::kStats) return reply_json(std::move(query), stats_reply(mailbox, r.stats));
    reply_messages(std::move(query), std::move(mailbox), std::move(r.messages), batch_shape);
  };
  if (!node_.submit_read(std::move(read), std::move(done))) {
    reply_error(std::move(query), Status::error(ErrorCode::kUnavailable, "the server is shutting down"));
  }
}

void MailboxService::reply_error(SharedQuery query, Status status) {
  worker_.push([this, query = std::move(query), status = std::move(status)]() mutable {
    query->reply_error(error_reply(status), kJsonEncoding);
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

void MailboxService::reply_messages(SharedQuery query, std::string mailbox, std::vector<DeliveredMessage> messages,
                                    bool batch_shape) {
  worker_.push([this, query = std::move(query), mailbox = std::move(mailbox), messages = std::move(messages),
                batch_shape]() mutable {
    if (batch_shape) {
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
  if (!s.is_ok() || sample.payload.empty() || sample.payload.size() > options_.max_payload_bytes ||
      sample.encoding.size() > limits::kMaxEncodingBytes || !admit()) {
    counters_.publications_dropped.fetch_add(1, std::memory_order_relaxed);
    log_debug("dropped publication on %.*s", static_cast<int>(sample.key.size()), sample.key.data());
    return;
  }
  PutCommand put;
  put.mailbox = std::move(mailbox);
  put.encoding = std::string(sample.encoding.empty() ? kDefaultEncoding : sample.encoding);
  put.payload = std::string(sample.payload);
  put.ttl_ms = options_.default_ttl_ms;
  auto done = [this](CommandResult&& r) {
    if (!r.status.is_ok()) {
      counters_.publications_dropped.fetch_add(1, std::memory_order_relaxed);
      log_warn("publication not stored: %s", r.status.message.c_str());
    }
    release();
  };
  if (!node_.submit_command(std::move(put), std::move(done))) {
    counters_.publications_dropped.fetch_add(1, std::memory_order_relaxed);
    release();
  }
}

}  // namespace mailbox
