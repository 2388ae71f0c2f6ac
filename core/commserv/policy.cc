#include "core/commserv/policy.h"

#include <algorithm>
#include <utility>

namespace drgate::commserv {

std::chrono::milliseconds FullJitterBackoff(const RetryPolicy& policy, int retry, Random& random) {
  // Doubling stops at 2^20: beyond that every sensible max_backoff is reached anyway.
  const int doublings = std::clamp(retry - 1, 0, 20);
  const auto ceiling = std::min<std::chrono::milliseconds>(
      policy.max_backoff,
      std::chrono::milliseconds(policy.initial_backoff.count() * (int64_t{1} << doublings)));
  const double draw = std::clamp(random.Uniform(), 0.0, 1.0);
  return std::chrono::milliseconds(static_cast<long long>(draw * ceiling.count()));
}

CircuitBreaker::CircuitBreaker(CircuitBreakerPolicy policy, const Clock& clock)
    : policy_(policy), clock_(clock) {}

StatusOr<CircuitBreaker::Ticket> CircuitBreaker::Admit(const std::string& commcell) {
  std::chrono::milliseconds retry_after{0};
  {
    std::lock_guard lock(mu_);
    if (state_ == State::kClosed) return Ticket{false, generation_};
    const auto now = clock_.Monotonic();
    if (state_ == State::kOpen && now - opened_at_ >= policy_.open_for) {
      state_ = State::kHalfOpen;
      ++generation_;
      probe_in_flight_ = false;
    }
    if (state_ == State::kHalfOpen && !probe_in_flight_) {
      probe_in_flight_ = true;
      return Ticket{true, generation_};
    }
    if (state_ == State::kOpen) {
      retry_after = std::chrono::duration_cast<std::chrono::milliseconds>(opened_at_ +
                                                                          policy_.open_for - now);
    } else {
      // Half-open with the probe under way: its answer comes within one request's time; a
      // short wait is the honest hint.
      retry_after = std::min(policy_.open_for, std::chrono::milliseconds(1000));
    }
  }
  retry_after = std::max(retry_after, std::chrono::milliseconds(1));
  return Status(StatusCode::kUnavailable,
                "the CommServe of CommCell \"" + commcell + "\" failed " +
                    std::to_string(policy_.failure_threshold) +
                    " times in a row; drgate stops calling it for " +
                    std::to_string(retry_after.count()) + " ms (circuit breaker open)",
                Reason::kCircuitOpen)
      .With("retry_after_ms", std::to_string(retry_after.count()))
      .With("request_sent", "false");
}

void CircuitBreaker::OnSuccess(const Ticket& ticket) {
  bool closed = false;
  {
    std::lock_guard lock(mu_);
    if (ticket.generation != generation_) return;
    if (state_ == State::kClosed) {
      failures_ = 0;
    } else if (state_ == State::kHalfOpen && ticket.probe) {
      state_ = State::kClosed;
      failures_ = 0;
      probe_in_flight_ = false;
      ++generation_;
      closed = true;
    }
  }
  if (closed && observer_) observer_(false);
}

void CircuitBreaker::OnFailure(const Ticket& ticket) {
  bool opened = false;
  {
    std::lock_guard lock(mu_);
    if (ticket.generation != generation_) return;
    const bool trip = (state_ == State::kClosed && ++failures_ >= policy_.failure_threshold) ||
                      (state_ == State::kHalfOpen && ticket.probe);
    if (trip) {
      opened = state_ == State::kClosed;  // half-open -> open: the circuit was never closed
      state_ = State::kOpen;
      opened_at_ = clock_.Monotonic();
      probe_in_flight_ = false;
      ++generation_;
    }
  }
  if (opened && observer_) observer_(true);
}

void CircuitBreaker::OnNeutral(const Ticket& ticket) {
  std::lock_guard lock(mu_);
  if (ticket.generation == generation_ && state_ == State::kHalfOpen && ticket.probe) {
    probe_in_flight_ = false;
  }
}

CircuitBreaker::State CircuitBreaker::state() const {
  std::lock_guard lock(mu_);
  return state_;
}

}  // namespace drgate::commserv
