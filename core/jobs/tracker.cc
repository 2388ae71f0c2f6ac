#include "core/jobs/tracker.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "core/commserv/codec.h"
#include "core/jobs/intent_match.h"

namespace drgate::jobs {
namespace {

using commserv::JobSummary;

// How much earlier than the oldest trigger in flight an upstream job must have started to be
// adopted for an older intent: 1 s because the CommServe's start times are whole seconds, and the
// rest for a CommServe clock a little ahead of drgate's.
constexpr std::chrono::seconds kInFlightMargin{5};

}  // namespace

Tracker::Tracker(std::vector<CommCell> commcells, JobStore& store, Metrics& metrics,
                 const Clock& clock, WatchHub& hub, TrackerOptions options,
                 const LeaderElection* leader, DrHistory* history)
    : store_(store),
      metrics_(metrics),
      clock_(clock),
      hub_(hub),
      options_(options),
      started_at_(clock.Now()),
      leader_(leader),
      history_(history),
      work_(std::make_unique<KeyedThreadPool>(
          KeyedPoolOptions{kWorkThreads, /*per_key=*/1, /*max_queued=*/SIZE_MAX})) {
  shared_->tracker = this;
  shared_->work = work_.get();
  for (CommCell& c : commcells) {
    CellState& state = cells_[c.name];
    state.generation = next_generation_++;
    state.cell = std::move(c);
  }
}

Tracker::~Tracker() {
  Stop();
}

void Tracker::Start() {
  std::lock_guard lock(shared_->mu);
  if (thread_.joinable() || shared_->closed) return;
  thread_ = std::thread([this] { Loop(); });
}

void Tracker::Stop() {
  {
    std::lock_guard lock(shared_->mu);
    shared_->closed = true;  // tasks still queued in work_ are dropped when their turn comes
  }
  shared_->cv.notify_all();
  if (thread_.joinable()) thread_.join();
  std::map<uint64_t, std::shared_ptr<Poll>> abandoned;
  {
    // RunRound callers doing tracker work finish it; they start nothing new once closed.
    std::unique_lock lock(shared_->mu);
    shared_->cv.wait(lock, [this] { return busy_ == 0; });
    abandoned.swap(polls_);
    queued_.clear();
  }
  // `abandoned` (polls that hold their CommCell's client) goes here, on this thread.
}

void Tracker::SetCommCells(std::vector<CommCell> commcells) {
  {
    std::lock_guard lock(shared_->mu);
    std::map<std::string, CellState> next;
    for (CommCell& c : commcells) {
      auto old = cells_.find(c.name);
      if (old != cells_.end() && old->second.cell.client == c.client) {
        // Unchanged client: the schedule, the back-off and a poll under way carry on.
        CellState state = std::move(old->second);
        state.cell = std::move(c);
        next[state.cell.name] = std::move(state);
      } else {
        CellState& state = next[c.name];
        state.generation = next_generation_++;
        state.cell = std::move(c);
      }
    }
    if (history_ != nullptr) {
      // A CommCell removed, or reached through a new client: its options are asked for afresh.
      for (const auto& [name, state] : cells_) {
        auto kept = next.find(name);
        if (kept == next.end() || kept->second.generation != state.generation) {
          history_->Forget(name);
        }
      }
    }
    cells_ = std::move(next);
    poked_ = true;
  }
  shared_->cv.notify_all();
}

void Tracker::Poke() {
  {
    std::lock_guard lock(shared_->mu);
    poked_ = true;
  }
  shared_->cv.notify_all();
}

int64_t Tracker::upstream_requests() const {
  return upstream_requests_.load();
}

int Tracker::polls_under_way() const {
  std::lock_guard lock(shared_->mu);
  return in_flight_;
}

TrackerOptions Tracker::Options() const {
  std::lock_guard lock(options_mu_);
  return options_;
}

void Tracker::SetTracking(const TrackingConfig& tracking) {
  {
    std::lock_guard lock(options_mu_);
    const bool shared = options_.shared_registry;
    static_cast<TrackingConfig&>(options_) = tracking;
    options_.shared_registry = shared;
  }
  if (history_ != nullptr) history_->SetOptionsInterval(tracking.options_interval);
  {
    std::lock_guard lock(shared_->mu);
    // A shorter interval applies now, not once the longer one has run out; a longer one from
    // each CommCell's next poll on. A failing CommCell keeps its back-off.
    const Mono soon = clock_.Monotonic() + tracking.poll_interval;
    for (auto& [name, state] : cells_) {
      state.next_check = std::min(state.next_check, soon);
      if (state.failures == 0) state.next_poll = std::min(state.next_poll, soon);
    }
  }
  shared_->cv.notify_all();
}

void Tracker::Deliver(const std::shared_ptr<Shared>& shared, const std::string& commcell,
                      Task task) {
  std::lock_guard lock(shared->mu);
  if (shared->closed) return;  // the tracker stopped: `task` is dropped unrun
  // Under shared->mu: Stop() closes under it too, so work_ is still there. The CommCell's tasks
  // run one at a time, in order (its strand); other CommCells' tasks run beside them.
  shared->work->Post(commcell, [shared, task = std::move(task)]() mutable {
    Tracker* tracker = nullptr;
    {
      std::lock_guard lock(shared->mu);
      if (shared->closed) return;
      tracker = shared->tracker;
      ++tracker->busy_;
    }
    task(*tracker);
    task = nullptr;
    {
      std::lock_guard lock(shared->mu);
      --tracker->busy_;
    }
    shared->cv.notify_all();  // Stop, RunRound
  });
}

void Tracker::Loop() {
  Tick(/*force=*/true, 0);  // the first round settles what an earlier process left open
  std::unique_lock lock(shared_->mu);
  while (!shared_->closed) {
    if (poked_) {
      poked_ = false;
      ++busy_;
      lock.unlock();
      Tick(/*force=*/true, 0);
      lock.lock();
      --busy_;
      continue;
    }
    // Sleep until the next CommCell is due (at the latest one poll interval: idle CommCells are
    // looked at that often, and pruning is checked), or a poke. Answers are handled on work_.
    const Mono now = clock_.Monotonic();
    Mono wake = now + Options().poll_interval;
    for (const auto& [name, state] : cells_) {
      if (state.phase == Phase::kWaiting) wake = std::min(wake, state.next_check);
    }
    // A poll waiting for a slot starts when the oldest one under way becomes overdue.
    if (auto overdue = NextOverdueLocked()) wake = std::min(wake, *overdue);
    if (wake > now) {
      shared_->cv.wait_for(lock, wake - now);
      if (poked_ || shared_->closed) continue;
    }
    ++busy_;
    lock.unlock();
    Tick(/*force=*/false, 0);
    lock.lock();
    --busy_;
  }
  shared_->cv.notify_all();
}

void Tracker::RunRound(bool force) {
  uint64_t round = 0;
  {
    std::lock_guard lock(shared_->mu);
    if (shared_->closed) return;
    round = next_id_++;
    rounds_[round] = 0;
    ++busy_;
  }
  Tick(force, round);
  std::unique_lock lock(shared_->mu);
  --busy_;
  // Pokes are left to the tracker's thread: this round waits for its own polls only.
  shared_->cv.wait(lock, [&] { return shared_->closed || rounds_[round] == 0; });
  rounds_.erase(round);
  if (busy_ == 0) shared_->cv.notify_all();
}

void Tracker::Tick(bool force, uint64_t round) {
  // Replicas sharing a registry: only the replica that tracks a CommCell (the leader, or the
  // holder of the CommCell's lease) follows its jobs and settles its intents (a replica that
  // takes CommCells over starts with a forced round: its election pokes the tracker). The others
  // still probe idle CommCells, so that their readiness and drgate_commserv_up tell the truth.
  const bool leading = Leading();
  const Mono now = clock_.Monotonic();
  const TimePoint wall = clock_.Now();
  // Pruning runs hourly, or every tenth of the retention when that is shorter (a retention of
  // minutes keeps the registry, and the memory its caches take, at a steady size).
  const auto prune_every = std::clamp<std::chrono::milliseconds>(
      Options().retention / 10, std::chrono::seconds(1), std::chrono::hours(1));
  std::vector<std::string> due;
  bool prune = false;
  std::vector<std::shared_ptr<Poll>> unblocked;  // queued polls whose slot an overdue one freed
  {
    std::lock_guard lock(shared_->mu);
    if (shared_->closed) return;
    unblocked = TakeStartableLocked();
    for (auto& [name, state] : cells_) {
      if (force) state.forced = true;
      if (state.phase == Phase::kWaiting && (force || state.next_check <= now)) {
        due.push_back(name);
      }
    }
    if (leading && Options().retention.count() > 0 && now - last_prune_ >= prune_every) {
      last_prune_ = now;
      prune = true;
    }
  }
  for (const auto& poll : unblocked) Send(poll);
  if (due.empty() && !prune) return;

  std::set<std::string> tracked;
  for (const std::string& name : due) {
    if (Tracks(name)) tracked.insert(name);
  }
  StatusOr<std::vector<Job>> active = std::vector<Job>();
  StatusOr<std::vector<TriggerIntent>> intents = std::vector<TriggerIntent>();
  if (!tracked.empty()) {
    active = store_.ListActiveJobs();
    intents = store_.ListOpenIntents();
  }
  if (!active.ok() || !intents.ok()) {
    spdlog::warn("tracker: cannot read the registry: {}",
                 (!active.ok() ? active.status() : intents.status()).ToString());
    std::lock_guard lock(shared_->mu);
    for (const std::string& name : due) {
      auto it = cells_.find(name);
      if (it != cells_.end() && it->second.phase == Phase::kWaiting) {
        it->second.next_check = now + Options().poll_interval;
      }
    }
    return;
  }

  std::vector<std::string> idle;
  std::vector<std::shared_ptr<Poll>> start;
  std::vector<std::pair<CommCell, uint64_t>> options_due;
  {
    std::lock_guard lock(shared_->mu);
    for (const std::string& name : due) {
      auto it = cells_.find(name);
      if (it == cells_.end() || it->second.phase != Phase::kWaiting) continue;
      CellState& state = it->second;
      // The tracking replica observes the CommServe's own DR jobs: a history read on first
      // contact, and an idle CommCell's job list every history_interval.
      const bool tracks = tracked.count(name) > 0;
      const bool observe = tracks && history_ != nullptr;
      if (history_ != nullptr && !state.options_in_flight && history_->OptionsDue(name)) {
        state.options_in_flight = true;
        if (round != 0) ++rounds_[round];
        options_due.emplace_back(state.cell, state.generation);
      }
      auto poll = std::make_shared<Poll>();
      for (const Job& j : *active) {
        if (tracks && j.commcell == name && j.state != JobState::kUnknown) poll->jobs.push_back(j);
      }
      // Look back far enough to see every job and intent we follow, and at least an hour.
      TimePoint oldest = wall;
      bool intents_open = false;
      for (const TriggerIntent& i : *intents) {
        if (!tracks || i.commcell != name) continue;
        intents_open = true;
        oldest = std::min(oldest, i.create_time);
      }
      for (const Job& j : poll->jobs) oldest = std::min(oldest, j.create_time);
      const bool forced = state.forced;
      state.forced = false;
      state.next_check = now + Options().poll_interval;
      poll->history = observe && !state.history_read;
      const bool history_due = observe && now - state.last_list >= Options().history_interval;
      if (poll->jobs.empty() && !intents_open && !poll->history && !history_due) {
        if (tracks) idle.push_back(name);
        // Nothing to follow: one cheap request now and then keeps reachability current.
        if (Options().probe_interval.count() <= 0 ||
            now - state.last_probe < Options().probe_interval) {
          continue;
        }
        state.last_probe = now;
        poll->probe = true;
      } else if (now < state.next_poll && !(forced && state.failures == 0)) {
        state.next_check = state.next_poll;  // inside its poll interval or back-off
        continue;
      }
      // Look back far enough to see every job and intent we follow, every DR job since the last
      // list (history_due), and at least an hour; the history read goes back history_lookback.
      auto span = std::chrono::duration_cast<std::chrono::seconds>(wall - oldest);
      if (observe && state.history_read) {
        span =
            std::max(span, std::chrono::duration_cast<std::chrono::seconds>(now - state.last_list));
      }
      poll->lookback =
          std::max<std::chrono::seconds>(std::chrono::hours(1), span + std::chrono::hours(1));
      if (poll->history) {
        poll->lookback =
            std::max(poll->lookback,
                     std::chrono::duration_cast<std::chrono::seconds>(Options().history_lookback));
      }
      poll->id = next_id_++;
      poll->cell = state.cell;
      poll->generation = state.generation;
      poll->round = round;
      state.phase = Phase::kQueued;
      if (round != 0) ++rounds_[round];
      polls_[poll->id] = poll;
      queued_.push_back(std::move(poll));
    }
    start = TakeStartableLocked();
  }
  for (const std::string& name : idle) metrics_.SetActiveJobs(name, 0);
  for (const auto& poll : start) Send(poll);
  for (const auto& [cell, generation] : options_due) SendOptions(cell, generation, round);
  if (prune) Prune();
}

int Tracker::TimelyPollsLocked(Mono now) const {
  // A poll under way for a whole poll interval (a CommServe that hangs until its request
  // timeout) no longer counts against the bound: it cannot keep the others waiting.
  const auto overdue = Options().poll_interval;
  int timely = 0;
  for (const auto& [id, poll] : polls_) {
    if (poll->sent && now - poll->started < overdue) ++timely;
  }
  return timely;
}

std::optional<Tracker::Mono> Tracker::NextOverdueLocked() const {
  std::optional<Mono> next;
  if (queued_.empty()) return next;
  const auto overdue = Options().poll_interval;
  const Mono now = clock_.Monotonic();
  for (const auto& [id, poll] : polls_) {
    // Only polls that become overdue later free a slot then (one overdue already counts for
    // nothing): waking for a past time would spin while timely polls fill the bound.
    const Mono at = poll->started + overdue;
    if (poll->sent && at > now && (!next || at < *next)) next = at;
  }
  return next;
}

std::vector<std::shared_ptr<Tracker::Poll>> Tracker::TakeStartableLocked() {
  std::vector<std::shared_ptr<Poll>> start;
  const int bound = std::max(1, Options().max_concurrent_polls);
  const Mono now = clock_.Monotonic();
  int timely = queued_.empty() ? 0 : TimelyPollsLocked(now);
  while (timely < bound && !queued_.empty()) {
    std::shared_ptr<Poll> poll = std::move(queued_.front());
    queued_.pop_front();
    auto it = cells_.find(poll->cell.name);
    ++in_flight_;
    if (it == cells_.end() || it->second.generation != poll->generation) {
      FinishLocked(poll, now);  // removed or replaced by a reload while it waited
      continue;
    }
    it->second.phase = Phase::kInFlight;
    poll->started = now;
    poll->sent = true;
    ++timely;
    start.push_back(std::move(poll));
  }
  return start;
}

void Tracker::Send(const std::shared_ptr<Poll>& poll) {
  // Nothing of `poll` is touched once the request is sent: its answer may be handled at once,
  // on another thread.
  const auto client = poll->cell.client;
  const auto lookback = poll->probe ? std::chrono::seconds(std::chrono::hours(1)) : poll->lookback;
  const uint64_t id = poll->id;
  ++upstream_requests_;
  if (poll->history) {
    history_->FetchHistory(
        poll->cell.name, client, lookback,
        [shared = shared_, id, name = poll->cell.name](StatusOr<std::vector<JobSummary>> list) {
          Deliver(shared, name, [id, list = std::move(list)](Tracker& tracker) mutable {
            if (auto poll = tracker.FindPoll(id)) tracker.HistoryArrived(poll, std::move(list));
          });
        });
    return;
  }
  client->ListDrJobs(lookback, [shared = shared_, id,
                                name = poll->cell.name](StatusOr<std::vector<JobSummary>> list) {
    Deliver(shared, name, [id, list = std::move(list)](Tracker& tracker) mutable {
      if (auto poll = tracker.FindPoll(id)) tracker.JobListArrived(poll, std::move(list));
    });
  });
}

void Tracker::SendOptions(const CommCell& cell, uint64_t generation, uint64_t round) {
  ++upstream_requests_;
  cell.client->GetDrBackupOptions([shared = shared_, name = cell.name, generation,
                                   round](StatusOr<commserv::DrBackupOptions> got) {
    Deliver(shared, name,
            [name, generation, round, got = std::move(got)](Tracker& tracker) mutable {
              tracker.OptionsArrived(name, generation, round, std::move(got));
            });
  });
}

void Tracker::OptionsArrived(const std::string& commcell, uint64_t generation, uint64_t round,
                             StatusOr<commserv::DrBackupOptions> options) {
  bool current = false;
  {
    std::lock_guard lock(shared_->mu);
    auto it = cells_.find(commcell);
    if (it != cells_.end() && it->second.generation == generation) {
      it->second.options_in_flight = false;
      current = true;
    }
  }
  // The answer of a CommCell since removed or replaced says nothing about the current one.
  if (current) {
    if (Status s = history_->ApplyOptions(commcell, std::move(options)); !s.ok()) {
      spdlog::warn(
          "tracker: commcell {}: cannot read the DR backup options ({}); asked again in {} s",
          commcell, s.ToString(),
          std::chrono::duration_cast<std::chrono::seconds>(history_->options_interval()).count());
    }
  }
  if (round != 0) {
    std::lock_guard lock(shared_->mu);
    if (auto r = rounds_.find(round); r != rounds_.end()) --r->second;
  }
  shared_->cv.notify_all();
}

void Tracker::HistoryArrived(const std::shared_ptr<Poll>& poll,
                             StatusOr<std::vector<JobSummary>> list) {
  if (list.ok()) {
    if (StatusOr<int> recorded = history_->RecordHistory(poll->cell.name, *list); recorded.ok()) {
      std::lock_guard lock(shared_->mu);
      auto it = cells_.find(poll->cell.name);
      if (it != cells_.end() && it->second.generation == poll->generation) {
        it->second.history_read = true;
      }
    } else {
      spdlog::warn("tracker: commcell {}: cannot record the DR history ({}); read again next poll",
                   poll->cell.name, recorded.status().ToString());
    }
  }
  JobListArrived(poll, std::move(list));
}

std::shared_ptr<Tracker::Poll> Tracker::FindPoll(uint64_t id) {
  std::lock_guard lock(shared_->mu);
  auto it = polls_.find(id);
  return it == polls_.end() ? nullptr : it->second;
}

void Tracker::JobListArrived(const std::shared_ptr<Poll>& poll,
                             StatusOr<std::vector<JobSummary>> list) {
  const CommCell& cell = poll->cell;
  if (poll->probe) {
    // Reachability is what the client records of the request itself; the list is not needed.
    Finish(poll);
    return;
  }
  if (!list.ok()) {
    std::chrono::milliseconds backoff{0};
    {
      std::lock_guard lock(shared_->mu);
      auto it = cells_.find(cell.name);
      if (it != cells_.end() && it->second.generation == poll->generation) {
        CellState& state = it->second;
        ++state.failures;
        backoff = std::min<std::chrono::milliseconds>(
            Options().max_backoff, Options().poll_interval * (1LL << std::min(state.failures, 10)));
        state.next_poll = poll->started + backoff;
      }
    }
    spdlog::warn("tracker: commcell {}: cannot list DR jobs ({}); next try in {} ms", cell.name,
                 list.status().ToString(), backoff.count());
    Finish(poll);
    return;
  }
  {
    std::lock_guard lock(shared_->mu);
    auto it = cells_.find(cell.name);
    if (it != cells_.end() && it->second.generation == poll->generation) {
      it->second.failures = 0;
      it->second.next_poll = poll->started + Options().poll_interval;
      it->second.last_list = poll->started;
    }
  }
  poll->list = std::move(*list);
  // The CommServe's own DR jobs in the list (the history read recorded its own already).
  if (history_ != nullptr && !poll->history && Tracks(cell.name)) {
    if (StatusOr<int> observed = history_->Observe(cell.name, poll->list); !observed.ok()) {
      spdlog::warn("tracker: commcell {}: cannot record DR jobs drgate did not start: {}",
                   cell.name, observed.status().ToString());
    }
  }
  std::map<std::string, const JobSummary*> by_id;
  for (const JobSummary& s : poll->list) by_id[s.job_id] = &s;
  for (const Job& job : poll->jobs) {
    if (auto it = by_id.find(job.job_id); it != by_id.end()) {
      StatusOr<Job> applied = Apply(job, *it->second);
      if (!applied.ok() || (!IsTerminal(applied->state) && applied->state != JobState::kUnknown)) {
        ++poll->still_active;
      }
    } else {
      poll->unlisted.push_back(job);  // not in the list (yet): asked for on its own
    }
  }
  NextUnlisted(poll);
}

void Tracker::NextUnlisted(const std::shared_ptr<Poll>& poll) {
  if (poll->next_unlisted >= poll->unlisted.size()) {
    metrics_.SetActiveJobs(poll->cell.name, poll->still_active);
    Reconcile(poll->cell, poll->list);
    Finish(poll);
    return;
  }
  const auto client = poll->cell.client;
  const std::string job_id = poll->unlisted[poll->next_unlisted].job_id;
  const uint64_t id = poll->id;
  ++upstream_requests_;
  client->GetJob(job_id, [shared = shared_, id,
                          name = poll->cell.name](StatusOr<std::optional<JobSummary>> single) {
    Deliver(shared, name, [id, single = std::move(single)](Tracker& tracker) mutable {
      if (auto poll = tracker.FindPoll(id)) tracker.UnlistedArrived(poll, std::move(single));
    });
  });
}

void Tracker::UnlistedArrived(const std::shared_ptr<Poll>& poll,
                              StatusOr<std::optional<JobSummary>> single) {
  const Job& job = poll->unlisted[poll->next_unlisted++];
  const TimePoint now = clock_.Now();
  StatusOr<Job> applied = job;
  if (single.ok() && single->has_value()) {
    applied = Apply(job, **single);
  } else if (single.ok() && now - job.create_time > Options().unseen_grace) {
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
  // A job that is merely not visible yet is retried at the next poll, never failed.
  if (applied.ok() && !IsTerminal(applied->state) && applied->state != JobState::kUnknown) {
    ++poll->still_active;
  }
  NextUnlisted(poll);
}

void Tracker::Finish(const std::shared_ptr<Poll>& poll) {
  std::vector<std::shared_ptr<Poll>> start;
  {
    std::lock_guard lock(shared_->mu);
    FinishLocked(poll, clock_.Monotonic());
    start = TakeStartableLocked();
  }
  shared_->cv.notify_all();
  for (const auto& next : start) Send(next);
}

void Tracker::FinishLocked(const std::shared_ptr<Poll>& poll, Mono now) {
  polls_.erase(poll->id);
  --in_flight_;
  if (poll->round != 0) {
    if (auto r = rounds_.find(poll->round); r != rounds_.end()) --r->second;
  }
  auto it = cells_.find(poll->cell.name);
  if (it == cells_.end() || it->second.generation != poll->generation) return;
  CellState& state = it->second;
  state.phase = Phase::kWaiting;
  if (!poll->probe) state.next_check = state.next_poll;
  // Poked while its poll was under way: the poll may have missed what the poke was about.
  if (state.forced && state.failures == 0) state.next_check = now;
}

std::mutex& Tracker::CellMutex(const std::string& commcell) {
  std::lock_guard lock(cell_mutexes_mu_);
  std::unique_ptr<std::mutex>& mu = cell_mutexes_[commcell];
  if (mu == nullptr) mu = std::make_unique<std::mutex>();
  return *mu;
}

StatusOr<Job> Tracker::Apply(Job job, const JobSummary& summary) {
  // One job's read, merge and write at a time (CancelJob and the tracker may both apply); the
  // lock is the CommCell's own, so a slow registry write holds up no other CommCell.
  std::lock_guard lock(CellMutex(job.commcell));
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
    return (Options().shared_registry || i.create_time >= started_at_) &&
           now - i.create_time < Options().intent_grace;
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
      // The same rule the DR history leaves jobs alone by (intent_match.h).
      if (taken.count(s.job_id) || !MayClaim(intent, s)) continue;
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
    } else if (!deferred && now - intent.create_time >= Options().intent_give_up) {
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
  auto pruned = store_.PruneTerminalJobs(clock_.Now() - Options().retention, 10000);
  if (!pruned.ok()) {
    spdlog::warn("tracker: pruning old jobs failed: {}", pruned.status().ToString());
  } else if (*pruned > 0) {
    spdlog::info("tracker: pruned {} finished job(s) older than the retention", *pruned);
  }
}

}  // namespace drgate::jobs
