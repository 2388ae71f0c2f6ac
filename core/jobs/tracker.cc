#include "core/jobs/tracker.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <future>
#include <set>

#include "core/commserv/codec.h"

namespace drgate::jobs {
namespace {

using commserv::JobSummary;

// How much earlier than the oldest trigger in flight an upstream job must have started to be
// adopted for an older intent: 1 s because the CommServe's start times are whole seconds, and the
// rest for a CommServe clock a little ahead of drgate's.
constexpr std::chrono::seconds kInFlightMargin{5};

TimePoint FromEpochSeconds(int64_t seconds) {
  return TimePoint(std::chrono::seconds(seconds));
}

// Waits for an asynchronous client call. Only the tracker's own thread waits like this.
template <typename T, typename Start>
StatusOr<T> Await(Start start) {
  std::promise<StatusOr<T>> promise;
  auto future = promise.get_future();
  start([&promise](StatusOr<T> result) { promise.set_value(std::move(result)); });
  return future.get();
}

bool LevelMatches(const std::string& level, BackupType type) {
  if (level.empty()) return true;  // the CommServe did not say: any DR job may be ours
  std::string lower;
  for (char c : level) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower.find(type == BackupType::kFull ? "full" : "diff") != std::string::npos;
}

}  // namespace

Tracker::Tracker(std::vector<CommCell> commcells, JobStore& store, Metrics& metrics,
                 const Clock& clock, WatchHub& hub, TrackerOptions options,
                 const LeaderElection* leader)
    : commcells_(std::make_shared<const std::vector<CommCell>>(std::move(commcells))),
      store_(store),
      metrics_(metrics),
      clock_(clock),
      hub_(hub),
      options_(options),
      started_at_(clock.Now()),
      leader_(leader) {}

Tracker::~Tracker() {
  Stop();
}

void Tracker::Start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { Loop(); });
}

void Tracker::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Tracker::SetCommCells(std::vector<CommCell> commcells) {
  auto snapshot = std::make_shared<const std::vector<CommCell>>(std::move(commcells));
  {
    std::lock_guard lock(mu_);
    commcells_ = std::move(snapshot);
  }
  Poke();
}

void Tracker::Poke() {
  {
    std::lock_guard lock(mu_);
    poked_ = true;
  }
  cv_.notify_all();
}

int64_t Tracker::upstream_requests() const {
  std::lock_guard lock(mu_);
  return upstream_requests_;
}

void Tracker::Loop() {
  bool force = true;  // the first round settles what an earlier process left open
  for (;;) {
    RunRound(force);
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, options_.poll_interval, [this] { return stopping_ || poked_; });
    if (stopping_) return;
    force = poked_;
    poked_ = false;
  }
}

void Tracker::RunRound(bool force) {
  std::lock_guard round(round_mu_);
  // Replicas sharing a registry: only the leader follows jobs and settles intents (a new leader
  // starts with a forced round: its election pokes the tracker). The others still probe idle
  // CommCells, so that their readiness and drgate_commserv_up tell the truth.
  const bool leading = leader_ == nullptr || leader_->IsLeader();
  StatusOr<std::vector<Job>> active = std::vector<Job>();
  StatusOr<std::vector<TriggerIntent>> intents = std::vector<TriggerIntent>();
  if (leading) {
    active = store_.ListActiveJobs();
    intents = store_.ListOpenIntents();
  }
  if (!active.ok() || !intents.ok()) {
    spdlog::warn("tracker: cannot read the registry: {}",
                 (!active.ok() ? active.status() : intents.status()).ToString());
    return;
  }
  const TimePoint now = clock_.Now();
  std::shared_ptr<const std::vector<CommCell>> cells;
  {
    std::lock_guard lock(mu_);
    cells = commcells_;
  }
  for (const CommCell& cell : *cells) {
    std::vector<Job> jobs;
    for (const Job& j : *active) {
      if (j.commcell == cell.name && j.state != JobState::kUnknown) jobs.push_back(j);
    }
    std::vector<TriggerIntent> open;
    for (const TriggerIntent& i : *intents) {
      if (i.commcell == cell.name) open.push_back(i);
    }
    CellState& state = cells_[cell.name];
    if (jobs.empty() && open.empty()) {
      if (leading) metrics_.SetActiveJobs(cell.name, 0);
      if (options_.probe_interval.count() > 0 &&
          now - state.last_probe >= options_.probe_interval) {
        // Nothing to follow: one cheap request now and then keeps reachability current.
        state.last_probe = now;
        {
          std::lock_guard lock(mu_);
          ++upstream_requests_;
        }
        (void)Await<std::vector<JobSummary>>(
            [&](auto done) { cell.client->ListDrJobs(std::chrono::hours(1), std::move(done)); });
      }
      continue;
    }
    const bool due = now >= state.next_poll || (force && state.failures == 0);
    if (!due) continue;
    PollCell(cell, jobs, open);
  }
  // Pruning runs hourly, or every tenth of the retention when that is shorter (a retention of
  // minutes keeps the registry, and the memory its caches take, at a steady size).
  const auto prune_every = std::clamp<std::chrono::milliseconds>(
      options_.retention / 10, std::chrono::seconds(1), std::chrono::hours(1));
  if (leading && options_.retention.count() > 0 && now - last_prune_ >= prune_every) {
    last_prune_ = now;
    Prune();
  }
}

void Tracker::PollCell(const CommCell& cell, const std::vector<Job>& active,
                       const std::vector<TriggerIntent>& intents) {
  const TimePoint now = clock_.Now();
  CellState& state = cells_[cell.name];

  // Look back far enough to see every job and intent we follow, and at least an hour.
  TimePoint oldest = now;
  for (const Job& j : active) oldest = std::min(oldest, j.create_time);
  for (const TriggerIntent& i : intents) oldest = std::min(oldest, i.create_time);
  const auto lookback = std::max<std::chrono::seconds>(
      std::chrono::hours(1),
      std::chrono::duration_cast<std::chrono::seconds>(now - oldest) + std::chrono::hours(1));

  {
    std::lock_guard lock(mu_);
    ++upstream_requests_;
  }
  auto list = Await<std::vector<JobSummary>>(
      [&](auto done) { cell.client->ListDrJobs(lookback, std::move(done)); });
  if (!list.ok()) {
    ++state.failures;
    const auto backoff = std::min<std::chrono::milliseconds>(
        options_.max_backoff, options_.poll_interval * (1LL << std::min(state.failures, 10)));
    state.next_poll = now + backoff;
    spdlog::warn("tracker: commcell {}: cannot list DR jobs ({}); next try in {} ms", cell.name,
                 list.status().ToString(), backoff.count());
    return;
  }
  state.failures = 0;
  state.next_poll = now + options_.poll_interval;

  std::map<std::string, const JobSummary*> by_id;
  for (const JobSummary& s : *list) by_id[s.job_id] = &s;

  int64_t still_active = 0;
  for (const Job& job : active) {
    StatusOr<Job> applied = job;
    if (auto it = by_id.find(job.job_id); it != by_id.end()) {
      applied = Apply(job, *it->second);
    } else {
      // Not in the list (yet): ask for this one job.
      {
        std::lock_guard lock(mu_);
        ++upstream_requests_;
      }
      auto single = Await<std::optional<JobSummary>>(
          [&](auto done) { cell.client->GetJob(job.job_id, std::move(done)); });
      if (single.ok() && single->has_value()) {
        applied = Apply(job, **single);
      } else if (single.ok() && now - job.create_time > options_.unseen_grace) {
        Job unknown = job;
        unknown.state = JobState::kUnknown;
        unknown.failure_reason =
            "the CommServe has not shown job " + job.job_id + " for " +
            std::to_string(
                std::chrono::duration_cast<std::chrono::minutes>(now - job.create_time).count()) +
            " minutes";
        unknown.update_time = now;
        if (Status s = store_.PutJobs({unknown}); s.ok()) {
          hub_.Publish(unknown);
          applied = unknown;
        }
      }
      // A job that is merely not visible yet is retried next round, never failed.
    }
    if (applied.ok() && !IsTerminal(applied->state) && applied->state != JobState::kUnknown) {
      ++still_active;
    }
  }
  metrics_.SetActiveJobs(cell.name, still_active);
  Reconcile(cell, *list);
}

StatusOr<Job> Tracker::Apply(Job job, const JobSummary& summary) {
  std::lock_guard lock(apply_mu_);
  // Merge onto the latest recorded version: CancelJob and the tracker may both apply.
  if (auto current = store_.GetJob(job.commcell, job.job_id); current.ok()) job = *current;
  if (IsTerminal(job.state)) return job;  // a finished job does not change any more

  Job updated = job;
  if (auto mapped = commserv::MapJobStatus(summary.status)) updated.state = *mapped;
  updated.commserv_status = summary.status;
  updated.percent_complete = summary.percent_complete;
  if (summary.start_time > 0) updated.start_time = FromEpochSeconds(summary.start_time);
  const TimePoint now = clock_.Now();
  if (IsTerminal(updated.state)) {
    updated.end_time = summary.end_time > 0 ? FromEpochSeconds(summary.end_time) : now;
    if (updated.state == JobState::kFailed || updated.state == JobState::kKilled) {
      updated.failure_reason = !summary.pending_reason.empty()
                                   ? summary.pending_reason
                                   : "the CommServe reports \"" + summary.status + "\"";
    }
  }
  const bool changed =
      updated.state != job.state || updated.percent_complete != job.percent_complete ||
      updated.commserv_status != job.commserv_status || updated.start_time != job.start_time ||
      updated.end_time != job.end_time || updated.failure_reason != job.failure_reason;
  if (!changed) return job;
  updated.update_time = now;
  if (Status s = store_.PutJobs({updated}); !s.ok()) {
    spdlog::warn("tracker: cannot record job {} on {}: {}", job.job_id, job.commcell, s.ToString());
    return s;
  }
  hub_.Publish(updated);
  if (IsTerminal(updated.state)) {
    metrics_.RecordJobFinished(updated);
    spdlog::info("job {} on {} finished: {} ({})", updated.job_id, updated.commcell,
                 JobStateName(updated.state), updated.commserv_status);
  }
  return updated;
}

void Tracker::Reconcile(const CommCell& cell, const std::vector<JobSummary>& upstream) {
  const TimePoint now = clock_.Now();
  // The open intents as of now, read after the job list arrived: a trigger whose POST created a
  // job in `upstream` wrote its intent before that POST, so it is either still open here or has
  // already recorded its job (which the "known" check below then sees).
  auto all_open = store_.ListOpenIntents();
  if (!all_open.ok()) {
    spdlog::warn("tracker: commcell {}: cannot read trigger intents: {}", cell.name,
                 all_open.status().ToString());
    return;
  }
  std::vector<TriggerIntent> sorted;
  for (const TriggerIntent& i : *all_open) {
    if (i.commcell == cell.name) sorted.push_back(i);
  }
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& a, const auto& b) { return a.create_time < b.create_time; });
  // Intents younger than the grace belong to triggers still in flight: this process's own, or
  // with a shared registry (PostgreSQL) any replica's, also one older than this process. A job
  // that started after the oldest of them (of the same type) may be one of their answers, about
  // to be recorded: it must not be handed to an older intent (that would give one job to two
  // request ids). Such jobs wait for a later round, when those triggers have recorded theirs.
  std::map<BackupType, TimePoint> in_flight_since;
  auto in_flight = [&](const TriggerIntent& i) {
    return (options_.shared_registry || i.create_time >= started_at_) &&
           now - i.create_time < options_.intent_grace;
  };
  for (const TriggerIntent& i : sorted) {
    if (in_flight(i) && !in_flight_since.count(i.backup_type)) {
      in_flight_since[i.backup_type] = i.create_time;
    }
  }
  std::set<std::string> taken;
  for (const TriggerIntent& intent : sorted) {
    if (in_flight(intent)) continue;
    const auto floor = in_flight_since.find(intent.backup_type);

    const JobSummary* match = nullptr;
    bool deferred = false;  // a candidate waits for the triggers in flight: do not give up yet
    for (const JobSummary& s : upstream) {
      if (taken.count(s.job_id) || !LevelMatches(s.backup_level, intent.backup_type)) continue;
      // The CommServe's clock may be a little off from ours: allow two minutes of skew.
      if (s.start_time > 0 &&
          FromEpochSeconds(s.start_time) < intent.create_time - std::chrono::minutes(2)) {
        continue;
      }
      // Start times are whole seconds (rounded down), hence the margin: a job of a trigger in
      // flight started at or after `floor`, so its start time reads later than floor - 1 s.
      if (floor != in_flight_since.end() &&
          (s.start_time <= 0 || FromEpochSeconds(s.start_time) + kInFlightMargin > floor->second)) {
        auto known = store_.GetJob(cell.name, s.job_id);
        if (!known.ok() && known.status().code() == StatusCode::kNotFound) deferred = true;
        continue;
      }
      auto known = store_.GetJob(cell.name, s.job_id);
      if (known.ok() || known.status().code() != StatusCode::kNotFound) continue;
      if (match == nullptr || s.start_time < match->start_time) match = &s;
    }
    Job job;
    job.commcell = cell.name;
    job.backup_type = intent.backup_type;
    job.compression = intent.compression;
    job.request_id = intent.request_id;
    job.requested_by = intent.requested_by;
    job.create_time = intent.create_time;
    job.update_time = now;
    if (match != nullptr) {
      taken.insert(match->job_id);
      job.job_id = match->job_id;
      job.state = JobState::kSubmitted;
      if (Status s = store_.PutJobs({job}, intent.id); !s.ok()) {
        spdlog::warn("tracker: cannot adopt job {} for intent {}: {}", job.job_id, intent.id,
                     s.ToString());
        continue;
      }
      spdlog::info(
          "tracker: adopted job {} on {} for a trigger whose answer was lost "
          "(request id \"{}\")",
          job.job_id, cell.name, intent.request_id);
      (void)Apply(job, *match);
    } else if (!deferred && now - intent.create_time >= options_.intent_give_up) {
      job.job_id = "unknown-" + std::to_string(intent.id);
      job.state = JobState::kUnknown;
      job.failure_reason =
          "drgate lost the CommServe's answer to this trigger (a crash or a timeout after "
          "sending) and found no matching DR job on the CommServe";
      if (Status s = store_.PutJobs({job}, intent.id); !s.ok()) {
        spdlog::warn("tracker: cannot settle intent {}: {}", intent.id, s.ToString());
        continue;
      }
      spdlog::warn("tracker: trigger on {} (request id \"{}\") settled as UNKNOWN: {}", cell.name,
                   intent.request_id, job.failure_reason);
    }
  }
}

void Tracker::Prune() {
  auto pruned = store_.PruneTerminalJobs(clock_.Now() - options_.retention, 10000);
  if (!pruned.ok()) {
    spdlog::warn("tracker: pruning old jobs failed: {}", pruned.status().ToString());
  } else if (*pruned > 0) {
    spdlog::info("tracker: pruned {} finished job(s) older than the retention", *pruned);
  }
}

}  // namespace drgate::jobs
