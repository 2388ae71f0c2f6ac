#pragma once

// The job registry: every DR backup job drgate started, and those it found in a CommServe's DR
// job history (Job::origin), durable across restarts.
//
// Implementations are thread-safe. Every write returns only once it is durable (for SQLite: WAL
// with synchronous=FULL; for PostgreSQL: a committed transaction), so a job acknowledged to a
// caller survives a crash. Implementations: SqliteJobStore (embedded, one process) and
// PostgresJobStore (shared by several replicas).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/common/job.h"
#include "core/common/status.h"
#include "core/registry/leader_election.h"

namespace drgate {

// Every set field must match (an AND of the criteria).
struct JobFilter {
  std::string commcell;                   // empty: every CommCell
  std::optional<JobState> state;          // unset: every state
  std::optional<BackupType> backup_type;  // unset: every type
  // A half-open range on create_time: created_after <= create_time < created_before. Either end
  // may be unset (unbounded); an empty range lists nothing.
  std::optional<TimePoint> created_after;
  std::optional<TimePoint> created_before;
  std::optional<JobOrigin> origin;  // unset: every origin
};

struct JobPage {
  std::vector<Job> jobs;
  // Opaque cursor for the next page; empty on the last page.
  std::string next_page_token;
};

// A trigger that was about to be sent upstream. Written before the POST and resolved after the
// answer, so a crash in between leaves evidence that startup reconciles (see core/jobs).
struct TriggerIntent {
  int64_t id = 0;  // assigned by the store
  std::string commcell;
  BackupType backup_type = BackupType::kFull;
  bool compression = false;
  std::string request_id;
  std::string requested_by;
  TimePoint create_time{};
};

class JobStore {
 public:
  virtual ~JobStore() = default;

  // Inserts the jobs of one trigger, or updates them when (commcell, job_id) already exists, in
  // one transaction. When `resolved_intent` is set, that intent is closed in the same transaction.
  virtual Status PutJobs(const std::vector<Job>& jobs,
                         std::optional<int64_t> resolved_intent = std::nullopt) = 0;

  // NOT_FOUND (reason JOB_NOT_FOUND) when drgate did not start that job on that CommCell.
  virtual StatusOr<Job> GetJob(const std::string& commcell, const std::string& job_id) = 0;

  // The job first recorded for this idempotency key on this CommCell, if any.
  virtual StatusOr<std::optional<Job>> FindByRequestId(const std::string& commcell,
                                                       const std::string& request_id) = 0;

  // Newest first (create_time, then job id). page_size must be in [1, 1000]. A page token from
  // another filter, or a malformed one, is INVALID_ARGUMENT (reason INVALID_PAGE_TOKEN).
  virtual StatusOr<JobPage> ListJobs(const JobFilter& filter, int page_size,
                                     const std::string& page_token) = 0;

  // Jobs that are not in a terminal state (for the tracker).
  virtual StatusOr<std::vector<Job>> ListActiveJobs() = 0;

  // The job of `commcell` and `type` whose state is one of `states` and that is the most recent
  // by coalesce(end_time, create_time) (end_time when set, create_time otherwise); of jobs equally
  // recent, the one with the greatest job_id (compared bytewise). nullopt when no job matches,
  // including when `states` is empty. `origin` unset: a job of any origin; set: only that origin.
  virtual StatusOr<std::optional<Job>> LatestJob(
      const std::string& commcell, BackupType type, const std::vector<JobState>& states,
      std::optional<JobOrigin> origin = std::nullopt) = 0;

  // Retention. Deletes, in one transaction, at most `max_rows` jobs in a terminal state
  // (succeeded, succeeded_with_errors, failed, killed; never unknown or a non-terminal state)
  // whose coalesce(end_time, update_time) is before `finished_before`, oldest first, and at most
  // `max_rows` resolved intents whose create_time is before `finished_before`, oldest first (any
  // beyond that go on a later call). Open intents are never deleted. Returns the number of jobs
  // deleted: a caller catching up on a backlog calls again while that equals `max_rows`.
  // `max_rows` < 1 is INVALID_ARGUMENT (reason INVALID_MAX_ROWS).
  virtual StatusOr<int64_t> PruneTerminalJobs(TimePoint finished_before, int max_rows) = 0;

  // Leader writes (fencing, core/registry/fenced_job_store.h). The same as PutJobs,
  // ResolveIntent and PruneTerminalJobs, made only while `fence` is still the registry's current
  // lease: checked in the write's own transaction, which holds the lease row (so no replica can
  // take the lease over before it commits). A lease that another replica acquired since (a newer
  // generation), that ran out, or that nobody holds refuses the write: ABORTED, reason
  // LEASE_LOST, and nothing changes. A store without a lease (SQLite: one process, which always
  // leads) makes the plain write.
  virtual Status PutJobsFenced(const LeaseFence& fence, const std::vector<Job>& jobs,
                               std::optional<int64_t> resolved_intent = std::nullopt) = 0;
  virtual Status ResolveIntentFenced(const LeaseFence& fence, int64_t intent_id,
                                     const std::string& outcome) = 0;
  virtual StatusOr<int64_t> PruneTerminalJobsFenced(const LeaseFence& fence,
                                                    TimePoint finished_before, int max_rows) = 0;

  // Intent journal.
  // A request id is taken by one trigger at a time, enforced by the database: while an intent
  // with the same commcell and non-empty request_id is open, or once a job with them is
  // recorded, adding one writes nothing and is ALREADY_EXISTS (reason REQUEST_ID_IN_FLIGHT). The
  // check and the insert are atomic with PutJobs closing an intent of that request id, so of
  // replicas sharing a registry and racing with one request id exactly one sends the upstream
  // POST. Intents without a request id never conflict; after an intent closed without a job (its
  // trigger failed), the request id may be tried again.
  virtual StatusOr<int64_t> AddIntent(const TriggerIntent& intent) = 0;
  // Closes an intent without jobs (the trigger failed with a known outcome). NOT_FOUND (reason
  // INTENT_NOT_FOUND) for an unknown id, here and in PutJobs (which then writes nothing);
  // resolving an already resolved intent is a no-op that keeps the first outcome.
  virtual Status ResolveIntent(int64_t intent_id, const std::string& outcome) = 0;
  virtual StatusOr<std::vector<TriggerIntent>> ListOpenIntents() = 0;
  // The open intent of this request id on this CommCell (there is at most one), if any; an empty
  // request_id never matches. One index seek, where ListOpenIntents reads every open intent.
  virtual StatusOr<std::optional<TriggerIntent>> FindOpenIntent(const std::string& commcell,
                                                                const std::string& request_id) = 0;
};

}  // namespace drgate
