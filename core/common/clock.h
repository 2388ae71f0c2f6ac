#pragma once

#include <chrono>

namespace drgate {

// The time drgate reads, injected so tests control it. Two readings of one clock:
// - Now(): wall time, for what is recorded and shown (job times, ages, the caller's gRPC
//   deadline, which is a wall-clock instant);
// - Monotonic(): for every timeout, back-off, lease and deadline drgate measures itself; it never
//   jumps when the wall clock is set (NTP, an administrator).
// A test clock moves both together. Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::chrono::system_clock::time_point Now() const = 0;
  virtual std::chrono::steady_clock::time_point Monotonic() const = 0;
};

class SystemClock final : public Clock {
 public:
  std::chrono::system_clock::time_point Now() const override {
    return std::chrono::system_clock::now();
  }
  std::chrono::steady_clock::time_point Monotonic() const override {
    return std::chrono::steady_clock::now();
  }
};

}  // namespace drgate
