#include "server/reply_worker.hpp"

#include <pthread.h>

namespace mailbox {

ReplyWorker::ReplyWorker(const char* thread_name)
    : thread_name_(thread_name), thread_([this] {
        pthread_setname_np(pthread_self(), thread_name_);
        run();
      }) {}

ReplyWorker::~ReplyWorker() { stop(); }

void ReplyWorker::push(std::function<void()> task) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    tasks_.push_back(std::move(task));
    wake = idle_;  // a busy worker takes the task on its next round
  }
  if (wake) ready_.notify_one();
}

void ReplyWorker::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  ready_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void ReplyWorker::run() {
  std::deque<std::function<void()>> batch;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      idle_ = true;
      ready_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
      idle_ = false;
      if (tasks_.empty() && stopping_) return;
      batch.swap(tasks_);
    }
    for (auto& task : batch) task();
    batch.clear();
  }
}

}  // namespace mailbox
