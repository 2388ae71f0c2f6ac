#pragma once

// The tracker follows every job drgate started to a terminal state, and settles triggers whose
// answer was lost (intents left open by a crash or a timeout after sending).
//
// Upstream cost grows with CommCells, not with jobs or watchers: each CommCell that has something
// to follow gets one DR job-list request per poll interval, and Job/{id} only for a job the list
// did not show. A CommCell that fails is polled again after an exponential back-off of its own.
//
// Every CommCell runs on its own schedule (docs/tracking.md): its poll starts when it is due,
// whatever the other CommCells are doing, and no thread waits for a CommServe's answer (the
// client calls are asynchronous; their answers are handed to the tracker's thread, which does
// the registry work). A CommServe that hangs delays only its own CommCell. At most
// `max_concurrent_polls` CommCells have a poll under way at once; a due CommCell beyond that
// waits for a free slot, oldest first. A poll under way for a whole poll interval (its
// CommServe hangs until the request times out) no longer counts against the bound, so hung
// CommServes cannot keep the others waiting past one interval.
//
// DR history (with a DrHistory, docs/dr-history.md): the leader reads each CommCell's DR job
// history on first contact (that read stands in for the poll's job list), records every DR job of
// each list it fetches that drgate did not start (origin COMMSERV) and then follows it like its
// own, and lists an idle CommCell every `history_interval`. Every replica asks for the DR backup
// options every `options_interval` (one request in flight per CommCell at most).
//
// Intents (see Orchestrator): an intent older than `intent_grace` is matched against the
// CommServe's DR job list: a DR job of the same type that started after the intent and that
// drgate has not recorded is adopted (recorded with the intent's request id). When none shows
// up within `intent_give_up`, a placeholder job "unknown-<intent id>" in state UNKNOWN is
// recorded with the intent's request id, so the request id never triggers a second backup and
// the caller can see what happened.
//
// The class is thread-safe.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/common/clock.h"
#include "core/common/keyed_executor.h"
#include "core/commserv/client.h"
#include "core/config/config.h"
#include "core/jobs/commcell.h"
#include "core/jobs/dr_history.h"
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
  // Every reference must outlive the tracker. With `leader` (replicas sharing a registry), a
  // CommCell's jobs and intents are followed only while leader->Tracks(commcell): one replica
  // polls the CommServe for them (the others only probe, see probe_interval); pruning runs only
  // while leader->IsLeader(); null: always. With `history`, DR jobs
  // drgate did not start are observed too and the DR backup options are read; null: neither.
  Tracker(std::vector<CommCell> commcells, JobStore& store, Metrics& metrics, const Clock& clock,
          WatchHub& hub, TrackerOptions options, const LeaderElection* leader = nullptr,
          DrHistory* history = nullptr);
  ~Tracker();
  Tracker(const Tracker&) = delete;
  Tracker& operator=(const Tracker&) = delete;

  // Starts the tracker's thread; Stop() ends it. Idempotent. Stop() waits for the registry work
  // under way; requests still waiting for a CommServe are abandoned (their answers, when they
  // come, are dropped without touching the tracker).
  void Start();
  void Stop();
  // Asks for a poll of every CommCell now (e.g. a job was just triggered); a CommCell whose poll
  // is under way is polled again once it ends. A failing CommCell keeps its back-off.
  void Poke();

  // Replaces the CommCells to follow (configuration reload): a new CommCell is checked at once,
  // a removed one is no longer polled (a request under way is abandoned), one whose client
  // changed starts afresh (no back-off).
  void SetCommCells(std::vector<CommCell> commcells);

  // Replaces the tracking.* settings (configuration reload; `history` itself needs a restart):
  // every interval, grace, retention and the concurrency bound apply from the next decision
  // that uses them, and a shorter poll_interval brings each CommCell's next poll forward.
  void SetTracking(const TrackingConfig& tracking);

  // Starts the polls of every CommCell that is due (all of them when `force`, except one that
  // is failing and inside its back-off, or whose poll is already under way), then waits until
  // they have ended, doing the tracker's work on the calling thread meanwhile. On a replica that
  // is not the leader, only the probes of idle CommCells. For tests and tools: the tracker's
  // thread (Start) does the same on its own.
  void RunRound(bool force = true);

  // Applies what the CommServe reports of one job: updates the registry when something
  // changed, publishes to watchers and counts a job that finished. Returns the job as recorded.
  StatusOr<Job> Apply(Job job, const commserv::JobSummary& summary);

  // Upstream requests sent by the tracker so far (for tests and benchmarks).
  int64_t upstream_requests() const;
  // CommCells whose poll or probe is under way now (at most max_concurrent_polls; for tests).
  int polls_under_way() const;

 private:
  // A piece of tracker work: the answer of a CommServe request, handled on work_ in its
  // CommCell's turn.
  using Task = std::function<void(Tracker&)>;
  // What the callbacks of requests in flight share with the tracker. They may run after the
  // tracker is gone, so they hold this, never the tracker: they post their answer as a Task to
  // `work` (under mu, while not `closed`), and the task does nothing once `closed`. `mu` guards
  // the tracker's scheduling state as well.
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    bool closed = false;         // guarded by mu: Stop() was called
    Tracker* tracker = nullptr;  // set by the constructor; used only while not closed
    KeyedThreadPool* work = nullptr;
  };
  // Threads that handle CommServe answers (registry reads and writes), one CommCell at a time
  // each: a CommCell whose registry work is slow holds one of them, the others go on.
  static constexpr int kWorkThreads = 4;

  // Scheduling runs on the clock's monotonic time; job and intent times are wall time.
  using Mono = std::chrono::steady_clock::time_point;
  enum class Phase { kWaiting, kQueued, kInFlight };
  struct CellState {
    CommCell cell;
    uint64_t generation = 0;  // a new one when the CommCell is added or its client changes
    Phase phase = Phase::kWaiting;
    Mono next_check{};    // kWaiting: when the CommCell is looked at next
    bool forced = false;  // polled at its next check even before next_poll (Poke)
    int failures = 0;
    Mono next_poll{};
    Mono last_probe{};
    bool history_read = false;       // the first-contact history read has been recorded
    Mono last_list{};                // when the last job list that arrived was asked for
    bool options_in_flight = false;  // GET Commcell/DRBackup/Options sent, not answered
  };

  // One poll (or probe) of one CommCell, from its check to its end.
  struct Poll {
    uint64_t id = 0;
    CommCell cell;
    uint64_t generation = 0;
    bool probe = false;    // nothing to follow: only the job list, for reachability
    bool history = false;  // first contact: the history read is this poll's job list
    uint64_t round = 0;    // the RunRound waiting for it (0: none)
    Mono started{};
    bool sent = false;      // under way (it left the queue): `started` is set
    std::vector<Job> jobs;  // to follow (not UNKNOWN)
    std::chrono::seconds lookback{3600};
    // Once the job list arrived:
    std::vector<commserv::JobSummary> list;
    std::vector<Job> unlisted;  // asked for one by one with Job/{id}
    size_t next_unlisted = 0;
    int64_t still_active = 0;
  };

  // Posts `task` to `commcell`'s turn on work_, unless the tracker has stopped.
  static void Deliver(const std::shared_ptr<Shared>& shared, const std::string& commcell,
                      Task task);

  void Loop();
  // Looks at every CommCell that is due (all when `force`), queues its poll or probe, and starts
  // as many as the concurrency bound allows; prunes when that is due.
  void Tick(bool force, uint64_t round);
  // Moves queued polls into flight while the bound allows; the caller sends them (Send) once
  // it has released the lock.
  std::vector<std::shared_ptr<Poll>> TakeStartableLocked();
  // Polls under way for less than a poll interval: those count against max_concurrent_polls.
  int TimelyPollsLocked(Mono now) const;
  // When the oldest poll under way becomes overdue, if a poll waits for a slot.
  std::optional<Mono> NextOverdueLocked() const;
  void Send(const std::shared_ptr<Poll>& poll);

  // The DR job list of `poll`'s CommCell has just arrived (or failed): for a poll, back-off,
  // the jobs it shows, then Job/{id} for those it does not; for a probe, nothing more. Every job
  // list the tracker asks for comes through here, on a tracker thread.
  void JobListArrived(const std::shared_ptr<Poll>& poll,
                      StatusOr<std::vector<commserv::JobSummary>> list);
  // The first-contact history read of `poll`'s CommCell has arrived: records it, then goes on as
  // with any job list.
  void HistoryArrived(const std::shared_ptr<Poll>& poll,
                      StatusOr<std::vector<commserv::JobSummary>> list);
  // Asks `cell` for its DR backup options; the answer goes to the history (OptionsArrived).
  // `round`: the RunRound that waits for the answer too (0: none).
  void SendOptions(const CommCell& cell, uint64_t generation, uint64_t round);
  void OptionsArrived(const std::string& commcell, uint64_t generation, uint64_t round,
                      StatusOr<commserv::DrBackupOptions> options);
  // Whether this process follows `commcell` now: the leader (or, with per-CommCell tracking
  // leases, the CommCell's lease holder; always without an election).
  bool Tracks(const std::string& commcell) const {
    return leader_ == nullptr || leader_->Tracks(commcell);
  }
  // Estate-wide chores (pruning): the leader only.
  bool Leading() const { return leader_ == nullptr || leader_->IsLeader(); }
  // Asks for the next job the list did not show, or ends the poll when none is left.
  void NextUnlisted(const std::shared_ptr<Poll>& poll);
  void UnlistedArrived(const std::shared_ptr<Poll>& poll,
                       StatusOr<std::optional<commserv::JobSummary>> single);
  // The poll is over: frees its slot and schedules its CommCell's next check.
  void Finish(const std::shared_ptr<Poll>& poll);
  void FinishLocked(const std::shared_ptr<Poll>& poll, Mono now);
  std::shared_ptr<Poll> FindPoll(uint64_t id);

  // Settles the CommCell's open intents against `upstream` (its DR job list, just fetched):
  // adopts an unrecorded job of the same type for an intent left by a crash or a lost answer, or
  // records an UNKNOWN job after intent_give_up. Never hands a job to an older intent while a
  // trigger in flight may be about to record it as its own answer.
  void Reconcile(const CommCell& cell, const std::vector<commserv::JobSummary>& upstream);
  void RecordFinished(const Job& job);
  void Prune();

  JobStore& store_;
  Metrics& metrics_;
  const Clock& clock_;
  WatchHub& hub_;
  // The settings in force (SetTracking); a copy is read under options_mu_, a leaf lock.
  TrackerOptions Options() const;
  mutable std::mutex options_mu_;
  TrackerOptions options_;              // guarded by options_mu_
  const TimePoint started_at_;          // intents older than this were left by an earlier process
  const LeaderElection* const leader_;  // null: always lead
  DrHistory* const history_;            // null: no DR history, no options

  // Serialises Apply per CommCell (read, merge, write of one job at a time); never held across
  // another CommCell's work.
  std::mutex& CellMutex(const std::string& commcell);
  std::mutex cell_mutexes_mu_;  // a leaf lock: guards cell_mutexes_ only
  std::map<std::string, std::unique_ptr<std::mutex>> cell_mutexes_;

  const std::shared_ptr<Shared> shared_ = std::make_shared<Shared>();
  // All guarded by shared_->mu:
  std::map<std::string, CellState> cells_;
  std::map<uint64_t, std::shared_ptr<Poll>> polls_;  // queued or in flight
  std::deque<std::shared_ptr<Poll>> queued_;         // waiting for a slot, oldest first
  int in_flight_ = 0;
  std::map<uint64_t, int> rounds_;  // RunRound id -> its polls not ended
  uint64_t next_id_ = 1;
  uint64_t next_generation_ = 1;
  int busy_ = 0;  // threads doing tracker work outside the lock (Stop waits for them)
  bool poked_ = false;
  Mono last_prune_{};
  std::thread thread_;

  std::atomic<int64_t> upstream_requests_{0};
  // Declared last, so destroyed first (after Stop()): the tasks it still holds do nothing then.
  const std::unique_ptr<KeyedThreadPool> work_;
};

}  // namespace drgate::jobs
