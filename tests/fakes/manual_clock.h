#pragma once

#include <atomic>
#include <chrono>

#include "core/common/clock.h"

namespace drgate::testing {

// A clock that moves only when told to: Advance moves wall and monotonic time together.
// Thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(std::chrono::system_clock::time_point start =
                           std::chrono::system_clock::time_point(std::chrono::seconds(1790000000)))
      : start_(start.time_since_epoch().count()), now_(start_) {}
  std::chrono::system_clock::time_point Now() const override {
    return std::chrono::system_clock::time_point(std::chrono::system_clock::duration(now_.load()));
  }
  // Starts where a real steady clock would be, so that deadlines handed to real I/O (the
  // transport's timers) stay meaningful in tests that mix both.
  std::chrono::steady_clock::time_point Monotonic() const override {
    return monotonic_start_ + std::chrono::system_clock::duration(now_.load() - start_);
  }
  void Advance(std::chrono::system_clock::duration d) { now_ += d.count(); }

 private:
  const std::chrono::steady_clock::time_point monotonic_start_ = std::chrono::steady_clock::now();
  const std::chrono::system_clock::duration::rep start_;
  std::atomic<std::chrono::system_clock::duration::rep> now_;
};

}  // namespace drgate::testing
