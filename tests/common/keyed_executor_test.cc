#include "core/common/keyed_executor.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace drgate {
namespace {

using namespace std::chrono_literals;

// Tasks that wait until opened.
class Gate {
 public:
  void Wait() {
    std::unique_lock lock(mu_);
    ++waiting_;
    cv_.notify_all();
    cv_.wait(lock, [this] { return open_; });
    --waiting_;
  }
  void Open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  bool WaitWaiting(int n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, 30s, [&] { return waiting_ >= n; });
  }
  int waiting() {
    std::lock_guard lock(mu_);
    return waiting_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;  // guarded by mu_
  int waiting_ = 0;    // guarded by mu_
};

TEST(KeyedThreadPoolTest, AKeyWhoseTasksBlockHoldsAtMostPerKeyThreadsAndOtherKeysRun) {
  KeyedThreadPool pool({/*threads=*/4, /*per_key=*/2, /*max_queued=*/100});
  Gate stalled;
  std::atomic<int> running{0};
  std::atomic<int> most{0};
  std::vector<std::promise<void>> done(6);
  for (auto& d : done) {
    ASSERT_TRUE(pool.Post("cs1", [&] {
      const int now = ++running;
      int seen = most.load();
      while (now > seen && !most.compare_exchange_weak(seen, now)) {
      }
      stalled.Wait();
      --running;
      d.set_value();
    }));
  }
  ASSERT_TRUE(stalled.WaitWaiting(2));

  // Another key runs on the threads left.
  std::promise<void> other;
  ASSERT_TRUE(pool.Post("cs2", [&] { other.set_value(); }));
  EXPECT_EQ(other.get_future().wait_for(30s), std::future_status::ready);
  EXPECT_EQ(stalled.waiting(), 2);

  stalled.Open();
  for (auto& d : done) EXPECT_EQ(d.get_future().wait_for(30s), std::future_status::ready);
  EXPECT_EQ(most.load(), 2);
}

TEST(KeyedThreadPoolTest, PostIsRefusedOnceAKeysQueueIsFull) {
  KeyedThreadPool pool({/*threads=*/2, /*per_key=*/1, /*max_queued=*/2});
  Gate stalled;
  std::atomic<int> ran{0};
  ASSERT_TRUE(pool.Post("cs1", [&] {
    stalled.Wait();
    ++ran;
  }));
  ASSERT_TRUE(stalled.WaitWaiting(1));
  EXPECT_TRUE(pool.Post("cs1", [&] { ++ran; }));
  EXPECT_TRUE(pool.Post("cs1", [&] { ++ran; }));

  EXPECT_FALSE(pool.Post("cs1", [&] { ADD_FAILURE() << "a refused task ran"; }));
  std::promise<void> other;
  EXPECT_TRUE(pool.Post("cs2", [&] { other.set_value(); }));  // its own queue
  EXPECT_EQ(other.get_future().wait_for(30s), std::future_status::ready);

  stalled.Open();
  std::promise<void> after;
  // Room again once the queue drains.
  for (int i = 0; i < 1000 && ran.load() < 3; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(ran.load(), 3);
  EXPECT_TRUE(pool.Post("cs1", [&] { after.set_value(); }));
  EXPECT_EQ(after.get_future().wait_for(30s), std::future_status::ready);
}

TEST(KeyedThreadPoolTest, KeysTakeTurns) {
  KeyedThreadPool pool({/*threads=*/1, /*per_key=*/1, /*max_queued=*/100});
  Gate hold;
  std::mutex mu;
  std::vector<std::string> order;
  ASSERT_TRUE(pool.Post("x", [&] { hold.Wait(); }));
  ASSERT_TRUE(hold.WaitWaiting(1));
  for (const char* task : {"a1", "a2", "a3"}) {
    ASSERT_TRUE(pool.Post("a", [&, task] {
      std::lock_guard lock(mu);
      order.push_back(task);
    }));
  }
  std::promise<void> last;
  ASSERT_TRUE(pool.Post("b", [&] {
    std::lock_guard lock(mu);
    order.push_back("b1");
  }));

  hold.Open();
  ASSERT_TRUE(pool.Post("a", [&] { last.set_value(); }));
  ASSERT_EQ(last.get_future().wait_for(30s), std::future_status::ready);
  std::lock_guard lock(mu);
  EXPECT_EQ(order, (std::vector<std::string>{"a1", "b1", "a2", "a3"}));
}

TEST(KeyedThreadPoolTest, DestructionRunsEveryPostedTaskIncludingTasksTheyPost) {
  std::atomic<int> ran{0};
  {
    KeyedThreadPool pool({/*threads=*/2, /*per_key=*/1, /*max_queued=*/1000});
    for (int i = 0; i < 100; ++i) {
      ASSERT_TRUE(pool.Post(i % 2 ? "a" : "b", [&pool, &ran] {
        ++ran;
        pool.Post("c", [&ran] { ++ran; });
      }));
    }
  }
  EXPECT_EQ(ran.load(), 200);
}

}  // namespace
}  // namespace drgate
