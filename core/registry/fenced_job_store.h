#pragma once

// The registry as the tracker writes it: a JobStore view, handed to the tracker, whose writes are
// fenced (docs/replicas-fencing.md): a CommCell's job updates by that CommCell's lease
// (LeaderElection::FenceFor: the leader lease, or with per-CommCell tracking leases the
// CommCell's own), intent settlement without a job and pruning by the leader lease.
//
// Reads and AddIntent pass through to the real store. PutJobs, ResolveIntent and
// PruneTerminalJobs (job updates from tracking, intent adoption and settlement, pruning) are
// leader writes:
// - refused here, without a registry round trip, when the election says this process does not
//   lead now (LeaderElection::CurrentFence(): its lease ran out by its own clock, less a safety
//   margin, e.g. after the process was paused);
// - otherwise made through the store's fenced path with the lease generation, which the store
//   checks in the write's own transaction (JobStore::PutJobsFenced): a leader that lost its lease
//   between the check here and the write still writes nothing.
// A refused write changes nothing and is ABORTED with reason LEASE_LOST; it is logged (warning)
// and reported to the observer (drgate_leader_fenced_writes_total).
//
// Writes for a caller rather than as leader (CancelJob reading the killed job back through
// Tracker::Apply) run inside a CallerWrites scope and pass through unfenced, like a trigger's
// writes, which never come through this view.
//
// The class is thread-safe; the store and the election must outlive it.

#include <functional>
#include <optional>
#include <string>

#include "core/registry/job_store.h"
#include "core/registry/leader_election.h"

namespace drgate {

class FencedJobStore final : public JobStore {
 public:
  // Called with the operation ("record jobs", ...) of every refused write, on the writing thread.
  using RefusalObserver = std::function<void(const std::string& operation)>;

  FencedJobStore(JobStore& store, const LeaderElection& leader, RefusalObserver on_refused = {});

  // Marks the writes of this thread, while the scope lives, as made for a caller: they pass
  // through unfenced. Scopes nest.
  class CallerWrites {
   public:
    CallerWrites();
    ~CallerWrites();
    CallerWrites(const CallerWrites&) = delete;
    CallerWrites& operator=(const CallerWrites&) = delete;
  };

  // Leader writes (fenced).
  Status PutJobs(const std::vector<Job>& jobs,
                 std::optional<int64_t> resolved_intent = std::nullopt) override;
  Status ResolveIntent(int64_t intent_id, const std::string& outcome) override;
  StatusOr<int64_t> PruneTerminalJobs(TimePoint finished_before, int max_rows) override;

  // Pass through.
  StatusOr<Job> GetJob(const std::string& commcell, const std::string& job_id) override;
  StatusOr<std::optional<Job>> FindByRequestId(const std::string& commcell,
                                               const std::string& request_id) override;
  StatusOr<JobPage> ListJobs(const JobFilter& filter, int page_size,
                             const std::string& page_token) override;
  StatusOr<std::vector<Job>> ListActiveJobs() override;
  StatusOr<std::optional<Job>> LatestJob(const std::string& commcell, BackupType type,
                                         const std::vector<JobState>& states,
                                         std::optional<JobOrigin> origin = std::nullopt) override;
  StatusOr<int64_t> AddIntent(const TriggerIntent& intent) override;
  StatusOr<std::vector<TriggerIntent>> ListOpenIntents() override;
  StatusOr<std::optional<TriggerIntent>> FindOpenIntent(const std::string& commcell,
                                                        const std::string& request_id) override;
  Status PutJobsFenced(const LeaseFence& fence, const std::vector<Job>& jobs,
                       std::optional<int64_t> resolved_intent = std::nullopt) override;
  Status ResolveIntentFenced(const LeaseFence& fence, int64_t intent_id,
                             const std::string& outcome) override;
  StatusOr<int64_t> PruneTerminalJobsFenced(const LeaseFence& fence, TimePoint finished_before,
                                            int max_rows) override;

 private:
  // Runs `write(fence)` under the fence of `commcell` (LeaderElection::FenceFor), or the leader
  // lease's for an estate-wide write (nullopt), or refuses it; reports a refusal from either.
  template <typename Write>
  auto Fenced(const std::string& operation, const std::optional<std::string>& commcell, Write write)
      -> decltype(write(LeaseFence{}));
  void Refused(const std::string& operation, const Status& status);

  JobStore& store_;
  const LeaderElection& leader_;
  const RefusalObserver on_refused_;
};

}  // namespace drgate
