#include "tools/commserv-sim/commserv_state.h"

#include <openssl/rand.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace commserv_sim {
namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;

constexpr int kMaxActiveFull = 2;
constexpr int kMaxActiveDifferential = 1;
constexpr size_t kTokenBytes = 48;
constexpr std::string_view kPhaseOneName = "Database Backup";
constexpr std::string_view kPhaseTwoName = "Copy to Destination";
constexpr std::string_view kWaitingReason =
    "Another DR backup job is in its Database Backup phase; this job starts after it.";
constexpr std::string_view kDefaultFailureReason =
    "Error Code: [19:857] Description: DR backup failed (simulated by commserv-sim).";

std::string Lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool LowerContains(std::string_view text, std::string_view needle) {
  return Lower(text).find(needle) != std::string::npos;
}

int64_t EpochSeconds(TimePoint time) {
  return std::chrono::duration_cast<std::chrono::seconds>(time.time_since_epoch()).count();
}

}  // namespace

bool IsFinishedStatus(std::string_view status) {
  const std::string lower = Lower(status);
  for (const std::string_view word : {"completed", "committed", "killed", "failed"}) {
    if (lower.find(word) != std::string::npos) return true;
  }
  return lower == "abnormal terminated cleanup";
}

CommservState::CommservState(StateOptions options, std::unique_ptr<Clock> clock)
    : options_(std::move(options)),
      clock_(std::move(clock)),
      next_job_id_(options_.first_job_id),
      next_task_id_(options_.first_task_id) {
  next_scheduled_ = clock_->Now() + options_.dr_schedule;
  for (const auto& token : options_.api_tokens) {
    tokens_[token] = Token{.last_used = clock_->Now(), .api = true};
  }
}

std::string CommservState::NewToken() const {
  unsigned char bytes[kTokenBytes];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) throw std::runtime_error("RAND_bytes failed");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string token = "QSDK ";
  for (const unsigned char byte : bytes) {
    token.push_back(kHex[byte >> 4]);
    token.push_back(kHex[byte & 0xF]);
  }
  return token;
}

std::optional<std::string> CommservState::Login(std::string_view username,
                                                std::string_view password) {
  if (username != options_.username || password != options_.password) return std::nullopt;
  const TimePoint now = clock_->Now();
  std::string token = NewToken();
  std::lock_guard lock(mu_);
  std::erase_if(tokens_, [&](const auto& entry) {
    return !entry.second.api &&
           now - entry.second.last_used >= options_.token_ttl + options_.renew_grace;
  });
  tokens_[token] = Token{now};
  return token;
}

std::optional<std::string> CommservState::RenewToken(std::string_view old_token) {
  const TimePoint now = clock_->Now();
  std::string token = NewToken();
  std::lock_guard lock(mu_);
  const auto it = tokens_.find(old_token);
  if (it == tokens_.end()) return std::nullopt;
  const bool renewable = now - it->second.last_used < options_.token_ttl + options_.renew_grace;
  tokens_.erase(it);
  if (!renewable) return std::nullopt;
  tokens_[token] = Token{now};
  return token;
}

void CommservState::Logout(std::string_view token) {
  std::lock_guard lock(mu_);
  if (const auto it = tokens_.find(token); it != tokens_.end()) tokens_.erase(it);
}

bool CommservState::Authenticate(std::string_view token) {
  const TimePoint now = clock_->Now();
  std::lock_guard lock(mu_);
  const auto it = tokens_.find(token);
  if (it == tokens_.end() || it->second.force_expired ||
      (!it->second.api && now - it->second.last_used >= options_.token_ttl)) {
    return false;
  }
  it->second.last_used = now;
  return true;
}

void CommservState::ExpireAllTokens() {
  std::lock_guard lock(mu_);
  for (auto& [token, state] : tokens_) state.force_expired = true;
}

void CommservState::ClearTokens() {
  std::lock_guard lock(mu_);
  tokens_.clear();
}

milliseconds CommservState::RunTime(const Job& job, TimePoint now) const {
  if (job.stage != Stage::kRunning) return job.run_before;
  return job.run_before + duration_cast<milliseconds>(now - job.run_since);
}

TimePoint CommservState::PhaseOneEnd(const Job& job) const {
  return job.run_since + (PhaseOneLength() - job.run_before);
}

int CommservState::Percent(const Job& job, TimePoint now) const {
  if (options_.job_duration.count() <= 0) return job.stage == Stage::kRunning ? 99 : 100;
  const auto percent = std::clamp<int64_t>(RunTime(job, now) * 100 / options_.job_duration, 0, 100);
  return static_cast<int>(job.stage == Stage::kRunning ? std::min<int64_t>(percent, 99) : percent);
}

JobSummary CommservState::Summarize(const Job& job, TimePoint now) const {
  JobSummary summary;
  summary.job_id = job.id;
  summary.level = job.request.level;
  summary.percent_complete = Percent(job, now);
  summary.job_start_time = EpochSeconds(job.submitted);
  summary.job_end_time = job.stage == Stage::kFinished ? EpochSeconds(job.end_time) : 0;
  summary.last_update_time = EpochSeconds(job.stage == Stage::kRunning ? now : job.last_update);
  summary.current_phase_name = RunTime(job, now) < PhaseOneLength() ? kPhaseOneName : kPhaseTwoName;
  switch (job.stage) {
    case Stage::kWaiting:
      summary.status = "Waiting";
      summary.pending_reason = kWaitingReason;
      break;
    case Stage::kRunning:
      summary.status = "Running";
      summary.pending_reason = job.pending_reason;
      break;
    case Stage::kHeld:
    case Stage::kFinished:
      summary.status = job.status;
      summary.pending_reason = job.pending_reason;
      break;
  }
  return summary;
}

void CommservState::StartWaitingJobs(TimePoint now) {
  // Waiting jobs start in id order. Each starts at the instant phase 1 became free, which may lie
  // before `now`: the state is only brought up to date when somebody looks.
  for (auto& [id, job] : jobs_) {
    if (job.stage != Stage::kWaiting) continue;
    TimePoint start = std::max(job.queued_since, phase_one_freed_at_);
    for (const auto& [other_id, other] : jobs_) {
      if (other.stage != Stage::kRunning) continue;
      const TimePoint phase_one_end = PhaseOneEnd(other);
      if (phase_one_end > now) return;  // Phase 1 is busy; everything behind keeps waiting.
      start = std::max(start, phase_one_end);
    }
    job.stage = Stage::kRunning;
    job.run_since = start;
    job.last_update = start;
  }
}

void CommservState::Advance(TimePoint now) {
  if (options_.dr_schedule.count() > 0) {
    // A schedule that fell far behind (a clock jump) catches up with its last 1000 runs only.
    const auto behind = (now - next_scheduled_) / options_.dr_schedule;
    if (behind > 1000) next_scheduled_ += options_.dr_schedule * (behind - 1000);
    while (next_scheduled_ <= now) {
      const TimePoint at = next_scheduled_;
      next_scheduled_ += options_.dr_schedule;
      AdvanceJobs(at);
      if (CreateJob(DrBackupRequest{.level = BackupLevel::kFull}, at).accepted) {
        ++scheduled_starts_;
      }
    }
  }
  AdvanceJobs(now);
}

void CommservState::AdvanceJobs(TimePoint now) {
  StartWaitingJobs(now);
  for (auto& [id, job] : jobs_) {
    if (job.stage != Stage::kRunning || RunTime(job, now) < options_.job_duration) continue;
    const TimePoint end = job.run_since + (options_.job_duration - job.run_before);
    job.run_before = options_.job_duration;
    Finish(job, job.outcome.value_or(options_.outcome), end);
  }
}

void CommservState::Freeze(Job& job, TimePoint now) {
  if (job.stage == Stage::kRunning && RunTime(job, now) < PhaseOneLength()) {
    phase_one_freed_at_ = std::max(phase_one_freed_at_, now);
  }
  job.run_before = RunTime(job, now);
  job.stage = Stage::kHeld;
}

void CommservState::Requeue(Job& job, TimePoint now) {
  job.stage = Stage::kWaiting;
  job.queued_since = now;
  job.last_update = now;
}

void CommservState::Finish(Job& job, std::string status, TimePoint at) {
  if (LowerContains(status, "completed") || LowerContains(status, "committed")) {
    job.run_before = std::max(job.run_before, options_.job_duration);
  }
  if (LowerContains(status, "failed") && job.pending_reason.empty()) {
    job.pending_reason = kDefaultFailureReason;
  }
  job.stage = Stage::kFinished;
  job.status = std::move(status);
  job.end_time = at;
  job.last_update = at;
}

CommservState::Job* CommservState::FindVisible(int64_t job_id, TimePoint now) {
  const auto it = jobs_.find(job_id);
  if (it == jobs_.end() || now < it->second.visible_at) return nullptr;
  return &it->second;
}

Submission CommservState::CreateJob(const DrBackupRequest& request, TimePoint at) {
  const int limit = request.level == BackupLevel::kFull ? kMaxActiveFull : kMaxActiveDifferential;
  int active = 0;
  int64_t first_active_id = 0;
  for (const auto& [id, job] : jobs_) {
    if (job.stage == Stage::kFinished || job.request.level != request.level) continue;
    if (active++ == 0) first_active_id = id;
  }
  if (active >= limit) return Submission{.running_job_id = first_active_id};

  Job job;
  job.id = next_job_id_++;
  job.task_id = next_task_id_++;
  job.request = request;
  job.submitted = at;
  job.visible_at = at + options_.visibility_delay;
  Requeue(job, at);
  const Submission submission{.accepted = true, .task_id = job.task_id, .job_id = job.id};
  jobs_.emplace(job.id, std::move(job));
  AdvanceJobs(at);
  return submission;
}

Submission CommservState::SubmitDrBackup(const DrBackupRequest& request) {
  const TimePoint now = clock_->Now();
  std::lock_guard lock(mu_);
  Advance(now);
  return CreateJob(request, now);
}

std::optional<JobSummary> CommservState::FindJob(int64_t job_id) {
  const TimePoint now = clock_->Now();
  std::lock_guard lock(mu_);
  Advance(now);
  const Job* job = FindVisible(job_id, now);
  if (job == nullptr) return std::nullopt;
  return Summarize(*job, now);
}

std::vector<JobSummary> CommservState::ListJobs(JobCategory category,
                                                std::chrono::seconds completed_lookup) {
  const TimePoint now = clock_->Now();
  std::lock_guard lock(mu_);
  Advance(now);
  std::vector<JobSummary> jobs;
  for (auto it = jobs_.rbegin(); it != jobs_.rend(); ++it) {
    const Job& job = it->second;
    if (now < job.visible_at) continue;
    const bool finished = job.stage == Stage::kFinished;
    if (finished && (category == JobCategory::kActive || job.end_time < now - completed_lookup)) {
      continue;
    }
    if (!finished && category == JobCategory::kFinished) continue;
    jobs.push_back(Summarize(job, now));
  }
  // Seeded history takes the next ids but may have started long ago: newest start first.
  std::stable_sort(jobs.begin(), jobs.end(), [](const JobSummary& a, const JobSummary& b) {
    return a.job_start_time > b.job_start_time;
  });
  return jobs;
}

ActionResult CommservState::ApplyAction(int64_t job_id, JobAction action) {
  const TimePoint now = clock_->Now();
  std::lock_guard lock(mu_);
  Advance(now);
  const auto it = jobs_.find(job_id);
  const std::string name = "Job [" + std::to_string(job_id) + "]";
  if (it == jobs_.end() || it->second.stage == Stage::kFinished) {
    return {1, name + " is not active"};
  }
  Job& job = it->second;
  switch (action) {
    case JobAction::kKill:
      Freeze(job, now);
      Finish(job, "Killed", now);
      break;
    case JobAction::kPause:
      if (job.stage == Stage::kHeld && job.status == "Suspended") {
        return {1, name + " is already suspended"};
      }
      Freeze(job, now);
      job.status = "Suspended";
      job.last_update = now;
      break;
    case JobAction::kResume:
      if (job.stage != Stage::kHeld) return {1, name + " is not suspended"};
      Requeue(job, now);
      break;
  }
  Advance(now);
  return {};
}

std::optional<std::string> CommservState::DelayReason(int64_t job_id) {
  const TimePoint now = clock_->Now();
  std::lock_guard lock(mu_);
  Advance(now);
  const Job* job = FindVisible(job_id, now);
  if (job == nullptr) return std::nullopt;
  return Summarize(*job, now).pending_reason;
}

std::vector<JobRecord> CommservState::AllJobs() {
  const TimePoint now = clock_->Now();
  std::lock_guard lock(mu_);
  Advance(now);
  std::vector<JobRecord> records;
  for (const auto& [id, job] : jobs_) {
    records.push_back(JobRecord{.summary = Summarize(job, now),
                                .task_id = job.task_id,
                                .compression = job.request.compression,
                                .visible = now >= job.visible_at});
  }
  return records;
}

bool CommservState::ForceStatus(int64_t job_id, std::string_view status,
                                const std::optional<std::string>& pending_reason) {
  const TimePoint now = clock_->Now();
  std::lock_guard lock(mu_);
  Advance(now);
  const auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return false;
  Job& job = it->second;
  if (pending_reason) job.pending_reason = *pending_reason;
  Freeze(job, now);
  const std::string lower = Lower(status);
  if (IsFinishedStatus(status)) {
    Finish(job, std::string(status), now);
  } else if (lower == "running") {
    job.stage = Stage::kRunning;
    job.run_since = now;
  } else if (lower == "waiting") {
    Requeue(job, now);
  } else {
    job.status = std::string(status);
  }
  job.last_update = now;
  Advance(now);
  return true;
}

bool CommservState::SetOutcome(int64_t job_id, std::string_view outcome) {
  std::lock_guard lock(mu_);
  const auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return false;
  it->second.outcome = std::string(outcome);
  return true;
}

void CommservState::ClearJobs() {
  std::lock_guard lock(mu_);
  jobs_.clear();
}

std::optional<int64_t> CommservState::SeedHistory(const HistoryEntry& entry, std::string* error) {
  const TimePoint now = clock_->Now();
  if (entry.end < entry.start) {
    *error = "end before start";
    return std::nullopt;
  }
  if (entry.end > now) {
    *error = "end lies in the future";
    return std::nullopt;
  }
  if (!IsFinishedStatus(entry.status)) {
    *error = "status does not finish a job: " + entry.status;
    return std::nullopt;
  }
  std::lock_guard lock(mu_);
  Advance(now);
  Job job;
  job.id = next_job_id_++;
  job.task_id = next_task_id_++;
  job.request.level = entry.level;
  job.submitted = entry.start;
  job.visible_at = entry.start;
  job.queued_since = entry.start;
  job.stage = Stage::kFinished;
  job.status = entry.status;
  job.end_time = entry.end;
  job.last_update = entry.end;
  job.pending_reason = entry.reason;
  const bool succeeded =
      LowerContains(entry.status, "completed") || LowerContains(entry.status, "committed");
  job.run_before = succeeded ? options_.job_duration : PhaseOneLength();
  const int64_t id = job.id;
  jobs_.emplace(id, std::move(job));
  return id;
}

int64_t CommservState::ScheduledStarts() {
  const TimePoint now = clock_->Now();
  std::lock_guard lock(mu_);
  Advance(now);
  return scheduled_starts_;
}

}  // namespace commserv_sim
