// no_blocking_sends.hpp: marks the threads that must never wait on a Zenoh send.
//
// What it is for: every Zenoh send (a reply, finishing a query, a put, a
// get, a declaration) may wait for room in a transport queue that one of
// Zenoh's tasks drains. A thread that runs Zenoh's tasks must therefore
// never wait there: a Zenoh callback that sent would block the very worker
// that frees the queue (issue #11: 5 s stalls, then Zenoh closed the link).
// The Raft loop thread must not stall on the network either. Such threads
// hold a NoBlockingSendsScope while they run; the bridge's send functions
// call `assert_may_block_on_zenoh`, which aborts (in release builds too)
// inside a scope.
//
// Threads: thread-local state; a scope belongs to the thread that made it
// and must end on it (it is not movable).
#pragma once

#include "core/assert.hpp"

namespace mailbox {

namespace detail {
// The reason of the innermost scope on this thread, or null.
inline thread_local const char* t_no_blocking_sends_reason = nullptr;
}  // namespace detail

class NoBlockingSendsScope {
 public:
  // `reason` must be a string literal (it is kept, not copied).
  explicit NoBlockingSendsScope(const char* reason) : outer_(detail::t_no_blocking_sends_reason) {
    detail::t_no_blocking_sends_reason = reason;
  }
  ~NoBlockingSendsScope() { detail::t_no_blocking_sends_reason = outer_; }
  NoBlockingSendsScope(const NoBlockingSendsScope&) = delete;
  NoBlockingSendsScope& operator=(const NoBlockingSendsScope&) = delete;

 private:
  const char* outer_;
};

// Null when this thread may wait on a Zenoh send, else why it may not.
inline const char* no_blocking_sends_reason() { return detail::t_no_blocking_sends_reason; }

// Aborts, naming the send and the scope, when this thread must not wait on
// a Zenoh send. `send` is a string literal such as "Query::reply".
inline void assert_may_block_on_zenoh(const char* send) {
  if (detail::t_no_blocking_sends_reason != nullptr) {
    detail::assertion_failed(send, detail::t_no_blocking_sends_reason, __FILE__, __LINE__);
  }
}

}  // namespace mailbox
