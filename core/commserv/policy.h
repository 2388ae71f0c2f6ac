#pragma once

// Resilience policies of the CommServe client, one set per CommCell (README, "Upstream faults"):
// how often and how fast to retry, when to stop calling a failing CommServe (circuit breaker),
// how large an answer may be and how many calls may wait for one CommServe at once.
//
// The pieces here are small and deterministic under test: time comes from an injected Clock,
// randomness from an injected Random, waiting from an injected Scheduler.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>

#include "core/common/clock.h"
#include "core/common/status.h"

namespace drgate::commserv {

struct RetryPolicy {
  int max_attempts = 3;  // attempts per request, the first included; 1 = never retry
  std::chrono::milliseconds initial_backoff{200};
  std::chrono::milliseconds max_backoff{2000};
  bool operator==(const RetryPolicy&) const = default;
};

struct CircuitBreakerPolicy {
  int failure_threshold = 5;  // consecutive upstream failures that open the circuit
  std::chrono::milliseconds open_for{30000};
  bool operator==(const CircuitBreakerPolicy&) const = default;
};

struct ClientPolicy {
  // The most one call (retries and back-off included) may take; a caller's earlier deadline
  // wins. A login the call waits for has a request_timeout of its own.
  std::chrono::milliseconds request_timeout{60000};
  RetryPolicy retry;
  CircuitBreakerPolicy circuit_breaker;
  std::size_t max_response_bytes = 4 * 1024 * 1024;
  std::size_t max_pending_requests = 64;  // calls in progress per CommCell
  bool operator==(const ClientPolicy&) const = default;
};

// A source of uniform random numbers in [0, 1). Implementations are thread-safe.
class Random {
 public:
  virtual ~Random() = default;
  virtual double Uniform() = 0;
};

// std::mt19937_64 behind a mutex; seeded from std::random_device unless a seed is given.
class DefaultRandom final : public Random {
 public:
  DefaultRandom() : engine_(std::random_device{}()) {}
  explicit DefaultRandom(std::uint64_t seed) : engine_(seed) {}
  double Uniform() override {
    std::lock_guard lock(mu_);
    return std::uniform_real_distribution<double>(0.0, 1.0)(engine_);
  }

 private:
  std::mutex mu_;
  std::mt19937_64 engine_;  // guarded by mu_
};

// Runs a task later, on another thread, never inline. Implementations are thread-safe.
class Scheduler {
 public:
  virtual ~Scheduler() = default;
  virtual void RunAfter(std::chrono::milliseconds delay, std::function<void()> task) = 0;
};

// "Full jitter" (AWS architecture blog, "Exponential Backoff And Jitter"): a uniform draw from
// [0, min(max_backoff, initial_backoff * 2^(retry - 1))]. `retry` counts from 1.
std::chrono::milliseconds FullJitterBackoff(const RetryPolicy& policy, int retry, Random& random);

// A per-CommCell circuit breaker.
//
// Closed: every request goes; `failure_threshold` consecutive failures open the circuit.
// Open: every request fails fast (UNAVAILABLE, reason CIRCUIT_OPEN, metadata retry_after_ms =
// the remaining open time) until `open_for` has passed since it opened.
// Half-open: the next request goes as a probe while every other one still fails fast; the
// probe's success closes the circuit, its failure opens it again for `open_for`.
// Only the outcome of a request admitted in the current state counts: late answers of requests
// admitted before the circuit opened change nothing.
//
// The class is thread-safe.
class CircuitBreaker {
 public:
  enum class State { kClosed, kOpen, kHalfOpen };

  // A request the breaker let through; report its outcome exactly once.
  struct Ticket {
    bool probe = false;
    std::uint64_t generation = 0;
  };

  CircuitBreaker(CircuitBreakerPolicy policy, const Clock& clock);

  // A ticket, or UNAVAILABLE/CIRCUIT_OPEN naming `commcell`.
  StatusOr<Ticket> Admit(const std::string& commcell);
  // The CommServe answered (any HTTP status below 500).
  void OnSuccess(const Ticket& ticket);
  // The CommServe did not answer usefully (transport failure, timeout, 5xx).
  void OnFailure(const Ticket& ticket);
  // The request says nothing about the CommServe (e.g. the caller's deadline cut it short): a
  // probe makes room for the next one.
  void OnNeutral(const Ticket& ticket);

  State state() const;
  // Called (under no lock of the breaker's) with true when the circuit opens, false when it
  // closes again. Set before the first Admit.
  void set_observer(std::function<void(bool open)> observer) { observer_ = std::move(observer); }

 private:
  const CircuitBreakerPolicy policy_;
  const Clock& clock_;
  std::function<void(bool)> observer_;

  mutable std::mutex mu_;
  State state_ = State::kClosed;                       // guarded by mu_
  int failures_ = 0;                                   // guarded by mu_: consecutive, while closed
  std::chrono::steady_clock::time_point opened_at_{};  // guarded by mu_
  bool probe_in_flight_ = false;                       // guarded by mu_
  std::uint64_t generation_ = 0;  // guarded by mu_: bumped on every state change
};

}  // namespace drgate::commserv
