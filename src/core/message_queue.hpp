// message_queue.hpp: a mailbox's messages in FIFO order, in one ring buffer.
//
// What it is for: `std::deque` allocates a 512-byte block and a 64-byte map
// for its first element, which made a mailbox of one small message cost
// over half a kilobyte. This queue holds one element inline (the common
// mailbox holds one message: no allocation at all), and more in one heap
// array whose capacity is a power of two, doubling when full, halving when a
// quarter full (so a mailbox that drains gives its memory back, and one that
// hovers at a boundary does not reallocate on every operation). Its size is
// sizeof(T) (or a pointer, if larger) plus three 32-bit counts.
//
// Operations: push_back and pop_front O(1) amortised; erase(i) moves the
// elements after i (the queue stays in order); index access O(1). Sizes are
// 32-bit: at most `kMaxSize` elements (the state machine's quotas keep a
// mailbox below that).
//
// Threads: none of its own; a plain value owned by its mailbox.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <new>
#include <type_traits>
#include <utility>

#include "core/assert.hpp"

namespace mailbox {

template <typename T>
class MessageQueue {
 public:
  static constexpr uint32_t kMaxSize = uint32_t{1} << 31;

  MessageQueue() {}
  MessageQueue(const MessageQueue&) = delete;
  MessageQueue& operator=(const MessageQueue&) = delete;
  MessageQueue(MessageQueue&& other) noexcept { take(other); }
  MessageQueue& operator=(MessageQueue&& other) noexcept {
    if (this != &other) {
      clear();
      take(other);
    }
    return *this;
  }
  ~MessageQueue() { clear(); }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // Elements the array holds room for (0 when none is allocated).
  size_t capacity() const { return capacity_; }

  T& operator[](size_t i) { return data()[slot(i)]; }
  const T& operator[](size_t i) const { return data()[slot(i)]; }
  T& front() { return (*this)[0]; }
  T& back() { return (*this)[size_ - 1]; }
  const T& front() const { return (*this)[0]; }
  const T& back() const { return (*this)[size_ - 1]; }

  void push_back(T value) {
    MAILBOX_ASSERT(size_ < kMaxSize, "a mailbox queue stays below its size limit");
    if (size_ == capacity_) grow();
    new (&data()[slot(size_)]) T(std::move(value));
    size_ += 1;
  }

  void pop_front() { erase(0); }

  // Removes element i; the elements after it move up by one.
  void erase(size_t i) {
    MAILBOX_ASSERT(i < size_, "erase within the queue");
    if (i == 0) {
      data()[head_].~T();
      head_ = (head_ + 1) & mask();
    } else {
      for (size_t j = i; j + 1 < size_; ++j) (*this)[j] = std::move((*this)[j + 1]);
      (*this)[size_ - 1].~T();
    }
    const uint32_t old_capacity = capacity_;
    size_ -= 1;
    if (size_ == 0) {
      clear();
    } else if (old_capacity >= 4 && size_ <= old_capacity / 4) {
      reallocate(old_capacity / 2, old_capacity);
    }
  }

  void clear() {
    if (capacity_ == 0) return;
    for (size_t i = 0; i < size_; ++i) (*this)[i].~T();
    if (capacity_ > 1) ::operator delete(storage_.heap);
    head_ = 0;
    size_ = 0;
    capacity_ = 0;
  }

  // A forward iterator in FIFO order (for range-for and algorithms that
  // only walk).
  template <typename Q, typename V>
  class Iter {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = std::remove_const_t<V>;
    using difference_type = std::ptrdiff_t;
    using pointer = V*;
    using reference = V&;
    Iter() = default;
    Iter(Q* queue, size_t index) : queue_(queue), index_(index) {}
    reference operator*() const { return (*queue_)[index_]; }
    pointer operator->() const { return &(*queue_)[index_]; }
    Iter& operator++() {
      ++index_;
      return *this;
    }
    Iter operator++(int) {
      Iter copy = *this;
      ++index_;
      return copy;
    }
    friend bool operator==(const Iter& a, const Iter& b) { return a.index_ == b.index_; }
    size_t index() const { return index_; }

   private:
    Q* queue_ = nullptr;
    size_t index_ = 0;
  };
  using iterator = Iter<MessageQueue, T>;
  using const_iterator = Iter<const MessageQueue, const T>;
  iterator begin() { return {this, 0}; }
  iterator end() { return {this, size_}; }
  const_iterator begin() const { return {this, 0}; }
  const_iterator end() const { return {this, size_}; }

 private:
  uint32_t mask() const { return capacity_ - 1; }
  size_t slot(size_t i) const { return (head_ + i) & mask(); }

  void grow() { reallocate(capacity_ == 0 ? 1 : capacity_ * 2, capacity_); }

  // Capacity 1 is the inline slot; more is a heap array.
  T* data() { return capacity_ == 1 ? std::launder(reinterpret_cast<T*>(storage_.one)) : storage_.heap; }
  const T* data() const {
    return capacity_ == 1 ? std::launder(reinterpret_cast<const T*>(storage_.one)) : storage_.heap;
  }

  // Grows from the inline slot or shrinks to a smaller heap array (never
  // back to the inline slot: only an empty queue starts there again).
  void reallocate(uint32_t new_capacity, uint32_t old_capacity) {
    MAILBOX_ASSERT(new_capacity >= size_ && (new_capacity & (new_capacity - 1)) == 0, "capacity: a power of two");
    MAILBOX_ASSERT(old_capacity == capacity_ && (new_capacity > 1 || old_capacity == 0), "the inline slot comes first");
    if (new_capacity == 1) {
      capacity_ = 1;
      head_ = 0;
      return;
    }
    T* old = data();
    T* fresh = static_cast<T*>(::operator new(sizeof(T) * new_capacity));
    for (uint32_t i = 0; i < size_; ++i) {
      T& from = old[(head_ + i) & (old_capacity - 1)];
      new (&fresh[i]) T(std::move(from));
      from.~T();
    }
    if (old_capacity > 1) ::operator delete(storage_.heap);
    storage_.heap = fresh;
    head_ = 0;
    capacity_ = new_capacity;
  }

  // Takes other's elements; `this` is empty.
  void take(MessageQueue& other) {
    if (other.capacity_ == 1) {
      if (other.size_ == 1) {
        T& from = *other.data();
        new (storage_.one) T(std::move(from));
        from.~T();
      }
    } else {
      storage_.heap = other.storage_.heap;
    }
    head_ = std::exchange(other.head_, 0);
    size_ = std::exchange(other.size_, 0);
    capacity_ = std::exchange(other.capacity_, 0);
  }

  union Storage {
    T* heap;
    alignas(T) unsigned char one[sizeof(T)];
  } storage_;
  uint32_t head_ = 0;      // slot of element 0
  uint32_t size_ = 0;
  uint32_t capacity_ = 0;  // 0, 1 (the inline slot) or a power of two (the heap array)
};

}  // namespace mailbox
