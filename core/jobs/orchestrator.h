#pragma once

// The orchestration of DR backups: resolves the CommCell, applies idempotency, journals the
// intent, calls the CommServe and records the job durably before answering.
//
// Data flow of a trigger: validate -> join a trigger in flight with the same request_id (in
// memory), else claim it -> request_id lookup in the registry -> intent written (durable) ->
// CommServClient::TriggerDrBackup -> jobs written with the intent closed in one transaction
// (durable) -> metrics -> callback.
//
// Never double-trigger by accident: the orchestrator never retries a POST. When the outcome is
// unknown (the request may have reached the CommServe), the intent stays open so that startup
// reconciliation can adopt or mark the job, and the caller gets UNAVAILABLE saying so.
//
// Threads (docs/architecture.md, "Threads, blocking and locks"): no method blocks its caller on the
// registry or the CommServe, so gRPC threads may call every one. Registry reads (GetJob, ListJobs,
// a trigger's request_id lookup, EnsureRecentBackup's and CancelJob's reads) run on the injected
// KeyedExecutor, keyed by CommCell, so a CommCell whose reads stall holds only its share of that
// pool; registry writes (which fsync) run on the blocking Executor. Callbacks run on one of those
// pools, never on the caller's thread, except a refusal because too many reads of that CommCell are
// waiting (UNAVAILABLE, reason REGISTRY_UNAVAILABLE), answered at once.
//
// Locks: mu_ guards only the in-memory bookkeeping of triggers in flight, keyed by (CommCell,
// request id); no registry call, upstream call or callback runs under it. The class is
// thread-safe.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/common/clock.h"
#include "core/common/executor.h"
#include "core/common/job.h"
#include "core/common/keyed_executor.h"
#include "core/common/status.h"
#include "core/commserv/client.h"
#include "core/jobs/commcell.h"
#include "core/jobs/dr_history.h"
#include "core/jobs/tracker.h"
#include "core/metrics/metrics.h"
#include "core/registry/job_store.h"

namespace drgate::jobs {

struct TriggerRequest {
  std::string commcell;  // empty: the only configured CommCell
  BackupType backup_type = BackupType::kFull;
  bool compression = false;
  std::string request_id;    // optional idempotency key
  std::string requested_by;  // caller identity (never a credential)
  // The caller's deadline (its gRPC deadline), handed to the CommServe client, which gives up
  // by then. nullopt: the CommCell's request_timeout alone bounds the upstream call.
  std::optional<TimePoint> deadline{};
};

struct TriggerOutcome {
  Job job;
  bool deduplicated = false;
};

struct CommCellInfo {
  std::string name;
  std::string url;
  commserv::Reachability reachability;
  // The DR backup options last read (OrchestratorOptions::dr_options); nullopt while unknown.
  std::optional<DrOptionsHolder::Entry> dr_backup_options;
};

// At most 36 printable ASCII characters.
constexpr std::size_t kMaxRequestIdLength = 36;

struct OrchestratorOptions {
  // Replicas sharing a registry (PostgreSQL): a trigger whose request_id another replica is
  // triggering right now (an open intent, or AddIntent answering REQUEST_ID_IN_FLIGHT) waits up to
  // this long, reading the registry every `shared_poll`, for that trigger's job and answers it
  // (deduplicated), instead of sending a second POST. Should be at least the slowest trigger. 0
  // (one process, SQLite): an open intent this process is not sending is answered
  // TRIGGER_OUTCOME_PENDING at once, as it can only be a lost answer.
  std::chrono::milliseconds shared_wait{0};
  std::chrono::milliseconds shared_poll{100};
  // Where the DR history component keeps each CommCell's DR backup options (ListCommCells reads
  // them); null: always unknown. Must outlive the Orchestrator.
  const DrOptionsHolder* dr_options = nullptr;
};

class Orchestrator {
 public:
  using TriggerCallback = std::function<void(StatusOr<TriggerOutcome>)>;

  // Every reference must outlive the orchestrator. `reads` runs registry reads, keyed by
  // CommCell; `blocking` runs registry writes.
  Orchestrator(std::vector<CommCell> commcells, JobStore& store, Metrics& metrics,
               const Clock& clock, Executor& blocking, KeyedExecutor& reads, Tracker& tracker,
               OrchestratorOptions options = {});
  // Calls StopWaiting.
  ~Orchestrator();
  // Answers triggers still waiting for another replica's outcome with UNAVAILABLE, and answers
  // later ones so at once. Call before the Executor stops running tasks. Idempotent.
  void StopWaiting();
  Orchestrator(const Orchestrator&) = delete;
  Orchestrator& operator=(const Orchestrator&) = delete;

  // Errors: INVALID_ARGUMENT (COMMCELL_REQUIRED, INVALID_REQUEST_ID), NOT_FOUND
  // (COMMCELL_NOT_FOUND), UNAVAILABLE (REGISTRY_UNWRITABLE or REGISTRY_UNAVAILABLE when the
  // intent cannot be written: nothing was sent; upstream errors), FAILED_PRECONDITION (credentials,
  // upstream refusals), ABORTED (DR_JOB_ALREADY_RUNNING), INTERNAL (MALFORMED_UPSTREAM_RESPONSE),
  // each with metadata "commcell".
  void TriggerBackup(TriggerRequest request, TriggerCallback done);

  // Answers a job that succeeded (also with errors) and ended within `max_age`, else one of this
  // type that is running now, else triggers one. deduplicated = true for the first two. Jobs of
  // any origin count (the CommServe's own schedule included) unless `origin` names one.
  void EnsureRecentBackup(TriggerRequest request, std::chrono::milliseconds max_age,
                          TriggerCallback done, std::optional<JobOrigin> origin = std::nullopt);

  // Kills the job on the CommServe and answers its state as the CommServe reports it after the
  // kill. NOT_FOUND for a job drgate did not start; FAILED_PRECONDITION (JOB_ALREADY_FINISHED)
  // for a finished one.
  // `requested_by` names the caller in the audit line (never a credential).
  void CancelJob(const std::string& commcell, const std::string& job_id,
                 const std::string& requested_by, std::function<void(StatusOr<Job>)> done);

  // NOT_FOUND (JOB_NOT_FOUND, COMMCELL_NOT_FOUND), INVALID_ARGUMENT (JOB_ID_REQUIRED,
  // COMMCELL_REQUIRED), UNAVAILABLE (REGISTRY_UNAVAILABLE).
  void GetJob(const std::string& commcell, const std::string& job_id,
              std::function<void(StatusOr<Job>)> done);

  // Replaces the configured CommCells (configuration reload). Calls in flight keep the CommCell
  // they started with; new calls see the new set.
  void SetCommCells(std::vector<CommCell> commcells);
  void ListJobs(JobFilter filter, int page_size, std::string page_token,
                std::function<void(StatusOr<JobPage>)> done);
  // In memory only (the clients' last known reachability): answers at once, without I/O.
  std::vector<CommCellInfo> ListCommCells() const;

 private:
  using CellPtr = std::shared_ptr<const CommCell>;
  // The CommCell by name (the only one when `name` is empty). The pointer keeps the
  // configuration snapshot it belongs to alive.
  StatusOr<CellPtr> Resolve(const std::string& name) const;
  // Runs `task` on the read pool in `commcell`'s turn; when too many reads of that CommCell are
  // waiting, calls `refused` instead, at once, with UNAVAILABLE (REGISTRY_UNAVAILABLE).
  void Read(const std::string& commcell, std::function<void()> task,
            std::function<void(Status)> refused);
  // A job of `cell` from the registry (blocking: on the read pool).
  StatusOr<Job> ReadJob(const CommCell& cell, const std::string& job_id);
  // The registry part of idempotency (blocking: on the read pool), for a trigger registered in
  // in_flight_: answers the job recorded for the request id, waits for or refuses an open intent
  // of it, or starts the trigger.
  void Lookup(CellPtr cell, TriggerRequest request, TriggerCallback done);
  void Start(CellPtr cell, TriggerRequest request, TriggerCallback done);
  // CancelJob once the CommCell is resolved (on the read pool): reads the job, then kills it.
  void KillJob(CellPtr cell, const std::string& job_id, const std::string& requested_by,
               std::function<void(StatusOr<Job>)> done);
  void Finish(const CellPtr& cell, const TriggerRequest& request, int64_t intent_id,
              TimePoint intent_time, StatusOr<commserv::DrBackupResult> result,
              TriggerCallback done);
  // Answers a refusal "already running" with the running job (OnActive::kReuse).
  void ReuseActive(const CommCell& cell, const TriggerRequest& request, const Status& refusal,
                   TriggerCallback done);
  // Answers the trigger and every duplicate that joined it while it was in flight.
  void Complete(const std::string& commcell, const TriggerRequest& request,
                StatusOr<TriggerOutcome> outcome, TriggerCallback first);
  // Waits (on adopter_) for the outcome of the trigger with request.request_id that another
  // replica is sending; `request` is already registered in in_flight_.
  void AwaitOtherReplica(CellPtr cell, TriggerRequest request,
                         std::chrono::steady_clock::time_point deadline, TriggerCallback done);
  void AdoptLoop();
  static std::string CoalesceKey(const TriggerRequest& request);
  Status Annotate(Status status, const std::string& commcell) const;

  mutable std::mutex cells_mu_;
  std::shared_ptr<const std::vector<CommCell>> commcells_;  // guarded by cells_mu_
  JobStore& store_;
  Metrics& metrics_;
  const Clock& clock_;
  Executor& blocking_;
  KeyedExecutor& reads_;
  Tracker& tracker_;

  // (commcell, CoalesceKey): the request_id, or "full/c0" (type and compression) for triggers
  // without one, which share one upstream call when they agree on both.
  using Key = std::pair<std::string, std::string>;
  // Guards the bookkeeping below, never a registry call. A trigger registers its key before it
  // reads the registry, so of concurrent duplicates in this process one reads and sends, and the
  // others join it; a duplicate arriving later finds the job, which the first records before it
  // leaves in_flight_. A stalled registry call so holds back only its own key's duplicates.
  std::mutex mu_;
  // A duplicate waiting for the first trigger of its key: answered with the first one's job when
  // it asked for the same parameters, else refused (REQUEST_ID_REUSED).
  struct Waiter {
    TriggerRequest request;
    TriggerCallback done;
  };
  // Triggers in flight, and the duplicates waiting for their answer.
  std::map<Key, std::vector<Waiter>> in_flight_;  // guarded by mu_: by request_id
  std::map<Key, std::vector<Waiter>> coalesced_;  // guarded by mu_: without one

  // GetJob reads waiting in the read pool, by (commcell, job id): a GetJob of a job whose read is
  // queued and not yet started joins it (a dashboard's thousand WatchJob streams on one job cost
  // one registry read, and take one place in the CommCell's queue). A read already under way is
  // never joined: it may have begun before the caller's own earlier write.
  std::mutex job_reads_mu_;
  std::map<Key, std::vector<std::function<void(StatusOr<Job>)>>>
      queued_job_reads_;  // guarded by job_reads_mu_

  const OrchestratorOptions options_;
  // Triggers waiting for another replica's outcome (AwaitOtherReplica), checked by adopter_.
  struct Adoption {
    CellPtr cell;
    TriggerRequest request;
    std::chrono::steady_clock::time_point deadline;
    TriggerCallback done;
  };
  std::mutex adopt_mu_;
  std::condition_variable adopt_cv_;
  std::vector<Adoption> adoptions_;  // guarded by adopt_mu_
  bool adopt_stopping_ = false;      // guarded by adopt_mu_
  std::thread adopter_;              // started with the first adoption
};

}  // namespace drgate::jobs
