#include "core/registry/fenced_job_store.h"

#include <spdlog/spdlog.h>

#include <optional>
#include <type_traits>

namespace drgate {
namespace {

thread_local int caller_writes = 0;  // CallerWrites scopes open on this thread

}  // namespace

FencedJobStore::CallerWrites::CallerWrites() {
  ++caller_writes;
}

FencedJobStore::CallerWrites::~CallerWrites() {
  --caller_writes;
}

FencedJobStore::FencedJobStore(JobStore& store, const LeaderElection& leader,
                               RefusalObserver on_refused)
    : store_(store), leader_(leader), on_refused_(std::move(on_refused)) {}

void FencedJobStore::Refused(const std::string& operation, const Status& status) {
  spdlog::warn("registry: refused a leader write of this replica ({}): {}", operation,
               status.ToString());
  if (on_refused_) on_refused_(operation);
}

template <typename Write>
auto FencedJobStore::Fenced(const std::string& operation,
                            const std::optional<std::string>& commcell, Write write)
    -> decltype(write(LeaseFence{})) {
  const std::optional<LeaseFence> fence =
      commcell ? leader_.FenceFor(*commcell) : leader_.CurrentFence();
  if (!fence) {
    Status refused(
        StatusCode::kAborted,
        operation + (commcell
                         ? ": refused: this replica does not track commcell " + *commcell +
                               " now: it does not hold the leader lease or the CommCell's own (it "
                               "ran out, less the safety margin, without a renewal, or another "
                               "replica holds it)"
                         : ": refused: this replica does not hold the leader lease (it ran out, "
                           "less the safety margin, without a renewal, or another replica leads)"),
        Reason::kLeaseLost);
    Refused(operation, refused);
    return refused;
  }
  auto result = write(*fence);
  Status status;
  if constexpr (std::is_same_v<decltype(result), Status>) {
    status = result;
  } else {
    status = result.status();
  }
  if (!status.ok() && status.reason() == Reason::kLeaseLost) Refused(operation, status);
  return result;
}

Status FencedJobStore::PutJobs(const std::vector<Job>& jobs,
                               std::optional<int64_t> resolved_intent) {
  if (caller_writes > 0) return store_.PutJobs(jobs, resolved_intent);
  if (jobs.empty()) return store_.PutJobs(jobs, resolved_intent);
  // A write is fenced by the lease of the CommCell its jobs belong to (one CommCell per write:
  // the tracker and the DR history write CommCell by CommCell).
  const std::string& commcell = jobs.front().commcell;
  for (const Job& j : jobs) {
    if (j.commcell != commcell) {
      return Status(StatusCode::kInternal,
                    "record jobs: one fenced write holds jobs of commcells " + commcell + " and " +
                        j.commcell,
                    Reason::kInternal);
    }
  }
  return Fenced("record jobs", commcell, [&](const LeaseFence& fence) {
    return store_.PutJobsFenced(fence, jobs, resolved_intent);
  });
}

Status FencedJobStore::ResolveIntent(int64_t intent_id, const std::string& outcome) {
  if (caller_writes > 0) return store_.ResolveIntent(intent_id, outcome);
  return Fenced("resolve trigger intent", std::nullopt, [&](const LeaseFence& fence) {
    return store_.ResolveIntentFenced(fence, intent_id, outcome);
  });
}

StatusOr<int64_t> FencedJobStore::PruneTerminalJobs(TimePoint finished_before, int max_rows) {
  if (caller_writes > 0) return store_.PruneTerminalJobs(finished_before, max_rows);
  return Fenced("prune finished jobs", std::nullopt, [&](const LeaseFence& fence) {
    return store_.PruneTerminalJobsFenced(fence, finished_before, max_rows);
  });
}

StatusOr<Job> FencedJobStore::GetJob(const std::string& commcell, const std::string& job_id) {
  return store_.GetJob(commcell, job_id);
}

StatusOr<std::optional<Job>> FencedJobStore::FindByRequestId(const std::string& commcell,
                                                             const std::string& request_id) {
  return store_.FindByRequestId(commcell, request_id);
}

StatusOr<JobPage> FencedJobStore::ListJobs(const JobFilter& filter, int page_size,
                                           const std::string& page_token) {
  return store_.ListJobs(filter, page_size, page_token);
}

StatusOr<std::vector<Job>> FencedJobStore::ListActiveJobs() {
  return store_.ListActiveJobs();
}

StatusOr<std::optional<Job>> FencedJobStore::LatestJob(const std::string& commcell, BackupType type,
                                                       const std::vector<JobState>& states,
                                                       std::optional<JobOrigin> origin) {
  return store_.LatestJob(commcell, type, states, origin);
}

StatusOr<int64_t> FencedJobStore::AddIntent(const TriggerIntent& intent) {
  return store_.AddIntent(intent);
}

StatusOr<std::vector<TriggerIntent>> FencedJobStore::ListOpenIntents() {
  return store_.ListOpenIntents();
}

StatusOr<std::optional<TriggerIntent>> FencedJobStore::FindOpenIntent(
    const std::string& commcell, const std::string& request_id) {
  return store_.FindOpenIntent(commcell, request_id);
}

Status FencedJobStore::PutJobsFenced(const LeaseFence& fence, const std::vector<Job>& jobs,
                                     std::optional<int64_t> resolved_intent) {
  return store_.PutJobsFenced(fence, jobs, resolved_intent);
}

Status FencedJobStore::ResolveIntentFenced(const LeaseFence& fence, int64_t intent_id,
                                           const std::string& outcome) {
  return store_.ResolveIntentFenced(fence, intent_id, outcome);
}

StatusOr<int64_t> FencedJobStore::PruneTerminalJobsFenced(const LeaseFence& fence,
                                                          TimePoint finished_before, int max_rows) {
  return store_.PruneTerminalJobsFenced(fence, finished_before, max_rows);
}

}  // namespace drgate
