// raft_driver_overview.cpp: RaftDriver::mailbox_overview, the operators'
// view of the mailboxes (raft_driver.hpp): a bounded top-N of the deepest
// and of the dead-letter mailboxes, and totals. Loop thread only.
#include <algorithm>

#include "core/limits.hpp"
#include "replication/raft_driver.hpp"

namespace mailbox {

MailboxOverview RaftDriver::mailbox_overview() const {
  MailboxOverview o;
  const int64_t now = std::max(state_->clock_ms(), env_.wall_clock_ms());
  o.leased_known = state_->total_messages() <= kMaxOverviewScanMessages;
  // Bounded top-N by stored messages (a min-heap of at most N), then exact
  // stats for the few kept.
  using Candidate = std::pair<uint64_t, std::string_view>;
  auto keep = [](std::vector<Candidate>& heap, uint64_t depth, std::string_view name) {
    auto greater = [](const Candidate& a, const Candidate& b) { return a.first > b.first; };
    if (heap.size() < kMaxOverviewMailboxes) {
      heap.emplace_back(depth, name);
      std::push_heap(heap.begin(), heap.end(), greater);
    } else if (depth > heap.front().first) {
      std::pop_heap(heap.begin(), heap.end(), greater);
      heap.back() = {depth, name};
      std::push_heap(heap.begin(), heap.end(), greater);
    }
  };
  std::vector<Candidate> deepest, dead;
  state_->for_each_mailbox(now, o.leased_known, [&](std::string_view name, uint64_t messages, uint64_t bytes,
                                                   uint64_t leased, uint64_t delayed) {
    if (messages == 0) return;
    o.mailboxes += 1;
    o.messages += messages;
    o.bytes += bytes;
    o.leased += leased;
    o.delayed += delayed;
    const std::string_view suffix(limits::kDeadLetterSuffix, limits::kDeadLetterSuffixBytes);
    if (name.size() > suffix.size() && name.substr(name.size() - suffix.size()) == suffix) {
      o.dead_letter_messages += messages;
      keep(dead, messages, name);
    }
    keep(deepest, messages, name);
  });
  auto finish = [&](std::vector<Candidate>& heap, std::vector<MailboxOverview::Box>* out) {
    std::sort(heap.begin(), heap.end(), [](const Candidate& a, const Candidate& b) {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    });
    for (const auto& [depth, name] : heap) {
      const MailboxStats st = state_->stats(name, now);
      out->push_back({std::string(name), st.messages, st.bytes, st.leased, st.oldest_age_ms});
    }
  };
  finish(deepest, &o.deepest);
  finish(dead, &o.dead_letters);
  return o;
}

}  // namespace mailbox
