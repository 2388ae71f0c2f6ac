#pragma once

// What drgate learns about a CommCell's DR backups beyond the ones it starts itself: the
// CommServe's DR job history (its own schedule, administrators) and its DR backup options.
//
// Call sites (the per-CommCell tracker): on first contact with a CommCell, ReadHistory() and
// RefreshOptions(); after each DR job list it fetches, Observe() with that list (before its own
// intent reconciliation); every round, RefreshOptions() (a no-op until options_interval passed).
// Jobs this component records are origin kCommserv. Once recorded, an active one is an ordinary
// job of the registry: the tracker follows it to the end (ListActiveJobs returns every origin)
// and counts it in drgate_backup_jobs_finished_total{origin="commserv"}.
//
// The same rule as Tracker::Reconcile decides what belongs to drgate: a DR job that an open
// trigger intent of the CommCell may claim (same level, started no earlier than two minutes
// before the intent) is left alone: the tracker adopts it as drgate's or it shows up recorded.

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/common/clock.h"
#include "core/common/job.h"
#include "core/common/status.h"
#include "core/commserv/client.h"
#include "core/metrics/metrics.h"
#include "core/registry/job_store.h"

namespace drgate::jobs {

struct DrHistoryOptions {
  // tracking.history_lookback: how far back the first read of a CommCell's DR history goes.
  std::chrono::seconds lookback{7 * 24 * 3600};
  // tracking.options_interval: how often the DR backup options are read again.
  std::chrono::milliseconds options_interval{3600 * 1000};
  // Jobs per page of the history read (limit header).
  int64_t page_size = 100;
  // A history read stops after this many pages (page_size * max_pages jobs), whatever the total.
  int max_pages = 100;
};

// The DR backup options last read from each CommCell. Thread-safe: written by the tracker, read
// by ListCommCells and metrics.
class DrOptionsHolder {
 public:
  struct Entry {
    commserv::DrBackupOptions options;
    TimePoint fetch_time{};
  };
  void Set(const std::string& commcell, Entry entry);
  // Forgets the CommCell's options: they are unknown again.
  void Clear(const std::string& commcell);
  std::optional<Entry> Get(const std::string& commcell) const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;  // guarded by mu_
};

class DrHistory {
 public:
  // Every reference must outlive this object. `clock` decides "drgate started" (jobs that ended
  // before construction are history, never counted) and the options' fetch time.
  DrHistory(JobStore& store, Metrics& metrics, DrOptionsHolder& options, const Clock& clock,
            DrHistoryOptions config);

  // Pages through the CommCell's DR job list of the last `lookback` and records every job the
  // registry does not know and no open intent may claim, as origin kCommserv with the
  // CommServe's times, status and failure reason (pendingReason). Never counts finished jobs;
  // raises drgate_backup_last_success_timestamp_seconds to the newest success seen. Blocks on
  // the client: call it from the tracker's thread, never from a gRPC thread.
  Status ReadHistory(const std::string& commcell, commserv::CommServClient& client);

  // Records the jobs of `list` (a DR job list just fetched) that are new to the registry and
  // that no open intent may claim; one already finished, and that ended after this object was
  // created, counts in drgate_backup_jobs_finished_total{origin="commserv"}. Returns how many
  // jobs it recorded.
  StatusOr<int> Observe(const std::string& commcell, const std::vector<commserv::JobSummary>& list);

  // Reads the DR backup options when they were never read or options_interval has passed since
  // the last attempt. Sets the holder and the retained-fulls/offsite gauges; when the CommServe
  // cannot tell (reason DR_OPTIONS_UNAVAILABLE), logs that once per CommCell, clears them
  // (unknown) and returns OK. Other errors are returned (and retried next interval). Blocks on
  // the client, like ReadHistory.
  Status RefreshOptions(const std::string& commcell, commserv::CommServClient& client);

 private:
  // Records the new, unclaimed jobs of `list`. `count` says whether finished ones count.
  StatusOr<int> Record(const std::string& commcell, const std::vector<commserv::JobSummary>& list,
                       bool count);

  JobStore& store_;
  Metrics& metrics_;
  DrOptionsHolder& options_;
  const Clock& clock_;
  const DrHistoryOptions config_;
  const TimePoint started_at_;

  std::mutex mu_;
  std::map<std::string, TimePoint> options_read_at_;  // guarded by mu_: last attempt
  std::map<std::string, bool> unavailable_logged_;    // guarded by mu_
};

}  // namespace drgate::jobs
