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

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/common/clock.h"
#include "core/common/executor.h"
#include "core/common/job.h"
#include "core/common/status.h"
#include "core/commserv/client.h"
#include "core/metrics/metrics.h"
#include "core/registry/job_store.h"

namespace drgate::jobs {

struct CommCell {
  std::string name;
  std::string url;  // without credentials
  std::shared_ptr<commserv::CommServClient> client;
};

struct TriggerRequest {
  std::string commcell;  // empty: the only configured CommCell
  BackupType backup_type = BackupType::kFull;
  bool compression = false;
  std::string request_id;    // optional idempotency key
  std::string requested_by;  // caller identity (never a credential)
};

struct TriggerOutcome {
  Job job;
  bool deduplicated = false;
};

struct CommCellInfo {
  std::string name;
  std::string url;
  commserv::Reachability reachability;
};

// At most 36 printable ASCII characters.
constexpr std::size_t kMaxRequestIdLength = 36;

class Orchestrator {
 public:
  using TriggerCallback = std::function<void(StatusOr<TriggerOutcome>)>;

  // `store`, `metrics`, `clock` and `blocking` must outlive the orchestrator.
  Orchestrator(std::vector<CommCell> commcells, JobStore& store, Metrics& metrics,
               const Clock& clock, Executor& blocking);

  // Errors: INVALID_ARGUMENT (COMMCELL_REQUIRED, INVALID_REQUEST_ID), NOT_FOUND
  // (COMMCELL_NOT_FOUND), UNAVAILABLE (REGISTRY_UNAVAILABLE before anything was sent; upstream
  // errors), FAILED_PRECONDITION (credentials, upstream refusals), ABORTED
  // (DR_JOB_ALREADY_RUNNING), INTERNAL (MALFORMED_UPSTREAM_RESPONSE), each with metadata
  // "commcell".
  void TriggerBackup(TriggerRequest request, TriggerCallback done);

  StatusOr<Job> GetJob(const std::string& commcell, const std::string& job_id);
  StatusOr<JobPage> ListJobs(const JobFilter& filter, int page_size, const std::string& page_token);
  std::vector<CommCellInfo> ListCommCells() const;

 private:
  StatusOr<const CommCell*> Resolve(const std::string& name) const;
  void Send(const CommCell& cell, TriggerRequest request, int64_t intent_id);
  void Complete(const std::string& commcell, const std::string& request_id,
                StatusOr<TriggerOutcome> outcome, TriggerCallback first);
  Status Annotate(Status status, const std::string& commcell) const;

  const std::vector<CommCell> commcells_;
  JobStore& store_;
  Metrics& metrics_;
  const Clock& clock_;
  Executor& blocking_;

  using Key = std::pair<std::string, std::string>;  // (commcell, request_id)
  // Held while a trigger checks the registry for its request_id and registers itself in flight,
  // so a duplicate either finds the recorded job or joins the in-flight trigger (the first
  // records its job before it leaves in_flight_).
  std::mutex mu_;
  // Triggers with a request_id that are in flight, and the duplicates waiting for their answer.
  std::map<Key, std::vector<TriggerCallback>> in_flight_;  // guarded by mu_
};

}  // namespace drgate::jobs
