// bytes.hpp: little-endian binary writer and bounds-checked reader used by the
// command codec and the snapshot format.
//
// Threads: plain values; one object per thread.
// Ownership: ByteWriter owns its buffer; ByteReader borrows the bytes it reads
// and must not outlive them.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace mailbox {

class ByteWriter {
 public:
  void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u32(uint32_t v) { fixed(&v, sizeof v); }
  void u64(uint64_t v) { fixed(&v, sizeof v); }
  void i64(int64_t v) { fixed(&v, sizeof v); }
  void varint(uint64_t v) {
    while (v >= 0x80) {
      u8(static_cast<uint8_t>(v) | 0x80);
      v >>= 7;
    }
    u8(static_cast<uint8_t>(v));
  }
  void bytes(std::string_view s) {
    varint(s.size());
    out_.append(s.data(), s.size());
  }
  void reserve(size_t n) { out_.reserve(n); }
  size_t size() const { return out_.size(); }
  std::string& buffer() { return out_; }
  std::string take() { return std::move(out_); }

 private:
  void fixed(const void* p, size_t n) {
    static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "little-endian hosts only");
    out_.append(static_cast<const char*>(p), n);
  }
  std::string out_;
};

// Reads until the first failure; after that every read returns zero/empty and
// ok() is false, so a caller checks ok() once at the end.
class ByteReader {
 public:
  explicit ByteReader(std::string_view in) : in_(in) {}
  uint8_t u8() {
    if (!need(1)) return 0;
    return static_cast<uint8_t>(in_[pos_++]);
  }
  uint32_t u32() { return fixed<uint32_t>(); }
  uint64_t u64() { return fixed<uint64_t>(); }
  int64_t i64() { return fixed<int64_t>(); }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      uint8_t b = u8();
      if (!ok_) return 0;
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return v;
    }
    ok_ = false;
    return 0;
  }
  std::string_view bytes() {
    uint64_t n = varint();
    if (!ok_ || !need(n)) return {};
    std::string_view s = in_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  bool ok() const { return ok_; }
  bool at_end() const { return pos_ == in_.size(); }
  size_t remaining() const { return in_.size() - pos_; }

 private:
  bool need(uint64_t n) {
    if (!ok_ || n > in_.size() - pos_) {
      ok_ = false;
      return false;
    }
    return true;
  }
  template <typename T>
  T fixed() {
    T v{};
    if (!need(sizeof v)) return v;
    std::memcpy(&v, in_.data() + pos_, sizeof v);
    pos_ += sizeof v;
    return v;
  }
  std::string_view in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace mailbox
