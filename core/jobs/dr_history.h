#pragma once

// What drgate learns about a CommCell's DR backups beyond the ones it starts itself: the
// CommServe's DR job history (its own schedule, administrators) and its DR backup options.
//
// The tracker drives it (docs/dr-history.md): on first contact with a CommCell it pages through
// the history (FetchHistory, asynchronous) and records it (RecordHistory); after each DR job list
// it fetches, Observe() with that list before its own intent reconciliation; and when OptionsDue()
// it asks for the options and hands the answer to ApplyOptions(). Nothing here waits for a
// CommServe except the blocking conveniences ReadHistory and RefreshOptions (tools and tests).
// Jobs this component records are origin kCommserv. Once recorded, an active one is an ordinary
// job of the registry: the tracker follows it to the end (ListActiveJobs returns every origin)
// and counts it in drgate_backup_jobs_finished_total{origin="commserv"}.
//
// A DR job that an open trigger intent of the CommCell may claim (MayClaim, intent_match.h: the
// rule the tracker adopts by) is left alone: the tracker adopts it as drgate's, or it is recorded
// by a later observation once no intent may claim it.

#include <chrono>
#include <functional>
#include <map>
#include <memory>
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

  using HistoryCallback = std::function<void(StatusOr<std::vector<commserv::JobSummary>>)>;

  // Pages through the CommCell's DR job list of the last `lookback` (limit/offset, page_size
  // jobs a page, at most max_pages) and calls `done` once with every job seen (a job that moves
  // between pages counted once), or with the first error. Asynchronous: `done` runs on the
  // client's thread. The read does not keep `client` alive (the caller does): a client
  // released between two pages ends it with CANCELLED, and one destroyed with a page asked for
  // drops `done` unrun.
  void FetchHistory(const std::string& commcell, std::shared_ptr<commserv::CommServClient> client,
                    std::chrono::seconds lookback, HistoryCallback done) const;

  // Records the jobs of a history read (FetchHistory) that the registry does not know and no
  // open intent may claim, as origin kCommserv with the CommServe's times, status and failure
  // reason (pendingReason). Never counts finished jobs; raises
  // drgate_backup_last_success_timestamp_seconds to the newest success seen. Returns how many
  // jobs it recorded. Registry work: call it from the tracker's thread.
  StatusOr<int> RecordHistory(const std::string& commcell,
                              const std::vector<commserv::JobSummary>& list);

  // Records the jobs of `list` (a DR job list just fetched) that are new to the registry and
  // that no open intent may claim; one already finished, and that ended after this object was
  // created, counts in drgate_backup_jobs_finished_total{origin="commserv"}. Returns how many
  // jobs it recorded.
  StatusOr<int> Observe(const std::string& commcell, const std::vector<commserv::JobSummary>& list);

  // True when the CommCell's DR backup options were never asked for, or options_interval has
  // passed since the last attempt; it then counts as attempted now.
  bool OptionsDue(const std::string& commcell);

  // Takes the answer of GET Commcell/DRBackup/Options: sets the holder and the retained-fulls
  // and offsite gauges. When the CommServe cannot tell (reason DR_OPTIONS_UNAVAILABLE) logs that
  // once per CommCell, makes them unknown and returns OK. Other errors are returned (the options
  // are asked for again after options_interval) and leave the last known options in place.
  Status ApplyOptions(const std::string& commcell, StatusOr<commserv::DrBackupOptions> got);

  // Forgets a CommCell (removed by a reload): its options become unknown and are asked for
  // again if it comes back.
  void Forget(const std::string& commcell);

  // Blocking forms of the above, for tools and tests: never call them on a gRPC or tracker
  // thread. ReadHistory = FetchHistory(config lookback) + RecordHistory; RefreshOptions =
  // OptionsDue + GET + ApplyOptions (OK without a request when not due).
  Status ReadHistory(const std::string& commcell, commserv::CommServClient& client);
  Status RefreshOptions(const std::string& commcell, commserv::CommServClient& client);

  const DrHistoryOptions& config() const { return config_; }

  // tracking.options_interval, changed by a reload; the next OptionsDue uses it.
  void SetOptionsInterval(std::chrono::milliseconds interval);
  std::chrono::milliseconds options_interval() const;

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

  mutable std::mutex mu_;
  std::chrono::milliseconds options_interval_;  // guarded by mu_
  // guarded by mu_: the last attempt, on the clock's monotonic time
  std::map<std::string, std::chrono::steady_clock::time_point> options_read_at_;
  std::map<std::string, bool> unavailable_logged_;  // guarded by mu_
};

}  // namespace drgate::jobs
