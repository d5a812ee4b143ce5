// timer_heap.hpp: the state machine's timer index, an indexed binary
// min-heap of (due time, node).
//
// What it is for: every mailbox with messages has a due time (its next
// expiry or end of a hidden time), and the sweep must find the due ones
// without scanning every mailbox. A `std::set` node per mailbox cost 64
// bytes; a heap entry costs 16 (a time and a pointer to the mailbox's map
// node) in one array, and the node keeps its entry's position (32 bits) so
// that its due time can move or be removed in O(log n).
//
// Determinism: the order of entries inside the array depends on the history
// of operations, so nothing the state machine returns may depend on it: the
// minimum is a value, and `collect_due` returns the due nodes in no
// particular order (the state machine sorts them by name).
//
// `Node` is any type with a stable address while it is in the heap (a
// `std::map` node); `PositionOf` maps a `Node*` to the `uint32_t&` where the
// heap keeps its position (`kAbsent` when not in the heap).
//
// Threads: none of its own; owned by the state machine.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "core/assert.hpp"

namespace mailbox {

template <typename Node, typename PositionOf>
class TimerHeap {
 public:
  static constexpr uint32_t kAbsent = UINT32_MAX;

  explicit TimerHeap(PositionOf position_of = PositionOf()) : position_of_(position_of) {}

  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  // The earliest due time; INT64_MAX when empty.
  int64_t min_due_ms() const { return entries_.empty() ? INT64_MAX : entries_.front().due_ms; }
  // The due time of `node`, which must be in the heap.
  int64_t due_of(Node* node) const {
    const uint32_t pos = position_of_(node);
    MAILBOX_ASSERT(pos < entries_.size() && entries_[pos].node == node, "a node in the heap");
    return entries_[pos].due_ms;
  }
  bool contains(Node* node) const { return position_of_(node) != kAbsent; }

  // Puts `node` in the heap with `due_ms`, or moves it there.
  void set(Node* node, int64_t due_ms) {
    uint32_t& pos = position_of_(node);
    if (pos == kAbsent) {
      MAILBOX_ASSERT(entries_.size() < kAbsent, "the timer heap stays below 2^32 entries");
      pos = static_cast<uint32_t>(entries_.size());
      entries_.push_back(Entry{due_ms, node});
      sift_up(pos);
      return;
    }
    MAILBOX_ASSERT(pos < entries_.size() && entries_[pos].node == node, "a node in the heap");
    const int64_t old = entries_[pos].due_ms;
    entries_[pos].due_ms = due_ms;
    if (due_ms < old) {
      sift_up(pos);
    } else if (due_ms > old) {
      sift_down(pos);
    }
  }

  // Takes `node` out of the heap (nothing if it is not in it).
  void erase(Node* node) {
    uint32_t& pos_ref = position_of_(node);
    if (pos_ref == kAbsent) return;
    const uint32_t pos = pos_ref;
    MAILBOX_ASSERT(pos < entries_.size() && entries_[pos].node == node, "a node in the heap");
    pos_ref = kAbsent;
    const uint32_t last = static_cast<uint32_t>(entries_.size() - 1);
    if (pos != last) {
      entries_[pos] = entries_[last];
      entries_.pop_back();
      Node* moved = entries_[pos].node;
      position_of_(moved) = pos;
      // The moved entry may belong above or below.
      sift_up(pos);
      if (position_of_(moved) == pos) sift_down(pos);
    } else {
      entries_.pop_back();
    }
  }

  // Appends every node due at or before `now_ms` to `out` (in heap order:
  // sort them before acting on them in an order that matters). Visits only
  // due entries and their children.
  void collect_due(int64_t now_ms, std::vector<Node*>* out) const {
    if (entries_.empty() || entries_.front().due_ms > now_ms) return;
    std::vector<uint32_t> stack{0};
    while (!stack.empty()) {
      const uint32_t i = stack.back();
      stack.pop_back();
      out->push_back(entries_[i].node);
      for (uint64_t child = 2 * uint64_t{i} + 1; child <= 2 * uint64_t{i} + 2 && child < entries_.size(); ++child) {
        if (entries_[child].due_ms <= now_ms) stack.push_back(static_cast<uint32_t>(child));
      }
    }
  }

  void clear() {
    for (auto& e : entries_) position_of_(e.node) = kAbsent;
    entries_.clear();
    entries_.shrink_to_fit();
  }
  void reserve(size_t n) { entries_.reserve(n); }

  // Checks the heap property and every position (tests).
  bool valid() const {
    for (size_t i = 0; i < entries_.size(); ++i) {
      if (position_of_(entries_[i].node) != i) return false;
      if (i > 0 && entries_[(i - 1) / 2].due_ms > entries_[i].due_ms) return false;
    }
    return true;
  }

 private:
  struct Entry {
    int64_t due_ms;
    Node* node;
  };

  void sift_up(uint32_t i) {
    Entry moving = entries_[i];
    while (i > 0) {
      const uint32_t parent = (i - 1) / 2;
      if (entries_[parent].due_ms <= moving.due_ms) break;
      entries_[i] = entries_[parent];
      position_of_(entries_[i].node) = i;
      i = parent;
    }
    entries_[i] = moving;
    position_of_(moving.node) = i;
  }

  void sift_down(uint32_t i) {
    const uint64_t n = entries_.size();
    Entry moving = entries_[i];
    while (true) {
      uint64_t child = 2 * uint64_t{i} + 1;
      if (child >= n) break;
      if (child + 1 < n && entries_[child + 1].due_ms < entries_[child].due_ms) child += 1;
      if (entries_[child].due_ms >= moving.due_ms) break;
      entries_[i] = entries_[child];
      position_of_(entries_[i].node) = i;
      i = static_cast<uint32_t>(child);
    }
    entries_[i] = moving;
    position_of_(moving.node) = i;
  }

  PositionOf position_of_;
  std::vector<Entry> entries_;
};

}  // namespace mailbox
