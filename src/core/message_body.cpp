#include "core/message_body.hpp"

#include <cstdlib>
#include <cstring>
#include <new>

#include "core/assert.hpp"

namespace mailbox {

BodyRef MessageBody::make(std::string_view encoding, std::string_view payload) {
  MAILBOX_ASSERT(encoding.size() <= UINT16_MAX && payload.size() <= UINT32_MAX, "body sizes fit the header");
  void* block = std::malloc(sizeof(MessageBody) + payload.size() + encoding.size());
  if (block == nullptr) throw std::bad_alloc();
  auto* body = new (block) MessageBody(static_cast<uint32_t>(payload.size()), static_cast<uint16_t>(encoding.size()));
  char* bytes = static_cast<char*>(block) + sizeof(MessageBody);
  if (!payload.empty()) std::memcpy(bytes, payload.data(), payload.size());
  if (!encoding.empty()) std::memcpy(bytes + payload.size(), encoding.data(), encoding.size());
  return BodyRef(body);
}

void BodyRef::reset() {
  MessageBody* body = std::exchange(body_, nullptr);
  if (body == nullptr) return;
  if (body->refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    body->~MessageBody();
    std::free(body);
  }
}

}  // namespace mailbox
