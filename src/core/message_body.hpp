// message_body.hpp: the immutable part of a message (its payload and
// encoding), in one heap block with its reference count.
//
// What it is for: a stored message and every reply that delivers it share
// one body. With a million mailboxes of one small message each, the body is
// most of a message's cost, so it is one allocation: a 12-byte header, the
// payload, then the encoding (a 64-byte payload with "zenoh/bytes" fits a
// 96-byte malloc chunk, where `make_shared` of two `std::string`s took 176).
// The payload starts at a fixed offset from the block, so the state can
// point at it (snapshots) without reading the header.
//
// Ownership: `BodyRef` is a counted reference, like `shared_ptr<const T>`
// without a weak count or a control block; the last one to go frees the
// block. Threads: the count is atomic, so references may be copied and
// dropped on any thread; the bytes never change after `make`, so any thread
// holding a reference may read them.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>

namespace mailbox {

class BodyRef;

class MessageBody {
 public:
  // A new body holding copies of `encoding` (at most UINT16_MAX bytes) and
  // `payload` (at most UINT32_MAX bytes).
  static BodyRef make(std::string_view encoding, std::string_view payload);

  std::string_view payload() const { return {payload_data(), payload_bytes_}; }
  std::string_view encoding() const { return {payload_data() + payload_bytes_, encoding_bytes_}; }
  // Where the payload of the body at `body` starts, without reading it.
  static const char* payload_data_of(const MessageBody* body) {
    return reinterpret_cast<const char*>(body) + sizeof(MessageBody);
  }
  // Bytes of the heap block (for memory accounting in tests and tools).
  size_t block_bytes() const { return sizeof(MessageBody) + payload_bytes_ + encoding_bytes_; }

  MessageBody(const MessageBody&) = delete;
  MessageBody& operator=(const MessageBody&) = delete;

 private:
  friend class BodyRef;
  MessageBody(uint32_t payload_bytes, uint16_t encoding_bytes)
      : payload_bytes_(payload_bytes), encoding_bytes_(encoding_bytes) {}
  const char* payload_data() const { return payload_data_of(this); }

  mutable std::atomic<uint32_t> refs_{1};
  const uint32_t payload_bytes_;
  const uint16_t encoding_bytes_;
};
static_assert(sizeof(MessageBody) == 12, "the body header stays small");

// A counted reference to a body (or none).
class BodyRef {
 public:
  BodyRef() = default;
  BodyRef(std::nullptr_t) {}
  BodyRef(const BodyRef& other) : body_(other.body_) {
    if (body_ != nullptr) body_->refs_.fetch_add(1, std::memory_order_relaxed);
  }
  BodyRef(BodyRef&& other) noexcept : body_(std::exchange(other.body_, nullptr)) {}
  BodyRef& operator=(BodyRef other) noexcept {
    std::swap(body_, other.body_);
    return *this;
  }
  ~BodyRef() { reset(); }

  void reset();
  const MessageBody* get() const { return body_; }
  const MessageBody* operator->() const { return body_; }
  const MessageBody& operator*() const { return *body_; }
  explicit operator bool() const { return body_ != nullptr; }
  friend bool operator==(const BodyRef& a, const BodyRef& b) { return a.body_ == b.body_; }
  // References to this body (for tests).
  uint32_t use_count() const { return body_ == nullptr ? 0 : body_->refs_.load(std::memory_order_relaxed); }

 private:
  friend class MessageBody;
  explicit BodyRef(MessageBody* adopted) : body_(adopted) {}
  MessageBody* body_ = nullptr;
};

}  // namespace mailbox
