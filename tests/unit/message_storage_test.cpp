// Unit tests of the compact message storage: the one-block message body
// (core/message_body.hpp), the mailbox's ring buffer (core/message_queue.hpp,
// against std::deque as the model) and the timer heap (core/timer_heap.hpp,
// against a std::map of due times).
#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/mailbox_name.hpp"
#include "core/message_body.hpp"
#include "core/message_queue.hpp"
#include "core/timer_heap.hpp"

namespace mailbox {
namespace {

TEST(MessageBody, HoldsPayloadAndEncodingInOneBlock) {
  BodyRef body = MessageBody::make("zenoh/bytes", std::string(64, 'x'));
  EXPECT_EQ(body->payload(), std::string(64, 'x'));
  EXPECT_EQ(body->encoding(), "zenoh/bytes");
  EXPECT_EQ(body->block_bytes(), 12u + 64 + 11);
  EXPECT_EQ(MessageBody::payload_data_of(body.get()), body->payload().data());
}

TEST(MessageBody, EmptyPayloadAndEncoding) {
  BodyRef body = MessageBody::make("", "");
  EXPECT_TRUE(body->payload().empty());
  EXPECT_TRUE(body->encoding().empty());
  BodyRef binary = MessageBody::make("e", std::string("a\0b", 3));
  EXPECT_EQ(binary->payload(), std::string_view("a\0b", 3));
  EXPECT_EQ(binary->encoding(), "e");
}

TEST(MessageBody, ReferencesCountCopiesAndMoves) {
  BodyRef a = MessageBody::make("e", "p");
  EXPECT_EQ(a.use_count(), 1u);
  BodyRef b = a;
  EXPECT_EQ(a.use_count(), 2u);
  EXPECT_TRUE(a == b);
  BodyRef c = std::move(b);
  EXPECT_FALSE(b);
  EXPECT_EQ(c.use_count(), 2u);
  c = nullptr;
  EXPECT_EQ(a.use_count(), 1u);
  BodyRef& alias = a;
  a = alias;  // self-assignment keeps it
  EXPECT_EQ(a.use_count(), 1u);
  EXPECT_EQ(a->payload(), "p");
  a.reset();
  EXPECT_FALSE(a);
  EXPECT_EQ(a.use_count(), 0u);
}

// Under ASan this also proves that the last reference, dropped on any of
// several threads, frees the block exactly once.
TEST(MessageBody, DroppedFromManyThreads) {
  for (int round = 0; round < 50; ++round) {
    BodyRef body = MessageBody::make("e", "shared");
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([copy = body]() mutable {
        for (int i = 0; i < 1000; ++i) {
          BodyRef again = copy;
          EXPECT_EQ(again->payload(), "shared");
        }
      });
    }
    body.reset();
    for (auto& t : threads) t.join();
  }
}

TEST(MessageQueue, OneElementTakesOneSlot) {
  MessageQueue<uint64_t> q;
  EXPECT_EQ(q.capacity(), 0u);
  q.push_back(7);
  EXPECT_EQ(q.capacity(), 1u);
  EXPECT_EQ(q.front(), 7u);
  q.pop_front();
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.capacity(), 0u);  // an empty queue holds no memory
}

TEST(MessageQueue, GrowsByDoublingAndShrinksAtAQuarter) {
  MessageQueue<uint64_t> q;
  for (uint64_t i = 0; i < 9; ++i) q.push_back(i);
  EXPECT_EQ(q.capacity(), 16u);
  for (int i = 0; i < 5; ++i) q.pop_front();
  EXPECT_EQ(q.size(), 4u);
  EXPECT_EQ(q.capacity(), 8u);  // 4 <= 16 / 4: halved
  for (uint64_t i = 0; i < 4; ++i) EXPECT_EQ(q[i], 5 + i);
  // Hovering at a boundary does not reallocate each time.
  for (int i = 0; i < 10; ++i) {
    q.push_back(100);
    EXPECT_EQ(q.capacity(), 8u);
    q.pop_front();
    EXPECT_EQ(q.capacity(), 8u);
  }
}

TEST(MessageQueue, EraseInTheMiddleKeepsOrderAcrossTheWrap) {
  MessageQueue<std::string> q;
  for (int i = 0; i < 8; ++i) q.push_back("m" + std::to_string(i));
  for (int i = 0; i < 3; ++i) q.pop_front();  // head at slot 3
  for (int i = 8; i < 11; ++i) q.push_back("m" + std::to_string(i));  // wraps around
  q.erase(4);  // m7
  std::vector<std::string> seen(q.begin(), q.end());
  EXPECT_EQ(seen, (std::vector<std::string>{"m3", "m4", "m5", "m6", "m8", "m9", "m10"}));
  q.erase(q.size() - 1);
  EXPECT_EQ(q.back(), "m9");
}

TEST(MessageQueue, MovesTheInlineElement) {
  MessageQueue<std::unique_ptr<int>> a;
  a.push_back(std::make_unique<int>(5));
  EXPECT_EQ(a.capacity(), 1u);
  MessageQueue<std::unique_ptr<int>> b = std::move(a);
  EXPECT_TRUE(a.empty());
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(*b.front(), 5);
  b.push_back(std::make_unique<int>(6));  // to the heap
  EXPECT_EQ(b.capacity(), 2u);
  EXPECT_EQ(*b.front(), 5);
  EXPECT_EQ(*b.back(), 6);
  a = std::move(b);
  EXPECT_EQ(*a[1], 6);
}

TEST(MessageQueue, MovesOwnership) {
  MessageQueue<std::unique_ptr<int>> a;
  a.push_back(std::make_unique<int>(1));
  a.push_back(std::make_unique<int>(2));
  MessageQueue<std::unique_ptr<int>> b = std::move(a);
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(a.capacity(), 0u);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(*b[1], 2);
  a = std::move(b);
  EXPECT_EQ(*a.front(), 1);
  a.clear();
  EXPECT_TRUE(a.empty());
}

// A random script of pushes, pops and erases gives what std::deque gives.
TEST(MessageQueue, MatchesDequeOnRandomScripts) {
  std::mt19937_64 rng(15);
  for (int script = 0; script < 200; ++script) {
    MessageQueue<BodyRef> q;
    std::deque<std::string> model;
    for (int step = 0; step < 300; ++step) {
      const auto op = rng() % 10;
      if (op < 5 || model.empty()) {
        const std::string payload = std::to_string(rng());
        q.push_back(MessageBody::make("e", payload));
        model.push_back(payload);
      } else if (op < 8) {
        q.pop_front();
        model.pop_front();
      } else {
        const size_t i = rng() % model.size();
        q.erase(i);
        model.erase(model.begin() + static_cast<std::ptrdiff_t>(i));
      }
      ASSERT_EQ(q.size(), model.size());
      ASSERT_TRUE(q.capacity() == 0 || q.capacity() >= q.size());
      for (size_t i = 0; i < model.size(); ++i) ASSERT_EQ(q[i]->payload(), model[i]);
      for (const auto& body : q) ASSERT_EQ(body.use_count(), 1u);
    }
  }
}

TEST(MailboxName, ShortNamesInlineLongOnesOnTheHeap) {
  for (size_t size : {0, 1, 14, 15, 16, 40, 128}) {
    const std::string text(size, 'n');
    MailboxName name(text);
    EXPECT_EQ(name.view(), text);
    EXPECT_EQ(name.on_heap(), size > MailboxName::kInlineBytes);
    MailboxName copy = name;
    EXPECT_EQ(copy.view(), text);
    MailboxName other("other");
    other = name;
    EXPECT_EQ(other.view(), text);
    EXPECT_EQ(name.view(), text);
  }
}

TEST(MailboxName, OrdersAsItsBytesAgainstNamesAndViews) {
  std::map<MailboxName, int, std::less<>> map;
  const std::vector<std::string> names{"b", "a", "alice", "alice.dlq", std::string(20, 'a'), "", "z" + std::string(30, '0')};
  for (size_t i = 0; i < names.size(); ++i) map.emplace(MailboxName(names[i]), static_cast<int>(i));
  std::vector<std::string> sorted = names;
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::string> walked;
  for (const auto& [name, i] : map) walked.push_back(name.str());
  EXPECT_EQ(walked, sorted);
  EXPECT_EQ(map.find(std::string_view("alice"))->second, 2);
  EXPECT_EQ(map.find(std::string(20, 'a'))->second, 4);
  EXPECT_EQ(map.lower_bound(std::string_view("alice."))->first.view(), "alice.dlq");
  EXPECT_TRUE(map.find(std::string_view("nobody")) == map.end());
}

struct TimerNode {
  int name = 0;
  uint32_t position = UINT32_MAX;
};
struct TimerNodePosition {
  uint32_t& operator()(TimerNode* n) const { return n->position; }
};
using TestHeap = TimerHeap<TimerNode, TimerNodePosition>;

TEST(TimerHeap, MinimumMovesWithSetAndErase) {
  std::vector<TimerNode> nodes(3);
  TestHeap heap;
  EXPECT_EQ(heap.min_due_ms(), INT64_MAX);
  heap.set(&nodes[0], 30);
  heap.set(&nodes[1], 10);
  heap.set(&nodes[2], 20);
  EXPECT_EQ(heap.min_due_ms(), 10);
  heap.set(&nodes[1], 40);  // later: sinks
  EXPECT_EQ(heap.min_due_ms(), 20);
  EXPECT_EQ(heap.due_of(&nodes[1]), 40);
  heap.erase(&nodes[2]);
  EXPECT_FALSE(heap.contains(&nodes[2]));
  EXPECT_EQ(heap.min_due_ms(), 30);
  heap.erase(&nodes[2]);  // absent: nothing
  EXPECT_EQ(heap.size(), 2u);
  EXPECT_TRUE(heap.valid());
  std::vector<TimerNode*> due;
  heap.collect_due(35, &due);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0], &nodes[0]);
  heap.clear();
  EXPECT_FALSE(heap.contains(&nodes[0]));
  EXPECT_TRUE(heap.empty());
}

// Random sets and erases agree with a map of due times: the minimum, each
// node's time and the nodes due at a random time.
TEST(TimerHeap, MatchesAMapOnRandomScripts) {
  std::mt19937_64 rng(6);
  for (int script = 0; script < 100; ++script) {
    std::vector<TimerNode> nodes(64);
    for (int i = 0; i < 64; ++i) nodes[i].name = i;
    TestHeap heap;
    std::map<int, int64_t> model;  // name -> due
    for (int step = 0; step < 400; ++step) {
      TimerNode* node = &nodes[rng() % nodes.size()];
      if (rng() % 4 == 0) {
        heap.erase(node);
        model.erase(node->name);
      } else {
        const int64_t due = static_cast<int64_t>(rng() % 1000);
        heap.set(node, due);
        model[node->name] = due;
      }
      ASSERT_TRUE(heap.valid());
      ASSERT_EQ(heap.size(), model.size());
      int64_t min_due = INT64_MAX;
      for (const auto& [name, due] : model) {
        min_due = std::min(min_due, due);
        ASSERT_EQ(heap.due_of(&nodes[name]), due);
      }
      ASSERT_EQ(heap.min_due_ms(), min_due);
      const int64_t now = static_cast<int64_t>(rng() % 1000);
      std::vector<TimerNode*> due_nodes;
      heap.collect_due(now, &due_nodes);
      std::vector<int> got;
      for (auto* n : due_nodes) got.push_back(n->name);
      std::sort(got.begin(), got.end());
      std::vector<int> want;
      for (const auto& [name, due] : model) {
        if (due <= now) want.push_back(name);
      }
      ASSERT_EQ(got, want);
    }
  }
}

}  // namespace
}  // namespace mailbox
