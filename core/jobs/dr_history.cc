#include "core/jobs/dr_history.h"

#include <algorithm>
#include <cctype>
#include <future>
#include <set>
#include <utility>

#include <spdlog/spdlog.h>

namespace drgate::jobs {
namespace {

using commserv::JobSummary;

// How far a CommServe's clock may lag ours when matching a job to an intent (as the tracker).
constexpr std::chrono::minutes kClockSkew{2};
constexpr std::size_t kPutBatch = 100;

TimePoint FromEpochSeconds(int64_t seconds) {
  return TimePoint(std::chrono::seconds(seconds));
}

template <typename T, typename Start>
StatusOr<T> Await(Start start) {
  std::promise<StatusOr<T>> promise;
  auto future = promise.get_future();
  start([&promise](StatusOr<T> result) { promise.set_value(std::move(result)); });
  return future.get();
}

std::string Lower(const std::string& text) {
  std::string lower;
  for (char c : text) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower;
}

// The level a summary names; nullopt when it names none (then any intent may claim it).
std::optional<BackupType> LevelOf(const JobSummary& s) {
  const std::string lower = Lower(s.backup_level);
  if (lower.find("full") != std::string::npos) return BackupType::kFull;
  if (lower.find("diff") != std::string::npos) return BackupType::kDifferential;
  return std::nullopt;
}

// Tracker::Reconcile's matching rule: an intent may claim a DR job of its level (or of no named
// level) that did not start before the intent, give or take the clock skew.
bool MayClaim(const TriggerIntent& intent, const JobSummary& s) {
  const std::optional<BackupType> level = LevelOf(s);
  if (level && *level != intent.backup_type) return false;
  return s.start_time <= 0 || FromEpochSeconds(s.start_time) >= intent.create_time - kClockSkew;
}

// The registry's view of a DR job drgate did not start.
Job FromSummary(const std::string& commcell, const JobSummary& s, TimePoint now) {
  Job job;
  job.commcell = commcell;
  job.job_id = s.job_id;
  job.origin = JobOrigin::kCommserv;
  job.backup_type = LevelOf(s).value_or(BackupType::kFull);
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
      started_at_(clock.Now()) {}

Status DrHistory::ReadHistory(const std::string& commcell, commserv::CommServClient& client) {
  std::map<std::string, JobSummary> seen;  // a job that moves between pages is read once
  int64_t offset = 0;
  for (int page = 0; page < config_.max_pages; ++page) {
    StatusOr<commserv::JobListPage> got = Await<commserv::JobListPage>([&](auto done) {
      client.ListDrJobPage(config_.lookback, offset, config_.page_size, std::move(done));
    });
    if (!got.ok()) return got.status();
    for (JobSummary& s : got->jobs) seen.emplace(s.job_id, std::move(s));
    offset += static_cast<int64_t>(got->jobs.size());
    if (got->jobs.empty() || offset >= got->total) break;
    if (page + 1 == config_.max_pages) {
      spdlog::warn("dr history: commcell {}: read {} of {} DR jobs ({} pages); the rest is left",
                   commcell, offset, got->total, config_.max_pages);
    }
  }
  std::vector<JobSummary> list;
  list.reserve(seen.size());
  for (auto& [id, s] : seen) list.push_back(std::move(s));
  StatusOr<int> recorded = Record(commcell, list, /*count=*/false);
  if (!recorded.ok()) return recorded.status();
  spdlog::info("dr history: commcell {}: {} DR jobs in the last {} s, {} recorded as commserv",
               commcell, list.size(), config_.lookback.count(), *recorded);
  return Status::Ok();
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

Status DrHistory::RefreshOptions(const std::string& commcell, commserv::CommServClient& client) {
  const TimePoint now = clock_.Now();
  {
    std::lock_guard lock(mu_);
    const auto it = options_read_at_.find(commcell);
    if (it != options_read_at_.end() && now - it->second < config_.options_interval) {
      return Status::Ok();
    }
    options_read_at_[commcell] = now;
  }
  StatusOr<commserv::DrBackupOptions> got = Await<commserv::DrBackupOptions>(
      [&](auto done) { client.GetDrBackupOptions(std::move(done)); });
  if (!got.ok()) {
    if (got.status().reason() != commserv::kReasonDrOptionsUnavailable) return got.status();
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
  options_.Set(commcell, DrOptionsHolder::Entry{*got, now});
  metrics_.SetDrBackupOptions(commcell, got->retained_fulls, commserv::CopyLeavesHost(*got));
  return Status::Ok();
}

}  // namespace drgate::jobs
