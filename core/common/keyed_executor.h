#pragma once

// A pool of threads for blocking reads, grouped by a key (a CommCell's name): at most `per_key`
// tasks of one key run at once and at most `max_queued` of one key wait. A key whose tasks block
// (its registry reads stall) so holds at most `per_key` threads, and the other keys keep the rest:
// reads of the other CommCells go on, and a stalled key's callers are refused once its queue is
// full instead of piling up without bound. Keys take turns (round robin), so a key with a long
// queue does not delay one with a short queue.

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace drgate {

class KeyedExecutor {
 public:
  virtual ~KeyedExecutor() = default;
  // Runs `task` later, on another thread, exactly once; or, when `key` already has as many tasks
  // waiting as allowed, drops it and returns false (the caller answers "busy").
  virtual bool Post(const std::string& key, std::function<void()> task) = 0;
};

struct KeyedPoolOptions {
  int threads = 8;
  int per_key = 4;                // tasks of one key running at once; at most `threads`
  std::size_t max_queued = 1000;  // tasks of one key waiting to run
};

// The class is thread-safe. The destructor runs every task already posted (tasks may post more),
// then joins: a task that never returns keeps it waiting.
class KeyedThreadPool final : public KeyedExecutor {
 public:
  explicit KeyedThreadPool(KeyedPoolOptions options);
  ~KeyedThreadPool() override;
  KeyedThreadPool(const KeyedThreadPool&) = delete;
  KeyedThreadPool& operator=(const KeyedThreadPool&) = delete;

  bool Post(const std::string& key, std::function<void()> task) override;

 private:
  struct Queue {
    std::deque<std::function<void()>> tasks;
    int running = 0;
    bool ready = false;  // listed in ready_
  };
  // Lists `key` in ready_ when it has a task waiting and may run one more. Requires mu_.
  void MarkReady(const std::string& key, Queue& q);
  void Run();

  const KeyedPoolOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Queue> queues_;  // guarded by mu_; a key without tasks is erased
  std::deque<std::string> ready_;        // guarded by mu_: keys that may run a task, in turn
  std::size_t queued_ = 0;               // guarded by mu_: tasks waiting, all keys
  bool stopping_ = false;                // guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace drgate
