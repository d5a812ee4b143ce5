// waiter_index.hpp: parked long-polls, found by mailbox and by deadline.
//
// What it is for: the leader parks a consume or peek with `wait=` that found
// its mailbox empty (replication/raft_driver.hpp). A parked waiter leaves
// the index in one of three ways: a message arrives in its mailbox (every
// waiter of that mailbox is taken, in arrival order), its wait ends (every
// waiter whose deadline has passed is taken), or all are taken at once
// (leadership lost, shutdown). Each way costs O(log n) per waiter taken,
// never a walk of the waiters that stay: with 100,000 long-polls whose
// deadlines are spread over their wait, a walk per tick would hold the loop
// for most of every tick (docs/BENCHMARKS.md, "Many waiting clients").
//
// Memory: one node of an ordered map per waiter (the value, its deadline,
// id and links to its mailbox's neighbours) and one hash node per mailbox
// with waiters. The caller bounds how many it parks.
//
// Threads: not thread-safe; the driver's loop thread only.
// Ownership: owns the parked values until they are taken out.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/assert.hpp"

namespace mailbox {

template <typename T>
class WaiterIndex {
 public:
  WaiterIndex() = default;
  WaiterIndex(const WaiterIndex&) = delete;
  WaiterIndex& operator=(const WaiterIndex&) = delete;

  size_t size() const { return by_deadline_.size(); }
  bool empty() const { return by_deadline_.empty(); }
  // The earliest deadline of a parked waiter (INT64_MAX: none).
  int64_t next_deadline_ms() const { return empty() ? INT64_MAX : by_deadline_.begin()->first.first; }

  // Parks `value` under `mailbox` until `deadline_ms`.
  void add(const std::string& mailbox, int64_t deadline_ms, T value) {
    auto [box, fresh] = by_mailbox_.try_emplace(mailbox);
    auto [it, inserted] = by_deadline_.emplace(Key{deadline_ms, next_id_++}, Node{std::move(value)});
    MAILBOX_ASSERT(inserted, "waiter ids are unique");
    Node& node = it->second;
    node.box = &*box;
    node.prev = fresh ? by_deadline_.end() : box->second.tail;
    node.next = by_deadline_.end();
    if (fresh) {
      box->second.head = it;
    } else {
      box->second.tail->second.next = it;
    }
    box->second.tail = it;
  }

  // Moves every waiter of `mailbox` to `out`, in the order they were parked.
  void take_mailbox(std::string_view mailbox, std::vector<T>* out) {
    auto box = by_mailbox_.find(std::string(mailbox));
    if (box == by_mailbox_.end()) return;
    for (Iter it = box->second.head; it != by_deadline_.end();) {
      const Iter next = it->second.next;
      out->push_back(std::move(it->second.value));
      by_deadline_.erase(it);
      it = next;
    }
    by_mailbox_.erase(box);
  }

  // Moves every waiter whose deadline is at or before `now_ms` to `out`.
  void take_due(int64_t now_ms, std::vector<T>* out) {
    while (!by_deadline_.empty() && by_deadline_.begin()->first.first <= now_ms) {
      Iter it = by_deadline_.begin();
      unlink(it);
      out->push_back(std::move(it->second.value));
      by_deadline_.erase(it);
    }
  }

  // Moves every waiter to `out`.
  void take_all(std::vector<T>* out) {
    for (auto& [key, node] : by_deadline_) out->push_back(std::move(node.value));
    by_deadline_.clear();
    by_mailbox_.clear();
  }

 private:
  using Key = std::pair<int64_t, uint64_t>;  // deadline, id (ties keep parking order)
  struct Node;
  using Iter = typename std::map<Key, Node>::iterator;
  struct Ends {
    Iter head, tail;
  };
  using Box = std::pair<const std::string, Ends>;
  struct Node {
    explicit Node(T v) : value(std::move(v)) {}
    T value;
    Box* box = nullptr;  // its mailbox's entry (elements of an unordered_map never move)
    Iter prev, next;  // neighbours in its mailbox's list (end(): none)
  };

  // Takes `it` out of its mailbox's list (dropping the mailbox when it was
  // the last).
  void unlink(Iter it) {
    Node& node = it->second;
    Ends& ends = node.box->second;
    if (ends.head == it && ends.tail == it) {
      by_mailbox_.erase(by_mailbox_.find(node.box->first));
      return;
    }
    if (ends.head == it) {
      ends.head = node.next;
    } else {
      node.prev->second.next = node.next;
    }
    if (ends.tail == it) {
      ends.tail = node.prev;
    } else {
      node.next->second.prev = node.prev;
    }
  }

  // Map iterators and pointers to the hash map's elements stay valid
  // across inserts and erases of other elements (a rehash moves no element).
  std::map<Key, Node> by_deadline_;
  std::unordered_map<std::string, Ends> by_mailbox_;
  uint64_t next_id_ = 1;
};

}  // namespace mailbox
