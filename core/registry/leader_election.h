#pragma once

// Which replica may act alone: of the drgate replicas sharing a registry, only the leader polls
// the CommServe (core/jobs/tracker.h), so that each CommCell sees one poller however many
// replicas run. The others serve reads and triggers from the shared registry.
//
// Implementations are thread-safe.

#include <functional>

namespace drgate {

class LeaderElection {
 public:
  virtual ~LeaderElection() = default;

  // Whether this process is the leader now. Cheap (no I/O): called before every tracker round.
  virtual bool IsLeader() const = 0;

  // Starts taking part; `on_change` is called with the new value whenever IsLeader() changes
  // (on the election's own thread, or inline from Start), first with its value at start.
  virtual void Start(std::function<void(bool)> on_change) = 0;
  // Stops taking part and gives leadership up at once, so that another replica takes over
  // without waiting for a lease to run out. Idempotent.
  virtual void Stop() = 0;
};

// The embedded registry (SQLite) has one process: it always leads.
class AlwaysLeader final : public LeaderElection {
 public:
  bool IsLeader() const override { return true; }
  void Start(std::function<void(bool)> on_change) override {
    if (on_change) on_change(true);
  }
  void Stop() override {}
};

}  // namespace drgate
