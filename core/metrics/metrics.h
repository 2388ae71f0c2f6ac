#pragma once

// drgate's Prometheus instruments, created once at startup on a registry the caller owns.
//
// Labels are low-cardinality by construction: CommCell names come from the configuration,
// everything else from fixed sets below. A job id is never a label. Every known series is created
// at 0 for each configured CommCell (RegisterCommCell), so alerts on rate() and absent() work from
// the first scrape.
//
// The class is thread-safe (prometheus-cpp's families and metrics are).

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "core/common/job.h"
#include "core/common/status.h"

namespace drgate {

// result label of drgate_backup_triggers_total.
enum class TriggerResult { kSubmitted, kDeduplicated, kRejected, kFailed };

// CommServe endpoints, the endpoint label of drgate_commserv_requests_total.
enum class CommServEndpoint {
  kLogin,
  kRenew,
  kLogout,
  kDrBackup,
  kJob,
  kJobList,
  kKill,
  kJobDetails,
  kDrOptions
};
const char* CommServEndpointName(CommServEndpoint endpoint);

struct MetricsOptions {
  // true (the default): the latency histograms (drgate_backup_trigger_duration_seconds,
  // drgate_backup_job_duration_seconds, drgate_commserv_request_duration_seconds) have a commcell
  // label, and RegisterCommCell creates every known series of the CommCell at 0.
  //
  // false, "estate mode" for hundreds of CommCells (docs/sizing.md): the histograms are estate-wide
  // (no commcell label; their other labels stay), and RegisterCommCell creates at 0 only the
  // per-CommCell series the alert rules read with increase(), rate() or absent(); the other
  // per-CommCell counters and gauges appear on first use. Counters and gauges keep their
  // commcell label in both modes.
  bool per_commcell_histograms = true;
};

class Metrics {
 public:
  explicit Metrics(prometheus::Registry& registry, MetricsOptions options = {});

  bool per_commcell_histograms() const { return per_commcell_histograms_; }

  // Creates the known series of this CommCell at 0 (every one, or in estate mode those the alerts
  // read; see MetricsOptions). Idempotent.
  void RegisterCommCell(const std::string& commcell);

  void CountTrigger(const std::string& commcell, BackupType type, TriggerResult result);
  void ObserveTriggerDuration(const std::string& commcell, double seconds);
  // `status` is the failed trigger's error; its reason is folded into the fixed set of
  // TriggerFailureReason().
  void CountTriggerFailure(const std::string& commcell, const Status& status);

  // `code` is the HTTP status, or 0 when no answer came (transport error: label "error").
  void CountCommServRequest(const std::string& commcell, CommServEndpoint endpoint, int code);

  // Latency of one CommServe request (answered or not).
  void ObserveCommServRequest(const std::string& commcell, CommServEndpoint endpoint,
                              double seconds);
  // 1 when the last login or call reached the CommServe and was accepted, else 0.
  void SetCommServUp(const std::string& commcell, bool up);
  void CountLogin(const std::string& commcell, bool success);
  // A request sent again after a failure known to be safe to retry (core/commserv/session.h).
  void CountCommServRetry(const std::string& commcell, CommServEndpoint endpoint);
  // 1 while the CommCell's circuit breaker is open or half-open, 0 when closed.
  void SetCircuitOpen(const std::string& commcell, bool open);
  // A call that drgate failed without sending it, by reason: circuit_open, queue_full,
  // deadline_exceeded.
  void CountCommServRejected(const std::string& commcell, const char* reason);

  // A job reached a terminal state: finished count, duration (when start and end are known),
  // last-finished and last-success timestamps.
  void RecordJobFinished(const Job& job);
  // Seeds drgate_backup_last_success_timestamp_seconds from the registry at startup.
  void SetLastSuccess(const std::string& commcell, BackupType type, TimePoint when);
  void SetActiveJobs(const std::string& commcell, int64_t count);
  // drgate_dr_backup_retained_fulls and drgate_dr_backup_offsite of the CommCell; a nullopt
  // removes that series (unknown).
  void SetDrBackupOptions(const std::string& commcell, std::optional<int32_t> retained_fulls,
                          std::optional<bool> offsite);
  // drgate_registry_leader: 1 while this replica leads (polls the CommServe), else 0. Always 1
  // with the embedded registry.
  void SetRegistryLeader(bool leader);
  // drgate_tracking_commcells: CommCells whose jobs this replica follows now.
  void SetTrackingCommCells(int count);
  // drgate_leader_fenced_writes_total: a leader write of this replica (tracking, intent
  // settlement, pruning) refused because it no longer held the leader lease (fencing).
  void CountFencedWrite();

  // The fixed reason label for a failed trigger: one of unreachable, timeout, tls,
  // authentication, rejected, already_running, upstream_error, malformed_response, registry,
  // overloaded, other.
  static const char* TriggerFailureReason(const Status& status);

  // A registry write failed; `problem` is the store's class of it (disk_full, read_only,
  // io_error, busy, out_of_memory, other): drgate_registry_write_failures_total{reason}.
  void CountRegistryWriteFailure(const std::string& problem);

 private:
  void RegisterCommCellForAlerts(const std::string& commcell);
  // The labels of a latency histogram's series: `extra` plus the commcell unless in estate mode.
  prometheus::Labels HistogramLabels(const std::string& commcell,
                                     prometheus::Labels extra = {}) const;

  const bool per_commcell_histograms_;
  prometheus::Family<prometheus::Counter>& triggers_;
  prometheus::Family<prometheus::Histogram>& trigger_duration_;
  prometheus::Family<prometheus::Counter>& trigger_failures_;
  prometheus::Family<prometheus::Counter>& commserv_requests_;
  prometheus::Family<prometheus::Gauge>& build_info_;
  prometheus::Family<prometheus::Histogram>& commserv_duration_;
  prometheus::Family<prometheus::Gauge>& commserv_up_;
  prometheus::Family<prometheus::Counter>& logins_;
  prometheus::Family<prometheus::Counter>& commserv_retries_;
  prometheus::Family<prometheus::Gauge>& circuit_open_;
  prometheus::Family<prometheus::Counter>& commserv_rejected_;
  prometheus::Family<prometheus::Counter>& jobs_finished_;
  prometheus::Family<prometheus::Histogram>& job_duration_;
  prometheus::Family<prometheus::Gauge>& jobs_active_;
  prometheus::Family<prometheus::Gauge>& last_success_;
  prometheus::Family<prometheus::Gauge>& last_finished_;
  prometheus::Gauge& registry_leader_;
  prometheus::Gauge& tracking_commcells_;
  prometheus::Counter& fenced_writes_;
  prometheus::Family<prometheus::Counter>& registry_write_failures_;
  prometheus::Family<prometheus::Gauge>& retained_fulls_;
  prometheus::Family<prometheus::Gauge>& offsite_;
};

}  // namespace drgate
