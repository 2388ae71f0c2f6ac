#pragma once

// The orchestration of DR backups: resolves the CommCell, applies idempotency, journals the
// intent, calls the CommServe and records the job durably before answering.
//
// Data flow of a trigger: validate -> request_id lookup (registry, then in-flight triggers) ->
// intent written (durable) -> CommServClient::TriggerDrBackup -> jobs written with the intent
// closed in one transaction (durable) -> metrics -> callback.
//
// Never double-trigger by accident: the orchestrator never retries a POST. When the outcome is
// unknown (the request may have reached the CommServe), the intent stays open so that startup
// reconciliation can adopt or mark the job, and the caller gets UNAVAILABLE saying so.
//
// The class is thread-safe. Blocking registry writes run on the injected Executor; callbacks run
// there too, never on the caller's thread.

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

  // Every reference must outlive the orchestrator.
  Orchestrator(std::vector<CommCell> commcells, JobStore& store, Metrics& metrics,
               const Clock& clock, Executor& blocking, Tracker& tracker,
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

  StatusOr<Job> GetJob(const std::string& commcell, const std::string& job_id);

  // Replaces the configured CommCells (configuration reload). Calls in flight keep the CommCell
  // they started with; new calls see the new set.
  void SetCommCells(std::vector<CommCell> commcells);
  StatusOr<JobPage> ListJobs(const JobFilter& filter, int page_size, const std::string& page_token);
  std::vector<CommCellInfo> ListCommCells() const;

 private:
  using CellPtr = std::shared_ptr<const CommCell>;
  // The CommCell by name (the only one when `name` is empty). The pointer keeps the
  // configuration snapshot it belongs to alive.
  StatusOr<CellPtr> Resolve(const std::string& name) const;
  void Start(CellPtr cell, TriggerRequest request, TriggerCallback done);
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
  Tracker& tracker_;

  // (commcell, CoalesceKey): the request_id, or "full/c0" (type and compression) for triggers
  // without one, which share one upstream call when they agree on both.
  using Key = std::pair<std::string, std::string>;
  // Held while a trigger checks the registry for its request_id and registers itself in flight,
  // so a duplicate either finds the recorded job or joins the in-flight trigger (the first
  // records its job before it leaves in_flight_).
  std::mutex mu_;
  // Triggers in flight, and the duplicates waiting for their answer.
  std::map<Key, std::vector<TriggerCallback>> in_flight_;  // guarded by mu_: by request_id
  std::map<Key, std::vector<TriggerCallback>> coalesced_;  // guarded by mu_: without one

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
