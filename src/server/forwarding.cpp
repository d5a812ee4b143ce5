#include "server/forwarding.hpp"

#include "core/bytes.hpp"

namespace mailbox {
namespace {

void optional_bytes(ByteWriter& w, const std::optional<std::string>& v) {
  w.u8(v.has_value() ? 1 : 0);
  if (v) w.bytes(*v);
}

bool read_optional(ByteReader& r, std::optional<std::string>* out) {
  const uint8_t present = r.u8();
  if (present > 1) return false;
  if (present == 1) {
    *out = std::string(r.bytes());
  } else {
    out->reset();
  }
  return r.ok();
}

}  // namespace

std::string encode_forwarded_request(const ForwardedRequest& request) {
  ByteWriter w;
  w.reserve(64 + request.key.size() + request.parameters.size() + (request.payload ? request.payload->size() : 0) +
            (request.attachment ? request.attachment->size() : 0));
  w.u8(kForwardFormatVersion);
  w.u8(static_cast<uint8_t>(request.kind));
  w.bytes(request.key);
  w.bytes(request.parameters);
  optional_bytes(w, request.payload);
  optional_bytes(w, request.encoding);
  optional_bytes(w, request.attachment);
  w.u64(request.publication_id);
  return w.take();
}

bool decode_forwarded_request(std::string_view bytes, ForwardedRequest* request) {
  ByteReader r(bytes);
  if (r.u8() != kForwardFormatVersion) return false;
  const uint8_t kind = r.u8();
  if (kind < static_cast<uint8_t>(ForwardedRequest::Kind::kQuery) ||
      kind > static_cast<uint8_t>(ForwardedRequest::Kind::kAdmin)) {
    return false;
  }
  request->kind = static_cast<ForwardedRequest::Kind>(kind);
  request->key = std::string(r.bytes());
  request->parameters = std::string(r.bytes());
  if (!read_optional(r, &request->payload) || !read_optional(r, &request->encoding) ||
      !read_optional(r, &request->attachment)) {
    return false;
  }
  request->publication_id = r.u64();
  return r.ok() && r.at_end();
}

std::string encode_forwarded_answer(const ForwardedAnswer& answer) {
  ByteWriter w;
  size_t total = 32;
  for (const auto& reply : answer.replies) {
    total += 32 + reply.key.size() + reply.payload.size() + reply.encoding.size() +
             (reply.attachment ? reply.attachment->size() : 0);
  }
  w.reserve(total);
  w.u8(kForwardFormatVersion);
  w.u8(answer.not_leader ? 1 : 0);
  w.u64(answer.leader_hint);
  w.varint(answer.replies.size());
  for (const auto& reply : answer.replies) {
    w.u8(reply.ok ? 1 : 0);
    w.bytes(reply.key);
    w.bytes(reply.payload);
    w.bytes(reply.encoding);
    optional_bytes(w, reply.attachment);
  }
  return w.take();
}

bool decode_forwarded_answer(std::string_view bytes, ForwardedAnswer* answer) {
  ByteReader r(bytes);
  if (r.u8() != kForwardFormatVersion) return false;
  const uint8_t not_leader = r.u8();
  if (not_leader > 1) return false;
  answer->not_leader = not_leader == 1;
  answer->leader_hint = r.u64();
  const uint64_t count = r.varint();
  if (!r.ok() || count > r.remaining()) return false;  // each reply takes several bytes
  answer->replies.clear();
  answer->replies.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    ForwardedReply reply;
    const uint8_t ok = r.u8();
    if (ok > 1) return false;
    reply.ok = ok == 1;
    reply.key = std::string(r.bytes());
    reply.payload = std::string(r.bytes());
    reply.encoding = std::string(r.bytes());
    if (!read_optional(r, &reply.attachment)) return false;
    answer->replies.push_back(std::move(reply));
  }
  return r.ok() && r.at_end();
}

}  // namespace mailbox
