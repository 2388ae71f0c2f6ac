#pragma once

// A Scheduler that records each requested delay and runs the task at once on an Executor (never
// inline), so back-off tests take no wall time; and a Random that replays fixed draws.

#include <chrono>
#include <deque>
#include <functional>
#include <mutex>
#include <vector>

#include "core/common/executor.h"
#include "core/commserv/policy.h"

namespace drgate::testing {

class FakeScheduler final : public commserv::Scheduler {
 public:
  // `executor` must outlive every task.
  explicit FakeScheduler(Executor& executor) : executor_(executor) {}

  void RunAfter(std::chrono::milliseconds delay, std::function<void()> task) override {
    {
      std::lock_guard lock(mu_);
      delays_.push_back(delay);
    }
    executor_.Post(std::move(task));
  }

  // Every delay asked for, in order (0 for fast failures posted off the caller's thread).
  std::vector<std::chrono::milliseconds> delays() const {
    std::lock_guard lock(mu_);
    return delays_;
  }
  // The delays above 0: the back-offs.
  std::vector<std::chrono::milliseconds> backoffs() const {
    std::vector<std::chrono::milliseconds> out;
    for (auto d : delays()) {
      if (d.count() > 0) out.push_back(d);
    }
    return out;
  }

 private:
  Executor& executor_;
  mutable std::mutex mu_;
  std::vector<std::chrono::milliseconds> delays_;
};

// Returns the given draws in turn, then repeats the last one.
class FixedRandom final : public commserv::Random {
 public:
  explicit FixedRandom(std::vector<double> draws) : draws_(draws.begin(), draws.end()) {}
  double Uniform() override {
    std::lock_guard lock(mu_);
    const double d = draws_.front();
    if (draws_.size() > 1) draws_.pop_front();
    return d;
  }

 private:
  std::mutex mu_;
  std::deque<double> draws_;
};

}  // namespace drgate::testing
