#include "core/metrics/metrics.h"

#include <string>

#ifndef DRGATE_VERSION
#define DRGATE_VERSION "dev"
#endif
#ifndef DRGATE_REVISION
#define DRGATE_REVISION "unknown"
#endif

namespace drgate {
namespace {

const char* ResultName(TriggerResult r) {
  switch (r) {
    case TriggerResult::kSubmitted: return "submitted";
    case TriggerResult::kDeduplicated: return "deduplicated";
    case TriggerResult::kRejected: return "rejected";
    case TriggerResult::kFailed: return "failed";
  }
  return "failed";
}

// Series budget: at most 120 series per CommCell on /metrics (tests/core/metrics count them), so
// histograms have few buckets, each chosen for a question an alert or the dashboard asks.
//
// A trigger (token, POST, parse) answers in well under a second when healthy; 5 s and more
// means a slow CommServe, 30 s the timeouts.
const prometheus::Histogram::BucketBoundaries kTriggerBuckets = {0.25, 1, 5, 30};

// One CommServe request: fast (< 50 ms, keep-alive), normal (< 250 ms), slow, very slow,
// timing out.
const prometheus::Histogram::BucketBoundaries kCommServBuckets = {0.05, 0.25, 1, 5, 30};

// DR backups take minutes to hours: 30 min, 1 h, 2 h, 4 h.
const prometheus::Histogram::BucketBoundaries kJobDurationBuckets = {1800, 3600, 7200, 14400};

// drgate_commserv_request_duration_seconds has its own histogram for the DR backup call and the
// job list (the calls whose latency matters); every other endpoint shares endpoint="other".
// drgate_commserv_requests_total keeps every endpoint apart.
const char* DurationEndpoint(CommServEndpoint endpoint) {
  switch (endpoint) {
    case CommServEndpoint::kDrBackup:
    case CommServEndpoint::kJobList: return CommServEndpointName(endpoint);
    default: return "other";
  }
}

constexpr JobState kTerminalStates[] = {JobState::kSucceeded, JobState::kSucceededWithErrors,
                                        JobState::kFailed, JobState::kKilled};

double Seconds(TimePoint t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

constexpr const char* kFailureReasons[] = {"unreachable",
                                           "timeout",
                                           "tls",
                                           "authentication",
                                           "rejected",
                                           "already_running",
                                           "upstream_error",
                                           "malformed_response",
                                           "registry",
                                           "overloaded",
                                           "other"};

constexpr const char* kRejectReasons[] = {"circuit_open", "queue_full", "deadline_exceeded"};

constexpr CommServEndpoint kRetriedEndpoints[] = {
    CommServEndpoint::kLogin, CommServEndpoint::kRenew,   CommServEndpoint::kDrBackup,
    CommServEndpoint::kJob,   CommServEndpoint::kJobList, CommServEndpoint::kKill};

// The reason label of drgate_registry_write_failures_total (SqliteJobStore's problem classes).
constexpr const char* kRegistryProblems[] = {"disk_full", "read_only",     "io_error",
                                             "busy",      "out_of_memory", "other"};

// HTTP codes that get their own series at startup; others are created on first use.
constexpr int kKnownHttpCodes[] = {200, 401, 500};

}  // namespace

const char* CommServEndpointName(CommServEndpoint endpoint) {
  switch (endpoint) {
    case CommServEndpoint::kLogin: return "login";
    case CommServEndpoint::kRenew: return "renew";
    case CommServEndpoint::kLogout: return "logout";
    case CommServEndpoint::kDrBackup: return "drbackup";
    case CommServEndpoint::kJob: return "job";
    case CommServEndpoint::kJobList: return "job_list";
    case CommServEndpoint::kKill: return "kill";
    case CommServEndpoint::kJobDetails: return "job_details";
    case CommServEndpoint::kDrOptions: return "dr_options";
  }
  return "other";
}

Metrics::Metrics(prometheus::Registry& registry, MetricsOptions options)
    : per_commcell_histograms_(options.per_commcell_histograms),
      triggers_(prometheus::BuildCounter()
                    .Name("drgate_backup_triggers_total")
                    .Help("DR backup trigger requests by outcome: submitted (a new job), "
                          "deduplicated (an earlier job answered), rejected (the CommServe "
                          "refused), failed (error before a job was known).")
                    .Register(registry)),
      trigger_duration_(prometheus::BuildHistogram()
                            .Name("drgate_backup_trigger_duration_seconds")
                            .Help("Latency of the upstream DR backup call (token, POST, parse).")
                            .Register(registry)),
      trigger_failures_(prometheus::BuildCounter()
                            .Name("drgate_backup_trigger_failures_total")
                            .Help("Failed or rejected DR backup triggers by reason.")
                            .Register(registry)),
      commserv_requests_(prometheus::BuildCounter()
                             .Name("drgate_commserv_requests_total")
                             .Help("HTTP requests to the CommServe by endpoint and HTTP status "
                                   "(code=\"error\" when no answer came).")
                             .Register(registry)),
      build_info_(prometheus::BuildGauge()
                      .Name("drgate_build_info")
                      .Help("Always 1; labels carry the version and the git revision.")
                      .Register(registry)),
      commserv_duration_(prometheus::BuildHistogram()
                             .Name("drgate_commserv_request_duration_seconds")
                             .Help("Latency of HTTP requests to the CommServe by endpoint.")
                             .Register(registry)),
      commserv_up_(prometheus::BuildGauge()
                       .Name("drgate_commserv_up")
                       .Help("1 when the last login or call to the CommServe succeeded, else 0 "
                             "(also 0 before the first contact).")
                       .Register(registry)),
      logins_(prometheus::BuildCounter()
                  .Name("drgate_commserv_logins_total")
                  .Help("Logins to the CommServe by result (success, failure).")
                  .Register(registry)),
      commserv_retries_(prometheus::BuildCounter()
                            .Name("drgate_commserv_retries_total")
                            .Help("CommServe requests sent again after a failure that is safe to "
                                  "retry (reads; writes that never left drgate), by endpoint.")
                            .Register(registry)),
      circuit_open_(prometheus::BuildGauge()
                        .Name("drgate_commserv_circuit_open")
                        .Help("1 while the CommCell's circuit breaker is open or half-open "
                              "(calls fail fast), 0 when closed.")
                        .Register(registry)),
      commserv_rejected_(prometheus::BuildCounter()
                             .Name("drgate_commserv_rejected_total")
                             .Help("Calls drgate failed without sending them to the CommServe, by "
                                   "reason (circuit_open, queue_full, deadline_exceeded).")
                             .Register(registry)),
      jobs_finished_(prometheus::BuildCounter()
                         .Name("drgate_backup_jobs_finished_total")
                         .Help("DR backup jobs that reached a terminal state while drgate ran, by "
                               "origin: drgate (drgate started it) or commserv (the "
                               "CommServe's schedule or an administrator).")
                         .Register(registry)),
      job_duration_(prometheus::BuildHistogram()
                        .Name("drgate_backup_job_duration_seconds")
                        .Help("Run time of finished DR backup jobs (CommServe start to end).")
                        .Register(registry)),
      jobs_active_(prometheus::BuildGauge()
                       .Name("drgate_backup_jobs_active")
                       .Help("DR backup jobs drgate started that have not finished yet.")
                       .Register(registry)),
      last_success_(prometheus::BuildGauge()
                        .Name("drgate_backup_last_success_timestamp_seconds")
                        .Help("End time (Unix seconds) of the CommCell's last successful DR backup "
                              "of any origin (drgate's or the CommServe's own); 0 when drgate "
                              "has seen none.")
                        .Register(registry)),
      last_finished_(prometheus::BuildGauge()
                         .Name("drgate_backup_last_finished_timestamp_seconds")
                         .Help("End time (Unix seconds) of the last DR backup that finished in "
                               "this state; 0 when none has.")
                         .Register(registry)),
      registry_leader_(prometheus::BuildGauge()
                           .Name("drgate_registry_leader")
                           .Help("1 while this replica is the leader that polls the CommServe "
                                 "(always with the embedded registry), else 0.")
                           .Register(registry)
                           .Add({})),
      tracking_commcells_(prometheus::BuildGauge()
                              .Name("drgate_tracking_commcells")
                              .Help("CommCells whose jobs this replica follows now (polls their "
                                    "CommServe for them): all of them with the embedded registry "
                                    "or on the leader; its share with per-CommCell leases.")
                              .Register(registry)
                              .Add({})),
      fenced_writes_(prometheus::BuildCounter()
                         .Name("drgate_leader_fenced_writes_total")
                         .Help("Writes this replica attempted as leader (job updates, intent "
                               "settlement, pruning) and refused because it no longer held the "
                               "leader lease: a leader that was paused or cut off past its lease.")
                         .Register(registry)
                         .Add({})),
      registry_write_failures_(
          prometheus::BuildCounter()
              .Name("drgate_registry_write_failures_total")
              .Help("Registry writes that failed, by problem: disk_full, read_only, io_error, "
                    "busy, out_of_memory, other. A trigger whose intent cannot be written fails "
                    "before anything is sent to the CommServe.")
              .Register(registry)),
      retained_fulls_(prometheus::BuildGauge()
                          .Name("drgate_dr_backup_retained_fulls")
                          .Help("Full DR backups the CommServe retains (its DR backup options); "
                                "absent while unknown.")
                          .Register(registry)),
      offsite_(prometheus::BuildGauge()
                   .Name("drgate_dr_backup_offsite")
                   .Help("1 when the CommServe's DR backup export is copied off its host (a "
                         "network share or the cloud upload), 0 when it stays on the host's "
                         "own disk; absent while unknown. Phase 1 only: a storage policy copy "
                         "may still leave the host (docs/dr-history.md).")
                   .Register(registry)) {
  for (const char* problem : kRegistryProblems) registry_write_failures_.Add({{"reason", problem}});
  build_info_.Add({{"version", DRGATE_VERSION}, {"revision", DRGATE_REVISION}}).Set(1);
  if (!per_commcell_histograms_) {
    // Estate mode: the histograms exist once, from the start, whatever the CommCells.
    trigger_duration_.Add({}, kTriggerBuckets);
    for (const char* e : {"drbackup", "job_list", "other"}) {
      commserv_duration_.Add({{"endpoint", e}}, kCommServBuckets);
    }
    for (BackupType type : {BackupType::kFull, BackupType::kDifferential}) {
      job_duration_.Add({{"backup_type", BackupTypeName(type)}}, kJobDurationBuckets);
    }
  }
}

prometheus::Labels Metrics::HistogramLabels(const std::string& commcell,
                                            prometheus::Labels extra) const {
  if (per_commcell_histograms_) extra.emplace("commcell", commcell);
  return extra;
}

void Metrics::SetRegistryLeader(bool leader) {
  registry_leader_.Set(leader ? 1 : 0);
}

void Metrics::SetTrackingCommCells(int count) {
  tracking_commcells_.Set(count);
}

void Metrics::CountFencedWrite() {
  fenced_writes_.Increment();
}

void Metrics::RegisterCommCell(const std::string& commcell) {
  if (!per_commcell_histograms_) {
    RegisterCommCellForAlerts(commcell);
    return;
  }
  for (BackupType type : {BackupType::kFull, BackupType::kDifferential}) {
    for (TriggerResult r : {TriggerResult::kSubmitted, TriggerResult::kDeduplicated,
                            TriggerResult::kRejected, TriggerResult::kFailed}) {
      triggers_.Add({{"commcell", commcell},
                     {"backup_type", BackupTypeName(type)},
                     {"result", ResultName(r)}});
    }
  }
  trigger_duration_.Add({{"commcell", commcell}}, kTriggerBuckets);
  jobs_active_.Add({{"commcell", commcell}});
  commserv_up_.Add({{"commcell", commcell}});
  logins_.Add({{"commcell", commcell}, {"result", "success"}});
  logins_.Add({{"commcell", commcell}, {"result", "failure"}});
  circuit_open_.Add({{"commcell", commcell}});
  for (CommServEndpoint e : kRetriedEndpoints) {
    commserv_retries_.Add({{"commcell", commcell}, {"endpoint", CommServEndpointName(e)}});
  }
  for (const char* reason : kRejectReasons) {
    commserv_rejected_.Add({{"commcell", commcell}, {"reason", reason}});
  }
  for (const char* e : {"drbackup", "job_list", "other"}) {
    commserv_duration_.Add({{"commcell", commcell}, {"endpoint", e}}, kCommServBuckets);
  }
  for (BackupType type : {BackupType::kFull, BackupType::kDifferential}) {
    const char* t = BackupTypeName(type);
    job_duration_.Add({{"commcell", commcell}, {"backup_type", t}}, kJobDurationBuckets);
    last_success_.Add({{"commcell", commcell}, {"backup_type", t}});
    for (JobState state : kTerminalStates) {
      jobs_finished_.Add({{"commcell", commcell},
                          {"backup_type", t},
                          {"state", JobStateName(state)},
                          {"origin", JobOriginName(JobOrigin::kDrgate)}});
      // The CommServe's own jobs: failures exist from the start so that increase() in
      // DrgateDrBackupFailed sees the first one; successes appear when one finishes (budget).
      if (state == JobState::kFailed || state == JobState::kKilled) {
        jobs_finished_.Add({{"commcell", commcell},
                            {"backup_type", t},
                            {"state", JobStateName(state)},
                            {"origin", JobOriginName(JobOrigin::kCommserv)}});
      }
      last_finished_.Add(
          {{"commcell", commcell}, {"backup_type", t}, {"state", JobStateName(state)}});
    }
  }
  for (const char* reason : kFailureReasons) {
    trigger_failures_.Add({{"commcell", commcell}, {"reason", reason}});
  }
  for (CommServEndpoint e : {CommServEndpoint::kLogin, CommServEndpoint::kDrBackup}) {
    for (int code : kKnownHttpCodes) {
      commserv_requests_.Add({{"commcell", commcell},
                              {"endpoint", CommServEndpointName(e)},
                              {"code", std::to_string(code)}});
    }
    commserv_requests_.Add(
        {{"commcell", commcell}, {"endpoint", CommServEndpointName(e)}, {"code", "error"}});
  }
}

// Estate mode: the series deploy/prometheus/drgate-alerts.yaml reads with increase(), rate()
// or absent(), which must exist at 0 before their first change; everything else appears on
// first use (a CommCell in its steady state so stays under 40 series, docs/sizing.md).
void Metrics::RegisterCommCellForAlerts(const std::string& commcell) {
  for (BackupType type : {BackupType::kFull, BackupType::kDifferential}) {
    const char* t = BackupTypeName(type);
    // DrgateTriggerFailureRate's numerator.
    for (TriggerResult r : {TriggerResult::kRejected, TriggerResult::kFailed}) {
      triggers_.Add({{"commcell", commcell}, {"backup_type", t}, {"result", ResultName(r)}});
    }
    // DrgateNoRecentSuccessfulDrBackup, DrgateBackupMetricsAbsent.
    last_success_.Add({{"commcell", commcell}, {"backup_type", t}});
    // DrgateDrBackupFailed: failures of both origins.
    for (JobState state : {JobState::kFailed, JobState::kKilled}) {
      for (JobOrigin origin : {JobOrigin::kDrgate, JobOrigin::kCommserv}) {
        jobs_finished_.Add({{"commcell", commcell},
                            {"backup_type", t},
                            {"state", JobStateName(state)},
                            {"origin", JobOriginName(origin)}});
      }
    }
  }
  jobs_active_.Add({{"commcell", commcell}});
  commserv_up_.Add({{"commcell", commcell}});  // DrgateCommServUnreachable
  // DrgateCommServLoginFailing.
  logins_.Add({{"commcell", commcell}, {"result", "success"}});
  logins_.Add({{"commcell", commcell}, {"result", "failure"}});
  circuit_open_.Add({{"commcell", commcell}});
}

void Metrics::ObserveCommServRequest(const std::string& commcell, CommServEndpoint endpoint,
                                     double seconds) {
  commserv_duration_
      .Add(HistogramLabels(commcell, {{"endpoint", DurationEndpoint(endpoint)}}), kCommServBuckets)
      .Observe(seconds);
}

void Metrics::SetCommServUp(const std::string& commcell, bool up) {
  commserv_up_.Add({{"commcell", commcell}}).Set(up ? 1 : 0);
}

void Metrics::CountCommServRetry(const std::string& commcell, CommServEndpoint endpoint) {
  commserv_retries_.Add({{"commcell", commcell}, {"endpoint", CommServEndpointName(endpoint)}})
      .Increment();
}

void Metrics::SetCircuitOpen(const std::string& commcell, bool open) {
  circuit_open_.Add({{"commcell", commcell}}).Set(open ? 1 : 0);
}

void Metrics::CountCommServRejected(const std::string& commcell, const char* reason) {
  commserv_rejected_.Add({{"commcell", commcell}, {"reason", reason}}).Increment();
}

void Metrics::CountLogin(const std::string& commcell, bool success) {
  logins_.Add({{"commcell", commcell}, {"result", success ? "success" : "failure"}}).Increment();
}

void Metrics::RecordJobFinished(const Job& job) {
  const char* type = BackupTypeName(job.backup_type);
  jobs_finished_
      .Add({{"commcell", job.commcell},
            {"backup_type", type},
            {"state", JobStateName(job.state)},
            {"origin", JobOriginName(job.origin)}})
      .Increment();
  const TimePoint end = job.end_time.value_or(job.update_time);
  if (job.start_time && job.end_time && *job.end_time >= *job.start_time) {
    job_duration_.Add(HistogramLabels(job.commcell, {{"backup_type", type}}), kJobDurationBuckets)
        .Observe(std::chrono::duration<double>(*job.end_time - *job.start_time).count());
  }
  last_finished_
      .Add({{"commcell", job.commcell}, {"backup_type", type}, {"state", JobStateName(job.state)}})
      .Set(Seconds(end));
  if (job.state == JobState::kSucceeded || job.state == JobState::kSucceededWithErrors) {
    SetLastSuccess(job.commcell, job.backup_type, end);
  }
}

void Metrics::SetLastSuccess(const std::string& commcell, BackupType type, TimePoint when) {
  auto& gauge = last_success_.Add({{"commcell", commcell}, {"backup_type", BackupTypeName(type)}});
  // Never move backwards: a late report of an older job must not hide a newer success.
  if (Seconds(when) > gauge.Value()) gauge.Set(Seconds(when));
}

void Metrics::SetDrBackupOptions(const std::string& commcell, std::optional<int32_t> retained_fulls,
                                 std::optional<bool> offsite) {
  const prometheus::Labels labels = {{"commcell", commcell}};
  if (retained_fulls) {
    retained_fulls_.Add(labels).Set(*retained_fulls);
  } else if (retained_fulls_.Has(labels)) {
    retained_fulls_.Remove(&retained_fulls_.Add(labels));
  }
  if (offsite) {
    offsite_.Add(labels).Set(*offsite ? 1 : 0);
  } else if (offsite_.Has(labels)) {
    offsite_.Remove(&offsite_.Add(labels));
  }
}

void Metrics::SetActiveJobs(const std::string& commcell, int64_t count) {
  jobs_active_.Add({{"commcell", commcell}}).Set(static_cast<double>(count));
}

void Metrics::CountTrigger(const std::string& commcell, BackupType type, TriggerResult result) {
  triggers_
      .Add({{"commcell", commcell},
            {"backup_type", BackupTypeName(type)},
            {"result", ResultName(result)}})
      .Increment();
}

void Metrics::ObserveTriggerDuration(const std::string& commcell, double seconds) {
  trigger_duration_.Add(HistogramLabels(commcell), kTriggerBuckets).Observe(seconds);
}

void Metrics::CountTriggerFailure(const std::string& commcell, const Status& status) {
  trigger_failures_.Add({{"commcell", commcell}, {"reason", TriggerFailureReason(status)}})
      .Increment();
}

void Metrics::CountCommServRequest(const std::string& commcell, CommServEndpoint endpoint,
                                   int code) {
  // HTTP status codes are a bounded set (100-599); anything else folds into "error".
  const std::string code_label =
      (code >= 100 && code <= 599) ? std::to_string(code) : std::string("error");
  commserv_requests_
      .Add({{"commcell", commcell},
            {"endpoint", CommServEndpointName(endpoint)},
            {"code", code_label}})
      .Increment();
}

const char* Metrics::TriggerFailureReason(const Status& status) {
  // The caller's own deadline is a timeout whatever the reason says.
  if (status.code() == StatusCode::kDeadlineExceeded) return "timeout";
  return TriggerFailureLabel(status.reason());
}

void Metrics::CountRegistryWriteFailure(const std::string& problem) {
  for (const char* known : kRegistryProblems) {
    if (problem == known) {
      registry_write_failures_.Add({{"reason", known}}).Increment();
      return;
    }
  }
  registry_write_failures_.Add({{"reason", "other"}}).Increment();
}

}  // namespace drgate
