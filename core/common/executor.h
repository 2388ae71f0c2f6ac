#pragma once

// A fixed pool of threads for blocking work (registry writes that fsync) so that neither gRPC
// threads nor transport threads wait on the disk.

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace drgate {

class Executor {
 public:
  virtual ~Executor() = default;
  // Runs `task` later, on another thread, exactly once.
  virtual void Post(std::function<void()> task) = 0;
};

// The class is thread-safe. The destructor runs every task already posted, then joins.
class ThreadPool final : public Executor {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool() override;
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  void Post(std::function<void()> task) override;

 private:
  void Run();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;  // guarded by mu_
  bool stopping_ = false;                    // guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace drgate
