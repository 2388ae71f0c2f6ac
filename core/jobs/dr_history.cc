#include "core/jobs/dr_history.h"

#include <algorithm>
#include <future>
#include <utility>

#include <spdlog/spdlog.h>

#include "core/jobs/intent_match.h"

namespace drgate::jobs {
namespace {

using commserv::JobSummary;

constexpr std::size_t kPutBatch = 100;

template <typename T, typename Start>
StatusOr<T> Await(Start start) {
  std::promise<StatusOr<T>> promise;
  auto future = promise.get_future();
  start([&promise](StatusOr<T> result) { promise.set_value(std::move(result)); });
  return future.get();
}

// One history read: asks for the next page from the answer to the previous one, so no thread
// waits between pages. The client keeps the pager alive (through the callback it holds while a
// page is asked for), so the pager holds the client weakly: a strong reference back would be a
// cycle that outlives a client closed with a page still asked for (a shutdown mid-read).
class HistoryPager : public std::enable_shared_from_this<HistoryPager> {
 public:
  HistoryPager(std::string commcell, std::shared_ptr<commserv::CommServClient> client,
               std::chrono::seconds lookback, const DrHistoryOptions& config,
               DrHistory::HistoryCallback done)
      : commcell_(std::move(commcell)),
        client_(std::move(client)),
        lookback_(lookback),
        page_size_(config.page_size),
        max_pages_(config.max_pages),
        done_(std::move(done)) {}

  void Next() {
    const std::shared_ptr<commserv::CommServClient> client = client_.lock();
    if (client == nullptr) {
      done_(Status(StatusCode::kCancelled,
                   "the DR history read of commcell " + commcell_ +
                       " ended: its CommServe client was closed",
                   Reason::kShuttingDown));
      return;
    }
    client->ListDrJobPage(lookback_, offset_, page_size_,
                          [self = shared_from_this()](StatusOr<commserv::JobListPage> got) {
                            self->Arrived(std::move(got));
                          });
  }

 private:
  void Arrived(StatusOr<commserv::JobListPage> got) {
    if (!got.ok()) {
      done_(got.status());
      return;
    }
    for (JobSummary& s : got->jobs) seen_.emplace(s.job_id, std::move(s));
    offset_ += static_cast<int64_t>(got->jobs.size());
    ++pages_;
    if (!got->jobs.empty() && offset_ < got->total) {
      if (pages_ < max_pages_) {
        Next();
        return;
      }
      spdlog::warn("dr history: commcell {}: read {} of {} DR jobs ({} pages); the rest is left",
                   commcell_, offset_, got->total, max_pages_);
    }
    std::vector<JobSummary> list;
    list.reserve(seen_.size());
    for (auto& [id, s] : seen_) list.push_back(std::move(s));
    done_(std::move(list));
  }

  const std::string commcell_;
  const std::weak_ptr<commserv::CommServClient> client_;
  const std::chrono::seconds lookback_;
  const int64_t page_size_;
  const int max_pages_;
  const DrHistory::HistoryCallback done_;
  std::map<std::string, JobSummary> seen_;
  int64_t offset_ = 0;
  int pages_ = 0;
};

// The registry's view of a DR job drgate did not start.
Job FromSummary(const std::string& commcell, const JobSummary& s, TimePoint now) {
  Job job;
  job.commcell = commcell;
  job.job_id = s.job_id;
  job.origin = JobOrigin::kCommserv;
  job.backup_type = LevelOf(s.backup_level).value_or(BackupType::kFull);
  job.commserv_status = s.status;
  job.percent_complete = s.percent_complete;
  job.state = commserv::MapJobStatus(s.status).value_or(JobState::kRunning);
  if (s.start_time > 0) job.start_time = FromEpochSeconds(s.start_time);
  // The CommServe created it; drgate's create_time is when the job began, as best known.
  job.create_time = job.start_time.value_or(now);
  job.update_time = s.last_update_time > 0
                        ? std::max(FromEpochSeconds(s.last_update_time), job.create_time)
                        : now;
  if (IsTerminal(job.state)) {
    job.end_time = s.end_time > 0 ? FromEpochSeconds(s.end_time) : job.update_time;
    job.update_time = std::max(job.update_time, *job.end_time);
    if (job.state == JobState::kFailed || job.state == JobState::kKilled) {
      job.failure_reason = !s.pending_reason.empty() ? s.pending_reason
                                                     : "the CommServe reports \"" + s.status + "\"";
    }
  }
  return job;
}

}  // namespace

void DrOptionsHolder::Set(const std::string& commcell, Entry entry) {
  std::lock_guard lock(mu_);
  entries_[commcell] = std::move(entry);
}

void DrOptionsHolder::Clear(const std::string& commcell) {
  std::lock_guard lock(mu_);
  entries_.erase(commcell);
}

std::optional<DrOptionsHolder::Entry> DrOptionsHolder::Get(const std::string& commcell) const {
  std::lock_guard lock(mu_);
  const auto it = entries_.find(commcell);
  if (it == entries_.end()) return std::nullopt;
  return it->second;
}

DrHistory::DrHistory(JobStore& store, Metrics& metrics, DrOptionsHolder& options,
                     const Clock& clock, DrHistoryOptions config)
    : store_(store),
      metrics_(metrics),
      options_(options),
      clock_(clock),
      config_(config),
      started_at_(clock.Now()),
      options_interval_(config.options_interval) {}

void DrHistory::FetchHistory(const std::string& commcell,
                             std::shared_ptr<commserv::CommServClient> client,
                             std::chrono::seconds lookback, HistoryCallback done) const {
  std::make_shared<HistoryPager>(commcell, std::move(client), lookback, config_, std::move(done))
      ->Next();
}

StatusOr<int> DrHistory::RecordHistory(const std::string& commcell,
                                       const std::vector<JobSummary>& list) {
  StatusOr<int> recorded = Record(commcell, list, /*count=*/false);
  if (recorded.ok()) {
    spdlog::info("dr history: commcell {}: {} DR jobs in the history read, {} recorded as commserv",
                 commcell, list.size(), *recorded);
  }
  return recorded;
}

Status DrHistory::ReadHistory(const std::string& commcell, commserv::CommServClient& client) {
  // Blocks until the read is over, so the client outlives it: a non-owning pointer (with a
  // control block of its own, as the pager holds it weakly) will do.
  std::shared_ptr<commserv::CommServClient> unowned(&client, [](commserv::CommServClient*) {});
  StatusOr<std::vector<JobSummary>> list =
      Await<std::vector<JobSummary>>([&](HistoryCallback done) {
        FetchHistory(commcell, unowned, config_.lookback, std::move(done));
      });
  if (!list.ok()) return list.status();
  return RecordHistory(commcell, *list).status();
}

StatusOr<int> DrHistory::Observe(const std::string& commcell, const std::vector<JobSummary>& list) {
  return Record(commcell, list, /*count=*/true);
}

StatusOr<int> DrHistory::Record(const std::string& commcell, const std::vector<JobSummary>& list,
                                bool count) {
  const TimePoint now = clock_.Now();
  // Read after the list arrived (as the tracker does): a trigger whose POST created a job in
  // `list` wrote its intent first, so it is either still open here or has recorded its job.
  StatusOr<std::vector<TriggerIntent>> open = store_.ListOpenIntents();
  if (!open.ok()) return open.status();
  std::vector<TriggerIntent> intents;
  for (const TriggerIntent& i : *open) {
    if (i.commcell == commcell) intents.push_back(i);
  }
  std::vector<Job> batch;
  std::vector<Job> recorded;
  auto flush = [&]() -> Status {
    if (batch.empty()) return Status::Ok();
    if (Status s = store_.PutJobs(batch); !s.ok()) return s;
    recorded.insert(recorded.end(), batch.begin(), batch.end());
    batch.clear();
    return Status::Ok();
  };
  for (const JobSummary& s : list) {
    if (std::any_of(intents.begin(), intents.end(),
                    [&](const TriggerIntent& i) { return MayClaim(i, s); })) {
      continue;  // the tracker's reconciliation decides
    }
    StatusOr<Job> known = store_.GetJob(commcell, s.job_id);
    if (known.ok()) continue;
    if (known.status().code() != StatusCode::kNotFound) return known.status();
    batch.push_back(FromSummary(commcell, s, now));
    if (batch.size() >= kPutBatch) {
      if (Status st = flush(); !st.ok()) return st;
    }
  }
  if (Status st = flush(); !st.ok()) return st;

  for (const Job& job : recorded) {
    if (!IsTerminal(job.state)) continue;
    if (count && job.end_time && *job.end_time >= started_at_) {
      metrics_.RecordJobFinished(job);  // labels origin="commserv"; raises last success too
    } else if (job.state == JobState::kSucceeded || job.state == JobState::kSucceededWithErrors) {
      metrics_.SetLastSuccess(commcell, job.backup_type, job.end_time.value_or(job.update_time));
    }
  }
  return static_cast<int>(recorded.size());
}

void DrHistory::SetOptionsInterval(std::chrono::milliseconds interval) {
  std::lock_guard lock(mu_);
  options_interval_ = interval;
}

std::chrono::milliseconds DrHistory::options_interval() const {
  std::lock_guard lock(mu_);
  return options_interval_;
}

bool DrHistory::OptionsDue(const std::string& commcell) {
  const auto now = clock_.Monotonic();
  std::lock_guard lock(mu_);
  const auto it = options_read_at_.find(commcell);
  if (it != options_read_at_.end() && now - it->second < options_interval_) return false;
  options_read_at_[commcell] = now;
  return true;
}

Status DrHistory::ApplyOptions(const std::string& commcell,
                               StatusOr<commserv::DrBackupOptions> got) {
  if (!got.ok()) {
    if (got.status().reason() != Reason::kDrOptionsUnavailable) return got.status();
    bool first = false;
    {
      std::lock_guard lock(mu_);
      first = !std::exchange(unavailable_logged_[commcell], true);
    }
    if (first) {
      spdlog::warn(
          "dr history: commcell {}: the CommServe does not tell its DR backup options ({}); "
          "they stay unknown",
          commcell, got.status().ToString());
    }
    options_.Clear(commcell);
    metrics_.SetDrBackupOptions(commcell, std::nullopt, std::nullopt);
    return Status::Ok();
  }
  {
    std::lock_guard lock(mu_);
    unavailable_logged_[commcell] = false;
  }
  options_.Set(commcell, DrOptionsHolder::Entry{*got, clock_.Now()});
  metrics_.SetDrBackupOptions(commcell, got->retained_fulls, commserv::CopyLeavesHost(*got));
  return Status::Ok();
}

void DrHistory::Forget(const std::string& commcell) {
  {
    std::lock_guard lock(mu_);
    options_read_at_.erase(commcell);
    unavailable_logged_.erase(commcell);
  }
  options_.Clear(commcell);
  metrics_.SetDrBackupOptions(commcell, std::nullopt, std::nullopt);
}

Status DrHistory::RefreshOptions(const std::string& commcell, commserv::CommServClient& client) {
  if (!OptionsDue(commcell)) return Status::Ok();
  return ApplyOptions(commcell, Await<commserv::DrBackupOptions>([&](auto done) {
                        client.GetDrBackupOptions(std::move(done));
                      }));
}

}  // namespace drgate::jobs
