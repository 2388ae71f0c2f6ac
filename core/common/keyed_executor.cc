#include "core/common/keyed_executor.h"

#include <algorithm>

namespace drgate {

KeyedThreadPool::KeyedThreadPool(KeyedPoolOptions options)
    : options_([&] {
        options.threads = std::max(1, options.threads);
        options.per_key = std::clamp(options.per_key, 1, options.threads);
        options.max_queued = std::max<std::size_t>(1, options.max_queued);
        return options;
      }()) {
  for (int i = 0; i < options_.threads; ++i) threads_.emplace_back([this] { Run(); });
}

KeyedThreadPool::~KeyedThreadPool() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void KeyedThreadPool::MarkReady(const std::string& key, Queue& q) {
  if (!q.ready && !q.tasks.empty() && q.running < options_.per_key) {
    q.ready = true;
    ready_.push_back(key);
  }
}

bool KeyedThreadPool::Post(const std::string& key, std::function<void()> task) {
  // Notified under the lock, as ThreadPool::Post: the pool may be destroyed as soon as the task
  // has run.
  std::lock_guard lock(mu_);
  Queue& q = queues_[key];
  if (q.tasks.size() >= options_.max_queued) return false;
  q.tasks.push_back(std::move(task));
  ++queued_;
  MarkReady(key, q);
  cv_.notify_one();
  return true;
}

void KeyedThreadPool::Run() {
  std::unique_lock lock(mu_);
  for (;;) {
    // Stop only once nothing waits: tasks of a key at its limit run when a running one ends.
    cv_.wait(lock, [this] { return !ready_.empty() || (stopping_ && queued_ == 0); });
    if (ready_.empty()) return;
    const std::string key = std::move(ready_.front());
    ready_.pop_front();
    Queue& q = queues_.at(key);
    q.ready = false;
    std::function<void()> task = std::move(q.tasks.front());
    q.tasks.pop_front();
    --queued_;
    ++q.running;
    MarkReady(key, q);  // its next task, after the other keys' (round robin)
    lock.unlock();
    task();
    task = nullptr;  // whatever it captured goes before the lock is taken again
    lock.lock();
    Queue& after = queues_.at(key);
    --after.running;
    if (after.tasks.empty() && after.running == 0) {
      queues_.erase(key);
    } else if (!after.ready && !after.tasks.empty()) {
      MarkReady(key, after);
      cv_.notify_one();
    }
    if (stopping_ && queued_ == 0) cv_.notify_all();
  }
}

}  // namespace drgate
