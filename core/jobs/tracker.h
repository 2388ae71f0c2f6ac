#pragma once

// The tracker follows every job drgate started to a terminal state, and settles triggers whose
// answer was lost (intents left open by a crash or a timeout after sending).
//
// Upstream cost grows with CommCells, not with jobs or watchers: each round sends one DR job-list
// request per CommCell that has something to follow, and Job/{id} only for a job the list did
// not show. A CommCell that fails is polled again after an exponential back-off.
//
// Intents (see Orchestrator): an intent older than `intent_grace` is matched against the
// CommServe's DR job list: a DR job of the same type that started after the intent and that
// drgate has not recorded is adopted (recorded with the intent's request id). When none shows
// up within `intent_give_up`, a placeholder job "unknown-<intent id>" in state UNKNOWN is
// recorded with the intent's request id, so the request id never triggers a second backup and
// the caller can see what happened.
//
// The class is thread-safe. Rounds run on the tracker's own thread; they block only it.

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/common/clock.h"
#include "core/commserv/client.h"
#include "core/config/config.h"
#include "core/jobs/commcell.h"
#include "core/jobs/watch_hub.h"
#include "core/metrics/metrics.h"
#include "core/registry/job_store.h"
#include "core/registry/leader_election.h"

namespace drgate::jobs {

// The tracking.* settings (core/config/config.h) plus what the server knows about the registry.
struct TrackerOptions : TrackingConfig {
  // The registry is shared with other replicas (PostgreSQL): an open intent may belong to a
  // trigger still in flight on another replica, so every intent gets `intent_grace`, also one
  // older than this process.
  bool shared_registry = false;
};

class Tracker {
 public:
  // Every reference must outlive the tracker. With `leader` (replicas sharing a registry), jobs
  // and intents are followed only while leader->IsLeader(): one replica polls the CommServe for
  // them (the others only probe, see probe_interval); null: always.
  Tracker(std::vector<CommCell> commcells, JobStore& store, Metrics& metrics, const Clock& clock,
          WatchHub& hub, TrackerOptions options, const LeaderElection* leader = nullptr);
  ~Tracker();
  Tracker(const Tracker&) = delete;
  Tracker& operator=(const Tracker&) = delete;

  // Starts the polling thread; Stop() ends it (waiting for the round under way). Idempotent.
  void Start();
  void Stop();
  // Asks for a round now (e.g. a job was just triggered).
  void Poke();

  // Replaces the CommCells to follow (configuration reload); takes effect at the next round.
  void SetCommCells(std::vector<CommCell> commcells);

  // One synchronous round over every CommCell that is due (all of them when `force`). On a
  // replica that is not the leader, only the probes of idle CommCells.
  void RunRound(bool force = true);

  // Applies what the CommServe reports of one job: updates the registry when something
  // changed, publishes to watchers and counts a job that finished. Returns the job as recorded.
  StatusOr<Job> Apply(Job job, const commserv::JobSummary& summary);

  // Upstream requests sent by the tracker so far (for tests and benchmarks).
  int64_t upstream_requests() const;

 private:
  struct CellState {
    int failures = 0;
    TimePoint next_poll{};
    TimePoint last_probe{};
  };

  void Loop();
  void PollCell(const CommCell& cell, const std::vector<Job>& active,
                const std::vector<TriggerIntent>& intents);
  // Settles the CommCell's open intents against `upstream` (its DR job list, just fetched):
  // adopts an unrecorded job of the same type for an intent left by a crash or a lost answer, or
  // records an UNKNOWN job after intent_give_up. Never hands a job to an older intent while a
  // trigger in flight may be about to record it as its own answer.
  void Reconcile(const CommCell& cell, const std::vector<commserv::JobSummary>& upstream);
  void RecordFinished(const Job& job);
  void Prune();

  std::shared_ptr<const std::vector<CommCell>> commcells_;  // guarded by mu_
  JobStore& store_;
  Metrics& metrics_;
  const Clock& clock_;
  WatchHub& hub_;
  const TrackerOptions options_;
  const TimePoint started_at_;          // intents older than this were left by an earlier process
  const LeaderElection* const leader_;  // null: always lead

  std::mutex apply_mu_;  // serialises Apply: read, merge, write of one job at a time

  std::mutex round_mu_;                     // one round at a time
  std::map<std::string, CellState> cells_;  // guarded by round_mu_
  TimePoint last_prune_{};                  // guarded by round_mu_

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;          // guarded by mu_
  bool poked_ = false;             // guarded by mu_
  int64_t upstream_requests_ = 0;  // guarded by mu_
  std::thread thread_;
};

}  // namespace drgate::jobs
