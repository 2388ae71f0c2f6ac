#pragma once

// What the orchestration needs from one CommServe: an interface, so core/jobs is tested with a
// fake and no sockets.

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/common/job.h"
#include "core/common/status.h"
#include "core/commserv/codec.h"

namespace drgate::commserv {

// Whether the last login or call to a CommServe succeeded.
struct Reachability {
  bool contacted = false;  // false until the first answer or failure
  bool reachable = false;
  std::string last_error;  // empty when reachable; never contains secrets
  TimePoint last_contact{};
};

class CommServClient {
 public:
  template <typename T>
  using Callback = std::function<void(StatusOr<T>)>;

  virtual ~CommServClient() = default;

  // POST CommServ/DRBackup with a valid session token (logging in or renewing as needed). The
  // callback runs exactly once, on a transport thread, never inline. Errors follow codec.h and
  // transport.h; credentials the CommServe rejects are FAILED_PRECONDITION.
  virtual void TriggerDrBackup(const DrBackupRequest& request, Callback<DrBackupResult> done) = 0;

  // GET Job?jobCategory=All&jobFilter=CSDRBKP&completedJobLookupTime=<lookback>: every DR
  // backup job the CommServe knows of, active or finished within `lookback`. One such request
  // refreshes all DR jobs of a CommCell, whatever their number.
  virtual void ListDrJobs(std::chrono::seconds lookback,
                          Callback<std::vector<JobSummary>> done) = 0;

  // One page of the same list, for reading a long history: `limit` jobs from `offset` (the
  // `limit` and `offset` request headers), newest first, with the whole list's size
  // (totalRecordsWithoutPaging) to know when to stop.
  virtual void ListDrJobPage(std::chrono::seconds lookback, int64_t offset, int64_t limit,
                             Callback<JobListPage> done) = 0;

  // GET Commcell/DRBackup/Options: where the CommServe writes its DR backups. An error with
  // reason Reason::kDrOptionsUnavailable means the options cannot be known from this
  // CommServe (404, unreadable answer): log it once and treat the options as unknown.
  virtual void GetDrBackupOptions(Callback<DrBackupOptions> done) = 0;

  // GET Job/{id}. nullopt when the CommServe does not (yet) show the job: a freshly submitted id
  // can be missing for a few seconds, which is not a failure.
  virtual void GetJob(const std::string& job_id, Callback<std::optional<JobSummary>> done) = 0;

  // POST Job/{id}/action/kill. UPSTREAM_REJECTED when the CommServe refuses (e.g. not active).
  virtual void KillJob(const std::string& job_id, std::function<void(Status)> done) = 0;

  virtual Reachability reachability() const = 0;
};

}  // namespace drgate::commserv
