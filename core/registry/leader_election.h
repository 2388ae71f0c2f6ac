#pragma once

// Which replica may act alone: of the drgate replicas sharing a registry, only the leader polls
// the CommServe (core/jobs/tracker.h), so that each CommCell sees one poller however many
// replicas run. The others serve reads and triggers from the shared registry.
//
// Implementations are thread-safe.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace drgate {

// What a leader's writes carry so that the registry can refuse them once another replica took
// over (fencing, see core/registry/fenced_job_store.h and docs/replicas-fencing.md).
struct LeaseFence {
  std::string role;  // the lease (PostgresLeaderOptions::role); empty: no lease (one process)
  // Grows every time any replica acquires the lease; renewals keep it. A write under an older
  // generation than the registry's lease row is refused in the write's own transaction.
  int64_t generation = 0;
  // Who acquired it (PostgresLeaderOptions::holder), checked with the generation, so that a lease
  // row written by a replica that does not count generations (an older drgate during a rolling
  // upgrade) still refuses another holder's writes.
  std::string holder;
};

class LeaderElection {
 public:
  virtual ~LeaderElection() = default;

  // Whether this process is the leader now. Cheap (no I/O): called before every tracker round.
  virtual bool IsLeader() const = 0;

  // The lease to fence this process's leader writes with while it leads; nullopt when it does
  // not (the same instant as IsLeader()). Cheap (no I/O). Default: no lease to check (a process
  // that leads alone).
  virtual std::optional<LeaseFence> CurrentFence() const {
    if (!IsLeader()) return std::nullopt;
    return LeaseFence{};
  }

  // Whether this process follows `commcell`'s jobs now (polls its CommServe for them, settles
  // its intents, records its DR history). Default: the leader follows every CommCell. With
  // per-CommCell leases (PostgresTrackingLeases), the holder of that CommCell's lease. Cheap.
  virtual bool Tracks(const std::string& commcell) const {
    (void)commcell;
    return IsLeader();
  }
  // The lease that fences this process's writes about `commcell`'s jobs and intents while it
  // tracks it; nullopt when it does not (the same instant as Tracks()). Default: CurrentFence().
  virtual std::optional<LeaseFence> FenceFor(const std::string& commcell) const {
    (void)commcell;
    return CurrentFence();
  }
  // The CommCells to share out (at start and on a configuration reload). Default: nothing to
  // share (the leader follows them all).
  virtual void SetCommCells(std::vector<std::string> names) { (void)names; }

  // Starts taking part; `on_change` is called with the new value whenever IsLeader() changes
  // (on the election's own thread, or inline from Start), first with its value at start; with
  // per-CommCell leases also whenever the set of CommCells this process tracks changes.
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
