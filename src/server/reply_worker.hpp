// reply_worker.hpp: one thread that runs tasks in order: formats and sends
// replies to Zenoh (the reply worker), or serves requests other nodes
// forward (a second instance).
//
// What it is for: keeps Zenoh calls (which may block on a congested
// transport) off the Raft loop thread and out of Zenoh's own callbacks.
//
// Threads: `push` from any thread; tasks run in order on the worker thread.
// The queue is bounded by admission (MailboxService never admits more than
// limits::kMaxInflightRequests requests), so `push` never refuses.
// Ownership: owns queued tasks until they have run.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace mailbox {

class ReplyWorker {
 public:
  explicit ReplyWorker(const char* thread_name = "mbx-replies");
  ~ReplyWorker();
  ReplyWorker(const ReplyWorker&) = delete;
  ReplyWorker& operator=(const ReplyWorker&) = delete;

  void push(std::function<void()> task);
  // Runs every queued task, then stops the thread. Idempotent.
  void stop();

 private:
  void run();
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  bool idle_ = false;  // the worker waits for tasks (under mutex_)
  const char* thread_name_;
  std::thread thread_;
};

}  // namespace mailbox
