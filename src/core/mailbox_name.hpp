// mailbox_name.hpp: a mailbox's name as the key of the state's mailbox map,
// in 16 bytes.
//
// What it is for: `std::string` is 32 bytes; with a million mailboxes the
// key is a fifth of a one-message mailbox's map node. A name of up to 15
// bytes is held inline (byte 15 holds its length); a longer one (mailbox
// names are at most limits::kMaxMailboxNameBytes) in a heap block of exactly
// its size. Compares as its bytes (`std::string_view` order), also against
// views and strings, so the map's transparent lookups keep working.
//
// Threads: a plain value; owned by the map node that holds it.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "core/assert.hpp"

namespace mailbox {

class MailboxName {
 public:
  static constexpr size_t kInlineBytes = 15;

  MailboxName() { bytes_[kTagByte] = 0; }
  explicit MailboxName(std::string_view name) { assign(name); }
  MailboxName(const MailboxName& other) { assign(other.view()); }
  MailboxName& operator=(const MailboxName& other) {
    if (this != &other) {
      MailboxName copy(other);
      swap(copy);
    }
    return *this;
  }
  ~MailboxName() {
    if (on_heap()) delete[] heap_data();
  }

  std::string_view view() const {
    if (!on_heap()) return {bytes_, static_cast<size_t>(bytes_[kTagByte])};
    uint32_t size = 0;
    std::memcpy(&size, bytes_ + sizeof(char*), sizeof size);
    return {heap_data(), size};
  }
  operator std::string_view() const { return view(); }
  std::string str() const { return std::string(view()); }
  bool on_heap() const { return static_cast<unsigned char>(bytes_[kTagByte]) == kHeapTag; }

  friend bool operator<(const MailboxName& a, const MailboxName& b) { return a.view() < b.view(); }
  friend bool operator<(const MailboxName& a, std::string_view b) { return a.view() < b; }
  friend bool operator<(std::string_view a, const MailboxName& b) { return a < b.view(); }
  friend bool operator==(const MailboxName& a, std::string_view b) { return a.view() == b; }

 private:
  static constexpr size_t kTagByte = 15;
  static constexpr unsigned char kHeapTag = 0xFF;

  void assign(std::string_view name) {
    MAILBOX_ASSERT(name.size() <= UINT32_MAX, "a mailbox name's size fits 32 bits");
    if (name.size() <= kInlineBytes) {
      if (!name.empty()) std::memcpy(bytes_, name.data(), name.size());
      bytes_[kTagByte] = static_cast<char>(name.size());
      return;
    }
    char* data = new char[name.size()];
    std::memcpy(data, name.data(), name.size());
    const auto size = static_cast<uint32_t>(name.size());
    std::memcpy(bytes_, &data, sizeof data);
    std::memcpy(bytes_ + sizeof data, &size, sizeof size);
    bytes_[kTagByte] = static_cast<char>(kHeapTag);
  }
  char* heap_data() const {
    char* data = nullptr;
    std::memcpy(&data, bytes_, sizeof data);
    return data;
  }
  void swap(MailboxName& other) {
    char tmp[sizeof bytes_];
    std::memcpy(tmp, bytes_, sizeof bytes_);
    std::memcpy(bytes_, other.bytes_, sizeof bytes_);
    std::memcpy(other.bytes_, tmp, sizeof bytes_);
  }

  alignas(8) char bytes_[16];
};
static_assert(sizeof(MailboxName) == 16, "a mailbox name is 16 bytes");

}  // namespace mailbox
